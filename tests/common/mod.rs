//! Shared test helpers. Here: a home agent and a mobile node Endpoint that talk by passing
//! buffers, with a MemoryKernel each (time is simulated: nothing here sleeps). `daemon`: daemons
//! started from configuration files. `netns`: host-kernel tests in a fresh network namespace.
//! `xorshift`: deterministic mutations.
#![allow(dead_code)]

pub mod daemon;
pub mod many;
pub mod netns;
pub mod xorshift;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mip6_ike::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors, cert::certs_from_pem};
use mip6_ike::crypto::TestRng;
use mip6_ike::ike::{
    Command, Config, Endpoint, EspProposal, Event, HomeAddress, HomeAgentConfig, IkeId,
    IkeProposal, LocalAuth, Now, Timers, Transmit,
};
use mip6_ike::kernel::{Kernel, KernelOp, memory::MemoryKernel};
use mip6_ike::mobility::{IdentityMatch, SaClass, User, UserAuth, UserDb};

pub const CA_ECDSA: &str = include_str!("../../certs/ca-ecdsa.pem");
pub const CA_RSA: &str = include_str!("../../certs/ca-rsa.pem");

pub fn cert(name: &str) -> (&'static str, &'static str) {
    match name {
        "ha-ecdsa" => (
            include_str!("../../certs/ha-ecdsa.pem"),
            include_str!("../../certs/ha-ecdsa.key"),
        ),
        "mn1-ecdsa" => (
            include_str!("../../certs/mn1-ecdsa.pem"),
            include_str!("../../certs/mn1-ecdsa.key"),
        ),
        "mn2-ecdsa" => (
            include_str!("../../certs/mn2-ecdsa.pem"),
            include_str!("../../certs/mn2-ecdsa.key"),
        ),
        "ha-rsa" => (
            include_str!("../../certs/ha-rsa.pem"),
            include_str!("../../certs/ha-rsa.key"),
        ),
        "mn1-rsa" => (
            include_str!("../../certs/mn1-rsa.pem"),
            include_str!("../../certs/mn1-rsa.key"),
        ),
        "rogue-mn1-ecdsa" => (
            include_str!("../../certs/rogue-mn1-ecdsa.pem"),
            include_str!("../../certs/rogue-mn1-ecdsa.key"),
        ),
        _ => panic!("no cert {name}"),
    }
}

pub const HA_ADDR: &str = "[2001:db8:1::1]:500";
pub const MN_COA: &str = "[2001:db8:2::100]:500";
pub const HOA1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const HOA2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
pub const HA_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const MN1_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net";
pub const MN2_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn2@example.net";
pub const HA_DN: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";

/// How a side authenticates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AuthKind {
    Ecdsa,
    Rsa,
    Rfc7427Ecdsa,
    Rfc7427Rsa,
    Psk,
}

pub fn ike(s: &str) -> IkeProposal {
    mip6_ike::ike::parse_ike_proposal(s).unwrap()
}
pub fn esp(s: &str) -> EspProposal {
    mip6_ike::ike::parse_esp_proposal(s).unwrap()
}

pub const PSK: &[u8] = b"a long enough test pre-shared key";

pub fn local_auth(kind: AuthKind, name: &str) -> (LocalAuth, Option<Arc<TrustAnchors>>) {
    let rsa = matches!(kind, AuthKind::Rsa | AuthKind::Rfc7427Rsa);
    let ca = if rsa { CA_RSA } else { CA_ECDSA };
    let trust = Some(Arc::new(TrustAnchors::from_pem(ca).unwrap()));
    if kind == AuthKind::Psk {
        return (LocalAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())), None);
    }
    let suffix = if rsa { "rsa" } else { "ecdsa" };
    let (c, k) = cert(&format!("{name}-{suffix}"));
    let style = match kind {
        AuthKind::Rfc7427Ecdsa | AuthKind::Rfc7427Rsa => SignatureStyle::DigitalSignature,
        _ => SignatureStyle::Legacy,
    };
    (
        LocalAuth::Certificate {
            key: Arc::new(PrivateKey::from_pem(k).unwrap()),
            chain: certs_from_pem(c).unwrap(),
            style,
        },
        trust,
    )
}

pub fn base_config(
    identity: &str,
    auth: (LocalAuth, Option<Arc<TrustAnchors>>),
    ike_p: &str,
    esp_p: &str,
) -> Config {
    Config {
        identity: Identity::parse_config(identity).unwrap(),
        auth: auth.0,
        trust: auth.1,
        ike_proposals: vec![ike(ike_p)],
        esp_proposals: vec![esp(esp_p)],
        prefer: mip6_ike::ike::Prefer::Ours,
        timers: Timers::default(),
        reqids: HashMap::new(),
        cookie_threshold: 1000,
        max_half_open: 10_000,
        home_agent: None,
        max_half_open_per_source: mip6_ike::ike::DEFAULT_HALF_OPEN_PER_SOURCE,
        init_rate_per_source: mip6_ike::ike::DEFAULT_INIT_RATE_PER_SOURCE,
        replay_window: 32,
        mobility: Default::default(),
        fragmentation: Default::default(),
        revocation: Default::default(),
    }
}

pub fn user(name: &str, id: &str, auth: UserAuth, hoas: &[Ipv6Addr], classes: &[SaClass]) -> User {
    User {
        name: name.into(),
        identity: IdentityMatch::Exact(Identity::parse_config(id).unwrap()),
        auth,
        home_addresses: hoas.to_vec(),
        classes: classes.to_vec(),
        pool: None,
        home_prefix: None,
        uniqueness: None,
    }
}

pub fn ha_config(kind: AuthKind, ike_p: &str, esp_p: &str) -> Config {
    let mn_auth = if kind == AuthKind::Psk {
        UserAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec()))
    } else {
        UserAuth::Certificate
    };
    let all = [
        SaClass::BuBa,
        SaClass::Payload,
        SaClass::MpsMpa,
        SaClass::HotiHot,
    ];
    let users = UserDb::new(vec![
        user("mn1", MN1_DN, mn_auth, &[HOA1], &all),
        user("mn2", MN2_DN, UserAuth::Certificate, &[HOA2], &all),
    ])
    .unwrap();
    let ha_auth = if kind == AuthKind::Psk {
        // The HA's own credentials are a certificate; PSK users get PSK AUTH from the HA too.
        let (a, _) = local_auth(AuthKind::Ecdsa, "ha");
        (a, Some(Arc::new(TrustAnchors::from_pem(CA_ECDSA).unwrap())))
    } else {
        local_auth(kind, "ha")
    };
    let mut c = base_config(HA_DN, ha_auth, ike_p, esp_p);
    c.home_agent = Some(HomeAgentConfig {
        address: HA_IP,
        users: Arc::new(users),
    });
    c
}

/// The default suite of most engine tests: X25519 + AES-CBC/HMAC-SHA2-256.
pub const IKE: &str = "aes128-sha256-x25519";
pub const ESP: &str = "aes128-sha256";

/// mn1 with an ECDSA certificate and the default suite.
pub fn mn1() -> Config {
    mn_config(AuthKind::Ecdsa, "mn1", IKE, ESP)
}

/// An ECDSA home agent with the default suite whose only users are `users`.
/// A home agent whose only user is `name` (identity `dn`), authenticated by certificate.
pub fn ha_with_cert_user(name: &str, dn: &str, hoas: &[Ipv6Addr], classes: &[SaClass]) -> Config {
    ha_with_users(vec![user(name, dn, UserAuth::Certificate, hoas, classes)])
}

pub fn ha_with_users(users: Vec<User>) -> Config {
    let mut c = ha_config(AuthKind::Ecdsa, IKE, ESP);
    c.home_agent.as_mut().unwrap().users = Arc::new(UserDb::new(users).unwrap());
    c
}

pub fn mn_config(kind: AuthKind, name: &str, ike_p: &str, esp_p: &str) -> Config {
    let id = if name == "mn2" { MN2_DN } else { MN1_DN };
    base_config(id, local_auth(kind, name), ike_p, esp_p)
}

/// One side: an endpoint, its address and its kernel.
pub struct Side {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub kernel: MemoryKernel,
    pub events: Vec<Event>,
    pub kernel_errors: Vec<String>,
    /// Every kernel operation the engine emitted, in order.
    pub ops: Vec<KernelOp>,
}

impl Side {
    /// Whether an exchange this side started failed (with the error notify `notify`, if given).
    pub fn exchange_failed(&self, notify: Option<u16>) -> bool {
        self.events.iter().any(|e| {
            matches!(e, Event::ExchangeFailed { notify: n, .. } if notify.is_none() || *n == notify)
        })
    }

    pub fn new(cfg: Config, addr: &str, seed: u64, now: Now) -> Side {
        Side {
            ep: Endpoint::new(Arc::new(cfg), Box::new(TestRng::new(seed)), now),
            addr: addr.parse().unwrap(),
            kernel: MemoryKernel::new(),
            events: Vec::new(),
            kernel_errors: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Applies kernel operations and collects events; returns outgoing datagrams.
    pub fn drain(&mut self) -> Vec<Transmit> {
        while let Some(op) = self.ep.poll_kernel_op() {
            if let Err(e) = self.kernel.apply(&op) {
                self.kernel_errors.push(e);
            }
            self.ops.push(op);
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        let mut v = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            v.push(t);
        }
        v
    }

    pub fn child_ups(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::ChildUp(_)))
            .count()
    }
    pub fn ike_up(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::IkeUp { .. }))
    }
}

/// A simulated link between the MN and the HA.
pub struct Lab {
    pub mn: Side,
    pub ha: Side,
    pub start: Instant,
    pub now: Now,
    /// Datagrams in flight: (to_ha, bytes).
    pub wire: Vec<(bool, Transmit)>,
    pub delivered: usize,
    /// Addresses nobody listens at any more (a mobile node's old care-of address): datagrams
    /// to them are lost, counted in `lost_to_gone`. Any other misaddressed datagram fails.
    pub gone: Vec<SocketAddr>,
    pub lost_to_gone: usize,
}

impl Lab {
    pub fn new(mn_cfg: Config, ha_cfg: Config) -> Lab {
        let start = Instant::now();
        let now = Now {
            at: start,
            unix: 1_800_000_000,
        };
        Lab {
            mn: Side::new(mn_cfg, MN_COA, 1, now),
            ha: Side::new(ha_cfg, HA_ADDR, 2, now),
            start,
            now,
            wire: Vec::new(),
            delivered: 0,
            gone: Vec::new(),
            lost_to_gone: 0,
        }
    }

    pub fn initiate(&mut self, hoa: HomeAddress, classes: &[SaClass]) -> IkeId {
        let cmd = Command::Initiate {
            local: self.mn.addr,
            remote: self.ha.addr,
            home_agent: HA_IP,
            home_address: hoa,
            classes: classes.to_vec(),
            remote_identity: Some(Identity::parse_config(HA_DN).unwrap()),
        };
        self.mn_command(cmd)
    }

    /// Gives the MN a command that must be accepted, and puts what it sends on the wire.
    pub fn mn_command(&mut self, cmd: Command) -> IkeId {
        let id = self.mn.ep.handle_command(self.now, cmd).unwrap();
        self.collect();
        id
    }

    /// The same for the HA.
    pub fn ha_command(&mut self, cmd: Command) -> IkeId {
        let id = self.ha.ep.handle_command(self.now, cmd).unwrap();
        self.collect();
        id
    }

    /// Moves everything both sides want to send onto the wire.
    pub fn collect(&mut self) {
        for t in self.mn.drain() {
            self.wire.push((true, t));
        }
        for t in self.ha.drain() {
            self.wire.push((false, t));
        }
        // Every step of every lab: the engines' CHILD_SA counts (outbound SPIs, reqids) match
        // the CHILD_SAs they hold.
        for (who, s) in [("MN", &self.mn), ("HA", &self.ha)] {
            if let Err(e) = s.ep.check_child_counts() {
                panic!("{who}: {e}");
            }
        }
    }

    /// Delivers one datagram.
    pub fn deliver(&mut self, to_ha: bool, t: &Transmit) {
        if self.gone.contains(&t.remote) {
            self.lost_to_gone += 1;
            return;
        }
        self.delivered += 1;
        if to_ha {
            assert_eq!(t.remote, self.ha.addr);
            self.ha
                .ep
                .handle_datagram(self.now, t.remote, t.local, &t.data);
        } else {
            assert_eq!(t.remote, self.mn.addr);
            self.mn
                .ep
                .handle_datagram(self.now, t.remote, t.local, &t.data);
        }
        self.collect();
    }

    /// Delivers datagrams (letting simulated time pass when none are in flight) until `until`
    /// holds or 600 simulated seconds have passed. `keep(n, to_ha, t)` may drop datagram n.
    /// Returns whether `until` was reached.
    pub fn run(
        &mut self,
        mut until: impl FnMut(&Lab) -> bool,
        mut keep: impl FnMut(usize, bool, &Transmit) -> bool,
    ) -> bool {
        let mut n = 0;
        for _ in 0..100_000 {
            if until(self) {
                return true;
            }
            if self.wire.is_empty() {
                let next = [self.mn.ep.next_deadline(), self.ha.ep.next_deadline()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= self.start + Duration::from_secs(600) => self.advance_to(t),
                    _ => return until(self),
                }
                continue;
            }
            let (to_ha, t) = self.wire.remove(0);
            n += 1;
            if keep(n, to_ha, &t) {
                self.deliver(to_ha, &t);
            }
        }
        false
    }

    /// Runs a lossless conversation until both sides report `children` CHILD_SAs up.
    pub fn establish(&mut self, children: usize) -> bool {
        self.run(
            |l| l.mn.child_ups() >= children && l.ha.child_ups() >= children,
            |_, _, _| true,
        )
    }

    /// Delivers the next `n` datagrams in flight.
    pub fn run_now_n(&mut self, n: usize) {
        for _ in 0..n {
            let (to_ha, t) = self.wire.remove(0);
            self.deliver(to_ha, &t);
        }
    }

    /// Delivers in-flight datagrams without advancing time.
    pub fn run_now(&mut self) {
        while !self.wire.is_empty() {
            let (to_ha, t) = self.wire.remove(0);
            self.deliver(to_ha, &t);
        }
    }

    pub fn advance_to(&mut self, t: Instant) {
        let secs = t.saturating_duration_since(self.now.at).as_secs();
        self.now = Now {
            at: t.max(self.now.at),
            unix: self.now.unix + secs,
        };
        self.mn.ep.handle_timeout(self.now);
        self.ha.ep.handle_timeout(self.now);
        self.collect();
    }

    pub fn advance(&mut self, d: Duration) {
        let t = self.now.at + d;
        self.advance_to(t);
    }
}
