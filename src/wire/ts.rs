//! TSi/TSr payload body (RFC 7296 3.13).

use std::net::IpAddr;

use super::consts::{TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE};
use super::reader::{Reader, count_u8, patch_len16};
use super::{Error, TrafficSelector, limits};

/// Selector lengths fixed by the type: 8 header bytes plus two addresses.
const IPV4_RANGE_LEN: u16 = 16;
const IPV6_RANGE_LEN: u16 = 40;

pub(super) fn parse(body: &[u8]) -> Result<Vec<TrafficSelector>, Error> {
    let mut r = Reader::new(body);
    let count = usize::from(r.u8("TS payload")?);
    r.take(3, "TS payload")?; // reserved
    if count > limits::MAX_SELECTORS {
        return Err(Error::TooMany("traffic selectors"));
    }
    let mut selectors = Vec::new();
    for _ in 0..count {
        let ts_type = r.u8("traffic selector")?;
        let ip_protocol = r.u8("traffic selector")?;
        let len = r.u16("traffic selector")?;
        let expected = match ts_type {
            TS_IPV4_ADDR_RANGE => IPV4_RANGE_LEN,
            TS_IPV6_ADDR_RANGE => IPV6_RANGE_LEN,
            _ => return Err(Error::Invalid("traffic selector type")),
        };
        if len != expected {
            return Err(Error::BadLength(
                "traffic selector length disagrees with its type",
            ));
        }
        let start_port = r.u16("traffic selector")?;
        let end_port = r.u16("traffic selector")?;
        let (start_addr, end_addr) = if ts_type == TS_IPV4_ADDR_RANGE {
            let s = r.ipv4("traffic selector address")?;
            let e = r.ipv4("traffic selector address")?;
            (IpAddr::V4(s), IpAddr::V4(e))
        } else {
            let s = r.ipv6("traffic selector address")?;
            let e = r.ipv6("traffic selector address")?;
            (IpAddr::V6(s), IpAddr::V6(e))
        };
        selectors.push(TrafficSelector {
            ts_type,
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        });
    }
    if !r.is_empty() {
        return Err(Error::BadLength("TS payload longer than its selectors"));
    }
    Ok(selectors)
}

/// Writes `ts_type` as given and the addresses in their own family; `TrafficSelector::range`
/// builds selectors where both agree.
pub(super) fn emit(selectors: &[TrafficSelector], out: &mut Vec<u8>) {
    out.extend_from_slice(&[count_u8(selectors.len()), 0, 0, 0]);
    for ts in selectors {
        let start = out.len();
        out.extend_from_slice(&[ts.ts_type, ts.ip_protocol, 0, 0]);
        out.extend_from_slice(&ts.start_port.to_be_bytes());
        out.extend_from_slice(&ts.end_port.to_be_bytes());
        for addr in [ts.start_addr, ts.end_addr] {
            match addr {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        patch_len16(out, start + 2, start);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::super::consts::*;
    use super::super::testutil::{hex, parse_one, round_trip};
    use super::super::{Error, Payload, TrafficSelector, limits};

    fn v4_any() -> TrafficSelector {
        TrafficSelector::range(
            0,
            0,
            0xffff,
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv4Addr::BROADCAST.into(),
        )
        .unwrap()
    }

    fn v6_mh(addr: &str) -> TrafficSelector {
        let a: IpAddr = addr.parse().unwrap();
        TrafficSelector::range(IPPROTO_MH, 0x0500, 0x05ff, a, a).unwrap()
    }

    #[test]
    fn ipv4_range_layout() {
        let b = round_trip(Payload::TsI(vec![v4_any()]));
        let expected = hex("00 00 0018          # generic header, length 24
             01 000000           # 1 selector, reserved
             07 00 0010          # IPv4 range, any protocol, length 16
             0000 ffff           # ports 0-65535
             00000000 ffffffff   # 0.0.0.0 - 255.255.255.255");
        assert_eq!(b, expected);
    }

    #[test]
    fn ipv6_and_mixed_round_trip() {
        let b = round_trip(Payload::TsR(vec![v6_mh("2001:db8::1")]));
        assert_eq!(b.len(), 4 + 4 + 40);
        assert_eq!(&b[8..16], &hex("08 87 0028 0500 05ff"));
        round_trip(Payload::TsI(vec![v6_mh("2001:db8::2"), v4_any()]));
        round_trip(Payload::TsI(vec![]));
    }

    #[test]
    fn range_refuses_mixed_families() {
        assert!(
            TrafficSelector::range(
                0,
                0,
                0,
                Ipv4Addr::LOCALHOST.into(),
                Ipv6Addr::LOCALHOST.into()
            )
            .is_none()
        );
        assert_eq!(v4_any().ts_type, TS_IPV4_ADDR_RANGE);
        assert_eq!(v6_mh("::1").ts_type, TS_IPV6_ADDR_RANGE);
    }

    #[test]
    fn selector_length_must_match_type() {
        let v4 = "01 000000  07 00 0010 0000 ffff 00000000 ffffffff";
        assert!(parse_one(PL_TSI, &hex(v4)).is_ok());
        // IPv4 type claiming the IPv6 length (and vice versa).
        let mut b = hex(v4);
        b[7] = 40;
        assert!(matches!(parse_one(PL_TSI, &b), Err(Error::BadLength(_))));
        let mut b = hex(v4);
        b[4] = TS_IPV6_ADDR_RANGE;
        assert!(matches!(parse_one(PL_TSI, &b), Err(Error::BadLength(_))));
        // IPv6 type with 16 bytes of addresses where 32 are needed.
        let mut b = hex(v4);
        b[4] = TS_IPV6_ADDR_RANGE;
        b[7] = 40;
        assert!(matches!(parse_one(PL_TSI, &b), Err(Error::Truncated(_))));
        // Unknown type.
        let mut b = hex(v4);
        b[4] = 9;
        assert!(matches!(parse_one(PL_TSI, &b), Err(Error::Invalid(_))));
    }

    #[test]
    fn count_must_match_content() {
        // Two announced, one present.
        assert!(
            parse_one(
                PL_TSR,
                &hex("02 000000  07 00 0010 0000 ffff 00000000 ffffffff")
            )
            .is_err()
        );
        // One announced, trailing bytes.
        assert!(matches!(
            parse_one(
                PL_TSR,
                &hex("01 000000  07 00 0010 0000 ffff 00000000 ffffffff 00")
            ),
            Err(Error::BadLength(_))
        ));
        assert!(parse_one(PL_TSR, &hex("01 0000")).is_err());
        let n = limits::MAX_SELECTORS + 1;
        let mut body = vec![u8::try_from(n).unwrap(), 0, 0, 0];
        for _ in 0..n {
            body.extend_from_slice(&hex("07 00 0010 0000 ffff 00000000 ffffffff"));
        }
        assert!(matches!(parse_one(PL_TSR, &body), Err(Error::TooMany(_))));
    }
}
