//! Typed views of the headers the stack reads: `Via`, the name-addr family (`From`, `To`,
//! `Contact`, `Route`, `Record-Route`), `CSeq`, media types and token lists. Each is parsed from
//! a header value as received and keeps slices of it, so what is passed on is what came in.

use std::fmt;

use bytes::Bytes;

use crate::params::{Check, Params, scan_header};
use crate::syntax::{
    is_token, is_token_str, is_ws, parse_port, quoted_end, scan, skip_ws, split_commas,
};
use crate::uri::{Host, HostKind, Uri};

/// Why a header value was refused; the 400 response names the header and this fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// A quoted string is not closed.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A display name that is neither a quoted string nor tokens.
    #[error("display name must be quoted")]
    BadDisplayName,
    /// `<` without `>`, or text after `>` that is not a parameter.
    #[error("unbalanced angle brackets")]
    Brackets,
    /// Whitespace inside the URI.
    #[error("whitespace inside the URI")]
    SpaceInUri,
    /// A URI with `;`, `,` or `?` that is not in `<>` (RFC 3261 section 20).
    #[error("URI with headers must be in angle brackets")]
    UnbracketedUri,
    /// The URI itself is malformed.
    #[error("malformed URI")]
    BadUri,
    /// A `;name=value` parameter is malformed (empty name, stray `;` or `,`).
    #[error("malformed parameter")]
    BadParam,
    /// Two values where the header allows one.
    #[error("more than one value")]
    Multiple,
    /// A number that is not a number or exceeds its limit.
    #[error("number out of range")]
    Number,
    /// A negative number where only unsigned ones are allowed.
    #[error("negative number")]
    Negative,
    /// The `SIP/2.0/transport` part of a Via is malformed.
    #[error("malformed sent-protocol")]
    BadProtocol,
    /// The host or port of a Via is malformed.
    #[error("malformed sent-by")]
    BadSentBy,
    /// A token (a method, a tag, an option tag) holds characters a token may not.
    #[error("malformed token")]
    BadToken,
}

/// A request method. Methods are case-sensitive; anything unknown is kept as written.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `INVITE`.
    Invite,
    /// `ACK`.
    Ack,
    /// `BYE`.
    Bye,
    /// `CANCEL`.
    Cancel,
    /// `OPTIONS`.
    Options,
    /// `REGISTER`.
    Register,
    /// `PRACK` (RFC 3262).
    Prack,
    /// `SUBSCRIBE` (RFC 6665).
    Subscribe,
    /// `NOTIFY` (RFC 6665).
    Notify,
    /// `PUBLISH` (RFC 3903).
    Publish,
    /// `INFO` (RFC 6086).
    Info,
    /// `REFER` (RFC 3515).
    Refer,
    /// `MESSAGE` (RFC 3428).
    Message,
    /// `UPDATE` (RFC 3311).
    Update,
    /// An extension method, as written (`RE%47IST%45R` is not `REGISTER`).
    Other(Bytes),
}

impl Method {
    /// Parses a method token. `None` if it is not a token.
    pub fn parse(src: &Bytes, s: &[u8]) -> Option<Method> {
        Some(match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"UPDATE" => Method::Update,
            _ if is_token_str(s) => Method::Other(src.slice_ref(s)),
            _ => return None,
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            // Tokens are ASCII, checked when parsed.
            Method::Other(m) => std::str::from_utf8(m).unwrap_or("UNKNOWN"),
        }
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `CSeq: <seq> <method>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (at most 2**32-1).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value.
    pub fn parse(v: &Bytes) -> Result<CSeq, ValueError> {
        let digits_end = scan(v, 0, |b| b.is_ascii_digit());
        let seq = crate::syntax::parse_u32(&v[..digits_end]).ok_or(ValueError::Number)?;
        let m = skip_ws(v, digits_end);
        if m == digits_end {
            return Err(ValueError::BadToken);
        }
        let method = Method::parse(v, &v[m..]).ok_or(ValueError::BadToken)?;
        Ok(CSeq { seq, method })
    }
}

/// The transport named in a Via.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// `UDP`.
    Udp,
    /// `TCP`.
    Tcp,
    /// `TLS`.
    Tls,
    /// `SCTP`.
    Sctp,
    /// `WS` (RFC 7118).
    Ws,
    /// `WSS` (RFC 7118).
    Wss,
    /// Any other token, as written.
    Other(Bytes),
}

impl Transport {
    fn parse(src: &Bytes, s: &[u8]) -> Transport {
        match () {
            _ if s.eq_ignore_ascii_case(b"UDP") => Transport::Udp,
            _ if s.eq_ignore_ascii_case(b"TCP") => Transport::Tcp,
            _ if s.eq_ignore_ascii_case(b"TLS") => Transport::Tls,
            _ if s.eq_ignore_ascii_case(b"SCTP") => Transport::Sctp,
            _ if s.eq_ignore_ascii_case(b"WS") => Transport::Ws,
            _ if s.eq_ignore_ascii_case(b"WSS") => Transport::Wss,
            _ => Transport::Other(src.slice_ref(s)),
        }
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Clone, PartialEq, Eq)]
pub struct Via {
    raw: Bytes,
    /// The protocol version (`2.0`).
    pub version: Bytes,
    /// The transport.
    pub transport: Transport,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by host exactly as written.
    pub host_raw: Bytes,
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// `branch`, `received`, `rport`, `maddr`, `ttl` and extensions.
    pub params: Params,
}

/// Where the parts of a Via value lie, found without building anything.
struct ViaLayout {
    version: (usize, usize),
    transport: (usize, usize),
    host: HostKind,
    host_raw: (usize, usize),
    port: Option<u16>,
    params_start: usize,
}

impl ViaLayout {
    /// Scans one Via value up to its parameters.
    fn scan(s: &[u8]) -> Result<ViaLayout, ValueError> {
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
        let mut i = skip_ws(s, 0);
        let name_end = scan(s, i, is_token);
        if !s[i..name_end].eq_ignore_ascii_case(b"SIP") {
            return Err(ValueError::BadProtocol);
        }
        i = slash(s, name_end)?;
        let version_end = scan(s, i, is_token);
        if version_end == i {
            return Err(ValueError::BadProtocol);
        }
        let version = (i, version_end);
        i = slash(s, version_end)?;
        let transport_end = scan(s, i, is_token);
        if transport_end == i {
            return Err(ValueError::BadProtocol);
        }
        let transport = (i, transport_end);
        i = skip_ws(s, transport_end);
        if i == transport_end {
            return Err(ValueError::BadProtocol);
        }
        // sent-by = host [ COLON port ]; a COLON may have whitespace around it.
        let host_start = i;
        let host_end = if s.get(i) == Some(&b'[') {
            memchr::memchr(b']', &s[i..])
                .map(|p| i + p + 1)
                .ok_or(ValueError::BadSentBy)?
        } else {
            scan(s, i, crate::syntax::is_host_char)
        };
        let host = HostKind::of(&s[host_start..host_end]).ok_or(ValueError::BadSentBy)?;
        i = skip_ws(s, host_end);
        let mut port = None;
        if s.get(i) == Some(&b':') {
            let p = skip_ws(s, i + 1);
            let end = scan(s, p, |b| b.is_ascii_digit());
            port = Some(parse_port(&s[p..end]).ok_or(ValueError::BadSentBy)?);
            i = end;
        }
        Ok(ViaLayout {
            version,
            transport,
            host,
            host_raw: (host_start, host_end),
            port,
            params_start: i,
        })
    }
}

impl Via {
    /// Parses one Via value (one element of a possibly comma-separated header).
    pub fn parse(v: Bytes) -> Result<Via, ValueError> {
        let layout = ViaLayout::scan(&v)?;
        let params = Params::parse_header(&v, layout.params_start).ok_or(ValueError::BadParam)?;
        let (a, b) = layout.host_raw;
        Ok(Via {
            version: v.slice(layout.version.0..layout.version.1),
            transport: Transport::parse(&v, &v[layout.transport.0..layout.transport.1]),
            host: layout.host.build(&v, &v[a..b]),
            host_raw: v.slice(a..b),
            port: layout.port,
            params,
            raw: v,
        })
    }

    /// What [`Via::parse`] would say of `v`, without building the Via.
    pub(crate) fn check(v: &[u8]) -> Result<(), ValueError> {
        let layout = ViaLayout::scan(v)?;
        scan_header(v, layout.params_start, &mut Check).ok_or(ValueError::BadParam)
    }

    /// Every Via value in a header's value (`v: a, b`).
    pub fn parse_list(v: &Bytes) -> impl Iterator<Item = Result<Via, ValueError>> + '_ {
        parse_list(v, Via::parse)
    }

    /// The value as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The value as received, as a cheap handle.
    pub fn to_bytes(&self) -> Bytes {
        self.raw.clone()
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&[u8]> {
        self.params.get("branch").flatten()
    }

    /// `received=` (RFC 3261 section 18.2.1).
    pub fn received(&self) -> Option<&[u8]> {
        self.params.get("received").flatten()
    }

    /// `rport` (RFC 3581): `Some(None)` when asked for, `Some(Some(port))` once filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| {
            v.and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse().ok())
        })
    }
}

impl fmt::Debug for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Via({})", String::from_utf8_lossy(&self.raw))
    }
}

fn slash(s: &[u8], i: usize) -> Result<usize, ValueError> {
    let i = skip_ws(s, i);
    if s.get(i) != Some(&b'/') {
        return Err(ValueError::BadProtocol);
    }
    Ok(skip_ws(s, i + 1))
}

/// A name-addr or addr-spec with header parameters: the value of `From`, `To`, `Contact`,
/// `Route`, `Record-Route`, `Refer-To`, ...
#[derive(Clone, PartialEq, Eq)]
pub struct NameAddr {
    raw: Bytes,
    /// The display name as written (a quoted string keeps its quotes), if any.
    pub display: Option<Bytes>,
    /// The URI.
    pub uri: Uri,
    /// Whether the URI was in `<>`.
    pub bracketed: bool,
    /// The header parameters (`tag`, `expires`, `q`, ...), never the URI's own.
    pub params: Params,
}

/// Where the parts of a name-addr or addr-spec value lie, found without building anything.
struct NameAddrLayout {
    display: Option<(usize, usize)>,
    uri: (usize, usize),
    bracketed: bool,
    params_start: usize,
}

impl NameAddrLayout {
    /// Scans one value up to its parameters; the URI is not yet looked into.
    fn scan(s: &[u8]) -> Result<NameAddrLayout, ValueError> {
        let start = skip_ws(s, 0);
        if start == s.len() {
            return Err(ValueError::Empty);
        }
        let mut display = None;
        let mut i = start;
        let lt = if s[i] == b'"' {
            let end = quoted_end(s, i).ok_or(ValueError::UnterminatedQuote)?;
            display = Some((i, end));
            i = skip_ws(s, end);
            if s.get(i) != Some(&b'<') {
                return Err(ValueError::Brackets);
            }
            Some(i)
        } else {
            // `*(token LWS) <`: tokens and whitespace up to '<', or no '<' (an addr-spec).
            // Unquoted UTF-8 names (`Jürgen <sip:...>`) are accepted: phones send them.
            let run = scan(s, i, |b| is_token(b) || is_ws(b) || b >= 0x80);
            if s.get(run) == Some(&b'<') {
                let name = s[i..run].trim_ascii();
                if !name.is_empty() {
                    display = Some((i, i + name.len()));
                }
                Some(run)
            } else if s[i..]
                .iter()
                .take_while(|&&b| b != b';' && b != b'"')
                .any(|&b| b == b'<')
            {
                // Something that is neither a token nor a quoted string before '<' (a '<'
                // inside a parameter's quoted value, `+sip.instance="<urn:...>"`, is not one).
                return Err(ValueError::BadDisplayName);
            } else {
                None
            }
        };
        let (uri, bracketed, params_start) = match lt {
            Some(lt) => {
                let gt = memchr::memchr(b'>', &s[lt..])
                    .map(|p| lt + p)
                    .ok_or(ValueError::Brackets)?;
                if memchr::memchr2(b' ', b'\t', &s[lt + 1..gt]).is_some() {
                    return Err(ValueError::SpaceInUri);
                }
                ((lt + 1, gt), true, gt + 1)
            }
            None => {
                // addr-spec: everything after the first ';' is a header parameter (RFC 3261
                // section 20.10), and '?' or ',' would need the brackets.
                let end = scan(s, i, |b| !is_ws(b) && b != b';');
                if memchr::memchr2(b'?', b',', &s[i..end]).is_some() {
                    return Err(ValueError::UnbracketedUri);
                }
                let next = skip_ws(s, end);
                if next < s.len() && s[next] != b';' {
                    return Err(ValueError::SpaceInUri);
                }
                ((i, end), false, end)
            }
        };
        Ok(NameAddrLayout {
            display,
            uri,
            bracketed,
            params_start,
        })
    }
}

impl NameAddr {
    /// Parses one value.
    pub fn parse(v: Bytes) -> Result<NameAddr, ValueError> {
        let layout = NameAddrLayout::scan(&v)?;
        let (a, b) = layout.uri;
        let uri = Uri::parse(v.slice(a..b)).map_err(|_| ValueError::BadUri)?;
        let params = Params::parse_header(&v, layout.params_start).ok_or(ValueError::BadParam)?;
        Ok(NameAddr {
            display: layout.display.map(|(a, b)| v.slice(a..b)),
            uri,
            bracketed: layout.bracketed,
            params,
            raw: v,
        })
    }

    /// What [`NameAddr::parse`] would say of `v`, without building the address.
    pub(crate) fn check(v: &[u8]) -> Result<(), ValueError> {
        let layout = NameAddrLayout::scan(v)?;
        let (a, b) = layout.uri;
        Uri::check(&v[a..b]).map_err(|_| ValueError::BadUri)?;
        scan_header(v, layout.params_start, &mut Check).ok_or(ValueError::BadParam)
    }

    /// Every value of a list header (`Contact: <a>, <b>`); empty elements are errors.
    pub fn parse_list(v: &Bytes) -> impl Iterator<Item = Result<NameAddr, ValueError>> + '_ {
        parse_list(v, NameAddr::parse)
    }

    /// The value exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The value exactly as received, as a cheap handle.
    pub fn to_bytes(&self) -> Bytes {
        self.raw.clone()
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&[u8]> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Debug for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameAddr({})", String::from_utf8_lossy(&self.raw))
    }
}

/// The value of a `Contact` header: `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactList {
    /// `Contact: *` (only in a REGISTER that removes every binding).
    Wildcard,
    /// The addresses, in order.
    Addrs(Vec<NameAddr>),
}

/// `type/subtype;params` of Content-Type, or one element of Accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The type (`application`), as written.
    pub kind: Bytes,
    /// The subtype (`sdp`), as written.
    pub subtype: Bytes,
    /// The parameters.
    pub params: Params,
}

impl MediaType {
    /// Parses `type/subtype *(;param)`, with whitespace allowed around `/`.
    pub fn parse(v: Bytes) -> Result<MediaType, ValueError> {
        let s = &v[..];
        let i = skip_ws(s, 0);
        let kind_end = scan(s, i, is_token);
        let slash_at = skip_ws(s, kind_end);
        if kind_end == i || s.get(slash_at) != Some(&b'/') {
            return Err(ValueError::BadToken);
        }
        let sub = skip_ws(s, slash_at + 1);
        let sub_end = scan(s, sub, is_token);
        if sub_end == sub {
            return Err(ValueError::BadToken);
        }
        let params = Params::parse_header(&v, sub_end).ok_or(ValueError::BadParam)?;
        Ok(MediaType {
            kind: v.slice(i..kind_end),
            subtype: v.slice(sub..sub_end),
            params,
        })
    }

    /// Whether this is `kind/subtype` (case-insensitive; `*` matches anything).
    pub fn matches(&self, kind: &str, subtype: &str) -> bool {
        (&self.kind[..] == b"*" || self.kind.eq_ignore_ascii_case(kind.as_bytes()))
            && (&self.subtype[..] == b"*" || self.subtype.eq_ignore_ascii_case(subtype.as_bytes()))
    }
}

/// Each comma-separated element of a list header, parsed; an empty element is an error.
fn parse_list<'a, T: 'a>(
    v: &'a Bytes,
    parse: fn(Bytes) -> Result<T, ValueError>,
) -> impl Iterator<Item = Result<T, ValueError>> + 'a {
    split_commas(v).map(move |(a, b)| {
        if a == b {
            Err(ValueError::Empty)
        } else {
            parse(v.slice(a..b))
        }
    })
}

/// The comma-separated tokens of `Require`, `Supported`, `Allow`, ...; `Err` on a non-token.
pub fn tokens(v: &Bytes) -> Result<Vec<Bytes>, ValueError> {
    split_commas(v)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| {
            if is_token_str(&v[a..b]) {
                Ok(v.slice(a..b))
            } else {
                Err(ValueError::BadToken)
            }
        })
        .collect()
}

/// A Call-ID: RFC 3261 says `word [ "@" word ]`, but a Call-ID is only ever compared byte
/// for byte, and real stacks put `=`, `#`, `;` or a second `@` in theirs: any visible ASCII
/// is accepted, whitespace and control characters are not.
pub fn is_call_id(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn via_with_odd_whitespace() {
        let via = Via::parse(b("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw")).unwrap();
        assert_eq!(via.transport, Transport::Udp);
        assert_eq!(via.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(via.branch(), Some(&b"390skdjuw"[..]));
        let list: Vec<_> = Via::parse_list(&b(
            "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  ,  SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        ))
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].transport, Transport::Tcp);
        assert_eq!(list[0].branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert_eq!(list[1].branch(), Some(&b"z9hG4bK30239"[..]));
    }

    #[test]
    fn via_ipv6_port_rport() {
        let via = Via::parse(b("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx;rport")).unwrap();
        assert_eq!(via.host, Host::V6("2001:db8::9".parse().unwrap()));
        assert_eq!(via.port, Some(5061));
        assert_eq!(via.rport(), Some(None));
        let via = Via::parse(b("SIP/2.0/UDP h.example.com : 5070 ;rport=1234")).unwrap();
        assert_eq!(via.port, Some(5070));
        assert_eq!(via.rport(), Some(Some(1234)));
    }

    #[test]
    fn via_refusals() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP [::1",
        ] {
            assert!(Via::parse(b(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(b(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>  ;  tag = 98asjd8",
        ))
        .unwrap();
        assert_eq!(a.display.as_deref(), Some(&b"\"J Rosenberg \\\\\\\"\""[..]));
        assert_eq!(a.tag(), Some(&b"98asjd8"[..]));
        let a = NameAddr::parse(b("caller<sip:caller@example.com>;tag=323")).unwrap();
        assert_eq!(a.display.as_deref(), Some(&b"caller"[..]));
        let a = NameAddr::parse(b("sip:+19725552222@gw1.example.net;unknownparam")).unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.uri.as_bytes(), b"sip:+19725552222@gw1.example.net");
        assert_eq!(a.params.get("unknownparam"), Some(None));
        let a = NameAddr::parse(b("<sip:+19725552222@gw1.example.net;unknownparam>")).unwrap();
        assert!(a.params.is_empty());
        assert_eq!(a.uri.as_sip().unwrap().param("unknownparam"), Some(None));
    }

    #[test]
    fn what_phones_send() {
        let a = NameAddr::parse(b("Jürgen <sip:j@example.com>;tag=1")).unwrap();
        assert_eq!(a.display.as_deref(), Some("Jürgen".as_bytes()));
        let a = NameAddr::parse(b(
            "sip:a@192.0.2.4:5060;+sip.instance=\"<urn:uuid:0001>\";reg-id=1",
        ))
        .unwrap();
        assert_eq!(a.uri.as_bytes(), b"sip:a@192.0.2.4:5060");
        assert_eq!(a.params.get("reg-id"), Some(Some(&b"1"[..])));
        let a = NameAddr::parse(b("<sip:*72#1002@pbx_1.example.com>")).unwrap();
        assert_eq!(a.uri.as_sip().unwrap().user(), Some(&b"*72#1002"[..]));
    }

    #[test]
    fn name_addr_refusals() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:joe@example.org",
            "sip:a@b c",
        ] {
            assert!(NameAddr::parse(b(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_check_agrees_with_a_parse() {
        // Contacts and lower Vias are only checked when a message arrives: the check must
        // give the parse's verdict, fault included.
        for v in [
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>  ;  tag = 98asjd8",
            "caller<sip:caller@example.com>;tag=323",
            "sip:+19725552222@gw1.example.net;unknownparam",
            "<sip:a@192.0.2.4:5060;transport=TLS;ob>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"",
            "Jürgen <sip:j@example.com>;tag=1",
            "<tel:+1-972-555-2222>",
            "<http://x y>",
            "<sip:a@b;;lr>",
            "<sip:a@[::1>",
            "<sip:a@b>;;",
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:joe@example.org",
            "sip:a@b c",
            "",
            "  ",
        ] {
            assert_eq!(
                NameAddr::check(v.as_bytes()),
                NameAddr::parse(b(v)).map(drop),
                "{v}"
            );
        }
        for v in [
            "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw",
            "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8",
            "SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx;rport",
            "SIP/2.0/UDP h.example.com : 5070 ;rport=1234",
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP 300.1.1.1",
            "SIP/2.0/UDP -a.example.com",
        ] {
            assert_eq!(Via::check(v.as_bytes()), Via::parse(b(v)).map(drop), "{v}");
        }
    }

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse(&b("0009   INVITE")).unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert_eq!(
            CSeq::parse(&b("36893488147419103232 REGISTER")),
            Err(ValueError::Number)
        );
        assert!(CSeq::parse(&b("1INVITE")).is_err());
        assert!(CSeq::parse(&b("1 INV ITE")).is_err());
    }

    #[test]
    fn call_ids() {
        assert!(is_call_id(b"wsinv.ndaksdj@192.0.2.1"));
        assert!(is_call_id(b"esc01.239409asdfakjkn23onasd0-3234"));
        assert!(is_call_id(b"a=b#c;d@e@f"));
        assert!(!is_call_id(b"a b"));
        assert!(!is_call_id(b"a\x01"));
        assert!(!is_call_id(b""));
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse(b("multipart/signed;protocol=\"application/pkcs7-signature\"; micalg=sha1; boundary=boundary42")).unwrap();
        assert!(m.matches("multipart", "signed"));
        assert_eq!(m.params.get("boundary"), Some(Some(&b"boundary42"[..])));
        assert!(MediaType::parse(b("application")).is_err());
    }
}
