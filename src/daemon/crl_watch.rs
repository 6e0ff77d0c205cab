//! Watches the configured CRL files: when one changes (modification time or size), the set is
//! read and verified again and handed to the engine, which re-checks the established IKE SAs.
//! A file that fails (half written, wrong signer) is logged and the CRLs in force are kept:
//! a broken update must not lift a revocation or cut anyone off.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
}

impl CrlWatch {
    /// For the files of `s`, as they are now (the configuration loader just read them).
    pub fn new(s: &RevocationSettings, now: Instant) -> CrlWatch {
        CrlWatch {
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

    /// At the deadline: the new CRL set when a file changed and the whole set verifies.
    pub fn poll(&mut self, now: Instant, trust: Option<&TrustAnchors>) -> Option<Arc<CrlSet>> {
        if self.next_at.is_none_or(|t| t > now) {
            return None;
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
        if !changed {
            return None;
        }
        let trust = trust?;
        let paths: Vec<PathBuf> = self.files.iter().map(|(p, _)| p.clone()).collect();
        match CrlSet::load(&paths, trust) {
            Ok(set) => Some(Arc::new(set)),
            Err((p, e)) => {
                warn!(file = %p.display(), reason = %e, "CRL file not usable: keeping the CRLs in force (fix the file; it is read again when it changes)");
                None
            }
        }
    }
}
