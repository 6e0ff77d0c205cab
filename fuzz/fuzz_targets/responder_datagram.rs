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
use mip6_ike::ike::Endpoint;
use mip6_ike::mobility::SaClass;
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
