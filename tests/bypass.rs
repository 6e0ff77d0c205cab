//! IKE sockets carry per-socket IPsec bypass policies, so that IPsec policies covering all
//! traffic, as mip6d installs them, cannot catch IKE itself: mip6d's `block` sub-policy before
//! each home registration (kept until the Binding Acknowledgement, which waits for our SAs), or
//! an any-protocol ESP policy with `level required`.
//!
//! Each test runs in a fresh network namespace (a thread that unshares CLONE_NEWNET) on the host
//! kernel, whose SPD applies to the daemons' sockets whatever kernel backend the daemons use;
//! the in-memory backend is enough for the SA side (the host kernel has no ESP). Needs root;
//! without it the tests fail with a message, unless MIP6_IKE_SKIP_KERNEL_TESTS=1 says to skip
//! them (as tests/xfrm_host.rs).
//!
//! Each test first shows that a plain UDP socket (no bypass) is caught, so the policies are in
//! force, then runs a full IKE_SA_INIT + IKE_AUTH (with CHILD_SAs) between a mobile node and a
//! home agent daemon over loopback, and reads the socket policies back from the SPD dump (the
//! kernel has no getsockopt for them, but lists them as `socket in` / `socket out`).

mod common;
use common::netns::ip;

use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command as Proc;
use std::time::Duration;

use common::daemon::{
    HA_ID, MN1_STATIC_USER, Running, ha_toml, mn1_toml_at, start, start_on, stop, tree,
    wait_children, wait_event,
};
use mip6_ike::daemon::{make_kernel, udp};
use mip6_ike::ike::Event;
use mip6_ike::policy;

const V6: &str = "::1";
const V4: &str = "127.0.0.1";

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Runs `f` in a fresh network namespace with lo up; None when the tests are to be skipped.
///
/// IPv4 on `lo` is exempt from IPsec by default (`disable_xfrm` and `disable_policy` are 1 for
/// loopback devices, 0 for every other interface): without turning them off, IPv4 policies
/// would never apply to loopback traffic and the IPv4 tests could not fail. IPv6 on `lo` has
/// no such exemption.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    common::netns::in_netns_with(
        "bypass tests",
        || {
            let out = Proc::new("sysctl")
                .args([
                    "-qw",
                    "net.ipv4.conf.lo.disable_xfrm=0",
                    "net.ipv4.conf.lo.disable_policy=0",
                ])
                .output()
                .expect("run sysctl");
            assert!(out.status.success(), "sysctl: {out:?}");
        },
        f,
    )
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// What the policies do to traffic without a bypass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Capture {
    /// `action block` in and out, and mip6d's own outbound block sub-policy.
    Block,
    /// ESP in transport mode, `level required`, for every protocol in and out (no SA exists:
    /// outbound packets raise an ACQUIRE and are dropped, inbound ones fail the template check).
    Esp,
}

/// Installs policies over all traffic of both families.
fn capture_all(c: Capture) {
    for any in ["::/0", "0.0.0.0/0"] {
        for dir in ["out", "in"] {
            let what = match c {
                Capture::Block => "action block",
                Capture::Esp => "tmpl proto esp mode transport level required",
            };
            ip(&format!(
                "xfrm policy add src {any} dst {any} dir {dir} {what}"
            ));
        }
    }
    if c == Capture::Block {
        // Exactly what mip6d installs on the MN before a home registration.
        ip("xfrm policy add src ::/0 dst ::/0 dir out action block priority 4 ptype sub");
    }
}

/// A plain UDP socket on `local` cannot reach another one: the policies are in force.
fn plain_socket_is_caught(local: IpAddr, c: Capture) {
    let rx = UdpSocket::bind((local, 0)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let tx = UdpSocket::bind((local, 0)).unwrap();
    let sent = tx.send_to(b"probe", rx.local_addr().unwrap());
    if c == Capture::Block {
        let e = sent.expect_err("a blocked send");
        assert_eq!(e.raw_os_error(), Some(nix::libc::EPERM), "{local}: {e}");
    }
    let mut buf = [0u8; 8];
    let got = rx.recv(&mut buf);
    assert!(
        matches!(&got, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{local} {c:?}: a plain socket got through: {got:?}"
    );
}

/// The socket policies in the SPD, as (IPv6 selector, direction) pairs.
fn socket_policies() -> Vec<(bool, String)> {
    let dump = ip("xfrm policy list");
    let mut v6 = false;
    let mut found = Vec::new();
    for line in dump.lines() {
        if line.starts_with("src ") {
            v6 = line.contains(':');
        } else if let Some(rest) = line.trim().strip_prefix("socket ") {
            let dir = rest.split_whitespace().next().unwrap_or_default();
            found.push((v6, dir.to_string()));
        }
    }
    found
}

/// Every socket of the running daemons (`sockets` of the family of `local`), and no other,
/// carries one bypass policy per direction.
fn assert_socket_policies(local: IpAddr, sockets: usize) {
    let got = socket_policies();
    for dir in ["in", "out"] {
        let n = got
            .iter()
            .filter(|(v6, d)| *v6 == local.is_ipv6() && d == dir)
            .count();
        assert_eq!(n, sockets, "socket policies dir {dir}: {got:?}");
    }
    assert_eq!(got.len(), 2 * sockets, "{got:?}");
}

/// The home agent (in-memory kernel) on `local`, from files in `dir`.
fn start_ha(dir: &Path, local: IpAddr) -> Running {
    fs::write(dir.join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.join("ha.toml"), ha_toml(&local.to_string(), "")).unwrap();
    start(&dir.join("ha.toml"))
}

/// mn1's file for the home agent at `ha`, listening on and initiating from `local`; `extra`
/// adds top-level tables.
fn write_mn(dir: &Path, local: IpAddr, ha: SocketAddr, extra: &str) -> std::path::PathBuf {
    let body = mn1_toml_at(
        local,
        ha,
        "2001:db8:1::100",
        &format!("home_agent_id = \"{HA_ID}\"\n{extra}"),
    );
    let path = dir.join("mn.toml");
    fs::write(&path, body).unwrap();
    path
}

/// The home agent binds before the policies arrive, the mobile node after them (mip6d's block
/// is in place before the key manager's IKE starts): both must get through, both ways.
fn handshake_through(local: &'static str, c: Capture) {
    in_netns(move || {
        let local = a(local);
        let dir = tree();
        block_on(async move {
            let mut ha = start_ha(dir.path(), local);
            capture_all(c);
            plain_socket_is_caught(local, c);
            let mn_path = write_mn(dir.path(), local, ha.addr, "");
            let mut mn = start(&mn_path);

            let mn_up = wait_children(&mut mn.events, 2).await.ike_up;
            assert!(
                matches!(mn_up, Event::IkeUp { remote, .. } if remote == ha.addr),
                "{mn_up:?}"
            );
            wait_children(&mut ha.events, 2).await;
            // IKE and NAT-T port of each daemon.
            assert_socket_policies(local, 4);
            // The policies are still in force for everything else.
            plain_socket_is_caught(local, c);

            stop(mn).await;
            stop(ha).await;
        });
    });
}

#[test]
fn ipv6_ike_passes_block_policies() {
    handshake_through(V6, Capture::Block);
}

#[test]
fn ipv4_ike_passes_block_policies() {
    handshake_through(V4, Capture::Block);
}

#[test]
fn ipv6_ike_passes_any_protocol_esp_policies() {
    handshake_through(V6, Capture::Esp);
}

#[test]
fn ipv4_ike_passes_any_protocol_esp_policies() {
    handshake_through(V4, Capture::Esp);
}

/// A mobile node without a configured care-of address asks routing for its source address
/// (a connected UDP socket, which runs the outbound policy lookup without sending). Under the
/// block that lookup fails without the bypass; under the ESP policy it succeeds even without
/// (no SA yet: the kernel answers with a route that drops), checked here all the same.
#[test]
fn route_lookup_passes_capturing_policies() {
    for c in [Capture::Block, Capture::Esp] {
        in_netns(move || {
            capture_all(c);
            for local in [V6, V4] {
                let remote = SocketAddr::new(a(local), 500);
                let plain = UdpSocket::bind((a(local), 0)).unwrap();
                if c == Capture::Block {
                    // The lookup alone is refused without the bypass.
                    let e = plain.connect(remote).expect_err("a blocked connect");
                    assert_eq!(e.raw_os_error(), Some(nix::libc::EPERM), "{local}: {e}");
                }
                let src = udp::route_source(remote);
                assert_eq!(src.ok(), Some(a(local)), "{local} {c:?}");
            }
        });
    }
}

/// With the XFRM backend, where the bypass is mandatory: a mobile node on the XFRM kernel
/// gets its IKE SA up with a home agent through mip6d's block. (Its CHILD_SAs cannot be
/// installed: the host kernel has no ESP.)
#[test]
fn xfrm_backend_mobile_node_passes_block_policies() {
    in_netns(|| {
        let local = a(V6);
        let dir = tree();
        block_on(async move {
            let mut ha = start_ha(dir.path(), local);
            capture_all(Capture::Block);
            plain_socket_is_caught(local, Capture::Block);
            let mn_path = write_mn(dir.path(), local, ha.addr, "[kernel]\nbackend = \"xfrm\"\n");
            let kernel = make_kernel(&policy::load(&mn_path).unwrap()).unwrap();
            let mut mn = start_on(&mn_path, kernel);

            let up = wait_event(&mut mn.events, "the MN's IKE SA", |e| {
                matches!(e, Event::IkeUp { .. } | Event::AuthFailed { .. })
            })
            .await;
            assert!(
                matches!(up, Event::IkeUp { remote, .. } if remote == ha.addr),
                "{up:?}"
            );
            wait_event(&mut ha.events, "the HA's IKE SA", |e| {
                matches!(e, Event::IkeUp { .. })
            })
            .await;
            assert_socket_policies(local, 4);

            stop(mn).await;
            stop(ha).await;
        });
    });
}
