//! Our private key: ECDSA P-256 or RSA, from a PEM file that only its owner can read.

/// A private key able to sign AUTH payloads.
pub struct PrivateKey {
    // filled in by the implementation
}

impl PrivateKey {
    /// Loads a PEM private key (PKCS#8, or SEC1 "EC PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY").
    /// Refuses a file readable or writable by group or others (mode & 0o077 != 0) with an error
    /// that names the file and says `chmod 600 <path>`.
    pub fn load_pem_file(path: &std::path::Path) -> Result<PrivateKey, super::Error> {
        todo!()
    }
    /// Parses PEM text without any file-permission check (shipped demo keys, tests).
    pub fn from_pem(pem: &str) -> Result<PrivateKey, super::Error> {
        todo!()
    }
    pub fn is_rsa(&self) -> bool {
        todo!()
    }
}
