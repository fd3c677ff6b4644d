//! Context for the repo-level benchmark from the editor's own context
//! engine (`weft_lsp::context`).
//!
//! Every task gets a fresh engine: the repository is indexed from disk, the
//! task's file is opened with the removed text missing (the file on disk
//! still has it; the open document takes its place in the index), and
//! context is retrieved at the cursor. A fresh engine per task keeps results
//! independent of task order and concurrency: there are no "recent files"
//! left over from earlier tasks. Indexing one of the benchmark's packages
//! takes a few tens of milliseconds, small beside a completion.

use std::ops::Range;

use weft_inference::prompt::ContextSnippet;
use weft_lsp::context::{ContextConfig, ContextEngine, ContextQuery};

use super::task::{ContextMode, Workspace};

/// Bytes per token of code, to turn the prompt's token windows into the
/// byte window the engine must not repeat.
const BYTES_PER_TOKEN: usize = 3;

/// Context retrieval in one of the engine's modes.
#[derive(Clone, Debug)]
pub struct ContextSource {
    config: ContextConfig,
    /// The prompt's prefix and suffix budgets, in tokens.
    prefix_tokens: usize,
    suffix_tokens: usize,
}

/// What one retrieval found.
pub struct Found {
    pub snippets: Vec<ContextSnippet>,
    pub index_ready: bool,
}

impl ContextSource {
    /// The engine as the editor runs it for `mode`; `None` for
    /// [`ContextMode::None`].
    pub fn for_mode(mode: ContextMode, prefix_tokens: usize, suffix_tokens: usize) -> Option<ContextSource> {
        let cross_file = match mode {
            ContextMode::None => return None,
            ContextMode::InFile => false,
            ContextMode::CrossFile => true,
        };
        let config = ContextConfig { cross_file, ..ContextConfig::default() };
        Some(ContextSource { config, prefix_tokens, suffix_tokens })
    }

    /// Snippets for the cursor between `prefix` and `suffix` of the file at
    /// the workspace-relative `path`.
    pub fn snippets(&self, workspace: &Workspace, path: &str, prefix: &str, suffix: &str) -> Found {
        let engine = ContextEngine::new(self.config.clone());
        engine.set_roots_blocking(vec![workspace.root.clone()]);
        let file = workspace.root.join(path);
        let text = format!("{prefix}{suffix}");
        engine.open(&file, "python", &text);
        let query = ContextQuery { path: &file, cursor: prefix.len(), window: self.window(&text, prefix.len()) };
        let retrieval = engine.retrieve(&query);
        Found {
            snippets: retrieval.snippets.into_iter().map(|s| ContextSnippet { path: s.path, text: s.text }).collect(),
            // Without cross-file sources nothing is indexed, and nothing needs to be.
            index_ready: retrieval.index_ready || !self.config.cross_file,
        }
    }

    /// The bytes of the document the prompt shows, approximately: the
    /// prompt builder cuts its windows in tokens, at line starts.
    fn window(&self, text: &str, cursor: usize) -> Range<usize> {
        let mut start = cursor.saturating_sub(self.prefix_tokens * BYTES_PER_TOKEN);
        if start > 0 {
            start = text[start..cursor].find('\n').map_or(cursor, |i| start + i + 1);
        }
        let mut end = (cursor + self.suffix_tokens * BYTES_PER_TOKEN).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        start..end
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::eval::repo::{RepoOptions, tasks};

    #[test]
    fn cross_file_context_shows_definitions_from_other_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/eval/repo-mini");
        let tasks = tasks(&root, RepoOptions { tasks_per_repo: 100, seed: 42 }).unwrap();
        let task = tasks.iter().find(|t| t.ground_truth.contains("units.feet")).unwrap();
        let workspace: Arc<Workspace> = task.workspace.clone().unwrap();
        let path = task.path.as_deref().unwrap();

        let cross = ContextSource::for_mode(ContextMode::CrossFile, 1024, 128).unwrap();
        let found = cross.snippets(&workspace, path, &task.prefix, &task.suffix);
        assert!(found.index_ready);
        let paths: Vec<&str> = found.snippets.iter().map(|s| s.path.as_str()).collect();
        // The hole removed the only use of `units`; the definitions used
        // nearby (`Point`, `distance`) come from geometry.py.
        assert!(paths.iter().any(|p| p.ends_with("geometry.py")), "{paths:?}");

        let local = ContextSource::for_mode(ContextMode::InFile, 1024, 128).unwrap();
        let found = local.snippets(&workspace, path, &task.prefix, &task.suffix);
        assert!(found.index_ready);
        assert!(found.snippets.iter().all(|s| s.path.ends_with("path.py")), "{:?}", found.snippets);
        assert!(ContextSource::for_mode(ContextMode::None, 1024, 128).is_none());
    }

    #[test]
    fn the_window_starts_at_a_line_start_and_ends_on_a_char_boundary() {
        let source = ContextSource::for_mode(ContextMode::CrossFile, 2, 1).unwrap();
        let text = "aaaa\nbbbb\ncccc\né";
        assert_eq!(source.window(text, 4), 0..7);
        // The end falls inside `é` and moves back to its start.
        assert_eq!(source.window(text, 13), 10..15);
    }
}
