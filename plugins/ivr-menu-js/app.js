// IVR menu (world wasmswitch:plugin/ivr) in JavaScript. One instance runs per call.
// Build: bash plugins/ivr-menu-js/build.sh ivr-menu-js.wasm   (componentize-qjs, QuickJS)
// Test:  wasmswitch plugin test ivr-menu-js.wasm plugins/scenarios/ivr-menu.yaml
// Mapping: variants are {tag, val}, records camelCase, option none is null, u64 a Number.
import { log } from "wasmswitch:plugin/log@0.1.0";
import { get as kvGet } from "wasmswitch:plugin/kv@0.1.0";
import { counterAdd } from "wasmswitch:plugin/metrics@0.1.0";

let callId = "unknown";
let misses = 0;

const prompt = (name) => ({ tag: "prompt", val: name });
const play = (name) => ({ tag: "play", val: { audio: prompt(name), repeat: 1, bargeIn: false } });
const menu = () => ({ tag: "gather", val: { prompt: prompt("main-menu"), maxDigits: 1,
  terminator: null, timeoutMs: 5000, interDigitTimeoutMs: 3000 } });
const hangup = () => ({ tag: "hangup", val: null });
const choice = (name) => ({ tag: "set-variable", val: ["menu-choice", name] });

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

function miss(name) {
  misses += 1;
  return misses >= 3 ? [play("goodbye"), hangup()] : [play(name), menu()];
}

function onDigits(digits) {
  switch (digits) {
    case "1": {
      const target = { targets: [kvTarget("ivr/sales", "sip:sales@example.com")], trunk: null,
        timeoutMs: 30000, strategy: "sequential", callerId: null };
      return [choice("sales"), { tag: "dial", val: { target, returnOnFailure: true } }];
    }
    case "2": {
      const target = kvTarget("ivr/support", "sip:support@example.com");
      return [choice("support"), { tag: "transfer", val: { target, trunk: null } }];
    }
    case "3": {
      const recording = { name: `voicemail-${callId}`, maxDurationMs: 120000, terminator: "#", beep: true };
      return [choice("voicemail"), play("voicemail-intro"), { tag: "record", val: recording }];
    }
    default:
      return miss("invalid-option");
  }
}

export const ivrFlow = {
  onEvent(event) {
    switch (event.tag) {
      case "started":
        callId = event.val.call.callId;
        misses = 0;
        log("info", `ivr-menu started for call ${callId}`);
        counterAdd("ivr_started", 1); // a Number: QuickJS traps on a BigInt for u64
        return [play("welcome"), menu()];
      case "digits-collected":
        return onDigits(event.val.digits);
      case "timeout":
        return miss("no-input");
      case "dial-completed":
        return event.val === "completed" ? [hangup()] : [play("sales-unavailable"), menu()];
      case "recording-completed":
        return [play("voicemail-saved"), hangup()];
      default: // dtmf, playback-finished, hangup
        return [];
    }
  },
};
