//! Handshakes per second of a home agent daemon with N engine shards, on loopback with the
//! in-memory kernel. Prints numbers; asserts nothing about speed.
//!
//! ```sh
//! cargo run --release --example shards_load -- <shards> [seconds] [in flight]
//! ```
//!
//! The home agent authenticates with an RSA-2048 certificate (its signature per handshake is
//! the expensive part) and each mobile node with a PSK; the initiators are in-process engines on
//! this thread, which verify the home agent's RSA signature (cheap next to making it), so the
//! home agent's shards, not the load, are what runs out of CPU first. Every handshake is a
//! full IKE_SA_INIT (X25519) + IKE_AUTH with one transport CHILD_SA (BU/BA); each initiator
//! has an identity (a user file) of its own and keeps its SAs (no INITIAL_CONTACT), so the home
//! agent's SAs grow with the run as under a real load.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use mip6_ike::auth::Identity;
use mip6_ike::crypto::SystemRng;
use mip6_ike::daemon::{self, Control, Daemon, SharedKernel};
use mip6_ike::ike::{Command, Endpoint, Event, HomeAddress};
use mip6_ike::mobility::SaClass;
use mip6_ike::policy;

const PSK: &str = "load-test-only-psk-0123456789ab";
const HA_ID: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";
/// Initiating engines (each with its own socket), so that one busy socket is not the limit.
const INITIATORS: usize = 8;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let shards: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let window: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("users")).unwrap();
    for f in ["ha-rsa.pem", "ha-rsa.key", "ca-rsa.pem", "ca-ecdsa.pem"] {
        fs::copy(root.join("certs").join(f), d.join(f)).unwrap();
        fs::set_permissions(d.join(f), fs::Permissions::from_mode(0o600)).unwrap();
    }
    for i in 0..INITIATORS {
        write(
            d,
            &format!("users/l{i}.toml"),
            &format!(
                "identity = \"fqdn:l{i}.example.net\"\npsk = \"{PSK}\"\nhome_addresses = [\"2001:db8:1::{:x}\"]\nclasses = [\"bu-ba\"]\n",
                0x1000 + i
            ),
        );
    }
    write(
        d,
        "ha.toml",
        &format!(
            "role = \"home-agent\"\n[listen]\naddresses = [\"::1\"]\nport = 0\nnat_port = 0\n[identity]\nid = \"{HA_ID}\"\ncertificate = \"ha-rsa.pem\"\nprivate_key = \"ha-rsa.key\"\nca = [\"ca-rsa.pem\"]\n[limits]\ncookie_threshold = 100000\nmax_half_open = 100000\nhalf_open_per_source = 100000\ninit_rate_per_source = 1000000\n[engine]\nshards = {shards}\n[home_agent]\naddress = \"2001:db8:1::1\"\nusers_dir = \"users\"\n"
        ),
    );
    let cfg = policy::load(d.join("ha.toml")).unwrap();
    // The home agent's task on a thread of its own (its shards have theirs).
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel::<Control>(4);
    let ha = std::thread::Builder::new()
        .name("ha-daemon".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let daemon = Daemon::bind(cfg, Box::new(SharedKernel::new())).unwrap();
                addr_tx.send(daemon.ike_addr().unwrap()).unwrap();
                let _ = daemon.run(ctl_rx).await;
            });
        })
        .unwrap();
    let ha_addr: SocketAddr = addr_rx.recv().unwrap();

    // The initiators.
    struct Ini {
        ep: Endpoint,
        sock: UdpSocket,
        local: SocketAddr,
        /// IKE SA -> when it was started.
        open: HashMap<u64, Instant>,
    }
    let mut inis: Vec<Ini> = (0..INITIATORS)
        .map(|k| {
            write(
                d,
                &format!("mn{k}.toml"),
                &format!(
                    "role = \"mobile-node\"\n[listen]\naddresses = [\"::1\"]\nport = 0\nnat_port = 0\n[identity]\nid = \"fqdn:l{}.example.net\"\npsk = \"{PSK}\"\nca = [\"ca-rsa.pem\"]\n[mobile_node]\nhome_agent = \"{ha_addr}\"\nhome_agent_address = \"2001:db8:1::1\"\ncare_of_address = \"::1\"\nhome_address = \"2001:db8:1::{:x}\"\nclasses = [\"bu-ba\"]\nhome_agent_id = \"{HA_ID}\"\ninitial_contact = false\nauto_initiate = false\n",
                    k,
                    0x1000 + k
                ),
            );
            let c = policy::load(d.join(format!("mn{k}.toml"))).unwrap();
            let sock = UdpSocket::bind("[::1]:0").unwrap();
            sock.set_nonblocking(true).unwrap();
            let local = sock.local_addr().unwrap();
            Ini {
                ep: Endpoint::new(c.engine, Box::new(SystemRng::default()), daemon::now()),
                sock,
                local,
                open: HashMap::new(),
            }
        })
        .collect();
    let ha_id = Identity::parse_config(HA_ID).unwrap();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let (mut up, mut failed) = (0u64, 0u64);
    let mut buf = vec![0u8; 65536];
    let mut latency = Duration::ZERO;
    while Instant::now() < end {
        let mut idle = true;
        for (k, ini) in inis.iter_mut().enumerate() {
            while ini.open.len() < window.div_ceil(INITIATORS) {
                let hoa = std::net::Ipv6Addr::from(
                    0x2001_0db8_0001_0000_0000_0000_0000_1000u128 + k as u128,
                );
                let cmd = Command::Initiate {
                    local: ini.local,
                    remote: ha_addr,
                    home_agent: "2001:db8:1::1".parse().unwrap(),
                    home_address: HomeAddress::Static(hoa),
                    classes: vec![SaClass::BuBa],
                    remote_identity: Some(ha_id.clone()),
                };
                match ini.ep.handle_command(daemon::now(), cmd) {
                    Ok(id) => {
                        ini.open.insert(id.0, Instant::now());
                    }
                    Err(e) => panic!("initiate: {e}"),
                }
            }
            loop {
                match ini.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        idle = false;
                        ini.ep
                            .handle_datagram(daemon::now(), ini.local, from, &buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            ini.ep.handle_timeout(daemon::now());
            while let Some(t) = ini.ep.poll_transmit() {
                let _ = ini.sock.send_to(&t.data, t.remote);
            }
            while ini.ep.poll_kernel_op().is_some() {}
            while let Some(ev) = ini.ep.poll_event() {
                match ev {
                    Event::ChildUp(c) => {
                        if let Some(t0) = ini.open.remove(&c.ike.0) {
                            up += 1;
                            latency += t0.elapsed();
                        }
                    }
                    Event::ExchangeFailed { ike, .. } | Event::IkeDown { ike, .. }
                        if ini.open.remove(&ike.0).is_some() =>
                    {
                        failed += 1;
                    }
                    _ => {}
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "shards={shards} window={window} seconds={elapsed:.1}: {up} handshakes, {:.0} handshakes/s, {failed} failed, mean latency {:.1} ms",
        up as f64 / elapsed,
        if up > 0 {
            latency.as_secs_f64() * 1000.0 / up as f64
        } else {
            0.0
        }
    );
    // CPU per thread so far (utime + stime from /proc): the home agent's daemon task and its
    // shards against the load's thread, per handshake.
    let mut ha_cpu = 0.0;
    for (name, cpu) in thread_cpu() {
        let per = if up > 0 { cpu * 1e6 / up as f64 } else { 0.0 };
        println!("  thread {name:<14} cpu {cpu:6.2} s  {per:6.1} us/handshake");
        if name.starts_with("ike-shard") || name == "ha-daemon" {
            ha_cpu += cpu;
        }
    }
    if up > 0 {
        println!(
            "  home agent in all: {:.1} us of CPU per handshake",
            ha_cpu * 1e6 / up as f64
        );
    }
    let _ = ctl_tx.blocking_send(Control::Shutdown);
    let _ = ha.join();
}

/// (thread name, CPU seconds) of every thread of this process.
fn thread_cpu() -> Vec<(String, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut v = Vec::new();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return v;
    };
    for e in dir.flatten() {
        let p = e.path();
        let name = fs::read_to_string(p.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let stat = fs::read_to_string(p.join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        v.push((name, (t(11) + t(12)) / tick));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
