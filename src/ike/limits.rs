//! Per-source limits on IKE_SA_INIT (RFC 7296 2.6 leaves the policy to us): how many half-open
//! SAs one address may hold (strongSwan's `block_threshold`) and how fast it may send
//! IKE_SA_INIT requests (a token bucket per address). Without them one host that answers its
//! COOKIEs fills `max_half_open` by itself and locks out every mobile node.
//!
//! Keyed by the full address: a flooder that spoofs many addresses meets the cookie defence
//! instead (it cannot return COOKIEs sent to addresses it does not hold).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Rate-limited sources tracked at most. A spoofing flood could name any number of addresses;
/// past this many (after dropping idle buckets) new sources are not rate limited, which fails
/// open to the global cookie and half-open limits rather than locking anyone out. 4,096 new
/// sources within one `PRUNE_EVERY` is far beyond a burst of mobile nodes; the table then takes
/// about 400 KB (8,192 slots of 48 bytes), which is all a spoofed flood can make it cost
/// (tests/flood/run measures the RSS).
const MAX_TRACKED_SOURCES: usize = 4096;

/// Idle buckets are dropped at most this often (the pass visits every bucket).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// The per-source limits, shared by every shard of a daemon: a source's IKE_SA_INITs are
/// spread over the shards (by a hash of address and SPIi), yet its rate and half-open count
/// are the source's, not one per shard. Locked for one operation at a time.
pub type SharedSources = std::sync::Arc<std::sync::Mutex<SourceLimits>>;

#[derive(Default)]
pub struct SourceLimits {
    /// Half-open responder SAs per peer address (entries only while non-zero).
    half_open: HashMap<IpAddr, usize>,
    /// Token buckets: (tokens left, when last refilled).
    buckets: HashMap<IpAddr, (f64, Instant)>,
    pruned_at: Option<Instant>,
}

impl SourceLimits {
    pub fn half_open_of(&self, ip: IpAddr) -> usize {
        self.half_open.get(&ip).copied().unwrap_or(0)
    }

    pub fn half_open_added(&mut self, ip: IpAddr) {
        *self.half_open.entry(ip).or_insert(0) += 1;
    }

    pub fn half_open_removed(&mut self, ip: IpAddr) {
        if let Some(n) = self.half_open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open.remove(&ip);
            }
        }
    }

    /// Whether `ip` may have another IKE_SA_INIT looked at now: `rate` per second, with a
    /// reserve of as many (a mobile node's handshake with a COOKIE round trip and a few
    /// retransmissions fits easily).
    pub fn allow_init(&mut self, ip: IpAddr, now: Instant, rate: u32) -> bool {
        let r = f64::from(rate.max(1));
        if let Some((tokens, at)) = self.buckets.get_mut(&ip) {
            *tokens = refill(*tokens, *at, now, r);
            *at = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                return true;
            }
            return false;
        }
        if self.buckets.len() >= MAX_TRACKED_SOURCES {
            self.prune(now, rate);
            if self.buckets.len() >= MAX_TRACKED_SOURCES {
                return true;
            }
        }
        // The first bucket starts the housekeeping clock.
        self.pruned_at.get_or_insert(now);
        self.buckets.insert(ip, (r - 1.0, now));
        true
    }

    /// Drops the buckets that have refilled (a full bucket is as good as none), at most once
    /// per `PRUNE_EVERY`, and gives back the table's memory once a flood of sources has
    /// passed (a HashMap keeps its capacity otherwise). Called for new sources when the table
    /// is full, and from the endpoint's timer (`housekeeping_at`), so that memory returns to
    /// its baseline even when no IKE_SA_INIT follows the flood.
    pub fn prune(&mut self, now: Instant, rate: u32) {
        if self
            .pruned_at
            .is_some_and(|t| now.saturating_duration_since(t) < PRUNE_EVERY)
        {
            return;
        }
        self.pruned_at = Some(now);
        let r = f64::from(rate.max(1));
        self.buckets
            .retain(|_, (t, at)| refill(*t, *at, now, r) < r);
        if self.buckets.capacity() > 64 && self.buckets.len() < self.buckets.capacity() / 4 {
            self.buckets.shrink_to_fit();
        }
    }

    /// When `prune` has something to do: one `PRUNE_EVERY` after the last pass while buckets
    /// exist.
    pub fn housekeeping_at(&self) -> Option<Instant> {
        if self.buckets.is_empty() && self.buckets.capacity() <= 64 {
            return None;
        }
        self.pruned_at.map(|t| t + PRUNE_EVERY)
    }
}

fn refill(tokens: f64, at: Instant, now: Instant, rate: f64) -> f64 {
    (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_its_rate_and_memory_stays_bounded() {
        let mut l = SourceLimits::default();
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let allowed = (0..20).filter(|_| l.allow_init(a, t0, 5)).count();
        assert_eq!(allowed, 5);
        assert!(!l.allow_init(a, t0 + Duration::from_millis(100), 5));
        assert!(l.allow_init(a, t0 + Duration::from_millis(300), 5));
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 100) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0001_0000u128 + u128::from(i),
            ));
            assert!(l.allow_init(ip, t0, 5), "a first request always passes");
        }
        assert!(l.buckets.len() <= MAX_TRACKED_SOURCES);
        // Once the sources are quiet, one pass from the timer frees the table.
        let later = t0 + Duration::from_secs(2);
        assert!(l.housekeeping_at().is_some_and(|t| t <= later));
        l.prune(later, 5);
        assert!(l.buckets.is_empty(), "{}", l.buckets.len());
        assert!(
            l.buckets.capacity() <= 64,
            "capacity {}",
            l.buckets.capacity()
        );
        assert_eq!(l.housekeeping_at(), None);
        l.half_open_added(a);
        l.half_open_added(a);
        l.half_open_removed(a);
        assert_eq!(l.half_open_of(a), 1);
        l.half_open_removed(a);
        l.half_open_removed(a);
        assert!(l.half_open.is_empty());
    }
}
