//! The daemon glue over real loopback sockets: the demo, a home agent and a mobile node started
//! from configuration files, shutdown that empties the kernel, reload, and the NAT-T framing.

mod common;

use std::fs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::daemon::{
    HA_ID, MN1_STATIC_USER, WAIT, ha_toml, list, mn1_toml, start_on, stop, tree, wait_children,
    wait_ike_down,
};
use mip6_ike::daemon::{Control, Daemon, SharedKernel, demo};
use mip6_ike::ike::Event;
use mip6_ike::kernel::Mode;
use mip6_ike::mobility::SaClass;
use mip6_ike::policy;
use tokio::sync::mpsc;

fn hoa() -> Ipv6Addr {
    "2001:db8:1::100".parse().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn demo_brings_up_both_child_sas_on_both_sides() {
    let s = demo::run_demo(WAIT).await.expect("demo");
    for (side, initiator) in [(&s.mobile_node, true), (&s.home_agent, false)] {
        assert_eq!(side.ike.len(), 1);
        let ike = &side.ike[0];
        assert_eq!(ike.initiator, initiator);
        assert_eq!(ike.children.len(), 2);
        let bu = ike
            .children
            .iter()
            .find(|c| c.class == Some(SaClass::BuBa))
            .expect("bu-ba");
        let pl = ike
            .children
            .iter()
            .find(|c| c.class == Some(SaClass::Payload))
            .expect("payload");
        assert_eq!(bu.mode, Mode::Transport);
        assert_eq!(pl.mode, Mode::Tunnel);
        // The home address is in the selectors (MN: local side; HA: remote side).
        let mn_side = |c: &mip6_ike::ike::ChildInfo| {
            if initiator {
                c.ts_local.clone()
            } else {
                c.ts_remote.clone()
            }
        };
        for c in [bu, pl] {
            assert!(
                mn_side(c)
                    .iter()
                    .any(|t| t.start_addr == IpAddr::V6(hoa()) && t.end_addr == IpAddr::V6(hoa()))
            );
        }
        // mip6d's default reqids: BU/BA 1 (to HA) / 2 (to MN), payload 3 / 4.
        let (bu_out, pl_out) = if initiator { (1, 3) } else { (2, 4) };
        assert_eq!((bu.reqid_out, pl.reqid_out), (bu_out, pl_out));
        assert_eq!(side.kernel.len(), 4);
        assert_eq!(side.kernel_after_shutdown, 0);
    }
    // Both sides agree on the SPIs.
    let (m, h) = (&s.mobile_node.ike[0], &s.home_agent.ike[0]);
    assert_eq!((m.spi_i, m.spi_r), (h.spi_i, h.spi_r));
    let text = s.to_string();
    assert!(
        text.contains("2001:db8:1::100 MH  <->  2001:db8:1::1 MH"),
        "{text}"
    );
    assert!(text.contains("CHILD_SA payload, tunnel mode"), "{text}");
}

fn mn_toml(ha: SocketAddr) -> String {
    mn1_toml(
        ha,
        "2001:db8:1::100",
        &format!("home_agent_id = \"{HA_ID}\"\n"),
    )
}

/// The home agent (listening on `listen`) and mn1, from files in `dir`, each on its own kernel.
fn ha_and_mn(
    dir: &tempfile::TempDir,
    listen: &str,
    ha_kernel: &SharedKernel,
    mn_kernel: &SharedKernel,
) -> (common::daemon::Running, common::daemon::Running) {
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml(listen, "")).unwrap();
    let ha = start_on(&dir.path().join("ha.toml"), Box::new(ha_kernel.clone()));
    // A wildcard listener is reached on loopback.
    let ha_addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), ha.addr.port());
    fs::write(dir.path().join("mn.toml"), mn_toml(ha_addr)).unwrap();
    let mn = start_on(&dir.path().join("mn.toml"), Box::new(mn_kernel.clone()));
    (ha, mn)
}

#[tokio::test(flavor = "current_thread")]
async fn daemons_from_config_files_establish_and_clean_up_on_shutdown() {
    let dir = tree();
    let (ha_kernel, mn_kernel) = (SharedKernel::new(), SharedKernel::new());
    // The HA listens on the wildcard: its local address comes from IPV6_PKTINFO.
    let (mut ha, mut mn) = ha_and_mn(&dir, "::", &ha_kernel, &mn_kernel);
    let ha_addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), ha.addr.port());

    let mn_up = wait_children(&mut mn.events, 2).await.ike_up;
    let ha_up = wait_children(&mut ha.events, 2).await.ike_up;
    match ha_up {
        // Not [::]: the datagram's destination address.
        Event::IkeUp { local, .. } => assert_eq!(local, ha_addr),
        e => panic!("{e:?}"),
    }
    assert!(matches!(mn_up, Event::IkeUp { remote, .. } if remote == ha_addr));
    assert_eq!(mn_kernel.with(|k| k.len()), 4);
    assert_eq!(ha_kernel.with(|k| k.len()), 4);
    let l = list(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].children.len(), 2);

    // The MN stops: its SAs leave its kernel, and its Delete reaches the HA, whose SAs go too.
    let k = stop(mn).await;
    assert!(k.installed().is_empty());
    assert_eq!(mn_kernel.with(|k| k.len()), 0);
    wait_ike_down(&mut ha.events, "HA did not see the MN leave").await;
    assert_eq!(ha_kernel.with(|k| k.len()), 0);
    assert!(list(&ha.tx).await.is_empty());

    assert!(stop(ha).await.installed().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn home_agent_shutdown_empties_its_kernel() {
    let dir = tree();
    let (ha_kernel, mn_kernel) = (SharedKernel::new(), SharedKernel::new());
    let (mut ha, mut mn) = ha_and_mn(&dir, "::1", &ha_kernel, &mn_kernel);
    wait_children(&mut ha.events, 2).await;
    wait_children(&mut mn.events, 2).await;

    // A broken file on reload is logged and the running configuration kept.
    fs::write(dir.path().join("ha.toml"), "role = ").unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    assert_eq!(list(&ha.tx).await.len(), 1);

    stop(ha).await;
    assert_eq!(ha_kernel.with(|k| k.len()), 0);
    // The HA's Delete reached the MN.
    wait_ike_down(&mut mn.events, "MN did not see the HA leave").await;
    assert_eq!(mn_kernel.with(|k| k.len()), 0);
    stop(mn).await;
}

#[tokio::test(flavor = "current_thread")]
async fn nat_t_port_strips_and_adds_the_non_esp_marker() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml("::1", "")).unwrap();
    let ha = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .unwrap();
    let nat = ha
        .local_addrs()
        .into_iter()
        .find(|(_, nat)| *nat)
        .unwrap()
        .0;
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(ha.run(rx));

    // An IKE header with major version 3 (RFC 7296 2.5: answered with INVALID_MAJOR_VERSION).
    let mut hdr = vec![0x11u8; 8];
    hdr.extend([0u8; 8]); // SPIr
    hdr.extend([0, 0x30, 34, 0x08]); // next payload, version 3.0, IKE_SA_INIT, initiator
    hdr.extend([0u8; 4]); // message ID
    hdr.extend(28u32.to_be_bytes());
    let peer = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    let mut buf = [0u8; 512];

    // Without the marker the datagram is ESP-in-UDP to us: dropped, no answer.
    peer.send_to(&hdr, nat).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), peer.recv_from(&mut buf))
            .await
            .is_err()
    );

    // With the marker it is IKE: the answer carries the marker too.
    let framed = [&[0u8; 4][..], &hdr].concat();
    peer.send_to(&framed, nat).await.unwrap();
    let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    assert_eq!(from, nat);
    assert_eq!(&buf[..4], &[0, 0, 0, 0]);
    assert!(n >= 4 + 28);
    // Same SPIi, version 2.0, a response.
    assert_eq!(&buf[4..12], &hdr[..8]);
    assert_eq!(buf[4 + 17], 0x20);
    assert_ne!(buf[4 + 19] & 0x20, 0);

    tx.send(Control::Shutdown).await.unwrap();
    task.await.unwrap().unwrap();
}

/// The kernel's drop counter of the UDP socket on local port `port` (/proc/net/udp6, last
/// column).
fn proc_drops(port: u16) -> u64 {
    let table = fs::read_to_string("/proc/net/udp6").unwrap();
    let suffix = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1)
                .filter(|local| local.ends_with(&suffix))
                .and_then(|_| f.last()?.parse().ok())
        })
        .expect("the daemon's socket in /proc/net/udp6")
}

/// A burst the daemon cannot take in (its task busy, a tiny receive buffer) overflows the
/// socket's buffer: the stats show exactly the datagrams the kernel dropped.
#[test]
fn datagrams_the_kernel_drops_are_counted_in_stats() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    let text =
        ha_toml("::1", "").replace("nat_port = 0\n", "nat_port = 0\nreceive_buffer = 4096\n");
    fs::write(dir.path().join("ha.toml"), text).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = rt.enter();
    let d = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .unwrap();
    drop(guard);
    let addr = d.ike_addr().unwrap();
    let (tx, rx) = mpsc::channel(4);
    let daemon = std::thread::spawn(move || rt.block_on(d.run(rx)).map(|_| ()));
    let socket_drops = || {
        let (r, answer) = std::sync::mpsc::channel();
        tx.blocking_send(Control::Call(Box::new(move |d| {
            let _ = r.send(d.stats().socket_drops);
        })))
        .unwrap();
        answer.recv().unwrap()
    };
    assert_eq!(socket_drops(), 0);
    // Hold the daemon's task (and with it its socket readers, on the same thread).
    let (entered, wait_entered) = std::sync::mpsc::channel();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    tx.blocking_send(Control::Call(Box::new(move |_| {
        entered.send(()).unwrap();
        let _ = wait_go.recv();
    })))
    .unwrap();
    wait_entered.recv().unwrap();
    let peer = std::net::UdpSocket::bind("[::1]:0").unwrap();
    for i in 0..2000u32 {
        let mut junk = vec![0xa5; 200];
        junk[..4].copy_from_slice(&i.to_be_bytes());
        peer.send_to(&junk, addr).unwrap();
    }
    let dropped = proc_drops(addr.port());
    assert!(
        dropped > 0,
        "the burst should have overflowed a 4 KiB buffer"
    );
    go.send(()).unwrap();
    // The counter travels with the datagrams queued after the drops: send until one got
    // through and was read.
    let mut seen = 0;
    for _ in 0..500 {
        peer.send_to(b"probe", addr).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        seen = socket_drops();
        if seen > 0 && seen == proc_drops(addr.port()) {
            break;
        }
    }
    assert_eq!(seen, proc_drops(addr.port()));
    assert!(seen >= dropped);
    tx.blocking_send(Control::Shutdown).unwrap();
    daemon.join().unwrap().unwrap();
}
