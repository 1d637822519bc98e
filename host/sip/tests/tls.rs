//! SIP over TLS against the endpoint: a rustls client trusting a certificate made for the
//! run, and `openssl s_client` (Debian package `openssl`) as a peer we did not write. A
//! missing openssl fails the interop test: it must not pass by not running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio_rustls::client::TlsStream;
use wasmswitch_sip::endpoint::{Endpoint, EndpointConfig};
use wasmswitch_sip::framing::{Frame, Role, StreamFramer};
use wasmswitch_sip::tls::{TlsError, TlsIdentity};
use wasmswitch_sip::transaction::{Event, FlowTransport};

const WAIT: Duration = Duration::from_secs(5);

/// A self-signed certificate for `localhost`, 127.0.0.1 and ::1, written as PEM files.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

fn make_cert(dir: &Path, name: &str) -> Cert {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).expect("written");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("written");
    Cert {
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

fn identity(cert: &Cert) -> TlsIdentity {
    TlsIdentity::from_pem_files(&cert.cert, &cert.key).expect("the identity loads")
}

async fn endpoint_on(addr: SocketAddr, cert: &Cert) -> (Endpoint, Receiver<Event>) {
    Endpoint::start(EndpointConfig {
        tls: vec![addr],
        tls_identity: Some(identity(cert)),
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts")
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A client configuration trusting exactly `trusted`.
#[allow(deprecated)] // rustls' ring provider: see `wasmswitch_sip::tls`
fn client_config(trusted: &[&Cert]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.der.clone()).expect("a usable trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn connect(target: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(target).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a name");
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .expect("a handshake in time")
    .expect("the handshake succeeds")
}

/// The certificate the server showed on this connection.
fn peer_cert(conn: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    conn.get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}

/// A request from `local` with a Via naming a host rather than the source address, so the
/// endpoint must stamp `received` and, asked by `rport`, the source port.
fn request(method: &str, call_id: &str, local: SocketAddr, target: SocketAddr) -> String {
    format!(
        "{method} sips:{target} SIP/2.0\r\n\
Via: SIP/2.0/TLS phone.invalid:5061;branch=z9hG4bK{call_id};rport\r\n\
From: <sips:alice@{local}>;tag=a1\r\nTo: <sips:alice@{target}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 {method}\r\nContact: <sips:alice@{local}>\r\nMax-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// Reads until the framer has a frame (a response, or a pong).
async fn next_frame<S: AsyncRead + Unpin>(conn: &mut S, framer: &mut StreamFramer) -> Frame {
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = framer.next_frame().expect("the responses frame") {
                return frame;
            }
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "the connection stayed open");
            framer.push(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an answer in time")
}

async fn next_message<S: AsyncRead + Unpin>(conn: &mut S, framer: &mut StreamFramer) -> String {
    match next_frame(conn, framer).await {
        Frame::Message(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn framer() -> StreamFramer {
    StreamFramer::new(Role::Opened, 65_535)
}

/// Sends an OPTIONS and expects its 200 on the same connection.
async fn options_ok<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut S,
    call_id: &str,
    local: SocketAddr,
    target: SocketAddr,
) -> String {
    let options = request("OPTIONS", call_id, local, target);
    conn.write_all(options.as_bytes()).await.expect("write");
    conn.flush().await.expect("flush");
    let answer = next_message(conn, &mut framer()).await;
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains(&format!("Call-ID: {call_id}")), "{answer}");
    answer
}

/// The endpoint closes the connection (close_notify, FIN or reset) within `within`.
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
async fn options_and_register_over_tls() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, mut events) = endpoint_on(loopback(), &cert).await;
    let target = ep.local_addr(FlowTransport::Tls).expect("TLS is bound");
    assert_eq!(
        ep.local_addr(FlowTransport::Tcp),
        None,
        "only TLS was asked"
    );
    let mut conn = connect(target, &client_config(&[&cert])).await;
    let local = conn.get_ref().0.local_addr().expect("local address");

    // OPTIONS is answered by the endpoint itself, with the source stamped into the Via.
    let answer = options_ok(&mut conn, "tls-options", local, target).await;
    let via = format!(
        "Via: SIP/2.0/TLS phone.invalid:5061;branch=z9hG4bKtls-options;received=127.0.0.1;rport={}",
        local.port()
    );
    assert!(answer.contains(&via), "{answer}");

    // Anything else goes to the transaction user, marked as having come over TLS, and its
    // answer comes back on the same connection.
    let register = request("REGISTER", "tls-register", local, target);
    conn.write_all(register.as_bytes()).await.expect("write");
    conn.flush().await.expect("flush");
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("the endpoint runs");
    let Event::Request { tx, request, flow } = event else {
        panic!("expected a request, got {event:?}");
    };
    assert_eq!(flow.transport, FlowTransport::Tls);
    assert_eq!(flow.remote, local);
    assert!(flow.connection.is_some());
    let tag = request.stateless_tag();
    ep.respond(tx, request.reply(200, "OK", Some(&tag)))
        .await
        .expect("answered");
    let answer = next_message(&mut conn, &mut framer()).await;
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    assert!(answer.contains("CSeq: 1 REGISTER"), "{answer}");
    assert!(
        answer.contains(&format!("rport={}", local.port())),
        "{answer}"
    );

    // Stopping the endpoint closes the connection.
    ep.shutdown().await;
    assert!(closed(&mut conn, WAIT).await, "closed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_framed_across_and_within_tls_writes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, _events) = endpoint_on(loopback(), &cert).await;
    let target = ep.local_addr(FlowTransport::Tls).expect("bound");
    let mut conn = connect(target, &client_config(&[&cert])).await;
    let local = conn.get_ref().0.local_addr().expect("local address");
    let mut framer = framer();

    // A keep-alive ping is answered with a pong (RFC 5626).
    conn.write_all(b"\r\n\r\n").await.expect("write");
    conn.flush().await.expect("flush");
    assert_eq!(next_frame(&mut conn, &mut framer).await, Frame::Pong);

    // Two requests in one write (one TLS record): two answers, in order.
    let two = [
        request("OPTIONS", "two-1", local, target),
        request("OPTIONS", "two-2", local, target),
    ]
    .concat();
    conn.write_all(two.as_bytes()).await.expect("write");
    conn.flush().await.expect("flush");
    for call_id in ["two-1", "two-2"] {
        let answer = next_message(&mut conn, &mut framer).await;
        assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains(&format!("Call-ID: {call_id}\r\n")),
            "{answer}"
        );
    }

    // One request in three records, cut inside the start line and inside a header.
    let split = request("OPTIONS", "split-1", local, target);
    let bytes = split.as_bytes();
    for part in [&bytes[..5], &bytes[5..60], &bytes[60..]] {
        conn.write_all(part).await.expect("write");
        conn.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let answer = next_message(&mut conn, &mut framer).await;
    assert!(answer.contains("Call-ID: split-1\r\n"), "{answer}");
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_speak_tls_is_dropped_and_others_are_served() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, _events) = Endpoint::start(EndpointConfig {
        tls: vec![loopback()],
        tls_identity: Some(identity(&cert)),
        tls_handshake_timeout: Duration::from_millis(500),
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts");
    let target = ep.local_addr(FlowTransport::Tls).expect("bound");
    let config = client_config(&[&cert]);

    // A good client connects first, and stays connected throughout.
    let mut good = connect(target, &config).await;
    let good_local = good.get_ref().0.local_addr().expect("local address");

    // Plain SIP on the TLS port is not a ClientHello: the handshake fails and the
    // connection is closed.
    let mut plain = TcpStream::connect(target).await.expect("connect");
    let plain_local = plain.local_addr().expect("local address");
    plain
        .write_all(request("OPTIONS", "plain", plain_local, target).as_bytes())
        .await
        .expect("write");
    assert!(closed(&mut plain, WAIT).await, "plain SIP was dropped");

    // A peer that connects and says nothing is dropped when the handshake times out.
    let mut silent = TcpStream::connect(target).await.expect("connect");
    assert!(
        closed(&mut silent, Duration::from_secs(3)).await,
        "a silent peer was dropped"
    );

    // Neither disturbed the good client, nor a new one.
    options_ok(&mut good, "still-good", good_local, target).await;
    let mut fresh = connect(target, &config).await;
    let fresh_local = fresh.get_ref().0.local_addr().expect("local address");
    options_ok(&mut fresh, "fresh", fresh_local, target).await;
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_connections_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let one = make_cert(dir.path(), "one");
    let two = make_cert(dir.path(), "two");
    let (ep, _events) = endpoint_on(loopback(), &one).await;
    let target = ep.local_addr(FlowTransport::Tls).expect("bound");
    let config = client_config(&[&one, &two]);

    let mut before = connect(target, &config).await;
    let before_local = before.get_ref().0.local_addr().expect("local address");
    assert_eq!(peer_cert(&before), one.der);

    ep.reload_tls(identity(&two)).expect("reloaded");
    let mut after = connect(target, &config).await;
    let after_local = after.get_ref().0.local_addr().expect("local address");
    assert_eq!(
        peer_cert(&after),
        two.der,
        "a new connection gets the new certificate"
    );
    options_ok(&mut after, "after", after_local, target).await;
    options_ok(&mut before, "before", before_local, target).await;

    // A certificate with the other's key is refused, and the one in use stays.
    let refused = ep.reload_tls_from_pem_files(&one.cert, &two.key);
    assert!(matches!(refused, Err(TlsError::KeyMismatch)), "{refused:?}");
    let missing = ep.reload_tls_from_pem_files(dir.path().join("gone.crt"), &one.key);
    assert!(matches!(missing, Err(TlsError::Read { .. })), "{missing:?}");
    let later = connect(target, &config).await;
    assert_eq!(
        peer_cert(&later),
        two.der,
        "the last good certificate stays"
    );

    // Back to the first from its files, as an operator's reload does.
    ep.reload_tls_from_pem_files(&one.cert, &one.key)
        .expect("reloaded");
    let last = connect(target, &config).await;
    assert_eq!(peer_cert(&last), one.der);
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_an_identity_does_not_start_and_reload_needs_a_listener() {
    let started = Endpoint::start(EndpointConfig {
        tls: vec![loopback()],
        ..EndpointConfig::default()
    })
    .await;
    let error = started.expect_err("refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(matches!(
        error.get_ref().and_then(|e| e.downcast_ref::<TlsError>()),
        Some(TlsError::NoIdentity)
    ));

    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, _events) = Endpoint::start(EndpointConfig {
        udp: vec![loopback()],
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts");
    assert!(matches!(
        ep.reload_tls(identity(&cert)),
        Err(TlsError::NotListening)
    ));
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_over_tls_on_ipv6() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, _events) = endpoint_on("[::1]:0".parse().expect("an address"), &cert).await;
    let target = ep.local_addr(FlowTransport::Tls).expect("bound");
    assert!(target.is_ipv6());
    let mut conn = connect(target, &client_config(&[&cert])).await;
    let local = conn.get_ref().0.local_addr().expect("local address");
    let answer = options_ok(&mut conn, "tls-v6", local, target).await;
    assert!(
        answer.contains(&format!("received=[::1];rport={}", local.port())),
        "{answer}"
    );
    ep.shutdown().await;
}

/// `openssl s_client`, verifying our certificate against the one made for the run, sends an
/// OPTIONS and gets the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_gets_200_to_options() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cert = make_cert(dir.path(), "one");
    let (ep, _events) = endpoint_on(loopback(), &cert).await;
    let target = ep.local_addr(FlowTransport::Tls).expect("bound");
    let mut child = tokio::process::Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &target.to_string()])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-CAfile", &cert.cert.to_string_lossy()])
        .args(["-verify_return_error", "-quiet", "-nocommands"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("openssl could not run ({e}): install the Debian package openssl")
        });
    // The Via and Contact name an address openssl chose; the endpoint answers on the
    // connection whatever they say.
    let local = SocketAddr::from(([127, 0, 0, 1], 5061));
    let options = request("OPTIONS", "openssl-1", local, target);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(options.as_bytes()).await.expect("write");
    // -quiet implies -ign_eof: closing stdin does not end the session before the answer.
    drop(stdin);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let in_time = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .is_ok();
    let _ = child.kill().await;
    let mut errors = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut errors).await;
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        in_time && text.starts_with("SIP/2.0 200 OK\r\n"),
        "openssl's output: {text:?}\nits errors: {errors}"
    );
    assert!(text.contains("Call-ID: openssl-1\r\n"), "{text}");
    ep.shutdown().await;
}
