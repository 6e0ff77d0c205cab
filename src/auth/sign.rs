//! AUTH payload content: signatures over the signed octets (RFC 7296 2.15) and PSK.

use super::{PeerCert, PrivateKey};
use crate::crypto::PrfAlg;

/// Which encoding of a signature to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStyle {
    /// Method 1 (RSA PKCS#1 v1.5, SHA-1 as RFC 7296 implies) or method 9 (ECDSA P-256 with
    /// SHA-256, r | s, RFC 4754), chosen by the key type.
    Legacy,
    /// Method 14 (RFC 7427): ASN.1 AlgorithmIdentifier + signature, SHA-256.
    DigitalSignature,
}

/// Signs `octets` with `key`; returns (auth method, AUTH data).
pub fn sign(
    key: &PrivateKey,
    style: SignatureStyle,
    octets: &[u8],
) -> Result<(u8, Vec<u8>), super::Error> {
    todo!()
}

/// Verifies an AUTH payload (method 1, 9 or 14) against the peer's certificate.
pub fn verify(peer: &PeerCert, method: u8, data: &[u8], octets: &[u8]) -> Result<(), super::Error> {
    todo!()
}

/// AUTH data for method 2: prf(prf(PSK, "Key Pad for IKEv2"), octets).
pub fn psk_auth(prf: PrfAlg, psk: &[u8], octets: &[u8]) -> Vec<u8> {
    todo!()
}

/// SIGNATURE_HASH_ALGORITHMS data (stub until the auth branch lands).
pub fn signature_hash_algorithms_data() -> Vec<u8> {
    vec![0, 2, 0, 3, 0, 4]
}
