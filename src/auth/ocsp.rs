//! OCSP (RFC 6960): the request we send for one certificate (a SHA-1 CertID, as every
//! responder supports, and the nonce of RFC 8954) and the checks of the answer. DER is written
//! and read by hand with `der.rs` (about a hundred lines for the few fixed structures; the
//! generic ASN.1 crates would add a derive-macro dependency tree for no gain): the request is
//! byte-for-byte what `openssl ocsp -reqout` writes for the same CertID and nonce.
//!
//! A response is accepted only if all of these hold:
//! - responseStatus successful, responseType id-pkix-ocsp-basic;
//! - the signature over tbsResponseData verifies with the issuing CA's own key, or with the key
//!   of a delegated responder certificate carried in the response that the same CA signed,
//!   that bears id-kp-OCSPSigning and is valid now (RFC 6960 4.2.2.2);
//! - one SingleResponse carries exactly our CertID;
//! - the nonce is ours. A response without a nonce (a pre-produced one, RFC 5019) is accepted,
//!   as strongSwan does, but only if its thisUpdate is at most [`NO_NONCE_MAX_AGE`] old:
//!   that bounds how old a "good" answer an attacker can replay. A response with another
//!   nonce is refused: it answers someone else's, or an earlier, request;
//! - thisUpdate not after now + [`CLOCK_SKEW`]; nextUpdate (if any) not before now.

use super::TrustAnchors;
use super::cert::CaInfo;
use super::der::{self, Reader, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, tlv};
use super::identity::dn_equal;
use super::revocation::{CertStatus, signed_parts, verify_signed};

/// A response larger than this is refused (one SingleResponse and a responder certificate
/// or two take 1 to 3 kB).
pub const MAX_OCSP_RESPONSE: usize = 64 * 1024;
/// Our nonce's length (RFC 8954: at most 32 octets, and responders must accept 32).
pub const NONCE_LEN: usize = 32;
/// How far in the future a thisUpdate may lie (the responder's clock may be ahead of ours).
pub const CLOCK_SKEW: u64 = 300;
/// The oldest thisUpdate accepted from a response without a nonce.
pub const NO_NONCE_MAX_AGE: u64 = 3600;
/// How long an answer without nextUpdate is kept (RFC 6960 4.2.2.1: "newer information is
/// always available"; asking again after a few minutes is what that allows).
pub const NO_NEXT_UPDATE_VALIDITY: u64 = 300;
/// Certificates in a response considered as delegated responders (bounds the signature work
/// an attacker can ask of us with one response).
const MAX_RESPONSE_CERTS: usize = 4;

/// sha1 with NULL parameters, as openssl and strongSwan write it.
const SHA1_ALG: &[u8] = &[
    0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
];
/// id-pkix-ocsp-nonce, 1.3.6.1.5.5.7.48.1.2.
const OID_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
/// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1.
const OID_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// Why a response is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("response of {0} bytes (at most {MAX_OCSP_RESPONSE})")]
    TooLarge(usize),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("responder says {}", status_name(*.0))]
    Status(u8),
    #[error("response type is not id-pkix-ocsp-basic")]
    NotBasic,
    #[error("signed neither by the issuing CA nor by a responder it authorized")]
    BadSignature,
    #[error("no answer for the certificate we asked about (CertID mismatch)")]
    CertIdMismatch,
    #[error("the nonce is not ours (a replayed or foreign response)")]
    NonceMismatch,
    #[error("no nonce and thisUpdate more than {NO_NONCE_MAX_AGE} s old")]
    NoNonceTooOld,
    #[error("thisUpdate lies in the future")]
    NotYetValid,
    #[error("past its nextUpdate (stale)")]
    Stale,
}

fn status_name(s: u8) -> &'static str {
    match s {
        1 => "malformedRequest",
        2 => "internalError",
        3 => "tryLater",
        5 => "sigRequired",
        6 => "unauthorized",
        _ => "an unknown error status",
    }
}

/// The CertID of a certificate: SHA-1 of its issuer's DER Name and of its issuer's public key
/// bits (RFC 6960 4.1.1), and its serial (INTEGER content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    pub name_hash: [u8; 20],
    pub key_hash: [u8; 20],
    pub serial: Vec<u8>,
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    let mut h = [0u8; 20];
    h.copy_from_slice(d.as_ref());
    h
}

impl CertId {
    /// The CertID of certificate `serial` issued by `ca`.
    pub fn new(ca: &CaInfo, serial: &[u8]) -> CertId {
        CertId {
            name_hash: sha1(&ca.subject),
            key_hash: sha1(&ca.public_key),
            serial: serial.to_vec(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = SHA1_ALG.to_vec();
        body.extend(tlv(TAG_OCTET_STRING, &self.name_hash));
        body.extend(tlv(TAG_OCTET_STRING, &self.key_hash));
        body.extend(tlv(TAG_INTEGER, &self.serial));
        tlv(TAG_SEQUENCE, &body)
    }

    /// Whether the DER CertID content `c` is this one (SHA-1 only: we ask with SHA-1, and a
    /// responder answers with the hash algorithm of the request).
    fn matches(&self, c: &[u8]) -> bool {
        let mut r = Reader::new(c);
        let (Some(alg), Some(n), Some(k), Some(s)) = (
            r.expect(TAG_SEQUENCE),
            r.expect(TAG_OCTET_STRING),
            r.expect(TAG_OCTET_STRING),
            r.expect(TAG_INTEGER),
        ) else {
            return false;
        };
        // sha1 with absent parameters is the same algorithm.
        let alg_ok = alg.whole == SHA1_ALG || alg.content == &SHA1_ALG[2..9];
        alg_ok
            && r.is_empty()
            && n.content == self.name_hash
            && k.content == self.key_hash
            && s.content == self.serial.as_slice()
    }
}

/// One OCSP request: one CertID and our nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    pub cert_id: CertId,
    pub nonce: Vec<u8>,
}

impl OcspRequest {
    /// The DER OCSPRequest: no version (v1 is the DEFAULT), no requestorName, no signature;
    /// the nonce extension non-critical with the nonce as an OCTET STRING inside extnValue
    /// (RFC 8954 2.1).
    pub fn encode(&self) -> Vec<u8> {
        let request = tlv(TAG_SEQUENCE, &self.cert_id.encode());
        let request_list = tlv(TAG_SEQUENCE, &request);
        let mut ext = tlv(TAG_OID, OID_NONCE);
        ext.extend(tlv(TAG_OCTET_STRING, &tlv(TAG_OCTET_STRING, &self.nonce)));
        let exts = tlv(0xa2, &tlv(TAG_SEQUENCE, &tlv(TAG_SEQUENCE, &ext)));
        let mut tbs = request_list;
        tbs.extend(exts);
        tlv(TAG_SEQUENCE, &tlv(TAG_SEQUENCE, &tbs))
    }
}

/// Who signed an accepted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The issuing CA itself.
    Ca,
    /// A delegated responder (its subject, DER Name).
    Delegated(Vec<u8>),
}

/// A verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    pub status: CertStatus,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// revocationTime of a revoked certificate.
    pub revoked_at: Option<i64>,
    pub signer: Signer,
    /// Whether the response carried our nonce (false: a response without nonce).
    pub nonce: bool,
}

impl OcspAnswer {
    /// Until when the answer may be used (Unix seconds): its nextUpdate, or a few minutes
    /// after thisUpdate without one.
    pub fn valid_until(&self) -> i64 {
        self.next_update.unwrap_or(
            self.this_update
                .saturating_add(NO_NEXT_UPDATE_VALIDITY as i64),
        )
    }
}

fn bad(what: &'static str) -> OcspError {
    OcspError::Malformed(what)
}

/// Checks `data` (a DER OCSPResponse) as the answer to `req` about a certificate of `ca`, at
/// `unix`. `req` must have been made for a certificate of `ca` (else CertIdMismatch): only
/// `ca` and a responder it delegated to may sign the answer.
pub fn verify_response(
    data: &[u8],
    req: &OcspRequest,
    ca: &CaInfo,
    unix: u64,
) -> Result<OcspAnswer, OcspError> {
    if data.len() > MAX_OCSP_RESPONSE {
        return Err(OcspError::TooLarge(data.len()));
    }
    let now = i64::try_from(unix).unwrap_or(i64::MAX);
    // `req` must be about a certificate of `ca`: the CA whose key (or delegate) may sign.
    let ours = CertId::new(ca, &req.cert_id.serial);
    if (ours.name_hash, ours.key_hash) != (req.cert_id.name_hash, req.cert_id.key_hash) {
        return Err(OcspError::CertIdMismatch);
    }
    // OCSPResponse
    let body = der::single(data, TAG_SEQUENCE).ok_or(bad("OCSPResponse"))?;
    let mut r = Reader::new(body);
    let status = r.expect(0x0a).ok_or(bad("responseStatus"))?;
    match status.content {
        [0] => {}
        [s] => return Err(OcspError::Status(*s)),
        _ => return Err(bad("responseStatus")),
    }
    let rb = r.expect(0xa0).ok_or(bad("no responseBytes"))?;
    if !r.is_empty() {
        return Err(bad("trailing data"));
    }
    let rb = der::single(rb.content, TAG_SEQUENCE).ok_or(bad("ResponseBytes"))?;
    let mut r = Reader::new(rb);
    let typ = r.expect(TAG_OID).ok_or(bad("responseType"))?;
    let resp = r.expect(TAG_OCTET_STRING).ok_or(bad("response"))?;
    if !r.is_empty() {
        return Err(bad("ResponseBytes"));
    }
    if typ.content != OID_BASIC {
        return Err(OcspError::NotBasic);
    }
    // BasicOCSPResponse
    let basic = der::single(resp.content, TAG_SEQUENCE).ok_or(bad("BasicOCSPResponse"))?;
    let mut r = Reader::new(basic);
    let tbs = r.expect(TAG_SEQUENCE).ok_or(bad("tbsResponseData"))?;
    let alg = r.expect(TAG_SEQUENCE).ok_or(bad("signatureAlgorithm"))?;
    let bits = r.expect(0x03).ok_or(bad("signature"))?;
    let certs = if r.peek_tag() == Some(0xa0) {
        let c = r.read().ok_or(bad("certs"))?;
        Some(der::single(c.content, TAG_SEQUENCE).ok_or(bad("certs"))?)
    } else {
        None
    };
    if !r.is_empty() {
        return Err(bad("BasicOCSPResponse"));
    }
    let (&0, sig) = bits.content.split_first().ok_or(bad("signature"))? else {
        return Err(bad("signature"));
    };
    let signer = signer_of(tbs.whole, alg.content, sig, certs, ca, now)?;

    // ResponseData
    let mut r = Reader::new(tbs.content);
    if r.peek_tag() == Some(0xa0) {
        let v = r.read().ok_or(bad("version"))?;
        if v.content != [TAG_INTEGER, 1, 0] {
            return Err(bad("version"));
        }
    }
    match r.read() {
        Some(t) if t.tag == 0xa1 || t.tag == 0xa2 => {}
        _ => return Err(bad("responderID")),
    }
    r.expect(0x18).ok_or(bad("producedAt"))?;
    let responses = r.expect(TAG_SEQUENCE).ok_or(bad("responses"))?;
    let mut nonce_ext = None;
    if r.peek_tag() == Some(0xa1) {
        let e = r.read().ok_or(bad("responseExtensions"))?;
        nonce_ext = find_nonce(e.content)?;
    }
    if !r.is_empty() {
        return Err(bad("ResponseData"));
    }

    // The SingleResponse about our certificate.
    let mut rr = Reader::new(responses.content);
    let mut single = None;
    while !rr.is_empty() {
        let s = rr.expect(TAG_SEQUENCE).ok_or(bad("SingleResponse"))?;
        let mut sr = Reader::new(s.content);
        let id = sr.expect(TAG_SEQUENCE).ok_or(bad("certID"))?;
        if req.cert_id.matches(id.content) {
            single = Some(sr);
            break;
        }
    }
    let mut sr = single.ok_or(OcspError::CertIdMismatch)?;
    let st = sr.read().ok_or(bad("certStatus"))?;
    let (status, revoked_at) = match (st.tag, st.content) {
        (0x80, []) => (CertStatus::Good, None),
        (0x82, []) => (CertStatus::Unknown, None),
        (0xa1, info) => {
            let t = Reader::new(info)
                .expect(0x18)
                .ok_or(bad("revocationTime"))?;
            (CertStatus::Revoked, Some(generalized_time(t.content)?))
        }
        _ => return Err(bad("certStatus")),
    };
    let this_update = generalized_time(sr.expect(0x18).ok_or(bad("thisUpdate"))?.content)?;
    let next_update = if sr.peek_tag() == Some(0xa0) {
        let n = sr.read().ok_or(bad("nextUpdate"))?;
        let t = der::single(n.content, 0x18).ok_or(bad("nextUpdate"))?;
        Some(generalized_time(t)?)
    } else {
        None
    };

    // Nonce, then time.
    let has_nonce = match nonce_ext {
        Some(v) => {
            // RFC 8954: an OCTET STRING inside extnValue; some old responders put the bare
            // bytes there. Either way it must be exactly ours.
            let inner = der::single(v, TAG_OCTET_STRING);
            if inner != Some(req.nonce.as_slice()) && v != req.nonce.as_slice() {
                return Err(OcspError::NonceMismatch);
            }
            true
        }
        None => {
            if now.saturating_sub(this_update) > NO_NONCE_MAX_AGE as i64 {
                return Err(OcspError::NoNonceTooOld);
            }
            false
        }
    };
    if this_update > now.saturating_add(CLOCK_SKEW as i64) {
        return Err(OcspError::NotYetValid);
    }
    if next_update.is_some_and(|n| n < now) {
        return Err(OcspError::Stale);
    }
    Ok(OcspAnswer {
        status,
        this_update,
        next_update,
        revoked_at,
        signer,
        nonce: has_nonce,
    })
}

/// The extnValue of the nonce among `exts` (the content of [1] EXPLICIT Extensions).
fn find_nonce(exts: &[u8]) -> Result<Option<&[u8]>, OcspError> {
    let list = der::single(exts, TAG_SEQUENCE).ok_or(bad("Extensions"))?;
    let mut r = Reader::new(list);
    let mut found = None;
    while !r.is_empty() {
        let e = r.expect(TAG_SEQUENCE).ok_or(bad("Extension"))?;
        let mut er = Reader::new(e.content);
        let id = er.expect(TAG_OID).ok_or(bad("extnID"))?;
        if er.peek_tag() == Some(0x01) {
            er.read().ok_or(bad("critical"))?;
        }
        let v = er.expect(TAG_OCTET_STRING).ok_or(bad("extnValue"))?;
        if !er.is_empty() {
            return Err(bad("Extension"));
        }
        if id.content == OID_NONCE {
            if found.is_some() {
                return Err(bad("two nonces"));
            }
            found = Some(v.content);
        }
    }
    Ok(found)
}

/// Who signed `tbs`: the CA, or a delegated responder among `certs` (the content of the
/// SEQUENCE OF Certificate) that the CA issued for OCSP signing.
fn signer_of(
    tbs: &[u8],
    alg: &[u8],
    sig: &[u8],
    certs: Option<&[u8]>,
    ca: &CaInfo,
    now: i64,
) -> Result<Signer, OcspError> {
    if verify_signed(&ca.spki_alg, &ca.public_key, alg, tbs, sig) {
        return Ok(Signer::Ca);
    }
    let mut r = Reader::new(certs.unwrap_or(&[]));
    for _ in 0..MAX_RESPONSE_CERTS {
        let Some(c) = r.expect(TAG_SEQUENCE) else {
            break;
        };
        if let Some(subject) = delegated_key_verifies(c.whole, ca, now, alg, tbs, sig) {
            return Ok(Signer::Delegated(subject));
        }
    }
    Err(OcspError::BadSignature)
}

/// The subject of `cert` if it is a responder `ca` authorized (issued and signed by `ca`,
/// id-kp-OCSPSigning, valid at `now`) and its key verifies `sig` over `tbs`.
fn delegated_key_verifies(
    cert: &[u8],
    ca: &CaInfo,
    now: i64,
    alg: &[u8],
    tbs: &[u8],
    sig: &[u8],
) -> Option<Vec<u8>> {
    let (rest, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    if !rest.is_empty() || !dn_equal(c.issuer().as_raw(), &ca.subject) {
        return None;
    }
    let v = c.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return None;
    }
    if !c
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.ocsp_signing)
    {
        return None;
    }
    let (ctbs, calg, csig) = signed_parts(cert)?;
    if !verify_signed(&ca.spki_alg, &ca.public_key, calg, ctbs, csig) {
        return None;
    }
    let spki = der::single(c.public_key().raw, TAG_SEQUENCE)?;
    let key_alg = Reader::new(spki).expect(TAG_SEQUENCE)?;
    let key = &c.public_key().subject_public_key.data;
    verify_signed(key_alg.content, key, alg, tbs, sig).then(|| c.subject().as_raw().to_vec())
}

/// GeneralizedTime (DER: YYYYMMDDHHMMSS[.f]Z) to Unix seconds; fractions are dropped.
fn generalized_time(t: &[u8]) -> Result<i64, OcspError> {
    let e = || bad("GeneralizedTime");
    let s = std::str::from_utf8(t).map_err(|_| e())?;
    let s = s.strip_suffix('Z').ok_or_else(e)?;
    let (main, frac) = s.split_once('.').unwrap_or((s, "0"));
    if main.len() != 14
        || !main.bytes().all(|b| b.is_ascii_digit())
        || frac.is_empty()
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(e());
    }
    let n = |a: usize, b: usize| main[a..b].parse::<i64>().map_err(|_| e());
    let (y, mo, d, h, mi, sec) = (
        n(0, 4)?,
        n(4, 6)?,
        n(6, 8)?,
        n(8, 10)?,
        n(10, 12)?,
        n(12, 14)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(e());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// The CA among `trust` that issued a certificate with issuer `issuer`, for the CertID.
pub fn issuing_ca<'a>(trust: &'a TrustAnchors, issuer: &[u8]) -> Option<&'a CaInfo> {
    trust.cas().iter().find(|c| dn_equal(&c.subject, issuer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cert::certs_from_pem;

    const CA_EC: &str = include_str!("../../certs/ca-ecdsa.pem");
    const CA_RSA: &str = include_str!("../../certs/ca-rsa.pem");
    /// thisUpdate (and producedAt) of every response fixture: when make.sh ran. Update it
    /// when the fixtures are made again.
    const T0: u64 = 1_796_305_752;

    macro_rules! fx {
        ($n:literal) => {
            include_bytes!(concat!("../../tests/fixtures/ocsp/", $n))
        };
    }

    fn anchors() -> TrustAnchors {
        TrustAnchors::from_pem(&format!("{CA_EC}{CA_RSA}")).unwrap()
    }

    fn serial_of(pem: &str) -> Vec<u8> {
        let der = certs_from_pem(pem).unwrap().remove(0);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        c.raw_serial().to_vec()
    }

    /// The request openssl made (req-*.der) rebuilt by us: same CertID, its nonce.
    fn request(serial_pem: &str, openssl_req: &[u8]) -> OcspRequest {
        let t = anchors();
        let ca = &t.cas()[0];
        // openssl's nonce: 16 bytes, the last element (OCTET STRING 0x04 0x10 ...).
        let (head, nonce) = openssl_req.split_at(openssl_req.len() - 16);
        assert_eq!(&head[head.len() - 2..], &[0x04, 0x10]);
        OcspRequest {
            cert_id: CertId::new(ca, &serial_of(serial_pem)),
            nonce: nonce.to_vec(),
        }
    }

    const MN1: &str = include_str!("../../certs/mn1-ecdsa.pem");
    const MN2: &str = include_str!("../../certs/mn2-ecdsa.pem");
    const MN3: &str = include_str!("../../certs/mn3-ecdsa.pem");

    fn check(resp: &[u8], req: &OcspRequest, unix: u64) -> Result<OcspAnswer, OcspError> {
        let t = anchors();
        verify_response(resp, req, &t.cas()[0], unix)
    }

    #[test]
    fn request_is_byte_exact_with_openssl() {
        for (pem, der) in [
            (MN1, &fx!("req-mn1.der")[..]),
            (MN1, fx!("req-mn1-again.der")),
            (MN2, fx!("req-mn2.der")),
            (MN3, fx!("req-mn3.der")),
        ] {
            assert_eq!(request(pem, der).encode(), der);
        }
        // Without our nonce extension the rest is openssl's -no_nonce request.
        let r = request(MN1, fx!("req-mn1.der"));
        let ours = r.encode();
        let plain = fx!("req-mn1-nononce.der");
        assert_eq!(&ours[4..4 + plain.len() - 4], &plain[4..]);
        // Our own requests carry 32 bytes.
        let a = OcspRequest {
            cert_id: r.cert_id.clone(),
            nonce: vec![0x5a; NONCE_LEN],
        };
        let enc = a.encode();
        assert!(enc.ends_with(&a.nonce));
        // 16 more nonce bytes, and the two outer SEQUENCEs pass 127 bytes (long-form lengths).
        assert_eq!(enc.len(), fx!("req-mn1.der").len() + 16 + 2);
        assert!(der::single(&enc, TAG_SEQUENCE).is_some());
    }

    #[test]
    fn good_revoked_unknown() {
        let g = check(fx!("good.der"), &request(MN1, fx!("req-mn1.der")), T0 + 10).unwrap();
        assert_eq!(
            (g.status, g.signer.clone(), g.nonce),
            (CertStatus::Good, Signer::Ca, true)
        );
        assert_eq!(g.this_update, T0 as i64);
        assert!(g.next_update.unwrap() > T0 as i64 + 86_400 * 365);
        assert_eq!(g.valid_until(), g.next_update.unwrap());
        let r = check(fx!("revoked.der"), &request(MN3, fx!("req-mn3.der")), T0).unwrap();
        assert_eq!(r.status, CertStatus::Revoked);
        // revocationTime 2025-01-01 00:00:00Z from the index.
        assert_eq!(r.revoked_at, Some(1_735_689_600));
        let u = check(fx!("unknown.der"), &request(MN2, fx!("req-mn2.der")), T0).unwrap();
        assert_eq!(u.status, CertStatus::Unknown);
    }

    #[test]
    fn delegated_responder_only_with_ocsp_signing_from_the_same_ca() {
        let req = request(MN1, fx!("req-mn1.der"));
        let d = check(fx!("delegated.der"), &req, T0 + 1).unwrap();
        let Signer::Delegated(subject) = d.signer else {
            panic!("{d:?}")
        };
        assert!(String::from_utf8_lossy(&subject).contains("responder"));
        assert_eq!(
            check(fx!("delegated-noeku.der"), &req, T0 + 1),
            Err(OcspError::BadSignature)
        );
        assert_eq!(
            check(fx!("delegated-other-ca.der"), &req, T0 + 1),
            Err(OcspError::BadSignature)
        );
        // The CA with the RSA CA as issuer: the delegated-other-ca responder is its own, but
        // the answer is about an ECDSA-CA certificate (CertID) and is refused there anyway.
        let t = anchors();
        let rsa = &t.cas()[1];
        assert!(verify_response(fx!("delegated-other-ca.der"), &req, rsa, T0 + 1).is_err());
        // Not yet valid / expired responder certificate: before its notBefore.
        assert_eq!(
            check(fx!("delegated.der"), &req, T0 - 10),
            Err(OcspError::BadSignature)
        );
    }

    #[test]
    fn forged_replayed_and_mismatched_are_refused() {
        let req = request(MN1, fx!("req-mn1.der"));
        // Signed by the rogue CA, which bears our CA's name.
        assert_eq!(
            check(fx!("rogue.der"), &req, T0),
            Err(OcspError::BadSignature)
        );
        // The answer to an earlier request of ours (another nonce): a replay.
        assert_eq!(
            check(fx!("good-other-nonce.der"), &req, T0),
            Err(OcspError::NonceMismatch)
        );
        // About mn3, checked as the answer about mn1 (nonce of the mn3 request, so only the
        // CertID differs).
        let mut asked_mn1 = request(MN3, fx!("req-mn3.der"));
        asked_mn1.cert_id = CertId::new(&anchors().cas()[0], &serial_of(MN1));
        assert_eq!(
            check(fx!("revoked.der"), &asked_mn1, T0),
            Err(OcspError::CertIdMismatch)
        );
        // The same serial under another CA: the issuer hashes differ.
        let mut other_ca = request(MN1, fx!("req-mn1.der"));
        other_ca.cert_id = CertId::new(&anchors().cas()[1], &serial_of(MN1));
        assert_eq!(
            check(fx!("good.der"), &other_ca, T0),
            Err(OcspError::CertIdMismatch)
        );
        // Every flipped bit in the signed part or the signature is refused; never a panic.
        let good = fx!("good.der");
        for i in 0..good.len() {
            let mut b = good.to_vec();
            b[i] ^= 0x01;
            if let Ok(a) = check(&b, &req, T0) {
                // Only bits outside the signed data and signature may flip unnoticed, and
                // then the answer is the same.
                assert_eq!(a.status, CertStatus::Good, "flip at {i}");
            }
        }
        for n in 0..good.len() {
            assert!(check(&good[..n], &req, T0).is_err(), "cut at {n}");
        }
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert!(check(&trailing, &req, T0).is_err());
        let huge = vec![0x30; MAX_OCSP_RESPONSE + 1];
        assert_eq!(
            check(&huge, &req, T0),
            Err(OcspError::TooLarge(MAX_OCSP_RESPONSE + 1))
        );
    }

    #[test]
    fn freshness() {
        let req = request(MN1, fx!("req-mn1.der"));
        // thisUpdate ahead of our clock: within the skew only.
        assert!(check(fx!("good.der"), &req, T0 - CLOCK_SKEW).is_ok());
        assert_eq!(
            check(fx!("good.der"), &req, T0 - CLOCK_SKEW - 1),
            Err(OcspError::NotYetValid)
        );
        // nextUpdate = thisUpdate + 60 s.
        let s = check(fx!("short.der"), &req, T0 + 60).unwrap();
        assert_eq!(s.next_update, Some(T0 as i64 + 60));
        assert_eq!(
            check(fx!("short.der"), &req, T0 + 61),
            Err(OcspError::Stale)
        );
        // No nextUpdate: accepted, kept a few minutes.
        let n = check(fx!("no-next-update.der"), &req, T0 + 1).unwrap();
        assert_eq!(n.next_update, None);
        assert_eq!(n.valid_until(), (T0 + NO_NEXT_UPDATE_VALIDITY) as i64);
        // No nonce: accepted while thisUpdate is recent, refused after (a replay window).
        let plain = check(fx!("no-nonce.der"), &req, T0 + NO_NONCE_MAX_AGE).unwrap();
        assert!(!plain.nonce);
        assert_eq!(
            check(fx!("no-nonce.der"), &req, T0 + NO_NONCE_MAX_AGE + 1),
            Err(OcspError::NoNonceTooOld)
        );
    }

    #[test]
    fn error_statuses_and_other_types() {
        let req = request(MN1, fx!("req-mn1.der"));
        // unauthorized, tryLater: no responseBytes.
        assert_eq!(
            check(&[0x30, 3, 0x0a, 1, 6], &req, T0),
            Err(OcspError::Status(6))
        );
        assert_eq!(
            check(&[0x30, 3, 0x0a, 1, 3], &req, T0),
            Err(OcspError::Status(3))
        );
        assert!(
            OcspError::Status(6).to_string().contains("unauthorized"),
            "{}",
            OcspError::Status(6)
        );
        // A successful status without responseBytes.
        assert!(check(&[0x30, 3, 0x0a, 1, 0], &req, T0).is_err());
        // Another responseType.
        let mut other = fx!("good.der").to_vec();
        let at = other
            .windows(OID_BASIC.len())
            .position(|w| w == OID_BASIC)
            .unwrap();
        other[at + OID_BASIC.len() - 1] = 0x05;
        assert_eq!(check(&other, &req, T0), Err(OcspError::NotBasic));
    }

    #[test]
    fn generalized_times() {
        assert_eq!(generalized_time(b"19700101000000Z"), Ok(0));
        assert_eq!(generalized_time(b"20250101000000Z"), Ok(1_735_689_600));
        assert_eq!(generalized_time(b"20000229235959.5Z"), Ok(951_868_799));
        for bad in [
            &b"2025010100000Z"[..],
            b"20251301000000Z",
            b"20250101000000",
            b"2025010100000aZ",
            b"20250101000000.Z",
        ] {
            assert!(generalized_time(bad).is_err());
        }
    }
}
