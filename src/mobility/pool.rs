//! Address and prefix pools a home agent hands out from (RFC 4877 4.4 dynamic home addresses,
//! RFC 5026 MIP6_HOME_PREFIX). A pool is named in the global file and referred to by user files;
//! what is taken from it is recorded in the lease table (`leases`).

use std::net::Ipv6Addr;

/// Lifetime of a delegated prefix when the configuration names none (seconds).
pub const DEFAULT_PREFIX_LIFETIME: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolKind {
    /// Home addresses `first..=last`.
    Addresses { first: Ipv6Addr, last: Ipv6Addr },
    /// Prefixes of length `len` carved out of `base/base_len`.
    Prefixes {
        base: Ipv6Addr,
        base_len: u8,
        len: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub kind: PoolKind,
    /// Prefix lifetime sent with MIP6_HOME_PREFIX (seconds).
    pub lifetime: u32,
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl Pool {
    /// The length of what one lease holds: 128 for a home address.
    pub fn item_len(&self) -> u8 {
        match self.kind {
            PoolKind::Addresses { .. } => 128,
            PoolKind::Prefixes { len, .. } => len,
        }
    }

    /// How many items the pool holds (saturating at u128::MAX).
    pub fn size(&self) -> u128 {
        match self.kind {
            PoolKind::Addresses { first, last } => {
                (u128::from(last).saturating_sub(u128::from(first))).saturating_add(1)
            }
            PoolKind::Prefixes { base_len, len, .. } => {
                let bits = u32::from(len.saturating_sub(base_len));
                if bits >= 128 {
                    u128::MAX
                } else {
                    1u128 << bits
                }
            }
        }
    }

    /// The `i`-th item (address, or prefix base).
    pub fn nth(&self, i: u128) -> Option<Ipv6Addr> {
        if i >= self.size() {
            return None;
        }
        match self.kind {
            PoolKind::Addresses { first, .. } => {
                u128::from(first).checked_add(i).map(Ipv6Addr::from)
            }
            PoolKind::Prefixes { base, len, .. } => {
                let step = 128 - u32::from(len);
                let off = if step >= 128 { 0 } else { i << step };
                Some(Ipv6Addr::from(
                    (u128::from(base) & mask(self.base_len())) | off,
                ))
            }
        }
    }

    fn base_len(&self) -> u8 {
        match self.kind {
            PoolKind::Addresses { .. } => 128,
            PoolKind::Prefixes { base_len, .. } => base_len,
        }
    }

    /// `a` (with this pool's item length) is one of the pool's items.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        let v = u128::from(a);
        match self.kind {
            PoolKind::Addresses { first, last } => u128::from(first) <= v && v <= u128::from(last),
            PoolKind::Prefixes {
                base,
                base_len,
                len,
            } => v & mask(base_len) == u128::from(base) & mask(base_len) && v & !mask(len) == 0,
        }
    }

    /// The address range the pool spans (to check for overlaps).
    pub fn span(&self) -> (u128, u128) {
        match self.kind {
            PoolKind::Addresses { first, last } => (u128::from(first), u128::from(last)),
            PoolKind::Prefixes { base, base_len, .. } => {
                let b = u128::from(base) & mask(base_len);
                (b, b | !mask(base_len))
            }
        }
    }
}

/// A prefix `addr/len` spans these addresses.
pub fn prefix_span(addr: Ipv6Addr, len: u8) -> (u128, u128) {
    let b = u128::from(addr) & mask(len);
    (b, b | !mask(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_prefix_pools() {
        let a = Pool {
            name: "a".into(),
            kind: PoolKind::Addresses {
                first: "2001:db8:1::1000".parse().unwrap(),
                last: "2001:db8:1::1002".parse().unwrap(),
            },
            lifetime: 0,
        };
        assert_eq!(a.size(), 3);
        assert_eq!(a.nth(2), Some("2001:db8:1::1002".parse().unwrap()));
        assert_eq!(a.nth(3), None);
        assert!(a.contains("2001:db8:1::1001".parse().unwrap()));
        assert!(!a.contains("2001:db8:1::1003".parse().unwrap()));
        let p = Pool {
            name: "p".into(),
            kind: PoolKind::Prefixes {
                base: "2001:db8:100::".parse().unwrap(),
                base_len: 48,
                len: 64,
            },
            lifetime: 3600,
        };
        assert_eq!(p.size(), 65_536);
        assert_eq!(p.item_len(), 64);
        assert_eq!(p.nth(1), Some("2001:db8:100:1::".parse().unwrap()));
        assert!(p.contains("2001:db8:100:ffff::".parse().unwrap()));
        assert!(
            !p.contains("2001:db8:100:1::1".parse().unwrap()),
            "not a /64 base"
        );
        assert!(!p.contains("2001:db8:101::".parse().unwrap()));
    }
}
