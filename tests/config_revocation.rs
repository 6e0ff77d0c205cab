//! `[revocation]` in the global file: CRL files read and verified at load time, the policy,
//! and errors that name the file, the line and the fix.

mod common;

use std::fs;
use std::path::Path;

use mip6_ike::auth::revocation::RevocationPolicy;
use mip6_ike::policy;

use common::daemon::{HA_MN1_CERTS, ROOT, copy_certs};

const HA: &str = r#"role = "home-agent"
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
certificate = "../certs/ha-ecdsa.pem"
private_key = "../certs/ha-ecdsa.key"
ca = ["../certs/ca-ecdsa.pem"]
"#;

const TAIL: &str = r#"[home_agent]
address = "2001:db8:1::1"
users_dir = "users"
"#;

const MN1: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

fn tree(head: &str, revocation: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf/users", "certs"] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    copy_certs(&dir.path().join("certs"), &HA_MN1_CERTS);
    for f in [
        "crl-ecdsa.der",
        "crl-ecdsa.pem",
        "crl-rogue.der",
        "crl-rsa.der",
    ] {
        fs::copy(
            Path::new(ROOT).join("certs").join(f),
            dir.path().join("certs").join(f),
        )
        .unwrap();
    }
    fs::write(
        dir.path().join("conf/ha.toml"),
        format!("{head}{revocation}{TAIL}"),
    )
    .unwrap();
    fs::write(dir.path().join("conf/users/mn1.toml"), MN1).unwrap();
    dir
}

fn err(dir: &tempfile::TempDir) -> String {
    match policy::load(dir.path().join("conf/ha.toml")) {
        Ok(_) => panic!("loaded but should not"),
        Err(e) => e
            .to_string()
            .replace(&dir.path().display().to_string(), "$D"),
    }
}

#[test]
fn defaults_relaxed_without_crls() {
    let d = tree(HA, "");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.revocation, RevocationPolicy::Relaxed);
    assert!(c.revocation.crl_files.is_empty() && c.revocation.crls.is_empty());
    assert_eq!(
        c.revocation.check_interval,
        Some(std::time::Duration::from_secs(10))
    );
    assert!(c.revocation.fetch);
    assert_eq!(
        c.revocation.fetch_timeout,
        std::time::Duration::from_secs(10)
    );
    let d = tree(
        HA,
        "[revocation]
fetch = false
fetch_timeout = 2.5
",
    );
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert!(!c.revocation.fetch);
    assert_eq!(
        c.revocation.fetch_timeout,
        std::time::Duration::from_millis(2500)
    );
}

#[test]
fn crls_are_read_and_verified() {
    let d = tree(
        HA,
        "[revocation]\npolicy = \"strict\"\ncrls = [\"../certs/crl-ecdsa.pem\"]\ncheck_interval = 0\n",
    );
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.revocation, RevocationPolicy::Strict);
    assert_eq!(c.revocation.crls.crls().len(), 1);
    assert_eq!(c.revocation.crls.crls()[0].revoked_count(), 2);
    assert_eq!(
        c.revocation.crl_files,
        vec![d.path().join("conf/../certs/crl-ecdsa.pem")]
    );
    assert_eq!(c.revocation.check_interval, None);
    // A reload that changes the CRL files says so.
    let d2 = tree(HA, "[revocation]\ncrls = [\"../certs/crl-ecdsa.der\"]\n");
    let c2 = policy::load(d2.path().join("conf/ha.toml")).unwrap();
    let changes = c.changes(&c2);
    assert!(
        changes
            .iter()
            .any(|l| l.contains("revocation policy strict -> relaxed")),
        "{changes:?}"
    );
}

#[test]
fn bad_policy_names_line_and_values() {
    let d = tree(HA, "[revocation]\npolicy = \"lenient\"\n");
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:10: revocation policy \"lenient\": write \"strict\" (refuse unless a fresh CRL says good), \"ifuri\" (strict for certificates with a CRL distribution point), \"relaxed\" (refuse only revoked certificates) or \"off\""
    );
    let d = tree(HA, "[revocation]\npolicy = \"ifuri\"\n");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.revocation, RevocationPolicy::IfUri);
    let d = tree(HA, "[revocation]\ncheck_interval = -1\n");
    assert!(err(&d).starts_with("$D/conf/ha.toml:8:18: check_interval: seconds between 0"));
    let d = tree(HA, "[revocation]\nfetch_timeout = 0\n");
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:17: fetch_timeout: seconds between 0.1 and 300 for one CRL download, e.g. fetch_timeout = 10"
    );
    let d = tree(HA, "[revocation]\ncrl = []\n");
    assert!(err(&d).contains("unknown key `crl`"), "{}", err(&d));
}

#[test]
fn crl_of_the_wrong_signer_or_ca_is_refused_with_the_file() {
    let d = tree(HA, "[revocation]\ncrls = [\"../certs/crl-rogue.der\"]\n");
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:9: crls: $D/conf/../certs/crl-rogue.der: the CRL's signature does not verify with its issuer's key (not signed by our CA); give a CRL (DER or PEM) signed by one of the [identity] ca certificates, or remove it"
    );
    let d = tree(HA, "[revocation]\ncrls = [\"../certs/crl-rsa.der\"]\n");
    assert!(err(&d).contains("the CRL's issuer is none of the configured CAs"));
    let d = tree(HA, "[revocation]\ncrls = [\"../certs/nothing.crl\"]\n");
    assert!(err(&d).contains("crls: $D/conf/../certs/nothing.crl: cannot read"));
}

#[test]
fn crls_without_ca_are_refused() {
    let head = HA.replace("ca = [\"../certs/ca-ecdsa.pem\"]\n", "");
    let d = tree(&head, "[revocation]\ncrls = [\"../certs/crl-ecdsa.der\"]\n");
    let e = err(&d);
    assert!(
        e.contains("crls are verified with the CAs that signed them: add ca = [\"<CA certificate>.pem\"] to [identity]")
            || e.contains("add ca ="),
        "{e}"
    );
}

#[test]
fn ocsp_is_on_by_default_and_responders_are_per_ca() {
    let d = tree(HA, "");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    let o = c.revocation.ocsp.expect("OCSP on by default");
    assert!(o.ca_uris.is_empty());
    assert_eq!(o.timeout, c.revocation.fetch_timeout);
    let d = tree(HA, "[revocation]\nocsp = false\n");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(c.revocation.ocsp, None);
    let d = tree(
        HA,
        "[revocation]\nfetch_timeout = 3\nocsp_responders = [{ ca = \"../certs/ca-ecdsa.pem\", uri = \"http://[2001:db8::9]:8080/ocsp\" }]\n",
    );
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    let o = c.revocation.ocsp.unwrap();
    assert_eq!(o.timeout, std::time::Duration::from_secs(3));
    let ca = mip6_ike::auth::cert::certs_from_pem(
        &fs::read_to_string(Path::new(ROOT).join("certs/ca-ecdsa.pem")).unwrap(),
    )
    .unwrap();
    let subject = mip6_ike::auth::revocation::describe(&ca[0])
        .unwrap()
        .subject;
    assert_eq!(
        o.ca_uris,
        vec![(subject, "http://[2001:db8::9]:8080/ocsp".to_string())]
    );
}

#[test]
fn bad_ocsp_responders_name_line_and_fix() {
    let d = tree(
        HA,
        "[revocation]\nocsp_responders = [{ ca = \"../certs/ca-ecdsa.pem\", uri = \"https://ocsp.example.net/\" }]\n",
    );
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:58: ocsp_responders: uri \"https://ocsp.example.net/\" is not an http:// URI; write e.g. uri = \"http://ocsp.example.net:8080/\""
    );
    // An end-entity certificate is none of the [identity] CAs.
    let d = tree(
        HA,
        "[revocation]\nocsp_responders = [{ ca = \"../certs/mn1-ecdsa.pem\", uri = \"http://o/\" }]\n",
    );
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:27: ocsp_responders: ca $D/conf/../certs/mn1-ecdsa.pem: not one of the [identity] ca certificates; name one of the [identity] ca files"
    );
    let d = tree(
        HA,
        "[revocation]\nocsp_responders = [{ ca = \"../certs/none.pem\", uri = \"http://o/\" }]\n",
    );
    assert!(
        err(&d).contains("ocsp_responders: ca $D/conf/../certs/none.pem: No such file"),
        "{}",
        err(&d)
    );
    let d = tree(
        HA,
        "[revocation]\nocsp_responders = [{ uri = \"http://o/\" }]\n",
    );
    assert!(err(&d).contains("8:20: missing key `ca`"), "{}", err(&d));
}

#[test]
fn ocsp_recheck_defaults_to_an_hour_and_bad_values_name_line_and_fix() {
    let d = tree(HA, "");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(
        c.revocation.ocsp_recheck,
        Some(std::time::Duration::from_secs(3600))
    );
    let d = tree(HA, "[revocation]\nocsp_recheck = 0\n");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(c.revocation.ocsp_recheck, None, "0: only on reload");
    let d = tree(HA, "[revocation]\nocsp_recheck = 900\n");
    let c = policy::load(d.path().join("conf/ha.toml")).unwrap();
    assert_eq!(
        c.revocation.ocsp_recheck,
        Some(std::time::Duration::from_secs(900))
    );
    let d = tree(HA, "[revocation]\nocsp_recheck = 5\n");
    assert_eq!(
        err(&d),
        "$D/conf/ha.toml:8:16: ocsp_recheck: seconds between 60 and 604800 after which an established SA's OCSP answer is asked for again, or 0 (only on reload), e.g. ocsp_recheck = 3600"
    );
}
