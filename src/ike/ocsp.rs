//! OCSP in the engine (RFC 6960): when no CRL tells a peer certificate's status and a
//! responder is known for it, the engine makes the request (its nonce from the engine's
//! generator) and asks the daemon to carry it ([`Event::OcspWanted`]); the daemon hands back
//! the raw answer ([`Endpoint::ocsp_response`]), which the engine verifies itself
//! (`auth::ocsp::verify_response`: signer, CertID, nonce, freshness). A verified answer is
//! kept until its nextUpdate; an IKE_AUTH parked for it resumes, and an established IKE SA
//! whose certificate it says is revoked is deleted, as a new CRL would. An answer that fails
//! verification changes nothing: it is logged and dropped, and a parked IKE_AUTH waits for
//! its timer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::endpoint::Endpoint;
use super::{Event, Now};
use crate::auth::PeerCert;
use crate::auth::ocsp::{CertId, NONCE_LEN, OcspRequest, issuing_ca, verify_response};
use crate::auth::revocation::{CertStatus, Checked};

/// How often one certificate's status may be asked for.
pub const OCSP_ASK_INTERVAL: Duration = Duration::from_secs(60);
/// Answers kept (beyond, expired ones go first, then arbitrary ones).
const MAX_ANSWERS: usize = 4096;
/// Queries in flight; beyond, no new query until some end or time out.
const MAX_PENDING: usize = 64;
/// Certificates remembered as asked about.
const MAX_ASKED: usize = 4096;

/// A certificate: its issuer's DER Name and its serial.
pub(super) type CertKey = (Box<[u8]>, Box<[u8]>);

/// OCSP configuration of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcspSettings {
    /// How long the daemon takes at most per query (a parked IKE_AUTH waits this + 1 s).
    pub timeout: Duration,
    /// Responders configured per CA: (the CA's subject, DER Name; `http://` URI). Used
    /// before a certificate's own Authority Information Access.
    pub ca_uris: Vec<(Vec<u8>, String)>,
}

struct Answer {
    checked: Checked,
    valid_until: i64,
}

struct Pending {
    key: CertKey,
    uri: String,
    request: OcspRequest,
    at: Instant,
}

#[derive(Default)]
pub(super) struct OcspState {
    settings: Option<OcspSettings>,
    answers: HashMap<CertKey, Answer>,
    pending: HashMap<u64, Pending>,
    asked: HashMap<CertKey, Instant>,
    next_query: u64,
    /// Set by `want_ocsp` for `park_for_crl`: what the IKE_AUTH about to be parked waits for.
    pub(super) wait_key: Option<CertKey>,
}

impl Endpoint {
    /// Query numbers start at `base` (a shard's own range, so answers find their shard).
    pub(super) fn set_ocsp_query_base(&mut self, base: u64) {
        self.ocsp.next_query = base;
    }

    /// Turns OCSP on (Some) or off. Answers already held stay (they are verified facts).
    pub fn set_ocsp(&mut self, settings: Option<OcspSettings>) {
        if settings.is_none() {
            self.ocsp.pending.clear();
        }
        self.ocsp.settings = settings;
    }

    pub(super) fn ocsp_timeout(&self) -> Option<Duration> {
        self.ocsp.settings.as_ref().map(|s| s.timeout)
    }

    /// The responder for `cert`: the one configured for its CA, else its own AIA.
    pub(super) fn ocsp_uri(&self, cert: &PeerCert) -> Option<String> {
        let s = self.ocsp.settings.as_ref()?;
        s.ca_uris
            .iter()
            .find(|(ca, _)| crate::auth::dn_equal(ca, cert.issuer()))
            .map(|(_, u)| u.clone())
            .or_else(|| cert.ocsp_uris().first().cloned())
    }

    /// The OCSP answer held for a certificate at `unix`: a revocation stays (as in a stale
    /// CRL), good or unknown only until the answer's nextUpdate.
    pub(super) fn ocsp_status(&self, issuer: &[u8], serial: &[u8], unix: u64) -> Option<Checked> {
        let a = self.ocsp.answers.get(&(issuer.into(), serial.into()))?;
        let fresh = i64::try_from(unix).unwrap_or(i64::MAX) < a.valid_until;
        (a.checked.status == CertStatus::Revoked || fresh).then(|| a.checked.clone())
    }

    /// Asks the daemon about `cert` at `uri`, unless a query is in flight (true: an answer
    /// may come) or it was asked about within [`OCSP_ASK_INTERVAL`] (false).
    pub(super) fn want_ocsp(&mut self, cert: &PeerCert, uri: String) -> bool {
        self.ask_ocsp(cert.issuer(), cert.serial(), uri, false)
    }

    /// [`Endpoint::want_ocsp`] for (issuer, serial); `again`: even if asked about recently.
    fn ask_ocsp(&mut self, issuer: &[u8], serial: &[u8], uri: String, again: bool) -> bool {
        let key: CertKey = (issuer.into(), serial.into());
        let Some(timeout) = self.ocsp_timeout() else {
            return false;
        };
        let now = self.now.at;
        if self.ocsp.pending.values().any(|p| p.key == key) {
            self.ocsp.wait_key = Some(key);
            return true;
        }
        if !again
            && self
                .ocsp
                .asked
                .get(&key)
                .is_some_and(|t| now.saturating_duration_since(*t) < OCSP_ASK_INTERVAL)
        {
            return false;
        }
        // A query the daemon never answered (it always does, with an error at worst) is
        // forgotten after twice its timeout.
        let stale = timeout * 2 + Duration::from_secs(1);
        self.ocsp
            .pending
            .retain(|_, p| now.saturating_duration_since(p.at) < stale);
        if self.ocsp.asked.len() >= MAX_ASKED {
            self.ocsp
                .asked
                .retain(|_, t| now.saturating_duration_since(*t) < OCSP_ASK_INTERVAL);
        }
        if self.ocsp.pending.len() >= MAX_PENDING || self.ocsp.asked.len() >= MAX_ASKED {
            return false;
        }
        let Some(ca) = self
            .cfg
            .trust
            .as_deref()
            .and_then(|t| issuing_ca(t, issuer))
        else {
            return false;
        };
        let mut nonce = vec![0u8; NONCE_LEN];
        self.rng.fill(&mut nonce);
        let request = OcspRequest {
            cert_id: CertId::new(ca, serial),
            nonce,
        };
        let query = self.ocsp.next_query;
        self.ocsp.next_query += 1;
        self.ocsp.asked.insert(key.clone(), now);
        let der = request.encode();
        self.ocsp.pending.insert(
            query,
            Pending {
                key: key.clone(),
                uri: uri.clone(),
                request,
                at: now,
            },
        );
        self.ocsp.wait_key = Some(key);
        info!(query, %uri, serial = super::revoke::serial_hex(serial), "asking the OCSP responder");
        self.push_event(Event::OcspWanted {
            query,
            uri,
            request: der,
        });
        true
    }

    /// Asks again about the certificate of every established IKE SA that has an OCSP
    /// responder (configured for its CA, or its own), whatever answers are held: the daemon
    /// calls this on reload (`mip6-ikectl reload`), so that a revocation the responder knows
    /// now reaches SAs that authenticated before it. The answers come in through
    /// [`Endpoint::ocsp_response`]; a revoked one deletes the SA. Returns the queries made.
    pub fn ocsp_recheck(&mut self, now: Now) -> usize {
        self.ocsp_ask_established(now, None)
    }

    /// The periodic form of [`Endpoint::ocsp_recheck`] (`[revocation] ocsp_recheck`): asks
    /// about the certificates of established IKE SAs whose answer is older than `max_age`
    /// (or that have none), as many as the bound on queries in flight allows; the daemon
    /// calls it several times per `max_age`, so a large population is asked about in
    /// batches rather than all at once. Returns the queries made.
    pub fn ocsp_refresh(&mut self, now: Now, max_age: Duration) -> usize {
        self.ocsp_ask_established(now, Some(max_age))
    }

    fn ocsp_ask_established(&mut self, now: Now, max_age: Option<Duration>) -> usize {
        self.now = now;
        let Some(settings) = self.ocsp.settings.clone() else {
            return 0;
        };
        if self.cfg.revocation == crate::auth::revocation::RevocationPolicy::Off {
            return 0;
        }
        let unix = now.unix;
        let answers = &self.ocsp.answers;
        let due = |k: &CertKey| {
            let Some(max_age) = max_age else {
                return true;
            };
            answers.get(k).is_none_or(|a| {
                a.checked.status != CertStatus::Revoked
                    && unix.saturating_sub(a.checked.at) >= max_age.as_secs()
            })
        };
        let mut certs: Vec<(CertKey, String)> = self
            .sas
            .values()
            .filter(|sa| sa.state == super::sa::State::Established)
            .filter_map(|sa| sa.peer_cert.as_ref())
            .filter_map(|c| {
                let key: CertKey = (c.issuer.clone(), c.serial.clone());
                if !due(&key) {
                    return None;
                }
                let uri = settings
                    .ca_uris
                    .iter()
                    .find(|(ca, _)| crate::auth::dn_equal(ca, &c.issuer))
                    .map(|(_, u)| u.clone())
                    .or_else(|| c.ocsp_uri.as_deref().map(str::to_string))?;
                Some((key, uri))
            })
            .collect();
        certs.sort();
        certs.dedup();
        let mut n = 0;
        for ((issuer, serial), uri) in certs {
            if self.ocsp.pending.len() >= MAX_PENDING {
                break;
            }
            let key: CertKey = (issuer.clone(), serial.clone());
            if self.ocsp.pending.values().any(|p| p.key == key) {
                continue;
            }
            if self.ask_ocsp(&issuer, &serial, uri, true) {
                n += 1;
            }
        }
        self.ocsp.wait_key = None;
        n
    }

    /// The daemon's answer to OCSP query `query`: the response body, or why there is none.
    /// A verified answer is kept, resumes the IKE_AUTHs parked for it and re-checks the
    /// established IKE SAs with that certificate (a revoked one is deleted). Anything else
    /// (no such query, a transport error, a response that fails verification) changes
    /// nothing. Returns the verified status, if any.
    pub fn ocsp_response(
        &mut self,
        now: Now,
        query: u64,
        body: Result<Vec<u8>, String>,
    ) -> Option<CertStatus> {
        self.now = now;
        let p = self.ocsp.pending.remove(&query)?;
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                warn!(query, uri = %p.uri, reason = %e, "OCSP query failed");
                return None;
            }
        };
        let ca = self
            .cfg
            .trust
            .as_deref()
            .and_then(|t| issuing_ca(t, &p.key.0))?
            .clone();
        let answer = match verify_response(&body, &p.request, &ca, now.unix) {
            Ok(a) => a,
            Err(e) => {
                warn!(query, uri = %p.uri, reason = %e, "OCSP response refused");
                return None;
            }
        };
        info!(query, uri = %p.uri, status = answer.status.name(), nonce = answer.nonce,
              "OCSP answer verified");
        let checked = Checked {
            status: answer.status,
            source: Some(format!("ocsp {}", p.uri)),
            at: now.unix,
        };
        if self.ocsp.answers.len() >= MAX_ANSWERS && !self.ocsp.answers.contains_key(&p.key) {
            let unix = i64::try_from(now.unix).unwrap_or(i64::MAX);
            self.ocsp.answers.retain(|_, a| a.valid_until > unix);
            if self.ocsp.answers.len() >= MAX_ANSWERS
                && let Some(k) = self.ocsp.answers.keys().next().cloned()
            {
                self.ocsp.answers.remove(&k);
            }
        }
        self.ocsp.answers.insert(
            p.key.clone(),
            Answer {
                checked,
                valid_until: answer.valid_until(),
            },
        );
        // The IKE_AUTHs parked for this certificate go on.
        let mut waiting: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.crl_parked.is_some() && sa.ocsp_wait.as_deref() == Some(&p.key))
            .map(|(&id, _)| id)
            .collect();
        waiting.sort_unstable();
        for id in waiting {
            if let Some(mut sa) = self.sas.remove(&id) {
                debug!(ike = %super::IkeId(id), "OCSP answer in: resuming IKE_AUTH");
                let fate = self.resume_for_crl(&mut sa);
                self.finish(sa, fate);
            }
        }
        self.recheck_certs(now, Some((&p.key.0, &p.key.1)));
        Some(answer.status)
    }
}
