//! A plugin that computes for its whole deadline hands its thread back at every epoch tick:
//! it never holds a tokio worker that SIP, RTP or another call's plugin is waiting for. A call
//! abandoned while its guest runs leaves nothing behind that can be entered again. And a host
//! (or a tenant) out of instance slots is overloaded, which is not the plugin's failure.

use std::time::{Duration, Instant};

use wasmswitch_plugin_artifacts::{FAULTY, ROUTER};
use wasmswitch_plugins::model::{Action, CallInfo, SipStatus};
use wasmswitch_plugins::{PluginError, RuntimeConfig, harness};

use super::incoming;

fn call(to: &str) -> CallInfo {
    CallInfo {
        call_id: format!("call-{to}"),
        to: to.into(),
        ..Default::default()
    }
}

fn config(deadline: Duration, max_instances: u32) -> RuntimeConfig {
    RuntimeConfig {
        deadline,
        max_instances,
        // Well above the pool: these tests exhaust wasmtime's pool, not the tenant's cap
        // (which has a test of its own).
        max_instances_per_tenant: u32::MAX,
        fuel_metering: false,
        cache_dir: Some(super::cache_dir()),
        ..harness::default_config()
    }
}

// `#[tokio::test]` runs on a current-thread runtime: ONE thread for the looping plugin and every
// other call. If the loop held it, nothing else could run until its deadline.
#[tokio::test]
async fn a_looping_plugin_does_not_hold_the_thread_other_calls_need() {
    let deadline = Duration::from_secs(3);
    let rt = super::runtime(config(deadline, 100));
    let faulty = super::load(&rt, "t", "faulty", 1, FAULTY);
    let router = super::load(&rt, "t", "router", 1, ROUTER);

    let started = Instant::now();
    let looping = tokio::spawn(async move {
        let mut instance = faulty.instantiate(Default::default()).await.unwrap();
        let began = Instant::now();
        let err = instance.on_event(&incoming("loop")).await.unwrap_err();
        (err, began.elapsed())
    });
    // Let the loop start.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let t = Instant::now();
        let mut instance = router.instantiate(Default::default()).await.unwrap();
        let answer = instance
            .on_event(&incoming(&format!("+4420{i}")))
            .await
            .unwrap();
        assert!(
            matches!(answer.actions[..], [Action::Reject(_)]),
            "{answer:?}"
        );
        slowest = slowest.max(t.elapsed());
    }
    let routed_after = started.elapsed();
    assert!(
        !looping.is_finished(),
        "the loop should still be running when the other calls are done"
    );
    // Each route shares the thread with the loop, which yields every 1 ms tick: a route waits
    // a tick or two, not the loop's 3 s deadline.
    assert!(
        routed_after < Duration::from_secs(1),
        "50 calls took {routed_after:?} beside a looping plugin"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "slowest call {slowest:?}"
    );

    let (err, ran) = looping.await.unwrap();
    assert_eq!(err, PluginError::Timeout { deadline });
    assert!(ran >= deadline, "stopped early: {ran:?}");
    assert!(
        ran < deadline + Duration::from_secs(1),
        "stopped late: {ran:?}"
    );
}

#[tokio::test]
async fn a_call_dropped_while_its_guest_runs_leaves_no_enterable_instance_and_no_slot() {
    // One instance slot on the whole runtime: a leaked slot would make the last step fail.
    let rt = super::runtime(config(Duration::from_secs(5), 1));
    let faulty = super::load(&rt, "t", "faulty", 1, FAULTY);

    let mut instance = faulty.instantiate(Default::default()).await.unwrap();
    // The one slot is taken while the instance lives.
    assert!(matches!(
        faulty.instantiate(Default::default()).await,
        Err(PluginError::Overloaded(why)) if !why.contains("tenant")
    ));

    // The caller gives up on the call after 30 ms; the guest is in the middle of its loop.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(30),
        instance.on_event(&incoming("loop")),
    )
    .await;
    assert!(abandoned.is_err(), "the loop cannot have returned");
    assert!(instance.is_poisoned());
    assert_eq!(
        instance.on_event(&incoming("ok")).await.unwrap_err(),
        PluginError::Poisoned
    );

    drop(instance);
    let mut fresh = faulty.instantiate(Default::default()).await.unwrap();
    assert_eq!(
        fresh.on_event(&incoming("ok")).await.unwrap().actions,
        vec![Action::Reject(SipStatus::new(486, "Busy Here"))]
    );
}

#[tokio::test]
async fn a_host_out_of_instance_slots_answers_503_not_the_tenants_fallback() {
    let rt = super::runtime(config(Duration::from_secs(1), 1));
    let faulty = super::load(&rt, "t", "faulty", 1, FAULTY);
    let registry = wasmswitch_plugins::Registry::new();
    registry.add(faulty.clone());
    registry.activate("t", "faulty", 1).unwrap();
    registry.set_fallback(
        "t",
        wasmswitch_plugins::Fallback {
            unanswered: vec![Action::Reject(SipStatus::new(480, "Fallback"))],
            ..Default::default()
        },
    );
    // A running call holds the only slot.
    let held = faulty.instantiate(Default::default()).await.unwrap();
    let mut session = registry.start_call("t");
    let routed = session.incoming(&call("+14155550100")).await;
    assert!(
        matches!(&routed.failure, Some(PluginError::Overloaded(why)) if !why.contains("tenant")),
        "{:?}",
        routed.failure
    );
    assert_eq!(
        routed.value.actions,
        vec![Action::Reject(SipStatus::new(503, "Service Unavailable"))]
    );
    drop(held);
    // With the slot free again the plugin answers (486 from the faulty router).
    let routed = registry
        .start_call("t")
        .incoming(&call("+14155550100"))
        .await;
    assert!(routed.failure.is_none(), "{:?}", routed.failure);
}

#[tokio::test]
async fn a_tenant_at_its_instance_cap_is_overloaded_while_others_are_not() {
    let rt = super::runtime(RuntimeConfig {
        max_instances_per_tenant: 2,
        ..config(Duration::from_secs(1), 10)
    });
    let a = super::load(&rt, "a", "faulty", 1, FAULTY);
    let b = super::load(&rt, "b", "faulty", 1, FAULTY);

    let first = a.instantiate(Default::default()).await.unwrap();
    let second = a.instantiate(Default::default()).await.unwrap();
    assert_eq!(rt.tenant_instances("a"), 2);
    let refused = a.instantiate(Default::default()).await.unwrap_err();
    assert!(
        matches!(&refused, PluginError::Overloaded(why) if why.contains("tenant a")),
        "{refused:?}"
    );
    // Another tenant is not affected.
    let other = b.instantiate(Default::default()).await.unwrap();
    assert_eq!(rt.tenant_instances("b"), 1);

    // A call that ends gives its slot back, whatever became of its instance.
    drop(first);
    let mut again = a.instantiate(Default::default()).await.unwrap();
    assert!(again.on_event(&incoming("trap")).await.is_err());
    drop(again);
    drop(second);
    drop(other);
    assert_eq!((rt.tenant_instances("a"), rt.tenant_instances("b")), (0, 0));
}

#[tokio::test]
async fn a_message_when_the_tenant_is_out_of_slots_is_refused_503_not_given_the_fallback() {
    let rt = super::runtime(RuntimeConfig {
        max_instances_per_tenant: 1,
        ..config(Duration::from_secs(1), 10)
    });
    let policy = super::load(&rt, "t", "sms", 1, wasmswitch_plugin_artifacts::SMS_POLICY);
    let registry = wasmswitch_plugins::Registry::new();
    registry.add(policy.clone());
    registry.activate("t", "sms", 1).unwrap();
    // A fallback that would let messages through unchecked.
    registry.set_fallback(
        "t",
        wasmswitch_plugins::Fallback {
            sms: wasmswitch_plugins::model::SmsDecision::Deliver,
            ..Default::default()
        },
    );
    let held = policy.instantiate(Default::default()).await.unwrap();
    let msg = wasmswitch_plugins::model::Message {
        id: "m1".into(),
        tenant: "t".into(),
        from: "+14155550100".into(),
        to: "+14155550111".into(),
        body: "hi".into(),
        ..Default::default()
    };
    let decided = registry.message("t", &msg).await;
    assert!(
        matches!(decided.failure, Some(PluginError::Overloaded(_))),
        "{:?}",
        decided.failure
    );
    assert_eq!(
        decided.value,
        wasmswitch_plugins::model::SmsDecision::Reject(wasmswitch_plugins::model::SipStatus::new(
            503,
            "Service Unavailable"
        ))
    );
    drop(held);
    assert!(registry.message("t", &msg).await.failure.is_none());
}
