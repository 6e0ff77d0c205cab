//! NAT traversal (RFC 7296 2.23, RFC 3948). IKE_SA_INIT's NAT_DETECTION notifies tell each side
//! whether a NAT changed the peer's source (`peer_behind`) or our own address (`we_behind`).
//! When either did:
//! - the initiator moves the IKE SA to UDP 4500 before IKE_AUTH (ours: from our NAT-T port);
//!   the responder follows the first authenticated message that arrives there (`float`);
//! - every CHILD_SA of the IKE SA is installed with ESP in UDP between the IKE SA's ports
//!   ([`encap`]); the daemon's NAT-T sockets decapsulate (UDP_ENCAP_ESPINUDP);
//! - the side behind the NAT sends a keepalive (one 0xFF byte) every `nat_keepalive` so that
//!   the NAT keeps the mapping;
//! - a new port of the peer (the NAT's mapping changed) is learnt from authenticated messages
//!   only, and the SAs' encapsulation ports follow it (`KernelOp::UpdateSaEncap`).
//!
//! Without a NAT nothing changes: no float by our mobile node, plain ESP.

use std::time::Instant;

use tracing::{info, warn};

use super::Transmit;
use super::endpoint::Endpoint;
use super::sa::{IkeSa, State};
use crate::kernel::{Direction, Encap, KernelOp};

/// A NAT keepalive (RFC 3948 2.3): sent as it is on the NAT-T socket, without the non-ESP
/// marker (no IKE message is one byte long).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What NAT detection found for one IKE SA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NatState {
    /// The peer's source address or port was changed on the way (a NAT before the peer).
    pub peer_behind: bool,
    /// Our address or port as the peer saw it is not ours (a NAT before us).
    pub we_behind: bool,
    /// When our next keepalive is due (only when `we_behind`).
    pub keepalive_at: Option<Instant>,
}

impl NatState {
    pub fn detected(&self) -> bool {
        self.peer_behind || self.we_behind
    }
}

/// The UDP encapsulation of `sa`'s CHILD_SA in `direction`, when a NAT lies between the peers:
/// the IKE SA's ports (RFC 3948: ESP goes where IKE goes), the sender's first.
pub(super) fn encap(sa: &IkeSa, direction: Direction) -> Option<Encap> {
    if !sa.nat.detected() {
        return None;
    }
    let (ours, theirs) = (sa.local.port(), sa.remote.port());
    Some(match direction {
        Direction::Out => Encap {
            sport: ours,
            dport: theirs,
        },
        Direction::In => Encap {
            sport: theirs,
            dport: ours,
        },
    })
}

impl Endpoint {
    /// IKE_SA_INIT's NAT detection result for `sa` (both sides). An initiator with a NAT on
    /// the path moves to the NAT-T ports now, so IKE_AUTH already leaves from there.
    pub(super) fn nat_detected(&mut self, sa: &mut IkeSa, peer_behind: bool, we_behind: bool) {
        sa.nat.peer_behind = peer_behind;
        sa.nat.we_behind = we_behind;
        if !sa.nat.detected() {
            return;
        }
        self.stats.nat_detected += 1;
        let m = self.cfg.mobility;
        if sa.initiator && sa.local.port() != m.nat_port {
            let (old_local, old_remote) = (sa.local, sa.remote);
            sa.local.set_port(m.nat_port);
            sa.remote.set_port(super::float::NAT_T_PORT);
            info!(ike = %sa.id(), from = %format_args!("{old_local} <-> {old_remote}"),
                  to = %format_args!("{} <-> {}", sa.local, sa.remote), "NAT detected: moving to the NAT-T port");
        }
        if we_behind && !m.nat_keepalive.is_zero() {
            sa.nat.keepalive_at = Some(self.now.at + m.nat_keepalive);
        }
        info!(ike = %sa.id(), peer_behind_nat = peer_behind, we_behind_nat = we_behind,
              keepalives = we_behind && !m.nat_keepalive.is_zero(),
              "NAT detected: CHILD_SAs use ESP in UDP");
    }

    /// The peer's NAT-T port changed (its NAT made a new mapping) on an authenticated message:
    /// the installed SAs' encapsulation follows (same SPIs, keys and counters).
    pub(super) fn nat_ports_changed(&mut self, sa: &IkeSa) {
        for c in &sa.children {
            for (direction, dst, spi) in [
                (Direction::In, c.outer_local, c.spi_in),
                (Direction::Out, c.outer_remote, c.spi_out),
            ] {
                if let Some(encap) = encap(sa, direction) {
                    self.kernel_ops
                        .push_back(KernelOp::UpdateSaEncap { dst, spi, encap });
                }
            }
        }
    }

    /// When `sa`'s next keepalive is due (established SAs behind a NAT only).
    pub(super) fn nat_keepalive_due(sa: &IkeSa) -> Option<Instant> {
        if sa.state == State::Established {
            sa.nat.keepalive_at
        } else {
            None
        }
    }

    /// Sends the keepalive when it is due and arms the next one.
    pub(super) fn nat_keepalive(&mut self, sa: &mut IkeSa) {
        let Some(at) = Self::nat_keepalive_due(sa) else {
            return;
        };
        if at > self.now.at {
            return;
        }
        let every = self.cfg.mobility.nat_keepalive;
        if every.is_zero() {
            sa.nat.keepalive_at = None;
            return;
        }
        if sa.local.port() != self.cfg.mobility.nat_port {
            // Never expected (the float comes first); a keepalive on port 500 would reach
            // the peer's IKE socket as garbage.
            warn!(ike = %sa.id(), local = %sa.local, "NAT keepalive not sent: not on the NAT-T port");
        } else {
            self.transmits.push_back(Transmit {
                local: sa.local,
                remote: sa.remote,
                data: NAT_KEEPALIVE.to_vec(),
            });
        }
        sa.nat.keepalive_at = Some(self.now.at + every);
    }
}
