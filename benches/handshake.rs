//! Full MN-HA handshakes in process (IKE_SA_INIT + IKE_AUTH with one CHILD_SA, X25519 and
//! ECDSA P-256), both sides' work included. Prints handshakes/s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use mip6_ike::ike::HomeAddress;
use mip6_ike::mobility::SaClass;

fn one_handshake(kind: AuthKind, ike_p: &str) {
    let mut l = Lab::new(
        mn_config(kind, "mn1", ike_p, "aes128-sha256"),
        ha_config(kind, ike_p, "aes128-sha256"),
    );
    l.initiate(HomeAddress::Static(HOA1), &[SaClass::BuBa]);
    assert!(l.establish(1));
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("x25519_ecdsa_p256_one_child", |b| {
        b.iter(|| one_handshake(AuthKind::Ecdsa, "aes128-sha256-x25519"))
    });
    g.bench_function("x25519_psk_one_child", |b| {
        b.iter(|| one_handshake(AuthKind::Psk, "aes128-sha256-x25519"))
    });
    g.finish();
    // A plain figure for the README, measured the same way.
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        one_handshake(AuthKind::Ecdsa, "aes128-sha256-x25519");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "handshake x25519+ecdsa-p256, one CHILD_SA, both sides in one thread: {:.0} handshakes/s",
        n as f64 / secs
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
