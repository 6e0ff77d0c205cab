//! Listings at scale over the control socket (issue 14): a home agent with hundreds of IKE SAs
//! and thousands of users. Replies beyond the old single-line limit (256 KiB in the client)
//! arrive complete, streamed in bounded lines; filters select on the daemon; and while a large
//! listing is still being sent, the daemon answers other clients and IKE traffic. No timed
//! assertions: behaviour and ordering only.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mip6_ike::auth::TrustAnchors;
use mip6_ike::control::client::Client;
use mip6_ike::control::protocol::{
    ListQuery, ListSasResult, ListUsersResult, Request, STREAM_CHUNK, StatsResult,
};
use mip6_ike::control::{ControlServer, ServerOptions};
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::ike::{Command, HomeAddress, Now};
use mip6_ike::mobility::SaClass;
use mip6_ike::policy;
use serde_json::Value;
use tokio::sync::mpsc;

use common::daemon::{self, ha_toml};
use common::{AuthKind, CA_ECDSA, PSK, Side, base_config, local_auth};

const IKECTL: &str = env!("CARGO_BIN_EXE_mip6-ikectl");
/// The line the old client refused and the old daemon built in one piece.
const OLD_LIMIT: usize = 256 * 1024;
/// The longest line a streamed listing may have: a chunk plus one item (an IKE SA with two
/// CHILD_SAs is about 1.5 KiB; 16 KiB is a generous bound for one item).
const LINE_BOUND: usize = STREAM_CHUNK + 16 * 1024;

/// A home agent on a private runtime, files in a private directory.
struct Ha {
    sock: PathBuf,
    ike_addr: SocketAddr,
    tx: mpsc::Sender<Control>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Ha {
    fn drop(&mut self) {
        let _ = self.tx.try_send(Control::Shutdown);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `users` (name, file text) and starts a home agent (current-thread runtime, as
/// mip6-iked runs) whose control server has `opts`.
fn start_ha(users: &[(String, String)], opts: ServerOptions) -> Ha {
    let dir = daemon::tree();
    for (name, text) in users {
        let p = dir.path().join(format!("users/{name}.toml"));
        fs::write(&p, text).unwrap();
        // A file holding a pre-shared key must be private.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // One test client opens hundreds of IKE SAs from one address: no per-source limits.
    let conf = ha_toml(
        "::1",
        "[limits]\ninit_rate_per_source = 100000\nhalf_open_per_source = 1000\ncookie_threshold = 5000\n",
    );
    fs::write(dir.path().join("ha.toml"), conf).unwrap();
    let cfg = policy::load(dir.path().join("ha.toml")).unwrap();
    let sock = dir.path().join("ha.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (htx, hrx) = std::sync::mpsc::channel();
    let sock2 = sock.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let d = Daemon::bind(cfg, Box::new(SharedKernel::new())).unwrap();
            let ike_addr = d.ike_addr().unwrap();
            let (tx, rx) = mpsc::channel(16);
            let server = ControlServer::bind_with(&sock2, 0o660, None, opts).unwrap();
            server.serve(d.handle(tx.clone()));
            tokio::spawn(async move {
                let _ = d.run(rx).await;
            });
            htx.send((ike_addr, tx)).unwrap();
            let _ = stopped.await;
        });
    });
    let (ike_addr, tx) = hrx.recv().unwrap();
    Ha {
        sock,
        ike_addr,
        tx,
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    }
}

/// A PSK user file.
fn psk_user(identity: &str, hoas: &[Ipv6Addr]) -> String {
    let list: Vec<String> = hoas.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "identity = \"{identity}\"\npsk = \"{}\"\nhome_addresses = [{}]\nclasses = [\"bu-ba\", \"payload\"]\n",
        std::str::from_utf8(PSK).unwrap(),
        list.join(", ")
    )
}

fn hoa(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i as u16)
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: 1_800_000_000,
    }
}

/// A mobile node engine in the test (fqdn:mn.example.net, PSK) that talks to the home agent
/// over a real UDP socket and keeps every IKE SA it brings up.
struct Mn {
    side: Side,
    udp: UdpSocket,
    local: SocketAddr,
    ha: SocketAddr,
}

impl Mn {
    fn new(ha: SocketAddr) -> Mn {
        let mut cfg = base_config(
            "fqdn:mn.example.net",
            local_auth(AuthKind::Psk, "mn"),
            "aes128-sha256-x25519",
            "aes128-sha256",
        );
        // The home agent authenticates with its certificate.
        cfg.trust = Some(Arc::new(TrustAnchors::from_pem(CA_ECDSA).unwrap()));
        let udp = UdpSocket::bind("[::1]:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = udp.local_addr().unwrap();
        Mn {
            side: Side::new(cfg, &local.to_string(), 7, now()),
            udp,
            local,
            ha,
        }
    }

    /// Brings up one more IKE SA with BU/BA and payload CHILD_SAs for `hoa`.
    fn establish(&mut self, hoa: Ipv6Addr) {
        let want = self.side.child_ups() + 2;
        let cmd = Command::Initiate {
            local: self.local,
            remote: self.ha,
            home_agent: "2001:db8:1::1".parse().unwrap(),
            home_address: HomeAddress::Static(hoa),
            classes: vec![SaClass::BuBa, SaClass::Payload],
            remote_identity: None,
        };
        self.side.ep.handle_command(now(), cmd).unwrap();
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.side.child_ups() < want {
            assert!(Instant::now() < deadline, "no SAs for {hoa}");
            for t in self.side.drain() {
                self.udp.send_to(&t.data, t.remote).unwrap();
            }
            if self.side.child_ups() >= want {
                break;
            }
            match self.udp.recv_from(&mut buf) {
                Ok((n, from)) => self
                    .side
                    .ep
                    .handle_datagram(now(), self.local, from, &buf[..n]),
                Err(_) => self.side.ep.handle_timeout(now()),
            }
        }
        assert!(!self.side.exchange_failed(None), "an exchange failed");
    }
}

/// Sends `line` on a fresh connection and returns the reader.
fn raw(sock: &Path, line: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    BufReader::new(s)
}

/// Reads one reply line: its length and its JSON.
fn read_line(r: &mut BufReader<UnixStream>) -> (usize, Value) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.ends_with('\n'), "a whole line: {:.200}", line);
    (line.len(), serde_json::from_str(&line).unwrap())
}

/// Reads a streamed listing: every item of `key`, the number of lines, the longest line.
fn read_stream(r: &mut BufReader<UnixStream>, id: u64, key: &str) -> (Vec<Value>, usize, usize) {
    let (mut items, mut lines, mut longest) = (Vec::new(), 0, 0);
    loop {
        let (len, v) = read_line(r);
        assert_eq!(v["id"], Value::from(id), "{v:.200}");
        assert_eq!(v["ok"], Value::Bool(true), "{v:.300}");
        lines += 1;
        longest = longest.max(len);
        items.extend(v["result"][key].as_array().unwrap().iter().cloned());
        if v.get("more") != Some(&Value::Bool(true)) {
            return (items, lines, longest);
        }
    }
}

fn ikectl(sock: &Path, args: &[&str]) -> std::process::Output {
    let out = Process::new(IKECTL)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mip6-ikectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn query(user: Option<&str>, hoa: Option<&str>) -> ListQuery {
    ListQuery {
        stream: false,
        user: user.map(str::to_string),
        hoa: hoa.map(str::to_string),
    }
}

#[test]
fn thousands_of_users_list_completely_in_bounded_lines_and_filter_on_the_daemon() {
    // 2500 users: far beyond the ~1,840 that used to fill the client's 256 KiB line.
    let n = 2500;
    let users: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("u{i}"),
                psk_user(&format!("fqdn:u{i}.example.net"), &[hoa(i)]),
            )
        })
        .collect();
    let ha = start_ha(&users, ServerOptions::default());

    // The library client (which streams and merges) gets every user.
    let mut c = Client::connect(&ha.sock).unwrap();
    let all: ListUsersResult = c.call(&Request::ListUsers(query(None, None))).unwrap();
    assert_eq!(all.users.len(), n);
    let mut names: Vec<&str> = all.users.iter().map(|u| u.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "every user once");

    // Read incrementally: one line's result at a time.
    let (mut chunks, mut seen) = (0, 0);
    let streamed = Request::ListUsers(ListQuery {
        stream: true,
        ..ListQuery::default()
    });
    c.request_each(&streamed, |v| {
        chunks += 1;
        seen += v["users"].as_array().map_or(0, Vec::len);
        Ok(())
    })
    .unwrap();
    assert!(chunks > 1);
    assert_eq!(seen, n);

    // On the wire: several bounded lines, all but the last marked `more`.
    let mut r = raw(&ha.sock, r#"{"id":1,"request":"list-users","stream":true}"#);
    let (items, lines, longest) = read_stream(&mut r, 1, "users");
    assert_eq!(items.len(), n);
    let total: usize = items.iter().map(|v| v.to_string().len()).sum();
    assert!(
        total > OLD_LIMIT,
        "the listing ({total} bytes) exceeds the old limit"
    );
    assert!(lines > 1, "streamed in {lines} lines");
    assert!(longest < LINE_BOUND, "longest line {longest} bytes");

    // A version-1 client that does not ask for streaming still gets one complete line.
    let mut r = raw(&ha.sock, r#"{"id":"old","request":"list-users"}"#);
    let (len, v) = read_line(&mut r);
    assert!(len > OLD_LIMIT);
    assert_eq!(v["id"], Value::from("old"));
    assert!(v.get("more").is_none());
    assert_eq!(v["result"]["users"].as_array().unwrap().len(), n);

    // Filters: by name, by identity, by home address; nothing for what matches nothing.
    let mut by = |user: Option<&str>, hoa: Option<&str>| -> Vec<String> {
        let r: ListUsersResult = c.call(&Request::ListUsers(query(user, hoa))).unwrap();
        r.users.into_iter().map(|u| u.name).collect()
    };
    assert_eq!(by(Some("u17"), None), ["u17"]);
    assert_eq!(by(Some("fqdn:u1234.example.net"), None), ["u1234"]);
    assert_eq!(by(None, Some(&hoa(42).to_string())), ["u42"]);
    assert_eq!(by(Some("u42"), Some(&hoa(42).to_string())), ["u42"]);
    assert!(by(Some("u42"), Some(&hoa(43).to_string())).is_empty());
    assert!(by(Some("nobody"), None).is_empty());
    assert!(by(None, Some("2001:db8:ffff::1")).is_empty());
    // A bad address is a bad request, not an empty listing.
    let e = c
        .request(&Request::ListUsers(query(None, Some("not-an-address"))))
        .unwrap_err();
    assert!(e.to_string().contains("bad-request"), "{e}");

    // mip6-ikectl: the whole table, and --user / --hoa with --json.
    let out = ikectl(&ha.sock, &["users"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().count() > n, "{} lines", text.lines().count());
    let out = ikectl(&ha.sock, &["--json", "users", "--user", "u7"]);
    let v: ListUsersResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.users.len(), 1);
    assert_eq!(v.users[0].name, "u7");
    let out = ikectl(&ha.sock, &["--json", "users", "--hoa", &hoa(9).to_string()]);
    let v: ListUsersResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.users.iter().map(|u| &u.name).collect::<Vec<_>>(), ["u9"]);
}

#[test]
fn hundreds_of_ike_sas_list_completely_while_the_daemon_keeps_serving() {
    // One user with many devices (home addresses), and one without SAs.
    let n = 300;
    let hoas: Vec<Ipv6Addr> = (0..=n).map(hoa).collect();
    let users = vec![
        ("mn".to_string(), psk_user("fqdn:mn.example.net", &hoas)),
        (
            "other".to_string(),
            psk_user(
                "fqdn:other.example.net",
                &["2001:db8:1::2".parse().unwrap()],
            ),
        ),
    ];
    // A small socket buffer: the listing cannot all sit in the kernel while nobody reads.
    let opts = ServerOptions {
        send_buffer: Some(8192),
        ..ServerOptions::default()
    };
    let ha = start_ha(&users, opts);
    let mut mn = Mn::new(ha.ike_addr);
    for h in &hoas[..n] {
        mn.establish(*h);
    }

    let mut c = Client::connect(&ha.sock).unwrap();
    let all: ListSasResult = c.call(&Request::ListSas(query(None, None))).unwrap();
    assert_eq!(all.ike_sas.len(), n);
    assert!(all.ike_sas.iter().all(|s| s.children.len() == 2));
    assert!(
        all.ike_sas
            .iter()
            .all(|s| s.user.as_deref() == Some("mn") && s.state == "established")
    );

    // Streamed on the wire in bounded lines, beyond the old limit in total.
    let mut r = raw(&ha.sock, r#"{"id":1,"request":"list-sas","stream":true}"#);
    let (items, lines, longest) = read_stream(&mut r, 1, "ike_sas");
    assert_eq!(items.len(), n);
    let total: usize = items.iter().map(|v| v.to_string().len()).sum();
    assert!(
        total > OLD_LIMIT,
        "the listing ({total} bytes) exceeds the old limit"
    );
    assert!(
        lines > 1 && longest < LINE_BOUND,
        "{lines} lines, longest {longest}"
    );

    // Filters select on the daemon.
    let mut sas = |user: Option<&str>, hoa: Option<&str>| -> ListSasResult {
        c.call(&Request::ListSas(query(user, hoa))).unwrap()
    };
    let one = sas(None, Some(&hoa(123).to_string()));
    assert_eq!(one.ike_sas.len(), 1);
    assert_eq!(one.ike_sas[0].home_address, Some(hoa(123)));
    assert_eq!(sas(Some("mn"), None).ike_sas.len(), n);
    assert_eq!(sas(Some("fqdn:mn.example.net"), None).ike_sas.len(), n);
    assert!(sas(Some("other"), None).ike_sas.is_empty());
    assert!(
        sas(Some("other"), Some(&hoa(5).to_string()))
            .ike_sas
            .is_empty()
    );
    assert!(sas(None, Some(&hoa(n).to_string())).ike_sas.is_empty());
    let users: ListUsersResult = c.call(&Request::ListUsers(query(None, None))).unwrap();
    let count = |name: &str| users.users.iter().find(|u| u.name == name).unwrap().ike_sas;
    assert_eq!((count("mn"), count("other")), (n, 0));

    // A large listing in flight: A asked for it and read only its first line, so the rest
    // waits in the daemon (its socket buffer is small). Meanwhile another client's stats and
    // a new IKE SA (IKE_SA_INIT, IKE_AUTH) are answered.
    let mut a = raw(&ha.sock, r#"{"id":5,"request":"list-sas","stream":true}"#);
    let (_, first) = read_line(&mut a);
    assert_eq!(first["more"], Value::Bool(true), "more lines follow");
    let stats: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!(stats.ike_sas, n);
    mn.establish(hoas[n]);
    let stats: StatsResult = c.call(&Request::Stats).unwrap();
    assert_eq!(stats.ike_sas, n + 1);
    // A's listing then completes, as of when it was asked for.
    let mut items: Vec<Value> = first["result"]["ike_sas"].as_array().unwrap().clone();
    let (rest, _, longest) = read_stream(&mut a, 5, "ike_sas");
    items.extend(rest);
    assert_eq!(items.len(), n);
    assert!(longest < LINE_BOUND);

    // mip6-ikectl sas --json with a filter; the table lists every IKE SA.
    let out = ikectl(&ha.sock, &["--json", "sas", "--hoa", &hoa(n).to_string()]);
    let v: ListSasResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.ike_sas.len(), 1);
    let out = ikectl(&ha.sock, &["--json", "sas", "--user", "mn"]);
    let v: ListSasResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.ike_sas.len(), n + 1);
    let out = ikectl(&ha.sock, &["sas"]);
    assert!(!out.stdout.is_empty());
}
