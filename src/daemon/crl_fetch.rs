//! CRLs fetched from the certificates' distribution points (`http://` only, as strongSwan's
//! curl-less default and RFC 5280 4.2.1.13 expect): a small HTTP/1.0 GET on tokio, bounded in
//! time (connect + whole transfer) and size, one task per URI, at most a few at once. A hostile
//! or slow CRL server costs one task and its timeout, never the engine's task: the result
//! comes back over a channel, is verified against our CAs like a CRL file, cached until its
//! nextUpdate and fetched again then.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::auth::TrustAnchors;
use crate::auth::revocation::{Crl, MAX_CRL_SIZE};

/// Fetches running at once; further URIs wait for the next request of them.
const MAX_IN_FLIGHT: usize = 8;
/// URIs remembered (cached CRLs and recent failures); beyond this the oldest go.
const MAX_URIS: usize = 256;
/// After a failed fetch, the same URI is not tried again for this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Response headers larger than this are refused.
const MAX_HEADER: usize = 16 * 1024;

/// An `http://host[:port]/path` URI, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUri {
    /// Host as written (an IPv6 literal without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
}

impl HttpUri {
    /// Only plain `http://` URIs with printable ASCII; anything else (https, ldap, userinfo,
    /// control characters that could split the request line) is refused.
    pub fn parse(uri: &str) -> Option<HttpUri> {
        if uri.len() > 1024 || !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let rest = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("http://"))
            .map(|_| &uri[7..])?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after {
                "" => 80,
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            h.parse::<std::net::Ipv6Addr>().ok()?;
            (h.to_string(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), 80),
            }
        };
        if host.is_empty() || port == 0 {
            return None;
        }
        let path = path.split('#').next().unwrap_or("/").to_string();
        Some(HttpUri { host, port, path })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// GET `uri` and return the body: status 200 only, headers and body bounded, the whole
/// exchange within `timeout`.
pub async fn http_get(
    uri: &HttpUri,
    timeout: Duration,
    max_body: usize,
) -> Result<Vec<u8>, String> {
    http_request(uri, timeout, max_body, None).await
}

/// POST `body` of type `content_type` to `uri` (an OCSP request, RFC 6960 A.1) and return
/// the answer's body, bounded like [`http_get`].
pub async fn http_post(
    uri: &HttpUri,
    timeout: Duration,
    max_body: usize,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    http_request(uri, timeout, max_body, Some((content_type, body))).await
}

async fn http_request(
    uri: &HttpUri,
    timeout: Duration,
    max_body: usize,
    post: Option<(&str, &[u8])>,
) -> Result<Vec<u8>, String> {
    tokio::time::timeout(timeout, exchange(uri, max_body, post))
        .await
        .map_err(|_| format!("no complete answer within {} s", timeout.as_secs_f64()))?
}

async fn exchange(
    uri: &HttpUri,
    max_body: usize,
    post: Option<(&str, &[u8])>,
) -> Result<Vec<u8>, String> {
    let mut s = tokio::net::TcpStream::connect((uri.host.as_str(), uri.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut req = match post {
        None => format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: mip6-iked\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n",
            uri.path,
            uri.host_header()
        )
        .into_bytes(),
        Some((ctype, body)) => {
            let mut r = format!(
                "POST {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: mip6-iked\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                uri.path,
                uri.host_header(),
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
    };
    s.write_all(&req).await.map_err(|e| format!("send: {e}"))?;
    req.clear();
    // Read at most header + body + 1 bytes: one more than allowed tells "too large".
    let limit = (MAX_HEADER + max_body + 1) as u64;
    let mut data = Vec::new();
    (&mut s)
        .take(limit)
        .read_to_end(&mut data)
        .await
        .map_err(|e| format!("receive: {e}"))?;
    parse_response(&data, max_body)
}

/// The body of a complete HTTP/1.x response held in `data` (read until the server closed).
pub fn parse_response(data: &[u8], max_body: usize) -> Result<Vec<u8>, String> {
    let end = data
        .windows(4)
        .take(MAX_HEADER)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response header (or a header over 16 KiB)")?;
    let head = std::str::from_utf8(&data[..end]).map_err(|_| "response header is not text")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.split(' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status:.60}"));
    }
    if code != "200" {
        return Err(format!("HTTP status {status:.60}"));
    }
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case("identity") {
            // We asked with HTTP/1.0: a chunked answer is a broken server.
            return Err(format!("unsupported Transfer-Encoding {v:.30}"));
        }
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
        }
    }
    let body = &data[end + 4..];
    if body.len() > max_body || length.is_some_and(|n| n > max_body) {
        return Err(format!("body larger than {max_body} bytes"));
    }
    match length {
        Some(n) if n != body.len() => Err(format!(
            "body of {} bytes, Content-Length {n} (cut short?)",
            body.len()
        )),
        _ => Ok(body.to_vec()),
    }
}

/// What a finished fetch reports to the daemon's task.
pub struct Fetched {
    pub uri: String,
    pub result: Result<Crl, String>,
}

/// The daemon's fetcher: which URIs are in flight, the CRLs they gave (until their
/// nextUpdate) and when each is due again.
pub struct CrlFetcher {
    timeout: Duration,
    tx: mpsc::Sender<Fetched>,
    rx: mpsc::Receiver<Fetched>,
    in_flight: HashSet<String>,
    /// uri -> (the CRL, when to fetch it again)
    cached: HashMap<String, (Crl, Option<Instant>)>,
    failed: HashMap<String, Instant>,
}

impl CrlFetcher {
    pub fn new(timeout: Duration) -> CrlFetcher {
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        CrlFetcher {
            timeout,
            tx,
            rx,
            in_flight: HashSet::new(),
            cached: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Starts fetches of `uris` not already cached, in flight or recently failed.
    pub fn want(&mut self, uris: &[String], trust: Option<Arc<TrustAnchors>>, now: Instant) {
        let Some(trust) = trust else {
            return;
        };
        for u in uris {
            if self.in_flight.contains(u)
                || self.cached.contains_key(u)
                || self.failed.get(u).is_some_and(|t| now < *t + RETRY_AFTER)
            {
                continue;
            }
            self.start(u.clone(), trust.clone());
        }
    }

    fn start(&mut self, uri: String, trust: Arc<TrustAnchors>) {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            debug!(%uri, "CRL fetch deferred: too many in flight");
            return;
        }
        let Some(parsed) = HttpUri::parse(&uri) else {
            debug!(%uri, "not an http:// CRL distribution point");
            return;
        };
        self.in_flight.insert(uri.clone());
        let (tx, timeout) = (self.tx.clone(), self.timeout);
        info!(%uri, "fetching CRL");
        tokio::spawn(async move {
            let result = match http_get(&parsed, timeout, MAX_CRL_SIZE).await {
                // Parsed and verified on a blocking thread: a large CRL (up to 16 MiB, from
                // anyone on the path: HTTP) must not hold up the engine's task meanwhile.
                Ok(body) => {
                    let source = uri.clone();
                    tokio::task::spawn_blocking(move || {
                        Crl::parse(&body, &trust, &source).map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("CRL parser failed: {e}")))
                }
                Err(e) => Err(e),
            };
            let _ = tx.send(Fetched { uri, result }).await;
        });
    }

    /// The next finished fetch (pending forever when none is in flight).
    pub async fn next(&mut self) -> Option<Fetched> {
        self.rx.recv().await
    }

    /// Records a finished fetch; true when the cached CRLs changed.
    pub fn finished(&mut self, f: Fetched, now: Instant, unix: u64) -> bool {
        self.in_flight.remove(&f.uri);
        match f.result {
            Ok(crl) => {
                info!(uri = %f.uri, revoked = crl.revoked_count(), "CRL fetched");
                self.failed.remove(&f.uri);
                // Due again at nextUpdate (at least a minute from now: a CRL already stale
                // must not make us fetch in a loop).
                let due = crl.next_update().map(|n| {
                    let secs = u64::try_from(n).unwrap_or(0).saturating_sub(unix);
                    now + Duration::from_secs(secs.max(60))
                });
                if self.cached.len() >= MAX_URIS
                    && !self.cached.contains_key(&f.uri)
                    && let Some(k) = self.cached.keys().next().cloned()
                {
                    self.cached.remove(&k);
                }
                self.cached.insert(f.uri, (crl, due));
                true
            }
            Err(e) => {
                warn!(uri = %f.uri, reason = %e, "CRL fetch failed");
                if self.failed.len() >= MAX_URIS {
                    self.failed.retain(|_, t| now < *t + RETRY_AFTER);
                }
                if self.failed.len() < MAX_URIS {
                    self.failed.insert(f.uri, now);
                }
                false
            }
        }
    }

    /// When a cached CRL is due again.
    pub fn deadline(&self) -> Option<Instant> {
        self.cached.values().filter_map(|(_, d)| *d).min()
    }

    /// Fetches again the CRLs due at `now` (the cached one stays until the new one arrives).
    pub fn refresh(&mut self, now: Instant, trust: Option<Arc<TrustAnchors>>) {
        let Some(trust) = trust else {
            return;
        };
        let due: Vec<String> = self
            .cached
            .iter_mut()
            .filter(|(_, (_, d))| d.is_some_and(|t| t <= now))
            .map(|(u, (_, d))| {
                // Not again before the fetch ends (or in a minute, should it fail).
                *d = Some(now + RETRY_AFTER);
                u.clone()
            })
            .collect();
        for u in due {
            if !self.in_flight.contains(&u) {
                self.start(u, trust.clone());
            }
        }
    }

    /// The cached CRLs.
    pub fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.cached.values().map(|(c, _)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let u = HttpUri::parse("http://crl.example.net/ca.crl").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("crl.example.net", 80, "/ca.crl")
        );
        assert_eq!(u.host_header(), "crl.example.net");
        let u = HttpUri::parse("HTTP://[2001:db8::1]:8080/a?b=c#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("2001:db8::1", 8080, "/a?b=c")
        );
        assert_eq!(u.host_header(), "[2001:db8::1]:8080");
        assert_eq!(HttpUri::parse("http://h").unwrap().path, "/");
        for bad in [
            "https://h/x",
            "ldap://h/x",
            "http://",
            "http:///x",
            "http://u:p@h/x",
            "http://h:0/x",
            "http://h:99999/x",
            "http://[::1/x",
            "http://[zz]/x",
            "http://h/x y",
            "http://h/x\r\nHost: evil",
            "ftp",
            "",
        ] {
            assert_eq!(HttpUri::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            HttpUri::parse(&format!("http://h/{}", "a".repeat(2000))),
            None
        );
    }

    #[test]
    fn responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(parse_response(ok, 10).unwrap(), b"abc");
        let no_len = b"HTTP/1.0 200 OK\r\n\r\nabcd";
        assert_eq!(parse_response(no_len, 10).unwrap(), b"abcd");
        let e = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n", 10).unwrap_err();
        assert!(e.contains("404"), "{e}");
        let e = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 10).unwrap_err();
        assert!(e.contains("cut short"), "{e}");
        let e = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nab", 10).unwrap_err();
        assert!(e.contains("larger"), "{e}");
        let e = parse_response(b"HTTP/1.1 200 OK\r\n\r\n0123456789x", 10).unwrap_err();
        assert!(e.contains("larger"), "{e}");
        let e = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
            10,
        )
        .unwrap_err();
        assert!(e.contains("Transfer-Encoding"), "{e}");
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n", 10).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nX: y", 10).is_err());
        assert!(parse_response(&vec![b'a'; MAX_HEADER + 10], 10).is_err());
        assert!(parse_response(b"", 10).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 10).is_err());
    }
}
