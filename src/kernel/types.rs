use std::net::IpAddr;

use crate::crypto::Secret;

/// IPsec mode of a CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Transport,
    Tunnel,
}

/// Direction of an SA or policy, seen from this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

/// A flow selector as the kernel sees it: prefixes, protocol and ports (host values; for MH and
/// ICMPv6 the type travels in `sport` as mip6d writes it, see `mobility::selector`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    pub src: IpAddr,
    pub src_prefix: u8,
    pub dst: IpAddr,
    pub dst_prefix: u8,
    /// 0 = any.
    pub proto: u8,
    /// (port or type, mask); mask 0 = any.
    pub sport: (u16, u16),
    pub dport: (u16, u16),
}

impl Selector {
    /// `src/src_prefix -> dst/dst_prefix` for `proto` (0 = any), any port or type.
    pub fn new(src: IpAddr, src_prefix: u8, dst: IpAddr, dst_prefix: u8, proto: u8) -> Selector {
        Selector {
            src,
            src_prefix,
            dst,
            dst_prefix,
            proto,
            sport: (0, 0),
            dport: (0, 0),
        }
    }
}

/// Byte and time limits of an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_secs: u64,
    pub hard_secs: u64,
}

/// UDP encapsulation of an SA's ESP packets (RFC 3948) when a NAT lies between the IKE peers:
/// the UDP ports its packets carry (`sport` the sender's, `dport` the receiver's; for an
/// inbound SA the peer's port first). No original address (NAT-OA): Linux does not use it
/// (transport-mode checksums of decapsulated packets are not checked) and strongSwan sends
/// none either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encap {
    pub sport: u16,
    pub dport: u16,
}

/// Everything needed to install one ESP SA (one direction).
#[derive(Clone)]
pub struct SaSpec {
    pub direction: Direction,
    /// Outer source and destination: CoA/HA for tunnel mode, HoA/HA for the RFC 4877 transport SA.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    pub reqid: u32,
    pub mode: Mode,
    /// The CHILD_SA's traffic as kernel selectors, one per traffic-selector pair the kernel can
    /// express (hoti-hot: HoTI and HoT); never empty. A transport SA with exactly one carries
    /// it itself; with `policies = "daemon"` each gets its own policy.
    pub selectors: Vec<Selector>,
    /// A CHILD_SA outside mip6d's SA classes (its reqid is one of `auto_reqids`): its SAs carry
    /// their one selector in tunnel mode too, and the daemon installs its policies whatever
    /// `policies` says (mip6d has none for it), ahead of the class policies whose traffic it
    /// narrows.
    pub outside_classes: bool,
    /// IKEv2 transform IDs and key lengths (bits) so the backend can map them to kernel names.
    pub encr_id: u16,
    pub encr_key_bits: u16,
    pub encr_key: Secret,
    /// AUTH_NONE (0) for AEAD.
    pub integ_id: u16,
    pub integ_key: Secret,
    pub esn: bool,
    pub replay_window: u32,
    pub lifetime: Lifetime,
    /// ESP in UDP (NAT traversal); None: plain ESP.
    pub encap: Option<Encap>,
}

impl std::fmt::Debug for SaSpec {
    // Keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaSpec")
            .field("direction", &self.direction)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("reqid", &self.reqid)
            .field("mode", &self.mode)
            .field("selectors", &self.selectors)
            .field("outside_classes", &self.outside_classes)
            .field("encr", &(self.encr_id, self.encr_key_bits))
            .field("integ", &self.integ_id)
            .field("esn", &self.esn)
            .field("encap", &self.encap)
            .finish_non_exhaustive()
    }
}

/// What the engine asks of the kernel. Inbound SPIs come from a [`SpiAllocator`] (or the
/// engine's RNG) before the SA exists, so every operation is fire-and-forget.
#[derive(Debug, Clone)]
pub enum KernelOp {
    AddSa(SaSpec),
    /// Remove the SA identified by destination, SPI (ESP).
    DelSa {
        dst: IpAddr,
        spi: u32,
    },
    /// New UDP encapsulation ports for an installed SA (the NAT mapping of the peer changed),
    /// same SPI, keys and counters.
    UpdateSaEncap {
        dst: IpAddr,
        spi: u32,
        encap: Encap,
    },
    /// Move an SA's outer endpoints (K-bit moves of tunnel SAs).
    UpdateSaAddrs {
        old_dst: IpAddr,
        spi: u32,
        src: IpAddr,
        dst: IpAddr,
    },
}

/// What the kernel tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A packet matched a policy without SA (mip6d's first BU, for instance).
    Acquire {
        /// The kernel's sequence number of the larval state (passed back in ALLOCSPI).
        seq: u32,
        reqid: u32,
        selector: Selector,
        src: IpAddr,
        dst: IpAddr,
    },
    /// An SA reached a soft (rekey) or hard (remove) limit.
    Expire { dst: IpAddr, spi: u32, hard: bool },
    /// mip6d moved a policy/SA; `km_local`/`km_remote` is the XFRMA_KMADDRESS pair.
    Migrate(Migrate),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrate {
    pub selector: Selector,
    pub direction: Direction,
    pub reqid: u32,
    pub old_src: IpAddr,
    pub old_dst: IpAddr,
    pub new_src: IpAddr,
    pub new_dst: IpAddr,
    pub km_local: Option<IpAddr>,
    pub km_remote: Option<IpAddr>,
}

/// Where the engine's record says one SA of a CHILD_SA sits (no keys: the backend holds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    pub reqid: u32,
}

/// What a look at the kernel found for one [`Placement`], and what the backend did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// In the kernel where the record says.
    InPlace,
    /// At other endpoints (`src` -> `dst`): moved to the recorded ones, same SPI, keys and
    /// counters (deleted and added again; the kernel cannot change an SA's destination).
    Moved { src: IpAddr, dst: IpAddr },
    /// Not in the kernel: added again from the backend's copy (same SPI and keys). Inbound
    /// SAs only: an outbound copy would restart its sequence numbers below the peer's window.
    Readded,
    /// Not in the kernel and no copy to add it from: only a new negotiation helps.
    Missing,
    /// The repair was refused (the kernel's answer).
    Failed(String),
}

/// An outbound tunnel template of a policy that is not ours (mip6d's): where mip6d says a
/// tunnel runs now. Read after lost MIGRATE notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelTemplate {
    pub selector: Selector,
    pub reqid: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// A kernel backend carries out operations; events reach the daemon by its own channel.
pub trait Kernel: Send {
    fn apply(&mut self, op: &KernelOp) -> Result<(), String>;
    /// SAs currently installed by us (for listing and for clean shutdown).
    fn installed(&self) -> Vec<(IpAddr, u32)>;
    /// The kernel moved SAs itself before broadcasting this MIGRATE (mip6d's MIGRATE of a
    /// tunnel policy moves that reqid's SAs between the old endpoints): a backend that keeps a
    /// record of its SAs updates it, so later deletes and the shutdown find them.
    fn observe_migrate(&mut self, _m: &Migrate) {}
    /// Traffic counters of our SAs as (destination, SPI, counters), read in one go for a
    /// listing; empty when the backend knows none (the in-memory one carries no traffic).
    fn counters(&self) -> Vec<(IpAddr, u32, SaCounters)> {
        Vec::new()
    }
    /// What the kernel counted on each of `sas` (destination, SPI), in order; None for an SA
    /// it does not hold (or a backend that counts nothing). The engine asks this for its
    /// inbound SAs before a liveness check (`Endpoint::poll_sa_use_query`): ESP that arrived
    /// shows the peer alive. The kernel counts a packet only once its ICV verified, so nobody
    /// without the keys can move these counters. This default serves it from `counters()`.
    fn sa_use(&self, sas: &[(IpAddr, u32)]) -> Vec<Option<SaCounters>> {
        let all = self.counters();
        sas.iter()
            .map(|&(dst, spi)| {
                all.iter()
                    .find(|(d, s, _)| *d == dst && *s == spi)
                    .map(|(_, _, c)| *c)
            })
            .collect()
    }
    /// An SPI allocator to hand to the engine, when the backend reserves SPIs itself.
    fn spi_allocator(&mut self) -> Option<Box<dyn SpiAllocator>> {
        None
    }
    /// Looks at the kernel (not at a record) for each SA the engine holds and puts it where
    /// the engine's record says: moved, or added again under the same SPI and keys. One
    /// [`Found`] per placement, in order. This default knows only `installed()` and repairs
    /// nothing.
    fn reconcile(&mut self, want: &[Placement]) -> Vec<Found> {
        let have = self.installed();
        want.iter()
            .map(|p| {
                if have.contains(&(p.dst, p.spi)) {
                    Found::InPlace
                } else {
                    Found::Missing
                }
            })
            .collect()
    }
    /// Removes the larval states the kernel made for ACQUIREs (SPI 0) with one of `reqids`;
    /// while one exists the kernel sends no further ACQUIRE and mip6d's MIGRATE of that
    /// policy fails. Returns how many went.
    fn drop_acquire_states(&mut self, _reqids: &[u32]) -> usize {
        0
    }
    /// Outbound tunnel templates of policies we did not install (mip6d's), read from the
    /// kernel; empty when the backend has none.
    fn tunnel_templates(&mut self) -> Vec<TunnelTemplate> {
        Vec::new()
    }
}

/// What the kernel counted on one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaCounters {
    pub bytes: u64,
    pub packets: u64,
}

/// What the engine knows when it needs an inbound SPI: the inbound SA's endpoints (`src` the
/// peer, `dst` us), its reqid (0 when not known yet), and the ACQUIRE's sequence number when
/// the negotiation answers one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiRequest {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub reqid: u32,
    pub acquire_seq: Option<u32>,
}

/// Chooses inbound ESP SPIs for the engine. Without one the engine picks random SPIs itself
/// (deterministic under a test RNG); the XFRM backend reserves them in the kernel (ALLOCSPI).
pub trait SpiAllocator: Send {
    /// Reserves an SPI now (may wait for the kernel).
    fn allocate(&mut self, req: &SpiRequest) -> Result<u32, String>;
    /// What the engine calls: an SPI reserved ahead if one is at hand, `Ok(None)` when the
    /// engine should pick one itself (never waits for the kernel; see the XFRM backend's stock).
    fn try_allocate(&mut self, req: &SpiRequest) -> Result<Option<u32>, String> {
        self.allocate(req).map(Some)
    }
}
