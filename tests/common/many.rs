//! Many mobile nodes registering with one home agent engine, fast: two identities (each with a
//! static home prefix, so that the user entries stay small), one device per care-of address and
//! home address, each MN's endpoint dropped once its IKE SA and two CHILD_SAs (BU/BA and
//! payload) are up. For the memory test and the MIGRATE benchmark.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mip6_ike::ike::{Command, Config, Endpoint, Event, HomeAddress, Now};
use mip6_ike::mobility::{HomePrefix, SaClass, User, UserAuth, UserDb};

use super::*;

/// Mobile node `i`'s home address: inside its user's /64 (`i` even: mn1, odd: mn2).
pub fn hoa(i: u32) -> Ipv6Addr {
    let user = u16::from(i % 2 == 1);
    Ipv6Addr::from(
        u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x100, user, 0, 0, 0, 0)) + u128::from(i) + 1,
    )
}

/// Mobile node `i`'s care-of address number `k` (a move changes `k`).
pub fn coa(i: u32, k: u16) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 2, k, 0, 0, 0, 0)) + u128::from(i) + 1)
}

fn prefix_user(name: &str, dn: &str, auth: UserAuth, n: u16) -> User {
    let mut u = user(name, dn, auth, &[], &[SaClass::BuBa, SaClass::Payload]);
    u.home_prefix = Some(HomePrefix::Static {
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0x100, n, 0, 0, 0, 0),
        len: 64,
        lifetime: 86_400,
    });
    u
}

pub struct Registrar {
    pub ha: Endpoint,
    /// The two identities' mobile node configurations (shared by every device).
    mns: [Arc<Config>; 2],
    /// Each device has its own identity (see [`Registrar::one_identity_per_device`]).
    distinct: bool,
    pub now: Now,
}

/// Device `i`'s own identity (in [`Registrar::one_identity_per_device`]): under its user's
/// DN pattern, `O=even` or `O=odd` as `hoa(i)` is in mn1's or mn2's prefix.
pub fn device_dn(i: u32) -> String {
    let o = if i % 2 == 1 { "odd" } else { "even" };
    format!("dn:C=CH, O={o}, CN=device{i}@example.net")
}

impl Registrar {
    /// PSK devices with an identity each, as most deployments have (one certificate or key
    /// per device), under the default uniqueness policy (`replace`): the home agent's identity
    /// index then holds an entry per IKE SA, which [`Registrar::new`]'s two shared identities
    /// hide. Two DN-pattern users own the devices.
    pub fn one_identity_per_device() -> Registrar {
        let mut r = Registrar::new(AuthKind::Psk);
        let mut cfg = ha_config(AuthKind::Psk, IKE, ESP);
        cfg.timers.liveness_interval = Duration::from_secs(3600);
        let pattern = |name: &str, o: &str, n: u16| {
            let psk = UserAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec()));
            let mut u = prefix_user(name, MN1_DN, psk, n);
            u.identity =
                mip6_ike::mobility::IdentityMatch::DnPattern(format!("dn:C=CH, O={o}, CN=*"));
            u
        };
        let users = UserDb::new(vec![pattern("mn1", "even", 0), pattern("mn2", "odd", 1)]).unwrap();
        cfg.home_agent.as_mut().unwrap().users = Arc::new(users);
        r.ha = Endpoint::new(
            Arc::new(cfg),
            Box::new(mip6_ike::crypto::TestRng::new(5)),
            r.now,
        );
        r.distinct = true;
        r
    }

    pub fn new(kind: AuthKind) -> Registrar {
        let now = Now {
            at: std::time::Instant::now(),
            unix: 1_800_000_000,
        };
        let mut cfg = ha_config(kind, IKE, ESP);
        // The mobile nodes are gone once registered: liveness checks from the home agent would
        // find them dead. An hour leaves room to let time pass (timers do not change the state
        // kept per SA).
        cfg.timers.liveness_interval = Duration::from_secs(3600);
        let auth = || match kind {
            AuthKind::Psk => UserAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())),
            _ => UserAuth::Certificate,
        };
        // Two users are enough: the per-SA state does not depend on who the user is. Each
        // identity stands for many devices here (a HoA and a care-of address each).
        let users = UserDb::new(vec![
            prefix_user("mn1", MN1_DN, auth(), 0),
            prefix_user("mn2", MN2_DN, auth(), 1),
        ])
        .unwrap();
        cfg.home_agent.as_mut().unwrap().users = Arc::new(users);
        // Many devices share the two identities (one home address each): `no`, as such a
        // deployment would configure (the default `replace` would look for older SAs of the
        // identity for the same home address at each registration: none, but one look per
        // device of the identity).
        cfg.mobility.uniqueness = mip6_ike::mobility::Uniqueness::No;
        let ha = Endpoint::new(
            Arc::new(cfg),
            Box::new(mip6_ike::crypto::TestRng::new(5)),
            now,
        );
        let mn = |name: &str| {
            let mut c = mn_config(kind, name, IKE, ESP);
            // Without this each new device's INITIAL_CONTACT would make the HA drop the SAs
            // of the earlier devices of the same identity.
            c.mobility.initial_contact = false;
            Arc::new(c)
        };
        Registrar {
            ha,
            mns: [mn("mn1"), mn("mn2")],
            distinct: false,
            now,
        }
    }

    /// Mobile node `i` registers from `coa(i, 0)`: IKE_SA_INIT, IKE_AUTH with the BU/BA
    /// CHILD_SA, then CREATE_CHILD_SA for the payload one.
    pub fn register(&mut self, i: u32) {
        let now = self.now;
        let cfg = if self.distinct {
            let mut c = base_config(&device_dn(i), local_auth(AuthKind::Psk, "mn1"), IKE, ESP);
            c.mobility.initial_contact = false;
            Arc::new(c)
        } else {
            self.mns[(i % 2) as usize].clone()
        };
        let mut mn = Endpoint::new(
            cfg,
            Box::new(mip6_ike::crypto::TestRng::new(100 + u64::from(i))),
            now,
        );
        let cmd = Command::Initiate {
            local: SocketAddr::new(coa(i, 0).into(), 500),
            remote: HA_ADDR.parse().unwrap(),
            home_agent: HA_IP,
            home_address: HomeAddress::Static(hoa(i)),
            classes: vec![SaClass::BuBa, SaClass::Payload],
            remote_identity: Some(mip6_ike::auth::Identity::parse_config(HA_DN).unwrap()),
        };
        mn.handle_command(now, cmd).unwrap();
        let mut ups = 0;
        for _ in 0..10 {
            while mn.poll_kernel_op().is_some() {}
            while let Some(e) = mn.poll_event() {
                ups += usize::from(matches!(e, Event::ChildUp(_)));
            }
            while let Some(t) = mn.poll_transmit() {
                self.ha.handle_datagram(now, t.remote, t.local, &t.data);
            }
            while self.ha.poll_kernel_op().is_some() {}
            while self.ha.poll_event().is_some() {}
            while let Some(t) = self.ha.poll_transmit() {
                mn.handle_datagram(now, t.remote, t.local, &t.data);
            }
        }
        assert_eq!(ups, 2, "mobile node {i}: both CHILD_SAs up");
    }

    /// Lets `d` pass on the home agent's clock (its housekeeping runs; no SA has work due).
    pub fn advance(&mut self, d: Duration) {
        self.now.at += d;
        self.now.unix += d.as_secs();
        self.ha.handle_timeout(self.now);
        assert!(self.ha.poll_transmit().is_none(), "nothing to send");
    }
}
