//! Issue 14, the engine side: what a hostile peer (or an on-path forger) can do to the protocol
//! engine. One test per audit item; each failed before its fix, and each also checks that
//! nothing already established was lost and that the refusal was the right one.

mod common;

use std::time::Duration;

use common::*;
use mip6_ike::ike::{Command, Event, HomeAddress, IkeSaInfo};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Notify, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// An established MN/HA pair with the BU/BA and payload CHILD_SAs.
fn established() -> Lab {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l
}

/// The one IKE SA of a side (panics unless there is exactly one).
fn only_sa(s: &Side) -> IkeSaInfo {
    let v = s.ep.list();
    assert_eq!(v.len(), 1, "{v:?}");
    v.into_iter().next().unwrap()
}

fn no_down(s: &Side) -> bool {
    !s.events
        .iter()
        .any(|e| matches!(e, Event::IkeDown { .. } | Event::ChildDown { .. }))
}

/// An unprotected message with these header fields and payloads.
fn plain(spi_i: u64, spi_r: u64, exchange: u8, flags: u8, msg_id: u32, p: Vec<Payload>) -> Vec<u8> {
    Message {
        header: Header {
            spi_i,
            spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange,
            flags,
            message_id: msg_id,
            length: 0,
        },
        payloads: p,
    }
    .emit()
}

// ---- item 1 (audit 2) ----

#[test]
fn forged_init_response_does_not_delete_an_established_sa() {
    let mut l = established();
    let ha_sa = only_sa(&l.ha);
    let spi_in = ha_sa.children[1].spi_in;
    // The HA's first own request on this IKE SA has message ID 0.
    l.ha_command(Command::RekeyChild {
        ike: ha_sa.id,
        spi_in,
    });
    assert_eq!(l.wire.len(), 1);
    let dropped = l.ha.ep.stats.dropped;
    // The forger knows both SPIs (they are in every packet) and answers message ID 0 with a
    // plaintext IKE_SA_INIT "response" asking for a COOKIE.
    let forged = plain(
        ha_sa.spi_i,
        ha_sa.spi_r,
        IKE_SA_INIT,
        FLAG_INITIATOR | FLAG_RESPONSE,
        0,
        vec![Payload::Notify(Notify::new(N_COOKIE, vec![7; 16]))],
    );
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
    l.collect();
    assert_eq!(l.ha.ep.stats.dropped, dropped + 1, "the forgery is dropped");
    assert!(no_down(&l.ha), "{:?}", l.ha.events);
    assert_eq!(only_sa(&l.ha).state, "established");
    // The genuine exchange completes: the rekey replaces the payload SA.
    assert!(l.run(
        |l| l.ha.child_ups() >= 3 && l.wire.is_empty(),
        |_, _, _| true
    ));
    assert_eq!(only_sa(&l.ha).children.len(), 2);
    assert_eq!(only_sa(&l.mn).state, "established");
    assert!(
        !l.ha
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
}
