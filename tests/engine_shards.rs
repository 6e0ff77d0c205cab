//! An Endpoint as one of several engine shards (`ike::shard`): its IKE SPIs carry the shard,
//! INITIAL_CONTACT is told to the other shards, and another shard's claim drops the
//! identity's SAs here (without a Delete, or with one under uniqueness = replace).

mod common;

use common::*;
use mip6_ike::auth::Identity;
use mip6_ike::ike::{HomeAddress, IkeId, ShardNote, shard_of_spi};
use mip6_ike::kernel::{Kernel, KernelOp};
use mip6_ike::mobility::SaClass;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// mn1 up with a home agent that is shard `index` of `count`.
fn lab(index: usize, count: usize) -> Lab {
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", IKE, ESP),
        ha_config(AuthKind::Ecdsa, IKE, ESP),
    );
    l.ha.ep.set_shard(index, count);
    assert_eq!(l.ha.ep.shard(), (index, count));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l
}

fn mn1() -> Identity {
    Identity::parse_config(MN1_DN).unwrap()
}

#[test]
fn our_ike_spis_carry_the_shard() {
    for (index, count) in [(0, 2), (1, 2), (3, 4), (5, 64)] {
        let l = lab(index, count);
        let sas = l.ha.ep.list();
        assert_eq!(sas.len(), 1);
        assert_eq!(
            shard_of_spi(sas[0].id.0, count),
            index,
            "{:016x}",
            sas[0].id.0
        );
        assert_eq!((sas[0].id.0 >> 56) as usize, index);
    }
}

#[test]
fn initial_contact_is_told_to_the_other_shards_only_with_several() {
    let mut l = lab(1, 2);
    let ike = l.ha.ep.list()[0].id;
    assert_eq!(
        l.ha.ep.poll_shard_note(),
        Some(ShardNote::IdentityClaimed {
            ike,
            identity: mn1(),
            replace: false,
            home_address: None,
        })
    );
    // Under the default `replace`: once the new SA knows its home address, the other shards
    // are told which of their older SAs it replaces.
    assert_eq!(
        l.ha.ep.poll_shard_note(),
        Some(ShardNote::IdentityClaimed {
            ike,
            identity: mn1(),
            replace: true,
            home_address: Some(HOA1),
        })
    );
    assert_eq!(l.ha.ep.poll_shard_note(), None);
    // One shard: nobody to tell.
    let mut l = lab(0, 1);
    assert_eq!(l.ha.ep.poll_shard_note(), None);
}

#[test]
fn another_shards_claim_drops_the_identitys_sas_here() {
    for replace in [false, true] {
        let mut l = lab(0, 2);
        l.ha.drain();
        let other = IkeId(0x0100_0000_0000_0001);
        // Someone else's identity: nothing goes.
        let mn2 = Identity::parse_config(MN2_DN).unwrap();
        assert_eq!(
            l.ha.ep
                .drop_identity(l.now, other, &mn2, replace, Some(HOA1)),
            0
        );
        assert_eq!(l.ha.ep.list().len(), 1);
        if replace {
            // Another home address of the identity: not a duplicate, it stays.
            let hoa9 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x900);
            assert_eq!(
                l.ha.ep
                    .drop_identity(l.now, other, &mn1(), true, Some(hoa9)),
                0
            );
            // The same home address: replaced, make before break: it stays for the grace.
            assert_eq!(
                l.ha.ep
                    .drop_identity(l.now, other, &mn1(), true, Some(HOA1)),
                1
            );
            assert_eq!(l.ha.ep.list().len(), 1, "still there during the grace");
            assert_eq!(l.ha.kernel.installed().len(), 4);
            l.advance(std::time::Duration::from_secs(11));
        } else {
            assert_eq!(l.ha.ep.drop_identity(l.now, other, &mn1(), false, None), 1);
        }
        assert!(l.ha.ep.list().is_empty());
        let sent = l.ha.drain();
        // Both CHILD_SAs leave the kernel: four SAs.
        let dels =
            l.ha.ops
                .iter()
                .filter(|o| matches!(o, KernelOp::DelSa { .. }))
                .count();
        assert_eq!(dels, 4);
        assert!(l.ha.kernel.installed().is_empty());
        // INITIAL_CONTACT: the peer restarted, no Delete; replace: a Delete to the old peer
        // (sent at the timer, which the lab collected onto its wire).
        let to_mn = sent.len() + l.wire.iter().filter(|(to_ha, _)| !to_ha).count();
        assert_eq!(to_mn, usize::from(replace), "{sent:?}");
    }
}

#[test]
fn keep_refuses_an_identity_another_shard_holds() {
    use mip6_ike::ike::Event;
    use mip6_ike::mobility::{Uniqueness, UserAuth};
    for (held_by, refused) in [(Some(0u8), true), (Some(1), false), (None, false)] {
        let mut u = user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], BU_PAYLOAD);
        u.uniqueness = Some(Uniqueness::Keep);
        let mut l = Lab::new(
            mn_config(AuthKind::Ecdsa, "mn1", IKE, ESP),
            ha_with_users(vec![u]),
        );
        l.ha.ep.set_shard(1, 2);
        if let Some(s) = held_by {
            // Shard `s` of the same home agent has an IKE SA of mn1 (its own shard's bit is
            // this shard's record, which the local check covers).
            l.ha.ep
                .lease_table()
                .lock()
                .unwrap()
                .hold(&mn1().to_string(), s);
        }
        l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
        let up = l.establish(2);
        assert_eq!(up, !refused, "held by {held_by:?}");
        if refused {
            assert!(l.ha.ep.list().is_empty());
            assert!(l.mn.events.iter().any(|e| matches!(
                e,
                Event::ExchangeFailed {
                    notify: Some(24),
                    ..
                }
            )));
        }
    }
}
