//! PRF_HMAC_SHA2_256/384/512 (RFC 4868) and prf+ (RFC 7296 2.13).

use super::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrfAlg {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl PrfAlg {
    /// From the IKEv2 transform ID (PRF_HMAC_SHA2_*), None when unsupported.
    pub fn from_id(id: u16) -> Option<PrfAlg> {
        todo!()
    }
    pub fn id(self) -> u16 {
        todo!()
    }
    /// Output length in bytes (also the preferred key length).
    pub fn output_len(self) -> usize {
        todo!()
    }
    /// prf(key, data).
    pub fn prf(self, key: &[u8], data: &[u8]) -> Secret {
        todo!()
    }
    /// prf+(key, seed) truncated to `len` bytes. `len` is bounded by 255 * output_len.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Secret {
        todo!()
    }
}
