//! Failed authentications per source address, for the API's keys and tokens and the SIP
//! registrar's digest alike: a source that keeps guessing is refused before its guesses cost
//! a database read.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Failed authentications per source address: a token bucket per address (per /64 for IPv6,
/// where one host has many), refilled at a steady rate. What a spent bucket means is the
/// caller's: the API answers 429 and checks only credentials that need no database read; the
/// registrar answers 503 with Retry-After without reading the database. Only failures create
/// a bucket, so requests from spoofed sources cannot crowd out the addresses being limited.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    state: Mutex<FailureState>,
}

#[derive(Debug)]
struct FailureState {
    /// Failures given back per second.
    rate: f64,
    burst: f64,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The most addresses tracked; past it, tracking starts afresh (a flood from that many
/// addresses is a problem for the network's edge, not for this table).
const FAILURE_ADDRESSES_MAX: usize = 100_000;

impl FailureLimiter {
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            state: Mutex::new(FailureState {
                rate: f64::from(per_minute.max(1)) / 60.0,
                burst: f64::from(burst.max(1)),
                buckets: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FailureState> {
        // Every change is a whole-value write: a poisoned lock holds no half-made one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_rate(&self, per_minute: u32, burst: u32) {
        let mut s = self.state();
        s.rate = f64::from(per_minute.max(1)) / 60.0;
        s.burst = f64::from(burst.max(1));
        s.buckets.clear();
    }

    /// The address's bucket, refilled up to `now`, and the refill rate; `None` when the
    /// address has none and `create` is false, or the table is full of addresses still
    /// paying off failures (then a new one goes untracked rather than freeing them all).
    fn refilled(
        s: &mut FailureState,
        ip: IpAddr,
        now: Instant,
        create: bool,
    ) -> Option<(&mut Bucket, f64)> {
        let (rate, burst) = (s.rate, s.burst);
        let ip = bucket_key(ip);
        if !s.buckets.contains_key(&ip) {
            if !create {
                return None;
            }
            if s.buckets.len() >= FAILURE_ADDRESSES_MAX {
                s.buckets.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
                });
                if s.buckets.len() >= FAILURE_ADDRESSES_MAX {
                    return None;
                }
            }
        }
        let b = s.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        Some((b, rate))
    }

    fn retry_after(tokens: f64, rate: f64) -> u64 {
        whole_secs(Duration::from_secs_f64(((1.0 - tokens) / rate).max(0.0)))
    }

    /// `Some(seconds to wait)` if the address has no failures left to spend. Only looks: an
    /// address that never failed is not tracked (spoofed sources cannot fill the table).
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut s = self.state();
        let (b, rate) = Self::refilled(&mut s, ip, now, false)?;
        (b.tokens < 1.0).then(|| Self::retry_after(b.tokens, rate))
    }

    /// Spends one failure; `Some(seconds to wait)` if there was none left.
    pub(crate) fn record(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut s = self.state();
        let (b, rate) = Self::refilled(&mut s, ip, now, true)?;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(Self::retry_after(b.tokens, rate))
        }
    }

    /// Forgets addresses whose bucket has refilled.
    pub(crate) fn tidy(&self) {
        let now = Instant::now();
        let mut s = self.state();
        let (rate, burst) = (s.rate, s.burst);
        s.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }
}

/// IPv4 addresses count one by one; IPv6 ones by their /64, the block one host is given.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_and_refill() {
        let f = FailureLimiter::new(60, 3);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.blocked(a, t0), None);
            assert_eq!(f.record(a, t0), None);
        }
        assert_eq!(f.blocked(a, t0), Some(1));
        assert_eq!(f.record(a, t0), Some(1));
        assert_eq!(f.blocked(b, t0), None, "another address is not affected");
        // One failure a second comes back.
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(f.blocked(a, t1), None);
        assert_eq!(f.record(a, t1), None);
        assert!(f.blocked(a, t1).is_some());
        // Refilled addresses are forgotten by tidy; the spent one is kept.
        f.tidy();
        assert_eq!(f.state().buckets.len(), 1);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_key(a), bucket_key(b));
        assert_ne!(bucket_key(a), bucket_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(bucket_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
