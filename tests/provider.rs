//! The engine side of the address provider (src/ike/provider.rs), with simulated time: an
//! IKE_AUTH asking for a home address is parked until the daemon answers, retransmissions
//! while parked get nothing, and without any answer the engine resumes by itself after the
//! provider timeout plus one second, with its own assignment.

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;
use mip6_ike::ike::{Command, Event, HomeAddress, IkeId, ProvidedAddress};
use mip6_ike::mobility::SaClass;

const CLASSES: [SaClass; 2] = [SaClass::BuBa, SaClass::Payload];

fn wanted(lab: &Lab) -> Option<IkeId> {
    lab.ha.events.iter().find_map(|e| match e {
        Event::AddressWanted { ike, .. } => Some(*ike),
        _ => None,
    })
}

fn mn_hoa(lab: &Lab) -> Option<Ipv6Addr> {
    lab.mn.events.iter().find_map(|e| match e {
        Event::HoaAssigned { address, .. } => Some(*address),
        _ => None,
    })
}

fn lab_with_provider(timeout: Duration) -> Lab {
    let mut lab = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    lab.ha.ep.set_address_provider(Some(timeout));
    lab
}

#[test]
fn a_parked_ike_auth_resumes_with_the_providers_address() {
    let mut lab = lab_with_provider(Duration::from_secs(10));
    lab.initiate(HomeAddress::Dynamic, &CLASSES);
    assert!(lab.run(|l| wanted(l).is_some(), |_, _, _| true));
    let ike = wanted(&lab).unwrap();
    let Some(Event::AddressWanted {
        identity,
        user,
        wants_address,
        wants_prefix,
        requested,
        ..
    }) = lab
        .ha
        .events
        .iter()
        .find(|e| matches!(e, Event::AddressWanted { .. }))
        .cloned()
    else {
        unreachable!()
    };
    assert_eq!(identity.to_string(), MN1_DN);
    assert_eq!(user, "mn1");
    assert!(wants_address && !wants_prefix);
    assert_eq!(requested, None);
    // Parked: nothing answered, nothing up, even when the MN retransmits.
    assert!(lab.wire.is_empty());
    lab.advance(Duration::from_secs(2));
    assert!(!lab.wire.is_empty(), "the MN should retransmit IKE_AUTH");
    lab.run_now();
    assert!(lab.wire.is_empty(), "a parked request must not be answered");
    assert!(!lab.ha.ike_up() && !lab.mn.ike_up());
    // A provider's address that is not in the user's file: the provider is authoritative.
    let addr: Ipv6Addr = "2001:db8:1::77".parse().unwrap();
    let answer = ProvidedAddress {
        address: Some(addr),
        ..Default::default()
    };
    lab.ha
        .ep
        .handle_command(lab.now, Command::ProvideAddress { ike, answer })
        .unwrap();
    lab.collect();
    assert!(lab.establish(2));
    assert_eq!(mn_hoa(&lab), Some(addr));
    assert_eq!(lab.ha.ep.list()[0].home_address, Some(addr));
    // Once resumed, a second answer is refused.
    let err = lab
        .ha
        .ep
        .handle_command(lab.now, Command::ProvideAddress { ike, answer })
        .unwrap_err();
    assert!(err.contains("not waiting"), "{err}");
}

#[test]
fn without_an_answer_the_engine_resumes_after_the_timeout_with_its_own_address() {
    let mut lab = lab_with_provider(Duration::from_secs(2));
    lab.initiate(HomeAddress::Dynamic, &CLASSES);
    assert!(lab.run(|l| wanted(l).is_some(), |_, _, _| true));
    let parked_at = lab.now.at;
    assert!(lab.establish(2));
    // Timeout (2 s) plus the one-second backstop, not earlier.
    assert!(lab.now.at.duration_since(parked_at) >= Duration::from_secs(3));
    assert_eq!(mn_hoa(&lab), Some(HOA1));
}

#[test]
fn without_a_provider_nothing_is_parked() {
    let mut lab = Lab::new(mn1(), ha_config(AuthKind::Ecdsa, IKE, ESP));
    lab.initiate(HomeAddress::Dynamic, &CLASSES);
    assert!(lab.establish(2));
    assert!(wanted(&lab).is_none());
    // A static home address asks for nothing either.
    let mut lab = lab_with_provider(Duration::from_secs(2));
    lab.initiate(HomeAddress::Static(HOA1), &CLASSES);
    assert!(lab.establish(2));
    assert!(wanted(&lab).is_none());
}
