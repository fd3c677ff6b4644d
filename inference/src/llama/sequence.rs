//! The KV-cache work of local chat: one sequence (id 0) of a llama.cpp
//! context and the tokens in it. (The completion engine keeps several
//! sequences and batches them: [`super::scheduler`].) The longest
//! common prefix with the previous prompt is kept, the rest is prefilled in
//! chunks (a cancel is noticed between chunks), and generation decodes one
//! token at a time. A failed decode clears the cache: its state is unknown.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use tokio_util::sync::CancellationToken;

use crate::prompt::TokenId;

/// Why a step did not run.
pub(crate) enum StepError {
    Cancelled,
    Backend(String),
}

/// Brings the KV cache (`cached` mirrors it) to `tokens` and leaves the
/// logits of the last token ready. Returns how many tokens were reused.
pub(crate) fn prefill(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    cached: &mut Vec<TokenId>,
    chunk: usize,
    tokens: &[TokenId],
    cancel: &CancellationToken,
) -> Result<usize, StepError> {
    let common = cached.iter().zip(tokens).take_while(|(a, b)| a == b).count();
    // The last prompt token is always evaluated again: its logits are needed
    // and are not kept between requests.
    let reuse = common.min(tokens.len().saturating_sub(1));
    ctx.clear_kv_cache_seq(Some(0), Some(reuse as u32), None).map_err(|e| StepError::Backend(e.to_string()))?;
    cached.truncate(reuse);
    let mut pos = reuse;
    while pos < tokens.len() {
        if cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let end = (pos + chunk).min(tokens.len());
        batch.clear();
        for (i, &token) in tokens[pos..end].iter().enumerate() {
            let at = pos + i;
            batch
                .add(LlamaToken(token), at as i32, &[0], at + 1 == tokens.len())
                .map_err(|e| StepError::Backend(e.to_string()))?;
        }
        decode(ctx, batch, cached)?;
        // Only after a successful decode are these tokens in the cache.
        cached.extend_from_slice(&tokens[pos..end]);
        pos = end;
    }
    Ok(reuse)
}

/// Decodes one generated token after the cached ones.
pub(crate) fn decode_one(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    cached: &mut Vec<TokenId>,
    token: TokenId,
) -> Result<(), StepError> {
    batch.clear();
    batch.add(LlamaToken(token), cached.len() as i32, &[0], true).map_err(|e| StepError::Backend(e.to_string()))?;
    decode(ctx, batch, cached)?;
    cached.push(token);
    Ok(())
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch<'_>, cached: &mut Vec<TokenId>) -> Result<(), StepError> {
    if let Err(err) = ctx.decode(batch) {
        ctx.clear_kv_cache();
        cached.clear();
        return Err(StepError::Backend(err.to_string()));
    }
    Ok(())
}
