//! The warm pool: instances made ahead of calls, refilled in the background, never shared
//! between calls, and never keeping a retired version alive.

use std::sync::Arc;
use std::time::Duration;

use wasmswitch_plugin_artifacts::{FAULTY, ROUTER};
use wasmswitch_plugins::model::{Action, CallEvent, CallInfo};
use wasmswitch_plugins::{InstanceOptions, RuntimeConfig};

use crate::{load, runtime};

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_fills_after_first_use_and_refills_after_each_take() {
    let rt = runtime(RuntimeConfig {
        warm_instances: 3,
        max_instances: 32,
        ..RuntimeConfig::default()
    });
    let v = load(&rt, "acme", "router", 1, ROUTER);
    assert_eq!(
        v.warm_instances(),
        0,
        "an unused version holds no instances"
    );
    let first = v.instantiate(InstanceOptions::default()).await.unwrap();
    until("the pool to fill", || v.warm_instances() == 3).await;
    // Instances are never shared: each call holds its own until it ends.
    let mut calls = vec![first];
    for _ in 0..5 {
        calls.push(v.instantiate(InstanceOptions::default()).await.unwrap());
    }
    until("the pool to refill", || v.warm_instances() == 3).await;
    let call = CallInfo {
        to: "+14155550100".into(),
        ..Default::default()
    };
    for c in &mut calls {
        // No routes in kv: the router rejects, from its own fresh state each time.
        let answer = c
            .on_event(&CallEvent::Incoming(call.clone()))
            .await
            .unwrap();
        assert!(
            matches!(answer.actions[..], [Action::Reject(_)]),
            "{answer:?}"
        );
    }
    // Harness-style instances (capturing logs) are made new and do not touch the pool.
    let _captured = v
        .instantiate(InstanceOptions {
            capture: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v.warm_instances(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_instance_that_traps_is_not_reused_and_a_retired_version_is_freed() {
    let rt = runtime(RuntimeConfig {
        warm_instances: 2,
        max_instances: 16,
        ..RuntimeConfig::default()
    });
    let v = load(&rt, "acme", "faulty", 1, FAULTY);
    let mut c = v.instantiate(InstanceOptions::default()).await.unwrap();
    let trap = CallInfo {
        to: "trap".into(),
        ..Default::default()
    };
    assert!(c.on_event(&CallEvent::Incoming(trap)).await.is_err());
    drop(c);
    until("the pool to fill", || v.warm_instances() == 2).await;
    // The next call gets a clean instance that answers normally.
    let mut next = v.instantiate(InstanceOptions::default()).await.unwrap();
    let ok = CallInfo {
        to: "+1".into(),
        ..Default::default()
    };
    let answer = next.on_event(&CallEvent::Incoming(ok)).await.unwrap();
    assert!(
        matches!(&answer.actions[..], [Action::Reject(s)] if s.code == 486),
        "{answer:?}"
    );
    drop(next);
    until("the pool to refill", || v.warm_instances() == 2).await;
    // Pooled instances do not point back at their version: dropping the last handle frees it.
    let weak = Arc::downgrade(&v);
    drop(v);
    assert!(
        weak.upgrade().is_none(),
        "the warm pool kept a retired version alive"
    );
}

#[test]
fn versions_active_long_ago_are_freed_and_never_active_ones_kept() {
    let rt = runtime(RuntimeConfig {
        max_instances: 16,
        ..RuntimeConfig::default()
    });
    let registry = wasmswitch_plugins::Registry::new();
    let v1 = load(&rt, "acme", "router", 1, ROUTER);
    for n in 1..=8 {
        registry.add(v1.with_version(n));
    }
    for n in 1..=7 {
        registry.activate("acme", "router", n).unwrap();
    }
    let (loaded, active) = registry.versions("acme", "router");
    // Active 7, the four before it (3-6), and 8, added but never active.
    assert_eq!(loaded, [3, 4, 5, 6, 7, 8]);
    assert_eq!(active, Some(7));
    // Going back to a recent one needs no load; one freed must be loaded again.
    registry.activate("acme", "router", 6).unwrap();
    assert!(registry.activate("acme", "router", 2).is_err());
}
