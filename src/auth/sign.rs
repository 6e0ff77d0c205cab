//! AUTH payload content: signatures over the signed octets (RFC 7296 2.15) and PSK.
//!
//! Signing: ECDSA P-256 keys give method 9 (Legacy) or method 14 with ecdsa-with-SHA256; P-384
//! keys method 10 or 14 with ecdsa-with-SHA384; P-521 keys method 11 or 14 with
//! ecdsa-with-SHA512 (the hash RFC 4754 pairs with each curve); RSA
//! keys always give method 14 with sha256WithRSAEncryption, because ring cannot make the
//! SHA-1 PKCS#1 v1.5 signatures that method 1 implies (strongSwan also verifies method 1 with
//! SHA-1). Peers that send SIGNATURE_HASH_ALGORITHMS (strongSwan, libreswan, Windows) take
//! method 14; an RSA peer without RFC 7427 cannot authenticate an RSA key of ours.
//!
//! Verification: methods 1 (RSA, SHA-1), 9 (ECDSA P-256, SHA-256, r|s), 10 (P-384, SHA-384),
//! 11 (P-521, SHA-512), and 14 with sha256/384/512WithRSAEncryption, RSASSA-PSS with
//! SHA-256/384/512 (MGF1 with the same hash, salt as long as the hash), ecdsa-with-SHA256/384
//! for P-256 or P-384 keys (ring has no ecdsa-with-SHA512 for them) and ecdsa-with-SHA512 for
//! P-521 keys (p521).

use ring::signature::{self as rs, UnparsedPublicKey, VerificationAlgorithm};

use super::cert::KeyType;
use super::der;
use super::key::{KeyInner, RingCurve};
use super::{PeerCert, PrivateKey};
use crate::crypto::PrfAlg;
use crate::wire::consts::{
    AUTH_DIGITAL_SIGNATURE, AUTH_ECDSA_SHA256_P256, AUTH_RSA_SIG, HASH_SHA2_256, HASH_SHA2_384,
    HASH_SHA2_512,
};

/// AUTH method 10: ECDSA with SHA-384 on P-384 (RFC 4754).
pub const AUTH_ECDSA_SHA384_P384: u8 = 10;
/// AUTH method 11: ECDSA with SHA-512 on P-521 (RFC 4754).
pub const AUTH_ECDSA_SHA512_P521: u8 = 11;

/// Which encoding of a signature to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStyle {
    /// Method 1 (RSA PKCS#1 v1.5, SHA-1 as RFC 7296 implies) or method 9 (ECDSA P-256 with
    /// SHA-256, r | s, RFC 4754), chosen by the key type.
    /// (RSA keys produce method 14 instead: see the module documentation.)
    Legacy,
    /// Method 14 (RFC 7427): ASN.1 AlgorithmIdentifier + signature, SHA-256.
    DigitalSignature,
}

/// AlgorithmIdentifier DER of sha256WithRSAEncryption (1.2.840.113549.1.1.11, NULL parameters),
/// RFC 7427 Appendix A.1.2.
pub const ALG_SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
/// AlgorithmIdentifier DER of sha384WithRSAEncryption (1.2.840.113549.1.1.12), RFC 7427 A.1.3.
pub const ALG_SHA384_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
];
/// AlgorithmIdentifier DER of sha512WithRSAEncryption (1.2.840.113549.1.1.13), RFC 7427 A.1.4.
pub const ALG_SHA512_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA256 (1.2.840.10045.4.3.2, no parameters),
/// RFC 7427 Appendix A.3.2.
pub const ALG_ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// AlgorithmIdentifier DER of ecdsa-with-SHA384 (1.2.840.10045.4.3.3), RFC 7427 A.3.3.
pub const ALG_ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA512 (1.2.840.10045.4.3.4), RFC 7427 A.3.4.
pub const ALG_ECDSA_WITH_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];

/// pkcs-1 arc 1.2.840.113549.1.1: .5 sha1WithRSA, .8 MGF1, .10 RSASSA-PSS, .11/.12/.13 SHA-2.
const OID_PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
/// ecdsa-with-SHA2 arc 1.2.840.10045.4.3: .2 SHA-256, .3 SHA-384, .4 SHA-512.
const OID_ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
/// hashAlgs arc 2.16.840.1.101.3.4.2: .1 SHA-256, .2 SHA-384, .3 SHA-512.
const OID_HASH_ALGS: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

/// Hashes of RFC 7427 that we can use, as SIGNATURE_HASH_ALGORITHMS values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn len(self) -> u8 {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// The RFC 7427 hashes a peer announced in SIGNATURE_HASH_ALGORITHMS that we can sign with
/// (SHA2-256, SHA2-384, SHA2-512): a method 14 signature of ours uses one of them (RFC 7427 4:
/// the signer uses a hash the verifier announced). Empty when the peer sent no notify or only
/// hashes we do not sign with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerHashes(u8);

impl PeerHashes {
    /// No notify (or nothing usable in it): method 14 is not used where a key has another.
    pub const NONE: PeerHashes = PeerHashes(0);
    /// All three (what strongSwan announces by default).
    pub const ALL: PeerHashes = PeerHashes(0b111);

    /// From a SIGNATURE_HASH_ALGORITHMS notify's data (at most 32 identifiers are read).
    pub fn from_notify(data: &[u8]) -> PeerHashes {
        let mut m = 0;
        for h in parse_signature_hash_algorithms(data) {
            m |= match h {
                HASH_SHA2_256 => 0b001,
                HASH_SHA2_384 => 0b010,
                HASH_SHA2_512 => 0b100,
                _ => 0,
            };
        }
        PeerHashes(m)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn has(self, h: Hash) -> bool {
        let bit = match h {
            Hash::Sha256 => 0b001,
            Hash::Sha384 => 0b010,
            Hash::Sha512 => 0b100,
        };
        self.0 & bit != 0
    }
}

/// A signature scheme found in a method 14 AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
}

/// The OID under `arc` with one more single-byte arc, if `oid` is one.
fn last_arc(oid: &[u8], arc: &[u8]) -> Option<u8> {
    match oid.strip_prefix(arc)? {
        [last] if last & 0x80 == 0 => Some(*last),
        _ => None,
    }
}

/// Parses `AlgorithmIdentifier` DER (exactly, no trailing bytes) into a scheme we support.
fn parse_algorithm(alg: &[u8]) -> Option<Scheme> {
    let body = der::single(alg, der::TAG_SEQUENCE)?;
    let mut r = der::Reader::new(body);
    let oid = r.expect(der::TAG_OID)?.content;
    let params = if r.is_empty() { None } else { Some(r.read()?) };
    if !r.is_empty() {
        return None;
    }
    // RFC 7427 3: "preferredPresent" NULL for PKCS#1 v1.5, absent for ECDSA; the other form is
    // tolerated because both are seen in the field.
    let null_or_absent = params.is_none_or(|p| p.tag == der::TAG_NULL && p.content.is_empty());
    if let Some(n) = last_arc(oid, OID_PKCS1) {
        let hash = match n {
            11 => Hash::Sha256,
            12 => Hash::Sha384,
            13 => Hash::Sha512,
            10 => return parse_pss_params(params?.whole).map(Scheme::RsaPss),
            _ => return None,
        };
        return null_or_absent.then_some(Scheme::RsaPkcs1(hash));
    }
    if let Some(n) = last_arc(oid, OID_ECDSA_SHA2) {
        let hash = match n {
            2 => Hash::Sha256,
            3 => Hash::Sha384,
            4 => Hash::Sha512,
            _ => return None,
        };
        return null_or_absent.then_some(Scheme::Ecdsa(hash));
    }
    None
}

/// A hash AlgorithmIdentifier (SHA-2 OID with NULL or absent parameters).
fn parse_hash_alg(alg: &[u8]) -> Option<Hash> {
    let body = der::single(alg, der::TAG_SEQUENCE)?;
    let mut r = der::Reader::new(body);
    let hash = match last_arc(r.expect(der::TAG_OID)?.content, OID_HASH_ALGS)? {
        1 => Hash::Sha256,
        2 => Hash::Sha384,
        3 => Hash::Sha512,
        _ => return None,
    };
    if !r.is_empty() {
        let p = r.read()?;
        if p.tag != der::TAG_NULL || !p.content.is_empty() || !r.is_empty() {
            return None;
        }
    }
    Some(hash)
}

/// RSASSA-PSS-params (RFC 4055 3.1) restricted to what ring verifies: SHA-2 hash, MGF1 with
/// the same hash, salt length equal to the hash length, trailer field 1. The defaults (SHA-1,
/// salt 20) are thus refused.
fn parse_pss_params(params: &[u8]) -> Option<Hash> {
    let body = der::single(params, der::TAG_SEQUENCE)?;
    let mut r = der::Reader::new(body);
    let hash = parse_hash_alg(r.expect(0xa0)?.content)?;
    let mgf = der::single(r.expect(0xa1)?.content, der::TAG_SEQUENCE)?;
    let mut mr = der::Reader::new(mgf);
    if last_arc(mr.expect(der::TAG_OID)?.content, OID_PKCS1)? != 8 {
        return None;
    }
    let mgf_hash = parse_hash_alg(mr.read()?.whole)?;
    if !mr.is_empty() || mgf_hash != hash {
        return None;
    }
    let salt = der::single(r.expect(0xa2)?.content, der::TAG_INTEGER)?;
    if salt != [hash.len()] {
        return None;
    }
    if !r.is_empty() {
        let trailer = der::single(r.expect(0xa3)?.content, der::TAG_INTEGER)?;
        if trailer != [1] || !r.is_empty() {
            return None;
        }
    }
    Some(hash)
}

/// The ring verification algorithm for a scheme and key type; None when they do not fit.
fn verification_alg(scheme: Scheme, key: KeyType) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match (scheme, key) {
        (Scheme::RsaPkcs1(Hash::Sha256), KeyType::Rsa) => &rs::RSA_PKCS1_2048_8192_SHA256,
        (Scheme::RsaPkcs1(Hash::Sha384), KeyType::Rsa) => &rs::RSA_PKCS1_2048_8192_SHA384,
        (Scheme::RsaPkcs1(Hash::Sha512), KeyType::Rsa) => &rs::RSA_PKCS1_2048_8192_SHA512,
        (Scheme::RsaPss(Hash::Sha256), KeyType::Rsa) => &rs::RSA_PSS_2048_8192_SHA256,
        (Scheme::RsaPss(Hash::Sha384), KeyType::Rsa) => &rs::RSA_PSS_2048_8192_SHA384,
        (Scheme::RsaPss(Hash::Sha512), KeyType::Rsa) => &rs::RSA_PSS_2048_8192_SHA512,
        (Scheme::Ecdsa(Hash::Sha256), KeyType::EcP256) => &rs::ECDSA_P256_SHA256_ASN1,
        (Scheme::Ecdsa(Hash::Sha384), KeyType::EcP256) => &rs::ECDSA_P256_SHA384_ASN1,
        (Scheme::Ecdsa(Hash::Sha256), KeyType::EcP384) => &rs::ECDSA_P384_SHA256_ASN1,
        (Scheme::Ecdsa(Hash::Sha384), KeyType::EcP384) => &rs::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    })
}

/// Signs `octets` with `key`; returns (auth method, AUTH data).
pub fn sign(
    key: &PrivateKey,
    style: SignatureStyle,
    octets: &[u8],
) -> Result<(u8, Vec<u8>), super::Error> {
    sign_for(key, style, octets, PeerHashes::ALL)
}

/// [`sign`] for a peer that announced `peer` (RFC 7427 4). An ECDSA key's method 14 hash is
/// its curve's (RFC 4754 pairing; ring signs P-256 only with SHA-256 and P-384 only with
/// SHA-384): when the peer did not announce it, the key's own method (9, 10 or 11, which
/// names the hash) is used instead. An RSA key takes the first of SHA2-256, SHA2-384, SHA2-512
/// the peer announced, and SHA2-256 when it announced none of them (method 1 would need SHA-1
/// signatures, which ring does not make).
pub fn sign_for(
    key: &PrivateKey,
    style: SignatureStyle,
    octets: &[u8],
    peer: PeerHashes,
) -> Result<(u8, Vec<u8>), super::Error> {
    let curve_hash = match &key.inner {
        KeyInner::Ecdsa {
            curve: RingCurve::P256,
            ..
        } => Some(Hash::Sha256),
        KeyInner::Ecdsa {
            curve: RingCurve::P384,
            ..
        } => Some(Hash::Sha384),
        KeyInner::EcdsaP521(_) => Some(Hash::Sha512),
        KeyInner::Rsa(_) => None,
    };
    let style = match curve_hash {
        Some(h) if !peer.has(h) => SignatureStyle::Legacy,
        _ => style,
    };
    match (&key.inner, style) {
        (KeyInner::Ecdsa { curve, fixed, .. }, SignatureStyle::Legacy) => {
            let sig = fixed
                .sign(&key.rng, octets)
                .map_err(|_| super::Error::SignFailed)?;
            let method = match curve {
                RingCurve::P256 => AUTH_ECDSA_SHA256_P256,
                RingCurve::P384 => AUTH_ECDSA_SHA384_P384,
            };
            Ok((method, sig.as_ref().to_vec()))
        }
        (KeyInner::Ecdsa { curve, asn1, .. }, SignatureStyle::DigitalSignature) => {
            let sig = asn1
                .sign(&key.rng, octets)
                .map_err(|_| super::Error::SignFailed)?;
            let alg = match curve {
                RingCurve::P256 => ALG_ECDSA_WITH_SHA256,
                RingCurve::P384 => ALG_ECDSA_WITH_SHA384,
            };
            Ok((
                AUTH_DIGITAL_SIGNATURE,
                digital_signature_data(alg, sig.as_ref()),
            ))
        }
        (KeyInner::EcdsaP521(k), style) => {
            use p521::ecdsa::signature::Signer;
            let sig: p521::ecdsa::Signature =
                k.try_sign(octets).map_err(|_| super::Error::SignFailed)?;
            Ok(match style {
                // r | s, 66 bytes each (RFC 4754 section 7).
                SignatureStyle::Legacy => (AUTH_ECDSA_SHA512_P521, sig.to_bytes().to_vec()),
                SignatureStyle::DigitalSignature => (
                    AUTH_DIGITAL_SIGNATURE,
                    digital_signature_data(ALG_ECDSA_WITH_SHA512, sig.to_der().as_bytes()),
                ),
            })
        }
        // Legacy too: method 1 needs SHA-1 signing, which ring does not offer.
        (KeyInner::Rsa(rsa), _) => {
            let (enc, alg): (&'static dyn rs::RsaEncoding, _) =
                match [Hash::Sha256, Hash::Sha384, Hash::Sha512]
                    .into_iter()
                    .find(|h| peer.has(*h))
                {
                    Some(Hash::Sha384) => (&rs::RSA_PKCS1_SHA384, ALG_SHA384_WITH_RSA),
                    Some(Hash::Sha512) => (&rs::RSA_PKCS1_SHA512, ALG_SHA512_WITH_RSA),
                    _ => (&rs::RSA_PKCS1_SHA256, ALG_SHA256_WITH_RSA),
                };
            let mut sig = vec![0u8; rsa.public().modulus_len()];
            rsa.sign(enc, &key.rng, octets, &mut sig)
                .map_err(|_| super::Error::SignFailed)?;
            Ok((AUTH_DIGITAL_SIGNATURE, digital_signature_data(alg, &sig)))
        }
    }
}

/// RFC 7427 3: length of the AlgorithmIdentifier (one octet), the AlgorithmIdentifier, the
/// signature.
fn digital_signature_data(alg: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + alg.len() + sig.len());
    out.push(alg.len() as u8); // our identifiers are constants shorter than 256 bytes
    out.extend_from_slice(alg);
    out.extend_from_slice(sig);
    out
}

/// Verifies an AUTH payload (method 1, 9 or 14) against the peer's certificate.
pub fn verify(peer: &PeerCert, method: u8, data: &[u8], octets: &[u8]) -> Result<(), super::Error> {
    let (alg, sig): (&'static dyn VerificationAlgorithm, &[u8]) = match method {
        AUTH_RSA_SIG if peer.key_type == KeyType::Rsa => {
            (&rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, data)
        }
        AUTH_ECDSA_SHA256_P256 if peer.key_type == KeyType::EcP256 => {
            (&rs::ECDSA_P256_SHA256_FIXED, data)
        }
        AUTH_ECDSA_SHA384_P384 if peer.key_type == KeyType::EcP384 => {
            (&rs::ECDSA_P384_SHA384_FIXED, data)
        }
        AUTH_ECDSA_SHA512_P521 if peer.key_type == KeyType::EcP521 => {
            let sig =
                p521::ecdsa::Signature::from_slice(data).map_err(|_| super::Error::BadSignature)?;
            return p521_verify(peer, octets, &sig);
        }
        AUTH_RSA_SIG | AUTH_ECDSA_SHA256_P256 | AUTH_ECDSA_SHA384_P384 | AUTH_ECDSA_SHA512_P521 => {
            return Err(super::Error::BadSignature);
        }
        AUTH_DIGITAL_SIGNATURE => {
            let (&len, rest) = data.split_first().ok_or(super::Error::BadSignature)?;
            let len = usize::from(len);
            if rest.len() <= len {
                return Err(super::Error::BadSignature);
            }
            let (alg_der, sig) = rest.split_at(len);
            let scheme = parse_algorithm(alg_der).ok_or(super::Error::BadSignature)?;
            if scheme == Scheme::Ecdsa(Hash::Sha512) && peer.key_type == KeyType::EcP521 {
                let sig = p521::ecdsa::Signature::from_der(sig)
                    .map_err(|_| super::Error::BadSignature)?;
                return p521_verify(peer, octets, &sig);
            }
            let alg = verification_alg(scheme, peer.key_type).ok_or(super::Error::BadSignature)?;
            (alg, sig)
        }
        other => return Err(super::Error::UnsupportedMethod(other)),
    };
    UnparsedPublicKey::new(alg, &peer.public_key)
        .verify(octets, sig)
        .map_err(|_| super::Error::BadSignature)
}

/// ECDSA P-521 with SHA-512 over `octets` with the certificate's key (an uncompressed point,
/// which p521 checks to be on the curve).
fn p521_verify(
    peer: &PeerCert,
    octets: &[u8],
    sig: &p521::ecdsa::Signature,
) -> Result<(), super::Error> {
    use p521::ecdsa::signature::Verifier;
    let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&peer.public_key)
        .map_err(|_| super::Error::BadSignature)?;
    key.verify(octets, sig)
        .map_err(|_| super::Error::BadSignature)
}

/// AUTH data for method 2: prf(prf(PSK, "Key Pad for IKEv2"), octets).
pub fn psk_auth(prf: PrfAlg, psk: &[u8], octets: &[u8]) -> Vec<u8> {
    let pad_key = prf.prf(psk, b"Key Pad for IKEv2");
    prf.prf(&pad_key, octets).to_vec()
}

/// SIGNATURE_HASH_ALGORITHMS notify data we send (RFC 7427 4): SHA2-256, SHA2-384, SHA2-512.
pub fn signature_hash_algorithms_data() -> Vec<u8> {
    [HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512]
        .iter()
        .flat_map(|h| h.to_be_bytes())
        .collect()
}

/// At most this many hash identifiers are read from a peer's notify.
const MAX_HASH_ALGORITHMS: usize = 32;

/// The hash identifiers in a peer's SIGNATURE_HASH_ALGORITHMS notify data, in order, at most 32;
/// a trailing odd byte is ignored.
pub fn parse_signature_hash_algorithms(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .take(MAX_HASH_ALGORITHMS)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TrustAnchors;

    const NOW: u64 = 1_767_225_600; // 2026-01-01
    const OCTETS: &[u8] = b"IKE_SA_INIT message | Nr | prf(SK_pi, IDi')";

    fn key(pem: &str) -> PrivateKey {
        PrivateKey::from_pem(pem).unwrap()
    }

    fn peer(pem: &str) -> PeerCert {
        let anchors = TrustAnchors::from_pem(&format!(
            "{}{}{}",
            include_str!("../../certs/ca-ecdsa.pem"),
            include_str!("../../certs/ca-rsa.pem"),
            include_str!("../../certs/ca-ecdsa384.pem")
        ))
        .unwrap();
        let der = crate::auth::cert::certs_from_pem(pem).unwrap().remove(0);
        anchors.verify(&der, &[], NOW).unwrap()
    }

    fn mn1_ec() -> (PrivateKey, PeerCert) {
        (
            key(include_str!("../../certs/mn1-ecdsa.key")),
            peer(include_str!("../../certs/mn1-ecdsa.pem")),
        )
    }

    fn mn1_rsa() -> (PrivateKey, PeerCert) {
        (
            key(include_str!("../../certs/mn1-rsa.key")),
            peer(include_str!("../../certs/mn1-rsa.pem")),
        )
    }

    /// Flipping any of a few bits in the AUTH data or the octets breaks verification.
    fn assert_tamper_fails(cert: &PeerCert, method: u8, data: &[u8]) {
        for pos in [0, data.len() / 2, data.len() - 1] {
            let mut bad = data.to_vec();
            bad[pos] ^= 0x01;
            assert!(verify(cert, method, &bad, OCTETS).is_err(), "bit at {pos}");
        }
        let mut octets = OCTETS.to_vec();
        octets[3] ^= 0x80;
        assert_eq!(
            verify(cert, method, data, &octets),
            Err(super::super::Error::BadSignature)
        );
    }

    #[test]
    fn rfc7427_algorithm_identifiers() {
        // RFC 7427 Appendix A.1.2 (sha256WithRSAEncryption, 15 bytes) and A.3.2
        // (ecdsa-with-sha256, 12 bytes).
        let hex = |s: &str| crate::auth::identity::hex_decode(&s.replace(' ', "")).unwrap();
        assert_eq!(
            ALG_SHA256_WITH_RSA,
            hex("300d 0609 2a86 4886 f70d 0101 0b05 00")
        );
        assert_eq!(ALG_ECDSA_WITH_SHA256, hex("300a 0608 2a86 48ce 3d04 0302"));
        // And what the parser makes of the Appendix A blobs.
        let cases = [
            (
                "300d 0609 2a86 4886 f70d 0101 0b05 00",
                Some(Scheme::RsaPkcs1(Hash::Sha256)),
            ),
            (
                "300d 0609 2a86 4886 f70d 0101 0c05 00",
                Some(Scheme::RsaPkcs1(Hash::Sha384)),
            ),
            (
                "300d 0609 2a86 4886 f70d 0101 0d05 00",
                Some(Scheme::RsaPkcs1(Hash::Sha512)),
            ),
            (
                "300a 0608 2a86 48ce 3d04 0303",
                Some(Scheme::Ecdsa(Hash::Sha384)),
            ),
            (
                "300a 0608 2a86 48ce 3d04 0304",
                Some(Scheme::Ecdsa(Hash::Sha512)),
            ),
            // A.4.3, RSASSA-PSS with SHA-256 (MGF1-SHA-256, salt 32); OpenSSL 3.0 writes the
            // same bytes in a certificate signed with -sigopt rsa_padding_mode:pss.
            (
                "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 \
                 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 \
                 0201 20",
                Some(Scheme::RsaPss(Hash::Sha256)),
            ),
            // A.1.1 sha1WithRSAEncryption and A.3.1 ecdsa-with-sha1: SHA-1 is not offered.
            ("300d 0609 2a86 4886 f70d 0101 0505 00", None),
            ("3009 0607 2a86 48ce 3d04 01", None),
            // A.4.1, RSASSA-PSS with empty parameters (= SHA-1 defaults).
            ("300b 0609 2a86 4886 f70d 0101 0a30 00", None),
            // A.2.1 dsa-with-sha1.
            ("3009 0607 2a86 48ce 3804 03", None),
            // Trailing byte after the AlgorithmIdentifier.
            ("300a 0608 2a86 48ce 3d04 0302 00", None),
        ];
        for (h, expected) in cases {
            assert_eq!(parse_algorithm(&hex(h)), expected, "{h}");
        }
        // PSS with a salt shorter than the hash is refused (ring cannot verify it).
        let salt20 = hex(
            "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201 0500 \
             a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201 0500 a203 \
             0201 14",
        );
        assert_eq!(parse_algorithm(&salt20), None);
    }

    #[test]
    fn ecdsa_method_9() {
        let (k, cert) = mn1_ec();
        let (method, data) = sign(&k, SignatureStyle::Legacy, OCTETS).unwrap();
        assert_eq!(method, 9);
        assert_eq!(data.len(), 64); // r | s, RFC 4754 7
        verify(&cert, 9, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 9, &data);
        // A DER ECDSA-Sig-Value is not a method 9 signature.
        let (_, ds) = sign(&k, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        assert!(verify(&cert, 9, &ds[13..], OCTETS).is_err());
    }

    #[test]
    fn ecdsa_method_14() {
        let (k, cert) = mn1_ec();
        let (method, data) = sign(&k, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        assert_eq!(method, 14);
        assert_eq!(data[0], 12);
        assert_eq!(&data[1..13], ALG_ECDSA_WITH_SHA256);
        assert_eq!(data[13], 0x30); // ECDSA-Sig-Value SEQUENCE
        verify(&cert, 14, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 14, &data);
    }

    #[test]
    fn rsa_signs_method_14() {
        let (k, cert) = mn1_rsa();
        for style in [SignatureStyle::Legacy, SignatureStyle::DigitalSignature] {
            let (method, data) = sign(&k, style, OCTETS).unwrap();
            assert_eq!(method, 14, "{style:?}");
            assert_eq!(data[0], 15);
            assert_eq!(&data[1..16], ALG_SHA256_WITH_RSA);
            assert_eq!(data.len(), 16 + 256);
            verify(&cert, 14, &data, OCTETS).unwrap();
            assert_tamper_fails(&cert, 14, &data);
        }
    }

    #[test]
    fn peer_hashes_from_the_notify() {
        assert_eq!(
            PeerHashes::from_notify(&[0, 2, 0, 3, 0, 4]),
            PeerHashes::ALL
        );
        // SHA-1 (1) and Identity (5) are not hashes we sign with; an odd byte is ignored.
        assert!(PeerHashes::from_notify(&[0, 1, 0, 5, 9]).is_empty());
        assert!(PeerHashes::from_notify(&[]).is_empty());
        let only_512 = PeerHashes::from_notify(&[0, 1, 0, 4]);
        assert!(only_512.has(Hash::Sha512) && !only_512.has(Hash::Sha256));
        // Bounded: identifiers past the 32nd are not read.
        let mut long = vec![0u8; 64];
        long.extend_from_slice(&[0, 2]);
        assert!(PeerHashes::from_notify(&long).is_empty());
    }

    /// RFC 7427 4: our method 14 signature uses a hash the peer announced.
    #[test]
    fn rsa_signs_with_the_first_hash_the_peer_announced() {
        let (k, cert) = mn1_rsa();
        for (notify, alg) in [
            (&[0u8, 4][..], ALG_SHA512_WITH_RSA),
            (&[0, 4, 0, 3], ALG_SHA384_WITH_RSA),
            (&[0, 4, 0, 3, 0, 2], ALG_SHA256_WITH_RSA),
            // Nothing usable: SHA-256 (ring signs no SHA-1 for method 1).
            (&[0, 1], ALG_SHA256_WITH_RSA),
        ] {
            let peer = PeerHashes::from_notify(notify);
            let (method, data) =
                sign_for(&k, SignatureStyle::DigitalSignature, OCTETS, peer).unwrap();
            assert_eq!(method, 14);
            assert_eq!(&data[1..1 + alg.len()], alg, "{notify:?}");
            verify(&cert, 14, &data, OCTETS).unwrap();
            assert_tamper_fails(&cert, 14, &data);
        }
    }

    #[test]
    fn ecdsa_uses_its_own_method_when_the_peer_did_not_announce_its_hash() {
        let (k, cert) = mn1_ec();
        let only_384 = PeerHashes::from_notify(&[0, 3]);
        let (method, data) =
            sign_for(&k, SignatureStyle::DigitalSignature, OCTETS, only_384).unwrap();
        assert_eq!(method, 9, "P-256 signs SHA-256 only: method 9 names it");
        verify(&cert, 9, &data, OCTETS).unwrap();
        let with_256 = PeerHashes::from_notify(&[0, 3, 0, 2]);
        let (method, data) =
            sign_for(&k, SignatureStyle::DigitalSignature, OCTETS, with_256).unwrap();
        assert_eq!(method, 14);
        assert_eq!(&data[1..13], ALG_ECDSA_WITH_SHA256);
        verify(&cert, 14, &data, OCTETS).unwrap();
    }

    /// Signatures made by OpenSSL (certs/make-certs.sh) over `OPENSSL_OCTETS`.
    const OPENSSL_OCTETS: &[u8] = b"mip6-ike signed octets";
    const PSS_SHA256_ALG: &str = "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 \
        0165 0304 0201 0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 \
        0201 0500 a203 0201 20";

    use crate::testutil::hex;

    #[test]
    fn openssl_signatures_verify() {
        let (_, rsa_cert) = mn1_rsa();
        let (_, ec_cert) = mn1_ec();
        // Method 1: PKCS#1 v1.5 with SHA-1, as strongSwan sends it.
        let sha1 = include_bytes!("../../certs/mn1-rsa-sha1.sig");
        verify(&rsa_cert, 1, sha1, OPENSSL_OCTETS).unwrap();
        assert!(verify(&rsa_cert, 1, sha1, b"mip6-ike signed octetS").is_err());
        assert!(verify(&ec_cert, 1, sha1, OPENSSL_OCTETS).is_err());
        // The same signature under a method 14 sha256WithRSAEncryption header does not verify.
        let as_14 = digital_signature_data(ALG_SHA256_WITH_RSA, sha1);
        assert!(verify(&rsa_cert, 14, &as_14, OPENSSL_OCTETS).is_err());
        // Method 14 with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32).
        let pss = include_bytes!("../../certs/mn1-rsa-pss-sha256.sig");
        let data = digital_signature_data(&hex(PSS_SHA256_ALG), pss);
        verify(&rsa_cert, 14, &data, OPENSSL_OCTETS).unwrap();
        assert!(verify(&rsa_cert, 14, &data, b"other").is_err());
        // Method 14 with ecdsa-with-SHA256.
        let ecdsa = include_bytes!("../../certs/mn1-ecdsa-sha256.sig");
        let data = digital_signature_data(ALG_ECDSA_WITH_SHA256, ecdsa);
        verify(&ec_cert, 14, &data, OPENSSL_OCTETS).unwrap();
        assert!(verify(&rsa_cert, 14, &data, OPENSSL_OCTETS).is_err());
    }

    #[test]
    fn rsa_other_hashes_verify() {
        // Schemes we accept but do not produce, signed here with the key's ring key pair.
        let (k, cert) = mn1_rsa();
        let KeyInner::Rsa(rsa) = &k.inner else {
            panic!("mn1-rsa.key is an RSA key")
        };
        let rng = ring::rand::SystemRandom::new();
        let raw = |enc: &'static dyn rs::RsaEncoding| {
            let mut sig = vec![0u8; rsa.public().modulus_len()];
            rsa.sign(enc, &rng, OCTETS, &mut sig).unwrap();
            sig
        };
        let cases: [(&str, &'static dyn rs::RsaEncoding); 3] = [
            (PSS_SHA256_ALG, &rs::RSA_PSS_SHA256),
            ("300d06092a864886f70d01010d0500", &rs::RSA_PKCS1_SHA512),
            // sha384WithRSAEncryption with the NULL parameters left out.
            ("300b06092a864886f70d01010c", &rs::RSA_PKCS1_SHA384),
        ];
        for (alg, enc) in cases {
            let data = digital_signature_data(&hex(alg), &raw(enc));
            verify(&cert, 14, &data, OCTETS).unwrap();
            assert_tamper_fails(&cert, 14, &data);
        }
        // A SHA-256 PKCS#1 signature is not a method 1 (SHA-1) signature.
        assert!(verify(&cert, 1, &raw(&rs::RSA_PKCS1_SHA256), OCTETS).is_err());
    }

    #[test]
    fn wrong_certificate_or_key_type_fails() {
        let (ec_key, ec_cert) = mn1_ec();
        let (rsa_key, rsa_cert) = mn1_rsa();
        let mn2_ec = peer(include_str!("../../certs/mn2-ecdsa.pem"));
        let mn2_rsa = peer(include_str!("../../certs/mn2-rsa.pem"));
        let (_, ec9) = sign(&ec_key, SignatureStyle::Legacy, OCTETS).unwrap();
        let (_, ec14) = sign(&ec_key, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        let (_, rsa14) = sign(&rsa_key, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        use super::super::Error::BadSignature;
        assert_eq!(verify(&mn2_ec, 9, &ec9, OCTETS), Err(BadSignature));
        assert_eq!(verify(&mn2_ec, 14, &ec14, OCTETS), Err(BadSignature));
        assert_eq!(verify(&mn2_rsa, 14, &rsa14, OCTETS), Err(BadSignature));
        // Algorithm must fit the certificate's key.
        assert_eq!(verify(&rsa_cert, 9, &ec9, OCTETS), Err(BadSignature));
        assert_eq!(verify(&rsa_cert, 14, &ec14, OCTETS), Err(BadSignature));
        assert_eq!(verify(&ec_cert, 14, &rsa14, OCTETS), Err(BadSignature));
        assert_eq!(verify(&ec_cert, 1, &rsa14[16..], OCTETS), Err(BadSignature));
        // Malformed method 14 data and unknown methods.
        for bad in [&[][..], &[12], &ec14[..13], &[200, 0x30]] {
            assert_eq!(verify(&ec_cert, 14, bad, OCTETS), Err(BadSignature));
        }
        assert_eq!(
            verify(&ec_cert, 2, &ec9, OCTETS),
            Err(super::super::Error::UnsupportedMethod(2))
        );
        // Methods 10 and 11 exist now, but not for a P-256 certificate; 12 is unassigned.
        assert_eq!(verify(&ec_cert, 10, &ec9, OCTETS), Err(BadSignature));
        assert_eq!(verify(&ec_cert, 11, &ec9, OCTETS), Err(BadSignature));
        assert_eq!(
            verify(&ec_cert, 12, &ec9, OCTETS),
            Err(super::super::Error::UnsupportedMethod(12))
        );
    }

    #[test]
    fn signature_hash_algorithms() {
        // RFC 7427 4: 2-octet identifiers, SHA2-256 = 2, SHA2-384 = 3, SHA2-512 = 4.
        assert_eq!(signature_hash_algorithms_data(), vec![0, 2, 0, 3, 0, 4]);
        assert_eq!(
            parse_signature_hash_algorithms(&[0, 1, 0, 2, 0, 5, 0]),
            vec![1, 2, 5]
        );
        assert_eq!(parse_signature_hash_algorithms(&[]), Vec::<u16>::new());
        assert_eq!(parse_signature_hash_algorithms(&[0u8; 1000]).len(), 32);
    }

    /// Expected values from Python's hmac module:
    /// `k = hmac.new(psk, b"Key Pad for IKEv2", sha256).digest();
    ///  hmac.new(k, octets, sha256).hexdigest()`.
    #[test]
    fn psk_auth_hmac_sha256() {
        let out = psk_auth(PrfAlg::HmacSha256, b"mip6-ike test psk", OCTETS);
        assert_eq!(crate::auth::identity::hex_encode(&out), PSK_AUTH_SHA256);
    }

    const PSK_AUTH_SHA256: &str =
        "51b979957f2e62ac4129565c4d786d222c0f68d11f718375de6dc9541298469e";

    fn mn1_p384() -> (PrivateKey, PeerCert) {
        (
            key(include_str!("../../certs/mn1-ecdsa384.key")),
            peer(include_str!("../../certs/mn1-ecdsa384.pem")),
        )
    }

    /// A P-521 key, certified by the P-384 CA (a chain webpki on ring can check).
    fn mn1_p521() -> (PrivateKey, PeerCert) {
        (
            key(include_str!("../../certs/mn1-ecdsa521.key")),
            peer(include_str!("../../certs/mn1-ecdsa521.pem")),
        )
    }

    #[test]
    fn ecdsa_p384_methods_10_and_14() {
        let (k, cert) = mn1_p384();
        assert_eq!(cert.key_type, KeyType::EcP384);
        let (method, data) = sign(&k, SignatureStyle::Legacy, OCTETS).unwrap();
        assert_eq!((method, data.len()), (AUTH_ECDSA_SHA384_P384, 96)); // r | s, 48 each
        verify(&cert, 10, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 10, &data);
        // The method number binds curve and hash: 9 or 11 with a P-384 signature fail.
        assert!(verify(&cert, 9, &data, OCTETS).is_err());
        assert!(verify(&cert, 11, &data, OCTETS).is_err());

        let (method, data) = sign(&k, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        assert_eq!(method, 14);
        assert_eq!(data[0], 12);
        assert_eq!(&data[1..13], ALG_ECDSA_WITH_SHA384);
        verify(&cert, 14, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 14, &data);
        // Under another key, or labelled with another hash, it fails.
        let (_, p256) = mn1_ec();
        assert!(verify(&p256, 14, &data, OCTETS).is_err());
        let relabelled = digital_signature_data(ALG_ECDSA_WITH_SHA256, &data[13..]);
        assert!(verify(&cert, 14, &relabelled, OCTETS).is_err());
    }

    #[test]
    fn ecdsa_p521_methods_11_and_14() {
        let (k, cert) = mn1_p521();
        assert_eq!(cert.key_type, KeyType::EcP521);
        assert_eq!(format!("{k:?}"), "PrivateKey(ECDSA P-521)");
        let (method, data) = sign(&k, SignatureStyle::Legacy, OCTETS).unwrap();
        assert_eq!((method, data.len()), (AUTH_ECDSA_SHA512_P521, 132)); // r | s, 66 each
        verify(&cert, 11, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 11, &data);
        assert!(verify(&cert, 10, &data, OCTETS).is_err());
        assert!(verify(&cert, 11, &data[..131], OCTETS).is_err());

        let (method, data) = sign(&k, SignatureStyle::DigitalSignature, OCTETS).unwrap();
        assert_eq!(method, 14);
        assert_eq!(&data[1..13], ALG_ECDSA_WITH_SHA512);
        verify(&cert, 14, &data, OCTETS).unwrap();
        assert_tamper_fails(&cert, 14, &data);
        let (_, p384) = mn1_p384();
        assert!(verify(&p384, 14, &data, OCTETS).is_err());
        assert!(
            verify(
                &p384,
                11,
                &sign(&k, SignatureStyle::Legacy, OCTETS).unwrap().1,
                OCTETS
            )
            .is_err()
        );
    }

    #[test]
    fn openssl_p384_and_p521_signatures_verify() {
        // Made by OpenSSL (certs/make-certs.sh): ECDSA-Sig-Value DER.
        let (_, p384) = mn1_p384();
        let (_, p521) = mn1_p521();
        let sig384 = include_bytes!("../../certs/mn1-ecdsa384-sha384.sig");
        let data = digital_signature_data(ALG_ECDSA_WITH_SHA384, sig384);
        verify(&p384, 14, &data, OPENSSL_OCTETS).unwrap();
        assert!(verify(&p384, 14, &data, b"mip6-ike signed octetS").is_err());
        let sig521 = include_bytes!("../../certs/mn1-ecdsa521-sha512.sig");
        let data = digital_signature_data(ALG_ECDSA_WITH_SHA512, sig521);
        verify(&p521, 14, &data, OPENSSL_OCTETS).unwrap();
        assert!(verify(&p521, 14, &data, b"mip6-ike signed octetS").is_err());
        assert!(verify(&p384, 14, &data, OPENSSL_OCTETS).is_err());
    }
}
