//! Typed-ahead answers: a user who types the first characters of a shown
//! suggestion still wants the rest of it.
//!
//! Per document the server keeps its last answer (the suggestions, at the
//! cursor's byte offset) and follows the document's edits: while every edit
//! inserts text exactly at the end of what was typed at that cursor, and the
//! typed text begins a suggestion, a request at the end of the typed text is
//! answered with the rest of the suggestion at once, without the model. The
//! answer keeps the suggestion's id, so acceptance telemetry still links to
//! the generation. Any other edit (a deletion, an insertion elsewhere, text
//! no suggestion begins with) forgets the answer; so does `didClose`.

use serde_json::json;

use crate::document::TextEdit;
use crate::provider::CompletionOutput;

/// The last answer of a document and what the user typed at its cursor.
#[derive(Clone, Debug)]
pub struct TypedAhead {
    /// The byte offset of the cursor the suggestions were made for.
    anchor: usize,
    /// The text inserted at the anchor since, as the document has it.
    typed: String,
    /// The suggestions, with `\n` line endings.
    suggestions: Vec<CompletionOutput>,
}

impl TypedAhead {
    /// Remembers an answer at a cursor; `None` when it suggested nothing.
    pub fn new(anchor: usize, outputs: &[CompletionOutput]) -> Option<TypedAhead> {
        let suggestions: Vec<CompletionOutput> = outputs.iter().filter(|o| !o.text.is_empty()).cloned().collect();
        (!suggestions.is_empty()).then_some(TypedAhead { anchor, typed: String::new(), suggestions })
    }

    /// Follows one edit of the document (`inserted` is its new text); false
    /// when the answer no longer holds and must be forgotten.
    pub fn edited(&mut self, edit: &TextEdit, inserted: &str) -> bool {
        let at = self.anchor + self.typed.len();
        let insertion = edit.start_byte == edit.old_end_byte;
        if !insertion || edit.start_byte != at {
            return false;
        }
        self.typed.push_str(inserted);
        let typed = normalized(&self.typed);
        self.suggestions.iter().any(|s| s.text.starts_with(typed.as_str()))
    }

    /// The answer at a cursor: the rest of every suggestion that the typed
    /// text begins, when the cursor is at the end of the typed text and
    /// something remains.
    pub fn answer(&self, cursor_byte: usize) -> Option<Vec<CompletionOutput>> {
        if self.typed.is_empty() || cursor_byte != self.anchor + self.typed.len() {
            return None;
        }
        let typed = normalized(&self.typed);
        let rest: Vec<CompletionOutput> = self
            .suggestions
            .iter()
            .filter_map(|s| {
                let remainder = s.text.strip_prefix(typed.as_str()).filter(|r| !r.is_empty())?;
                Some(CompletionOutput {
                    id: s.id.clone(),
                    text: remainder.to_owned(),
                    model: s.model.clone(),
                    latency_ms: 0.0,
                    snippet_tokens: None,
                    details: json!({ "typed_ahead": true, "typed_chars": typed.chars().count() }),
                })
            })
            .collect();
        (!rest.is_empty()).then_some(rest)
    }
}

fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Point;

    fn output(id: &str, text: &str) -> CompletionOutput {
        CompletionOutput {
            id: id.into(),
            text: text.into(),
            model: "m".into(),
            latency_ms: 30.0,
            snippet_tokens: None,
            details: serde_json::Value::Null,
        }
    }

    fn insert(at: usize, text: &str) -> TextEdit {
        edit(at, at, at + text.len())
    }

    fn edit(start: usize, old_end: usize, new_end: usize) -> TextEdit {
        TextEdit {
            start_byte: start,
            old_end_byte: old_end,
            new_end_byte: new_end,
            start_point: Point::default(),
            old_end_point: Point::default(),
            new_end_point: Point::default(),
        }
    }

    fn texts(answer: Option<Vec<CompletionOutput>>) -> Vec<String> {
        answer.unwrap_or_default().into_iter().map(|o| format!("{}:{}", o.id, o.text)).collect()
    }

    #[test]
    fn typing_the_start_of_a_suggestion_leaves_its_rest() {
        let mut cache = TypedAhead::new(10, &[output("a", "a + b"), output("b", "a - b"), output("c", "x")]).unwrap();
        // Nothing typed yet: the model is asked again.
        assert!(cache.answer(10).is_none());
        assert!(cache.edited(&insert(10, "a"), "a"));
        assert_eq!(texts(cache.answer(11)), ["a: + b", "b: - b"]);
        assert!(cache.edited(&insert(11, " +"), " +"));
        let answer = cache.answer(13).unwrap();
        assert_eq!((answer[0].id.as_str(), answer[0].text.as_str()), ("a", " b"));
        assert_eq!((answer[0].model.as_str(), answer[0].details["typed_ahead"].as_bool()), ("m", Some(true)));
        // Elsewhere than the end of the typed text: no answer.
        assert!(cache.answer(12).is_none());
        assert!(cache.answer(10).is_none());
    }

    #[test]
    fn a_fully_typed_suggestion_has_nothing_left() {
        let mut cache = TypedAhead::new(0, &[output("a", "ab")]).unwrap();
        assert!(cache.edited(&insert(0, "ab"), "ab"));
        assert!(cache.answer(2).is_none());
    }

    #[test]
    fn other_edits_forget_the_answer() {
        let fresh = || TypedAhead::new(10, &[output("a", "abc")]).unwrap();
        // Text the suggestion does not begin with.
        assert!(!fresh().edited(&insert(10, "x"), "x"));
        // An insertion elsewhere, before or after the cursor.
        assert!(!fresh().edited(&insert(3, "a"), "a"));
        assert!(!fresh().edited(&insert(11, "a"), "a"));
        // A deletion, a replacement.
        assert!(!fresh().edited(&edit(9, 10, 9), ""));
        assert!(!fresh().edited(&edit(10, 11, 11), "a"));
        // After typing, an insertion at the old cursor.
        let mut cache = fresh();
        assert!(cache.edited(&insert(10, "a"), "a"));
        assert!(!cache.edited(&insert(10, "b"), "b"));
    }

    #[test]
    fn crlf_documents_match_suggestions_with_newlines() {
        let mut cache = TypedAhead::new(4, &[output("a", "x\n    y")]).unwrap();
        assert!(cache.edited(&insert(4, "x\r\n"), "x\r\n"));
        assert_eq!(texts(cache.answer(7)), ["a:    y"]);
    }

    #[test]
    fn empty_answers_are_not_kept() {
        assert!(TypedAhead::new(0, &[]).is_none());
        assert!(TypedAhead::new(0, &[output("a", "")]).is_none());
    }
}
