//! The responder's cache of its last response (RFC 7296 2.1): a retransmitted request is
//! answered from it byte for byte and not processed again, for as long as a peer may still be
//! retransmitting; after that (5 minutes after the request) it is dropped, so that a home
//! agent does not keep one response per quiet IKE SA for hours (issue 13, memory per SA).

mod common;

use std::time::Duration;

use common::*;
use mip6_ike::ike::{Command, HomeAddress};
use mip6_ike::mobility::SaClass;

/// A quiet MN-HA pair: one CHILD_SA, and no liveness checks for an hour (they would replace the
/// cached response with a newer one).
fn quiet_lab() -> Lab {
    let mut mn = mn1();
    let mut ha = ha_config(AuthKind::Ecdsa, IKE, ESP);
    mn.timers.liveness_interval = Duration::from_secs(3600);
    ha.timers.liveness_interval = Duration::from_secs(3600);
    let mut l = Lab::new(mn, ha);
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.establish(1));
    l.run_now();
    l
}

#[test]
fn retransmissions_answered_from_the_cache_until_the_hold_time_then_not() {
    let mut l = quiet_lab();
    let ike = l.mn.ep.list()[0].id;
    l.mn_command(Command::CreateChild {
        ike,
        class: SaClass::Payload,
    });
    let (to_ha, request) = l.wire.remove(0);
    assert!(to_ha && l.wire.is_empty());
    l.deliver(true, &request);
    // The answer is lost on its way to the MN.
    let (to_ha, answer) = l.wire.remove(0);
    assert!(!to_ha && l.wire.is_empty());
    let ha_children = l.ha.ep.child_sa_count();
    let kernel = l.ha.kernel.len();

    // The MN's own retransmission, 2 s later: answered from the cache, same bytes.
    l.advance(Duration::from_secs(2));
    let (to_ha, again) = l.wire.remove(0);
    assert!(to_ha && again.data == request.data, "the MN retransmits");
    l.deliver(true, &again);
    let (_, cached) = l.wire.remove(0);
    assert_eq!(cached.data, answer.data, "byte-identical cached response");
    assert_eq!(l.ha.ep.child_sa_count(), ha_children, "not processed twice");
    assert_eq!(l.ha.kernel.len(), kernel);
    l.deliver(false, &cached);
    assert_eq!(
        l.mn.child_ups(),
        2,
        "the MN got its CHILD_SA from the cached answer"
    );

    // Still within the hold time (290 s after the request): a late copy is answered.
    l.advance(Duration::from_secs(288));
    l.wire.clear();
    l.deliver(true, &request);
    assert_eq!(
        l.wire.len(),
        1,
        "answered from the cache within the hold time"
    );
    assert_eq!(l.wire.remove(0).1.data, answer.data);

    // Past it: the cache is gone; a copy is dropped, nothing is processed or sent.
    l.advance(Duration::from_secs(11));
    l.wire.clear();
    let dropped = l.ha.ep.stats.dropped;
    l.deliver(true, &request);
    assert!(l.wire.is_empty(), "no answer after the hold time");
    assert_eq!(l.ha.ep.stats.dropped, dropped + 1);
    assert_eq!(l.ha.ep.child_sa_count(), ha_children);
    assert_eq!(l.ha.kernel.len(), kernel);
    assert_eq!(l.ha.ep.ike_sa_count(), 1, "the SA itself is untouched");

    // The SA goes on: the next request (the MN's next exchange) is processed normally.
    l.mn_command(Command::CreateChild {
        ike,
        class: SaClass::HotiHot,
    });
    assert!(
        l.run(|l| l.mn.child_ups() >= 3, |_, _, _| true),
        "{:?}",
        l.mn.events
    );
}
