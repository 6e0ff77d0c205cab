//! IKEv2 parse/emit: arbitrary bytes as a whole message (header + payload chain) and as an SK
//! payload's content (a chain whose first type is the input's first byte). Whatever parses must
//! emit to bytes that parse to the same representation, and emitting that gives the same bytes
//! again (emit normalises only reserved bits, which the representation does not hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mip6_ike::wire::{Message, emit_payloads, parse_payloads};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.emit();
        let again = Message::parse(&bytes).expect("an emitted message parses");
        assert_eq!(again, m, "message round trip");
        assert_eq!(again.emit(), bytes, "second emit");
    }
    if let Some((&first, chain)) = data.split_first()
        && let Ok(p) = parse_payloads(first, chain)
    {
        let mut bytes = Vec::new();
        let first_again = emit_payloads(&p, &mut bytes);
        let again = parse_payloads(first_again, &bytes).expect("an emitted chain parses");
        assert_eq!(again, p, "chain round trip");
    }
});
