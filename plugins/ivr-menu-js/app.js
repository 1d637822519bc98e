// IVR menu (world wasmswitch:plugin/ivr, contract 0.2) in JavaScript: the same flow as the Rust
// menu (plugins/ivr-menu) and the Python one, and all three pass plugins/scenarios/ivr-menu.yaml.
// Greets, asks for one digit: 1 dials sales (kv "ivr/sales") and comes back to the menu if nobody
// takes the call, 2 transfers to support (kv "ivr/support"), 3 records a voicemail; a wrong or
// missing digit replays the menu, and the third miss says goodbye and hangs up.
// Build: bash plugins/ivr-menu-js/build.sh ivr-menu-js.wasm   (componentize-qjs, QuickJS)
// Test:  wasmswitch plugin test ivr-menu-js.wasm plugins/scenarios/ivr-menu.yaml
// Mapping: the export `call-handler` is the object `callHandler`; variants are {tag, val} (a case
// without payload is just {tag}), records camelCase, option none is null, enums strings, u64 a
// Number, and a host function's `result` error is thrown.
import { log } from "wasmswitch:plugin/log@0.2.0";
import { get as kvGet } from "wasmswitch:plugin/kv@0.2.0";
import { counterAdd } from "wasmswitch:plugin/metrics@0.2.0";

// One instance runs per call, so these are the call's state (set again by `start`).
let callId = "unknown";
let misses = 0;
let voicemail = null; // the voicemail being recorded: its recording-completed ends the call

const SALES = "sales"; // the tag of the dial to sales, to know its dial-completed

const prompt = (name) => ({ tag: "prompt", val: name });
// Once, without barge-in: the contract's defaults.
const play = (name) => ({ tag: "play", val: { audio: prompt(name), repeat: null, bargeIn: null, tag: null } });
// No terminator: with one digit wanted, every key is a choice (# is a wrong one).
const menu = () => ({ tag: "gather", val: { prompts: [prompt("main-menu")], maxDigits: 1,
  terminators: "", timeoutMs: null, interDigitTimeoutMs: null, tag: null } });
const hangup = () => ({ tag: "hangup", val: null });
const choice = (value) => ({ tag: "set-variable", val: { name: "menu-choice", value } });
const target = (uri) => ({ target: uri, trunk: null, headers: [], timeoutMs: null });

// The kv value under `key` as UTF-8; `fallback` when missing, not UTF-8, or the store fails
// (kv.get throws its error). QuickJS has no TextDecoder, hence decodeURIComponent.
function kvTarget(key, fallback) {
  try {
    const value = kvGet(key);
    if (value == null) return fallback;
    return decodeURIComponent(Array.from(value, (b) => "%" + b.toString(16).padStart(2, "0")).join(""));
  } catch (_) {
    return fallback;
  }
}

function start(id, answered) {
  callId = id;
  misses = 0;
  voicemail = null;
  log("info", `ivr-menu started for call ${callId}`);
  counterAdd("ivr_started", 1); // a Number: QuickJS traps on a BigInt for u64
  const greeting = [play("welcome"), menu()];
  return answered ? greeting : [{ tag: "answer" }, ...greeting];
}

function miss(name) {
  misses += 1;
  return misses >= 3 ? [play("goodbye"), hangup()] : [play(name), menu()];
}

// `voicemail-<Call-ID>`, made a valid recording name: a SIP Call-ID may hold `@`, `..` and more,
// so every character but an ASCII letter or digit becomes `-`, and at most 118 of them are kept.
function voicemailName(id) {
  const safe = Array.from(id).slice(0, 118).map((c) => (/^[A-Za-z0-9]$/.test(c) ? c : "-"));
  return `voicemail-${safe.join("")}`;
}

function choose(digits) {
  switch (digits) {
    case "1": {
      const groups = [{ strategy: "sequential", targets: [target(kvTarget("ivr/sales", "sip:sales@example.com"))] }];
      const dial = { groups, timeoutMs: null, callerId: null, ringback: null, tag: SALES };
      return [choice("sales"), { tag: "dial", val: dial }];
    }
    case "2": {
      const transfer = { target: target(kvTarget("ivr/support", "sip:support@example.com")), mode: "blind", tag: null };
      return [choice("support"), { tag: "transfer", val: transfer }];
    }
    case "3": {
      voicemail = voicemailName(callId);
      // Up to 2 minutes, ended by #, after a beep: the contract's defaults.
      const recording = { name: voicemail, maxDurationMs: null, terminators: null, beep: null };
      return [choice("voicemail"), play("voicemail-intro"), { tag: "record", val: recording }];
    }
    default:
      return miss("invalid-option");
  }
}

function salesCompleted(outcome) {
  // Sales took the call, and the conversation is over; else busy, no answer or failed.
  return outcome === "answered" ? [hangup()] : [play("sales-unavailable"), menu()];
}

export const callHandler = {
  onEvent(event) {
    const e = event.val;
    switch (event.tag) {
      case "incoming": // the tenant routes its calls straight to the menu
        return start(e.callId, false);
      case "handed-over":
        return start(e.call.callId, e.state === "answered");
      case "gather-completed": // no digits: the timeout passed
        return e.digits === "" ? miss("no-input") : choose(e.digits);
      case "dial-completed":
        return e.tag === SALES ? salesCompleted(e.outcome) : [];
      case "recording-completed": // only the voicemail's: one the router started may end meanwhile
        return e.name === voicemail ? [play("voicemail-saved"), hangup()] : [];
      default:
        // The end of each prompt, the legs of the dial, stray digits, the hangup: the actions
        // waiting go on by themselves.
        return [];
    }
  },
};
