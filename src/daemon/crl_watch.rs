//! Watches the configured CRL files: when one changes (modification time or size), the set is
//! read and verified again and handed to the engine, which re-checks the established IKE SAs.
//! A file that fails (half written, wrong signer) is logged and the CRLs in force are kept:
//! a broken update must not lift a revocation or cut anyone off.
//!
//! The files are read, parsed and verified on a blocking thread (a CRL may be megabytes and
//! hundreds of thousands of entries): the daemon's task goes on carrying datagrams meanwhile,
//! and takes the result from [`CrlWatch::next`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::auth::TrustAnchors;
use crate::auth::revocation::CrlSet;
use crate::policy::RevocationSettings;

/// What identifies one version of a file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &PathBuf) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

pub(super) struct CrlWatch {
    files: Vec<(PathBuf, Stamp)>,
    interval: Option<Duration>,
    next_at: Option<Instant>,
    /// Loads started (the newest one's number): an older load that finishes later is stale.
    started: u64,
    tx: mpsc::UnboundedSender<(u64, Loaded)>,
    rx: mpsc::UnboundedReceiver<(u64, Loaded)>,
}

type Loaded = Result<CrlSet, (PathBuf, String)>;

impl CrlWatch {
    /// For the files of `s`, as they are now (the configuration loader just read them).
    pub fn new(s: &RevocationSettings, now: Instant) -> CrlWatch {
        // Unbounded, yet at most one result per poll interval can be waiting.
        let (tx, rx) = mpsc::unbounded_channel();
        CrlWatch {
            started: 0,
            tx,
            rx,
            files: s.crl_files.iter().map(|p| (p.clone(), stamp(p))).collect(),
            interval: s.check_interval,
            next_at: s
                .check_interval
                .filter(|_| !s.crl_files.is_empty())
                .map(|i| now + i),
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.next_at
    }

    /// At the deadline: when a file changed, the whole set is read again on a blocking thread
    /// (the result comes from [`CrlWatch::next`]).
    pub fn poll(&mut self, now: Instant, trust: Option<&Arc<TrustAnchors>>) {
        if self.next_at.is_none_or(|t| t > now) {
            return;
        }
        self.next_at = self.interval.map(|i| now + i);
        let mut changed = false;
        for (p, old) in &mut self.files {
            let new = stamp(p);
            if new != *old {
                info!(file = %p.display(), "CRL file changed");
                *old = new;
                changed = true;
            }
        }
        let Some(trust) = trust.filter(|_| changed).cloned() else {
            return;
        };
        let paths: Vec<PathBuf> = self.files.iter().map(|(p, _)| p.clone()).collect();
        self.started += 1;
        let (n, tx) = (self.started, self.tx.clone());
        tokio::task::spawn_blocking(move || {
            // The receiver is gone when a reload replaced this watch: nothing to tell.
            let _ = tx.send((n, CrlSet::load(&paths, &trust)));
        });
    }

    /// The new CRL set, once the newest load finished and the whole set verified (pending
    /// forever otherwise: a failed or stale load is logged or dropped here).
    pub async fn next(&mut self) -> Arc<CrlSet> {
        loop {
            let Some((n, loaded)) = self.rx.recv().await else {
                return std::future::pending().await;
            };
            if n != self.started {
                continue;
            }
            match loaded {
                Ok(set) => return Arc::new(set),
                Err((p, e)) => {
                    warn!(file = %p.display(), reason = %e, "CRL file not usable: keeping the CRLs in force (fix the file; it is read again when it changes)");
                }
            }
        }
    }
}
