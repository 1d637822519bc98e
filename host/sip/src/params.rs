//! `;name=value` parameter lists: URI parameters (no whitespace, `%`-escapes) and header
//! parameters (`generic-param`, with whitespace allowed around `;` and `=`).

use bytes::Bytes;

use crate::syntax::{is_param_char, is_token_or_colon, quoted_end, scan, scan_escaped, skip_ws};

/// One parameter, name and value as written (escapes and quotes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as written.
    pub name: &'a [u8],
    /// The value as written, or `None` for a bare flag (`;lr`).
    pub value: Option<&'a [u8]>,
}

/// Where one parameter's name and value lie in the list's source bytes; `value.0 == NONE`
/// for a flag. Offsets, not `Bytes` slices: a message has dozens of parameters, and a slice
/// costs a reference-count update to make and another to drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    name: (u32, u32),
    value: (u32, u32),
}

const NONE: u32 = u32::MAX;
/// Lists of up to this many parameters (nearly all) are kept without an allocation.
const INLINE: usize = 4;

/// A parameter list, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    src: Bytes,
    inline: [Entry; INLINE],
    len: u8,
    spill: Vec<Entry>,
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Params {}

impl Params {
    /// A parameter by name, compared case-insensitively: `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&[u8]>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value)
    }

    /// The parameters in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = Param<'_>> {
        self.inline[..usize::from(self.len)]
            .iter()
            .chain(self.spill.iter())
            .map(|e| Param {
                name: &self.src[e.name.0 as usize..e.name.1 as usize],
                value: (e.value.0 != NONE)
                    .then(|| &self.src[e.value.0 as usize..e.value.1 as usize]),
            })
    }

    /// No parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many parameters.
    pub fn len(&self) -> usize {
        usize::from(self.len) + self.spill.len()
    }

    /// The bytes the offsets point into.
    pub(crate) fn set_src(&mut self, src: Bytes) {
        self.src = src;
    }

    /// Header parameters (`*( SEMI generic-param )`) in `src[start..]`, which must hold nothing
    /// else. Whitespace is allowed around `;` and `=`. `None` if any is malformed (an empty
    /// name, a stray `,`, an unclosed quote).
    pub(crate) fn parse_header(src: &Bytes, start: usize) -> Option<Params> {
        let mut params = Params::default();
        scan_header(src, start, &mut params)?;
        if !params.is_empty() {
            params.src = src.clone();
        }
        Some(params)
    }
}

/// Where a parameter scan puts what it finds: a [`Params`] being built, or [`Check`] when
/// only the verdict is wanted (a Contact or a lower Via is checked when a message arrives,
/// but read only if asked for).
pub(crate) trait Sink {
    /// One parameter, as offsets into the scanned bytes; `None` if they do not fit in `u32`.
    fn push(&mut self, name: (usize, usize), value: Option<(usize, usize)>) -> Option<()>;
}

/// A [`Sink`] that keeps nothing.
pub(crate) struct Check;

fn offsets((a, b): (usize, usize)) -> Option<(u32, u32)> {
    Some((u32::try_from(a).ok()?, u32::try_from(b).ok()?))
}

impl Sink for Check {
    fn push(&mut self, name: (usize, usize), value: Option<(usize, usize)>) -> Option<()> {
        offsets(name)?;
        value.map_or(Some((0, 0)), offsets)?;
        Some(())
    }
}

impl Sink for Params {
    fn push(&mut self, name: (usize, usize), value: Option<(usize, usize)>) -> Option<()> {
        let e = Entry {
            name: offsets(name)?,
            value: match value {
                Some(v) => offsets(v)?,
                None => (NONE, NONE),
            },
        };
        if usize::from(self.len) < INLINE {
            self.inline[usize::from(self.len)] = e;
            self.len += 1;
        } else {
            self.spill.push(e);
        }
        Some(())
    }
}

/// URI parameters in `raw` (empty, or starting with `;`), into `sink`: `;name[=value]`, each
/// a non-empty run of parameter characters and `%HH` escapes.
pub(crate) fn scan_uri(raw: &[u8], sink: &mut impl Sink) -> Option<()> {
    if raw.is_empty() {
        return Some(());
    }
    if raw[0] != b';' {
        return None;
    }
    let mut i = 1;
    loop {
        let name_end = scan_escaped(raw, i, is_param_char)?;
        if name_end == i {
            return None;
        }
        let (value, end) = if raw.get(name_end) == Some(&b'=') {
            let value_end = scan_escaped(raw, name_end + 1, is_param_char)?;
            if value_end == name_end + 1 {
                return None;
            }
            (Some((name_end + 1, value_end)), value_end)
        } else {
            (None, name_end)
        };
        sink.push((i, name_end), value)?;
        match raw.get(end) {
            None => return Some(()),
            Some(b';') => i = end + 1,
            Some(_) => return None,
        }
    }
}

/// Header parameters in `s[start..]` into `sink` (see [`Params::parse_header`]).
pub(crate) fn scan_header(s: &[u8], start: usize, sink: &mut impl Sink) -> Option<()> {
    let mut i = skip_ws(s, start);
    while i < s.len() {
        if s[i] != b';' {
            return None;
        }
        i = skip_ws(s, i + 1);
        let name_end = scan_token(s, i);
        if name_end == i {
            return None;
        }
        let name = (i, name_end);
        i = skip_ws(s, name_end);
        let mut value = None;
        if i < s.len() && s[i] == b'=' {
            i = skip_ws(s, i + 1);
            let end = if s.get(i) == Some(&b'"') {
                quoted_end(s, i)?
            } else if s.get(i) == Some(&b'[') {
                // An IPv6 reference (`received=[2001:db8::1]`).
                i + 1 + memchr::memchr(b']', &s[i..])?
            } else {
                scan_token(s, i)
            };
            if end == i {
                return None;
            }
            value = Some((i, end));
            i = skip_ws(s, end);
        }
        sink.push(name, value)?;
    }
    Some(())
}

/// A token, or a host with `:` (IPv4 and names are tokens; `maddr=[...]` is handled apart).
#[inline]
fn scan_token(s: &[u8], i: usize) -> usize {
    scan(s, i, is_token_or_colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Option<Params> {
        Params::parse_header(&Bytes::copy_from_slice(s.as_bytes()), 0)
    }

    #[test]
    fn header_params_with_whitespace() {
        let p = header(" ;   tag    = 1918181833n ; q = 0.33; lr; x=\"a;b\"").unwrap();
        assert_eq!(p.get("TAG"), Some(Some(&b"1918181833n"[..])));
        assert_eq!(p.get("q"), Some(Some(&b"0.33"[..])));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("x"), Some(Some(&b"\"a;b\""[..])));
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn empty_and_stray_are_refused() {
        assert!(header(";;").is_none());
        assert!(header(";,").is_none());
        assert!(header(";a=").is_none());
        assert!(header(";a=\"open").is_none());
        assert!(header("x").is_none());
        assert!(header("").unwrap().is_empty());
    }

    fn uri(raw: &'static [u8]) -> Option<Params> {
        let mut p = Params::default();
        scan_uri(raw, &mut p)?;
        assert_eq!(scan_uri(raw, &mut Check), Some(()), "the check agrees");
        p.set_src(Bytes::from_static(raw));
        Some(p)
    }

    #[test]
    fn uri_params() {
        let p = uri(b";%6C%72;n%61me=v%61lue%25%34%31;maddr=[::1]").unwrap();
        assert_eq!(p.get("%6c%72"), Some(None));
        assert_eq!(p.get("n%61me"), Some(Some(&b"v%61lue%25%34%31"[..])));
        assert_eq!(p.len(), 3);
        assert!(uri(b";a b").is_none());
        assert!(scan_uri(b";a b", &mut Check).is_none());
        assert!(uri(b";=x").is_none());
        assert!(scan_uri(b";=x", &mut Check).is_none());
    }
}
