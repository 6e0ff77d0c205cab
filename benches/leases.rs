//! Cost of handing out a dynamic home address with N leases already held (issue 13: the old
//! scan from the pool's start cost ~80 ns per lease held), and of persisting one lease change
//! (the lease journal: the old lease file was rewritten whole for every write). Prints
//! criterion's figures for 0 / 10,000 / 100,000 leases held; flat means O(1) or O(log n).
//! Run: `cargo bench --bench leases` (the journal cases write to a temporary directory under
//! `$TMPDIR`, or `$LEASE_BENCH_DIR`, fsync included: on a disk, the fsync dominates `append`
//! and varies with the disk's load; on tmpfs, e.g. `LEASE_BENCH_DIR=/dev/shm`, what is left is
//! the CPU and the write).

use std::hint::black_box;
use std::net::Ipv6Addr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mip6_ike::mobility::{LeaseJournal, LeaseStore, LeaseTable, Pool, PoolKind};

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

/// One lease change made durable, with N leases held: the engine takes the changed entries
/// (`take_changes`), the writer serializes and appends them, and fsyncs (one change per write,
/// the worst case of group commit). `encode` is the CPU part alone (taking and serializing);
/// `append` adds the write and fsync (compactions included when they fall due: at 100,000
/// leases one falls every 100,000 changes, see `snapshot`). `snapshot` is one compaction
/// (the whole table as TOML, fsync, rename), which the old design paid on every write; divided
/// by max(4096, N) it is the amortized share per change.
fn persist(c: &mut Criterion) {
    // `cargo test --all-targets` runs benchmarks once as a test (no `--bench`, a debug build):
    // small tables there.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: &[u32] = if benching {
        &[0, 10_000, 100_000]
    } else {
        &[0, 1_000]
    };
    let p = pool();
    let mut g = c.benchmark_group("lease_persist");
    for &held in sizes {
        let setup = || {
            let dir = match std::env::var_os("LEASE_BENCH_DIR") {
                Some(d) => tempfile::tempdir_in(d),
                None => tempfile::tempdir(),
            }
            .unwrap();
            let store = LeaseStore::new(dir.path().join("leases.toml"));
            let mut t = table_with(&p, held);
            let mut j = LeaseJournal::new(store, t.list());
            let _ = t.take_changes();
            // The first write is a snapshot: out of the way before measuring.
            j.write(Vec::new()).unwrap();
            (dir, t, j)
        };
        // A visitor comes and goes: one change (granted, then removed) per round.
        let change = |t: &mut LeaseTable, n: &mut u64| {
            *n += 1;
            if *n % 2 == 1 {
                t.acquire("fqdn:visitor", "u", &p, None, |_| false, *n);
            } else {
                t.release("fqdn:visitor", *n, 0);
                t.expire(*n);
            }
        };
        g.bench_with_input(BenchmarkId::new("encode", held), &held, |b, _| {
            let (_dir, mut t, _j) = setup();
            let mut n = 0u64;
            let mut buf = Vec::new();
            b.iter(|| {
                change(&mut t, &mut n);
                buf.clear();
                for c in t.take_changes() {
                    mip6_ike::mobility::encode_record(&c, &mut buf);
                }
                black_box(buf.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("append", held), &held, |b, _| {
            let (_dir, mut t, mut j) = setup();
            let mut n = 0u64;
            b.iter(|| {
                change(&mut t, &mut n);
                j.write(t.take_changes()).unwrap();
            })
        });
        g.bench_with_input(BenchmarkId::new("snapshot", held), &held, |b, _| {
            let (_dir, _t, mut j) = setup();
            b.iter(|| j.compact().unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_group! {
    name = persistence;
    // A snapshot of 100,000 leases takes a while: fewer samples.
    config = Criterion::default().sample_size(10);
    targets = persist
}
criterion_main!(benches, persistence);
