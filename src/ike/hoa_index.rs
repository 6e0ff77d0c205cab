//! Home address -> IKE SAs. A kernel MIGRATE names the mobile node only by the home address in
//! its selector (see `migrate`); a home agent with 100,000 IKE SAs must not look at each of them
//! for every MIGRATE. The index is ordered, so a selector that covers a prefix finds the SAs
//! whose home address lies inside it with one range walk.
//!
//! It is a hint, never the truth: the Endpoint adds an entry whenever an SA with a home address
//! goes (back) into its table and removes it when the SA is destroyed, and lookups check every
//! candidate against the SA itself, dropping entries that no longer hold (an SA gone some other
//! way, a home address that changed). A missing entry cannot happen while every SA reaches the
//! table through `Endpoint::finish`.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

#[derive(Default)]
pub(super) struct HoaIndex {
    /// (home address, our IKE SPI): ordered by address, so prefixes are ranges.
    entries: BTreeSet<(Ipv6Addr, u64)>,
}

impl HoaIndex {
    pub fn insert(&mut self, hoa: Ipv6Addr, spi: u64) {
        self.entries.insert((hoa, spi));
    }

    pub fn remove(&mut self, hoa: Ipv6Addr, spi: u64) {
        self.entries.remove(&(hoa, spi));
    }

    /// Entries whose home address is in `first..=last`.
    pub fn within(&self, first: Ipv6Addr, last: Ipv6Addr) -> Vec<(Ipv6Addr, u64)> {
        if first > last {
            return Vec::new();
        }
        self.entries
            .range((first, 0)..=(last, u64::MAX))
            .copied()
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The addresses `addr/prefix` covers, as a range; None for `::/0` and non-IPv6 sides (they name
/// no home address, see `migrate::covers`).
pub(super) fn prefix_range(addr: std::net::IpAddr, prefix: u8) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let std::net::IpAddr::V6(a) = addr else {
        return None;
    };
    if !(1..=128).contains(&prefix) {
        return None;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    let first = u128::from(a) & mask;
    Some((Ipv6Addr::from(first), Ipv6Addr::from(first | !mask)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_range_of_entries() {
        let mut ix = HoaIndex::default();
        let a: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::200".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
        ix.insert(a, 7);
        ix.insert(a, 9);
        ix.insert(b, 8);
        ix.insert(c, 1);
        assert_eq!(ix.within(a, a), vec![(a, 7), (a, 9)]);
        let (f, l) = prefix_range("2001:db8:1::".parse().unwrap(), 64).unwrap();
        assert_eq!(ix.within(f, l), vec![(a, 7), (a, 9), (b, 8)]);
        let (f, l) = prefix_range(c.into(), 128).unwrap();
        assert_eq!((f, l), (c, c));
        assert_eq!(ix.within(f, l), vec![(c, 1)]);
        assert_eq!(prefix_range("::".parse().unwrap(), 0), None);
        assert_eq!(prefix_range("10.0.0.1".parse().unwrap(), 32), None);
        ix.remove(a, 7);
        ix.insert(b, 8);
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.within(a, b), vec![(a, 9), (b, 8)]);
    }
}
