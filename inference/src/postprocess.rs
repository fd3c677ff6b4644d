//! Turns raw model output into the text of an inline completion.
//!
//! A completion is generated for a cursor that splits the document into a
//! `prefix` (the text before the cursor) and a `suffix` (the text after it).
//! [`line_mode`] decides whether the completion may span several lines, and a
//! [`Postprocessor`] built for that cursor tells the generator when to stop
//! ([`Postprocessor::check`]) and cleans up what it produced
//! ([`Postprocessor::finish`]).
//!
//! Everything here works on byte offsets that are always char boundaries: the
//! only places where text is cut are ASCII characters (line breaks, spaces,
//! brackets) or the ends of slices produced by the standard library.

use serde::{Deserialize, Serialize};

use crate::language::Language;

#[cfg(test)]
mod tests;

/// How many lines a completion may span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineMode {
    /// The completion ends at the end of the cursor's line.
    Single,
    /// The completion may add lines, up to the end of the cursor's block.
    Multi,
}

/// Characters that may follow the cursor without making the completion a
/// mid-line one: closing brackets, quotes, and statement separators.
const CLOSERS: [char; 8] = [')', ']', '}', '"', '\'', '`', ';', ','];

/// The width of a tab when measuring indentation.
const TAB_WIDTH: usize = 4;

/// Decides whether a completion at the cursor may span several lines.
///
/// The rule looks only at the cursor's line:
///
/// * If the rest of the line after the cursor contains anything other than
///   whitespace and closers (`)`, `]`, `}`, quotes, `;`, `,`), the cursor is in
///   the middle of real code and the completion is [`LineMode::Single`].
/// * Otherwise the cursor is effectively at the end of the line. The
///   completion is [`LineMode::Multi`] when the text before the cursor on that
///   line is blank (empty or indentation only) or ends with a block opener:
///   `{`, `(`, `[`, `=>`, `=`, the words `do` or `then`, or `:` in Python
///   (trailing whitespace is ignored).
/// * In every other case it is [`LineMode::Single`].
pub fn line_mode(prefix: &str, suffix: &str, lang: Language) -> LineMode {
    let after = line_after_cursor(suffix);
    if after.chars().any(|c| !c.is_whitespace() && !CLOSERS.contains(&c)) {
        return LineMode::Single;
    }
    let before = line_before_cursor(prefix);
    if is_blank(before) || opens_block(before, lang) { LineMode::Multi } else { LineMode::Single }
}

/// Stops generation and cleans up completions for one cursor position.
///
/// The generated text is inserted at the cursor, so its first line continues
/// the cursor's line and every later line starts a new line of the document.
///
/// # Stop rules
///
/// In [`LineMode::Single`] the completion ends at the first line break (`\n`
/// or `\r`) that follows non-whitespace text. A line break that comes before
/// any text ends it with nothing to show, unless the cursor sits on a blank
/// line with nothing after it; then the first non-blank line is used, with its
/// indentation removed.
///
/// In [`LineMode::Multi`] lines after the first are checked against the
/// indentation of the cursor's block, the *scope*. The scope is the
/// indentation of the cursor's line; when that line opens a block, or is blank
/// and the previous non-blank line opens one, it is one column deeper than the
/// opening line. A line (other than the first) ends the completion when:
///
/// * it is indented less than the scope. If it is at the opening line's
///   indentation and starts with a closer (`}`, `)`, `]`, or `end`, `fi`,
///   `done`, `esac` where the language uses them), it closes the block that
///   was opened: it is kept and the completion ends after it, unless it opens
///   a block again (`} else {`), in which case generation goes on;
/// * it starts, unindented and after some text, with a top-level stop word of
///   the language (for example `def ` in Python or `fn ` in Rust);
/// * it is the second consecutive blank line after some text;
/// * once complete, it repeats the first non-blank line after the cursor's
///   line (same trimmed text, same indentation); the first generated line
///   counts too when the cursor's line is blank.
///
/// # Clean-up
///
/// [`Postprocessor::finish`] applies the cut, then (in multi-line mode) drops
/// everything from a line that repeats the first non-blank line after the
/// cursor's line (same trimmed text, same indentation), trims trailing
/// whitespace, and finally removes an end of the completion that repeats the
/// start of the rest of the cursor's line (see [`Postprocessor::finish`]).
#[derive(Debug, Clone)]
pub struct Postprocessor {
    lang: Language,
    mode: LineMode,
    /// Lines indented less than this end a multi-line completion.
    scope_indent: usize,
    /// The indentation of the line that opened the cursor's block, if the
    /// cursor's line or the previous non-blank line opened one.
    opener_indent: Option<usize>,
    /// Whether the cursor's line is blank before the cursor.
    before_blank: bool,
    /// The indentation of the cursor's line.
    before_indent: usize,
    /// The rest of the cursor's line, without its line ending.
    line_after: String,
    /// The first non-blank line after the cursor's line: indentation and
    /// trimmed text.
    next_line: Option<(usize, String)>,
    /// Whether the document uses CRLF line endings.
    crlf: bool,
}

/// What one line of generated text means for a multi-line completion.
enum Verdict {
    /// The line belongs to the completion.
    Continue,
    /// The line cannot be judged until more of it is generated.
    Wait,
    /// The completion ends before this line.
    StopBefore,
    /// The completion ends after this line.
    StopAfter,
}

/// Whether a line starts with a token that closes a block.
enum Closer {
    Yes,
    No,
    /// The line is incomplete and might still become a closer.
    Maybe,
}

impl Postprocessor {
    /// Prepares post-processing for a cursor between `prefix` and `suffix`.
    pub fn new(prefix: &str, suffix: &str, lang: Language, mode: LineMode) -> Self {
        let before = line_before_cursor(prefix);
        let before_blank = is_blank(before);
        let before_indent = indent_width(before);
        let (scope_indent, opener_indent) = if before_blank {
            let earlier = &prefix[..prefix.len() - before.len()];
            match earlier.lines().rev().find(|line| !is_blank(line)) {
                Some(prev) if opens_block(prev, lang) => {
                    let opener = indent_width(prev);
                    (before_indent.max(opener + 1), Some(opener))
                }
                _ => (before_indent, None),
            }
        } else if opens_block(before, lang) {
            (before_indent + 1, Some(before_indent))
        } else {
            (before_indent, None)
        };
        let next_line = suffix.find('\n').and_then(|i| {
            suffix[i + 1..]
                .lines()
                .find(|line| !is_blank(line))
                .map(|line| (indent_width(line), line.trim().to_owned()))
        });
        let first_newline = |text: &str| text.find('\n').map(|i| text[..i].ends_with('\r'));
        let crlf = first_newline(prefix).or_else(|| first_newline(suffix)).unwrap_or(false);
        Postprocessor {
            lang,
            mode,
            scope_indent,
            opener_indent,
            before_blank,
            before_indent,
            line_after: line_after_cursor(suffix).to_owned(),
            next_line,
            crlf,
        }
    }

    /// The line mode this postprocessor was built with.
    pub fn mode(&self) -> LineMode {
        self.mode
    }

    /// Tells whether the completion generated so far is finished.
    ///
    /// Call it after each new token with all the raw text generated so far.
    /// It returns `Some(n)` as soon as the completion is known to be complete;
    /// `n` is the number of bytes of `generated` worth keeping (always a char
    /// boundary, trailing whitespace excluded). It looks only at the last
    /// non-blank line and what follows it, so it costs O(new text) as long as
    /// each call passes an extension of the previous call's text. A stop that
    /// only a line before that window reveals (possible when one call adds
    /// several complete lines) is missed here, but [`Postprocessor::finish`]
    /// scans everything and still applies it.
    pub fn check(&self, generated: &str) -> Option<usize> {
        match self.mode {
            LineMode::Single => self.scan_single(generated),
            LineMode::Multi => {
                let last_newline = generated.rfind('\n')?;
                // Earlier lines were judged by earlier calls; only the last
                // non-blank line before the final one may have become decidable.
                let mut end = last_newline;
                let start = loop {
                    let start = generated[..end].rfind('\n').map_or(0, |i| i + 1);
                    if start == 0 || !is_blank(&generated[start..end]) {
                        break start;
                    }
                    end = start - 1;
                };
                let content_before = !generated[..start].trim_end().is_empty();
                self.scan_multi(generated, start, content_before)
            }
        }
    }

    /// Produces the text to show for the raw `generated` text.
    ///
    /// The steps are: cut where [`Postprocessor::check`] would have stopped;
    /// in single-line mode, drop anything after a line break; in multi-line
    /// mode, cut from the first line that repeats the first non-blank line
    /// after the cursor's line (same trimmed text and indentation); trim
    /// trailing whitespace; then remove an end of the completion that repeats
    /// the start of the rest of the cursor's line. That overlap is removed
    /// only if it consists of closers, or is the whole rest of the line, and
    /// only if it does not close a bracket or quote that the kept text opened
    /// (so `foo(x)` before `)` stays intact while `x)` becomes `x`). Text
    /// before a removed overlap keeps its whitespace, since it now runs into
    /// the suffix. Multi-line results use the document's line endings; a
    /// result with nothing but whitespace is returned as an empty string.
    pub fn finish(&self, generated: &str) -> String {
        let cut = self.scan_full(generated).unwrap_or(generated.len());
        let text = &generated[..cut];
        let text = match self.mode {
            LineMode::Single => self.single_line(text),
            LineMode::Multi => self.drop_repeated_suffix(text),
        };
        let text = self.drop_overlap(text.trim_end());
        if is_blank(text) {
            return String::new();
        }
        match self.mode {
            LineMode::Single => text.to_owned(),
            LineMode::Multi if self.crlf => text.replace("\r\n", "\n").replace('\n', "\r\n"),
            LineMode::Multi => text.replace("\r\n", "\n"),
        }
    }

    /// The exact stop position, scanning the whole text.
    fn scan_full(&self, generated: &str) -> Option<usize> {
        match self.mode {
            LineMode::Single => self.scan_single(generated),
            LineMode::Multi => self.scan_multi(generated, 0, false),
        }
    }

    /// Whether a single-line completion may start on a following line.
    fn tolerates_leading_newline(&self) -> bool {
        self.before_blank && is_blank(&self.line_after)
    }

    fn scan_single(&self, text: &str) -> Option<usize> {
        let first = text.find(|c: char| !c.is_whitespace());
        let lead = &text[..first.unwrap_or(text.len())];
        if lead.contains(['\n', '\r']) && !self.tolerates_leading_newline() {
            return Some(0);
        }
        let first = first?;
        let end = first + text[first..].find(['\n', '\r'])?;
        Some(text[..end].trim_end().len())
    }

    /// Judges the lines of `text` from the line starting at byte `start`;
    /// `content_before` tells whether non-blank text precedes that line.
    fn scan_multi(&self, text: &str, start: usize, mut content_before: bool) -> Option<usize> {
        let mut blank_run = 0;
        let mut line_start = start;
        loop {
            let (line_end, complete) = match text[line_start..].find('\n') {
                Some(i) => (line_start + i, true),
                None => (text.len(), false),
            };
            let raw = &text[line_start..line_end];
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if complete && self.repeats_next_line(line, line_start == 0) {
                return Some(text[..line_start].trim_end().len());
            }
            if line_start == 0 {
                // The first line continues the cursor's line and is not judged.
                content_before |= !is_blank(line);
            } else if is_blank(line) {
                if complete && content_before {
                    blank_run += 1;
                    if blank_run >= 2 {
                        return Some(text[..line_start].trim_end().len());
                    }
                }
            } else {
                blank_run = 0;
                match self.judge(line, complete, content_before) {
                    Verdict::Continue => content_before = true,
                    Verdict::Wait => return None,
                    Verdict::StopBefore => return Some(text[..line_start].trim_end().len()),
                    Verdict::StopAfter => return Some(text[..line_end].trim_end().len()),
                }
            }
            if !complete {
                return None;
            }
            line_start = line_end + 1;
        }
    }

    /// Judges a non-blank line (without its line ending) that is not the first.
    fn judge(&self, line: &str, complete: bool, content_before: bool) -> Verdict {
        let indent = indent_width(line);
        let body = line.trim_start();
        if indent < self.scope_indent {
            if self.opener_indent == Some(indent) {
                match closer_status(body, complete, self.lang) {
                    Closer::Yes if !complete => return Verdict::Wait,
                    Closer::Yes if opens_block(line, self.lang) => return Verdict::Continue,
                    Closer::Yes => return Verdict::StopAfter,
                    Closer::Maybe => return Verdict::Wait,
                    Closer::No => {}
                }
            }
            return Verdict::StopBefore;
        }
        if indent == 0 && content_before && stop_words(self.lang).iter().any(|w| body.starts_with(w)) {
            return Verdict::StopBefore;
        }
        Verdict::Continue
    }

    /// Keeps the single line a single-line completion may show.
    fn single_line<'a>(&self, text: &'a str) -> &'a str {
        let Some(first) = text.find(|c: char| !c.is_whitespace()) else {
            return "";
        };
        let text = match text[..first].rfind(['\n', '\r']) {
            None => text,
            Some(i) if self.tolerates_leading_newline() => text[i + 1..].trim_start(),
            Some(_) => return "",
        };
        text.find(['\n', '\r']).map_or(text, |i| &text[..i])
    }

    /// Cuts a multi-line completion at a line that repeats the suffix.
    fn drop_repeated_suffix<'a>(&self, text: &'a str) -> &'a str {
        let mut line_start = 0;
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if self.repeats_next_line(line, line_start == 0) {
                return &text[..line_start];
            }
            line_start += raw.len() + 1;
        }
        text
    }

    /// Whether a generated line (the first one if `first`) repeats the first
    /// non-blank line after the cursor's line, at the same indentation.
    fn repeats_next_line(&self, line: &str, first: bool) -> bool {
        let Some((target_indent, target)) = &self.next_line else {
            return false;
        };
        let indent = if first {
            // The first line is a whole line only if the cursor's line is blank.
            if !self.before_blank {
                return false;
            }
            self.before_indent + indent_width(line)
        } else {
            indent_width(line)
        };
        indent == *target_indent && !is_blank(line) && line.trim() == target
    }

    /// Removes an end of `text` that the rest of the cursor's line repeats.
    fn drop_overlap<'a>(&self, text: &'a str) -> &'a str {
        let after = self.line_after.trim_end();
        if after.is_empty() {
            return text;
        }
        let ends = after.char_indices().skip(1).map(|(i, _)| i);
        let mut ends: Vec<usize> = ends.chain([after.len()]).collect();
        ends.reverse();
        for len in ends {
            let overlap = &after[..len];
            if !text.ends_with(overlap) {
                continue;
            }
            let closers_only = overlap.chars().all(|c| c.is_whitespace() || CLOSERS.contains(&c));
            if !closers_only && len != after.len() {
                continue;
            }
            let kept = &text[..text.len() - len];
            if overlap_is_redundant(kept, overlap) {
                return kept;
            }
        }
        text
    }
}

/// Whether `overlap`, following `kept`, closes nothing that `kept` opened.
fn overlap_is_redundant(kept: &str, overlap: &str) -> bool {
    // Each open bracket remembers whether it came from the kept text.
    let mut stack: Vec<(char, bool)> = Vec::new();
    let chars = kept.chars().map(|c| (c, true));
    for (c, from_kept) in chars.chain(overlap.chars().map(|c| (c, false))) {
        match c {
            '(' | '[' | '{' => stack.push((c, from_kept)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.last() {
                    Some(&(top, opened_by_kept)) if top == open => {
                        if opened_by_kept && !from_kept {
                            return false;
                        }
                        stack.pop();
                    }
                    // An unmatched closer closes something outside the text.
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // A quote in the overlap is redundant only if the kept text has no
    // string of that kind left open.
    ['"', '\'', '`'].into_iter().all(|q| !overlap.contains(q) || kept.matches(q).count() % 2 == 0)
}

/// Whether `body` (a trimmed line) starts with a token that closes a block.
fn closer_status(body: &str, complete: bool, lang: Language) -> Closer {
    if body.starts_with(['}', ')', ']']) {
        return Closer::Yes;
    }
    let keywords: &[&str] = match lang {
        Language::Ruby | Language::Lua => &["end"],
        Language::Shell => &["fi", "done", "esac"],
        _ => &[],
    };
    let mut status = Closer::No;
    for keyword in keywords {
        if let Some(rest) = body.strip_prefix(keyword) {
            match rest.chars().next() {
                Some(c) if is_ident_char(c) => {}
                Some(_) => return Closer::Yes,
                None if complete => return Closer::Yes,
                None => status = Closer::Maybe,
            }
        } else if !complete && keyword.starts_with(body) {
            status = Closer::Maybe;
        }
    }
    status
}

/// Words that start a new top-level item; a line starting with one at column
/// zero ends a multi-line completion.
fn stop_words(lang: Language) -> &'static [&'static str] {
    match lang {
        Language::Python => &["def ", "async def ", "class ", "if __name__", "@"],
        Language::Rust => &[
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "async fn ",
            "pub async fn ",
            "impl ",
            "impl<",
            "mod ",
            "pub mod ",
            "#[",
            "///",
            "struct ",
            "pub struct ",
            "enum ",
            "pub enum ",
            "trait ",
            "pub trait ",
        ],
        Language::JavaScript => &["function ", "async function ", "export ", "class "],
        Language::TypeScript | Language::Tsx => &["function ", "async function ", "export ", "class ", "interface "],
        Language::Go => &["func ", "type "],
        Language::Java => &["public ", "private ", "protected ", "class ", "import "],
        Language::C | Language::Cpp => &["#include", "#define", "int main"],
        Language::CSharp => &["public ", "private ", "internal ", "namespace ", "using "],
        Language::Ruby => &["def ", "class ", "module "],
        Language::Php => &["function ", "class "],
        Language::Lua => &["function ", "local function "],
        Language::Shell => &["function "],
        Language::Other => &[],
    }
}

/// Whether a line, ignoring trailing whitespace, ends with a block opener.
fn opens_block(line: &str, lang: Language) -> bool {
    let line = line.trim_end();
    line.ends_with(['{', '(', '[', '='])
        || line.ends_with("=>")
        || (lang == Language::Python && line.ends_with(':'))
        || ends_with_word(line, "do")
        || ends_with_word(line, "then")
}

fn ends_with_word(line: &str, word: &str) -> bool {
    line.strip_suffix(word).is_some_and(|rest| !rest.ends_with(is_ident_char))
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The text of the cursor's line before the cursor.
fn line_before_cursor(prefix: &str) -> &str {
    prefix.rfind('\n').map_or(prefix, |i| &prefix[i + 1..])
}

/// The text of the cursor's line after the cursor, without the line ending.
fn line_after_cursor(suffix: &str) -> &str {
    let line = suffix.find('\n').map_or(suffix, |i| &suffix[..i]);
    line.strip_suffix('\r').unwrap_or(line)
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// The width of a line's leading spaces and tabs.
fn indent_width(line: &str) -> usize {
    line.chars()
        .map_while(|c| match c {
            ' ' => Some(1),
            '\t' => Some(TAB_WIDTH),
            _ => None,
        })
        .sum()
}
