//! Building and opening SK-protected messages (RFC 7296 3.14), whole or in RFC 7383 fragments.

use crate::crypto::{Rng, Secret, SkKeys};
use crate::wire::consts::{PL_SK, PL_SKF};
use crate::wire::{Header, Message, Payload, emit_payloads, parse_payloads};

/// Emits `payloads` inside an SK payload under `header` (its `next_payload` and `length` are
/// computed here).
pub fn seal(keys: &SkKeys, rng: &mut dyn Rng, header: Header, payloads: &[Payload]) -> Vec<u8> {
    let mut inner = Secret::new(Vec::with_capacity(256));
    let first = emit_payloads(payloads, &mut inner);
    seal_whole(keys, rng, header, first, &inner)
}

/// Emits `payloads` as one SK message when it is at most `max_len` bytes long, and otherwise as
/// Encrypted Fragment messages of at most `max_len` bytes each (RFC 7383 2.5), in order. Each
/// fragment carries the same header (exchange, flags, message ID) and is protected on its own:
/// its IKE header and SKF header (with Fragment Number and Total Fragments) are the associated
/// data. Falls back to one whole message when `max_len` leaves no room for content.
pub fn seal_fragmented(
    keys: &SkKeys,
    rng: &mut dyn Rng,
    mut header: Header,
    payloads: &[Payload],
    max_len: usize,
) -> Vec<Vec<u8>> {
    let mut inner = Secret::new(Vec::with_capacity(256));
    let first = emit_payloads(payloads, &mut inner);
    let whole_len = Header::LEN + 4 + keys.sealed_len(inner.len());
    let cap = fragment_capacity(keys, max_len);
    if whole_len <= max_len || cap == 0 || inner.len().div_ceil(cap) > usize::from(u16::MAX) {
        return vec![seal_whole(keys, rng, header, first, &inner)];
    }
    let total = inner.len().div_ceil(cap) as u16;
    header.next_payload = PL_SKF;
    inner
        .chunks(cap)
        .enumerate()
        .map(|(i, chunk)| {
            let body_len = keys.sealed_len(chunk.len());
            header.length = (Header::LEN + 8 + body_len) as u32;
            let mut out = Vec::with_capacity(header.length as usize);
            header.emit(&mut out);
            // RFC 7383 2.5: only fragment 1 names the first inner payload.
            out.push(if i == 0 { first } else { 0 });
            out.push(0);
            out.extend_from_slice(&((8 + body_len) as u16).to_be_bytes());
            out.extend_from_slice(&(i as u16 + 1).to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
            let mut iv = [0u8; 16];
            let iv = &mut iv[..keys.iv_len()];
            rng.fill(iv);
            let aad = out.clone();
            keys.seal(&aad, iv, chunk, &mut out);
            out
        })
        .collect()
}

/// The most content one fragment message of at most `max_len` bytes carries (0: none fits).
fn fragment_capacity(keys: &SkKeys, max_len: usize) -> usize {
    let budget = max_len.saturating_sub(Header::LEN + 8);
    // sealed_len(n) is n plus IV, ICV and at most one block of padding: start there and step
    // down to the largest n that fits.
    let mut n = budget.saturating_sub(keys.sealed_len(0));
    while n > 0 && keys.sealed_len(n) > budget {
        n -= 1;
    }
    n
}

fn seal_whole(
    keys: &SkKeys,
    rng: &mut dyn Rng,
    mut header: Header,
    first: u8,
    inner: &[u8],
) -> Vec<u8> {
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
    keys.seal(&aad, iv, inner, &mut out);
    out
}

/// Why a protected message was not accepted.
#[derive(Debug)]
pub enum OpenError {
    /// No SK (or SKF) payload, or it is not the last one.
    NotProtected,
    /// ICV or decryption failure: drop silently (RFC 7296 2.21.2).
    Integrity,
    /// The decrypted content does not parse.
    Syntax(crate::wire::Error),
}

/// One verified and decrypted Encrypted Fragment.
pub struct Fragment {
    /// The first inner payload's type (meaningful in fragment 1 only).
    pub first_inner: u8,
    pub number: u16,
    pub total: u16,
    /// This fragment's share of the SK content (wiped on drop).
    pub plain: Secret,
}

/// What a protected message held.
pub enum Opened {
    /// A whole SK payload, parsed.
    Whole(Vec<Payload>),
    /// One fragment, verified: its content is parsed only once all fragments are in.
    Fragment(Fragment),
}

/// Verifies and decrypts the SK payload of `msg` (parsed from `datagram`) and parses its content.
pub fn open(keys: &SkKeys, datagram: &[u8], msg: &Message) -> Result<Vec<Payload>, OpenError> {
    match open_any(keys, datagram, msg)? {
        Opened::Whole(p) => Ok(p),
        Opened::Fragment(_) => Err(OpenError::NotProtected),
    }
}

/// Like [`open`], but also takes an Encrypted Fragment, which is verified and decrypted here
/// (every fragment is checked on its own before anything keeps it, RFC 7383 2.6).
pub fn open_any(keys: &SkKeys, datagram: &[u8], msg: &Message) -> Result<Opened, OpenError> {
    let body = match msg.payloads.last() {
        Some(Payload::Sk { body, .. } | Payload::Skf { body, .. }) => body,
        _ => return Err(OpenError::NotProtected),
    };
    // Everything before the IV is associated data: for SKF that includes Fragment Number and
    // Total Fragments, so a forger cannot renumber a fragment.
    let aad_len = datagram
        .len()
        .checked_sub(body.len())
        .ok_or(OpenError::NotProtected)?;
    let plain = keys
        .open(&datagram[..aad_len], body)
        .map_err(|_| OpenError::Integrity)?;
    match msg.payloads.last() {
        Some(Payload::Skf {
            first_inner,
            number,
            total,
            ..
        }) => Ok(Opened::Fragment(Fragment {
            first_inner: *first_inner,
            number: *number,
            total: *total,
            plain,
        })),
        Some(Payload::Sk { first_inner, .. }) => parse_payloads(*first_inner, &plain)
            .map(Opened::Whole)
            .map_err(OpenError::Syntax),
        _ => Err(OpenError::NotProtected),
    }
}
