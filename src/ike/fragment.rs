//! IKE fragmentation (RFC 7383). Negotiated in IKE_SA_INIT (both sides send
//! IKEV2_FRAGMENTATION_SUPPORTED); afterwards a protected message that does not fit
//! `[ike] fragment_size` (an IP datagram size, so the path never has to fragment it) goes out as
//! Encrypted Fragment messages, and fragments from the peer are reassembled here.
//!
//! Reassembly never trusts what it has not verified: each fragment's ICV is checked on its own
//! before it is kept (`protect::open_any`), so an on-path forger cannot plant or renumber
//! fragments. What an authenticated-but-hostile peer (or a half-open one, which has keys after
//! IKE_SA_INIT but no identity yet) can make us hold is bounded per SA by [`MAX_FRAGMENTS`] and
//! [`MAX_REASSEMBLED`], and only for [`REASSEMBLY_TIMEOUT`]; half-open SAs are bounded in number
//! by the half-open limits.

use std::time::{Duration, Instant};

use tracing::debug;

use super::endpoint::Endpoint;
use super::float::NAT_T_PORT;
use super::protect::Fragment;
use super::sa::IkeSa;
use crate::crypto::Secret;
use crate::wire::{Payload, parse_payloads};

/// One IKE message as it goes on the wire: one datagram, or its fragments in order.
pub(crate) type Datagrams = Vec<Vec<u8>>;

/// Most fragments one message may have. A message of 64 KiB in fragments of the smallest
/// allowed size (576-byte IPv4 datagrams) needs about 120; 8 KB certificate chains at 1280 need 7.
pub const MAX_FRAGMENTS: u16 = 128;
/// Most content bytes one reassembled message may hold.
pub const MAX_REASSEMBLED: usize = 64 * 1024;
/// A message whose fragments do not all arrive within this long is given up (the peer
/// retransmits all of them anyway).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Fragments of one message received so far (all verified).
pub(crate) struct Reassembly {
    msg_id: u32,
    response: bool,
    total: u16,
    /// The first inner payload's type, from fragment 1.
    first_inner: u8,
    parts: Vec<Option<Secret>>,
    bytes: usize,
    pub started: Instant,
}

/// What one more fragment did.
pub(crate) enum Reassembled {
    /// All fragments are in: the message's payloads.
    Done(Vec<Payload>),
    /// Kept (or ignored as a duplicate or a stale retransmission); more to come.
    Waiting,
    /// Not usable (why, for the log).
    Refused(&'static str),
}

impl Endpoint {
    /// The longest IKE message (from the IKE header on) we send on this SA in one datagram:
    /// `fragment_size` minus the IP and UDP headers and the non-ESP marker on port 4500.
    pub(super) fn max_message_len(&self, sa: &IkeSa) -> usize {
        let ip = if sa.remote.is_ipv4() { 20 } else { 40 };
        // The marker goes on every message of our NAT-T socket; behind a NAT the peer's port is
        // the NAT's mapping, so look at our end too.
        let on_nat_t =
            sa.local.port() == self.cfg.mobility.nat_port || sa.remote.port() == NAT_T_PORT;
        let marker = if on_nat_t { 4 } else { 0 };
        self.cfg.fragmentation.size.saturating_sub(ip + 8 + marker)
    }

    /// Adds a verified fragment of message `msg_id` (a request from the peer, or the response to
    /// ours) to the SA's reassembly, following RFC 7383 2.6.
    pub(super) fn reassemble(
        &mut self,
        sa: &mut IkeSa,
        msg_id: u32,
        response: bool,
        f: Fragment,
    ) -> Reassembled {
        if !sa.fragmentation {
            return Reassembled::Refused("fragment on an SA that did not negotiate fragmentation");
        }
        if f.total > MAX_FRAGMENTS {
            return Reassembled::Refused("more fragments than we accept");
        }
        let now = self.now.at;
        let fresh = |f: &Fragment| {
            Box::new(Reassembly {
                msg_id,
                response,
                total: f.total,
                first_inner: 0,
                parts: (0..f.total).map(|_| None).collect(),
                bytes: 0,
                started: now,
            })
        };
        let r = match sa.reassembly.as_mut() {
            Some(r)
                if r.msg_id == msg_id
                    && r.response == response
                    && r.started + REASSEMBLY_TIMEOUT > now =>
            {
                // RFC 7383 2.6.2: a larger total means the peer fragmented the message anew
                // (smaller pieces after a PMTU change): start over; a smaller one is stale.
                if f.total > r.total {
                    *r = fresh(&f);
                } else if f.total < r.total {
                    return Reassembled::Waiting;
                }
                r
            }
            _ => sa.reassembly.insert(fresh(&f)),
        };
        let slot = usize::from(f.number - 1);
        if r.parts[slot].is_some() {
            return Reassembled::Waiting;
        }
        if r.bytes + f.plain.len() > MAX_REASSEMBLED {
            sa.reassembly = None;
            return Reassembled::Refused("reassembled message larger than the limit");
        }
        if f.number == 1 {
            r.first_inner = f.first_inner;
        }
        r.bytes += f.plain.len();
        r.parts[slot] = Some(f.plain);
        if r.parts.iter().any(Option::is_none) {
            return Reassembled::Waiting;
        }
        let Some(r) = sa.reassembly.take() else {
            return Reassembled::Waiting;
        };
        let mut whole = Secret::new(Vec::with_capacity(r.bytes));
        for p in r.parts.iter().flatten() {
            whole.extend_from_slice(p);
        }
        debug!(ike = %sa.id(), msg_id, fragments = r.total, bytes = r.bytes, "message reassembled");
        self.stats.reassembled += 1;
        match parse_payloads(r.first_inner, &whole) {
            Ok(p) => Reassembled::Done(p),
            Err(_) => Reassembled::Refused("reassembled content does not parse"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::Identity;
    use crate::crypto::TestRng;
    use crate::ike::config::{Config, LocalAuth, Timers};
    use crate::ike::sa::State;
    use crate::ike::{Now, proposal::Prefer};

    fn endpoint(now: Instant) -> Endpoint {
        let (ike_proposals, esp_proposals) = crate::policy::default_proposals();
        let cfg = Config {
            identity: Identity::parse_config("fqdn:ha.example.net").unwrap(),
            auth: LocalAuth::Psk(Secret::new(vec![7; 32])),
            trust: None,
            ike_proposals,
            esp_proposals,
            prefer: Prefer::Ours,
            timers: Timers::default(),
            reqids: Default::default(),
            cookie_threshold: 10,
            max_half_open: 10,
            max_half_open_per_source: 5,
            init_rate_per_source: 10,
            home_agent: None,
            replay_window: 32,
            mobility: Default::default(),
            fragmentation: Default::default(),
        };
        Endpoint::new(
            Arc::new(cfg),
            Box::new(TestRng::new(1)),
            Now {
                at: now,
                unix: 1_800_000_000,
            },
        )
    }

    fn sa(now: Instant) -> IkeSa {
        let a = "[2001:db8::1]:500".parse().unwrap();
        let b = "[2001:db8::2]:500".parse().unwrap();
        let mut sa = IkeSa::new(false, State::Established, 1, 2, a, b, now);
        sa.fragmentation = true;
        sa
    }

    fn frag(number: u16, total: u16, len: usize) -> Fragment {
        Fragment {
            // Fragment 1 starts with a Nonce payload (type 40) of the whole content's length.
            first_inner: if number == 1 { 40 } else { 0 },
            number,
            total,
            plain: Secret::new(vec![number as u8; len]),
        }
    }

    #[test]
    fn bounds_on_what_a_peer_can_make_us_hold() {
        let now = Instant::now();
        let mut ep = endpoint(now);
        let mut s = sa(now);
        // Too many fragments: refused before anything is kept.
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(1, MAX_FRAGMENTS + 1, 10)),
            Reassembled::Refused(_)
        ));
        assert!(s.reassembly.is_none());
        // More content than MAX_REASSEMBLED: refused and the partial message freed.
        let big = MAX_REASSEMBLED / 2 + 1;
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(1, 3, big)),
            Reassembled::Waiting
        ));
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(2, 3, big)),
            Reassembled::Refused(_)
        ));
        assert!(s.reassembly.is_none());
        // An SA that did not negotiate fragmentation keeps nothing.
        s.fragmentation = false;
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(1, 2, 10)),
            Reassembled::Refused(_)
        ));
        assert!(s.reassembly.is_none());
    }

    #[test]
    fn a_larger_total_restarts_a_smaller_one_is_stale() {
        let now = Instant::now();
        let mut ep = endpoint(now);
        let mut s = sa(now);
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(2, 2, 10)),
            Reassembled::Waiting
        ));
        // Re-fragmented into 3 (RFC 7383 2.6.2): fragment 2 of 2 no longer counts.
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(3, 3, 10)),
            Reassembled::Waiting
        ));
        // A fragment of the old, smaller fragmentation is ignored.
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, frag(1, 2, 10)),
            Reassembled::Waiting
        ));
        assert_eq!(s.reassembly.as_ref().unwrap().bytes, 10);
        // A fragment of another message (or of the response instead of a request) starts over.
        assert!(matches!(
            ep.reassemble(&mut s, 2, false, frag(2, 3, 10)),
            Reassembled::Waiting
        ));
        assert_eq!(s.reassembly.as_ref().unwrap().msg_id, 2);
        assert!(matches!(
            ep.reassemble(&mut s, 2, true, frag(2, 3, 10)),
            Reassembled::Waiting
        ));
        assert!(s.reassembly.as_ref().unwrap().response);
    }

    #[test]
    fn complete_content_is_parsed_in_fragment_order() {
        let now = Instant::now();
        let mut ep = endpoint(now);
        let mut s = sa(now);
        // A Nonce payload of 4 + 6 bytes split 3 / 7 over two fragments, second one first.
        let content = [0u8, 0, 0, 10, 1, 2, 3, 4, 5, 6];
        let part = |number: u16, bytes: &[u8]| Fragment {
            first_inner: if number == 1 { 40 } else { 0 },
            number,
            total: 2,
            plain: Secret::new(bytes.to_vec()),
        };
        assert!(matches!(
            ep.reassemble(&mut s, 1, false, part(2, &content[3..])),
            Reassembled::Waiting
        ));
        let Reassembled::Done(p) = ep.reassemble(&mut s, 1, false, part(1, &content[..3])) else {
            panic!("not complete");
        };
        assert_eq!(p, vec![Payload::Nonce(vec![1, 2, 3, 4, 5, 6])]);
        assert!(s.reassembly.is_none());
        assert_eq!(ep.stats.reassembled, 1);
    }
}
