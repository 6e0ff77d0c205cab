//! Only built by cargo-fuzz (`--cfg fuzzing`): what `fuzz/fuzz_targets/responder_datagram.rs`
//! needs to forge messages that an established IKE SA accepts as its peer's, so that the fuzzer
//! reaches the INFORMATIONAL / CREATE_CHILD_SA handling behind the SK payload's ICV. Key material
//! never leaves the engine in a normal build: this module does not exist there.

use super::{Endpoint, IkeId};
use crate::crypto::SkKeys;

/// How the peer of an IKE SA would protect its next message to us.
pub struct PeerView {
    pub spi_i: u64,
    pub spi_r: u64,
    /// The peer is the original initiator (it sets the I flag).
    pub peer_is_initiator: bool,
    /// The message ID we expect on the peer's next request.
    pub peer_msg_id: u32,
    /// Our next request's message ID (a response to our pending request carries one less).
    pub our_next_msg_id: u32,
    /// The keys we open the peer's messages with: the peer seals with the same ones.
    pub peer_keys: SkKeys,
}

impl Endpoint {
    #[doc(hidden)]
    pub fn fuzz_peer_view(&self, id: IkeId) -> Option<PeerView> {
        let sa = self.sas.get(&id.0)?;
        let k = &sa.keys.as_ref()?.inb;
        Some(PeerView {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            peer_is_initiator: !sa.initiator,
            peer_msg_id: sa.peer_msg_id,
            our_next_msg_id: sa.next_msg_id,
            peer_keys: SkKeys::new(k.encr, k.integ, k.encr_key.clone(), k.integ_key.clone())
                .ok()?,
        })
    }
}
