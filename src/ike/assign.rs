//! Home agent: what a configuration request (RFC 4877 4.4, RFC 5026) gets. A home address comes
//! from the user's static addresses or its pool, a home prefix from its static prefix or a
//! prefix pool; pool items are leases (`mobility::leases`), unique across users and renewed for
//! the same identity. The CP(CFG_REPLY) attributes are built here too.

use std::net::Ipv6Addr;
use std::sync::Arc;

use tracing::{info, warn};

use super::Event;
use super::endpoint::Endpoint;
use super::sa::IkeSa;
use crate::auth::Identity;
use crate::mobility::{HomePrefix, Lease, LeaseTable, User};
use crate::wire::consts::*;
use crate::wire::{ConfigAttribute, ConfigPayload};

/// What a CP(CFG_REQUEST) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct CpRequest {
    /// INTERNAL_IP6_ADDRESS: None = not asked; Some(None) = any; Some(Some(a)) = proposes `a`.
    pub hoa: Option<Option<Ipv6Addr>>,
    /// MIP6_HOME_PREFIX asked.
    pub prefix: bool,
}

impl CpRequest {
    pub fn parse(cp: Option<&ConfigPayload>) -> Option<CpRequest> {
        let cp = cp.filter(|c| c.cfg_type == CFG_REQUEST)?;
        let mut r = CpRequest::default();
        for at in &cp.attributes {
            match at.attr_type {
                CFG_INTERNAL_IP6_ADDRESS => {
                    let a = at
                        .value
                        .get(..16)
                        .and_then(|b| <[u8; 16]>::try_from(b).ok())
                        .map(Ipv6Addr::from)
                        .filter(|a| !a.is_unspecified());
                    r.hoa = Some(a);
                }
                CFG_MIP6_HOME_PREFIX => r.prefix = true,
                _ => {}
            }
        }
        (r.hoa.is_some() || r.prefix).then_some(r)
    }
}

/// INTERNAL_IP6_ADDRESS value: address and prefix length 128 (RFC 7296 3.15.1).
pub fn hoa_attribute(a: Ipv6Addr) -> ConfigAttribute {
    let mut value = a.octets().to_vec();
    value.push(128);
    ConfigAttribute {
        attr_type: CFG_INTERNAL_IP6_ADDRESS,
        value,
    }
}

/// MIP6_HOME_PREFIX value (RFC 5026 4.2.1): prefix lifetime (u32), prefix (16 bytes), prefix
/// length (u8).
pub fn home_prefix_attribute(prefix: Ipv6Addr, len: u8, lifetime: u32) -> ConfigAttribute {
    let mut value = Vec::with_capacity(21);
    value.extend_from_slice(&lifetime.to_be_bytes());
    value.extend_from_slice(&prefix.octets());
    value.push(len);
    ConfigAttribute {
        attr_type: CFG_MIP6_HOME_PREFIX,
        value,
    }
}

/// Parses a MIP6_HOME_PREFIX reply value: (prefix, length, lifetime).
pub fn parse_home_prefix(value: &[u8]) -> Option<(Ipv6Addr, u8, u32)> {
    if value.len() != 21 {
        return None;
    }
    let lifetime = u32::from_be_bytes(value.get(..4)?.try_into().ok()?);
    let prefix = Ipv6Addr::from(<[u8; 16]>::try_from(value.get(4..20)?).ok()?);
    let len = *value.get(20)?;
    (len <= 128).then_some((prefix, len, lifetime))
}

/// The HA's answer to a CP request.
pub(super) struct CpAnswer {
    pub reply: ConfigPayload,
    /// The MN proposed a home address it does not get (notify USE_ASSIGNED_HoA).
    pub use_assigned: bool,
    pub hoa: Option<Ipv6Addr>,
    /// (prefix, length) delegated.
    pub prefix: Option<(Ipv6Addr, u8)>,
}

impl Endpoint {
    /// Every lease, for listings (`mip6-ikectl leases`).
    pub fn leases(&self) -> Vec<Lease> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner()).list()
    }

    /// Loads stored leases (daemon start): expired ones are dropped, the rest wait for their
    /// identity. Bound leases from a previous run start their grace period now: no IKE SA of
    /// that run survived.
    pub fn restore_leases(&mut self, leases: Vec<Lease>) {
        let mut t = LeaseTable::from_leases(leases, self.now.unix);
        t.release_all(self.now.unix, self.cfg.mobility.lease_grace.as_secs());
        *self.leases.lock().unwrap_or_else(|p| p.into_inner()) = t;
        self.leases_changed = false;
    }

    /// True once after every change of the lease table: the daemon then saves [`leases`].
    pub fn take_leases_changed(&mut self) -> bool {
        std::mem::take(&mut self.leases_changed)
    }

    /// The leases changed since the last call, each as it stands now (or removed): what the
    /// daemon's lease journal writes, O(changes) where [`leases`](Self::leases) copies the table.
    pub fn take_lease_changes(&mut self) -> Vec<crate::mobility::LeaseChange> {
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_changes()
    }

    /// An IKE SA went down: its identity's leases start their grace period once no other IKE SA
    /// of that identity is left.
    pub(super) fn release_leases(&mut self, sa: &IkeSa) {
        let Some(peer) = &sa.peer else { return };
        if !self.is_home_agent() {
            return;
        }
        let id = peer.to_string();
        // Without a bound lease (and, with several shards, without this shard's hold on the
        // identity) there is nothing to release: no need to look at the other SAs.
        let shard = self.shard.0;
        let several = self.shard.1 > 1;
        let wanted = {
            let t = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            t.has_bound(&id) || (several && t.held_by(&id, shard))
        };
        if !wanted {
            return;
        }
        let others = self
            .sas_of_identity(peer, sa.our_spi())
            .iter()
            .filter_map(|k| self.sas.get(k))
            .any(|o| {
                o.peer.as_ref().is_some_and(|p| p.to_string() == id)
                    && o.state != super::sa::State::InitReplied
            });
        if others {
            return;
        }
        // Other shards may still hold an IKE SA of the identity (see `shard`).
        let (now, grace) = (self.now.unix, self.cfg.mobility.lease_grace.as_secs());
        let released = self.lease_op(|t| {
            let last = t.let_go(&id, shard) && t.has_bound(&id);
            if last {
                t.release(&id, now, grace);
            }
            last
        });
        if released {
            info!(identity = %id, grace, "leases released (IKE SA gone)");
        }
    }

    /// The addresses `peer` may use beyond its static ones: its leases (renewal).
    pub(super) fn leased_items(&self, peer: &Identity) -> Vec<(Ipv6Addr, u8)> {
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .items_of(&peer.to_string())
    }

    /// Answers a CP request for `user` (authenticated as `peer`).
    pub(super) fn answer_cp(
        &mut self,
        sa: &IkeSa,
        user: &Arc<User>,
        peer: &Identity,
        req: CpRequest,
    ) -> Result<CpAnswer, u16> {
        let mut attributes = Vec::new();
        let mut ans = CpAnswer {
            reply: ConfigPayload {
                cfg_type: CFG_REPLY,
                attributes: Vec::new(),
            },
            use_assigned: false,
            hoa: None,
            prefix: None,
        };
        if let Some(wanted) = req.hoa {
            let Some(a) = self.assign_hoa(sa, user, peer, wanted) else {
                warn!(ike = %sa.id(), identity = %peer, user = %user.name, "no home address to assign (no static address, pool exhausted)");
                return Err(N_INTERNAL_ADDRESS_FAILURE);
            };
            if let Some(w) = wanted
                && w != a
            {
                info!(ike = %sa.id(), identity = %peer, proposed = %w, assigned = %a, "proposed home address refused: USE_ASSIGNED_HoA");
                ans.use_assigned = true;
                self.stats.use_assigned_hoa += 1;
            }
            attributes.push(hoa_attribute(a));
            ans.hoa = Some(a);
            self.push_event(Event::HoaAssigned {
                ike: sa.id(),
                address: a,
            });
        }
        if req.prefix {
            let assigned =
                super::provider::provided_prefix(sa).or_else(|| self.assign_prefix(user, peer));
            match assigned {
                Some((p, len, lifetime)) => {
                    attributes.push(home_prefix_attribute(p, len, lifetime));
                    ans.prefix = Some((p, len));
                    info!(ike = %sa.id(), identity = %peer, prefix = %p, len, lifetime, "home prefix delegated");
                    self.push_event(Event::PrefixAssigned {
                        ike: sa.id(),
                        prefix: p,
                        prefix_len: len,
                        lifetime,
                    });
                }
                // RFC 7296 3.15: attributes we cannot answer are left out of the reply.
                None => {
                    info!(ike = %sa.id(), identity = %peer, user = %user.name, "home prefix asked for, none to delegate")
                }
            }
        }
        ans.reply.attributes = attributes;
        Ok(ans)
    }

    /// Static address the MN proposed, else a pool lease (the proposal when free), else the
    /// first static address.
    fn assign_hoa(
        &mut self,
        sa: &IkeSa,
        user: &User,
        peer: &Identity,
        wanted: Option<Ipv6Addr>,
    ) -> Option<Ipv6Addr> {
        if let Some(a) = sa.home_address {
            return Some(a);
        }
        // An address provider, when one answered, allocates instead of us.
        if let Some(a) = super::provider::provided_hoa(sa) {
            return Some(a);
        }
        if let Some(w) = wanted
            && user.owns(w)
        {
            return Some(w);
        }
        if wanted.is_none()
            && let Some(&a) = user.home_addresses.first()
        {
            return Some(a);
        }
        if let Some(pool) = &user.pool {
            let db = self.cfg.home_agent.as_ref().map(|h| h.users.clone());
            let reserved = |a: Ipv6Addr| db.as_ref().is_some_and(|d| d.is_static(a));
            let (shard, now) = (self.shard.0, self.now.unix);
            let got = self.lease_op(|t| {
                let id = peer.to_string();
                t.hold(&id, shard);
                t.acquire(&id, &user.name, pool, wanted, reserved, now)
            });
            if got.is_some() {
                return got;
            }
            warn!(pool = %pool.name, "address pool exhausted");
        }
        user.home_addresses.first().copied()
    }

    fn assign_prefix(&mut self, user: &User, peer: &Identity) -> Option<(Ipv6Addr, u8, u32)> {
        match user.home_prefix.as_ref()? {
            HomePrefix::Static {
                prefix,
                len,
                lifetime,
            } => Some((*prefix, *len, *lifetime)),
            HomePrefix::Pool(pool) => {
                let (shard, now) = (self.shard.0, self.now.unix);
                let got = self.lease_op(|t| {
                    let id = peer.to_string();
                    t.hold(&id, shard);
                    t.acquire(&id, &user.name, pool, None, |_| false, now)
                });
                if got.is_none() {
                    warn!(pool = %pool.name, "prefix pool exhausted");
                }
                got.map(|p| (p, pool.item_len(), pool.lifetime))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_prefix_attribute_round_trip() {
        let p: Ipv6Addr = "2001:db8:100:1::".parse().unwrap();
        let at = home_prefix_attribute(p, 64, 3600);
        assert_eq!(at.attr_type, 16);
        assert_eq!(at.value.len(), 21);
        assert_eq!(&at.value[..4], &[0, 0, 0x0e, 0x10]);
        assert_eq!(at.value[20], 64);
        assert_eq!(parse_home_prefix(&at.value), Some((p, 64, 3600)));
        assert_eq!(parse_home_prefix(&at.value[..20]), None);
    }
}
