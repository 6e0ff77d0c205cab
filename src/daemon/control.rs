//! What the control socket asks of the daemon, run on the daemon's own task through
//! [`Control::Call`]: listings with kernel counters, users, stats, reload, initiate, terminate and
//! rekey. Everything here is synchronous and quick; waiting (for SAs to come up, for an address
//! provider) happens in `control::server`, never on the daemon's task. Listings only take a
//! snapshot there ([`SasSnapshot`], [`UsersSnapshot`]); their join with the users, filters and
//! serialization run off it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Control, Daemon, now};
use crate::control::protocol::{
    self as proto, ErrorBody, ErrorCode, HelloResult, InitiateResult, ListUsersResult, StatsResult,
};
use crate::daemon::show;
use crate::ike::{ChildInfo, Command, Event, HomeAddress, IkeId, IkeSaInfo};
use crate::kernel::Mode;
use crate::mobility::{IdentityMatch, SaClass, User, UserAuth, UserDb};
use crate::policy::{MobileNodeSettings, Role};

/// A cloneable way to reach a running daemon from other tasks.
#[derive(Clone)]
pub struct DaemonHandle {
    tx: mpsc::Sender<Control>,
    events: broadcast::Sender<Event>,
}

impl DaemonHandle {
    /// Runs `f` on the daemon's task and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, ErrorBody>
    where
        R: Send + 'static,
        F: FnOnce(&mut Daemon) -> R + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn FnOnce(&mut Daemon) + Send> = Box::new(move |d| {
            let _ = reply.send(f(d));
        });
        let gone = || ErrorBody::new(ErrorCode::Internal, "the daemon is shutting down");
        self.tx.send(Control::Call(job)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Every engine event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The control channel (for reload, which takes the SIGHUP path).
    pub fn sender(&self) -> &mpsc::Sender<Control> {
        &self.tx
    }
}

/// What `initiate` found or started.
pub struct InitiateStart {
    pub ike: IkeId,
    /// The IKE SA existed before this request.
    pub existing: bool,
    /// Already established with every class: the reply can go out at once.
    pub done: Option<InitiateResult>,
    /// The classes whose CHILD_SAs to wait for.
    pub classes: Vec<SaClass>,
}

/// Parameters of an `initiate` request, already checked.
pub struct InitiateParams {
    pub home_agent: Option<SocketAddr>,
    pub home_address: Option<HomeAddress>,
    pub classes: Option<Vec<SaClass>>,
}

fn prefix_info(i: &IkeSaInfo) -> Option<proto::PrefixInfo> {
    i.home_prefix.map(|(p, l, lifetime)| proto::PrefixInfo {
        prefix: format!("{p}/{l}"),
        lifetime_s: lifetime,
    })
}

fn hex32(v: u32) -> String {
    format!("{v:08x}")
}

fn age(at: Instant) -> u64 {
    Instant::now().saturating_duration_since(at).as_secs()
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Transport => "transport",
        Mode::Tunnel => "tunnel",
    }
}

/// The kernel's counters by (destination, SPI).
type Counters = HashMap<(IpAddr, u32), crate::kernel::SaCounters>;

/// A CHILD_SA as the protocol shows it, with the kernel's counters when it has them.
pub fn child_sa(c: &ChildInfo, counters: &Counters) -> proto::ChildSa {
    let cin = counters.get(&(c.local, c.spi_in));
    let cout = counters.get(&(c.remote, c.spi_out));
    proto::ChildSa {
        ike: c.ike.to_string(),
        class: c.class.map(|k| k.name().to_string()),
        mode: mode_name(c.mode).to_string(),
        spi_in: hex32(c.spi_in),
        spi_out: hex32(c.spi_out),
        reqid_in: c.reqid_in,
        reqid_out: c.reqid_out,
        local: c.local.to_string(),
        remote: c.remote.to_string(),
        ts_local: c.ts_local.iter().map(show::selector).collect(),
        ts_remote: c.ts_remote.iter().map(show::selector).collect(),
        transforms: c.transforms.clone(),
        age_s: age(c.installed),
        bytes_in: cin.map(|x| x.bytes),
        bytes_out: cout.map(|x| x.bytes),
        packets_in: cin.map(|x| x.packets),
        packets_out: cout.map(|x| x.packets),
    }
}

/// Converts an engine event for subscribers.
pub fn event_msg(e: &Event) -> proto::EventMsg {
    use proto::EventMsg as M;
    match e {
        Event::IkeUp {
            ike,
            local,
            remote,
            peer,
        } => M::IkeUp {
            ike: ike.to_string(),
            local: local.to_string(),
            remote: remote.to_string(),
            peer: peer.to_string(),
        },
        Event::IkeDown { ike, reason } => M::IkeDown {
            ike: ike.to_string(),
            reason: reason.clone(),
        },
        Event::IkeRekeyed { old, new } => M::IkeRekeyed {
            old: old.to_string(),
            new: new.to_string(),
        },
        Event::ChildUp(c) => M::ChildUp {
            ike: c.ike.to_string(),
            child: Box::new(child_sa(c, &Counters::new())),
        },
        Event::ChildDown {
            ike,
            spi_in,
            spi_out,
            reason,
        } => M::ChildDown {
            ike: ike.to_string(),
            spi_in: hex32(*spi_in),
            spi_out: hex32(*spi_out),
            reason: reason.clone(),
        },
        Event::AuthFailed {
            remote,
            identity,
            requested,
            reason,
        } => M::AuthFailed {
            remote: remote.to_string(),
            identity: identity.as_ref().map(|i| i.to_string()),
            requested: requested.iter().map(show::selector).collect(),
            reason: reason.clone(),
        },
        Event::Refused {
            ike,
            identity,
            requested,
            reason,
        } => M::Refused {
            ike: ike.to_string(),
            identity: identity.to_string(),
            requested: requested.iter().map(show::selector).collect(),
            reason: reason.clone(),
        },
        Event::HoaAssigned { ike, address } => M::HoaAssigned {
            ike: ike.to_string(),
            address: *address,
        },
        Event::PrefixAssigned {
            ike,
            prefix,
            prefix_len,
            lifetime,
        } => M::PrefixAssigned {
            ike: ike.to_string(),
            prefix: format!("{prefix}/{prefix_len}"),
            lifetime_s: *lifetime,
        },
        Event::Migrated {
            ike,
            old_local,
            old_remote,
            new_local,
            new_remote,
        } => M::Migrated {
            ike: ike.to_string(),
            old_local: old_local.to_string(),
            old_remote: old_remote.to_string(),
            new_local: new_local.to_string(),
            new_remote: new_remote.to_string(),
        },
        Event::AddressWanted {
            ike,
            identity,
            user,
            wants_address,
            wants_prefix,
            requested,
        } => M::AddressRequest {
            request_id: 0,
            ike: ike.to_string(),
            identity: identity.to_string(),
            user: user.clone(),
            wants: [(*wants_address, "address"), (*wants_prefix, "prefix")]
                .iter()
                .filter(|(w, _)| *w)
                .map(|(_, n)| n.to_string())
                .collect(),
            requested: *requested,
            timeout_ms: 0,
        },
        Event::CrlWanted { uris } => M::CrlWanted { uris: uris.clone() },
        Event::OcspWanted { query, uri, .. } => M::OcspWanted {
            query: *query,
            uri: uri.clone(),
        },
        Event::ExchangeFailed {
            ike,
            exchange,
            notify,
            reason,
        } => M::ExchangeFailed {
            ike: ike.to_string(),
            exchange: exchange.to_string(),
            notify: notify.and_then(proto::notify_name).map(str::to_string),
            notify_type: *notify,
            reason: reason.clone(),
        },
    }
}

/// The filters of `list-sas` and `list-users`, checked.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// A user file's name or an identity.
    pub user: Option<String>,
    pub hoa: Option<Ipv6Addr>,
}

impl ListFilter {
    pub fn parse(q: &proto::ListQuery) -> Result<ListFilter, ErrorBody> {
        let hoa = q
            .hoa
            .as_deref()
            .map(|s| {
                s.trim().parse::<Ipv6Addr>().map_err(|_| {
                    ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("hoa = \"{s}\": write an IPv6 home address"),
                    )
                })
            })
            .transpose()?;
        Ok(ListFilter {
            user: q.user.clone(),
            hoa,
        })
    }

    /// The user `user` names in `db`: by file name, by the identity (or pattern) as
    /// `list-users` prints it, or the user an identity maps to. O(users) once per request.
    fn user_in(&self, db: &UserDb) -> Option<Option<Arc<User>>> {
        let f = self.user.as_deref()?;
        let by_name = db
            .users()
            .iter()
            .find(|u| u.name == f || identity_text(u) == f)
            .cloned();
        Some(by_name.or_else(|| {
            crate::auth::Identity::parse_config(f)
                .ok()
                .and_then(|id| db.lookup(&id))
        }))
    }
}

/// A user's identity or pattern as `list-users` prints it.
fn identity_text(u: &User) -> String {
    match &u.identity {
        IdentityMatch::Exact(id) => id.to_string(),
        IdentityMatch::DnPattern(p) => format!("dn:{p}"),
    }
}

/// A user as `list-users` shows it, with its number of IKE SAs.
pub fn user_item((u, ike_sas): &(Arc<User>, usize)) -> proto::User {
    proto::User {
        name: u.name.clone(),
        identity: identity_text(u),
        auth: match u.auth {
            UserAuth::Certificate => "certificate",
            UserAuth::Psk(_) => "psk",
        }
        .into(),
        home_addresses: u.home_addresses.clone(),
        classes: u.classes.iter().map(|c| c.name().to_string()).collect(),
        ike_sas: *ike_sas,
    }
}

/// The daemon's IKE SAs at one moment, for `list-sas` (see [`Daemon::sas_snapshot`]).
pub struct SasSnapshot {
    sas: Vec<IkeSaInfo>,
    counters: Counters,
    users: Option<Arc<UserDb>>,
}

impl SasSnapshot {
    /// The IKE SAs `f` selects (indices into the snapshot) with their user's name: one user
    /// lookup per IKE SA, O(SAs) overall.
    pub fn select(&self, f: &ListFilter) -> Vec<(usize, Option<String>)> {
        let wanted = self.users.as_deref().and_then(|db| f.user_in(db));
        self.sas
            .iter()
            .enumerate()
            .filter_map(|(n, i)| {
                let user = self
                    .users
                    .as_deref()
                    .zip(i.peer.as_ref())
                    .and_then(|(db, p)| db.lookup(p));
                if let Some(h) = f.hoa
                    && i.home_address != Some(h)
                {
                    return None;
                }
                if let Some(name) = &f.user {
                    let same_user = match (&wanted, &user) {
                        (Some(Some(w)), Some(u)) => Arc::ptr_eq(w, u),
                        _ => false,
                    };
                    let same_peer = i.peer.as_ref().is_some_and(|p| p.to_string() == *name);
                    if !same_user && !same_peer {
                        return None;
                    }
                }
                Some((n, user.map(|u| u.name.clone())))
            })
            .collect()
    }

    /// One selected IKE SA as the protocol shows it.
    pub fn item(&self, (n, user): &(usize, Option<String>)) -> proto::IkeSa {
        let i = &self.sas[*n];
        proto::IkeSa {
            ike: i.id.to_string(),
            initiator: i.initiator,
            state: i.state.to_string(),
            local: i.local.to_string(),
            remote: i.remote.to_string(),
            spi_i: format!("{:016x}", i.spi_i),
            spi_r: format!("{:016x}", i.spi_r),
            peer: i.peer.as_ref().map(|p| p.to_string()),
            user: user.clone(),
            home_address: i.home_address,
            home_prefix: prefix_info(i),
            transforms: i.transforms.clone(),
            auth_method: i.peer_auth_method,
            age_s: age(i.created),
            children: i
                .children
                .iter()
                .map(|c| child_sa(c, &self.counters))
                .collect(),
        }
    }
}

/// The users and the IKE SAs' peers at one moment, for `list-users`.
pub struct UsersSnapshot {
    peers: Vec<(Option<crate::auth::Identity>, Option<Ipv6Addr>)>,
    users: Arc<UserDb>,
}

impl UsersSnapshot {
    /// The users `f` selects with their IKE SA counts. One lookup per IKE SA into a map keyed
    /// by the user (the old code scanned every IKE SA for every user: O(users x SAs)).
    pub fn select(&self, f: &ListFilter) -> Vec<(Arc<User>, usize)> {
        // Keyed by the user's address: lookups return the table's own Arcs.
        let mut count: HashMap<*const User, usize> = HashMap::new();
        let mut holds: HashMap<*const User, Vec<Ipv6Addr>> = HashMap::new();
        for (peer, hoa) in &self.peers {
            let Some(u) = peer.as_ref().and_then(|p| self.users.lookup(p)) else {
                continue;
            };
            *count.entry(Arc::as_ptr(&u)).or_default() += 1;
            if let (Some(h), Some(_)) = (hoa, f.hoa) {
                holds.entry(Arc::as_ptr(&u)).or_default().push(*h);
            }
        }
        let wanted = f.user_in(&self.users);
        self.users
            .users()
            .iter()
            .filter(|u| match &wanted {
                None => true,
                Some(w) => w.as_ref().is_some_and(|w| Arc::ptr_eq(w, u)),
            })
            .filter(|u| {
                f.hoa.is_none_or(|h| {
                    u.home_addresses.contains(&h)
                        || holds.get(&Arc::as_ptr(u)).is_some_and(|v| v.contains(&h))
                })
            })
            .map(|u| {
                let n = count.get(&Arc::as_ptr(u)).copied().unwrap_or(0);
                (u.clone(), n)
            })
            .collect()
    }
}

/// Reads an IKE SA id as listings print it (16 hex digits; a leading 0x is fine).
pub fn parse_ike_id(s: &str) -> Result<IkeId, ErrorBody> {
    let t = s.trim().trim_start_matches("0x");
    u64::from_str_radix(t, 16).map(IkeId).map_err(|_| {
        ErrorBody::new(
            ErrorCode::BadRequest,
            format!("ike = \"{s}\" is not an IKE SA id; use the 16 hex digits `sas` shows"),
        )
    })
}

impl Daemon {
    /// A handle for the control socket; `tx` is the sender of the channel given to `run`.
    pub fn handle(&self, tx: mpsc::Sender<Control>) -> DaemonHandle {
        DaemonHandle {
            tx,
            events: self.events.clone(),
        }
    }

    pub fn role(&self) -> Role {
        self.cfg.role
    }

    pub fn hello(&self) -> HelloResult {
        HelloResult {
            protocol: proto::PROTOCOL_VERSION,
            daemon: "mip6-iked".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            role: self.cfg.role.name().into(),
            uptime_s: age(self.started),
        }
    }

    fn user_name(&self, info: &IkeSaInfo) -> Option<String> {
        let ha = self.cfg.engine.home_agent.as_ref()?;
        let peer = info.peer.as_ref()?;
        ha.users.lookup(peer).map(|u| u.name.clone())
    }

    fn counters(&self) -> Counters {
        self.kernel
            .counters()
            .into_iter()
            .map(|(dst, spi, c)| ((dst, spi), c))
            .collect()
    }

    /// What `list-sas` needs, taken on the daemon's task: the engine's view of every IKE SA,
    /// the kernel's counters and the user table, O(SAs) copies. Converting, joining with the
    /// users, filtering and serializing run elsewhere ([`SasSnapshot::select`], then
    /// [`SasSnapshot::item`] chunk by chunk on the connection's task), so that a large
    /// listing does not hold up IKE traffic.
    pub fn sas_snapshot(&self) -> SasSnapshot {
        SasSnapshot {
            sas: self.list(),
            counters: self.counters(),
            users: self
                .cfg
                .engine
                .home_agent
                .as_ref()
                .map(|ha| ha.users.clone()),
        }
    }

    /// What `list-users` needs, taken on the daemon's task: each IKE SA's peer and home
    /// address, and the user table (an Arc). The join runs in [`UsersSnapshot::select`].
    pub fn users_snapshot(&self) -> Result<UsersSnapshot, ErrorBody> {
        let Some(ha) = &self.cfg.engine.home_agent else {
            return Err(ErrorBody::new(
                ErrorCode::WrongRole,
                "list-users: this daemon is a mobile node; users live on the home agent",
            ));
        };
        Ok(UsersSnapshot {
            peers: self
                .list()
                .into_iter()
                .map(|i| (i.peer, i.home_address))
                .collect(),
            users: ha.users.clone(),
        })
    }

    /// The whole `list-sas` result (tests and in-process callers; the socket streams it).
    pub fn list_sas(&self) -> proto::ListSasResult {
        let s = self.sas_snapshot();
        let sel = s.select(&ListFilter::default());
        proto::ListSasResult {
            ike_sas: sel.iter().map(|x| s.item(x)).collect(),
        }
    }

    /// The whole `list-users` result (tests and in-process callers; the socket streams it).
    pub fn list_users(&self) -> Result<ListUsersResult, ErrorBody> {
        let sel = self.users_snapshot()?.select(&ListFilter::default());
        Ok(ListUsersResult {
            users: sel.iter().map(user_item).collect(),
        })
    }

    pub fn stats(&self) -> StatsResult {
        // Every shard's counters, summed.
        let (mut s, mut ike_sas, mut child_sas) = (crate::ike::Stats::default(), 0, 0);
        for shard in &self.shards {
            let ep = shard.raw();
            s.add(&ep.stats);
            ike_sas += ep.ike_sa_count();
            child_sas += ep.child_sa_count();
        }
        StatsResult {
            uptime_s: age(self.started),
            ike_sas,
            child_sas,
            handshakes: s.ike_established,
            handshakes_failed: s.ike_failed,
            children_established: s.children_established,
            retransmissions: s.retransmissions,
            cookies_sent: s.cookies_sent,
            invalid_ke_sent: s.invalid_ke_sent,
            dropped: s.dropped,
            auth_failures: s.auth_failures,
            ts_refused: s.ts_refused,
            nat_detected: s.nat_detected,
            migrations: s.migrations,
            socket_drops: self.kernel_drops(),
            fragmented_sent: s.fragmented_sent,
            reassembled: s.reassembled,
            failures: proto::failures(&s.failures),
        }
    }

    /// The SIGHUP path, with its outcome for the caller.
    pub fn reload_for_control(&mut self) -> Result<Vec<String>, ErrorBody> {
        self.try_reload()
            .map_err(|e| ErrorBody::new(ErrorCode::ReloadFailed, e))
    }

    /// An `initiate` request: finds an IKE SA that already does what is asked, or starts one.
    pub fn start_initiate(&mut self, p: InitiateParams) -> Result<InitiateStart, ErrorBody> {
        let Some(base) = self.cfg.mobile_node.clone() else {
            return Err(ErrorBody::new(
                ErrorCode::WrongRole,
                "initiate: this daemon is a home agent; run initiate on the mobile node",
            ));
        };
        let mut mn = MobileNodeSettings {
            home_agent: p.home_agent.unwrap_or(base.home_agent),
            home_address: p.home_address.unwrap_or(base.home_address),
            classes: p.classes.unwrap_or_else(|| base.classes.clone()),
            ..base.clone()
        };
        if let Some(ha) = p.home_agent
            && let IpAddr::V6(a) = ha.ip()
            && ha != base.home_agent
        {
            // Another home agent: its address is also the one in the selectors.
            mn.home_agent_address = a;
        }
        if mn.classes.is_empty() {
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "initiate: give at least one SA class",
            ));
        }
        // An IKE SA of ours to that home agent for that home address answers the request
        // (mip6d's start script may ask for what the daemon already brought up).
        // (Not `initiator`: after the HA rekeyed the IKE SA, we are its responder.)
        let existing = self.list().into_iter().find(|i| {
            i.state != "rekeyed"
                && i.state != "deleting"
                && i.remote == mn.home_agent
                && match mn.home_address {
                    HomeAddress::Static(a) => i.home_address.is_none_or(|h| h == a),
                    HomeAddress::Dynamic => true,
                }
        });
        if let Some(i) = existing {
            let complete = has_classes(&i, &mn.classes);
            if !complete && i.state == "established" {
                // Up, but without some of the classes asked for now: add them.
                for &class in &mn.classes {
                    if !i.children.iter().any(|ch| ch.class == Some(class)) {
                        self.command(Command::CreateChild { ike: i.id, class })
                            .map_err(|e| ErrorBody::new(ErrorCode::SaDown, e))?;
                    }
                }
            }
            let done = complete.then(|| self.initiate_result(&i, true, None));
            return Ok(InitiateStart {
                ike: i.id,
                existing: true,
                done,
                classes: mn.classes,
            });
        }
        let ike = self
            .initiate_with(&mn)
            .map_err(|e| ErrorBody::new(ErrorCode::BadRequest, e.to_string()))?;
        // The configured SA is kept up by the daemon (re-initiated after it goes down).
        if self.mn_ike.is_none() && mn == base {
            self.mn_ike = Some(ike);
        }
        Ok(InitiateStart {
            ike,
            existing: false,
            done: None,
            classes: mn.classes,
        })
    }

    /// The reply to `initiate` for an IKE SA as it is now.
    pub fn initiate_result(
        &self,
        i: &IkeSaInfo,
        existing: bool,
        prefix: Option<proto::PrefixInfo>,
    ) -> InitiateResult {
        let t = self.cfg.engine.timers;
        InitiateResult {
            ike: i.id.to_string(),
            existing,
            local: i.local.to_string(),
            remote: i.remote.to_string(),
            home_address: i.home_address,
            prefix: prefix.or_else(|| prefix_info(i)),
            child_rekey_s: t.child_rekey.as_secs(),
            child_lifetime_s: t.child_lifetime.as_secs(),
            ike_rekey_s: t.ike_rekey.as_secs(),
            children: {
                let counters = self.counters();
                i.children.iter().map(|c| child_sa(c, &counters)).collect()
            },
        }
    }

    /// Handles a kernel event (ACQUIRE, EXPIRE, MIGRATE) as if the kernel backend had
    /// reported it; tests use it with the in-memory backend, which reports none.
    pub fn kernel_event(&mut self, ev: crate::kernel::KernelEvent) {
        self.on_kernel_event(ev);
    }

    /// The current view of one IKE SA.
    pub fn ike_info(&self, ike: IkeId) -> Option<IkeSaInfo> {
        self.get(ike)
    }

    /// Deletes one IKE SA, or all IKE SAs of `user`; returns their ids.
    pub fn terminate(
        &mut self,
        ike: Option<IkeId>,
        user: Option<&str>,
    ) -> Result<Vec<String>, ErrorBody> {
        let ids: Vec<IkeId> = match (ike, user) {
            (Some(id), None) => vec![id],
            (None, Some(name)) => {
                let Some(ha) = &self.cfg.engine.home_agent else {
                    return Err(ErrorBody::new(
                        ErrorCode::WrongRole,
                        "terminate user=...: users live on the home agent; give ike=<id>",
                    ));
                };
                if !ha.users.users().iter().any(|u| u.name == name) {
                    return Err(ErrorBody::new(
                        ErrorCode::NoSuchUser,
                        format!("no user file named '{name}'; see list-users"),
                    ));
                }
                self.list()
                    .iter()
                    .filter(|i| self.user_name(i).as_deref() == Some(name))
                    .map(|i| i.id)
                    .collect()
            }
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::BadRequest,
                    "terminate needs exactly one of ike=<id> or user=<name>",
                ));
            }
        };
        let mut done = Vec::new();
        for id in ids {
            // Asked for: do not bring it back up on our own.
            if self.mn_ike == Some(id) {
                self.mn_ike = None;
            }
            match self.command(Command::Terminate { ike: id }) {
                Ok(_) => done.push(id.to_string()),
                Err(e) if ike.is_some() => {
                    return Err(ErrorBody::new(ErrorCode::NoSuchSa, e));
                }
                Err(_) => {}
            }
        }
        Ok(done)
    }

    /// Rekeys an IKE SA, or one CHILD_SA of it (by inbound SPI).
    pub fn rekey(&mut self, ike: IkeId, child: Option<u32>) -> Result<(), ErrorBody> {
        let cmd = match child {
            None => Command::RekeyIke { ike },
            Some(spi_in) => {
                let known = self
                    .get(ike)
                    .is_some_and(|i| i.children.iter().any(|c| c.spi_in == spi_in));
                if !known {
                    return Err(ErrorBody::new(
                        ErrorCode::NoSuchSa,
                        format!("IKE SA {ike} has no CHILD_SA with inbound SPI {spi_in:08x}"),
                    ));
                }
                Command::RekeyChild { ike, spi_in }
            }
        };
        self.command(cmd)
            .map(|_| ())
            .map_err(|e| ErrorBody::new(ErrorCode::NoSuchSa, e))
    }
}

impl Daemon {
    /// A provider registered (true) or left; returns how long the engine waits for it.
    pub fn set_address_provider(&mut self, on: bool) -> Duration {
        let t = self.cfg.control.provider_timeout;
        for i in 0..self.shards.len() {
            self.ep(i).set_address_provider(on.then_some(t));
        }
        t
    }

    /// The provider's answer (None: none in time) for a parked IKE_AUTH.
    pub fn provide_address(
        &mut self,
        ike: IkeId,
        a: Option<crate::control::server::ProviderAnswer>,
    ) {
        let answer = a.map_or_else(Default::default, |a| crate::ike::ProvidedAddress {
            address: a.address,
            prefix: a.prefix,
            prefix_lifetime: a.prefix_lifetime,
        });
        if let Err(e) = self.command(Command::ProvideAddress { ike, answer }) {
            tracing::debug!("address answer not used: {e}");
        }
    }

    /// Certificates and revocation state (`certs`): ours, the CAs, the CRLs in force, and
    /// the peers' certificates of the IKE SAs with the status found when they were last
    /// checked (at authentication or the last CRL update).
    pub fn certs(&self) -> proto::CertsResult {
        use crate::auth::revocation::{self, CertStatus};
        let cfg = &self.cfg.engine;
        // Every shard holds the same CRLs (the daemon hands them to all).
        let crls = self.shards[0].raw().crls().clone();
        let unix = now().unix;
        let dn = |raw: &[u8]| {
            let s = crate::auth::Identity::Dn(raw.to_vec()).to_string();
            s.strip_prefix("dn:").map(str::to_string).unwrap_or(s)
        };
        let hex = crate::ike::revoke_serial_hex;
        let mut certs = Vec::new();
        if let crate::ike::LocalAuth::Certificate { chain, .. } = &cfg.auth {
            for c in chain {
                let Some(d) = revocation::describe(c) else {
                    continue;
                };
                let checked = (cfg.revocation != revocation::RevocationPolicy::Off)
                    .then(|| crls.status(&d.issuer, &d.serial, unix));
                certs.push(proto::CertEntry {
                    kind: "local".into(),
                    subject: dn(&d.subject),
                    issuer: dn(&d.issuer),
                    serial: hex(&d.serial),
                    not_after: d.not_after,
                    status: Some(
                        checked
                            .as_ref()
                            .map_or(CertStatus::Unknown, |c| c.status)
                            .name()
                            .into(),
                    ),
                    source: checked.as_ref().and_then(|c| c.source.clone()),
                    checked_at: checked.map(|c| c.at),
                    ike: None,
                    peer: None,
                });
            }
        }
        if let Some(t) = &cfg.trust {
            for ca in t.cas() {
                certs.push(proto::CertEntry {
                    kind: "ca".into(),
                    subject: dn(&ca.subject),
                    issuer: dn(&ca.issuer),
                    serial: hex(&ca.serial),
                    not_after: ca.not_after,
                    status: None,
                    source: None,
                    checked_at: None,
                    ike: None,
                    peer: None,
                });
            }
        }
        let peers: Vec<_> = self
            .shards
            .iter()
            .flat_map(|s| s.raw().peer_certs())
            .collect();
        for p in peers {
            certs.push(proto::CertEntry {
                kind: "peer".into(),
                subject: dn(&p.cert.subject),
                issuer: dn(&p.cert.issuer),
                serial: hex(&p.cert.serial),
                not_after: p.cert.not_after,
                status: Some(p.cert.checked.status.name().into()),
                source: p.cert.checked.source.clone(),
                checked_at: Some(p.cert.checked.at),
                ike: Some(p.ike.to_string()),
                peer: p.peer.map(|i| i.to_string()),
            });
        }
        let crls = crls
            .crls()
            .iter()
            .map(|c| proto::CrlEntry {
                issuer: dn(c.issuer()),
                source: c.source().to_string(),
                this_update: c.this_update(),
                next_update: c.next_update(),
                revoked: c.revoked_count(),
                stale: c.is_stale(unix),
            })
            .collect();
        proto::CertsResult {
            policy: cfg.revocation.name().into(),
            certs,
            crls,
        }
    }

    /// The home agent's address leases.
    pub fn leases(&self) -> Result<proto::LeasesResult, ErrorBody> {
        if self.cfg.engine.home_agent.is_none() {
            return Err(ErrorBody::new(
                ErrorCode::WrongRole,
                "leases: this daemon is a mobile node; leases live on the home agent",
            ));
        }
        // The IKE SAs by peer identity (in id order, as before): each lease then looks at its
        // identity's SAs only instead of formatting every SA's identity for every lease.
        let (all, sas) = self.leases_and_sas();
        let mut by_identity: HashMap<String, Vec<&IkeSaInfo>> = HashMap::new();
        for i in &sas {
            if let Some(p) = &i.peer {
                by_identity.entry(p.to_string()).or_default().push(i);
            }
        }
        let unix = now().unix;
        let leases = all
            .into_iter()
            .map(|l| {
                let address = l.prefix_len == 128;
                // A released lease has no IKE SA by definition: it is released once the last
                // one of its identity is gone.
                let bound = l.state == crate::mobility::LeaseState::Bound;
                let ike = by_identity
                    .get(&l.identity)
                    .filter(|_| bound)
                    .and_then(|v| {
                        v.iter()
                            .find(|i| !address || i.home_address == Some(l.address))
                    })
                    .map(|i| i.id.to_string());
                proto::Lease {
                    user: l.user,
                    identity: l.identity,
                    pool: l.pool,
                    kind: if address { "address" } else { "prefix" }.into(),
                    value: if address {
                        l.address.to_string()
                    } else {
                        format!("{}/{}", l.address, l.prefix_len)
                    },
                    state: match l.state {
                        crate::mobility::LeaseState::Bound => "bound",
                        crate::mobility::LeaseState::Released => "released",
                    }
                    .into(),
                    expires_in_s: l.expires.map(|e| e.saturating_sub(unix)),
                    ike,
                }
            })
            .collect();
        Ok(proto::LeasesResult { leases })
    }
}

/// The IKE SA is established with a CHILD_SA of every class in `classes`.
pub fn has_classes(i: &IkeSaInfo, classes: &[SaClass]) -> bool {
    i.state == "established"
        && classes
            .iter()
            .all(|c| i.children.iter().any(|ch| ch.class == Some(*c)))
}

/// Parses `initiate`'s fields.
pub fn initiate_params(
    home_agent: Option<&str>,
    home_address: Option<&str>,
    classes: Option<&[String]>,
) -> Result<InitiateParams, ErrorBody> {
    let bad = |m: String| ErrorBody::new(ErrorCode::BadRequest, m);
    let home_agent = home_agent
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<IpAddr>()
                        .map(|a| SocketAddr::new(a, crate::policy::DEFAULT_PORT))
                })
                .map_err(|_| {
                    bad(format!(
                        "home_agent = \"{s}\": write an address or [address]:port"
                    ))
                })
        })
        .transpose()?;
    let home_address = home_address
        .map(|s| {
            if s.trim() == "dynamic" {
                Ok(HomeAddress::Dynamic)
            } else {
                s.trim()
                    .parse::<Ipv6Addr>()
                    .map(HomeAddress::Static)
                    .map_err(|_| {
                        bad(format!(
                            "home_address = \"{s}\": write an IPv6 address or \"dynamic\""
                        ))
                    })
            }
        })
        .transpose()?;
    let classes = classes
        .map(|list| {
            list.iter()
                .map(|c| {
                    SaClass::from_name(c).ok_or_else(|| {
                        bad(format!(
                            "unknown SA class \"{c}\"; known: bu-ba, payload, mps-mpa, hoti-hot"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(InitiateParams {
        home_agent,
        home_address,
        classes,
    })
}

/// The longest an `initiate` waits when the request names no timeout.
pub const INITIATE_TIMEOUT: Duration = Duration::from_secs(60);
