//! RFC 4877 / RFC 5026 rules: SA classes and their selectors, modes and reqids; which identity may
//! use which home address; MH/ICMPv6 type <-> selector port encoding.

pub mod classes;
pub mod selector;
pub mod users;

pub use classes::{ClassReqids, SaClass};
pub use users::{IdentityMatch, User, UserAuth, UserDb};
