//! `wasmswitch plugin new`: a ready-to-build plugin project in Rust, Python or JavaScript, with
//! the WIT contract, a build script, a first scenario and a README.

use anyhow::bail;
use clap::ValueEnum;

#[derive(Clone, Copy, Debug)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum World {
    Router,
    Ivr,
    Messaging,
}

/// Contract 0.2, which Rust projects are written against (through the SDK, which has its own
/// copy; this one is for reference).
const WIT_V0_2: [(&str, &str); 3] = [
    ("wit/types.wit", include_str!("../../wit/v0.2.0/types.wit")),
    ("wit/host.wit", include_str!("../../wit/v0.2.0/host.wit")),
    (
        "wit/worlds.wit",
        include_str!("../../wit/v0.2.0/worlds.wit"),
    ),
];

/// Contract 0.1, which Python and JavaScript projects are still generated for (their build
/// scripts bind this copy) until their templates move to 0.2.
const WIT_V0_1: [(&str, &str); 3] = [
    ("wit/types.wit", include_str!("../../wit/v0.1.0/types.wit")),
    ("wit/host.wit", include_str!("../../wit/v0.1.0/host.wit")),
    (
        "wit/worlds.wit",
        include_str!("../../wit/v0.1.0/worlds.wit"),
    ),
];

/// The SDK crate of this checkout; generated Rust projects depend on it by path until the SDK is
/// on crates.io.
const SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/plugin");

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The files of a new project, relative to its directory.
pub fn files(lang: Lang, world: World, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    if !valid_name(name) {
        bail!(
            "plugin names are lowercase letters, digits and '-', starting with a letter: {name:?}"
        );
    }
    let world_name = match world {
        World::Router => "router",
        World::Ivr => "ivr",
        World::Messaging => "messaging",
    };
    let snake = name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{name}", name)
            .replace("{snake}", &snake)
            .replace("{world}", world_name)
            .replace("{sdk}", SDK_PATH)
    };
    let wit = match lang {
        Lang::Rust => WIT_V0_2,
        Lang::Python | Lang::Js => WIT_V0_1,
    };
    let mut out: Vec<(String, String)> = wit
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    let (code, scenario) = match (lang, world) {
        (Lang::Rust, World::Router) => (RUST_ROUTER, ROUTER_SCENARIO),
        (Lang::Rust, World::Ivr) => (RUST_IVR, IVR_SCENARIO),
        (Lang::Rust, World::Messaging) => (RUST_MESSAGING, SMS_SCENARIO),
        (Lang::Python, World::Router) => (PY_ROUTER, ROUTER_SCENARIO_V0_1),
        (Lang::Python, World::Ivr) => (PY_IVR, IVR_SCENARIO_V0_1),
        (Lang::Python, World::Messaging) => (PY_MESSAGING, SMS_SCENARIO_V0_1),
        (Lang::Js, World::Router) => (JS_ROUTER, ROUTER_SCENARIO_V0_1),
        (Lang::Js, World::Ivr) => (JS_IVR, IVR_SCENARIO_V0_1),
        (Lang::Js, World::Messaging) => (JS_MESSAGING, SMS_SCENARIO_V0_1),
    };
    out.push(("scenario.yaml".into(), fill(scenario)));
    match lang {
        Lang::Rust => {
            out.push(("Cargo.toml".into(), fill(RUST_CARGO)));
            out.push(("src/lib.rs".into(), fill(code)));
            out.push(("README.md".into(), fill(RUST_README)));
            out.push((".gitignore".into(), "target/\n".into()));
        }
        Lang::Python => {
            out.push(("app.py".into(), fill(code)));
            out.push(("build.sh".into(), fill(PY_BUILD)));
            out.push(("README.md".into(), fill(PY_README)));
        }
        Lang::Js => {
            out.push(("app.js".into(), fill(code)));
            out.push(("package.json".into(), fill(JS_PACKAGE)));
            out.push(("build.sh".into(), fill(JS_BUILD)));
            out.push(("README.md".into(), fill(JS_README)));
            out.push((".gitignore".into(), "node_modules/\n*.wasm\n".into()));
        }
    }
    Ok(out)
}

// The first scenarios of a new project: contract 0.2 for Rust (events in, actions out) ...

const ROUTER_SCENARIO: &str = r#"name: {name}
cases:
  - name: numbers in the +1 range are dialled through the main trunk
    steps:
      - event: {incoming: {from: "+442071234567", to: "+14155550100"}}
        expect: [{dial: {groups: [{targets: [{target: "+14155550100", trunk: main}]}]}}]
  - name: everything else is refused
    steps:
      - event: {incoming: {to: "+33123456789"}}
        expect: [{reject: {code: 404}}]
"#;

const IVR_SCENARIO: &str = r#"name: {name}
cases:
  - name: greets, then says goodbye after a digit
    steps:
      - event: {handed-over: {}}
        expect:
          - answer
          - gather: {prompts: [{prompt: welcome}], max-digits: 1}
      - event: {gather-completed: {digits: "1", ended-by: max-digits}}
        expect:
          - play: {audio: {say: "You pressed 1"}}
          - hangup: null
  - name: hangs up when no digit comes
    steps:
      - event: {handed-over: {}}
      - event: {gather-completed: {digits: "", ended-by: timeout}}
        expect: [{hangup: null}]
"#;

const SMS_SCENARIO: &str = r#"name: {name}
cases:
  - name: ordinary messages are delivered
    steps:
      - message: {from: "+14155550100", to: "+14155550111", body: "hello"}
        expect: deliver
  - name: messages mentioning a prize are refused
    steps:
      - message: {body: "You have won a PRIZE"}
        expect: {reject: {code: 403}}
  - name: failed deliveries are counted
    steps:
      - delivery: {id: m1, to: "+14155550111", status: {failed: {code: 408}}}
    expect-counters: {undelivered: 1}
"#;

// ... and contract 0.1 for the Python and JavaScript projects, which are still generated for it.

const ROUTER_SCENARIO_V0_1: &str = r#"name: {name}
cases:
  - name: numbers in the +1 range are forwarded
    steps:
      - route: {from: "+442071234567", to: "+14155550100"}
        expect: {forward: {targets: ["+14155550100"], trunk: main}}
  - name: everything else is refused
    steps:
      - route: {to: "+33123456789"}
        expect: {reject: {code: 404}}
"#;

const IVR_SCENARIO_V0_1: &str = r#"name: {name}
cases:
  - name: greets, then says goodbye after a digit
    steps:
      - ivr: {started: {}}
        expect:
          - gather: {prompt: {prompt: welcome}, max-digits: 1}
      - ivr: {digits-collected: {digits: "1"}}
        expect:
          - play: {audio: {say: "You pressed 1"}}
          - hangup: null
"#;

const SMS_SCENARIO_V0_1: &str = r#"name: {name}
cases:
  - name: ordinary messages are delivered
    steps:
      - message: {from: "+14155550100", to: "+14155550111", body: "hello"}
        expect: deliver
  - name: messages mentioning a prize are refused
    steps:
      - message: {body: "You have won a PRIZE"}
        expect: {reject: {code: 403}}
"#;

const RUST_CARGO: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wasmswitch-plugin = { path = "{sdk}" }

[profile.release]
lto = true
strip = true
panic = "abort"

# Keep this project out of any enclosing Cargo workspace.
[workspace]
"#;

const RUST_ROUTER: &str = r#"//! Build: cargo build --release --target wasm32-wasip2
//! Test:  wasmswitch plugin test target/wasm32-wasip2/release/{snake}.wasm scenario.yaml

use wasmswitch_plugin::*;

struct Plugin;

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            CallEvent::Incoming(call) => {
                log::info(&format!("routing {} -> {}", call.from, call.to));
                if call.to.starts_with("+1") {
                    vec![Action::Dial(Dial::to([call.to]).via("main"))]
                } else {
                    vec![Action::reject(404, "No Route")]
                }
            }
            // The legs, the dial's end, DTMF, the hangup: nothing to do. When the bridge ends,
            // the call has nothing left and the switch ends it.
            _ => Vec::new(),
        }
    }
}

export_call_handler!(Plugin);
"#;

const RUST_IVR: &str = r#"//! Build: cargo build --release --target wasm32-wasip2
//! Test:  wasmswitch plugin test target/wasm32-wasip2/release/{snake}.wasm scenario.yaml

use wasmswitch_plugin::*;

struct Plugin;

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            // Handed over by a router, or the first plugin of the number's calls.
            CallEvent::HandedOver(_) | CallEvent::Incoming(_) => vec![
                Action::Answer,
                Action::Gather(Gather::digits(1).prompt("welcome")),
            ],
            CallEvent::GatherCompleted(g) if !g.digits.is_empty() => vec![
                Action::play(Audio::Say(format!("You pressed {}", g.digits))),
                Action::hangup(),
            ],
            // No digit before the timeout.
            CallEvent::GatherCompleted(_) => vec![Action::hangup()],
            // The end of a prompt, the hangup, ...: the actions waiting go on by themselves.
            _ => Vec::new(),
        }
    }
}

export_call_handler!(Plugin);
"#;

const RUST_MESSAGING: &str = r#"//! Build: cargo build --release --target wasm32-wasip2
//! Test:  wasmswitch plugin test target/wasm32-wasip2/release/{snake}.wasm scenario.yaml

use wasmswitch_plugin::*;

struct Plugin;

impl Messaging for Plugin {
    fn on_message(msg: Message) -> SmsDecision {
        if msg.body.to_lowercase().contains("prize") {
            return SmsDecision::reject(403, "Rejected As Spam");
        }
        SmsDecision::Deliver
    }

    // How each message this policy let through was delivered.
    fn on_delivery(report: DeliveryReport) {
        if let DeliveryStatus::Failed(status) = report.status {
            log::warn(&format!("{} to {}: {}", report.id, report.to, status.code));
            metrics::incr("undelivered");
        }
    }
}

export_messaging!(Plugin);
"#;

const RUST_README: &str = r#"# {name}

A wasmswitch plugin (world `{world}`) in Rust.

    rustup target add wasm32-wasip2        # once
    cargo build --release --target wasm32-wasip2
    wasmswitch plugin test target/wasm32-wasip2/release/{snake}.wasm scenario.yaml

Edit `src/lib.rs`; add cases to `scenario.yaml` (events in, expected decisions out).
"#;

const PY_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {name}.wasm from app.py. Needs: pip install componentize-py==0.25.1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v componentize-py >/dev/null || { echo "error: pip install componentize-py==0.25.1" >&2; exit 1; }
componentize-py -d wit -w {world} componentize --stub-wasi app -o {name}.wasm
"#;

const PY_ROUTER: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    CallInfo, CallAction, Forward, RingStrategy, RouteDecision_Forward, RouteDecision_Reject, SipStatus,
)


class CallRouting(exports.CallRouting):
    def route(self, call: CallInfo):
        log.log(log.Level.INFO, f"routing {call.from_} -> {call.to}")
        if call.to.startswith("+1"):
            return RouteDecision_Forward(Forward([call.to], "main", 30000, RingStrategy.SEQUENTIAL, None))
        return RouteDecision_Reject(SipStatus(404, "No Route"))

    def on_call_event(self, event) -> list[CallAction]:
        return []
"#;

const PY_IVR: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports.types import (
    Audio_Prompt, Audio_Say, Gather, IvrAction_Gather, IvrAction_Hangup, IvrAction_Play,
    IvrEvent_DigitsCollected, IvrEvent_Started, IvrEvent_Timeout, Play,
)


class IvrFlow(exports.IvrFlow):
    def on_event(self, event):
        if isinstance(event, IvrEvent_Started):
            return [IvrAction_Gather(Gather(Audio_Prompt("welcome"), 1, None, 5000, 3000))]
        if isinstance(event, IvrEvent_DigitsCollected):
            said = Play(Audio_Say(f"You pressed {event.value.digits}"), 1, False)
            return [IvrAction_Play(said), IvrAction_Hangup(None)]
        if isinstance(event, IvrEvent_Timeout):
            return [IvrAction_Hangup(None)]
        return []
"#;

const PY_MESSAGING: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports.types import Message, SipStatus, SmsDecision_Deliver, SmsDecision_Reject


class MessagePolicy(exports.MessagePolicy):
    def on_message(self, msg: Message):
        if "prize" in msg.body.lower():
            return SmsDecision_Reject(SipStatus(403, "Rejected As Spam"))
        return SmsDecision_Deliver()
"#;

const PY_README: &str = r#"# {name}

A wasmswitch plugin (world `{world}`) in Python, built with componentize-py.

    pip install componentize-py==0.25.1    # once
    bash build.sh                          # -> {name}.wasm
    wasmswitch plugin test {name}.wasm scenario.yaml

See the generated bindings (class and type names) with
`componentize-py -d wit -w {world} bindings bindings/`.
"#;

const JS_PACKAGE: &str = r#"{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": { "build": "bash build.sh" },
  "devDependencies": { "componentize-qjs": "0.4.5" }
}
"#;

const JS_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {name}.wasm from app.js with QuickJS (componentize-qjs, the engine of
# `jco componentize --backend quickjs`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[ -d node_modules ] || npm install --no-audit --no-fund
node_modules/.bin/componentize-qjs --wit wit --js app.js --world {world} \
    --sync --stub-wasi --opt-size --output {name}.wasm
"#;

const JS_ROUTER: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
import { log } from "wasmswitch:plugin/log@0.1.0";

export const callRouting = {
  route(call) {
    log("info", `routing ${call.from} -> ${call.to}`);
    if (call.to.startsWith("+1")) {
      return {
        tag: "forward",
        val: { targets: [call.to], trunk: "main", timeoutMs: 30000, strategy: "sequential", callerId: null },
      };
    }
    return { tag: "reject", val: { code: 404, reason: "No Route" } };
  },
  onCallEvent(_event) {
    return [];
  },
};
"#;

const JS_IVR: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
export const ivrFlow = {
  onEvent(event) {
    switch (event.tag) {
      case "started":
        return [{
          tag: "gather",
          val: { prompt: { tag: "prompt", val: "welcome" }, maxDigits: 1, terminator: null, timeoutMs: 5000, interDigitTimeoutMs: 3000 },
        }];
      case "digits-collected":
        return [
          { tag: "play", val: { audio: { tag: "say", val: `You pressed ${event.val.digits}` }, repeat: 1, bargeIn: false } },
          { tag: "hangup", val: null },
        ];
      case "timeout":
        return [{ tag: "hangup", val: null }];
      default:
        return [];
    }
  },
};
"#;

const JS_MESSAGING: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
export const messagePolicy = {
  onMessage(msg) {
    if (msg.body.toLowerCase().includes("prize")) {
      return { tag: "reject", val: { code: 403, reason: "Rejected As Spam" } };
    }
    return { tag: "deliver" };
  },
};
"#;

const JS_README: &str = r#"# {name}

A wasmswitch plugin (world `{world}`) in JavaScript, built with QuickJS (componentize-qjs).

    bash build.sh                          # installs the tool on first run -> {name}.wasm
    wasmswitch plugin test {name}.wasm scenario.yaml
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(files(Lang::Rust, World::Router, "my-router").is_ok());
        assert!(files(Lang::Rust, World::Router, "My Router").is_err());
        assert!(files(Lang::Rust, World::Router, "../x").is_err());
    }

    #[test]
    fn every_project_has_the_wit_and_a_scenario() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for world in [World::Router, World::Ivr, World::Messaging] {
                let f = files(lang, world, "demo").unwrap();
                let names: Vec<_> = f.iter().map(|(p, _)| p.as_str()).collect();
                assert!(names.contains(&"wit/worlds.wit"), "{names:?}");
                assert!(names.contains(&"scenario.yaml"), "{names:?}");
                assert!(
                    f.iter()
                        .all(|(_, c)| !c.contains("{name}") && !c.contains("{world}"))
                );
            }
        }
    }

    /// Rust projects are written against contract 0.2 and their scenarios speak it; Python and
    /// JavaScript projects are still 0.1 and keep 0.1's scenario steps, which only 0.1 plugins
    /// answer. Every generated scenario parses.
    #[test]
    fn each_language_gets_its_contract_and_matching_scenarios() {
        use wasmswitch_plugins::scenario::{Input, Scenario};
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for world in [World::Router, World::Ivr, World::Messaging] {
                let f = files(lang, world, "demo").unwrap();
                let file = |name: &str| &f.iter().find(|(p, _)| p == name).unwrap().1;
                let v0_2 = matches!(lang, Lang::Rust);
                let package = if v0_2 { "@0.2.0;" } else { "@0.1.0;" };
                assert!(file("wit/worlds.wit").contains(package), "{lang:?}");
                let scenario = Scenario::parse(file("scenario.yaml"), false)
                    .unwrap_or_else(|e| panic!("{lang:?}/{world:?}: {e}"));
                for step in scenario.cases.iter().flat_map(|c| &c.steps) {
                    let speaks_its_contract = match step.input {
                        // The same in both.
                        Input::Message(_) => true,
                        Input::Event(_) | Input::Delivery(_) => v0_2,
                        Input::Route(_) | Input::CallEvent(_) | Input::Ivr(_) => !v0_2,
                    };
                    assert!(speaks_its_contract, "{lang:?}/{world:?}: {:?}", step.input);
                }
            }
        }
    }
}
