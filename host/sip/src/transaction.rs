//! RFC 3261 section 17 transactions, with RFC 6026's Accepted state, as a sans-IO state
//! machine: it is fed requests and responses with the time they arrived and the flow they came
//! over, and the transaction user's requests and responses; it answers with messages to send
//! ([`Transactions::poll_transmit`]), events for the transaction user
//! ([`Transactions::poll_event`]) and the next instant it must be woken
//! ([`Transactions::poll_timeout`], then [`Transactions::handle_timeout`]). It reads no clock
//! and owns no socket, so every timer (A to M) is tested on a simulated clock.
//!
//! What belongs to the layer above stays there: the ACK for a 2xx and the retransmission of a
//! 2xx are the dialog's (RFC 3261 section 13.3.1.4); a new branch for each request is the
//! caller's (it builds the Via).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::{HeaderName, Headers};
use crate::message::{Message, Request, Response};
use crate::typed::Method;

/// RFC 3261's timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1, the round-trip estimate: 500 ms. Retransmissions start at T1 and double.
    pub t1: Duration,
    /// T2, the cap on non-INVITE and response retransmission intervals: 4 s.
    pub t2: Duration,
    /// T4, how long the network may hold a message: 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// How a message travels: what the transport needs to send it, and whether the transport is
/// reliable (then nothing is retransmitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: FlowTransport,
    /// The peer's address (for a response: where the request came from).
    pub remote: SocketAddr,
    /// The connection, for TCP and TLS: the transport's own identifier.
    pub connection: Option<u64>,
}

/// The transport of a [`Flow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowTransport {
    /// UDP: unreliable, messages are retransmitted.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Flow {
    fn reliable(&self) -> bool {
        self.transport != FlowTransport::Udp
    }
}

/// A transaction's identity, for the transaction user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// A message to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub flow: Flow,
    /// What (the transport prints it).
    pub message: Message,
}

/// What the transaction user learns.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A new request, with the server transaction that will carry its responses.
    Request {
        /// Answer with [`Transactions::respond`].
        tx: TxId,
        /// The request.
        request: Request,
        /// Where it came from.
        flow: Flow,
    },
    /// An ACK for a 2xx (it matched no transaction, or an INVITE transaction in Accepted):
    /// the dialog's.
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        flow: Flow,
    },
    /// The INVITE of this server transaction was cancelled (the CANCEL was answered 200):
    /// answer the INVITE 487 unless it was answered already.
    Cancelled {
        /// The INVITE's server transaction.
        tx: TxId,
    },
    /// A response to a client transaction: every provisional, the final, and (in Accepted)
    /// retransmissions of a 2xx and 2xx from other forks.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: Response,
    },
    /// A response that matched no transaction (a 2xx retransmitted after the transaction
    /// ended): the dialog may still need it (to ACK it again).
    Stray {
        /// The response.
        response: Response,
    },
    /// A client transaction got no final response in time (Timer B or F): treat as 408.
    Timeout {
        /// The client transaction.
        tx: TxId,
    },
    /// A client transaction's request could not be sent: the connection to the next hop
    /// could not be opened (refused, unreachable, no TLS handshake). Treat as 503 (RFC 3261
    /// section 8.1.3.1); the transaction has ended.
    TransportError {
        /// The client transaction.
        tx: TxId,
    },
    /// A server INVITE transaction's non-2xx final response was never acknowledged
    /// (Timer H).
    NoAck {
        /// The server transaction.
        tx: TxId,
    },
    /// The transaction is gone; its id will not be seen again.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
}

/// Why a call into the layer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// No such transaction (it ended, or the id is not a server transaction).
    #[error("no such transaction")]
    Unknown,
    /// The request's top Via has no RFC 3261 branch (`z9hG4bK...`), so responses could not be
    /// matched to it.
    #[error("the request's top Via has no RFC 3261 branch")]
    NoBranch,
    /// A client transaction with this branch and method exists.
    #[error("a transaction with this branch exists")]
    Duplicate,
    /// The transaction already sent its final response.
    #[error("the transaction already has a final response")]
    Finished,
    /// CANCEL applies to INVITE client transactions without a final response only.
    #[error("only a pending INVITE can be cancelled")]
    NotCancellable,
}

const MAGIC: &[u8] = b"z9hG4bK";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    /// RFC 3261: branch, sent-by, method (ACK is looked up as INVITE).
    Branch(Bytes, Bytes, MethodKey),
    /// RFC 2543 requests without the magic cookie: Call-ID, CSeq number, From tag, top Via.
    Legacy(Bytes, u32, Bytes, Bytes, MethodKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MethodKey {
    Invite,
    Cancel,
    Other(Bytes),
}

impl MethodKey {
    fn of(m: &Method) -> MethodKey {
        match m {
            Method::Invite | Method::Ack => MethodKey::Invite,
            Method::Cancel => MethodKey::Cancel,
            other => MethodKey::Other(Bytes::copy_from_slice(other.as_str().as_bytes())),
        }
    }
}

fn server_key(req: &Request, method: &Method) -> ServerKey {
    let via = req.via();
    let m = MethodKey::of(method);
    match via.branch() {
        Some(b) if b.starts_with(MAGIC) => {
            let mut sent_by = via.host_raw.to_vec();
            if let Some(p) = via.port {
                sent_by.extend_from_slice(format!(":{p}").as_bytes());
            }
            ServerKey::Branch(Bytes::copy_from_slice(b), Bytes::from(sent_by), m)
        }
        _ => ServerKey::Legacy(
            req.call_id().clone(),
            req.cseq().seq,
            Bytes::copy_from_slice(req.from().tag().unwrap_or_default()),
            Bytes::copy_from_slice(via.as_bytes()),
            m,
        ),
    }
}

/// Client transactions are matched on the top Via's branch and the CSeq method.
type ClientKey = (Bytes, MethodKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// The two timers a transaction can have running: the retransmission timer (A, E, G) and
/// the timer that ends the state (B, D, F, H, I, J, K, L, M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Retransmit,
    End,
}

#[derive(Debug)]
struct Client {
    key: ClientKey,
    invite: bool,
    state: ClientState,
    request: Request,
    flow: Flow,
    interval: Duration,
    retransmit_at: Option<Instant>,
    end_at: Option<Instant>,
    ack: Option<Request>,
    /// A CANCEL asked for before any provisional arrived (RFC 3261 section 9.1 waits).
    cancel_pending: bool,
}

#[derive(Debug)]
struct Server {
    key: ServerKey,
    invite: bool,
    state: ServerState,
    request: Request,
    flow: Flow,
    last: Option<Response>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    end_at: Option<Instant>,
    /// When to send 100 Trying if the transaction user has not answered (INVITE only).
    trying_at: Option<Instant>,
}

/// Counts since the layer was made, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests and responses this layer sent again on a timer (A, E, G).
    pub retransmitted: u64,
    /// Retransmitted requests and responses that arrived and were absorbed.
    pub absorbed: u64,
}

/// The transaction layer of one SIP endpoint.
#[derive(Debug)]
pub struct Transactions {
    timers: Timers,
    stats: Stats,
    next_id: u64,
    clients: HashMap<TxId, Client>,
    client_keys: HashMap<ClientKey, TxId>,
    servers: HashMap<TxId, Server>,
    server_keys: HashMap<ServerKey, TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId, Slot)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// How long an INVITE server transaction waits for the transaction user's first response
/// before sending 100 Trying itself (RFC 3261 section 17.2.1).
const TRYING_DELAY: Duration = Duration::from_millis(200);

impl Transactions {
    /// An empty layer with these timer values.
    pub fn new(timers: Timers) -> Transactions {
        Transactions {
            timers,
            stats: Stats::default(),
            next_id: 1,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            heap: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// How many transactions are alive (client, server).
    pub fn len(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// Retransmission counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// No transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Transactions::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, tx, slot))) = self.heap.peek().copied() {
            if self.deadline(tx, slot) == Some(at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn deadline(&self, tx: TxId, slot: Slot) -> Option<Instant> {
        if let Some(c) = self.clients.get(&tx) {
            return match slot {
                Slot::Retransmit => c.retransmit_at,
                Slot::End => c.end_at,
            };
        }
        self.servers.get(&tx).and_then(|s| match slot {
            Slot::Retransmit => s.retransmit_at.min_some(s.trying_at),
            Slot::End => s.end_at,
        })
    }

    fn arm(&mut self, tx: TxId, slot: Slot, at: Instant) {
        self.heap.push(Reverse((at, tx, slot)));
    }

    // ----- client side -----

    /// Starts a client transaction for `request` (not ACK: an ACK for a 2xx is sent by the
    /// dialog directly, and the layer sends the ACK for a non-2xx itself).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        flow: Flow,
    ) -> Result<TxId, TxError> {
        let branch = match request.via().branch() {
            Some(b) if b.starts_with(MAGIC) && b.len() > MAGIC.len() => Bytes::copy_from_slice(b),
            _ => return Err(TxError::NoBranch),
        };
        let key = (branch, MethodKey::of(request.method()));
        if self.client_keys.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        let invite = request.method() == &Method::Invite;
        let id = self.id();
        let t1 = self.timers.t1;
        let mut c = Client {
            key: key.clone(),
            invite,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request,
            flow,
            interval: t1,
            retransmit_at: None,
            end_at: Some(now + 64 * t1),
            ack: None,
            cancel_pending: false,
        };
        if !flow.reliable() {
            c.retransmit_at = Some(now + t1);
            self.arm(id, Slot::Retransmit, now + t1);
        }
        self.arm(id, Slot::End, now + 64 * t1);
        self.transmits.push_back(Transmit {
            flow,
            message: Message::Request(c.request.clone()),
        });
        self.client_keys.insert(key, id);
        self.clients.insert(id, c);
        Ok(id)
    }

    /// Cancels a pending INVITE (RFC 3261 section 9.1): a CANCEL is sent once a provisional
    /// response has arrived (at once if one has). The CANCEL is a transaction of its own,
    /// whose id is returned when it was sent now.
    pub fn cancel(&mut self, now: Instant, tx: TxId) -> Result<Option<TxId>, TxError> {
        let c = self.clients.get_mut(&tx).ok_or(TxError::Unknown)?;
        if !c.invite || !matches!(c.state, ClientState::Calling | ClientState::Proceeding) {
            return Err(TxError::NotCancellable);
        }
        if c.state == ClientState::Calling {
            c.cancel_pending = true;
            return Ok(None);
        }
        let cancel = cancel_for(&c.request).ok_or(TxError::NotCancellable)?;
        let flow = c.flow;
        // The final response has 64*T1 from the CANCEL (RFC 3261 section 9.1): a far end that
        // answers neither the INVITE nor the CANCEL must not hold the transaction for ever.
        let end = now + 64 * self.timers.t1;
        c.end_at = Some(end);
        self.arm(tx, Slot::End, end);
        self.send_request(now, cancel, flow).map(Some)
    }

    /// A response arrived (already screened).
    pub fn receive_response(&mut self, now: Instant, response: Response) {
        let key = response.core().and_then(|core| {
            let branch = core.via().branch()?;
            Some((
                Bytes::copy_from_slice(branch),
                MethodKey::of(&core.cseq().method),
            ))
        });
        let Some(id) = key.and_then(|k| self.client_keys.get(&k).copied()) else {
            self.events.push_back(Event::Stray { response });
            return;
        };
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let status = response.status;
        let t1 = self.timers.t1;
        let reliable = c.flow.reliable();
        match (c.invite, c.state, status) {
            // INVITE client (17.1.1.2 and RFC 6026).
            (true, ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                c.state = ClientState::Proceeding;
                c.retransmit_at = None;
                // Timer B guards Calling only: once the far end has answered at all, the
                // transaction user decides how long to wait (and may CANCEL).
                let send_cancel = std::mem::take(&mut c.cancel_pending);
                // Cancelled: the final response has 64*T1 from the CANCEL (RFC 3261 section
                // 9.1), then the transaction ends as timed out.
                c.end_at = send_cancel.then(|| now + 64 * t1);
                let end_at = c.end_at;
                let cancel = if send_cancel {
                    cancel_for(&c.request).map(|r| (r, c.flow))
                } else {
                    None
                };
                if let Some(at) = end_at {
                    self.arm(id, Slot::End, at);
                }
                self.events.push_back(Event::Response { tx: id, response });
                if let Some((cancel, flow)) = cancel {
                    // A branch clash is impossible: CANCEL keys on its own method.
                    let _ = self.send_request(now, cancel, flow);
                }
            }
            (true, ClientState::Calling | ClientState::Proceeding, 200..=299) => {
                c.state = ClientState::Accepted;
                c.retransmit_at = None;
                c.cancel_pending = false;
                let at = now + 64 * t1;
                c.end_at = Some(at);
                self.arm(id, Slot::End, at);
                self.events.push_back(Event::Response { tx: id, response });
            }
            (true, ClientState::Calling | ClientState::Proceeding, _) => {
                c.state = ClientState::Completed;
                c.retransmit_at = None;
                c.cancel_pending = false;
                c.ack = ack_for(&c.request, &response);
                if let Some(ack) = &c.ack {
                    self.transmits.push_back(Transmit {
                        flow: c.flow,
                        message: Message::Request(ack.clone()),
                    });
                }
                let at = now
                    + if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                c.end_at = Some(at);
                self.arm(id, Slot::End, at);
                self.events.push_back(Event::Response { tx: id, response });
            }
            (true, ClientState::Accepted, 200..=299) => {
                // Retransmissions and other forks' 2xx: the dialog ACKs each.
                self.events.push_back(Event::Response { tx: id, response });
            }
            (true, ClientState::Completed, 300..=699) => {
                self.stats.absorbed += 1;
                if let Some(ack) = &c.ack {
                    self.transmits.push_back(Transmit {
                        flow: c.flow,
                        message: Message::Request(ack.clone()),
                    });
                }
            }
            // Non-INVITE client (17.1.2.2).
            (false, ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                if c.state == ClientState::Trying && !reliable {
                    // Keep retransmitting, now every T2.
                    c.interval = self.timers.t2;
                }
                c.state = ClientState::Proceeding;
                self.events.push_back(Event::Response { tx: id, response });
            }
            (false, ClientState::Trying | ClientState::Proceeding, 200..=699) => {
                c.state = ClientState::Completed;
                c.retransmit_at = None;
                let at = now
                    + if reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                c.end_at = Some(at);
                self.arm(id, Slot::End, at);
                self.events.push_back(Event::Response { tx: id, response });
            }
            // Anything else is a retransmission the transaction has already seen.
            _ => self.stats.absorbed += 1,
        }
    }

    // ----- server side -----

    /// A request arrived (already screened). Retransmissions are absorbed (answered with the
    /// last response, if any); an ACK for a non-2xx final ends its transaction's wait; a
    /// CANCEL is answered here and reported as [`Event::Cancelled`]; anything new becomes a
    /// server transaction and an [`Event::Request`].
    pub fn receive_request(&mut self, now: Instant, request: Request, flow: Flow) {
        let method = request.method().clone();
        let key = server_key(&request, &method);
        if method == Method::Ack {
            let found = self.server_keys.get(&key).copied();
            match found.and_then(|id| self.servers.get_mut(&id).map(|s| (id, s))) {
                Some((id, s)) if s.state == ServerState::Completed => {
                    s.state = ServerState::Confirmed;
                    s.retransmit_at = None;
                    let at = now
                        + if s.flow.reliable() {
                            Duration::ZERO
                        } else {
                            self.timers.t4
                        };
                    s.end_at = Some(at);
                    self.arm(id, Slot::End, at);
                }
                Some((_, s)) if s.state == ServerState::Confirmed => {}
                // In Accepted (RFC 6026) or with no transaction: an ACK for a 2xx.
                _ => self.events.push_back(Event::Ack { request, flow }),
            }
            return;
        }
        if let Some(&id) = self.server_keys.get(&key) {
            // A retransmission.
            self.stats.absorbed += 1;
            if let Some(s) = self.servers.get(&id)
                && matches!(s.state, ServerState::Proceeding | ServerState::Completed)
                && let Some(last) = &s.last
            {
                self.transmits.push_back(Transmit {
                    flow,
                    message: Message::Response(last.clone()),
                });
            }
            return;
        }
        if method == Method::Cancel {
            self.receive_cancel(now, request, flow);
            return;
        }
        let invite = method == Method::Invite;
        let id = self.id();
        let trying_at = invite.then(|| now + TRYING_DELAY);
        if let Some(at) = trying_at {
            self.arm(id, Slot::Retransmit, at);
        }
        self.servers.insert(
            id,
            Server {
                key: key.clone(),
                invite,
                state: if invite {
                    ServerState::Proceeding
                } else {
                    ServerState::Trying
                },
                request: request.clone(),
                flow,
                last: None,
                interval: self.timers.t1,
                retransmit_at: None,
                end_at: None,
                trying_at,
            },
        );
        self.server_keys.insert(key, id);
        self.events.push_back(Event::Request {
            tx: id,
            request,
            flow,
        });
    }

    fn receive_cancel(&mut self, now: Instant, cancel: Request, flow: Flow) {
        // The CANCEL matches the INVITE whose transaction has the same key (9.2).
        let invite_key = server_key(&cancel, &Method::Invite);
        let target = self.server_keys.get(&invite_key).copied();
        let pending = target.filter(|id| {
            self.servers
                .get(id)
                .is_some_and(|s| s.state == ServerState::Proceeding)
        });
        // The CANCEL is a non-INVITE transaction of its own, answered here.
        let id = self.id();
        let key = server_key(&cancel, &Method::Cancel);
        let (status, reason) = if pending.is_some() || target.is_some() {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let response = cancel.reply(status, reason, None);
        self.servers.insert(
            id,
            Server {
                key: key.clone(),
                invite: false,
                state: ServerState::Trying,
                request: cancel,
                flow,
                last: None,
                interval: self.timers.t1,
                retransmit_at: None,
                end_at: None,
                trying_at: None,
            },
        );
        self.server_keys.insert(key, id);
        let _ = self.respond(now, id, response);
        if let Some(invite) = pending {
            self.events.push_back(Event::Cancelled { tx: invite });
        }
    }

    /// Sends a response on a server transaction.
    pub fn respond(&mut self, now: Instant, tx: TxId, response: Response) -> Result<(), TxError> {
        let t1 = self.timers.t1;
        let s = self.servers.get_mut(&tx).ok_or(TxError::Unknown)?;
        let reliable = s.flow.reliable();
        let status = response.status;
        let mut arms = Vec::new();
        match (s.invite, s.state) {
            (true, ServerState::Proceeding) => {
                s.trying_at = None;
                match status {
                    100..=199 => {}
                    200..=299 => {
                        // RFC 6026: wait in Accepted (Timer L) to absorb retransmitted
                        // INVITEs and hand their ACKs to the dialog.
                        s.state = ServerState::Accepted;
                        s.end_at = Some(now + 64 * t1);
                        arms.push((Slot::End, now + 64 * t1));
                    }
                    _ => {
                        // Timer H waits for the ACK; Timer G retransmits meanwhile.
                        s.state = ServerState::Completed;
                        s.end_at = Some(now + 64 * t1);
                        arms.push((Slot::End, now + 64 * t1));
                        if !reliable {
                            s.interval = t1;
                            s.retransmit_at = Some(now + t1);
                            arms.push((Slot::Retransmit, now + t1));
                        }
                    }
                }
            }
            (true, ServerState::Accepted) if (200..=299).contains(&status) => {
                // The dialog retransmits its 2xx through the transaction while it lives.
            }
            (false, ServerState::Trying | ServerState::Proceeding) => {
                if status < 200 {
                    s.state = ServerState::Proceeding;
                } else {
                    // Timer J keeps the final for retransmitted requests.
                    s.state = ServerState::Completed;
                    let at = now + if reliable { Duration::ZERO } else { 64 * t1 };
                    s.end_at = Some(at);
                    arms.push((Slot::End, at));
                }
            }
            _ => return Err(TxError::Finished),
        }
        self.transmits.push_back(Transmit {
            flow: s.flow,
            message: Message::Response(response.clone()),
        });
        s.last = Some(response);
        for (slot, at) in arms {
            self.arm(tx, slot, at);
        }
        Ok(())
    }

    /// The request a server transaction carries (for building its responses).
    pub fn request(&self, tx: TxId) -> Option<&Request> {
        self.servers
            .get(&tx)
            .map(|s| &s.request)
            .or_else(|| self.clients.get(&tx).map(|c| &c.request))
    }

    // ----- timers -----

    /// `request` could not be sent: the transport could not open a connection to its next
    /// hop (refused, unreachable, no TLS handshake, over a cap). If it is a client
    /// transaction's, still waiting for a response, the transaction ends with
    /// [`Event::TransportError`] (RFC 3261 section 17.1.4), at once rather than at Timer B or
    /// F. Only that transaction: others to the same address may be on another connection
    /// (one opened earlier, or for another TLS name) that works. An ACK, or a request of no
    /// transaction, is let go.
    pub fn transport_failed(&mut self, request: &Request) {
        if request.method() == &Method::Ack {
            return;
        }
        let Some(branch) = request.via().branch() else {
            return;
        };
        let key = (
            Bytes::copy_from_slice(branch),
            MethodKey::of(request.method()),
        );
        let Some(tx) = self.client_keys.get(&key).copied() else {
            return;
        };
        let waiting = self.clients.get(&tx).is_some_and(|c| {
            matches!(
                c.state,
                ClientState::Calling | ClientState::Trying | ClientState::Proceeding
            )
        });
        if waiting {
            self.events.push_back(Event::TransportError { tx });
            self.remove_client(tx);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, tx, slot))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.deadline(tx, slot) != Some(at) {
                continue;
            }
            if self.clients.contains_key(&tx) {
                self.client_timer(now, tx, slot);
            } else {
                self.server_timer(now, tx, slot);
            }
        }
    }

    fn client_timer(&mut self, now: Instant, tx: TxId, slot: Slot) {
        let t2 = self.timers.t2;
        let Some(c) = self.clients.get_mut(&tx) else {
            return;
        };
        match slot {
            Slot::Retransmit => {
                self.stats.retransmitted += 1;
                // Timer A (INVITE: doubles without cap) or E (non-INVITE: doubles up to T2,
                // then every T2; in Proceeding every T2).
                self.transmits.push_back(Transmit {
                    flow: c.flow,
                    message: Message::Request(c.request.clone()),
                });
                c.interval = if c.invite {
                    c.interval * 2
                } else if c.state == ClientState::Proceeding {
                    t2
                } else {
                    (c.interval * 2).min(t2)
                };
                let at = now + c.interval;
                c.retransmit_at = Some(at);
                self.arm(tx, Slot::Retransmit, at);
            }
            Slot::End => {
                // Timer B or F: no final response in time. D, K, M: the wait is over.
                if matches!(
                    c.state,
                    ClientState::Calling | ClientState::Trying | ClientState::Proceeding
                ) {
                    self.events.push_back(Event::Timeout { tx });
                }
                self.remove_client(tx);
            }
        }
    }

    fn server_timer(&mut self, now: Instant, tx: TxId, slot: Slot) {
        let t2 = self.timers.t2;
        let Some(s) = self.servers.get_mut(&tx) else {
            return;
        };
        match slot {
            Slot::Retransmit => {
                if s.trying_at.is_some_and(|at| at <= now) {
                    s.trying_at = None;
                    let trying = s.request.reply(100, "Trying", None);
                    self.transmits.push_back(Transmit {
                        flow: s.flow,
                        message: Message::Response(trying.clone()),
                    });
                    s.last = Some(trying);
                    return;
                }
                // Timer G: the non-2xx final again, every doubling interval up to T2.
                if s.state == ServerState::Completed
                    && let Some(last) = &s.last
                {
                    self.stats.retransmitted += 1;
                    self.transmits.push_back(Transmit {
                        flow: s.flow,
                        message: Message::Response(last.clone()),
                    });
                    s.interval = (s.interval * 2).min(t2);
                    let at = now + s.interval;
                    s.retransmit_at = Some(at);
                    self.arm(tx, Slot::Retransmit, at);
                }
            }
            Slot::End => {
                // Timer H: the ACK never came. J, I, L: the wait is over.
                if s.invite && s.state == ServerState::Completed {
                    self.events.push_back(Event::NoAck { tx });
                }
                self.remove_server(tx);
            }
        }
    }

    fn remove_client(&mut self, tx: TxId) {
        if let Some(c) = self.clients.remove(&tx) {
            self.client_keys.remove(&c.key);
            self.events.push_back(Event::Terminated { tx });
        }
    }

    fn remove_server(&mut self, tx: TxId) {
        if let Some(s) = self.servers.remove(&tx) {
            self.server_keys.remove(&s.key);
            self.events.push_back(Event::Terminated { tx });
        }
    }
}

/// The earlier of two optional instants.
trait MinSome {
    fn min_some(self, other: Option<Instant>) -> Option<Instant>;
}

impl MinSome for Option<Instant> {
    fn min_some(self, other: Option<Instant>) -> Option<Instant> {
        match (self, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 section 17.1.1.3): like the INVITE, with
/// the response's To (which carries the tag).
fn ack_for(invite: &Request, response: &Response) -> Option<Request> {
    let to = response
        .headers()
        .get(&HeaderName::To)
        .cloned()
        .unwrap_or_else(|| invite.to().to_bytes());
    sibling(invite, Method::Ack, to)
}

/// The CANCEL for an INVITE (RFC 3261 section 9.1): like the INVITE, To and all.
fn cancel_for(invite: &Request) -> Option<Request> {
    sibling(invite, Method::Cancel, invite.to().to_bytes())
}

/// A request that shares the INVITE's transaction identity: its Request-URI, Call-ID, From,
/// CSeq number, top Via (so its branch) and Route, with `method` and `to`.
fn sibling(invite: &Request, method: Method, to: Bytes) -> Option<Request> {
    let mut headers = Headers::with_capacity(8);
    // Only the top Via value.
    headers.push(HeaderName::Via, invite.via().to_bytes());
    if let Some(mf) = invite.headers().get(&HeaderName::MaxForwards) {
        headers.push(HeaderName::MaxForwards, mf.clone());
    }
    headers.push(HeaderName::From, invite.from().to_bytes());
    headers.push(HeaderName::To, to);
    headers.push(HeaderName::CallId, invite.call_id().clone());
    headers.push(HeaderName::CSeq, format!("{} {method}", invite.cseq().seq));
    for route in invite.headers().get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, route.clone());
    }
    // Built from a request (and response) that passed the same checks: it passes them too.
    Request::from_parts(method, invite.uri().clone(), headers, Bytes::new()).ok()
}
