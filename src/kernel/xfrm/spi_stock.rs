//! Inbound SPIs reserved ahead of need (issue 13). The engine used to reserve each inbound SPI
//! with a blocking ALLOCSPI round trip inside its own call (up to the 5 s answer timeout), so
//! one slow kernel answer stalled every peer. Now a thread of its own keeps a small stock of
//! ALLOCSPI reservations per local address, and the engine only takes one from the stock (a
//! lock and a pop, no system call); when the stock for an address is empty (the first CHILD_SA
//! on a new care-of address, or a burst), the engine picks a random SPI itself and the SA is
//! created with NEWSA instead of UPDSA: a collision with another key manager's SA then fails
//! that one CHILD_SA, never stalls the others.
//!
//! A reservation is a larval state in the kernel that lives `net.core.xfrm_acq_expires`
//! (30 s by default): stock entries older than [`MAX_AGE`] are never handed out, and the
//! backend's `allocated` set (where the thread records every reservation) still removes the
//! larval states at shutdown.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{Netlink, Shared, lock};

/// Reservations kept per local address.
pub const TARGET: usize = 16;
/// Below this many the thread tops the stock up again.
pub const LOW: usize = 4;
/// A reservation older than this is not handed out (the kernel drops it at 30 s).
pub const MAX_AGE: Duration = Duration::from_secs(20);
/// Local addresses with a stock (a mobile node's care-of addresses come and go).
pub const MAX_ADDRESSES: usize = 8;

#[derive(Default)]
struct Stock {
    by_dst: HashMap<IpAddr, VecDeque<(u32, Instant)>>,
    /// Addresses whose stock the thread should top up, oldest request first.
    wanted: VecDeque<IpAddr>,
    stop: bool,
}

/// The stock and the thread that fills it. Dropping it stops the thread.
pub struct SpiStock {
    state: Arc<(Mutex<Stock>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

fn guard(m: &Mutex<Stock>) -> MutexGuard<'_, Stock> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpiStock {
    /// Starts the filling thread with a netlink socket of its own; `shared` is the backend's
    /// state, where each reservation is recorded.
    pub(super) fn start(shared: Arc<Mutex<Shared>>) -> SpiStock {
        let state: Arc<(Mutex<Stock>, Condvar)> = Arc::default();
        let s = state.clone();
        let thread = std::thread::Builder::new()
            .name("xfrm-spi-stock".into())
            .spawn(move || fill(&s, &shared))
            .map_err(|e| warn!("SPI stock thread not started: {e}"))
            .ok();
        SpiStock { state, thread }
    }

    /// A reserved SPI for an inbound SA to `dst`, if the stock has a fresh one. Never blocks
    /// on the kernel; asks the thread to top the stock up when it runs low.
    pub fn take(&self, dst: IpAddr) -> Option<u32> {
        let (m, cv) = &*self.state;
        let mut st = guard(m);
        let now = Instant::now();
        if !st.by_dst.contains_key(&dst) && st.by_dst.len() >= MAX_ADDRESSES {
            // Forget the address whose stock is emptiest (a care-of address left behind).
            if let Some(old) = st
                .by_dst
                .iter()
                .min_by_key(|(_, q)| q.len())
                .map(|(a, _)| *a)
            {
                st.by_dst.remove(&old);
            }
        }
        let q = st.by_dst.entry(dst).or_default();
        while q
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) >= MAX_AGE)
        {
            q.pop_front();
        }
        let got = q.pop_front().map(|(spi, _)| spi);
        if q.len() < LOW && !st.wanted.contains(&dst) {
            st.wanted.push_back(dst);
            cv.notify_one();
        }
        got
    }

    /// How many fresh reservations the stock holds for `dst` (tests).
    pub fn available(&self, dst: IpAddr) -> usize {
        let now = Instant::now();
        guard(&self.state.0).by_dst.get(&dst).map_or(0, |q| {
            q.iter()
                .filter(|(_, at)| now.duration_since(*at) < MAX_AGE)
                .count()
        })
    }
}

impl Drop for SpiStock {
    fn drop(&mut self) {
        guard(&self.state.0).stop = true;
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: waits for an address to top up, reserves SPIs for it with its own socket (the
/// backend's socket and lock stay free for the engine's operations), records them.
fn fill(state: &(Mutex<Stock>, Condvar), shared: &Mutex<Shared>) {
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            warn!("SPI stock: no netlink socket ({e}); SPIs are chosen by the engine");
            return;
        }
    };
    let (m, cv) = state;
    loop {
        let (dst, need) = {
            let mut st = guard(m);
            loop {
                if st.stop {
                    return;
                }
                if let Some(dst) = st.wanted.pop_front() {
                    let have = st.by_dst.get(&dst).map_or(0, VecDeque::len);
                    break (dst, TARGET.saturating_sub(have));
                }
                st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        let src = match dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let mut got = Vec::with_capacity(need);
        for _ in 0..need {
            match nl.allocspi(src, dst, 0, 0) {
                Ok(spi) => got.push((spi, Instant::now())),
                Err(e) => {
                    warn!(%dst, "SPI stock: ALLOCSPI failed: {e}");
                    break;
                }
            }
        }
        if got.is_empty() {
            continue;
        }
        {
            let mut sh = lock(shared);
            // Reservations handed out are removed when their SA is added; stale ones (the
            // stock dropped them, the kernel too) are forgotten here.
            let now = Instant::now();
            sh.allocated
                .retain(|_, at| now.duration_since(*at) < super::RESERVATION_KEEP);
            for (spi, at) in &got {
                sh.allocated.insert((dst, *spi), *at);
            }
        }
        debug!(%dst, reserved = got.len(), "SPI stock topped up");
        let mut st = guard(m);
        if let Some(q) = st.by_dst.get_mut(&dst) {
            q.extend(got);
        }
    }
}
