//! Prompt assembly in token ids.
//!
//! FIM special tokens are inserted as ids, never as text: user text is
//! tokenized with special-token parsing off, so a file that contains the
//! string `<fim_prefix>` cannot inject a control token. The token budget is
//! counted with the model's own tokenizer ([`Tokenize`]).
//!
//! Windows are cut at line starts chosen to stay put while the user types:
//! the prefix window's first line moves in steps of [`LINE_QUANTUM`] lines, so
//! consecutive prompts share their beginning and the KV cache can be reused.

use std::ops::Range;

use crate::family::{FimOrder, PromptFormat};

mod cache;
pub mod cut;
mod window;

pub use cache::{CacheStats, CachedTokenizer, TokenCache};
pub use window::{LINE_QUANTUM, prefix_window, suffix_window};

pub type TokenId = i32;

/// A tokenizer: the model's own, or a test double.
pub trait Tokenize {
    /// Tokenizes plain text: no BOS, special tokens are not parsed.
    fn tokenize(&self, text: &str) -> Vec<TokenId>;

    /// Whether text cut at [`cut::cut_points`] tokenizes, piece by piece,
    /// to exactly the ids of the whole text. Prompt assembly then tokenizes
    /// windows in pieces and caches them ([`TokenCache`]).
    fn can_cut(&self) -> bool {
        false
    }

    /// The ids of each of `pieces`: adjacent ranges of `text`, cut at
    /// [`cut::cut_points`]. A tokenizer with a high cost per call (llama.cpp
    /// builds its regexes on every call for some families) tokenizes them
    /// in one call and splits the ids.
    fn tokenize_pieces(&self, text: &str, pieces: &[Range<usize>]) -> Vec<Vec<TokenId>> {
        pieces.iter().map(|range| self.tokenize(&text[range.clone()])).collect()
    }
}

/// The special tokens a prompt format needs, as ids in one vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<TokenId>,
    pub fim_prefix: Option<TokenId>,
    pub fim_suffix: Option<TokenId>,
    pub fim_middle: Option<TokenId>,
    pub repo_name: Option<TokenId>,
    pub file_sep: Option<TokenId>,
}

/// A piece of extra context: another file, a definition, a snippet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextSnippet {
    /// Workspace-relative path shown to the model.
    pub path: String,
    pub text: String,
}

/// What goes into one completion prompt, as text.
#[derive(Clone, Debug, Default)]
pub struct PromptInput<'a> {
    pub prefix: &'a str,
    pub suffix: &'a str,
    /// Workspace-relative path of the file being edited, if known.
    pub path: Option<&'a str>,
    /// Line comment marker of the file's language, for path comments.
    pub line_comment: Option<&'a str>,
    /// Repository name for repo-level formats.
    pub repo_name: Option<&'a str>,
    /// Extra context, most stable first.
    pub snippets: &'a [ContextSnippet],
}

/// Token budgets of the parts of a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptBudget {
    pub prefix_tokens: usize,
    pub suffix_tokens: usize,
    pub context_tokens: usize,
}

impl Default for PromptBudget {
    fn default() -> Self {
        // The suffix is kept short: with PSM every keystroke recomputes it.
        PromptBudget { prefix_tokens: 1024, suffix_tokens: 128, context_tokens: 512 }
    }
}

/// An assembled prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    pub tokens: Vec<TokenId>,
    /// Tokens that came from the prefix, suffix and extra context.
    pub prefix_tokens: usize,
    pub suffix_tokens: usize,
    pub context_tokens: usize,
    /// Tokens each of the input's snippets took, in input order (0 for a
    /// snippet left out); the current file's header is not counted.
    pub snippet_tokens: Vec<usize>,
    /// Bytes of the prefix and suffix text dropped to fit the budget.
    pub prefix_clipped_bytes: usize,
    pub suffix_clipped_bytes: usize,
}

/// Why a prompt could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromptError {
    #[error("prompt format {format} needs the special token {token}, which this vocabulary lacks")]
    MissingToken { format: &'static str, token: &'static str },
}

/// Assembles the prompt of `format` in `order` from `input` within `budget`.
pub fn build(
    format: PromptFormat,
    order: FimOrder,
    special: &SpecialTokens,
    tokenizer: &dyn Tokenize,
    input: &PromptInput<'_>,
    budget: PromptBudget,
) -> Result<Prompt, PromptError> {
    let window::WindowTokens { tokens: prefix, clipped_bytes: prefix_clipped } =
        window::prefix_tokens(input.prefix, budget.prefix_tokens, tokenizer);
    let mut prompt = Prompt { prefix_tokens: prefix.len(), prefix_clipped_bytes: prefix_clipped, ..Prompt::default() };
    prompt.tokens.extend(special.bos);

    let (context, snippet_tokens) = context_tokens(format, special, tokenizer, input, budget.context_tokens)?;
    prompt.context_tokens = context.len();
    prompt.snippet_tokens = snippet_tokens;
    prompt.tokens.extend(context);

    if !format.is_fim() {
        prompt.tokens.extend(prefix);
        return Ok(prompt);
    }
    let window::WindowTokens { tokens: suffix, clipped_bytes: suffix_clipped } =
        window::suffix_tokens(input.suffix, budget.suffix_tokens, tokenizer);
    prompt.suffix_tokens = suffix.len();
    prompt.suffix_clipped_bytes = suffix_clipped;
    let need =
        |id: Option<TokenId>, token: &'static str| id.ok_or(PromptError::MissingToken { format: format.name(), token });
    let pre = need(special.fim_prefix, "fim prefix")?;
    let suf = need(special.fim_suffix, "fim suffix")?;
    let mid = need(special.fim_middle, "fim middle")?;
    let tokens = &mut prompt.tokens;
    match order {
        FimOrder::Psm => {
            tokens.push(pre);
            tokens.extend(prefix);
            tokens.push(suf);
            tokens.extend(suffix);
            tokens.push(mid);
        }
        FimOrder::Spm => {
            // StarCoder's SPM variant: the prefix directly follows the middle
            // token, so the generated text continues it.
            tokens.push(pre);
            tokens.push(suf);
            tokens.extend(suffix);
            tokens.push(mid);
            tokens.extend(prefix);
        }
    }
    Ok(prompt)
}

/// Extra context: repo-level tokens where the format has them, path comments
/// otherwise. Snippets that do not fit the budget are left out whole.
fn context_tokens(
    format: PromptFormat,
    special: &SpecialTokens,
    tokenizer: &dyn Tokenize,
    input: &PromptInput<'_>,
    budget: usize,
) -> Result<(Vec<TokenId>, Vec<usize>), PromptError> {
    let mut out = Vec::new();
    let mut per_snippet = vec![0; input.snippets.len()];
    let repo_tokens = match (format.repo_token_texts(), special.repo_name, special.file_sep) {
        (Some(_), Some(repo), Some(sep)) => Some((repo, sep)),
        _ => None,
    };
    if input.snippets.is_empty() {
        return Ok((out, per_snippet));
    }
    if let Some((repo, _)) = repo_tokens {
        out.push(repo);
        out.extend(tokenizer.tokenize(&format!("{}\n", input.repo_name.unwrap_or("workspace"))));
    }
    for (taken, snippet) in per_snippet.iter_mut().zip(input.snippets) {
        let piece = match repo_tokens {
            Some((_, sep)) => {
                let mut piece = vec![sep];
                piece.extend(tokenizer.tokenize(&format!("{}\n{}\n", snippet.path, snippet.text.trim_end())));
                piece
            }
            None => {
                let comment = input.line_comment.unwrap_or("//");
                tokenizer.tokenize(&format!("{comment} {}\n{}\n\n", snippet.path, snippet.text.trim_end()))
            }
        };
        if out.len() + piece.len() > budget {
            continue;
        }
        *taken = piece.len();
        out.extend(piece);
    }
    // The current file follows the snippets with its own header.
    let header = match (repo_tokens, input.path) {
        (Some((_, sep)), Some(path)) => {
            let mut header = vec![sep];
            header.extend(tokenizer.tokenize(&format!("{path}\n")));
            header
        }
        (None, Some(path)) => tokenizer.tokenize(&format!("{} {path}\n", input.line_comment.unwrap_or("//"))),
        (_, None) => Vec::new(),
    };
    out.extend(header);
    Ok((out, per_snippet))
}

#[cfg(test)]
mod tests;
