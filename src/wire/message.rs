//! The IKE header and whole messages.

use super::{Error, Payload};

/// The fixed IKE header (RFC 7296 3.1), 28 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: u8,
    /// Major version in the high nibble, minor in the low one (0x20 for IKEv2).
    pub version: u8,
    pub exchange: u8,
    /// consts::FLAG_INITIATOR | FLAG_RESPONSE | FLAG_VERSION.
    pub flags: u8,
    pub message_id: u32,
    /// Total message length, header included.
    pub length: u32,
}

impl Header {
    pub const LEN: usize = 28;

    /// Parses the header alone (used to route a datagram before the body is looked at).
    /// Fails on short input, on a major version other than 2 (`Error::Version`, so the caller can
    /// answer INVALID_MAJOR_VERSION) and when `length` disagrees with `buf.len()`.
    pub fn parse(buf: &[u8]) -> Result<Header, Error> {
        todo!()
    }

    /// Appends the 28 header bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        todo!()
    }

    pub fn is_response(&self) -> bool {
        self.flags & super::consts::FLAG_RESPONSE != 0
    }
    pub fn is_initiator(&self) -> bool {
        self.flags & super::consts::FLAG_INITIATOR != 0
    }
}

/// A whole IKE message: header plus payload chain. When the message is protected, the last
/// payload is `Payload::Sk` and the header's `next_payload` chain leads to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a datagram (without the 4-byte non-ESP marker of port 4500).
    pub fn parse(buf: &[u8]) -> Result<Message, Error> {
        todo!()
    }

    /// Emits the message; `header.next_payload` and `header.length` are recomputed from the
    /// payloads, every other header field is taken as is.
    pub fn emit(&self) -> Vec<u8> {
        todo!()
    }
}

/// Parses a payload chain that starts with a payload of type `first` and fills `buf` exactly
/// (used for the decrypted content of an SK payload). An SK payload inside is an error.
pub fn parse_payloads(first: u8, buf: &[u8]) -> Result<Vec<Payload>, Error> {
    todo!()
}

/// Emits a payload chain; returns the type of the first payload (PL_NONE for an empty chain)
/// and appends the bytes to `out`.
pub fn emit_payloads(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    todo!()
}
