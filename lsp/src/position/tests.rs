use proptest::prelude::*;
use ropey::Rope;

use super::model::{self, ENCODINGS};
use super::*;

use PositionEncoding::{Utf8, Utf16, Utf32};

fn pos(line: u32, character: u32) -> LspPosition {
    LspPosition::new(line, character)
}

fn offers(kinds: &[&str]) -> Vec<String> {
    kinds.iter().map(|k| (*k).to_owned()).collect()
}

/// Checks every char index and every position of interest of `text` against the model.
fn check_against_model(text: &str) {
    let rope = Rope::from_str(text);
    let lines = model::lines(text);
    assert_eq!(rope.len_lines(), lines.len(), "line count of {text:?}");
    for enc in ENCODINGS {
        // Every char index converts to the model's position and, unless it
        // lies inside a CRLF pair, round-trips.
        let boundaries = text.char_indices().map(|(b, _)| b).chain([text.len()]);
        for (char_idx, byte) in boundaries.enumerate() {
            let lsp = to_lsp(&rope, char_idx, enc).unwrap();
            assert_eq!(lsp, model::to_lsp(text, byte, enc), "{enc:?} {text:?} {char_idx}");
            let back = to_char_idx(&rope, lsp, enc).unwrap();
            if model::is_mid_crlf(text, byte) {
                assert_eq!(back, char_idx - 1, "{enc:?} {text:?} {char_idx}");
            } else {
                assert_eq!(back, char_idx, "{enc:?} {text:?} {char_idx}");
            }
        }
        assert_eq!(to_lsp(&rope, rope.len_chars() + 1, enc), None);
        // Every column up to two past the end of every line, and the lines
        // just past the end, clamp like the model.
        for line in 0..=lines.len() + 1 {
            let width = lines.get(line).map_or(0, |l| model::str_units(&text[l.start..l.content_end], enc));
            for col in 0..=width + 2 {
                let p = pos(line as u32, col as u32);
                let expected = model::to_byte(text, p, enc);
                let got = to_byte_offset(&rope, p, enc);
                assert_eq!(got, expected, "{enc:?} {text:?} {p}");
                if let Some(byte) = got {
                    assert!(!model::is_mid_crlf(text, byte), "{enc:?} {text:?} {p}");
                }
            }
        }
    }
}

#[test]
fn negotiate_prefers_utf8_then_utf32_then_utf16() {
    assert_eq!(negotiate(None), Utf16);
    assert_eq!(negotiate(Some(&[])), Utf16);
    assert_eq!(negotiate(Some(&offers(&["utf-16"]))), Utf16);
    assert_eq!(negotiate(Some(&offers(&["latin-1"]))), Utf16);
    assert_eq!(negotiate(Some(&offers(&["utf-16", "utf-8"]))), Utf8);
    assert_eq!(negotiate(Some(&offers(&["utf-32", "utf-16"]))), Utf32);
    assert_eq!(negotiate(Some(&offers(&["utf-32", "utf-8", "utf-16"]))), Utf8);
    assert_eq!(negotiate(Some(&offers(&["utf-32"]))), Utf32);
}

#[test]
fn encoding_kinds_round_trip() {
    for enc in ENCODINGS {
        assert_eq!(PositionEncoding::from_lsp_kind(enc.as_lsp_kind()), Some(enc));
    }
    assert_eq!(PositionEncoding::from_lsp_kind("UTF-8"), None);
    assert_eq!(PositionEncoding::default(), Utf16);
}

#[test]
fn column_past_end_clamps_to_line_content() {
    let rope = Rope::from_str("abc\ndé\r\nx");
    for enc in ENCODINGS {
        assert_eq!(to_char_idx(&rope, pos(0, 3), enc), Some(3));
        assert_eq!(to_char_idx(&rope, pos(0, 99), enc), Some(3));
        assert_eq!(to_char_idx(&rope, pos(1, 99), enc), Some(6));
        assert_eq!(to_char_idx(&rope, pos(2, 99), enc), Some(9));
        assert_eq!(to_char_idx(&rope, pos(2, u32::MAX), enc), Some(9));
    }
}

#[test]
fn mid_char_rounds_down() {
    let rope = Rope::from_str("a🦀b");
    // The crab is one char, two UTF-16 code units and four UTF-8 bytes.
    assert_eq!(to_char_idx(&rope, pos(0, 2), Utf16), Some(1));
    assert_eq!(to_char_idx(&rope, pos(0, 3), Utf16), Some(2));
    for col in 2..=4 {
        assert_eq!(to_char_idx(&rope, pos(0, col), Utf8), Some(1));
    }
    assert_eq!(to_char_idx(&rope, pos(0, 5), Utf8), Some(2));
    assert_eq!(to_char_idx(&rope, pos(0, 2), Utf32), Some(2));
    assert_eq!(to_lsp(&rope, 2, Utf8), Some(pos(0, 5)));
    assert_eq!(to_lsp(&rope, 2, Utf16), Some(pos(0, 3)));
    assert_eq!(to_lsp(&rope, 2, Utf32), Some(pos(0, 2)));
}

#[test]
fn line_past_end() {
    for enc in ENCODINGS {
        let rope = Rope::from_str("abc");
        assert_eq!(to_char_idx(&rope, pos(1, 0), enc), Some(3));
        assert_eq!(to_char_idx(&rope, pos(1, 7), enc), Some(3));
        assert_eq!(to_char_idx(&rope, pos(2, 0), enc), None);
        assert_eq!(to_char_idx(&rope, pos(u32::MAX, 0), enc), None);

        let rope = Rope::from_str("abc\n");
        assert_eq!(to_char_idx(&rope, pos(1, 0), enc), Some(4));
        assert_eq!(to_char_idx(&rope, pos(1, 5), enc), Some(4));
        assert_eq!(to_char_idx(&rope, pos(2, 0), enc), Some(4));
        assert_eq!(to_char_idx(&rope, pos(3, 0), enc), None);

        let rope = Rope::new();
        assert_eq!(to_char_idx(&rope, pos(0, 0), enc), Some(0));
        assert_eq!(to_char_idx(&rope, pos(0, 5), enc), Some(0));
        assert_eq!(to_char_idx(&rope, pos(1, 0), enc), Some(0));
        assert_eq!(to_char_idx(&rope, pos(2, 0), enc), None);
        assert_eq!(to_lsp(&rope, 0, enc), Some(pos(0, 0)));
        assert_eq!(to_lsp(&rope, 1, enc), None);
    }
}

#[test]
fn crlf_is_one_line_break() {
    let rope = Rope::from_str("ab\r\ncd\re\nf");
    assert_eq!(rope.len_lines(), 4);
    for enc in ENCODINGS {
        assert_eq!(to_char_idx(&rope, pos(0, 2), enc), Some(2));
        // Column 3 would be between `\r` and `\n`; it clamps before the `\r`.
        assert_eq!(to_char_idx(&rope, pos(0, 3), enc), Some(2));
        assert_eq!(to_char_idx(&rope, pos(1, 0), enc), Some(4));
        assert_eq!(to_char_idx(&rope, pos(1, 3), enc), Some(6));
        assert_eq!(to_char_idx(&rope, pos(2, 0), enc), Some(7));
        assert_eq!(to_char_idx(&rope, pos(3, 0), enc), Some(9));
        assert_eq!(to_lsp(&rope, 2, enc), Some(pos(0, 2)));
        // The index between `\r` and `\n` maps to the end of the content.
        assert_eq!(to_lsp(&rope, 3, enc), Some(pos(0, 2)));
        assert_eq!(to_lsp(&rope, 4, enc), Some(pos(1, 0)));
        assert_eq!(to_lsp(&rope, 7, enc), Some(pos(2, 0)));
    }
}

#[test]
fn unicode_line_separators_are_not_line_breaks() {
    let rope = Rope::from_str("a\u{2028}b\u{85}c\u{c}d");
    assert_eq!(rope.len_lines(), 1);
    assert_eq!(to_lsp(&rope, 7, Utf32), Some(pos(0, 7)));
}

#[test]
fn ranges_reject_reversed_and_out_of_range() {
    let rope = Rope::from_str("abc\ndef");
    assert_eq!(range_to_char_range(&rope, pos(0, 1), pos(1, 2), Utf16), Some(1..6));
    assert_eq!(range_to_char_range(&rope, pos(0, 1), pos(0, 1), Utf16), Some(1..1));
    assert_eq!(range_to_char_range(&rope, pos(1, 0), pos(0, 1), Utf16), None);
    // Reversed columns are rejected even though both clamp to the line end.
    assert_eq!(range_to_char_range(&rope, pos(0, 9), pos(0, 5), Utf16), None);
    assert_eq!(range_to_char_range(&rope, pos(0, 0), pos(2, 0), Utf16), Some(0..7));
    assert_eq!(range_to_char_range(&rope, pos(0, 0), pos(3, 0), Utf16), None);
}

#[test]
fn byte_offsets_and_points() {
    let rope = Rope::from_str("é\r\n漢\rx");
    assert_eq!(to_byte_offset(&rope, pos(1, 1), Utf16), Some(7));
    assert_eq!(to_byte_offset(&rope, pos(2, 1), Utf8), Some(9));
    assert_eq!(byte_to_row_col(&rope, 0), Some((0, 0)));
    assert_eq!(byte_to_row_col(&rope, 3), Some((0, 3)));
    assert_eq!(byte_to_row_col(&rope, 4), Some((1, 0)));
    assert_eq!(byte_to_row_col(&rope, 7), Some((1, 3)));
    assert_eq!(byte_to_row_col(&rope, 8), Some((2, 0)));
    assert_eq!(byte_to_row_col(&rope, 9), Some((2, 1)));
    assert_eq!(byte_to_row_col(&rope, 10), None);
}

#[test]
fn converts_ls_types_positions() {
    let p = tower_lsp_server::ls_types::Position::new(3, 4);
    let ours = LspPosition::from(p);
    assert_eq!(ours, pos(3, 4));
    assert_eq!(tower_lsp_server::ls_types::Position::from(ours), p);
    assert_eq!(ours.to_string(), "3:4");
}

#[test]
fn fixed_texts_match_model() {
    for text in ["", "\n", "\r", "\r\n", "\n\r", "\r\r\n\n", "a\r\nb", "🦀\r\n🦀", "é\rß\n漢"] {
        check_against_model(text);
    }
}

/// Returns one line that embeds `c` between other chars, and a CRLF.
fn line_with(c: char) -> String {
    format!("a{c}b\r\n{c}🦀{c}")
}

#[test]
fn unicode_scalar_sweep_round_trips() {
    let boundaries = [0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF];
    let sample = (0..=0x10_FFFF_u32).step_by(251).chain(boundaries);
    let mut checked = 0;
    for cp in sample {
        // Surrogate code points are not chars and are skipped.
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let text = line_with(c);
        let rope = Rope::from_str(&text);
        for enc in ENCODINGS {
            for (char_idx, (byte, _)) in text.char_indices().enumerate() {
                let lsp = to_lsp(&rope, char_idx, enc).unwrap();
                assert_eq!(lsp, model::to_lsp(&text, byte, enc), "{enc:?} U+{cp:04X}");
                if !model::is_mid_crlf(&text, byte) {
                    assert_eq!(to_char_idx(&rope, lsp, enc), Some(char_idx), "{enc:?} U+{cp:04X}");
                }
            }
        }
        checked += 1;
    }
    assert!(checked > 4000, "only {checked} scalars were checked");
}

#[test]
fn all_line_breaking_scalars_match_model() {
    // Every scalar below U+3000 is checked densely, which covers all C0 and C1
    // controls and the Unicode line and paragraph separators.
    for c in (0..0x3000).filter_map(char::from_u32) {
        check_against_model(&line_with(c));
    }
}

proptest! {
    #[test]
    fn random_texts_match_model(text in model::text(40)) {
        check_against_model(&text);
    }
}
