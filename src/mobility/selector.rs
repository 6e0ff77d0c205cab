//! Traffic-selector arithmetic (RFC 7296 2.9) and the conversion between IKEv2 selectors and
//! kernel selectors, including the one place where MH / ICMPv6 types change encoding:
//! IKEv2 puts the type in the high byte of the port range, mip6d's XFRM policies put it in
//! `sport` as a plain value with mask 0xffff.

use std::net::IpAddr;

use crate::kernel::Selector;
use crate::wire::TrafficSelector;
use crate::wire::consts::{IPPROTO_ICMPV6, IPPROTO_MH, TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE};

fn addr_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn same_family(a: &TrafficSelector, b: &TrafficSelector) -> bool {
    a.ts_type == b.ts_type
}

/// The intersection of two selectors, if not empty. Protocol 0 means any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    if !same_family(a, b) {
        return None;
    }
    let proto = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    if start_port > end_port {
        return None;
    }
    let (sa, ea) = (addr_u128(a.start_addr), addr_u128(a.end_addr));
    let (sb, eb) = (addr_u128(b.start_addr), addr_u128(b.end_addr));
    let start = if sa >= sb { a.start_addr } else { b.start_addr };
    let end_addr = if ea <= eb { a.end_addr } else { b.end_addr };
    if sa.max(sb) > ea.min(eb) {
        return None;
    }
    Some(TrafficSelector {
        ts_type: a.ts_type,
        ip_protocol: proto,
        start_port,
        end_port,
        start_addr: start,
        end_addr,
    })
}

/// `inner` lies entirely within `outer`.
pub fn contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    intersect(outer, inner).as_ref() == Some(inner)
}

/// Narrowing as a responder (RFC 7296 2.9): the parts of `requested` that `allowed` permits, in
/// the order of `requested` (its first selector may describe the packet that triggered the
/// request), without duplicates.
pub fn narrow(requested: &[TrafficSelector], allowed: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for r in requested {
        for a in allowed {
            if let Some(i) = intersect(r, a)
                && !out.contains(&i)
            {
                out.push(i);
            }
        }
    }
    out
}

/// Every selector of `inner` is contained in some selector of `outer` (the initiator's check of
/// what the responder returned).
pub fn all_within(inner: &[TrafficSelector], outer: &[TrafficSelector]) -> bool {
    !inner.is_empty() && inner.iter().all(|i| outer.iter().any(|o| contains(o, i)))
}

/// The addresses covered by a selector when it is a single address.
pub fn single_address(ts: &TrafficSelector) -> Option<IpAddr> {
    (ts.start_addr == ts.end_addr).then_some(ts.start_addr)
}

/// IKEv2 port range for one MH or ICMPv6 type (type in the high byte, any code / low byte).
pub fn type_to_ports(t: u8) -> (u16, u16) {
    let hi = u16::from(t) << 8;
    (hi, hi | 0xff)
}

/// The MH / ICMPv6 type a port range stands for, when it stands for exactly one.
pub fn ports_to_type(start: u16, end: u16) -> Option<u8> {
    let [hs, ls] = start.to_be_bytes();
    let [he, le] = end.to_be_bytes();
    (hs == he && ls == 0 && le == 0xff).then_some(hs)
}

/// An MH or ICMPv6 type selector in one of its two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypePorts {
    /// IKEv2 traffic selector port range: the type in the high byte, the code (any) in the
    /// low byte (RFC 7296 3.13.1, RFC 4877); (0, 0xffff) is any.
    Ike { start: u16, end: u16 },
    /// XFRM selector `sport` (value, mask) as mip6d writes it: the plain type in host order,
    /// mask 0xffff; mask 0 is any.
    Kernel { value: u16, mask: u16 },
}

/// The one conversion between the two encodings of an MH / ICMPv6 type, each way: `Ike` in
/// gives `Kernel` out and `Kernel` in gives `Ike` out. "Any" maps to "any"; an IKEv2 range that
/// is not exactly one type cannot be written as a kernel selector and widens to any (the
/// CHILD_SA's traffic selectors still bound what the peer agreed to).
pub fn convert_type_ports(p: TypePorts) -> TypePorts {
    match p {
        TypePorts::Ike { start, end } => match ports_to_type(start, end) {
            Some(t) => TypePorts::Kernel {
                value: u16::from(t),
                mask: 0xffff,
            },
            None => TypePorts::Kernel { value: 0, mask: 0 },
        },
        TypePorts::Kernel { mask: 0, .. } => TypePorts::Ike {
            start: 0,
            end: 0xffff,
        },
        // Types are 8 bits; mip6d writes them unshifted, so the low byte is the type.
        TypePorts::Kernel { value, .. } => {
            let (start, end) = type_to_ports(value as u8);
            TypePorts::Ike { start, end }
        }
    }
}

/// The kernel's (value, mask) for one side's ports, given the protocol. For MH and ICMPv6 the
/// type goes to `sport` as mip6d writes it; the other side is then any. None when the kernel
/// cannot express the range exactly (a wider selector would let in traffic never negotiated).
fn kernel_ports(proto: u8, start: u16, end: u16) -> Option<(u16, u16)> {
    if start == 0 && end == 0xffff {
        return Some((0, 0));
    }
    if proto == IPPROTO_MH || proto == IPPROTO_ICMPV6 {
        return ports_to_type(start, end).map(|t| (u16::from(t), 0xffff));
    }
    // An aligned power-of-two block of ports is a value and a mask.
    let size = u32::from(end) + 1 - u32::from(start);
    (start <= end && size.is_power_of_two() && u32::from(start) % size == 0)
        .then(|| (start, !((size - 1) as u16)))
}

/// The largest aligned power-of-two block [start, start + 2^k - 1] inside [start, end] of a
/// `bits`-bit space: what a prefix (or value/mask) can express of a range, from its start.
fn block_from(start: u128, end: u128, bits: u32) -> u128 {
    debug_assert!(start <= end);
    // Alignment of start (a start of 0 is aligned to the whole space).
    let align = if start == 0 {
        bits
    } else {
        start.trailing_zeros().min(bits)
    };
    let mut k = align;
    while k > 0 {
        let size_m1 = if k >= 128 {
            u128::MAX
        } else {
            (1u128 << k) - 1
        };
        if start.checked_add(size_m1).is_some_and(|last| last <= end) {
            return start + size_m1;
        }
        k -= 1;
    }
    start
}

/// The part of `ts` the kernel can express exactly, from its start (RFC 7296 2.9 lets a
/// responder narrow to any subset): the address range cut to the largest prefix beginning at
/// its first address, a port range to the largest aligned block, an MH / ICMPv6 range of
/// whole types to at most `MAX_SPLIT_TYPES` types. None when nothing of it can be expressed
/// (an MH / ICMPv6 range with partial codes).
pub fn kernel_expressible(ts: &TrafficSelector) -> Option<TrafficSelector> {
    let mut out = ts.clone();
    let (s, e) = (addr_u128(ts.start_addr), addr_u128(ts.end_addr));
    if s > e || ts.start_addr.is_ipv4() != ts.end_addr.is_ipv4() || ts.start_port > ts.end_port {
        return None;
    }
    let bits = if ts.start_addr.is_ipv4() { 32 } else { 128 };
    let last = block_from(s, e, bits);
    out.end_addr = match ts.start_addr {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(last as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(last)),
    };
    let full = ts.start_port == 0 && ts.end_port == 0xffff;
    if full {
        return Some(out);
    }
    if ts.ip_protocol == IPPROTO_MH || ts.ip_protocol == IPPROTO_ICMPV6 {
        let [tlo, clo] = ts.start_port.to_be_bytes();
        let [thi, chi] = ts.end_port.to_be_bytes();
        if clo != 0 || chi != 0xff {
            return None;
        }
        let thi = thi.min(tlo.saturating_add((MAX_SPLIT_TYPES - 1) as u8));
        out.end_port = u16::from_be_bytes([thi, 0xff]);
        return Some(out);
    }
    let last = block_from(u128::from(ts.start_port), u128::from(ts.end_port), 16);
    out.end_port = last as u16;
    Some(out)
}

/// `kernel_expressible` for a list, without duplicates (empty when nothing is left).
pub fn narrow_to_kernel(list: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for t in list.iter().filter_map(kernel_expressible) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Converts an mip6d/kernel (value, mask) on an MH or ICMPv6 selector back to an IKEv2 port range.
pub fn kernel_type_to_ports(proto: u8, value: u16, mask: u16) -> (u16, u16) {
    if mask == 0 {
        return (0, 0xffff);
    }
    if proto == IPPROTO_MH || proto == IPPROTO_ICMPV6 {
        return match convert_type_ports(TypePorts::Kernel { value, mask }) {
            TypePorts::Ike { start, end } => (start, end),
            TypePorts::Kernel { .. } => (0, 0xffff),
        };
    }
    (value, value)
}

/// Prefix length when an address range is exactly one prefix.
fn range_prefix(start: IpAddr, end: IpAddr) -> Option<u8> {
    let bits: u32 = if start.is_ipv4() { 32 } else { 128 };
    let (s, e) = (addr_u128(start), addr_u128(end));
    let hostmask = s ^ e;
    if s > e || (hostmask & hostmask.wrapping_add(1)) != 0 || s & hostmask != 0 {
        return None;
    }
    Some((bits - (128 - hostmask.leading_zeros())) as u8)
}

/// A kernel selector for traffic from `src` to `dst` (one TS of each side). None when the
/// address ranges are not prefixes (the kernel cannot express arbitrary ranges).
pub fn to_kernel(src: &TrafficSelector, dst: &TrafficSelector) -> Option<Selector> {
    let proto = if src.ip_protocol != 0 {
        src.ip_protocol
    } else {
        dst.ip_protocol
    };
    let mut sport = kernel_ports(proto, src.start_port, src.end_port)?;
    let mut dport = kernel_ports(proto, dst.start_port, dst.end_port)?;
    if (proto == IPPROTO_MH || proto == IPPROTO_ICMPV6) && sport.1 == 0 {
        // The type is carried once, in sport, whichever side of the TS pair named it.
        sport = dport;
        dport = (0, 0);
    }
    if proto == IPPROTO_MH || proto == IPPROTO_ICMPV6 {
        dport = (0, 0);
    }
    Some(Selector {
        src: src.start_addr,
        src_prefix: range_prefix(src.start_addr, src.end_addr)?,
        dst: dst.start_addr,
        dst_prefix: range_prefix(dst.start_addr, dst.end_addr)?,
        proto,
        sport,
        dport,
    })
}

/// Kernel selectors for traffic from `src` to `dst` (the TS lists of a CHILD_SA, RFC 7296 2.9:
/// every pair), without duplicates. A pair is skipped when its two sides name different
/// protocols or disjoint MH / ICMPv6 types (no packet fits it): hoti-hot's [HoTI, HoT] x
/// [HoTI, HoT] gives two selectors, type 1 and type 3. Err when a pair cannot be expressed
/// exactly: nothing wider than what was negotiated is ever installed (see
/// `narrow_to_kernel`, which negotiation applies first), and nothing is dropped silently either.
pub fn to_kernel_all(
    src: &[TrafficSelector],
    dst: &[TrafficSelector],
) -> Result<Vec<Selector>, String> {
    let mut out: Vec<Selector> = Vec::new();
    for s in src {
        for d in dst {
            let (ps, pd) = (s.ip_protocol, d.ip_protocol);
            if ps != 0 && pd != 0 && ps != pd {
                continue;
            }
            let proto = if ps != 0 { ps } else { pd };
            if (proto == IPPROTO_MH || proto == IPPROTO_ICMPV6)
                && s.start_port.max(d.start_port) > s.end_port.min(d.end_port)
            {
                continue;
            }
            for (s, d) in split_types(proto, s, d) {
                let k = to_kernel(&s, &d).ok_or_else(|| {
                    format!(
                        "no exact kernel selector for {}-{} -> {}-{}",
                        s.start_addr, s.end_addr, d.start_addr, d.end_addr
                    )
                })?;
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    Ok(out)
}

/// Most MH / ICMPv6 types one pair is split into; a wider range stays one "any type" selector.
const MAX_SPLIT_TYPES: u16 = 8;

/// A pair whose common MH / ICMPv6 range covers a few whole types (mps-mpa's 146-147) becomes
/// one pair per type: a kernel selector holds one type or any, and "any ICMPv6" would send
/// pings and errors between HoA and HA into this SA too.
fn split_types(
    proto: u8,
    s: &TrafficSelector,
    d: &TrafficSelector,
) -> Vec<(TrafficSelector, TrafficSelector)> {
    let (lo, hi) = (s.start_port.max(d.start_port), s.end_port.min(d.end_port));
    let [tlo, clo] = lo.to_be_bytes();
    let [thi, chi] = hi.to_be_bytes();
    let whole = clo == 0 && chi == 0xff && tlo < thi;
    if !(proto == IPPROTO_MH || proto == IPPROTO_ICMPV6)
        || !whole
        || u16::from(thi - tlo) >= MAX_SPLIT_TYPES
    {
        return vec![(s.clone(), d.clone())];
    }
    (tlo..=thi)
        .map(|t| {
            let (start, end) = type_to_ports(t);
            let narrow = |ts: &TrafficSelector| TrafficSelector {
                start_port: start,
                end_port: end,
                ..ts.clone()
            };
            (narrow(s), narrow(d))
        })
        .collect()
}

/// An IKEv2 selector covering one side of a kernel selector (for ACQUIRE-triggered requests).
pub fn from_kernel_side(addr: IpAddr, prefix: u8, proto: u8, port: (u16, u16)) -> TrafficSelector {
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let host_bits = bits.saturating_sub(u32::from(prefix));
    let mask: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = addr_u128(addr) & !mask;
    let end = start | mask;
    let (start_addr, end_addr, ts_type) = match addr {
        IpAddr::V4(_) => (
            IpAddr::V4((start as u32).into()),
            IpAddr::V4((end as u32).into()),
            TS_IPV4_ADDR_RANGE,
        ),
        IpAddr::V6(_) => (
            IpAddr::V6(start.into()),
            IpAddr::V6(end.into()),
            TS_IPV6_ADDR_RANGE,
        ),
    };
    let (start_port, end_port) = kernel_type_to_ports(proto, port.0, port.1);
    TrafficSelector {
        ts_type,
        ip_protocol: proto,
        start_port,
        end_port,
        start_addr,
        end_addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn mh_type_converts_both_ways() {
        // BU (5) as IKEv2 says it and as mip6d's policy says it.
        let ike = TypePorts::Ike {
            start: 0x0500,
            end: 0x05ff,
        };
        let kernel = TypePorts::Kernel {
            value: 5,
            mask: 0xffff,
        };
        assert_eq!(convert_type_ports(ike), kernel);
        assert_eq!(convert_type_ports(kernel), ike);
        // Every type survives the round trip both ways.
        for t in 0..=255u8 {
            let k = TypePorts::Kernel {
                value: u16::from(t),
                mask: 0xffff,
            };
            assert_eq!(convert_type_ports(convert_type_ports(k)), k, "type {t}");
        }
        // ICMPv6 MPS 146.
        assert_eq!(
            convert_type_ports(TypePorts::Kernel {
                value: 146,
                mask: 0xffff
            }),
            TypePorts::Ike {
                start: 146 << 8,
                end: (146 << 8) | 0xff
            }
        );
    }

    #[test]
    fn any_and_ranges() {
        assert_eq!(
            convert_type_ports(TypePorts::Ike {
                start: 0,
                end: 0xffff
            }),
            TypePorts::Kernel { value: 0, mask: 0 }
        );
        assert_eq!(
            convert_type_ports(TypePorts::Kernel { value: 7, mask: 0 }),
            TypePorts::Ike {
                start: 0,
                end: 0xffff
            }
        );
        // MPS..MPA is two types: the kernel cannot say that in one selector.
        assert_eq!(
            convert_type_ports(TypePorts::Ike {
                start: 146 << 8,
                end: (147 << 8) | 0xff
            }),
            TypePorts::Kernel { value: 0, mask: 0 }
        );
        // A range with a specific code is not "the type".
        assert_eq!(ports_to_type(0x0503, 0x0503), None);
    }

    #[test]
    fn kernel_selector_of_a_bu_ba_ts_pair_puts_the_type_in_sport() {
        let hoa: IpAddr = "2001:db8::10".parse().unwrap();
        let ha: IpAddr = "2001:db8::1".parse().unwrap();
        let ts = |a: IpAddr, ports: (u16, u16)| TrafficSelector {
            ts_type: TS_IPV6_ADDR_RANGE,
            ip_protocol: IPPROTO_MH,
            start_port: ports.0,
            end_port: ports.1,
            start_addr: a,
            end_addr: a,
        };
        // The type named on the destination side still ends up in sport.
        let sel = to_kernel(&ts(hoa, (0, 0xffff)), &ts(ha, type_to_ports(5))).unwrap();
        assert_eq!((sel.sport, sel.dport), ((5, 0xffff), (0, 0)));
        assert_eq!((sel.src_prefix, sel.dst_prefix), (128, 128));
        // And back: an ACQUIRE's selector side becomes the IKEv2 TS for type 5.
        let back = from_kernel_side(hoa, 128, IPPROTO_MH, sel.sport);
        assert_eq!((back.start_port, back.end_port), (0x0500, 0x05ff));
        assert_eq!(back.start_addr, hoa);
        let any = from_kernel_side(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0, 0, (0, 0));
        assert_eq!(any.end_addr, IpAddr::V6(Ipv6Addr::from(u128::MAX)));
    }

    #[test]
    fn every_ts_pair_of_hoti_hot_gets_a_kernel_selector() {
        use crate::mobility::SaClass;
        let hoa: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let (ts_i, ts_r) = SaClass::HotiHot.selectors(hoa, ha);
        let out = to_kernel_all(&ts_i, &ts_r).unwrap();
        let types: Vec<_> = out.iter().map(|s| (s.proto, s.sport, s.dport)).collect();
        assert_eq!(
            types,
            vec![
                (IPPROTO_MH, (1, 0xffff), (0, 0)),
                (IPPROTO_MH, (3, 0xffff), (0, 0))
            ]
        );
        assert!(
            out.iter()
                .all(|s| s.src == IpAddr::V6(hoa) && s.dst_prefix == 0)
        );
        // One pair stays one selector; a protocol mismatch gives none.
        let (bi, br) = SaClass::BuBa.selectors(hoa, ha);
        assert_eq!(to_kernel_all(&bi, &br).unwrap().len(), 1);
        let mut udp = br[0].clone();
        udp.ip_protocol = 17;
        assert!(to_kernel_all(&bi, &[udp]).unwrap().is_empty());
    }

    #[test]
    fn mps_mpa_becomes_one_selector_per_icmpv6_type_not_any_icmpv6() {
        use crate::mobility::SaClass;
        let hoa: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let (ts_i, ts_r) = SaClass::MpsMpa.selectors(hoa, ha);
        let types: Vec<_> = to_kernel_all(&ts_i, &ts_r)
            .unwrap()
            .iter()
            .map(|s| (s.proto, s.sport, s.dport))
            .collect();
        assert_eq!(
            types,
            vec![
                (IPPROTO_ICMPV6, (146, 0xffff), (0, 0)),
                (IPPROTO_ICMPV6, (147, 0xffff), (0, 0))
            ]
        );
        // Any type stays one "any" selector rather than 256.
        let mut any = ts_i[0].clone();
        (any.start_port, any.end_port) = (0, 0xffff);
        let mut any_r = ts_r[0].clone();
        (any_r.start_port, any_r.end_port) = (0, 0xffff);
        let out = to_kernel_all(&[any], &[any_r]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sport, (0, 0));
    }

    #[test]
    fn ranges_narrow_to_what_the_kernel_expresses_never_wider() {
        let r = |a: &str, b: &str, proto: u8, ports: (u16, u16)| TrafficSelector {
            ts_type: TS_IPV6_ADDR_RANGE,
            ip_protocol: proto,
            start_port: ports.0,
            end_port: ports.1,
            start_addr: a.parse().unwrap(),
            end_addr: b.parse().unwrap(),
        };
        let any = (0, 0xffff);
        let n = kernel_expressible(&r("2001:db8:ffff::1", "2001:db8:ffff::2", 0, any)).unwrap();
        assert_eq!(n, r("2001:db8:ffff::1", "2001:db8:ffff::1", 0, any));
        let n = kernel_expressible(&r("2001:db8::", "2001:db8::ff:ffff", 0, any)).unwrap();
        assert_eq!(
            n,
            r("2001:db8::", "2001:db8::ff:ffff", 0, any),
            "a prefix stays"
        );
        let all = r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, any);
        assert_eq!(kernel_expressible(&all).unwrap(), all);
        let n = kernel_expressible(&r("::4", "::f", 17, (1000, 1999))).unwrap();
        assert_eq!(n, r("::4", "::7", 17, (1000, 1007)));
        assert!(to_kernel_all(std::slice::from_ref(&n), std::slice::from_ref(&all)).is_ok());
        // MH / ICMPv6: partial codes cannot be expressed; many types are capped.
        assert!(kernel_expressible(&r("::1", "::1", IPPROTO_MH, (0x0100, 0x0180))).is_none());
        let n = kernel_expressible(&r("::1", "::1", IPPROTO_ICMPV6, (0x0000, 0xfeff))).unwrap();
        assert_eq!(
            n.end_port,
            u16::from_be_bytes([(MAX_SPLIT_TYPES - 1) as u8, 0xff])
        );
        // The conversion refuses what it cannot express instead of widening it.
        let bad = r("::1", "::2", 0, any);
        assert!(to_kernel_all(&[bad], &[all]).is_err());
    }
}
