//! ESP-aware liveness: before a liveness check the engine asks the kernel (here the in-memory
//! one, whose counters the test drives) what its inbound SAs received; ESP that arrived puts
//! the INFORMATIONAL off. Deterministic, in the I/O-free engine.

mod common;

use std::time::Duration;

use common::*;
use mip6_ike::ike::{Event, HomeAddress, USE_ANSWER_WAIT};
use mip6_ike::kernel::Kernel;
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::Header;
use mip6_ike::wire::consts::*;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];
const INTERVAL: Duration = Duration::from_secs(30);

fn lab() -> Lab {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.mn.ep.set_esp_liveness(true);
    l.ha.ep.set_esp_liveness(true);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    l
}

/// Each side's daemon answers the engine's questions from its kernel. Returns how many.
fn answer(l: &mut Lab) -> usize {
    let mut n = 0;
    for s in [&mut l.mn, &mut l.ha] {
        while let Some(q) = s.ep.poll_sa_use_query() {
            let c = s.kernel.sa_use(&q.sas);
            s.ep.handle_sa_use(l.now, &q, &c);
            n += 1;
        }
    }
    l.collect();
    n
}

/// ESP arrives on every inbound SA of both sides.
fn esp_flows(l: &mut Lab) {
    for s in [&mut l.mn, &mut l.ha] {
        for c in &s.ep.list()[0].children {
            assert!(s.kernel.count_packets(c.local, c.spi_in, 3, 300));
        }
    }
}

/// INFORMATIONAL requests on the wire now.
fn informational_requests(l: &Lab) -> usize {
    l.wire
        .iter()
        .filter(|(_, t)| {
            let h = Header::parse(&t.data).unwrap();
            h.exchange == INFORMATIONAL && !h.is_response()
        })
        .count()
}

#[test]
fn inbound_esp_puts_liveness_checks_off() {
    let mut l = lab();
    let mut asked = 0;
    // Five intervals of ESP both ways and no IKE at all: no INFORMATIONAL.
    for _ in 0..15 {
        esp_flows(&mut l);
        l.advance(Duration::from_secs(10));
        asked += answer(&mut l);
        assert_eq!(informational_requests(&l), 0, "no check while ESP flows");
        l.run_now();
    }
    assert!(
        asked >= 8,
        "each side asked the kernel every interval: {asked}"
    );
    // ESP stops: a check goes within an interval (plus the question), and is answered.
    let delivered = l.delivered;
    let mut sent = 0;
    for _ in 0..40 {
        l.advance(Duration::from_secs(1));
        answer(&mut l);
        sent += informational_requests(&l);
        l.run_now();
    }
    assert!(sent >= 1, "a liveness check once ESP stopped");
    assert!(l.delivered >= delivered + 2);
    for s in [&l.mn, &l.ha] {
        assert!(!s.events.iter().any(|e| matches!(e, Event::IkeDown { .. })));
        assert_eq!(s.ep.list()[0].state, "established");
    }
}

/// ESP on one inbound SA of the IKE SA is enough; the side that received none checks. And a
/// daemon that never answers delays the check by USE_ANSWER_WAIT only.
#[test]
fn only_this_ike_sas_inbound_esp_counts_and_an_unanswered_question_falls_back() {
    let mut l = lab();
    // Only the MN's inbound payload SA receives.
    let c = l.mn.ep.list()[0].children[1].clone();
    l.mn.kernel.count_packets(c.local, c.spi_in, 1, 100);
    l.advance(INTERVAL);
    answer(&mut l);
    // The MN saw ESP; the HA (nothing received) checks over IKE.
    let reqs: Vec<bool> = l
        .wire
        .iter()
        .filter(|(_, t)| Header::parse(&t.data).unwrap().exchange == INFORMATIONAL)
        .map(|(to_ha, _)| *to_ha)
        .collect();
    assert_eq!(reqs, vec![false], "only the HA sends a check");
    l.run_now();
    // Nobody answers the questions now: the check goes USE_ANSWER_WAIT later.
    let start = l.now.at;
    let mut first = None;
    for _ in 0..60 {
        l.advance(Duration::from_secs(1));
        while l.mn.ep.poll_sa_use_query().is_some() {}
        while l.ha.ep.poll_sa_use_query().is_some() {}
        if informational_requests(&l) > 0 && first.is_none() {
            first = Some(l.now.at - start);
        }
        l.run_now();
    }
    let first = first.expect("a check without the kernel's answer");
    assert!(
        first >= INTERVAL && first <= INTERVAL + USE_ANSWER_WAIT + Duration::from_secs(1),
        "{first:?}"
    );
}

/// Without the kernel questions turned on (a daemon without them), liveness is as before: an
/// INFORMATIONAL every interval of IKE silence, whatever ESP did.
#[test]
fn without_questions_liveness_counts_ike_only() {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    esp_flows(&mut l);
    l.advance(INTERVAL);
    assert!(l.mn.ep.poll_sa_use_query().is_none());
    assert!(informational_requests(&l) >= 1);
}

/// Attacker's view: the HA dies; an on-path forger keeps sending the MN garbage under the
/// IKE SA's SPIs and replays of the HA's last genuine messages. None of it is authenticated
/// new input, so the MN declares the HA dead exactly when it would without the forger.
#[test]
fn a_forger_cannot_keep_a_dead_peers_ike_sa_alive() {
    let run = |forge: bool| -> (Duration, u64) {
        let mut l = lab();
        // One genuine liveness round trip to have the HA's messages to replay.
        l.advance(INTERVAL);
        answer(&mut l);
        let genuine: Vec<_> = l
            .wire
            .iter()
            .filter(|(to_ha, _)| !*to_ha)
            .map(|(_, t)| t.clone())
            .collect();
        l.run_now();
        let mut replay: Vec<_> = genuine;
        replay.extend(l.mn.drain().into_iter().filter(|t| t.remote == l.ha.addr));
        // The HA is gone from here on: nothing reaches it, nothing comes from it.
        let dead_at = l.now.at;
        let dropped = l.mn.ep.stats.dropped;
        for _ in 0..400 {
            l.advance(Duration::from_secs(1));
            answer(&mut l);
            l.wire.clear();
            if forge {
                for t in &replay {
                    l.mn.ep
                        .handle_datagram(l.now, l.mn.addr, l.ha.addr, &t.data);
                }
                let mut junk = replay[0].data.clone();
                let n = junk.len();
                junk[n - 5] ^= 0x40;
                l.mn.ep.handle_datagram(l.now, l.mn.addr, l.ha.addr, &junk);
                l.collect();
                l.wire.clear();
            }
            if l.mn
                .events
                .iter()
                .any(|e| matches!(e, Event::IkeDown { .. }))
            {
                return (l.now.at - dead_at, l.mn.ep.stats.dropped - dropped);
            }
        }
        panic!("the dead HA was never noticed (forge = {forge})");
    };
    let (quiet, _) = run(false);
    let (forged, dropped) = run(true);
    assert_eq!(forged, quiet, "the forger changed nothing");
    assert!(
        dropped > 100,
        "the forged and replayed messages were dropped: {dropped}"
    );
}
