//! The control protocol's messages: newline-delimited JSON, one object per line, specified for
//! client authors in docs/control-protocol.md.
//!
//! A request is `{"id": <number or string>, "request": "<name>", ...fields}`; its reply echoes
//! the id: `{"id": ..., "ok": true, "result": {...}}` or `{"id": ..., "ok": false, "error":
//! {"code": "...", "message": "..."}}`. Events (after `subscribe`) and address requests (to a
//! registered address provider) carry `"event"` instead of `"id"`.
//!
//! The types serialize and deserialize both ways so that mip6-ikectl and tests use the same
//! definitions as the daemon.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped on incompatible changes; additions (new fields, requests, events) keep the number.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest line accepted from a client, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// Every request name, for telling an unknown request from a malformed known one.
pub const REQUESTS: &[&str] = &[
    "hello",
    "initiate",
    "terminate",
    "rekey",
    "list-sas",
    "list-users",
    "leases",
    "certs",
    "reload",
    "stats",
    "subscribe",
    "address-provider",
    "address-reply",
];

/// A request without its `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    Hello {
        /// The protocol version the client speaks (informative; the reply has ours).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<u32>,
    },
    /// Mobile node: bring up the IKE SA and CHILD_SAs; the reply comes when they are installed.
    Initiate {
        /// "[addr]:port" or an address (port 500); default: [mobile_node] home_agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home_agent: Option<String>,
        /// An IPv6 address or "dynamic"; default: [mobile_node] home_address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        home_address: Option<String>,
        /// SA class names; default: [mobile_node] classes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
        /// Seconds to wait for the SAs (default 60).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
        /// false: reply as soon as the IKE SA is started (an [`InitiateStarted`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait: Option<bool>,
    },
    /// Delete one IKE SA (`ike`) or every IKE SA of a user (`user`, home agent).
    Terminate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ike: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// Rekey an IKE SA, or one of its CHILD_SAs (`child` = inbound SPI in hex).
    Rekey {
        ike: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child: Option<String>,
    },
    /// IKE SAs with their CHILD_SAs; see [`ListQuery`].
    ListSas(ListQuery),
    /// Home agent: the users and how many IKE SAs each has; see [`ListQuery`].
    ListUsers(ListQuery),
    Leases,
    /// Our certificates, the CAs, the CRLs and the peers' certificates with their revocation
    /// status.
    Certs,
    Reload,
    Stats,
    Subscribe,
    /// Home agent: this connection allocates home addresses and prefixes from now on.
    AddressProvider,
    /// A provider's answer to an `address-request` event.
    AddressReply {
        request_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<Ipv6Addr>,
        /// "2001:db8:5::/64"
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Seconds sent with the prefix (default 3600).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_lifetime: Option<u32>,
        /// true: no address from the provider; the daemon uses its own pools.
        #[serde(default)]
        decline: bool,
    },
}

/// Options of `list-sas` and `list-users` (all optional, so that a version-1 client's bare
/// request means what it always did).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// true: the reply comes as several lines of at most about [`STREAM_CHUNK`] bytes each,
    /// every one but the last with `"more": true`; false/absent: one line, as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream: bool,
    /// Only what belongs to this user: a user file's name, or an identity as `sas` prints it
    /// (`fqdn:mn2.example.net`, `dn:C=CH, ...`), which selects the user that identity maps to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only IKE SAs with this home address (list-sas), or users who own it or hold it now
    /// (list-users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hoa: Option<String>,
}

/// Bytes of items in one line of a streamed listing: a line ends after the item that reaches
/// it, so no line is much longer (one item is at most a few KiB) and the daemon holds one
/// line per client instead of the whole listing.
pub const STREAM_CHUNK: usize = 32 * 1024;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Stable error codes (the `code` field). Clients switch on these, never on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The line is not a JSON object.
    Malformed,
    /// The line exceeds 64 KiB; the connection is closed after this reply.
    LineTooLong,
    /// `request` names no known request.
    UnknownRequest,
    /// A known request with missing or invalid fields (or no `id`).
    BadRequest,
    /// The peer's uid is neither root, the daemon's uid nor in the socket's group.
    PermissionDenied,
    /// Too many clients are connected.
    Busy,
    /// The request needs the other role (initiate on a home agent, ...).
    WrongRole,
    NoSuchSa,
    NoSuchUser,
    /// An exchange failed; `exchange` and `notify` say which and why.
    ExchangeFailed,
    /// The IKE SA went down before the request completed.
    SaDown,
    Timeout,
    /// The new configuration was refused; the running one is kept.
    ReloadFailed,
    /// Another connection is already the address provider.
    ProviderExists,
    /// An address-reply for an unknown or expired request.
    NoSuchRequest,
    /// The feature is not available in this daemon build or configuration.
    Unavailable,
    /// The daemon is shutting down or failed internally.
    Internal,
    /// The connection sent no request for `[control] idle_timeout`; it is closed.
    Idle,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::UnknownRequest => "unknown-request",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::PermissionDenied => "permission-denied",
            ErrorCode::Busy => "busy",
            ErrorCode::WrongRole => "wrong-role",
            ErrorCode::NoSuchSa => "no-such-sa",
            ErrorCode::NoSuchUser => "no-such-user",
            ErrorCode::ExchangeFailed => "exchange-failed",
            ErrorCode::SaDown => "sa-down",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ReloadFailed => "reload-failed",
            ErrorCode::ProviderExists => "provider-exists",
            ErrorCode::NoSuchRequest => "no-such-request",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// exchange-failed: "IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// exchange-failed: the error notify's name, e.g. "AUTHENTICATION_FAILED".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_type: Option<u16>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            exchange: None,
            notify: None,
            notify_type: None,
        }
    }
}

/// One line from the daemon: a reply, an event, or an address request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: Value,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// A streamed listing (`"stream": true`): more lines with this id follow; their result's
    /// arrays continue this one's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
}

impl Reply {
    pub fn ok(id: Value, result: Value) -> Reply {
        Reply {
            id,
            ok: true,
            result: Some(result),
            error: None,
            more: false,
        }
    }
    pub fn err(id: Value, error: ErrorBody) -> Reply {
        Reply {
            id,
            ok: false,
            result: None,
            error: Some(error),
            more: false,
        }
    }
}

// ---- results ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloResult {
    pub protocol: u32,
    pub daemon: String,
    pub version: String,
    /// "home-agent" or "mobile-node".
    pub role: String,
    pub uptime_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixInfo {
    /// "2001:db8:5::/64"
    pub prefix: String,
    /// Seconds; 0 = infinite.
    pub lifetime_s: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitiateResult {
    pub ike: String,
    /// true: the IKE SA already existed (an earlier initiate or the daemon's own start).
    pub existing: bool,
    pub local: String,
    pub remote: String,
    pub home_address: Option<Ipv6Addr>,
    pub prefix: Option<PrefixInfo>,
    /// CHILD_SA lifetimes installed in the kernel and when they are rekeyed, seconds.
    pub child_rekey_s: u64,
    pub child_lifetime_s: u64,
    pub ike_rekey_s: u64,
    pub children: Vec<ChildSa>,
}

/// The reply to `initiate` with `"wait": false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitiateStarted {
    pub ike: String,
    pub existing: bool,
    /// Every CHILD_SA asked for is already up.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildSa {
    pub ike: String,
    /// "bu-ba", "payload", "mps-mpa", "hoti-hot"; null for other CHILD_SAs.
    pub class: Option<String>,
    /// "transport" or "tunnel".
    pub mode: String,
    /// Eight hex digits.
    pub spi_in: String,
    pub spi_out: String,
    pub reqid_in: u32,
    pub reqid_out: u32,
    /// Outer SA endpoints.
    pub local: String,
    pub remote: String,
    pub ts_local: Vec<String>,
    pub ts_remote: Vec<String>,
    pub transforms: String,
    pub age_s: u64,
    /// Kernel counters when the backend knows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_out: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IkeSa {
    pub ike: String,
    pub initiator: bool,
    pub state: String,
    pub local: String,
    pub remote: String,
    /// Sixteen hex digits.
    pub spi_i: String,
    pub spi_r: String,
    pub peer: Option<String>,
    /// Home agent: the user file that authorized the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub home_address: Option<Ipv6Addr>,
    /// Mobile node: the home prefix the home agent delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_prefix: Option<PrefixInfo>,
    pub transforms: String,
    /// The AUTH method the peer used (1 RSA, 2 PSK, 9 ECDSA, 14 RFC 7427), 0 before IKE_AUTH.
    pub auth_method: u8,
    pub age_s: u64,
    pub children: Vec<ChildSa>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSasResult {
    pub ike_sas: Vec<IkeSa>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// The identity or pattern of the user file.
    pub identity: String,
    /// "certificate" or "psk".
    pub auth: String,
    pub home_addresses: Vec<Ipv6Addr>,
    pub classes: Vec<String>,
    /// IKE SAs this user has now.
    pub ike_sas: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListUsersResult {
    pub users: Vec<User>,
}

/// A home address or prefix the home agent gave out from a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub user: String,
    pub identity: String,
    pub pool: String,
    /// "address" or "prefix".
    pub kind: String,
    /// An address, or "prefix/len".
    pub value: String,
    /// "bound" (an IKE SA of the identity holds it) or "released" (kept for a while).
    pub state: String,
    /// Released leases: seconds until the item goes back to the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// The IKE SA that holds it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeasesResult {
    pub leases: Vec<Lease>,
}

/// One certificate in `certs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertEntry {
    /// "local" (ours, end entity first), "ca" (a trust anchor) or "peer" (of an IKE SA).
    pub kind: String,
    /// Distinguished names as `sas` prints identities, without the `dn:` prefix.
    pub subject: String,
    pub issuer: String,
    /// Hex of the serial number's DER INTEGER content.
    pub serial: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// "good", "revoked" or "unknown" (absent for CAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What said so: "crl <file>"; absent when nothing knew the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When the status was determined, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
    /// Peer certificates: the IKE SA and the peer's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// One CRL in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrlEntry {
    pub issuer: String,
    pub source: String,
    /// thisUpdate and nextUpdate, Unix seconds.
    pub this_update: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<i64>,
    pub revoked: usize,
    /// Past nextUpdate: it still says who is revoked, but no longer who is good.
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertsResult {
    /// The revocation policy: "strict", "relaxed" or "off".
    pub policy: String,
    pub certs: Vec<CertEntry>,
    pub crls: Vec<CrlEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// What changed, one line each (the daemon's log has the same lines).
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub exchange: String,
    /// The error notify's name, or null for "no answer / local failure".
    pub notify: Option<String>,
    pub notify_type: u16,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    pub uptime_s: u64,
    pub ike_sas: usize,
    pub child_sas: usize,
    /// IKE SAs established (handshakes completed), both roles.
    pub handshakes: u64,
    pub handshakes_failed: u64,
    pub children_established: u64,
    pub retransmissions: u64,
    pub cookies_sent: u64,
    pub invalid_ke_sent: u64,
    pub dropped: u64,
    pub auth_failures: u64,
    pub ts_refused: u64,
    pub nat_detected: u64,
    pub migrations: u64,
    /// Datagrams the kernel dropped on our sockets before we read them (mostly a full receive
    /// buffer: `[listen] receive_buffer`). Absent from older daemons.
    #[serde(default)]
    pub socket_drops: u64,
    /// Messages sent as IKE fragments (RFC 7383), and messages reassembled from fragments.
    /// Absent from older daemons.
    #[serde(default)]
    pub fragmented_sent: u64,
    #[serde(default)]
    pub reassembled: u64,
    /// Exchanges we started that failed, by exchange and notify.
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderResult {
    /// How long the daemon waits for each answer before using its own pools.
    pub timeout_ms: u64,
}

// ---- events ----

/// Lines without `id`: events for subscribers, address requests for the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventMsg {
    IkeUp {
        ike: String,
        local: String,
        remote: String,
        peer: String,
    },
    IkeDown {
        ike: String,
        reason: String,
    },
    /// The IKE SA `old` was rekeyed into `new` (its CHILD_SAs moved; no ike-down for `old`).
    IkeRekeyed {
        old: String,
        new: String,
    },
    ChildUp {
        ike: String,
        child: Box<ChildSa>,
    },
    ChildDown {
        ike: String,
        spi_in: String,
        spi_out: String,
        reason: String,
    },
    HoaAssigned {
        ike: String,
        address: Ipv6Addr,
    },
    PrefixAssigned {
        ike: String,
        prefix: String,
        lifetime_s: u32,
    },
    Migrated {
        ike: String,
        old_local: String,
        old_remote: String,
        new_local: String,
        new_remote: String,
    },
    /// A peer failed authentication (or has no user file).
    AuthFailed {
        remote: String,
        identity: Option<String>,
        /// The selectors its IKE_AUTH asked for (the home address is in them).
        #[serde(default)]
        requested: Vec<String>,
        reason: String,
    },
    /// An authenticated peer asked for addresses or classes it may not have.
    Refused {
        ike: String,
        identity: String,
        /// The selectors it asked for (the addresses asked for are in them).
        requested: Vec<String>,
        reason: String,
    },
    ExchangeFailed {
        ike: String,
        exchange: String,
        notify: Option<String>,
        notify_type: Option<u16>,
        reason: String,
    },
    /// The daemon fetches CRLs from these distribution points (a peer certificate's status
    /// was unknown).
    CrlWanted {
        uris: Vec<String>,
    },
    /// The daemon asks this OCSP responder about a peer certificate (no CRL told its
    /// status); `query` numbers the queries.
    OcspWanted {
        query: u64,
        uri: String,
    },
    /// The subscriber fell behind and `missed` events were lost (the stream continues).
    Lagged {
        missed: u64,
    },
    /// To the address provider only: answer with an `address-reply` request.
    AddressRequest {
        request_id: u64,
        ike: String,
        identity: String,
        user: String,
        /// What the mobile node asked for: "address" and/or "prefix".
        wants: Vec<String>,
        /// The address the mobile node proposed in its CFG_REQUEST, if any.
        requested: Option<Ipv6Addr>,
        timeout_ms: u64,
    },
}

/// Notify names for error messages and stats (the wire's table, also used in logs).
pub use crate::wire::consts::notify_name;

/// Why a line could not be taken as a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// The request's id when it could be read, else null.
    pub id: Value,
    pub error: ErrorBody,
}

/// Reads one line (without its newline) as an id and a request.
pub fn parse_request(line: &[u8]) -> Result<(Value, Request), ParseError> {
    let fail = |id: Value, code, msg: String| ParseError {
        id,
        error: ErrorBody::new(code, msg),
    };
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        fail(
            Value::Null,
            ErrorCode::Malformed,
            format!("not JSON: {e}; send one JSON object per line"),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(fail(
            Value::Null,
            ErrorCode::Malformed,
            "a request is a JSON object such as {\"id\":1,\"request\":\"hello\"}".into(),
        ));
    };
    let id = match obj.remove("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id,
        Some(_) => {
            return Err(fail(
                Value::Null,
                ErrorCode::BadRequest,
                "`id` must be a number or a string".into(),
            ));
        }
        None => {
            return Err(fail(
                Value::Null,
                ErrorCode::BadRequest,
                "every request needs an `id` (a number or a string), echoed in the reply".into(),
            ));
        }
    };
    let name = match obj.get("request") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(fail(
                id,
                ErrorCode::BadRequest,
                "every request needs `request`: the request's name, e.g. \"hello\"".into(),
            ));
        }
    };
    if !REQUESTS.contains(&name.as_str()) {
        let mut shown: String = name.chars().take(64).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        return Err(fail(
            id,
            ErrorCode::UnknownRequest,
            format!(
                "unknown request \"{shown}\"; known: {}",
                REQUESTS.join(", ")
            ),
        ));
    }
    match serde_json::from_value::<Request>(Value::Object(obj)) {
        Ok(r) => Ok((id, r)),
        Err(e) => Err(fail(id, ErrorCode::BadRequest, format!("{name}: {e}"))),
    }
}

/// One request as a line (newline included), for clients.
pub fn request_line(id: u64, r: &Request) -> String {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("id".into(), Value::from(id));
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// Lines from the daemon are replies (with `id`) or events (with `event`).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Reply(Reply),
    Event(EventMsg),
    /// A line this client does not understand (a newer daemon's event, for instance).
    Other(Value),
}

/// Reads one line from the daemon.
pub fn parse_incoming(line: &str) -> Result<Incoming, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad line from daemon: {e}"))?;
    if v.get("id").is_some() {
        return serde_json::from_value(v)
            .map(Incoming::Reply)
            .map_err(|e| format!("bad reply from daemon: {e}"));
    }
    if v.get("event").is_some() {
        return Ok(match serde_json::from_value::<EventMsg>(v.clone()) {
            Ok(e) => Incoming::Event(e),
            Err(_) => Incoming::Other(v),
        });
    }
    Ok(Incoming::Other(v))
}

/// A failure counter map as the protocol lists it.
pub fn failures(map: &BTreeMap<(&'static str, u16), u64>) -> Vec<Failure> {
    map.iter()
        .map(|(&(exchange, n), &count)| Failure {
            exchange: exchange.to_string(),
            notify: notify_name(n).map(str::to_string),
            notify_type: n,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_their_id() {
        let (id, r) = parse_request(br#"{"id":7,"request":"hello","protocol":1}"#).unwrap();
        assert_eq!(id, Value::from(7));
        assert_eq!(r, Request::Hello { protocol: Some(1) });
        let (id, r) = parse_request(
            br#"{"id":"a","request":"initiate","home_address":"dynamic","classes":["bu-ba"]}"#,
        )
        .unwrap();
        assert_eq!(id, Value::from("a"));
        assert!(matches!(r, Request::Initiate { home_address: Some(h), .. } if h == "dynamic"));
    }

    #[test]
    fn a_bare_listing_request_is_the_version_1_one() {
        // Clients written before streaming and filters send no fields: one line, everything.
        let (_, r) = parse_request(br#"{"id":1,"request":"list-sas"}"#).unwrap();
        assert_eq!(r, Request::ListSas(ListQuery::default()));
        let (_, r) = parse_request(
            br#"{"id":2,"request":"list-users","stream":true,"user":"mn1","hoa":"2001:db8:1::100"}"#,
        )
        .unwrap();
        let Request::ListUsers(q) = r else {
            panic!("{r:?}")
        };
        assert!(q.stream);
        assert_eq!(q.user.as_deref(), Some("mn1"));
        assert_eq!(q.hoa.as_deref(), Some("2001:db8:1::100"));
        // And the request line of a bare query stays bare.
        let line = request_line(3, &Request::ListSas(ListQuery::default()));
        assert_eq!(line, "{\"id\":3,\"request\":\"list-sas\"}\n");
    }

    #[test]
    fn bad_lines_get_the_right_code() {
        let code = |l: &[u8]| parse_request(l).unwrap_err().error.code;
        assert_eq!(code(b"{not json"), ErrorCode::Malformed);
        assert_eq!(code(b"[1,2]"), ErrorCode::Malformed);
        assert_eq!(code(br#"{"request":"hello"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"id":[1],"request":"hello"}"#),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(br#"{"id":1,"request":"fly"}"#),
            ErrorCode::UnknownRequest
        );
        assert_eq!(
            code(br#"{"id":1,"request":"rekey"}"#),
            ErrorCode::BadRequest
        );
        // The id survives into the error when it was readable.
        let e = parse_request(br#"{"id":3,"request":"fly"}"#).unwrap_err();
        assert_eq!(e.id, Value::from(3));
    }

    #[test]
    fn request_lines_round_trip() {
        let r = Request::Terminate {
            ike: Some("00000000000000ab".into()),
            user: None,
        };
        let line = request_line(9, &r);
        assert!(line.ends_with('\n'));
        let (id, back) = parse_request(line.trim_end().as_bytes()).unwrap();
        assert_eq!((id, back), (Value::from(9), r));
    }

    #[test]
    fn events_and_replies_are_told_apart() {
        let ev = EventMsg::IkeDown {
            ike: "01".into(),
            reason: "deleted".into(),
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert!(s.contains(r#""event":"ike-down""#), "{s}");
        assert_eq!(parse_incoming(&s).unwrap(), Incoming::Event(ev));
        let r = Reply::err(Value::from(1), ErrorBody::new(ErrorCode::NoSuchSa, "x"));
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#""code":"no-such-sa""#), "{s}");
        assert_eq!(parse_incoming(&s).unwrap(), Incoming::Reply(r));
    }

    #[test]
    fn error_code_names_match_serde() {
        for c in [
            ErrorCode::Malformed,
            ErrorCode::LineTooLong,
            ErrorCode::PermissionDenied,
            ErrorCode::ExchangeFailed,
            ErrorCode::NoSuchRequest,
        ] {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                Value::from(c.as_str()),
                "{c:?}"
            );
        }
    }
}
