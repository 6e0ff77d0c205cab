//! The users directory of a home agent: one `<name>.toml` per mobile node, saying who it is
//! (identity or DN pattern), how it authenticates, which home addresses it may use and which SA
//! classes it may negotiate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Doc};
use super::pools::{Pools, lookup, parse_prefix};
use super::schema::UserFile;
use super::{auth_msg, check_hoa, check_secret_mode, classes, identity, psk};
use crate::auth::Identity;
use crate::mobility::pool::DEFAULT_PREFIX_LIFETIME;
use crate::mobility::{HomePrefix, IdentityMatch, PoolKind, SaClass, User, UserAuth, UserDb};

/// Reads every `*.toml` file of `dir` (sorted by name; hidden files and other names are skipped)
/// into a [`UserDb`]. Two users with the same identity or the same home address are an error
/// naming both files.
pub fn load_users(dir: &Path) -> Result<UserDb, ConfigError> {
    load_users_with(dir, &Pools::new())
}

/// [`load_users`] with the pools of the global file, which user files may name.
pub fn load_users_with(dir: &Path, pools: &Pools) -> Result<UserDb, ConfigError> {
    load_users_for(dir, pools, &[])
}

/// [`load_users_with`] for a home agent whose own addresses are `ha_addresses`: no user may
/// claim them, as a home address or inside a home prefix.
pub fn load_users_for(
    dir: &Path,
    pools: &Pools,
    ha_addresses: &[Ipv6Addr],
) -> Result<UserDb, ConfigError> {
    let dir_err = |m: String| ConfigError {
        file: dir.to_path_buf(),
        position: None,
        message: m,
    };
    let rd = std::fs::read_dir(dir)
        .map_err(|e| dir_err(format!("cannot read the users directory: {e}")))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| dir_err(format!("cannot read the users directory: {e}")))?;
        let p = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
            files.push(p);
        } else {
            tracing::debug!(file = %p.display(), "not a user file (only *.toml files are read)");
        }
    }
    files.sort();

    let mut users = Vec::with_capacity(files.len());
    // identity key / home address -> file that claimed it first
    let mut ids: HashMap<String, PathBuf> = HashMap::new();
    let mut hoas: HashMap<Ipv6Addr, PathBuf> = HashMap::new();
    // Static home prefixes so far: (first, last, text, file). A home prefix authorizes its
    // user for every address inside it, so it must not reach anyone else's.
    let mut prefixes: Vec<(u128, u128, String, PathBuf)> = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        let doc = Doc { path, text: &text };
        let user = load_user(&doc, pools)?;
        if let IdentityMatch::Exact(id) = &user.identity
            && let Some(prev) = ids.insert(id_key(id), path.clone())
        {
            let f: UserFile = toml::from_str(&text).map_err(|e| doc.toml(&e))?;
            let span = f.identity.map_or(0..0, |v| v.span());
            return Err(doc.at(
                    span,
                    format!("identity {id} is already claimed by {}; each identity belongs to one user file", prev.display()),
                ));
        }
        for (i, a) in user.home_addresses.iter().enumerate() {
            if let Some(prev) = hoas.insert(*a, path.clone()) {
                let f: UserFile = toml::from_str(&text).map_err(|e| doc.toml(&e))?;
                let span = f
                    .home_addresses
                    .and_then(|l| l.into_inner().into_iter().nth(i).map(|v| v.span()))
                    .unwrap_or(0..0);
                let msg = if prev == *path {
                    format!("home address {a} is listed twice; remove one")
                } else {
                    format!(
                        "home address {a} is already given to {}; a home address belongs to one user",
                        prev.display()
                    )
                };
                return Err(doc.at(span, msg));
            }
        }
        check_claims(&doc, &user, pools, ha_addresses, &hoas, &mut prefixes)?;
        users.push(user);
    }
    UserDb::new(users).map_err(dir_err)
}

/// One user file's text checked alone (no directory walk, no claims against other files).
/// For the `config_toml` fuzz target, which cannot afford a file per input; the daemon reads
/// users through [`load_users_for`]. `path` names the user (its stem) and is the file whose mode
/// a PSK requires (it must exist for a PSK user to load).
#[doc(hidden)]
pub fn load_user_str(
    path: &Path,
    text: &str,
    pools: &BTreeMap<String, std::sync::Arc<crate::mobility::Pool>>,
) -> Result<User, ConfigError> {
    load_user(&Doc { path, text }, pools)
}

/// Refuses what would let this user act for addresses that are not its own: a static home
/// address that is the home agent's, lies inside another user's home prefix or inside a prefix
/// pool (a delegated prefix would give it to someone else); a home prefix that covers the home
/// agent's address or another user's home address or prefix. `hoas` holds every static home
/// address so far (this user's included), `prefixes` the home prefixes of earlier files.
fn check_claims(
    doc: &Doc,
    user: &User,
    pools: &Pools,
    ha_addresses: &[Ipv6Addr],
    hoas: &HashMap<Ipv6Addr, PathBuf>,
    prefixes: &mut Vec<(u128, u128, String, PathBuf)>,
) -> Result<(), ConfigError> {
    let path = doc.path;
    // Spans only matter for the error, so the file is parsed again only then.
    let file = || toml::from_str::<UserFile>(doc.text).ok();
    let hoa_span = |i: usize| {
        file()
            .and_then(|f| f.home_addresses)
            .and_then(|l| l.into_inner().into_iter().nth(i).map(|v| v.span()))
            .unwrap_or(0..0)
    };
    for (i, a) in user.home_addresses.iter().enumerate() {
        let v = u128::from(*a);
        if ha_addresses.contains(a) {
            return Err(doc.at(
                hoa_span(i),
                format!("home address {a} is the home agent's own address; give the mobile node another one"),
            ));
        }
        if let Some((_, _, text, prev)) = prefixes
            .iter()
            .find(|(x, y, _, prev)| *x <= v && v <= *y && prev != path)
        {
            return Err(doc.at(
                hoa_span(i),
                format!(
                    "home address {a} lies inside home_prefix {text} of {}, which gives that user every address in it; take the address out of that prefix or narrow the prefix",
                    prev.display()
                ),
            ));
        }
        if let Some(p) = pools
            .values()
            .find(|p| matches!(p.kind, PoolKind::Prefixes { .. }) && p.covers(*a))
        {
            return Err(doc.at(
                hoa_span(i),
                format!(
                    "home address {a} lies inside prefix pool {}, whose delegated prefixes would give it to another mobile node; take it out of the pool",
                    p.name
                ),
            ));
        }
    }
    if let Some(HomePrefix::Static { prefix, len, .. }) = &user.home_prefix {
        let (x, y) = crate::mobility::pool::prefix_span(*prefix, *len);
        let text = format!("{prefix}/{len}");
        let span = file()
            .and_then(|f| f.home_prefix)
            .map_or(0..0, |v| v.span());
        let inside = |a: &Ipv6Addr| (x..=y).contains(&u128::from(*a));
        if let Some(a) = ha_addresses.iter().find(|a| inside(a)) {
            return Err(doc.at(
                span,
                format!(
                    "home_prefix {text} covers the home agent's own address {a} (the home link?); a home prefix gives its user every address in it: delegate a prefix of its own, e.g. a /64 outside the home link"
                ),
            ));
        }
        // The lowest such address, so that the message does not depend on hash order.
        if let Some((a, prev)) = hoas
            .iter()
            .filter(|(a, prev)| inside(a) && *prev != path)
            .min_by_key(|(a, _)| **a)
        {
            return Err(doc.at(
                span,
                format!(
                    "home_prefix {text} covers home address {a} of {}; a home prefix gives its user every address in it: narrow it to leave that address out",
                    prev.display()
                ),
            ));
        }
        if let Some((_, _, other, prev)) = prefixes
            .iter()
            .find(|(c, d, _, prev)| x <= *d && *c <= y && prev != path)
        {
            return Err(doc.at(
                span,
                format!(
                    "home_prefix {text} overlaps home_prefix {other} of {}; give each user its own prefix",
                    prev.display()
                ),
            ));
        }
        prefixes.push((x, y, text, path.to_path_buf()));
    }
    Ok(())
}

/// The same normalisation as the user database: identities compare case-insensitively.
fn id_key(id: &Identity) -> String {
    id.to_string().to_ascii_lowercase()
}

fn load_user(doc: &Doc, pools: &Pools) -> Result<User, ConfigError> {
    let f: UserFile = toml::from_str(doc.text).map_err(|e| doc.toml(&e))?;
    let name = doc
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let identity = match (&f.identity, &f.identity_pattern) {
        (Some(_), Some(p)) => {
            return Err(doc.at(
                p.span(),
                "identity and identity_pattern are both set; keep one",
            ));
        }
        (None, None) => {
            return Err(doc.whole(
                "missing identity: write identity = \"dn:C=CH, O=Example, CN=mn1\" (or identity_pattern = \"dn:C=CH, O=Example, CN=*\")",
            ));
        }
        (Some(i), None) => IdentityMatch::Exact(identity(doc, i, "identity")?),
        (None, Some(p)) => IdentityMatch::DnPattern(dn_pattern(doc, p)?),
    };
    let auth = match (&f.auth, &f.psk) {
        (None, None) => UserAuth::Certificate,
        (Some(a), None) if a.get_ref() == "certificate" => UserAuth::Certificate,
        (Some(a), None) if a.get_ref() == "psk" => {
            return Err(doc.at(a.span(), "auth = \"psk\" needs psk = \"<pre-shared key>\""));
        }
        (Some(a), Some(_)) if a.get_ref() == "certificate" => {
            return Err(doc.at(
                a.span(),
                "auth = \"certificate\" and psk are both set; keep one",
            ));
        }
        (Some(a), Some(_)) if a.get_ref() != "psk" => return Err(bad_auth(doc, a)),
        (Some(a), None) => return Err(bad_auth(doc, a)),
        (_, Some(p)) => {
            if let IdentityMatch::DnPattern(_) = identity {
                return Err(doc.at(
                    p.span(),
                    "a pre-shared key needs an exact identity: write identity = \"...\" instead of identity_pattern",
                ));
            }
            let key = psk(doc, p)?;
            // Whoever reads the file can pose as this mobile node (and as the home agent to it).
            let meta = std::fs::metadata(doc.path)
                .map_err(|e| doc.at(p.span(), format!("cannot read: {e}")))?;
            check_secret_mode(doc, p.span(), &meta, doc.path, "pre-shared key file")?;
            UserAuth::Psk(key)
        }
    };
    let pool = f
        .pool
        .as_ref()
        .map(|v| lookup(doc, pools, v, "pool", false))
        .transpose()?;
    let home_prefix = match (&f.home_prefix, &f.prefix_pool) {
        (Some(_), Some(p)) => {
            return Err(doc.at(
                p.span(),
                "home_prefix and prefix_pool are both set; keep one",
            ));
        }
        (Some(v), None) => {
            let (prefix, len) = parse_prefix(doc, v, "home_prefix")?;
            let (a, b) = crate::mobility::pool::prefix_span(prefix, len);
            if let Some(p) = pools.values().find(|p| {
                let (c, d) = p.span();
                a <= d && c <= b
            }) {
                // A pool could hand part of it to someone else.
                return Err(doc.at(
                    v.span(),
                    format!(
                        "home_prefix {prefix}/{len} overlaps pool {}; take the prefix out of the pool or write prefix_pool = \"{}\"",
                        p.name, p.name
                    ),
                ));
            }
            Some(HomePrefix::Static {
                prefix,
                len,
                lifetime: DEFAULT_PREFIX_LIFETIME,
            })
        }
        (None, Some(v)) => Some(HomePrefix::Pool(lookup(
            doc,
            pools,
            v,
            "prefix_pool",
            true,
        )?)),
        (None, None) => None,
    };
    let mut home_addresses = Vec::new();
    match &f.home_addresses {
        None if pool.is_some() => {}
        None => {
            return Err(doc.whole(
                "missing home_addresses: write home_addresses = [\"2001:db8:1::100\"] (or pool = \"<pool name>\" for dynamic addresses)",
            ));
        }
        Some(list) => {
            for v in list.get_ref() {
                let a: Ipv6Addr = v.get_ref().trim().parse().map_err(|_| {
                    doc.at(
                        v.span(),
                        format!(
                            "\"{}\" is not an IPv6 address; write e.g. \"2001:db8:1::100\"",
                            v.get_ref()
                        ),
                    )
                })?;
                check_hoa(doc, v, a)?;
                home_addresses.push(a);
            }
            if home_addresses.is_empty() && pool.is_none() {
                return Err(doc.at(list.span(), "home_addresses = [] leaves nothing to use; write e.g. home_addresses = [\"2001:db8:1::100\"] or pool = \"<pool name>\""));
            }
        }
    }
    let classes = match &f.classes {
        Some(list) => classes(doc, list, "classes")?,
        None => vec![SaClass::BuBa],
    };
    Ok(User {
        name,
        identity,
        auth,
        home_addresses,
        classes,
        pool,
        home_prefix,
        uniqueness: f
            .uniqueness
            .as_ref()
            .map(|v| uniqueness(doc, v))
            .transpose()?,
    })
}

/// A `uniqueness = "..."` value (user file or `[home_agent]`).
pub(super) fn uniqueness(
    doc: &Doc,
    v: &toml::Spanned<String>,
) -> Result<crate::mobility::Uniqueness, ConfigError> {
    crate::mobility::Uniqueness::from_name(v.get_ref().trim()).ok_or_else(|| {
        doc.at(
            v.span(),
            format!(
                "uniqueness = \"{}\" is not known; write \"replace\" (a new IKE SA replaces the older ones for the same home address once it carries their CHILD_SAs; the default), \"no\" (older IKE SAs of the identity stay unless the new one sends INITIAL_CONTACT), \"never\" (they always stay: devices sharing an identity) or \"keep\" (a second IKE SA is refused)",
                v.get_ref()
            ),
        )
    })
}

fn bad_auth(doc: &Doc, a: &toml::Spanned<String>) -> ConfigError {
    doc.at(
        a.span(),
        format!(
            "auth = \"{}\" is not known; write auth = \"certificate\" or psk = \"...\"",
            a.get_ref()
        ),
    )
}

/// A DN pattern: `dn:` syntax where whole values may be `*`. Checked by parsing it with the
/// wildcards replaced.
fn dn_pattern(doc: &Doc, v: &toml::Spanned<String>) -> Result<String, ConfigError> {
    let s = v.get_ref().trim();
    let Some(body) = s
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("dn:"))
        .map(|_| &s[3..])
    else {
        return Err(doc.at(v.span(), "identity_pattern is a DN pattern; write e.g. identity_pattern = \"dn:C=CH, O=Example, CN=*\""));
    };
    let mut wild = false;
    for rdn in body.split([',', '/']) {
        let value = rdn.split_once('=').map_or("", |(_, val)| val.trim());
        if value == "*" {
            wild = true;
        } else if value.contains('*') {
            return Err(doc.at(
                v.span(),
                format!(
                    "identity_pattern: `{}`: only a whole value may be *, e.g. CN=*",
                    rdn.trim()
                ),
            ));
        }
    }
    if !wild {
        return Err(doc.at(
            v.span(),
            "identity_pattern has no * value; write identity = \"...\" for one exact identity",
        ));
    }
    let probe = s.replace('*', "x");
    Identity::parse_config(&probe)
        .map_err(|e| doc.at(v.span(), format!("identity_pattern: {}", auth_msg(e))))?;
    Ok(s.to_string())
}

/// One line about a user for summaries.
pub fn describe(u: &User) -> String {
    let id = match &u.identity {
        IdentityMatch::Exact(i) => i.to_string(),
        IdentityMatch::DnPattern(p) => format!("pattern {p}"),
    };
    let auth = match u.auth {
        UserAuth::Certificate => "certificate",
        UserAuth::Psk(_) => "psk",
    };
    let hoas: Vec<String> = u.home_addresses.iter().map(|a| a.to_string()).collect();
    let classes: Vec<&str> = u.classes.iter().map(|c| c.name()).collect();
    let mut home = hoas.join(" ");
    if let Some(p) = &u.pool {
        home = format!("{home} pool {}", p.name).trim().to_string();
    }
    match &u.home_prefix {
        Some(HomePrefix::Static { prefix, len, .. }) => {
            home = format!("{home}, prefix {prefix}/{len}")
        }
        Some(HomePrefix::Pool(p)) => home = format!("{home}, prefix pool {}", p.name),
        None => {}
    }
    format!(
        "{}: {id}, {auth}, home {home}, classes {}",
        u.name,
        classes.join(" ")
    )
}

/// Users added, removed or changed between two databases (by file name), for reload logs.
pub fn diff(old: &UserDb, new: &UserDb) -> Vec<String> {
    let index = |db: &UserDb| -> BTreeMap<String, std::sync::Arc<User>> {
        db.users()
            .iter()
            .map(|u| (u.name.clone(), u.clone()))
            .collect()
    };
    let (a, b) = (index(old), index(new));
    let same_auth = |x: &UserAuth, y: &UserAuth| match (x, y) {
        (UserAuth::Certificate, UserAuth::Certificate) => true,
        (UserAuth::Psk(p), UserAuth::Psk(q)) => crate::crypto::ct_eq(p, q),
        _ => false,
    };
    let mut out = Vec::new();
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for n in names {
        match (a.get(n), b.get(n)) {
            (None, Some(_)) => out.push(format!("user {n} added")),
            (Some(_), None) => out.push(format!("user {n} removed")),
            (Some(x), Some(y)) if describe(x) != describe(y) || !same_auth(&x.auth, &y.auth) => {
                out.push(format!("user {n} changed"))
            }
            _ => {}
        }
    }
    out
}
