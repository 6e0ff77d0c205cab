//! IKE_SA_INIT (RFC 7296 1.2): proposal selection, KE, nonces, COOKIE (2.6),
//! INVALID_KE_PAYLOAD retry (1.2), NAT detection (2.23).

use std::net::SocketAddr;

use tracing::{debug, info, warn};

use super::endpoint::{Endpoint, Fate, unsupported_critical};
use super::found::{Found, error_notify, nonce_ok, notify};
use super::proposal::{accept_ike, ike_to_wire, select_ike_for_ke};
use super::sa::{Exchange, Handshake, IkeSa, Plan, SaKeys, State};
use super::{Event, IkeId};
use crate::crypto::{DhGroup, DhPrivate, SkKeys, derive_ike_keys, skeyseed};
use crate::wire::consts::*;
use crate::wire::{Header, Message, Notify, Payload};

/// How often one IKE_SA_INIT attempt follows a COOKIE request, and an INVALID_KE_PAYLOAD
/// answer. A genuine responder needs one of each at most (two COOKIEs across a secret
/// rotation); more come from a forger trying to keep the attempt from ever ending.
const MAX_COOKIE_RETRIES: u8 = 3;
const MAX_KE_RETRIES: u8 = 2;

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | port).
pub(super) fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + 8 + 16 + 2);
    d.extend_from_slice(&spi_i.to_be_bytes());
    d.extend_from_slice(&spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => d.extend_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => d.extend_from_slice(&a.octets()),
    }
    d.extend_from_slice(&addr.port().to_be_bytes());
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &d)
        .as_ref()
        .to_vec()
}

/// What both IKE_SA_INIT messages carry (RFC 7296 1.2, 2.23): SA, KE, the nonce and the NAT
/// detection notifies for `spis` and our and the peer's addresses.
fn init_payloads(
    sa: Vec<crate::wire::Proposal>,
    group: DhGroup,
    public: Vec<u8>,
    nonce: Vec<u8>,
    (spi_i, spi_r): (u64, u64),
    local: SocketAddr,
    remote: SocketAddr,
) -> Vec<Payload> {
    vec![
        Payload::Sa(sa),
        Payload::Ke {
            group: group.id(),
            data: public,
        },
        Payload::Nonce(nonce),
        Payload::Notify(Notify::new(
            N_NAT_DETECTION_SOURCE_IP,
            nat_hash(spi_i, spi_r, local),
        )),
        Payload::Notify(Notify::new(
            N_NAT_DETECTION_DESTINATION_IP,
            nat_hash(spi_i, spi_r, remote),
        )),
    ]
}

/// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 2.3): empty, in both IKE_SA_INIT messages.
fn fragmentation_notify() -> Payload {
    Payload::Notify(Notify::new(N_IKEV2_FRAGMENTATION_SUPPORTED, Vec::new()))
}

/// The hashes of the peer's SIGNATURE_HASH_ALGORITHMS notify we can sign with (none without it).
fn peer_hashes(f: &super::found::Found<'_>) -> crate::auth::PeerHashes {
    f.notify(N_SIGNATURE_HASH_ALGORITHMS)
        .map(|n| crate::auth::PeerHashes::from_notify(&n.data))
        .unwrap_or_default()
}

/// SIGNATURE_HASH_ALGORITHMS (RFC 7427 4), the last notify of both IKE_SA_INIT messages.
fn signature_hash_notify() -> Payload {
    Payload::Notify(Notify::new(
        N_SIGNATURE_HASH_ALGORITHMS,
        crate::auth::sign::signature_hash_algorithms_data(),
    ))
}

/// An IKE_SA_INIT message (message ID 0).
fn init_message(spi_i: u64, spi_r: u64, flags: u8, payloads: Vec<Payload>) -> Message {
    Message {
        header: Header {
            spi_i,
            spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: IKE_SA_INIT,
            flags,
            message_id: 0,
            length: 0,
        },
        payloads,
    }
}

impl Endpoint {
    /// COOKIE data = version | SHA-256(Ni | IPi | SPIi | secret) (RFC 7296 2.6).
    fn cookie(
        &self,
        secret: &[u8; 32],
        version: u8,
        ni: &[u8],
        remote: SocketAddr,
        spi_i: u64,
    ) -> Vec<u8> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(ni);
        match remote.ip() {
            std::net::IpAddr::V4(a) => ctx.update(&a.octets()),
            std::net::IpAddr::V6(a) => ctx.update(&a.octets()),
        }
        ctx.update(&spi_i.to_be_bytes());
        ctx.update(secret);
        let mut out = vec![version];
        out.extend_from_slice(ctx.finish().as_ref());
        out
    }

    fn cookie_valid(&self, got: &[u8], ni: &[u8], remote: SocketAddr, spi_i: u64) -> bool {
        let Some(&v) = got.first() else { return false };
        let secret = if v == self.cookie_version {
            &self.cookie_secret
        } else if v == self.cookie_version.wrapping_sub(1) {
            &self.cookie_secret_prev
        } else {
            return false;
        };
        crate::crypto::ct_eq(got, &self.cookie(secret, v, ni, remote, spi_i))
    }

    /// Mobile node: starts an IKE SA towards the home agent (from mip6d's latest KMADDRESS when
    /// there is one, see `home`).
    pub(super) fn start_initiator(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        plan: Plan,
    ) -> IkeId {
        let local = if self.is_home_agent() {
            local
        } else {
            // A reauthentication by this home agent is recognised by what we asked of it.
            self.mn.remember(remote, local.port(), &plan);
            self.initiation_local(local, remote, &plan)
        };
        let spi_i = self.new_ike_spi();
        let group = self
            .cfg
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .unwrap_or(DhGroup::Curve25519);
        let ni = self.nonce();
        let mut sa = IkeSa {
            hs: Some(Box::new(Handshake {
                dh: None,
                dh_group: group,
                ni,
                nr: Vec::new(),
                init_request: Vec::new(),
                init_response: Vec::new(),
                cookie: None,
                cookie_retries: 0,
                ke_retries: 0,
                first_child: None,
                peer_certreq: false,
                peer_sig_hash: crate::auth::PeerHashes::NONE,
                init_error: None,
            })),
            plan: Some(Box::new(plan)),
            ..IkeSa::new(true, State::InitSent, spi_i, 0, local, remote, self.now.at)
        };
        info!(ike = %sa.id(), %local, %remote, "initiating IKE SA");
        let fate = self.send_init(&mut sa);
        self.finish(Box::new(sa), fate);
        IkeId(spi_i)
    }

    /// (Re)builds and sends our IKE_SA_INIT request with the handshake's group and cookie.
    fn send_init(&mut self, sa: &mut IkeSa) -> Fate {
        let Some(hs) = sa.hs.as_mut() else {
            return Fate::Close("no handshake".into());
        };
        let (dh, public) = match DhPrivate::generate(hs.dh_group, self.rng.as_mut()) {
            Ok(x) => x,
            Err(e) => return Fate::Close(format!("DH key generation failed: {e}")),
        };
        hs.dh = Some(dh);
        let mut payloads = Vec::new();
        if let Some(c) = &hs.cookie {
            payloads.push(Payload::Notify(Notify::new(N_COOKIE, c.clone())));
        }
        payloads.extend(init_payloads(
            ike_to_wire(&self.cfg.ike_proposals, &[], Some(hs.dh_group)),
            hs.dh_group,
            public,
            hs.ni.clone(),
            (sa.spi_i, 0),
            sa.local,
            sa.remote,
        ));
        if self.cfg.fragmentation.enabled {
            payloads.push(fragmentation_notify());
        }
        payloads.push(signature_hash_notify());
        let data = init_message(sa.spi_i, 0, FLAG_INITIATOR, payloads).emit();
        hs.init_request = data.clone();
        sa.next_msg_id = 0;
        self.send_request(sa, vec![data], Exchange::Init);
        Fate::Keep
    }

    /// Initiator: the IKE_SA_INIT response (unprotected; nothing is trusted until IKE_AUTH).
    pub(super) fn init_response(&mut self, sa: &mut IkeSa, header: &Header, data: &[u8]) -> Fate {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.drop_msg(sa.remote, &format!("bad IKE_SA_INIT response: {e}"));
                return Fate::Keep;
            }
        };
        let p = &msg.payloads;
        if let Some(c) = notify(p, N_COOKIE) {
            if c.data.is_empty() || c.data.len() > 64 {
                self.drop_msg(sa.remote, "bad COOKIE");
                return Fate::Keep;
            }
            let Some(hs) = sa.hs.as_mut() else {
                return Fate::Close("no handshake".into());
            };
            if hs.cookie_retries >= MAX_COOKIE_RETRIES {
                return self.init_refused(sa, Some(N_COOKIE), "too many COOKIE requests");
            }
            hs.cookie_retries += 1;
            hs.cookie = Some(c.data.clone());
            debug!(ike = %sa.id(), "responder asked for a COOKIE; retrying");
            sa.pending = None;
            return self.send_init(sa);
        }
        if let Some(n) = notify(p, N_INVALID_KE_PAYLOAD) {
            let wanted = n.data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let ok = wanted
                .and_then(DhGroup::from_id)
                .filter(|g| self.cfg.ike_proposals.iter().any(|pr| pr.dh.contains(g)));
            let Some(g) = ok else {
                return self.init_refused(
                    sa,
                    Some(N_INVALID_KE_PAYLOAD),
                    "responder wants a DH group we do not offer",
                );
            };
            let id = sa.id();
            let Some(hs) = sa.hs.as_mut() else {
                return Fate::Close("no handshake".into());
            };
            if hs.dh_group == g {
                return self.init_refused(
                    sa,
                    Some(N_INVALID_KE_PAYLOAD),
                    "INVALID_KE_PAYLOAD for the group we sent",
                );
            }
            if hs.ke_retries >= MAX_KE_RETRIES {
                return self.init_refused(
                    sa,
                    Some(N_INVALID_KE_PAYLOAD),
                    "too many INVALID_KE_PAYLOAD answers",
                );
            }
            hs.ke_retries += 1;
            info!(ike = %id, group = g.id(), "responder asked for another DH group; retrying");
            hs.dh_group = g;
            sa.pending = None;
            return self.send_init(sa);
        }
        if let Some(err) = error_notify(p) {
            return self.init_refused(sa, Some(err), "responder refused IKE_SA_INIT");
        }
        if header.spi_r == 0 {
            self.drop_msg(sa.remote, "IKE_SA_INIT response without responder SPI");
            return Fate::Keep;
        }
        let f = Found::new(p);
        let (Some(answer), Some((group, ke)), Some(nr)) = (f.sa, f.ke, f.nonce) else {
            return self.init_refused(
                sa,
                Some(N_INVALID_SYNTAX),
                "IKE_SA_INIT response lacks SA, KE or Nonce",
            );
        };
        let Some(suite) = accept_ike(&self.cfg.ike_proposals, answer) else {
            return self.init_refused(
                sa,
                Some(N_NO_PROPOSAL_CHOSEN),
                "responder chose a proposal we did not offer",
            );
        };
        if !nonce_ok(nr) {
            return self.init_refused(sa, Some(N_INVALID_SYNTAX), "bad nonce length");
        }
        let Some(hs) = sa.hs.as_mut() else {
            return Fate::Close("no handshake".into());
        };
        if group != hs.dh_group.id() || suite.dh != hs.dh_group {
            return self.init_refused(
                sa,
                Some(N_INVALID_KE_PAYLOAD),
                "KE group differs from the chosen one",
            );
        }
        if hs.dh_group.check_public(ke).is_err() {
            // Unauthenticated and checked before our key is spent: keep waiting.
            return self.init_refused(
                sa,
                Some(N_INVALID_SYNTAX),
                "invalid KE value from responder",
            );
        }
        let Some(dh) = hs.dh.take() else {
            return Fate::Close("no DH key".into());
        };
        let shared = match dh.agree(ke) {
            Ok(s) => s,
            Err(_) => {
                // Our DH key is spent, so we cannot wait for a better answer here.
                return self.init_failed(
                    sa,
                    Some(N_INVALID_SYNTAX),
                    "invalid KE value from responder",
                );
            }
        };
        hs.nr = nr.to_vec();
        hs.init_response = data.to_vec();
        hs.peer_certreq = f.certreq;
        hs.peer_sig_hash = peer_hashes(&f);
        sa.fragmentation =
            self.cfg.fragmentation.enabled && f.notify(N_IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        sa.spi_r = header.spi_r;
        self.check_nat(sa, p, true);
        let Some(hs) = sa.hs.as_ref() else {
            return Fate::Close("no handshake".into());
        };
        sa.keys = Some(Box::new(make_keys(
            &suite, &hs.ni, &hs.nr, &shared, sa.spi_i, sa.spi_r, true,
        )));
        sa.suite = Some(suite);
        sa.pending = None;
        sa.next_msg_id = 1;
        sa.state = State::AuthSent;
        self.start_auth(sa)
    }

    /// An IKE_SA_INIT answer we cannot use. It is unauthenticated (anyone on the path could
    /// have sent it), so we keep waiting for a genuine answer until the current retransmission
    /// timer runs out, and only then fail with this notify and reason (RFC 7296 2.21.1).
    fn init_refused(&mut self, sa: &mut IkeSa, notify: Option<u16>, reason: &str) -> Fate {
        info!(ike = %sa.id(), remote = %sa.remote, notify = %super::found::NotifyLabel(notify), reason, "unusable IKE_SA_INIT answer; waiting for another until the timer runs out");
        if let Some(hs) = sa.hs.as_mut() {
            hs.init_error = Some((notify, reason.to_string()));
        }
        if let Some(p) = sa.pending.as_mut() {
            p.tries = self.cfg.timers.retransmit_tries;
        }
        Fate::Keep
    }

    fn init_failed(&mut self, sa: &mut IkeSa, notify: Option<u16>, reason: &str) -> Fate {
        warn!(ike = %sa.id(), remote = %sa.remote, notify = %super::found::NotifyLabel(notify), reason, "IKE_SA_INIT failed");
        self.stats.ike_failed += 1;
        self.push_event(Event::ExchangeFailed {
            ike: sa.id(),
            exchange: "IKE_SA_INIT",
            notify,
            reason: reason.to_string(),
        });
        Fate::Close(reason.to_string())
    }

    /// What the NAT detection notifies say (RFC 7296 2.23); `nat` acts on it.
    fn check_nat(&mut self, sa: &mut IkeSa, p: &[Payload], initiator: bool) {
        let (src_of_peer, dst_is_us) = (sa.remote, sa.local);
        let spi_r = if initiator { sa.spi_r } else { 0 };
        let f = Found::new(p);
        let got_src: Vec<&Notify> = f.notifies(N_NAT_DETECTION_SOURCE_IP).collect();
        let got_dst = f.notify(N_NAT_DETECTION_DESTINATION_IP);
        if got_src.is_empty() && got_dst.is_none() {
            return;
        }
        let peer_nat = !got_src.is_empty()
            && !got_src
                .iter()
                .any(|n| n.data == nat_hash(sa.spi_i, spi_r, src_of_peer));
        let our_nat = got_dst.is_some_and(|n| n.data != nat_hash(sa.spi_i, spi_r, dst_is_us));
        self.nat_detected(sa, peer_nat, our_nat);
    }

    /// Responder: an IKE_SA_INIT request (no state is created before every check passed).
    pub(super) fn handle_init_request(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        header: &Header,
        data: &[u8],
    ) {
        // An unprotected error answer to this request.
        let refuse = |me: &mut Self, notify: u16, data: Vec<u8>| {
            me.send_unprotected_error(local, remote, header, notify, data)
        };
        if header.message_id != 0 || !header.is_initiator() {
            return self.drop_msg(remote, "IKE_SA_INIT request with bad message ID or flags");
        }
        if header.spi_i == 0 {
            // RFC 7296 3.1: the initiator's SPI is never zero.
            return self.drop_msg(remote, "IKE_SA_INIT request with initiator SPI 0");
        }
        if !self.is_home_agent() && self.mn.home_agent(remote.ip()).is_none() {
            // A mobile node answers only its own home agent (which may reauthenticate, RFC
            // 7296 2.8.3); anyone else is refused before any state exists.
            info!(%remote, "IKE_SA_INIT from a peer that is not our home agent: NO_PROPOSAL_CHOSEN");
            self.stats.dropped += 1;
            return refuse(self, N_NO_PROPOSAL_CHOSEN, Vec::new());
        }
        let (now, rate) = (self.now.at, self.cfg.init_rate_per_source);
        if !self.sources().allow_init(remote.ip(), now, rate) {
            // Unanswered: an answer would be work (and traffic) on the flooder's terms.
            return self.drop_msg(remote, "IKE_SA_INIT rate of this source exceeded");
        }
        if let Some(&ours) = self.half_open.get(&(remote, header.spi_i)) {
            // Retransmission: answer from the cache, but only if it is the same request.
            if let Some(sa) = self.sas.get(&ours)
                && let Some(hs) = &sa.hs
                && hs.init_request == data
                && let Some((0, resp)) = &sa.last_response
            {
                debug!(%remote, "retransmitted IKE_SA_INIT answered from cache");
                for d in resp.clone() {
                    self.transmits.push_back(super::Transmit {
                        local,
                        remote,
                        data: d,
                    });
                }
            } else {
                self.drop_msg(
                    remote,
                    "IKE_SA_INIT with a half-open SPI but different content",
                );
            }
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.drop_msg(remote, &format!("bad IKE_SA_INIT: {e}"));
                return refuse(self, N_INVALID_SYNTAX, Vec::new());
            }
        };
        let p = &msg.payloads;
        if let Some(t) = unsupported_critical(p) {
            return refuse(self, N_UNSUPPORTED_CRITICAL_PAYLOAD, vec![t]);
        }
        let f = Found::new(p);
        let (Some(sa_prop), Some((group, ke)), Some(ni)) =
            (f.sa, f.ke, f.nonce.filter(|n| nonce_ok(n)))
        else {
            return refuse(self, N_INVALID_SYNTAX, Vec::new());
        };
        // Stateless cookie defence once too many SAs are half-open (RFC 7296 2.6).
        if self.half_open_count() + self.recent_bad_inits() >= self.cfg.cookie_threshold {
            let ok = f
                .notify(N_COOKIE)
                .is_some_and(|c| self.cookie_valid(&c.data, ni, remote, header.spi_i));
            if !ok {
                self.arm_cookie_rotation();
                let c = self.cookie(
                    &self.cookie_secret,
                    self.cookie_version,
                    ni,
                    remote,
                    header.spi_i,
                );
                self.stats.cookies_sent += 1;
                debug!(%remote, "half-open threshold reached: answering with a COOKIE");
                return refuse(self, N_COOKIE, c);
            }
        }
        if self.sources().half_open_of(remote.ip()) >= self.cfg.max_half_open_per_source {
            // After the cookie check: once cookies are required, only a source that receives
            // at its address can use up its own share.
            return self.drop_msg(remote, "too many half-open IKE SAs from this address");
        }
        if self.half_open_count() >= self.cfg.max_half_open {
            return self.drop_msg(remote, "too many half-open IKE SAs");
        }
        let (chosen, suite) =
            match select_ike_for_ke(&self.cfg.ike_proposals, sa_prop, group, self.cfg.prefer) {
                Ok(x) => x,
                Err(Some(suite)) => {
                    self.stats.invalid_ke_sent += 1;
                    debug!(%remote, got = group, want = suite.dh.id(), "INVALID_KE_PAYLOAD");
                    return refuse(
                        self,
                        N_INVALID_KE_PAYLOAD,
                        suite.dh.id().to_be_bytes().to_vec(),
                    );
                }
                Err(None) => {
                    info!(%remote, "no acceptable IKE proposal");
                    return refuse(self, N_NO_PROPOSAL_CHOSEN, Vec::new());
                }
            };
        // The cheap checks of the peer's value come before any DH computation: a spoofed
        // IKE_SA_INIT with a bad KE must not cost us a MODP exponentiation (two, with our own
        // key pair) for free. It leaves no half-open SA, so it counts towards the cookie
        // threshold by itself.
        if suite.dh.check_public(ke).is_err() {
            self.note_bad_init();
            debug!(%remote, "invalid KE value");
            return refuse(self, N_INVALID_SYNTAX, Vec::new());
        }
        let (dh, public) = match DhPrivate::generate(suite.dh, self.rng.as_mut()) {
            Ok(x) => x,
            Err(_) => return self.drop_msg(remote, "DH key generation failed"),
        };
        let shared = match dh.agree(ke) {
            Ok(s) => s,
            Err(_) => {
                self.note_bad_init();
                debug!(%remote, "invalid KE value");
                return refuse(self, N_INVALID_SYNTAX, Vec::new());
            }
        };
        let spi_r = self.new_ike_spi();
        let nr = self.nonce();
        let mut out = init_payloads(
            vec![chosen],
            suite.dh,
            public,
            nr.clone(),
            (header.spi_i, spi_r),
            local,
            remote,
        );
        if let Some(t) = &self.cfg.trust {
            out.push(Payload::CertReq {
                encoding: CERT_X509_SIGNATURE,
                data: t.certreq_data(),
            });
        }
        // RFC 7383 2.3: announced only in answer to the initiator's announcement.
        let fragmentation =
            self.cfg.fragmentation.enabled && f.notify(N_IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        if fragmentation {
            out.push(fragmentation_notify());
        }
        out.push(signature_hash_notify());
        let resp = init_message(header.spi_i, spi_r, FLAG_RESPONSE, out).emit();
        let keys = make_keys(&suite, ni, &nr, &shared, header.spi_i, spi_r, false);
        let mut sa = IkeSa {
            suite: Some(suite),
            keys: Some(Box::new(keys)),
            hs: Some(Box::new(Handshake {
                dh: None,
                dh_group: suite.dh,
                ni: ni.to_vec(),
                nr,
                init_request: data.to_vec(),
                init_response: resp.clone(),
                cookie: None,
                cookie_retries: 0,
                ke_retries: 0,
                first_child: None,
                peer_certreq: f.certreq,
                peer_sig_hash: peer_hashes(&f),
                init_error: None,
            })),
            peer_msg_id: 1,
            fragmentation,
            expires_at: Some(self.now.at + self.cfg.timers.half_open_timeout),
            ..IkeSa::new(
                false,
                State::InitReplied,
                header.spi_i,
                spi_r,
                local,
                remote,
                self.now.at,
            )
        };
        self.check_nat(&mut sa, p, false);
        debug!(ike = %sa.id(), %remote, suite = %suite, "IKE_SA_INIT answered");
        self.send_response(&mut sa, 0, vec![resp]);
        self.half_open.insert((remote, header.spi_i), spi_r);
        self.sources().half_open_added(remote.ip());
        self.finish(Box::new(sa), Fate::Keep);
    }
}

/// SKEYSEED and the seven keys, oriented for our side.
pub(super) fn make_keys(
    suite: &super::proposal::IkeSuite,
    ni: &[u8],
    nr: &[u8],
    shared: &[u8],
    spi_i: u64,
    spi_r: u64,
    initiator: bool,
) -> SaKeys {
    let seed = skeyseed(suite.prf, ni, nr, shared);
    oriented_keys(suite, &seed, ni, nr, spi_i, spi_r, initiator)
}

/// SK_* from SKEYSEED (RFC 7296 2.14), oriented: `out`/`sk_p_ours` are the keys we use.
pub(super) fn oriented_keys(
    suite: &super::proposal::IkeSuite,
    seed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    initiator: bool,
) -> SaKeys {
    let integ_len = suite.integ.map_or(0, |i| i.key_len());
    let k = derive_ike_keys(
        suite.prf,
        seed,
        ni,
        nr,
        spi_i,
        spi_r,
        suite.encr.key_len(),
        integ_len,
    );
    let sk = |e: &crate::crypto::Secret, a: &crate::crypto::Secret| SkKeys {
        encr: suite.encr,
        integ: suite.integ,
        encr_key: e.clone(),
        integ_key: a.clone(),
    };
    let (i_keys, r_keys) = (sk(&k.sk_ei, &k.sk_ai), sk(&k.sk_er, &k.sk_ar));
    let (out, inb, ours, theirs) = if initiator {
        (i_keys, r_keys, k.sk_pi.clone(), k.sk_pr.clone())
    } else {
        (r_keys, i_keys, k.sk_pr.clone(), k.sk_pi.clone())
    };
    SaKeys {
        prf: suite.prf,
        sk_d: k.sk_d.clone(),
        out,
        inb,
        sk_p_ours: ours,
        sk_p_theirs: theirs,
    }
}
