//! Our private key: ECDSA P-256 or RSA, from a PEM file that only its owner can read.

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    RsaKeyPair,
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

pub(crate) enum KeyInner {
    /// Two ring key pairs over the same key: ring fixes the signature encoding per key pair,
    /// and method 9 wants r|s (RFC 4754) while method 14 wants an ECDSA-Sig-Value.
    EcdsaP256 {
        fixed: EcdsaKeyPair,
        asn1: Box<EcdsaKeyPair>,
    },
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
            KeyInner::EcdsaP256 { .. } => f.write_str("PrivateKey(ECDSA P-256)"),
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
        let ours: &[u8] = match &self.inner {
            KeyInner::EcdsaP256 { fixed, .. } => fixed.public_key().as_ref(),
            KeyInner::Rsa(k) => k.public().as_ref(),
        };
        spki_key == ours
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
                if let Ok(inner) = ecdsa_from_pkcs8(der, &rng) {
                    inner
                } else {
                    KeyInner::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| {
                        format!("unsupported or invalid PKCS#8 key (need ECDSA P-256 or RSA 2048-8192): {e}")
                    })?)
                }
            }
            PrivateKeyDer::Sec1(k) => {
                let pkcs8 = sec1_to_pkcs8(k.secret_sec1_der())?;
                ecdsa_from_pkcs8(&pkcs8, &rng)
                    .map_err(|e| format!("invalid EC private key: {e}"))?
            }
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

fn ecdsa_from_pkcs8(der: &[u8], rng: &SystemRandom) -> Result<KeyInner, ring::error::KeyRejected> {
    Ok(KeyInner::EcdsaP256 {
        fixed: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng)?,
        asn1: Box::new(EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der,
            rng,
        )?),
    })
}

/// Wraps a SEC1 ECPrivateKey (RFC 5915) into PKCS#8 (RFC 5208), the only form ring loads.
/// ring also needs the optional publicKey field, which OpenSSL always writes.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
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
        if der::single(params.content, der::TAG_OID) != Some(OID_P256) {
            return Err("unsupported EC curve: only P-256 (prime256v1) keys are supported".into());
        }
    }
    if r.peek_tag() != Some(0xa1) {
        return Err(
            "the EC private key lacks its public key; convert with: openssl pkcs8 -topk8 -nocrypt -in <file> -out <new file>"
                .into(),
        );
    }
    let mut alg = der::tlv(der::TAG_OID, OID_EC_PUBLIC_KEY);
    alg.extend(der::tlv(der::TAG_OID, OID_P256));
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
        let wrapped = sec1_to_pkcs8(sec1.secret_sec1_der()).unwrap();
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
}
