//! Movement (RFC 6275 11.7.1 K bit, RFC 3776 6.19, RFC 4877 4.5): mip6d tells the kernel that a
//! mobile node moved with one XFRM_MSG_MIGRATE per policy, each carrying the IKE endpoints in
//! KMADDRESS (MN: new CoA, HA; HA: HA, new CoA, or the HoA when the MN comes home). The
//! kernel's broadcast of those messages is the only signal the key manager gets.
//!
//! With the K bit the IKE SA follows KMADDRESS (ports kept); several MIGRATEs of one move find
//! the SA already there and do nothing. Without it the mobile node starts a new IKE SA from the
//! new address and both sides drop the old one. The SA is found by the home address in the
//! MIGRATE's selector plus one unchanged KMADDRESS end, never by a datagram's source address.
//! An IKE SA the mobile node is still negotiating (IKE_SA_INIT or IKE_AUTH sent) starts again
//! from the new KMADDRESS, K bit or not: its retransmissions would leave from an address mip6d
//! no longer uses, and a half-done handshake is not worth moving (its IKE_SA_INIT, which AUTH
//! signs, carries NAT detection hashes of the old address). Every MIGRATE's KMADDRESS is also
//! remembered for the mobile node's next initiation (see `home`).
//! The home agent's FWD tunnel policies are migrated too, but their MIGRATEs never reach the
//! engine (see `kernel::xfrm::msg::parse_event`): the IN MIGRATE of the same tunnel carries the
//! same selector and KMADDRESS.

use std::net::{IpAddr, SocketAddr};

use tracing::{debug, info};

use super::Event;
use super::endpoint::{Endpoint, Fate};
use super::hoa_index::prefix_range;
use super::home::plan_hoa;
use super::sa::{Child, IkeSa, Plan, State};
use crate::kernel::{KernelOp, Migrate, Mode, Selector};

/// The selector side `addr/prefix` covers `hoa`; `::/0` does not count (it names every SA).
fn covers(addr: IpAddr, prefix: u8, hoa: IpAddr) -> bool {
    match (addr, hoa) {
        (IpAddr::V6(a), IpAddr::V6(h)) if (1..=128).contains(&prefix) => {
            let mask = u128::MAX << (128 - u32::from(prefix));
            u128::from(a) & mask == u128::from(h) & mask
        }
        _ => false,
    }
}

fn names_home_address(sel: &Selector, hoa: IpAddr) -> bool {
    covers(sel.src, sel.src_prefix, hoa) || covers(sel.dst, sel.dst_prefix, hoa)
}

/// A tunnel CHILD_SA whose outer endpoints (local, remote) changed.
struct Moved {
    spi_in: u32,
    spi_out: u32,
    old: (IpAddr, IpAddr),
    new: (IpAddr, IpAddr),
}

/// Tunnel SAs run between the IKE endpoints (CoA <-> HA) and follow them from `old` to `new`;
/// transport SAs between HoA and HA do not move. Returns what moved.
fn follow(
    children: &mut [Child],
    old: (SocketAddr, SocketAddr),
    new: (IpAddr, IpAddr),
) -> Vec<Moved> {
    let mut out = Vec::new();
    for c in children.iter_mut().filter(|c| c.mode == Mode::Tunnel) {
        let (ol, or) = (c.outer_local, c.outer_remote);
        let nl = if ol == old.0.ip() { new.0 } else { ol };
        let nr = if or == old.1.ip() { new.1 } else { or };
        if (nl, nr) == (ol, or) {
            continue;
        }
        c.outer_local = nl;
        c.outer_remote = nr;
        out.push(Moved {
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            old: (ol, or),
            new: (nl, nr),
        });
    }
    out
}

/// The plan and addresses of an IKE SA to start again after a move without key mobility.
type Restart = (Box<Plan>, SocketAddr, SocketAddr);

impl Endpoint {
    /// A MIGRATE from the kernel (see the module documentation).
    pub(super) fn handle_migrate(&mut self, m: Migrate) {
        let (Some(km_local), Some(km_remote)) = (m.km_local, m.km_remote) else {
            // The new IKE endpoints are only in KMADDRESS (transport entries carry `::`).
            return debug!(reqid = m.reqid, selector = ?m.selector, "MIGRATE without KMADDRESS ignored");
        };
        if !self.is_home_agent() {
            // The next initiation starts here, whatever becomes of the IKE SAs below.
            self.mn.note_kmaddress(&m.selector, km_local, km_remote);
            self.restart_negotiations(&m.selector, km_local, km_remote);
        }
        let ids = self.sas_naming(&m.selector);
        if ids.is_empty() {
            if !self.is_home_agent() {
                // Not lost: the next initiation (or the restart above) starts there.
                return debug!(reqid = m.reqid, selector = ?m.selector, %km_local, %km_remote,
                    "MIGRATE without established IKE SA: KMADDRESS remembered");
            }
            if self.shard.1 > 1 {
                // Every shard hears every MIGRATE; the home address's SAs live on one.
                return debug!(reqid = m.reqid, selector = ?m.selector, %km_local, %km_remote,
                    "MIGRATE for a home address without IKE SA on this shard; ignored");
            }
            return info!(reqid = m.reqid, selector = ?m.selector, %km_local, %km_remote,
                "MIGRATE for a home address without IKE SA; ignored");
        }
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            let (fate, restart) = self.migrate_sa(&mut sa, km_local, km_remote);
            // The old SA's CHILD_SAs and IkeDown go first; then the new IKE SA starts.
            let old = sa.id();
            self.finish(sa, fate);
            if let Some((plan, local, remote)) = restart {
                let (local, remote) = self.restart_ends(local, remote);
                let id = self.start_initiator(local, remote, *plan);
                info!(ike = %id, %local, %remote, "IKE SA re-established from the new address");
                // Whoever follows `old` follows `new`, as after a rekey.
                self.push_event(Event::IkeRekeyed { old, new: id });
            }
        }
    }

    /// The IKE SAs a MIGRATE's selector is about: established (or superseded, deleting) ones
    /// whose home address either side of the selector covers. Found through the home address
    /// index, not by looking at every SA; entries that no longer hold are dropped on the way.
    fn sas_naming(&mut self, sel: &Selector) -> Vec<u64> {
        let mut ids = Vec::new();
        for (addr, prefix) in [(sel.src, sel.src_prefix), (sel.dst, sel.dst_prefix)] {
            let Some((first, last)) = prefix_range(addr, prefix) else {
                continue;
            };
            for (hoa, id) in self.by_hoa.within(first, last) {
                let Some(sa) = self.sas.get(&id) else {
                    self.by_hoa.remove(hoa, id);
                    continue;
                };
                if sa.home_address != Some(hoa) {
                    self.by_hoa.remove(hoa, id);
                    continue;
                }
                if matches!(
                    sa.state,
                    State::Established | State::Rekeyed | State::Deleting
                ) && names_home_address(sel, IpAddr::V6(hoa))
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// Mobile node: IKE SAs still in IKE_SA_INIT or IKE_AUTH for the home address the MIGRATE
    /// names. Their messages leave from an address mip6d says we no longer use (often gone
    /// already), so the negotiation starts again from the local KMADDRESS with the same plan.
    /// Several MIGRATEs of one move find the new attempt already there and do nothing.
    fn restart_negotiations(&mut self, sel: &Selector, km_local: IpAddr, km_remote: IpAddr) {
        let ids: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| {
                sa.initiator
                    && matches!(sa.state, State::InitSent | State::AuthSent)
                    && sa.plan.as_ref().is_some_and(|p| match plan_hoa(p) {
                        Some(h) => names_home_address(sel, IpAddr::V6(h)),
                        // A dynamic home address not assigned yet: every MIGRATE towards
                        // this home agent is about it.
                        None => {
                            km_remote == sa.remote.ip() || km_remote == IpAddr::V6(p.home_agent)
                        }
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            let towards_ha = sa.plan.as_ref().is_some_and(|p| {
                km_remote == sa.remote.ip() || km_remote == IpAddr::V6(p.home_agent)
            });
            if sa.local.ip() == km_local || !towards_ha || km_local.is_ipv4() != sa.remote.is_ipv4()
            {
                if sa.local.ip() != km_local {
                    info!(ike = %sa.id(), local = %sa.local, remote = %sa.remote, %km_local, %km_remote,
                          "MIGRATE: KMADDRESS does not match the IKE SA in negotiation; ignored");
                }
                self.finish(sa, Fate::Keep);
                continue;
            }
            let remote = sa.remote;
            let moved = SocketAddr::new(km_local, sa.local.port());
            if sa.state == State::AuthSent {
                // The home agent may have completed our IKE_AUTH (its answer lost on the way to
                // the old address): delete that IKE SA there, from the new address.
                self.send_ike_delete_once(&sa, moved, remote);
            }
            let (new_local, remote) = self.restart_ends(moved, remote);
            let (old, old_local, plan) = (sa.id(), sa.local, sa.plan.take());
            info!(ike = %old, state = sa.state.name(), from = %old_local, to = %new_local, %remote,
                  "moved during negotiation: starting again from the new address");
            self.finish(sa, Fate::Close("moved during negotiation".into()));
            if let Some(mut plan) = plan {
                plan.ike_rekey_at = None;
                let new = self.start_initiator(new_local, remote, *plan);
                // Whoever waits for `old` (the daemon, an `initiate` on the control socket)
                // follows `new`: reported like a rekey, `old` goes without an IkeDown.
                self.push_event(Event::IkeRekeyed { old, new });
            }
        }
    }

    fn migrate_sa(
        &mut self,
        sa: &mut IkeSa,
        km_local: IpAddr,
        km_remote: IpAddr,
    ) -> (Fate, Option<Restart>) {
        let (old_local, old_remote) = (sa.local, sa.remote);
        let local_moved = old_local.ip() != km_local;
        let remote_moved = old_remote.ip() != km_remote;
        if !local_moved && !remote_moved {
            // Another MIGRATE of a move already acted on (mip6d sends one per policy).
            debug!(ike = %sa.id(), %km_local, %km_remote, "MIGRATE: IKE SA already at KMADDRESS");
            return (Fate::Keep, None);
        }
        if (local_moved && remote_moved) || km_local.is_ipv4() != km_remote.is_ipv4() {
            // Both ends never move at once: this KMADDRESS is not about this IKE SA.
            info!(ike = %sa.id(), local = %old_local, remote = %old_remote, %km_local, %km_remote,
                "MIGRATE: KMADDRESS does not match the IKE SA; ignored");
            return (Fate::Keep, None);
        }
        let new_local = SocketAddr::new(km_local, old_local.port());
        let new_remote = SocketAddr::new(km_remote, old_remote.port());
        let update_kernel = self.cfg.mobility.update_kernel_sas;
        if !self.cfg.mobility.key_mobility {
            if !update_kernel {
                // mip6d's MIGRATEs move the kernel's tunnel SAs themselves; the record follows
                // (one MIGRATE of the move may not have been processed yet: deleting later
                // finds the SA wherever the kernel holds it).
                follow(
                    &mut sa.children,
                    (old_local, old_remote),
                    (km_local, km_remote),
                );
            }
            return self.strand_after_move(sa, new_local, new_remote, local_moved);
        }
        sa.local = new_local;
        sa.remote = new_remote;
        for m in follow(
            &mut sa.children,
            (old_local, old_remote),
            (km_local, km_remote),
        ) {
            if update_kernel {
                self.kernel_ops.push_back(KernelOp::UpdateSaAddrs {
                    old_dst: m.old.0,
                    spi: m.spi_in,
                    src: m.new.1,
                    dst: m.new.0,
                });
                self.kernel_ops.push_back(KernelOp::UpdateSaAddrs {
                    old_dst: m.old.1,
                    spi: m.spi_out,
                    src: m.new.0,
                    dst: m.new.1,
                });
            }
        }
        info!(ike = %sa.id(), from = %format_args!("{old_local} <-> {old_remote}"),
              to = %format_args!("{new_local} <-> {new_remote}"), "IKE SA moved (K bit)");
        if sa.state == State::Established {
            // A superseded SA (rekeyed, deleting) moves too, so its last messages arrive, but
            // the move is reported once, for the SA that carries the CHILD_SAs.
            self.stats.migrations += 1;
            self.push_event(Event::Migrated {
                ike: sa.id(),
                old_local,
                old_remote,
                new_local,
                new_remote,
            });
        }
        (Fate::Keep, None)
    }

    /// Without the K bit the IKE SA cannot follow, but its CHILD_SAs still work: the transport
    /// SAs run HoA <-> HA whatever the care-of address, and mip6d's MIGRATEs moved the tunnel
    /// SAs in the kernel. mip6d's next BU (a deregistration at home, say) needs them, and the
    /// home agent cannot even reach a returning mobile node before that BU has removed the
    /// binding's tunnel policies. So nothing is deleted before its replacement exists (make
    /// before break):
    /// - mobile node (`local_moved`): the SA is left stranded (no more work, its plan goes to
    ///   a new IKE SA started from the new address), and deleted, Delete sent from the new
    ///   address, once that new IKE SA has set up its CHILD_SAs (`retire_stranded`), or after
    ///   `move_grace`;
    /// - home agent: the SA stays as it is until the mobile node deletes it from its new
    ///   address, or stops answering the liveness check at the old one.
    fn strand_after_move(
        &mut self,
        sa: &mut IkeSa,
        new_local: SocketAddr,
        new_remote: SocketAddr,
        local_moved: bool,
    ) -> (Fate, Option<Restart>) {
        if !local_moved {
            info!(ike = %sa.id(), remote = %sa.remote, to = %new_remote.ip(), children = sa.children.len(),
                "peer moved without key mobility: CHILD_SAs kept until it replaces this IKE SA");
            return (Fate::Keep, None);
        }
        // Later MIGRATEs of the same move find the SA at the new place; its last words (the
        // Delete) leave from there.
        sa.local = new_local;
        sa.remote = new_remote;
        if sa.stranded || sa.state != State::Established {
            return (Fate::Keep, None);
        }
        let Some(mut plan) = sa.plan.take() else {
            // Not ours to re-establish (a superseded SA): it keeps its CHILD_SAs until the
            // home agent deletes it or it expires.
            return (Fate::Keep, None);
        };
        plan.ike_rekey_at = None;
        plan.retire.push(sa.our_spi());
        sa.stranded = true;
        sa.state = State::Rekeyed;
        sa.queue.clear();
        sa.expires_at = Some(self.now.at + self.cfg.timers.move_grace);
        info!(ike = %sa.id(), children = sa.children.len(), grace = ?self.cfg.timers.move_grace,
            "moved without key mobility: CHILD_SAs kept until the new IKE SA has its own");
        (Fate::Keep, Some((plan, new_local, new_remote)))
    }

    /// Mobile node: `sa` (just established, or its last setup exchange done) replaces the IKE
    /// SAs its plan left behind after moves without the K bit; they are deleted now, on the
    /// home agent too.
    pub(super) fn retire_stranded(&mut self, sa: &mut IkeSa) {
        let Some(plan) = sa.plan.as_mut() else {
            return;
        };
        if plan.retire.is_empty() {
            return;
        }
        for old in std::mem::take(&mut plan.retire) {
            let Some(o) = self.sas.remove(&old) else {
                continue;
            };
            self.send_ike_delete_once(&o, sa.local, sa.remote);
            info!(old = %o.id(), new = %sa.id(), children = o.children.len(),
                "IKE SA left behind by a move replaced: deleted");
            self.destroy(o, "replaced after a move without key mobility");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_sides_name_a_home_address() {
        let hoa: IpAddr = "2001:db8:1::100".parse().unwrap();
        let other: IpAddr = "2001:db8:1::200".parse().unwrap();
        let any: IpAddr = "::".parse().unwrap();
        assert!(covers(hoa, 128, hoa));
        assert!(!covers(other, 128, hoa));
        assert!(covers("2001:db8:1::".parse().unwrap(), 64, hoa));
        assert!(!covers(any, 0, hoa), "::/0 names every SA, so none");
        assert!(!covers("10.0.0.1".parse().unwrap(), 32, hoa));
    }
}
