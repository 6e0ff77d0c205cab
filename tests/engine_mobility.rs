//! What a real mip6d and a strongSwan home agent do to the engine beyond plain K-bit moves:
//! MIGRATEs while an IKE SA is still being negotiated, initiation from mip6d's latest
//! KMADDRESS, the home agent reauthenticating (RFC 7296 2.8.3) and a peer floating to UDP 4500
//! (RFC 7296 2.23), plus the attacks each of those must not open.
//!
//! Nodes here own sets of addresses, and datagrams are routed by destination address (an
//! address a node gave up loses what is sent to it), so moves are visible on the wire.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mip6_ike::auth::Identity;
use mip6_ike::crypto::TestRng;
use mip6_ike::ike::{Command, Config, Endpoint, Event, HomeAddress, IkeId, Now, Transmit};
use mip6_ike::kernel::{
    Direction, Kernel, KernelEvent, KernelOp, Migrate, Mode, Selector, SpiAllocator, SpiRequest,
    memory::MemoryKernel,
};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];
const ANY: Ipv6Addr = Ipv6Addr::UNSPECIFIED;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ip(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}
fn at(a: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(ip(a), port)
}

fn coa1() -> Ipv6Addr {
    v6("2001:db8:2::100")
}
fn coa2() -> Ipv6Addr {
    v6("2001:db8:3::100")
}
/// mip6d's transient home-link address at start-up (SLAAC).
fn slaac() -> Ipv6Addr {
    v6("2001:db8:1::ff:fe00:102")
}

struct Node {
    ep: Endpoint,
    ips: Vec<IpAddr>,
    kernel: MemoryKernel,
    events: Vec<Event>,
    kernel_errors: Vec<String>,
    /// Every kernel operation the engine emitted.
    ops: Vec<KernelOp>,
}

impl Node {
    fn child_ups(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::ChildUp(_)))
            .count()
    }
    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

/// Nodes that talk by passing buffers, routed by destination address; simulated time.
struct Net {
    nodes: Vec<Node>,
    start: Instant,
    now: Now,
    /// In flight: (sender, datagram).
    wire: Vec<(usize, Transmit)>,
    /// Everything ever sent, in order.
    sent: Vec<(usize, Transmit)>,
}

const MN: usize = 0;
const HA: usize = 1;

impl Net {
    fn new() -> Net {
        let start = Instant::now();
        Net {
            nodes: Vec::new(),
            start,
            now: Now {
                at: start,
                unix: 1_800_000_000,
            },
            wire: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// mn1 (node 0) with `mn_ips` and the standard home agent (node 1) at HA_IP.
    fn pair(mn_ips: &[Ipv6Addr]) -> Net {
        Net::pair_with(mn1(), mn_ips)
    }

    fn pair_with(mn: Config, mn_ips: &[Ipv6Addr]) -> Net {
        let mut n = Net::new();
        n.add(mn, mn_ips, 1);
        n.add(ha_config(AuthKind::Ecdsa, IKE, ESP), &[HA_IP], 2);
        n
    }

    fn add(&mut self, cfg: Config, ips: &[Ipv6Addr], seed: u64) -> usize {
        self.nodes.push(Node {
            ep: Endpoint::new(Arc::new(cfg), Box::new(TestRng::new(seed)), self.now),
            ips: ips.iter().map(|a| ip(*a)).collect(),
            kernel: MemoryKernel::new(),
            events: Vec::new(),
            kernel_errors: Vec::new(),
            ops: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn collect(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(op) = n.ep.poll_kernel_op() {
                if let Err(e) = n.kernel.apply(&op) {
                    n.kernel_errors.push(e);
                }
                n.ops.push(op);
            }
            while let Some(e) = n.ep.poll_event() {
                n.events.push(e);
            }
            while let Some(t) = n.ep.poll_transmit() {
                self.wire.push((i, t.clone()));
                self.sent.push((i, t));
            }
        }
    }

    fn command(&mut self, node: usize, cmd: Command) -> IkeId {
        let id = self.nodes[node].ep.handle_command(self.now, cmd).unwrap();
        self.collect();
        id
    }

    fn kernel(&mut self, node: usize, evs: Vec<KernelEvent>) {
        for e in evs {
            self.nodes[node].ep.handle_kernel(self.now, e);
        }
        self.collect();
    }

    /// The node a datagram reaches: the one owning its destination address; when several do
    /// (a second home agent engine at the HA's address), the one that knows the SPI.
    fn route(&self, t: &Transmit) -> Option<usize> {
        let owners: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].ips.contains(&t.remote.ip()))
            .collect();
        if owners.len() <= 1 {
            return owners.first().copied();
        }
        let h = Header::peek(&t.data).ok()?;
        let receiver_spi = if h.is_initiator() { h.spi_r } else { h.spi_i };
        owners
            .iter()
            .copied()
            .find(|&i| self.nodes[i].ep.get(IkeId(receiver_spi)).is_some())
    }

    fn deliver(&mut self, t: &Transmit) {
        if let Some(i) = self.route(t) {
            self.nodes[i]
                .ep
                .handle_datagram(self.now, t.remote, t.local, &t.data);
        }
        self.collect();
    }

    /// Delivers (through `edit`, which may rewrite or drop a datagram) until `until` holds,
    /// letting simulated time pass when nothing is in flight (at most 600 s).
    fn run(
        &mut self,
        until: impl Fn(&Net) -> bool,
        mut edit: impl FnMut(usize, Transmit) -> Option<Transmit>,
    ) -> bool {
        for _ in 0..100_000 {
            if until(self) {
                return true;
            }
            if self.wire.is_empty() {
                let next = self.nodes.iter().filter_map(|n| n.ep.next_deadline()).min();
                match next {
                    Some(t) if t <= self.start + Duration::from_secs(600) => self.advance_to(t),
                    _ => return until(self),
                }
                continue;
            }
            let (from, t) = self.wire.remove(0);
            if let Some(t) = edit(from, t) {
                self.deliver(&t);
            }
        }
        false
    }

    /// Delivers the next `k` datagrams in flight.
    fn run_now_n(&mut self, k: usize) {
        for _ in 0..k {
            let (_, t) = self.wire.remove(0);
            self.deliver(&t);
        }
    }

    /// Delivers what is in flight (and what that causes) without letting time pass.
    fn run_now(&mut self) {
        while !self.wire.is_empty() {
            let (_, t) = self.wire.remove(0);
            self.deliver(&t);
        }
    }

    fn advance_to(&mut self, t: Instant) {
        let secs = t.saturating_duration_since(self.now.at).as_secs();
        self.now = Now {
            at: t.max(self.now.at),
            unix: self.now.unix + secs,
        };
        for n in &mut self.nodes {
            n.ep.handle_timeout(self.now);
        }
        self.collect();
    }

    /// Both ends have one established IKE SA with `children` CHILD_SAs each.
    fn up(&self, children: usize) -> bool {
        [MN, HA].iter().all(|&i| {
            let l = self.nodes[i].ep.list();
            l.len() == 1 && l[0].state == "established" && l[0].children.len() == children
        })
    }

    fn sent_by(&self, node: usize, since: usize) -> Vec<&Transmit> {
        self.sent[since..]
            .iter()
            .filter(|(f, _)| *f == node)
            .map(|(_, t)| t)
            .collect()
    }
}

fn header(t: &Transmit) -> Header {
    Header::peek(&t.data).unwrap()
}

fn is_init_request(t: &Transmit) -> bool {
    let h = header(t);
    h.exchange == IKE_SA_INIT && !h.is_response()
}

/// The mobile node's Initiate for HOA1 from `local` to the standard home agent.
fn initiate(local: SocketAddr) -> Command {
    Command::Initiate {
        local,
        remote: at(HA_IP, 500),
        home_agent: HA_IP,
        home_address: HomeAddress::Static(HOA1),
        classes: BU_PAYLOAD.to_vec(),
        remote_identity: Some(Identity::parse_config(HA_DN).unwrap()),
    }
}

/// The 4 MIGRATEs mip6d sends on the MN before its BU (Mh and TunnelPayload, both
/// directions), all with KMADDRESS `new` > HA.
fn mn_migrates(hoa: Ipv6Addr, old: Ipv6Addr, new: Ipv6Addr) -> Vec<KernelEvent> {
    let m = |selector: Selector,
             direction,
             reqid,
             old: (Ipv6Addr, Ipv6Addr),
             new: (Ipv6Addr, Ipv6Addr)| {
        KernelEvent::Migrate(Migrate {
            selector,
            direction,
            reqid,
            old_src: ip(old.0),
            old_dst: ip(old.1),
            new_src: ip(new.0),
            new_dst: ip(new.1),
            km_local: Some(ip(new_coa(new))),
            km_remote: Some(ip(HA_IP)),
        })
    };
    // The KMADDRESS local end is the new care-of address of the tunnel entries.
    fn new_coa(pair: (Ipv6Addr, Ipv6Addr)) -> Ipv6Addr {
        if pair.0 == HA_IP { pair.1 } else { pair.0 }
    }
    let sel = |src: Ipv6Addr, sp, dst: Ipv6Addr, dp, proto| {
        Selector::new(ip(src), sp, ip(dst), dp, proto)
    };
    vec![
        m(
            sel(hoa, 128, HA_IP, 128, IPPROTO_MH),
            Direction::Out,
            1,
            (ANY, ANY),
            (new, HA_IP),
        ),
        m(
            sel(HA_IP, 128, hoa, 128, IPPROTO_MH),
            Direction::In,
            2,
            (ANY, ANY),
            (HA_IP, new),
        ),
        m(
            sel(hoa, 128, ANY, 0, 0),
            Direction::Out,
            3,
            (old, HA_IP),
            (new, HA_IP),
        ),
        m(
            sel(ANY, 0, hoa, 128, 0),
            Direction::In,
            4,
            (HA_IP, old),
            (HA_IP, new),
        ),
    ]
}

// ---- 1. MIGRATE while the IKE SA is being negotiated ----

#[test]
fn migrate_during_ike_sa_init_restarts_once_from_the_new_address() {
    let mut n = Net::pair(&[coa1(), coa2()]);
    let first = n.command(MN, initiate(at(coa1(), 500)));
    // The IKE_SA_INIT is lost with the old link; mip6d moves us (4 MIGRATEs, one move).
    n.wire.clear();
    n.nodes[MN].ips.retain(|a| *a != ip(coa1()));
    let since = n.sent.len();
    n.kernel(MN, mn_migrates(HOA1, coa1(), coa2()));
    let sent = n.sent_by(MN, since);
    let inits: Vec<_> = sent.iter().filter(|t| is_init_request(t)).collect();
    assert_eq!(inits.len(), 1, "one restart for 4 MIGRATEs: {sent:?}");
    assert_eq!(inits[0].local, at(coa2(), 500));
    assert_eq!(n.nodes[MN].ep.ike_sa_count(), 1);
    let new = n.nodes[MN].ep.list()[0].id;
    assert_ne!(new, first);
    assert_eq!(
        n.nodes[MN].count(
            |e| matches!(e, Event::IkeRekeyed { old, new: nw } if *old == first && *nw == new)
        ),
        1,
        "the daemon and `initiate` follow the new attempt"
    );
    assert!(
        n.run(|n| n.up(2), |_, t| Some(t)),
        "{:?}",
        n.nodes[MN].events
    );
    assert_eq!(n.nodes[MN].ep.list()[0].local, at(coa2(), 500));
    assert_eq!(n.nodes[HA].ep.list()[0].remote, at(coa2(), 500));
    assert!(
        n.sent_by(MN, since)
            .iter()
            .all(|t| t.local.ip() == ip(coa2())),
        "nothing leaves from the old address any more"
    );
    // Tunnel SAs run from the new care-of address.
    let payload = n.nodes[MN].ep.list()[0]
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .cloned()
        .unwrap();
    assert_eq!(payload.local, ip(coa2()));
}

#[test]
fn migrate_during_ike_auth_restarts_and_deletes_what_the_home_agent_completed() {
    let mut n = Net::pair(&[coa1(), coa2()]);
    let first = n.command(MN, initiate(at(coa1(), 500)));
    // IKE_SA_INIT both ways, then our IKE_AUTH reaches the home agent, which completes the
    // IKE SA; its answer is lost because we moved meanwhile.
    n.run_now_n(2);
    let auth = n.wire.remove(0).1;
    assert_eq!(header(&auth).exchange, IKE_AUTH);
    n.deliver(&auth);
    assert_eq!(n.nodes[HA].ep.list()[0].state, "established");
    n.wire.clear();
    assert_eq!(n.nodes[MN].ep.list()[0].state, "IKE_AUTH sent");
    n.nodes[MN].ips.retain(|a| *a != ip(coa1()));
    let since = n.sent.len();
    n.kernel(MN, mn_migrates(HOA1, coa1(), coa2()));
    let sent = n.sent_by(MN, since);
    assert_eq!(
        sent.iter().filter(|t| is_init_request(t)).count(),
        1,
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|t| header(t).exchange == INFORMATIONAL && t.local.ip() == ip(coa2())),
        "the half-done IKE SA is deleted from the new address"
    );
    assert!(sent.iter().all(|t| t.local.ip() == ip(coa2())));
    assert!(
        n.run(|n| n.up(2), |_, t| Some(t)),
        "{:?}",
        n.nodes[HA].ep.list()
    );
    let ha = &n.nodes[HA];
    assert_eq!(ha.ep.list()[0].remote, at(coa2(), 500));
    assert_eq!(
        ha.count(|e| matches!(e, Event::IkeDown { .. })),
        1,
        "{:?}",
        ha.events
    );
    assert_eq!(ha.kernel.len(), 4, "only the new CHILD_SAs are installed");
    let mn = &n.nodes[MN];
    assert_eq!(
        mn.count(|e| matches!(e, Event::IkeRekeyed { old, .. } if *old == first)),
        1
    );
    assert_eq!(mn.kernel.len(), 4);
}

#[test]
fn a_migrate_for_another_home_address_leaves_the_negotiation_alone() {
    let mut n = Net::pair(&[coa1(), coa2()]);
    let first = n.command(MN, initiate(at(coa1(), 500)));
    n.wire.clear();
    let since = n.sent.len();
    n.kernel(MN, mn_migrates(HOA2, coa1(), coa2()));
    assert!(n.sent_by(MN, since).is_empty());
    let l = n.nodes[MN].ep.list();
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].id, l[0].local), (first, at(coa1(), 500)));
    // Nothing is known about HOA1 itself; a new attempt for it would start where the node
    // last was for any home address at that home agent (one node, one care-of address).
    assert_eq!(
        n.nodes[MN].ep.latest_kmaddress(ip(HA_IP), Some(HOA1)),
        Some(ip(coa2()))
    );
    // A MIGRATE towards another peer does not touch it either.
    let mut other = mn_migrates(HOA1, coa1(), coa2());
    for e in &mut other {
        if let KernelEvent::Migrate(m) = e {
            m.km_remote = Some(ip(v6("2001:db8:9::1")));
        }
    }
    n.kernel(MN, other);
    assert!(n.sent_by(MN, since).is_empty());
    assert_eq!(n.nodes[MN].ep.list()[0].id, first);
}

/// Hands out consecutive SPIs, as the kernel's ALLOCSPI would (each one a larval SA there).
struct Counter(u32);

impl SpiAllocator for Counter {
    fn allocate(&mut self, _req: &SpiRequest) -> Result<u32, String> {
        self.0 += 1;
        Ok(self.0)
    }
}

#[test]
fn a_k_bit_move_during_a_child_sa_rekey_leaves_no_larval_sa_behind() {
    let mut n = Net::pair(&[coa1(), coa2()]);
    n.nodes[MN]
        .ep
        .set_spi_allocator(Box::new(Counter(0x5000_0000)));
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    let sa = n.nodes[MN].ep.list()[0].clone();
    let payload = sa
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .unwrap()
        .clone();
    // The rekey reserves its inbound SPI at the current care-of address; its request is lost
    // with the old link, and mip6d moves us (K bit: the IKE SA follows).
    n.command(
        MN,
        Command::RekeyChild {
            ike: sa.id,
            spi_in: payload.spi_in,
        },
    );
    n.wire.clear();
    n.nodes[MN].ips.retain(|a| *a != ip(coa1()));
    n.kernel(MN, mn_migrates(HOA1, coa1(), coa2()));
    assert_eq!(n.nodes[MN].ep.list()[0].local, at(coa2(), 500));
    let ups = n.nodes[MN].child_ups();
    assert!(n.run(|n| n.nodes[MN].child_ups() > ups, |_, t| Some(t)));
    let new = n.nodes[MN].ep.list()[0]
        .children
        .iter()
        .find(|c| c.mode == Mode::Tunnel)
        .unwrap()
        .clone();
    assert_ne!(new.spi_in, payload.spi_in);
    assert_eq!(
        new.local,
        ip(coa2()),
        "installed at the new care-of address"
    );
    assert!(
        n.nodes[MN]
            .ops
            .iter()
            .any(|op| matches!(op, KernelOp::DelSa { dst, spi }
            if *dst == ip(coa1()) && *spi == new.spi_in)),
        "the larval SA reserved at the old address is deleted"
    );
}

// ---- 2. Initiation from the latest KMADDRESS ----

#[test]
fn initiation_starts_from_the_latest_kmaddress_even_with_a_configured_care_of_address() {
    // mip6d's start-up at home: first a transient home-link address, then the home address.
    let configured = coa1();
    let mut n = Net::pair(&[configured, slaac(), HOA1]);
    n.kernel(MN, mn_migrates(HOA1, HOA1, slaac()));
    assert_eq!(
        n.nodes[MN].ep.latest_kmaddress(ip(HA_IP), Some(HOA1)),
        Some(ip(slaac()))
    );
    // The ACQUIRE of the first BU makes the daemon initiate from its configured address.
    let since = n.sent.len();
    n.command(MN, initiate(at(configured, 500)));
    let sent = n.sent_by(MN, since);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].local,
        at(slaac(), 500),
        "from mip6d's KMADDRESS, port kept"
    );
    // mip6d decides it is at home (KMADDRESS HoA > HA): one restart, from the home address.
    n.wire.clear();
    let since = n.sent.len();
    n.kernel(MN, mn_migrates(HOA1, slaac(), HOA1));
    let inits: Vec<_> = n
        .sent_by(MN, since)
        .into_iter()
        .filter(|t| is_init_request(t))
        .collect();
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].local, at(HOA1, 500));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    assert_eq!(n.nodes[MN].ep.list()[0].local, at(HOA1, 500));
    assert_eq!(n.nodes[HA].ep.list()[0].remote, at(HOA1, 500));
    // A later command-triggered initiation (after the SA went) starts there too.
    let ike = n.nodes[MN].ep.list()[0].id;
    n.command(MN, Command::Terminate { ike });
    n.run_now();
    let since = n.sent.len();
    n.command(MN, initiate(at(configured, 500)));
    assert_eq!(n.sent_by(MN, since)[0].local, at(HOA1, 500));
}

// ---- 3. The home agent reauthenticates ----

/// A home agent's second engine that starts a new IKE SA to the mobile node from the home
/// agent's address with the home agent's credentials, and re-creates the CHILD_SAs in it with
/// its own side in TSi, as a home agent reauthenticating by RFC 7296 2.8.3 does (strongSwan
/// with `reauth_time`). Our engine as a home agent never initiates, so it plays the part with
/// the home agent's identity in the initiator's role.
fn reauthenticating_home_agent(n: &mut Net, mn_at: SocketAddr) -> usize {
    initiator_at_home_agent(n, mn_at, HA_DN, local_auth(AuthKind::Ecdsa, "ha"))
}

/// The same with another identity and credentials.
fn initiator_at_home_agent(
    n: &mut Net,
    mn_at: SocketAddr,
    identity: &str,
    auth: (
        mip6_ike::ike::LocalAuth,
        Option<Arc<mip6_ike::auth::TrustAnchors>>,
    ),
) -> usize {
    let cfg = base_config(identity, auth, IKE, ESP);
    let i = n.add(cfg, &[HA_IP], 3);
    n.command(
        i,
        Command::Initiate {
            local: at(HA_IP, 500),
            remote: mn_at,
            // The initiator's selectors: its own side (the HA) first.
            home_agent: HOA1,
            home_address: HomeAddress::Static(HA_IP),
            classes: BU_PAYLOAD.to_vec(),
            remote_identity: Some(Identity::parse_config(MN1_DN).unwrap()),
        },
    );
    i
}

#[test]
fn the_mobile_node_accepts_its_home_agents_reauthentication() {
    let mut n = Net::pair(&[coa1()]);
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    let old = n.nodes[MN].ep.list()[0].id;
    let ha_old = n.nodes[HA].ep.list()[0].id;
    let reauth = reauthenticating_home_agent(&mut n, at(coa1(), 500));
    assert!(
        n.run(|n| n.nodes[reauth].child_ups() >= 2, |_, t| Some(t)),
        "{:?}",
        n.nodes[MN].events
    );
    // The home agent deletes the old IKE SA (and its CHILD_SAs) once the new one is up.
    n.command(HA, Command::Terminate { ike: ha_old });
    n.run_now();
    let mn = &n.nodes[MN];
    assert_eq!(mn.count(|e| matches!(e, Event::AuthFailed { .. })), 0);
    let l = mn.ep.list();
    assert_eq!(l.len(), 1, "{l:?}");
    let new = &l[0];
    assert_ne!(new.id, old);
    assert!(!new.initiator);
    assert_eq!(new.state, "established");
    assert_eq!(new.peer, Some(Identity::parse_config(HA_DN).unwrap()));
    assert_eq!(new.home_address, Some(HOA1));
    assert_eq!(
        mn.count(|e| matches!(e, Event::IkeUp { ike, .. } if *ike == new.id)),
        1
    );
    assert_eq!(
        mn.count(
            |e| matches!(e, Event::IkeRekeyed { old: o, new: nw } if *o == old && *nw == new.id)
        ),
        1
    );
    assert_eq!(mn.count(|e| matches!(e, Event::IkeDown { .. })), 0);
    // The CHILD_SAs for the home address, each class once, with our reqids.
    for class in BU_PAYLOAD {
        let cs: Vec<_> = new
            .children
            .iter()
            .filter(|c| c.class == Some(*class))
            .collect();
        assert_eq!(cs.len(), 1, "{class:?}: {:?}", new.children);
        let r = mn.ep.config().reqids(*class);
        assert_eq!((cs[0].reqid_in, cs[0].reqid_out), (r.to_mn, r.to_ha));
        assert!(
            cs[0]
                .ts_local
                .iter()
                .all(|t| t.start_addr == ip(HOA1) && t.end_addr == ip(HOA1))
        );
    }
    assert_eq!(new.children.len(), 2);
    assert_eq!(
        mn.kernel.len(),
        4,
        "the old CHILD_SAs went with the old IKE SA"
    );
    assert!(mn.kernel_errors.is_empty(), "{:?}", mn.kernel_errors);
    // The new IKE SA carries the plan: the mobile node rekeys its CHILD_SAs there.
    let spi = new.children[0].spi_in;
    let ike = new.id;
    let ups = mn.child_ups();
    n.command(MN, Command::RekeyChild { ike, spi_in: spi });
    n.run_now();
    assert_eq!(n.nodes[MN].child_ups(), ups + 1);
}

#[test]
fn reauthentication_with_a_pre_shared_key() {
    let mut n = Net::new();
    n.add(mn_config(AuthKind::Psk, "mn1", IKE, ESP), &[coa1()], 1);
    n.add(ha_config(AuthKind::Psk, IKE, ESP), &[HA_IP], 2);
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    let old = n.nodes[MN].ep.list()[0].id;
    let psk = (
        mip6_ike::ike::LocalAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())),
        None,
    );
    let reauth = initiator_at_home_agent(&mut n, at(coa1(), 500), HA_DN, psk);
    assert!(n.run(|n| n.nodes[reauth].child_ups() >= 2, |_, t| Some(t)));
    let l = n.nodes[MN].ep.list();
    let new = l.iter().find(|s| s.id != old).unwrap();
    assert_eq!((new.state, new.children.len()), ("established", 2));
    assert_eq!(new.peer_auth_method, AUTH_SHARED_KEY);
    assert_eq!(l.iter().find(|s| s.id == old).unwrap().state, "rekeyed");
}

#[test]
fn a_peer_at_the_home_agents_address_with_another_identity_is_refused() {
    let mut n = Net::pair(&[coa1()]);
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    let before = n.nodes[MN].ep.list();
    // mn2's certificate is issued by the same CA, but it is not the home agent's identity.
    let rogue = initiator_at_home_agent(
        &mut n,
        at(coa1(), 500),
        MN2_DN,
        local_auth(AuthKind::Ecdsa, "mn2"),
    );
    assert!(n.run(
        |n| {
            n.nodes[rogue]
                .events
                .iter()
                .any(|e| matches!(e, Event::ExchangeFailed { .. }))
        },
        |_, t| Some(t)
    ));
    assert!(n.nodes[rogue].events.iter().any(|e| matches!(
        e,
        Event::ExchangeFailed {
            notify: Some(N_AUTHENTICATION_FAILED),
            ..
        }
    )));
    let mn = &n.nodes[MN];
    assert_eq!(
        mn.count(|e| matches!(e, Event::AuthFailed { reason, .. } if reason.contains("expected"))),
        1,
        "{:?}",
        mn.events
    );
    let after = mn.ep.list();
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].id, after[0].state), (before[0].id, "established"));
    assert!(after[0].initiator, "the plan stays with our own IKE SA");
    assert_eq!(mn.kernel.len(), 4);
    assert_eq!(mn.count(|e| matches!(e, Event::IkeRekeyed { .. })), 0);
}

#[test]
fn the_mobile_node_refuses_ike_sa_init_from_anyone_but_its_home_agent() {
    let mut n = Net::pair(&[coa1()]);
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    // A peer elsewhere with perfectly good home agent credentials.
    let (auth, trust) = local_auth(AuthKind::Ecdsa, "ha");
    let stranger = n.add(
        base_config(HA_DN, (auth, trust), IKE, ESP),
        &[v6("2001:db8:9::1")],
        4,
    );
    n.command(
        stranger,
        Command::Initiate {
            local: at(v6("2001:db8:9::1"), 500),
            remote: at(coa1(), 500),
            home_agent: HOA1,
            home_address: HomeAddress::Static(v6("2001:db8:9::1")),
            classes: BU_PAYLOAD.to_vec(),
            remote_identity: None,
        },
    );
    let (_, init) = n.wire.remove(0);
    let since = n.sent.len();
    n.deliver(&init);
    assert_eq!(
        n.nodes[MN].ep.ike_sa_count(),
        1,
        "no state for the stranger"
    );
    let answer = n.sent_by(MN, since);
    assert_eq!(answer.len(), 1);
    let msg = Message::parse(&answer[0].data).unwrap();
    assert!(msg.header.is_response());
    assert!(
        msg.payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(x) if x.notify_type == N_NO_PROPOSAL_CHOSEN))
    );
    // A mobile node that never initiated knows no home agent and refuses everyone.
    let mut fresh = Net::pair(&[coa1()]);
    let ha_like = reauthenticating_home_agent(&mut fresh, at(coa1(), 500));
    let (_, init) = fresh.wire.remove(0);
    fresh.deliver(&init);
    assert_eq!(fresh.nodes[MN].ep.ike_sa_count(), 0);
    assert_eq!(fresh.nodes[ha_like].ep.ike_sa_count(), 1);
}

// ---- 4. Following the peer to UDP 4500 ----

/// strongSwan with MOBIKE moves to 4500 in IKE_AUTH, NAT or not: the MN's IKE_AUTH (and
/// everything it sends after it) leaves from its 4500 to our 4500.
fn float_mn_from_ike_auth(
    float: &mut bool,
) -> impl FnMut(usize, Transmit) -> Option<Transmit> + '_ {
    move |from, mut t| {
        if from == MN && header(&t).exchange == IKE_AUTH {
            *float = true;
        }
        if from == MN && *float {
            t.local.set_port(4500);
            t.remote.set_port(4500);
        }
        Some(t)
    }
}

#[test]
fn the_ike_sa_follows_a_peer_that_floats_to_4500() {
    let mut n = Net::pair(&[coa1()]);
    n.command(MN, initiate(at(coa1(), 500)));
    let mut float = false;
    assert!(n.run(|n| n.up(2), float_mn_from_ike_auth(&mut float)));
    let ha = &n.nodes[HA].ep.list()[0];
    assert_eq!((ha.local, ha.remote), (at(HA_IP, 4500), at(coa1(), 4500)));
    // Our MN got the answer on its 4500 from the HA's 4500 and follows as well.
    let mn = &n.nodes[MN].ep.list()[0];
    assert_eq!((mn.local, mn.remote), (at(coa1(), 4500), at(HA_IP, 4500)));
    // Requests from the HA (a CHILD_SA rekey) and the MN (a liveness check), and their
    // answers, all go between the two 4500 ports.
    let (ha_ike, ha_spi) = (ha.id, ha.children[0].spi_in);
    let since = n.sent.len();
    n.command(
        HA,
        Command::RekeyChild {
            ike: ha_ike,
            spi_in: ha_spi,
        },
    );
    n.run_now();
    let at_liveness = n.now.at + n.nodes[MN].ep.config().timers.liveness_interval;
    n.advance_to(at_liveness + Duration::from_secs(1));
    n.run_now();
    let later: Vec<_> = n.sent[since..].iter().map(|(_, t)| t).collect();
    assert!(later.len() >= 4, "{later:?}");
    assert!(
        later
            .iter()
            .all(|t| t.local.port() == 4500 && t.remote.port() == 4500),
        "{later:?}"
    );
    assert!(n.nodes[HA].ep.list()[0].children.len() == 2);
}

#[test]
fn forged_or_foreign_messages_from_4500_move_nothing() {
    let mut n = Net::pair(&[coa1()]);
    n.command(MN, initiate(at(coa1(), 500)));
    assert!(n.run(|n| n.up(2), |_, t| Some(t)));
    let ha_before = n.nodes[HA].ep.list()[0].clone();
    // A genuine request of the MN, captured on its way to the HA.
    let ike = n.nodes[MN].ep.list()[0].id;
    let spi = n.nodes[MN].ep.list()[0].children[0].spi_in;
    n.command(MN, Command::RekeyChild { ike, spi_in: spi });
    let (_, genuine) = n.wire.remove(0);
    let from_4500 = |t: &Transmit, src: IpAddr| Transmit {
        local: SocketAddr::new(src, 4500),
        remote: at(HA_IP, 4500),
        data: t.data.clone(),
    };
    // 1. Its bytes with a broken ICV, from the MN's address and port 4500.
    let mut forged = from_4500(&genuine, ip(coa1()));
    let last = forged.data.len() - 1;
    forged.data[last] ^= 1;
    let dropped = n.nodes[HA].ep.stats.dropped;
    n.deliver(&forged);
    assert_eq!(n.nodes[HA].ep.stats.dropped, dropped + 1);
    // 2. A message under the SA's SPIs that is not even protected.
    let mut h = header(&genuine);
    h.exchange = INFORMATIONAL;
    let bare = Message {
        header: h,
        payloads: vec![],
    }
    .emit();
    n.deliver(&Transmit {
        data: bare,
        ..from_4500(&genuine, ip(coa1()))
    });
    let ha_sa = n.nodes[HA].ep.list()[0].clone();
    assert_eq!(
        (ha_sa.local, ha_sa.remote),
        (ha_before.local, ha_before.remote)
    );
    // 3. The genuine request, authenticated, but from another address's 4500: answered there
    //    (RFC 7296 2.11), the SA does not move.
    let elsewhere = ip(v6("2001:db8:9::9"));
    let since = n.sent.len();
    n.deliver(&from_4500(&genuine, elsewhere));
    let answer = n.sent_by(HA, since);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].remote, SocketAddr::new(elsewhere, 4500));
    let ha_sa = n.nodes[HA].ep.list()[0].clone();
    assert_eq!(
        (ha_sa.local, ha_sa.remote),
        (ha_before.local, ha_before.remote)
    );
    // 4. Replayed from the MN's own address and port 4500: now a retransmission, answered
    //    from the cache, but only new messages move the ports (a replay is not the peer's
    //    choice of port).
    let since = n.sent.len();
    n.deliver(&from_4500(&genuine, ip(coa1())));
    assert_eq!(n.sent_by(HA, since).len(), 1);
    let ha_sa = n.nodes[HA].ep.list()[0].clone();
    assert_eq!(
        (ha_sa.local, ha_sa.remote),
        (ha_before.local, ha_before.remote)
    );
    assert!(ha_sa.local.port() == 500 && ha_sa.remote.port() == 500);
}

#[test]
fn after_floating_a_re_establishment_starts_on_the_ike_port_again() {
    let mut mn = mn1();
    mn.mobility.key_mobility = false;
    let mut n = Net::pair_with(mn, &[coa1(), coa2()]);
    n.command(MN, initiate(at(coa1(), 500)));
    let mut float = false;
    assert!(n.run(|n| n.up(2), float_mn_from_ike_auth(&mut float)));
    assert_eq!(n.nodes[MN].ep.list()[0].local, at(coa1(), 4500));
    // A move without the K bit: the IKE SA is re-established from the new address, with a
    // fresh IKE_SA_INIT on port 500 (where our initiation started), not on the NAT-T port.
    let since = n.sent.len();
    n.kernel(MN, mn_migrates(HOA1, coa1(), coa2()));
    let inits: Vec<_> = n
        .sent_by(MN, since)
        .into_iter()
        .filter(|t| is_init_request(t))
        .collect();
    assert_eq!(inits.len(), 1);
    assert_eq!(
        (inits[0].local, inits[0].remote),
        (at(coa2(), 500), at(HA_IP, 500))
    );
}
