//! A test OCSP responder: answers one of our DER requests (its CertID and nonce read back
//! from it) with a BasicOCSPResponse signed by the ECDSA CA's key (or another), as
//! `openssl ocsp` would, with the defects attackers use on demand.
#![allow(dead_code)]

use mip6_ike::auth::revocation::CertStatus;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

pub const CA_ECDSA: &str = include_str!("../../certs/ca-ecdsa.pem");
pub const CA_KEY: &str = include_str!("../../certs/ca-ecdsa.key");
pub const ROGUE_KEY: &str = include_str!("../../certs/rogue-ca.key");

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn gtime(unix: u64) -> Vec<u8> {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    tlv(0x18, s.as_bytes())
}

/// How the test responder answers.
#[derive(Clone, Copy)]
pub struct Answer {
    pub status: CertStatus,
    pub key: &'static str,
    pub nonce: Nonce,
    pub this_update: u64,
    pub next_update: Option<u64>,
    /// Answer about another serial than asked.
    pub other_serial: bool,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Nonce {
    Echo,
    Wrong,
    Absent,
}

impl Answer {
    pub fn new(status: CertStatus, now: u64) -> Answer {
        Answer {
            status,
            key: CA_KEY,
            nonce: Nonce::Echo,
            this_update: now,
            next_update: Some(now + 3600),
            other_serial: false,
        }
    }

    /// A DER OCSPResponse to our DER `request` (CertID and nonce taken from it).
    pub fn respond(&self, request: &[u8]) -> Vec<u8> {
        // OCSPRequest > TBSRequest > requestList > Request > CertID, at offset 10 (both outer
        // SEQUENCEs have two-byte long-form lengths with our 32-byte nonce).
        assert_eq!((request[0], request[1], request[10]), (0x30, 0x81, 0x30));
        let mut cert_id = request[10..12 + usize::from(request[11])].to_vec();
        if self.other_serial {
            let last = cert_id.len() - 1;
            cert_id[last] ^= 1;
        }
        let nonce = &request[request.len() - 32..];
        let status = match self.status {
            CertStatus::Good => vec![0x80, 0],
            CertStatus::Unknown => vec![0x82, 0],
            CertStatus::Revoked => tlv(0xa1, &gtime(self.this_update - 86_400)),
        };
        let mut single = cert_id;
        single.extend(status);
        single.extend(gtime(self.this_update));
        if let Some(n) = self.next_update {
            single.extend(tlv(0xa0, &gtime(n)));
        }
        let ca = mip6_ike::auth::cert::certs_from_pem(CA_ECDSA).unwrap();
        let name = mip6_ike::auth::revocation::describe(&ca[0])
            .unwrap()
            .subject;
        let mut data = tlv(0xa1, &name);
        data.extend(gtime(self.this_update));
        data.extend(tlv(0x30, &tlv(0x30, &single)));
        let nonce_oid = [0x06, 9, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 2];
        let ours = match self.nonce {
            Nonce::Echo => Some(nonce.to_vec()),
            Nonce::Wrong => Some(vec![0x11; 32]),
            Nonce::Absent => None,
        };
        if let Some(n) = ours {
            let mut ext = nonce_oid.to_vec();
            ext.extend(tlv(0x04, &tlv(0x04, &n)));
            data.extend(tlv(0xa1, &tlv(0x30, &tlv(0x30, &ext))));
        }
        let tbs = tlv(0x30, &data);
        let der = PrivatePkcs8KeyDer::from_pem_slice(self.key.as_bytes()).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let kp = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .unwrap();
        let sig = kp.sign(&rng, &tbs).unwrap();
        let mut bits = vec![0];
        bits.extend_from_slice(sig.as_ref());
        let mut basic = tbs;
        // ecdsa-with-SHA256
        basic.extend(tlv(0x30, &[0x06, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2]));
        basic.extend(tlv(0x03, &bits));
        let basic = tlv(0x30, &basic);
        let basic_oid = [0x06, 9, 0x2b, 6, 1, 5, 5, 7, 0x30, 1, 1];
        let mut rb = basic_oid.to_vec();
        rb.extend(tlv(0x04, &basic));
        let mut resp = vec![0x0a, 1, 0];
        resp.extend(tlv(0xa0, &tlv(0x30, &rb)));
        tlv(0x30, &resp)
    }
}
