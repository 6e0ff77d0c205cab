//! The Encrypted payload (RFC 7296 3.14): AES-CBC with HMAC-SHA2 truncated ICV, or
//! AES-GCM with a 16-byte ICV (RFC 5282).

use super::{Error, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    AesGcm16_128,
    AesGcm16_256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegAlg {
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl EncrAlg {
    /// From transform ID and Key Length attribute (bits).
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        todo!()
    }
    /// (transform ID, key length in bits).
    pub fn id(self) -> (u16, u16) {
        todo!()
    }
    pub fn is_aead(self) -> bool {
        todo!()
    }
    /// Key bytes to take from prf+, salt included for GCM (16/32 + 4).
    pub fn key_len(self) -> usize {
        todo!()
    }
}

impl IntegAlg {
    pub fn from_id(id: u16) -> Option<IntegAlg> {
        todo!()
    }
    pub fn id(self) -> u16 {
        todo!()
    }
    pub fn key_len(self) -> usize {
        todo!()
    }
    pub fn icv_len(self) -> usize {
        todo!()
    }
}

/// Keys for one direction of an IKE SA's SK payloads.
pub struct SkKeys {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub encr_key: Secret,
    pub integ_key: Secret,
}

impl SkKeys {
    /// Length of the SK payload body (IV | ciphertext with padding and pad length | ICV) for a
    /// plaintext of `plain_len` bytes. The caller needs it to write the lengths that the ICV/AAD
    /// cover before sealing.
    pub fn sealed_len(&self, plain_len: usize) -> usize {
        todo!()
    }
    /// IV length in bytes (16 for CBC, 8 for GCM).
    pub fn iv_len(&self) -> usize {
        todo!()
    }
    /// Encrypts and authenticates. `aad` is every message byte before the SK body (IKE header and
    /// SK generic header, lengths final). `iv` must be `iv_len()` fresh random bytes. Appends
    /// exactly `sealed_len(plaintext.len())` bytes to `out`.
    pub fn seal(&self, aad: &[u8], iv: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        todo!()
    }
    /// Verifies (constant time) and decrypts an SK body; returns the inner payload bytes with
    /// padding removed.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Secret, Error> {
        todo!()
    }
}
