//! How much heap the home agent's engine keeps per established IKE SA (with its BU/BA and
//! payload CHILD_SAs). Counted by a global allocator wrapper: live bytes after N mobile nodes
//! established, minus live bytes before, divided by N. Not a timing test: the figure is
//! deterministic for a given build.

mod common;

use std::alloc::System;

use cap::Cap;
use common::*;
use mip6_ike::ike::{Command, Endpoint, HomeAddress, Now};
use mip6_ike::mobility::{SaClass, UserAuth, UserDb};

// Counts live heap bytes (the `cap` crate keeps unsafe code out of this repository).
#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

fn run(ha: &mut Endpoint, now: Now, i: u32, hoa: std::net::Ipv6Addr) {
    let name = format!("mn{}", 1 + (i % 2));
    let mut cfg = mn_config(
        AuthKind::Ecdsa,
        &name,
        "aes128-sha256-x25519",
        "aes128-sha256",
    );
    // Many devices share two identities here: without this each new one's INITIAL_CONTACT
    // would make the HA drop the earlier ones' SAs.
    cfg.mobility.initial_contact = false;
    let mut mn = Side::new(cfg, MN_COA, 100 + u64::from(i), now);
    let local = format!("[2001:db8:2::{:x}]:500", i + 1).parse().unwrap();
    let cmd = Command::Initiate {
        local,
        remote: HA_ADDR.parse().unwrap(),
        home_agent: HA_IP,
        home_address: HomeAddress::Static(hoa),
        classes: vec![SaClass::BuBa, SaClass::Payload],
        remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
    };
    mn.ep.handle_command(now, cmd).unwrap();
    for _ in 0..10 {
        for t in mn.drain() {
            ha.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while ha.poll_kernel_op().is_some() {}
        while ha.poll_event().is_some() {}
        while let Some(t) = ha.poll_transmit() {
            mn.ep.handle_datagram(now, t.remote, t.local, &t.data);
        }
    }
    assert_eq!(mn.child_ups(), 2);
}

#[test]
fn home_agent_state_per_ike_sa_is_under_4_kib() {
    let start = std::time::Instant::now();
    let now = Now {
        at: start,
        unix: 1_800_000_000,
    };
    // Two users are enough: the per-SA state does not depend on who the user is. Each IKE SA
    // gets a distinct care-of address; both users may have many devices (HoAs) here.
    let mut cfg = ha_config(AuthKind::Ecdsa, "aes128-sha256-x25519", "aes128-sha256");
    let n: u32 = 256;
    let hoas: Vec<std::net::Ipv6Addr> = (0..n)
        .map(|i| std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i as u16))
        .collect();
    let all = [SaClass::BuBa, SaClass::Payload];
    let users = UserDb::new(vec![
        user("mn1", MN1_DN, UserAuth::Certificate, &hoas, &all),
        user("mn2", MN2_DN, UserAuth::Certificate, &hoas, &all),
    ])
    .unwrap();
    cfg.home_agent.as_mut().unwrap().users = std::sync::Arc::new(users);
    // Many devices share an identity here: `no`, else (the default `replace`) a device using a
    // home address another device of its identity used would replace that one's SA.
    cfg.mobility.uniqueness = mip6_ike::mobility::Uniqueness::No;
    let mut ha = Endpoint::new(
        std::sync::Arc::new(cfg),
        Box::new(mip6_ike::crypto::TestRng::new(5)),
        now,
    );
    // Warm up lazily allocated statics (ring, tracing) outside the measurement.
    run(&mut ha, now, 10_000, hoas[0]);
    let before = ALLOC.allocated() as isize;
    for i in 0..n {
        run(&mut ha, now, i, hoas[i as usize]);
    }
    let after = ALLOC.allocated() as isize;
    assert_eq!(ha.ike_sa_count(), n as usize + 1);
    let per_sa = (after - before) / n as isize;
    println!("home agent heap per established IKE SA (2 CHILD_SAs): {per_sa} bytes");
    assert!(per_sa > 500, "the measurement counts something ({per_sa})");
    assert!(per_sa < 4096, "per-SA state {per_sa} bytes");
}
