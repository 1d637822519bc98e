# IVR menu for wasmswitch (world `ivr`). Build: bash plugins/ivr-menu-py/build.sh OUT.wasm
# Test:  wasmswitch plugin test OUT.wasm plugins/scenarios/ivr-menu.yaml
from wit_world import exports
from wit_world.imports import kv, log, metrics
from wit_world.imports.types import (
    Audio_Prompt, Dial, DialOutcome, Forward, Gather, IvrAction_Dial, IvrAction_Gather,
    IvrAction_Hangup, IvrAction_Play, IvrAction_Record, IvrAction_SetVariable, IvrAction_Transfer,
    IvrEvent_DialCompleted, IvrEvent_DigitsCollected, IvrEvent_RecordingCompleted,
    IvrEvent_Started, IvrEvent_Timeout, Play, Recording, RingStrategy, Transfer)
from componentize_py_types import Err

call_id = "unknown"  # one instance runs per call, so module state is the call's state
misses = 0

MENU = IvrAction_Gather(Gather(prompt=Audio_Prompt("main-menu"), max_digits=1, terminator=None,
                               timeout_ms=5000, inter_digit_timeout_ms=3000))


def play(name):
    return IvrAction_Play(Play(Audio_Prompt(name), 1, False))


def kv_target(key, default):
    try:
        value = kv.get(key)
        return default if value is None else value.decode()
    except (Err, UnicodeDecodeError):
        return default


def miss(prompt):
    global misses
    misses += 1
    return [play("goodbye"), IvrAction_Hangup(None)] if misses >= 3 else [play(prompt), MENU]


def choose(digits):
    if digits == "1":
        sales = Forward(targets=[kv_target("ivr/sales", "sip:sales@example.com")], trunk=None,
                        timeout_ms=30000, strategy=RingStrategy.SEQUENTIAL, caller_id=None)
        return [IvrAction_SetVariable(("menu-choice", "sales")), IvrAction_Dial(Dial(sales, True))]
    if digits == "2":
        support = kv_target("ivr/support", "sip:support@example.com")
        return [IvrAction_SetVariable(("menu-choice", "support")),
                IvrAction_Transfer(Transfer(support, None))]
    if digits == "3":
        return [IvrAction_SetVariable(("menu-choice", "voicemail")), play("voicemail-intro"),
                IvrAction_Record(Recording(name=f"voicemail-{call_id}", max_duration_ms=120000,
                                           terminator="#", beep=True))]
    return miss("invalid-option")


class IvrFlow(exports.IvrFlow):
    def on_event(self, event):
        global call_id, misses
        match event:
            case IvrEvent_Started(started):
                call_id, misses = started.call.call_id, 0
                log.log(log.Level.INFO, f"ivr-menu started for call {call_id}")
                metrics.counter_add("ivr_started", 1)
                return [play("welcome"), MENU]
            case IvrEvent_DigitsCollected(d):
                return choose(d.digits)
            case IvrEvent_Timeout():
                return miss("no-input")
            case IvrEvent_DialCompleted(outcome):
                if outcome == DialOutcome.COMPLETED:
                    return [IvrAction_Hangup(None)]
                return [play("sales-unavailable"), MENU]
            case IvrEvent_RecordingCompleted():
                return [play("voicemail-saved"), IvrAction_Hangup(None)]
            case _:  # dtmf, playback-finished, hangup
                return []
