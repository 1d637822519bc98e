//! A deliberately misbehaving call handler, for the runtime's containment tests (not an example
//! to copy). On `incoming`, the called number picks the fault (or, for a real number, the `kv`
//! value `fault/<number>`, so end-to-end tests can dial DIDs): `loop` spins forever, `oom`
//! allocates without bound, `trap` panics, `bad` rejects with SIP status 200 (invalid); `state`
//! reports what an earlier call could have left behind (see [`leftovers`]); anything else is
//! rejected with 486. A call handed over to it with the variable `fault` set gets the fault that
//! value names, as if it were the called number. During a call, DTMF `1` (from any leg) spins
//! forever.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p faulty`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/faulty.wasm plugins/scenarios/faulty.yaml`

use wasmswitch_plugin::*;

struct Plugin;

impl CallHandler for Plugin {
    fn on_event(event: CallEvent) -> Vec<Action> {
        match event {
            CallEvent::Incoming(call) => {
                let fault = kv::get_string(&format!("fault/{}", call.to))
                    .ok()
                    .flatten()
                    .unwrap_or(call.to);
                vec![incoming(&fault)]
            }
            CallEvent::HandedOver(h) => match h.variables.iter().find(|v| v.name == "fault") {
                Some(fault) => vec![incoming(&fault.value)],
                None => Vec::new(),
            },
            CallEvent::Dtmf(DtmfPress { digit: '1', .. }) => spin(),
            _ => Vec::new(),
        }
    }
}

fn incoming(to: &str) -> Action {
    match to {
        "loop" => spin(),
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("the faulty plugin panics on purpose"),
        "state" => Action::reject(486, leftovers()),
        // A rejection must be 400 to 699: this answer to the first event is invalid.
        "bad" => Action::Reject(SipStatus {
            code: 200,
            reason: None,
        }),
        _ => Action::reject(486, "Busy Here"),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Counts the calls this instance has seen (a static: its data segment) and grows linear memory
/// by 4 MiB, counting the bytes there that are not zero, then fills them with 0xAA. Returns
/// `calls=N stale=M`. A fresh instance must answer `calls=1 stale=0` whatever the instances
/// before it in the same memory slot did; a second call on the same instance `calls=2`.
fn leftovers() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    const PAGES: usize = 64;
    const PAGE: usize = 64 << 10;
    let stale = match memory_grow(PAGES) {
        None => usize::MAX,
        Some(first) => {
            let base = (first * PAGE) as *mut u8;
            let mut stale = 0;
            for i in 0..PAGES * PAGE {
                // SAFETY: the pages just grown belong to no Rust allocation; the allocator only
                // knows memory it grew itself.
                unsafe {
                    let p = base.add(i);
                    if std::ptr::read_volatile(p) != 0 {
                        stale += 1;
                    }
                    std::ptr::write_volatile(p, 0xAA);
                }
            }
            stale
        }
    };
    format!("calls={calls} stale={stale}")
}

#[cfg(target_arch = "wasm32")]
fn memory_grow(pages: usize) -> Option<usize> {
    let first = core::arch::wasm32::memory_grow(0, pages);
    (first != usize::MAX).then_some(first)
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_grow(_pages: usize) -> Option<usize> {
    None
}

export_call_handler!(Plugin);
