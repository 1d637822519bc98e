//! A tour of plugin contract 0.2: a small front desk whose lines, between them, answer with every
//! kind of action and handle every kind of call event, plus an SMS policy. Read it next to
//! `wit/v0.2.0/types.wit`.
//!
//! - Sales, +18005550100: the office desk phone, then both mobiles at once; a phone's 3xx
//!   forwarding is followed; nobody free means voicemail. Keys on the seller's phone hold (1) and
//!   unhold (2) the caller, start (3) and stop (4) recording, and consult the manager (5); its
//!   transfers (REFER) may only go inside the tenant.
//! - Conference, +18005550101: the PIN is asked in early media, so nothing is billed until it is
//!   right; a wrong one is refused, 0 redirects to the operator.
//! - Support, +18005550102: hold music; after `support/patience-ms` (or when the caller presses
//!   `*`) the AI assistant takes the call, then may transfer it or hand it on.
//! - Any other number: 404. A call another plugin hands over hears a menu: 1 sales, 2 support.
//! - Messages: blocked senders and opted-out recipients are refused, STOP opts out, numbers are
//!   rewritten to E.164; delivery reports are counted.
//!
//! It uses `wit-bindgen` directly, to show the contract as any language binds it; the Rust SDK
//! (`sdk/plugin`) re-exports the same types, with a few constructors.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p tour`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/tour.wasm plugins/scenarios/tour.yaml`
//!
//! `kv` keys: `conference/pin/<pin>` (`<room>`, `<room> host` or `<room> listener`),
//! `sales/queue` (the desk's `X-Queue` header, default `sales`), `support/patience-ms` (default
//! 30000), `support/assistant-parameters` (the assistant's start parameters, a JSON object),
//! `support/transfer/<target>` (the trunk for a target the assistant may transfer to; others are
//! refused), `sms/blocked/<number>`, `sms/optout/<number>` (set by STOP).

use std::cell::RefCell;

wit_bindgen::generate!({ path: "../../wit/v0.2.0", world: "switch" });

use exports::wasmswitch::plugin::{call_handler, message_policy};
use wasmswitch::plugin::log::{Level, log};
use wasmswitch::plugin::types::*;
use wasmswitch::plugin::{kv, metrics};

const SALES: &str = "+18005550100";
const CONFERENCE: &str = "+18005550101";
const SUPPORT: &str = "+18005550102";
const SALES_DESK: &str = "+14155550110";
const SALES_MOBILES: [&str; 2] = ["+14155550111", "+14155550112"];
const MANAGER: &str = "+14155550120";
/// The tenant's own SIP domain: the only place a phone's REFER may send a caller.
const DOMAIN: &str = "pbx.example.com";
/// The tenant's plugin that takes the calls the AI assistant could not handle.
const FALLBACK_PLUGIN: &str = "ivr-menu";
const MENU: &str = "For sales, press 1. For support, press 2.";
const PIN_PROMPT: &str = "Please enter your PIN, then press hash.";

/// What this instance knows of its call: one instance runs per call and hears all of it.
#[derive(Default)]
struct Call {
    /// The call as it arrived, from `incoming` or `handed-over`.
    info: Option<CallInfo>,
    /// The line the call is on: the number called, or the one the menu chose.
    line: String,
    /// Conference: the digit typed over the welcome, the PIN's first.
    pin: String,
    /// Support: on hold, waiting for the assistant.
    on_hold: bool,
    /// Sales: the voicemail being recorded.
    voicemail: Option<String>,
}

thread_local! {
    static CALL: RefCell<Call> = RefCell::default();
}

struct Tour;

impl call_handler::Guest for Tour {
    fn on_event(event: CallEvent) -> Vec<Action> {
        info(&format!("event {}", kind(&event)));
        CALL.with_borrow_mut(|call| handle(call, event))
    }
}

fn handle(call: &mut Call, event: CallEvent) -> Vec<Action> {
    match event {
        CallEvent::Incoming(incoming) => {
            count("calls");
            let answer = match incoming.to.as_str() {
                SALES => vec![sales(&incoming)],
                CONFERENCE => vec![
                    // Early media: the caller hears us, but nothing is billed before `answer`.
                    Action::PreAnswer,
                    Action::Play(Play {
                        audio: prompt("conference-welcome"),
                        repeat: None,
                        barge_in: Some(true),
                        tag: Some("welcome".into()),
                    }),
                ],
                SUPPORT => support(call),
                _ => vec![Action::Reject(status(404, "Not Found"))],
            };
            call.line = incoming.to.clone();
            call.info = Some(incoming);
            answer
        }
        CallEvent::HandedOver(over) => {
            info(&format!("handed over by {}", over.from_plugin));
            // The plugin that handed the call over may have looked the caller up. (Anything
            // longer is no name, and text to speak has a limit too.)
            let greeting = match over.variables.iter().find(|v| v.name == "customer-name") {
                Some(v) if v.value.len() <= 64 => format!("Hello {}.", v.value),
                _ => "Hello.".into(),
            };
            call.info = Some(over.call);
            vec![
                // Does nothing if the call was answered already.
                Action::Answer,
                Action::Gather(Gather {
                    prompts: vec![Audio::Say(greeting), Audio::Say(MENU.into())],
                    max_digits: Some(1),
                    terminators: Some(String::new()),
                    timeout_ms: None,
                    inter_digit_timeout_ms: None,
                    tag: Some("menu".into()),
                }),
            ]
        }
        // A mobile's carrier sends early media to say the phone is off or out of reach, just
        // before its voicemail answers: drop that leg, so the caller does not end up there.
        CallEvent::LegEarlyMedia(leg) if SALES_MOBILES.contains(&leg.target.as_str()) => {
            vec![Action::HangupLeg(leg.id)]
        }
        // Our phones' call forwarding answers with a 3xx: ring where it points instead.
        CallEvent::LegRedirected(redirect) if !redirect.contacts.is_empty() => {
            let targets = redirect.contacts.iter().take(8);
            vec![Action::FollowRedirect(FollowRedirect {
                leg: redirect.leg.id,
                targets: targets.map(|contact| target(contact, None)).collect(),
            })]
        }
        CallEvent::LegEnded(ended) => {
            let (leg, code) = (ended.leg.id, ended.status.code);
            info(&format!("leg {leg} ended: {:?} {code}", ended.end));
            vec![]
        }
        CallEvent::DialCompleted(dial) => match dial.outcome {
            // The bridge is over: with nothing left to do, the switch hangs up.
            DialOutcome::Answered => vec![],
            DialOutcome::Busy | DialOutcome::NoAnswer | DialOutcome::Failed => {
                call.voicemail = Some(format!("voicemail/{}", name_part(call)));
                vec![
                    Action::Answer,
                    play(prompt("sales-voicemail"), Some("voicemail")),
                ]
            }
        },
        CallEvent::Dtmf(press) => match (call.line.as_str(), press.leg) {
            (SUPPORT, 0) if press.digit == '*' && call.on_hold => {
                call.on_hold = false;
                vec![Action::CancelTimer("patience".into()), assistant()]
            }
            (SALES, 1..) => seller_key(call, press.digit),
            _ => vec![],
        },
        // Each prompt here ends its answer, and the next step waits for its end: an action
        // that fails drops the actions after it, so this is all `action-failed` has to redo.
        CallEvent::PlaybackFinished(played) => match played.tag.as_deref() {
            // A digit typed over the welcome stopped it: that is the PIN's first.
            Some("welcome") => {
                call.pin = played.barged_in.map(String::from).unwrap_or_default();
                vec![pin_gather(call.pin.is_empty())]
            }
            Some("voicemail") => call.voicemail.as_deref().map(record).into_iter().collect(),
            _ => vec![],
        },
        CallEvent::GatherCompleted(gathered) => match gathered.tag.as_deref() {
            Some("pin") => conference(&(std::mem::take(&mut call.pin) + &gathered.digits)),
            Some("menu") if gathered.digits == "2" => {
                call.line = SUPPORT.into();
                support(call)
            }
            // 1, anything else, or nothing at all: a person in sales.
            Some("menu") => {
                call.line = SALES.into();
                call.info.iter().map(sales).collect()
            }
            _ => vec![],
        },
        CallEvent::RecordingCompleted(rec) if call.voicemail.as_ref() == Some(&rec.name) => {
            count("voicemails");
            // After it nothing is left, so the switch hangs up.
            vec![play(prompt("voicemail-saved"), None)]
        }
        // A REFER makes the switch ring whoever the phone names, at the tenant's cost.
        CallEvent::TransferRequested(request) if in_tenant(&request.target) => {
            vec![Action::AcceptTransfer(AcceptTransfer {
                leg: request.leg,
                target: None,
                tag: Some("refer".into()),
            })]
        }
        CallEvent::TransferRequested(request) => {
            warn(&format!("transfer to {} refused", request.target));
            count("transfers_refused");
            vec![Action::RefuseTransfer(RefuseTransfer {
                leg: request.leg,
                status: Some(status(403, "Forbidden")),
            })]
        }
        CallEvent::ConferenceChanged(change) => {
            info(&format!("{}: {:?}", change.room, change.change));
            if matches!(change.change, MemberChange::Joined) {
                count("conference_joins");
            }
            // Carry on: a media action here would take the caller out of the room.
            vec![]
        }
        CallEvent::AgentEnded(agent) => match agent.reason {
            AgentEnd::HungUp => vec![Action::Hangup(None)],
            // An agent's words are no dial plan: only the targets listed in kv are rung.
            AgentEnd::TransferRequested(to) => match kv_get(&format!("support/transfer/{to}")) {
                Some(trunk) => vec![Action::Transfer(Transfer {
                    target: target(&to, Some(trunk.trim())),
                    // The assistant is no leg, so nobody is there to consult: blind.
                    mode: TransferMode::Blind,
                    tag: Some("assistant".into()),
                })],
                None => {
                    warn(&format!("the assistant asked for {to}, not listed"));
                    vec![Action::Hangup(None)]
                }
            },
            AgentEnd::Error(why) => {
                warn(&format!("assistant failed: {why}"));
                vec![Action::HandOff(HandOff {
                    plugin: FALLBACK_PLUGIN.into(),
                    variables: vec![Variable {
                        name: "handed-off-by".into(),
                        value: "support".into(),
                    }],
                })]
            }
        },
        CallEvent::Timer(name) if name == "patience" => {
            call.on_hold = false;
            vec![
                play(Audio::Say("Thank you for waiting.".into()), None),
                assistant(),
            ]
        }
        CallEvent::ActionFailed(failure) => {
            warn(&format!("{:?}: {}", failure.reason, failure.message));
            recover(failure)
        }
        // Logged above, and nothing to do: a background recording ended, a timer of no
        // interest... The answer to `hangup`, the last event, is ignored anyway.
        CallEvent::LegRinging(_)
        | CallEvent::LegEarlyMedia(_)
        | CallEvent::LegAnswered(_)
        | CallEvent::LegRedirected(_)
        | CallEvent::RecordingCompleted(_)
        | CallEvent::TransferCompleted(_)
        | CallEvent::Timer(_)
        | CallEvent::Hangup(_) => vec![],
    }
}

/// Ring the sales desk phone, then both mobiles at once.
fn sales(call: &CallInfo) -> Action {
    Action::Dial(Dial {
        groups: vec![
            RingGroup {
                strategy: RingStrategy::Sequential,
                targets: vec![DialTarget {
                    // The desk's call queue, as the tenant configured it.
                    headers: vec![Header {
                        name: "X-Queue".into(),
                        value: kv_get("sales/queue").unwrap_or_else(|| "sales".into()),
                    }],
                    timeout_ms: Some(15_000),
                    ..target(SALES_DESK, Some("office"))
                }],
            },
            RingGroup {
                strategy: RingStrategy::Simultaneous,
                targets: SALES_MOBILES.map(|m| target(m, Some("carrier"))).into(),
            },
        ],
        timeout_ms: Some(60_000),
        // The phones show the sales line, so sellers know the call is for sales.
        caller_id: Some(CallerId {
            number: Some(SALES.into()),
            name: Some("Sales".into()),
            // What the caller asked for, and `id`: our asserted identity is for the carrier.
            privacy: Some(call.privacy | Privacy::ID),
            asserted_identity: Some(format!("sip:{SALES}@{DOMAIN}")),
        }),
        ringback: Some(Audio::Music(None)),
        tag: Some("sales".into()),
    })
}

fn record(name: &str) -> Action {
    Action::Record(Recording {
        name: name.into(),
        max_duration_ms: Some(180_000),
        terminators: None,
        beep: None,
    })
}

/// Keys on the seller's phone.
fn seller_key(call: &Call, key: char) -> Vec<Action> {
    let recording = format!("calls/{}", name_part(call));
    match key {
        '1' => vec![Action::Hold(Hold {
            leg: 0,
            music: Some("sales".into()),
        })],
        '2' => vec![Action::Unhold(0)],
        '3' => vec![Action::StartRecording(CallRecording {
            name: recording,
            max_duration_ms: Some(3_600_000),
        })],
        '4' => vec![Action::StopRecording(recording)],
        // The caller waits on hold while the seller talks to the manager; when the seller
        // hangs up, the manager has the caller.
        '5' => vec![Action::Transfer(Transfer {
            target: DialTarget {
                timeout_ms: Some(20_000),
                ..target(MANAGER, Some("office"))
            },
            mode: TransferMode::Attended,
            tag: Some("manager".into()),
        })],
        _ => vec![],
    }
}

/// Ask for the 4-digit conference PIN, or for the rest of it when its first digit is in.
fn pin_gather(ask: bool) -> Action {
    Action::Gather(Gather {
        prompts: if ask {
            vec![Audio::Silence(500), Audio::Say(PIN_PROMPT.into())]
        } else {
            vec![]
        },
        max_digits: Some(if ask { 4 } else { 3 }),
        terminators: Some("#".into()),
        timeout_ms: Some(8_000),
        inter_digit_timeout_ms: Some(3_000),
        tag: Some("pin".into()),
    })
}

fn conference(pin: &str) -> Vec<Action> {
    if pin == "0" {
        return vec![Action::Redirect(Redirect {
            contacts: vec![format!("sip:operator@{DOMAIN}"), format!("tel:{SALES}")],
            status: Some(302),
        })];
    }
    let Some(entry) = kv_get(&format!("conference/pin/{pin}")) else {
        warn("wrong conference PIN");
        return vec![Action::Reject(status(403, "Wrong PIN"))];
    };
    let entry = entry.trim();
    let (room, role) = entry.split_once(' ').unwrap_or((entry, "member"));
    vec![
        Action::Answer,
        Action::SetVariable(Variable {
            name: "conference-room".into(),
            value: room.into(),
        }),
        // The # tone, as a beep before joining.
        play(Audio::Tones("#".into()), None),
        Action::Conference(Conference {
            room: room.into(),
            muted: Some(role == "listener"),
            end_on_exit: Some(role == "host"),
        }),
    ]
}

fn support(call: &mut Call) -> Vec<Action> {
    call.on_hold = true;
    let patience = kv_get("support/patience-ms")
        .and_then(|ms| ms.trim().parse::<u32>().ok())
        .map_or(30_000, |ms| ms.clamp(1_000, 3_600_000));
    vec![
        Action::Answer,
        Action::SetTimer(Timer {
            name: "patience".into(),
            ms: patience,
        }),
        play(
            Audio::Say("Please hold, or press star for our assistant.".into()),
            None,
        ),
        // Music never ends by itself: it plays until the answer to the timer or to the star
        // replaces it.
        Action::Play(Play {
            audio: Audio::Music(None),
            repeat: Some(0),
            barge_in: None,
            tag: Some("hold".into()),
        }),
    ]
}

fn assistant() -> Action {
    Action::ConnectAgent(Agent {
        name: "support-assistant".into(),
        // The text of a JSON object for the agent's start message, as the tenant configured
        // it. The switch checks it: anything but a JSON object fails the action (`invalid`).
        parameters: Some(
            kv_get("support/assistant-parameters")
                .unwrap_or_else(|| r#"{"queue":"support","language":"en"}"#.into()),
        ),
    })
}

/// The answer to `action-failed`. The failed action was not carried out, and the actions after
/// it in its answer were dropped; what was already running goes on.
fn recover(failure: ActionFailure) -> Vec<Action> {
    let spoken = match &failure.reason {
        FailureReason::MissingPrompt(name) => words(name),
        _ => None,
    };
    match (spoken, failure.action) {
        // A recorded prompt missing from the tenant's store: speak its words instead.
        (Some(words), Action::Play(failed)) => {
            count("prompt_fallbacks");
            let audio = Audio::Say(words.into());
            vec![Action::Play(Play { audio, ..failed })]
        }
        // A seller's key pressed at the wrong moment, a leg that ended meanwhile, a forwarding
        // we cannot follow: the call goes on as it was.
        (
            _,
            Action::Hold(_)
            | Action::Unhold(_)
            | Action::StartRecording(_)
            | Action::StopRecording(_)
            | Action::HangupLeg(_)
            | Action::FollowRedirect(_),
        ) => vec![],
        _ => vec![Action::Hangup(Some(status(500, "Server Internal Error")))],
    }
}

/// The words of the recorded prompts used here, to speak when one is missing.
fn words(name: &str) -> Option<&'static str> {
    match name {
        "sales-voicemail" => Some("Nobody in sales is free. Please leave a message."),
        "voicemail-saved" => Some("Thank you, we will call you back. Goodbye."),
        "conference-welcome" => Some("Welcome to the conference line."),
        _ => None,
    }
}

fn kind(event: &CallEvent) -> &'static str {
    match event {
        CallEvent::Incoming(_) => "incoming",
        CallEvent::HandedOver(_) => "handed-over",
        CallEvent::LegRinging(_) => "leg-ringing",
        CallEvent::LegEarlyMedia(_) => "leg-early-media",
        CallEvent::LegAnswered(_) => "leg-answered",
        CallEvent::LegRedirected(_) => "leg-redirected",
        CallEvent::LegEnded(_) => "leg-ended",
        CallEvent::DialCompleted(_) => "dial-completed",
        CallEvent::Dtmf(_) => "dtmf",
        CallEvent::PlaybackFinished(_) => "playback-finished",
        CallEvent::GatherCompleted(_) => "gather-completed",
        CallEvent::RecordingCompleted(_) => "recording-completed",
        CallEvent::TransferRequested(_) => "transfer-requested",
        CallEvent::TransferCompleted(_) => "transfer-completed",
        CallEvent::ConferenceChanged(_) => "conference-changed",
        CallEvent::AgentEnded(_) => "agent-ended",
        CallEvent::Timer(_) => "timer",
        CallEvent::ActionFailed(_) => "action-failed",
        CallEvent::Hangup(_) => "hangup",
    }
}

impl message_policy::Guest for Tour {
    fn on_message(msg: Message) -> SmsDecision {
        let (from, to) = (e164(&msg.from), e164(&msg.to));
        if kv_get(&format!("sms/blocked/{from}")).is_some() {
            count("sms_blocked");
            return SmsDecision::Reject(status(403, "Sender Blocked"));
        }
        if kv_get(&format!("sms/optout/{to}")).is_some() {
            return SmsDecision::Reject(status(403, "Recipient Opted Out"));
        }
        if msg.body.trim().eq_ignore_ascii_case("STOP") {
            if let Err(e) = kv::set(&format!("sms/optout/{from}"), b"1") {
                // An opt-out not kept is worse than a message refused: the sender may retry.
                warn(&format!("opt-out of {from} not kept: {e:?}"));
                return SmsDecision::Reject(status(503, "Service Unavailable"));
            }
            count("sms_opt_outs");
            return SmsDecision::Reply("You are unsubscribed.".into());
        }
        if from != msg.from || to != msg.to {
            return SmsDecision::Rewrite(Rewrite {
                from: (from != msg.from).then_some(from),
                to: (to != msg.to).then_some(to),
                body: None,
            });
        }
        SmsDecision::Deliver
    }

    fn on_delivery(report: DeliveryReport) {
        let (outcome, code) = match report.status {
            DeliveryStatus::Delivered(code) => ("delivered", code),
            DeliveryStatus::Failed(status) => ("failed", status.code),
        };
        let what = if report.reply { "reply" } else { "message" };
        info(&format!(
            "{what} {} to {}: {outcome} {code}",
            report.id, report.to
        ));
        count(&format!("sms_{outcome}"));
    }
}

/// North American numbers in E.164: "(800) 555-0100", "1-800-555-0100" and "+1 800 555 0100"
/// all become "+18005550100". Anything else (a short code, a name) is left alone.
fn e164(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    match (number.trim_start().starts_with('+'), digits.len()) {
        (true, 8..) => format!("+{digits}"),
        (false, 10) => format!("+1{digits}"),
        (false, 11) if digits.starts_with('1') => format!("+{digits}"),
        _ => number.to_string(),
    }
}

/// The call's id, as part of a recording name: SIP Call-IDs may hold `@`, `..` and more, which
/// recording names may not.
fn name_part(call: &Call) -> String {
    let id = call.info.as_ref().map_or("call", |i| i.call_id.as_str());
    let safe = |c: char| if c.is_ascii_alphanumeric() { c } else { '-' };
    id.chars().take(64).map(safe).collect()
}

/// Whether a Refer-To URI names a party of this tenant: `sip:<user>@pbx.example.com`.
fn in_tenant(uri: &str) -> bool {
    let user_host = uri.strip_prefix("sip:").and_then(|u| u.split_once('@'));
    user_host.is_some_and(|(_, host)| host.split([';', '?', ':']).next() == Some(DOMAIN))
}

fn kv_get(key: &str) -> Option<String> {
    let value = kv::get(key).ok().flatten()?;
    String::from_utf8(value).ok()
}

fn info(message: &str) {
    log(Level::Info, message);
}

fn warn(message: &str) {
    log(Level::Warn, message);
}

fn count(name: &str) {
    metrics::counter_add(name, 1);
}

fn play(audio: Audio, tag: Option<&str>) -> Action {
    Action::Play(Play {
        audio,
        repeat: None,
        barge_in: None,
        tag: tag.map(Into::into),
    })
}

fn prompt(name: &str) -> Audio {
    Audio::Prompt(name.into())
}

fn target(target: &str, trunk: Option<&str>) -> DialTarget {
    DialTarget {
        target: target.into(),
        trunk: trunk.map(Into::into),
        headers: Vec::new(),
        timeout_ms: None,
    }
}

fn status(code: u16, reason: &str) -> SipStatus {
    SipStatus {
        code,
        reason: Some(reason.into()),
    }
}

export!(Tour);
