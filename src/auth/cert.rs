//! Certificates: trust anchors, chain validation (rustls-webpki), identity checks (x509-parser),
//! CERTREQ hashes (SHA-1 of the CA's SubjectPublicKeyInfo, RFC 7296 3.7).

use super::Identity;

/// The CAs we trust for peer certificates.
pub struct TrustAnchors {
    // filled in by the implementation
}

impl TrustAnchors {
    /// From PEM text holding one or more CA certificates.
    pub fn from_pem(pem: &str) -> Result<TrustAnchors, super::Error> {
        todo!()
    }
    /// From DER certificates.
    pub fn from_der(certs: Vec<Vec<u8>>) -> Result<TrustAnchors, super::Error> {
        todo!()
    }
    /// CERTREQ payload data: the concatenated 20-byte SHA-1 hashes of our CAs' public keys.
    pub fn certreq_data(&self) -> Vec<u8> {
        todo!()
    }
    /// True when one of the hashes in a peer's CERTREQ data names one of our CAs (used to choose
    /// which chain to send; we send ours anyway when none matches).
    pub fn certreq_matches(&self, data: &[u8]) -> bool {
        todo!()
    }
    /// Validates `end_entity` (DER) with optional `intermediates` up to one of the anchors at
    /// `unix_time` (seconds).
    pub fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[&[u8]],
        unix_time: u64,
    ) -> Result<PeerCert, super::Error> {
        todo!()
    }
}

/// A validated peer certificate: what AUTH verification and identity checks need.
pub struct PeerCert {
    // filled in by the implementation
}

impl PeerCert {
    /// Whether `id` is bound to this certificate: DN equal to the subject, or FQDN / email /
    /// IP address present in subjectAltName. KEY_ID never matches a certificate.
    pub fn matches_identity(&self, id: &Identity) -> bool {
        todo!()
    }
    /// The subject as an Identity::Dn.
    pub fn subject(&self) -> Identity {
        todo!()
    }
}

/// Parses one PEM file's certificates into DER (for our own chain to send in CERT payloads).
pub fn certs_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, super::Error> {
    todo!()
}
