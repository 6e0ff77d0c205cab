//! Configuration loading: the shipped examples load, and each kind of mistake produces exactly
//! the message we promise (file, line, column, and what to write instead).

mod common;

use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mip6_ike::ike::{HomeAddress, LocalAuth};
use mip6_ike::mobility::{ClassReqids, HomePrefix, IdentityMatch, PoolKind, SaClass, UserAuth};
use mip6_ike::policy::{self, KernelBackend, PolicyMode, Role};

use common::daemon::{HA_MN1_CERTS, ROOT, copy_certs};

/// A temp dir laid out like the repository (conf/, conf/users/, certs/) with keys at 0600,
/// as a real deployment has them (git checks them out 0644).
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf", "conf/users", "certs"] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let certs = dir.path().join("certs");
        copy_certs(&certs, &HA_MN1_CERTS);
        copy_certs(&certs, &["mn2-ecdsa.pem", "mn2-ecdsa.key"]);
        Tree { dir }
    }
    /// Copies the shipped conf/ examples in.
    fn with_examples() -> Tree {
        let t = Tree::new();
        for f in [
            "ha.toml",
            "mn.toml",
            "mn2.toml",
            "mn-dynamic.toml",
            "users/mn1.toml",
            "users/mn2.toml",
            "users/visitors.toml",
        ] {
            fs::copy(Path::new(ROOT).join("conf").join(f), t.path("conf").join(f)).unwrap();
        }
        // Files with a pre-shared key at 0600, as a deployment keeps them (git: 0644).
        for f in ["mn2.toml", "users/mn2.toml"] {
            fs::set_permissions(t.path("conf").join(f), fs::Permissions::from_mode(0o600)).unwrap();
        }
        t
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        fs::write(&p, text).unwrap();
        if text.contains("psk") {
            // A file holding a pre-shared key must be private, as a key file.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    }
    /// The error text of loading `conf/<name>`, with the temp dir shown as `$D`.
    fn err(&self, name: &str) -> String {
        match policy::load(self.path("conf").join(name)) {
            Ok(_) => panic!("{name} loaded but should not"),
            Err(e) => e
                .to_string()
                .replace(&self.dir.path().display().to_string(), "$D"),
        }
    }
}

const HA_HEAD: &str = r#"role = "home-agent"
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
certificate = "../certs/ha-ecdsa.pem"
private_key = "../certs/ha-ecdsa.key"
ca = ["../certs/ca-ecdsa.pem"]
"#;

const HA_TAIL: &str = r#"[home_agent]
address = "2001:db8:1::1"
users_dir = "users"
"#;

const MN1: &str = r#"identity = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
home_addresses = ["2001:db8:1::100"]
classes = ["bu-ba", "payload"]
"#;

/// A home agent file with `middle` between the head and the [home_agent] section.
fn ha(t: &Tree, middle: &str) {
    t.write("conf/ha.toml", &format!("{HA_HEAD}{middle}{HA_TAIL}"));
    t.write("conf/users/mn1.toml", MN1);
}

const MN_HEAD: &str = r#"role = "mobile-node"
[identity]
id = "dn:C=CH, O=mip6-ike test, CN=mn1@example.net"
certificate = "../certs/mn1-ecdsa.pem"
private_key = "../certs/mn1-ecdsa.key"
ca = ["../certs/ca-ecdsa.pem"]
"#;

// ---- the shipped examples ----

#[test]
fn example_home_agent_loads() {
    let t = Tree::with_examples();
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.role, Role::HomeAgent);
    assert_eq!(c.listen.addresses, vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]);
    assert_eq!((c.listen.port, c.listen.nat_port), (500, 4500));
    assert_eq!(c.kernel.backend, KernelBackend::Memory);
    assert_eq!(c.kernel.policies, PolicyMode::Mip6d);
    assert_eq!(c.users_dir.as_deref(), Some(t.path("conf/users").as_path()));
    let e = &c.engine;
    assert_eq!(
        e.identity.to_string(),
        "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
    );
    assert!(matches!(&e.auth, LocalAuth::Certificate { chain, .. } if chain.len() == 1));
    assert!(e.trust.is_some());
    assert_eq!(e.ike_proposals.len(), 2);
    assert_eq!(e.esp_proposals.len(), 2);
    assert_eq!(
        e.reqids(SaClass::HotiHot),
        ClassReqids { to_ha: 7, to_mn: 8 }
    );
    assert_eq!(e.timers.retransmit_tries, 5);
    assert_eq!(e.timers.liveness_interval.as_secs(), 30);
    assert_eq!((e.cookie_threshold, e.max_half_open), (50, 5000));
    let ha = e.home_agent.as_ref().unwrap();
    assert_eq!(ha.address, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
    let users = ha.users.users();
    assert_eq!(users.len(), 3);
    assert_eq!(users[0].name, "mn1");
    assert_eq!(
        users[0].home_addresses,
        vec!["2001:db8:1::100".parse::<Ipv6Addr>().unwrap()]
    );
    assert_eq!(users[0].classes, vec![SaClass::BuBa, SaClass::Payload]);
    assert!(matches!(users[0].auth, UserAuth::Certificate));
    assert!(matches!(&users[0].identity, IdentityMatch::Exact(_)));
    assert_eq!(users[1].name, "mn2");
    assert!(matches!(users[1].auth, UserAuth::Psk(_)));
    assert_eq!(users[1].classes.len(), 4);
    let summary = c.summary();
    assert!(summary.contains("users:      3 in"), "{summary}");
    assert!(
        summary.contains("mn2: fqdn:mn2.example.net, psk, home 2001:db8:1::200"),
        "{summary}"
    );
    assert!(
        !summary.contains("example-only"),
        "the summary must not show the PSK"
    );
}

#[test]
fn example_mobile_nodes_load() {
    let t = Tree::with_examples();
    let c = policy::load(t.path("conf/mn.toml")).unwrap();
    assert_eq!(c.role, Role::MobileNode);
    assert!(c.engine.home_agent.is_none());
    let mn = c.mobile_node.as_ref().unwrap();
    assert_eq!(mn.home_agent, "[2001:db8:1::1]:500".parse().unwrap());
    assert_eq!(
        mn.home_agent_address,
        "2001:db8:1::1".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(mn.care_of_address, Some("2001:db8:2::100".parse().unwrap()));
    assert_eq!(
        mn.home_address,
        HomeAddress::Static("2001:db8:1::100".parse().unwrap())
    );
    assert_eq!(mn.classes, vec![SaClass::BuBa, SaClass::Payload]);
    assert_eq!(
        mn.home_agent_id.as_ref().unwrap().to_string(),
        "dn:C=CH, O=mip6-ike test, CN=ha.example.net"
    );
    // Defaults of this session's settings.
    assert!(c.engine.mobility.initial_contact);
    assert_eq!(
        c.engine.timers.move_grace,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(c.engine.prefer, mip6_ike::ike::Prefer::Ours);
    // Both set in the file.
    let text = std::fs::read_to_string(t.path("conf/mn.toml")).unwrap();
    let text = text.replace(
        "[mobile_node]",
        "[timers]\nmove_grace = 5\n[mobile_node]\ninitial_contact = false",
    );
    t.write("conf/mn-set.toml", &text);
    let set = policy::load(t.path("conf/mn-set.toml")).unwrap();
    assert!(!set.engine.mobility.initial_contact);
    assert_eq!(
        set.engine.timers.move_grace,
        std::time::Duration::from_secs(5)
    );

    let c = policy::load(t.path("conf/mn2.toml")).unwrap();
    assert!(matches!(c.engine.auth, LocalAuth::Psk(_)));
    assert!(c.engine.trust.is_none());
    let mn = c.mobile_node.as_ref().unwrap();
    assert_eq!(mn.home_agent.port(), 500);
    assert_eq!(mn.care_of_address, None);
    assert_eq!(mn.classes.len(), 4);
    // Defaults when [listen] is absent.
    assert_eq!((c.listen.port, c.listen.nat_port), (500, 4500));
    assert_eq!(c.listen.receive_buffer, 4 << 20);
}

#[test]
fn examples_with_checked_out_key_modes_are_refused() {
    let t = Tree::with_examples();
    fs::set_permissions(
        t.path("certs/ha-ecdsa.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:14:15: private_key $D/conf/../certs/ha-ecdsa.key is accessible by group or others \
         (mode 0644); run: chmod 600 $D/conf/../certs/ha-ecdsa.key"
    );
}

#[test]
fn dynamic_home_address_and_defaults() {
    let t = Tree::new();
    t.write(
        "conf/mn.toml",
        &format!("{MN_HEAD}[mobile_node]\nhome_agent = \"192.0.2.1\"\nhome_agent_address = \"2001:db8:1::1\"\nhome_address = \"dynamic\"\nhome_agent_id = \"dn:C=CH, O=mip6-ike test, CN=ha.example.net\"\n"),
    );
    let c = policy::load(t.path("conf/mn.toml")).unwrap();
    let mn = c.mobile_node.unwrap();
    assert_eq!(mn.home_agent, "192.0.2.1:500".parse().unwrap());
    assert_eq!(mn.home_address, HomeAddress::Dynamic);
    assert_eq!(mn.classes, vec![SaClass::BuBa]);
    assert_eq!(
        c.engine.reqids(SaClass::Payload),
        ClassReqids { to_ha: 3, to_mn: 4 }
    );
    assert_eq!(c.engine.replay_window, 32);
}

#[test]
fn dn_pattern_user() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        "identity_pattern = \"dn:C=CH, O=mip6-ike test, CN=*\"\nhome_addresses = [\"2001:db8:1::100\"]\n",
    );
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    let users = c.engine.home_agent.as_ref().unwrap().users.users();
    assert_eq!(
        users[0].identity,
        IdentityMatch::DnPattern("dn:C=CH, O=mip6-ike test, CN=*".into())
    );
}

// ---- errors: syntax and schema ----

#[test]
fn toml_syntax_error() {
    let t = Tree::new();
    ha(&t, "[timers]\nchild_rekey = = 5\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:15: extra `=`, expected nothing"
    );
}

#[test]
fn unknown_key_in_global_file() {
    let t = Tree::new();
    ha(&t, "[listen]\nadresses = [\"::\"]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:1: unknown key `adresses`, expected one of `addresses`, `port`, `nat_port`, `receive_buffer`, `fragmentation`, `fragment_size`; did you mean `addresses`?"
    );
}

#[test]
fn unknown_section_in_global_file() {
    let t = Tree::new();
    ha(&t, "[timer]\nchild_rekey = 5\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:7:2: unknown key `timer`, expected one of `role`, `key_mobility`, `listen`, `identity`, \
         `proposals`, `timers`, `limits`, `reqids`, `home_agent`, `mobile_node`, `kernel`, `engine`, `control`, `revocation`, `pools`; did you mean `timers`?"
    );
}

#[test]
fn unknown_key_in_user_file() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        &format!("{MN1}home_address = \"2001:db8:1::100\"\n"),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:4:1: unknown key `home_address`, expected one of `identity`, `identity_pattern`, \
         `auth`, `psk`, `home_addresses`, `classes`, `pool`, `home_prefix`, `prefix_pool`, `uniqueness`; did you mean `home_addresses`?"
    );
}

#[test]
fn bad_role() {
    let t = Tree::new();
    t.write("conf/x.toml", &HA_HEAD.replace("home-agent", "homeagent"));
    assert_eq!(
        t.err("x.toml"),
        "$D/conf/x.toml:1:8: unknown variant `homeagent`, expected `home-agent` or `mobile-node`"
    );
}

#[test]
fn missing_role() {
    let t = Tree::new();
    t.write(
        "conf/x.toml",
        HA_HEAD.strip_prefix("role = \"home-agent\"\n").unwrap(),
    );
    assert_eq!(
        t.err("x.toml"),
        "$D/conf/x.toml:1:1: missing key `role`; write role = \"home-agent\" or role = \"mobile-node\""
    );
}

#[test]
fn wrong_value_type() {
    let t = Tree::new();
    ha(&t, "[listen]\nport = \"500\"\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:8: invalid type: string \"500\", expected an integer from 0 to 65535"
    );
}

// ---- errors: meaning ----

#[test]
fn identity_without_type() {
    let t = Tree::new();
    t.write(
        "conf/x.toml",
        &HA_HEAD.replace(
            "\"dn:C=CH, O=mip6-ike test, CN=ha.example.net\"",
            "\"ha.example.net\"",
        ),
    );
    assert_eq!(
        t.err("x.toml"),
        "$D/conf/x.toml:3:6: id = \"ha.example.net\" has no identity type; write dn:C=CH, O=Example, CN=name, \
         fqdn:host.example.net, email:user@example.net, ipv6:2001:db8::1, ipv4:192.0.2.1 or keyid:<hex>"
    );
}

#[test]
fn malformed_identity_value() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        &MN1.replace(
            "\"dn:C=CH, O=mip6-ike test, CN=mn1@example.net\"",
            "\"ipv6:2001:db8::zz\"",
        ),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:1:12: identity: `ipv6:2001:db8::zz`: not an IPv6 address, e.g. ipv6:2001:db8::1"
    );
}

#[test]
fn unknown_class() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        &MN1.replace("\"payload\"", "\"tunnel\""),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:3:21: unknown SA class \"tunnel\"; write one of \"bu-ba\", \"mps-mpa\", \"hoti-hot\", \"payload\""
    );
}

#[test]
fn unparsable_proposal() {
    let t = Tree::new();
    ha(
        &t,
        "[proposals]\nike = [\"aes128-sha256-x25519\", \"aes128-md5-modp1024\"]\n",
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:32: unknown algorithm 'md5' in proposal 'aes128-md5-modp1024' (known: aes128, aes256, \
         aes128gcm16, aes256gcm16, chacha20poly1305, sha256, sha384, sha512, prfsha256, prfsha384, \
         prfsha512, modp2048, modp3072, modp4096, ecp256, ecp384, ecp521, x25519, esn, noesn)"
    );
}

#[test]
fn proposal_preference() {
    let t = Tree::new();
    ha(&t, "[proposals]\nprefer = \"peer\"\n");
    let c = policy::load(t.path("conf").join("ha.toml")).expect("prefer = \"peer\" loads");
    assert_eq!(c.engine.prefer, mip6_ike::ike::Prefer::Peer);
    ha(&t, "[proposals]\nprefer = \"theirs\"\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:10: [proposals] prefer = \"theirs\": write \"ours\" (our order decides, strongSwan's default) or \"peer\""
    );
}

#[test]
fn home_agent_without_users_dir() {
    let t = Tree::new();
    t.write(
        "conf/ha.toml",
        &format!("{HA_HEAD}[home_agent]\naddress = \"2001:db8:1::1\"\n"),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:7:1: [home_agent] needs users_dir = \"users\" (a directory with one .toml file per mobile node)"
    );
}

#[test]
fn home_agent_without_section() {
    let t = Tree::new();
    t.write("conf/ha.toml", HA_HEAD);
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:1:8: role = \"home-agent\" needs a [home_agent] section with address = \"<HA address>\" and users_dir = \"users\""
    );
}

#[test]
fn users_dir_missing_on_disk() {
    let t = Tree::new();
    t.write(
        "conf/ha.toml",
        &format!("{HA_HEAD}[home_agent]\naddress = \"2001:db8:1::1\"\nusers_dir = \"nobody\"\n"),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:9:13: users_dir: $D/conf/nobody is not a directory; create it or fix the path"
    );
}

#[test]
fn mobile_node_without_home_agent() {
    let t = Tree::new();
    t.write(
        "conf/mn.toml",
        &format!("{MN_HEAD}[mobile_node]\nhome_address = \"2001:db8:1::100\"\n"),
    );
    assert_eq!(
        t.err("mn.toml"),
        "$D/conf/mn.toml:7:1: [mobile_node] needs home_agent = \"[<HA address>]:500\" (where to send IKE)"
    );
}

#[test]
fn section_of_the_other_role() {
    let t = Tree::new();
    t.write("conf/mn.toml", &format!("{MN_HEAD}{HA_TAIL}"));
    assert_eq!(
        t.err("mn.toml"),
        "$D/conf/mn.toml:7:1: [home_agent] is for role = \"home-agent\"; remove it or change role"
    );
}

#[test]
fn group_readable_key() {
    let t = Tree::new();
    ha(&t, "");
    fs::set_permissions(
        t.path("certs/ha-ecdsa.key"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:5:15: private_key $D/conf/../certs/ha-ecdsa.key is accessible by group or others \
         (mode 0640); run: chmod 600 $D/conf/../certs/ha-ecdsa.key"
    );
}

#[test]
fn missing_certificate_file() {
    let t = Tree::new();
    t.write(
        "conf/mn.toml",
        &format!(
            "{}[mobile_node]\nhome_agent = \"2001:db8:1::1\"\nhome_address = \"2001:db8:1::100\"\n",
            MN_HEAD.replace("mn1-ecdsa.pem", "mn9.pem")
        ),
    );
    assert_eq!(
        t.err("mn.toml"),
        "$D/conf/mn.toml:4:15: certificate: cannot read $D/conf/../certs/mn9.pem: No such file or directory (os error 2)"
    );
}

#[test]
fn duplicate_identity_across_users() {
    let t = Tree::new();
    ha(&t, "");
    t.write("conf/users/mn2.toml", &MN1.replace("::100", "::200"));
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn2.toml:1:12: identity dn:C=CH, O=mip6-ike test, CN=mn1@example.net is already claimed by \
         $D/conf/users/mn1.toml; each identity belongs to one user file"
    );
}

#[test]
fn duplicate_home_address_across_users() {
    let t = Tree::new();
    ha(&t, "");
    t.write("conf/users/mn2.toml", &MN1.replace("mn1@", "mn2@"));
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn2.toml:2:19: home address 2001:db8:1::100 is already given to $D/conf/users/mn1.toml; \
         a home address belongs to one user"
    );
}

#[test]
fn short_psk() {
    let t = Tree::new();
    ha(&t, "");
    t.write("conf/users/mn1.toml", "identity = \"fqdn:mn1.example.net\"\npsk = \"secret\"\nhome_addresses = [\"2001:db8:1::100\"]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:2:7: psk is 6 bytes; use at least 16 random bytes (e.g. the output of: openssl rand -base64 24)"
    );
}

#[test]
fn certificate_users_need_a_ca() {
    let t = Tree::new();
    t.write(
        "conf/ha.toml",
        &format!(
            "{}{HA_TAIL}",
            HA_HEAD.replace("ca = [\"../certs/ca-ecdsa.pem\"]\n", "")
        ),
    );
    t.write("conf/users/mn1.toml", MN1);
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:2:1: user 'mn1' authenticates with a certificate: add ca = [\"<CA certificate>.pem\"] to [identity]"
    );
}

#[test]
fn xfrm_backend_and_daemon_policies() {
    let t = Tree::new();
    ha(
        &t,
        "[kernel]\nbackend = \"xfrm\"\npolicies = \"daemon\"\nowned_reqids = [1, 100]\n",
    );
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.kernel.backend, policy::KernelBackend::Xfrm);
    assert_eq!(c.kernel.policies, policy::PolicyMode::Daemon);
    assert_eq!(c.kernel.owned_reqids, (1, 100));
    assert!(
        c.summary()
            .contains("xfrm backend, policies by the daemon, owned reqids 1-100")
    );
}

#[test]
fn owned_reqids_default_to_the_class_reqids() {
    let t = Tree::new();
    ha(&t, "[reqids]\npayload = [13, 14]\n");
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.kernel.backend, policy::KernelBackend::Memory);
    assert_eq!(c.kernel.policies, policy::PolicyMode::Mip6d);
    // The classes' 1-14 and the automatic reqids right above them.
    assert_eq!(c.engine.mobility.auto_reqids, (15, 46));
    assert_eq!(c.kernel.owned_reqids, (1, 46));
}

#[test]
fn automatic_reqids_lie_inside_the_owned_range() {
    let t = Tree::new();
    // Defaults: classes 1-8, CHILD_SAs outside them 9-40, all of it ours.
    ha(&t, "");
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.mobility.auto_reqids, (9, 40));
    assert_eq!(c.kernel.owned_reqids, (1, 40));
    // An owned range with room above the classes holds them.
    ha(&t, "[kernel]\nowned_reqids = [1, 20]\n");
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.mobility.auto_reqids, (9, 20));
    // Explicit automatic reqids widen the default owned range.
    ha(&t, "[kernel]\nauto_reqids = [100, 131]\n");
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.engine.mobility.auto_reqids, (100, 131));
    assert_eq!(c.kernel.owned_reqids, (1, 131));
    // And the automatic reqids the engine hands out stay in the owned range.
    let m = c.engine.mobility;
    assert!(
        (0..100)
            .map(|n| m.auto_reqid(n))
            .all(|r| (100..=131).contains(&r))
    );
}

#[test]
fn automatic_reqid_errors() {
    let t = Tree::new();
    ha(&t, "[kernel]\nowned_reqids = [1, 8]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:16: owned_reqids = [1, 8] leaves no reqid above the classes' for CHILD_SAs outside them; widen it to [1, 40] or set auto_reqids = [first, last] inside it"
    );
    ha(
        &t,
        "[kernel]\nowned_reqids = [1, 50]\nauto_reqids = [100, 120]\n",
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:16: owned_reqids = [1, 50] leaves out auto_reqids [100, 120]; widen the range to cover them"
    );
    ha(&t, "[kernel]\nauto_reqids = [5, 9]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:15: auto_reqids = [5, 9] includes reqid 5 of [reqids]; automatic reqids must not name a class"
    );
    ha(&t, "[kernel]\nauto_reqids = [0, 3]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:15: auto_reqids = [0, 3] is not a range of non-zero reqids; write [first, last] with 0 < first <= last"
    );
}

#[test]
fn owned_reqids_must_cover_the_classes() {
    let t = Tree::new();
    ha(&t, "[kernel]\nowned_reqids = [2, 8]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:16: owned_reqids = [2, 8] leaves out reqid 1 of [reqids]; widen the range to cover every class"
    );
    ha(&t, "[kernel]\nowned_reqids = [9, 1]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:16: owned_reqids = [9, 1] is not a range of non-zero reqids; write [first, last] with 0 < first <= last"
    );
}

#[test]
fn reqid_clash() {
    let t = Tree::new();
    ha(&t, "[reqids]\nbu-ba = [1, 2]\npayload = [2, 3]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:9:11: reqid 2 is used by both bu-ba and payload; give each class its own pair"
    );
}

#[test]
fn reqid_clash_with_a_default() {
    let t = Tree::new();
    ha(&t, "[reqids]\npayload = [7, 9]\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:11: reqid 7 is used by both payload and hoti-hot (default); give each class its own pair"
    );
}

#[test]
fn rekey_after_lifetime() {
    let t = Tree::new();
    ha(&t, "[timers]\nchild_rekey = 4000\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:15: child_rekey (4000) must be shorter than child_lifetime (3900): rekeying happens before the SA expires"
    );
}

#[test]
fn bad_home_address() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        &MN1.replace("2001:db8:1::100", "ff02::1"),
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:2:19: ff02::1 cannot be a home address; write a global unicast address such as 2001:db8:1::100"
    );
}

#[test]
fn user_without_identity() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        "home_addresses = [\"2001:db8:1::100\"]\n",
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml: missing identity: write identity = \"dn:C=CH, O=Example, CN=mn1\" (or identity_pattern = \"dn:C=CH, O=Example, CN=*\")"
    );
}

#[test]
fn pattern_with_partial_wildcard() {
    let t = Tree::new();
    ha(&t, "");
    t.write(
        "conf/users/mn1.toml",
        "identity_pattern = \"dn:C=CH, CN=mn*\"\nhome_addresses = [\"2001:db8:1::100\"]\n",
    );
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/users/mn1.toml:1:20: identity_pattern: `CN=mn*`: only a whole value may be *, e.g. CN=*"
    );
}

#[test]
fn reload_changes_are_reported() {
    let t = Tree::with_examples();
    let a = policy::load(t.path("conf/ha.toml")).unwrap();
    fs::remove_file(t.path("conf/users/mn2.toml")).unwrap();
    t.write(
        "conf/users/mn1.toml",
        &fs::read_to_string(t.path("conf/users/mn1.toml"))
            .unwrap()
            .replace("\"bu-ba\", \"payload\"", "\"bu-ba\""),
    );
    t.write(
        "conf/users/mn3.toml",
        "identity = \"fqdn:mn3.example.net\"\nhome_addresses = [\"2001:db8:1::300\"]\n",
    );
    let b = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(
        a.changes(&b),
        vec!["user mn1 changed", "user mn2 removed", "user mn3 added"]
    );
    assert!(a.changes(&a).is_empty());
}

// ---- pools, prefixes, K bit, lease file ----

#[test]
fn example_pools_group_user_and_dynamic_mobile_node() {
    let t = Tree::with_examples();
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert!(c.engine.mobility.key_mobility);
    assert!(
        !c.engine.mobility.update_kernel_sas,
        "mip6d's MIGRATE moves the kernel SAs"
    );
    assert_eq!(c.engine.mobility.lease_grace.as_secs(), 3600);
    assert_eq!(
        c.lease_file.as_deref(),
        Some(t.path("conf/leases.toml").as_path())
    );
    let users = c.engine.home_agent.as_ref().unwrap().users.users();
    let v = users.iter().find(|u| u.name == "visitors").unwrap();
    assert!(v.home_addresses.is_empty());
    let pool = v.pool.as_ref().unwrap();
    assert_eq!(
        pool.kind,
        PoolKind::Addresses {
            first: "2001:db8:1::1000".parse().unwrap(),
            last: "2001:db8:1::10ff".parse().unwrap()
        }
    );
    match v.home_prefix.as_ref().unwrap() {
        HomePrefix::Pool(p) => {
            assert_eq!(p.item_len(), 64);
            assert_eq!(p.lifetime, 86_400);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.summary()
            .contains("visitors: pattern dn:C=CH, O=mip6-ike test, CN=*, certificate, home pool visitors, prefix pool mnp"),
        "{}",
        c.summary()
    );
    let m = policy::load(t.path("conf/mn-dynamic.toml")).unwrap();
    assert_eq!(
        m.mobile_node.as_ref().unwrap().home_address,
        HomeAddress::Dynamic
    );
    assert!(m.engine.mobility.request_home_prefix);
    assert!(m.engine.mobility.key_mobility);
}

/// `mip6-iked --check` accepts every shipped example, and the mip6d.conf snippets name the
/// reqids of the matching configuration.
#[test]
fn check_command_accepts_the_examples_and_mip6d_snippets_match() {
    let t = Tree::with_examples();
    for f in ["ha.toml", "mn.toml", "mn2.toml", "mn-dynamic.toml"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mip6-iked"))
            .args(["--check", "--config"])
            .arg(t.path("conf").join(f))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("configuration OK"), "{stdout}");
    }
    let class = |name: &str| match name {
        "Mh" => SaClass::BuBa,
        "TunnelPayload" => SaClass::Payload,
        "MobPfxDisc" => SaClass::MpsMpa,
        "TunnelHomeTesting" => SaClass::HotiHot,
        other => panic!("unexpected IPsecPolicy type {other}"),
    };
    for (snippet, config) in [("mip6d-ha.conf", "ha.toml"), ("mip6d-mn.conf", "mn.toml")] {
        let c = policy::load(t.path("conf").join(config)).unwrap();
        let text = fs::read_to_string(Path::new(ROOT).join("conf").join(snippet)).unwrap();
        let mut seen = 0;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("IPsecPolicy "))
        {
            let w: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
            let w: Vec<&str> = w.iter().map(|x| x.trim_end_matches(';')).collect();
            assert_eq!(w[2], "UseESP", "{line}");
            let r = c.engine.reqids(class(w[1]));
            assert_eq!(
                (w[3].parse::<u32>().unwrap(), w[4].parse::<u32>().unwrap()),
                (r.to_ha, r.to_mn),
                "{snippet}: {line}"
            );
            seen += 1;
        }
        assert!(seen >= 2, "{snippet}");
        assert!(text.contains("KeyMngMobCapability enabled"));
    }
}

const POOLS: &str = "[pools.dyn]\nrange = \"2001:db8:1::1000-2001:db8:1::10ff\"\n[pools.mnp]\nprefix = \"2001:db8:100::/48\"\ndelegate = 64\n";

#[test]
fn pool_user_and_static_prefix() {
    let t = Tree::new();
    ha(&t, POOLS);
    t.write(
        "conf/users/mn1.toml",
        "identity = \"dn:C=CH, O=mip6-ike test, CN=mn1@example.net\"\npool = \"dyn\"\nhome_prefix = \"2001:db8:200:1::/64\"\n",
    );
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    let u = &c.engine.home_agent.as_ref().unwrap().users.users()[0];
    assert_eq!(u.pool.as_ref().unwrap().name, "dyn");
    assert_eq!(
        u.home_prefix,
        Some(HomePrefix::Static {
            prefix: "2001:db8:200:1::".parse().unwrap(),
            len: 64,
            lifetime: 86_400
        })
    );
    assert!(c.engine.mobility.key_mobility, "the K bit is on by default");
    assert_eq!(c.lease_file, None);
}

fn user_err(user: &str) -> String {
    let t = Tree::new();
    ha(&t, POOLS);
    t.write("conf/users/mn1.toml", user);
    t.err("ha.toml")
}

const ID1: &str = "identity = \"dn:C=CH, O=mip6-ike test, CN=mn1@example.net\"\n";

#[test]
fn unknown_pool() {
    assert_eq!(
        user_err(&format!("{ID1}pool = \"visitors\"\n")),
        "$D/conf/users/mn1.toml:2:8: pool = \"visitors\": no such pool; define [pools.visitors] in the global file or write one of \"dyn\""
    );
}

#[test]
fn pool_of_the_wrong_kind() {
    assert_eq!(
        user_err(&format!("{ID1}pool = \"mnp\"\n")),
        "$D/conf/users/mn1.toml:2:8: pool = \"mnp\" delegates prefixes; write prefix_pool = \"mnp\" for it, or name an address pool"
    );
    assert_eq!(
        user_err(&format!(
            "{ID1}home_addresses = [\"2001:db8:1::100\"]\nprefix_pool = \"dyn\"\n"
        )),
        "$D/conf/users/mn1.toml:3:15: prefix_pool = \"dyn\" is a pool of home addresses; a prefix pool has delegate = <len> (or write pool = \"dyn\")"
    );
}

#[test]
fn user_without_addresses_or_pool() {
    assert_eq!(
        user_err(ID1),
        "$D/conf/users/mn1.toml: missing home_addresses: write home_addresses = [\"2001:db8:1::100\"] (or pool = \"<pool name>\" for dynamic addresses)"
    );
}

#[test]
fn home_prefix_inside_a_pool() {
    assert_eq!(
        user_err(&format!(
            "{ID1}pool = \"dyn\"\nhome_prefix = \"2001:db8:100:7::/64\"\n"
        )),
        "$D/conf/users/mn1.toml:3:15: home_prefix 2001:db8:100:7::/64 overlaps pool mnp; take the prefix out of the pool or write prefix_pool = \"mnp\""
    );
}

#[test]
fn home_prefix_with_host_bits() {
    assert_eq!(
        user_err(&format!(
            "{ID1}pool = \"dyn\"\nhome_prefix = \"2001:db8:200:1::1/64\"\n"
        )),
        "$D/conf/users/mn1.toml:3:15: home_prefix = \"2001:db8:200:1::1/64\" has host bits set; write \"2001:db8:200:1::/64\""
    );
}

fn ha_err(middle: &str) -> String {
    let t = Tree::new();
    ha(&t, middle);
    t.err("ha.toml")
}

#[test]
fn pool_errors() {
    assert_eq!(
        ha_err(
            "[pools.a]\nrange = \"2001:db8:1::1000-2001:db8:1::10ff\"\n[pools.b]\nprefix = \"2001:db8:1::1000/120\"\n"
        ),
        "$D/conf/ha.toml:9:1: pool b overlaps pool a; give each pool its own addresses"
    );
    assert_eq!(
        ha_err("[pools.a]\nrange = \"2001:db8:1::10ff-2001:db8:1::1000\"\n"),
        "$D/conf/ha.toml:8:9: range: 2001:db8:1::10ff comes after 2001:db8:1::1000; write the lower address first"
    );
    assert_eq!(
        ha_err("[pools.a]\nrange = \"2001:db8:1::1000\"\n"),
        "$D/conf/ha.toml:8:9: range = \"2001:db8:1::1000\" is not an address range; write e.g. range = \"2001:db8:1::1000-2001:db8:1::1fff\""
    );
    assert_eq!(
        ha_err("[pools.a]\nprefix = \"2001:db8:100::/64\"\ndelegate = 48\n"),
        "$D/conf/ha.toml:9:12: delegate = 48 must be longer than the pool prefix /64 and at most 128; write e.g. delegate = 64"
    );
    assert_eq!(
        ha_err("[pools.a]\nlifetime = 5\n"),
        "$D/conf/ha.toml:7:1: [pools.a] needs range = \"<first>-<last>\", prefix = \"<prefix>/<len>\", or prefix with delegate = <len> for prefix delegation"
    );
    assert_eq!(
        ha_err("[pools.a]\nranges = \"x\"\n"),
        "$D/conf/ha.toml:8:1: unknown key `ranges`, expected one of `range`, `prefix`, `delegate`, `lifetime`; did you mean `range`?"
    );
    let t = Tree::new();
    t.write(
        "conf/ha.toml",
        &format!("key_mobility = \"yes\"\n{HA_HEAD}{HA_TAIL}"),
    );
    t.write("conf/users/mn1.toml", MN1);
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:1:16: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn lease_grace_must_be_positive() {
    let t = Tree::new();
    t.write(
        "conf/ha.toml",
        &format!("{HA_HEAD}{HA_TAIL}").replace("[home_agent]\n", "[home_agent]\nlease_grace = 0\n"),
    );
    t.write("conf/users/mn1.toml", MN1);
    let e = t.err("ha.toml");
    assert!(
        e.ends_with(
            "lease_grace = 0 is not a positive number of seconds; write e.g. lease_grace = 3600"
        ),
        "{e}"
    );
}

#[test]
fn pools_on_a_mobile_node_are_refused() {
    let t = Tree::new();
    t.write(
        "conf/mn.toml",
        &format!("{MN_HEAD}[mobile_node]\nhome_agent = \"2001:db8:1::1\"\nhome_address = \"dynamic\"\n[pools.a]\nrange = \"2001:db8:1::1-2001:db8:1::2\"\n"),
    );
    assert_eq!(
        t.err("mn.toml"),
        "$D/conf/mn.toml:10:1: [pools.a] is for a home agent; remove it"
    );
}

#[test]
fn per_source_limits_have_defaults_and_refuse_zero() {
    let t = Tree::new();
    ha(&t, "");
    let e = policy::load(t.path("conf/ha.toml")).unwrap().engine;
    assert_eq!(
        (e.max_half_open_per_source, e.init_rate_per_source),
        (5, 10)
    );
    ha(
        &t,
        "[limits]\nhalf_open_per_source = 2\ninit_rate_per_source = 3\n",
    );
    let e = policy::load(t.path("conf/ha.toml")).unwrap().engine;
    assert_eq!((e.max_half_open_per_source, e.init_rate_per_source), (2, 3));
    ha(&t, "[limits]\nhalf_open_per_source = 0\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:24: half_open_per_source = 0 would refuse every peer; write e.g. half_open_per_source = 5"
    );
    ha(&t, "[limits]\ninit_rate_per_source = 0\n");
    assert_eq!(
        t.err("ha.toml"),
        "$D/conf/ha.toml:8:24: init_rate_per_source = 0 would refuse every peer; write e.g. init_rate_per_source = 10"
    );
}

#[test]
fn receive_buffer() {
    let t = Tree::new();
    ha(&t, "[listen]\nreceive_buffer = 65536\n");
    let c = policy::load(t.path("conf/ha.toml")).unwrap();
    assert_eq!(c.listen.receive_buffer, 65536);
    assert_eq!(
        ha_err("[listen]\nreceive_buffer = 100\n"),
        "$D/conf/ha.toml:8:18: receive_buffer = 100 is out of range: give bytes from 4096 to 536870912 (default 4194304, 4 MiB)"
    );
    assert_eq!(
        ha_err("[listen]\nreceive_buffer = 1073741824\n"),
        "$D/conf/ha.toml:8:18: receive_buffer = 1073741824 is out of range: give bytes from 4096 to 536870912 (default 4194304, 4 MiB)"
    );
    assert_eq!(
        ha_err("[listen]\nreceive_buffer = \"4M\"\n"),
        "$D/conf/ha.toml:8:18: invalid type: string \"4M\", expected u64"
    );
}

#[test]
fn fragmentation_defaults_and_bounds() {
    let t = Tree::new();
    ha(&t, "");
    let e = policy::load(t.path("conf/ha.toml")).unwrap().engine;
    assert_eq!(
        (e.fragmentation.enabled, e.fragmentation.size),
        (true, 1280)
    );
    ha(
        &t,
        "[listen]\nfragmentation = false\nfragment_size = 1500\n",
    );
    let e = policy::load(t.path("conf/ha.toml")).unwrap().engine;
    assert_eq!(
        (e.fragmentation.enabled, e.fragmentation.size),
        (false, 1500)
    );
    assert_eq!(
        ha_err("[listen]\nfragment_size = 500\n"),
        "$D/conf/ha.toml:8:17: fragment_size = 500 is out of range: give the largest IP datagram an IKE message may make, from 576 to 65535 bytes (default 1280, IPv6's minimum MTU)"
    );
    assert_eq!(
        ha_err("[listen]\nfragmentation = \"yes\"\n"),
        "$D/conf/ha.toml:8:17: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn spi_stock_is_on_by_default_and_can_be_turned_off() {
    let t = Tree::new();
    ha(&t, "");
    assert!(
        policy::load(t.path("conf/ha.toml"))
            .unwrap()
            .kernel
            .spi_stock
    );
    ha(&t, "[kernel]\nspi_stock = false\n");
    assert!(
        !policy::load(t.path("conf/ha.toml"))
            .unwrap()
            .kernel
            .spi_stock
    );
    assert_eq!(
        ha_err("[kernel]\nspi_stock = 1\n"),
        "$D/conf/ha.toml:8:13: invalid type: integer `1`, expected a boolean"
    );
}

#[test]
fn engine_shards_default_to_one_per_core_and_are_bounded() {
    let t = Tree::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    ha(&t, "");
    assert_eq!(
        policy::load(t.path("conf/ha.toml")).unwrap().shards,
        policy::default_shards(cores)
    );
    assert_eq!(policy::default_shards(1), 1);
    assert_eq!(policy::default_shards(8), 8);
    assert_eq!(policy::default_shards(200), 64);
    ha(&t, "[engine]\nshards = 0\n");
    assert_eq!(
        policy::load(t.path("conf/ha.toml")).unwrap().shards,
        policy::default_shards(cores)
    );
    ha(&t, "[engine]\nshards = 3\n");
    assert_eq!(policy::load(t.path("conf/ha.toml")).unwrap().shards, 3);
    assert_eq!(
        ha_err("[engine]\nshards = 65\n"),
        "$D/conf/ha.toml:8:10: shards = 65 is out of range: give 1 to 64 engine shards, or 0 for one per core"
    );
    assert_eq!(
        ha_err("[engine]\nshards = -1\n"),
        "$D/conf/ha.toml:8:10: invalid value: integer `-1`, expected u64"
    );
    let e = ha_err("[engine]\nshard = 2\n");
    assert!(
        e.starts_with("$D/conf/ha.toml:8:1: unknown key `shard`"),
        "{e}"
    );
}
