//! The algorithms strongSwan's default proposals carry, end to end between our own mobile node
//! and home agent: ChaCha20-Poly1305 (RFC 7634), ECP-384/521 and MODP-3072/4096, AES-256 with
//! PRF-SHA384/512 and HMAC-SHA2-384/512, ECDSA P-384 and P-521 certificates. Each suite runs a
//! full handshake and a CHILD_SA rekey; the attacker's tests feed bad KE values and a forged
//! ChaCha20-Poly1305 SK payload.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mip6_ike::auth::{PrivateKey, SignatureStyle, TrustAnchors, cert::certs_from_pem};
use mip6_ike::crypto::DhGroup;
use mip6_ike::ike::{Command, Config, HomeAddress, LocalAuth};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// Rekey timers short enough for a CHILD_SA rekey within the simulated run.
fn with_rekey(mut c: Config) -> Config {
    c.timers.child_rekey = Duration::from_secs(100);
    c.timers.child_lifetime = Duration::from_secs(150);
    c.timers.liveness_interval = Duration::from_secs(1000);
    c
}

/// What the kernel got for one suite: ESP transform ID, key bytes (salt included), integrity
/// transform ID and key bytes.
struct Want {
    suite: &'static str,
    /// The CHILD_SA of IKE_AUTH (never a DH group of their own) and those of CREATE_CHILD_SA
    /// (with the PFS group, when the ESP proposal names one).
    child: &'static str,
    rekeyed: &'static str,
    encr_id: u16,
    encr_key: usize,
    integ_id: u16,
    integ_key: usize,
}

/// A handshake with `ike_p`/`esp_p` on both sides, checked against `want`, then a CHILD_SA
/// rekey of both CHILD_SAs (with PFS when `esp_p` names a group).
fn handshake_and_rekey(ike_p: &str, esp_p: &str, want: Want) {
    let mut l = Lab::new(
        with_rekey(mn_config(AuthKind::Ecdsa, "mn1", ike_p, esp_p)),
        ha_config(AuthKind::Ecdsa, ike_p, esp_p),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(
        l.establish(2),
        "{ike_p}/{esp_p}: MN {:?} HA {:?}",
        l.mn.events,
        l.ha.events
    );
    for side in [&l.mn, &l.ha] {
        let info = side.ep.list();
        assert_eq!(info[0].transforms, want.suite, "{ike_p}");
        // The BU/BA CHILD_SA comes with IKE_AUTH, the payload one with CREATE_CHILD_SA.
        for c in &info[0].children {
            let want = match c.class {
                Some(SaClass::BuBa) => want.child,
                _ => want.rekeyed,
            };
            assert_eq!(c.transforms, want, "{esp_p} {:?}", c.class);
        }
    }
    let check_kernel = |l: &Lab| {
        assert_eq!(l.mn.kernel.len(), 4);
        assert_eq!(l.ha.kernel.len(), 4);
        for sa in l.mn.kernel.sas().chain(l.ha.kernel.sas()) {
            assert_eq!(
                (
                    sa.encr_id,
                    sa.encr_key.len(),
                    sa.integ_id,
                    sa.integ_key.len()
                ),
                (want.encr_id, want.encr_key, want.integ_id, want.integ_key),
                "{esp_p}"
            );
            assert_eq!(
                usize::from(sa.encr_key_bits),
                8 * want.encr_key - salt_bits(want.encr_id)
            );
            // The other side holds the same keys for the same SA.
            let twin =
                l.mn.kernel
                    .get(sa.dst, sa.spi)
                    .into_iter()
                    .chain(l.ha.kernel.get(sa.dst, sa.spi))
                    .find(|t| t.direction != sa.direction)
                    .expect("the peer's copy of the SA");
            assert_eq!(*twin.encr_key, *sa.encr_key);
            assert_eq!(*twin.integ_key, *sa.integ_key);
        }
    };
    check_kernel(&l);
    let old: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    assert!(
        l.run(
            |l| l.mn.child_ups() >= 4 && l.ha.child_ups() >= 4,
            |_, _, _| true
        ),
        "{ike_p}/{esp_p}: CHILD_SA rekey"
    );
    l.run_now();
    let now: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    assert_eq!(now.len(), 2);
    assert!(
        now.iter().all(|s| !old.contains(s)),
        "new SPIs after the rekey"
    );
    check_kernel(&l);
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
}

/// Bits of the AEAD salt included in the key material but not in the transform's key length.
fn salt_bits(encr_id: u16) -> usize {
    if encr_id == 20 || encr_id == 28 {
        32
    } else {
        0
    }
}

#[test]
fn chacha20_poly1305_with_ecp384() {
    handshake_and_rekey(
        "chacha20poly1305-prfsha256-ecp384",
        "chacha20poly1305",
        Want {
            suite: "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/ECP_384",
            child: "CHACHA20_POLY1305",
            rekeyed: "CHACHA20_POLY1305",
            encr_id: 28,
            encr_key: 36,
            integ_id: 0,
            integ_key: 0,
        },
    );
}

#[test]
fn chacha20_poly1305_esp_with_pfs_on_ecp521() {
    handshake_and_rekey(
        "chacha20poly1305-prfsha512-ecp521",
        "chacha20poly1305-ecp521",
        Want {
            suite: "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/ECP_521",
            child: "CHACHA20_POLY1305",
            rekeyed: "CHACHA20_POLY1305/ECP_521",
            encr_id: 28,
            encr_key: 36,
            integ_id: 0,
            integ_key: 0,
        },
    );
}

#[test]
fn aes256gcm16_prfsha384_ecp384() {
    handshake_and_rekey(
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-ecp384",
        Want {
            suite: "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
            child: "AES_GCM_16_256",
            rekeyed: "AES_GCM_16_256/ECP_384",
            encr_id: 20,
            encr_key: 36,
            integ_id: 0,
            integ_key: 0,
        },
    );
}

#[test]
fn aes256_sha384_modp3072() {
    handshake_and_rekey(
        "aes256-sha384-modp3072",
        "aes256-sha384",
        Want {
            suite: "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072",
            child: "AES_CBC_256/HMAC_SHA2_384_192",
            rekeyed: "AES_CBC_256/HMAC_SHA2_384_192",
            encr_id: 12,
            encr_key: 32,
            integ_id: 13,
            integ_key: 48,
        },
    );
}

#[test]
fn aes256_sha512_modp4096() {
    handshake_and_rekey(
        "aes256-sha512-modp4096",
        "aes256-sha512",
        Want {
            suite: "AES_CBC_256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/MODP_4096",
            child: "AES_CBC_256/HMAC_SHA2_512_256",
            rekeyed: "AES_CBC_256/HMAC_SHA2_512_256",
            encr_id: 12,
            encr_key: 32,
            integ_id: 14,
            integ_key: 64,
        },
    );
}

// ---- ECDSA P-384 and P-521 certificates ----

const CA_384: &str = include_str!("../certs/ca-ecdsa384.pem");

fn auth(cert: &str, key: &str, style: SignatureStyle) -> (LocalAuth, Option<Arc<TrustAnchors>>) {
    (
        LocalAuth::Certificate {
            key: Arc::new(PrivateKey::from_pem(key).unwrap()),
            chain: certs_from_pem(cert).unwrap(),
            style,
        },
        Some(Arc::new(TrustAnchors::from_pem(CA_384).unwrap())),
    )
}

fn p384_lab(
    mn_key: (&str, &str),
    ha_key: (&str, &str),
    style: SignatureStyle,
    ike_p: &str,
    esp_p: &str,
) -> Lab {
    let mn = base_config(MN1_DN, auth(mn_key.0, mn_key.1, style), ike_p, esp_p);
    let mut ha = ha_config(AuthKind::Ecdsa, ike_p, esp_p);
    (ha.auth, ha.trust) = auth(ha_key.0, ha_key.1, style);
    Lab::new(with_rekey(mn), ha)
}

const MN1_384: (&str, &str) = (
    include_str!("../certs/mn1-ecdsa384.pem"),
    include_str!("../certs/mn1-ecdsa384.key"),
);
const HA_384: (&str, &str) = (
    include_str!("../certs/ha-ecdsa384.pem"),
    include_str!("../certs/ha-ecdsa384.key"),
);
const HA_521: (&str, &str) = (
    include_str!("../certs/ha-ecdsa521.pem"),
    include_str!("../certs/ha-ecdsa521.key"),
);
const MN1_521: (&str, &str) = (
    include_str!("../certs/mn1-ecdsa521.pem"),
    include_str!("../certs/mn1-ecdsa521.key"),
);

fn cert_handshake(
    mn_key: (&str, &str),
    ha_key: (&str, &str),
    style: SignatureStyle,
    mn_method: u8,
    ha_method: u8,
) {
    let mut l = p384_lab(
        mn_key,
        ha_key,
        style,
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2), "MN {:?} HA {:?}", l.mn.events, l.ha.events);
    assert_eq!(
        l.ha.ep.list()[0].peer_auth_method,
        mn_method,
        "the MN's AUTH"
    );
    assert_eq!(
        l.mn.ep.list()[0].peer_auth_method,
        ha_method,
        "the HA's AUTH"
    );
    // And a CHILD_SA rekey over the IKE SA these certificates authenticated.
    assert!(l.run(
        |l| l.mn.child_ups() >= 4 && l.ha.child_ups() >= 4,
        |_, _, _| true
    ));
}

#[test]
fn ecdsa_p384_certificates_legacy_method_10() {
    cert_handshake(MN1_384, HA_384, SignatureStyle::Legacy, 10, 10);
}

#[test]
fn ecdsa_p384_certificates_rfc7427() {
    cert_handshake(MN1_384, HA_384, SignatureStyle::DigitalSignature, 14, 14);
}

#[test]
fn ecdsa_p521_mobile_node_methods_11_and_14() {
    cert_handshake(MN1_521, HA_384, SignatureStyle::Legacy, 11, 10);
    cert_handshake(MN1_521, HA_384, SignatureStyle::DigitalSignature, 14, 14);
    cert_handshake(MN1_521, HA_521, SignatureStyle::Legacy, 11, 11);
}

// ---- the attacker's tests ----

/// The notify type of an unprotected one-notify answer.
fn plain_notify(t: &mip6_ike::ike::Transmit) -> u16 {
    match Message::parse(&t.data).unwrap().payloads.as_slice() {
        [Payload::Notify(n)] => n.notify_type,
        other => panic!("not a lone notify: {other:?}"),
    }
}

/// p + k (k small, may be negative) of a big-endian number.
fn plus(mut v: Vec<u8>, k: i32) -> Vec<u8> {
    let mut carry = k;
    for b in v.iter_mut().rev() {
        let x = i32::from(*b) + carry;
        *b = x.rem_euclid(256) as u8;
        carry = x.div_euclid(256);
    }
    v
}

#[test]
fn bad_ke_values_of_the_new_groups_are_refused_before_any_state() {
    // (IKE proposal, the KE values an attacker sends) for each new group.
    let mut cases: Vec<(&str, DhGroup, Vec<Vec<u8>>)> = Vec::new();
    for (p, g) in [
        ("aes256-sha384-modp3072", DhGroup::Modp3072),
        ("aes256-sha512-modp4096", DhGroup::Modp4096),
    ] {
        let n = g.public_len();
        let mut one = vec![0; n];
        one[n - 1] = 1;
        cases.push((
            p,
            g,
            vec![
                vec![0; n],                        // 0
                one,                               // 1
                plus(g.modp_prime().unwrap(), -1), // p - 1
                g.modp_prime().unwrap(),           // p
                plus(g.modp_prime().unwrap(), 1),  // p + 1
                vec![0xff; n],                     // 2^n - 1
                vec![2; n - 1],                    // one byte short
                [vec![0], vec![2; n]].concat(),    // one byte long
                vec![],                            // empty
            ],
        ));
    }
    for (p, g) in [
        ("aes256gcm16-prfsha384-ecp384", DhGroup::Ecp384),
        ("chacha20poly1305-prfsha512-ecp521", DhGroup::Ecp521),
    ] {
        let n = g.public_len();
        let mut off_curve = vec![0; n];
        off_curve[n / 2 - 1] = 1; // (1, 0): not on the curve
        cases.push((
            p,
            g,
            vec![
                vec![0; n], // (0, 0): not a point, no encoding of infinity
                off_curve,
                vec![0xff; n],     // coordinates >= p
                vec![0x04; n + 1], // SEC1 length
                vec![0; n - 1],
                vec![],
            ],
        ));
    }
    for (ike_p, g, values) in cases {
        let mut l = Lab::new(
            mn_config(AuthKind::Ecdsa, "mn1", ike_p, ESP),
            ha_config(AuthKind::Ecdsa, ike_p, ESP),
        );
        l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        let (_, genuine) = l.wire.remove(0);
        for (i, v) in values.iter().enumerate() {
            assert!(g.check_public(v).is_err(), "{g:?} case {i}");
            let mut m = Message::parse(&genuine.data).unwrap();
            m.header.spi_i = 0x1000 + i as u64;
            for p in &mut m.payloads {
                if let Payload::Ke { group, data } = p {
                    assert_eq!(*group, g.id());
                    *data = v.clone();
                }
            }
            let src: std::net::SocketAddr =
                format!("[2001:db8:77::{}]:500", i + 1).parse().unwrap();
            l.ha.ep.handle_datagram(l.now, l.ha.addr, src, &m.emit());
            let out = l.ha.drain();
            assert_eq!(out.len(), 1, "{g:?} case {i}");
            assert_eq!(plain_notify(&out[0]), N_INVALID_SYNTAX, "{g:?} case {i}");
            assert_eq!(l.ha.ep.ike_sa_count(), 0, "{g:?} case {i}: no state");
        }
        // The genuine MN still registers.
        l.deliver(true, &genuine);
        assert!(l.establish(2), "{g:?}: genuine MN after the attack");
    }
}

#[test]
fn chacha20_poly1305_sk_payload_with_a_flipped_tag_bit_is_dropped() {
    let ike_p = "chacha20poly1305-prfsha256-ecp384";
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", ike_p, "chacha20poly1305"),
        ha_config(AuthKind::Ecdsa, ike_p, "chacha20poly1305"),
    );
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    // A genuine protected request: the MN deletes a CHILD_SA.
    let spi = l.mn.ep.list()[0].children[0].spi_in;
    l.mn.ep
        .handle_command(
            l.now,
            Command::DeleteChild {
                ike: id,
                spi_in: spi,
            },
        )
        .unwrap();
    l.collect();
    let (_, req) = l.wire.pop().expect("a request");
    let before = l.ha.ep.list();
    let dropped = l.ha.ep.stats.dropped;
    let n = req.data.len();
    let mut forged = Vec::new();
    // Every bit of the last tag byte, the first tag byte, a ciphertext byte, the IV.
    for bit in 0..8 {
        let mut d = req.data.clone();
        d[n - 1] ^= 1 << bit;
        forged.push(d);
    }
    for pos in [n - 16, n - 17, Header::LEN + 4, Header::LEN + 4 + 7] {
        let mut d = req.data.clone();
        d[pos] ^= 0x01;
        forged.push(d);
    }
    for (i, d) in forged.iter().enumerate() {
        l.ha.ep.handle_datagram(l.now, req.remote, req.local, d);
        assert!(l.ha.drain().is_empty(), "case {i}: answered");
        assert_eq!(l.ha.ep.list(), before, "case {i}: state changed");
    }
    assert_eq!(l.ha.ep.stats.dropped, dropped + forged.len() as u64);
    // The genuine request is still taken and answered: nothing was lost.
    l.ha.ep
        .handle_datagram(l.now, req.remote, req.local, &req.data);
    assert_eq!(l.ha.drain().len(), 1);
    assert_eq!(l.ha.ep.list()[0].children.len(), 1);
}

/// IKE SA rekeys (RFC 7296 2.18: a new DH in the suite's group, SKEYSEED from the old SK_d
/// with the suite's PRF) keep the CHILD_SAs, and the new IKE SA carries a CHILD_SA rekey.
#[test]
fn ike_sa_rekey_with_the_new_suites() {
    use mip6_ike::ike::Event;
    let rekeyed = |s: &Side| {
        s.events
            .iter()
            .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
            .count()
    };
    for (ike_p, esp_p, suite) in [
        (
            "chacha20poly1305-prfsha512-ecp521",
            "chacha20poly1305",
            "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/ECP_521",
        ),
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16",
            "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
        ),
        (
            "aes256-sha512-modp3072",
            "aes256-sha384",
            "AES_CBC_256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/MODP_3072",
        ),
    ] {
        let mut mn = mn_config(AuthKind::Ecdsa, "mn1", ike_p, esp_p);
        mn.timers.ike_rekey = Duration::from_secs(100);
        let mut l = Lab::new(mn, ha_config(AuthKind::Ecdsa, ike_p, esp_p));
        let first = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        assert!(l.establish(2), "{ike_p}");
        let spis = |s: &Side| {
            let mut v: Vec<(u32, u32)> = s.ep.list()[0]
                .children
                .iter()
                .map(|c| (c.spi_in, c.spi_out))
                .collect();
            v.sort();
            v
        };
        let before = spis(&l.mn);
        assert!(
            l.run(
                |l| rekeyed(&l.mn) >= 1 && rekeyed(&l.ha) >= 1,
                |_, _, _| true
            ),
            "{ike_p}: IKE SA rekey"
        );
        l.run_now();
        for s in [&l.mn, &l.ha] {
            assert!(
                !s.events
                    .iter()
                    .any(|e| matches!(e, Event::ChildDown { .. } | Event::IkeDown { .. })),
                "{ike_p}: {:?}",
                s.events
            );
            assert_eq!(s.ep.ike_sa_count(), 1);
            assert_eq!(s.ep.list()[0].transforms, suite);
        }
        let new = l.mn.ep.list()[0].id;
        assert_ne!(new, first, "{ike_p}: a new IKE SA");
        assert_eq!(spis(&l.mn), before, "{ike_p}: same CHILD_SAs");
        // A CHILD_SA rekey over the new IKE SA's keys.
        l.mn_command(Command::RekeyChild {
            ike: new,
            spi_in: before[0].0,
        });
        l.run_now();
        let after = spis(&l.mn);
        assert_eq!(after.len(), 2, "{ike_p}");
        assert!(!after.iter().any(|c| c.0 == before[0].0), "{ike_p}");
        assert_eq!(l.mn.kernel.len(), 4);
        assert_eq!(l.ha.kernel.len(), 4);
    }
}

/// An authenticated mobile node (valid keys, its own request edited before the HA sees it) that
/// sends bad KE values in CREATE_CHILD_SA, for a new CHILD_SA and for a rekey: INVALID_SYNTAX,
/// nothing installed, nothing established lost, and the next genuine request works.
#[test]
fn bad_ke_values_in_create_child_sa_from_an_authenticated_peer() {
    use mip6_ike::ike::Event;
    for (ike_p, esp_p, g) in [
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-ecp384",
            DhGroup::Ecp384,
        ),
        (
            "chacha20poly1305-prfsha512-ecp521",
            "chacha20poly1305-ecp521",
            DhGroup::Ecp521,
        ),
        (
            "aes256-sha384-modp3072",
            "aes256-sha384-modp3072",
            DhGroup::Modp3072,
        ),
        (
            "aes256-sha512-modp4096",
            "aes256-sha512-modp4096",
            DhGroup::Modp4096,
        ),
    ] {
        let n = g.public_len();
        let mut bad: Vec<Vec<u8>> = vec![vec![0; n], vec![0xff; n], vec![1; n - 1], vec![]];
        if let Some(p) = g.modp_prime() {
            let mut one = vec![0; n];
            one[n - 1] = 1;
            bad.push(one);
            bad.push(plus(p.clone(), -1));
            bad.push(p);
        } else {
            let mut off = vec![0; n];
            off[n / 2 - 1] = 1;
            bad.push(off);
        }
        let mut l = Lab::new(
            mn_config(AuthKind::Ecdsa, "mn1", ike_p, esp_p),
            ha_config(AuthKind::Ecdsa, ike_p, esp_p),
        );
        let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        assert!(l.establish(2), "{g:?}");
        let id = l.mn.ep.list().first().map_or(id, |s| s.id);
        let ha_kernel = l.ha.kernel.len();
        let ha_children = l.ha.ep.list()[0].children.clone();
        let failed = |s: &Side| {
            s.events
                .iter()
                .filter(|e| {
                    matches!(e, Event::ExchangeFailed { notify: Some(x), .. } if *x == N_INVALID_SYNTAX)
                })
                .count()
        };
        let mut sent = 0;
        for (i, v) in bad.iter().enumerate() {
            // Even cases: a new CHILD_SA; odd: a rekey of the payload CHILD_SA.
            let cmd = if i % 2 == 0 {
                Command::CreateChild {
                    ike: id,
                    class: SaClass::MpsMpa,
                }
            } else {
                Command::RekeyChild {
                    ike: id,
                    spi_in: l.mn.ep.list()[0].children[1].spi_in,
                }
            };
            l.mn_command(cmd);
            let (to_ha, req) = l.wire.remove(0);
            assert!(to_ha);
            let forged =
                l.mn.ep
                    .tamper_own_message(id, &req.data, |_, p| {
                        for pl in p.iter_mut() {
                            if let Payload::Ke { group, data } = pl {
                                assert_eq!(*group, g.id());
                                *data = v.clone();
                            }
                        }
                    })
                    .expect("the MN's own request opens");
            l.ha.ep
                .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
            l.collect();
            l.run_now();
            sent += 1;
            assert_eq!(failed(&l.mn), sent, "{g:?} case {i}: {:?}", l.mn.events);
            assert_eq!(
                l.ha.kernel.len(),
                ha_kernel,
                "{g:?} case {i}: nothing installed"
            );
            assert_eq!(
                l.ha.ep.list()[0].children,
                ha_children,
                "{g:?} case {i}: the HA's CHILD_SAs unchanged"
            );
        }
        for s in [&l.mn, &l.ha] {
            assert!(
                !s.events
                    .iter()
                    .any(|e| matches!(e, Event::ChildDown { .. } | Event::IkeDown { .. })),
                "{g:?}: {:?}",
                s.events
            );
        }
        assert!(l.ha.kernel_errors.is_empty());
        // A genuine CREATE_CHILD_SA with PFS in the same group still works.
        let ups = l.ha.child_ups();
        l.mn_command(Command::CreateChild {
            ike: id,
            class: SaClass::MpsMpa,
        });
        l.run_now();
        assert_eq!(l.ha.child_ups(), ups + 1, "{g:?}");
        assert_eq!(l.ha.kernel.len(), ha_kernel + 2);
    }
}
