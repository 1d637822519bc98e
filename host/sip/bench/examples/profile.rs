//! Parses, reads and prints one message N times with one contestant, for counting
//! instructions (deterministic, unlike wall time on a shared machine):
//!
//!   cargo build --release -p wasmswitch-sip-bench --example profile
//!   valgrind --tool=callgrind target/release/examples/profile ours invite 20000
//!
//! Run it for two values of N; the difference divided by the difference in N is the count per
//! message, without start-up. Contestants: ours, rsip, rsipstack; messages: invite, ok,
//! register. `ours-stream` is `ours` with the message first cut out of a TCP byte stream by
//! the framer, as a TCP or TLS connection receives it (not a contestant: the peers have no
//! framer here); the difference from `ours` is what the framer's own scan of the head costs.
use std::hint::black_box;
use wasmswitch_sip::Message;
use wasmswitch_sip::framing::{DEFAULT_MAX_MESSAGE, Frame, Role, StreamFramer};
use wasmswitch_sip_bench::{data, ours, rsip_peer, rsipstack_peer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(who), Some(which), Some(n)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: profile ours|ours-stream|rsip|rsipstack invite|ok|register N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let bytes = data::ALL
        .iter()
        .find(|(name, _)| name == which)
        .map(|(_, b)| *b)
        .expect("invite, ok or register");
    for _ in 0..n {
        match who.as_str() {
            "ours" => {
                let m = ours::parse(black_box(bytes));
                black_box((ours::read(&m), ours::print(&m)));
            }
            "ours-stream" => {
                let mut framer = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
                framer.push(black_box(bytes));
                let Ok(Some(Frame::Message(frame))) = framer.next_frame() else {
                    panic!("the framer cuts out the whole message");
                };
                let m = Message::parse_bytes(frame).expect("wasmswitch-sip: parse");
                black_box((ours::read(&m), ours::print(&m)));
            }
            "rsip" => {
                let m = rsip_peer::parse(black_box(bytes));
                black_box((rsip_peer::read(&m), rsip_peer::print(&m)));
            }
            "rsipstack" => {
                let m = rsipstack_peer::parse(black_box(bytes));
                black_box((rsipstack_peer::read(&m), rsipstack_peer::print(&m)));
            }
            other => panic!("unknown contestant {other}"),
        }
    }
}
