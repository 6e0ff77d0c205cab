//! Our private key: ECDSA P-256, P-384 or P-521, or RSA, from a PEM file that only its owner
//! can read. ring holds P-256, P-384 and RSA keys; P-521, which ring lacks, is RustCrypto's
//! p521.

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair, RsaKeyPair,
};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

use super::der;

/// Local key files are small; this bounds what we read.
const MAX_KEY_FILE: u64 = 1 << 20;

/// id-ecPublicKey (1.2.840.10045.2.1) and prime256v1 (1.2.840.10045.3.1.7), content bytes.
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (1.3.132.0.34) and secp521r1 (1.3.132.0.35), content bytes.
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// The NIST curves ring signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingCurve {
    P256,
    P384,
}

impl RingCurve {
    fn oid(self) -> &'static [u8] {
        match self {
            RingCurve::P256 => OID_P256,
            RingCurve::P384 => OID_P384,
        }
    }
    /// ring's (r|s, ECDSA-Sig-Value) signing algorithms: SHA-256 for P-256, SHA-384 for P-384
    /// (RFC 4754's pairing, also what methods 9 and 10 require).
    fn algs(
        self,
    ) -> (
        &'static EcdsaSigningAlgorithm,
        &'static EcdsaSigningAlgorithm,
    ) {
        match self {
            RingCurve::P256 => (
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &ECDSA_P256_SHA256_ASN1_SIGNING,
            ),
            RingCurve::P384 => (
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                &ECDSA_P384_SHA384_ASN1_SIGNING,
            ),
        }
    }
}

pub(crate) enum KeyInner {
    /// Two ring key pairs over the same key: ring fixes the signature encoding per key pair,
    /// and methods 9/10 want r|s (RFC 4754) while method 14 wants an ECDSA-Sig-Value.
    Ecdsa {
        curve: RingCurve,
        fixed: EcdsaKeyPair,
        asn1: Box<EcdsaKeyPair>,
    },
    /// P-521 (zeroized on drop by p521); signs with SHA-512, RFC 6979 nonces.
    EcdsaP521(Box<p521::ecdsa::SigningKey>),
    Rsa(RsaKeyPair),
}

/// A private key able to sign AUTH payloads.
pub struct PrivateKey {
    pub(crate) inner: KeyInner,
    pub(crate) rng: SystemRandom,
}

/// Never shows key material.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            KeyInner::Ecdsa {
                curve: RingCurve::P256,
                ..
            } => f.write_str("PrivateKey(ECDSA P-256)"),
            KeyInner::Ecdsa {
                curve: RingCurve::P384,
                ..
            } => f.write_str("PrivateKey(ECDSA P-384)"),
            KeyInner::EcdsaP521(_) => f.write_str("PrivateKey(ECDSA P-521)"),
            KeyInner::Rsa(k) => write!(f, "PrivateKey(RSA-{})", k.public().modulus_len() * 8),
        }
    }
}

fn file_err(path: &str, reason: impl Into<String>) -> super::Error {
    super::Error::File {
        path: path.to_string(),
        reason: reason.into(),
    }
}

impl PrivateKey {
    /// Loads a PEM private key (PKCS#8, or SEC1 "EC PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY").
    /// Refuses a file readable or writable by group or others (mode & 0o077 != 0) with an error
    /// that names the file and says `chmod 600 <path>`.
    pub fn load_pem_file(path: &std::path::Path) -> Result<PrivateKey, super::Error> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;

        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "private key file not found".to_string(),
                std::io::ErrorKind::PermissionDenied => {
                    "cannot open the private key file: permission denied".to_string()
                }
                _ => format!("cannot open the private key file: {e}"),
            };
            file_err(&shown, reason)
        })?;
        // Checked on the opened file, so the file checked is the file read.
        let meta = file
            .metadata()
            .map_err(|e| file_err(&shown, format!("cannot stat the private key file: {e}")))?;
        if !meta.is_file() {
            return Err(file_err(&shown, "private key path is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let what = if mode & 0o044 != 0 {
                "readable"
            } else {
                "writable"
            };
            return Err(file_err(
                &shown,
                format!(
                    "private key is {what} by group or others (mode {mode:04o}); run: chmod 600 {shown}"
                ),
            ));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(file_err(&shown, "private key file is too large"));
        }
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_KEY_FILE)
            .read_to_end(&mut text)
            .map_err(|e| file_err(&shown, format!("cannot read the private key file: {e}")))?;
        Self::from_pem_bytes(&text).map_err(|reason| file_err(&shown, reason))
    }

    /// Parses PEM text without any file-permission check (shipped demo keys, tests).
    pub fn from_pem(pem: &str) -> Result<PrivateKey, super::Error> {
        Self::from_pem_bytes(pem.as_bytes()).map_err(|reason| file_err("(PEM text)", reason))
    }

    pub fn is_rsa(&self) -> bool {
        matches!(self.inner, KeyInner::Rsa(_))
    }

    /// Whether `cert_der` (an X.509 certificate) holds this key's public key: a configuration
    /// check, so that a key/certificate mix-up is reported at load time rather than as an
    /// AUTHENTICATION_FAILED from the peer.
    pub fn matches_cert(&self, cert_der: &[u8]) -> bool {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
            return false;
        };
        let spki_key: &[u8] = &cert.public_key().subject_public_key.data;
        match &self.inner {
            KeyInner::Ecdsa { fixed, .. } => spki_key == fixed.public_key().as_ref(),
            KeyInner::EcdsaP521(k) => {
                use p521::elliptic_curve::sec1::ToSec1Point;
                spki_key
                    == k.verifying_key()
                        .as_affine()
                        .to_sec1_point(false)
                        .as_bytes()
            }
            KeyInner::Rsa(k) => spki_key == k.public().as_ref(),
        }
    }

    /// Errors are plain reasons (never key bytes); the callers add the file name.
    fn from_pem_bytes(pem: &[u8]) -> Result<PrivateKey, String> {
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
            if contains(pem, b"ENCRYPTED PRIVATE KEY") || contains(pem, b"Proc-Type: 4,ENCRYPTED")
            {
                "encrypted private keys are not supported; decrypt with: openssl pkey -in <file> -out <new file>"
                    .to_string()
            } else {
                "no PEM private key found (expected BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                    .to_string()
            }
        })?;
        let rng = SystemRandom::new();
        let inner = match &key {
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                if let Ok(inner) = ecdsa_from_pkcs8(RingCurve::P256, der, &rng) {
                    inner
                } else if let Ok(inner) = ecdsa_from_pkcs8(RingCurve::P384, der, &rng) {
                    inner
                } else if let Ok(key) = {
                    use p521::pkcs8::DecodePrivateKey;
                    p521::SecretKey::from_pkcs8_der(der)
                } {
                    KeyInner::EcdsaP521(Box::new(key.into()))
                } else {
                    KeyInner::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| {
                        format!("unsupported or invalid PKCS#8 key (need ECDSA P-256, P-384, P-521 or RSA 2048-8192): {e}")
                    })?)
                }
            }
            PrivateKeyDer::Sec1(k) => match sec1_curve(k.secret_sec1_der())? {
                Sec1Curve::Ring(curve) => {
                    let pkcs8 = sec1_to_pkcs8(k.secret_sec1_der(), curve)?;
                    ecdsa_from_pkcs8(curve, &pkcs8, &rng)
                        .map_err(|e| format!("invalid EC private key: {e}"))?
                }
                Sec1Curve::P521 => {
                    let key = p521::SecretKey::from_sec1_der(k.secret_sec1_der())
                        .map_err(|_| "invalid EC private key (P-521)".to_string())?;
                    KeyInner::EcdsaP521(Box::new(key.into()))
                }
            },
            PrivateKeyDer::Pkcs1(k) => KeyInner::Rsa(
                RsaKeyPair::from_der(k.secret_pkcs1_der())
                    .map_err(|e| format!("invalid RSA private key: {e}"))?,
            ),
            _ => return Err("unsupported private key format".to_string()),
        };
        Ok(PrivateKey { inner, rng })
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn ecdsa_from_pkcs8(
    curve: RingCurve,
    der: &[u8],
    rng: &SystemRandom,
) -> Result<KeyInner, ring::error::KeyRejected> {
    let (fixed, asn1) = curve.algs();
    Ok(KeyInner::Ecdsa {
        curve,
        fixed: EcdsaKeyPair::from_pkcs8(fixed, der, rng)?,
        asn1: Box::new(EcdsaKeyPair::from_pkcs8(asn1, der, rng)?),
    })
}

/// Who loads a SEC1 key of a given curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sec1Curve {
    Ring(RingCurve),
    P521,
}

/// The named curve of a SEC1 ECPrivateKey (RFC 5915: the optional parameters [0]). A key
/// without them is taken as P-256, as before (OpenSSL always writes them).
fn sec1_curve(sec1: &[u8]) -> Result<Sec1Curve, String> {
    let bad = || "invalid EC PRIVATE KEY (SEC1) structure".to_string();
    let body = der::single(sec1, der::TAG_SEQUENCE).ok_or_else(bad)?;
    let mut r = der::Reader::new(body);
    r.expect(der::TAG_INTEGER).ok_or_else(bad)?;
    r.expect(der::TAG_OCTET_STRING).ok_or_else(bad)?;
    if r.peek_tag() != Some(0xa0) {
        return Ok(Sec1Curve::Ring(RingCurve::P256));
    }
    let params = r.read().ok_or_else(bad)?;
    match der::single(params.content, der::TAG_OID) {
        Some(OID_P256) => Ok(Sec1Curve::Ring(RingCurve::P256)),
        Some(OID_P384) => Ok(Sec1Curve::Ring(RingCurve::P384)),
        Some(OID_P521) => Ok(Sec1Curve::P521),
        _ => Err(
            "unsupported EC curve: P-256 (prime256v1), P-384 (secp384r1) and P-521 (secp521r1) \
             keys are supported"
                .into(),
        ),
    }
}

/// Wraps a SEC1 ECPrivateKey (RFC 5915) of `curve` into PKCS#8 (RFC 5208), the only form ring
/// loads. ring also needs the optional publicKey field, which OpenSSL always writes.
fn sec1_to_pkcs8(sec1: &[u8], curve: RingCurve) -> Result<Zeroizing<Vec<u8>>, String> {
    let bad = || "invalid EC PRIVATE KEY (SEC1) structure".to_string();
    let body = der::single(sec1, der::TAG_SEQUENCE).ok_or_else(bad)?;
    let mut r = der::Reader::new(body);
    let version = r.expect(der::TAG_INTEGER).ok_or_else(bad)?;
    if version.content != [1] {
        return Err(bad());
    }
    r.expect(der::TAG_OCTET_STRING).ok_or_else(bad)?;
    if r.peek_tag() == Some(0xa0) {
        let params = r.read().ok_or_else(bad)?;
        if der::single(params.content, der::TAG_OID) != Some(curve.oid()) {
            return Err("the EC key's curve parameters do not match".into());
        }
    }
    if r.peek_tag() != Some(0xa1) {
        return Err(
            "the EC private key lacks its public key; convert with: openssl pkcs8 -topk8 -nocrypt -in <file> -out <new file>"
                .into(),
        );
    }
    let mut alg = der::tlv(der::TAG_OID, OID_EC_PUBLIC_KEY);
    alg.extend(der::tlv(der::TAG_OID, curve.oid()));
    let mut body = Zeroizing::new(der::tlv(der::TAG_INTEGER, &[0]));
    body.extend(der::tlv(der::TAG_SEQUENCE, &alg));
    let wrapped = Zeroizing::new(der::tlv(der::TAG_OCTET_STRING, sec1));
    body.extend_from_slice(&wrapped);
    Ok(Zeroizing::new(der::tlv(der::TAG_SEQUENCE, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MN1_EC: &str = include_str!("../../certs/mn1-ecdsa.key");
    const MN1_EC_SEC1: &str = include_str!("../../certs/mn1-ecdsa-sec1.key");
    const MN1_RSA: &str = include_str!("../../certs/mn1-rsa.key");
    const MN1_RSA_PKCS1: &str = include_str!("../../certs/mn1-rsa-pkcs1.key");

    fn temp_key(name: &str, content: &str, mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mip6-ike-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn loads_all_encodings() {
        let mn1_ec = include_str!("../../certs/mn1-ecdsa.pem");
        let mn1_rsa = include_str!("../../certs/mn1-rsa.pem");
        let ec_der = super::super::cert::certs_from_pem(mn1_ec)
            .unwrap()
            .remove(0);
        let rsa_der = super::super::cert::certs_from_pem(mn1_rsa)
            .unwrap()
            .remove(0);
        for (pem, rsa) in [
            (MN1_EC, false),
            (MN1_EC_SEC1, false),
            (MN1_RSA, true),
            (MN1_RSA_PKCS1, true),
        ] {
            let key = PrivateKey::from_pem(pem).unwrap();
            assert_eq!(key.is_rsa(), rsa);
            // Same key in both encodings: both match the certificate, not the other one.
            let (own, other) = if rsa {
                (&rsa_der, &ec_der)
            } else {
                (&ec_der, &rsa_der)
            };
            assert!(key.matches_cert(own));
            assert!(!key.matches_cert(other));
        }
        let mn2 = PrivateKey::from_pem(include_str!("../../certs/mn2-ecdsa.key")).unwrap();
        assert!(!mn2.matches_cert(&ec_der));
        assert_eq!(
            format!("{:?}", PrivateKey::from_pem(MN1_RSA).unwrap()),
            "PrivateKey(RSA-2048)"
        );
    }

    #[test]
    fn file_mode_0600_loads() {
        let path = temp_key("ok.key", MN1_EC, 0o600);
        assert!(!PrivateKey::load_pem_file(&path).unwrap().is_rsa());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn file_mode_0644_refused() {
        let path = temp_key("open.key", MN1_EC, 0o644);
        let err = PrivateKey::load_pem_file(&path).unwrap_err();
        let p = path.display();
        assert_eq!(
            err.to_string(),
            format!(
                "{p}: private key is readable by group or others (mode 0644); run: chmod 600 {p}"
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        let err = PrivateKey::load_pem_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others (mode 0620)"),
            "{err}"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_file_and_garbage() {
        let missing = std::path::Path::new("/nonexistent/mip6-ike/ha.key");
        assert_eq!(
            PrivateKey::load_pem_file(missing).unwrap_err().to_string(),
            "/nonexistent/mip6-ike/ha.key: private key file not found"
        );
        let path = temp_key("garbage.key", "hello\n", 0o600);
        let err = PrivateKey::load_pem_file(&path).unwrap_err().to_string();
        assert!(err.contains("no PEM private key found"), "{err}");
        std::fs::remove_file(path).unwrap();

        // A certificate is not a key.
        assert!(PrivateKey::from_pem(include_str!("../../certs/mn1-ecdsa.pem")).is_err());
        // Valid PEM framing around a broken key.
        let broken = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
        assert!(PrivateKey::from_pem(broken).is_err());
        let broken_sec1 =
            "-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(broken_sec1).unwrap_err().to_string();
        assert!(err.contains("SEC1"), "{err}");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(encrypted).unwrap_err().to_string();
        assert!(
            err.contains("encrypted private keys are not supported"),
            "{err}"
        );
    }

    #[test]
    fn sec1_wrapping_matches_openssl_pkcs8() {
        // The PKCS#8 file OpenSSL wrote and our wrapping of its SEC1 twin hold the same ECPrivateKey.
        let pkcs8 =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(MN1_EC.as_bytes()).unwrap();
        let sec1 =
            rustls_pki_types::PrivateSec1KeyDer::from_pem_slice(MN1_EC_SEC1.as_bytes()).unwrap();
        let wrapped = sec1_to_pkcs8(sec1.secret_sec1_der(), RingCurve::P256).unwrap();
        let rng = SystemRandom::new();
        let a = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &wrapped, &rng).unwrap();
        let b = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.secret_pkcs8_der(),
            &rng,
        )
        .unwrap();
        assert_eq!(a.public_key().as_ref(), b.public_key().as_ref());
    }

    #[test]
    fn loads_p384_and_p521_keys_in_pkcs8_and_sec1() {
        let cases = [
            (
                include_str!("../../certs/mn1-ecdsa384.key"),
                include_str!("../../certs/mn1-ecdsa384-sec1.key"),
                include_str!("../../certs/mn1-ecdsa384.pem"),
                "PrivateKey(ECDSA P-384)",
            ),
            (
                include_str!("../../certs/mn1-ecdsa521.key"),
                include_str!("../../certs/mn1-ecdsa521-sec1.key"),
                include_str!("../../certs/mn1-ecdsa521.pem"),
                "PrivateKey(ECDSA P-521)",
            ),
        ];
        let p256_cert =
            super::super::cert::certs_from_pem(include_str!("../../certs/mn1-ecdsa.pem"))
                .unwrap()
                .remove(0);
        for (pkcs8, sec1, cert, shown) in cases {
            let cert = super::super::cert::certs_from_pem(cert).unwrap().remove(0);
            for pem in [pkcs8, sec1] {
                assert!(pem.contains(if pem == sec1 {
                    "EC PRIVATE KEY"
                } else {
                    "BEGIN PRIVATE KEY"
                }));
                let key = PrivateKey::from_pem(pem).unwrap();
                assert_eq!(format!("{key:?}"), shown);
                assert!(!key.is_rsa());
                assert!(key.matches_cert(&cert), "{shown}");
                assert!(!key.matches_cert(&p256_cert), "{shown}");
            }
        }
        // A SEC1 key of a curve we do not have says which ones we do (secp256k1, made by
        // OpenSSL: `openssl ecparam -name secp256k1 -genkey -noout`).
        let k1 = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIBfBJdEe7o0SJSiO6O0ZFLv9W5UMrX6ww5iHmTJxBnRnoAcGBSuBBAAK
oUQDQgAE9xlQVvL3R7w1P8V8Kfs8QvmMOl0m6Pp9oPdxXV1xq7RVoFt7SP4cPpmr
mGkVVTfK0B3HmnqmEOZ1J2vYbRJk+g==
-----END EC PRIVATE KEY-----
";
        let err = PrivateKey::from_pem(k1).unwrap_err().to_string();
        assert!(err.contains("P-384 (secp384r1) and P-521"), "{err}");
    }
}
