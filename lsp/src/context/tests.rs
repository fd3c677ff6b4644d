//! Tests of the context engine: symbols per language, retrieval on fixture
//! workspaces, incremental reparsing against fresh parses.

mod incremental;
mod retrieval;
mod symbols;

use std::path::{Path, PathBuf};

/// A fixture workspace: files separated by `//- /path` lines, one of them
/// holding the cursor marker `$0`.
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    /// The file with the cursor, its text without the marker, and the
    /// cursor's byte offset.
    pub cursor_file: Option<(PathBuf, String, usize)>,
}

impl Fixture {
    pub fn new(fixture: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut cursor_file = None;
        for (path, text) in files(fixture) {
            let full = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().expect("files have parents")).expect("create directories");
            let (text, cursor) = match text.find("$0") {
                Some(at) => (text.replacen("$0", "", 1), Some(at)),
                None => (text, None),
            };
            std::fs::write(&full, &text).expect("write fixture file");
            if let Some(at) = cursor {
                cursor_file = Some((full, text, at));
            }
        }
        Fixture { dir, cursor_file }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Splits a fixture into `(path, text)` pairs.
fn files(fixture: &str) -> Vec<(String, String)> {
    let fixture = trim_indent(fixture);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in fixture.split_inclusive('\n') {
        match line.strip_prefix("//- ") {
            Some(path) => out.push((path.trim().to_owned(), String::new())),
            None => match out.last_mut() {
                Some((_, text)) => text.push_str(line),
                None => assert!(line.trim().is_empty(), "text before the first `//- /path` line"),
            },
        }
    }
    out
}

/// Removes the indentation shared by the non-empty lines of a raw string.
pub(super) fn trim_indent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    text.split_inclusive('\n')
        .map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start_matches(' ') })
        .collect()
}
