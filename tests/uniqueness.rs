//! The home agent's uniqueness policy per user (strongSwan's `unique = no|never|keep|replace`):
//! a second device (or a restarted one) of the same identity, in the I/O-free engine.

mod common;

use std::net::SocketAddr;

use common::*;
use mip6_ike::auth::Identity;
use mip6_ike::ike::{Command, Config, Event, HomeAddress, IkeId};
use mip6_ike::mobility::{SaClass, Uniqueness, UserAuth};
use mip6_ike::wire::consts::*;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// A home agent whose mn1 has `mn1_policy` (None: the default `default`), with mn2 as well.
fn ha(mn1_policy: Option<Uniqueness>, default: Uniqueness) -> Config {
    let mut mn1 = user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], BU_PAYLOAD);
    mn1.uniqueness = mn1_policy;
    let mn2 = user("mn2", MN2_DN, UserAuth::Certificate, &[HOA2], BU_PAYLOAD);
    let mut c = ha_with_users(vec![mn1, mn2]);
    c.mobility.uniqueness = default;
    c
}

/// A mobile node of identity `name` at `addr`, sending INITIAL_CONTACT or not.
fn device(name: &str, addr: &str, ic: bool, seed: u64, l: &Lab) -> Side {
    let mut c = mn_config(AuthKind::Ecdsa, name, IKE, ESP);
    c.mobility.initial_contact = ic;
    Side::new(c, addr, seed, l.now)
}

/// Runs `dev` against the lab's HA (the lab's own MN gets what is addressed to it) until
/// nothing moves. Returns the IKE SA the device started.
fn connect(l: &mut Lab, dev: &mut Side, hoa: std::net::Ipv6Addr) -> IkeId {
    connect_classes(l, dev, hoa, BU_PAYLOAD)
}

/// `connect` asking for `classes` only.
fn connect_classes(
    l: &mut Lab,
    dev: &mut Side,
    hoa: std::net::Ipv6Addr,
    classes: &[SaClass],
) -> IkeId {
    let cmd = Command::Initiate {
        local: dev.addr,
        remote: l.ha.addr,
        home_agent: HA_IP,
        home_address: HomeAddress::Static(hoa),
        classes: classes.to_vec(),
        remote_identity: Some(Identity::parse_config(HA_DN).unwrap()),
    };
    let id = dev.ep.handle_command(l.now, cmd).unwrap();
    pump(l, &mut [dev]);
    id
}

/// Passes datagrams between the HA, the lab's MN and `devs` until none are left.
fn pump(l: &mut Lab, devs: &mut [&mut Side]) {
    for _ in 0..50 {
        let mut moved = false;
        for d in devs.iter_mut() {
            for t in d.drain() {
                moved = true;
                l.ha.ep.handle_datagram(l.now, t.remote, t.local, &t.data);
            }
        }
        l.collect();
        let wire = std::mem::take(&mut l.wire);
        for (to_ha, t) in wire {
            moved = true;
            if to_ha {
                l.deliver(true, &t);
            } else if t.remote == l.mn.addr {
                l.deliver(false, &t);
            } else if let Some(d) = devs.iter_mut().find(|d| d.addr == t.remote) {
                d.ep.handle_datagram(l.now, t.remote, t.local, &t.data);
            }
        }
        if !moved {
            return;
        }
    }
}

/// The lab with mn1's first device (the lab's MN, at MN_COA) and mn2 at their HAs.
fn setup(ha_cfg: Config) -> (Lab, Side) {
    let mut l = Lab::new(mn1(), ha_cfg);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let mut mn2 = device("mn2", "[2001:db8:3::7]:500", true, 9, &l);
    connect(&mut l, &mut mn2, HOA2);
    assert_eq!(mn2.child_ups(), 2);
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
    (l, mn2)
}

const SECOND: &str = "[2001:db8:4::9]:500";

fn remotes(l: &Lab) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = l.ha.ep.list().iter().map(|s| s.remote).collect();
    v.sort();
    v
}

/// mn2's IKE SA and its 4 kernel SAs are untouched by whatever happened to mn1's.
fn mn2_untouched(l: &Lab, mn2: &Side) {
    let ha2: Vec<_> =
        l.ha.ep
            .list()
            .into_iter()
            .filter(|s| s.remote == mn2.addr)
            .collect();
    assert_eq!(ha2.len(), 1, "mn2 keeps its IKE SA");
    assert_eq!(ha2[0].children.len(), 2);
    for c in &ha2[0].children {
        assert!(l.ha.kernel.get(c.local, c.spi_in).is_some());
        assert!(l.ha.kernel.get(c.remote, c.spi_out).is_some());
    }
    assert!(
        !mn2.events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. } | Event::ChildDown { .. }))
    );
    assert_eq!(mn2.ep.list()[0].state, "established");
}

fn ike_down(s: &Side) -> bool {
    s.events.iter().any(|e| matches!(e, Event::IkeDown { .. }))
}

#[test]
fn no_keeps_both_without_initial_contact_and_replaces_silently_with_it() {
    let (mut l, mut mn2) = setup(ha(None, Uniqueness::No));
    // A second device of mn1 without INITIAL_CONTACT: both stay.
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect(&mut l, &mut b, HOA1);
    assert_eq!(b.child_ups(), 2);
    assert_eq!(l.ha.ep.ike_sa_count(), 3);
    assert!(!ike_down(&l.mn));
    // A restarted device with INITIAL_CONTACT: mn1's older SAs go, without a Delete.
    let mut c = device("mn1", "[2001:db8:5::1]:500", true, 12, &l);
    let before = l.delivered;
    connect(&mut l, &mut c, HOA1);
    assert_eq!(c.child_ups(), 2);
    assert_eq!(l.delivered, before, "nothing was sent to the first device");
    assert!(
        b.drain().is_empty(),
        "nothing was sent to the second device"
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
    assert_eq!(l.ha.kernel.len(), 8, "mn2's and the new device's SAs");
    mn2_untouched(&l, &mn2);
    pump(&mut l, &mut [&mut mn2, &mut c]);
}

#[test]
fn never_ignores_initial_contact() {
    let (mut l, mn2) = setup(ha(Some(Uniqueness::Never), Uniqueness::Replace));
    let mut b = device("mn1", SECOND, true, 11, &l);
    connect(&mut l, &mut b, HOA1);
    assert_eq!(b.child_ups(), 2);
    assert_eq!(l.ha.ep.ike_sa_count(), 3, "both devices' IKE SAs stay");
    assert_eq!(l.ha.kernel.len(), 12);
    assert!(!ike_down(&l.mn) && !ike_down(&l.ha));
    mn2_untouched(&l, &mn2);
}

#[test]
fn keep_refuses_a_second_ike_sa_with_authentication_failed() {
    let (mut l, mut mn2) = setup(ha(Some(Uniqueness::Keep), Uniqueness::No));
    let kernel_before = l.ha.kernel.len();
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect(&mut l, &mut b, HOA1);
    assert!(
        b.exchange_failed(Some(N_AUTHENTICATION_FAILED)),
        "{:?}",
        b.events
    );
    assert_eq!(b.child_ups(), 0);
    assert_eq!(b.ep.ike_sa_count(), 0);
    assert_eq!(remotes(&l).len(), 2);
    assert!(!remotes(&l).contains(&SECOND.parse().unwrap()));
    assert_eq!(
        l.ha.kernel.len(),
        kernel_before,
        "nothing of the refused SA in the kernel"
    );
    assert!(!ike_down(&l.mn), "the first device keeps its SA");
    assert_eq!(l.ha.ep.stats.auth_failures, 1);
    // A restarted device says INITIAL_CONTACT: the stale SA goes, the new one is accepted
    // (strongSwan processes INITIAL_CONTACT before the uniqueness check).
    let mut c = device("mn1", "[2001:db8:5::1]:500", true, 12, &l);
    connect(&mut l, &mut c, HOA1);
    assert_eq!(c.child_ups(), 2);
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
    mn2_untouched(&l, &mn2);
    pump(&mut l, &mut [&mut mn2]);
}

#[test]
fn replace_deletes_the_older_ike_sa_with_a_delete() {
    // The default of the HA says replace; mn1's file says nothing.
    let (mut l, mn2) = setup(ha(None, Uniqueness::Replace));
    let first_children: Vec<(u32, u32)> = l.ha.ep.list()[..]
        .iter()
        .find(|s| s.remote == l.mn.addr)
        .unwrap()
        .children
        .iter()
        .map(|c| (c.spi_in, c.spi_out))
        .collect();
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect(&mut l, &mut b, HOA1);
    assert_eq!(b.child_ups(), 2);
    // The HA holds mn2's and the new device's SAs only.
    assert_eq!(remotes(&l), {
        let mut v: Vec<SocketAddr> = vec![mn2.addr, SECOND.parse().unwrap()];
        v.sort();
        v
    });
    assert_eq!(l.ha.kernel.len(), 8);
    for (i, o) in first_children {
        assert!(l.ha.kernel.sas().all(|s| s.spi != i && s.spi != o));
    }
    // The first device got the Delete and took its SAs down.
    assert!(ike_down(&l.mn), "{:?}", l.mn.events);
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert!(l.mn.kernel.is_empty());
    assert!(l.ha.events.iter().any(
        |e| matches!(e, Event::IkeDown { reason, .. } if reason.contains("uniqueness = replace"))
    ));
    mn2_untouched(&l, &mn2);
}

/// A user file's policy beats the home agent's default, and one user's policy never reaches
/// another user: mn2 (default `keep`) is refused a second SA while mn1 (`no`) is not.
#[test]
fn the_policy_is_per_user() {
    let (mut l, mn2) = setup(ha(Some(Uniqueness::No), Uniqueness::Keep));
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect(&mut l, &mut b, HOA1);
    assert_eq!(
        b.child_ups(),
        2,
        "mn1's own policy (no) admits a second device"
    );
    let mut mn2b = device("mn2", "[2001:db8:6::1]:500", false, 13, &l);
    connect(&mut l, &mut mn2b, HOA2);
    assert!(mn2b.exchange_failed(Some(N_AUTHENTICATION_FAILED)));
    assert_eq!(l.ha.ep.ike_sa_count(), 3);
    mn2_untouched(&l, &mn2);
}

/// Attacker's view: under `replace`, an IKE_AUTH that names mn1's identity but cannot prove
/// it (mn2's key and certificate) replaces nothing; neither does a real user of another
/// identity; only an authenticated peer of that identity does.
#[test]
fn replace_needs_the_identity_proven() {
    let (mut l, mn2) = setup(ha(None, Uniqueness::Replace));
    let mut forger = Side::new(
        base_config(MN1_DN, local_auth(AuthKind::Ecdsa, "mn2"), IKE, ESP),
        SECOND,
        14,
        l.now,
    );
    connect(&mut l, &mut forger, HOA1);
    assert!(
        forger.exchange_failed(Some(N_AUTHENTICATION_FAILED)),
        "{:?}",
        forger.events
    );
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
    assert_eq!(l.ha.kernel.len(), 8);
    assert!(!ike_down(&l.mn));
    assert_eq!(l.mn.ep.list()[0].state, "established");
    mn2_untouched(&l, &mn2);
    // mn2 from a second device replaces mn2's SA, never mn1's.
    let mut mn2b = device("mn2", "[2001:db8:6::1]:500", false, 13, &l);
    connect(&mut l, &mut mn2b, HOA2);
    assert_eq!(mn2b.child_ups(), 2);
    assert!(!ike_down(&l.mn), "mn1 untouched");
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
}

/// Replace is make before break: the older SA of the same home address stays, kernel SAs and
/// all, while the new one has only its BU/BA CHILD_SA; it goes (with a Delete) as soon as the
/// new one carries the payload tunnel too.
#[test]
fn replace_waits_until_the_new_sa_carries_the_older_ones_child_sas() {
    let (mut l, mn2) = setup(ha(None, Uniqueness::Replace));
    let first =
        l.ha.ep
            .list()
            .into_iter()
            .find(|s| s.remote == l.mn.addr)
            .unwrap();
    let mut b = device("mn1", SECOND, false, 11, &l);
    let ike = connect_classes(&mut l, &mut b, HOA1, &[SaClass::BuBa]);
    assert_eq!(b.child_ups(), 1);
    assert_eq!(
        l.ha.ep.ike_sa_count(),
        3,
        "the older SA waits for its replacement"
    );
    for c in &first.children {
        assert!(
            l.ha.kernel.get(c.local, c.spi_in).is_some(),
            "its tunnel still carries traffic"
        );
    }
    assert!(!ike_down(&l.mn));
    b.ep.handle_command(
        l.now,
        Command::CreateChild {
            ike,
            class: SaClass::Payload,
        },
    )
    .unwrap();
    pump(&mut l, &mut [&mut b]);
    assert_eq!(b.child_ups(), 2);
    assert_eq!(
        l.ha.ep.ike_sa_count(),
        2,
        "replaced once the payload tunnel is there"
    );
    assert!(ike_down(&l.mn), "the first device got the Delete");
    assert!(l.ha.ep.list().iter().all(|s| s.id != first.id));
    mn2_untouched(&l, &mn2);
}

/// A replacement that never carries the older SA's classes: the older one goes after the grace.
#[test]
fn replace_goes_ahead_after_the_grace() {
    let (mut l, mn2) = setup(ha(None, Uniqueness::Replace));
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect_classes(&mut l, &mut b, HOA1, &[SaClass::BuBa]);
    assert_eq!(l.ha.ep.ike_sa_count(), 3);
    l.advance(std::time::Duration::from_secs(5));
    assert_eq!(l.ha.ep.ike_sa_count(), 3, "within the grace");
    l.advance(std::time::Duration::from_secs(6));
    pump(&mut l, &mut [&mut b]);
    assert_eq!(l.ha.ep.ike_sa_count(), 2, "{:?}", remotes(&l));
    assert!(ike_down(&l.mn));
    assert!(remotes(&l).contains(&SECOND.parse().unwrap()));
    mn2_untouched(&l, &mn2);
}

/// A replacement that goes away before the grace is over replaces nothing: the older SA stays.
#[test]
fn replace_is_called_off_when_the_new_sa_goes() {
    let (mut l, mn2) = setup(ha(None, Uniqueness::Replace));
    let mut b = device("mn1", SECOND, false, 11, &l);
    let ike = connect_classes(&mut l, &mut b, HOA1, &[SaClass::BuBa]);
    b.ep.handle_command(l.now, Command::Terminate { ike })
        .unwrap();
    pump(&mut l, &mut [&mut b]);
    assert_eq!(l.ha.ep.ike_sa_count(), 2);
    l.advance(std::time::Duration::from_secs(30));
    pump(&mut l, &mut [&mut b]);
    assert_eq!(l.ha.ep.ike_sa_count(), 2, "{:?}", remotes(&l));
    assert!(!ike_down(&l.mn), "the first device keeps its SA");
    assert!(remotes(&l).contains(&l.mn.addr));
    mn2_untouched(&l, &mn2);
}

/// One user, two home addresses, one IKE SA each: not duplicates, replace leaves both.
#[test]
fn replace_keeps_the_sa_of_another_home_address() {
    const HOA3: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x300);
    let mut mn1 = user(
        "mn1",
        MN1_DN,
        UserAuth::Certificate,
        &[HOA1, HOA3],
        BU_PAYLOAD,
    );
    mn1.uniqueness = None;
    let mn2 = user("mn2", MN2_DN, UserAuth::Certificate, &[HOA2], BU_PAYLOAD);
    let mut c = ha_with_users(vec![mn1, mn2]);
    c.mobility.uniqueness = Uniqueness::Replace;
    let (mut l, mn2) = setup(c);
    let mut b = device("mn1", SECOND, false, 11, &l);
    connect(&mut l, &mut b, HOA3);
    assert_eq!(b.child_ups(), 2);
    l.advance(std::time::Duration::from_secs(30));
    pump(&mut l, &mut [&mut b]);
    assert_eq!(l.ha.ep.ike_sa_count(), 3, "{:?}", remotes(&l));
    assert!(!ike_down(&l.mn));
    assert_eq!(l.ha.kernel.len(), 12);
    mn2_untouched(&l, &mn2);
}
