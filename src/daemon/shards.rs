//! Engine shards (`[engine] shards`): N Endpoints, each owning disjoint IKE SAs. The daemon's
//! task keeps everything that is not protocol work (sockets, the kernel backend, the lease
//! file, the control socket, events); with more than one shard, each Endpoint gets a thread of
//! its own that runs its datagrams and timers, which is where the CPU goes (DH, signatures).
//!
//! Datagrams are routed without a table: our IKE SPI carries the shard in its top byte (see
//! `ike::shard`), and an IKE_SA_INIT request, which has no SPI of ours yet, goes by a keyed hash
//! of (peer address, SPIi), so its retransmissions and its COOKIE retry land on the same shard.
//! Each Endpoint sits behind a mutex: its thread holds it for one call, the daemon's task for
//! draining its outputs or one command, and only the daemon's task ever holds two (in index
//! order), so no lock order can deadlock.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use crate::ike::{Endpoint, shard_of_spi};

/// Datagrams waiting for one shard's thread; beyond, the readers wait (as with one shard).
pub(super) const SHARD_QUEUE: usize = 1024;

/// One Endpoint and what wakes its thread.
pub(crate) struct Shard {
    ep: Mutex<Endpoint>,
    /// The daemon's task changed the Endpoint (a command, a kernel event): its thread looks at
    /// its next deadline again.
    wake: Notify,
    stop: AtomicBool,
}

impl Shard {
    pub fn new(ep: Endpoint) -> Shard {
        Shard {
            ep: Mutex::new(ep),
            wake: Notify::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// The Endpoint, for a call that may change its timers (its thread is woken afterwards).
    pub fn lock(&self) -> EpGuard<'_> {
        EpGuard {
            g: self.raw(),
            wake: &self.wake,
        }
    }

    /// The Endpoint, for draining outputs or reading (no wake-up).
    pub fn raw(&self) -> MutexGuard<'_, Endpoint> {
        // A panic in an engine call is a bug that already cost that call; the Endpoint's maps
        // stay usable, so the other SAs go on.
        self.ep.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A locked Endpoint that wakes its shard's thread when released.
pub(crate) struct EpGuard<'a> {
    g: MutexGuard<'a, Endpoint>,
    wake: &'a Notify,
}

impl std::ops::Deref for EpGuard<'_> {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.g
    }
}

impl std::ops::DerefMut for EpGuard<'_> {
    fn deref_mut(&mut self) -> &mut Endpoint {
        &mut self.g
    }
}

impl Drop for EpGuard<'_> {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// IKE_SA_INIT exchange type and the header flags (RFC 7296 3.1).
const IKE_SA_INIT: u8 = 34;
const FLAG_INITIATOR: u8 = 0x08;
const FLAG_RESPONSE: u8 = 0x20;

/// Which of `count` shards takes an IKE message from `remote`. Our SPI is SPIr when the
/// sender set the Initiator flag (we are the responder), else SPIi, as the engine looks it up;
/// an IKE_SA_INIT request (SPIr 0) goes by `hash` of (peer address, SPIi). Anything too short
/// to say goes to shard 0, which drops it as the engine does.
pub fn route(data: &[u8], remote: IpAddr, count: usize, hash: &impl BuildHasher) -> usize {
    if count <= 1 {
        return 0;
    }
    let Some(h) = data.get(..28) else {
        return 0;
    };
    let spi = |r: std::ops::Range<usize>| {
        h.get(r)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    };
    let (spi_i, spi_r) = (spi(0..8), spi(8..16));
    let (exchange, flags) = (h[18], h[19]);
    if exchange == IKE_SA_INIT && flags & FLAG_RESPONSE == 0 && spi_r == 0 {
        return init_shard(remote, spi_i, count, hash);
    }
    let ours = if flags & FLAG_INITIATOR != 0 {
        spi_r
    } else {
        spi_i
    };
    shard_of_spi(ours, count)
}

/// The shard of an IKE_SA_INIT request: the peer's address (not its port: a NAT may change it
/// between a request and its COOKIE retry) and its SPIi, hashed with a key of this run, so
/// that a peer cannot aim all its half-open SAs at the shard of others.
pub fn init_shard(remote: IpAddr, spi_i: u64, count: usize, hash: &impl BuildHasher) -> usize {
    (hash.hash_one((remote, spi_i)) % count.max(1) as u64) as usize
}

/// A shard's thread: its datagrams and timers, until told to stop. `out` tells the daemon's
/// task that outputs wait (one token is enough: the task drains everything).
pub(super) fn spawn_worker(
    index: usize,
    shard: Arc<Shard>,
    mut rx: mpsc::Receiver<super::Datagram>,
    out: mpsc::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ike-shard-{index}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return warn!(shard = index, "cannot start the shard's runtime: {e}"),
            };
            rt.block_on(async move {
                loop {
                    if shard.stop.load(Ordering::Acquire) {
                        break;
                    }
                    let deadline = shard.raw().next_deadline();
                    tokio::select! {
                        d = rx.recv() => {
                            let Some(d) = d else { break };
                            shard.raw().handle_datagram(super::now(), d.local, d.remote, &d.data);
                            let _ = out.try_send(());
                        }
                        () = super::sleep_until(deadline), if deadline.is_some() => {
                            shard.raw().handle_timeout(super::now());
                            let _ = out.try_send(());
                        }
                        () = shard.wake.notified() => {}
                    }
                }
                debug!(shard = index, "shard stopped");
            });
        })
}

/// Stops a shard's thread after its current call.
pub(super) fn stop(shard: &Shard) {
    shard.stop.store(true, Ordering::Release);
    shard.wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    fn header(spi_i: u64, spi_r: u64, exchange: u8, flags: u8) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&spi_i.to_be_bytes());
        h.extend_from_slice(&spi_r.to_be_bytes());
        h.extend_from_slice(&[0, 0x20, exchange, flags]);
        h.extend_from_slice(&[0; 8]);
        h
    }

    const PEER: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);

    #[test]
    fn our_spi_names_the_shard() {
        let s = RandomState::new();
        let ours = 0x01aa_bbcc_ddee_ff00;
        let theirs = 0x00ff_0000_0000_0001;
        // The peer initiated (I flag): our SPI is SPIr, whatever the exchange.
        assert_eq!(
            route(&header(theirs, ours, 35, FLAG_INITIATOR), PEER, 2, &s),
            1
        );
        assert_eq!(
            route(
                &header(theirs, ours, 37, FLAG_INITIATOR | FLAG_RESPONSE),
                PEER,
                2,
                &s
            ),
            1
        );
        // We initiated: the peer's messages carry our SPI as SPIi.
        assert_eq!(
            route(&header(ours, theirs, 34, FLAG_RESPONSE), PEER, 2, &s),
            1
        );
        assert_eq!(route(&header(ours, theirs, 37, 0), PEER, 2, &s), 1);
        assert_eq!(
            route(&header(ours & !(1 << 56), theirs, 37, 0), PEER, 2, &s),
            0
        );
        // One shard: always 0.
        assert_eq!(
            route(&header(theirs, ours, 35, FLAG_INITIATOR), PEER, 1, &s),
            0
        );
        // A top byte no shard has, a runt, an INFORMATIONAL with SPIr 0: shard 0 drops them.
        assert_eq!(
            route(&header(theirs, 0x07 << 56, 35, FLAG_INITIATOR), PEER, 2, &s),
            0
        );
        assert_eq!(
            route(&header(theirs, ours, 35, FLAG_INITIATOR)[..27], PEER, 2, &s),
            0
        );
        assert_eq!(
            route(
                &header(ours | (1 << 57), 0, 37, FLAG_INITIATOR),
                PEER,
                2,
                &s
            ),
            0
        );
    }

    #[test]
    fn init_requests_hash_by_peer_address_and_spi() {
        let s = RandomState::new();
        let mut seen = [0usize; 4];
        for k in 0..4000u64 {
            let spi_i = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let peer = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(k % 7) + 1));
            let d = header(spi_i, 0, IKE_SA_INIT, FLAG_INITIATOR);
            let n = route(&d, peer, 4, &s);
            // Stable: a retransmission (or a COOKIE retry, same SPIi) lands on the same shard.
            assert_eq!(route(&d, peer, 4, &s), n);
            assert_eq!(n, init_shard(peer, spi_i, 4, &s));
            seen[n] += 1;
        }
        // Spread over every shard (4000 requests: each gets far more than 500).
        assert!(seen.iter().all(|&c| c > 500), "{seen:?}");
        // A response to our own IKE_SA_INIT is routed by our SPIi, not hashed.
        assert_eq!(
            route(&header(2 << 56, 5, IKE_SA_INIT, FLAG_RESPONSE), PEER, 4, &s),
            2
        );
    }
}
