//! The Encrypted payload (RFC 7296 3.14): AES-CBC with HMAC-SHA2 truncated ICV, AES-GCM with
//! a 16-byte ICV (RFC 5282), or ChaCha20-Poly1305 (RFC 7634, which takes GCM's layout: 8-byte
//! IV, nonce = 4-byte salt from the keying material | IV, the same AAD, a 16-byte tag).
//!
//! The body of an SK payload is IV | ciphertext | ICV, and the plaintext inside is
//! inner payloads | padding | pad length (one byte). We pad CBC to the 16-byte block with zeros
//! and send no padding with GCM; on receipt any padding the peer chose is accepted.

use super::prf::hmac_parts;
use super::{Error, Secret, ct_eq};
use aes::{Aes128, Aes256};
use cbc::cipher::consts::U16;
use cbc::cipher::{
    Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit,
    KeyIvInit,
};
use hmac::Hmac;
use ring::aead;
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    AesGcm16_128,
    AesGcm16_256,
    ChaCha20Poly1305,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegAlg {
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

/// ENCR_AES_CBC (RFC 3602 / RFC 7296).
const ENCR_AES_CBC: u16 = 12;
/// ENCR_AES_GCM_16: GCM with a 16-byte ICV (RFC 5282).
const ENCR_AES_GCM_16: u16 = 20;
/// ENCR_CHACHA20_POLY1305 (RFC 7634).
const ENCR_CHACHA20_POLY1305: u16 = 28;
/// AES block size, and the CBC IV length.
const AES_BLOCK: usize = 16;
/// GCM explicit IV length in the SK payload (RFC 5282 section 3.1).
const GCM_IV_LEN: usize = 8;
/// GCM salt length, the last bytes of the key material (RFC 5282 section 7.1).
const GCM_SALT_LEN: usize = 4;
/// GCM ICV length for ENCR_AES_GCM_16.
const GCM_ICV_LEN: usize = 16;

impl EncrAlg {
    /// From transform ID and Key Length attribute (bits).
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        // AES transforms always carry the Key Length attribute (RFC 7296 3.3.5): absent means
        // the proposal is malformed for us, so it is not chosen. ChaCha20-Poly1305 has a fixed
        // key, and RFC 7634 section 2 forbids the attribute: one present is not ours either.
        match (id, key_bits) {
            (ENCR_AES_CBC, Some(128)) => Some(EncrAlg::AesCbc128),
            (ENCR_AES_CBC, Some(256)) => Some(EncrAlg::AesCbc256),
            (ENCR_AES_GCM_16, Some(128)) => Some(EncrAlg::AesGcm16_128),
            (ENCR_AES_GCM_16, Some(256)) => Some(EncrAlg::AesGcm16_256),
            (ENCR_CHACHA20_POLY1305, None) => Some(EncrAlg::ChaCha20Poly1305),
            _ => None,
        }
    }
    /// Whether the transform carries a Key Length attribute on the wire.
    pub fn has_key_length_attr(self) -> bool {
        self != EncrAlg::ChaCha20Poly1305
    }
    /// (transform ID, key length in bits, salt excluded).
    pub fn id(self) -> (u16, u16) {
        match self {
            EncrAlg::AesCbc128 => (ENCR_AES_CBC, 128),
            EncrAlg::AesCbc256 => (ENCR_AES_CBC, 256),
            EncrAlg::AesGcm16_128 => (ENCR_AES_GCM_16, 128),
            EncrAlg::AesGcm16_256 => (ENCR_AES_GCM_16, 256),
            EncrAlg::ChaCha20Poly1305 => (ENCR_CHACHA20_POLY1305, 256),
        }
    }
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 | EncrAlg::ChaCha20Poly1305
        )
    }
    /// Key bytes to take from prf+, salt included for the AEAD ciphers (16/32 + 4; ChaCha20:
    /// 32 + 4, RFC 7634 section 2).
    pub fn key_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 => 16,
            EncrAlg::AesCbc256 => 32,
            EncrAlg::AesGcm16_128 => 16 + GCM_SALT_LEN,
            EncrAlg::AesGcm16_256 | EncrAlg::ChaCha20Poly1305 => 32 + GCM_SALT_LEN,
        }
    }
    /// IV length in the SK payload: 16 for CBC, 8 for GCM and ChaCha20-Poly1305.
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            GCM_IV_LEN
        } else {
            AES_BLOCK
        }
    }
    /// The unit the plaintext (with its pad length byte) is padded to: 16 for CBC, 1 for GCM.
    pub fn block_len(self) -> usize {
        if self.is_aead() { 1 } else { AES_BLOCK }
    }
}

impl IntegAlg {
    pub fn from_id(id: u16) -> Option<IntegAlg> {
        match id {
            12 => Some(IntegAlg::HmacSha256_128),
            13 => Some(IntegAlg::HmacSha384_192),
            14 => Some(IntegAlg::HmacSha512_256),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        match self {
            IntegAlg::HmacSha256_128 => 12,
            IntegAlg::HmacSha384_192 => 13,
            IntegAlg::HmacSha512_256 => 14,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            IntegAlg::HmacSha256_128 => 32,
            IntegAlg::HmacSha384_192 => 48,
            IntegAlg::HmacSha512_256 => 64,
        }
    }
    pub fn icv_len(self) -> usize {
        match self {
            IntegAlg::HmacSha256_128 => 16,
            IntegAlg::HmacSha384_192 => 24,
            IntegAlg::HmacSha512_256 => 32,
        }
    }
    /// The untruncated HMAC of the concatenation of `parts`.
    fn mac(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        match self {
            IntegAlg::HmacSha256_128 => hmac_parts::<Hmac<Sha256>>(key, parts),
            IntegAlg::HmacSha384_192 => hmac_parts::<Hmac<Sha384>>(key, parts),
            IntegAlg::HmacSha512_256 => hmac_parts::<Hmac<Sha512>>(key, parts),
        }
    }
}

/// Keys for one direction of an IKE SA's SK payloads.
pub struct SkKeys {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub encr_key: Secret,
    pub integ_key: Secret,
}

/// Shows only the algorithms.
impl std::fmt::Debug for SkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkKeys")
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

impl SkKeys {
    /// Builds the keys after checking that they fit the transforms: key lengths, and an
    /// integrity algorithm present exactly when the cipher is not AEAD. [`SkKeys::seal`] panics
    /// on keys that would fail this check, so building through here keeps that impossible.
    pub fn new(
        encr: EncrAlg,
        integ: Option<IntegAlg>,
        encr_key: Secret,
        integ_key: Secret,
    ) -> Result<SkKeys, Error> {
        let keys = SkKeys {
            encr,
            integ,
            encr_key,
            integ_key,
        };
        keys.check()?;
        Ok(keys)
    }

    fn check(&self) -> Result<(), Error> {
        if self.encr_key.len() != self.encr.key_len() {
            return Err(Error::BadLength);
        }
        match (self.encr.is_aead(), self.integ) {
            (true, None) if self.integ_key.is_empty() => Ok(()),
            (false, Some(integ)) if self.integ_key.len() == integ.key_len() => Ok(()),
            (true, None) | (false, Some(_)) => Err(Error::BadLength),
            (true, Some(_)) | (false, None) => Err(Error::Unsupported),
        }
    }

    fn icv_len(&self) -> usize {
        match self.integ {
            Some(integ) if !self.encr.is_aead() => integ.icv_len(),
            _ => GCM_ICV_LEN,
        }
    }

    /// Length of the SK payload body (IV | ciphertext with padding and pad length | ICV) for a
    /// plaintext of `plain_len` bytes. The caller needs it to write the lengths that the ICV/AAD
    /// cover before sealing.
    pub fn sealed_len(&self, plain_len: usize) -> usize {
        let block = self.encr.block_len();
        let padded = (plain_len + 1).div_ceil(block) * block;
        self.iv_len() + padded + self.icv_len()
    }
    /// IV length in bytes (16 for CBC, 8 for GCM).
    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }
    /// Encrypts and authenticates. `aad` is every message byte before the SK body (IKE header and
    /// SK generic header, lengths final). `iv` must be `iv_len()` fresh random bytes. Appends
    /// exactly `sealed_len(plaintext.len())` bytes to `out`.
    ///
    /// # Panics
    /// If `iv` is not `iv_len()` bytes or the keys do not fit the transforms (see
    /// [`SkKeys::new`]): both are bugs of the caller, never caused by received data.
    pub fn seal(&self, aad: &[u8], iv: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        self.check().expect("SK keys do not match their transforms");
        assert_eq!(iv.len(), self.iv_len(), "SK IV of the wrong length");

        // plaintext | zero padding | pad length
        let block = self.encr.block_len();
        let padded = (plaintext.len() + 1).div_ceil(block) * block;
        let pad = padded - plaintext.len() - 1; // < 16
        let mut buf = Zeroizing::new(Vec::with_capacity(padded));
        buf.extend_from_slice(plaintext);
        buf.resize(padded - 1, 0);
        buf.push(pad as u8);

        let start = out.len();
        match (self.encr, self.integ) {
            (EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 | EncrAlg::ChaCha20Poly1305, _) => {
                let (key, nonce) = self
                    .aead_key_nonce(iv)
                    .expect("SK keys do not match their transforms");
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), &mut buf)
                    .expect("SK plaintext too long for GCM"); // limit is 64 GiB
                out.extend_from_slice(iv);
                out.extend_from_slice(&buf);
                out.extend_from_slice(tag.as_ref());
            }
            (_, Some(integ)) => {
                let ok = match self.encr {
                    EncrAlg::AesCbc128 => cbc_encrypt::<Aes128>(&self.encr_key, iv, &mut buf),
                    _ => cbc_encrypt::<Aes256>(&self.encr_key, iv, &mut buf),
                };
                ok.expect("SK keys do not match their transforms");
                out.extend_from_slice(iv);
                out.extend_from_slice(&buf);
                // ICV over the whole message up to the ICV: header(s) | IV | ciphertext.
                let mac = integ.mac(&self.integ_key, &[aad, &out[start..]]);
                out.extend_from_slice(&mac[..integ.icv_len()]);
            }
            (_, None) => unreachable!("checked above"),
        }
        debug_assert_eq!(out.len() - start, self.sealed_len(plaintext.len()));
    }
    /// Verifies (constant time) and decrypts an SK body; returns the inner payload bytes with
    /// padding removed.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Secret, Error> {
        self.check()?;
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let mut plain = match (self.encr, self.integ) {
            (EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 | EncrAlg::ChaCha20Poly1305, _) => {
                // IV | at least the pad length byte | ICV
                if body.len() < iv_len + 1 + icv_len {
                    return Err(Error::BadLength);
                }
                let (iv, sealed) = body.split_at(iv_len);
                let (key, nonce) = self.aead_key_nonce(iv)?;
                let mut buf = Zeroizing::new(sealed.to_vec());
                let n = key
                    .open_in_place(nonce, aead::Aad::from(aad), &mut buf)
                    .map_err(|_| Error::IntegrityCheckFailed)?
                    .len();
                buf.truncate(n);
                buf
            }
            (_, Some(integ)) => {
                // IV | one or more blocks | ICV; lengths are public, so saying BadLength here
                // leaks nothing.
                let Some(ct_len) = body.len().checked_sub(iv_len + icv_len) else {
                    return Err(Error::BadLength);
                };
                if ct_len == 0 || ct_len % AES_BLOCK != 0 {
                    return Err(Error::BadLength);
                }
                let (covered, icv) = body.split_at(iv_len + ct_len);
                let mac = integ.mac(&self.integ_key, &[aad, covered]);
                // Verify before decrypting anything (no padding oracle).
                if !ct_eq(&mac[..icv_len], icv) {
                    return Err(Error::IntegrityCheckFailed);
                }
                let (iv, ct) = covered.split_at(iv_len);
                let mut buf = Zeroizing::new(ct.to_vec());
                match self.encr {
                    EncrAlg::AesCbc128 => cbc_decrypt::<Aes128>(&self.encr_key, iv, &mut buf)?,
                    _ => cbc_decrypt::<Aes256>(&self.encr_key, iv, &mut buf)?,
                }
                buf
            }
            (_, None) => return Err(Error::Unsupported),
        };
        // Strip padding: the last byte says how many padding bytes precede it. The ICV already
        // verified, so a bad value here is the authenticated peer's error, not an oracle.
        let pad = match plain.last() {
            Some(&p) => p as usize,
            None => return Err(Error::BadLength),
        };
        let Some(inner_len) = plain.len().checked_sub(pad + 1) else {
            return Err(Error::BadLength);
        };
        plain.truncate(inner_len);
        Ok(plain)
    }

    /// ring key and nonce = salt (last 4 key bytes) | explicit IV (RFC 5282 section 4, RFC 7634
    /// section 2: the same 12-byte nonce for both).
    fn aead_key_nonce(&self, iv: &[u8]) -> Result<(aead::LessSafeKey, aead::Nonce), Error> {
        let alg = match self.encr {
            EncrAlg::AesGcm16_128 => &aead::AES_128_GCM,
            EncrAlg::AesGcm16_256 => &aead::AES_256_GCM,
            EncrAlg::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            _ => return Err(Error::Unsupported),
        };
        let Some(split) = self.encr_key.len().checked_sub(GCM_SALT_LEN) else {
            return Err(Error::BadLength);
        };
        let (key, salt) = self.encr_key.split_at(split);
        let key = aead::UnboundKey::new(alg, key).map_err(|_| Error::BadLength)?;
        if iv.len() != GCM_IV_LEN {
            return Err(Error::BadLength);
        }
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce[..GCM_SALT_LEN].copy_from_slice(salt);
        nonce[GCM_SALT_LEN..].copy_from_slice(iv);
        Ok((
            aead::LessSafeKey::new(key),
            aead::Nonce::assume_unique_for_key(nonce),
        ))
    }
}

/// AES-CBC encryption in place of whole blocks (no padding: the SK trailer is the padding).
fn cbc_encrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), Error>
where
    C: BlockCipherEncrypt<BlockSize = U16> + KeyInit,
{
    let mut enc = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| Error::BadLength)?;
    let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(Error::BadLength);
    }
    enc.encrypt_blocks(blocks);
    Ok(())
}

/// AES-CBC decryption in place of whole blocks.
fn cbc_decrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), Error>
where
    C: BlockCipherDecrypt<BlockSize = U16> + KeyInit,
{
    let mut dec = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| Error::BadLength)?;
    let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(Error::BadLength);
    }
    dec.decrypt_blocks(blocks);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::hex as unhex;

    fn secret(v: &[u8]) -> Secret {
        Zeroizing::new(v.to_vec())
    }

    const INTEGS: [IntegAlg; 3] = [
        IntegAlg::HmacSha256_128,
        IntegAlg::HmacSha384_192,
        IntegAlg::HmacSha512_256,
    ];

    /// Every supported (encr, integ) combination with distinct, deterministic keys.
    fn all_keys() -> Vec<SkKeys> {
        let mut v = Vec::new();
        for encr in [EncrAlg::AesCbc128, EncrAlg::AesCbc256] {
            for integ in INTEGS {
                let ek = secret(&vec![0x42; encr.key_len()]);
                let ik = secret(&vec![0x24; integ.key_len()]);
                v.push(SkKeys::new(encr, Some(integ), ek, ik).unwrap());
            }
        }
        for encr in [
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm16_256,
            EncrAlg::ChaCha20Poly1305,
        ] {
            let ek = secret(&vec![0x42; encr.key_len()]);
            v.push(SkKeys::new(encr, None, ek, secret(&[])).unwrap());
        }
        v
    }

    fn name(k: &SkKeys) -> String {
        format!("{k:?}")
    }

    #[test]
    fn debug_hides_keys() {
        let k = SkKeys::new(
            EncrAlg::AesCbc128,
            Some(IntegAlg::HmacSha256_128),
            secret(&[0xab; 16]),
            secret(&[0xcd; 32]),
        )
        .unwrap();
        assert_eq!(
            format!("{k:?}"),
            "SkKeys { encr: AesCbc128, integ: Some(HmacSha256_128), .. }"
        );
    }

    #[test]
    fn transform_ids() {
        for e in [
            EncrAlg::AesCbc128,
            EncrAlg::AesCbc256,
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm16_256,
        ] {
            let (id, bits) = e.id();
            assert_eq!(EncrAlg::from_id(id, Some(bits)), Some(e));
            assert!(e.has_key_length_attr());
        }
        // ChaCha20-Poly1305: ID 28, no Key Length attribute (RFC 7634 2); one that carries it
        // is not the transform we know.
        let c = EncrAlg::ChaCha20Poly1305;
        assert_eq!(c.id(), (28, 256));
        assert!(!c.has_key_length_attr());
        assert_eq!(EncrAlg::from_id(28, None), Some(c));
        assert_eq!(EncrAlg::from_id(28, Some(256)), None);
        assert_eq!((c.key_len(), c.iv_len(), c.block_len()), (36, 8, 1));
        assert!(c.is_aead());
        assert_eq!(EncrAlg::AesCbc128.id(), (12, 128));
        assert_eq!(EncrAlg::AesGcm16_256.id(), (20, 256));
        assert_eq!(EncrAlg::from_id(12, None), None);
        assert_eq!(EncrAlg::from_id(12, Some(192)), None);
        assert_eq!(EncrAlg::from_id(19, Some(128)), None); // GCM with an 12-byte ICV
        assert_eq!(EncrAlg::from_id(3, None), None); // 3DES
        assert_eq!([12, 13, 14].map(IntegAlg::from_id), INTEGS.map(Some));
        for i in INTEGS {
            assert_eq!(IntegAlg::from_id(i.id()), Some(i));
        }
        for id in [0, 1, 2, 5, 15] {
            assert_eq!(IntegAlg::from_id(id), None);
        }
        assert_eq!(INTEGS.map(|i| i.key_len()), [32, 48, 64]);
        assert_eq!(INTEGS.map(|i| i.icv_len()), [16, 24, 32]);
        assert_eq!(
            [
                EncrAlg::AesCbc128,
                EncrAlg::AesCbc256,
                EncrAlg::AesGcm16_128,
                EncrAlg::AesGcm16_256
            ]
            .map(|e| (e.key_len(), e.iv_len(), e.is_aead())),
            [
                (16, 16, false),
                (32, 16, false),
                (20, 8, true),
                (36, 8, true)
            ]
        );
    }

    #[test]
    fn new_checks_keys_against_transforms() {
        let k16 = || secret(&[1; 16]);
        assert!(
            SkKeys::new(
                EncrAlg::AesCbc128,
                Some(IntegAlg::HmacSha256_128),
                k16(),
                secret(&[2; 32])
            )
            .is_ok()
        );
        // Wrong encryption key length, wrong integrity key length.
        assert_eq!(
            SkKeys::new(
                EncrAlg::AesCbc256,
                Some(IntegAlg::HmacSha256_128),
                k16(),
                secret(&[2; 32])
            )
            .err(),
            Some(Error::BadLength)
        );
        assert_eq!(
            SkKeys::new(
                EncrAlg::AesCbc128,
                Some(IntegAlg::HmacSha256_128),
                k16(),
                secret(&[2; 16])
            )
            .err(),
            Some(Error::BadLength)
        );
        // CBC needs integrity; GCM must not have it.
        assert_eq!(
            SkKeys::new(EncrAlg::AesCbc128, None, k16(), secret(&[])).err(),
            Some(Error::Unsupported)
        );
        assert_eq!(
            SkKeys::new(
                EncrAlg::AesGcm16_128,
                Some(IntegAlg::HmacSha256_128),
                secret(&[1; 20]),
                secret(&[2; 32])
            )
            .err(),
            Some(Error::Unsupported)
        );
        assert_eq!(
            SkKeys::new(EncrAlg::AesGcm16_128, None, k16(), secret(&[])).err(),
            Some(Error::BadLength)
        );
    }

    #[test]
    fn sealed_len_is_exact() {
        for k in all_keys() {
            let (iv_len, icv) = if k.encr.is_aead() {
                (8, 16)
            } else {
                (16, k.integ.unwrap().icv_len())
            };
            assert_eq!(k.iv_len(), iv_len);
            for len in [0usize, 1, 14, 15, 16, 17, 31, 32, 100, 1000] {
                let expected = if k.encr.is_aead() {
                    iv_len + len + 1 + icv
                } else {
                    iv_len + (len / 16 + 1) * 16 + icv
                };
                assert_eq!(k.sealed_len(len), expected, "{} {len}", name(&k));
                let mut out = vec![0xee; 3]; // seal appends after what is there
                k.seal(b"aad", &vec![7; iv_len], &vec![0x5a; len], &mut out);
                assert_eq!(out.len(), 3 + expected, "{} {len}", name(&k));
                assert_eq!(out[..3], [0xee; 3]);
                assert_eq!(out[3..3 + iv_len], vec![7; iv_len][..], "IV leads the body");
            }
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let aad = b"IKE header (28 bytes) ......SK h";
        for k in all_keys() {
            for len in [0usize, 1, 15, 16, 17, 255, 256, 1500] {
                let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut body = Vec::new();
                k.seal(aad, &vec![0xa5; k.iv_len()], &plain, &mut body);
                let opened = k.open(aad, &body).unwrap();
                assert_eq!(*opened, plain, "{} {len}", name(&k));
                // The plaintext is not visible in the body.
                if len >= 16 {
                    assert!(!body.windows(16).any(|w| w == &plain[..16]));
                }
            }
        }
    }

    #[test]
    fn tampering_any_byte_fails() {
        let aad: Vec<u8> = (0..32).collect();
        let plain = b"inner payloads: IDr, AUTH, SA, TSi, TSr".to_vec();
        for k in all_keys() {
            let mut body = Vec::new();
            k.seal(&aad, &vec![1; k.iv_len()], &plain, &mut body);
            for i in 0..body.len() {
                let mut bad = body.clone();
                bad[i] ^= 0x01;
                assert_eq!(
                    k.open(&aad, &bad).err(),
                    Some(Error::IntegrityCheckFailed),
                    "{} body byte {i}",
                    name(&k)
                );
            }
            for i in 0..aad.len() {
                let mut bad = aad.clone();
                bad[i] ^= 0x80;
                assert_eq!(
                    k.open(&bad, &body).err(),
                    Some(Error::IntegrityCheckFailed),
                    "{} aad byte {i}",
                    name(&k)
                );
            }
            // Other keys do not open it.
            let mut other_key = k.encr_key.to_vec();
            other_key[0] ^= 1;
            let other =
                SkKeys::new(k.encr, k.integ, secret(&other_key), k.integ_key.clone()).unwrap();
            assert!(other.open(&aad, &body).is_err());
        }
    }

    #[test]
    fn truncated_or_extended_bodies_fail_without_panic() {
        let aad = b"aad";
        for k in all_keys() {
            let mut body = Vec::new();
            k.seal(aad, &vec![3; k.iv_len()], &[9; 40], &mut body);
            for n in 0..body.len() {
                let r = k.open(aad, &body[..n]);
                assert!(
                    matches!(r, Err(Error::IntegrityCheckFailed | Error::BadLength)),
                    "{} prefix {n}",
                    name(&k)
                );
                let r = k.open(aad, &body[body.len() - n..]);
                assert!(r.is_err(), "{} suffix {n}", name(&k));
            }
            let mut longer = body.clone();
            longer.push(0);
            assert!(k.open(aad, &longer).is_err());
        }
    }

    /// Builds a CBC body around a chosen plaintext (already padded by the caller, pad length
    /// byte included), so that bad trailers can be tested with a valid ICV.
    fn cbc_body(k: &SkKeys, aad: &[u8], iv: &[u8], padded: &[u8]) -> Vec<u8> {
        let mut ct = padded.to_vec();
        match k.encr {
            EncrAlg::AesCbc128 => cbc_encrypt::<Aes128>(&k.encr_key, iv, &mut ct).unwrap(),
            _ => cbc_encrypt::<Aes256>(&k.encr_key, iv, &mut ct).unwrap(),
        }
        let integ = k.integ.unwrap();
        let mut body = [iv, &ct].concat();
        let mac = integ.mac(&k.integ_key, &[aad, &body]);
        body.extend_from_slice(&mac[..integ.icv_len()]);
        body
    }

    #[test]
    fn cbc_pad_length_too_large_is_refused_after_a_valid_icv() {
        let k = &all_keys()[0];
        let iv = [0u8; 16];
        // One block whose pad length byte says 15: all of it is padding, empty inner payload.
        let mut block = [0u8; 16];
        block[15] = 15;
        assert!(
            k.open(b"a", &cbc_body(k, b"a", &iv, &block))
                .unwrap()
                .is_empty()
        );
        // Pad length 16 (or 255) does not fit in 16 bytes.
        for pad in [16u8, 200, 255] {
            block[15] = pad;
            assert_eq!(
                k.open(b"a", &cbc_body(k, b"a", &iv, &block)).err(),
                Some(Error::BadLength),
                "pad {pad}"
            );
        }
        // A peer's longer padding (more than one block) is accepted: 20 bytes of padding.
        let mut two = vec![0xab; 32];
        two[31] = 20;
        let inner = k.open(b"a", &cbc_body(k, b"a", &iv, &two)).unwrap();
        assert_eq!(*inner, vec![0xab; 11]);
    }

    #[test]
    fn aes_cbc_known_answer_sp800_38a() {
        // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt and F.2.5 CBC-AES256.Encrypt, four blocks.
        let iv = unhex("000102030405060708090a0b0c0d0e0f");
        let plain = unhex(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
             30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        );
        let mut buf = plain.clone();
        cbc_encrypt::<Aes128>(&unhex("2b7e151628aed2a6abf7158809cf4f3c"), &iv, &mut buf).unwrap();
        let c128 = unhex(
            "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
             73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
        );
        assert_eq!(buf, c128);
        let k256 = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let mut buf = plain.clone();
        cbc_encrypt::<Aes256>(&k256, &iv, &mut buf).unwrap();
        assert_eq!(
            buf,
            unhex(
                "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
                 39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b"
            )
        );
        cbc_decrypt::<Aes256>(&k256, &iv, &mut buf).unwrap();
        assert_eq!(buf, plain);

        // Through SkKeys::open: body = IV | the F.2.1 ciphertext | ICV, where the ICV is
        // HMAC-SHA-256(0x11 * 32, aad | IV | ciphertext)[..16] computed with Python 3's hmac
        // and aad = bytes 0..32. The last plaintext byte 0x10 reads as pad length 16, so the
        // inner payloads are the first 64 - 17 = 47 plaintext bytes.
        let k = SkKeys::new(
            EncrAlg::AesCbc128,
            Some(IntegAlg::HmacSha256_128),
            secret(&unhex("2b7e151628aed2a6abf7158809cf4f3c")),
            secret(&[0x11; 32]),
        )
        .unwrap();
        let aad: Vec<u8> = (0..32).collect();
        let body = [iv.clone(), c128, unhex("bb255705c571ab7924e9fa431b23d0b1")].concat();
        assert_eq!(*k.open(&aad, &body).unwrap(), plain[..47]);
    }

    #[test]
    fn aes_gcm_known_answer() {
        // The GCM specification (McGrew & Viega), test cases 4 (AES-128) and 16 (AES-256):
        // 12-byte IV cafebabefacedbaddecaf888, read here as salt cafebabe | explicit IV
        // facedbaddecaf888 (RFC 5282 nonce layout). The plaintext's last byte, 0x39, reads as
        // pad length 57, leaving 60 - 58 = 2 bytes of inner payload.
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let key128 = unhex("feffe9928665731c6d6a8f9467308308");
        let plain = unhex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let cases = [
            (
                EncrAlg::AesGcm16_128,
                key128.clone(),
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
                 21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                EncrAlg::AesGcm16_256,
                [key128.clone(), key128.clone()].concat(),
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ];
        for (encr, key, ct, tag) in cases {
            let k = SkKeys::new(
                encr,
                None,
                secret(&[key, unhex("cafebabe")].concat()),
                secret(&[]),
            )
            .unwrap();
            let body = [unhex("facedbaddecaf888"), unhex(ct), unhex(tag)].concat();
            assert_eq!(*k.open(&aad, &body).unwrap(), plain[..2], "{encr:?}");

            // And sealing: our trailer is a single 0x00 pad length byte where the vector has
            // 0x39, so seal the vector's first 59 bytes; GCM being a stream (ciphertext =
            // plaintext ^ keystream), the first 59 ciphertext bytes match and the last one
            // differs by exactly 0x39. (The tag differs, as the ciphertext does.)
            let mut out = Vec::new();
            k.seal(&aad, &unhex("facedbaddecaf888"), &plain[..59], &mut out);
            assert_eq!(out.len(), 8 + 60 + 16);
            assert_eq!(out[8..8 + 59], unhex(ct)[..59], "{encr:?} keystream");
            assert_eq!(out[8 + 59], unhex(ct)[59] ^ 0x39, "{encr:?} last byte");
        }
    }

    // RFC 7634 appendix B, the IKEv2 example: an INFORMATIONAL request holding one Notify
    // (type 0x4001... in the appendix: 00 00 00 0c 00 00 40 01 00 00 00 0a) and a 0-byte pad
    // length, sealed with SK_e = 80..9f | a0a1a2a3 (key | salt) and IV 10..17.
    const RFC7634_KEY: &str =
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3";
    const RFC7634_IV: &str = "1011121314151617";

    #[test]
    fn chacha20_poly1305_rfc7634_ikev2_example() {
        let k = SkKeys::new(
            EncrAlg::ChaCha20Poly1305,
            None,
            secret(&unhex(RFC7634_KEY)),
            secret(&[]),
        )
        .unwrap();
        // IKE header (SPIs c0..c7, d0..d7, next payload SK, version 2.0, INFORMATIONAL,
        // flags 0, message ID 9, length 0x45) | SK generic header (next 0x29 Notify, length
        // 0x29 = 4 + 8 + 13 + 16).
        let aad = unhex("c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d72e202500000000090000004529000029");
        let inner = unhex("0000000c000040010000000a");
        let want = [
            unhex(RFC7634_IV),
            unhex("610394701f8d017f7c129248896b71bf e25236efd7cdc670669063 15b2"),
        ]
        .concat();
        let mut out = Vec::new();
        k.seal(&aad, &unhex(RFC7634_IV), &inner, &mut out);
        assert_eq!(out, want, "byte-exact SK body");
        assert_eq!(out.len(), k.sealed_len(inner.len()));
        assert_eq!(*k.open(&aad, &want).unwrap(), inner);
        // Every single flipped bit of the tag, the ciphertext, the IV or the AAD is refused.
        for pos in 0..want.len() {
            let mut bad = want.clone();
            bad[pos] ^= 0x80;
            assert_eq!(
                k.open(&aad, &bad).err(),
                Some(Error::IntegrityCheckFailed),
                "body byte {pos}"
            );
        }
        let mut bad_aad = aad.clone();
        bad_aad[19] ^= 1; // the message ID
        assert_eq!(
            k.open(&bad_aad, &want).err(),
            Some(Error::IntegrityCheckFailed)
        );
    }

    #[test]
    fn chacha20_poly1305_rfc7634_esp_example_key_and_nonce_layout() {
        // RFC 7634 appendix A: the ESP example, sealed with the same split of the keying
        // material into key | salt and the same nonce = salt | IV that the SK payload uses and
        // that the kernel's rfc7539esp(chacha20,poly1305) expects (KEYMAT 36 bytes). AAD is
        // SPI 01020304 | sequence number 5.
        let k = SkKeys::new(
            EncrAlg::ChaCha20Poly1305,
            None,
            secret(&unhex(RFC7634_KEY)),
            secret(&[]),
        )
        .unwrap();
        let plain = unhex(
            "45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10
             000736270809 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
             202122232425262728292a2b2c2d2e2f3031323334353637 01020204",
        );
        let want = unhex(
            "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6
             14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3
             cbec163fac469b502773f6fb94e664da9165b82829f641e076aaa8266b7fb0f7
             b11b369907e1ad43",
        );
        let (key, nonce) = k.aead_key_nonce(&unhex(RFC7634_IV)).unwrap();
        let mut buf = plain.clone();
        let tag = key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(unhex("0102030400000005")), &mut buf)
            .unwrap();
        buf.extend_from_slice(tag.as_ref());
        assert_eq!(buf, want);
    }
}
