//! Byte-exact fixtures: parse gives the expected typed values and emit gives the same bytes back.

#[allow(dead_code)]
#[path = "fixtures/wire/fixtures.rs"]
mod fixtures;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fixtures::{Kind, hex};
use mip6_ike::wire::consts::*;
use mip6_ike::wire::*;

fn emit_chain(payloads: &[Payload]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    let first = emit_payloads(payloads, &mut out);
    (first, out)
}

/// Checks both directions for a payload-chain fixture.
fn check_chain(bytes: &[u8], first: u8, expected: &[Payload]) {
    assert_eq!(parse_payloads(first, bytes).as_deref(), Ok(expected));
    assert_eq!(emit_chain(expected), (first, bytes.to_vec()));
}

/// Checks both directions for a message fixture; `expected.header.length` and `next_payload`
/// must be the values on the wire.
fn check_message(bytes: &[u8], expected: &Message) {
    assert_eq!(Message::parse(bytes).as_ref(), Ok(expected));
    assert_eq!(expected.emit(), bytes);
}

fn v6(s: &str) -> IpAddr {
    s.parse::<Ipv6Addr>().unwrap().into()
}

fn mh_selector(addr: &str) -> TrafficSelector {
    TrafficSelector {
        ts_type: TS_IPV6_ADDR_RANGE,
        ip_protocol: IPPROTO_MH,
        start_port: 0x0500,
        end_port: 0x05ff,
        start_addr: v6(addr),
        end_addr: v6(addr),
    }
}

#[test]
fn ike_sa_init_request() {
    let expected = Message {
        header: Header {
            spi_i: 0x8a3f5c2e91d04b17,
            spi_r: 0,
            next_payload: PL_SA,
            version: IKE_VERSION,
            exchange: IKE_SA_INIT,
            flags: FLAG_INITIATOR,
            message_id: 0,
            length: 208,
        },
        payloads: vec![
            Payload::Sa(vec![Proposal {
                number: 1,
                protocol_id: PROTO_IKE,
                spi: vec![],
                transforms: vec![
                    Transform::with_key_length(TRANS_ENCR, ENCR_AES_CBC, 128),
                    Transform::new(TRANS_INTEG, AUTH_HMAC_SHA2_256_128),
                    Transform::new(TRANS_PRF, PRF_HMAC_SHA2_256),
                    Transform::new(TRANS_DH, DH_CURVE25519),
                ],
            }]),
            Payload::Ke {
                group: DH_CURVE25519,
                data: hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
            },
            Payload::Nonce((0u8..32).collect()),
            Payload::Notify(Notify::new(
                N_NAT_DETECTION_SOURCE_IP,
                hex("a9993e364706816aba3e25717850c26c9cd0d89d"),
            )),
            Payload::Notify(Notify::new(
                N_NAT_DETECTION_DESTINATION_IP,
                hex("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            )),
        ],
    };
    let bytes = fixtures::ike_sa_init_request();
    check_message(&bytes, &expected);
    let h = Header::parse(&bytes).unwrap();
    assert!(h.is_initiator() && !h.is_response());
    let Payload::Sa(p) = &expected.payloads[0] else {
        unreachable!()
    };
    assert_eq!(p[0].transforms[0].key_length(), Some(128));
}

#[test]
fn ike_auth_inner_chain() {
    let expected = vec![
        Payload::IdI(Id {
            id_type: ID_FQDN,
            data: b"mn1.example.com".to_vec(),
        }),
        Payload::Cert {
            encoding: CERT_X509_SIGNATURE,
            data: hex("3006020101020102"),
        },
        Payload::CertReq {
            encoding: CERT_X509_SIGNATURE,
            data: hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3"),
        },
        Payload::Auth {
            method: AUTH_DIGITAL_SIGNATURE,
            data: hex("0c 300a06082a8648ce3d040302 5151515151515151"),
        },
        Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])),
        Payload::Sa(vec![Proposal {
            number: 1,
            protocol_id: PROTO_ESP,
            spi: hex("c0ffee01"),
            transforms: vec![
                Transform::with_key_length(TRANS_ENCR, ENCR_AES_CBC, 128),
                Transform::new(TRANS_INTEG, AUTH_HMAC_SHA2_256_128),
                Transform::new(TRANS_ESN, ESN_NO),
            ],
        }]),
        Payload::TsI(vec![mh_selector("2001:db8:1::100")]),
        Payload::TsR(vec![mh_selector("2001:db8:1::1")]),
    ];
    check_chain(&fixtures::ike_auth_inner(), PL_IDI, &expected);
}

#[test]
fn sk_protected_message() {
    let bytes = fixtures::sk_message();
    let expected = Message {
        header: Header {
            spi_i: 0x8a3f5c2e91d04b17,
            spi_r: 0x5e6d7c8b9aa1b2c3,
            next_payload: PL_SK,
            version: IKE_VERSION,
            exchange: IKE_AUTH,
            flags: FLAG_INITIATOR,
            message_id: 1,
            length: 112,
        },
        payloads: vec![Payload::Sk {
            first_inner: PL_IDI,
            body: bytes[32..].to_vec(),
        }],
    };
    check_message(&bytes, &expected);
    let Payload::Sk { body, .. } = &expected.payloads[0] else {
        unreachable!()
    };
    // IV, 48 bytes of ciphertext, ICV: the body is kept whole and opaque.
    assert_eq!(body.len(), 16 + 48 + 16);
    assert_eq!(body[0], 0x10);
    assert_eq!(body[79], 0xff);
}

#[test]
fn create_child_sa_inner_chain() {
    let expected = vec![
        Payload::Notify(Notify {
            protocol_id: PROTO_ESP,
            spi: hex("c0ffee01"),
            notify_type: N_REKEY_SA,
            data: vec![],
        }),
        Payload::Sa(vec![Proposal {
            number: 1,
            protocol_id: PROTO_ESP,
            spi: hex("c0ffee02"),
            transforms: vec![
                Transform::with_key_length(TRANS_ENCR, ENCR_AES_GCM_16, 256),
                Transform::new(TRANS_DH, DH_CURVE25519),
                Transform::new(TRANS_ESN, ESN_NO),
            ],
        }]),
        Payload::Nonce((0x20u8..0x40).collect()),
        Payload::Ke {
            group: DH_CURVE25519,
            data: hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        },
        Payload::TsI(vec![TrafficSelector {
            ts_type: TS_IPV6_ADDR_RANGE,
            ip_protocol: 0,
            start_port: 0,
            end_port: 0xffff,
            start_addr: v6("2001:db8:1::100"),
            end_addr: v6("2001:db8:1::100"),
        }]),
        Payload::TsR(vec![
            TrafficSelector {
                ts_type: TS_IPV6_ADDR_RANGE,
                ip_protocol: 0,
                start_port: 0,
                end_port: 0xffff,
                start_addr: v6("2001:db8:2::"),
                end_addr: v6("2001:db8:2:ffff:ffff:ffff:ffff:ffff"),
            },
            TrafficSelector {
                ts_type: TS_IPV4_ADDR_RANGE,
                ip_protocol: 17,
                start_port: 53,
                end_port: 53,
                start_addr: Ipv4Addr::new(192, 0, 2, 0).into(),
                end_addr: Ipv4Addr::new(192, 0, 2, 255).into(),
            },
        ]),
    ];
    check_chain(&fixtures::create_child_inner(), PL_NOTIFY, &expected);
}

#[test]
fn informational_delete() {
    let expected = vec![Payload::Delete(Delete {
        protocol_id: PROTO_ESP,
        spi_size: 4,
        spis: vec![hex("c0ffee01"), hex("c0ffee02")],
    })];
    check_chain(&fixtures::informational_delete(), PL_DELETE, &expected);
}

#[test]
fn cp_request_asks_for_home_address_and_prefix() {
    let expected = vec![Payload::Cp(ConfigPayload {
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
    })];
    check_chain(&fixtures::cp_request(), PL_CP, &expected);
}

#[test]
fn cp_reply_assigns_home_address_and_prefix() {
    let bytes = fixtures::cp_reply();
    let parsed = parse_payloads(PL_CP, &bytes).unwrap();
    let [Payload::Cp(cp)] = parsed.as_slice() else {
        panic!("expected one CP payload, got {parsed:?}")
    };
    assert_eq!(cp.cfg_type, CFG_REPLY);
    let [addr, prefix] = cp.attributes.as_slice() else {
        panic!("expected two attributes")
    };
    // INTERNAL_IP6_ADDRESS: 16-byte address, then the prefix length.
    assert_eq!(addr.attr_type, CFG_INTERNAL_IP6_ADDRESS);
    assert_eq!(addr.value.len(), 17);
    let a: [u8; 16] = addr.value[..16].try_into().unwrap();
    assert_eq!(IpAddr::from(a), v6("2001:db8:1::100"));
    assert_eq!(addr.value[16], 64);
    // MIP6_HOME_PREFIX (RFC 5026): lifetime, prefix, prefix length.
    assert_eq!(prefix.attr_type, CFG_MIP6_HOME_PREFIX);
    assert_eq!(prefix.value.len(), 21);
    assert_eq!(
        u32::from_be_bytes(prefix.value[..4].try_into().unwrap()),
        3600
    );
    let p: [u8; 16] = prefix.value[4..20].try_into().unwrap();
    assert_eq!(IpAddr::from(p), v6("2001:db8:1::"));
    assert_eq!(prefix.value[20], 64);

    let mut home = v6_octets("2001:db8:1::100").to_vec();
    home.push(64);
    let mut hp = 3600u32.to_be_bytes().to_vec();
    hp.extend_from_slice(&v6_octets("2001:db8:1::"));
    hp.push(64);
    let expected = vec![Payload::Cp(ConfigPayload {
        cfg_type: CFG_REPLY,
        attributes: vec![
            ConfigAttribute {
                attr_type: CFG_INTERNAL_IP6_ADDRESS,
                value: home,
            },
            ConfigAttribute {
                attr_type: CFG_MIP6_HOME_PREFIX,
                value: hp,
            },
        ],
    })];
    check_chain(&bytes, PL_CP, &expected);
}

fn v6_octets(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

/// A real IKE_SA_INIT request from a public capture (see the .hex file for the source).
#[test]
fn wireshark_capture_ike_sa_init() {
    let bytes = fixtures::wireshark_ike_sa_init();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.header.spi_i, 0x89922c915f35570e);
    assert_eq!(m.header.spi_r, 0);
    assert_eq!(m.header.exchange, IKE_SA_INIT);
    assert_eq!(m.header.length, 300);
    let types: Vec<u8> = m.payloads.iter().map(Payload::payload_type).collect();
    assert_eq!(
        types,
        [
            PL_SA, PL_KE, PL_NONCE, PL_VENDOR, PL_VENDOR, PL_VENDOR, PL_VENDOR, PL_NOTIFY,
            PL_NOTIFY, PL_NOTIFY
        ]
    );
    assert_eq!(
        m.payloads[0],
        Payload::Sa(vec![Proposal {
            number: 1,
            protocol_id: PROTO_IKE,
            spi: vec![],
            transforms: vec![
                Transform::with_key_length(TRANS_ENCR, ENCR_AES_GCM_16, 256),
                Transform::new(TRANS_PRF, PRF_HMAC_SHA2_256),
                Transform::new(TRANS_DH, DH_ECP_256),
            ],
        }])
    );
    let Payload::Ke { group, data } = &m.payloads[1] else {
        panic!("KE expected")
    };
    assert_eq!((*group, data.len()), (DH_ECP_256, 64));
    let Payload::Nonce(n) = &m.payloads[2] else {
        panic!("Nonce expected")
    };
    assert_eq!(n.len(), 40);
    assert_eq!(
        m.payloads[7],
        Payload::Notify(Notify::new(N_IKEV2_FRAGMENTATION_SUPPORTED, vec![]))
    );
    assert_eq!(
        m.payloads[9],
        Payload::Notify(Notify::new(
            N_SIGNATURE_HASH_ALGORITHMS,
            hex("0001 0002 0003 0004")
        ))
    );
    assert_eq!(m.emit(), bytes);
}

/// Every fixture survives parse -> emit byte for byte.
#[test]
fn all_fixtures_round_trip() {
    for f in fixtures::all() {
        let again = match f.kind {
            Kind::Message => Message::parse(&f.bytes).unwrap().emit(),
            Kind::Chain(first) => {
                let p = parse_payloads(first, &f.bytes).unwrap();
                let (t, out) = emit_chain(&p);
                assert_eq!(t, first, "{}", f.name);
                out
            }
        };
        assert_eq!(again, f.bytes, "{}", f.name);
    }
}
