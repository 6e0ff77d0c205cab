//! The daemon's part of the mobility features over loopback: leases saved to the lease file and
//! loaded again after a restart (and on disk before the reply that grants them), and a reload
//! that adds and removes users without touching other users' SAs.

mod common;

use std::fs;
use std::net::{Ipv6Addr, SocketAddr};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::{
    HA_ID, MN1_POOL_USER, MN1_STATIC_USER, Running, ha_toml, leases, list, mn_toml as mn_file,
    mn1_toml, start, stop, tree, wait_children, wait_event, wait_ike_down,
};
use mip6_ike::daemon::{Control, Daemon, SharedKernel};
use mip6_ike::ike::Event;
use mip6_ike::mobility::{Lease, LeaseChange, LeaseJournal, LeaseState, LeaseStore, SaveHook};
use mip6_ike::policy;

fn ha() -> String {
    ha_toml(
        "::1",
        r#"lease_file = "leases.toml"
lease_grace = 600
[pools.dyn]
range = "2001:db8:1::1000-2001:db8:1::10ff"
"#,
    )
}

fn mn_toml(ha: SocketAddr, hoa: &str) -> String {
    mn1_toml(ha, hoa, &format!("home_agent_id = \"{HA_ID}\"\n"))
}

#[tokio::test(flavor = "current_thread")]
async fn leases_are_saved_and_survive_a_restart() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_POOL_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let file = dir.path().join("leases.toml");
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    let got = wait_children(&mut mn.events, 2)
        .await
        .hoa
        .expect("a home address");
    wait_children(&mut ha.events, 2).await;
    assert_eq!(got, "2001:db8:1::1000".parse::<Ipv6Addr>().unwrap());
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Bound));
    // On disk: in the journal (the snapshot written at start is empty; a write appends).
    let journal = fs::read_to_string(dir.path().join("leases.toml.journal")).unwrap_or_default();
    assert!(
        journal.contains("2001:db8:1::1000") && journal.contains("bound"),
        "{journal}"
    );
    // No temporary file left next to it.
    assert!(!dir.path().join(".leases.toml.tmp").exists());

    stop(mn).await;
    stop(ha).await;
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("state = \"released\""), "{text}");

    // Restart: the lease is loaded, and the same identity gets the same address back.
    let mut ha = start(&dir.path().join("ha.toml"));
    let l = leases(&ha.tx).await;
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].address, l[0].state), (got, LeaseState::Released));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    assert_eq!(wait_children(&mut mn.events, 2).await.hoa, Some(got));
    wait_children(&mut ha.events, 2).await;
    assert_eq!(leases(&ha.tx).await[0].state, LeaseState::Bound);
    stop(mn).await;
    stop(ha).await;

    // A lease file the daemon cannot read stops the start (its addresses may be in use).
    fs::write(&file, "version = 9\n").unwrap();
    let e = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("version 9 is not supported"), "{e}");
}

/// A daemon that stopped without its last snapshot (a crash) left changes in the journal: the
/// next start replays them (a torn last record ignored), hands out only what they freed, and a
/// clean stop folds the journal into the snapshot.
#[tokio::test(flavor = "current_thread")]
async fn a_journal_left_by_a_crash_is_replayed_at_start() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_POOL_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let store = LeaseStore::new(dir.path().join("leases.toml"));
    let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let lease = |i: u32, address: &str| Lease {
        identity: format!("fqdn:old{i}.example.net"),
        user: "old".into(),
        pool: "dyn".into(),
        address: a(address),
        prefix_len: 128,
        state: LeaseState::Bound,
        expires: None,
    };
    let mut j = LeaseJournal::new(store.clone(), Vec::new());
    // The first write is the snapshot; the second is appended to the journal.
    j.write(vec![
        LeaseChange::Set(lease(0, "2001:db8:1::1000")),
        LeaseChange::Set(lease(1, "2001:db8:1::1001")),
    ])
    .unwrap();
    j.write(vec![
        LeaseChange::Set(lease(2, "2001:db8:1::1002")),
        LeaseChange::Del {
            address: a("2001:db8:1::1000"),
            prefix_len: 128,
        },
    ])
    .unwrap();
    drop(j);
    let mut journal = fs::OpenOptions::new()
        .append(true)
        .open(store.journal_path())
        .unwrap();
    std::io::Write::write_all(&mut journal, b"0123456789abcdef {\"set\":{\"ident").unwrap();
    drop(journal);

    let mut ha = start(&dir.path().join("ha.toml"));
    let l = leases(&ha.tx).await;
    assert_eq!(
        l.iter().map(|l| (l.address, l.state)).collect::<Vec<_>>(),
        [
            (a("2001:db8:1::1001"), LeaseState::Released),
            (a("2001:db8:1::1002"), LeaseState::Released)
        ]
    );
    // The removed lease's address is free again; the others are not handed out.
    fs::write(dir.path().join("mn.toml"), mn_toml(ha.addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    assert_eq!(
        wait_children(&mut mn.events, 2).await.hoa,
        Some(a("2001:db8:1::1000"))
    );
    wait_children(&mut ha.events, 2).await;
    stop(mn).await;
    stop(ha).await;
    assert_eq!(
        fs::read(store.journal_path()).unwrap(),
        b"",
        "compacted at stop"
    );
    let on_disk = store.load().unwrap();
    assert_eq!(on_disk.len(), 3);
    assert!(on_disk.iter().all(|l| l.state == LeaseState::Released));
}

#[tokio::test(flavor = "current_thread")]
async fn reload_adds_and_removes_users_without_touching_other_sas() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_STATIC_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let mut ha = start(&dir.path().join("ha.toml"));
    fs::write(
        dir.path().join("mn.toml"),
        mn_toml(ha.addr, "2001:db8:1::100"),
    )
    .unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    wait_children(&mut mn.events, 2).await;
    wait_children(&mut ha.events, 2).await;
    let before = list(&ha.tx).await;
    assert_eq!(before.len(), 1);

    // Add a user: mn1's SAs are untouched.
    fs::write(
        dir.path().join("users/mn9.toml"),
        "identity = \"fqdn:mn9.example.net\"\npsk = \"another example key 0123456789\"\nhome_addresses = [\"2001:db8:1::900\"]\n",
    )
    .unwrap();
    // A file holding a pre-shared key must be private, as a key file.
    fs::set_permissions(
        dir.path().join("users/mn9.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    assert_eq!(list(&ha.tx).await, before);

    // Remove mn1: its IKE SA is deleted, on both sides.
    fs::remove_file(dir.path().join("users/mn1.toml")).unwrap();
    ha.tx.send(Control::Reload).await.unwrap();
    for (side, events) in [("MN", &mut mn.events), ("HA", &mut ha.events)] {
        wait_ike_down(
            events,
            &format!("{side}: the removed user's IKE SA was not deleted"),
        )
        .await;
    }
    assert!(list(&ha.tx).await.is_empty());
    stop(mn).await;
    stop(ha).await;
}

/// Starts the daemon configured at `path` with `hook` run before each lease file write.
fn start_with_hook(path: &Path, hook: SaveHook) -> Running {
    let mut d = Daemon::bind(policy::load(path).unwrap(), Box::new(SharedKernel::new())).unwrap();
    d.set_lease_hook(hook);
    let addr = d.ike_addr().unwrap();
    let events = d.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(d.run(rx));
    Running {
        tx,
        task,
        events,
        addr,
    }
}

/// A crash right after the IKE_AUTH response that grants a dynamic home address must not lose
/// the lease: the response leaves only once the file holds it. The writes are made slow, so that
/// a response sent before its write would reach the mobile node while the file lacks the lease;
/// the home agent runs on a thread of its own, so that a write on its task cannot hold up the
/// mobile node either.
#[tokio::test(flavor = "current_thread")]
async fn the_reply_granting_a_home_address_waits_for_the_lease_file() {
    let dir = tree();
    fs::write(dir.path().join("users/mn1.toml"), MN1_POOL_USER).unwrap();
    fs::write(dir.path().join("ha.toml"), ha()).unwrap();
    let file = dir.path().join("leases.toml");
    // Its sockets belong to its own runtime, which drives them on its thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = rt.enter();
    let mut d = Daemon::bind(
        policy::load(dir.path().join("ha.toml")).unwrap(),
        Box::new(SharedKernel::new()),
    )
    .unwrap();
    drop(guard);
    d.set_lease_hook(Arc::new(|_| std::thread::sleep(Duration::from_millis(300))));
    let ha_addr = d.ike_addr().unwrap();
    let (ha_tx, rx) = tokio::sync::mpsc::channel(4);
    let ha = std::thread::spawn(move || rt.block_on(d.run(rx)).map(|_| ()));
    fs::write(dir.path().join("mn.toml"), mn_toml(ha_addr, "dynamic")).unwrap();
    let mut mn = start(&dir.path().join("mn.toml"));
    let Event::HoaAssigned { address, .. } = wait_event(&mut mn.events, "a home address", |e| {
        matches!(e, Event::HoaAssigned { .. })
    })
    .await
    else {
        unreachable!()
    };
    // The moment the mobile node has its address, the file has the lease.
    let on_disk = LeaseStore::new(&file).load().unwrap();
    assert!(
        on_disk
            .iter()
            .any(|l| l.address == address && l.state == LeaseState::Bound),
        "{address} granted but not in the lease file: {on_disk:?}"
    );
    stop(mn).await;
    ha_tx.send(Control::Shutdown).await.unwrap();
    tokio::task::spawn_blocking(move || ha.join().unwrap().unwrap())
        .await
        .unwrap();
}

/// Grants that arrive together share writes (group commit), and whoever reads the file at any
/// time finds a complete lease file.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_grants_costs_few_writes_and_the_file_is_always_whole() {
    const MNS: usize = 16;
    let dir = tree();
    // All mobile nodes come from ::1: let them all start at once.
    let limits = "[limits]\nhalf_open_per_source = 100\ninit_rate_per_source = 1000\n";
    fs::write(dir.path().join("ha.toml"), ha() + limits).unwrap();
    let file = dir.path().join("leases.toml");
    let private = |p: &Path, text: String| {
        fs::write(p, text).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    };
    for i in 0..MNS {
        private(
            &dir.path().join(format!("users/mn{i}.toml")),
            format!(
                "identity = \"fqdn:mn{i}.example.net\"\npsk = \"burst test key 0123456789 {i}\"\npool = \"dyn\"\nclasses = [\"bu-ba\", \"payload\"]\n"
            ),
        );
    }
    // Every write is counted and slow (as fsync on a busy disk); before each one, the file as
    // it stands must load.
    let writes = Arc::new(AtomicU64::new(0));
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook: SaveHook = {
        let (writes, broken, file) = (writes.clone(), broken.clone(), file.clone());
        Arc::new(move |_| {
            writes.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = LeaseStore::new(&file).load() {
                broken.lock().unwrap().push(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        })
    };
    // And a reader that loads the file over and over while the grants are written.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, broken, file) = (done.clone(), broken.clone(), file.clone());
        std::thread::spawn(move || {
            let mut loads = 0u64;
            while !done.load(Ordering::SeqCst) {
                if let Err(e) = LeaseStore::new(&file).load() {
                    broken.lock().unwrap().push(e);
                }
                loads += 1;
                std::thread::yield_now();
            }
            loads
        })
    };
    let ha = start_with_hook(&dir.path().join("ha.toml"), hook);
    let mut mns = Vec::new();
    for i in 0..MNS {
        let path = dir.path().join(format!("mn{i}.toml"));
        let identity =
            format!("id = \"fqdn:mn{i}.example.net\"\npsk = \"burst test key 0123456789 {i}\"\n");
        private(
            &path,
            mn_file(
                &identity,
                ha.addr,
                "dynamic",
                &format!("home_agent_id = \"{HA_ID}\"\n"),
            ),
        );
        mns.push(start(&path));
    }
    for mn in &mut mns {
        assert!(wait_children(&mut mn.events, 2).await.hoa.is_some());
    }
    let on_disk = LeaseStore::new(&file).load().unwrap();
    assert_eq!(on_disk.len(), MNS, "every grant is on disk");
    let n = writes.load(Ordering::SeqCst);
    assert!(
        n <= MNS as u64 / 2,
        "{MNS} grants took {n} writes: they should share them"
    );
    done.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(broken.lock().unwrap().as_slice(), &[] as &[String]);
    for mn in mns {
        stop(mn).await;
    }
    stop(ha).await;
}
