# IVR menu for wasmswitch, contract 0.2 (world `ivr`): the Rust menu (plugins/ivr-menu) in Python.
# Build: bash plugins/ivr-menu-py/build.sh OUT.wasm
# Test:  wasmswitch plugin test OUT.wasm plugins/scenarios/ivr-menu.yaml
#
# A router hands calls over to it (`handed-over`), or the tenant routes calls straight to it
# (`incoming`). 1 dials sales (`ivr/sales` in kv) and comes back to the menu if nobody takes the
# call, 2 transfers to support (`ivr/support`), 3 records a voicemail.
from wit_world import exports
from wit_world.imports import kv, log, metrics
from wit_world.imports.types import (
    Action_Answer, Action_Dial, Action_Gather, Action_Hangup, Action_Play, Action_Record,
    Action_SetVariable, Action_Transfer, AnswerState, Audio_Prompt, CallEvent_DialCompleted,
    CallEvent_GatherCompleted, CallEvent_HandedOver, CallEvent_Incoming,
    CallEvent_RecordingCompleted, Dial, DialOutcome, DialTarget, Gather, Play, Recording,
    RingGroup, RingStrategy, Transfer, TransferMode, Variable)
from componentize_py_types import Err

SALES = "sales"  # the tag of the dial to sales, to know its dial-completed

# One instance runs per call, so module state is the call's state (reset by start()).
call_id = "unknown"
misses = 0
voicemail = None  # the voicemail being recorded: its recording-completed ends the call


def menu():
    # No terminator: with one digit wanted, every key is a choice (# is a wrong one).
    return Action_Gather(Gather(prompts=[Audio_Prompt("main-menu")], max_digits=1, terminators="",
                                timeout_ms=None, inter_digit_timeout_ms=None, tag=None))


def play(name):
    return Action_Play(Play(Audio_Prompt(name), repeat=None, barge_in=None, tag=None))


def target(uri):
    return DialTarget(uri, trunk=None, headers=[], timeout_ms=None)


def kv_target(key, default):
    try:
        value = kv.get(key)
        return default if value is None else value.decode()
    except (Err, UnicodeDecodeError):
        return default


def start(call, answered):
    global call_id, misses, voicemail
    call_id, misses, voicemail = call.call_id, 0, None
    log.log(log.Level.INFO, f"ivr-menu started for call {call_id}")
    metrics.counter_add("ivr_started", 1)
    return ([] if answered else [Action_Answer()]) + [play("welcome"), menu()]


def miss(prompt):
    global misses
    misses += 1
    return [play("goodbye"), Action_Hangup(None)] if misses >= 3 else [play(prompt), menu()]


def choose(digits):
    global voicemail
    match digits:
        case "1":
            sales = target(kv_target("ivr/sales", "sip:sales@example.com"))
            dial = Dial(groups=[RingGroup(RingStrategy.SEQUENTIAL, [sales])], timeout_ms=None,
                        caller_id=None, ringback=None, tag=SALES)
            return [Action_SetVariable(Variable("menu-choice", "sales")), Action_Dial(dial)]
        case "2":
            support = target(kv_target("ivr/support", "sip:support@example.com"))
            return [Action_SetVariable(Variable("menu-choice", "support")),
                    Action_Transfer(Transfer(support, TransferMode.BLIND, tag=None))]
        case "3":
            voicemail = voicemail_name(call_id)
            # Up to 2 minutes, ended by #, after a beep: the contract's defaults.
            record = Recording(voicemail, max_duration_ms=None, terminators=None, beep=None)
            return [Action_SetVariable(Variable("menu-choice", "voicemail")),
                    play("voicemail-intro"), Action_Record(record)]
        case _:
            return miss("invalid-option")


def voicemail_name(call_id):
    """`voicemail-<Call-ID>`, made a valid recording name: a SIP Call-ID may hold `@`, `..` and
    more, so every character but an ASCII letter or digit becomes `-`, cut to 118 of them."""
    return "voicemail-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in call_id[:118])


class CallHandler(exports.CallHandler):
    def on_event(self, event):
        match event:
            case CallEvent_Incoming(call):
                return start(call, answered=False)
            case CallEvent_HandedOver(over):
                return start(over.call, answered=over.state == AnswerState.ANSWERED)
            case CallEvent_GatherCompleted(gathered) if not gathered.digits:
                return miss("no-input")  # no digit before the timeout
            case CallEvent_GatherCompleted(gathered):
                return choose(gathered.digits)
            case CallEvent_DialCompleted(dial) if dial.tag == SALES:
                if dial.outcome == DialOutcome.ANSWERED:
                    return [Action_Hangup(None)]  # sales took the call, and it is over
                return [play("sales-unavailable"), menu()]  # busy, no answer or failed
            # Only the voicemail's end: a recording the router started may end meanwhile.
            case CallEvent_RecordingCompleted(recording) if recording.name == voicemail:
                return [play("voicemail-saved"), Action_Hangup(None)]
            case _:
                # The end of each prompt, the legs of the dial, stray digits, the hangup: the
                # actions waiting go on by themselves.
                return []
