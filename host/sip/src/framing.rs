//! Cutting messages out of a TCP or TLS byte stream (RFC 3261 section 18.3): a message is its
//! head up to the empty line plus Content-Length bytes of body. Between messages a peer may
//! send CRLF keep-alives (RFC 5626 section 3.5.1): a double CRLF is a ping, answered with one
//! CRLF, the pong. Bytes that cannot begin a message are skipped line by line until a start
//! line appears, so one garbled write does not cost the connection; a head or body larger
//! than the cap, or a Content-Length that cannot be trusted, does (the peer's framing is lost).
//!
//! Sans-IO: the transport pushes what it read and takes frames out.

use bytes::{Buf, Bytes, BytesMut};

use crate::message::Length;

/// The largest message accepted by default: a head and body of 64 KiB, the most a UDP
/// datagram can carry, is far beyond any real SIP message.
pub const DEFAULT_MAX_MESSAGE: usize = 65_535;

/// What the stream held next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (head and body), for [`crate::screen::message`].
    Message(Bytes),
    /// A keep-alive ping (CRLF CRLF): answer with [`PONG`].
    Ping,
    /// A keep-alive pong (one CRLF), the answer to our ping.
    Pong,
    /// Bytes that could not begin a message were skipped (count them as parse errors).
    Skipped(usize),
}

/// The answer to a keep-alive ping.
pub const PONG: &[u8] = b"\r\n";

/// Why the stream cannot be read further: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The head, or head and body, exceed the cap.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// Content-Length is missing its number, negative, or given twice with different values.
    #[error("unusable Content-Length")]
    ContentLength,
}

/// Which end of the connection this is, for keep-alives: the end that opened the connection
/// sends pings and receives pongs; the end that accepted it receives pings (RFC 5626).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection: a CRLF is the start of a ping, so wait for the second.
    Accepted,
    /// We opened the connection: a lone CRLF is the pong to our ping.
    Opened,
}

/// The framing state of one connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max: usize,
    role: Role,
    /// Set once an error was returned: the connection must be closed.
    failed: Option<FrameError>,
    /// How much of the buffer is known to hold no line end, and no end of head: a peer
    /// trickling a message byte by byte costs a scan of each byte once, not of the whole
    /// buffer on every read.
    line_scanned: usize,
    head_scanned: usize,
    /// Where the head lines found so far that could be a Content-Length (those that begin
    /// with `C`, `c`, `L` or `l`) start: the search for the end of the head notes them, so
    /// the head is searched once, and only these lines are read for the length.
    length_lines: Vec<usize>,
}

impl StreamFramer {
    /// A framer for one connection that refuses messages over `max` bytes.
    pub fn new(role: Role, max: usize) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            max,
            role,
            failed: None,
            line_scanned: 0,
            head_scanned: 0,
            length_lines: Vec::new(),
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not yet make a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `Ok(None)` when more bytes are needed. After an `Err` every call
    /// returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let before = self.buf.len();
        let r = self.frame();
        if self.buf.len() != before {
            // Bytes were taken: the scans start again at the new front.
            self.line_scanned = 0;
            self.head_scanned = 0;
            self.length_lines.clear();
        }
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf.clear();
        }
        r
    }

    fn frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let b = &self.buf[..];
        if b.is_empty() {
            return Ok(None);
        }
        if b.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        if b.starts_with(b"\r\n") {
            let more_may_come = match b.get(2) {
                None => self.role == Role::Accepted,
                Some(b'\r') => b.len() < 4,
                Some(_) => false,
            };
            if more_may_come {
                return Ok(None);
            }
            // A lone CRLF: a pong, or (from a peer that pings badly) a stray line end.
            self.buf.advance(2);
            return Ok(Some(Frame::Pong));
        }
        if b == b"\r" {
            return Ok(None);
        }
        // The first line decides: a start line begins a message, anything else is skipped.
        let Some(eol) = memchr::memchr(b'\n', &b[self.line_scanned.min(b.len())..])
            .map(|p| p + self.line_scanned.min(b.len()))
        else {
            self.line_scanned = b.len();
            if b.len() > self.max {
                let n = b.len();
                self.buf.clear();
                return Ok(Some(Frame::Skipped(n)));
            }
            return Ok(None);
        };
        if !is_start_line(&b[..eol]) {
            // Skip the line, and any CR/LF run after it that is not a keep-alive.
            self.buf.advance(eol + 1);
            return Ok(Some(Frame::Skipped(eol + 1)));
        }
        let from = self.head_scanned.saturating_sub(2);
        let Some(head_end) = find_head_end(b, from, &mut self.length_lines) else {
            self.head_scanned = b.len();
            if b.len() > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
            return Ok(None);
        };
        let length = content_length(&b[..head_end], &self.length_lines)?;
        let total = head_end
            .checked_add(length)
            .ok_or(FrameError::TooLarge(self.max))?;
        if total > self.max {
            return Err(FrameError::TooLarge(self.max));
        }
        if b.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }
}

/// `Method SP Request-URI SP SIP/x.y` or `SIP/x.y SP code ...`, loosely: enough to tell a
/// message from noise; the parser judges the rest.
fn is_start_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line).trim_ascii_end();
    let sip =
        |s: &[u8]| s.len() >= 5 && s[..4].eq_ignore_ascii_case(b"SIP/") && s[4].is_ascii_digit();
    if sip(line) {
        return true;
    }
    match line.iter().rposition(|&b| b == b' ') {
        Some(sp) => {
            sip(&line[sp + 1..]) && line.first().is_some_and(|&c| crate::syntax::is_token(c))
        }
        None => false,
    }
}

/// The index just past the empty line that ends the head (CRLF CRLF, or LF LF leniently),
/// searching from `from`. The start of every line found that could be a Content-Length is
/// added to `length_lines` (once, though a resumed search sees a line end again).
fn find_head_end(b: &[u8], mut from: usize, length_lines: &mut Vec<usize>) -> Option<usize> {
    while let Some(nl) = memchr::memchr(b'\n', &b[from..]).map(|p| from + p) {
        let rest = &b[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if matches!(rest.first(), Some(b'C' | b'c' | b'L' | b'l'))
            && length_lines.last().is_none_or(|&last| last < nl + 1)
        {
            length_lines.push(nl + 1);
        }
        from = nl + 1;
    }
    None
}

/// Content-Length from the head's header lines (unfolded as the parser does, and read by the
/// parser's own reading); 0 when absent (RFC 3261 requires it on streams, and a message
/// without a body is the only safe reading of its absence). Only the lines in `candidates`
/// (every line that begins as the name can) are read.
fn content_length(head: &[u8], candidates: &[usize]) -> Result<usize, FrameError> {
    let mut length = Length::default();
    let line_at = |start: usize| {
        let rest = head.get(start..).unwrap_or_default();
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        (&rest[..end], start + end + 1)
    };
    let is_fold = |line: &[u8]| line.first().is_some_and(|&c| c == b' ' || c == b'\t');
    for &start in candidates {
        // The name, `Content-Length` or `l` in any case, then whitespace and the colon (the
        // name as the parser reads it), checked in place: most candidates are Call-ID, CSeq,
        // Contact or Content-Type, and fail at once.
        let at = head.get(start..).unwrap_or_default();
        let name_len = if at.len() >= 14 && at[..14].eq_ignore_ascii_case(b"content-length") {
            14
        } else if at.first().is_some_and(|&c| c | 0x20 == b'l') {
            1
        } else {
            continue;
        };
        let colon = crate::syntax::scan(at, name_len, |c| c != b'\n' && c.is_ascii_whitespace());
        if at.get(colon) != Some(&b':') {
            continue;
        }
        let (line, mut next) = line_at(start);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let first = line.get(colon + 1..).unwrap_or_default().trim_ascii();
        let (fold, after) = line_at(next);
        if !is_fold(fold) {
            length.add(first);
            continue;
        }
        // Continuation lines: one SP where each fold was, as the parser unfolds.
        let mut v = first.to_vec();
        let (mut fold, mut after) = (fold, after);
        while is_fold(fold) {
            let part = fold.strip_suffix(b"\r").unwrap_or(fold).trim_ascii();
            if !v.is_empty() && !part.is_empty() {
                v.push(b' ');
            }
            v.extend_from_slice(part);
            next = after;
            (fold, after) = line_at(next);
        }
        length.add(&v);
    }
    match length.get() {
        Ok(n) => Ok(n.unwrap_or(0)),
        Err(_) => Err(FrameError::ContentLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    fn frames(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Ok(Some(frame)) = f.next_frame() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut whole = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        whole.push(&stream);
        let expected = vec![
            Frame::Ping,
            Frame::Message(Bytes::from_static(OPTIONS)),
            Frame::Pong,
            Frame::Message(Bytes::from_static(OPTIONS)),
        ];
        assert_eq!(frames(&mut whole), expected);
        let mut trickle = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        let mut got = Vec::new();
        for b in &stream {
            trickle.push(&[*b]);
            got.extend(frames(&mut trickle));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn the_opening_end_sees_a_pong_at_once() {
        let mut f = StreamFramer::new(Role::Opened, DEFAULT_MAX_MESSAGE);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None), "maybe half a ping");
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::Ping)));
    }

    #[test]
    fn garbage_is_skipped_until_a_start_line() {
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        f.push(b"\x16\x03\x01 junk\r\nmore junk\r\n");
        f.push(OPTIONS);
        assert_eq!(
            frames(&mut f),
            [
                Frame::Skipped(10),
                Frame::Skipped(11),
                Frame::Message(Bytes::from_static(OPTIONS))
            ]
        );
    }

    #[test]
    fn a_short_body_waits() {
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        f.push(&OPTIONS[..OPTIONS.len() - 1]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"o");
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn bad_lengths_close_the_connection() {
        for head in [
            &b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n"[..],
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n",
        ] {
            let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
            f.push(head);
            assert!(f.next_frame().is_err());
            f.push(OPTIONS);
            assert!(f.next_frame().is_err(), "stays failed");
        }
    }

    #[test]
    fn a_folded_content_length_is_read_as_the_parser_reads_it() {
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 5\r\n\r\nhello");
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(m))) if m.ends_with(b"hello")));
    }

    #[test]
    fn the_length_is_found_wherever_the_reads_split_the_head() {
        // A folded Content-Length, a compact one, other lines that begin as its name can, and
        // a body that begins with 'C' (not a header line).
        let msg: &[u8] = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length:\r\n 4\r\ncontact: <sip:c@d>\r\nl: 4\r\n\r\nCxyz";
        for split in 0..msg.len() {
            let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
            f.push(&msg[..split]);
            let mut got = frames(&mut f);
            f.push(&msg[split..]);
            got.extend(frames(&mut f));
            assert_eq!(
                got,
                [Frame::Message(Bytes::from_static(msg))],
                "split at {split}"
            );
        }
        // Names in any case, with whitespace before the colon; look-alikes are not the length.
        for head in [
            &b"OPTIONS sip:a@b SIP/2.0\r\nCONTENT-LENGTH \t: 4\r\n\r\n"[..],
            b"OPTIONS sip:a@b SIP/2.0\r\nL:4\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nContent-Lengthx: 9\r\nl :4\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nl\r\nLength: 9\r\nc: 9\r\ncontent-length: 4\r\n\r\n",
        ] {
            let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
            f.push(head);
            f.push(b"abcdEXTRA");
            let Ok(Some(Frame::Message(m))) = f.next_frame() else {
                panic!("{}", String::from_utf8_lossy(head));
            };
            assert!(
                m.ends_with(b"\r\n\r\nabcd"),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // Lengths that disagree, one of them folded, are refused however they arrive.
        let bad: &[u8] = b"INVITE sip:a@b SIP/2.0\r\nContent-Length:\r\n 4\r\nl: 5\r\n\r\nCxyz";
        for split in 0..bad.len() {
            let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
            f.push(&bad[..split]);
            let _ = f.next_frame();
            f.push(&bad[split..]);
            assert_eq!(
                f.next_frame(),
                Err(FrameError::ContentLength),
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_trickled_head_is_scanned_once() {
        // Each read resumes the search where the last one stopped (less the two bytes a line
        // end split across reads needs), so a byte-by-byte head costs linear time.
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        for _ in 0..1_000 {
            f.push(b"X");
            assert_eq!(f.next_frame(), Ok(None));
            assert_eq!(f.head_scanned, f.buffered());
        }
        // A head end split across reads is still found.
        f.push(b"\r\n\r");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"\n");
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
        // A first line that never ends is searched once too.
        let mut f = StreamFramer::new(Role::Accepted, DEFAULT_MAX_MESSAGE);
        for _ in 0..1_000 {
            f.push(b"Y");
            assert_eq!(f.next_frame(), Ok(None));
            assert_eq!(f.line_scanned, f.buffered());
        }
    }

    #[test]
    fn an_endless_head_is_refused() {
        let mut f = StreamFramer::new(Role::Accepted, 1000);
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        for _ in 0..100 {
            f.push(b"X-Filler: 0123456789\r\n");
        }
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge(1000)));
        let mut f = StreamFramer::new(Role::Accepted, 1000);
        f.push(&[b'a'; 2000]);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Skipped(2000))));
    }
}
