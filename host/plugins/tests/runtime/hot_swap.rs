//! Hot swap under load: with 1,000 calls alive across an activation, every call started before
//! it stays on the old version to its end, every call started after it runs the new one, and
//! none fails. Rollback is one call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use wasmswitch_plugin_artifacts::{DTMF_TRANSFER, ROUTER};
use wasmswitch_plugins::harness;
use wasmswitch_plugins::model::{CallEvent, CallInfo, HangupInfo, RouteDecision};
use wasmswitch_plugins::{KvStore, MemoryKv, Registry, Runtime, RuntimeConfig};

const SESSIONS: usize = 1_000;

/// Version 1 (the prefix router) sends +1 numbers to "us-trunk"; version 2 (the DTMF-transfer
/// router) sends everything to "default". The decision tells which version answered.
fn version_of(decision: &RouteDecision) -> u32 {
    match decision {
        RouteDecision::Forward(f) if f.trunk.as_deref() == Some("us-trunk") => 1,
        RouteDecision::Forward(f) if f.trunk.as_deref() == Some("default") => 2,
        other => panic!("unexpected decision {other:?}"),
    }
}

async fn session(
    registry: Arc<Registry>,
    n: usize,
    routed_gate: Option<Arc<Barrier>>,
    hold: Arc<Barrier>,
) -> (u32, u32) {
    let call = CallInfo {
        call_id: format!("call-{n}"),
        tenant: "acme".into(),
        to: format!("+1415555{n:04}"),
        ..Default::default()
    };
    let routed = registry.route("acme", &call).await;
    assert!(
        routed.decision.failure.is_none(),
        "call {n}: {:?}",
        routed.decision.failure
    );
    let mut instance = routed.instance.expect("a routed call keeps its instance");
    let answered_by = version_of(&routed.decision.value);
    assert_eq!(answered_by, instance.version().id.version, "call {n}");
    if let Some(gate) = routed_gate {
        gate.wait().await;
    }
    // Stay up until every call is up, across the swap.
    hold.wait().await;
    let hangup = CallEvent::Hangup(HangupInfo {
        by_caller: true,
        status: Some(200),
    });
    let actions = instance.on_call_event(&hangup).await;
    assert_eq!(actions, Ok(vec![]), "call {n} failed at its end");
    (answered_by, instance.version().id.version)
}

/// Waits for a barrier with a bound: a session that failed never reaches it, and the test must
/// then fail (the failed session's own panic says why), not wait for ever.
async fn within<T>(what: &str, barrier: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(300), barrier).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}: a session failed (see its panic above)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_under_a_thousand_live_calls_keeps_each_on_its_version() {
    let kv = Arc::new(MemoryKv::new());
    kv.set("acme", "routes", b"+1 * us-trunk").await.unwrap();
    let rt = Runtime::new(
        RuntimeConfig {
            max_instances: 2 * SESSIONS as u32 + 10,
            max_memory_bytes: 16 << 20,
            fuel_metering: false,
            // This test is about which version answers, not about time: on a machine loaded
            // enough to stall a call past the default 100 ms, it must still pass.
            deadline: Duration::from_secs(10),
            cache_dir: Some(super::cache_dir()),
            ..harness::default_config()
        },
        kv,
    )
    .unwrap();
    let registry = Arc::new(Registry::new());
    registry.add(super::load(&rt, "acme", "router", 1, ROUTER));
    registry.add(super::load(&rt, "acme", "router", 2, DTMF_TRANSFER));
    registry.activate("acme", "router", 1).unwrap();

    let hold = Arc::new(Barrier::new(SESSIONS + 1));
    let routed = Arc::new(Barrier::new(SESSIONS / 2 + 1));
    let before: Vec<_> = (0..SESSIONS / 2)
        .map(|n| {
            let gate = Some(routed.clone());
            tokio::spawn(session(registry.clone(), n, gate, hold.clone()))
        })
        .collect();
    // Every call of the first half has been routed and is holding its instance.
    within("the first half to be routed", routed.wait()).await;

    registry.activate("acme", "router", 2).unwrap();

    let mut after = Vec::new();
    for n in SESSIONS / 2..SESSIONS {
        let (registry, hold) = (registry.clone(), hold.clone());
        after.push(tokio::spawn(session(registry, n, None, hold)));
    }
    within("every call to be up", hold.wait()).await;

    for t in before {
        let (answered, ended) = t.await.expect("session task");
        assert_eq!(
            (answered, ended),
            (1, 1),
            "a call started before the swap moved"
        );
    }
    for t in after {
        let (answered, ended) = t.await.expect("session task");
        assert_eq!(
            (answered, ended),
            (2, 2),
            "a call started after the swap ran the old version"
        );
    }

    // Rollback is one call and applies to the next call at once.
    assert_eq!(registry.rollback("acme", "router"), Ok(1));
    let call = CallInfo {
        to: "+14155550100".into(),
        ..Default::default()
    };
    assert_eq!(
        version_of(&registry.route("acme", &call).await.decision.value),
        1
    );
    assert_eq!(registry.versions("acme", "router"), (vec![1, 2], Some(1)));
}
