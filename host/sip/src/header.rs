//! Header names (with RFC 3261's compact forms) and the header list of a message.
//!
//! A header keeps its value as received, unfolded and trimmed; typed views
//! ([`crate::typed`]) are parsed from it on demand. Content-Length is not kept: it is the
//! body's length, written when the message is printed.

use std::fmt;

use bytes::Bytes;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal $(, $compact:literal)? ; )*) => {
        /// A header name. Known names are matched case-insensitively, compact forms included
        /// (`v` is [`HeaderName::Via`]); any other name is kept as written, and compared
        /// case-insensitively too (`p-asserted-identity` is `P-Asserted-Identity`).
        #[derive(Clone)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// A header this stack does not know, its name as written.
            Other(Bytes),
        }

        impl HeaderName {
            /// The canonical (long) name, or the name as written for an unknown header.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $name, )*
                    HeaderName::Other(name) => std::str::from_utf8(name).unwrap_or("X-Invalid"),
                }
            }

            /// `Name: ` as printed, for a known name (one copy per header line printed).
            fn with_colon(&self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some(concat!($name, ": ")), )*
                    HeaderName::Other(_) => None,
                }
            }

            /// Looks a name up, case-insensitively, compact forms included.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                HeaderName::known(name).unwrap_or_else(|| HeaderName::Other(Bytes::copy_from_slice(name)))
            }

            /// A known name, case-insensitively, compact forms included: one bucket of
            /// [`NAME_BUCKETS`] holds the few candidates, so a name costs a hash and one or two
            /// comparisons, not a scan of every name (this runs for each header line received).
            pub(crate) fn known(name: &[u8]) -> Option<HeaderName> {
                let (&first, &last) = (name.first()?, name.last()?);
                for &i in &NAME_BUCKETS[name_bucket(name.len(), first, last)] {
                    let (Some((known, variant)), Some(folded)) =
                        (KNOWN_NAMES.get(usize::from(i)), FOLDED_NAMES.get(usize::from(i)))
                    else {
                        break;
                    };
                    if known.len() == name.len() && folded.matches(name) {
                        return Some(variant.clone());
                    }
                }
                None
            }
        }

        /// Every known name, long and compact forms, with its variant.
        const KNOWN_NAMES: &[(&str, HeaderName)] = &[
            $( ($name, HeaderName::$variant), $( ($compact, HeaderName::$variant), )? )*
        ];
    };
}

/// Room for the longest known name (`P-Preferred-Identity` is 20 bytes).
const LONGEST_NAME: usize = 24;

/// A known name folded for a comparison in three loads: its letters in lower case with a
/// mask of their case bit (every other byte, `-`, must match exactly), taken as three
/// overlapping windows that together cover the name (see [`windows`]). Exact: no byte but a
/// letter's other case folds onto a letter, and none folds onto `-`.
#[derive(Clone, Copy)]
struct Folded {
    lower: [u64; 3],
    mask: [u64; 3],
}

/// Where the three windows of a name of `len` bytes start, and how wide they are: eight bytes
/// at 0, 8 (or less) and `len - 8` for a name of eight or more; four bytes at 0 and `len - 4`
/// for four to seven; below four, the whole name, three times.
const fn windows(len: usize) -> ([usize; 3], usize) {
    if len >= 8 {
        let mid = if len - 8 < 8 { len - 8 } else { 8 };
        ([0, mid, len - 8], 8)
    } else if len >= 4 {
        ([0, len - 4, len - 4], 4)
    } else {
        ([0, 0, 0], len)
    }
}

impl Folded {
    const fn of(name: &[u8]) -> Folded {
        assert!(
            name.len() <= LONGEST_NAME,
            "a known header name is too long"
        );
        let mut f = Folded {
            lower: [0; 3],
            mask: [0; 3],
        };
        let (starts, width) = windows(name.len());
        let mut w = 0;
        while w < 3 {
            let mut i = 0;
            while i < width {
                let b = name[starts[w] + i];
                let (byte, mask) = if b.is_ascii_alphabetic() {
                    (b | 0x20, 0x20)
                } else {
                    (b, 0)
                };
                f.lower[w] |= (byte as u64) << (8 * i);
                f.mask[w] |= (mask as u64) << (8 * i);
                i += 1;
            }
            w += 1;
        }
        f
    }

    /// Whether `name`, of the same length, is this name in any case.
    #[inline]
    fn matches(&self, name: &[u8]) -> bool {
        self.words(name)
            .is_some_and(|words| (0..3).all(|w| words[w] | self.mask[w] == self.lower[w]))
    }

    /// The three windows of `name`.
    #[inline]
    fn words(&self, name: &[u8]) -> Option<[u64; 3]> {
        let ([a, b, c], width) = windows(name.len());
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(name.get(at..at + 8)?.try_into().ok()?))
        };
        let half = |at: usize| -> Option<u64> {
            Some(u32::from_le_bytes(name.get(at..at + 4)?.try_into().ok()?).into())
        };
        Some(match width {
            8 => [word(a)?, word(b)?, word(c)?],
            4 => [half(a)?, half(b)?, half(c)?],
            _ => {
                let short = name
                    .iter()
                    .rev()
                    .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
                [short, short, short]
            }
        })
    }
}

/// [`KNOWN_NAMES`], folded; same order.
static FOLDED_NAMES: [Folded; KNOWN_NAMES.len()] = folded_names();

const fn folded_names() -> [Folded; KNOWN_NAMES.len()] {
    let mut out = [Folded {
        lower: [0; 3],
        mask: [0; 3],
    }; KNOWN_NAMES.len()];
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        out[i] = Folded::of(KNOWN_NAMES[i].0.as_bytes());
        i += 1;
    }
    out
}

/// Candidates per bucket of the name table; a build-time check keeps every bucket within it.
const BUCKET_SIZE: usize = 3;
const BUCKETS: usize = 128;
/// An unused slot in a bucket.
const EMPTY: u8 = u8::MAX;

/// The bucket of a header name: its length and its first and last letters, case folded.
/// Collisions are few (checked at build time, see [`name_buckets`]).
const fn name_bucket(len: usize, first: u8, last: u8) -> usize {
    (len.wrapping_mul(7)
        ^ ((first | 0x20) as usize).wrapping_mul(3)
        ^ ((last | 0x20) as usize) << 1)
        % BUCKETS
}

/// Indices into [`KNOWN_NAMES`] by [`name_bucket`], built at compile time.
static NAME_BUCKETS: [[u8; BUCKET_SIZE]; BUCKETS] = name_buckets();

const fn name_buckets() -> [[u8; BUCKET_SIZE]; BUCKETS] {
    let mut table = [[EMPTY; BUCKET_SIZE]; BUCKETS];
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        let name = KNOWN_NAMES[i].0.as_bytes();
        let bucket = &mut table[name_bucket(name.len(), name[0], name[name.len() - 1])];
        let mut slot = 0;
        while bucket[slot] != EMPTY {
            slot += 1;
            assert!(
                slot < BUCKET_SIZE,
                "a header name bucket is full: change name_bucket"
            );
        }
        assert!(i < EMPTY as usize);
        bucket[slot] = i as u8;
        i += 1;
    }
    table
}

header_names! {
    /// `Accept`.
    Accept = "Accept";
    /// `Accept-Contact` (compact `a`, RFC 3841).
    AcceptContact = "Accept-Contact", "a";
    /// `Allow`.
    Allow = "Allow";
    /// `Allow-Events` (compact `u`, RFC 6665).
    AllowEvents = "Allow-Events", "u";
    /// `Authorization`.
    Authorization = "Authorization";
    /// `Call-ID` (compact `i`).
    CallId = "Call-ID", "i";
    /// `Date`.
    Date = "Date";
    /// `Diversion` (RFC 5806).
    Diversion = "Diversion";
    /// `History-Info` (RFC 7044).
    HistoryInfo = "History-Info";
    /// `P-Asserted-Identity` (RFC 3325).
    PAssertedIdentity = "P-Asserted-Identity";
    /// `P-Preferred-Identity` (RFC 3325).
    PPreferredIdentity = "P-Preferred-Identity";
    /// `Path` (RFC 3327).
    Path = "Path";
    /// `Privacy` (RFC 3323).
    Privacy = "Privacy";
    /// `Reason` (RFC 3326).
    Reason = "Reason";
    /// `Replaces` (RFC 3891).
    Replaces = "Replaces";
    /// `Contact` (compact `m`).
    Contact = "Contact", "m";
    /// `Content-Encoding` (compact `e`).
    ContentEncoding = "Content-Encoding", "e";
    /// `Content-Length` (compact `l`); never stored, see the module docs.
    ContentLength = "Content-Length", "l";
    /// `Content-Type` (compact `c`).
    ContentType = "Content-Type", "c";
    /// `CSeq`.
    CSeq = "CSeq";
    /// `Event` (compact `o`, RFC 6665).
    Event = "Event", "o";
    /// `Expires`.
    Expires = "Expires";
    /// `From` (compact `f`).
    From = "From", "f";
    /// `Max-Forwards`.
    MaxForwards = "Max-Forwards";
    /// `Min-Expires`.
    MinExpires = "Min-Expires";
    /// `Min-SE` (RFC 4028).
    MinSe = "Min-SE";
    /// `Proxy-Authenticate`.
    ProxyAuthenticate = "Proxy-Authenticate";
    /// `Proxy-Authorization`.
    ProxyAuthorization = "Proxy-Authorization";
    /// `Proxy-Require`.
    ProxyRequire = "Proxy-Require";
    /// `RAck` (RFC 3262).
    RAck = "RAck";
    /// `Record-Route`.
    RecordRoute = "Record-Route";
    /// `Refer-To` (compact `r`, RFC 3515).
    ReferTo = "Refer-To", "r";
    /// `Referred-By` (compact `b`, RFC 3892).
    ReferredBy = "Referred-By", "b";
    /// `Reject-Contact` (compact `j`, RFC 3841).
    RejectContact = "Reject-Contact", "j";
    /// `Request-Disposition` (compact `d`, RFC 3841).
    RequestDisposition = "Request-Disposition", "d";
    /// `Require`.
    Require = "Require";
    /// `Retry-After`.
    RetryAfter = "Retry-After";
    /// `Route`.
    Route = "Route";
    /// `RSeq` (RFC 3262).
    RSeq = "RSeq";
    /// `Server`.
    Server = "Server";
    /// `Session-Expires` (compact `x`, RFC 4028).
    SessionExpires = "Session-Expires", "x";
    /// `Subject` (compact `s`).
    Subject = "Subject", "s";
    /// `Supported` (compact `k`).
    Supported = "Supported", "k";
    /// `Timestamp`.
    Timestamp = "Timestamp";
    /// `To` (compact `t`).
    To = "To", "t";
    /// `Unsupported`.
    Unsupported = "Unsupported";
    /// `User-Agent`.
    UserAgent = "User-Agent";
    /// `Via` (compact `v`).
    Via = "Via", "v";
    /// `Warning`.
    Warning = "Warning";
    /// `WWW-Authenticate`.
    WwwAuthenticate = "WWW-Authenticate";
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        if let HeaderName::Other(name) = self {
            for b in name.iter() {
                state.write_u8(b.to_ascii_lowercase());
            }
        }
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line: its name and its value as received (unfolded, trimmed).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value as received.
    pub value: Bytes,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, String::from_utf8_lossy(&self.value))
    }
}

/// The headers of a message, in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Room for `n` headers.
    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            list: Vec::with_capacity(n),
        }
    }

    /// Appends a header (after any of the same name).
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.list.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts a header before every other (a new top `Via`, a `Record-Route`).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.list.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.list.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    /// Every header line of `name`, in order (a line may hold several comma-separated values).
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    /// How many lines of `name`.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.list.iter().filter(|h| &h.name == name).count()
    }

    /// Replaces the value of the first line of `name`, keeping every other line.
    pub fn replace_first(&mut self, name: &HeaderName, value: Bytes) {
        if let Some(h) = self.list.iter_mut().find(|h| &h.name == name) {
            h.value = value;
        }
    }

    /// Removes every line of `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.list.retain(|h| &h.name != name);
    }

    /// Replaces every line of `name` with one line holding `value`, where the first was.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.list.iter().position(|h| h.name == name) {
            Some(first) => {
                self.list[first].value = value;
                let mut i = 0;
                self.list.retain(|h| {
                    let keep = h.name != name || i == first;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.list.iter()
    }

    /// All headers in order, indexable.
    pub(crate) fn as_slice(&self) -> &[Header] {
        &self.list
    }

    /// How many header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// No header lines.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The printed size of the header lines.
    pub(crate) fn encoded_len(&self) -> usize {
        self.list
            .iter()
            .map(|h| h.name.as_str().len() + h.value.len() + 4)
            .sum()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for h in &self.list {
            match h.name.with_colon() {
                Some(name) => out.extend_from_slice(name.as_bytes()),
                None => {
                    out.extend_from_slice(h.name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                }
            }
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compact_forms() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"L"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"cseq"), HeaderName::CSeq);
        assert_eq!(
            HeaderName::from_bytes(b"x-custom-Header"),
            HeaderName::from_bytes(b"X-Custom-Header")
        );
        let mut set = std::collections::HashSet::new();
        set.insert(HeaderName::from_bytes(b"X-A"));
        assert!(set.contains(&HeaderName::from_bytes(b"x-a")));
        let other = HeaderName::from_bytes(b"C%6Fntact");
        assert_eq!(other.as_str(), "C%6Fntact");
        assert_ne!(other, HeaderName::Contact);
        assert_eq!(HeaderName::ContentLength.as_str(), "Content-Length");
    }

    #[test]
    fn every_known_name_is_found_in_any_case() {
        for (name, variant) in KNOWN_NAMES {
            assert_eq!(HeaderName::known(name.as_bytes()).as_ref(), Some(variant));
            let upper = name.to_ascii_uppercase();
            assert_eq!(HeaderName::known(upper.as_bytes()).as_ref(), Some(variant));
            let lower = name.to_ascii_lowercase();
            assert_eq!(HeaderName::known(lower.as_bytes()).as_ref(), Some(variant));
            // A name one letter longer or shorter is not it.
            let longer = format!("{name}x");
            assert_ne!(HeaderName::known(longer.as_bytes()).as_ref(), Some(variant));
            assert_ne!(
                HeaderName::known(&name.as_bytes()[1..]).as_ref(),
                Some(variant)
            );
        }
        for unknown in [&b""[..], b"y", b"Vi", b"Viaa", b"Fro", b"\xff", b"Call_ID"] {
            assert_eq!(HeaderName::known(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn set_replaces_all_lines_in_place() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::Contact, "1");
        h.push(HeaderName::Contact, "2");
        h.push(HeaderName::To, "t");
        h.set(HeaderName::Contact, "3");
        let names: Vec<_> = h.iter().map(|h| h.name.clone()).collect();
        assert_eq!(
            names,
            [HeaderName::Via, HeaderName::Contact, HeaderName::To]
        );
        assert_eq!(h.get(&HeaderName::Contact).unwrap(), "3");
    }
}
