//! SA payload body: proposals, transforms and transform attributes (RFC 7296 3.3).

use super::reader::{Reader, count_u8, count_u16, patch_len16, split_substructure};
use super::{Error, Proposal, Transform, TransformAttribute, limits};

/// "Last Substruc" values: 0 = last, 2 = more proposals follow, 3 = more transforms follow.
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
/// Attribute Format bit: set = TV, clear = TLV.
const AF_TV: u16 = 0x8000;

const PROPOSAL_HEADER: usize = 8;
const TRANSFORM_HEADER: usize = 8;

pub(super) fn parse(body: &[u8]) -> Result<Vec<Proposal>, Error> {
    if body.is_empty() {
        return Err(Error::Invalid("SA payload without proposals"));
    }
    let mut proposals = Vec::new();
    let mut rest = body;
    loop {
        if proposals.len() >= limits::MAX_PROPOSALS {
            return Err(Error::TooMany("proposals"));
        }
        let (last, sub, after) = split_substructure(rest, PROPOSAL_HEADER, "proposal")?;
        proposals.push(parse_proposal(sub)?);
        rest = after;
        match (last, rest.is_empty()) {
            (LAST, true) => return Ok(proposals),
            (MORE_PROPOSALS, false) => {}
            (LAST, false) => return Err(Error::Invalid("proposal marked last but more follow")),
            (MORE_PROPOSALS, true) => {
                return Err(Error::Invalid("proposal announces more but none follows"));
            }
            _ => return Err(Error::Invalid("proposal last-substructure value")),
        }
    }
}

/// `sub` is the whole proposal, header included, exactly as long as its length field says.
fn parse_proposal(sub: &[u8]) -> Result<Proposal, Error> {
    let mut r = Reader::new(sub);
    r.take(4, "proposal")?; // last, reserved, length: checked by the caller
    let number = r.u8("proposal")?;
    let protocol_id = r.u8("proposal")?;
    let spi_size = r.u8("proposal")?;
    let num_transforms = usize::from(r.u8("proposal")?);
    if num_transforms > limits::MAX_TRANSFORMS {
        return Err(Error::TooMany("transforms"));
    }
    let spi = r
        .take(usize::from(spi_size), "proposal SPI runs past the proposal")?
        .to_vec();
    let mut rest = r.rest();
    let mut transforms = Vec::new();
    for i in 0..num_transforms {
        let (last, t, after) = split_substructure(rest, TRANSFORM_HEADER, "transform")?;
        let expected = if i + 1 < num_transforms {
            MORE_TRANSFORMS
        } else {
            LAST
        };
        if last != expected {
            return Err(Error::Invalid(
                "transform last-substructure disagrees with count",
            ));
        }
        transforms.push(parse_transform(t)?);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(Error::BadLength("proposal longer than its transforms"));
    }
    Ok(Proposal {
        number,
        protocol_id,
        spi,
        transforms,
    })
}

fn parse_transform(t: &[u8]) -> Result<Transform, Error> {
    let mut r = Reader::new(t);
    r.take(4, "transform")?; // last, reserved, length: checked by the caller
    let transform_type = r.u8("transform")?;
    r.u8("transform")?; // reserved
    let transform_id = r.u16("transform")?;
    let mut attributes = Vec::new();
    while !r.is_empty() {
        if attributes.len() >= limits::MAX_ATTRIBUTES {
            return Err(Error::TooMany("transform attributes"));
        }
        let raw = r.u16("transform attribute")?;
        let attr_type = raw & !AF_TV;
        let attr = if raw & AF_TV != 0 {
            TransformAttribute::Tv {
                attr_type,
                value: r.u16("transform attribute")?,
            }
        } else {
            let len = usize::from(r.u16("transform attribute")?);
            TransformAttribute::Tlv {
                attr_type,
                value: r.take(len, "transform attribute value")?.to_vec(),
            }
        };
        attributes.push(attr);
    }
    Ok(Transform {
        transform_type,
        transform_id,
        attributes,
    })
}

pub(super) fn emit(proposals: &[Proposal], out: &mut Vec<u8>) {
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        let last = if i + 1 < proposals.len() {
            MORE_PROPOSALS
        } else {
            LAST
        };
        out.extend_from_slice(&[last, 0, 0, 0]);
        out.push(p.number);
        out.push(p.protocol_id);
        out.push(count_u8(p.spi.len()));
        out.push(count_u8(p.transforms.len()));
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let last = if j + 1 < p.transforms.len() {
                MORE_TRANSFORMS
            } else {
                LAST
            };
            emit_transform(t, last, out);
        }
        patch_len16(out, start + 2, start);
    }
}

fn emit_transform(t: &Transform, last: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[last, 0, 0, 0, t.transform_type, 0]);
    out.extend_from_slice(&t.transform_id.to_be_bytes());
    for a in &t.attributes {
        match a {
            TransformAttribute::Tv { attr_type, value } => {
                out.extend_from_slice(&(AF_TV | attr_type).to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            TransformAttribute::Tlv { attr_type, value } => {
                out.extend_from_slice(&(attr_type & !AF_TV).to_be_bytes());
                out.extend_from_slice(&count_u16(value.len()).to_be_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    patch_len16(out, start + 2, start);
}

#[cfg(test)]
mod tests {
    use super::super::consts::*;
    use super::super::testutil::{hex, parse_one, round_trip};
    use super::super::{Error, Payload, Proposal, Transform, TransformAttribute, limits};

    fn ike_proposal(number: u8, spi: Vec<u8>) -> Proposal {
        Proposal {
            number,
            protocol_id: PROTO_IKE,
            spi,
            transforms: vec![
                Transform::with_key_length(TRANS_ENCR, ENCR_AES_CBC, 128),
                Transform::new(TRANS_INTEG, AUTH_HMAC_SHA2_256_128),
                Transform::new(TRANS_PRF, PRF_HMAC_SHA2_256),
                Transform::new(TRANS_DH, DH_CURVE25519),
            ],
        }
    }

    #[test]
    fn single_ike_proposal_with_empty_spi() {
        let b = round_trip(Payload::Sa(vec![ike_proposal(1, vec![])]));
        let expected = hex(
            "00 00 0030                 # generic header, length 48
             00 00 002c 01 01 00 04     # proposal: last, length 44, #1, IKE, SPI size 0, 4 transforms
             03 00 000c 01 00 000c 800e 0080  # ENCR AES-CBC, key length 128 (TV)
             03 00 0008 03 00 000c      # INTEG HMAC-SHA2-256-128
             03 00 0008 02 00 0005      # PRF HMAC-SHA2-256
             00 00 0008 04 00 001f      # DH 31, last transform",
        );
        assert_eq!(b, expected);
    }

    #[test]
    fn several_proposals_keep_numbers_and_spis() {
        let esp = Proposal {
            number: 7,
            protocol_id: PROTO_ESP,
            spi: vec![0xde, 0xad, 0xbe, 0xef],
            transforms: vec![
                Transform::with_key_length(TRANS_ENCR, ENCR_AES_GCM_16, 256),
                Transform::new(TRANS_ESN, ESN_NO),
                Transform::new(TRANS_ESN, ESN_YES),
            ],
        };
        let b = round_trip(Payload::Sa(vec![
            ike_proposal(1, vec![]),
            ike_proposal(2, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            esp,
        ]));
        // First two proposals say "more follow" (2), the last says 0.
        assert_eq!(b[4], 2);
        assert_eq!(b[4 + 44], 2);
        assert_eq!(b[4 + 44 + 52], 0);
    }

    #[test]
    fn tlv_attribute_and_no_transforms() {
        let b = round_trip(Payload::Sa(vec![Proposal {
            number: 1,
            protocol_id: PROTO_ESP,
            spi: vec![0, 0, 0, 1],
            transforms: vec![Transform {
                transform_type: TRANS_ENCR,
                transform_id: 1024,
                attributes: vec![
                    TransformAttribute::Tlv {
                        attr_type: 17,
                        value: vec![1, 2, 3],
                    },
                    TransformAttribute::Tlv {
                        attr_type: 18,
                        value: vec![],
                    },
                    TransformAttribute::Tv {
                        attr_type: ATTR_KEY_LENGTH,
                        value: 192,
                    },
                ],
            }],
        }]));
        // TLV: AF bit clear, type 17, length 3, value; then type 18 empty; then TV.
        assert_eq!(&b[24..], &hex("0011 0003 010203  0012 0000  800e 00c0"));
        round_trip(Payload::Sa(vec![Proposal {
            number: 1,
            protocol_id: PROTO_ESP,
            spi: vec![],
            transforms: vec![],
        }]));
    }

    /// One proposal (IKE, 1 transform DH 31) as an SA body; `last` bytes and counts patched by
    /// the tests below.
    const ONE: &str = "00 00 0010 01 01 00 01  00 00 0008 04 00 001f";

    #[test]
    fn last_substructure_flags_must_match() {
        assert!(parse_one(PL_SA, &hex(ONE)).is_ok());
        // Proposal says more follow, none does.
        assert!(matches!(
            parse_one(PL_SA, &hex("02 00 0010 01 01 00 01  00 00 0008 04 00 001f")),
            Err(Error::Invalid(_))
        ));
        // Two proposals, the first marked last.
        let mut two = hex(ONE);
        two.extend_from_slice(&hex(ONE));
        assert!(matches!(parse_one(PL_SA, &two), Err(Error::Invalid(_))));
        two[0] = 2;
        assert!(parse_one(PL_SA, &two).is_ok());
        two[0] = 1; // not a defined value
        assert!(parse_one(PL_SA, &two).is_err());
        // Only transform marked "more".
        assert!(matches!(
            parse_one(PL_SA, &hex("00 00 0010 01 01 00 01  03 00 0008 04 00 001f")),
            Err(Error::Invalid(_))
        ));
        // Two transforms, first marked last.
        assert!(matches!(
            parse_one(
                PL_SA,
                &hex("00 00 0018 01 01 00 02  00 00 0008 04 00 001f  00 00 0008 02 00 0005")
            ),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn lengths_must_agree_with_content() {
        // Count says 2 transforms, there is room for one: runs past the proposal.
        assert!(parse_one(PL_SA, &hex("00 00 0010 01 01 00 02  03 00 0008 04 00 001f")).is_err());
        // Count says 1, proposal holds 2.
        assert!(matches!(
            parse_one(
                PL_SA,
                &hex("00 00 0018 01 01 00 01  00 00 0008 04 00 001f  00 00 0008 02 00 0005")
            ),
            Err(Error::BadLength(_))
        ));
        // Proposal length below its 8-byte header.
        assert!(parse_one(PL_SA, &hex("00 00 0007 01 01 00 00")).is_err());
        // Proposal length past the payload.
        assert!(parse_one(PL_SA, &hex("00 00 0011 01 01 00 01  00 00 0008 04 00 001f")).is_err());
        // Transform length below 8.
        assert!(parse_one(PL_SA, &hex("00 00 0010 01 01 00 01  00 00 0004 04 00 001f")).is_err());
        // Transform length past the proposal.
        assert!(parse_one(PL_SA, &hex("00 00 0010 01 01 00 01  00 00 000c 04 00 001f")).is_err());
        // SPI size past the proposal.
        assert!(parse_one(PL_SA, &hex("00 00 000c 01 03 08 00  01020304")).is_err());
        // TLV attribute value past the transform; half a TV attribute.
        assert!(
            parse_one(
                PL_SA,
                &hex("00 00 0014 01 03 00 01  00 00 000c 01 00 0014 0011 0004")
            )
            .is_err()
        );
        assert!(
            parse_one(
                PL_SA,
                &hex("00 00 0012 01 03 00 01  00 00 000a 01 00 0014 800e")
            )
            .is_err()
        );
        // Empty SA payload.
        assert!(matches!(parse_one(PL_SA, &[]), Err(Error::Invalid(_))));
    }

    #[test]
    fn oversized_counts_are_refused() {
        let mut many = Vec::new();
        for i in 0..=limits::MAX_PROPOSALS {
            let mut p = hex(ONE);
            p[0] = if i == limits::MAX_PROPOSALS { 0 } else { 2 };
            many.extend_from_slice(&p);
        }
        assert!(matches!(parse_one(PL_SA, &many), Err(Error::TooMany(_))));
        // 65 transforms announced (the bytes are there).
        let n = limits::MAX_TRANSFORMS + 1;
        let mut p = vec![0, 0, 0, 0, 1, PROTO_IKE, 0, u8::try_from(n).unwrap()];
        for i in 0..n {
            let last = if i + 1 < n { 3 } else { 0 };
            p.extend_from_slice(&[last, 0, 0, 8, TRANS_DH, 0, 0, 31]);
        }
        let len = u16::try_from(p.len()).unwrap().to_be_bytes();
        p[2..4].copy_from_slice(&len);
        assert!(matches!(parse_one(PL_SA, &p), Err(Error::TooMany(_))));
        // 17 attributes in one transform.
        let mut t = vec![0, 0, 0, 0, TRANS_ENCR, 0, 0, 12];
        for _ in 0..=limits::MAX_ATTRIBUTES {
            t.extend_from_slice(&hex("800e 0080"));
        }
        let tlen = u16::try_from(t.len()).unwrap().to_be_bytes();
        t[2..4].copy_from_slice(&tlen);
        let mut p = vec![0, 0, 0, 0, 1, PROTO_IKE, 0, 1];
        p.extend_from_slice(&t);
        let len = u16::try_from(p.len()).unwrap().to_be_bytes();
        p[2..4].copy_from_slice(&len);
        assert!(matches!(parse_one(PL_SA, &p), Err(Error::TooMany(_))));
    }
}
