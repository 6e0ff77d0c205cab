//! CHILD_SAs: the responder's selection and authorization (RFC 7296 2.9, RFC 4877 5), the
//! initiator's checks, CREATE_CHILD_SA (new and rekey, RFC 7296 1.3), KEYMAT and installation.

use std::net::{IpAddr, Ipv6Addr};

use tracing::{debug, info, warn};

use super::assign::{CpAnswer, CpRequest};
use super::endpoint::{Endpoint, Fate};
use super::found::{Found, error_notify, nonce_ok, notify};
use super::proposal::{EspSuite, accept_esp, esp_to_wire, select_esp_pfs};
use super::sa::{Child, ChildCollision, ChildRequest, Exchange, IkeSa, Intent};
use super::{Event, HomeAddress};
use crate::crypto::{DhGroup, DhPrivate, child_keymat};
use crate::kernel::{Direction, KernelOp, Lifetime, Mode, SaSpec, SpiRequest};
use crate::mobility::SaClass;
use crate::mobility::selector::{
    all_within, narrow, narrow_to_kernel, single_address, to_kernel_all,
};
use crate::wire::consts::*;
use crate::wire::{ConfigPayload, Header, Notify, Payload, Proposal, TrafficSelector};

/// The addresses of `prefix/len` as a (first, last) range.
fn span(prefix: Ipv6Addr, len: u8) -> (Ipv6Addr, Ipv6Addr) {
    let (a, b) = crate::mobility::pool::prefix_span(prefix, len);
    (Ipv6Addr::from(a), Ipv6Addr::from(b))
}

/// The lower of an exchange's two nonces (RFC 7296 2.8.1 compares the four nonces
/// octet by octet).
fn nonce_min(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.min(b).to_vec()
}

/// Mobile node: whether an SA for `class` has the class's selectors on our side and the class's
/// traffic (protocols, ports, MH / ICMPv6 types) on the home agent's. The mobile node cannot
/// make a CHILD_SA of its own (mip6d's policies only know the classes), so an answer or a
/// request that narrows the traffic is refused; a narrower address on the home agent's side
/// (a reauthenticating home agent that names itself) still counts as the class.
fn fits_class_on_mn(
    class: SaClass,
    ts_mn: &[TrafficSelector],
    ts_ha: &[TrafficSelector],
    ha: Ipv6Addr,
) -> bool {
    let Some(IpAddr::V6(hoa)) = ts_mn.first().and_then(single_address) else {
        return false;
    };
    let (ci, cr) = class.selectors(hoa, ha);
    let traffic = |t: &TrafficSelector| (t.ip_protocol, t.start_port, t.end_port);
    let ha_side: Vec<_> = ts_ha.iter().map(traffic).collect();
    let class_side: Vec<_> = cr.iter().map(traffic).collect();
    same_set(ts_mn, &ci)
        && ha_side.len() == class_side.len()
        && ha_side.iter().all(|t| class_side.contains(t))
}

/// How many automatic reqids are tried for a free one (each try scans the CHILD_SAs).
const MAX_AUTO_REQID_PROBES: u32 = 64;

/// CHILD_SAs one IKE SA may hold (rekeys replace, they do not add). A mobile node needs at most
/// one per SA class; the margin allows several home addresses.
pub const MAX_CHILDREN_PER_IKE_SA: usize = 32;

/// A CHILD_SA the responder agreed to.
pub(super) struct ChildAccept {
    pub answer: Proposal,
    pub suite: EspSuite,
    pub spi_in: u32,
    pub spi_out: u32,
    pub class: Option<SaClass>,
    pub mode: Mode,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    pub cp_reply: Option<CpAnswer>,
    /// (inbound, outbound) reqids a rekey keeps (the replaced CHILD_SA's); None: the class's,
    /// or new automatic ones for a CHILD_SA outside the classes.
    pub reqids: Option<(u32, u32)>,
}

impl ChildAccept {
    /// CP, USE_TRANSPORT_MODE, SA, TSi, TSr for the response.
    pub fn response_payloads(&self) -> Vec<Payload> {
        let mut v = Vec::new();
        if let Some(cp) = &self.cp_reply {
            v.push(Payload::Cp(cp.reply.clone()));
            if cp.use_assigned {
                v.push(Payload::Notify(Notify::new(N_USE_ASSIGNED_HOA, vec![])));
            }
        }
        if self.mode == Mode::Transport {
            v.push(Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])));
        }
        v.push(Payload::Sa(vec![self.answer.clone()]));
        v.push(Payload::TsI(self.ts_i.clone()));
        v.push(Payload::TsR(self.ts_r.clone()));
        v
    }
}

/// The outer (local, remote) endpoints of a CHILD_SA's ESP SAs.
fn child_outer(
    sa: &IkeSa,
    mode: Mode,
    ts_local: &[TrafficSelector],
    ts_remote: &[TrafficSelector],
) -> (std::net::IpAddr, std::net::IpAddr) {
    match mode {
        // RFC 4877 transport SA: the SA's endpoints are the selector addresses (HoA, HA),
        // not the IKE endpoints (CoA, HA).
        Mode::Transport => (
            ts_local
                .first()
                .and_then(single_address)
                .unwrap_or(sa.local.ip()),
            ts_remote
                .first()
                .and_then(single_address)
                .unwrap_or(sa.remote.ip()),
        ),
        Mode::Tunnel => (sa.local.ip(), sa.remote.ip()),
    }
}

/// Whether a CHILD_SA with these selectors has exact kernel selectors both ways (and at least
/// one: an empty list would leave the SA without policies).
fn kernel_selectors_ok(ts_i: &[TrafficSelector], ts_r: &[TrafficSelector]) -> bool {
    [to_kernel_all(ts_i, ts_r), to_kernel_all(ts_r, ts_i)]
        .iter()
        .all(|r| r.as_ref().is_ok_and(|v| !v.is_empty()))
}

/// The same selectors, in any order.
fn same_set(a: &[TrafficSelector], b: &[TrafficSelector]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Whether `(ts_mn, ts_ha)` are exactly `class`'s selectors for one home address and the home
/// agent `ha`: only then is a CHILD_SA the class's (its reqids and mip6d's policies).
fn is_class(
    class: SaClass,
    ts_mn: &[TrafficSelector],
    ts_ha: &[TrafficSelector],
    ha: Ipv6Addr,
) -> bool {
    let Some(IpAddr::V6(hoa)) = ts_mn.first().and_then(single_address) else {
        return false;
    };
    let (ci, cr) = class.selectors(hoa, ha);
    same_set(ts_mn, &ci) && same_set(ts_ha, &cr)
}

/// Whether a CHILD_SA's selectors make exactly one kernel selector each way.
fn single_kernel_selector(ts_i: &[TrafficSelector], ts_r: &[TrafficSelector]) -> bool {
    [to_kernel_all(ts_i, ts_r), to_kernel_all(ts_r, ts_i)]
        .iter()
        .all(|r| r.as_ref().is_ok_and(|v| v.len() == 1))
}

/// How long an ACQUIRE's seq stays attached to its class: the kernel's larval state lives
/// `net.core.xfrm_acq_expires` (30 s by default); a later negotiation answers a later ACQUIRE.
const ACQUIRE_SEQ_KEEP: std::time::Duration = std::time::Duration::from_secs(30);

impl Endpoint {
    /// Mobile node: the next new CHILD_SA of `class` answers the kernel's ACQUIRE `seq` (the
    /// daemon calls this before the Initiate or CreateChild command the ACQUIRE leads to). The
    /// inbound SPI request of that CHILD_SA carries the seq, so ALLOCSPI can name the larval
    /// state the ACQUIRE created. Used once; forgotten after 30 s.
    pub fn note_acquire(&mut self, now: super::Now, class: SaClass, seq: u32) {
        self.now = now;
        self.acquire_seqs.insert(class, (seq, now.at));
    }

    /// The noted ACQUIRE seq for a new CHILD_SA of `class`, if still fresh (taken: used once).
    pub(super) fn take_acquire_seq(&mut self, class: SaClass) -> Option<u32> {
        let (seq, at) = self.acquire_seqs.remove(&class)?;
        (self.now.at.saturating_duration_since(at) < ACQUIRE_SEQ_KEEP).then_some(seq)
    }

    /// The IKE SA (our SPI) and CHILD_SA (inbound SPI) an SA of the kernel belongs to, by its
    /// destination and SPI (the kernel's SA identity; an SPI alone may be another key
    /// manager's or a peer's choice): one of our inbound SAs, else one of our outbound SAs.
    fn child_of_kernel_sa(&self, dst: IpAddr, spi: u32) -> Option<(u64, u32)> {
        if let Some(&owner) = self.child_spis.get(&spi)
            && let Some(sa) = self.sas.get(&owner)
            && sa
                .children
                .iter()
                .any(|c| c.spi_in == spi && c.outer_local == dst)
        {
            return Some((owner, spi));
        }
        for (id, sa) in &self.sas {
            if let Some(c) = sa
                .children
                .iter()
                .find(|c| c.spi_out == spi && c.outer_remote == dst)
            {
                return Some((*id, c.spi_in));
            }
        }
        None
    }

    /// A kernel EXPIRE for one of our SAs, inbound or outbound: soft starts a rekey of its
    /// CHILD_SA, hard removes the CHILD_SA (and tells the peer).
    pub(super) fn handle_expire(&mut self, dst: IpAddr, spi: u32, hard: bool) {
        let Some((owner, spi_in)) = self.child_of_kernel_sa(dst, spi) else {
            return debug!(%dst, spi = format_args!("{spi:08x}"), "EXPIRE for an SA we do not know");
        };
        let Some(mut sa) = self.sas.remove(&owner) else {
            return;
        };
        if let Some(i) = sa.child_by_in(spi_in) {
            if hard {
                let c = sa.take_child(i);
                info!(ike = %sa.id(), %dst, spi = format_args!("{spi:08x}"), "hard lifetime of an SA expired");
                self.remove_child_kernel(&sa, &c, "hard lifetime expired");
                // The kernel already removed the SA; the Delete only informs the peer.
                sa.queue.push_back(Intent::DeleteChild(c.spi_in));
            } else if !sa.children[i].rekeying {
                info!(ike = %sa.id(), %dst, spi = format_args!("{spi:08x}"), "soft lifetime of an SA expired: rekeying");
                sa.children[i].rekeying = true;
                sa.queue.push_back(Intent::RekeyChild(spi_in));
            }
        }
        self.finish(sa, Fate::Keep);
    }

    /// Whether the peer's SPI `spi` for a new outbound SA towards `dst` is already used by an
    /// outbound SA of ours: any CHILD_SA of this IKE SA (`sa`, out of `self.sas` while worked
    /// on), or one of another IKE SA towards the same destination (the kernel's SA identity).
    /// The kernel would refuse the duplicate while we report the CHILD_SA up.
    fn peer_spi_taken(&self, sa: &IkeSa, spi: u32, dst: IpAddr) -> bool {
        sa.children.iter().any(|c| c.spi_out == spi)
            || self.out_spis.contains_key(&spi)
                && self.sas.values().any(|s| {
                    s.children
                        .iter()
                        .any(|c| c.spi_out == spi && c.outer_remote == dst)
                })
    }

    /// A reqid of `auto_reqids` for a new CHILD_SA outside the classes: the next in turn that
    /// no CHILD_SA holds (the `reqids` count, O(1) per look), so each such CHILD_SA has its
    /// policies' templates to itself. When all are taken the next in turn is shared: its SAs
    /// carry their own selectors, so the kernel still tells them apart.
    fn free_auto_reqid(&mut self) -> u32 {
        let (first, last) = self.cfg.mobility.auto_reqids;
        let size = u64::from(last.saturating_sub(first)) + 1;
        // Every installed CHILD_SA is counted in `reqids`, this SA's too (see `note_child`).
        let in_use = |me: &Self, r: u32| me.reqids.contains_key(&r);
        // Shard i of n takes every n-th reqid from the i-th: shards never pick the same one
        // while each has its own free ones (one shard: every reqid in turn).
        let (shard, shards) = (u32::from(self.shard.0), u32::from(self.shard.1.max(1)));
        let nth = |n: u32| n.wrapping_mul(shards).wrapping_add(shard);
        let size = size.div_ceil(u64::from(shards));
        let start = self.next_reqid;
        for k in 0..size.min(u64::from(MAX_AUTO_REQID_PROBES)) {
            let r = self
                .cfg
                .mobility
                .auto_reqid(nth(start.wrapping_add(k as u32)));
            if !in_use(self, r) {
                self.next_reqid = start.wrapping_add(k as u32 + 1);
                return r;
            }
        }
        let r = self.cfg.mobility.auto_reqid(nth(start));
        self.next_reqid = start.wrapping_add(1);
        warn!(reqid = r, "every automatic reqid is in use; sharing one");
        r
    }

    /// (inbound, outbound) reqids of a class as mip6d's policies expect them.
    fn class_reqids(&self, class: Option<SaClass>) -> Option<(u32, u32)> {
        let r = self.cfg.reqids(class?);
        Some(if self.is_home_agent() {
            (r.to_ha, r.to_mn)
        } else {
            (r.to_mn, r.to_ha)
        })
    }

    /// What the SPI allocator needs for the inbound SA of a CHILD_SA about to be negotiated
    /// (the same endpoints and reqid `install_child` will use; reqid 0 when not a class).
    pub(super) fn spi_request(
        &self,
        sa: &IkeSa,
        class: Option<SaClass>,
        mode: Mode,
        ts_local: &[TrafficSelector],
        ts_remote: &[TrafficSelector],
    ) -> SpiRequest {
        let (local, remote) = child_outer(sa, mode, ts_local, ts_remote);
        SpiRequest {
            src: remote,
            dst: local,
            reqid: self.class_reqids(class).map_or(0, |r| r.0),
            acquire_seq: None,
        }
    }

    /// Responder: picks an ESP proposal and narrows the selectors to what this peer may have.
    /// `rekey_of` names the CHILD_SA (by index) being replaced; its selectors bound the new ones.
    /// `create_child`: a CREATE_CHILD_SA, where our proposals with a DH group demand a KE.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_child(
        &mut self,
        sa: &mut IkeSa,
        props: &[Proposal],
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        transport: bool,
        ke_group: Option<DhGroup>,
        cp: Option<&ConfigPayload>,
        rekey_of: Option<usize>,
        create_child: bool,
    ) -> Result<ChildAccept, u16> {
        let mode = if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let mut reqids = None;
        let (class, ts_i, ts_r, cp_reply) = if let Some(i) = rekey_of {
            let old = &sa.children[i];
            reqids = Some((old.reqid_in, old.reqid_out));
            if old.mode != mode {
                return Err(N_NO_PROPOSAL_CHOSEN);
            }
            // The peer is the exchange initiator: its TSi is our remote side.
            let (ni, nr) = (narrow(tsi, &old.ts_remote), narrow(tsr, &old.ts_local));
            if ni.is_empty() || nr.is_empty() {
                return Err(N_TS_UNACCEPTABLE);
            }
            (old.class, ni, nr, None)
        } else {
            if sa.children.len() >= MAX_CHILDREN_PER_IKE_SA {
                // An authenticated peer still must not fill our memory and the kernel's SAD.
                warn!(ike = %sa.id(), children = sa.children.len(), "CHILD_SA refused: NO_ADDITIONAL_SAS");
                return Err(N_NO_ADDITIONAL_SAS);
            }
            self.authorize_child(sa, tsi, tsr, mode, cp)?
        };
        // Only what the kernel can express exactly is agreed to (RFC 7296 2.9 lets us narrow
        // to any subset): a range such as ::1-::2 has no selector, and installing a wider one
        // would give the peer traffic it never negotiated.
        let (ts_i, ts_r) = (narrow_to_kernel(&ts_i), narrow_to_kernel(&ts_r));
        if !kernel_selectors_ok(&ts_i, &ts_r) {
            info!(ike = %sa.id(), "CHILD_SA refused: selectors the kernel cannot express: TS_UNACCEPTABLE");
            self.stats.ts_refused += 1;
            return Err(N_TS_UNACCEPTABLE);
        }
        if class.is_none() && !single_kernel_selector(&ts_i, &ts_r) {
            // Its SAs carry their selector, and an XFRM SA has one: several selectors (two
            // ranges that no prefix joins, say) cannot be bound to it, and merging them into
            // a class would be the hijack this avoids.
            info!(ike = %sa.id(), "CHILD_SA outside the classes with several kernel selectors: TS_UNACCEPTABLE");
            self.stats.ts_refused += 1;
            return Err(N_TS_UNACCEPTABLE);
        }
        // ts_i is the peer's side (it initiated this exchange).
        let spi_req = self.spi_request(sa, class, mode, &ts_r, &ts_i);
        let Some(spi_in) = self.alloc_child_spi(sa, &spi_req) else {
            // Kernel trouble, not the peer's: a rekey may be retried, a new SA is refused.
            return Err(if rekey_of.is_some() {
                N_TEMPORARY_FAILURE
            } else {
                N_NO_ADDITIONAL_SAS
            });
        };
        let Some((answer, suite, spi_out)) = select_esp_pfs(
            &self.cfg.esp_proposals,
            props,
            spi_in,
            ke_group,
            create_child,
            self.cfg.prefer,
        ) else {
            self.release_child_spi(spi_in);
            info!(ike = %sa.id(), "no acceptable ESP proposal");
            return Err(N_NO_PROPOSAL_CHOSEN);
        };
        let (_, peer_outer) = child_outer(sa, mode, &ts_r, &ts_i);
        if self.peer_spi_taken(sa, spi_out, peer_outer) {
            self.release_child_spi(spi_in);
            info!(ike = %sa.id(), spi = format_args!("{spi_out:08x}"), "peer's ESP SPI is already in use: NO_PROPOSAL_CHOSEN");
            return Err(N_NO_PROPOSAL_CHOSEN);
        }
        Ok(ChildAccept {
            answer,
            suite,
            spi_in,
            spi_out,
            class,
            mode,
            ts_i,
            ts_r,
            cp_reply,
            reqids,
        })
    }

    /// Home agent: which class and selectors the authenticated peer gets (RFC 4877 5: the
    /// identity's user entry is the only authority on home addresses).
    #[allow(clippy::type_complexity)]
    fn authorize_child(
        &mut self,
        sa: &IkeSa,
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        mode: Mode,
        cp: Option<&ConfigPayload>,
    ) -> Result<
        (
            Option<SaClass>,
            Vec<TrafficSelector>,
            Vec<TrafficSelector>,
            Option<CpAnswer>,
        ),
        u16,
    > {
        if !self.is_home_agent() {
            return self.authorize_child_from_home_agent(sa, tsi, tsr, mode);
        }
        let (Some(ha), Some(user), Some(peer)) =
            (&self.cfg.home_agent, sa.user.clone(), sa.peer.clone())
        else {
            return Err(N_NO_ADDITIONAL_SAS);
        };
        let ha_addr = ha.address;
        // One IKE SA serves one home address (the one its first CHILD_SA was granted), so a
        // user with several HoAs runs one IKE SA per HoA and K-bit moves stay per HoA.
        // Candidates are address ranges: single home addresses and delegated prefixes.
        let single = |a: Ipv6Addr| (a, a);
        let mut candidates: Vec<(Ipv6Addr, Ipv6Addr)> = match sa.home_address {
            // Only while the user entry still grants it (a reload may have taken it away).
            Some(a) if super::reload::user_grants_hoa(&user, sa.provided.as_deref(), a) => {
                vec![single(a)]
            }
            Some(_) => Vec::new(),
            None => {
                let mut v: Vec<_> = user.home_addresses.iter().copied().map(single).collect();
                // Leases this identity holds (renewal after a restart or a re-establishment).
                v.extend(
                    self.leased_items(&peer)
                        .into_iter()
                        .map(|(a, l)| span(a, l)),
                );
                if let Some(crate::mobility::HomePrefix::Static { prefix, len, .. }) =
                    &user.home_prefix
                {
                    v.push(span(*prefix, *len));
                }
                v
            }
        };
        let mut cp_reply = None;
        if let Some(req) = CpRequest::parse(cp) {
            let ans = self.answer_cp(sa, &user, &peer, req)?;
            if let Some(a) = ans.hoa {
                candidates = vec![single(a)];
            }
            if let Some((p, l)) = ans.prefix {
                candidates.push(span(p, l));
            }
            cp_reply = Some(ans);
        }
        // The class a request belongs to: one that holds it whole, the most specific first
        // (HoTI/HoT MH types also fit the payload class, which must not take them); else one
        // that narrows only its addresses (a dynamic HoA request); else any that narrows it.
        let mut best: Option<(u8, SaClass, Vec<TrafficSelector>, Vec<TrafficSelector>)> = None;
        for &class in user.classes.iter().filter(|c| c.mode() == mode) {
            for &(first, last) in &candidates {
                let (mut ci, cr) = class.selectors(first, ha_addr);
                for t in &mut ci {
                    t.end_addr = std::net::IpAddr::V6(last);
                }
                let (ni, nr) = (narrow(tsi, &ci), narrow(tsr, &cr));
                if ni.is_empty() || nr.is_empty() {
                    continue;
                }
                let same_traffic = |n: &[TrafficSelector], r: &[TrafficSelector]| {
                    n.len() == r.len()
                        && n.iter().zip(r).all(|(a, b)| {
                            (a.ip_protocol, a.start_port, a.end_port)
                                == (b.ip_protocol, b.start_port, b.end_port)
                        })
                };
                // A class's CHILD_SA is exactly the class's selectors for one home address
                // (a wider request narrowed to them included); anything narrower is a CHILD_SA
                // of its own (see below).
                let score = if is_class(class, &ni, &nr, ha_addr) {
                    0
                } else if ni == tsi && nr == tsr {
                    if class == SaClass::Payload { 2 } else { 1 }
                } else if same_traffic(&ni, tsi) && same_traffic(&nr, tsr) {
                    3
                } else {
                    4
                };
                if best.as_ref().is_none_or(|b| score < b.0) {
                    best = Some((score, class, ni, nr));
                }
            }
        }
        if let Some((score, class, ni, nr)) = best {
            if score == 0 {
                return Ok((Some(class), ni, nr, cp_reply));
            }
            // Narrower than the class it falls in (HoA udp <-> ::/0 udp/53 inside payload):
            // filed under the class it would take the class's reqids and selector-less tunnel
            // SAs, and the kernel would send the class's traffic through it. It gets reqids
            // and kernel selectors of its own instead (`install_child`), still only inside
            // what the user owns.
            info!(ike = %sa.id(), identity = %peer, within = class.name(), "CHILD_SA narrower than its class: a CHILD_SA of its own");
            return Ok((None, ni, nr, cp_reply));
        }
        let reason = format!(
            "selectors outside what user '{}' owns (home addresses {}, classes {:?}, mode {:?})",
            user.name,
            candidates
                .iter()
                .map(|(a, b)| if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                })
                .collect::<Vec<_>>()
                .join(" "),
            user.classes.iter().map(|c| c.name()).collect::<Vec<_>>(),
            mode
        );
        warn!(ike = %sa.id(), identity = %peer, requested = ?tsi.iter().map(|t| t.start_addr).collect::<Vec<_>>(), %reason, "CHILD_SA refused: TS_UNACCEPTABLE");
        self.stats.ts_refused += 1;
        self.push_event(Event::Refused {
            ike: sa.id(),
            identity: peer,
            requested: tsi.to_vec(),
            reason,
        });
        Err(N_TS_UNACCEPTABLE)
    }

    /// Mobile node: a CHILD_SA its authenticated home agent starts (it re-creates them in the
    /// IKE SA of a reauthentication, RFC 7296 2.8.3): only for our own home address, in one of
    /// our classes this IKE SA does not hold yet, and never wider than the class (so the
    /// class's reqids fit mip6d's policies).
    #[allow(clippy::type_complexity)]
    fn authorize_child_from_home_agent(
        &mut self,
        sa: &IkeSa,
        tsi: &[TrafficSelector],
        tsr: &[TrafficSelector],
        mode: Mode,
    ) -> Result<
        (
            Option<SaClass>,
            Vec<TrafficSelector>,
            Vec<TrafficSelector>,
            Option<CpAnswer>,
        ),
        u16,
    > {
        let (Some(plan), Some(hoa), Some(_)) = (&sa.plan, sa.home_address, &sa.peer) else {
            // Not an IKE SA of ours with a known home address: nothing to grant.
            return Err(N_NO_ADDITIONAL_SAS);
        };
        // The home agent started the exchange: TSi is its side, TSr ours. A class that holds
        // the request whole beats one that has to narrow it (HoTI/HoT also fit the payload
        // class, which must not take them).
        let mut best: Option<(bool, SaClass, Vec<TrafficSelector>, Vec<TrafficSelector>)> = None;
        for &class in plan.classes.iter().filter(|c| c.mode() == mode) {
            if sa.children.iter().any(|c| c.class == Some(class)) {
                continue;
            }
            let (ours, theirs) = class.selectors(hoa, plan.home_agent);
            let (ni, nr) = (narrow(tsi, &theirs), narrow(tsr, &ours));
            if ni.is_empty() || nr.is_empty() || !fits_class_on_mn(class, &nr, &ni, plan.home_agent)
            {
                // Only the class whole: a narrower SA under the class's reqids would take
                // the class's traffic.
                continue;
            }
            let narrowed = ni != tsi || nr != tsr;
            if best.as_ref().is_none_or(|b| b.0 && !narrowed) {
                best = Some((narrowed, class, ni, nr));
            }
        }
        match best {
            Some((_, class, ni, nr)) => Ok((Some(class), ni, nr, None)),
            None => {
                warn!(ike = %sa.id(), home_address = %hoa, requested = ?tsr.iter().map(|t| t.start_addr).collect::<Vec<_>>(),
                      "CHILD_SA from the home agent refused: not for our home address and a class we lack");
                self.stats.ts_refused += 1;
                Err(N_TS_UNACCEPTABLE)
            }
        }
    }

    /// Derives KEYMAT and installs both directions of a CHILD_SA.
    pub(super) fn install_child(
        &mut self,
        sa: &mut IkeSa,
        acc: &ChildAccept,
        ni: &[u8],
        nr: &[u8],
        shared: Option<&[u8]>,
        exchange_initiator: bool,
    ) {
        let Some(keys) = sa.keys.as_ref() else { return };
        let s = acc.suite;
        let ek = s.encr.key_len();
        let ik = s.integ.map_or(0, |i| i.key_len());
        let km = child_keymat(keys.prf, &keys.sk_d, shared, ni, nr, 2 * (ek + ik));
        let (i_to_r, r_to_i) = km.split_at(ek + ik);
        let (out_k, in_k) = if exchange_initiator {
            (i_to_r, r_to_i)
        } else {
            (r_to_i, i_to_r)
        };
        let (ts_local, ts_remote) = if exchange_initiator {
            (acc.ts_i.clone(), acc.ts_r.clone())
        } else {
            (acc.ts_r.clone(), acc.ts_i.clone())
        };
        let (outer_local, outer_remote) = child_outer(sa, acc.mode, &ts_local, &ts_remote);
        let (reqid_in, reqid_out) = match acc.reqids.or_else(|| self.class_reqids(acc.class)) {
            Some(r) => r,
            None => {
                let r = self.free_auto_reqid();
                (r, r)
            }
        };
        let t = self.cfg.timers;
        // The responder's soft limit is later than the initiator's rekey time so that the
        // mobile node (the IKE initiator) normally rekeys first and collisions stay rare.
        let soft = if sa.drives_rekeys() {
            t.child_rekey
        } else {
            t.child_rekey + (t.child_lifetime - t.child_rekey) / 2
        };
        let lifetime = Lifetime {
            soft_bytes: 0,
            hard_bytes: 0,
            soft_secs: soft.as_secs(),
            hard_secs: t.child_lifetime.as_secs(),
        };
        let sel_out = to_kernel_all(&ts_local, &ts_remote);
        let sel_in = to_kernel_all(&ts_remote, &ts_local);
        let (encr_id, encr_bits) = s.encr.id();
        let integ_id = s.integ.map_or(AUTH_NONE, |i| i.id());
        let spec = |direction, src, dst, spi, reqid, k: &[u8], selectors| SaSpec {
            direction,
            src,
            dst,
            spi,
            reqid,
            mode: acc.mode,
            selectors,
            outside_classes: acc.class.is_none(),
            encr_id,
            encr_key_bits: encr_bits,
            encr_key: zeroize::Zeroizing::new(k[..ek].to_vec()),
            integ_id,
            integ_key: zeroize::Zeroizing::new(k[ek..].to_vec()),
            esn: s.esn,
            replay_window: self.cfg.replay_window,
            lifetime,
            encap: super::nat::encap(sa, direction),
        };
        // Negotiation only agrees to selectors the kernel can express (`kernel_selectors_ok`),
        // so these convert. Should one not, the SA goes in without selectors (and so without
        // policies): never with an any-to-any selector in place of what was negotiated.
        let exact = |v: Result<Vec<crate::kernel::Selector>, String>| {
            v.unwrap_or_else(|e| {
                warn!(ike = %sa.id(), "CHILD_SA selectors: {e}; installing no policy for it");
                Vec::new()
            })
        };
        let (sel_in, sel_out) = (exact(sel_in), exact(sel_out));
        self.kernel_ops.push_back(KernelOp::AddSa(spec(
            Direction::In,
            outer_remote,
            outer_local,
            acc.spi_in,
            reqid_in,
            in_k,
            sel_in,
        )));
        self.kernel_ops.push_back(KernelOp::AddSa(spec(
            Direction::Out,
            outer_local,
            outer_remote,
            acc.spi_out,
            reqid_out,
            out_k,
            sel_out,
        )));
        let child = Child {
            class: acc.class,
            mode: acc.mode,
            spi_in: acc.spi_in,
            spi_out: acc.spi_out,
            reqid_in,
            reqid_out,
            suite: s,
            ts_local,
            ts_remote,
            outer_local,
            outer_remote,
            rekey_at: Some(self.now.at + t.child_rekey),
            installed: self.now.at,
            rekeying: false,
            superseded: false,
            in_packets: 0,
        };
        self.child_spis.insert(acc.spi_in, sa.our_spi());
        // The AddSa above completes the larval SA, unless the IKE SA moved (K bit) while this
        // CHILD_SA was negotiated: then the SPI was reserved at the old care-of address, where
        // the kernel keeps the larval SA until it expires; delete it there.
        if let Some(dst) = self.larval.remove(&acc.spi_in)
            && dst != outer_local
        {
            debug!(%dst, now = %outer_local, spi = format_args!("{:08x}", acc.spi_in), "deleting the larval SA left at the old address");
            self.kernel_ops.push_back(KernelOp::DelSa {
                dst,
                spi: acc.spi_in,
            });
        }
        if self.is_home_agent() && sa.home_address.is_none() && child.class.is_some() {
            // The home address this user was granted, for listings and later CHILD_SAs.
            if let Some(std::net::IpAddr::V6(a)) = child.ts_remote.first().and_then(single_address)
            {
                sa.home_address = Some(a);
            }
        }
        self.stats.children_established += 1;
        let info = super::endpoint::child_info(sa, &child);
        info!(ike = %sa.id(), class = ?child.class, mode = ?child.mode, spi_in = format_args!("{:08x}", child.spi_in),
              spi_out = format_args!("{:08x}", child.spi_out), suite = %s, "CHILD_SA up");
        self.note_child(&child);
        sa.push_child(child);
        self.push_event(Event::ChildUp(info));
    }

    /// Initiator: checks the responder's answer for a CHILD_SA and installs it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_child_initiator(
        &mut self,
        sa: &mut IkeSa,
        payloads: &[Payload],
        answer: Option<&[Proposal]>,
        tsi: Option<&[TrafficSelector]>,
        tsr: Option<&[TrafficSelector]>,
        req: ChildRequest,
        ni: &[u8],
        nr: &[u8],
        shared: Option<&[u8]>,
        ke_group: Option<DhGroup>,
        exchange: &'static str,
    ) {
        let fail = |me: &mut Self,
                    sa: &mut IkeSa,
                    notify: Option<u16>,
                    reason: &str,
                    installed_by_peer: bool| {
            warn!(ike = %sa.id(), exchange, notify = %super::found::NotifyLabel(notify), reason, "CHILD_SA not established");
            me.push_event(Event::ExchangeFailed {
                ike: sa.id(),
                exchange,
                notify,
                reason: reason.to_string(),
            });
            if installed_by_peer {
                // The peer installed it; delete it there. Our SPI stays reserved until then.
                sa.queue.push_back(Intent::DeleteChild(req.spi_in));
            } else {
                me.release_child_spi(req.spi_in);
            }
            if let Some(old) = req.rekey_of
                && let Some(i) = sa.child_by_in(old)
            {
                sa.children[i].rekeying = false;
                sa.children[i].rekey_at = Some(me.now.at + me.cfg.timers.retransmit_timeout * 10);
            }
        };
        let (Some(answer), Some(tsi), Some(tsr)) = (answer, tsi, tsr) else {
            let n = error_notify(payloads);
            return fail(self, sa, n, "responder refused the CHILD_SA", false);
        };
        let Some((suite, spi_out)) = accept_esp(&self.cfg.esp_proposals, answer, ke_group) else {
            return fail(
                self,
                sa,
                Some(N_NO_PROPOSAL_CHOSEN),
                "responder chose an ESP proposal we did not offer",
                true,
            );
        };
        let (_, peer_outer) = child_outer(sa, req.mode, tsi, tsr);
        if self.peer_spi_taken(sa, spi_out, peer_outer) {
            return fail(
                self,
                sa,
                Some(N_NO_PROPOSAL_CHOSEN),
                "responder chose an ESP SPI it already uses for another CHILD_SA",
                true,
            );
        }
        if !all_within(tsi, &req.ts_i) || !all_within(tsr, &req.ts_r) {
            return fail(
                self,
                sa,
                Some(N_TS_UNACCEPTABLE),
                "responder returned selectors wider than we asked for",
                true,
            );
        }
        if !kernel_selectors_ok(tsi, tsr) {
            return fail(
                self,
                sa,
                Some(N_TS_UNACCEPTABLE),
                "responder returned selectors the kernel cannot express",
                true,
            );
        }
        if let (Some(class), Some(plan)) = (req.class, sa.plan.as_ref())
            && !fits_class_on_mn(class, tsi, tsr, plan.home_agent)
        {
            // Narrower than the class: under the class's reqids it would take traffic of
            // mip6d's class policy that the peer never agreed to carry.
            let ha = plan.home_agent;
            debug!(ike = %sa.id(), class = class.name(), %ha, "answer narrower than the class");
            return fail(
                self,
                sa,
                Some(N_TS_UNACCEPTABLE),
                "responder narrowed the class's selectors",
                true,
            );
        }
        let transport = notify(payloads, N_USE_TRANSPORT_MODE).is_some();
        if req.mode == Mode::Transport && !transport {
            return fail(
                self,
                sa,
                None,
                "responder did not confirm USE_TRANSPORT_MODE; refusing a silent tunnel",
                true,
            );
        }
        if req.mode == Mode::Tunnel && transport {
            return fail(
                self,
                sa,
                None,
                "responder answered USE_TRANSPORT_MODE to a tunnel request",
                true,
            );
        }
        let acc = ChildAccept {
            answer: answer[0].clone(),
            suite,
            spi_in: req.spi_in,
            spi_out,
            class: req.class,
            mode: req.mode,
            ts_i: tsi.to_vec(),
            ts_r: tsr.to_vec(),
            cp_reply: None,
            reqids: req
                .rekey_of
                .and_then(|o| sa.child_by_in(o))
                .map(|i| (sa.children[i].reqid_in, sa.children[i].reqid_out)),
        };
        self.install_child(sa, &acc, ni, nr, shared, true);
        if let Some(old) = req.rekey_of
            && let Some(i) = sa.child_by_in(old)
        {
            // (Gone already when the peer deleted it meanwhile: nothing left to delete.)
            sa.children[i].superseded = true;
            sa.queue.push_back(Intent::DeleteChild(old));
        }
    }

    /// Starts a CREATE_CHILD_SA for a new CHILD_SA of `class` or to rekey `rekey_of`.
    pub(super) fn start_create_child(
        &mut self,
        sa: &mut IkeSa,
        class: Option<SaClass>,
        rekey_of: Option<u32>,
    ) {
        let req = if let Some(old_spi) = rekey_of {
            let Some(i) = sa.child_by_in(old_spi) else {
                return;
            };
            let old = &sa.children[i];
            if old.superseded {
                // The peer rekeyed it first (its request came before ours went out).
                debug!(ike = %sa.id(), spi_in = format_args!("{old_spi:08x}"), "CHILD_SA already rekeyed by the peer; no rekey of ours");
                return;
            }
            let (mode, ts_i, ts_r, class) = (
                old.mode,
                old.ts_local.clone(),
                old.ts_remote.clone(),
                old.class,
            );
            let spi_req = SpiRequest {
                src: old.outer_remote,
                dst: old.outer_local,
                reqid: old.reqid_in,
                acquire_seq: None,
            };
            let Some(spi_in) = self.alloc_child_spi(sa, &spi_req) else {
                // Try again at the next rekey time or soft expiry.
                sa.children[i].rekeying = false;
                return;
            };
            ChildRequest {
                ke_retried: false,
                class,
                mode,
                spi_in,
                ts_i,
                ts_r,
                rekey_of,
            }
        } else {
            let (Some(class), Some(plan), Some(hoa)) = (class, sa.plan.as_ref(), sa.home_address)
            else {
                warn!(ike = %sa.id(), "cannot create a CHILD_SA: no class or home address");
                return;
            };
            let ha = plan.home_agent;
            let Some(r) = self.child_request_for(sa, class, &HomeAddress::Static(hoa), ha, None)
            else {
                return;
            };
            r
        };
        let group = self
            .cfg
            .esp_proposals
            .first()
            .and_then(|p| p.dh.first().copied());
        self.send_create_child(sa, req, group);
    }

    /// Sends our CREATE_CHILD_SA request for `req`, with a KE of `group` (PFS) when given.
    fn send_create_child(&mut self, sa: &mut IkeSa, req: ChildRequest, group: Option<DhGroup>) {
        let (dh, public) = match group.map(|g| DhPrivate::generate(g, self.rng.as_mut())) {
            Some(Ok((d, p))) => (Some(d), Some(p)),
            Some(Err(e)) => {
                warn!(ike = %sa.id(), "DH key generation failed: {e}");
                self.release_child_spi(req.spi_in);
                return;
            }
            None => (None, None),
        };
        let ni = self.nonce();
        let mut payloads = Vec::new();
        if let Some(old) = req.rekey_of {
            payloads.push(Payload::Notify(Notify {
                protocol_id: PROTO_ESP,
                spi: old.to_be_bytes().to_vec(),
                notify_type: N_REKEY_SA,
                data: vec![],
            }));
        }
        if req.mode == Mode::Transport {
            payloads.push(Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])));
        }
        payloads.push(Payload::Sa(esp_to_wire(
            &self.cfg.esp_proposals,
            req.spi_in,
            dh.is_some(),
        )));
        payloads.push(Payload::Nonce(ni.clone()));
        if let (Some(g), Some(p)) = (group, public) {
            payloads.push(Payload::Ke {
                group: g.id(),
                data: p,
            });
        }
        payloads.push(Payload::TsI(req.ts_i.clone()));
        payloads.push(Payload::TsR(req.ts_r.clone()));
        let data = self.seal(sa, CREATE_CHILD_SA, false, sa.next_msg_id, &payloads);
        self.send_request(
            sa,
            data,
            Exchange::CreateChild {
                req,
                ni,
                dh,
                collision: None,
            },
        );
    }

    /// Initiator: the CREATE_CHILD_SA response.
    pub(super) fn child_response(
        &mut self,
        sa: &mut IkeSa,
        payloads: Vec<Payload>,
        req: ChildRequest,
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
        collision: Option<ChildCollision>,
    ) -> Fate {
        let f = Found::new(&payloads);
        let (answer, tsi, tsr, nr) = (f.sa, f.tsi, f.tsr, f.nonce);
        let ke = f.ke;
        let group = dh.as_ref().map(|d| d.group());
        // RFC 7296 1.3: INVALID_KE_PAYLOAD names the group the peer wants; if we offered it,
        // send the request again with a KE of that group (same SPI), once.
        if let Some(n) = f.notify(N_INVALID_KE_PAYLOAD)
            && group.is_some()
            && !req.ke_retried
            && let Ok(b) = <[u8; 2]>::try_from(n.data.as_slice())
            && let Some(want) = DhGroup::from_id(u16::from_be_bytes(b))
            && Some(want) != group
            && self.cfg.esp_proposals.iter().any(|p| p.dh.contains(&want))
        {
            info!(ike = %sa.id(), got = ?group, want = ?want, "CREATE_CHILD_SA: the peer wants another KE group; sending it again");
            let req = ChildRequest {
                ke_retried: true,
                ..req
            };
            // A new exchange with new nonces: a collision is decided by the exchange that
            // completes, and the peer's CHILD_SA stays known.
            self.send_create_child(sa, req, Some(want));
            if let (Some(c), Some(p)) = (collision, sa.pending.as_mut())
                && let Exchange::CreateChild {
                    collision: slot, ..
                } = &mut p.exchange
            {
                *slot = Some(c);
            }
            return Fate::Keep;
        }
        let shared = match (dh, ke) {
            (Some(d), Some((g, data))) if Some(g) == group.map(|x| x.id()) => d.agree(data).ok(),
            _ => None,
        };
        let ok_shape =
            answer.is_some() && nr.is_some_and(nonce_ok) && (group.is_none() || shared.is_some());
        let nr = nr.unwrap_or_default();
        let (answer, tsi, tsr) = if ok_shape {
            (answer, tsi, tsr)
        } else {
            (None, None, None)
        };
        let (new_spi, old_spi) = (req.spi_in, req.rekey_of);
        self.finish_child_initiator(
            sa,
            &payloads,
            answer,
            tsi,
            tsr,
            req,
            &ni,
            nr,
            shared.as_deref().map(|v| v.as_slice()),
            group,
            "CREATE_CHILD_SA",
        );
        if let (Some(c), Some(old)) = (collision, old_spi) {
            self.resolve_child_collision(sa, c, new_spi, old, nonce_min(&ni, nr));
        }
        Fate::Keep
    }

    /// RFC 7296 2.8.1: our rekey of CHILD_SA `old` (new inbound SPI `ours`, lower nonce
    /// `ours_min`) crossed the peer's rekey of it, which made CHILD_SA `theirs`. Both sides
    /// compare the same four nonces: the CHILD_SA made by the exchange with the lowest nonce is
    /// redundant and deleted by the side that started that exchange; the other side deletes
    /// `old`. The winner keeps the class's reqids (every CHILD_SA of a class has them).
    fn resolve_child_collision(
        &mut self,
        sa: &mut IkeSa,
        theirs: ChildCollision,
        ours: u32,
        old: u32,
        ours_min: Vec<u8>,
    ) {
        let Some(i) = sa.child_by_in(ours) else {
            // Ours failed: theirs is the only new one; the peer deletes `old`.
            debug!(ike = %sa.id(), "CHILD_SA rekey collision: ours failed, the peer's stays");
            return;
        };
        if ours_min < theirs.nonce_min {
            info!(ike = %sa.id(), spi_in = format_args!("{ours:08x}"),
                  "simultaneous CHILD_SA rekey: ours has the lowest nonce and is redundant; deleting it");
            sa.children[i].rekeying = true;
            sa.children[i].superseded = true;
            // The winner's starter (the peer) deletes the old CHILD_SA, not us.
            sa.queue
                .retain(|x| !matches!(x, Intent::DeleteChild(s) if *s == old));
            sa.queue.push_back(Intent::DeleteChild(ours));
        } else {
            info!(ike = %sa.id(), spi_in = format_args!("{ours:08x}"),
                  "simultaneous CHILD_SA rekey: ours won; the peer deletes its redundant one");
            // Never rekeyed, and the peer may not rekey it either: it only waits for the
            // peer's Delete (or its hard lifetime).
            if let Some(j) = sa.child_by_in(theirs.spi_in) {
                sa.children[j].rekeying = true;
                sa.children[j].superseded = true;
            }
        }
    }

    /// Responder: a CREATE_CHILD_SA request.
    pub(super) fn child_request(
        &mut self,
        sa: &mut IkeSa,
        header: &Header,
        payloads: Vec<Payload>,
    ) -> Fate {
        let msg_id = header.message_id;
        let respond_err = |me: &mut Self, sa: &mut IkeSa, n: u16, data: Vec<u8>| {
            let p = Payload::Notify(Notify::new(n, data));
            let resp = me.seal(sa, CREATE_CHILD_SA, true, msg_id, &[p]);
            me.send_response(sa, msg_id, resp);
            Fate::Keep
        };
        // Our Delete of the CHILD_SA the peer names (by our outbound SPI) is in flight.
        let closing = |sa: &IkeSa, spi_out: u32| {
            sa.pending.as_ref().is_some_and(|p| {
                matches!(p.exchange, Exchange::DeleteChild { spi_out: Some(s), .. } if s == spi_out)
            })
        };
        let f = Found::new(&payloads);
        let (props, ni, tsi, tsr, ke) = (f.sa, f.nonce, f.tsi, f.tsr, f.ke);
        let (Some(props), Some(ni)) = (props, ni) else {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        };
        if !nonce_ok(ni) {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        }
        if sa.state != super::sa::State::Established {
            // A rekeyed (or deleting) IKE SA takes no new work; its successor does.
            return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
        }
        if props.iter().any(|p| p.protocol_id == PROTO_IKE) {
            return self.rekey_ike_request(sa, msg_id, props, ni, ke);
        }
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        };
        let rekey_spi = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == N_REKEY_SA && n.protocol_id == PROTO_ESP => n
                .spi
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes),
            _ => None,
        });
        let rekey_idx = match rekey_spi {
            Some(spi) => match sa.children.iter().position(|c| c.spi_out == spi) {
                Some(i) => Some(i),
                None if closing(sa, spi) => None,
                None => {
                    let mut n = Notify::new(N_CHILD_SA_NOT_FOUND, vec![]);
                    n.protocol_id = PROTO_ESP;
                    n.spi = spi.to_be_bytes().to_vec();
                    let resp = self.seal(sa, CREATE_CHILD_SA, true, msg_id, &[Payload::Notify(n)]);
                    self.send_response(sa, msg_id, resp);
                    return Fate::Keep;
                }
            },
            None => None,
        };
        let rekey_idx = match (rekey_idx, rekey_spi) {
            (None, Some(spi)) => {
                // RFC 7296 2.25: a rekey of a CHILD_SA we are closing.
                info!(ike = %sa.id(), spi = format_args!("{spi:08x}"), "rekey of a CHILD_SA we are deleting: TEMPORARY_FAILURE");
                return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
            }
            (Some(i), _)
                if sa.queue.iter().any(
                    |x| matches!(x, Intent::DeleteChild(s) if *s == sa.children[i].spi_in),
                ) =>
            {
                info!(ike = %sa.id(), spi = format_args!("{:08x}", sa.children[i].spi_in), "rekey of a CHILD_SA we are about to delete: TEMPORARY_FAILURE");
                return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
            }
            (idx, _) => idx,
        };
        if let Some(i) = rekey_idx {
            // A rekeyed CHILD_SA is to be deleted, not rekeyed again (RFC 7296 2.8). A peer
            // that never deletes superseded SAs would otherwise add two kernel SAs per rekey
            // without bound, past MAX_CHILDREN_PER_IKE_SA. An honest peer has at most one
            // superseded SA per live one (and only briefly), so that is the bound as well.
            let superseded = sa.children.iter().filter(|c| c.superseded).count();
            let live = sa.children.len() - superseded;
            if sa.children[i].superseded || superseded >= live {
                warn!(ike = %sa.id(), spi = format_args!("{:08x}", sa.children[i].spi_in), superseded, live,
                      "rekey of a CHILD_SA already rekeyed, or too many not deleted: TEMPORARY_FAILURE");
                return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
            }
        }
        // PFS: the KE group must be one the chosen proposal lists and we accept.
        let ke_group = match &ke {
            Some((g, _)) => match DhGroup::from_id(*g) {
                Some(g) => Some(g),
                None => {
                    let want = self
                        .cfg
                        .esp_proposals
                        .iter()
                        .find_map(|p| p.dh.first())
                        .map(|g| g.id())
                        .unwrap_or(0);
                    self.stats.invalid_ke_sent += 1;
                    return respond_err(
                        self,
                        sa,
                        N_INVALID_KE_PAYLOAD,
                        want.to_be_bytes().to_vec(),
                    );
                }
            },
            None => None,
        };
        let transport = f.notify(N_USE_TRANSPORT_MODE).is_some();
        let acc = match self.accept_child(
            sa, props, tsi, tsr, transport, ke_group, None, rekey_idx, true,
        ) {
            Ok(a) => a,
            Err(N_NO_PROPOSAL_CHOSEN) if ke_group.is_some() => {
                // Maybe only the KE group is wrong: offer ours if the proposal would fit it.
                let ours = self
                    .cfg
                    .esp_proposals
                    .iter()
                    .find_map(|p| p.dh.first().copied());
                match ours {
                    Some(g) if Some(g) != ke_group => {
                        self.stats.invalid_ke_sent += 1;
                        return respond_err(
                            self,
                            sa,
                            N_INVALID_KE_PAYLOAD,
                            g.id().to_be_bytes().to_vec(),
                        );
                    }
                    _ => return respond_err(self, sa, N_NO_PROPOSAL_CHOSEN, vec![]),
                }
            }
            Err(n) => return respond_err(self, sa, n, vec![]),
        };
        let mut shared = None;
        let mut out_ke = None;
        if let (Some(g), Some((_, data))) = (acc.suite.dh, ke) {
            if g.check_public(data).is_err() {
                // Checked before our own key pair costs an exponentiation.
                self.release_child_spi(acc.spi_in);
                return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
            }
            let Ok((d, public)) = DhPrivate::generate(g, self.rng.as_mut()) else {
                self.release_child_spi(acc.spi_in);
                return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
            };
            match d.agree(data) {
                Ok(s) => shared = Some(s),
                Err(_) => {
                    self.release_child_spi(acc.spi_in);
                    return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
                }
            }
            out_ke = Some(Payload::Ke {
                group: g.id(),
                data: public,
            });
        }
        let nr = self.nonce();
        let mut out = Vec::new();
        if acc.mode == Mode::Transport {
            out.push(Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])));
        }
        out.push(Payload::Sa(vec![acc.answer.clone()]));
        out.push(Payload::Nonce(nr.clone()));
        if let Some(k) = out_ke {
            out.push(k);
        }
        out.push(Payload::TsI(acc.ts_i.clone()));
        out.push(Payload::TsR(acc.ts_r.clone()));
        let resp = self.seal(sa, CREATE_CHILD_SA, true, msg_id, &out);
        self.send_response(sa, msg_id, resp);
        if let Some(i) = rekey_idx {
            // The initiator deletes the old CHILD_SA once the new one is up.
            sa.children[i].rekeying = true;
            sa.children[i].superseded = true;
            let old_in = sa.children[i].spi_in;
            // Our own rekey of the same CHILD_SA is queued: the peer's replaces it.
            sa.queue
                .retain(|x| !matches!(x, Intent::RekeyChild(s) if *s == old_in));
            let id = sa.id();
            if let Some(p) = sa.pending.as_mut()
                && let Exchange::CreateChild { req, collision, .. } = &mut p.exchange
                && req.rekey_of == Some(old_in)
            {
                // Ours is in flight (RFC 7296 2.8.1): its answer decides which one stays.
                info!(ike = %id, spi_in = format_args!("{old_in:08x}"), "simultaneous CHILD_SA rekey");
                *collision = Some(ChildCollision {
                    spi_in: acc.spi_in,
                    nonce_min: nonce_min(ni, &nr),
                });
            }
        }
        self.install_child(
            sa,
            &acc,
            ni,
            &nr,
            shared.as_deref().map(|v| v.as_slice()),
            false,
        );
        Fate::Keep
    }
}
