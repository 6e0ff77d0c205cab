//! Inbound SPIs reserved ahead of need (issue 13). The engine used to reserve each inbound SPI
//! with a blocking ALLOCSPI round trip inside its own call (up to the 5 s answer timeout), so
//! one slow kernel answer stalled every peer. Now a thread of its own keeps a small stock of
//! ALLOCSPI reservations per local address, and the engine only takes one from the stock (a
//! lock and a pop, no system call); when the stock for an address is empty (the first CHILD_SA
//! on a new care-of address, or a burst), the engine picks a random SPI itself and the SA is
//! created with NEWSA instead of UPDSA: a collision with another key manager's SA then fails
//! that one CHILD_SA, never stalls the others.
//!
//! A reservation is a larval state in the kernel (no keys, reqid 0, source `::`) that the
//! kernel deletes `net.core.xfrm_acq_expires` after it was made (30 s by default, with a hard
//! EXPIRE). The stock hands out only reservations younger than two thirds of that (the rest is
//! the negotiation's time to complete it with UPDSA), and the thread deletes older ones itself
//! and reserves fresh ones, so at most [`TARGET`] reservations per address sit in the kernel
//! and none of them times out there. An address nobody took an SPI for during
//! [`StockTiming::idle`] (a care-of address left behind) loses its stock: its reservations are
//! deleted, not left to expire. When the daemon stops, the thread deletes what it holds; the
//! backend's `allocated` set (where the thread records every reservation) covers those handed
//! out and never completed.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Netlink, NlError, Shared, lock, msg};

/// Reservations kept per local address.
pub const TARGET: usize = 16;
/// Below this many the thread tops the stock up again.
pub const LOW: usize = 4;
/// Local addresses with a stock (a mobile node's care-of addresses come and go).
pub const MAX_ADDRESSES: usize = 8;
/// The kernel's default larval lifetime (`net.core.xfrm_acq_expires`), when it cannot be read.
const DEFAULT_ACQ_EXPIRES: u64 = 30;
/// An address keeps its stock fresh for this many reservation lifetimes after its last take.
const IDLE_LIFETIMES: u32 = 5;
/// After a failed ALLOCSPI the address is not tried again for this long.
const RETRY: Duration = Duration::from_secs(1);

/// How long reservations are handed out and kept fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockTiming {
    /// A reservation older than this is never handed out; the thread replaces it.
    pub max_age: Duration,
    /// An address without a take for this long loses its stock.
    pub idle: Duration,
}

impl StockTiming {
    /// From the kernel's larval lifetime in seconds: reservations are handed out during the
    /// first two thirds of it. None when it is too short (under 3 s) for a stock to be useful.
    pub fn from_acq_expires(secs: u64) -> Option<StockTiming> {
        if secs < 3 {
            return None;
        }
        let max_age = Duration::from_secs(secs) * 2 / 3;
        Some(StockTiming {
            max_age,
            idle: max_age * IDLE_LIFETIMES,
        })
    }

    /// From `net.core.xfrm_acq_expires` of the caller's network namespace.
    pub fn of_this_namespace() -> Option<StockTiming> {
        let secs = std::fs::read_to_string("/proc/sys/net/core/xfrm_acq_expires")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(DEFAULT_ACQ_EXPIRES);
        let t = StockTiming::from_acq_expires(secs);
        if t.is_none() {
            info!(
                xfrm_acq_expires = secs,
                "larval states live too short for an SPI stock: the engine picks inbound SPIs"
            );
        }
        t
    }
}

struct AddrStock {
    /// Reservations, oldest first, with the time each was made.
    q: VecDeque<(u32, Instant)>,
    last_take: Instant,
    /// No ALLOCSPI for this address before then (the last one failed).
    hold_until: Option<Instant>,
}

#[derive(Default)]
struct Stock {
    by_dst: HashMap<IpAddr, AddrStock>,
    /// Reservations out of the stock (stale, or of an address dropped) for the thread to delete.
    discard: Vec<(IpAddr, u32)>,
    stop: bool,
}

/// The stock and the thread that fills it. Dropping it stops the thread, which deletes the
/// reservations still in stock.
pub struct SpiStock {
    state: Arc<(Mutex<Stock>, Condvar)>,
    timing: StockTiming,
    thread: Option<JoinHandle<()>>,
}

fn guard(m: &Mutex<Stock>) -> MutexGuard<'_, Stock> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpiStock {
    /// Starts the filling thread with a netlink socket of its own; `shared` is the backend's
    /// state, where each reservation is recorded.
    pub(super) fn start(shared: Arc<Mutex<Shared>>, timing: StockTiming) -> SpiStock {
        let state: Arc<(Mutex<Stock>, Condvar)> = Arc::default();
        let s = state.clone();
        let thread = std::thread::Builder::new()
            .name("xfrm-spi-stock".into())
            .spawn(move || fill(&s, &shared, timing))
            .map_err(|e| warn!("SPI stock thread not started: {e}"))
            .ok();
        SpiStock {
            state,
            timing,
            thread,
        }
    }

    /// A reserved SPI for an inbound SA to `dst`, if the stock has a fresh one. Never blocks
    /// on the kernel; wakes the thread when the stock runs low.
    pub fn take(&self, dst: IpAddr) -> Option<u32> {
        let (m, cv) = &*self.state;
        let mut guard = guard(m);
        let st = &mut *guard;
        let now = Instant::now();
        let mut wake = false;
        if !st.by_dst.contains_key(&dst) && st.by_dst.len() >= MAX_ADDRESSES {
            // The address taken from least recently gives way (a care-of address left
            // behind); its reservations go.
            if let Some(old) = st
                .by_dst
                .iter()
                .min_by_key(|(_, a)| a.last_take)
                .map(|(a, _)| *a)
                && let Some(a) = st.by_dst.remove(&old)
            {
                st.discard
                    .extend(a.q.into_iter().map(|(spi, _)| (old, spi)));
                wake = true;
            }
        }
        let a = st.by_dst.entry(dst).or_insert_with(|| AddrStock {
            q: VecDeque::new(),
            last_take: now,
            hold_until: None,
        });
        a.last_take = now;
        // The thread replaces stale ones on time; should it be late, they are not handed out.
        while let Some(&(spi, at)) = a.q.front()
            && now.duration_since(at) >= self.timing.max_age
        {
            a.q.pop_front();
            st.discard.push((dst, spi));
            wake = true;
        }
        let got = a.q.pop_front().map(|(spi, _)| spi);
        if a.q.len() < LOW {
            wake = true;
        }
        if wake {
            cv.notify_one();
        }
        got
    }

    /// How many fresh reservations the stock holds for `dst` (tests).
    pub fn available(&self, dst: IpAddr) -> usize {
        let now = Instant::now();
        guard(&self.state.0).by_dst.get(&dst).map_or(0, |a| {
            a.q.iter()
                .filter(|(_, at)| now.duration_since(*at) < self.timing.max_age)
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

/// What the thread does next, decided under the stock's lock.
struct Work {
    delete: Vec<(IpAddr, u32)>,
    reserve: Vec<(IpAddr, usize)>,
    stop: bool,
}

/// Moves stale reservations and the stocks of idle addresses to `discard`; returns the
/// addresses to top up (with how many each needs) and when to look again.
fn sweep(st: &mut Stock, now: Instant, t: StockTiming) -> (Vec<(IpAddr, usize)>, Option<Instant>) {
    let Stock {
        by_dst, discard, ..
    } = st;
    by_dst.retain(|dst, a| {
        if now.duration_since(a.last_take) >= t.idle {
            debug!(%dst, reservations = a.q.len(), "SPI stock: address idle, reservations released");
            discard.extend(a.q.drain(..).map(|(spi, _)| (*dst, spi)));
            return false;
        }
        while let Some(&(spi, at)) = a.q.front()
            && now.duration_since(at) >= t.max_age
        {
            a.q.pop_front();
            discard.push((*dst, spi));
        }
        true
    });
    let mut reserve = Vec::new();
    let mut next: Option<Instant> = None;
    let mut at = |when: Instant| next = Some(next.map_or(when, |n| n.min(when)));
    for (dst, a) in by_dst.iter() {
        at(a.last_take + t.idle);
        if let Some(&(_, made)) = a.q.front() {
            at(made + t.max_age);
        }
        if a.q.len() < LOW {
            match a.hold_until {
                Some(h) if h > now => at(h),
                _ => reserve.push((*dst, TARGET - a.q.len())),
            }
        }
    }
    (reserve, next)
}

/// The thread: replaces stale reservations, tops stocks up, releases those of idle addresses,
/// all with its own socket (the backend's socket and lock stay free for the engine's
/// operations); records each reservation in the backend's `allocated` set.
fn fill(state: &(Mutex<Stock>, Condvar), shared: &Mutex<Shared>, t: StockTiming) {
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            warn!("SPI stock: no netlink socket ({e}); SPIs are chosen by the engine");
            return;
        }
    };
    let (m, cv) = state;
    loop {
        let work = {
            let mut st = guard(m);
            loop {
                let now = Instant::now();
                if st.stop {
                    let Stock {
                        by_dst, discard, ..
                    } = &mut *st;
                    for (dst, a) in by_dst.drain() {
                        discard.extend(a.q.into_iter().map(|(spi, _)| (dst, spi)));
                    }
                    break Work {
                        delete: std::mem::take(discard),
                        reserve: Vec::new(),
                        stop: true,
                    };
                }
                let (reserve, next) = sweep(&mut st, now, t);
                if !st.discard.is_empty() || !reserve.is_empty() {
                    break Work {
                        delete: std::mem::take(&mut st.discard),
                        reserve,
                        stop: false,
                    };
                }
                st = match next {
                    Some(n) => {
                        cv.wait_timeout(st, n.saturating_duration_since(now))
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                    None => cv.wait(st).unwrap_or_else(|p| p.into_inner()),
                };
            }
        };
        release(&mut nl, shared, &work.delete);
        if work.stop {
            return;
        }
        for (dst, need) in work.reserve {
            let got = reserve(&mut nl, shared, dst, need);
            let mut st = guard(m);
            match st.by_dst.get_mut(&dst) {
                Some(a) => {
                    a.hold_until = (got.len() < need).then(|| Instant::now() + RETRY);
                    a.q.extend(got);
                }
                // Dropped meanwhile (MAX_ADDRESSES): not needed after all.
                None => st
                    .discard
                    .extend(got.into_iter().map(|(spi, _)| (dst, spi))),
            }
        }
    }
}

/// Deletes reservations that left the stock unused (their larval states), and their records.
fn release(nl: &mut Netlink, shared: &Mutex<Shared>, which: &[(IpAddr, u32)]) {
    if which.is_empty() {
        return;
    }
    for &(dst, spi) in which {
        match nl.ack(msg::delsa_request(dst, spi)) {
            // Gone already (the kernel expired it).
            Ok(()) | Err(NlError::Errno(super::ESRCH | super::ENOENT)) => {}
            Err(e) => {
                warn!(%dst, spi = format_args!("{spi:08x}"), "SPI stock: cannot release a reservation: {e}");
            }
        }
    }
    let mut sh = lock(shared);
    for key in which {
        sh.allocated.remove(key);
    }
    debug!(released = which.len(), "SPI stock: reservations released");
}

/// Up to `need` fresh reservations for `dst`, recorded in the backend's `allocated` set.
fn reserve(
    nl: &mut Netlink,
    shared: &Mutex<Shared>,
    dst: IpAddr,
    need: usize,
) -> Vec<(u32, Instant)> {
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
    if !got.is_empty() {
        let mut sh = lock(shared);
        // Reservations handed out are removed when their SA is added or their CHILD_SA
        // failed; any other is forgotten here after a while.
        let now = Instant::now();
        sh.allocated
            .retain(|_, at| now.duration_since(*at) < super::RESERVATION_KEEP);
        for (spi, at) in &got {
            sh.allocated.insert((dst, *spi), *at);
        }
        debug!(%dst, reserved = got.len(), "SPI stock topped up");
    }
    got
}
