//! A kernel MIGRATE for one mobile node on a home agent holding 100,000 established IKE SAs
//! (PSK, two CHILD_SAs each; issue 13 asks for p99 < 100 µs). The stream is synthetic: random
//! mobile nodes move to a new care-of address, each move being the five MIGRATEs mip6d sends on
//! the home agent while it processes the BU (the first moves the IKE SA, the others find it
//! already there). Criterion gives the mean per MIGRATE; a timed loop over 100,000 moves then
//! prints percentiles, for every MIGRATE and for the first of each move.
//! Run: `cargo bench --bench migrate` (MIGRATE_SAS=N for another number of IKE SAs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use common::many::{Registrar, coa, hoa};
use common::xorshift::XorShift;
use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use mip6_ike::kernel::{Direction, KernelEvent, Migrate, Selector};

const IPPROTO_MH: u8 = 135;

/// The MIGRATEs mip6d sends on the home agent when mobile node `i`'s binding moves from
/// `old` to `new` (MH transport entries carry `::`, the tunnel entries the outer endpoints; one
/// tunnel policy twice, as seen on a real HA). KMADDRESS: (HA, new care-of address).
fn ha_migrates(i: u32, old: Ipv6Addr, new: Ipv6Addr) -> [KernelEvent; 5] {
    let any = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let (h, ha) = (IpAddr::V6(hoa(i)), IpAddr::V6(HA_IP));
    let m = |selector: Selector, direction, reqid, o: (IpAddr, IpAddr), n: (IpAddr, IpAddr)| {
        KernelEvent::Migrate(Migrate {
            selector,
            direction,
            reqid,
            old_src: o.0,
            old_dst: o.1,
            new_src: n.0,
            new_dst: n.1,
            km_local: Some(ha),
            km_remote: Some(IpAddr::V6(new)),
        })
    };
    let (o, n) = (IpAddr::V6(old), IpAddr::V6(new));
    [
        m(
            Selector::new(ha, 128, h, 128, IPPROTO_MH),
            Direction::Out,
            2,
            (any, any),
            (any, any),
        ),
        m(
            Selector::new(h, 128, ha, 128, IPPROTO_MH),
            Direction::In,
            1,
            (any, any),
            (any, any),
        ),
        m(
            Selector::new(any, 0, h, 128, 0),
            Direction::Out,
            4,
            (ha, o),
            (ha, n),
        ),
        m(
            Selector::new(h, 128, any, 0, 0),
            Direction::In,
            3,
            (o, ha),
            (n, ha),
        ),
        m(
            Selector::new(h, 128, any, 0, 0),
            Direction::In,
            3,
            (o, ha),
            (n, ha),
        ),
    ]
}

/// Random moves of random mobile nodes; each remembers its care-of address.
struct Stream {
    rng: XorShift,
    at: Vec<u16>,
}

impl Stream {
    fn new(n: u32) -> Stream {
        Stream {
            rng: XorShift(0x9e37_79b9_7f4a_7c15),
            at: vec![0; n as usize],
        }
    }
    fn next_move(&mut self) -> [KernelEvent; 5] {
        let i = self.rng.below(self.at.len()) as u32;
        let k = &mut self.at[i as usize];
        let old = coa(i, *k);
        *k = k.wrapping_add(1);
        ha_migrates(i, old, coa(i, *k))
    }
}

fn handle(r: &mut Registrar, ev: KernelEvent) {
    r.ha.handle_kernel(r.now, ev);
    while r.ha.poll_kernel_op().is_some() {}
    while let Some(e) = r.ha.poll_event() {
        black_box(e);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: {} events, p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, p99.9 {:.2?}, max {:.2?}",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        percentile(&v, 0.999),
        v[v.len() - 1]
    );
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs benchmarks once as a test (no `--bench`, a debug build):
    // a thousand SAs and moves then, so that it stays a quick check.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: u32 = std::env::var("MIGRATE_SAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 1_000 });
    let mut r = Registrar::new(AuthKind::Psk);
    let t = Instant::now();
    for i in 0..n {
        r.register(i);
    }
    println!(
        "{n} IKE SAs (PSK, 2 CHILD_SAs each) established in {:.1?}",
        t.elapsed()
    );
    assert_eq!(r.ha.ike_sa_count(), n as usize);
    let mut s = Stream::new(n);

    let mut g = c.benchmark_group("migrate");
    g.measurement_time(Duration::from_secs(5));
    let mut queue: Vec<KernelEvent> = Vec::new();
    g.bench_function(format!("one_migrate_among_{n}_ike_sas"), |b| {
        b.iter(|| {
            if queue.is_empty() {
                queue.extend(s.next_move().into_iter().rev());
            }
            handle(&mut r, queue.pop().unwrap());
        })
    });
    g.finish();
    // Finish the move under way so that every MN is where the stream thinks.
    while let Some(ev) = queue.pop() {
        handle(&mut r, ev);
    }

    // Percentiles: every MIGRATE timed on its own (engine call and draining its outputs).
    let moves = if benching { 100_000 } else { 1_000 };
    let migrations0 = r.ha.stats.migrations;
    let (mut all, mut first) = (Vec::with_capacity(5 * moves), Vec::with_capacity(moves));
    for _ in 0..moves {
        for (j, ev) in s.next_move().into_iter().enumerate() {
            let t = Instant::now();
            handle(&mut r, ev);
            let d = t.elapsed();
            all.push(d);
            if j == 0 {
                first.push(d);
            }
        }
    }
    // Each move moved its IKE SA once (the K bit), and only once.
    assert_eq!(r.ha.stats.migrations - migrations0, moves as u64);
    report(&format!("MIGRATE among {n} IKE SAs, every one"), all);
    report(
        &format!("MIGRATE among {n} IKE SAs, the first of each move (moves the SA)"),
        first,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
