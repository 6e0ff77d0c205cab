//! The engine with an SPI allocator (what the XFRM backend plugs in): it asks for each inbound
//! SPI with the inbound SA's endpoints and reqid, uses the answer, and refuses a CHILD_SA
//! cleanly when the allocator fails. Every SPI it reserved (a larval SA in the kernel) is
//! either completed by the CHILD_SA's AddSa or deleted when the negotiation fails.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::*;
use mip6_ike::ike::{Event, HomeAddress};
use mip6_ike::kernel::{Direction, KernelOp, SpiAllocator, SpiRequest};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::{N_NO_PROPOSAL_CHOSEN, N_TS_UNACCEPTABLE};

/// Hands out 0x5000_0000, 0x5000_0001, ... and records the requests; fails when `fail`.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<(SpiRequest, u32)>>>,
    base: u32,
    fail: bool,
}

impl Recorder {
    fn failing() -> Recorder {
        Recorder {
            fail: true,
            ..Default::default()
        }
    }
}

impl SpiAllocator for Recorder {
    fn allocate(&mut self, req: &SpiRequest) -> Result<u32, String> {
        if self.fail {
            return Err("ALLOCSPI: no buffer space (test)".into());
        }
        let mut log = self.log.lock().unwrap();
        let spi = self.base + log.len() as u32;
        log.push((req.clone(), spi));
        Ok(spi)
    }
}

fn lab() -> Lab {
    Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP))
}

/// Recording allocators on both sides: the MN's SPIs from 0x5000_0000, the HA's from
/// 0x6000_0000.
fn recorders(l: &mut Lab) -> (Recorder, Recorder) {
    let mn = Recorder {
        base: 0x5000_0000,
        ..Default::default()
    };
    let ha = Recorder {
        base: 0x6000_0000,
        ..Default::default()
    };
    l.mn.ep.set_spi_allocator(Box::new(mn.clone()));
    l.ha.ep.set_spi_allocator(Box::new(ha.clone()));
    (mn, ha)
}

/// What `f` picks out of every SPI request the allocator saw.
fn requests<T>(r: &Recorder, f: impl Fn(&SpiRequest) -> T) -> Vec<T> {
    r.log.lock().unwrap().iter().map(|(q, _)| f(q)).collect()
}

#[test]
fn inbound_spis_come_from_the_allocator_with_the_inbound_sa() {
    let mut l = lab();
    let (mn, ha) = recorders(&mut l);
    l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    let (hoa, ha_ip, coa) = (IpAddr::V6(HOA1), IpAddr::V6(HA_IP), l.mn.addr.ip());
    let reqs = |r: &Recorder| requests(r, |q| (q.src, q.dst, q.reqid));
    // MN inbound: BU/BA transport HA -> HoA with reqid 2 (to_mn), payload tunnel HA -> CoA
    // with reqid 4; the HA the other way round with reqids 1 and 3.
    assert_eq!(reqs(&mn), vec![(ha_ip, hoa, 2), (ha_ip, coa, 4)]);
    assert_eq!(reqs(&ha), vec![(hoa, ha_ip, 1), (coa, ha_ip, 3)]);
    // And the CHILD_SAs use exactly those SPIs.
    for (side, base) in [(&l.mn, 0x5000_0000u32), (&l.ha, 0x6000_0000)] {
        let mut spis: Vec<u32> = side.ep.list()[0]
            .children
            .iter()
            .map(|c| c.spi_in)
            .collect();
        spis.sort();
        assert_eq!(spis, vec![base, base + 1]);
    }
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
}

#[test]
fn a_failing_allocator_on_the_responder_refuses_the_child_sa() {
    let mut l = lab();
    l.ha.ep.set_spi_allocator(Box::new(Recorder::failing()));
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.run(|l| l.mn.ike_up(), |_, _, _| true));
    l.run_now();
    // The IKE SA stands, no CHILD_SA on either side, nothing in either kernel.
    assert!(l.ha.ike_up());
    assert_eq!((l.mn.child_ups(), l.ha.child_ups()), (0, 0));
    assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
}

#[test]
fn a_failing_allocator_on_the_initiator_closes_the_attempt() {
    let mut l = lab();
    l.mn.ep.set_spi_allocator(Box::new(Recorder::failing()));
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    l.run_now();
    let down = l.mn.events.iter().find_map(|e| match e {
        Event::ExchangeFailed {
            exchange: "IKE_AUTH",
            reason,
            ..
        } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        down.as_deref()
            .is_some_and(|r| r.contains("no inbound SPI")),
        "events: {:?}",
        l.mn.events
    );
    assert!(!l.mn.ike_up());
    assert!(l.mn.ep.list().is_empty(), "the attempt is gone");
    assert!(l.mn.kernel.is_empty());
}

/// (class reqid, ACQUIRE seq) of every SPI request an allocator saw.
fn seqs(r: &Recorder) -> Vec<(u32, Option<u32>)> {
    requests(r, |q| (q.reqid, q.acquire_seq))
}

#[test]
fn the_spi_request_of_a_child_sa_answering_an_acquire_carries_its_seq() {
    use mip6_ike::ike::Command;
    use std::time::Duration;
    let mut l = lab();
    let (mn, ha) = recorders(&mut l);
    // An ACQUIRE for the payload class (seq 4242) makes the daemon initiate every class: only
    // the payload CHILD_SA (inbound reqid 4), negotiated second, answers it.
    l.mn.ep.note_acquire(l.now, SaClass::Payload, 4242);
    let ike = l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    assert_eq!(seqs(&mn), vec![(2, None), (4, Some(4242))]);
    // The responder never has an ACQUIRE to name.
    assert!(seqs(&ha).iter().all(|(_, s)| s.is_none()));

    // CreateChild after an ACQUIRE for MPS/MPA (seq 77): that request carries it.
    l.mn.ep.note_acquire(l.now, SaClass::MpsMpa, 77);
    l.mn_command(Command::CreateChild {
        ike,
        class: SaClass::MpsMpa,
    });
    assert!(l.establish(3));
    assert_eq!(seqs(&mn).last(), Some(&(6, Some(77))));

    // A rekey answers no ACQUIRE, and a seq is used once: the rekey of the payload CHILD_SA
    // asks without one.
    let payload_in = l.mn.ep.list()[0]
        .children
        .iter()
        .find(|c| c.class == Some(SaClass::Payload))
        .unwrap()
        .spi_in;
    l.mn_command(Command::RekeyChild {
        ike,
        spi_in: payload_in,
    });
    assert!(l.establish(4));
    assert_eq!(seqs(&mn).last(), Some(&(4, None)));

    // A seq older than the kernel's larval state (30 s) is not used.
    l.mn.ep.note_acquire(l.now, SaClass::HotiHot, 99);
    l.advance(Duration::from_secs(31));
    l.mn_command(Command::CreateChild {
        ike,
        class: SaClass::HotiHot,
    });
    assert!(l.establish(5));
    assert_eq!(seqs(&mn).last(), Some(&(8, None)));
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
}

/// Every SPI `r` allocated is accounted for in `side`'s kernel operations: installed inbound
/// (AddSa) or its larval SA deleted (DelSa at the requested destination). Returns the deleted
/// ones. The memory kernel never saw the larval SAs, so deleting them is its only complaint.
fn larval_deleted(side: &Side, r: &Recorder) -> Vec<(IpAddr, u32)> {
    let mut deleted = Vec::new();
    for (req, spi) in r.log.lock().unwrap().iter() {
        let installed = side.ops.iter().any(
            |op| matches!(op, KernelOp::AddSa(s) if s.spi == *spi && s.direction == Direction::In),
        );
        let del = side
            .ops
            .iter()
            .any(|op| matches!(op, KernelOp::DelSa { dst, spi: s } if *dst == req.dst && s == spi));
        assert!(
            installed || del,
            "SPI {spi:08x} to {} left in the kernel: {:?}",
            req.dst,
            side.ops
        );
        if del && !installed {
            deleted.push((req.dst, *spi));
        }
    }
    for e in &side.kernel_errors {
        assert!(
            deleted
                .iter()
                .any(|(d, s)| *e == format!("no SA {s:08x} to {d}")),
            "unexpected kernel error {e}"
        );
    }
    deleted
}

#[test]
fn a_child_sa_refused_in_ike_auth_deletes_its_larval_sa() {
    // mn1 asks for mn2's home address: TS_UNACCEPTABLE after the MN reserved its SPI.
    let mut l = lab();
    let (mn, ha) = recorders(&mut l);
    l.initiate(HomeAddress::Static(HOA2), &[SaClass::BuBa]);
    assert!(l.run(|l| l.mn.exchange_failed(None), |_, _, _| true));
    assert!(l.mn.exchange_failed(Some(N_TS_UNACCEPTABLE)));
    assert_eq!(
        larval_deleted(&l.mn, &mn),
        vec![(IpAddr::V6(HOA2), 0x5000_0000)]
    );
    // The HA refused before reserving anything.
    assert!(ha.log.lock().unwrap().is_empty());
    assert!(l.mn.ike_up(), "the IKE SA stays");
}

#[test]
fn a_responder_refusing_after_its_allocation_deletes_its_larval_sa() {
    // The HA accepts no ESP proposal of the MN's: it reserves its SPI, then refuses.
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, "aes256gcm16"));
    let (mn, ha) = recorders(&mut l);
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.run(|l| l.mn.exchange_failed(None), |_, _, _| true));
    assert!(l.mn.exchange_failed(Some(N_NO_PROPOSAL_CHOSEN)));
    assert_eq!(
        larval_deleted(&l.ha, &ha),
        vec![(IpAddr::V6(HA_IP), 0x6000_0000)]
    );
    assert_eq!(
        larval_deleted(&l.mn, &mn),
        vec![(IpAddr::V6(HOA1), 0x5000_0000)]
    );
    assert!(l.mn.kernel.is_empty() && l.ha.kernel.is_empty());
}

#[test]
fn a_create_child_sa_lost_with_its_ike_sa_deletes_its_larval_sa() {
    use mip6_ike::ike::Command;
    let mut l = lab();
    let (mn, ha) = recorders(&mut l);
    let ike = l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.establish(1));
    // A CREATE_CHILD_SA no answer comes back to: retransmissions time out, the IKE SA goes.
    l.mn_command(Command::CreateChild {
        ike,
        class: SaClass::Payload,
    });
    assert!(l.run(
        |l| !l.mn.ike_up() || l.mn.ep.list().is_empty(),
        |_, to_ha, _| !to_ha
    ));
    assert!(l.mn.ep.list().is_empty(), "{:?}", l.mn.events);
    let gone = larval_deleted(&l.mn, &mn);
    assert_eq!(
        gone,
        vec![(l.mn.addr.ip(), 0x5000_0001)],
        "the payload tunnel's SPI"
    );
    assert!(
        l.mn.kernel.is_empty(),
        "and the BU/BA pair went with the IKE SA"
    );
    assert!(larval_deleted(&l.ha, &ha).is_empty());
}

#[test]
fn successful_negotiations_delete_no_larval_sa() {
    let mut l = lab();
    let (mn, ha) = recorders(&mut l);
    l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    assert!(larval_deleted(&l.mn, &mn).is_empty());
    assert!(larval_deleted(&l.ha, &ha).is_empty());
    assert!(!l.mn.ops.iter().any(|o| matches!(o, KernelOp::DelSa { .. })));
}

/// Answers from a fixed list (then fails), recording the requests like [`Recorder`].
struct Scripted {
    answers: Vec<u32>,
    log: Arc<Mutex<Vec<(SpiRequest, u32)>>>,
}

impl SpiAllocator for Scripted {
    fn allocate(&mut self, req: &SpiRequest) -> Result<u32, String> {
        let mut log = self.log.lock().unwrap();
        let spi = *self.answers.get(log.len()).ok_or("no more SPIs (test)")?;
        log.push((req.clone(), spi));
        Ok(spi)
    }
}

#[test]
fn an_allocated_spi_already_in_use_is_deleted_and_another_one_asked_for() {
    let mut l = lab();
    // The payload CHILD_SA's first answer repeats the BU/BA SPI (taken by us): its larval SA
    // at the payload SA's destination goes, the next answer is used.
    let log = Arc::new(Mutex::new(Vec::new()));
    l.mn.ep.set_spi_allocator(Box::new(Scripted {
        answers: vec![0x7000_0000, 0x7000_0000, 0x7000_0001],
        log: log.clone(),
    }));
    l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    let coa = l.mn.addr.ip();
    let dels: Vec<_> =
        l.mn.ops
            .iter()
            .filter_map(|o| match o {
                KernelOp::DelSa { dst, spi } => Some((*dst, *spi)),
                _ => None,
            })
            .collect();
    assert_eq!(dels, vec![(coa, 0x7000_0000)]);
    let mut spis: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    spis.sort();
    assert_eq!(spis, vec![0x7000_0000, 0x7000_0001]);
    // The BU/BA SA (HoA, 0x7000_0000) is untouched: only the larval delete failed in the
    // memory kernel, which never saw that larval SA.
    assert!(l.mn.kernel.get(IpAddr::V6(HOA1), 0x7000_0000).is_some());
    assert_eq!(l.mn.kernel_errors, vec![format!("no SA 70000000 to {coa}")]);
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn an_allocated_spi_that_is_our_sa_at_that_destination_is_not_deleted() {
    use mip6_ike::ike::Command;
    // A broken allocator answers the rekey of BU/BA with that CHILD_SA's own SPI (same
    // destination, the home address): skipped, and our SA is not deleted for it.
    let mut l = lab();
    let log = Arc::new(Mutex::new(Vec::new()));
    l.mn.ep.set_spi_allocator(Box::new(Scripted {
        answers: vec![0x7000_0000, 0x7000_0001, 0x7000_0000, 0x7000_0002],
        log: log.clone(),
    }));
    let ike = l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    l.mn_command(Command::RekeyChild {
        ike,
        spi_in: 0x7000_0000,
    });
    assert!(l.establish(3));
    assert_eq!(log.lock().unwrap().len(), 4);
    // The rekey deletes the old BU/BA SA once, after the new one (0x7000_0002) is in.
    let dels =
        l.mn.ops
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    KernelOp::DelSa {
                        spi: 0x7000_0000,
                        ..
                    }
                )
            })
            .count();
    assert_eq!(
        dels,
        1,
        "{:?}",
        l.mn.ops
            .iter()
            .filter(|o| matches!(o, KernelOp::DelSa { .. }))
            .collect::<Vec<_>>()
    );
    let mut spis: Vec<u32> = l.mn.ep.list()[0]
        .children
        .iter()
        .map(|c| c.spi_in)
        .collect();
    spis.sort();
    assert_eq!(spis, vec![0x7000_0001, 0x7000_0002]);
    assert!(l.mn.kernel_errors.is_empty(), "{:?}", l.mn.kernel_errors);
}

/// Like the XFRM backend's stock when nothing is reserved for an address yet: it never has an
/// SPI at hand (and would never block).
struct EmptyStock(Arc<Mutex<usize>>);

impl SpiAllocator for EmptyStock {
    fn allocate(&mut self, _req: &SpiRequest) -> Result<u32, String> {
        panic!("the engine must not ask for a blocking reservation");
    }
    fn try_allocate(&mut self, _req: &SpiRequest) -> Result<Option<u32>, String> {
        *self.0.lock().unwrap() += 1;
        Ok(None)
    }
}

#[test]
fn with_nothing_reserved_the_engine_picks_its_own_spis_and_does_not_wait() {
    let mut l = lab();
    let asked = Arc::new(Mutex::new(0));
    l.mn.ep
        .set_spi_allocator(Box::new(EmptyStock(asked.clone())));
    l.ha.ep
        .set_spi_allocator(Box::new(EmptyStock(asked.clone())));
    l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    // Every inbound SPI (one per CHILD_SA and side) was asked for and picked by the engine.
    assert_eq!(*asked.lock().unwrap(), 4);
    for side in [&l.mn, &l.ha] {
        let spis: Vec<u32> = side
            .ops
            .iter()
            .filter_map(|op| match op {
                KernelOp::AddSa(s) if s.direction == Direction::In => Some(s.spi),
                _ => None,
            })
            .collect();
        assert_eq!(spis.len(), 2);
        assert!(spis.iter().all(|&s| s >= 256));
    }
}
