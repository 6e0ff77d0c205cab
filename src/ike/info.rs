//! INFORMATIONAL exchanges (RFC 7296 1.4, 1.5): Delete of CHILD_SAs and the IKE SA, liveness.

use tracing::{debug, info};

use super::endpoint::{Endpoint, Fate};
use super::sa::{Exchange, IkeSa};
use crate::wire::consts::*;
use crate::wire::{Delete, Header, Payload};

/// The Delete payload of an IKE SA itself (RFC 7296 3.11: no SPIs).
pub(super) fn ike_delete() -> Payload {
    Payload::Delete(Delete {
        protocol_id: PROTO_IKE,
        spi_size: 0,
        spis: vec![],
    })
}

impl Endpoint {
    /// Sends `sa`'s Delete once, from `local` to `remote`, without waiting for the answer: the
    /// SA goes anyway (shutdown, a move without key mobility, a peer that failed AUTH).
    pub(super) fn send_ike_delete_once(
        &mut self,
        sa: &IkeSa,
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    ) {
        let Some(keys) = &sa.keys else {
            return;
        };
        // With a request in flight (a liveness check, say) the peer has either seen it, then it
        // answers `next_msg_id` from its cache and wants the one after, or lost it: send the
        // Delete under both IDs.
        let ids = if sa.pending.is_some() {
            vec![sa.next_msg_id, sa.next_msg_id.wrapping_add(1)]
        } else {
            vec![sa.next_msg_id]
        };
        for id in ids {
            let hdr = self.header(sa, INFORMATIONAL, false, id);
            let data = super::protect::seal(&keys.out, self.rng.as_mut(), hdr, &[ike_delete()]);
            self.transmits.push_back(super::Transmit {
                local,
                remote,
                data,
            });
        }
    }

    /// Deletes one CHILD_SA: our inbound SA goes first (we stop accepting), the Delete tells the
    /// peer to remove its pair. `spi_in` may name an SA the peer installed but we never did (a
    /// CHILD_SA we refused after the fact).
    pub(super) fn start_delete_child(&mut self, sa: &mut IkeSa, spi_in: u32) {
        let mut spi_out = None;
        if let Some(i) = sa.child_by_in(spi_in) {
            let c = sa.take_child(i);
            spi_out = Some(c.spi_out);
            self.remove_child_kernel(sa, &c, "deleted");
        } else {
            self.release_child_spi(spi_in);
        }
        let del = Payload::Delete(Delete {
            protocol_id: PROTO_ESP,
            spi_size: 4,
            spis: vec![spi_in.to_be_bytes().to_vec()],
        });
        let data = self.seal(sa, INFORMATIONAL, false, sa.next_msg_id, &[del]);
        self.send_request(sa, data, Exchange::DeleteChild { spi_in, spi_out });
    }

    pub(super) fn delete_child_response(
        &mut self,
        sa: &mut IkeSa,
        spi_in: u32,
        payloads: &[Payload],
    ) {
        debug!(ike = %sa.id(), spi_in = format_args!("{spi_in:08x}"), answered = payloads.len(), "CHILD_SA delete acknowledged");
    }

    /// Responder: an INFORMATIONAL request.
    pub(super) fn info_request(
        &mut self,
        sa: &mut IkeSa,
        header: &Header,
        payloads: Vec<Payload>,
    ) -> Fate {
        let msg_id = header.message_id;
        let mut out = Vec::new();
        let mut delete_ike = false;
        let mut ours = Vec::new();
        for p in &payloads {
            match p {
                Payload::Delete(d) if d.protocol_id == PROTO_IKE => delete_ike = true,
                Payload::Delete(d) if d.protocol_id == PROTO_ESP && d.spi_size == 4 => {
                    for s in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(s.as_slice()) else {
                            continue;
                        };
                        // The peer names the SPI it receives on: our outbound SPI.
                        let spi = u32::from_be_bytes(b);
                        if let Some(i) = sa.children.iter().position(|c| c.spi_out == spi) {
                            let c = sa.take_child(i);
                            self.remove_child_kernel(sa, &c, "deleted by peer");
                            ours.push(c.spi_in.to_be_bytes().to_vec());
                        }
                    }
                }
                Payload::Notify(n) if n.notify_type < 16384 => {
                    info!(ike = %sa.id(), notify = %super::found::NotifyLabel(Some(n.notify_type)), "peer reported an error");
                }
                _ => {}
            }
        }
        if !ours.is_empty() {
            out.push(Payload::Delete(Delete {
                protocol_id: PROTO_ESP,
                spi_size: 4,
                spis: ours,
            }));
        }
        let resp = self.seal(sa, INFORMATIONAL, true, msg_id, &out);
        self.send_response(sa, msg_id, resp);
        if delete_ike {
            info!(ike = %sa.id(), remote = %sa.remote, "peer deleted the IKE SA");
            return Fate::Close("deleted by peer".into());
        }
        Fate::Keep
    }
}
