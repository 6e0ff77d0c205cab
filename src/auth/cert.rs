//! Certificates: trust anchors, chain validation (rustls-webpki), identity checks (x509-parser),
//! CERTREQ hashes (SHA-1 of the CA's SubjectPublicKeyInfo, RFC 7296 3.7).

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::extensions::GeneralName;

use super::Identity;
use super::der;
use super::identity::dn_equal;

/// More intermediates than this in one exchange is not a real chain.
const MAX_INTERMEDIATES: usize = 8;

fn cert_err(msg: impl Into<String>) -> super::Error {
    super::Error::Certificate(msg.into())
}

/// The CAs we trust for peer certificates.
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    /// SHA-1 of each CA's SubjectPublicKeyInfo, in the same order.
    spki_sha1: Vec<[u8; 20]>,
    /// What revocation needs of each CA (its name and key verify its CRLs) and what
    /// `mip6-ikectl certs` lists, in the same order.
    cas: Vec<CaInfo>,
}

/// One CA: the fields CRL verification and listings need.
#[derive(Debug, Clone)]
pub struct CaInfo {
    /// DER Name (with its SEQUENCE header).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The content of the SubjectPublicKeyInfo's AlgorithmIdentifier and the key bits.
    pub(crate) spki_alg: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
}

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustAnchors({} CAs)", self.anchors.len())
    }
}

impl TrustAnchors {
    /// From PEM text holding one or more CA certificates.
    pub fn from_pem(pem: &str) -> Result<TrustAnchors, super::Error> {
        Self::from_der(certs_from_pem(pem)?)
    }

    /// From DER certificates.
    pub fn from_der(certs: Vec<Vec<u8>>) -> Result<TrustAnchors, super::Error> {
        if certs.is_empty() {
            return Err(cert_err("no CA certificate given"));
        }
        let mut anchors = Vec::with_capacity(certs.len());
        let mut spki_sha1 = Vec::with_capacity(certs.len());
        let mut cas = Vec::with_capacity(certs.len());
        for (i, der_cert) in certs.iter().enumerate() {
            let parsed = parse_cert(der_cert)
                .map_err(|e| cert_err(format!("CA certificate #{}: {e}", i + 1)))?;
            let spki_alg = der::single(parsed.public_key().raw, der::TAG_SEQUENCE)
                .and_then(|b| der::Reader::new(b).expect(der::TAG_SEQUENCE))
                .map(|t| t.content.to_vec())
                .ok_or_else(|| cert_err(format!("CA certificate #{}: bad public key", i + 1)))?;
            cas.push(CaInfo {
                subject: parsed.subject().as_raw().to_vec(),
                issuer: parsed.issuer().as_raw().to_vec(),
                serial: parsed.raw_serial().to_vec(),
                not_after: parsed.validity().not_after.timestamp(),
                spki_alg,
                public_key: parsed.public_key().subject_public_key.data.to_vec(),
            });
            let digest = ring::digest::digest(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                parsed.public_key().raw,
            );
            let mut h = [0u8; 20];
            h.copy_from_slice(digest.as_ref());
            spki_sha1.push(h);
            let cert = CertificateDer::from(der_cert.as_slice());
            let anchor = webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
                cert_err(format!(
                    "CA certificate #{} is not usable as a trust anchor: {e}",
                    i + 1
                ))
            })?;
            anchors.push(anchor.to_owned());
        }
        Ok(TrustAnchors {
            anchors,
            spki_sha1,
            cas,
        })
    }

    /// The CAs, in configuration order.
    pub fn cas(&self) -> &[CaInfo] {
        &self.cas
    }

    /// CERTREQ payload data: the concatenated 20-byte SHA-1 hashes of our CAs' public keys.
    pub fn certreq_data(&self) -> Vec<u8> {
        self.spki_sha1.concat()
    }

    /// True when one of the hashes in a peer's CERTREQ data names one of our CAs (used to choose
    /// which chain to send; we send ours anyway when none matches).
    pub fn certreq_matches(&self, data: &[u8]) -> bool {
        data.chunks_exact(20)
            .any(|h| self.spki_sha1.iter().any(|ours| ours.as_slice() == h))
    }

    /// Validates `end_entity` (DER) with optional `intermediates` up to one of the anchors at
    /// `unix_time` (seconds).
    ///
    /// Signature algorithms: webpki's ring set (ECDSA P-256/P-384 with SHA-256/384, RSA
    /// PKCS#1 v1.5 and PSS with SHA-256/384/512, Ed25519); SHA-1 signed certificates fail.
    /// Extended key usage: see [`IkeEku`]. Revocation is checked by the caller with
    /// [`PeerCert::issuer`] and [`PeerCert::serial`] (`revocation`).
    pub fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[&[u8]],
        unix_time: u64,
    ) -> Result<PeerCert, super::Error> {
        if intermediates.len() > MAX_INTERMEDIATES {
            return Err(cert_err(format!(
                "{} intermediate certificates (at most {MAX_INTERMEDIATES})",
                intermediates.len()
            )));
        }
        let ee_der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&ee_der)
            .map_err(|e| cert_err(format!("cannot parse the peer certificate: {e}")))?;
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(*c))
            .collect();
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix_time));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &inter,
            time,
            IkeEku,
            None,
            None,
        )
        .map_err(|e| cert_err(format!("peer certificate not trusted: {e}")))?;
        PeerCert::from_der(end_entity)
    }
}

/// Extended key usage policy for IKE peers. RFC 4945 5.1.3.12 says IKE implementations
/// should not require any EKU, and certificates in the field carry none, serverAuth,
/// clientAuth (what strongSwan's pki tool and most CAs write) or id-kp-ipsecIKE (RFC 4945).
/// webpki's `KeyUsage::required_if_present` accepts a single purpose only, so this accepts: no
/// EKU extension, or one listing serverAuth, clientAuth, ipsecIKE or anyExtendedKeyUsage. A
/// certificate restricted to other purposes (e.g. only emailProtection) is refused.
/// webpki applies the policy to every certificate of the path.
pub struct IkeEku;

/// 1.3.6.1.5.5.7.3.1 serverAuth, .3.2 clientAuth, .3.17 ipsecIKE; 2.5.29.37.0 anyExtendedKeyUsage.
const IKE_EKUS: &[&[u8]] = &[
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
    &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11],
    &[0x55, 0x1d, 0x25, 0x00],
];

impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if IKE_EKUS
                .iter()
                .any(|oid| webpki::KeyPurposeId::new(oid) == id)
            {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        // webpki's error names one required purpose; clientAuth is the closest to ours.
        Err(webpki::Error::RequiredEkuNotFoundContext(
            webpki::RequiredEkuNotFoundContext {
                required: webpki::KeyUsage::client_auth(),
                present,
            },
        ))
    }
}

/// The kind of public key in a certificate, as far as AUTH verification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Other,
}

/// A subjectAltName entry we can match identities against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Email(String),
    Ip(Vec<u8>),
}

/// A validated peer certificate: what AUTH verification and identity checks need.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub(crate) key_type: KeyType,
    /// The subjectPublicKey BIT STRING content: an RSAPublicKey, or an uncompressed EC point.
    pub(crate) public_key: Vec<u8>,
    subject: Vec<u8>,
    sans: Vec<San>,
    /// For revocation checks: the issuer's DER Name, the serial (INTEGER content), notAfter.
    issuer: Vec<u8>,
    serial: Vec<u8>,
    not_after: i64,
    /// `http://` CRL distribution points (at most [`MAX_CRL_URIS`]), to fetch a CRL from.
    crl_uris: Vec<String>,
    /// `http://` OCSP responders of its Authority Information Access (id-ad-ocsp), at most
    /// [`MAX_CRL_URIS`].
    ocsp_uris: Vec<String>,
}

/// CRL distribution point URIs kept per certificate (a certificate with more is odd; the first
/// ones are tried).
pub const MAX_CRL_URIS: usize = 4;

impl PeerCert {
    /// Whether `id` is bound to this certificate: DN equal to the subject, or FQDN / email /
    /// IP address present in subjectAltName. KEY_ID never matches a certificate.
    pub fn matches_identity(&self, id: &Identity) -> bool {
        let trim_dot = |s: &str| s.strip_suffix('.').unwrap_or(s).to_string();
        match id {
            Identity::Dn(dn) => dn_equal(dn, &self.subject),
            Identity::Fqdn(name) => self.sans.iter().any(
                |s| matches!(s, San::Dns(d) if trim_dot(d).eq_ignore_ascii_case(&trim_dot(name))),
            ),
            Identity::Email(addr) => self
                .sans
                .iter()
                .any(|s| matches!(s, San::Email(e) if e.eq_ignore_ascii_case(addr))),
            Identity::Ipv4(a) => self
                .sans
                .iter()
                .any(|s| matches!(s, San::Ip(ip) if ip.as_slice() == a.octets())),
            Identity::Ipv6(a) => self
                .sans
                .iter()
                .any(|s| matches!(s, San::Ip(ip) if ip.as_slice() == a.octets())),
            Identity::KeyId(_) => false,
        }
    }

    /// The subject as an Identity::Dn.
    pub fn subject(&self) -> Identity {
        Identity::Dn(self.subject.clone())
    }

    /// The issuer's DER Name.
    pub fn issuer(&self) -> &[u8] {
        &self.issuer
    }

    /// The serial number (the DER INTEGER's content, as CRLs list it).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Its `http://` CRL distribution points.
    pub fn crl_uris(&self) -> &[String] {
        &self.crl_uris
    }

    /// Its `http://` OCSP responders (Authority Information Access, id-ad-ocsp).
    pub fn ocsp_uris(&self) -> &[String] {
        &self.ocsp_uris
    }

    /// What an IKE SA keeps of this certificate, with the revocation check's answer.
    pub fn to_ref(&self, checked: super::revocation::Checked) -> super::revocation::CertRef {
        super::revocation::CertRef {
            subject: self.subject.clone().into_boxed_slice(),
            issuer: self.issuer.clone().into_boxed_slice(),
            serial: self.serial.clone().into_boxed_slice(),
            not_after: self.not_after,
            ocsp_uri: self.ocsp_uris.first().map(|u| u.as_str().into()),
            checked,
        }
    }

    /// Whether the certificate holds an RSA key (else ECDSA, as far as AUTH goes).
    pub fn is_rsa(&self) -> bool {
        self.key_type == KeyType::Rsa
    }

    /// Extracts what we keep from a certificate, without validating it: only for certificates
    /// validated otherwise (`TrustAnchors::verify` calls it after webpki accepted the chain).
    pub(crate) fn from_der(der_cert: &[u8]) -> Result<PeerCert, super::Error> {
        let cert = parse_cert(der_cert).map_err(cert_err)?;
        let spki = cert.public_key();
        let key_type = key_type_of(spki.raw);
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => sans.push(San::Dns((*d).to_string())),
                    GeneralName::RFC822Name(e) => sans.push(San::Email((*e).to_string())),
                    GeneralName::IPAddress(ip) if ip.len() == 4 || ip.len() == 16 => {
                        sans.push(San::Ip(ip.to_vec()))
                    }
                    _ => {}
                }
            }
        }
        Ok(PeerCert {
            key_type,
            public_key: spki.subject_public_key.data.to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            sans,
            issuer: cert.issuer().as_raw().to_vec(),
            serial: cert.raw_serial().to_vec(),
            not_after: cert.validity().not_after.timestamp(),
            crl_uris: crl_uris(&cert),
            ocsp_uris: ocsp_uris(&cert),
        })
    }
}

/// The `http://` full-name URIs of a certificate's CRL distribution points (RFC 5280
/// 4.2.1.13), bounded in number and length.
fn crl_uris(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for p in points.iter() {
            let Some(DistributionPointName::FullName(names)) = &p.distribution_point else {
                continue;
            };
            for n in names {
                if let GeneralName::URI(u) = n
                    && u.len() <= 1024
                    && u.get(..7)
                        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
                    && out.len() < MAX_CRL_URIS
                {
                    out.push((*u).to_string());
                }
            }
        }
    }
    out
}

/// The `http://` id-ad-ocsp URIs of a certificate's Authority Information Access (RFC 5280
/// 4.2.2.1), bounded in number and length like the CRL distribution points.
fn ocsp_uris(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
    let mut out = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() else {
            continue;
        };
        for d in aia.iter() {
            if d.access_method != OID_PKIX_ACCESS_DESCRIPTOR_OCSP {
                continue;
            }
            if let GeneralName::URI(u) = &d.access_location
                && u.len() <= 1024
                && u.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
                && out.len() < MAX_CRL_URIS
            {
                out.push((*u).to_string());
            }
        }
    }
    out
}

/// rsaEncryption 1.2.840.113549.1.1.1; secp384r1 1.3.132.0.34.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// Reads the algorithm of a SubjectPublicKeyInfo.
fn key_type_of(spki: &[u8]) -> KeyType {
    let kind = || -> Option<KeyType> {
        let body = der::single(spki, der::TAG_SEQUENCE)?;
        let alg = der::Reader::new(body).expect(der::TAG_SEQUENCE)?;
        let mut r = der::Reader::new(alg.content);
        let oid = r.expect(der::TAG_OID)?;
        if oid.content == OID_RSA_ENCRYPTION {
            return Some(KeyType::Rsa);
        }
        if oid.content != super::key::OID_EC_PUBLIC_KEY {
            return None;
        }
        match r.expect(der::TAG_OID)?.content {
            c if c == super::key::OID_P256 => Some(KeyType::EcP256),
            c if c == OID_P384 => Some(KeyType::EcP384),
            c if c == super::key::OID_P521 => Some(KeyType::EcP521),
            _ => None,
        }
    };
    kind().unwrap_or(KeyType::Other)
}

/// Parses one whole DER certificate.
fn parse_cert(der_cert: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der_cert) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(format!("malformed certificate: {e}")),
    }
}

/// Parses one PEM file's certificates into DER (for our own chain to send in CERT payloads).
pub fn certs_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, super::Error> {
    let mut out = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = item.map_err(|e| cert_err(format!("bad PEM: {e}")))?;
        parse_cert(&cert).map_err(|e| cert_err(format!("certificate #{}: {e}", out.len() + 1)))?;
        out.push(cert.to_vec());
    }
    if out.is_empty() {
        return Err(cert_err("no BEGIN CERTIFICATE block in the PEM text"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_EC: &str = include_str!("../../certs/ca-ecdsa.pem");
    const CA_RSA: &str = include_str!("../../certs/ca-rsa.pem");
    const ROGUE_CA: &str = include_str!("../../certs/rogue-ca.pem");
    /// 2026-01-01: inside the test PKI's validity (2025-01-01 .. 2055-01-01).
    const NOW: u64 = 1_767_225_600;

    fn der(pem: &str) -> Vec<u8> {
        certs_from_pem(pem).unwrap().remove(0)
    }

    fn both_cas() -> TrustAnchors {
        TrustAnchors::from_pem(&format!("{CA_EC}{CA_RSA}")).unwrap()
    }

    #[test]
    fn certreq_data_is_sha1_of_spki() {
        // certs/certreq-sha1.txt is written by make-certs.sh with
        // `openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha1`.
        let expected: std::collections::HashMap<&str, Vec<u8>> =
            include_str!("../../certs/certreq-sha1.txt")
                .lines()
                .map(|l| {
                    let (name, hex) = l.split_once(' ').unwrap();
                    (name, super::super::identity::hex_decode(hex).unwrap())
                })
                .collect();
        let anchors = both_cas();
        let data = anchors.certreq_data();
        assert_eq!(data.len(), 40);
        assert_eq!(&data[..20], expected["ca-ecdsa"].as_slice());
        assert_eq!(&data[20..], expected["ca-rsa"].as_slice());
        let rogue = TrustAnchors::from_pem(ROGUE_CA).unwrap();
        assert_eq!(rogue.certreq_data(), expected["rogue-ca"]);

        assert!(anchors.certreq_matches(&data));
        assert!(
            anchors.certreq_matches(&[rogue.certreq_data(), expected["ca-rsa"].clone()].concat())
        );
        assert!(!anchors.certreq_matches(&rogue.certreq_data()));
        assert!(!anchors.certreq_matches(&data[..19]));
        assert!(!anchors.certreq_matches(&[]));
    }

    #[test]
    fn chains() {
        let anchors = both_cas();
        for ee in [
            include_str!("../../certs/ha-ecdsa.pem"),
            include_str!("../../certs/mn1-ecdsa.pem"),
            include_str!("../../certs/mn2-ecdsa.pem"),
            include_str!("../../certs/ha-rsa.pem"),
            include_str!("../../certs/mn1-rsa.pem"),
            include_str!("../../certs/mn2-rsa.pem"),
        ] {
            anchors.verify(&der(ee), &[], NOW).unwrap();
        }
        let mn1 = der(include_str!("../../certs/mn1-ecdsa.pem"));
        // Only the ECDSA CA: the RSA end entities no longer validate.
        let ec_only = TrustAnchors::from_pem(CA_EC).unwrap();
        assert!(ec_only.verify(&mn1, &[], NOW).is_ok());
        assert!(
            ec_only
                .verify(&der(include_str!("../../certs/mn1-rsa.pem")), &[], NOW)
                .is_err()
        );
        // Same subject and issuer name, signed by the impostor CA.
        let rogue = der(include_str!("../../certs/rogue-mn1-ecdsa.pem"));
        let err = anchors.verify(&rogue, &[], NOW).unwrap_err();
        assert!(err.to_string().contains("not trusted"), "{err}");
        // ... and an intermediate that is not issued by an anchor does not help.
        assert!(anchors.verify(&rogue, &[&der(ROGUE_CA)], NOW).is_err());
        // Time: 2080 (expired), 1990 (not yet valid), and the edges.
        assert!(anchors.verify(&mn1, &[], 3_471_292_800).is_err());
        assert!(anchors.verify(&mn1, &[], 631_152_000).is_err());
        assert!(anchors.verify(&mn1, &[], 1_735_689_600).is_ok()); // 2025-01-01T00:00:00Z
        assert!(anchors.verify(&mn1, &[], 1_735_689_599).is_err());
        assert!(anchors.verify(&mn1, &[], 2_682_374_400).is_ok()); // 2055-01-01T00:00:00Z
        assert!(anchors.verify(&mn1, &[], 2_682_374_401).is_err());
        // Garbage and too many intermediates.
        assert!(anchors.verify(b"not a cert", &[], NOW).is_err());
        let many: Vec<&[u8]> = vec![&mn1; 9];
        assert!(anchors.verify(&mn1, &many, NOW).is_err());
    }

    #[test]
    fn p384_and_p521_chains() {
        // A P-384 CA signing with ecdsa-with-SHA384: its P-384 and P-521 end entities validate
        // (the chain's signatures are P-384; the end entity's own key type does not matter to
        // webpki).
        let anchors = TrustAnchors::from_pem(include_str!("../../certs/ca-ecdsa384.pem")).unwrap();
        for (ee, key_type) in [
            (include_str!("../../certs/ha-ecdsa384.pem"), KeyType::EcP384),
            (include_str!("../../certs/ha-ecdsa521.pem"), KeyType::EcP521),
            (
                include_str!("../../certs/mn1-ecdsa384.pem"),
                KeyType::EcP384,
            ),
            (
                include_str!("../../certs/mn1-ecdsa521.pem"),
                KeyType::EcP521,
            ),
        ] {
            let peer = anchors.verify(&der(ee), &[], NOW).unwrap();
            assert_eq!(peer.key_type, key_type);
        }
        // Not under the P-256 CA.
        let p256 = TrustAnchors::from_pem(CA_EC).unwrap();
        assert!(
            p256.verify(&der(include_str!("../../certs/mn1-ecdsa384.pem")), &[], NOW)
                .is_err()
        );
        // A certificate signed by a P-521 CA: ring (under webpki) has no P-521 verification,
        // so the chain is refused even with that CA as trust anchor (README: P-521 CAs are not
        // supported; P-521 end-entity keys under a P-256/P-384/RSA CA are).
        let ca521 = TrustAnchors::from_pem(include_str!("../../certs/p521-ca.pem")).unwrap();
        let err = ca521
            .verify(
                &der(include_str!("../../certs/mn1-by-p521-ca.pem")),
                &[],
                NOW,
            )
            .unwrap_err();
        assert!(err.to_string().contains("not trusted"), "{err}");
    }

    #[test]
    fn matches_identity_matrix() {
        let anchors = both_cas();
        let ha = anchors
            .verify(&der(include_str!("../../certs/ha-rsa.pem")), &[], NOW)
            .unwrap();
        let mn1 = anchors
            .verify(&der(include_str!("../../certs/mn1-ecdsa.pem")), &[], NOW)
            .unwrap();
        assert!(ha.is_rsa());
        assert!(!mn1.is_rsa());
        let id = |s: &str| Identity::parse_config(s).unwrap();
        let cases = [
            ("dn:C=CH, O=mip6-ike test, CN=ha.example.net", true, false),
            ("dn:C=ch, O=MIP6-IKE test, CN=HA.example.net", true, false),
            ("dn:C=CH, O=mip6-ike test, CN=mn1@example.net", false, true),
            ("dn:C=CH, O=mip6-ike test", false, false),
            ("fqdn:ha.example.net", true, false),
            ("fqdn:HA.Example.NET.", true, false),
            ("fqdn:mn1.example.net", false, true),
            ("fqdn:example.net", false, false),
            ("email:mn1@example.net", false, true),
            ("email:mn2@example.net", false, false),
            // The CN is not a SAN.
            ("email:ha.example.net", false, false),
            ("ipv6:2001:db8:1::1", true, false),
            ("ipv6:2001:db8:1::2", false, false),
            ("ipv4:192.0.2.1", false, false),
            ("keyid:0a1b", false, false),
        ];
        for (s, for_ha, for_mn1) in cases {
            assert_eq!(ha.matches_identity(&id(s)), for_ha, "ha vs {s}");
            assert_eq!(mn1.matches_identity(&id(s)), for_mn1, "mn1 vs {s}");
        }
        assert_eq!(
            ha.subject().to_string(),
            "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
        );
    }

    #[test]
    fn eku_policy() {
        // No EKU, id-kp-ipsecIKE, serverAuth+clientAuth (in `chains`) pass; emailProtection only
        // does not.
        let anchors = both_cas();
        anchors
            .verify(
                &der(include_str!("../../certs/eku-none-ecdsa.pem")),
                &[],
                NOW,
            )
            .unwrap();
        anchors
            .verify(
                &der(include_str!("../../certs/eku-ipsecike-ecdsa.pem")),
                &[],
                NOW,
            )
            .unwrap();
        let err = anchors
            .verify(
                &der(include_str!("../../certs/eku-email-ecdsa.pem")),
                &[],
                NOW,
            )
            .unwrap_err();
        assert!(err.to_string().contains("not trusted"), "{err}");
    }

    #[test]
    fn pem_errors() {
        assert!(certs_from_pem("").is_err());
        assert!(certs_from_pem(include_str!("../../certs/mn1-ecdsa.key")).is_err());
        let two = certs_from_pem(&format!("{CA_EC}{CA_RSA}")).unwrap();
        assert_eq!(two.len(), 2);
        let broken = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        assert!(certs_from_pem(broken).is_err());
        assert!(TrustAnchors::from_der(vec![]).is_err());
        assert!(TrustAnchors::from_der(vec![b"junk".to_vec()]).is_err());
    }
}
