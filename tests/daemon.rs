//! The daemon glue over real loopback sockets: the demo, a home agent and a mobile node started
//! from configuration files, shutdown that empties the kernel, reload, and the NAT-T framing.

use std::fs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mip6_ike::daemon::{Control, Daemon, SharedKernel, demo};
use mip6_ike::ike::{Event, IkeSaInfo};
use mip6_ike::kernel::Mode;
use mip6_ike::mobility::SaClass;
use mip6_ike::policy;
use tokio::sync::{broadcast, mpsc, oneshot};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WAIT: Duration = Duration::from_secs(5);

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

/// Test configuration trees with 0600 keys (git checks keys out 0644, which the daemon refuses).
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("users")).unwrap();
    for f in [
        "ca-ecdsa.pem",
        "ha-ecdsa.pem",
        "ha-ecdsa.key",
        "mn1-ecdsa.pem",
        "mn1-ecdsa.key",
    ] {
        let to = dir.path().join(f);
        fs::copy(Path::new(ROOT).join("certs").join(f), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

fn ha_toml(listen: &str) -> String {
    format!(
        r#"role = "home-agent"
[listen]
addresses = ["{listen}"]
port = 0
nat_port = 0
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
certificate = "ha-ecdsa.pem"
private_key = "ha-ecdsa.key"
ca = ["ca-ecdsa.pem"]
[home_agent]
address = "2001:db8:1::1"
users_dir = "users"
"#
    )
}

const MN1_USER: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

fn mn_toml(ha: SocketAddr) -> String {
    format!(
        r#"role = "mobile-node"
[listen]
addresses = ["::1"]
port = 0
nat_port = 0
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
certificate = "mn1-ecdsa.pem"
private_key = "mn1-ecdsa.key"
ca = ["ca-ecdsa.pem"]
[mobile_node]
home_agent = "{ha}"
home_agent_address = "2001:db8:1::1"
care_of_address = "::1"
home_address = "2001:db8:1::100"
classes = ["bu-ba", "payload"]
home_agent_id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
"#
    )
}

/// Waits for `n` CHILD_SAs; returns the IkeUp event seen on the way.
async fn wait_children(rx: &mut broadcast::Receiver<Event>, n: usize) -> Event {
    let mut up = 0;
    let mut ike_up = None;
    tokio::time::timeout(WAIT, async {
        while up < n || ike_up.is_none() {
            match rx.recv().await.expect("event channel") {
                e @ Event::IkeUp { .. } => ike_up = Some(e),
                Event::ChildUp(_) => up += 1,
                Event::AuthFailed { reason, .. } | Event::ExchangeFailed { reason, .. } => {
                    panic!("failed: {reason}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("CHILD_SAs did not come up in time");
    ike_up.unwrap()
}

async fn list(tx: &mpsc::Sender<Control>) -> Vec<IkeSaInfo> {
    let (r, rx) = oneshot::channel();
    tx.send(Control::List(r)).await.unwrap();
    rx.await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn daemons_from_config_files_establish_and_clean_up_on_shutdown() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_USER).unwrap();
    // The HA listens on the wildcard: its local address comes from IPV6_PKTINFO.
    fs::write(dir.path().join("ha.toml"), ha_toml("::")).unwrap();
    let ha_cfg = policy::load(dir.path().join("ha.toml")).unwrap();
    let ha_kernel = SharedKernel::new();
    let ha = Daemon::bind(ha_cfg, Box::new(ha_kernel.clone())).unwrap();
    let ha_port = ha.ike_addr().unwrap().port();
    let ha_addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), ha_port);

    fs::write(dir.path().join("mn.toml"), mn_toml(ha_addr)).unwrap();
    let mn_cfg = policy::load(dir.path().join("mn.toml")).unwrap();
    let mn_kernel = SharedKernel::new();
    let mn = Daemon::bind(mn_cfg, Box::new(mn_kernel.clone())).unwrap();

    let (mut ha_ev, mut mn_ev) = (ha.subscribe(), mn.subscribe());
    let (ha_tx, ha_rx) = mpsc::channel(4);
    let (mn_tx, mn_rx) = mpsc::channel(4);
    let ha_task = tokio::spawn(ha.run(ha_rx));
    let mn_task = tokio::spawn(mn.run(mn_rx));

    let mn_up = wait_children(&mut mn_ev, 2).await;
    let ha_up = wait_children(&mut ha_ev, 2).await;
    match ha_up {
        // Not [::]: the datagram's destination address.
        Event::IkeUp { local, .. } => assert_eq!(local, ha_addr),
        e => panic!("{e:?}"),
    }
    assert!(matches!(mn_up, Event::IkeUp { remote, .. } if remote == ha_addr));
    assert_eq!(mn_kernel.with(|k| k.len()), 4);
    assert_eq!(ha_kernel.with(|k| k.len()), 4);
    let l = list(&ha_tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].children.len(), 2);

    // The MN stops: its SAs leave its kernel, and its Delete reaches the HA, whose SAs go too.
    mn_tx.send(Control::Shutdown).await.unwrap();
    let k = mn_task.await.unwrap().unwrap();
    assert!(k.installed().is_empty());
    assert_eq!(mn_kernel.with(|k| k.len()), 0);
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::IkeDown { .. } = ha_ev.recv().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("HA did not see the MN leave");
    assert_eq!(ha_kernel.with(|k| k.len()), 0);
    assert!(list(&ha_tx).await.is_empty());

    ha_tx.send(Control::Shutdown).await.unwrap();
    assert!(ha_task.await.unwrap().unwrap().installed().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn home_agent_shutdown_empties_its_kernel() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml("::1")).unwrap();
    let ha_kernel = SharedKernel::new();
    let ha = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(ha_kernel.clone()),
    )
    .unwrap();
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.ike_addr().unwrap())).unwrap();
    let mn_kernel = SharedKernel::new();
    let mn = Daemon::bind(
        policy::load(dir.path().join("mn.toml")).unwrap(),
        Box::new(mn_kernel.clone()),
    )
    .unwrap();
    let (mut ha_ev, mut mn_ev) = (ha.subscribe(), mn.subscribe());
    let (ha_tx, ha_rx) = mpsc::channel(4);
    let (mn_tx, mn_rx) = mpsc::channel(4);
    let ha_task = tokio::spawn(ha.run(ha_rx));
    let mn_task = tokio::spawn(mn.run(mn_rx));
    wait_children(&mut ha_ev, 2).await;
    wait_children(&mut mn_ev, 2).await;

    // A broken file on reload is logged and the running configuration kept.
    fs::write(dir.path().join("ha.toml"), "role = ").unwrap();
    ha_tx.send(Control::Reload).await.unwrap();
    assert_eq!(list(&ha_tx).await.len(), 1);

    ha_tx.send(Control::Shutdown).await.unwrap();
    ha_task.await.unwrap().unwrap();
    assert_eq!(ha_kernel.with(|k| k.len()), 0);
    // The HA's Delete reached the MN.
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::IkeDown { .. } = mn_ev.recv().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("MN did not see the HA leave");
    assert_eq!(mn_kernel.with(|k| k.len()), 0);
    mn_tx.send(Control::Shutdown).await.unwrap();
    mn_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn nat_t_port_strips_and_adds_the_non_esp_marker() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml("::1")).unwrap();
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
