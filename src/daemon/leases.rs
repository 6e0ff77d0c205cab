//! The lease file, written off the engine task, and the replies that must wait for it.
//!
//! A dynamic home address is only given once its lease is on disk: after a crash the daemon
//! reloads the file, and a grant the file lost could go to a second mobile node while the
//! first still uses it. So every datagram the engine produces together with a lease change
//! (the IKE_AUTH response carrying the address, the Delete that released one) is held until a
//! write that includes the change has completed, and so is everything later to the same peer
//! (a retransmission of that response, which the engine answers from its cache, must not
//! overtake it).
//!
//! Writes run on tokio's blocking pool, one at a time (group commit): the engine task keeps
//! handling datagrams while a write is under way, and whatever changed meanwhile goes into the
//! next one, which takes the changes when it starts. A burst of N grants thus costs about two
//! writes (and fsyncs), not N, and the engine task never waits for the disk.
//!
//! A write costs O(changes), not O(leases held): the engine hands over only the leases that
//! changed (`Endpoint::take_lease_changes`, a dirty set), and the [`LeaseJournal`] appends them
//! to the journal next to the lease file; it keeps its own copy of the table, from which it
//! writes a fresh snapshot every O(n) changes (on the blocking pool too), and one more at
//! shutdown so that a stopped daemon leaves a snapshot alone.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::ike::Transmit;
use crate::mobility::{Lease, LeaseChange, LeaseJournal, LeaseStore, SaveHook};

/// Datagrams held at most; beyond, new ones are dropped (peers retransmit, the engine
/// retransmits its own requests), so a lease directory that stays unwritable cannot grow
/// memory without bound.
const MAX_HELD: usize = 8192;
/// After a failed write: first wait before trying again, and the cap.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(super) struct LeaseWriter {
    /// The journal and the writer's copy of the table: used by one write at a time, on the
    /// blocking pool (the lock is never contended; it only hands the state to the write).
    journal: Arc<Mutex<LeaseJournal>>,
    path: PathBuf,
    /// Changes seen so far (a generation counter) and the last one known to be on disk.
    changed: u64,
    durable: u64,
    /// The write under way, and the generation its snapshot covers.
    writing: Option<(u64, JoinHandle<std::io::Result<()>>)>,
    /// After a failure: when to try again.
    retry_at: Option<Instant>,
    retry_wait: Duration,
    /// Held datagrams, each with the generation that must be on disk first (non-decreasing).
    held: VecDeque<(u64, Transmit)>,
    /// Held datagrams by peer, so that later ones to the same peer queue behind them.
    held_to: HashMap<SocketAddr, usize>,
    /// Writes started.
    pub writes: u64,
}

impl LeaseWriter {
    /// The writer of `store`, whose table is `leases` (the engine's, once loaded).
    pub fn new(store: LeaseStore, leases: Vec<Lease>) -> LeaseWriter {
        let path = store.path().to_path_buf();
        let mut journal = LeaseJournal::new(store, leases);
        // At start, before anything is served: the table as a fresh snapshot and an empty
        // journal (a torn journal end goes with it), so that the serving daemon's first write
        // appends instead of rewriting every lease held (68 ms at 100,000, measured by
        // benches/compare as CPU per handshake). If it fails, the first write tries again.
        if let Err(e) = journal.compact() {
            warn!(file = %path.display(), "cannot write the lease file at start: {e}; trying again at the first change");
        }
        LeaseWriter {
            path,
            journal: Arc::new(Mutex::new(journal)),
            changed: 0,
            durable: 0,
            writing: None,
            retry_at: None,
            retry_wait: RETRY_FIRST,
            held: VecDeque::new(),
            held_to: HashMap::new(),
            writes: 0,
        }
    }

    /// Runs `hook` before every write (no write under way: called before the daemon runs).
    pub fn set_hook(&mut self, hook: SaveHook) {
        lock(&self.journal).set_hook(hook);
    }

    /// The table changed: datagrams produced with this change wait for a write of it.
    pub fn note_change(&mut self) {
        self.changed += 1;
    }

    /// Whether a write should start now (changes not on disk, none under way, no back-off).
    pub fn wants_write(&self) -> bool {
        self.changed > self.durable && self.writing.is_none() && self.retry_at.is_none()
    }

    /// Starts writing `changes`, every change noted so far (taken from the engine now).
    pub fn start(&mut self, changes: Vec<LeaseChange>) {
        let journal = self.journal.clone();
        self.writes += 1;
        let handle = tokio::task::spawn_blocking(move || lock(&journal).write(changes));
        self.writing = Some((self.changed, handle));
    }

    /// Starts folding the journal into a fresh snapshot (shutdown, once everything is on
    /// disk: a stopped daemon leaves one file with every lease). No datagram waits for it; a
    /// failure leaves the journal, which the next start replays.
    pub fn start_compaction(&mut self) {
        let journal = self.journal.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let mut j = lock(&journal);
            if j.records() > 0 { j.compact() } else { Ok(()) }
        });
        self.writing = Some((self.durable, handle));
    }

    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Waits for the write under way (never completes without one). Cancel-safe: the write
    /// goes on, and a later call picks up its result.
    pub async fn finished(&mut self) {
        let Some((generation, handle)) = &mut self.writing else {
            return std::future::pending().await;
        };
        let generation = *generation;
        let r = handle.await;
        self.writing = None;
        match r {
            Ok(Ok(())) => {
                self.durable = self.durable.max(generation);
                self.retry_wait = RETRY_FIRST;
            }
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(e) => self.failed(&format!("the writer stopped: {e}")),
        }
    }

    fn failed(&mut self, why: &str) {
        error!(file = %self.path.display(), held = self.held.len(), after = ?self.retry_wait,
            "cannot save leases: {why}; the replies that grant or release them wait, trying again");
        self.retry_at = Some(Instant::now() + self.retry_wait);
        self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
    }

    /// When to try a failed write again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Ends the back-off once its time has come (the next flush writes again).
    pub fn on_timer(&mut self, now: Instant) {
        if self.retry_at.is_some_and(|t| t <= now) {
            info!(file = %self.path.display(), "trying to save leases again");
            self.retry_at = None;
        }
    }

    /// Whether everything changed so far is on disk.
    pub fn is_durable(&self) -> bool {
        self.changed <= self.durable
    }

    /// Takes `t` to hold (None) when it came with an unsaved change (`with_change`) or a
    /// datagram to the same peer is held; else gives it back, to send now.
    pub fn hold(&mut self, t: Transmit, with_change: bool) -> Option<Transmit> {
        let waits = self.held_to.contains_key(&t.remote);
        if !(waits || with_change && !self.is_durable()) {
            return Some(t);
        }
        if self.held.len() >= MAX_HELD {
            warn!(remote = %t.remote, "too many replies waiting for the lease file: datagram dropped");
            return None;
        }
        *self.held_to.entry(t.remote).or_default() += 1;
        self.held.push_back((self.changed, t));
        None
    }

    /// Held datagrams whose lease changes are on disk, in order.
    pub fn release(&mut self) -> Vec<Transmit> {
        self.release_if(|generation, durable| generation <= durable)
    }

    /// Every held datagram (shutdown, once writing is over or has failed).
    pub fn release_all(&mut self) -> Vec<Transmit> {
        self.release_if(|_, _| true)
    }

    fn release_if(&mut self, ok: impl Fn(u64, u64) -> bool) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some((generation, _)) = self.held.front()
            && ok(*generation, self.durable)
        {
            let Some((_, t)) = self.held.pop_front() else {
                break;
            };
            if let Some(n) = self.held_to.get_mut(&t.remote) {
                *n -= 1;
                if *n == 0 {
                    self.held_to.remove(&t.remote);
                }
            }
            out.push(t);
        }
        out
    }
}

/// The journal, also after a write that panicked: that write left the file to be replaced by
/// the next one (a write that does not complete never keeps its file).
fn lock(j: &Mutex<LeaseJournal>) -> std::sync::MutexGuard<'_, LeaseJournal> {
    j.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(remote: &str, data: u8) -> Transmit {
        Transmit {
            local: "[::1]:500".parse().unwrap(),
            remote: remote.parse().unwrap(),
            data: vec![data],
        }
    }

    fn data(v: Vec<Transmit>) -> Vec<u8> {
        v.into_iter().flat_map(|t| t.data).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn replies_wait_for_their_write_and_later_ones_to_the_same_peer_queue_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LeaseWriter::new(LeaseStore::new(dir.path().join("leases.toml")), Vec::new());
        // No change pending: straight out.
        assert!(w.hold(t("[::1]:1", 0), true).is_some());
        w.note_change();
        assert!(w.hold(t("[::1]:1", 1), true).is_none(), "the grant waits");
        // A retransmission of it (no change of its own) must not overtake it; another peer's
        // datagram without a change goes.
        assert!(w.hold(t("[::1]:1", 2), false).is_none());
        assert!(w.hold(t("[::1]:2", 3), false).is_some());
        assert!(w.wants_write());
        w.start(Vec::new());
        // A change during the write: the next write covers it, not this one.
        w.note_change();
        assert!(w.hold(t("[::1]:3", 4), true).is_none());
        assert!(!w.wants_write(), "one write at a time");
        w.finished().await;
        assert_eq!(data(w.release()), [1, 2]);
        assert!(w.wants_write());
        w.start(Vec::new());
        w.finished().await;
        assert_eq!(data(w.release()), [4]);
        assert!(w.is_durable() && !w.wants_write());
        assert!(
            w.hold(t("[::1]:1", 5), false).is_some(),
            "nothing left in the way"
        );
        assert_eq!(w.writes, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_write_keeps_the_replies_and_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LeaseWriter::new(
            LeaseStore::new(dir.path().join("absent/leases.toml")),
            Vec::new(),
        );
        w.note_change();
        assert!(w.hold(t("[::1]:1", 1), true).is_none());
        w.start(Vec::new());
        w.finished().await;
        assert!(w.release().is_empty(), "not on disk: the grant is not sent");
        let at = w.retry_at().expect("a retry is scheduled");
        assert!(!w.wants_write(), "not before the back-off");
        w.on_timer(at);
        assert!(w.wants_write());
        std::fs::create_dir(dir.path().join("absent")).unwrap();
        w.start(Vec::new());
        w.finished().await;
        assert_eq!(data(w.release()), [1]);
    }
}
