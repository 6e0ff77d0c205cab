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
    /// The original initiator rekeys the IKE SA this long after it was established (RFC 7296
    /// 2.18); zero disables timed IKE SA rekeying.
    pub ike_rekey: Duration,
    /// Without the K bit, an IKE SA whose end moved keeps its CHILD_SAs (mip6d's BUs need the
    /// HoA<->HA transport SAs, which do not depend on the care-of address) until the new IKE SA
    /// from the new address replaces it, or this long at most.
    pub move_grace: Duration,
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
            ike_rekey: Duration::from_secs(4 * 3600),
            move_grace: Duration::from_secs(60),
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
    /// As responder: whose order decides among acceptable proposals (`[proposals] prefer`).
    pub prefer: super::proposal::Prefer,
    pub timers: Timers,
    /// Reqids per SA class (mip6d's `IPsecPolicy ... UseESP <to_ha> <to_mn>`).
    pub reqids: HashMap<SaClass, ClassReqids>,
    /// Answer IKE_SA_INIT with a COOKIE when this many half-open SAs exist.
    pub cookie_threshold: usize,
    /// Refuse new IKE_SA_INIT beyond this many half-open SAs.
    pub max_half_open: usize,
    /// Half-open SAs one source address may hold; its further IKE_SA_INIT are dropped until
    /// they complete or time out (strongSwan's `block_threshold`).
    pub max_half_open_per_source: usize,
    /// IKE_SA_INIT requests per second one source address may send (a token bucket holding as
    /// many); the excess is dropped unanswered.
    pub init_rate_per_source: u32,
    /// Present when we serve mobile nodes.
    pub home_agent: Option<HomeAgentConfig>,
    /// ESP anti-replay window installed with each SA.
    pub replay_window: u32,
    /// Mobile IPv6 behaviour: K bit, home prefix request, lease grace.
    pub mobility: MobilityConfig,
    /// IKE fragmentation (RFC 7383).
    pub fragmentation: Fragmentation,
    /// What an unknown or revoked peer certificate means (`[revocation] policy`); the CRLs
    /// come separately ([`super::Endpoint::set_crls`]).
    pub revocation: crate::auth::revocation::RevocationPolicy,
}

/// IKE fragmentation (RFC 7383): large IKE_AUTH messages (certificate chains) must not depend
/// on IP fragments, which many paths drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragmentation {
    /// Announce IKEV2_FRAGMENTATION_SUPPORTED; fragment when the peer announced it too.
    pub enabled: bool,
    /// The largest IP datagram (IP and UDP headers included) one of our IKE messages or
    /// fragments may make: strongSwan's `fragment_size`, 1280 (IPv6's minimum MTU) by default.
    pub size: usize,
}

/// Bounds of [`Fragmentation::size`]: IPv4's minimum reassembly size, and the UDP maximum.
pub const MIN_FRAGMENT_SIZE: usize = 576;
pub const MAX_FRAGMENT_SIZE: usize = 65535;

impl Default for Fragmentation {
    fn default() -> Self {
        Fragmentation {
            enabled: true,
            size: 1280,
        }
    }
}

/// Defaults of [`Config::max_half_open_per_source`] and [`Config::init_rate_per_source`].
pub const DEFAULT_HALF_OPEN_PER_SOURCE: usize = 5;
pub const DEFAULT_INIT_RATE_PER_SOURCE: u32 = 10;

/// Mobile IPv6 settings that are not about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobilityConfig {
    /// The K bit (RFC 6275 11.7.1): a MIGRATE with KMADDRESS moves the IKE SA to the new
    /// care-of address. Without it the mobile node re-establishes its IKE SA from the new
    /// address and the home agent deletes the old one.
    pub key_mobility: bool,
    /// On a move, also move tunnel CHILD_SAs' outer endpoints with `KernelOp::UpdateSaAddrs`.
    /// False when mip6d installs the policies: its XFRM_MSG_MIGRATE has already moved the
    /// kernel's tunnel SAs, and the engine only updates its own record.
    pub update_kernel_sas: bool,
    /// Mobile node: ask for a home prefix (CP MIP6_HOME_PREFIX, RFC 5026) in IKE_AUTH.
    pub request_home_prefix: bool,
    /// Mobile node: send INITIAL_CONTACT (RFC 7296 2.4) in the IKE_AUTH of our first IKE SA
    /// with a home agent, so that it drops what it still holds of us from before a restart.
    /// Off only for several devices sharing one identity (each would drop the others' SAs).
    pub initial_contact: bool,
    /// Home agent: how long a dynamic lease outlives the IKE SA that held it (seconds).
    pub lease_grace: Duration,
    /// Inclusive range of reqids for CHILD_SAs outside the MIPv6 classes, used in turn
    /// (`[kernel] auto_reqids`; inside the owned range, so start-up cleanup finds their SAs).
    pub auto_reqids: (u32, u32),
    /// Home agent: the uniqueness policy of users whose file sets none
    /// (`[home_agent] uniqueness`).
    pub uniqueness: crate::mobility::Uniqueness,
    /// Our NAT-T port (`[listen] nat_port`): where an initiator behind a NAT moves its IKE SA
    /// (RFC 7296 2.23), and where a peer behind one is followed to.
    pub nat_port: u16,
    /// How often the side behind a NAT sends a NAT keepalive (RFC 3948 2.3) to keep its
    /// mapping alive (`[timers] nat_keepalive`); zero: never.
    pub nat_keepalive: Duration,
}

/// How many reqids the automatic range has by default (one per CHILD_SA an IKE SA may hold).
pub const AUTO_REQIDS: u32 = 32;

impl Default for MobilityConfig {
    fn default() -> Self {
        MobilityConfig {
            key_mobility: true,
            update_kernel_sas: false,
            request_home_prefix: false,
            initial_contact: true,
            lease_grace: Duration::from_secs(3600),
            // Right above the default class reqids (1-8).
            auto_reqids: (9, 8 + AUTO_REQIDS),
            uniqueness: crate::mobility::Uniqueness::Replace,
            nat_port: super::float::NAT_T_PORT,
            nat_keepalive: Duration::from_secs(20),
        }
    }
}

impl MobilityConfig {
    /// The `n`th automatic reqid: the range in turn, from its start again after its end.
    pub fn auto_reqid(&self, n: u32) -> u32 {
        let (first, last) = self.auto_reqids;
        let (first, last) = (first.max(1), last.max(first.max(1)));
        let size = u64::from(last - first) + 1;
        // Below `last`, so the sum fits.
        first + (u64::from(n) % size) as u32
    }
}

impl Config {
    pub fn reqids(&self, class: SaClass) -> ClassReqids {
        self.reqids
            .get(&class)
            .copied()
            .unwrap_or_else(|| class.default_reqids())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_reqids_stay_in_their_range() {
        let m = MobilityConfig {
            auto_reqids: (20, 22),
            ..Default::default()
        };
        let got: Vec<u32> = (0..7).map(|n| m.auto_reqid(n)).collect();
        assert_eq!(got, vec![20, 21, 22, 20, 21, 22, 20]);
        let all = MobilityConfig {
            auto_reqids: (1, u32::MAX),
            ..Default::default()
        };
        assert_eq!(all.auto_reqid(u32::MAX - 1), u32::MAX);
        assert_eq!(all.auto_reqid(u32::MAX), 1);
        assert_eq!(all.auto_reqid(0), 1);
        // The default range lies above the default class reqids and never names one.
        let d = MobilityConfig::default();
        let class_ids: Vec<u32> = crate::mobility::SaClass::ALL
            .iter()
            .flat_map(|c| [c.default_reqids().to_ha, c.default_reqids().to_mn])
            .collect();
        for n in 0..100 {
            let r = d.auto_reqid(n);
            assert!((9..=40).contains(&r) && !class_ids.contains(&r), "{r}");
        }
    }
}
