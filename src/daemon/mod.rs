//! Tokio glue, free of protocol logic: UDP sockets in, [`Endpoint`] calls, and whatever the
//! engine returns carried out (datagrams sent, kernel operations applied, events logged and
//! broadcast). One task owns the Endpoints (one per engine shard, see [`shards`]); socket
//! readers feed it (or, with several shards, each shard's thread) through bounded channels, and
//! signals or the control socket through [`Control`] messages.

pub mod control;
pub mod crl_fetch;
mod crl_watch;
pub mod demo;
pub mod kernel;
mod leases;
mod ocsp_fetch;
mod shards;
pub mod show;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::crypto::SystemRng;
use crate::ike::{Command, Endpoint, Event, IkeId, IkeSaInfo, Now, Transmit};
use crate::kernel::memory::MemoryKernel;
use crate::kernel::{Kernel, KernelEvent, KernelOp};
use crate::mobility::{Lease, LeaseStore, SaveHook};
use crate::policy::{self, KernelBackend, LoadedConfig, Role};
pub use kernel::make_kernel;
use shards::{EpGuard, Shard};
pub use shards::{init_shard, route as route_to_shard};
use udp::{IkeSocket, NatPortPayload, classify_nat_port};

/// Datagrams read and waiting for the engine; beyond this, readers wait and the socket's receive
/// buffer fills (a flood must not grow memory; the kernel counts what it drops).
const INBOUND_QUEUE: usize = 1024;
/// Events buffered per slow subscriber.
const EVENT_QUEUE: usize = 256;
/// After a move, how long to wait before checking the kernel's SAs: mip6d sends its 4-8
/// MIGRATEs of one move within milliseconds, and the kernel moves tunnel SAs with them.
const RESYNC_AFTER_MOVE: Duration = Duration::from_millis(300);
/// Mobile node: first wait before initiating again after the IKE SA went down, and the cap.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What signals, the control socket and tests ask of a running daemon.
pub enum Control {
    /// Delete every SA (telling peers), flush, and return (SIGTERM, SIGINT).
    Shutdown,
    /// Read the configuration again (SIGHUP). A bad file is logged and the old one kept.
    Reload,
    /// The engine's view of every IKE SA.
    List(oneshot::Sender<Vec<IkeSaInfo>>),
    /// The (destination, SPI) of every SA the kernel backend holds.
    KernelSas(oneshot::Sender<Vec<(IpAddr, u32)>>),
    /// Any engine command (CreateChild, Terminate, ...).
    Command(Command, oneshot::Sender<Result<IkeId, String>>),
    /// Work of the control socket, run on the daemon's task (see [`control`]).
    Call(Box<dyn FnOnce(&mut Daemon) + Send>),
    /// Home agent: the dynamic home addresses and prefixes given out.
    Leases(oneshot::Sender<Vec<Lease>>),
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Shutdown => f.write_str("Shutdown"),
            Control::Reload => f.write_str("Reload"),
            Control::List(_) => f.write_str("List"),
            Control::KernelSas(_) => f.write_str("KernelSas"),
            Control::Command(c, _) => write!(f, "Command({c:?})"),
            Control::Call(_) => f.write_str("Call"),
            Control::Leases(_) => f.write_str("Leases"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// An IKE socket without its IPsec bypass policies (XFRM backend only).
    #[error("{0}")]
    Bypass(udp::BypassError),
    #[error("{0}")]
    Config(String),
    #[error("kernel backend: {0}")]
    Kernel(String),
}

/// The engine's clock: monotonic for timers, Unix seconds for certificate validity.
pub fn now() -> Now {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Now {
        at: Instant::now(),
        unix,
    }
}

/// A MemoryKernel that the caller can still look into while the daemon owns it (demo, tests).
#[derive(Clone, Default)]
pub struct SharedKernel(pub Arc<Mutex<MemoryKernel>>);

impl SharedKernel {
    pub fn new() -> Self {
        Self::default()
    }
    /// Runs `f` on the kernel's current content.
    pub fn with<R>(&self, f: impl FnOnce(&MemoryKernel) -> R) -> R {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }
}

impl Kernel for SharedKernel {
    fn apply(&mut self, op: &KernelOp) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).apply(op)
    }
    fn installed(&self) -> Vec<(IpAddr, u32)> {
        self.with(|k| k.installed())
    }
    fn counters(&self) -> Vec<(IpAddr, u32, crate::kernel::SaCounters)> {
        self.with(|k| k.counters())
    }
    fn sa_use(&self, sas: &[(IpAddr, u32)]) -> Vec<Option<crate::kernel::SaCounters>> {
        self.with(|k| k.sa_use(sas))
    }
}

/// A datagram for the engine.
struct Datagram {
    local: SocketAddr,
    remote: SocketAddr,
    data: Vec<u8>,
}

/// Where the socket readers hand datagrams: one channel per shard (with one shard, the
/// daemon's task), chosen by [`shards::route`].
struct Inbound {
    txs: Vec<mpsc::Sender<Datagram>>,
    hash: std::collections::hash_map::RandomState,
}

impl Inbound {
    fn for_datagram(&self, d: &Datagram) -> Option<&mpsc::Sender<Datagram>> {
        self.txs.get(shards::route(
            &d.data,
            d.remote.ip(),
            self.txs.len(),
            &self.hash,
        ))
    }
}

/// What one shard queued, taken in one go.
#[derive(Default)]
struct Output {
    leases_changed: bool,
    transmits: Vec<Transmit>,
    kernel_ops: Vec<KernelOp>,
    events: Vec<Event>,
    notes: Vec<crate::ike::ShardNote>,
}

/// A bound daemon, not yet running: lets the caller learn the bound ports and subscribe to
/// events before anything happens.
pub struct Daemon {
    cfg: LoadedConfig,
    /// The engine shards (one for a mobile node): see [`shards`].
    shards: Vec<Arc<Shard>>,
    /// The next shard an `initiate` goes to.
    next_initiate: usize,
    kernel: Box<dyn Kernel>,
    sockets: Vec<Arc<IkeSocket>>,
    bound: Vec<SocketAddr>,
    events: broadcast::Sender<Event>,
    /// Home agent: saves leases whenever they change, and holds the replies that wait for it.
    lease_writer: Option<leases::LeaseWriter>,
    /// Feeds the engine task; kept to start readers for sockets bound later (a new CoA).
    inbound_tx: Option<Arc<Inbound>>,
    /// Readers of sockets bound after start.
    late_readers: Vec<JoinHandle<()>>,
    /// Mobile node: our care-of address as last seen (IkeUp, Migrated), for re-initiation.
    mn_coa: Option<IpAddr>,
    /// Mobile node: the IKE SA we started, and when to try again after it went down.
    mn_ike: Option<IkeId>,
    retry_at: Option<Instant>,
    retry_wait: Duration,
    started: Instant,
    /// XFRM backend: the listener for ACQUIRE, EXPIRE and MIGRATE.
    kernel_events: Option<kernel::KernelEvents>,
    acquire: kernel::AcquireState,
    /// When to check the kernel's SAs against the record (set by moves), and of which IKE
    /// SAs (a home agent with many mobile nodes checks only those that moved).
    resync_at: Option<Instant>,
    resync_moved: std::collections::BTreeSet<IkeId>,
    /// Looks for changed CRL files (`[revocation] check_interval`).
    crl_watch: crl_watch::CrlWatch,
    /// The CRLs of the files, and the fetcher of CRLs from distribution points: the engine
    /// gets both together (see `publish_crls`).
    file_crls: Arc<crate::auth::revocation::CrlSet>,
    crl_fetcher: crl_fetch::CrlFetcher,
    ocsp_fetcher: ocsp_fetch::OcspFetcher,
    /// When to ask again about established SAs' OCSP answers older than
    /// `[revocation] ocsp_recheck` (a quarter of it, at most a minute, between looks).
    ocsp_refresh_at: Option<Instant>,
}

impl Daemon {
    /// Binds every listen address on the IKE port and the NAT-T port.
    pub fn bind(cfg: LoadedConfig, mut kernel: Box<dyn Kernel>) -> Result<Daemon, DaemonError> {
        let mut sockets = Vec::new();
        let bypass = udp::Bypass::for_backend(cfg.kernel.backend);
        for addr in &cfg.listen.addresses {
            for (port, nat) in [(cfg.listen.port, false), (cfg.listen.nat_port, true)] {
                let sa = SocketAddr::new(*addr, port);
                let s = IkeSocket::bind(sa, nat, bypass).map_err(|e| e.into_daemon_error(sa))?;
                size_receive_buffer(&s, cfg.listen.receive_buffer, sockets.is_empty());
                info!(local = %s.local_addr(), nat_t = nat, "listening");
                sockets.push(Arc::new(s));
            }
        }
        let bound = sockets.iter().map(|s| s.local_addr()).collect();
        // A mobile node has one IKE SA to its home agent: one shard is all it can use.
        let count = match cfg.role {
            Role::MobileNode => 1,
            Role::HomeAgent => cfg.shards.clamp(1, crate::ike::MAX_SHARDS),
        };
        let mut endpoints = Vec::with_capacity(count);
        for i in 0..count {
            let mut ep = Endpoint::new(cfg.engine.clone(), Box::new(SystemRng::default()), now());
            ep.set_shard(i, count);
            if let Some(a) = kernel.spi_allocator() {
                ep.set_spi_allocator(a);
            }
            ep.set_crls(now(), cfg.revocation.crls.clone());
            ep.set_crl_fetch(cfg.revocation.fetch.then_some(cfg.revocation.fetch_timeout));
            // Liveness asks the kernel about inbound ESP first; `flush` answers.
            ep.set_esp_liveness(true);
            ep.set_ocsp(cfg.revocation.ocsp.clone());
            endpoints.push(ep);
        }
        if count > 1 {
            info!(shards = count, "engine shards");
        }
        let endpoint = &mut endpoints[0];
        let crl_watch = crl_watch::CrlWatch::new(&cfg.revocation, Instant::now());
        let ocsp_refresh_at = ocsp_refresh_period(&cfg.revocation).map(|p| Instant::now() + p);
        let file_crls = cfg.revocation.crls.clone();
        let crl_fetcher = crl_fetch::CrlFetcher::new(cfg.revocation.fetch_timeout);
        let ocsp_fetcher = ocsp_fetch::OcspFetcher::new(cfg.revocation.fetch_timeout);
        // Opened here, in the caller's network namespace, like the IKE sockets.
        let kernel_events = match cfg.kernel.backend {
            KernelBackend::Xfrm => Some(kernel::spawn_listener()?),
            KernelBackend::Memory => None,
        };
        let lease_store = cfg.lease_file.as_ref().map(LeaseStore::new);
        if let Some(store) = &lease_store {
            // A lease file that cannot be read stops the start: handing its addresses out
            // again would give one home address to two mobile nodes.
            let leases = store.load().map_err(DaemonError::Config)?;
            info!(file = %store.path().display(), count = leases.len(), "leases loaded");
            endpoint.restore_leases(leases);
        }
        // One lease table for all shards (see `ike::shard`).
        let table = endpoints[0].lease_table();
        let sources = endpoints[0].source_limits();
        for ep in endpoints.iter_mut().skip(1) {
            ep.share_leases(table.clone());
            ep.share_source_limits(sources.clone());
        }
        // The writer keeps its own copy of the table from here on (it journals the changes).
        let lease_writer = lease_store.map(|s| leases::LeaseWriter::new(s, endpoints[0].leases()));
        let shards = endpoints
            .into_iter()
            .map(|ep| Arc::new(Shard::new(ep)))
            .collect();
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        Ok(Daemon {
            cfg,
            shards,
            next_initiate: 0,
            kernel,
            sockets,
            bound,
            events,
            lease_writer,
            inbound_tx: None,
            late_readers: Vec::new(),
            mn_coa: None,
            mn_ike: None,
            retry_at: None,
            retry_wait: RETRY_FIRST,
            started: Instant::now(),
            kernel_events,
            acquire: kernel::AcquireState::default(),
            resync_at: None,
            resync_moved: Default::default(),
            crl_watch,
            ocsp_refresh_at,
            file_crls,
            crl_fetcher,
            ocsp_fetcher,
        })
    }

    /// Bound addresses as (address, is NAT-T port), in listen order.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.sockets
            .iter()
            .map(|s| (s.local_addr(), s.is_nat()))
            .collect()
    }

    /// The first bound IKE (non-NAT-T) address.
    pub fn ike_addr(&self) -> Option<SocketAddr> {
        self.sockets
            .iter()
            .find(|s| !s.is_nat())
            .map(|s| s.local_addr())
    }

    /// Runs `hook` before every write of the lease file, off the engine task (tests and
    /// benchmarks: counting writes, slowing them down). No effect without a lease file.
    pub fn set_lease_hook(&mut self, hook: SaveHook) {
        if let Some(w) = &mut self.lease_writer {
            w.set_hook(hook);
        }
    }

    /// Datagrams the kernel dropped on our sockets before we read them (full receive buffers),
    /// as far as the datagrams read since have told (SO_RXQ_OVFL).
    pub fn kernel_drops(&self) -> u64 {
        self.sockets
            .iter()
            .map(|s| u64::from(s.kernel_drops()))
            .sum()
    }

    /// Every engine event, as it happens.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs until [`Control::Shutdown`] (or until every control sender is gone), then deletes
    /// all SAs, flushes what the engine produced and returns the kernel backend.
    pub async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
    ) -> Result<Box<dyn Kernel>, DaemonError> {
        // Before the readers start, so that a failure leaves no task behind.
        if self
            .cfg
            .mobile_node
            .as_ref()
            .is_some_and(|mn| mn.auto_initiate)
        {
            self.initiate()?;
        }
        let (tx, mut inbound) = mpsc::channel::<Datagram>(INBOUND_QUEUE);
        // With one shard the datagrams come to this task, as always; with more, each shard's
        // thread takes its own, and tells this task when it has output.
        let (out_tx, mut shard_out) = mpsc::channel::<()>(1);
        let mut workers = Vec::new();
        let txs = if self.shards.len() == 1 {
            vec![tx]
        } else {
            drop(tx);
            let mut txs = Vec::new();
            for (i, shard) in self.shards.iter().enumerate() {
                let (stx, srx) = mpsc::channel::<Datagram>(shards::SHARD_QUEUE);
                let w =
                    shards::spawn_worker(i, shard.clone(), srx, out_tx.clone()).map_err(|e| {
                        DaemonError::Config(format!("cannot start engine shard {i}: {e}"))
                    })?;
                workers.push(w);
                txs.push(stx);
            }
            txs
        };
        drop(out_tx);
        let sink = Arc::new(Inbound {
            txs,
            hash: std::collections::hash_map::RandomState::new(),
        });
        let readers: Vec<JoinHandle<()>> = self
            .sockets
            .iter()
            .map(|s| tokio::spawn(reader(s.clone(), sink.clone())))
            .collect();
        if self.cfg.role == Role::MobileNode {
            self.inbound_tx = Some(sink.clone());
        }
        drop(sink);
        let mut kevents = self.kernel_events.take();
        // With shard threads, they run the engine's timers.
        let engine_timers = self.shards.len() == 1;

        loop {
            let more = self.flush().await;
            let lease_retry = self.lease_writer.as_ref().and_then(|w| w.retry_at());
            let deadline = [
                more.then(Instant::now),
                if engine_timers {
                    self.ep(0).next_deadline()
                } else {
                    None
                },
                self.retry_at,
                self.resync_at,
                lease_retry,
                self.crl_watch.deadline(),
                self.crl_fetcher.deadline(),
                self.ocsp_refresh_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let writing = self.lease_writer.as_ref().is_some_and(|w| w.is_writing());
            tokio::select! {
                c = control.recv() => match c {
                    None | Some(Control::Shutdown) => break,
                    Some(c) => self.control(c),
                },
                Some(d) = inbound.recv() => {
                    self.ep(0).handle_datagram(now(), d.local, d.remote, &d.data);
                }
                // A shard's thread has output: the next flush carries it out.
                Some(()) = shard_out.recv() => {}
                () = lease_written(&mut self.lease_writer), if writing => {
                    self.send_released().await;
                }
                crls = self.crl_watch.next() => {
                    self.file_crls = crls;
                    self.publish_crls();
                }
                Some(f) = self.crl_fetcher.next() => {
                    let n = now();
                    if self.crl_fetcher.finished(f, n.at, n.unix) {
                        self.publish_crls();
                    }
                }
                Some(a) = self.ocsp_fetcher.next() => {
                    // The query number carries the shard that asked (see `ike::shard`).
                    let i = crate::ike::shard_of_spi(a.query, self.shards.len());
                    self.ep(i).ocsp_response(now(), a.query, a.body);
                }
                Some(msg) = recv_kernel(&mut kevents), if kevents.is_some() => match msg {
                    kernel::KernelMsg::Event(ev) => self.on_kernel_event(ev),
                    kernel::KernelMsg::Lost => self.resync_lost(),
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let n = now();
                    if engine_timers {
                        self.ep(0).handle_timeout(n);
                    }
                    if let Some(w) = &mut self.lease_writer {
                        w.on_timer(n.at);
                    }
                    if self.resync_at.is_some_and(|t| t <= n.at) {
                        self.resync_at = None;
                        let moved = std::mem::take(&mut self.resync_moved);
                        // One dump per IKE SA that moved; all at once when several did.
                        let only = match moved.iter().collect::<Vec<_>>().as_slice() {
                            [one] => Some((**one, None)),
                            _ => None,
                        };
                        self.resync_sas(only, true, "after a move");
                    }
                    self.crl_watch.poll(n.at, self.cfg.engine.trust.as_ref());
                    if self.ocsp_refresh_at.is_some_and(|t| t <= n.at) {
                        self.ocsp_refresh_at =
                            ocsp_refresh_period(&self.cfg.revocation).map(|p| n.at + p);
                        if let Some(max_age) = self.cfg.revocation.ocsp_recheck {
                            let asked: usize = (0..self.shards.len())
                                .map(|i| self.ep(i).ocsp_refresh(n, max_age))
                                .sum();
                            if asked > 0 {
                                info!(asked, "OCSP re-check of established SAs (answers older than ocsp_recheck)");
                            }
                        }
                    }
                    if self.crl_fetcher.deadline().is_some_and(|t| t <= n.at) {
                        self.crl_fetcher.refresh(n.at, self.cfg.engine.trust.clone());
                    }
                    if self.retry_at.is_some_and(|t| t <= n.at) {
                        self.retry_at = None;
                        if let Err(e) = self.initiate() {
                            warn!("cannot initiate: {e}");
                            self.schedule_retry();
                        }
                    }
                }
            }
        }
        info!("shutting down: deleting all SAs");
        // No new initiation for SAs that go down now.
        self.mn_ike = None;
        // The shards' threads stop first: nothing new starts while the SAs go.
        for shard in &self.shards {
            shards::stop(shard);
        }
        for w in workers {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        for i in 0..self.shards.len() {
            if let Err(e) = self.ep(i).handle_command(now(), Command::Shutdown) {
                warn!("shutdown: {e}");
            }
        }
        while self.flush().await {}
        self.finish_lease_writes().await;
        for r in readers.into_iter().chain(self.late_readers.drain(..)) {
            r.abort();
        }
        drop(kevents);
        let left = self.kernel.installed();
        if !left.is_empty() {
            warn!(count = left.len(), "SAs still installed after shutdown");
        }
        Ok(self.kernel)
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Shutdown => {}
            Control::Reload => self.reload(),
            Control::List(reply) => {
                let _ = reply.send(self.list());
            }
            Control::KernelSas(reply) => {
                let _ = reply.send(self.kernel.installed());
            }
            Control::Command(cmd, reply) => {
                let _ = reply.send(self.command(cmd));
            }
            Control::Call(f) => f(self),
            Control::Leases(reply) => {
                let _ = reply.send(self.all_leases());
            }
        }
    }

    /// Mobile node: bring up the IKE SA and CHILD_SAs of the [mobile_node] section.
    fn initiate(&mut self) -> Result<(), DaemonError> {
        let Some(mn) = self.cfg.mobile_node.clone() else {
            return Ok(());
        };
        self.mn_ike = Some(self.initiate_with(&mn)?);
        Ok(())
    }

    /// Starts the IKE SA that `mn` describes; returns its id.
    fn initiate_with(&mut self, mn: &policy::MobileNodeSettings) -> Result<IkeId, DaemonError> {
        // mip6d's latest MIGRATE (its local KMADDRESS) says where we are, and the engine starts
        // every initiation from there whatever we pass (a configured care-of address included):
        // use the same address here, so that the socket found or bound below is the one the
        // engine's packets leave from. Without a MIGRATE yet: the last care-of address we used
        // beats the configured one; without one, routing decides.
        let hoa = match mn.home_address {
            crate::ike::HomeAddress::Static(h) => Some(h),
            crate::ike::HomeAddress::Dynamic => None,
        };
        let latest = self
            .ep(0)
            .latest_kmaddress(mn.home_agent.ip(), hoa)
            .filter(|a| a.is_ipv4() == mn.home_agent.is_ipv4());
        let coa = match latest.or_else(|| {
            self.acquire
                .care_of_address(mn.care_of_address, self.mn_coa)
        }) {
            Some(a) => a,
            None => udp::route_source(mn.home_agent).map_err(|e| {
                DaemonError::Config(format!("no route to the home agent {}: {e}", mn.home_agent))
            })?,
        };
        // Our IKE port on a socket that covers the care-of address.
        let covering = |sockets: &[Arc<IkeSocket>]| {
            sockets
                .iter()
                .find(|s| {
                    !s.is_nat()
                        && s.local_addr().is_ipv4() == coa.is_ipv4()
                        && (s.is_wildcard() || s.local_addr().ip() == coa)
                })
                .map(|s| s.local_addr().port())
        };
        if covering(&self.sockets).is_none()
            && (latest == Some(coa) || self.acquire.care_of_address(None, None) == Some(coa))
            && let Some(port) = self
                .sockets
                .iter()
                .find(|s| !s.is_nat() && s.local_addr().is_ipv4() == coa.is_ipv4())
                .map(|s| s.local_addr().port())
        {
            // mip6d moved us to an address the [listen] addresses leave out: listen there too
            // (a failure, e.g. during DAD, leaves it to the next attempt).
            self.bind_late(SocketAddr::new(coa, port));
        }
        let port = covering(&self.sockets).ok_or_else(|| {
            DaemonError::Config(format!(
                "care-of address {coa} is not covered by any [listen] address; add it or \"::\""
            ))
        })?;
        let cmd = mn.initiate(SocketAddr::new(coa, port));
        match self.command(cmd) {
            Ok(id) => {
                info!(ike = %id, local = %SocketAddr::new(coa, port), remote = %mn.home_agent, "initiating");
                Ok(id)
            }
            Err(e) => Err(DaemonError::Config(format!("initiate: {e}"))),
        }
    }

    /// A socket for an address the [listen] addresses do not cover (the MN listens on specific
    /// addresses and moved to a new one), with its reader. Wildcard listeners never need this.
    fn bind_late(&mut self, local: SocketAddr) {
        let Some(sink) = self.inbound_tx.clone() else {
            return;
        };
        let bypass = udp::Bypass::for_backend(self.cfg.kernel.backend);
        match IkeSocket::bind(local, false, bypass) {
            Ok(s) => {
                size_receive_buffer(&s, self.cfg.listen.receive_buffer, false);
                info!(%local, "listening on the new care-of address");
                let s = Arc::new(s);
                self.bound.push(s.local_addr());
                self.sockets.push(s.clone());
                self.late_readers.push(tokio::spawn(reader(s, sink)));
            }
            Err(e) => {
                warn!(%local, "cannot bind the new care-of address ({e}): IKE messages from it are dropped; listen on \"::\" to cover every address")
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.retry_wait);
        info!(after = ?self.retry_wait, "will initiate again");
        self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
    }

    fn reload(&mut self) {
        if let Err(e) = self.try_reload() {
            error!("{e}");
        }
    }

    /// Reload (SIGHUP and the control socket): the changes applied, or why nothing was.
    fn try_reload(&mut self) -> Result<Vec<String>, String> {
        // The loader must never panic, but a reload runs on the daemon's task: a bug there
        // must cost the reload, not the running SAs. (catch_unwind is safe code; the loader
        // only reads files and builds new values, so nothing of ours is left half-changed.)
        let path = self.cfg.path.clone();
        let new = std::panic::catch_unwind(move || policy::load(&path))
            .map_err(|_| {
                format!(
                    "reload failed, keeping the running configuration: the configuration loader crashed on {} (a bug: please report it with the file)",
                    self.cfg.path.display()
                )
            })?
            .map_err(|e| format!("reload failed, keeping the running configuration: {e}"))?;
        if new.role != self.cfg.role {
            return Err(format!(
                "reload: role changed to {}; restart the daemon for that (nothing applied)",
                new.role.name()
            ));
        }
        let changes = self.cfg.changes(&new);
        if changes.is_empty() {
            info!("reload: no changes");
        }
        for c in &changes {
            info!("reload: {c}");
        }
        for i in 0..self.shards.len() {
            let mut ep = self.ep(i);
            ep.set_config(new.engine.clone());
            ep.set_crl_fetch(new.revocation.fetch.then_some(new.revocation.fetch_timeout));
            ep.set_ocsp(new.revocation.ocsp.clone());
        }
        // After the configuration: the re-check uses the new policy and the new CRLs.
        self.file_crls = new.revocation.crls.clone();
        self.ocsp_fetcher.set_timeout(new.revocation.fetch_timeout);
        self.publish_crls();
        // The established SAs' certificates are asked about again (the responder may know
        // of a revocation since).
        let asked: usize = (0..self.shards.len())
            .map(|i| self.ep(i).ocsp_recheck(now()))
            .sum();
        if asked > 0 {
            info!(asked, "reload: OCSP re-check of the established SAs");
        }
        self.crl_watch = crl_watch::CrlWatch::new(&new.revocation, Instant::now());
        self.ocsp_refresh_at = ocsp_refresh_period(&new.revocation).map(|p| Instant::now() + p);
        self.cfg.revocation = new.revocation;
        self.cfg.engine = new.engine;
        self.cfg.mobile_node = new.mobile_node;
        self.cfg.users_dir = new.users_dir;
        Ok(changes)
    }

    /// Hands the engine the CRLs of the files and those fetched (the newest per CA wins); it
    /// re-checks the established IKE SAs.
    fn publish_crls(&mut self) {
        let mut set = (*self.file_crls).clone();
        for c in self.crl_fetcher.crls() {
            set.insert(c.clone());
        }
        let set = Arc::new(set);
        for i in 0..self.shards.len() {
            self.ep(i).set_crls(now(), set.clone());
        }
    }

    /// Carries out everything the engines have queued. Datagrams produced with a lease change
    /// wait until the change is on disk (see [`leases`]).
    /// Returns true when it stopped with output left (the caller comes back at once).
    async fn flush(&mut self) -> bool {
        let mut with_change = false;
        let mut more = false;
        // Bounded, so that shards busy with a flood cannot keep this task from the control
        // socket and the kernel's events: what is left goes on the next turn.
        for pass in 0..64 {
            let mut progress = false;
            for i in 0..self.shards.len() {
                let Output {
                    leases_changed,
                    transmits,
                    kernel_ops,
                    events,
                    notes,
                } = self.drain(i);
                // Before the datagrams: the change came with the input they answer.
                if leases_changed && let Some(w) = &mut self.lease_writer {
                    w.note_change();
                    with_change = true;
                }
                progress |= !(transmits.is_empty()
                    && kernel_ops.is_empty()
                    && events.is_empty()
                    && notes.is_empty());
                // An identity claimed on shard i loses its older SAs on the others before
                // shard i's new SAs reach the kernel (as within one shard).
                for note in notes {
                    self.tell_other_shards(i, note);
                }
                for t in transmits {
                    let t = match &mut self.lease_writer {
                        Some(w) => w.hold(t, with_change),
                        None => Some(t),
                    };
                    if let Some(t) = t {
                        send(&self.sockets, &self.bound, t).await;
                    }
                }
                self.apply_kernel_ops(i, kernel_ops);
                for ev in events {
                    self.on_event(&ev);
                    let _ = self.events.send(ev);
                }
            }
            if !progress {
                break;
            }
            more = pass == 63;
        }
        // A change noted after the last datagram (events, kernel results) is written too.
        for i in 0..self.shards.len() {
            if self.shards[i].raw().take_leases_changed()
                && let Some(w) = &mut self.lease_writer
            {
                w.note_change();
            }
        }
        // The lease table is shared by the shards: its changes are taken once, from any.
        match &mut self.lease_writer {
            Some(w) if w.wants_write() => w.start(self.shards[0].raw().take_lease_changes()),
            Some(_) => {}
            // No lease file: nothing takes the changes otherwise.
            None => drop(self.shards[0].raw().take_lease_changes()),
        }
        more
    }

    /// Takes what shard `i` queued; the kernel questions (SA use) are answered on the way.
    fn drain(&mut self, i: usize) -> Output {
        let shard = self.shards[i].clone();
        let mut ep = shard.raw();
        let mut out = Output {
            leases_changed: ep.take_leases_changed(),
            ..Output::default()
        };
        loop {
            let before = out.transmits.len() + out.kernel_ops.len() + out.events.len();
            out.transmits
                .extend(std::iter::from_fn(|| ep.poll_transmit()));
            out.kernel_ops
                .extend(std::iter::from_fn(|| ep.poll_kernel_op()));
            let mut asked = false;
            while let Some(q) = ep.poll_sa_use_query() {
                asked = true;
                // A few SAs of one IKE SA, read from the kernel (GETSA each with XFRM).
                let counters = self.kernel.sa_use(&q.sas);
                ep.handle_sa_use(now(), &q, &counters);
            }
            out.events.extend(std::iter::from_fn(|| ep.poll_event()));
            out.notes
                .extend(std::iter::from_fn(|| ep.poll_shard_note()));
            let after = out.transmits.len() + out.kernel_ops.len() + out.events.len();
            if !asked && after == before {
                break;
            }
        }
        out
    }

    /// Applies shard `i`'s kernel operations; the shard hears of each failure.
    fn apply_kernel_ops(&mut self, i: usize, ops: Vec<KernelOp>) {
        for op in ops {
            match self.kernel.apply(&op) {
                Ok(()) => debug!(?op, "kernel"),
                Err(e) => {
                    warn!(?op, "kernel operation failed: {e}");
                    // The engine takes down a CHILD_SA whose SA the kernel refused.
                    self.ep(i).handle_kernel_result(now(), &op, Err(e));
                }
            }
        }
    }

    /// Hands shard `from`'s note to every other shard, and applies at once the kernel
    /// operations that follow from it (their datagrams and events go with the next drain).
    fn tell_other_shards(&mut self, from: usize, note: crate::ike::ShardNote) {
        let crate::ike::ShardNote::IdentityClaimed {
            ike,
            identity,
            replace,
            home_address,
        } = note;
        for j in (0..self.shards.len()).filter(|&j| j != from) {
            let ops: Vec<KernelOp> = {
                let mut ep = self.ep(j);
                if ep.drop_identity(now(), ike, &identity, replace, home_address) == 0 {
                    continue;
                }
                std::iter::from_fn(|| ep.poll_kernel_op()).collect()
            };
            self.apply_kernel_ops(j, ops);
        }
    }

    /// Sends the held datagrams whose lease changes are now on disk.
    async fn send_released(&mut self) {
        let ready = self
            .lease_writer
            .as_mut()
            .map(|w| w.release())
            .unwrap_or_default();
        for t in ready {
            send(&self.sockets, &self.bound, t).await;
        }
    }

    /// Shutdown: writes the last changes (the leases just released) and sends what waited
    /// for them; after a failure the datagrams go anyway (the Deletes tell peers we are gone).
    async fn finish_lease_writes(&mut self) {
        let Some(w) = &mut self.lease_writer else {
            return;
        };
        loop {
            if w.is_writing() {
                w.finished().await;
            } else if !w.is_durable() && w.retry_at().is_none() {
                w.start(self.shards[0].raw().take_lease_changes());
            } else {
                break;
            }
        }
        // Everything on disk: fold the journal into the snapshot, so that a stopped daemon
        // leaves one file that holds every lease (and the next start replays nothing).
        if w.is_durable() {
            w.start_compaction();
            w.finished().await;
        }
        let ready = w.release_all();
        for t in ready {
            send(&self.sockets, &self.bound, t).await;
        }
    }

    /// Events go to the log at debug level (the engine already logs them at info/warn, with
    /// more context) and drive the mobile node's re-initiation.
    fn on_event(&mut self, ev: &Event) {
        debug!(?ev, "event");
        self.acquire.on_event(ev);
        if let Event::CrlWanted { uris } = ev {
            let trust = self.cfg.engine.trust.clone();
            self.crl_fetcher.want(uris, trust, Instant::now());
        }
        if let Event::OcspWanted {
            query,
            uri,
            request,
        } = ev
        {
            self.ocsp_fetcher.want(*query, uri, request.clone());
        }
        if let Event::Migrated { ike, .. } = ev
            && self.cfg.kernel.backend == KernelBackend::Xfrm
        {
            self.resync_moved.insert(*ike);
            // Verify against the kernel, not the record, once mip6d's MIGRATEs of this move
            // are through: they name its own templates' endpoints, which need not be where
            // our tunnel SAs are (e.g. a transient care-of address at start-up).
            self.resync_at = Some(Instant::now() + RESYNC_AFTER_MOVE);
        }
        if self.cfg.role != Role::MobileNode {
            return;
        }
        match ev {
            Event::IkeDown { ike, .. } if self.mn_ike == Some(*ike) => {
                // Without the K bit the engine starts a successor from the new care-of address
                // when it drops the old SA: follow it instead of starting another.
                self.mn_ike = self
                    .list()
                    .into_iter()
                    .find(|s| s.initiator && s.id != *ike)
                    .map(|s| s.id);
                if self.mn_ike.is_none() {
                    self.schedule_retry();
                }
            }
            Event::ExchangeFailed { ike, .. }
                if self.mn_ike == Some(*ike) && self.get(*ike).is_none() =>
            {
                // The IKE SA never came up (IKE_SA_INIT or IKE_AUTH failed): try again later.
                self.mn_ike = None;
                self.schedule_retry();
            }
            Event::IkeRekeyed { old, new } if self.mn_ike == Some(*old) => self.mn_ike = Some(*new),
            Event::IkeUp { ike, local, .. } => {
                self.mn_ike = Some(*ike);
                self.retry_at = None;
                self.mn_coa = Some(local.ip());
            }
            Event::Migrated { new_local, .. } => {
                self.mn_coa = Some(new_local.ip());
                if udp::route(&self.bound, *new_local).is_none() {
                    self.bind_late(*new_local);
                }
            }
            Event::ChildUp(c) if Some(c.ike) == self.mn_ike => self.retry_wait = RETRY_FIRST,
            _ => {}
        }
    }
}

impl Daemon {
    /// Shard `i`'s Endpoint (0: a mobile node's only one); its thread looks at its timers
    /// again once the guard goes.
    fn ep(&self, i: usize) -> EpGuard<'_> {
        self.shards[i.min(self.shards.len() - 1)].lock()
    }

    /// The shard that owns IKE SA `ike` (our SPI says).
    fn shard_of(&self, ike: IkeId) -> usize {
        crate::ike::shard_of_spi(ike.0, self.shards.len())
    }

    /// Every IKE SA of every shard, by id.
    fn list(&self) -> Vec<IkeSaInfo> {
        if self.shards.len() == 1 {
            return self.shards[0].raw().list();
        }
        let mut v: Vec<IkeSaInfo> = self.shards.iter().flat_map(|s| s.raw().list()).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// One IKE SA, from the shard that owns it.
    fn get(&self, ike: IkeId) -> Option<IkeSaInfo> {
        self.shards[self.shard_of(ike)].raw().get(ike)
    }

    /// The leases of all shards (one shared table).
    fn all_leases(&self) -> Vec<Lease> {
        self.shards[0].raw().leases()
    }

    /// The leases with every shard's IKE SAs, read while every shard stands still (locked in
    /// order, as `resync_sas` does): read one after the other, a shard thread could remove an
    /// SA and release its lease in between, and the listing would show a released lease still
    /// held by an IKE SA that is gone.
    fn leases_and_sas(&self) -> (Vec<Lease>, Vec<IkeSaInfo>) {
        let held: Vec<_> = self.shards.iter().map(|s| s.raw()).collect();
        let mut list: Vec<IkeSaInfo> = held.iter().flat_map(|ep| ep.list()).collect();
        list.sort_by_key(|i| i.id);
        (held[0].leases(), list)
    }

    /// An engine command, on the shard that owns its IKE SA; a new initiation goes to the
    /// shards in turn (its SPI then says which).
    fn command(&mut self, cmd: Command) -> Result<IkeId, String> {
        let i = match &cmd {
            Command::Initiate { .. } => {
                self.next_initiate = (self.next_initiate + 1) % self.shards.len();
                self.next_initiate
            }
            Command::CreateChild { ike, .. }
            | Command::RekeyChild { ike, .. }
            | Command::DeleteChild { ike, .. }
            | Command::RekeyIke { ike }
            | Command::Terminate { ike }
            | Command::ProvideAddress { ike, .. } => self.shard_of(*ike),
            Command::Shutdown => {
                for i in 1..self.shards.len() {
                    self.ep(i).handle_command(now(), Command::Shutdown)?;
                }
                0
            }
        };
        self.ep(i).handle_command(now(), cmd)
    }

    /// A kernel event: the mobile node answers ACQUIREs for its classes itself (the engine
    /// has no connection settings); everything else goes to the engine.
    fn on_kernel_event(&mut self, ev: KernelEvent) {
        if let (KernelEvent::Acquire { reqid, seq, .. }, Some(mn)) = (&ev, &self.cfg.mobile_node) {
            let classes: Vec<_> = mn
                .classes
                .iter()
                .map(|c| (*c, self.cfg.engine.reqids(*c).to_ha))
                .collect();
            let action = self
                .acquire
                .decide(*reqid, &classes, self.mn_ike, &self.list());
            kernel::log_acquire(*reqid, &action);
            // The CHILD_SA this starts answers the ACQUIRE: its ALLOCSPI carries the seq.
            if let Some(class) = kernel::acquire_class(*reqid, &classes)
                && !matches!(action, kernel::AcquireAction::Ignore(_))
            {
                self.ep(0).note_acquire(now(), class, *seq);
            }
            match action {
                kernel::AcquireAction::Ignore(_) => {}
                kernel::AcquireAction::Initiate => {
                    self.retry_at = None;
                    if let Err(e) = self.initiate() {
                        warn!("cannot initiate: {e}");
                        self.schedule_retry();
                    }
                }
                kernel::AcquireAction::CreateChild { ike, class } => {
                    if let Err(e) = self.command(kernel::create_child(ike, class)) {
                        warn!("ACQUIRE: cannot create the CHILD_SA: {e}");
                    }
                }
                kernel::AcquireAction::Check { ike, class } => self.acquire_check(ike, class, &ev),
            }
            return;
        }
        if let KernelEvent::Migrate(m) = &ev {
            self.kernel.observe_migrate(m);
        }
        if let (KernelEvent::Migrate(m), Some(mn)) = (&ev, &self.cfg.mobile_node) {
            let ha = [mn.home_agent.ip(), IpAddr::V6(mn.home_agent_address)];
            self.acquire.on_migrate(m, &ha);
        }
        // Every shard looks: each acts only on SAs of its own (an EXPIRE names an SPI of
        // one shard, a MIGRATE home addresses whose SAs may live on any).
        let last = self.shards.len() - 1;
        for i in 0..last {
            self.ep(i).handle_kernel(now(), ev.clone());
        }
        self.ep(last).handle_kernel(now(), ev);
    }
}

impl Daemon {
    /// An ACQUIRE for a CHILD_SA the record holds: the kernel had no usable SA for the
    /// policy. When the policy's template names other endpoints than the record (a tunnel, a
    /// MIGRATE we missed) the whole record is checked against mip6d's policies; else this
    /// CHILD_SA's SAs are put back where the record says, or renegotiated.
    fn acquire_check(&mut self, ike: IkeId, class: crate::mobility::SaClass, ev: &KernelEvent) {
        let KernelEvent::Acquire { src, dst, .. } = ev else {
            return;
        };
        let elsewhere = self.get(ike).is_some_and(|sa| {
            sa.children.iter().any(|c| {
                c.class == Some(class)
                    && c.mode == crate::kernel::Mode::Tunnel
                    && (c.local, c.remote) != (*src, *dst)
            })
        });
        if elsewhere {
            info!(%ike, class = class.name(), acquire = %format_args!("{src} -> {dst}"),
                "ACQUIRE names other tunnel endpoints than the record: resynchronising");
            self.follow_missed_moves();
        }
        let r = self.resync_sas(Some((ike, Some(class))), false, "ACQUIRE");
        if r.checked > 0 && r.checked == r.in_place && r.larval_removed == 0 {
            info!(%ike, class = class.name(),
                "ACQUIRE: the CHILD_SA's SAs are where the record says; nothing to repair");
        }
    }

    /// Notifications were lost: a MIGRATE may be among them. mip6d's tunnel policies say
    /// where it moved; the engine follows, then every SA is checked against the kernel.
    fn resync_lost(&mut self) {
        warn!("XFRM notifications were lost: resynchronising with the kernel");
        self.follow_missed_moves();
        self.resync_sas(None, true, "lost notifications");
    }

    /// Feeds the engine the MIGRATEs that mip6d's tunnel templates show we missed.
    fn follow_missed_moves(&mut self) {
        let templates = self.kernel.tunnel_templates();
        for m in kernel::missed_moves(&templates, &self.list()) {
            if let Some(mn) = &self.cfg.mobile_node {
                let ha = [mn.home_agent.ip(), IpAddr::V6(mn.home_agent_address)];
                self.acquire.on_migrate(&m, &ha);
            }
            for i in 0..self.shards.len() {
                self.ep(i)
                    .handle_kernel(now(), KernelEvent::Migrate(m.clone()));
            }
        }
    }

    /// Checks (and repairs) the kernel's SAs against the record; CHILD_SAs that cannot be
    /// repaired are rekeyed (a new negotiation, new SPIs).
    fn resync_sas(
        &mut self,
        only: Option<(IkeId, Option<crate::mobility::SaClass>)>,
        drop_larval: bool,
        why: &str,
    ) -> kernel::Resync {
        // Every shard stands still meanwhile (only this task ever holds several, in order),
        // so that the record compared is the record of this moment.
        let shards = self.shards.clone();
        let held: Vec<_> = shards.iter().map(|s| s.raw()).collect();
        let mut list: Vec<IkeSaInfo> = held.iter().flat_map(|ep| ep.list()).collect();
        list.sort_by_key(|i| i.id);
        let r = kernel::resync(self.kernel.as_mut(), &list, only, drop_larval, why);
        drop(held);
        for (ike, spi_in) in &r.renegotiate {
            if let Err(e) = self.command(Command::RekeyChild {
                ike: *ike,
                spi_in: *spi_in,
            }) {
                warn!(%ike, "resync: cannot rekey the CHILD_SA: {e}");
            }
        }
        r
    }
}

/// Waits for the lease write under way (with none: forever).
async fn lease_written(w: &mut Option<leases::LeaseWriter>) {
    match w {
        Some(w) => w.finished().await,
        None => std::future::pending().await,
    }
}

async fn recv_kernel(k: &mut Option<kernel::KernelEvents>) -> Option<kernel::KernelMsg> {
    match k {
        Some(k) => k.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends one datagram from the socket that owns `t.local` (non-ESP marker on the NAT-T port).
async fn send(sockets: &[Arc<IkeSocket>], bound: &[SocketAddr], t: Transmit) {
    let Some(i) = udp::route(bound, t.local) else {
        return warn!(local = %t.local, remote = %t.remote, "no socket for this local address; datagram dropped");
    };
    let Some(sock) = sockets.get(i) else { return };
    let framed;
    let data: &[u8] = if sock.is_nat() {
        framed = udp::frame_for_nat_port(&t.data);
        &framed
    } else {
        &t.data
    };
    if let Err(e) = sock.send(t.local.ip(), t.remote, data).await {
        warn!(local = %t.local, remote = %t.remote, "send failed: {e}");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Sizes a socket's receive buffer as configured. Only the first socket logs what it got (or
/// that the kernel gave less): the others get the same.
fn size_receive_buffer(sock: &IkeSocket, bytes: u32, first: bool) {
    let local = sock.local_addr();
    match sock.set_receive_buffer(bytes) {
        Ok(_) if !first => {}
        Ok(b) if b.clamped() => {
            let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            warn!(%local, requested = b.requested, granted = b.granted, rmem_max = %max,
                "the kernel clamped the receive buffer ([listen] receive_buffer): raise net.core.rmem_max (sysctl) or run with CAP_NET_ADMIN; bursts beyond it are dropped (see stats)");
        }
        Ok(b) => info!(%local, bytes = b.granted, forced = b.forced, "receive buffer"),
        Err(e) => warn!(%local, bytes, "cannot size the receive buffer: {e}"),
    }
}

/// Reads one socket forever, handing IKE messages to the engine shard they belong to.
async fn reader(sock: Arc<IkeSocket>, sink: Arc<Inbound>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let r = match sock.recv(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here as ECONNREFUSED and the like; keep reading.
                debug!(local = %sock.local_addr(), "recv: {e}");
                continue;
            }
        };
        if r.truncated {
            debug!(remote = %r.remote, "oversized datagram dropped");
            continue;
        }
        let Some(data) = buf.get(..r.len) else {
            continue;
        };
        let data = if sock.is_nat() {
            match classify_nat_port(data) {
                NatPortPayload::Ike(d) => d,
                NatPortPayload::Keepalive => continue,
                NatPortPayload::Esp | NatPortPayload::Runt => {
                    debug!(remote = %r.remote, len = r.len, "non-IKE datagram on the NAT-T port dropped");
                    continue;
                }
            }
        } else {
            data
        };
        let bound = sock.local_addr();
        let local = match (sock.is_wildcard(), r.dst) {
            (true, Some(dst)) => SocketAddr::new(dst, bound.port()),
            _ => bound,
        };
        let d = Datagram {
            local,
            remote: r.remote,
            data: data.to_vec(),
        };
        // When the engine is behind, stop reading: datagrams then wait in the socket's
        // receive buffer (sized by [listen] receive_buffer), whose overflow the kernel counts
        // and the stats show, rather than being dropped here unseen.
        let Some(tx) = sink.for_datagram(&d) else {
            return;
        };
        if tx.send(d).await.is_err() {
            return;
        }
    }
}

/// Loads nothing, binds, runs: the daemon's whole life for a loaded configuration.
pub async fn run(
    cfg: LoadedConfig,
    kernel: Box<dyn Kernel>,
    control: mpsc::Receiver<Control>,
) -> Result<Box<dyn Kernel>, DaemonError> {
    Daemon::bind(cfg, kernel)?.run(control).await
}

/// How often the daemon looks for OCSP answers older than `ocsp_recheck`: a quarter of it, at
/// most a minute (so one look asks about a bounded batch, and a large population is covered
/// in several), None when re-checks are off or OCSP is.
fn ocsp_refresh_period(r: &crate::policy::RevocationSettings) -> Option<Duration> {
    r.ocsp.as_ref()?;
    r.ocsp_recheck
        .map(|max_age| (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)))
}
