//! Readable forms of the engine's listings (demo output, later the control CLI).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::{ChildInfo, IkeSaInfo};
use crate::kernel::{Direction, Mode, SaSpec};
use crate::mobility::selector::ports_to_type;
use crate::wire::TrafficSelector;
use crate::wire::consts::{IPPROTO_ICMPV6, IPPROTO_MH};

fn mh_name(t: u8) -> Option<&'static str> {
    // RFC 6275 6.1.2 and following.
    Some(match t {
        0 => "BRR",
        1 => "HoTI",
        2 => "CoTI",
        3 => "HoT",
        4 => "CoT",
        5 => "BU",
        6 => "BA",
        7 => "BE",
        _ => return None,
    })
}

fn icmpv6_name(t: u8) -> Option<&'static str> {
    // RFC 6275 6.7, 6.8.
    Some(match t {
        146 => "MPS",
        147 => "MPA",
        _ => return None,
    })
}

fn addr_range(start: IpAddr, end: IpAddr) -> String {
    let full = match (start, end) {
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            s == Ipv6Addr::UNSPECIFIED && e == Ipv6Addr::from(u128::MAX)
        }
        (IpAddr::V4(s), IpAddr::V4(e)) => s == Ipv4Addr::UNSPECIFIED && e == Ipv4Addr::BROADCAST,
        _ => false,
    };
    if full {
        "any".to_string()
    } else if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

/// Type range for MH / ICMPv6 selectors, where the type sits in the port's high byte
/// (RFC 7296 3.13.1).
fn type_range(start: u16, end: u16, name: fn(u8) -> Option<&'static str>) -> String {
    if start == 0 && end == 0xffff {
        return String::new();
    }
    if let Some(t) = ports_to_type(start, end) {
        return match name(t) {
            Some(n) => format!(" type {t} ({n})"),
            None => format!(" type {t}"),
        };
    }
    let [hs, ls] = start.to_be_bytes();
    let [he, le] = end.to_be_bytes();
    if ls == 0 && le == 0xff {
        let n = |t: u8| name(t).map_or(String::new(), |n| format!(" {n}"));
        return format!(" types {hs}-{he} ({}..{})", n(hs).trim(), n(he).trim());
    }
    format!(" ports {start}-{end}")
}

/// One traffic selector: `2001:db8:1::100 MH type 1 (HoTI)`, `any`, `2001:db8:1::1 ICMPv6 types 146-147`.
pub fn selector(ts: &TrafficSelector) -> String {
    let addr = addr_range(ts.start_addr, ts.end_addr);
    let proto = match ts.ip_protocol {
        0 => String::new(),
        IPPROTO_MH => format!(" MH{}", type_range(ts.start_port, ts.end_port, mh_name)),
        IPPROTO_ICMPV6 => format!(
            " ICMPv6{}",
            type_range(ts.start_port, ts.end_port, icmpv6_name)
        ),
        p => {
            let ports = if ts.start_port == 0 && ts.end_port == 0xffff {
                String::new()
            } else if ts.start_port == ts.end_port {
                format!(" port {}", ts.start_port)
            } else {
                format!(" ports {}-{}", ts.start_port, ts.end_port)
            };
            format!(" proto {p}{ports}")
        }
    };
    format!("{addr}{proto}")
}

fn selectors(list: &[TrafficSelector]) -> String {
    if list.is_empty() {
        return "(none)".to_string();
    }
    list.iter().map(selector).collect::<Vec<_>>().join(", ")
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Transport => "transport",
        Mode::Tunnel => "tunnel",
    }
}

/// A CHILD_SA in a few indented lines.
pub fn child(c: &ChildInfo, indent: &str) -> String {
    let mut s = String::new();
    let class = c.class.map_or("(no class)", |c| c.name());
    let _ = writeln!(s, "{indent}CHILD_SA {class}, {} mode", mode(c.mode));
    let _ = writeln!(
        s,
        "{indent}  SPIs        in {:08x}  out {:08x}",
        c.spi_in, c.spi_out
    );
    let _ = writeln!(
        s,
        "{indent}  reqids      in {}  out {}",
        c.reqid_in, c.reqid_out
    );
    let _ = writeln!(s, "{indent}  transforms  {}", c.transforms);
    let _ = writeln!(s, "{indent}  outer       {} <-> {}", c.local, c.remote);
    let _ = writeln!(
        s,
        "{indent}  selectors   {}  <->  {}",
        selectors(&c.ts_local),
        selectors(&c.ts_remote)
    );
    s
}

/// An IKE SA and its CHILD_SAs.
pub fn ike_sa(i: &IkeSaInfo, indent: &str) -> String {
    let mut s = String::new();
    let role = if i.initiator {
        "initiator"
    } else {
        "responder"
    };
    let _ = writeln!(s, "{indent}IKE_SA {} ({role}, {})", i.id, i.state);
    let _ = writeln!(s, "{indent}  endpoints   {} <-> {}", i.local, i.remote);
    let _ = writeln!(
        s,
        "{indent}  SPIs        i {:016x}  r {:016x}",
        i.spi_i, i.spi_r
    );
    let _ = writeln!(s, "{indent}  transforms  {}", i.transforms);
    let peer = i
        .peer
        .as_ref()
        .map_or_else(|| "(not authenticated)".to_string(), |p| p.to_string());
    let _ = writeln!(s, "{indent}  peer        {peer}");
    if let Some(h) = i.home_address {
        let _ = writeln!(s, "{indent}  home addr   {h}");
    }
    for c in &i.children {
        s.push_str(&child(c, &format!("{indent}  ")));
    }
    s
}

/// One kernel SA (never its keys).
pub fn kernel_sa(k: &SaSpec) -> String {
    let dir = match k.direction {
        Direction::In => "in ",
        Direction::Out => "out",
    };
    format!(
        "{dir} SPI {:08x}  {} -> {}  {} reqid {}",
        k.spi,
        k.src,
        k.dst,
        mode(k.mode),
        k.reqid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobility::SaClass;

    #[test]
    fn class_selectors_read_well() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let (i, r) = SaClass::BuBa.selectors(hoa, ha);
        assert_eq!(selectors(&i), "2001:db8:1::100 MH");
        assert_eq!(selectors(&r), "2001:db8:1::1 MH");
        let (i, r) = SaClass::HotiHot.selectors(hoa, ha);
        assert_eq!(
            selectors(&i),
            "2001:db8:1::100 MH type 1 (HoTI), 2001:db8:1::100 MH type 3 (HoT)"
        );
        assert_eq!(selectors(&r), "any MH type 1 (HoTI), any MH type 3 (HoT)");
        let (i, _) = SaClass::MpsMpa.selectors(hoa, ha);
        assert_eq!(
            selectors(&i),
            "2001:db8:1::100 ICMPv6 types 146-147 (MPS..MPA)"
        );
        let (i, r) = SaClass::Payload.selectors(hoa, ha);
        assert_eq!(selectors(&i), "2001:db8:1::100");
        assert_eq!(selectors(&r), "any");
    }

    #[test]
    fn other_protocols_and_ranges() {
        let ts = TrafficSelector {
            ts_type: crate::wire::consts::TS_IPV4_ADDR_RANGE,
            ip_protocol: 17,
            start_port: 500,
            end_port: 500,
            start_addr: "192.0.2.1".parse().unwrap(),
            end_addr: "192.0.2.9".parse().unwrap(),
        };
        assert_eq!(selector(&ts), "192.0.2.1-192.0.2.9 proto 17 port 500");
        assert_eq!(selectors(&[]), "(none)");
    }
}
