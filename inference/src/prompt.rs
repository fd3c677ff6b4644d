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

use crate::family::{FimOrder, PromptFormat};

pub type TokenId = i32;

/// The prefix window's first line moves in steps of this many lines.
pub const LINE_QUANTUM: usize = 32;

/// A tokenizer: the model's own, or a test double.
pub trait Tokenize {
    /// Tokenizes plain text: no BOS, special tokens are not parsed.
    fn tokenize(&self, text: &str) -> Vec<TokenId>;
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
    let (prefix_text, prefix_clipped) = prefix_window(input.prefix, budget.prefix_tokens, tokenizer);
    let prefix = tokenizer.tokenize(prefix_text);
    let mut prompt = Prompt { prefix_tokens: prefix.len(), prefix_clipped_bytes: prefix_clipped, ..Prompt::default() };
    prompt.tokens.extend(special.bos);

    let context = context_tokens(format, special, tokenizer, input, budget.context_tokens)?;
    prompt.context_tokens = context.len();
    prompt.tokens.extend(context);

    if !format.is_fim() {
        prompt.tokens.extend(prefix);
        return Ok(prompt);
    }
    let (suffix_text, suffix_clipped) = suffix_window(input.suffix, budget.suffix_tokens, tokenizer);
    let suffix = tokenizer.tokenize(suffix_text);
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
) -> Result<Vec<TokenId>, PromptError> {
    let mut out = Vec::new();
    let repo_tokens = match (format.repo_token_texts(), special.repo_name, special.file_sep) {
        (Some(_), Some(repo), Some(sep)) => Some((repo, sep)),
        _ => None,
    };
    if input.snippets.is_empty() {
        return Ok(out);
    }
    if let Some((repo, _)) = repo_tokens {
        out.push(repo);
        out.extend(tokenizer.tokenize(&format!("{}\n", input.repo_name.unwrap_or("workspace"))));
    }
    for snippet in input.snippets {
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
    Ok(out)
}

/// The end of `prefix` that fits `budget` tokens, starting at a line start
/// that moves in steps of [`LINE_QUANTUM`] lines. Returns the window and the
/// number of bytes left out before it.
pub fn prefix_window<'a>(prefix: &'a str, budget: usize, tokenizer: &dyn Tokenize) -> (&'a str, usize) {
    let starts = line_starts(prefix);
    // Count tokens line by line from the cursor backwards until the budget
    // is spent. Line-wise counts can differ slightly from the window's own
    // count, so the window is checked again below.
    let mut used = 0;
    let mut first_fitting = starts.len();
    for (i, &start) in starts.iter().enumerate().rev() {
        let end = starts.get(i + 1).copied().unwrap_or(prefix.len());
        used += tokenizer.tokenize(&prefix[start..end]).len();
        if used > budget {
            break;
        }
        first_fitting = i;
    }
    if first_fitting == 0 {
        return (prefix, 0);
    }
    // Round the first line up to a multiple of the quantum; halve the
    // quantum while that would throw away more than half of what fits.
    let fitting = starts.len() - first_fitting;
    let mut quantum = LINE_QUANTUM;
    while quantum > 1 && quantum * 2 > fitting {
        quantum /= 2;
    }
    let mut line = first_fitting.div_ceil(quantum) * quantum;
    loop {
        // The cursor's own line is always kept, clipped by characters if it
        // alone is over budget.
        if line >= starts.len() - 1 {
            let start = starts[starts.len() - 1];
            let tail = clip_front_chars(&prefix[start..], budget * 2);
            return (tail, prefix.len() - tail.len());
        }
        let start = starts[line];
        if tokenizer.tokenize(&prefix[start..]).len() <= budget {
            return (&prefix[start..], start);
        }
        line += quantum;
    }
}

/// The start of `suffix` that fits `budget` tokens, ending at a line end.
pub fn suffix_window<'a>(suffix: &'a str, budget: usize, tokenizer: &dyn Tokenize) -> (&'a str, usize) {
    if budget == 0 {
        return ("", suffix.len());
    }
    let mut used = 0;
    let mut end = 0;
    for line in suffix.split_inclusive('\n') {
        used += tokenizer.tokenize(line).len();
        if used > budget {
            break;
        }
        end += line.len();
    }
    if end == 0 {
        // The rest of the cursor's line alone is over budget.
        let line = suffix.split_inclusive('\n').next().unwrap_or("");
        let head = clip_back_chars(line, budget * 2);
        return (head, suffix.len() - head.len());
    }
    (&suffix[..end], suffix.len() - end)
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1).filter(|&i| i < text.len())).collect()
}

/// The last `max_chars` characters of `text`.
fn clip_front_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().rev().nth(max_chars.saturating_sub(1)) {
        Some((i, _)) if max_chars > 0 => &text[i..],
        _ if max_chars == 0 => "",
        _ => text,
    }
}

/// The first `max_chars` characters of `text`.
fn clip_back_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests;
