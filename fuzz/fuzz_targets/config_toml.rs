//! Configuration loading from text: the global file (`policy::load_str`, which also reads the
//! certificates, keys and users directory it names) and one user file
//! (`policy::load_user_str`). Input: one byte (even: global file, odd: user file), then the
//! file's text. Never panics is the oracle; a file that loads must also give its summary.
//!
//! The global file names files to read. They resolve inside a private directory that holds the
//! test certificates and users (made once per process); an input naming anything outside it is
//! skipped, so that the fuzzer never reads /dev/zero or a FIFO.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mip6_ike::mobility::{Pool, PoolKind};
use mip6_ike::policy;
use mip6_ike_fuzz::*;

/// ROOT/certs (keys 0600), ROOT/conf/users (the example users), ROOT/conf/user/fuzz.toml (the
/// user file under test is "at" this path: it exists with mode 0600, which a PSK requires).
fn root() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| {
        let r = std::env::temp_dir().join(format!("mip6-ike-fuzz-config-{}", std::process::id()));
        let _ = fs::remove_dir_all(&r);
        let w = |rel: &str, text: &str, mode: u32| {
            let p = r.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, text).expect("write");
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        w("certs/ca-ecdsa.pem", CA_ECDSA, 0o644);
        w("certs/ha-ecdsa.pem", HA_CERT, 0o644);
        w("certs/ha-ecdsa.key", HA_KEY, 0o600);
        w("certs/mn1-ecdsa.pem", MN1_CERT, 0o644);
        w("certs/mn1-ecdsa.key", MN1_KEY, 0o600);
        w(
            "conf/users/mn1.toml",
            include_str!("../../conf/users/mn1.toml"),
            0o644,
        );
        w(
            "conf/users/mn2.toml",
            include_str!("../../conf/users/mn2.toml"),
            0o600,
        );
        w(
            "conf/users/visitors.toml",
            include_str!("../../conf/users/visitors.toml"),
            0o644,
        );
        w("conf/user/fuzz.toml", "", 0o600);
        r
    })
}

/// Where `s`, as a path relative to `base`, lands (lexically: the directory has no symlinks).
fn resolve(base: &Path, s: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(s).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether every string of the document stays inside the sandbox when taken as a path. The
/// control socket's default directory is allowed: the loader only joins it, never opens it.
fn confined(v: &toml::Value, base: &Path, root: &Path) -> bool {
    match v {
        toml::Value::String(s) => {
            let p = resolve(base, s);
            p.starts_with(root) || p.starts_with("/run/mip6-iked")
        }
        toml::Value::Array(a) => a.iter().all(|v| confined(v, base, root)),
        toml::Value::Table(t) => t.values().all(|v| confined(v, base, root)),
        _ => true,
    }
}

fn pools() -> &'static BTreeMap<String, Arc<Pool>> {
    static P: OnceLock<BTreeMap<String, Arc<Pool>>> = OnceLock::new();
    P.get_or_init(|| {
        let a = |s: &str| s.parse().expect("address");
        let mut m = BTreeMap::new();
        for p in [
            Pool {
                name: "visitors".into(),
                kind: PoolKind::Addresses {
                    first: a("2001:db8:1::1000"),
                    last: a("2001:db8:1::10ff"),
                },
                lifetime: 86_400,
            },
            Pool {
                name: "mnp".into(),
                kind: PoolKind::Prefixes {
                    base: a("2001:db8:100::"),
                    base_len: 48,
                    len: 64,
                },
                lifetime: 86_400,
            },
        ] {
            m.insert(p.name.clone(), Arc::new(p));
        }
        m
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let root = root();
    if kind % 2 == 0 {
        let base = root.join("conf");
        if let Ok(doc) = text.parse::<toml::Table>()
            && !doc.values().all(|v| confined(v, &base, root))
        {
            return;
        }
        if let Ok(c) = policy::load_str(&base.join("global.toml"), text) {
            let _ = c.summary();
        }
    } else {
        let _ = policy::load_user_str(&root.join("conf/user/fuzz.toml"), text, pools());
    }
});
