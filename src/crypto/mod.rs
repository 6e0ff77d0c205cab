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

/// Constant-time equality (stub until the crypto branch lands).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
