//! Home agent, after a reload: what the new user entries take away is taken away from the
//! established IKE SAs too. Without this an SA negotiated under the old entry could keep
//! rekeying and creating CHILD_SAs for a home address, class or lease no longer granted.

use std::net::{IpAddr, Ipv6Addr};

use tracing::{info, warn};

use super::endpoint::{Endpoint, Fate};
use super::sa::{Intent, State};
use super::{IkeId, ProvidedAddress};
use crate::mobility::{HomePrefix, User};
use crate::wire::TrafficSelector;

/// The address ranges `user` may hold as home addresses and prefixes: static addresses, its
/// pool, its home prefix (static or from a pool), and what the address provider gave this IKE
/// SA (`provided`; the provider, not the user file, is the authority on those).
fn owned_ranges(user: &User, provided: Option<&ProvidedAddress>) -> Vec<(u128, u128)> {
    let mut v: Vec<(u128, u128)> = user
        .home_addresses
        .iter()
        .map(|a| (u128::from(*a), u128::from(*a)))
        .collect();
    if let Some(p) = &user.pool {
        v.push(p.span());
    }
    match &user.home_prefix {
        Some(HomePrefix::Static { prefix, len, .. }) => {
            let (a, b) = crate::mobility::pool::prefix_span(*prefix, *len);
            v.push((a, b));
        }
        Some(HomePrefix::Pool(p)) => v.push(p.span()),
        None => {}
    }
    if let Some(p) = provided {
        if let Some(a) = p.address {
            v.push((u128::from(a), u128::from(a)));
        }
        if let Some((prefix, len)) = p.prefix {
            v.push(crate::mobility::pool::prefix_span(prefix, len));
        }
    }
    v
}

fn within(ranges: &[(u128, u128)], first: u128, last: u128) -> bool {
    ranges.iter().any(|&(a, b)| a <= first && last <= b)
}

/// Whether `user` (or the address provider, for this IKE SA) still grants the home address
/// `hoa`.
pub(super) fn user_grants_hoa(
    user: &User,
    provided: Option<&ProvidedAddress>,
    hoa: Ipv6Addr,
) -> bool {
    let v = u128::from(hoa);
    within(&owned_ranges(user, provided), v, v)
}

/// Whether `user` still grants a CHILD_SA of `class` whose mobile-node side is `ts_mn`.
fn user_grants_child(
    user: &User,
    provided: Option<&ProvidedAddress>,
    class: Option<crate::mobility::SaClass>,
    ts_mn: &[TrafficSelector],
) -> bool {
    let ranges = owned_ranges(user, provided);
    let owned = ts_mn.iter().all(|t| match (t.start_addr, t.end_addr) {
        (IpAddr::V6(a), IpAddr::V6(b)) => within(&ranges, u128::from(a), u128::from(b)),
        _ => false,
    });
    // A CHILD_SA outside the classes was granted inside one of the user's classes: it stays
    // while its addresses are still the user's and the user still has a class.
    owned && class.map_or(!user.classes.is_empty(), |c| user.classes.contains(&c))
}

impl Endpoint {
    /// Re-authorizes every established IKE SA of a home agent against its (new) user entry:
    /// a removed user or home address deletes the IKE SA, a removed class or address range
    /// deletes the CHILD_SAs that used it (from the kernel now, with a Delete to the peer).
    pub(super) fn reauthorize_after_reload(&mut self) {
        let Some(ha) = &self.cfg.home_agent else {
            return;
        };
        let users = ha.users.clone();
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            let Some(peer) = sa.peer.clone() else {
                self.sas.insert(id, sa);
                continue;
            };
            let user = users.lookup(&peer);
            if let Some(u) = &user {
                sa.user = Some(u.clone());
            }
            if sa.state != State::Established {
                self.sas.insert(id, sa);
                continue;
            }
            let Some(u) = user else {
                info!(ike = %IkeId(id), identity = %peer, "user removed by reload: deleting its IKE SA");
                sa.queue.push_back(Intent::DeleteIke);
                self.finish(sa, Fate::Keep);
                continue;
            };
            if let Some(hoa) = sa.home_address
                && !user_grants_hoa(&u, sa.provided.as_deref(), hoa)
            {
                warn!(ike = %IkeId(id), identity = %peer, user = %u.name, home_address = %hoa,
                      "home address no longer granted after reload: deleting the IKE SA");
                sa.queue.push_back(Intent::DeleteIke);
                self.finish(sa, Fate::Keep);
                continue;
            }
            let revoked: Vec<usize> = (0..sa.children.len())
                .filter(|&i| {
                    let c = &sa.children[i];
                    !user_grants_child(&u, sa.provided.as_deref(), c.class, &c.ts_remote)
                })
                .collect();
            for i in revoked.into_iter().rev() {
                let c = sa.take_child(i);
                warn!(ike = %IkeId(id), identity = %peer, user = %u.name, class = ?c.class,
                      spi_in = format_args!("{:08x}", c.spi_in), "CHILD_SA no longer granted after reload: deleting it");
                self.remove_child_kernel(&sa, &c, "no longer granted after reload");
                // The Delete tells the peer; the SA is gone here already, so it cannot be
                // rekeyed or used in the meantime.
                sa.queue.push_back(Intent::DeleteChild(c.spi_in));
            }
            self.finish(sa, Fate::Keep);
        }
    }
}
