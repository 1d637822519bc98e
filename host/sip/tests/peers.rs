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
    run(Run {
        scenario,
        transport,
        local: target.ip(),
        target,
        calls,
        rate: 50,
        timeout_s: 20,
        extra: &[],
    })
}

/// One sipp run: a scenario from `tests/sipp/`, from `local` to `target`, `calls` calls at
/// `rate` a second, giving up after `timeout_s` seconds, with `extra` arguments.
struct Run<'a> {
    scenario: &'a str,
    transport: &'a str,
    local: std::net::IpAddr,
    target: SocketAddr,
    calls: u32,
    rate: u32,
    timeout_s: u32,
    extra: &'a [&'a str],
}

/// Runs sipp; true when every call of the scenario succeeded (sipp exits 0).
fn run(r: Run<'_>) -> bool {
    let Run {
        scenario,
        transport,
        local,
        target,
        calls,
        rate,
        timeout_s,
        extra,
    } = r;
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let out = Command::new("sipp")
        .args(["-sf", &scenario.to_string_lossy()])
        .args(["-t", transport, "-i", &local.to_string()])
        .args(["-p", &free_port(local).to_string()])
        .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
        .args(["-timeout", &format!("{timeout_s}s"), "-timeout_error"])
        .args(extra)
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
        run(Run {
            scenario: "options.xml",
            transport: "u1",
            local: flooder,
            target,
            calls: 600,
            rate: 1000,
            timeout_s: 4,
            extra: &[],
        })
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = tokio::task::spawn_blocking(move || {
        run(Run {
            scenario: "options.xml",
            transport: "u1",
            local: phone,
            target,
            calls: 20,
            rate: 10,
            timeout_s: 10,
            extra: &[],
        })
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

/// A registrar in miniature, composed as the host composes it: digest first (401 with
/// challenges, 403 for a wrong password), then the registrar's decision, bindings kept here.
async fn registrar(ep: Endpoint, mut events: Receiver<Event>, bindings: Bindings) {
    use wasmswitch_sip::digest::{Outcome, Verifier, VerifierConfig, ha1};
    use wasmswitch_sip::registrar::{self, RegistrarPolicy};
    let realm = "acme.example.com";
    // sipp answers only the first challenge and knows only MD5 ("createAuthHeader:
    // authentication must use MD5"); so do some older phones, which is why the algorithms
    // offered are a setting.
    let mut verifier = Verifier::new(
        [9; 32],
        VerifierConfig {
            algorithms: vec![wasmswitch_sip::digest::Algorithm::Md5],
            ..VerifierConfig::default()
        },
    );
    let mut nonces = 0u64;
    while let Some(event) = events.recv().await {
        let Event::Request { tx, request, flow } = event else {
            continue;
        };
        let now = std::time::SystemTime::now();
        let now_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let tag = request.stateless_tag();
        let outcome = verifier.verify_request(
            realm,
            now,
            &request,
            &wasmswitch_sip::HeaderName::Authorization,
            |user, alg| (user == "alice").then(|| ha1(alg, user, realm, "secret")),
        );
        let response = match outcome {
            Outcome::Ok { .. } => {
                let aor = request.to().uri.to_bytes();
                let mut map = bindings.lock().expect("not poisoned");
                let existing = map.get(&aor).cloned().unwrap_or_default();
                match registrar::register(
                    &request,
                    &existing,
                    flow,
                    now_ms,
                    &RegistrarPolicy::default(),
                ) {
                    Ok(update) => {
                        map.insert(aor, update.current.clone());
                        registrar::ok_response(&request, &update, now_ms, &tag)
                    }
                    Err(refusal) => refusal.response(&request, &tag),
                }
            }
            Outcome::BadResponse | Outcome::UnknownUser { .. } => {
                request.reply(403, "Forbidden", Some(&tag))
            }
            other => {
                nonces += 1;
                let mut random = [0u8; 16];
                random[..8].copy_from_slice(&nonces.to_le_bytes());
                let stale = matches!(other, Outcome::Stale | Outcome::Replay);
                let mut challenge = request.reply(401, "Unauthorized", Some(&tag));
                for value in verifier.challenges(realm, verifier.algorithms(), now, random, stale) {
                    challenge
                        .headers_mut()
                        .push(wasmswitch_sip::HeaderName::WwwAuthenticate, value);
                }
                challenge
            }
        };
        let _ = ep.respond(tx, response).await;
    }
}

type Bindings = std::sync::Arc<
    std::sync::Mutex<
        std::collections::HashMap<bytes::Bytes, Vec<wasmswitch_sip::registrar::Binding>>,
    >,
>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_registers_with_digest_and_unregisters_over_udp_and_tcp() {
    let (ep, events) = endpoint().await;
    let bindings = Bindings::default();
    tokio::spawn(registrar(ep.clone(), events, bindings.clone()));
    for (transport, sipp_transport) in [(FlowTransport::Udp, "u1"), (FlowTransport::Tcp, "t1")] {
        let target = ep.local_addr(transport).expect("bound");
        let ok = tokio::task::spawn_blocking(move || {
            run(Run {
                scenario: "register.xml",
                transport: sipp_transport,
                local: target.ip(),
                target,
                calls: 1,
                rate: 10,
                timeout_s: 10,
                // sipp's digest `uri` is the peer's address unless told; the verifier insists
                // it be the Request-URI, as RFC 7616 asks.
                extra: &[
                    "-s",
                    "alice",
                    "-au",
                    "alice",
                    "-ap",
                    "secret",
                    "-auth_uri",
                    "acme.example.com",
                    "-key",
                    "domain",
                    "acme.example.com",
                ],
            })
        })
        .await
        .expect("sipp ran");
        assert!(ok, "registered, then unregistered, over {transport:?}");
        // Expires: 0 took the binding away again.
        let map = bindings.lock().expect("not poisoned");
        assert!(map.values().all(Vec::is_empty), "{map:?}");
    }
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused() {
    let (ep, events) = endpoint().await;
    let bindings = Bindings::default();
    tokio::spawn(registrar(ep.clone(), events, bindings.clone()));
    let target = ep.local_addr(FlowTransport::Udp).expect("bound");
    let ok = tokio::task::spawn_blocking(move || {
        run(Run {
            scenario: "register-wrong.xml",
            transport: "u1",
            local: target.ip(),
            target,
            calls: 1,
            rate: 10,
            timeout_s: 10,
            extra: &[
                "-s",
                "alice",
                "-au",
                "alice",
                "-ap",
                "not-the-password",
                "-auth_uri",
                "acme.example.com",
                "-key",
                "domain",
                "acme.example.com",
            ],
        })
    })
    .await
    .expect("sipp ran");
    assert!(ok, "the second REGISTER got 403");
    assert!(bindings.lock().expect("not poisoned").is_empty());
    ep.shutdown().await;
}
