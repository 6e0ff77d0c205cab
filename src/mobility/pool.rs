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

/// Interface identifiers (the low 64 bits) never given as a home address, on the assumption
/// that the home link is a /64 as RFC 4291 2.5.1 wants: the Subnet-Router anycast identifier
/// (all zeros, RFC 4291 2.6.1) and the IANA "Reserved IPv6 Interface Identifiers" (RFC 5453):
/// the IANA Ethernet block 0200:5EFF:FE00:0000-0200:5EFF:FEFF:FFFF (with the Proxy Mobile IPv6
/// identifier, RFC 6543) and the reserved subnet anycast identifiers
/// FDFF:FFFF:FFFF:FF80-FDFF:FFFF:FFFF:FFFF (RFC 2526).
pub const RESERVED_IIDS: [(u64, u64); 3] = [
    (0, 0),
    (0x0200_5eff_fe00_0000, 0x0200_5eff_feff_ffff),
    (0xfdff_ffff_ffff_ff80, 0xfdff_ffff_ffff_ffff),
];

/// `a`'s interface identifier is one of [`RESERVED_IIDS`].
pub fn reserved_iid(a: Ipv6Addr) -> bool {
    let iid = u128::from(a) as u64;
    RESERVED_IIDS.iter().any(|(x, y)| (*x..=*y).contains(&iid))
}

/// How many addresses `first..=last` holds whose interface identifier is reserved (saturating).
fn reserved_in(first: u128, last: u128) -> u128 {
    // Addresses y <= x with a reserved IID: whole /64s below x's, plus x's own /64 up to x.
    let upto = |x: u128| -> u128 {
        RESERVED_IIDS.iter().fold(0u128, |acc, &(lo, hi)| {
            let per = u128::from(hi - lo) + 1;
            let iid = x as u64;
            let own = if iid < lo {
                0
            } else {
                u128::from(iid.min(hi) - lo) + 1
            };
            acc.saturating_add((x >> 64).saturating_mul(per).saturating_add(own))
        })
    };
    let below = if first == 0 { 0 } else { upto(first - 1) };
    upto(last).saturating_sub(below)
}

impl Pool {
    /// `a` lies anywhere in the addresses the pool spans (an address of an address pool, or
    /// inside a prefix a prefix pool may delegate).
    pub fn covers(&self, a: Ipv6Addr) -> bool {
        let (x, y) = self.span();
        (x..=y).contains(&u128::from(a))
    }

    /// An item of an address pool that is never handed out: its interface identifier is
    /// reserved ([`RESERVED_IIDS`]). Delegated prefixes have no such items.
    pub fn is_reserved(&self, a: Ipv6Addr) -> bool {
        matches!(self.kind, PoolKind::Addresses { .. }) && reserved_iid(a)
    }

    /// How many of the pool's addresses are reserved and skipped (0 for prefix pools).
    pub fn reserved_count(&self) -> u128 {
        match self.kind {
            PoolKind::Addresses { first, last } => reserved_in(u128::from(first), u128::from(last)),
            PoolKind::Prefixes { .. } => 0,
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
        assert_eq!(p.reserved_count(), 0);
        assert!(!p.is_reserved("2001:db8:100::".parse().unwrap()));
    }

    #[test]
    fn reserved_interface_identifiers() {
        let pool = |first: &str, last: &str| Pool {
            name: "a".into(),
            kind: PoolKind::Addresses {
                first: first.parse().unwrap(),
                last: last.parse().unwrap(),
            },
            lifetime: 0,
        };
        let p = pool("2001:db8:1::", "2001:db8:1:0:ffff:ffff:ffff:ffff");
        for r in [
            "2001:db8:1::",
            "2001:db8:1:0:200:5eff:fe00:5213",
            "2001:db8:1:0:fdff:ffff:ffff:ff80",
            "2001:db8:1:0:fdff:ffff:ffff:ffff",
        ] {
            assert!(p.is_reserved(r.parse().unwrap()), "{r}");
        }
        for ok in ["2001:db8:1::1", "2001:db8:1:0:fdff:ffff:ffff:ff7f"] {
            assert!(!p.is_reserved(ok.parse().unwrap()), "{ok}");
        }
        // One /64: the anycast address, the 2^24 Ethernet-block identifiers and 128 more.
        assert_eq!(p.reserved_count(), 1 + (1 << 24) + 128);
        assert_eq!(pool("2001:db8:1::1", "2001:db8:1::ff").reserved_count(), 0);
        assert_eq!(pool("2001:db8:1::", "2001:db8:1::ff").reserved_count(), 1);
        // Two /64s.
        assert_eq!(
            pool("2001:db8:1::", "2001:db8:1:1:ffff:ffff:ffff:ffff").reserved_count(),
            2 * (1 + (1 << 24) + 128)
        );
        // Every /64 of the address space.
        assert_eq!(
            pool("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").reserved_count(),
            (1u128 << 64) * (1 + (1 << 24) + 128)
        );
    }
}
