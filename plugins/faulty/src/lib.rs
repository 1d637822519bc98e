//! A deliberately misbehaving router, for the runtime's containment tests (not an example to
//! copy). The called number picks the fault: `loop` spins forever, `oom` allocates without
//! bound, `trap` panics, `bad` returns SIP status 200 as a rejection; anything else is rejected
//! with 486. During a call, DTMF `1` spins forever.

use wasmswitch_plugin::*;

struct Plugin;

impl Router for Plugin {
    fn route(call: CallInfo) -> RouteDecision {
        match call.to.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("the faulty plugin panics on purpose"),
            "bad" => RouteDecision::Reject(SipStatus {
                code: 200,
                reason: None,
            }),
            _ => RouteDecision::reject(486, "Busy Here"),
        }
    }

    fn on_call_event(event: CallEvent) -> Vec<CallAction> {
        if let CallEvent::Dtmf(DtmfPress { digit: '1', .. }) = event {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Vec::new()
    }
}

export_router!(Plugin);
