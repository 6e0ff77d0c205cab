//! mip6-ikectl: the control CLI for mip6-iked, a client of the control socket
//! (docs/control-protocol.md). Human-readable output by default, `--json` for scripts.
//!
//! Exit codes: 0 success, 1 the daemon refused the request, 2 usage, 3 daemon not running,
//! 4 permission denied, 5 negotiation failed (initiate), 6 timeout, 7 protocol error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mip6_ike::control::client::{Client, ClientError};
use mip6_ike::control::protocol::{
    CertsResult, ChildSa, EventMsg, HelloResult, InitiateResult, InitiateStarted, LeasesResult,
    ListQuery, ListSasResult, ListUsersResult, ReloadResult, Request, StatsResult,
};
use mip6_ike::policy::DEFAULT_CONTROL_SOCKET;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "mip6-ikectl",
    version,
    about = "Control CLI for mip6-iked (talks to its control socket)",
    after_help = "Exit codes: 0 ok, 1 request refused by the daemon, 2 usage, 3 daemon not running, \
                  4 permission denied, 5 negotiation failed, 6 timeout, 7 protocol error."
)]
struct Cli {
    /// The daemon's control socket ([control] socket in its configuration).
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON results (one object per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Daemon version, role, uptime and SA counts.
    Status,
    /// IKE and CHILD SAs with addresses, SPIs, classes, reqids, ages and byte counters.
    Sas(Filter),
    /// Mobile node: bring up the IKE SA and CHILD_SAs to the home agent.
    Initiate {
        /// The home agent, "[addr]:port" or an address (default: [mobile_node] home_agent).
        #[arg(long, value_name = "ADDR")]
        home_agent: Option<String>,
        /// A static home address (default: [mobile_node] home_address).
        #[arg(long, value_name = "IPV6", conflicts_with = "dynamic")]
        home_address: Option<String>,
        /// Ask the home agent for a home address (IKEv2 configuration payload).
        #[arg(long)]
        dynamic: bool,
        /// SA class to negotiate (repeat; default: [mobile_node] classes).
        #[arg(long = "class", value_name = "CLASS")]
        classes: Vec<String>,
        /// Wait until the SAs are installed; print the home address (and a delegated prefix on
        /// a second line). For scripts: HOA=$(mip6-ikectl initiate --dynamic --wait | head -n1).
        #[arg(long)]
        wait: bool,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Delete an IKE SA (by id, as `sas` shows it) or every IKE SA of a user.
    Terminate {
        #[arg(value_name = "IKE_SA_ID", required_unless_present = "user")]
        ike: Option<String>,
        /// Home agent: all IKE SAs of this user (the user file's name).
        #[arg(long, conflicts_with = "ike")]
        user: Option<String>,
    },
    /// Rekey an IKE SA, or one of its CHILD_SAs (--child SPI_IN).
    Rekey {
        #[arg(value_name = "IKE_SA_ID")]
        ike: String,
        #[arg(long, value_name = "SPI_IN")]
        child: Option<String>,
    },
    /// Home agent: the users and how many IKE SAs each has.
    Users(Filter),
    /// Home agent: assigned home addresses and prefixes.
    Leases,
    /// Our certificates, the CAs, the CRLs and the peers' certificates with revocation status.
    Certs,
    /// Read the configuration again (as SIGHUP); prints what changed.
    Reload,
    /// Counters: handshakes, failures by reason, retransmissions, cookies, migrations.
    Stats,
    /// Follow the daemon's events until interrupted.
    Events,
}

/// Selects part of a listing; the daemon filters, so only the matches cross the socket.
#[derive(clap::Args)]
struct Filter {
    /// Only this user's: a user file's name or an identity (fqdn:mn2.example.net, dn:...).
    #[arg(long, value_name = "IDENTITY")]
    user: Option<String>,
    /// Only IKE SAs with this home address (sas), or users who own or hold it (users).
    #[arg(long, value_name = "ADDRESS")]
    hoa: Option<String>,
}

impl Filter {
    fn query(&self) -> ListQuery {
        ListQuery {
            stream: true,
            user: self.user.clone(),
            hoa: self.hoa.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mip6-ikectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn json_line(v: &Value) -> String {
    format!("{v}\n")
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("bad result: {e}")))
}

/// Sends `r`; the result as a JSON line with --json, else as `text` renders it.
fn reply<T: serde::de::DeserializeOwned>(
    c: &mut Client,
    r: Request,
    json: bool,
    text: impl FnOnce(T) -> String,
) -> Result<String, ClientError> {
    let v = c.request(&r)?;
    Ok(if json { json_line(&v) } else { text(parse(v)?) })
}

fn run(cli: &Cli) -> Result<String, ClientError> {
    let mut c = Client::connect(&cli.socket)?;
    c.set_timeout(Some(Duration::from_secs(30)));
    let (req, json) = (|r: Request, c: &mut Client| c.request(&r), cli.json);
    Ok(match &cli.command {
        Cmd::Status => {
            let h: HelloResult = parse(req(Request::Hello { protocol: Some(1) }, &mut c)?)?;
            let s: StatsResult = parse(req(Request::Stats, &mut c)?)?;
            if json {
                json_line(&serde_json::json!({ "hello": h, "stats": s }))
            } else {
                format!(
                    "{} {} ({}), protocol {}, up {}\n{} IKE SAs, {} CHILD SAs; {} handshakes, {} failed\n",
                    h.daemon,
                    h.version,
                    h.role,
                    h.protocol,
                    duration(h.uptime_s),
                    s.ike_sas,
                    s.child_sas,
                    s.handshakes,
                    s.handshakes_failed
                )
            }
        }
        Cmd::Sas(f) => reply(&mut c, Request::ListSas(f.query()), json, |r| sas_table(&r))?,
        Cmd::Initiate {
            home_agent,
            home_address,
            dynamic,
            classes,
            wait,
            timeout,
        } => {
            let r = Request::Initiate {
                home_agent: home_agent.clone(),
                home_address: if *dynamic {
                    Some("dynamic".into())
                } else {
                    home_address.clone()
                },
                classes: (!classes.is_empty()).then(|| classes.clone()),
                timeout: wait.then_some(*timeout),
                wait: Some(*wait),
            };
            if *wait {
                // The reply comes when the SAs are installed; allow for the daemon's timeout.
                c.set_timeout(Some(Duration::from_secs_f64(timeout.max(1.0) + 5.0)));
            }
            let v = req(r, &mut c)?;
            if json {
                json_line(&v)
            } else if *wait {
                let r: InitiateResult = parse(v)?;
                let mut out = String::new();
                match r.home_address {
                    Some(a) => {
                        let _ = writeln!(out, "{a}");
                    }
                    None => {
                        return Err(ClientError::Protocol(
                            "the SAs are up but carry no home address".into(),
                        ));
                    }
                }
                eprintln!(
                    "IKE SA {} up ({} -> {}), CHILD_SAs: {}{}",
                    r.ike,
                    r.local,
                    r.remote,
                    r.children
                        .iter()
                        .map(|c| c.class.clone().unwrap_or_else(|| "other".into()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.prefix
                        .as_ref()
                        .map(|p| format!(", home prefix {}", p.prefix))
                        .unwrap_or_default()
                );
                if let Some(p) = r.prefix {
                    let _ = writeln!(out, "{}", p.prefix);
                }
                out
            } else {
                let r: InitiateStarted = parse(v)?;
                format!(
                    "IKE SA {}: {}\n",
                    r.ike,
                    match (r.existing, r.complete) {
                        (_, true) => "already up",
                        (true, false) => "already being negotiated",
                        (false, false) => "initiating (see `mip6-ikectl sas`)",
                    }
                )
            }
        }
        Cmd::Terminate { ike, user } => {
            let r = Request::Terminate {
                ike: ike.clone(),
                user: user.clone(),
            };
            reply(&mut c, r, json, |v: Value| {
                let ids: Vec<String> = v
                    .get("terminated")
                    .and_then(|t| serde_json::from_value(t.clone()).ok())
                    .unwrap_or_default();
                if ids.is_empty() {
                    "no IKE SA to terminate\n".into()
                } else {
                    ids.iter()
                        .map(|i| format!("IKE SA {i}: deleting\n"))
                        .collect()
                }
            })?
        }
        Cmd::Rekey { ike, child } => {
            let r = Request::Rekey {
                ike: ike.clone(),
                child: child.clone(),
            };
            reply(&mut c, r, json, |_: Value| match child {
                Some(s) => format!("CHILD_SA {s} of IKE SA {ike}: rekeying\n"),
                None => format!("IKE SA {ike}: rekeying\n"),
            })?
        }
        Cmd::Users(f) => reply(&mut c, Request::ListUsers(f.query()), json, |r| {
            users_table(&r)
        })?,
        Cmd::Leases => reply(&mut c, Request::Leases, json, |r| leases_table(&r))?,
        Cmd::Certs => reply(&mut c, Request::Certs, json, |r| certs_text(&r))?,
        Cmd::Reload => reply(&mut c, Request::Reload, json, |r: ReloadResult| {
            if r.changes.is_empty() {
                "reloaded: no changes\n".into()
            } else {
                r.changes
                    .iter()
                    .map(|l| format!("reloaded: {l}\n"))
                    .collect()
            }
        })?,
        Cmd::Stats => reply(&mut c, Request::Stats, json, |r| stats_text(&r))?,
        Cmd::Events => {
            req(Request::Subscribe, &mut c)?;
            c.set_timeout(None);
            loop {
                let e = c.next_event()?;
                if json {
                    print!(
                        "{}",
                        json_line(&serde_json::to_value(&e).unwrap_or(Value::Null))
                    );
                } else {
                    println!("{}", event_text(&e));
                }
            }
        }
    })
}

fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Columns padded to the widest cell.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn counter(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (None, None) => "-".into(),
        (a, b) => format!(
            "{}/{}",
            a.map_or("-".into(), |v| v.to_string()),
            b.map_or("-".into(), |v| v.to_string())
        ),
    }
}

fn child_rows(children: &[ChildSa]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "CLASS",
            "MODE",
            "SPI IN",
            "SPI OUT",
            "REQID IN/OUT",
            "BYTES IN/OUT",
            "AGE",
            "SELECTORS (local <-> remote)",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in children {
        rows.push(vec![
            c.class.clone().unwrap_or_else(|| "-".into()),
            c.mode.clone(),
            c.spi_in.clone(),
            c.spi_out.clone(),
            format!("{}/{}", c.reqid_in, c.reqid_out),
            counter(c.bytes_in, c.bytes_out),
            duration(c.age_s),
            format!("{} <-> {}", c.ts_local.join(", "), c.ts_remote.join(", ")),
        ]);
    }
    rows
}

fn sas_table(l: &ListSasResult) -> String {
    if l.ike_sas.is_empty() {
        return "no IKE SAs\n".into();
    }
    let mut out = String::new();
    for i in &l.ike_sas {
        let who = match (&i.user, &i.peer) {
            (Some(u), Some(p)) => format!("user {u} ({p})"),
            (None, Some(p)) => p.clone(),
            _ => "peer not yet authenticated".into(),
        };
        let _ = writeln!(
            out,
            "IKE SA {}  {}  {}  {}",
            i.ike,
            i.state,
            if i.initiator {
                "initiator"
            } else {
                "responder"
            },
            who
        );
        let _ = writeln!(
            out,
            "  {} <-> {}  HoA {}{}  {}  age {}",
            i.local,
            i.remote,
            i.home_address.map_or("-".into(), |a| a.to_string()),
            i.home_prefix
                .as_ref()
                .map(|p| format!("  prefix {}", p.prefix))
                .unwrap_or_default(),
            if i.transforms.is_empty() {
                "-"
            } else {
                &i.transforms
            },
            duration(i.age_s)
        );
        if !i.children.is_empty() {
            out.push_str(&table(&child_rows(&i.children), "  "));
        }
    }
    out
}

fn users_table(u: &ListUsersResult) -> String {
    let mut rows = vec![
        [
            "USER",
            "AUTH",
            "HOME ADDRESSES",
            "CLASSES",
            "IKE SAS",
            "IDENTITY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for x in &u.users {
        rows.push(vec![
            x.name.clone(),
            x.auth.clone(),
            if x.home_addresses.is_empty() {
                "-".into()
            } else {
                x.home_addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            x.classes.join(","),
            x.ike_sas.to_string(),
            x.identity.clone(),
        ]);
    }
    table(&rows, "")
}

fn leases_table(l: &LeasesResult) -> String {
    if l.leases.is_empty() {
        return "no leases\n".into();
    }
    let mut rows = vec![
        [
            "USER", "KIND", "VALUE", "POOL", "STATE", "IKE SA", "IDENTITY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for x in &l.leases {
        rows.push(vec![
            x.user.clone(),
            x.kind.clone(),
            x.value.clone(),
            x.pool.clone(),
            match x.expires_in_s {
                Some(s) => format!("{} (expires in {})", x.state, duration(s)),
                None => x.state.clone(),
            },
            x.ike.clone().unwrap_or_else(|| "-".into()),
            x.identity.clone(),
        ]);
    }
    table(&rows, "")
}

/// A Unix time as `YYYY-MM-DD HH:MM` UTC (days to civil date: H. Hinnant's algorithm).
fn utc(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

fn certs_text(r: &CertsResult) -> String {
    let mut rows = vec![
        [
            "KIND", "SUBJECT", "ISSUER", "SERIAL", "EXPIRES", "STATUS", "SOURCE", "CHECKED",
            "IKE SA",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let dash = || "-".to_string();
    for c in &r.certs {
        rows.push(vec![
            c.kind.clone(),
            c.subject.clone(),
            c.issuer.clone(),
            c.serial.clone(),
            utc(c.not_after),
            c.status.clone().unwrap_or_else(dash),
            c.source.clone().unwrap_or_else(dash),
            c.checked_at
                .map_or_else(dash, |t| utc(i64::try_from(t).unwrap_or(i64::MAX))),
            c.ike.clone().unwrap_or_else(dash),
        ]);
    }
    let mut out = format!("revocation policy: {}\n", r.policy);
    out.push_str(&table(&rows, ""));
    if r.crls.is_empty() {
        out.push_str("no CRLs\n");
    } else {
        let mut rows = vec![
            [
                "CRL ISSUER",
                "FILE",
                "THIS UPDATE",
                "NEXT UPDATE",
                "REVOKED",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &r.crls {
            rows.push(vec![
                c.issuer.clone(),
                c.source.clone(),
                utc(c.this_update),
                match (c.next_update, c.stale) {
                    (Some(n), true) => format!("{} (stale)", utc(n)),
                    (Some(n), false) => utc(n),
                    (None, _) => dash(),
                },
                c.revoked.to_string(),
            ]);
        }
        out.push_str(&table(&rows, ""));
    }
    out
}

fn stats_text(s: &StatsResult) -> String {
    let mut rows: Vec<Vec<String>> = [
        ("uptime", duration(s.uptime_s)),
        ("IKE SAs", s.ike_sas.to_string()),
        ("CHILD SAs", s.child_sas.to_string()),
        ("handshakes", s.handshakes.to_string()),
        ("handshakes failed", s.handshakes_failed.to_string()),
        ("CHILD SAs established", s.children_established.to_string()),
        ("retransmissions", s.retransmissions.to_string()),
        ("cookies sent", s.cookies_sent.to_string()),
        ("INVALID_KE sent", s.invalid_ke_sent.to_string()),
        ("messages dropped", s.dropped.to_string()),
        ("authentication failures", s.auth_failures.to_string()),
        ("TS_UNACCEPTABLE sent", s.ts_refused.to_string()),
        ("NAT detected", s.nat_detected.to_string()),
        ("migrations", s.migrations.to_string()),
        ("dropped by the kernel", s.socket_drops.to_string()),
        ("sent in IKE fragments", s.fragmented_sent.to_string()),
        ("reassembled from fragments", s.reassembled.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| vec![format!("{k}:"), v])
    .collect();
    for f in &s.failures {
        rows.push(vec![
            format!(
                "failed {} {}:",
                f.exchange,
                f.notify.clone().unwrap_or_else(|| if f.notify_type == 0 {
                    "(no answer or local)".into()
                } else {
                    format!("notify {}", f.notify_type)
                })
            ),
            f.count.to_string(),
        ]);
    }
    table(&rows, "")
}

fn event_text(e: &EventMsg) -> String {
    match e {
        EventMsg::IkeUp {
            ike,
            local,
            remote,
            peer,
        } => format!("ike-up {ike} {local} <-> {remote} peer {peer}"),
        EventMsg::IkeDown { ike, reason } => format!("ike-down {ike}: {reason}"),
        EventMsg::IkeRekeyed { old, new } => format!("ike-rekeyed {old} -> {new}"),
        EventMsg::ChildUp { ike, child } => format!(
            "child-up {ike} {} {} in {} out {} reqid {}/{}",
            child.class.as_deref().unwrap_or("-"),
            child.mode,
            child.spi_in,
            child.spi_out,
            child.reqid_in,
            child.reqid_out
        ),
        EventMsg::ChildDown {
            ike,
            spi_in,
            spi_out,
            reason,
        } => format!("child-down {ike} in {spi_in} out {spi_out}: {reason}"),
        EventMsg::HoaAssigned { ike, address } => format!("hoa-assigned {ike} {address}"),
        EventMsg::PrefixAssigned {
            ike,
            prefix,
            lifetime_s,
        } => format!("prefix-assigned {ike} {prefix} lifetime {lifetime_s}s"),
        EventMsg::Migrated {
            ike,
            old_local,
            old_remote,
            new_local,
            new_remote,
        } => format!("migrated {ike} {old_local} <-> {old_remote} => {new_local} <-> {new_remote}"),
        EventMsg::AuthFailed {
            remote,
            identity,
            requested,
            reason,
        } => format!(
            "auth-failed from {remote} identity {}{}: {reason}",
            identity.as_deref().unwrap_or("(none)"),
            if requested.is_empty() {
                String::new()
            } else {
                format!(" asked for {}", requested.join(", "))
            }
        ),
        EventMsg::Refused {
            ike,
            identity,
            requested,
            reason,
        } => format!(
            "refused {ike} {identity} asked for {}: {reason}",
            requested.join(", ")
        ),
        EventMsg::ExchangeFailed {
            ike,
            exchange,
            notify,
            reason,
            ..
        } => format!(
            "exchange-failed {ike} {exchange}{}: {reason}",
            notify.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
        ),
        EventMsg::Lagged { missed } => format!("lagged: {missed} events lost"),
        EventMsg::CrlWanted { uris } => format!("fetching CRL {}", uris.join(" ")),
        EventMsg::OcspWanted { query, uri } => {
            format!("asking OCSP responder {uri} (query {query})")
        }
        EventMsg::AddressRequest {
            request_id,
            identity,
            ..
        } => format!("address-request {request_id} for {identity}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(super::utc(2_682_374_400), "2055-01-01 00:00");
        assert_eq!(super::utc(1_735_689_599), "2024-12-31 23:59");
        assert_eq!(super::utc(-86_400), "1969-12-31 00:00");
    }
}
