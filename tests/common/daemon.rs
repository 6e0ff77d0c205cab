//! Daemons started from configuration files: a temp tree with the test certificates, the
//! configuration texts the daemon tests share, and waiting on a daemon's events and answers.

use std::fs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mip6_ike::daemon::{Control, Daemon, DaemonError, SharedKernel};
use mip6_ike::ike::{Event, IkeSaInfo};
use mip6_ike::kernel::Kernel;
use mip6_ike::mobility::Lease;
use mip6_ike::policy;
use tokio::sync::{broadcast, mpsc, oneshot};

/// A current-thread tokio runtime on a thread of its own, for tests that start daemons on it
/// and talk to them from blocking code (control socket clients, `mip6-ikectl`). Derefs to its
/// handle; dropping it stops the runtime and joins the thread.
pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RuntimeThread {
    pub fn start() -> RuntimeThread {
        let (stop, stopped) = oneshot::channel::<()>();
        let (htx, hrx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            htx.send(rt.handle().clone()).unwrap();
            rt.block_on(async move {
                let _ = stopped.await;
            });
        });
        RuntimeThread {
            handle: hrx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl std::ops::Deref for RuntimeThread {
    type Target = tokio::runtime::Handle;
    fn deref(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes a configuration file into a lab tree; a text holding a pre-shared key gets mode 0600,
/// as the daemon requires of a file with a secret.
pub fn write_conf(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    if text.contains("psk") {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const WAIT: Duration = Duration::from_secs(5);

pub const MN1_ID: &str = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net";
pub const HA_ID: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";

/// The certificates a home agent and mn1 need.
pub const HA_MN1_CERTS: [&str; 5] = [
    "ca-ecdsa.pem",
    "ha-ecdsa.pem",
    "ha-ecdsa.key",
    "mn1-ecdsa.pem",
    "mn1-ecdsa.key",
];

/// Copies `files` from the repository's certs/ into `to`, keys at 0600 as a deployment has
/// them (git checks them out 0644, which the daemon refuses).
pub fn copy_certs(to: &Path, files: &[&str]) {
    for f in files {
        let dst = to.join(f);
        fs::copy(Path::new(ROOT).join("certs").join(f), &dst).unwrap();
        let mode = if f.ends_with(".key") { 0o600 } else { 0o644 };
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A temp dir with users/ and the home agent's and mn1's certificates.
pub fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("users")).unwrap();
    copy_certs(dir.path(), &HA_MN1_CERTS);
    dir
}

/// mn1's user file with its static home address.
pub const MN1_STATIC_USER: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

/// mn1's user file without static addresses: everything comes from the pool `dyn`.
pub const MN1_POOL_USER: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
pool = "dyn"
classes = ["bu-ba", "payload"]
"#;

/// The start of every file: the role, [listen] on `listen` with ports the kernel picks, and the
/// [identity] table's header.
fn head(role: &str, listen: &str) -> String {
    format!(
        "role = \"{role}\"\n[listen]\naddresses = [\"{listen}\"]\nport = 0\nnat_port = 0\n[identity]\n"
    )
}

/// The home agent's file, listening on `listen`; `extra` adds lines to [home_agent] and more
/// tables.
pub fn ha_toml(listen: &str, extra: &str) -> String {
    format!(
        r#"{}id = "{HA_ID}"
certificate = "ha-ecdsa.pem"
private_key = "ha-ecdsa.key"
ca = ["ca-ecdsa.pem"]
[home_agent]
address = "2001:db8:1::1"
users_dir = "users"
{extra}"#,
        head("home-agent", listen)
    )
}

/// A mobile node's file for the home agent at `ha`: `identity` is the body of [identity],
/// `extra` adds lines to [mobile_node].
pub fn mn_toml(identity: &str, ha: SocketAddr, hoa: &str, extra: &str) -> String {
    format!(
        r#"{}{identity}[mobile_node]
home_agent = "{ha}"
home_agent_address = "2001:db8:1::1"
care_of_address = "::1"
home_address = "{hoa}"
classes = ["bu-ba", "payload"]
{extra}"#,
        head("mobile-node", "::1")
    )
}

/// mn1's file (certificate authentication); see [`mn_toml`].
pub fn mn1_toml(ha: SocketAddr, hoa: &str, extra: &str) -> String {
    let identity = format!(
        "id = \"{MN1_ID}\"\ncertificate = \"mn1-ecdsa.pem\"\nprivate_key = \"mn1-ecdsa.key\"\nca = [\"ca-ecdsa.pem\"]\n"
    );
    mn_toml(&identity, ha, hoa, extra)
}

/// mn1's file for a mobile node that listens on and initiates from `local` (an IPv4 address
/// too); see [`mn_toml`], which fixes both to ::1.
pub fn mn1_toml_at(local: IpAddr, ha: SocketAddr, hoa: &str, extra: &str) -> String {
    format!(
        r#"{}id = "{MN1_ID}"
certificate = "mn1-ecdsa.pem"
private_key = "mn1-ecdsa.key"
ca = ["ca-ecdsa.pem"]
[mobile_node]
home_agent = "{ha}"
home_agent_address = "2001:db8:1::1"
care_of_address = "{local}"
home_address = "{hoa}"
classes = ["bu-ba", "payload"]
{extra}"#,
        head("mobile-node", &local.to_string())
    )
}

/// A daemon running as a task of the current runtime.
pub struct Running {
    pub tx: mpsc::Sender<Control>,
    pub task: tokio::task::JoinHandle<Result<Box<dyn Kernel>, DaemonError>>,
    pub events: broadcast::Receiver<Event>,
    pub addr: SocketAddr,
}

/// Starts the daemon configured by the file at `path` on `kernel`.
pub fn start_on(path: &Path, kernel: Box<dyn Kernel>) -> Running {
    let d = Daemon::bind(policy::load(path).unwrap(), kernel).unwrap();
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

/// Starts the daemon configured by the file at `path` on a fresh in-memory kernel.
pub fn start(path: &Path) -> Running {
    start_on(path, Box::new(SharedKernel::new()))
}

/// Shuts the daemon down; returns the kernel it hands back.
pub async fn stop(r: Running) -> Box<dyn Kernel> {
    r.tx.send(Control::Shutdown).await.unwrap();
    r.task.await.unwrap().unwrap()
}

/// What a daemon reported while its CHILD_SAs came up.
pub struct Up {
    /// The IkeUp event.
    pub ike_up: Event,
    /// The home address assigned on the way, if any.
    pub hoa: Option<Ipv6Addr>,
}

/// Waits for the IKE SA and `n` CHILD_SAs; fails on an authentication or exchange failure.
pub async fn wait_children(rx: &mut broadcast::Receiver<Event>, n: usize) -> Up {
    let mut up = 0;
    let mut ike_up = None;
    let mut hoa = None;
    tokio::time::timeout(WAIT, async {
        while up < n || ike_up.is_none() {
            match rx.recv().await.expect("event channel") {
                e @ Event::IkeUp { .. } => ike_up = Some(e),
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
    Up {
        ike_up: ike_up.expect("IkeUp seen"),
        hoa,
    }
}

/// Waits for the first event `pred` accepts (returned); `what` names it in the failure.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("event channel");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not in time"))
}

/// Waits for an IKE SA to go down.
pub async fn wait_ike_down(rx: &mut broadcast::Receiver<Event>, what: &str) {
    wait_event(rx, what, |e| matches!(e, Event::IkeDown { .. })).await;
}

/// The daemon's IKE SAs.
pub async fn list(tx: &mpsc::Sender<Control>) -> Vec<IkeSaInfo> {
    let (r, rx) = oneshot::channel();
    tx.send(Control::List(r)).await.unwrap();
    rx.await.unwrap()
}

/// The home agent's leases.
pub async fn leases(tx: &mpsc::Sender<Control>) -> Vec<Lease> {
    let (r, rx) = oneshot::channel();
    tx.send(Control::Leases(r)).await.unwrap();
    rx.await.unwrap()
}
