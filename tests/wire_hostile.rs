//! Hostile input: truncations, deterministic random mutations and oversized counts must give
//! errors (or well-formed messages), never panics.

mod common;

#[allow(dead_code)]
#[path = "fixtures/wire/fixtures.rs"]
mod fixtures;

use common::xorshift::XorShift;
use fixtures::{Kind, hex};
use mip6_ike::wire::consts::*;
use mip6_ike::wire::*;

fn parse(kind: Kind, bytes: &[u8]) -> Result<Vec<Payload>, Error> {
    match kind {
        Kind::Message => Message::parse(bytes).map(|m| m.payloads),
        Kind::Chain(first) => parse_payloads(first, bytes),
    }
}

/// Sets the header length field to the buffer length, so that a truncation is caught by the
/// payload walk rather than by the header check alone.
fn fix_header_length(b: &mut [u8]) {
    if b.len() >= Header::LEN {
        let len = u32::try_from(b.len()).unwrap().to_be_bytes();
        b[24..28].copy_from_slice(&len);
    }
}

#[test]
fn every_truncation_is_an_error() {
    for f in fixtures::all() {
        assert!(parse(f.kind, &f.bytes).is_ok(), "{} parses whole", f.name);
        for n in 0..f.bytes.len() {
            let mut cut = f.bytes[..n].to_vec();
            assert!(parse(f.kind, &cut).is_err(), "{} cut at {n}", f.name);
            if f.kind == Kind::Message {
                fix_header_length(&mut cut);
                assert!(
                    parse(f.kind, &cut).is_err(),
                    "{} cut at {n} with header length fixed",
                    f.name
                );
            }
        }
        // And one byte too many.
        let mut longer = f.bytes.clone();
        longer.push(0);
        if f.kind == Kind::Message {
            fix_header_length(&mut longer);
        }
        assert!(parse(f.kind, &longer).is_err(), "{} plus one byte", f.name);
    }
}

/// If a mutated input parses, what we emit from it must parse to the same value (emit is
/// canonical: critical bits of known payloads, reserved bits and substructure flags are derived).
fn check_stable(kind: Kind, payloads: &[Payload], header: Option<Header>) {
    match kind {
        Kind::Message => {
            let m = Message {
                header: header.unwrap(),
                payloads: payloads.to_vec(),
            };
            let out = m.emit();
            let again = Message::parse(&out).expect("own output parses");
            assert_eq!(again.payloads, m.payloads);
            assert_eq!(again.emit(), out);
        }
        Kind::Chain(_) => {
            let mut out = Vec::new();
            let first = emit_payloads(payloads, &mut out);
            let again = parse_payloads(first, &out).expect("own output parses");
            assert_eq!(again, payloads);
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut parsed_ok = 0usize;
    let mut total = 0usize;
    for f in fixtures::all() {
        for round in 0..400 {
            let mut b = f.bytes.clone();
            match round % 4 {
                // Overwrite 1-4 random bytes.
                0 | 1 => {
                    for _ in 0..=rng.below(4) {
                        let i = rng.below(b.len());
                        b[i] = rng.byte();
                    }
                }
                // Flip one bit: catches flag and length fields precisely.
                2 => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                // Cut or extend at a random point, then damage one byte.
                _ => {
                    let n = rng.below(b.len() + 16);
                    b.resize(n, rng.byte());
                    if !b.is_empty() {
                        let i = rng.below(b.len());
                        b[i] = rng.byte();
                    }
                }
            }
            // Half the time, keep the header length consistent so the body gets exercised.
            if f.kind == Kind::Message && rng.below(2) == 0 {
                fix_header_length(&mut b);
            }
            total += 1;
            let header = match f.kind {
                Kind::Message => Header::parse(&b).ok(),
                Kind::Chain(_) => None,
            };
            if let Ok(payloads) = parse(f.kind, &b) {
                parsed_ok += 1;
                check_stable(f.kind, &payloads, header);
            }
        }
    }
    assert_eq!(total, 8 * 400);
    // Some mutations land in opaque data and still parse; the canonical-emit check ran on them.
    assert!(parsed_ok > 100, "only {parsed_ok} mutations parsed");
}

/// A payload with a generic header in front of `body`.
fn payload(next: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![next, 0];
    v.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A full IKE_SA_INIT datagram around a chain.
fn message(first: u8, chain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        spi_i: 1,
        spi_r: 0,
        next_payload: first,
        version: IKE_VERSION,
        exchange: IKE_SA_INIT,
        flags: FLAG_INITIATOR,
        message_id: 0,
        length: u32::try_from(Header::LEN + chain.len()).unwrap(),
    }
    .emit(&mut out);
    out.extend_from_slice(chain);
    out
}

#[test]
fn oversized_counts_are_refused() {
    let too_many = |b: &[u8]| matches!(Message::parse(b), Err(Error::TooMany(_)));

    // Delete announcing 65535 SPIs of 4 bytes, with only 8 bytes present.
    let d = payload(0, &hex("03 04 ffff c0ffee01 c0ffee02"));
    assert!(too_many(&message(PL_DELETE, &d)));
    // Delete announcing 65535 zero-size SPIs (would cost no input at all).
    let d = payload(0, &hex("03 00 ffff"));
    assert!(too_many(&message(PL_DELETE, &d)));

    // TS payload announcing 255 selectors.
    let ts = payload(0, &hex("ff 000000  07 00 0010 0000 ffff 00000000 ffffffff"));
    assert!(too_many(&message(PL_TSI, &ts)));

    // Proposal announcing 255 transforms.
    let sa = payload(0, &hex("00 00 0010 01 01 00 ff  00 00 0008 04 00 001f"));
    assert!(too_many(&message(PL_SA, &sa)));

    // A chain of 65 empty Vendor ID payloads.
    let mut chain = Vec::new();
    for i in 0..=limits::MAX_PAYLOADS {
        let next = if i < limits::MAX_PAYLOADS {
            PL_VENDOR
        } else {
            0
        };
        chain.extend_from_slice(&payload(next, &[]));
    }
    assert!(too_many(&message(PL_VENDOR, &chain)));

    // A datagram above the size limit, even with a consistent header.
    let mut m = message(PL_NONE, &[]);
    m.resize(limits::MAX_MESSAGE + 1, 0);
    fix_header_length(&mut m);
    assert!(matches!(Message::parse(&m), Err(Error::BadLength(_))));
}

#[test]
fn unsupported_major_version_is_reported() {
    let mut b = fixtures::ike_sa_init_request();
    b[17] = 0x10; // IKEv1 header
    assert_eq!(Message::parse(&b), Err(Error::Version(1)));
    b[17] = 0x30;
    assert_eq!(Header::parse(&b), Err(Error::Version(3)));
}

#[test]
fn unknown_critical_payload_is_kept_for_the_engine() {
    // IKE_SA_INIT with an unknown critical payload type 250 before the SA payload: parse keeps it
    // so the engine can answer UNSUPPORTED_CRITICAL_PAYLOAD.
    let b = fixtures::ike_sa_init_request();
    let mut chain = vec![PL_SA, 0x80, 0, 6, 0xab, 0xcd];
    chain.extend_from_slice(&b[Header::LEN..]);
    let m = Message::parse(&message(250, &chain)).unwrap();
    assert_eq!(
        m.payloads[0],
        Payload::Unknown {
            payload_type: 250,
            critical: true,
            data: vec![0xab, 0xcd]
        }
    );
    assert_eq!(m.payloads.len(), 6);
    assert_eq!(m.emit(), message(250, &chain));
}
