//! Every example plugin passes its scenarios; the three IVR builds pass the same one.

use wasmswitch_plugin_artifacts as artifacts;
use wasmswitch_plugins::model::{
    Action, CallEvent, CallInfo, GatherEnd, GatherResult, HandOver, PlaybackResult,
};
use wasmswitch_plugins::scenario::Scenario;

async fn passes(plugin: &str, scenario: &str) {
    let h = super::harness(plugin);
    super::assert_passes(&h, &artifacts::scenario(scenario), plugin).await;
}

// Each example plugin must have a test here: a missing one is a compile error.
macro_rules! assert_test_exists {
    ($name:ident) => {
        #[allow(non_snake_case, unused_imports)]
        mod $name {
            use super::plugin_tests::$name as _;
        }
    };
}
wasmswitch_plugin_artifacts::foreach_plugin!(assert_test_exists);

#[allow(non_snake_case)]
mod plugin_tests {
    use super::*;

    #[tokio::test]
    pub async fn ROUTER() {
        passes(artifacts::ROUTER, "router").await;
    }

    #[tokio::test]
    pub async fn IVR_MENU() {
        passes(artifacts::IVR_MENU, "ivr-menu").await;
    }

    #[tokio::test]
    pub async fn IVR_MENU_PY() {
        passes(artifacts::IVR_MENU_PY, "ivr-menu").await;
    }

    #[tokio::test]
    pub async fn IVR_MENU_JS() {
        passes(artifacts::IVR_MENU_JS, "ivr-menu").await;
    }

    #[tokio::test]
    pub async fn SMS_POLICY() {
        passes(artifacts::SMS_POLICY, "sms-policy").await;
    }

    #[tokio::test]
    pub async fn DTMF_TRANSFER() {
        passes(artifacts::DTMF_TRANSFER, "dtmf-transfer").await;
    }

    /// Its faults, each expected with `expect-error` (the limits module tests them in depth).
    #[tokio::test]
    pub async fn FAULTY() {
        passes(artifacts::FAULTY, "faulty").await;
    }

    /// Every action and every event of contract 0.2, both ways through the bindings.
    #[tokio::test]
    pub async fn TOUR() {
        passes(artifacts::TOUR, "tour").await;
    }

    /// The tour in Python passes the Rust tour's scenario, unchanged.
    #[tokio::test]
    pub async fn TOUR_PY() {
        passes(artifacts::TOUR_PY, "tour").await;
    }

    /// And in JavaScript.
    #[tokio::test]
    pub async fn TOUR_JS() {
        passes(artifacts::TOUR_JS, "tour").await;
    }
}

/// An `expect-error` that names another failure than the one that happened fails the case.
#[tokio::test]
async fn expect_error_names_the_failure_exactly() {
    let h = super::harness(artifacts::FAULTY);
    let s = Scenario::parse(
        r#"
name: wrong expectations
cases:
  - name: a trap is not a timeout
    steps:
      - event: {incoming: {to: trap}}
        expect-error: timeout
  - name: an answer is not an error
    steps:
      - event: {incoming: {to: "+14155550100"}}
        expect-error: trap
"#,
        false,
    )
    .unwrap();
    let report = s.run(&h).await;
    assert_eq!(report.passed(), 0);
    let failures: Vec<_> = report.cases.iter().flat_map(|c| &c.failures).collect();
    assert!(
        failures[0].contains("expected a timeout error, got: plugin error trap:"),
        "{failures:?}"
    );
    assert!(
        failures[1].contains("expected a trap error, got the answer"),
        "{failures:?}"
    );
}

#[tokio::test]
async fn harness_api_drives_an_ivr_and_reads_kv_logs_and_fuel() {
    let h = super::harness(artifacts::IVR_MENU);
    h.kv_set("ivr/support", "sip:helpdesk@example.com").await;
    let mut call = h.call().await.unwrap();
    let handed_over = CallEvent::HandedOver(HandOver {
        call: CallInfo {
            call_id: "x1".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    // Handed over unanswered: the menu answers, then its play and gather.
    let actions = call.on_event(&handed_over).await.unwrap().actions;
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(actions[0], Action::Answer);
    let fuel = call
        .last_fuel()
        .expect("fuel metering is on in the harness");
    assert!(fuel > 100, "fuel {fuel}");
    assert_eq!(call.logs()[0].message, "ivr-menu started for call x1");
    assert_eq!(call.counters().get("ivr_started"), Some(&1));
    // The greeting ends: nothing to do, the gather waiting after it goes on.
    let played = CallEvent::PlaybackFinished(PlaybackResult::default());
    assert!(call.on_event(&played).await.unwrap().actions.is_empty());
    let gathered = CallEvent::GatherCompleted(GatherResult {
        tag: None,
        digits: "2".into(),
        ended_by: GatherEnd::MaxDigits,
    });
    let actions = call.on_event(&gathered).await.unwrap().actions;
    assert!(
        matches!(&actions[1], Action::Transfer(t) if t.target.target == "sip:helpdesk@example.com"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn plugins_write_to_kv_and_it_is_inspectable() {
    let h = super::harness(artifacts::SMS_POLICY);
    let mut call = h.call().await.unwrap();
    let msg = wasmswitch_plugins::model::Message {
        from: "+14155550100".into(),
        to: "+18005550000".into(),
        body: "STOP".into(),
        ..Default::default()
    };
    assert_eq!(
        call.on_message(&msg).await.unwrap(),
        wasmswitch_plugins::model::SmsDecision::Reply(
            "You have been unsubscribed. Reply START to resubscribe.".into()
        )
    );
    let kv = h.kv_snapshot();
    assert_eq!(
        kv.get("optout/+14155550100").map(Vec::as_slice),
        Some(&b"1"[..])
    );
}

/// The recipes of `docs/contract-by-example.md` are scenario steps in the model's own names:
/// every YAML block there parses as the steps of a case, so a renamed field or case cannot
/// leave the guide behind.
#[test]
fn the_contract_by_example_speaks_the_model() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/contract-by-example.md"
    );
    let doc = std::fs::read_to_string(path).expect("the guide");
    let mut blocks = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line == "```yaml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push(block.join("\n"));
        }
    }
    assert!(blocks.len() >= 15, "{} blocks", blocks.len());
    for block in &blocks {
        let steps: String = block.lines().map(|l| format!("      {l}\n")).collect();
        let text = format!("cases:\n  - name: recipe\n    steps:\n{steps}");
        let scenario =
            Scenario::parse(&text, false).unwrap_or_else(|e| panic!("{e}\nin:\n{block}"));
        assert!(!scenario.cases[0].steps.is_empty(), "{block}");
    }
}

/// The C example of `docs/plugins-in-c.md` is built by hand (its toolchain is not in CI), but
/// its scenario is checked against the model here, so it cannot drift from the contract.
#[test]
fn the_c_example_scenario_speaks_the_model() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/c-router/scenario.yaml"
    );
    let scenario = Scenario::from_file(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(scenario.cases.len() >= 4);
}
