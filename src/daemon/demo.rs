//! `mip6-iked demo`: a home agent and a mobile node in one process, over real loopback UDP
//! sockets, each with its own in-memory kernel. No root, no configuration file: the shipped test
//! certificates are compiled in (they are public test keys, see certs/README.md).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Control, Daemon, SharedKernel, show};
use crate::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors};
use crate::ike::{Config, Event, HomeAddress, HomeAgentConfig, IkeSaInfo, LocalAuth, Timers};
use crate::kernel::SaSpec;
use crate::mobility::{IdentityMatch, SaClass, User, UserAuth, UserDb};
use crate::policy::{
    KernelBackend, KernelSettings, Listen, LoadedConfig, MobileNodeSettings, PolicyMode, Role,
};

const CA: &str = include_str!("../../certs/ca-ecdsa.pem");
const HA_CERT: &str = include_str!("../../certs/ha-ecdsa.pem");
const HA_KEY: &str = include_str!("../../certs/ha-ecdsa.key");
const MN_CERT: &str = include_str!("../../certs/mn1-ecdsa.pem");
const MN_KEY: &str = include_str!("../../certs/mn1-ecdsa.key");

pub const HA_ID: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";
pub const MN_ID: &str = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net";
pub const HA_ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const HOME_ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const CLASSES: [SaClass; 2] = [SaClass::BuBa, SaClass::Payload];

/// One side as the demo saw it.
pub struct DemoSide {
    pub ike: Vec<IkeSaInfo>,
    /// What its kernel held once every CHILD_SA was up.
    pub kernel: Vec<SaSpec>,
    /// SAs left in its kernel after shutdown.
    pub kernel_after_shutdown: usize,
}

pub struct DemoSummary {
    pub mobile_node: DemoSide,
    pub home_agent: DemoSide,
}

fn e(what: &str) -> impl Fn(crate::auth::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn engine_config(
    id: &str,
    cert: &str,
    key: &str,
    home_agent: Option<HomeAgentConfig>,
) -> Result<Config, String> {
    let (ike_proposals, esp_proposals) = crate::policy::default_proposals();
    let trust = TrustAnchors::from_pem(CA).map_err(e("CA"))?;
    Ok(Config {
        identity: Identity::parse_config(id).map_err(e("identity"))?,
        auth: LocalAuth::Certificate {
            key: Arc::new(PrivateKey::from_pem(key).map_err(e("private key"))?),
            chain: crate::auth::cert::certs_from_pem(cert).map_err(e("certificate"))?,
            style: SignatureStyle::DigitalSignature,
        },
        trust: Some(Arc::new(trust)),
        ike_proposals,
        esp_proposals,
        prefer: crate::ike::Prefer::Ours,
        timers: Timers::default(),
        reqids: HashMap::new(),
        cookie_threshold: 50,
        max_half_open: 5000,
        home_agent,
        max_half_open_per_source: crate::ike::DEFAULT_HALF_OPEN_PER_SOURCE,
        init_rate_per_source: crate::ike::DEFAULT_INIT_RATE_PER_SOURCE,
        replay_window: 32,
        mobility: Default::default(),
        fragmentation: Default::default(),
        revocation: Default::default(),
    })
}

/// The home agent's engine configuration: user mn1 with home address 2001:db8:1::100.
pub fn home_agent_config() -> Result<Config, String> {
    let mn1 = User {
        name: "mn1".into(),
        identity: IdentityMatch::Exact(Identity::parse_config(MN_ID).map_err(e("identity"))?),
        auth: UserAuth::Certificate,
        home_addresses: vec![HOME_ADDRESS],
        classes: CLASSES.to_vec(),
        pool: None,
        home_prefix: None,
        uniqueness: None,
    };
    let users = UserDb::new(vec![mn1])?;
    engine_config(
        HA_ID,
        HA_CERT,
        HA_KEY,
        Some(HomeAgentConfig {
            address: HA_ADDRESS,
            users: Arc::new(users),
        }),
    )
}

/// The mobile node's engine configuration (mn1).
pub fn mobile_node_config() -> Result<Config, String> {
    engine_config(MN_ID, MN_CERT, MN_KEY, None)
}

fn loaded(
    role: Role,
    engine: Config,
    loopback: IpAddr,
    mobile_node: Option<MobileNodeSettings>,
) -> LoadedConfig {
    LoadedConfig {
        path: PathBuf::from("(demo)"),
        role,
        engine: Arc::new(engine),
        listen: Listen {
            addresses: vec![loopback],
            port: 0,
            nat_port: 0,
            receive_buffer: crate::policy::DEFAULT_RECEIVE_BUFFER,
        },
        kernel: KernelSettings {
            backend: KernelBackend::Memory,
            policies: PolicyMode::Mip6d,
            owned_reqids: (1, 40),
            spi_stock: true,
        },
        mobile_node,
        users_dir: None,
        control: Default::default(),
        lease_file: None,
        revocation: Default::default(),
        shards: 1,
    }
}

/// Counts CHILD_SAs coming up on one side; remembers failures for the timeout message.
#[derive(Default)]
struct Progress {
    up: Vec<SaClass>,
    problems: Vec<String>,
}

impl Progress {
    fn on(&mut self, ev: Event) {
        match ev {
            Event::ChildUp(c) => self.up.extend(c.class),
            Event::AuthFailed { reason, .. } => self
                .problems
                .push(format!("authentication failed: {reason}")),
            Event::Refused { reason, .. } => {
                self.problems.push(format!("selectors refused: {reason}"))
            }
            Event::ExchangeFailed {
                exchange, reason, ..
            } => self.problems.push(format!("{exchange} failed: {reason}")),
            Event::IkeDown { reason, .. } => self.problems.push(format!("IKE SA down: {reason}")),
            _ => {}
        }
    }
    fn done(&self) -> bool {
        CLASSES.iter().all(|c| self.up.contains(c))
    }
    fn missing(&self, who: &str) -> String {
        let missing: Vec<&str> = CLASSES
            .iter()
            .filter(|c| !self.up.contains(c))
            .map(|c| c.name())
            .collect();
        let mut s = format!("{who}: CHILD_SA {} not up", missing.join(" and "));
        if !self.problems.is_empty() {
            s.push_str(&format!(" ({})", self.problems.join("; ")));
        }
        s
    }
}

fn recv_into(rx: &mut broadcast::Receiver<Event>, p: &mut Progress) {
    while let Ok(ev) = rx.try_recv() {
        p.on(ev);
    }
}

async fn ask<T>(
    tx: &mpsc::Sender<Control>,
    make: impl FnOnce(oneshot::Sender<T>) -> Control,
) -> Result<T, String> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| "daemon task ended early".to_string())?;
    rx.await.map_err(|_| "daemon task ended early".to_string())
}

fn bind_loopback(
    role: Role,
    engine: impl Fn() -> Result<Config, String>,
    mn: impl Fn(IpAddr) -> Option<MobileNodeSettings>,
    kernel: &SharedKernel,
) -> Result<Daemon, String> {
    // IPv6 loopback when the host has it, else IPv4.
    let mut last = String::new();
    for lo in [
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ] {
        match Daemon::bind(
            loaded(role, engine()?, lo, mn(lo)),
            Box::new(kernel.clone()),
        ) {
            Ok(d) => return Ok(d),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}

/// Runs the demo; `timeout` bounds the wait for the CHILD_SAs.
pub async fn run_demo(timeout: Duration) -> Result<DemoSummary, String> {
    let ha_kernel = SharedKernel::new();
    let mn_kernel = SharedKernel::new();

    let ha = bind_loopback(Role::HomeAgent, home_agent_config, |_| None, &ha_kernel)?;
    let ha_addr = ha.ike_addr().ok_or("home agent has no IKE socket")?;
    let mn_settings = |lo: IpAddr| {
        Some(MobileNodeSettings {
            home_agent: ha_addr,
            home_agent_address: HA_ADDRESS,
            care_of_address: Some(lo),
            home_address: HomeAddress::Static(HOME_ADDRESS),
            classes: CLASSES.to_vec(),
            home_agent_id: Identity::parse_config(HA_ID).ok(),
            auto_initiate: true,
        })
    };
    let mn = bind_loopback(
        Role::MobileNode,
        mobile_node_config,
        mn_settings,
        &mn_kernel,
    )?;

    let (mut ha_events, mut mn_events) = (ha.subscribe(), mn.subscribe());
    let (ha_tx, ha_rx) = mpsc::channel(8);
    let (mn_tx, mn_rx) = mpsc::channel(8);
    let ha_task = tokio::spawn(ha.run(ha_rx));
    let mn_task = tokio::spawn(mn.run(mn_rx));

    let (mut ha_p, mut mn_p) = (Progress::default(), Progress::default());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut result = Ok(());
    while !(ha_p.done() && mn_p.done()) {
        tokio::select! {
            ev = mn_events.recv() => if let Ok(ev) = ev { mn_p.on(ev) },
            ev = ha_events.recv() => if let Ok(ev) = ev { ha_p.on(ev) },
            _ = tokio::time::sleep_until(deadline) => {
                recv_into(&mut mn_events, &mut mn_p);
                recv_into(&mut ha_events, &mut ha_p);
                let mut parts = Vec::new();
                if !mn_p.done() { parts.push(mn_p.missing("mobile node")); }
                if !ha_p.done() { parts.push(ha_p.missing("home agent")); }
                if parts.is_empty() { break; }
                result = Err(format!("timed out after {} s: {}", timeout.as_secs_f64(), parts.join("; ")));
                break;
            }
        }
        if ha_task.is_finished() || mn_task.is_finished() {
            result = Err("a daemon task ended early".to_string());
            break;
        }
    }

    let listings = match result {
        Ok(()) => {
            let mn_ike = ask(&mn_tx, Control::List).await?;
            let ha_ike = ask(&ha_tx, Control::List).await?;
            Some((mn_ike, ha_ike))
        }
        Err(_) => None,
    };
    let snapshot = |k: &SharedKernel| {
        k.with(|k| {
            let mut v: Vec<SaSpec> = k.sas().cloned().collect();
            v.sort_by_key(|s| (s.direction == crate::kernel::Direction::In, s.spi));
            v
        })
    };
    let (mn_sas, ha_sas) = (snapshot(&mn_kernel), snapshot(&ha_kernel));

    // The mobile node leaves first: its Delete reaches the home agent, then the HA stops too.
    let _ = mn_tx.send(Control::Shutdown).await;
    let _ = mn_task.await;
    let _ = ha_tx.send(Control::Shutdown).await;
    let _ = ha_task.await;
    result?;
    let (mn_ike, ha_ike) = listings.ok_or("no listing")?;
    Ok(DemoSummary {
        mobile_node: DemoSide {
            ike: mn_ike,
            kernel: mn_sas,
            kernel_after_shutdown: mn_kernel.with(|k| k.len()),
        },
        home_agent: DemoSide {
            ike: ha_ike,
            kernel: ha_sas,
            kernel_after_shutdown: ha_kernel.with(|k| k.len()),
        },
    })
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (who, side) in [
            ("mobile node (mn1)", &self.mobile_node),
            ("home agent", &self.home_agent),
        ] {
            writeln!(f, "== as seen by the {who} ==")?;
            for i in &side.ike {
                write!(f, "{}", show::ike_sa(i, "  "))?;
            }
            writeln!(f, "  kernel (MemoryKernel): {} SAs", side.kernel.len())?;
            for k in &side.kernel {
                writeln!(f, "    {}", show::kernel_sa(k))?;
            }
            writeln!(
                f,
                "  after shutdown: {} SAs left",
                side.kernel_after_shutdown
            )?;
            writeln!(f)?;
        }
        Ok(())
    }
}
