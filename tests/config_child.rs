//! Configuration of the CHILD_SA and IKE SA semantics of issue 12: the uniqueness policy
//! (`[home_agent] uniqueness`, `uniqueness` in user files) and its errors (file, line, fix).

mod common;

use std::fs;
use std::path::PathBuf;

use common::daemon::{HA_MN1_CERTS, copy_certs};
use mip6_ike::mobility::Uniqueness;
use mip6_ike::policy;

const HA: &str = r#"role = "home-agent"
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
certificate = "../certs/ha-ecdsa.pem"
private_key = "../certs/ha-ecdsa.key"
ca = ["../certs/ca-ecdsa.pem"]
[home_agent]
address = "2001:db8:1::1"
users_dir = "users"
"#;

const MN1: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

const MN2: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn2@example.net"
home_addresses = ["2001:db8:1::200"]
"#;

/// A temp tree (conf/, conf/users/, certs/) with `ha_extra` appended to the [home_agent]
/// section and `mn1_extra` to mn1's user file.
fn tree(ha_extra: &str, mn1_extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf/users", "certs"] {
        fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    copy_certs(&dir.path().join("certs"), &HA_MN1_CERTS);
    let conf = dir.path().join("conf");
    fs::write(conf.join("ha.toml"), format!("{HA}{ha_extra}")).unwrap();
    fs::write(conf.join("users/mn1.toml"), format!("{MN1}{mn1_extra}")).unwrap();
    fs::write(conf.join("users/mn2.toml"), MN2).unwrap();
    (dir, conf.join("ha.toml"))
}

fn err(ha_extra: &str, mn1_extra: &str) -> String {
    let (dir, p) = tree(ha_extra, mn1_extra);
    match policy::load(&p) {
        Ok(_) => panic!("loaded but should not"),
        Err(e) => e
            .to_string()
            .replace(&dir.path().display().to_string(), "$D"),
    }
}

fn policy_of(c: &policy::LoadedConfig, name: &str) -> Option<Uniqueness> {
    let ha = c.engine.home_agent.as_ref().unwrap();
    ha.users
        .users()
        .iter()
        .find(|u| u.name == name)
        .unwrap()
        .uniqueness
}

#[test]
fn uniqueness_defaults_to_replace() {
    let (_d, p) = tree("", "");
    let c = policy::load(&p).unwrap();
    assert_eq!(c.engine.mobility.uniqueness, Uniqueness::Replace);
    assert_eq!(policy_of(&c, "mn1"), None);
}

#[test]
fn uniqueness_per_user_and_global() {
    let (_d, p) = tree("uniqueness = \"keep\"\n", "uniqueness = \"replace\"\n");
    let c = policy::load(&p).unwrap();
    assert_eq!(c.engine.mobility.uniqueness, Uniqueness::Keep);
    assert_eq!(policy_of(&c, "mn1"), Some(Uniqueness::Replace));
    assert_eq!(policy_of(&c, "mn2"), None, "mn2 takes the default");
    for (w, u) in [
        ("no", Uniqueness::No),
        ("never", Uniqueness::Never),
        ("keep", Uniqueness::Keep),
        ("replace", Uniqueness::Replace),
    ] {
        let (_d, p) = tree("", &format!("uniqueness = \"{w}\"\n"));
        assert_eq!(policy_of(&policy::load(&p).unwrap(), "mn1"), Some(u));
    }
}

#[test]
fn uniqueness_errors_name_file_line_and_fix() {
    let fix = "write \"replace\" (a new IKE SA replaces the older ones for the same home address once it carries their CHILD_SAs; the default), \"no\" (older IKE SAs of the identity stay unless the new one sends INITIAL_CONTACT), \"never\" (they always stay: devices sharing an identity) or \"keep\" (a second IKE SA is refused)";
    assert_eq!(
        err("", "uniqueness = \"unique\"\n"),
        format!("$D/conf/users/mn1.toml:4:14: uniqueness = \"unique\" is not known; {fix}")
    );
    assert_eq!(
        err("uniqueness = \"yes\"\n", ""),
        format!("$D/conf/ha.toml:10:14: uniqueness = \"yes\" is not known; {fix}")
    );
    // A number is a type error of the TOML value, with its place.
    assert!(err("", "uniqueness = 1\n").starts_with("$D/conf/users/mn1.toml:4:"));
}
