//! Mobile IPv6 semantics end to end in the engine: K-bit moves driven by mip6d-style MIGRATE
//! sequences, re-establishment without the K bit, dynamic home addresses and prefixes from
//! pools, USE_ASSIGNED_HoA, leases (uniqueness, persistence, expiry) and reloads.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mip6_ike::ike::{
    ChildInfo, Command, Config, Endpoint, Event, HomeAddress, HomeAgentConfig, MobilityConfig, Now,
};
use mip6_ike::kernel::{Direction, Kernel, KernelEvent, KernelOp, Migrate, Mode, Selector};
use mip6_ike::mobility::{
    HomePrefix, IdentityMatch, LeaseState, LeaseStore, Pool, PoolKind, SaClass, User, UserAuth,
    UserDb,
};
use mip6_ike::wire::Header;
use mip6_ike::wire::consts::*;

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];
const ANY: Ipv6Addr = Ipv6Addr::UNSPECIFIED;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}

fn sel(src: Ipv6Addr, sp: u8, dst: Ipv6Addr, dp: u8, proto: u8) -> Selector {
    Selector::new(ip(src), sp, ip(dst), dp, proto)
}

/// One MIGRATE entry as mip6d sends it: transport entries carry `::` as old/new addresses,
/// tunnel entries the old and new outer endpoints; every message carries KMADDRESS.
#[allow(clippy::too_many_arguments)]
fn migrate(
    selector: Selector,
    direction: Direction,
    reqid: u32,
    old: (Ipv6Addr, Ipv6Addr),
    new: (Ipv6Addr, Ipv6Addr),
    km: (Ipv6Addr, Ipv6Addr),
) -> KernelEvent {
    KernelEvent::Migrate(Migrate {
        selector,
        direction,
        reqid,
        old_src: ip(old.0),
        old_dst: ip(old.1),
        new_src: ip(new.0),
        new_dst: ip(new.1),
        km_local: Some(ip(km.0)),
        km_remote: Some(ip(km.1)),
    })
}

/// A MIGRATE of one of mip6d's policies for `hoa` moving from `old_coa` to `new_coa`: the
/// policy for traffic to the HA (`to_ha`) or to the MN, of the MH (transport) or the
/// TunnelPayload SA, with mip6d's default reqids (to the HA: MH 1, payload 3; to the MN: 2, 4).
fn mip6d_migrate(
    (hoa, old_coa, new_coa): (Ipv6Addr, Ipv6Addr, Ipv6Addr),
    to_ha: bool,
    tunnel: bool,
    direction: Direction,
    km: (Ipv6Addr, Ipv6Addr),
) -> KernelEvent {
    let (selector, reqid, old, new) = match (to_ha, tunnel) {
        (true, false) => (
            sel(hoa, 128, HA_IP, 128, IPPROTO_MH),
            1,
            (ANY, ANY),
            (ANY, ANY),
        ),
        (false, false) => (
            sel(HA_IP, 128, hoa, 128, IPPROTO_MH),
            2,
            (ANY, ANY),
            (ANY, ANY),
        ),
        (true, true) => (
            sel(hoa, 128, ANY, 0, 0),
            3,
            (old_coa, HA_IP),
            (new_coa, HA_IP),
        ),
        (false, true) => (
            sel(ANY, 0, hoa, 128, 0),
            4,
            (HA_IP, old_coa),
            (HA_IP, new_coa),
        ),
    };
    migrate(selector, direction, reqid, old, new, km)
}

/// The 4 MIGRATEs mip6d sends on the MN before its BU (Mh and TunnelPayload, both directions).
fn mn_migrates(hoa: Ipv6Addr, old_coa: Ipv6Addr, new_coa: Ipv6Addr) -> Vec<KernelEvent> {
    mip6d_migrates(false, hoa, old_coa, new_coa)
}

/// The 5 MIGRATEs mip6d sends on the HA while it processes the BU (one policy twice, as seen).
fn ha_migrates(hoa: Ipv6Addr, old_coa: Ipv6Addr, new_coa: Ipv6Addr) -> Vec<KernelEvent> {
    mip6d_migrates(true, hoa, old_coa, new_coa)
}

/// mip6d's MIGRATEs on the HA (`on_ha`) or the MN, in the order it sends them, with its
/// KMADDRESS (local, remote).
fn mip6d_migrates(
    on_ha: bool,
    hoa: Ipv6Addr,
    old_coa: Ipv6Addr,
    new_coa: Ipv6Addr,
) -> Vec<KernelEvent> {
    use Direction::{In, Out};
    // (to_ha, tunnel, direction)
    let (order, km): (&[(bool, bool, Direction)], _) = if on_ha {
        (
            &[
                (false, false, Out),
                (true, false, In),
                (false, true, Out),
                (true, true, In),
                (true, true, In),
            ],
            (HA_IP, new_coa),
        )
    } else {
        (
            &[
                (true, false, Out),
                (false, false, In),
                (true, true, Out),
                (false, true, In),
            ],
            (new_coa, HA_IP),
        )
    };
    order
        .iter()
        .map(|&(to_ha, tunnel, dir)| mip6d_migrate((hoa, old_coa, new_coa), to_ha, tunnel, dir, km))
        .collect()
}

/// What the kernel does with mip6d's MIGRATE before broadcasting it: tunnel SAs of that reqid
/// between the old endpoints move to the new ones (xfrm_migrate). Not when the engine owns the
/// SAs (then mip6d's policies are not involved and the engine moves them).
fn kernel_migrates(side: &mut Side, e: &KernelEvent) {
    let KernelEvent::Migrate(m) = e else { return };
    if side.ep.config().mobility.update_kernel_sas || m.old_src.is_unspecified() {
        return;
    }
    let hit: Vec<(IpAddr, u32)> = side
        .kernel
        .sas()
        .filter(|s| {
            s.mode == Mode::Tunnel && s.reqid == m.reqid && (s.src, s.dst) == (m.old_src, m.old_dst)
        })
        .map(|s| (s.dst, s.spi))
        .collect();
    for (old_dst, spi) in hit {
        let op = KernelOp::UpdateSaAddrs {
            old_dst,
            spi,
            src: m.new_src,
            dst: m.new_dst,
        };
        side.kernel.apply(&op).unwrap();
    }
}

/// Kernel events to the HA (`on_ha`) or the MN, as the kernel would treat and broadcast them.
fn kernel_to(l: &mut Lab, on_ha: bool, evs: Vec<KernelEvent>) {
    let now = l.now;
    let side = if on_ha { &mut l.ha } else { &mut l.mn };
    for e in evs {
        kernel_migrates(side, &e);
        side.ep.handle_kernel(now, e);
    }
    l.collect();
}
fn kernel_mn(l: &mut Lab, evs: Vec<KernelEvent>) {
    kernel_to(l, false, evs);
}
fn kernel_ha(l: &mut Lab, evs: Vec<KernelEvent>) {
    kernel_to(l, true, evs);
}

fn migrated(s: &Side) -> usize {
    s.events
        .iter()
        .filter(|e| matches!(e, Event::Migrated { .. }))
        .count()
}

/// An MN on a non-standard port, so that "port kept" is visible.
const MN_PORT: u16 = 50123;

fn moving_lab(mn: Config, ha: Config) -> Lab {
    let mut l = Lab::new(mn, ha);
    l.mn.addr = SocketAddr::new(l.mn.addr.ip(), MN_PORT);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2), "{:?}", l.mn.events);
    l.run_now();
    l
}

/// The MN's current care-of address.
fn mn_coa(l: &Lab) -> Ipv6Addr {
    match l.mn.addr.ip() {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => unreachable!(),
    }
}

/// The MN's side of a move of `hoa`'s SAs from `old` to `new`: mip6d's MIGRATEs, then the MN
/// talks from the new care-of address (same port).
fn mn_moves(l: &mut Lab, hoa: Ipv6Addr, old: Ipv6Addr, new: Ipv6Addr) {
    kernel_mn(l, mn_migrates(hoa, old, new));
    // Nobody is at the old care-of address any more.
    l.gone.push(l.mn.addr);
    l.gone.retain(|a| a.ip() != ip(new));
    l.mn.addr = SocketAddr::new(ip(new), l.mn.addr.port());
}

/// mn1 and the standard HA, both with `set` applied to their mobility settings, established.
fn moving_pair(set: impl Fn(&mut MobilityConfig)) -> Lab {
    let (mut mn, mut ha) = (mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    set(&mut mn.mobility);
    set(&mut ha.mobility);
    moving_lab(mn, ha)
}

/// Moves the MN to `new` the way mip6d does it (MN MIGRATEs, then the HA's) and checks both ends.
fn move_to(l: &mut Lab, new: Ipv6Addr) {
    let old = mn_coa(l);
    let (mn_before, ha_before) = (migrated(&l.mn), migrated(&l.ha));
    mn_moves(l, HOA1, old, new);
    kernel_ha(l, ha_migrates(HOA1, old, new));
    assert_eq!(migrated(&l.mn), mn_before + 1, "4 MIGRATEs, one move");
    assert_eq!(migrated(&l.ha), ha_before + 1, "5 MIGRATEs, one move");
    let mn = &l.mn.ep.list()[0];
    let ha = &l.ha.ep.list()[0];
    assert_eq!(mn.local, SocketAddr::new(ip(new), MN_PORT));
    assert_eq!(mn.remote, l.ha.addr);
    assert_eq!(
        ha.remote,
        SocketAddr::new(ip(new), MN_PORT),
        "the MN's port is kept"
    );
    assert_eq!(ha.local, l.ha.addr);
    for (info, local, remote) in [(mn, ip(new), ip(HA_IP)), (ha, ip(HA_IP), ip(new))] {
        for c in &info.children {
            match c.mode {
                Mode::Tunnel => assert_eq!((c.local, c.remote), (local, remote)),
                // Transport SAs run HoA <-> HA wherever the MN is.
                Mode::Transport => assert!(c.local == ip(HOA1) || c.remote == ip(HOA1)),
            }
        }
    }
    // A liveness check now flows between the new CoA and the HA and is answered.
    let sent_before = l.delivered;
    l.mn.ep.handle_timeout(l.now);
    let at = l.now.at + l.mn.ep.config().timers.liveness_interval + Duration::from_secs(1);
    l.advance_to(at);
    assert!(
        l.wire
            .iter()
            .any(|(to_ha, t)| *to_ha && t.local.ip() == ip(new)),
        "liveness check leaves from the new care-of address: {:?}",
        l.wire
    );
    l.run_now();
    assert!(l.delivered >= sent_before + 2);
    assert_eq!(l.mn.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
}

/// The MN's payload (tunnel) CHILD_SA.
fn payload_child(l: &Lab) -> ChildInfo {
    l.mn.ep.list()[0]
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .cloned()
        .unwrap()
}

fn payload_spi(l: &Lab) -> u32 {
    payload_child(l).spi_in
}

/// The MN starts a rekey of its payload CHILD_SA (the request is in flight); returns the SA's
/// inbound SPI.
fn start_payload_rekey(l: &mut Lab) -> u32 {
    let ike = l.mn.ep.list()[0].id;
    let spi = payload_spi(l);
    l.mn_command(Command::RekeyChild { ike, spi_in: spi });
    spi
}

#[test]
fn k_bit_move_then_liveness_and_child_rekey_from_the_new_coa() {
    let mut l = moving_pair(|_| {});
    let new = v6("2001:db8:3::100");
    move_to(&mut l, new);
    // No kernel operation for tunnel SAs: mip6d's MIGRATE already moved them in the kernel,
    // and the engine's record agrees with the kernel (the old SAs' removal below finds them).
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
    // A CHILD_SA rekey from the new CoA: the new tunnel SA is installed with the new outer
    // endpoints on both sides.
    let ups = l.mn.child_ups();
    let spi = start_payload_rekey(&mut l);
    assert!(
        l.wire
            .iter()
            .all(|(to_ha, t)| !*to_ha || t.local.ip() == ip(new))
    );
    l.run_now();
    assert_eq!(l.mn.child_ups(), ups + 1);
    let c = payload_child(&l);
    assert_ne!(c.spi_in, spi);
    let k =
        l.mn.kernel
            .get(ip(new), c.spi_in)
            .expect("inbound SA to the new CoA");
    assert_eq!(k.src, ip(HA_IP));
    let k =
        l.ha.kernel
            .get(ip(new), c.spi_in)
            .expect("HA's outbound SA to the new CoA");
    assert_eq!(k.src, ip(HA_IP));
    assert!(l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty());
    assert_eq!(l.mn.ep.stats.migrations, 1);
}

#[test]
fn three_moves_and_a_return_home() {
    let mut l = moving_pair(|_| {});
    for coa in ["2001:db8:3::100", "2001:db8:4::100", "2001:db8:5::100"] {
        move_to(&mut l, v6(coa));
    }
    // Home: mip6d migrates to the home address itself.
    move_to(&mut l, HOA1);
    assert_eq!(migrated(&l.mn), 4);
    assert_eq!(migrated(&l.ha), 4);
    let ups = l.mn.child_ups();
    start_payload_rekey(&mut l);
    l.run_now();
    assert_eq!(l.mn.child_ups(), ups + 1, "rekey works at home");
    assert!(
        !l.mn
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
}

#[test]
fn engine_moves_tunnel_sas_when_it_owns_them() {
    let mut l = moving_pair(|m| m.update_kernel_sas = true);
    let c = payload_child(&l);
    let old = mn_coa(&l);
    assert!(l.mn.kernel.get(ip(old), c.spi_in).is_some());
    let new = v6("2001:db8:3::100");
    move_to(&mut l, new);
    // UpdateSaAddrs moved both directions of the tunnel SA in both kernels, once.
    assert!(l.mn.kernel.get(ip(old), c.spi_in).is_none());
    let inb = l.mn.kernel.get(ip(new), c.spi_in).unwrap();
    assert_eq!(inb.src, ip(HA_IP));
    let out = l.mn.kernel.get(ip(HA_IP), c.spi_out).unwrap();
    assert_eq!(out.src, ip(new));
    let ha_out = l.ha.kernel.get(ip(new), c.spi_in).unwrap();
    assert_eq!(ha_out.src, ip(HA_IP));
    assert!(l.mn.kernel_errors.is_empty(), "{:?}", l.mn.kernel_errors);
    assert!(l.ha.kernel_errors.is_empty(), "{:?}", l.ha.kernel_errors);
    assert_eq!(l.mn.kernel.len(), 4);
}

#[test]
fn migrates_for_unknown_sas_or_foreign_kmaddress_are_ignored() {
    let mut l = moving_pair(|_| {});
    let coa = mn_coa(&l);
    let new = v6("2001:db8:3::100");
    // Another home address: no IKE SA.
    kernel_ha(&mut l, ha_migrates(HOA2, coa, new));
    // Our home address, but KMADDRESS names neither of the SA's endpoints.
    kernel_ha(
        &mut l,
        vec![migrate(
            sel(HA_IP, 128, HOA1, 128, IPPROTO_MH),
            Direction::Out,
            2,
            (ANY, ANY),
            (ANY, ANY),
            (v6("2001:db8:9::1"), new),
        )],
    );
    // No KMADDRESS.
    let mut m = match ha_migrates(HOA1, coa, new).remove(0) {
        KernelEvent::Migrate(m) => m,
        _ => unreachable!(),
    };
    m.km_local = None;
    m.km_remote = None;
    kernel_ha(&mut l, vec![KernelEvent::Migrate(m)]);
    assert_eq!(migrated(&l.ha), 0);
    assert_eq!(l.ha.ep.list()[0].remote, l.mn.addr);
    assert!(l.wire.is_empty(), "nothing sent for ignored MIGRATEs");
}

/// The SPIs (ours, inbound) of a side's CHILD_SAs.
fn child_spis(s: &Side) -> Vec<u32> {
    let mut v: Vec<u32> =
        s.ep.list()
            .iter()
            .flat_map(|i| i.children.iter().map(|c| c.spi_in))
            .collect();
    v.sort_unstable();
    v
}

#[test]
fn without_key_mobility_the_mobile_node_re_establishes_before_it_deletes() {
    let mut l = moving_pair(|m| m.key_mobility = false);
    let old_ike = l.mn.ep.list()[0].id;
    let old_children = child_spis(&l.mn);
    let old = mn_coa(&l);
    let new = v6("2001:db8:3::100");
    mn_moves(&mut l, HOA1, old, new);
    assert_eq!(migrated(&l.mn), 0);
    assert!(
        !l.mn
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. })),
        "the old IKE SA is not down: its CHILD_SAs still carry mip6d's BUs"
    );
    let new_ike = l.mn.events.iter().find_map(|e| match e {
        Event::IkeRekeyed { old, new } if *old == old_ike => Some(*new),
        _ => None,
    });
    let new_ike = new_ike.expect("the old IKE SA's followers are sent to the new one");
    // Make before break: the old CHILD_SAs stay installed, no Delete goes out yet; only the
    // new IKE_SA_INIT, from the new care-of address.
    assert_eq!(
        l.mn.kernel.len(),
        4,
        "old CHILD_SAs kept during the new negotiation"
    );
    assert_eq!(l.ha.kernel.len(), 4);
    assert_eq!(l.wire.len(), 1, "{:?}", l.wire.len());
    assert_eq!(l.wire[0].1.local.ip(), ip(new));
    assert_eq!(
        Header::parse(&l.wire[0].1.data).unwrap().exchange,
        IKE_SA_INIT
    );
    // HA: its MIGRATEs (mip6d processed the BU, which went through the old transport SA)
    // leave its IKE SA and CHILD_SAs alone.
    kernel_ha(&mut l, ha_migrates(HOA1, old, new));
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.kernel.len(), 4);
    let ups = (l.mn.child_ups(), l.ha.child_ups());
    assert!(l.run(
        |l| l.mn.child_ups() >= ups.0 + 2 && l.ha.child_ups() >= ups.1 + 2,
        |_, _, _| true
    ));
    l.run_now();
    let mn = l.mn.ep.list();
    let ha = l.ha.ep.list();
    assert_eq!(mn.len(), 1, "the stranded IKE SA is gone: {mn:?}");
    assert_eq!(
        ha.len(),
        1,
        "the HA's old IKE SA is gone (the MN's Delete): {ha:?}"
    );
    assert_eq!(mn[0].id, new_ike);
    assert_eq!(mn[0].local, SocketAddr::new(ip(new), MN_PORT));
    assert_eq!(ha[0].remote, SocketAddr::new(ip(new), MN_PORT));
    assert_eq!(ha[0].children.len(), 2);
    let now = child_spis(&l.mn);
    assert!(
        now.iter().all(|s| !old_children.contains(s)),
        "{now:?} {old_children:?}"
    );
    assert_eq!(l.mn.kernel.len(), 4, "only the new CHILD_SAs are installed");
    assert_eq!(l.ha.kernel.len(), 4);
    assert!(
        l.mn.kernel_errors.is_empty() && l.ha.kernel_errors.is_empty(),
        "every old SA deleted where the kernel moved it: {:?} {:?}",
        l.mn.kernel_errors,
        l.ha.kernel_errors
    );
}

#[test]
fn without_key_mobility_a_move_during_re_establishment_keeps_the_old_sas_too() {
    let mut l = moving_pair(|m| m.key_mobility = false);
    let old = mn_coa(&l);
    let (mid, new) = (v6("2001:db8:3::100"), v6("2001:db8:4::100"));
    mn_moves(&mut l, HOA1, old, mid);
    l.wire.clear();
    mn_moves(&mut l, HOA1, mid, new);
    assert_eq!(l.mn.kernel.len(), 4, "still the old CHILD_SAs");
    assert!(l.wire.iter().all(|(_, t)| t.local.ip() == ip(new)));
    kernel_ha(&mut l, ha_migrates(HOA1, old, new));
    let ups = l.mn.child_ups();
    assert!(l.run(|l| l.mn.child_ups() >= ups + 2, |_, _, _| true));
    l.run_now();
    assert_eq!(l.mn.ep.list().len(), 1);
    assert_eq!(l.ha.ep.list().len(), 1);
    assert_eq!((l.mn.kernel.len(), l.ha.kernel.len()), (4, 4));
}

#[test]
fn without_key_mobility_an_unreplaced_sa_goes_after_move_grace() {
    let mut l = moving_pair(|m| m.key_mobility = false);
    let old = mn_coa(&l);
    let new = v6("2001:db8:3::100");
    mn_moves(&mut l, HOA1, old, new);
    // Nothing reaches the home agent from the new address.
    let moved_at = l.now.at;
    let grace = l.mn.ep.config().timers.move_grace;
    // (The home agent's liveness checks go to the old address: lost as well.)
    let at = l.mn.addr;
    assert!(l.run(
        |l| l.mn.kernel.is_empty(),
        |_, to_ha, t| !to_ha && t.remote == at
    ));
    assert!(
        l.now.at >= moved_at + grace,
        "kept for move_grace ({grace:?}), gone after {:?}",
        l.now.at - moved_at
    );
    assert_eq!(l.mn.kernel.len(), 0, "the stranded CHILD_SAs went with it");
}

#[test]
fn without_key_mobility_the_home_agent_keeps_the_sa_until_the_mobile_node_replaces_it() {
    let mut ha = ha_config(AuthKind::Ecdsa, IKE, ESP);
    ha.mobility.key_mobility = false;
    let mut l = moving_lab(mn1(), ha);
    let old = mn_coa(&l);
    kernel_ha(&mut l, ha_migrates(HOA1, old, v6("2001:db8:3::100")));
    assert_eq!(l.ha.ep.ike_sa_count(), 1);
    assert_eq!(l.ha.kernel.len(), 4, "the BA still needs the transport SAs");
    assert!(
        !l.ha
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. })),
        "{:?}",
        l.ha.events
    );
    assert!(l.wire.is_empty(), "nothing sent on a MIGRATE");
}

#[test]
fn without_key_mobility_the_re_establishment_sends_no_initial_contact() {
    // The new IKE SA must not make the HA drop the old one before the MN does (make before
    // break): with the MN's Delete lost, the HA holds both (under `no`; the default `replace`
    // deletes it once the new one carries its CHILD_SAs, see tests/uniqueness.rs).
    let mut l = moving_pair(|m| {
        m.key_mobility = false;
        m.uniqueness = mip6_ike::mobility::Uniqueness::No;
    });
    let old = mn_coa(&l);
    let new = v6("2001:db8:3::100");
    mn_moves(&mut l, HOA1, old, new);
    let ups = l.ha.child_ups();
    assert!(l.run(
        |l| l.ha.child_ups() >= ups + 2 && l.wire.is_empty(),
        |_, to_ha, t| !(to_ha && Header::parse(&t.data).unwrap().exchange == INFORMATIONAL)
    ));
    assert_eq!(l.ha.ep.ike_sa_count(), 2, "{:?}", l.ha.ep.list());
}

// ---- INITIAL_CONTACT (RFC 7296 2.4) ----

fn ids_of(ha: &Endpoint) -> Vec<(String, SocketAddr)> {
    let mut v: Vec<(String, SocketAddr)> = ha
        .list()
        .iter()
        .map(|i| {
            (
                i.peer.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                i.remote,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn initial_contact_from_a_restarted_mobile_node_drops_its_old_sas_and_no_others() {
    let now = t0();
    let pool = addr_pool("dyn", "2001:db8:1::1000", "2001:db8:1::10ff");
    let mut ha = ha_endpoint(vec![psk_user(1, &pool), psk_user(2, &pool)], now);
    let hoa1 = connect(&mut ha, 1, now).expect("mn1 up");
    let hoa2 = connect(&mut ha, 2, now).expect("mn2 up");
    let mn2_sa = ha
        .list()
        .into_iter()
        .find(|i| i.remote.ip() == ip(v6("2001:db8:2::3")));
    let mn2_sa = mn2_sa.expect("mn2's IKE SA").id;
    // mn1 restarts (a new endpoint, new SPIs, another care-of address): its first IKE_AUTH
    // carries INITIAL_CONTACT.
    let again = connect_with(&mut ha, psk_mn(1), 11, now).expect("mn1 up again");
    assert_eq!(
        again, hoa1,
        "the lease passes from the stale SA to the new one"
    );
    let ids = ids_of(&ha);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&(
        "fqdn:mn1.example.net".into(),
        "[2001:db8:2::c]:500".parse().unwrap()
    )));
    assert!(
        ha.list().iter().any(|i| i.id == mn2_sa),
        "another identity's SA untouched"
    );
    assert!(ha.list().iter().all(|i| i.children.len() == 1));
    // Another identity's INITIAL_CONTACT (mn2 restarting) leaves mn1's new SA alone too.
    assert_eq!(connect_with(&mut ha, psk_mn(2), 12, now), Some(hoa2));
    let ids = ids_of(&ha);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&(
        "fqdn:mn1.example.net".into(),
        "[2001:db8:2::c]:500".parse().unwrap()
    )));
    assert!(ids.contains(&(
        "fqdn:mn2.example.net".into(),
        "[2001:db8:2::d]:500".parse().unwrap()
    )));
}

#[test]
fn without_initial_contact_a_second_device_of_one_identity_keeps_the_first() {
    let now = t0();
    let pool = addr_pool("dyn", "2001:db8:1::1000", "2001:db8:1::10ff");
    // Two devices sharing an identity want `no` (or `never`): the default, `replace`, would
    // replace the first device's SA (tests/uniqueness.rs).
    let mut shared = psk_user(1, &pool);
    shared.uniqueness = Some(mip6_ike::mobility::Uniqueness::No);
    let mut ha = ha_endpoint(vec![shared], now);
    connect(&mut ha, 1, now).expect("first device up");
    let mut second = psk_mn(1);
    second.mobility.initial_contact = false;
    connect_with(&mut ha, second, 11, now).expect("second device up");
    assert_eq!(ha.ike_sa_count(), 2, "{:?}", ids_of(&ha));
}

// ---- dynamic home addresses, prefixes, leases ----

fn addr_pool(name: &str, first: &str, last: &str) -> Arc<Pool> {
    Arc::new(Pool {
        name: name.into(),
        kind: PoolKind::Addresses {
            first: v6(first),
            last: v6(last),
        },
        lifetime: 0,
    })
}

fn prefix_pool() -> Arc<Pool> {
    Arc::new(Pool {
        name: "mnp".into(),
        kind: PoolKind::Prefixes {
            base: v6("2001:db8:100::"),
            base_len: 48,
            len: 64,
        },
        lifetime: 7200,
    })
}

fn pool_user(name: &str, id: &str, auth: UserAuth, pool: &Arc<Pool>) -> User {
    User {
        pool: Some(pool.clone()),
        ..user(name, id, auth, &[], BU_PAYLOAD)
    }
}

fn hoa_of(s: &Side) -> Option<Ipv6Addr> {
    s.events.iter().rev().find_map(|e| match e {
        Event::HoaAssigned { address, .. } => Some(*address),
        _ => None,
    })
}

#[test]
fn dynamic_home_address_from_a_pool_and_a_delegated_prefix() {
    let pool = addr_pool("dyn", "2001:db8:1::1000", "2001:db8:1::10ff");
    let mut u = pool_user("mn1", MN1_DN, UserAuth::Certificate, &pool);
    u.home_prefix = Some(HomePrefix::Pool(prefix_pool()));
    let mut mn = mn1();
    mn.mobility.request_home_prefix = true;
    let mut l = Lab::new(mn, ha_with_users(vec![u]));
    l.initiate(HomeAddress::Dynamic, BU_PAYLOAD);
    assert!(l.establish(2), "{:?}", l.mn.events);
    let a = v6("2001:db8:1::1000");
    assert_eq!(hoa_of(&l.mn), Some(a));
    assert_eq!(hoa_of(&l.ha), Some(a));
    let prefix = Event::PrefixAssigned {
        ike: l.mn.ep.list()[0].id,
        prefix: v6("2001:db8:100::"),
        prefix_len: 64,
        lifetime: 7200,
    };
    assert!(l.mn.events.contains(&prefix), "{:?}", l.mn.events);
    // TSi narrowed to the assigned HoA on both CHILD_SAs.
    for c in &l.ha.ep.list()[0].children {
        assert_eq!(c.ts_remote[0].start_addr, ip(a));
        assert_eq!(c.ts_remote[0].end_addr, ip(a));
    }
    let leases = l.ha.ep.leases();
    assert_eq!(leases.len(), 2);
    assert!(
        leases
            .iter()
            .all(|x| x.state == LeaseState::Bound && x.user == "mn1")
    );
    assert!(leases.iter().any(|x| x.address == a && x.prefix_len == 128));
    assert!(
        leases
            .iter()
            .any(|x| x.address == v6("2001:db8:100::") && x.prefix_len == 64 && x.pool == "mnp")
    );
    assert!(l.ha.ep.take_leases_changed());
    assert!(!l.ha.ep.take_leases_changed());
}

#[test]
fn static_home_prefix_authorizes_addresses_inside_it_only() {
    let prefix_user = || {
        let mut u = user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], BU_PAYLOAD);
        u.home_prefix = Some(HomePrefix::Static {
            prefix: v6("2001:db8:100:1::"),
            len: 64,
            lifetime: 86_400,
        });
        u
    };
    // Inside the user's prefix: accepted.
    let mut l = Lab::new(mn1(), ha_with_users(vec![prefix_user()]));
    l.initiate(HomeAddress::Static(v6("2001:db8:100:1::42")), BU_PAYLOAD);
    assert!(l.establish(2), "{:?}", l.mn.events);
    // Outside it (a prefix the user does not own): TS_UNACCEPTABLE.
    let mut l = Lab::new(mn1(), ha_with_users(vec![prefix_user()]));
    l.initiate(
        HomeAddress::Static(v6("2001:db8:100:2::42")),
        &[SaClass::BuBa],
    );
    l.run(|l| l.mn.exchange_failed(None), |_, _, _| true);
    assert!(l.mn.exchange_failed(Some(N_TS_UNACCEPTABLE)));
    assert!(l.ha.kernel.is_empty());
}

/// A PSK mobile node `fqdn:mn<i>.example.net` that asks for a dynamic home address.
fn psk_mn(i: usize) -> Config {
    let mut c = base_config(
        &format!("fqdn:mn{i}.example.net"),
        local_auth(AuthKind::Psk, "mn1"),
        IKE,
        ESP,
    );
    c.mobility.request_home_prefix = false;
    c
}

fn psk_user(i: usize, pool: &Arc<Pool>) -> User {
    pool_user(
        &format!("mn{i}"),
        &format!("fqdn:mn{i}.example.net"),
        UserAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())),
        pool,
    )
}

/// Runs MN `i` against `ha` until its IKE_AUTH is answered; returns the HoA it got.
fn connect(ha: &mut Endpoint, i: usize, now: Now) -> Option<Ipv6Addr> {
    connect_with(ha, psk_mn(i), i, now)
}

fn connect_with(ha: &mut Endpoint, cfg: Config, i: usize, now: Now) -> Option<Ipv6Addr> {
    let mut mn = Endpoint::new(
        Arc::new(cfg),
        Box::new(mip6_ike::crypto::TestRng::new(1000 + i as u64)),
        now,
    );
    let coa: SocketAddr = format!("[2001:db8:2::{:x}]:500", i + 1).parse().unwrap();
    let ha_addr: SocketAddr = HA_ADDR.parse().unwrap();
    mn.handle_command(
        now,
        Command::Initiate {
            local: coa,
            remote: ha_addr,
            home_agent: HA_IP,
            home_address: HomeAddress::Dynamic,
            classes: vec![SaClass::BuBa],
            remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
        },
    )
    .unwrap();
    for _ in 0..8 {
        let mut any = false;
        while let Some(t) = mn.poll_transmit() {
            any = true;
            ha.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = ha.poll_transmit() {
            any = true;
            mn.handle_datagram(now, t.remote, t.local, &t.data);
        }
        if !any {
            break;
        }
    }
    while ha.poll_event().is_some() {}
    while ha.poll_kernel_op().is_some() {}
    let mut got = None;
    while let Some(e) = mn.poll_event() {
        if let Event::HoaAssigned { address, .. } = e {
            got = Some(address);
        }
    }
    got
}

fn ha_endpoint(users: Vec<User>, now: Now) -> Endpoint {
    let mut c = ha_config(AuthKind::Psk, IKE, ESP);
    c.home_agent = Some(HomeAgentConfig {
        address: HA_IP,
        users: Arc::new(UserDb::new(users).unwrap()),
    });
    c.mobility.lease_grace = Duration::from_secs(600);
    Endpoint::new(
        Arc::new(c),
        Box::new(mip6_ike::crypto::TestRng::new(7)),
        now,
    )
}

fn t0() -> Now {
    Now {
        at: std::time::Instant::now(),
        unix: 1_800_000_000,
    }
}

#[test]
fn a_thousand_users_get_unique_leases_that_survive_a_restart() {
    const N: usize = 1000;
    let pool = addr_pool("dyn", "2001:db8:1::1:0", "2001:db8:1::1:ffff");
    let users: Vec<User> = (0..N).map(|i| psk_user(i, &pool)).collect();
    let now = t0();
    let mut ha = ha_endpoint(users, now);
    let mut got = Vec::with_capacity(N);
    for i in 0..N {
        got.push(connect(&mut ha, i, now).unwrap_or_else(|| panic!("mn{i} got no HoA")));
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), N, "every user has its own home address");
    assert!(got.iter().all(|a| pool.contains(*a)));
    let leases = ha.leases();
    assert_eq!(leases.len(), N);
    assert_eq!(ha.ike_sa_count(), N);

    // Persist, "restart", reload: every identity gets its address back.
    let dir = tempfile::tempdir().unwrap();
    let store = LeaseStore::new(dir.path().join("leases.toml"));
    store.save(&leases).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(
        text.contains("version = 1"),
        "{}",
        &text[..200.min(text.len())]
    );
    let users: Vec<User> = (0..N).map(|i| psk_user(i, &pool)).collect();
    let later = Now {
        at: now.at + Duration::from_secs(60),
        unix: now.unix + 60,
    };
    let mut ha2 = ha_endpoint(users, later);
    ha2.restore_leases(store.load().unwrap());
    let restored = ha2.leases();
    assert_eq!(restored.len(), N);
    assert!(restored.iter().all(|l| l.state == LeaseState::Released));
    // In reverse order, so a first-free allocator would hand out different addresses.
    for i in (0..N).step_by(37).rev() {
        assert_eq!(connect(&mut ha2, i, later), Some(got[i]), "mn{i} renewed");
    }
}

#[test]
fn a_dn_pattern_group_shares_a_pool_with_one_lease_per_identity() {
    let pool = addr_pool("visitors", "2001:db8:1::1000", "2001:db8:1::10ff");
    let group = User {
        identity: IdentityMatch::DnPattern("dn:C=CH, O=mip6-ike test, CN=*".into()),
        ..pool_user("visitors", MN1_DN, UserAuth::Certificate, &pool)
    };
    let now = t0();
    let mut ha = ha_endpoint(vec![group], now);
    let a = connect_with(&mut ha, mn1(), 1, now).unwrap();
    let b = connect_with(&mut ha, mn_config(AuthKind::Ecdsa, "mn2", IKE, ESP), 2, now).unwrap();
    assert_ne!(a, b);
    let leases = ha.leases();
    assert_eq!(leases.len(), 2);
    assert!(
        leases
            .iter()
            .all(|l| l.user == "visitors" && l.pool == "visitors")
    );
    let ids: Vec<&str> = leases.iter().map(|l| l.identity.as_str()).collect();
    assert!(
        ids.contains(&"dn:C=CH, O=mip6-ike test, CN=mn1@example.net"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"dn:C=CH, O=mip6-ike test, CN=mn2@example.net"),
        "{ids:?}"
    );
    // mn1 again (a second IKE SA of the same identity): the same address.
    assert_eq!(connect_with(&mut ha, mn1(), 3, now), Some(a));
}

#[test]
fn leases_expire_after_the_grace_period_and_are_reused() {
    let pool = addr_pool("dyn", "2001:db8:1::1000", "2001:db8:1::1000");
    let now = t0();
    let mut ha = ha_endpoint(vec![psk_user(1, &pool), psk_user(2, &pool)], now);
    let a = connect(&mut ha, 1, now).unwrap();
    // The only address is taken: mn2 gets none.
    assert_eq!(connect(&mut ha, 2, now), None);
    // mn1's IKE SA goes: the lease waits for the grace period (600 s), then expires.
    assert!(ha.list().iter().any(|s| s.home_address == Some(a)));
    ha.handle_command(now, Command::Shutdown).unwrap();
    assert_eq!(ha.leases()[0].state, LeaseState::Released);
    assert_eq!(ha.leases()[0].expires, Some(now.unix + 600));
    let mid = Now {
        at: now.at + Duration::from_secs(300),
        unix: now.unix + 300,
    };
    ha.handle_timeout(mid);
    assert_eq!(ha.leases().len(), 1, "within the grace period");
    let deadline = ha.next_deadline().unwrap();
    assert!(deadline <= now.at + Duration::from_secs(600));
    let after = Now {
        at: now.at + Duration::from_secs(601),
        unix: now.unix + 601,
    };
    ha.handle_timeout(after);
    assert!(ha.leases().is_empty());
    assert_eq!(
        connect(&mut ha, 2, after),
        Some(a),
        "the expired address is reused"
    );
}

#[test]
fn proposed_home_address_the_ha_will_not_give_gets_use_assigned_hoa() {
    // mn1 got 2001:db8:1::1000; then the pool is renumbered by a reload, and mn1, moving
    // without the K bit, re-establishes and proposes its old address again.
    // The HA with mn1 drawing from `pool`, without key mobility.
    let ha_on = |pool: &Arc<Pool>| {
        let mut ha = ha_with_users(vec![pool_user("mn1", MN1_DN, UserAuth::Certificate, pool)]);
        ha.mobility.key_mobility = false;
        ha
    };
    let old_pool = addr_pool("dyn", "2001:db8:1::1000", "2001:db8:1::10ff");
    let mut mn = mn1();
    mn.mobility.key_mobility = false;
    let mut l = Lab::new(mn, ha_on(&old_pool));
    l.initiate(HomeAddress::Dynamic, BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    let first = hoa_of(&l.mn).unwrap();
    assert_eq!(first, v6("2001:db8:1::1000"));

    let new_pool = addr_pool("dyn", "2001:db8:1::2000", "2001:db8:1::20ff");
    l.ha.ep.set_config(Arc::new(ha_on(&new_pool)));
    // The renumbered pool no longer grants the old address: the HA deletes that IKE SA. Its
    // Delete is lost in the move (the MN has left the old care-of address).
    l.collect();
    assert_eq!(l.ha.ep.list()[0].state, "deleting");
    l.wire.clear();
    let new = v6("2001:db8:3::100");
    let old = mn_coa(&l);
    mn_moves(&mut l, first, old, new);
    let ups = l.mn.child_ups();
    assert!(
        l.run(|l| l.mn.child_ups() >= ups + 2, |_, _, _| true),
        "{:?}",
        l.mn.events
    );
    let second = hoa_of(&l.mn).unwrap();
    assert_eq!(second, v6("2001:db8:1::2000"));
    assert_eq!(l.ha.ep.stats.use_assigned_hoa, 1);
    assert_eq!(l.mn.ep.stats.use_assigned_hoa, 1);
    let sa = &l.mn.ep.list()[0];
    assert_eq!(sa.home_address, Some(second));
    assert!(
        sa.children
            .iter()
            .all(|c| c.ts_local[0].start_addr == ip(second))
    );
    let leases = l.ha.ep.leases();
    assert_eq!(
        leases.len(),
        1,
        "the lease outside the pool was dropped: {leases:?}"
    );
    assert_eq!(leases[0].address, second);
}

// ---- reload ----

#[test]
fn reload_adds_and_removes_users_without_touching_other_sas() {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l.run_now();
    let before = l.ha.ep.list();
    let events = (l.mn.events.len(), l.ha.events.len());
    // Add a user, remove mn2: mn1 is not touched.
    let mn3 = User {
        identity: IdentityMatch::DnPattern("dn:C=CH, O=mip6-ike test, CN=*".into()),
        ..user(
            "mn3",
            MN2_DN,
            UserAuth::Certificate,
            &[v6("2001:db8:1::300")],
            BU_PAYLOAD,
        )
    };
    let users = vec![
        user("mn1", MN1_DN, UserAuth::Certificate, &[HOA1], BU_PAYLOAD),
        mn3,
    ];
    l.ha.ep.set_config(Arc::new(ha_with_users(users)));
    l.collect();
    l.run_now();
    assert_eq!(l.ha.ep.list(), before);
    assert_eq!((l.mn.events.len(), l.ha.events.len()), events);
    assert!(l.wire.is_empty());
    // Remove mn1: its IKE SA is deleted (on both sides).
    let users = vec![user(
        "mn2",
        MN2_DN,
        UserAuth::Certificate,
        &[HOA2],
        BU_PAYLOAD,
    )];
    l.ha.ep.set_config(Arc::new(ha_with_users(users)));
    l.collect();
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert_eq!(l.mn.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty() && l.mn.kernel.is_empty());
}

#[test]
fn cp_reply_with_home_address_and_home_prefix_is_byte_exact() {
    use mip6_ike::ike::{hoa_attribute, home_prefix_attribute, parse_home_prefix};
    use mip6_ike::wire::{ConfigPayload, Header, Message, Payload};
    let cp = ConfigPayload {
        cfg_type: CFG_REPLY,
        attributes: vec![
            hoa_attribute(v6("2001:db8:1::1000")),
            home_prefix_attribute(v6("2001:db8:100:1::"), 64, 86_400),
        ],
    };
    let msg = Message {
        header: Header {
            spi_i: 1,
            spi_r: 2,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: IKE_AUTH,
            flags: FLAG_RESPONSE,
            message_id: 1,
            length: 0,
        },
        payloads: vec![Payload::Cp(cp.clone())],
    };
    let bytes = msg.emit();
    let hex: String = bytes[28..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        concat!(
            "00000036", // generic header: last, 54 bytes
            "02000000", // CFG_REPLY
            "00080011", // INTERNAL_IP6_ADDRESS, 17 bytes
            "20010db8000100000000000000001000",
            "80",       // address, /128
            "00100015", // MIP6_HOME_PREFIX (16), 21 bytes
            "00015180", // prefix lifetime 86400
            "20010db8010000010000000000000000",
            "40", // prefix, /64
        )
    );
    assert_eq!(
        Message::parse(&bytes).unwrap().payloads,
        vec![Payload::Cp(cp)]
    );
    assert_eq!(
        parse_home_prefix(&bytes[bytes.len() - 21..]),
        Some((v6("2001:db8:100:1::"), 64, 86_400))
    );
}

/// Every SA class: mode, traffic selectors and mip6d's per-direction reqids on both sides (with
/// non-default reqids, as a `[reqids]` section would set them), and the kernel SAs' endpoints.
#[test]
fn every_sa_class_gets_its_selectors_mode_and_reqids() {
    use mip6_ike::mobility::ClassReqids;
    let reqids = [
        (SaClass::BuBa, 11, 12),
        (SaClass::Payload, 13, 14),
        (SaClass::MpsMpa, 15, 16),
        (SaClass::HotiHot, 17, 18),
    ];
    let set = |c: &mut Config| {
        for (class, to_ha, to_mn) in reqids {
            c.reqids.insert(class, ClassReqids { to_ha, to_mn });
        }
    };
    let (mut mn, mut ha) = (mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    set(&mut mn);
    set(&mut ha);
    let mut l = Lab::new(mn, ha);
    let all = [
        SaClass::BuBa,
        SaClass::MpsMpa,
        SaClass::HotiHot,
        SaClass::Payload,
    ];
    l.initiate(HomeAddress::Static(HOA1), &all);
    assert!(l.establish(4));
    l.run_now();
    let any = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX));
    let one = |a: Ipv6Addr| (a, a);
    let ty = |t: u16| (t << 8, (t << 8) | 0xff);
    // (class, mode, [(proto, ports, addrs)] of TSi, same of TSr), seen from the MN.
    type Ts = (u8, (u16, u16), (Ipv6Addr, Ipv6Addr));
    let expect: Vec<(SaClass, Mode, Vec<Ts>, Vec<Ts>)> = vec![
        (
            SaClass::BuBa,
            Mode::Transport,
            vec![(IPPROTO_MH, (0, 0xffff), one(HOA1))],
            vec![(IPPROTO_MH, (0, 0xffff), one(HA_IP))],
        ),
        (
            SaClass::MpsMpa,
            Mode::Transport,
            vec![(IPPROTO_ICMPV6, (146 << 8, (147 << 8) | 0xff), one(HOA1))],
            vec![(IPPROTO_ICMPV6, (146 << 8, (147 << 8) | 0xff), one(HA_IP))],
        ),
        (
            SaClass::HotiHot,
            Mode::Tunnel,
            vec![
                (IPPROTO_MH, ty(1), one(HOA1)),
                (IPPROTO_MH, ty(3), one(HOA1)),
            ],
            vec![(IPPROTO_MH, ty(1), any), (IPPROTO_MH, ty(3), any)],
        ),
        (
            SaClass::Payload,
            Mode::Tunnel,
            vec![(0, (0, 0xffff), one(HOA1))],
            vec![(0, (0, 0xffff), any)],
        ),
    ];
    let flat = |v: &[mip6_ike::wire::TrafficSelector]| -> Vec<Ts> {
        v.iter()
            .map(|t| {
                let a = |x: IpAddr| match x {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(_) => panic!("IPv4 selector"),
                };
                (
                    t.ip_protocol,
                    (t.start_port, t.end_port),
                    (a(t.start_addr), a(t.end_addr)),
                )
            })
            .collect()
    };
    let coa = l.mn.addr.ip();
    let (mn, ha) = (&l.mn.ep.list()[0], &l.ha.ep.list()[0]);
    for (class, mode, tsi, tsr) in expect {
        let (to_ha, to_mn) = reqids
            .iter()
            .find(|r| r.0 == class)
            .map(|r| (r.1, r.2))
            .unwrap();
        let m = mn.children.iter().find(|c| c.class == Some(class)).unwrap();
        let h = ha.children.iter().find(|c| c.class == Some(class)).unwrap();
        assert_eq!((m.mode, h.mode), (mode, mode), "{class:?}");
        assert_eq!(flat(&m.ts_local), tsi, "{class:?} MN TSi");
        assert_eq!(flat(&m.ts_remote), tsr, "{class:?} MN TSr");
        assert_eq!(flat(&h.ts_remote), tsi, "{class:?} HA sees TSi");
        assert_eq!(flat(&h.ts_local), tsr, "{class:?} HA sees TSr");
        assert_eq!(
            (m.reqid_out, m.reqid_in),
            (to_ha, to_mn),
            "{class:?} MN reqids"
        );
        assert_eq!(
            (h.reqid_out, h.reqid_in),
            (to_mn, to_ha),
            "{class:?} HA reqids"
        );
        let out = l.mn.kernel.get(m.remote, m.spi_out).unwrap();
        let (src, dst) = match mode {
            // RFC 4877 transport SAs run HoA <-> HA; tunnel SAs CoA <-> HA.
            Mode::Transport => (ip(HOA1), ip(HA_IP)),
            Mode::Tunnel => (coa, ip(HA_IP)),
        };
        assert_eq!(
            (out.src, out.dst, out.reqid),
            (src, dst, to_ha),
            "{class:?}"
        );
        if class == SaClass::HotiHot {
            // mip6d's encoding: the MH type in sport, mask 0xffff; HoTI and HoT each.
            let types: Vec<_> = out.selectors.iter().map(|s| (s.proto, s.sport)).collect();
            assert_eq!(
                types,
                vec![(IPPROTO_MH, (1, 0xffff)), (IPPROTO_MH, (3, 0xffff))]
            );
        }
    }
}

#[test]
fn the_home_agent_answers_a_moved_mn_but_moves_only_on_its_own_migrate() {
    let mut l = moving_pair(|_| {});
    let old_remote = l.ha.ep.list()[0].remote;
    let old = mn_coa(&l);
    let new = v6("2001:db8:3::100");
    // The MN moves first (mip6d migrates before its BU) and talks from the new CoA.
    mn_moves(&mut l, HOA1, old, new);
    start_payload_rekey(&mut l);
    l.run_now();
    // Answered at the new address (RFC 7296 2.11), yet the HA's record is unchanged.
    assert!(
        l.mn.events
            .iter()
            .filter(|e| matches!(e, Event::ChildUp(_)))
            .count()
            >= 3
    );
    assert_eq!(l.ha.ep.list()[0].remote, old_remote);
    assert_eq!(migrated(&l.ha), 0);
    // Its own MIGRATE moves it.
    kernel_ha(&mut l, ha_migrates(HOA1, old, new));
    assert_eq!(l.ha.ep.list()[0].remote, SocketAddr::new(ip(new), MN_PORT));
    assert_eq!(migrated(&l.ha), 1);
}
