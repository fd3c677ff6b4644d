//! TOTP two-factor codes (RFC 6238 over RFC 4226 HOTP with HMAC-SHA1, six
//! digits, 30-second steps), the algorithm every authenticator app speaks.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Accepts codes one step early or late, for clock skew.
const SKEW_STEPS: i64 = 1;

/// A new 160-bit secret (the size RFC 4226 recommends).
pub fn generate_secret() -> anyhow::Result<Vec<u8>> {
    let mut secret = vec![0u8; 20];
    super::token::random_bytes(&mut secret)?;
    Ok(secret)
}

/// RFC 4226 HOTP value with `digits` digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary =
        u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The six-digit code of a time step, as the user would type it.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    format!("{:06}", hotp(secret, step as u64, DIGITS))
}

/// Checks `code` against the steps around `unix_secs`. Returns the matching
/// step, which must be later than `last_step` (a code works once).
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, last_step: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| constant_time_eq(code_at_step(secret, *step).as_bytes(), code.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The `otpauth://` URL that authenticator apps read from a QR code.
pub fn otpauth_url(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(issuer),
        percent_encode(account),
        base32(secret),
        percent_encode(issuer),
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (eight digits).
    #[test]
    fn rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        let cases = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for (time, expected) in cases {
            assert_eq!(hotp(secret, step_of(time) as u64, 8), expected, "T={time}");
        }
    }

    #[test]
    fn verify_allows_skew_and_refuses_replay() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000;
        let code = code_at_step(secret, step_of(now) - 1);
        let step = verify(secret, &code, now, None).unwrap();
        assert_eq!(step, step_of(now) - 1);
        assert_eq!(verify(secret, &code, now, Some(step)), None);
        assert_eq!(verify(secret, &code, now + 3 * STEP_SECS, None), None);
        assert_eq!(verify(secret, "12345", now, None), None);
        assert_eq!(verify(secret, "abcdef", now, None), None);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn otpauth_url_escapes_the_account() {
        let url = otpauth_url("Weft", "a+b@example.com", b"foobar");
        assert_eq!(
            url,
            "otpauth://totp/Weft:a%2Bb%40example.com?secret=MZXW6YTBOI&issuer=Weft&algorithm=SHA1&digits=6&period=30"
        );
    }
}
