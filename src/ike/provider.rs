//! Home agent with an external address provider (reference 003, section 6.3: the mobility
//! daemon owns home address and prefix allocation). The engine stays synchronous: an
//! authenticated IKE_AUTH whose CP(CFG_REQUEST) asks for an address or prefix is parked (no
//! response yet, the message ID already consumed, so retransmissions are dropped) and
//! [`Event::AddressWanted`] goes out. The daemon asks the provider and answers with
//! [`Command::ProvideAddress`](super::Command::ProvideAddress); the parked request is then
//! processed again from the start (AUTH verified again) with the provider's answer taking the
//! place of our pools. The daemon answers with an empty answer when the provider says
//! nothing within the provider timeout (our own pools decide, as without a provider); if even
//! that answer never comes, the SA's own timer resumes it the same way a second later.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tracing::info;

use super::assign::CpRequest;
use super::endpoint::{Endpoint, Fate};
use super::sa::IkeSa;
use super::{Event, ProvidedAddress};
use crate::auth::Identity;
use crate::wire::{Header, Payload};

/// How long after the provider timeout the engine resumes on its own.
const BACKSTOP: Duration = Duration::from_secs(1);

/// An IKE_AUTH request waiting for the provider.
pub(crate) struct Parked {
    /// The request's header; None: a mobile node's parked IKE_AUTH *response* (`revoke`).
    pub header: Option<Header>,
    pub payloads: Vec<Payload>,
    /// The half-open deadline to restore when the request resumes.
    pub half_open_expiry: Option<Instant>,
}

impl Endpoint {
    /// Parks `sa`'s IKE_AUTH request until the daemon answers; the SA's timer resumes it if no
    /// answer comes at all.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn park_auth(
        &mut self,
        sa: &mut IkeSa,
        header: &Header,
        payloads: &[Payload],
        identity: &Identity,
        user: &str,
        req: CpRequest,
        timeout: Duration,
    ) -> Fate {
        info!(ike = %sa.id(), %identity, user, "asking the address provider");
        sa.parked = Some(Box::new(Parked {
            header: Some(*header),
            payloads: payloads.to_vec(),
            half_open_expiry: sa.expires_at,
        }));
        // The daemon answers (or gives up) after `timeout`; this timer is only the backstop
        // for an answer that never comes (lost event), so it fires a little later.
        sa.expires_at = Some(self.now.at + timeout + BACKSTOP);
        self.push_event(Event::AddressWanted {
            ike: sa.id(),
            identity: identity.clone(),
            user: user.to_string(),
            wants_address: req.hoa.is_some(),
            wants_prefix: req.prefix,
            requested: req.hoa.flatten(),
        });
        Fate::Keep
    }

    /// Processes a parked IKE_AUTH with the provider's answer (empty: none came).
    pub(super) fn resume_auth(&mut self, sa: &mut IkeSa, answer: ProvidedAddress) -> Fate {
        let Some(p) = sa.parked.take() else {
            return Fate::Keep;
        };
        if answer.address.is_none() && answer.prefix.is_none() {
            info!(ike = %sa.id(), "no address from the provider; using our own pools");
        }
        sa.provided = Some(Box::new(answer));
        sa.expires_at = p.half_open_expiry;
        let Some(header) = p.header else {
            return Fate::Keep;
        };
        self.auth_request(sa, &header, p.payloads)
    }
}

/// The provider's home address, if it gave one.
pub(super) fn provided_hoa(sa: &IkeSa) -> Option<Ipv6Addr> {
    sa.provided.as_ref().and_then(|p| p.address)
}

/// The provider's prefix (prefix, length, lifetime), if it gave one.
pub(super) fn provided_prefix(sa: &IkeSa) -> Option<(Ipv6Addr, u8, u32)> {
    let p = sa.provided.as_ref()?;
    p.prefix.map(|(a, l)| (a, l, p.prefix_lifetime))
}
