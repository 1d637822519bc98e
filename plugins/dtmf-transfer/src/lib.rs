//! In-call DTMF: the called party presses `*9`, an extension and `#` to blind-transfer the caller.
//! Routing itself is simple: extensions from `kv` (`ext/<number>` -> SIP URI), else the number
//! through the `default` trunk.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p dtmf-transfer`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/dtmf_transfer.wasm plugins/scenarios/dtmf-transfer.yaml`

use std::cell::RefCell;

use wasmswitch_plugin::*;

struct Plugin;

thread_local! {
    // Digits pressed by the called party since the last complete command.
    static TYPED: RefCell<String> = RefCell::default();
}

fn target_for(number: &str) -> DialTarget {
    match kv::get_string(&format!("ext/{number}")).ok().flatten() {
        Some(uri) => DialTarget::new(uri),
        None => DialTarget::new(number).via("default"),
    }
}

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            CallEvent::Incoming(call) => vec![Action::Dial(Dial::to([target_for(&call.to)]))],
            // Leg 0 is the caller: only the called party's keys (another leg) count.
            CallEvent::Dtmf(DtmfPress { leg: 1.., digit }) => pressed(digit),
            _ => Vec::new(),
        }
    }
}

/// A key the called party pressed; a complete `*9<ext>#` transfers the caller to `<ext>`.
fn pressed(digit: char) -> Vec<Action> {
    TYPED.with_borrow_mut(|typed| {
        typed.push(digit);
        // Keep only what can still become a command: "*", "*9", "*9<digits>", "*9<digits>#".
        if !"*9".starts_with(typed.as_str()) && !typed.starts_with("*9") {
            typed.clear();
            if digit == '*' {
                typed.push('*');
            }
            return Vec::new();
        }
        let Some(ext) = typed
            .strip_prefix("*9")
            .and_then(|rest| rest.strip_suffix('#'))
        else {
            return Vec::new();
        };
        let ext = ext.to_string();
        typed.clear();
        if ext.is_empty() {
            return Vec::new();
        }
        log::info(&format!("transfer to {ext} requested by DTMF"));
        metrics::incr("dtmf_transfer");
        vec![Action::Transfer(Transfer::blind(target_for(&ext)))]
    })
}

export_call_handler!(Plugin);
