//! The control socket: a Unix stream socket speaking newline-delimited JSON (see `protocol`).
//!
//! Who may connect: the socket file is created with the configured mode (0660) and group, and
//! every connection is checked again with SO_PEERCRED: root, the daemon's own uid, and members
//! of the configured group (primary gid or listed in the group file) are served; anyone else
//! gets one `permission-denied` line and is disconnected. The file mode alone would depend on
//! the directory and on umask; the peer check does not.
//!
//! Isolation between clients and from the daemon: each client has its own task and a bounded
//! outbound queue. Nothing ever waits for a client to read: a client whose queue is full
//! (it does not read its replies or events) is disconnected. Lines longer than 64 KiB get a
//! `line-too-long` error and a disconnect; malformed or unknown requests get an error reply and
//! the connection goes on. The daemon's task only ever runs short synchronous calls.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::protocol::{
    self as proto, ErrorBody, ErrorCode, EventMsg, MAX_LINE, Reply, Request, parse_request,
};
use crate::daemon::control::{self as dc, DaemonHandle};
use crate::ike::Event;
use crate::policy::ControlSettings;

/// `initiate` requests (and the event stream) one connection may have running at once.
const MAX_TASKS_PER_CLIENT: usize = 8;

/// Limits of one server (tests shrink them).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Clients at once. Root and the daemon's own uid are not refused by this limit (only by
    /// `max_clients_per_uid`), so other users filling it cannot lock mip6d out.
    pub max_clients: usize,
    /// Clients one uid may have at once (`[control] max_clients_per_uid`).
    pub max_clients_per_uid: usize,
    /// A connection silent this long while it is not subscribed, not the address provider and
    /// waits for no initiate is closed (`[control] idle_timeout`).
    pub idle_timeout: Duration,
    /// Lines waiting for one client before it counts as not reading and is disconnected.
    pub queue_lines: usize,
    /// SO_SNDBUF for client connections (None: the system default).
    pub send_buffer: Option<usize>,
    /// Who may register as address provider besides root and the daemon's own uid: a user
    /// (name or uid) and the members of a group (`[control] provider_user`, `provider_group`).
    pub provider_user: Option<String>,
    pub provider_group: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_clients: 64,
            max_clients_per_uid: crate::policy::DEFAULT_MAX_CLIENTS_PER_UID,
            idle_timeout: crate::policy::DEFAULT_IDLE_TIMEOUT,
            queue_lines: 256,
            send_buffer: None,
            provider_user: None,
            provider_group: None,
        }
    }
}

/// Who may talk to us besides root and our own uid, and who may be the address provider.
#[derive(Debug, Clone, Default)]
struct Access {
    own_uid: u32,
    group: Option<(u32, Vec<String>)>,
    provider_uid: Option<u32>,
    provider_group: Option<(u32, Vec<String>)>,
}

/// `uid` (with primary `gid`) is in `group` (its gid and member names).
fn in_group(group: &Option<(u32, Vec<String>)>, uid: u32, gid: u32) -> bool {
    let Some((group_gid, members)) = group else {
        return false;
    };
    if gid == *group_gid {
        return true;
    }
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => members.contains(&u.name),
        _ => false,
    }
}

impl Access {
    fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.own_uid
    }

    fn allows(&self, uid: u32, gid: u32) -> bool {
        self.privileged(uid) || in_group(&self.group, uid, gid)
    }

    /// The address provider picks any identity's home address: only root, our uid and those
    /// `[control] provider_user` / `provider_group` name may register.
    fn allows_provider(&self, uid: u32, gid: u32) -> bool {
        self.privileged(uid)
            || self.provider_uid == Some(uid)
            || in_group(&self.provider_group, uid, gid)
    }
}

/// A group by name: its gid and members, or why not.
fn lookup_group(path: &Path, key: &str, name: &str) -> Result<(u32, Vec<String>), String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok((g.gid.as_raw(), g.mem)),
        Ok(None) => Err(setup_error(
            path,
            key,
            format!(
                "no group named '{name}'; create it (groupadd {name}) or change [control] {key}"
            ),
        )),
        Err(e) => Err(setup_error(path, &format!("{key} lookup"), e)),
    }
}

/// A bound control socket; [`ControlServer::serve`] runs it. The socket file is removed on drop.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    access: Access,
    opts: ServerOptions,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the socket could not be set up, in words that say what to do.
fn setup_error(path: &Path, what: &str, e: impl std::fmt::Display) -> String {
    format!("control socket {}: {what}: {e}", path.display())
}

impl ControlServer {
    /// Creates the socket as `[control]` says (must run inside a tokio runtime).
    pub fn bind(settings: &ControlSettings) -> Result<ControlServer, String> {
        // The provider timeout is the daemon's ([control] provider_timeout), asked at
        // registration.
        Self::bind_with(
            &settings.socket,
            settings.mode,
            settings.group.as_deref(),
            ServerOptions {
                max_clients_per_uid: settings.max_clients_per_uid,
                idle_timeout: settings.idle_timeout,
                provider_user: settings.provider_user.clone(),
                provider_group: settings.provider_group.clone(),
                ..ServerOptions::default()
            },
        )
    }

    pub fn bind_with(
        path: &Path,
        mode: u32,
        group: Option<&str>,
        opts: ServerOptions,
    ) -> Result<ControlServer, String> {
        let group = group
            .map(|name| lookup_group(path, "group", name))
            .transpose()?;
        let provider_group = opts
            .provider_group
            .as_deref()
            .map(|name| lookup_group(path, "provider_group", name))
            .transpose()?;
        let provider_uid = match opts.provider_user.as_deref() {
            None => None,
            Some(u) => match u.parse::<u32>() {
                Ok(uid) => Some(uid),
                Err(_) => match nix::unistd::User::from_name(u) {
                    Ok(Some(user)) => Some(user.uid.as_raw()),
                    Ok(None) => {
                        return Err(setup_error(
                            path,
                            "provider_user",
                            format!(
                                "no user named '{u}'; write an existing user name or a numeric uid in [control] provider_user"
                            ),
                        ));
                    }
                    Err(e) => return Err(setup_error(path, "provider_user lookup", e)),
                },
            },
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| setup_error(path, "cannot create its directory", e))?;
            // Clients must be able to reach the socket; the socket's own mode protects it.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
        if path.exists() {
            // A socket file left by a daemon that died, or one that a running daemon serves.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(setup_error(
                    path,
                    "in use",
                    "another mip6-iked answers on it; stop it or set [control] socket to another path",
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| setup_error(path, "cannot remove the stale socket", e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| setup_error(path, "cannot bind", e))?;
        let server = ControlServer {
            listener,
            path: path.to_path_buf(),
            access: Access {
                own_uid: nix::unistd::geteuid().as_raw(),
                group: group.clone(),
                provider_uid,
                provider_group,
            },
            opts,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| setup_error(path, "cannot set its mode", e))?;
        if let Some((gid, _)) = group {
            std::os::unix::fs::chown(path, None, Some(gid))
                .map_err(|e| setup_error(path, "cannot give it to the group", e))?;
        }
        info!(socket = %path.display(), mode = format_args!("{mode:04o}"), "control socket listening");
        Ok(server)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts clients until the daemon stops (the task ends when the daemon's channel closes).
    pub fn serve(self, daemon: DaemonHandle) -> JoinHandle<()> {
        tokio::spawn(async move {
            let shared = Arc::new(Shared::default());
            let dispatcher = tokio::spawn(provider_dispatcher(daemon.clone(), shared.clone()));
            let closed = daemon.sender().clone();
            loop {
                let accepted = tokio::select! {
                    a = self.listener.accept() => a,
                    _ = closed.closed() => break,
                };
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        warn!("control socket accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                self.admit(stream, &daemon, &shared);
            }
            dispatcher.abort();
            drop(self);
        })
    }

    fn admit(&self, stream: UnixStream, daemon: &DaemonHandle, shared: &Arc<Shared>) {
        let refuse = |stream: UnixStream, e: ErrorBody| {
            // Best effort, never waits: the refusal fits in an empty socket buffer.
            let line = line_of(&Reply::err(Value::Null, e));
            let _ = stream.try_write(line.as_bytes());
        };
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => return warn!("control socket: no peer credentials: {e}"),
        };
        if !self.access.allows(cred.uid(), cred.gid()) {
            warn!(
                uid = cred.uid(),
                gid = cred.gid(),
                pid = ?cred.pid(),
                "control socket: connection refused"
            );
            let hint = match &self.access.group {
                Some(_) => "run as root or as a member of the socket's group",
                None => "run as root or as the daemon's user, or set [control] group",
            };
            return refuse(
                stream,
                ErrorBody::new(
                    ErrorCode::PermissionDenied,
                    format!("uid {} may not use this socket; {hint}", cred.uid()),
                ),
            );
        }
        let uid = cred.uid();
        // Root and our own uid (mip6d, the operator) are not counted against the global limit:
        // other users' connections, however many, must not lock them out. Every uid, theirs
        // included, has its own limit, and idle connections are closed.
        if !self.access.privileged(uid)
            && shared.clients.load(Ordering::SeqCst) >= self.opts.max_clients
        {
            return refuse(
                stream,
                ErrorBody::new(
                    ErrorCode::Busy,
                    "too many control clients are connected; try again later",
                ),
            );
        }
        {
            let mut per_uid = shared.per_uid();
            let n = per_uid.entry(uid).or_insert(0);
            if *n >= self.opts.max_clients_per_uid {
                drop(per_uid);
                warn!(
                    uid,
                    "control socket: too many connections from this uid; refused"
                );
                return refuse(
                    stream,
                    ErrorBody::new(
                        ErrorCode::Busy,
                        format!(
                            "uid {uid} already has {} control connections (the limit, [control] max_clients_per_uid); close some",
                            self.opts.max_clients_per_uid
                        ),
                    ),
                );
            }
            *n += 1;
        }
        if let Some(n) = self.opts.send_buffer {
            let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &n);
        }
        shared.clients.fetch_add(1, Ordering::SeqCst);
        let id = shared.next_client.fetch_add(1, Ordering::SeqCst);
        debug!(client = id, uid, "control client connected");
        let peer = Peer {
            id,
            may_provide: self.access.allows_provider(uid, cred.gid()),
            uid,
        };
        let (daemon, shared) = (daemon.clone(), shared.clone());
        let (queue, idle) = (self.opts.queue_lines, self.opts.idle_timeout);
        tokio::spawn(async move {
            client(stream, peer, daemon, shared.clone(), queue, idle).await;
            shared.clients.fetch_sub(1, Ordering::SeqCst);
            let mut per_uid = shared.per_uid();
            if let Some(n) = per_uid.get_mut(&uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_uid.remove(&uid);
                }
            }
            debug!(client = id, "control client gone");
        });
    }
}

/// Who a connection is.
struct Peer {
    id: u64,
    uid: u32,
    /// May register as address provider.
    may_provide: bool,
}

/// State shared by every client of one server.
#[derive(Default)]
struct Shared {
    clients: AtomicUsize,
    /// Connections by uid.
    per_uid: Mutex<HashMap<u32, usize>>,
    next_client: AtomicU64,
    next_request: AtomicU64,
    provider: Mutex<Option<Provider>>,
}

/// The registered address provider and the questions it has not answered yet.
struct Provider {
    client: u64,
    out: Outbox,
    /// How long the engine waits (the daemon's [control] provider_timeout).
    timeout: Duration,
    pending: HashMap<u64, oneshot::Sender<ProviderAnswer>>,
}

/// What a provider said.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderAnswer {
    pub address: Option<std::net::Ipv6Addr>,
    pub prefix: Option<(std::net::Ipv6Addr, u8)>,
    pub prefix_lifetime: u32,
}

impl Shared {
    fn provider(&self) -> std::sync::MutexGuard<'_, Option<Provider>> {
        self.provider.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn per_uid(&self) -> std::sync::MutexGuard<'_, HashMap<u32, usize>> {
        self.per_uid.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the writer of one connection sends: a line, or a listing it produces piece by piece.
enum Out {
    Line(String),
    Listing(Listing),
}

/// A listing reply, serialized lazily by the connection's writer task: only one piece (about
/// [`proto::STREAM_CHUNK`] bytes) exists at a time, and the socket's own flow control paces
/// the work, so a 10k-SA listing neither holds the daemon's task nor its whole text in memory.
struct Listing {
    /// The request's id, as JSON.
    id: String,
    /// The result's array: "ike_sas", "users".
    key: &'static str,
    /// One line per piece (`"more": true` on all but the last); else one line in pieces.
    stream: bool,
    items: std::iter::Peekable<Box<dyn Iterator<Item = String> + Send>>,
    started: bool,
    done: bool,
}

impl Listing {
    fn new(
        id: &Value,
        key: &'static str,
        stream: bool,
        items: Box<dyn Iterator<Item = String> + Send>,
    ) -> Listing {
        Listing {
            id: id.to_string(),
            key,
            stream,
            items: items.peekable(),
            started: false,
            done: false,
        }
    }
}

impl Iterator for Listing {
    type Item = String;

    /// The next piece: a whole line when streaming, else the next part of the one line.
    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let mut s = String::new();
        let open = format!(
            r#"{{"id":{},"ok":true,"result":{{"{}":["#,
            self.id, self.key
        );
        let mut first = true;
        if self.stream || !self.started {
            s.push_str(&open);
        } else {
            // A continuation of the single line: the array went on after the last piece.
            first = false;
        }
        self.started = true;
        while s.len() < proto::STREAM_CHUNK {
            let Some(item) = self.items.next() else { break };
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&item);
        }
        let more = self.items.peek().is_some();
        if more && !self.stream {
            return Some(s);
        }
        s.push_str("]}");
        if more {
            s.push_str(r#","more":true"#);
        }
        s.push_str("}\n");
        self.done = !more;
        Some(s)
    }
}

/// One client's bounded outbound queue. Sending never waits: a full queue closes the client.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Out>,
    close: Arc<Notify>,
}

impl Outbox {
    fn send(&self, line: String) -> bool {
        self.push(Out::Line(line))
    }
    /// A listing counts as one entry of the queue whatever its size.
    fn listing(&self, l: Listing) -> bool {
        self.push(Out::Listing(l))
    }
    fn push(&self, o: Out) -> bool {
        match self.tx.try_send(o) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
    fn reply(&self, id: Value, r: Result<Value, ErrorBody>) -> bool {
        self.send(line_of(&match r {
            Ok(v) => Reply::ok(id, v),
            Err(e) => Reply::err(id, e),
        }))
    }
}

fn line_of(v: &impl Serialize) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

fn to_value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

enum LineRead {
    Line,
    Eof,
    TooLong,
}

/// Reads one line into `buf` (newline removed), never holding more than MAX_LINE + one buffer.
/// Cancel-safe: what it consumed stays in `buf` (the caller clears it after each line), so the
/// idle timer may interrupt a line that is still arriving.
async fn read_line(r: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(LineRead::Eof);
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > MAX_LINE {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(avail.get(..take).unwrap_or_default());
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(LineRead::Line);
        }
    }
}

/// Serves one connection until it closes, misbehaves, stops reading or stays idle too long.
async fn client(
    stream: UnixStream,
    peer: Peer,
    daemon: DaemonHandle,
    shared: Arc<Shared>,
    queue: usize,
    idle: Duration,
) {
    let id = peer.id;
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Out>(queue.max(1));
    let close = Arc::new(Notify::new());
    let out = Outbox {
        tx,
        close: close.clone(),
    };
    let writer_close = close.clone();
    let mut writer = tokio::spawn(async move {
        while let Some(o) = rx.recv().await {
            let ok = match o {
                Out::Line(line) => wr.write_all(line.as_bytes()).await.is_ok(),
                Out::Listing(pieces) => {
                    let mut ok = true;
                    for piece in pieces {
                        if wr.write_all(piece.as_bytes()).await.is_err() {
                            ok = false;
                            break;
                        }
                        // The daemon shares this thread (a current-thread runtime): let it
                        // run between pieces even when the socket never makes us wait.
                        tokio::task::yield_now().await;
                    }
                    ok
                }
            };
            if !ok {
                writer_close.notify_one();
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut reader = BufReader::new(rd);
    let mut buf = Vec::new();
    let mut subscribed = false;
    let mut idle_at = tokio::time::Instant::now() + idle;
    loop {
        let r = tokio::select! {
            _ = close.notified() => {
                debug!(client = id, "control client does not read; disconnected");
                break;
            }
            _ = tokio::time::sleep_until(idle_at) => {
                // Waiting for events, address requests or an initiate is not idleness.
                tasks.retain(|t| !t.is_finished());
                let provider = shared.provider().as_ref().is_some_and(|p| p.client == id);
                if subscribed || provider || !tasks.is_empty() {
                    idle_at = tokio::time::Instant::now() + idle;
                    continue;
                }
                debug!(client = id, uid = peer.uid, "control client idle; disconnected");
                out.reply(
                    Value::Null,
                    Err(ErrorBody::new(
                        ErrorCode::Idle,
                        format!("no request for {} s; disconnecting", idle.as_secs_f64()),
                    )),
                );
                break;
            }
            r = read_line(&mut reader, &mut buf) => r,
        };
        match r {
            Ok(LineRead::Line) => {}
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(LineRead::TooLong) => {
                out.reply(
                    Value::Null,
                    Err(ErrorBody::new(
                        ErrorCode::LineTooLong,
                        format!("line longer than {MAX_LINE} bytes; disconnecting"),
                    )),
                );
                break;
            }
        }
        idle_at = tokio::time::Instant::now() + idle;
        let line = std::mem::take(&mut buf);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let (rid, req) = match parse_request(line) {
            Ok(x) => x,
            Err(e) => {
                out.reply(e.id, Err(e.error));
                continue;
            }
        };
        match req {
            Request::Subscribe => {
                if !subscribed {
                    subscribed = true;
                    let rx = daemon.subscribe();
                    out.reply(rid, Ok(Value::Object(Default::default())));
                    tasks.push(tokio::spawn(forward_events(rx, out.clone())));
                } else {
                    out.reply(rid, Ok(Value::Object(Default::default())));
                }
            }
            Request::Initiate {
                home_agent,
                home_address,
                classes,
                timeout,
                wait: wait_for_sas,
            } => {
                let params = match dc::initiate_params(
                    home_agent.as_deref(),
                    home_address.as_deref(),
                    classes.as_deref(),
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        out.reply(rid, Err(e));
                        continue;
                    }
                };
                let wait = match timeout {
                    Some(t) if t.is_finite() && t > 0.0 => Duration::from_secs_f64(t.min(3600.0)),
                    Some(_) => {
                        out.reply(
                            rid,
                            Err(ErrorBody::new(
                                ErrorCode::BadRequest,
                                "timeout: give a positive number of seconds",
                            )),
                        );
                        continue;
                    }
                    None => dc::INITIATE_TIMEOUT,
                };
                tasks.retain(|t| !t.is_finished());
                if tasks.len() >= MAX_TASKS_PER_CLIENT {
                    out.reply(
                        rid,
                        Err(ErrorBody::new(
                            ErrorCode::Busy,
                            "too many initiate requests in flight on this connection; wait for their replies",
                        )),
                    );
                    continue;
                }
                let (daemon, out) = (daemon.clone(), out.clone());
                tasks.push(tokio::spawn(async move {
                    let r = if wait_for_sas == Some(false) {
                        initiate_nowait(&daemon, params).await
                    } else {
                        initiate(&daemon, params, wait).await
                    };
                    out.reply(rid, r);
                }));
            }
            Request::AddressProvider => {
                let r = if peer.may_provide {
                    register_provider(&shared, id, &out, &daemon).await
                } else {
                    warn!(
                        client = id,
                        uid = peer.uid,
                        "address-provider refused: uid not allowed"
                    );
                    Err(ErrorBody::new(
                        ErrorCode::PermissionDenied,
                        format!(
                            "uid {} may not be the address provider (it would choose every mobile node's home address); run it as root or set [control] provider_user or provider_group",
                            peer.uid
                        ),
                    ))
                };
                out.reply(rid, r);
            }
            Request::AddressReply {
                request_id,
                address,
                prefix,
                prefix_lifetime,
                decline,
            } => {
                let r = address_reply(
                    &shared,
                    id,
                    request_id,
                    address,
                    prefix.map(|p| (p, prefix_lifetime)),
                    decline,
                );
                out.reply(rid, r);
            }
            Request::ListSas(q) => match list_sas(&daemon, &rid, &q).await {
                Ok(l) => {
                    out.listing(l);
                }
                Err(e) => {
                    out.reply(rid, Err(e));
                }
            },
            Request::ListUsers(q) => match list_users(&daemon, &rid, &q).await {
                Ok(l) => {
                    out.listing(l);
                }
                Err(e) => {
                    out.reply(rid, Err(e));
                }
            },
            other => {
                let r = simple(&daemon, other).await;
                out.reply(rid, r);
            }
        }
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        t.abort();
    }
    let was_provider = {
        let mut p = shared.provider();
        if p.as_ref().is_some_and(|p| p.client == id) {
            // Pending questions fall back to the daemon's pools when their senders drop.
            *p = None;
            true
        } else {
            false
        }
    };
    if was_provider {
        info!(
            client = id,
            "address provider gone; the daemon allocates from its own pools"
        );
        let _ = daemon.call(|d| d.set_address_provider(false)).await;
    }
    // Let queued lines (a last error) go out, but never wait for a client that does not read.
    drop(out);
    if tokio::time::timeout(Duration::from_millis(500), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Requests answered by one quick call on the daemon's task.
async fn simple(daemon: &DaemonHandle, req: Request) -> Result<Value, ErrorBody> {
    match req {
        Request::Hello { .. } => daemon.call(|d| to_value(d.hello())).await,
        Request::Stats => daemon.call(|d| to_value(d.stats())).await,
        Request::Leases => daemon.call(|d| d.leases().map(to_value)).await?,
        Request::Certs => daemon.call(|d| to_value(d.certs())).await,
        Request::Reload => {
            daemon
                .call(|d| {
                    d.reload_for_control()
                        .map(|changes| to_value(proto::ReloadResult { changes }))
                })
                .await?
        }
        Request::Terminate { ike, user } => {
            let ike = ike.as_deref().map(dc::parse_ike_id).transpose()?;
            let r = daemon
                .call(move |d| d.terminate(ike, user.as_deref()))
                .await??;
            Ok(serde_json::json!({ "terminated": r }))
        }
        Request::Rekey { ike, child } => {
            let ike = dc::parse_ike_id(&ike)?;
            let child = child
                .map(|c| {
                    u32::from_str_radix(c.trim().trim_start_matches("0x"), 16).map_err(|_| {
                        ErrorBody::new(
                            ErrorCode::BadRequest,
                            format!(
                                "child = \"{c}\": give the inbound SPI in hex, as `sas` shows it"
                            ),
                        )
                    })
                })
                .transpose()?;
            daemon.call(move |d| d.rekey(ike, child)).await??;
            Ok(Value::Object(Default::default()))
        }
        _ => Err(ErrorBody::new(
            ErrorCode::Internal,
            "request not handled here",
        )),
    }
}

/// Items serialized one by one (an item that cannot be serialized is left out; none can).
fn serialized<T: Serialize>(
    it: impl Iterator<Item = T> + Send + 'static,
) -> Box<dyn Iterator<Item = String> + Send> {
    Box::new(it.filter_map(|x| serde_json::to_string(&x).ok()))
}

/// Runs `f` on tokio's blocking pool: the join with the users is O(SAs + users) but still
/// too long for the thread the daemon's task shares.
async fn off_task<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ErrorBody> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("listing failed: {e}")))
}

/// `list-sas`: a snapshot from the daemon's task, the selection on the blocking pool, the
/// conversion and serialization by the connection's writer.
async fn list_sas(
    daemon: &DaemonHandle,
    rid: &Value,
    q: &proto::ListQuery,
) -> Result<Listing, ErrorBody> {
    let f = dc::ListFilter::parse(q)?;
    let snap = daemon.call(|d| d.sas_snapshot()).await?;
    let (snap, sel) = off_task(move || {
        let sel = snap.select(&f);
        (snap, sel)
    })
    .await?;
    let items = sel.into_iter().map(move |x| snap.item(&x));
    Ok(Listing::new(rid, "ike_sas", q.stream, serialized(items)))
}

/// `list-users`, as `list-sas`.
async fn list_users(
    daemon: &DaemonHandle,
    rid: &Value,
    q: &proto::ListQuery,
) -> Result<Listing, ErrorBody> {
    let f = dc::ListFilter::parse(q)?;
    let snap = daemon.call(|d| d.users_snapshot()).await??;
    let sel = off_task(move || snap.select(&f)).await?;
    let items = sel.into_iter().map(|x| dc::user_item(&x));
    Ok(Listing::new(rid, "users", q.stream, serialized(items)))
}

/// `initiate` with `"wait": false`.
async fn initiate_nowait(
    daemon: &DaemonHandle,
    params: dc::InitiateParams,
) -> Result<Value, ErrorBody> {
    let start = daemon.call(move |d| d.start_initiate(params)).await??;
    Ok(to_value(proto::InitiateStarted {
        ike: start.ike.to_string(),
        existing: start.existing,
        complete: start.done.is_some(),
    }))
}

/// `initiate`: start (or find) the IKE SA, then follow its events until every CHILD_SA is up,
/// an exchange fails, the SA goes down, or `wait` passes.
async fn initiate(
    daemon: &DaemonHandle,
    params: dc::InitiateParams,
    wait: Duration,
) -> Result<Value, ErrorBody> {
    // Subscribed before the daemon acts, so no event of this SA can be missed.
    let mut events = daemon.subscribe();
    let start = daemon.call(move |d| d.start_initiate(params)).await??;
    if let Some(done) = start.done {
        return Ok(to_value(done));
    }
    let mut ike = start.ike;
    let mut prefix = None;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Checked on every step: the SA may have come up before we looked (an existing one).
        let info = daemon.call(move |d| d.ike_info(ike)).await?;
        match &info {
            Some(i) if dc::has_classes(i, &start.classes) => {
                let (i, p) = (i.clone(), prefix.clone());
                return daemon
                    .call(move |d| to_value(d.initiate_result(&i, false, p)))
                    .await;
            }
            None => {
                return Err(ErrorBody::new(
                    ErrorCode::SaDown,
                    format!("IKE SA {ike} went away before its CHILD_SAs were up"),
                ));
            }
            _ => {}
        }
        let ev = tokio::select! {
            e = events.recv() => e,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ErrorBody::new(
                    ErrorCode::Timeout,
                    format!("IKE SA {ike}: the SAs were not up after {:?}; it keeps trying (see `sas`)", wait),
                ));
            }
        };
        let ev = match ev {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                return Err(ErrorBody::new(ErrorCode::Internal, "the daemon stopped"));
            }
        };
        match ev {
            Event::IkeRekeyed { old, new } if old == ike => ike = new,
            Event::PrefixAssigned {
                ike: i,
                prefix: p,
                prefix_len,
                lifetime,
            } if i == ike => {
                prefix = Some(proto::PrefixInfo {
                    prefix: format!("{p}/{prefix_len}"),
                    lifetime_s: lifetime,
                });
            }
            Event::ExchangeFailed {
                ike: i,
                exchange,
                notify,
                reason,
            } if i == ike => {
                let mut e = ErrorBody::new(
                    ErrorCode::ExchangeFailed,
                    format!("{exchange} failed: {reason}"),
                );
                e.exchange = Some(exchange.to_string());
                e.notify = notify.and_then(proto::notify_name).map(str::to_string);
                e.notify_type = notify;
                return Err(e);
            }
            Event::IkeDown { ike: i, reason } if i == ike => {
                return Err(ErrorBody::new(
                    ErrorCode::SaDown,
                    format!("IKE SA {ike} went down: {reason}"),
                ));
            }
            _ => {}
        }
    }
}

/// A subscriber's event stream; ends (and closes the client) when its queue overflows.
async fn forward_events(mut rx: broadcast::Receiver<Event>, out: Outbox) {
    loop {
        let msg = match rx.recv().await {
            Ok(Event::AddressWanted { .. }) => continue,
            Ok(e) => dc::event_msg(&e),
            Err(broadcast::error::RecvError::Lagged(n)) => EventMsg::Lagged { missed: n },
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !out.send(line_of(&msg)) {
            return;
        }
    }
}

async fn register_provider(
    shared: &Arc<Shared>,
    client: u64,
    out: &Outbox,
    daemon: &DaemonHandle,
) -> Result<Value, ErrorBody> {
    let is_ha = daemon
        .call(|d| d.role() == crate::policy::Role::HomeAgent)
        .await?;
    if !is_ha {
        return Err(ErrorBody::new(
            ErrorCode::WrongRole,
            "address-provider: only a home agent assigns addresses",
        ));
    }
    let exists = || {
        ErrorBody::new(
            ErrorCode::ProviderExists,
            "another client is the address provider; it must disconnect first",
        )
    };
    if shared
        .provider()
        .as_ref()
        .is_some_and(|p| p.client != client)
    {
        return Err(exists());
    }
    let timeout = daemon.call(|d| d.set_address_provider(true)).await?;
    {
        let mut p = shared.provider();
        match p.as_ref() {
            Some(prev) if prev.client != client => return Err(exists()),
            Some(_) => {}
            None => {
                *p = Some(Provider {
                    client,
                    out: out.clone(),
                    timeout,
                    pending: HashMap::new(),
                });
            }
        }
    }
    info!(client, "address provider registered");
    Ok(to_value(proto::ProviderResult {
        timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
    }))
}

fn address_reply(
    shared: &Shared,
    client: u64,
    request: u64,
    address: Option<std::net::Ipv6Addr>,
    prefix: Option<(String, Option<u32>)>,
    decline: bool,
) -> Result<Value, ErrorBody> {
    let lifetime = prefix
        .as_ref()
        .and_then(|p| p.1)
        .unwrap_or(DEFAULT_PREFIX_LIFETIME);
    let prefix = prefix.map(|p| parse_prefix(&p.0)).transpose()?;
    if let Some(a) = address
        && (a.is_unspecified() || a.is_multicast() || a.is_loopback())
    {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("address-reply: {a} cannot be a home address; give a unicast address"),
        ));
    }
    let mut guard = shared.provider();
    let Some(p) = guard.as_mut().filter(|p| p.client == client) else {
        return Err(ErrorBody::new(
            ErrorCode::NoSuchRequest,
            "address-reply: this connection is not the address provider",
        ));
    };
    let Some(tx) = p.pending.remove(&request) else {
        return Err(ErrorBody::new(
            ErrorCode::NoSuchRequest,
            format!(
                "address-reply: request {request} is unknown or timed out (the daemon used its own pools)"
            ),
        ));
    };
    let answer = if decline {
        ProviderAnswer {
            address: None,
            prefix: None,
            prefix_lifetime: 0,
        }
    } else {
        if address.is_none() && prefix.is_none() {
            // Put it back: the provider may still answer properly in time.
            p.pending.insert(request, tx);
            return Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "address-reply: give address, prefix, or decline = true",
            ));
        }
        ProviderAnswer {
            address,
            prefix,
            prefix_lifetime: lifetime,
        }
    };
    let _ = tx.send(answer);
    Ok(Value::Object(Default::default()))
}

/// Lifetime sent with a provider's prefix when its reply names none (seconds).
pub const DEFAULT_PREFIX_LIFETIME: u32 = 3600;

/// "2001:db8:5::/64"
fn parse_prefix(s: &str) -> Result<(std::net::Ipv6Addr, u8), ErrorBody> {
    let bad = || {
        ErrorBody::new(
            ErrorCode::BadRequest,
            format!("prefix = \"{s}\": write an IPv6 prefix such as \"2001:db8:5::/64\""),
        )
    };
    let (a, l) = s.trim().split_once('/').ok_or_else(bad)?;
    let a: std::net::Ipv6Addr = a.parse().map_err(|_| bad())?;
    let l: u8 = l.parse().map_err(|_| bad())?;
    if l == 0 || l > 128 || a.is_multicast() {
        return Err(bad());
    }
    Ok((a, l))
}

/// Turns the engine's address questions into `address-request` lines for the provider, and its
/// answers (or the timeout) into commands for the engine.
async fn provider_dispatcher(daemon: DaemonHandle, shared: Arc<Shared>) {
    let mut rx = daemon.subscribe();
    loop {
        let e = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Event::AddressWanted { ike, user, .. } = &e else {
            continue;
        };
        let (ike, user) = (*ike, user.clone());
        // The line is the event stream's address-request with this request's id and timeout.
        let mut msg = dc::event_msg(&e);
        let request = shared.next_request.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, answer) = oneshot::channel();
        let mut timeout = Duration::ZERO;
        let sent = {
            let mut guard = shared.provider();
            match guard.as_mut() {
                Some(p) => {
                    timeout = p.timeout;
                    p.pending.insert(request, tx);
                    if let EventMsg::AddressRequest {
                        request_id,
                        timeout_ms,
                        ..
                    } = &mut msg
                    {
                        *request_id = request;
                        *timeout_ms = timeout.as_millis().try_into().unwrap_or(u64::MAX);
                    }
                    p.out.send(line_of(&msg))
                }
                None => false,
            }
        };
        let (daemon, shared) = (daemon.clone(), shared.clone());
        tokio::spawn(async move {
            let got = if sent {
                match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(a)) => Some(a),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(p) = shared.provider().as_mut() {
                p.pending.remove(&request);
            }
            if got.is_none() {
                info!(ike = %ike, user, "address provider did not answer; using the daemon's pools");
            }
            let _ = daemon.call(move |d| d.provide_address(ike, got)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Box<dyn Iterator<Item = String> + Send> {
        serialized((0..n).map(|i| serde_json::json!({ "n": i, "pad": "x".repeat(100) })))
    }

    #[test]
    fn a_streamed_listing_is_bounded_lines_that_add_up() {
        let lines: Vec<String> =
            Listing::new(&Value::from(7), "ike_sas", true, items(1000)).collect();
        assert!(lines.len() > 1);
        let mut all = Vec::new();
        for (k, l) in lines.iter().enumerate() {
            assert!(
                l.ends_with('\n') && l.len() < proto::STREAM_CHUNK + 200,
                "{}",
                l.len()
            );
            let r: Reply = serde_json::from_str(l).unwrap();
            assert_eq!(r.id, Value::from(7));
            assert_eq!(r.more, k + 1 < lines.len());
            all.extend(r.result.unwrap()["ike_sas"].as_array().unwrap().clone());
        }
        let ns: Vec<u64> = all.iter().map(|v| v["n"].as_u64().unwrap()).collect();
        assert_eq!(ns, (0..1000).collect::<Vec<u64>>());
    }

    #[test]
    fn an_unstreamed_listing_is_one_line_in_pieces() {
        let text: String = Listing::new(&Value::from("a"), "users", false, items(1000)).collect();
        assert_eq!(text.matches('\n').count(), 1);
        let r: Reply = serde_json::from_str(&text).unwrap();
        assert!(!r.more);
        assert_eq!(r.result.unwrap()["users"].as_array().unwrap().len(), 1000);
        for (n, stream) in [(0, false), (0, true)] {
            let text: String = Listing::new(&Value::from(1), "users", stream, items(n)).collect();
            assert_eq!(text, "{\"id\":1,\"ok\":true,\"result\":{\"users\":[]}}\n");
        }
    }
}
