//! A classic IVR menu: greet, ask for one digit, branch; re-prompt on a wrong or missing digit and
//! hang up politely on the third. The same flow is written in Python (`ivr-menu-py`) and
//! JavaScript (`ivr-menu-js`); all three pass `plugins/scenarios/ivr-menu.yaml`.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p ivr-menu`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/release/ivr_menu.wasm plugins/scenarios/ivr-menu.yaml`

use std::cell::RefCell;

use wasmswitch_plugin::*;

struct Plugin;

#[derive(Default)]
struct Call {
    id: Option<String>,
    misses: u32,
}

thread_local! {
    // One instance runs per call, so this is the call's state.
    static CALL: RefCell<Call> = RefCell::default();
}

fn menu() -> IvrAction {
    IvrAction::Gather(Gather::digits(1).prompt("main-menu"))
}

fn kv_target(key: &str, default: &str) -> String {
    kv::get_string(key)
        .ok()
        .flatten()
        .unwrap_or_else(|| default.into())
}

fn miss(prompt: &str) -> Vec<IvrAction> {
    let misses = CALL.with_borrow_mut(|c| {
        c.misses += 1;
        c.misses
    });
    if misses >= 3 {
        vec![IvrAction::play("goodbye"), IvrAction::hangup()]
    } else {
        vec![IvrAction::play(prompt), menu()]
    }
}

fn choose(digits: &str) -> Vec<IvrAction> {
    match digits {
        "1" => vec![
            IvrAction::set_variable("menu-choice", "sales"),
            IvrAction::dial(Forward::to([kv_target(
                "ivr/sales",
                "sip:sales@example.com",
            )])),
        ],
        "2" => vec![
            IvrAction::set_variable("menu-choice", "support"),
            IvrAction::transfer(kv_target("ivr/support", "sip:support@example.com")),
        ],
        "3" => {
            let id = CALL
                .with_borrow(|c| c.id.clone())
                .unwrap_or_else(|| "unknown".into());
            vec![
                IvrAction::set_variable("menu-choice", "voicemail"),
                IvrAction::play("voicemail-intro"),
                IvrAction::record(format!("voicemail-{id}"), 120_000),
            ]
        }
        _ => miss("invalid-option"),
    }
}

impl Ivr for Plugin {
    fn on_event(event: IvrEvent) -> Vec<IvrAction> {
        match event {
            IvrEvent::Started(s) => {
                log::info(&format!("ivr-menu started for call {}", s.call.call_id));
                metrics::incr("ivr_started");
                CALL.set(Call {
                    id: Some(s.call.call_id),
                    misses: 0,
                });
                vec![IvrAction::play("welcome"), menu()]
            }
            IvrEvent::DigitsCollected(d) => choose(&d.digits),
            IvrEvent::Timeout => miss("no-input"),
            IvrEvent::DialCompleted(DialOutcome::Completed) => vec![IvrAction::hangup()],
            IvrEvent::DialCompleted(_) => vec![IvrAction::play("sales-unavailable"), menu()],
            IvrEvent::RecordingCompleted(_) => {
                vec![IvrAction::play("voicemail-saved"), IvrAction::hangup()]
            }
            IvrEvent::Dtmf(_) | IvrEvent::PlaybackFinished | IvrEvent::Hangup => Vec::new(),
        }
    }
}

export_ivr!(Plugin);
