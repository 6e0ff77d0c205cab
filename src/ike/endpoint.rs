//! The Endpoint: owns every IKE SA, routes datagrams to them, runs timers and collects what the
//! outside world must do.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::config::Config;
use super::fragment::{Datagrams, REASSEMBLY_TIMEOUT, Reassembled};
use super::protect::Opened;
use super::sa::{Exchange, IkeSa, Intent, Pending, State};
use super::{ChildInfo, Command, Event, IkeId, IkeSaInfo, Now, Transmit};
use crate::crypto::Rng;
use crate::kernel::{KernelEvent, KernelOp, SpiAllocator, SpiRequest};
use crate::wire::consts::*;
use crate::wire::{Header, Message, Notify, Payload};

/// Whether an SA survives the handling of an input.
pub(super) enum Fate {
    Keep,
    Close(String),
}

/// Counters for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub ike_established: u64,
    pub ike_failed: u64,
    pub children_established: u64,
    pub retransmissions: u64,
    pub cookies_sent: u64,
    pub invalid_ke_sent: u64,
    pub dropped: u64,
    pub auth_failures: u64,
    pub ts_refused: u64,
    /// IKE_SA_INIT exchanges whose NAT detection hashes showed a NAT.
    pub nat_detected: u64,
    /// USE_ASSIGNED_HoA notifies sent (home agent) or received (mobile node).
    pub use_assigned_hoa: u64,
    /// IKE SAs moved by a MIGRATE (K bit).
    pub migrations: u64,
    /// Messages we sent as RFC 7383 fragments, and messages reassembled from the peer's.
    pub fragmented_sent: u64,
    pub reassembled: u64,
    /// Exchanges we started that failed, by (exchange, error notify; 0 = none, e.g. no
    /// answer). At most [`MAX_FAILURE_KINDS`] keys; further kinds count under ("other", 0).
    pub failures: BTreeMap<(&'static str, u16), u64>,
}

/// Bound on the distinct keys of [`Stats::failures`] (a peer chooses the notify numbers).
pub const MAX_FAILURE_KINDS: usize = 64;

impl Stats {
    /// Adds `o`'s counters (the daemon sums its shards').
    pub fn add(&mut self, o: &Stats) {
        self.ike_established += o.ike_established;
        self.ike_failed += o.ike_failed;
        self.children_established += o.children_established;
        self.retransmissions += o.retransmissions;
        self.cookies_sent += o.cookies_sent;
        self.invalid_ke_sent += o.invalid_ke_sent;
        self.dropped += o.dropped;
        self.auth_failures += o.auth_failures;
        self.ts_refused += o.ts_refused;
        self.nat_detected += o.nat_detected;
        self.use_assigned_hoa += o.use_assigned_hoa;
        self.migrations += o.migrations;
        self.fragmented_sent += o.fragmented_sent;
        self.reassembled += o.reassembled;
        for (k, v) in &o.failures {
            *self.failures.entry(*k).or_insert(0) += v;
        }
    }

    /// Counters that can only be seen on the way out of the engine.
    fn count(&mut self, e: &Event) {
        if let Event::ExchangeFailed {
            exchange, notify, ..
        } = e
        {
            let mut key = (*exchange, notify.unwrap_or(0));
            if !self.failures.contains_key(&key) && self.failures.len() >= MAX_FAILURE_KINDS {
                key = ("other", 0);
            }
            *self.failures.entry(key).or_insert(0) += 1;
        }
    }
}

/// The protocol engine for all IKE SAs of this host.
pub struct Endpoint {
    pub(super) cfg: Arc<Config>,
    pub(super) rng: Box<dyn Rng>,
    /// Boxed: a hash table keeps up to twice its length in slots (load factor, power-of-two
    /// growth), which for a large `IkeSa` inline cost more than the SA itself at some sizes;
    /// boxed, a slot is 16 bytes and the per-SA cost no longer depends on how full it is.
    pub(super) sas: HashMap<u64, Box<IkeSa>>,
    /// Responder half-open SAs by (peer address, SPIi): a retransmitted IKE_SA_INIT finds its
    /// answer here.
    pub(super) half_open: HashMap<(SocketAddr, u64), u64>,
    /// Inbound ESP SPI -> IKE SA, for kernel EXPIRE events and SPI uniqueness.
    pub(super) child_spis: HashMap<u32, u64>,
    /// (deadline, SA) pairs; one per SA at most (IkeSa::deadline says which).
    timers: BTreeSet<(Instant, u64)>,
    pub(super) cookie_secret: [u8; 32],
    pub(super) cookie_secret_prev: [u8; 32],
    pub(super) cookie_version: u8,
    cookie_rotate_at: Option<Instant>,
    /// How many reqids were assigned to CHILD_SAs outside the MIPv6 classes (the next one is
    /// `cfg.mobility.auto_reqid(next_reqid)`).
    pub(super) next_reqid: u32,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) kernel_ops: VecDeque<KernelOp>,
    pub(super) events: VecDeque<Event>,
    pub stats: Stats,
    pub(super) now: Now,
    /// Home agent: a registered address provider is asked before our own pools, waiting at
    /// most this long (None: no provider).
    pub(super) address_provider: Option<Duration>,
    /// Where inbound ESP SPIs come from; None: our RNG (tests, memory backend).
    spi_alloc: Option<Box<dyn SpiAllocator>>,
    /// Inbound SPIs the allocator reserved in the kernel (a larval SA there) that no CHILD_SA
    /// installed yet, with the larval SA's destination: a failed negotiation deletes them.
    pub(super) larval: HashMap<u32, IpAddr>,
    /// Mobile node: the kernel ACQUIRE (seq, when noted) that the next new CHILD_SA of a class
    /// answers; its SPI request carries the seq (see [`Endpoint::note_acquire`]).
    pub(super) acquire_seqs: HashMap<crate::mobility::SaClass, (u32, Instant)>,
    /// Home agent: dynamic home addresses and prefixes given out (persisted by the daemon).
    pub(super) leases: super::shard::SharedLeases,
    /// This shard changed the lease table since the daemon last asked (see `lease_op`).
    pub(super) leases_changed: bool,
    /// (index, count) of this Endpoint among the daemon's shards (see `shard`).
    pub(super) shard: (u8, u8),
    /// Notes for the other shards, for the daemon.
    pub(super) shard_notes: VecDeque<super::shard::ShardNote>,
    /// While a request is processed: where it came from, which is where its response goes
    /// (RFC 7296 2.11), even when that is not the SA's recorded address.
    reply_to: Option<(SocketAddr, SocketAddr)>,
    /// Mobile node: its home agents and mip6d's latest KMADDRESS (see `home`).
    pub(super) mn: super::home::MobileNodeMemory,
    /// IKE_SA_INIT requests refused for a bad KE value since the window's start: they leave
    /// no half-open SA, yet count towards the cookie threshold (see `note_bad_init`).
    bad_inits: (Option<Instant>, usize),
    /// Per-source half-open counts and IKE_SA_INIT rate (see `limits`).
    /// Shared by the shards of a daemon (see `shard`): one source is one source.
    pub(super) sources: super::limits::SharedSources,
    /// The verified CRLs peer certificates are checked against (see `revoke`).
    pub(super) crls: Arc<crate::auth::revocation::CrlSet>,
    /// Whether the daemon fetches CRLs from distribution points, and which URIs were asked
    /// for when (see `revoke`).
    pub(super) crl_fetch: Option<Duration>,
    pub(super) crl_asked: HashMap<String, Instant>,
    /// Liveness asks the kernel about inbound ESP first (see `liveness`).
    pub(super) esp_liveness: bool,
    /// Questions for the kernel about inbound SA use, for the daemon.
    pub(super) use_queries: VecDeque<super::SaUseQuery>,
    /// OCSP: settings, answers, queries in flight (see `ocsp`).
    pub(super) ocsp: super::ocsp::OcspState,
    /// Authenticated identity -> its IKE SAs, so that INITIAL_CONTACT, the uniqueness policy
    /// and lease release do not scan every SA (see `unique`).
    pub(super) identities: super::unique::IdentityIndex,
    /// Home address -> IKE SAs, for MIGRATE (see `hoa_index`); kept by `finish` and `destroy`.
    pub(super) by_hoa: super::hoa_index::HoaIndex,
    /// How many CHILD_SAs hold each outbound SPI: a new CHILD_SA's SPI is looked for among all
    /// CHILD_SAs (`peer_spi_taken`) only when some CHILD_SA has it, not for every new one (with
    /// 100,000 IKE SAs that scan made each registration cost milliseconds). Counted up where a
    /// CHILD_SA is installed, down where one is removed; a count left behind only costs a scan.
    pub(super) out_spis: HashMap<u32, u32>,
    /// How many CHILD_SAs hold each inbound reqid (counted where `out_spis` is): an automatic
    /// reqid for a CHILD_SA outside the classes is free when it has no count, found without
    /// looking at every IKE SA's CHILD_SAs (which an authenticated peer could make the home
    /// agent do for each extra CHILD_SA it asks for). The classes' reqids are shared by all
    /// IKE SAs, so the map holds one entry per class plus one per extra CHILD_SA.
    pub(super) reqids: HashMap<u32, u32>,
}

/// How long our last response stays cached after its request (RFC 7296 2.1: it answers the
/// request's retransmissions). RFC 7296 asks to keep it until the peer's next request, which on
/// a quiet SA may be hours away; a home agent with 100,000 mobile nodes would keep 100,000
/// responses (a few hundred bytes each) that nobody will ask for again. Peers give up
/// retransmitting long before this (strongSwan's defaults: after about 165 s; ours: about 85 s;
/// both then delete the SA), so a retransmission arriving later has no one waiting for its
/// answer. Counted from `last_heard`, which the request set (later messages only move it on).
pub(super) const RESPONSE_HOLD: Duration = Duration::from_secs(300);

/// How long a refused IKE_SA_INIT counts towards the cookie threshold (about as long as a
/// half-open SA would have lived).
const BAD_INIT_WINDOW: Duration = Duration::from_secs(30);

impl Endpoint {
    pub fn new(cfg: Arc<Config>, mut rng: Box<dyn Rng>, now: Now) -> Endpoint {
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        Endpoint {
            cfg,
            rng,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            child_spis: HashMap::new(),
            timers: BTreeSet::new(),
            cookie_secret,
            cookie_secret_prev: cookie_secret,
            cookie_version: 0,
            cookie_rotate_at: None,
            next_reqid: 0,
            transmits: VecDeque::new(),
            kernel_ops: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            now,
            address_provider: None,
            spi_alloc: None,
            identities: Default::default(),
            larval: HashMap::new(),
            acquire_seqs: HashMap::new(),
            leases: Default::default(),
            leases_changed: false,
            shard: (0, 1),
            shard_notes: VecDeque::new(),
            reply_to: None,
            mn: Default::default(),
            bad_inits: (None, 0),
            sources: Default::default(),
            crls: Default::default(),
            crl_fetch: None,
            crl_asked: HashMap::new(),
            esp_liveness: false,
            use_queries: VecDeque::new(),
            ocsp: Default::default(),
            by_hoa: Default::default(),
            out_spis: HashMap::new(),
            reqids: HashMap::new(),
        }
    }

    /// Takes inbound ESP SPIs from `a` (the kernel's ALLOCSPI) instead of the RNG.
    pub fn set_spi_allocator(&mut self, a: Box<dyn SpiAllocator>) {
        self.spi_alloc = Some(a);
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Home agent: from now on ask an address provider (waiting at most `timeout`), or not.
    pub fn set_address_provider(&mut self, timeout: Option<Duration>) {
        self.address_provider = timeout;
    }

    /// Replaces the configuration (reload). Established SAs keep their negotiated state; on a
    /// home agent, SAs of users still present take their new user entry (for later CHILD_SAs)
    /// and are re-authorized against it: what it no longer grants (the user, the home address,
    /// a class, an address range) is deleted, with a Delete to the peer (see `reload`).
    pub fn set_config(&mut self, cfg: Arc<Config>) {
        self.cfg = cfg;
        self.reauthorize_after_reload();
    }

    // ---- inputs ----

    /// A UDP datagram arrived on `local` from `remote` (non-ESP marker already removed).
    pub fn handle_datagram(
        &mut self,
        now: Now,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.now = now;
        if data.len() > crate::wire::limits::MAX_MESSAGE {
            return self.drop_msg(remote, "oversized datagram");
        }
        let header = match Header::parse(data) {
            Ok(h) => h,
            Err(crate::wire::Error::Version(major)) => {
                // RFC 7296 2.5: answer unencrypted with the highest version we support, and
                // only to requests.
                if let Ok(h) = Header::peek(data)
                    && !h.is_response()
                {
                    debug!(%remote, major, "unsupported IKE major version");
                    self.send_unprotected_error(
                        local,
                        remote,
                        &h,
                        N_INVALID_MAJOR_VERSION,
                        Vec::new(),
                    );
                }
                return;
            }
            Err(e) => return self.drop_msg(remote, &format!("bad header: {e}")),
        };
        if header.exchange == IKE_SA_INIT && !header.is_response() && header.spi_r == 0 {
            return self.handle_init_request(local, remote, &header, data);
        }
        let ours = if header.is_initiator() {
            header.spi_r
        } else {
            header.spi_i
        };
        let Some(mut sa) = self.sas.remove(&ours) else {
            return self.drop_msg(remote, "unknown IKE SPI");
        };
        // The peer's SPI must match too (both SPIs identify the SA, RFC 7296 2.6).
        let theirs_ok = if sa.initiator {
            header.spi_i == sa.spi_i && (sa.state == State::InitSent || header.spi_r == sa.spi_r)
        } else {
            header.spi_i == sa.spi_i
        };
        if !theirs_ok || header.is_initiator() == sa.initiator {
            self.sas.insert(ours, sa);
            return self.drop_msg(remote, "SPI or role mismatch");
        }
        let fate = if header.is_response() {
            self.handle_response(&mut sa, local, remote, &header, data)
        } else {
            self.reply_to = Some((local, remote));
            let f = self.handle_request(&mut sa, local, remote, &header, data);
            self.reply_to = None;
            f
        };
        self.finish(sa, fate);
    }

    /// An event from the kernel (ACQUIRE, EXPIRE, MIGRATE).
    pub fn handle_kernel(&mut self, now: Now, ev: KernelEvent) {
        self.now = now;
        match ev {
            KernelEvent::Expire { dst, spi, hard } => self.handle_expire(dst, spi, hard),
            KernelEvent::Acquire { reqid, .. } => {
                // Starting a negotiation needs the MN's connection settings, which live in the
                // daemon's configuration: the daemon turns ACQUIREs into Initiate commands.
                debug!(
                    reqid,
                    "ACQUIRE reached the engine; ignored (handled by the daemon)"
                );
            }
            KernelEvent::Migrate(m) => self.handle_migrate(m),
        }
    }

    /// A command from the daemon, the control socket or a test.
    pub fn handle_command(&mut self, now: Now, cmd: Command) -> Result<IkeId, String> {
        self.now = now;
        match cmd {
            Command::Initiate {
                local,
                remote,
                home_agent,
                home_address,
                classes,
                remote_identity,
            } => {
                let plan = super::sa::Plan {
                    home_agent,
                    home_address,
                    classes,
                    remote_identity,
                    assigned_hoa: None,
                    ike_rekey_at: None,
                    retire: Vec::new(),
                };
                Ok(self.start_initiator(local, remote, plan))
            }
            Command::CreateChild { ike, class } => self.enqueue(ike, Intent::CreateChild(class)),
            Command::RekeyChild { ike, spi_in } => self.enqueue(ike, Intent::RekeyChild(spi_in)),
            Command::DeleteChild { ike, spi_in } => self.enqueue(ike, Intent::DeleteChild(spi_in)),
            Command::RekeyIke { ike } => self.enqueue(ike, Intent::RekeyIke),
            Command::Terminate { ike } => self.enqueue(ike, Intent::DeleteIke),
            Command::ProvideAddress { ike, answer } => {
                let Some(mut sa) = self.sas.remove(&ike.0) else {
                    return Err(format!("no IKE SA {ike}"));
                };
                if sa.parked.is_none() {
                    self.sas.insert(ike.0, sa);
                    return Err(format!("IKE SA {ike} is not waiting for an address"));
                }
                let fate = self.resume_auth(&mut sa, answer);
                self.finish(sa, fate);
                Ok(ike)
            }
            Command::Shutdown => {
                // Leases outlive the daemon by the grace period (and are saved as released).
                let grace = self.cfg.mobility.lease_grace.as_secs();
                self.lease_op(|t| t.release_all(now.unix, grace));
                let ids: Vec<u64> = self.sas.keys().copied().collect();
                for id in ids {
                    if let Some(sa) = self.sas.remove(&id) {
                        if sa.state == State::Established {
                            // Fire and forget: we will not be here for the answer.
                            self.send_ike_delete_once(&sa, sa.local, sa.remote);
                        }
                        self.destroy(sa, "shutdown");
                    }
                }
                Ok(IkeId(0))
            }
        }
    }

    fn enqueue(&mut self, ike: IkeId, intent: Intent) -> Result<IkeId, String> {
        let Some(mut sa) = self.sas.remove(&ike.0) else {
            return Err(format!("no IKE SA {ike}"));
        };
        if sa.state != State::Established {
            self.sas.insert(ike.0, sa);
            return Err(format!("IKE SA {ike} is not established"));
        }
        sa.queue.push_back(intent);
        self.finish(sa, Fate::Keep);
        Ok(ike)
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if let Some(at) = self.cookie_rotate_at
            && at <= now.at
        {
            self.rotate_cookie_secret();
        }
        self.lease_op(|t| t.expire(now.unix));
        if self
            .sources()
            .housekeeping_at()
            .is_some_and(|t| t <= now.at)
        {
            let rate = self.cfg.init_rate_per_source;
            self.sources().prune(now.at, rate);
        }
        while let Some(&(at, id)) = self.timers.first() {
            if at > now.at {
                break;
            }
            self.timers.pop_first();
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            sa.deadline = None;
            let fate = self.on_timer(&mut sa);
            self.finish(sa, fate);
        }
    }

    /// The earliest time `handle_timeout` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(at, _)| *at);
        let lease = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_expiry()
            .map(|e| self.now.at + Duration::from_secs(e.saturating_sub(self.now.unix)));
        [
            t,
            self.cookie_rotate_at,
            lease,
            self.sources().housekeeping_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_kernel_op(&mut self) -> Option<KernelOp> {
        self.kernel_ops.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        self.stats.count(&e);
        Some(e)
    }

    // ---- queries ----

    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// CHILD_SAs of all IKE SAs (counted, not listed: `stats` asks for it on the engine's task).
    pub fn child_sa_count(&self) -> usize {
        self.sas.values().map(|sa| sa.children.len()).sum()
    }

    /// Whether the per-CHILD_SA counts (`out_spis`, `reqids`) match the CHILD_SAs held: for
    /// tests, which check it after every step (O(CHILD_SAs)). Err names the first difference.
    pub fn check_child_counts(&self) -> Result<(), String> {
        let (mut spis, mut reqids) = (HashMap::new(), HashMap::new());
        for c in self.sas.values().flat_map(|sa| sa.children.iter()) {
            *spis.entry(c.spi_out).or_insert(0u32) += 1;
            *reqids.entry(c.reqid_in).or_insert(0u32) += 1;
        }
        if spis != self.out_spis {
            return Err(format!(
                "outbound SPI counts {:?}, CHILD_SAs hold {spis:?}",
                self.out_spis
            ));
        }
        if reqids != self.reqids {
            return Err(format!(
                "reqid counts {:?}, CHILD_SAs hold {reqids:?}",
                self.reqids
            ));
        }
        Ok(())
    }

    /// A listing of all IKE SAs, ordered by ID.
    pub fn list(&self) -> Vec<IkeSaInfo> {
        let mut v: Vec<IkeSaInfo> = self.sas.values().map(|sa| self.info(sa)).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    pub fn get(&self, id: IkeId) -> Option<IkeSaInfo> {
        self.sas.get(&id.0).map(|sa| self.info(sa))
    }

    fn info(&self, sa: &IkeSa) -> IkeSaInfo {
        IkeSaInfo {
            id: sa.id(),
            initiator: sa.initiator,
            state: sa.state.name(),
            local: sa.local,
            remote: sa.remote,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            peer: sa.peer.clone(),
            transforms: sa.suite.map(|s| s.to_string()).unwrap_or_default(),
            home_address: sa.home_address,
            peer_auth_method: sa.peer_auth_method,
            created: sa.created,
            home_prefix: sa.home_prefix,
            children: sa.children.iter().map(|c| child_info(sa, c)).collect(),
        }
    }

    // ---- internals shared by the exchange modules ----

    /// Puts an SA back (or destroys it), starts queued work and re-arms its timer.
    pub(super) fn finish(&mut self, mut sa: Box<IkeSa>, fate: Fate) {
        if let Fate::Close(reason) = fate {
            return self.destroy(sa, &reason);
        }
        if sa.state == State::Established {
            self.complete_replacements(&sa);
        }
        if sa.pending.is_none() && sa.state == State::Established {
            self.start_next(&mut sa);
            if sa.pending.is_none() {
                self.retire_stranded(&mut sa);
            }
        }
        self.reschedule(&mut sa);
        // The home address index (MIGRATE): every SA enters the table here.
        if let Some(h) = sa.home_address {
            self.by_hoa.insert(h, sa.our_spi());
        }
        self.sas.insert(sa.our_spi(), sa);
    }

    /// Removes an SA with its CHILD_SAs (kernel included) and reports it.
    pub(super) fn destroy(&mut self, mut sa: Box<IkeSa>, reason: &str) {
        self.unindex_identity(&sa);
        if let Some(h) = sa.home_address {
            self.by_hoa.remove(h, sa.our_spi());
        }
        if let Some(d) = sa.deadline.take() {
            self.timers.remove(&(d, sa.our_spi()));
        }
        self.forget_half_open(&sa);
        self.rescue_children(&mut sa);
        for c in std::mem::take(&mut sa.children) {
            self.remove_child_kernel(&sa, &c, reason);
        }
        if let Some(p) = &sa.pending
            && let Exchange::CreateChild { req, .. } = &p.exchange
        {
            self.release_child_spi(req.spi_in);
        }
        if let Some(hs) = &sa.hs
            && let Some(fc) = &hs.first_child
        {
            self.release_child_spi(fc.spi_in);
        }
        // Any other SPI still reserved for this SA (a queued Delete of a CHILD_SA the peer
        // installed but we refused, say) was never installed here either.
        let owner = sa.our_spi();
        let left: Vec<u32> = self
            .larval
            .keys()
            .filter(|s| self.child_spis.get(s) == Some(&owner))
            .copied()
            .collect();
        for spi in left {
            self.release_child_spi(spi);
        }
        if sa.state == State::Established || sa.state == State::Deleting {
            self.release_leases(&sa);
            info!(ike = %sa.id(), remote = %sa.remote, reason, "IKE SA down");
            self.events.push_back(Event::IkeDown {
                ike: sa.id(),
                reason: reason.to_string(),
            });
        } else {
            debug!(ike = %sa.id(), remote = %sa.remote, reason, state = sa.state.name(), "IKE SA removed without IkeDown");
        }
    }

    pub(super) fn remove_child_kernel(&mut self, sa: &IkeSa, c: &super::sa::Child, reason: &str) {
        self.child_spis.remove(&c.spi_in);
        self.forget_child(c);
        self.kernel_ops.push_back(KernelOp::DelSa {
            dst: c.outer_local,
            spi: c.spi_in,
        });
        self.kernel_ops.push_back(KernelOp::DelSa {
            dst: c.outer_remote,
            spi: c.spi_out,
        });
        info!(ike = %sa.id(), spi_in = format_args!("{:08x}", c.spi_in), spi_out = format_args!("{:08x}", c.spi_out), reason, "CHILD_SA down");
        self.events.push_back(Event::ChildDown {
            ike: sa.id(),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            reason: reason.to_string(),
        });
    }

    /// A CHILD_SA was installed: its outbound SPI and inbound reqid are counted (see
    /// `out_spis`, `reqids`).
    pub(super) fn note_child(&mut self, c: &super::sa::Child) {
        *self.out_spis.entry(c.spi_out).or_insert(0) += 1;
        *self.reqids.entry(c.reqid_in).or_insert(0) += 1;
    }

    /// A CHILD_SA was removed (the counts of `note_child` go down).
    pub(super) fn forget_child(&mut self, c: &super::sa::Child) {
        fn down(m: &mut HashMap<u32, u32>, k: u32) {
            if let Some(n) = m.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        down(&mut self.out_spis, c.spi_out);
        down(&mut self.reqids, c.reqid_in);
    }

    pub(super) fn reschedule(&mut self, sa: &mut IkeSa) {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(sa.pending.as_ref().map(|p| p.next_at));
        consider(sa.expires_at);
        consider(
            sa.reassembly
                .as_ref()
                .map(|r| r.started + REASSEMBLY_TIMEOUT),
        );
        consider(Self::nat_keepalive_due(sa));
        consider(
            sa.last_response
                .as_ref()
                .map(|_| sa.last_heard + RESPONSE_HOLD),
        );
        if sa.state == State::Established && sa.pending.is_none() {
            consider(Some(match sa.use_asked {
                // The kernel's answer is awaited; without one, check over IKE after a while.
                Some(at) => at + super::USE_ANSWER_WAIT,
                None => sa.alive_at() + self.cfg.timers.liveness_interval,
            }));
            if sa.drives_rekeys() {
                for c in &sa.children {
                    if !c.rekeying {
                        consider(c.rekey_at);
                    }
                }
            }
        }
        let ike_rekey = self.cfg.timers.ike_rekey;
        if sa.state == State::Established
            && !ike_rekey.is_zero()
            && let Some(plan) = sa.plan.as_mut()
        {
            // Armed lazily: the first time the established SA passes through here.
            let at = *plan.ike_rekey_at.get_or_insert(self.now.at + ike_rekey);
            if sa.pending.is_none() {
                consider(Some(at));
            }
        }
        let id = sa.our_spi();
        if sa.deadline != next {
            if let Some(d) = sa.deadline {
                self.timers.remove(&(d, id));
            }
            if let Some(n) = next {
                self.timers.insert((n, id));
            }
            sa.deadline = next;
        }
    }

    fn on_timer(&mut self, sa: &mut IkeSa) -> Fate {
        let id = sa.id();
        let now = self.now.at;
        if sa.last_response.is_some() && sa.last_heard + RESPONSE_HOLD <= now {
            // No peer retransmits this request any more (see RESPONSE_HOLD).
            sa.last_response = None;
        }
        if sa
            .reassembly
            .as_ref()
            .is_some_and(|r| r.started + REASSEMBLY_TIMEOUT <= now)
        {
            debug!(ike = %id, "incomplete fragmented message given up");
            sa.reassembly = None;
        }
        self.nat_keepalive(sa);
        if sa.expires_at.is_some_and(|at| at <= now)
            && let Some(fate) = self.replacement_due(sa)
        {
            return fate;
        }
        if let Some(at) = sa.expires_at
            && at <= now
        {
            if sa.crl_parked.is_some() {
                // The CRL did not come in time: decide with what we have.
                return self.resume_for_crl(sa);
            }
            if sa.parked.is_some() {
                // The provider did not answer in time: our own pools decide.
                return self.resume_auth(sa, super::ProvidedAddress::default());
            }
            return Fate::Close(if sa.stranded {
                "moved without key mobility; not replaced within move_grace".into()
            } else if sa.state == State::Rekeyed {
                "rekeyed; the peer did not delete the old IKE SA".into()
            } else {
                "half-open IKE SA timed out".into()
            });
        }
        if let Some(p) = &mut sa.pending
            && p.next_at <= now
        {
            if p.tries >= self.cfg.timers.retransmit_tries {
                let what = p.exchange.name();
                warn!(ike = %id, remote = %sa.remote, exchange = what, "peer not responding, giving up");
                if sa.state != State::Established && sa.state != State::Deleting {
                    let (notify, reason) = sa
                        .hs
                        .as_ref()
                        .and_then(|h| h.init_error.clone())
                        .unwrap_or((None, "peer not responding".into()));
                    warn!(ike = %id, notify = %super::found::NotifyLabel(notify), %reason, "IKE SA not established");
                    self.stats.ike_failed += 1;
                    self.events.push_back(Event::ExchangeFailed {
                        ike: id,
                        exchange: what,
                        notify,
                        reason,
                    });
                }
                return Fate::Close(if matches!(p.exchange, Exchange::DeleteIke) {
                    "deleted (peer did not answer)".into()
                } else {
                    "peer not responding".into()
                });
            }
            p.tries += 1;
            p.next_at = now + retransmit_wait(&self.cfg.timers, p.tries);
            self.stats.retransmissions += 1;
            debug!(ike = %id, msg_id = p.msg_id, tries = p.tries, "retransmitting");
            for d in &p.data {
                self.transmits.push_back(Transmit {
                    local: sa.local,
                    remote: sa.remote,
                    data: d.clone(),
                });
            }
            return Fate::Keep;
        }
        if sa.state == State::Established && sa.pending.is_none() {
            if sa.alive_at() + self.cfg.timers.liveness_interval <= now {
                self.liveness_due(sa);
            } else {
                // The peer spoke (IKE) while the kernel's answer was awaited: no question.
                sa.use_asked = None;
            }
            if let Some(plan) = sa.plan.as_mut()
                && plan.ike_rekey_at.is_some_and(|t| t <= now)
                && !sa.queue.iter().any(|i| matches!(i, Intent::RekeyIke))
            {
                // Re-armed for the successor (or after a failure, at a back-off).
                plan.ike_rekey_at = None;
                sa.queue.push_back(Intent::RekeyIke);
            }
            if sa.drives_rekeys() {
                let due: Vec<u32> = sa
                    .children
                    .iter()
                    .filter(|c| !c.rekeying && c.rekey_at.is_some_and(|t| t <= now))
                    .map(|c| c.spi_in)
                    .collect();
                for spi in due {
                    if let Some(i) = sa.child_by_in(spi) {
                        sa.children[i].rekeying = true;
                    }
                    sa.queue.push_back(Intent::RekeyChild(spi));
                }
            }
        }
        Fate::Keep
    }

    /// Sends a request and arms retransmission.
    pub(super) fn send_request(&mut self, sa: &mut IkeSa, data: Datagrams, exchange: Exchange) {
        let msg_id = sa.next_msg_id;
        let next_at = self.now.at + self.cfg.timers.retransmit_timeout;
        for d in &data {
            self.transmits.push_back(Transmit {
                local: sa.local,
                remote: sa.remote,
                data: d.clone(),
            });
        }
        sa.pending = Some(Box::new(Pending {
            msg_id,
            data,
            tries: 0,
            next_at,
            exchange,
        }));
    }

    /// Sends a response and caches it for retransmitted requests.
    pub(super) fn send_response(&mut self, sa: &mut IkeSa, msg_id: u32, data: Datagrams) {
        let (local, remote) = self.reply_to.unwrap_or((sa.local, sa.remote));
        for d in &data {
            self.transmits.push_back(Transmit {
                local,
                remote,
                data: d.clone(),
            });
        }
        sa.last_response = Some((msg_id, data));
    }

    /// A header for a message of this SA.
    pub(super) fn header(&self, sa: &IkeSa, exchange: u8, response: bool, msg_id: u32) -> Header {
        let mut flags = 0;
        if sa.initiator {
            flags |= FLAG_INITIATOR;
        }
        if response {
            flags |= FLAG_RESPONSE;
        }
        Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange,
            flags,
            message_id: msg_id,
            length: 0,
        }
    }

    /// Builds an SK-protected message for this SA: one datagram, or RFC 7383 fragments when
    /// fragmentation was negotiated and the message does not fit `fragment_size`.
    pub(super) fn seal(
        &mut self,
        sa: &IkeSa,
        exchange: u8,
        response: bool,
        msg_id: u32,
        payloads: &[Payload],
    ) -> Datagrams {
        let hdr = self.header(sa, exchange, response, msg_id);
        let keys = sa.keys.as_ref().expect("seal called before keys exist");
        if sa.fragmentation {
            let max = self.max_message_len(sa);
            let out =
                super::protect::seal_fragmented(&keys.out, self.rng.as_mut(), hdr, payloads, max);
            if out.len() > 1 {
                self.stats.fragmented_sent += 1;
            }
            out
        } else {
            vec![super::protect::seal(
                &keys.out,
                self.rng.as_mut(),
                hdr,
                payloads,
            )]
        }
    }

    /// Protected requests (everything after IKE_SA_INIT) from the peer.
    fn handle_request(
        &mut self,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Fate {
        let id = header.message_id;
        if let Some((cached_id, _)) = &sa.last_response
            && *cached_id == id
            && id.wrapping_add(1) == sa.peer_msg_id
        {
            // A retransmitted request: answer from the cache, do not process again. Only when
            // the bytes decrypt do we know it is the peer's, so check the ICV first. Of a
            // fragmented request only fragment 1 triggers the answer (RFC 7383 2.6.1), so a
            // retransmission of N fragments costs one answer, not N.
            let resend = match self.open_any(sa, data) {
                Some(Opened::Whole(_)) => true,
                Some(Opened::Fragment(f)) => f.number == 1,
                None => false,
            };
            if resend && let Some((_, bytes)) = &sa.last_response {
                debug!(ike = %sa.id(), msg_id = id, "retransmitted request answered from cache");
                for d in bytes.clone() {
                    self.transmits.push_back(Transmit {
                        local,
                        remote,
                        data: d,
                    });
                }
            }
            return Fate::Keep;
        }
        if id != sa.peer_msg_id {
            self.drop_msg(remote, "request with unexpected message ID");
            return Fate::Keep;
        }
        let Some(payloads) = self.open_whole(sa, remote, id, false, data) else {
            return Fate::Keep;
        };
        self.follow_peer_port(sa, local, remote);
        if sa.local != local || sa.remote != remote {
            // The HA never moves an IKE SA because of a packet's source address alone; answer
            // where the request came from, keep our record unchanged.
            debug!(ike = %sa.id(), %remote, "request from an address other than the SA's");
        }
        sa.last_heard = self.now.at;
        if let Some(t) = unsupported_critical(&payloads) {
            let n = Payload::Notify(Notify::new(N_UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]));
            let resp = self.seal(sa, header.exchange, true, id, &[n]);
            sa.peer_msg_id = id.wrapping_add(1);
            self.send_response(sa, id, resp);
            return Fate::Keep;
        }
        sa.peer_msg_id = id.wrapping_add(1);
        match header.exchange {
            IKE_AUTH => self.auth_request(sa, header, payloads),
            CREATE_CHILD_SA => self.child_request(sa, header, payloads),
            INFORMATIONAL => self.info_request(sa, header, payloads),
            other => {
                debug!(ike = %sa.id(), exchange = other, "unknown exchange type");
                let n = Payload::Notify(Notify::new(N_INVALID_SYNTAX, vec![]));
                let resp = self.seal(sa, other, true, id, &[n]);
                self.send_response(sa, id, resp);
                Fate::Keep
            }
        }
    }

    fn handle_response(
        &mut self,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Fate {
        let Some(p) = &sa.pending else {
            self.drop_msg(remote, "response without a request");
            return Fate::Keep;
        };
        if p.msg_id != header.message_id {
            self.drop_msg(remote, "response with unexpected message ID");
            return Fate::Keep;
        }
        // A response answers the exchange we started, nothing else: an IKE_SA_INIT "response"
        // to an established SA's message 0 is a forgery (it is unprotected, so anyone who saw
        // the SPIs can send one) and must not reach the handshake code.
        let expected = match p.exchange {
            Exchange::Init => IKE_SA_INIT,
            Exchange::Auth => IKE_AUTH,
            Exchange::CreateChild { .. } | Exchange::RekeyIke { .. } => CREATE_CHILD_SA,
            Exchange::DeleteChild { .. } | Exchange::DeleteIke | Exchange::Liveness => {
                INFORMATIONAL
            }
        };
        if header.exchange != expected {
            self.drop_msg(remote, "response of another exchange type than our request");
            return Fate::Keep;
        }
        if header.exchange == IKE_SA_INIT {
            // Only an SA still in IKE_SA_INIT takes unprotected responses.
            if sa.state != State::InitSent {
                self.drop_msg(remote, "IKE_SA_INIT response outside IKE_SA_INIT");
                return Fate::Keep;
            }
            return self.init_response(sa, header, data);
        }
        let Some(payloads) = self.open_whole(sa, remote, header.message_id, true, data) else {
            return Fate::Keep;
        };
        self.follow_peer_port(sa, local, remote);
        sa.last_heard = self.now.at;
        let Some(p) = sa.pending.take() else {
            return Fate::Keep;
        };
        sa.next_msg_id = sa.next_msg_id.wrapping_add(1);
        match p.exchange {
            Exchange::Auth => self.auth_response(sa, payloads),
            Exchange::CreateChild {
                req,
                ni,
                dh,
                collision,
            } => self.child_response(sa, payloads, req, ni, dh, collision),
            Exchange::DeleteChild { spi_in, .. } => {
                self.delete_child_response(sa, spi_in, &payloads);
                Fate::Keep
            }
            Exchange::DeleteIke => Fate::Close("deleted".into()),
            Exchange::RekeyIke {
                spi,
                ni,
                dh,
                collision,
            } => self.rekey_ike_response(sa, payloads, spi, ni, dh, collision),
            Exchange::Liveness | Exchange::Init => Fate::Keep,
        }
    }

    /// Decrypts a protected message, whole or one fragment; None (after logging) when it does
    /// not verify or parse. Nothing in the SA changes here.
    fn open_any(&mut self, sa: &IkeSa, data: &[u8]) -> Option<Opened> {
        let keys = sa.keys.as_ref()?;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.drop_msg(sa.remote, &format!("unparseable message: {e}"));
                return None;
            }
        };
        match super::protect::open_any(&keys.inb, data, &msg) {
            Ok(p) => Some(p),
            Err(super::protect::OpenError::Integrity) => {
                self.drop_msg(sa.remote, "integrity check failed");
                None
            }
            Err(super::protect::OpenError::Syntax(e)) => {
                self.drop_msg(sa.remote, &format!("bad content in protected message: {e}"));
                None
            }
            Err(super::protect::OpenError::NotProtected) => {
                self.drop_msg(sa.remote, "unprotected message after IKE_SA_INIT");
                None
            }
        }
    }

    /// The payloads of message `msg_id` once it is whole: at once for an SK message; for an
    /// Encrypted Fragment, when this verified fragment completes the message (until then, and
    /// for anything that does not verify, None). Only verified fragments change the SA.
    fn open_whole(
        &mut self,
        sa: &mut IkeSa,
        remote: SocketAddr,
        msg_id: u32,
        response: bool,
        data: &[u8],
    ) -> Option<Vec<Payload>> {
        match self.open_any(sa, data)? {
            Opened::Whole(p) => Some(p),
            Opened::Fragment(f) => match self.reassemble(sa, msg_id, response, f) {
                Reassembled::Done(p) => Some(p),
                Reassembled::Waiting => None,
                Reassembled::Refused(why) => {
                    self.drop_msg(remote, why);
                    None
                }
            },
        }
    }

    pub(super) fn drop_msg(&mut self, remote: SocketAddr, why: &str) {
        self.stats.dropped += 1;
        debug!(%remote, why, "dropped IKE message");
    }

    /// An unprotected error answer to a request we cannot or will not process (IKE_SA_INIT).
    pub(super) fn send_unprotected_error(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        request: &Header,
        notify: u16,
        data: Vec<u8>,
    ) {
        let h = *request;
        let msg = Message {
            header: Header {
                flags: FLAG_RESPONSE,
                version: IKE_VERSION,
                ..h
            },
            payloads: vec![Payload::Notify(Notify::new(notify, data))],
        };
        self.transmits.push_back(Transmit {
            local,
            remote,
            data: msg.emit(),
        });
    }

    fn start_next(&mut self, sa: &mut IkeSa) {
        while sa.pending.is_none() {
            let Some(intent) = sa.queue.pop_front() else {
                return;
            };
            match intent {
                Intent::CreateChild(class) => self.start_create_child(sa, Some(class), None),
                Intent::RekeyChild(spi) => {
                    if let Some(i) = sa.child_by_in(spi) {
                        let class = sa.children[i].class;
                        self.start_create_child(sa, class, Some(spi));
                    }
                }
                Intent::DeleteChild(spi) => self.start_delete_child(sa, spi),
                Intent::DeleteIke => {
                    let del = super::info::ike_delete();
                    let data = self.seal(sa, INFORMATIONAL, false, sa.next_msg_id, &[del]);
                    sa.state = State::Deleting;
                    self.send_request(sa, data, Exchange::DeleteIke);
                }
                Intent::RekeyIke => self.start_rekey_ike(sa, None),
                Intent::Liveness => {
                    let data = self.seal(sa, INFORMATIONAL, false, sa.next_msg_id, &[]);
                    self.send_request(sa, data, Exchange::Liveness);
                }
            }
        }
    }

    /// A fresh inbound ESP SPI, unique among ours (values below 256 are reserved, RFC 4303).
    pub(super) fn new_child_spi(&mut self, owner: u64) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let spi = u32::from_be_bytes(b);
            if spi >= 256 && !self.child_spis.contains_key(&spi) {
                self.child_spis.insert(spi, owner);
                return spi;
            }
        }
    }

    /// An inbound SPI for a CHILD_SA: from the allocator when there is one, else random.
    /// None when the allocator fails; the caller refuses that CHILD_SA.
    pub(super) fn alloc_child_spi(&mut self, sa: &IkeSa, req: &SpiRequest) -> Option<u32> {
        let owner = sa.our_spi();
        let Some(a) = self.spi_alloc.as_mut() else {
            return Some(self.new_child_spi(owner));
        };
        // The kernel's SPIs are unique per destination; ours must be unique overall.
        for _ in 0..4 {
            match a.try_allocate(req) {
                // None reserved at hand (a new local address, a burst): our own random one,
                // which the backend creates with NEWSA. Waiting for the kernel here would stall
                // every peer.
                Ok(None) => {
                    let spi = self.new_child_spi(owner);
                    // The lab's checks follow each inbound SPI to its end (s7: none may stay in
                    // the kernel for a refused CHILD_SA): named with its destination.
                    debug!(dst = %req.dst, spi = format_args!("{spi:08x}"), reserved = false, "inbound SPI");
                    return Some(spi);
                }
                Ok(Some(spi)) if spi >= 256 && !self.child_spis.contains_key(&spi) => {
                    self.child_spis.insert(spi, owner);
                    self.larval.insert(spi, req.dst);
                    debug!(dst = %req.dst, spi = format_args!("{spi:08x}"), reserved = true, "inbound SPI");
                    return Some(spi);
                }
                Ok(Some(spi)) => {
                    debug!(
                        spi = format_args!("{spi:08x}"),
                        "allocated SPI in use; again"
                    );
                    // The kernel holds a larval SA for it all the same. Its SPIs are unique
                    // per destination, so that is never one of ours; checked all the same.
                    // (`sa` is out of `self.sas` while it is being worked on.)
                    let at_dst = |s: &IkeSa| {
                        s.children
                            .iter()
                            .any(|c| c.spi_in == spi && c.outer_local == req.dst)
                    };
                    let ours = self.larval.get(&spi) == Some(&req.dst)
                        || at_dst(sa)
                        || self.sas.values().any(|s| at_dst(s));
                    if !ours {
                        self.kernel_ops
                            .push_back(KernelOp::DelSa { dst: req.dst, spi });
                    }
                }
                Err(e) => {
                    warn!(src = %req.src, dst = %req.dst, reqid = req.reqid, "no inbound SPI: {e}");
                    return None;
                }
            }
        }
        warn!("no unused inbound SPI from the allocator");
        None
    }

    /// Gives up an inbound SPI no CHILD_SA was installed with: unreserved here, and its larval
    /// SA deleted from the kernel when the allocator made one.
    pub(super) fn release_child_spi(&mut self, spi: u32) {
        self.child_spis.remove(&spi);
        if let Some(dst) = self.larval.remove(&spi) {
            debug!(%dst, spi = format_args!("{spi:08x}"), "deleting the larval SA of a failed CHILD_SA");
            self.kernel_ops.push_back(KernelOp::DelSa { dst, spi });
        }
    }

    /// A fresh IKE SPI, unique among ours and never zero.
    pub(super) fn new_ike_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let mut spi = u64::from_be_bytes(b);
            if self.shard.1 > 1 {
                // The daemon routes by the top byte (see `shard`).
                spi = (spi & 0x00ff_ffff_ffff_ffff) | (u64::from(self.shard.0) << 56);
            }
            if spi != 0 && !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }

    pub(super) fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0u8; 32];
        self.rng.fill(&mut n);
        n
    }

    pub(super) fn rotate_cookie_secret(&mut self) {
        self.cookie_secret_prev = self.cookie_secret;
        self.rng.fill(&mut self.cookie_secret);
        self.cookie_version = self.cookie_version.wrapping_add(1);
        self.cookie_rotate_at = None;
    }

    /// Arms the periodic cookie-secret rotation (RFC 7296 2.6) once cookies are in use.
    pub(super) fn arm_cookie_rotation(&mut self) {
        if self.cookie_rotate_at.is_none() {
            self.cookie_rotate_at = Some(self.now.at + Duration::from_secs(300));
        }
    }

    /// Drops a responder SA from the half-open index (a keyed removal: this runs once per SA).
    pub(super) fn forget_half_open(&mut self, sa: &IkeSa) {
        let key = (sa.remote, sa.spi_i);
        if !sa.initiator && self.half_open.get(&key) == Some(&sa.spi_r) {
            self.half_open.remove(&key);
            self.sources().half_open_removed(key.0.ip());
        }
    }

    pub(super) fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    /// An IKE_SA_INIT was refused for a bad KE value (spoofed floods of those must start the
    /// cookie defence like floods of good ones do).
    pub(super) fn note_bad_init(&mut self) {
        let now = self.now.at;
        match &mut self.bad_inits {
            (Some(start), n) if now.saturating_duration_since(*start) < BAD_INIT_WINDOW => {
                *n = n.saturating_add(1);
            }
            w => *w = (Some(now), 1),
        }
    }

    /// IKE_SA_INIT requests refused for a bad KE value in the current window.
    pub(super) fn recent_bad_inits(&self) -> usize {
        match self.bad_inits {
            (Some(start), n) if self.now.at.saturating_duration_since(start) < BAD_INIT_WINDOW => n,
            _ => 0,
        }
    }

    pub(super) fn push_event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub(super) fn is_home_agent(&self) -> bool {
        self.cfg.home_agent.is_some()
    }
}

/// The wait before retransmission number `tries`: `timeout` × `backoff`^tries, capped at
/// `retransmit_max`. Computed in f64 and capped before it becomes a Duration: a legal
/// configuration (backoff 10, 20 tries) exceeds what a Duration holds, which would panic.
pub(super) fn retransmit_wait(t: &super::config::Timers, tries: u32) -> Duration {
    let exp = i32::try_from(tries).unwrap_or(i32::MAX);
    let secs = t.retransmit_timeout.as_secs_f64() * t.retransmit_backoff.powi(exp);
    if secs.is_finite() && secs >= 0.0 && secs < t.retransmit_max.as_secs_f64() {
        Duration::try_from_secs_f64(secs).unwrap_or(t.retransmit_max)
    } else {
        t.retransmit_max
    }
}

/// The type of the first unknown payload with the critical bit set (RFC 7296 2.5).
pub(super) fn unsupported_critical(payloads: &[Payload]) -> Option<u8> {
    payloads.iter().find_map(|p| match p {
        Payload::Unknown {
            payload_type,
            critical: true,
            ..
        } => Some(*payload_type),
        _ => None,
    })
}

pub(super) fn child_info(sa: &IkeSa, c: &super::sa::Child) -> ChildInfo {
    ChildInfo {
        ike: sa.id(),
        class: c.class,
        mode: c.mode,
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        reqid_in: c.reqid_in,
        reqid_out: c.reqid_out,
        local: c.outer_local,
        remote: c.outer_remote,
        ts_local: c.ts_local.clone(),
        ts_remote: c.ts_remote.clone(),
        transforms: c.suite.to_string(),
        installed: c.installed,
    }
}
