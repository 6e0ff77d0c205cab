//! Transforms and key material: PRF and prf+, SKEYSEED and SK_*, CHILD_SA KEYMAT,
//! Diffie-Hellman, SK payload protection, randomness. Secrets are wrapped in `Zeroizing`.

pub mod dh;
pub mod keys;
pub mod prf;
pub mod rng;
pub mod sk;

pub use dh::{DhGroup, DhPrivate};
pub use keys::{IkeKeys, child_keymat, derive_ike_keys, rekey_skeyseed, skeyseed};
pub use prf::PrfAlg;
pub use rng::{Rng, SystemRng, TestRng};
pub use sk::{EncrAlg, IntegAlg, SkKeys};

/// Compares two byte strings in time that depends only on their lengths, not their contents
/// (for AUTH payloads, PSK-derived values, ICVs). Unequal lengths compare unequal at once: lengths
/// are public.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // OR together every byte difference so that the loop never exits early; black_box keeps the
    // optimiser from turning the fold back into a short-circuit comparison.
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Secret bytes, wiped on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer's public DH value is malformed or out of range (1 < y < p-1 for MODP,
    /// on the curve for ECP, right length for X25519).
    #[error("invalid peer public value")]
    InvalidPublicValue,
    /// Decryption failed or the ICV did not verify (never say which: it is an oracle).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    #[error("bad padding or length")]
    BadLength,
    #[error("unsupported transform")]
    Unsupported,
    #[error("random generator failed")]
    Random,
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_contents_and_lengths() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"bbc"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        // Every single-bit difference in any position is seen.
        let a = [0x5au8; 40];
        for i in 0..a.len() {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!ct_eq(&a, &b), "byte {i} bit {bit}");
            }
        }
    }
}
