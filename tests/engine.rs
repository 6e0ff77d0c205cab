//! The engine end to end, in process: a mobile node and a home agent Endpoint passing buffers,
//! with simulated time, loss, duplication and reordering.

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use common::*;
use mip6_ike::auth::Identity;
use mip6_ike::ike::{Command, Event, HomeAddress};
use mip6_ike::kernel::{Direction, Mode};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

fn lab(kind: AuthKind, ike_p: &str, esp_p: &str) -> Lab {
    Lab::new(
        mn_config(kind, "mn1", ike_p, esp_p),
        ha_config(kind, ike_p, esp_p),
    )
}

/// ECDSA peers with the ESP proposal aes128-sha256 and their own IKE proposals.
fn lab_ike(mn_ike: &str, ha_ike: &str) -> Lab {
    Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", mn_ike, "aes128-sha256"),
        ha_config(AuthKind::Ecdsa, ha_ike, "aes128-sha256"),
    )
}

/// Checks the RFC 4877 shape of an established MN/HA pair: BU/BA transport SA between HoA and
/// HA, payload tunnel SA between CoA and HA with the HoA in its selectors, matching SPIs and keys
/// on both sides, mip6d's reqids.
fn check_rfc4877(l: &Lab) {
    let hoa = IpAddr::V6(HOA1);
    let ha = IpAddr::V6(HA_IP);
    let coa = l.mn.addr.ip();
    assert_eq!(
        l.mn.kernel.len(),
        4,
        "MN kernel: {:?}",
        l.mn.kernel.sas().collect::<Vec<_>>()
    );
    assert_eq!(l.ha.kernel.len(), 4);
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
    let mn = l.mn.ep.list();
    let ha_list = l.ha.ep.list();
    assert_eq!(mn.len(), 1);
    assert_eq!(ha_list.len(), 1);
    assert_eq!(mn[0].state, "established");
    assert_eq!(mn[0].home_address, Some(HOA1));
    for c in &mn[0].children {
        // The HA holds the mirror image.
        let h = ha_list[0]
            .children
            .iter()
            .find(|h| h.spi_in == c.spi_out)
            .expect("HA has the pair");
        assert_eq!(h.spi_out, c.spi_in);
        assert_eq!(h.mode, c.mode);
        assert_eq!(h.ts_local, c.ts_remote);
        assert_eq!(h.ts_remote, c.ts_local);
        // Keys agree across the wire: MN out = HA in.
        let mn_out =
            l.mn.kernel
                .get(c.remote, c.spi_out)
                .expect("MN outbound SA");
        let ha_in = l.ha.kernel.get(h.local, h.spi_in).expect("HA inbound SA");
        assert_eq!(*mn_out.encr_key, *ha_in.encr_key);
        assert_eq!(*mn_out.integ_key, *ha_in.integ_key);
        assert_eq!(mn_out.direction, Direction::Out);
        assert_eq!(ha_in.direction, Direction::In);
        assert_eq!(mn_out.reqid, ha_in.reqid, "to-HA reqid on both sides");
        assert_eq!(c.ts_local[0].start_addr, hoa, "the HoA is in TSi");
        match c.class {
            Some(SaClass::BuBa) => {
                assert_eq!(c.mode, Mode::Transport);
                assert_eq!(
                    (c.local, c.remote),
                    (hoa, ha),
                    "transport SA between HoA and HA"
                );
                assert_eq!(c.ts_local[0].ip_protocol, IPPROTO_MH);
                assert_eq!((c.reqid_out, c.reqid_in), (1, 2));
                assert_eq!(mn_out.selectors[0].proto, IPPROTO_MH);
            }
            Some(SaClass::Payload) => {
                assert_eq!(c.mode, Mode::Tunnel);
                assert_eq!(
                    (c.local, c.remote),
                    (coa, ha),
                    "tunnel SA between CoA and HA"
                );
                assert_eq!(c.ts_remote[0].start_addr, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
                assert_eq!((c.reqid_out, c.reqid_in), (3, 4));
            }
            other => panic!("unexpected class {other:?}"),
        }
    }
}

fn handshake(kind: AuthKind, ike_p: &str, esp_p: &str) {
    // RSA keys always sign with RFC 7427 (ring cannot sign PKCS#1 with SHA-1); ECDSA signs with
    // method 9 unless RFC 7427 is configured and the peer announced SIGNATURE_HASH_ALGORITHMS.
    let method = match kind {
        AuthKind::Ecdsa => AUTH_ECDSA_SHA256_P256,
        AuthKind::Psk => AUTH_SHARED_KEY,
        AuthKind::Rsa | AuthKind::Rfc7427Ecdsa | AuthKind::Rfc7427Rsa => AUTH_DIGITAL_SIGNATURE,
    };
    let mut l = lab(kind, ike_p, esp_p);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(
        l.establish(2),
        "{kind:?} {ike_p}: MN events {:?} HA events {:?}",
        l.mn.events,
        l.ha.events
    );
    check_rfc4877(&l);
    assert!(l.mn.ike_up() && l.ha.ike_up());
    assert_eq!(
        l.ha.ep.list()[0].peer_auth_method,
        method,
        "the MN's AUTH method"
    );
    assert_eq!(
        l.mn.ep.list()[0].peer_auth_method,
        method,
        "the HA's AUTH method"
    );
    assert_eq!(l.mn.ep.stats.nat_detected + l.ha.ep.stats.nat_detected, 0);
}

#[test]
fn handshake_x25519_ecdsa() {
    handshake(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
}

#[test]
fn handshake_ecp256_ecdsa_gcm() {
    handshake(
        AuthKind::Ecdsa,
        "aes128gcm16-prfsha256-ecp256",
        "aes128gcm16",
    );
}

#[test]
fn handshake_modp2048_rsa() {
    handshake(AuthKind::Rsa, "aes256-sha384-modp2048", "aes256-sha512");
}

#[test]
fn handshake_rfc7427_ecdsa() {
    handshake(
        AuthKind::Rfc7427Ecdsa,
        "aes256gcm16-prfsha512-x25519",
        "aes256gcm16",
    );
}

#[test]
fn handshake_rfc7427_rsa() {
    handshake(
        AuthKind::Rfc7427Rsa,
        "aes128-sha256-ecp256",
        "aes128-sha256",
    );
}

/// RFC 7427 4: a signer uses a hash the verifier announced. The HA's IKE_SA_INIT response is
/// rewritten to announce SHA2-512 only: the MN's P-256 key (method 14 configured) can sign only
/// with SHA-256, so its AUTH is method 9, which the HA receives and verifies. The rewrite is
/// also what an on-path forger would do to steer our choice: it changes the IKE_SA_INIT
/// response the HA signed, so the MN refuses the HA's AUTH and installs nothing.
#[test]
fn rfc7427_signer_uses_a_hash_the_peer_announced() {
    for (announced, method) in [
        (vec![0u8, 4], AUTH_ECDSA_SHA256_P256),
        (vec![0, 4, 0, 2], AUTH_DIGITAL_SIGNATURE),
    ] {
        let mut l = lab(
            AuthKind::Rfc7427Ecdsa,
            "aes128-sha256-x25519",
            "aes128-sha256",
        );
        l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        let (to_ha, t) = l.wire.remove(0);
        l.deliver(to_ha, &t);
        let (to_ha, t) = l.wire.remove(0);
        assert!(!to_ha);
        let mut m = Message::parse(&t.data).unwrap();
        let mut found = false;
        for p in &mut m.payloads {
            if let Payload::Notify(n) = p
                && n.notify_type == N_SIGNATURE_HASH_ALGORITHMS
            {
                n.data = announced.clone();
                found = true;
            }
        }
        assert!(found, "the HA announces its hashes");
        l.mn.ep.handle_datagram(l.now, t.remote, t.local, &m.emit());
        l.collect();
        // The MN's IKE_AUTH request reaches the HA.
        let (to_ha, t) = l.wire.remove(0);
        assert!(to_ha);
        l.deliver(to_ha, &t);
        let ha = l.ha.ep.list();
        assert_eq!(ha.len(), 1);
        assert_eq!(ha[0].state, "established", "{announced:?}");
        assert_eq!(ha[0].peer_auth_method, method, "{announced:?}");
        // The forger's side: the HA's answer does not authenticate at the MN.
        let (to_ha, t) = l.wire.remove(0);
        assert!(!to_ha);
        l.deliver(to_ha, &t);
        assert!(
            l.mn.events.iter().any(|e| matches!(
                e,
                Event::ExchangeFailed { exchange, notify: Some(N_AUTHENTICATION_FAILED), .. }
                    if *exchange == "IKE_AUTH"
            )),
            "{:?}",
            l.mn.events
        );
        assert!(!l.mn.ike_up());
        assert!(l.mn.kernel.is_empty(), "nothing installed at the MN");
    }
}

#[test]
fn handshake_psk() {
    handshake(AuthKind::Psk, "aes128-sha256-x25519", "aes128-sha256");
}

#[test]
fn invalid_ke_payload_retry_uses_the_responders_group() {
    let mut l = lab_ike("aes128-sha256-x25519-ecp256", "aes128-sha256-ecp256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    // First request carries an X25519 KE.
    let first = Message::parse(&l.wire[0].1.data).unwrap();
    let ke_group = |m: &Message| {
        m.payloads.iter().find_map(|p| {
            if let Payload::Ke { group, .. } = p {
                Some(*group)
            } else {
                None
            }
        })
    };
    assert_eq!(ke_group(&first), Some(DH_CURVE25519));
    let (to_ha, t) = l.wire.remove(0);
    l.deliver(to_ha, &t);
    // The HA answered INVALID_KE_PAYLOAD(19) and kept no state.
    let answer = Message::parse(&l.wire[0].1.data).unwrap();
    assert!(answer.payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == N_INVALID_KE_PAYLOAD && n.data == [0, 19])));
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    let (to_ha, t) = l.wire.remove(0);
    l.deliver(to_ha, &t);
    let retry = Message::parse(&l.wire[0].1.data).unwrap();
    assert_eq!(ke_group(&retry), Some(DH_ECP_256));
    assert_eq!(retry.header.spi_i, first.header.spi_i);
    assert!(l.establish(2));
    assert!(l.mn.ep.list()[0].transforms.contains("ECP_256"));
    assert_eq!(l.ha.ep.stats.invalid_ke_sent, 1);
}

#[test]
fn cookie_round_trip() {
    let mut ha = ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    ha.cookie_threshold = 0; // every IKE_SA_INIT must carry a cookie
    let mut l = Lab::new(mn1(), ha);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (to_ha, t) = l.wire.remove(0);
    l.deliver(to_ha, &t);
    let answer = Message::parse(&l.wire[0].1.data).unwrap();
    assert_eq!(answer.payloads.len(), 1);
    assert!(matches!(&answer.payloads[0], Payload::Notify(n) if n.notify_type == N_COOKIE));
    assert_eq!(
        l.ha.ep.ike_sa_count(),
        0,
        "no state for a request without cookie"
    );
    let (to_ha, t) = l.wire.remove(0);
    l.deliver(to_ha, &t);
    // The retry starts with the cookie notify.
    let retry = Message::parse(&l.wire[0].1.data).unwrap();
    assert!(matches!(&retry.payloads[0], Payload::Notify(n) if n.notify_type == N_COOKIE));
    assert!(l.establish(2));
    assert_eq!(l.ha.ep.stats.cookies_sent, 1);
    check_rfc4877(&l);
}

#[test]
fn forged_cookie_is_refused() {
    let mut ha = ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    ha.cookie_threshold = 0;
    let mut l = Lab::new(mn1(), ha);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, t) = l.wire.remove(0);
    let mut m = Message::parse(&t.data).unwrap();
    m.payloads.insert(
        0,
        Payload::Notify(mip6_ike::wire::Notify::new(N_COOKIE, vec![0; 33])),
    );
    l.ha.ep.handle_datagram(l.now, t.remote, t.local, &m.emit());
    let out = l.ha.drain();
    assert_eq!(out.len(), 1);
    let answer = Message::parse(&out[0].data).unwrap();
    assert!(
        matches!(&answer.payloads[0], Payload::Notify(n) if n.notify_type == N_COOKIE),
        "a fresh cookie, not a handshake"
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
}

#[test]
fn retransmission_survives_30_percent_loss() {
    for seed in 0..16u64 {
        // A round trip survives 30 % loss with probability 0.49; with 10 retransmissions an
        // exchange fails with probability 0.51^11 < 0.1 %, so every seed must get through.
        let mut mn = mn1();
        let mut ha = ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
        mn.timers.retransmit_tries = 10;
        ha.timers.retransmit_tries = 10;
        let mut l = Lab::new(mn, ha);
        l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        let mut rng = mip6_ike::crypto::TestRng::new(seed);
        let mut lost = 0;
        let ok = l.run(
            |l| l.mn.child_ups() >= 2 && l.ha.child_ups() >= 2,
            |_, _, _| {
                let mut b = [0u8; 1];
                mip6_ike::crypto::Rng::fill(&mut rng, &mut b);
                let keep = b[0] >= 77; // drop ~30 %
                if !keep {
                    lost += 1;
                }
                keep
            },
        );
        assert!(ok, "seed {seed}: not established; MN {:?}", l.mn.events);
        check_rfc4877(&l);
        if seed == 0 {
            assert!(lost > 0, "the loss model dropped nothing");
        }
        assert!(l.mn.ep.stats.retransmissions + l.ha.ep.stats.retransmissions > 0 || lost == 0);
    }
}

#[test]
fn duplicate_request_is_answered_from_the_cache() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    // IKE_SA_INIT both ways.
    l.run_now_n(2);
    let (to_ha, auth_req) = l.wire.remove(0);
    assert!(to_ha);
    l.deliver(true, &auth_req);
    let first_answer = l.wire.last().unwrap().1.data.clone();
    let sas_before = l.ha.kernel.len();
    let ups = l.ha.child_ups();
    l.deliver(true, &auth_req);
    let second_answer = l.wire.last().unwrap().1.data.clone();
    assert_eq!(
        first_answer, second_answer,
        "byte-identical cached response"
    );
    assert_eq!(
        l.ha.kernel.len(),
        sas_before,
        "the request was not processed twice"
    );
    assert_eq!(l.ha.child_ups(), ups);
    // Also a duplicated IKE_SA_INIT request is answered from the cache.
    l.run_now();
    assert!(l.mn.ike_up());
}

#[test]
fn reordering_and_duplication() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    // Duplicate every datagram and deliver the copy after the next one.
    let mut held: Option<(bool, mip6_ike::ike::Transmit)> = None;
    for _ in 0..200 {
        if l.mn.child_ups() >= 2 && l.ha.child_ups() >= 2 {
            break;
        }
        if l.wire.is_empty() {
            if let Some((to, t)) = held.take() {
                l.deliver(to, &t);
                continue;
            }
            l.advance(Duration::from_secs(3));
            continue;
        }
        let (to, t) = l.wire.remove(0);
        l.deliver(to, &t);
        if let Some((hto, ht)) = held.replace((to, t)) {
            l.deliver(hto, &ht);
        }
    }
    check_rfc4877(&l);
}

#[test]
fn cross_user_home_address_is_refused_with_ts_unacceptable() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    // mn1 authenticates correctly but asks for mn2's home address.
    l.initiate(HomeAddress::Static(HOA2), &[SaClass::BuBa]);
    l.run(
        |l| {
            l.mn.ike_up()
                && !l
                    .mn
                    .events
                    .iter()
                    .all(|e| !matches!(e, Event::ExchangeFailed { .. }))
        },
        |_, _, _| true,
    );
    assert!(
        l.mn.exchange_failed(Some(N_TS_UNACCEPTABLE)),
        "{:?}",
        l.mn.events
    );
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::Refused { .. }))
    );
    assert!(l.ha.kernel.is_empty(), "no SA for another user's HoA");
    assert!(l.mn.kernel.is_empty());
    // The IKE SA itself stays up (RFC 7296 1.2: a CHILD_SA failure does not fail the IKE SA).
    assert_eq!(l.ha.ep.list()[0].state, "established");
    assert_eq!(l.ha.ep.stats.ts_refused, 1);
}

#[test]
fn superset_selector_is_narrowed_to_the_users_home_address() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    // Dynamic: the MN proposes TSi = any address and asks for one with CP.
    l.initiate(HomeAddress::Dynamic, BU_PAYLOAD);
    assert!(l.establish(2), "{:?}", l.mn.events);
    assert!(
        l.mn.events
            .iter()
            .any(|e| matches!(e, Event::HoaAssigned { address, .. } if *address == HOA1))
    );
    check_rfc4877(&l);
}

#[test]
fn unknown_identity_gets_authentication_failed() {
    // Only mn2 is a user.
    let ha = ha_with_cert_user("mn2", MN2_DN, &[HOA2], &[SaClass::BuBa]);
    let mut l = Lab::new(mn1(), ha);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::AuthFailed { .. }))
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn certificate_from_an_untrusted_ca_is_refused() {
    let mut mn = mn1();
    let (c, k) = cert("rogue-mn1-ecdsa");
    mn.auth = mip6_ike::ike::LocalAuth::Certificate {
        key: std::sync::Arc::new(mip6_ike::auth::PrivateKey::from_pem(k).unwrap()),
        chain: mip6_ike::auth::cert::certs_from_pem(c).unwrap(),
        style: mip6_ike::auth::SignatureStyle::Legacy,
    };
    let mut l = Lab::new(
        mn,
        ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256"),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::AuthFailed { .. }))
    );
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn malformed_messages_are_dropped_without_state_change() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    // Capture a genuine request: a liveness check from the MN.
    l.mn.ep
        .handle_command(l.now, Command::DeleteChild { ike: id, spi_in: 1 })
        .ok();
    l.collect();
    let (_, req) = l.wire.pop().expect("a request");
    let before = l.ha.ep.list();
    let dropped = l.ha.ep.stats.dropped;
    let src = req.local;
    let dst = req.remote;
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // Truncated.
    cases.push(req.data[..req.data.len() - 5].to_vec());
    // Header length disagrees with the datagram.
    let mut bad_len = req.data.clone();
    bad_len[27] ^= 0x04;
    cases.push(bad_len);
    // Payload length field corrupted.
    let mut bad_pl = req.data.clone();
    bad_pl[31] ^= 0x10;
    cases.push(bad_pl);
    // Unknown SPI.
    let mut bad_spi = req.data.clone();
    bad_spi[9] ^= 0xff;
    cases.push(bad_spi);
    // Bad ICV.
    let mut bad_icv = req.data.clone();
    let n = bad_icv.len();
    bad_icv[n - 1] ^= 1;
    cases.push(bad_icv);
    // Flipped ciphertext byte.
    let mut bad_ct = req.data.clone();
    bad_ct[Header::LEN + 4 + 20] ^= 0x80;
    cases.push(bad_ct);
    for (i, c) in cases.iter().enumerate() {
        l.ha.ep.handle_datagram(l.now, dst, src, c);
        let out = l.ha.drain();
        assert!(out.is_empty(), "case {i}: answered a malformed message");
        assert_eq!(l.ha.ep.list(), before, "case {i}: state changed");
    }
    assert_eq!(l.ha.ep.stats.dropped, dropped + cases.len() as u64);
    // The genuine request still works afterwards.
    l.ha.ep.handle_datagram(l.now, dst, src, &req.data);
    assert_eq!(l.ha.drain().len(), 1);
}

#[test]
fn garbage_never_panics_the_responder() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, init) = l.wire.remove(0);
    let mut rng = mip6_ike::crypto::TestRng::new(7);
    for i in 0..2000 {
        let mut d = init.data.clone();
        let mut b = [0u8; 4];
        mip6_ike::crypto::Rng::fill(&mut rng, &mut b);
        let pos = usize::from(u16::from_be_bytes([b[0], b[1]])) % d.len();
        d[pos] ^= b[2] | 1;
        if i % 3 == 0 {
            d.truncate(pos.max(1));
        }
        l.ha.ep.handle_datagram(l.now, init.remote, init.local, &d);
        l.ha.drain();
    }
}

#[test]
fn delete_from_the_mobile_node_clears_both_kernels() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.mn_command(Command::Terminate { ike: id });
    l.run_now();
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
}

#[test]
fn delete_one_child_sa() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let spi = l.mn.ep.list()[0].children[1].spi_in;
    l.mn_command(Command::DeleteChild {
        ike: id,
        spi_in: spi,
    });
    l.run_now();
    assert_eq!(l.mn.kernel.len(), 2);
    assert_eq!(l.ha.kernel.len(), 2);
    assert_eq!(l.ha.ep.list()[0].children.len(), 1);
}

#[test]
fn silent_peer_is_detected_by_liveness_and_its_sas_removed() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    // From now on the HA hears nothing from the MN (and the MN nothing from the HA).
    let gone = l.run(
        |l| l.ha.ep.ike_sa_count() == 0 && l.mn.ep.ike_sa_count() == 0,
        |_, _, _| false,
    );
    assert!(gone);
    assert!(l.ha.kernel.is_empty() && l.mn.kernel.is_empty());
    assert!(
        l.ha.events.iter().any(
            |e| matches!(e, Event::IkeDown { reason, .. } if reason.contains("not responding"))
        )
    );
}

#[test]
fn liveness_keeps_a_quiet_sa_alive() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let t = l.now.at + Duration::from_secs(300);
    l.run(|l| l.now.at >= t, |_, _, _| true);
    assert_eq!(l.mn.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
}

#[test]
fn child_sa_rekey_replaces_both_sas() {
    let mut mn = mn_config(
        AuthKind::Ecdsa,
        "mn1",
        "aes128-sha256-x25519",
        "aes128-sha256-x25519",
    );
    mn.timers.child_rekey = Duration::from_secs(100);
    mn.timers.child_lifetime = Duration::from_secs(150);
    mn.timers.liveness_interval = Duration::from_secs(1000);
    let mut l = Lab::new(
        mn,
        ha_config(
            AuthKind::Ecdsa,
            "aes128-sha256-x25519",
            "aes128-sha256-x25519",
        ),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let old: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    // Two rounds of rekeying.
    assert!(l.run(
        |l| l.mn.child_ups() >= 6 && l.ha.child_ups() >= 6,
        |_, _, _| true
    ));
    l.run_now();
    let now: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|s| !old.contains(s)));
    assert_eq!(l.mn.kernel.len(), 4, "old SAs removed after the rekey");
    assert_eq!(l.ha.kernel.len(), 4);
    check_rfc4877(&l);
}

#[test]
fn additional_child_sa_classes() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(
        HomeAddress::Static(HOA1),
        &[
            SaClass::BuBa,
            SaClass::MpsMpa,
            SaClass::HotiHot,
            SaClass::Payload,
        ],
    );
    assert!(l.establish(4));
    let mn = &l.mn.ep.list()[0];
    let classes: Vec<_> = mn.children.iter().map(|c| c.class.unwrap()).collect();
    assert_eq!(
        classes,
        vec![
            SaClass::BuBa,
            SaClass::MpsMpa,
            SaClass::HotiHot,
            SaClass::Payload
        ]
    );
    let hoti = &mn.children[2];
    assert_eq!(hoti.mode, Mode::Tunnel);
    assert_eq!(hoti.ts_local.len(), 2, "HoTI and HoT type ranges");
    assert_eq!(l.ha.kernel.len(), 8);
}

#[test]
fn transport_class_requires_transport_mode_on_the_ha() {
    // The HA lets mn1 have only the payload tunnel: a BU/BA transport request is refused
    // rather than silently turned into a tunnel.
    let ha = ha_with_cert_user("mn1", MN1_DN, &[HOA1], &[SaClass::Payload]);
    let mut l = Lab::new(mn1(), ha);
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    l.run(|l| l.mn.exchange_failed(None), |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_TS_UNACCEPTABLE)));
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn unsupported_critical_payload_is_answered() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, t) = l.wire.remove(0);
    let mut m = Message::parse(&t.data).unwrap();
    m.payloads.push(Payload::Unknown {
        payload_type: 200,
        critical: true,
        data: vec![1, 2, 3],
    });
    l.ha.ep.handle_datagram(l.now, t.remote, t.local, &m.emit());
    let out = l.ha.drain();
    let answer = Message::parse(&out[0].data).unwrap();
    assert!(
        matches!(&answer.payloads[0], Payload::Notify(n) if n.notify_type == N_UNSUPPORTED_CRITICAL_PAYLOAD && n.data == [200])
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    // A non-critical unknown payload is skipped and the handshake proceeds.
    let mut m = Message::parse(&t.data).unwrap();
    m.payloads.push(Payload::Unknown {
        payload_type: 200,
        critical: false,
        data: vec![1, 2, 3],
    });
    l.ha.ep.handle_datagram(l.now, t.remote, t.local, &m.emit());
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
}

#[test]
fn no_proposal_chosen() {
    let mut l = lab_ike("aes256-sha512-modp2048", "aes128-sha256-x25519");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_NO_PROPOSAL_CHOSEN)));
}

#[test]
fn shutdown_removes_every_sa() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.ha_command(Command::Shutdown);
    assert!(l.ha.kernel.is_empty());
    l.run_now();
    assert_eq!(l.mn.ep.ike_sa_count(), 0, "the MN heard the Delete");
    assert!(l.mn.kernel.is_empty());
}

#[test]
fn shutdown_during_a_liveness_check_still_reaches_the_peer() {
    // Seen under User-Mode Linux: the HA stopped while its liveness check was in flight and its
    // Delete reused that message ID, so the MN answered it from its cache and kept its SAs.
    let mut mn = mn_config(
        AuthKind::Ecdsa,
        "mn1",
        "aes128-sha256-x25519",
        "aes128-sha256",
    );
    mn.timers.liveness_interval = Duration::from_secs(1000);
    let mut l = Lab::new(
        mn,
        ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256"),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    // The HA's liveness check reaches the MN; the MN's answer is lost.
    // (Its earlier deadlines are housekeeping: the per-source limits' buckets going idle.)
    while l.wire.is_empty() {
        let t =
            l.ha.ep
                .next_deadline()
                .expect("the HA has a liveness deadline");
        l.advance_to(t);
    }
    assert_eq!(l.wire.len(), 1, "one liveness request from the HA");
    assert!(!l.wire[0].0);
    l.run_now_n(1);
    l.wire.clear();
    l.ha.ep.handle_command(l.now, Command::Shutdown).unwrap();
    l.collect();
    l.run_now();
    assert_eq!(l.mn.ep.ike_sa_count(), 0, "the MN heard the Delete");
    assert!(l.mn.kernel.is_empty());
}

#[test]
fn ha_is_the_responder_for_many_users_without_interference() {
    // mn1 and mn2 from different care-of addresses; each gets only its own HoA.
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let mut mn2 = Side::new(
        mn_config(
            AuthKind::Ecdsa,
            "mn2",
            "aes128-sha256-x25519",
            "aes128-sha256",
        ),
        "[2001:db8:3::7]:500",
        9,
        l.now,
    );
    let cmd = Command::Initiate {
        local: mn2.addr,
        remote: l.ha.addr,
        home_agent: HA_IP,
        home_address: HomeAddress::Static(HOA2),
        classes: BU_PAYLOAD.to_vec(),
        remote_identity: Some(Identity::parse_config(HA_DN).unwrap()),
    };
    mn2.ep.handle_command(l.now, cmd).unwrap();
    for _ in 0..20 {
        for t in mn2.drain() {
            l.ha.ep.handle_datagram(l.now, t.remote, t.local, &t.data);
        }
        for t in l.ha.drain() {
            if t.remote == mn2.addr {
                mn2.ep.handle_datagram(l.now, t.remote, t.local, &t.data);
            }
        }
    }
    assert_eq!(mn2.child_ups(), 2);
    let ha = l.ha.ep.list();
    assert_eq!(ha.len(), 2);
    for sa in &ha {
        let hoa = sa
            .home_address
            .unwrap_or_else(|| match sa.children[0].ts_remote[0].start_addr {
                IpAddr::V6(a) => a,
                _ => panic!(),
            });
        let want = if sa.remote == mn2.addr { HOA2 } else { HOA1 };
        assert_eq!(hoa, want);
    }
    assert_eq!(l.ha.kernel.len(), 8);
}

/// A mobile node with certificates that names no home agent identity refuses the home agent's
/// AUTH (any certificate of its CA would pass, another mobile node's too): the engine holds
/// this on its own, whatever the configuration loader lets through.
#[test]
fn certificate_mobile_node_without_home_agent_identity_refuses_the_home_agent() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let cmd = Command::Initiate {
        local: l.mn.addr,
        remote: l.ha.addr,
        home_agent: HA_IP,
        home_address: HomeAddress::Static(HOA1),
        classes: BU_PAYLOAD.to_vec(),
        remote_identity: None,
    };
    l.mn.ep.handle_command(l.now, cmd).unwrap();
    assert!(!l.establish(2), "established without a home agent identity");
    assert_eq!(l.mn.child_ups(), 0);
    assert!(l.mn.ep.list().is_empty(), "no IKE SA left on the MN");
    assert!(
        l.mn.events
            .iter()
            .any(|e| matches!(e, Event::ExchangeFailed { reason, .. }
            if reason.contains("no home agent identity configured"))),
        "refusal reported: {:?}",
        l.mn.events
    );
}

// ---- IKE SA rekeying (RFC 7296 1.3.2, 2.18) ----

fn rekeyed(s: &Side) -> usize {
    s.events
        .iter()
        .filter(|e| matches!(e, Event::IkeRekeyed { .. }))
        .count()
}

fn child_spis(s: &Side) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = s.ep.list()[0]
        .children
        .iter()
        .map(|c| (c.spi_in, c.spi_out))
        .collect();
    v.sort();
    v
}

/// Neither side lost a CHILD_SA or reported an IKE SA down.
fn nothing_went_down(l: &Lab) {
    for s in [&l.mn, &l.ha] {
        assert!(
            !s.events
                .iter()
                .any(|e| matches!(e, Event::ChildDown { .. } | Event::IkeDown { .. })),
            "{:?}",
            s.events
        );
    }
}

#[test]
fn ike_sa_rekey_by_timer_keeps_the_child_sas() {
    let mut mn = mn1();
    mn.timers.ike_rekey = Duration::from_secs(100);
    let mut l = Lab::new(
        mn,
        ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256"),
    );
    let first = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let before = child_spis(&l.mn);
    let ha_before = child_spis(&l.ha);
    let ha_first = l.ha.ep.list()[0].id;
    // Two timed rekeys, both answered by the HA.
    assert!(l.run(
        |l| rekeyed(&l.mn) >= 2 && rekeyed(&l.ha) >= 2,
        |_, _, _| true
    ));
    l.run_now();
    nothing_went_down(&l);
    let mn_sa = &l.mn.ep.list()[0];
    let ha_sa = &l.ha.ep.list()[0];
    assert_ne!(mn_sa.id, first);
    assert_ne!(ha_sa.id, ha_first);
    assert!(mn_sa.initiator && !ha_sa.initiator);
    assert_eq!((mn_sa.spi_i, mn_sa.spi_r), (ha_sa.spi_i, ha_sa.spi_r));
    assert_eq!(child_spis(&l.mn), before, "same CHILD_SAs after the rekeys");
    assert_eq!(child_spis(&l.ha), ha_before);
    assert!(mn_sa.children.iter().all(|c| c.ike == mn_sa.id));
    check_rfc4877(&l); // one IKE SA each, 4 kernel SAs each, keys agree
    // The old IKE SAs are gone: messages on them would be dropped.
    assert_eq!(l.mn.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.ep.ike_sa_count(), 1);

    // A CHILD_SA rekey on the new IKE SA.
    let id = mn_sa.id;
    let spi = before[0].0;
    l.mn_command(Command::RekeyChild {
        ike: id,
        spi_in: spi,
    });
    l.run_now();
    let after = child_spis(&l.mn);
    assert_eq!(after.len(), 2);
    assert!(!after.iter().any(|c| c.0 == spi));
    check_rfc4877(&l);

    // A liveness check on the new IKE SA is answered (the HA stays quiet otherwise).
    let delivered = l.delivered;
    let dropped = (l.mn.ep.stats.dropped, l.ha.ep.stats.dropped);
    l.advance(Duration::from_secs(31));
    l.run_now();
    assert!(l.delivered >= delivered + 2, "a request and its answer");
    assert_eq!(
        (l.mn.ep.stats.dropped, l.ha.ep.stats.dropped),
        dropped,
        "both sides accept the new SA's messages"
    );
    assert_eq!(l.mn.ep.list()[0].state, "established");
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
}

#[test]
fn ike_sa_rekey_by_the_home_agent_flips_roles() {
    let mut mn = mn1();
    mn.timers.ike_rekey = Duration::from_secs(200);
    let mut l = Lab::new(
        mn,
        ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256"),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let before = child_spis(&l.mn);
    let old = l.ha.ep.list()[0].id;
    l.ha_command(Command::RekeyIke { ike: old });
    l.run_now();
    nothing_went_down(&l);
    let ha_sa = &l.ha.ep.list()[0];
    let mn_sa = &l.mn.ep.list()[0];
    assert!(
        ha_sa.initiator,
        "the rekey initiator is the new SA's initiator"
    );
    assert!(!mn_sa.initiator);
    assert_eq!((mn_sa.spi_i, mn_sa.spi_r), (ha_sa.spi_i, ha_sa.spi_r));
    assert!(
        l.ha.events.iter().any(
            |e| matches!(e, Event::IkeRekeyed { old: o, new } if *o == old && *new == ha_sa.id)
        )
    );
    assert_eq!(child_spis(&l.mn), before);
    check_rfc4877(&l);

    // The MN (the original initiator) still drives timed rekeys on the flipped SA.
    assert!(l.run(|l| rekeyed(&l.mn) >= 2, |_, _, _| true));
    l.run_now();
    assert!(l.mn.ep.list()[0].initiator);
    assert_eq!(rekeyed(&l.ha), 2, "the HA only rekeyed once by itself");
    check_rfc4877(&l);

    let id = l.mn.ep.list()[0].id;
    l.mn_command(Command::Terminate { ike: id });
    l.run_now();
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
}

#[test]
fn ike_sa_rekey_with_the_wrong_ke_group_is_retried() {
    let p = "aes128-sha256-x25519-ecp256";
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", p, "aes128-sha256"),
        ha_config(AuthKind::Ecdsa, p, "aes128-sha256"),
    );
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert!(!l.mn.ep.list()[0].transforms.contains("ECP_256"));
    // The HA's configuration now only allows ECP-256.
    l.ha.ep.set_config(std::sync::Arc::new(ha_config(
        AuthKind::Ecdsa,
        "aes128-sha256-ecp256",
        "aes128-sha256",
    )));
    let before = child_spis(&l.mn);
    l.mn_command(Command::RekeyIke { ike: id });
    // The HA answers INVALID_KE_PAYLOAD(19).
    l.run_now_n(1);
    assert_eq!(l.ha.ep.stats.invalid_ke_sent, 1);
    assert_eq!(rekeyed(&l.ha), 0);
    l.run_now();
    nothing_went_down(&l);
    assert_eq!(rekeyed(&l.mn), 1);
    assert!(l.mn.ep.list()[0].transforms.contains("ECP_256"));
    assert!(l.ha.ep.list()[0].transforms.contains("ECP_256"));
    assert_eq!(child_spis(&l.mn), before);
    check_rfc4877(&l);
}

#[test]
fn create_child_sa_with_the_wrong_ke_group_is_retried_once() {
    // PFS with different group preferences: the MN's first ESP group is X25519, the HA takes
    // only ECP-256. The payload CHILD_SA (CREATE_CHILD_SA, with KE) gets INVALID_KE_PAYLOAD
    // and is sent again with ECP-256.
    let ike = "aes128-sha256-x25519";
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", ike, "aes128-sha256-x25519-ecp256"),
        ha_config(AuthKind::Ecdsa, ike, "aes128-sha256-ecp256"),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2), "MN events {:?}", l.mn.events);
    assert_eq!(l.ha.ep.stats.invalid_ke_sent, 1);
    nothing_went_down(&l);
    check_rfc4877(&l);
    // A peer that keeps asking for another group (here: one we never offered) is not followed.
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", ike, "aes128-sha256-x25519"),
        ha_config(AuthKind::Ecdsa, ike, "aes128-sha256-ecp256"),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(!l.establish(2));
    assert_eq!(
        l.mn.child_ups(),
        1,
        "only the first CHILD_SA (no KE in IKE_AUTH)"
    );
    assert_eq!(
        l.ha.ep.stats.invalid_ke_sent, 1,
        "no retry with a group we did not offer"
    );
}

#[test]
fn simultaneous_ike_sa_rekeys_keep_the_child_sas() {
    let mut l = lab(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    let before = child_spis(&l.mn);
    let ha_id = l.ha.ep.list()[0].id;
    l.mn.ep
        .handle_command(l.now, Command::RekeyIke { ike: id })
        .unwrap();
    l.ha_command(Command::RekeyIke { ike: ha_id });
    assert_eq!(l.wire.len(), 2, "both requests cross");
    l.run_now();
    nothing_went_down(&l);
    // Each side reports the one surviving SA (RFC 7296 2.8.2: the SA with the lowest nonce
    // is deleted by whoever started it).
    assert_eq!((rekeyed(&l.mn), rekeyed(&l.ha)), (1, 1));
    assert_eq!(l.mn.ep.ike_sa_count(), 1, "{:?}", l.mn.ep.list());
    assert_eq!(l.ha.ep.ike_sa_count(), 1, "{:?}", l.ha.ep.list());
    let (mn_sa, ha_sa) = (&l.mn.ep.list()[0], &l.ha.ep.list()[0]);
    assert_eq!(
        (mn_sa.spi_i, mn_sa.spi_r),
        (ha_sa.spi_i, ha_sa.spi_r),
        "the same survivor"
    );
    assert_ne!(mn_sa.id, id);
    assert_eq!(child_spis(&l.mn), before);
    check_rfc4877(&l);
    // And the survivor works.
    let id = mn_sa.id;
    l.mn_command(Command::Terminate { ike: id });
    l.run_now();
    assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
}

#[test]
fn simultaneous_ike_sa_rekeys_survive_reordered_answers() {
    // Every order of the last messages: the HA decides first and its Delete (of its redundant
    // SA or of the old one) overtakes its answer to the MN's rekey.
    let mut old_deleted_first = 0;
    for seed_shift in 0..6u64 {
        let mut mn = mn1();
        mn.timers.liveness_interval = Duration::from_secs(1000);
        let mut ha = ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
        ha.timers.liveness_interval = Duration::from_secs(1000);
        let mut l = Lab::new(mn, ha);
        let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        assert!(l.establish(2));
        l.run_now();
        // Vary the nonces (and so the winner) by rekeying a different number of times first.
        for _ in 0..seed_shift {
            let cur = l.mn.ep.list()[0].id;
            l.mn_command(Command::RekeyIke { ike: cur });
            l.run_now();
        }
        let before = child_spis(&l.mn);
        let mn_id = l.mn.ep.list()[0].id;
        let ha_id = l.ha.ep.list()[0].id;
        let old_spi_i = l.mn.ep.list()[0].spi_i;
        let _ = id;
        l.mn.ep
            .handle_command(l.now, Command::RekeyIke { ike: mn_id })
            .unwrap();
        l.ha_command(Command::RekeyIke { ike: ha_id });
        l.run_now_n(2); // both requests answered; wire: [answer to MN, answer to HA]
        assert_eq!(l.wire.len(), 2);
        let (to_ha, ans_to_mn) = l.wire.remove(0);
        assert!(!to_ha);
        l.run_now_n(1); // the HA decides and sends a Delete
        assert_eq!(l.wire.len(), 1, "the HA's Delete");
        if Header::parse(&l.wire[0].1.data).unwrap().spi_i == old_spi_i {
            old_deleted_first += 1;
        }
        l.run_now_n(1); // the Delete reaches the MN before the answer
        l.deliver(false, &ans_to_mn);
        l.run_now();
        // A redundant SA nobody deletes (its answer came too late to matter) expires quietly.
        l.advance(Duration::from_secs(31));
        l.run_now();
        nothing_went_down(&l);
        assert_eq!(l.mn.ep.ike_sa_count(), 1, "{:?}", l.mn.ep.list());
        assert_eq!(l.ha.ep.ike_sa_count(), 1, "{:?}", l.ha.ep.list());
        let (m, h) = (&l.mn.ep.list()[0], &l.ha.ep.list()[0]);
        assert_eq!((m.spi_i, m.spi_r), (h.spi_i, h.spi_r));
        assert_eq!(child_spis(&l.mn), before);
        check_rfc4877(&l);
    }
    // Both outcomes occurred: the HA's rekey won (it deletes the old SA) and lost (it deletes
    // its own redundant SA).
    assert!((1..6).contains(&old_deleted_first), "{old_deleted_first}");
}

#[test]
fn forged_ike_sa_init_refusal_does_not_stop_the_handshake() {
    let mut l = lab(AuthKind::Ecdsa, IKE, ESP);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, req) = l.wire.remove(0);
    let spi_i = Message::parse(&req.data).unwrap().header.spi_i;
    // An on-path attacker answers first with an unauthenticated refusal.
    let forged = Message {
        header: Header {
            spi_i,
            spi_r: 0,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: IKE_SA_INIT,
            flags: FLAG_RESPONSE,
            message_id: 0,
            length: 0,
        },
        payloads: vec![Payload::Notify(mip6_ike::wire::Notify::new(
            N_NO_PROPOSAL_CHOSEN,
            vec![],
        ))],
    };
    l.mn.ep
        .handle_datagram(l.now, l.mn.addr, l.ha.addr, &forged.emit());
    l.collect();
    assert_eq!(
        l.mn.ep.ike_sa_count(),
        1,
        "the forged refusal alone does not end the attempt"
    );
    // The genuine answer still arrives in time.
    l.deliver(true, &req);
    assert!(l.establish(2));
    check_rfc4877(&l);
    assert!(
        !l.mn
            .events
            .iter()
            .any(|e| matches!(e, Event::ExchangeFailed { .. }))
    );
}

#[test]
fn an_authenticated_peer_cannot_create_unbounded_child_sas() {
    let mut l = lab(AuthKind::Ecdsa, IKE, ESP);
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let extra = mip6_ike::ike::MAX_CHILDREN_PER_IKE_SA + 3 - 2;
    for _ in 0..extra {
        l.mn.ep
            .handle_command(
                l.now,
                Command::CreateChild {
                    ike: id,
                    class: SaClass::Payload,
                },
            )
            .unwrap();
    }
    l.collect();
    l.run(
        |l| {
            l.mn.events
                .iter()
                .filter(|e| matches!(e, Event::ChildUp(_) | Event::ExchangeFailed { .. }))
                .count()
                >= 2 + extra
        },
        |_, _, _| true,
    );
    assert_eq!(
        l.ha.ep.list()[0].children.len(),
        mip6_ike::ike::MAX_CHILDREN_PER_IKE_SA
    );
    assert_eq!(
        l.ha.kernel.len(),
        2 * mip6_ike::ike::MAX_CHILDREN_PER_IKE_SA
    );
    let refused =
        l.mn.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::ExchangeFailed {
                        notify: Some(N_NO_ADDITIONAL_SAS),
                        ..
                    }
                )
            })
            .count();
    assert_eq!(refused, 3);
    assert_eq!(
        l.mn.ep.list()[0].state,
        "established",
        "the IKE SA survives the refusals"
    );
}

#[test]
fn nat_detection_notices_a_rewritten_source_address() {
    let mut l = lab(AuthKind::Ecdsa, IKE, ESP);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, req) = l.wire.remove(0);
    // The request arrives from another address than the one the MN hashed (a NAT rewrote it).
    let translated: std::net::SocketAddr = "[2001:db8:99::1]:4711".parse().unwrap();
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, translated, &req.data);
    assert_eq!(l.ha.ep.stats.nat_detected, 1);
    // Unchanged addresses: no NAT.
    let mut l = lab(AuthKind::Ecdsa, IKE, ESP);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now_n(2);
    assert_eq!(l.ha.ep.stats.nat_detected + l.mn.ep.stats.nat_detected, 0);
}

#[test]
fn unsupported_major_version_is_answered_only_for_requests() {
    let mut l = lab(AuthKind::Ecdsa, IKE, ESP);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, req) = l.wire.remove(0);
    let mut v3 = req.data.clone();
    v3[17] = 0x30; // major version 3
    l.ha.ep.handle_datagram(l.now, l.ha.addr, l.mn.addr, &v3);
    let out = l.ha.drain();
    assert_eq!(out.len(), 1);
    let answer = Message::parse(&out[0].data).unwrap();
    assert_eq!(answer.header.version, IKE_VERSION);
    assert_eq!(answer.header.flags, FLAG_RESPONSE);
    assert_eq!(
        answer.header.spi_i,
        Message::parse(&req.data).unwrap().header.spi_i
    );
    assert!(
        matches!(&answer.payloads[..], [Payload::Notify(n)] if n.notify_type == N_INVALID_MAJOR_VERSION)
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    // A version-3 response is never answered (no error loops).
    v3[19] |= FLAG_RESPONSE;
    l.ha.ep.handle_datagram(l.now, l.ha.addr, l.mn.addr, &v3);
    assert!(l.ha.drain().is_empty());
}

#[test]
fn later_child_sas_stay_on_the_home_address_of_the_ike_sa() {
    // mn1 owns two HoAs; each IKE SA is bound to the HoA its first CHILD_SA was granted.
    let all = [SaClass::BuBa, SaClass::Payload];
    let other = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x101);
    let ha = ha_with_cert_user("mn1", MN1_DN, &[HOA1, other], &all);
    let mut l = Lab::new(mn1(), ha);
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.establish(1));
    assert_eq!(l.ha.ep.list()[0].home_address, Some(HOA1));
    // A second MN-side IKE SA for the other HoA is fine.
    let mut l2 = Lab::new(
        mn1(),
        ha_with_cert_user("mn1", MN1_DN, &[HOA1, other], &all),
    );
    l2.initiate(
        HomeAddress::Static(other),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l2.establish(2));
    assert_eq!(l2.ha.ep.list()[0].home_address, Some(other));
    assert!(
        l2.ha.ep.list()[0]
            .children
            .iter()
            .all(|c| c.ts_remote[0].start_addr == IpAddr::V6(other))
    );
}
