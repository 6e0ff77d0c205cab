//! What the engine needs to know, already parsed and validated (the `policy` module builds it
//! from TOML files; tests and the demo build it directly).

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg, Secret};
use crate::mobility::{ClassReqids, SaClass, UserDb};

/// One IKE proposal: every listed algorithm is acceptable; the first is preferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    /// Empty for AEAD ciphers.
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

/// One ESP proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    /// Groups for PFS in CREATE_CHILD_SA (empty: no PFS).
    pub dh: Vec<DhGroup>,
    pub esn: bool,
}

/// How we prove who we are.
pub enum LocalAuth {
    Certificate {
        key: Arc<PrivateKey>,
        /// End-entity certificate first, then intermediates (DER).
        chain: Vec<Vec<u8>>,
        style: SignatureStyle,
    },
    Psk(Secret),
}

/// Timers (RFC 7296 2.4 retransmission with exponential back-off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timers {
    /// First retransmission after this long; each following one waits `backoff` times longer.
    pub retransmit_timeout: Duration,
    pub retransmit_backoff: f64,
    /// Retransmissions after the first transmission before the IKE SA is declared dead.
    pub retransmit_tries: u32,
    /// Longest wait between two retransmissions.
    pub retransmit_max: Duration,
    /// An INFORMATIONAL liveness check after this long without hearing from the peer.
    pub liveness_interval: Duration,
    /// A responder's half-open IKE SA is dropped after this long without IKE_AUTH.
    pub half_open_timeout: Duration,
    /// CHILD_SA lifetimes installed in the kernel; the engine rekeys at `child_rekey`.
    pub child_rekey: Duration,
    pub child_lifetime: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            retransmit_timeout: Duration::from_secs(2),
            retransmit_backoff: 1.8,
            retransmit_tries: 5,
            retransmit_max: Duration::from_secs(60),
            liveness_interval: Duration::from_secs(30),
            half_open_timeout: Duration::from_secs(30),
            child_rekey: Duration::from_secs(3600),
            child_lifetime: Duration::from_secs(3900),
        }
    }
}

/// Home-agent side: who may connect and what they may ask for.
pub struct HomeAgentConfig {
    /// The HA address that appears in the MN's traffic selectors (TSr of BU/BA).
    pub address: Ipv6Addr,
    pub users: Arc<UserDb>,
}

/// Engine configuration.
pub struct Config {
    pub identity: Identity,
    pub auth: LocalAuth,
    /// CAs for peer certificates; None when only PSK is used.
    pub trust: Option<Arc<TrustAnchors>>,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    pub timers: Timers,
    /// Reqids per SA class (mip6d's `IPsecPolicy ... UseESP <to_ha> <to_mn>`).
    pub reqids: HashMap<SaClass, ClassReqids>,
    /// Answer IKE_SA_INIT with a COOKIE when this many half-open SAs exist.
    pub cookie_threshold: usize,
    /// Refuse new IKE_SA_INIT beyond this many half-open SAs.
    pub max_half_open: usize,
    /// Present when we serve mobile nodes.
    pub home_agent: Option<HomeAgentConfig>,
    /// ESP anti-replay window installed with each SA.
    pub replay_window: u32,
}

impl Config {
    pub fn reqids(&self, class: SaClass) -> ClassReqids {
        self.reqids
            .get(&class)
            .copied()
            .unwrap_or_else(|| class.default_reqids())
    }
}
