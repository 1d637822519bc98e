//! What the switch does with a message before any transaction sees it: parse it, drop what
//! must not be answered, and answer statelessly what RFC 3261 section 8.2 rejects (unknown
//! method, unsupported URI scheme, unknown required extension, body type or Accept it cannot
//! serve). Everything that passes goes on to the transaction layer.
//!
//! Stateless rejections carry a To tag derived from the request (Call-ID and branch, see
//! [`crate::message::stateless_tag`]), so a retransmitted request gets the same response byte
//! for byte.

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{Malformed, Message, ParseError, Request, Response};
use crate::typed::{MediaType, Method, tokens};

/// What the receiving element supports.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Methods accepted; a known method not listed is answered 405, an unknown one 501, both
    /// with `Allow` listing these.
    pub allow: Vec<Method>,
    /// Option tags this element supports; a request that `Require`s any other is answered 420.
    /// By default `100rel` (reliable provisionals, [`crate::invite`]) and `timer` (session
    /// timers, [`crate::session_timer`]): a tag listed here is a promise to the peer, kept by
    /// those cores.
    pub supported: Vec<String>,
    /// Request-URI schemes accepted (compared case-insensitively); any other is answered 416.
    /// `tel` is accepted because IMS carriers send `INVITE tel:+1...`.
    pub schemes: Vec<String>,
    /// User-Agent substrings (compared case-insensitively) of scanners, whose messages are
    /// dropped without an answer: answering tells them a switch is here.
    pub silent_user_agents: Vec<String>,
}

impl Policy {
    /// The `Allow` value: the allowed methods, in order.
    pub fn allow_header(&self) -> String {
        self.allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Info,
                Method::Message,
                Method::Update,
                Method::Refer,
                Method::Notify,
                Method::Prack,
            ],
            supported: ["100rel", "timer"].map(String::from).to_vec(),
            schemes: ["sip", "sips", "tel"].map(String::from).to_vec(),
            silent_user_agents: [
                "friendly-scanner",
                "sipvicious",
                "sipcli",
                "sip-scan",
                "sipsak",
                "iwar",
                "sundayddr",
                "pplsip",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// The outcome of screening one message.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Inbound {
    /// A request for the transaction layer.
    Request(Request),
    /// A response for the transaction layer.
    Response(Response),
    /// Answer the sender with this response; the request goes no further.
    Reply(Response),
    /// Drop silently.
    Drop(Dropped),
}

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// Unparseable, and no answer can be built (a response, an ACK, no readable Via).
    Malformed(ParseError),
    /// A scanner's User-Agent.
    Scanner,
    /// A response with more than one Via: it was not meant for this element (RFC 3261
    /// section 8.1.3.3).
    ExtraVia,
    /// An ACK that fails a check: ACKs are never answered.
    BadAck,
}

/// Parses and screens one datagram (or one message a stream framer cut out).
pub fn message(input: Bytes, policy: &Policy) -> Inbound {
    match Message::parse_bytes(input) {
        Ok(Message::Request(r)) => request(r, policy),
        Ok(Message::Response(r)) => response(r),
        Err(m) => malformed(m, policy),
    }
}

fn malformed(m: Malformed, policy: &Policy) -> Inbound {
    if is_scanner(m.user_agent(), policy) {
        return Inbound::Drop(Dropped::Scanner);
    }
    match m.reply() {
        Some(reply) => Inbound::Reply(reply),
        None => Inbound::Drop(Dropped::Malformed(m.error)),
    }
}

/// Screens a parsed request (RFC 3261 section 8.2, in its order).
pub fn request(req: Request, policy: &Policy) -> Inbound {
    if is_scanner(req.headers().get(&HeaderName::UserAgent), policy) {
        return Inbound::Drop(Dropped::Scanner);
    }
    match check(&req, policy) {
        None => Inbound::Request(req),
        Some(_) if req.method() == &Method::Ack => Inbound::Drop(Dropped::BadAck),
        Some(reply) => Inbound::Reply(reply),
    }
}

/// Screens a parsed response.
pub fn response(resp: Response) -> Inbound {
    if resp.via_count() != 1 {
        return Inbound::Drop(Dropped::ExtraVia);
    }
    Inbound::Response(resp)
}

fn check(req: &Request, policy: &Policy) -> Option<Response> {
    let reply = |status, reason| {
        let tag = req.stateless_tag();
        req.reply(status, reason, Some(&tag))
    };
    // 8.2.1: methods.
    if !policy.allow.contains(req.method()) {
        let mut r = match req.method() {
            Method::Other(_) => reply(501, "Not Implemented"),
            _ => reply(405, "Method Not Allowed"),
        };
        r.headers_mut()
            .push(HeaderName::Allow, policy.allow_header());
        return Some(r);
    }
    // A branch that is only the magic cookie identifies nothing: RFC 4475 section 3.2.1
    // prefers a stateless 400 to RFC 2543 matching.
    if req.via().branch() == Some(b"z9hG4bK") {
        return Some(reply(400, "Via Branch Is Only The Magic Cookie"));
    }
    // 8.2.2.1: the Request-URI's scheme.
    let scheme = req.uri().scheme();
    if !policy
        .schemes
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(scheme))
    {
        return Some(reply(416, "Unsupported URI Scheme"));
    }
    // A registrar binds SIP addresses of record only (RFC 3261 section 10.3 step 3).
    if req.method() == &Method::Register && req.to().uri.as_sip().is_none() {
        return Some(reply(400, "To Must Be A SIP URI"));
    }
    // 8.2.2.3: extensions this element must understand (never for ACK and CANCEL).
    if !matches!(req.method(), Method::Ack | Method::Cancel) {
        let mut unknown = Vec::new();
        for line in req.headers().get_all(&HeaderName::Require) {
            let Ok(tags) = tokens(line) else {
                return Some(reply(400, "Malformed Require Header"));
            };
            for tag in tags {
                if !policy
                    .supported
                    .iter()
                    .any(|s| s.as_bytes().eq_ignore_ascii_case(&tag))
                {
                    unknown.push(String::from_utf8_lossy(&tag).into_owned());
                }
            }
        }
        if !unknown.is_empty() {
            let mut r = reply(420, "Bad Extension");
            r.headers_mut()
                .push(HeaderName::Unsupported, unknown.join(", "));
            return Some(r);
        }
    }
    // 8.2.3: a session description is the only body a dialog request may carry here; a
    // multipart/mixed one (SIP-T/SIP-I: SDP beside ISUP) is taken for its SDP part.
    if matches!(
        req.method(),
        Method::Invite | Method::Update | Method::Prack
    ) {
        if !req.body().is_empty() {
            let sdp = req
                .headers()
                .get(&HeaderName::ContentType)
                .and_then(|v| MediaType::parse(v.clone()).ok())
                .is_some_and(|m| {
                    m.matches("application", "sdp")
                        || (m.matches("multipart", "mixed") && has_sdp_part(req.body()))
                });
            if !sdp {
                let mut r = reply(415, "Unsupported Media Type");
                r.headers_mut().push(HeaderName::Accept, "application/sdp");
                return Some(r);
            }
        }
        // The answer will be SDP; a request whose Accept excludes it cannot be served.
        if req.method() == &Method::Invite && !accepts_sdp(req) {
            let mut r = reply(406, "Not Acceptable");
            r.headers_mut().push(
                HeaderName::Warning,
                "399 wasmswitch \"Accept does not include application/sdp\"",
            );
            return Some(r);
        }
    }
    None
}

fn accepts_sdp(req: &Request) -> bool {
    let mut lines = req.headers().get_all(&HeaderName::Accept).peekable();
    if lines.peek().is_none() {
        return true;
    }
    lines.any(|line| {
        crate::syntax::split_commas(line).any(|(a, b)| {
            MediaType::parse(line.slice(a..b)).is_ok_and(|m| m.matches("application", "sdp"))
        })
    })
}

/// Whether a multipart body has a part whose Content-Type is application/sdp.
fn has_sdp_part(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"content-type: application/sdp";
    body.windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

fn is_scanner(user_agent: Option<&Bytes>, policy: &Policy) -> bool {
    let Some(ua) = user_agent else { return false };
    policy.silent_user_agents.iter().any(|s| {
        !s.is_empty()
            && ua
                .windows(s.len())
                .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:sw.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
From: <sip:probe@lb.example.com>;tag=1\r\n\
To: <sip:sw.example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn screen(text: &str) -> Inbound {
        message(Bytes::copy_from_slice(text.as_bytes()), &Policy::default())
    }

    #[test]
    fn the_default_policy_takes_100rel_and_timer_and_prack() {
        let invite = OPTIONS
            .replace("OPTIONS sip", "INVITE sip")
            .replace("1 OPTIONS", "1 INVITE")
            .replace("Max-Forwards", "Require: 100rel, timer\r\nMax-Forwards");
        assert!(matches!(screen(&invite), Inbound::Request(_)));
        let prack = OPTIONS
            .replace("OPTIONS sip", "PRACK sip")
            .replace("1 OPTIONS", "2 PRACK");
        assert!(matches!(screen(&prack), Inbound::Request(_)));
        let Inbound::Reply(r) = screen(&invite.replace("100rel, timer", "100rel, foo")) else {
            panic!("420")
        };
        assert_eq!(r.status, 420);
        assert_eq!(r.headers().get(&HeaderName::Unsupported).unwrap(), "foo");
        assert!(Policy::default().allow_header().ends_with("NOTIFY, PRACK"));
    }

    #[test]
    fn a_plain_options_passes() {
        assert!(matches!(screen(OPTIONS), Inbound::Request(_)));
    }

    #[test]
    fn scanners_get_nothing_even_when_malformed() {
        let scan = OPTIONS.replace(
            "Max-Forwards",
            "User-Agent: friendly-scanner\r\nMax-Forwards",
        );
        assert!(matches!(screen(&scan), Inbound::Drop(Dropped::Scanner)));
        let broken = scan.replace("CSeq: 1", "CSeq: x");
        assert!(matches!(screen(&broken), Inbound::Drop(Dropped::Scanner)));
        let sipvicious =
            OPTIONS.replace("Max-Forwards", "User-Agent: SIPVicious 0.3\r\nMax-Forwards");
        assert!(matches!(
            screen(&sipvicious),
            Inbound::Drop(Dropped::Scanner)
        ));
    }

    #[test]
    fn stateless_replies_are_repeatable() {
        let bad = OPTIONS
            .replace("OPTIONS sip", "FOO sip")
            .replace("1 OPTIONS", "1 FOO");
        let (Inbound::Reply(a), Inbound::Reply(b)) = (screen(&bad), screen(&bad)) else {
            panic!()
        };
        assert_eq!(a.status, 501);
        assert_eq!(a.to_vec(), b.to_vec());
        let to = a.headers().get(&HeaderName::To).unwrap();
        assert!(to.starts_with(b"<sip:sw.example.com>;tag=sl"), "{to:?}");
    }

    #[test]
    fn known_but_not_allowed_is_405() {
        let sub = OPTIONS
            .replace("OPTIONS sip", "SUBSCRIBE sip")
            .replace("1 OPTIONS", "1 SUBSCRIBE");
        let Inbound::Reply(r) = screen(&sub) else {
            panic!()
        };
        assert_eq!(r.status, 405);
        assert!(
            r.headers()
                .get(&HeaderName::Allow)
                .unwrap()
                .starts_with(b"INVITE, ACK")
        );
    }

    #[test]
    fn carrier_requests_pass() {
        // IMS carriers send tel: Request-URIs; SIP-T/SIP-I bodies are SDP beside ISUP.
        let tel = OPTIONS.replace("OPTIONS sip:sw.example.com", "OPTIONS tel:+15550100");
        assert!(matches!(screen(&tel), Inbound::Request(_)));
        let body = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\nxx\r\n--b--\r\n";
        let sipt = OPTIONS
            .replace("OPTIONS sip", "INVITE sip")
            .replace("1 OPTIONS", "1 INVITE")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: multipart/mixed;boundary=b\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ),
            );
        assert!(
            matches!(screen(&sipt), Inbound::Request(_)),
            "{:?}",
            screen(&sipt)
        );
        let isup_only = sipt.replace("application/sdp", "application/x-other");
        assert!(matches!(screen(&isup_only), Inbound::Reply(r) if r.status == 415));
    }

    #[test]
    fn bad_acks_are_dropped() {
        let ack = OPTIONS
            .replace("OPTIONS sip", "ACK foo:bar")
            .replace("1 OPTIONS", "1 ACK");
        assert!(matches!(screen(&ack), Inbound::Drop(Dropped::BadAck)));
    }
}
