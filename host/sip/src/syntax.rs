//! Character classes and small scanners from RFC 3261 section 25, shared by the parsers.
//!
//! Header values reach the typed parsers already unfolded (a folded line is one SP), so "LWS"
//! here is only SP and HTAB.

// One table classifies every byte for the scanners: a lookup and a mask per byte, instead
// of a chain of comparisons (the parser's hot loops are these scans).
const TOKEN: u8 = 1;
/// A token character or `:` (a header parameter's value may be a host and port).
const TOKEN_OR_COLON: u8 = 2;
const UNRESERVED: u8 = 4;
const USER: u8 = 8;
const PASSWORD: u8 = 16;
const PARAM: u8 = 32;
const HNV: u8 = 64;
const HOST: u8 = 128;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mut m = 0;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            m |= TOKEN | TOKEN_OR_COLON;
        }
        if c == b':' {
            m |= TOKEN_OR_COLON;
        }
        if alnum
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            m |= UNRESERVED | USER | PASSWORD | PARAM | HNV;
        }
        // '#' is not allowed unescaped, but phones send feature codes (`*72#1002`) as is.
        if matches!(
            c,
            b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b'#'
        ) {
            m |= USER;
        }
        if matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
            m |= PASSWORD;
        }
        if matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            m |= PARAM;
        }
        if matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            m |= HNV;
        }
        // '_' is not in the hostname grammar, but internal DNS names have it.
        if alnum || c == b'-' || c == b'.' || c == b'_' {
            m |= HOST;
        }
        t[b] = m;
        b += 1;
    }
    t
}

/// What a host is, by its characters (see [`scan_host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostChars {
    /// Digits and dots only: an IPv4 address, or nothing.
    Numeric,
    /// A hostname.
    Name,
    /// Neither.
    Invalid,
}

// States of the hostname automaton: after a dot or at the start (`*_DOT`), inside a label,
// after a '-' inside a label; `N_*` while every byte so far is a digit or a dot.
const N_DOT: u8 = 0;
const N_LABEL: u8 = 1;
const A_DOT: u8 = 2;
const A_LABEL: u8 = 3;
const A_DASH: u8 = 4;
const DEAD: u8 = 5;
const HOST_STATES: usize = 8;

/// The automaton's moves, `[state << 8 | byte]`, one lookup per byte.
static HOST_MOVES: [u8; HOST_STATES * 256] = host_moves();

const fn host_moves() -> [u8; HOST_STATES * 256] {
    let mut t = [DEAD; HOST_STATES * 256];
    let mut state = 0;
    while state < HOST_STATES {
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            let s = state as u8;
            t[state << 8 | b] = match c {
                b'0'..=b'9' => match s {
                    N_DOT | N_LABEL => N_LABEL,
                    A_DOT | A_LABEL | A_DASH => A_LABEL,
                    _ => DEAD,
                },
                // '_' is not in the hostname grammar, but internal DNS names have it.
                _ if c.is_ascii_alphabetic() || c == b'_' => match s {
                    N_DOT | N_LABEL | A_DOT | A_LABEL | A_DASH => A_LABEL,
                    _ => DEAD,
                },
                // A '-' only inside a label; a '.' only after a label that ends in no '-'.
                b'-' => match s {
                    N_LABEL | A_LABEL | A_DASH => A_DASH,
                    _ => DEAD,
                },
                b'.' => match s {
                    N_LABEL => N_DOT,
                    A_LABEL => A_DOT,
                    _ => DEAD,
                },
                _ => DEAD,
            };
            b += 1;
        }
        state += 1;
    }
    t
}

/// Checks a host's characters in one pass: `hostname = *( domainlabel "." ) toplabel [ "." ]`,
/// labels of alphanum (and `_`) with inner `-`, which also tells an IPv4 address (digits and
/// dots only, read by [`parse_ipv4`]).
pub(crate) fn scan_host(s: &[u8]) -> HostChars {
    let mut state = N_DOT;
    for &b in s {
        state = HOST_MOVES[(usize::from(state) << 8 | usize::from(b)) % HOST_MOVES.len()];
    }
    match state {
        N_DOT | N_LABEL => HostChars::Numeric,
        A_DOT | A_LABEL => HostChars::Name,
        _ => HostChars::Invalid,
    }
}

#[inline]
fn class(b: u8, mask: u8) -> bool {
    CLASS[b as usize] & mask != 0
}

/// `token` characters: alphanum and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token(b: u8) -> bool {
    class(b, TOKEN)
}

/// A token character or `:`.
#[inline]
pub(crate) fn is_token_or_colon(b: u8) -> bool {
    class(b, TOKEN_OR_COLON)
}

/// `user = 1*( unreserved / escaped / user-unreserved )`, user-unreserved = `&=+$,;?/`.
#[inline]
pub(crate) fn is_user_char(b: u8) -> bool {
    class(b, USER)
}

/// `password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )`.
#[inline]
pub(crate) fn is_password_char(b: u8) -> bool {
    class(b, PASSWORD)
}

/// `paramchar = param-unreserved / unreserved / escaped`, param-unreserved = `[]/:&+$`.
#[inline]
pub(crate) fn is_param_char(b: u8) -> bool {
    class(b, PARAM)
}

/// `hnv-unreserved / unreserved` for URI header names and values.
#[inline]
pub(crate) fn is_hnv_char(b: u8) -> bool {
    class(b, HNV)
}

/// Hostname and IPv4 characters: alphanum, `-` and `.`.
#[inline]
pub(crate) fn is_host_char(b: u8) -> bool {
    class(b, HOST)
}

#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// The first index at or after `i` that is not SP/HTAB.
#[inline]
pub(crate) fn skip_ws(s: &[u8], i: usize) -> usize {
    scan(s, i, is_ws)
}

/// The end of the run of `pred` characters starting at `i` (`i` itself when past the end).
#[inline]
pub(crate) fn scan(s: &[u8], i: usize, pred: impl Fn(u8) -> bool) -> usize {
    match s.get(i..) {
        // An iterator, not indexing: no bounds check per byte.
        Some(rest) => i + rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len()),
        None => i,
    }
}

/// The index just past the quoted string that starts at `i` (`s[i]` is `"`), honouring
/// `\`-escapes; `None` when it is not closed.
pub(crate) fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Checks the `%HH` escapes of a URI part; every other byte must satisfy `plain`.
pub(crate) fn is_escaped_str(s: &[u8], plain: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() || !(s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if plain(s[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Splits a header value into its comma-separated elements, ignoring commas inside quoted
/// strings and `<...>`; each element is trimmed. An unclosed quote makes the rest one element
/// (the element's own parser then reports it).
pub(crate) fn split_commas(s: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    // Most values hold one element: no comma, no scan.
    let single = memchr::memchr(b',', s).is_none();
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        if single {
            done = true;
            let t = s.trim_ascii();
            let a = t.as_ptr() as usize - s.as_ptr() as usize;
            return Some((a, a + t.len()));
        }
        let mut i = start;
        let mut angle = false;
        while i < s.len() {
            match s[i] {
                b'"' => match quoted_end(s, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => i = s.len(),
                },
                b'<' => angle = true,
                b'>' => angle = false,
                b',' if !angle => break,
                _ => {}
            }
            i += 1;
        }
        let i = i.min(s.len());
        let (mut a, mut b) = (start, i);
        while a < b && is_ws(s[a]) {
            a += 1;
        }
        while b > a && is_ws(s[b - 1]) {
            b -= 1;
        }
        if i >= s.len() {
            done = true;
        } else {
            start = i + 1;
        }
        Some((a, b))
    })
}

/// Parses an unsigned decimal that must fit in `u32` (RFC 3261's 2**32-1 limit on CSeq and
/// delta-seconds). Leading zeros are allowed (`0009`).
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in s {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        if n > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(n).ok()
}

/// A port: one to five digits, at most 65535 (leading zeros allowed, as `u16`'s parser does).
pub(crate) fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(d - b'0');
    }
    u16::try_from(n).ok()
}

/// A dotted-quad IPv4 address, read as the standard library reads one (four octets of one to
/// three digits, no leading zeros, each at most 255) without going through `str`.
pub(crate) fn parse_ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    // The octet being read: where it goes, its value, its digits, whether it began with 0.
    let (mut at, mut value, mut digits, mut zero) = (0usize, 0u16, 0u8, false);
    for &b in s {
        match b {
            b'0'..=b'9' => {
                if digits == 3 || (digits > 0 && zero) {
                    return None;
                }
                zero |= digits == 0 && b == b'0';
                value = value * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && at < 3 => {
                octets[at] = u8::try_from(value).ok()?;
                (at, value, digits, zero) = (at + 1, 0, 0, false);
            }
            _ => return None,
        }
    }
    if at != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(std::net::Ipv4Addr::from(octets))
}

/// The end of the run of `plain` characters and `%HH` escapes that starts at `i`; `None` at a
/// broken escape.
#[inline]
pub(crate) fn scan_escaped(s: &[u8], mut i: usize, plain: impl Fn(u8) -> bool) -> Option<usize> {
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            match s.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return None,
            }
        } else if plain(b) {
            i += 1;
        } else {
            break;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_split_outside_quotes_and_brackets() {
        let s = br#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z@w>,,"#;
        let parts: Vec<&[u8]> = split_commas(s).map(|(a, b)| &s[a..b]).collect();
        assert_eq!(
            parts,
            vec![
                &br#""a, b" <sip:x@y;p=1,2>;q=1"#[..],
                b"<sip:z@w>",
                b"",
                b""
            ]
        );
    }

    #[test]
    fn u32_limits() {
        assert_eq!(parse_u32(b"0009"), Some(9));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"36893488147419103232"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
    }

    #[test]
    fn ports_and_addresses_read_as_the_standard_library_reads_them() {
        let cases = [
            "0",
            "5060",
            "05060",
            "65535",
            "65536",
            "99999",
            "123456",
            "",
            "+80",
            "8a",
            "-1",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "0.0.0.0",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            ".1.2.3",
            "1..2.3",
            "1.2.3.0004",
            "1234.1.1.1",
            "1.2.3.a",
            "00.1.1.1",
        ];
        for c in cases {
            assert_eq!(
                parse_port(c.as_bytes()),
                c.parse::<u16>().ok().filter(|_| !c.starts_with('+')),
                "port {c:?}"
            );
            assert_eq!(parse_ipv4(c.as_bytes()), c.parse().ok(), "address {c:?}");
        }
        // Every octet value and form.
        for n in 0..1100u32 {
            for text in [format!("{n}"), format!("0{n}"), format!("00{n}")] {
                let addr = format!("10.{text}.0.1");
                assert_eq!(parse_ipv4(addr.as_bytes()), addr.parse().ok(), "{addr}");
            }
        }
    }

    /// The hostname check as it was written before the automaton: the reference.
    fn host_reference(s: &[u8]) -> HostChars {
        let mut label = 0usize;
        let mut prev = b'.';
        let mut numeric = true;
        for &b in s {
            if b == b'.' {
                if label == 0 || prev == b'-' {
                    return HostChars::Invalid;
                }
                label = 0;
            } else if is_host_char(b) {
                if label == 0 && b == b'-' {
                    return HostChars::Invalid;
                }
                numeric &= b.is_ascii_digit();
                label += 1;
            } else {
                return HostChars::Invalid;
            }
            prev = b;
        }
        if prev == b'-' || (prev == b'.' && s.len() == 1) {
            HostChars::Invalid
        } else if numeric {
            HostChars::Numeric
        } else {
            HostChars::Name
        }
    }

    #[test]
    fn the_host_automaton_agrees_with_the_reference() {
        // Every string of up to five bytes over the characters that matter.
        let alphabet = b"a1.-_ Z";
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = strings
                .iter()
                .filter(|s| s.len() == strings.last().map_or(0, Vec::len))
                .flat_map(|s| {
                    alphabet.iter().map(move |&c| {
                        let mut t = s.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
            strings.extend(longer);
        }
        for s in &strings {
            assert_eq!(
                scan_host(s),
                host_reference(s),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        for b in 0..=255u8 {
            assert_eq!(scan_host(&[b]), host_reference(&[b]), "{b}");
            assert_eq!(scan_host(&[b'a', b]), host_reference(&[b'a', b]), "{b}");
        }
    }

    #[test]
    fn escaped_runs() {
        assert_eq!(scan_escaped(b"a%20b;c", 0, is_param_char), Some(5));
        assert_eq!(scan_escaped(b"a%2", 0, is_param_char), None);
        assert_eq!(scan_escaped(b"a%zz", 0, is_param_char), None);
        assert_eq!(scan_escaped(b"ab", 5, is_param_char), Some(5));
    }

    #[test]
    fn escapes() {
        assert!(is_escaped_str(b"a%20b", is_user_char));
        assert!(!is_escaped_str(b"a%2", is_user_char));
        assert!(!is_escaped_str(b"a%", is_user_char));
        assert!(!is_escaped_str(b"a%zz", is_user_char));
    }
}
