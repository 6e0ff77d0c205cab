//! Issue 14, the local side: configuration, pools and the control socket against hostile peers
//! and local misuse. Each test names the item it holds the daemon to and failed before its fix.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mip6_ike::control::client::{Client, ClientError};
use mip6_ike::control::protocol::{ErrorCode, HelloResult, InitiateResult, ListSasResult, Request};
use mip6_ike::control::{ControlServer, ServerOptions};
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::mobility::{LeaseStore, LeaseTable, Pool};
use mip6_ike::policy;
use tokio::sync::mpsc;

use common::daemon::{self, HA_ID, MN1_STATIC_USER, ROOT, ha_toml};

const IKED: &str = env!("CARGO_BIN_EXE_mip6-iked");
const WAIT: Duration = Duration::from_secs(10);

// ---- configuration trees ----

/// A temp dir with the test certificates (keys 0600) and users/.
fn tree() -> tempfile::TempDir {
    let dir = daemon::tree();
    // Other uids must reach the control sockets in the permission tests.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs::write(&p, text).unwrap();
    p
}

fn write_private(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = write(dir, rel, text);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The error of loading `path`, with `dir` shown as `$D`.
fn load_err(dir: &Path, path: &Path) -> String {
    match policy::load(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e.to_string().replace(&dir.display().to_string(), "$D"),
    }
}

/// `mip6-iked --check --config path`: (exit code, stdout, stderr).
fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(IKED)
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A home agent file (HA address 2001:db8:1::1) with `extra` after [home_agent].
fn ha_file(dir: &Path, extra: &str) -> PathBuf {
    write(dir, "ha.toml", &ha_toml("::1", extra))
}

fn user(dir: &Path, name: &str, text: &str) {
    write(dir, &format!("users/{name}.toml"), text);
}

const MN2_CERT_USER: &str = "identity = \"dn:C=CH, O=mip6-ike test, CN=mn2@example.net\"\n";

// ---- item 3: a mobile node must know its home agent's identity ----

#[test]
fn a_certificate_mobile_node_without_home_agent_id_is_refused_at_load_and_check() {
    let dir = tree();
    let ha: SocketAddr = "[2001:db8:1::1]:500".parse().unwrap();
    let p = write(
        dir.path(),
        "mn.toml",
        &daemon::mn1_toml(ha, "2001:db8:1::100", ""),
    );
    let e = load_err(dir.path(), &p);
    assert!(
        e.starts_with("$D/mn.toml:11:1: [mobile_node] needs home_agent_id = "),
        "{e}"
    );
    assert!(e.contains("another mobile node's too"), "{e}");
    let (code, _, err) = check(&p);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mn.toml:11:1: [mobile_node] needs home_agent_id"),
        "{err}"
    );
    // Naming it is enough.
    write(
        dir.path(),
        "mn.toml",
        &daemon::mn1_toml(
            ha,
            "2001:db8:1::100",
            &format!("home_agent_id = \"{HA_ID}\"\n"),
        ),
    );
    policy::load(&p).unwrap();
}

#[test]
fn the_shipped_mobile_node_examples_name_their_home_agent() {
    for f in ["mn.toml", "mn2.toml", "mn-dynamic.toml"] {
        let text = fs::read_to_string(Path::new(ROOT).join("conf").join(f)).unwrap();
        assert!(text.contains("\nhome_agent_id = "), "conf/{f}");
    }
    let readme = fs::read_to_string(Path::new(ROOT).join("conf/README.md")).unwrap();
    assert!(
        !readme.contains("`[mobile_node] home_agent_id` | (any)"),
        "conf/README.md still says any home agent identity is fine"
    );
}

// ---- item 9: home prefixes and static addresses do not overlap across users ----

#[test]
fn a_home_prefix_on_the_home_link_is_refused() {
    let dir = tree();
    let ha = ha_file(dir.path(), "");
    user(dir.path(), "mn1", MN1_STATIC_USER);
    user(
        dir.path(),
        "mn2",
        &format!(
            "{MN2_CERT_USER}home_addresses = [\"2001:db8:1::200\"]\nhome_prefix = \"2001:db8:1::/64\"\n"
        ),
    );
    let e = load_err(dir.path(), &ha);
    assert!(
        e.starts_with("$D/users/mn2.toml:3:15: home_prefix 2001:db8:1::/64 covers the home agent's own address 2001:db8:1::1"),
        "{e}"
    );
}

#[test]
fn a_home_prefix_covering_another_users_home_address_names_both_files() {
    let dir = tree();
    // The home agent's address is elsewhere, so only the other user's address is in the way.
    let ha = write(
        dir.path(),
        "ha.toml",
        &ha_toml("::1", "").replace("address = \"2001:db8:1::1\"", "address = \"2001:db8:9::1\""),
    );
    user(dir.path(), "mn1", MN1_STATIC_USER);
    user(
        dir.path(),
        "mn2",
        &format!(
            "{MN2_CERT_USER}home_addresses = [\"2001:db8:1::200\"]\nhome_prefix = \"2001:db8:1::/64\"\n"
        ),
    );
    let e = load_err(dir.path(), &ha);
    assert_eq!(
        e,
        "$D/users/mn2.toml:3:15: home_prefix 2001:db8:1::/64 covers home address 2001:db8:1::100 of $D/users/mn1.toml; \
         a home prefix gives its user every address in it: narrow it to leave that address out"
    );
    // The other order: the prefix first (file order), the address in a later file.
    fs::rename(
        dir.path().join("users/mn2.toml"),
        dir.path().join("users/a-mn2.toml"),
    )
    .unwrap();
    let e = load_err(dir.path(), &ha);
    assert_eq!(
        e,
        "$D/users/mn1.toml:2:19: home address 2001:db8:1::100 lies inside home_prefix 2001:db8:1::/64 of $D/users/a-mn2.toml, \
         which gives that user every address in it; take the address out of that prefix or narrow the prefix"
    );
    // Its own address inside its own prefix is fine.
    fs::remove_file(dir.path().join("users/mn1.toml")).unwrap();
    policy::load(&ha).unwrap();
}

#[test]
fn overlapping_home_prefixes_and_addresses_in_prefix_pools_are_refused() {
    let dir = tree();
    let ha = ha_file(
        dir.path(),
        "[pools.mnp]\nprefix = \"2001:db8:100::/48\"\ndelegate = 64\n",
    );
    user(
        dir.path(),
        "mn1",
        &format!("{}home_prefix = \"2001:db8:200::/56\"\n", MN1_STATIC_USER),
    );
    user(
        dir.path(),
        "mn2",
        &format!(
            "{MN2_CERT_USER}home_addresses = [\"2001:db8:1::200\"]\nhome_prefix = \"2001:db8:200:5::/64\"\n"
        ),
    );
    let e = load_err(dir.path(), &ha);
    assert_eq!(
        e,
        "$D/users/mn2.toml:3:15: home_prefix 2001:db8:200:5::/64 overlaps home_prefix 2001:db8:200::/56 of $D/users/mn1.toml; give each user its own prefix"
    );
    user(
        dir.path(),
        "mn2",
        &format!("{MN2_CERT_USER}home_addresses = [\"2001:db8:100:7::1\"]\n"),
    );
    let e = load_err(dir.path(), &ha);
    assert_eq!(
        e,
        "$D/users/mn2.toml:2:19: home address 2001:db8:100:7::1 lies inside prefix pool mnp, whose delegated prefixes would give it to another mobile node; take it out of the pool"
    );
}

#[test]
fn the_home_agents_own_address_is_nobodys_home_address() {
    let dir = tree();
    let ha = ha_file(dir.path(), "");
    user(
        dir.path(),
        "mn1",
        &MN1_STATIC_USER.replace("2001:db8:1::100", "2001:db8:1::1"),
    );
    let e = load_err(dir.path(), &ha);
    assert!(
        e.starts_with(
            "$D/users/mn1.toml:2:19: home address 2001:db8:1::1 is the home agent's own address"
        ),
        "{e}"
    );
}

// ---- item 10: pools never hand out reserved addresses ----

#[test]
fn a_pool_holding_the_home_agents_address_is_refused() {
    let dir = tree();
    user(dir.path(), "mn1", MN1_STATIC_USER);
    let ha = ha_file(
        dir.path(),
        "[pools.dyn]\nrange = \"2001:db8:1::1-2001:db8:1::ff\"\n",
    );
    let e = load_err(dir.path(), &ha);
    assert_eq!(
        e,
        "$D/ha.toml:14:1: pool dyn contains the home agent's own address 2001:db8:1::1; \
         write a range that leaves it out (e.g. start after it: range = \"2001:db8:1::2-2001:db8:1::ff\")"
    );
    // A listen address is the home agent's too.
    let ha = write(
        dir.path(),
        "ha.toml",
        &ha_toml(
            "2001:db8:1::107",
            "[pools.dyn]\nprefix = \"2001:db8:1::100/120\"\n",
        ),
    );
    let e = load_err(dir.path(), &ha);
    assert!(
        e.contains("pool dyn contains the home agent's own address 2001:db8:1::107"),
        "{e}"
    );
    // A prefix pool whose prefixes would include the home link.
    let ha = ha_file(
        dir.path(),
        "[pools.mnp]\nprefix = \"2001:db8::/32\"\ndelegate = 64\n",
    );
    let e = load_err(dir.path(), &ha);
    assert!(
        e.ends_with("pool mnp contains the home agent's own address 2001:db8:1::1; delegate from a prefix that leaves out the home link"),
        "{e}"
    );
}

/// The pool a loaded home agent's user `mn9` draws from.
fn loaded_pool(dir: &Path, pool: &str) -> Pool {
    user(
        dir,
        "mn9",
        "identity = \"dn:C=CH, O=mip6-ike test, CN=mn9\"\npool = \"dyn\"\n",
    );
    let ha = ha_file(dir, &format!("[pools.dyn]\n{pool}\n"));
    let c = policy::load(&ha).unwrap();
    let db = &c.engine.home_agent.as_ref().unwrap().users;
    let u = db.users().iter().find(|u| u.name == "mn9").unwrap();
    (**u.pool.as_ref().unwrap()).clone()
}

#[test]
fn prefix_pools_never_give_the_subnet_router_anycast_or_reserved_identifiers() {
    let dir = tree();
    for (pool, anycast) in [
        ("prefix = \"2001:db8:5::/64\"", "2001:db8:5::"),
        ("prefix = \"2001:db8:5::/108\"", "2001:db8:5::"),
        ("prefix = \"2001:db8:5::1:0/112\"", "2001:db8:5::1:0"),
        ("range = \"2001:db8:5::-2001:db8:5::ff\"", "2001:db8:5::"),
    ] {
        let p = loaded_pool(dir.path(), pool);
        let mut t = LeaseTable::new();
        let a = t.acquire("fqdn:a", "mn9", &p, None, |_| false, 0).unwrap();
        assert_ne!(a, anycast.parse::<Ipv6Addr>().unwrap(), "{pool}");
        // Asked for by name: another one.
        let b = t
            .acquire(
                "fqdn:b",
                "mn9",
                &p,
                Some(anycast.parse().unwrap()),
                |_| false,
                0,
            )
            .unwrap();
        assert_ne!(b, anycast.parse::<Ipv6Addr>().unwrap(), "{pool}");
    }
    // The RFC 2526 subnet anycast identifiers at the top of a /64.
    let p = loaded_pool(
        dir.path(),
        "range = \"2001:db8:5:0:fdff:ffff:ffff:ff7f-2001:db8:5:0:fdff:ffff:ffff:ff81\"",
    );
    let mut t = LeaseTable::new();
    assert_eq!(
        t.acquire("fqdn:a", "mn9", &p, None, |_| false, 0),
        Some("2001:db8:5:0:fdff:ffff:ffff:ff7f".parse().unwrap())
    );
    assert_eq!(t.acquire("fqdn:b", "mn9", &p, None, |_| false, 0), None);
}

#[test]
fn check_warns_about_reserved_addresses_in_a_pool() {
    let dir = tree();
    user(
        dir.path(),
        "mn9",
        "identity = \"dn:C=CH, O=mip6-ike test, CN=mn9\"\npool = \"dyn\"\n",
    );
    let ha = ha_file(
        dir.path(),
        "[pools.dyn]\nrange = \"2001:db8:5::-2001:db8:5::ff\"\n",
    );
    let (code, out, err) = check(&ha);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("warning:    pool dyn holds 1 reserved address (Subnet-Router anycast"),
        "{out}"
    );
}

// ---- item 12: secrets in files, the lease file, the address provider ----

#[test]
fn user_and_global_files_holding_a_psk_must_be_private() {
    let dir = tree();
    let ha = ha_file(dir.path(), "");
    let u = write(
        dir.path(),
        "users/mn2.toml",
        "identity = \"fqdn:mn2.example.net\"\npsk = \"test-only-psk-0123456789abcdef\"\nhome_addresses = [\"2001:db8:1::200\"]\n",
    );
    fs::set_permissions(&u, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        load_err(dir.path(), &ha),
        "$D/users/mn2.toml:2:7: pre-shared key file $D/users/mn2.toml is accessible by group or others (mode 0644); run: chmod 600 $D/users/mn2.toml"
    );
    fs::set_permissions(&u, fs::Permissions::from_mode(0o600)).unwrap();
    policy::load(&ha).unwrap();

    let ha_addr: SocketAddr = "[2001:db8:1::1]:500".parse().unwrap();
    let mn = write(
        dir.path(),
        "mn2.toml",
        &daemon::mn_toml(
            "id = \"fqdn:mn2.example.net\"\npsk = \"test-only-psk-0123456789abcdef\"\n",
            ha_addr,
            "2001:db8:1::200",
            "",
        ),
    );
    fs::set_permissions(&mn, fs::Permissions::from_mode(0o640)).unwrap();
    let e = load_err(dir.path(), &mn);
    assert_eq!(
        e,
        "$D/mn2.toml:8:7: pre-shared key file $D/mn2.toml is accessible by group or others (mode 0640); run: chmod 600 $D/mn2.toml"
    );
    fs::set_permissions(&mn, fs::Permissions::from_mode(0o600)).unwrap();
    policy::load(&mn).unwrap();
}

#[test]
fn the_lease_store_never_writes_through_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("shadow");
    fs::write(&victim, "root:secret\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(".leases.toml.tmp")).unwrap();
    let store = LeaseStore::new(dir.path().join("leases.toml"));
    store.save(&[]).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root:secret\n");
    assert!(
        fs::symlink_metadata(dir.path().join("leases.toml"))
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(store.load().unwrap(), vec![]);
}

// ---- daemons with control sockets ----

/// Daemons on a private runtime (its own thread).
struct Lab {
    // Declared before `dir`: the runtime (and the daemons on it) stops before the tree goes.
    rt: daemon::RuntimeThread,
    dir: tempfile::TempDir,
}

struct Node {
    sock: PathBuf,
    tx: mpsc::Sender<Control>,
    ike_addr: SocketAddr,
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
}

impl Lab {
    fn new() -> Lab {
        let dir = tree();
        Lab {
            rt: daemon::RuntimeThread::start(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self, conf: &str, opts: ServerOptions, group: Option<&str>) -> Node {
        let cfg = policy::load(self.path(conf)).unwrap();
        let sock = self.path(&format!("{conf}.sock"));
        let _g = self.rt.enter();
        let d = Daemon::bind(cfg, Box::new(SharedKernel::new())).unwrap();
        let ike_addr = d.ike_addr().unwrap();
        let (tx, rx) = mpsc::channel(16);
        let server = ControlServer::bind_with(&sock, 0o660, group, opts).unwrap();
        server.serve(d.handle(tx.clone()));
        self.rt.spawn(async move {
            let _ = d.run(rx).await;
        });
        Node { sock, tx, ike_addr }
    }

    /// A home agent with mn1 as its user.
    fn ha(&self, opts: ServerOptions, group: Option<&str>) -> Node {
        user(self.dir.path(), "mn1", MN1_STATIC_USER);
        ha_file(self.dir.path(), "");
        self.start("ha.toml", opts, group)
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

// ---- item 13: odd configuration never panics, a failing reload keeps everything ----

#[test]
fn a_non_ascii_identity_is_an_error_not_a_panic() {
    let dir = tree();
    let ha = ha_file(dir.path(), "");
    user(
        dir.path(),
        "mn1",
        "identity = \"dné\"\nhome_addresses = [\"2001:db8:1::100\"]\n",
    );
    let e = load_err(dir.path(), &ha);
    assert!(
        e.starts_with("$D/users/mn1.toml:1:12: identity = \"dné\" has no identity type"),
        "{e}"
    );
    let (code, _, err) = check(&ha);
    assert_eq!(code, Some(1), "--check must fail cleanly, not panic: {err}");
    assert!(err.contains("mn1.toml:1:12"), "{err}");
}

#[test]
fn a_failing_reload_keeps_the_daemon_and_its_sas() {
    let lab = Lab::new();
    let ha = lab.ha(ServerOptions::default(), None);
    write(
        lab.dir.path(),
        "mn.toml",
        &daemon::mn1_toml(
            ha.ike_addr,
            "2001:db8:1::100",
            &format!("home_agent_id = \"{HA_ID}\"\nauto_initiate = false\n"),
        ),
    );
    let mn = lab.start("mn.toml", ServerOptions::default(), None);
    let up: InitiateResult = mn
        .client()
        .call(&Request::Initiate {
            home_agent: None,
            home_address: None,
            classes: None,
            timeout: Some(WAIT.as_secs_f64()),
            wait: None,
        })
        .unwrap();
    assert_eq!(up.children.len(), 2);
    let mut c = ha.client();
    let before: ListSasResult = c.call(&Request::ListSas(Default::default())).unwrap();
    assert_eq!(before.ike_sas.len(), 1);

    // `mip6-ikectl reload` with a user file the loader used to panic on.
    user(
        lab.dir.path(),
        "mn2",
        "identity = \"dné\"\nhome_addresses = [\"2001:db8:1::200\"]\n",
    );
    match c.request(&Request::Reload) {
        Err(ClientError::Daemon(e)) => {
            assert_eq!(e.code, ErrorCode::ReloadFailed, "{e:?}");
            assert!(
                e.message.contains("keeping the running configuration"),
                "{}",
                e.message
            );
            assert!(e.message.contains("mn2.toml:1:12"), "{}", e.message);
        }
        other => panic!("expected reload-failed, got {other:?}"),
    }
    // SIGHUP takes the same path.
    ha.tx.blocking_send(Control::Reload).unwrap();
    let mut c = ha.client();
    let h: HelloResult = c.call(&Request::Hello { protocol: None }).unwrap();
    assert_eq!(h.role, "home-agent");
    let after: ListSasResult = c.call(&Request::ListSas(Default::default())).unwrap();
    assert_eq!(after, before, "the SAs are untouched");
    let users: serde_json::Value = c.request(&Request::ListUsers(Default::default())).unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    mn.stop();
    ha.stop();
}

/// Inputs that once were, or could be, a panic in a loader: none may be one.
fn odd_values() -> Vec<String> {
    let mut v: Vec<String> = [
        "\"\"",
        "\" \"",
        "\"é\"",
        "\"dné\"",
        "\"dn:é\"",
        "\"dn:CN=é,O=ü\"",
        "\"🦀:🦀\"",
        "\"fqdn:é\"",
        "\"email:\"",
        "\"keyid:é\"",
        "\"keyid:0\"",
        "\"0xé\"",
        "\"0x\"",
        "\"ipv6:\"",
        "\"::/200\"",
        "\"::/-1\"",
        "\"é/é\"",
        "\"::-\"",
        "\"-\"",
        "\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128\"",
        "\"::/0\"",
        "\"::/128\"",
        "\"0777777777777777777777\"",
        "\"\\u0000\"",
        "0",
        "-1",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "-1e308",
        "inf",
        "nan",
        "-0.0",
        "5e-324",
        "true",
        "[]",
        "[\"\"]",
        "[\"é\", \"é\"]",
        "[0, 4294967295]",
        "[4294967295, 4294967295]",
        "{}",
        "{ a = 1 }",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("\"{}\"", "é".repeat(5000)));
    v.push(format!("{}1{}", "[".repeat(64), "]".repeat(64)));
    v
}

fn assert_no_panic(what: &str, f: impl FnOnce() + std::panic::UnwindSafe) {
    if std::panic::catch_unwind(f).is_err() {
        panic!("the loader panicked on {what}");
    }
}

#[test]
fn odd_configuration_inputs_give_errors_never_panics() {
    let dir = tree();
    let ha_keys = [
        "role",
        "key_mobility",
        "listen.addresses",
        "listen.port",
        "identity.id",
        "identity.psk",
        "identity.ca",
        "identity.signature",
        "proposals.ike",
        "proposals.esp",
        "timers.retransmit_timeout",
        "timers.retransmit_tries",
        "timers.child_rekey",
        "limits.cookie_threshold",
        "limits.max_half_open",
        "reqids.bu-ba",
        "kernel.owned_reqids",
        "kernel.auto_reqids",
        "kernel.replay_window",
        "home_agent.address",
        "home_agent.lease_grace",
        "home_agent.lease_file",
        "control.mode",
        "control.group",
        "control.provider_timeout",
        "control.idle_timeout",
        "control.max_clients_per_uid",
        "control.provider_user",
        "pools.p.range",
        "pools.p.prefix",
        "pools.p.delegate",
        "pools.p.lifetime",
    ];
    let user_keys = [
        "identity",
        "identity_pattern",
        "psk",
        "auth",
        "home_addresses",
        "classes",
        "pool",
        "home_prefix",
        "prefix_pool",
    ];
    let mn_keys = [
        "mobile_node.home_agent",
        "mobile_node.home_agent_address",
        "mobile_node.care_of_address",
        "mobile_node.home_address",
        "mobile_node.classes",
        "mobile_node.home_agent_id",
        "identity.psk",
    ];
    let base_ha = ha_toml(
        "::1",
        "[pools.p]\nrange = \"2001:db8:1::1000-2001:db8:1::10ff\"\n",
    );
    let base_mn = daemon::mn1_toml(
        "[2001:db8:1::1]:500".parse().unwrap(),
        "2001:db8:1::100",
        &format!("home_agent_id = \"{HA_ID}\"\n"),
    );
    let mut runs = 0;
    for value in odd_values() {
        // One key at a time, set by a trailing dotted key (TOML puts it in its table).
        for (base, keys, name) in [
            (&base_ha, &ha_keys[..], "ha"),
            (&base_mn, &mn_keys[..], "mn"),
        ] {
            for key in keys {
                // The value replaces the key's line in its table, or joins the table (at its end,
                // or as a new table after the others; a root key goes first).
                let text = base.as_str();
                let leaf = key.rsplit('.').next().unwrap();
                let table = key.rsplit_once('.').map(|(t, _)| t);
                let mut out = String::new();
                let mut in_table = table.is_none();
                let mut done = false;
                for line in text.lines() {
                    if line.starts_with('[') {
                        if in_table && !done && table.is_some() {
                            out.push_str(&format!("{leaf} = {value}\n"));
                            done = true;
                        }
                        in_table = table.is_some_and(|t| line == format!("[{t}]"));
                    }
                    if in_table && !done && line.split('=').next().map(str::trim) == Some(leaf) {
                        out.push_str(&format!("{leaf} = {value}\n"));
                        done = true;
                        continue;
                    }
                    out.push_str(line);
                    out.push('\n');
                }
                if !done {
                    match table {
                        Some(_) if in_table => out.push_str(&format!("{leaf} = {value}\n")),
                        Some(t) => out.push_str(&format!("[{t}]\n{leaf} = {value}\n")),
                        None => out = format!("{leaf} = {value}\n{out}"),
                    }
                }
                let p = write_private(dir.path(), &format!("{name}.toml"), &out);
                user(dir.path(), "mn1", MN1_STATIC_USER);
                assert_no_panic(&format!("{name}: {key} = {value}"), || {
                    let _ = policy::load(&p);
                });
                runs += 1;
            }
        }
        let p = write_private(dir.path(), "ha.toml", &base_ha);
        for key in user_keys {
            let mut text = String::from(MN1_STATIC_USER);
            text = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} ")))
                .map(|l| format!("{l}\n"))
                .collect();
            text.push_str(&format!("{key} = {value}\n"));
            write_private(dir.path(), "users/mn1.toml", &text);
            assert_no_panic(&format!("user file: {key} = {value}"), || {
                let _ = policy::load(&p);
            });
            runs += 1;
        }
    }
    // Whole files that are odd.
    let deep_tables = (0..200)
        .map(|i| format!("t{i}"))
        .collect::<Vec<_>>()
        .join(".");
    let deep_inline = format!("a = {}1{}", "{ b = ".repeat(200), " }".repeat(200));
    for text in [
        String::new(),
        "\u{feff}".to_string(),
        "é".repeat(100_000),
        format!("[{deep_tables}]\nx = 1\n"),
        deep_inline,
        format!("a = {}1{}", "[".repeat(5000), "]".repeat(5000)),
        "role = \"home-agent\"\n[identity]\nid = \"dné\"\n".to_string(),
        "\0\0\0".to_string(),
    ] {
        let p = write_private(dir.path(), "odd.toml", &text);
        assert_no_panic("an odd file", || {
            let _ = policy::load(&p);
        });
        write_private(dir.path(), "users/mn1.toml", &text);
        let ha = dir.path().join("ha.toml");
        assert_no_panic("an odd user file", || {
            let _ = policy::load(&ha);
        });
        runs += 1;
    }
    assert!(runs > 1000, "{runs}");
}

// ---- item 12: who may be the address provider ----

/// Runs `script` with perl as `uid`/`gid` (no supplementary groups), the socket path as its
/// argument; returns its stdout. Perl is in /usr/bin, which any uid may run.
fn perl_as(uid: u32, gid: u32, sock: &Path, script: &str) -> std::process::Child {
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "perl",
            "-e",
            script,
        ])
        .arg(sock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("setpriv perl")
}

const REGISTER: &str = r#"use IO::Socket::UNIX; $| = 1;
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
print $s qq({"id":1,"request":"address-provider"}\n);
my $l = <$s>; print $l;"#;

fn register_as(uid: u32, gid: u32, sock: &Path) -> serde_json::Value {
    let child = perl_as(uid, gid, sock, REGISTER);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[test]
fn only_the_configured_user_may_be_the_address_provider() {
    if !is_root() {
        eprintln!("SKIP: needs root to run a client under another uid");
        return;
    }
    let lab = Lab::new();
    // nobody (65534) is in the socket's group: allowed on the socket, not as provider.
    let ha = lab.ha(ServerOptions::default(), Some("nogroup"));
    let v = register_as(65534, 65534, &ha.sock);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "permission-denied", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider_user"),
        "{v}"
    );
    // Other requests are still served for it.
    ha.stop();

    // Named in [control] provider_user: it may.
    let lab = Lab::new();
    let opts = ServerOptions {
        provider_user: Some("nobody".into()),
        ..ServerOptions::default()
    };
    let ha = lab.ha(opts, Some("nogroup"));
    let v = register_as(65534, 65534, &ha.sock);
    assert_eq!(v["ok"], true, "{v}");
    ha.stop();

    // And the configuration carries the key to the server.
    let dir = tree();
    user(dir.path(), "mn1", MN1_STATIC_USER);
    let p = ha_file(
        dir.path(),
        "[control]\nprovider_user = \"nobody\"\nprovider_group = \"nogroup\"\nidle_timeout = 30\nmax_clients_per_uid = 4\n",
    );
    let c = policy::load(&p).unwrap();
    assert_eq!(c.control.provider_user.as_deref(), Some("nobody"));
    assert_eq!(c.control.provider_group.as_deref(), Some("nogroup"));
    assert_eq!(c.control.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.control.max_clients_per_uid, 4);
    for (bad, msg) in [
        ("provider_user = \"\"", "provider_user = \"\" names nobody"),
        (
            "idle_timeout = 0",
            "idle_timeout = 0: write a number of seconds between 1 and 86400",
        ),
        (
            "max_clients_per_uid = 0",
            "max_clients_per_uid = 0: write a number from 1 to 64",
        ),
    ] {
        let p = ha_file(dir.path(), &format!("[control]\n{bad}\n"));
        let e = load_err(dir.path(), &p);
        assert!(e.contains("$D/ha.toml:15:") && e.contains(msg), "{e}");
    }
}

// ---- item 18: idle connections cannot lock everyone out ----

/// Opens `n` connections as uid/gid that send nothing; prints how many were not refused at
/// once, then holds them until its stdin closes.
const HOLD: &str = r#"use IO::Socket::UNIX; use IO::Select; $| = 1;
my @s; my $open = 0;
for (1..$ARGV[1]) {
  my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or next;
  push @s, $s;
}
select(undef, undef, undef, 0.5);
for my $s (@s) { $open++ unless IO::Select->new($s)->can_read(0); }
print "$open\n";
<STDIN>;"#;

fn hold_as(uid: u32, gid: u32, sock: &Path, n: usize) -> (std::process::Child, usize) {
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "perl",
            "-e",
            HOLD,
        ])
        .arg(sock)
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv perl");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap_or(0))
}

#[test]
fn sixty_four_idle_connections_of_one_uid_do_not_lock_out_mip6d() {
    if !is_root() {
        eprintln!("SKIP: needs root to run a client under another uid");
        return;
    }
    let lab = Lab::new();
    let ha = lab.ha(ServerOptions::default(), Some("nogroup"));
    // A member of the socket's group opens 64 connections and stays silent.
    let (mut holder, open) = hold_as(65534, 65534, &ha.sock, 64);
    assert!(
        open <= 16,
        "uid 65534 holds {open} connections; the per-uid limit is 16"
    );
    // mip6d (root) is served, and so is another client of the same group.
    let h: HelloResult = ha
        .client()
        .call(&Request::Hello { protocol: None })
        .unwrap();
    assert_eq!(h.role, "home-agent");
    let v = register_as(0, 0, &ha.sock);
    assert_eq!(v["ok"], true, "{v}");
    drop(holder.stdin.take());
    let _ = holder.wait();
    ha.stop();
}

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
fn idle_connections_are_closed_and_the_per_uid_limit_frees_up() {
    let lab = Lab::new();
    let opts = ServerOptions {
        max_clients_per_uid: 3,
        idle_timeout: Duration::from_millis(800),
        ..ServerOptions::default()
    };
    let ha = lab.ha(opts, None);
    // A subscriber and two silent connections: the uid's limit.
    let (mut sub_r, mut sub_w) = raw(&ha.sock);
    sub_w
        .write_all(b"{\"id\":1,\"request\":\"subscribe\"}\n")
        .unwrap();
    assert_eq!(read_json(&mut sub_r)["ok"], true);
    let idle: Vec<_> = (0..2).map(|_| raw(&ha.sock)).collect();
    // A fourth is refused.
    let (mut r4, _w4) = raw(&ha.sock);
    let v = read_json(&mut r4);
    assert_eq!(v["error"]["code"], "busy", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_clients_per_uid"),
        "{v}"
    );
    // A line that trickles in slowly does not count as activity until it is whole.
    (&idle[0].1).write_all(b"{\"id\":2,").unwrap();
    let start = Instant::now();
    for (mut r, _w) in idle {
        let v = read_json(&mut r);
        assert_eq!(v["error"]["code"], "idle", "{v}");
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // The subscriber waits for events: not idle, still served.
    sub_w
        .write_all(b"{\"id\":3,\"request\":\"hello\"}\n")
        .unwrap();
    let v = read_json(&mut sub_r);
    assert_eq!((v["id"].as_u64(), &v["ok"]), (Some(3), &true.into()), "{v}");
    // A later client gets in.
    let h: HelloResult = ha
        .client()
        .call(&Request::Hello { protocol: None })
        .unwrap();
    assert_eq!(h.role, "home-agent");
    ha.stop();
}
