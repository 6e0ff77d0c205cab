//! IKE SA rekeying with CREATE_CHILD_SA (RFC 7296 1.3.2, 2.18) in both roles, and simultaneous
//! rekeys (2.8.2). The new IKE SA inherits the peer's identity, the plan and the CHILD_SAs; the
//! old one only lives on until its Delete.

use tracing::{debug, info, warn};

use super::endpoint::{Endpoint, Fate};
use super::found::{Found, error_notify, nonce_ok, notify};
use super::proposal::{IkeSuite, accept_ike, ike_to_wire, select_ike_for_ke};
use super::sa::{Collision, Exchange, IkeSa, Intent, SaKeys, State};
use super::{Event, IkeId};
use crate::crypto::{DhGroup, DhPrivate, rekey_skeyseed};
use crate::wire::consts::*;
use crate::wire::{Notify, Payload, Proposal};

/// Keys of the new IKE SA: SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr), then the new
/// suite's prf+ over Ni | Nr | SPIi | SPIr with the new SPIs (RFC 7296 2.18; the old SA's PRF
/// makes SKEYSEED because the exchange belongs to the old SA).
#[allow(clippy::too_many_arguments)]
fn rekeyed_keys(
    old: &SaKeys,
    suite: &IkeSuite,
    shared: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    initiator: bool,
) -> SaKeys {
    let seed = rekey_skeyseed(old.prf, &old.sk_d, shared, ni, nr);
    super::init::oriented_keys(suite, &seed, ni, nr, spi_i, spi_r, initiator)
}

/// The peer's 8-byte IKE SPI from a proposal (never zero).
fn ike_spi(p: &Proposal) -> Option<u64> {
    let b = <[u8; 8]>::try_from(p.spi.as_slice()).ok()?;
    Some(u64::from_be_bytes(b)).filter(|s| *s != 0)
}

/// The lower of an exchange's two nonces (RFC 7296 2.8.2 compares the four nonces).
fn nonce_min(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.min(b).to_vec()
}

impl Endpoint {
    /// An IKE SPI for a successor SA: unique among ours and different from `old` (which is out
    /// of the map while it is being handled).
    fn new_successor_spi(&mut self, old: u64) -> u64 {
        loop {
            let spi = self.new_ike_spi();
            if spi != old {
                return spi;
            }
        }
    }

    /// Builds the successor of `old` (not yet in the map). With `take_children`, `old`'s
    /// CHILD_SAs, queued work and plan move over and `old` becomes `Rekeyed`.
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        old: &mut IkeSa,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        suite: IkeSuite,
        keys: SaKeys,
        take_children: bool,
    ) -> Box<IkeSa> {
        let now = self.now.at;
        let mut new = Box::new(IkeSa {
            suite: Some(suite),
            keys: Some(Box::new(keys)),
            peer: old.peer.clone(),
            user: old.user.clone(),
            home_address: old.home_address,
            peer_auth_method: old.peer_auth_method,
            // RFC 7383 2.3: the rekeyed IKE SA keeps what IKE_SA_INIT negotiated.
            fragmentation: old.fragmentation,
            // Still behind the same NAT: the successor's CHILD_SAs are UDP-encapsulated too.
            nat: old.nat,
            peer_cert: old.peer_cert.clone(),
            ..IkeSa::new(
                initiator,
                State::Established,
                spi_i,
                spi_r,
                old.local,
                old.remote,
                now,
            )
        });
        if take_children {
            self.move_children(old, &mut new);
        }
        if let Some(peer) = &new.peer {
            self.index_identity(new.our_spi(), &peer.clone());
        }
        new
    }

    /// Moves CHILD_SAs, queued work and the plan from `from` to `to`; `from` is left `Rekeyed`
    /// and expires if the peer never deletes it. The kernel is not touched.
    fn move_children(&mut self, from: &mut IkeSa, to: &mut IkeSa) {
        let owner = to.our_spi();
        for c in &from.children {
            self.child_spis.insert(c.spi_in, owner);
        }
        for c in std::mem::take(&mut from.children) {
            to.push_child(c);
        }
        to.state = State::Established;
        to.expires_at = None;
        // Queued work follows, except what only concerned the old SA.
        to.queue.extend(
            std::mem::take(&mut from.queue)
                .into_iter()
                .filter(|i| !matches!(i, Intent::Liveness | Intent::RekeyIke)),
        );
        if let Some(mut plan) = from.plan.take() {
            plan.ike_rekey_at = None;
            to.plan = Some(plan);
        }
        from.state = State::Rekeyed;
        from.expires_at = Some(self.now.at + self.cfg.timers.half_open_timeout);
    }

    /// Sends the Delete of an IKE SA that has been superseded (no CHILD_SAs any more); its
    /// answer closes it without IkeDown.
    fn delete_superseded(&mut self, sa: &mut IkeSa) {
        sa.state = State::Rekeyed;
        if sa.pending.is_some() {
            // The window is busy; the SA expires instead (or the peer deletes it).
            return;
        }
        let data = self.seal(
            sa,
            INFORMATIONAL,
            false,
            sa.next_msg_id,
            &[super::info::ike_delete()],
        );
        self.send_request(sa, data, Exchange::DeleteIke);
    }

    /// Initiator: CREATE_CHILD_SA with SA(IKE, our new SPI), Ni, KEi. `group` overrides the
    /// current suite's group (after INVALID_KE_PAYLOAD).
    pub(super) fn start_rekey_ike(&mut self, sa: &mut IkeSa, group: Option<DhGroup>) {
        let Some(group) = group.or(sa.suite.map(|s| s.dh)) else {
            return;
        };
        let (dh, public) = match DhPrivate::generate(group, self.rng.as_mut()) {
            Ok(x) => x,
            Err(e) => {
                warn!(ike = %sa.id(), "DH key generation failed: {e}");
                return;
            }
        };
        let spi = self.new_successor_spi(sa.our_spi());
        let ni = self.nonce();
        let payloads = [
            Payload::Sa(ike_to_wire(
                &self.cfg.ike_proposals,
                &spi.to_be_bytes(),
                Some(group),
            )),
            Payload::Nonce(ni.clone()),
            Payload::Ke {
                group: group.id(),
                data: public,
            },
        ];
        info!(ike = %sa.id(), group = group.id(), "rekeying the IKE SA");
        let data = self.seal(sa, CREATE_CHILD_SA, false, sa.next_msg_id, &payloads);
        self.send_request(
            sa,
            data,
            Exchange::RekeyIke {
                spi,
                ni,
                dh,
                collision: None,
            },
        );
    }

    /// Initiator: our IKE SA rekey failed; try again later (timed rekeys only).
    fn rekey_ike_failed(&mut self, sa: &mut IkeSa, notify: Option<u16>, reason: &str) -> Fate {
        warn!(ike = %sa.id(), notify = %super::found::NotifyLabel(notify), reason, "IKE SA rekey failed");
        self.push_event(Event::ExchangeFailed {
            ike: sa.id(),
            exchange: "CREATE_CHILD_SA",
            notify,
            reason: reason.to_string(),
        });
        let retry = self.now.at + self.cfg.timers.retransmit_timeout * 10;
        if let Some(plan) = sa.plan.as_mut() {
            plan.ike_rekey_at = Some(retry);
        }
        Fate::Keep
    }

    /// Initiator: the answer to our IKE SA rekey.
    pub(super) fn rekey_ike_response(
        &mut self,
        sa: &mut IkeSa,
        payloads: Vec<Payload>,
        spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        collision: Option<Collision>,
    ) -> Fate {
        let sent_group = dh.group();
        if let Some(n) = notify(&payloads, N_INVALID_KE_PAYLOAD) {
            let wanted = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .and_then(DhGroup::from_id)
                .filter(|g| self.cfg.ike_proposals.iter().any(|p| p.dh.contains(g)));
            return match wanted {
                Some(g) if g != sent_group && sa.state == State::Established => {
                    info!(ike = %sa.id(), group = g.id(), "peer wants another DH group for the IKE rekey; retrying");
                    self.start_rekey_ike(sa, Some(g));
                    Fate::Keep
                }
                _ => self.rekey_ike_failed(
                    sa,
                    Some(N_INVALID_KE_PAYLOAD),
                    "peer wants a DH group we do not offer",
                ),
            };
        }
        if let Some(n) = error_notify(&payloads) {
            return self.rekey_ike_failed(sa, Some(n), "peer refused the IKE SA rekey");
        }
        let f = Found::new(&payloads);
        let (Some(answer), Some(nr), Some((ke_group, ke))) = (f.sa, f.nonce, f.ke) else {
            return self.rekey_ike_failed(
                sa,
                Some(N_INVALID_SYNTAX),
                "IKE rekey answer lacks SA, Nonce or KE",
            );
        };
        let suite = accept_ike(&self.cfg.ike_proposals, answer);
        let peer_spi = answer.first().and_then(ike_spi);
        let (Some(suite), Some(peer_spi)) = (suite, peer_spi) else {
            return self.rekey_ike_failed(
                sa,
                Some(N_NO_PROPOSAL_CHOSEN),
                "peer chose an IKE proposal we did not offer",
            );
        };
        if suite.dh != sent_group || ke_group != sent_group.id() || !nonce_ok(nr) {
            return self.rekey_ike_failed(
                sa,
                Some(N_INVALID_SYNTAX),
                "inconsistent IKE rekey answer",
            );
        }
        let Ok(shared) = dh.agree(ke) else {
            return self.rekey_ike_failed(sa, Some(N_INVALID_SYNTAX), "invalid KE value");
        };
        let Some(old_keys) = sa.keys.as_deref() else {
            return Fate::Close("no keys".into());
        };
        let keys = rekeyed_keys(old_keys, &suite, &shared, &ni, nr, spi, peer_spi, true);
        let old_id = sa.id();
        match collision {
            None => {
                let new = self.successor(sa, true, spi, peer_spi, suite, keys, true);
                self.announce(old_id, &new);
                self.finish(new, Fate::Keep);
                self.delete_superseded(sa);
            }
            Some(c) => {
                // RFC 7296 2.8.2: the SA made with the lowest of the four nonces is redundant;
                // whoever started that exchange deletes it, the winner's starter deletes the old
                // SA. The CHILD_SAs stayed on the old SA until now.
                let mut ours = self.successor(sa, true, spi, peer_spi, suite, keys, false);
                let theirs = self.sas.remove(&c.new);
                if nonce_min(&ni, nr) < c.nonce_min
                    && let Some(mut theirs) = theirs
                {
                    info!(ike = %sa.id(), "simultaneous IKE rekey: ours lost, deleting it");
                    self.move_children(sa, &mut theirs);
                    self.announce(old_id, &theirs);
                    self.finish(theirs, Fate::Keep);
                    self.delete_superseded(&mut ours);
                    self.finish(ours, Fate::Keep);
                    // The peer deletes the old SA.
                } else {
                    // Ours won (or the peer already deleted its SA, which then lost).
                    info!(ike = %sa.id(), "simultaneous IKE rekey: ours won");
                    if let Some(mut theirs) = theirs {
                        theirs.state = State::Rekeyed;
                        theirs.expires_at = Some(self.now.at + self.cfg.timers.half_open_timeout);
                        self.finish(theirs, Fate::Keep);
                    }
                    self.move_children(sa, &mut ours);
                    self.announce(old_id, &ours);
                    self.finish(ours, Fate::Keep);
                    self.delete_superseded(sa);
                }
            }
        }
        Fate::Keep
    }

    /// An old SA whose own rekey crossed the peer's is going away (the peer deleted it after
    /// its rekey won) before our answer arrived: its CHILD_SAs go to the SA the peer's rekey
    /// made instead of being removed.
    pub(super) fn rescue_children(&mut self, sa: &mut IkeSa) {
        let Some(p) = &sa.pending else { return };
        let Exchange::RekeyIke {
            collision: Some(c), ..
        } = &p.exchange
        else {
            return;
        };
        if sa.children.is_empty() {
            return;
        }
        let Some(mut theirs) = self.sas.remove(&c.new) else {
            return;
        };
        self.move_children(sa, &mut theirs);
        self.announce(sa.id(), &theirs);
        self.finish(theirs, Fate::Keep);
    }

    fn announce(&mut self, old: IkeId, new: &IkeSa) {
        info!(old = %old, new = %new.id(), initiator = new.initiator, children = new.children.len(), "IKE SA rekeyed");
        self.push_event(Event::IkeRekeyed { old, new: new.id() });
    }

    /// Responder: CREATE_CHILD_SA with SA(IKE), Ni, KEi on an established SA.
    pub(super) fn rekey_ike_request(
        &mut self,
        sa: &mut IkeSa,
        msg_id: u32,
        props: &[Proposal],
        ni: &[u8],
        ke: Option<(u16, &[u8])>,
    ) -> Fate {
        let respond_err = |me: &mut Self, sa: &mut IkeSa, n: u16, data: Vec<u8>| {
            let p = Payload::Notify(Notify::new(n, data));
            let resp = me.seal(sa, CREATE_CHILD_SA, true, msg_id, &[p]);
            me.send_response(sa, msg_id, resp);
            Fate::Keep
        };
        // A CHILD_SA exchange of ours is under way on this SA: its result would land on the
        // old SA. Let the peer try again later (RFC 7296 2.25).
        if let Some(p) = &sa.pending
            && !matches!(
                p.exchange,
                Exchange::RekeyIke { .. } | Exchange::Liveness | Exchange::DeleteChild { .. }
            )
        {
            debug!(ike = %sa.id(), "IKE rekey request while our own exchange is pending");
            return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
        }
        let Some((ke_group, ke_data)) = ke else {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        };
        // Prefer a proposal that fits the KE the peer sent; otherwise tell it our group.
        let (mut answer, suite) = match select_ike_for_ke(
            &self.cfg.ike_proposals,
            props,
            ke_group,
            self.cfg.prefer,
        ) {
            Ok(x) => x,
            Err(Some(s)) => {
                info!(ike = %sa.id(), got = ke_group, want = s.dh.id(), "IKE rekey with another KE group: INVALID_KE_PAYLOAD");
                self.stats.invalid_ke_sent += 1;
                return respond_err(
                    self,
                    sa,
                    N_INVALID_KE_PAYLOAD,
                    s.dh.id().to_be_bytes().to_vec(),
                );
            }
            Err(None) => {
                info!(ike = %sa.id(), "no acceptable IKE proposal for the rekey");
                return respond_err(self, sa, N_NO_PROPOSAL_CHOSEN, vec![]);
            }
        };
        let Some(peer_spi) = ike_spi(&answer) else {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        };
        let Ok((dh, public)) = DhPrivate::generate(suite.dh, self.rng.as_mut()) else {
            return respond_err(self, sa, N_TEMPORARY_FAILURE, vec![]);
        };
        let Ok(shared) = dh.agree(ke_data) else {
            return respond_err(self, sa, N_INVALID_SYNTAX, vec![]);
        };
        let Some(old_keys) = sa.keys.as_deref() else {
            return Fate::Close("no keys".into());
        };
        let our_spi = self.new_successor_spi(sa.our_spi());
        let nr = self.nonce();
        let keys = rekeyed_keys(old_keys, &suite, &shared, ni, &nr, peer_spi, our_spi, false);
        answer.spi = our_spi.to_be_bytes().to_vec();
        let out = [
            Payload::Sa(vec![answer]),
            Payload::Nonce(nr.clone()),
            Payload::Ke {
                group: suite.dh.id(),
                data: public,
            },
        ];
        let resp = self.seal(sa, CREATE_CHILD_SA, true, msg_id, &out);
        self.send_response(sa, msg_id, resp);
        let id = sa.id();
        if let Some(p) = sa.pending.as_mut()
            && let Exchange::RekeyIke { collision, .. } = &mut p.exchange
        {
            // Both sides rekey at once: remember the peer's exchange; our own answer decides
            // which new SA survives. Until then the CHILD_SAs stay on the old SA (which takes
            // no new work), so no Delete of either new SA, in any order, can remove them.
            info!(ike = %id, "simultaneous IKE SA rekey");
            *collision = Some(Collision {
                new: our_spi,
                nonce_min: nonce_min(ni, &nr),
            });
            let mut new = self.successor(sa, false, peer_spi, our_spi, suite, keys, false);
            // Not ours to report until it wins: if the peer deletes it, no IkeDown.
            new.state = State::Rekeyed;
            new.expires_at = Some(self.now.at + self.cfg.timers.half_open_timeout);
            sa.state = State::Rekeyed;
            self.finish(new, Fate::Keep);
            return Fate::Keep;
        }
        let old_id = sa.id();
        let new = self.successor(sa, false, peer_spi, our_spi, suite, keys, true);
        self.announce(old_id, &new);
        self.finish(new, Fate::Keep);
        Fate::Keep
    }
}
