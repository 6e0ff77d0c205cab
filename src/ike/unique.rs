//! The home agent's uniqueness policy (strongSwan's `unique`): what a newly authenticated IKE SA
//! does to the older IKE SAs of the same identity. Applied once the peer's AUTH verified and
//! before the new SA's CHILD_SAs and leases exist, so that a replaced SA's SAs leave the kernel
//! before the new ones (same reqids and selectors) arrive, and its lease passes to the new SA.
//! Only SAs of the same authenticated identity are ever touched.

use tracing::{info, warn};

use super::auth::same_identity;
use super::endpoint::Endpoint;
use super::sa::{IkeSa, State};
use crate::auth::Identity;
use crate::mobility::{Uniqueness, User};

impl Endpoint {
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
                self.note_identity_claimed(sa.id(), identity, false);
            }
        }
        if policy == Uniqueness::Replace {
            self.note_identity_claimed(sa.id(), identity, true);
        }
        if !matches!(policy, Uniqueness::Keep | Uniqueness::Replace) {
            return Ok(());
        }
        let ours = sa.our_spi();
        let mut older: Vec<u64> = self
            .sas
            .iter()
            .filter(|(k, o)| {
                **k != ours
                    && o.state == State::Established
                    && o.peer.as_ref().is_some_and(|p| same_identity(p, identity))
            })
            .map(|(&k, _)| k)
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
        if older.is_empty() {
            return Ok(());
        }
        older.sort_unstable();
        if policy == Uniqueness::Keep {
            let first = self.sas.get(&older[0]).map(|o| o.id());
            warn!(ike = %sa.id(), %identity, user = %user.name, existing = ?first,
                  "IKE SA refused: the identity has one already (uniqueness = keep)");
            return Err(format!(
                "identity {identity} already has IKE SA {} (uniqueness = keep)",
                first.map(|i| i.to_string()).unwrap_or_default()
            ));
        }
        for id in older {
            let Some(o) = self.sas.remove(&id) else {
                continue;
            };
            info!(ike = %o.id(), new = %sa.id(), %identity, remote = %o.remote, children = o.children.len(),
                  "older IKE SA of the identity replaced (uniqueness = replace): Delete sent");
            // Fire and forget: the old SA and its CHILD_SAs go now, whether or not the peer
            // (maybe another device of the identity) answers.
            self.send_ike_delete_once(&o, o.local, o.remote);
            self.destroy(
                o,
                "replaced by a new IKE SA of the same identity (uniqueness = replace)",
            );
        }
        Ok(())
    }
}
