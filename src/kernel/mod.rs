//! The IPsec SA backend: what the engine asks of the kernel and what the kernel tells it.
//! `memory` is an in-process fake for tests and the demo; `xfrm` is the Linux backend.

pub mod memory;
mod types;
pub mod xfrm;
pub use types::*;
