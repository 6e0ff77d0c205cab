//! Mobile node as responder: its home agent reauthenticates (RFC 7296 2.8.3: either side may
//! start a new IKE SA from scratch, re-create the CHILD_SAs in it and delete the old one).
//!
//! Only the home agent's address gets past IKE_SA_INIT (see `init`); here it must prove the
//! identity the mobile node expects of it (`home_agent_id`, the CA, or the PSK, exactly as when
//! the mobile node initiates). The new IKE SA takes over the plan (home address, classes,
//! timed rekeys, what a move without the K bit re-establishes), and the old IKE SAs to that home
//! agent become superseded: their CHILD_SAs stay until the home agent deletes them (or the
//! superseded SA expires), and the home agent re-creates them in the new IKE SA, where the
//! mobile node accepts them only for its own home address and classes (`child`).

use tracing::{info, warn};

use super::auth::{HomeAgentAuth, same_identity, signed_octets};
use super::endpoint::{Endpoint, Fate};
use super::found::Found;
use super::sa::{IkeSa, State};
use super::{Event, HomeAddress};
use crate::auth::Identity;
use crate::wire::consts::*;
use crate::wire::{Id, Notify, Payload};

impl Endpoint {
    /// IKE_AUTH from our home agent (`sa` is a responder SA that passed IKE_SA_INIT).
    pub(super) fn auth_from_home_agent(
        &mut self,
        sa: &mut IkeSa,
        msg_id: u32,
        payloads: &[Payload],
        idi: &Id,
        identity: Identity,
    ) -> Fate {
        let a = Found::new(payloads);
        let fail = |me: &mut Self, sa: &mut IkeSa, reason: String| {
            warn!(ike = %sa.id(), remote = %sa.remote, %identity, %reason, "home agent reauthentication refused");
            me.stats.auth_failures += 1;
            me.push_event(Event::AuthFailed {
                remote: sa.remote,
                identity: Some(identity.clone()),
                requested: a.tsi.map(<[_]>::to_vec).unwrap_or_default(),
                reason: reason.clone(),
            });
            let n = Payload::Notify(Notify::new(N_AUTHENTICATION_FAILED, vec![]));
            let resp = me.seal(sa, IKE_AUTH, true, msg_id, &[n]);
            me.send_response(sa, msg_id, resp);
            Fate::Close(format!("authentication failed: {reason}"))
        };
        let Some(record) = self.mn.home_agent(sa.remote.ip()).cloned() else {
            return fail(self, sa, "not from a home agent we know".into());
        };
        let cert = match self.check_home_agent_auth(
            sa,
            &a,
            record.plan.remote_identity.as_ref(),
            &identity,
            idi,
            false,
        ) {
            Ok(c) => c,
            Err(HomeAgentAuth::NoKeys) => return Fate::Close("no keys".into()),
            Err(HomeAgentAuth::Refused(reason)) => return fail(self, sa, reason),
            // Not asked to wait (`false` above): a reauthentication decides with what it has.
            Err(HomeAgentAuth::Await) => {
                return fail(self, sa, "home agent certificate status unknown".into());
            }
        };
        // Authenticated: from here on the peer is our home agent.
        let idr = self.our_id();
        let (Some(hs), Some(keys)) = (sa.hs.as_ref(), sa.keys.as_ref()) else {
            return Fate::Close("no keys".into());
        };
        let our_octets = signed_octets(keys.prf, &hs.init_response, &hs.ni, &keys.sk_p_ours, &idr);
        let (ni, nr, peer_sig_hash) = (hs.ni.clone(), hs.nr.clone(), hs.peer_sig_hash);
        let auth = match self.auth_payloads(sa, &our_octets, None, peer_sig_hash) {
            Ok(x) => x,
            Err(e) => return Fate::Close(format!("cannot sign AUTH: {e}")),
        };
        let replaced = self.superseded_by_reauth(sa, &identity);
        // The home address: the one the old IKE SA had (a dynamic one included), else the
        // plan's.
        let hoa = replaced
            .iter()
            .find_map(|id| self.sas.get(id).and_then(|o| o.home_address))
            .or(match record.plan.home_address {
                HomeAddress::Static(h) => Some(h),
                HomeAddress::Dynamic => record.plan.assigned_hoa,
            });
        info!(ike = %sa.id(), remote = %sa.remote, %identity, home_address = ?hoa,
              replaces = ?replaced.iter().map(|i| super::IkeId(*i).to_string()).collect::<Vec<_>>(),
              "home agent reauthenticated: new IKE SA");
        sa.peer = Some(identity.clone());
        self.index_identity(sa.our_spi(), &identity);
        sa.peer_auth_method = a.auth.map_or(0, |(m, _)| m);
        sa.peer_cert = cert.map(Box::new);
        sa.home_address = hoa;
        sa.plan = Some(Box::new(record.plan));
        let mut out = vec![Payload::IdR(idr)];
        out.extend(auth);
        self.complete_responder_auth(sa, msg_id, out, &a, None, (&ni, &nr), identity);
        let new = sa.id();
        for old in replaced {
            self.supersede(old, new);
        }
        Fate::Keep
    }

    /// The established IKE SAs with the same home agent (address and identity) that a
    /// reauthentication replaces.
    fn superseded_by_reauth(&self, sa: &IkeSa, identity: &Identity) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, o)| {
                o.state == State::Established
                    && o.remote.ip() == sa.remote.ip()
                    && o.peer.as_ref().is_some_and(|p| same_identity(p, identity))
            })
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }

    /// `old` is replaced by `new`: it gives up its plan (so it neither rekeys nor restarts
    /// after a move) and takes no new work; its CHILD_SAs stay until the home agent deletes
    /// it, or it expires. Reported like a rekey: `old` goes without an IkeDown.
    fn supersede(&mut self, old: u64, new: super::IkeId) {
        let Some(mut o) = self.sas.remove(&old) else {
            return;
        };
        o.plan = None;
        o.state = State::Rekeyed;
        o.expires_at = Some(self.now.at + self.cfg.timers.half_open_timeout);
        info!(old = %o.id(), %new, children = o.children.len(), "IKE SA superseded by the home agent's reauthentication");
        self.push_event(Event::IkeRekeyed { old: o.id(), new });
        self.finish(o, Fate::Keep);
    }
}
