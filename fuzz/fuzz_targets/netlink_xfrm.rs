//! What the kernel sends on NETLINK_XFRM: multicast ACQUIRE / EXPIRE / MIGRATE (the listener's
//! `decode`), and the pieces the request socket uses on answers and dumps (framing, NLMSG_ERROR,
//! GETSA / GETPOLICY entries, attribute walks). Never panics is the oracle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mip6_ike::kernel::xfrm::{listen, msg};

fuzz_target!(|data: &[u8]| {
    let _ = listen::decode(data, 0);
    let Ok(msgs) = msg::split(data) else {
        return;
    };
    for m in &msgs {
        // As if from the kernel whatever the port id says, so that parse_event gets past its
        // first check on every input.
        let _ = msg::parse_event(&msg::NlMsg { pid: 0, ..*m });
        let _ = msg::error_code(m);
        if let Ok(sa) = msg::parse_sa(m.payload) {
            let _ = msg::from_xselector(&sa.selector);
        }
        if let Ok((p, _)) = msg::parse_policy(m.payload) {
            let _ = msg::from_xselector(&p.selector);
        }
        for fixed in [
            0,
            msg::USERSA_INFO_LEN,
            msg::USERSA_ID_LEN,
            msg::USERPOLICY_INFO_LEN,
            msg::USERPOLICY_ID_LEN,
            msg::USER_ACQUIRE_LEN,
        ] {
            let _ = msg::attrs(m.payload, fixed);
        }
    }
});
