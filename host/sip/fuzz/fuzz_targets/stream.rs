//! A TCP/TLS byte stream cut into reads of fuzzer-chosen sizes. However the bytes are split,
//! the framer yields the same frames as when they arrive at once, and never more bytes than
//! it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmswitch_sip::framing::{Frame, FrameError, Role, StreamFramer};

fn drain(f: &mut StreamFramer, out: &mut Vec<Result<Frame, FrameError>>) {
    loop {
        match f.next_frame() {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return,
            Err(e) => {
                out.push(Err(e));
                return;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the role and the read sizes; the rest is the stream.
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let role = if seed & 1 == 0 {
        Role::Accepted
    } else {
        Role::Opened
    };
    let max = 4096;
    let mut whole = StreamFramer::new(role, max);
    whole.push(stream);
    let mut expected = Vec::new();
    drain(&mut whole, &mut expected);

    let mut split = StreamFramer::new(role, max);
    let mut got = Vec::new();
    let chunk = usize::from(seed >> 1).max(1);
    for piece in stream.chunks(chunk) {
        split.push(piece);
        drain(&mut split, &mut got);
        if matches!(got.last(), Some(Err(_))) {
            break;
        }
    }
    let framed: usize = expected
        .iter()
        .map(|f| match f {
            Ok(Frame::Message(m)) => m.len(),
            Ok(Frame::Ping) => 4,
            Ok(Frame::Pong) => 2,
            Ok(Frame::Skipped(n)) => *n,
            Err(_) => 0,
        })
        .sum();
    assert!(framed <= stream.len());
    // Messages must agree whatever the read sizes (skips may be counted in other pieces
    // when a line is cut short by the size cap).
    let messages = |v: &[Result<Frame, FrameError>]| -> Vec<Vec<u8>> {
        v.iter()
            .filter_map(|f| match f {
                Ok(Frame::Message(m)) => Some(m.to_vec()),
                _ => None,
            })
            .collect()
    };
    if !expected
        .iter()
        .any(|f| matches!(f, Ok(Frame::Skipped(_)) | Err(_)))
    {
        assert_eq!(messages(&got), messages(&expected));
    }
    for m in messages(&expected) {
        let _ = wasmswitch_sip::Message::parse(&m);
    }
});
