//! Every example plugin passes its scenarios; the three IVR builds pass the same one.

use wasmswitch::plugins::model::{CallInfo, IvrAction, IvrEvent, IvrStarted, RouteDecision};
use wasmswitch::plugins::scenario::Scenario;
use wasmswitch_plugin_artifacts as artifacts;

async fn passes(plugin: &str, scenario: &str) {
    let h = super::harness(plugin);
    let s = Scenario::from_file(artifacts::scenario(scenario)).expect("scenario");
    let report = s.run(&h).await;
    let failures: Vec<_> = report
        .cases
        .iter()
        .filter(|c| !c.passed())
        .map(|c| format!("{}: {:?}", c.name, c.failures))
        .collect();
    assert!(
        failures.is_empty(),
        "{plugin} failed {scenario}:\n{}",
        failures.join("\n")
    );
    assert_eq!(report.passed(), s.cases.len());
    assert!(report.cases.iter().all(|c| c.fuel > 0), "fuel is measured");
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

    /// The faulty plugin's test is the limits module; here, its one well-behaved answer.
    #[tokio::test]
    pub async fn FAULTY() {
        let h = super::super::harness(artifacts::FAULTY);
        let mut call = h.call().await.unwrap();
        let d = call
            .route(&CallInfo {
                to: "ok".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(matches!(d, RouteDecision::Reject(s) if s.code == 486));
    }
}

#[tokio::test]
async fn harness_api_drives_an_ivr_and_reads_kv_logs_and_fuel() {
    let h = super::harness(artifacts::IVR_MENU);
    h.kv_set("ivr/support", "sip:helpdesk@example.com").await;
    let mut call = h.call().await.unwrap();
    let started = IvrEvent::Started(IvrStarted {
        call: CallInfo {
            call_id: "x1".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    let actions = call.on_ivr_event(&started).await.unwrap();
    assert_eq!(actions.len(), 2);
    let fuel = call
        .last_fuel()
        .expect("fuel metering is on in the harness");
    assert!(fuel > 100, "fuel {fuel}");
    assert_eq!(call.logs()[0].message, "ivr-menu started for call x1");
    assert_eq!(call.counters().get("ivr_started"), Some(&1));
    let actions = call
        .on_ivr_event(&IvrEvent::DigitsCollected(
            wasmswitch::plugins::model::Digits {
                digits: "2".into(),
                terminated: false,
            },
        ))
        .await
        .unwrap();
    assert!(
        matches!(&actions[1], IvrAction::Transfer(t) if t.target == "sip:helpdesk@example.com"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn plugins_write_to_kv_and_it_is_inspectable() {
    let h = super::harness(artifacts::SMS_POLICY);
    let mut call = h.call().await.unwrap();
    let msg = wasmswitch::plugins::model::Message {
        from: "+14155550100".into(),
        to: "+18005550000".into(),
        body: "STOP".into(),
        ..Default::default()
    };
    call.on_message(&msg).await.unwrap();
    let kv = h.kv_snapshot();
    assert_eq!(
        kv.get("optout/+14155550100").map(Vec::as_slice),
        Some(&b"1"[..])
    );
}
