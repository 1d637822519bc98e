//! A plugin that loops, eats memory, traps or answers nonsense is contained: a typed error, a
//! poisoned instance, and the tenant's fallback for the call. Never a host panic.

use std::time::{Duration, Instant};

use wasmswitch_plugin_artifacts::FAULTY;
use wasmswitch_plugins::harness;
use wasmswitch_plugins::model::{self, Action, CallInfo, SipStatus};
use wasmswitch_plugins::{Fallback, PluginError, Registry, RuntimeConfig};

use super::incoming;

fn call(to: &str) -> CallInfo {
    CallInfo {
        call_id: format!("call-{to}"),
        to: to.into(),
        ..Default::default()
    }
}

fn config(deadline_ms: u64, max_memory: usize) -> RuntimeConfig {
    RuntimeConfig {
        deadline: Duration::from_millis(deadline_ms),
        max_memory_bytes: max_memory,
        // Fuel off, as in production: the epoch deadline alone must stop the loop.
        fuel_metering: false,
        cache_dir: Some(super::cache_dir()),
        ..harness::default_config()
    }
}

/// `err` is the timeout of a `deadline_ms` deadline, and the call was stopped after `took`
/// within `window_ms` (at least its start, less than its end).
fn assert_timed_out(
    err: PluginError,
    took: Duration,
    deadline_ms: u64,
    window_ms: std::ops::Range<u64>,
) {
    assert_eq!(
        err,
        PluginError::Timeout {
            deadline: Duration::from_millis(deadline_ms)
        }
    );
    assert!(
        took >= Duration::from_millis(window_ms.start),
        "stopped too early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(window_ms.end),
        "stopped too late: {took:?}"
    );
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_its_deadline() {
    let rt = super::runtime(config(50, 64 << 20));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    let started = Instant::now();
    let err = instance.on_event(&incoming("loop")).await.unwrap_err();
    assert_timed_out(err, started.elapsed(), 50, 45..500);
    // The instance cannot be entered again.
    assert!(instance.is_poisoned());
    assert_eq!(
        instance.on_event(&incoming("ok")).await.unwrap_err(),
        PluginError::Poisoned
    );
}

#[tokio::test]
async fn a_loop_in_an_in_call_event_is_stopped_too() {
    let rt = super::runtime(config(30, 64 << 20));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    assert!(instance.on_event(&incoming("ok")).await.is_ok());
    // A later event of the same call: the faulty plugin spins on DTMF 1.
    let press = model::CallEvent::Dtmf(model::DtmfPress {
        leg: model::CALLER,
        digit: '1',
    });
    let err = instance.on_event(&press).await.unwrap_err();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let cap = 16 << 20;
    let rt = super::runtime(config(2_000, cap));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    let err = instance.on_event(&incoming("oom")).await.unwrap_err();
    assert_eq!(err, PluginError::OutOfMemory { limit: cap });
}

#[tokio::test]
async fn a_trap_is_reported_with_the_guest_message() {
    let rt = super::runtime(config(1_000, 64 << 20));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    let err = instance.on_event(&incoming("trap")).await.unwrap_err();
    let PluginError::Trap(msg) = &err else {
        panic!("expected a trap, got {err:?}")
    };
    assert!(
        msg.contains("unreachable") || msg.contains("wasm trap"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_decision_the_switch_cannot_act_on_is_refused() {
    let rt = super::runtime(config(1_000, 64 << 20));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    let err = instance.on_event(&incoming("bad")).await.unwrap_err();
    assert!(
        matches!(&err, PluginError::BadReturn(why) if why.contains("reject status 200")),
        "{err:?}"
    );
}

#[tokio::test]
async fn every_failure_yields_the_tenant_fallback_and_later_calls_still_work() {
    // A deadline well above what an allocation loop needs even on a loaded machine: the point
    // is which failure each case gets, not how fast.
    let rt = super::runtime(config(250, 16 << 20));
    let registry = Registry::new();
    registry.add(super::load(&rt, "acme", "router", 1, FAULTY));
    registry.activate("acme", "router", 1).unwrap();

    for (to, kind) in [
        ("loop", "timeout"),
        ("oom", "out_of_memory"),
        ("trap", "trap"),
        ("bad", "bad_return"),
    ] {
        let mut session = registry.start_call("acme");
        let routed = session.incoming(&call(to)).await;
        assert_eq!(routed.value.actions, Fallback::default().unanswered, "{to}");
        assert_eq!(
            routed.failure.as_ref().map(PluginError::kind),
            Some(kind),
            "{to}"
        );
        assert!(!session.is_active(), "{to}: the failed instance is dropped");
        // The next call gets a fresh instance and a real answer.
        let ok = registry.start_call("acme").incoming(&call("ok")).await;
        assert!(ok.failure.is_none(), "after {to}: {:?}", ok.failure);
        assert_eq!(
            ok.value.actions,
            vec![Action::Reject(SipStatus::new(486, "Busy Here"))]
        );
    }

    // A tenant-specific fallback replaces the default.
    let fallback = vec![Action::Dial(model::Dial {
        groups: vec![model::RingGroup {
            strategy: model::RingStrategy::Sequential,
            targets: vec![model::DialTarget::to("sip:operator@example.com")],
        }],
        timeout_ms: None,
        caller_id: None,
        ringback: None,
        tag: None,
    })];
    registry.set_fallback(
        "acme",
        Fallback {
            unanswered: fallback.clone(),
            ..Fallback::default()
        },
    );
    let routed = registry.start_call("acme").incoming(&call("trap")).await;
    assert_eq!(routed.value.actions, fallback);
}

#[tokio::test]
async fn a_tenant_without_a_router_gets_the_fallback() {
    let registry = Registry::new();
    let routed = registry.start_call("nobody").incoming(&call("x")).await;
    assert_eq!(routed.value.actions, Fallback::default().unanswered);
    assert_eq!(
        routed.failure,
        Some(PluginError::NotExported("call-handler"))
    );
}

/// Memory slots are reused between instances and reset in place (pages the last instance wrote
/// are copied back from the image, the rest released): no call may see what an earlier one
/// left, in its data, its heap or memory it grew — including after one that filled its memory.
#[tokio::test]
async fn every_instance_starts_from_the_components_initial_memory() {
    let rt = super::runtime(config(2_000, 16 << 20));
    let plugin = super::load(&rt, "t", "faulty", 1, FAULTY);
    let reason = |a: wasmswitch_plugins::Answer| match a.actions.as_slice() {
        [Action::Reject(SipStatus { reason, .. })] => reason.clone().unwrap_or_default(),
        other => panic!("expected a rejection, got {other:?}"),
    };
    for n in 0..200 {
        let mut instance = plugin.instantiate(Default::default()).await.unwrap();
        assert_eq!(
            reason(instance.on_event(&incoming("state")).await.unwrap()),
            "calls=1 stale=0",
            "instance {n}"
        );
        // The same instance keeps its state for the call's life (so the check above can fail).
        assert_eq!(
            reason(instance.on_event(&incoming("state")).await.unwrap()),
            "calls=2 stale=0",
            "instance {n}"
        );
        if n % 50 == 0 {
            // Fill memory to the cap: far more dirty pages than are reset in place.
            let mut hog = plugin.instantiate(Default::default()).await.unwrap();
            let err = hog.on_event(&incoming("oom")).await.unwrap_err();
            assert!(matches!(err, PluginError::OutOfMemory { .. }), "{err:?}");
        }
    }
}

/// A `kv` backend that never answers (a stalled database).
struct StalledKv;

#[async_trait::async_trait]
impl wasmswitch_plugins::KvStore for StalledKv {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, wasmswitch_plugins::KvError> {
        std::future::pending().await
    }
    async fn set(&self, _: &str, _: &str, _: &[u8]) -> Result<(), wasmswitch_plugins::KvError> {
        std::future::pending().await
    }
    async fn delete(&self, _: &str, _: &str) -> Result<(), wasmswitch_plugins::KvError> {
        std::future::pending().await
    }
    async fn list_keys(
        &self,
        _: &str,
        _: &str,
        _: u32,
    ) -> Result<Vec<String>, wasmswitch_plugins::KvError> {
        std::future::pending().await
    }
}

/// The epoch deadline stops guest code, not a wait inside a host import: that is bounded by
/// the call's timer (twice the deadline), so a stalled `kv` cannot hold a call forever.
#[tokio::test]
async fn a_call_stuck_in_a_host_import_times_out() {
    let rt = wasmswitch_plugins::Runtime::new(config(50, 64 << 20), std::sync::Arc::new(StalledKv))
        .expect("runtime");
    let plugin = super::load(&rt, "t", "router", 1, wasmswitch_plugin_artifacts::ROUTER);
    let mut instance = plugin.instantiate(Default::default()).await.unwrap();
    let started = Instant::now();
    let err = instance
        .on_event(&incoming("+14155550100"))
        .await
        .unwrap_err();
    assert_timed_out(err, started.elapsed(), 50, 95..1_000);
    assert!(instance.is_poisoned());
}
