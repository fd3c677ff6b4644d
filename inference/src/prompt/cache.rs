//! Token ids of text pieces, kept from one prompt to the next.
//!
//! While the user types, consecutive prompts hold nearly the same text:
//! the same prefix window but for the cursor's line, the same suffix, the
//! same context snippets. Text is cut where the tokenizer allows
//! ([`super::cut`]), and each piece's ids are looked up by its text, so a
//! keystroke tokenizes little more than the line it changed. The ids are
//! exactly those of tokenizing the text whole: a tokenizer that cannot be
//! cut is cached by whole texts only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use super::{TokenId, Tokenize, cut};

/// Pieces kept by default: a few hundred cursor positions' worth of
/// windows and snippets, a few MB.
pub const DEFAULT_CAPACITY: usize = 32_768;

/// Token ids by text, least recently used pieces evicted first.
pub struct TokenCache {
    inner: RefCell<Entries>,
}

struct Entries {
    by_text: HashMap<Box<str>, Entry>,
    clock: u64,
    capacity: usize,
    stats: CacheStats,
}

struct Entry {
    tokens: Box<[TokenId]>,
    used: u64,
}

/// How much text the cache answered and how much it tokenized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hit_bytes: u64,
    pub miss_bytes: u64,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::with_capacity(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    pub fn with_capacity(capacity: usize) -> TokenCache {
        TokenCache {
            inner: RefCell::new(Entries {
                by_text: HashMap::new(),
                clock: 0,
                capacity: capacity.max(2),
                stats: CacheStats::default(),
            }),
        }
    }

    /// `tokenizer` with this cache in front of it.
    pub fn tokenizer<'a>(&'a self, tokenizer: &'a dyn Tokenize) -> CachedTokenizer<'a> {
        CachedTokenizer { tokenizer, cache: self }
    }

    pub fn stats(&self) -> CacheStats {
        self.inner.borrow().stats
    }

    pub fn len(&self) -> usize {
        self.inner.borrow().by_text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.inner.borrow_mut().by_text.clear();
    }

    /// The ids of adjacent `pieces` of `text`: from the cache where it has
    /// them, the others from `tokenizer`, each run of missing pieces in one
    /// call.
    fn pieces_of(&self, text: &str, pieces: &[Range<usize>], tokenizer: &dyn Tokenize) -> Vec<Vec<TokenId>> {
        let mut found: Vec<Option<Vec<TokenId>>> = {
            let mut entries = self.inner.borrow_mut();
            pieces.iter().map(|range| entries.lookup(&text[range.clone()])).collect()
        };
        let mut i = 0;
        while i < pieces.len() {
            if found[i].is_some() {
                i += 1;
                continue;
            }
            let run = i;
            while i < pieces.len() && found[i].is_none() {
                i += 1;
            }
            let ids = tokenizer.tokenize_pieces(text, &pieces[run..i]);
            let mut entries = self.inner.borrow_mut();
            for (k, piece) in ids.into_iter().enumerate().take(i - run) {
                entries.insert(&text[pieces[run + k].clone()], &piece);
                found[run + k] = Some(piece);
            }
        }
        found.into_iter().map(Option::unwrap_or_default).collect()
    }
}

impl Entries {
    fn lookup(&mut self, text: &str) -> Option<Vec<TokenId>> {
        self.clock += 1;
        let clock = self.clock;
        match self.by_text.get_mut(text) {
            Some(entry) => {
                entry.used = clock;
                self.stats.hit_bytes += text.len() as u64;
                Some(entry.tokens.to_vec())
            }
            None => {
                self.stats.miss_bytes += text.len() as u64;
                None
            }
        }
    }

    fn insert(&mut self, text: &str, tokens: &[TokenId]) {
        if self.by_text.len() >= self.capacity {
            self.evict_older_half();
        }
        self.clock += 1;
        self.by_text.insert(text.into(), Entry { tokens: tokens.into(), used: self.clock });
    }

    fn evict_older_half(&mut self) {
        let mut used: Vec<u64> = self.by_text.values().map(|e| e.used).collect();
        let middle = used.len() / 2;
        let (_, &mut median, _) = used.select_nth_unstable(middle);
        self.by_text.retain(|_, e| e.used >= median);
    }
}

/// A tokenizer that answers from a [`TokenCache`] what it has seen before.
pub struct CachedTokenizer<'a> {
    tokenizer: &'a dyn Tokenize,
    cache: &'a TokenCache,
}

impl Tokenize for CachedTokenizer<'_> {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut pieces: Vec<Range<usize>> = Vec::new();
        if self.tokenizer.can_cut() {
            pieces.extend(cut::pieces(text));
        } else {
            pieces.push(0..text.len());
        }
        self.cache.pieces_of(text, &pieces, self.tokenizer).concat()
    }

    fn can_cut(&self) -> bool {
        self.tokenizer.can_cut()
    }

    fn tokenize_pieces(&self, text: &str, pieces: &[Range<usize>]) -> Vec<Vec<TokenId>> {
        if self.tokenizer.can_cut() {
            self.cache.pieces_of(text, pieces, self.tokenizer)
        } else {
            pieces.iter().map(|range| self.tokenize(&text[range.clone()])).collect()
        }
    }
}
