//! A test hook: lets a test play a misbehaving peer that holds valid keys. The endpoint's own
//! protected message is opened with its outbound keys, edited, and sealed again. It grants
//! nothing a network attacker lacks over this endpoint (only the endpoint's own keys are used,
//! and only on the caller's own process), so it is harmless in a build; it is hidden from docs.

use super::endpoint::Endpoint;
use super::{IkeId, protect};
use crate::wire::{Header, Message, Payload};

impl Endpoint {
    /// Opens `data`, a protected message this endpoint sent on IKE SA `ike`, lets `edit` change
    /// its header and payloads, and seals it again. None if the SA or the keys do not fit.
    #[doc(hidden)]
    pub fn tamper_own_message(
        &mut self,
        ike: IkeId,
        data: &[u8],
        edit: impl FnOnce(&mut Header, &mut Vec<Payload>),
    ) -> Option<Vec<u8>> {
        let sa = self.sas.get(&ike.0)?;
        let keys = sa.keys.as_ref()?;
        let msg = Message::parse(data).ok()?;
        let mut payloads = protect::open(&keys.out, data, &msg).ok()?;
        let mut header = msg.header;
        edit(&mut header, &mut payloads);
        let keys = &self.sas.get(&ike.0)?.keys.as_ref()?.out;
        Some(protect::seal(keys, self.rng.as_mut(), header, &payloads))
    }
}
