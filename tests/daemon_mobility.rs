//! The daemon's part of the mobility features over loopback: leases saved to the lease file and
//! loaded again after a restart, and a reload that adds and removes users without touching other
//! users' SAs.

use std::fs;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::ike::{Event, IkeSaInfo};
use mip6_ike::mobility::{Lease, LeaseState};
use mip6_ike::policy;
use tokio::sync::{broadcast, mpsc, oneshot};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WAIT: Duration = Duration::from_secs(5);

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

const HA: &str = r#"role = "home-agent"
[listen]
addresses = ["::1"]
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
lease_file = "leases.toml"
lease_grace = 600
[pools.dyn]
range = "2001:db8:1::1000-2001:db8:1::10ff"
"#;

const MN1_POOL: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
pool = "dyn"
classes = ["bu-ba", "payload"]
"#;

const MN1_STATIC: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

fn mn_toml(ha: SocketAddr, hoa: &str) -> String {
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
home_address = "{hoa}"
classes = ["bu-ba", "payload"]
"#
    )
}

/// Waits for `n` CHILD_SAs; returns the home address assigned on the way, if any.
async fn wait_children(rx: &mut broadcast::Receiver<Event>, n: usize) -> Option<Ipv6Addr> {
    let mut up = 0;
    let mut hoa = None;
    tokio::time::timeout(WAIT, async {
        while up < n {
            match rx.recv().await.expect("event channel") {
                Event::ChildUp(_) => up += 1,
                Event::HoaAssigned { address, .. } => hoa = Some(address),
                Event::AuthFailed { reason, .. } | Event::ExchangeFailed { reason, .. } => {
                    panic!("failed: {reason}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("CHILD_SAs did not come up in time");
    hoa
}

async fn leases(tx: &mpsc::Sender<Control>) -> Vec<Lease> {
    let (r, rx) = oneshot::channel();
    tx.send(Control::Leases(r)).await.unwrap();
    rx.await.unwrap()
}

async fn list(tx: &mpsc::Sender<Control>) -> Vec<IkeSaInfo> {
    let (r, rx) = oneshot::channel();
    tx.send(Control::List(r)).await.unwrap();
    rx.await.unwrap()
}

struct Running {
    tx: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<
        Result<Box<dyn mip6_ike::kernel::Kernel>, mip6_ike::daemon::DaemonError>,
    >,
    events: broadcast::Receiver<Event>,
    addr: SocketAddr,
}

fn start(path: &Path) -> Running {
    let d = Daemon::bind(policy::load(path).unwrap(), Box::new(SharedKernel::new())).unwrap();
    let addr = d.ike_addr().unwrap();
    let events = d.subscribe();
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(d.run(rx));
    Running {
        tx,
        task,
        events,
        addr,
    }
}

async fn stop(r: Running) {
    r.tx.send(Control::Shutdown).await.unwrap();
    r.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn leases_are_saved_and_survive_a_restart() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_POOL).unwrap();
    fs::write(dir.path().join("ha.toml"), HA).unwrap();
    let file = dir.path().join("leases.toml");
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    let got = wait_children(&mut mn.events, 2)
        .await
        .expect("a home address");
    wait_children(&mut ha.events, 2).await;
    assert_eq!(got, "2001:db8:1::1000".parse::<Ipv6Addr>().unwrap());
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Bound));
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("2001:db8:1::1000") && text.contains("state = \"bound\""),
        "{text}"
    );
    // No temporary file left next to it.
    assert!(!dir.path().join(".leases.toml.tmp").exists());

    stop(mn).await;
    stop(ha).await;
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("state = \"released\""), "{text}");

    // Restart: the lease is loaded, and the same identity gets the same address back.
    let mut ha = start(&dir.path().join("ha.toml"));
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Released));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    assert_eq!(wait_children(&mut mn.events, 2).await, Some(got));
    wait_children(&mut ha.events, 2).await;
    assert_eq!(leases(&ha.tx).await[0].state, LeaseState::Bound);
    stop(mn).await;
    stop(ha).await;

    // A lease file the daemon cannot read stops the start (its addresses may be in use).
    fs::write(&file, "version = 9\n").unwrap();
    let e = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("version 9 is not supported"), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn reload_adds_and_removes_users_without_touching_other_sas() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC).unwrap();
    fs::write(dir.path().join("ha.toml"), HA).unwrap();
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(
        dir.path().join("mn.toml"),
        mn_toml(ha.addr, "2001:db8:1::100"),
    )
    .unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    wait_children(&mut mn.events, 2).await;
    wait_children(&mut ha.events, 2).await;
    let before = list(&ha.tx).await;
    assert_eq!(before.len(), 1);

    // Add a user: mn1's SAs are untouched.
    fs::write(
        dir.path().join("users/mn9.toml"),
        "identity = \"fqdn:mn9.example.net\"\npsk = \"another example key 0123456789\"\nhome_addresses = [\"2001:db8:1::900\"]\n",
    )
    .unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    assert_eq!(list(&ha.tx).await, before);

    // Remove mn1: its IKE SA is deleted, on both sides.
    fs::remove_file(dir.path().join("users/mn1.toml")).unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    for (side, events) in [("MN", &mut mn.events), ("HA", &mut ha.events)] {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Event::IkeDown { .. } = events.recv().await.unwrap() {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{side}: the removed user's IKE SA was not deleted"));
    }
    assert!(list(&ha.tx).await.is_empty());
    stop(mn).await;
    stop(ha).await;
}
