//! IPv4 care-of addresses and NAT traversal (RFC 7296 2.23, RFC 3948) in the engine: a mobile
//! node with an IPv4 care-of address talks to a home agent over IPv4 while the selectors stay
//! IPv6 (HoA, HA), directly or through a simulated NAT (address and port translation of the
//! MN's datagrams, as nftables masquerade does). What is checked is what the engine emits:
//! where its datagrams go, the kernel operations (UDP encapsulation in the SAs, new ports when
//! the NAT's mapping changes) and its timers (keepalives).

mod common;
use common::*;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mip6_ike::ike::{Command, HomeAddress, IkeSaInfo, NAT_KEEPALIVE, Now, Transmit};
use mip6_ike::kernel::{Direction, Encap, KernelEvent, KernelOp, Migrate, Mode, SaSpec, Selector};
use mip6_ike::mobility::SaClass;

const MN_PRIV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const NAT_PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
const HA_PUB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const HA_PRIV: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

fn sa4(a: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(a), port)
}

/// Where a NAT sits, if anywhere.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nat {
    None,
    /// Before the MN: its source (MN_PRIV, port) becomes (NAT_PUB, mapped port).
    BeforeMn,
    /// Before the HA: HA_PUB:500/4500 is forwarded to HA_PRIV (the HA is behind the NAT).
    BeforeHa,
}

/// A mobile node (IPv4 care-of address) and a home agent with a NAT between them.
struct Net {
    mn: Side,
    ha: Side,
    now: Now,
    nat: Nat,
    /// MN port -> public port (BeforeMn).
    map: HashMap<u16, u16>,
    /// Datagrams in flight, as the sender emitted them: (to_ha, datagram).
    wire: Vec<(bool, Transmit)>,
    /// Every datagram sent, as emitted.
    sent: Vec<(bool, Transmit)>,
}

impl Net {
    fn new(nat: Nat) -> Net {
        let mut lab = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
        let mn_addr = sa4(MN_PRIV, 500);
        let ha_addr = match nat {
            Nat::BeforeHa => sa4(HA_PRIV, 500),
            _ => sa4(HA_PUB, 500),
        };
        lab.mn.addr = mn_addr;
        lab.ha.addr = ha_addr;
        let map = HashMap::from([(500, 40500), (4500, 44500)]);
        let (mn, ha, now) = (lab.mn, lab.ha, lab.now);
        Net {
            mn,
            ha,
            now,
            nat,
            map,
            wire: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn mn_of(&self) -> &Side {
        &self.mn
    }

    fn initiate(&mut self) {
        let cmd = Command::Initiate {
            local: sa4(MN_PRIV, 500),
            remote: sa4(HA_PUB, 500),
            home_agent: HA_IP,
            home_address: HomeAddress::Static(HOA1),
            classes: vec![SaClass::BuBa, SaClass::Payload],
            remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
        };
        self.mn.ep.handle_command(self.now, cmd).unwrap();
        self.collect();
    }

    fn collect(&mut self) {
        for t in self.mn.drain() {
            self.sent.push((true, t.clone()));
            self.wire.push((true, t));
        }
        for t in self.ha.drain() {
            self.sent.push((false, t.clone()));
            self.wire.push((false, t));
        }
    }

    /// The MN's datagram as the HA receives it: (HA local, HA remote).
    fn to_ha(&self, t: &Transmit) -> (SocketAddr, SocketAddr) {
        match self.nat {
            Nat::None => (t.remote, t.local),
            Nat::BeforeMn => {
                let port = self.map[&t.local.port()];
                (t.remote, sa4(NAT_PUB, port))
            }
            Nat::BeforeHa => {
                assert_eq!(t.remote.ip(), IpAddr::V4(HA_PUB), "{t:?}");
                (sa4(HA_PRIV, t.remote.port()), t.local)
            }
        }
    }

    /// The HA's datagram as the MN receives it: (MN local, MN remote); None: the NAT has no
    /// mapping for it and drops it.
    fn to_mn(&self, t: &Transmit) -> Option<(SocketAddr, SocketAddr)> {
        match self.nat {
            Nat::None => Some((t.remote, t.local)),
            Nat::BeforeMn => {
                if t.remote.ip() != IpAddr::V4(NAT_PUB) {
                    return None;
                }
                let (&mn_port, _) = self.map.iter().find(|(_, p)| **p == t.remote.port())?;
                Some((sa4(MN_PRIV, mn_port), t.local))
            }
            Nat::BeforeHa => Some((t.remote, sa4(HA_PUB, t.local.port()))),
        }
    }

    fn deliver(&mut self, to_ha: bool, t: &Transmit) {
        if to_ha {
            let (local, remote) = self.to_ha(t);
            self.ha.ep.handle_datagram(self.now, local, remote, &t.data);
        } else if let Some((local, remote)) = self.to_mn(t) {
            self.mn.ep.handle_datagram(self.now, local, remote, &t.data);
        }
        self.collect();
    }

    fn run_now(&mut self) {
        while !self.wire.is_empty() {
            let (to_ha, t) = self.wire.remove(0);
            self.deliver(to_ha, &t);
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = Now {
            at: self.now.at + d,
            unix: self.now.unix + d.as_secs(),
        };
        self.mn.ep.handle_timeout(self.now);
        self.ha.ep.handle_timeout(self.now);
        self.collect();
    }

    fn establish(&mut self) {
        self.initiate();
        for _ in 0..50 {
            self.run_now();
            if self.mn.child_ups() >= 2 && self.ha.child_ups() >= 2 {
                return;
            }
            self.advance(Duration::from_millis(100));
        }
        panic!(
            "not established: MN events {:?}, HA events {:?}",
            self.mn.events, self.ha.events
        );
    }
}

fn only(s: &Side) -> IkeSaInfo {
    let l = s.ep.list();
    assert_eq!(l.len(), 1, "{l:?}");
    l[0].clone()
}

fn adds(s: &Side) -> Vec<SaSpec> {
    s.ops
        .iter()
        .filter_map(|o| match o {
            KernelOp::AddSa(spec) => Some(spec.clone()),
            _ => None,
        })
        .collect()
}

fn keepalives(sent: &[(bool, Transmit)], from_mn: bool) -> Vec<Transmit> {
    sent.iter()
        .filter(|(m, t)| *m == from_mn && t.data == NAT_KEEPALIVE)
        .map(|(_, t)| t.clone())
        .collect()
}

/// IPv4 outer addresses without NAT: the tunnel SAs run between the IPv4 addresses with IPv6
/// selectors (HoA <-> ::/0), the transport SAs between HoA and HA; nobody floats (IKE stays
/// on 500), no SA is UDP-encapsulated, nobody sends keepalives.
#[test]
fn ipv4_care_of_address_without_nat_no_float_no_encap() {
    let mut n = Net::new(Nat::None);
    n.establish();
    let mn = only(&n.mn);
    assert_eq!((mn.local, mn.remote), (sa4(MN_PRIV, 500), sa4(HA_PUB, 500)));
    let ha = only(&n.ha);
    assert_eq!((ha.local, ha.remote), (sa4(HA_PUB, 500), sa4(MN_PRIV, 500)));
    assert_eq!(
        (n.mn.ep.stats.nat_detected, n.ha.ep.stats.nat_detected),
        (0, 0)
    );
    for side in [&n.mn, &n.ha] {
        let specs = adds(side);
        assert_eq!(specs.len(), 4);
        for s in &specs {
            assert_eq!(s.encap, None, "{s:?}");
            match s.mode {
                Mode::Tunnel => {
                    assert!(s.src.is_ipv4() && s.dst.is_ipv4(), "{s:?}");
                    assert!(s.selectors.iter().all(|x| x.src.is_ipv6()), "{s:?}");
                    assert!(mip6_ike::kernel::xfrm::msg::cross_family(s));
                }
                Mode::Transport => assert!(s.src.is_ipv6() && s.dst.is_ipv6(), "{s:?}"),
            }
        }
    }
    n.advance(Duration::from_secs(61));
    n.run_now();
    assert!(keepalives(&n.sent, true).is_empty() && keepalives(&n.sent, false).is_empty());
    assert!(n.sent.iter().all(|(_, t)| t.local.port() == 500));
}

fn encap(sport: u16, dport: u16) -> Option<Encap> {
    Some(Encap { sport, dport })
}

/// The MN behind a NAT (masquerade): both see the NAT in IKE_SA_INIT; the MN moves to 4500
/// before IKE_AUTH, the HA follows the NAT's mapping of that port, and every SA on both sides
/// is ESP in UDP between exactly the ports the IKE SA uses (the sender's first).
#[test]
fn nat_before_the_mn_floats_and_encapsulates() {
    let mut n = Net::new(Nat::BeforeMn);
    n.establish();
    assert_eq!(
        (n.mn.ep.stats.nat_detected, n.ha.ep.stats.nat_detected),
        (1, 1)
    );
    // Only IKE_SA_INIT used port 500.
    let from_mn: Vec<&Transmit> = n.sent.iter().filter(|(m, _)| *m).map(|(_, t)| t).collect();
    assert_eq!(from_mn[0].local.port(), 500);
    assert!(
        from_mn[1..]
            .iter()
            .all(|t| t.local.port() == 4500 && t.remote.port() == 4500)
    );
    let mn = only(&n.mn);
    assert_eq!(
        (mn.local, mn.remote),
        (sa4(MN_PRIV, 4500), sa4(HA_PUB, 4500))
    );
    let ha = only(&n.ha);
    assert_eq!(
        (ha.local, ha.remote),
        (sa4(HA_PUB, 4500), sa4(NAT_PUB, 44500))
    );
    for s in adds(&n.mn) {
        assert_eq!(s.encap, encap(4500, 4500), "{s:?}");
    }
    for s in adds(&n.ha) {
        let want = match s.direction {
            Direction::Out => encap(4500, 44500),
            Direction::In => encap(44500, 4500),
        };
        assert_eq!(s.encap, want, "{s:?}");
    }
    // The tunnel SAs' outer addresses: the HA sees the NAT's address.
    let tun = adds(&n.ha)
        .into_iter()
        .find(|s| s.mode == Mode::Tunnel && s.direction == Direction::Out)
        .unwrap();
    assert_eq!(
        (tun.src, tun.dst),
        (IpAddr::V4(HA_PUB), IpAddr::V4(NAT_PUB))
    );
    assert_eq!(adds(&n.ha).len(), 4);
}

/// Keepalives (RFC 3948 2.3) come from the side behind the NAT only, one 0xFF byte on the
/// NAT-T ports every `nat_keepalive` (20 s by default), as the engine's timer says.
#[test]
fn keepalives_from_the_side_behind_the_nat_on_the_engines_timer() {
    let mut n = Net::new(Nat::BeforeMn);
    n.establish();
    let t0 = n.now.at;
    assert!(keepalives(&n.sent, true).is_empty());
    // The MN's next deadline is no later than its keepalive.
    let due = n.mn.ep.next_deadline().unwrap();
    assert!(due <= t0 + Duration::from_secs(20), "{:?}", due - t0);
    n.advance(Duration::from_secs(19));
    assert!(keepalives(&n.sent, true).is_empty(), "none before 20 s");
    n.advance(Duration::from_secs(1));
    let k = keepalives(&n.sent, true);
    assert_eq!(k.len(), 1);
    assert_eq!(
        (k[0].local, k[0].remote),
        (sa4(MN_PRIV, 4500), sa4(HA_PUB, 4500))
    );
    n.run_now();
    // 20 s later the next one; the HA (not behind a NAT) never sends any.
    n.advance(Duration::from_secs(20));
    n.run_now();
    assert_eq!(keepalives(&n.sent, true).len(), 2);
    assert!(keepalives(&n.sent, false).is_empty());
    // A keepalive reaching the HA as a datagram changes nothing there.
    let before = only(&n.ha);
    n.ha.ep.handle_datagram(
        n.now,
        sa4(HA_PUB, 4500),
        sa4(NAT_PUB, 44500),
        &NAT_KEEPALIVE,
    );
    assert_eq!(only(&n.ha).remote, before.remote);
}

/// `nat_keepalive = 0`: no keepalives at all (the float and the encapsulation stay).
#[test]
fn keepalives_can_be_turned_off() {
    let mut n = Net::new(Nat::BeforeMn);
    let mut cfg = mn1();
    cfg.mobility.nat_keepalive = Duration::ZERO;
    n.mn = Side::new(cfg, "10.0.0.2:500", 1, n.now);
    n.establish();
    n.advance(Duration::from_secs(61));
    n.run_now();
    assert!(keepalives(&n.sent, true).is_empty());
    assert_eq!(only(&n.mn).local.port(), 4500);
    assert!(adds(&n.mn).iter().all(|s| s.encap.is_some()));
}

/// The HA behind a NAT (port forwarding to a private address): the MN sees the HA's address
/// changed, floats and encapsulates; the HA, behind the NAT, sends the keepalives.
#[test]
fn nat_before_the_ha_is_detected_on_both_sides() {
    let mut n = Net::new(Nat::BeforeHa);
    n.establish();
    assert_eq!(
        (n.mn.ep.stats.nat_detected, n.ha.ep.stats.nat_detected),
        (1, 1)
    );
    assert_eq!(only(&n.mn).local.port(), 4500);
    assert_eq!(only(&n.ha).remote, sa4(MN_PRIV, 4500));
    assert!(
        adds(&n.mn)
            .iter()
            .all(|s| s.encap == encap(4500, 4500) || s.encap.is_none())
    );
    assert!(adds(&n.mn).iter().all(|s| s.encap.is_some()));
    assert!(adds(&n.ha).iter().all(|s| s.encap == encap(4500, 4500)));
    n.advance(Duration::from_secs(20));
    assert_eq!(keepalives(&n.sent, false).len(), 1);
    assert!(keepalives(&n.sent, true).is_empty());
}

/// The attacker's test: a datagram that claims to come from another port of the NAT (forged:
/// bad ICV; or a replay of a genuine message) moves nothing: no new port for the IKE SA, no
/// encapsulation change in the kernel. The NAT's real new mapping, seen on the next
/// authenticated message, does move it, and the SAs' ports follow (same SPIs).
#[test]
fn only_authenticated_messages_change_the_peers_port() {
    let mut n = Net::new(Nat::BeforeMn);
    n.establish();
    let ike = only(&n.mn).id;
    // A genuine new request of the MN (a CHILD_SA rekey), held back.
    let spi = only(&n.mn).children[0].spi_in;
    n.mn.ep
        .handle_command(n.now, Command::RekeyChild { ike, spi_in: spi })
        .unwrap();
    n.collect();
    let (_, genuine) = n.wire.remove(0);
    let ops_before = n.ha.ops.len();
    let from_port = |p: u16| sa4(NAT_PUB, p);
    // 1. forged: the bytes with a broken ICV, from another port
    let mut forged = genuine.data.clone();
    *forged.last_mut().unwrap() ^= 1;
    n.ha.ep
        .handle_datagram(n.now, sa4(HA_PUB, 4500), from_port(50000), &forged);
    n.collect();
    assert_eq!(only(&n.ha).remote, from_port(44500));
    // 2. the genuine request from its real port: processed, nothing moves
    n.wire.clear();
    n.deliver(true, &genuine);
    assert_eq!(only(&n.ha).remote, from_port(44500));
    // 3. replayed from another port: a retransmission, answered, but it moves nothing
    n.wire.clear();
    n.ha.ep
        .handle_datagram(n.now, sa4(HA_PUB, 4500), from_port(50001), &genuine.data);
    n.collect();
    assert_eq!(only(&n.ha).remote, from_port(44500));
    assert!(
        !n.ha.ops[ops_before..]
            .iter()
            .any(|o| matches!(o, KernelOp::UpdateSaEncap { .. })),
        "{:?}",
        &n.ha.ops[ops_before..]
    );
    n.wire.clear();
    n.run_now();
    // 5. the NAT's mapping of 4500 changes; the MN's next request (liveness) is authentic
    n.map.insert(4500, 45000);
    let ops_before = n.ha.ops.len();
    let liveness = n.mn.ep.config().timers.liveness_interval;
    n.advance(liveness + Duration::from_secs(1));
    n.run_now();
    assert_eq!(only(&n.ha).remote, from_port(45000));
    let updates: Vec<&KernelOp> = n.ha.ops[ops_before..]
        .iter()
        .filter(|o| matches!(o, KernelOp::UpdateSaEncap { .. }))
        .collect();
    // both directions of every CHILD_SA (the rekeyed one too, until its Delete), with the new
    // port on the NAT's side
    let ha_now = only(&n.ha);
    assert_eq!(ha_now.children.len(), 2);
    for c in &ha_now.children {
        for spi in [c.spi_in, c.spi_out] {
            assert!(
                updates
                    .iter()
                    .any(|o| matches!(o, KernelOp::UpdateSaEncap { spi: s, .. } if *s == spi)),
                "{spi:08x} not updated: {updates:?}"
            );
        }
    }
    for o in updates {
        let KernelOp::UpdateSaEncap { dst, encap: e, .. } = o else {
            unreachable!()
        };
        if *dst == IpAddr::V4(NAT_PUB) || *dst == IpAddr::V6(HOA1) {
            assert_eq!(
                *e,
                Encap {
                    sport: 4500,
                    dport: 45000
                }
            );
        } else {
            assert_eq!(
                *e,
                Encap {
                    sport: 45000,
                    dport: 4500
                }
            );
        }
    }
    assert!(n.ha.kernel_errors.is_empty(), "{:?}", n.ha.kernel_errors);
    // the HA's answers now go to the new port (the MN still gets them)
    let last = n.sent.iter().rev().find(|(m, _)| !*m).unwrap();
    assert_eq!(last.1.remote, from_port(45000));
    assert_eq!(n.mn_of().ep.list().len(), 1);
}

fn payload_selector() -> Selector {
    Selector::new(
        IpAddr::V6(HOA1),
        128,
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        0,
        0,
    )
}

fn migrate(km_local: IpAddr, km_remote: IpAddr, old: (IpAddr, IpAddr)) -> KernelEvent {
    KernelEvent::Migrate(Migrate {
        selector: payload_selector(),
        direction: Direction::Out,
        reqid: 3,
        old_src: old.0,
        old_dst: old.1,
        new_src: km_local,
        new_dst: km_remote,
        km_local: Some(km_local),
        km_remote: Some(km_remote),
    })
}

/// Mobility with IPv4 care-of addresses (K bit): a MIGRATE with an IPv4 KMADDRESS moves the
/// IKE SA to the new IPv4 care-of address and the tunnel SAs with it; MIGRATEs that would
/// change the family (an IPv6 KMADDRESS for an IPv4 IKE SA, and back) are ignored without
/// touching anything, and a later IPv4 move still works.
#[test]
fn ipv4_kmaddress_moves_and_cross_family_moves_are_ignored() {
    let mut n = Net::new(Nat::None);
    n.establish();
    let (coa1, ha4) = (IpAddr::V4(MN_PRIV), IpAddr::V4(HA_PUB));
    let coa2 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    let before = only(&n.mn);
    // to an IPv6 care-of address: the HA's IKE address would have to change family too
    let v6coa: IpAddr = "2001:db8:2::100".parse().unwrap();
    let ha6 = IpAddr::V6(HA_IP);
    n.mn.ep
        .handle_kernel(n.now, migrate(v6coa, ha6, (coa1, ha4)));
    n.mn.ep
        .handle_kernel(n.now, migrate(v6coa, ha4, (coa1, ha4)));
    n.collect();
    let after = only(&n.mn);
    assert_eq!((after.local, after.remote), (before.local, before.remote));
    assert_eq!(n.mn.ep.stats.migrations, 0);
    // to another IPv4 care-of address: followed (ports kept), tunnel SAs moved in the record
    n.mn.ep
        .handle_kernel(n.now, migrate(coa2, ha4, (coa1, ha4)));
    n.collect();
    let moved = only(&n.mn);
    assert_eq!(
        (moved.local, moved.remote),
        (SocketAddr::new(coa2, 500), before.remote)
    );
    assert_eq!(n.mn.ep.stats.migrations, 1);
    let tun = moved
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .unwrap();
    assert_eq!((tun.local, tun.remote), (coa2, ha4));
    let bu = moved
        .children
        .iter()
        .find(|c| c.mode == Mode::Transport)
        .unwrap();
    assert_eq!((bu.local, bu.remote), (IpAddr::V6(HOA1), ha6));
    // the HA: an IPv4 KMADDRESS naming the new care-of address follows as well
    let ha_before = only(&n.ha);
    n.ha.ep
        .handle_kernel(n.now, migrate(ha4, coa2, (ha4, coa1)));
    n.collect();
    let ha_after = only(&n.ha);
    assert_eq!(ha_after.remote, SocketAddr::new(coa2, 500));
    assert_eq!(ha_after.local, ha_before.local);
}
