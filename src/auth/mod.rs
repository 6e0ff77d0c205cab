//! Who the peer is: identities (RFC 7296 3.5), certificates and their chains, private keys,
//! AUTH payload signatures (methods 1, 9, 14 of RFC 7296 / RFC 7427) and PSK (method 2).

pub mod cert;
mod der;
pub mod identity;
pub mod key;
pub mod ocsp;
pub mod revocation;
pub mod sign;

pub use cert::{PeerCert, TrustAnchors};
pub use identity::{Identity, dn_equal, dn_matches_pattern};
pub use key::PrivateKey;
pub use sign::{
    PeerHashes, SignatureStyle, parse_signature_hash_algorithms, psk_auth, sign, sign_for,
    signature_hash_algorithms_data, verify,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("identity: {0}")]
    Identity(String),
    #[error("signature verification failed")]
    BadSignature,
    #[error("unsupported authentication method {0}")]
    UnsupportedMethod(u8),
    #[error("signing failed")]
    SignFailed,
}
