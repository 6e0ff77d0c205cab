//! The load generator behind `mip6-ike-load` (issue 13): many mobile-node initiations at once
//! over one real UDP socket against any IKEv2 responder (our `mip6-iked`, strongSwan's charon).
//!
//! Each initiation is our own engine ([`Endpoint`] in the initiator role, an in-memory kernel)
//! bringing up one IKE SA with one CHILD_SA in IKE_AUTH, then deleting it (or keeping it, to
//! measure the responder's memory per SA). Retransmissions and their back-off are the engine's;
//! this module only keeps `window` initiations in flight, gives up on one after `timeout`, and
//! counts. One thread, no async runtime: the generator must not cost more than it measures.
//!
//! All initiators share one identity unless `--identities N` asks for N (then N engines, one
//! per identity, all on the one socket: datagrams go to the engine that owns their IKE SPI).
//! A shared identity needs a responder that does not take each new IKE SA for a restart of the
//! last one: we never send INITIAL_CONTACT, and the responder's uniqueness policy must be
//! `no` (ours, strongSwan's default) or `never`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

use crate::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors, cert::certs_from_pem};
use crate::crypto::SystemRng;
use crate::ike::{
    Command, Config, Endpoint, Event, HomeAddress, IkeId, LocalAuth, Now, Prefer, Timers,
    parse_esp_proposal, parse_ike_proposal,
};
use crate::kernel::{Kernel, memory::MemoryKernel};
use crate::mobility::SaClass;

// The shipped test credentials (public test keys, see certs/README.md): the generator plays
// mn1 against a responder that trusts the test CAs.
const CA_ECDSA: &str = include_str!("../certs/ca-ecdsa.pem");
const CA_RSA: &str = include_str!("../certs/ca-rsa.pem");
const MN1_ECDSA: (&str, &str) = (
    include_str!("../certs/mn1-ecdsa.pem"),
    include_str!("../certs/mn1-ecdsa.key"),
);
const MN1_RSA: (&str, &str) = (
    include_str!("../certs/mn1-rsa.pem"),
    include_str!("../certs/mn1-rsa.key"),
);

/// mn1's identity in the shipped certificates.
pub const MN1_ID: &str = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net";
/// The home agent's identity in the shipped certificates.
pub const HA_ID: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";
/// The pre-shared key of the test configurations (tests/common, benches/compare).
pub const TEST_PSK: &str = "a long enough test pre-shared key";

/// How the initiators authenticate (and, by default, which DH group they use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Auth {
    /// Pre-shared key, X25519.
    Psk,
    /// mn1's ECDSA P-256 certificate, X25519.
    Ecdsa,
    /// mn1's RSA-2048 certificate, MODP-2048.
    Rsa,
}

impl Auth {
    /// The IKE proposal used unless `--ike` names one.
    pub fn default_ike(self) -> &'static str {
        match self {
            Auth::Psk | Auth::Ecdsa => "aes128-sha256-x25519",
            Auth::Rsa => "aes128-sha256-modp2048",
        }
    }
}

/// `mip6-ike-load`'s command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "mip6-ike-load",
    about = "IKEv2 load generator: many mobile-node initiations (IKE SA + one CHILD_SA) against a responder",
    after_help = "Prints one line per second while running, then a summary and a machine-readable \
                  RESULT line. Exit code 0 when every handshake completed, 1 when some failed, 2 on usage \
                  or socket errors."
)]
pub struct LoadArgs {
    /// The responder, e.g. [2001:db8:1::1]:500.
    #[arg(long)]
    pub target: SocketAddr,
    /// Local address to send from (port 0: any); default: the route's source address.
    #[arg(long)]
    pub local: Option<SocketAddr>,
    /// Handshakes in all.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Initiations in flight at once (a deleted SA's Delete exchange counts until answered).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub window: u64,
    #[arg(long, value_enum, default_value_t = Auth::Ecdsa)]
    pub auth: Auth,
    /// IKE proposal (strongSwan syntax); default by --auth: aes128-sha256-x25519 (psk, ecdsa),
    /// aes128-sha256-modp2048 (rsa).
    #[arg(long)]
    pub ike: Option<String>,
    /// ESP proposal of the CHILD_SA.
    #[arg(long, default_value = "aes128-sha256")]
    pub esp: String,
    /// The pre-shared key (--auth psk).
    #[arg(long, default_value = TEST_PSK)]
    pub psk: String,
    /// Our identity (--auth psk; with certificates it is the certificate's, mn1's).
    #[arg(long, default_value = MN1_ID)]
    pub id: String,
    /// Use N identities in turn, made from --id-template ({} is replaced by 1..=N); PSK only.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub identities: u64,
    /// Template of the identities of --identities.
    #[arg(long, default_value = "fqdn:mn{}.load.example")]
    pub id_template: String,
    /// The responder's identity, checked against its IDr (and certificate).
    #[arg(long, default_value = HA_ID)]
    pub remote_id: String,
    /// The home address asked for, or "dynamic" (a configuration request: pools).
    #[arg(long, default_value = "2001:db8:1::100")]
    pub hoa: String,
    /// The home agent's address in the selectors; default: the target's address.
    #[arg(long)]
    pub home_agent: Option<Ipv6Addr>,
    /// The CHILD_SA class negotiated in IKE_AUTH: payload (tunnel HoA <-> ::/0, which
    /// strongSwan's kernel-libipsec can hold) or bu-ba (transport HoA <-> HA, MH).
    #[arg(long, default_value = "payload")]
    pub class: String,
    /// Keep the SAs instead of deleting each once up (to measure the responder at K SAs).
    #[arg(long)]
    pub keep: bool,
    /// With --keep: seconds to hold the SAs after the last one came up (answering the
    /// responder meanwhile), before deleting them all and exiting.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Seconds after which an initiation that is not up counts as failed.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Seconds before the engine's first retransmission (its back-off follows).
    #[arg(long, default_value_t = 2.0)]
    pub retransmit: f64,
    /// Stop starting new initiations after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Latency samples and their percentiles.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
    sorted: bool,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.samples.push(d);
        self.sorted = false;
    }
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    /// The `p`-th percentile (0-100) by nearest rank: the smallest sample that at least p % of
    /// the samples do not exceed. None without samples.
    pub fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
        let n = self.samples.len();
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        Some(self.samples[rank.clamp(1, n) - 1])
    }
    pub fn max(&mut self) -> Option<Duration> {
        self.percentile(100.0)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Failures by reason (the first words of the engine's reason), most frequent first.
    pub failures: Vec<(String, u64)>,
    /// From the first initiation to the last completion.
    pub elapsed: Duration,
    pub latency: Latencies,
    /// SAs held at the end (--keep).
    pub held: u64,
    /// Deletes that got no answer within the timeout (the SA is gone on our side anyway).
    pub delete_timeouts: u64,
}

impl Report {
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.completed as f64 / s
        } else {
            0.0
        }
    }

    /// One line of key=value pairs for scripts (milliseconds for latencies).
    pub fn result_line(&self) -> String {
        let mut l = self.latency.clone();
        let ms = |d: Option<Duration>| d.map_or(-1.0, |d| d.as_secs_f64() * 1000.0);
        format!(
            "RESULT started={} completed={} failed={} elapsed={:.3} rate={:.1} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} held={}",
            self.started,
            self.completed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate(),
            ms(l.percentile(50.0)),
            ms(l.percentile(90.0)),
            ms(l.percentile(99.0)),
            ms(l.max()),
            self.held,
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = self.latency.clone();
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1000.0)
            })
        };
        writeln!(
            f,
            "handshakes: {} completed, {} failed of {} started in {:.2} s: {:.0}/s",
            self.completed,
            self.failed,
            self.started,
            self.elapsed.as_secs_f64(),
            self.rate()
        )?;
        writeln!(
            f,
            "latency: p50 {}, p90 {}, p99 {}, max {}",
            ms(l.percentile(50.0)),
            ms(l.percentile(90.0)),
            ms(l.percentile(99.0)),
            ms(l.max())
        )?;
        for (why, n) in &self.failures {
            writeln!(f, "failed: {n} x {why}")?;
        }
        if self.delete_timeouts > 0 {
            writeln!(f, "deletes unanswered: {}", self.delete_timeouts)?;
        }
        write!(f, "{}", self.result_line())
    }
}

/// Everything fixed before the run: engine configurations and the Initiate template.
pub struct Plan {
    configs: Vec<Arc<Config>>,
    home_address: HomeAddress,
    home_agent: Ipv6Addr,
    class: SaClass,
    remote_identity: Identity,
}

/// Expands the identity template for initiator `i` (1-based).
pub fn identity_for(template: &str, i: u64) -> String {
    template.replace("{}", &i.to_string())
}

/// Checks the arguments and builds the engines' configurations (`nat_port`: our NAT-T
/// socket's port).
pub fn plan(a: &LoadArgs, nat_port: u16) -> Result<Plan, String> {
    let ike_s = a.ike.as_deref().unwrap_or(a.auth.default_ike());
    let ike = parse_ike_proposal(ike_s).map_err(|e| format!("--ike {ike_s}: {e}"))?;
    let esp = parse_esp_proposal(&a.esp).map_err(|e| format!("--esp {}: {e}", a.esp))?;
    let class = SaClass::from_name(&a.class).ok_or_else(|| {
        format!(
            "--class {}: expected bu-ba, payload, mps-mpa or hoti-hot",
            a.class
        )
    })?;
    let home_address = if a.hoa == "dynamic" {
        HomeAddress::Dynamic
    } else {
        HomeAddress::Static(
            a.hoa
                .parse()
                .map_err(|_| format!("--hoa {}: an IPv6 address or \"dynamic\"", a.hoa))?,
        )
    };
    let home_agent = match (a.home_agent, a.target.ip()) {
        (Some(h), _) => h,
        (None, IpAddr::V6(h)) => h,
        (None, IpAddr::V4(_)) => {
            return Err("--home-agent is needed with an IPv4 target".into());
        }
    };
    if a.identities > 1 && a.auth != Auth::Psk {
        return Err("--identities needs --auth psk (certificates carry one identity)".into());
    }
    if a.identities > 1 && !a.id_template.contains("{}") {
        return Err(format!("--id-template {}: needs {{}}", a.id_template));
    }
    for (name, v) in [
        ("--timeout", a.timeout),
        ("--retransmit", a.retransmit),
        ("--hold", a.hold),
        ("--duration", a.duration),
    ] {
        if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
            return Err(format!("{name} {v}: seconds between 0 and 86400"));
        }
    }
    if a.timeout <= 0.0 || a.retransmit < 0.05 {
        return Err("--timeout must be > 0 and --retransmit at least 0.05".into());
    }
    let remote_identity = Identity::parse_config(&a.remote_id)
        .map_err(|e| format!("--remote-id {}: {e}", a.remote_id))?;
    let timers = Timers {
        retransmit_timeout: Duration::from_secs_f64(a.retransmit),
        // Nothing of ours may fire during a run: no rekeying, no liveness checks.
        ike_rekey: Duration::ZERO,
        liveness_interval: Duration::from_secs(86_400),
        ..Timers::default()
    };
    let ids: Vec<String> = if a.identities > 1 {
        (1..=a.identities)
            .map(|i| identity_for(&a.id_template, i))
            .collect()
    } else if a.auth == Auth::Psk {
        vec![a.id.clone()]
    } else {
        vec![MN1_ID.to_string()]
    };
    // LocalAuth is not Clone (it holds secrets): the parts are shared, one LocalAuth each.
    let (cert, trust) = match a.auth {
        Auth::Psk => (None, None),
        Auth::Ecdsa | Auth::Rsa => {
            let ((cert, key), ca) = if a.auth == Auth::Ecdsa {
                (MN1_ECDSA, CA_ECDSA)
            } else {
                (MN1_RSA, CA_RSA)
            };
            (
                Some((
                    Arc::new(PrivateKey::from_pem(key).map_err(|e| e.to_string())?),
                    certs_from_pem(cert).map_err(|e| e.to_string())?,
                )),
                Some(Arc::new(
                    TrustAnchors::from_pem(ca).map_err(|e| e.to_string())?,
                )),
            )
        }
    };
    let auth = || match &cert {
        Some((key, chain)) => LocalAuth::Certificate {
            key: key.clone(),
            chain: chain.clone(),
            style: SignatureStyle::DigitalSignature,
        },
        None => LocalAuth::Psk(zeroize::Zeroizing::new(a.psk.as_bytes().to_vec())),
    };
    let mut configs = Vec::with_capacity(ids.len());
    for id in ids {
        let identity = Identity::parse_config(&id).map_err(|e| format!("identity {id}: {e}"))?;
        let mobility = crate::ike::MobilityConfig {
            // Many initiators of one identity: none may pass for a restart of the others.
            initial_contact: false,
            nat_port,
            ..Default::default()
        };
        configs.push(Arc::new(Config {
            identity,
            auth: auth(),
            trust: trust.clone(),
            ike_proposals: vec![ike.clone()],
            esp_proposals: vec![esp.clone()],
            prefer: Prefer::Ours,
            timers,
            reqids: HashMap::new(),
            cookie_threshold: 1000,
            max_half_open: 10_000,
            home_agent: None,
            max_half_open_per_source: crate::ike::DEFAULT_HALF_OPEN_PER_SOURCE,
            init_rate_per_source: crate::ike::DEFAULT_INIT_RATE_PER_SOURCE,
            replay_window: 32,
            mobility,
            fragmentation: Default::default(),
            revocation: Default::default(),
        }));
    }
    Ok(Plan {
        configs,
        home_address,
        home_agent,
        class,
        remote_identity,
    })
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// One initiator engine (one identity) and its kernel.
struct Initiator {
    ep: Endpoint,
    kernel: MemoryKernel,
}

/// One initiation we are watching.
struct InFlight {
    engine: usize,
    started: Instant,
    up: bool,
    /// When our Delete went out (delete mode, once up).
    deleting: Option<Instant>,
}

/// The socket side of a run: sends what the engines queue, hands datagrams to their owner.
struct Runner {
    /// The IKE socket and the NAT-T socket (the engine's `nat_port`): a responder that moves
    /// IKE_AUTH to UDP 4500 (strongSwan's kernel-libipsec fakes a NAT to get ESP in UDP)
    /// talks to the second, with the non-ESP marker.
    sock: UdpSocket,
    local: SocketAddr,
    natt: UdpSocket,
    natt_local: SocketAddr,
    engines: Vec<Initiator>,
    /// Our IKE SPI -> engine (every SA an engine started or rekeyed to).
    owner: HashMap<u64, usize>,
    flight: HashMap<u64, InFlight>,
    failures: HashMap<String, u64>,
    report: Report,
    keep: bool,
    last_up: Option<Instant>,
    send_errors: u64,
}

impl Runner {
    /// Applies kernel ops, handles events, sends datagrams of engine `i`.
    fn drain(&mut self, i: usize, t: Now) {
        let mut events = Vec::new();
        {
            let e = &mut self.engines[i];
            while let Some(op) = e.ep.poll_kernel_op() {
                // The in-memory kernel refuses nothing that matters here; a refusal is the
                // engine's bookkeeping, not the responder's.
                let _ = e.kernel.apply(&op);
            }
            while let Some(ev) = e.ep.poll_event() {
                events.push(ev);
            }
            while let Some(tx) = e.ep.poll_transmit() {
                let sent = if tx.local.port() == self.natt_local.port() {
                    let mut d = Vec::with_capacity(tx.data.len() + 4);
                    d.extend_from_slice(&[0; 4]);
                    d.extend_from_slice(&tx.data);
                    self.natt.send_to(&d, tx.remote)
                } else {
                    self.sock.send_to(&tx.data, tx.remote)
                };
                if sent.is_err() {
                    self.send_errors += 1;
                }
            }
        }
        for ev in events {
            self.event(i, ev, t);
        }
    }

    fn fail(&mut self, why: &str) {
        self.report.failed += 1;
        // The first words say what failed; numbers and addresses would make every entry unique.
        let key: String = why.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
        *self.failures.entry(key).or_insert(0) += 1;
    }

    fn event(&mut self, i: usize, ev: Event, t: Now) {
        match ev {
            Event::ChildUp(info) => {
                let Some(f) = self.flight.get_mut(&info.ike.0) else {
                    return;
                };
                if f.up {
                    return;
                }
                f.up = true;
                self.report.completed += 1;
                self.report.latency.push(t.at.duration_since(f.started));
                self.last_up = Some(t.at);
                if self.keep {
                    self.flight.remove(&info.ike.0);
                    self.report.held += 1;
                } else {
                    f.deleting = Some(t.at);
                    let r = self.engines[i]
                        .ep
                        .handle_command(t, Command::Terminate { ike: info.ike });
                    if r.is_err() {
                        self.flight.remove(&info.ike.0);
                    }
                    self.drain(i, t);
                }
            }
            Event::IkeDown { ike, reason } => {
                self.owner.remove(&ike.0);
                if let Some(f) = self.flight.remove(&ike.0)
                    && !f.up
                {
                    self.fail(&reason);
                }
            }
            Event::ExchangeFailed {
                ike,
                exchange,
                notify,
                reason,
            } => {
                if let Some(f) = self.flight.get(&ike.0)
                    && !f.up
                    && (exchange == "IKE_SA_INIT" || exchange == "IKE_AUTH")
                {
                    self.flight.remove(&ike.0);
                    let n = notify.map(|n| format!(" (notify {n})")).unwrap_or_default();
                    self.fail(&format!("{exchange}{n}: {reason}"));
                }
            }
            Event::IkeRekeyed { old, new } => {
                self.owner.insert(new.0, i);
                if let Some(f) = self.flight.remove(&old.0) {
                    self.flight.insert(new.0, f);
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, plan: &Plan, n: u64, target: SocketAddr, t: Now) -> Result<(), String> {
        let i = (n % self.engines.len() as u64) as usize;
        let cmd = Command::Initiate {
            local: self.local,
            remote: target,
            home_agent: plan.home_agent,
            home_address: plan.home_address,
            classes: vec![plan.class],
            remote_identity: Some(plan.remote_identity.clone()),
        };
        let id: IkeId = self.engines[i].ep.handle_command(t, cmd)?;
        self.owner.insert(id.0, i);
        self.flight.insert(
            id.0,
            InFlight {
                engine: i,
                started: t.at,
                up: false,
                deleting: None,
            },
        );
        self.report.started += 1;
        self.drain(i, t);
        Ok(())
    }

    fn datagram(&mut self, local: SocketAddr, data: &[u8], from: SocketAddr, t: Now) {
        // Our SPI is the initiator's (we only initiate); an answer for an SA we forgot is dropped.
        let Some(spi) = data
            .get(..8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        else {
            return;
        };
        let Some(&i) = self.owner.get(&spi) else {
            return;
        };
        self.engines[i].ep.handle_datagram(t, local, from, data);
        self.drain(i, t);
    }

    /// Runs due timers of every engine; gives up on initiations past `timeout`.
    fn tick(&mut self, t: Now, timeout: Duration) {
        for i in 0..self.engines.len() {
            if self.engines[i]
                .ep
                .next_deadline()
                .is_some_and(|d| d <= t.at)
            {
                self.engines[i].ep.handle_timeout(t);
                self.drain(i, t);
            }
        }
        let late: Vec<u64> = self
            .flight
            .iter()
            .filter(|(_, f)| t.at.duration_since(f.deleting.unwrap_or(f.started)) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in late {
            if let Some(f) = self.flight.remove(&k) {
                if f.up {
                    self.report.delete_timeouts += 1;
                } else {
                    self.fail("timeout");
                    // Not waiting any longer; an SA that comes up later is deleted at once.
                    let _ = self.engines[f.engine]
                        .ep
                        .handle_command(t, Command::Terminate { ike: IkeId(k) });
                    self.drain(f.engine, t);
                }
            }
        }
    }

    fn next_wake(&self, t: Now) -> Duration {
        // A scan of thousands of engines per datagram would cost more than the datagram: the
        // engines' deadlines are looked at on a 10 ms tick instead (timers are seconds apart).
        let d = if self.engines.len() <= 16 {
            self.engines
                .iter()
                .filter_map(|e| e.ep.next_deadline())
                .min()
                .map_or(Duration::from_millis(50), |d| {
                    d.saturating_duration_since(t.at)
                })
        } else {
            Duration::from_millis(10)
        };
        d.clamp(Duration::from_millis(1), Duration::from_millis(50))
    }

    /// Waits up to `wait` for datagrams on either socket, then hands over all that are queued.
    fn receive_for(&mut self, wait: Duration, buf: &mut [u8]) -> Result<(), String> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [
            PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.natt.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        for (k, r) in ready.into_iter().enumerate() {
            if r {
                self.drain_socket(k == 1, buf)?;
            }
        }
        Ok(())
    }

    /// Everything queued on one (non-blocking) socket.
    fn drain_socket(&mut self, natt: bool, buf: &mut [u8]) -> Result<(), String> {
        for _ in 0..4096 {
            let (sock, local) = if natt {
                (&self.natt, self.natt_local)
            } else {
                (&self.sock, self.local)
            };
            match sock.recv_from(buf) {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    // On the NAT-T port only datagrams with the non-ESP marker are IKE (a
                    // keepalive is one 0xFF byte, ESP in UDP is the kernel's business).
                    let ike = if natt {
                        match data.strip_prefix(&[0u8; 4]) {
                            Some(d) => d.to_vec(),
                            None => continue,
                        }
                    } else {
                        data.to_vec()
                    };
                    self.datagram(local, &ike, from, now());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ICMP port unreachable (responder not up yet) shows as ECONNREFUSED on some
                // stacks: the engine's retransmission covers it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        // Enough for now: let timers and new initiations move under a flood of answers.
        Ok(())
    }
}

/// Binds the IKE socket (to `local`, or to the source address the kernel would pick for
/// `target`) and a NAT-T socket on the same address.
type Sockets = ((UdpSocket, SocketAddr), (UdpSocket, SocketAddr));
fn bind(target: SocketAddr, local: Option<SocketAddr>) -> Result<Sockets, String> {
    let local = match local {
        Some(l) => l,
        None => {
            let any: SocketAddr = if target.is_ipv6() {
                "[::]:0".parse().expect("literal")
            } else {
                "0.0.0.0:0".parse().expect("literal")
            };
            let probe = UdpSocket::bind(any).map_err(|e| format!("socket: {e}"))?;
            probe
                .connect(target)
                .map_err(|e| format!("no route to {target}: {e}"))?;
            let mut a = probe.local_addr().map_err(|e| e.to_string())?;
            a.set_port(0);
            a
        }
    };
    if local.ip().is_unspecified() {
        return Err(format!(
            "--local {local}: give a specific address (NAT detection hashes it)"
        ));
    }
    let one = |at: SocketAddr| -> Result<(UdpSocket, SocketAddr), String> {
        let sock = UdpSocket::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
        // A window of answers arrives in bursts; the default buffer would drop some of them.
        let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = sock.local_addr().map_err(|e| e.to_string())?;
        Ok((sock, addr))
    };
    let ike = one(local)?;
    let mut n = local;
    n.set_port(0);
    Ok((ike, one(n)?))
}

/// Runs the load as `args` says; `progress` gets one line per second unless quiet.
pub fn run(args: &LoadArgs, mut progress: impl FnMut(&str)) -> Result<Report, String> {
    plan(args, 4500)?; // the arguments' errors before any socket's
    let ((sock, local), (natt, natt_local)) = bind(args.target, args.local)?;
    let plan = plan(args, natt_local.port())?;
    let t0 = now();
    let engines = plan
        .configs
        .iter()
        .map(|c| Initiator {
            ep: Endpoint::new(c.clone(), Box::new(SystemRng::default()), t0),
            kernel: MemoryKernel::new(),
        })
        .collect();
    let mut r = Runner {
        sock,
        local,
        natt,
        natt_local,
        engines,
        owner: HashMap::new(),
        flight: HashMap::new(),
        failures: HashMap::new(),
        report: Report::default(),
        keep: args.keep,
        last_up: None,
        send_errors: 0,
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let stop_starting = (args.duration > 0.0).then(|| Duration::from_secs_f64(args.duration));
    let mut buf = vec![0u8; 65_536];
    let begin = Instant::now();
    let mut next_progress = begin + Duration::from_secs(1);
    let mut n = 0u64;
    loop {
        let t = now();
        let may_start = stop_starting.is_none_or(|d| t.at.duration_since(begin) < d);
        while n < args.count && may_start && (r.flight.len() as u64) < args.window {
            r.start(&plan, n, args.target, t)?;
            n += 1;
        }
        if (n >= args.count || !may_start) && r.flight.is_empty() {
            break;
        }
        let wait = r.next_wake(t);
        r.receive_for(wait, &mut buf)?;
        r.tick(now(), timeout);
        if !args.quiet && Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            progress(&format!(
                "{:>5.1} s: {} started, {} completed, {} failed, {} in flight",
                begin.elapsed().as_secs_f64(),
                r.report.started,
                r.report.completed,
                r.report.failed,
                r.flight.len()
            ));
        }
    }
    r.report.elapsed = r
        .last_up
        .map_or(Duration::ZERO, |u| u.duration_since(begin));
    if args.keep {
        progress(&format!(
            "holding {} SAs for {:.1} s",
            r.report.held, args.hold
        ));
        let until = Instant::now() + Duration::from_secs_f64(args.hold);
        while Instant::now() < until {
            let wait = r
                .next_wake(now())
                .min(until.saturating_duration_since(Instant::now()));
            r.receive_for(wait.max(Duration::from_millis(1)), &mut buf)?;
            r.tick(now(), timeout);
        }
        // Deletes for everything, fire and forget, as a daemon at shutdown.
        let t = now();
        for i in 0..r.engines.len() {
            let _ = r.engines[i].ep.handle_command(t, Command::Shutdown);
            r.drain(i, t);
        }
    }
    let mut failures: Vec<(String, u64)> = r.failures.drain().collect();
    failures.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    r.report.failures = failures;
    if r.send_errors > 0 {
        r.report
            .failures
            .push(("send errors (datagrams)".into(), r.send_errors));
    }
    Ok(r.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<LoadArgs, clap::Error> {
        let mut v = vec!["mip6-ike-load", "--target", "[2001:db8:1::1]:500"];
        v.extend_from_slice(extra);
        LoadArgs::try_parse_from(v)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.count, 1000);
        assert_eq!(a.window, 32);
        assert_eq!(a.auth, Auth::Ecdsa);
        assert!(!a.keep);
        let p = plan(&a, 4500).unwrap();
        assert_eq!(p.configs.len(), 1);
        assert_eq!(p.home_agent, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.class, SaClass::Payload);
        assert_eq!(
            p.home_address,
            HomeAddress::Static("2001:db8:1::100".parse().unwrap())
        );
        assert!(!p.configs[0].mobility.initial_contact);
        assert_eq!(p.configs[0].identity.to_string(), MN1_ID);
    }

    #[test]
    fn rsa_defaults_to_modp2048() {
        let a = parse(&["--auth", "rsa"]).unwrap();
        let p = plan(&a, 4500).unwrap();
        assert_eq!(
            p.configs[0].ike_proposals[0],
            parse_ike_proposal("aes128-sha256-modp2048").unwrap()
        );
    }

    #[test]
    fn bad_values_refused() {
        assert!(parse(&["--count", "0"]).is_err());
        assert!(parse(&["--window", "0"]).is_err());
        assert!(parse(&["--auth", "dsa"]).is_err());
        assert!(parse(&["--target", "nowhere"]).is_err());
        for bad in [
            &["--hoa", "somewhere"][..],
            &["--class", "everything"],
            &["--ike", "aes128-md5-x25519"],
            &["--identities", "3"],
            &[
                "--auth",
                "psk",
                "--identities",
                "3",
                "--id-template",
                "fqdn:x",
            ],
            &["--timeout", "0"],
            &["--timeout", "NaN"],
            &["--retransmit", "0.001"],
            &["--remote-id", "bogus"],
        ] {
            let a = parse(bad).unwrap();
            assert!(plan(&a, 4500).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn identities_from_template() {
        let a = parse(&[
            "--auth",
            "psk",
            "--identities",
            "3",
            "--hoa",
            "dynamic",
            "--id-template",
            "fqdn:m{}.x",
        ])
        .unwrap();
        let p = plan(&a, 4500).unwrap();
        let ids: Vec<String> = p.configs.iter().map(|c| c.identity.to_string()).collect();
        assert_eq!(ids, ["fqdn:m1.x", "fqdn:m2.x", "fqdn:m3.x"]);
        assert_eq!(p.home_address, HomeAddress::Dynamic);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.percentile(50.0), None);
        for ms in [5u64, 1, 4, 2, 3, 10, 9, 8, 7, 6] {
            l.push(Duration::from_millis(ms));
        }
        let p = |l: &mut Latencies, q| l.percentile(q).unwrap().as_millis();
        assert_eq!(p(&mut l, 50.0), 5);
        assert_eq!(p(&mut l, 90.0), 9);
        assert_eq!(p(&mut l, 99.0), 10);
        assert_eq!(p(&mut l, 0.0), 1);
        assert_eq!(p(&mut l, 150.0), 10);
        assert_eq!(l.max().unwrap().as_millis(), 10);
        // Pushing after a query re-sorts.
        l.push(Duration::from_millis(0));
        assert_eq!(p(&mut l, 0.0), 0);
        let mut one = Latencies::default();
        one.push(Duration::from_millis(7));
        assert_eq!(p(&mut one, 1.0), 7);
        assert_eq!(p(&mut one, 99.9), 7);
    }

    #[test]
    fn report_line_and_rate() {
        let mut r = Report {
            started: 4,
            completed: 3,
            failed: 1,
            elapsed: Duration::from_millis(1500),
            ..Default::default()
        };
        for ms in [10, 20, 30] {
            r.latency.push(Duration::from_millis(ms));
        }
        assert!((r.rate() - 2.0).abs() < 1e-9);
        let l = r.result_line();
        assert!(
            l.starts_with(
                "RESULT started=4 completed=3 failed=1 elapsed=1.500 rate=2.0 p50_ms=20.00"
            ),
            "{l}"
        );
        assert!(l.contains("max_ms=30.00"), "{l}");
        assert_eq!(Report::default().rate(), 0.0);
        assert!(Report::default().result_line().contains("p50_ms=-1.00"));
    }
}
