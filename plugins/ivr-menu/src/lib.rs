//! A classic IVR menu: greet, ask for one digit, branch; re-prompt on a wrong or missing digit and
//! hang up politely on the third. The same flow is written in Python (`ivr-menu-py`) and
//! JavaScript (`ivr-menu-js`); all three pass `plugins/scenarios/ivr-menu.yaml`.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p ivr-menu`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/ivr_menu.wasm plugins/scenarios/ivr-menu.yaml`
//!
//! A router hands calls over to it (`handed-over`), or the tenant routes calls straight to it
//! (`incoming`). 1 dials sales (`ivr/sales` in kv) and comes back to the menu if nobody takes
//! the call, 2 transfers to support (`ivr/support`), 3 records a voicemail.

use std::cell::RefCell;

use wasmswitch_plugin::*;

struct Plugin;

/// The tag of the dial to sales, to know its `dial-completed`.
const SALES: &str = "sales";

#[derive(Default)]
struct Call {
    id: String,
    misses: u32,
    /// The voicemail being recorded: its `recording-completed` ends the call.
    voicemail: Option<String>,
}

thread_local! {
    // One instance runs per call, so this is the call's state.
    static CALL: RefCell<Call> = RefCell::default();
}

fn menu() -> Action {
    // No terminator: with one digit wanted, every key is a choice (# is a wrong one).
    Action::Gather(Gather::digits(1).prompt("main-menu").terminators(""))
}

fn play(prompt: &str) -> Action {
    Action::play(Audio::prompt(prompt))
}

fn kv_target(key: &str, default: &str) -> String {
    kv::get_string(key)
        .ok()
        .flatten()
        .unwrap_or_else(|| default.into())
}

fn start(call_id: String, answered: bool) -> Vec<Action> {
    log::info(&format!("ivr-menu started for call {call_id}"));
    metrics::incr("ivr_started");
    CALL.set(Call {
        id: call_id,
        ..Call::default()
    });
    let mut actions = Vec::new();
    if !answered {
        actions.push(Action::Answer);
    }
    actions.extend([play("welcome"), menu()]);
    actions
}

fn miss(prompt: &str) -> Vec<Action> {
    let misses = CALL.with_borrow_mut(|c| {
        c.misses += 1;
        c.misses
    });
    if misses >= 3 {
        vec![play("goodbye"), Action::hangup()]
    } else {
        vec![play(prompt), menu()]
    }
}

fn choose(digits: &str) -> Vec<Action> {
    match digits {
        "1" => vec![
            Action::SetVariable(Variable::new("menu-choice", "sales")),
            Action::Dial(Dial::to([kv_target("ivr/sales", "sip:sales@example.com")]).tag(SALES)),
        ],
        "2" => vec![
            Action::SetVariable(Variable::new("menu-choice", "support")),
            Action::Transfer(Transfer::blind(kv_target(
                "ivr/support",
                "sip:support@example.com",
            ))),
        ],
        "3" => {
            let name = CALL.with_borrow_mut(|c| {
                let name = voicemail_name(&c.id);
                c.voicemail = Some(name.clone());
                name
            });
            vec![
                Action::SetVariable(Variable::new("menu-choice", "voicemail")),
                play("voicemail-intro"),
                // Up to 2 minutes, ended by #, after a beep: the contract's defaults.
                Action::Record(Recording {
                    name,
                    max_duration_ms: None,
                    terminators: None,
                    beep: None,
                }),
            ]
        }
        _ => miss("invalid-option"),
    }
}

/// `voicemail-<Call-ID>`, made a valid recording name: a SIP Call-ID may hold `@`, `..` and
/// more, so every character but an ASCII letter or digit becomes `-`, and it is cut to fit the
/// 128 bytes a name may have.
fn voicemail_name(call_id: &str) -> String {
    let safe = |c: char| if c.is_ascii_alphanumeric() { c } else { '-' };
    let id: String = call_id.chars().take(118).map(safe).collect();
    format!("voicemail-{id}")
}

fn is_voicemail(recording: &str) -> bool {
    CALL.with_borrow(|c| c.voicemail.as_deref() == Some(recording))
}

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            CallEvent::Incoming(call) => start(call.call_id, false),
            CallEvent::HandedOver(h) => start(h.call.call_id, h.state == AnswerState::Answered),
            // No digit before the timeout.
            CallEvent::GatherCompleted(g) if g.digits.is_empty() => miss("no-input"),
            CallEvent::GatherCompleted(g) => choose(&g.digits),
            CallEvent::DialCompleted(d) if d.tag.as_deref() == Some(SALES) => match d.outcome {
                // Sales took the call, and the conversation is over.
                DialOutcome::Answered => vec![Action::hangup()],
                DialOutcome::Busy | DialOutcome::NoAnswer | DialOutcome::Failed => {
                    vec![play("sales-unavailable"), menu()]
                }
            },
            // Only the voicemail's end: a recording the router started may end meanwhile.
            CallEvent::RecordingCompleted(r) if is_voicemail(&r.name) => {
                vec![play("voicemail-saved"), Action::hangup()]
            }
            // The end of each prompt, the legs of the dial, stray digits, the hangup: the
            // actions waiting go on by themselves.
            _ => Vec::new(),
        }
    }
}

export_call_handler!(Plugin);
