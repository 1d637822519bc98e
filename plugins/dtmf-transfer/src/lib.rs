//! In-call DTMF: the called party presses `*9`, an extension and `#` to blind-transfer the caller.
//! Routing itself is simple: extensions from `kv` (`ext/<number>` -> SIP URI), else the number
//! through the `default` trunk.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p dtmf-transfer`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/release/dtmf_transfer.wasm plugins/scenarios/dtmf-transfer.yaml`

use std::cell::RefCell;

use wasmswitch_plugin::*;

struct Plugin;

thread_local! {
    // Digits pressed by the called party since the last complete command.
    static TYPED: RefCell<String> = RefCell::default();
}

fn target_for(number: &str) -> Forward {
    match kv::get_string(&format!("ext/{number}")).ok().flatten() {
        Some(uri) => Forward::to([uri]),
        None => Forward::to([number.to_string()]).via("default"),
    }
}

impl Router for Plugin {
    fn route(call: CallInfo) -> RouteDecision {
        RouteDecision::forward(target_for(&call.to))
    }

    fn on_call_event(event: CallEvent) -> Vec<CallAction> {
        let CallEvent::Dtmf(DtmfPress {
            digit,
            caller: false,
        }) = event
        else {
            return Vec::new();
        };
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
            let target = target_for(&ext);
            log::info(&format!("transfer to {ext} requested by DTMF"));
            metrics::incr("dtmf_transfer");
            vec![CallAction::Transfer(Transfer {
                target: target.targets[0].clone(),
                trunk: target.trunk,
            })]
        })
    }
}

export_router!(Plugin);
