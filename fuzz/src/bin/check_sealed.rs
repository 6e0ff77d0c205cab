//! Checks that responder_datagram's mode 2 really gets past the SK payload: requests sealed by
//! `seal_as_peer`, exactly as the target seals fuzzed content, must be answered by the home
//! agent. Needs `--cfg fuzzing` (Endpoint::fuzz_peer_view), so it is built like a target:
//! `cargo +nightly fuzz build -O check_sealed`, then run
//! `target/x86_64-unknown-linux-gnu/release/check_sealed`.

#[cfg(fuzzing)]
fn main() {
    use mip6_ike::mobility::SaClass;
    use mip6_ike::wire::consts::*;
    use mip6_ike::wire::{Message, Notify, Payload, emit_payloads};
    use mip6_ike_fuzz::*;

    let now = start();
    // (selector, inner chain): a liveness check (empty INFORMATIONAL) and a CREATE_CHILD_SA
    // request without SA payload (answered with an error notify).
    let cases = [
        (INFORMATIONAL - IKE_SA_INIT, vec![]),
        (
            CREATE_CHILD_SA - IKE_SA_INIT,
            vec![Payload::Notify(Notify::new(N_NO_PROPOSAL_CHOSEN, vec![]))],
        ),
    ];
    let n = cases.len();
    for (sel, inner) in cases {
        let mut e = establish(now, &[SaClass::BuBa], |_, _| {}).expect("handshake");
        let mut plain = Vec::new();
        let first = emit_payloads(&inner, &mut plain);
        let msg = seal_as_peer(&e.ha, e.ha_ike, sel, first, &plain).expect("sealed");
        let id = Message::parse(&msg).expect("parses").header.message_id;
        e.ha.handle_datagram(now, addr(MN_COA), addr(HA_ADDR), &msg);
        let sent = drain(&mut e.ha);
        let answer = sent.first().map(|t| Message::parse(&t.data));
        assert!(
            matches!(&answer, Some(Ok(m)) if m.header.is_response() && m.header.message_id == id),
            "selector {sel}: the sealed request got no answer: {answer:?}"
        );
    }
    println!("check_sealed: {n} sealed requests answered");
}

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("check_sealed needs --cfg fuzzing: cargo +nightly fuzz build -O check_sealed");
    std::process::exit(2);
}
