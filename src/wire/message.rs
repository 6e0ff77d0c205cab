//! The IKE header and whole messages.

use super::consts::{PL_NONE, PL_SK, PL_SKF};
use super::payload::{emit_body, parse_body};
use super::reader::{Reader, patch_len16};
use super::{Error, Payload, limits};

/// Generic payload header (RFC 7296 3.2): next payload, critical bit + reserved, length.
const GENERIC_HEADER: usize = 4;
const CRITICAL: u8 = 0x80;
/// Offsets of the header fields that `Message::emit` fills in last.
const OFF_NEXT_PAYLOAD: usize = 16;
const OFF_LENGTH: usize = 24;

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
        let header = Header::peek(buf)?;
        // The version comes before the length check: an IKEv1 or future-version datagram should
        // be reported as such, not as a malformed one.
        if header.version >> 4 != 2 {
            return Err(Error::Version(header.version >> 4));
        }
        if buf.len() > limits::MAX_MESSAGE {
            return Err(Error::BadLength("message larger than the limit"));
        }
        if usize::try_from(header.length).ok() != Some(buf.len()) {
            return Err(Error::BadLength(
                "header length disagrees with the datagram",
            ));
        }
        Ok(header)
    }

    /// Reads the 28 header fields without checking version or length: enough to address an
    /// error answer (INVALID_MAJOR_VERSION) to a datagram `parse` refuses.
    pub fn peek(buf: &[u8]) -> Result<Header, Error> {
        let mut r = Reader::new(buf);
        Ok(Header {
            spi_i: r.u64("IKE header")?,
            spi_r: r.u64("IKE header")?,
            next_payload: r.u8("IKE header")?,
            version: r.u8("IKE header")?,
            exchange: r.u8("IKE header")?,
            flags: r.u8("IKE header")?,
            message_id: r.u32("IKE header")?,
            length: r.u32("IKE header")?,
        })
    }

    /// Appends the 28 header bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.extend_from_slice(&[self.next_payload, self.version, self.exchange, self.flags]);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
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
        let header = Header::parse(buf)?;
        let body = buf.get(Header::LEN..).unwrap_or_default();
        let payloads = parse_chain(header.next_payload, body, true)?;
        Ok(Message { header, payloads })
    }

    /// Emits the message; `header.next_payload` and `header.length` are recomputed from the
    /// payloads, every other header field is taken as is.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.header.emit(&mut out);
        let first = emit_payloads(&self.payloads, &mut out);
        let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
        if let Some(b) = out.get_mut(OFF_NEXT_PAYLOAD) {
            *b = first;
        }
        if let Some(dst) = out.get_mut(OFF_LENGTH..OFF_LENGTH + 4) {
            dst.copy_from_slice(&len.to_be_bytes());
        }
        out
    }
}

/// Parses a payload chain that starts with a payload of type `first` and fills `buf` exactly
/// (used for the decrypted content of an SK payload). An SK payload inside is an error.
pub fn parse_payloads(first: u8, buf: &[u8]) -> Result<Vec<Payload>, Error> {
    if buf.len() > limits::MAX_MESSAGE {
        return Err(Error::BadLength("payload chain larger than the limit"));
    }
    parse_chain(first, buf, false)
}

/// Walks the chain of generic payload headers. The chain must end (next payload 0, or an SK
/// payload when `allow_sk`) exactly at the end of `buf`.
fn parse_chain(first: u8, buf: &[u8], allow_sk: bool) -> Result<Vec<Payload>, Error> {
    let mut payloads = Vec::new();
    let mut next = first;
    let mut rest = buf;
    while next != PL_NONE {
        if payloads.len() >= limits::MAX_PAYLOADS {
            return Err(Error::TooMany("payloads"));
        }
        let this = next;
        let mut r = Reader::new(rest);
        next = r.u8("generic payload header")?;
        let critical = r.u8("generic payload header")? & CRITICAL != 0;
        let len = usize::from(r.u16("generic payload header")?);
        if len < GENERIC_HEADER {
            return Err(Error::BadLength("payload length below 4"));
        }
        let body = r.take(len - GENERIC_HEADER, "payload runs past the end")?;
        rest = r.rest();
        if this == PL_SK {
            // SK's next-payload field names the first payload inside it, and SK must be last.
            if !allow_sk {
                return Err(Error::Invalid("SK payload inside SK"));
            }
            if !rest.is_empty() {
                return Err(Error::Invalid("bytes after the SK payload"));
            }
            payloads.push(Payload::Sk {
                first_inner: next,
                body: body.to_vec(),
            });
            return Ok(payloads);
        }
        if this == PL_SKF {
            // Like SK: last, never inside SK, its next-payload field the first inner type.
            if !allow_sk {
                return Err(Error::Invalid("SKF payload inside SK"));
            }
            if !rest.is_empty() {
                return Err(Error::Invalid("bytes after the SKF payload"));
            }
            let mut f = Reader::new(body);
            let number = f.u16("SKF fragment number")?;
            let total = f.u16("SKF total fragments")?;
            // RFC 7383 2.5: numbers start at 1 and never exceed the total.
            if number == 0 || total == 0 || number > total {
                return Err(Error::Invalid("SKF fragment number outside 1..=total"));
            }
            payloads.push(Payload::Skf {
                first_inner: next,
                number,
                total,
                body: f.rest().to_vec(),
            });
            return Ok(payloads);
        }
        payloads.push(parse_body(this, critical, body)?);
    }
    if !rest.is_empty() {
        return Err(Error::BadLength("bytes after the last payload"));
    }
    Ok(payloads)
}

/// Emits a payload chain; returns the type of the first payload (PL_NONE for an empty chain)
/// and appends the bytes to `out`.
/// Only critical bits of `Payload::Unknown` are set; reserved bits are zero. An SK payload's
/// next-payload field is its `first_inner`, so SK (and SKF) belongs last in the slice.
pub fn emit_payloads(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Sk { first_inner, .. } | Payload::Skf { first_inner, .. } => *first_inner,
            _ => payloads.get(i + 1).map_or(PL_NONE, Payload::payload_type),
        };
        let flags = match p {
            Payload::Unknown { critical: true, .. } => CRITICAL,
            _ => 0,
        };
        let start = out.len();
        out.extend_from_slice(&[next, flags, 0, 0]);
        emit_body(p, out);
        patch_len16(out, start + 2, start);
    }
    payloads.first().map_or(PL_NONE, Payload::payload_type)
}

#[cfg(test)]
mod tests {
    use super::super::Notify;
    use super::super::consts::*;
    use super::super::testutil::hex;
    use super::*;

    /// IKE_AUTH request header, next payload SK, length 28 + `body_len`.
    fn header(next: u8, len: u32) -> Header {
        Header {
            spi_i: 0x0102030405060708,
            spi_r: 0x1112131415161718,
            next_payload: next,
            version: IKE_VERSION,
            exchange: IKE_AUTH,
            flags: FLAG_INITIATOR,
            message_id: 1,
            length: len,
        }
    }

    #[test]
    fn header_layout_and_round_trip() {
        let h = header(PL_NONE, 28);
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(
            out,
            hex("0102030405060708 1112131415161718 00 20 23 08 00000001 0000001c")
        );
        assert_eq!(Header::parse(&out), Ok(h));
        assert!(h.is_initiator());
        assert!(!h.is_response());
    }

    #[test]
    fn header_refuses_other_versions_and_bad_lengths() {
        let mut out = Vec::new();
        header(PL_NONE, 28).emit(&mut out);
        let mut v1 = out.clone();
        v1[17] = 0x10;
        assert_eq!(Header::parse(&v1), Err(Error::Version(1)));
        v1[17] = 0x30;
        assert_eq!(Header::parse(&v1), Err(Error::Version(3)));
        // Minor version is not checked (RFC 7296 3.1: ignore it).
        let mut minor = out.clone();
        minor[17] = 0x21;
        assert!(Header::parse(&minor).is_ok());
        assert!(matches!(
            Header::parse(&out[..27]),
            Err(Error::Truncated(_))
        ));
        let mut longer = out.clone();
        longer.push(0);
        assert!(matches!(Header::parse(&longer), Err(Error::BadLength(_))));
        let mut claims_more = out.clone();
        claims_more[27] = 29;
        assert!(matches!(
            Header::parse(&claims_more),
            Err(Error::BadLength(_))
        ));
    }

    #[test]
    fn empty_message() {
        let mut out = Vec::new();
        header(PL_NONE, 28).emit(&mut out);
        let m = Message::parse(&out).unwrap();
        assert!(m.payloads.is_empty());
        assert_eq!(m.emit(), out);
    }

    #[test]
    fn sk_is_last_and_carries_first_inner() {
        let m = Message {
            header: header(0, 0),
            payloads: vec![Payload::Sk {
                first_inner: PL_IDI,
                body: vec![0x5a; 48],
            }],
        };
        let bytes = m.emit();
        assert_eq!(bytes.len(), 28 + 4 + 48);
        assert_eq!(bytes[16], PL_SK);
        assert_eq!(&bytes[24..28], &80u32.to_be_bytes());
        assert_eq!(&bytes[28..32], &hex("23 00 0034"));
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed.header.length, 80);
        assert_eq!(parsed.header.next_payload, PL_SK);
        assert_eq!(parsed.payloads, m.payloads);

        // One more byte after SK, with the header length fixed up: refused.
        let mut after = bytes.clone();
        after.push(0);
        after[24..28].copy_from_slice(&81u32.to_be_bytes());
        assert!(matches!(Message::parse(&after), Err(Error::Invalid(_))));
    }

    #[test]
    fn skf_layout_is_rfc_7383_2_5() {
        // Fragment 2 of 3 (next payload 0 outside fragment 1): generic header, Fragment Number,
        // Total Fragments, then IV | ciphertext | ICV as sent.
        let m = Message {
            header: header(0, 0),
            payloads: vec![Payload::Skf {
                first_inner: 0,
                number: 2,
                total: 3,
                body: vec![0xa5; 40],
            }],
        };
        let bytes = m.emit();
        assert_eq!(bytes[16], PL_SKF, "header's next payload is SKF (53)");
        assert_eq!(bytes.len(), 28 + 4 + 4 + 40);
        assert_eq!(&bytes[28..36], &hex("00 00 0030 0002 0003"));
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed.payloads, m.payloads);

        // Fragment 1 carries the first inner payload's type (IDi here).
        let first = Message {
            header: header(0, 0),
            payloads: vec![Payload::Skf {
                first_inner: PL_IDI,
                number: 1,
                total: 3,
                body: vec![1; 20],
            }],
        };
        let bytes = first.emit();
        assert_eq!(&bytes[28..36], &hex("23 00 001c 0001 0003"));
        assert_eq!(Message::parse(&bytes).unwrap().payloads, first.payloads);
    }

    #[test]
    fn skf_numbers_outside_one_to_total_are_refused() {
        for (number, total) in [(0u16, 3u16), (4, 3), (1, 0), (0, 0), (65535, 1)] {
            let mut out = Vec::new();
            header(PL_SKF, 28 + 8 + 16).emit(&mut out);
            out.extend_from_slice(&[0, 0, 0, 24]);
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0; 16]);
            assert!(
                matches!(Message::parse(&out), Err(Error::Invalid(_))),
                "{number}/{total}"
            );
        }
        // Too short to hold the two counters.
        let mut out = Vec::new();
        header(PL_SKF, 28 + 6).emit(&mut out);
        out.extend_from_slice(&hex("00 00 0006 0001"));
        assert!(Message::parse(&out).is_err());
        // Not inside an SK payload's content, and nothing after it.
        assert!(parse_payloads(PL_SKF, &hex("00 00 0008 0001 0001")).is_err());
        let mut after = Vec::new();
        header(PL_SKF, 28 + 8 + 4).emit(&mut after);
        after.extend_from_slice(&hex("00 00 0008 0001 0001  00 00 0004"));
        assert!(matches!(Message::parse(&after), Err(Error::Invalid(_))));
    }

    #[test]
    fn sk_before_other_payloads_is_refused() {
        // Vendor ID after SK: SK's next-payload is its first inner payload, so whatever follows
        // SK is extra bytes.
        let mut out = Vec::new();
        header(PL_SK, 28 + 4 + 4 + 4).emit(&mut out);
        out.extend_from_slice(&hex("2b 00 0008 00000000  00 00 0004"));
        assert!(Message::parse(&out).is_err());
    }

    #[test]
    fn sk_inside_a_chain_is_refused() {
        let chain = hex("2e 00 0008 01020304  00 00 0004");
        assert!(matches!(
            parse_payloads(PL_NONCE, &chain),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            parse_payloads(PL_SK, &hex("00 00 0004")),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn chain_lengths_must_agree() {
        // Payload length below the generic header.
        assert!(matches!(
            parse_payloads(PL_NONCE, &hex("00 00 0003 00")),
            Err(Error::BadLength(_))
        ));
        // Payload length past the end.
        assert!(matches!(
            parse_payloads(PL_NONCE, &hex("00 00 0009 0102")),
            Err(Error::Truncated(_))
        ));
        // Chain ends (next 0) before the buffer does.
        assert!(matches!(
            parse_payloads(PL_NONCE, &hex("00 00 0005 01 ff")),
            Err(Error::BadLength(_))
        ));
        // Chain announces a next payload but the buffer is over.
        assert!(matches!(
            parse_payloads(PL_NONCE, &hex("28 00 0005 01")),
            Err(Error::Truncated(_))
        ));
        // A first payload announced over an empty buffer, and an empty chain.
        assert!(parse_payloads(PL_NONCE, &[]).is_err());
        assert_eq!(parse_payloads(PL_NONE, &[]), Ok(vec![]));
        assert!(parse_payloads(PL_NONE, &[0]).is_err());
    }

    #[test]
    fn payload_count_is_bounded() {
        let chain = |n: usize| {
            let mut v = Vec::new();
            for i in 0..n {
                let next = if i + 1 < n { PL_VENDOR } else { PL_NONE };
                v.extend_from_slice(&[next, 0, 0, 4]);
            }
            v
        };
        let ok = parse_payloads(PL_VENDOR, &chain(limits::MAX_PAYLOADS)).unwrap();
        assert_eq!(ok.len(), limits::MAX_PAYLOADS);
        assert!(matches!(
            parse_payloads(PL_VENDOR, &chain(limits::MAX_PAYLOADS + 1)),
            Err(Error::TooMany(_))
        ));
    }

    #[test]
    fn emit_recomputes_chain_and_header_fields() {
        let m = Message {
            // Stale next_payload and length, as the engine might leave them.
            header: header(PL_CP, 9999),
            payloads: vec![
                Payload::Nonce(vec![1; 16]),
                Payload::Notify(Notify::new(N_INITIAL_CONTACT, vec![])),
                Payload::VendorId(vec![2; 4]),
            ],
        };
        let bytes = m.emit();
        assert_eq!(bytes[16], PL_NONCE);
        assert_eq!(
            &bytes[24..28],
            &u32::try_from(bytes.len()).unwrap().to_be_bytes()
        );
        // Nonce -> Notify -> Vendor ID -> none.
        assert_eq!(&bytes[28..32], &hex("29 00 0014"));
        assert_eq!(&bytes[48..52], &hex("2b 00 0008"));
        assert_eq!(&bytes[56..60], &hex("00 00 0008"));
        let parsed = Message::parse(&bytes).unwrap();
        assert_eq!(parsed.payloads, m.payloads);
        assert_eq!(parsed.emit(), bytes);
    }
}
