//! The SA classes of RFC 4877 (and MIPL's IPsec README): which traffic each protects, in which
//! mode, and with which reqids (matching mip6d's `IPsecPolicy <type> UseESP <toha> <tomn>`).

use std::net::{IpAddr, Ipv6Addr};

use crate::kernel::Mode;
use crate::wire::TrafficSelector;
use crate::wire::consts::{IPPROTO_ICMPV6, IPPROTO_MH, TS_IPV6_ADDR_RANGE};

/// MH types (RFC 6275 6.1.2).
pub const MH_HOTI: u8 = 1;
pub const MH_HOT: u8 = 3;
/// ICMPv6 Mobile Prefix Solicitation / Advertisement (RFC 6275 6.7, 6.8).
pub const ICMPV6_MPS: u8 = 146;
pub const ICMPV6_MPA: u8 = 147;

/// A class of CHILD_SA for a mobile node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaClass {
    /// Binding Update / Acknowledgement: ESP transport, MH, HoA <-> HA.
    BuBa,
    /// Mobile Prefix Solicitation / Advertisement: ESP transport, ICMPv6 146/147, HoA <-> HA.
    MpsMpa,
    /// Home Test Init / Home Test: ESP tunnel, MH types 1 and 3, HoA <-> any.
    HotiHot,
    /// Payload traffic: ESP tunnel, any protocol, HoA <-> any.
    Payload,
}

/// The reqids of one class: the SA towards the HA and the SA towards the MN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassReqids {
    pub to_ha: u32,
    pub to_mn: u32,
}

impl SaClass {
    pub const ALL: [SaClass; 4] = [
        SaClass::BuBa,
        SaClass::MpsMpa,
        SaClass::HotiHot,
        SaClass::Payload,
    ];

    /// Configuration name.
    pub fn name(self) -> &'static str {
        match self {
            SaClass::BuBa => "bu-ba",
            SaClass::MpsMpa => "mps-mpa",
            SaClass::HotiHot => "hoti-hot",
            SaClass::Payload => "payload",
        }
    }

    pub fn from_name(s: &str) -> Option<SaClass> {
        SaClass::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn mode(self) -> Mode {
        match self {
            SaClass::BuBa | SaClass::MpsMpa => Mode::Transport,
            SaClass::HotiHot | SaClass::Payload => Mode::Tunnel,
        }
    }

    /// Default reqids: the values of the MIPL/UMIP example configuration
    /// (`IPsecPolicy Mh UseESP 1 2`, `MobPfxDisc UseESP 5 6`, `TunnelHomeTesting UseESP 7 8`,
    /// `TunnelPayload UseESP 3 4`).
    pub fn default_reqids(self) -> ClassReqids {
        let (to_ha, to_mn) = match self {
            SaClass::BuBa => (1, 2),
            SaClass::Payload => (3, 4),
            SaClass::MpsMpa => (5, 6),
            SaClass::HotiHot => (7, 8),
        };
        ClassReqids { to_ha, to_mn }
    }

    /// Traffic selectors (TSi, TSr) the mobile node proposes and the home agent grants for this
    /// class, for home address `hoa` and home agent address `ha`.
    pub fn selectors(
        self,
        hoa: Ipv6Addr,
        ha: Ipv6Addr,
    ) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
        let any = |proto: u8, ports: (u16, u16), a: Ipv6Addr| ts(proto, ports, a, a);
        match self {
            SaClass::BuBa => (
                vec![any(IPPROTO_MH, (0, 0xffff), hoa)],
                vec![any(IPPROTO_MH, (0, 0xffff), ha)],
            ),
            SaClass::MpsMpa => {
                // ICMPv6 type in the high byte of the port (RFC 7296 3.13.1).
                let types = (
                    u16::from(ICMPV6_MPS) << 8,
                    (u16::from(ICMPV6_MPA) << 8) | 0xff,
                );
                (
                    vec![any(IPPROTO_ICMPV6, types, hoa)],
                    vec![any(IPPROTO_ICMPV6, types, ha)],
                )
            }
            SaClass::HotiHot => {
                let t = |mh: u8| (u16::from(mh) << 8, (u16::from(mh) << 8) | 0xff);
                let all = Ipv6Addr::UNSPECIFIED;
                let ones = Ipv6Addr::from(u128::MAX);
                (
                    vec![
                        any(IPPROTO_MH, t(MH_HOTI), hoa),
                        any(IPPROTO_MH, t(MH_HOT), hoa),
                    ],
                    vec![
                        ts(IPPROTO_MH, t(MH_HOTI), all, ones),
                        ts(IPPROTO_MH, t(MH_HOT), all, ones),
                    ],
                )
            }
            SaClass::Payload => (
                vec![any(0, (0, 0xffff), hoa)],
                vec![ts(
                    0,
                    (0, 0xffff),
                    Ipv6Addr::UNSPECIFIED,
                    Ipv6Addr::from(u128::MAX),
                )],
            ),
        }
    }
}

fn ts(proto: u8, ports: (u16, u16), start: Ipv6Addr, end: Ipv6Addr) -> TrafficSelector {
    TrafficSelector {
        ts_type: TS_IPV6_ADDR_RANGE,
        ip_protocol: proto,
        start_port: ports.0,
        end_port: ports.1,
        start_addr: IpAddr::V6(start),
        end_addr: IpAddr::V6(end),
    }
}
