//! Building and opening SK-protected messages (RFC 7296 3.14).

use crate::crypto::{Rng, SkKeys};
use crate::wire::consts::PL_SK;
use crate::wire::{Header, Message, Payload, emit_payloads, parse_payloads};

/// Emits `payloads` inside an SK payload under `header` (its `next_payload` and `length` are
/// computed here).
pub fn seal(keys: &SkKeys, rng: &mut dyn Rng, mut header: Header, payloads: &[Payload]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(256);
    let first = emit_payloads(payloads, &mut inner);
    let body_len = keys.sealed_len(inner.len());
    header.next_payload = PL_SK;
    header.length = (Header::LEN + 4 + body_len) as u32;
    let mut out = Vec::with_capacity(header.length as usize);
    header.emit(&mut out);
    out.push(first);
    out.push(0);
    out.extend_from_slice(&((4 + body_len) as u16).to_be_bytes());
    let mut iv = [0u8; 16];
    let iv = &mut iv[..keys.iv_len()];
    rng.fill(iv);
    let aad = out.clone();
    keys.seal(&aad, iv, &inner, &mut out);
    zeroize::Zeroize::zeroize(&mut inner);
    out
}

/// Why a protected message was not accepted.
#[derive(Debug)]
pub enum OpenError {
    /// No SK payload, or it is not the last one.
    NotProtected,
    /// ICV or decryption failure: drop silently (RFC 7296 2.21.2).
    Integrity,
    /// The decrypted content does not parse.
    Syntax(crate::wire::Error),
}

/// Verifies and decrypts the SK payload of `msg` (parsed from `datagram`) and parses its content.
pub fn open(keys: &SkKeys, datagram: &[u8], msg: &Message) -> Result<Vec<Payload>, OpenError> {
    let Some(Payload::Sk { first_inner, body }) = msg.payloads.last() else {
        return Err(OpenError::NotProtected);
    };
    let aad_len = datagram
        .len()
        .checked_sub(body.len())
        .ok_or(OpenError::NotProtected)?;
    let plain = keys
        .open(&datagram[..aad_len], body)
        .map_err(|_| OpenError::Integrity)?;
    parse_payloads(*first_inner, &plain).map_err(OpenError::Syntax)
}
