//! The load generator (`mip6_ike::load`, the `mip6-ike-load` binary) against our own home agent
//! daemon on loopback: a few dozen handshakes, counted, never timed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use clap::Parser;
use common::daemon::{MN1_STATIC_USER, ha_toml, leases, list, start, stop, tree};
use mip6_ike::load::{LoadArgs, Report, run};

/// No per-source limits and no COOKIEs: every initiation comes from [::1].
const NO_LIMITS: &str = "[limits]\ncookie_threshold = 100000\nmax_half_open = 100000\nhalf_open_per_source = 100000\ninit_rate_per_source = 100000\n";

fn args(target: std::net::SocketAddr, extra: &[&str]) -> LoadArgs {
    let t = target.to_string();
    let mut v = vec![
        "mip6-ike-load",
        "--target",
        &t,
        "--local",
        "[::1]:0",
        "--home-agent",
        "2001:db8:1::1",
        "-q",
    ];
    v.extend_from_slice(extra);
    if !extra.contains(&"--timeout") {
        v.extend_from_slice(&["--timeout", "20"]);
    }
    LoadArgs::try_parse_from(v).unwrap()
}

async fn generate(a: LoadArgs) -> Report {
    tokio::task::spawn_blocking(move || run(&a, |_| {}))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn ecdsa_handshakes_complete_and_are_deleted() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml("::1", NO_LIMITS)).unwrap();
    let ha = start(&dir.path().join("ha.toml"));
    let r = generate(args(
        ha.addr,
        &["--auth", "ecdsa", "--count", "40", "--window", "8"],
    ))
    .await;
    assert_eq!(r.started, 40, "{r}");
    assert_eq!(r.completed, 40, "{r}");
    assert_eq!(r.failed, 0, "{r}");
    assert_eq!(r.latency.len(), 40);
    assert!(r.result_line().contains("completed=40 failed=0"));
    // Every SA was deleted again: the generator waited for each Delete's answer.
    assert!(list(&ha.tx).await.is_empty());
    stop(ha).await;
}

#[tokio::test]
async fn psk_sas_are_held_with_keep_then_deleted() {
    let dir = tree();
    let user = "identity = \"dn:C=CH, O=mip6-ike test, CN=mn1@example.net\"\npsk = \"a long enough test pre-shared key\"\nhome_addresses = [\"2001:db8:1::100\"]\nclasses = [\"bu-ba\", \"payload\"]\nuniqueness = \"no\"\n";
    let path = dir.path().join("users/mn1.toml");
    fs::write(&path, user).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(dir.path().join("ha.toml"), ha_toml("::1", NO_LIMITS)).unwrap();
    let ha = start(&dir.path().join("ha.toml"));
    let gen_task = tokio::spawn(generate(args(
        ha.addr,
        &[
            "--auth", "psk", "--count", "24", "--window", "6", "--keep", "--hold", "3",
        ],
    )));
    // While the generator holds them, the home agent has all 24 (one identity, no
    // INITIAL_CONTACT: none replaced another).
    let mut most = 0;
    for _ in 0..100 {
        let n = list(&ha.tx)
            .await
            .iter()
            .filter(|s| s.state == "established" && s.children.len() == 1)
            .count();
        most = most.max(n);
        if n == 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(most, 24);
    let r = gen_task.await.unwrap();
    assert_eq!((r.completed, r.failed, r.held), (24, 0, 24), "{r}");
    // The generator's shutdown Deletes reach the home agent.
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = list(&ha.tx).await.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0);
    stop(ha).await;
}

#[tokio::test]
async fn pool_identities_each_get_a_lease() {
    let dir = tree();
    for i in 1..=12 {
        let path = dir.path().join(format!("users/mn{i}.toml"));
        fs::write(
            &path,
            format!("identity = \"fqdn:mn{i}.load.example\"\npsk = \"a long enough test pre-shared key\"\npool = \"dyn\"\nclasses = [\"payload\"]\n"),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = format!("{NO_LIMITS}[pools.dyn]\nprefix = \"2001:db8:1:1::/120\"\n");
    fs::write(dir.path().join("ha.toml"), ha_toml("::1", &extra)).unwrap();
    let ha = start(&dir.path().join("ha.toml"));
    let r = generate(args(
        ha.addr,
        &[
            "--auth",
            "psk",
            "--hoa",
            "dynamic",
            "--identities",
            "12",
            "--count",
            "24",
            "--window",
            "4",
        ],
    ))
    .await;
    assert_eq!((r.completed, r.failed), (24, 0), "{r}");
    // Twelve identities, twelve leases (the second round renewed each one's own).
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 12, "{l:?}");
    let mut ids: Vec<&str> = l.iter().map(|x| x.identity.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    stop(ha).await;
}

#[test]
fn unreachable_responder_times_out_instead_of_hanging() {
    // Nothing listens on this port of ::1: every initiation fails after --timeout.
    let sock = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let target = sock.local_addr().unwrap();
    drop(sock);
    let a = args(
        target,
        &[
            "--auth",
            "psk",
            "--count",
            "3",
            "--window",
            "3",
            "--timeout",
            "0.5",
            "--retransmit",
            "0.1",
        ],
    );
    let r = run(&a, |_| {}).unwrap();
    assert_eq!((r.started, r.completed, r.failed), (3, 0, 3), "{r}");
    assert!(r.failures.iter().any(|(w, _)| w.contains("timeout")), "{r}");
}
