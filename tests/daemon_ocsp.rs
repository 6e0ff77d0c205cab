//! OCSP from a home agent daemon (root: a fresh network namespace per test), against a
//! responder on its loopback configured for the ECDSA CA (`ocsp_responders`): its "revoked"
//! answer refuses (strict) or deletes (relaxed) mn1's SA; a responder that never answers or
//! streams without end costs one bounded query and blocks nobody (another mobile node
//! registers meanwhile, the SAs stay).

mod common;
#[path = "common/ocsp_responder.rs"]
mod ocsp_responder;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::daemon::{self, HA_ID, MN1_STATIC_USER, mn_toml, mn1_toml};
use mip6_ike::auth::revocation::CertStatus;
use mip6_ike::ike::Event;
use ocsp_responder::Answer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MN4_USER: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn4@example.net"
home_addresses = ["2001:db8:1::400"]
classes = ["bu-ba", "payload"]
"#;
const URI: &str = "http://127.0.0.1:8481/ocsp";

#[derive(Clone, Copy)]
enum Server {
    /// Answers "revoked", signed by the CA, with the request's nonce.
    Revoked,
    /// Reads the request and never answers.
    Silent,
    /// Streams zeros without end.
    Endless,
}

struct Seen {
    requests: AtomicUsize,
    bytes_sent: AtomicUsize,
}

/// Reads one HTTP request with a body (Content-Length); None if the client went away.
async fn read_post(c: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut req = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(req[..end].to_vec()).ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))?
                .parse()
                .ok()?;
            if req.len() >= end + 4 + len {
                return Some((head, req[end + 4..end + 4 + len].to_vec()));
            }
        }
        match c.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
}

async fn ocsp_server(kind: Server) -> Arc<Seen> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:8481")
        .await
        .unwrap();
    let seen = Arc::new(Seen {
        requests: AtomicUsize::new(0),
        bytes_sent: AtomicUsize::new(0),
    });
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_post(&mut c).await else {
                    return;
                };
                assert!(head.starts_with("POST /ocsp HTTP/1.0\r\n"), "{head}");
                assert!(
                    head.contains("\r\nContent-Type: application/ocsp-request"),
                    "{head}"
                );
                s.requests.fetch_add(1, Ordering::SeqCst);
                match kind {
                    Server::Revoked => {
                        let unix = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let resp = Answer::new(CertStatus::Revoked, unix).respond(&body);
                        let head = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\n\r\n",
                            resp.len()
                        );
                        let _ = c.write_all(head.as_bytes()).await;
                        let _ = c.write_all(&resp).await;
                    }
                    Server::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
                    Server::Endless => {
                        let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                        let chunk = vec![0u8; 64 * 1024];
                        for _ in 0..1024 {
                            if c.write_all(&chunk).await.is_err() {
                                break;
                            }
                            s.bytes_sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    seen
}

/// In a fresh netns: a responder of `kind`, a home agent (users mn1, mn4; OCSP with a 1 s
/// timeout; `revocation` lines added) and mn1's daemon, which registers. Then `check`.
fn lab<F>(kind: Server, revocation: &'static str, check: F)
where
    F: AsyncFnOnce(&tempfile::TempDir, &mut daemon::Running, &Seen) + Send + 'static,
{
    common::netns::in_netns_with(
        "OCSP daemon tests",
        || {},
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let seen = ocsp_server(kind).await;
                let dir = daemon::tree();
                daemon::copy_certs(dir.path(), &["mn4-ecdsa.pem", "mn4-ecdsa.key"]);
                fs::write(dir.path().join("users/mn4.toml"), MN4_USER).unwrap();
                fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
                fs::write(
                    dir.path().join("ha.toml"),
                    common::daemon::ha_toml(
                        "::1",
                        &format!(
                            "[revocation]\nfetch = false\nfetch_timeout = 1\nocsp_responders = [{{ ca = \"ca-ecdsa.pem\", uri = \"{URI}\" }}]\n{revocation}"
                        ),
                    ),
                )
                .unwrap();
                let mut ha = daemon::start(&dir.path().join("ha.toml"));
                fs::write(
                    dir.path().join("mn1.toml"),
                    mn1_toml(ha.addr, "2001:db8:1::100", &format!("home_agent_id = \"{HA_ID}\"\n")),
                )
                .unwrap();
                let mn1 = daemon::start(&dir.path().join("mn1.toml"));
                daemon::wait_event(&mut ha.events, "OcspWanted", |e| {
                    matches!(e, Event::OcspWanted { uri, .. } if uri == URI)
                })
                .await;
                check(&dir, &mut ha, &seen).await;
                daemon::stop(mn1).await;
                daemon::stop(ha).await;
            })
        },
    );
}

#[test]
fn revoked_answer_deletes_the_established_sa() {
    lab(Server::Revoked, "", async |_, ha, seen| {
        daemon::wait_ike_down(&mut ha.events, "mn1's SA deleted on the OCSP answer").await;
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
        assert!(daemon::list(&ha.tx).await.is_empty());
    });
}

#[test]
fn strict_home_agent_decides_with_the_ocsp_answer() {
    lab(
        Server::Revoked,
        "policy = \"strict\"\n",
        async |_, ha, _| {
            let e = daemon::wait_event(&mut ha.events, "AuthFailed", |e| {
                matches!(e, Event::AuthFailed { .. } | Event::IkeUp { .. })
            })
            .await;
            let Event::AuthFailed { reason, .. } = e else {
                panic!("mn1 came up: {e:?}");
            };
            assert!(
                reason.contains(&format!("revoked by ocsp {URI}")),
                "{reason}"
            );
        },
    );
}

#[test]
fn silent_responder_blocks_nobody() {
    lab(Server::Silent, "", async |dir, ha, seen| {
        daemon::wait_children(&mut ha.events, 2).await;
        // While mn1's query hangs, mn4 registers.
        fs::write(
            dir.path().join("mn4.toml"),
            mn_toml(
                "id = \"dn:C=CH, O=mip6-ike test, CN=mn4@example.net\"\ncertificate = \"mn4-ecdsa.pem\"\nprivate_key = \"mn4-ecdsa.key\"\nca = [\"ca-ecdsa.pem\"]\n",
                ha.addr,
                "2001:db8:1::400",
                &format!("home_agent_id = \"{HA_ID}\"\n"),
            ),
        )
        .unwrap();
        let mn4 = daemon::start(&dir.path().join("mn4.toml"));
        daemon::wait_children(&mut ha.events, 2).await;
        // Past the 1 s timeout: both SAs are still there.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(daemon::list(&ha.tx).await.len(), 2);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
        daemon::stop(mn4).await;
    });
}

#[test]
fn endless_responder_is_cut_off() {
    lab(Server::Endless, "", async |_, ha, seen| {
        daemon::wait_children(&mut ha.events, 2).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The query stopped reading at 64 KiB + header; socket buffers hold a few MiB more
        // at most. The SA stays.
        let sent = seen.bytes_sent.load(Ordering::SeqCst);
        assert!(
            sent < 16 << 20,
            "{sent} bytes sent before the client hung up"
        );
        assert_eq!(daemon::list(&ha.tx).await.len(), 1);
    });
}
