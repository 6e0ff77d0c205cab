//! The TOML files as serde sees them. Every table denies unknown keys; values whose meaning is
//! checked after parsing are `Spanned` so that the error can point at their line.

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleName {
    HomeAgent,
    MobileNode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    pub role: S<RoleName>,
    /// The K bit: IKE SAs follow mip6d's MIGRATEs.
    pub key_mobility: Option<S<bool>>,
    #[serde(default)]
    pub listen: ListenSection,
    pub identity: S<IdentitySection>,
    #[serde(default)]
    pub proposals: ProposalsSection,
    #[serde(default)]
    pub timers: TimersSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub reqids: ReqidsSection,
    pub home_agent: Option<S<HomeAgentSection>>,
    pub mobile_node: Option<S<MobileNodeSection>>,
    #[serde(default)]
    pub kernel: KernelSection,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub revocation: RevocationSection,
    /// Named pools of home addresses or prefixes (home agent).
    #[serde(default)]
    pub pools: std::collections::BTreeMap<String, S<PoolSection>>,
}

/// How the daemon runs the engine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Engine shards (threads owning disjoint IKE SAs); 0 or absent: one per core.
    pub shards: Option<S<u64>>,
}

/// The control socket (src/control).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    pub enabled: Option<S<bool>>,
    pub socket: Option<S<String>>,
    pub group: Option<S<String>>,
    /// Octal permission bits as a string, e.g. "0660".
    pub mode: Option<S<String>>,
    pub provider_timeout: Option<S<f64>>,
    /// Who besides root and the daemon's uid may register as address provider.
    pub provider_user: Option<S<String>>,
    pub provider_group: Option<S<String>>,
    /// Seconds a connection may stay silent (not subscribed, not the provider, no initiate
    /// under way) before it is closed.
    pub idle_timeout: Option<S<f64>>,
    /// Connections one uid may hold at once.
    pub max_clients_per_uid: Option<S<u32>>,
}

/// Certificate revocation: CRL files and what an unknown status means.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSection {
    /// "strict", "relaxed" or "off" (strongSwan's `revocation`).
    pub policy: Option<S<String>>,
    /// CRL files (DER or PEM), each signed by one of the `[identity] ca` CAs.
    #[serde(default)]
    pub crls: Vec<S<String>>,
    /// Seconds between checks whether a CRL file changed (0: only on reload).
    pub check_interval: Option<S<f64>>,
    /// Fetch CRLs from the certificates' `http://` distribution points.
    pub fetch: Option<S<bool>>,
    /// Seconds one CRL download (or OCSP query) may take.
    pub fetch_timeout: Option<S<f64>>,
    /// Ask OCSP responders when no CRL tells a certificate's status.
    pub ocsp: Option<S<bool>>,
    /// Seconds after which an established SA's OCSP answer is asked for again (0: on reload).
    pub ocsp_recheck: Option<S<f64>>,
    /// OCSP responders per CA, asked before a certificate's own Authority Information Access.
    #[serde(default)]
    pub ocsp_responders: Vec<S<OcspResponderEntry>>,
}

/// `{ ca = "<CA certificate>.pem", uri = "http://..." }` in `[revocation] ocsp_responders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcspResponderEntry {
    pub ca: S<String>,
    pub uri: S<String>,
}

/// `[pools.<name>]`: `range = "first-last"` or `prefix = "p/len"` (addresses), or `prefix` with
/// `delegate = <len>` (prefixes of that length for MIP6_HOME_PREFIX).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    pub range: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub delegate: Option<S<u8>>,
    pub lifetime: Option<S<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    pub addresses: Option<Vec<S<String>>>,
    pub port: Option<S<u16>>,
    pub nat_port: Option<S<u16>>,
    pub receive_buffer: Option<S<u64>>,
    pub fragmentation: Option<S<bool>>,
    pub fragment_size: Option<S<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureName {
    Rfc7427,
    Legacy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    pub id: S<String>,
    pub certificate: Option<S<String>>,
    pub private_key: Option<S<String>>,
    pub psk: Option<S<String>>,
    #[serde(default)]
    pub ca: Vec<S<String>>,
    pub signature: Option<S<SignatureName>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalsSection {
    pub ike: Option<S<Vec<S<String>>>>,
    pub esp: Option<S<Vec<S<String>>>>,
    pub prefer: Option<S<String>>,
}

/// Durations in seconds (integers or decimals).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersSection {
    pub retransmit_timeout: Option<S<f64>>,
    pub retransmit_tries: Option<S<u32>>,
    pub retransmit_backoff: Option<S<f64>>,
    pub retransmit_max: Option<S<f64>>,
    pub liveness_interval: Option<S<f64>>,
    pub half_open_timeout: Option<S<f64>>,
    pub child_rekey: Option<S<f64>>,
    pub child_lifetime: Option<S<f64>>,
    pub ike_rekey: Option<S<f64>>,
    pub move_grace: Option<S<f64>>,
    pub nat_keepalive: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub cookie_threshold: Option<S<u32>>,
    pub max_half_open: Option<S<u32>>,
    pub half_open_per_source: Option<S<u32>>,
    pub init_rate_per_source: Option<S<u32>>,
}

/// `class = [to_ha, to_mn]`, the reqids of mip6d's `IPsecPolicy ... UseESP <to_ha> <to_mn>`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReqidsSection {
    #[serde(rename = "bu-ba")]
    pub bu_ba: Option<S<[u32; 2]>>,
    #[serde(rename = "mps-mpa")]
    pub mps_mpa: Option<S<[u32; 2]>>,
    #[serde(rename = "hoti-hot")]
    pub hoti_hot: Option<S<[u32; 2]>>,
    pub payload: Option<S<[u32; 2]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAgentSection {
    pub address: Option<S<String>>,
    pub users_dir: Option<S<String>>,
    pub lease_file: Option<S<String>>,
    pub lease_grace: Option<S<f64>>,
    /// The default uniqueness policy of the users (`no`, `never`, `keep`, `replace`).
    pub uniqueness: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNodeSection {
    pub home_agent: Option<S<String>>,
    pub home_agent_address: Option<S<String>>,
    pub care_of_address: Option<S<String>>,
    pub home_address: Option<S<String>>,
    pub classes: Option<S<Vec<S<String>>>>,
    pub home_agent_id: Option<S<String>>,
    pub auto_initiate: Option<S<bool>>,
    pub request_home_prefix: Option<S<bool>>,
    pub initial_contact: Option<S<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    Memory,
    Xfrm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoliciesName {
    Mip6d,
    Daemon,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    pub backend: Option<S<BackendName>>,
    pub policies: Option<S<PoliciesName>>,
    pub replay_window: Option<S<u32>>,
    /// `[first, last]`: reqids that mark SAs (and daemon-installed policies) as ours.
    pub owned_reqids: Option<S<[u32; 2]>>,
    /// `[first, last]`: reqids for CHILD_SAs outside the classes (inside `owned_reqids`).
    pub auto_reqids: Option<S<[u32; 2]>>,
    /// Reserve inbound SPIs ahead of need (see `kernel::xfrm::spi_stock`).
    pub spi_stock: Option<S<bool>>,
}

/// One file in the users directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    pub identity: Option<S<String>>,
    pub identity_pattern: Option<S<String>>,
    pub auth: Option<S<String>>,
    pub psk: Option<S<String>>,
    pub home_addresses: Option<S<Vec<S<String>>>>,
    pub classes: Option<S<Vec<S<String>>>>,
    pub pool: Option<S<String>>,
    pub home_prefix: Option<S<String>>,
    pub prefix_pool: Option<S<String>>,
    /// This user's uniqueness policy (overrides `[home_agent] uniqueness`).
    pub uniqueness: Option<S<String>>,
}
