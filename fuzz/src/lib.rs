//! Shared by the fuzz targets and `gen_seeds`: a home agent and a mobile node built like the
//! engine tests build them (tests/common), with the shipped test certificates and seeded RNGs,
//! so that every run of a target, and every seed, sees the same SPIs, nonces and keys.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mip6_ike::auth::{Identity, PrivateKey, SignatureStyle, TrustAnchors, cert::certs_from_pem};
use mip6_ike::crypto::TestRng;
use mip6_ike::ike::{
    Command, Config, Endpoint, HomeAddress, HomeAgentConfig, IkeId, LocalAuth, Now, Timers,
    Transmit, parse_esp_proposal, parse_ike_proposal,
};
use mip6_ike::mobility::{IdentityMatch, SaClass, User, UserAuth, UserDb};

pub const CA_ECDSA: &str = include_str!("../../certs/ca-ecdsa.pem");
pub const HA_CERT: &str = include_str!("../../certs/ha-ecdsa.pem");
pub const HA_KEY: &str = include_str!("../../certs/ha-ecdsa.key");
pub const MN1_CERT: &str = include_str!("../../certs/mn1-ecdsa.pem");
pub const MN1_KEY: &str = include_str!("../../certs/mn1-ecdsa.key");

pub const HA_ADDR: &str = "[2001:db8:1::1]:500";
pub const MN_COA: &str = "[2001:db8:2::100]:500";
pub const HOA1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const HOA2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
pub const HA_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const MN1_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net";
pub const MN2_DN: &str = "dn:C=CH, O=mip6-ike test, CN=mn2@example.net";
pub const HA_DN: &str = "dn:C=CH, O=mip6-ike test, CN=ha.example.net";
/// mn1 authenticates with this PSK: the handshake every input of the "established" modes pays
/// for is then X25519 + one ECDSA signature by the home agent (about 250 µs, see README).
pub const PSK: &[u8] = b"a long enough test pre-shared key";

const IKE: &str = "aes128-sha256-x25519";
const ESP: &str = "aes128-sha256";

fn base_config(identity: &str, auth: LocalAuth, trust: Option<Arc<TrustAnchors>>) -> Config {
    Config {
        identity: Identity::parse_config(identity).expect("identity"),
        auth,
        trust,
        ike_proposals: vec![
            parse_ike_proposal(IKE).expect("ike"),
            parse_ike_proposal("aes128gcm16-prfsha256-ecp256").expect("ike"),
        ],
        esp_proposals: vec![
            parse_esp_proposal(ESP).expect("esp"),
            parse_esp_proposal("aes128gcm16").expect("esp"),
        ],
        prefer: mip6_ike::ike::Prefer::Ours,
        timers: Timers::default(),
        reqids: HashMap::new(),
        // Low, so that a few fuzzed IKE_SA_INITs reach the COOKIE and half-open limits.
        cookie_threshold: 4,
        max_half_open: 16,
        // Low too, so that the per-source limits (one fuzzer "source" sends everything) are
        // reached and their paths explored.
        max_half_open_per_source: 2,
        init_rate_per_source: 4,
        home_agent: None,
        replay_window: 32,
        mobility: Default::default(),
        // Small fragments, so that fuzzed IKE_AUTH messages reach the reassembly paths.
        fragmentation: mip6_ike::ike::Fragmentation {
            enabled: true,
            size: 576,
        },
        revocation: Default::default(),
    }
}

fn user(name: &str, id: &str, auth: UserAuth, hoa: Ipv6Addr) -> User {
    User {
        name: name.into(),
        identity: IdentityMatch::Exact(Identity::parse_config(id).expect("identity")),
        auth,
        home_addresses: vec![hoa],
        classes: vec![
            SaClass::BuBa,
            SaClass::Payload,
            SaClass::MpsMpa,
            SaClass::HotiHot,
        ],
        pool: None,
        home_prefix: None,
        uniqueness: None,
    }
}

/// The home agent: ECDSA certificate; users mn1 (PSK) and mn2 (certificate).
pub fn ha_config() -> Arc<Config> {
    static C: OnceLock<Arc<Config>> = OnceLock::new();
    C.get_or_init(|| {
        let trust = Arc::new(TrustAnchors::from_pem(CA_ECDSA).expect("CA"));
        let auth = LocalAuth::Certificate {
            key: Arc::new(PrivateKey::from_pem(HA_KEY).expect("key")),
            chain: certs_from_pem(HA_CERT).expect("cert"),
            style: SignatureStyle::Legacy,
        };
        let users = UserDb::new(vec![
            user(
                "mn1",
                MN1_DN,
                UserAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())),
                HOA1,
            ),
            user("mn2", MN2_DN, UserAuth::Certificate, HOA2),
        ])
        .expect("users");
        let mut c = base_config(HA_DN, auth, Some(trust));
        c.home_agent = Some(HomeAgentConfig {
            address: HA_IP,
            users: Arc::new(users),
        });
        Arc::new(c)
    })
    .clone()
}

/// mn1 with the PSK.
pub fn mn_config() -> Arc<Config> {
    static C: OnceLock<Arc<Config>> = OnceLock::new();
    C.get_or_init(|| {
        Arc::new(base_config(
            MN1_DN,
            LocalAuth::Psk(zeroize::Zeroizing::new(PSK.to_vec())),
            None,
        ))
    })
    .clone()
}

/// One instant for the whole process: the engine only compares instants, so inputs behave the
/// same whatever the wall clock says.
pub fn start() -> Now {
    static T: OnceLock<Instant> = OnceLock::new();
    Now {
        at: *T.get_or_init(Instant::now),
        unix: 1_800_000_000,
    }
}

pub fn later(now: Now, secs: u64) -> Now {
    Now {
        at: now.at + Duration::from_secs(secs),
        unix: now.unix + secs,
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Everything the engine wants done, thrown away except the datagrams (returned). Kernel
/// operations and events are pulled too: building them must not panic either.
pub fn drain(ep: &mut Endpoint) -> Vec<Transmit> {
    while ep.poll_kernel_op().is_some() {}
    while ep.poll_event().is_some() {}
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        out.push(t);
    }
    out
}

pub fn new_ha(now: Now) -> Endpoint {
    Endpoint::new(ha_config(), Box::new(TestRng::new(2)), now)
}

/// A mobile node and a home agent after a lossless MN-HA handshake with `classes` (the first
/// in IKE_AUTH, the others by CREATE_CHILD_SA). `log` sees every datagram (to_ha, bytes).
pub struct Established {
    pub mn: Endpoint,
    pub ha: Endpoint,
    /// The home agent's name for the IKE SA.
    pub ha_ike: IkeId,
}

pub fn establish(
    now: Now,
    classes: &[SaClass],
    mut log: impl FnMut(bool, &Transmit),
) -> Option<Established> {
    let mut mn = Endpoint::new(mn_config(), Box::new(TestRng::new(1)), now);
    let mut ha = new_ha(now);
    mn.handle_command(
        now,
        Command::Initiate {
            local: addr(MN_COA),
            remote: addr(HA_ADDR),
            home_agent: HA_IP,
            home_address: HomeAddress::Static(HOA1),
            classes: classes.to_vec(),
            remote_identity: Some(Identity::parse_config(HA_DN).expect("identity")),
        },
    )
    .ok()?;
    let mut wire: Vec<(bool, Transmit)> = drain(&mut mn).into_iter().map(|t| (true, t)).collect();
    // A handshake with n classes takes 2 + n-1 exchanges: 64 datagrams is plenty.
    for _ in 0..64 {
        if wire.is_empty() {
            break;
        }
        let (to_ha, t) = wire.remove(0);
        log(to_ha, &t);
        if to_ha {
            ha.handle_datagram(now, t.remote, t.local, &t.data);
        } else {
            mn.handle_datagram(now, t.remote, t.local, &t.data);
        }
        wire.extend(drain(&mut mn).into_iter().map(|t| (true, t)));
        wire.extend(drain(&mut ha).into_iter().map(|t| (false, t)));
    }
    let info = ha.list().into_iter().next()?;
    (info.state == "established" && info.children.len() == classes.len()).then_some(Established {
        mn,
        ha,
        ha_ike: info.id,
    })
}

// ---- responder_datagram's mode 2 (needs Endpoint::fuzz_peer_view: cargo-fuzz builds only) ----

#[cfg(fuzzing)]
/// The home agent starts an exchange of its own (its request is dropped), so that the input can
/// be a response to it.
pub fn ha_starts(ep: &mut Endpoint, now: Now, ike: IkeId, which: u8) {
    let spi_in = ep
        .get(ike)
        .and_then(|i| i.children.first().map(|c| c.spi_in))
        .unwrap_or(0);
    let cmd = match which & 3 {
        0 => Command::RekeyIke { ike },
        1 => Command::CreateChild {
            ike,
            class: SaClass::Payload,
        },
        2 => Command::RekeyChild { ike, spi_in },
        _ => Command::DeleteChild { ike, spi_in },
    };
    let _ = ep.handle_command(now, cmd);
    drain(ep);
}

#[cfg(fuzzing)]
/// Seals `inner` (a payload chain starting with type `first`, taken as is: the fuzzer owns its
/// bytes) as the mobile node would, with the keys of the home agent's SA `ike`.
pub fn seal_as_peer(
    ep: &Endpoint,
    ike: IkeId,
    sel: u8,
    first: u8,
    inner: &[u8],
) -> Option<Vec<u8>> {
    let v = ep.fuzz_peer_view(ike)?;
    use mip6_ike::crypto::Rng;
    use mip6_ike::wire::Header;
    use mip6_ike::wire::consts::*;
    let exchange = [IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL][usize::from(sel & 3)];
    let response = sel & 4 != 0;
    let mut message_id = if response {
        v.our_next_msg_id.wrapping_sub(1)
    } else {
        v.peer_msg_id
    };
    if sel & 8 != 0 {
        // One off: an old request (retransmission cache) or a future one (window).
        message_id = message_id.wrapping_add(if response { 1 } else { u32::MAX });
    }
    let mut flags = if response { FLAG_RESPONSE } else { 0 };
    if v.peer_is_initiator {
        flags |= FLAG_INITIATOR;
    }
    let keys = &v.peer_keys;
    let body_len = keys.sealed_len(inner.len());
    let header = Header {
        spi_i: v.spi_i,
        spi_r: v.spi_r,
        next_payload: PL_SK,
        version: IKE_VERSION,
        exchange,
        flags,
        message_id,
        length: u32::try_from(Header::LEN + 4 + body_len).ok()?,
    };
    let mut out = Vec::new();
    header.emit(&mut out);
    out.push(first);
    out.push(0);
    out.extend_from_slice(&u16::try_from(4 + body_len).ok()?.to_be_bytes());
    let mut iv = vec![0u8; keys.iv_len()];
    TestRng::new(3).fill(&mut iv);
    let aad = out.clone();
    keys.seal(&aad, &iv, inner, &mut out);
    Some(out)
}
