//! Following the peer to the NAT-T port (RFC 7296 2.23). An initiator may move its IKE SA to
//! UDP 4500 at any time, NAT or not; strongSwan does it in IKE_AUTH whenever MOBIKE is
//! configured (its default), and then keeps talking from and to 4500. As a responder strongSwan
//! itself only follows the ports of the first authenticated message after IKE_SA_INIT and never
//! floats on its own, so a side that stays on 500 keeps it on 500 (our mobile node does when
//! there is no NAT: no NAT means no reason to float; with one it floats, see `nat`).
//!
//! The rule here: a new message (the next request, or the answer to our pending one; not a
//! retransmission, which may be a replay) that passed its integrity check, from the peer's port 4500 to a
//! local port other than the IKE SA's (the datagram arrived on our NAT-T socket), with both
//! addresses unchanged, moves the IKE SA's ports there for good; every later message of this
//! IKE SA, in either direction, goes from our NAT-T port to the peer's 4500 (the daemon adds the
//! non-ESP marker on that socket). Nothing else moves it: unauthenticated messages never do, a
//! new address never does (movement is mip6d's MIGRATE business), and there is no way back to
//! 500, so a replayed old message cannot undo the float.
//!
//! When NAT detection found a NAT (`nat`), the peer's port is the NAT's mapping of its 4500, not
//! 4500 itself, and it may change: then any new authenticated message that arrived on our NAT-T
//! port moves the IKE SA to its ports (same addresses), and the CHILD_SAs' UDP encapsulation
//! follows. A forged or replayed datagram from another port moves nothing.

use std::net::SocketAddr;

use tracing::info;

use super::endpoint::Endpoint;
use super::sa::IkeSa;

/// The NAT-T port (RFC 3948, RFC 7296 2.23).
pub const NAT_T_PORT: u16 = 4500;

impl Endpoint {
    /// Called only after `sa` verified a new message that came from `remote` to `local`.
    pub(super) fn follow_peer_port(
        &mut self,
        sa: &mut IkeSa,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        if remote.ip() != sa.remote.ip() || local.ip() != sa.local.ip() {
            return;
        }
        if sa.nat.detected() {
            return self.follow_nat_mapping(sa, local, remote);
        }
        if remote.port() != NAT_T_PORT
            || sa.remote.port() == NAT_T_PORT
            || local.port() == sa.local.port()
        {
            return;
        }
        info!(ike = %sa.id(), from = %format_args!("{} <-> {}", sa.local, sa.remote),
              to = %format_args!("{local} <-> {remote}"), "peer moved the IKE SA to the NAT-T port; following");
        self.move_ports(sa, local, remote);
    }

    /// With a NAT on the path (RFC 7296 2.23) the peer's port is whatever its NAT maps 4500
    /// to, and the mapping may change: an authenticated new message that arrived on our NAT-T
    /// port moves the IKE SA to its ports, and the CHILD_SAs' UDP encapsulation follows.
    /// Messages to our IKE port (a replayed IKE_SA_INIT-era port) never move it back.
    fn follow_nat_mapping(&mut self, sa: &mut IkeSa, local: SocketAddr, remote: SocketAddr) {
        if local.port() != self.cfg.mobility.nat_port || (sa.local, sa.remote) == (local, remote) {
            return;
        }
        info!(ike = %sa.id(), from = %format_args!("{} <-> {}", sa.local, sa.remote),
              to = %format_args!("{local} <-> {remote}"), "NAT: the peer's port changed; following");
        self.move_ports(sa, local, remote);
        self.nat_ports_changed(sa);
    }

    fn move_ports(&mut self, sa: &mut IkeSa, local: SocketAddr, remote: SocketAddr) {
        // The responder's half-open index is keyed by the peer's address: keep it findable so
        // that the SA still counts (and is forgotten) as half-open.
        let old_key = (sa.remote, sa.spi_i);
        if !sa.initiator && self.half_open.get(&old_key) == Some(&sa.spi_r) {
            self.half_open.remove(&old_key);
            self.half_open.insert((remote, sa.spi_i), sa.spi_r);
        }
        sa.local = local;
        sa.remote = remote;
    }
}
