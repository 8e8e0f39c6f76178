//! Device bearer tokens: minted with `random_token()`, stored only as a sha256 hash, compared in
//! constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest bearer worth hashing; minted tokens are 43 characters.
const MAX_TOKEN_LEN: usize = 512;

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// The stored form of a bearer: lowercase hex sha256.
pub(crate) fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// True when `presented` hashes to `stored_hash`, compared in constant time.
pub(crate) fn token_matches(presented: &str, stored_hash: &str) -> bool {
    if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
        return false;
    }
    bool::from(hash_token(presented).as_bytes().ct_eq(stored_hash.as_bytes()))
}

/// A fresh bearer and its hash.
pub(crate) fn mint() -> (String, String) {
    let bearer = pincer_core::random_token();
    let hash = hash_token(&bearer);
    (bearer, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_compare_only_on_the_exact_bearer() {
        // sha256("abc"), FIPS 180-2.
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let (bearer, hash) = mint();
        assert_eq!(bearer.len(), 43);
        assert!(token_matches(&bearer, &hash));
        assert!(!token_matches(&bearer[1..], &hash));
        assert!(!token_matches("", &hash));
        assert!(!token_matches(&"x".repeat(10_000), &hash));
        assert!(!token_matches(&bearer, &hash[..10]));
    }
}
