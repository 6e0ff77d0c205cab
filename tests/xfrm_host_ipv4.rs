//! Cross-family tunnels on the host kernel, each test in a fresh network namespace (root;
//! MIP6_IKE_SKIP_KERNEL_TESTS=1 skips): the payload tunnel of a mobile node with an IPv4
//! care-of address, IPv6 selectors (HoA <-> ::/0) over IPv4 outer addresses.
//!
//! The host kernel has XFRM but no ESP (see tests/xfrm_host.rs), so what it can show is: the
//! policies with IPv6 selectors and IPv4 tunnel templates are accepted and read back with
//! those families, ALLOCSPI works for IPv4 endpoints, and our NEWSA for such an SA (with
//! XFRM_STATE_AF_UNSPEC and with ESP-in-UDP) passes the kernel's message checks and fails only
//! for the missing ESP type (EPROTONOSUPPORT, not EINVAL). That the kernel then carries
//! traffic through it is shown under User-Mode Linux (`interop/run`, `v4-ipv4-care-of`).

mod common;
use common::netns::ip;

use std::net::IpAddr;

use mip6_ike::kernel::xfrm::msg;
use mip6_ike::kernel::xfrm::{Netlink, Policies, XfrmConfig, XfrmKernel};
use mip6_ike::kernel::{
    Direction, Encap, Kernel, KernelOp, Lifetime, Mode, SaSpec, Selector, SpiRequest,
};

const COA4: &str = "192.0.2.100";
const HA4: &str = "192.0.2.1";
const HOA: &str = "2001:db8:1::100";

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    common::netns::in_netns_with(
        "XFRM host tests",
        || {
            for addr in [COA4, HA4] {
                ip(&format!("addr add {addr}/32 dev lo"));
            }
            ip(&format!("addr add {HOA}/128 dev lo nodad"));
        },
        f,
    )
}

/// The HA's inbound payload SA: MN (IPv4 CoA) -> HA (IPv4), selector HoA -> ::/0.
fn ha_inbound_tunnel(encap: Option<Encap>) -> SaSpec {
    SaSpec {
        direction: Direction::In,
        src: a(COA4),
        dst: a(HA4),
        spi: 0x1003,
        reqid: 3,
        mode: Mode::Tunnel,
        selectors: vec![Selector::new(a(HOA), 128, a("::"), 0, 0)],
        outside_classes: false,
        encr_id: 12,
        encr_key_bits: 128,
        encr_key: zeroize::Zeroizing::new(vec![7; 16]),
        integ_id: 12,
        integ_key: zeroize::Zeroizing::new(vec![9; 32]),
        esn: false,
        replay_window: 32,
        lifetime: Lifetime::default(),
        encap,
    }
}

#[test]
fn ipv6_selectors_with_ipv4_tunnel_templates_are_accepted_and_read_back() {
    in_netns(|| {
        let mut k = XfrmKernel::new(XfrmConfig {
            policies: Policies::Daemon,
            owned_reqids: (1, 8),
            auto_reqids: (9, 8),
            forward_tunnels: true,
        })
        .unwrap();
        k.add_policies(&ha_inbound_tunnel(None)).unwrap();
        let mut nl = Netlink::open().unwrap();
        let dump = nl
            .dump(msg::XFRM_MSG_GETPOLICY, msg::XFRM_MSG_NEWPOLICY)
            .unwrap();
        let mut dirs = Vec::new();
        for p in &dump {
            let (info, tmpls) = msg::parse_policy_templates(p).unwrap();
            // the selector keeps the inner family, the template has the outer one
            assert_eq!(info.selector.family, msg::AF_INET6);
            let sel = msg::from_xselector(&info.selector).unwrap();
            assert_eq!((sel.src, sel.src_prefix), (a(HOA), 128));
            let [t] = tmpls.as_slice() else {
                panic!("one template: {tmpls:?}")
            };
            assert_eq!(t.family, msg::AF_INET);
            assert_eq!(
                (
                    msg::ip_of(&t.saddr, t.family).unwrap(),
                    msg::ip_of(&t.id.daddr, t.family).unwrap(),
                    t.mode
                ),
                (a(COA4), a(HA4), msg::XFRM_MODE_TUNNEL)
            );
            dirs.push(info.direction);
        }
        dirs.sort();
        assert_eq!(dirs, vec![msg::XFRM_POLICY_IN, msg::XFRM_POLICY_FWD]);
        let text = ip("xfrm policy");
        assert!(
            text.contains(&format!("tmpl src {COA4} dst {HA4}")),
            "{text}"
        );
        drop(k);
        assert!(!ip("xfrm policy").contains(HOA), "removed at shutdown");
    });
}

#[test]
fn cross_family_and_espinudp_sas_pass_the_kernels_checks() {
    in_netns(|| {
        let mut k = XfrmKernel::new(XfrmConfig {
            policies: Policies::Mip6d,
            owned_reqids: (1, 8),
            auto_reqids: (9, 8),
            forward_tunnels: false,
        })
        .unwrap();
        // ALLOCSPI between IPv4 endpoints, then the SA itself: refused for the missing ESP
        // type only (a malformed flag, selector or XFRMA_ENCAP would be EINVAL).
        let mut alloc = k.spi_allocator().unwrap();
        let spi = alloc
            .allocate(&SpiRequest {
                src: a(COA4),
                dst: a(HA4),
                reqid: 3,
                acquire_seq: None,
            })
            .unwrap();
        assert!(spi >= 256);
        let larval = ip("xfrm state");
        assert!(
            larval.contains(&format!("src {COA4} dst {HA4}")),
            "{larval}"
        );
        for encap in [
            None,
            Some(Encap {
                sport: 44500,
                dport: 4500,
            }),
        ] {
            let mut s = ha_inbound_tunnel(encap);
            s.spi = spi;
            assert!(msg::cross_family(&s));
            let e = k.apply(&KernelOp::AddSa(s)).unwrap_err();
            assert!(e.contains("os error 93"), "EPROTONOSUPPORT expected: {e}");
        }
        assert!(k.installed().is_empty());
    });
}
