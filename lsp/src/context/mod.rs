//! The multi-file context engine: what, besides the text around the cursor,
//! goes into a completion prompt.
//!
//! The engine keeps a workspace index of definitions and imports, read off
//! tree-sitter syntax trees ([`symbols`]), built in the background and kept
//! current by incremental reparses of open documents. At a cursor it
//! retrieves, each source within its own share of a byte budget:
//!
//! - definitions of the identifiers used near the cursor, resolved through
//!   the file's imports first and by name second;
//! - the outline of an imported module whose member is being typed;
//! - the headers of the scopes around the cursor that the prefix window no
//!   longer shows;
//! - windows of recently edited or viewed files similar to the lines
//!   before the cursor (Jaccard over identifier sets).
//!
//! The result is plain data ([`Snippet`]s, with where each came from and
//! why): this crate knows no tokenizer, so the exact token budget is
//! enforced by the prompt builder of the inference crate, which drops whole
//! snippets that do not fit. Snippets are ordered by source, path and line,
//! not by score, so that consecutive prompts share their beginning and the
//! model's KV cache can be reused while the user types; for the same reason
//! a retrieval near the previous one in the same document, with no other
//! file changed since, returns the same snippets
//! ([`ContextConfig::sticky_lines`]).

mod engine;
mod index;
mod lang;
mod parsed;
pub mod protocol;
mod render;
mod resolve;
mod retrieve;
mod similar;
mod symbols;
mod uses;
mod walk;

use serde::Serialize;

pub use engine::{ContextEngine, ContextQuery, FileEvent, IndexStatus};
pub use index::{Index, IndexedFile, Origin};
pub use lang::Lang;
pub use parsed::{ParsedFile, parse};
pub use symbols::{Definition, Extra, FileSymbols, Import, ImportedName, Indent, SymbolKind};
pub use walk::{read_source, source_files};

/// Settings of the context engine.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextConfig {
    /// Whether sources from other files are used; off, only the current
    /// file's own definitions and scopes are (for ablations).
    pub cross_file: bool,
    /// The bytes of context retrieved at most, shared among the sources.
    pub max_bytes: usize,
    /// Files larger than this are not indexed.
    pub max_file_bytes: u64,
    /// The lowest Jaccard similarity at which a window is worth showing.
    pub min_similarity: f32,
    /// Recently edited or viewed files kept for similar snippets.
    pub recent_files: usize,
    /// While the cursor stays within this many lines of where a document's
    /// context was last retrieved, and no other file changes, retrieval
    /// returns the same snippets (0: retrieve afresh every time). The
    /// snippets come first in the prompt, so a change among them makes the
    /// model read the whole prompt again (on a CPU, a 1,200-token prompt
    /// takes seconds); typing in one place keeps them and pays only for the
    /// new characters.
    pub sticky_lines: usize,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            cross_file: true,
            // About 512 tokens of code, the default context budget.
            max_bytes: 1600,
            max_file_bytes: 1 << 20,
            min_similarity: 0.3,
            recent_files: 10,
            sticky_lines: 12,
        }
    }
}

/// Where a snippet came from. The order is the order in the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnippetSource {
    /// The definition of an identifier used near the cursor.
    Definition,
    /// The outline of an imported module whose member is being typed.
    Module,
    /// The headers of the scopes around the cursor.
    Scope,
    /// A window of a recent file similar to the lines before the cursor.
    Similar,
}

impl SnippetSource {
    /// The share of the byte budget this source may use, in percent.
    fn quota_percent(self) -> usize {
        match self {
            SnippetSource::Definition => 50,
            SnippetSource::Module => 20,
            SnippetSource::Scope => 10,
            SnippetSource::Similar => 20,
        }
    }
}

/// One piece of extra context, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snippet {
    /// The path shown to the model, relative to the workspace root.
    pub path: String,
    pub text: String,
    pub source: SnippetSource,
    /// The symbol it defines, if any.
    pub symbol: Option<String>,
    /// One-based first and last line in the file it comes from.
    pub first_line: u32,
    pub last_line: u32,
    /// Why it was chosen, for `weft prompt --json`.
    pub reason: String,
    /// Its rank among its source's candidates (similarity for windows).
    pub score: f32,
}

/// Time spent on one source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceTiming {
    pub source: SnippetSource,
    pub micros: u64,
    /// Candidates considered before the budget and deduplication.
    pub candidates: usize,
}

/// The result of one retrieval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Retrieval {
    pub snippets: Vec<Snippet>,
    pub timings: Vec<SourceTiming>,
    pub micros: u64,
    /// Whether the workspace index was complete; until it is, only the
    /// current file and recent files are used.
    pub index_ready: bool,
    pub indexed_files: usize,
    /// Whether these are an earlier retrieval's snippets, kept because the
    /// cursor stayed near it ([`ContextConfig::sticky_lines`]).
    pub sticky: bool,
}

#[cfg(test)]
mod tests;
