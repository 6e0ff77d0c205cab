//! Cost of handing out a dynamic home address with N leases already held (issue 13: the old
//! scan from the pool's start cost ~80 ns per lease held). Prints criterion's figures for
//! 0 / 10,000 / 100,000 leases held; flat means O(1) or O(log n).
//! Run: `cargo bench --bench leases`.

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mip6_ike::mobility::{LeaseTable, Pool, PoolKind};

fn pool() -> Pool {
    Pool {
        name: "visitors".into(),
        kind: PoolKind::Addresses {
            first: "2001:db8:1::1:0".parse::<Ipv6Addr>().unwrap(),
            last: "2001:db8:1::ffff:ffff".parse::<Ipv6Addr>().unwrap(),
        },
        lifetime: 0,
    }
}

fn table_with(p: &Pool, held: u32) -> LeaseTable {
    let mut t = LeaseTable::new();
    for i in 0..held {
        t.acquire(&format!("fqdn:held{i}"), "u", p, None, |_| false, 0)
            .unwrap();
    }
    t
}

fn bench(c: &mut Criterion) {
    let p = pool();
    let mut g = c.benchmark_group("lease_acquire");
    for held in [0u32, 10_000, 100_000] {
        // A new mobile node gets an address, leaves, and its lease expires: the table stays at
        // `held` leases, and each round takes the item the last one gave back.
        g.bench_with_input(BenchmarkId::new("reuse", held), &held, |b, &held| {
            let mut t = table_with(&p, held);
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let a = t.acquire("fqdn:visitor", "u", &p, None, |_| false, n);
                t.release("fqdn:visitor", n, 0);
                t.expire(n);
                black_box(a)
            })
        });
        // A stream of new mobile nodes that stay: each takes a never-used item.
        g.bench_with_input(BenchmarkId::new("fresh", held), &held, |b, &held| {
            let mut t = table_with(&p, held);
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                black_box(t.acquire(&format!("fqdn:new{n}"), "u", &p, None, |_| false, 0))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
