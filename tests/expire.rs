//! Kernel EXPIREs reach the CHILD_SA of the SA they name by (destination, SPI), inbound or
//! outbound: a soft one rekeys that CHILD_SA, a hard one removes it (on both sides).

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::*;
use mip6_ike::ike::{Event, HomeAddress};
use mip6_ike::kernel::{KernelEvent, SpiAllocator, SpiRequest};
use mip6_ike::mobility::SaClass;

/// Hands out the given SPIs in order, then 0x7000_0000, 0x7000_0001, ...
#[derive(Clone)]
struct Fixed(Arc<Mutex<(Vec<u32>, u32)>>);

impl Fixed {
    fn new(spis: &[u32]) -> Fixed {
        let mut v = spis.to_vec();
        v.reverse();
        Fixed(Arc::new(Mutex::new((v, 0x7000_0000))))
    }
}

impl SpiAllocator for Fixed {
    fn allocate(&mut self, _: &SpiRequest) -> Result<u32, String> {
        let mut g = self.0.lock().unwrap();
        if let Some(s) = g.0.pop() {
            return Ok(s);
        }
        g.1 += 1;
        Ok(g.1)
    }
}

/// (class, inbound SPI, outbound SPI) of the side's CHILD_SAs, by class.
fn children(s: &Side) -> Vec<(SaClass, u32, u32)> {
    let mut v: Vec<_> =
        s.ep.list()
            .iter()
            .flat_map(|i| i.children.clone())
            .map(|c| (c.class.unwrap(), c.spi_in, c.spi_out))
            .collect();
    v.sort();
    v
}

/// MN and HA with BU/BA and payload up, where each side's inbound SPIs are the other's crossed:
/// the MN's outbound BU/BA SPI equals its inbound payload SPI and the other way round.
fn crossed_lab() -> Lab {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.mn.ep
        .set_spi_allocator(Box::new(Fixed::new(&[0x5000, 0x5001])));
    l.ha.ep
        .set_spi_allocator(Box::new(Fixed::new(&[0x5001, 0x5000])));
    l.initiate(
        HomeAddress::Static(HOA1),
        &[SaClass::BuBa, SaClass::Payload],
    );
    assert!(l.establish(2));
    assert_eq!(
        children(&l.mn),
        vec![
            (SaClass::BuBa, 0x5000, 0x5001),
            (SaClass::Payload, 0x5001, 0x5000)
        ]
    );
    l
}

fn expire(l: &mut Lab, dst: IpAddr, spi: u32, hard: bool) {
    l.mn.ep
        .handle_kernel(l.now, KernelEvent::Expire { dst, spi, hard });
    l.collect();
    l.run_now();
}

#[test]
fn soft_expire_of_an_outbound_sa_rekeys_its_child_sa() {
    let mut l = crossed_lab();
    let ha = IpAddr::V6(HA_IP);
    // SPI 0x5001 towards the HA is the MN's outbound BU/BA SA (its inbound 0x5001 is the
    // payload SA, whose destination is the care-of address): BU/BA is rekeyed, payload not.
    expire(&mut l, ha, 0x5001, false);
    let now = children(&l.mn);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_ne!(now[0].1, 0x5000, "BU/BA rekeyed: {now:?}");
    assert_eq!(
        now[1],
        (SaClass::Payload, 0x5001, 0x5000),
        "payload untouched"
    );
    assert_eq!(children(&l.ha).len(), 2);
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());

    // The inbound direction still works: 0x5001 at the care-of address is the payload SA.
    let coa = l.mn.addr.ip();
    expire(&mut l, coa, 0x5001, false);
    let after = children(&l.mn);
    assert_eq!(after[0], now[0], "BU/BA untouched");
    assert_ne!(after[1].1, 0x5001, "payload rekeyed: {after:?}");

    // A destination that matches neither direction names no SA of ours: nothing happens.
    let before = children(&l.mn);
    let transmits = l.delivered;
    expire(&mut l, IpAddr::V6(HOA2), after[1].2, false);
    assert_eq!(children(&l.mn), before);
    assert_eq!(l.delivered, transmits, "no exchange started");
}

#[test]
fn hard_expire_of_an_outbound_sa_removes_its_child_sa() {
    let mut l = crossed_lab();
    // SPI 0x5000 towards the HA: the MN's outbound payload SA (inbound 0x5000 is BU/BA, to
    // the home address). The payload CHILD_SA goes, on both sides; BU/BA stays.
    expire(&mut l, IpAddr::V6(HA_IP), 0x5000, true);
    let down: Vec<_> =
        l.mn.events
            .iter()
            .filter_map(|e| match e {
                Event::ChildDown { spi_in, reason, .. } => Some((*spi_in, reason.clone())),
                _ => None,
            })
            .collect();
    assert_eq!(down, vec![(0x5001, "hard lifetime expired".to_string())]);
    assert_eq!(children(&l.mn), vec![(SaClass::BuBa, 0x5000, 0x5001)]);
    assert_eq!(children(&l.ha), vec![(SaClass::BuBa, 0x5001, 0x5000)]);
    // The MN's kernel keeps only the BU/BA pair (the expired SA was gone from a real kernel
    // already; the memory kernel had it until the engine removed it).
    assert_eq!(l.mn.kernel.len(), 2);
    assert_eq!(l.ha.kernel.len(), 2);
}
