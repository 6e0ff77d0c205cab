//! Helpers shared by the wire unit tests.

use super::{Error, Payload, emit_payloads, parse_payloads};

pub(super) use crate::testutil::hex;

/// Emits `p` alone, checks that it parses back equal and re-emits the same bytes; returns the
/// bytes (generic header included).
pub(super) fn round_trip(p: Payload) -> Vec<u8> {
    let mut out = Vec::new();
    let first = emit_payloads(std::slice::from_ref(&p), &mut out);
    assert_eq!(first, p.payload_type());
    assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), out.len());
    let parsed = parse_payloads(first, &out).expect("own output parses");
    assert_eq!(parsed, vec![p]);
    let mut again = Vec::new();
    emit_payloads(&parsed, &mut again);
    assert_eq!(again, out);
    out
}

/// Parses `body` as the only payload of a chain, of type `payload_type`.
pub(super) fn parse_one(payload_type: u8, body: &[u8]) -> Result<Payload, Error> {
    let mut buf = vec![0, 0];
    buf.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
    buf.extend_from_slice(body);
    let mut v = parse_payloads(payload_type, &buf)?;
    assert_eq!(v.len(), 1);
    Ok(v.remove(0))
}
