//! The control socket over a real Unix socket, against home agents and mobile nodes running on
//! loopback with the in-memory kernel. The daemons run on their own tokio runtime; the tests
//! talk to them with the blocking client (and with the mip6-ikectl binary), as mip6d would.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mip6_ike::control::client::{Client, ClientError};
use mip6_ike::control::protocol::{
    CertsResult, ErrorCode, EventMsg, HelloResult, Incoming, InitiateResult, LeasesResult,
    ListSasResult, ListUsersResult, ReloadResult, Request, StatsResult,
};
use mip6_ike::control::{ControlServer, ServerOptions};
use mip6_ike::daemon::control::DaemonHandle;
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::kernel::{Direction, KernelEvent, Migrate, Selector};
use mip6_ike::policy;
use tokio::sync::mpsc;

use common::daemon::{self, HA_ID, MN1_ID, MN1_POOL_USER, MN1_STATIC_USER, ROOT, ha_toml};

const IKECTL: &str = env!("CARGO_BIN_EXE_mip6-ikectl");
const WAIT: Duration = Duration::from_secs(10);

const MN2_PSK: &str = "test-only-psk-0123456789abcdef";

fn hoa1() -> Ipv6Addr {
    "2001:db8:1::100".parse().unwrap()
}

/// A running daemon with its control socket.
struct Node {
    sock: PathBuf,
    tx: mpsc::Sender<Control>,
    ike_addr: SocketAddr,
    handle: DaemonHandle,
    rt: tokio::runtime::Handle,
}

/// Daemons on a private runtime (its own thread), files in a private directory.
struct Lab {
    // Declared before `dir`: the runtime (and the daemons on it) stops before the tree goes.
    rt: daemon::RuntimeThread,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = daemon::tree();
        // Other uids must reach the sockets for the permission tests.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
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

    /// Starts a daemon from `conf` (a file name in the lab) with its socket `<conf>.sock`.
    fn start(&self, conf: &str, opts: ServerOptions, mode: u32, group: Option<&str>) -> Node {
        let cfg = policy::load(self.path(conf)).unwrap();
        let sock = self.path(&format!("{conf}.sock"));
        let _g = self.rt.enter();
        let d = Daemon::bind(cfg, Box::new(SharedKernel::new())).unwrap();
        let ike_addr = d.ike_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let server = ControlServer::bind_with(&sock, mode, group, opts).unwrap();
        let handle = d.handle(tx.clone());
        server.serve(handle.clone());
        self.rt.spawn(async move {
            let _ = d.run(rx).await;
        });
        Node {
            sock,
            tx,
            ike_addr,
            handle,
            rt: self.rt.clone(),
        }
    }

    fn ha(&self, users: &[(&str, &str)]) -> Node {
        self.ha_with(users, ServerOptions::default())
    }

    fn ha_with(&self, users: &[(&str, &str)], opts: ServerOptions) -> Node {
        for (name, text) in users {
            self.write(&format!("users/{name}.toml"), text);
        }
        self.write("ha.toml", &ha_toml("::1", ""));
        self.start("ha.toml", opts, 0o660, None)
    }

    /// The home agent's files with mn1 as its user (no daemon yet).
    fn write_ha(&self) {
        self.write("users/mn1.toml", MN1_STATIC_USER);
        self.write("ha.toml", &ha_toml("::1", ""));
    }

    /// A home agent with mn1 as its user, and mn1 (at `hoa`) as its mobile node.
    fn ha_mn1(&self, hoa: &str) -> (Node, Node) {
        let ha = self.ha(&[("mn1", MN1_STATIC_USER)]);
        let mn = self.mn("mn.toml", &mn1_toml(ha.ike_addr, hoa, HA_ID));
        (ha, mn)
    }

    fn mn(&self, name: &str, text: &str) -> Node {
        self.write(name, text);
        self.start(name, ServerOptions::default(), 0o660, None)
    }
}

impl Node {
    fn client(&self) -> Client {
        let mut c = Client::connect(&self.sock).unwrap();
        c.set_timeout(Some(WAIT * 2));
        c
    }
    /// What mip6d's MIGRATE would tell the daemon (the in-memory kernel produces none).
    fn kernel_event(&self, ev: KernelEvent) {
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.call(move |d| d.kernel_event(ev)).await })
            .unwrap();
    }
    /// A client subscribed to the event stream.
    fn subscribe(&self) -> Client {
        let mut c = self.client();
        c.request(&Request::Subscribe).unwrap();
        c
    }
    fn stop(&self) {
        let _ = self.tx.try_send(Control::Shutdown);
    }
}

fn mn2_user() -> String {
    format!(
        "identity = \"fqdn:mn2.example.net\"\npsk = \"{MN2_PSK}\"\nhome_addresses = [\"2001:db8:1::200\"]\nclasses = [\"bu-ba\", \"payload\"]\n"
    )
}

/// A certificate mobile node (mn1) that initiates only when asked.
fn mn1_toml(ha: SocketAddr, hoa: &str, ha_id: &str) -> String {
    daemon::mn1_toml(
        ha,
        hoa,
        &format!("home_agent_id = \"{ha_id}\"\nauto_initiate = false\n"),
    )
}

/// A PSK mobile node (mn2).
fn mn2_toml(ha: SocketAddr) -> String {
    daemon::mn_toml(
        &format!("id = \"fqdn:mn2.example.net\"\npsk = \"{MN2_PSK}\"\nca = [\"ca-ecdsa.pem\"]\n"),
        ha,
        "2001:db8:1::200",
        &format!("home_agent_id = \"{HA_ID}\"\nauto_initiate = false\n"),
    )
}

fn initiate(c: &mut Client, home_address: Option<&str>) -> Result<InitiateResult, ClientError> {
    c.call(&Request::Initiate {
        home_agent: None,
        home_address: home_address.map(str::to_string),
        classes: None,
        timeout: Some(WAIT.as_secs_f64()),
        wait: None,
    })
}

fn list(c: &mut Client) -> ListSasResult {
    c.call(&Request::ListSas(Default::default())).unwrap()
}

fn daemon_error(
    r: Result<impl std::fmt::Debug, ClientError>,
) -> mip6_ike::control::protocol::ErrorBody {
    match r {
        Err(ClientError::Daemon(e)) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// Terminates the IKE SA `ike` or the SAs of `user`.
fn terminate(
    c: &mut Client,
    ike: Option<&str>,
    user: Option<&str>,
) -> Result<serde_json::Value, ClientError> {
    c.request(&Request::Terminate {
        ike: ike.map(str::to_string),
        user: user.map(str::to_string),
    })
}

/// Events until `pred` matches one (returned), failing after WAIT.
fn expect_event(c: &mut Client, what: &str, pred: impl Fn(&EventMsg) -> bool) -> EventMsg {
    let end = Instant::now() + WAIT;
    c.set_timeout(Some(WAIT));
    loop {
        assert!(Instant::now() < end, "no {what} event in time");
        match c.next_event() {
            Ok(e) if pred(&e) => return e,
            Ok(_) => {}
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Polls `f` until it gives a value (returned), failing with `what` after WAIT.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- initiate ----

#[test]
fn hello_names_protocol_and_role() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER)]);
    let h: HelloResult = ha
        .client()
        .call(&Request::Hello { protocol: Some(1) })
        .unwrap();
    assert_eq!(h.protocol, 1);
    assert_eq!(h.role, "home-agent");
    assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
    ha.stop();
}

#[test]
fn initiate_static_waits_for_the_sas_and_is_idempotent() {
    let lab = Lab::new();
    let (ha, mn) = lab.ha_mn1("2001:db8:1::100");
    let mut c = mn.client();
    // auto_initiate = false: nothing before we ask.
    assert!(list(&mut c).ike_sas.is_empty());
    let r = initiate(&mut c, None).unwrap();
    assert!(!r.existing);
    assert_eq!(r.home_address, Some(hoa1()));
    let mut classes: Vec<_> = r.children.iter().filter_map(|c| c.class.clone()).collect();
    classes.sort();
    assert_eq!(classes, ["bu-ba", "payload"]);
    assert_eq!(r.child_lifetime_s, 3900);
    // The reply came after the SAs were installed: the listing shows them.
    let l = list(&mut c);
    assert_eq!(l.ike_sas.len(), 1);
    assert_eq!(l.ike_sas[0].ike, r.ike);
    assert_eq!(l.ike_sas[0].children.len(), 2);
    // Asking again answers with the same SA.
    let again = initiate(&mut c, Some("2001:db8:1::100")).unwrap();
    assert!(again.existing);
    assert_eq!(again.ike, r.ike);
    // The home agent lists it under the user.
    let hl = list(&mut ha.client());
    assert_eq!(hl.ike_sas.len(), 1);
    assert_eq!(hl.ike_sas[0].user.as_deref(), Some("mn1"));
    assert_eq!(hl.ike_sas[0].home_address, Some(hoa1()));
    let bu = hl.ike_sas[0]
        .children
        .iter()
        .find(|c| c.class.as_deref() == Some("bu-ba"))
        .unwrap();
    assert_eq!((bu.reqid_in, bu.reqid_out), (1, 2));
    assert_eq!(bu.mode, "transport");
    mn.stop();
    ha.stop();
}

#[test]
fn initiate_dynamic_carries_the_home_address_the_home_agent_assigned() {
    let lab = Lab::new();
    let (ha, mn) = lab.ha_mn1("dynamic");
    let mut ev = mn.subscribe();
    let mut c = mn.client();
    let r = initiate(&mut c, Some("dynamic")).unwrap();
    let e = expect_event(&mut ev, "hoa-assigned", |e| {
        matches!(e, EventMsg::HoaAssigned { .. })
    });
    assert!(
        matches!(e, EventMsg::HoaAssigned { ref ike, address } if *ike == r.ike && Some(address) == r.home_address)
    );
    // The HA assigned it (the MN's configuration has no address).
    let ha_view = list(&mut ha.client());
    assert_eq!(ha_view.ike_sas[0].home_address, r.home_address);
    assert!(r.home_address.is_some());
    assert_eq!(r.home_address, Some(hoa1()));
    assert_eq!(r.children.len(), 2);
    mn.stop();
    ha.stop();
}

#[test]
fn initiate_failure_names_the_exchange_and_notify() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER)]);
    // The MN expects another HA identity: IKE_AUTH fails on our side.
    let mn = lab.mn(
        "mn.toml",
        &mn1_toml(ha.ike_addr, "2001:db8:1::100", "fqdn:other-ha.example.net"),
    );
    let mut c = mn.client();
    let e = daemon_error(initiate(&mut c, None));
    assert_eq!(e.code, ErrorCode::ExchangeFailed, "{e:?}");
    assert_eq!(e.exchange.as_deref(), Some("IKE_AUTH"));
    let s: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!(s.handshakes_failed, 1);
    assert!(
        s.failures
            .iter()
            .any(|f| f.exchange == "IKE_AUTH" && f.count == 1),
        "{:?}",
        s.failures
    );
    // On a home agent, initiate is the wrong role.
    let e = daemon_error(initiate(&mut ha.client(), None));
    assert_eq!(e.code, ErrorCode::WrongRole);
    mn.stop();
    ha.stop();
}

// ---- events, rekey, terminate ----

#[test]
fn event_stream_of_a_life_cycle() {
    let lab = Lab::new();
    let (ha, mn) = lab.ha_mn1("2001:db8:1::100");
    let mut ev = mn.subscribe();
    let mut hev = ha.subscribe();
    let mut c = mn.client();
    let r = initiate(&mut c, None).unwrap();

    let up = expect_event(&mut ev, "ike-up", |e| matches!(e, EventMsg::IkeUp { .. }));
    let EventMsg::IkeUp { ike, peer, .. } = up else {
        unreachable!()
    };
    assert_eq!(ike, r.ike);
    assert_eq!(peer, HA_ID);
    for _ in 0..2 {
        expect_event(&mut ev, "child-up", |e| {
            matches!(e, EventMsg::ChildUp { .. })
        });
    }
    let h = expect_event(&mut hev, "ike-up on the HA", |e| {
        matches!(e, EventMsg::IkeUp { .. })
    });
    assert!(matches!(h, EventMsg::IkeUp { ref peer, .. } if peer == MN1_ID));

    // CHILD_SA rekey: a new SA up, the old one down.
    let bu = r
        .children
        .iter()
        .find(|c| c.class.as_deref() == Some("bu-ba"))
        .unwrap()
        .clone();
    c.request(&Request::Rekey {
        ike: r.ike.clone(),
        child: Some(bu.spi_in.clone()),
    })
    .unwrap();
    let nu = expect_event(&mut ev, "child-up (rekey)", |e| {
        matches!(e, EventMsg::ChildUp { .. })
    });
    assert!(
        matches!(&nu, EventMsg::ChildUp { child, .. } if child.class.as_deref() == Some("bu-ba") && child.spi_in != bu.spi_in)
    );
    expect_event(
        &mut ev,
        "child-down (rekeyed)",
        |e| matches!(e, EventMsg::ChildDown { spi_in, .. } if *spi_in == bu.spi_in),
    );

    // The MN moved (K bit): the HA's mip6d reports the new care-of address with a MIGRATE.
    let new_coa: std::net::IpAddr = "2001:db8:2::5".parse().unwrap();
    let hoa = std::net::IpAddr::V6(hoa1());
    let ha_addr: std::net::IpAddr = "::1".parse().unwrap();
    ha.kernel_event(KernelEvent::Migrate(Migrate {
        selector: Selector::new("2001:db8:1::1".parse().unwrap(), 128, hoa, 128, 135),
        direction: Direction::Out,
        reqid: 2,
        old_src: "2001:db8:1::1".parse().unwrap(),
        old_dst: hoa,
        new_src: "2001:db8:1::1".parse().unwrap(),
        new_dst: hoa,
        km_local: Some(ha_addr),
        km_remote: Some(new_coa),
    }));
    let m = expect_event(&mut hev, "migrated on the HA", |e| {
        matches!(e, EventMsg::Migrated { .. })
    });
    let EventMsg::Migrated {
        old_remote,
        new_remote,
        new_local,
        ..
    } = m
    else {
        unreachable!()
    };
    assert_eq!(
        new_remote,
        format!("[2001:db8:2::5]:{}", old_remote.rsplit(':').next().unwrap())
    );
    assert!(new_local.starts_with("[::1]:"), "{new_local}");
    let s: StatsResult = ha.client().call(&Request::Stats).unwrap();
    assert_eq!(s.migrations, 1);

    // IKE SA rekey.
    c.request(&Request::Rekey {
        ike: r.ike.clone(),
        child: None,
    })
    .unwrap();
    let rk = expect_event(&mut ev, "ike-rekeyed", |e| {
        matches!(e, EventMsg::IkeRekeyed { .. })
    });
    let EventMsg::IkeRekeyed { old, new } = rk else {
        unreachable!()
    };
    assert_eq!(old, r.ike);
    assert_ne!(new, r.ike);

    // Terminate: both CHILD_SAs and the IKE SA go down, with a reason.
    let t: serde_json::Value = terminate(&mut c, Some(&new), None).unwrap();
    assert_eq!(t["terminated"][0], serde_json::Value::from(new.clone()));
    for _ in 0..2 {
        expect_event(&mut ev, "child-down", |e| {
            matches!(e, EventMsg::ChildDown { .. })
        });
    }
    let down = expect_event(&mut ev, "ike-down", |e| {
        matches!(e, EventMsg::IkeDown { .. })
    });
    assert!(
        matches!(down, EventMsg::IkeDown { ref ike, ref reason } if *ike == new && !reason.is_empty())
    );
    expect_event(&mut hev, "ike-down on the HA", |e| {
        matches!(e, EventMsg::IkeDown { .. })
    });
    // Terminated on request: the daemon does not bring it back.
    std::thread::sleep(Duration::from_millis(300));
    assert!(list(&mut c).ike_sas.is_empty());
    mn.stop();
    ha.stop();
}

#[test]
fn terminate_a_users_sas_on_the_home_agent() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER), ("mn2", &mn2_user())]);
    let mn1 = lab.mn("mn1.toml", &mn1_toml(ha.ike_addr, "2001:db8:1::100", HA_ID));
    let mn2 = lab.mn("mn2.toml", &mn2_toml(ha.ike_addr));
    initiate(&mut mn1.client(), None).unwrap();
    initiate(&mut mn2.client(), None).unwrap();
    let mut c = ha.client();
    let users: ListUsersResult = c.call(&Request::ListUsers(Default::default())).unwrap();
    let count = |n: &str| users.users.iter().find(|u| u.name == n).unwrap().ike_sas;
    assert_eq!((count("mn1"), count("mn2")), (1, 1));
    let mut ev = mn1.subscribe();
    let e = daemon_error(terminate(&mut c, None, Some("nobody")));
    assert_eq!(e.code, ErrorCode::NoSuchUser);
    let e = daemon_error(terminate(&mut c, Some("00000000000000ff"), None));
    assert_eq!(e.code, ErrorCode::NoSuchSa);
    terminate(&mut c, None, Some("mn1")).unwrap();
    expect_event(&mut ev, "ike-down on mn1", |e| {
        matches!(e, EventMsg::IkeDown { .. })
    });
    let l = wait_for("mn1's SA still on the HA", || {
        Some(list(&mut c)).filter(|l| l.ike_sas.len() == 1)
    });
    assert_eq!(l.ike_sas[0].user.as_deref(), Some("mn2"));
    for n in [&mn1, &mn2, &ha] {
        n.stop();
    }
}

// ---- stats, reload ----

#[test]
fn stats_count_handshakes() {
    let lab = Lab::new();
    let (ha, mn) = lab.ha_mn1("2001:db8:1::100");
    initiate(&mut mn.client(), None).unwrap();
    let s: StatsResult = ha.client().call(&Request::Stats).unwrap();
    assert_eq!(s.handshakes, 1);
    assert_eq!(s.ike_sas, 1);
    assert_eq!(s.child_sas, 2);
    assert_eq!(s.children_established, 2);
    assert_eq!(s.handshakes_failed, 0);
    assert_eq!(s.migrations, 0);
    mn.stop();
    ha.stop();
}

#[test]
fn reload_adds_a_user_without_touching_an_existing_sa() {
    let lab = Lab::new();
    let (ha, mn1) = lab.ha_mn1("2001:db8:1::100");
    initiate(&mut mn1.client(), None).unwrap();
    let mut c = ha.client();
    let before = list(&mut c);
    // mn2 is unknown: its IKE_AUTH fails.
    let mn2 = lab.mn("mn2.toml", &mn2_toml(ha.ike_addr));
    let e = daemon_error(initiate(&mut mn2.client(), None));
    assert_eq!(e.code, ErrorCode::ExchangeFailed);
    assert_eq!(e.notify.as_deref(), Some("AUTHENTICATION_FAILED"));
    // The HA's subscribers learn who tried and which address it asked for.
    let mut hev = ha.subscribe();
    let _ = initiate(&mut mn2.client(), None);
    let af = expect_event(&mut hev, "auth-failed", |e| {
        matches!(e, EventMsg::AuthFailed { .. })
    });
    let EventMsg::AuthFailed {
        identity,
        requested,
        remote,
        ..
    } = af
    else {
        unreachable!()
    };
    assert_eq!(identity.as_deref(), Some("fqdn:mn2.example.net"));
    assert!(remote.starts_with("[::1]:"), "{remote}");
    assert!(
        requested.iter().any(|t| t.contains("2001:db8:1::200")),
        "{requested:?}"
    );

    lab.write("users/mn2.toml", &mn2_user());
    let r: ReloadResult = c.call(&Request::Reload).unwrap();
    assert!(
        r.changes.iter().any(|l| l.contains("mn2")),
        "{:?}",
        r.changes
    );
    let users: ListUsersResult = c.call(&Request::ListUsers(Default::default())).unwrap();
    assert_eq!(users.users.len(), 2);
    // The existing SA is untouched: same SPIs.
    let after = list(&mut c);
    assert_eq!(after, before);
    // And mn2 gets in now.
    let r2 = initiate(&mut mn2.client(), None).unwrap();
    assert_eq!(r2.home_address, Some("2001:db8:1::200".parse().unwrap()));
    assert_eq!(list(&mut c).ike_sas.len(), 2);

    // A broken file: reload-failed, the running configuration stays.
    lab.write("users/bad.toml", "identity = 3\n");
    let e = daemon_error(c.request(&Request::Reload));
    assert_eq!(e.code, ErrorCode::ReloadFailed);
    assert!(e.message.contains("bad.toml"), "{}", e.message);
    let users: ListUsersResult = c.call(&Request::ListUsers(Default::default())).unwrap();
    assert_eq!(users.users.len(), 2);
    for n in [&mn1, &mn2, &ha] {
        n.stop();
    }
}

// ---- bad input ----

fn raw(sock: &Path) -> (BufReader<UnixStream>, UnixStream) {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn read_json(r: &mut BufReader<UnixStream>) -> serde_json::Value {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
}

#[test]
fn malformed_and_unknown_requests_get_errors_and_the_connection_goes_on() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER)]);
    let (mut r, mut w) = raw(&ha.sock);
    w.write_all(b"{this is not json\n").unwrap();
    let v = read_json(&mut r);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "malformed");
    assert!(v["id"].is_null());
    w.write_all(b"{\"id\":5,\"request\":\"teleport\"}\n")
        .unwrap();
    let v = read_json(&mut r);
    assert_eq!(
        (v["id"].as_u64(), &v["error"]["code"]),
        (Some(5), &"unknown-request".into())
    );
    w.write_all(b"{\"request\":\"hello\"}\n").unwrap();
    assert_eq!(read_json(&mut r)["error"]["code"], "bad-request");
    w.write_all(b"{\"id\":\"x\",\"request\":\"rekey\"}\n")
        .unwrap();
    let v = read_json(&mut r);
    assert_eq!(
        (&v["id"], &v["error"]["code"]),
        (&"x".into(), &"bad-request".into())
    );
    // Still served.
    w.write_all(b"{\"id\":6,\"request\":\"hello\"}\n").unwrap();
    let v = read_json(&mut r);
    assert_eq!((v["id"].as_u64(), &v["ok"]), (Some(6), &true.into()));
    assert_eq!(v["result"]["protocol"], 1);
    ha.stop();
}

#[test]
fn an_oversized_line_is_refused_and_disconnected_without_affecting_others() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER)]);
    let mut other = ha.client();
    let (mut r, mut w) = raw(&ha.sock);
    // 100 KiB without a newline: the daemon stops reading at 64 KiB.
    let big = vec![b'a'; 100 * 1024];
    let _ = w.write_all(&big);
    let v = read_json(&mut r);
    assert_eq!(v["error"]["code"], "line-too-long");
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "connection not closed: {rest:?}");
    let h: HelloResult = other.call(&Request::Hello { protocol: None }).unwrap();
    assert_eq!(h.role, "home-agent");
    ha.stop();
}

#[test]
fn a_client_that_never_reads_is_disconnected() {
    let lab = Lab::new();
    let opts = ServerOptions {
        queue_lines: 4,
        send_buffer: Some(4096),
        ..ServerOptions::default()
    };
    let ha = lab.ha_with(&[("mn1", MN1_STATIC_USER)], opts);
    let mut other = ha.client();
    let (mut r, mut w) = raw(&ha.sock);
    w.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Thousands of requests, no reads: the daemon's queue for us fills and it hangs up.
    let line = b"{\"id\":1,\"request\":\"stats\"}\n".repeat(200);
    let mut closed = false;
    for _ in 0..200 {
        if w.write_all(&line).is_err() {
            closed = true;
            break;
        }
    }
    let mut n = 0;
    let mut l = String::new();
    while r.read_line(&mut l).map(|k| k > 0).unwrap_or(false) {
        n += 1;
        l.clear();
    }
    assert!(
        closed || n < 40_000,
        "every reply arrived: not disconnected"
    );
    // Others are fine and the daemon answers.
    let s: StatsResult = other.call(&Request::Stats).unwrap();
    assert_eq!(s.ike_sas, 0);
    ha.stop();
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected() {
    let lab = Lab::new();
    let opts = ServerOptions {
        queue_lines: 4,
        send_buffer: Some(4096),
        ..ServerOptions::default()
    };
    lab.write_ha();
    let ha = lab.start("ha.toml", ServerOptions::default(), 0o660, None);
    lab.write("mn.toml", &mn1_toml(ha.ike_addr, "2001:db8:1::100", HA_ID));
    let mn = lab.start("mn.toml", opts, 0o660, None);
    let mut c = mn.client();
    let r = initiate(&mut c, None).unwrap();
    let (mut lazy_r, mut lazy_w) = raw(&mn.sock);
    lazy_w
        .write_all(b"{\"id\":1,\"request\":\"subscribe\"}\n")
        .unwrap();
    let mut ev = mn.subscribe();
    // Each CHILD_SA rekey makes a child-up and a child-down event.
    let mut spi = r.children[0].spi_in.clone();
    for _ in 0..30 {
        c.request(&Request::Rekey {
            ike: r.ike.clone(),
            child: Some(spi.clone()),
        })
        .unwrap();
        let up = expect_event(&mut ev, "child-up", |e| {
            matches!(e, EventMsg::ChildUp { .. })
        });
        let EventMsg::ChildUp { child, .. } = up else {
            unreachable!()
        };
        spi = child.spi_in;
    }
    // The lazy subscriber gets what was buffered, then the end of the stream.
    let mut lines = 0;
    let mut l = String::new();
    let end = Instant::now() + WAIT;
    loop {
        l.clear();
        match lazy_r.read_line(&mut l) {
            Ok(0) => break,
            Ok(_) => lines += 1,
            Err(e) => panic!("not disconnected (read: {e})"),
        }
        assert!(Instant::now() < end);
    }
    assert!(
        lines < 61,
        "all {lines} lines arrived: the subscriber was not cut off"
    );
    // The reading subscriber and the daemon carry on.
    let s: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!(s.ike_sas, 1);
    mn.stop();
    ha.stop();
}

// ---- permissions ----

/// Runs mip6-ikectl as another user. The binary is copied into the lab first: the build
/// directory may sit under a home directory other users cannot enter.
fn ikectl_as(lab: &Lab, uid: u32, gid: u32, sock: &Path, args: &[&str]) -> std::process::Output {
    let bin = lab.path("mip6-ikectl");
    if !bin.exists() {
        fs::copy(IKECTL, &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
        ])
        .arg(&bin)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .expect("setpriv")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_peer_of_another_uid_is_refused() {
    if !is_root() {
        eprintln!("SKIP: needs root to run a client under another uid");
        return;
    }
    let lab = Lab::new();
    lab.write_ha();
    // The file mode lets anyone connect; the SO_PEERCRED check must still refuse.
    let ha = lab.start("ha.toml", ServerOptions::default(), 0o666, None);
    let out = ikectl_as(&lab, 65534, 65534, &ha.sock, &["status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {err}");
    assert!(err.contains("permission-denied"), "{err}");
    // Root is served.
    let out = Command::new(IKECTL)
        .arg("--socket")
        .arg(&ha.sock)
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success());
    ha.stop();
}

#[test]
fn members_of_the_socket_group_are_served() {
    if !is_root() {
        eprintln!("SKIP: needs root to run a client under another uid");
        return;
    }
    let lab = Lab::new();
    lab.write_ha();
    let ha = lab.start("ha.toml", ServerOptions::default(), 0o660, Some("nogroup"));
    let meta = fs::metadata(&ha.sock).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
    let out = ikectl_as(&lab, 65534, 65534, &ha.sock, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("home-agent"));
    // Another uid and gid, outside the group: the file mode already refuses.
    let out = ikectl_as(&lab, 12345, 12345, &ha.sock, &["status"]);
    assert_eq!(out.status.code(), Some(4));
    ha.stop();
}

// ---- mip6-ikectl ----

fn ikectl(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(IKECTL)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ikectl_says_when_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = ikectl(&sock, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("daemon not running: no socket at"), "{err}");
    assert!(err.contains("none.sock"), "{err}");
}

#[test]
fn ikectl_initiate_dynamic_wait_prints_the_home_address_and_sas_shows_two_users() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER), ("mn2", &mn2_user())]);
    let mn1 = lab.mn("mn1.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let mn2 = lab.mn("mn2.toml", &mn2_toml(ha.ike_addr));
    let out = ikectl(
        &mn1.sock,
        &["initiate", "--dynamic", "--wait", "--timeout", "10"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2001:db8:1::100\n");
    let out = ikectl(&mn2.sock, &["initiate", "--wait"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2001:db8:1::200\n");

    let out = ikectl(&ha.sock, &["sas"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        text.contains("user mn1 (dn:C=CH, O=mip6-ike test, CN=mn1@example.net)"),
        "{text}"
    );
    assert!(text.contains("user mn2 (fqdn:mn2.example.net)"), "{text}");
    assert!(text.contains("HoA 2001:db8:1::200"), "{text}");
    assert!(
        text.contains("2001:db8:1::1 MH <-> 2001:db8:1::100 MH"),
        "{text}"
    );
    assert_eq!(text.matches("bu-ba").count(), 2, "{text}");

    let out = ikectl(&ha.sock, &["--json", "sas"]);
    let v: ListSasResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.ike_sas.len(), 2);

    let out = ikectl(&ha.sock, &["users"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("USER"), "{text}");
    assert!(text.contains("mn2   psk"), "{text}");

    let out = ikectl(&ha.sock, &["stats"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("handshakes:") && text.contains("  2\n"),
        "{text}"
    );

    // A refused request: exit code 1 and the daemon's reason.
    let out = ikectl(&ha.sock, &["terminate", "--user", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-user"));
    let out = ikectl(&ha.sock, &["terminate", "--user", "mn2"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleting"));
    for n in [&mn1, &mn2, &ha] {
        n.stop();
    }
}

// ---- leases and the address provider ----

const POOLS: &str = "[pools.dyn]\nrange = \"2001:db8:1::1000-2001:db8:1::10ff\"\n";

fn pool_ha(lab: &Lab, control: &str) -> Node {
    lab.write("users/mn1.toml", MN1_POOL_USER);
    lab.write("ha.toml", &ha_toml("::1", &format!("{POOLS}{control}")));
    lab.start("ha.toml", ServerOptions::default(), 0o660, None)
}

#[test]
fn leases_list_what_the_pool_gave_and_follow_the_sa() {
    let lab = Lab::new();
    let ha = pool_ha(&lab, "");
    let mn = lab.mn("mn.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let mut c = ha.client();
    let l: LeasesResult = c.call(&Request::Leases).unwrap();
    assert!(l.leases.is_empty());
    let r = initiate(&mut mn.client(), Some("dynamic")).unwrap();
    assert_eq!(r.home_address, Some("2001:db8:1::1000".parse().unwrap()));
    let l: LeasesResult = c.call(&Request::Leases).unwrap();
    assert_eq!(l.leases.len(), 1);
    let lease = &l.leases[0];
    assert_eq!(
        (
            lease.user.as_str(),
            lease.pool.as_str(),
            lease.kind.as_str()
        ),
        ("mn1", "dyn", "address")
    );
    assert_eq!(lease.value, "2001:db8:1::1000");
    assert_eq!(lease.state, "bound");
    assert_eq!(lease.identity, MN1_ID);
    let ha_ike = list(&mut c).ike_sas[0].ike.clone();
    assert_eq!(lease.ike.as_deref(), Some(ha_ike.as_str()));
    // The CLI shows it.
    let out = ikectl(&ha.sock, &["leases"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mn1   address  2001:db8:1::1000  dyn"),
        "{text}"
    );
    // The SA goes: the lease is released, not forgotten.
    terminate(&mut c, Some(&ha_ike), None).unwrap();
    let l = wait_for("lease not released", || {
        let l: LeasesResult = c.call(&Request::Leases).unwrap();
        (l.leases[0].state == "released").then_some(l)
    });
    assert!(l.leases[0].expires_in_s.is_some());
    assert!(l.leases[0].ike.is_none());
    // On a mobile node: wrong role.
    let e = daemon_error(mn.client().request(&Request::Leases));
    assert_eq!(e.code, ErrorCode::WrongRole);
    mn.stop();
    ha.stop();
}

/// Registers `c` as the address provider; returns the timeout the daemon announced.
fn register(c: &mut Client) -> u64 {
    let v = c.request(&Request::AddressProvider).unwrap();
    v["timeout_ms"].as_u64().unwrap()
}

/// The next address-request line on the provider's connection.
fn address_request(c: &mut Client) -> EventMsg {
    c.set_timeout(Some(WAIT));
    loop {
        if let Incoming::Event(e @ EventMsg::AddressRequest { .. }) = c.read().unwrap() {
            return e;
        }
    }
}

/// Initiates on `mn` in a thread (the reply comes only when the SAs are up).
fn initiate_in_thread(mn: &Node) -> std::thread::JoinHandle<Result<InitiateResult, ClientError>> {
    let mut c = mn.client();
    std::thread::spawn(move || initiate(&mut c, Some("dynamic")))
}

fn reply(request_id: u64, address: Option<&str>, decline: bool) -> Request {
    Request::AddressReply {
        request_id,
        address: address.map(|a| a.parse().unwrap()),
        prefix: None,
        prefix_lifetime: None,
        decline,
    }
}

#[test]
fn an_address_provider_assigns_the_home_address() {
    let lab = Lab::new();
    let ha = pool_ha(&lab, "[control]\nprovider_timeout = 5\n");
    let mut provider = ha.client();
    assert_eq!(register(&mut provider), 5000);
    // A second provider is refused while the first is there.
    let e = daemon_error(ha.client().request(&Request::AddressProvider));
    assert_eq!(e.code, ErrorCode::ProviderExists);

    let mn = lab.mn("mn.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let pending = initiate_in_thread(&mn);
    let EventMsg::AddressRequest {
        request_id,
        identity,
        user,
        wants,
        timeout_ms,
        ..
    } = address_request(&mut provider)
    else {
        unreachable!()
    };
    assert_eq!((identity.as_str(), user.as_str()), (MN1_ID, "mn1"));
    assert_eq!(wants, ["address"]);
    assert_eq!(timeout_ms, 5000);
    // Nonsense is refused and the request stays open for a proper answer.
    let e = daemon_error(provider.request(&reply(request_id, Some("ff02::1"), false)));
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = daemon_error(provider.request(&reply(request_id, None, false)));
    assert_eq!(e.code, ErrorCode::BadRequest);
    provider
        .request(&reply(request_id, Some("2001:db8:1::77"), false))
        .unwrap();
    let r = pending.join().unwrap().unwrap();
    assert_eq!(r.home_address, Some("2001:db8:1::77".parse().unwrap()));
    let mut c = ha.client();
    assert_eq!(
        list(&mut c).ike_sas[0].home_address,
        Some("2001:db8:1::77".parse().unwrap())
    );
    // The provider allocated it: the pool gave nothing.
    let l: LeasesResult = c.call(&Request::Leases).unwrap();
    assert!(l.leases.is_empty(), "{:?}", l.leases);
    // An answer to an unknown request is an error, not a crash.
    let e = daemon_error(provider.request(&reply(999, Some("2001:db8:1::78"), false)));
    assert_eq!(e.code, ErrorCode::NoSuchRequest);
    mn.stop();
    ha.stop();
}

#[test]
fn a_silent_address_provider_falls_back_to_the_pool_after_its_timeout() {
    let lab = Lab::new();
    let ha = pool_ha(&lab, "[control]\nprovider_timeout = 0.5\n");
    let mut provider = ha.client();
    assert_eq!(register(&mut provider), 500);
    let mn = lab.mn("mn.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let started = Instant::now();
    let pending = initiate_in_thread(&mn);
    // The provider is asked, and says nothing.
    let EventMsg::AddressRequest { request_id, .. } = address_request(&mut provider) else {
        unreachable!()
    };
    let r = pending.join().unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert_eq!(r.home_address, Some("2001:db8:1::1000".parse().unwrap()));
    // Too late now.
    let e = daemon_error(provider.request(&reply(request_id, Some("2001:db8:1::77"), false)));
    assert_eq!(e.code, ErrorCode::NoSuchRequest);
    mn.stop();
    ha.stop();
}

#[test]
fn a_declining_or_departed_provider_leaves_allocation_to_the_pool() {
    let lab = Lab::new();
    let ha = pool_ha(&lab, "[control]\nprovider_timeout = 5\n");
    let mut provider = ha.client();
    register(&mut provider);
    let mn = lab.mn("mn.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let pending = initiate_in_thread(&mn);
    let EventMsg::AddressRequest { request_id, .. } = address_request(&mut provider) else {
        unreachable!()
    };
    provider.request(&reply(request_id, None, true)).unwrap();
    let r = pending.join().unwrap().unwrap();
    assert_eq!(r.home_address, Some("2001:db8:1::1000".parse().unwrap()));
    // The provider leaves; a new SA is not parked at all (fast, from the pool).
    drop(provider);
    let mut c = mn.client();
    terminate(&mut c, Some(&r.ike), None).unwrap();
    wait_for("the SA still listed", || {
        list(&mut c).ike_sas.is_empty().then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let r2 = initiate(&mut c, Some("dynamic")).unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(r2.home_address, Some("2001:db8:1::1000".parse().unwrap()));
    // A provider on a mobile node: wrong role.
    let e = daemon_error(c.request(&Request::AddressProvider));
    assert_eq!(e.code, ErrorCode::WrongRole);
    mn.stop();
    ha.stop();
}

#[test]
fn the_mip6d_start_script_writes_the_assigned_home_address_into_mip6d_conf() {
    let lab = Lab::new();
    let ha = pool_ha(&lab, "");
    let mn = lab.mn("mn.toml", &mn1_toml(ha.ike_addr, "dynamic", HA_ID));
    let conf = lab.path("mip6d.conf");
    // `echo` stands in for mip6d: the script execs it with `-c <conf>`.
    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("conf/mip6d-start.sh"))
        .env("IKECTL", IKECTL)
        .env("SOCKET", &mn.sock)
        .env("MIP6D", "echo")
        .env("MIP6D_TEMPLATE", Path::new(ROOT).join("conf/mip6d.conf.in"))
        .env("MIP6D_CONF", &conf)
        .env("TIMEOUT", "10")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("-c {}", conf.display())
    );
    let text = fs::read_to_string(&conf).unwrap();
    assert_eq!(
        text.matches("HomeAddress 2001:db8:1::1000/64;").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("@HOME_ADDRESS@"));
    // No daemon: the script fails with mip6-ikectl's "not running" code and starts nothing.
    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("conf/mip6d-start.sh"))
        .env("IKECTL", IKECTL)
        .env("SOCKET", lab.path("none.sock"))
        .env("MIP6D", "echo")
        .env("MIP6D_TEMPLATE", Path::new(ROOT).join("conf/mip6d.conf.in"))
        .env("MIP6D_CONF", lab.path("never.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!lab.path("never.conf").exists());
    mn.stop();
    ha.stop();
}

#[test]
fn the_control_section_is_checked() {
    let lab = Lab::new();
    lab.write_ha();
    let c = policy::load(lab.path("ha.toml")).unwrap().control;
    assert_eq!(c.socket, Path::new("/run/mip6-iked/control.sock"));
    assert_eq!((c.mode, c.group), (0o660, None));
    assert_eq!(c.provider_timeout, Duration::from_secs(2));
    assert!(c.enabled);
    lab.write("ha.toml", &ha_toml("::1", "[control]\nenabled = false\n"));
    assert!(!policy::load(lab.path("ha.toml")).unwrap().control.enabled);
    lab.write(
        "ha.toml",
        &ha_toml(
            "::1",
            "[control]\nsocket = \"run/ctl.sock\"\ngroup = \"mip6\"\nmode = \"0600\"\n",
        ),
    );
    let c = policy::load(lab.path("ha.toml")).unwrap().control;
    // Relative to the file's directory, like every path in the configuration.
    assert_eq!(c.socket, lab.path("run/ctl.sock"));
    assert_eq!((c.mode, c.group.as_deref()), (0o600, Some("mip6")));
    for (bad, says) in [
        ("mode = \"0999\"", "is not an octal permission"),
        ("mode = \"rw\"", "is not an octal permission"),
        ("group = \" \"", "names no group"),
        ("provider_timeout = 0", "between 0 and 60"),
        ("provider_timeout = 600", "between 0 and 60"),
        ("sockett = \"x\"", "unknown key `sockett`"),
    ] {
        lab.write("ha.toml", &ha_toml("::1", &format!("[control]\n{bad}\n")));
        let e = policy::load(lab.path("ha.toml")).err().unwrap().to_string();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.contains("ha.toml:15:"), "{bad}: position missing in {e}");
    }
}

#[test]
fn mip6_iked_serves_the_socket_its_configuration_names_and_removes_it_on_exit() {
    let lab = Lab::new();
    lab.write("users/mn1.toml", MN1_STATIC_USER);
    lab.write(
        "ha.toml",
        &ha_toml(
            "::1",
            "[control]\nsocket = \"run/ctl.sock\"\nmode = \"0600\"\n",
        ),
    );
    let sock = lab.path("run/ctl.sock");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_mip6-iked"))
        .arg("--config")
        .arg(lab.path("ha.toml"))
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_for("no control socket", || sock.exists().then_some(()));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    let out = ikectl(&sock, &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(home-agent), protocol 1"));
    // Reload through the socket takes the SIGHUP path.
    lab.write("users/mn2.toml", &mn2_user());
    let out = ikectl(&sock, &["reload"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reloaded: user mn2 added\n"
    );
    // A second daemon on the same socket refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_mip6-iked"))
        .arg("--config")
        .arg(lab.path("ha.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another mip6-iked answers on it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(daemon.wait().unwrap().success());
    assert!(!sock.exists(), "socket file left behind");
    let out = ikectl(&sock, &["sas"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn ikectl_events_prints_one_line_per_event() {
    let lab = Lab::new();
    let (ha, mn) = lab.ha_mn1("2001:db8:1::100");
    let spawn = |json: bool| {
        let mut cmd = Command::new(IKECTL);
        cmd.arg("--socket").arg(&mn.sock);
        if json {
            cmd.arg("--json");
        }
        cmd.arg("events")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut human, mut json) = (spawn(false), spawn(true));
    // Give both time to connect and subscribe (a loaded CI machine is slow to start them).
    std::thread::sleep(Duration::from_millis(1000));
    let r = initiate(&mut mn.client(), None).unwrap();
    terminate(&mut mn.client(), Some(&r.ike), None).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut texts = Vec::new();
    for child in [&mut human, &mut json] {
        child.kill().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = child.wait();
        texts.push(out);
    }
    let (h, j) = (&texts[0], &texts[1]);
    assert!(h.contains(&format!("ike-up {} ", r.ike)), "{h}");
    assert_eq!(h.matches("child-up ").count(), 2, "{h}");
    assert!(h.contains(&format!("ike-down {}: ", r.ike)), "{h}");
    let events: Vec<EventMsg> = j
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        matches!(events.first(), Some(EventMsg::IkeUp { .. })),
        "{j}"
    );
    assert!(
        matches!(events.last(), Some(EventMsg::IkeDown { .. })),
        "{j}"
    );
    mn.stop();
    ha.stop();
}

#[test]
fn initiate_dynamic_with_a_home_prefix_carries_prefix_and_lifetime() {
    let lab = Lab::new();
    lab.write(
        "users/mn1.toml",
        &format!("{}prefix_pool = \"mnp\"\n", MN1_POOL_USER),
    );
    lab.write(
        "ha.toml",
        &ha_toml("::1", &format!(
            "{POOLS}[pools.mnp]\nprefix = \"2001:db8:100::/48\"\ndelegate = 64\nlifetime = 86400\n"
        )),
    );
    let ha = lab.start("ha.toml", ServerOptions::default(), 0o660, None);
    let mn = lab.mn(
        "mn.toml",
        &mn1_toml(ha.ike_addr, "dynamic", HA_ID).replace(
            "auto_initiate = false\n",
            "auto_initiate = false\nrequest_home_prefix = true\n",
        ),
    );
    let mut ev = mn.subscribe();
    let r = initiate(&mut mn.client(), Some("dynamic")).unwrap();
    assert_eq!(r.home_address, Some("2001:db8:1::1000".parse().unwrap()));
    let p = r.prefix.expect("a delegated prefix");
    assert!(
        p.prefix.starts_with("2001:db8:100:") && p.prefix.ends_with("::/64"),
        "{p:?}"
    );
    assert_eq!(p.lifetime_s, 86400);
    let e = expect_event(&mut ev, "prefix-assigned", |e| {
        matches!(e, EventMsg::PrefixAssigned { .. })
    });
    assert!(
        matches!(e, EventMsg::PrefixAssigned { ref prefix, lifetime_s: 86400, .. } if *prefix == p.prefix)
    );
    // The HA lists both leases; the CLI prints the HoA and then the prefix.
    let l: LeasesResult = ha.client().call(&Request::Leases).unwrap();
    let mut kinds: Vec<_> = l.leases.iter().map(|x| x.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["address", "prefix"]);
    // Asked again (the SA exists): the same answer, prefix included.
    let out = ikectl(&mn.sock, &["initiate", "--dynamic", "--wait"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("2001:db8:1::1000\n{}\n", p.prefix)
    );
    let sas = list(&mut mn.client());
    assert_eq!(sas.ike_sas[0].home_prefix.as_ref(), Some(&p));
    mn.stop();
    ha.stop();
}

#[test]
fn thousands_of_mutated_requests_never_upset_the_daemon() {
    let lab = Lab::new();
    let ha = lab.ha(&[("mn1", MN1_STATIC_USER)]);
    let seeds: Vec<Vec<u8>> = [
        r#"{"id":1,"request":"hello","protocol":1}"#,
        r#"{"id":2,"request":"terminate","ike":"00000000000000ab"}"#,
        r#"{"id":3,"request":"rekey","ike":"0000000000000001","child":"c0ffee01"}"#,
        r#"{"id":4,"request":"initiate","home_address":"dynamic","classes":["bu-ba"],"timeout":1}"#,
        r#"{"id":5,"request":"address-reply","request_id":1,"prefix":"2001:db8::/64"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let (mut r, mut w) = raw(&ha.sock);
    // A small deterministic generator: no dependency, same mutations every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const CHARS: &[u8] = b"{}[]\",:\\0a-";
    let mut l = String::new();
    // Batches well below the connection's queue: this client reads its answers.
    for batch in 0..40 {
        for i in 0..50 {
            let mut m = seeds[(batch * 50 + i) % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let pos = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[pos] = (next() % 256) as u8,
                    1 => {
                        m.remove(pos);
                    }
                    _ => m.insert(pos, CHARS[(next() as usize) % CHARS.len()]),
                }
            }
            m.retain(|&b| b != b'\n');
            m.push(b'\n');
            w.write_all(&m).unwrap();
        }
        // Every line gets exactly one answer: a reply (ok or error), never a hang-up.
        let mut answered = 0;
        while answered < 50 {
            l.clear();
            if r.read_line(&mut l).unwrap() == 0 {
                panic!("disconnected in batch {batch} after {answered} answers");
            }
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            if v.get("event").is_none() {
                answered += 1;
            }
        }
    }
    let h: HelloResult = ha
        .client()
        .call(&Request::Hello { protocol: None })
        .unwrap();
    assert_eq!(h.protocol, 1);
    ha.stop();
}

// ---- certs and revocation ----

#[test]
fn certs_lists_ours_cas_crls_and_peers_and_a_crl_file_update_deletes_a_revoked_sa() {
    let lab = Lab::new();
    daemon::copy_certs(
        lab.dir.path(),
        &[
            "mn3-ecdsa.pem",
            "mn3-ecdsa.key",
            "crl-ecdsa.der",
            "crl-ecdsa-empty.der",
        ],
    );
    // The HA's CRL file lists nobody yet; it is looked at every 0.1 s.
    fs::copy(lab.path("crl-ecdsa-empty.der"), lab.path("crl.der")).unwrap();
    lab.write(
        "users/mn3.toml",
        "identity = \"dn:C=CH, O=mip6-ike test, CN=mn3@example.net\"\nhome_addresses = [\"2001:db8:1::300\"]\nclasses = [\"bu-ba\", \"payload\"]\n",
    );
    lab.write(
        "ha.toml",
        &ha_toml(
            "::1",
            "[revocation]\ncrls = [\"crl.der\"]\ncheck_interval = 0.1\n",
        ),
    );
    let ha = lab.start("ha.toml", ServerOptions::default(), 0o660, None);
    let mn = lab.mn(
        "mn.toml",
        &daemon::mn_toml(
            "id = \"dn:C=CH, O=mip6-ike test, CN=mn3@example.net\"\ncertificate = \"mn3-ecdsa.pem\"\nprivate_key = \"mn3-ecdsa.key\"\nca = [\"ca-ecdsa.pem\"]\n",
            ha.ike_addr,
            "2001:db8:1::300",
            &format!("home_agent_id = \"{HA_ID}\"\nauto_initiate = false\n"),
        ),
    );
    initiate(&mut mn.client(), None).unwrap();
    let mut c = ha.client();
    let r: CertsResult = c.call(&Request::Certs).unwrap();
    assert_eq!(r.policy, "relaxed");
    let kinds: Vec<&str> = r.certs.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["local", "ca", "peer"]);
    assert_eq!(
        r.certs[0].subject,
        "C=CH, O=mip6-ike test, CN=ha.example.net"
    );
    assert_eq!(
        r.certs[1].subject,
        "C=CH, O=mip6-ike test, CN=mip6-ike ECDSA CA"
    );
    let peer = &r.certs[2];
    assert_eq!(peer.subject, "C=CH, O=mip6-ike test, CN=mn3@example.net");
    assert_eq!(peer.issuer, r.certs[1].subject);
    assert_eq!(peer.status.as_deref(), Some("good"));
    let crl_path = lab.path("crl.der").display().to_string();
    assert_eq!(peer.source, Some(format!("crl {crl_path}")));
    assert_eq!(peer.not_after, 2_682_374_400);
    assert_eq!(peer.ike, Some(list(&mut c).ike_sas[0].ike.clone()));
    assert_eq!(r.crls.len(), 1);
    assert_eq!((r.crls[0].revoked, r.crls[0].stale), (0, false));
    // The CLI shows the same.
    let out = ikectl(&ha.sock, &["certs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("revocation policy: relaxed\n"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("peer")
            && l.contains("CN=mn3@example.net")
            && l.contains(" good ")),
        "{text}"
    );
    assert!(text.contains("2055-01-01 00:00"), "{text}");

    // A broken CRL file changes nothing (logged, the CRLs in force stay).
    fs::write(lab.path("crl.der"), b"not a CRL").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(list(&mut c).ike_sas.len(), 1);
    // The CA revokes mn3: the new file is picked up, the IKE SA goes on both sides.
    fs::copy(lab.path("crl-ecdsa.der"), lab.path("crl.der")).unwrap();
    wait_for("HA kept the revoked SA", || {
        list(&mut c).ike_sas.is_empty().then_some(())
    });
    let mut mc = mn.client();
    wait_for("MN kept its SA after the HA's Delete", || {
        list(&mut mc).ike_sas.is_empty().then_some(())
    });
    let r: CertsResult = c.call(&Request::Certs).unwrap();
    assert!(r.certs.iter().all(|c| c.kind != "peer"));
    assert_eq!(r.crls[0].revoked, 2);
    // And it cannot come back.
    let e = initiate(&mut mc, None).unwrap_err();
    assert!(format!("{e:?}").contains("AUTHENTICATION_FAILED"), "{e:?}");
    mn.stop();
    ha.stop();
}
