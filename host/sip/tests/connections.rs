//! Connections the endpoint opens and reuses, and the caps on those it accepts: a request over
//! TCP or TLS to a peer with no connection opens one and the next request reuses it; a
//! request to a phone that connected to us (a registration's flow) goes over the phone's own
//! connection; a peer that cannot be reached ends the transaction at once, not at Timer F; a
//! TLS peer must show a certificate for the host the request is addressed to; one address
//! cannot hold more connections than its share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::Receiver;
use wasmswitch_sip::endpoint::{Endpoint, EndpointConfig, Keepalive, NoFinal};
use wasmswitch_sip::framing::{Frame, Role, StreamFramer};
use wasmswitch_sip::tls::{TlsIdentity, TlsTrust};
use wasmswitch_sip::transaction::{Event, Flow, FlowTransport};
use wasmswitch_sip::{Message, Request};

const WAIT: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn endpoint(config: EndpointConfig) -> (Endpoint, Receiver<Event>) {
    Endpoint::start(config).await.expect("the endpoint starts")
}

/// A request to `target_uri` whose Via names `transport` (upper case, as phones write it).
fn request(method: &str, target_uri: &str, transport: &str, branch: &str) -> Request {
    let text = format!(
        "{method} {target_uri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} switch.invalid;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:acme@provider.example.com>;tag=1\r\n\
         To: <sip:acme@provider.example.com>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:acme@switch.invalid;transport={lower}>\r\n\
         Content-Length: 0\r\n\r\n",
        lower = transport.to_ascii_lowercase(),
    );
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// The response to `request` with `status`, as a peer would send it.
fn answer(request: &str, status: &str) -> String {
    let headers: String = request
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    format!("SIP/2.0 {status}\r\n{headers}Content-Length: 0\r\n\r\n")
}

/// Reads the next SIP message off a connection.
async fn next_message<S: AsyncRead + Unpin>(conn: &mut S, framer: &mut StreamFramer) -> String {
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match framer.next_frame().expect("the stream frames") {
                Some(Frame::Message(bytes)) => return String::from_utf8_lossy(&bytes).into_owned(),
                Some(_) => continue,
                None => {}
            }
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "the connection stayed open");
            framer.push(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a message in time")
}

async fn send<S: AsyncWrite + Unpin>(conn: &mut S, text: &str) {
    conn.write_all(text.as_bytes()).await.expect("write");
    conn.flush().await.expect("flush");
}

/// Whether the other side closes the connection within `within`.
async fn closed<S: AsyncRead + Unpin>(conn: &mut S, within: Duration) -> bool {
    let drain = async {
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, drain).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_tcp_opens_a_connection_and_the_next_reuses_it() {
    let (ep, _events) = endpoint(EndpointConfig::default()).await;
    let provider = TcpListener::bind(loopback()).await.expect("bind");
    let remote = provider.local_addr().expect("bound");
    let flow = Flow {
        transport: FlowTransport::Tcp,
        remote,
        connection: None,
    };
    let uri = format!("sip:{remote};transport=tcp");
    let mut first = ep
        .request(request("REGISTER", &uri, "TCP", "one"), flow)
        .await
        .expect("sent");
    let (mut conn, _) = tokio::time::timeout(WAIT, provider.accept())
        .await
        .expect("the endpoint connects in time")
        .expect("accepted");
    let mut framer = StreamFramer::new(Role::Accepted, 65_535);
    let register = next_message(&mut conn, &mut framer).await;
    assert!(register.starts_with("REGISTER "), "{register}");
    send(&mut conn, &answer(&register, "200 OK")).await;
    let ok = tokio::time::timeout(WAIT, first.final_response())
        .await
        .expect("in time")
        .expect("a final response");
    assert_eq!(ok.status, 200);

    // The second request goes over the same connection: no new accept, and it arrives on
    // the stream already open (a new connection would leave this read waiting).
    let mut second = ep
        .request(request("OPTIONS", &uri, "TCP", "two"), flow)
        .await
        .expect("sent");
    let options = next_message(&mut conn, &mut framer).await;
    assert!(options.starts_with("OPTIONS "), "{options}");
    send(&mut conn, &answer(&options, "200 OK")).await;
    let ok = tokio::time::timeout(WAIT, second.final_response())
        .await
        .expect("in time")
        .expect("a final response");
    assert_eq!(ok.status, 200);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), provider.accept())
            .await
            .is_err(),
        "no second connection was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_refuses_the_connection_ends_the_transaction_at_once() {
    let (ep, _events) = endpoint(EndpointConfig::default()).await;
    // An address nobody listens on: the connect is refused.
    let remote = TcpListener::bind(loopback())
        .await
        .expect("bind")
        .local_addr()
        .expect("bound");
    let flow = Flow {
        transport: FlowTransport::Tcp,
        remote,
        connection: None,
    };
    let started = Instant::now();
    let mut tx = ep
        .request(
            request(
                "OPTIONS",
                &format!("sip:{remote};transport=tcp"),
                "TCP",
                "gone",
            ),
            flow,
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time, long before Timer F");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_finishes_the_tls_handshake_times_out_at_the_connect_timeout() {
    let (ep, _events) = endpoint(EndpointConfig {
        connect_timeout: Duration::from_millis(300),
        ..EndpointConfig::default()
    })
    .await;
    // Accepts the TCP connection and says nothing.
    let silent = TcpListener::bind(loopback()).await.expect("bind");
    let remote = silent.local_addr().expect("bound");
    let held = tokio::spawn(async move {
        let (conn, _) = silent.accept().await.expect("accepted");
        tokio::time::sleep(WAIT).await;
        drop(conn);
    });
    let flow = Flow {
        transport: FlowTransport::Tls,
        remote,
        connection: None,
    };
    let started = Instant::now();
    let mut tx = ep
        .request(
            request(
                "OPTIONS",
                &format!("sip:localhost:{};transport=tls", remote.port()),
                "TLS",
                "mute",
            ),
            flow,
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    held.abort();
}

/// A TLS server for `localhost` and 127.0.0.1, and its certificate.
#[allow(deprecated)] // rustls' ring provider: see `wasmswitch_sip::tls`
fn tls_server() -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
    let names = ["localhost", "127.0.0.1"].map(String::from).to_vec();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("a server configuration");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_reaches_a_peer_whose_certificate_names_the_uri_host_and_no_other() {
    let (acceptor, cert) = tls_server();
    let trust = TlsTrust::empty().add_der(cert).expect("an anchor");
    let (ep, _events) = endpoint(EndpointConfig {
        tls_trust: trust,
        ..EndpointConfig::default()
    })
    .await;
    let provider = TcpListener::bind(loopback()).await.expect("bind");
    let remote = provider.local_addr().expect("bound");
    let flow = Flow {
        transport: FlowTransport::Tls,
        remote,
        connection: None,
    };

    // The certificate names localhost, the URI's host: the request goes through.
    let uri = format!("sip:localhost:{};transport=tls", remote.port());
    let mut tx = ep
        .request(request("REGISTER", &uri, "TLS", "tls1"), flow)
        .await
        .expect("sent");
    let (tcp, _) = tokio::time::timeout(WAIT, provider.accept())
        .await
        .expect("connected in time")
        .expect("accepted");
    let mut conn = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("a handshake in time")
        .expect("the handshake succeeds");
    let sni = conn.get_ref().1.server_name().map(str::to_owned);
    assert_eq!(
        sni.as_deref(),
        Some("localhost"),
        "the URI's host is sent as SNI"
    );
    let mut framer = StreamFramer::new(Role::Accepted, 65_535);
    let register = next_message(&mut conn, &mut framer).await;
    assert!(
        register.starts_with(&format!("REGISTER {uri} ")),
        "{register}"
    );
    send(&mut conn, &answer(&register, "200 OK")).await;
    let ok = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("in time")
        .expect("a final response");
    assert_eq!(ok.status, 200);

    // A URI naming another host: the same certificate does not prove it, so the handshake
    // fails and nothing is sent. (A new port, so the open connection is not reused.)
    let other = TcpListener::bind(loopback()).await.expect("bind");
    let other_addr = other.local_addr().expect("bound");
    let acceptor2 = acceptor.clone();
    let served = tokio::spawn(async move {
        let (tcp, _) = other.accept().await.expect("accepted");
        acceptor2.accept(tcp).await.is_ok()
    });
    let mut tx = ep
        .request(
            request(
                "REGISTER",
                &format!(
                    "sip:carrier.example.net:{};transport=tls",
                    other_addr.port()
                ),
                "TLS",
                "tls2",
            ),
            Flow {
                transport: FlowTransport::Tls,
                remote: other_addr,
                connection: None,
            },
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    let handshake_ok = tokio::time::timeout(WAIT, served)
        .await
        .expect("the server side ended")
        .expect("joined");
    assert!(!handshake_ok, "the endpoint refused the certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_phone_goes_over_the_connection_it_registered_on() {
    let (ep, mut events) = endpoint(EndpointConfig {
        tcp: vec![loopback()],
        ..EndpointConfig::default()
    })
    .await;
    let listen = ep.local_addr(FlowTransport::Tcp).expect("a TCP listener");
    // The phone connects and registers; it listens nowhere (it is behind NAT).
    let mut phone = TcpStream::connect(listen).await.expect("connect");
    let phone_addr = phone.local_addr().expect("bound");
    let register = request(
        "REGISTER",
        &format!("sip:{listen};transport=tcp"),
        "TCP",
        "reg",
    );
    send(
        &mut phone,
        &String::from_utf8_lossy(&register.encode_to_vec()),
    )
    .await;
    let (tx, flow) = match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::Request { tx, flow, .. })) => (tx, flow),
        other => panic!("{other:?}"),
    };
    assert_eq!(flow.transport, FlowTransport::Tcp);
    assert_eq!(flow.remote, phone_addr);
    assert!(flow.connection.is_some());
    let mut framer = StreamFramer::new(Role::Opened, 65_535);
    let reply = match Message::parse(register.encode_to_vec().as_slice()) {
        Ok(Message::Request(r)) => r.reply(200, "OK", Some("t1")),
        other => panic!("{other:?}"),
    };
    ep.respond(tx, reply).await.expect("answered");
    let ok = next_message(&mut phone, &mut framer).await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");

    // A request to the phone on the registration's flow arrives on the phone's connection;
    // so does one that names only the phone's address (the newest connection from it).
    for (branch, connection) in [("call1", flow.connection), ("call2", None)] {
        let uri = format!("sip:alice@{phone_addr};transport=tcp");
        let mut tx = ep
            .request(
                request("OPTIONS", &uri, "TCP", branch),
                Flow { connection, ..flow },
            )
            .await
            .expect("sent");
        let options = next_message(&mut phone, &mut framer).await;
        assert!(
            options.contains(&format!("branch=z9hG4bK{branch}")),
            "{options}"
        );
        send(&mut phone, &answer(&options, "200 OK")).await;
        let ok = tokio::time::timeout(WAIT, tx.final_response())
            .await
            .expect("in time")
            .expect("a final response");
        assert_eq!(ok.status, 200);
    }

    // Once the phone has gone, a request to it is not sent anywhere else: connecting to its
    // old address fails and the transaction ends at once.
    drop(phone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tx = ep
        .request(
            request(
                "OPTIONS",
                &format!("sip:alice@{phone_addr};transport=tcp"),
                "TCP",
                "call3",
            ),
            flow,
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
}

/// A TCP connection to `target` from `source` (an address of 127.0.0.0/8).
async fn connect_from(source: [u8; 4], target: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind the source");
    socket.connect(target).await.expect("connect")
}

/// Sends OPTIONS on `conn` and expects the 200.
async fn options_answered(conn: &mut TcpStream, target: SocketAddr, branch: &str) {
    let options = request(
        "OPTIONS",
        &format!("sip:{target};transport=tcp"),
        "TCP",
        branch,
    );
    send(conn, &String::from_utf8_lossy(&options.encode_to_vec())).await;
    let mut framer = StreamFramer::new(Role::Opened, 65_535);
    let ok = next_message(conn, &mut framer).await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_no_more_connections_than_its_share() {
    let (ep, _events) = endpoint(EndpointConfig {
        tcp: vec![loopback()],
        max_connections_per_address: 2,
        ..EndpointConfig::default()
    })
    .await;
    let target = ep.local_addr(FlowTransport::Tcp).expect("a TCP listener");
    let mut a1 = connect_from([127, 0, 0, 1], target).await;
    let mut a2 = connect_from([127, 0, 0, 1], target).await;
    options_answered(&mut a1, target, "a1").await;
    options_answered(&mut a2, target, "a2").await;
    // The third from the same address is closed at once, unanswered.
    let mut a3 = connect_from([127, 0, 0, 1], target).await;
    let options = request(
        "OPTIONS",
        &format!("sip:{target};transport=tcp"),
        "TCP",
        "a3",
    );
    let _ = a3.write_all(&options.encode_to_vec()).await;
    assert!(
        closed(&mut a3, WAIT).await,
        "the third connection was closed"
    );
    // Another address is served meanwhile.
    let mut b1 = connect_from([127, 0, 0, 2], target).await;
    options_answered(&mut b1, target, "b1").await;
    // A connection that ends gives its place back.
    drop(a1);
    let mut a4 = None;
    for attempt in 0..50 {
        let mut conn = connect_from([127, 0, 0, 1], target).await;
        let branch = format!("a4x{attempt}");
        let options = request(
            "OPTIONS",
            &format!("sip:{target};transport=tcp"),
            "TCP",
            &branch,
        );
        let _ = conn.write_all(&options.encode_to_vec()).await;
        let mut buf = [0u8; 2048];
        match tokio::time::timeout(WAIT, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(buf.starts_with(b"SIP/2.0 200 OK"));
                a4 = Some(conn);
                break;
            }
            // Closed: the old connection's slot is not free yet.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(
        a4.is_some(),
        "a new connection was served once one had closed"
    );
    options_answered(&mut a2, target, "a2again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_ids_do_not_repeat_across_restarts() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (ep, mut events) = endpoint(EndpointConfig {
            tcp: vec![loopback()],
            ..EndpointConfig::default()
        })
        .await;
        let listen = ep.local_addr(FlowTransport::Tcp).expect("a TCP listener");
        let mut phone = TcpStream::connect(listen).await.expect("connect");
        let register = request(
            "REGISTER",
            &format!("sip:{listen};transport=tcp"),
            "TCP",
            "ids",
        );
        send(
            &mut phone,
            &String::from_utf8_lossy(&register.encode_to_vec()),
        )
        .await;
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Event::Request { flow, .. })) => {
                seen.push(flow.connection.expect("a connection id"))
            }
            other => panic!("{other:?}"),
        }
        ep.shutdown().await;
    }
    assert!(seen[1] > seen[0], "{seen:?}");
}

/// Reads raw bytes until `want` has arrived (keep-alives are not messages, so no framer).
async fn read_exactly<S: AsyncRead + Unpin>(conn: &mut S, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(WAIT, conn.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got, want);
}

/// An endpoint pinging every 100 ms, wanting pongs within 200 ms, and a provider it has
/// opened a connection to (one REGISTER answered on it).
async fn kept_alive() -> (Endpoint, Receiver<Event>, TcpListener, TcpStream, Flow) {
    let (ep, events) = endpoint(EndpointConfig {
        keepalive: Some(Keepalive {
            every: Duration::from_millis(100),
            pong_timeout: Duration::from_millis(200),
        }),
        ..EndpointConfig::default()
    })
    .await;
    let provider = TcpListener::bind(loopback()).await.expect("bind");
    let remote = provider.local_addr().expect("bound");
    let flow = Flow {
        transport: FlowTransport::Tcp,
        remote,
        connection: None,
    };
    let uri = format!("sip:{remote};transport=tcp");
    let mut tx = ep
        .request(request("REGISTER", &uri, "TCP", "ka1"), flow)
        .await
        .expect("sent");
    let (mut conn, _) = provider.accept().await.expect("accepted");
    let register = next_message(&mut conn, &mut StreamFramer::new(Role::Accepted, 65_535)).await;
    send(&mut conn, &answer(&register, "200 OK")).await;
    let ok = tx.final_response().await.expect("a final response");
    assert_eq!(ok.status, 200);
    (ep, events, provider, conn, flow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_it_opened_is_pinged_and_closed_when_its_pongs_stop() {
    let (ep, _events, provider, mut conn, flow) = kept_alive().await;
    // Pings come; the provider answers the first two.
    for _ in 0..2 {
        read_exactly(&mut conn, b"\r\n\r\n").await;
        send(&mut conn, "\r\n").await;
    }
    // It stops answering: having answered before, the silence means the flow is dead.
    read_exactly(&mut conn, b"\r\n\r\n").await;
    assert!(
        closed(&mut conn, Duration::from_secs(2)).await,
        "closed for want of a pong"
    );
    // The next request opens a new connection.
    let uri = format!("sip:{};transport=tcp", flow.remote);
    let _tx = ep
        .request(request("OPTIONS", &uri, "TCP", "ka2"), flow)
        .await
        .expect("sent");
    let (mut again, _) = tokio::time::timeout(WAIT, provider.accept())
        .await
        .expect("a new connection in time")
        .expect("accepted");
    let options = next_message(&mut again, &mut StreamFramer::new(Role::Accepted, 65_535)).await;
    assert!(options.contains("branch=z9hG4bKka2"), "{options}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_pings_keeps_its_connection() {
    let (ep, _events, provider, mut conn, flow) = kept_alive().await;
    // Five pings, none answered (the peer does not do RFC 5626): the connection stays.
    for _ in 0..5 {
        read_exactly(&mut conn, b"\r\n\r\n").await;
    }
    let uri = format!("sip:{};transport=tcp", flow.remote);
    let _tx = ep
        .request(request("OPTIONS", &uri, "TCP", "ka3"), flow)
        .await
        .expect("sent");
    // The request comes on the same connection (pings may come before it).
    let options = next_message(&mut conn, &mut StreamFramer::new(Role::Accepted, 65_535)).await;
    assert!(options.contains("branch=z9hG4bKka3"), "{options}");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), provider.accept())
            .await
            .is_err(),
        "no new connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_carries_requests_only_for_the_name_its_certificate_proved() {
    let (acceptor, cert) = tls_server();
    let trust = TlsTrust::empty().add_der(cert).expect("an anchor");
    let (ep, _events) = endpoint(EndpointConfig {
        tls_trust: trust,
        ..EndpointConfig::default()
    })
    .await;
    let provider = TcpListener::bind(loopback()).await.expect("bind");
    let remote = provider.local_addr().expect("bound");
    let flow = Flow {
        transport: FlowTransport::Tls,
        remote,
        connection: None,
    };
    let uri = format!("sip:localhost:{};transport=tls", remote.port());
    let mut registering = ep
        .request(request("REGISTER", &uri, "TLS", "name1"), flow)
        .await
        .expect("sent");
    let (tcp, _) = tokio::time::timeout(WAIT, provider.accept())
        .await
        .expect("connected in time")
        .expect("accepted");
    let mut conn = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("a handshake in time")
        .expect("the handshake succeeds");
    let mut framer = StreamFramer::new(Role::Accepted, 65_535);
    // Not answered yet: the REGISTER's transaction waits while the next request fails.
    let register = next_message(&mut conn, &mut framer).await;

    // Another domain served at the same address (one SBC, many customers): the connection
    // proved `localhost`, not this name, so a connection of its own is opened, and fails,
    // the certificate not naming it. Nothing goes over the first connection, and the
    // transaction waiting on it is not ended with the failed one.
    let served = tokio::spawn(async move {
        let (tcp, _) = provider.accept().await.expect("accepted");
        acceptor.accept(tcp).await.is_ok()
    });
    let mut tx = ep
        .request(
            request(
                "OPTIONS",
                &format!("sip:carrier.example.net:{};transport=tls", remote.port()),
                "TLS",
                "name2",
            ),
            flow,
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    let handshake_ok = tokio::time::timeout(WAIT, served)
        .await
        .expect("a second connection was opened")
        .expect("joined");
    assert!(!handshake_ok, "the endpoint refused the certificate");
    send(&mut conn, &answer(&register, "200 OK")).await;
    let ok = tokio::time::timeout(WAIT, registering.final_response())
        .await
        .expect("in time")
        .expect("a final response, the transaction still open");
    assert_eq!(ok.status, 200);
    let mut buf = [0u8; 1024];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf))
            .await
            .is_err(),
        "nothing came over the connection that proved another name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_a_peer_opened_carries_requests_only_on_its_flow() {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let identity = TlsIdentity::from_der(vec![cert.clone()], key).expect("an identity");
    let (ep, mut events) = endpoint(EndpointConfig {
        tls: vec![loopback()],
        tls_identity: Some(identity),
        ..EndpointConfig::default()
    })
    .await;
    let listen = ep.local_addr(FlowTransport::Tls).expect("a TLS listener");
    // A client (showing no certificate) connects and registers.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("an anchor");
    #[allow(deprecated)] // rustls' ring provider: see `wasmswitch_sip::tls`
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(listen).await.expect("connect");
    let client_addr = tcp.local_addr().expect("bound");
    let mut phone = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("a name"),
            tcp,
        )
        .await
        .expect("the handshake succeeds");
    let register = request(
        "REGISTER",
        &format!("sip:localhost:{};transport=tls", listen.port()),
        "TLS",
        "treg",
    );
    send(
        &mut phone,
        &String::from_utf8_lossy(&register.encode_to_vec()),
    )
    .await;
    let (tx, flow) = match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(Event::Request { tx, flow, .. })) => (tx, flow),
        other => panic!("{other:?}"),
    };
    assert_eq!(flow.remote, client_addr);
    let reply = match Message::parse(register.encode_to_vec().as_slice()) {
        Ok(Message::Request(r)) => r.reply(200, "OK", Some("t1")),
        other => panic!("{other:?}"),
    };
    ep.respond(tx, reply).await.expect("answered");
    let mut framer = StreamFramer::new(Role::Opened, 65_535);
    let ok = next_message(&mut phone, &mut framer).await;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");

    // On the registration's flow, a request goes over the phone's connection.
    let uri = format!("sip:alice@{client_addr};transport=tls");
    let mut tx = ep
        .request(request("OPTIONS", &uri, "TLS", "tflow"), flow)
        .await
        .expect("sent");
    let options = next_message(&mut phone, &mut framer).await;
    assert!(options.contains("branch=z9hG4bKtflow"), "{options}");
    send(&mut phone, &answer(&options, "200 OK")).await;
    let ok = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("in time")
        .expect("a final response");
    assert_eq!(ok.status, 200);

    // Naming only the address, a request is for a server to be proven: the peer showed no
    // certificate, so its connection is not taken; connecting to its address fails.
    let mut tx = ep
        .request(
            request("OPTIONS", &uri, "TLS", "taddr"),
            Flow {
                connection: None,
                ..flow
            },
        )
        .await
        .expect("sent");
    let result = tokio::time::timeout(WAIT, tx.final_response())
        .await
        .expect("ended in time");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_to_one_address_count_against_its_share() {
    let (ep, _events) = endpoint(EndpointConfig {
        max_connections_per_address: 1,
        ..EndpointConfig::default()
    })
    .await;
    // Two ports at one address (a phone that registered from many): one connection to it is
    // opened, the second is over the address's share and not attempted.
    let first = TcpListener::bind(loopback()).await.expect("bind");
    let second = TcpListener::bind(loopback()).await.expect("bind");
    let mut held = Vec::new();
    for (listener, branch) in [(&first, "cap1"), (&second, "cap2")] {
        let remote = listener.local_addr().expect("bound");
        let tx = ep
            .request(
                request(
                    "OPTIONS",
                    &format!("sip:{remote};transport=tcp"),
                    "TCP",
                    branch,
                ),
                Flow {
                    transport: FlowTransport::Tcp,
                    remote,
                    connection: None,
                },
            )
            .await
            .expect("sent");
        held.push(tx);
    }
    let (mut conn, _) = tokio::time::timeout(WAIT, first.accept())
        .await
        .expect("the first is opened")
        .expect("accepted");
    let mut framer = StreamFramer::new(Role::Accepted, 65_535);
    let options = next_message(&mut conn, &mut framer).await;
    assert!(options.contains("branch=z9hG4bKcap1"), "{options}");
    let result = tokio::time::timeout(WAIT, held[1].final_response())
        .await
        .expect("ended at once");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), second.accept())
            .await
            .is_err(),
        "no connection was opened over the share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_what_may_wait_for_a_connection_ends_at_once() {
    let (ep, _events) = endpoint(EndpointConfig {
        connect_timeout: Duration::from_secs(30),
        ..EndpointConfig::default()
    })
    .await;
    // Accepts and never answers the handshake: everything waits for the connection.
    let silent = TcpListener::bind(loopback()).await.expect("bind");
    let remote = silent.local_addr().expect("bound");
    let held = tokio::spawn(async move {
        let (conn, _) = silent.accept().await.expect("accepted");
        tokio::time::sleep(WAIT * 2).await;
        drop(conn);
    });
    let flow = Flow {
        transport: FlowTransport::Tls,
        remote,
        connection: None,
    };
    let uri = format!("sip:localhost:{};transport=tls", remote.port());
    // The first opens the connection; 64 wait with it.
    let mut waiting = Vec::new();
    for n in 0..64 {
        let tx = ep
            .request(request("OPTIONS", &uri, "TLS", &format!("q{n}")), flow)
            .await
            .expect("sent");
        waiting.push(tx);
    }
    let mut over = ep
        .request(request("OPTIONS", &uri, "TLS", "qover"), flow)
        .await
        .expect("sent");
    let result = tokio::time::timeout(Duration::from_secs(2), over.final_response())
        .await
        .expect("ended at once, not at Timer F");
    assert_eq!(result.err(), Some(NoFinal::Unreachable));
    // Those that wait are still waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting[63].final_response())
            .await
            .is_err()
    );
    held.abort();
}
