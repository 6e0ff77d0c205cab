//! Who may use which home address: one entry per user, looked up by authenticated identity.
//! The home agent's only source of truth for authorization (never a packet's source address).

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;

use super::SaClass;
use super::pool::Pool;
use crate::auth::Identity;
use crate::crypto::Secret;

/// How a user file names its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    Exact(Identity),
    /// A DN with `*` as whole RDN values, racoon `peers_identifier` style.
    DnPattern(String),
}

/// How the user authenticates.
pub enum UserAuth {
    Certificate,
    Psk(Secret),
}

impl std::fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserAuth::Certificate => f.write_str("Certificate"),
            UserAuth::Psk(_) => f.write_str("Psk(..)"),
        }
    }
}

#[derive(Debug)]
pub struct User {
    /// File stem of the user file (for logs).
    pub name: String,
    pub identity: IdentityMatch,
    pub auth: UserAuth,
    /// Static home addresses (may be empty when `pool` is set).
    pub home_addresses: Vec<Ipv6Addr>,
    pub classes: Vec<SaClass>,
    /// Dynamic home addresses for this user (or group, with a DN pattern).
    pub pool: Option<Arc<Pool>>,
    /// The home prefix this user is delegated (RFC 5026 MIP6_HOME_PREFIX).
    pub home_prefix: Option<HomePrefix>,
    /// What a new IKE SA of this identity does to its older ones (`uniqueness`); None: the
    /// home agent's default (`[home_agent] uniqueness`).
    pub uniqueness: Option<Uniqueness>,
}

/// A home agent's uniqueness policy for one identity, as strongSwan's `unique` (swanctl.conf):
/// which older IKE SAs of the same authenticated identity a new one replaces or is refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uniqueness {
    /// Older IKE SAs stay, unless the new one carries INITIAL_CONTACT: then they go without a
    /// Delete (the peer restarted). strongSwan's default.
    No,
    /// Older IKE SAs always stay; INITIAL_CONTACT is ignored (several devices share the
    /// identity).
    Never,
    /// A new IKE SA is refused with AUTHENTICATION_FAILED while an established one of the
    /// identity exists (INITIAL_CONTACT first removes the older ones, as with `No`).
    Keep,
    /// A new IKE SA replaces the established ones for the same home address: each is deleted
    /// with its CHILD_SAs, and a Delete sent, once the new SA carries the CHILD_SA classes it
    /// had, or `REPLACE_GRACE` after the new one authenticated (make before break; with
    /// INITIAL_CONTACT they go at once without a Delete, as with `No`). The default: one
    /// identity, one mobile node.
    #[default]
    Replace,
}

impl Uniqueness {
    /// The configuration word.
    pub fn name(self) -> &'static str {
        match self {
            Uniqueness::No => "no",
            Uniqueness::Never => "never",
            Uniqueness::Keep => "keep",
            Uniqueness::Replace => "replace",
        }
    }

    /// The policy a configuration word names.
    pub fn from_name(s: &str) -> Option<Uniqueness> {
        [
            Uniqueness::No,
            Uniqueness::Never,
            Uniqueness::Keep,
            Uniqueness::Replace,
        ]
        .into_iter()
        .find(|u| u.name() == s)
    }
}

/// Where a user's home prefix comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomePrefix {
    Static {
        prefix: Ipv6Addr,
        len: u8,
        lifetime: u32,
    },
    Pool(Arc<Pool>),
}

impl User {
    pub fn owns(&self, hoa: Ipv6Addr) -> bool {
        self.home_addresses.contains(&hoa)
    }
}

/// Canonical lookup key: DNs compare by their decoded text (strongSwan and OpenSSL may encode the
/// same DN with different string types), other identities by value.
pub fn identity_key(id: &Identity) -> String {
    match id {
        Identity::Dn(_) => id.to_string().to_ascii_lowercase(),
        Identity::Fqdn(s) => format!("fqdn:{}", s.to_ascii_lowercase()),
        Identity::Email(s) => format!("email:{}", s.to_ascii_lowercase()),
        _ => id.to_string(),
    }
}

/// All users, indexed by identity.
#[derive(Debug, Default)]
pub struct UserDb {
    users: Vec<Arc<User>>,
    exact: HashMap<String, usize>,
    patterns: Vec<usize>,
    /// Every static home address, so that pools never hand one out.
    statics: HashSet<Ipv6Addr>,
}

impl UserDb {
    /// Builds the index; two users claiming the same identity is an error naming both.
    pub fn new(users: Vec<User>) -> Result<UserDb, String> {
        let mut db = UserDb::default();
        for u in users {
            let idx = db.users.len();
            db.statics.extend(u.home_addresses.iter().copied());
            match &u.identity {
                IdentityMatch::Exact(id) => {
                    if let Some(prev) = db.exact.insert(identity_key(id), idx) {
                        return Err(format!(
                            "users '{}' and '{}' both claim identity {id}",
                            db.users[prev].name, u.name
                        ));
                    }
                }
                IdentityMatch::DnPattern(_) => db.patterns.push(idx),
            }
            db.users.push(Arc::new(u));
        }
        Ok(db)
    }

    /// The user an authenticated identity belongs to. Exact identities win over patterns.
    pub fn lookup(&self, id: &Identity) -> Option<Arc<User>> {
        if let Some(&i) = self.exact.get(&identity_key(id)) {
            return Some(self.users[i].clone());
        }
        if let Identity::Dn(der) = id {
            for &i in &self.patterns {
                if let IdentityMatch::DnPattern(p) = &self.users[i].identity
                    && crate::auth::identity::dn_matches_pattern(p, der)
                {
                    return Some(self.users[i].clone());
                }
            }
        }
        None
    }

    /// Some user owns `a` statically.
    pub fn is_static(&self, a: Ipv6Addr) -> bool {
        self.statics.contains(&a)
    }

    pub fn users(&self) -> &[Arc<User>] {
        &self.users
    }
}
