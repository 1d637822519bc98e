// A tour of plugin contract 0.2, in JavaScript: a small front desk whose lines, between them,
// answer with every kind of action and handle every kind of call event, plus an SMS policy. It
// is a port of the Rust tour (plugins/tour) and passes the same scenario,
// plugins/scenarios/tour.yaml. Read it next to wit/v0.2.0/types.wit.
//
// - Sales, +18005550100: the office desk phone, then both mobiles at once; a phone's 3xx
//   forwarding is followed; nobody free means voicemail. Keys on the seller's phone hold (1) and
//   unhold (2) the caller, start (3) and stop (4) recording, and consult the manager (5); its
//   transfers (REFER) may only go inside the tenant.
// - Conference, +18005550101: the PIN is asked in early media, so nothing is billed until it is
//   right; a wrong one is refused, 0 redirects to the operator.
// - Support, +18005550102: hold music; after `support/patience-ms` (or when the caller presses
//   `*`) the AI assistant takes the call, then may transfer it or hand it on.
// - Any other number: 404. A call another plugin hands over hears a menu: 1 sales, 2 support.
// - Messages: blocked senders and opted-out recipients are refused, STOP opts out, numbers are
//   rewritten to E.164; delivery reports are counted.
//
// Build: bash plugins/tour-js/build.sh tour-js.wasm   (componentize-qjs, QuickJS; world `switch`)
// Test:  wasmswitch plugin test tour-js.wasm plugins/scenarios/tour.yaml
//
// How the WIT maps to JS (componentize-qjs): the exports `call-handler` and `message-policy` are
// the objects `callHandler` and `messagePolicy`; a variant is {tag, val} with the case's WIT name
// as tag (a case without payload is just {tag}); records are objects with camelCase keys; an
// option's none is null; enums are their case names as strings; flags are objects of booleans
// ({header: true, id: false, ...}); a char is a one-character string; u64 is a Number; list<u8>
// comes in as an array of bytes; a host function's `result` error is thrown as an Error whose
// `payload` is the WIT value (kv's `error` variant).
//
// `kv` keys: `conference/pin/<pin>` (`<room>`, `<room> host` or `<room> listener`),
// `sales/queue` (the desk's `X-Queue` header, default `sales`), `support/patience-ms` (default
// 30000), `support/assistant-parameters` (the assistant's start parameters, a JSON object),
// `support/transfer/<target>` (the trunk for a target the assistant may transfer to; others are
// refused), `sms/blocked/<number>`, `sms/optout/<number>` (set by STOP).
import { log } from "wasmswitch:plugin/log@0.2.0";
import { get as kvGet, set as kvSet } from "wasmswitch:plugin/kv@0.2.0";
import { counterAdd } from "wasmswitch:plugin/metrics@0.2.0";

const SALES = "+18005550100";
const CONFERENCE = "+18005550101";
const SUPPORT = "+18005550102";
const SALES_DESK = "+14155550110";
const SALES_MOBILES = ["+14155550111", "+14155550112"];
const MANAGER = "+14155550120";
// The tenant's own SIP domain: the only place a phone's REFER may send a caller.
const DOMAIN = "pbx.example.com";
// The tenant's plugin that takes the calls the AI assistant could not handle.
const FALLBACK_PLUGIN = "ivr-menu";
const MENU = "For sales, press 1. For support, press 2.";
const PIN_PROMPT = "Please enter your PIN, then press hash.";

// What this instance knows of its call: one instance runs per call and hears all of it.
function newCall() {
  return {
    info: null, // the call as it arrived, from `incoming` or `handed-over`
    line: "", // the line the call is on: the number called, or the one the menu chose
    pin: "", // conference: the digit typed over the welcome, the PIN's first
    onHold: false, // support: on hold, waiting for the assistant
    voicemail: null, // sales: the voicemail being recorded
  };
}

let call = newCall();

export const callHandler = {
  onEvent(event) {
    info(`event ${event.tag}`);
    return handle(event.tag, event.val);
  },
};

function handle(kind, e) {
  switch (kind) {
    case "incoming": {
      call = newCall();
      count("calls");
      let answer;
      if (e.to === SALES) {
        answer = [sales(e)];
      } else if (e.to === CONFERENCE) {
        answer = [
          // Early media: the caller hears us, but nothing is billed before `answer`.
          { tag: "pre-answer" },
          { tag: "play", val: { audio: prompt("conference-welcome"), repeat: null, bargeIn: true, tag: "welcome" } },
        ];
      } else if (e.to === SUPPORT) {
        answer = support();
      } else {
        answer = [{ tag: "reject", val: status(404, "Not Found") }];
      }
      call.line = e.to;
      call.info = e;
      return answer;
    }
    case "handed-over": {
      call = newCall();
      info(`handed over by ${e.fromPlugin}`);
      // The plugin that handed the call over may have looked the caller up. (Anything longer
      // is no name, and text to speak has a limit too.)
      const name = e.variables.find((v) => v.name === "customer-name");
      const greeting = name && utf8Length(name.value) <= 64 ? `Hello ${name.value}.` : "Hello.";
      call.info = e.call;
      return [
        // Does nothing if the call was answered already.
        { tag: "answer" },
        { tag: "gather", val: { prompts: [say(greeting), say(MENU)], maxDigits: 1, terminators: "",
          timeoutMs: null, interDigitTimeoutMs: null, tag: "menu" } },
      ];
    }
    // A mobile's carrier sends early media to say the phone is off or out of reach, just before
    // its voicemail answers: drop that leg, so the caller does not end up there.
    case "leg-early-media":
      return SALES_MOBILES.includes(e.target) ? [{ tag: "hangup-leg", val: e.id }] : [];
    // Our phones' call forwarding answers with a 3xx: ring where it points instead.
    case "leg-redirected": {
      if (e.contacts.length === 0) return [];
      const targets = e.contacts.slice(0, 8).map((contact) => target(contact, null));
      return [{ tag: "follow-redirect", val: { leg: e.leg.id, targets } }];
    }
    case "leg-ended":
      info(`leg ${e.leg.id} ended: ${e.end} ${e.status.code}`);
      return [];
    case "dial-completed":
      // Answered: the bridge is over, and with nothing left to do the switch hangs up.
      if (e.outcome === "answered") return [];
      // Busy, no answer or failed: voicemail.
      call.voicemail = `voicemail/${namePart()}`;
      return [{ tag: "answer" }, play(prompt("sales-voicemail"), "voicemail")];
    case "dtmf":
      if (call.line === SUPPORT && e.leg === 0 && e.digit === "*" && call.onHold) {
        call.onHold = false;
        return [{ tag: "cancel-timer", val: "patience" }, assistant()];
      }
      // Only the seller's keys (an outbound leg's), not the caller's.
      return call.line === SALES && e.leg >= 1 ? sellerKey(e.digit) : [];
    // Each prompt here ends its answer, and the next step waits for its end: an action that
    // fails drops the actions after it, so this is all `action-failed` has to redo.
    case "playback-finished":
      if (e.tag === "welcome") {
        // A digit typed over the welcome stopped it: that is the PIN's first.
        call.pin = e.bargedIn ?? "";
        return [pinGather(call.pin === "")];
      }
      if (e.tag === "voicemail" && call.voicemail !== null) return [record(call.voicemail)];
      return [];
    case "gather-completed":
      if (e.tag === "pin") {
        const pin = call.pin + e.digits;
        call.pin = "";
        return conference(pin);
      }
      if (e.tag === "menu" && e.digits === "2") {
        call.line = SUPPORT;
        return support();
      }
      if (e.tag === "menu") {
        // 1, anything else, or nothing at all: a person in sales.
        call.line = SALES;
        return call.info ? [sales(call.info)] : [];
      }
      return [];
    case "recording-completed":
      // A background recording of the seller's ending needs nothing.
      if (e.name !== call.voicemail) return [];
      count("voicemails");
      // After it nothing is left, so the switch hangs up.
      return [play(prompt("voicemail-saved"), null)];
    // A REFER makes the switch ring whoever the phone names, at the tenant's cost.
    case "transfer-requested":
      if (inTenant(e.target)) {
        return [{ tag: "accept-transfer", val: { leg: e.leg, target: null, tag: "refer" } }];
      }
      warn(`transfer to ${e.target} refused`);
      count("transfers_refused");
      return [{ tag: "refuse-transfer", val: { leg: e.leg, status: status(403, "Forbidden") } }];
    case "conference-changed":
      info(`${e.room}: ${e.change}`);
      if (e.change === "joined") count("conference_joins");
      // Carry on: a media action here would take the caller out of the room.
      return [];
    case "agent-ended":
      return agentEnded(e.reason);
    case "timer":
      if (e !== "patience") return [];
      call.onHold = false;
      return [play(say("Thank you for waiting."), null), assistant()];
    case "action-failed":
      warn(`${describe(e.reason)}: ${e.message}`);
      return recover(e);
    // Logged above, and nothing to do: leg-ringing, leg-answered, transfer-completed, and the
    // answer to `hangup`, the last event, is ignored anyway.
    default:
      return [];
  }
}

// Ring the sales desk phone, then both mobiles at once.
function sales(info) {
  const desk = {
    ...target(SALES_DESK, "office"),
    // The desk's call queue, as the tenant configured it.
    headers: [{ name: "X-Queue", value: kvString("sales/queue") ?? "sales" }],
    timeoutMs: 15000,
  };
  const dial = {
    groups: [
      { strategy: "sequential", targets: [desk] },
      { strategy: "simultaneous", targets: SALES_MOBILES.map((m) => target(m, "carrier")) },
    ],
    timeoutMs: 60000,
    // The phones show the sales line, so sellers know the call is for sales.
    callerId: {
      number: SALES,
      name: "Sales",
      // What the caller asked for, and `id`: our asserted identity is for the carrier.
      privacy: { ...info.privacy, id: true },
      assertedIdentity: `sip:${SALES}@${DOMAIN}`,
    },
    ringback: { tag: "music", val: null },
    tag: "sales",
  };
  return { tag: "dial", val: dial };
}

function record(name) {
  return { tag: "record", val: { name, maxDurationMs: 180000, terminators: null, beep: null } };
}

// Keys on the seller's phone.
function sellerKey(key) {
  const recording = `calls/${namePart()}`;
  switch (key) {
    case "1":
      return [{ tag: "hold", val: { leg: 0, music: "sales" } }];
    case "2":
      return [{ tag: "unhold", val: 0 }];
    case "3":
      return [{ tag: "start-recording", val: { name: recording, maxDurationMs: 3600000 } }];
    case "4":
      return [{ tag: "stop-recording", val: recording }];
    case "5": {
      // The caller waits on hold while the seller talks to the manager; when the seller hangs
      // up, the manager has the caller.
      const manager = { ...target(MANAGER, "office"), timeoutMs: 20000 };
      return [{ tag: "transfer", val: { target: manager, mode: "attended", tag: "manager" } }];
    }
    default:
      return [];
  }
}

// Ask for the 4-digit conference PIN, or for the rest of it when its first digit is in.
function pinGather(ask) {
  return {
    tag: "gather",
    val: {
      prompts: ask ? [{ tag: "silence", val: 500 }, say(PIN_PROMPT)] : [],
      maxDigits: ask ? 4 : 3,
      terminators: "#",
      timeoutMs: 8000,
      interDigitTimeoutMs: 3000,
      tag: "pin",
    },
  };
}

function conference(pin) {
  if (pin === "0") {
    const contacts = [`sip:operator@${DOMAIN}`, `tel:${SALES}`];
    return [{ tag: "redirect", val: { contacts, status: 302 } }];
  }
  const entry = kvString(`conference/pin/${pin}`);
  if (entry === null) {
    warn("wrong conference PIN");
    return [{ tag: "reject", val: status(403, "Wrong PIN") }];
  }
  // "<room>" or "<room> <role>".
  const [room, role = "member"] = splitOnce(entry.trim(), " ");
  return [
    { tag: "answer" },
    { tag: "set-variable", val: { name: "conference-room", value: room } },
    // The # tone, as a beep before joining.
    play({ tag: "tones", val: "#" }, null),
    { tag: "conference", val: { room, muted: role === "listener", endOnExit: role === "host" } },
  ];
}

function support() {
  call.onHold = true;
  return [
    { tag: "answer" },
    { tag: "set-timer", val: { name: "patience", ms: patienceMs() } },
    play(say("Please hold, or press star for our assistant."), null),
    // Music never ends by itself: it plays until the answer to the timer or to the star
    // replaces it.
    { tag: "play", val: { audio: { tag: "music", val: null }, repeat: 0, bargeIn: null, tag: "hold" } },
  ];
}

// `support/patience-ms` as a u32, kept between 1 s and an hour; 30 s when missing or unreadable.
function patienceMs() {
  const text = kvString("support/patience-ms")?.trim();
  if (text === undefined || !/^\+?[0-9]+$/.test(text)) return 30000;
  const ms = Number(text);
  return ms > 0xffffffff ? 30000 : Math.min(Math.max(ms, 1000), 3600000);
}

function assistant() {
  return {
    tag: "connect-agent",
    val: {
      name: "support-assistant",
      // The text of a JSON object for the agent's start message, as the tenant configured it.
      // The switch checks it: anything but a JSON object fails the action (`invalid`).
      parameters: kvString("support/assistant-parameters") ?? '{"queue":"support","language":"en"}',
    },
  };
}

function agentEnded(reason) {
  switch (reason.tag) {
    case "hung-up":
      return [{ tag: "hangup", val: null }];
    case "transfer-requested": {
      // An agent's words are no dial plan: only the targets listed in kv are rung.
      const to = reason.val;
      const trunk = kvString(`support/transfer/${to}`);
      if (trunk === null) {
        warn(`the assistant asked for ${to}, not listed`);
        return [{ tag: "hangup", val: null }];
      }
      // The assistant is no leg, so nobody is there to consult: blind.
      const transfer = { target: target(to, trunk.trim()), mode: "blind", tag: "assistant" };
      return [{ tag: "transfer", val: transfer }];
    }
    default: // error
      warn(`assistant failed: ${reason.val}`);
      return [{
        tag: "hand-off",
        val: { plugin: FALLBACK_PLUGIN, variables: [{ name: "handed-off-by", value: "support" }] },
      }];
  }
}

// The words of the recorded prompts used here, to speak when one is missing.
const WORDS = new Map([
  ["sales-voicemail", "Nobody in sales is free. Please leave a message."],
  ["voicemail-saved", "Thank you, we will call you back. Goodbye."],
  ["conference-welcome", "Welcome to the conference line."],
]);

// What a failure of these actions leaves: a seller's key pressed at the wrong moment, a leg that
// ended meanwhile, a forwarding we cannot follow. The call goes on as it was.
const HARMLESS = ["hold", "unhold", "start-recording", "stop-recording", "hangup-leg", "follow-redirect"];

// The answer to `action-failed`. The failed action was not carried out, and the actions after it
// in its answer were dropped; what was already running goes on.
function recover({ action, reason }) {
  const words = reason.tag === "missing-prompt" ? WORDS.get(reason.val) : undefined;
  // A recorded prompt missing from the tenant's store: speak its words instead.
  if (words !== undefined && action.tag === "play") {
    count("prompt_fallbacks");
    return [{ tag: "play", val: { ...action.val, audio: say(words) } }];
  }
  if (HARMLESS.includes(action.tag)) return [];
  return [{ tag: "hangup", val: status(500, "Server Internal Error") }];
}

export const messagePolicy = {
  onMessage(msg) {
    const from = e164(msg.from);
    const to = e164(msg.to);
    if (kvString(`sms/blocked/${from}`) !== null) {
      count("sms_blocked");
      return { tag: "reject", val: status(403, "Sender Blocked") };
    }
    if (kvString(`sms/optout/${to}`) !== null) {
      return { tag: "reject", val: status(403, "Recipient Opted Out") };
    }
    if (/^stop$/i.test(msg.body.trim())) {
      try {
        kvSet(`sms/optout/${from}`, utf8("1"));
      } catch (error) {
        // An opt-out not kept is worse than a message refused: the sender may retry.
        warn(`opt-out of ${from} not kept: ${describe(error.payload)}`);
        return { tag: "reject", val: status(503, "Service Unavailable") };
      }
      count("sms_opt_outs");
      return { tag: "reply", val: "You are unsubscribed." };
    }
    if (from !== msg.from || to !== msg.to) {
      const rewrite = { from: from !== msg.from ? from : null, to: to !== msg.to ? to : null, body: null };
      return { tag: "rewrite", val: rewrite };
    }
    return { tag: "deliver" };
  },

  onDelivery(report) {
    const delivered = report.status.tag === "delivered";
    const outcome = delivered ? "delivered" : "failed";
    const code = delivered ? report.status.val : report.status.val.code;
    const what = report.reply ? "reply" : "message";
    info(`${what} ${report.id} to ${report.to}: ${outcome} ${code}`);
    count(`sms_${outcome}`);
  },
};

// North American numbers in E.164: "(800) 555-0100", "1-800-555-0100" and "+1 800 555 0100" all
// become "+18005550100". Anything else (a short code, a name) is left alone.
function e164(number) {
  const digits = number.replace(/[^0-9]/g, "");
  const plus = number.trimStart().startsWith("+");
  if (plus && digits.length >= 8) return `+${digits}`;
  if (!plus && digits.length === 10) return `+1${digits}`;
  if (!plus && digits.length === 11 && digits.startsWith("1")) return `+${digits}`;
  return number;
}

// The call's id, as part of a recording name: SIP Call-IDs may hold `@`, `..` and more, which
// recording names may not.
function namePart() {
  const id = call.info ? call.info.callId : "call";
  return Array.from(id).slice(0, 64).map((c) => (/^[A-Za-z0-9]$/.test(c) ? c : "-")).join("");
}

// Whether a Refer-To URI names a party of this tenant: `sip:<user>@pbx.example.com`.
function inTenant(uri) {
  if (!uri.startsWith("sip:")) return false;
  const [, host] = splitOnce(uri.slice("sip:".length), "@");
  return host !== undefined && host.split(/[;?:]/)[0] === DOMAIN;
}

// [before, after] the first `separator`, or [text] when there is none.
function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + separator.length)];
}

// The kv value under `key` as text; null when missing, not UTF-8, or the store fails (kv.get
// throws its error).
function kvString(key) {
  try {
    const value = kvGet(key);
    return value == null ? null : fromUtf8(value);
  } catch (_) {
    return null;
  }
}

// QuickJS has no TextEncoder/TextDecoder: UTF-8 through the URI functions (decodeURIComponent
// throws on bytes that are not UTF-8).
function fromUtf8(bytes) {
  return decodeURIComponent(Array.from(bytes, (b) => "%" + b.toString(16).padStart(2, "0")).join(""));
}

function utf8(text) {
  const escaped = encodeURIComponent(text);
  const bytes = [];
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === "%") {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(escaped.charCodeAt(i));
    }
  }
  return new Uint8Array(bytes);
}

function utf8Length(text) {
  return utf8(text).length;
}

// A variant for a log line: its tag, and its payload if it has one.
function describe({ tag, val }) {
  return val === undefined || val === null ? tag : `${tag}(${val})`;
}

function info(message) {
  log("info", message);
}

function warn(message) {
  log("warn", message);
}

function count(name) {
  counterAdd(name, 1); // a Number: QuickJS traps on a BigInt for u64
}

function play(audio, tag) {
  return { tag: "play", val: { audio, repeat: null, bargeIn: null, tag } };
}

function prompt(name) {
  return { tag: "prompt", val: name };
}

function say(text) {
  return { tag: "say", val: text };
}

function target(uri, trunk) {
  return { target: uri, trunk, headers: [], timeoutMs: null };
}

function status(code, reason) {
  return { code, reason };
}
