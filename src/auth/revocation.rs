//! Certificate revocation (RFC 5280 5): CRLs verified against our CAs, and the status of a
//! certificate under a revocation policy with strongSwan's meaning (`revocation` in
//! swanctl.conf: `strict`, `relaxed`; `off` skips the check).
//!
//! Everything here is pure: the daemon reads the CRL files and hands a [`CrlSet`] to the
//! engine, which checks peer certificates against it at authentication and re-checks the
//! established IKE SAs whenever a new set arrives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;

use super::TrustAnchors;
use super::der;
use super::identity::dn_equal;

/// A CRL file larger than this is refused before it is parsed: x509-parser holds every entry
/// in memory, and a CRL of a CA for mobile nodes is far smaller (about 40 bytes per entry).
pub const MAX_CRL_SIZE: usize = 16 << 20;

/// What an unknown revocation status means (strongSwan's `revocation` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationPolicy {
    /// The status must be known and good: no CRL for the issuer, or only a stale one, refuses
    /// the certificate (strongSwan `strict`).
    Strict,
    /// Like `strict` for a certificate that names where its status can be had (an `http://`
    /// CRL distribution point), like `relaxed` otherwise (strongSwan `ifuri`).
    IfUri,
    /// Only a certificate known to be revoked is refused (strongSwan's default, `relaxed`).
    #[default]
    Relaxed,
    /// No revocation checking at all.
    Off,
}

impl RevocationPolicy {
    pub fn name(self) -> &'static str {
        match self {
            RevocationPolicy::Strict => "strict",
            RevocationPolicy::IfUri => "ifuri",
            RevocationPolicy::Relaxed => "relaxed",
            RevocationPolicy::Off => "off",
        }
    }

    /// Whether a certificate with `status` may authenticate (or keep its SA); `has_uri`: it
    /// names a CRL distribution point.
    pub fn accepts(self, status: CertStatus, has_uri: bool) -> bool {
        match (self, status) {
            (RevocationPolicy::Off, _) => true,
            (_, CertStatus::Revoked) => false,
            (RevocationPolicy::Strict, CertStatus::Unknown) => false,
            (RevocationPolicy::IfUri, CertStatus::Unknown) => !has_uri,
            _ => true,
        }
    }
}

/// A certificate's revocation status as far as we know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked,
    /// No fresh CRL of its issuer (none at all, or one past its nextUpdate that does not list
    /// it), or the check is off.
    Unknown,
}

impl CertStatus {
    pub fn name(self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked => "revoked",
            CertStatus::Unknown => "unknown",
        }
    }
}

/// The answer of one check: the status, what said so (a CRL: its file), and when (Unix
/// seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub status: CertStatus,
    /// "crl <file>", or None when nothing knew the certificate's issuer.
    pub source: Option<String>,
    pub at: u64,
}

/// What the engine keeps of a peer's end-entity certificate per IKE SA: enough to check it
/// again when the CRLs change and to list it, not the certificate itself (memory per SA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// DER Names (with their SEQUENCE header) and the serial's INTEGER content.
    pub subject: Box<[u8]>,
    pub issuer: Box<[u8]>,
    pub serial: Box<[u8]>,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Its own OCSP responder (Authority Information Access), to ask again on a re-check.
    pub ocsp_uri: Option<Box<str>>,
    pub checked: Checked,
}

/// The names, serial and expiry of a DER certificate (for listings; no validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_after: i64,
}

pub fn describe(der_cert: &[u8]) -> Option<CertSummary> {
    let (_, c) = x509_parser::parse_x509_certificate(der_cert).ok()?;
    Some(CertSummary {
        subject: c.subject().as_raw().to_vec(),
        issuer: c.issuer().as_raw().to_vec(),
        serial: c.raw_serial().to_vec(),
        not_after: c.validity().not_after.timestamp(),
    })
}

fn err(msg: impl Into<String>) -> super::Error {
    super::Error::Certificate(msg.into())
}

/// One verified CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    /// The issuer as the CRL names it (DER Name).
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    /// Revoked serials (INTEGER content, as in certificates) and their revocation dates.
    revoked: HashMap<Box<[u8]>, i64>,
    /// Where it came from (a file path), for the log and `mip6-ikectl certs`.
    source: String,
}

impl Crl {
    /// Parses a CRL (DER, or PEM `X509 CRL`) and verifies its signature with the key of the
    /// CA among `trust` that bears its issuer's name: a CRL no CA of ours signed is refused.
    pub fn parse(data: &[u8], trust: &TrustAnchors, source: &str) -> Result<Crl, super::Error> {
        if data.len() > MAX_CRL_SIZE {
            return Err(err(format!(
                "CRL of {} bytes (at most {MAX_CRL_SIZE})",
                data.len()
            )));
        }
        let pem;
        let der_bytes: &[u8] = if data.starts_with(b"-----") || data.starts_with(b"\n-----") {
            pem = CertificateRevocationListDer::from_pem_slice(data)
                .map_err(|e| err(format!("bad PEM CRL: {e}")))?;
            pem.as_ref()
        } else {
            data
        };
        let crl = match x509_parser::parse_x509_crl(der_bytes) {
            Ok(([], crl)) => crl,
            Ok(_) => return Err(err("trailing bytes after the CRL")),
            Err(e) => return Err(err(format!("malformed CRL: {e}"))),
        };
        let issuer = crl.issuer().as_raw().to_vec();
        let (tbs, alg, sig) = signed_parts(der_bytes).ok_or_else(|| err("malformed CRL"))?;
        let mut named = false;
        let signer = trust.cas().iter().find(|ca| {
            dn_equal(&ca.subject, &issuer) && {
                named = true;
                verify_signed(&ca.spki_alg, &ca.public_key, alg, tbs, sig)
            }
        });
        if signer.is_none() {
            return Err(err(if named {
                "the CRL's signature does not verify with its issuer's key (not signed by our CA)"
            } else {
                "the CRL's issuer is none of the configured CAs"
            }));
        }
        let mut revoked = HashMap::new();
        for r in crl.iter_revoked_certificates() {
            revoked.insert(
                r.raw_serial().to_vec().into_boxed_slice(),
                r.revocation_date.timestamp(),
            );
        }
        Ok(Crl {
            issuer,
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            revoked,
            source: source.to_string(),
        })
    }

    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }
    pub fn this_update(&self) -> i64 {
        self.this_update
    }
    pub fn next_update(&self) -> Option<i64> {
        self.next_update
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    /// Past its nextUpdate (a CRL without one is never stale: RFC 5280 requires the field,
    /// and strongSwan treats its absence the same way).
    pub fn is_stale(&self, unix: u64) -> bool {
        self.next_update
            .is_some_and(|n| i64::try_from(unix).unwrap_or(i64::MAX) >= n)
    }
}

/// TBSCertList (whole encoding), signatureAlgorithm (content) and the signature bits of a
/// DER CRL (the same outer shape as a certificate).
pub(crate) fn signed_parts(crl: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let body = der::single(crl, der::TAG_SEQUENCE)?;
    let mut r = der::Reader::new(body);
    let tbs = r.expect(der::TAG_SEQUENCE)?;
    let alg = r.expect(der::TAG_SEQUENCE)?;
    let bits = r.expect(0x03)?;
    if !r.is_empty() {
        return None;
    }
    // A signature is a whole number of bytes: the unused-bits count must be 0.
    let (&0, sig) = bits.content.split_first()? else {
        return None;
    };
    Some((tbs.whole, alg.content, sig))
}

/// Verifies `sig` over `msg` with webpki's algorithms (the ones that verify certificate
/// signatures in `cert.rs`), choosing the one whose identifiers match the key's and the
/// signature's AlgorithmIdentifier exactly (as webpki does for certificates).
pub(crate) fn verify_signed(
    spki_alg: &[u8],
    public_key: &[u8],
    sig_alg: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> bool {
    webpki::ALL_VERIFICATION_ALGS.iter().any(|a| {
        a.public_key_alg_id().as_ref() == spki_alg
            && a.signature_alg_id().as_ref() == sig_alg
            && a.verify_signature(public_key, msg, sig).is_ok()
    })
}

/// The verified CRLs we hold: the newest per issuer.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    crls: Vec<Crl>,
}

impl CrlSet {
    pub fn new() -> CrlSet {
        CrlSet::default()
    }

    /// Reads and verifies every file of `paths`; the first file that fails is named in the
    /// error with the reason.
    pub fn load(paths: &[PathBuf], trust: &TrustAnchors) -> Result<CrlSet, (PathBuf, String)> {
        let mut set = CrlSet::new();
        for p in paths {
            set.insert(read_crl(p, trust).map_err(|e| (p.clone(), e))?);
        }
        Ok(set)
    }

    /// Adds `crl`, replacing an older CRL of the same issuer (an older one is ignored).
    pub fn insert(&mut self, crl: Crl) {
        match self
            .crls
            .iter_mut()
            .find(|c| dn_equal(&c.issuer, &crl.issuer))
        {
            Some(c) if c.this_update <= crl.this_update => *c = crl,
            Some(_) => {}
            None => self.crls.push(crl),
        }
    }

    pub fn crls(&self) -> &[Crl] {
        &self.crls
    }

    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// The status of the certificate `serial` of `issuer` at `unix`. A CRL that lists it says
    /// revoked even when stale (a revocation is never undone, RFC 5280 3.3, except
    /// certificateHold, which strongSwan treats as revoked too); a fresh CRL that does not
    /// list it says good; otherwise the status is unknown.
    pub fn status(&self, issuer: &[u8], serial: &[u8], unix: u64) -> Checked {
        let Some(crl) = self.crls.iter().find(|c| dn_equal(&c.issuer, issuer)) else {
            return Checked {
                status: CertStatus::Unknown,
                source: None,
                at: unix,
            };
        };
        let status = if crl.revoked.contains_key(serial) {
            CertStatus::Revoked
        } else if crl.is_stale(unix) {
            CertStatus::Unknown
        } else {
            CertStatus::Good
        };
        Checked {
            status,
            source: Some(format!("crl {}", crl.source)),
            at: unix,
        }
    }
}

/// Reads one CRL file, bounded by [`MAX_CRL_SIZE`].
pub fn read_crl(path: &Path, trust: &TrustAnchors) -> Result<Crl, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut data = Vec::new();
    f.take(MAX_CRL_SIZE as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    Crl::parse(&data, trust, &path.display().to_string()).map_err(|e| match e {
        super::Error::Certificate(m) => m,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cert::certs_from_pem;

    const CA_EC: &str = include_str!("../../certs/ca-ecdsa.pem");
    const CA_RSA: &str = include_str!("../../certs/ca-rsa.pem");
    const CRL_EC: &[u8] = include_bytes!("../../certs/crl-ecdsa.der");
    const CRL_EC_PEM: &[u8] = include_bytes!("../../certs/crl-ecdsa.pem");
    const CRL_EC_EMPTY: &[u8] = include_bytes!("../../certs/crl-ecdsa-empty.der");
    const CRL_RSA: &[u8] = include_bytes!("../../certs/crl-rsa.der");
    const CRL_ROGUE: &[u8] = include_bytes!("../../certs/crl-rogue.der");

    fn anchors() -> TrustAnchors {
        TrustAnchors::from_pem(&format!("{CA_EC}{CA_RSA}")).unwrap()
    }

    /// (issuer, serial) of a PEM certificate, as the engine keeps them.
    fn id_of(pem: &str) -> (Vec<u8>, Vec<u8>) {
        let der = certs_from_pem(pem).unwrap().remove(0);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        (c.issuer().as_raw().to_vec(), c.raw_serial().to_vec())
    }

    #[test]
    fn crl_lists_the_revoked_certificate_only() {
        let t = anchors();
        let crl = Crl::parse(CRL_EC, &t, "crl-ecdsa.der").unwrap();
        let now = crl.this_update() as u64 + 1;
        assert_eq!(crl.revoked_count(), 2);
        let mut set = CrlSet::new();
        set.insert(crl);
        let (iss, mn3) = id_of(include_str!("../../certs/mn3-ecdsa.pem"));
        let (_, mn1) = id_of(include_str!("../../certs/mn1-ecdsa.pem"));
        let s = set.status(&iss, &mn3, now);
        assert_eq!(s.status, CertStatus::Revoked);
        assert_eq!(s.source.as_deref(), Some("crl crl-ecdsa.der"));
        assert_eq!(set.status(&iss, &mn1, now).status, CertStatus::Good);
        // The RSA CA has no CRL here: unknown.
        let (rsa_iss, rsa_mn1) = id_of(include_str!("../../certs/mn1-rsa.pem"));
        let u = set.status(&rsa_iss, &rsa_mn1, now);
        assert_eq!((u.status, u.source), (CertStatus::Unknown, None));
        // Past nextUpdate: mn1 is unknown, mn3 still revoked.
        let late = set.crls()[0].next_update().unwrap() as u64;
        assert_eq!(set.status(&iss, &mn1, late).status, CertStatus::Unknown);
        assert_eq!(set.status(&iss, &mn3, late).status, CertStatus::Revoked);
        assert_eq!(set.status(&iss, &mn1, late - 1).status, CertStatus::Good);
    }

    #[test]
    fn pem_and_der_are_the_same_crl() {
        let t = anchors();
        let a = Crl::parse(CRL_EC, &t, "a").unwrap();
        let b = Crl::parse(CRL_EC_PEM, &t, "b").unwrap();
        assert_eq!(a.issuer(), b.issuer());
        assert_eq!(a.revoked, b.revoked);
        assert_eq!(
            (a.this_update(), a.next_update()),
            (b.this_update(), b.next_update())
        );
        // The RSA CA's CRL (sha256WithRSAEncryption) verifies too and lists ha-revoked-rsa.
        let r = Crl::parse(CRL_RSA, &t, "rsa").unwrap();
        let (iss, serial) = id_of(include_str!("../../certs/ha-revoked-rsa.pem"));
        let mut set = CrlSet::new();
        set.insert(r);
        assert_eq!(
            set.status(&iss, &serial, a.this_update() as u64).status,
            CertStatus::Revoked
        );
    }

    #[test]
    fn forged_and_foreign_crls_are_refused() {
        let t = anchors();
        // Same issuer name as the ECDSA CA, signed by the rogue CA's key.
        let e = Crl::parse(CRL_ROGUE, &t, "rogue").unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // A CRL of a CA we do not trust.
        let only_rsa = TrustAnchors::from_pem(CA_RSA).unwrap();
        let e = Crl::parse(CRL_EC, &only_rsa, "ec").unwrap_err();
        assert!(e.to_string().contains("none of the configured CAs"), "{e}");
        // One flipped bit in the signed part (the last revoked serial byte area).
        for i in [20, CRL_EC.len() / 2, CRL_EC.len() - 3] {
            let mut bad = CRL_EC.to_vec();
            bad[i] ^= 0x01;
            assert!(Crl::parse(&bad, &t, "bad").is_err(), "flip at {i}");
        }
        // Truncations, trailing bytes, garbage, oversize: errors, never a panic.
        for n in 0..CRL_EC.len() {
            assert!(Crl::parse(&CRL_EC[..n], &t, "cut").is_err(), "cut at {n}");
        }
        let mut trailing = CRL_EC.to_vec();
        trailing.push(0);
        assert!(Crl::parse(&trailing, &t, "t").is_err());
        assert!(Crl::parse(b"-----BEGIN X509 CRL-----\n", &t, "p").is_err());
        let huge = vec![0x30; MAX_CRL_SIZE + 1];
        let e = Crl::parse(&huge, &t, "huge").unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn newer_crl_replaces_older() {
        let t = anchors();
        let full = Crl::parse(CRL_EC, &t, "full").unwrap();
        let empty = Crl::parse(CRL_EC_EMPTY, &t, "empty").unwrap();
        assert!(empty.this_update() <= full.this_update());
        let (iss, mn3) = id_of(include_str!("../../certs/mn3-ecdsa.pem"));
        let now = full.this_update() as u64 + 1;
        let mut set = CrlSet::new();
        set.insert(empty.clone());
        assert_eq!(set.status(&iss, &mn3, now).status, CertStatus::Good);
        set.insert(full.clone());
        assert_eq!(set.status(&iss, &mn3, now).status, CertStatus::Revoked);
        assert_eq!(set.crls().len(), 1);
        // An older CRL (a replay of the one before the revocation) does not undo it, unless
        // it is exactly as new.
        if empty.this_update() < full.this_update() {
            set.insert(empty);
            assert_eq!(set.status(&iss, &mn3, now).status, CertStatus::Revoked);
        }
    }

    #[test]
    fn policy_matrix() {
        use CertStatus::*;
        use RevocationPolicy::*;
        // (policy, status, accepted without a URI, accepted with one)
        let cases = [
            (Strict, Good, true, true),
            (Strict, Unknown, false, false),
            (Strict, Revoked, false, false),
            (IfUri, Good, true, true),
            (IfUri, Unknown, true, false),
            (IfUri, Revoked, false, false),
            (Relaxed, Good, true, true),
            (Relaxed, Unknown, true, true),
            (Relaxed, Revoked, false, false),
            (Off, Revoked, true, true),
            (Off, Unknown, true, true),
        ];
        for (p, s, without, with) in cases {
            assert_eq!(p.accepts(s, false), without, "{p:?} {s:?}");
            assert_eq!(p.accepts(s, true), with, "{p:?} {s:?} with a URI");
        }
    }

    #[test]
    fn load_names_the_failing_file() {
        let t = anchors();
        let dir = std::env::temp_dir().join(format!("mip6-crl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.der");
        let bad = dir.join("bad.der");
        std::fs::write(&good, CRL_EC).unwrap();
        std::fs::write(&bad, CRL_ROGUE).unwrap();
        let set = CrlSet::load(std::slice::from_ref(&good), &t).unwrap();
        assert_eq!(set.crls().len(), 1);
        let (p, e) = CrlSet::load(&[good.clone(), bad.clone()], &t).unwrap_err();
        assert_eq!(p, bad);
        assert!(e.contains("does not verify"), "{e}");
        let (p, e) = CrlSet::load(&[dir.join("missing")], &t).unwrap_err();
        assert!(p.ends_with("missing") && e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
