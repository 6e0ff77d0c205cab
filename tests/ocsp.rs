//! OCSP in the engine: a home agent asks a responder (the test plays it, signing answers with
//! the CA's key as `openssl ocsp` would) when no CRL tells a mobile node certificate's
//! status; strict parks the IKE_AUTH until the answer; a revoked answer refuses it or deletes
//! an established IKE SA. Forged, replayed and mismatched answers change nothing.

mod common;
#[path = "common/ocsp_responder.rs"]
mod ocsp_responder;

use std::time::Duration;

use common::*;
use mip6_ike::auth::revocation::{CertStatus, RevocationPolicy};
use mip6_ike::ike::{Config, Event, HomeAddress, LocalAuth, OcspSettings};
use mip6_ike::kernel::Kernel;
use mip6_ike::mobility::{SaClass, UserAuth};
use mip6_ike::wire::consts::N_AUTHENTICATION_FAILED;
use ocsp_responder::{Answer, Nonce, ROGUE_KEY};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];
const MN3_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn3@example.net";
const URI: &str = "http://ocsp.test:8080/";

fn mn3() -> Config {
    let mut c = mn1();
    c.identity = mip6_ike::auth::Identity::parse_config(MN3_DN).unwrap();
    c.auth = LocalAuth::Certificate {
        key: std::sync::Arc::new(
            mip6_ike::auth::PrivateKey::from_pem(include_str!("../certs/mn3-ecdsa.key")).unwrap(),
        ),
        chain: mip6_ike::auth::cert::certs_from_pem(include_str!("../certs/mn3-ecdsa.pem"))
            .unwrap(),
        style: mip6_ike::auth::SignatureStyle::DigitalSignature,
    };
    c
}

fn ha(policy: RevocationPolicy) -> Config {
    let all = [SaClass::BuBa, SaClass::Payload];
    let mut c = ha_with_users(vec![
        user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], &all),
        user("mn3", MN3_DN, UserAuth::Certificate, &[HOA2], &all),
    ]);
    c.revocation = policy;
    c
}

/// A lab whose HA asks `URI` about ECDSA-CA certificates (no CRLs at all).
fn lab(mn: Config, policy: RevocationPolicy) -> Lab {
    let mut l = Lab::new(mn, ha(policy));
    l.ha.ep.set_ocsp(Some(ask_uri_about_ecdsa_ca()));
    l
}

/// OCSP settings that ask `URI` about certificates of the ECDSA CA (timeout 5 s).
fn ask_uri_about_ecdsa_ca() -> OcspSettings {
    let ca = mip6_ike::auth::cert::certs_from_pem(CA_ECDSA).unwrap();
    let subject = mip6_ike::auth::revocation::describe(&ca[0])
        .unwrap()
        .subject;
    OcspSettings {
        timeout: Duration::from_secs(5),
        ca_uris: vec![(subject, URI.into())],
    }
}

/// The OCSP queries the HA asked for: (query, uri, request).
fn queries(side: &Side) -> Vec<(u64, String, Vec<u8>)> {
    side.events
        .iter()
        .filter_map(|e| match e {
            Event::OcspWanted {
                query,
                uri,
                request,
            } => Some((*query, uri.clone(), request.clone())),
            _ => None,
        })
        .collect()
}

fn auth_failed_reason(side: &Side) -> Option<String> {
    side.events.iter().find_map(|e| match e {
        Event::AuthFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn strict_parks_until_the_ocsp_answer_good_is_accepted_and_listed() {
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, URI);
    assert!(auth_failed_reason(&l.ha).is_none(), "parked, not refused");
    assert!(!l.mn.ep.list()[0].state.contains("established"));
    let now = l.now.unix;
    let st = l.ha.ep.ocsp_response(
        l.now,
        q[0].0,
        Ok(Answer::new(CertStatus::Good, now).respond(&q[0].2)),
    );
    assert_eq!(st, Some(CertStatus::Good));
    l.collect();
    assert!(l.establish(2));
    let c = &l.ha.ep.peer_certs()[0].cert.checked;
    assert_eq!(c.status, CertStatus::Good);
    assert_eq!(c.source.as_deref(), Some(format!("ocsp {URI}").as_str()));
    assert_eq!(c.at, now);
    // The answer is kept: a second authentication asks nobody (within its nextUpdate).
    let n = queries(&l.ha).len();
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    assert_eq!(queries(&l.ha).len(), n);
}

#[test]
fn revoked_by_ocsp_is_refused() {
    let mut l = lab(mn3(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    let now = l.now.unix;
    let st = l.ha.ep.ocsp_response(
        l.now,
        q[0].0,
        Ok(Answer::new(CertStatus::Revoked, now).respond(&q[0].2)),
    );
    assert_eq!(st, Some(CertStatus::Revoked));
    l.collect();
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(
        reason.contains(&format!("revoked by ocsp {URI}")),
        "{reason}"
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn unknown_answer_per_policy() {
    // strict: an "unknown" answer refuses.
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    let now = l.now.unix;
    let a = Answer::new(CertStatus::Unknown, now).respond(&q[0].2);
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[0].0, Ok(a)),
        Some(CertStatus::Unknown)
    );
    l.collect();
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(
        reason.contains(&format!("unknown by ocsp {URI}")),
        "{reason}"
    );

    // relaxed: no wait, the status is asked for but the SA comes up at once.
    let mut l = lab(mn1(), RevocationPolicy::Relaxed);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    assert_eq!(queries(&l.ha).len(), 1);
    // ifuri: the configured responder counts as a URI: strict for this certificate.
    let mut l = lab(mn1(), RevocationPolicy::IfUri);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    assert_eq!(queries(&l.ha).len(), 1);
    assert!(!l.mn.ep.list()[0].state.contains("established"));
    // OCSP off: no query; strict without any source refuses at once.
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.ha.ep.set_ocsp(None);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(queries(&l.ha).is_empty());
    let reason = auth_failed_reason(&l.ha).unwrap();
    assert!(reason.contains("no OCSP answer"), "{reason}");
}

#[test]
fn no_answer_in_time_strict_refuses_after_the_timeout() {
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let start = l.now.at;
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(
        l.now.at >= start + Duration::from_secs(6),
        "waited timeout + 1 s"
    );
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert_eq!(queries(&l.ha).len(), 1);
    assert_eq!(l.ha.ep.stats.auth_failures, 1);
}

#[test]
fn established_sa_is_deleted_on_a_revoked_ocsp_answer() {
    let mut l = lab(mn3(), RevocationPolicy::Relaxed);
    l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
    assert!(l.establish(2));
    let q = queries(&l.ha);
    assert_eq!(q.len(), 1);
    assert_eq!(l.ha.kernel.installed().len(), 4);
    let now = l.now.unix;
    let st = l.ha.ep.ocsp_response(
        l.now,
        q[0].0,
        Ok(Answer::new(CertStatus::Revoked, now).respond(&q[0].2)),
    );
    assert_eq!(st, Some(CertStatus::Revoked));
    l.collect();
    assert!(l.ha.kernel.is_empty(), "CHILD_SAs removed at once");
    assert_eq!(l.wire.len(), 1, "one INFORMATIONAL Delete to the peer");
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    // The same query answered twice: the second is no answer at all.
    assert_eq!(
        l.ha.ep.ocsp_response(
            l.now,
            q[0].0,
            Ok(Answer::new(CertStatus::Revoked, now).respond(&q[0].2))
        ),
        None
    );
}

/// Answers an attacker (or a broken responder) could send; none may be accepted.
fn forgeries(now: u64) -> Vec<(&'static str, Answer)> {
    let base = Answer::new(CertStatus::Revoked, now);
    vec![
        // Signed by the rogue CA (same name as ours, other key).
        (
            "wrong signer",
            Answer {
                key: ROGUE_KEY,
                ..base
            },
        ),
        // The answer to another request (someone else's nonce): a replay.
        (
            "wrong nonce",
            Answer {
                nonce: Nonce::Wrong,
                ..base
            },
        ),
        // No nonce and two hours old: a replay of a pre-produced answer.
        (
            "old without nonce",
            Answer {
                nonce: Nonce::Absent,
                this_update: now - 7200,
                ..base
            },
        ),
        // Past its nextUpdate.
        (
            "stale",
            Answer {
                this_update: now - 7200,
                next_update: Some(now - 60),
                ..base
            },
        ),
        // From the future.
        (
            "future",
            Answer {
                this_update: now + 3600,
                next_update: Some(now + 7200),
                ..base
            },
        ),
        // About another certificate.
        (
            "other CertID",
            Answer {
                other_serial: true,
                ..base
            },
        ),
    ]
}

#[test]
fn forged_replayed_or_mismatched_answers_change_nothing() {
    // (1) At authentication: a strict HA parked on OCSP is not refused (nor accepted) by any
    // of them; the genuine answer afterwards still decides. Each forgery spends the query,
    // so each gets a fresh lab.
    for (what, forged) in forgeries(1_800_000_000) {
        let mut l = lab(mn1(), RevocationPolicy::Strict);
        l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        l.run_now();
        let q = queries(&l.ha);
        assert_eq!(l.now.unix, 1_800_000_000);
        let bytes = forged.respond(&q[0].2);
        assert_eq!(
            l.ha.ep.ocsp_response(l.now, q[0].0, Ok(bytes)),
            None,
            "{what}"
        );
        l.collect();
        assert!(auth_failed_reason(&l.ha).is_none(), "{what}");
        assert_eq!(l.ha.ep.ike_sa_count(), 1, "{what}");
        assert!(!l.mn.ep.list()[0].state.contains("established"), "{what}");
        // Nothing was cached from it.
        assert!(
            l.ha.ep
                .peer_certs()
                .iter()
                .all(|c| c.cert.checked.source.is_none())
        );
    }
    // (2) Established (relaxed, unanswered query): a forged "revoked" deletes nothing.
    for (what, forged) in forgeries(1_800_000_000) {
        let mut l = lab(mn3(), RevocationPolicy::Relaxed);
        l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
        assert!(l.establish(2));
        let q = queries(&l.ha);
        let bytes = forged.respond(&q[0].2);
        assert_eq!(
            l.ha.ep.ocsp_response(l.now, q[0].0, Ok(bytes)),
            None,
            "{what}"
        );
        l.collect();
        assert!(l.wire.is_empty(), "{what}: no Delete");
        assert_eq!(l.ha.kernel.installed().len(), 4, "{what}");
        assert_eq!(
            l.ha.ep.peer_certs()[0].cert.checked.status,
            CertStatus::Unknown
        );
    }
    // (3) Transport errors, garbage, an unknown query id: nothing either.
    let mut l = lab(mn3(), RevocationPolicy::Relaxed);
    l.initiate(HomeAddress::Static(HOA2), BU_PAYLOAD);
    assert!(l.establish(2));
    let q = queries(&l.ha);
    assert_eq!(
        l.ha.ep
            .ocsp_response(l.now, q[0].0 + 100, Ok(vec![0x30, 0])),
        None
    );
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[0].0, Err("timeout".into())),
        None
    );
    l.collect();
    assert!(l.wire.is_empty());
    assert_eq!(l.ha.kernel.installed().len(), 4);
}

#[test]
fn a_response_without_nonce_is_accepted_while_fresh() {
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    let now = l.now.unix;
    let a = Answer {
        nonce: Nonce::Absent,
        this_update: now - 600,
        ..Answer::new(CertStatus::Good, now)
    };
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[0].0, Ok(a.respond(&q[0].2))),
        Some(CertStatus::Good)
    );
    l.collect();
    assert!(l.establish(2));
}

#[test]
fn a_recheck_asks_again_and_a_revocation_since_deletes_the_sa() {
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    let now = l.now.unix;
    let good = Answer::new(CertStatus::Good, now).respond(&q[0].2);
    l.ha.ep.ocsp_response(l.now, q[0].0, Ok(good));
    l.collect();
    assert!(l.establish(2));
    // Within the ask interval and with a fresh answer held, a re-check still asks (reload).
    assert_eq!(l.ha.ep.ocsp_recheck(l.now), 1);
    l.collect();
    let q = queries(&l.ha);
    assert_eq!(q.len(), 2);
    assert_ne!(q[0].2, q[1].2, "a new nonce");
    // Asked again while the query is in flight: no second query.
    assert_eq!(l.ha.ep.ocsp_recheck(l.now), 0);
    l.collect();
    assert_eq!(queries(&l.ha).len(), 2);
    // The answer to the first query replayed for the second: refused, the SA stays.
    let replay = Answer::new(CertStatus::Revoked, now).respond(&q[0].2);
    assert_eq!(l.ha.ep.ocsp_response(l.now, q[1].0, Ok(replay)), None);
    l.collect();
    assert!(l.wire.is_empty());
    assert_eq!(l.ha.kernel.installed().len(), 4);
    // The genuine answer: revoked since. The SA goes.
    assert_eq!(l.ha.ep.ocsp_recheck(l.now), 1);
    l.collect();
    let q = queries(&l.ha);
    let revoked = Answer::new(CertStatus::Revoked, now).respond(&q[2].2);
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[2].0, Ok(revoked)),
        Some(CertStatus::Revoked)
    );
    l.collect();
    assert!(l.ha.kernel.is_empty());
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    // Nothing established: nothing to ask about.
    assert_eq!(l.ha.ep.ocsp_recheck(l.now), 0);
}

/// A lab whose *mobile node* asks `URI` about the home agent's certificate (ECDSA CA) under
/// `policy`; the home agent checks nothing.
fn mn_lab(policy: RevocationPolicy) -> Lab {
    let mut mn = mn1();
    mn.revocation = policy;
    let mut l = Lab::new(mn, ha(RevocationPolicy::Off));
    l.mn.ep.set_ocsp(Some(ask_uri_about_ecdsa_ca()));
    l
}

#[test]
fn mobile_node_strict_parks_the_response_until_a_good_answer() {
    let mut l = mn_lab(RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.mn);
    assert_eq!(q.len(), 1, "the MN asked about the HA's certificate");
    assert_eq!(q[0].1, URI);
    // Parked: the HA is up, the MN is not, and nothing is in the MN's kernel yet.
    assert!(l.ha.ep.list()[0].state.contains("established"));
    assert!(!l.mn.ep.list()[0].state.contains("established"));
    assert!(l.mn.kernel.installed().is_empty());
    assert!(!l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    let now = l.now.unix;
    let st = l.mn.ep.ocsp_response(
        l.now,
        q[0].0,
        Ok(Answer::new(CertStatus::Good, now).respond(&q[0].2)),
    );
    assert_eq!(st, Some(CertStatus::Good));
    l.collect();
    assert!(l.establish(2));
    assert_eq!(l.mn.kernel.installed().len(), 4);
    let c = &l.mn.ep.peer_certs()[0].cert.checked;
    assert_eq!(c.status, CertStatus::Good);
    assert_eq!(c.source.as_deref(), Some(format!("ocsp {URI}").as_str()));
}

#[test]
fn mobile_node_refuses_a_home_agent_revoked_by_ocsp() {
    let mut l = mn_lab(RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.mn);
    let now = l.now.unix;
    let st = l.mn.ep.ocsp_response(
        l.now,
        q[0].0,
        Ok(Answer::new(CertStatus::Revoked, now).respond(&q[0].2)),
    );
    assert_eq!(st, Some(CertStatus::Revoked));
    l.collect();
    l.run_now();
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert!(l.mn.kernel.is_empty());
    // The MN told the HA (a Delete), so the HA's half of the SA goes too.
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());
}

#[test]
fn mobile_node_without_an_answer_in_time_refuses_once_the_wait_is_over() {
    let mut l = mn_lab(RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let start = l.now.at;
    l.run(|l| l.mn.ep.ike_sa_count() == 0, |_, _, _| true);
    assert!(
        l.now.at >= start + Duration::from_secs(6),
        "waited timeout + 1 s"
    );
    assert!(l.mn.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert_eq!(queries(&l.mn).len(), 1);
    assert!(l.mn.kernel.is_empty());
}

#[test]
fn mobile_node_relaxed_does_not_wait() {
    let mut l = mn_lab(RevocationPolicy::Relaxed);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2), "relaxed: up without the answer");
    assert_eq!(queries(&l.mn).len(), 1, "but the MN asked");
}

#[test]
fn periodic_refresh_asks_only_about_old_answers_and_a_revocation_since_deletes_the_sa() {
    let mut l = lab(mn1(), RevocationPolicy::Strict);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now();
    let q = queries(&l.ha);
    let good = Answer::new(CertStatus::Good, l.now.unix).respond(&q[0].2);
    l.ha.ep.ocsp_response(l.now, q[0].0, Ok(good));
    l.collect();
    assert!(l.establish(2));
    let max_age = Duration::from_secs(600);
    // The answer is younger than max_age: nothing to ask.
    l.advance(Duration::from_secs(300));
    assert_eq!(l.ha.ep.ocsp_refresh(l.now, max_age), 0);
    assert_eq!(queries(&l.ha).len(), 1);
    // Older: asked again, once (in flight: not again).
    l.advance(Duration::from_secs(301));
    assert_eq!(l.ha.ep.ocsp_refresh(l.now, max_age), 1);
    assert_eq!(l.ha.ep.ocsp_refresh(l.now, max_age), 0);
    l.collect();
    let q = queries(&l.ha);
    assert_eq!(q.len(), 2);
    // Still good: the SA stays, and the fresh answer resets the age.
    let good = Answer::new(CertStatus::Good, l.now.unix).respond(&q[1].2);
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[1].0, Ok(good)),
        Some(CertStatus::Good)
    );
    l.collect();
    assert_eq!(l.ha.kernel.installed().len(), 4);
    assert_eq!(l.ha.ep.ocsp_refresh(l.now, max_age), 0);
    // Revoked since: the next refresh's answer deletes the SA.
    l.advance(Duration::from_secs(601));
    assert_eq!(l.ha.ep.ocsp_refresh(l.now, max_age), 1);
    l.collect();
    let q = queries(&l.ha);
    let revoked = Answer::new(CertStatus::Revoked, l.now.unix).respond(&q[2].2);
    assert_eq!(
        l.ha.ep.ocsp_response(l.now, q[2].0, Ok(revoked)),
        Some(CertStatus::Revoked)
    );
    l.collect();
    assert!(l.ha.kernel.is_empty());
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
}
