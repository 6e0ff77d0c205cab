//! A home agent with two engine shards (`[engine] shards = 2`) on loopback with the in-memory
//! kernel, mobile nodes as separate daemons, everything seen through the control socket: SAs
//! of both shards are listed, counted and terminated; an identity that comes back with
//! INITIAL_CONTACT loses its older SA whichever shard holds it, and keeps its lease; a pool
//! address is never given twice.
//!
//! Which shard takes a new IKE SA depends on the mobile node's random SPIi (hashed with the
//! peer address), so the tests start mobile nodes until both shards were used; each further
//! attempt halves the odds that they were not (the bounds leave them below one in 30 000).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use mip6_ike::control::client::Client;
use mip6_ike::control::protocol::{
    InitiateResult, LeasesResult, ListSasResult, Request, StatsResult,
};
use mip6_ike::control::{ControlServer, ServerOptions};
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::kernel::Kernel;
use mip6_ike::policy;
use tokio::sync::mpsc;

use common::daemon::{self, HA_ID, ha_toml};

const WAIT: Duration = Duration::from_secs(20);
const PSK: &str = "test-only-psk-shards-0123456789";
const POOLS: &str = "[pools.dyn]\nrange = \"2001:db8:1::1000-2001:db8:1::10ff\"\n";

struct Node {
    sock: PathBuf,
    tx: mpsc::Sender<Control>,
    ike_addr: SocketAddr,
    kernel: SharedKernel,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    fn client(&self) -> Client {
        let mut c = Client::connect(&self.sock).unwrap();
        c.set_timeout(Some(WAIT * 2));
        c
    }
    fn stop(&self) {
        let _ = self.tx.try_send(Control::Shutdown);
    }
    /// Gone without a word (no Delete): a crash, as far as the peer can tell.
    fn crash(&self) {
        self.task.abort();
    }
}

/// Daemons on a private runtime (its own thread; the shards have threads of their own).
struct Lab {
    // Declared before `dir`: the runtime (and the daemons on it) stops before the tree goes.
    rt: daemon::RuntimeThread,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = daemon::tree();
        Lab {
            rt: daemon::RuntimeThread::start(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        daemon::write_conf(self.dir.path(), name, text);
    }

    fn start(&self, conf: &str) -> Node {
        let cfg = policy::load(self.path(conf)).unwrap();
        let sock = self.path(&format!("{conf}.sock"));
        let _ = fs::remove_file(&sock);
        let _g = self.rt.enter();
        let kernel = SharedKernel::new();
        let d = Daemon::bind(cfg, Box::new(kernel.clone())).unwrap();
        let ike_addr = d.ike_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let server =
            ControlServer::bind_with(&sock, 0o660, None, ServerOptions::default()).unwrap();
        server.serve(d.handle(tx.clone()));
        let task = self.rt.spawn(async move {
            let _ = d.run(rx).await;
        });
        Node {
            sock,
            tx,
            ike_addr,
            kernel,
            task,
        }
    }

    /// A home agent with two shards and `users` PSK users mn0.. taking addresses from `dyn`.
    fn ha(&self, users: usize) -> Node {
        for k in 0..users {
            self.write(
                &format!("users/mn{k}.toml"),
                &format!(
                    "identity = \"fqdn:mn{k}.example.net\"\npsk = \"{PSK}\"\npool = \"dyn\"\nclasses = [\"bu-ba\", \"payload\"]\n"
                ),
            );
        }
        self.write(
            "ha.toml",
            &ha_toml("::1", &format!("{POOLS}[engine]\nshards = 2\n")),
        );
        let ha = self.start("ha.toml");
        let hello: serde_json::Value = ha
            .client()
            .request(&Request::Hello { protocol: None })
            .unwrap();
        assert_eq!(hello["role"], "home-agent", "{hello}");
        ha
    }

    /// Mobile node `k` (PSK identity mnk), asking for a dynamic home address when told to.
    fn mn(&self, k: usize, ha: SocketAddr, file: &str) -> Node {
        self.write(
            file,
            &daemon::mn_toml(
                &format!(
                    "id = \"fqdn:mn{k}.example.net\"\npsk = \"{PSK}\"\nca = [\"ca-ecdsa.pem\"]\n"
                ),
                ha,
                "dynamic",
                &format!("home_agent_id = \"{HA_ID}\"\nauto_initiate = false\n"),
            ),
        );
        self.start(file)
    }
}

fn initiate(c: &mut Client) -> InitiateResult {
    c.call(&Request::Initiate {
        home_agent: None,
        home_address: Some("dynamic".into()),
        classes: None,
        timeout: Some(WAIT.as_secs_f64()),
        wait: None,
    })
    .unwrap()
}

fn list(c: &mut Client) -> ListSasResult {
    c.call(&Request::ListSas(Default::default())).unwrap()
}

/// The shard an IKE SA id names (the top byte of our SPI).
fn shard(ike: &str) -> u64 {
    u64::from_str_radix(ike, 16).unwrap() >> 56
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mobile_nodes_on_two_shards_are_listed_counted_and_terminated() {
    const MAX: usize = 16;
    let lab = Lab::new();
    let ha = lab.ha(MAX);
    let mut c = ha.client();
    let mut mns = Vec::new();
    let mut addresses = BTreeSet::new();
    // At least 4, then until both shards hold SAs.
    while mns.len() < 4
        || list(&mut c)
            .ike_sas
            .iter()
            .map(|s| shard(&s.ike))
            .collect::<BTreeSet<_>>()
            .len()
            < 2
    {
        assert!(mns.len() < MAX, "every IKE SA landed on one shard");
        let k = mns.len();
        let mn = lab.mn(k, ha.ike_addr, &format!("mn{k}.toml"));
        let r = initiate(&mut mn.client());
        let hoa = r.home_address.expect("a home address from the pool");
        // A pool address is never given twice, whichever shard gave it.
        assert!(addresses.insert(hoa), "{hoa} given twice");
        mns.push(mn);
    }
    let n = mns.len();
    let l = list(&mut c);
    assert_eq!(l.ike_sas.len(), n);
    assert!(
        l.ike_sas.iter().all(|s| shard(&s.ike) < 2),
        "{:?}",
        l.ike_sas.iter().map(|s| &s.ike).collect::<Vec<_>>()
    );
    let listed: BTreeSet<Ipv6Addr> = l.ike_sas.iter().filter_map(|s| s.home_address).collect();
    assert_eq!(listed, addresses);
    let leases: LeasesResult = c.call(&Request::Leases).unwrap();
    assert_eq!(leases.leases.len(), n);
    assert!(
        leases
            .leases
            .iter()
            .all(|l| l.state == "bound" && l.ike.is_some())
    );
    let s: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!((s.handshakes, s.ike_sas, s.child_sas), (n as u64, n, 2 * n));
    // Every CHILD_SA of every shard is in the one kernel: two per CHILD_SA.
    assert_eq!(ha.kernel.installed().len(), 4 * n);

    // Terminate one SA of each shard by id, and one mobile node by user.
    let of = |want: u64| {
        l.ike_sas
            .iter()
            .find(|s| shard(&s.ike) == want)
            .unwrap()
            .ike
            .clone()
    };
    let (a, b) = (of(0), of(1));
    for id in [&a, &b] {
        let r: serde_json::Value = c
            .request(&Request::Terminate {
                ike: Some(id.clone()),
                user: None,
            })
            .unwrap();
        assert_eq!(r["terminated"], serde_json::json!([id]));
    }
    let user = l
        .ike_sas
        .iter()
        .find(|s| s.ike != a && s.ike != b)
        .and_then(|s| s.user.clone())
        .unwrap();
    let r: serde_json::Value = c
        .request(&Request::Terminate {
            ike: None,
            user: Some(user.clone()),
        })
        .unwrap();
    assert_eq!(r["terminated"].as_array().unwrap().len(), 1);
    let left = wait_for("terminated SAs still listed", || {
        Some(list(&mut c)).filter(|l| l.ike_sas.len() == n - 3)
    });
    assert!(
        left.ike_sas
            .iter()
            .all(|s| s.ike != a && s.ike != b && s.user.as_deref() != Some(user.as_str()))
    );
    let s: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!((s.ike_sas, s.child_sas), (n - 3, 2 * (n - 3)));
    assert_eq!(ha.kernel.installed().len(), 4 * (n - 3));
    // Their leases wait for their identities; the others stay bound.
    let leases: LeasesResult = c.call(&Request::Leases).unwrap();
    assert_eq!(
        leases
            .leases
            .iter()
            .filter(|l| l.state == "released")
            .count(),
        3
    );
    assert_eq!(
        leases.leases.iter().filter(|l| l.state == "bound").count(),
        n - 3
    );
    for mn in &mns {
        mn.stop();
    }
    ha.stop();
}

#[test]
fn initial_contact_removes_the_older_sa_on_the_other_shard_and_the_lease_follows() {
    let lab = Lab::new();
    let ha = lab.ha(1);
    let mut c = ha.client();
    let mut mn = lab.mn(0, ha.ike_addr, "mn0.toml");
    let first = initiate(&mut mn.client()).home_address.unwrap();
    let mut cross = 0;
    for attempt in 1..=16 {
        let old = list(&mut c).ike_sas;
        assert_eq!(old.len(), 1);
        // The mobile node restarts: its SA stays on the home agent until INITIAL_CONTACT.
        mn.crash();
        mn = lab.mn(0, ha.ike_addr, &format!("mn0-{attempt}.toml"));
        let got = initiate(&mut mn.client()).home_address.unwrap();
        // The identity's lease, whichever shard it landed on.
        assert_eq!(got, first);
        // Already gone when the new SA's IKE_AUTH answer went out.
        let now = list(&mut c).ike_sas;
        assert_eq!(now.len(), 1, "older SA left: {old:?} {now:?}");
        assert_ne!(now[0].ike, old[0].ike);
        assert_eq!(ha.kernel.installed().len(), 4);
        let leases: LeasesResult = c.call(&Request::Leases).unwrap();
        assert_eq!(leases.leases.len(), 1);
        assert_eq!(leases.leases[0].state, "bound");
        assert_eq!(leases.leases[0].ike.as_deref(), Some(now[0].ike.as_str()));
        if shard(&now[0].ike) != shard(&old[0].ike) {
            cross += 1;
            if cross == 2 {
                break;
            }
        }
    }
    assert!(
        cross >= 1,
        "no new SA landed on the other shard than the old one"
    );
    mn.stop();
    ha.stop();
}
