//! The IKEv2 protocol engine, free of I/O (in the style of quinn-proto and rustls): datagrams,
//! kernel events, commands and the current time go in; datagrams, kernel operations, events and
//! the next deadline come out. It reads no clock, socket or file.
//!
//! Exchanges are built from small tasks: `init` (IKE_SA_INIT), `auth` (IKE_AUTH with the first
//! CHILD_SA), `child` (CREATE_CHILD_SA), `info` (INFORMATIONAL: delete, liveness).

mod assign;
mod auth;
mod child;
pub use child::MAX_CHILDREN_PER_IKE_SA;
pub mod config;
mod endpoint;
mod float;
mod found;
mod fragment;
// Fuzzing only: lets a fuzz target seal messages with an established SA's keys.
#[cfg(fuzzing)]
pub mod fuzz_hooks;
mod hoa_index;
mod home;
mod info;
mod init;
mod kernel_result;
mod limits;
mod liveness;
mod migrate;
mod nat;
mod ocsp;
pub use nat::NAT_KEEPALIVE;
pub mod proposal;
mod protect;
mod provider;
mod reauth;
mod rekey;
mod reload;
mod revoke;
mod sa;
pub mod shard;
mod tamper;
mod unique;

pub use assign::{hoa_attribute, home_prefix_attribute, parse_home_prefix};
pub use config::{
    Config, DEFAULT_HALF_OPEN_PER_SOURCE, DEFAULT_INIT_RATE_PER_SOURCE, EspProposal, Fragmentation,
    HomeAgentConfig, IkeProposal, LocalAuth, MAX_FRAGMENT_SIZE, MIN_FRAGMENT_SIZE, MobilityConfig,
    Timers,
};
pub use endpoint::{Endpoint, Stats};
pub use liveness::{SaUseQuery, USE_ANSWER_WAIT};
pub use ocsp::{OCSP_ASK_INTERVAL, OcspSettings};
pub use proposal::{Prefer, parse_esp_proposal, parse_ike_proposal};
pub use revoke::{PeerCertInfo, serial_hex as revoke_serial_hex};
pub use shard::{MAX_SHARDS, ShardNote, SharedLeases, shard_of_spi};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use crate::auth::Identity;
use crate::kernel::Mode;
use crate::mobility::SaClass;
use crate::wire::TrafficSelector;

/// The current time as the engine sees it: a monotonic instant for timers and the wall clock
/// (Unix seconds) for certificate validity.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix: u64,
}

/// A datagram to send. `local` is the address/port it must leave from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// Our name for an IKE SA: our own SPI (unique in this endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeId(pub u64);

impl std::fmt::Display for IkeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Which home address a mobile node asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeAddress {
    Static(Ipv6Addr),
    /// Ask the home agent with CP(CFG_REQUEST) INTERNAL_IP6_ADDRESS.
    Dynamic,
}

/// What the outside world asks of the engine.
#[derive(Debug, Clone)]
pub enum Command {
    /// Mobile node: bring up an IKE SA from `local` (the care-of address) to `remote` (the home
    /// agent) and the listed CHILD_SA classes for the home address. The first class is negotiated
    /// in IKE_AUTH, the others with CREATE_CHILD_SA. mip6d's latest KMADDRESS for this home
    /// address and home agent, when the engine saw one, replaces `local`'s address (port kept).
    /// The home agent is remembered: only it may later start an IKE SA to us (reauthentication).
    Initiate {
        local: SocketAddr,
        remote: SocketAddr,
        /// The home agent's address in the selectors (usually `remote`'s address).
        home_agent: Ipv6Addr,
        home_address: HomeAddress,
        classes: Vec<SaClass>,
        /// Expected identity of the home agent (checked against IDr and its certificate).
        remote_identity: Option<Identity>,
    },
    /// Add a CHILD_SA of `class` to an established IKE SA.
    CreateChild { ike: IkeId, class: SaClass },
    /// Rekey the CHILD_SA whose inbound SPI is `spi_in`.
    RekeyChild { ike: IkeId, spi_in: u32 },
    /// Delete one CHILD_SA (by inbound SPI).
    DeleteChild { ike: IkeId, spi_in: u32 },
    /// Rekey the IKE SA (RFC 7296 1.3.2); its CHILD_SAs move to the new one, whose IkeId is
    /// reported in `Event::IkeRekeyed`.
    RekeyIke { ike: IkeId },
    /// Delete an IKE SA and its CHILD_SAs (INFORMATIONAL Delete).
    Terminate { ike: IkeId },
    /// Remove every SA at once, telling peers where possible (daemon shutdown).
    Shutdown,
    /// Home agent: the address provider's answer to [`Event::AddressWanted`] (None for both:
    /// no answer, use our own pools). Resumes the parked IKE_AUTH.
    ProvideAddress { ike: IkeId, answer: ProvidedAddress },
}

/// An address provider's answer; both None: no answer, the home agent's own pools decide.
/// The provider is authoritative: its address need not be in the user's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProvidedAddress {
    pub address: Option<Ipv6Addr>,
    /// (prefix, length) for MIP6_HOME_PREFIX.
    pub prefix: Option<(Ipv6Addr, u8)>,
    /// Seconds, sent with the prefix.
    pub prefix_lifetime: u32,
}

/// A CHILD_SA as reported in events and listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pub ike: IkeId,
    pub class: Option<SaClass>,
    pub mode: Mode,
    pub spi_in: u32,
    pub spi_out: u32,
    pub reqid_in: u32,
    pub reqid_out: u32,
    /// Outer SA endpoints (HoA/HA for transport proxy mode, CoA/HA for tunnel mode).
    pub local: IpAddr,
    pub remote: IpAddr,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    /// Readable transform names, e.g. "AES_CBC_128/HMAC_SHA2_256_128".
    pub transforms: String,
    /// When the CHILD_SA was installed (its age in listings).
    pub installed: Instant,
}

/// An IKE SA as reported in listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub id: IkeId,
    pub initiator: bool,
    pub state: &'static str,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub spi_i: u64,
    pub spi_r: u64,
    pub peer: Option<Identity>,
    pub transforms: String,
    pub home_address: Option<Ipv6Addr>,
    /// The AUTH method the peer authenticated with (1 RSA, 2 PSK, 9 ECDSA, 14 RFC 7427).
    pub peer_auth_method: u8,
    /// When this IKE SA was created (a rekeyed one: when the rekey made it).
    pub created: Instant,
    /// Mobile node: the delegated home prefix (prefix, length, lifetime in seconds).
    pub home_prefix: Option<(Ipv6Addr, u8, u32)>,
    pub children: Vec<ChildInfo>,
}

/// What the engine tells the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IkeUp {
        ike: IkeId,
        local: SocketAddr,
        remote: SocketAddr,
        peer: Identity,
    },
    IkeDown {
        ike: IkeId,
        reason: String,
    },
    /// The IKE SA `old` was rekeyed: `new` carries its CHILD_SAs from now on. `old` goes away
    /// without an IkeDown. Also reported when `new` replaces `old` otherwise: a negotiation
    /// started again after a move (MIGRATE during IKE_SA_INIT or IKE_AUTH), or the home agent's
    /// reauthentication (RFC 7296 2.8.3; the HA re-creates the CHILD_SAs in `new`, those of
    /// `old` go with it).
    IkeRekeyed {
        old: IkeId,
        new: IkeId,
    },
    ChildUp(ChildInfo),
    ChildDown {
        ike: IkeId,
        spi_in: u32,
        spi_out: u32,
        reason: String,
    },
    /// The peer could not be authenticated or has no user entry.
    AuthFailed {
        remote: SocketAddr,
        identity: Option<Identity>,
        /// The selectors (home address) its IKE_AUTH asked for (TSi), when it sent them.
        requested: Vec<TrafficSelector>,
        reason: String,
    },
    /// An authenticated peer asked for selectors it may not have (TS_UNACCEPTABLE).
    Refused {
        ike: IkeId,
        identity: Identity,
        requested: Vec<TrafficSelector>,
        reason: String,
    },
    /// The home agent assigned a home address (mobile node: we got one; home agent: we gave one).
    HoaAssigned {
        ike: IkeId,
        address: Ipv6Addr,
    },
    /// The home agent delegated a home network prefix (RFC 5026 MIP6_HOME_PREFIX), seen from
    /// either side.
    PrefixAssigned {
        ike: IkeId,
        prefix: Ipv6Addr,
        prefix_len: u8,
        /// Seconds; 0 = infinite.
        lifetime: u32,
    },
    /// The IKE SA's endpoints moved (K bit, after a MIGRATE).
    Migrated {
        ike: IkeId,
        old_local: SocketAddr,
        old_remote: SocketAddr,
        new_local: SocketAddr,
        new_remote: SocketAddr,
    },
    /// Home agent with an address provider: an authenticated IKE_AUTH asks for a home address
    /// or prefix; it waits until [`Command::ProvideAddress`] (or the provider timeout).
    AddressWanted {
        ike: IkeId,
        identity: Identity,
        /// The user file that authorized the identity.
        user: String,
        wants_address: bool,
        wants_prefix: bool,
        /// The address the mobile node proposed in its CFG_REQUEST.
        requested: Option<Ipv6Addr>,
    },
    /// A peer certificate's revocation status is unknown for want of a CRL of its issuer, and
    /// it names these `http://` distribution points: the daemon fetches them and hands the
    /// CRLs in with [`Endpoint::set_crls`] (only when fetching is on, see
    /// [`Endpoint::set_crl_fetch`]; each URI at most once a minute).
    CrlWanted {
        uris: Vec<String>,
    },
    /// A peer certificate's status is unknown (no CRL says) and an OCSP responder is known
    /// for it (its Authority Information Access, or the one configured for its CA): the daemon
    /// POSTs `request` (a DER OCSPRequest, `application/ocsp-request`) to `uri` and hands
    /// the body of the answer, or why there is none, to [`Endpoint::ocsp_response`] with
    /// `query`. The engine verifies the answer itself (see `auth::ocsp`). Only when OCSP is
    /// on ([`Endpoint::set_ocsp`]); each certificate at most once a minute.
    OcspWanted {
        query: u64,
        uri: String,
        request: Vec<u8>,
    },
    /// An exchange we started failed; `notify` is the error notify type when the peer sent one.
    ExchangeFailed {
        ike: IkeId,
        exchange: &'static str,
        notify: Option<u16>,
        reason: String,
    },
}
