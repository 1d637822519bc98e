//! The tokio shell around the sans-IO cores: it owns the UDP sockets, the TCP and TLS
//! connections and the clock, and drives screening and the transaction layer from one task,
//! so the cores stay single-threaded and deterministic.
//!
//! Nothing here waits on the transaction user: events go to it over a bounded channel, and a
//! request that finds the channel full is answered 503 at once. OPTIONS is answered here (load
//! balancers probe with it; the transaction user never sees it).
//!
//! TLS (RFC 3261 section 26, `sips:` hop by hop as RFC 5630 has it) is TCP with a handshake
//! in front: once it is done, a TLS connection runs the same code as a TCP one (framing,
//! keep-alive pongs, rate limit, Via stamping, responses on the same connection, closed on
//! shutdown), its flows marked [`FlowTransport::Tls`]. A handshake has
//! [`EndpointConfig::tls_handshake_timeout`] to finish, so a peer that connects and says
//! nothing holds no task; failures are counted in `sip_tls_handshake_failures_total`. The
//! certificate can be replaced while running ([`Endpoint::reload_tls`]): new connections get
//! the new one, open connections keep theirs.
//!
//! Requests go over a connection the endpoint opens when none to the peer is open: the
//! transaction user names the transport and address in the [`Flow`] and the endpoint reuses
//! a connection it has to that address (one it opened, or the one a phone registered over,
//! named by [`Flow::connection`]), or connects. Until the connection is up, what is sent to
//! the peer waits; if it cannot be opened, the waiting client transactions end at once with
//! [`ClientEvent::TransportError`] (RFC 3261 section 8.1.3.1: as a 503). TLS connections
//! check the peer's certificate against [`EndpointConfig::tls_trust`] and the host of the
//! request's next hop (its top Route, else its Request-URI; RFC 5922 section 7.2), and are
//! reused only for requests to that same host; a TLS connection a peer opened to us is
//! reused only on its flow ([`Flow::connection`]), never for a request that names just its
//! address (the peer showed no certificate; RFC 5923 section 11).
//! Connections are capped in all and per address, accepted from it and opened to it together
//! ([`EndpointConfig::max_connections`], [`EndpointConfig::max_connections_per_address`]):
//! a connection over a cap is closed at accept, or not opened (the transactions waiting for
//! it end with [`ClientEvent::TransportError`]), and counted in
//! `sip_connections_refused_total`. Connection ids are unique across restarts, so a stored
//! id (a registration's flow) never names another peer's connection after a restart.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::connections::{ConnectionSlot, ConnectionSlots};
use crate::framing::{Frame, PONG, Role, StreamFramer};
use crate::header::HeaderName;
use crate::limits::{RateLimit, SourceLimiter};
use crate::message::{Message, Request, Response};
use crate::screen::{self, Inbound, Policy};
use crate::tls::{TlsError, TlsIdentity, TlsTrust};
use crate::transaction::{Event, Flow, FlowTransport, Stats, Timers, Transactions, TxError, TxId};
use crate::typed::{Method, NameAddr};
use crate::uri::Host;

/// What an endpoint listens on and how it behaves.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// UDP addresses to bind (port 0 picks one).
    pub udp: Vec<SocketAddr>,
    /// TCP addresses to listen on.
    pub tcp: Vec<SocketAddr>,
    /// TLS addresses to listen on (port 5061 is SIP's); they need `tls_identity`.
    pub tls: Vec<SocketAddr>,
    /// The certificate chain and key served on `tls`; [`Endpoint::reload_tls`] replaces it
    /// while running.
    pub tls_identity: Option<TlsIdentity>,
    /// How long a TLS handshake may take from the TCP accept. Default 10 s: a phone on a slow
    /// mobile link finishes in well under a second, and a peer that connects and never
    /// speaks TLS must not hold a task and a socket for ever.
    pub tls_handshake_timeout: Duration,
    /// Timer base values.
    pub timers: Timers,
    /// What the stateless screening accepts.
    pub policy: Policy,
    /// The largest message accepted on any transport.
    pub max_message: usize,
    /// How many events may wait for the transaction user before new requests get 503.
    pub event_queue: usize,
    /// The `Server` header of responses built here.
    pub server: String,
    /// Requests per source address; `None` turns the limit off.
    pub rate_limit: Option<RateLimit>,
    /// Addresses never limited (trunks that carry many calls per second), neither in requests
    /// nor in connections per address.
    pub rate_limit_exempt: Vec<IpAddr>,
    /// Whom TLS connections the endpoint opens trust. Default: Mozilla's roots.
    pub tls_trust: TlsTrust,
    /// How long opening a connection may take, TCP connect and TLS handshake together.
    /// Default 5 s: well past a carrier's round trip, well inside Timer B and F (32 s), so a
    /// black-holed address fails a call attempt in seconds, not half a minute.
    pub connect_timeout: Duration,
    /// TCP and TLS connections open at once, accepted and opened together. Default 16,384.
    pub max_connections: usize,
    /// Connections with one address at once (an IPv4 address, an IPv6 /64), accepted from it
    /// and opened to it together, except with `rate_limit_exempt`. Default 128: an office of
    /// phones behind one NAT fits; one address cannot take every socket, neither by
    /// connecting nor by steering requests to ports of its own.
    pub max_connections_per_address: usize,
    /// RFC 5626 keep-alive pings on connections the endpoint opens (to trunks); `None` turns
    /// them off. Default [`Keepalive::default`].
    pub keepalive: Option<Keepalive>,
}

impl Default for EndpointConfig {
    fn default() -> EndpointConfig {
        EndpointConfig {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            tls_identity: None,
            tls_handshake_timeout: Duration::from_secs(10),
            timers: Timers::default(),
            policy: Policy::default(),
            max_message: crate::framing::DEFAULT_MAX_MESSAGE,
            event_queue: 1024,
            server: "wasmswitch".into(),
            rate_limit: Some(RateLimit::default()),
            rate_limit_exempt: Vec::new(),
            tls_trust: TlsTrust::default(),
            connect_timeout: Duration::from_secs(5),
            max_connections: 16_384,
            max_connections_per_address: 128,
            keepalive: Some(Keepalive::default()),
        }
    }
}

/// A handle to a running endpoint. Cloning it is cheap; the endpoint stops when every handle
/// and the event receiver are dropped, or on [`Endpoint::shutdown`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    commands: mpsc::Sender<Command>,
    local: Arc<Vec<(FlowTransport, SocketAddr)>>,
    /// What TLS listeners serve to new connections; `None` without TLS listeners.
    tls: Option<Arc<watch::Sender<Arc<ServerConfig>>>>,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request sent; a Box would cost more
enum Command {
    Respond(TxId, Response, oneshot::Sender<Result<(), TxError>>),
    Send(Request, Flow, oneshot::Sender<Result<TxId, TxError>>),
    Request(
        Request,
        Flow,
        oneshot::Sender<Result<ClientTransaction, TxError>>,
    ),
    RequestInto(
        Request,
        Flow,
        ClientSink,
        oneshot::Sender<Result<TxId, TxError>>,
    ),
    Cancel(TxId, oneshot::Sender<Result<(), TxError>>),
    Stateless(Request, Flow),
    Draining(bool),
    Shutdown,
}

/// What a client transaction started with [`Endpoint::request`] reports, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A response: every provisional, the final one, and (for an INVITE, in RFC 6026's
    /// Accepted state) retransmitted or forked 2xx.
    Response(Response),
    /// No final response came in time (Timer B or F): as a 408 (RFC 3261 section 8.1.3.1).
    Timeout,
    /// The request could not be sent: no connection to the peer could be opened. As a 503
    /// (RFC 3261 section 8.1.3.1).
    TransportError,
}

/// How many of a client transaction's events may wait for its owner. The last slot is kept
/// for the final response (or the timeout): provisionals that find only it free are dropped.
const CLIENT_QUEUE: usize = 32;

/// A client transaction started with [`Endpoint::request`]: its responses come here rather
/// than to the endpoint's event receiver. The stream ends when the transaction does.
#[derive(Debug)]
pub struct ClientTransaction {
    /// The transaction's id.
    pub id: TxId,
    events: mpsc::Receiver<ClientEvent>,
}

/// Where the events of client transactions started with [`Endpoint::request_into`] go: one
/// receiver for many transactions (a call's legs, say), each event with its transaction.
pub type ClientSink = mpsc::Sender<(TxId, ClientEvent)>;

/// Where a client transaction's events go.
#[derive(Debug)]
enum Owner {
    /// A receiver of its own ([`ClientTransaction`]).
    Own(mpsc::Sender<ClientEvent>),
    /// A receiver shared with other transactions.
    Shared(ClientSink),
}

impl Owner {
    /// Hands an event over without waiting. A provisional is dropped when only one slot is
    /// left, so the final response (or the timeout) always finds room.
    fn deliver(&self, tx: TxId, event: ClientEvent) -> bool {
        let provisional = matches!(&event, ClientEvent::Response(r) if r.status < 200);
        match self {
            Owner::Own(c) => (!provisional || c.capacity() > 1) && c.try_send(event).is_ok(),
            Owner::Shared(c) => {
                (!provisional || c.capacity() > 1) && c.try_send((tx, event)).is_ok()
            }
        }
    }
}

/// Why a client transaction gave no final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoFinal {
    /// No final response in time: treat as 408.
    #[error("no final response in time")]
    Timeout,
    /// The peer could not be reached (no connection could be opened): treat as 503.
    #[error("the peer could not be reached")]
    Unreachable,
    /// The transaction ended without one (the endpoint stopped).
    #[error("the transaction ended without a final response")]
    Ended,
}

impl ClientTransaction {
    /// The next event; `None` once the transaction has ended.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// Waits for the final response, passing over provisionals.
    pub async fn final_response(&mut self) -> Result<Response, NoFinal> {
        loop {
            match self.events.recv().await {
                Some(ClientEvent::Response(r)) if r.status >= 200 => return Ok(r),
                Some(ClientEvent::Response(_)) => continue,
                Some(ClientEvent::Timeout) => return Err(NoFinal::Timeout),
                Some(ClientEvent::TransportError) => return Err(NoFinal::Unreachable),
                None => return Err(NoFinal::Ended),
            }
        }
    }
}

/// The endpoint stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SIP endpoint has stopped")]
pub struct Stopped;

/// Why a call to [`Endpoint::respond`] or [`Endpoint::send_request`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The transaction layer refused it.
    #[error(transparent)]
    Transaction(#[from] TxError),
    /// The endpoint has stopped.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

impl Endpoint {
    /// Binds every configured address and starts the endpoint. Events for the transaction
    /// user arrive on the returned receiver.
    ///
    /// TLS addresses without an identity fail with [`io::ErrorKind::InvalidInput`] wrapping
    /// [`TlsError::NoIdentity`] (the source of the error).
    pub async fn start(config: EndpointConfig) -> io::Result<(Endpoint, mpsc::Receiver<Event>)> {
        let tls = match (&config.tls[..], &config.tls_identity) {
            ([], _) => None,
            (_, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    TlsError::NoIdentity,
                ));
            }
            (_, Some(identity)) => {
                let server = identity
                    .server_config()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Some(Arc::new(watch::channel(server).0))
            }
        };
        let tls_client = config
            .tls_trust
            .client_config()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (raw_tx, raw_rx) = mpsc::channel(4096);
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (event_tx, event_rx) = mpsc::channel(config.event_queue.max(1));
        let mut tasks = JoinSet::new();
        let mut local = Vec::new();
        let mut udp = Vec::new();
        for addr in &config.udp {
            // Two handles on one socket: tokio's, which the reader waits on, and a plain
            // non-blocking one the driver sends with. tokio's `try_send_to` refuses to send
            // (`WouldBlock`) until its reactor has seen the socket writable, so the first
            // datagram of a fresh socket was dropped and went out only when retransmitted,
            // T1 later; and a stateless ACK, never retransmitted, was lost. A plain
            // `sendto` fails only when the kernel's buffer is really full.
            let reader = UdpSocket::bind(addr).await?;
            let bound = reader.local_addr()?;
            let sender = reader.into_std()?;
            let reader = UdpSocket::from_std(sender.try_clone()?)?;
            local.push((FlowTransport::Udp, bound));
            tasks.spawn(udp_reader(Arc::new(reader), raw_tx.clone()));
            udp.push((sender, bound));
        }
        // Connections are tasks of their own; this tells them the endpoint stopped.
        let (stop_tx, stop_rx) = watch::channel(false);
        let conn = ConnContext {
            raw: raw_tx.clone(),
            ids: Arc::new(AtomicU64::new(first_connection_id())),
            max_message: config.max_message,
            stop: stop_rx,
            slots: Arc::new(ConnectionSlots::new(
                config.max_connections,
                config.max_connections_per_address,
                config.rate_limit_exempt.clone(),
            )),
            keepalive: config.keepalive,
        };
        for addr in &config.tcp {
            let listener = TcpListener::bind(addr).await?;
            local.push((FlowTransport::Tcp, listener.local_addr()?));
            tasks.spawn(acceptor(listener, conn.clone(), None));
        }
        if let Some(server) = &tls {
            for addr in &config.tls {
                let listener = TcpListener::bind(addr).await?;
                local.push((FlowTransport::Tls, listener.local_addr()?));
                let handshake = Handshake {
                    config: server.subscribe(),
                    timeout: config.tls_handshake_timeout,
                };
                tasks.spawn(acceptor(listener, conn.clone(), Some(handshake)));
            }
        }
        let limiter = config
            .rate_limit
            .map(|limit| SourceLimiter::new(limit, config.rate_limit_exempt.clone(), 100_000));
        let driver = Driver {
            limiter,
            reported: Stats::default(),
            core: Transactions::new(config.timers),
            policy: config.policy,
            server: config.server,
            udp,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            connecting: HashMap::new(),
            conn,
            tls_client,
            connect_timeout: config.connect_timeout,
            events: event_tx,
            clients: HashMap::new(),
            silent: HashSet::new(),
            draining: false,
        };
        tokio::spawn(async move {
            driver.run(raw_rx, cmd_rx, tasks).await;
            let _ = stop_tx.send(true);
        });
        Ok((
            Endpoint {
                commands: cmd_tx,
                local: Arc::new(local),
                tls,
            },
            event_rx,
        ))
    }

    /// The address bound for a transport (the first, if several).
    pub fn local_addr(&self, transport: FlowTransport) -> Option<SocketAddr> {
        self.local
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Serves `identity` to TLS connections accepted from now on; connections already open
    /// keep the certificate they were set up with. On an error the identity in use stays.
    pub fn reload_tls(&self, identity: TlsIdentity) -> Result<(), TlsError> {
        let Some(current) = &self.tls else {
            return Err(TlsError::NotListening);
        };
        current.send_replace(identity.server_config()?);
        tracing::info!("the TLS certificate was replaced");
        Ok(())
    }

    /// Loads a chain and key with [`TlsIdentity::from_pem_files`] and serves them as
    /// [`Endpoint::reload_tls`] does: what an operator's reload (a SIGHUP, an API call) runs
    /// after renewing a certificate. A missing file, or a key that does not match the
    /// certificate, is an error and the identity in use stays. Reads the files synchronously.
    pub fn reload_tls_from_pem_files(
        &self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<(), TlsError> {
        self.reload_tls(TlsIdentity::from_pem_files(cert, key)?)
    }

    /// Answers a request on its server transaction.
    pub async fn respond(&self, tx: TxId, response: Response) -> Result<(), EndpointError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Respond(tx, response, done))
            .await
            .map_err(|_| Stopped)?;
        Ok(result.await.map_err(|_| Stopped)??)
    }

    /// Sends a request on a new client transaction whose responses come back on the returned
    /// [`ClientTransaction`] (not on the endpoint's event receiver). The request carries its
    /// own top Via, with a branch starting `z9hG4bK`.
    pub async fn request(
        &self,
        request: Request,
        flow: Flow,
    ) -> Result<ClientTransaction, EndpointError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Request(request, flow, done))
            .await
            .map_err(|_| Stopped)?;
        Ok(result.await.map_err(|_| Stopped)??)
    }

    /// Sends a request on a new client transaction; its responses arrive on the endpoint's
    /// event receiver as [`Event::Response`] (see [`Endpoint::request`] for a transaction
    /// with a receiver of its own).
    pub async fn send_request(&self, request: Request, flow: Flow) -> Result<TxId, EndpointError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Send(request, flow, done))
            .await
            .map_err(|_| Stopped)?;
        Ok(result.await.map_err(|_| Stopped)??)
    }

    /// Sends a request on a new client transaction whose events go to `sink`, tagged with
    /// the transaction's id, among those of other transactions the same owner started: one
    /// receiver serves a call's every leg. The events are those of [`Endpoint::request`];
    /// the transaction's stream ends with its final event (a final response of a non-INVITE
    /// or the timeout), or, for an INVITE, with no event when Timer M ends its wait for
    /// retransmitted or forked 2xx.
    pub async fn request_into(
        &self,
        request: Request,
        flow: Flow,
        sink: ClientSink,
    ) -> Result<TxId, EndpointError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::RequestInto(request, flow, sink, done))
            .await
            .map_err(|_| Stopped)?;
        Ok(result.await.map_err(|_| Stopped)??)
    }

    /// Cancels an INVITE sent with [`Endpoint::request`] (RFC 3261 section 9.1): the CANCEL
    /// goes out once a provisional response has arrived (at once if one has). The CANCEL's
    /// own transaction is the endpoint's: its responses are not reported. The INVITE's
    /// transaction reports its final response (usually 487) as usual.
    pub async fn cancel(&self, tx: TxId) -> Result<(), EndpointError> {
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Cancel(tx, done))
            .await
            .map_err(|_| Stopped)?;
        Ok(result.await.map_err(|_| Stopped)??)
    }

    /// Sends a request outside any transaction: the ACK for a 2xx (RFC 3261 section
    /// 13.2.2.4), which the dialog sends again for each retransmitted 2xx. It goes over
    /// the flow as any request would (reusing or opening a connection); nothing is
    /// retransmitted and nothing is reported.
    pub async fn send_stateless(&self, request: Request, flow: Flow) -> Result<(), Stopped> {
        self.commands
            .send(Command::Stateless(request, flow))
            .await
            .map_err(|_| Stopped)
    }

    /// Starts or ends draining: while draining, OPTIONS is answered `503 Service Unavailable`
    /// (with `Retry-After`), so a load balancer that probes with OPTIONS sends new traffic
    /// elsewhere; everything else goes on as before (the transaction user refuses new calls
    /// itself).
    pub async fn set_draining(&self, draining: bool) -> Result<(), Stopped> {
        self.commands
            .send(Command::Draining(draining))
            .await
            .map_err(|_| Stopped)
    }

    /// Stops the endpoint: sockets close, transactions end without further messages.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}

/// Bytes that arrived, or a connection's coming and going.
#[derive(Debug)]
enum Raw {
    Message {
        bytes: Bytes,
        flow: Flow,
    },
    Opened {
        id: u64,
        writer: mpsc::Sender<Bytes>,
        peer: Peer,
    },
    Closed {
        id: u64,
    },
    /// A connection the endpoint set out to open could not be.
    Failed {
        peer: Peer,
    },
}

/// Whom a connection reaches, as a request to reuse it must match: the transport, the
/// address, and for a TLS connection the endpoint opened, the name its certificate was
/// checked against. A TLS connection proves only that name (RFC 5922 section 7.2, RFC 5923
/// section 11): a request for another host at the same address (a provider serving several
/// domains on one address) opens a connection of its own, and a TLS connection a peer
/// opened to us (`name: None`: it showed no certificate) is never taken for a server we
/// mean to reach; it carries requests only when the transaction user names it
/// ([`Flow::connection`], a registration's flow).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Peer {
    transport: FlowTransport,
    remote: SocketAddr,
    name: Option<ServerName<'static>>,
}

/// A message waiting for a connection being opened; a request is kept, to end its
/// transaction if the connection cannot be opened.
#[derive(Debug)]
struct Waiting {
    bytes: Bytes,
    request: Option<Request>,
}

/// An open connection, as the driver knows it.
#[derive(Debug)]
struct Conn {
    writer: mpsc::Sender<Bytes>,
    peer: Peer,
}

/// How many messages may wait for a connection being opened. A request over it is not sent
/// and its transaction ends with [`ClientEvent::TransportError`] (nothing is retransmitted
/// over a stream, so it would otherwise wait for Timer B or F); a response over it is dropped.
const CONNECTING_QUEUE: usize = 64;

struct Driver {
    limiter: Option<SourceLimiter>,
    /// The transaction counts already given to metrics.
    reported: Stats,
    core: Transactions,
    policy: Policy,
    server: String,
    /// The UDP sockets and the addresses they are bound to.
    udp: Vec<(std::net::UdpSocket, SocketAddr)>,
    conns: HashMap<u64, Conn>,
    /// The newest open connection to each peer address, per transport: what a request to the
    /// peer reuses.
    by_peer: HashMap<Peer, u64>,
    /// Connections being opened, and what waits to go over them.
    connecting: HashMap<Peer, Vec<Waiting>>,
    /// What the connection tasks this driver starts need.
    conn: ConnContext,
    /// The configuration of TLS connections the endpoint opens.
    tls_client: Arc<ClientConfig>,
    connect_timeout: Duration,
    events: mpsc::Sender<Event>,
    /// Client transactions whose events go to their owner rather than to `events`.
    clients: HashMap<TxId, Owner>,
    /// Client transactions whose events nobody hears (the CANCELs [`Endpoint::cancel`]
    /// sends): their outcome shows in the INVITE's.
    silent: HashSet<TxId>,
    /// OPTIONS is answered 503 ([`Endpoint::set_draining`]).
    draining: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut raw: mpsc::Receiver<Raw>,
        mut commands: mpsc::Receiver<Command>,
        mut tasks: JoinSet<()>,
    ) {
        loop {
            let wake = self.core.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = raw.recv() => match r {
                    Some(r) => self.raw(r),
                    None => break,
                },
                c = commands.recv() => match c {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.command(c),
                },
                () = sleep => self.core.handle_timeout(Instant::now()),
            }
            self.flush();
        }
        tasks.abort_all();
    }

    fn raw(&mut self, raw: Raw) {
        match raw {
            Raw::Opened { id, writer, peer } => {
                // What waited for this connection goes first, in order.
                for waiting in self.connecting.remove(&peer).into_iter().flatten() {
                    if writer.try_send(waiting.bytes).is_err() {
                        tracing::debug!(peer = %peer.remote, "a new connection is backed up already");
                    }
                }
                self.by_peer.insert(peer.clone(), id);
                self.conns.insert(id, Conn { writer, peer });
            }
            Raw::Closed { id } => self.forget(id),
            Raw::Failed { peer } => {
                // The transactions whose requests waited end; others to the address may be
                // on a connection that works.
                for waiting in self.connecting.remove(&peer).into_iter().flatten() {
                    if let Some(request) = waiting.request {
                        self.core.transport_failed(&request);
                    }
                }
            }
            Raw::Message { bytes, flow } => return self.message(bytes, flow),
        }
        // Handshaking connections hold a slot too, so this counts from the caps' view.
        metrics::gauge!("sip_connections").set(self.conn.slots.held() as f64);
    }

    fn message(&mut self, bytes: Bytes, flow: Flow) {
        let now = Instant::now();
        // Requests over the source's limit are dropped before they are parsed, unanswered: an
        // answer would feed the flood. Responses answer our own requests and are not limited.
        if !bytes.starts_with(b"SIP/")
            && let Some(limiter) = &mut self.limiter
            && !limiter.allow(now, flow.remote.ip())
        {
            metrics::counter!("sip_rate_limited_total").increment(1);
            return;
        }
        match screen::message(bytes, &self.policy) {
            Inbound::Request(mut request) => {
                metrics::counter!("sip_requests_received_total", "method" => request.method().as_str().to_owned()).increment(1);
                request.stamp_via(flow.remote);
                let reply_to = Flow {
                    remote: response_address(&request, flow),
                    ..flow
                };
                self.core.receive_request(now, request, reply_to);
            }
            Inbound::Response(response) => {
                metrics::counter!("sip_responses_received_total", "status" => response.status.to_string()).increment(1);
                self.core.receive_response(now, response);
            }
            Inbound::Reply(reply) => {
                metrics::counter!("sip_rejected_total", "status" => reply.status.to_string())
                    .increment(1);
                tracing::debug!(peer = %flow.remote, status = reply.status, reason = %String::from_utf8_lossy(&reply.reason), "refused a request");
                self.send(flow, &Message::Response(reply));
            }
            Inbound::Drop(why) => {
                metrics::counter!("sip_dropped_total", "reason" => dropped_label(&why))
                    .increment(1);
                tracing::debug!(peer = %flow.remote, ?why, "dropped a message");
            }
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Respond(tx, response, done) => {
                let _ = done.send(self.core.respond(now, tx, response));
            }
            Command::Send(request, flow, done) => {
                let _ = done.send(self.core.send_request(now, request, flow));
            }
            Command::Request(request, flow, done) => {
                let started = self.core.send_request(now, request, flow).map(|id| {
                    let (tx, events) = mpsc::channel(CLIENT_QUEUE);
                    // Registered before any event of the transaction can be handled: events
                    // are handled by this task, after this command.
                    self.clients.insert(id, Owner::Own(tx));
                    ClientTransaction { id, events }
                });
                let _ = done.send(started);
            }
            Command::RequestInto(request, flow, sink, done) => {
                let started = self.core.send_request(now, request, flow).inspect(|&id| {
                    self.clients.insert(id, Owner::Shared(sink));
                });
                let _ = done.send(started);
            }
            Command::Cancel(tx, done) => {
                let sent = self.core.cancel(now, tx).map(|cancel| {
                    if let Some(cancel) = cancel {
                        self.silent.insert(cancel);
                    }
                });
                let _ = done.send(sent);
            }
            Command::Stateless(request, flow) => {
                self.send(flow, &Message::Request(request));
            }
            Command::Draining(draining) => self.draining = draining,
            Command::Shutdown => {}
        }
    }

    /// Sends what the transaction layer produced and hands its events up, and brings the
    /// transaction metrics up to date.
    fn flush(&mut self) {
        self.send_and_report();
        let stats = self.core.stats();
        metrics::counter!("sip_retransmissions_total", "direction" => "sent")
            .increment(stats.retransmitted - self.reported.retransmitted);
        metrics::counter!("sip_retransmissions_total", "direction" => "received")
            .increment(stats.absorbed - self.reported.absorbed);
        self.reported = stats;
        let (clients, servers) = self.core.len();
        metrics::gauge!("sip_transactions", "side" => "client").set(clients as f64);
        metrics::gauge!("sip_transactions", "side" => "server").set(servers as f64);
    }

    fn send_and_report(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.core.poll_transmit() {
                progressed = true;
                self.send(t.flow, &t.message);
            }
            while let Some(event) = self.core.poll_event() {
                progressed = true;
                self.event(event);
            }
            if !progressed {
                return;
            }
        }
    }

    fn event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Terminated { tx } => {
                // Dropping the sender ends the owner's stream.
                self.clients.remove(&tx);
                self.silent.remove(&tx);
            }
            Event::Response { tx, .. } | Event::Timeout { tx } | Event::TransportError { tx }
                if self.silent.contains(&tx) => {}
            Event::Response { tx, response } if self.clients.contains_key(&tx) => {
                let delivered = self
                    .clients
                    .get(&tx)
                    .is_some_and(|c| c.deliver(tx, ClientEvent::Response(response)));
                if !delivered {
                    tracing::debug!(
                        ?tx,
                        "a client transaction's owner is gone or behind; a response was dropped"
                    );
                }
            }
            Event::Timeout { tx } if self.clients.contains_key(&tx) => {
                if let Some(c) = self.clients.remove(&tx) {
                    c.deliver(tx, ClientEvent::Timeout);
                }
            }
            Event::TransportError { tx } if self.clients.contains_key(&tx) => {
                if let Some(c) = self.clients.remove(&tx) {
                    c.deliver(tx, ClientEvent::TransportError);
                }
            }
            Event::Request { tx, request, .. } if request.method() == &Method::Options => {
                let response = self.options_response(&request);
                let _ = self.core.respond(now, tx, response);
            }
            Event::Request { tx, request, flow } => {
                let event = Event::Request { tx, request, flow };
                if let Err(mpsc::error::TrySendError::Full(Event::Request {
                    tx, request, ..
                })) = self.events.try_send(event)
                {
                    // The transaction user is behind: say so rather than queue without end.
                    metrics::counter!("sip_overload_total").increment(1);
                    let tag = request.stateless_tag();
                    let mut busy = request.reply(503, "Service Unavailable", Some(&tag));
                    busy.headers_mut().push(HeaderName::RetryAfter, "5");
                    let _ = self.core.respond(now, tx, busy);
                }
            }
            other => {
                // Responses, ACKs, cancellations, timeouts: the transaction user must see
                // them; if it cannot keep up, they are logged and counted.
                if self.events.try_send(other).is_err() {
                    metrics::counter!("sip_events_lost_total").increment(1);
                    tracing::warn!("the SIP event queue is full; an event was lost");
                }
            }
        }
    }

    fn options_response(&self, request: &Request) -> Response {
        if self.draining {
            let mut busy =
                request.reply(503, "Service Unavailable", Some(&request.stateless_tag()));
            busy.headers_mut().push(HeaderName::RetryAfter, "30");
            return busy;
        }
        let mut ok = request.reply(200, "OK", Some(&request.stateless_tag()));
        let headers = ok.headers_mut();
        headers.push(HeaderName::Allow, self.policy.allow_header());
        headers.push(HeaderName::Accept, "application/sdp");
        if !self.policy.supported.is_empty() {
            headers.push(HeaderName::Supported, self.policy.supported.join(", "));
        }
        headers.push(HeaderName::Server, self.server.clone());
        ok
    }

    fn send(&mut self, flow: Flow, message: &Message) {
        let bytes = message.to_vec();
        match flow.transport {
            FlowTransport::Udp => {
                // Send from a socket of the peer's address family.
                let socket = self
                    .udp
                    .iter()
                    .find(|(_, a)| a.is_ipv4() == flow.remote.is_ipv4())
                    .or_else(|| self.udp.first())
                    .map(|(s, _)| s);
                match socket {
                    // A full socket buffer drops the datagram; retransmission covers it.
                    Some(s) => {
                        if let Err(e) = s.send_to(&bytes, flow.remote) {
                            tracing::debug!(peer = %flow.remote, error = %e, "UDP send failed");
                        }
                    }
                    None => tracing::warn!(peer = %flow.remote, "no UDP socket to send from"),
                }
            }
            FlowTransport::Tcp | FlowTransport::Tls => {
                // A request over TLS must reach a peer proven to be its next hop; a response
                // goes back over the connection its request came on, whoever opened it.
                let name = match message {
                    Message::Request(request) if flow.transport == FlowTransport::Tls => {
                        Some(tls_server_name(request, flow.remote))
                    }
                    _ => None,
                };
                let key = Peer {
                    transport: flow.transport,
                    remote: flow.remote,
                    name,
                };
                // The flow's own connection if it is still open, else the newest one to the
                // peer's address, else (for a request) a new one.
                let conn = flow
                    .connection
                    .filter(|id| self.conns.contains_key(id))
                    .or_else(|| {
                        self.by_peer
                            .get(&key)
                            .copied()
                            .filter(|id| self.conns.contains_key(id))
                    });
                let mut bytes = Bytes::from(bytes);
                if let Some(id) = conn
                    && let Some(open) = self.conns.get(&id)
                {
                    match open.writer.try_send(bytes) {
                        Ok(()) => return,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // Nothing retransmits over a stream: a request ends now.
                            tracing::debug!(peer = %flow.remote, "a connection is backed up; a message was not sent");
                            if let Message::Request(request) = message {
                                self.core.transport_failed(request);
                            }
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(back)) => {
                            // The connection has ended and its Raw::Closed is still on the
                            // way: forget it now, and go on as if it were gone (a request
                            // opens a new connection).
                            bytes = back;
                            self.forget(id);
                        }
                    }
                }
                let request = match message {
                    Message::Request(request) => Some(request),
                    Message::Response(_) => None,
                };
                if let Some(waiting) = self.connecting.get_mut(&key) {
                    if waiting.len() < CONNECTING_QUEUE {
                        waiting.push(Waiting {
                            bytes,
                            request: request.cloned(),
                        });
                    } else if let Some(request) = request {
                        // Nothing retransmits over a stream: the transaction ends now, not
                        // at Timer B or F.
                        tracing::debug!(peer = %flow.remote, "too much waits for a connection; a request was not sent");
                        self.core.transport_failed(request);
                    }
                    return;
                }
                match request {
                    Some(request) => {
                        let first = Waiting {
                            bytes,
                            request: Some(request.clone()),
                        };
                        self.connect(key, first);
                    }
                    // A response goes back over the connection its request came on. RFC 3261
                    // section 18.2.2 would connect to the Via's sent-by instead; we do not, on
                    // purpose: a phone behind NAT (most that use TCP) cannot be reached there,
                    // and a peer that sends a request and closes at once is rare.
                    None => {
                        tracing::debug!(peer = %flow.remote, "the connection to answer on is closed")
                    }
                }
            }
        }
    }

    /// Forgets a connection that has ended.
    fn forget(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id)
            && self.by_peer.get(&conn.peer) == Some(&id)
        {
            self.by_peer.remove(&conn.peer);
        }
    }

    /// Starts opening a connection to `peer` (over TLS, checking its certificate names
    /// `peer.name`), with `first` waiting to go over it.
    fn connect(&mut self, peer: Peer, first: Waiting) {
        let slot = match self.conn.slots.open(peer.remote.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                metrics::counter!("sip_connections_refused_total", "reason" => refused.label())
                    .increment(1);
                tracing::warn!(peer = %peer.remote, reason = refused.label(), "no connection may be opened: over a cap");
                if let Some(request) = &first.request {
                    self.core.transport_failed(request);
                }
                return;
            }
        };
        self.connecting.insert(peer.clone(), vec![first]);
        tokio::spawn(connector(
            peer,
            self.tls_client.clone(),
            self.connect_timeout,
            self.conn.clone(),
            slot,
        ));
    }
}

/// The name a TLS peer's certificate must carry (RFC 5922 section 7.2): the host of the
/// request's next hop, its top Route if it has one, else its Request-URI. A next hop named by
/// an IP address (or a URI we cannot read) is checked against the address.
fn tls_server_name(request: &Request, remote: SocketAddr) -> ServerName<'static> {
    let route = request
        .headers()
        .get(&HeaderName::Route)
        .and_then(|v| NameAddr::parse_list(v).next())
        .and_then(Result::ok)
        .map(|a| a.uri);
    let uri = route.as_ref().unwrap_or(request.uri());
    let name = match uri.as_sip().map(|u| u.host()) {
        Some(Host::Name(name)) => std::str::from_utf8(name)
            .ok()
            .and_then(|n| ServerName::try_from(n.to_ascii_lowercase()).ok()),
        _ => None,
    };
    name.unwrap_or_else(|| ServerName::IpAddress(remote.ip().into()))
}

/// The first connection id of this run: the clock in microseconds, shifted, so ids never
/// repeat across restarts (a registration stored with a connection id must not name a
/// different peer's connection after the host restarts).
fn first_connection_id() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    (micros << 8).max(1)
}

fn dropped_label(why: &screen::Dropped) -> &'static str {
    match why {
        screen::Dropped::Malformed(_) => "malformed",
        screen::Dropped::Scanner => "scanner",
        screen::Dropped::ExtraVia => "extra_via",
        screen::Dropped::BadAck => "bad_ack",
    }
}

/// Where responses to a request go (RFC 3261 section 18.2.2, RFC 3581): over a connection,
/// back on it; over UDP, to the source port when the sender asked with `rport`, else to the
/// source address at the Via's sent-by port.
fn response_address(request: &Request, flow: Flow) -> SocketAddr {
    if flow.transport != FlowTransport::Udp {
        return flow.remote;
    }
    let via = request.via();
    if via.rport().is_some() {
        return flow.remote;
    }
    SocketAddr::new(flow.remote.ip(), via.port.unwrap_or(5060))
}

async fn udp_reader(socket: Arc<UdpSocket>, raw: mpsc::Sender<Raw>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        // A keep-alive (RFC 5626 section 4.4.1: CRLF CRLF, or a STUN packet) carries nothing.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        let flow = Flow {
            transport: FlowTransport::Udp,
            remote: from,
            connection: None,
        };
        if raw.try_send(Raw::Message { bytes, flow }).is_err() {
            if raw.is_closed() {
                return;
            }
            metrics::counter!("sip_udp_overflow_total").increment(1);
        }
    }
}

/// What every connection task needs, shared by the listeners.
#[derive(Debug, Clone)]
struct ConnContext {
    raw: mpsc::Sender<Raw>,
    /// Connection identifiers, unique across all listeners of the endpoint.
    ids: Arc<AtomicU64>,
    max_message: usize,
    stop: watch::Receiver<bool>,
    /// The caps on open connections.
    slots: Arc<ConnectionSlots>,
    /// Keep-alives on connections the endpoint opens; `None`: none.
    keepalive: Option<Keepalive>,
}

/// The TLS handshake a listener runs before a connection carries SIP.
#[derive(Debug, Clone)]
struct Handshake {
    /// The configuration for new connections; [`Endpoint::reload_tls`] replaces it.
    config: watch::Receiver<Arc<ServerConfig>>,
    timeout: Duration,
}

/// How long a closing connection may take to write what is queued for it: a peer that has
/// stopped reading must not hold the task for ever.
const DRAIN: Duration = Duration::from_secs(5);

/// An RFC 5626 keep-alive ping on a stream: a double CRLF (the pong is one CRLF).
const PING: &[u8] = b"\r\n\r\n";

/// Keep-alives on connections the endpoint opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How often to ping.
    pub every: Duration,
    /// How long a peer that answers pings may take to answer one before the connection is
    /// taken for dead.
    pub pong_timeout: Duration,
}

impl Default for Keepalive {
    /// A ping every 90 s (RFC 5626 section 4.4.1 suggests 95-120 s for streams: a little
    /// under, as NATs commonly drop idle TCP mappings after two minutes or more), a pong
    /// within 10 s (the RFC's figure).
    fn default() -> Keepalive {
        Keepalive {
            every: Duration::from_secs(90),
            pong_timeout: Duration::from_secs(10),
        }
    }
}

/// Accepts connections on a TCP or, with `handshake`, a TLS listener.
async fn acceptor(listener: TcpListener, conn: ConnContext, handshake: Option<Handshake>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Over a cap, the connection is closed before it costs a task or a handshake.
                let slot = match conn.slots.accept(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        metrics::counter!("sip_connections_refused_total", "reason" => refused.label())
                            .increment(1);
                        tracing::debug!(%peer, reason = refused.label(), "refused a connection over the cap");
                        drop(stream);
                        continue;
                    }
                };
                // SIP messages are small and answered at once: no Nagle delay.
                let _ = stream.set_nodelay(true);
                match &handshake {
                    None => {
                        let (reader, writer) = stream.into_split();
                        let open = Open {
                            peer: Peer {
                                transport: FlowTransport::Tcp,
                                remote: peer,
                                name: None,
                            },
                            role: Role::Accepted,
                            slot,
                        };
                        tokio::spawn(connection(reader, writer, open, conn.clone()));
                    }
                    Some(handshake) => {
                        tokio::spawn(tls_connection(
                            stream,
                            peer,
                            slot,
                            handshake.clone(),
                            conn.clone(),
                        ));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if conn.raw.is_closed() {
            return;
        }
    }
}

/// Runs the TLS handshake on an accepted TCP connection, then the connection.
async fn tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    handshake: Handshake,
    mut conn: ConnContext,
) {
    // The configuration of the moment: a reload during the handshake does not change it.
    let config = handshake.config.borrow().clone();
    let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let result = tokio::select! {
        r = tokio::time::timeout(handshake.timeout, accept) => r,
        _ = conn.stop.wait_for(|stopped| *stopped) => return,
    };
    let stream = match result {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            metrics::counter!("sip_tls_handshake_failures_total", "reason" => "error").increment(1);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            metrics::counter!("sip_tls_handshake_failures_total", "reason" => "timeout")
                .increment(1);
            tracing::debug!(%peer, timeout = ?handshake.timeout, "TLS handshake timed out");
            return;
        }
    };
    let (reader, writer) = tokio::io::split(stream);
    let open = Open {
        peer: Peer {
            transport: FlowTransport::Tls,
            remote: peer,
            name: None,
        },
        role: Role::Accepted,
        slot,
    };
    connection(reader, writer, open, conn).await;
}

/// Opens a connection to `peer` (TLS with `tls` when the peer names a server, its
/// certificate checked against the name), then carries SIP over it. If it cannot be opened
/// in `timeout`, the driver hears [`Raw::Failed`].
async fn connector(
    peer: Peer,
    tls: Arc<ClientConfig>,
    timeout: Duration,
    mut conn: ConnContext,
    slot: ConnectionSlot,
) {
    let remote = peer.remote;
    let label = transport_label(peer.transport);
    let name = peer.name.clone();
    let open = async {
        let stream = TcpStream::connect(remote)
            .await
            .map_err(|e| ("connect", e))?;
        let _ = stream.set_nodelay(true);
        match name {
            None => Ok(Stream::Tcp(stream)),
            Some(name) => tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(|e| ("handshake", e)),
        }
    };
    let result = tokio::select! {
        r = tokio::time::timeout(timeout, open) => r,
        _ = conn.stop.wait_for(|stopped| *stopped) => return,
    };
    let stream = match result {
        Ok(Ok(stream)) => stream,
        Ok(Err((stage, e))) => {
            metrics::counter!("sip_connect_failures_total", "transport" => label, "reason" => stage)
                .increment(1);
            tracing::info!(peer = %remote, transport = label, stage, error = %e, "could not open a connection");
            let _ = conn.raw.send(Raw::Failed { peer }).await;
            return;
        }
        Err(_) => {
            metrics::counter!("sip_connect_failures_total", "transport" => label, "reason" => "timeout")
                .increment(1);
            tracing::info!(peer = %remote, transport = label, ?timeout, "opening a connection timed out");
            let _ = conn.raw.send(Raw::Failed { peer }).await;
            return;
        }
    };
    let open = Open {
        peer,
        role: Role::Opened,
        slot,
    };
    match stream {
        Stream::Tcp(stream) => {
            let (reader, writer) = stream.into_split();
            connection(reader, writer, open, conn).await;
        }
        Stream::Tls(stream) => {
            let (reader, writer) = tokio::io::split(*stream);
            connection(reader, writer, open, conn).await;
        }
    }
}

/// A connection the endpoint opened.
enum Stream {
    Tcp(TcpStream),
    // Boxed: a TLS client connection is kilobytes, a TCP stream a handle.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// What a connection is: its transport, its peer, who opened it, and its slot under the caps
/// (given back when the connection ends).
struct Open {
    peer: Peer,
    role: Role,
    slot: ConnectionSlot,
}

/// Carries SIP over one TCP or TLS connection with `open.peer`: frames what `reader` gives
/// and hands the messages to the driver; writes to `writer` what the driver sends.
async fn connection<R, W>(mut reader: R, mut writer: W, open: Open, conn: ConnContext)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Open {
        peer: whom,
        role,
        slot: _slot,
    } = open;
    let (transport, peer) = (whom.transport, whom.remote);
    let ConnContext {
        raw,
        ids,
        max_message,
        mut stop,
        keepalive,
        ..
    } = conn;
    let id = ids.fetch_add(1, Ordering::Relaxed);
    let flow = Flow {
        transport,
        remote: peer,
        connection: Some(id),
    };
    let label = transport_label(transport);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if raw
        .send(Raw::Opened {
            id,
            writer: out_tx.clone(),
            peer: whom,
        })
        .await
        .is_err()
    {
        return;
    }
    let mut write = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // TLS sends close_notify, so the peer can tell the end from a cut; TCP sends FIN.
        let _ = writer.shutdown().await;
    });
    let mut framer = StreamFramer::new(role, max_message);
    let mut buf = vec![0u8; 16 * 1024];
    // RFC 5626 section 4.4.1 keep-alives on connections we opened: a double CRLF every
    // `keepalive.every`, so NATs and firewalls on the way keep the connection (a provider
    // sends our calls over it). A peer that has answered a ping with a pong is expected to
    // answer every one: if it stops, the connection is dead and is closed, and the next
    // request opens a new one. A peer that never answers (many do not implement RFC 5626)
    // still gets the pings, and is not judged by them.
    let mut pings = match (role, keepalive) {
        (Role::Opened, Some(k)) => Some((
            tokio::time::interval_at(tokio::time::Instant::now() + k.every, k.every),
            k.pong_timeout,
        )),
        _ => None,
    };
    let mut answers_pings = false;
    let mut pong_due: Option<tokio::time::Instant> = None;
    'read: loop {
        let tick = async {
            match &mut pings {
                Some((interval, _)) => interval.tick().await,
                None => std::future::pending().await,
            }
        };
        let pong_late = async {
            match pong_due {
                Some(at) if answers_pings => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            r = reader.read(&mut buf) => r,
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = tick => {
                if out_tx.try_send(Bytes::from_static(PING)).is_ok() && pong_due.is_none() {
                    let timeout = pings.as_ref().map_or(DRAIN, |(_, t)| *t);
                    pong_due = Some(tokio::time::Instant::now() + timeout);
                }
                continue;
            }
            () = pong_late => {
                metrics::counter!("sip_keepalive_failures_total", "transport" => label).increment(1);
                tracing::info!(%peer, "no pong to a keep-alive ping: closing the connection");
                break;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(bytes))) => {
                    if raw.send(Raw::Message { bytes, flow }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = out_tx.send(Bytes::from_static(PONG)).await;
                }
                Ok(Some(Frame::Pong)) => {
                    answers_pings = true;
                    pong_due = None;
                }
                Ok(Some(Frame::Skipped(n))) => {
                    metrics::counter!("sip_parse_errors_total", "transport" => label).increment(1);
                    tracing::debug!(%peer, skipped = n, "skipped bytes that begin no message");
                }
                Err(e) => {
                    metrics::counter!("sip_parse_errors_total", "transport" => label).increment(1);
                    tracing::debug!(%peer, error = %e, "closing a connection whose framing is lost");
                    break 'read;
                }
            }
        }
    }
    let _ = raw.send(Raw::Closed { id }).await;
    drop(out_tx);
    if tokio::time::timeout(DRAIN, &mut write).await.is_err() {
        write.abort();
    }
}

fn transport_label(transport: FlowTransport) -> &'static str {
    match transport {
        FlowTransport::Udp => "udp",
        FlowTransport::Tcp => "tcp",
        FlowTransport::Tls => "tls",
    }
}
