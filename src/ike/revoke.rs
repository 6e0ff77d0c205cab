//! Revocation in the engine: the peer's certificate is checked against the CRLs we hold when
//! it authenticates (both roles, reauthentication included), and again for every established
//! IKE SA whenever the daemon hands in a new set of CRLs: an IKE SA whose certificate is now
//! revoked loses its CHILD_SAs in the kernel at once and is deleted (a Delete goes to the
//! peer). The CRLs are an input like a datagram: the daemon reads and verifies the files, the
//! engine never touches them.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::auth::PeerAuthError;
use super::endpoint::{Endpoint, Fate};
use super::provider::Parked;
use super::sa::{IkeSa, Intent, State};
use super::{Event, IkeId, Now};
use crate::auth::Identity;
use crate::auth::revocation::{CertRef, CertStatus, Checked, CrlSet, RevocationPolicy};
use crate::wire::{Header, Payload};

/// How long after the download timeout a parked IKE_AUTH goes on without the CRL.
const CRL_BACKSTOP: Duration = Duration::from_secs(1);

/// How often one CRL URI may be asked for.
pub const CRL_ASK_INTERVAL: Duration = Duration::from_secs(60);
/// CRL URIs remembered as asked for (beyond, the old ones are forgotten first).
const MAX_CRL_ASKED: usize = 1024;

/// An established IKE SA's peer certificate, for `mip6-ikectl certs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertInfo {
    pub ike: IkeId,
    pub peer: Option<Identity>,
    pub cert: CertRef,
}

/// Hex of a serial number, for logs and listings.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}

impl Endpoint {
    /// The revocation status of a validated peer certificate, under the configured policy:
    /// what the IKE SA keeps of it, or why it is refused.
    pub(super) fn revocation_check(
        &mut self,
        cert: &crate::auth::PeerCert,
        may_wait: bool,
    ) -> Result<CertRef, PeerAuthError> {
        let unix = self.now.unix;
        let policy = self.cfg.revocation;
        let checked = if policy == RevocationPolicy::Off {
            Checked {
                status: CertStatus::Unknown,
                source: None,
                at: unix,
            }
        } else {
            self.status_of(cert.issuer(), cert.serial(), unix)
        };
        let ocsp_uri = self.ocsp_uri(cert);
        let has_uri = !cert.crl_uris().is_empty() || ocsp_uri.is_some();
        self.ocsp.wait_key = None;
        if checked.status == CertStatus::Unknown && policy != RevocationPolicy::Off {
            self.want_crls(cert.crl_uris());
            let asking = ocsp_uri.is_some_and(|u| self.want_ocsp(cert, u));
            // strongSwan's `strict` fetches before it decides: so do we, when the caller can
            // wait and a download or an OCSP query is under way.
            if !policy.accepts(checked.status, has_uri)
                && may_wait
                && (self.crl_fetch.is_some() || asking)
            {
                return Err(PeerAuthError::AwaitCrl);
            }
        }
        if !policy.accepts(checked.status, has_uri) {
            return Err(PeerAuthError::Refused(format!(
                "certificate of {} (serial {}) is {}{} (revocation = \"{}\")",
                cert.subject(),
                serial_hex(cert.serial()),
                checked.status.name(),
                checked
                    .source
                    .as_deref()
                    .map(|s| format!(" by {s}"))
                    .unwrap_or_else(|| ": no CRL of its issuer, no OCSP answer".into()),
                policy.name(),
            )));
        }
        Ok(cert.to_ref(checked))
    }

    /// New CRLs (start, reload, a changed file). Every established IKE SA authenticated by a
    /// certificate is checked again; one whose certificate is now revoked is deleted: its
    /// CHILD_SAs leave the kernel now, the IKE SA goes with a Delete to the peer. Only a
    /// revocation deletes: an unknown status (a CRL gone stale) under `strict` refuses new
    /// authentications but does not cut established SAs, as strongSwan, which checks only
    /// at authentication, would not either.
    pub fn set_crls(&mut self, now: Now, crls: Arc<CrlSet>) {
        self.now = now;
        self.crls = crls;
        // IKE_AUTHs waiting for a CRL go on with what is here now (those waiting for an OCSP
        // answer wait for it, or their timer).
        let mut waiting: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.crl_parked.is_some() && sa.ocsp_wait.is_none())
            .map(|(&id, _)| id)
            .collect();
        waiting.sort_unstable();
        for id in waiting {
            if let Some(mut sa) = self.sas.remove(&id) {
                let fate = self.resume_for_crl(&mut sa);
                self.finish(sa, fate);
            }
        }
        self.recheck_certs(now, None);
        info!(crls = self.crls.crls().len(), "revocation lists updated");
    }

    /// The status of certificate `serial` of `issuer`: the CRLs' answer, or when they know
    /// nothing, the OCSP answer held for it.
    pub(super) fn status_of(&self, issuer: &[u8], serial: &[u8], unix: u64) -> Checked {
        let crl = self.crls.status(issuer, serial, unix);
        if crl.status != CertStatus::Unknown {
            return crl;
        }
        self.ocsp_status(issuer, serial, unix).unwrap_or(crl)
    }

    /// Checks the established IKE SAs' certificates again (all, or only the certificate
    /// `only`: issuer, serial); one now revoked is deleted: its CHILD_SAs leave the kernel
    /// now, the IKE SA goes with a Delete to the peer.
    pub(super) fn recheck_certs(&mut self, now: Now, only: Option<(&[u8], &[u8])>) {
        if self.cfg.revocation == RevocationPolicy::Off {
            return;
        }
        let ids: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| {
                sa.peer_cert
                    .as_ref()
                    .is_some_and(|c| only.is_none_or(|(i, s)| *c.issuer == *i && *c.serial == *s))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let Some(mut sa) = self.sas.remove(&id) else {
                continue;
            };
            let Some(cert) = sa.peer_cert.as_mut() else {
                self.sas.insert(id, sa);
                continue;
            };
            let checked = self.status_of(&cert.issuer, &cert.serial, now.unix);
            let revoked = checked.status == CertStatus::Revoked;
            cert.checked = checked;
            if !revoked || sa.state != State::Established {
                // A Rekeyed or Deleting SA goes soon anyway; its successor (which carries the
                // same certificate) is checked on its own.
                self.sas.insert(id, sa);
                continue;
            }
            let subject = Identity::Dn(cert.subject.to_vec());
            let serial = serial_hex(&cert.serial);
            let source = cert.checked.source.clone().unwrap_or_default();
            warn!(ike = %IkeId(id), remote = %sa.remote, %subject, serial, source,
                  "peer certificate revoked: deleting the IKE SA");
            for c in std::mem::take(&mut sa.children) {
                // The Delete of the IKE SA covers its CHILD_SAs (RFC 7296 1.4.1).
                self.remove_child_kernel(&sa, &c, "peer certificate revoked");
            }
            sa.queue.clear();
            sa.queue.push_back(Intent::DeleteIke);
            self.finish(sa, Fate::Keep);
        }
    }

    /// Fetch CRLs from distribution points (the daemon does the HTTP, each download within
    /// `timeout`), or not (None).
    pub fn set_crl_fetch(&mut self, timeout: Option<Duration>) {
        self.crl_fetch = timeout;
    }

    /// Parks `sa`'s IKE_AUTH (the peer's AUTH verified; only its certificate's revocation
    /// status is missing) until new CRLs arrive ([`Endpoint::set_crls`]), the OCSP answer
    /// comes, or the download timeout passes (the SA's timer, a second later); then it is
    /// processed again from the start, without waiting a second time.
    /// - Home agent (`request` = the request's header): as with the address provider, the
    ///   message ID is consumed; retransmissions meanwhile are dropped.
    /// - Mobile node (`request` None: the home agent's response): nothing of the SA is used
    ///   meanwhile, no CHILD_SA installed and no event; the home agent already considers the
    ///   SA established, and a wait bounded by the download timeout (+1 s) is within its
    ///   liveness tolerance.
    pub(super) fn park_for_crl(
        &mut self,
        sa: &mut IkeSa,
        request: Option<Header>,
        payloads: Vec<Payload>,
        identity: &Identity,
    ) -> Fate {
        let timeout = self
            .crl_fetch
            .unwrap_or_default()
            .max(self.ocsp_timeout().unwrap_or_default());
        sa.ocsp_wait = self.ocsp.wait_key.take().map(Box::new);
        let whose = if request.is_some() {
            "the peer's"
        } else {
            "the home agent's"
        };
        info!(ike = %sa.id(), %identity, ocsp = sa.ocsp_wait.is_some(),
              "waiting for the revocation status of {whose} certificate");
        sa.crl_parked = Some(Box::new(Parked {
            header: request,
            payloads,
            half_open_expiry: sa.expires_at,
        }));
        sa.expires_at = Some(self.now.at + timeout + CRL_BACKSTOP);
        Fate::Keep
    }

    /// Processes a parked IKE_AUTH again (new CRLs, or the wait is over): the home agent's
    /// request, or (mobile node) its response.
    pub(super) fn resume_for_crl(&mut self, sa: &mut IkeSa) -> Fate {
        let Some(p) = sa.crl_parked.take() else {
            return Fate::Keep;
        };
        sa.crl_waited = true;
        sa.ocsp_wait = None;
        sa.expires_at = p.half_open_expiry;
        match p.header {
            Some(header) => self.auth_request(sa, &header, p.payloads),
            None => self.auth_response(sa, p.payloads),
        }
    }

    /// Asks the daemon for the CRLs at `uris` (a certificate's distribution points), each at
    /// most once per [`CRL_ASK_INTERVAL`]: a peer that authenticates over and over must not
    /// make us ask for the same CRL each time.
    fn want_crls(&mut self, uris: &[String]) {
        if self.crl_fetch.is_none() || uris.is_empty() {
            return;
        }
        let now = self.now.at;
        if self.crl_asked.len() >= MAX_CRL_ASKED {
            self.crl_asked
                .retain(|_, t| now.saturating_duration_since(*t) < CRL_ASK_INTERVAL);
        }
        let fresh: Vec<String> = uris
            .iter()
            .filter(|u| {
                self.crl_asked
                    .get(*u)
                    .is_none_or(|t| now.saturating_duration_since(*t) >= CRL_ASK_INTERVAL)
            })
            .cloned()
            .collect();
        if fresh.is_empty() || self.crl_asked.len() >= MAX_CRL_ASKED {
            return;
        }
        for u in &fresh {
            self.crl_asked.insert(u.clone(), now);
        }
        self.push_event(Event::CrlWanted { uris: fresh });
    }

    /// The CRLs in force.
    pub fn crls(&self) -> &Arc<CrlSet> {
        &self.crls
    }

    /// The peer certificates of the IKE SAs, in id order.
    pub fn peer_certs(&self) -> Vec<PeerCertInfo> {
        let mut v: Vec<PeerCertInfo> = self
            .sas
            .iter()
            .filter_map(|(&id, sa)| {
                sa.peer_cert.as_ref().map(|c| PeerCertInfo {
                    ike: IkeId(id),
                    peer: sa.peer.clone(),
                    cert: (**c).clone(),
                })
            })
            .collect();
        v.sort_by_key(|p| p.ike);
        v
    }
}
