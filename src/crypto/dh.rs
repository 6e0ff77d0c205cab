//! Diffie-Hellman: MODP-2048 (group 14, constant-time with crypto-bigint, 256-bit exponents),
//! ECP-256 (group 19, ring) and Curve25519 (group 31, ring).
//!
//! Public values are in IKEv2 encoding: MODP big-endian padded to 256 bytes; ECP-256 is x | y
//! (64 bytes, no 0x04 prefix, RFC 5903); Curve25519 is the 32-byte u-coordinate (RFC 8031).
//! Shared secrets: MODP g^xy padded to 256 bytes; ECP-256 the x coordinate; X25519 32 bytes.

use super::{Error, Rng, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhGroup {
    Modp2048,
    Ecp256,
    Curve25519,
}

impl DhGroup {
    pub fn from_id(id: u16) -> Option<DhGroup> {
        todo!()
    }
    pub fn id(self) -> u16 {
        todo!()
    }
    /// Length of a public value on the wire.
    pub fn public_len(self) -> usize {
        todo!()
    }
}

/// A private key for one exchange.
pub struct DhPrivate {
    // filled in by the implementation
}

impl DhPrivate {
    /// Generates a key pair; returns the private part and the public value to put in KE.
    /// MODP exponents come from `rng`; ring's groups use ring's own generator (its RNG trait is
    /// sealed).
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<(DhPrivate, Vec<u8>), Error> {
        todo!()
    }
    pub fn group(&self) -> DhGroup {
        todo!()
    }
    /// Computes the shared secret; checks the peer value (length, range, point on curve,
    /// non-zero X25519 result).
    pub fn agree(self, peer_public: &[u8]) -> Result<Secret, Error> {
        todo!()
    }
}
