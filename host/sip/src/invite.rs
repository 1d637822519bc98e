//! The INVITE core of a user agent: what RFC 3261 leaves above the transaction layer for one
//! INVITE, initial or re-INVITE, as sans-IO state machines a call layer drives per call leg.
//!
//! [`InviteServer`] (the UAS side) keeps the 2xx alive end to end (RFC 3261 section
//! 13.3.1.4, RFC 6026): the INVITE server transaction sends a 2xx once, so the core hands it
//! to the transaction again at T1, 2*T1, ... capped at T2 until the ACK arrives, and after
//! 64*T1 without one reports [`ServerEvent::AckTimeout`] (the dialog is confirmed all the
//! same, and the call layer ends the session with BYE).
//!
//! [`InviteClient`] (the UAC side) sorts the responses to its INVITE (RFC 3261 section
//! 13.2.2.4): the first 2xx of each dialog is reported and ACKed through
//! [`InviteClient::ack`]; a retransmitted 2xx, which arrives as the transaction layer's
//! `Event::Response` in Accepted or as `Event::Stray` after it, is answered with the same ACK
//! again and not reported as a new answer; a 2xx from a second fork makes a second dialog,
//! reported as forked so the call layer ACKs it and sends BYE.
//!
//! Reliable provisional responses (RFC 3262, `100rel` and PRACK). The UAS core sends its
//! provisionals (not 100) reliably when the INVITE requires `100rel`, or supports it and the
//! [`Reliability`] chosen says so: each carries `Require: 100rel` and an `RSeq` that starts
//! where the caller's random number says and grows by one; it is sent again at T1 doubling
//! (no cap at T2, section 3) until a PRACK names it in `RAck`, and after 64*T1 without one the
//! core reports [`ServerEvent::PrackTimeout`] (answer the INVITE 5xx; the provisional is
//! given up, so a PRACK for it is 481 and a 2xx is no longer held for it). One reliable
//! provisional is unacknowledged at a time: later ones wait in order. A PRACK that matches
//! (RSeq, CSeq number, method) is answered 200, any other 481. A 2xx is held back while a
//! reliable provisional that carried a body (an offer or answer) is unacknowledged, and sent
//! on its PRACK (section 3); any other final is sent at once and stops the provisional's
//! retransmission, though a PRACK for it that crosses the final still gets 200.
//!
//! The UAC core treats a provisional (101-199) with `Require: 100rel` and an `RSeq` as
//! reliable (section 4): per dialog, the first one sets the expected sequence, and a later one
//! is processed and PRACKed only if its RSeq is exactly one more; a retransmission, or one
//! that comes out of order, is [`Received::Ignored`], never PRACKed twice (a lost PRACK is
//! the PRACK transaction's to retransmit). The PRACK itself is built by the early dialog
//! ([`Dialog::prack`]). Offer and answer in PRACK and its 200 are the media layer's: bodies are
//! carried, never read.
//!
//! Readings chosen:
//! - The 2xx is retransmitted whatever the transport: section 13.3.1.4 does not make it
//!   depend on the first hop, because a later hop may be UDP.
//! - Time is taken from the scheduled instant, not from the call: a late
//!   [`InviteServer::handle_timeout`] keeps the schedule (every due retransmission is sent).
//! - A reliable provisional is retransmitted whatever the transport, like the 2xx.
//! - When a held 2xx meets [`ServerEvent::PrackTimeout`] the 2xx is dropped, so the call
//!   layer can send the 5xx the RFC asks for; any non-2xx final replaces a held 2xx.
//! - The call layer keeps an [`InviteClient`] until the transaction layer reports the INVITE
//!   transaction terminated (Timer M, 64*T1 after the first 2xx): a UAS stops retransmitting
//!   its 2xx by then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::dialog::{Dialog, DialogError};
use crate::header::{HeaderName, Headers};
use crate::message::{Request, Response};
use crate::transaction::Timers;
use crate::typed::Method;

/// A response that is sent again on a doubling interval until it is acknowledged or the
/// wait ends.
#[derive(Debug)]
struct Retransmit {
    response: Response,
    interval: Duration,
    /// The interval stops doubling here (`None`: it never stops).
    cap: Option<Duration>,
    next_at: Option<Instant>,
    give_up_at: Option<Instant>,
}

impl Retransmit {
    fn new(now: Instant, response: Response, timers: &Timers, cap: Option<Duration>) -> Self {
        Retransmit {
            response,
            interval: timers.t1,
            cap,
            next_at: Some(now + timers.t1),
            give_up_at: Some(now + 64 * timers.t1),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.next_at, self.give_up_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the UAS core reports without being asked: the ends of its waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The 2xx went unacknowledged for 64*T1 (RFC 3261 section 13.3.1.4): the dialog is
    /// confirmed, but the session should end: send BYE.
    AckTimeout,
    /// A reliable provisional went unacknowledged for 64*T1 (RFC 3262 section 3): answer the
    /// INVITE with a 5xx.
    PrackTimeout,
}

/// When the UAS sends provisional responses reliably (RFC 3262 section 3). A request that
/// `Require`s `100rel` always gets them reliably (the screen answered 420 already if
/// `100rel` is not supported at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reliability {
    /// Only when the INVITE requires it.
    WhenRequired,
    /// Also when the INVITE only lists `100rel` in `Supported`: early media then reaches
    /// callers behind lossy links. The default, as most carriers expect it.
    #[default]
    WhenSupported,
}

/// The `RAck` header of a PRACK (RFC 3262 section 7.2): which reliable provisional it
/// acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// The provisional's RSeq.
    pub rseq: u32,
    /// The CSeq number of the request it answered.
    pub cseq: u32,
    /// The method of that request (INVITE).
    pub method: Method,
}

impl RAck {
    /// Parses `RAck: 776656 1 INVITE`.
    pub fn parse(v: &Bytes) -> Option<RAck> {
        let text = std::str::from_utf8(v).ok()?;
        let mut parts = text.split_ascii_whitespace();
        let rseq = parse_number(parts.next()?)?;
        let cseq = parse_number(parts.next()?)?;
        let m = parts.next()?;
        let method = Method::parse(&v.slice_ref(m.as_bytes()), m.as_bytes())?;
        parts
            .next()
            .is_none()
            .then_some(RAck { rseq, cseq, method })
    }
}

impl std::fmt::Display for RAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// A decimal number of at most 10 digits that fits 32 bits (RFC 3262's `1*DIGIT`).
fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether a `Supported` or `Require` header (any of its lines) lists `tag`.
pub fn has_option_tag(headers: &Headers, name: &HeaderName, tag: &str) -> bool {
    headers.get_all(name).any(|line| {
        crate::typed::tokens(line)
            .map(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case(tag.as_bytes())))
            .unwrap_or(false)
    })
}

/// The RSeq of a reliable provisional, `None` for any other response.
fn reliable_rseq(response: &Response) -> Option<u32> {
    if !(101..200).contains(&response.status)
        || !has_option_tag(response.headers(), &HeaderName::Require, "100rel")
    {
        return None;
    }
    let v = response.headers().get(&HeaderName::RSeq)?;
    parse_number(std::str::from_utf8(v).ok()?.trim())
}

/// The reliable provisional that waits for its PRACK.
#[derive(Debug)]
struct Unacked {
    rseq: u32,
    /// It carried a body (an offer or answer): no 2xx until it is PRACKed.
    body: bool,
    retransmit: Retransmit,
}

/// Why the UAS core refused to send a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The INVITE already has its final response.
    #[error("the INVITE already has a final response")]
    Finished,
    /// A final response was passed as provisional, or the other way round.
    #[error("status {0} is not allowed here")]
    Status(u16),
}

/// The UAS core of one INVITE. Responses it wants sent come out of
/// [`InviteServer::poll_transmit`]: pass each to the INVITE's server transaction
/// (`Transactions::respond`), which sends it on the request's flow.
#[derive(Debug)]
pub struct InviteServer {
    timers: Timers,
    /// The INVITE's CSeq number: ACK and PRACK carry it.
    seq: u32,
    finished: bool,
    /// The 2xx, while it waits for its ACK.
    answer: Option<Retransmit>,
    /// Provisionals go reliably.
    reliable: bool,
    next_rseq: u32,
    unacked: Option<Unacked>,
    /// Reliable provisionals waiting for the PRACK of the one before.
    queued: VecDeque<Response>,
    /// A 2xx held until the PRACK of a provisional with a body.
    held: Option<Response>,
    transmits: VecDeque<Response>,
    events: VecDeque<ServerEvent>,
}

impl InviteServer {
    /// The core for a received INVITE. `rseq_start` is a random number for the first RSeq
    /// (RFC 3262 section 3 wants it random in 1 to 2**31-1; it is brought into that range).
    pub fn new(
        invite: &Request,
        timers: Timers,
        reliability: Reliability,
        rseq_start: u32,
    ) -> InviteServer {
        let headers = invite.headers();
        let reliable = has_option_tag(headers, &HeaderName::Require, "100rel")
            || (reliability == Reliability::WhenSupported
                && has_option_tag(headers, &HeaderName::Supported, "100rel"));
        InviteServer {
            timers,
            seq: invite.cseq().seq,
            finished: false,
            answer: None,
            reliable,
            next_rseq: rseq_start % ((1 << 31) - 1) + 1,
            unacked: None,
            queued: VecDeque::new(),
            held: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether provisionals go reliably (the INVITE offered or required `100rel`).
    pub fn is_reliable(&self) -> bool {
        self.reliable
    }

    /// Sends a provisional response (101-199; 100 Trying is the transaction layer's). When
    /// provisionals go reliably it gets `Require: 100rel` and an `RSeq`, and waits its turn
    /// if the one before is not yet PRACKed.
    pub fn provisional(&mut self, now: Instant, response: Response) -> Result<(), InviteError> {
        if self.finished {
            return Err(InviteError::Finished);
        }
        if !(101..200).contains(&response.status) {
            return Err(InviteError::Status(response.status));
        }
        if !self.reliable {
            self.transmits.push_back(response);
        } else if self.unacked.is_some() {
            self.queued.push_back(response);
        } else {
            self.send_reliable(now, response);
        }
        Ok(())
    }

    fn send_reliable(&mut self, now: Instant, mut response: Response) {
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.wrapping_add(1);
        let headers = response.headers_mut();
        headers.push(HeaderName::Require, "100rel");
        headers.set(HeaderName::RSeq, rseq.to_string());
        self.unacked = Some(Unacked {
            rseq,
            body: !response.body.is_empty(),
            retransmit: Retransmit::new(now, response.clone(), &self.timers, None),
        });
        self.transmits.push_back(response);
    }

    /// Sends the final response. A 2xx is sent again on schedule until
    /// [`InviteServer::receive_ack`] sees its ACK; it is held back while a reliable
    /// provisional with a body waits for its PRACK.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), InviteError> {
        if !(200..700).contains(&response.status) {
            return Err(InviteError::Status(response.status));
        }
        if self.finished && !(self.held.is_some() && response.status >= 300) {
            return Err(InviteError::Finished);
        }
        self.finished = true;
        self.held = None;
        self.queued.clear();
        if response.status < 300 && self.unacked.as_ref().is_some_and(|u| u.body) {
            self.held = Some(response);
            return Ok(());
        }
        self.send_final(now, response);
        Ok(())
    }

    fn send_final(&mut self, now: Instant, response: Response) {
        // The provisional is not sent again; a PRACK that crosses the final still matches.
        if let Some(u) = &mut self.unacked {
            u.retransmit.next_at = None;
            u.retransmit.give_up_at = None;
        }
        if response.status < 300 {
            self.answer = Some(Retransmit::new(
                now,
                response.clone(),
                &self.timers,
                Some(self.timers.t2),
            ));
        }
        self.transmits.push_back(response);
    }

    /// A PRACK arrived (the call layer matched it to the dialog and checked its CSeq). The
    /// answer is 200 if its `RAck` names the unacknowledged reliable provisional, else 481;
    /// send it on the PRACK's server transaction, with a body if the media layer has one. A
    /// match lets the next queued provisional, or a held 2xx, go.
    pub fn receive_prack(&mut self, now: Instant, prack: &Request) -> Response {
        let rack = prack.headers().get(&HeaderName::RAck).and_then(RAck::parse);
        let matched = match (&self.unacked, rack) {
            (Some(u), Some(rack)) => {
                rack.rseq == u.rseq && rack.cseq == self.seq && rack.method == Method::Invite
            }
            _ => false,
        };
        if !matched {
            return prack.reply(481, "Call/Transaction Does Not Exist", None);
        }
        self.unacked = None;
        if let Some(answer) = self.held.take() {
            self.send_final(now, answer);
        } else if !self.finished
            && let Some(next) = self.queued.pop_front()
        {
            self.send_reliable(now, next);
        }
        prack.reply(200, "OK", None)
    }

    /// An ACK for this INVITE's 2xx arrived (the call layer matched it to the dialog). Returns
    /// whether it was this INVITE's (same CSeq number); retransmission stops.
    pub fn receive_ack(&mut self, ack: &Request) -> bool {
        if ack.method() != &Method::Ack || ack.cseq().seq != self.seq {
            return false;
        }
        self.answer = None;
        true
    }

    /// Whether the final response was sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a 2xx still waits for its ACK.
    pub fn awaits_ack(&self) -> bool {
        self.answer.is_some()
    }

    /// The next response to hand to the INVITE's server transaction.
    pub fn poll_transmit(&mut self) -> Option<Response> {
        self.transmits.pop_front()
    }

    /// The next event for the call layer.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`InviteServer::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let provisional = self.unacked.as_ref().and_then(|u| u.retransmit.deadline());
        let answer = self.answer.as_ref().and_then(Retransmit::deadline);
        [provisional, answer].into_iter().flatten().min()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(u) = &mut self.unacked {
            let r = &mut u.retransmit;
            if r.give_up_at.is_some_and(|at| at <= now) {
                // Given up: a later 2xx is not held for it (it would wait for ever, with no
                // timer left to report it), and a PRACK for it is 481.
                self.unacked = None;
                self.queued.clear();
                if self.held.take().is_some() {
                    self.finished = false;
                }
                self.events.push_back(ServerEvent::PrackTimeout);
                break;
            }
            match r.next_at {
                Some(at) if at <= now => {
                    self.transmits.push_back(r.response.clone());
                    r.interval *= 2;
                    r.next_at = Some(at + r.interval);
                }
                _ => break,
            }
        }
        while let Some(a) = &mut self.answer {
            if a.give_up_at.is_some_and(|at| at <= now) {
                self.answer = None;
                self.events.push_back(ServerEvent::AckTimeout);
                break;
            }
            match a.next_at {
                Some(at) if at <= now => {
                    self.transmits.push_back(a.response.clone());
                    a.interval = (a.interval * 2).min(a.cap.unwrap_or(Duration::MAX));
                    a.next_at = Some(at + a.interval);
                }
                _ => break,
            }
        }
    }
}

/// How many dialogs (To tags) the responses to one INVITE may make. 32: a forking proxy fans
/// out to the few contacts of one user, so this is far above any real call, and it bounds what
/// a peer that makes up a new To tag for each provisional can make us (and the call layer,
/// which keeps each early dialog) hold for the 64*T1 the INVITE may last. A response that
/// would make one more is [`Received::Ignored`]; for a 2xx that means no ACK, so that fork's
/// UAS gives up after 64*T1 and ends its dialog itself.
pub const MAX_FORKS: usize = 32;

/// One dialog (To tag) of the responses to an INVITE.
#[derive(Debug)]
struct Leg {
    remote_tag: Bytes,
    /// The RSeq of the last reliable provisional processed (RFC 3262 section 4).
    rseq: Option<u32>,
    answered: bool,
    /// The ACK sent for its 2xx, sent again for each retransmission.
    ack: Option<Request>,
}

/// What a response to the INVITE means to the call layer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Received {
    /// A provisional response. `dialog` is a new early dialog when it is the first response
    /// with this To tag (and a Contact); later ones with the same tag update nothing here.
    /// `prack` is set for a reliable provisional: send [`Dialog::prack`] with it in that
    /// dialog.
    Provisional {
        /// The status.
        status: u16,
        /// The dialog's remote tag, if the response has one.
        remote_tag: Option<Bytes>,
        /// The early dialog this response made.
        dialog: Option<Dialog>,
        /// What the PRACK acknowledges.
        prack: Option<RAck>,
    },
    /// A reliable provisional already processed, or one out of order (RFC 3262 section 4):
    /// not processed further, not PRACKed. Also any response that would make a dialog beyond
    /// [`MAX_FORKS`].
    Ignored,
    /// The first 2xx of a dialog: ACK it with [`InviteClient::ack`]. `dialog` is set when no
    /// provisional made the dialog before (otherwise confirm the early one with
    /// [`Dialog::update_from_response`]). `forked` when another dialog was answered first:
    /// ACK this one and end it with BYE (RFC 3261 section 13.2.2.4).
    Answered {
        /// The dialog's remote tag.
        remote_tag: Bytes,
        /// The dialog this 2xx made.
        dialog: Option<Dialog>,
        /// Another fork answered first.
        forked: bool,
    },
    /// A 2xx seen before: send `ack` again (`None` if the call layer has not ACKed yet).
    Retransmitted {
        /// The ACK to resend.
        ack: Option<Request>,
    },
    /// A final response other than 2xx (its ACK is the transaction layer's).
    Rejected {
        /// The status.
        status: u16,
    },
}

/// The UAC core of one INVITE: its dialogs, one per To tag, and the ACK of each 2xx.
#[derive(Debug)]
pub struct InviteClient {
    invite: Request,
    legs: Vec<Leg>,
    answered: bool,
    /// A re-INVITE: its one dialog is the only one (a response with another To tag is not
    /// of it).
    within: bool,
}

impl InviteClient {
    /// The core for an INVITE that makes a dialog (the initial INVITE).
    pub fn new(invite: Request) -> InviteClient {
        InviteClient {
            invite,
            legs: Vec::new(),
            answered: false,
            within: false,
        }
    }

    /// The core for a re-INVITE inside `dialog`: its responses make no new dialog, and one
    /// with another To tag is refused ([`DialogError::Mismatch`]).
    pub fn within(invite: Request, dialog: &Dialog) -> InviteClient {
        InviteClient {
            invite,
            legs: vec![Leg {
                remote_tag: dialog.id().remote_tag.clone(),
                rseq: None,
                answered: false,
                ack: None,
            }],
            answered: false,
            within: true,
        }
    }

    /// The INVITE.
    pub fn invite(&self) -> &Request {
        &self.invite
    }

    /// Whether a 2xx arrived.
    pub fn is_answered(&self) -> bool {
        self.answered
    }

    fn leg(&mut self, tag: &[u8]) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.remote_tag == tag)
    }

    /// Sorts a response to the INVITE (from the transaction layer's `Event::Response` or
    /// `Event::Stray`).
    pub fn receive_response(&mut self, response: &Response) -> Result<Received, DialogError> {
        let core = response.core().ok_or(DialogError::Mismatch)?;
        if core.call_id() != self.invite.call_id()
            || core.cseq().seq != self.invite.cseq().seq
            || core.cseq().method != Method::Invite
        {
            return Err(DialogError::Mismatch);
        }
        let tag = core.to().tag().map(Bytes::copy_from_slice);
        let status = response.status;
        match status {
            100..=199 => {
                let rseq = reliable_rseq(response);
                let mut dialog = None;
                if let Some(tag) = &tag
                    && self.leg(tag).is_none()
                    && status > 100
                {
                    if self.within {
                        return Err(DialogError::Mismatch);
                    }
                    if self.legs.len() >= MAX_FORKS {
                        return Ok(Received::Ignored);
                    }
                    match Dialog::uac(&self.invite, response) {
                        Ok(d) => {
                            self.legs.push(Leg {
                                remote_tag: tag.clone(),
                                rseq: None,
                                answered: false,
                                ack: None,
                            });
                            dialog = Some(d);
                        }
                        // A reliable provisional must make a dialog to be PRACKed in.
                        Err(e) if rseq.is_some() => return Err(e),
                        Err(_) => {}
                    }
                }
                let mut prack = None;
                if let (Some(rseq), Some(tag)) = (rseq, &tag)
                    && let Some(leg) = self.leg(tag)
                {
                    let in_order = leg
                        .rseq
                        .is_none_or(|last| last.checked_add(1) == Some(rseq));
                    if leg.answered || !in_order {
                        return Ok(Received::Ignored);
                    }
                    leg.rseq = Some(rseq);
                    prack = Some(RAck {
                        rseq,
                        cseq: self.invite.cseq().seq,
                        method: Method::Invite,
                    });
                }
                Ok(Received::Provisional {
                    status,
                    remote_tag: tag,
                    dialog,
                    prack,
                })
            }
            200..=299 => {
                let tag = tag.ok_or(DialogError::NoTag)?;
                let forked = self.answered;
                if let Some(leg) = self.leg(&tag) {
                    if leg.answered {
                        return Ok(Received::Retransmitted {
                            ack: leg.ack.clone(),
                        });
                    }
                    leg.answered = true;
                    self.answered = true;
                    return Ok(Received::Answered {
                        remote_tag: tag,
                        dialog: None,
                        forked,
                    });
                }
                if self.within {
                    return Err(DialogError::Mismatch);
                }
                if self.legs.len() >= MAX_FORKS {
                    return Ok(Received::Ignored);
                }
                let dialog = Dialog::uac(&self.invite, response)?;
                self.legs.push(Leg {
                    remote_tag: tag.clone(),
                    rseq: None,
                    answered: true,
                    ack: None,
                });
                self.answered = true;
                Ok(Received::Answered {
                    remote_tag: tag,
                    dialog: Some(dialog),
                    forked,
                })
            }
            _ => Ok(Received::Rejected { status }),
        }
    }

    /// The ACK for the 2xx of `dialog` (RFC 3261 section 13.2.2.4), kept to answer each
    /// retransmission of that 2xx. `via` is the top Via with a fresh branch.
    pub fn ack(
        &mut self,
        dialog: &Dialog,
        via: Bytes,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        let seq = self.invite.cseq().seq;
        let leg = self
            .leg(&dialog.id().remote_tag)
            .filter(|l| l.answered)
            .ok_or(DialogError::Mismatch)?;
        let ack = dialog.ack(seq, via, body)?;
        leg.ack = Some(ack.clone());
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn request(text: &str) -> Request {
        match Message::parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn parsed(response: Response) -> Response {
        match Message::parse(&response.to_vec()) {
            Ok(Message::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Content-Length: 0

";

    fn answer(invite: &Request, status: u16, tag: &str) -> Response {
        let mut r = invite.reply(status, "OK", Some(tag));
        r.headers_mut().push(
            crate::header::HeaderName::Contact,
            format!("<sip:{tag}@192.0.2.4>"),
        );
        parsed(r)
    }

    fn via(branch: &str) -> Bytes {
        Bytes::from(format!(
            "SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}"
        ))
    }

    #[test]
    fn the_2xx_is_retransmitted_until_its_ack() {
        let t0 = Instant::now();
        let invite = request(INVITE);
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        assert_eq!(uas.poll_transmit().map(|r| r.status), Some(200));
        let mut sent = Vec::new();
        while let Some(at) = uas.poll_timeout() {
            if at > t0 + Duration::from_millis(4_000) {
                break;
            }
            uas.handle_timeout(at);
            while uas.poll_transmit().is_some() {
                sent.push((at - t0).as_millis());
            }
        }
        assert_eq!(sent, [500, 1_500, 3_500]);
        assert!(uas.receive_ack(&request(&INVITE.replace("INVITE", "ACK"))));
        assert_eq!(uas.poll_timeout(), None);
        assert_eq!(
            uas.respond(t0, answer(&invite, 500, "b")),
            Err(InviteError::Finished)
        );
    }

    #[test]
    fn a_late_timer_call_keeps_the_schedule() {
        let t0 = Instant::now();
        let invite = request(INVITE);
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        let _first = uas.poll_transmit();
        uas.handle_timeout(t0 + Duration::from_millis(3_600));
        let mut n = 0;
        while uas.poll_transmit().is_some() {
            n += 1;
        }
        assert_eq!(n, 3, "0.5 s, 1.5 s and 3.5 s were all due");
        assert_eq!(uas.poll_timeout(), Some(t0 + Duration::from_millis(7_500)));
    }

    #[test]
    fn an_ack_of_another_invite_does_not_stop_it() {
        let t0 = Instant::now();
        let invite = request(INVITE);
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        let other = request(&INVITE.replace("INVITE", "ACK").replace("314159", "314160"));
        assert!(!uas.receive_ack(&other));
        assert!(uas.awaits_ack());
    }

    #[test]
    fn forks_and_retransmissions_are_told_apart() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        // An early dialog from fork b, then its 2xx confirms it.
        let Received::Provisional {
            dialog: Some(mut b),
            ..
        } = uac.receive_response(&answer(&invite, 180, "b")).unwrap()
        else {
            panic!("an early dialog")
        };
        assert!(b.is_early());
        let ok_b = answer(&invite, 200, "b");
        let Received::Answered {
            dialog: None,
            forked: false,
            ..
        } = uac.receive_response(&ok_b).unwrap()
        else {
            panic!("the answer")
        };
        b.update_from_response(&ok_b).unwrap();
        assert!(!b.is_early());
        let ack = uac.ack(&b, via("z9hG4bKack1"), None).unwrap();
        // Its retransmission gets the same ACK.
        let Received::Retransmitted { ack: Some(again) } = uac.receive_response(&ok_b).unwrap()
        else {
            panic!("a retransmission")
        };
        assert_eq!(again.encode_to_vec(), ack.encode_to_vec());
        // Fork c answers too: a second dialog, reported as forked.
        let Received::Answered {
            dialog: Some(c),
            forked: true,
            remote_tag,
        } = uac.receive_response(&answer(&invite, 200, "c")).unwrap()
        else {
            panic!("a forked answer")
        };
        assert_eq!(remote_tag, "c");
        assert_eq!(c.remote_target().as_bytes(), b"sip:c@192.0.2.4");
        // An ACK can only be built for an answered dialog.
        let early_d = Dialog::uac(&invite, &answer(&invite, 180, "d")).unwrap();
        assert_eq!(
            uac.ack(&early_d, via("z9hG4bKack2"), None).unwrap_err(),
            DialogError::Mismatch
        );
    }

    #[test]
    fn a_retransmitted_2xx_before_the_ack_is_built_asks_for_nothing() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        let ok = answer(&invite, 200, "b");
        assert!(matches!(
            uac.receive_response(&ok).unwrap(),
            Received::Answered { .. }
        ));
        assert!(matches!(
            uac.receive_response(&ok).unwrap(),
            Received::Retransmitted { ack: None }
        ));
    }

    #[test]
    fn a_reinvite_makes_no_new_dialog() {
        let invite = request(INVITE);
        let dialog = Dialog::uac(&invite, &answer(&invite, 200, "b")).unwrap();
        let reinvite = request(&INVITE.replace("314159", "314160").replace(
            "To: Bob <sip:bob@biloxi.example.com>",
            "To: Bob <sip:bob@biloxi.example.com>;tag=b",
        ));
        let mut uac = InviteClient::within(reinvite.clone(), &dialog);
        // (`reply` keeps a To tag the request has: build the stranger's from an untagged copy.)
        let untagged = request(&INVITE.replace("314159", "314160"));
        for status in [183, 200] {
            assert_eq!(
                uac.receive_response(&answer(&untagged, status, "c"))
                    .unwrap_err(),
                DialogError::Mismatch,
                "{status} with another To tag"
            );
        }
        assert!(!uac.is_answered());
        assert!(matches!(
            uac.receive_response(&answer(&reinvite, 200, "b")).unwrap(),
            Received::Answered {
                dialog: None,
                forked: false,
                ..
            }
        ));
    }

    #[test]
    fn made_up_to_tags_make_at_most_max_forks_dialogs() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        let mut made = 0;
        for i in 0..MAX_FORKS + 10 {
            match uac
                .receive_response(&answer(&invite, 183, &format!("t{i}")))
                .unwrap()
            {
                Received::Provisional {
                    dialog: Some(_), ..
                } => made += 1,
                Received::Ignored => assert!(i >= MAX_FORKS, "{i}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(made, MAX_FORKS);
        assert_eq!(uac.legs.len(), MAX_FORKS);
        // A 2xx from a dialog already made is still the answer; a new one is not kept.
        assert!(matches!(
            uac.receive_response(&answer(&invite, 200, "t0")).unwrap(),
            Received::Answered {
                dialog: None,
                forked: false,
                ..
            }
        ));
        assert!(matches!(
            uac.receive_response(&answer(&invite, 200, "late")).unwrap(),
            Received::Ignored
        ));
        assert_eq!(uac.legs.len(), MAX_FORKS);
    }

    #[test]
    fn a_response_to_another_request_is_refused() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        let other = request(&INVITE.replace("314159", "1"));
        assert_eq!(
            uac.receive_response(&answer(&other, 200, "b")).unwrap_err(),
            DialogError::Mismatch
        );
    }

    // ----- 100rel -----

    const SUPPORTED_100REL: &str =
        "Contact: <sip:alice@pc33.atlanta.example.com>\nSupported: 100rel";

    fn prack(rack: &str, seq: u32) -> Request {
        request(&format!(
            "PRACK sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKp{seq}
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=b
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: {seq} PRACK
RAck: {rack}
Content-Length: 0

"
        ))
    }

    fn with_body(mut r: Response) -> Response {
        r.body = Bytes::from_static(b"v=0\r\n");
        r
    }

    fn drain(uas: &mut InviteServer) -> Vec<(u16, Option<Bytes>)> {
        std::iter::from_fn(|| uas.poll_transmit())
            .map(|r| (r.status, r.headers().get(&HeaderName::RSeq).cloned()))
            .collect()
    }

    #[test]
    fn rack_reads_and_prints() {
        let rack = RAck::parse(&Bytes::from_static(b"776656  1 INVITE")).unwrap();
        assert_eq!(
            rack,
            RAck {
                rseq: 776656,
                cseq: 1,
                method: Method::Invite
            }
        );
        assert_eq!(rack.to_string(), "776656 1 INVITE");
        for bad in [
            "",
            "1 INVITE",
            "1 2 INVITE x",
            "x 1 INVITE",
            "99999999999 1 INVITE",
        ] {
            assert_eq!(RAck::parse(&Bytes::from(bad)), None, "{bad}");
        }
    }

    #[test]
    fn reliability_follows_the_invite_and_the_policy() {
        let plain = request(INVITE);
        let supported = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        let required = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "Contact: <sip:alice@pc33.atlanta.example.com>\nRequire: 100rel",
        ));
        let t = Timers::default();
        assert!(!InviteServer::new(&plain, t, Reliability::WhenSupported, 0).is_reliable());
        assert!(InviteServer::new(&supported, t, Reliability::WhenSupported, 0).is_reliable());
        assert!(!InviteServer::new(&supported, t, Reliability::WhenRequired, 0).is_reliable());
        assert!(InviteServer::new(&required, t, Reliability::WhenRequired, 0).is_reliable());
    }

    #[test]
    fn reliable_provisionals_queue_and_go_in_rseq_order() {
        let t0 = Instant::now();
        let invite = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        // The random start 41 gives RSeq 42.
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 41);
        uas.provisional(t0, answer(&invite, 180, "b")).unwrap();
        uas.provisional(t0, answer(&invite, 183, "b")).unwrap();
        assert_eq!(drain(&mut uas), [(180, Some(Bytes::from("42")))]);
        // A PRACK for another RSeq, or another request, matches nothing.
        assert_eq!(
            uas.receive_prack(t0, &prack("43 314159 INVITE", 1)).status,
            481
        );
        assert_eq!(
            uas.receive_prack(t0, &prack("42 314158 INVITE", 2)).status,
            481
        );
        assert_eq!(
            uas.receive_prack(t0, &prack("42 314159 INVITE", 3)).status,
            200
        );
        assert_eq!(drain(&mut uas), [(183, Some(Bytes::from("43")))]);
        // Acknowledged once: the same PRACK again (a new transaction) is 481.
        assert_eq!(
            uas.receive_prack(t0, &prack("42 314159 INVITE", 4)).status,
            481
        );
        assert_eq!(
            uas.receive_prack(t0, &prack("43 314159 INVITE", 5)).status,
            200
        );
        assert_eq!(uas.poll_timeout(), None);
    }

    #[test]
    fn the_first_rseq_is_in_range_and_a_prack_must_name_the_invite() {
        let invite = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        let t0 = Instant::now();
        // RFC 3262 section 3: the first RSeq is in 1 ..= 2**31 - 1 whatever the random start.
        for (start, rseq) in [(0, "1"), (2_147_483_646, "2147483647"), (u32::MAX, "2")] {
            let mut uas = InviteServer::new(
                &invite,
                Timers::default(),
                Reliability::WhenSupported,
                start,
            );
            uas.provisional(t0, answer(&invite, 180, "b")).unwrap();
            assert_eq!(drain(&mut uas), [(180, Some(Bytes::from(rseq)))], "{start}");
        }
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, answer(&invite, 180, "b")).unwrap();
        for bad in ["1 314159 BYE", "1 314159", "x 314159 INVITE", ""] {
            assert_eq!(uas.receive_prack(t0, &prack(bad, 1)).status, 481, "{bad}");
        }
        assert_eq!(
            uas.receive_prack(t0, &prack("1 314159 INVITE", 2)).status,
            200
        );
    }

    #[test]
    fn a_reliable_provisional_doubles_without_cap_and_gives_up_after_64_t1() {
        let t0 = Instant::now();
        let invite = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, answer(&invite, 180, "b")).unwrap();
        drain(&mut uas);
        let mut sent = Vec::new();
        while let Some(at) = uas.poll_timeout() {
            uas.handle_timeout(at);
            for _ in drain(&mut uas) {
                sent.push((at - t0).as_millis());
            }
        }
        assert_eq!(sent, [500, 1_500, 3_500, 7_500, 15_500, 31_500]);
        assert_eq!(uas.poll_event(), Some(ServerEvent::PrackTimeout));
        uas.respond(t0, answer(&invite, 504, "b")).unwrap();
        assert_eq!(drain(&mut uas), [(504, None)]);
    }

    #[test]
    fn a_2xx_waits_for_the_prack_of_a_provisional_with_a_body() {
        let t0 = Instant::now();
        let invite = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, with_body(answer(&invite, 183, "b")))
            .unwrap();
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        assert_eq!(drain(&mut uas), [(183, Some(Bytes::from("1")))]);
        assert_eq!(
            uas.receive_prack(t0, &prack("1 314159 INVITE", 1)).status,
            200
        );
        assert_eq!(drain(&mut uas), [(200, None)]);
        assert!(uas.awaits_ack());

        // Without the PRACK the held 2xx is dropped at 64*T1, so a 5xx can go.
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, with_body(answer(&invite, 183, "b")))
            .unwrap();
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        uas.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(uas.poll_event(), Some(ServerEvent::PrackTimeout));
        uas.respond(t0, answer(&invite, 500, "b")).unwrap();
        assert_eq!(drain(&mut uas).last(), Some(&(500, None)));

        // A call layer that answers 2xx after the PrackTimeout all the same is not left with
        // a 2xx held for ever: it goes at once.
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, with_body(answer(&invite, 183, "b")))
            .unwrap();
        uas.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(uas.poll_event(), Some(ServerEvent::PrackTimeout));
        drain(&mut uas);
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        assert_eq!(drain(&mut uas), [(200, None)]);
        assert!(uas.awaits_ack());
    }

    #[test]
    fn a_final_without_a_held_body_goes_at_once_and_a_crossing_prack_still_matches() {
        let t0 = Instant::now();
        let invite = request(&INVITE.replace(
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            SUPPORTED_100REL,
        ));
        let mut uas = InviteServer::new(&invite, Timers::default(), Reliability::WhenSupported, 0);
        uas.provisional(t0, answer(&invite, 180, "b")).unwrap();
        uas.provisional(t0, answer(&invite, 183, "b")).unwrap();
        uas.respond(t0, answer(&invite, 200, "b")).unwrap();
        assert_eq!(
            drain(&mut uas),
            [(180, Some(Bytes::from("1"))), (200, None)],
            "the queued 183 is dropped"
        );
        assert_eq!(
            uas.receive_prack(t0, &prack("1 314159 INVITE", 1)).status,
            200
        );
        assert_eq!(drain(&mut uas), [], "nothing more goes");
    }

    fn reliable(invite: &Request, status: u16, tag: &str, rseq: u32) -> Response {
        let mut r = answer(invite, status, tag);
        r.headers_mut().push(HeaderName::Require, "100rel");
        r.headers_mut().push(HeaderName::RSeq, rseq.to_string());
        parsed(r)
    }

    #[test]
    fn the_uac_pracks_each_reliable_provisional_once_and_in_order() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        let Received::Provisional {
            dialog: Some(mut early),
            prack: Some(rack),
            ..
        } = uac
            .receive_response(&reliable(&invite, 180, "b", 7))
            .unwrap()
        else {
            panic!("a reliable provisional")
        };
        assert_eq!(rack.to_string(), "7 314159 INVITE");
        let p = early.prack(&rack, via("z9hG4bKpr1"), None).unwrap();
        assert_eq!(p.method(), &Method::Prack);
        assert_eq!(p.cseq().seq, 314160);
        assert_eq!(
            p.headers().get(&HeaderName::RAck).unwrap(),
            "7 314159 INVITE"
        );
        assert_eq!(p.to().tag(), Some(&b"b"[..]));
        // Retransmitted: ignored. Skipping one: ignored. The next: PRACKed.
        for rseq in [7, 9, 6] {
            assert!(matches!(
                uac.receive_response(&reliable(&invite, 183, "b", rseq))
                    .unwrap(),
                Received::Ignored
            ));
        }
        assert!(matches!(
            uac.receive_response(&reliable(&invite, 183, "b", 8))
                .unwrap(),
            Received::Provisional {
                prack: Some(RAck { rseq: 8, .. }),
                dialog: None,
                ..
            }
        ));
        // Another fork has its own RSeq space.
        assert!(matches!(
            uac.receive_response(&reliable(&invite, 180, "c", 1000))
                .unwrap(),
            Received::Provisional {
                prack: Some(RAck { rseq: 1000, .. }),
                dialog: Some(_),
                ..
            }
        ));
        // 100 is never reliable; an unreliable 18x needs no PRACK.
        let mut trying = invite.reply(100, "Trying", None);
        trying.headers_mut().push(HeaderName::Require, "100rel");
        trying.headers_mut().push(HeaderName::RSeq, "9");
        assert!(matches!(
            uac.receive_response(&parsed(trying)).unwrap(),
            Received::Provisional { prack: None, .. }
        ));
        assert!(matches!(
            uac.receive_response(&answer(&invite, 180, "b")).unwrap(),
            Received::Provisional { prack: None, .. }
        ));
        // Once the dialog is answered, a reliable provisional (late, reordered) is not PRACKed.
        assert!(matches!(
            uac.receive_response(&answer(&invite, 200, "b")).unwrap(),
            Received::Answered { .. }
        ));
        assert!(matches!(
            uac.receive_response(&reliable(&invite, 183, "b", 9))
                .unwrap(),
            Received::Ignored
        ));
    }
}
