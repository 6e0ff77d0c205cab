//! The home agent's uniqueness policy (strongSwan's `unique`): what a newly authenticated IKE SA
//! does to the older IKE SAs of the same identity, and the identity index that finds them
//! without scanning every SA. Only SAs of the same authenticated identity are ever touched.
//!
//! `replace` (the default) is make-before-break: an older SA is not deleted when the new one
//! authenticates, but once the new one carries every CHILD_SA class the older one had (its
//! payload tunnel too), or [`REPLACE_GRACE`] after it authenticated. A mobile node that
//! re-establishes from a new care-of address without key mobility (`key_mobility = false`, see
//! `migrate`) keeps its traffic flowing through the old tunnel SAs until the new ones exist,
//! instead of losing it for the round trips in between. An older SA for *another* home
//! address of the same user (one IKE SA per home address) is not a duplicate and stays, as
//! does one whose replacement failed before the grace ran out.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::auth::same_identity;
use super::endpoint::{Endpoint, Fate};
use super::sa::{IkeSa, State};
use crate::auth::Identity;
use crate::mobility::{Uniqueness, User};

/// How long an older IKE SA waits at most for its replacement to carry its CHILD_SA classes.
pub const REPLACE_GRACE: Duration = Duration::from_secs(10);

/// Beyond this many SAs per identity, entries of SAs that no longer exist are pruned when
/// another is added (entries normally leave with `destroy`).
const PRUNE_AT: usize = 8;

/// An older IKE SA being replaced.
struct Replacement {
    /// Our SPI of the new IKE SA; None: it is on another shard (see `shard`).
    by: Option<u64>,
    /// The older SA's own expiry before the replacement set one (restored if cancelled).
    prev_expiry: Option<Instant>,
}

/// Identity -> its IKE SAs (our SPIs), and the replacements under way.
#[derive(Default)]
pub(super) struct IdentityIndex {
    by_key: HashMap<Box<str>, Vec<u64>>,
    /// New IKE SAs under `replace` whose older SAs are not chosen yet: that waits until the
    /// new one is established and knows its home address (its first CHILD_SA).
    replacers: HashSet<u64>,
    replaced: HashMap<u64, Replacement>,
}

/// The index key of an identity. Lookups confirm with `same_identity`, so the key only has to
/// put equal identities together: the printed form, case-folded (FQDN and e-mail identities
/// compare without case; a DN prints in one canonical form).
fn key(id: &Identity) -> Box<str> {
    id.to_string().to_ascii_lowercase().into_boxed_str()
}

impl IdentityIndex {
    /// SAs (our SPIs) indexed under `id`'s key, possibly of SAs gone or of another identity
    /// with the same key: callers confirm.
    fn candidates(&self, id: &Identity) -> &[u64] {
        self.by_key.get(&key(id)).map_or(&[], |v| v.as_slice())
    }
}

impl Endpoint {
    /// Records that IKE SA `spi` is authenticated as `identity`.
    pub(super) fn index_identity(&mut self, spi: u64, identity: &Identity) {
        let v = self.identities.by_key.entry(key(identity)).or_default();
        if v.contains(&spi) {
            return;
        }
        if v.len() >= PRUNE_AT {
            // The SA being processed is out of the map for the moment: keep it (`spi` is
            // pushed below and the others are existing SAs).
            let sas = &self.sas;
            v.retain(|s| sas.contains_key(s));
        }
        v.push(spi);
    }

    /// Forgets `sa` (it is being destroyed): its index entry and any replacement it was part
    /// of as the older SA.
    pub(super) fn unindex_identity(&mut self, sa: &IkeSa) {
        let spi = sa.our_spi();
        self.identities.replaced.remove(&spi);
        self.identities.replacers.remove(&spi);
        let Some(peer) = &sa.peer else { return };
        let k = key(peer);
        if let Some(v) = self.identities.by_key.get_mut(&k) {
            v.retain(|&s| s != spi);
            if v.is_empty() {
                self.identities.by_key.remove(&k);
            }
        }
    }

    /// The other IKE SAs (in the map) authenticated as `identity`, in SPI order; `except`: the
    /// SA asking.
    pub(super) fn sas_of_identity(&self, identity: &Identity, except: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .identities
            .candidates(identity)
            .iter()
            .copied()
            .filter(|&k| {
                k != except
                    && self
                        .sas
                        .get(&k)
                        .and_then(|o| o.peer.as_ref())
                        .is_some_and(|p| same_identity(p, identity))
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Applies `user`'s policy (else the configured default) for the new IKE SA `sa` of
    /// `identity`; `initial_contact`: the peer sent INITIAL_CONTACT. Err: refuse the new SA
    /// (AUTHENTICATION_FAILED, as strongSwan answers under `unique = keep`), with the reason.
    pub(super) fn apply_uniqueness(
        &mut self,
        sa: &IkeSa,
        identity: &Identity,
        user: &User,
        initial_contact: bool,
    ) -> Result<(), String> {
        let policy = user.uniqueness.unwrap_or(self.cfg.mobility.uniqueness);
        if initial_contact {
            if policy == Uniqueness::Never {
                info!(ike = %sa.id(), %identity, "INITIAL_CONTACT ignored (uniqueness = never)");
            } else {
                // The peer restarted: its older SAs go without a Delete (RFC 7296 2.4).
                self.initial_contact(sa, identity);
                self.note_identity_claimed(sa.id(), identity, false, None);
            }
        }
        if !matches!(policy, Uniqueness::Keep | Uniqueness::Replace) {
            return Ok(());
        }
        let ours = sa.our_spi();
        let older: Vec<u64> = self
            .sas_of_identity(identity, ours)
            .into_iter()
            .filter(|k| {
                self.sas
                    .get(k)
                    .is_some_and(|o| o.state == State::Established)
            })
            .collect();
        if older.is_empty() && policy == Uniqueness::Keep && self.shard.1 > 1 {
            // Another shard's IKE SA of the identity (its shard holds the identity in the
            // lease table from its authentication until its last SA of it goes).
            let (id, shard) = (identity.to_string(), self.shard.0);
            if self.lease_op(|t| t.held_elsewhere(&id, shard)) {
                warn!(ike = %sa.id(), %identity, user = %user.name,
                      "IKE SA refused: the identity has one already on another shard (uniqueness = keep)");
                return Err(format!(
                    "identity {identity} already has an IKE SA (uniqueness = keep)"
                ));
            }
        }
        if policy == Uniqueness::Replace && (!older.is_empty() || self.shard.1 > 1) {
            // Which older SAs `sa` replaces (here and, told, on other shards) is decided once
            // it knows its home address.
            self.identities.replacers.insert(ours);
            return Ok(());
        }
        if older.is_empty() {
            return Ok(());
        }
        if policy == Uniqueness::Keep {
            let first = self.sas.get(&older[0]).map(|o| o.id());
            warn!(ike = %sa.id(), %identity, user = %user.name, existing = ?first,
                  "IKE SA refused: the identity has one already (uniqueness = keep)");
            return Err(format!(
                "identity {identity} already has IKE SA {} (uniqueness = keep)",
                first.map(|i| i.to_string()).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// `new` was processed: the older SAs it replaces go if it now carries each CHILD_SA class
    /// they had; a replacement for another home address is called off.
    pub(super) fn complete_replacements(&mut self, new: &IkeSa) {
        let ours = new.our_spi();
        if !self.identities.replacers.is_empty() && self.identities.replacers.remove(&ours) {
            self.choose_replaced(new);
        }
        if self.identities.replaced.is_empty() {
            return;
        }
        let mut olds: Vec<u64> = self
            .identities
            .replaced
            .iter()
            .filter(|(_, r)| r.by == Some(ours))
            .map(|(&k, _)| k)
            .collect();
        olds.sort_unstable();
        for id in olds {
            let Some(o) = self.sas.get(&id) else {
                self.identities.replaced.remove(&id);
                continue;
            };
            if other_home_address(o, new) {
                info!(ike = %o.id(), new = %new.id(), old_hoa = ?o.home_address, new_hoa = ?new.home_address,
                      "replacement called off: the new IKE SA is for another home address");
                self.cancel_replacement(id);
                continue;
            }
            let covered = o
                .children
                .iter()
                .filter_map(|c| c.class)
                .all(|class| new.children.iter().any(|c| c.class == Some(class)));
            if !covered {
                continue;
            }
            let Some(o) = self.sas.remove(&id) else {
                continue;
            };
            info!(ike = %o.id(), new = %new.id(), remote = %o.remote,
                  "older IKE SA of the identity replaced (uniqueness = replace): the new one carries its CHILD_SAs; Delete sent");
            // Fire and forget: the old SA and its CHILD_SAs go now, whether or not the peer
            // (maybe another device of the identity) answers.
            self.send_ike_delete_once(&o, o.local, o.remote);
            self.destroy(
                o,
                "replaced by a new IKE SA of the same identity (uniqueness = replace)",
            );
        }
    }

    /// `new` (established under `replace`, its first CHILD_SA done) picks the older
    /// established SAs of its identity for the same home address (or without one known): each
    /// gets [`REPLACE_GRACE`] to live unless `new` carries its CHILD_SA classes sooner.
    fn choose_replaced(&mut self, new: &IkeSa) {
        let Some(identity) = new.peer.clone() else {
            return;
        };
        let ours = new.our_spi();
        self.note_identity_claimed(new.id(), &identity, true, new.home_address);
        let older: Vec<u64> = self
            .sas_of_identity(&identity, ours)
            .into_iter()
            .filter(|k| {
                self.sas.get(k).is_some_and(|o| {
                    o.state == State::Established
                        && !other_home_address(o, new)
                        && !self.identities.replaced.contains_key(k)
                })
            })
            .collect();
        let at = self.now.at + REPLACE_GRACE;
        for id in older {
            let Some(mut o) = self.sas.remove(&id) else {
                continue;
            };
            info!(ike = %o.id(), new = %new.id(), %identity, remote = %o.remote, home_address = ?o.home_address,
                  children = o.children.len(),
                  "older IKE SA of the identity to be replaced (uniqueness = replace): it goes once the new one carries its CHILD_SAs");
            self.identities.replaced.insert(
                id,
                Replacement {
                    by: Some(ours),
                    prev_expiry: o.expires_at,
                },
            );
            o.expires_at = Some(o.expires_at.map_or(at, |p| p.min(at)));
            self.reschedule(&mut o);
            self.sas.insert(id, o);
        }
    }

    /// Another shard's new IKE SA `new` of `identity` (home address `home_address`) replaces
    /// this shard's older established SAs among `candidates` for that home address: each goes
    /// when [`REPLACE_GRACE`] is over. Returns how many.
    pub(super) fn replace_for_other_shard(
        &mut self,
        new: super::IkeId,
        identity: &Identity,
        candidates: Vec<u64>,
        home_address: Option<std::net::Ipv6Addr>,
    ) -> usize {
        let at = self.now.at + REPLACE_GRACE;
        let mut n = 0;
        for id in candidates {
            let due = self.sas.get(&id).is_some_and(|o| {
                o.state == State::Established
                    && !matches!((o.home_address, home_address), (Some(x), Some(y)) if x != y)
                    && !self.identities.replaced.contains_key(&id)
            });
            if !due {
                continue;
            }
            let Some(mut o) = self.sas.remove(&id) else {
                continue;
            };
            info!(ike = %o.id(), %new, %identity, remote = %o.remote, home_address = ?o.home_address,
                  "older IKE SA of the identity to be replaced by one on another shard (uniqueness = replace): it goes when the grace is over");
            self.identities.replaced.insert(
                id,
                Replacement {
                    by: None,
                    prev_expiry: o.expires_at,
                },
            );
            o.expires_at = Some(o.expires_at.map_or(at, |p| p.min(at)));
            self.reschedule(&mut o);
            self.sas.insert(id, o);
            n += 1;
        }
        n
    }

    /// Restores the older SA `id`'s own expiry: it stays.
    fn cancel_replacement(&mut self, id: u64) {
        let Some(r) = self.identities.replaced.remove(&id) else {
            return;
        };
        if let Some(mut o) = self.sas.remove(&id) {
            o.expires_at = r.prev_expiry;
            self.reschedule(&mut o);
            self.sas.insert(id, o);
        }
    }

    /// `sa`'s expiry passed: if it is an older SA being replaced, the grace is over. It goes
    /// (with a Delete) if its replacement still exists for the same home address; otherwise
    /// the replacement is called off and its own expiry is back (None: not ours to decide,
    /// or its own expiry is due too: the caller goes on).
    pub(super) fn replacement_due(&mut self, sa: &mut IkeSa) -> Option<Fate> {
        let r = self.identities.replaced.remove(&sa.our_spi())?;
        sa.expires_at = r.prev_expiry;
        let replaced_by = match r.by {
            // On another shard: it said so, and this shard cannot look.
            None => Some(None),
            Some(by) => self
                .sas
                .get(&by)
                .filter(|n| n.state == State::Established && !other_home_address(sa, n))
                .map(|n| Some(n.id())),
        };
        if let Some(new) = replaced_by {
            info!(ike = %sa.id(), new = ?new, remote = %sa.remote,
                  "older IKE SA of the identity replaced (uniqueness = replace, grace over); Delete sent");
            let (local, remote) = (sa.local, sa.remote);
            self.send_ike_delete_once(sa, local, remote);
            return Some(Fate::Close(
                "replaced by a new IKE SA of the same identity (uniqueness = replace)".into(),
            ));
        }
        info!(ike = %sa.id(), "replacement called off: the new IKE SA is gone or for another home address");
        if sa.expires_at.is_some_and(|t| t <= self.now.at) {
            return None;
        }
        Some(Fate::Keep)
    }
}

/// Both SAs have a home address and they differ: not duplicates.
fn other_home_address(a: &IkeSa, b: &IkeSa) -> bool {
    matches!((a.home_address, b.home_address), (Some(x), Some(y)) if x != y)
}
