//! Dialogs (RFC 3261 section 12): the state two user agents share after an INVITE is
//! answered — Call-ID and tags, each side's CSeq, the remote target and the route set — and
//! the requests built inside it (BYE, re-INVITE, UPDATE, INFO, REFER, the ACK for a 2xx).
//! Pure, like the transaction layer: the B2BUA keeps one per call leg.

use bytes::Bytes;

use crate::header::{HeaderName, Headers};
use crate::invite::RAck;
use crate::message::{ParseError, Request, Response};
use crate::typed::{Method, NameAddr};
use crate::uri::Uri;

/// A dialog's identity: Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: Bytes,
    /// Our tag.
    pub local_tag: Bytes,
    /// The peer's tag.
    pub remote_tag: Bytes,
}

/// Why a dialog could not be made or a request was refused inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The response or request lacks a tag the dialog needs.
    #[error("no tag to make a dialog with")]
    NoTag,
    /// No Contact to send later requests to.
    #[error("no Contact to use as the remote target")]
    NoContact,
    /// A request from the peer with a CSeq not above the last one (RFC 3261 section
    /// 12.2.2): answer 500.
    #[error("CSeq lower than the dialog's")]
    OutOfOrder,
    /// The request or response is not of this dialog.
    #[error("not of this dialog")]
    Mismatch,
    /// An INVITE from the peer while our own INVITE in the dialog waits for its final
    /// response (RFC 3261 section 14.2): answer 491 Request Pending.
    #[error("our INVITE is pending")]
    Glare,
    /// An INVITE from the peer while its previous INVITE is not yet answered (RFC 3261
    /// section 14.2): answer 500 with a Retry-After of 0 to 10 s.
    #[error("the peer's previous INVITE is not yet answered")]
    InviteInProgress,
    /// A request built here failed the message checks (a header that cannot be read).
    #[error(transparent)]
    Build(#[from] ParseError),
}

/// One side's view of a dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    /// Our From (UAC) or To (UAS) value, with our tag.
    local: Bytes,
    /// The peer's value, with its tag.
    remote: Bytes,
    local_seq: u32,
    remote_seq: Option<u32>,
    remote_target: Uri,
    /// Route values, in the order requests carry them.
    route_set: Vec<Bytes>,
    /// Whether the dialog was made by a `sips` request (later requests keep `sips`).
    secure: bool,
    /// Made by a provisional response, not yet confirmed by a 2xx.
    early: bool,
    /// Whether we sent the request that made the dialog, so chose its Call-ID (the glare
    /// retry delays of RFC 3261 section 14.1 depend on it).
    call_id_owner: bool,
    /// The CSeq of our re-INVITE that has no final response yet.
    local_invite: Option<u32>,
    /// The CSeq of the peer's re-INVITE we have not answered with a final yet.
    remote_invite: Option<u32>,
}

impl Dialog {
    /// The dialog a UAC has once a response with a To tag arrives to its INVITE (a 1xx with
    /// a tag makes an early dialog, a 2xx a confirmed one; RFC 3261 section 12.1.2).
    /// [`crate::invite::InviteClient`] makes these, one per To tag (forks).
    pub fn uac(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let core = response.core().ok_or(DialogError::Mismatch)?;
        let remote_tag = core.to().tag().ok_or(DialogError::NoTag)?;
        let local_tag = invite.from().tag().ok_or(DialogError::NoTag)?;
        let remote_target = first_contact(response.headers())?;
        // The route set is the Record-Route of the response, reversed.
        let mut route_set = record_routes(response.headers());
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().clone(),
                local_tag: Bytes::copy_from_slice(local_tag),
                remote_tag: Bytes::copy_from_slice(remote_tag),
            },
            local: invite.from().to_bytes(),
            remote: core.to().to_bytes(),
            local_seq: invite.cseq().seq,
            remote_seq: None,
            remote_target,
            route_set,
            secure: invite.uri().as_sip().is_some_and(|u| u.is_secure()),
            early: response.status < 200,
            call_id_owner: true,
            // An early dialog's INVITE is still pending: an INVITE from the peer in it is
            // glare (RFC 3261 section 14.2) until the 2xx confirms it.
            local_invite: (response.status < 200).then_some(invite.cseq().seq),
            remote_invite: None,
        })
    }

    /// The dialog a UAS makes when it answers an INVITE with a tag (RFC 3261 section
    /// 12.1.1). `local_tag` is the tag its responses carry in To; `local_seq` starts its own
    /// CSeq space (a random value is customary).
    pub fn uas(invite: &Request, local_tag: &str, local_seq: u32) -> Result<Dialog, DialogError> {
        let remote_tag = invite.from().tag().ok_or(DialogError::NoTag)?;
        let remote_target = first_contact(invite.headers())?;
        let mut local = invite.to().as_bytes().to_vec();
        if invite.to().tag().is_none() {
            local.extend_from_slice(b";tag=");
            local.extend_from_slice(local_tag.as_bytes());
        }
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().clone(),
                local_tag: Bytes::copy_from_slice(local_tag.as_bytes()),
                remote_tag: Bytes::copy_from_slice(remote_tag),
            },
            local: Bytes::from(local),
            remote: invite.from().to_bytes(),
            local_seq,
            remote_seq: Some(invite.cseq().seq),
            remote_target,
            // The route set is the Record-Route of the request, in order.
            route_set: record_routes(invite.headers()),
            secure: invite.uri().as_sip().is_some_and(|u| u.is_secure()),
            // Confirmed for the UAS's purposes once it sends its 2xx; nothing it builds
            // depends on the difference.
            early: false,
            call_id_owner: false,
            local_invite: None,
            remote_invite: None,
        })
    }

    /// The dialog's identity.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Where in-dialog requests go (the peer's Contact).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The route set, in the order requests carry it.
    pub fn route_set(&self) -> &[Bytes] {
        &self.route_set
    }

    /// Whether the dialog was made by a `sips` request.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Our current CSeq number.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// Whether the dialog is early: made by a provisional response, not yet confirmed.
    pub fn is_early(&self) -> bool {
        self.early
    }

    /// Whether we chose the Call-ID (we sent the INVITE that made the dialog). It decides
    /// the wait before retrying a re-INVITE refused 491: see [`glare_retry_delay`].
    pub fn owns_call_id(&self) -> bool {
        self.call_id_owner
    }

    /// The UAC's update from a later response to a request of ours in the dialog (RFC 3261
    /// section 12.1.2 and 13.2.2.4): the 2xx to the INVITE that confirms an early dialog
    /// recomputes its route set and target; a 2xx to a re-INVITE or UPDATE (RFC 3311) moves
    /// the target only (section 12.2.1.2: the route set is fixed once the dialog is
    /// confirmed). A 2xx to anything else, a PRACK in the early dialog say, changes nothing:
    /// it neither confirms the dialog nor carries a route set.
    pub fn update_from_response(&mut self, response: &Response) -> Result<(), DialogError> {
        let core = response.core().ok_or(DialogError::Mismatch)?;
        if core.call_id() != &self.id.call_id || core.to().tag() != Some(&self.id.remote_tag[..]) {
            return Err(DialogError::Mismatch);
        }
        let method = core.cseq().method.clone();
        if response.status >= 200
            && method == Method::Invite
            && self.local_invite == Some(core.cseq().seq)
        {
            self.local_invite = None;
        }
        if !(200..300).contains(&response.status)
            || !matches!(method, Method::Invite | Method::Update)
        {
            return Ok(());
        }
        if let Ok(target) = first_contact(response.headers()) {
            self.remote_target = target;
        }
        if self.early && method == Method::Invite {
            self.early = false;
            let mut route_set = record_routes(response.headers());
            route_set.reverse();
            self.route_set = route_set;
            self.remote = core.to().to_bytes();
        }
        Ok(())
    }

    /// Checks a request from the peer inside the dialog (RFC 3261 section 12.2.2): it must be
    /// of this dialog and, except ACK and CANCEL, have a CSeq above the last; a re-INVITE or
    /// UPDATE with a Contact moves the remote target. A re-INVITE that crosses ours is
    /// [`DialogError::Glare`] (491), one that overtakes the peer's unanswered previous one is
    /// [`DialogError::InviteInProgress`] (500); the re-INVITE we build is pending until
    /// [`Dialog::update_from_response`] sees its final response, the peer's until
    /// [`Dialog::answered_invite`].
    pub fn receive_request(&mut self, request: &Request) -> Result<(), DialogError> {
        if request.call_id() != &self.id.call_id
            || request.from().tag() != Some(&self.id.remote_tag[..])
            || request.to().tag() != Some(&self.id.local_tag[..])
        {
            return Err(DialogError::Mismatch);
        }
        let seq = request.cseq().seq;
        if !matches!(request.method(), Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|last| seq <= last) {
                return Err(DialogError::OutOfOrder);
            }
            self.remote_seq = Some(seq);
        }
        if request.method() == &Method::Invite {
            if self.local_invite.is_some() {
                return Err(DialogError::Glare);
            }
            if self.remote_invite.is_some() {
                return Err(DialogError::InviteInProgress);
            }
            self.remote_invite = Some(seq);
        }
        if matches!(request.method(), Method::Invite | Method::Update)
            && let Ok(target) = first_contact(request.headers())
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// We sent the final response to the peer's re-INVITE: a new one may come.
    pub fn answered_invite(&mut self) {
        self.remote_invite = None;
    }

    /// Our re-INVITE's transaction ended without a final response (timeout, transport
    /// error): it is no longer pending, and the peer may send its own.
    pub fn local_invite_failed(&mut self) {
        self.local_invite = None;
    }

    /// A new request inside the dialog (RFC 3261 section 12.2.1.1), taking the next CSeq.
    /// `via` is the top Via value with a fresh branch (the transport knows the sent-by);
    /// `contact` is ours, for target-refresh requests.
    pub fn request(
        &mut self,
        method: Method,
        via: Bytes,
        contact: Option<Bytes>,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        self.request_with(method, via, contact, &Headers::new(), body)
    }

    /// Like [`Dialog::request`], with `extra` headers after the dialog's own (Session-Expires,
    /// Supported, Require, ...).
    pub fn request_with(
        &mut self,
        method: Method,
        via: Bytes,
        contact: Option<Bytes>,
        extra: &Headers,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        let seq = self.local_seq;
        let request = self.build(method, seq, via, contact, extra, body)?;
        if request.method() == &Method::Invite {
            self.local_invite = Some(seq);
        }
        Ok(request)
    }

    /// The PRACK for a reliable provisional response (RFC 3262 section 7.2): a new request in
    /// the early dialog, with `RAck` naming the response. `body` carries an offer or answer
    /// if the media layer has one.
    pub fn prack(
        &mut self,
        rack: &RAck,
        via: Bytes,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        let mut extra = Headers::with_capacity(1);
        extra.push(HeaderName::RAck, rack.to_string());
        self.request_with(Method::Prack, via, None, &extra, body)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 section 13.2.2.4): same
    /// CSeq number, its own branch, sent by the dialog, not a transaction.
    pub fn ack(
        &self,
        invite_seq: u32,
        via: Bytes,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        self.build(Method::Ack, invite_seq, via, None, &Headers::new(), body)
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        via: Bytes,
        contact: Option<Bytes>,
        extra: &Headers,
        body: Option<(Bytes, Bytes)>,
    ) -> Result<Request, DialogError> {
        let mut headers = Headers::with_capacity(10);
        headers.push(HeaderName::Via, via);
        headers.push(HeaderName::MaxForwards, "70");
        // Loose routing sends to the remote target through the routes; a first route without
        // `lr` is a strict router, which must get the request as its Request-URI, with the
        // remote target appended as the last route (RFC 3261 section 12.2.1.1).
        let first_is_strict = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r.clone()).ok())
            .is_some_and(|r| r.uri.as_sip().is_some_and(|u| u.param("lr").is_none()));
        let uri = if first_is_strict {
            let first =
                NameAddr::parse(self.route_set[0].clone()).map_err(|_| DialogError::Mismatch)?;
            for r in &self.route_set[1..] {
                headers.push(HeaderName::Route, r.clone());
            }
            let mut last = b"<".to_vec();
            last.extend_from_slice(self.remote_target.as_bytes());
            last.push(b'>');
            headers.push(HeaderName::Route, last);
            first.uri
        } else {
            for r in &self.route_set {
                headers.push(HeaderName::Route, r.clone());
            }
            self.remote_target.clone()
        };
        headers.push(HeaderName::From, self.local.clone());
        headers.push(HeaderName::To, self.remote.clone());
        headers.push(HeaderName::CallId, self.id.call_id.clone());
        headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        if let Some(c) = contact {
            headers.push(HeaderName::Contact, c);
        }
        for h in extra.iter() {
            headers.push(h.name.clone(), h.value.clone());
        }
        let body = match body {
            Some((content_type, body)) => {
                headers.push(HeaderName::ContentType, content_type);
                body
            }
            None => Bytes::new(),
        };
        Ok(Request::from_parts(method, uri, headers, body)?)
    }
}

/// How long to wait before retrying a re-INVITE (or UPDATE) refused 491 Request Pending
/// (RFC 3261 section 14.1), so that the two sides that crossed do not cross again: the side
/// that owns the Call-ID waits 2.1 to 4 s, the other 0 to 2 s, each in 10 ms steps chosen by
/// `random` (the caller's random number: the core draws none itself, so tests choose).
pub fn glare_retry_delay(owns_call_id: bool, random: u32) -> std::time::Duration {
    let ms = if owns_call_id {
        2_100 + u64::from(random % 191) * 10
    } else {
        u64::from(random % 201) * 10
    };
    std::time::Duration::from_millis(ms)
}

fn first_contact(headers: &Headers) -> Result<Uri, DialogError> {
    let line = headers
        .get(&HeaderName::Contact)
        .ok_or(DialogError::NoContact)?;
    NameAddr::parse_list(line)
        .next()
        .and_then(Result::ok)
        .map(|a| a.uri)
        .ok_or(DialogError::NoContact)
}

fn record_routes(headers: &Headers) -> Vec<Bytes> {
    headers
        .get_all(&HeaderName::RecordRoute)
        .flat_map(|line| {
            crate::syntax::split_commas(line)
                .map(|(a, b)| line.slice(a..b))
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
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

    fn response(text: &str) -> Response {
        match Message::parse(text.replace('\n', "\r\n").as_bytes()) {
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
Record-Route: <sip:p2.biloxi.example.com;lr>, <sip:p1.atlanta.example.com;lr>
Content-Length: 0

";

    const OK: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9
Record-Route: <sip:p2.biloxi.example.com;lr>
Record-Route: <sip:p1.atlanta.example.com;lr>
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=8321234356
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
Content-Length: 0

";

    fn via(branch: &str) -> Bytes {
        Bytes::from(format!(
            "SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}"
        ))
    }

    #[test]
    fn both_sides_agree_on_the_dialog() {
        let invite = request(INVITE);
        let mut uac = Dialog::uac(&invite, &response(OK)).unwrap();
        let mut uas = Dialog::uas(&invite, "8321234356", 1000).unwrap();
        assert_eq!(uac.id().call_id, uas.id().call_id);
        assert_eq!(uac.id().local_tag, uas.id().remote_tag);
        assert_eq!(uac.id().remote_tag, uas.id().local_tag);
        // The UAC routes through the proxies in reverse Record-Route order, to Bob's Contact.
        let bye = uac
            .request(Method::Bye, via("z9hG4bK1"), None, None)
            .unwrap();
        assert_eq!(bye.uri().as_bytes(), b"sip:bob@192.0.2.4");
        let routes: Vec<_> = bye.headers().get_all(&HeaderName::Route).cloned().collect();
        assert_eq!(
            routes,
            [
                "<sip:p1.atlanta.example.com;lr>",
                "<sip:p2.biloxi.example.com;lr>"
            ]
        );
        assert_eq!(bye.cseq().seq, 314160);
        assert_eq!(bye.to().tag(), Some(&b"8321234356"[..]));
        // The UAS accepts it once, and refuses it again (same CSeq).
        uas.receive_request(&bye).unwrap();
        assert_eq!(uas.receive_request(&bye), Err(DialogError::OutOfOrder));
        // The UAS's own requests go to Alice's Contact through the routes in order.
        let info = uas
            .request(Method::Info, via("z9hG4bK2"), None, None)
            .unwrap();
        assert_eq!(info.uri().as_bytes(), b"sip:alice@pc33.atlanta.example.com");
        assert_eq!(info.cseq().seq, 1001);
        assert_eq!(info.from().tag(), Some(&b"8321234356"[..]));
        let routes: Vec<_> = info
            .headers()
            .get_all(&HeaderName::Route)
            .cloned()
            .collect();
        assert_eq!(
            routes,
            [
                "<sip:p2.biloxi.example.com;lr>",
                "<sip:p1.atlanta.example.com;lr>"
            ]
        );
        uac.receive_request(&info).unwrap();
    }

    #[test]
    fn the_ack_for_a_2xx_keeps_the_invite_cseq() {
        let invite = request(INVITE);
        let uac = Dialog::uac(&invite, &response(OK)).unwrap();
        let ack = uac.ack(314159, via("z9hG4bKack"), None).unwrap();
        assert_eq!(ack.method(), &Method::Ack);
        assert_eq!(ack.cseq().seq, 314159);
        assert_eq!(uac.local_seq(), 314159, "an ACK takes no new CSeq");
    }

    #[test]
    fn a_strict_router_gets_the_request_uri() {
        let invite = request(INVITE);
        let ok = response(&OK.replace(
            "Record-Route: <sip:p2.biloxi.example.com;lr>\nRecord-Route: <sip:p1.atlanta.example.com;lr>\n",
            "Record-Route: <sip:p2.biloxi.example.com;lr>\nRecord-Route: <sip:p1.atlanta.example.com>\n",
        ));
        let mut uac = Dialog::uac(&invite, &ok).unwrap();
        let bye = uac
            .request(Method::Bye, via("z9hG4bK3"), None, None)
            .unwrap();
        assert_eq!(bye.uri().as_bytes(), b"sip:p1.atlanta.example.com");
        let routes: Vec<_> = bye.headers().get_all(&HeaderName::Route).cloned().collect();
        assert_eq!(
            routes,
            ["<sip:p2.biloxi.example.com;lr>", "<sip:bob@192.0.2.4>"]
        );
    }

    #[test]
    fn a_reinvite_moves_the_target() {
        let invite = request(INVITE);
        let mut uac = Dialog::uac(&invite, &response(OK)).unwrap();
        let mut uas = Dialog::uas(&invite, "8321234356", 1).unwrap();
        let reinvite = uas
            .request(
                Method::Invite,
                via("z9hG4bK4"),
                Some(Bytes::from_static(b"<sip:bob@198.51.100.9:5070>")),
                Some((
                    Bytes::from_static(b"application/sdp"),
                    Bytes::from_static(b"v=0\r\n"),
                )),
            )
            .unwrap();
        uac.receive_request(&reinvite).unwrap();
        assert_eq!(uac.remote_target().as_bytes(), b"sip:bob@198.51.100.9:5070");
        // A request of another dialog is refused.
        let other = request(&INVITE.replace("9fxced76sl", "other"));
        assert_eq!(uac.receive_request(&other), Err(DialogError::Mismatch));
    }

    #[test]
    fn no_tag_no_dialog() {
        let invite = request(INVITE);
        let untagged = response(&OK.replace(";tag=8321234356", ""));
        assert_eq!(
            Dialog::uac(&invite, &untagged).unwrap_err(),
            DialogError::NoTag
        );
        let no_contact = response(&OK.replace("Contact: <sip:bob@192.0.2.4>\n", ""));
        assert_eq!(
            Dialog::uac(&invite, &no_contact).unwrap_err(),
            DialogError::NoContact
        );
    }

    #[test]
    fn only_the_2xx_to_the_invite_confirms_an_early_dialog_and_fixes_its_route_set() {
        let invite = request(INVITE);
        // The 183 came back through p1 only; the 200 through p2 and p1.
        let progress = response(
            &OK.replace("200 OK", "183 Session Progress")
                .replace("Record-Route: <sip:p2.biloxi.example.com;lr>\n", ""),
        );
        let mut uac = Dialog::uac(&invite, &progress).unwrap();
        assert!(uac.is_early());
        assert_eq!(uac.route_set(), ["<sip:p1.atlanta.example.com;lr>"]);
        // The 200 to a PRACK in the early dialog (no Record-Route) confirms nothing.
        let rack = RAck {
            rseq: 1,
            cseq: 314159,
            method: Method::Invite,
        };
        let prack = uac.prack(&rack, via("z9hG4bKpr"), None).unwrap();
        let mut prack_ok = prack.reply(200, "OK", None);
        prack_ok.check().unwrap();
        uac.update_from_response(&prack_ok).unwrap();
        assert!(uac.is_early());
        assert_eq!(uac.route_set(), ["<sip:p1.atlanta.example.com;lr>"]);
        // The 200 to the INVITE does, with its own Record-Route, reversed.
        uac.update_from_response(&response(OK)).unwrap();
        assert!(!uac.is_early());
        assert_eq!(
            uac.route_set(),
            [
                "<sip:p1.atlanta.example.com;lr>",
                "<sip:p2.biloxi.example.com;lr>"
            ]
        );
    }

    #[test]
    fn an_invite_from_the_peer_in_an_early_dialog_is_glare() {
        let invite = request(INVITE);
        let mut uac =
            Dialog::uac(&invite, &response(&OK.replace("200 OK", "180 Ringing"))).unwrap();
        let mut uas = Dialog::uas(&invite, "8321234356", 1).unwrap();
        let early = uas
            .request(Method::Invite, via("z9hG4bK5"), None, None)
            .unwrap();
        assert_eq!(uac.receive_request(&early), Err(DialogError::Glare));
        uac.update_from_response(&response(OK)).unwrap();
        let confirmed = uas
            .request(Method::Invite, via("z9hG4bK6"), None, None)
            .unwrap();
        uac.receive_request(&confirmed).unwrap();
    }

    #[test]
    fn crossing_reinvites_are_glare_and_an_overtaking_one_is_in_progress() {
        let invite = request(INVITE);
        let mut uac = Dialog::uac(&invite, &response(OK)).unwrap();
        let mut uas = Dialog::uas(&invite, "8321234356", 1).unwrap();
        let from_uac = uac
            .request(Method::Invite, via("z9hG4bK5"), None, None)
            .unwrap();
        let from_uas = uas
            .request(Method::Invite, via("z9hG4bK6"), None, None)
            .unwrap();
        assert_eq!(uas.receive_request(&from_uac), Err(DialogError::Glare));
        assert_eq!(uac.receive_request(&from_uas), Err(DialogError::Glare));
        // The UAC's re-INVITE is refused 491: no longer pending, so the UAS's retry is taken.
        let mut refused = from_uac.reply(491, "Request Pending", None);
        refused.check().unwrap();
        uac.update_from_response(&refused).unwrap();
        let retry = uas
            .request(Method::Invite, via("z9hG4bK7"), None, None)
            .unwrap();
        uac.receive_request(&retry).unwrap();
        // A second one before the first is answered is refused 500; after, it is taken.
        let second = uas
            .request(Method::Invite, via("z9hG4bK8"), None, None)
            .unwrap();
        assert_eq!(
            uac.receive_request(&second),
            Err(DialogError::InviteInProgress)
        );
        uac.answered_invite();
        let third = uas
            .request(Method::Invite, via("z9hG4bK9"), None, None)
            .unwrap();
        uac.receive_request(&third).unwrap();
        // The Call-ID's owner waits 2.1 to 4 s before retrying, the other 0 to 2 s.
        assert!(uac.owns_call_id() && !uas.owns_call_id());
        assert_eq!(glare_retry_delay(true, 0).as_millis(), 2_100);
        assert_eq!(glare_retry_delay(true, 190).as_millis(), 4_000);
        assert_eq!(glare_retry_delay(true, 191).as_millis(), 2_100);
        assert_eq!(glare_retry_delay(false, 200).as_millis(), 2_000);
        assert_eq!(glare_retry_delay(false, 201).as_millis(), 0);
    }
}
