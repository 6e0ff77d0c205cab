//! The control socket's request lines (JSON, from any local user allowed on the socket), the
//! daemon-side interpretation of their fields, and the client's parser of the daemon's lines.
//! A request that parses must survive `request_line` (what mip6-ikectl sends) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mip6_ike::control::protocol::{Request, parse_incoming, parse_request, request_line};
use mip6_ike::daemon::control::{initiate_params, parse_ike_id};

/// serde_json parses floats to within one ulp unless built with float_roundtrip (the main
/// crate is not), so `timeout` may come back one ulp off; everything else must be equal.
fn same(a: &Request, b: &Request) -> bool {
    match (a, b) {
        (
            Request::Initiate {
                home_agent: ha,
                home_address: hoa,
                classes: c,
                timeout: t,
                wait: w,
            },
            Request::Initiate {
                home_agent: ha2,
                home_address: hoa2,
                classes: c2,
                timeout: t2,
                wait: w2,
            },
        ) => {
            let close = match (t, t2) {
                (Some(x), Some(y)) => x == y || x.to_bits().abs_diff(y.to_bits()) <= 1,
                (x, y) => x == y,
            };
            ha == ha2 && hoa == hoa2 && c == c2 && w == w2 && close
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok((_id, req)) = parse_request(data) {
        let line = request_line(7, &req);
        let (id, again) =
            parse_request(line.trim_end().as_bytes()).expect("our own request line parses");
        assert_eq!(id, serde_json::json!(7));
        assert!(
            same(&again, &req),
            "round trip: {req:?} -> {line} -> {again:?}"
        );
        match &req {
            Request::Initiate {
                home_agent,
                home_address,
                classes,
                ..
            } => {
                let _ = initiate_params(
                    home_agent.as_deref(),
                    home_address.as_deref(),
                    classes.as_deref(),
                );
            }
            Request::Terminate { ike: Some(s), .. } | Request::Rekey { ike: s, .. } => {
                let _ = parse_ike_id(s);
            }
            _ => {}
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_incoming(s);
    }
});
