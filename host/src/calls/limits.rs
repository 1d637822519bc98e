//! Admission: the host's cap on concurrent calls, and each tenant's caps on concurrent calls
//! and on new calls per second. A call holds a [`Permit`] for its life; dropping it gives the
//! slot back, so no path that ends a call can leak one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// A tenant's caps, as the directory (or the host's defaults) give them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub tenant_calls: u32,
    pub tenant_per_second: u32,
}

/// Which cap refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    Host,
    TenantCalls,
    TenantRate,
}

impl Over {
    /// The label of `calls_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Over::Host => "host-limit",
            Over::TenantCalls => "tenant-calls-limit",
            Over::TenantRate => "tenant-rate-limit",
        }
    }

    /// The `Retry-After` to send, in seconds: a rate cap frees up within a second; a cap on
    /// concurrent calls when some call ends, which takes longer.
    pub fn retry_after(self) -> &'static str {
        match self {
            Over::TenantRate => "1",
            Over::Host | Over::TenantCalls => "5",
        }
    }
}

#[derive(Debug, Default)]
struct Tenant {
    live: u32,
    /// A token bucket of new calls: `tokens` as of `at`, refilled at the cap per second up to
    /// the cap (a burst of one second's worth).
    tokens: f64,
    at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    live: u32,
    tenants: HashMap<String, Tenant>,
}

#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    max: u32,
    state: Arc<Mutex<State>>,
}

/// One call's hold on its slots.
#[derive(Debug)]
pub(crate) struct Permit {
    tenant: String,
    state: Arc<Mutex<State>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.live = state.live.saturating_sub(1);
        if let Some(t) = state.tenants.get_mut(&self.tenant) {
            t.live = t.live.saturating_sub(1);
            metrics::gauge!("calls_live", "tenant" => self.tenant.clone()).set(f64::from(t.live));
        }
        metrics::gauge!("calls_live_total").set(f64::from(state.live));
    }
}

impl Limiter {
    pub fn new(max: u32) -> Limiter {
        Limiter {
            max,
            state: Arc::default(),
        }
    }

    /// Takes a slot for a new call of `tenant`, or says which cap it is over.
    pub fn admit(&self, tenant: &str, caps: Caps) -> Result<Permit, Over> {
        self.admit_at(tenant, caps, Instant::now())
    }

    fn admit_at(&self, tenant: &str, caps: Caps, now: Instant) -> Result<Permit, Over> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.live >= self.max {
            return Err(Over::Host);
        }
        let t = state.tenants.entry(tenant.to_owned()).or_default();
        if t.live >= caps.tenant_calls {
            return Err(Over::TenantCalls);
        }
        let cap = f64::from(caps.tenant_per_second);
        let tokens = match t.at {
            None => cap,
            Some(at) => (t.tokens + now.duration_since(at).as_secs_f64() * cap).min(cap),
        };
        if tokens < 1.0 {
            t.tokens = tokens;
            t.at = Some(now);
            return Err(Over::TenantRate);
        }
        t.tokens = tokens - 1.0;
        t.at = Some(now);
        t.live += 1;
        let live = t.live;
        state.live += 1;
        metrics::gauge!("calls_live", "tenant" => tenant.to_owned()).set(f64::from(live));
        metrics::gauge!("calls_live_total").set(f64::from(state.live));
        Ok(Permit {
            tenant: tenant.to_owned(),
            state: self.state.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CAPS: Caps = Caps {
        tenant_calls: 2,
        tenant_per_second: 10,
    };

    #[test]
    fn concurrent_calls_are_capped_per_tenant_and_freed_on_drop() {
        let limiter = Limiter::new(100);
        let now = Instant::now();
        let a = limiter.admit_at("a", CAPS, now).expect("first");
        let _b = limiter.admit_at("a", CAPS, now).expect("second");
        assert_eq!(
            limiter.admit_at("a", CAPS, now).map(|_| ()),
            Err(Over::TenantCalls)
        );
        // Another tenant is not held back by this one.
        let _c = limiter.admit_at("b", CAPS, now).expect("other tenant");
        drop(a);
        limiter.admit_at("a", CAPS, now).expect("a slot came back");
    }

    #[test]
    fn the_host_cap_counts_every_tenant() {
        let limiter = Limiter::new(2);
        let now = Instant::now();
        let _a = limiter.admit_at("a", CAPS, now).expect("a");
        let _b = limiter.admit_at("b", CAPS, now).expect("b");
        assert_eq!(
            limiter.admit_at("c", CAPS, now).map(|_| ()),
            Err(Over::Host)
        );
    }

    #[test]
    fn calls_per_second_refill_over_time() {
        let limiter = Limiter::new(1000);
        let caps = Caps {
            tenant_calls: 1000,
            tenant_per_second: 5,
        };
        let start = Instant::now();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(
                limiter
                    .admit_at("a", caps, start)
                    .expect("within the burst"),
            );
        }
        assert_eq!(
            limiter.admit_at("a", caps, start).map(|_| ()),
            Err(Over::TenantRate)
        );
        // A fifth of a second buys one call at 5/s.
        let later = start + Duration::from_millis(200);
        held.push(limiter.admit_at("a", caps, later).expect("refilled"));
        assert_eq!(
            limiter.admit_at("a", caps, later).map(|_| ()),
            Err(Over::TenantRate)
        );
    }
}
