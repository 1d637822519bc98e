//! URIs: SIP and SIPS URIs parsed into their parts (RFC 3261 section 19.1), any other scheme
//! kept as an opaque absolute URI. Either way the bytes received are kept and printed as
//! they came: a URI the switch passes on is byte-for-byte the one it was given.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use crate::params::{Check, Params, Sink, scan_uri};
use crate::syntax::{
    HostChars, is_escaped_str, is_hnv_char, is_host_char, is_password_char, is_user_char,
    parse_ipv4, parse_port, scan, scan_escaped, scan_host,
};

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` at the start.
    #[error("no URI scheme")]
    NoScheme,
    /// Whitespace, `<`, `>` or a control character inside the URI.
    #[error("whitespace or a forbidden character inside the URI")]
    ForbiddenCharacter,
    /// The user or password part holds a character it may not, or a broken `%` escape.
    #[error("bad user part")]
    BadUser,
    /// The host is missing or is not a hostname, IPv4 address or bracketed IPv6 reference.
    #[error("bad host")]
    BadHost,
    /// The port is not a number from 0 to 65535.
    #[error("bad port")]
    BadPort,
    /// A `;name=value` URI parameter is malformed.
    #[error("bad URI parameter")]
    BadParameter,
    /// The `?name=value&...` headers part is malformed.
    #[error("bad URI headers")]
    BadHeaders,
}

/// A URI as received: a SIP/SIPS URI in parts, or another scheme kept whole.
// Nearly every URI is a SIP URI: boxing it would add an allocation to most of them.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absolute URI (`tel:`, `http:`, `urn:`, ...), not interpreted.
    Other(OtherUri),
}

impl Uri {
    /// Parses `raw`, which must be exactly the URI (no surrounding whitespace or brackets).
    pub fn parse(raw: Bytes) -> Result<Uri, UriError> {
        match Scheme::of(&raw)? {
            Scheme::Sip(colon) => {
                let mut params = Params::default();
                let layout = SipLayout::scan(&raw, colon, &mut params)?;
                Ok(Uri::Sip(layout.build(raw, params)))
            }
            Scheme::Other(colon) => Ok(Uri::Other(OtherUri {
                raw,
                scheme_len: colon,
            })),
        }
    }

    /// What [`Uri::parse`] would say of `raw`, without building the URI.
    pub(crate) fn check(raw: &[u8]) -> Result<(), UriError> {
        match Scheme::of(raw)? {
            Scheme::Sip(colon) => SipLayout::scan(raw, colon, &mut Check).map(drop),
            Scheme::Other(_) => Ok(()),
        }
    }

    /// The URI exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Uri::Sip(u) => &u.raw,
            Uri::Other(u) => &u.raw,
        }
    }

    /// The URI exactly as received, as a cheap handle.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Uri::Sip(u) => u.raw.clone(),
            Uri::Other(u) => u.raw.clone(),
        }
    }

    /// The scheme as received (`sip`, `SIPS`, `tel`, ...).
    pub fn scheme(&self) -> &[u8] {
        match self {
            Uri::Sip(u) => &u.raw[..u.scheme_len()],
            Uri::Other(u) => &u.raw[..u.scheme_len],
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nearly every URI is ASCII: the strict check is the fast one.
        match std::str::from_utf8(self.as_bytes()) {
            Ok(text) => f.write_str(text),
            Err(_) => f.write_str(&String::from_utf8_lossy(self.as_bytes())),
        }
    }
}

/// A URI's scheme, checked, and where its colon is.
enum Scheme {
    Sip(usize),
    Other(usize),
}

impl Scheme {
    fn of(raw: &[u8]) -> Result<Scheme, UriError> {
        // Nearly every URI is `sip:` or `sips:`: no search for the colon.
        match raw {
            [s, i, p, b':', ..] if [*s, *i, *p].eq_ignore_ascii_case(b"sip") => {
                return Ok(Scheme::Sip(3));
            }
            [s, i, p, s2, b':', ..] if [*s, *i, *p, *s2].eq_ignore_ascii_case(b"sips") => {
                return Ok(Scheme::Sip(4));
            }
            _ => {}
        }
        let colon = memchr::memchr(b':', raw).ok_or(UriError::NoScheme)?;
        let scheme = &raw[..colon];
        if !is_scheme(scheme) {
            return Err(UriError::NoScheme);
        }
        if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
            // Every part's scan admits only its own characters, so whitespace, quotes and
            // brackets are refused there.
            Ok(Scheme::Sip(colon))
        } else if raw
            .iter()
            .any(|&b| b <= b' ' || b == b'<' || b == b'>' || b == b'"' || b == 0x7f)
        {
            Err(UriError::ForbiddenCharacter)
        } else {
            Ok(Scheme::Other(colon))
        }
    }
}

/// A URI of a scheme the stack does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUri {
    raw: Bytes,
    scheme_len: usize,
}

/// The host of a SIP URI or a Via `sent-by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A domain name, as received (compare case-insensitively).
    Name(Bytes),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference; it was written in brackets.
    V6(Ipv6Addr),
}

/// What a host is, found without building it (a hostname would be a slice of the message).
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostKind {
    Name,
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostKind {
    /// Checks `s`: a bracketed IPv6 reference, an IPv4 address or a hostname.
    pub(crate) fn of(s: &[u8]) -> Option<HostKind> {
        if s.first()? == &b'[' {
            let inner = s.strip_prefix(b"[")?.strip_suffix(b"]")?;
            let text = std::str::from_utf8(inner).ok()?;
            return text.parse().ok().map(HostKind::V6);
        }
        match scan_host(s) {
            HostChars::Numeric => parse_ipv4(s).map(HostKind::V4),
            HostChars::Name => Some(HostKind::Name),
            HostChars::Invalid => None,
        }
    }

    /// The host, `s` being the part of `src` it was found in.
    pub(crate) fn build(self, src: &Bytes, s: &[u8]) -> Host {
        match self {
            HostKind::Name => Host::Name(src.slice_ref(s)),
            HostKind::V4(a) => Host::V4(a),
            HostKind::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(&String::from_utf8_lossy(n)),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI in parts. Every part is a slice of the bytes received, escapes and
/// all; [`SipUri::as_bytes`] gives the URI back unchanged.
#[derive(Clone, PartialEq, Eq)]
pub struct SipUri {
    raw: Bytes,
    secure: bool,
    // Parts as offsets into `raw` (a slice would cost two reference-count updates).
    user: Option<Span>,
    password: Option<Span>,
    host: Host,
    host_raw: Span,
    port: Option<u16>,
    params: Params,
    headers: Option<Span>,
}

/// `start..end` in a URI's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(u32, u32);

impl Span {
    /// `start..end`; URIs live in messages capped far below 4 GiB.
    fn new(start: usize, end: usize) -> Span {
        Span(start as u32, end as u32)
    }

    /// The span of `part`, a subslice of `whole`.
    fn of(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        // URIs live in messages capped far below 4 GiB.
        Span(start as u32, (start + part.len()) as u32)
    }

    fn get<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.0 as usize..self.1 as usize]
    }
}

/// Where the parts of a SIP URI lie in its bytes, found in one pass that builds nothing.
struct SipLayout {
    secure: bool,
    user: Option<Span>,
    password: Option<Span>,
    host: HostKind,
    host_raw: Span,
    port: Option<u16>,
    params: Span,
    headers: Option<Span>,
}

impl SipLayout {
    /// Scans `raw`, whose scheme ends at `colon`; the URI parameters go to `params`.
    fn scan(raw: &[u8], colon: usize, params: &mut impl Sink) -> Result<SipLayout, UriError> {
        let secure = raw[..colon].eq_ignore_ascii_case(b"sips");
        let rest = colon + 1;
        // '@' may not appear unescaped anywhere after the userinfo, so the first one ends it.
        let at = memchr::memchr(b'@', &raw[rest..]).map(|p| rest + p);
        let (user, password, host_start) = match at {
            Some(at) => {
                // user [":" password] "@": each a run of its characters and escapes, the user
                // not empty.
                let user_end = scan_escaped(raw, rest, is_user_char).ok_or(UriError::BadUser)?;
                if user_end == rest {
                    return Err(UriError::BadUser);
                }
                let password = if user_end == at {
                    None
                } else if raw[user_end] == b':' {
                    let end = scan_escaped(raw, user_end + 1, is_password_char)
                        .ok_or(UriError::BadUser)?;
                    if end != at {
                        return Err(UriError::BadUser);
                    }
                    Some(Span::new(user_end + 1, at))
                } else {
                    return Err(UriError::BadUser);
                };
                (Some(Span::new(rest, user_end)), password, at + 1)
            }
            None => (None, None, rest),
        };
        let (host, host_raw, port, hostport_end) = match Self::plain_hostport(raw, host_start) {
            Some(found) => found,
            None => Self::hostport(raw, host_start)?,
        };
        let after = &raw[hostport_end..];
        let (params_bytes, headers) = match after.iter().position(|&b| b == b'?') {
            Some(q) => (&after[..q], Some(&after[q + 1..])),
            None => (after, None),
        };
        scan_uri(params_bytes, params).ok_or(UriError::BadParameter)?;
        if let Some(h) = headers
            && !valid_uri_headers(h)
        {
            return Err(UriError::BadHeaders);
        }
        Ok(SipLayout {
            secure,
            user,
            password,
            host,
            host_raw,
            port,
            params: Span::of(raw, params_bytes),
            headers: headers.map(|h| Span::of(raw, h)),
        })
    }

    /// The host and port that start at `start`, read in one pass when they are a hostname or
    /// IPv4 address, an optional `:port`, and then the end, `;` or `?` (nearly every URI).
    /// `None` for anything else, which [`SipLayout::hostport`] then reads, faults and all.
    fn plain_hostport(raw: &[u8], start: usize) -> Option<(HostKind, Span, Option<u16>, usize)> {
        let host_end = scan(raw, start, is_host_char);
        let (port, end) = if raw.get(host_end) == Some(&b':') {
            let digits_end = scan(raw, host_end + 1, |b| b.is_ascii_digit());
            (
                Some(parse_port(&raw[host_end + 1..digits_end])?),
                digits_end,
            )
        } else {
            (None, host_end)
        };
        if !matches!(raw.get(end), None | Some(b';' | b'?')) {
            return None;
        }
        let host = HostKind::of(&raw[start..host_end])?;
        Some((host, Span::new(start, host_end), port, end))
    }

    /// The host and port that start at `start`, in general: up to the first `;` or `?` (past a
    /// bracketed IPv6 reference), the port after the last `:`.
    fn hostport(
        raw: &[u8],
        start: usize,
    ) -> Result<(HostKind, Span, Option<u16>, usize), UriError> {
        let tail = &raw[start..];
        let hostport_end = if tail.first() == Some(&b'[') {
            let close = memchr::memchr(b']', tail).ok_or(UriError::BadHost)?;
            close
                + 1
                + memchr::memchr2(b';', b'?', &tail[close + 1..]).unwrap_or(tail.len() - close - 1)
        } else {
            memchr::memchr2(b';', b'?', tail).unwrap_or(tail.len())
        };
        let hostport = &tail[..hostport_end];
        let (host_bytes, port) = split_host_port(hostport).ok_or(UriError::BadPort)?;
        let host = HostKind::of(host_bytes).ok_or(UriError::BadHost)?;
        Ok((host, Span::of(raw, host_bytes), port, start + hostport_end))
    }

    /// The URI, `params` being what [`SipLayout::scan`] put in it.
    fn build(self, raw: Bytes, mut params: Params) -> SipUri {
        if !params.is_empty() {
            params.set_src(raw.slice(self.params.0 as usize..self.params.1 as usize));
        }
        SipUri {
            secure: self.secure,
            user: self.user,
            password: self.password,
            host: self.host.build(&raw, self.host_raw.get(&raw)),
            host_raw: self.host_raw,
            port: self.port,
            params,
            headers: self.headers,
            raw,
        }
    }
}

impl SipUri {
    fn scheme_len(&self) -> usize {
        if self.secure { 4 } else { 3 }
    }

    /// The URI exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// `sips:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The user part, escapes kept (`null-%00-null`).
    pub fn user(&self) -> Option<&[u8]> {
        self.user.map(|s| s.get(&self.raw))
    }

    /// The user part with `%HH` escapes decoded (for comparisons and lookups).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user().map(unescape)
    }

    /// The password part, if any (deprecated by RFC 3261, but legal).
    pub fn password(&self) -> Option<&[u8]> {
        self.password.map(|s| s.get(&self.raw))
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host exactly as written (`Example.COM`, `[2001:db8::10]`).
    pub fn host_raw(&self) -> &[u8] {
        self.host_raw.get(&self.raw)
    }

    /// The port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters (`;transport=tcp;lr`), names and values as written.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// A URI parameter by name (case-insensitive): `Some(None)` for a parameter without value.
    pub fn param(&self, name: &str) -> Option<Option<&[u8]>> {
        self.params.get(name)
    }

    /// The `?`-headers part, without the `?`.
    pub fn headers(&self) -> Option<&[u8]> {
        self.headers.map(|s| s.get(&self.raw))
    }
}

impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SipUri({})", String::from_utf8_lossy(&self.raw))
    }
}

/// Decodes `%HH` escapes; malformed escapes are kept as they are.
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn is_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn valid_uri_headers(s: &[u8]) -> bool {
    s.split(|&b| b == b'&').all(|h| {
        let mut kv = h.splitn(2, |&b| b == b'=');
        let name = kv.next().unwrap_or_default();
        let value = kv.next().unwrap_or_default();
        !name.is_empty() && is_escaped_str(name, is_hnv_char) && is_escaped_str(value, is_hnv_char)
    })
}

/// Splits `host[:port]` (the host possibly a bracketed IPv6 reference). `None` for a bad port.
pub(crate) fn split_host_port(s: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let colon = if s.first() == Some(&b'[') {
        let close = s.iter().position(|&b| b == b']')?;
        match s.get(close + 1) {
            None => return Some((s, None)),
            Some(b':') => close + 1,
            Some(_) => return None,
        }
    } else {
        match s.iter().rposition(|&b| b == b':') {
            Some(c) => c,
            None => return Some((s, None)),
        }
    };
    let port = parse_port(&s[colon + 1..])?;
    Some((&s[..colon], Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(Bytes::copy_from_slice(s.as_bytes())) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn parts() {
        let u = sip("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=hi&x=1");
        assert!(u.is_secure());
        assert_eq!(u.user(), Some(&b"alice"[..]));
        assert_eq!(u.password(), Some(&b"secret"[..]));
        assert_eq!(u.host(), &Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.param("TRANSPORT"), Some(Some(&b"tcp"[..])));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers(), Some(&b"subject=hi&x=1"[..]));
    }

    #[test]
    fn hosts() {
        for (host, kind) in [
            ("example.com", Some("name")),
            ("example.com.", Some("name")),
            ("a-b.c_d.example", Some("name")),
            ("192.0.2.1", Some("v4")),
            ("[2001:db8::1]", Some("v6")),
            ("1.2.3", None),
            ("256.0.0.1", None),
            ("01.2.3.4", None),
            ("-a.example.com", None),
            ("a-.example.com", None),
            ("a..b", None),
            (".", None),
            (".a", None),
            ("a b", None),
            ("", None),
            ("[::1", None),
        ] {
            let found = HostKind::of(host.as_bytes()).map(|k| match k {
                HostKind::Name => "name",
                HostKind::V4(_) => "v4",
                HostKind::V6(_) => "v6",
            });
            assert_eq!(found, kind, "{host}");
        }
    }

    #[test]
    fn escaped_user_is_kept_and_decodable() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user(), Some(&b"sips%3Auser%40example.com"[..]));
        assert_eq!(u.user_unescaped().unwrap(), b"sips:user@example.com");
        assert_eq!(u.host(), &Host::Name(Bytes::from_static(b"example.net")));
        assert_eq!(u.as_bytes(), b"sip:sips%3Auser%40example.com@example.net");
    }

    #[test]
    fn user_may_hold_semicolons() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert!(u.params().is_empty());
    }

    #[test]
    fn ipv4_and_hostname_ports() {
        assert_eq!(sip("sip:192.0.2.1:5060").port(), Some(5060));
        assert_eq!(
            sip("sip:192.0.2.1").host(),
            &Host::V4(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(sip("sip:example.com.").port(), None);
    }

    #[test]
    fn refusals() {
        for bad in [
            "sip:",
            "sip:user@",
            "sip:us er@example.com",
            "sip:user@example.com:99999",
            "sip:user@[::1",
            "sip:user@[::1]x",
            "sip:%zz@example.com",
            "sip:user@example.com;;lr",
            "sip:user@example.com?",
            "<sip:user@example.com>",
            "nocolon",
        ] {
            let verdict = Uri::parse(Bytes::copy_from_slice(bad.as_bytes()));
            assert!(verdict.is_err(), "{bad} was accepted");
            assert_eq!(Uri::check(bad.as_bytes()), verdict.map(drop), "{bad}");
        }
    }

    #[test]
    fn faults_are_named_in_the_same_order_on_every_path() {
        // The port is read before the host, the user before either (the one-pass reading of
        // a plain host and the general one must agree; these were checked against the parser
        // before the one-pass reading existed).
        for (uri, fault) in [
            ("sip:a..b:5060", UriError::BadHost),
            ("sip:u%4@h", UriError::BadUser),
            ("sip:u:p:q@h", UriError::BadUser),
            ("sip:@h", UriError::BadUser),
            ("sip:h:", UriError::BadPort),
            ("sip:u@h:99999", UriError::BadPort),
            ("sip:u@h:5060x", UriError::BadPort),
            ("sip:h:5060:5061", UriError::BadHost),
            ("sip:u@[::1", UriError::BadHost),
            ("sip:u@", UriError::BadHost),
            ("sip:u@:5060", UriError::BadHost),
            ("sip:u@-h", UriError::BadHost),
            ("sip:u@h-", UriError::BadHost),
            ("sip:u@1.2.3:5", UriError::BadHost),
            ("sip:u@01.2.3.4", UriError::BadHost),
            ("sip:u@h:65535;", UriError::BadParameter),
            ("sip:u@h;lr;;x", UriError::BadParameter),
            ("sip:u@h?", UriError::BadHeaders),
        ] {
            let verdict = Uri::parse(Bytes::copy_from_slice(uri.as_bytes()));
            assert_eq!(verdict.as_ref().err(), Some(&fault), "{uri}");
            assert_eq!(Uri::check(uri.as_bytes()), Err(fault), "{uri}");
        }
        let u = sip("sip:u:@h");
        assert_eq!((u.user(), u.password()), (Some(&b"u"[..]), Some(&b""[..])));
        let u = sip("sip:a:b@h:1;x?y=z&w=1");
        assert_eq!(u.port(), Some(1));
        assert_eq!(u.param("x"), Some(None));
        assert_eq!(u.headers(), Some(&b"y=z&w=1"[..]));
        let u = sip("sip:u@[::1]:5060;lr");
        assert_eq!((u.host_raw(), u.port()), (&b"[::1]"[..], Some(5060)));
    }

    #[test]
    fn other_schemes_are_opaque() {
        for s in [
            "tel:+1-972-555-2222",
            "isbn:2983792873",
            "http://www.example.com",
            "soap.beep://192.0.2.103:3002",
        ] {
            let u = Uri::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap();
            assert!(u.as_sip().is_none());
            assert_eq!(u.as_bytes(), s.as_bytes());
        }
    }
}
