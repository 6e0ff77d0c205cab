//! RFC 4877 / RFC 5026 rules: SA classes and their selectors, modes and reqids; which identity may
//! use which home address; MH/ICMPv6 type <-> selector port encoding.

pub mod classes;
pub mod leases;
pub mod pool;
pub mod selector;
pub mod users;

pub use classes::{ClassReqids, SaClass};
pub use leases::{
    Lease, LeaseChange, LeaseJournal, LeaseState, LeaseStore, LeaseTable, SaveHook, encode_record,
};
pub use pool::{Pool, PoolKind};
pub use users::{HomePrefix, IdentityMatch, Uniqueness, User, UserAuth, UserDb, identity_key};
