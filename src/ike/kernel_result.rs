//! What the kernel said to an operation the engine asked for. The engine's operations are
//! fire-and-forget (the daemon carries them out after the engine returns), so a refusal comes
//! back here: a CHILD_SA whose SA the kernel refused (NEWSA, or the re-add of a move) does not
//! exist, whatever the IKE exchange said. It is taken out of the record (its other SA deleted),
//! its ChildUp withdrawn when it has not been reported yet, and the peer, which installed its
//! half, is sent a Delete.

use tracing::{debug, warn};

use super::endpoint::{Endpoint, Fate};
use super::sa::{Intent, State};
use super::{Event, Now};
use crate::kernel::KernelOp;

impl Endpoint {
    /// The outcome of `op`, which this endpoint emitted. `Ok` needs nothing; a refused SA
    /// install or move takes its CHILD_SA down (see the module documentation). A refused
    /// delete is only logged: there is nothing left to undo.
    pub fn handle_kernel_result(&mut self, now: Now, op: &KernelOp, result: Result<(), String>) {
        self.now = now;
        let Err(error) = result else { return };
        let (spi, dst) = match op {
            KernelOp::AddSa(spec) => (spec.spi, spec.dst),
            KernelOp::UpdateSaAddrs { spi, dst, .. } | KernelOp::UpdateSaEncap { spi, dst, .. } => {
                (*spi, *dst)
            }
            KernelOp::DelSa { dst, spi } => {
                return debug!(%dst, spi = format_args!("{spi:08x}"), "kernel refused a delete: {error}");
            }
        };
        // The SA is one direction of a CHILD_SA: inbound (our SPI, at our address) or
        // outbound (the peer's SPI, at the peer's).
        let owner = self.sas.iter().find_map(|(id, sa)| {
            sa.children
                .iter()
                .find(|c| {
                    (c.spi_in == spi && c.outer_local == dst)
                        || (c.spi_out == spi && c.outer_remote == dst)
                })
                .map(|c| (*id, c.spi_in))
        });
        let Some((id, spi_in)) = owner else {
            // Its CHILD_SA is gone already (the other direction failed first, or a delete).
            return debug!(%dst, spi = format_args!("{spi:08x}"), "kernel refused an SA of no CHILD_SA: {error}");
        };
        let Some(mut sa) = self.sas.remove(&id) else {
            return;
        };
        let Some(i) = sa.child_by_in(spi_in) else {
            return self.finish(sa, Fate::Keep);
        };
        let c = sa.take_child(i);
        self.forget_child(&c);
        let reason = format!("kernel refused the SA {spi:08x} to {dst}: {error}");
        warn!(ike = %sa.id(), spi_in = format_args!("{:08x}", c.spi_in),
            spi_out = format_args!("{:08x}", c.spi_out), %reason, "CHILD_SA removed");
        // Both directions: the one that went in must not stay without its CHILD_SA.
        self.kernel_ops.push_back(KernelOp::DelSa {
            dst: c.outer_local,
            spi: c.spi_in,
        });
        self.kernel_ops.push_back(KernelOp::DelSa {
            dst: c.outer_remote,
            spi: c.spi_out,
        });
        let before = self.events.len();
        self.events.retain(
            |e| !matches!(e, Event::ChildUp(info) if info.ike == sa.id() && info.spi_in == spi_in),
        );
        if self.events.len() < before {
            // Not reported yet: to the outside it never came up.
            self.stats.children_established = self.stats.children_established.saturating_sub(1);
            self.push_event(Event::ExchangeFailed {
                ike: sa.id(),
                exchange: "kernel",
                notify: None,
                reason,
            });
        } else {
            self.push_event(Event::ChildDown {
                ike: sa.id(),
                spi_in: c.spi_in,
                spi_out: c.spi_out,
                reason,
            });
        }
        if sa.state == State::Established {
            // The peer has its half: a Delete for our inbound SPI (start_delete_child finds no
            // CHILD_SA any more and only releases the SPI, which stays reserved until then).
            sa.queue.push_back(Intent::DeleteChild(spi_in));
        } else {
            self.child_spis.remove(&spi_in);
        }
        self.finish(sa, Fate::Keep);
    }
}
