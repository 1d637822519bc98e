//! Hot swap under load: with 1,000 calls alive across an activation, every call started before
//! it stays on the old version to its end, every call started after it runs the new one, and
//! none fails. Going back is one activation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use wasmswitch_plugin_artifacts::{DTMF_TRANSFER, ROUTER};
use wasmswitch_plugins::harness;
use wasmswitch_plugins::model::{Action, AnswerState, CallEnd, CallEvent, CallInfo, HangupInfo};
use wasmswitch_plugins::{KvStore, MemoryKv, Registry, Runtime, RuntimeConfig};

const SESSIONS: usize = 1_000;

/// Version 1 (the prefix router) sends +1 numbers to "us-trunk"; version 2 (the DTMF-transfer
/// router) sends everything to "default". The dial tells which version answered.
fn version_of(actions: &[Action]) -> u32 {
    match super::trunk_of(actions) {
        Some("us-trunk") => 1,
        Some("default") => 2,
        other => panic!("unexpected trunk {other:?} in {actions:?}"),
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
    let mut session = registry.start_call("acme");
    let routed = session.incoming(&call).await;
    assert!(routed.failure.is_none(), "call {n}: {:?}", routed.failure);
    let answered_by = version_of(&routed.value.actions);
    let plugin = session
        .plugin()
        .expect("a routed call keeps its instance")
        .clone();
    assert_eq!(answered_by, plugin.id.version, "call {n}");
    if let Some(gate) = routed_gate {
        gate.wait().await;
    }
    // Stay up until every call is up, across the swap; then the call's later events still
    // reach the instance it started with.
    hold.wait().await;
    let late = CallEvent::Dtmf(wasmswitch_plugins::model::DtmfPress { leg: 1, digit: '5' });
    let answer = session.on_event(&late, AnswerState::Answered).await;
    assert!(answer.failure.is_none(), "call {n}: {:?}", answer.failure);
    let ended_on = session.plugin().expect("still handled").id.version;
    let hangup = CallEvent::Hangup(HangupInfo {
        ended_by: CallEnd::Caller,
        status: None,
        duration_ms: 1_000,
        legs: Vec::new(),
        recordings: Vec::new(),
    });
    let end = session.on_event(&hangup, AnswerState::Answered).await;
    assert!(
        end.failure.is_none(),
        "call {n} failed at its end: {:?}",
        end.failure
    );
    assert!(
        !session.is_active(),
        "the session lets its instance go at the hangup"
    );
    (answered_by, ended_on)
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

    // Going back (the API's rollback, which reads the store's history) is one activation and
    // applies to the next call at once.
    registry.activate("acme", "router", 1).unwrap();
    let call = CallInfo {
        to: "+14155550100".into(),
        ..Default::default()
    };
    let answer = registry.start_call("acme").incoming(&call).await;
    assert_eq!(version_of(&answer.value.actions), 1);
    assert_eq!(registry.versions("acme", "router"), (vec![1, 2], Some(1)));
}
