//! Configuration: the global TOML file and one TOML file per mobile node (home agent only).
//! [`load`] reads and validates everything and returns what the daemon needs; every error names
//! the file, the line and column of the offending key or value, and what to write instead.
//!
//! Relative paths are relative to the directory of the file that names them.

mod error;
mod pools;
mod schema;
mod users;

pub use error::{ConfigError, line_col};
#[doc(hidden)]
pub use users::load_user_str;
pub use users::{load_users, load_users_for, load_users_with};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::auth::revocation::RevocationPolicy;
use crate::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors};
use crate::crypto::Secret;
use crate::ike::{
    Command, Config, EspProposal, Fragmentation, HomeAddress, HomeAgentConfig, IkeProposal,
    LocalAuth, MAX_FRAGMENT_SIZE, MIN_FRAGMENT_SIZE, Timers, parse_esp_proposal,
    parse_ike_proposal,
};
use crate::mobility::{ClassReqids, SaClass, UserAuth};
use error::Doc;
use schema::*;

/// Default IKE proposals (RFC 8247 "MUST"/"SHOULD" algorithms, strongSwan syntax).
pub const DEFAULT_IKE_PROPOSALS: [&str; 2] = [
    "aes128-sha256-x25519-ecp256-modp2048",
    "aes128gcm16-prfsha256-x25519-ecp256-modp2048",
];
/// Default ESP proposals.
pub const DEFAULT_ESP_PROPOSALS: [&str; 2] = ["aes128gcm16", "aes128-sha256"];
/// The IKE port and the NAT-T port (RFC 7296 2.23).
pub const DEFAULT_PORT: u16 = 500;
pub const DEFAULT_NAT_PORT: u16 = 4500;
/// Receive buffer of each IKE socket (bytes): about 4,000 IKE messages of a typical size, so
/// that a burst (thousands of mobile nodes sending Delete at once) waits in the kernel instead
/// of being dropped there.
pub const DEFAULT_RECEIVE_BUFFER: u32 = 4 << 20;
/// Bounds of `[listen] receive_buffer`: below, not even a few messages fit; above, the kernel
/// (which doubles the value, in an int) could not take it.
pub const MIN_RECEIVE_BUFFER: u32 = 4096;
pub const MAX_RECEIVE_BUFFER: u32 = 1 << 29;
/// Shortest pre-shared key accepted, in bytes (RFC 7296 2.15: a PSK must be as hard to guess as
/// a strong key).
pub const MIN_PSK_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    HomeAgent,
    MobileNode,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::HomeAgent => "home-agent",
            Role::MobileNode => "mobile-node",
        }
    }
}

/// Where the daemon listens. Each address gets a socket on `port` and one on `nat_port` (where
/// IKE messages carry the 4-byte non-ESP marker). Port 0 asks the system for a free port (tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub nat_port: u16,
    /// SO_RCVBUF of every IKE socket, in bytes (the kernel may clamp it: see the daemon's log).
    pub receive_buffer: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelBackend {
    /// SAs kept in the daemon's memory (tests, demos): nothing reaches the kernel.
    Memory,
    /// Linux XFRM (NETLINK_XFRM): real ESP SAs.
    Xfrm,
}

/// Who installs the IPsec policies (SPD entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// mip6d installs them (`IPsecPolicy ... UseESP <to_ha> <to_mn>`); we install SAs only.
    Mip6d,
    /// We install them ourselves (IN/OUT, FWD for tunnels on the home agent), with mip6d's
    /// priorities and per-direction reqids, and remove them with the SAs.
    Daemon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSettings {
    pub backend: KernelBackend,
    pub policies: PolicyMode,
    /// Inclusive reqid range whose SAs (and, in daemon mode, policies) are ours: start-up
    /// removes those left by a previous run. Default: the smallest to the largest class reqid.
    pub owned_reqids: (u32, u32),
    /// XFRM: inbound SPIs come from a stock reserved ahead by a thread of their own, so that no
    /// engine call waits for the kernel (`[kernel] spi_stock`, on by default; the reservations
    /// are larval states that `ip xfrm state` lists; `false`: one ALLOCSPI round trip per
    /// inbound SPI in the engine's call).
    pub spi_stock: bool,
}

/// What a mobile node negotiates at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNodeSettings {
    /// Where IKE goes (address and port of the home agent).
    pub home_agent: SocketAddr,
    /// The home agent's address in the traffic selectors.
    pub home_agent_address: Ipv6Addr,
    /// Our care-of address; None: the address the system routes from towards the home agent.
    pub care_of_address: Option<IpAddr>,
    pub home_address: HomeAddress,
    pub classes: Vec<SaClass>,
    /// Expected IDr of the home agent.
    pub home_agent_id: Option<Identity>,
    /// Initiate when the daemon starts (and again after the IKE SA went down); false: only
    /// when asked on the control socket.
    pub auto_initiate: bool,
}

impl MobileNodeSettings {
    /// The command that brings up the IKE SA and CHILD_SAs from `local` (the care-of address and
    /// our IKE port).
    pub fn initiate(&self, local: SocketAddr) -> Command {
        Command::Initiate {
            local,
            remote: self.home_agent,
            home_agent: self.home_agent_address,
            home_address: self.home_address,
            classes: self.classes.clone(),
            remote_identity: self.home_agent_id.clone(),
        }
    }
}

/// Everything the daemon needs, validated.
pub struct LoadedConfig {
    /// The global file (reloads read it again).
    pub path: PathBuf,
    pub role: Role,
    pub engine: Arc<Config>,
    pub listen: Listen,
    pub kernel: KernelSettings,
    /// Present for role mobile-node.
    pub mobile_node: Option<MobileNodeSettings>,
    /// Present for role home-agent.
    pub users_dir: Option<PathBuf>,
    pub control: ControlSettings,
    /// Home agent: where dynamic leases are kept across restarts (None: in memory only).
    pub lease_file: Option<PathBuf>,
    /// CRL files and the CRLs read from them (`[revocation]`).
    pub revocation: RevocationSettings,
    /// `[engine] shards`, resolved: engine shards the daemon runs (a mobile node runs one).
    pub shards: usize,
}

/// `[revocation]`: the CRL files, read and verified at load time (the policy is in the engine
/// configuration).
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    pub crl_files: Vec<PathBuf>,
    /// How often the daemon looks whether a CRL file changed (None: only on reload).
    pub check_interval: Option<Duration>,
    /// The CRLs of `crl_files`, verified against the configured CAs.
    pub crls: Arc<crate::auth::revocation::CrlSet>,
    /// Fetch CRLs from the peer certificates' `http://` distribution points, each fetch
    /// within `fetch_timeout`.
    pub fetch: bool,
    pub fetch_timeout: Duration,
    /// Ask OCSP responders (the certificates' Authority Information Access, or those of
    /// `ocsp_responders`) when no CRL tells a status; None: OCSP is off.
    pub ocsp: Option<crate::ike::OcspSettings>,
    /// OCSP answers for established IKE SAs older than this are asked for again (None: only
    /// on reload), so that a revocation reaches SAs that authenticated before it.
    pub ocsp_recheck: Option<Duration>,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        RevocationSettings {
            crl_files: Vec::new(),
            check_interval: Some(Duration::from_secs_f64(DEFAULT_CRL_CHECK_INTERVAL)),
            crls: Default::default(),
            fetch: true,
            fetch_timeout: Duration::from_secs_f64(DEFAULT_CRL_FETCH_TIMEOUT),
            ocsp: Some(crate::ike::OcspSettings {
                timeout: Duration::from_secs_f64(DEFAULT_CRL_FETCH_TIMEOUT),
                ca_uris: Vec::new(),
            }),
            ocsp_recheck: Some(Duration::from_secs_f64(DEFAULT_OCSP_RECHECK)),
        }
    }
}

/// Default of `[revocation] ocsp_recheck` (seconds): hourly, like a typical responder's
/// nextUpdate horizon, and a negligible load (one query per certificate per hour).
pub const DEFAULT_OCSP_RECHECK: f64 = 3600.0;

/// Default of `[revocation] fetch_timeout` (seconds).
pub const DEFAULT_CRL_FETCH_TIMEOUT: f64 = 10.0;

/// Default of `[revocation] check_interval` (seconds).
pub const DEFAULT_CRL_CHECK_INTERVAL: f64 = 10.0;

/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/mip6-iked/control.sock";

/// The control socket: where, who may connect, and how long an address provider may think.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    /// false: no control socket (the daemon runs from its configuration alone).
    pub enabled: bool,
    pub socket: PathBuf,
    /// Group that owns the socket; its members may connect (besides root and our own uid).
    pub group: Option<String>,
    /// Permission bits of the socket file.
    pub mode: u32,
    /// How long the home agent waits for a registered address provider before using its
    /// own pools.
    pub provider_timeout: Duration,
    /// Who may register as address provider besides root and the daemon's own uid: a user
    /// (name or numeric uid) and the members of a group. The provider chooses any identity's
    /// home address, so being allowed on the socket is not enough.
    pub provider_user: Option<String>,
    pub provider_group: Option<String>,
    /// A connection that sends nothing for this long, while not subscribed, not the address
    /// provider and waiting for no initiate, is closed (idle clients would hold slots).
    pub idle_timeout: Duration,
    /// Connections one uid may hold at once (so one user cannot take every slot).
    pub max_clients_per_uid: usize,
}

/// Default `[control] idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[control] max_clients_per_uid`.
pub const DEFAULT_MAX_CLIENTS_PER_UID: usize = 16;

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            enabled: true,
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            group: None,
            mode: 0o660,
            provider_timeout: Duration::from_secs(2),
            provider_user: None,
            provider_group: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_clients_per_uid: DEFAULT_MAX_CLIENTS_PER_UID,
        }
    }
}

impl LoadedConfig {
    /// A readable overview (for `mip6-iked --check`). Never shows secrets.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let e = &self.engine;
        let _ = writeln!(s, "config:     {}", self.path.display());
        let _ = writeln!(s, "role:       {}", self.role.name());
        let _ = writeln!(s, "identity:   {}", e.identity);
        let auth = match &e.auth {
            LocalAuth::Certificate { chain, style, .. } => {
                format!(
                    "certificate ({} in chain, {} signatures)",
                    chain.len(),
                    style_name(*style)
                )
            }
            LocalAuth::Psk(_) => "pre-shared key".to_string(),
        };
        let _ = writeln!(s, "auth:       {auth}");
        let _ = writeln!(
            s,
            "trust:      {}",
            if e.trust.is_some() {
                "CA certificates loaded"
            } else {
                "none (PSK only)"
            }
        );
        let addrs: Vec<String> = self
            .listen
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        let _ = writeln!(
            s,
            "listen:     {} port {} (NAT-T {})",
            addrs.join(", "),
            self.listen.port,
            self.listen.nat_port
        );
        let _ = writeln!(
            s,
            "proposals:  IKE {}, ESP {}",
            e.ike_proposals.len(),
            e.esp_proposals.len()
        );
        let _ = writeln!(
            s,
            "kernel:     {} backend, policies by {}, owned reqids {}-{}",
            match self.kernel.backend {
                KernelBackend::Memory => "memory",
                KernelBackend::Xfrm => "xfrm",
            },
            match self.kernel.policies {
                PolicyMode::Mip6d => "mip6d",
                PolicyMode::Daemon => "the daemon",
            },
            self.kernel.owned_reqids.0,
            self.kernel.owned_reqids.1
        );
        if !self.control.enabled {
            let _ = writeln!(s, "control:    disabled");
        } else {
            let c = &self.control;
            let _ = writeln!(
                s,
                "control:    {} (mode {:04o}{}), idle timeout {} s, {} connections per uid",
                c.socket.display(),
                c.mode,
                c.group
                    .as_ref()
                    .map(|g| format!(", group {g}"))
                    .unwrap_or_default(),
                c.idle_timeout.as_secs_f64(),
                c.max_clients_per_uid
            );
            // Only a home agent takes an address provider.
            if self.role == Role::HomeAgent {
                let mut provider = vec!["root".to_string(), "the daemon's uid".to_string()];
                provider.extend(c.provider_user.iter().map(|u| format!("user {u}")));
                provider.extend(c.provider_group.iter().map(|g| format!("group {g}")));
                let _ = writeln!(
                    s,
                    "provider:   address-provider may be {}",
                    provider.join(", ")
                );
            }
        }
        let mut reqids: Vec<String> = SaClass::ALL
            .iter()
            .map(|c| {
                let r = e.reqids(*c);
                format!("{} {}/{}", c.name(), r.to_ha, r.to_mn)
            })
            .collect();
        reqids.sort();
        let _ = writeln!(s, "reqids:     {} (to HA/to MN)", reqids.join(", "));
        let _ = writeln!(
            s,
            "mobility:   key mobility (K bit) {}",
            if e.mobility.key_mobility { "on" } else { "off" }
        );
        if let Some(ha) = &e.home_agent {
            let _ = writeln!(s, "home agent: {}", ha.address);
            let _ = writeln!(
                s,
                "leases:     {}, grace {} s",
                self.lease_file
                    .as_deref()
                    .map_or("in memory only (no lease_file)".to_string(), |p| p
                        .display()
                        .to_string()),
                e.mobility.lease_grace.as_secs()
            );
            let users = ha.users.users();
            let _ = writeln!(
                s,
                "users:      {} in {}",
                users.len(),
                self.users_dir
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            );
            for u in users {
                let _ = writeln!(s, "  {}", users::describe(u));
            }
            // Pools with addresses that are never handed out: said, not refused (a /64 always
            // holds some), so that nobody counts on them.
            let mut pools: Vec<&crate::mobility::Pool> =
                users.iter().filter_map(|u| u.pool.as_deref()).collect();
            pools.sort_by(|a, b| a.name.cmp(&b.name));
            pools.dedup_by(|a, b| a.name == b.name);
            for p in pools {
                let n = p.reserved_count();
                if n > 0 {
                    let _ = writeln!(
                        s,
                        "warning:    pool {} holds {n} reserved address{} (Subnet-Router anycast, RFC 5453 interface identifiers), never assigned",
                        p.name,
                        if n == 1 { "" } else { "es" }
                    );
                }
            }
        }
        if let Some(mn) = &self.mobile_node {
            let coa = mn
                .care_of_address
                .map_or("chosen by routing".to_string(), |a| a.to_string());
            let hoa = match mn.home_address {
                HomeAddress::Static(a) => a.to_string(),
                HomeAddress::Dynamic => "dynamic (assigned by the home agent)".to_string(),
            };
            let classes: Vec<&str> = mn.classes.iter().map(|c| c.name()).collect();
            let _ = writeln!(
                s,
                "home agent: {} (selectors: {})",
                mn.home_agent, mn.home_agent_address
            );
            if let Some(id) = &mn.home_agent_id {
                let _ = writeln!(s, "ha id:      {id}");
            }
            let _ = writeln!(s, "care-of:    {coa}");
            let _ = writeln!(s, "home addr:  {hoa}");
            if e.mobility.request_home_prefix {
                let _ = writeln!(s, "home pfx:   requested (MIP6_HOME_PREFIX)");
            }
            let _ = writeln!(s, "classes:    {}", classes.join(", "));
        }
        s
    }

    /// What a reload changes, one line each, for the log. Settings that need a restart say so.
    pub fn changes(&self, new: &LoadedConfig) -> Vec<String> {
        let mut out = Vec::new();
        if self.role != new.role {
            out.push(format!(
                "role {} -> {}: needs a restart (ignored)",
                self.role.name(),
                new.role.name()
            ));
        }
        if self.listen != new.listen {
            out.push("[listen] changed: needs a restart (ignored)".to_string());
        }
        if self.kernel != new.kernel {
            out.push("[kernel] changed: needs a restart (ignored)".to_string());
        }
        if self.shards != new.shards {
            out.push("[engine] shards changed: needs a restart (ignored)".to_string());
        }
        if self.control != new.control {
            out.push("[control] changed: needs a restart (ignored)".to_string());
        }
        if self.mobile_node != new.mobile_node {
            out.push("[mobile_node] changed: applies to the next initiation".to_string());
        }
        let (a, b) = (&self.engine, &new.engine);
        if a.identity != b.identity {
            out.push(format!("identity {} -> {}", a.identity, b.identity));
        }
        if a.ike_proposals != b.ike_proposals || a.esp_proposals != b.esp_proposals {
            out.push("proposals changed (new negotiations only)".to_string());
        }
        if a.timers != b.timers {
            out.push("timers changed".to_string());
        }
        if a.mobility.key_mobility != b.mobility.key_mobility {
            out.push(format!(
                "key_mobility {} -> {}",
                a.mobility.key_mobility, b.mobility.key_mobility
            ));
        }
        if a.mobility.lease_grace != b.mobility.lease_grace {
            out.push("lease_grace changed (leases released from now on)".to_string());
        }
        if self.lease_file != new.lease_file {
            out.push("lease_file changed: needs a restart (ignored)".to_string());
        }
        if a.reqids != b.reqids {
            out.push("reqids changed (new CHILD_SAs only)".to_string());
        }
        if a.revocation != b.revocation {
            out.push(format!(
                "revocation policy {} -> {} (new authentications only)",
                a.revocation.name(),
                b.revocation.name()
            ));
        }
        if self.revocation.crl_files != new.revocation.crl_files {
            out.push("revocation crls changed (established SAs are checked again)".to_string());
        }
        if let (Some(x), Some(y)) = (&a.home_agent, &b.home_agent) {
            out.extend(users::diff(&x.users, &y.users));
        }
        out
    }
}

fn style_name(s: SignatureStyle) -> &'static str {
    match s {
        SignatureStyle::DigitalSignature => "RFC 7427",
        SignatureStyle::Legacy => "legacy",
    }
}

/// Reads and validates the global file at `path` and, for a home agent, every user file.
pub fn load(path: impl AsRef<Path>) -> Result<LoadedConfig, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        position: None,
        message: format!("cannot read: {e}"),
    })?;
    load_str(path, &text)
}

/// [`load`] on text already read; `path` names the file in errors and anchors relative paths.
pub fn load_str(path: &Path, text: &str) -> Result<LoadedConfig, ConfigError> {
    let doc = Doc { path, text };
    let file: GlobalFile = toml::from_str(text).map_err(|e| doc.toml(&e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let role = match *file.role.get_ref() {
        RoleName::HomeAgent => Role::HomeAgent,
        RoleName::MobileNode => Role::MobileNode,
    };

    // Sections that belong to the other role are mistakes, not noise.
    match (role, &file.home_agent, &file.mobile_node) {
        (Role::HomeAgent, _, Some(mn)) => {
            return Err(doc.at(
                mn.span(),
                "[mobile_node] is for role = \"mobile-node\"; remove it or change role",
            ));
        }
        (Role::MobileNode, Some(ha), _) => {
            return Err(doc.at(
                ha.span(),
                "[home_agent] is for role = \"home-agent\"; remove it or change role",
            ));
        }
        _ => {}
    }

    let listen = listen(&doc, &file.listen)?;
    let reqids = reqids(&doc, &file.reqids)?;
    let (kernel, auto_reqids) = kernel(&doc, &file.kernel, &reqids)?;
    let control = control(&doc, base, &file.control)?;
    let replay_window = match &file.kernel.replay_window {
        Some(w) if *w.get_ref() > 4096 => {
            return Err(doc.at(
                w.span(),
                format!(
                    "replay_window = {} is too large; write at most 4096",
                    w.get_ref()
                ),
            ));
        }
        Some(w) => *w.get_ref(),
        None => 32,
    };
    let ident = file.identity.get_ref();
    let identity = identity(&doc, &ident.id, "id")?;
    let (default_ike, default_esp) = default_proposals();
    let p = &file.proposals;
    let ike_proposals = proposal_list(
        &doc,
        &p.ike,
        "ike",
        DEFAULT_IKE_PROPOSALS[0],
        parse_ike_proposal,
    )?
    .unwrap_or(default_ike);
    let esp_proposals = proposal_list(
        &doc,
        &p.esp,
        "esp",
        DEFAULT_ESP_PROPOSALS[0],
        parse_esp_proposal,
    )?
    .unwrap_or(default_esp);
    let prefer = match &p.prefer {
        None => crate::ike::Prefer::Ours,
        Some(v) => match v.get_ref().as_str() {
            "ours" => crate::ike::Prefer::Ours,
            "peer" => crate::ike::Prefer::Peer,
            other => {
                return Err(doc.at(
                    v.span(),
                    format!("[proposals] prefer = \"{other}\": write \"ours\" (our order decides, strongSwan's default) or \"peer\""),
                ));
            }
        },
    };
    let timers = timers(&doc, &file.timers)?;
    let Limits {
        cookie_threshold,
        max_half_open,
        max_half_open_per_source,
        init_rate_per_source,
    } = limits(&doc, &file.limits)?;

    // Users and the role's own section before the key material, so that structural mistakes
    // show up before file-permission problems.
    let mut home_agent = None;
    let mut mobile_node = None;
    let mut users_dir = None;
    let mut lease_grace = crate::ike::MobilityConfig::default().lease_grace;
    let mut uniqueness = crate::mobility::Uniqueness::default();
    let mut lease_file: Option<PathBuf> = None;
    match role {
        Role::HomeAgent => {
            let Some(ha) = &file.home_agent else {
                return Err(doc.at(
                    file.role.span(),
                    "role = \"home-agent\" needs a [home_agent] section with address = \"<HA address>\" and users_dir = \"users\"",
                ));
            };
            let (ha_span, ha) = (ha.span(), ha.get_ref());
            let Some(addr) = &ha.address else {
                return Err(doc.at(
                    ha_span.clone(),
                    "[home_agent] needs address = \"<IPv6 address of the home agent>\" (the address in the selectors)",
                ));
            };
            let address = ipv6(&doc, addr, "address")?;
            let Some(dir) = &ha.users_dir else {
                return Err(doc.at(
                    ha_span,
                    "[home_agent] needs users_dir = \"users\" (a directory with one .toml file per mobile node)",
                ));
            };
            let dir_path = base.join(dir.get_ref());
            if !dir_path.is_dir() {
                return Err(doc.at(
                    dir.span(),
                    format!(
                        "users_dir: {} is not a directory; create it or fix the path",
                        dir_path.display()
                    ),
                ));
            }
            // The home agent's own addresses: never a mobile node's, by pool or user file.
            let mut own = vec![address];
            own.extend(listen.addresses.iter().filter_map(|a| match a {
                IpAddr::V6(a) if !a.is_unspecified() => Some(*a),
                _ => None,
            }));
            let pools = pools::load_pools(&doc, &file.pools)?;
            pools::check_ha_addresses(&doc, &file.pools, &pools, &own)?;
            let db = users::load_users_for(&dir_path, &pools, &own)?;
            if let Some(g) = &ha.lease_grace {
                lease_grace = Duration::try_from_secs_f64(*g.get_ref())
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        doc.at(
                            g.span(),
                            format!(
                                "lease_grace = {} is not a positive number of seconds; write e.g. lease_grace = 3600",
                                g.get_ref()
                            ),
                        )
                    })?;
            }
            if let Some(u) = &ha.uniqueness {
                uniqueness = users::uniqueness(&doc, u)?;
            }
            lease_file = ha.lease_file.as_ref().map(|f| base.join(f.get_ref()));
            home_agent = Some(HomeAgentConfig {
                address,
                users: Arc::new(db),
            });
            users_dir = Some(dir_path);
        }
        Role::MobileNode => {
            if let Some((name, p)) = file.pools.iter().next() {
                return Err(doc.at(
                    p.span(),
                    format!("[pools.{name}] is for a home agent; remove it"),
                ));
            }
            let Some(mn) = &file.mobile_node else {
                return Err(doc.at(
                    file.role.span(),
                    "role = \"mobile-node\" needs a [mobile_node] section with home_agent = \"[<HA address>]:500\" and home_address",
                ));
            };
            mobile_node = Some(mobile_node_settings(&doc, mn.span(), mn.get_ref())?);
        }
    }

    let auth = local_auth(&doc, base, ident, role)?;
    let trust = trust(&doc, base, ident)?;
    if trust.is_none() {
        // Someone must be able to check the peer's certificate.
        if let LocalAuth::Certificate { .. } = auth
            && role == Role::MobileNode
        {
            return Err(doc.at(
                file.identity.span(),
                "a mobile node with a certificate checks the home agent's certificate: add ca = [\"<CA certificate>.pem\"] to [identity]",
            ));
        }
        if let Some(ha) = &home_agent
            && let Some(u) = ha
                .users
                .users()
                .iter()
                .find(|u| matches!(u.auth, UserAuth::Certificate))
        {
            return Err(doc.at(
                file.identity.span(),
                format!(
                    "user '{}' authenticates with a certificate: add ca = [\"<CA certificate>.pem\"] to [identity]",
                    u.name
                ),
            ));
        }
    }

    // A mobile node that checks the home agent by certificate must know which certificate:
    // without home_agent_id any certificate of the CA would pass, and the CA also signs the
    // other mobile nodes, so another MN could pose as the home agent.
    if let (Some(mn), LocalAuth::Certificate { .. }, Some(sec)) =
        (&mobile_node, &auth, &file.mobile_node)
        && mn.home_agent_id.is_none()
    {
        return Err(doc.at(
            sec.span(),
            "[mobile_node] needs home_agent_id = \"<the home agent's identity>\", e.g. home_agent_id = \"dn:C=CH, O=Example, CN=ha.example.net\": without it any certificate of the CA (another mobile node's too) would be accepted as the home agent",
        ));
    }

    let mobility = crate::ike::MobilityConfig {
        key_mobility: file.key_mobility.as_ref().is_none_or(|k| *k.get_ref()),
        // With mip6d's policies its MIGRATE moves the kernel's tunnel SAs itself.
        update_kernel_sas: kernel.policies == PolicyMode::Daemon,
        request_home_prefix: file
            .mobile_node
            .as_ref()
            .and_then(|m| m.get_ref().request_home_prefix.as_ref())
            .is_some_and(|v| *v.get_ref()),
        initial_contact: file
            .mobile_node
            .as_ref()
            .and_then(|m| m.get_ref().initial_contact.as_ref())
            .is_none_or(|v| *v.get_ref()),
        lease_grace,
        auto_reqids,
        uniqueness,
        nat_port: listen.nat_port,
        nat_keepalive: nat_keepalive(&doc, &file.timers.nat_keepalive)?,
    };
    let (revocation_policy, revocation) =
        revocation(&doc, base, &file.revocation, trust.as_deref())?;
    let engine = Config {
        revocation: revocation_policy,
        identity,
        auth,
        trust,
        ike_proposals,
        esp_proposals,
        prefer,
        timers,
        reqids,
        cookie_threshold,
        max_half_open,
        max_half_open_per_source,
        init_rate_per_source,
        home_agent,
        replay_window,
        mobility,
        fragmentation: fragmentation(&doc, &file.listen)?,
    };
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        role,
        engine: Arc::new(engine),
        listen,
        kernel,
        mobile_node,
        users_dir,
        control,
        lease_file,
        revocation,
        shards: shards(&doc, &file.engine)?,
    })
}

/// `[engine] shards`: 1 to [`crate::ike::MAX_SHARDS`]; 0 or absent: one per core.
fn shards(doc: &Doc, e: &schema::EngineSection) -> Result<usize, ConfigError> {
    let cores = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = match &e.shards {
        None => return Ok(default_shards(cores())),
        Some(v) => *v.get_ref(),
    };
    if n == 0 {
        return Ok(default_shards(cores()));
    }
    if n > crate::ike::MAX_SHARDS as u64 {
        return Err(doc.at(
            e.shards.as_ref().map_or(0..0, |v| v.span()),
            format!(
                "shards = {n} is out of range: give 1 to {} engine shards, or 0 for one per core",
                crate::ike::MAX_SHARDS
            ),
        ));
    }
    Ok(n as usize)
}

/// Shards when the file names none (or 0): one per core, at most [`crate::ike::MAX_SHARDS`].
pub fn default_shards(cores: usize) -> usize {
    cores.clamp(1, crate::ike::MAX_SHARDS)
}

/// `[revocation]`: the policy and the CRL files, each read and verified against the CAs now,
/// so that `--check`, the start and a reload refuse a CRL that would not be used.
fn revocation(
    doc: &Doc,
    base: &Path,
    sec: &schema::RevocationSection,
    trust: Option<&TrustAnchors>,
) -> Result<(RevocationPolicy, RevocationSettings), ConfigError> {
    let policy = match &sec.policy {
        None => RevocationPolicy::default(),
        Some(p) => match p.get_ref().as_str() {
            "strict" => RevocationPolicy::Strict,
            "ifuri" => RevocationPolicy::IfUri,
            "relaxed" => RevocationPolicy::Relaxed,
            "off" => RevocationPolicy::Off,
            other => {
                return Err(doc.at(
                    p.span(),
                    format!("revocation policy \"{other}\": write \"strict\" (refuse unless a fresh CRL says good), \"ifuri\" (strict for certificates with a CRL distribution point), \"relaxed\" (refuse only revoked certificates) or \"off\""),
                ));
            }
        },
    };
    let check_interval = match &sec.check_interval {
        None => Some(Duration::from_secs_f64(DEFAULT_CRL_CHECK_INTERVAL)),
        Some(v) => {
            let secs = *v.get_ref();
            if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
                return Err(doc.at(
                    v.span(),
                    "check_interval: seconds between 0 (only on reload) and 86400, e.g. check_interval = 10",
                ));
            }
            (secs > 0.0).then(|| Duration::from_secs_f64(secs))
        }
    };
    let fetch_timeout = match &sec.fetch_timeout {
        None => Duration::from_secs_f64(DEFAULT_CRL_FETCH_TIMEOUT),
        Some(v) => {
            let secs = *v.get_ref();
            if !secs.is_finite() || !(0.1..=300.0).contains(&secs) {
                return Err(doc.at(
                    v.span(),
                    "fetch_timeout: seconds between 0.1 and 300 for one CRL download, e.g. fetch_timeout = 10",
                ));
            }
            Duration::from_secs_f64(secs)
        }
    };
    let fetch = sec.fetch.as_ref().is_none_or(|v| *v.get_ref());
    let mut set = crate::auth::revocation::CrlSet::new();
    let mut crl_files = Vec::new();
    for c in &sec.crls {
        let Some(trust) = trust else {
            return Err(doc.at(
                c.span(),
                "crls are verified with the CAs that signed them: add ca = [\"<CA certificate>.pem\"] to [identity]",
            ));
        };
        let p = base.join(c.get_ref());
        let crl = crate::auth::revocation::read_crl(&p, trust).map_err(|e| {
            doc.at(
                c.span(),
                format!("crls: {}: {e}; give a CRL (DER or PEM) signed by one of the [identity] ca certificates, or remove it", p.display()),
            )
        })?;
        set.insert(crl);
        crl_files.push(p);
    }
    let mut ca_uris = Vec::new();
    for r in &sec.ocsp_responders {
        let r = r.get_ref();
        let uri = r.uri.get_ref();
        if crate::daemon::crl_fetch::HttpUri::parse(uri).is_none() {
            return Err(doc.at(
                r.uri.span(),
                format!("ocsp_responders: uri {uri:?} is not an http:// URI; write e.g. uri = \"http://ocsp.example.net:8080/\""),
            ));
        }
        let p = base.join(r.ca.get_ref());
        let subject = std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|pem| crate::auth::cert::certs_from_pem(&pem).map_err(|e| e.to_string()))
            .and_then(|certs| {
                let der = certs.first().ok_or("no certificate in it")?;
                crate::auth::revocation::describe(der)
                    .map(|d| d.subject)
                    .ok_or_else(|| "not a certificate".to_string())
            })
            .and_then(|subject| {
                trust
                    .is_some_and(|t| {
                        t.cas()
                            .iter()
                            .any(|c| crate::auth::dn_equal(&c.subject, &subject))
                    })
                    .then_some(subject)
                    .ok_or_else(|| "not one of the [identity] ca certificates".to_string())
            })
            .map_err(|e| {
                doc.at(
                    r.ca.span(),
                    format!(
                        "ocsp_responders: ca {}: {e}; name one of the [identity] ca files",
                        p.display()
                    ),
                )
            })?;
        ca_uris.push((subject, uri.clone()));
    }
    let ocsp_recheck = match &sec.ocsp_recheck {
        None => Some(Duration::from_secs_f64(DEFAULT_OCSP_RECHECK)),
        Some(v) => {
            let secs = *v.get_ref();
            if !secs.is_finite() || !(secs == 0.0 || (60.0..=604_800.0).contains(&secs)) {
                return Err(doc.at(
                    v.span(),
                    "ocsp_recheck: seconds between 60 and 604800 after which an established SA's OCSP answer is asked for again, or 0 (only on reload), e.g. ocsp_recheck = 3600",
                ));
            }
            (secs > 0.0).then(|| Duration::from_secs_f64(secs))
        }
    };
    let ocsp = sec
        .ocsp
        .as_ref()
        .is_none_or(|v| *v.get_ref())
        .then_some(crate::ike::OcspSettings {
            timeout: fetch_timeout,
            ca_uris,
        });
    Ok((
        policy,
        RevocationSettings {
            crl_files,
            check_interval,
            crls: Arc::new(set),
            fetch,
            fetch_timeout,
            ocsp,
            ocsp_recheck,
        },
    ))
}

// ---- pieces ----

/// Identity in the configuration syntax; `key` names the setting in messages.
pub(crate) fn identity(doc: &Doc, v: &Spanned<String>, key: &str) -> Result<Identity, ConfigError> {
    let s = v.get_ref().trim();
    let known = ["dn:", "fqdn:", "email:", "ipv6:", "ipv4:", "keyid:"];
    if !known
        .iter()
        // By `get`, not by slicing: the prefix length may fall inside a multi-byte character
        // (`dné`), and a configuration must never panic the daemon (reloads run in it).
        .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)))
    {
        return Err(doc.at(
            v.span(),
            format!(
                "{key} = \"{s}\" has no identity type; write dn:C=CH, O=Example, CN=name, fqdn:host.example.net, \
                 email:user@example.net, ipv6:2001:db8::1, ipv4:192.0.2.1 or keyid:<hex>"
            ),
        ));
    }
    Identity::parse_config(s).map_err(|e| doc.at(v.span(), format!("{key}: {}", auth_msg(e))))
}

/// The text of an auth error without its category prefix.
pub(crate) fn auth_msg(e: crate::auth::Error) -> String {
    match e {
        crate::auth::Error::Identity(m) | crate::auth::Error::Certificate(m) => m,
        other => other.to_string(),
    }
}

fn ipv6(doc: &Doc, v: &Spanned<String>, key: &str) -> Result<Ipv6Addr, ConfigError> {
    v.get_ref().trim().parse().map_err(|_| {
        doc.at(
            v.span(),
            format!(
                "{key} = \"{}\" is not an IPv6 address; write e.g. \"2001:db8:1::1\"",
                v.get_ref()
            ),
        )
    })
}

fn ip(doc: &Doc, v: &Spanned<String>, key: &str) -> Result<IpAddr, ConfigError> {
    v.get_ref().trim().parse().map_err(|_| {
        doc.at(
            v.span(),
            format!("{key} = \"{}\" is not an IP address; write e.g. \"2001:db8:2::100\" or \"192.0.2.10\"", v.get_ref()),
        )
    })
}

fn listen(doc: &Doc, l: &ListenSection) -> Result<Listen, ConfigError> {
    let mut addresses = Vec::new();
    match &l.addresses {
        None => addresses.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        Some(list) => {
            for a in list {
                let addr = ip(doc, a, "addresses")?;
                if addresses.contains(&addr) {
                    return Err(doc.at(
                        a.span(),
                        format!("address {addr} is listed twice; remove one"),
                    ));
                }
                addresses.push(addr);
            }
            if addresses.is_empty() {
                return Err(doc.whole(
                    "[listen] addresses is empty; write addresses = [\"::\"] to listen everywhere",
                ));
            }
        }
    }
    let port = l.port.as_ref().map_or(DEFAULT_PORT, |p| *p.get_ref());
    let nat_port = l
        .nat_port
        .as_ref()
        .map_or(DEFAULT_NAT_PORT, |p| *p.get_ref());
    if port != 0
        && port == nat_port
        && let Some(p) = &l.nat_port
    {
        return Err(doc.at(
            p.span(),
            format!("nat_port = {nat_port} equals port; the NAT-T port is usually 4500"),
        ));
    }
    let receive_buffer = match &l.receive_buffer {
        None => DEFAULT_RECEIVE_BUFFER,
        Some(v) => {
            let b = *v.get_ref();
            if !(u64::from(MIN_RECEIVE_BUFFER)..=u64::from(MAX_RECEIVE_BUFFER)).contains(&b) {
                return Err(doc.at(
                    v.span(),
                    format!(
                        "receive_buffer = {b} is out of range: give bytes from {MIN_RECEIVE_BUFFER} to {MAX_RECEIVE_BUFFER} (default {DEFAULT_RECEIVE_BUFFER}, 4 MiB)"
                    ),
                ));
            }
            // In range, so it fits.
            u32::try_from(b).unwrap_or(DEFAULT_RECEIVE_BUFFER)
        }
    };
    Ok(Listen {
        addresses,
        port,
        nat_port,
        receive_buffer,
    })
}

/// `[listen] fragmentation` and `fragment_size` (RFC 7383).
fn fragmentation(doc: &Doc, l: &ListenSection) -> Result<Fragmentation, ConfigError> {
    let mut out = Fragmentation::default();
    if let Some(v) = &l.fragmentation {
        out.enabled = *v.get_ref();
    }
    if let Some(v) = &l.fragment_size {
        let size = *v.get_ref();
        let range = MIN_FRAGMENT_SIZE as u64..=MAX_FRAGMENT_SIZE as u64;
        if !range.contains(&size) {
            return Err(doc.at(
                v.span(),
                format!(
                    "fragment_size = {size} is out of range: give the largest IP datagram an IKE message may make, from {MIN_FRAGMENT_SIZE} to {MAX_FRAGMENT_SIZE} bytes (default 1280, IPv6's minimum MTU)"
                ),
            ));
        }
        out.size = size as usize;
    }
    Ok(out)
}

fn control(doc: &Doc, base: &Path, c: &ControlSection) -> Result<ControlSettings, ConfigError> {
    let mut out = ControlSettings::default();
    if let Some(e) = &c.enabled {
        out.enabled = *e.get_ref();
    }
    if let Some(p) = &c.socket {
        out.socket = base.join(p.get_ref());
    }
    if let Some(gs) = &c.group {
        let g = gs.get_ref().trim();
        if g.is_empty() {
            return Err(doc.at(
                gs.span(),
                "group = \"\" names no group; write a group name such as \"mip6\" or remove the key",
            ));
        }
        out.group = Some(g.to_string());
    }
    if let Some(m) = &c.mode {
        let text = m.get_ref().trim();
        match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o777 => out.mode = v,
            _ => {
                return Err(doc.at(
                    m.span(),
                    format!("mode = \"{text}\" is not an octal permission; write e.g. \"0660\""),
                ));
            }
        }
    }
    if let Some(t) = &c.provider_timeout {
        let v = *t.get_ref();
        if !(v > 0.0 && v <= 60.0) {
            return Err(doc.at(
                t.span(),
                format!("provider_timeout = {v}: write a number of seconds between 0 and 60"),
            ));
        }
        out.provider_timeout = Duration::from_secs_f64(v);
    }
    let name = |v: &Spanned<String>, key: &str, example: &str| {
        let n = v.get_ref().trim();
        if n.is_empty() {
            Err(doc.at(
                v.span(),
                format!(
                    "{key} = \"\" names nobody; write e.g. {key} = \"{example}\" or remove the key"
                ),
            ))
        } else {
            Ok(n.to_string())
        }
    };
    out.provider_user = c
        .provider_user
        .as_ref()
        .map(|v| name(v, "provider_user", "mip6d"))
        .transpose()?;
    out.provider_group = c
        .provider_group
        .as_ref()
        .map(|v| name(v, "provider_group", "mip6"))
        .transpose()?;
    if let Some(t) = &c.idle_timeout {
        let v = *t.get_ref();
        if !(v.is_finite() && (1.0..=86_400.0).contains(&v)) {
            return Err(doc.at(
                t.span(),
                format!("idle_timeout = {v}: write a number of seconds between 1 and 86400, e.g. idle_timeout = 60"),
            ));
        }
        out.idle_timeout = Duration::from_secs_f64(v);
    }
    if let Some(m) = &c.max_clients_per_uid {
        let v = *m.get_ref();
        if !(1..=64).contains(&v) {
            return Err(doc.at(
                m.span(),
                format!("max_clients_per_uid = {v}: write a number from 1 to 64 (the socket serves 64 clients), e.g. max_clients_per_uid = 16"),
            ));
        }
        out.max_clients_per_uid = v as usize;
    }
    Ok(out)
}

/// The kernel settings and the automatic reqid range (`auto_reqids`, by default the 32 reqids
/// above the highest class reqid; the default owned range covers it and the classes).
/// The `key = [first, last]` range: non-zero reqids, covering every class reqid (`owned`) or
/// none of them (automatic reqids).
fn reqid_range(
    doc: &Doc,
    key: &str,
    r: &Spanned<[u32; 2]>,
    class_ids: &[u32],
    owned: bool,
) -> Result<(u32, u32), ConfigError> {
    let [first, last] = *r.get_ref();
    if first == 0 || first > last {
        return Err(doc.at(
            r.span(),
            format!(
                "{key} = [{first}, {last}] is not a range of non-zero reqids; write [first, last] with 0 < first <= last"
            ),
        ));
    }
    let in_range = |id: &&u32| (first..=last).contains(*id);
    if let Some(id) = class_ids.iter().filter(|id| in_range(id) != owned).min() {
        let what = if owned {
            format!("leaves out reqid {id} of [reqids]; widen the range to cover every class")
        } else {
            format!("includes reqid {id} of [reqids]; automatic reqids must not name a class")
        };
        return Err(doc.at(r.span(), format!("{key} = [{first}, {last}] {what}")));
    }
    Ok((first, last))
}

fn kernel(
    doc: &Doc,
    k: &KernelSection,
    reqids: &HashMap<SaClass, ClassReqids>,
) -> Result<(KernelSettings, (u32, u32)), ConfigError> {
    let backend = match k.backend.as_ref().map(|b| *b.get_ref()) {
        None | Some(BackendName::Memory) => KernelBackend::Memory,
        Some(BackendName::Xfrm) => KernelBackend::Xfrm,
    };
    let policies = match k.policies.as_ref().map(|p| *p.get_ref()) {
        None | Some(PoliciesName::Mip6d) => PolicyMode::Mip6d,
        Some(PoliciesName::Daemon) => PolicyMode::Daemon,
    };
    let class_ids: Vec<u32> = reqids.values().flat_map(|r| [r.to_ha, r.to_mn]).collect();
    let (class_min, class_max) = (
        class_ids.iter().copied().min().unwrap_or(1),
        class_ids.iter().copied().max().unwrap_or(8),
    );
    // Explicit automatic reqids: a range that names no class.
    let explicit_auto = match &k.auto_reqids {
        None => None,
        Some(r) => Some(reqid_range(doc, "auto_reqids", r, &class_ids, false)?),
    };
    // By default the automatic reqids follow the highest class reqid, within `owned_last`.
    let default_auto = |owned_last: u32| -> Option<(u32, u32)> {
        let first = class_max.checked_add(1)?;
        let last = class_max
            .saturating_add(crate::ike::config::AUTO_REQIDS)
            .min(owned_last);
        (first <= last).then_some((first, last))
    };
    let (owned_reqids, auto_reqids) = match &k.owned_reqids {
        None => {
            let Some(auto) = explicit_auto.or_else(|| default_auto(u32::MAX)) else {
                return Err(doc.at(
                    0..0,
                    format!(
                        "no reqid left above reqid {class_max} for CHILD_SAs outside the classes; set [kernel] auto_reqids = [first, last]"
                    ),
                ));
            };
            ((class_min.min(auto.0), class_max.max(auto.1)), auto)
        }
        Some(r) => {
            let (first, last) = reqid_range(doc, "owned_reqids", r, &class_ids, true)?;
            let auto = match explicit_auto {
                Some((a, b)) if a < first || b > last => {
                    return Err(doc.at(
                        r.span(),
                        format!(
                            "owned_reqids = [{first}, {last}] leaves out auto_reqids [{a}, {b}]; widen the range to cover them"
                        ),
                    ));
                }
                Some(auto) => auto,
                None => default_auto(last).ok_or_else(|| {
                    doc.at(
                        r.span(),
                        format!(
                            "owned_reqids = [{first}, {last}] leaves no reqid above the classes' for CHILD_SAs outside them; widen it to [{first}, {}] or set auto_reqids = [first, last] inside it",
                            class_max.saturating_add(crate::ike::config::AUTO_REQIDS)
                        ),
                    )
                })?,
            };
            ((first, last), auto)
        }
    };
    Ok((
        KernelSettings {
            backend,
            policies,
            owned_reqids,
            spi_stock: k.spi_stock.as_ref().is_none_or(|v| *v.get_ref()),
        },
        auto_reqids,
    ))
}

/// The built-in proposals, used when `[proposals]` leaves `ike` or `esp` out (and by the demo).
pub fn default_proposals() -> (Vec<IkeProposal>, Vec<EspProposal>) {
    // The constants are checked by a unit test below.
    let ike = DEFAULT_IKE_PROPOSALS
        .iter()
        .filter_map(|s| parse_ike_proposal(s).ok())
        .collect();
    let esp = DEFAULT_ESP_PROPOSALS
        .iter()
        .filter_map(|s| parse_esp_proposal(s).ok())
        .collect();
    (ike, esp)
}

/// One `[proposals]` list (`ike` or `esp`); None when the key is absent.
fn proposal_list<T>(
    doc: &Doc,
    list: &Option<Spanned<Vec<Spanned<String>>>>,
    key: &str,
    example: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, ConfigError> {
    let Some(list) = list else { return Ok(None) };
    if list.get_ref().is_empty() {
        return Err(doc.at(
            list.span(),
            format!("{key} = [] proposes nothing; write e.g. {key} = [\"{example}\"]"),
        ));
    }
    list.get_ref()
        .iter()
        .map(|s| parse(s.get_ref().trim()).map_err(|e| doc.at(s.span(), e)))
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

/// Seconds -> Duration; positive, finite, at most ten years.
fn secs(
    doc: &Doc,
    v: &Option<Spanned<f64>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let x = *v.get_ref();
    if !(x.is_finite() && x > 0.0 && x <= 10.0 * 365.0 * 86400.0) {
        return Err(doc.at(
            v.span(),
            format!(
                "{key} = {x} must be a positive number of seconds (e.g. {key} = {})",
                default.as_secs_f64()
            ),
        ));
    }
    Ok(Duration::from_secs_f64(x))
}

/// `[timers] nat_keepalive`: seconds between NAT keepalives, 0 for none.
fn nat_keepalive(doc: &Doc, v: &Option<Spanned<f64>>) -> Result<Duration, ConfigError> {
    let default = crate::ike::MobilityConfig::default().nat_keepalive;
    match v {
        Some(x) if *x.get_ref() == 0.0 => Ok(Duration::ZERO),
        Some(x) if !(x.get_ref().is_finite() && (1.0..=3600.0).contains(x.get_ref())) => {
            Err(doc.at(
                x.span(),
                format!(
                    "nat_keepalive = {} must be between 1 and 3600 seconds, or 0 for no keepalives (e.g. nat_keepalive = 20)",
                    x.get_ref()
                ),
            ))
        }
        _ => secs(doc, v, "nat_keepalive", default),
    }
}

fn timers(doc: &Doc, t: &TimersSection) -> Result<Timers, ConfigError> {
    let d = Timers::default();
    let out = Timers {
        retransmit_timeout: secs(
            doc,
            &t.retransmit_timeout,
            "retransmit_timeout",
            d.retransmit_timeout,
        )?,
        retransmit_backoff: match &t.retransmit_backoff {
            None => d.retransmit_backoff,
            Some(b) => {
                let x = *b.get_ref();
                if !(x.is_finite() && (1.0..=10.0).contains(&x)) {
                    return Err(doc.at(
                        b.span(),
                        format!("retransmit_backoff = {x} must be between 1.0 and 10.0 (e.g. 1.8)"),
                    ));
                }
                x
            }
        },
        retransmit_tries: match &t.retransmit_tries {
            None => d.retransmit_tries,
            Some(n) if *n.get_ref() > 20 => {
                return Err(doc.at(
                    n.span(),
                    format!(
                        "retransmit_tries = {} is too many; write at most 20",
                        n.get_ref()
                    ),
                ));
            }
            Some(n) => *n.get_ref(),
        },
        retransmit_max: secs(doc, &t.retransmit_max, "retransmit_max", d.retransmit_max)?,
        liveness_interval: secs(
            doc,
            &t.liveness_interval,
            "liveness_interval",
            d.liveness_interval,
        )?,
        half_open_timeout: secs(
            doc,
            &t.half_open_timeout,
            "half_open_timeout",
            d.half_open_timeout,
        )?,
        child_rekey: secs(doc, &t.child_rekey, "child_rekey", d.child_rekey)?,
        child_lifetime: secs(doc, &t.child_lifetime, "child_lifetime", d.child_lifetime)?,
        ike_rekey: secs(doc, &t.ike_rekey, "ike_rekey", d.ike_rekey)?,
        move_grace: secs(doc, &t.move_grace, "move_grace", d.move_grace)?,
    };
    if out.child_rekey >= out.child_lifetime {
        let span = t
            .child_rekey
            .as_ref()
            .or(t.child_lifetime.as_ref())
            .map(|v| v.span());
        let msg = format!(
            "child_rekey ({}) must be shorter than child_lifetime ({}): rekeying happens before the SA expires",
            out.child_rekey.as_secs_f64(),
            out.child_lifetime.as_secs_f64()
        );
        return Err(match span {
            Some(s) => doc.at(s, msg),
            None => doc.whole(msg),
        });
    }
    Ok(out)
}

/// The `[limits]` section, checked.
struct Limits {
    cookie_threshold: usize,
    max_half_open: usize,
    max_half_open_per_source: usize,
    init_rate_per_source: u32,
}

fn limits(doc: &Doc, l: &LimitsSection) -> Result<Limits, ConfigError> {
    // Both per-source limits must let a mobile node through: zero would refuse everyone.
    let positive = |v: &Option<Spanned<u32>>, key: &str, default: u32| match v {
        Some(x) if *x.get_ref() == 0 => Err(doc.at(
            x.span(),
            format!("{key} = 0 would refuse every peer; write e.g. {key} = {default}"),
        )),
        Some(x) => Ok(*x.get_ref()),
        None => Ok(default),
    };
    let per_source = positive(
        &l.half_open_per_source,
        "half_open_per_source",
        crate::ike::DEFAULT_HALF_OPEN_PER_SOURCE as u32,
    )? as usize;
    let rate = positive(
        &l.init_rate_per_source,
        "init_rate_per_source",
        crate::ike::DEFAULT_INIT_RATE_PER_SOURCE,
    )?;
    let cookie = l.cookie_threshold.as_ref().map_or(50, |v| *v.get_ref()) as usize;
    let max = l.max_half_open.as_ref().map_or(5000, |v| *v.get_ref()) as usize;
    if let Some(m) = &l.max_half_open
        && *m.get_ref() == 0
    {
        return Err(doc.at(
            m.span(),
            "max_half_open = 0 would refuse every peer; write e.g. max_half_open = 5000",
        ));
    }
    if cookie > max {
        let span = l
            .cookie_threshold
            .as_ref()
            .or(l.max_half_open.as_ref())
            .map(|v| v.span());
        let msg = format!(
            "cookie_threshold ({cookie}) is above max_half_open ({max}): cookies would never be sent"
        );
        return Err(match span {
            Some(s) => doc.at(s, msg),
            None => doc.whole(msg),
        });
    }
    Ok(Limits {
        cookie_threshold: cookie,
        max_half_open: max,
        max_half_open_per_source: per_source,
        init_rate_per_source: rate,
    })
}

fn reqids(doc: &Doc, r: &ReqidsSection) -> Result<HashMap<SaClass, ClassReqids>, ConfigError> {
    let mut out = HashMap::new();
    // reqid -> (class, span of its explicit entry)
    let mut seen: HashMap<u32, (SaClass, Option<std::ops::Range<usize>>)> = HashMap::new();
    let entries = [
        (SaClass::BuBa, &r.bu_ba),
        (SaClass::MpsMpa, &r.mps_mpa),
        (SaClass::HotiHot, &r.hoti_hot),
        (SaClass::Payload, &r.payload),
    ];
    // Explicit entries first so that a clash points at a line the user wrote.
    let mut order: Vec<_> = entries.iter().filter(|(_, v)| v.is_some()).collect();
    order.extend(entries.iter().filter(|(_, v)| v.is_none()));
    for (class, v) in order {
        let ids = match v {
            Some(v) => {
                let [to_ha, to_mn] = *v.get_ref();
                if to_ha == 0 || to_mn == 0 {
                    return Err(doc.at(
                        v.span(),
                        format!(
                            "{}: reqid 0 means \"any\" to the kernel; write non-zero values",
                            class.name()
                        ),
                    ));
                }
                ClassReqids { to_ha, to_mn }
            }
            None => class.default_reqids(),
        };
        for id in [ids.to_ha, ids.to_mn] {
            let span = v.as_ref().map(|v| v.span());
            if let Some((other, other_span)) = seen.insert(id, (*class, span.clone()))
                && (other != *class || ids.to_ha == ids.to_mn)
            {
                let msg = if other == *class {
                    format!(
                        "{}: to_ha and to_mn are both {id}; each direction needs its own reqid",
                        class.name()
                    )
                } else {
                    format!(
                        "reqid {id} is used by both {} and {}{}; give each class its own pair",
                        other.name(),
                        class.name(),
                        if v.is_none() { " (default)" } else { "" }
                    )
                };
                // Point at the entry the user wrote (a default has no line).
                return Err(match span.or(other_span) {
                    Some(s) => doc.at(s, msg),
                    None => doc.whole(msg),
                });
            }
        }
        out.insert(*class, ids);
    }
    Ok(out)
}

/// Classes by name, without repetitions; `key` names the setting.
pub(crate) fn classes(
    doc: &Doc,
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Result<Vec<SaClass>, ConfigError> {
    let mut out = Vec::new();
    for c in list.get_ref() {
        let Some(class) = SaClass::from_name(c.get_ref().trim()) else {
            return Err(doc.at(
                c.span(),
                format!("unknown SA class \"{}\"; write one of \"bu-ba\", \"mps-mpa\", \"hoti-hot\", \"payload\"", c.get_ref()),
            ));
        };
        if out.contains(&class) {
            return Err(doc.at(
                c.span(),
                format!("class \"{}\" is listed twice; remove one", class.name()),
            ));
        }
        out.push(class);
    }
    if out.is_empty() {
        return Err(doc.at(
            list.span(),
            format!("{key} = [] names no SA class; write e.g. {key} = [\"bu-ba\", \"payload\"]"),
        ));
    }
    Ok(out)
}

fn mobile_node_settings(
    doc: &Doc,
    span: std::ops::Range<usize>,
    mn: &MobileNodeSection,
) -> Result<MobileNodeSettings, ConfigError> {
    let Some(ha) = &mn.home_agent else {
        return Err(doc.at(
            span.clone(),
            "[mobile_node] needs home_agent = \"[<HA address>]:500\" (where to send IKE)",
        ));
    };
    let home_agent = socket_addr(doc, ha)?;
    let home_agent_address = match &mn.home_agent_address {
        Some(a) => ipv6(doc, a, "home_agent_address")?,
        None => match home_agent.ip() {
            IpAddr::V6(a) => a,
            IpAddr::V4(_) => {
                return Err(doc.at(
                    ha.span(),
                    "the home agent is reached over IPv4: add home_agent_address = \"<its IPv6 address>\" for the selectors",
                ));
            }
        },
    };
    let care_of_address = mn
        .care_of_address
        .as_ref()
        .map(|c| ip(doc, c, "care_of_address"))
        .transpose()?;
    if let Some(c) = care_of_address
        && c.is_ipv4() != home_agent.is_ipv4()
    {
        return Err(doc.at(
            mn.care_of_address.as_ref().map_or(0..0, |v| v.span()),
            format!(
                "care_of_address {c} and home_agent {} are of different IP versions",
                home_agent.ip()
            ),
        ));
    }
    let Some(hoa) = &mn.home_address else {
        return Err(doc.at(
            span,
            "[mobile_node] needs home_address = \"<IPv6 address>\" or home_address = \"dynamic\"",
        ));
    };
    let home_address = if hoa.get_ref().trim() == "dynamic" {
        HomeAddress::Dynamic
    } else {
        let a: Ipv6Addr = hoa.get_ref().trim().parse().map_err(|_| {
            doc.at(
                hoa.span(),
                format!("home_address = \"{}\" is not an IPv6 address; write e.g. \"2001:db8:1::100\" or \"dynamic\"", hoa.get_ref()),
            )
        })?;
        check_hoa(doc, hoa, a)?;
        HomeAddress::Static(a)
    };
    let classes = match &mn.classes {
        Some(list) => classes(doc, list, "classes")?,
        None => vec![SaClass::BuBa],
    };
    let home_agent_id = mn
        .home_agent_id
        .as_ref()
        .map(|v| identity(doc, v, "home_agent_id"))
        .transpose()?;
    Ok(MobileNodeSettings {
        home_agent,
        home_agent_address,
        care_of_address,
        home_address,
        classes,
        home_agent_id,
        auto_initiate: mn.auto_initiate.as_ref().is_none_or(|v| *v.get_ref()),
    })
}

/// A home address must be a unicast address a node can own.
pub(crate) fn check_hoa(doc: &Doc, v: &Spanned<String>, a: Ipv6Addr) -> Result<(), ConfigError> {
    if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
        return Err(doc.at(v.span(), format!("{a} cannot be a home address; write a global unicast address such as 2001:db8:1::100")));
    }
    Ok(())
}

fn socket_addr(doc: &Doc, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
    let s = v.get_ref().trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    Err(doc.at(
        v.span(),
        format!("home_agent = \"{s}\" is not an address; write \"[2001:db8:1::1]:500\", \"2001:db8:1::1\" or \"192.0.2.1:500\" (no host names)"),
    ))
}

/// Reads a file named in the configuration (relative to `base`).
fn read_named(
    doc: &Doc,
    base: &Path,
    v: &Spanned<String>,
    key: &str,
) -> Result<(PathBuf, String), ConfigError> {
    let p = base.join(v.get_ref());
    std::fs::read_to_string(&p)
        .map(|t| (p.clone(), t))
        .map_err(|e| doc.at(v.span(), format!("{key}: cannot read {}: {e}", p.display())))
}

fn local_auth(
    doc: &Doc,
    base: &Path,
    ident: &IdentitySection,
    role: Role,
) -> Result<LocalAuth, ConfigError> {
    match (&ident.certificate, &ident.private_key, &ident.psk) {
        (Some(_), _, Some(p)) | (_, Some(_), Some(p)) => Err(doc.at(
            p.span(),
            "psk and certificate/private_key are both set; keep one way to authenticate",
        )),
        (Some(c), None, None) => Err(doc.at(c.span(), "certificate needs private_key = \"<key file>\" next to it")),
        (None, Some(k), None) => Err(doc.at(k.span(), "private_key needs certificate = \"<certificate file>\" next to it")),
        (None, None, Some(p)) => {
            if role == Role::HomeAgent {
                return Err(doc.at(
                    p.span(),
                    "a home agent authenticates with certificate and private_key; per-user pre-shared keys go into the user files (psk = \"...\")",
                ));
            }
            let key = psk(doc, p)?;
            // The key is in this very file: it must be as private as a key file. (load_str may
            // be handed text without a file behind it: nothing to check then.)
            if let Ok(meta) = std::fs::metadata(doc.path) {
                check_secret_mode(
                    doc,
                    p.span(),
                    &meta,
                    doc.path,
                    "pre-shared key file",
                )?;
            }
            Ok(LocalAuth::Psk(key))
        }
        (None, None, None) => Err(doc.whole(
            "[identity] needs certificate = \"<file>.pem\" and private_key = \"<file>.key\" (or, on a mobile node, psk = \"...\")",
        )),
        (Some(c), Some(k), None) => {
            let key_path = base.join(k.get_ref());
            check_key_mode(doc, k, &key_path)?;
            let key = PrivateKey::load_pem_file(&key_path)
                .map_err(|e| doc.at(k.span(), format!("private_key: {}", auth_msg(e))))?;
            let (cert_path, pem) = read_named(doc, base, c, "certificate")?;
            let chain = crate::auth::cert::certs_from_pem(&pem)
                .map_err(|e| doc.at(c.span(), format!("certificate {}: {}", cert_path.display(), auth_msg(e))))?;
            if chain.is_empty() {
                return Err(doc.at(c.span(), format!("certificate: no CERTIFICATE block in {}", cert_path.display())));
            }
            let style = match ident.signature.as_ref().map(|s| *s.get_ref()) {
                None | Some(SignatureName::Rfc7427) => SignatureStyle::DigitalSignature,
                Some(SignatureName::Legacy) => SignatureStyle::Legacy,
            };
            Ok(LocalAuth::Certificate { key: Arc::new(key), chain, style })
        }
    }
}

/// Refuses key files that group or others may read or write. The auth module checks too; this
/// check gives the message its configuration position.
fn check_key_mode(doc: &Doc, v: &Spanned<String>, path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        doc.at(
            v.span(),
            format!("private_key: cannot read {}: {e}", path.display()),
        )
    })?;
    check_secret_mode(doc, v.span(), &meta, path, "private_key")
}

/// Refuses a file holding a secret (`what`: a private key, or a file with a pre-shared key)
/// that group or others may read or write; `span` is where the configuration names the secret.
pub(crate) fn check_secret_mode(
    doc: &Doc,
    span: std::ops::Range<usize>,
    meta: &std::fs::Metadata,
    path: &Path,
    what: &str,
) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(doc.at(
            span,
            format!(
                "{what} {} is accessible by group or others (mode {mode:04o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A pre-shared key: text, or hex after `0x`. Kept in a zeroizing buffer.
pub(crate) fn psk(doc: &Doc, v: &Spanned<String>) -> Result<Secret, ConfigError> {
    let s = v.get_ref();
    let bytes: Secret = if let Some(hex) = s.strip_prefix("0x") {
        match hex_decode(hex) {
            Some(b) => Secret::new(b),
            None => {
                return Err(doc.at(
                    v.span(),
                    "psk starting with 0x must be an even number of hex digits",
                ));
            }
        }
    } else {
        Secret::new(s.as_bytes().to_vec())
    };
    if bytes.len() < MIN_PSK_LEN {
        return Err(doc.at(
            v.span(),
            format!(
                "psk is {} bytes; use at least {MIN_PSK_LEN} random bytes (e.g. the output of: openssl rand -base64 24)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn trust(
    doc: &Doc,
    base: &Path,
    ident: &IdentitySection,
) -> Result<Option<Arc<TrustAnchors>>, ConfigError> {
    if ident.ca.is_empty() {
        return Ok(None);
    }
    let mut ders = Vec::new();
    for c in &ident.ca {
        let (p, pem) = read_named(doc, base, c, "ca")?;
        let certs = crate::auth::cert::certs_from_pem(&pem)
            .map_err(|e| doc.at(c.span(), format!("ca {}: {}", p.display(), auth_msg(e))))?;
        if certs.is_empty() {
            return Err(doc.at(
                c.span(),
                format!("ca: no CERTIFICATE block in {}", p.display()),
            ));
        }
        ders.extend(certs);
    }
    let anchors = TrustAnchors::from_der(ders).map_err(|e| {
        let first = &ident.ca[0];
        doc.at(first.span(), format!("ca: {}", auth_msg(e)))
    })?;
    Ok(Some(Arc::new(anchors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("é1"), None);
    }

    #[test]
    fn default_proposals_parse() {
        for s in DEFAULT_IKE_PROPOSALS {
            assert!(parse_ike_proposal(s).is_ok(), "{s}");
        }
        for s in DEFAULT_ESP_PROPOSALS {
            assert!(parse_esp_proposal(s).is_ok(), "{s}");
        }
    }
}
