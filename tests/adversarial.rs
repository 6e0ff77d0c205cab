//! Issue 14, the engine side: what a hostile peer (or an on-path forger) can do to the protocol
//! engine. One test per audit item; each failed before its fix, and each also checks that
//! nothing already established was lost and that the refusal was the right one.

mod common;

use std::time::Duration;

use common::*;
use mip6_ike::ike::{Command, Event, HomeAddress, IkeSaInfo};
use mip6_ike::mobility::SaClass;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Header, Message, Notify, Payload};

const BU_PAYLOAD: &[SaClass] = &[SaClass::BuBa, SaClass::Payload];

/// An established MN/HA pair with the BU/BA and payload CHILD_SAs.
fn established() -> Lab {
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    l
}

/// The one IKE SA of a side (panics unless there is exactly one).
fn only_sa(s: &Side) -> IkeSaInfo {
    let v = s.ep.list();
    assert_eq!(v.len(), 1, "{v:?}");
    v.into_iter().next().unwrap()
}

fn no_down(s: &Side) -> bool {
    !s.events
        .iter()
        .any(|e| matches!(e, Event::IkeDown { .. } | Event::ChildDown { .. }))
}

/// An unprotected message with these header fields and payloads.
fn plain(spi_i: u64, spi_r: u64, exchange: u8, flags: u8, msg_id: u32, p: Vec<Payload>) -> Vec<u8> {
    Message {
        header: Header {
            spi_i,
            spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange,
            flags,
            message_id: msg_id,
            length: 0,
        },
        payloads: p,
    }
    .emit()
}

// ---- item 1 (audit 2) ----

#[test]
fn forged_init_response_does_not_delete_an_established_sa() {
    let mut l = established();
    let ha_sa = only_sa(&l.ha);
    let spi_in = ha_sa.children[1].spi_in;
    // The HA's first own request on this IKE SA has message ID 0.
    l.ha_command(Command::RekeyChild {
        ike: ha_sa.id,
        spi_in,
    });
    assert_eq!(l.wire.len(), 1);
    let dropped = l.ha.ep.stats.dropped;
    // The forger knows both SPIs (they are in every packet) and answers message ID 0 with a
    // plaintext IKE_SA_INIT "response" asking for a COOKIE.
    let forged = plain(
        ha_sa.spi_i,
        ha_sa.spi_r,
        IKE_SA_INIT,
        FLAG_INITIATOR | FLAG_RESPONSE,
        0,
        vec![Payload::Notify(Notify::new(N_COOKIE, vec![7; 16]))],
    );
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
    l.collect();
    assert_eq!(l.ha.ep.stats.dropped, dropped + 1, "the forgery is dropped");
    assert!(no_down(&l.ha), "{:?}", l.ha.events);
    assert_eq!(only_sa(&l.ha).state, "established");
    // The genuine exchange completes: the rekey replaces the payload SA.
    assert!(l.run(
        |l| l.ha.child_ups() >= 3 && l.wire.is_empty(),
        |_, _, _| true
    ));
    assert_eq!(only_sa(&l.ha).children.len(), 2);
    assert_eq!(only_sa(&l.mn).state, "established");
    assert!(
        !l.ha
            .events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
}

// ---- item 2 (audit 11) ----

/// The IKE_SA_INIT requests among `ts`.
fn init_requests(ts: &[(bool, mip6_ike::ike::Transmit)]) -> Vec<mip6_ike::ike::Transmit> {
    ts.iter()
        .filter(|(to_ha, t)| {
            *to_ha
                && Header::parse(&t.data)
                    .is_ok_and(|h| h.exchange == IKE_SA_INIT && !h.is_response())
        })
        .map(|(_, t)| t.clone())
        .collect()
}

/// An unauthenticated IKE_SA_INIT answer to `req` carrying one notify.
fn forged_init_answer(req: &mip6_ike::ike::Transmit, notify: u16, data: Vec<u8>) -> Vec<u8> {
    let h = Header::parse(&req.data).unwrap();
    plain(
        h.spi_i,
        0,
        IKE_SA_INIT,
        FLAG_RESPONSE,
        0,
        vec![Payload::Notify(Notify::new(notify, data))],
    )
}

#[test]
fn legal_timers_and_forged_retries_neither_crash_nor_stall_the_initiator() {
    // (a) backoff 10 with 20 tries is a legal configuration; 2 s × 10^19 does not fit in a
    // Duration. The peer never answers: the attempt fails, the daemon does not panic.
    let mut cfg = mn1();
    cfg.timers.retransmit_backoff = 10.0;
    cfg.timers.retransmit_tries = 20;
    cfg.timers.retransmit_max = Duration::from_secs(60);
    let mut l = Lab::new(cfg, ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let mut sent = 0;
    for _ in 0..100 {
        sent += l.wire.len();
        l.wire.clear();
        let Some(at) = l.mn.ep.next_deadline() else {
            break;
        };
        l.advance_to(at);
    }
    assert_eq!(sent, 21, "first transmission and 20 retransmissions");
    assert!(l.mn.exchange_failed(None));
    assert_eq!(l.mn.ep.ike_sa_count(), 0);

    // (b) A forger answers every IKE_SA_INIT with a COOKIE: we follow a few, not forever, and
    // the genuine home agent's answer still establishes the SA.
    let mut l = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let mut reqs = init_requests(&l.wire);
    l.wire.clear();
    for i in 0..10u8 {
        let last = reqs.last().unwrap().clone();
        let forged = forged_init_answer(&last, N_COOKIE, vec![i + 1; 16]);
        l.mn.ep
            .handle_datagram(l.now, l.mn.addr, l.ha.addr, &forged);
        l.collect();
        reqs.extend(init_requests(&l.wire));
        l.wire.clear();
    }
    assert_eq!(
        reqs.len(),
        4,
        "the first request and at most 3 COOKIE retries"
    );
    l.deliver(true, &reqs.last().unwrap().clone());
    assert!(l.establish(2));
    assert_eq!(only_sa(&l.mn).state, "established");
    assert!(!l.mn.exchange_failed(None));

    // (c) Alternating INVALID_KE_PAYLOADs between two groups we offer: bounded as well, and
    // after that the attempt ends when the timer runs out (with the forged reason).
    let mn = mn_config(AuthKind::Ecdsa, "mn1", "aes128-sha256-x25519-ecp256", ESP);
    let mut l = Lab::new(mn, ha_config(AuthKind::Ecdsa, IKE, ESP));
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let mut reqs = init_requests(&l.wire);
    l.wire.clear();
    for i in 0..10 {
        let group: u16 = if i % 2 == 0 { 19 } else { 31 };
        let last = reqs.last().unwrap().clone();
        let forged = forged_init_answer(&last, N_INVALID_KE_PAYLOAD, group.to_be_bytes().into());
        l.mn.ep
            .handle_datagram(l.now, l.mn.addr, l.ha.addr, &forged);
        l.collect();
        reqs.extend(init_requests(&l.wire));
        l.wire.clear();
    }
    assert_eq!(
        reqs.len(),
        3,
        "the first request and at most 2 INVALID_KE retries"
    );
    for _ in 0..10 {
        l.wire.clear();
        if let Some(at) = l.mn.ep.next_deadline() {
            l.advance_to(at);
        }
    }
    assert!(l.mn.exchange_failed(Some(N_INVALID_KE_PAYLOAD)));
    assert_eq!(l.mn.ep.ike_sa_count(), 0);

    // (d) A mobile node answers IKE_SA_INIT only from its home agent(s): a stranger gets
    // NO_PROPOSAL_CHOSEN and creates no state; the established SA is untouched.
    let mut l = established();
    let mut stranger = Side::new(
        mn_config(AuthKind::Ecdsa, "mn2", IKE, ESP),
        "[2001:db8:66::6]:500",
        99,
        l.now,
    );
    stranger
        .ep
        .handle_command(
            l.now,
            Command::Initiate {
                local: stranger.addr,
                remote: l.mn.addr,
                home_agent: HA_IP,
                home_address: HomeAddress::Static(HOA2),
                classes: BU_PAYLOAD.to_vec(),
                remote_identity: None,
            },
        )
        .unwrap();
    let req = stranger.drain().remove(0);
    l.mn.ep
        .handle_datagram(l.now, l.mn.addr, stranger.addr, &req.data);
    let answers = l.mn.drain();
    assert_eq!(answers.len(), 1);
    let m = Message::parse(&answers[0].data).unwrap();
    assert!(m.header.is_response());
    assert!(
        matches!(&m.payloads[..], [Payload::Notify(n)] if n.notify_type == N_NO_PROPOSAL_CHOSEN)
    );
    assert_eq!(only_sa(&l.mn).state, "established");
    assert_eq!(only_sa(&l.mn).children.len(), 2);
    assert!(no_down(&l.mn));
}

// ---- item 3 (audit 17) ----

/// The MN asks for one more CHILD_SA of `class`, its request rewritten by `edit` (the MN plays
/// a peer with valid keys that misbehaves); runs the exchange to its end.
fn mn_child_request_edited(l: &mut Lab, class: SaClass, edit: impl FnOnce(&mut Vec<Payload>)) {
    let id = only_sa(&l.mn).id;
    l.mn_command(Command::CreateChild { ike: id, class });
    let (to_ha, req) = l.wire.remove(0);
    assert!(to_ha && l.wire.is_empty());
    let forged =
        l.mn.ep
            .tamper_own_message(id, &req.data, |_, p| edit(p))
            .expect("the MN's own request opens");
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
    l.collect();
    l.run_now();
}

/// Sets the SPI of every ESP proposal in the SA payload.
fn set_esp_spi(p: &mut [Payload], spi: u32) {
    for pl in p {
        if let Payload::Sa(props) = pl {
            for pr in props {
                pr.spi = spi.to_be_bytes().to_vec();
            }
        }
    }
}

fn failures(s: &Side, notify: u16) -> usize {
    s.events
        .iter()
        .filter(|e| matches!(e, Event::ExchangeFailed { notify: Some(n), .. } if *n == notify))
        .count()
}

#[test]
fn reserved_or_duplicate_peer_spis_and_initiator_spi_zero_are_refused() {
    let mut l = established();
    let kernel_before = l.ha.kernel.len();
    for spi in [0u32, 1, 255] {
        mn_child_request_edited(&mut l, SaClass::MpsMpa, |p| set_esp_spi(p, spi));
    }
    assert_eq!(
        failures(&l.mn, N_NO_PROPOSAL_CHOSEN),
        3,
        "{:?}",
        l.mn.events
    );
    // An SPI the MN already uses for its payload CHILD_SA.
    let used = only_sa(&l.mn).children[1].spi_in;
    mn_child_request_edited(&mut l, SaClass::MpsMpa, |p| set_esp_spi(p, used));
    assert_eq!(failures(&l.mn, N_NO_PROPOSAL_CHOSEN), 4);
    assert_eq!(l.ha.kernel.len(), kernel_before, "nothing installed");
    assert!(l.ha.kernel_errors.is_empty(), "{:?}", l.ha.kernel_errors);
    assert_eq!(l.ha.child_ups(), 2, "no CHILD_SA reported up");
    assert_eq!(only_sa(&l.ha).children.len(), 2);
    assert!(no_down(&l.ha) && no_down(&l.mn));
    // A well-formed request still works afterwards.
    mn_child_request_edited(&mut l, SaClass::MpsMpa, |_| {});
    assert_eq!(l.ha.child_ups(), 3);

    // IKE_SA_INIT with initiator SPI 0: dropped, no answer, no state.
    let mut other = Side::new(
        mn_config(AuthKind::Ecdsa, "mn2", IKE, ESP),
        "[2001:db8:3::200]:500",
        7,
        l.now,
    );
    other
        .ep
        .handle_command(
            l.now,
            Command::Initiate {
                local: other.addr,
                remote: l.ha.addr,
                home_agent: HA_IP,
                home_address: HomeAddress::Static(HOA2),
                classes: BU_PAYLOAD.to_vec(),
                remote_identity: None,
            },
        )
        .unwrap();
    let req = other.drain().remove(0);
    let mut m = Message::parse(&req.data).unwrap();
    m.header.spi_i = 0;
    let dropped = l.ha.ep.stats.dropped;
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, other.addr, &m.emit());
    assert!(l.ha.drain().is_empty(), "no answer");
    assert_eq!(l.ha.ep.ike_sa_count(), 1, "no state");
    assert_eq!(l.ha.ep.stats.dropped, dropped + 1);
}

// ---- item 4 (audit 6) ----

/// Removes the KE payload and every DH transform: a CREATE_CHILD_SA without PFS.
fn strip_pfs(p: &mut Vec<Payload>) {
    p.retain(|pl| !matches!(pl, Payload::Ke { .. }));
    for pl in p {
        if let Payload::Sa(props) = pl {
            for pr in props {
                pr.transforms.retain(|t| t.transform_type != TRANS_DH);
            }
        }
    }
}

#[test]
fn create_child_sa_without_ke_is_refused_when_our_proposals_demand_pfs() {
    const ESP_PFS: &str = "aes128-sha256-x25519";
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", IKE, ESP_PFS),
        ha_config(AuthKind::Ecdsa, IKE, ESP_PFS),
    );
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    assert!(l.establish(2));
    let kernel_before = l.ha.kernel.len();
    // A new CHILD_SA without KE.
    mn_child_request_edited(&mut l, SaClass::MpsMpa, strip_pfs);
    // A rekey without KE.
    let id = only_sa(&l.mn).id;
    let spi_in = only_sa(&l.mn).children[1].spi_in;
    l.mn_command(Command::RekeyChild { ike: id, spi_in });
    let (_, req) = l.wire.remove(0);
    let forged =
        l.mn.ep
            .tamper_own_message(id, &req.data, |_, p| strip_pfs(p))
            .unwrap();
    l.ha.ep
        .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
    l.collect();
    l.run_now();
    assert_eq!(
        failures(&l.mn, N_NO_PROPOSAL_CHOSEN),
        2,
        "{:?}",
        l.mn.events
    );
    assert_eq!(l.ha.kernel.len(), kernel_before, "no SA keyed without PFS");
    assert_eq!(l.ha.child_ups(), 2);
    assert!(no_down(&l.ha) && no_down(&l.mn));
    // With PFS, both work.
    mn_child_request_edited(&mut l, SaClass::MpsMpa, |_| {});
    assert_eq!(l.ha.child_ups(), 3);
    let ha_child = only_sa(&l.ha).children[2].transforms.clone();
    assert!(ha_child.contains("CURVE_25519"), "{ha_child}");
}

// ---- item 5 (audit 7) ----

/// The notify types in the HA's protected response `data` on IKE SA `ha_id`.
fn ha_response_notifies(l: &mut Lab, ha_id: mip6_ike::ike::IkeId, data: &[u8]) -> Vec<u16> {
    let mut got = Vec::new();
    l.ha.ep
        .tamper_own_message(ha_id, data, |_, p| {
            got = p
                .iter()
                .filter_map(|pl| match pl {
                    Payload::Notify(n) => Some(n.notify_type),
                    _ => None,
                })
                .collect();
        })
        .expect("the HA's own response opens");
    got
}

#[test]
fn rekey_of_a_superseded_child_sa_is_refused_and_rekeys_stay_bounded() {
    let mut l = established();
    let mn_id = only_sa(&l.mn).id;
    let ha_id = only_sa(&l.ha).id;
    let old = only_sa(&l.mn).children[1].spi_in;
    // An honest rekey of the payload SA; we keep its request as a template.
    l.mn_command(Command::RekeyChild {
        ike: mn_id,
        spi_in: old,
    });
    let (_, r1) = l.wire[0].clone();
    let mut template = Vec::new();
    l.mn.ep
        .tamper_own_message(mn_id, &r1.data, |_, p| template = p.clone())
        .unwrap();
    l.run_now_n(2);
    // The MN now sends its Delete of the old SA; the hostile peer never lets it arrive, and
    // turns that message ID (and the following ones) into further rekeys instead.
    let (_, del) = l.wire.remove(0);
    l.wire.clear();
    let first_id = Header::parse(&del.data).unwrap().message_id;
    assert_eq!(l.ha.kernel.len(), 6, "old and new payload SAs, BU/BA");
    let successor = only_sa(&l.mn).children.last().unwrap().spi_in;
    let mut answers = Vec::new();
    for n in 0..10u32 {
        // First the superseded SA again, then the honest successor, then each forged one.
        let target = match n {
            0 => old,
            1 => successor,
            _ => 0x4000_0000 + n - 1,
        };
        let new_spi = 0x4000_0000 + n;
        let forged =
            l.mn.ep
                .tamper_own_message(mn_id, &del.data, |h, p| {
                    h.exchange = CREATE_CHILD_SA;
                    h.message_id = first_id + n;
                    *p = template.clone();
                    for pl in p.iter_mut() {
                        if let Payload::Notify(x) = pl
                            && x.notify_type == N_REKEY_SA
                        {
                            x.spi = target.to_be_bytes().to_vec();
                        }
                    }
                    set_esp_spi(p, new_spi);
                })
                .unwrap();
        l.ha.ep
            .handle_datagram(l.now, l.ha.addr, l.mn.addr, &forged);
        let out = l.ha.drain();
        assert_eq!(out.len(), 1);
        answers.push(ha_response_notifies(&mut l, ha_id, &out[0].data));
    }
    // The superseded SA cannot be rekeyed again; the successor can (once), and then one
    // superseded SA per live one is reached: the chain stops there.
    assert_eq!(answers[0], vec![N_TEMPORARY_FAILURE], "{answers:?}");
    assert_eq!(answers[1], Vec::<u16>::new(), "{answers:?}");
    assert_eq!(answers[2], vec![N_TEMPORARY_FAILURE], "{answers:?}");
    let accepted = answers.iter().filter(|a| a.is_empty()).count();
    assert_eq!(accepted, 1, "{answers:?}");
    let ha = only_sa(&l.ha);
    assert!(
        ha.children.len() <= 4,
        "at most one superseded SA per live one: {} children, answers {answers:?}",
        ha.children.len()
    );
    assert_eq!(l.ha.kernel.len(), 2 * ha.children.len());
    assert_eq!(ha.state, "established");
    assert!(no_down(&l.ha));
}

// ---- item 6 (audit 5) ----

/// The notify type of an unprotected one-notify answer.
fn plain_notify(t: &mip6_ike::ike::Transmit) -> u16 {
    match Message::parse(&t.data).unwrap().payloads.as_slice() {
        [Payload::Notify(n)] => n.notify_type,
        other => panic!("not a lone notify: {other:?}"),
    }
}

#[test]
fn invalid_ke_values_are_refused_before_any_dh_and_start_the_cookie_defence() {
    const IKE_MODP: &str = "aes128-sha256-modp2048";
    let mut ha = ha_config(AuthKind::Ecdsa, IKE_MODP, ESP);
    ha.cookie_threshold = 5;
    let mut l = Lab::new(mn_config(AuthKind::Ecdsa, "mn1", IKE_MODP, ESP), ha);
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    let (_, genuine) = l.wire.remove(0);
    // Spoofed requests from many addresses, each with KE value 0 (or p-1, or a short value).
    let mut answers = Vec::new();
    for i in 0..12u16 {
        let mut m = Message::parse(&genuine.data).unwrap();
        m.header.spi_i = 0x1000 + u64::from(i);
        for p in &mut m.payloads {
            if let Payload::Ke { data, .. } = p {
                *data = match i % 3 {
                    0 => vec![0; 256],
                    1 => vec![0xff; 256],
                    _ => vec![2; 255],
                };
            }
        }
        let src: std::net::SocketAddr = format!("[2001:db8:77::{}]:500", i + 1).parse().unwrap();
        l.ha.ep.handle_datagram(l.now, l.ha.addr, src, &m.emit());
        let out = l.ha.drain();
        assert_eq!(out.len(), 1);
        answers.push(plain_notify(&out[0]));
    }
    assert_eq!(l.ha.ep.ike_sa_count(), 0, "no state from a bad KE");
    assert_eq!(&answers[..5], &[N_INVALID_SYNTAX; 5], "{answers:?}");
    assert!(
        answers[5..].iter().all(|&n| n == N_COOKIE),
        "after cookie_threshold refusals, cookies: {answers:?}"
    );
    // The genuine mobile node gets a COOKIE too, returns it and registers.
    l.deliver(true, &genuine);
    assert!(l.establish(2));
    assert!(l.ha.ep.stats.cookies_sent >= 8);
    assert_eq!(only_sa(&l.ha).state, "established");
}

// ---- item 7 (audit 4) ----

/// A host at its own (real) address that starts `n` IKE SAs with the home agent, answers its
/// COOKIEs and never continues to IKE_AUTH: every SA it gets stays half-open.
fn flood(l: &mut Lab, f: &mut Side, n: usize) {
    for _ in 0..n {
        f.ep.handle_command(
            l.now,
            Command::Initiate {
                local: f.addr,
                remote: l.ha.addr,
                home_agent: HA_IP,
                home_address: HomeAddress::Static(HOA2),
                classes: BU_PAYLOAD.to_vec(),
                remote_identity: None,
            },
        )
        .unwrap();
    }
    loop {
        let out: Vec<_> = f
            .drain()
            .into_iter()
            .filter(|t| Header::parse(&t.data).is_ok_and(|h| h.exchange == IKE_SA_INIT))
            .collect();
        if out.is_empty() {
            return;
        }
        for t in out {
            l.ha.ep.handle_datagram(l.now, l.ha.addr, f.addr, &t.data);
            for a in l.ha.drain() {
                if a.remote == f.addr {
                    f.ep.handle_datagram(l.now, f.addr, l.ha.addr, &a.data);
                } else {
                    l.wire.push((false, a));
                }
            }
        }
    }
}

#[test]
fn one_source_cannot_fill_the_half_open_table() {
    let mut ha = ha_config(AuthKind::Ecdsa, IKE, ESP);
    ha.cookie_threshold = 20;
    ha.max_half_open = 20;
    let mut l = Lab::new(mn1(), ha);
    let mut f = Side::new(
        mn_config(AuthKind::Ecdsa, "mn2", IKE, ESP),
        "[2001:db8:99::9]:500",
        9,
        l.now,
    );
    flood(&mut l, &mut f, 100);
    let dropped = l.ha.ep.stats.dropped;
    assert!(
        l.ha.ep.ike_sa_count() <= mip6_ike::ike::DEFAULT_HALF_OPEN_PER_SOURCE,
        "{} half-open SAs from one address",
        l.ha.ep.ike_sa_count()
    );
    // The mobile node registers from another address while the flood goes on.
    l.initiate(HomeAddress::Static(HOA1), BU_PAYLOAD);
    flood(&mut l, &mut f, 100);
    assert!(l.ha.ep.stats.dropped > dropped, "the flood is dropped");
    assert!(l.establish(2));
    assert!(l.ha.ep.list().iter().any(|s| s.state == "established"));
    assert!(!l.mn.exchange_failed(None));
    // A second later the flooder has a few tokens again, but still no more half-open SAs.
    l.advance(Duration::from_secs(1));
    flood(&mut l, &mut f, 20);
    let half_open =
        l.ha.ep
            .list()
            .iter()
            .filter(|s| s.state == "half-open")
            .count();
    assert!(
        half_open <= mip6_ike::ike::DEFAULT_HALF_OPEN_PER_SOURCE,
        "{half_open}"
    );
    assert!(no_down(&l.ha));
}

// ---- item 8 (audit 1) ----

/// Every kernel selector the HA was asked to install since op number `from`.
fn ha_selectors_since(l: &Lab, from: usize) -> Vec<mip6_ike::kernel::Selector> {
    l.ha.ops[from..]
        .iter()
        .filter_map(|op| match op {
            mip6_ike::kernel::KernelOp::AddSa(spec) => Some(spec.selectors.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_selector_range_without_kernel_form_is_narrowed_never_widened_to_any() {
    let mut l = established();
    let ops = l.ha.ops.len();
    // TSr a range that is no prefix: it fits the payload class (HoA <-> ::/0).
    let range = |p: &mut Vec<Payload>| {
        for pl in p.iter_mut() {
            if let Payload::TsR(ts) = pl {
                ts[0].start_addr = "2001:db8:ffff::1".parse().unwrap();
                ts[0].end_addr = "2001:db8:ffff::2".parse().unwrap();
            }
        }
    };
    mn_child_request_edited(&mut l, SaClass::Payload, range);
    assert_eq!(l.ha.child_ups(), 3, "{:?}", l.mn.events);
    let sels = ha_selectors_since(&l, ops);
    assert_eq!(sels.len(), 2, "{sels:?}");
    for s in &sels {
        assert!(
            s.src_prefix == 128 && s.dst_prefix == 128,
            "narrowed to single addresses, never any-to-any: {s:?}"
        );
    }
    let ha = only_sa(&l.ha);
    let new = ha.children.last().unwrap();
    assert_eq!(new.ts_local[0].start_addr, new.ts_local[0].end_addr);
    // Narrower than the payload class: a CHILD_SA of its own on the HA, not the class's.
    assert_eq!(new.class, None);
    // The MN agreed to the narrowed selectors (they lie within what it asked).
    assert_eq!(only_sa(&l.mn).children.len(), 3);

    // MH / ICMPv6 ranges with partial codes have no kernel form at all: TS_UNACCEPTABLE.
    let ops = l.ha.ops.len();
    let codes = |p: &mut Vec<Payload>| {
        for pl in p.iter_mut() {
            if let Payload::TsI(ts) | Payload::TsR(ts) = pl {
                for t in ts {
                    (t.start_port, t.end_port) = (0x9200, 0x9280);
                }
            }
        }
    };
    mn_child_request_edited(&mut l, SaClass::MpsMpa, codes);
    assert_eq!(failures(&l.mn, N_TS_UNACCEPTABLE), 1, "{:?}", l.mn.events);
    assert!(ha_selectors_since(&l, ops).is_empty());
    assert_eq!(only_sa(&l.ha).children.len(), 3);
    assert!(no_down(&l.ha) && no_down(&l.mn));
}

// ---- item 9 (audit 8) ----

#[test]
fn reload_takes_away_classes_and_home_addresses_from_established_sas() {
    use mip6_ike::mobility::UserAuth;
    use std::sync::Arc;
    let mut l = established();
    let all = [SaClass::BuBa, SaClass::Payload, SaClass::MpsMpa];
    // mn2 is untouched by every reload below.
    let mn2 = || user("mn2", MN2_DN, UserAuth::Certificate, &[HOA2], &all);
    let mn1 = |hoas: &[std::net::Ipv6Addr], classes: &[SaClass]| {
        user("mn1", MN1_DN, UserAuth::Certificate, hoas, classes)
    };
    // A reload that takes nothing away changes nothing.
    l.ha.ep
        .set_config(Arc::new(ha_with_users(vec![mn1(&[HOA1], &all), mn2()])));
    l.collect();
    assert!(l.wire.is_empty() && no_down(&l.ha));
    assert_eq!(only_sa(&l.ha).children.len(), 2);
    // The payload class is taken away: its CHILD_SA goes, with a Delete to the MN.
    l.ha.ep.set_config(Arc::new(ha_with_users(vec![
        mn1(&[HOA1], &[SaClass::BuBa]),
        mn2(),
    ])));
    l.collect();
    l.run_now();
    let ha = only_sa(&l.ha);
    assert_eq!(ha.state, "established");
    assert_eq!(ha.children.len(), 1);
    assert_eq!(ha.children[0].class, Some(SaClass::BuBa));
    assert_eq!(l.ha.kernel.len(), 2, "the payload SAs left the kernel");
    assert_eq!(only_sa(&l.mn).children.len(), 1, "the MN got the Delete");
    // Nor can it come back.
    let id = only_sa(&l.mn).id;
    l.mn_command(Command::CreateChild {
        ike: id,
        class: SaClass::Payload,
    });
    l.run_now();
    assert_eq!(failures(&l.mn, N_TS_UNACCEPTABLE), 1, "{:?}", l.mn.events);
    assert_eq!(l.ha.kernel.len(), 2);
    // The home address is taken away: the IKE SA goes (Delete to the peer).
    let other = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x300);
    l.ha.ep
        .set_config(Arc::new(ha_with_users(vec![mn1(&[other], &all), mn2()])));
    l.collect();
    l.run_now();
    assert_eq!(l.ha.ep.ike_sa_count(), 0);
    assert!(l.ha.kernel.is_empty());
    assert!(
        l.ha.events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. }))
    );
    assert!(
        l.mn.events
            .iter()
            .any(|e| matches!(e, Event::IkeDown { .. })),
        "the MN got the Delete"
    );
}
