//! Leases of dynamic home addresses and delegated prefixes.
//!
//! The engine owns a [`LeaseTable`] in memory (no I/O): it hands out items of a [`Pool`], keeps
//! them unique across users, renews them for the same identity and expires them once the IKE SA
//! that held them has been gone longer than the grace period. Every change sets a flag that the
//! daemon reads (`Endpoint::take_leases_changed`) and records the item in a dirty set; the
//! daemon's writer takes only those items' states (`Endpoint::take_lease_changes`) and makes
//! them durable with a [`LeaseJournal`] (off the engine task, several changes per write, see
//! `daemon::leases`). On disk: a snapshot ([`LeaseStore`], TOML, written atomically) and a
//! journal next to it, one checksummed record per change, appended and fsynced per write and
//! folded into a fresh snapshot every O(n) changes; so a write costs O(changes), not O(leases
//! held). The table is loaded from both at start.

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
    /// Items whose lease changed (granted, renewed, released, dropped) since the last
    /// [`take_changes`](Self::take_changes): what the lease journal appends, so that a write
    /// costs O(changes), not O(leases held). At most one entry per item touched.
    dirty: BTreeSet<(Ipv6Addr, u8)>,
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
                    self.dirty.insert(item);
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
            self.dirty.insert(item);
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
        self.dirty.insert((pick, len));
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
                self.dirty.insert(item);
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
                self.dirty.insert((l.address, l.prefix_len));
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
                self.dirty.insert((a, len));
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

    /// The current state of every item whose lease changed since the last call: the lease, or
    /// its removal. O(changes): the lease journal writes only these.
    pub fn take_changes(&mut self) -> Vec<LeaseChange> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(
                |(address, prefix_len)| match self.by_item.get(&(address, prefix_len)) {
                    Some(l) => LeaseChange::Set(l.clone()),
                    None => LeaseChange::Del {
                        address,
                        prefix_len,
                    },
                },
            )
            .collect()
    }
}

/// Identities compare case-insensitively (DN text, FQDN, email), as in the user database.
fn owner_key(identity: &str) -> String {
    identity.to_ascii_lowercase()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    version: u32,
    #[serde(default, rename = "lease")]
    leases: Vec<Lease>,
}

/// [`LeaseFile`] as written: borrowed leases, so that a snapshot of a large table is not cloned.
#[derive(Serialize)]
struct LeaseFileOut<'a> {
    version: u32,
    #[serde(rename = "lease")]
    leases: Vec<&'a Lease>,
}

/// One change of the lease table: the state of one item (address, prefix length) after it,
/// which is also one record of the lease journal. Records set an item's whole state (never a
/// difference), so replaying them is idempotent: the last record of an item wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum LeaseChange {
    /// The item's lease, as it stands.
    Set(Lease),
    /// The item is no longer leased.
    Del { address: Ipv6Addr, prefix_len: u8 },
}

impl LeaseChange {
    fn item(&self) -> (Ipv6Addr, u8) {
        match self {
            LeaseChange::Set(l) => (l.address, l.prefix_len),
            LeaseChange::Del {
                address,
                prefix_len,
            } => (*address, *prefix_len),
        }
    }

    fn apply(self, table: &mut BTreeMap<(Ipv6Addr, u8), Lease>) {
        let item = self.item();
        match self {
            LeaseChange::Set(l) => {
                table.insert(item, l);
            }
            LeaseChange::Del { .. } => {
                table.remove(&item);
            }
        }
    }
}

/// Journal records a file may hold when loaded: the writer compacts past max(4096, leases
/// held), so its own journals stay well below (a bound on what a corrupted file makes us
/// allocate).
pub const MAX_JOURNAL_RECORDS: usize = 4 * MAX_LEASES;
/// The journal is compacted into a fresh snapshot once it holds more records than this or than
/// the table holds leases, whichever is more: a snapshot costs O(n), and comes every O(n)
/// changes, so O(1) per change.
pub const JOURNAL_COMPACT_MIN: usize = 4096;

/// Appends one journal record to `out`: `<FNV-1a 64 of the JSON, 16 hex digits> <JSON>\n`. The
/// checksum and the newline make every record self-delimiting: a record cut short by a crash
/// (or filled with garbage by a file system that extended the file before writing its data)
/// fails the check.
pub fn encode_record(change: &LeaseChange, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"0000000000000000 ");
    // Serializing our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, change);
    let sum = fnv1a64(&out[start + 17..]);
    out[start..start + 16].copy_from_slice(format!("{sum:016x}").as_bytes());
    out.push(b'\n');
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A journal as read: its whole records, and how many bytes at its end were not one (a torn
/// last write, ignored).
#[derive(Debug, Default, PartialEq)]
pub struct JournalRead {
    pub changes: Vec<LeaseChange>,
    pub torn_bytes: usize,
}

/// Reads journal records up to the first one that is not whole. Every record the daemon
/// acknowledged was fsynced before any later one was written, and after a failed append the
/// writer never appends again before a fresh snapshot; so a bad record and whatever follows it
/// belong to the one write that did not complete, whose replies never left: ignoring them is
/// safe. A whole record (checksum right) that does not parse is an error: the file is not ours
/// to guess at.
pub fn decode_journal(data: &[u8]) -> Result<JournalRead, String> {
    let mut r = JournalRead::default();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let line = &rest[..end];
        let whole = line.len() > 17
            && line[16] == b' '
            && std::str::from_utf8(&line[..16])
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                == Some(fnv1a64(&line[17..]));
        if !whole {
            break;
        }
        if r.changes.len() >= MAX_JOURNAL_RECORDS {
            return Err(format!("more than {MAX_JOURNAL_RECORDS} journal records"));
        }
        let change = serde_json::from_slice(&line[17..])
            .map_err(|e| format!("journal record {}: {e}", r.changes.len() + 1))?;
        r.changes.push(change);
        rest = &rest[end + 1..];
    }
    r.torn_bytes = rest.len();
    Ok(r)
}

/// Called with the leases about to be written, before each write (tests and benchmarks: to
/// count writes, or to make them slow): the whole table for [`LeaseStore::save`], the leases
/// set by the batch for [`LeaseJournal::write`].
pub type SaveHook = std::sync::Arc<dyn Fn(&[Lease]) + Send + Sync>;

/// The lease file: TOML, `version = 1` and one `[[lease]]` table per lease (the snapshot), and
/// next to it `<file>.journal`, the changes since that snapshot, one record a line (see
/// [`encode_record`]). Loading reads the snapshot, then replays the journal.
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

    /// Runs `hook` before every write ([`save`](Self::save), [`LeaseJournal::write`]).
    pub fn set_hook(&mut self, hook: SaveHook) {
        self.hook = Some(hook);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal: the snapshot's path with `.journal` appended.
    pub fn journal_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// The stored leases: the snapshot with the journal replayed over it; an absent file is an
    /// empty table, an absent journal one without changes. A torn end of the journal is
    /// ignored (with a warning); anything else that cannot be read is an error.
    pub fn load(&self) -> Result<Vec<Lease>, String> {
        let leases = self.load_snapshot()?;
        let journal = self.read_journal()?;
        if journal.torn_bytes > 0 {
            tracing::warn!(file = %self.journal_path().display(), records = journal.changes.len(),
                ignored_bytes = journal.torn_bytes,
                "the lease journal ends in an incomplete record (a write cut short by a crash, never acknowledged): ignored");
        }
        if journal.changes.is_empty() {
            return Ok(leases);
        }
        // By item, the first of duplicates kept (as `LeaseTable::from_leases` does).
        let mut table = BTreeMap::new();
        for l in leases {
            table.entry((l.address, l.prefix_len)).or_insert(l);
        }
        for c in journal.changes {
            c.apply(&mut table);
        }
        if table.len() > MAX_LEASES {
            return Err(format!(
                "{}: more than {MAX_LEASES} leases",
                self.path.display()
            ));
        }
        Ok(table.into_values().collect())
    }

    fn load_snapshot(&self) -> Result<Vec<Lease>, String> {
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

    /// The journal's whole records (none without a journal).
    pub fn read_journal(&self) -> Result<JournalRead, String> {
        let path = self.journal_path();
        match std::fs::read(&path) {
            Ok(data) => decode_journal(&data).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(JournalRead::default()),
            Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
        }
    }

    /// Writes all leases atomically (see [`write_snapshot`](Self::write_snapshot)) and removes
    /// the journal, whose changes the snapshot holds.
    pub fn save(&self, leases: &[Lease]) -> std::io::Result<()> {
        if let Some(h) = &self.hook {
            h(leases);
        }
        self.write_snapshot(leases.iter().collect())?;
        match std::fs::remove_file(self.journal_path()) {
            Ok(()) => sync_dir(self.dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Writes the snapshot atomically: a temporary file next to the real one, fsync, rename,
    /// then fsync of the directory so that the rename itself survives a crash. The journal is
    /// left alone: its records must already be in `leases` (replaying them again changes
    /// nothing, as each sets an item's whole state).
    fn write_snapshot(&self, leases: Vec<&Lease>) -> std::io::Result<()> {
        let f = LeaseFileOut {
            version: LEASE_FILE_VERSION,
            leases,
        };
        let text = toml::to_string(&f).map_err(std::io::Error::other)?;
        let dir = self.dir();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "leases".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut file = create_private(&tmp, false)?;
            file.write_all(
                b"# mip6-iked lease store: written by the daemon, do not edit while it runs.\n",
            )?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(dir);
        Ok(())
    }

    /// Replaces the journal with an empty one, open for appending (after a snapshot).
    fn new_journal(&self) -> std::io::Result<std::fs::File> {
        let file = create_private(&self.journal_path(), true)?;
        file.sync_all()?;
        sync_dir(self.dir());
        Ok(file)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The writer's side of the lease file: its own copy of the table, kept up to date with the
/// changes it writes, so that it never asks the engine for the whole table. A write appends one
/// record per change to the journal and fsyncs it (O(changes)); past max(4096, leases held)
/// records it writes a fresh snapshot from its copy and starts an empty journal (O(n) every
/// O(n) changes). The first write after start, and the one after a failed append, is such a
/// snapshot too: it also drops a torn end the journal may have.
///
/// Crash safety: the snapshot is renamed into place (and the directory fsynced) before the
/// journal is emptied, and it is taken after the batch was appended, so a crash in between
/// leaves a journal whose every record the snapshot already holds; replaying it sets each
/// item to the state the snapshot has.
pub struct LeaseJournal {
    store: LeaseStore,
    table: BTreeMap<(Ipv6Addr, u8), Lease>,
    /// The journal, open for appending (None: the next write is a snapshot).
    file: Option<std::fs::File>,
    /// Records in the journal.
    records: usize,
    /// Records appended and snapshots written, since start.
    pub appended: u64,
    pub snapshots: u64,
}

impl LeaseJournal {
    /// The writer for `store`, whose table is `leases` (the engine's, as loaded).
    pub fn new(store: LeaseStore, leases: Vec<Lease>) -> LeaseJournal {
        LeaseJournal {
            store,
            table: leases
                .into_iter()
                .map(|l| ((l.address, l.prefix_len), l))
                .collect(),
            file: None,
            records: 0,
            appended: 0,
            snapshots: 0,
        }
    }

    pub fn store(&self) -> &LeaseStore {
        &self.store
    }

    pub fn set_hook(&mut self, hook: SaveHook) {
        self.store.set_hook(hook);
    }

    /// Leases in the writer's copy.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Records in the journal file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Makes `changes` durable: appended to the journal and fsynced (or, when due, in a fresh
    /// snapshot). Ok means they are on disk. After an error the changes stay in the copy and
    /// the next write is a snapshot, which holds them.
    pub fn write(&mut self, changes: Vec<LeaseChange>) -> std::io::Result<()> {
        let set: Option<Vec<Lease>> = self.store.hook.as_ref().map(|_| {
            changes
                .iter()
                .filter_map(|c| match c {
                    LeaseChange::Set(l) => Some(l.clone()),
                    LeaseChange::Del { .. } => None,
                })
                .collect()
        });
        let mut buf = Vec::with_capacity(changes.len() * 200);
        for c in &changes {
            encode_record(c, &mut buf);
        }
        let n = changes.len();
        for c in changes {
            c.apply(&mut self.table);
        }
        // Taken before any I/O (or the hook): should this write fail or panic halfway, nothing
        // is ever appended after its torn record, and the changes, in the copy, go into the
        // snapshot the next write makes.
        let file = self.file.take();
        if let (Some(h), Some(set)) = (&self.store.hook, set) {
            h(&set);
        }
        let Some(mut file) = file else {
            return self.compact();
        };
        if n == 0 {
            self.file = Some(file);
            return Ok(());
        }
        file.write_all(&buf)?;
        file.sync_data()?;
        self.file = Some(file);
        self.records += n;
        self.appended += n as u64;
        if self.records > JOURNAL_COMPACT_MIN.max(self.table.len())
            && let Err(e) = self.compact()
        {
            // The changes are on disk (appended): only the compaction waits, for the next write.
            tracing::warn!(file = %self.store.path().display(), "cannot compact the lease journal: {e}; trying again on the next write");
        }
        Ok(())
    }

    /// Writes the copy as a fresh snapshot, then starts an empty journal.
    pub fn compact(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.store.write_snapshot(self.table.values().collect())?;
        self.file = Some(self.store.new_journal()?);
        self.records = 0;
        self.snapshots += 1;
        Ok(())
    }
}

/// Creates `path` as a new file: never through a symbolic link and never reusing a file that is
/// there (O_EXCL|O_NOFOLLOW), so whoever can write to the lease directory cannot make us
/// overwrite another file. A leftover from a crash (or a planted link) is removed first:
/// unlinking removes the link itself, never its target. `append`: opened with O_APPEND.
fn create_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .append(append)
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

    fn big_pool() -> Pool {
        Pool {
            name: "big".into(),
            kind: PoolKind::Addresses {
                first: "2001:db8:1::1:0".parse().unwrap(),
                last: "2001:db8:1::ffff:ffff".parse().unwrap(),
            },
            lifetime: 0,
        }
    }

    fn lines(path: &Path) -> usize {
        std::fs::read(path)
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// A table, its journal writer, and the changes flushed through it as one write each.
    struct Setup {
        _dir: tempfile::TempDir,
        store: LeaseStore,
        table: LeaseTable,
        journal: LeaseJournal,
    }

    impl Setup {
        fn new(held: u32) -> Setup {
            let dir = tempfile::tempdir().unwrap();
            let store = LeaseStore::new(dir.path().join("leases.toml"));
            let mut table = LeaseTable::new();
            let p = big_pool();
            for i in 0..held {
                table
                    .acquire(&format!("fqdn:held{i}"), "u", &p, None, |_| false, 0)
                    .unwrap();
            }
            let journal = LeaseJournal::new(store.clone(), Vec::new());
            let mut s = Setup {
                _dir: dir,
                store,
                table,
                journal,
            };
            s.flush();
            s
        }

        fn flush(&mut self) -> usize {
            let c = self.table.take_changes();
            let n = c.len();
            self.journal.write(c).unwrap();
            n
        }

        fn loaded(&self) -> Vec<Lease> {
            self.store.load().unwrap()
        }
    }

    #[test]
    fn the_journal_appends_one_record_per_change_and_replays_upserts_and_removals() {
        let mut s = Setup::new(1000);
        // The first write is a snapshot (it also drops a torn end left by a crash).
        assert_eq!((s.journal.snapshots, s.journal.records()), (1, 0));
        assert_eq!(s.loaded(), s.table.list());
        let snapshot = std::fs::read(s.store.path()).unwrap();
        // Ten changes in one write: ten records appended, the snapshot untouched (not ten times
        // the table).
        let p = big_pool();
        for i in 0..10 {
            s.table
                .acquire(&format!("fqdn:new{i}"), "u", &p, None, |_| false, 0)
                .unwrap();
        }
        assert_eq!(s.flush(), 10);
        assert_eq!(lines(&s.store.journal_path()), 10);
        assert_eq!(s.journal.appended, 10);
        assert_eq!(std::fs::read(s.store.path()).unwrap(), snapshot);
        assert_eq!(s.loaded(), s.table.list());
        // A release (upsert of the same item) and an expiry (removal), replayed.
        s.table.release("fqdn:new3", 10, 5);
        s.table.release("fqdn:held7", 10, 100);
        assert_eq!(s.flush(), 2);
        s.table.expire(15);
        assert_eq!(s.flush(), 1);
        assert_eq!(lines(&s.store.journal_path()), 13);
        let loaded = s.loaded();
        assert_eq!(loaded, s.table.list());
        assert!(!loaded.iter().any(|l| l.identity == "fqdn:new3"));
        assert!(
            loaded
                .iter()
                .any(|l| l.identity == "fqdn:held7" && l.state == LeaseState::Released)
        );
        // Nothing changed: nothing appended.
        assert_eq!(s.flush(), 0);
        assert_eq!(lines(&s.store.journal_path()), 13);
        // Same modes as the snapshot.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&s.store.journal_path()), mode(s.store.path()));
    }

    #[test]
    fn a_torn_end_of_the_journal_is_ignored_and_a_bad_whole_record_is_an_error() {
        let mut s = Setup::new(3);
        let p = big_pool();
        s.table
            .acquire("fqdn:a", "u", &p, None, |_| false, 0)
            .unwrap();
        s.flush();
        let good = s.table.list();
        let whole = std::fs::read(s.store.journal_path()).unwrap();
        // The next write, cut short by a crash: half a record.
        let mut rec = Vec::new();
        encode_record(
            &LeaseChange::Del {
                address: good[0].address,
                prefix_len: 128,
            },
            &mut rec,
        );
        let mut torn = whole.clone();
        torn.extend_from_slice(&rec[..rec.len() / 2]);
        std::fs::write(s.store.journal_path(), &torn).unwrap();
        assert_eq!(s.loaded(), good);
        assert_eq!(
            s.store.read_journal().unwrap().torn_bytes,
            rec.len() / 2,
            "the torn record is seen and ignored"
        );
        // A whole line whose checksum fails (garbage the file system left), with a record after
        // it: both belong to the write that did not complete.
        let mut bad = whole.clone();
        bad.extend_from_slice(b"0123456789abcdef {\"del\":{}}\n");
        bad.extend_from_slice(&rec);
        std::fs::write(s.store.journal_path(), &bad).unwrap();
        assert_eq!(s.loaded(), good);
        // Without the garbage, the removal applies.
        let mut ok = whole.clone();
        ok.extend_from_slice(&rec);
        std::fs::write(s.store.journal_path(), &ok).unwrap();
        assert_eq!(s.loaded(), good[1..]);
        // A record with a right checksum that is not ours: the start stops.
        let mut strange = Vec::new();
        let json = br#"{"renamed":{}}"#;
        strange.extend_from_slice(format!("{:016x} ", fnv1a64(json)).as_bytes());
        strange.extend_from_slice(json);
        strange.push(b'\n');
        std::fs::write(s.store.journal_path(), &strange).unwrap();
        assert!(s.store.load().unwrap_err().contains("journal record 1"));
        // The next write after start is a snapshot, and starts the journal over.
        let mut j = LeaseJournal::new(s.store.clone(), good.clone());
        j.write(Vec::new()).unwrap();
        assert_eq!(std::fs::read(s.store.journal_path()).unwrap(), b"");
        assert_eq!(s.loaded(), good);
    }

    #[test]
    fn compaction_writes_a_snapshot_and_a_stale_journal_replays_to_the_same_table() {
        let mut s = Setup::new(100);
        let p = big_pool();
        // Past 4096 records: a snapshot, and the journal starts over.
        let mut n = 0u64;
        while s.journal.snapshots == 1 {
            n += 1;
            s.table
                .acquire(&format!("fqdn:v{n}"), "u", &p, None, |_| false, n)
                .unwrap();
            s.flush();
            s.table.release(&format!("fqdn:v{n}"), n, 0);
            s.table.expire(n);
            s.flush();
        }
        // One record per change, two per round: the 4097th record (the first of its round)
        // made the snapshot; the round's second went into the new journal.
        assert_eq!(n, JOURNAL_COMPACT_MIN as u64 / 2 + 1);
        assert_eq!(s.journal.records(), 1);
        assert_eq!(lines(&s.store.journal_path()), 1);
        assert_eq!(s.loaded(), s.table.list());
        // A crash between the snapshot's rename and the journal's emptying leaves the journal
        // of before: its records are in the snapshot, and replaying them changes nothing.
        for i in 0..50 {
            s.table
                .acquire(&format!("fqdn:w{i}"), "u", &p, None, |_| false, n)
                .unwrap();
            s.table.release(&format!("fqdn:held{i}"), n, 0);
            s.flush();
        }
        s.table.expire(n);
        s.flush();
        let before = std::fs::read(s.store.journal_path()).unwrap();
        assert!(!before.is_empty());
        s.journal.compact().unwrap();
        assert_eq!(lines(&s.store.journal_path()), 0);
        std::fs::write(s.store.journal_path(), &before).unwrap();
        assert_eq!(s.loaded(), s.table.list());
        assert_eq!(s.table.len(), 100 + 50 - 50);
        // `save` (a whole table) drops the journal, whose records it holds.
        s.store.save(&s.table.list()).unwrap();
        assert!(!s.store.journal_path().exists());
        assert_eq!(s.loaded(), s.table.list());
    }

    #[test]
    fn a_failed_append_is_followed_by_a_snapshot_that_holds_its_changes() {
        let mut s = Setup::new(5);
        let p = big_pool();
        s.table
            .acquire("fqdn:a", "u", &p, None, |_| false, 0)
            .unwrap();
        // The append fails (the handle made read-only: as a full disk would).
        s.journal.file = Some(std::fs::File::open(s.store.journal_path()).unwrap());
        assert!(s.journal.write(s.table.take_changes()).is_err());
        assert!(!s.loaded().iter().any(|l| l.identity == "fqdn:a"));
        // The retry has nothing new from the engine (its changes were taken): the writer's
        // copy holds them, and the write after a failure is a snapshot.
        s.journal.write(s.table.take_changes()).unwrap();
        assert_eq!(s.journal.snapshots, 2, "no journal open: a snapshot");
        assert_eq!(s.loaded(), s.table.list());
    }
}
