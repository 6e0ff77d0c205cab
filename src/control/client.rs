//! A blocking client of the control socket (mip6-ikectl, tests, example code for other clients).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::protocol::{
    ErrorBody, ErrorCode, EventMsg, Incoming, ListQuery, MAX_LINE, Request, parse_incoming,
    request_line,
};

/// Why a request did not succeed, with the exit code mip6-ikectl uses for it.
#[derive(Debug)]
pub enum ClientError {
    /// No socket file, or nobody listening on it.
    NotRunning { path: PathBuf, detail: String },
    /// The socket file or the daemon refused us.
    Permission { path: PathBuf, detail: String },
    /// The daemon answered with an error.
    Daemon(ErrorBody),
    /// The daemon closed the connection or sent something unreadable.
    Protocol(String),
    /// No answer in time.
    Timeout,
}

impl ClientError {
    /// mip6-ikectl's exit codes (documented in docs/control-protocol.md).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Daemon(e) => match e.code {
                ErrorCode::PermissionDenied => 4,
                ErrorCode::ExchangeFailed | ErrorCode::SaDown => 5,
                ErrorCode::Timeout => 6,
                _ => 1,
            },
            ClientError::NotRunning { .. } => 3,
            ClientError::Permission { .. } => 4,
            ClientError::Timeout => 6,
            ClientError::Protocol(_) => 7,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning { path, detail } => write!(
                f,
                "daemon not running: {detail} at {}; start mip6-iked, or give --socket PATH ([control] socket in its configuration)",
                path.display()
            ),
            ClientError::Permission { path, detail } => write!(
                f,
                "permission denied on {}: {detail}; run as root or as a member of the socket's group ([control] group)",
                path.display()
            ),
            ClientError::Daemon(e) => {
                write!(f, "{}: {}", e.code.as_str(), e.message)?;
                if let Some(n) = &e.notify {
                    write!(f, " (notify {n})")?;
                }
                Ok(())
            }
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::Timeout => f.write_str("no answer from the daemon in time"),
        }
    }
}

impl std::error::Error for ClientError {}

pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// Events that arrived while waiting for a reply.
    pending_events: Vec<EventMsg>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| {
            let detail = e.to_string();
            match e.kind() {
                std::io::ErrorKind::NotFound => ClientError::NotRunning {
                    path: path.into(),
                    detail: "no socket".into(),
                },
                std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                    path: path.into(),
                    detail: "nobody listens on the socket".into(),
                },
                std::io::ErrorKind::PermissionDenied => ClientError::Permission {
                    path: path.into(),
                    detail,
                },
                _ => ClientError::NotRunning {
                    path: path.into(),
                    detail,
                },
            }
        })?;
        let writer = stream
            .try_clone()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            path: path.into(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            pending_events: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bounds every wait for a line (None: wait forever).
    pub fn set_timeout(&mut self, t: Option<Duration>) {
        let _ = self.reader.get_ref().set_read_timeout(t);
    }

    /// Sends a request and returns its result; events that arrive meanwhile are kept.
    /// Listings are always asked for streamed (their lines are merged here), so that no line
    /// of a large one exceeds what [`Client::read`] accepts.
    pub fn request(&mut self, r: &Request) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let streamed;
        let r = match r {
            Request::ListSas(q) | Request::ListUsers(q) if !q.stream => {
                let q = ListQuery {
                    stream: true,
                    ..q.clone()
                };
                streamed = match r {
                    Request::ListSas(_) => Request::ListSas(q),
                    _ => Request::ListUsers(q),
                };
                &streamed
            }
            _ => r,
        };
        if let Err(e) = self.send_line(&request_line(id, r)) {
            // The daemon may have hung up with a reason (permission-denied, busy): show that.
            if let Ok(Incoming::Reply(rep)) = self.read()
                && let Some(err) = rep.error
            {
                return Err(ClientError::Daemon(err));
            }
            return Err(e);
        }
        // A streamed listing's lines so far, merged.
        let mut partial: Option<Value> = None;
        loop {
            match self.read()? {
                Incoming::Reply(rep) => {
                    if rep.id == id {
                        if rep.ok && rep.more {
                            merge(&mut partial, rep.result.unwrap_or(Value::Null));
                            continue;
                        }
                        return match (rep.ok, rep.error) {
                            (true, _) => {
                                let last = rep.result.unwrap_or(Value::Null);
                                Ok(match partial {
                                    None => last,
                                    Some(mut v) => {
                                        merge_into(&mut v, last);
                                        v
                                    }
                                })
                            }
                            (false, Some(e)) => Err(ClientError::Daemon(e)),
                            (false, None) => {
                                Err(ClientError::Protocol("error reply without error".into()))
                            }
                        };
                    }
                    if rep.id.is_null()
                        && let Some(e) = rep.error
                    {
                        // Connection-level errors (permission-denied, busy) have no id.
                        return Err(ClientError::Daemon(e));
                    }
                }
                Incoming::Event(e) => self.pending_events.push(e),
                Incoming::Other(_) => {}
            }
        }
    }

    /// Sends a listing request and hands each line's result to `each` as it arrives (a
    /// streamed listing: several lines; otherwise one), so that the client never holds more
    /// than one line. Events meanwhile are kept.
    pub fn request_each(
        &mut self,
        r: &Request,
        mut each: impl FnMut(Value) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_line(&request_line(id, r))?;
        loop {
            match self.read()? {
                Incoming::Reply(rep) if rep.id == id => match (rep.ok, rep.error) {
                    (true, _) => {
                        each(rep.result.unwrap_or(Value::Null))?;
                        if !rep.more {
                            return Ok(());
                        }
                    }
                    (false, Some(e)) => return Err(ClientError::Daemon(e)),
                    (false, None) => {
                        return Err(ClientError::Protocol("error reply without error".into()));
                    }
                },
                Incoming::Reply(rep) => {
                    if rep.id.is_null()
                        && let Some(e) = rep.error
                    {
                        return Err(ClientError::Daemon(e));
                    }
                }
                Incoming::Event(e) => self.pending_events.push(e),
                Incoming::Other(_) => {}
            }
        }
    }

    /// [`Client::request`] with the result read as `T`.
    pub fn call<T: DeserializeOwned>(&mut self, r: &Request) -> Result<T, ClientError> {
        let v = self.request(r)?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("bad result: {e}")))
    }

    /// Sends raw bytes (tests of bad input).
    pub fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("cannot write to the daemon: {e}")))
    }

    /// The next line from the daemon.
    pub fn read(&mut self) -> Result<Incoming, ClientError> {
        let mut line = String::new();
        // Bounded: a daemon line is far below this; anything longer is not ours.
        let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64 * 4)
            .read_line(&mut line)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    ClientError::Timeout
                }
                _ => ClientError::Protocol(format!("cannot read from the daemon: {e}")),
            })?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        parse_incoming(line.trim_end()).map_err(ClientError::Protocol)
    }

    /// The next event (after `subscribe`).
    pub fn next_event(&mut self) -> Result<EventMsg, ClientError> {
        if !self.pending_events.is_empty() {
            return Ok(self.pending_events.remove(0));
        }
        loop {
            if let Incoming::Event(e) = self.read()? {
                return Ok(e);
            }
        }
    }
}

/// Adds one streamed line's result to what came before.
fn merge(acc: &mut Option<Value>, next: Value) {
    match acc {
        None => *acc = Some(next),
        Some(v) => merge_into(v, next),
    }
}

/// The arrays of `next` continue those of `acc`; other fields take the later value.
fn merge_into(acc: &mut Value, next: Value) {
    let (Value::Object(a), Value::Object(n)) = (acc, next) else {
        return;
    };
    for (k, v) in n {
        match (a.get_mut(&k), v) {
            (Some(Value::Array(old)), Value::Array(more)) => old.extend(more),
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
}
