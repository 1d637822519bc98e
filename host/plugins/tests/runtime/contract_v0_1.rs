//! Contract 0.1 is a promise: the 0.1.0 builds of the example plugins, frozen in
//! `plugins/fixtures/v0.1.0` (its README says how they were built), load on this host and pass
//! the scenarios they passed when 0.1 was current, also frozen there (`faulty.yaml` came later:
//! the harness of that time could not match `expect-error`, but the plugin failed the same way). A plugin built against a
//! later compatible 0.1.x loads; one built against a contract the host does not know is refused
//! with the versions it supports.
//!
//! On calls the 0.1 plugins run through the adapter onto the 0.2 event model: the frozen builds
//! are driven here with 0.2 events, as the calls layer will drive them, and must decide what
//! they decided in 0.1 (`docs/contract-0.2.md`, "0.1 -> 0.2").

use wasmswitch_plugin_artifacts::frozen;
use wasmswitch_plugins::harness::{self, Harness, HarnessError};
use wasmswitch_plugins::scenario::Scenario;
use wasmswitch_plugins::{Contract, LoadError, RuntimeConfig};

fn harness_of(bytes: &[u8]) -> Result<Harness, HarnessError> {
    Harness::from_bytes(
        bytes,
        RuntimeConfig {
            cache_dir: Some(super::cache_dir()),
            ..harness::default_config()
        },
    )
}

/// Every frozen plugin, from the fixture list itself: one added there is tested without
/// anything else to remember.
#[tokio::test]
async fn every_frozen_plugin_passes_its_frozen_scenario() {
    assert!(frozen::V0_1.len() >= 7, "the 0.1.0 fixtures are all listed");
    super::frozen_plugins_pass("0.1.0", frozen::V0_1).await;
}

#[tokio::test]
async fn a_plugin_built_against_a_later_compatible_release_loads() {
    let router = frozen::component("0.1.0", "router");
    let h = harness_of(&frozen::retargeted(&router, "0.1.0", "0.1.9")).expect("0.1.9 loads");
    assert_eq!(h.plugin().target.to_string(), "0.1.9");
    assert_eq!(h.plugin().target.contract, Contract::V0_1);
    let s = Scenario::from_file(frozen::scenario("0.1.0", "router")).expect("scenario");
    assert_eq!(s.run(&h).await.passed(), s.cases.len());
}

#[test]
fn a_plugin_built_against_an_unknown_contract_is_refused_with_the_supported_versions() {
    let router = frozen::component("0.1.0", "router");
    let err = harness_of(&frozen::retargeted(&router, "0.1.0", "0.9.0")).unwrap_err();
    let message = err.to_string();
    match err {
        HarnessError::Load(LoadError::UnsupportedContract { found, supported }) => {
            assert_eq!(found, "0.9.0");
            assert_eq!(supported, Contract::supported_list());
        }
        other => panic!("expected UnsupportedContract, got {other:?}"),
    }
    assert!(
        message.contains("0.9.0") && message.contains("supports 0.1, 0.2"),
        "{message}"
    );
}

/// The fixtures are the bytes their README lists: a rebuilt or replaced file fails here.
#[test]
fn the_frozen_files_are_the_ones_recorded() {
    super::frozen_files_are_the_ones_recorded("0.1.0", frozen::V0_1);
}

/// Runs 0.2 scenario text on a frozen 0.1 plugin, through the adapter.
async fn adapted(plugin: &str, scenario: &str) {
    let h = harness_of(&frozen::component("0.1.0", plugin))
        .unwrap_or_else(|e| panic!("load {plugin}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{plugin}-adapted.yaml"));
    std::fs::write(&path, scenario).unwrap();
    super::assert_passes(&h, &path, &format!("the frozen 0.1.0 {plugin}, adapted")).await;
}

#[tokio::test]
async fn a_0_1_router_decides_a_0_2_call_as_it_routed() {
    adapted(
        "router",
        r##"
kv:
  routes: |
    +1800     08-18  us-daytime
    +1        *      us-trunk
cases:
  - name: forward becomes a dial of one group, each target with the trunk and timeout
    steps:
      - event: {incoming: {from: "+442071234567", to: "+18005550100", received-at: 36000000}}
        expect:
          - dial:
              groups: [{strategy: sequential, targets: [{target: "+18005550100", trunk: us-daytime, headers: [], timeout-ms: 30000}]}]
              timeout-ms: null
              caller-id: null
              ringback: null
              tag: null
      - event: {leg-ringing: {id: 1, target: "+18005550100"}}
        expect: []
      - event: {leg-answered: {id: 1, target: "+18005550100"}}
        expect: []
      - event: {dtmf: {leg: 0, digit: "5"}}
        expect: []
      - event: {hangup: {ended-by: caller, duration-ms: 5000}}
        expect: []
  - name: reject stays a reject
    steps:
      - event: {incoming: {to: "+999"}}
        expect: [{reject: {code: 404}}]
"##,
    )
    .await;
}

#[tokio::test]
async fn a_0_1_dtmf_handler_hears_the_callees_digits_after_its_forward() {
    adapted(
        "dtmf-transfer",
        r##"
kv:
  ext/200: "sip:reception@pbx.example.com"
cases:
  - name: "*9 200 # from the bridged leg is a blind transfer"
    steps:
      - event: {incoming: {to: "+14155550100"}}
        expect: [{dial: {groups: [{targets: [{target: "+14155550100", trunk: default}]}]}}]
      - event: {leg-answered: {id: 1, target: "+14155550100"}}
        expect: []
      - event: {dtmf: {leg: 1, digit: "*"}}
      - event: {dtmf: {leg: 1, digit: "9"}}
      - event: {dtmf: {leg: 1, digit: "2"}}
      - event: {dtmf: {leg: 1, digit: "0"}}
      - event: {dtmf: {leg: 1, digit: "0"}}
        expect: []
      - event: {dtmf: {leg: 1, digit: "#"}}
        expect:
          - transfer: {target: {target: "sip:reception@pbx.example.com", trunk: null, headers: [], timeout-ms: null}, mode: blind, tag: null}
    expect-counters: {dtmf_transfer: 1}
  - name: the caller's digits are the caller's (leg 0)
    steps:
      - event: {incoming: {to: "200"}}
      - event: {dtmf: {leg: 0, digit: "*"}}
      - event: {dtmf: {leg: 0, digit: "9"}}
      - event: {dtmf: {leg: 0, digit: "1"}}
      - event: {dtmf: {leg: 0, digit: "#"}}
        expect: []
"##,
    )
    .await;
}

#[tokio::test]
async fn a_0_1_ivr_hears_only_the_last_outcome_and_is_answered_for() {
    adapted(
        "ivr-menu",
        r##"
kv:
  ivr/sales: "sip:sales@example.com"
cases:
  - name: handed over unanswered, the call is answered first; gather defaults are explicit
    steps:
      - event: {handed-over: {call: {call-id: c1}, from-plugin: router, state: unanswered}}
        expect:
          - answer
          - play: {audio: {prompt: welcome}, repeat: 1, barge-in: false, tag: null}
          - gather: {prompts: [{prompt: main-menu}], max-digits: 1, terminators: "", timeout-ms: 5000, inter-digit-timeout-ms: 3000, tag: null}
    expect-counters: {ivr_started: 1}
    expect-logs: ["ivr-menu started for call c1"]
  - name: the greeting's end is not the flow's; the gather's is, and busy returns to the menu
    steps:
      - event: {handed-over: {state: answered}}
        expect: [{play: {}}, {gather: {}}]
      - event: {playback-finished: {}}
        expect: []
      - event: {gather-completed: {digits: "1", ended-by: max-digits}}
        expect:
          - set-variable: {name: menu-choice, value: sales}
          - dial: {groups: [{strategy: sequential, targets: [{target: "sip:sales@example.com", timeout-ms: 30000}]}]}
      - event: {leg-ended: {leg: {id: 1, target: "sip:sales@example.com"}, status: {code: 486}, end: rejected}}
        expect: []
      - event: {dial-completed: {outcome: busy, legs: [{leg: {id: 1, target: "sip:sales@example.com"}, status: {code: 486}, end: rejected}]}}
        expect: [{play: {audio: {prompt: sales-unavailable}}}, {gather: {}}]
      - event: {hangup: {ended-by: caller}}
        expect: []
  - name: a gather that timed out with no digit is 0.1's timeout
    steps:
      - event: {handed-over: {state: answered}}
      - event: {playback-finished: {}}
      - event: {gather-completed: {digits: "", ended-by: timeout}}
        expect: [{play: {audio: {prompt: no-input}}}, {gather: {}}]
  - name: the caller's digit outside a gather is 0.1's dtmf; another leg's is not told
    steps:
      - event: {handed-over: {state: answered}}
      - event: {dtmf: {leg: 0, digit: "5"}}
        expect: []
      - event: {dtmf: {leg: 1, digit: "5"}}
        expect: []
  - name: a 0.1 IVR may be a number's first plugin
    steps:
      - event: {incoming: {call-id: c9}}
        expect: [answer, {play: {}}, {gather: {}}]
    expect-logs: ["ivr-menu started for call c9"]
"##,
    )
    .await;
}

#[tokio::test]
async fn a_0_1_policy_decides_0_2_messages_and_ignores_reports() {
    adapted(
        "sms-policy",
        r##"
cases:
  - name: a message with SIP headers (0.1 has none) is decided as before
    steps:
      - message: {from: "+14155550100", to: "+18005550000", body: "STOP", headers: [{name: X-Carrier, value: a}]}
        expect: {reply: "You have been unsubscribed. Reply START to resubscribe."}
      - delivery: {id: m1, to: "+14155550100", status: {delivered: 200}}
    expect-kv: {optout/+14155550100: "1"}
"##,
    )
    .await;
}

/// Whether the last event reached the 0.1 flow: the harness meters fuel, and a call the adapter
/// answered itself burns none.
fn told(call: &wasmswitch_plugins::CallInstance) -> bool {
    call.last_fuel().expect("the harness meters fuel") > 0
}

#[tokio::test]
async fn the_adapter_tells_a_0_1_ivr_only_what_0_1_told_it() {
    use wasmswitch_plugins::model::{
        Action, ActionFailure, CallEvent, DialOutcome, DialResult, DtmfPress, FailureReason,
        GatherEnd, GatherResult, HandOver, PlaybackResult,
    };
    let h = harness_of(&frozen::component("0.1.0", "ivr-menu")).unwrap();
    let dtmf = |leg, digit| CallEvent::Dtmf(DtmfPress { leg, digit });
    let played = |barged_in| {
        CallEvent::PlaybackFinished(PlaybackResult {
            tag: None,
            barged_in,
        })
    };
    let gathered = |digits: &str| {
        CallEvent::GatherCompleted(GatherResult {
            tag: None,
            digits: digits.into(),
            ended_by: GatherEnd::MaxDigits,
        })
    };

    let mut call = h.call().await.unwrap();
    call.on_event(&CallEvent::HandedOver(HandOver::default()))
        .await
        .unwrap();
    assert!(told(&call));
    // During the greeting (a play) the caller's digits are the flow's; another leg's never.
    call.on_event(&dtmf(0, '5')).await.unwrap();
    assert!(told(&call));
    call.on_event(&dtmf(1, '5')).await.unwrap();
    assert!(!told(&call));
    // The greeting's end is not the answer's last outcome: the adapter answers it.
    call.on_event(&played(None)).await.unwrap();
    assert!(!told(&call));
    // While the gather runs, digits are the gather's.
    call.on_event(&dtmf(0, '5')).await.unwrap();
    assert!(!told(&call));
    // 1: sales. While the dial runs the flow hears nothing; its end comes back (return on
    // failure) as 0.1's dial-completed.
    let answer = call.on_event(&gathered("1")).await.unwrap();
    assert!(told(&call));
    assert!(matches!(
        answer.actions[..],
        [Action::SetVariable(_), Action::Dial(_)]
    ));
    call.on_event(&dtmf(0, '9')).await.unwrap();
    assert!(!told(&call));
    let busy = CallEvent::DialCompleted(DialResult {
        tag: None,
        outcome: DialOutcome::Busy,
        answered: None,
        legs: Vec::new(),
    });
    let answer = call.on_event(&busy).await.unwrap();
    assert!(told(&call));
    assert!(matches!(
        answer.actions[..],
        [Action::Play(_), Action::Gather(_)]
    ));
    // A digit over a barge-in play ends the answer there and reaches the flow as dtmf; the
    // gather that would have followed is not waited for.
    call.on_event(&played(Some('7'))).await.unwrap();
    assert!(told(&call));
    call.on_event(&gathered("2")).await.unwrap();
    assert!(!told(&call));

    // 2: support, a blind transfer, after which the flow is not called again but for the
    // hangup.
    let mut call = h.call().await.unwrap();
    call.on_event(&CallEvent::HandedOver(HandOver::default()))
        .await
        .unwrap();
    call.on_event(&played(None)).await.unwrap();
    let answer = call.on_event(&gathered("2")).await.unwrap();
    assert!(matches!(
        answer.actions[..],
        [Action::SetVariable(_), Action::Transfer(_)]
    ));
    call.on_event(&dtmf(0, '1')).await.unwrap();
    assert!(!told(&call));

    // An action that failed drops the rest of its answer: nothing the flow waits for is coming.
    let mut call = h.call().await.unwrap();
    let answer = call
        .on_event(&CallEvent::HandedOver(HandOver::default()))
        .await
        .unwrap();
    let failed = CallEvent::ActionFailed(ActionFailure {
        action: answer.actions[1].clone(),
        reason: FailureReason::MissingPrompt("welcome".into()),
        message: "no prompt welcome".into(),
    });
    assert!(call.on_event(&failed).await.unwrap().actions.is_empty());
    assert!(!told(&call));
    assert!(
        call.logs()
            .iter()
            .any(|l| l.message.contains("play failed and was dropped")),
        "{:?}",
        call.logs()
    );
    call.on_event(&gathered("1")).await.unwrap();
    assert!(!told(&call));
}
