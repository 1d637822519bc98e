//! One datagram through parsing and screening, as the UDP transport does it. Beyond "never
//! panics": a message that parses prints to bytes that parse back to the same message; a
//! stateless reply to a well-formed request parses; a reply to a malformed one starts with
//! the status line that names the fault (its copied headers may be as broken as the request's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmswitch_sip::Message;
use wasmswitch_sip::screen::{self, Inbound, Policy};

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(message) => {
            let printed = message.to_vec();
            let again = Message::parse(&printed).unwrap_or_else(|e| {
                panic!(
                    "printed message does not parse ({e}): {:?}",
                    String::from_utf8_lossy(&printed)
                )
            });
            assert_eq!(again, message, "round trip changed the message");
            if let Message::Request(request) = message
                && let Inbound::Reply(reply) = screen::request(request, &Policy::default())
            {
                let printed = reply.to_vec();
                if let Err(e) = Message::parse(&printed) {
                    panic!(
                        "our reply does not parse ({e}): {:?}",
                        String::from_utf8_lossy(&printed)
                    );
                }
            }
        }
        Err(malformed) => {
            if let Some(reply) = malformed.reply() {
                let status = format!(
                    "SIP/2.0 {} {}\r\n",
                    malformed.error.status(),
                    malformed.error
                );
                assert!(reply.to_vec().starts_with(status.as_bytes()));
            }
        }
    }
});
