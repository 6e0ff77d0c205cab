//! IKEv2 bytes <-> typed messages (RFC 7296 section 3). No crypto, no state.
//!
//! Every type here has a `parse` that never panics on hostile input and never allocates more than
//! the input's size, and an `emit` that reproduces the parsed bytes exactly.
//! Numeric code points are kept as plain integers with named constants in [`consts`], so values we
//! do not know survive a round trip.

pub mod consts;
mod message;
mod payload;
mod reader;
mod sa;
#[cfg(test)]
mod testutil;
mod ts;

pub use message::{Header, Message, emit_payloads, parse_payloads};

use std::net::IpAddr;

/// Errors from parsing. Each names what was wrong so the engine can log it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("bad length: {0}")]
    BadLength(&'static str),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    #[error("too many elements: {0}")]
    TooMany(&'static str),
    #[error("unsupported IKE major version {0}")]
    Version(u8),
}

/// Upper bounds that keep parsing of hostile input bounded.
pub mod limits {
    /// Largest IKE message we accept (RFC 7296 says 1280 must be supported; UDP caps at 64 KiB).
    pub const MAX_MESSAGE: usize = 65_535;
    /// Payloads per message (chain length).
    pub const MAX_PAYLOADS: usize = 64;
    /// Proposals per SA payload, transforms per proposal, attributes per transform.
    pub const MAX_PROPOSALS: usize = 64;
    pub const MAX_TRANSFORMS: usize = 64;
    pub const MAX_ATTRIBUTES: usize = 16;
    /// Traffic selectors per TS payload, configuration attributes per CP payload.
    pub const MAX_SELECTORS: usize = 64;
    pub const MAX_CONFIG_ATTRIBUTES: usize = 64;
    /// SPIs per Delete payload.
    pub const MAX_DELETE_SPIS: usize = 1024;
}

/// One payload of an IKEv2 message. The generic payload header (next payload, critical bit,
/// length) is implied: `emit` recomputes it from the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Security Association (33).
    Sa(Vec<Proposal>),
    /// Key Exchange (34).
    Ke { group: u16, data: Vec<u8> },
    /// Identification - Initiator (35).
    IdI(Id),
    /// Identification - Responder (36).
    IdR(Id),
    /// Certificate (37).
    Cert { encoding: u8, data: Vec<u8> },
    /// Certificate Request (38).
    CertReq { encoding: u8, data: Vec<u8> },
    /// Authentication (39).
    Auth { method: u8, data: Vec<u8> },
    /// Nonce (40).
    Nonce(Vec<u8>),
    /// Notify (41).
    Notify(Notify),
    /// Delete (42).
    Delete(Delete),
    /// Vendor ID (43).
    VendorId(Vec<u8>),
    /// Traffic Selector - Initiator (44).
    TsI(Vec<TrafficSelector>),
    /// Traffic Selector - Responder (45).
    TsR(Vec<TrafficSelector>),
    /// Encrypted and Authenticated (46): `first_inner` is the type of the first payload inside,
    /// `body` is IV | ciphertext | ICV exactly as on the wire. Must be the last payload.
    Sk { first_inner: u8, body: Vec<u8> },
    /// Encrypted Fragment (53, RFC 7383 2.5): one piece of an SK payload's content. `first_inner`
    /// is the first inner payload's type in fragment 1 and 0 in the others; `number` is 1-based
    /// and at most `total`; `body` is IV | ciphertext | ICV of this fragment alone. Must be the
    /// last (and in practice the only) payload.
    Skf {
        first_inner: u8,
        number: u16,
        total: u16,
        body: Vec<u8>,
    },
    /// Configuration (47).
    Cp(ConfigPayload),
    /// Any payload type we do not implement. Kept so that the engine can answer
    /// UNSUPPORTED_CRITICAL_PAYLOAD when `critical` is set and skip it otherwise.
    Unknown {
        payload_type: u8,
        critical: bool,
        data: Vec<u8>,
    },
}

/// A proposal substructure (RFC 7296 3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number, 1-based, as sent.
    pub number: u8,
    /// consts::PROTO_IKE or consts::PROTO_ESP (or AH, which we refuse elsewhere).
    pub protocol_id: u8,
    /// Empty in the initial IKE_SA_INIT, 8 bytes for IKE SA rekeying, 4 bytes for ESP.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// A transform substructure (RFC 7296 3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// consts::TRANS_ENCR, TRANS_PRF, TRANS_INTEG, TRANS_DH, TRANS_ESN.
    pub transform_type: u8,
    pub transform_id: u16,
    pub attributes: Vec<TransformAttribute>,
}

/// A transform attribute (RFC 7296 3.3.5). The only one defined is Key Length (14, TV format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformAttribute {
    /// Type/Value format (AF bit set): 15-bit type, 16-bit value.
    Tv { attr_type: u16, value: u16 },
    /// Type/Length/Value format (AF bit clear).
    Tlv { attr_type: u16, value: Vec<u8> },
}

/// Identification payload body (RFC 7296 3.5). `data` is interpreted by `auth::Identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    pub id_type: u8,
    pub data: Vec<u8>,
}

/// Notify payload (RFC 7296 3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// 0 when no SPI, PROTO_IKE / PROTO_ESP otherwise.
    pub protocol_id: u8,
    /// SPI of the size the sender chose (0, 4 or 8 bytes).
    pub spi: Vec<u8>,
    pub notify_type: u16,
    pub data: Vec<u8>,
}

/// Delete payload (RFC 7296 3.11). For the IKE SA: protocol 1, no SPIs.
/// For ESP: protocol 3, `spi_size` 4, one entry per SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol_id: u8,
    pub spi_size: u8,
    /// Each entry is exactly `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

/// A traffic selector (RFC 7296 3.13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSelector {
    /// consts::TS_IPV4_ADDR_RANGE (7) or TS_IPV6_ADDR_RANGE (8).
    pub ts_type: u8,
    /// 0 = any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    /// Same family as `ts_type`; checked by parse.
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

/// Configuration payload (RFC 7296 3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPayload {
    /// consts::CFG_REQUEST (1), CFG_REPLY (2), CFG_SET (3), CFG_ACK (4).
    pub cfg_type: u8,
    pub attributes: Vec<ConfigAttribute>,
}

/// A configuration attribute (RFC 7296 3.15.1); the reserved top bit is dropped on parse and
/// emitted as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAttribute {
    pub attr_type: u16,
    pub value: Vec<u8>,
}

impl Payload {
    /// The payload type number of this payload (consts::PL_*).
    pub fn payload_type(&self) -> u8 {
        use consts::*;
        match self {
            Payload::Sa(_) => PL_SA,
            Payload::Ke { .. } => PL_KE,
            Payload::IdI(_) => PL_IDI,
            Payload::IdR(_) => PL_IDR,
            Payload::Cert { .. } => PL_CERT,
            Payload::CertReq { .. } => PL_CERTREQ,
            Payload::Auth { .. } => PL_AUTH,
            Payload::Nonce(_) => PL_NONCE,
            Payload::Notify(_) => PL_NOTIFY,
            Payload::Delete(_) => PL_DELETE,
            Payload::VendorId(_) => PL_VENDOR,
            Payload::TsI(_) => PL_TSI,
            Payload::TsR(_) => PL_TSR,
            Payload::Sk { .. } => PL_SK,
            Payload::Skf { .. } => PL_SKF,
            Payload::Cp(_) => PL_CP,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: u8, transform_id: u16) -> Self {
        Transform {
            transform_type,
            transform_id,
            attributes: Vec::new(),
        }
    }
    /// A transform with the Key Length attribute (TV, type 14).
    pub fn with_key_length(transform_type: u8, transform_id: u16, bits: u16) -> Self {
        Transform {
            transform_type,
            transform_id,
            attributes: vec![TransformAttribute::Tv {
                attr_type: consts::ATTR_KEY_LENGTH,
                value: bits,
            }],
        }
    }
    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            TransformAttribute::Tv { attr_type, value }
                if *attr_type == consts::ATTR_KEY_LENGTH =>
            {
                Some(*value)
            }
            _ => None,
        })
    }
}

impl TrafficSelector {
    /// An address-range selector whose `ts_type` follows the addresses' family; `None` when the
    /// two addresses are of different families.
    pub fn range(
        ip_protocol: u8,
        start_port: u16,
        end_port: u16,
        start_addr: IpAddr,
        end_addr: IpAddr,
    ) -> Option<Self> {
        let ts_type = match (start_addr, end_addr) {
            (IpAddr::V4(_), IpAddr::V4(_)) => consts::TS_IPV4_ADDR_RANGE,
            (IpAddr::V6(_), IpAddr::V6(_)) => consts::TS_IPV6_ADDR_RANGE,
            _ => return None,
        };
        Some(TrafficSelector {
            ts_type,
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        })
    }
}

impl Notify {
    /// A notify without SPI.
    pub fn new(notify_type: u16, data: Vec<u8>) -> Self {
        Notify {
            protocol_id: 0,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }
}
