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
//! Readings chosen:
//! - The 2xx is retransmitted whatever the transport: section 13.3.1.4 does not make it
//!   depend on the first hop, because a later hop may be UDP.
//! - Time is taken from the scheduled instant, not from the call: a late
//!   [`InviteServer::handle_timeout`] keeps the schedule (every due retransmission is sent).
//! - The call layer keeps an [`InviteClient`] until the transaction layer reports the INVITE
//!   transaction terminated (Timer M, 64*T1 after the first 2xx): a UAS stops retransmitting
//!   its 2xx by then.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::dialog::{Dialog, DialogError};
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
    transmits: VecDeque<Response>,
    events: VecDeque<ServerEvent>,
}

impl InviteServer {
    /// The core for a received INVITE.
    pub fn new(invite: &Request, timers: Timers) -> InviteServer {
        InviteServer {
            timers,
            seq: invite.cseq().seq,
            finished: false,
            answer: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends a provisional response (101-199; 100 Trying is the transaction layer's).
    pub fn provisional(&mut self, _now: Instant, response: Response) -> Result<(), InviteError> {
        if self.finished {
            return Err(InviteError::Finished);
        }
        if !(101..200).contains(&response.status) {
            return Err(InviteError::Status(response.status));
        }
        self.transmits.push_back(response);
        Ok(())
    }

    /// Sends the final response. A 2xx is sent again on schedule until
    /// [`InviteServer::receive_ack`] sees its ACK.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), InviteError> {
        if self.finished {
            return Err(InviteError::Finished);
        }
        if !(200..700).contains(&response.status) {
            return Err(InviteError::Status(response.status));
        }
        self.finished = true;
        if response.status < 300 {
            self.answer = Some(Retransmit::new(
                now,
                response.clone(),
                &self.timers,
                Some(self.timers.t2),
            ));
        }
        self.transmits.push_back(response);
        Ok(())
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
        self.answer.as_ref().and_then(Retransmit::deadline)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
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

/// One dialog (To tag) of the responses to an INVITE.
#[derive(Debug)]
struct Leg {
    remote_tag: Bytes,
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
    Provisional {
        /// The status.
        status: u16,
        /// The dialog's remote tag, if the response has one.
        remote_tag: Option<Bytes>,
        /// The early dialog this response made.
        dialog: Option<Dialog>,
    },
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
}

impl InviteClient {
    /// The core for an INVITE that makes a dialog (the initial INVITE).
    pub fn new(invite: Request) -> InviteClient {
        InviteClient {
            invite,
            legs: Vec::new(),
            answered: false,
        }
    }

    /// The core for a re-INVITE inside `dialog`: its responses make no new dialog.
    pub fn within(invite: Request, dialog: &Dialog) -> InviteClient {
        InviteClient {
            invite,
            legs: vec![Leg {
                remote_tag: dialog.id().remote_tag.clone(),
                answered: false,
                ack: None,
            }],
            answered: false,
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
                let mut dialog = None;
                if let Some(tag) = &tag
                    && self.leg(tag).is_none()
                    && status > 100
                    && let Ok(d) = Dialog::uac(&self.invite, response)
                {
                    self.legs.push(Leg {
                        remote_tag: tag.clone(),
                        answered: false,
                        ack: None,
                    });
                    dialog = Some(d);
                }
                Ok(Received::Provisional {
                    status,
                    remote_tag: tag,
                    dialog,
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
                let dialog = Dialog::uac(&self.invite, response)?;
                self.legs.push(Leg {
                    remote_tag: tag.clone(),
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
        let mut uas = InviteServer::new(&invite, Timers::default());
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
        let mut uas = InviteServer::new(&invite, Timers::default());
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
        let mut uas = InviteServer::new(&invite, Timers::default());
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
    fn a_response_to_another_request_is_refused() {
        let invite = request(INVITE);
        let mut uac = InviteClient::new(invite.clone());
        let other = request(&INVITE.replace("314159", "1"));
        assert_eq!(
            uac.receive_response(&answer(&other, 200, "b")).unwrap_err(),
            DialogError::Mismatch
        );
    }
}
