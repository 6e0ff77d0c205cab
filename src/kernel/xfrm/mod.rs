//! The Linux XFRM backend: ESP SAs (and optionally policies) through NETLINK_XFRM.
//!
//! - `msg`: building requests and validating/parsing what the kernel sends;
//! - `listen`: the multicast listener (ACQUIRE, EXPIRE, MIGRATE) producing [`KernelEvent`]s;
//! - this file: the request/answer socket, [`XfrmKernel`] (the [`Kernel`] implementation) and
//!   [`XfrmSpiAllocator`] (ALLOCSPI for the engine's inbound SPIs).
//!
//! Ownership: our SAs (and, with `policies = "daemon"`, our policies) are those whose reqid lies
//! in the configured range. The kernel cannot mark SAs for us without changing which packets
//! they match (an SA mark must equal the policy's), so the reqid range is the only label.
//! Construction removes what a previous run left behind; dropping removes what this run made.

pub mod listen;
pub mod msg;
mod spi_stock;
pub use spi_stock::StockTiming;

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_XFRM};
use tracing::{debug, info, warn};

use super::{
    Direction, Encap, Found, Kernel, KernelOp, Migrate, Mode, Placement, SaSpec, SpiAllocator,
    SpiRequest, TunnelTemplate,
};
use crate::wire::consts::IPPROTO_MH;
use msg::{MsgError, NlMsg, PolicyKey, PolicySpec, Request};

/// Longest wait for the kernel's answer to one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer: a dump datagram is at most a page or two; 64 KiB is the netlink maximum.
const RECV_BUF: usize = 65_536;
/// recv flag: report the real datagram size so truncation is seen (linux/socket.h).
const MSG_TRUNC: i32 = 0x20;
/// How long an ALLOCSPI reservation is remembered (the kernel drops it after
/// net.core.xfrm_acq_expires, 30 s by default; UPDSA on a vanished one falls back to NEWSA).
const RESERVATION_KEEP: Duration = Duration::from_secs(120);
/// Moves remembered for Deletes queued across a MIGRATE (see `XfrmKernel::moved`).
const MAX_MOVED: usize = 4096;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;
const EEXIST: i32 = 17;

/// Who installs the IPsec policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policies {
    /// mip6d (`IPsecPolicy ... UseESP`); we install SAs only and never touch policies.
    Mip6d,
    /// We install IN/OUT (and FWD for tunnels when forwarding) policies with each SA pair.
    Daemon,
}

/// Settings of the XFRM backend (from `[kernel]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfrmConfig {
    pub policies: Policies,
    /// Inclusive reqid range that marks SAs and policies as ours (start-up cleanup).
    pub owned_reqids: (u32, u32),
    /// The reqids of CHILD_SAs outside the classes (inside `owned_reqids`): their policies
    /// are ours in either `policies` mode, so start-up cleanup removes those too.
    pub auto_reqids: (u32, u32),
    /// Home agent: tunnel-mode inbound SAs also get a FWD policy (traffic to the MN is
    /// forwarded, not delivered locally).
    pub forward_tunnels: bool,
}

/// A netlink failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NlError {
    #[error("kernel refused: {text}", text = errno_text(*.0))]
    Errno(i32),
    #[error("netlink socket: {0}")]
    Io(String),
    #[error(transparent)]
    Bad(#[from] MsgError),
    #[error("no answer from the kernel")]
    Timeout,
}

fn errno_text(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

impl NlError {
    fn io(e: std::io::Error) -> NlError {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => NlError::Timeout,
            _ => NlError::Io(e.to_string()),
        }
    }
}

/// A NETLINK_XFRM socket for requests and their answers (no multicast groups).
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NlError> {
        let mut sock = Socket::new(NETLINK_XFRM).map_err(NlError::io)?;
        sock.bind_auto().map_err(NlError::io)?;
        let tv = nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        nix::sys::socket::setsockopt(
            &sock.as_fd(),
            nix::sys::socket::sockopt::ReceiveTimeout,
            &tv,
        )
        .map_err(|e| NlError::Io(e.to_string()))?;
        Ok(Netlink {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    fn send(&mut self, req: Request) -> Result<u32, NlError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let bytes = req.finish(self.seq);
        let kernel = SocketAddr::new(0, 0);
        self.sock.send_to(&bytes, &kernel, 0).map_err(NlError::io)?;
        Ok(self.seq)
    }

    /// Receives one datagram from the kernel into `self.buf`; returns its length.
    fn recv(&mut self) -> Result<usize, NlError> {
        loop {
            let mut slice: &mut [u8] = &mut self.buf[..];
            let (n, from) = self
                .sock
                .recv_from(&mut slice, MSG_TRUNC)
                .map_err(NlError::io)?;
            if from.port_number() != 0 {
                debug!(
                    pid = from.port_number(),
                    "netlink datagram not from the kernel ignored"
                );
                continue;
            }
            if n > RECV_BUF {
                return Err(MsgError("truncated netlink datagram").into());
            }
            return Ok(n);
        }
    }

    /// Sends a request and waits for its answers; `each` sees every message of our sequence
    /// number until it returns true (done) or the kernel reports an error.
    fn exchange(
        &mut self,
        req: Request,
        mut each: impl FnMut(&NlMsg<'_>) -> Result<bool, NlError>,
    ) -> Result<(), NlError> {
        let seq = self.send(req)?;
        loop {
            let n = self.recv()?;
            let data = self.buf.get(..n).unwrap_or(&[]);
            for m in msg::split(data)? {
                if m.seq != seq {
                    // An answer to an earlier request that timed out.
                    continue;
                }
                if m.msg_type == msg::NLMSG_ERROR {
                    let code = msg::error_code(&m)?;
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(NlError::Errno(code))
                    };
                }
                if each(&m)? {
                    return Ok(());
                }
            }
        }
    }

    /// A request answered by an acknowledgement.
    pub fn ack(&mut self, req: Request) -> Result<(), NlError> {
        self.exchange(req, |_| Ok(false))
    }

    /// XFRM_MSG_ALLOCSPI: the SPI of a new larval SA src -> dst.
    pub fn allocspi(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        reqid: u32,
        seq: u32,
    ) -> Result<u32, NlError> {
        let req = msg::allocspi_request(src, dst, reqid, seq, Mode::Transport);
        let mut spi = None;
        self.exchange(req, |m| {
            if m.msg_type == msg::XFRM_MSG_NEWSA {
                spi = Some(msg::parse_sa(m.payload)?.id.spi);
                return Ok(true);
            }
            Ok(false)
        })?;
        spi.ok_or(NlError::Timeout)
    }

    /// A dump: the payloads of every answer of type `answer_type`.
    /// One SA by (dst, spi): its NEWSA payload, or ESRCH when the kernel holds none.
    pub fn getsa(&mut self, dst: IpAddr, spi: u32) -> Result<Vec<u8>, NlError> {
        let mut out = None;
        self.exchange(msg::getsa_request(dst, spi), |m| {
            if m.msg_type == msg::XFRM_MSG_NEWSA {
                out = Some(m.payload.to_vec());
                return Ok(true);
            }
            Ok(false)
        })?;
        out.ok_or(NlError::Errno(ESRCH))
    }

    pub fn dump(&mut self, req_type: u16, answer_type: u16) -> Result<Vec<Vec<u8>>, NlError> {
        let mut out = Vec::new();
        self.exchange(msg::dump_request(req_type), |m| {
            if m.msg_type == msg::NLMSG_DONE {
                return Ok(true);
            }
            if m.msg_type == answer_type {
                out.push(m.payload.to_vec());
            }
            Ok(false)
        })?;
        Ok(out)
    }
}

/// State shared by the backend and its SPI allocator.
struct Shared {
    nl: Netlink,
    /// (dst, SPI) of larval SAs from ALLOCSPI not yet completed by UPDSA.
    /// With the time of the reservation: entries outlive the kernel's larval state (30 s by
    /// default) only until `RESERVATION_KEEP`, so failed negotiations cannot grow the set.
    allocated: HashMap<(IpAddr, u32), Instant>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The XFRM [`Kernel`].
pub struct XfrmKernel {
    cfg: XfrmConfig,
    shared: Arc<Mutex<Shared>>,
    /// What we installed, keys included (zeroized on drop): a K-bit move re-adds SAs.
    sas: HashMap<(IpAddr, u32), SaSpec>,
    /// Our policies and how many installed SAs need each.
    policies: HashMap<PolicyKey, (PolicySpec, u32)>,
    /// Hand the engine SPIs from a stock reserved ahead (`set_spi_stock`).
    spi_stock: bool,
    /// The stock's timing; None: from the namespace's larval lifetime.
    stock_timing: Option<StockTiming>,
    /// Records a MIGRATE moved: old (destination, SPI) -> new destination, so that a Delete
    /// the engine queued before it saw the move still finds the SA.
    moved: HashMap<(IpAddr, u32), IpAddr>,
    /// Deletes that named an SA where no record was (nor a reservation): the engine saw a move
    /// (mip6d's first MIGRATE of a move, a transport one, gives the new endpoints) before this
    /// backend saw the tunnel MIGRATE that moves the record there. The record that MIGRATE
    /// brings to such a place is one already deleted.
    deleted_ahead: std::collections::HashSet<(IpAddr, u32)>,
}

/// What start-up cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub sas: usize,
    pub policies: usize,
}

impl XfrmKernel {
    /// Whether the SPI allocators made from now on take SPIs from a stock reserved ahead
    /// (`[kernel] spi_stock`, see `spi_stock`) instead of one ALLOCSPI round trip each.
    pub fn set_spi_stock(&mut self, on: bool) {
        self.spi_stock = on;
    }

    /// The stock's timing instead of the one derived from `net.core.xfrm_acq_expires` (tests:
    /// refreshes and idle addresses within seconds).
    pub fn set_spi_stock_timing(&mut self, t: StockTiming) {
        self.stock_timing = Some(t);
    }

    /// Opens the socket and removes what a previous run left behind.
    pub fn new(cfg: XfrmConfig) -> Result<XfrmKernel, NlError> {
        let nl = Netlink::open()?;
        let mut k = XfrmKernel {
            cfg,
            shared: Arc::new(Mutex::new(Shared {
                nl,
                allocated: HashMap::new(),
            })),
            sas: HashMap::new(),
            policies: HashMap::new(),
            spi_stock: false,
            stock_timing: None,
            moved: HashMap::new(),
            deleted_ahead: std::collections::HashSet::new(),
        };
        let c = k.cleanup()?;
        if c != Cleanup::default() {
            info!(
                sas = c.sas,
                policies = c.policies,
                "removed SAs/policies left by a previous run"
            );
        }
        Ok(k)
    }

    fn owned(&self, reqid: u32) -> bool {
        (self.cfg.owned_reqids.0..=self.cfg.owned_reqids.1).contains(&reqid)
    }

    /// Deletes every ESP SA with an owned reqid and, in daemon mode, every policy whose
    /// templates all carry owned reqids (larval ALLOCSPI states included).
    pub fn cleanup(&mut self) -> Result<Cleanup, NlError> {
        let mut done = Cleanup::default();
        let mut sh = lock(&self.shared);
        for p in sh.nl.dump(msg::XFRM_MSG_GETSA, msg::XFRM_MSG_NEWSA)? {
            let Ok(sa) = msg::parse_sa(&p) else { continue };
            if sa.id.proto != msg::IPPROTO_ESP || !self.owned(sa.reqid) || sa.id.spi == 0 {
                // (SPI 0: larval states of ACQUIREs, removed below.)
                continue;
            }
            let Ok(dst) = addr(&sa.id.daddr, sa.family) else {
                continue;
            };
            match sh.nl.ack(msg::delsa_request(dst, sa.id.spi)) {
                Ok(()) | Err(NlError::Errno(ESRCH)) => done.sas += 1,
                Err(e) => {
                    warn!(%dst, spi = format_args!("{:08x}", sa.id.spi), "cannot remove a stale SA: {e}")
                }
            }
        }
        drop(sh);
        // An ACQUIRE raised while no daemon ran left a larval state: until it expires (30 s)
        // the kernel raises no new ACQUIRE for that policy, so we would never hear of it.
        let (lo, hi) = self.cfg.owned_reqids;
        let larval = self.drop_acquire_states_where(|r| (lo..=hi).contains(&r));
        done.sas += larval;
        let mut sh = lock(&self.shared);
        {
            let (alo, ahi) = self.cfg.auto_reqids;
            // In mip6d mode the class reqids' policies are mip6d's: only those of CHILD_SAs
            // outside the classes (all their templates in `auto_reqids`) are ours.
            let ours = |r: &u32| {
                self.owned(*r) && (self.cfg.policies == Policies::Daemon || (alo..=ahi).contains(r))
            };
            for p in sh
                .nl
                .dump(msg::XFRM_MSG_GETPOLICY, msg::XFRM_MSG_NEWPOLICY)?
            {
                let Ok((info, reqids)) = msg::parse_policy(&p) else {
                    continue;
                };
                if reqids.is_empty() || !reqids.iter().all(ours) {
                    continue;
                }
                let Ok(selector) = msg::from_xselector(&info.selector) else {
                    continue;
                };
                let key = PolicyKey {
                    selector,
                    dir: info.direction,
                };
                match sh.nl.ack(msg::delpolicy_request(&key)) {
                    Ok(()) | Err(NlError::Errno(ENOENT)) => done.policies += 1,
                    Err(e) => warn!(?key, "cannot remove a stale policy: {e}"),
                }
            }
        }
        Ok(done)
    }

    /// Removes the larval states of ACQUIREs (SPI 0) whose reqid `pick` chooses (see
    /// [`Kernel::drop_acquire_states`]).
    fn drop_acquire_states_where(&mut self, pick: impl Fn(u32) -> bool) -> usize {
        let Ok(kernel) = self.kernel_sas() else {
            return 0;
        };
        let mut n = 0;
        let mut sh = lock(&self.shared);
        for k in kernel
            .iter()
            .filter(|k| k.spi == 0 && k.seq != 0 && pick(k.reqid))
        {
            // Found by seq (and destination), so the mode does not matter here.
            let r = sh.nl.allocspi(k.src, k.dst, k.reqid, k.seq);
            match r {
                Ok(spi) => match sh.nl.ack(msg::delsa_request(k.dst, spi)) {
                    Ok(()) | Err(NlError::Errno(ESRCH)) => {
                        info!(src = %k.src, dst = %k.dst, reqid = k.reqid, seq = k.seq,
                            "larval state of an ACQUIRE removed");
                        n += 1;
                    }
                    Err(e) => {
                        warn!(dst = %k.dst, reqid = k.reqid, "cannot remove a larval state: {e}")
                    }
                },
                Err(e) => warn!(dst = %k.dst, reqid = k.reqid, "cannot remove a larval state: {e}"),
            }
        }
        n
    }

    /// The policies an SA needs in daemon mode, one per selector and direction, with mip6d's
    /// priorities (lower wins): MH transport 2, other transport (ICMPv6 MPS/MPA) 5, MH tunnel
    /// (HoTI/HoT) 10, payload 13. A CHILD_SA outside the classes gets its policies in either
    /// mode (mip6d knows nothing of it), one step ahead of the class policy whose traffic it
    /// narrows: 1, 4, 9, 12.
    fn policies_for(&self, s: &SaSpec) -> Vec<PolicySpec> {
        if self.cfg.policies != Policies::Daemon && !s.outside_classes {
            return Vec::new();
        }
        let (tmpl_src, tmpl_dst) = match s.mode {
            Mode::Tunnel => (Some(s.src), Some(s.dst)),
            Mode::Transport => (None, None),
        };
        let mut dirs = vec![msg::policy_dir(s.direction)];
        if s.direction == Direction::In && s.mode == Mode::Tunnel && self.cfg.forward_tunnels {
            dirs.push(msg::XFRM_POLICY_FWD);
        }
        let mut out = Vec::new();
        for sel in &s.selectors {
            if s.mode == Mode::Transport && sel.src_prefix == 0 && sel.dst_prefix == 0 {
                // A selector the engine could not express: never install a catch-all policy.
                warn!(
                    spi = format_args!("{:08x}", s.spi),
                    "no policy for an SA without selector"
                );
                continue;
            }
            let class_priority = match (s.mode, sel.proto) {
                (Mode::Transport, IPPROTO_MH) => 2,
                (Mode::Transport, _) => 5,
                (Mode::Tunnel, IPPROTO_MH) => 10,
                (Mode::Tunnel, _) => 13,
            };
            let priority = class_priority - u32::from(s.outside_classes);
            for &dir in &dirs {
                out.push(PolicySpec {
                    key: PolicyKey {
                        selector: sel.clone(),
                        dir,
                    },
                    priority,
                    mode: s.mode,
                    reqid: s.reqid,
                    tmpl_src,
                    tmpl_dst,
                });
            }
        }
        out
    }

    /// Installs (daemon mode) the policies SA `s` needs, counting one more user of each.
    /// `AddSa` does this after the SA is in; public because hosts without ESP (tests) can
    /// exercise the policy half alone.
    pub fn add_policies(&mut self, s: &SaSpec) -> Result<(), String> {
        self.install_policies(s, true)
    }

    /// Drops SA `s`'s use of its policies; a policy goes when its last user does.
    pub fn remove_policies(&mut self, s: &SaSpec) {
        self.release_policies(s)
    }

    fn install_policies(&mut self, s: &SaSpec, count: bool) -> Result<(), String> {
        for p in self.policies_for(s) {
            lock(&self.shared)
                .nl
                .ack(msg::policy_request(&p))
                .map_err(|e| format!("policy {:?}: {e}", p.key))?;
            let e = self
                .policies
                .entry(p.key.clone())
                .or_insert_with(|| (p.clone(), 0));
            e.0 = p;
            if count {
                e.1 += 1;
            }
        }
        Ok(())
    }

    fn release_policies(&mut self, s: &SaSpec) {
        for p in self.policies_for(s) {
            let Some(e) = self.policies.get_mut(&p.key) else {
                continue;
            };
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.policies.remove(&p.key);
                match lock(&self.shared).nl.ack(msg::delpolicy_request(&p.key)) {
                    Ok(()) | Err(NlError::Errno(ENOENT)) => {}
                    Err(e) => warn!(key = ?p.key, "cannot remove policy: {e}"),
                }
            }
        }
    }

    fn add_sa(&mut self, spec: &SaSpec) -> Result<(), String> {
        let key = (spec.dst, spec.spi);
        self.deleted_ahead.remove(&key);
        if self.sas.contains_key(&key) {
            return Err(format!("SA {:08x} to {} exists", spec.spi, spec.dst));
        }
        {
            let mut sh = lock(&self.shared);
            // Stays reserved (and removed at shutdown) until the SA is in.
            let update = sh.allocated.contains_key(&key);
            // An SPI reserved for another destination (the address was not known yet): its
            // larval state goes, the SA is created afresh.
            let stray: Vec<(IpAddr, u32)> = sh
                .allocated
                .keys()
                .filter(|(dst, spi)| *spi == spec.spi && *dst != spec.dst)
                .copied()
                .collect();
            for (dst, spi) in stray {
                sh.allocated.remove(&(dst, spi));
                let _ = sh.nl.ack(msg::delsa_request(dst, spi));
            }
            let r = sh.nl.ack(msg::sa_request(spec, update)?);
            match r {
                Ok(()) => {}
                // The larval state expired meanwhile (30 s): create the SA instead.
                Err(NlError::Errno(ESRCH)) if update => sh
                    .nl
                    .ack(msg::sa_request(spec, false)?)
                    .map_err(|e| e.to_string())?,
                // An SPI we chose (the stock was empty) or a reservation we lost track of: a
                // larval state is completed; a keyed SA with that SPI is another's and stays
                // as it is (UPDSA would change it): this CHILD_SA fails instead.
                Err(NlError::Errno(EEXIST)) if !update => {
                    let larval = sh
                        .nl
                        .getsa(spec.dst, spec.spi)
                        .ok()
                        .is_some_and(|p| msg::is_larval(&p).unwrap_or(false));
                    if !larval {
                        return Err(format!(
                            "SPI {:08x} to {} is taken by another SA",
                            spec.spi, spec.dst
                        ));
                    }
                    sh.nl
                        .ack(msg::sa_request(spec, true)?)
                        .map_err(|e| e.to_string())?
                }
                Err(e) => return Err(e.to_string()),
            }
            sh.allocated.remove(&key);
        }
        self.sas.insert(key, spec.clone());
        if let Err(e) = self.install_policies(spec, true) {
            warn!("{e}");
            return Err(e);
        }
        Ok(())
    }

    fn del_sa(&mut self, dst: IpAddr, spi: u32) -> Result<(), String> {
        // The engine names the SA where it last knew it; a MIGRATE (mip6d's, moving the tunnel
        // SAs) that reached us after the engine queued this Delete moved our record and the
        // kernel's SA already. Follow the moves this backend recorded (never a guess by SPI: a
        // larval SA at an old address may share the SPI of a real SA elsewhere), or the SA
        // stays in the kernel (seen in the UML tier: an old tunnel SA left behind after a move
        // without the K bit).
        let mut dst = dst;
        for _ in 0..8 {
            if self.sas.contains_key(&(dst, spi)) {
                break;
            }
            let Some(next) = self.moved.remove(&(dst, spi)) else {
                break;
            };
            debug!(asked = %dst, moved = %next, spi = format_args!("{spi:08x}"),
                "Delete of an SA a MIGRATE moved meanwhile: deleted where it is now");
            dst = next;
        }
        let r = {
            let mut sh = lock(&self.shared);
            // A larval SA from ALLOCSPI (a failed negotiation) is no longer reserved.
            let reserved = sh.allocated.remove(&(dst, spi)).is_some();
            if !reserved && !self.sas.contains_key(&(dst, spi)) {
                if self.deleted_ahead.len() >= MAX_MOVED {
                    self.deleted_ahead.clear();
                }
                self.deleted_ahead.insert((dst, spi));
            }
            sh.nl.ack(msg::delsa_request(dst, spi))
        };
        let spec = self.sas.remove(&(dst, spi));
        if let Some(spec) = &spec {
            self.release_policies(spec);
        }
        match r {
            Ok(()) => Ok(()),
            // Not at the recorded place: a MIGRATE we never heard of may have moved it.
            // Delete it wherever the kernel holds it (same SPI and reqid), else it is gone
            // already (hard expiry removes SAs in the kernel first).
            Err(NlError::Errno(ESRCH)) => {
                if let Some(spec) = spec {
                    for k in self.kernel_sas().unwrap_or_default() {
                        if k.spi == spi && k.reqid == spec.reqid && k.dst != dst {
                            info!(recorded = %dst, found = %k.dst, spi = format_args!("{spi:08x}"),
                                "SA not where the record said: deleted where the kernel holds it");
                            let _ = lock(&self.shared).nl.ack(msg::delsa_request(k.dst, spi));
                        }
                    }
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Every ESP SA of the kernel with an owned reqid, larval states included (one dump).
    fn kernel_sas(&self) -> Result<Vec<KernelSa>, NlError> {
        let dump = lock(&self.shared)
            .nl
            .dump(msg::XFRM_MSG_GETSA, msg::XFRM_MSG_NEWSA)?;
        Ok(dump
            .into_iter()
            .filter_map(|p| {
                let sa = msg::parse_sa(&p).ok()?;
                if sa.id.proto != msg::IPPROTO_ESP || !self.owned(sa.reqid) {
                    return None;
                }
                Some(KernelSa {
                    src: msg::ip_of(&sa.saddr, sa.family).ok()?,
                    dst: msg::ip_of(&sa.id.daddr, sa.family).ok()?,
                    spi: sa.id.spi,
                    reqid: sa.reqid,
                    seq: sa.seq,
                    payload: p,
                })
            })
            .collect())
    }

    /// Puts one SA where `p` says, given the kernel's SAs (see [`Kernel::reconcile`]).
    fn place(&mut self, p: &Placement, kernel: &[KernelSa]) -> Found {
        let hits: Vec<&KernelSa> = kernel
            .iter()
            .filter(|k| k.spi == p.spi && k.reqid == p.reqid)
            .collect();
        let record = self
            .sas
            .iter()
            .find(|(_, s)| s.spi == p.spi && s.reqid == p.reqid)
            .map(|(k, s)| (*k, s.clone()));
        if hits.iter().any(|k| (k.src, k.dst) == (p.src, p.dst)) {
            // Where it should be (the kernel's own MIGRATE, say): the record follows.
            if let Some((key, mut spec)) = record
                && key != (p.dst, p.spi)
            {
                self.sas.remove(&key);
                spec.src = p.src;
                spec.dst = p.dst;
                self.sas.insert((p.dst, p.spi), spec);
            }
            return Found::InPlace;
        }
        // Moving or re-adding needs the keys, which only our copy has.
        let Some((key, old_spec)) = record else {
            return Found::Missing;
        };
        let old = hits.first();
        if old.is_none() && old_spec.direction == Direction::Out {
            // Gone with its sequence number: a copy would start again at 1, below what the
            // peer's replay window has seen, and its packets would be dropped. Only a new
            // CHILD_SA helps. (An inbound copy starts with an empty window: fine.)
            return Found::Missing;
        }
        let mut spec = old_spec.clone();
        spec.src = p.src;
        spec.dst = p.dst;
        let carry = old.and_then(|k| msg::carry_of(&k.payload).ok());
        let request = match msg::sa_request_carrying(&spec, false, carry.as_ref()) {
            Ok(r) => r,
            Err(e) => return Found::Failed(e),
        };
        {
            let mut sh = lock(&self.shared);
            if let Some(k) = old {
                match sh.nl.ack(msg::delsa_request(k.dst, k.spi)) {
                    Ok(()) | Err(NlError::Errno(ESRCH)) => {}
                    Err(e) => return Found::Failed(format!("deleting it at {}: {e}", k.dst)),
                }
            }
            if let Err(e) = sh.nl.ack(request) {
                // Put the old one back where it was, counters and all, rather than lose it.
                if let Some(k) = old {
                    let mut back = old_spec.clone();
                    back.src = k.src;
                    back.dst = k.dst;
                    if let Ok(r) = msg::sa_request_carrying(&back, false, carry.as_ref()) {
                        let _ = sh.nl.ack(r);
                    }
                }
                return Found::Failed(format!("adding it at {} -> {}: {e}", p.src, p.dst));
            }
            sh.allocated.remove(&(p.dst, p.spi));
        }
        self.sas.remove(&key);
        self.sas.insert((p.dst, p.spi), spec.clone());
        // Daemon mode: the tunnel templates follow (same selectors, new endpoints).
        if let Err(e) = self.install_policies(&spec, false) {
            warn!("after moving SA {:08x}: {e}", p.spi);
        }
        match old {
            Some(k) => Found::Moved {
                src: k.src,
                dst: k.dst,
            },
            None => Found::Readded,
        }
    }

    /// The kernel cannot change an SA's destination in place: delete it and add it again with
    /// the same keys and SPI (what strongSwan does on MOBIKE/K-bit moves). When mip6d's
    /// MIGRATE already moved it (the kernel migrates SAs with the policies), the old one is gone
    /// and the new one exists: both are fine.
    fn move_sa(
        &mut self,
        old_dst: IpAddr,
        spi: u32,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(), String> {
        if !self.sas.contains_key(&(old_dst, spi))
            && self.sas.get(&(dst, spi)).is_some_and(|s| s.src == src)
        {
            // Already moved by the kernel's MIGRATE (see `observe_migrate`).
            return Ok(());
        }
        let old = self
            .sas
            .get(&(old_dst, spi))
            .cloned()
            .ok_or_else(|| format!("no SA {spi:08x} to {old_dst}"))?;
        let mut new = old.clone();
        new.src = src;
        new.dst = dst;
        {
            let mut sh = lock(&self.shared);
            match sh.nl.ack(msg::delsa_request(old_dst, spi)) {
                Ok(()) | Err(NlError::Errno(ESRCH)) => {}
                Err(e) => return Err(e.to_string()),
            }
            match sh.nl.ack(msg::sa_request(&new, false)?) {
                Ok(()) => {}
                // mip6d's MIGRATE makes the kernel move matching SAs itself: already there.
                Err(NlError::Errno(EEXIST)) => {
                    debug!(%dst, spi = format_args!("{spi:08x}"), "SA already moved by the kernel")
                }
                Err(e) => return Err(format!("re-adding SA {spi:08x} to {dst}: {e}")),
            }
        }
        self.sas.remove(&(old_dst, spi));
        self.sas.insert((dst, spi), new.clone());
        // Same selectors, new tunnel endpoints in the templates.
        self.install_policies(&new, false)
    }

    /// New ESP-in-UDP ports for an installed SA (the peer's NAT mapping changed): XFRM_MSG_UPDSA
    /// with the same SPI and keys, which the kernel applies to the live SA in place (its
    /// counters and replay state stay). It changes the ports of an existing encapsulation
    /// only, which is all the engine asks (an SA installed without one stays without).
    fn update_encap(&mut self, dst: IpAddr, spi: u32, encap: Encap) -> Result<(), String> {
        let spec = self
            .sas
            .get(&(dst, spi))
            .ok_or_else(|| format!("no SA {spi:08x} to {dst}"))?;
        if spec.encap.is_none() {
            return Err(format!("SA {spi:08x} to {dst} has no UDP encapsulation"));
        }
        let mut new = spec.clone();
        new.encap = Some(encap);
        lock(&self.shared)
            .nl
            .ack(msg::sa_request(&new, true)?)
            .map_err(|e| format!("updating the encapsulation of SA {spi:08x} to {dst}: {e}"))?;
        self.sas.insert((dst, spi), new);
        Ok(())
    }

    /// Removes every SA, reserved SPI and policy this backend installed (shutdown).
    pub fn remove_all(&mut self) {
        let keys: Vec<(IpAddr, u32)> = self.sas.keys().copied().collect();
        for (dst, spi) in keys {
            if let Err(e) = self.del_sa(dst, spi) {
                warn!(%dst, spi = format_args!("{spi:08x}"), "shutdown: {e}");
            }
        }
        let larval: Vec<(IpAddr, u32)> =
            lock(&self.shared).allocated.drain().map(|e| e.0).collect();
        for (dst, spi) in larval {
            let _ = lock(&self.shared).nl.ack(msg::delsa_request(dst, spi));
        }
        let left: Vec<PolicyKey> = self.policies.keys().cloned().collect();
        for k in left {
            self.policies.remove(&k);
            let _ = lock(&self.shared).nl.ack(msg::delpolicy_request(&k));
        }
    }
}

/// Tunnel SAs of the MIGRATE's reqid between its old endpoints now sit at the new ones (what
/// `xfrm_migrate` did before broadcasting); transport entries (old endpoints `::`) move no SA.
/// Returns how many records moved.
fn follow_kernel_migrate(
    sas: &mut HashMap<(IpAddr, u32), SaSpec>,
    m: &Migrate,
) -> Vec<((IpAddr, u32), IpAddr)> {
    if m.old_src.is_unspecified() || m.old_dst.is_unspecified() {
        return Vec::new();
    }
    let hit: Vec<(IpAddr, u32)> = sas
        .iter()
        .filter(|(_, s)| {
            s.mode == Mode::Tunnel && s.reqid == m.reqid && (s.src, s.dst) == (m.old_src, m.old_dst)
        })
        .map(|(k, _)| *k)
        .collect();
    for key in &hit {
        if let Some(mut spec) = sas.remove(key) {
            debug!(spi = format_args!("{:08x}", key.1), from = %key.0, to = %m.new_dst,
                "SA moved by the kernel's MIGRATE");
            spec.src = m.new_src;
            spec.dst = m.new_dst;
            sas.insert((m.new_dst, key.1), spec);
        }
    }
    hit.into_iter().map(|k| (k, m.new_dst)).collect()
}

/// Of the records a MIGRATE just moved (`moves`: old key, new destination), those the engine
/// deleted at their new place before the MIGRATE reached this backend (`deleted_ahead`): the
/// engine saw the move (mip6d's first MIGRATE of a move, a transport one, gives the new
/// endpoints) and deleted the SA there, where the kernel may have had it already, or moves it
/// now. They are gone: taken out of `sas` and returned with their keys, to be deleted from the
/// kernel too (seen in the UML tier: a record left after a move without the K bit, "SAs still
/// installed after shutdown"). The other moves are returned to be remembered. Only records
/// that changed their place count: one that stays (the outbound tunnel SA, keyed by the HA's
/// address) was found by any Delete.
#[allow(clippy::type_complexity)]
fn deleted_ahead_of(
    sas: &mut HashMap<(IpAddr, u32), SaSpec>,
    deleted_ahead: &mut std::collections::HashSet<(IpAddr, u32)>,
    moves: Vec<((IpAddr, u32), IpAddr)>,
) -> (Vec<((IpAddr, u32), IpAddr)>, Vec<((IpAddr, u32), SaSpec)>) {
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (old, new_dst) in moves {
        let new = (new_dst, old.1);
        if new != old
            && deleted_ahead.remove(&new)
            && let Some(spec) = sas.remove(&new)
        {
            gone.push((new, spec));
        } else {
            kept.push((old, new_dst));
        }
    }
    (kept, gone)
}

/// One ESP SA as a GETSA dump shows it (with the raw message for its counters).
struct KernelSa {
    src: IpAddr,
    dst: IpAddr,
    spi: u32,
    reqid: u32,
    /// The ACQUIRE's sequence number of a larval state (SPI 0).
    seq: u32,
    payload: Vec<u8>,
}

fn addr(a: &netlink_packet_xfrm::Address, family: u16) -> Result<IpAddr, MsgError> {
    match family {
        msg::AF_INET6 => Ok(IpAddr::V6(a.to_ipv6())),
        msg::AF_INET => Ok(IpAddr::V4(a.to_ipv4())),
        _ => Err(MsgError("unknown address family")),
    }
}

impl Drop for XfrmKernel {
    fn drop(&mut self) {
        self.remove_all();
    }
}

impl Kernel for XfrmKernel {
    fn apply(&mut self, op: &KernelOp) -> Result<(), String> {
        match op {
            KernelOp::AddSa(spec) => self.add_sa(spec),
            KernelOp::DelSa { dst, spi } => self.del_sa(*dst, *spi),
            KernelOp::UpdateSaAddrs {
                old_dst,
                spi,
                src,
                dst,
            } => self.move_sa(*old_dst, *spi, *src, *dst),
            KernelOp::UpdateSaEncap { dst, spi, encap } => self.update_encap(*dst, *spi, *encap),
        }
    }

    fn installed(&self) -> Vec<(IpAddr, u32)> {
        self.sas.keys().copied().collect()
    }

    fn observe_migrate(&mut self, m: &Migrate) {
        if self.moved.len() >= MAX_MOVED {
            // Only Deletes queued across a MIGRATE need these; old ones are long stale.
            self.moved.clear();
        }
        let moves = follow_kernel_migrate(&mut self.sas, m);
        let (kept, gone) = deleted_ahead_of(&mut self.sas, &mut self.deleted_ahead, moves);
        for (old, new_dst) in kept {
            self.moved.insert(old, new_dst);
        }
        for ((dst, spi), spec) in gone {
            debug!(spi = format_args!("{spi:08x}"), at = %dst,
                "MIGRATE of an SA deleted at its new place already: removed");
            self.release_policies(&spec);
            match lock(&self.shared).nl.ack(msg::delsa_request(dst, spi)) {
                Ok(()) | Err(NlError::Errno(ESRCH | ENOENT)) => {}
                Err(e) => warn!(at = %dst, spi = format_args!("{spi:08x}"), "cannot delete: {e}"),
            }
        }
    }

    /// One GETSA dump, then each SA found by SPI and reqid: left alone where the record
    /// says, else moved there (or added again) from our copy of its keys.
    fn reconcile(&mut self, want: &[Placement]) -> Vec<Found> {
        let kernel = match self.kernel_sas() {
            Ok(k) => k,
            Err(e) => {
                let e = format!("cannot read the kernel's SAs: {e}");
                return want.iter().map(|_| Found::Failed(e.clone())).collect();
            }
        };
        want.iter().map(|p| self.place(p, &kernel)).collect()
    }

    /// A larval state of an ACQUIRE has SPI 0, and DELSA finds SAs by SPI: ALLOCSPI with the
    /// ACQUIRE's sequence number gives that very state an SPI (xfrm_alloc_userspi looks it up
    /// by seq and destination), then DELSA removes it.
    fn drop_acquire_states(&mut self, reqids: &[u32]) -> usize {
        self.drop_acquire_states_where(|r| reqids.contains(&r))
    }

    /// mip6d's outbound tunnel templates: the endpoints its MIGRATEs left them at.
    fn tunnel_templates(&mut self) -> Vec<TunnelTemplate> {
        let dump = match lock(&self.shared)
            .nl
            .dump(msg::XFRM_MSG_GETPOLICY, msg::XFRM_MSG_NEWPOLICY)
        {
            Ok(d) => d,
            Err(e) => {
                warn!("cannot read the kernel's policies: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for p in dump {
            let Ok((info, tmpls)) = msg::parse_policy_templates(&p) else {
                continue;
            };
            if info.direction != msg::XFRM_POLICY_OUT {
                continue;
            }
            let Ok(selector) = msg::from_xselector(&info.selector) else {
                continue;
            };
            let key = PolicyKey {
                selector: selector.clone(),
                dir: info.direction,
            };
            if self.policies.contains_key(&key) {
                continue;
            }
            for t in tmpls {
                if t.mode != msg::XFRM_MODE_TUNNEL || t.id.proto != msg::IPPROTO_ESP {
                    continue;
                }
                let (Ok(src), Ok(dst)) = (
                    msg::ip_of(&t.saddr, t.family),
                    msg::ip_of(&t.id.daddr, t.family),
                ) else {
                    continue;
                };
                out.push(TunnelTemplate {
                    selector: selector.clone(),
                    reqid: t.reqid,
                    src,
                    dst,
                });
            }
        }
        out
    }

    /// One GETSA dump: bytes and packets of every ESP SA with an owned reqid.
    fn counters(&self) -> Vec<(IpAddr, u32, crate::kernel::SaCounters)> {
        let mut sh = lock(&self.shared);
        let dump = match sh.nl.dump(msg::XFRM_MSG_GETSA, msg::XFRM_MSG_NEWSA) {
            Ok(d) => d,
            Err(e) => {
                warn!("cannot read SA counters: {e}");
                return Vec::new();
            }
        };
        dump.iter()
            .filter_map(|p| {
                let sa = msg::parse_sa(p).ok()?;
                if sa.id.proto != msg::IPPROTO_ESP || !self.owned(sa.reqid) {
                    return None;
                }
                let dst = addr(&sa.id.daddr, sa.family).ok()?;
                let c = crate::kernel::SaCounters {
                    bytes: sa.lifetime_cur.bytes,
                    packets: sa.lifetime_cur.packets,
                };
                Some((dst, sa.id.spi, c))
            })
            .collect()
    }

    /// One GETSA per SA (not a dump: a home agent asks for a few SAs at a time among many).
    fn sa_use(&self, sas: &[(IpAddr, u32)]) -> Vec<Option<crate::kernel::SaCounters>> {
        let mut sh = lock(&self.shared);
        sas.iter()
            .map(|&(dst, spi)| match sh.nl.getsa(dst, spi) {
                Ok(p) => {
                    let sa = msg::parse_sa(&p).ok()?;
                    (sa.id.spi == spi).then_some(crate::kernel::SaCounters {
                        bytes: sa.lifetime_cur.bytes,
                        packets: sa.lifetime_cur.packets,
                    })
                }
                Err(NlError::Errno(ESRCH)) => None,
                Err(e) => {
                    debug!(%dst, spi = format_args!("{spi:08x}"), "cannot read an SA's counters: {e}");
                    None
                }
            })
            .collect()
    }

    fn spi_allocator(&mut self) -> Option<Box<dyn SpiAllocator>> {
        Some(Box::new(XfrmSpiAllocator {
            shared: self.shared.clone(),
            stock: None,
            use_stock: self.spi_stock,
            timing: self.stock_timing,
            no_stock: false,
        }))
    }
}

/// Inbound SPIs from the kernel (XFRM_MSG_ALLOCSPI), so that they never collide with SAs of
/// other key managers on the host. The engine takes them from a stock reserved ahead
/// ([`spi_stock`]), started on first use.
pub struct XfrmSpiAllocator {
    shared: Arc<Mutex<Shared>>,
    stock: Option<spi_stock::SpiStock>,
    /// `[kernel] spi_stock`: otherwise each SPI is an ALLOCSPI round trip in the engine's call.
    use_stock: bool,
    /// Set by the backend (tests); else read from the namespace when the stock starts.
    timing: Option<StockTiming>,
    /// The namespace's larval states live too short for a stock (see `StockTiming`).
    no_stock: bool,
}

impl XfrmSpiAllocator {
    /// The stock's fresh reservations for `dst` (tests).
    pub fn stocked(&self, dst: IpAddr) -> usize {
        self.stock.as_ref().map_or(0, |s| s.available(dst))
    }
}

impl SpiAllocator for XfrmSpiAllocator {
    fn try_allocate(&mut self, req: &SpiRequest) -> Result<Option<u32>, String> {
        if !self.use_stock {
            return self.allocate(req).map(Some);
        }
        if self.stock.is_none() && !self.no_stock {
            match self.timing.or_else(StockTiming::of_this_namespace) {
                Some(t) => self.stock = Some(spi_stock::SpiStock::start(self.shared.clone(), t)),
                // Larval states live too short to keep any in stock: the engine picks its own
                // SPIs (NEWSA), as with an empty stock, rather than wait for the kernel.
                None => self.no_stock = true,
            }
        }
        Ok(self.stock.as_ref().and_then(|s| s.take(req.dst)))
    }

    fn allocate(&mut self, req: &SpiRequest) -> Result<u32, String> {
        let mut sh = lock(&self.shared);
        let spi = sh
            .nl
            .allocspi(req.src, req.dst, req.reqid, req.acquire_seq.unwrap_or(0))
            .map_err(|e| format!("ALLOCSPI {} -> {}: {e}", req.src, req.dst))?;
        let now = Instant::now();
        sh.allocated
            .retain(|_, at| now.duration_since(*at) < RESERVATION_KEEP);
        sh.allocated.insert((req.dst, spi), now);
        Ok(spi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Lifetime, Selector};

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec(mode: Mode, src: &str, dst: &str, spi: u32, reqid: u32) -> SaSpec {
        SaSpec {
            direction: Direction::Out,
            src: a(src),
            dst: a(dst),
            spi,
            reqid,
            mode,
            selectors: vec![Selector {
                src: a("2001:db8:1::100"),
                src_prefix: 128,
                dst: a("::"),
                dst_prefix: 0,
                proto: 0,
                sport: (0, 0),
                dport: (0, 0),
            }],
            outside_classes: false,
            encr_id: 12,
            encr_key_bits: 128,
            encr_key: zeroize::Zeroizing::new(vec![7; 16]),
            integ_id: 12,
            integ_key: zeroize::Zeroizing::new(vec![9; 32]),
            esn: false,
            replay_window: 32,
            lifetime: Lifetime {
                soft_bytes: 0,
                hard_bytes: 0,
                soft_secs: 3000,
                hard_secs: 3600,
            },
            encap: None,
        }
    }

    fn migrate(reqid: u32, old: (&str, &str), new: (&str, &str)) -> Migrate {
        Migrate {
            selector: spec(Mode::Tunnel, "::", "::", 0, 0).selectors[0].clone(),
            direction: Direction::Out,
            reqid,
            old_src: a(old.0),
            old_dst: a(old.1),
            new_src: a(new.0),
            new_dst: a(new.1),
            km_local: Some(a(new.0)),
            km_remote: Some(a(new.1)),
        }
    }

    /// mip6d's MIGRATE moved the kernel's tunnel SA: our record follows, so the engine's next
    /// delete (to the new CoA) finds it and nothing is left at shutdown. Transport entries,
    /// other reqids and other endpoints move nothing.
    #[test]
    fn records_follow_the_kernels_migrate_of_tunnel_sas() {
        let (coa1, coa2, ha, hoa) = (
            "2001:db8:2::100",
            "2001:db8:2::101",
            "2001:db8:1::1",
            "2001:db8:1::100",
        );
        let mut sas = HashMap::new();
        for s in [
            spec(Mode::Tunnel, coa1, ha, 0x1003, 3),
            spec(Mode::Tunnel, ha, coa1, 0x1004, 4),
            spec(Mode::Transport, hoa, ha, 0x1001, 1),
            spec(Mode::Tunnel, "2001:db8:2::200", ha, 0x2003, 3),
        ] {
            sas.insert((s.dst, s.spi), s);
        }
        assert_eq!(
            follow_kernel_migrate(&mut sas, &migrate(1, ("::", "::"), (hoa, ha))),
            vec![]
        );
        assert_eq!(
            follow_kernel_migrate(&mut sas, &migrate(9, (coa1, ha), (coa2, ha))),
            vec![]
        );
        // Each move is reported (old key, new destination): a Delete queued before it follows.
        assert_eq!(
            follow_kernel_migrate(&mut sas, &migrate(3, (coa1, ha), (coa2, ha))),
            vec![((a(ha), 0x1003), a(ha))]
        );
        assert_eq!(
            follow_kernel_migrate(&mut sas, &migrate(4, (ha, coa1), (ha, coa2))),
            vec![((a(coa1), 0x1004), a(coa2))]
        );
        let moved = &sas[&(a(ha), 0x1003)];
        assert_eq!((moved.src, moved.dst), (a(coa2), a(ha)));
        // The engine deleted the inbound one at coa2 before this MIGRATE arrived (no record
        // there then), and the outbound one by its unchanged key: only the inbound record
        // the MIGRATE brought to coa2 is one already deleted.
        let mut early = HashMap::new();
        for s in [
            spec(Mode::Tunnel, coa1, ha, 0x3003, 3),
            spec(Mode::Tunnel, ha, coa1, 0x3004, 4),
        ] {
            early.insert((s.dst, s.spi), s);
        }
        let mut ahead = std::collections::HashSet::from([(a(coa2), 0x3004), (a(ha), 0x3003)]);
        let mut moves = follow_kernel_migrate(&mut early, &migrate(3, (coa1, ha), (coa2, ha)));
        moves.extend(follow_kernel_migrate(
            &mut early,
            &migrate(4, (ha, coa1), (ha, coa2)),
        ));
        let (kept, gone) = deleted_ahead_of(&mut early, &mut ahead, moves);
        assert_eq!(kept, vec![((a(ha), 0x3003), a(ha))]);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, (a(coa2), 0x3004));
        assert_eq!(early.keys().collect::<Vec<_>>(), vec![&(a(ha), 0x3003)]);
        assert_eq!(ahead, std::collections::HashSet::from([(a(ha), 0x3003)]));
        let moved = &sas[&(a(coa2), 0x1004)];
        assert_eq!((moved.src, moved.dst), (a(ha), a(coa2)));
        assert!(!sas.contains_key(&(a(coa1), 0x1004)));
        // the other MN's tunnel SA (same reqid, other CoA) and the transport SA stay
        assert_eq!(sas[&(a(ha), 0x2003)].src, a("2001:db8:2::200"));
        assert_eq!(sas[&(a(ha), 0x1001)].src, a(hoa));
        assert_eq!(sas.len(), 4);
        // the second MIGRATE of the same tunnel (the HA's FWD policy) finds nothing to move
        assert_eq!(
            follow_kernel_migrate(&mut sas, &migrate(3, (coa1, ha), (coa2, ha))),
            vec![]
        );
    }
}
