//! CHILD_SA semantics against strongSwan's behaviour (issue 12): simultaneous CHILD_SA rekeys
//! (RFC 7296 2.8.1), a rekey of a CHILD_SA being deleted (2.25), in the I/O-free engine.

mod common;

use std::time::Duration;

use common::*;
use mip6_ike::ike::{Command, Event, HomeAddress, IkeId};
use mip6_ike::kernel::Direction;
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::Header;
use mip6_ike::wire::consts::*;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// An established MN/HA pair with liveness checks out of the way.
fn established() -> (Lab, IkeId, IkeId) {
    established_with(|_, _| {})
}

fn established_with(
    f: impl FnOnce(&mut mip6_ike::ike::Config, &mut mip6_ike::ike::Config),
) -> (Lab, IkeId, IkeId) {
    let mut mn = mn1();
    mn.timers.liveness_interval = Duration::from_secs(1000);
    let mut ha = ha_config(AuthKind::Ecdsa, IKE, ESP);
    ha.timers.liveness_interval = Duration::from_secs(1000);
    f(&mut mn, &mut ha);
    let mut l = Lab::new(mn, ha);
    let id = l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    let ha_id = l.ha.ep.list()[0].id;
    (l, id, ha_id)
}

/// (inbound, outbound) SPIs of the payload CHILD_SAs a side holds.
fn payload_children(s: &Side) -> Vec<(u32, u32)> {
    s.ep.list()[0]
        .children
        .iter()
        .filter(|c| c.class == Some(SaClass::Payload))
        .map(|c| (c.spi_in, c.spi_out))
        .collect()
}

/// Both sides hold one CHILD_SA per class, the same pair, and their kernels hold exactly one
/// inbound and one outbound SA per CHILD_SA, with the class's reqids.
fn one_pair_per_class(l: &Lab) {
    for s in [&l.mn, &l.ha] {
        assert!(s.kernel_errors.is_empty(), "{:?}", s.kernel_errors);
        let sa = &s.ep.list()[0];
        assert_eq!(sa.children.len(), 2, "{:?}", sa.children);
        assert_eq!(
            s.kernel.len(),
            4,
            "{:?}",
            s.kernel.sas().collect::<Vec<_>>()
        );
        for c in &sa.children {
            let i = s.kernel.get(c.local, c.spi_in).expect("inbound SA");
            let o = s.kernel.get(c.remote, c.spi_out).expect("outbound SA");
            assert_eq!((i.direction, o.direction), (Direction::In, Direction::Out));
            let r = c.class.unwrap().default_reqids();
            let want = if s.ep.config().home_agent.is_some() {
                (r.to_ha, r.to_mn)
            } else {
                (r.to_mn, r.to_ha)
            };
            assert_eq!((i.reqid, o.reqid), want, "class reqids kept");
        }
    }
    let (m, h) = (payload_children(&l.mn), payload_children(&l.ha));
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0],
        (h[0].1, h[0].0),
        "the same surviving pair on both sides"
    );
}

fn child_ups(s: &Side) -> Vec<u32> {
    s.events
        .iter()
        .filter_map(|e| match e {
            Event::ChildUp(c) => Some(c.spi_in),
            _ => None,
        })
        .collect()
}

/// Both sides rekey the payload CHILD_SA at the same instant; the requests cross. Run with
/// different nonces (the endpoints' RNG state moves with each earlier rekey) until both
/// outcomes were seen: the MN's exchange made the survivor, and the HA's did.
#[test]
fn simultaneous_child_sa_rekeys_leave_one_pair() {
    let (mut mn_won, mut ha_won) = (0, 0);
    for shift in 0..8 {
        let (mut l, id, ha_id) = established();
        for _ in 0..shift {
            let spi = payload_children(&l.mn)[0].0;
            l.mn_command(Command::RekeyChild {
                ike: id,
                spi_in: spi,
            });
            l.run_now();
        }
        one_pair_per_class(&l);
        let (m_old_in, m_old_out) = payload_children(&l.mn)[0];
        let (h_old_in, _) = payload_children(&l.ha)[0];
        assert_eq!(h_old_in, m_old_out);
        let ups_before = child_ups(&l.mn).len();
        l.mn.ep
            .handle_command(
                l.now,
                Command::RekeyChild {
                    ike: id,
                    spi_in: m_old_in,
                },
            )
            .unwrap();
        l.ha_command(Command::RekeyChild {
            ike: ha_id,
            spi_in: h_old_in,
        });
        assert_eq!(l.wire.len(), 2, "both requests cross");
        l.run_now();
        l.advance(Duration::from_secs(5));
        l.run_now();
        one_pair_per_class(&l);
        // Nothing of the old CHILD_SA is left anywhere.
        let (m_new_in, _) = payload_children(&l.mn)[0];
        assert_ne!(m_new_in, m_old_in);
        assert!(
            l.mn.kernel
                .sas()
                .all(|s| s.spi != m_old_in && s.spi != m_old_out)
        );
        assert!(
            l.ha.kernel
                .sas()
                .all(|s| s.spi != m_old_in && s.spi != m_old_out)
        );
        // The MN answered the HA's request before its own answer came: its first new CHILD_SA
        // is the HA's exchange's, the second its own.
        let ups = &child_ups(&l.mn)[ups_before..];
        assert_eq!(ups.len(), 2, "two CHILD_SAs were made");
        if m_new_in == ups[1] {
            mn_won += 1;
        } else {
            assert_eq!(m_new_in, ups[0]);
            ha_won += 1;
        }
        for s in [&l.mn, &l.ha] {
            assert!(
                !s.events
                    .iter()
                    .any(|e| matches!(e, Event::IkeDown { .. } | Event::ExchangeFailed { .. })),
                "{:?}",
                s.events
            );
        }
        // The survivor is a normal CHILD_SA: it rekeys and deletes.
        l.mn_command(Command::RekeyChild {
            ike: id,
            spi_in: m_new_in,
        });
        l.run_now();
        one_pair_per_class(&l);
        l.mn_command(Command::Terminate { ike: id });
        l.run_now();
        assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
    }
    assert!(
        mn_won > 0 && ha_won > 0,
        "both nonce orders: {mn_won} {ha_won}"
    );
}

/// The MN gets the HA's answer to its rekey before the HA's crossing rekey request (the
/// network reordered them): it deletes the old CHILD_SA at once, and the HA's request for it
/// gets TEMPORARY_FAILURE (RFC 7296 2.25). One pair remains.
#[test]
fn crossing_child_rekey_reordered_gets_temporary_failure() {
    let (mut l, id, ha_id) = established();
    let (m_old_in, m_old_out) = payload_children(&l.mn)[0];
    l.mn.ep
        .handle_command(
            l.now,
            Command::RekeyChild {
                ike: id,
                spi_in: m_old_in,
            },
        )
        .unwrap();
    l.ha_command(Command::RekeyChild {
        ike: ha_id,
        spi_in: m_old_out,
    });
    let (to_ha, mn_req) = l.wire.remove(0);
    assert!(to_ha);
    l.deliver(true, &mn_req); // the HA answers (wire: HA's request, HA's answer)
    assert_eq!(l.wire.len(), 2);
    let (_, ha_answer) = l.wire.remove(1);
    l.deliver(false, &ha_answer); // the MN installs its new CHILD_SA and deletes the old one
    l.run_now();
    l.advance(Duration::from_secs(5));
    l.run_now();
    one_pair_per_class(&l);
    assert!(
        l.ha.exchange_failed(Some(N_TEMPORARY_FAILURE)),
        "{:?}",
        l.ha.events
    );
    assert!(!l.mn.exchange_failed(None));
    assert!(
        l.mn.kernel
            .sas()
            .all(|s| s.spi != m_old_in && s.spi != m_old_out)
    );
}

/// RFC 7296 2.25: the MN deletes the payload CHILD_SA while the HA rekeys it. The MN answers
/// the rekey with TEMPORARY_FAILURE, the HA's CHILD_SA goes with the Delete, and no new one
/// is left behind on either side.
#[test]
fn rekey_of_a_child_sa_being_deleted_is_refused() {
    let (mut l, id, ha_id) = established();
    let (m_in, m_out) = payload_children(&l.mn)[0];
    l.mn.ep
        .handle_command(
            l.now,
            Command::DeleteChild {
                ike: id,
                spi_in: m_in,
            },
        )
        .unwrap();
    l.ha_command(Command::RekeyChild {
        ike: ha_id,
        spi_in: m_out,
    });
    assert_eq!(l.wire.len(), 2, "Delete and rekey cross");
    l.run_now();
    l.advance(Duration::from_secs(5));
    l.run_now();
    assert!(
        l.ha.exchange_failed(Some(N_TEMPORARY_FAILURE)),
        "{:?}",
        l.ha.events
    );
    for s in [&l.mn, &l.ha] {
        let sa = &s.ep.list()[0];
        assert_eq!(sa.children.len(), 1, "{:?}", sa.children);
        assert_eq!(sa.children[0].class, Some(SaClass::BuBa));
        assert_eq!(
            s.kernel.len(),
            2,
            "{:?}",
            s.kernel.sas().collect::<Vec<_>>()
        );
        assert_eq!(sa.state, "established");
    }
}

/// Attacker's view: an on-path forger's copy of the crossing request changes nothing, and
/// a peer that is slow to delete the redundant CHILD_SA it made cannot make it last: our side
/// never rekeys it while it waits for the Delete (a rekey would keep it forever), and the late
/// Delete leaves one pair per class.
#[test]
fn a_redundant_child_sa_is_never_renewed() {
    for shift in 0..8 {
        let (mut l, id, ha_id) = established_with(|mn, ha| {
            mn.timers.child_rekey = Duration::from_secs(60);
            mn.timers.child_lifetime = Duration::from_secs(600);
            ha.timers.retransmit_timeout = Duration::from_secs(100);
        });
        for _ in 0..shift {
            let spi = payload_children(&l.mn)[0].0;
            l.mn_command(Command::RekeyChild {
                ike: id,
                spi_in: spi,
            });
            l.run_now();
        }
        let (m_old_in, m_old_out) = payload_children(&l.mn)[0];
        let ups_before = child_ups(&l.mn).len();
        l.mn.ep
            .handle_command(
                l.now,
                Command::RekeyChild {
                    ike: id,
                    spi_in: m_old_in,
                },
            )
            .unwrap();
        l.ha_command(Command::RekeyChild {
            ike: ha_id,
            spi_in: m_old_out,
        });
        // A forger replays the HA's request with a flipped byte: dropped before any state.
        let mut forged = l.wire[1].1.clone();
        let n = forged.data.len();
        forged.data[n - 1] ^= 1;
        let dropped = l.mn.ep.stats.dropped;
        l.deliver(false, &forged);
        assert_eq!(l.mn.ep.stats.dropped, dropped + 1);
        // Deliver everything but the HA's first INFORMATIONAL request (its Delete).
        let mut held = None;
        while !l.wire.is_empty() {
            let (to_ha, t) = l.wire.remove(0);
            let h = Header::parse(&t.data).unwrap();
            if !to_ha && h.exchange == INFORMATIONAL && !h.is_response() && held.is_none() {
                held = Some(t);
                continue;
            }
            l.deliver(to_ha, &t);
        }
        let ups = child_ups(&l.mn)[ups_before..].to_vec();
        if payload_children(&l.mn).iter().any(|c| c.0 == m_old_in) {
            // The MN's exchange lost (the held Delete was of the old CHILD_SA): another run.
            continue;
        }
        assert!(held.is_some());
        // The MN won; the HA's redundant CHILD_SA (the first the MN made) waits for its Delete.
        let redundant = ups[0];
        let winner = ups[1];
        // Past the MN's rekey time: the winner and BU/BA are rekeyed, the redundant one not.
        l.advance(Duration::from_secs(61));
        l.run_now();
        let now: Vec<u32> = l.mn.ep.list()[0]
            .children
            .iter()
            .map(|c| c.spi_in)
            .collect();
        assert!(now.contains(&redundant), "{now:x?}");
        assert!(!now.contains(&winner), "the winner was rekeyed: {now:x?}");
        assert_eq!(now.len(), 3);
        // The HA's Delete finally arrives (its retransmission).
        l.advance(Duration::from_secs(100));
        l.run_now();
        one_pair_per_class(&l);
        assert!(l.mn.kernel.sas().all(|s| s.spi != redundant));
        return;
    }
    panic!("no run where the MN won");
}

// ---- CHILD_SAs outside the classes ----

use mip6_ike::kernel::KernelOp;
use mip6_ike::wire::{Payload, TrafficSelector};
use std::net::IpAddr;

fn ts(proto: u8, ports: (u16, u16), from: &str, to: &str) -> TrafficSelector {
    TrafficSelector {
        ts_type: TS_IPV6_ADDR_RANGE,
        ip_protocol: proto,
        start_port: ports.0,
        end_port: ports.1,
        start_addr: from.parse().unwrap(),
        end_addr: to.parse().unwrap(),
    }
}

const HOA: &str = "2001:db8:1::100";
const ANY_LO: &str = "::";
const ANY_HI: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
const UDP: u8 = 17;

/// The MN asks for a CHILD_SA of `class` with its selectors replaced by `tsi`/`tsr` (a peer
/// that asks for what it likes, with valid keys). Only the HA sees the request; returns the
/// HA's kernel operations it caused.
fn ask(
    l: &mut Lab,
    class: SaClass,
    tsi: Vec<TrafficSelector>,
    tsr: Vec<TrafficSelector>,
) -> Vec<KernelOp> {
    let id = l.mn.ep.list()[0].id;
    l.mn_command(Command::CreateChild { ike: id, class });
    let (to_ha, req) = l.wire.remove(0);
    assert!(to_ha && l.wire.is_empty());
    let forged =
        l.mn.ep
            .tamper_own_message(id, &req.data, |_, p| {
                for pl in p.iter_mut() {
                    match pl {
                        Payload::TsI(t) => *t = tsi.clone(),
                        Payload::TsR(t) => *t = tsr.clone(),
                        _ => {}
                    }
                }
            })
            .unwrap();
    let ops = l.ha.ops.len();
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
    l.collect();
    l.ha.ops[ops..].to_vec()
}

fn added(ops: &[KernelOp]) -> Vec<&mip6_ike::kernel::SaSpec> {
    ops.iter()
        .filter_map(|o| match o {
            KernelOp::AddSa(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// HoA udp <-> ::/0 udp/53 inside the payload class: a CHILD_SA of its own on the HA, with an
/// automatic reqid (not the class's 3/4), its SAs carrying exactly its selectors (so ICMP
/// replies keep leaving through the payload SA), and the payload CHILD_SA untouched.
#[test]
fn a_narrower_child_sa_gets_its_own_reqids_and_selectors() {
    let (mut l, _, _) = established();
    let payload_before = payload_children(&l.ha);
    let ops = ask(
        &mut l,
        SaClass::Payload,
        vec![ts(UDP, (0, 0xffff), HOA, HOA)],
        vec![ts(UDP, (53, 53), ANY_LO, ANY_HI)],
    );
    let sas = added(&ops);
    assert_eq!(sas.len(), 2, "{ops:?}");
    let ha = &l.ha.ep.list()[0];
    let extra = ha
        .children
        .iter()
        .find(|c| c.class.is_none())
        .expect("the new CHILD_SA");
    assert_eq!(ha.children.len(), 3);
    let (lo, hi) = l.ha.ep.config().mobility.auto_reqids;
    assert!((lo..=hi).contains(&extra.reqid_in) && extra.reqid_in == extra.reqid_out);
    for r in SaClass::ALL.iter().map(|c| c.default_reqids()) {
        assert!(extra.reqid_in != r.to_ha && extra.reqid_in != r.to_mn);
    }
    let hoa: IpAddr = HOA.parse().unwrap();
    let any: IpAddr = ANY_LO.parse().unwrap();
    for s in &sas {
        assert!(s.outside_classes);
        assert_eq!(s.reqid, extra.reqid_in);
        assert_eq!(s.selectors.len(), 1);
        let k = &s.selectors[0];
        assert_eq!(k.proto, UDP);
        match s.direction {
            Direction::In => {
                assert_eq!(
                    (k.src, k.src_prefix, k.dst, k.dst_prefix),
                    (hoa, 128, any, 0)
                );
                assert_eq!((k.sport, k.dport), ((0, 0), (53, 0xffff)));
            }
            Direction::Out => {
                assert_eq!(
                    (k.src, k.src_prefix, k.dst, k.dst_prefix),
                    (any, 0, hoa, 128)
                );
                assert_eq!((k.sport, k.dport), ((53, 0xffff), (0, 0)));
            }
        }
    }
    // The class's CHILD_SA and its reqids are as they were.
    assert_eq!(payload_children(&l.ha), payload_before);
    // A second such CHILD_SA gets another reqid of its own.
    l.run_now();
    let ops = ask(
        &mut l,
        SaClass::Payload,
        vec![ts(UDP, (0, 0xffff), HOA, HOA)],
        vec![ts(UDP, (123, 123), ANY_LO, ANY_HI)],
    );
    let second = added(&ops);
    assert_eq!(second.len(), 2);
    assert_ne!(second[0].reqid, extra.reqid_in);
    // The MN, which asked for the payload class, refuses an answer narrower than the class
    // (mip6d's payload policy would send everything through it) and deletes it again.
    l.run_now();
    assert!(l.mn.exchange_failed(Some(N_TS_UNACCEPTABLE)));
    assert_eq!(l.mn.ep.list()[0].children.len(), 2);
    assert_eq!(l.ha.ep.list()[0].children.len(), 2);
    assert_eq!(l.ha.kernel.len(), 4);
}

/// Attacker's view: an authenticated peer asks for an extra CHILD_SA for another user's home
/// address, for ::/0 <-> ::/0 udp in transport mode, or for selectors that make two kernel
/// selectors: TS_UNACCEPTABLE, and nothing reaches the kernel. A tunnel ::/0 <-> ::/0 request
/// is only ever narrowed to the user's own home address, never installed as ::/0 <-> ::/0.
#[test]
fn extra_child_sas_stay_inside_what_the_user_owns() {
    let (mut l, _, _) = established();
    let refused = |l: &mut Lab, class, tsi, tsr| {
        let ops = ask(l, class, tsi, tsr);
        assert!(added(&ops).is_empty(), "{ops:?}");
        l.run_now();
        assert_eq!(l.ha.ep.list()[0].children.len(), 2);
        assert_eq!(l.ha.kernel.len(), 4);
    };
    let before = l.ha.ep.stats.ts_refused;
    // mn2's home address.
    refused(
        &mut l,
        SaClass::Payload,
        vec![ts(UDP, (0, 0xffff), "2001:db8:1::200", "2001:db8:1::200")],
        vec![ts(UDP, (53, 53), ANY_LO, ANY_HI)],
    );
    // ::/0 <-> ::/0 udp, transport (no transport class carries UDP).
    refused(
        &mut l,
        SaClass::BuBa,
        vec![ts(UDP, (0, 0xffff), ANY_LO, ANY_HI)],
        vec![ts(UDP, (0, 0xffff), ANY_LO, ANY_HI)],
    );
    // Two selectors (udp/53 and tcp/80): an XFRM SA carries one.
    refused(
        &mut l,
        SaClass::Payload,
        vec![ts(0, (0, 0xffff), HOA, HOA)],
        vec![
            ts(UDP, (53, 53), ANY_LO, ANY_HI),
            ts(6, (80, 80), ANY_LO, ANY_HI),
        ],
    );
    assert_eq!(l.ha.ep.stats.ts_refused, before + 3);
    assert_eq!(
        l.mn.events
            .iter()
            .filter(|e| matches!(
                e,
                Event::ExchangeFailed {
                    notify: Some(N_TS_UNACCEPTABLE),
                    ..
                }
            ))
            .count(),
        3
    );
    // Tunnel ::/0 <-> ::/0: the payload class for the user's HoA, nothing wider.
    let ops = ask(
        &mut l,
        SaClass::Payload,
        vec![ts(0, (0, 0xffff), ANY_LO, ANY_HI)],
        vec![ts(0, (0, 0xffff), ANY_LO, ANY_HI)],
    );
    let hoa: IpAddr = HOA.parse().unwrap();
    for s in added(&ops) {
        assert!(!s.outside_classes, "exactly the payload class");
        let k = &s.selectors[0];
        assert!(
            k.src == hoa && k.src_prefix == 128 || k.dst == hoa && k.dst_prefix == 128,
            "{k:?}"
        );
    }
    l.run_now();
    assert_eq!(l.ha.ep.list()[0].state, "established");
}
