//! The SIP message benchmark's three contestants: wasmswitch-sip (`ours`), rsip 0.4 and
//! rsipstack 0.7, each reading the same bytes into the same [`Summary`].
//!
//! For each of them this crate has:
//! * `*_parse(&[u8]) -> SipMessage`: bytes to message, nothing else;
//! * `*_read(&SipMessage) -> Summary`: the typed values a SIP transaction layer needs;
//! * `*_parse_and_read(&[u8]) -> Summary`: the two together (what `parse/*` measures);
//! * `*_print(&SipMessage) -> Vec<u8>`: message back to wire bytes.
//!
//! The functions panic on malformed input: the benchmark data is known-good, and
//! `tests/roundtrip.rs` proves every peer parses, reads and re-parses every file.

/// The three wire messages, embedded at compile time.
pub mod data {
    pub const INVITE: &[u8] = include_bytes!("../data/invite.sip");
    pub const OK: &[u8] = include_bytes!("../data/ok.sip");
    pub const REGISTER: &[u8] = include_bytes!("../data/register.sip");
    /// (name, bytes) in benchmark order.
    pub const ALL: [(&str, &[u8]); 3] = [("invite", INVITE), ("ok", OK), ("register", REGISTER)];
}

/// Owned copies of what the transaction layer reads, so the optimiser can't drop the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `branch` param of the top Via.
    pub branch: String,
    pub from_tag: String,
    /// To URI, as the peer prints it (both peers: `Display` of their `Uri`).
    pub to_uri: String,
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// CSeq method, as the peer prints it.
    pub method: String,
    pub content_length: u32,
}

pub mod rsip_peer {
    use super::Summary;
    use rsip::prelude::*; // HeadersExt, ToTypedHeader, UntypedHeader

    pub fn parse(bytes: &[u8]) -> rsip::SipMessage {
        rsip::SipMessage::try_from(bytes).expect("rsip: parse")
    }

    pub fn read(msg: &rsip::SipMessage) -> Summary {
        // via_header() = first Via header *line*; rsip has no "first value of a
        // comma-joined Via" helper (our files use one Via per line).
        let via = msg
            .via_header()
            .expect("rsip: Via")
            .typed()
            .expect("rsip: typed Via");
        let branch = via.branch().expect("rsip: Via branch").to_string();
        // From::tag() parses the whole From header into typed::From.
        let from_tag = msg
            .from_header()
            .expect("rsip: From")
            .tag()
            .expect("rsip: typed From")
            .expect("rsip: From tag")
            .to_string();
        let to = msg
            .to_header()
            .expect("rsip: To")
            .typed()
            .expect("rsip: typed To");
        let to_tag = to.tag().map(|t| t.to_string());
        let to_uri = to.uri.to_string();
        let call_id = msg
            .call_id_header()
            .expect("rsip: Call-ID")
            .value()
            .to_owned();
        // One typed parse gives both fields (CSeq::seq()/method() would parse twice).
        let cseq = msg
            .cseq_header()
            .expect("rsip: CSeq")
            .typed()
            .expect("rsip: typed CSeq");
        // HeadersExt has no content_length_header(): find it with rsip's own macro.
        let content_length = rsip::header_opt!(msg.headers().iter(), rsip::Header::ContentLength)
            .expect("rsip: Content-Length")
            .length()
            .expect("rsip: Content-Length value");
        Summary {
            branch,
            from_tag,
            to_uri,
            to_tag,
            call_id,
            cseq: cseq.seq,
            method: cseq.method.to_string(),
            content_length,
        }
    }

    pub fn parse_and_read(bytes: &[u8]) -> Summary {
        read(&parse(bytes))
    }

    /// rsip has no `to_bytes`; `From<SipMessage> for Vec<u8>` consumes the message
    /// and is `to_string().into_bytes()` anyway.
    pub fn print(msg: &rsip::SipMessage) -> Vec<u8> {
        msg.to_string().into_bytes()
    }
}

pub mod rsipstack_peer {
    use super::Summary;
    use rsipstack::sip::prelude::*; // HeadersExt, HasHeaders, ToTypedHeader, UntypedHeader
    use rsipstack::sip::{Header, SipMessage};

    pub fn parse(bytes: &[u8]) -> SipMessage {
        SipMessage::try_from(bytes).expect("rsipstack: parse")
    }

    pub fn read(msg: &SipMessage) -> Summary {
        // top_via_header() = first value of the first Via line (splits a comma-joined
        // Via); it returns an owned untyped Via, then typed() parses it.
        let via = msg
            .top_via_header()
            .expect("rsipstack: Via")
            .typed()
            .expect("rsipstack: typed Via");
        let branch = via
            .branch()
            .expect("rsipstack: Via branch")
            .value()
            .to_owned();
        let from_tag = msg
            .from_header()
            .expect("rsipstack: From")
            .tag()
            .expect("rsipstack: typed From")
            .expect("rsipstack: From tag")
            .value()
            .to_owned();
        let to = msg
            .to_header()
            .expect("rsipstack: To")
            .typed()
            .expect("rsipstack: typed To");
        let to_tag = to.tag().map(|t| t.value().to_owned());
        let to_uri = to.uri.to_string();
        let call_id = msg
            .call_id_header()
            .expect("rsipstack: Call-ID")
            .value()
            .to_owned();
        let cseq = msg
            .cseq_header()
            .expect("rsipstack: CSeq")
            .typed()
            .expect("rsipstack: typed CSeq");
        // No content_length_header() and no typed/numeric accessor on ContentLength:
        // find it with the crate's exported macro and parse the string.
        let content_length =
            rsipstack::sip_header_opt!(msg.headers().iter(), Header::ContentLength)
                .expect("rsipstack: Content-Length")
                .value()
                .trim()
                .parse()
                .expect("rsipstack: Content-Length value");
        Summary {
            branch,
            from_tag,
            to_uri,
            to_tag,
            call_id,
            cseq: cseq.seq,
            method: cseq.method.to_string(),
            content_length,
        }
    }

    pub fn parse_and_read(bytes: &[u8]) -> Summary {
        read(&parse(bytes))
    }

    /// `to_bytes()` writes the body verbatim (Display would go through from_utf8_lossy).
    pub fn print(msg: &SipMessage) -> Vec<u8> {
        msg.to_bytes()
    }
}

pub mod ours {
    use super::Summary;
    use wasmswitch_sip::Message;

    pub fn parse(bytes: &[u8]) -> Message {
        Message::parse(bytes).expect("wasmswitch-sip: parse")
    }

    pub fn read(msg: &Message) -> Summary {
        // The core headers were parsed (and checked) when the message was read.
        let (via, from, to, call_id, cseq, body) = match msg {
            Message::Request(r) => (r.via(), r.from(), r.to(), r.call_id(), r.cseq(), r.body()),
            Message::Response(r) => {
                let core = r.core().expect("a received response has its core");
                (
                    core.via(),
                    core.from(),
                    core.to(),
                    core.call_id(),
                    core.cseq(),
                    &r.body,
                )
            }
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Summary {
            branch: text(via.branch().expect("wasmswitch-sip: Via branch")),
            from_tag: text(from.tag().expect("wasmswitch-sip: From tag")),
            to_uri: to.uri.to_string(),
            to_tag: to.tag().map(text),
            call_id: text(call_id),
            cseq: cseq.seq,
            method: cseq.method.to_string(),
            // Content-Length is the body's length: the parser framed the body by it.
            content_length: u32::try_from(body.len()).expect("small body"),
        }
    }

    pub fn parse_and_read(bytes: &[u8]) -> Summary {
        read(&parse(bytes))
    }

    pub fn print(msg: &Message) -> Vec<u8> {
        msg.to_vec()
    }
}
