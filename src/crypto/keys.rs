//! SKEYSEED, SK_d/ai/ar/ei/er/pi/pr (RFC 7296 2.14), rekeyed SKEYSEED (2.18), KEYMAT (2.17).

use super::{PrfAlg, Secret};

/// The seven IKE SA keys. For AEAD ciphers `sk_ai`/`sk_ar` are empty and `sk_ei`/`sk_er` include
/// the salt (RFC 5282).
#[derive(Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

/// SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Secret {
    todo!()
}

/// SKEYSEED for a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr).
pub fn rekey_skeyseed(prf: PrfAlg, old_sk_d: &[u8], g_ir: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    todo!()
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
/// `encr_key_len` includes any salt; `integ_key_len` is 0 for AEAD.
pub fn derive_ike_keys(
    prf: PrfAlg,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_key_len: usize,
    integ_key_len: usize,
) -> IkeKeys {
    todo!()
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), `len` bytes.
pub fn child_keymat(
    prf: PrfAlg,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Secret {
    todo!()
}
