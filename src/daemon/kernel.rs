//! Kernel glue of the daemon: building the configured backend, reading the XFRM listener on a
//! thread of its own, and the mobile node's answer to ACQUIREs.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{DaemonError, MemoryKernel};
use crate::ike::{ChildInfo, Command, Event, IkeId, IkeSaInfo};
use crate::kernel::xfrm::listen::Listener;
use crate::kernel::xfrm::{Policies, XfrmConfig, XfrmKernel};
use crate::kernel::{
    Direction, Found, Kernel, KernelEvent, Migrate, Mode, Placement, Selector, TunnelTemplate,
};
use crate::mobility::SaClass;
use crate::policy::{KernelBackend, LoadedConfig, PolicyMode, Role};

/// Kernel events waiting for the engine; a burst beyond this is dropped (and logged).
const EVENT_QUEUE: usize = 256;
/// How often the listener thread looks at its stop flag.
const LISTENER_POLL: Duration = Duration::from_millis(200);

/// The kernel backend the configuration asks for. Sockets open here, in the caller's network
/// namespace; the XFRM backend removes SAs a previous run left behind before returning.
pub fn make_kernel(cfg: &LoadedConfig) -> Result<Box<dyn Kernel>, DaemonError> {
    match cfg.kernel.backend {
        KernelBackend::Memory => Ok(Box::new(MemoryKernel::new())),
        KernelBackend::Xfrm => {
            let x = XfrmConfig {
                policies: match cfg.kernel.policies {
                    PolicyMode::Mip6d => Policies::Mip6d,
                    PolicyMode::Daemon => Policies::Daemon,
                },
                owned_reqids: cfg.kernel.owned_reqids,
                auto_reqids: cfg.engine.mobility.auto_reqids,
                forward_tunnels: cfg.role == Role::HomeAgent,
            };
            let mut k = XfrmKernel::new(x).map_err(|e| {
                DaemonError::Kernel(format!(
                    "{e} (the XFRM backend needs root or CAP_NET_ADMIN and a kernel with XFRM_USER)"
                ))
            })?;
            k.set_spi_stock(cfg.kernel.spi_stock);
            Ok(Box::new(k))
        }
    }
}

/// What the listener thread hands the daemon.
#[derive(Debug)]
pub enum KernelMsg {
    Event(KernelEvent),
    /// Notifications were lost (socket overrun, or the engine's queue was full): the daemon
    /// must look at the kernel itself.
    Lost,
}

/// The XFRM listener's thread and the channel it feeds. Dropping it stops the thread.
pub struct KernelEvents {
    pub rx: mpsc::Receiver<KernelMsg>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for KernelEvents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the listener (in the caller's network namespace) and starts its reader thread.
pub fn spawn_listener() -> Result<KernelEvents, DaemonError> {
    let listener = Listener::open(LISTENER_POLL)
        .map_err(|e| DaemonError::Kernel(format!("XFRM listener: {e}")))?;
    spawn_listener_on(listener)
}

/// Starts the reader thread on an open listener (tests: one with a tiny receive buffer).
pub fn spawn_listener_on(mut listener: Listener) -> Result<KernelEvents, DaemonError> {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("xfrm-listener".into())
        .spawn(move || {
            // A loss not yet reported (the queue was full when it happened).
            let mut lost = false;
            while !flag.load(Ordering::Relaxed) {
                let evs = match listener.recv() {
                    Ok(e) => e,
                    Err(e) => {
                        warn!("XFRM listener stopped: {e}");
                        return;
                    }
                };
                lost |= listener.take_lost();
                for ev in evs {
                    debug!(?ev, "kernel event");
                    match tx.try_send(KernelMsg::Event(ev)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            warn!("engine busy: kernel event dropped");
                            lost = true;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                if lost {
                    match tx.try_send(KernelMsg::Lost) {
                        Ok(()) => lost = false,
                        Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
        })
        .map_err(|e| DaemonError::Kernel(format!("listener thread: {e}")))?;
    Ok(KernelEvents {
        rx,
        stop,
        thread: Some(thread),
    })
}

/// What the mobile node does with an ACQUIRE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireAction {
    /// Not a reqid of ours, or negotiation already under way: nothing.
    Ignore(&'static str),
    /// No IKE SA: bring it up (with every configured class).
    Initiate,
    /// IKE SA up, this class missing.
    CreateChild { ike: IkeId, class: SaClass },
    /// IKE SA up and the record holds this class: the kernel had no usable SA for the policy
    /// all the same, so the daemon looks at the kernel (repairs, or renegotiates).
    Check { ike: IkeId, class: SaClass },
}

/// Remembers CREATE_CHILD_SA requests started for ACQUIREs so that the kernel's repeated
/// ACQUIREs (one per packet until the larval state exists) start nothing more, and mip6d's
/// latest word on our care-of address.
#[derive(Debug, Default)]
pub struct AcquireState {
    requested: HashSet<(IkeId, SaClass)>,
    /// The local KMADDRESS of the last MIGRATE towards the home agent.
    km_local: Option<IpAddr>,
}

impl AcquireState {
    /// Mobile node: a MIGRATE whose KMADDRESS names the home agent (`home_agent`: its IKE and
    /// selector addresses) as the remote end tells where mip6d says we are (the new care-of
    /// address, or the home address when back home). Others are not about us.
    pub fn on_migrate(&mut self, m: &Migrate, home_agent: &[IpAddr]) {
        if let (Some(local), Some(remote)) = (m.km_local, m.km_remote)
            && home_agent.contains(&remote)
            && !local.is_unspecified()
        {
            self.km_local = Some(local);
        }
    }

    /// Mobile node: the local address of a new IKE SA. A configured care-of address, or where
    /// the last IKE SA went (`last_used`, after a move) when one is configured; else mip6d's
    /// last KMADDRESS; None: the address routing picks towards the home agent.
    pub fn care_of_address(
        &self,
        configured: Option<IpAddr>,
        last_used: Option<IpAddr>,
    ) -> Option<IpAddr> {
        configured.map(|c| last_used.unwrap_or(c)).or(self.km_local)
    }

    /// Decides on an ACQUIRE for outbound `reqid`, given the configured classes with their
    /// outbound reqids, whether we are already initiating, and the engine's IKE SAs.
    pub fn decide(
        &mut self,
        reqid: u32,
        classes: &[(SaClass, u32)],
        initiating: Option<IkeId>,
        sas: &[IkeSaInfo],
    ) -> AcquireAction {
        let Some(class) = acquire_class(reqid, classes) else {
            return AcquireAction::Ignore("reqid of no configured class");
        };
        // A mobile node's IKE SAs all go to its home agent. After an IKE rekey the home agent
        // started, ours is the responder's side: any established SA serves.
        let up = sas
            .iter()
            .find(|s| s.state == "established" && Some(s.id) == initiating)
            .or_else(|| sas.iter().find(|s| s.state == "established"));
        let Some(ike) = up else {
            // `initiating` may name an attempt that already failed: only a live SA counts as
            // negotiation under way.
            return if !sas.is_empty() {
                AcquireAction::Ignore("IKE SA negotiation under way")
            } else {
                AcquireAction::Initiate
            };
        };
        if ike.children.iter().any(|c| c.class == Some(class)) {
            return AcquireAction::Check { ike: ike.id, class };
        }
        if !self.requested.insert((ike.id, class)) {
            return AcquireAction::Ignore("CHILD_SA negotiation under way");
        }
        AcquireAction::CreateChild { ike: ike.id, class }
    }

    /// Forgets requests that ended (up, failed, or the IKE SA went).
    pub fn on_event(&mut self, ev: &Event) {
        match ev {
            Event::ChildUp(c) => {
                if let Some(class) = c.class {
                    self.requested.remove(&(c.ike, class));
                }
            }
            Event::ExchangeFailed { ike, .. } | Event::IkeDown { ike, .. } => {
                self.requested.retain(|(i, _)| i != ike);
            }
            _ => {}
        }
    }
}

/// The configured class whose outbound reqid an ACQUIRE names.
pub fn acquire_class(reqid: u32, classes: &[(SaClass, u32)]) -> Option<SaClass> {
    classes.iter().find(|(_, r)| *r == reqid).map(|(c, _)| *c)
}

/// Logs what an ACQUIRE led to.
pub fn log_acquire(reqid: u32, action: &AcquireAction) {
    match action {
        AcquireAction::Ignore(why) => debug!(reqid, "ACQUIRE ignored: {why}"),
        AcquireAction::Initiate => info!(reqid, "ACQUIRE: initiating the IKE SA"),
        AcquireAction::CreateChild { ike, class } => {
            info!(reqid, %ike, class = class.name(), "ACQUIRE: creating the CHILD_SA")
        }
        AcquireAction::Check { ike, class } => {
            info!(reqid, %ike, class = class.name(),
                "ACQUIRE for a CHILD_SA the record holds: checking the kernel")
        }
    }
}

// ---- keeping the kernel's SAs and the engine's record together ----

/// The two SAs of a CHILD_SA as the record has them: inbound (peer -> us, our SPI) and
/// outbound (us -> peer, the peer's SPI).
fn placements_of(c: &ChildInfo) -> [Placement; 2] {
    [
        Placement {
            src: c.remote,
            dst: c.local,
            spi: c.spi_in,
            reqid: c.reqid_in,
        },
        Placement {
            src: c.local,
            dst: c.remote,
            spi: c.spi_out,
            reqid: c.reqid_out,
        },
    ]
}

/// What a resynchronisation found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resync {
    /// SAs checked, and how many were where the record says.
    pub checked: usize,
    pub in_place: usize,
    /// Moved to the record's endpoints or added again (same SPIs and keys).
    pub repaired: usize,
    /// CHILD_SAs (IKE SA, inbound SPI) the kernel lost and no copy could restore, or whose
    /// repair the kernel refused: to renegotiate.
    pub renegotiate: Vec<(IkeId, u32)>,
    /// Larval ACQUIRE states removed.
    pub larval_removed: usize,
}

/// Compares the kernel with the engine's record for the established IKE SAs' CHILD_SAs
/// (all of them, or those of `only`: one IKE SA, optionally one class), puts misplaced or
/// missing SAs back where the record says, and logs what it found and did. Larval ACQUIRE
/// states of the reqids checked go too when anything was repaired or `drop_larval` says so:
/// with the SA in place they only block the kernel's next ACQUIRE and make mip6d's MIGRATE of
/// that policy fail.
pub fn resync(
    kernel: &mut dyn Kernel,
    sas: &[IkeSaInfo],
    only: Option<(IkeId, Option<SaClass>)>,
    drop_larval: bool,
    why: &str,
) -> Resync {
    let mut out = Resync::default();
    let mut children: Vec<&ChildInfo> = Vec::new();
    for sa in sas.iter().filter(|s| s.state == "established") {
        if only.is_some_and(|(ike, _)| ike != sa.id) {
            continue;
        }
        for c in &sa.children {
            if let Some((_, Some(class))) = only
                && c.class != Some(class)
            {
                continue;
            }
            children.push(c);
        }
    }
    let want: Vec<Placement> = children.iter().flat_map(|c| placements_of(c)).collect();
    if want.is_empty() {
        return out;
    }
    let found = kernel.reconcile(&want);
    let mut reqids = Vec::new();
    for (i, c) in children.iter().enumerate() {
        let mut lost = false;
        for (p, f) in want
            .iter()
            .skip(2 * i)
            .take(2)
            .zip(found.iter().skip(2 * i).take(2))
        {
            out.checked += 1;
            let spi = format_args!("{:08x}", p.spi);
            match f {
                Found::InPlace => out.in_place += 1,
                Found::Moved { src, dst } => {
                    out.repaired += 1;
                    info!(ike = %c.ike, spi = %spi, reqid = p.reqid, from = %format_args!("{src} -> {dst}"),
                        to = %format_args!("{} -> {}", p.src, p.dst), why, "resync: SA was at other endpoints; moved (same SPI and keys)");
                }
                Found::Readded => {
                    out.repaired += 1;
                    info!(ike = %c.ike, spi = %spi, reqid = p.reqid, at = %format_args!("{} -> {}", p.src, p.dst),
                        why, "resync: SA missing from the kernel; added again (same SPI and keys)");
                }
                Found::Missing => {
                    lost = true;
                    warn!(ike = %c.ike, spi = %spi, reqid = p.reqid, why,
                        "resync: SA missing from the kernel and not restorable (no copy, or outbound: its sequence number went with it): renegotiating");
                }
                Found::Failed(e) => {
                    lost = true;
                    warn!(ike = %c.ike, spi = %spi, reqid = p.reqid, why, "resync: repair failed ({e}): renegotiating");
                }
            }
        }
        if lost {
            out.renegotiate.push((c.ike, c.spi_in));
        } else {
            reqids.push(c.reqid_out);
        }
    }
    if (drop_larval || out.repaired > 0) && !reqids.is_empty() {
        out.larval_removed = kernel.drop_acquire_states(&reqids);
    }
    if out.repaired > 0 || !out.renegotiate.is_empty() || out.larval_removed > 0 {
        info!(
            why,
            checked = out.checked,
            in_place = out.in_place,
            repaired = out.repaired,
            renegotiate = out.renegotiate.len(),
            larval_removed = out.larval_removed,
            "resync done"
        );
    } else {
        debug!(
            why,
            checked = out.checked,
            "resync: kernel and record agree"
        );
    }
    out
}

/// The home address a CHILD_SA is about: the IKE SA's, else a single-address selector.
fn home_address_of(sa: &IkeSaInfo, c: &ChildInfo) -> Option<IpAddr> {
    sa.home_address.map(IpAddr::V6).or_else(|| {
        c.ts_local
            .iter()
            .chain(&c.ts_remote)
            .find(|t| t.start_addr == t.end_addr)
            .map(|t| t.start_addr)
    })
}

fn names(sel: &Selector, a: IpAddr) -> bool {
    let full = if a.is_ipv4() { 32 } else { 128 };
    (sel.src == a && sel.src_prefix == full) || (sel.dst == a && sel.dst_prefix == full)
}

/// MIGRATEs we must have missed: mip6d's outbound tunnel template for a CHILD_SA of ours
/// (its reqid, a selector naming the home address) runs between other endpoints than the
/// record's. One MIGRATE per IKE SA, laid out as mip6d's (KMADDRESS = the template's ends),
/// for the engine to act on as if it had arrived. A template at HoA <-> HA (mip6d's policies
/// just created, or the mobile node at home) counts like any other.
pub fn missed_moves(templates: &[TunnelTemplate], sas: &[IkeSaInfo]) -> Vec<Migrate> {
    let mut out = Vec::new();
    for sa in sas.iter().filter(|s| s.state == "established") {
        let hit = sa
            .children
            .iter()
            .filter(|c| c.mode == Mode::Tunnel)
            .find_map(|c| {
                let hoa = home_address_of(sa, c)?;
                let t = templates
                    .iter()
                    .find(|t| t.reqid == c.reqid_out && names(&t.selector, hoa))?;
                let moved = (t.src, t.dst) != (c.local, c.remote);
                let one_end = t.src == c.local || t.dst == c.remote;
                (moved && one_end && !t.src.is_unspecified() && !t.dst.is_unspecified())
                    .then_some((c, t))
            });
        if let Some((c, t)) = hit {
            info!(ike = %sa.id, record = %format_args!("{} <-> {}", c.local, c.remote),
                policy = %format_args!("{} <-> {}", t.src, t.dst), reqid = t.reqid,
                "resync: mip6d's tunnel policy names other endpoints (a MIGRATE was missed)");
            out.push(Migrate {
                selector: t.selector.clone(),
                direction: Direction::Out,
                reqid: t.reqid,
                old_src: c.local,
                old_dst: c.remote,
                new_src: t.src,
                new_dst: t.dst,
                km_local: Some(t.src),
                km_remote: Some(t.dst),
            });
        }
    }
    out
}

/// The command for a CreateChild action.
pub fn create_child(ike: IkeId, class: SaClass) -> Command {
    Command::CreateChild { ike, class }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::ChildInfo;
    use crate::kernel::Mode;

    fn sa(id: u64, state: &'static str, classes: &[SaClass]) -> IkeSaInfo {
        let addr = "[2001:db8::1]:500".parse().unwrap();
        IkeSaInfo {
            id: IkeId(id),
            initiator: true,
            state,
            local: addr,
            remote: addr,
            spi_i: id,
            spi_r: 1,
            peer: None,
            transforms: String::new(),
            home_address: None,
            peer_auth_method: 0,
            created: std::time::Instant::now(),
            home_prefix: None,
            children: classes
                .iter()
                .map(|c| ChildInfo {
                    ike: IkeId(id),
                    class: Some(*c),
                    mode: Mode::Transport,
                    spi_in: 0x100,
                    spi_out: 0x200,
                    reqid_in: 2,
                    reqid_out: 1,
                    local: addr.ip(),
                    remote: addr.ip(),
                    ts_local: vec![],
                    ts_remote: vec![],
                    transforms: String::new(),
                    installed: std::time::Instant::now(),
                })
                .collect(),
        }
    }

    const CLASSES: &[(SaClass, u32)] = &[(SaClass::BuBa, 1), (SaClass::Payload, 3)];

    #[test]
    fn acquire_decisions() {
        let mut st = AcquireState::default();
        // Not one of our outbound reqids (2 is the inbound BU/BA reqid of the MN).
        assert!(matches!(
            st.decide(2, CLASSES, None, &[]),
            AcquireAction::Ignore(_)
        ));
        // No IKE SA at all, or only a stale id: initiate.
        assert_eq!(st.decide(1, CLASSES, None, &[]), AcquireAction::Initiate);
        assert_eq!(
            st.decide(1, CLASSES, Some(IkeId(9)), &[]),
            AcquireAction::Initiate
        );
        // IKE SA negotiating: nothing more.
        let negotiating = [sa(7, "IKE_AUTH sent", &[])];
        assert!(matches!(
            st.decide(1, CLASSES, Some(IkeId(7)), &negotiating),
            AcquireAction::Ignore(_)
        ));
        // IKE SA up with BU/BA: the payload class is created once, BU/BA not again.
        let up = [sa(7, "established", &[SaClass::BuBa])];
        // The record holds BU/BA, yet the kernel asks: look at the kernel (it must not be
        // ignored: the SA may be gone or at other endpoints).
        assert_eq!(
            st.decide(1, CLASSES, Some(IkeId(7)), &up),
            AcquireAction::Check {
                ike: IkeId(7),
                class: SaClass::BuBa
            }
        );
        assert_eq!(
            st.decide(3, CLASSES, Some(IkeId(7)), &up),
            AcquireAction::CreateChild {
                ike: IkeId(7),
                class: SaClass::Payload
            }
        );
        assert!(matches!(
            st.decide(3, CLASSES, Some(IkeId(7)), &up),
            AcquireAction::Ignore("CHILD_SA negotiation under way")
        ));
        // After an IKE rekey started by the HA our SA is the responder's side: still ours.
        let mut rekeyed = sa(8, "established", &[SaClass::BuBa]);
        rekeyed.initiator = false;
        assert_eq!(
            AcquireState::default().decide(3, CLASSES, Some(IkeId(7)), &[rekeyed]),
            AcquireAction::CreateChild {
                ike: IkeId(8),
                class: SaClass::Payload
            }
        );
        // After a failed exchange the next ACQUIRE may try again.
        st.on_event(&Event::ExchangeFailed {
            ike: IkeId(7),
            exchange: "CREATE_CHILD_SA",
            notify: None,
            reason: String::new(),
        });
        assert!(matches!(
            st.decide(3, CLASSES, Some(IkeId(7)), &up),
            AcquireAction::CreateChild { .. }
        ));
    }

    #[test]
    fn care_of_address_follows_the_last_migrate_when_none_is_configured() {
        use crate::kernel::Selector;
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (ha, coa1, coa2, hoa) = (
            ip("2001:db8:1::1"),
            ip("2001:db8:2::100"),
            ip("2001:db8:3::100"),
            ip("2001:db8:1::100"),
        );
        let migrate = |local: IpAddr, remote: IpAddr| Migrate {
            selector: Selector::new(hoa, 128, ha, 128, 135),
            direction: crate::kernel::Direction::Out,
            reqid: 1,
            old_src: ip("::"),
            old_dst: ip("::"),
            new_src: hoa,
            new_dst: ha,
            km_local: Some(local),
            km_remote: Some(remote),
        };
        let mut st = AcquireState::default();
        // Nothing known: routing decides.
        assert_eq!(st.care_of_address(None, None), None);
        st.on_migrate(&migrate(coa1, ha), &[ha]);
        assert_eq!(st.care_of_address(None, None), Some(coa1));
        // The latest move wins; a MIGRATE about another peer or without KMADDRESS does not count.
        st.on_migrate(&migrate(coa2, ha), &[ha]);
        st.on_migrate(&migrate(coa1, ip("2001:db8:9::9")), &[ha]);
        let mut no_km = migrate(coa1, ha);
        no_km.km_local = None;
        st.on_migrate(&no_km, &[ha]);
        assert_eq!(st.care_of_address(None, Some(coa1)), Some(coa2));
        // Back home: the home address.
        st.on_migrate(&migrate(hoa, ha), &[ha]);
        assert_eq!(st.care_of_address(None, None), Some(hoa));
        // A configured care-of address (or where the IKE SA moved from it) still comes first.
        assert_eq!(st.care_of_address(Some(coa1), None), Some(coa1));
        assert_eq!(st.care_of_address(Some(coa1), Some(coa2)), Some(coa2));
    }
}
