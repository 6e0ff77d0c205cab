//! IKE_AUTH (RFC 7296 1.2, 2.15): identities, certificates, AUTH, the first CHILD_SA and the
//! configuration payload for a dynamic home address (RFC 4877 4.4).

use std::net::{IpAddr, Ipv6Addr};

use tracing::{info, warn};

use super::config::LocalAuth;
use super::endpoint::{Endpoint, Fate};
use super::found::{Found, error_notify};
use super::proposal::esp_to_wire;
use super::sa::{ChildRequest, IkeSa, State};
use super::{Event, HomeAddress};
use crate::auth::revocation::CertRef;
use crate::auth::{Identity, SignatureStyle};
use crate::crypto::ct_eq;
use crate::kernel::Mode;
use crate::mobility::SaClass;
use crate::wire::consts::*;
use crate::wire::{ConfigAttribute, ConfigPayload, Id, Notify, Payload};

/// The ID payload body as AUTH covers it: type, three reserved bytes, data.
fn id_body(id: &Id) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + id.data.len());
    v.push(id.id_type);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&id.data);
    v
}

/// The octets an AUTH payload signs (RFC 7296 2.15).
pub(super) fn signed_octets(
    prf: crate::crypto::PrfAlg,
    real_message: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id: &Id,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(real_message.len() + nonce.len() + 64);
    v.extend_from_slice(real_message);
    v.extend_from_slice(nonce);
    v.extend_from_slice(&prf.prf(sk_p, &id_body(id)));
    v
}

/// The octets the peer's AUTH signs: its IKE_SA_INIT message, our nonce and its ID payload
/// `id`; None before the handshake has keys.
pub(super) fn peer_signed_octets(sa: &IkeSa, id: &Id) -> Option<Vec<u8>> {
    let (hs, keys) = (sa.hs.as_ref()?, sa.keys.as_ref()?);
    let (message, nonce) = if sa.initiator {
        (&hs.init_response, &hs.ni)
    } else {
        (&hs.init_request, &hs.nr)
    };
    Some(signed_octets(
        keys.prf,
        message,
        nonce,
        &keys.sk_p_theirs,
        id,
    ))
}

/// Why a peer's AUTH was not accepted (`verify_peer_auth`).
pub(super) enum PeerAuthError {
    Refused(String),
    /// Only the revocation status is missing (`strict`, no CRL of the issuer yet) and the
    /// daemon is fetching it: the responder parks the IKE_AUTH until it arrives (`revoke`).
    AwaitCrl,
}

impl PeerAuthError {
    pub(super) fn reason(self) -> String {
        match self {
            PeerAuthError::Refused(r) => r,
            PeerAuthError::AwaitCrl => {
                "certificate status unknown (its CRL is being fetched)".into()
            }
        }
    }
}

impl From<String> for PeerAuthError {
    fn from(r: String) -> Self {
        PeerAuthError::Refused(r)
    }
}

impl From<&str> for PeerAuthError {
    fn from(r: &str) -> Self {
        PeerAuthError::Refused(r.into())
    }
}

/// Why a home agent's IKE_AUTH was not accepted.
pub(super) enum HomeAgentAuth {
    /// The handshake has no keys (an internal state error, not the peer's fault).
    NoKeys,
    /// The peer is not the home agent we expect; the reason goes to the log and the event.
    Refused(String),
    /// Only the certificate's revocation status is missing and a CRL download or an OCSP
    /// query is under way (`may_wait` was set): the mobile node parks the IKE_AUTH response.
    Await,
}

impl Endpoint {
    /// A mobile node's check of its home agent's IKE_AUTH, the same for our own initiations
    /// and for the home agent's reauthentication: the identity must be the one we expect
    /// (`want`), and its AUTH must verify. With certificates and no expected identity we refuse:
    /// any certificate of our CA would pass, another mobile node's too (the configuration
    /// refuses such a file; this keeps the engine safe on its own).
    pub(super) fn check_home_agent_auth(
        &mut self,
        sa: &IkeSa,
        a: &Found,
        want: Option<&Identity>,
        identity: &Identity,
        id: &Id,
        may_wait: bool,
    ) -> Result<Option<CertRef>, HomeAgentAuth> {
        let psk = match &self.cfg.auth {
            LocalAuth::Psk(k) => Some(k.clone()),
            LocalAuth::Certificate { .. } => None,
        };
        match want {
            Some(want) if !same_identity(want, identity) => {
                return Err(HomeAgentAuth::Refused(format!(
                    "home agent identified as {identity}, expected {want}"
                )));
            }
            None if psk.is_none() => {
                return Err(HomeAgentAuth::Refused(
                    "no home agent identity configured (home_agent_id): a certificate alone \
                     does not say who the home agent is"
                        .into(),
                ));
            }
            _ => {}
        }
        let octets = peer_signed_octets(sa, id).ok_or(HomeAgentAuth::NoKeys)?;
        self.verify_peer_auth(
            sa,
            a,
            identity,
            &octets,
            psk.as_deref().map(|v| v.as_slice()),
            may_wait,
        )
        .map_err(|e| match e {
            PeerAuthError::AwaitCrl => HomeAgentAuth::Await,
            e => HomeAgentAuth::Refused(format!("home agent AUTH: {}", e.reason())),
        })
    }

    /// Verifies the peer's AUTH. `psk` is the secret that applies to this peer, if any. With
    /// a certificate, its revocation status is checked too (see `revoke`; `may_wait`: the
    /// caller can park the exchange until a CRL being fetched arrives); what the IKE SA keeps
    /// of the certificate comes back.
    pub(super) fn verify_peer_auth(
        &mut self,
        sa: &IkeSa,
        a: &Found,
        id: &Identity,
        octets: &[u8],
        psk: Option<&[u8]>,
        may_wait: bool,
    ) -> Result<Option<CertRef>, PeerAuthError> {
        let (method, data) = a.auth.ok_or("no AUTH payload")?;
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        if method == AUTH_SHARED_KEY {
            let psk = psk.ok_or("peer used a pre-shared key, but none is configured for it")?;
            let expect = crate::auth::psk_auth(keys.prf, psk, octets);
            return if ct_eq(&expect, data) {
                Ok(None)
            } else {
                Err("pre-shared key AUTH does not verify".into())
            };
        }
        if psk.is_some() {
            return Err(format!(
                "peer used signature method {method}, but a pre-shared key is configured for it"
            )
            .into());
        }
        let trust = self
            .cfg
            .trust
            .clone()
            .ok_or("no CA configured for certificate authentication")?;
        let (ee, rest) = a.certs.split_first().ok_or("no certificate sent")?;
        let cert = trust
            .verify(ee, rest, self.now.unix)
            .map_err(|e| e.to_string())?;
        if !cert.matches_identity(id) {
            return Err(format!(
                "identity {id} is not bound to the certificate of {}",
                cert.subject()
            )
            .into());
        }
        crate::auth::verify(&cert, method, data, octets).map_err(|e| e.to_string())?;
        // Revocation last: only a peer that proved it holds the key learns (by our
        // AUTHENTICATION_FAILED) that we know its certificate is revoked.
        self.revocation_check(&cert, may_wait).map(Some)
    }

    /// Our AUTH payload (with CERT payloads for certificate authentication) over `octets`.
    pub(super) fn auth_payloads(
        &self,
        sa: &IkeSa,
        octets: &[u8],
        psk: Option<&[u8]>,
        peer_sig_hash: crate::auth::PeerHashes,
    ) -> Result<Vec<Payload>, String> {
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        if let Some(psk) = psk {
            let data = crate::auth::psk_auth(keys.prf, psk, octets);
            return Ok(vec![Payload::Auth {
                method: AUTH_SHARED_KEY,
                data,
            }]);
        }
        match &self.cfg.auth {
            LocalAuth::Psk(k) => {
                let data = crate::auth::psk_auth(keys.prf, k, octets);
                Ok(vec![Payload::Auth {
                    method: AUTH_SHARED_KEY,
                    data,
                }])
            }
            LocalAuth::Certificate { key, chain, style } => {
                let style =
                    if *style == SignatureStyle::DigitalSignature && peer_sig_hash.is_empty() {
                        SignatureStyle::Legacy
                    } else {
                        *style
                    };
                let (method, data) = crate::auth::sign_for(key, style, octets, peer_sig_hash)
                    .map_err(|e| e.to_string())?;
                let mut v: Vec<Payload> = chain
                    .iter()
                    .map(|c| Payload::Cert {
                        encoding: CERT_X509_SIGNATURE,
                        data: c.clone(),
                    })
                    .collect();
                v.push(Payload::Auth { method, data });
                Ok(v)
            }
        }
    }

    /// Our ID payload body (IDi as initiator, IDr as responder).
    pub(super) fn our_id(&self) -> Id {
        let (id_type, data) = self.cfg.identity.to_wire();
        Id { id_type, data }
    }

    /// Initiator: IKE_AUTH request with the first CHILD_SA of the plan.
    pub(super) fn start_auth(&mut self, sa: &mut IkeSa) -> Fate {
        let Some(plan) = sa.plan.clone() else {
            return Fate::Close("no plan".into());
        };
        let idi = self.our_id();
        let (Some(hs), Some(keys)) = (sa.hs.as_ref(), sa.keys.as_ref()) else {
            return Fate::Close("no keys".into());
        };
        let octets = signed_octets(keys.prf, &hs.init_request, &hs.nr, &keys.sk_p_ours, &idi);
        let peer_sig_hash = hs.peer_sig_hash;
        let mut payloads = vec![Payload::IdI(idi)];
        let auth = match self.auth_payloads(sa, &octets, None, peer_sig_hash) {
            Ok(a) => a,
            Err(e) => return Fate::Close(format!("cannot sign AUTH: {e}")),
        };
        // CERT payloads come before CERTREQ and IDr, AUTH after them (RFC 7296 1.2 order).
        let (certs, auth): (Vec<Payload>, Vec<Payload>) = auth
            .into_iter()
            .partition(|p| matches!(p, Payload::Cert { .. }));
        payloads.extend(certs);
        if let Some(t) = &self.cfg.trust {
            payloads.push(Payload::CertReq {
                encoding: CERT_X509_SIGNATURE,
                data: t.certreq_data(),
            });
        }
        if let Some(r) = &plan.remote_identity {
            let (t, d) = r.to_wire();
            payloads.push(Payload::IdR(Id {
                id_type: t,
                data: d,
            }));
        }
        payloads.extend(auth);
        // RFC 7296 2.4: our first IKE SA with this home agent (after a start or once every
        // other SA with it is gone): the home agent may drop what it still holds of us. Not
        // when we hold another (a move without the K bit, a reauthentication): that one keeps
        // carrying the BUs until this one replaces it.
        let remote = sa.remote.ip();
        if !self.is_home_agent()
            && self.cfg.mobility.initial_contact
            && !self
                .sas
                .values()
                .any(|o| o.keys.is_some() && o.remote.ip() == remote)
        {
            payloads.push(Payload::Notify(Notify::new(N_INITIAL_CONTACT, vec![])));
        }
        let mut cp_attrs = Vec::new();
        if plan.home_address == HomeAddress::Dynamic {
            cp_attrs.push(match plan.assigned_hoa {
                Some(a) => super::assign::hoa_attribute(a),
                None => ConfigAttribute {
                    attr_type: CFG_INTERNAL_IP6_ADDRESS,
                    value: vec![],
                },
            });
        }
        if self.cfg.mobility.request_home_prefix {
            cp_attrs.push(ConfigAttribute {
                attr_type: CFG_MIP6_HOME_PREFIX,
                value: vec![],
            });
        }
        if !cp_attrs.is_empty() {
            payloads.push(Payload::Cp(ConfigPayload {
                cfg_type: CFG_REQUEST,
                attributes: cp_attrs,
            }));
        }
        if let Some(&class) = plan.classes.first() {
            let Some(req) =
                self.child_request_for(sa, class, &plan.home_address, plan.home_agent, None)
            else {
                // The kernel gave no SPI: this attempt ends here; the daemon retries later.
                let reason = "no inbound SPI for the first CHILD_SA";
                self.stats.ike_failed += 1;
                self.push_event(Event::ExchangeFailed {
                    ike: sa.id(),
                    exchange: "IKE_AUTH",
                    notify: None,
                    reason: reason.into(),
                });
                return Fate::Close(reason.into());
            };
            if req.mode == Mode::Transport {
                payloads.push(Payload::Notify(Notify::new(N_USE_TRANSPORT_MODE, vec![])));
            }
            payloads.push(Payload::Sa(esp_to_wire(
                &self.cfg.esp_proposals,
                req.spi_in,
                false,
            )));
            payloads.push(Payload::TsI(req.ts_i.clone()));
            payloads.push(Payload::TsR(req.ts_r.clone()));
            if let Some(hs) = sa.hs.as_mut() {
                hs.first_child = Some(req);
            }
        }
        let data = self.seal(sa, IKE_AUTH, false, sa.next_msg_id, &payloads);
        self.send_request(sa, data, super::sa::Exchange::Auth);
        Fate::Keep
    }

    /// Selectors, mode and a fresh inbound SPI for a CHILD_SA of `class` (None: no SPI).
    pub(super) fn child_request_for(
        &mut self,
        sa: &IkeSa,
        class: SaClass,
        hoa: &HomeAddress,
        ha: Ipv6Addr,
        rekey_of: Option<u32>,
    ) -> Option<ChildRequest> {
        let (ts_i, ts_r) = match hoa {
            HomeAddress::Static(a) => class.selectors(*a, ha),
            HomeAddress::Dynamic => {
                // Any address: the home agent narrows TSi to the one it assigns.
                let (mut i, r) = class.selectors(Ipv6Addr::UNSPECIFIED, ha);
                for t in &mut i {
                    t.start_addr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                    t.end_addr = IpAddr::V6(Ipv6Addr::from(u128::MAX));
                }
                (i, r)
            }
        };
        let mut spi_req = self.spi_request(sa, Some(class), class.mode(), &ts_i, &ts_r);
        if rekey_of.is_none() {
            spi_req.acquire_seq = self.take_acquire_seq(class);
        }
        let spi_in = self.alloc_child_spi(sa, &spi_req)?;
        Some(ChildRequest {
            ke_retried: false,
            class: Some(class),
            mode: class.mode(),
            spi_in,
            ts_i,
            ts_r,
            rekey_of,
        })
    }

    /// Responder: IKE_AUTH request.
    pub(super) fn auth_request(
        &mut self,
        sa: &mut IkeSa,
        header: &crate::wire::Header,
        payloads: Vec<Payload>,
    ) -> Fate {
        let msg_id = header.message_id;
        if sa.state != State::InitReplied {
            let n = Payload::Notify(Notify::new(N_INVALID_SYNTAX, vec![]));
            let resp = self.seal(sa, IKE_AUTH, true, msg_id, &[n]);
            self.send_response(sa, msg_id, resp);
            return Fate::Keep;
        }
        let a = Found::new(&payloads);
        // What the peer asked for, for the operator (bounded by the message size).
        let requested = a.tsi.map(<[_]>::to_vec).unwrap_or_default();
        let fail = |me: &mut Self, sa: &mut IkeSa, identity: Option<Identity>, reason: String| {
            warn!(ike = %sa.id(), remote = %sa.remote, identity = ?identity.as_ref().map(|i| i.to_string()), %reason, "authentication failed");
            me.stats.auth_failures += 1;
            me.push_event(Event::AuthFailed {
                remote: sa.remote,
                identity,
                requested: requested.clone(),
                reason: reason.clone(),
            });
            let n = Payload::Notify(Notify::new(N_AUTHENTICATION_FAILED, vec![]));
            let resp = me.seal(sa, IKE_AUTH, true, msg_id, &[n]);
            me.send_response(sa, msg_id, resp);
            Fate::Close(format!("authentication failed: {reason}"))
        };
        let Some(idi) = a.id_i else {
            return fail(self, sa, None, "no IDi".into());
        };
        let identity = match Identity::from_wire(idi.id_type, &idi.data) {
            Ok(i) => i,
            Err(e) => return fail(self, sa, None, format!("bad IDi: {e}")),
        };
        let Some(ha) = &self.cfg.home_agent else {
            // A mobile node: its home agent reauthenticates (RFC 7296 2.8.3; only its address
            // got past IKE_SA_INIT).
            return self.auth_from_home_agent(sa, msg_id, &payloads, idi, identity);
        };
        let Some(user) = ha.users.lookup(&identity) else {
            return fail(
                self,
                sa,
                Some(identity.clone()),
                format!("no user file for identity {identity}"),
            );
        };
        let psk = match &user.auth {
            crate::mobility::UserAuth::Psk(k) => Some(k.clone()),
            crate::mobility::UserAuth::Certificate => None,
        };
        let Some(octets) = peer_signed_octets(sa, idi) else {
            return Fate::Close("no keys".into());
        };
        let may_wait = !sa.crl_waited;
        let cert = match self.verify_peer_auth(
            sa,
            &a,
            &identity,
            &octets,
            psk.as_deref().map(|v| v.as_slice()),
            may_wait,
        ) {
            Ok(c) => c,
            Err(PeerAuthError::AwaitCrl) => {
                return self.park_for_crl(sa, Some(*header), payloads, &identity);
            }
            Err(e) => return fail(self, sa, Some(identity), e.reason()),
        };
        // Authenticated: from here on the peer is `identity`, and only its user entry decides.
        info!(ike = %sa.id(), remote = %sa.remote, %identity, user = %user.name, "peer authenticated");
        if let Some(timeout) = self.address_provider
            && sa.provided.is_none()
            && let Some(req) = super::assign::CpRequest::parse(a.cp)
        {
            return self.park_auth(sa, header, &payloads, &identity, &user.name, req, timeout);
        }
        let ic = a.notify(N_INITIAL_CONTACT).is_some();
        if let Err(reason) = self.apply_uniqueness(sa, &identity, &user, ic) {
            return fail(self, sa, Some(identity), reason);
        }
        let idr = self.our_id();
        let (Some(hs), Some(keys)) = (sa.hs.as_ref(), sa.keys.as_ref()) else {
            return Fate::Close("no keys".into());
        };
        let our_octets = signed_octets(keys.prf, &hs.init_response, &hs.ni, &keys.sk_p_ours, &idr);
        let peer_sig_hash = hs.peer_sig_hash;
        let auth = match self.auth_payloads(
            sa,
            &our_octets,
            psk.as_deref().map(|v| v.as_slice()),
            peer_sig_hash,
        ) {
            Ok(x) => x,
            Err(e) => return Fate::Close(format!("cannot sign AUTH: {e}")),
        };
        sa.peer = Some(identity.clone());
        self.index_identity(sa.our_spi(), &identity);
        sa.peer_auth_method = a.auth.map_or(0, |(m, _)| m);
        sa.peer_cert = cert.map(Box::new);
        sa.user = Some(user);
        let (ni, nr) = {
            let hs = sa.hs.as_ref().expect("checked above");
            (hs.ni.clone(), hs.nr.clone())
        };
        let mut out = vec![Payload::IdR(idr)];
        out.extend(auth);
        self.complete_responder_auth(sa, msg_id, out, &a, a.cp, (&ni, &nr), identity);
        Fate::Keep
    }

    /// RFC 7296 2.4: the authenticated peer says it holds no other IKE SA with us (it
    /// restarted), so the IKE SAs of its identity here are stale: they go with their CHILD_SAs,
    /// without a Delete (nothing would answer it). Only the same identity's, never another
    /// user's. Done before this SA's CHILD_SA and leases exist, so that the identity's lease
    /// passes from the old SAs to this one. A mobile node re-establishing after a move without
    /// the K bit, or rekeying, sends no INITIAL_CONTACT (it still holds the old SA), so make
    /// before break holds there.
    pub(super) fn initial_contact(&mut self, sa: &IkeSa, identity: &Identity) {
        let stale = self.sas_of_identity(identity, sa.our_spi());
        for id in stale {
            if let Some(o) = self.sas.remove(&id) {
                info!(ike = %o.id(), new = %sa.id(), %identity, remote = %o.remote, children = o.children.len(),
                    "INITIAL_CONTACT: the peer restarted; its older IKE SA goes");
                self.destroy(o, "INITIAL_CONTACT from the same identity");
            }
        }
    }

    /// Responder, IKE_AUTH accepted (`out` holds IDr and AUTH): the SA is established, the
    /// first CHILD_SA accepted or refused by notify, the answer sent, IkeUp reported. Shared by
    /// a home agent's IKE_AUTH and a mobile node's answer to its home agent's reauthentication
    /// (which offers no CP).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn complete_responder_auth(
        &mut self,
        sa: &mut IkeSa,
        msg_id: u32,
        mut out: Vec<Payload>,
        a: &Found,
        cp: Option<&crate::wire::ConfigPayload>,
        (ni, nr): (&[u8], &[u8]),
        identity: Identity,
    ) {
        sa.state = State::Established;
        sa.expires_at = None;
        self.forget_half_open(sa);
        self.stats.ike_established += 1;
        if self.is_home_agent() && self.shard.1 > 1 {
            // The identity's leases stay bound while this shard holds an IKE SA of it, and
            // `uniqueness = keep` on other shards sees it (one shard looks at its own SAs).
            let (shard, id) = (self.shard.0, identity.to_string());
            self.lease_op(|t| t.hold(&id, shard));
        }
        if let (Some(props), Some(tsi), Some(tsr)) = (a.sa, a.tsi, a.tsr) {
            let transport = a.notify(N_USE_TRANSPORT_MODE).is_some();
            match self.accept_child(sa, props, tsi, tsr, transport, None, cp, None, false) {
                Ok(acc) => {
                    out.extend(acc.response_payloads());
                    self.install_child(sa, &acc, ni, nr, None, false);
                }
                Err(n) => out.push(Payload::Notify(Notify::new(n, vec![]))),
            }
        }
        let resp = self.seal(sa, IKE_AUTH, true, msg_id, &out);
        self.send_response(sa, msg_id, resp);
        sa.handshake_done();
        self.push_event(Event::IkeUp {
            ike: sa.id(),
            local: sa.local,
            remote: sa.remote,
            peer: identity,
        });
    }

    /// Initiator: IKE_AUTH response.
    pub(super) fn auth_response(&mut self, sa: &mut IkeSa, payloads: Vec<Payload>) -> Fate {
        let a = Found::new(&payloads);
        let failed = |me: &mut Self, sa: &IkeSa, notify: Option<u16>, reason: String| {
            warn!(ike = %sa.id(), remote = %sa.remote, notify = %super::found::NotifyLabel(notify), %reason, "IKE_AUTH failed");
            me.stats.ike_failed += 1;
            if notify == Some(N_AUTHENTICATION_FAILED) {
                me.stats.auth_failures += 1;
            }
            me.push_event(Event::ExchangeFailed {
                ike: sa.id(),
                exchange: "IKE_AUTH",
                notify,
                reason: reason.clone(),
            });
            Fate::Close(reason)
        };
        if a.auth.is_none() {
            let n = error_notify(&payloads);
            return failed(self, sa, n, "responder refused IKE_AUTH".into());
        }
        let Some(idr) = a.id_r else {
            return failed(self, sa, None, "no IDr".into());
        };
        let identity = match Identity::from_wire(idr.id_type, &idr.data) {
            Ok(i) => i,
            Err(e) => return failed(self, sa, None, format!("bad IDr: {e}")),
        };
        let want = sa.plan.as_ref().and_then(|p| p.remote_identity.clone());
        // Our own IKE_AUTH may wait once for the home agent's revocation status, as the home
        // agent's does for ours (`strict` and a CRL or OCSP answer on its way).
        let may_wait = !sa.crl_waited;
        let cert = match self.check_home_agent_auth(sa, &a, want.as_ref(), &identity, idr, may_wait)
        {
            Ok(c) => c,
            Err(HomeAgentAuth::NoKeys) => return Fate::Close("no keys".into()),
            Err(HomeAgentAuth::Await) => {
                return self.park_for_crl(sa, None, payloads, &identity);
            }
            Err(HomeAgentAuth::Refused(reason)) => {
                // The responder believes the SA is up: tell it (fire and forget) before
                // leaving.
                let (local, remote) = (sa.local, sa.remote);
                self.send_ike_delete_once(sa, local, remote);
                return failed(self, sa, Some(N_AUTHENTICATION_FAILED), reason);
            }
        };
        info!(ike = %sa.id(), remote = %sa.remote, %identity, suite = %sa.suite.map(|s| s.to_string()).unwrap_or_default(), "IKE SA established");
        sa.peer = Some(identity.clone());
        self.index_identity(sa.our_spi(), &identity);
        sa.peer_auth_method = a.auth.map_or(0, |(m, _)| m);
        sa.peer_cert = cert.map(Box::new);
        sa.state = State::Established;
        self.stats.ike_established += 1;
        self.push_event(Event::IkeUp {
            ike: sa.id(),
            local: sa.local,
            remote: sa.remote,
            peer: identity,
        });
        let hs = sa.hs.take().expect("checked above");
        sa.handshake_done();
        // Configuration reply: the home address the HA assigned and the home prefix.
        let reply = a.cp.filter(|cp| cp.cfg_type == CFG_REPLY);
        let assigned = reply.and_then(|cp| {
            cp.attributes.iter().find_map(|at| {
                (at.attr_type == CFG_INTERNAL_IP6_ADDRESS && at.value.len() == 17)
                    .then(|| {
                        at.value
                            .get(..16)
                            .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    })
                    .flatten()
                    .map(Ipv6Addr::from)
            })
        });
        let dynamic = sa.plan.as_ref().map(|p| p.home_address) == Some(HomeAddress::Dynamic);
        if let Some(addr) = assigned.filter(|_| dynamic) {
            let proposed = sa.plan.as_ref().and_then(|p| p.assigned_hoa);
            if a.notify(N_USE_ASSIGNED_HOA).is_some() {
                self.stats.use_assigned_hoa += 1;
                info!(ike = %sa.id(), ?proposed, assigned = %addr, "home agent refused our home address (USE_ASSIGNED_HoA)");
            }
            info!(ike = %sa.id(), home_address = %addr, "home agent assigned a home address");
            sa.home_address = Some(addr);
            if let Some(p) = sa.plan.as_mut() {
                p.assigned_hoa = Some(addr);
            }
            self.mn.set_assigned_hoa(sa.remote.ip(), addr);
            self.push_event(Event::HoaAssigned {
                ike: sa.id(),
                address: addr,
            });
        } else if let Some(HomeAddress::Static(a)) = sa.plan.as_ref().map(|p| p.home_address) {
            sa.home_address = Some(a);
        }
        if let Some((prefix, prefix_len, lifetime)) = reply.and_then(|cp| {
            cp.attributes.iter().find_map(|at| {
                (at.attr_type == CFG_MIP6_HOME_PREFIX)
                    .then(|| super::assign::parse_home_prefix(&at.value))
                    .flatten()
            })
        }) {
            info!(ike = %sa.id(), %prefix, prefix_len, lifetime, "home agent delegated a home prefix");
            sa.home_prefix = Some((prefix, prefix_len, lifetime));
            self.push_event(Event::PrefixAssigned {
                ike: sa.id(),
                prefix,
                prefix_len,
                lifetime,
            });
        }
        if let Some(req) = hs.first_child {
            self.finish_child_initiator(
                sa, &payloads, a.sa, a.tsi, a.tsr, req, &hs.ni, &hs.nr, None, None, "IKE_AUTH",
            );
        }
        if sa.home_address.is_none() {
            if let Some(HomeAddress::Dynamic) = sa.plan.as_ref().map(|p| p.home_address) {
                warn!(ike = %sa.id(), "asked for a dynamic home address but the home agent assigned none");
            }
        } else if let Some(plan) = &sa.plan {
            for &c in plan.classes.iter().skip(1) {
                sa.queue.push_back(super::sa::Intent::CreateChild(c));
            }
        }
        Fate::Keep
    }
}

/// Identity comparison that tolerates different DN encodings.
pub(super) fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Dn(x), Identity::Dn(y)) => crate::auth::identity::dn_equal(x, y),
        (Identity::Fqdn(x), Identity::Fqdn(y)) | (Identity::Email(x), Identity::Email(y)) => {
            x.eq_ignore_ascii_case(y)
        }
        _ => a == b,
    }
}
