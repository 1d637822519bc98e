//! Per-source request limits: a token bucket per IPv4 address or IPv6 /64, checked before a
//! message is even parsed, so a flood from one address costs a hash lookup per packet and
//! leaves every other address served. Sans-IO: time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many requests one source may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// How many may come at once after a quiet spell.
    pub burst: f64,
}

impl Default for RateLimit {
    /// 100 requests per second with bursts of 200: far above what a phone sends (a few per
    /// call), below what a flood needs. Trunks that carry many calls per second from one
    /// address are exempted by address ([`SourceLimiter::new`]).
    fn default() -> RateLimit {
        RateLimit {
            per_second: 100.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The buckets of every source seen recently.
#[derive(Debug)]
pub struct SourceLimiter {
    limit: RateLimit,
    exempt: Vec<IpAddr>,
    buckets: HashMap<IpAddr, Bucket>,
    max_sources: usize,
}

impl SourceLimiter {
    /// A limiter with `limit` per source, tracking at most `max_sources` at once; addresses in
    /// `exempt` (trunks) are never limited.
    pub fn new(limit: RateLimit, exempt: Vec<IpAddr>, max_sources: usize) -> SourceLimiter {
        SourceLimiter {
            limit,
            exempt,
            buckets: HashMap::new(),
            max_sources: max_sources.max(1),
        }
    }

    /// Whether a request from `ip` at `now` is within its source's limit (and takes a token).
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.exempt.contains(&ip) {
            return true;
        }
        let key = source_key(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_sources {
            self.evict(now);
            if self.buckets.len() >= self.max_sources {
                // Too many sources at once to track (a spread-out flood): let this one
                // through untracked rather than refuse a phone that has done nothing.
                return true;
            }
        }
        let limit = self.limit;
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: limit.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(limit.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many sources are tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets sources whose bucket has refilled: they are indistinguishable from new ones.
    fn evict(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(self.limit.burst / self.limit.per_second.max(1e-9));
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < refill);
    }
}

/// IPv4 addresses count alone; IPv6 ones by /64, which one host usually has whole.
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> SourceLimiter {
        SourceLimiter::new(
            RateLimit {
                per_second: 10.0,
                burst: 5.0,
            },
            vec!["192.0.2.99".parse().unwrap()],
            3,
        )
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut l = limiter();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..20).filter(|_| l.allow(t0, a)).count();
        assert_eq!(allowed, 5, "the burst");
        // 10 per second: one more every 100 ms.
        assert!(!l.allow(t0 + Duration::from_millis(50), a));
        assert!(l.allow(t0 + Duration::from_millis(150), a));
        assert!(!l.allow(t0 + Duration::from_millis(160), a));
        // Another address is untouched by the first one's flood.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.allow(t0, b));
    }

    #[test]
    fn exempt_addresses_and_ipv6_prefixes() {
        let mut l = limiter();
        let t0 = Instant::now();
        let trunk: IpAddr = "192.0.2.99".parse().unwrap();
        assert!((0..1000).all(|_| l.allow(t0, trunk)));
        // Two addresses in one /64 share a bucket.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!((0..3).filter(|_| l.allow(t0, a)).count(), 3);
        assert_eq!((0..3).filter(|_| l.allow(t0, b)).count(), 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..100u8 {
            l.allow(t0, IpAddr::from([10, 0, 0, i]));
        }
        assert!(l.tracked() <= 3);
        // Once refilled, old sources make room for new ones.
        let later = t0 + Duration::from_secs(1);
        assert!(l.allow(later, IpAddr::from([10, 1, 0, 1])));
        assert!(l.tracked() <= 3);
    }
}
