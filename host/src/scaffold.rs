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

/// Contract 0.2, which every new project is written against (Rust projects through the SDK,
/// which has its own copy; theirs is for reference, the Python and JavaScript builds bind it).
const WIT: [(&str, &str); 3] = [
    ("wit/types.wit", include_str!("../../wit/v0.2.0/types.wit")),
    ("wit/host.wit", include_str!("../../wit/v0.2.0/host.wit")),
    (
        "wit/worlds.wit",
        include_str!("../../wit/v0.2.0/worlds.wit"),
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
    let mut out: Vec<(String, String)> = WIT
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    let (code, scenario) = match (lang, world) {
        (Lang::Rust, World::Router) => (RUST_ROUTER, ROUTER_SCENARIO),
        (Lang::Rust, World::Ivr) => (RUST_IVR, IVR_SCENARIO),
        (Lang::Rust, World::Messaging) => (RUST_MESSAGING, SMS_SCENARIO),
        (Lang::Python, World::Router) => (PY_ROUTER, ROUTER_SCENARIO),
        (Lang::Python, World::Ivr) => (PY_IVR, IVR_SCENARIO),
        (Lang::Python, World::Messaging) => (PY_MESSAGING, SMS_SCENARIO),
        (Lang::Js, World::Router) => (JS_ROUTER, ROUTER_SCENARIO),
        (Lang::Js, World::Ivr) => (JS_IVR, IVR_SCENARIO),
        (Lang::Js, World::Messaging) => (JS_MESSAGING, SMS_SCENARIO),
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
            out.push((".gitignore".into(), "__pycache__/\n*.wasm\n".into()));
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

// The first scenarios of a new project, the same in every language: contract 0.2, events in,
// actions out.

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
# Builds {name}.wasm from app.py against the contract in wit/ (wasmswitch:plugin@0.2.0).
# Needs: pip install componentize-py==0.25.1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v componentize-py >/dev/null || { echo "error: pip install componentize-py==0.25.1" >&2; exit 1; }
componentize-py -d wit -w {world} componentize --stub-wasi app -o {name}.wasm
"#;

const PY_ROUTER: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import (
    Action_Dial, Action_Reject, CallEvent_Incoming, Dial, DialTarget, RingGroup, RingStrategy,
    SipStatus,
)


class CallHandler(exports.CallHandler):
    def on_event(self, event):
        match event:
            case CallEvent_Incoming(call):
                log.log(log.Level.INFO, f"routing {call.from_} -> {call.to}")
                if call.to.startswith("+1"):
                    return [Action_Dial(dial(call.to, trunk="main"))]
                return [Action_Reject(SipStatus(404, "No Route"))]
            case _:
                # The legs, the dial's end, DTMF, the hangup: nothing to do. When the bridge
                # ends, the call has nothing left and the switch ends it.
                return []


def dial(number, trunk):
    """Ring one number through a trunk; None leaves the rest to the contract's defaults."""
    target = DialTarget(number, trunk=trunk, headers=[], timeout_ms=None)
    return Dial(groups=[RingGroup(RingStrategy.SEQUENTIAL, [target])], timeout_ms=None,
                caller_id=None, ringback=None, tag=None)
"#;

const PY_IVR: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports.types import (
    Action_Answer, Action_Gather, Action_Hangup, Action_Play, Audio_Prompt, Audio_Say,
    CallEvent_GatherCompleted, CallEvent_HandedOver, CallEvent_Incoming, Gather, Play,
)


class CallHandler(exports.CallHandler):
    def on_event(self, event):
        match event:
            # Handed over by a router, or the first plugin of the number's calls.
            case CallEvent_HandedOver() | CallEvent_Incoming():
                # One digit, after the welcome prompt; None = the contract's default.
                menu = Gather(prompts=[Audio_Prompt("welcome")], max_digits=1, terminators=None,
                              timeout_ms=None, inter_digit_timeout_ms=None, tag=None)
                return [Action_Answer(), Action_Gather(menu)]
            case CallEvent_GatherCompleted(gathered) if gathered.digits:
                said = Play(Audio_Say(f"You pressed {gathered.digits}"), repeat=None,
                            barge_in=None, tag=None)
                return [Action_Play(said), Action_Hangup(None)]
            case CallEvent_GatherCompleted():
                return [Action_Hangup(None)]  # no digit before the timeout
            case _:
                # The end of a prompt, the hangup, ...: the actions waiting go on by themselves.
                return []
"#;

const PY_MESSAGING: &str = r#"# Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
from wit_world import exports
from wit_world.imports import log, metrics
from wit_world.imports.types import (
    DeliveryStatus_Failed, SipStatus, SmsDecision_Deliver, SmsDecision_Reject,
)


class MessagePolicy(exports.MessagePolicy):
    def on_message(self, msg):
        if "prize" in msg.body.lower():
            return SmsDecision_Reject(SipStatus(403, "Rejected As Spam"))
        return SmsDecision_Deliver()

    # How each message this policy let through was delivered.
    def on_delivery(self, report):
        match report.status:
            case DeliveryStatus_Failed(status):
                log.log(log.Level.WARN, f"{report.id} to {report.to}: {status.code}")
                metrics.counter_add("undelivered", 1)
"#;

const PY_README: &str = r#"# {name}

A wasmswitch plugin (world `{world}`) in Python, built with componentize-py against contract
0.2 (`wit/`, package `wasmswitch:plugin@0.2.0`).

    pip install componentize-py==0.25.1    # once
    bash build.sh                          # -> {name}.wasm
    wasmswitch plugin test {name}.wasm scenario.yaml

Edit `app.py`; add cases to `scenario.yaml` (events in, expected decisions out). A call handler
(class `CallHandler`) hears every event of its call (`CallEvent_Incoming`, `CallEvent_HandedOver`,
...) and answers each with a list of actions (`[]` when there is nothing to do); a messaging
policy (class `MessagePolicy`) decides each message and hears its delivery report.

One instance runs per call, so module globals can hold the call's state; module-level code runs
once, at build time, so set that state up in `incoming` / `handed-over`. Variant cases are
classes (`Action_Dial`), records dataclasses built with every field (`None` for an option left
to the contract's default), WIT's `from` is `from_`. See the generated bindings with
`componentize-py -d wit -w {world} bindings bindings/`.
"#;

const JS_PACKAGE: &str = r#"{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "description": "A wasmswitch plugin (world {world}, contract 0.2) in JavaScript",
  "type": "module",
  "scripts": { "build": "bash build.sh" },
  "devDependencies": { "componentize-qjs": "0.4.5" },
  "engines": { "node": ">=20" }
}
"#;

const JS_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {name}.wasm from app.js with QuickJS (componentize-qjs, the engine of
# `jco componentize --backend quickjs`), against contract 0.2 in wit/ (world {world}).
# Needs Node >= 20; the first run installs the tool from the npm registry.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[ -d node_modules ] || npm install --no-audit --no-fund
node_modules/.bin/componentize-qjs --wit wit --js app.js --world {world} \
    --sync --stub-wasi --opt-size --output {name}.wasm
"#;

const JS_ROUTER: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
// Contract 0.2 (wit/): the export `call-handler` is `callHandler`, whose onEvent hears every
// event of the call and answers with a list of actions. Variants are {tag, val}, records
// camelCase, an option's none is null, enums are strings.
import { log } from "wasmswitch:plugin/log@0.2.0";

// A number, through one of the tenant's trunks, ringing for the contract's default 30 s.
const target = (number, trunk) => ({ target: number, trunk, headers: [], timeoutMs: null });

function route(call) {
  log("info", `routing ${call.from} -> ${call.to}`);
  if (call.to.startsWith("+1")) {
    const groups = [{ strategy: "sequential", targets: [target(call.to, "main")] }];
    return [{ tag: "dial", val: { groups, timeoutMs: null, callerId: null, ringback: null, tag: null } }];
  }
  return [{ tag: "reject", val: { code: 404, reason: "No Route" } }];
}

export const callHandler = {
  onEvent(event) {
    if (event.tag === "incoming") return route(event.val);
    // The legs, the dial's end, DTMF, the hangup: nothing to do. When the bridge ends, the
    // call has nothing left and the switch ends it.
    return [];
  },
};
"#;

const JS_IVR: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
// Contract 0.2 (wit/): the export `call-handler` is `callHandler`, whose onEvent hears every
// event of the call and answers with a list of actions. Variants are {tag, val} (a case without
// payload is just {tag}), records camelCase, an option's none is null (the WIT's default).

const say = (text) => ({ tag: "say", val: text });
const hangup = { tag: "hangup", val: null };
// One digit, after the prompt "welcome"; the timeouts and the terminator (#) are the defaults.
const menu = { tag: "gather", val: { prompts: [{ tag: "prompt", val: "welcome" }], maxDigits: 1,
  terminators: null, timeoutMs: null, interDigitTimeoutMs: null, tag: null } };

export const callHandler = {
  onEvent(event) {
    switch (event.tag) {
      // Handed over by a router, or the first plugin of the number's calls.
      case "handed-over":
      case "incoming":
        return [{ tag: "answer" }, menu];
      case "gather-completed": {
        const digits = event.val.digits;
        if (digits === "") return [hangup]; // no digit before the timeout
        const said = { audio: say(`You pressed ${digits}`), repeat: null, bargeIn: null, tag: null };
        return [{ tag: "play", val: said }, hangup];
      }
      default:
        // The end of a prompt, the hangup, ...: the actions waiting go on by themselves.
        return [];
    }
  },
};
"#;

const JS_MESSAGING: &str = r#"// Build: bash build.sh      Test: wasmswitch plugin test {name}.wasm scenario.yaml
// Contract 0.2 (wit/): the export `message-policy` is `messagePolicy`. Variants are {tag, val},
// records camelCase; u64 is a Number.
import { log } from "wasmswitch:plugin/log@0.2.0";
import { counterAdd } from "wasmswitch:plugin/metrics@0.2.0";

export const messagePolicy = {
  onMessage(msg) {
    if (msg.body.toLowerCase().includes("prize")) {
      return { tag: "reject", val: { code: 403, reason: "Rejected As Spam" } };
    }
    return { tag: "deliver" };
  },

  // How each message this policy let through was delivered.
  onDelivery(report) {
    if (report.status.tag === "failed") {
      log("warn", `${report.id} to ${report.to}: ${report.status.val.code}`);
      counterAdd("undelivered", 1);
    }
  },
};
"#;

const JS_README: &str = r#"# {name}

A wasmswitch plugin (world `{world}` of contract 0.2, in `wit/`) in JavaScript, built with QuickJS
(componentize-qjs).

    bash build.sh                          # installs the tool on first run -> {name}.wasm
    wasmswitch plugin test {name}.wasm scenario.yaml

Edit `app.js`; add cases to `scenario.yaml` (events in, expected actions out).

How the WIT maps to JavaScript: an exported interface is an exported object named in camelCase
(`callHandler`, `messagePolicy`), its functions are methods (`onEvent`, `onMessage`,
`onDelivery`); imports are modules (`import { log } from "wasmswitch:plugin/log@0.2.0"`). A
variant is `{tag, val}` with the case's WIT name as `tag` (`{tag: "answer"}` when it has no
payload), a record an object with camelCase keys, an option's none `null` (for the options of an
action, the default the WIT documents), an enum a string, flags an object of booleans, u64 a
Number; a host function's `result` error is thrown. One instance runs per call, so module-level
variables are the call's state. QuickJS has no `console` or `TextDecoder`, and no clock: use the
call's `received-at`.
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

    /// Every project is written against contract 0.2 and its scenario speaks it (0.1's own steps
    /// would only be answered by a 0.1 plugin). Every generated scenario parses.
    #[test]
    fn every_language_gets_contract_0_2_and_its_scenarios() {
        use wasmswitch_plugins::scenario::{Input, Scenario};
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for world in [World::Router, World::Ivr, World::Messaging] {
                let f = files(lang, world, "demo").unwrap();
                let file = |name: &str| &f.iter().find(|(p, _)| p == name).unwrap().1;
                assert!(file("wit/worlds.wit").contains("@0.2.0;"), "{lang:?}");
                let scenario = Scenario::parse(file("scenario.yaml"), false)
                    .unwrap_or_else(|e| panic!("{lang:?}/{world:?}: {e}"));
                for step in scenario.cases.iter().flat_map(|c| &c.steps) {
                    let speaks_its_contract = matches!(
                        step.input,
                        Input::Event(_) | Input::Message(_) | Input::Delivery(_)
                    );
                    assert!(speaks_its_contract, "{lang:?}/{world:?}: {:?}", step.input);
                }
            }
        }
    }
}
