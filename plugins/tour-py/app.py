# A tour of plugin contract 0.2 in Python: the Rust tour (plugins/tour) line for line, a small
# front desk whose lines, between them, answer with every kind of action and handle every kind of
# call event, plus an SMS policy. Read it next to wit/v0.2.0/types.wit.
#
# - Sales, +18005550100: the office desk phone, then both mobiles at once; a phone's 3xx
#   forwarding is followed; nobody free means voicemail. Keys on the seller's phone hold (1) and
#   unhold (2) the caller, start (3) and stop (4) recording, and consult the manager (5); its
#   transfers (REFER) may only go inside the tenant.
# - Conference, +18005550101: the PIN is asked in early media, so nothing is billed until it is
#   right; a wrong one is refused, 0 redirects to the operator.
# - Support, +18005550102: hold music; after `support/patience-ms` (or when the caller presses
#   `*`) the AI assistant takes the call, then may transfer it or hand it on.
# - Any other number: 404. A call another plugin hands over hears a menu: 1 sales, 2 support.
# - Messages: blocked senders and opted-out recipients are refused, STOP opts out, numbers are
#   rewritten to E.164; delivery reports are counted.
#
# It passes the same scenario as the Rust tour, plugins/scenarios/tour.yaml, unchanged.
#
# Build: bash plugins/tour-py/build.sh OUT.wasm       (componentize-py 0.25.1, world `switch`)
# Test:  wasmswitch plugin test OUT.wasm plugins/scenarios/tour.yaml
#
# `kv` keys: `conference/pin/<pin>` (`<room>`, `<room> host` or `<room> listener`),
# `sales/queue` (the desk's `X-Queue` header, default `sales`), `support/patience-ms` (default
# 30000), `support/assistant-parameters` (the assistant's start parameters, a JSON object),
# `support/transfer/<target>` (the trunk for a target the assistant may transfer to; others are
# refused), `sms/blocked/<number>`, `sms/optout/<number>` (set by STOP).
#
# The bindings are componentize-py's: each WIT variant case is a class (`CallEvent_Dtmf`,
# `Action_Hold`) holding its payload in `value`, matched positionally below; records are
# dataclasses built with every field (none is optional in Python: an `option` is None or the
# value); enums and flags are Python enums; WIT `from` is `from_`.
import dataclasses
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import kv, log, metrics
from wit_world.imports.types import (
    AcceptTransfer, Action_AcceptTransfer, Action_Answer, Action_CancelTimer, Action_Conference,
    Action_ConnectAgent, Action_Dial, Action_FollowRedirect, Action_Gather, Action_HandOff,
    Action_Hangup, Action_HangupLeg, Action_Hold, Action_Play, Action_PreAnswer, Action_Record,
    Action_Redirect, Action_RefuseTransfer, Action_Reject, Action_SetTimer, Action_SetVariable,
    Action_StartRecording, Action_StopRecording, Action_Transfer, Action_Unhold, Agent,
    AgentEnd_Error, AgentEnd_HungUp, AgentEnd_TransferRequested, Audio_Music, Audio_Prompt,
    Audio_Say, Audio_Silence, Audio_Tones, CallerId, CallEvent_ActionFailed, CallEvent_AgentEnded,
    CallEvent_ConferenceChanged, CallEvent_DialCompleted, CallEvent_Dtmf,
    CallEvent_GatherCompleted, CallEvent_HandedOver, CallEvent_Incoming, CallEvent_LegEarlyMedia,
    CallEvent_LegEnded, CallEvent_LegRedirected, CallEvent_PlaybackFinished,
    CallEvent_RecordingCompleted, CallEvent_Timer, CallEvent_TransferRequested, CallRecording,
    Conference, DeliveryStatus_Delivered, DeliveryStatus_Failed, Dial, DialOutcome, DialTarget,
    FailureReason_MissingPrompt, FollowRedirect, Gather, HandOff, Header, Hold, MemberChange, Play,
    Privacy, Recording, Redirect, RefuseTransfer, Rewrite, RingGroup, RingStrategy, SipStatus,
    SmsDecision_Deliver, SmsDecision_Reject, SmsDecision_Reply, SmsDecision_Rewrite, Timer,
    Transfer, TransferMode, Variable)


class Line:
    """The tenant's numbers (a class, so that `case Line.SALES:` compares rather than binds)."""
    SALES = "+18005550100"
    CONFERENCE = "+18005550101"
    SUPPORT = "+18005550102"


SALES_DESK = "+14155550110"
SALES_MOBILES = ("+14155550111", "+14155550112")
MANAGER = "+14155550120"
DOMAIN = "pbx.example.com"  # the tenant's own SIP domain: the only place a REFER may send a caller
FALLBACK_PLUGIN = "ivr-menu"  # takes the calls the AI assistant could not handle
MENU = "For sales, press 1. For support, press 2."
PIN_PROMPT = "Please enter your PIN, then press hash."
ASSISTANT_PARAMETERS = '{"queue":"support","language":"en"}'

# The words of the recorded prompts used here, to speak when one is missing.
WORDS = {
    "sales-voicemail": "Nobody in sales is free. Please leave a message.",
    "voicemail-saved": "Thank you, we will call you back. Goodbye.",
    "conference-welcome": "Welcome to the conference line.",
}


@dataclasses.dataclass
class Call:
    """What this instance knows of its call: one instance runs per call and hears all of it."""
    info: object = None  # the CallInfo, from `incoming` or `handed-over`
    line: str = ""  # the number called, or the one the menu chose
    pin: str = ""  # conference: the digit typed over the welcome, the PIN's first
    on_hold: bool = False  # support: on hold, waiting for the assistant
    voicemail: str | None = None  # sales: the voicemail being recorded


call = Call()  # the call's state; a fresh one on `incoming` and `handed-over`


class CallHandler(exports.CallHandler):
    def on_event(self, event):
        info(f"event {case_name(event)}")
        return handle(event)


def handle(event):
    global call
    match event:
        case CallEvent_Incoming(incoming):
            count("calls")
            call = Call(info=incoming, line=incoming.to)
            match incoming.to:
                case Line.SALES:
                    return [sales(incoming)]
                case Line.CONFERENCE:
                    # Early media: the caller hears us, but nothing is billed before `answer`.
                    welcome = Play(prompt("conference-welcome"), repeat=None, barge_in=True,
                                   tag="welcome")
                    return [Action_PreAnswer(), Action_Play(welcome)]
                case Line.SUPPORT:
                    return support()
                case _:
                    return [Action_Reject(status(404, "Not Found"))]

        case CallEvent_HandedOver(over):
            info(f"handed over by {over.from_plugin}")
            call = Call(info=over.call)
            # The plugin that handed the call over may have looked the caller up. (Anything
            # longer is no name, and text to speak has a limit too.)
            name = next((v.value for v in over.variables if v.name == "customer-name"), None)
            known = name is not None and len(name.encode()) <= 64
            greeting = f"Hello {name}." if known else "Hello."
            menu = Gather(prompts=[Audio_Say(greeting), Audio_Say(MENU)], max_digits=1,
                          terminators="", timeout_ms=None, inter_digit_timeout_ms=None, tag="menu")
            # `answer` does nothing if the call was answered already.
            return [Action_Answer(), Action_Gather(menu)]

        # A mobile's carrier sends early media to say the phone is off or out of reach, just
        # before its voicemail answers: drop that leg, so the caller does not end up there.
        case CallEvent_LegEarlyMedia(leg) if leg.target in SALES_MOBILES:
            return [Action_HangupLeg(leg.id)]

        # Our phones' call forwarding answers with a 3xx: ring where it points instead.
        case CallEvent_LegRedirected(redirect) if redirect.contacts:
            targets = [target(contact) for contact in redirect.contacts[:8]]
            return [Action_FollowRedirect(FollowRedirect(redirect.leg.id, targets))]

        case CallEvent_LegEnded(ended):
            info(f"leg {ended.leg.id} ended: {wit_name(ended.end)} {ended.status.code}")
            return []

        case CallEvent_DialCompleted(dial):
            if dial.outcome == DialOutcome.ANSWERED:
                return []  # the bridge is over: with nothing left to do, the switch hangs up
            call.voicemail = f"voicemail/{name_part()}"  # busy, no answer or failed
            return [Action_Answer(), play(prompt("sales-voicemail"), tag="voicemail")]

        case CallEvent_Dtmf(press):
            match (call.line, press.leg):
                case (Line.SUPPORT, 0) if press.digit == "*" and call.on_hold:
                    call.on_hold = False
                    return [Action_CancelTimer("patience"), assistant()]
                case (Line.SALES, leg) if leg >= 1:
                    return seller_key(press.digit)
                case _:
                    return []

        # Each prompt here ends its answer, and the next step waits for its end: an action that
        # fails drops the actions after it, so this is all `action-failed` has to redo.
        case CallEvent_PlaybackFinished(played):
            match played.tag:
                case "welcome":
                    # A digit typed over the welcome stopped it: that is the PIN's first.
                    call.pin = played.barged_in or ""
                    return [pin_gather(ask=not call.pin)]
                case "voicemail" if call.voicemail is not None:
                    return [record(call.voicemail)]
                case _:
                    return []

        case CallEvent_GatherCompleted(gathered):
            match gathered.tag:
                case "pin":
                    pin, call.pin = call.pin + gathered.digits, ""
                    return conference(pin)
                case "menu" if gathered.digits == "2":
                    call.line = Line.SUPPORT
                    return support()
                case "menu":
                    # 1, anything else, or nothing at all: a person in sales.
                    call.line = Line.SALES
                    return [sales(call.info)] if call.info is not None else []
                case _:
                    return []

        case CallEvent_RecordingCompleted(recording) if recording.name == call.voicemail:
            count("voicemails")
            return [play(prompt("voicemail-saved"))]  # then nothing is left: the switch hangs up

        # A REFER makes the switch ring whoever the phone names, at the tenant's cost.
        case CallEvent_TransferRequested(request) if in_tenant(request.target):
            return [Action_AcceptTransfer(AcceptTransfer(request.leg, target=None, tag="refer"))]
        case CallEvent_TransferRequested(request):
            warn(f"transfer to {request.target} refused")
            count("transfers_refused")
            return [Action_RefuseTransfer(RefuseTransfer(request.leg, status(403, "Forbidden")))]

        case CallEvent_ConferenceChanged(change):
            info(f"{change.room}: {wit_name(change.change)}")
            if change.change == MemberChange.JOINED:
                count("conference_joins")
            return []  # carry on: a media action here would take the caller out of the room

        case CallEvent_AgentEnded(agent):
            return agent_ended(agent.reason)

        case CallEvent_Timer("patience"):
            call.on_hold = False
            return [play(Audio_Say("Thank you for waiting.")), assistant()]

        case CallEvent_ActionFailed(failure):
            warn(f"{case_name(failure.reason)}: {failure.message}")
            return recover(failure)

        case _:
            # Logged above, and nothing to do: a leg ringing or answering, a background
            # recording ended, a timer of no interest... The answer to `hangup`, the last event,
            # is ignored anyway.
            return []


def sales(caller):
    """Ring the sales desk phone, then both mobiles at once."""
    queue = kv_get("sales/queue")  # the desk's call queue, as the tenant configured it
    desk = DialTarget(SALES_DESK, trunk="office",
                      headers=[Header("X-Queue", "sales" if queue is None else queue)],
                      timeout_ms=15_000)
    mobiles = [target(mobile, trunk="carrier") for mobile in SALES_MOBILES]
    # The phones show the sales line, so sellers know the call is for sales. Privacy: what the
    # caller asked for, and `id`: our asserted identity is for the carrier.
    caller_id = CallerId(number=Line.SALES, name="Sales", privacy=caller.privacy | Privacy.ID,
                         asserted_identity=f"sip:{Line.SALES}@{DOMAIN}")
    return Action_Dial(Dial(
        groups=[RingGroup(RingStrategy.SEQUENTIAL, [desk]),
                RingGroup(RingStrategy.SIMULTANEOUS, mobiles)],
        timeout_ms=60_000, caller_id=caller_id, ringback=Audio_Music(None), tag="sales"))


def record(name):
    return Action_Record(Recording(name, max_duration_ms=180_000, terminators=None, beep=None))


def seller_key(key):
    """Keys on the seller's phone."""
    recording = f"calls/{name_part()}"
    match key:
        case "1":
            return [Action_Hold(Hold(leg=0, music="sales"))]
        case "2":
            return [Action_Unhold(0)]
        case "3":
            return [Action_StartRecording(CallRecording(recording, max_duration_ms=3_600_000))]
        case "4":
            return [Action_StopRecording(recording)]
        case "5":
            # The caller waits on hold while the seller talks to the manager; when the seller
            # hangs up, the manager has the caller.
            manager = DialTarget(MANAGER, trunk="office", headers=[], timeout_ms=20_000)
            return [Action_Transfer(Transfer(manager, TransferMode.ATTENDED, tag="manager"))]
        case _:
            return []


def pin_gather(ask):
    """Ask for the 4-digit conference PIN, or for the rest of it when its first digit is in."""
    return Action_Gather(Gather(
        prompts=[Audio_Silence(500), Audio_Say(PIN_PROMPT)] if ask else [],
        max_digits=4 if ask else 3, terminators="#", timeout_ms=8_000,
        inter_digit_timeout_ms=3_000, tag="pin"))


def conference(pin):
    if pin == "0":
        operator = [f"sip:operator@{DOMAIN}", f"tel:{Line.SALES}"]
        return [Action_Redirect(Redirect(operator, status=302))]
    entry = kv_get(f"conference/pin/{pin}")
    if entry is None:
        warn("wrong conference PIN")
        return [Action_Reject(status(403, "Wrong PIN"))]
    room, _, role = entry.strip().partition(" ")  # no role: a member
    return [
        Action_Answer(),
        Action_SetVariable(Variable("conference-room", room)),
        play(Audio_Tones("#")),  # the # tone, as a beep before joining
        Action_Conference(Conference(room, muted=role == "listener", end_on_exit=role == "host")),
    ]


def support():
    call.on_hold = True
    return [
        Action_Answer(),
        Action_SetTimer(Timer("patience", patience_ms())),
        play(Audio_Say("Please hold, or press star for our assistant.")),
        # Music never ends by itself: it plays until the answer to the timer or to the star
        # replaces it.
        Action_Play(Play(Audio_Music(None), repeat=0, barge_in=None, tag="hold")),
    ]


def patience_ms():
    """`support/patience-ms`, kept within 1 s to 1 h; 30 s when missing or not a number."""
    text = (kv_get("support/patience-ms") or "").strip()
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**32:
        return 30_000
    return min(max(int(text), 1_000), 3_600_000)


def assistant():
    # The text of a JSON object for the agent's start message, as the tenant configured it. The
    # switch checks it: anything but a JSON object fails the action (`invalid`).
    parameters = kv_get("support/assistant-parameters")
    return Action_ConnectAgent(Agent(
        "support-assistant", ASSISTANT_PARAMETERS if parameters is None else parameters))


def agent_ended(reason):
    match reason:
        case AgentEnd_HungUp():
            return [Action_Hangup(None)]
        # An agent's words are no dial plan: only the targets listed in kv are rung.
        case AgentEnd_TransferRequested(to):
            trunk = kv_get(f"support/transfer/{to}")
            if trunk is None:
                warn(f"the assistant asked for {to}, not listed")
                return [Action_Hangup(None)]
            # The assistant is no leg, so nobody is there to consult: blind.
            transfer = Transfer(target(to, trunk.strip()), TransferMode.BLIND, tag="assistant")
            return [Action_Transfer(transfer)]
        case AgentEnd_Error(why):
            warn(f"assistant failed: {why}")
            handed_off_by = Variable("handed-off-by", "support")
            return [Action_HandOff(HandOff(FALLBACK_PLUGIN, [handed_off_by]))]


def recover(failure):
    """The answer to `action-failed`. The failed action was not carried out, and the actions
    after it in its answer were dropped; what was already running goes on."""
    match (failure.reason, failure.action):
        # A recorded prompt missing from the tenant's store: speak its words instead.
        case (FailureReason_MissingPrompt(name), Action_Play(failed)) if name in WORDS:
            count("prompt_fallbacks")
            return [Action_Play(dataclasses.replace(failed, audio=Audio_Say(WORDS[name])))]
        # A seller's key pressed at the wrong moment, a leg that ended meanwhile, a forwarding
        # we cannot follow: the call goes on as it was.
        case (_, Action_Hold() | Action_Unhold() | Action_StartRecording()
              | Action_StopRecording() | Action_HangupLeg() | Action_FollowRedirect()):
            return []
        case _:
            return [Action_Hangup(status(500, "Server Internal Error"))]


class MessagePolicy(exports.MessagePolicy):
    def on_message(self, msg):
        from_, to = e164(msg.from_), e164(msg.to)
        if kv_get(f"sms/blocked/{from_}") is not None:
            count("sms_blocked")
            return SmsDecision_Reject(status(403, "Sender Blocked"))
        if kv_get(f"sms/optout/{to}") is not None:
            return SmsDecision_Reject(status(403, "Recipient Opted Out"))
        if msg.body.strip().lower() == "stop":
            try:
                kv.set(f"sms/optout/{from_}", b"1")
            except Err as e:
                # An opt-out not kept is worse than a message refused: the sender may retry.
                warn(f"opt-out of {from_} not kept: {case_name(e.value)}")
                return SmsDecision_Reject(status(503, "Service Unavailable"))
            count("sms_opt_outs")
            return SmsDecision_Reply("You are unsubscribed.")
        if from_ != msg.from_ or to != msg.to:
            return SmsDecision_Rewrite(Rewrite(from_=from_ if from_ != msg.from_ else None,
                                               to=to if to != msg.to else None, body=None))
        return SmsDecision_Deliver()

    def on_delivery(self, report):
        match report.status:
            case DeliveryStatus_Delivered(code):
                outcome = "delivered"
            case DeliveryStatus_Failed(failed):
                outcome, code = "failed", failed.code
        what = "reply" if report.reply else "message"
        info(f"{what} {report.id} to {report.to}: {outcome} {code}")
        count(f"sms_{outcome}")


def e164(number):
    """North American numbers in E.164: "(800) 555-0100", "1-800-555-0100" and "+1 800 555 0100"
    all become "+18005550100". Anything else (a short code, a name) is left alone."""
    digits = "".join(c for c in number if c in "0123456789")
    if number.lstrip().startswith("+"):
        return f"+{digits}" if len(digits) >= 8 else number
    if len(digits) == 10:
        return f"+1{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{digits}"
    return number


def name_part():
    """The call's id, as part of a recording name: SIP Call-IDs may hold `@`, `..` and more,
    which recording names may not."""
    call_id = call.info.call_id if call.info is not None else "call"
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in call_id[:64])


def in_tenant(uri):
    """Whether a Refer-To URI names a party of this tenant: `sip:<user>@pbx.example.com`."""
    _, at, rest = uri.removeprefix("sip:").partition("@")
    return uri.startswith("sip:") and bool(at) and re.split("[;?:]", rest)[0] == DOMAIN


def kv_get(key):
    """The text under `key`, or None (also when the store fails or it is not UTF-8)."""
    try:
        value = kv.get(key)
        return None if value is None else value.decode()
    except (Err, UnicodeDecodeError):
        return None


def case_name(value):
    """The WIT name of a variant case, e.g. `leg-early-media` for a `CallEvent_LegEarlyMedia`."""
    name = type(value).__name__.partition("_")[2]
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def wit_name(value):
    """The WIT name of an enum value, e.g. `no-answer` for `LegEnd.NO_ANSWER`."""
    return value.name.lower().replace("_", "-")


def info(message):
    log.log(log.Level.INFO, message)


def warn(message):
    log.log(log.Level.WARN, message)


def count(name):
    metrics.counter_add(name, 1)


def play(audio, tag=None):
    return Action_Play(Play(audio, repeat=None, barge_in=None, tag=tag))


def prompt(name):
    return Audio_Prompt(name)


def target(uri, trunk=None):
    return DialTarget(uri, trunk=trunk, headers=[], timeout_ms=None)


def status(code, reason):
    return SipStatus(code, reason)
