//! Opaque bearer tokens: 256 random bits from the OS CSPRNG, handed to the
//! client once and stored only as their SHA-256 hash.

use sha2::{Digest, Sha256};

/// Every token starts with this, so that a leaked one is easy to spot.
const PREFIX: &str = "wft_";

/// A freshly minted token and the hash to store.
pub struct NewToken {
    pub token: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> anyhow::Result<NewToken> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|err| anyhow::anyhow!("OS random number generator failed: {err}"))?;
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash(&token);
    Ok(NewToken { token, hash })
}

/// The stored form of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Fills `buf` from the OS CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> anyhow::Result<()> {
    getrandom::getrandom(buf).map_err(|err| anyhow::anyhow!("OS random number generator failed: {err}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_distinct_and_hashed() {
        let a = super::generate().unwrap();
        let b = super::generate().unwrap();
        assert_eq!(a.token.len(), 4 + 64);
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, super::hash(&a.token));
        assert_eq!(a.hash.len(), 32);
    }
}
