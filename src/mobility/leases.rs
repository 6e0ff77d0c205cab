//! Leases of dynamic home addresses and delegated prefixes.
//!
//! The engine owns a [`LeaseTable`] in memory (no I/O): it hands out items of a [`Pool`], keeps
//! them unique across users, renews them for the same identity and expires them once the IKE SA
//! that held them has been gone longer than the grace period. Every change sets a flag that the
//! daemon reads (`Endpoint::take_leases_changed`) to write the whole table with [`LeaseStore`]
//! (temporary file, fsync, rename; off the engine task, several changes per write, see
//! `daemon::leases`), and the table is loaded from that file at start. Tables are
//! small (one entry per mobile node), so writing all of it keeps the file format trivial and
//! every write complete.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pool::Pool;

/// The on-disk format version.
pub const LEASE_FILE_VERSION: u32 = 1;
/// Leases a file may hold (a bound on what a corrupted or hostile file makes us allocate).
pub const MAX_LEASES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// An IKE SA of the identity holds it.
    Bound,
    /// No IKE SA holds it; it expires at `expires`.
    Released,
}

/// One home address (`prefix_len` 128) or delegated prefix given to one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The authenticated identity, as `Identity`'s display (e.g. `dn:C=CH, ..., CN=mn3`).
    pub identity: String,
    /// The user file (stem) that granted it.
    pub user: String,
    pub pool: String,
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub state: LeaseState,
    /// Unix seconds at which a released lease expires (None while bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// All leases, unique by item and by (identity, pool).
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_item: BTreeMap<(Ipv6Addr, u8), Lease>,
    /// (identity key, pool) -> item.
    by_owner: HashMap<(String, String), (Ipv6Addr, u8)>,
    /// identity key -> its items (few: one per pool), so lookups by identity stay O(1).
    by_identity: HashMap<String, Vec<(Ipv6Addr, u8)>>,
    /// Released leases by expiry, so that timers cost O(log n), not a scan.
    expiries: BTreeSet<(u64, Ipv6Addr, u8)>,
    /// Per pool name: where to find a free item without scanning the leases held.
    cursors: HashMap<String, Cursor>,
    /// Identity key -> the engine shards (one bit each) holding an IKE SA of the identity. A
    /// table shared by several shards releases an identity's leases only once none holds it;
    /// with one shard this is the shard's own "no other IKE SA of the identity" check.
    holders: HashMap<String, u64>,
    changed: bool,
}

/// A pool's free items: every index at or above `next` has never been handed out by the cursor
/// (a lease asked for by address may still sit there: skipped when reached), and `freed` holds
/// items given back since (by address value). Picking pops the lowest freed item, else takes
/// `next`: O(log n) whatever the number of leases held, where a scan from the pool's start cost
/// O(n) per handshake (~80 ns per lease held).
#[derive(Debug, Default)]
struct Cursor {
    /// The pool definition the cursor walks (a reload may redefine a pool under its name: then
    /// the cursor starts over).
    shape: (u128, u128, u8),
    next: u128,
    freed: BTreeSet<u128>,
}

impl LeaseTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table from stored leases (expired ones and duplicates dropped: first one wins).
    pub fn from_leases(leases: Vec<Lease>, now_unix: u64) -> LeaseTable {
        let mut t = LeaseTable::new();
        for l in leases {
            if (l.expires.is_some_and(|e| e <= now_unix) && l.state == LeaseState::Released)
                || l.prefix_len > 128
            {
                continue;
            }
            let item = (l.address, l.prefix_len);
            let owner = (owner_key(&l.identity), l.pool.clone());
            if t.by_item.contains_key(&item) || t.by_owner.contains_key(&owner) {
                continue;
            }
            t.index(owner, item);
            if let (LeaseState::Released, Some(e)) = (l.state, l.expires) {
                t.expiries.insert((e, item.0, item.1));
            }
            t.by_item.insert(item, l);
        }
        t
    }

    fn index(&mut self, owner: (String, String), item: (Ipv6Addr, u8)) {
        self.by_identity
            .entry(owner.0.clone())
            .or_default()
            .push(item);
        self.by_owner.insert(owner, item);
    }

    fn unindex(&mut self, owner: &(String, String)) -> Option<(Ipv6Addr, u8)> {
        let item = self.by_owner.remove(owner)?;
        if let Some(v) = self.by_identity.get_mut(&owner.0) {
            v.retain(|i| *i != item);
            if v.is_empty() {
                self.by_identity.remove(&owner.0);
            }
        }
        Some(item)
    }

    /// Every lease, ordered by address.
    pub fn list(&self) -> Vec<Lease> {
        self.by_item.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_item.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_item.is_empty()
    }

    /// The lease of `identity` in `pool`, if any.
    pub fn of(&self, identity: &str, pool: &str) -> Option<&Lease> {
        let item = self
            .by_owner
            .get(&(owner_key(identity), pool.to_string()))?;
        self.by_item.get(item)
    }

    /// Items held (bound or within grace) by `identity`, in any pool.
    pub fn items_of(&self, identity: &str) -> Vec<(Ipv6Addr, u8)> {
        self.by_identity
            .get(&owner_key(identity))
            .cloned()
            .unwrap_or_default()
    }

    /// Binds an item of `pool` to `identity`: its existing lease (renewed), else `wanted` when
    /// it is free, else the first free item. `reserved` says which items belong to someone by
    /// configuration (static home addresses). None when the pool is exhausted.
    pub fn acquire(
        &mut self,
        identity: &str,
        user: &str,
        pool: &Pool,
        wanted: Option<Ipv6Addr>,
        reserved: impl Fn(Ipv6Addr) -> bool,
        now_unix: u64,
    ) -> Option<Ipv6Addr> {
        self.expire(now_unix);
        let len = pool.item_len();
        let owner = (owner_key(identity), pool.name.clone());
        if let Some(&item) = self.by_owner.get(&owner) {
            // A lease on an address that is no longer given (a reserved identifier, from an
            // older daemon's lease file) is dropped like one the pool lost.
            if pool.contains(item.0) && item.1 == len && !pool.is_reserved(item.0) {
                if let Some(l) = self.by_item.get_mut(&item)
                    && (l.state != LeaseState::Bound || l.user != user)
                {
                    if let Some(e) = l.expires {
                        self.expiries.remove(&(e, item.0, item.1));
                    }
                    l.state = LeaseState::Bound;
                    l.expires = None;
                    l.user = user.to_string();
                    self.changed = true;
                }
                return Some(item.0);
            }
            // The pool changed under the lease (reload): it no longer counts.
            self.unindex(&owner);
            if let Some(e) = self.by_item.remove(&item).and_then(|l| l.expires) {
                self.expiries.remove(&(e, item.0, item.1));
            }
            self.give_back(&pool.name, item);
            self.changed = true;
        }
        let free = |t: &Self, a: Ipv6Addr| {
            !t.by_item.contains_key(&(a, len)) && !reserved(a) && !pool.is_reserved(a)
        };
        let pick = match wanted.filter(|&w| pool.contains(w) && free(self, w)) {
            Some(w) => Some(w),
            None => self.next_free(pool, &free),
        }?;
        self.index(owner, (pick, len));
        self.by_item.insert(
            (pick, len),
            Lease {
                identity: identity.to_string(),
                user: user.to_string(),
                pool: pool.name.clone(),
                address: pick,
                prefix_len: len,
                state: LeaseState::Bound,
                expires: None,
            },
        );
        self.changed = true;
        Some(pick)
    }

    /// The next free item of `pool` from its cursor: the lowest item given back, else the next
    /// one never handed out. Items in the way (taken by address, reserved, or from a pool
    /// redefined by a reload) are skipped; only they can be, so the walk is bounded by their
    /// number, as the old scan was.
    fn next_free(
        &mut self,
        pool: &Pool,
        free: &dyn Fn(&Self, Ipv6Addr) -> bool,
    ) -> Option<Ipv6Addr> {
        let shape = (pool.span().0, pool.span().1, pool.item_len());
        let mut c = self
            .cursors
            .remove(&pool.name)
            .filter(|c| c.shape == shape)
            .unwrap_or(Cursor {
                shape,
                ..Cursor::default()
            });
        let mut pick = None;
        while let Some(v) = c.freed.pop_first() {
            let a = Ipv6Addr::from(v);
            if pool.contains(a) && free(self, a) {
                pick = Some(a);
                break;
            }
        }
        let mut tries = (self.by_item.len() as u128).saturating_add(4097);
        while pick.is_none() && tries > 0 && c.next < pool.size() {
            tries -= 1;
            let i = c.next;
            c.next += 1;
            if let Some(a) = pool.nth(i)
                && free(self, a)
            {
                pick = Some(a);
            }
        }
        if pick.is_none() && c.next >= pool.size() {
            // Exhausted from the cursor's point of view: one bounded pass from the start finds
            // items that were freed without passing through `freed` (leases loaded from the
            // file before the cursor existed, dropped without a cursor).
            pick = (0..pool
                .size()
                .min((self.by_item.len() as u128).saturating_add(4097)))
                .filter_map(|i| pool.nth(i))
                .find(|&a| free(self, a));
        }
        self.cursors.insert(pool.name.clone(), c);
        pick
    }

    /// An item went back to its pool (expired or dropped lease).
    fn give_back(&mut self, pool: &str, item: (Ipv6Addr, u8)) {
        if let Some(c) = self.cursors.get_mut(pool) {
            c.freed.insert(u128::from(item.0));
        }
    }

    /// The identity's last IKE SA is gone: its bound leases start their grace period.
    pub fn release(&mut self, identity: &str, now_unix: u64, grace_secs: u64) {
        for item in self.items_of(identity) {
            if let Some(l) = self.by_item.get_mut(&item)
                && l.state == LeaseState::Bound
            {
                let e = now_unix.saturating_add(grace_secs);
                l.state = LeaseState::Released;
                l.expires = Some(e);
                self.expiries.insert((e, l.address, l.prefix_len));
                self.changed = true;
            }
        }
    }

    /// Engine shard `shard` (< 64) holds an IKE SA of `identity`.
    pub fn hold(&mut self, identity: &str, shard: u8) {
        *self.holders.entry(owner_key(identity)).or_insert(0) |= 1u64 << (shard % 64);
    }

    /// Engine shard `shard` has no IKE SA of `identity` left: true when no shard holds one any
    /// more (its leases may then start their grace period).
    pub fn let_go(&mut self, identity: &str, shard: u8) -> bool {
        let key = owner_key(identity);
        let rest = match self.holders.get_mut(&key) {
            Some(m) => {
                *m &= !(1u64 << (shard % 64));
                *m
            }
            None => 0,
        };
        if rest == 0 {
            self.holders.remove(&key);
        }
        rest == 0
    }

    /// Whether shard `shard` holds an IKE SA of `identity`.
    pub fn held_by(&self, identity: &str, shard: u8) -> bool {
        self.holders
            .get(&owner_key(identity))
            .is_some_and(|m| m & (1u64 << (shard % 64)) != 0)
    }

    /// Whether a shard other than `shard` holds an IKE SA of `identity`.
    pub fn held_elsewhere(&self, identity: &str, shard: u8) -> bool {
        self.holders
            .get(&owner_key(identity))
            .is_some_and(|m| m & !(1u64 << (shard % 64)) != 0)
    }

    /// Whether `identity` holds a bound lease.
    pub fn has_bound(&self, identity: &str) -> bool {
        self.items_of(identity).iter().any(|i| {
            self.by_item
                .get(i)
                .is_some_and(|l| l.state == LeaseState::Bound)
        })
    }

    /// Every bound lease starts its grace period (daemon shutdown).
    pub fn release_all(&mut self, now_unix: u64, grace_secs: u64) {
        self.holders.clear();
        for l in self.by_item.values_mut() {
            if l.state == LeaseState::Bound {
                let e = now_unix.saturating_add(grace_secs);
                l.state = LeaseState::Released;
                l.expires = Some(e);
                self.expiries.insert((e, l.address, l.prefix_len));
                self.changed = true;
            }
        }
    }

    /// Drops released leases whose grace period is over.
    pub fn expire(&mut self, now_unix: u64) {
        while let Some(&(e, a, len)) = self.expiries.first() {
            if e > now_unix {
                break;
            }
            self.expiries.pop_first();
            if let Some(l) = self.by_item.remove(&(a, len)) {
                tracing::info!(identity = %l.identity, address = %l.address, prefix_len = l.prefix_len, "lease expired");
                self.give_back(&l.pool, (a, len));
                self.unindex(&(owner_key(&l.identity), l.pool));
                self.changed = true;
            }
        }
    }

    /// The earliest expiry of a released lease (Unix seconds).
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|(e, _, _)| *e)
    }

    /// Whether the table changed since the last call (the daemon then saves it).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

/// Identities compare case-insensitively (DN text, FQDN, email), as in the user database.
fn owner_key(identity: &str) -> String {
    identity.to_ascii_lowercase()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    version: u32,
    #[serde(default, rename = "lease")]
    leases: Vec<Lease>,
}

/// Called with the leases about to be written, before each write (tests and benchmarks: to
/// count writes, or to make them slow).
pub type SaveHook = std::sync::Arc<dyn Fn(&[Lease]) + Send + Sync>;

/// The lease file: TOML, `version = 1` and one `[[lease]]` table per lease.
#[derive(Clone)]
pub struct LeaseStore {
    path: PathBuf,
    hook: Option<SaveHook>,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("path", &self.path)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl LeaseStore {
    pub fn new(path: impl Into<PathBuf>) -> LeaseStore {
        LeaseStore {
            path: path.into(),
            hook: None,
        }
    }

    /// Runs `hook` before every [`save`](Self::save).
    pub fn set_hook(&mut self, hook: SaveHook) {
        self.hook = Some(hook);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored leases; an absent file is an empty table.
    pub fn load(&self) -> Result<Vec<Lease>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: cannot read: {e}", self.path.display())),
        };
        let f: LeaseFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        if f.version != LEASE_FILE_VERSION {
            return Err(format!(
                "{}: lease file version {} is not supported (this daemon writes version {LEASE_FILE_VERSION})",
                self.path.display(),
                f.version
            ));
        }
        if f.leases.len() > MAX_LEASES {
            return Err(format!(
                "{}: more than {MAX_LEASES} leases",
                self.path.display()
            ));
        }
        Ok(f.leases)
    }

    /// Writes all leases atomically: a temporary file next to the real one, fsync, rename,
    /// then fsync of the directory so that the rename itself survives a crash.
    pub fn save(&self, leases: &[Lease]) -> std::io::Result<()> {
        if let Some(h) = &self.hook {
            h(leases);
        }
        let f = LeaseFile {
            version: LEASE_FILE_VERSION,
            leases: leases.to_vec(),
        };
        let text = toml::to_string(&f).map_err(std::io::Error::other)?;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "leases".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut file = create_private(&tmp)?;
            file.write_all(
                b"# mip6-iked lease store: written by the daemon, do not edit while it runs.\n",
            )?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Creates `path` as a new file: never through a symbolic link and never reusing a file that is
/// there (O_EXCL|O_NOFOLLOW), so whoever can write to the lease directory cannot make us
/// overwrite another file. A leftover from a crash (or a planted link) is removed first:
/// unlinking removes the link itself, never its target.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(0o644)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobility::PoolKind;

    #[test]
    fn save_never_follows_a_planted_temporary_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let store = LeaseStore::new(dir.path().join("leases.toml"));
        std::os::unix::fs::symlink(&victim, dir.path().join(".leases.toml.tmp")).unwrap();
        store.save(&[]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(store.load().unwrap(), vec![]);
        assert!(!dir.path().join(".leases.toml.tmp").exists());
    }

    #[test]
    fn an_identity_held_by_two_shards_keeps_its_lease_until_both_let_go() {
        let p = Pool {
            name: "dyn".into(),
            kind: PoolKind::Addresses {
                first: "2001:db8:1::10".parse().unwrap(),
                last: "2001:db8:1::20".parse().unwrap(),
            },
            lifetime: 0,
        };
        let mut t = LeaseTable::new();
        t.hold("fqdn:A", 0);
        let a = t.acquire("fqdn:A", "a", &p, None, |_| false, 0).unwrap();
        // The same identity on shard 1 gets the same address (identities compare as text,
        // case-insensitively).
        t.hold("FQDN:a", 1);
        assert_eq!(t.acquire("fqdn:a", "a", &p, None, |_| false, 0), Some(a));
        assert!(t.held_elsewhere("fqdn:a", 0) && t.held_elsewhere("fqdn:a", 1));
        // Shard 0 lets go: shard 1 still holds it.
        assert!(!t.let_go("fqdn:A", 0));
        assert!(t.held_elsewhere("fqdn:a", 0) && !t.held_elsewhere("fqdn:a", 1));
        assert!(!t.held_by("fqdn:a", 0) && t.held_by("fqdn:a", 1));
        // Another identity never gets it.
        assert_ne!(t.acquire("fqdn:B", "b", &p, None, |_| false, 0), Some(a));
        assert!(t.let_go("fqdn:A", 1));
        assert!(!t.holders.contains_key("fqdn:a"));
        // A shard that never held it lets go: nobody holds it.
        assert!(t.let_go("fqdn:C", 3));
        t.hold("fqdn:D", 63);
        t.hold("fqdn:D", 2);
        t.release_all(0, 10);
        assert!(t.holders.is_empty());
    }

    #[test]
    fn reserved_identifiers_are_never_leased() {
        let p = Pool {
            name: "link".into(),
            kind: PoolKind::Addresses {
                first: "2001:db8:1::".parse().unwrap(),
                last: "2001:db8:1::2".parse().unwrap(),
            },
            lifetime: 0,
        };
        let mut t = LeaseTable::new();
        let a = t.acquire("fqdn:A", "a", &p, None, |_| false, 0).unwrap();
        assert_eq!(a, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        // Asked for by name: refused too.
        let b = t
            .acquire(
                "fqdn:B",
                "b",
                &p,
                Some("2001:db8:1::".parse().unwrap()),
                |_| false,
                0,
            )
            .unwrap();
        assert_eq!(b, "2001:db8:1::2".parse::<Ipv6Addr>().unwrap());
        // A stored lease on it (an older daemon's file) is not renewed.
        let mut t = LeaseTable::from_leases(
            vec![Lease {
                identity: "fqdn:A".into(),
                user: "a".into(),
                pool: "link".into(),
                address: "2001:db8:1::".parse().unwrap(),
                prefix_len: 128,
                state: LeaseState::Bound,
                expires: None,
            }],
            0,
        );
        let a = t.acquire("fqdn:A", "a", &p, None, |_| false, 0).unwrap();
        assert_eq!(a, "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
    }

    fn pool() -> Pool {
        Pool {
            name: "dyn".into(),
            kind: PoolKind::Addresses {
                first: "2001:db8:1::10".parse().unwrap(),
                last: "2001:db8:1::13".parse().unwrap(),
            },
            lifetime: 0,
        }
    }

    #[test]
    fn renewal_reservation_release_and_expiry() {
        let p = pool();
        let mut t = LeaseTable::new();
        let reserved = |a: Ipv6Addr| a == "2001:db8:1::10".parse::<Ipv6Addr>().unwrap();
        let a = t.acquire("fqdn:A", "a", &p, None, reserved, 100).unwrap();
        assert_eq!(
            a,
            "2001:db8:1::11".parse::<Ipv6Addr>().unwrap(),
            "static address skipped"
        );
        // The same identity (any case) renews; another one gets the next item.
        assert_eq!(t.acquire("FQDN:a", "a", &p, None, reserved, 100), Some(a));
        let b = t
            .acquire("fqdn:B", "b", &p, Some(a), reserved, 100)
            .unwrap();
        assert_ne!(a, b, "a proposal held by another identity is not given");
        t.release("fqdn:A", 200, 50);
        assert_eq!(t.next_expiry(), Some(250));
        t.expire(249);
        assert_eq!(t.len(), 2);
        t.expire(250);
        assert_eq!(t.len(), 1);
        assert!(t.of("fqdn:A", "dyn").is_none());
        assert!(t.take_changed());
        assert!(!t.take_changed());
    }

    #[test]
    fn the_cursor_hands_out_in_order_reuses_freed_items_and_follows_redefinitions() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let p = Pool {
            name: "big".into(),
            kind: PoolKind::Addresses {
                first: v6("2001:db8:1::1:0"),
                last: v6("2001:db8:1::ffff:ffff"),
            },
            lifetime: 0,
        };
        let mut t = LeaseTable::new();
        let id = |i: u32| format!("fqdn:mn{i}");
        // 20,000 leases: each new one is the next address (the old scan restarted at the pool's
        // start every time; the cursor continues where it stopped).
        for i in 0..20_000u32 {
            let a = t.acquire(&id(i), "u", &p, None, |_| false, 0).unwrap();
            assert_eq!(
                u128::from(a),
                u128::from(v6("2001:db8:1::1:0")) + u128::from(i)
            );
        }
        // One asked for by address far ahead is skipped when the cursor gets there.
        let ahead = v6("2001:db8:1::1:4e21"); // index 20,001
        assert_eq!(
            t.acquire("fqdn:x", "u", &p, Some(ahead), |_| false, 0),
            Some(ahead)
        );
        assert_eq!(
            t.acquire("fqdn:y", "u", &p, None, |_| false, 0),
            Some(v6("2001:db8:1::1:4e20"))
        );
        assert_eq!(
            t.acquire("fqdn:z", "u", &p, None, |_| false, 0),
            Some(v6("2001:db8:1::1:4e22"))
        );
        // Expired leases go back, lowest first.
        t.release(&id(7), 10, 5);
        t.release(&id(3), 10, 5);
        t.expire(15);
        assert_eq!(
            t.acquire("fqdn:n1", "u", &p, None, |_| false, 20),
            Some(v6("2001:db8:1::1:3"))
        );
        assert_eq!(
            t.acquire("fqdn:n2", "u", &p, None, |_| false, 20),
            Some(v6("2001:db8:1::1:7"))
        );
        assert_eq!(
            t.acquire("fqdn:n3", "u", &p, None, |_| false, 20),
            Some(v6("2001:db8:1::1:4e23"))
        );
        // A freed item that became reserved (a static home address added by a reload) is not
        // handed out from the freed list.
        t.release(&id(9), 30, 0);
        t.expire(30);
        let nine = v6("2001:db8:1::1:9");
        let got = t
            .acquire("fqdn:n4", "u", &p, None, |a| a == nine, 30)
            .unwrap();
        assert_eq!(got, v6("2001:db8:1::1:4e24"));
        // The pool redefined under the same name (reload): the cursor starts over in it.
        let small = Pool {
            name: "big".into(),
            kind: PoolKind::Addresses {
                first: v6("2001:db8:2::10"),
                last: v6("2001:db8:2::11"),
            },
            lifetime: 0,
        };
        assert_eq!(
            t.acquire("fqdn:m1", "u", &small, None, |_| false, 30),
            Some(v6("2001:db8:2::10"))
        );
        assert_eq!(
            t.acquire("fqdn:m2", "u", &small, None, |_| false, 30),
            Some(v6("2001:db8:2::11"))
        );
        assert_eq!(t.acquire("fqdn:m3", "u", &small, None, |_| false, 30), None);
        // Exhausted, then one expires: found again although the cursor is at the end.
        t.release("fqdn:m1", 40, 0);
        t.expire(40);
        assert_eq!(
            t.acquire("fqdn:m3", "u", &small, None, |_| false, 40),
            Some(v6("2001:db8:2::10"))
        );
    }

    #[test]
    fn a_table_loaded_from_the_file_does_not_hand_out_its_leases_again() {
        let p = pool();
        let stored: Vec<Lease> = ["2001:db8:1::10", "2001:db8:1::12"]
            .iter()
            .enumerate()
            .map(|(i, a)| Lease {
                identity: format!("fqdn:old{i}"),
                user: "u".into(),
                pool: "dyn".into(),
                address: a.parse().unwrap(),
                prefix_len: 128,
                state: LeaseState::Bound,
                expires: None,
            })
            .collect();
        let mut t = LeaseTable::from_leases(stored, 0);
        let got: Vec<Ipv6Addr> = (0..2)
            .map(|i| {
                t.acquire(&format!("fqdn:new{i}"), "u", &p, None, |_| false, 0)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "2001:db8:1::11".parse::<Ipv6Addr>().unwrap(),
                "2001:db8:1::13".parse().unwrap()
            ]
        );
        assert_eq!(t.acquire("fqdn:new2", "u", &p, None, |_| false, 0), None);
    }

    #[test]
    fn store_round_trip_versions_and_restart_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = LeaseStore::new(dir.path().join("leases.toml"));
        assert_eq!(store.load().unwrap(), vec![], "no file: no leases");
        let p = pool();
        let mut t = LeaseTable::new();
        t.acquire("fqdn:A", "a", &p, None, |_| false, 0).unwrap();
        t.acquire("fqdn:B", "b", &p, None, |_| false, 0).unwrap();
        t.release("fqdn:B", 0, 10);
        store.save(&t.list()).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back, t.list());
        // Expired at load time: dropped.
        let t2 = LeaseTable::from_leases(back, 10);
        assert_eq!(t2.len(), 1);
        std::fs::write(store.path(), "version = 2\n").unwrap();
        assert!(
            store
                .load()
                .unwrap_err()
                .contains("version 2 is not supported")
        );
        std::fs::write(store.path(), "version = 1\nbogus = 1\n").unwrap();
        assert!(store.load().unwrap_err().contains("bogus"));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
