//! The decisions of the batched engine, as plain data: which KV-cache slot
//! serves a prompt, and how the tokens of one `decode` call are shared among
//! the requests in flight. The engine ([`super::engine`]) carries them out.

use crate::prompt::TokenId;

/// What the scheduler knows of one KV-cache slot (a llama.cpp sequence).
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    /// Tokens in the slot's KV cache, in order.
    pub tokens: Vec<TokenId>,
    /// When a request last used the slot (a tick count).
    pub last_used: u64,
    /// Whether a request is running in the slot.
    pub busy: bool,
}

/// A slot's history is worth keeping for a prompt when it covers at least
/// this fraction of it; otherwise the prompt goes to the least recently used
/// slot and the matching one (another file, say) keeps its cache.
const MIN_SIMILARITY: f64 = 0.5;

pub(crate) fn common_prefix(a: &[TokenId], b: &[TokenId]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The free slot that serves `prompt`: the one whose history shares the
/// longest prefix with it, when taking it loses little: either nothing of
/// the slot would be removed (it holds a beginning of this very prompt, a
/// cancelled request's, say) or the prefix covers at least half the prompt.
/// Otherwise the least recently used free slot (empty ones count as oldest).
/// `None` when every slot is busy.
pub(crate) fn choose_slot(slots: &[Slot], prompt: &[TokenId]) -> Option<usize> {
    let free = || slots.iter().enumerate().filter(|(_, slot)| !slot.busy);
    let best = free()
        .map(|(i, slot)| (i, common_prefix(&slot.tokens, prompt)))
        // Longest prefix; among equals, the slot with least to remove.
        .max_by_key(|&(i, common)| (common, std::cmp::Reverse(slots[i].tokens.len())));
    match best {
        Some((i, common))
            if common > 0
                && (common == slots[i].tokens.len() || common as f64 >= MIN_SIMILARITY * prompt.len() as f64) =>
        {
            Some(i)
        }
        Some(_) => free().min_by_key(|(_, slot)| (!slot.tokens.is_empty(), slot.last_used)).map(|(i, _)| i),
        None => None,
    }
}

/// What one request in flight needs from the next batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// One generated token to decode.
    Decode,
    /// This many prompt tokens still to prefill.
    Prefill(usize),
}

/// How many tokens each request puts into the next batch of at most
/// `n_batch` tokens. Every decoding request gets its one token first (it
/// waits for nothing else); the prompt tokens are shared out in equal turns
/// among the prefilling requests, starting at `turn` (the engine advances it
/// every batch), so a long prompt cannot hold up a short one. Prompts get
/// the whole rest of the batch even while others generate, as in
/// llama-server: the fewer steps a prompt takes, the sooner all requests
/// decode in lockstep, where batching pays (docs/performance.md).
pub(crate) fn plan(needs: &[Need], n_batch: usize, turn: usize) -> Vec<usize> {
    let n = needs.len();
    let mut take = vec![0; n];
    if n == 0 || n_batch == 0 {
        return take;
    }
    let order: Vec<usize> = (0..n).map(|k| (turn + k) % n).collect();
    let mut left = n_batch;
    for &i in &order {
        if needs[i] == Need::Decode && left > 0 {
            take[i] = 1;
            left -= 1;
        }
    }
    loop {
        let hungry: Vec<usize> =
            order.iter().copied().filter(|&i| matches!(needs[i], Need::Prefill(want) if take[i] < want)).collect();
        if hungry.is_empty() || left == 0 {
            break;
        }
        let share = (left / hungry.len()).max(1);
        for i in hungry {
            let Need::Prefill(want) = needs[i] else { continue };
            let give = share.min(want - take[i]).min(left);
            take[i] += give;
            left -= give;
            if left == 0 {
                break;
            }
        }
    }
    take
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(tokens: &[TokenId], last_used: u64, busy: bool) -> Slot {
        Slot { tokens: tokens.to_vec(), last_used, busy }
    }

    #[test]
    fn the_slot_with_the_longest_common_prefix_serves_the_prompt() {
        let slots = [slot(&[1, 2, 3, 4], 5, false), slot(&[1, 2, 3, 4, 5, 6, 7], 1, false), slot(&[], 0, false)];
        assert_eq!(choose_slot(&slots, &[1, 2, 3, 4, 5, 6, 9]), Some(1));
        // A busy slot is never chosen, however well it matches.
        let busy = [slot(&[1, 2, 3, 4], 5, false), slot(&[1, 2, 3, 4, 5, 6, 7], 1, true)];
        assert_eq!(choose_slot(&busy, &[1, 2, 3, 4, 5, 6, 9]), Some(0));
        // Equal prefixes: the slot with less to remove.
        let equal = [slot(&[1, 2, 3, 8, 8, 8], 9, false), slot(&[1, 2, 3, 9], 1, false)];
        assert_eq!(choose_slot(&equal, &[1, 2, 3, 4]), Some(1));
    }

    #[test]
    fn a_prompt_unlike_every_slot_takes_the_least_recently_used_one() {
        // Another file: a short shared start (BOS, a header) is not worth
        // overwriting the slot that holds the first file.
        let slots = [slot(&[1, 2, 3, 4, 5, 6], 7, false), slot(&[1, 9, 9, 9, 9], 3, false), slot(&[1, 8], 5, false)];
        assert_eq!(choose_slot(&slots, &[1, 7, 7, 7, 7, 7]), Some(1));
        // Empty slots go first.
        let with_empty = [slot(&[1, 2], 0, false), slot(&[], 9, false)];
        assert_eq!(choose_slot(&with_empty, &[5, 6]), Some(1));
        assert_eq!(choose_slot(&[slot(&[1], 0, true)], &[1]), None);
        // A slot holding only a beginning of the prompt loses nothing: it
        // serves however short that beginning is.
        let started = [slot(&[1, 2], 1, false), slot(&[], 0, false)];
        assert_eq!(choose_slot(&started, &[1, 2, 3, 4, 5, 6, 7, 8]), Some(0));
        assert_eq!(choose_slot(&[], &[1]), None);
    }

    #[test]
    fn decoding_requests_always_get_their_token() {
        let needs = [Need::Decode, Need::Prefill(1000), Need::Decode];
        let take = plan(&needs, 128, 0);
        assert_eq!(take[0], 1);
        assert_eq!(take[2], 1);
        // The prompt gets the rest.
        assert_eq!(take[1], 126);
    }

    #[test]
    fn prompts_share_the_batch_in_equal_turns() {
        let needs = [Need::Prefill(1000), Need::Prefill(10), Need::Prefill(1000)];
        let take = plan(&needs, 128, 0);
        assert_eq!(take.iter().sum::<usize>(), 128);
        assert_eq!(take[1], 10);
        assert!(take[0].abs_diff(take[2]) <= 1, "{take:?}");
        // A lone prompt gets the whole batch.
        assert_eq!(plan(&[Need::Prefill(1000)], 128, 3), vec![128]);
        assert_eq!(plan(&[Need::Prefill(5)], 128, 0), vec![5]);
        assert_eq!(plan(&[], 128, 0), Vec::<usize>::new());
    }

    #[test]
    fn turns_rotate_so_no_request_waits_forever() {
        // More decoding requests than the batch holds: each turn starts
        // with the next one, so all of them get a token within a few batches.
        let needs = vec![Need::Decode; 5];
        let mut served = [0usize; 5];
        for turn in 0..5 {
            for (i, take) in plan(&needs, 2, turn).into_iter().enumerate() {
                served[i] += take;
            }
        }
        assert_eq!(served, [2; 5]);
        // A tiny batch shared by prompts: every prompt advances.
        let prompts = vec![Need::Prefill(100); 3];
        let mut got = [0usize; 3];
        for turn in 0..3 {
            for (i, take) in plan(&prompts, 2, turn).into_iter().enumerate() {
                got[i] += take;
            }
        }
        assert_eq!(got, [2; 3]);
    }
}
