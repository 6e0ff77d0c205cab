//! Certificate revocation in the engine: CRLs checked when a peer authenticates (home agent
//! checking a mobile node, mobile node checking its home agent), and established IKE SAs
//! deleted when new CRLs revoke their peer's certificate.

mod common;

use std::sync::Arc;

use common::*;
use mip6_ike::auth::revocation::{CertStatus, Crl, CrlSet, RevocationPolicy};
use mip6_ike::auth::{PrivateKey, SignatureStyle, TrustAnchors, cert::certs_from_pem};
use mip6_ike::ike::{Config, Event, HomeAddress, LocalAuth};
use mip6_ike::kernel::{Kernel, KernelOp};
use mip6_ike::mobility::{SaClass, UserAuth};
use mip6_ike::wire::consts::N_AUTHENTICATION_FAILED;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];
const MN3_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn3@example.net";

const CRL_EC: &[u8] = include_bytes!("../certs/crl-ecdsa.der");
const CRL_EC_EMPTY: &[u8] = include_bytes!("../certs/crl-ecdsa-empty.der");
const CRL_RSA: &[u8] = include_bytes!("../certs/crl-rsa.der");

fn crls(ca: &str, ders: &[&[u8]]) -> Arc<CrlSet> {
    let t = TrustAnchors::from_pem(ca).unwrap();
    let mut set = CrlSet::new();
    for (i, d) in ders.iter().enumerate() {
        set.insert(Crl::parse(d, &t, &format!("crl{i}")).unwrap());
    }
    Arc::new(set)
}

fn cert_auth(pem: &str, key: &str) -> LocalAuth {
    LocalAuth::Certificate {
        key: Arc::new(PrivateKey::from_pem(key).unwrap()),
        chain: certs_from_pem(pem).unwrap(),
        style: SignatureStyle::DigitalSignature,
    }
}

/// mn3 (revoked in crl-ecdsa) as a mobile node.
fn mn3() -> Config {
    let mut c = mn1();
    c.identity = mip6_ike::auth::Identity::parse_config(MN3_DN).unwrap();
    c.auth = cert_auth(
        include_str!("../certs/mn3-ecdsa.pem"),
        include_str!("../certs/mn3-ecdsa.key"),
    );
    c
}

/// A home agent serving mn1 (HOA1) and mn3 (HOA2) with `policy`.
fn ha(policy: RevocationPolicy) -> Config {
    let all = [SaClass::BuBa, SaClass::Payload];
    let mut c = ha_with_users(vec![
        user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], &all),
        user("mn3", MN3_DN, UserAuth::Certificate, &[HOA2], &all),
    ]);
    c.revocation = policy;
    c
}

fn auth_failed_reason(side: &Side) -> Option<String> {
    side.events.iter().find_map(|e| match e {
        Event::AuthFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn home_agent_refuses_a_revoked_mobile_node() {
    for policy in [RevocationPolicy::Relaxed, RevocationPolicy::Strict] {
        let mut l = Lab::new(mn3(), ha(policy));
        l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
        l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
        l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
        assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
        let reason = auth_failed_reason(&l.ha).expect("AuthFailed on the HA");
        assert!(reason.contains("revoked by crl crl0"), "{reason}");
        assert!(reason.contains("mn3@example.net"), "{reason}");
        // No SA state survives on either side.
        assert_eq!(l.ha.ep.ike_sa_count(), 0);
        assert!(l.ha.kernel.is_empty() && l.mn.kernel.is_empty());
        assert_eq!(l.ha.ep.stats.auth_failures, 1);
        assert!(l.ha.ep.peer_certs().is_empty());
    }
}

#[test]
fn revocation_off_lets_a_revoked_certificate_in() {
    let mut l = Lab::new(mn3(), ha(RevocationPolicy::Off));
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
    assert!(l.establish(2));
    let certs = l.ha.ep.peer_certs();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].cert.checked.status, CertStatus::Unknown);
}

#[test]
fn good_certificate_passes_and_is_listed_with_its_status() {
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Strict));
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let certs = l.ha.ep.peer_certs();
    assert_eq!(certs.len(), 1);
    let c = &certs[0];
    assert_eq!(c.cert.checked.status, CertStatus::Good);
    assert_eq!(c.cert.checked.source.as_deref(), Some("crl crl0"));
    assert_eq!(c.cert.checked.at, l.now.unix);
    assert_eq!(
        mip6_ike::auth::Identity::Dn(c.cert.subject.to_vec()).to_string(),
        MN1_DN
    );
    // The mobile node (no CRL, relaxed) keeps the HA's certificate with status unknown.
    let mn_certs = l.mn.ep.peer_certs();
    assert_eq!(mn_certs.len(), 1);
    assert_eq!(mn_certs[0].ike, id);
    assert_eq!(mn_certs[0].cert.checked.status, CertStatus::Unknown);
    assert_eq!(mn_certs[0].cert.checked.source, None);
}

#[test]
fn strict_refuses_an_unknown_status_relaxed_accepts_it() {
    // No CRL at all for the ECDSA CA: unknown.
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Strict));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(reason.contains("unknown: no CRL of its issuer"), "{reason}");
    assert!(l.ha.kernel.is_empty());

    // A CRL of another CA does not make the status known.
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Strict));
    l.ha.ep.set_crls(l.now, crls(CA_RSA, &[CRL_RSA]));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));

    // A stale CRL (past nextUpdate) says nothing about mn1 either.
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Strict));
    let set = crls(CA_ECDSA, &[CRL_EC]);
    let next = set.crls()[0].next_update().unwrap() as u64;
    l.now.unix = next + 1;
    l.ha.ep.set_crls(l.now, set);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));

    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Relaxed));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
}

#[test]
fn established_sa_is_deleted_when_a_new_crl_revokes_its_certificate() {
    let mut l = Lab::new(mn3(), ha(RevocationPolicy::Relaxed));
    // Before the revocation: the CA's CRL lists nobody.
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC_EMPTY]));
    l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
    assert!(l.establish(2));
    assert_eq!(
        l.ha.ep.peer_certs()[0].cert.checked.status,
        CertStatus::Good
    );
    let installed = l.ha.kernel.installed().len();
    assert_eq!(installed, 4);
    let ops_before = l.ha.ops.len();

    // The same CRL again changes nothing.
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC_EMPTY]));
    l.collect();
    assert!(l.wire.is_empty());
    assert_eq!(l.ha.ep.ike_sa_count(), 1);

    // The CRL that revokes mn3: its CHILD_SAs leave the HA's kernel at once, a Delete goes out.
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.collect();
    assert!(l.ha.kernel.is_empty(), "CHILD_SAs removed at once");
    let dels = l.ha.ops[ops_before..]
        .iter()
        .filter(|o| matches!(o, KernelOp::DelSa { .. }))
        .count();
    assert_eq!(dels, 4);
    assert_eq!(l.wire.len(), 1, "one INFORMATIONAL Delete to the peer");
    assert_eq!(
        l.ha.events
            .iter()
            .filter(|e| matches!(e, Event::ChildDown { reason, .. } if reason.contains("revoked")))
            .count(),
        2
    );
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert!(l.mn.kernel.is_empty());
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
}

#[test]
fn a_crl_update_spares_good_certificates_and_rekeyed_sas_keep_the_certificate() {
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Relaxed));
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert_eq!(
        l.ha.ep.peer_certs()[0].cert.checked.status,
        CertStatus::Unknown
    );
    // Rekey the IKE SA: the successor carries the certificate reference.
    l.mn_command(mip6_ike::ike::Command::RekeyIke { ike: id });
    l.run(
        |l| {
            l.mn.events
                .iter()
                .any(|e| matches!(e, Event::IkeRekeyed { .. }))
                && l.ha.ep.ike_sa_count() == 1
        },
        |_, _, _| true,
    );
    l.run_now();
    assert_eq!(l.ha.ep.peer_certs().len(), 1);
    // New CRL that revokes mn3 only: mn1's SA stays, its status becomes good.
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    assert!(l.ha.drain().is_empty());
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.kernel.installed().len(), 4);
    let c = &l.ha.ep.peer_certs()[0];
    assert_eq!(c.cert.checked.status, CertStatus::Good);
}

#[test]
fn mobile_node_refuses_a_revoked_home_agent() {
    // The HA presents ha-revoked-rsa (RSA CA), which crl-rsa lists.
    let mut ha_cfg = ha(RevocationPolicy::Off);
    ha_cfg.auth = cert_auth(
        include_str!("../certs/ha-revoked-rsa.pem"),
        include_str!("../certs/ha-revoked-rsa.key"),
    );
    let mut mn = mn1();
    mn.trust = Some(Arc::new(TrustAnchors::from_pem(CA_RSA).unwrap()));
    let mut l = Lab::new(mn, ha_cfg);
    l.mn.ep.set_crls(l.now, crls(CA_RSA, &[CRL_RSA]));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    let reason =
        l.mn.events
            .iter()
            .find_map(|e| match e {
                Event::ExchangeFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .unwrap();
    assert!(reason.contains("revoked"), "{reason}");
    assert!(l.mn.kernel.is_empty());
    // The MN told the HA (Delete), which removed what it had installed.
    l.run(|l| l.ha.ep.ike_sa_count() == 0, |_, _, _| true);
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());

    // Without the CRL the same HA is accepted (relaxed: unknown passes).
    let mut ha_cfg = ha(RevocationPolicy::Off);
    ha_cfg.auth = cert_auth(
        include_str!("../certs/ha-revoked-rsa.pem"),
        include_str!("../certs/ha-revoked-rsa.key"),
    );
    let mut mn = mn1();
    mn.trust = Some(Arc::new(TrustAnchors::from_pem(CA_RSA).unwrap()));
    let mut l = Lab::new(mn, ha_cfg);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
}

#[test]
fn a_revoked_peer_does_not_disturb_established_ones() {
    // mn1 is up; mn3 (revoked) tries from the same care-of address over and over.
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::Relaxed));
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let before = l.ha.ep.list();
    for i in 0..3 {
        let mut attacker = Side::new(mn3(), "[2001:db8:2::99]:500", 40 + i, l.now);
        attacker
            .ep
            .handle_command(
                l.now,
                mip6_ike::ike::Command::Initiate {
                    local: attacker.addr,
                    remote: l.ha.addr,
                    home_agent: HA_IP,
                    home_address: HomeAddress::Static(HOA2),
                    classes: BU_PAYLOAD.to_vec(),
                    remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
                },
            )
            .unwrap();
        // Two round trips: IKE_SA_INIT, IKE_AUTH.
        for _ in 0..2 {
            for t in attacker.drain() {
                l.ha.ep.handle_datagram(l.now, t.remote, t.local, &t.data);
            }
            for t in l.ha.drain() {
                if t.remote == attacker.addr {
                    attacker
                        .ep
                        .handle_datagram(l.now, t.remote, t.local, &t.data);
                }
            }
        }
        attacker.drain();
        assert!(
            attacker.exchange_failed(Some(N_AUTHENTICATION_FAILED)),
            "{:?}",
            attacker.events
        );
    }
    assert_eq!(l.ha.ep.stats.auth_failures, 3);
    assert_eq!(l.ha.ep.list(), before, "mn1's SA untouched");
    assert_eq!(l.ha.kernel.installed().len(), 4);
}

const MN4_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn4@example.net";

/// mn4: revoked in crl-ecdsa, with the CRL distribution point http://127.0.0.1:8480/ca-ecdsa.crl.
fn mn4() -> Config {
    let mut c = mn1();
    c.identity = mip6_ike::auth::Identity::parse_config(MN4_DN).unwrap();
    c.auth = cert_auth(
        include_str!("../certs/mn4-ecdsa.pem"),
        include_str!("../certs/mn4-ecdsa.key"),
    );
    c
}

fn ha_for_mn4(policy: RevocationPolicy) -> Config {
    let all = [SaClass::BuBa, SaClass::Payload];
    let mut c = ha_with_users(vec![user(
        "mn4",
        MN4_DN,
        UserAuth::Certificate,
        &[HOA1],
        &all,
    )]);
    c.revocation = policy;
    c
}

fn crl_wanted(side: &Side) -> Vec<Vec<String>> {
    side.events
        .iter()
        .filter_map(|e| match e {
            Event::CrlWanted { uris } => Some(uris.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn unknown_status_asks_for_the_distribution_points_crl_once() {
    let uri = "http://127.0.0.1:8480/ca-ecdsa.crl".to_string();
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Strict));
    l.ha.ep
        .set_crl_fetch(Some(std::time::Duration::from_secs(10)));
    // Strict: the CRL is asked for; none comes, so after the wait the peer is refused.
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert_eq!(crl_wanted(&l.ha), vec![vec![uri.clone()]]);
    // Again at once: not asked again (at most once a minute per URI).
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert_eq!(crl_wanted(&l.ha).len(), 1);
    // The daemon's fetch brings the CRL: now the status is known (revoked) and nobody asks.
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.advance(std::time::Duration::from_secs(120));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert_eq!(crl_wanted(&l.ha).len(), 1);
    let reason =
        l.ha.events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::AuthFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .unwrap();
    assert!(reason.contains("revoked by crl"), "{reason}");

    // Relaxed: accepted while unknown, asked for, and deleted when the CRL arrives.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Relaxed));
    l.ha.ep
        .set_crl_fetch(Some(std::time::Duration::from_secs(10)));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert_eq!(crl_wanted(&l.ha), vec![vec![uri]]);
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.collect();
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);

    // Fetching off: never asked.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Relaxed));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert!(crl_wanted(&l.ha).is_empty());
}

#[test]
fn strict_home_agent_waits_for_the_crl_being_fetched() {
    let fetch = Some(std::time::Duration::from_secs(10));
    // (1) The CRL arrives and revokes mn4: the parked IKE_AUTH goes on and is refused.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Strict));
    l.ha.ep.set_crl_fetch(fetch);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    assert_eq!(crl_wanted(&l.ha).len(), 1);
    assert!(auth_failed_reason(&l.ha).is_none(), "parked, not refused");
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
    assert!(!l.mn.ep.list()[0].state.contains("established"));
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC]));
    l.collect();
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(reason.contains("revoked by crl"), "{reason}");
    assert_eq!(l.ha.ep.ike_sa_count(), 0);

    // (2) The CRL arrives and lists nobody: the parked IKE_AUTH completes.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Strict));
    l.ha.ep.set_crl_fetch(fetch);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC_EMPTY]));
    l.collect();
    assert!(l.establish(2));
    assert_eq!(
        l.ha.ep.peer_certs()[0].cert.checked.status,
        CertStatus::Good
    );

    // (3) Nothing arrives: after the download timeout (+1 s) the request goes on without the
    // CRL and strict refuses it; the MN's retransmissions meanwhile were not answered twice.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::Strict));
    l.ha.ep.set_crl_fetch(fetch);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let start = l.now.at;
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert!(l.now.at >= start + std::time::Duration::from_secs(11));
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(reason.contains("unknown"), "{reason}");
    assert_eq!(l.ha.ep.stats.auth_failures, 1);
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn ifuri_is_strict_only_for_certificates_with_a_distribution_point() {
    // mn1 names no CRL distribution point: accepted with an unknown status.
    let mut l = Lab::new(mn1(), ha(RevocationPolicy::IfUri));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert_eq!(
        l.ha.ep.peer_certs()[0].cert.checked.status,
        CertStatus::Unknown
    );
    // mn4 names one: without its CRL (and no fetching) it is refused ...
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::IfUri));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert!(auth_failed_reason(&l.ha).unwrap().contains("unknown"));
    // ... and with a CRL that does not list it, accepted.
    let mut l = Lab::new(mn4(), ha_for_mn4(RevocationPolicy::IfUri));
    l.ha.ep.set_crls(l.now, crls(CA_ECDSA, &[CRL_EC_EMPTY]));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
}
