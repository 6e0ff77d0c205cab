//! Engine shards: a daemon may run several Endpoints, one per thread, each owning disjoint IKE
//! SAs. Our IKE SPIs carry the shard (top byte), so the daemon routes a datagram by SPI
//! without a table; an IKE_SA_INIT request (no SPI of ours yet) goes where the daemon's hash of
//! (peer address, SPIi) says, which is where its retransmissions and its COOKIE retry go too.
//!
//! What must stay consistent across shards is shared or told: the lease table is one table
//! behind a mutex (one home address is never leased twice, and an identity finds its lease
//! whichever shard it lands on); an identity that authenticates with INITIAL_CONTACT (or under
//! `uniqueness = replace`) is told to the other shards ([`ShardNote`]), which drop its older
//! SAs ([`Endpoint::drop_identity`]). With one shard (the default) nothing here changes what
//! the engine does.

use std::sync::{Arc, Mutex};

use tracing::info;

use super::endpoint::Endpoint;
use super::{IkeId, Now};
use crate::auth::Identity;
use crate::mobility::LeaseTable;

/// Shards at most (a lease holder is one bit of a u64).
pub const MAX_SHARDS: usize = 64;

/// The lease table, shared by every shard of a daemon. Held only for single table operations,
/// never while another lock is taken.
pub type SharedLeases = Arc<Mutex<LeaseTable>>;

/// What a shard must tell the other shards (the daemon carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardNote {
    /// `identity` authenticated in `ike` on this shard and its older IKE SAs must go: without a
    /// Delete (INITIAL_CONTACT) or with one (`replace`, uniqueness = replace). The daemon hands
    /// it to every other shard before it installs the new SA's kernel state, so that the old
    /// SAs leave the kernel first, as they do within one shard.
    IdentityClaimed {
        ike: IkeId,
        identity: Identity,
        replace: bool,
        /// `replace`: the new SA's home address (its older SAs for another one stay).
        home_address: Option<std::net::Ipv6Addr>,
    },
}

/// The shard whose IKE SPIs carry `spi`'s top byte; 0 for a byte out of range (a forged SPI:
/// shard 0 drops it as unknown).
pub fn shard_of_spi(spi: u64, count: usize) -> usize {
    let s = (spi >> 56) as usize;
    if s < count { s } else { 0 }
}

impl Endpoint {
    /// Makes this Endpoint shard `index` of `count` (before any SA exists): its IKE SPIs carry
    /// `index` in their top byte, its automatic reqids and OCSP query numbers are its own
    /// share. `count` 1 (the default) changes nothing.
    pub fn set_shard(&mut self, index: usize, count: usize) {
        let count = count.clamp(1, MAX_SHARDS);
        self.shard = (index.min(count - 1) as u8, count as u8);
        self.set_ocsp_query_base((self.shard.0 as u64) << 56);
    }

    /// (index, count) of this shard.
    pub fn shard(&self) -> (usize, usize) {
        (usize::from(self.shard.0), usize::from(self.shard.1))
    }

    /// The lease table, to share with the other shards ([`Endpoint::share_leases`]).
    pub fn lease_table(&self) -> SharedLeases {
        self.leases.clone()
    }

    /// Uses `table` (another shard's) as the lease table.
    pub fn share_leases(&mut self, table: SharedLeases) {
        self.leases = table;
    }

    /// The per-source IKE_SA_INIT limits, to share with the other shards.
    pub fn source_limits(&self) -> super::limits::SharedSources {
        self.sources.clone()
    }

    /// Uses `limits` (another shard's) as the per-source limits.
    pub fn share_source_limits(&mut self, limits: super::limits::SharedSources) {
        self.sources = limits;
    }

    /// The per-source limits, locked for one operation.
    pub(super) fn sources(&self) -> std::sync::MutexGuard<'_, super::limits::SourceLimits> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One operation on the lease table; a change it makes is this shard's to report
    /// ([`Endpoint::take_leases_changed`]), so that the daemon holds this shard's datagrams
    /// for the write, whichever shard's flush finds the change first.
    pub(super) fn lease_op<R>(&mut self, f: impl FnOnce(&mut LeaseTable) -> R) -> R {
        let mut t = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut t);
        if t.take_changed() {
            self.leases_changed = true;
        }
        r
    }

    /// The next note for the other shards (always none with one shard).
    pub fn poll_shard_note(&mut self) -> Option<ShardNote> {
        self.shard_notes.pop_front()
    }

    pub(super) fn note_identity_claimed(
        &mut self,
        ike: IkeId,
        identity: &Identity,
        replace: bool,
        home_address: Option<std::net::Ipv6Addr>,
    ) {
        if self.shard.1 > 1 {
            self.shard_notes.push_back(ShardNote::IdentityClaimed {
                ike,
                identity: identity.clone(),
                replace,
                home_address,
            });
        }
    }

    /// Another shard's IKE SA `new` authenticated `identity` and claimed it: its SAs here go,
    /// as [`ShardNote::IdentityClaimed`] says. INITIAL_CONTACT: every SA of the identity, now,
    /// without a Delete. `replace`: the established ones for the same home address (or with
    /// none known) are replaced as within one shard, make before break, except that this shard
    /// cannot see the new SA's CHILD_SAs: they go with a Delete when the grace
    /// ([`super::unique::REPLACE_GRACE`]) is over. Found through the identity index, not a
    /// scan. Returns how many went or are to go.
    pub fn drop_identity(
        &mut self,
        now: Now,
        new: IkeId,
        identity: &Identity,
        replace: bool,
        home_address: Option<std::net::Ipv6Addr>,
    ) -> usize {
        self.now = now;
        // Our SPIs are never 0: nothing to except.
        let stale = self.sas_of_identity(identity, 0);
        if replace {
            return self.replace_for_other_shard(new, identity, stale, home_address);
        }
        let mut n = 0;
        for id in &stale {
            let Some(o) = self.sas.remove(id) else {
                continue;
            };
            info!(ike = %o.id(), %new, %identity, remote = %o.remote, children = o.children.len(),
                  "INITIAL_CONTACT on another shard: the peer restarted; its older IKE SA goes");
            self.destroy(o, "INITIAL_CONTACT from the same identity");
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spi_names_its_shard() {
        assert_eq!(shard_of_spi(0x0123_4567_89ab_cdef, 1), 0);
        assert_eq!(shard_of_spi(0x0123_4567_89ab_cdef, 2), 1);
        assert_eq!(shard_of_spi(0x0023_4567_89ab_cdef, 2), 0);
        assert_eq!(shard_of_spi(0x0323_4567_89ab_cdef, 4), 3);
        // A top byte no shard has: shard 0, which drops the message as unknown.
        assert_eq!(shard_of_spi(0x0423_4567_89ab_cdef, 4), 0);
        assert_eq!(shard_of_spi(u64::MAX, 64), 0);
    }
}
