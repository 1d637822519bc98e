//! Scenario files: events in, expected decisions out, so plugin authors in any language can test
//! without writing Rust. `wasmswitch plugin test PLUGIN.wasm SCENARIO.yaml` runs one.
//!
//! ```yaml
//! name: my router
//! kv: {routes/+44: uk-trunk}          # loaded before every case
//! cases:
//!   - name: UK numbers go to the UK trunk
//!     kv: {}                           # more keys for this case only
//!     steps:                           # one call (one instance) per case
//!       - event: {incoming: {from: "+14155550100", to: "+442071234567"}}
//!         expect: [{dial: {groups: [{targets: [{trunk: uk-trunk}]}]}}]
//!       - event: {dtmf: {leg: 1, digit: "*"}}
//!         expect: []
//!     expect-kv: {seen/+14155550100: "1", gone: null}
//!     expect-counters: {routed: 1}
//!     expect-logs: ["routing +442071234567"]
//! ```
//!
//! A step is one of `event` (a call event; the answer is the list of actions), `message` (an
//! SMS; the answer is the decision) or `delivery` (a delivery report; no answer), in the model's
//! JSON form ([`crate::model`]). Contract 0.1 plugins run these through the host's adapter, as
//! on a real call; 0.1 scenario files use 0.1's own steps instead, `route` (a 0.1 call-info),
//! `call-event` and `ivr` (0.1 events), which only 0.1 plugins answer.
//!
//! `expect` is matched as a subset of the actual answer: every key given must be there with the
//! same value, lists must have the same length, and keys left out are not checked. An action in
//! the answer that breaks the contract's rules fails the step (the switch would fail it with
//! `action-failed`). `expect-error: timeout | out-of-memory | trap | bad-return | poisoned |
//! not-exported | instantiate | overloaded` expects the call to fail that way instead. JSON
//! files work too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::harness::{Harness, TENANT};
use crate::instance::CallInstance;
use crate::model::{self, CallEvent, DeliveryReport, Message, v0_1};

/// A scenario file could not be read or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid scenario: {message}")]
    Parse { path: String, message: String },
}

/// A parsed scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    pub cases: Vec<Case>,
}

/// One call (one fresh instance) and what must be true after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect_kv: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub expect_counters: BTreeMap<String, u64>,
    #[serde(default)]
    pub expect_logs: Vec<String>,
}

/// What a step sends to the plugin.
#[derive(Debug, Clone)]
pub enum Input {
    /// A call event (`call-handler.on-event`).
    Event(CallEvent),
    /// An SMS (`message-policy.on-message`).
    Message(Message),
    /// A delivery report (`message-policy.on-delivery`).
    Delivery(DeliveryReport),
    /// Contract 0.1: `call-routing.route`.
    Route(v0_1::CallInfo),
    /// Contract 0.1: `call-routing.on-call-event`.
    CallEvent(v0_1::CallEvent),
    /// Contract 0.1: `ivr-flow.on-event`.
    Ivr(v0_1::IvrEvent),
}

/// One call into the plugin and its expected answer.
#[derive(Debug, Clone)]
pub struct Step {
    pub input: Input,
    pub expect: Option<Value>,
    pub expect_error: Option<String>,
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Value::Object(mut map) = Value::deserialize(d)? else {
            return Err(D::Error::custom("a step must be a map"));
        };
        let expect = map.remove("expect");
        let expect_error = match map.remove("expect-error") {
            None => None,
            Some(Value::String(s))
                if crate::PluginError::KINDS.contains(&s.replace('-', "_").as_str()) =>
            {
                Some(s)
            }
            Some(Value::String(s)) => {
                return Err(D::Error::custom(format!(
                    "expect-error {s:?} is not one of {}",
                    crate::PluginError::KINDS.join(", ").replace('_', "-")
                )));
            }
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "expect-error must be a string, not {other}"
                )));
            }
        };
        if map.len() != 1 {
            let keys: Vec<_> = map.keys().cloned().collect();
            return Err(D::Error::custom(format!(
                "a step needs exactly one of event, message, delivery (or 0.1's route, call-event, ivr), besides expect and expect-error; found {keys:?}"
            )));
        }
        let Some((kind, body)) = map.into_iter().next() else {
            return Err(D::Error::custom("empty step"));
        };
        let parse =
            |what: &str, e: serde_json::Error| D::Error::custom(format!("bad {what} in step: {e}"));
        let input = match kind.as_str() {
            "event" => Input::Event(serde_json::from_value(body).map_err(|e| parse("event", e))?),
            "delivery" => {
                Input::Delivery(serde_json::from_value(body).map_err(|e| parse("delivery", e))?)
            }
            "route" => Input::Route(serde_json::from_value(body).map_err(|e| parse("route", e))?),
            "call-event" => {
                Input::CallEvent(serde_json::from_value(body).map_err(|e| parse("call-event", e))?)
            }
            "ivr" => Input::Ivr(serde_json::from_value(body).map_err(|e| parse("ivr", e))?),
            "message" => {
                Input::Message(serde_json::from_value(body).map_err(|e| parse("message", e))?)
            }
            other => {
                return Err(D::Error::custom(format!(
                    "unknown step kind {other:?}: use event, message or delivery (or 0.1's route, call-event, ivr)"
                )));
            }
        };
        Ok(Step {
            input,
            expect,
            expect_error,
        })
    }
}

impl Scenario {
    /// Reads a `.yaml`/`.yml` or `.json` scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&text, is_json).map_err(|message| ScenarioError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses scenario text (YAML, of which JSON is a subset, unless `json` is set).
    pub fn parse(text: &str, json: bool) -> Result<Self, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_norway::from_str(text).map_err(|e| e.to_string())
        }
    }

    /// Runs every case against the plugin, each on a fresh instance with a fresh `kv`.
    pub async fn run(&self, harness: &Harness) -> Report {
        let mut cases = Vec::with_capacity(self.cases.len());
        for case in &self.cases {
            cases.push(self.run_case(harness, case).await);
        }
        Report { cases }
    }

    async fn run_case(&self, harness: &Harness, case: &Case) -> CaseReport {
        harness.kv_clear().await;
        for (k, v) in self.kv.iter().chain(&case.kv) {
            harness.kv_set(k, v).await;
        }
        let mut report = CaseReport {
            name: case.name.clone(),
            failures: Vec::new(),
            fuel: 0,
        };
        let mut instance = match harness.call().await {
            Ok(i) => i,
            Err(e) => {
                report.failures.push(format!("cannot instantiate: {e}"));
                return report;
            }
        };
        for (n, step) in case.steps.iter().enumerate() {
            let outcome = run_step(&mut instance, &step.input).await;
            report.fuel += instance.last_fuel().unwrap_or(0);
            if let Some(why) = check_step(step, outcome) {
                report.failures.push(format!("step {}: {why}", n + 1));
                break;
            }
        }
        for (key, want) in &case.expect_kv {
            let got = harness.kv_get(key).await;
            if &got != want {
                report
                    .failures
                    .push(format!("kv {key:?}: expected {want:?}, found {got:?}"));
            }
        }
        let counters = instance.counters();
        for (name, want) in &case.expect_counters {
            let got = counters.get(name).copied().unwrap_or(0);
            if got != *want {
                report
                    .failures
                    .push(format!("counter {name:?}: expected {want}, found {got}"));
            }
        }
        for want in &case.expect_logs {
            if !instance.logs().iter().any(|l| l.message.contains(want)) {
                let seen: Vec<_> = instance.logs().iter().map(|l| &l.message).collect();
                report
                    .failures
                    .push(format!("no log line contains {want:?}; lines: {seen:?}"));
            }
        }
        report
    }
}

/// Why a step produced no answer: the plugin failed (which a step may expect), or the harness
/// could not express the answer.
#[derive(Debug)]
enum StepError {
    Plugin(crate::PluginError),
    Harness(String),
}

impl From<crate::PluginError> for StepError {
    fn from(e: crate::PluginError) -> Self {
        StepError::Plugin(e)
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Plugin(e) => write!(f, "plugin error {}: {e}", error_name(e)),
            StepError::Harness(e) => f.write_str(e),
        }
    }
}

/// A plugin error's name as scenario files write it (`out-of-memory`).
fn error_name(e: &crate::PluginError) -> String {
    e.kind().replace('_', "-")
}

async fn run_step(instance: &mut CallInstance, input: &Input) -> Result<Value, StepError> {
    let as_json =
        |v: Result<Value, serde_json::Error>| v.map_err(|e| StepError::Harness(e.to_string()));
    match input {
        Input::Event(e) => {
            let e = match e.clone() {
                CallEvent::Incoming(call) => CallEvent::Incoming(with_call_defaults(call)),
                CallEvent::HandedOver(mut h) => {
                    h.call = with_call_defaults(h.call);
                    CallEvent::HandedOver(h)
                }
                other => other,
            };
            let answer = instance.on_event(&e).await?;
            if let Some((action, why)) = answer.invalid {
                return Err(StepError::Harness(format!(
                    "action {} of the answer ({}) is invalid: {why}; the switch would run the {} before it and answer action-failed (invalid)",
                    answer.actions.len() + 1,
                    action.name(),
                    answer.actions.len()
                )));
            }
            as_json(serde_json::to_value(answer.actions))
        }
        Input::Message(m) => {
            let mut m = m.clone();
            if m.id.is_empty() {
                m.id = "test-message".into();
            }
            if m.tenant.is_empty() {
                m.tenant = TENANT.into();
            }
            let d = instance.on_message(&m).await?;
            as_json(serde_json::to_value(d))
        }
        Input::Delivery(r) => {
            let mut r = r.clone();
            if r.tenant.is_empty() {
                r.tenant = TENANT.into();
            }
            instance.on_delivery(&r).await?;
            Ok(Value::Null)
        }
        Input::Route(call) => {
            let call = with_call_defaults_v0_1(call.clone());
            let d = instance.route_v0_1(&call).await?;
            as_json(serde_json::to_value(d))
        }
        Input::CallEvent(e) => {
            let a = instance.on_call_event_v0_1(e).await?;
            as_json(serde_json::to_value(a))
        }
        Input::Ivr(e) => {
            let e = match e.clone() {
                v0_1::IvrEvent::Started(mut s) => {
                    s.call = with_call_defaults_v0_1(s.call);
                    v0_1::IvrEvent::Started(s)
                }
                other => other,
            };
            let a = instance.on_ivr_event_v0_1(&e).await?;
            as_json(serde_json::to_value(a))
        }
    }
}

fn with_call_defaults(mut call: model::CallInfo) -> model::CallInfo {
    fill_call(
        &mut call.call_id,
        &mut call.tenant,
        &mut call.source_address,
    );
    call
}

fn with_call_defaults_v0_1(mut call: v0_1::CallInfo) -> v0_1::CallInfo {
    fill_call(
        &mut call.call_id,
        &mut call.tenant,
        &mut call.source_address,
    );
    call
}

/// What a scenario leaves out of a call's info: a Call-ID, the harness's tenant, an address.
fn fill_call(call_id: &mut String, tenant: &mut String, source_address: &mut String) {
    for (field, default) in [
        (call_id, "test-call"),
        (tenant, TENANT),
        (source_address, "127.0.0.1:5060"),
    ] {
        if field.is_empty() {
            *field = default.into();
        }
    }
}

fn check_step(step: &Step, outcome: Result<Value, StepError>) -> Option<String> {
    match (&step.expect_error, outcome) {
        (Some(kind), Err(StepError::Plugin(e))) if error_name(&e) == kind.replace('_', "-") => None,
        (Some(kind), Err(e)) => Some(format!("expected a {kind} error, got: {e}")),
        (Some(kind), Ok(v)) => Some(format!("expected a {kind} error, got the answer {v}")),
        (None, Err(e)) => Some(e.to_string()),
        (None, Ok(actual)) => {
            let expected = step.expect.as_ref()?;
            let mut path = String::new();
            (!matches(expected, &actual, &mut path)).then(|| {
                format!(
                    "at {}: expected {expected}, got {actual}",
                    display_path(&path)
                )
            })
        }
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "the top" } else { path }
}

/// Whether `expected` is a subset of `actual` (see the module docs). On a mismatch `path` names
/// where it is.
pub fn matches(expected: &Value, actual: &Value, path: &mut String) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, ev)| {
            let len = path.len();
            path.push('.');
            path.push_str(k);
            let ok = a.get(k).is_some_and(|av| matches(ev, av, path));
            if ok {
                path.truncate(len);
            }
            ok
        }),
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                path.push_str(&format!(
                    " (list of {} where {} expected)",
                    a.len(),
                    e.len()
                ));
                return false;
            }
            e.iter().zip(a).enumerate().all(|(i, (ev, av))| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let ok = matches(ev, av, path);
                if ok {
                    path.truncate(len);
                }
                ok
            })
        }
        // `{hangup: null}` in YAML and `"hangup"`-style unit variants both appear; numbers compare
        // by value.
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        (e, a) => e == a,
    }
}

/// The outcome of a scenario run.
#[derive(Debug, Clone)]
pub struct Report {
    pub cases: Vec<CaseReport>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    /// Fuel used by all the case's calls (a proxy for instructions executed).
    pub fuel: u64,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Report {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_matching() {
        let actual = json!({"forward": {"targets": ["a"], "trunk": "t", "timeout-ms": 30000}});
        let mut p = String::new();
        assert!(matches(
            &json!({"forward": {"trunk": "t"}}),
            &actual,
            &mut p
        ));
        assert!(!matches(
            &json!({"forward": {"trunk": "u"}}),
            &actual,
            &mut p
        ));
        assert_eq!(p, ".forward.trunk");
        let mut p = String::new();
        assert!(!matches(
            &json!({"forward": {"targets": []}}),
            &actual,
            &mut p
        ));
        assert!(p.contains("list of 1 where 0 expected"), "{p}");
        let mut p = String::new();
        assert!(!matches(&json!({"reject": {}}), &actual, &mut p));
        assert!(matches(
            &json!({"hangup": null}),
            &json!({"hangup": null}),
            &mut p
        ));
        assert!(!matches(
            &json!({"hangup": null}),
            &json!({"hangup": 486}),
            &mut p
        ));
    }

    #[test]
    fn steps_parse_with_clear_errors() {
        let s = Scenario::parse(
            "cases:\n  - name: x\n    steps:\n      - ivr: timeout\n        expect: []\n      - route: {to: '+1'}\n",
            false,
        )
        .unwrap();
        assert!(matches!(
            s.cases[0].steps[0].input,
            Input::Ivr(v0_1::IvrEvent::Timeout)
        ));
        let s = Scenario::parse(
            "cases:\n  - name: x\n    steps:\n      - event: {gather-completed: {digits: '1', ended-by: max-digits}}\n      - delivery: {id: m, to: '+1', status: {delivered: 200}}\n",
            false,
        )
        .unwrap();
        assert!(matches!(
            s.cases[0].steps[0].input,
            Input::Event(CallEvent::GatherCompleted(_))
        ));
        assert!(matches!(s.cases[0].steps[1].input, Input::Delivery(_)));
        let e = Scenario::parse("cases:\n  - name: x\n    steps:\n      - dial: {}\n", false)
            .unwrap_err();
        assert!(e.contains("unknown step kind \"dial\""), "{e}");
        let e = Scenario::parse(
            "cases:\n  - name: x\n    steps:\n      - route: {}\n        ivr: timeout\n",
            false,
        )
        .unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = Scenario::parse("cases:\n  - name: x\n    stepz: []\n", false).unwrap_err();
        assert!(e.contains("stepz"), "{e}");
        // An expect-error that names no failure the harness reports could never match.
        let e = Scenario::parse(
            "cases:\n  - name: x\n    steps:\n      - route: {}\n        expect-error: crash\n",
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("expect-error \"crash\" is not one of timeout"),
            "{e}"
        );
        let ok = Scenario::parse(
            "cases:\n  - name: x\n    steps:\n      - route: {}\n        expect-error: out_of_memory\n",
            false,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}
