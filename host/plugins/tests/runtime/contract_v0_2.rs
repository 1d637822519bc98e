//! Contract 0.2 on the host: a plugin built against a later compatible 0.2.x loads; what a
//! plugin answers is checked as the contract says (an invalid first answer fails the plugin, an
//! invalid action later fails only that action); and a call's [`Session`] keeps to the plugin
//! versions of its start, hands the call between plugins of either contract, and bounds
//! hand-offs.
//!
//! The example `tour` (built from source) answers with every action and hears every event; its
//! scenario, run in `examples`, converts every type both ways.

use std::sync::Arc;

use wasmswitch_plugin_artifacts::{TOUR, frozen};
use wasmswitch_plugins::model::{
    Action, AgentEnd, AgentResult, AnswerState, CallEvent, CallInfo, HandOver, Variable,
};
use wasmswitch_plugins::{
    Contract, HandOffRefused, KvStore, MAX_HAND_OFFS, MemoryKv, PluginError, PluginId, Registry,
    Runtime, RuntimeConfig, harness,
};

const SALES: &str = "+18005550100";
const SUPPORT: &str = "+18005550102";

fn runtime(kv: Arc<MemoryKv>) -> Runtime {
    Runtime::new(
        RuntimeConfig {
            cache_dir: Some(super::cache_dir()),
            ..harness::default_config()
        },
        kv,
    )
    .expect("runtime")
}

fn id(tenant: &str, name: &str) -> PluginId {
    PluginId {
        tenant: tenant.into(),
        name: name.into(),
        version: 1,
    }
}

fn call_to(to: &str) -> CallInfo {
    CallInfo {
        call_id: "c1".into(),
        tenant: "acme".into(),
        to: to.into(),
        ..Default::default()
    }
}

/// Contract 0.2 is released: its frozen builds (`plugins/fixtures/v0.2.0`, built when it was
/// released) keep loading and passing the scenarios frozen with them.
#[tokio::test]
async fn every_frozen_0_2_plugin_passes_its_frozen_scenario() {
    assert!(frozen::V0_2.len() >= 8, "the 0.2.0 fixtures are all listed");
    super::frozen_plugins_pass("0.2.0", frozen::V0_2).await;
}

#[test]
fn the_frozen_0_2_files_are_the_ones_recorded() {
    super::frozen_files_are_the_ones_recorded("0.2.0", frozen::V0_2);
}

#[tokio::test]
async fn a_plugin_built_against_a_later_compatible_0_2_release_loads() {
    let tour = std::fs::read(TOUR).unwrap();
    let rt = runtime(Arc::new(MemoryKv::new()));
    let p = rt
        .load_blocking(
            id("t", "tour"),
            &frozen::retargeted(&tour, "0.2.0", "0.2.9"),
            &[],
        )
        .expect("0.2.9 loads");
    assert_eq!(p.target.contract, Contract::V0_2);
    assert_eq!(p.target.to_string(), "0.2.9");
    let mut call = p.instantiate(Default::default()).await.unwrap();
    let answer = call
        .on_event(&CallEvent::Incoming(call_to(SALES)))
        .await
        .unwrap();
    assert!(
        matches!(answer.actions[..], [Action::Dial(_)]),
        "{answer:?}"
    );
}

#[tokio::test]
async fn an_invalid_first_answer_fails_the_plugin() {
    let kv = Arc::new(MemoryKv::new());
    // A queue name that would put a line break into a SIP header.
    kv.set("t", "sales/queue", b"sales\r\nVia: evil")
        .await
        .unwrap();
    let p = runtime(kv)
        .load_blocking(id("t", "tour"), &std::fs::read(TOUR).unwrap(), &[])
        .unwrap();
    let mut call = p.instantiate(Default::default()).await.unwrap();
    let err = call
        .on_event(&CallEvent::Incoming(call_to(SALES)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::BadReturn(why) if why.contains("header X-Queue value")),
        "{err:?}"
    );
    assert!(call.is_poisoned());
}

#[tokio::test]
async fn an_invalid_later_action_fails_only_that_action() {
    let kv = Arc::new(MemoryKv::new());
    kv.set(
        "t",
        "support/assistant-parameters",
        b"[\"not\", \"an object\"]",
    )
    .await
    .unwrap();
    let p = runtime(kv)
        .load_blocking(id("t", "tour"), &std::fs::read(TOUR).unwrap(), &[])
        .unwrap();
    let mut call = p.instantiate(Default::default()).await.unwrap();
    call.on_event(&CallEvent::Incoming(call_to(SUPPORT)))
        .await
        .unwrap();
    let answer = call
        .on_event(&CallEvent::Timer("patience".into()))
        .await
        .unwrap();
    let (action, why) = answer.invalid.expect("the agent's parameters are invalid");
    assert!(matches!(action, Action::ConnectAgent(_)), "{action:?}");
    assert_eq!(why.0, "agent parameters are not a JSON object");
    // What came before it stands; the instance goes on.
    assert!(
        answer
            .actions
            .iter()
            .all(|a| !matches!(a, Action::ConnectAgent(_)))
    );
    assert!(!call.is_poisoned());
}

/// A registry with the tour as the tenant's router (0.2) and the frozen 0.1 IVR as `ivr-menu`,
/// the plugin the tour hands failed assistant calls to.
fn registry(rt: &Runtime) -> Registry {
    let registry = Registry::new();
    registry.add(
        rt.load_blocking(id("acme", "router"), &std::fs::read(TOUR).unwrap(), &[])
            .unwrap(),
    );
    registry.add(
        rt.load_blocking(
            id("acme", "ivr-menu"),
            &frozen::component("0.1.0", "ivr-menu"),
            &[],
        )
        .unwrap(),
    );
    registry.activate("acme", "router", 1).unwrap();
    registry.activate("acme", "ivr-menu", 1).unwrap();
    registry
}

#[tokio::test]
async fn a_session_hands_a_call_from_a_0_2_plugin_to_a_0_1_ivr_pinned_at_its_start() {
    let rt = runtime(Arc::new(MemoryKv::new()));
    let registry = registry(&rt);
    let mut session = registry.start_call("acme");
    // The IVR is deactivated after the call started: the call keeps the set it started with.
    registry.deactivate("acme", "ivr-menu");

    let answer = session.incoming(&call_to(SUPPORT)).await;
    assert!(answer.failure.is_none(), "{:?}", answer.failure);
    assert_eq!(answer.value.actions[0], Action::Answer);
    let answer = session
        .on_event(&CallEvent::Timer("patience".into()), AnswerState::Answered)
        .await;
    assert!(
        answer
            .value
            .actions
            .iter()
            .any(|a| matches!(a, Action::ConnectAgent(_)))
    );
    let failed = CallEvent::AgentEnded(AgentResult {
        name: "support-assistant".into(),
        reason: AgentEnd::Error("the agent closed the socket".into()),
        data: None,
        duration_ms: 1_000,
    });
    let answer = session.on_event(&failed, AnswerState::Answered).await;
    let Some(Action::HandOff(hand_off)) = answer.value.actions.last() else {
        panic!("expected a hand-off, got {answer:?}");
    };
    assert_eq!(hand_off.plugin, "ivr-menu");

    let hand_over = HandOver {
        call: call_to(SUPPORT),
        variables: hand_off.variables.clone(),
        state: AnswerState::Answered,
        ..Default::default()
    };
    let handed = session
        .hand_off(&hand_off.plugin, hand_over)
        .await
        .expect("the pinned set still has ivr-menu");
    assert!(handed.failure.is_none(), "{:?}", handed.failure);
    // The 0.1 IVR, through the adapter, on an answered call: no answer of its own.
    assert!(
        matches!(
            handed.value.actions[..],
            [Action::Play(_), Action::Gather(_)]
        ),
        "{handed:?}"
    );
    let now = session.plugin().expect("the IVR handles the call");
    assert_eq!(
        (&*now.id.name, now.target.contract),
        ("ivr-menu", Contract::V0_1)
    );

    // A call that starts now does not see the deactivated IVR.
    let mut later = registry.start_call("acme");
    later.incoming(&call_to(SUPPORT)).await;
    assert_eq!(
        later
            .hand_off("ivr-menu", HandOver::default())
            .await
            .unwrap_err(),
        HandOffRefused::UnknownPlugin("ivr-menu".into())
    );
}

#[tokio::test]
async fn hand_offs_are_refused_to_unknown_plugins_and_past_the_limit() {
    let rt = runtime(Arc::new(MemoryKv::new()));
    let registry = registry(&rt);
    let mut session = registry.start_call("acme");
    session.incoming(&call_to(SUPPORT)).await;
    assert_eq!(
        session
            .hand_off("nope", HandOver::default())
            .await
            .unwrap_err(),
        HandOffRefused::UnknownPlugin("nope".into())
    );
    // Refused: the instance that asked keeps the call.
    assert_eq!(&*session.plugin().unwrap().id.name, "router");
    let variables = vec![Variable {
        name: "customer-name".into(),
        value: "Ann".into(),
    }];
    for n in 0..MAX_HAND_OFFS {
        let target = if n % 2 == 0 { "router" } else { "ivr-menu" };
        let hand_over = HandOver {
            call: call_to(SUPPORT),
            variables: variables.clone(),
            state: AnswerState::Answered,
            ..Default::default()
        };
        let handed = session.hand_off(target, hand_over).await.unwrap();
        assert!(
            handed.failure.is_none(),
            "hand-off {n}: {:?}",
            handed.failure
        );
        assert_eq!(&*session.plugin().unwrap().id.name, target);
    }
    assert_eq!(
        session
            .hand_off("router", HandOver::default())
            .await
            .unwrap_err(),
        HandOffRefused::LimitReached
    );
}
