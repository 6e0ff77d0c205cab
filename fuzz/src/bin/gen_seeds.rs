//! Writes the committed seed corpus, fuzz/corpus/<target>/, from the repository's fixtures, a
//! live in-process handshake and the crate's own netlink encoders. Run from fuzz/:
//! `cargo run --bin gen_seeds` (it replaces only the files it names; crash inputs added by hand
//! stay).

use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use mip6_ike::kernel::xfrm::msg;
use mip6_ike::kernel::{Mode, Selector};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Delete, Message, Notify, Payload, emit_payloads, parse_payloads};
use mip6_ike_fuzz::*;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join(name), bytes).expect("write");
}

/// The wire fixtures' format: hex digits, whitespace and `#` comments.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(rest);
    v
}

fn wire() {
    let fixtures = Path::new("../tests/fixtures/wire");
    for e in fs::read_dir(fixtures).expect("fixtures") {
        let p = e.expect("entry").path();
        if p.extension().is_none_or(|x| x != "hex") {
            continue;
        }
        let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
        let bytes = hex(&fs::read_to_string(&p).expect("read"));
        if Message::parse(&bytes).is_ok() {
            put("wire_message", &format!("{name}.bin"), &bytes);
        }
        // Chains: the target takes the first byte as the first payload's type.
        for first in [PL_IDI, PL_NOTIFY, PL_DELETE, PL_CP, PL_SA, PL_NONCE] {
            if parse_payloads(first, &bytes).is_ok() {
                put(
                    "wire_message",
                    &format!("{name}.chain"),
                    &with(&[first], &bytes),
                );
            }
        }
    }
    // strongSwan's datagrams and decrypted SK contents (the first inner type is the SK
    // payload's next-payload field, right after the IKE header).
    for suite in ["psk-x25519-cbc", "ecdsa-ecp256-gcm", "rsa-modp2048-cbc"] {
        let dir = Path::new("../tests/fixtures/strongswan").join(suite);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .expect("captures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().ends_with(".bin"))
            .collect();
        names.sort();
        for p in names {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let bytes = fs::read(&p).expect("read");
            if let Some(outer) = name.strip_suffix(".plain.bin") {
                let outer = fs::read(dir.join(format!("{outer}.bin"))).expect("outer");
                if let Some(&first) = outer.get(28) {
                    put(
                        "wire_message",
                        &format!("ss-{suite}-{name}.chain"),
                        &with(&[first], &bytes),
                    );
                    // The same content sealed to an established home agent (mode 2): as a
                    // request (selector picks the capture's exchange) and as a response.
                    let ex = outer.get(18).copied().unwrap_or(INFORMATIONAL);
                    let sel = ex.wrapping_sub(IKE_SA_INIT) & 3;
                    let resp = if name.contains("resp") { 4 } else { 0 };
                    put(
                        "responder_datagram",
                        &format!("sealed-ss-{suite}-{name}"),
                        &with(&[2, sel | resp, first], &bytes),
                    );
                }
            } else {
                put("wire_message", &format!("ss-{suite}-{name}"), &bytes);
            }
        }
    }
}

fn responder() {
    let now = start();
    // Every datagram of a handshake with two classes: to a fresh home agent (mode 0: only the
    // IKE_SA_INIT request does more than fail the SPI lookup) and to an established one
    // (mode 1: retransmissions of requests it already answered, or the mobile node's answers).
    let mut n = 0;
    let e = establish(now, &[SaClass::BuBa, SaClass::Payload], |to_ha, t| {
        n += 1;
        let dir = if to_ha { "to-ha" } else { "to-mn" };
        put(
            "responder_datagram",
            &format!("fresh-{n:02}-{dir}"),
            &with(&[0], &t.data),
        );
        put(
            "responder_datagram",
            &format!("established-{n:02}-{dir}"),
            &with(&[1], &t.data),
        );
        if n == 1 {
            // Mode byte 0x42: bit 6 set (port 4500), 0x42 % 3 = 0 (a fresh home agent).
            put(
                "responder_datagram",
                "fresh-01-to-ha-4500",
                &with(&[0x42], &t.data),
            );
        }
    })
    .expect("handshake");
    let ha_info = e.ha.get(e.ha_ike).expect("sa");
    let spi_out = ha_info.children[0].spi_out;
    let spi_in = ha_info.children[0].spi_in;
    // Sealed inner chains (mode 2): [2, selector, first inner type, chain].
    let chain = |p: &[Payload]| {
        let mut v = Vec::new();
        let first = emit_payloads(p, &mut v);
        with(&[first], &v)
    };
    let info = INFORMATIONAL - IKE_SA_INIT;
    let cc = CREATE_CHILD_SA - IKE_SA_INIT;
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        ("liveness", info, chain(&[])),
        ("liveness-answer", info | 4, chain(&[])),
        (
            "delete-ike",
            info,
            chain(&[Payload::Delete(Delete {
                protocol_id: PROTO_IKE,
                spi_size: 0,
                spis: vec![],
            })]),
        ),
        (
            "delete-esp",
            info,
            chain(&[Payload::Delete(Delete {
                protocol_id: PROTO_ESP,
                spi_size: 4,
                // The mobile node names its inbound SA: the home agent's outbound one.
                spis: vec![
                    spi_out.to_be_bytes().to_vec(),
                    spi_in.to_be_bytes().to_vec(),
                ],
            })]),
        ),
        (
            "notify-error-answer",
            cc | 4,
            chain(&[Payload::Notify(Notify::new(N_NO_PROPOSAL_CHOSEN, vec![]))]),
        ),
        (
            "create-child-hand-made",
            cc,
            with(
                &[PL_NOTIFY],
                &hex(include_str!(
                    "../../../tests/fixtures/wire/create_child_inner.hex"
                )),
            ),
        ),
        (
            "informational-hand-made",
            info,
            with(
                &[PL_DELETE],
                &hex(include_str!(
                    "../../../tests/fixtures/wire/informational_delete.hex"
                )),
            ),
        ),
    ];
    for (name, sel, bytes) in seeds {
        put(
            "responder_datagram",
            &format!("sealed-{name}"),
            &with(&[2, sel], &bytes),
        );
        // The same after the home agent started each of its own exchanges (bits 4-5).
        if sel & 4 != 0 {
            for which in 0..4u8 {
                put(
                    "responder_datagram",
                    &format!("sealed-{name}-after-{which}"),
                    &with(&[2, sel | (which << 4)], &bytes),
                );
            }
        }
    }
}

fn netlink() {
    use netlink_packet_xfrm::{Address, Id, UserAcquire, UserExpire, UserSaInfo, UserTemplate};
    let a = |s: &str| -> IpAddr { s.parse().expect("address") };
    let hoa: Ipv6Addr = "2001:db8:1::100".parse().expect("address");
    let ha: Ipv6Addr = "2001:db8:1::1".parse().expect("address");
    let sel = Selector::new(a("2001:db8:1::100"), 128, a("2001:db8:1::1"), 128, 135);
    let xsel = msg::to_xselector(&sel);
    let acq = UserAcquire {
        id: Id {
            daddr: Address::from_ipv6(&ha),
            spi: 0,
            proto: msg::IPPROTO_ESP,
        },
        saddr: Address::from_ipv6(&hoa),
        selector: xsel,
        policy: netlink_packet_xfrm::UserPolicyInfo {
            selector: xsel,
            ..Default::default()
        },
        seq: 77,
        ..Default::default()
    };
    let tmpl = UserTemplate {
        id: Id {
            daddr: Address::from_ipv6(&Ipv6Addr::UNSPECIFIED),
            spi: 0,
            proto: msg::IPPROTO_ESP,
        },
        family: msg::AF_INET6,
        saddr: Address::from_ipv6(&Ipv6Addr::UNSPECIFIED),
        reqid: 1,
        mode: 0,
        share: 0,
        optional: 0,
        aalgos: !0,
        ealgos: !0,
        calgos: !0,
    };
    let acquire = msg::Request::new(msg::XFRM_MSG_ACQUIRE, 0)
        .fixed(&acq)
        .attr(msg::XFRMA_TMPL, &tmpl)
        .finish(0)
        .to_vec();
    put("netlink_xfrm", "acquire", &acquire);
    let state = UserSaInfo {
        id: Id {
            daddr: Address::from_ipv6(&hoa),
            spi: 0x1234,
            proto: msg::IPPROTO_ESP,
        },
        family: msg::AF_INET6,
        ..Default::default()
    };
    let expire = msg::Request::new(msg::XFRM_MSG_EXPIRE, 0)
        .fixed(&UserExpire { state, hard: 1 })
        .finish(0)
        .to_vec();
    put("netlink_xfrm", "expire", &expire);
    let e = msg::MigrateEntry {
        old_src: a("2001:db8:2::100"),
        old_dst: a("2001:db8:1::1"),
        new_src: a("2001:db8:3::100"),
        new_dst: a("2001:db8:1::1"),
        mode: Mode::Tunnel,
        reqid: 3,
    };
    let km = Some((a("2001:db8:3::100"), a("2001:db8:1::1")));
    for (name, dir) in [
        ("migrate-in", msg::XFRM_POLICY_IN),
        ("migrate-out", msg::XFRM_POLICY_OUT),
        ("migrate-fwd", msg::XFRM_POLICY_FWD),
    ] {
        let m = msg::migrate_request(&sel, dir, &[e.clone(), e.clone()], km)
            .finish(0)
            .to_vec();
        put("netlink_xfrm", name, &m);
    }
    // Several messages in one datagram, as the kernel batches them.
    put(
        "netlink_xfrm",
        "acquire-expire",
        &[acquire.clone(), expire].concat(),
    );
    // Answers and dump entries: NEWSA as iproute2 builds it, an NLMSG_ERROR, NLMSG_DONE.
    for f in ["newsa-transport-cbc-sha256.bin", "newsa-tunnel-gcm-esn.bin"] {
        let b = fs::read(Path::new("../tests/fixtures/xfrm").join(f)).expect("fixture");
        put("netlink_xfrm", f.trim_end_matches(".bin"), &b);
    }
    let err = msg::Request::new(msg::NLMSG_ERROR, 0)
        .attr_with(0, 16, |b| b[..4].copy_from_slice(&(-17i32).to_ne_bytes()))
        .finish(5)
        .to_vec();
    put("netlink_xfrm", "error", &err);
    put(
        "netlink_xfrm",
        "done",
        &msg::Request::new(msg::NLMSG_DONE, msg::NLM_F_MULTI)
            .finish(5)
            .to_vec(),
    );
}

fn control() {
    let doc = include_str!("../../../docs/control-protocol.md");
    let mut n = 0;
    for line in doc.lines() {
        let line = line.trim();
        if line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok() {
            n += 1;
            put("control_request", &format!("doc-{n:02}"), line.as_bytes());
        }
    }
    let extra = [
        r#"{"id":"a","request":"initiate","home_agent":"[2001:db8:1::1]:500","home_address":"2001:db8:1::100","classes":["bu-ba","payload"],"timeout":2.5,"wait":false}"#,
        r#"{"id":1,"request":"terminate","ike":"0x3f2a9c0d11e8b700"}"#,
        r#"{"id":2,"request":"address-reply","request_id":9,"prefix":"2001:db8:100:9::/64"}"#,
    ];
    for (i, l) in extra.iter().enumerate() {
        put("control_request", &format!("extra-{i}"), l.as_bytes());
    }
}

fn config() {
    // Byte 0 even: a global file (its paths resolve as in conf/: ../certs, users).
    for f in ["ha.toml", "mn.toml", "mn2.toml", "mn-dynamic.toml"] {
        let t = fs::read(Path::new("../conf").join(f)).expect("conf");
        put("config_toml", &format!("global-{f}"), &with(&[0], &t));
    }
    // Byte 0 odd: a user file.
    for f in ["mn1.toml", "mn2.toml", "visitors.toml"] {
        let t = fs::read(Path::new("../conf/users").join(f)).expect("user");
        put("config_toml", &format!("user-{f}"), &with(&[1], &t));
    }
    put(
        "config_toml",
        "user-prefix",
        b"\x01identity = \"fqdn:mn9.example.net\"\nhome_addresses = [\"2001:db8:1::900\"]\nhome_prefix = \"2001:db8:200::/64\"\nclasses = [\"bu-ba\"]\n",
    );
}

fn main() {
    wire();
    responder();
    netlink();
    control();
    config();
    println!("seeds written under corpus/");
}
