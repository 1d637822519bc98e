//! The transaction layer on a simulated clock: every timer of RFC 3261 section 17 (A to K)
//! and RFC 6026 (L, M) fires at its virtual time, lost messages are retransmitted on
//! schedule, and CANCEL and ACK races end as the RFCs say. Nothing sleeps: time is an
//! `Instant` the test moves.
#![allow(clippy::unwrap_used)] // the simulation's helpers panic on what a test never expects

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wasmswitch_sip::transaction::{
    Event, Flow, FlowTransport, Timers, Transactions, TxError, TxId,
};
use wasmswitch_sip::{Message, Request, Response};

fn flow(transport: FlowTransport) -> Flow {
    Flow {
        transport,
        remote: "192.0.2.10:5060".parse::<SocketAddr>().unwrap(),
        connection: (transport != FlowTransport::Udp).then_some(7),
    }
}

fn udp() -> Flow {
    flow(FlowTransport::Udp)
}

fn tcp() -> Flow {
    flow(FlowTransport::Tcp)
}

fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:bob@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: call-{branch}\r\n\
CSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// A response to `req` as it would arrive: printed and read back.
fn response(req: &Request, status: u16) -> Response {
    let reply = req.reply(status, "Reason", Some("b2"));
    match Message::parse(&reply.to_vec()) {
        Ok(Message::Response(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// The layer and a simulated clock, with everything it sent and reported, stamped with the
/// virtual time.
struct Sim {
    layer: Transactions,
    t0: Instant,
    now: Instant,
    sent: Vec<(Duration, Message)>,
    events: Vec<(Duration, Event)>,
}

impl Sim {
    fn new() -> Sim {
        let t0 = Instant::now();
        Sim {
            layer: Transactions::new(Timers::default()),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn collect(&mut self) {
        let t = self.now - self.t0;
        while let Some(tx) = self.layer.poll_transmit() {
            self.sent.push((t, tx.message));
        }
        while let Some(e) = self.layer.poll_event() {
            self.events.push((t, e));
        }
    }

    /// Fires every timer up to `ms` (in order, each at its own time), then sets the clock
    /// there.
    fn run_to(&mut self, ms: u64) {
        let end = self.at(ms);
        while let Some(t) = self.layer.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t;
            self.layer.handle_timeout(t);
            self.collect();
        }
        self.now = end;
    }

    fn send(&mut self, req: Request, flow: Flow) -> TxId {
        let id = self.layer.send_request(self.now, req, flow).unwrap();
        self.collect();
        id
    }

    fn receive_response(&mut self, resp: Response) {
        self.layer.receive_response(self.now, resp);
        self.collect();
    }

    fn receive_request(&mut self, req: Request, flow: Flow) {
        self.layer.receive_request(self.now, req, flow);
        self.collect();
    }

    fn respond(&mut self, tx: TxId, resp: Response) {
        self.layer.respond(self.now, tx, resp).unwrap();
        self.collect();
    }

    /// The virtual times (ms) at which a request of `method` was sent.
    fn request_times(&self, method: &str) -> Vec<u128> {
        self.sent
            .iter()
            .filter_map(|(t, m)| match m {
                Message::Request(r) if r.method().as_str() == method => Some(t.as_millis()),
                _ => None,
            })
            .collect()
    }

    /// The virtual times (ms) at which a response with `status` was sent.
    fn response_times(&self, status: u16) -> Vec<u128> {
        self.sent
            .iter()
            .filter_map(|(t, m)| match m {
                Message::Response(r) if r.status == status => Some(t.as_millis()),
                _ => None,
            })
            .collect()
    }

    fn terminated_at(&self, tx: TxId) -> Option<u128> {
        self.events.iter().find_map(|(t, e)| match e {
            Event::Terminated { tx: id } if *id == tx => Some(t.as_millis()),
            _ => None,
        })
    }

    fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }
}

fn server_tx(sim: &Sim) -> TxId {
    sim.events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::Request { tx, .. } => Some(*tx),
            _ => None,
        })
        .expect("a request event")
}

// ----- INVITE client -----

#[test]
fn timer_a_doubles_and_timer_b_gives_up_after_64_t1() {
    let mut sim = Sim::new();
    let tx = sim.send(request("INVITE", "z9hG4bKa"), udp());
    sim.run_to(40_000);
    // Sent at 0, then retransmitted at T1, 2T1, 4T1, ... (A doubles, no cap) until B (32 s).
    assert_eq!(
        sim.request_times("INVITE"),
        [0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    assert_eq!(sim.layer.stats().retransmitted, 6);
    assert_eq!(
        sim.count(|e| matches!(e, Event::Timeout { tx: t } if *t == tx)),
        1
    );
    assert_eq!(sim.terminated_at(tx), Some(32_000));
    assert!(sim.layer.is_empty());
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_timer_b_still_fires() {
    let mut sim = Sim::new();
    let tx = sim.send(request("INVITE", "z9hG4bKb"), tcp());
    sim.run_to(40_000);
    assert_eq!(sim.request_times("INVITE"), [0]);
    assert_eq!(sim.terminated_at(tx), Some(32_000));
}

#[test]
fn a_provisional_stops_retransmission_and_timer_b() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKc");
    let tx = sim.send(invite.clone(), udp());
    sim.run_to(600);
    sim.receive_response(response(&invite, 180));
    sim.run_to(120_000);
    assert_eq!(sim.request_times("INVITE"), [0, 500]);
    assert_eq!(sim.count(|e| matches!(e, Event::Timeout { .. })), 0);
    assert_eq!(
        sim.terminated_at(tx),
        None,
        "waits for the final as long as it takes"
    );
}

#[test]
fn a_non_2xx_final_is_acked_again_for_each_retransmission_until_timer_d() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKd");
    let tx = sim.send(invite.clone(), udp());
    sim.run_to(100);
    let busy = response(&invite, 486);
    sim.receive_response(busy.clone());
    sim.run_to(2_000);
    sim.receive_response(busy.clone());
    sim.run_to(40_000);
    assert_eq!(sim.request_times("ACK"), [100, 2_000]);
    // The transaction user hears of the final once.
    assert_eq!(
        sim.count(|e| matches!(e, Event::Response { response, .. } if response.status == 486)),
        1
    );
    // Timer D: 32 s over UDP.
    assert_eq!(sim.terminated_at(tx), Some(32_100));
    // The ACK is the INVITE's, with the response's To (tag) and CSeq method ACK.
    let ack = sim
        .sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::Request(r) if r.method().as_str() == "ACK" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(ack.to().tag(), Some(&b"b2"[..]));
    assert_eq!(ack.cseq().seq, 1);
    assert_eq!(ack.via().branch(), Some(&b"z9hG4bKd"[..]));
    assert_eq!(ack.uri().as_bytes(), invite.uri().as_bytes());
}

#[test]
fn timer_d_is_zero_over_tcp() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKe");
    let tx = sim.send(invite.clone(), tcp());
    sim.run_to(100);
    sim.receive_response(response(&invite, 603));
    sim.run_to(100);
    assert_eq!(sim.terminated_at(tx), Some(100));
}

#[test]
fn a_2xx_moves_to_accepted_and_its_retransmissions_reach_the_dialog_until_timer_m() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKf");
    let tx = sim.send(invite.clone(), udp());
    sim.run_to(100);
    let ok = response(&invite, 200);
    sim.receive_response(ok.clone());
    sim.run_to(600);
    sim.receive_response(ok.clone());
    sim.run_to(40_000);
    assert_eq!(
        sim.count(|e| matches!(e, Event::Response { response, .. } if response.status == 200)),
        2,
        "each 2xx goes to the dialog, which ACKs it"
    );
    assert_eq!(
        sim.request_times("ACK"),
        Vec::<u128>::new(),
        "the layer never ACKs a 2xx"
    );
    assert_eq!(sim.request_times("INVITE"), [0]);
    assert_eq!(sim.terminated_at(tx), Some(32_100), "Timer M = 64*T1");
    // After the transaction, a late 2xx is still handed up, as a stray.
    sim.receive_response(ok);
    assert_eq!(sim.count(|e| matches!(e, Event::Stray { .. })), 1);
}

// ----- non-INVITE client -----

#[test]
fn timer_e_doubles_to_t2_and_timer_f_gives_up() {
    let mut sim = Sim::new();
    let tx = sim.send(request("OPTIONS", "z9hG4bKg"), udp());
    sim.run_to(40_000);
    let times = sim.request_times("OPTIONS");
    assert_eq!(&times[..6], [0, 500, 1500, 3500, 7500, 11500]);
    assert!(
        times.windows(2).skip(4).all(|w| w[1] - w[0] == 4000),
        "{times:?}"
    );
    assert_eq!(sim.terminated_at(tx), Some(32_000));
    assert_eq!(sim.count(|e| matches!(e, Event::Timeout { .. })), 1);
}

#[test]
fn a_provisional_slows_timer_e_to_t2() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKh");
    sim.send(options.clone(), udp());
    sim.run_to(100);
    sim.receive_response(response(&options, 100));
    sim.run_to(9_000);
    assert_eq!(sim.request_times("OPTIONS"), [0, 500, 4500, 8500]);
}

#[test]
fn timer_k_absorbs_retransmitted_finals_for_t4() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKi");
    let tx = sim.send(options.clone(), udp());
    sim.run_to(100);
    let ok = response(&options, 200);
    sim.receive_response(ok.clone());
    sim.receive_response(ok);
    sim.run_to(10_000);
    assert_eq!(
        sim.count(|e| matches!(e, Event::Response { .. })),
        1,
        "the retransmission was absorbed"
    );
    assert_eq!(sim.terminated_at(tx), Some(5_100));
}

#[test]
fn timer_k_is_zero_over_tcp() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKk0");
    let tx = sim.send(options.clone(), tcp());
    sim.run_to(100);
    sim.receive_response(response(&options, 200));
    sim.run_to(100);
    assert_eq!(sim.terminated_at(tx), Some(100));
}

#[test]
fn timer_i_is_zero_over_tcp_and_timer_g_never_runs() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKi0");
    sim.receive_request(invite.clone(), tcp());
    let tx = server_tx(&sim);
    let busy = invite.reply(486, "Busy Here", Some("s1"));
    sim.respond(tx, busy.clone());
    sim.run_to(10_000);
    assert_eq!(sim.response_times(486), [0]);
    sim.receive_request(ack_for(&invite, &busy), tcp());
    sim.run_to(10_000);
    assert_eq!(sim.terminated_at(tx), Some(10_000));
}

// ----- INVITE server -----

#[test]
fn the_server_sends_100_trying_if_the_user_is_silent_for_200_ms() {
    let mut sim = Sim::new();
    sim.receive_request(request("INVITE", "z9hG4bKj"), udp());
    sim.run_to(1_000);
    assert_eq!(sim.response_times(100), [200]);

    let mut sim = Sim::new();
    sim.receive_request(request("INVITE", "z9hG4bKk"), udp());
    let tx = server_tx(&sim);
    sim.run_to(50);
    let ringing = sim
        .layer
        .request(tx)
        .unwrap()
        .reply(180, "Ringing", Some("s1"));
    sim.respond(tx, ringing);
    sim.run_to(1_000);
    assert_eq!(
        sim.response_times(100),
        Vec::<u128>::new(),
        "a quick 180 makes 100 needless"
    );
    assert_eq!(sim.response_times(180), [50]);
}

#[test]
fn a_retransmitted_invite_gets_the_last_provisional_and_is_not_reported_again() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKl");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    sim.respond(tx, invite.reply(180, "Ringing", Some("s1")));
    sim.run_to(500);
    sim.receive_request(invite, udp());
    assert_eq!(sim.response_times(180), [0, 500]);
    assert_eq!(sim.count(|e| matches!(e, Event::Request { .. })), 1);
    assert_eq!(sim.layer.stats().absorbed, 1);
}

#[test]
fn timer_g_retransmits_a_non_2xx_final_and_timer_h_gives_up_on_the_ack() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKm");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    sim.respond(tx, invite.reply(486, "Busy Here", Some("s1")));
    sim.run_to(40_000);
    let times = sim.response_times(486);
    assert_eq!(&times[..6], [0, 500, 1500, 3500, 7500, 11500]);
    assert!(
        times.windows(2).skip(4).all(|w| w[1] - w[0] == 4000),
        "{times:?}"
    );
    assert_eq!(
        sim.count(|e| matches!(e, Event::NoAck { tx: t } if *t == tx)),
        1
    );
    assert_eq!(sim.terminated_at(tx), Some(32_000));
}

#[test]
fn an_ack_stops_timer_g_and_timer_i_absorbs_ack_retransmissions() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKn");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    let busy = invite.reply(486, "Busy Here", Some("s1"));
    sim.respond(tx, busy.clone());
    sim.run_to(700);
    let ack = ack_for(&invite, &busy);
    sim.receive_request(ack.clone(), udp());
    sim.run_to(800);
    sim.receive_request(ack, udp());
    sim.run_to(40_000);
    assert_eq!(sim.response_times(486), [0, 500]);
    assert_eq!(sim.count(|e| matches!(e, Event::Ack { .. })), 0, "absorbed");
    assert_eq!(sim.count(|e| matches!(e, Event::NoAck { .. })), 0);
    assert_eq!(
        sim.terminated_at(tx),
        Some(5_700),
        "Timer I = T4 after the ACK"
    );
}

#[test]
fn after_a_2xx_the_server_waits_in_accepted_for_timer_l_passing_acks_up() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKo");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    let ok = invite.reply(200, "OK", Some("s1"));
    sim.respond(tx, ok.clone());
    sim.run_to(300);
    sim.receive_request(invite.clone(), udp());
    assert_eq!(
        sim.response_times(200),
        [0],
        "a retransmitted INVITE is absorbed"
    );
    // The dialog retransmits its 2xx through the transaction.
    sim.respond(tx, ok.clone());
    let ack = ack_for(&invite, &ok);
    sim.receive_request(ack, udp());
    assert_eq!(sim.count(|e| matches!(e, Event::Ack { .. })), 1);
    sim.run_to(40_000);
    assert_eq!(sim.terminated_at(tx), Some(32_000), "Timer L = 64*T1");
    assert_eq!(sim.count(|e| matches!(e, Event::Request { .. })), 1);
}

// ----- non-INVITE server -----

#[test]
fn timer_j_keeps_the_final_for_retransmitted_requests() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKp");
    sim.receive_request(options.clone(), udp());
    let tx = server_tx(&sim);
    sim.run_to(100);
    sim.receive_request(options.clone(), udp());
    assert_eq!(sim.sent.len(), 0, "nothing to repeat yet");
    sim.respond(tx, options.reply(200, "OK", Some("s1")));
    sim.run_to(1_000);
    sim.receive_request(options, udp());
    sim.run_to(40_000);
    assert_eq!(sim.response_times(200), [100, 1_000]);
    assert_eq!(sim.terminated_at(tx), Some(32_100));
    assert!(sim.layer.is_empty());
}

#[test]
fn timer_j_is_zero_over_tcp() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKq");
    sim.receive_request(options.clone(), tcp());
    let tx = server_tx(&sim);
    sim.respond(tx, options.reply(200, "OK", Some("s1")));
    sim.run_to(0);
    assert_eq!(sim.terminated_at(tx), Some(0));
}

#[test]
fn a_final_cannot_be_sent_twice() {
    let mut sim = Sim::new();
    let options = request("OPTIONS", "z9hG4bKr");
    sim.receive_request(options.clone(), udp());
    let tx = server_tx(&sim);
    sim.respond(tx, options.reply(200, "OK", Some("s1")));
    assert_eq!(
        sim.layer
            .respond(sim.now, tx, options.reply(500, "Oops", Some("s1"))),
        Err(TxError::Finished)
    );
}

// ----- CANCEL -----

#[test]
fn a_cancel_is_answered_200_and_the_invite_reported_cancelled() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKs");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    sim.respond(tx, invite.reply(180, "Ringing", Some("s1")));
    sim.run_to(1_000);
    sim.receive_request(cancel_for(&invite), udp());
    assert_eq!(sim.response_times(200), [1_000], "200 to the CANCEL");
    assert_eq!(
        sim.count(|e| matches!(e, Event::Cancelled { tx: t } if *t == tx)),
        1
    );
    // The user then ends the INVITE with 487, which is ACKed.
    let terminated = invite.reply(487, "Request Terminated", Some("s1"));
    sim.respond(tx, terminated.clone());
    sim.receive_request(ack_for(&invite, &terminated), udp());
    sim.run_to(40_000);
    assert_eq!(sim.response_times(487), [1_000]);
    assert_eq!(sim.count(|e| matches!(e, Event::NoAck { .. })), 0);
}

#[test]
fn a_cancel_for_nothing_is_answered_481() {
    let mut sim = Sim::new();
    sim.receive_request(cancel_for(&request("INVITE", "z9hG4bKt")), udp());
    assert_eq!(sim.response_times(481), [0]);
    assert_eq!(sim.count(|e| matches!(e, Event::Cancelled { .. })), 0);
}

#[test]
fn a_cancel_after_the_final_does_not_cancel() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKu");
    sim.receive_request(invite.clone(), udp());
    let tx = server_tx(&sim);
    sim.respond(tx, invite.reply(200, "OK", Some("s1")));
    sim.receive_request(cancel_for(&invite), udp());
    // RFC 3261 section 9.2: the CANCEL is answered 200, but the INVITE stands.
    assert_eq!(sim.count(|e| matches!(e, Event::Cancelled { .. })), 0);
    assert_eq!(sim.response_times(200).len(), 2);
}

#[test]
fn a_client_cancel_waits_for_a_provisional() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKv");
    let tx = sim.send(invite.clone(), udp());
    assert_eq!(sim.layer.cancel(sim.now, tx), Ok(None));
    sim.run_to(300);
    assert_eq!(sim.request_times("CANCEL"), Vec::<u128>::new());
    sim.receive_response(response(&invite, 180));
    assert_eq!(sim.request_times("CANCEL"), [300]);
    // The CANCEL names the INVITE's branch, Call-ID and CSeq number.
    let cancel = sim
        .sent
        .iter()
        .find_map(|(_, m)| match m {
            Message::Request(r) if r.method().as_str() == "CANCEL" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(cancel.via().branch(), Some(&b"z9hG4bKv"[..]));
    assert_eq!(cancel.cseq().seq, 1);
    assert_eq!(cancel.call_id(), invite.call_id());
    // The 487 is ACKed by the layer; the 200 to the CANCEL ends the CANCEL's transaction.
    sim.receive_response(response(&invite, 487));
    sim.receive_response(response(&cancel, 200));
    assert_eq!(sim.request_times("ACK"), [300]);
    sim.run_to(60_000);
    assert!(sim.layer.is_empty());
}

#[test]
fn a_2xx_racing_a_cancel_still_reaches_the_dialog() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKw");
    let tx = sim.send(invite.clone(), udp());
    sim.receive_response(response(&invite, 180));
    sim.layer.cancel(sim.now, tx).unwrap();
    sim.collect();
    // The callee answered before the CANCEL arrived: the 2xx wins, and the dialog must ACK
    // it and hang up with BYE (RFC 3261 section 9.1).
    sim.receive_response(response(&invite, 200));
    assert_eq!(
        sim.count(|e| matches!(e, Event::Response { tx: t, response } if *t == tx && response.status == 200)),
        1
    );
    assert_eq!(sim.request_times("ACK"), Vec::<u128>::new());
}

#[test]
fn an_invite_without_provisional_or_final_cannot_be_cancelled_twice_over() {
    let mut sim = Sim::new();
    let invite = request("INVITE", "z9hG4bKx");
    let tx = sim.send(invite.clone(), udp());
    sim.receive_response(response(&invite, 486));
    assert_eq!(sim.layer.cancel(sim.now, tx), Err(TxError::NotCancellable));
    let options = sim.send(request("OPTIONS", "z9hG4bKy"), udp());
    assert_eq!(
        sim.layer.cancel(sim.now, options),
        Err(TxError::NotCancellable)
    );
}

// ----- requests the layer refuses -----

#[test]
fn a_request_needs_a_unique_rfc_3261_branch() {
    let mut sim = Sim::new();
    assert_eq!(
        sim.layer
            .send_request(sim.now, request("OPTIONS", "old2543"), udp()),
        Err(TxError::NoBranch)
    );
    sim.send(request("OPTIONS", "z9hG4bKz"), udp());
    assert_eq!(
        sim.layer
            .send_request(sim.now, request("OPTIONS", "z9hG4bKz"), udp()),
        Err(TxError::Duplicate)
    );
}

// ----- helpers built the way the RFC says a peer builds them -----

/// An ACK for a non-2xx or 2xx, as the peer's transaction layer or dialog would send it.
fn ack_for(invite: &Request, response: &Response) -> Request {
    let text = format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={}\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
        invite.uri(),
        String::from_utf8_lossy(invite.via().branch().unwrap()),
        String::from_utf8_lossy(invite.from().as_bytes()),
        String::from_utf8_lossy(
            response
                .headers()
                .get(&wasmswitch_sip::HeaderName::To)
                .unwrap()
        ),
        String::from_utf8_lossy(invite.call_id()),
        invite.cseq().seq,
    );
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn cancel_for(invite: &Request) -> Request {
    let text = String::from_utf8(invite.encode_to_vec())
        .unwrap()
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("1 INVITE", "1 CANCEL");
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}
