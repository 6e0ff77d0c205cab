//! Parse and emit of individual payload bodies (everything after the 4-byte generic header).
//! SA and TS bodies live in `sa.rs` and `ts.rs`; the SK payload is handled by the chain in
//! `message.rs` because its next-payload field means something else.

use super::consts::*;
use super::reader::{Reader, count_u8, count_u16};
use super::{ConfigAttribute, ConfigPayload, Delete, Error, Id, Notify, Payload, limits, sa, ts};

/// The top bit of a configuration attribute type is reserved (RFC 7296 3.15.1).
const CP_ATTR_RESERVED: u16 = 0x8000;

/// Parses the body of a payload of type `payload_type`. `critical` is kept only for types we do
/// not know. Never called for SK.
pub(super) fn parse_body(payload_type: u8, critical: bool, body: &[u8]) -> Result<Payload, Error> {
    Ok(match payload_type {
        PL_SA => Payload::Sa(sa::parse(body)?),
        PL_KE => {
            let mut r = Reader::new(body);
            let group = r.u16("KE payload")?;
            r.u16("KE payload")?; // reserved
            Payload::Ke {
                group,
                data: r.rest().to_vec(),
            }
        }
        PL_IDI => Payload::IdI(parse_id(body)?),
        PL_IDR => Payload::IdR(parse_id(body)?),
        PL_CERT => {
            let (encoding, data) = parse_encoded(body, "CERT payload")?;
            Payload::Cert { encoding, data }
        }
        PL_CERTREQ => {
            let (encoding, data) = parse_encoded(body, "CERTREQ payload")?;
            Payload::CertReq { encoding, data }
        }
        PL_AUTH => {
            let mut r = Reader::new(body);
            let method = r.u8("AUTH payload")?;
            r.take(3, "AUTH payload")?; // reserved
            Payload::Auth {
                method,
                data: r.rest().to_vec(),
            }
        }
        PL_NONCE => Payload::Nonce(body.to_vec()),
        PL_NOTIFY => Payload::Notify(parse_notify(body)?),
        PL_DELETE => Payload::Delete(parse_delete(body)?),
        PL_VENDOR => Payload::VendorId(body.to_vec()),
        PL_TSI => Payload::TsI(ts::parse(body)?),
        PL_TSR => Payload::TsR(ts::parse(body)?),
        PL_CP => Payload::Cp(parse_cp(body)?),
        _ => Payload::Unknown {
            payload_type,
            critical,
            data: body.to_vec(),
        },
    })
}

/// Appends the body of `p` (no generic header) to `out`.
pub(super) fn emit_body(p: &Payload, out: &mut Vec<u8>) {
    match p {
        Payload::Sa(proposals) => sa::emit(proposals, out),
        Payload::Ke { group, data } => {
            out.extend_from_slice(&group.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(data);
        }
        Payload::IdI(id) | Payload::IdR(id) => {
            out.extend_from_slice(&[id.id_type, 0, 0, 0]);
            out.extend_from_slice(&id.data);
        }
        Payload::Cert { encoding, data } | Payload::CertReq { encoding, data } => {
            out.push(*encoding);
            out.extend_from_slice(data);
        }
        Payload::Auth { method, data } => {
            out.extend_from_slice(&[*method, 0, 0, 0]);
            out.extend_from_slice(data);
        }
        Payload::Nonce(data) | Payload::VendorId(data) => out.extend_from_slice(data),
        Payload::Notify(n) => {
            out.push(n.protocol_id);
            out.push(count_u8(n.spi.len()));
            out.extend_from_slice(&n.notify_type.to_be_bytes());
            out.extend_from_slice(&n.spi);
            out.extend_from_slice(&n.data);
        }
        Payload::Delete(d) => {
            out.push(d.protocol_id);
            out.push(d.spi_size);
            out.extend_from_slice(&count_u16(d.spis.len()).to_be_bytes());
            for spi in &d.spis {
                out.extend_from_slice(spi);
            }
        }
        Payload::TsI(selectors) | Payload::TsR(selectors) => ts::emit(selectors, out),
        Payload::Sk { body, .. } => out.extend_from_slice(body),
        Payload::Skf {
            number,
            total,
            body,
            ..
        } => {
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(body);
        }
        Payload::Cp(cp) => {
            out.extend_from_slice(&[cp.cfg_type, 0, 0, 0]);
            for a in &cp.attributes {
                out.extend_from_slice(&(a.attr_type & !CP_ATTR_RESERVED).to_be_bytes());
                out.extend_from_slice(&count_u16(a.value.len()).to_be_bytes());
                out.extend_from_slice(&a.value);
            }
        }
        Payload::Unknown { data, .. } => out.extend_from_slice(data),
    }
}

fn parse_id(body: &[u8]) -> Result<Id, Error> {
    let mut r = Reader::new(body);
    let id_type = r.u8("ID payload")?;
    r.take(3, "ID payload")?; // reserved
    Ok(Id {
        id_type,
        data: r.rest().to_vec(),
    })
}

/// CERT and CERTREQ: one encoding byte, then opaque data.
fn parse_encoded(body: &[u8], what: &'static str) -> Result<(u8, Vec<u8>), Error> {
    let mut r = Reader::new(body);
    let encoding = r.u8(what)?;
    Ok((encoding, r.rest().to_vec()))
}

fn parse_notify(body: &[u8]) -> Result<Notify, Error> {
    let mut r = Reader::new(body);
    let protocol_id = r.u8("Notify payload")?;
    let spi_size = usize::from(r.u8("Notify payload")?);
    let notify_type = r.u16("Notify payload")?;
    let spi = r
        .take(spi_size, "Notify SPI runs past the payload")?
        .to_vec();
    Ok(Notify {
        protocol_id,
        spi,
        notify_type,
        data: r.rest().to_vec(),
    })
}

fn parse_delete(body: &[u8]) -> Result<Delete, Error> {
    let mut r = Reader::new(body);
    let protocol_id = r.u8("Delete payload")?;
    let spi_size = r.u8("Delete payload")?;
    let count = usize::from(r.u16("Delete payload")?);
    if count > limits::MAX_DELETE_SPIS {
        return Err(Error::TooMany("Delete SPIs"));
    }
    let size = usize::from(spi_size);
    // A count with zero-sized SPIs would make us allocate `count` entries out of no input.
    if size == 0 && count != 0 {
        return Err(Error::Invalid("Delete with SPIs of size 0"));
    }
    if count * size != r.len() {
        return Err(Error::BadLength(
            "Delete SPI count times size disagrees with length",
        ));
    }
    let spis = if size == 0 {
        Vec::new()
    } else {
        r.rest().chunks_exact(size).map(<[u8]>::to_vec).collect()
    };
    Ok(Delete {
        protocol_id,
        spi_size,
        spis,
    })
}

fn parse_cp(body: &[u8]) -> Result<ConfigPayload, Error> {
    let mut r = Reader::new(body);
    let cfg_type = r.u8("CP payload")?;
    r.take(3, "CP payload")?; // reserved
    let mut attributes = Vec::new();
    while !r.is_empty() {
        if attributes.len() >= limits::MAX_CONFIG_ATTRIBUTES {
            return Err(Error::TooMany("configuration attributes"));
        }
        let attr_type = r.u16("configuration attribute")? & !CP_ATTR_RESERVED;
        let len = usize::from(r.u16("configuration attribute")?);
        let value = r.take(len, "configuration attribute value")?.to_vec();
        attributes.push(ConfigAttribute { attr_type, value });
    }
    Ok(ConfigPayload {
        cfg_type,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{hex, parse_one, round_trip};
    use super::super::{ConfigAttribute, ConfigPayload, Delete, Error, Id, Notify, Payload};
    use super::super::{emit_payloads, limits, parse_payloads};
    use super::*;

    #[test]
    fn ke_round_trip_and_layout() {
        let bytes = round_trip(Payload::Ke {
            group: DH_CURVE25519,
            data: vec![0xaa; 32],
        });
        // next 0, flags 0, length 40, group 31, reserved 0, then the key share.
        assert_eq!(&bytes[..8], &hex("00 00 0028 001f 0000"));
        assert_eq!(&bytes[8..], &[0xaa; 32]);
    }

    #[test]
    fn ke_shorter_than_four_bytes_is_refused() {
        assert!(matches!(
            parse_one(PL_KE, &[0, 31, 0]),
            Err(Error::Truncated(_))
        ));
        // Exactly the fixed part with no key data is syntactically fine.
        assert_eq!(
            parse_one(PL_KE, &[0, 31, 0, 0]),
            Ok(Payload::Ke {
                group: 31,
                data: vec![]
            })
        );
    }

    #[test]
    fn id_round_trip() {
        let b = round_trip(Payload::IdI(Id {
            id_type: ID_FQDN,
            data: b"mn.example.com".to_vec(),
        }));
        assert_eq!(&b[4..8], &[ID_FQDN, 0, 0, 0]);
        round_trip(Payload::IdR(Id {
            id_type: ID_IPV6_ADDR,
            data: vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        }));
        assert!(parse_one(PL_IDI, &[ID_FQDN, 0, 0]).is_err());
    }

    #[test]
    fn cert_certreq_auth_round_trip() {
        let b = round_trip(Payload::Cert {
            encoding: CERT_X509_SIGNATURE,
            data: vec![0x30, 0x82, 0x01, 0x00],
        });
        assert_eq!(b[4], CERT_X509_SIGNATURE);
        round_trip(Payload::CertReq {
            encoding: CERT_X509_SIGNATURE,
            data: vec![0x11; 40],
        });
        // CERTREQ with no CA hash (an "any CA" request) is allowed.
        round_trip(Payload::CertReq {
            encoding: CERT_X509_SIGNATURE,
            data: vec![],
        });
        assert!(parse_one(PL_CERT, &[]).is_err());
        assert!(parse_one(PL_CERTREQ, &[]).is_err());
        let b = round_trip(Payload::Auth {
            method: AUTH_DIGITAL_SIGNATURE,
            data: vec![0x55; 70],
        });
        assert_eq!(&b[4..8], &[AUTH_DIGITAL_SIGNATURE, 0, 0, 0]);
        assert!(parse_one(PL_AUTH, &[AUTH_SHARED_KEY, 0, 0]).is_err());
    }

    #[test]
    fn nonce_and_vendor_round_trip() {
        let b = round_trip(Payload::Nonce(vec![7; 32]));
        assert_eq!(b.len(), 36);
        round_trip(Payload::VendorId(b"mip6-ike".to_vec()));
        round_trip(Payload::VendorId(vec![]));
    }

    #[test]
    fn notify_round_trip() {
        let b = round_trip(Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])));
        assert_eq!(b, hex("00 00 0008  00 00 4007"));
        let b = round_trip(Payload::Notify(Notify {
            protocol_id: PROTO_ESP,
            spi: vec![0xc0, 0x01, 0x02, 0x03],
            notify_type: N_REKEY_SA,
            data: vec![],
        }));
        assert_eq!(b, hex("00 00 000c  03 04 4009  c0010203"));
        round_trip(Payload::Notify(Notify {
            protocol_id: PROTO_IKE,
            spi: vec![1; 8],
            notify_type: N_INVALID_KE_PAYLOAD,
            data: vec![0, 31],
        }));
        round_trip(Payload::Notify(Notify::new(N_COOKIE, vec![9; 64])));
    }

    #[test]
    fn notify_spi_past_the_end_is_refused() {
        assert!(matches!(
            parse_one(PL_NOTIFY, &hex("03 04 4009 c00102")),
            Err(Error::Truncated(_))
        ));
        assert!(parse_one(PL_NOTIFY, &hex("00 00 40")).is_err());
    }

    #[test]
    fn delete_round_trip() {
        let b = round_trip(Payload::Delete(Delete {
            protocol_id: PROTO_ESP,
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10, 11, 12]],
        }));
        assert_eq!(&b[4..8], &hex("03 04 0003"));
        let b = round_trip(Payload::Delete(Delete {
            protocol_id: PROTO_IKE,
            spi_size: 0,
            spis: vec![],
        }));
        assert_eq!(b, hex("00 00 0008  01 00 0000"));
    }

    #[test]
    fn delete_inconsistent_counts_are_refused() {
        // Two 4-byte SPIs announced, one present.
        assert!(matches!(
            parse_one(PL_DELETE, &hex("03 04 0002 01020304")),
            Err(Error::BadLength(_))
        ));
        // One announced, bytes for one and a half.
        assert!(parse_one(PL_DELETE, &hex("03 04 0001 01020304 0506")).is_err());
        // Zero-size SPIs with a count: nothing to read, so refuse before allocating.
        assert!(matches!(
            parse_one(PL_DELETE, &hex("03 00 ffff")),
            Err(Error::TooMany(_))
        ));
        assert!(matches!(
            parse_one(PL_DELETE, &hex("03 00 0010")),
            Err(Error::Invalid(_))
        ));
        // IKE delete with trailing bytes.
        assert!(parse_one(PL_DELETE, &hex("01 00 0000 00")).is_err());
        // More SPIs than the limit, even though the bytes are there.
        let n = limits::MAX_DELETE_SPIS + 1;
        let mut body = vec![PROTO_ESP, 4];
        body.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
        body.resize(4 + 4 * n, 0xee);
        assert!(matches!(
            parse_one(PL_DELETE, &body),
            Err(Error::TooMany(_))
        ));
    }

    #[test]
    fn cp_round_trip_with_empty_values() {
        let b = round_trip(Payload::Cp(ConfigPayload {
            cfg_type: CFG_REQUEST,
            attributes: vec![
                ConfigAttribute {
                    attr_type: CFG_INTERNAL_IP6_ADDRESS,
                    value: vec![],
                },
                ConfigAttribute {
                    attr_type: CFG_MIP6_HOME_PREFIX,
                    value: vec![],
                },
            ],
        }));
        assert_eq!(b, hex("00 00 0010  01 000000  0008 0000  0010 0000"));
    }

    #[test]
    fn cp_reserved_bit_is_dropped() {
        let p = parse_one(PL_CP, &hex("02 000000  8008 0001 40")).unwrap();
        assert_eq!(
            p,
            Payload::Cp(ConfigPayload {
                cfg_type: CFG_REPLY,
                attributes: vec![ConfigAttribute {
                    attr_type: 8,
                    value: vec![0x40]
                }],
            })
        );
        let mut out = Vec::new();
        emit_payloads(&[p], &mut out);
        assert_eq!(out, hex("00 00 000d  02 000000  0008 0001 40"));
    }

    #[test]
    fn cp_errors() {
        assert!(parse_one(PL_CP, &hex("01 0000")).is_err());
        // Attribute value runs past the end.
        assert!(matches!(
            parse_one(PL_CP, &hex("01 000000 0008 0010 00")),
            Err(Error::Truncated(_))
        ));
        // Half an attribute header.
        assert!(parse_one(PL_CP, &hex("01 000000 0008 00")).is_err());
        let mut body = hex("01 000000");
        for _ in 0..=limits::MAX_CONFIG_ATTRIBUTES {
            body.extend_from_slice(&hex("0008 0000"));
        }
        assert!(matches!(parse_one(PL_CP, &body), Err(Error::TooMany(_))));
    }

    #[test]
    fn unknown_payloads_keep_type_and_critical_bit() {
        let b = round_trip(Payload::Unknown {
            payload_type: PL_EAP,
            critical: false,
            data: vec![1, 2, 3],
        });
        assert_eq!(b, hex("00 00 0007 010203"));
        let b = round_trip(Payload::Unknown {
            payload_type: 200,
            critical: true,
            data: vec![],
        });
        assert_eq!(b, hex("00 80 0004"));
    }

    #[test]
    fn known_payload_critical_and_reserved_bits_are_ignored() {
        // Nonce with the critical bit and every reserved bit set in the generic header.
        let buf = hex("00 ff 0006 abcd");
        let p = parse_payloads(PL_NONCE, &buf).unwrap();
        assert_eq!(p, vec![Payload::Nonce(vec![0xab, 0xcd])]);
        let mut out = Vec::new();
        emit_payloads(&p, &mut out);
        assert_eq!(out, hex("00 00 0006 abcd"));
        // Reserved bytes of a known body are ignored on parse and zero on emit.
        let p = parse_one(PL_IDI, &hex("02 ffffff 61")).unwrap();
        let mut out = Vec::new();
        emit_payloads(&[p], &mut out);
        assert_eq!(out, hex("00 00 0009 02 000000 61"));
    }
}
