//! ESP-aware liveness (as strongSwan's DPD, which looks at the kernel's SA use first): a
//! liveness check is an INFORMATIONAL after `liveness_interval` without a sign of life, and
//! inbound ESP is one. The engine does no I/O, so before a check is due it asks the daemon what
//! the kernel counted on the IKE SA's inbound SAs (`poll_sa_use_query`), and the daemon answers
//! (`handle_sa_use`). Packets that arrived since the last look put the check off by another
//! interval; none (or no answer within `USE_ANSWER_WAIT`) and the INFORMATIONAL goes. Only
//! authenticated input counts: IKE messages after their ICV verified (`last_heard`), ESP the
//! kernel counted after its ICV verified. A forger keeps nothing alive.

use std::net::IpAddr;
use std::time::Duration;

use tracing::debug;

use super::endpoint::{Endpoint, Fate};
use super::sa::{IkeSa, Intent, State};
use super::{IkeId, Now};
use crate::kernel::SaCounters;

/// How long the engine waits for the daemon's answer before it checks over IKE anyway.
pub const USE_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// The engine asks what the kernel counted on these inbound SAs (destination, SPI) of IKE SA
/// `ike`; the daemon answers with [`Endpoint::handle_sa_use`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaUseQuery {
    pub ike: IkeId,
    pub sas: Vec<(IpAddr, u32)>,
}

impl Endpoint {
    /// Turns the kernel questions on (the daemon, which answers them) or off (the default:
    /// liveness counts IKE messages only).
    pub fn set_esp_liveness(&mut self, on: bool) {
        self.esp_liveness = on;
    }

    /// The next question for the kernel, if any.
    pub fn poll_sa_use_query(&mut self) -> Option<SaUseQuery> {
        self.use_queries.pop_front()
    }

    /// The kernel's answer to a [`SaUseQuery`]: `counters[i]` for `query.sas[i]` (None: the
    /// kernel holds no such SA). An answer nobody asked for, or for other SAs, changes nothing.
    pub fn handle_sa_use(&mut self, now: Now, query: &SaUseQuery, counters: &[Option<SaCounters>]) {
        self.now = now;
        let Some(mut sa) = self.sas.remove(&query.ike.0) else {
            return;
        };
        if sa.use_asked.take().is_none() || sa.state != State::Established {
            return self.finish(sa, Fate::Keep);
        }
        let mut grew = false;
        for (&(dst, spi), c) in query.sas.iter().zip(counters) {
            let Some(c) = c else { continue };
            if let Some(child) = sa
                .children
                .iter_mut()
                .find(|ch| ch.spi_in == spi && ch.outer_local == dst)
            {
                // Only growth is traffic: an SA put back by a resync starts from zero.
                grew |= c.packets > child.in_packets;
                child.in_packets = c.packets;
            }
        }
        if grew {
            debug!(ike = %sa.id(), "inbound ESP since the last look: no liveness check needed");
            sa.esp_heard = Some(self.now.at);
        } else {
            queue_liveness(&mut sa);
        }
        self.finish(sa, Fate::Keep);
    }

    /// A liveness check of `sa` is due (no sign of life for `liveness_interval`): ask the
    /// kernel first when we may, else (or when the question went unanswered) check over IKE.
    pub(super) fn liveness_due(&mut self, sa: &mut IkeSa) {
        if sa.queue.iter().any(|i| matches!(i, Intent::Liveness)) {
            return;
        }
        match sa.use_asked {
            None if self.esp_liveness && !sa.children.is_empty() => {
                sa.use_asked = Some(self.now.at);
                self.use_queries.push_back(SaUseQuery {
                    ike: sa.id(),
                    sas: sa
                        .children
                        .iter()
                        .map(|c| (c.outer_local, c.spi_in))
                        .collect(),
                });
            }
            Some(at) if at + USE_ANSWER_WAIT > self.now.at => {}
            _ => {
                sa.use_asked = None;
                queue_liveness(sa);
            }
        }
    }
}

fn queue_liveness(sa: &mut IkeSa) {
    if !sa.queue.iter().any(|i| matches!(i, Intent::Liveness)) {
        sa.queue.push_back(Intent::Liveness);
    }
}
