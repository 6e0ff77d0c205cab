//! The state of one IKE SA and its CHILD_SAs. Kept compact: a home agent holds one per mobile
//! node, so handshake-only data lives in a box that is dropped once IKE_AUTH completes.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::proposal::{EspSuite, IkeSuite};
use super::{HomeAddress, IkeId};
use crate::auth::Identity;
use crate::crypto::{DhPrivate, PrfAlg, Secret, SkKeys};
use crate::kernel::Mode;
use crate::mobility::{SaClass, User};
use crate::wire::TrafficSelector;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Initiator: IKE_SA_INIT request sent.
    InitSent,
    /// Initiator: IKE_AUTH request sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH (half-open).
    InitReplied,
    Established,
    /// Delete of the IKE SA sent; waiting for the answer.
    Deleting,
    /// Replaced by a rekeyed IKE SA (RFC 7296 2.18): its CHILD_SAs moved to the successor, it
    /// only waits for (or sends) its Delete. Also a new SA from a rekey collision (2.8.2) until
    /// it turns out to be the survivor. Removing it reports no IkeDown.
    Rekeyed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::InitSent => "IKE_SA_INIT sent",
            State::AuthSent => "IKE_AUTH sent",
            State::InitReplied => "half-open",
            State::Established => "established",
            State::Deleting => "deleting",
            State::Rekeyed => "rekeyed",
        }
    }
}

/// Keys of an IKE SA after IKE_SA_INIT, oriented: `out` protects what we send.
pub(crate) struct SaKeys {
    pub prf: PrfAlg,
    pub sk_d: Secret,
    pub out: SkKeys,
    pub inb: SkKeys,
    /// SK_pi / SK_pr, oriented: ours signs our AUTH, theirs checks the peer's.
    pub sk_p_ours: Secret,
    pub sk_p_theirs: Secret,
}

/// What an initiator wants from this IKE SA.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub home_agent: Ipv6Addr,
    pub home_address: HomeAddress,
    pub classes: Vec<SaClass>,
    pub remote_identity: Option<Identity>,
    /// A dynamic home address the home agent gave us before: proposed again in the next CP
    /// request (re-establishment after a move without the K bit).
    pub assigned_hoa: Option<Ipv6Addr>,
    /// When this side (the original initiator, which alone rekeys by timer) rekeys the IKE SA;
    /// set once the SA is established, reset for each successor.
    pub ike_rekey_at: Option<Instant>,
    /// Mobile node: IKE SAs left behind by moves without the K bit (our SPIs). Their CHILD_SAs
    /// stay until this plan's IKE SA has set up its own; then they are deleted.
    pub retire: Vec<u64>,
}

/// Handshake data, dropped after IKE_AUTH.
pub(crate) struct Handshake {
    pub dh: Option<DhPrivate>,
    pub dh_group: crate::crypto::DhGroup,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// RealMessage1 and RealMessage2 as sent/received (AUTH signs them).
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
    pub cookie: Option<Vec<u8>>,
    /// How often this attempt restarted for a COOKIE and for INVALID_KE_PAYLOAD: both answers
    /// are unauthenticated, so a forger could otherwise keep the attempt alive forever.
    pub cookie_retries: u8,
    pub ke_retries: u8,
    /// The first CHILD_SA proposed in IKE_AUTH (initiator).
    pub first_child: Option<ChildRequest>,
    /// The peer sent CERTREQ.
    pub peer_certreq: bool,
    /// The hashes the peer announced in SIGNATURE_HASH_ALGORITHMS (RFC 7427) that we sign
    /// with: method 14 may be used with one of them.
    pub peer_sig_hash: crate::auth::PeerHashes,
    /// An error notify in an (unauthenticated) IKE_SA_INIT answer, reported if no better answer
    /// arrives.
    pub init_error: Option<(Option<u16>, String)>,
}

/// A CHILD_SA we have asked for and not yet got.
#[derive(Debug, Clone)]
pub(crate) struct ChildRequest {
    pub class: Option<SaClass>,
    pub mode: Mode,
    pub spi_in: u32,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    /// Inbound SPI of the CHILD_SA this one replaces.
    pub rekey_of: Option<u32>,
    /// The request was sent again with the group of the peer's INVALID_KE_PAYLOAD (once only:
    /// the answer is the peer's, but a second one would loop).
    pub ke_retried: bool,
}

/// An installed CHILD_SA.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub class: Option<SaClass>,
    pub mode: Mode,
    pub spi_in: u32,
    pub spi_out: u32,
    pub reqid_in: u32,
    pub reqid_out: u32,
    pub suite: EspSuite,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub outer_local: IpAddr,
    pub outer_remote: IpAddr,
    pub rekey_at: Option<Instant>,
    pub installed: Instant,
    /// A rekey of this CHILD_SA is under way or done (do not start another).
    pub rekeying: bool,
    /// A rekey of this CHILD_SA completed: it only waits for its Delete (RFC 7296 2.8). A peer
    /// that rekeys it again, or never deletes it, must not grow our SAs without bound.
    pub superseded: bool,
    /// Packets the kernel had counted on the inbound SA at the last look (liveness).
    pub in_packets: u64,
}

/// Work waiting for the message-ID window (size 1).
#[derive(Debug, Clone)]
pub(crate) enum Intent {
    CreateChild(SaClass),
    RekeyChild(u32),
    DeleteChild(u32),
    DeleteIke,
    Liveness,
    /// Rekey the IKE SA itself (RFC 7296 1.3.2).
    RekeyIke,
}

/// Our IKE SA rekey crossed one started by the peer (RFC 7296 2.8.2): what we know of theirs.
pub(crate) struct Collision {
    /// Our SPI of the SA the peer's exchange created (we answered it).
    pub new: u64,
    /// The lower nonce of the peer's exchange.
    pub nonce_min: Vec<u8>,
}

/// Our CHILD_SA rekey crossed the peer's rekey of the same CHILD_SA (RFC 7296 2.8.1): what we
/// know of the CHILD_SA the peer's exchange made (we answered it).
pub(crate) struct ChildCollision {
    /// Our inbound SPI of that CHILD_SA.
    pub spi_in: u32,
    /// The lower nonce of the peer's exchange.
    pub nonce_min: Vec<u8>,
}

/// What our outstanding request is about.
pub(crate) enum Exchange {
    Init,
    Auth,
    CreateChild {
        req: ChildRequest,
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
        /// The peer rekeyed the same CHILD_SA meanwhile (RFC 7296 2.8.1).
        collision: Option<ChildCollision>,
    },
    /// Delete of one CHILD_SA: our inbound SPI and, when we held it, our outbound SPI (the
    /// peer names the CHILD_SA by that one when it asks to rekey it meanwhile).
    DeleteChild {
        spi_in: u32,
        spi_out: Option<u32>,
    },
    DeleteIke,
    Liveness,
    RekeyIke {
        /// Our SPI for the new IKE SA.
        spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        collision: Option<Collision>,
    },
}

impl Exchange {
    pub fn name(&self) -> &'static str {
        match self {
            Exchange::Init => "IKE_SA_INIT",
            Exchange::Auth => "IKE_AUTH",
            Exchange::CreateChild { .. } | Exchange::RekeyIke { .. } => "CREATE_CHILD_SA",
            Exchange::DeleteChild { .. } | Exchange::DeleteIke | Exchange::Liveness => {
                "INFORMATIONAL"
            }
        }
    }
}

/// Our outstanding request and its retransmission state.
pub(crate) struct Pending {
    pub msg_id: u32,
    /// The request as sent: one datagram or its fragments, all re-sent on retransmission.
    pub data: super::fragment::Datagrams,
    pub tries: u32,
    pub next_at: Instant,
    pub exchange: Exchange,
}

pub(crate) struct IkeSa {
    pub initiator: bool,
    pub state: State,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub suite: Option<IkeSuite>,
    pub keys: Option<Box<SaKeys>>,
    pub hs: Option<Box<Handshake>>,
    pub plan: Option<Box<Plan>>,
    pub peer: Option<Identity>,
    pub user: Option<Arc<User>>,
    pub home_address: Option<Ipv6Addr>,
    /// The AUTH method the peer proved itself with (0 before IKE_AUTH).
    pub peer_auth_method: u8,
    /// The peer's end-entity certificate (issuer, serial, ...), kept so that a CRL update
    /// can find SAs whose certificate it revokes (see `revoke`); boxed: most of the time
    /// one pointer per SA.
    pub peer_cert: Option<Box<crate::auth::revocation::CertRef>>,
    /// Our next request's message ID.
    pub next_msg_id: u32,
    /// The message ID we expect on the peer's next request.
    pub peer_msg_id: u32,
    /// Boxed: most of the time an SA has no request outstanding (one pointer then).
    pub pending: Option<Box<Pending>>,
    pub queue: VecDeque<Intent>,
    /// Our last response, re-sent when its request is retransmitted; dropped `RESPONSE_HOLD`
    /// after the request (see `endpoint`).
    pub last_response: Option<(u32, super::fragment::Datagrams)>,
    /// Both sides announced IKE fragmentation (RFC 7383) in IKE_SA_INIT (inherited on rekey).
    pub fragmentation: bool,
    /// Verified fragments of a message not yet complete.
    pub reassembly: Option<Box<super::fragment::Reassembly>>,
    pub children: Vec<Child>,
    pub last_heard: Instant,
    /// Half-open responder SAs die at this time.
    pub expires_at: Option<Instant>,
    /// The deadline registered in the endpoint's timer index.
    pub deadline: Option<Instant>,
    pub created: Instant,
    /// Home agent: IKE_AUTH waiting for the address provider (`provider`).
    pub parked: Option<Box<super::provider::Parked>>,
    /// Home agent: IKE_AUTH waiting for a CRL being downloaded (`revoke`), and whether it
    /// waited already (it never waits twice).
    pub crl_parked: Option<Box<super::provider::Parked>>,
    pub crl_waited: bool,
    /// The certificate (issuer, serial) whose OCSP answer a parked IKE_AUTH waits for.
    pub ocsp_wait: Option<Box<super::ocsp::CertKey>>,
    /// The address provider's answer, once given (boxed, like the other rarely used parts:
    /// one pointer per SA).
    pub provided: Option<Box<super::ProvidedAddress>>,
    /// Mobile node: the home prefix the home agent delegated (prefix, length, lifetime).
    pub home_prefix: Option<(Ipv6Addr, u8, u32)>,
    /// Mobile node: left behind by a move without the K bit (see `Plan::retire`).
    pub stranded: bool,
    /// When inbound ESP last showed the peer alive (its counters grew); with `last_heard`
    /// (authenticated IKE) it puts off the liveness check.
    pub esp_heard: Option<Instant>,
    /// When we asked the kernel how much our inbound SAs received (a liveness check is due);
    /// None when no question is open.
    pub use_asked: Option<Instant>,
    /// What NAT detection found, and the keepalive timer (see `nat`).
    pub nat: super::nat::NatState,
}

impl IkeSa {
    /// A fresh SA: no keys, no handshake, no children, message IDs at zero.
    pub fn new(
        initiator: bool,
        state: State,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            initiator,
            state,
            spi_i,
            spi_r,
            local,
            remote,
            suite: None,
            keys: None,
            hs: None,
            plan: None,
            peer: None,
            user: None,
            home_address: None,
            peer_auth_method: 0,
            peer_cert: None,
            next_msg_id: 0,
            peer_msg_id: 0,
            pending: None,
            queue: VecDeque::new(),
            last_response: None,
            fragmentation: false,
            reassembly: None,
            children: Vec::new(),
            last_heard: now,
            expires_at: None,
            deadline: None,
            created: now,
            parked: None,
            crl_parked: None,
            crl_waited: false,
            ocsp_wait: None,
            provided: None,
            home_prefix: None,
            stranded: false,
            esp_heard: None,
            use_asked: None,
            nat: Default::default(),
        }
    }

    /// The last sign of life from the peer: an authenticated IKE message or inbound ESP.
    pub fn alive_at(&self) -> Instant {
        self.esp_heard
            .map_or(self.last_heard, |e| e.max(self.last_heard))
    }

    /// Our name for this SA: our own SPI.
    pub fn id(&self) -> IkeId {
        IkeId(self.our_spi())
    }
    pub fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }
    /// Only the original initiator (the side holding the plan, i.e. the mobile node) rekeys by
    /// timer, even after an IKE SA rekey flipped the roles; this keeps collisions rare.
    pub fn drives_rekeys(&self) -> bool {
        self.plan.is_some()
    }
    pub fn child_by_in(&self, spi_in: u32) -> Option<usize> {
        self.children.iter().position(|c| c.spi_in == spi_in)
    }

    /// IKE_AUTH is over: the handshake's data goes, and so do SK_pi and SK_pr, which only
    /// IKE_AUTH uses (RFC 7296 2.15; a rekeyed IKE SA derives its keys from SK_d).
    pub fn handshake_done(&mut self) {
        self.hs = None;
        if let Some(k) = self.keys.as_mut() {
            // Dropping the old values wipes them (Zeroizing).
            k.sk_p_ours = Secret::default();
            k.sk_p_theirs = Secret::default();
        }
    }

    /// Adds a CHILD_SA without spare room: a Vec's growth (4 slots at the first push, then
    /// doubling) would keep up to two unused `Child`s per IKE SA, and a home agent holds very
    /// many IKE SAs with two CHILD_SAs each.
    pub fn push_child(&mut self, mut c: Child) {
        c.ts_local.shrink_to_fit();
        c.ts_remote.shrink_to_fit();
        self.children.reserve_exact(1);
        self.children.push(c);
    }

    /// Removes CHILD_SA `i` and gives its room back (see `push_child`; rekeys add and remove
    /// one, rarely enough for the reallocation not to matter).
    pub fn take_child(&mut self, i: usize) -> Child {
        let c = self.children.remove(i);
        self.children.shrink_to_fit();
        c
    }
}
