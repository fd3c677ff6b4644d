//! Typing traces: the keystrokes that type a region of text back in, and
//! when each one happens.
//!
//! The model of the delays ([`TypingModel`]): the time before a key is
//! log-normal around a median (150 ms by default, about 80 words a minute
//! counting a word as 5 characters, the speed of a practised programmer
//! writing code, which is slower than prose), with a deviation of 0.4 in
//! log space (half the delays lie within ×0.76–×1.31 of the median). It is
//! longer after some keys: ×2 after punctuation (`;`, `,`, `(` …), ×1.3
//! after a space, ×4 after a line end (reading, deciding the next line).
//! Before any key, with probability 3 %, the typist stops to think: an extra
//! log-normal pause around 1.2 s. Delays are clamped to 25 ms–5 s.
//!
//! Keys are characters, except that a line end and the indentation of the
//! next line are one key, as an editor's auto-indent inserts them.
//! Everything is drawn from a seeded generator: the same seed gives the same
//! trace on every machine.

use super::Rng;

/// The parameters of the delay model (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TypingModel {
    /// Median delay before an ordinary key, in milliseconds.
    pub key_ms: f64,
    /// Deviation of the delays in log space.
    pub sigma: f64,
    pub after_punctuation: f64,
    pub after_space: f64,
    pub after_line_end: f64,
    /// Chance of a thinking pause before a key.
    pub pause_probability: f64,
    /// Median of a thinking pause, in milliseconds.
    pub pause_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Default for TypingModel {
    fn default() -> Self {
        TypingModel {
            key_ms: 150.0,
            sigma: 0.4,
            after_punctuation: 2.0,
            after_space: 1.3,
            after_line_end: 4.0,
            pause_probability: 0.03,
            pause_ms: 1200.0,
            min_ms: 25.0,
            max_ms: 5000.0,
        }
    }
}

impl TypingModel {
    /// A model with the ordinary key's median at `key_ms`, the other
    /// parameters as in the default.
    pub fn with_key_ms(key_ms: f64) -> Self {
        TypingModel { key_ms, ..TypingModel::default() }
    }
}

/// One key: the text it inserts at the cursor, and when.
#[derive(Clone, Debug, PartialEq)]
pub struct Keystroke {
    pub text: String,
    /// Milliseconds since the first key.
    pub at_ms: f64,
}

/// The keys that type `region`: one per character, except that a line end
/// with the next line's indentation is one key.
pub fn keys(region: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut chars = region.chars().peekable();
    while let Some(c) = chars.next() {
        let mut key = String::from(c);
        if c == '\r' && chars.peek() == Some(&'\n') {
            key.push(chars.next().unwrap_or('\n'));
        }
        if key.ends_with('\n') {
            while let Some(&next) = chars.peek().filter(|c| **c == ' ' || **c == '\t') {
                key.push(next);
                chars.next();
            }
        }
        keys.push(key);
    }
    keys
}

/// The trace that types `region` under `model`, drawn from `seed`. The
/// first key is at 0 ms.
pub fn keystrokes(region: &str, model: &TypingModel, seed: u64) -> Vec<Keystroke> {
    let mut rng = Rng::new(seed);
    let mut at_ms = 0.0;
    let mut previous: Option<String> = None;
    let mut trace = Vec::new();
    for key in keys(region) {
        if let Some(previous) = &previous {
            at_ms += delay(previous, model, &mut rng);
        }
        trace.push(Keystroke { text: key.clone(), at_ms });
        previous = Some(key);
    }
    trace
}

/// The delay before the key that follows `previous`.
fn delay(previous: &str, model: &TypingModel, rng: &mut Rng) -> f64 {
    let factor = match previous.chars().next() {
        Some('\n' | '\r') => model.after_line_end,
        Some(' ' | '\t') => model.after_space,
        Some(c) if ",;:.()[]{}<>=".contains(c) => model.after_punctuation,
        _ => 1.0,
    };
    let mut ms = rng.log_normal(model.key_ms * factor, model.sigma);
    if rng.unit() < model.pause_probability {
        ms += rng.log_normal(model.pause_ms, model.sigma);
    }
    ms.clamp(model.min_ms, model.max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGION: &str = "fn add(a: i32, b: i32) -> i32 {\n    let sum = a + b;\n    sum\n}\n";

    #[test]
    fn keys_type_the_region_back_with_auto_indent() {
        let keys = keys(REGION);
        assert_eq!(keys.concat(), REGION);
        assert!(keys.contains(&"\n    ".to_owned()), "{keys:?}");
        assert_eq!(keys.iter().filter(|k| k.contains('\n')).count(), 4);
        assert_eq!(super::keys("a\r\n\tb"), ["a", "\r\n\t", "b"]);
        assert!(super::keys("").is_empty());
    }

    #[test]
    fn a_seed_gives_one_trace() {
        let model = TypingModel::default();
        let a = keystrokes(REGION, &model, 11);
        assert_eq!(a, keystrokes(REGION, &model, 11));
        assert_ne!(a, keystrokes(REGION, &model, 12));
        assert_eq!(a[0].at_ms, 0.0);
        assert_eq!(a.iter().map(|k| k.text.as_str()).collect::<String>(), REGION);
    }

    #[test]
    fn delays_follow_the_model() {
        let model = TypingModel::default();
        let text = "let value = compute(first, second);\n".repeat(60);
        let trace = keystrokes(&text, &model, 5);
        let mut plain = Vec::new();
        let mut after_line_end = Vec::new();
        for pair in trace.windows(2) {
            let gap = pair[1].at_ms - pair[0].at_ms;
            assert!((model.min_ms..=model.max_ms).contains(&gap), "{gap}");
            match pair[0].text.chars().next() {
                Some('\n') => after_line_end.push(gap),
                Some(c) if c.is_alphanumeric() => plain.push(gap),
                _ => {}
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let plain = median(&mut plain);
        assert!((120.0..185.0).contains(&plain), "{plain}");
        assert!(median(&mut after_line_end) > 2.5 * plain);
    }

    #[test]
    fn the_key_median_scales_the_trace() {
        let no_pauses = |key_ms| TypingModel { pause_probability: 0.0, ..TypingModel::with_key_ms(key_ms) };
        let slow = keystrokes(REGION, &no_pauses(300.0), 3);
        let fast = keystrokes(REGION, &no_pauses(100.0), 3);
        let (slow, fast) = (slow.last().unwrap().at_ms, fast.last().unwrap().at_ms);
        assert!((slow / fast - 3.0).abs() < 0.1, "{slow} {fast}");
    }
}
