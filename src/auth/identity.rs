//! IKEv2 identities and how they are written in configuration files.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An identity as carried in IDi/IDr.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_DER_ASN1_DN: DER-encoded Name.
    Dn(Vec<u8>),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR.
    Email(String),
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_KEY_ID: opaque bytes.
    KeyId(Vec<u8>),
}

impl Identity {
    /// From an ID payload body (type and data). Rejects malformed values (bad DER, non-ASCII
    /// FQDN, wrong address length).
    pub fn from_wire(id_type: u8, data: &[u8]) -> Result<Identity, super::Error> {
        todo!()
    }
    /// (ID type, data) for an ID payload.
    pub fn to_wire(&self) -> (u8, Vec<u8>) {
        todo!()
    }
    /// Parses the configuration syntax: `dn:C=CH, O=Example, CN=mn1` (RFC 4514-like, RDNs
    /// separated by `,` or `/`, attribute names C, ST, L, O, OU, CN, E/emailAddress, DC, SN,
    /// serialNumber), `fqdn:ha.example.net`, `email:alice@example.net`, `ipv6:2001:db8::1`,
    /// `ipv4:192.0.2.1`, `keyid:0a1b2c` (hex). The error says what to write instead.
    pub fn parse_config(s: &str) -> Result<Identity, super::Error> {
        todo!()
    }
}

/// Readable form, the same syntax `parse_config` accepts (DNs as `dn:C=CH, O=..., CN=...`).
impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!()
    }
}

/// Semantic DN equality (stub until the auth branch lands).
pub fn dn_equal(a_der: &[u8], b_der: &[u8]) -> bool {
    a_der == b_der
}

/// DN pattern match with `*` RDN values (stub until the auth branch lands).
pub fn dn_matches_pattern(_pattern: &str, _dn_der: &[u8]) -> bool {
    false
}
