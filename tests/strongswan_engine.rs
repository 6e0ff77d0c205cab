//! Our home agent answers real strongSwan IKE_SA_INIT requests (captured from strongSwan 5.9.8,
//! see tests/fixtures/strongswan/README.md): the proposal strongSwan offers is selected, our KE
//! is in its group, and no state is kept for requests we refuse.

mod common;

use common::*;
use mip6_ike::wire::consts::*;
use mip6_ike::wire::{Message, Payload};

fn answer(ike_p: &str, fixture: &[u8]) -> (Message, usize) {
    let mut l = Lab::new(
        mn_config(AuthKind::Ecdsa, "mn1", ike_p, "aes128-sha256"),
        ha_config(AuthKind::Ecdsa, ike_p, "aes128-sha256"),
    );
    let from = "[2001:db8:1::2]:500".parse().unwrap();
    l.ha.ep.handle_datagram(l.now, l.ha.addr, from, fixture);
    let out = l.ha.drain();
    assert_eq!(out.len(), 1, "one answer");
    assert_eq!(out[0].remote, from);
    (
        Message::parse(&out[0].data).unwrap(),
        l.ha.ep.ike_sa_count(),
    )
}

fn check_accepted(
    m: &Message,
    encr: u16,
    key_bits: Option<u16>,
    prf: u16,
    group: u16,
    ke_len: usize,
) {
    let req_spi = m.header.spi_i;
    assert_ne!(req_spi, 0);
    assert_ne!(m.header.spi_r, 0);
    assert_eq!(m.header.flags, FLAG_RESPONSE);
    let sa = m
        .payloads
        .iter()
        .find_map(|p| {
            if let Payload::Sa(v) = p {
                Some(v)
            } else {
                None
            }
        })
        .expect("SA");
    assert_eq!(sa.len(), 1);
    let t = &sa[0].transforms;
    assert!(t.iter().any(|t| t.transform_type == TRANS_ENCR
        && t.transform_id == encr
        && t.key_length() == key_bits));
    assert!(
        t.iter()
            .any(|t| t.transform_type == TRANS_PRF && t.transform_id == prf)
    );
    assert!(
        t.iter()
            .any(|t| t.transform_type == TRANS_DH && t.transform_id == group)
    );
    let ke = m.payloads.iter().find_map(|p| {
        if let Payload::Ke { group, data } = p {
            Some((*group, data.len()))
        } else {
            None
        }
    });
    assert_eq!(ke, Some((group, ke_len)));
    assert!(
        m.payloads
            .iter()
            .any(|p| matches!(p, Payload::Nonce(n) if n.len() == 32))
    );
    for ty in [N_NAT_DETECTION_SOURCE_IP, N_NAT_DETECTION_DESTINATION_IP] {
        assert!(
            m.payloads.iter().any(
                |p| matches!(p, Payload::Notify(n) if n.notify_type == ty && n.data.len() == 20)
            )
        );
    }
}

#[test]
fn answers_strongswan_x25519_cbc() {
    let (m, sas) = answer(
        "aes128-sha256-x25519",
        include_bytes!("fixtures/strongswan/psk-x25519-cbc/01-ike_sa_init-req.bin"),
    );
    check_accepted(
        &m,
        ENCR_AES_CBC,
        Some(128),
        PRF_HMAC_SHA2_256,
        DH_CURVE25519,
        32,
    );
    assert_eq!(sas, 1, "half-open SA kept for IKE_AUTH");
}

#[test]
fn answers_strongswan_ecp256_gcm() {
    let (m, _) = answer(
        "aes128gcm16-prfsha256-ecp256",
        include_bytes!("fixtures/strongswan/ecdsa-ecp256-gcm/01-ike_sa_init-req.bin"),
    );
    check_accepted(
        &m,
        ENCR_AES_GCM_16,
        Some(128),
        PRF_HMAC_SHA2_256,
        DH_ECP_256,
        64,
    );
}

#[test]
fn answers_strongswan_modp2048() {
    let (m, _) = answer(
        "aes256-sha384-modp2048",
        include_bytes!("fixtures/strongswan/rsa-modp2048-cbc/01-ike_sa_init-req.bin"),
    );
    check_accepted(
        &m,
        ENCR_AES_CBC,
        Some(256),
        PRF_HMAC_SHA2_384,
        DH_MODP_2048,
        256,
    );
}

#[test]
fn strongswan_offering_only_a_group_we_refuse_gets_no_proposal_chosen() {
    // strongSwan offered X25519 only; a HA that only takes ECP-256 refuses and keeps no state.
    let (m, sas) = answer(
        "aes128-sha256-ecp256",
        include_bytes!("fixtures/strongswan/psk-x25519-cbc/01-ike_sa_init-req.bin"),
    );
    assert!(
        matches!(&m.payloads[..], [Payload::Notify(n)] if n.notify_type == N_NO_PROPOSAL_CHOSEN),
        "{:?}",
        m.payloads
    );
    assert_eq!(sas, 0);
}
