//! Two user agents on a simulated clock and a simulated network: the caller (A) and the callee
//! (B), each a transaction layer plus the INVITE cores, driven by a small call layer written
//! here the way the B2BUA drives them. The network delivers at once unless a test drops or
//! holds a message; every message on the wire and everything a user is told is recorded with
//! its virtual time, and each test asserts on those. Nothing sleeps.
#![allow(clippy::unwrap_used)] // the simulation's helpers panic on what a test never expects

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmswitch_sip::dialog::{Dialog, DialogError, glare_retry_delay};
use wasmswitch_sip::invite::{
    InviteClient, InviteServer, RAck, Received, Reliability, ServerEvent,
};
use wasmswitch_sip::session_timer::{self, Grant, SessionTimer};
use wasmswitch_sip::transaction::{Event, Flow, FlowTransport, Timers, Transactions, TxId};
use wasmswitch_sip::{HeaderName, Message, Method, Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn host(self) -> &'static str {
        match self {
            Side::A => "192.0.2.1:5060",
            Side::B => "192.0.2.2:5060",
        }
    }
}

/// One message as it crossed (or failed to cross) the network.
#[derive(Debug)]
struct Wire {
    ms: u128,
    from: Side,
    message: Message,
    dropped: bool,
}

/// The call layer of one user agent.
struct Ua {
    side: Side,
    /// The simulation's start, for the times in `told`.
    start: Instant,
    layer: Transactions,
    branches: u32,
    /// UAC: the INVITE's transaction and core.
    client: Option<(TxId, InviteClient)>,
    /// UAS: the INVITE's transaction and core.
    server: Option<(TxId, InviteServer)>,
    /// Every dialog this side has (forks included), the first one the call's.
    dialogs: Vec<Dialog>,
    /// Direct sends (ACK for a 2xx) that bypass the transaction layer.
    direct: Vec<Message>,
    /// What the user was told, with the virtual time.
    told: Vec<(u128, String)>,
    /// The dialog's session timer, for a side that runs RFC 4028.
    timer: Option<SessionTimer>,
    /// UAS: what the session timer grants in the 2xx to the INVITE.
    grant: Option<Grant>,
    /// UAC: header lines the INVITE carries besides the timer's.
    invite_extra: String,
    /// UAC: the user cancelled the INVITE.
    cancelled: bool,
    /// A re-INVITE refused 491 is sent again then.
    retry_at: Option<Instant>,
    /// The random number for the glare retry delay.
    random: u32,
}

impl Ua {
    fn new(side: Side, start: Instant) -> Ua {
        Ua {
            side,
            start,
            layer: Transactions::new(Timers::default()),
            branches: 0,
            client: None,
            server: None,
            dialogs: Vec::new(),
            direct: Vec::new(),
            told: Vec::new(),
            timer: None,
            grant: None,
            invite_extra: String::new(),
            cancelled: false,
            retry_at: None,
            random: 0,
        }
    }

    /// The headers a refresh or an INVITE carries when this side runs session timers.
    fn timer_headers(&self) -> wasmswitch_sip::Headers {
        let mut h = wasmswitch_sip::Headers::new();
        if let Some(t) = &self.timer {
            h.push(HeaderName::Supported, "timer");
            for x in t.request_headers().iter() {
                h.push(x.name.clone(), x.value.clone());
            }
        }
        h
    }

    fn t0(&self) -> Instant {
        self.start
    }

    fn flow(&self) -> Flow {
        Flow {
            transport: FlowTransport::Udp,
            remote: self.side.other().host().parse::<SocketAddr>().unwrap(),
            connection: None,
        }
    }

    fn via(&mut self) -> Bytes {
        self.branches += 1;
        Bytes::from(format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{:?}{}",
            self.side.host(),
            self.side,
            self.branches
        ))
    }

    fn tell(&mut self, ms: u128, what: impl Into<String>) {
        self.told.push((ms, what.into()));
    }

    /// Hands what the INVITE server core wants sent to its transaction.
    fn flush_server(&mut self, now: Instant) {
        if let Some((tx, core)) = &mut self.server {
            while let Some(r) = core.poll_transmit() {
                // After Timer L the transaction is gone and so is the 2xx's last chance.
                let _ = self.layer.respond(now, *tx, r);
            }
        }
    }

    fn send_in_dialog(&mut self, now: Instant, method: Method) -> Option<TxId> {
        let via = self.via();
        let req = self
            .dialogs
            .first_mut()?
            .request(method, via, None, None)
            .unwrap();
        Some(self.layer.send_request(now, req, self.flow()).unwrap())
    }

    fn handle(&mut self, now: Instant, ms: u128, event: Event) {
        match event {
            Event::Request { tx, request, .. } => self.request(now, ms, tx, request),
            Event::Ack { request, .. } => {
                if let Some((_, core)) = &mut self.server
                    && core.receive_ack(&request)
                {
                    self.tell(ms, "acked");
                }
            }
            Event::Cancelled { tx } => {
                self.tell(ms, "cancelled");
                if let Some((stx, core)) = &mut self.server
                    && *stx == tx
                    && !core.is_finished()
                {
                    let invite = self.layer.request(tx).unwrap().clone();
                    core.respond(now, invite.reply(487, "Request Terminated", Some("b")))
                        .unwrap();
                }
            }
            Event::Response { response, .. } | Event::Stray { response } => {
                self.response(now, ms, response)
            }
            Event::Timeout { .. } => self.tell(ms, "timeout"),
            Event::TransportError { .. } => self.tell(ms, "unreachable"),
            Event::NoAck { .. } | Event::Terminated { .. } => {}
        }
    }

    fn request(&mut self, now: Instant, ms: u128, tx: TxId, request: Request) {
        match request.method() {
            Method::Invite if request.to().tag().is_none() => {
                self.tell(ms, "invite");
                let mut core =
                    InviteServer::new(&request, Timers::default(), Reliability::WhenSupported, 0);
                let mut rejected = false;
                if let Some(timer) = &self.timer {
                    match timer.receive_request(&request) {
                        Ok(grant) => self.grant = grant,
                        Err(too_small) => {
                            rejected = true;
                            core.respond(now, too_small.response(&request, Some("b")))
                                .unwrap();
                        }
                    }
                }
                if !rejected {
                    self.dialogs
                        .push(Dialog::uas(&request, "b", 9_000).unwrap());
                }
                self.server = Some((tx, core));
            }
            Method::Invite => {
                let check = match self.dialogs.first_mut() {
                    Some(d) => d.receive_request(&request),
                    None => Err(DialogError::Mismatch),
                };
                let reply = match check {
                    Ok(()) => {
                        let mut ok = request.reply(200, "OK", None);
                        ok.headers_mut()
                            .push(HeaderName::Contact, format!("<sip:x@{}>", self.side.host()));
                        let mut core = InviteServer::new(
                            &request,
                            Timers::default(),
                            Reliability::WhenSupported,
                            0,
                        );
                        core.respond(now, ok).unwrap();
                        self.server = Some((tx, core));
                        if let Some(d) = self.dialogs.first_mut() {
                            d.answered_invite();
                        }
                        self.tell(ms, "reinvite 200");
                        return;
                    }
                    Err(DialogError::Glare) => request.reply(491, "Request Pending", None),
                    Err(DialogError::InviteInProgress) => {
                        let mut r = request.reply(500, "Server Internal Error", None);
                        r.headers_mut().push(HeaderName::RetryAfter, "5");
                        r
                    }
                    Err(_) => request.reply(481, "Call/Transaction Does Not Exist", None),
                };
                self.tell(ms, format!("reinvite {}", reply.status));
                self.layer.respond(now, tx, reply).unwrap();
            }
            Method::Update => {
                let in_dialog = self
                    .dialogs
                    .first_mut()
                    .is_some_and(|d| d.receive_request(&request).is_ok());
                let mut reply = if in_dialog {
                    request.reply(200, "OK", None)
                } else {
                    request.reply(481, "Call/Transaction Does Not Exist", None)
                };
                if in_dialog && let Some(timer) = &mut self.timer {
                    match timer.receive_request(&request) {
                        Ok(grant) => timer.answer(now, grant, &mut reply),
                        Err(too_small) => reply = too_small.response(&request, None),
                    }
                }
                self.tell(ms, format!("update {}", reply.status));
                self.layer.respond(now, tx, reply).unwrap();
            }
            Method::Bye => {
                let known = self
                    .dialogs
                    .first_mut()
                    .is_some_and(|d| d.receive_request(&request).is_ok());
                let (status, what) = if known {
                    (200, "bye")
                } else {
                    (481, "bye for no dialog")
                };
                self.tell(ms, what);
                if known {
                    self.dialogs.clear();
                    if let Some(t) = &mut self.timer {
                        t.stop();
                    }
                }
                self.layer
                    .respond(now, tx, request.reply(status, "Answer", None))
                    .unwrap();
            }
            Method::Prack => {
                let in_dialog = self
                    .dialogs
                    .first_mut()
                    .is_some_and(|d| d.receive_request(&request).is_ok());
                let reply = match &mut self.server {
                    Some((_, core)) if in_dialog => core.receive_prack(now, &request),
                    _ => request.reply(481, "Call/Transaction Does Not Exist", None),
                };
                self.tell(ms, format!("prack {}", reply.status));
                self.layer.respond(now, tx, reply).unwrap();
            }
            other => panic!("the test call layer does not take {other}"),
        }
    }

    fn response(&mut self, now: Instant, ms: u128, response: Response) {
        let method = response.cseq().unwrap().method.clone();
        if method != Method::Invite {
            self.tell(ms, format!("{} {}", response.status, method));
            if response.status == 481 && !matches!(method, Method::Bye | Method::Prack) {
                // RFC 3261 section 12.2.1.2: the dialog is gone. (A 481 to PRACK only says
                // its RAck matched nothing, RFC 3262 section 3.)
                self.dialogs.clear();
                if let Some(t) = &mut self.timer {
                    t.stop();
                }
            }
            if method == Method::Update
                && response.status >= 200
                && let Some(t) = &mut self.timer
                && t.receive_response(now, &response).is_err()
            {
                // A 422 to a refresh: ask again with the larger Min-SE.
                self.refresh(now);
            }
            return;
        }
        let Some((_, client)) = &mut self.client else {
            return;
        };
        match client.receive_response(&response).unwrap() {
            Received::Provisional {
                status,
                dialog,
                prack,
                remote_tag,
            } => {
                self.tell(ms, format!("{status}"));
                self.dialogs.extend(dialog);
                if let (Some(rack), Some(tag)) = (prack, remote_tag) {
                    let via = self.via();
                    let d = self
                        .dialogs
                        .iter_mut()
                        .find(|d| d.id().remote_tag == tag)
                        .unwrap();
                    let p = d.prack(&rack, via, None).unwrap();
                    self.layer.send_request(now, p, self.flow()).unwrap();
                }
            }
            Received::Ignored => self.tell(ms, "ignored"),
            Received::Answered {
                remote_tag,
                dialog,
                forked,
            } => {
                match dialog {
                    Some(d) => self.dialogs.push(d),
                    None => {
                        let d = self
                            .dialogs
                            .iter_mut()
                            .find(|d| d.id().remote_tag == remote_tag)
                            .unwrap();
                        d.update_from_response(&response).unwrap();
                    }
                }
                let at = self
                    .dialogs
                    .iter()
                    .position(|d| d.id().remote_tag == remote_tag)
                    .unwrap();
                self.branches += 1;
                let via = Bytes::from(format!(
                    "SIP/2.0/UDP {};branch=z9hG4bKack{}",
                    self.side.host(),
                    self.branches
                ));
                let ack = self
                    .client
                    .as_mut()
                    .unwrap()
                    .1
                    .ack(&self.dialogs[at], via, None)
                    .unwrap();
                self.direct.push(Message::Request(ack));
                if self.cancelled {
                    // The 2xx beat the CANCEL (RFC 3261 section 9.1): ACK it, then hang up.
                    self.tell(ms, "answered after cancel");
                    self.send_in_dialog(now, Method::Bye);
                } else if forked {
                    // RFC 3261 section 13.2.2.4: ACK the second dialog, then end it.
                    self.tell(ms, "forked");
                    let mut fork = self.dialogs.remove(at);
                    let via = self.via();
                    let bye = fork.request(Method::Bye, via, None, None).unwrap();
                    self.layer.send_request(now, bye, self.flow()).unwrap();
                } else {
                    self.tell(ms, "answered");
                    if let Some(t) = &mut self.timer {
                        t.receive_response(now, &response).unwrap();
                    }
                }
            }
            Received::Retransmitted { ack } => {
                self.tell(ms, "2xx again");
                if let Some(ack) = ack {
                    self.direct.push(Message::Request(ack));
                }
            }
            Received::Rejected { status } => {
                self.tell(ms, format!("{status}"));
                if let Some(d) = self.dialogs.first_mut() {
                    let _ = d.update_from_response(&response);
                }
                if status == 491 {
                    let owner = self.dialogs.first().is_some_and(Dialog::owns_call_id);
                    self.retry_at = Some(now + glare_retry_delay(owner, self.random));
                }
                if status == 422
                    && let Some(t) = &mut self.timer
                    && t.receive_response(now, &response).is_err()
                {
                    // RFC 4028 section 7.3: the INVITE again, with the larger Min-SE.
                    let old = self.client.take().unwrap().1.invite().clone();
                    self.invite(now, old.cseq().seq + 1);
                }
            }
            other => panic!("{other:?}"),
        }
    }

    /// Sends a re-INVITE in the call's dialog.
    fn reinvite(&mut self, now: Instant) {
        let via = self.via();
        let contact = Bytes::from(format!("<sip:x@{}>", self.side.host()));
        let Some(d) = self.dialogs.first_mut() else {
            return;
        };
        let invite = d.request(Method::Invite, via, Some(contact), None).unwrap();
        let client = InviteClient::within(invite.clone(), d);
        let tx = self.layer.send_request(now, invite, self.flow()).unwrap();
        self.client = Some((tx, client));
    }

    /// Hangs up: BYE, and the dialog is over for this side.
    fn hangup(&mut self, now: Instant) {
        self.send_in_dialog(now, Method::Bye);
        self.dialogs.clear();
        if let Some(t) = &mut self.timer {
            t.stop();
        }
    }

    /// Sends a session refresh (UPDATE) with the timer's headers.
    fn refresh(&mut self, now: Instant) {
        let via = self.via();
        let extra = self.timer_headers();
        if let Some(d) = self.dialogs.first_mut() {
            let update = d
                .request_with(Method::Update, via, None, &extra, None)
                .unwrap();
            self.layer.send_request(now, update, self.flow()).unwrap();
        }
    }

    /// Sends the INVITE that starts the call, with CSeq `seq`.
    fn invite(&mut self, now: Instant, seq: u32) {
        let via = self.via();
        let mut extra = String::new();
        for h in self.timer_headers().iter() {
            extra.push_str(&format!(
                "{}: {}\r\n",
                h.name,
                String::from_utf8_lossy(&h.value)
            ));
        }
        extra.push_str(&self.invite_extra);
        let text = format!(
            "INVITE sip:bob@{b} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-1\r\n\
CSeq: {seq} INVITE\r\nContact: <sip:alice@{a}>\r\n{extra}Content-Length: 0\r\n\r\n",
            a = Side::A.host(),
            b = Side::B.host(),
            via = String::from_utf8_lossy(&via),
        );
        let Ok(Message::Request(invite)) = Message::parse(text.as_bytes()) else {
            panic!("the INVITE parses")
        };
        let tx = self
            .layer
            .send_request(now, invite.clone(), self.flow())
            .unwrap();
        self.client = Some((tx, InviteClient::new(invite)));
    }

    fn server_events(&mut self, now: Instant, ms: u128) {
        let mut timer_events = Vec::new();
        if let Some(t) = &mut self.timer {
            while let Some(e) = t.poll_event() {
                timer_events.push(e);
            }
        }
        for e in timer_events {
            match e {
                session_timer::Event::Refresh => {
                    self.tell(ms, "refresh");
                    self.refresh(now);
                }
                session_timer::Event::Expired => {
                    self.tell(ms, "expired");
                    self.send_in_dialog(now, Method::Bye);
                    self.dialogs.clear();
                }
                other => panic!("{other:?}"),
            }
        }
        let mut events = Vec::new();
        if let Some((_, core)) = &mut self.server {
            while let Some(e) = core.poll_event() {
                events.push(e);
            }
        }
        for e in events {
            match e {
                ServerEvent::AckTimeout => {
                    self.tell(ms, "ack timeout");
                    self.send_in_dialog(now, Method::Bye);
                }
                ServerEvent::PrackTimeout => {
                    self.tell(ms, "prack timeout");
                    let (tx, core) = self.server.as_mut().unwrap();
                    let invite = self.layer.request(*tx).unwrap().clone();
                    core.respond(now, invite.reply(500, "No PRACK", Some("b")))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
        }
    }

    fn next_timeout(&mut self) -> Option<Instant> {
        let core = self.server.as_ref().and_then(|(_, c)| c.poll_timeout());
        let timer = self.timer.as_ref().and_then(SessionTimer::poll_timeout);
        [self.layer.poll_timeout(), core, timer, self.retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        if let Some((_, core)) = &mut self.server {
            core.handle_timeout(now);
        }
        if let Some(t) = &mut self.timer {
            t.handle_timeout(now);
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.tell((now - self.t0()).as_millis(), "retry");
            self.reinvite(now);
        }
    }
}

type Filter = Box<dyn FnMut(Side, &Message) -> bool>;

struct Net {
    t0: Instant,
    now: Instant,
    a: Ua,
    b: Ua,
    wire: Vec<Wire>,
    /// Messages matching are lost on the wire.
    drop: Option<Filter>,
    /// Messages matching are held in flight until [`Net::release`].
    hold: Option<Filter>,
    held: Vec<(Side, Message)>,
}

impl Net {
    fn new() -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            a: Ua::new(Side::A, t0),
            b: Ua::new(Side::B, t0),
            wire: Vec::new(),
            drop: None,
            hold: None,
            held: Vec::new(),
        }
    }

    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    fn ua(&mut self, side: Side) -> &mut Ua {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Moves everything both sides want sent, and everything they answer to it, until the
    /// network is quiet.
    fn pump(&mut self) {
        let now = self.now;
        let ms = self.ms();
        loop {
            let mut moving = Vec::new();
            for side in [Side::A, Side::B] {
                let ua = self.ua(side);
                ua.server_events(now, ms);
                ua.flush_server(now);
                for m in ua.direct.drain(..) {
                    moving.push((side, m));
                }
                while let Some(t) = ua.layer.poll_transmit() {
                    moving.push((side, t.message));
                }
            }
            if moving.is_empty() {
                break;
            }
            for (from, message) in moving {
                self.carry(from, message);
            }
            for side in [Side::A, Side::B] {
                let ua = self.ua(side);
                while let Some(e) = ua.layer.poll_event() {
                    ua.handle(now, ms, e);
                }
            }
        }
    }

    fn carry(&mut self, from: Side, message: Message) {
        let ms = self.ms();
        let dropped = self.drop.as_mut().is_some_and(|f| f(from, &message));
        self.wire.push(Wire {
            ms,
            from,
            message: message.clone(),
            dropped,
        });
        if dropped {
            return;
        }
        if self.hold.as_mut().is_some_and(|f| f(from, &message)) {
            self.held.push((from, message));
            return;
        }
        self.deliver(from.other(), message);
    }

    /// Delivers a message to `to` as printed and read back.
    fn deliver(&mut self, to: Side, message: Message) {
        let now = self.now;
        let message = Message::parse(&message.to_vec()).unwrap();
        let flow = self.ua(to).flow();
        let ua = self.ua(to);
        match message {
            Message::Request(r) => ua.layer.receive_request(now, r, flow),
            Message::Response(r) => ua.layer.receive_response(now, r),
        }
    }

    /// Delivers every held message, in order, then lets the network settle.
    fn release(&mut self) {
        self.hold = None;
        for (from, m) in std::mem::take(&mut self.held) {
            self.deliver(from.other(), m);
        }
        self.pump_events();
    }

    fn pump_events(&mut self) {
        let now = self.now;
        let ms = self.ms();
        for side in [Side::A, Side::B] {
            let ua = self.ua(side);
            while let Some(e) = ua.layer.poll_event() {
                ua.handle(now, ms, e);
            }
        }
        self.pump();
    }

    /// Fires every timer of both sides up to `ms`, each at its own time.
    fn run_to(&mut self, ms: u64) {
        let end = self.t0 + Duration::from_millis(ms);
        loop {
            let next = [self.a.next_timeout(), self.b.next_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    let now = self.now;
                    self.a.handle_timeout(now);
                    self.b.handle_timeout(now);
                    self.pump_events();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// A calls B.
    fn call(&mut self) {
        self.call_with("");
    }

    /// A calls B with `extra` header lines (each ending in CRLF) in the INVITE.
    fn call_with(&mut self, extra: &str) {
        self.a.invite_extra = extra.to_string();
        let now = self.now;
        self.a.invite(now, 1);
        self.pump_events();
    }

    /// The INVITE B received.
    fn b_invite(&self) -> Request {
        let (tx, _) = self.b.server.as_ref().unwrap();
        self.b.layer.request(*tx).unwrap().clone()
    }

    /// B sends a final response to the INVITE.
    fn b_answer(&mut self, status: u16) {
        let mut r = self.b_invite().reply(status, "Answer", Some("b"));
        r.headers_mut()
            .push(HeaderName::Contact, format!("<sip:bob@{}>", Side::B.host()));
        let now = self.now;
        if status < 300
            && let Some(t) = &mut self.b.timer
        {
            t.answer(now, self.b.grant, &mut r);
        }
        self.b.server.as_mut().unwrap().1.respond(now, r).unwrap();
        self.pump();
    }

    /// B sends a provisional response to the INVITE.
    fn b_ring(&mut self, status: u16) {
        let mut r = self.b_invite().reply(status, "Ringing", Some("b"));
        r.headers_mut()
            .push(HeaderName::Contact, format!("<sip:bob@{}>", Side::B.host()));
        let now = self.now;
        self.b
            .server
            .as_mut()
            .unwrap()
            .1
            .provisional(now, r)
            .unwrap();
        self.pump();
    }

    /// When requests of `method` went on the wire from `from` (dropped ones included).
    fn sent(&self, from: Side, method: &str) -> Vec<u128> {
        self.wire
            .iter()
            .filter(|w| w.from == from)
            .filter_map(|w| match &w.message {
                Message::Request(r) if r.method().as_str() == method => Some(w.ms),
                _ => None,
            })
            .collect()
    }

    /// When requests of `method` from `from` were lost on the wire.
    fn lost(&self, from: Side, method: &str) -> Vec<u128> {
        self.wire
            .iter()
            .filter(|w| w.from == from && w.dropped && is_request_named(&w.message, method))
            .map(|w| w.ms)
            .collect()
    }

    /// Runs one side's call-layer action at the current time, then lets the network settle.
    fn act(&mut self, side: Side, f: impl FnOnce(&mut Ua, Instant)) {
        let now = self.now;
        f(self.ua(side), now);
        self.pump();
    }

    /// When responses `status` to `method` went on the wire from `from`.
    fn answered(&self, from: Side, status: u16, method: &str) -> Vec<u128> {
        self.wire
            .iter()
            .filter(|w| w.from == from)
            .filter_map(|w| match &w.message {
                Message::Response(r)
                    if r.status == status
                        && r.cseq().is_some_and(|c| c.method.as_str() == method) =>
                {
                    Some(w.ms)
                }
                _ => None,
            })
            .collect()
    }

    /// What `side`'s user was told, as `"ms what"`.
    fn told(&self, side: Side) -> Vec<String> {
        let ua = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        ua.told.iter().map(|(t, w)| format!("{t} {w}")).collect()
    }
}

fn is_request_named(m: &Message, method: &str) -> bool {
    matches!(m, Message::Request(r) if r.method().as_str() == method)
}

fn is_request(method: &'static str) -> impl Fn(&Message) -> bool {
    move |m| matches!(m, Message::Request(r) if r.method().as_str() == method)
}

fn is_response(status: u16, method: &'static str) -> impl Fn(&Message) -> bool {
    move |m| {
        matches!(m, Message::Response(r) if r.status == status
            && r.cseq().is_some_and(|c| c.method.as_str() == method))
    }
}

/// Drops the first `n` messages matching `pred` from `from`.
fn drop_first(n: usize, from: Side, pred: impl Fn(&Message) -> bool + 'static) -> Filter {
    let mut left = n;
    Box::new(move |side, m| {
        if left > 0 && side == from && pred(m) {
            left -= 1;
            true
        } else {
            false
        }
    })
}

// ----- 2xx reliability (RFC 3261 sections 13.2.2.4 and 13.3.1.4, RFC 6026) -----

#[test]
fn a_lost_ack_brings_the_2xx_again_and_the_same_ack_answers_it() {
    let mut net = Net::new();
    net.call();
    net.run_to(100);
    net.drop = Some(drop_first(1, Side::A, is_request("ACK")));
    net.b_answer(200);
    net.run_to(40_000);
    // B sent the 2xx at 100 ms and again at T1 after it; the second ACK stopped it.
    assert_eq!(net.answered(Side::B, 200, "INVITE"), [100, 600]);
    assert_eq!(net.sent(Side::A, "ACK"), [100, 600]);
    let acks: Vec<_> = net
        .wire
        .iter()
        .filter(|w| is_request("ACK")(&w.message))
        .map(|w| w.message.to_vec())
        .collect();
    assert_eq!(acks[0], acks[1], "the same ACK, byte for byte");
    assert_eq!(net.told(Side::A), ["100 answered", "600 2xx again"]);
    assert_eq!(net.told(Side::B), ["0 invite", "600 acked"]);
}

#[test]
fn a_2xx_never_acked_is_retransmitted_to_t2_and_given_up_after_64_t1() {
    let mut net = Net::new();
    net.call();
    net.drop = Some(Box::new(|_, m| is_request("ACK")(m)));
    net.b_answer(200);
    net.run_to(40_000);
    assert_eq!(
        net.answered(Side::B, 200, "INVITE"),
        [
            0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    // Each 2xx was ACKed again by A (and each ACK lost).
    assert_eq!(net.sent(Side::A, "ACK").len(), 11);
    assert_eq!(
        net.told(Side::B),
        ["0 invite", "32000 ack timeout", "32000 200 BYE"]
    );
    // B ends the session with BYE, which A accepts.
    assert_eq!(net.sent(Side::B, "BYE"), [32_000]);
    assert_eq!(net.answered(Side::A, 200, "BYE"), [32_000]);
    assert_eq!(net.told(Side::A).last().unwrap(), "32000 bye");
}

#[test]
fn a_2xx_from_a_second_fork_is_acked_then_hung_up() {
    let mut net = Net::new();
    net.call();
    net.b_answer(200);
    // A second UAS behind a forking proxy answers the same INVITE with its own tag.
    let invite = net.b_invite();
    let mut fork = invite.reply(200, "OK", Some("c"));
    fork.headers_mut()
        .push(HeaderName::Contact, "<sip:carol@192.0.2.2:5060>");
    net.run_to(200);
    net.deliver(Side::A, Message::Response(fork));
    net.pump_events();
    // (The simulated network takes Carol's BYE to Bob, who knows no such dialog.)
    assert_eq!(
        net.told(Side::A),
        ["0 answered", "200 forked", "200 481 BYE"]
    );
    // Both 2xx are ACKed; the fork's dialog gets a BYE to Carol's Contact, with its tag.
    assert_eq!(net.sent(Side::A, "ACK"), [0, 200]);
    let bye = net
        .wire
        .iter()
        .find_map(|w| match &w.message {
            Message::Request(r) if r.method() == &Method::Bye => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(bye.uri().as_bytes(), b"sip:carol@192.0.2.2:5060");
    assert_eq!(bye.to().tag(), Some(&b"c"[..]));
    // The call itself stays with B.
    assert_eq!(net.a.dialogs.len(), 1);
    assert_eq!(net.a.dialogs[0].id().remote_tag, "b");
}

// ----- reliable provisionals (RFC 3262) -----

const SUPPORTED_100REL: &str = "Supported: 100rel\r\n";

#[test]
fn a_reliable_ringing_is_pracked_and_stops_being_sent() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.run_to(50);
    net.b_ring(180);
    net.run_to(10_000);
    net.b_answer(200);
    net.run_to(60_000);
    // Once, PRACKed at once, never again.
    assert_eq!(net.answered(Side::B, 180, "INVITE"), [50]);
    assert_eq!(net.sent(Side::A, "PRACK"), [50]);
    assert_eq!(net.answered(Side::B, 200, "PRACK"), [50]);
    let ringing = net
        .wire
        .iter()
        .find_map(|w| match &w.message {
            Message::Response(r) if r.status == 180 => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        ringing.headers().get(&HeaderName::Require).unwrap(),
        "100rel"
    );
    assert_eq!(ringing.headers().get(&HeaderName::RSeq).unwrap(), "1");
    assert_eq!(
        net.told(Side::A),
        ["50 180", "50 200 PRACK", "10000 answered"]
    );
    assert_eq!(
        net.told(Side::B),
        ["0 invite", "50 prack 200", "10000 acked"]
    );
}

#[test]
fn without_100rel_in_the_invite_ringing_goes_once_unreliably() {
    let mut net = Net::new();
    net.call();
    net.b_ring(180);
    net.run_to(40_000);
    assert_eq!(net.answered(Side::B, 180, "INVITE"), [0]);
    assert_eq!(net.sent(Side::A, "PRACK"), Vec::<u128>::new());
}

#[test]
fn a_reliable_provisional_never_pracked_ends_the_invite_with_a_5xx_after_64_t1() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.drop = Some(Box::new(|_, m| is_request("PRACK")(m)));
    net.b_ring(180);
    net.run_to(40_000);
    // Doubling from T1 with no cap at T2, until 64*T1.
    assert_eq!(
        net.answered(Side::B, 180, "INVITE"),
        [0, 500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    // A PRACKed the first only; its transaction retransmitted it (Timer E) until Timer F.
    let pracks = net.sent(Side::A, "PRACK");
    assert_eq!(&pracks[..6], [0, 500, 1_500, 3_500, 7_500, 11_500]);
    assert_eq!(net.answered(Side::B, 500, "INVITE"), [32_000]);
    assert_eq!(net.told(Side::B), ["0 invite", "32000 prack timeout"]);
    let told_a = net.told(Side::A);
    assert_eq!(
        told_a.iter().filter(|t| t.ends_with(" 180")).count(),
        1,
        "{told_a:?}"
    );
    assert_eq!(
        told_a.iter().filter(|t| t.ends_with(" ignored")).count(),
        6,
        "each retransmission was recognised and not PRACKed: {told_a:?}"
    );
    assert!(told_a.contains(&"32000 500".to_string()), "{told_a:?}");
}

// ----- session timers (RFC 4028) -----

fn timers(net: &mut Net, a: session_timer::Config, b: session_timer::Config) {
    net.a.timer = Some(SessionTimer::new(a));
    net.b.timer = Some(SessionTimer::new(b));
}

/// The values of `name` in the messages from `from` that match `pred`.
fn header(net: &Net, from: Side, pred: impl Fn(&Message) -> bool, name: HeaderName) -> Vec<String> {
    net.wire
        .iter()
        .filter(|w| w.from == from && pred(&w.message))
        .filter_map(|w| match &w.message {
            Message::Request(r) => r.headers().get(&name).cloned(),
            Message::Response(r) => r.headers().get(&name).cloned(),
        })
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect()
}

#[test]
fn the_refresher_refreshes_at_half_the_interval_and_the_other_side_expires_without_it() {
    let mut net = Net::new();
    timers(&mut net, Default::default(), Default::default());
    net.call();
    net.b_answer(200);
    // A asked 1800 s; B granted it with A as refresher, and requires timer of A.
    assert_eq!(
        header(
            &net,
            Side::A,
            is_request("INVITE"),
            HeaderName::SessionExpires
        ),
        ["1800"]
    );
    assert_eq!(
        header(
            &net,
            Side::B,
            is_response(200, "INVITE"),
            HeaderName::SessionExpires
        ),
        ["1800;refresher=uac"]
    );
    assert_eq!(
        header(
            &net,
            Side::B,
            is_response(200, "INVITE"),
            HeaderName::Require
        ),
        ["timer"]
    );
    net.run_to(2_000_000);
    // A refreshes every 900 s with UPDATE, each 2xx restarting the interval.
    assert_eq!(net.sent(Side::A, "UPDATE"), [900_000, 1_800_000]);
    assert_eq!(
        header(
            &net,
            Side::A,
            is_request("UPDATE"),
            HeaderName::SessionExpires
        ),
        ["1800;refresher=uac", "1800;refresher=uac"]
    );
    assert!(!net.told(Side::B).iter().any(|t| t.ends_with("expired")));

    // Now A's refreshes are lost: B ends the call 1800 - 32 s after the last one.
    net.drop = Some(Box::new(|_, m| is_request("UPDATE")(m)));
    net.run_to(4_000_000);
    assert_eq!(net.sent(Side::B, "BYE"), [1_800_000 + 1_768_000]);
    assert!(net.told(Side::B).contains(&"3568000 expired".to_string()));
    // A's refresh at 2700 s failed (Timer F): A, the refresher, expires at the same instant
    // and hangs up too; the two BYEs cross, each finding its dialog gone.
    let told_a = net.told(Side::A);
    assert!(
        told_a.contains(&"2732000 timeout".to_string()),
        "{told_a:?}"
    );
    assert!(
        told_a.contains(&"3568000 expired".to_string()),
        "{told_a:?}"
    );
    assert_eq!(net.sent(Side::A, "BYE"), [3_568_000]);
}

#[test]
fn a_422_is_retried_with_the_larger_min_se() {
    let mut net = Net::new();
    let a = session_timer::Config {
        interval: 300,
        ..Default::default()
    };
    let b = session_timer::Config {
        min_se: 1200,
        ..Default::default()
    };
    timers(&mut net, a, b);
    net.call();
    assert_eq!(net.answered(Side::B, 422, "INVITE"), [0]);
    assert_eq!(
        header(&net, Side::B, is_response(422, "INVITE"), HeaderName::MinSe),
        ["1200"]
    );
    // The second INVITE asks for the larger interval, with it as Min-SE.
    assert_eq!(
        header(
            &net,
            Side::A,
            is_request("INVITE"),
            HeaderName::SessionExpires
        ),
        ["300", "1200"]
    );
    assert_eq!(
        header(&net, Side::A, is_request("INVITE"), HeaderName::MinSe),
        ["90", "1200"]
    );
    net.b_answer(200);
    assert_eq!(net.a.timer.as_ref().unwrap().interval(), Some(1200));
    net.run_to(700_000);
    assert_eq!(net.sent(Side::A, "UPDATE"), [600_000]);
}

#[test]
fn a_uac_without_timer_support_gets_the_uas_as_refresher() {
    let mut net = Net::new();
    // Only B runs session timers.
    net.b.timer = Some(SessionTimer::new(Default::default()));
    net.call();
    net.b_answer(200);
    assert_eq!(
        header(
            &net,
            Side::B,
            is_response(200, "INVITE"),
            HeaderName::SessionExpires
        ),
        ["1800;refresher=uas"]
    );
    assert_eq!(
        header(
            &net,
            Side::B,
            is_response(200, "INVITE"),
            HeaderName::Require
        ),
        Vec::<String>::new(),
        "timer is not required of a UAC that does not support it"
    );
    net.run_to(2_000_000);
    // A's 200s carry no Session-Expires (A knows no timers): B keeps refreshing all the same.
    assert_eq!(net.sent(Side::B, "UPDATE"), [900_000, 1_800_000]);
    assert_eq!(net.answered(Side::A, 200, "UPDATE"), [900_000, 1_800_000]);
    assert_eq!(net.b.timer.as_ref().unwrap().interval(), Some(1800));
    // And when A vanishes, B's refresh fails and B ends the call at its expiry.
    net.drop = Some(Box::new(|from, _| from == Side::A));
    net.run_to(5_000_000);
    // (The third refresh goes at 2700 s and is retransmitted until Timer F.)
    assert_eq!(net.sent(Side::B, "UPDATE")[2], 2_700_000);
    assert!(net.told(Side::B).contains(&"2732000 timeout".to_string()));
    assert!(
        net.told(Side::B)
            .contains(&format!("{} expired", 1_800_000 + 1_768_000)),
        "{:?}",
        net.told(Side::B)
    );
}

// ----- races (issue 10: CANCEL, ACK, PRACK, glare, refresh against BYE) -----

fn hold_matching(from: Side, pred: impl Fn(&Message) -> bool + 'static) -> Filter {
    Box::new(move |side, m| side == from && pred(m))
}

#[test]
fn a_cancel_crossing_the_200_loses_and_the_caller_acks_then_hangs_up() {
    let mut net = Net::new();
    net.call();
    net.b_ring(180);
    net.run_to(1_000);
    // The CANCEL leaves A, but B answers before it arrives.
    net.hold = Some(hold_matching(Side::A, is_request("CANCEL")));
    net.act(Side::A, |a, now| {
        a.cancelled = true;
        let (tx, _) = a.client.as_ref().unwrap();
        assert_eq!(a.layer.cancel(now, *tx).map(|c| c.is_some()), Ok(true));
    });
    net.b_answer(200);
    net.run_to(1_100);
    net.release();
    net.run_to(40_000);
    // The CANCEL is answered 200, but the INVITE stands: no 487, ever.
    assert_eq!(net.answered(Side::B, 200, "CANCEL"), [1_100]);
    assert_eq!(net.answered(Side::B, 487, "INVITE"), Vec::<u128>::new());
    assert_eq!(net.answered(Side::B, 200, "INVITE"), [1_000]);
    // The caller ACKs the 2xx and ends the call with BYE.
    assert_eq!(net.sent(Side::A, "ACK"), [1_000]);
    assert_eq!(net.sent(Side::A, "BYE"), [1_000]);
    assert_eq!(
        net.told(Side::A),
        [
            "0 180",
            "1000 answered after cancel",
            "1000 200 BYE",
            "1100 200 CANCEL"
        ]
    );
    assert_eq!(net.told(Side::B), ["0 invite", "1000 acked", "1000 bye"]);
}

#[test]
fn a_cancel_before_any_provisional_waits_for_the_100() {
    let mut net = Net::new();
    net.call();
    net.act(Side::A, |a, now| {
        let (tx, _) = a.client.as_ref().unwrap();
        assert_eq!(a.layer.cancel(now, *tx), Ok(None), "held back");
    });
    net.run_to(1_000);
    // B's transaction sent 100 Trying at 200 ms; only then did the CANCEL go.
    assert_eq!(net.answered(Side::B, 100, "INVITE"), [200]);
    assert_eq!(net.sent(Side::A, "CANCEL"), [200]);
    assert_eq!(net.answered(Side::B, 200, "CANCEL"), [200]);
    // B's user is told, and the INVITE ends 487, ACKed by A's transaction layer.
    assert_eq!(net.answered(Side::B, 487, "INVITE"), [200]);
    assert_eq!(net.sent(Side::A, "ACK"), [200]);
    assert_eq!(net.told(Side::B), ["0 invite", "200 cancelled"]);
    assert_eq!(net.told(Side::A), ["200 100", "200 200 CANCEL", "200 487"]);
}

#[test]
fn a_prack_crossing_the_200_is_still_answered_200() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.hold = Some(hold_matching(Side::A, is_request("PRACK")));
    net.b_ring(180);
    net.run_to(100);
    // The 180 had no body, so B may answer before the PRACK arrives.
    net.b_answer(200);
    net.release();
    net.run_to(40_000);
    assert_eq!(net.answered(Side::B, 200, "INVITE"), [100]);
    assert_eq!(net.answered(Side::B, 200, "PRACK"), [100]);
    assert_eq!(net.answered(Side::B, 481, "PRACK"), Vec::<u128>::new());
    // The 180 was retransmitted until the 200 went, not after.
    assert_eq!(net.answered(Side::B, 180, "INVITE"), [0]);
    assert_eq!(
        net.told(Side::B),
        ["0 invite", "100 acked", "100 prack 200"]
    );
    assert_eq!(
        net.told(Side::A),
        ["0 180", "100 answered", "100 200 PRACK"]
    );
}

#[test]
fn a_2xx_waits_for_the_prack_of_an_18x_with_a_body() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.hold = Some(hold_matching(Side::A, is_request("PRACK")));
    let mut progress = net.b_invite().reply(183, "Session Progress", Some("b"));
    progress
        .headers_mut()
        .push(HeaderName::Contact, format!("<sip:bob@{}>", Side::B.host()));
    progress.body = Bytes::from_static(b"v=0\r\n");
    net.act(Side::B, |b, now| {
        b.server
            .as_mut()
            .unwrap()
            .1
            .provisional(now, progress)
            .unwrap();
    });
    net.run_to(100);
    net.b_answer(200);
    assert_eq!(net.answered(Side::B, 200, "INVITE"), Vec::<u128>::new());
    net.run_to(300);
    net.release();
    net.run_to(40_000);
    // The 2xx went with the PRACK's answer, not before.
    assert_eq!(net.answered(Side::B, 200, "PRACK"), [300]);
    assert_eq!(net.answered(Side::B, 200, "INVITE"), [300]);
    assert_eq!(
        net.told(Side::A),
        ["0 183", "300 200 PRACK", "300 answered"]
    );
}

#[test]
fn a_prack_for_an_unknown_rseq_is_answered_481_and_changes_nothing() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.b_ring(180);
    net.run_to(100);
    // The 180 (RSeq 1) is PRACKed; then a PRACK naming RSeq 99 arrives.
    net.act(Side::A, |a, now| {
        let via = a.via();
        let rack = RAck {
            rseq: 99,
            cseq: 1,
            method: Method::Invite,
        };
        let p = a.dialogs[0].prack(&rack, via, None).unwrap();
        a.layer.send_request(now, p, a.flow()).unwrap();
    });
    net.run_to(200);
    // The next reliable provisional (RSeq 2) is still sent and PRACKed as usual.
    net.b_ring(183);
    net.run_to(40_000);
    assert_eq!(net.answered(Side::B, 200, "PRACK"), [0, 200]);
    assert_eq!(net.answered(Side::B, 481, "PRACK"), [100]);
    assert_eq!(net.answered(Side::B, 183, "INVITE"), [200]);
    assert_eq!(
        net.told(Side::A),
        [
            "0 180",
            "0 200 PRACK",
            "100 481 PRACK",
            "200 183",
            "200 200 PRACK"
        ]
    );
    assert_eq!(
        net.told(Side::B),
        ["0 invite", "0 prack 200", "100 prack 481", "200 prack 200"]
    );
}

#[test]
fn a_reliable_18x_retransmitted_while_its_prack_is_in_flight_is_not_pracked_again() {
    let mut net = Net::new();
    net.call_with(SUPPORTED_100REL);
    net.drop = Some(drop_first(1, Side::A, is_request("PRACK")));
    net.b_ring(180);
    net.run_to(40_000);
    // The PRACK was lost once; B sent its 180 again at T1, and A's PRACK transaction
    // retransmitted the same PRACK at T1 (Timer E): one PRACK transaction, one 200.
    assert_eq!(net.lost(Side::A, "PRACK"), [0]);
    assert_eq!(net.answered(Side::B, 180, "INVITE"), [0, 500]);
    let pracks: Vec<_> = net
        .wire
        .iter()
        .filter_map(|w| match &w.message {
            Message::Request(r) if r.method() == &Method::Prack => {
                Some((w.ms, r.via().branch().map(<[u8]>::to_vec), r.cseq().seq))
            }
            _ => None,
        })
        .collect();
    assert_eq!(pracks.len(), 2, "{pracks:?}");
    assert_eq!(pracks[0].1, pracks[1].1, "the same transaction");
    assert_eq!(pracks[0].2, pracks[1].2);
    assert_eq!(net.answered(Side::B, 200, "PRACK"), [500]);
    // A's user heard of the 180 once; the retransmission was recognised.
    assert_eq!(net.told(Side::A), ["0 180", "500 ignored", "500 200 PRACK"]);
}

#[test]
fn crossing_reinvites_get_491_and_retry_after_the_owner_and_non_owner_delays() {
    let mut net = Net::new();
    net.call();
    net.b_answer(200);
    net.run_to(1_000);
    // Both re-INVITE at once; each reaches the other while its own is pending.
    net.a.random = 0; // A owns the Call-ID: 2.1 s
    net.b.random = 50; // B does not: 0.5 s
    net.hold = Some(Box::new(|_, m| is_request("INVITE")(m)));
    net.act(Side::A, Ua::reinvite);
    net.act(Side::B, Ua::reinvite);
    net.release();
    net.run_to(10_000);
    assert_eq!(net.answered(Side::A, 491, "INVITE"), [1_000]);
    assert_eq!(net.answered(Side::B, 491, "INVITE"), [1_000]);
    // B, not the owner, retries first; A's retry comes later, after B's has completed.
    assert_eq!(net.sent(Side::B, "INVITE"), [1_000, 1_500]);
    assert_eq!(net.sent(Side::A, "INVITE"), [0, 1_000, 3_100]);
    assert_eq!(net.answered(Side::A, 200, "INVITE"), [1_500]);
    assert_eq!(
        net.told(Side::A),
        [
            "0 answered",
            "1000 reinvite 491",
            "1000 491",
            "1500 reinvite 200",
            "1500 acked",
            "3100 retry",
            "3100 answered"
        ]
    );
    assert_eq!(
        net.told(Side::B),
        [
            "0 invite",
            "0 acked",
            "1000 reinvite 491",
            "1000 491",
            "1500 retry",
            "1500 answered",
            "3100 reinvite 200",
            "3100 acked"
        ]
    );
}

#[test]
fn a_session_refresh_crossing_a_bye_ends_quietly() {
    let mut net = Net::new();
    timers(&mut net, Default::default(), Default::default());
    net.call();
    net.b_answer(200);
    // A's refresh at 900 s and B's BYE at the same instant cross on the wire.
    net.hold = Some(Box::new(|side, m| {
        (side == Side::A && is_request("UPDATE")(m)) || (side == Side::B && is_request("BYE")(m))
    }));
    net.run_to(900_000);
    net.act(Side::B, Ua::hangup);
    net.release();
    net.run_to(5_000_000);
    assert_eq!(net.sent(Side::A, "UPDATE"), [900_000]);
    assert_eq!(net.answered(Side::B, 481, "UPDATE"), [900_000]);
    assert_eq!(net.answered(Side::A, 200, "BYE"), [900_000]);
    // Nobody refreshes or expires later, and A sends no BYE of its own.
    assert_eq!(net.sent(Side::A, "BYE"), Vec::<u128>::new());
    for side in [Side::A, Side::B] {
        assert!(
            !net.told(side).iter().any(|t| t.ends_with("expired")),
            "{:?}",
            net.told(side)
        );
    }
    assert_eq!(net.a.timer.as_ref().unwrap().interval(), None);
    assert_eq!(net.b.timer.as_ref().unwrap().interval(), None);
    assert_eq!(
        net.told(Side::A),
        [
            "0 answered",
            "900000 refresh",
            "900000 bye",
            "900000 481 UPDATE"
        ]
    );
}
