//! SIP messages: parsing one message from bytes, the checks every received message must pass,
//! printing, and the replies RFC 3261 section 8.2.6 builds from a request.
//!
//! The parser is our own (see the crate docs for why). It is liberal where RFC 4475 allows a
//! liberal reading and says so beside each choice; strict where a wrong guess would pass a
//! broken message on. Header values are kept as received, so a URI, `From` or `To` the switch
//! passes on is byte-for-byte what it was given.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::header::{Header, HeaderName, Headers};
use crate::syntax::{is_token, is_ws, parse_u32, scan, split_commas};
use crate::typed::{CSeq, ContactList, Method, NameAddr, ValueError, Via, is_call_id};
use crate::uri::{Uri, UriError};

/// Why a message was refused. For a request, [`Malformed::reply`] builds the response that
/// names the fault; a response that is malformed is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but whitespace, or the first line is neither a request line nor a status line.
    #[error("Malformed Start Line")]
    StartLine,
    /// A request line with a space inside the Request-URI (or a missing part).
    #[error("Malformed Request-Line")]
    RequestLine,
    /// The Request-URI is in `<>` (RFC 4475 section 3.1.2.7).
    #[error("Request-URI In Angle Brackets")]
    RequestUriBrackets,
    /// The Request-URI carries `?headers` (RFC 3261 section 19.1.5 forbids them there).
    #[error("Request-URI With Headers")]
    RequestUriHeaders,
    /// The Request-URI does not parse.
    #[error("Malformed Request-URI ({0})")]
    RequestUri(UriError),
    /// A version other than SIP/2.0: answered 505.
    #[error("Version Not Supported")]
    Version,
    /// A status code outside 100-699.
    #[error("Status Code Out Of Range")]
    StatusCode,
    /// A header line without a `:`, or with a name that is not a token.
    #[error("Malformed Header Line")]
    HeaderLine,
    /// A header the message must carry.
    #[error("Missing {0} Header")]
    Missing(HeaderName),
    /// A header that may appear once appears more often (with different values, for
    /// Content-Length).
    #[error("Multiple {0} Headers")]
    Multiple(HeaderName),
    /// A header's value is malformed.
    #[error("Malformed {0} Header ({1})")]
    Header(HeaderName, ValueError),
    /// Content-Length says more than the datagram holds.
    #[error("Content-Length Larger Than Body")]
    Truncated,
    /// The message is larger than 4 GiB.
    #[error("Message Too Large")]
    TooLarge,
    /// The CSeq method differs from the request method.
    #[error("CSeq Method Does Not Match Request Method")]
    CSeqMethod,
}

impl ParseError {
    /// The status a request with this fault is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version => 505,
            _ => 400,
        }
    }
}

/// A message that could not be accepted, with what is needed to answer it.
#[derive(Debug, Clone)]
pub struct Malformed {
    /// The fault.
    pub error: ParseError,
    kind: Kind,
    headers: Headers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A request other than ACK: it can be answered.
    Request,
    /// An ACK: never answered (RFC 3261 section 17.2.1).
    Ack,
    /// A response, or bytes that are not recognisably either: dropped.
    Other,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Malformed {}

impl Malformed {
    /// Whether the bytes were a request (so the sender may be told what was wrong).
    pub fn is_request(&self) -> bool {
        self.kind != Kind::Other
    }

    /// The User-Agent line, if the message had one.
    pub fn user_agent(&self) -> Option<&Bytes> {
        self.headers.get(&HeaderName::UserAgent)
    }

    /// The Call-ID line, if the message had one.
    pub fn call_id(&self) -> Option<&Bytes> {
        self.headers.get(&HeaderName::CallId)
    }

    /// The top Via's branch, if readable.
    pub fn branch(&self) -> Option<Bytes> {
        let top = Via::parse_list(self.headers.get(&HeaderName::Via)?)
            .next()?
            .ok()?;
        top.branch().map(Bytes::copy_from_slice)
    }

    /// The response that names the fault (400 with the fault as reason phrase, or 505),
    /// built from the request's own Via, From, To, Call-ID and CSeq lines as received. `None`
    /// when no response can be sent: the message was a response or an ACK, or it has no
    /// readable top Via to send the answer to.
    pub fn reply(&self) -> Option<Response> {
        if self.kind != Kind::Request {
            return None;
        }
        // The answer goes where the top Via says (RFC 3261 section 18.2.2): its sent-by must
        // be readable, even when its parameters are not (RFC 4475 section 3.1.2.1).
        let top = self.headers.get(&HeaderName::Via)?;
        let end = top
            .iter()
            .position(|&b| b == b';' || b == b',')
            .unwrap_or(top.len());
        Via::parse(top.slice(..end)).ok()?;
        let mut headers = Headers::with_capacity(6);
        for via in self.headers.get_all(&HeaderName::Via) {
            headers.push(HeaderName::Via, via.clone());
        }
        if let Some(from) = self.headers.get(&HeaderName::From) {
            headers.push(HeaderName::From, from.clone());
        }
        if let Some(to) = self.headers.get(&HeaderName::To) {
            // A To tag, as every response above 100 needs (RFC 3261 section 8.2.6.2), where
            // the To can be read and has none.
            let untagged = NameAddr::parse(to.clone()).is_ok_and(|a| a.tag().is_none());
            let to = if untagged {
                let call_id = self.call_id().map_or(&b""[..], |c| &c[..]);
                let tag = stateless_tag(call_id, self.branch().as_deref());
                let mut v = BytesMut::from(&to[..]);
                v.extend_from_slice(b";tag=");
                v.extend_from_slice(tag.as_bytes());
                v.freeze()
            } else {
                to.clone()
            };
            headers.push(HeaderName::To, to);
        }
        for name in [HeaderName::CallId, HeaderName::CSeq] {
            if let Some(v) = self.headers.get(&name) {
                headers.push(name, v.clone());
            }
        }
        Some(Response::new(
            self.error.status(),
            Bytes::from(self.error.to_string()),
            headers,
        ))
    }
}

/// A To tag for a stateless response: the same request always gets the same tag (FNV-1a of
/// Call-ID and branch), so a retransmission gets the same response.
pub fn stateless_tag(call_id: &[u8], branch: Option<&[u8]>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in call_id.iter().chain(b"|").chain(branch.unwrap_or_default()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("sl{h:016x}")
}

/// The headers every request and response carries, parsed once when the message is read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Core {
    via: Via,
    call_id: Bytes,
    cseq: CSeq,
    from: NameAddr,
    to: NameAddr,
    max_forwards: Option<u8>,
}

/// The parsed core headers of a received response.
#[derive(Debug, Clone, Copy)]
pub struct CoreRef<'a> {
    core: &'a Core,
}

impl<'a> CoreRef<'a> {
    /// The top Via.
    pub fn via(&self) -> &'a Via {
        &self.core.via
    }

    /// Call-ID.
    pub fn call_id(&self) -> &'a Bytes {
        &self.core.call_id
    }

    /// CSeq.
    pub fn cseq(&self) -> &'a CSeq {
        &self.core.cseq
    }

    /// From.
    pub fn from(&self) -> &'a NameAddr {
        &self.core.from
    }

    /// To.
    pub fn to(&self) -> &'a NameAddr {
        &self.core.to
    }
}

/// A SIP request.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    uri: Uri,
    headers: Headers,
    body: Bytes,
    // Boxed: the parsed addresses and Via are large, and requests move through channels.
    core: Box<Core>,
}

/// A SIP response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100-699.
    pub status: u16,
    /// The reason phrase as received (may be empty, may be UTF-8).
    pub reason: Bytes,
    headers: Headers,
    /// The body.
    pub body: Bytes,
    /// The core headers, parsed when a response was read or checked; dropped when the
    /// headers are changed.
    core: Option<Box<Core>>,
}

/// A request or a response.
// A request is a few hundred bytes (its URI parsed in place); boxing it would cost an
// allocation per message to save a memcpy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses one message that is all of `input` (a datagram, or a message a stream framer cut
    /// out). Octets after the Content-Length of the body are ignored (RFC 4475 section
    /// 3.1.1.8); with no Content-Length the body is the rest of the datagram.
    pub fn parse(input: &[u8]) -> Result<Message, Malformed> {
        Message::parse_bytes(Bytes::copy_from_slice(input))
    }

    /// [`Message::parse`] without the copy.
    pub fn parse_bytes(input: Bytes) -> Result<Message, Malformed> {
        // Offsets into a message are kept as u32; transports cap messages far below this.
        if u32::try_from(input.len()).is_err() {
            return Err(Malformed {
                error: ParseError::TooLarge,
                kind: Kind::Other,
                headers: Headers::new(),
            });
        }
        let Raw {
            start,
            headers,
            length,
            error,
            body_start,
        } = parse_raw(&input);
        // The headers move into the error only when there is one: no copy on the way to a
        // parsed message.
        let fail = |error, kind, headers| {
            Err(Malformed {
                error,
                kind,
                headers,
            })
        };
        let start = match start {
            Ok(start) => start,
            Err((error, kind)) => return fail(error, kind, headers),
        };
        let kind = match &start {
            Start::Request(Method::Ack, _) => Kind::Ack,
            Start::Request(..) => Kind::Request,
            Start::Response(..) => Kind::Other,
        };
        if let Some(error) = error {
            return fail(error, kind, headers);
        }
        let body = match body(&input, body_start, length) {
            Ok(body) => body,
            Err(error) => return fail(error, kind, headers),
        };
        let core = match check_core(&headers) {
            Ok(core) => core,
            Err(error) => return fail(error, kind, headers),
        };
        match start {
            Start::Request(method, uri) => {
                if core.cseq.method != method {
                    return fail(ParseError::CSeqMethod, kind, headers);
                }
                Ok(Message::Request(Request {
                    method,
                    uri,
                    headers,
                    body,
                    core,
                }))
            }
            Start::Response(status, reason) => Ok(Message::Response(Response {
                status,
                reason,
                headers,
                body,
                core: Some(core),
            })),
        }
    }

    /// Prints the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }

    /// The printed message.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.encode_to_vec(),
            Message::Response(r) => r.to_vec(),
        }
    }
}

impl Request {
    /// A request from its parts, checked as a received one is: Via, From, To, Call-ID and
    /// CSeq present once and well-formed, CSeq's method the request's, Contact well-formed.
    pub fn from_parts(
        method: Method,
        uri: Uri,
        headers: Headers,
        body: Bytes,
    ) -> Result<Request, ParseError> {
        let core = check_core(&headers)?;
        if core.cseq.method != method {
            return Err(ParseError::CSeqMethod);
        }
        Ok(Request {
            method,
            uri,
            headers,
            body,
            core,
        })
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI, as received.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The headers, in order (Content-Length excluded: it is the body's length).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The top Via.
    pub fn via(&self) -> &Via {
        &self.core.via
    }

    /// Records where the request really came from in its top Via (RFC 3261 section 18.2.1,
    /// RFC 3581): `received` when the sent-by host is not the source address, and, when the
    /// sender asked with a bare `rport`, the source port too. Responses copy the Via, so they
    /// then reach a sender behind NAT.
    pub fn stamp_via(&mut self, source: std::net::SocketAddr) {
        let via = &self.core.via;
        let wants_rport = via.rport() == Some(None);
        let same_host = match via.host {
            crate::uri::Host::V4(a) => std::net::IpAddr::V4(a) == source.ip(),
            crate::uri::Host::V6(a) => std::net::IpAddr::V6(a) == source.ip(),
            crate::uri::Host::Name(_) => false,
        };
        if same_host && !wants_rport {
            return;
        }
        let mut stamped = Vec::with_capacity(via.as_bytes().len() + 48);
        for (i, part) in via.as_bytes().split(|&b| b == b';').enumerate() {
            let name = part
                .split(|&b| b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if i > 0 {
                // A bare `rport` and any old `received` are replaced below.
                if name.eq_ignore_ascii_case(b"received")
                    || (wants_rport && name.eq_ignore_ascii_case(b"rport"))
                {
                    continue;
                }
                stamped.push(b';');
            }
            stamped.extend_from_slice(part);
        }
        match source.ip() {
            std::net::IpAddr::V4(ip) => {
                stamped.extend_from_slice(format!(";received={ip}").as_bytes())
            }
            std::net::IpAddr::V6(ip) => {
                stamped.extend_from_slice(format!(";received=[{ip}]").as_bytes())
            }
        }
        if wants_rport {
            stamped.extend_from_slice(format!(";rport={}", source.port()).as_bytes());
        }
        let Ok(new_top) = Via::parse(Bytes::from(stamped)) else {
            return;
        };
        // The top Via is the first value of the first Via line.
        let Some(first_line) = self.headers.get(&HeaderName::Via).cloned() else {
            return;
        };
        let rest = crate::syntax::split_commas(&first_line)
            .skip(1)
            .map(|(a, b)| &first_line[a..b])
            .collect::<Vec<_>>();
        let mut line = new_top.as_bytes().to_vec();
        for r in rest {
            line.extend_from_slice(b", ");
            line.extend_from_slice(r);
        }
        self.headers
            .replace_first(&HeaderName::Via, Bytes::from(line));
        self.core.via = new_top;
    }

    /// Every Via value, top first (all were checked when the request was read).
    pub fn vias(&self) -> impl Iterator<Item = Via> + '_ {
        self.headers
            .get_all(&HeaderName::Via)
            .flat_map(Via::parse_list)
            .filter_map(Result::ok)
    }

    /// Call-ID.
    pub fn call_id(&self) -> &Bytes {
        &self.core.call_id
    }

    /// CSeq.
    pub fn cseq(&self) -> &CSeq {
        &self.core.cseq
    }

    /// From.
    pub fn from(&self) -> &NameAddr {
        &self.core.from
    }

    /// To.
    pub fn to(&self) -> &NameAddr {
        &self.core.to
    }

    /// Max-Forwards, if present (RFC 2543 requests may lack it).
    pub fn max_forwards(&self) -> Option<u8> {
        self.core.max_forwards
    }

    /// Every Contact value (checked when the request was read).
    pub fn contacts(&self) -> Result<ContactList, ParseError> {
        contacts(&self.headers)
    }

    /// The size of the printed request.
    fn encoded_len(&self) -> usize {
        self.method.as_str().len()
            + 1
            + self.uri.as_bytes().len()
            + b" SIP/2.0\r\n".len()
            + self.headers.encoded_len()
            + finish_len(&self.body)
    }

    /// Prints the request.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write(out);
    }

    /// Prints the request into room already reserved.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.headers.encode(out);
        finish(out, &self.body);
    }

    /// The To tag of a stateless answer to this request ([`stateless_tag`] of its Call-ID
    /// and top branch): the same for every retransmission.
    pub fn stateless_tag(&self) -> String {
        stateless_tag(self.call_id(), self.via().branch())
    }

    /// The printed request.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// A response to this request (RFC 3261 section 8.2.6): Via, From, To, Call-ID and CSeq
    /// copied as received; `to_tag` is added to To when it has none and the status is above
    /// 100.
    pub fn reply(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::with_capacity(8);
        for via in self.headers.get_all(&HeaderName::Via) {
            headers.push(HeaderName::Via, via.clone());
        }
        headers.push(HeaderName::From, self.core.from.to_bytes());
        let to = match to_tag {
            Some(tag) if status > 100 && self.core.to.tag().is_none() => {
                let mut to = BytesMut::from(self.core.to.as_bytes());
                to.extend_from_slice(b";tag=");
                to.extend_from_slice(tag.as_bytes());
                to.freeze()
            }
            _ => self.core.to.to_bytes(),
        };
        headers.push(HeaderName::To, to);
        headers.push(HeaderName::CallId, self.core.call_id.clone());
        if let Some(cseq) = self.headers.get(&HeaderName::CSeq) {
            headers.push(HeaderName::CSeq, cseq.clone());
        }
        Response::new(status, Bytes::copy_from_slice(reason.as_bytes()), headers)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Response {
    /// A response with these headers and no body.
    pub fn new(status: u16, reason: impl Into<Bytes>, headers: Headers) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers,
            body: Bytes::new(),
            core: None,
        }
    }

    /// The headers, in order (Content-Length excluded: it is the body's length).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change them (the parsed core headers are read afresh afterwards).
    pub fn headers_mut(&mut self) -> &mut Headers {
        self.core = None;
        &mut self.headers
    }

    /// Checks the core headers as a received response's are, so the accessors below read
    /// them without parsing again.
    pub fn check(&mut self) -> Result<(), ParseError> {
        if self.core.is_none() {
            self.core = Some(check_core(&self.headers)?);
        }
        Ok(())
    }

    /// The top Via (the one this element added), if readable: borrowed from the parsed core
    /// headers when there are some (always, for a received response), else parsed.
    pub fn via(&self) -> Option<Cow<'_, Via>> {
        match &self.core {
            Some(core) => Some(Cow::Borrowed(&core.via)),
            None => Via::parse_list(self.headers.get(&HeaderName::Via)?)
                .next()?
                .ok()
                .map(Cow::Owned),
        }
    }

    /// How many Via values (across all lines).
    pub fn via_count(&self) -> usize {
        self.headers
            .get_all(&HeaderName::Via)
            .map(|v| Via::parse_list(v).count())
            .sum()
    }

    /// CSeq, if readable: borrowed from the parsed core headers when there are some.
    pub fn cseq(&self) -> Option<Cow<'_, CSeq>> {
        match &self.core {
            Some(core) => Some(Cow::Borrowed(&core.cseq)),
            None => CSeq::parse(self.headers.get(&HeaderName::CSeq)?)
                .ok()
                .map(Cow::Owned),
        }
    }

    /// The core headers (Via, Call-ID, CSeq, From, To), parsed: always there for a received
    /// response, and for a built one after [`Response::check`].
    pub fn core(&self) -> Option<CoreRef<'_>> {
        self.core.as_deref().map(|c| CoreRef { core: c })
    }

    /// The size of the printed response.
    fn encoded_len(&self) -> usize {
        b"SIP/2.0 200 \r\n".len()
            + self.reason.len()
            + self.headers.encoded_len()
            + finish_len(&self.body)
    }

    /// Prints the response.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write(out);
    }

    /// Prints the response into room already reserved.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        // A status is three digits (100-699), but a built one is not checked: print any.
        out.extend_from_slice(Decimal::of(self.status.into()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.reason);
        out.extend_from_slice(b"\r\n");
        self.headers.encode(out);
        finish(out, &self.body);
    }

    /// The printed response.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &String::from_utf8_lossy(&self.reason))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

fn finish(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(Decimal::of(body.len() as u64).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// The printed size of what [`finish`] writes.
fn finish_len(body: &[u8]) -> usize {
    b"Content-Length: \r\n\r\n".len() + Decimal::of(body.len() as u64).as_bytes().len() + body.len()
}

/// A number printed in decimal without an allocation.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn of(mut n: u64) -> Decimal {
        let mut d = Decimal {
            digits: [b'0'; 20],
            start: 20,
        };
        loop {
            d.start -= 1;
            d.digits[d.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return d;
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[allow(clippy::large_enum_variant)] // short-lived, never moved far
enum Start {
    Request(Method, Uri),
    Response(u16, Bytes),
}

/// The head of a message, split into lines, before any header is interpreted.
struct Raw {
    start: Result<Start, (ParseError, Kind)>,
    headers: Headers,
    /// Content-Length, read line by line.
    length: Length,
    /// The first malformed header line, if any.
    error: Option<ParseError>,
    body_start: usize,
}

/// Splits the head into the start line and header lines (unfolding continuation lines),
/// setting Content-Length aside. Lines may end in CRLF or, liberally, a bare LF. CRLFs before
/// the start line are skipped (RFC 3261 section 7.5).
fn parse_raw(input: &Bytes) -> Raw {
    let s = &input[..];
    let mut pos = 0;
    while s[pos..].starts_with(b"\r\n") || s[pos..].starts_with(b"\n") {
        pos += if s[pos] == b'\r' { 2 } else { 1 };
    }
    let mut lines = Lines { s, pos };
    let start = match lines.next() {
        Some(Line { a, b, .. }) if a != b => parse_start(input, &s[a..b]),
        _ => Err((ParseError::StartLine, Kind::Other)),
    };
    let mut head = Head {
        input,
        headers: Headers::with_capacity(16),
        length: Length::default(),
        error: None,
    };
    // A header line, and its continuation lines (one list, reused).
    let mut current: Option<Line> = None;
    let mut folds: Vec<Line> = Vec::new();
    let mut body_start = s.len();
    for line in lines.by_ref() {
        if line.a == line.b {
            body_start = lines.pos;
            break;
        }
        if is_ws(s[line.a]) {
            if current.is_some() {
                folds.push(line);
            } else {
                head.error.get_or_insert(ParseError::HeaderLine);
            }
            continue;
        }
        if let Some(line) = current.replace(line) {
            head.line(line, &folds);
            folds.clear();
        }
    }
    if let Some(line) = current {
        head.line(line, &folds);
    }
    Raw {
        start,
        headers: head.headers,
        length: head.length,
        error: head.error,
        body_start,
    }
}

/// The header lines read so far.
struct Head<'a> {
    input: &'a Bytes,
    headers: Headers,
    length: Length,
    error: Option<ParseError>,
}

impl Head<'_> {
    /// Reads one header line and its continuation lines.
    fn line(&mut self, Line { a, b, cr }: Line, folds: &[Line]) {
        let s = &self.input[..];
        let line = &s[a..b];
        // name = token, then optional whitespace before the colon.
        let name_end = scan(line, 0, is_token);
        let colon = scan(line, name_end, |c| c.is_ascii_whitespace());
        if name_end == 0 || line.get(colon) != Some(&b':') {
            self.error.get_or_insert(ParseError::HeaderLine);
            return;
        }
        let name = &line[..name_end];
        // The value, trimmed, as offsets into the input (a slice by offsets is cheaper than
        // `slice_ref`, which finds them again).
        let mut va = a + colon + 1;
        let mut vb = b;
        while va < vb && s[va].is_ascii_whitespace() {
            va += 1;
        }
        while vb > va && s[vb - 1].is_ascii_whitespace() {
            vb -= 1;
        }
        let first = &s[va..vb];
        // A CR is never part of a value (RFC 3261 section 25.1): passed on, it could end the
        // line early at a next hop that reads CR alone as a line end, and smuggle a header.
        if (cr && memchr::memchr(b'\r', first).is_some()) || folds.iter().any(|f| f.cr) {
            self.error.get_or_insert(ParseError::HeaderLine);
            return;
        }
        let known = HeaderName::known(name);
        if folds.is_empty() {
            match known {
                Some(HeaderName::ContentLength) => self.length.add(first),
                Some(known) => self.headers.push(known, self.input.slice(va..vb)),
                None => self.headers.push(
                    HeaderName::Other(self.input.slice(a..a + name_end)),
                    self.input.slice(va..vb),
                ),
            }
            return;
        }
        // A folded value is one SP where the fold was (RFC 3261 section 7.3.1).
        let mut v = BytesMut::from(first);
        for fold in folds {
            let part = s[fold.a..fold.b].trim_ascii();
            if part.is_empty() {
                continue;
            }
            if !v.is_empty() {
                v.extend_from_slice(b" ");
            }
            v.extend_from_slice(part);
        }
        match known {
            Some(HeaderName::ContentLength) => self.length.add(&v),
            Some(known) => self.headers.push(known, v.freeze()),
            None => self
                .headers
                .push(HeaderName::Other(self.input.slice_ref(name)), v.freeze()),
        }
    }
}

/// Lines of the head: `(start, end)` without the line end, and whether a CR is inside.
struct Lines<'a> {
    s: &'a [u8],
    pos: usize,
}

/// One line of the head.
#[derive(Debug, Clone, Copy)]
struct Line {
    a: usize,
    b: usize,
    /// A CR is inside `a..b` (not part of the line end): a header value must not hold one.
    cr: bool,
}

impl Iterator for Lines<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        let a = self.pos;
        let rest = self.s.get(a..).filter(|r| !r.is_empty())?;
        // One search finds the line end and tells whether a CR comes before it, so the
        // header values need no search of their own.
        let line = match memchr::memchr2(b'\r', b'\n', rest) {
            None => Line {
                a,
                b: self.s.len(),
                cr: false,
            },
            Some(i) if rest[i] == b'\n' => Line {
                a,
                b: a + i,
                cr: false,
            },
            Some(i) if rest.get(i + 1) == Some(&b'\n') => Line {
                a,
                b: a + i,
                cr: false,
            },
            Some(i) => match memchr::memchr(b'\n', &rest[i + 1..]) {
                Some(n) => {
                    let nl = a + i + 1 + n;
                    let b = if self.s[nl - 1] == b'\r' { nl - 1 } else { nl };
                    Line { a, b, cr: true }
                }
                None => Line {
                    a,
                    b: self.s.len(),
                    cr: true,
                },
            },
        };
        // Past the line end: LF, or CR LF.
        self.pos = match self.s.get(line.b) {
            None => self.s.len(),
            Some(b'\n') => line.b + 1,
            Some(_) => line.b + 2,
        };
        Some(line)
    }
}

fn parse_start(input: &Bytes, line: &[u8]) -> Result<Start, (ParseError, Kind)> {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(input, line).map_err(|e| (e, Kind::Other));
    }
    // Liberal reading (RFC 4475 sections 3.1.2.9 and 3.1.2.10): runs of SP between the
    // elements and trailing whitespace are accepted; they are never forwarded, since the
    // request line is printed afresh.
    let mut parts = line
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty())
        .map(<[u8]>::trim_ascii);
    let method = parts.next().unwrap_or_default();
    let method = Method::parse(input, method).ok_or((ParseError::StartLine, Kind::Other))?;
    let kind = if method == Method::Ack {
        Kind::Ack
    } else {
        Kind::Request
    };
    let (Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err((ParseError::RequestLine, kind));
    };
    if !is_sip_version(version) {
        return Err((ParseError::StartLine, kind));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err((ParseError::Version, kind));
    }
    if uri.first() == Some(&b'<') {
        return Err((ParseError::RequestUriBrackets, kind));
    }
    let uri = Uri::parse(input.slice_ref(uri)).map_err(|e| (ParseError::RequestUri(e), kind))?;
    if uri.as_sip().is_some_and(|u| u.headers().is_some()) {
        return Err((ParseError::RequestUriHeaders, kind));
    }
    Ok(Start::Request(method, uri))
}

fn is_sip_version(v: &[u8]) -> bool {
    v.len() > 4 && v[..4].eq_ignore_ascii_case(b"SIP/") && {
        let mut nums = v[4..].splitn(2, |&b| b == b'.');
        let ok =
            |n: Option<&[u8]>| n.is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
        ok(nums.next()) && ok(nums.next())
    }
}

fn parse_status_line(input: &Bytes, line: &[u8]) -> Result<Start, ParseError> {
    let sp = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ParseError::StartLine)?;
    let version = &line[..sp];
    if !is_sip_version(version) {
        return Err(ParseError::StartLine);
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::Version);
    }
    let rest = &line[sp + 1..];
    let code_end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    if code_end != 3 {
        return Err(ParseError::StatusCode);
    }
    let code = u16::from(rest[0] - b'0') * 100
        + u16::from(rest[1] - b'0') * 10
        + u16::from(rest[2] - b'0');
    if !(100..=699).contains(&code) {
        return Err(ParseError::StatusCode);
    }
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase; the reason may be empty. A
    // missing SP before an empty reason is accepted.
    let reason = match rest.get(3) {
        None => &rest[3..],
        Some(b' ') => &rest[4..],
        Some(_) => return Err(ParseError::StatusCode),
    };
    if reason.iter().any(|&b| b < b' ' && b != b'\t') {
        return Err(ParseError::StartLine);
    }
    Ok(Start::Response(code, input.slice_ref(reason)))
}

/// The body, framed by Content-Length when there is one (all values must agree).
fn body(input: &Bytes, start: usize, length: Length) -> Result<Bytes, ParseError> {
    let available = input.len().saturating_sub(start);
    match length.get()? {
        None => Ok(input.slice(start.min(input.len())..)),
        Some(n) if n > available => Err(ParseError::Truncated),
        Some(n) => Ok(input.slice(start..start + n)),
    }
}

/// Content-Length read from the values of its lines, in order: each must be a number, and all
/// must agree. The one reading the datagram parser and the stream framer share.
#[derive(Debug)]
pub(crate) struct Length(Result<Option<u32>, ParseError>);

impl Default for Length {
    fn default() -> Length {
        Length(Ok(None))
    }
}

impl Length {
    /// Reads one more value; after a fault, the first fault stays.
    pub(crate) fn add(&mut self, v: &[u8]) {
        let Ok(found) = self.0 else {
            return;
        };
        self.0 = match parse_u32(v) {
            None => Err(ParseError::Header(
                HeaderName::ContentLength,
                if v.starts_with(b"-") {
                    ValueError::Negative
                } else {
                    ValueError::Number
                },
            )),
            Some(n) if found.is_some_and(|prev| prev != n) => {
                Err(ParseError::Multiple(HeaderName::ContentLength))
            }
            Some(n) => Ok(Some(n)),
        };
    }

    /// The length; `None` when there was no such line.
    pub(crate) fn get(self) -> Result<Option<usize>, ParseError> {
        self.0?
            .map(|n| usize::try_from(n).map_err(|_| ParseError::Truncated))
            .transpose()
    }
}

/// Where a header that may appear once is in a header list.
#[derive(Debug, Clone, Copy, Default)]
enum Once {
    #[default]
    Absent,
    At(usize),
    Repeated,
}

impl Once {
    fn see(&mut self, i: usize) {
        *self = match self {
            Once::Absent => Once::At(i),
            _ => Once::Repeated,
        };
    }

    fn value(self, headers: &[Header], name: HeaderName) -> Result<Option<&Bytes>, ParseError> {
        match self {
            Once::Absent => Ok(None),
            Once::At(i) => Ok(headers.get(i).map(|h| &h.value)),
            Once::Repeated => Err(ParseError::Multiple(name)),
        }
    }

    fn required(self, headers: &[Header], name: HeaderName) -> Result<&Bytes, ParseError> {
        self.value(headers, name.clone())?
            .ok_or(ParseError::Missing(name))
    }
}

/// Where the core headers are: found in one pass over the list, not one search per name.
#[derive(Debug, Default)]
struct CoreLines {
    call_id: Once,
    cseq: Once,
    from: Once,
    to: Once,
    max_forwards: Once,
    via: bool,
    contact: bool,
}

impl CoreLines {
    fn of(headers: &[Header]) -> CoreLines {
        let mut lines = CoreLines::default();
        for (i, h) in headers.iter().enumerate() {
            match h.name {
                HeaderName::CallId => lines.call_id.see(i),
                HeaderName::CSeq => lines.cseq.see(i),
                HeaderName::From => lines.from.see(i),
                HeaderName::To => lines.to.see(i),
                HeaderName::MaxForwards => lines.max_forwards.see(i),
                HeaderName::Via => lines.via = true,
                HeaderName::Contact => lines.contact = true,
                _ => {}
            }
        }
        lines
    }
}

/// The core headers, checked and parsed; boxed here, where they are made, rather than moved
/// into a box after (they are over a kilobyte).
fn check_core(headers: &Headers) -> Result<Box<Core>, ParseError> {
    let bad = |name: HeaderName| move |e: ValueError| ParseError::Header(name.clone(), e);
    let list = headers.as_slice();
    let lines = CoreLines::of(list);
    let call_id = lines.call_id.required(list, HeaderName::CallId)?;
    if !is_call_id(call_id) {
        return Err(ParseError::Header(HeaderName::CallId, ValueError::BadToken));
    }
    let cseq =
        CSeq::parse(lines.cseq.required(list, HeaderName::CSeq)?).map_err(bad(HeaderName::CSeq))?;
    let from =
        one_addr(lines.from.required(list, HeaderName::From)?).map_err(bad(HeaderName::From))?;
    let to = one_addr(lines.to.required(list, HeaderName::To)?).map_err(bad(HeaderName::To))?;
    // The top Via is built; the others are only checked (read on demand by `vias()`).
    let mut via = None;
    if lines.via {
        for line in headers.get_all(&HeaderName::Via) {
            for (a, b) in split_commas(line) {
                if a == b {
                    return Err(ParseError::Header(HeaderName::Via, ValueError::Empty));
                }
                if via.is_none() {
                    via = Some(Via::parse(line.slice(a..b)).map_err(bad(HeaderName::Via))?);
                } else {
                    Via::check(&line[a..b]).map_err(bad(HeaderName::Via))?;
                }
            }
        }
    }
    let via = via.ok_or(ParseError::Missing(HeaderName::Via))?;
    let max_forwards = match lines.max_forwards.value(list, HeaderName::MaxForwards)? {
        Some(v) => Some(parse_u32(v).and_then(|n| u8::try_from(n).ok()).ok_or(
            ParseError::Header(HeaderName::MaxForwards, ValueError::Number),
        )?),
        None => None,
    };
    if lines.contact {
        check_contacts(headers)?;
    }
    Ok(Box::new(Core {
        via,
        call_id: call_id.clone(),
        cseq,
        from,
        to,
        max_forwards,
    }))
}

/// From and To hold one address: the value is parsed whole, so a comma is a fault of the
/// value (an unquoted display name, a second address), not a separator.
fn one_addr(v: &Bytes) -> Result<NameAddr, ValueError> {
    NameAddr::parse(v.clone())
}

/// What [`contacts`] would say, without building the addresses.
fn check_contacts(headers: &Headers) -> Result<(), ParseError> {
    let bad = |e| ParseError::Header(HeaderName::Contact, e);
    let mut addrs = false;
    let mut wildcard = false;
    for line in headers.get_all(&HeaderName::Contact) {
        if line.as_ref() == b"*" {
            wildcard = true;
            continue;
        }
        for (a, b) in split_commas(line) {
            if a == b {
                return Err(bad(ValueError::Empty));
            }
            NameAddr::check(&line[a..b]).map_err(bad)?;
            addrs = true;
        }
    }
    if wildcard && addrs {
        return Err(bad(ValueError::Multiple));
    }
    Ok(())
}

fn contacts(headers: &Headers) -> Result<ContactList, ParseError> {
    let bad = |e| ParseError::Header(HeaderName::Contact, e);
    let mut addrs = Vec::new();
    let mut wildcard = false;
    for line in headers.get_all(&HeaderName::Contact) {
        if line.as_ref() == b"*" {
            wildcard = true;
            continue;
        }
        for a in NameAddr::parse_list(line) {
            addrs.push(a.map_err(bad)?);
        }
    }
    match (wildcard, addrs.is_empty()) {
        (true, true) => Ok(ContactList::Wildcard),
        (true, false) => Err(bad(ValueError::Multiple)),
        (false, _) => Ok(ContactList::Addrs(addrs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    fn request(bytes: &[u8]) -> Request {
        match Message::parse(bytes) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let r = request(INVITE);
        assert_eq!(r.method(), &Method::Invite);
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.example.com");
        assert_eq!(r.cseq().seq, 314159);
        assert_eq!(r.from().tag(), Some(&b"1928301774"[..]));
        assert_eq!(r.via().branch(), Some(&b"z9hG4bK776asdhds"[..]));
        assert_eq!(r.max_forwards(), Some(70));
        assert_eq!(r.body().as_ref(), b"v=0\n");
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out, INVITE, "{}", String::from_utf8_lossy(&out));
        assert_eq!(request(&out), r);
    }

    #[test]
    fn reply_copies_headers_and_adds_a_tag() {
        let r = request(INVITE);
        let resp = r.reply(180, "Ringing", Some("abc"));
        let printed = resp.to_vec();
        let text = String::from_utf8(printed.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"), "{text}");
        assert!(text.contains("To: Bob <sip:bob@biloxi.example.com>;tag=abc\r\n"));
        assert!(text.contains("From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"));
        let Ok(Message::Response(back)) = Message::parse(&printed) else {
            panic!("{text}");
        };
        assert_eq!(back.status, 180);
        assert_eq!(back.cseq().unwrap().seq, 314159);
        // A received response's Via and CSeq are borrowed from its parsed core; a built one's
        // are parsed from its lines.
        assert!(matches!(back.via(), Some(Cow::Borrowed(_))));
        assert!(matches!(back.cseq(), Some(Cow::Borrowed(_))));
        assert!(matches!(resp.via(), Some(Cow::Owned(ref v)) if v == back.via().unwrap().as_ref()));
        assert!(matches!(resp.cseq(), Some(Cow::Owned(ref c)) if c.seq == 314159));
        assert_eq!(
            r.reply(100, "Trying", Some("abc"))
                .headers
                .get(&HeaderName::To)
                .unwrap(),
            "Bob <sip:bob@biloxi.example.com>"
        );
    }

    #[test]
    fn via_is_stamped_with_the_source() {
        let mut r = request(INVITE);
        r.stamp_via("198.51.100.7:40123".parse().unwrap());
        assert_eq!(
            r.via().as_bytes(),
            b"SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=198.51.100.7;rport=40123"
        );
        assert_eq!(r.via().rport(), Some(Some(40123)));
        let reply = r.reply(200, "OK", Some("x")).to_vec();
        assert!(String::from_utf8_lossy(&reply).contains(";received=198.51.100.7;rport=40123\r\n"));
        // Sent from the address it names and without rport: left alone.
        let text = String::from_utf8_lossy(INVITE)
            .replace("pc33.atlanta.example.com;branch", "192.0.2.4:5060;branch")
            .replace(";rport", "");
        let mut r = request(text.as_bytes());
        r.stamp_via("192.0.2.4:5060".parse().unwrap());
        assert_eq!(
            r.via().as_bytes(),
            b"SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK776asdhds"
        );
    }

    #[test]
    fn bare_lf_and_leading_crlf_are_accepted() {
        let lf: Vec<u8> = INVITE
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .collect::<Vec<_>>()
            .join(&b'\n');
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(&lf);
        let r = request(&input);
        assert_eq!(r.body().as_ref(), b"v=0\n");
    }

    #[test]
    fn malformed_requests_get_a_reply_responses_do_not() {
        let bad = String::from_utf8_lossy(INVITE).replace("CSeq: 314159 INVITE", "CSeq: x INVITE");
        let err = Message::parse(bad.as_bytes()).unwrap_err();
        assert_eq!(
            err.error,
            ParseError::Header(HeaderName::CSeq, ValueError::Number)
        );
        let reply = err.reply().unwrap();
        assert_eq!(reply.status, 400);
        assert_eq!(
            &reply.reason[..],
            b"Malformed CSeq Header (number out of range)"
        );
        let ack = bad
            .replace("INVITE sip", "ACK sip")
            .replace("x INVITE", "x ACK");
        assert!(
            Message::parse(ack.as_bytes())
                .unwrap_err()
                .reply()
                .is_none()
        );
        let resp =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: x INVITE\r\n\r\n";
        assert!(Message::parse(resp).unwrap_err().reply().is_none());
    }

    #[test]
    fn a_cr_inside_a_value_is_refused_one_before_the_line_end_is_not() {
        let with = |line: &str| {
            let text = String::from_utf8_lossy(INVITE).replace(
                "Content-Type: application/sdp\r\n",
                &format!("Content-Type: application/sdp\r\n{line}"),
            );
            Message::parse(text.as_bytes())
        };
        assert!(with("Subject: a\r\n").is_ok());
        assert_eq!(
            with("Subject: a\rb\r\n").unwrap_err().error,
            ParseError::HeaderLine
        );
        // Trimmed off the value, as whitespace around it is.
        let Ok(Message::Request(r)) = with("Subject: a\r\r\n") else {
            panic!("a CR before the line end is trimmed");
        };
        assert_eq!(r.headers().get(&HeaderName::Subject).unwrap(), "a");
        // A continuation line holds none either.
        assert_eq!(
            with("Subject: a\r\n b\rc\r\n").unwrap_err().error,
            ParseError::HeaderLine
        );
        let Ok(Message::Request(r)) = with("Subject: a\r\n b\r\n") else {
            panic!("a plain fold");
        };
        assert_eq!(r.headers().get(&HeaderName::Subject).unwrap(), "a b");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 100, 65_535, 4_294_967_296, u64::MAX] {
            assert_eq!(Decimal::of(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"\r\n",
            b"\n\n\n",
            b"SIP/",
            b"SIP/2.0",
            b"SIP/2.0 99",
            b"SIP/2.0 20",
            b"INVITE",
            b"INVITE sip:a@b",
            b" : \r\n\r\n",
            b"\xff\xfe\x00",
            b"A sip:x SIP/2.0\r\n : x\r\n",
        ] {
            let _ = Message::parse(input);
        }
    }
}
