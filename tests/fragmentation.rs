//! IKE fragmentation (RFC 7383) in the engine: negotiation, sending within `fragment_size`,
//! reassembly in any order, and what a forger or a path that drops IP fragments can do.

mod common;

use common::*;
use mip6_ike::ike::{Config, Fragmentation, HomeAddress, Transmit};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// The largest IKE message (from the IKE header) a 1280-byte IPv6 datagram carries.
const FITS_1280: usize = 1280 - 40 - 8;

fn with_fragments(mut c: Config, enabled: bool, size: usize) -> Config {
    c.fragmentation = Fragmentation { enabled, size };
    c
}

/// RSA certificates: an IKE_AUTH with a certificate, a CERTREQ and a 2048-bit signature does
/// not fit 1,232 bytes.
fn rsa_lab(mn_frag: (bool, usize), ha_frag: (bool, usize)) -> Lab {
    let mn = with_fragments(
        mn_config(AuthKind::Rsa, "mn1", IKE, ESP),
        mn_frag.0,
        mn_frag.1,
    );
    let ha = with_fragments(ha_config(AuthKind::Rsa, IKE, ESP), ha_frag.0, ha_frag.1);
    Lab::new(mn, ha)
}

fn header(t: &Transmit) -> Header {
    Header::parse(&t.data).unwrap()
}

fn is_fragment(t: &Transmit) -> bool {
    header(t).next_payload == PL_SKF
}

/// (fragment number, total) of an Encrypted Fragment message.
fn numbers(t: &Transmit) -> (u16, u16) {
    match Message::parse(&t.data).unwrap().payloads.last() {
        Some(Payload::Skf { number, total, .. }) => (*number, *total),
        other => panic!("not a fragment: {other:?}"),
    }
}

/// Runs the handshake, recording every datagram with its direction.
fn establish_recording(l: &mut Lab) -> (bool, Vec<(bool, Transmit)>) {
    let mut seen = Vec::new();
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let ok = l.run(
        |l| l.mn.child_ups() >= 2 && l.ha.child_ups() >= 2,
        |_, to_ha, t| {
            seen.push((to_ha, t.clone()));
            true
        },
    );
    (ok, seen)
}

#[test]
fn negotiated_in_ike_sa_init_and_used_for_large_ike_auth_both_ways() {
    let mut l = rsa_lab((true, 576), (true, 576));
    let (ok, seen) = establish_recording(&mut l);
    assert!(ok, "handshake with fragments failed");

    // Both IKE_SA_INIT messages announce it (RFC 7383 2.3).
    for (to_ha, t) in seen
        .iter()
        .filter(|(_, t)| header(t).exchange == IKE_SA_INIT)
    {
        let m = Message::parse(&t.data).unwrap();
        assert!(
            m.payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == N_IKEV2_FRAGMENTATION_SUPPORTED && n.data.is_empty())),
            "IKE_SA_INIT {} without IKEV2_FRAGMENTATION_SUPPORTED",
            if *to_ha { "request" } else { "response" }
        );
    }
    // Both IKE_AUTH messages went in fragments, none larger than 576 - 48 bytes, numbered
    // 1..=total in order, every one with the same message ID.
    for dir in [true, false] {
        let frags: Vec<&Transmit> = seen
            .iter()
            .filter(|(to_ha, t)| *to_ha == dir && header(t).exchange == IKE_AUTH)
            .map(|(_, t)| t)
            .collect();
        assert!(frags.len() >= 3, "IKE_AUTH in {} pieces", frags.len());
        let total = numbers(frags[0]).1;
        assert_eq!(frags.len(), usize::from(total));
        for (i, t) in frags.iter().enumerate() {
            assert!(is_fragment(t));
            assert!(
                t.data.len() <= 576 - 48,
                "fragment of {} bytes",
                t.data.len()
            );
            assert_eq!(numbers(t), (i as u16 + 1, total));
            assert_eq!(header(t).message_id, 1);
            assert_eq!(header(t).length as usize, t.data.len());
        }
        // Only fragment 1 names the first inner payload (IDi / IDr).
        let first = Message::parse(&frags[0].data).unwrap();
        let Some(Payload::Skf { first_inner, .. }) = first.payloads.last() else {
            panic!()
        };
        assert_eq!(*first_inner, if dir { PL_IDI } else { PL_IDR });
        let second = Message::parse(&frags[1].data).unwrap();
        assert!(matches!(
            second.payloads.last(),
            Some(Payload::Skf { first_inner: 0, .. })
        ));
    }
    assert_eq!(l.mn.ep.stats.fragmented_sent, 1);
    assert_eq!(l.ha.ep.stats.fragmented_sent, 1);
    assert_eq!(l.mn.ep.stats.reassembled, 1);
    assert_eq!(l.ha.ep.stats.reassembled, 1);
}

#[test]
fn small_messages_stay_whole() {
    // ECDSA: IKE_AUTH fits 1,232 bytes, so nothing is fragmented although both sides could.
    let mn = with_fragments(mn1(), true, 1280);
    let ha = with_fragments(ha_config(AuthKind::Ecdsa, IKE, ESP), true, 1280);
    let mut l = Lab::new(mn, ha);
    let (ok, seen) = establish_recording(&mut l);
    assert!(ok);
    assert!(seen.iter().all(|(_, t)| !is_fragment(t)));
    assert_eq!(
        l.mn.ep.stats.fragmented_sent + l.ha.ep.stats.fragmented_sent,
        0
    );
}

/// A path with MTU 1280 that drops IP fragments: datagrams above 1,232 bytes of IKE vanish.
fn drop_ip_fragments(_: usize, _: bool, t: &Transmit) -> bool {
    t.data.len() <= FITS_1280
}

#[test]
fn a_path_that_drops_ip_fragments_needs_ike_fragmentation() {
    // With it: the handshake completes through the path.
    let mut l = rsa_lab((true, 1280), (true, 1280));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.run(
        |l| l.mn.child_ups() >= 2 && l.ha.child_ups() >= 2,
        drop_ip_fragments
    ));

    // Without it (the HA does not announce it): the IKE_AUTH request is too large for the path
    // and never arrives; the MN gives up after its retransmissions.
    let mut l = rsa_lab((true, 1280), (false, 1280));
    let mut largest_auth = 0;
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let up = l.run(
        |l| l.mn.child_ups() >= 2,
        |n, to_ha, t| {
            if header(t).exchange == IKE_AUTH {
                largest_auth = largest_auth.max(t.data.len());
            }
            drop_ip_fragments(n, to_ha, t)
        },
    );
    assert!(!up);
    assert!(largest_auth > FITS_1280, "IKE_AUTH of {largest_auth} bytes");
    assert!(!l.ha.ike_up());
}

#[test]
fn fragments_reassemble_in_any_order_and_duplicates_are_ignored() {
    let mut l = rsa_lab((true, 576), (true, 576));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    // IKE_SA_INIT both ways.
    l.run_now_n(2);
    let frags: Vec<(bool, Transmit)> = std::mem::take(&mut l.wire);
    assert!(frags.len() >= 3 && frags.iter().all(|(to_ha, t)| *to_ha && is_fragment(t)));
    // Last first, then everything again in order (duplicates), minus nothing.
    for (to_ha, t) in frags.iter().rev() {
        l.deliver(*to_ha, t);
    }
    assert_eq!(l.ha.ep.stats.reassembled, 1, "reassembled once all were in");
    let answers = l.wire.len();
    assert!(answers >= 3, "the HA answered in fragments");
    for (to_ha, t) in &frags[1..] {
        l.deliver(*to_ha, t);
    }
    // Fragments 2..n of a request already answered trigger nothing (RFC 7383 2.6.1) ...
    assert_eq!(l.wire.len(), answers);
    // ... fragment 1 of it re-sends the whole cached answer.
    l.deliver(frags[0].0, &frags[0].1);
    assert_eq!(l.wire.len(), 2 * answers);
    assert_eq!(l.ha.ep.stats.reassembled, 1);
    assert!(l.establish(2));
}

#[test]
fn a_lost_fragment_is_recovered_by_retransmission() {
    let mut l = rsa_lab((true, 576), (true, 576));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let mut dropped = false;
    assert!(l.run(
        |l| l.mn.child_ups() >= 2 && l.ha.child_ups() >= 2,
        |_, to_ha, t| {
            // The first transmission's fragment 2 of the HA's IKE_AUTH answer is lost.
            if !to_ha && is_fragment(t) && numbers(t).0 == 2 && !dropped {
                dropped = true;
                return false;
            }
            true
        },
    ));
    assert!(dropped);
    assert!(l.mn.ep.stats.retransmissions >= 1);
}

#[test]
fn a_forged_or_altered_fragment_is_never_kept() {
    let mut l = rsa_lab((true, 576), (true, 576));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now_n(2);
    let frags: Vec<(bool, Transmit)> = std::mem::take(&mut l.wire);
    let dropped_before = l.ha.ep.stats.dropped;

    // An on-path forger renumbers fragment 2 as fragment 1 (the numbers are authenticated) and
    // flips a ciphertext bit of fragment 3: both fail their ICV and are dropped.
    let mut renumbered = frags[1].1.clone();
    renumbered.data[28 + 4..28 + 6].copy_from_slice(&1u16.to_be_bytes());
    l.deliver(true, &renumbered);
    let mut flipped = frags[2].1.clone();
    let last = flipped.data.len() - 20;
    flipped.data[last] ^= 1;
    l.deliver(true, &flipped);
    // A fragment claiming more fragments than exist, forged from a real one: dropped too.
    let mut more = frags[0].1.clone();
    more.data[28 + 6..28 + 8].copy_from_slice(&200u16.to_be_bytes());
    l.deliver(true, &more);
    assert_eq!(l.ha.ep.stats.dropped, dropped_before + 3);
    assert_eq!(l.ha.ep.stats.reassembled, 0);
    assert!(l.wire.is_empty(), "nothing answered");

    // The genuine fragments still complete the message: the forgeries left nothing behind.
    for (to_ha, t) in &frags {
        l.deliver(*to_ha, t);
    }
    assert_eq!(l.ha.ep.stats.reassembled, 1);
    assert!(l.establish(2));
}

#[test]
fn no_fragments_unless_both_announced_support() {
    let mut l = rsa_lab((true, 576), (false, 576));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now_n(1);
    // The HA's IKE_SA_INIT response carries no announcement, so the MN does not fragment
    // either: IKE_AUTH goes whole (and, on this lossless link, arrives).
    let (_, resp) = l.wire.remove(0);
    let m = Message::parse(&resp.data).unwrap();
    assert!(!m.payloads.iter().any(
        |p| matches!(p, Payload::Notify(n) if n.notify_type == N_IKEV2_FRAGMENTATION_SUPPORTED)
    ));
    l.deliver(false, &resp);
    assert!(l.wire.iter().all(|(_, t)| !is_fragment(t)));
    assert!(l.establish(2));
    assert_eq!(l.ha.ep.stats.reassembled, 0);
}

#[test]
fn an_incomplete_message_is_given_up_after_the_reassembly_timeout() {
    let mut l = rsa_lab((true, 576), (true, 576));
    // Keep the half-open SA itself alive past the reassembly timeout.
    let mut ha = with_fragments(ha_config(AuthKind::Rsa, IKE, ESP), true, 576);
    ha.timers.half_open_timeout = std::time::Duration::from_secs(120);
    l.ha = Side::new(ha, HA_ADDR, 2, l.now);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    l.run_now_n(2);
    let frags: Vec<(bool, Transmit)> = std::mem::take(&mut l.wire);
    // All but the last: the HA holds them and waits.
    for (to_ha, t) in &frags[..frags.len() - 1] {
        l.deliver(*to_ha, t);
    }
    assert!(l.wire.is_empty());
    // 31 s later the partial message is gone: the last fragment alone completes nothing.
    // (The MN's retransmissions are dropped here, so only the old pieces could count.)
    l.advance(std::time::Duration::from_secs(31));
    l.wire.clear();
    let (to_ha, t) = frags.last().unwrap();
    l.deliver(*to_ha, t);
    assert_eq!(l.ha.ep.stats.reassembled, 0);
    // The SA itself is still there: all the pieces again make the whole message.
    for (to_ha, t) in &frags {
        l.deliver(*to_ha, t);
    }
    assert_eq!(l.ha.ep.stats.reassembled, 1);
}
