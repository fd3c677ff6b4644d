//! Retries with exponential backoff and jitter, and a per-provider circuit
//! breaker, for every backend that talks HTTP: remote chat providers now,
//! remote completion backends (`/v1/completions`, llama-server `/infill`)
//! alike.
//!
//! A backend describes one attempt as a future that ends in a value, an
//! [`AttemptError::Transient`] (timeout, connection error, 429, 5xx; with
//! the server's `Retry-After` if it sent one) or an
//! [`AttemptError::Permanent`] (any other 4xx, a malformed answer).
//! [`RetryPolicy::run`] retries transient failures with backoff, honours
//! `Retry-After`, asks the [`CircuitBreaker`] before each attempt and tells
//! it each outcome, and stops at once on cancellation. Time comes from a
//! [`Clock`], so tests replace waiting with a [`ManualClock`].

mod breaker;
pub mod http;

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Refused};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Time as the retry loop and the breaker see it.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: it moves only when told to, and a `sleep` moves it at
/// once by the requested duration, which it records.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    state: Mutex<(Duration, Vec<Duration>)>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock { origin: Instant::now(), state: Mutex::new((Duration::ZERO, Vec::new())) }
    }

    pub fn advance(&self, by: Duration) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 += by;
    }

    /// Every duration slept so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 += duration;
        state.1.push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles with each retry.
    pub base_delay_ms: u64,
    /// No wait is longer than this (before jitter).
    pub max_delay_ms: u64,
    /// A `Retry-After` longer than this fails the request instead of waiting.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: 3, base_delay_ms: 500, max_delay_ms: 20_000, max_retry_after_ms: 60_000 }
    }
}

/// How one attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptError {
    /// Worth retrying; `retry_after` is the server's own hint.
    Transient { message: String, retry_after: Option<Duration> },
    /// Retrying would fail the same way; the provider did answer.
    Permanent(String),
}

impl AttemptError {
    pub fn transient(message: impl Into<String>) -> Self {
        AttemptError::Transient { message: message.into(), retry_after: None }
    }
}

/// How a call failed after its retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the request was cancelled")]
    Cancelled,
    /// The breaker is open: nothing was sent.
    #[error("{0}")]
    Unavailable(String),
    /// Every attempt failed transiently.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// Retries with exponential backoff and "equal jitter": the n-th retry
/// waits between half and all of `min(max_delay, base_delay · 2ⁿ)`.
pub struct RetryPolicy {
    config: RetryConfig,
    clock: Arc<dyn Clock>,
    rng: Mutex<u64>,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig, clock: Arc<dyn Clock>) -> Self {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        RetryPolicy::with_seed(config, clock, seed)
    }

    /// A policy whose jitter is reproducible.
    pub fn with_seed(config: RetryConfig, clock: Arc<dyn Clock>, seed: u64) -> Self {
        RetryPolicy { config, clock, rng: Mutex::new(seed) }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The wait before retry number `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self.config.base_delay_ms.saturating_mul(1u64 << retry.min(32));
        let capped = exponential.min(self.config.max_delay_ms) as f64;
        Duration::from_secs_f64((capped / 2.0 + capped / 2.0 * self.next_unit()) / 1000.0)
    }

    /// A uniform number in [0, 1) (splitmix64).
    fn next_unit(&self) -> f64 {
        let mut state = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Runs `attempt` until it succeeds, fails permanently, runs out of
    /// attempts, meets an open `breaker`, or `cancel` fires. `provider`
    /// names the provider in error messages.
    pub async fn run<T, F, Fut>(
        &self,
        provider: &str,
        breaker: &CircuitBreaker,
        cancel: &CancellationToken,
        mut attempt: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let max_attempts = self.config.max_attempts.max(1);
        let mut attempts = 0;
        loop {
            if cancel.is_cancelled() {
                return Err(CallError::Cancelled);
            }
            if let Err(refused) = breaker.acquire() {
                return Err(CallError::Unavailable(format!(
                    "{provider}: circuit breaker open after repeated failures; next try in {:.1} s",
                    refused.retry_in.as_secs_f64()
                )));
            }
            attempts += 1;
            let outcome = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    breaker.release();
                    return Err(CallError::Cancelled);
                }
                outcome = attempt() => outcome,
            };
            let (message, retry_after) = match outcome {
                Ok(value) => {
                    breaker.record_success();
                    return Ok(value);
                }
                Err(AttemptError::Permanent(message)) => {
                    // The provider is up; the request is at fault.
                    breaker.record_success();
                    return Err(CallError::Permanent(format!("{provider}: {message}")));
                }
                Err(AttemptError::Transient { message, retry_after }) => {
                    breaker.record_failure();
                    (message, retry_after)
                }
            };
            if attempts >= max_attempts {
                return Err(CallError::Transient(format!("{provider}: {message} (after {attempts} attempts)")));
            }
            let wait = match retry_after {
                Some(wait) if wait > Duration::from_millis(self.config.max_retry_after_ms) => {
                    return Err(CallError::Transient(format!(
                        "{provider}: {message}; the server asks to wait {} s, longer than the {} s allowed",
                        wait.as_secs(),
                        self.config.max_retry_after_ms / 1000
                    )));
                }
                Some(wait) => wait,
                None => self.backoff(attempts - 1),
            };
            tracing::debug!(provider, attempt = attempts, wait_ms = wait.as_millis() as u64, "{message}; retrying");
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(CallError::Cancelled),
                () = self.clock.sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy(clock: &Arc<ManualClock>) -> RetryPolicy {
        let config = RetryConfig { max_attempts: 4, base_delay_ms: 100, max_delay_ms: 300, max_retry_after_ms: 5000 };
        RetryPolicy::with_seed(config, clock.clone(), 7)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        let clock = Arc::new(ManualClock::new());
        let policy = policy(&clock);
        for (retry, cap) in [(0, 100), (1, 200), (2, 300), (3, 300), (40, 300)] {
            for _ in 0..50 {
                let wait = policy.backoff(retry).as_secs_f64() * 1000.0;
                assert!(wait >= cap as f64 / 2.0 && wait <= cap as f64, "retry {retry}: {wait} ms");
            }
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_retry_after_is_honoured() {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::new(BreakerConfig::default(), clock.clone());
        let calls = AtomicU32::new(0);
        let result = policy(&clock)
            .run("test", &breaker, &CancellationToken::new(), || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(AttemptError::Transient {
                        message: "429".into(),
                        retry_after: Some(Duration::from_secs(2)),
                    }),
                    1 => Err(AttemptError::transient("500")),
                    _ => Ok("answer"),
                }
            })
            .await;
        assert_eq!(result, Ok("answer"));
        let sleeps = clock.sleeps();
        assert_eq!(sleeps[0], Duration::from_secs(2));
        assert!(sleeps[1] >= Duration::from_millis(100) && sleeps[1] <= Duration::from_millis(200), "{sleeps:?}");
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn attempts_run_out_and_permanent_errors_stop_at_once() {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 10, cooldown_ms: 1000 }, clock.clone());
        let never = || async { Err::<(), _>(AttemptError::transient("HTTP 503")) };
        let err = policy(&clock).run("p", &breaker, &CancellationToken::new(), never).await.unwrap_err();
        assert_eq!(err, CallError::Transient("p: HTTP 503 (after 4 attempts)".into()));
        assert_eq!(clock.sleeps().len(), 3);

        let calls = AtomicU32::new(0);
        let bad = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(AttemptError::Permanent("HTTP 400: bad model".into()))
        };
        let err = policy(&clock).run("p", &breaker, &CancellationToken::new(), bad).await.unwrap_err();
        assert_eq!(err, CallError::Permanent("p: HTTP 400: bad model".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let too_long = || async {
            Err::<(), _>(AttemptError::Transient {
                message: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(600)),
            })
        };
        let err = policy(&clock).run("p", &breaker, &CancellationToken::new(), too_long).await.unwrap_err();
        assert_eq!(
            err,
            CallError::Transient("p: HTTP 429; the server asks to wait 600 s, longer than the 5 s allowed".into())
        );
    }

    #[tokio::test]
    async fn an_open_breaker_refuses_without_calling_and_cancellation_wins() {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 2, cooldown_ms: 1000 }, clock.clone());
        let calls = AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(AttemptError::transient("timeout"))
        };
        let err = policy(&clock).run("p", &breaker, &CancellationToken::new(), failing).await.unwrap_err();
        // The second failure opened the breaker; the third attempt was refused.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(matches!(err, CallError::Unavailable(ref m) if m.starts_with("p: circuit breaker open")), "{err}");

        let cancel = CancellationToken::new();
        cancel.cancel();
        let err = policy(&clock).run("p", &breaker, &cancel, || async { Ok(()) }).await.unwrap_err();
        assert_eq!(err, CallError::Cancelled);
    }
}
