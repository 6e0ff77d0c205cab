//! A home agent's Endpoint fed untrusted datagrams. The oracle is "never panics" (libFuzzer
//! reports the panic); kernel operations, events and datagrams are drained after every input.
//!
//! Input: one mode byte, then the mode's bytes.
//! - mode 0: a fresh home agent gets the rest as one datagram (IKE_SA_INIT and error paths);
//! - mode 1: after a real MN-HA handshake (PSK, one CHILD_SA), the rest as one datagram (the
//!   SPIs are deterministic, so the seeds teach the fuzzer real ones);
//! - mode 2: after the handshake, the rest is `[selector, first inner payload type, inner
//!   payload chain...]` sealed in a valid SK payload with the IKE SA's keys, as the mobile node
//!   would send it, so that the fuzzer works on INFORMATIONAL / CREATE_CHILD_SA handling behind
//!   the ICV. The selector picks the exchange, request or response (to a request the home agent
//!   started first, picked by the selector too) and the message ID.
//!
//! The first 64 modes map to these three (mode % 3), the port (500 or 4500) by bit 6.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mip6_ike::crypto::{Rng, TestRng};
use mip6_ike::ike::{Command, Endpoint, IkeId};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::Header;
use mip6_ike::wire::consts::*;
use mip6_ike_fuzz::*;

fn feed(ep: &mut Endpoint, now: mip6_ike::ike::Now, nat_port: bool, data: &[u8]) {
    let (mut remote, mut local) = (addr(MN_COA), addr(HA_ADDR));
    if nat_port {
        remote.set_port(4500);
        local.set_port(4500);
    }
    ep.handle_datagram(now, remote, local, data);
    drain(ep);
    // Once more much later: retransmissions, liveness checks, half-open expiry and rekeys run
    // on whatever state the input left behind.
    ep.handle_timeout(later(now, 3600));
    drain(ep);
}

/// The home agent starts an exchange of its own (its request is dropped), so that the input can
/// be a response to it.
fn ha_starts(ep: &mut Endpoint, now: mip6_ike::ike::Now, ike: IkeId, which: u8) {
    let spi_in = ep
        .get(ike)
        .and_then(|i| i.children.first().map(|c| c.spi_in))
        .unwrap_or(0);
    let cmd = match which & 3 {
        0 => Command::RekeyIke { ike },
        1 => Command::CreateChild {
            ike,
            class: SaClass::Payload,
        },
        2 => Command::RekeyChild { ike, spi_in },
        _ => Command::DeleteChild { ike, spi_in },
    };
    let _ = ep.handle_command(now, cmd);
    drain(ep);
}

/// Seals `inner` (a payload chain starting with type `first`, taken as is: the fuzzer owns its
/// bytes) as the mobile node would, with the keys of the home agent's SA `ike`.
fn seal_as_peer(ep: &Endpoint, ike: IkeId, sel: u8, first: u8, inner: &[u8]) -> Option<Vec<u8>> {
    let v = ep.fuzz_peer_view(ike)?;
    let exchange = [IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL][usize::from(sel & 3)];
    let response = sel & 4 != 0;
    let mut message_id = if response {
        v.our_next_msg_id.wrapping_sub(1)
    } else {
        v.peer_msg_id
    };
    if sel & 8 != 0 {
        // One off: an old request (retransmission cache) or a future one (window).
        message_id = message_id.wrapping_add(if response { 1 } else { u32::MAX });
    }
    let mut flags = if response { FLAG_RESPONSE } else { 0 };
    if v.peer_is_initiator {
        flags |= FLAG_INITIATOR;
    }
    let keys = &v.peer_keys;
    let body_len = keys.sealed_len(inner.len());
    let header = Header {
        spi_i: v.spi_i,
        spi_r: v.spi_r,
        next_payload: PL_SK,
        version: IKE_VERSION,
        exchange,
        flags,
        message_id,
        length: u32::try_from(Header::LEN + 4 + body_len).ok()?,
    };
    let mut out = Vec::new();
    header.emit(&mut out);
    out.push(first);
    out.push(0);
    out.extend_from_slice(&u16::try_from(4 + body_len).ok()?.to_be_bytes());
    let mut iv = vec![0u8; keys.iv_len()];
    TestRng::new(3).fill(&mut iv);
    let aad = out.clone();
    keys.seal(&aad, &iv, inner, &mut out);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // An SK payload body and a UDP datagram both end at 64 KiB.
    if rest.len() > 65_000 {
        return;
    }
    let nat_port = mode & 0x40 != 0;
    let now = start();
    match mode % 3 {
        0 => {
            let mut ha = new_ha(now);
            feed(&mut ha, now, nat_port, rest);
        }
        1 => {
            let Some(mut e) = establish(now, &[SaClass::BuBa], |_, _| {}) else {
                panic!("the in-process handshake failed");
            };
            feed(&mut e.ha, now, nat_port, rest);
        }
        _ => {
            let [sel, first, inner @ ..] = rest else {
                return;
            };
            let Some(mut e) = establish(now, &[SaClass::BuBa], |_, _| {}) else {
                panic!("the in-process handshake failed");
            };
            if sel & 4 != 0 {
                ha_starts(&mut e.ha, now, e.ha_ike, sel >> 4);
            }
            if let Some(msg) = seal_as_peer(&e.ha, e.ha_ike, *sel, *first, inner) {
                feed(&mut e.ha, now, nat_port, &msg);
            }
        }
    }
});
