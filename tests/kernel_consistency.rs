//! The kernel's SAs and the engine's record must not disagree: a refused SA install takes its
//! CHILD_SA down (no ChildUp, a Delete to the peer), an ACQUIRE for a CHILD_SA whose SAs the
//! kernel lost leads to a renegotiation, and MIGRATEs that never arrived are recovered from
//! mip6d's tunnel templates. Deterministic: two Endpoints with MemoryKernels, simulated time.

mod common;

use std::net::{IpAddr, Ipv6Addr};

use common::*;
use mip6_ike::daemon::kernel::{AcquireAction, AcquireState, missed_moves, resync};
use mip6_ike::ike::{Command, Event, HomeAddress, IkeSaInfo, Now, Transmit};
use mip6_ike::kernel::{Kernel, KernelEvent, KernelOp, Mode, Selector, TunnelTemplate};
use mip6_ike::mobility::SaClass;

/// Applies a side's kernel operations, feeding each refusal back to its engine (what the
/// daemon does), then collects its events and datagrams.
fn drain(side: &mut Side, now: Now) -> Vec<Transmit> {
    loop {
        let mut progress = false;
        while let Some(op) = side.ep.poll_kernel_op() {
            progress = true;
            let r = side.kernel.apply(&op);
            if let Err(e) = &r {
                side.kernel_errors.push(e.clone());
            }
            side.ep.handle_kernel_result(now, &op, r);
            side.ops.push(op);
        }
        if !progress {
            break;
        }
    }
    while let Some(e) = side.ep.poll_event() {
        side.events.push(e);
    }
    let mut v = Vec::new();
    while let Some(t) = side.ep.poll_transmit() {
        v.push(t);
    }
    v
}

/// Delivers datagrams both ways (no time passes) until nothing is in flight.
fn converse(l: &mut Lab) {
    for _ in 0..1000 {
        let now = l.now;
        for t in drain(&mut l.mn, now) {
            l.wire.push((true, t));
        }
        for t in drain(&mut l.ha, now) {
            l.wire.push((false, t));
        }
        if l.wire.is_empty() {
            return;
        }
        let (to_ha, t) = l.wire.remove(0);
        if to_ha {
            l.ha.ep.handle_datagram(now, t.remote, t.local, &t.data);
        } else {
            l.mn.ep.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    panic!("the conversation did not end");
}

/// An MN/HA pair with the IKE SA and its BU/BA CHILD_SA up (2 SAs in each kernel).
fn with_bu_ba() -> Lab {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.establish(1));
    assert_eq!((l.mn.kernel.len(), l.ha.kernel.len()), (2, 2));
    l
}

fn the_sa(s: &Side) -> IkeSaInfo {
    let list = s.ep.list();
    assert_eq!(list.len(), 1, "one IKE SA");
    list.into_iter().next().unwrap()
}

fn classes(s: &Side) -> Vec<Option<SaClass>> {
    the_sa(s).children.iter().map(|c| c.class).collect()
}

fn child_ups_of(s: &Side, class: SaClass) -> usize {
    s.events
        .iter()
        .filter(|e| matches!(e, Event::ChildUp(c) if c.class == Some(class)))
        .count()
}

/// The kernel refuses the initiator's NEWSA for a new CHILD_SA: the CHILD_SA is not reported
/// up, is gone from the record and the kernel (the direction that went in is deleted), the
/// failure is an ExchangeFailed, and the peer, which installed its half, gets a Delete.
#[test]
fn refused_newsa_on_the_initiator_takes_the_child_sa_down_and_tells_the_peer() {
    let mut l = with_bu_ba();
    let ike = the_sa(&l.mn).id;
    l.mn.kernel.refuse_next_adds(1);
    l.mn.ep
        .handle_command(
            l.now,
            Command::CreateChild {
                ike,
                class: SaClass::Payload,
            },
        )
        .unwrap();
    converse(&mut l);
    assert_eq!(child_ups_of(&l.mn, SaClass::Payload), 0, "no ChildUp");
    assert!(l.mn.events.iter().any(|e| matches!(e,
        Event::ExchangeFailed { exchange: "kernel", reason, .. } if reason.contains("refused"))));
    assert_eq!(classes(&l.mn), vec![Some(SaClass::BuBa)]);
    assert_eq!(
        l.mn.kernel.len(),
        2,
        "only the BU/BA SAs: the outbound half went again"
    );
    // the HA had it up, then the MN's Delete took it down there too
    assert_eq!(child_ups_of(&l.ha, SaClass::Payload), 1);
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::ChildDown { .. }))
    );
    assert_eq!(classes(&l.ha), vec![Some(SaClass::BuBa)]);
    assert_eq!(l.ha.kernel.len(), 2);
    // the IKE SA itself is fine: a new CHILD_SA comes up
    l.mn.ep
        .handle_command(
            l.now,
            Command::CreateChild {
                ike,
                class: SaClass::Payload,
            },
        )
        .unwrap();
    converse(&mut l);
    assert_eq!(child_ups_of(&l.mn, SaClass::Payload), 1);
    assert_eq!((l.mn.kernel.len(), l.ha.kernel.len()), (4, 4));
}

/// The responder's kernel refuses the SA (its answer already went out): the responder takes
/// the CHILD_SA down and deletes it at the initiator.
#[test]
fn refused_newsa_on_the_responder_takes_the_child_sa_down_and_tells_the_peer() {
    let mut l = with_bu_ba();
    let ike = the_sa(&l.mn).id;
    l.ha.kernel.refuse_next_adds(1);
    l.mn.ep
        .handle_command(
            l.now,
            Command::CreateChild {
                ike,
                class: SaClass::Payload,
            },
        )
        .unwrap();
    converse(&mut l);
    assert_eq!(
        child_ups_of(&l.ha, SaClass::Payload),
        0,
        "no ChildUp on the HA"
    );
    assert_eq!(classes(&l.ha), vec![Some(SaClass::BuBa)]);
    assert_eq!(l.ha.kernel.len(), 2);
    // the MN installed it, then the HA's Delete removed it
    assert_eq!(child_ups_of(&l.mn, SaClass::Payload), 1);
    assert_eq!(classes(&l.mn), vec![Some(SaClass::BuBa)]);
    assert_eq!(l.mn.kernel.len(), 2);
}

/// A refusal of the first CHILD_SA, installed in IKE_AUTH: no ChildUp, the IKE SA stays up
/// without it, and the peer deletes its half.
#[test]
fn refused_newsa_in_ike_auth_leaves_the_ike_sa_without_the_child_sa() {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.mn.kernel.refuse_next_adds(2);
    let cmd = Command::Initiate {
        local: l.mn.addr,
        remote: l.ha.addr,
        home_agent: HA_IP,
        home_address: HomeAddress::Static(HOA1),
        classes: vec![SaClass::BuBa],
        remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
    };
    l.mn.ep.handle_command(l.now, cmd).unwrap();
    converse(&mut l);
    assert!(l.mn.ike_up());
    assert_eq!(l.mn.child_ups(), 0);
    assert!(classes(&l.mn).is_empty());
    assert!(l.mn.kernel.is_empty());
    assert!(classes(&l.ha).is_empty(), "the HA deleted its half");
    assert!(l.ha.kernel.is_empty());
}

/// An ACQUIRE for a CHILD_SA the record holds is not ignored: the kernel is checked, and a
/// CHILD_SA whose SAs are gone (and that no copy restores) is renegotiated; afterwards the
/// kernel holds SAs for that class again.
#[test]
fn acquire_for_a_held_child_sa_whose_sas_are_gone_renegotiates_it() {
    let mut l = with_bu_ba();
    let sa = the_sa(&l.mn);
    let child = sa.children[0].clone();
    // the kernel lost both SAs (flushed by hand, say)
    l.mn.kernel
        .apply(&KernelOp::DelSa {
            dst: child.local,
            spi: child.spi_in,
        })
        .unwrap();
    l.mn.kernel
        .apply(&KernelOp::DelSa {
            dst: child.remote,
            spi: child.spi_out,
        })
        .unwrap();
    let mut st = AcquireState::default();
    let classes_reqids = [(SaClass::BuBa, child.reqid_out)];
    let action = st.decide(
        child.reqid_out,
        &classes_reqids,
        Some(sa.id),
        std::slice::from_ref(&sa),
    );
    assert_eq!(
        action,
        AcquireAction::Check {
            ike: sa.id,
            class: SaClass::BuBa
        }
    );
    let r = resync(
        &mut l.mn.kernel,
        &l.mn.ep.list(),
        Some((sa.id, Some(SaClass::BuBa))),
        false,
        "test",
    );
    assert_eq!((r.checked, r.in_place, r.repaired), (2, 0, 0));
    assert_eq!(r.renegotiate, vec![(sa.id, child.spi_in)]);
    for (ike, spi_in) in r.renegotiate {
        l.mn.ep
            .handle_command(l.now, Command::RekeyChild { ike, spi_in })
            .unwrap();
    }
    converse(&mut l);
    let now = the_sa(&l.mn);
    assert_eq!(now.children.len(), 1);
    assert_ne!(now.children[0].spi_in, child.spi_in, "new SPIs");
    assert_eq!(
        l.mn.kernel.len(),
        2,
        "the kernel holds the class's SAs again"
    );
    let again = resync(&mut l.mn.kernel, &l.mn.ep.list(), None, false, "test");
    assert_eq!((again.checked, again.in_place), (2, 2));
    assert!(again.renegotiate.is_empty());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// mip6d's start-up at home: the IKE SA and the payload tunnel were negotiated from a transient
/// home-link address; the MIGRATE of the next move was lost. mip6d's outbound tunnel template
/// shows where the tunnel runs now: the recovered MIGRATE moves the IKE SA and the record of
/// the tunnel there. Templates of other reqids, other home addresses, or at the record's own
/// endpoints recover nothing.
#[test]
fn missed_moves_are_recovered_from_mip6ds_tunnel_templates() {
    let transient: Ipv6Addr = "2001:db8:2::ff:fe00:102".parse().unwrap();
    let coa1 = ip("2001:db8:3::100");
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.mn.addr = format!("[{transient}]:500").parse().unwrap();
    let cmd = Command::Initiate {
        local: l.mn.addr,
        remote: l.ha.addr,
        home_agent: HA_IP,
        home_address: HomeAddress::Static(HOA1),
        classes: vec![SaClass::BuBa, SaClass::Payload],
        remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
    };
    l.mn.ep.handle_command(l.now, cmd).unwrap();
    converse(&mut l);
    let sa = the_sa(&l.mn);
    let tunnel = sa
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .expect("payload tunnel")
        .clone();
    assert_eq!(tunnel.local, IpAddr::V6(transient));
    let tmpl = |sel_src: IpAddr, reqid: u32, src: IpAddr| TunnelTemplate {
        selector: Selector::new(sel_src, 128, ip("::"), 0, 0),
        reqid,
        src,
        dst: IpAddr::V6(HA_IP),
    };
    let hoa = IpAddr::V6(HOA1);
    let sas = l.mn.ep.list();
    // at the record's endpoints, another reqid, another home address: nothing
    assert!(missed_moves(&[tmpl(hoa, tunnel.reqid_out, tunnel.local)], &sas).is_empty());
    assert!(missed_moves(&[tmpl(hoa, tunnel.reqid_out + 50, coa1)], &sas).is_empty());
    assert!(missed_moves(&[tmpl(ip("2001:db8:1::999"), tunnel.reqid_out, coa1)], &sas).is_empty());
    let m = missed_moves(&[tmpl(hoa, tunnel.reqid_out, coa1)], &sas);
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].km_local, m[0].km_remote),
        (Some(coa1), Some(IpAddr::V6(HA_IP)))
    );
    assert_eq!((m[0].old_src, m[0].new_src), (tunnel.local, coa1));
    l.mn.ep
        .handle_kernel(l.now, KernelEvent::Migrate(m[0].clone()));
    let _ = drain(&mut l.mn, l.now);
    let moved = the_sa(&l.mn);
    assert_eq!(moved.local.ip(), coa1, "the IKE SA followed");
    let t = moved
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .unwrap();
    assert_eq!(
        (t.local, t.spi_in, t.spi_out),
        (coa1, tunnel.spi_in, tunnel.spi_out)
    );
    assert!(
        l.mn.events
            .iter()
            .any(|e| matches!(e, Event::Migrated { .. }))
    );
}
