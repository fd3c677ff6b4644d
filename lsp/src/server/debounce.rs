//! Debounce of automatic completion requests, per document.
//!
//! An editor asks for a completion after every keystroke. While the user
//! types fast, most of those requests are superseded by the next keystroke
//! before the model could answer, and the work spent on them delays the one
//! that matters. So an automatic request waits until the document has been
//! still for a moment; a request that a newer one supersedes during the wait
//! answers with nothing and never reaches the model. A request the user
//! invoked explicitly never waits.
//!
//! `adaptive` (the default) learns how long "a moment" is from the typing
//! itself: per document, an exponentially weighted moving average (EWMA) of
//! the intervals between `didChange` arrivals. The wait ends
//! `clamp(FACTOR × typical interval, MIN, MAX)` after the last edit, so a
//! fast typist's next keystroke (due after about one typical interval)
//! lands inside the wait, and a request that arrives after the user paused
//! does not wait at all: its release time has passed already. A fixed
//! debounce waits the same time after every last edit; zero turns it off.
//!
//! Time comes from a [`Clock`], so that tests drive it by hand.

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The adaptive wait is this many typical intervals after the last edit:
/// typing intervals vary by roughly a third around their mean, so 1.5 of
/// them covers most next keystrokes of a burst.
pub const ADAPTIVE_FACTOR: f64 = 1.5;
/// The adaptive wait at least.
pub const ADAPTIVE_MIN: Duration = Duration::ZERO;
/// The adaptive wait at most: a slow typist waits no longer than this for
/// a suggestion.
pub const ADAPTIVE_MAX: Duration = Duration::from_millis(200);
/// The weight of the newest interval in the average.
pub const SMOOTHING: f64 = 0.3;
/// A gap longer than this is a pause, not typing: it ends a burst without
/// entering the average.
pub const PAUSE: Duration = Duration::from_millis(1000);
/// Edits closer together than this belong to one keystroke (an editor's
/// auto-indent or closing bracket after the typed character): they do not
/// enter the average.
pub const SAME_KEYSTROKE: Duration = Duration::from_millis(15);

/// How long an automatic completion request waits for the typing to stop
/// (`[lsp] debounce`: `"adaptive"` or a number of milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Debounce {
    /// From the user's typing rhythm, per document.
    #[default]
    Adaptive,
    /// This long after the document's last edit; zero turns debouncing off.
    Fixed(Duration),
}

impl Serialize for Debounce {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Debounce::Adaptive => serializer.serialize_str("adaptive"),
            Debounce::Fixed(wait) => serializer.serialize_u64(wait.as_millis() as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Debounce {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Debounce;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"adaptive\" or a number of milliseconds (0 turns debouncing off)")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Debounce, E> {
                match value {
                    "adaptive" => Ok(Debounce::Adaptive),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Debounce, E> {
                Ok(Debounce::Fixed(Duration::from_millis(value)))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Debounce, E> {
                u64::try_from(value)
                    .map(|ms| Debounce::Fixed(Duration::from_millis(ms)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The server's time source: the system's, or a hand-driven one in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Instant;
    /// Resolves once `now()` has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

/// The system clock, with tokio's timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        tokio::time::sleep_until(deadline.into()).boxed()
    }
}

/// The typing rhythm of one document: when its last edit arrived and the
/// average interval between edits.
#[derive(Clone, Debug, Default)]
pub struct TypingRhythm {
    last_edit: Option<Instant>,
    typical: Option<Duration>,
}

impl TypingRhythm {
    /// An edit (a `didChange`) arrived at `at`.
    pub fn edited(&mut self, at: Instant) {
        if let Some(last) = self.last_edit {
            let interval = at.saturating_duration_since(last);
            if (SAME_KEYSTROKE..=PAUSE).contains(&interval) {
                self.typical = Some(match self.typical {
                    None => interval,
                    Some(typical) => scale(typical, 1.0 - SMOOTHING) + scale(interval, SMOOTHING),
                });
            }
        }
        self.last_edit = Some(self.last_edit.map_or(at, |last| last.max(at)));
    }

    /// The average interval between keystrokes, once there is one.
    pub fn typical_interval(&self) -> Option<Duration> {
        self.typical
    }

    /// How long after the last edit an automatic request waits.
    pub fn wait(&self, debounce: Debounce) -> Duration {
        match debounce {
            Debounce::Fixed(wait) => wait,
            // No rhythm yet: nothing says another keystroke is coming.
            Debounce::Adaptive => self
                .typical
                .map_or(Duration::ZERO, |typical| scale(typical, ADAPTIVE_FACTOR).clamp(ADAPTIVE_MIN, ADAPTIVE_MAX)),
        }
    }

    /// When an automatic request that arrives at `now` may go to the model;
    /// `None` when it need not wait.
    pub fn release_at(&self, debounce: Debounce, now: Instant) -> Option<Instant> {
        let release = self.last_edit? + self.wait(debounce);
        (release > now).then_some(release)
    }
}

/// `duration × factor` to the microsecond (so that equal rhythms give equal
/// waits, whatever the floating-point rounding).
fn scale(duration: Duration, factor: f64) -> Duration {
    Duration::from_micros((duration.as_micros() as f64 * factor).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A rhythm with edits at these milliseconds after `t0`.
    fn typed_at(t0: Instant, times: &[u64]) -> TypingRhythm {
        let mut rhythm = TypingRhythm::default();
        for &t in times {
            rhythm.edited(t0 + ms(t));
        }
        rhythm
    }

    #[test]
    fn a_fast_typist_waits_a_factor_of_the_typical_interval_after_the_last_edit() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 80, 160, 240]);
        assert_eq!(rhythm.typical_interval(), Some(ms(80)));
        assert_eq!(rhythm.wait(Debounce::Adaptive), ms(120));
        // A request 5 ms after the last keystroke waits until 120 ms after it.
        assert_eq!(rhythm.release_at(Debounce::Adaptive, t0 + ms(245)), Some(t0 + ms(360)));
    }

    #[test]
    fn the_average_follows_the_newest_intervals() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 100, 150]);
        // 100, then 0.7 × 100 + 0.3 × 50.
        assert_eq!(rhythm.typical_interval(), Some(ms(85)));
    }

    #[test]
    fn a_slow_typist_waits_at_most_the_maximum() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 600, 1200]);
        assert_eq!(rhythm.wait(Debounce::Adaptive), ADAPTIVE_MAX);
    }

    #[test]
    fn after_a_pause_a_request_does_not_wait() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 80, 160]);
        assert_eq!(rhythm.release_at(Debounce::Adaptive, t0 + ms(160 + 2000)), None);
        // The pause itself does not make the typist slow.
        let rhythm = typed_at(t0, &[0, 80, 160, 5000]);
        assert_eq!(rhythm.typical_interval(), Some(ms(80)));
    }

    #[test]
    fn edits_of_one_keystroke_do_not_enter_the_average() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 100, 101, 201, 203]);
        assert_eq!(rhythm.typical_interval(), Some(ms(100)));
        assert_eq!(rhythm.release_at(Debounce::Adaptive, t0 + ms(203)), Some(t0 + ms(353)));
    }

    #[test]
    fn without_a_rhythm_adaptive_does_not_wait() {
        let t0 = Instant::now();
        assert_eq!(TypingRhythm::default().release_at(Debounce::Adaptive, t0), None);
        assert_eq!(typed_at(t0, &[0]).release_at(Debounce::Adaptive, t0), None);
    }

    #[test]
    fn fixed_waits_after_the_last_edit_and_zero_is_off() {
        let t0 = Instant::now();
        let rhythm = typed_at(t0, &[0, 80, 160]);
        assert_eq!(rhythm.release_at(Debounce::Fixed(ms(50)), t0 + ms(170)), Some(t0 + ms(210)));
        assert_eq!(rhythm.release_at(Debounce::Fixed(ms(50)), t0 + ms(210)), None);
        assert_eq!(rhythm.release_at(Debounce::Fixed(Duration::ZERO), t0 + ms(160)), None);
        // No edit yet: nothing to wait for.
        assert_eq!(TypingRhythm::default().release_at(Debounce::Fixed(ms(50)), t0), None);
    }

    #[test]
    fn the_setting_is_adaptive_or_milliseconds() {
        #[derive(Deserialize, Serialize, Debug, PartialEq)]
        struct Lsp {
            debounce: Debounce,
        }
        let parse = |text: &str| serde_json::from_str::<Lsp>(text).map(|lsp| lsp.debounce);
        assert_eq!(parse(r#"{"debounce": "adaptive"}"#).unwrap(), Debounce::Adaptive);
        assert_eq!(parse(r#"{"debounce": 40}"#).unwrap(), Debounce::Fixed(ms(40)));
        assert_eq!(parse(r#"{"debounce": 0}"#).unwrap(), Debounce::Fixed(Duration::ZERO));
        let err = parse(r#"{"debounce": "fast"}"#).unwrap_err().to_string();
        assert!(err.contains("\"adaptive\" or a number of milliseconds"), "{err}");
        let err = parse(r#"{"debounce": -5}"#).unwrap_err().to_string();
        assert!(err.contains("\"adaptive\" or a number of milliseconds"), "{err}");
        let text = serde_json::to_string(&Lsp { debounce: Debounce::Fixed(ms(40)) }).unwrap();
        assert_eq!(text, r#"{"debounce":40}"#);
    }
}
