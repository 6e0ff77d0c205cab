//! The control socket for mobility daemons, scripts and operators (reference 003, sections 6.1
//! and 6.3): `protocol` defines the messages, `server` serves them on a Unix socket. The CLI on
//! top is `mip6-ikectl`; docs/control-protocol.md specifies the protocol for other clients.

pub mod client;
pub mod protocol;
pub mod server;

pub use server::{ControlServer, ServerOptions};
