//! CRLs fetched over HTTP from a certificate's distribution point (mn4's names
//! http://127.0.0.1:8480/ca-ecdsa.crl), by a home agent daemon, against a CRL server on the
//! loopback of a fresh network namespace per test (root): a good server's CRL deletes the
//! revoked mobile node's SA; a server that never answers or sends an endless body costs a
//! bounded fetch and nothing else (another mobile node registers meanwhile, the SA stays).

mod common;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::daemon::{self, HA_ID, MN1_STATIC_USER, ha_toml, mn_toml, mn1_toml};
use mip6_ike::ike::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MN4_USER: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn4@example.net"
home_addresses = ["2001:db8:1::400"]
classes = ["bu-ba", "payload"]
"#;

#[derive(Clone, Copy)]
enum Server {
    /// Answers with the ECDSA CA's CRL (which revokes mn3 and mn4).
    Good,
    /// Reads the request and never answers.
    Silent,
    /// Streams zeros without end.
    Endless,
}

struct Seen {
    requests: AtomicUsize,
    bytes_sent: AtomicUsize,
}

async fn crl_server(kind: Server) -> Arc<Seen> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:8480")
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
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(req.starts_with(b"GET /ca-ecdsa.crl HTTP/1.0\r\n"));
                s.requests.fetch_add(1, Ordering::SeqCst);
                match kind {
                    Server::Good => {
                        let body = include_bytes!("../certs/crl-ecdsa.der");
                        let head = format!(
                            "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = c.write_all(head.as_bytes()).await;
                        let _ = c.write_all(body).await;
                    }
                    Server::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
                    Server::Endless => {
                        let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                        let chunk = vec![0u8; 64 * 1024];
                        // Until the client hangs up (or 64 MiB).
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

/// In a fresh netns: a CRL server of `kind`, a home agent (users mn1, mn4; CRL fetching with a
/// 1 s timeout) and mn4's daemon, which registers. Then `check`.
fn lab<F>(kind: Server, check: F)
where
    F: AsyncFnOnce(&tempfile::TempDir, &mut daemon::Running, &Seen) + Send + 'static,
{
    lab_with(kind, "", true, check)
}

/// [`lab`] with `revocation` lines in the HA's [revocation]; `up`: whether mn4 gets its SAs.
fn lab_with<F>(kind: Server, revocation: &'static str, up: bool, check: F)
where
    F: AsyncFnOnce(&tempfile::TempDir, &mut daemon::Running, &Seen) + Send + 'static,
{
    common::netns::in_netns_with(
        "CRL fetch tests",
        || {},
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let seen = crl_server(kind).await;
                let dir = daemon::tree();
                daemon::copy_certs(dir.path(), &["mn4-ecdsa.pem", "mn4-ecdsa.key"]);
                fs::write(dir.path().join("users/mn4.toml"), MN4_USER).unwrap();
                fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
                fs::write(
                    dir.path().join("ha.toml"),
                    ha_toml("::1", &format!("[revocation]\nfetch_timeout = 1\n{revocation}")),
                )
                .unwrap();
                let mut ha = daemon::start(&dir.path().join("ha.toml"));
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
                // Relaxed: mn4's status is unknown (no CRL yet), so it is accepted, and the
                // home agent asks for the CRL of its distribution point.
                // (CrlWanted comes during IKE_AUTH, before IkeUp.)
                daemon::wait_event(&mut ha.events, "CrlWanted", |e| {
                    matches!(e, Event::CrlWanted { uris } if uris == &["http://127.0.0.1:8480/ca-ecdsa.crl"])
                })
                .await;
                if up {
                    daemon::wait_children(&mut ha.events, 2).await;
                }
                check(&dir, &mut ha, &seen).await;
                daemon::stop(mn4).await;
                daemon::stop(ha).await;
            })
        },
    );
}

#[test]
fn fetched_crl_deletes_the_revoked_mobile_nodes_sa() {
    // Not waiting for both CHILD_SAs: the CRL may come before the second one.
    lab_with(Server::Good, "", false, async |_, ha, seen| {
        daemon::wait_event(&mut ha.events, "mn4's IKE SA up", |e| {
            matches!(e, Event::IkeUp { .. })
        })
        .await;
        daemon::wait_ike_down(&mut ha.events, "mn4's SA deleted after the fetched CRL").await;
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
        assert!(daemon::list(&ha.tx).await.is_empty());
    });
}

#[test]
fn silent_crl_server_blocks_nobody() {
    lab(Server::Silent, async |dir, ha, seen| {
        // While the fetch hangs, mn1 registers.
        fs::write(
            dir.path().join("mn1.toml"),
            mn1_toml(
                ha.addr,
                "2001:db8:1::100",
                &format!("home_agent_id = \"{HA_ID}\"\n"),
            ),
        )
        .unwrap();
        let mn1 = daemon::start(&dir.path().join("mn1.toml"));
        daemon::wait_children(&mut ha.events, 2).await;
        // Past the 1 s fetch timeout: both SAs are still there.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(daemon::list(&ha.tx).await.len(), 2);
        assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
        daemon::stop(mn1).await;
    });
}

#[test]
fn endless_crl_body_is_cut_off() {
    lab(Server::Endless, async |_, ha, seen| {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The fetch stopped reading at the size bound (16 MiB + header); the kernel's
        // socket buffers hold a few MiB more at most. The SA stays.
        let sent = seen.bytes_sent.load(Ordering::SeqCst);
        assert!(
            sent < 32 << 20,
            "{sent} bytes sent before the client hung up"
        );
        assert_eq!(daemon::list(&ha.tx).await.len(), 1);
    });
}

#[test]
fn strict_home_agent_decides_with_the_downloaded_crl() {
    lab_with(
        Server::Good,
        "policy = \"strict\"\n",
        false,
        async |_, ha, seen| {
            // The IKE_AUTH waited for the download, then the CRL refused mn4.
            let e = daemon::wait_event(&mut ha.events, "AuthFailed", |e| {
                matches!(e, Event::AuthFailed { .. } | Event::IkeUp { .. })
            })
            .await;
            let Event::AuthFailed { reason, .. } = e else {
                panic!("mn4 came up: {e:?}");
            };
            assert!(
                reason.contains("revoked by crl http://127.0.0.1:8480/ca-ecdsa.crl"),
                "{reason}"
            );
            assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
            assert!(daemon::list(&ha.tx).await.is_empty());
        },
    );
}
