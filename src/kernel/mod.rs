//! The IPsec SA backend: what the engine asks of the kernel and what the kernel tells it.
//! `memory` is an in-process fake for tests and the demo; the XFRM backend is its own module.

pub mod memory;
mod types;
pub use types::*;
