//! Golden tests for completion post-processing.
//!
//! Each case is a fixture with a `$0` cursor marker, a language, and the raw
//! text a model might generate there. The expectation shows the line mode,
//! where incremental [`Postprocessor::check`] calls would have stopped the
//! generator (`stop=kept/total` bytes, or `none`), and the final text, one
//! `|`-prefixed line per line so that indentation stays visible (`·` marks a
//! trailing space and `␍` a carriage return).

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::{LineMode, Postprocessor, line_mode};
use crate::language::Language;

mod golden;

fn split(fixture: &str) -> (&str, &str) {
    fixture.split_once("$0").expect("the fixture has no `$0` cursor marker")
}

fn check(lang: Language, fixture: &str, raw: &str, expect: Expect) {
    let (prefix, suffix) = split(fixture);
    check_mode(lang, line_mode(prefix, suffix, lang), fixture, raw, expect);
}

fn check_mode(lang: Language, mode: LineMode, fixture: &str, raw: &str, expect: Expect) {
    let (prefix, suffix) = split(fixture);
    let pp = Postprocessor::new(prefix, suffix, lang, mode);
    let stop = incremental_stop(&pp, raw);
    assert_eq!(stop, pp.scan_full(raw), "incremental and full scans disagree");
    let text = pp.finish(raw);
    if let Some(cut) = stop {
        assert_eq!(pp.finish(&raw[..cut]), text, "finishing the cut text differs");
    }
    let stop = stop.map_or("none".to_owned(), |n| format!("{n}/{}", raw.len()));
    let mut out = format!("mode={mode:?} stop={stop}\n---\n");
    if text.is_empty() {
        out.push_str("<empty>\n");
    }
    for line in text.split_terminator('\n') {
        let line = line.replace('\r', "␍");
        let body = line.trim_end_matches(' ');
        let dots = "·".repeat(line.len() - body.len());
        out.push_str(&format!("|{body}{dots}\n"));
    }
    if text.ends_with('\n') {
        out.push_str("|\n");
    }
    expect.assert_eq(&out);
}

/// Feeds `raw` to `check` one char at a time, as a generator would.
fn incremental_stop(pp: &Postprocessor, raw: &str) -> Option<usize> {
    (1..=raw.len()).filter(|&i| raw.is_char_boundary(i)).find_map(|i| pp.check(&raw[..i]))
}

#[test]
fn line_modes() {
    use Language::*;
    let cases = [
        (Python, "x = foo($0, y)"),
        (Python, "x = foo($0)"),
        (Python, "def f($0):"),
        (Python, "def f():$0"),
        (Python, "if x:  $0\n"),
        (Python, "    $0"),
        (Python, "x = 1$0"),
        (Python, "x = $0"),
        (Rust, "fn main() {$0}"),
        (Rust, "let v = vec![$0];"),
        (Rust, "let s = \"é$0\";"),
        (Rust, "let x = a.b$0"),
        (JavaScript, "const f = () =>$0"),
        (Go, "\t$0\r\n"),
        (Lua, "if x then$0"),
        (Ruby, "items.each do$0"),
        (Ruby, "undo$0"),
        (Shell, "for f in *; do$0"),
        (Java, "int x = y;$0 // comment"),
        (C, "#include <stdio.h>$0"),
    ];
    let mut out = String::new();
    for (lang, fixture) in cases {
        let (prefix, suffix) = split(fixture);
        let mode = line_mode(prefix, suffix, lang);
        out.push_str(&format!("{lang:?} {fixture:?} => {mode:?}\n"));
    }
    expect![[r##"
        Python "x = foo($0, y)" => Single
        Python "x = foo($0)" => Multi
        Python "def f($0):" => Single
        Python "def f():$0" => Multi
        Python "if x:  $0\n" => Multi
        Python "    $0" => Multi
        Python "x = 1$0" => Single
        Python "x = $0" => Multi
        Rust "fn main() {$0}" => Multi
        Rust "let v = vec![$0];" => Multi
        Rust "let s = \"é$0\";" => Single
        Rust "let x = a.b$0" => Single
        JavaScript "const f = () =>$0" => Multi
        Go "\t$0\r\n" => Multi
        Lua "if x then$0" => Multi
        Ruby "items.each do$0" => Multi
        Ruby "undo$0" => Single
        Shell "for f in *; do$0" => Multi
        Java "int x = y;$0 // comment" => Single
        C "#include <stdio.h>$0" => Single
    "##]]
    .assert_eq(&out);
}

// Properties.

const PIECES: &[&str] = &[
    "\n", "\r\n", "\r", " ", "    ", "\t", "x", "é", "漢", "🦀", "def ", "fn ", "end", "do", "{", "}", "(", ")", "[",
    "]", ";", ",", ":", "=", "=>", "\"", "'", "@", "#[", "export ", "\n\n\n", "return 1",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|v| v.concat()),]
}

fn language() -> impl Strategy<Value = Language> {
    prop::sample::select(Language::ALL.to_vec())
}

fn mode() -> impl Strategy<Value = LineMode> {
    prop_oneof![Just(LineMode::Single), Just(LineMode::Multi)]
}

proptest! {
    #[test]
    fn finish_never_panics(
        prefix in text(), suffix in text(), raw in text(), lang in language(), mode in mode(),
    ) {
        let _ = line_mode(&prefix, &suffix, lang);
        let pp = Postprocessor::new(&prefix, &suffix, lang, mode);
        let out = pp.finish(&raw);
        if mode == LineMode::Single {
            prop_assert!(!out.contains(['\n', '\r']), "{out:?}");
        }
        prop_assert_eq!(out.trim().is_empty(), out.is_empty());
    }

    #[test]
    fn check_cuts_on_char_boundaries(
        prefix in text(), suffix in text(), raw in text(), lang in language(), mode in mode(),
    ) {
        let pp = Postprocessor::new(&prefix, &suffix, lang, mode);
        for end in (0..=raw.len()).filter(|&i| raw.is_char_boundary(i)) {
            let so_far = &raw[..end];
            if let Some(keep) = pp.check(so_far) {
                prop_assert!(keep <= end && so_far.is_char_boundary(keep));
            }
        }
    }

    #[test]
    fn incremental_check_agrees_with_full_scan(
        prefix in text(), suffix in text(), raw in text(), lang in language(), mode in mode(),
    ) {
        let pp = Postprocessor::new(&prefix, &suffix, lang, mode);
        let stop = incremental_stop(&pp, &raw);
        prop_assert_eq!(stop, pp.scan_full(&raw));
        if let Some(cut) = stop {
            prop_assert_eq!(pp.finish(&raw[..cut]), pp.finish(&raw));
        }
    }
}
