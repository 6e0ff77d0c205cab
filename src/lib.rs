//! mip6-ike: an IKEv2 key manager for Mobile IPv6.
//!
//! Layout (one idea per module): `wire` (bytes <-> typed IKEv2 messages), `crypto` (transforms and
//! key material), `auth` (identities, certificates, signatures, PSK), `ike` (the protocol engine,
//! free of I/O), `mobility` (RFC 4877 rules: SA classes, home-address authorization), `policy`
//! (configuration files), `kernel` (the IPsec SA backend trait and an in-memory backend),
//! `daemon` (tokio glue).
// deny, not forbid: src/daemon/udp/sys.rs allows one raw setsockopt (IPsec bypass policies).
#![deny(unsafe_code)]

pub mod auth;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod ike;
pub mod kernel;
pub mod load;
pub mod mobility;
pub mod policy;
pub mod wire;

#[cfg(test)]
mod testutil;
