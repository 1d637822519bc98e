//! A call's `Session` when its plugin fails after the first event, or the plugin a call is handed
//! to fails its first: the fallback for the state the caller is in (an answered call is hung up,
//! one in early media refused), the failed instance dropped, and the call's later events
//! reaching no plugin.

use std::time::Duration;

use wasmswitch_plugin_artifacts::FAULTY;
use wasmswitch_plugins::model::{
    Action, AnswerState, CallEnd, CallEvent, CallInfo, DtmfPress, HandOver, HangupInfo, SipStatus,
    Variable,
};
use wasmswitch_plugins::{Fallback, PluginError, Registry, RuntimeConfig, harness};

fn registry() -> Registry {
    let rt = super::runtime(RuntimeConfig {
        deadline: Duration::from_millis(50),
        fuel_metering: false,
        cache_dir: Some(super::cache_dir()),
        ..harness::default_config()
    });
    let registry = Registry::new();
    registry.add(super::load(&rt, "acme", "router", 1, FAULTY));
    registry.activate("acme", "router", 1).unwrap();
    registry
}

fn call() -> CallInfo {
    CallInfo {
        call_id: "c1".into(),
        tenant: "acme".into(),
        to: "+14155550100".into(),
        ..Default::default()
    }
}

/// The faulty plugin spins on the digit 1.
fn spin() -> CallEvent {
    CallEvent::Dtmf(DtmfPress { leg: 0, digit: '1' })
}

#[tokio::test]
async fn a_plugin_that_fails_in_an_answered_call_gets_it_hung_up_and_hears_no_more() {
    let registry = registry();
    let mut session = registry.start_call("acme");
    let first = session.incoming(&call()).await;
    assert!(first.failure.is_none(), "{:?}", first.failure);
    assert!(session.is_active());

    let failed = session.on_event(&spin(), AnswerState::Answered).await;
    assert!(
        matches!(failed.failure, Some(PluginError::Timeout { .. })),
        "{:?}",
        failed.failure
    );
    assert_eq!(failed.value.actions, Fallback::default().answered);
    assert_eq!(failed.value.actions, vec![Action::Hangup(None)]);
    assert!(!session.is_active(), "the failed instance is dropped");

    // Later events reach no plugin and fail nothing.
    let later = session
        .on_event(
            &CallEvent::Dtmf(DtmfPress { leg: 0, digit: '2' }),
            AnswerState::Answered,
        )
        .await;
    assert!(later.failure.is_none() && later.value.actions.is_empty());
    let hangup = CallEvent::Hangup(HangupInfo {
        ended_by: CallEnd::Plugin,
        status: None,
        duration_ms: 1_000,
        legs: Vec::new(),
        recordings: Vec::new(),
    });
    let end = session.on_event(&hangup, AnswerState::Answered).await;
    assert!(end.failure.is_none() && end.value.actions.is_empty());
}

#[tokio::test]
async fn a_caller_in_early_media_gets_the_unanswered_fallback() {
    let registry = registry();
    registry.set_fallback(
        "acme",
        Fallback {
            unanswered: vec![Action::Reject(SipStatus::new(480, "Try Later"))],
            ..Fallback::default()
        },
    );
    let mut session = registry.start_call("acme");
    session.incoming(&call()).await;
    let failed = session.on_event(&spin(), AnswerState::EarlyMedia).await;
    assert!(failed.failure.is_some());
    assert_eq!(
        failed.value.actions,
        vec![Action::Reject(SipStatus::new(480, "Try Later"))]
    );
}

/// The faulty plugin answers a hand-over carrying the variable `fault=bad` with a rejection of
/// status 200: invalid.
fn bad_hand_over(state: AnswerState) -> HandOver {
    HandOver {
        call: call(),
        from_plugin: String::new(),
        variables: vec![Variable {
            name: "fault".into(),
            value: "bad".into(),
        }],
        state,
        recordings: Vec::new(),
    }
}

/// An invalid answer to `handed-over` is the new plugin's failure, like an invalid answer to
/// `incoming`: nothing of it runs, the caller gets the fallback for the state it is in, and the
/// call is left with no plugin (the one that handed it over let it go).
#[tokio::test]
async fn an_invalid_answer_to_handed_over_gets_the_fallback_for_the_callers_state() {
    let registry = registry();
    for (state, fallback) in [
        (AnswerState::Answered, Fallback::default().answered),
        (AnswerState::Unanswered, Fallback::default().unanswered),
    ] {
        let mut session = registry.start_call("acme");
        let first = session.incoming(&call()).await;
        assert!(first.failure.is_none(), "{:?}", first.failure);

        let handed = session
            .hand_off("router", bad_hand_over(state))
            .await
            .expect("the plugin takes calls");
        assert!(
            matches!(handed.failure, Some(PluginError::BadReturn(_))),
            "{state:?}: {:?}",
            handed.failure
        );
        assert_eq!(handed.value.actions, fallback, "{state:?}");
        assert!(handed.value.invalid.is_none());
        assert!(!session.is_active(), "{state:?}: no instance is left");

        let later = session.on_event(&spin(), state).await;
        assert!(later.failure.is_none() && later.value.actions.is_empty());
    }
}
