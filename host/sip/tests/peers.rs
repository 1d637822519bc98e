//! The endpoint against a real peer, sipp (Debian package `sip-tester`, installed by
//! `scripts/setup.sh`), over real sockets. A missing sipp fails these tests: they must not
//! pass by not running.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use wasmswitch_sip::endpoint::{Endpoint, EndpointConfig};
use wasmswitch_sip::limits::RateLimit;
use wasmswitch_sip::transaction::{Event, FlowTransport};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port that was free a moment ago, for sipp's own socket.
fn free_port(ip: std::net::IpAddr) -> u16 {
    UdpSocket::bind(SocketAddr::new(ip, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs sipp with a scenario from `tests/sipp/` against `target`; true when every call of
/// the scenario succeeded (sipp exits 0).
fn sipp(scenario: &str, transport: &str, target: SocketAddr, calls: u32) -> bool {
    sipp_from(scenario, transport, target.ip(), target, calls, 50, 20)
}

/// [`sipp`] from a chosen local address, at `rate` calls per second, giving up after
/// `timeout_s` seconds.
fn sipp_from(
    scenario: &str,
    transport: &str,
    local: std::net::IpAddr,
    target: SocketAddr,
    calls: u32,
    rate: u32,
    timeout_s: u32,
) -> bool {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let out = Command::new("sipp")
        .args(["-sf", &scenario.to_string_lossy()])
        .args(["-t", transport, "-i", &local.to_string()])
        .args(["-p", &free_port(local).to_string()])
        .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
        .args(["-timeout", &format!("{timeout_s}s"), "-timeout_error"])
        .arg("-nostdin")
        .arg(target.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("sipp could not run ({e}): install the Debian package sip-tester (scripts/setup.sh does)")
        });
    if !out.status.success() {
        eprintln!(
            "sipp failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

async fn endpoint() -> (Endpoint, Receiver<Event>) {
    endpoint_on(loopback()).await
}

async fn endpoint_on(addr: SocketAddr) -> (Endpoint, Receiver<Event>) {
    Endpoint::start(EndpointConfig {
        udp: vec![addr],
        tcp: vec![addr],
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_is_answered_over_udp() {
    let (ep, _events) = endpoint().await;
    let target = ep.local_addr(FlowTransport::Udp).expect("bound");
    let ok = tokio::task::spawn_blocking(move || sipp("options.xml", "u1", target, 20))
        .await
        .expect("sipp ran");
    assert!(ok, "every OPTIONS got its 200 over UDP");
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_is_answered_over_tcp() {
    let (ep, _events) = endpoint().await;
    let target = ep.local_addr(FlowTransport::Tcp).expect("bound");
    let ok = tokio::task::spawn_blocking(move || sipp("options.xml", "t1", target, 20))
        .await
        .expect("sipp ran");
    assert!(ok, "every OPTIONS got its 200 over TCP");
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_is_answered_over_ipv6() {
    let (ep, _events) = endpoint_on("[::1]:0".parse().expect("an address")).await;
    for (transport, sipp_transport) in [(FlowTransport::Udp, "u1"), (FlowTransport::Tcp, "t1")] {
        let target = ep.local_addr(transport).expect("bound");
        let ok =
            tokio::task::spawn_blocking(move || sipp("options.xml", sipp_transport, target, 5))
                .await
                .expect("sipp ran");
        assert!(ok, "every OPTIONS got its 200 over IPv6 {transport:?}");
    }
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_while_another_is_served() {
    let (ep, _events) = Endpoint::start(EndpointConfig {
        udp: vec![loopback()],
        rate_limit: Some(RateLimit {
            per_second: 20.0,
            burst: 20.0,
        }),
        ..EndpointConfig::default()
    })
    .await
    .expect("the endpoint starts");
    let target = ep.local_addr(FlowTransport::Udp).expect("bound");
    let flooder: std::net::IpAddr = "127.0.0.1".parse().expect("an address");
    let phone: std::net::IpAddr = "127.0.0.2".parse().expect("an address");
    // 600 probes at 1,000 a second from one address, and meanwhile 20 at 10 a second from
    // another. The flooder gets at most 20 + 20 per second answered; the phone gets all.
    let flood = tokio::task::spawn_blocking(move || {
        sipp_from("options.xml", "u1", flooder, target, 600, 1000, 4)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = tokio::task::spawn_blocking(move || {
        sipp_from("options.xml", "u1", phone, target, 20, 10, 10)
    });
    assert!(
        served.await.expect("sipp ran"),
        "the other address was served in full"
    );
    assert!(!flood.await.expect("sipp ran"), "the flood was limited");
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_keepalives_on_a_connection_do_not_stop_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ep, _events) = endpoint().await;
    let target = ep.local_addr(FlowTransport::Tcp).expect("bound");
    let mut conn = tokio::net::TcpStream::connect(target)
        .await
        .expect("connect");
    let local = conn.local_addr().expect("local address");
    let options = format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp1\r\n\
From: <sip:t@{local}>;tag=1\r\nTo: <sip:{target}>\r\nCall-ID: tcp-1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    // A ping, a line of noise, then the request.
    conn.write_all(b"\r\n\r\n").await.expect("write");
    conn.write_all(b"\x16\x03\x01 not sip\r\n")
        .await
        .expect("write");
    conn.write_all(options.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") || got.len() < 4 {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "the connection stayed open");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an answer in time");
    // Stopping the endpoint closes the connection.
    ep.shutdown().await;
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("\r\nSIP/2.0 200 OK\r\n"),
        "pong, then the answer: {text:?}"
    );
    ep.shutdown().await;
}
