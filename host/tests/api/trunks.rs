//! The switch registering with trunks, against sipp playing the provider's registrar: digest
//! with the trunk's credentials, refresh before the grant lapses, and a refusal shown in the
//! API's trunk resource with its reason.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::util::*;

/// sipp as a provider's registrar on a free port of 127.0.0.1, running `scenario` from
/// host/tests/sipp once.
struct Provider {
    child: Child,
    addr: SocketAddr,
}

impl Provider {
    /// Over UDP.
    fn start(scenario: &str, grant: u32) -> Provider {
        Provider::start_over(scenario, grant, "u1")
    }

    /// Over sipp's transport `transport`: `u1` (UDP) or `t1` (TCP, one connection).
    fn start_over(scenario: &str, grant: u32, transport: &str) -> Provider {
        let port = match transport {
            "t1" => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .unwrap()
                .port(),
            _ => std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .unwrap()
                .port(),
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(path)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                transport,
                "-m",
                "1",
            ])
            .args(["-key", "grant", &grant.to_string()])
            .args(["-timeout", "40s", "-timeout_error", "-nostdin"])
            // Its screen goes to a file: a pipe nobody reads would fill and stop it.
            .stdout(Stdio::from(tempfile::tempfile().unwrap()))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("sipp could not run ({e}): scripts/setup.sh installs it"));
        Provider {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Waits (up to `secs`) for sipp to end; true when its scenario succeeded.
    fn finished(mut self, secs: u64) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if !status.success() {
                    let out = self.child.wait_with_output().unwrap();
                    eprintln!("sipp: {status}\n{}", String::from_utf8_lossy(&out.stderr));
                }
                return status.success();
            }
            if std::time::Instant::now() > until {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Polls the trunk until `done` holds for its `registration` (up to `secs`); returns it.
async fn wait_for(
    app: &App,
    key: &str,
    id: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, t) = app.get(&format!("/v1/tenants/acme/trunks/{id}"), key).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        if done(&t["registration"]) {
            return t;
        }
        assert!(std::time::Instant::now() < until, "still {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both! {
    async fn a_registering_trunk_is_registered_and_refreshed(db) {
        let provider = Provider::start("trunk-registrar.xml", 4);
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let (s, t) = app.post("/v1/tenants/acme/trunks", &admin, json!({
                "name": "provider", "host": "127.0.0.1", "port": provider.addr.port(),
                "username": "acme-trunk", "password": "trunk-secret", "register": true,
            })).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            let id = t["id"].as_str().unwrap().to_string();
            let t = wait_for(&app, &admin, &id, 15, |r| r["state"] == "registered").await;
            let r = &t["registration"];
            assert_eq!(r["failures"], 0, "{t}");
            assert_eq!(r["last_error"], Value::Null, "{t}");
            let now = wasmswitch::store::now_ms();
            let until = r["registered_until"].as_i64().unwrap();
            assert!((now..=now + 4_000).contains(&until), "granted 4 s: {t}");
            let next = r["next_attempt"].as_i64().unwrap();
            assert!(next < until, "the refresh is due before the grant lapses: {t}");
            // The refresh (same Call-ID, credentials for the nonce, nc=2) is accepted.
            let t = wait_for(&app, &admin, &id, 10, |r| r["registered_until"].as_i64() > Some(until)).await;
            assert_eq!(t["registration"]["state"], "registered", "{t}");
            let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
            assert!(metrics.contains("sip_trunk_register_attempts_total{outcome=\"ok\"}"), "{metrics}");
            // Registration turned off: the switch unregisters (Expires: 0, which ends the
            // provider's scenario) and the state goes.
            let (s, _) = app.call(reqwest::Method::PUT, &format!("/v1/tenants/acme/trunks/{id}"), Some(&admin), Some(json!({
                "name": "provider", "host": "127.0.0.1", "port": provider.addr.port(), "register": false,
            }))).await;
            assert_eq!(s, StatusCode::OK);
            let ok = tokio::task::spawn_blocking(move || provider.finished(20)).await.unwrap();
            assert!(ok, "the provider saw the registration, refreshes and the unregister");
            let (_, t) = app.get(&format!("/v1/tenants/acme/trunks/{id}"), &admin).await;
            assert_eq!(t["registration"], Value::Null, "{t}");
            app
        })
        .await;
    }
}

both! {
    async fn a_refusing_trunk_shows_as_failing_with_the_reason(db) {
        let provider = Provider::start("trunk-refuses.xml", 60);
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let (_, t) = app.post("/v1/tenants/acme/trunks", &admin, json!({
                "name": "provider", "host": "127.0.0.1", "port": provider.addr.port(),
                "username": "acme-trunk", "password": "trunk-secret", "register": true,
            })).await;
            let id = t["id"].as_str().unwrap().to_string();
            let t = wait_for(&app, &admin, &id, 15, |r| r["state"] == "failing").await;
            let r = &t["registration"];
            assert_eq!(r["last_error"], "403 Forbidden", "{t}");
            assert_eq!(r["failures"], 1, "{t}");
            assert_eq!(r["registered_until"], Value::Null, "{t}");
            let wait = r["next_attempt"].as_i64().unwrap() - r["updated_at"].as_i64().unwrap();
            assert!((4_000..=6_000).contains(&wait), "the first back-off is 5 s, +-20%: {wait}");
            assert!(tokio::task::spawn_blocking(move || provider.finished(10)).await.unwrap());
            app
        })
        .await;
    }
}

both! {
    async fn a_trunk_behind_a_challenging_proxy_is_refreshed_with_proxy_authorization(db) {
        let provider = Provider::start("trunk-proxy.xml", 4);
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let (_, t) = app.post("/v1/tenants/acme/trunks", &admin, json!({
                "name": "provider", "host": "127.0.0.1", "port": provider.addr.port(),
                "username": "acme-trunk", "password": "trunk-secret", "register": true,
            })).await;
            let id = t["id"].as_str().unwrap().to_string();
            let t = wait_for(&app, &admin, &id, 15, |r| r["state"] == "registered").await;
            let first = t["registration"]["registered_until"].as_i64().unwrap();
            // Two refreshes later it is still registered, never failing: each answered the
            // held 407 challenge in Proxy-Authorization.
            let t = wait_for(&app, &admin, &id, 15, |r| r["registered_until"].as_i64() > Some(first + 1500)).await;
            assert_eq!(t["registration"]["state"], "registered", "{t}");
            assert_eq!(t["registration"]["failures"], 0, "{t}");
            app.call(reqwest::Method::DELETE, &format!("/v1/tenants/acme/trunks/{id}"), Some(&admin), None).await;
            let ok = tokio::task::spawn_blocking(move || provider.finished(20)).await.unwrap();
            assert!(ok, "the proxy saw Proxy-Authorization on the answer and every refresh, then the unregister");
            app
        })
        .await;
    }
}

both! {
    async fn a_trunk_over_tcp_is_registered_and_refreshed_over_one_connection(db) {
        // sipp in `t1` mode serves one connection: the challenge, the answer, the refresh
        // and the unregister all come over the connection the switch opened.
        let provider = Provider::start_over("trunk-registrar.xml", 4, "t1");
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let (s, t) = app.post("/v1/tenants/acme/trunks", &admin, json!({
                "name": "provider", "host": "127.0.0.1", "port": provider.addr.port(),
                "transport": "tcp",
                "username": "acme-trunk", "password": "trunk-secret", "register": true,
            })).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            let id = t["id"].as_str().unwrap().to_string();
            let t = wait_for(&app, &admin, &id, 15, |r| r["state"] == "registered").await;
            let until = t["registration"]["registered_until"].as_i64().unwrap();
            let t = wait_for(&app, &admin, &id, 10, |r| r["registered_until"].as_i64() > Some(until)).await;
            assert_eq!(t["registration"]["failures"], 0, "{t}");
            app.call(reqwest::Method::DELETE, &format!("/v1/tenants/acme/trunks/{id}"), Some(&admin), None).await;
            let ok = tokio::task::spawn_blocking(move || provider.finished(20)).await.unwrap();
            assert!(ok, "the provider saw the registration, the refresh and the unregister over TCP");
            app
        })
        .await;
    }
}

/// A provider's registrar over TLS, with a certificate for `localhost` that `ca` (PEM)
/// vouches for: answers every REGISTER on its connections 200 with `expires=60`, and sends
/// what it saw on `seen`.
async fn tls_registrar(
    dir: &std::path::Path,
) -> (
    SocketAddr,
    std::path::PathBuf,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wasmswitch_sip::framing::{Frame, Role, StreamFramer};

    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = dir.join("provider-ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    #[allow(deprecated)] // rustls' ring provider, as the switch uses (wasmswitch_sip::tls)
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                // A client that refuses our certificate ends the handshake: nothing to serve.
                let Ok(mut conn) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut framer = StreamFramer::new(Role::Accepted, 65_535);
                let mut buf = [0u8; 4096];
                loop {
                    while let Ok(Some(frame)) = framer.next_frame() {
                        let Frame::Message(bytes) = frame else {
                            continue;
                        };
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        let heads: String = text
                            .lines()
                            .filter(|l| {
                                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                                    .iter()
                                    .any(|h| l.starts_with(h))
                            })
                            .map(|l| format!("{l}\r\n"))
                            .collect();
                        let contact = text
                            .lines()
                            .find(|l| l.starts_with("Contact:"))
                            .unwrap_or("Contact: <sip:none@invalid>");
                        let ok = format!(
                            "SIP/2.0 200 OK\r\n{heads}{contact};expires=60\r\nContent-Length: 0\r\n\r\n"
                        );
                        let _ = seen_tx.send(text);
                        if conn.write_all(ok.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => framer.push(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, ca, seen)
}

both! {
    async fn a_trunk_over_tls_is_registered_when_its_certificate_is_trusted_and_names_the_host(db) {
        let dir = tempfile::tempdir().unwrap();
        let (addr, ca, mut seen) = tls_registrar(dir.path()).await;
        // The switch listens for TLS too (its Contact names it, for the provider's calls).
        let ours = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("switch.crt"), dir.path().join("switch.key"));
        std::fs::write(&cert, ours.cert.pem()).unwrap();
        std::fs::write(&key, ours.signing_key.serialize_pem()).unwrap();
        let mut untrusting = config(&db);
        untrusting.sip.tls_listen = "127.0.0.1:0".into();
        untrusting.sip.tls_cert_file = cert.display().to_string();
        untrusting.sip.tls_key_file = key.display().to_string();
        // Without the provider's CA (Mozilla's roots only), the certificate is refused.
        let trusting = {
            let mut c = untrusting.clone();
            c.sip.tls_ca_file = ca.display().to_string();
            c
        };
        let app = App::start(untrusting).await;
        let admin = app.tenant("acme").await;
        let trunk = json!({
            "name": "provider", "host": "localhost", "port": addr.port(), "transport": "tls",
            "username": "acme-trunk", "password": "trunk-secret", "register": true,
        });
        let (s, t) = app.post("/v1/tenants/acme/trunks", &admin, trunk.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().unwrap().to_string();
        let t = wait_for(&app, &admin, &id, 15, |r| r["state"] == "failing").await;
        let error = t["registration"]["last_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.starts_with("cannot connect to ") && error.ends_with(" over tls"), "{t}");
        assert!(seen.try_recv().is_err(), "nothing was sent to an untrusted provider");
        let operator = app.operator.clone();
        app.stop().await;

        // Trusting the provider's CA, the same trunk registers over TLS.
        let app = App::start_existing(trusting, operator).await;
        let t = wait_for(&app, &admin, &id, 20, |r| r["state"] == "registered").await;
        assert_eq!(t["registration"]["last_error"], Value::Null, "{t}");
        let register = seen.recv().await.unwrap();
        assert!(register.starts_with(&format!("REGISTER sip:localhost:{};transport=tls SIP/2.0\r\n", addr.port())), "{register}");
        assert!(register.contains("Via: SIP/2.0/TLS "), "{register}");
        let tls_port = app.service.sip_addrs.tls.unwrap().port();
        assert!(register.contains(&format!(":{tls_port};transport=tls>")), "the Contact names our TLS listener: {register}");
        app.stop().await;
    }
}
