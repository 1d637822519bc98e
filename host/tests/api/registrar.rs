//! Phones registering with the real host: REGISTER over UDP from a socket of the test's own,
//! digest against SIP users made through the API, bindings in the store, listed by the API.
//! (sipp registering through the real binary is in host/tests/service.rs.)

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use wasmswitch_sip::digest::DigestClient;
use wasmswitch_sip::{HeaderName, Message, Response};

use crate::both;
use crate::util::*;

/// A phone: one UDP socket, one Call-ID, CSeq counting up, as RFC 3261 section 10.2 asks of
/// a UA that refreshes its registration.
struct Phone {
    sock: UdpSocket,
    switch: SocketAddr,
    user: String,
    domain: String,
    /// `sip:<domain>` unless a test says otherwise.
    request_uri: String,
    call_id: String,
    cseq: u32,
    digest: DigestClient,
}

impl Phone {
    async fn new(switch: SocketAddr, user: &str, domain: &str, password: &str) -> Phone {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        Phone {
            sock,
            switch,
            user: user.into(),
            domain: domain.into(),
            request_uri: format!("sip:{domain}"),
            call_id: format!("{user}-{port}@test"),
            cseq: 0,
            digest: DigestClient::new(user, password),
        }
    }

    fn contact(&self) -> String {
        let port = self.sock.local_addr().unwrap().port();
        format!("sip:{}@127.0.0.1:{port};transport=udp", self.user)
    }

    /// Sends one REGISTER and returns the final response.
    async fn send(&mut self, expires: u32, authorization: Option<&str>) -> Response {
        self.send_only(expires, authorization).await;
        final_response(&self.sock).await
    }

    /// Sends one REGISTER (a new transaction, the next CSeq) without waiting for an answer.
    async fn send_only(&mut self, expires: u32, authorization: Option<&str>) {
        self.cseq += 1;
        let local = self.sock.local_addr().unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{port}-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=phone{cseq}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {call}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>\r\n\
             Expires: {expires}\r\n\
             User-Agent: test-phone/1.0\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            request_uri = self.request_uri,
            domain = self.domain,
            user = self.user,
            call = self.call_id,
            cseq = self.cseq,
            contact = self.contact(),
            port = local.port(),
        );
        self.sock
            .send_to(text.as_bytes(), self.switch)
            .await
            .unwrap();
    }

    /// REGISTERs with credentials: once without, then answering the challenge (the strongest
    /// algorithm offered, or MD5 only with `md5`).
    async fn register(&mut self, expires: u32, md5: bool) -> Response {
        let first = self.send(expires, None).await;
        if first.status != 401 {
            return first;
        }
        let values: Vec<&[u8]> = first
            .headers()
            .get_all(&HeaderName::WwwAuthenticate)
            .map(|v| v.as_ref())
            .filter(|v| !md5 || !String::from_utf8_lossy(v).contains("SHA-256"))
            .collect();
        self.digest.challenged(values).expect("a usable challenge");
        let auth = self
            .digest
            .authorization("REGISTER", &self.request_uri, &format!("cn{}", self.cseq))
            .unwrap();
        self.send(expires, Some(&auth)).await
    }
}

/// Waits (up to 5 s) for the first final response on `sock`.
async fn final_response(sock: &UdpSocket) -> Response {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        match Message::parse(&buf[..n]) {
            Ok(Message::Response(r)) if r.status >= 200 => return r,
            Ok(_) => continue,
            Err(e) => panic!("unreadable answer: {e:?}"),
        }
    }
}

fn header(r: &Response, name: HeaderName) -> Vec<String> {
    r.headers()
        .get_all(&name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

async fn sip_user(app: &App, admin: &str, tenant: &str, user: &str, password: &str) -> Value {
    let (s, u) = app
        .post(
            &format!("/v1/tenants/{tenant}/sip-users"),
            admin,
            json!({"username": user, "password": password}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    u
}

both! {
    async fn a_phone_registers_with_digest_and_the_api_lists_it(db) {
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let (_, t) = app.get("/v1/tenants/acme", &admin).await;
            assert_eq!(t["sip_domain"], "acme.wasmswitch.local", "{t}");
            assert_eq!(t["default_sip_domain"], "acme.wasmswitch.local", "{t}");
            let u = sip_user(&app, &admin, "acme", "alice", "correct horse").await;
            assert_eq!(u["realm"], "acme.wasmswitch.local", "{u}");
            assert_eq!(u["algorithms"], json!(["SHA-256", "MD5"]), "{u}");
            let switch = app.service.sip_addrs.udp;
            let mut phone = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;

            // The challenge: SHA-256 first, then MD5 (RFC 8760), in the tenant's realm.
            let challenge = phone.send(120, None).await;
            assert_eq!(challenge.status, 401);
            let offers = header(&challenge, HeaderName::WwwAuthenticate);
            assert_eq!(offers.len(), 2, "{offers:?}");
            assert!(offers[0].contains("algorithm=SHA-256") && offers[1].contains("algorithm=MD5"), "{offers:?}");
            assert!(offers.iter().all(|o| o.contains("realm=\"acme.wasmswitch.local\"")), "{offers:?}");

            let ok = phone.register(120, false).await;
            assert_eq!(ok.status, 200, "{ok:?}");
            let contacts = header(&ok, HeaderName::Contact);
            assert_eq!(contacts.len(), 1, "{contacts:?}");
            assert!(contacts[0].contains(&phone.contact()) && contacts[0].contains("expires=120"), "{contacts:?}");

            let (s, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
            assert_eq!(s, StatusCode::OK);
            let regs = regs.as_array().unwrap();
            assert_eq!(regs.len(), 1, "{regs:?}");
            let r = &regs[0];
            assert_eq!(r["username"], "alice");
            assert_eq!(r["user_id"], u["id"]);
            assert_eq!(r["contact_uri"], phone.contact());
            assert_eq!(r["transport"], "udp");
            assert_eq!(r["source"], phone.sock.local_addr().unwrap().to_string());
            assert_eq!(r["user_agent"], "test-phone/1.0");
            let left = r["expires_at"].as_i64().unwrap() - wasmswitch::store::now_ms();
            assert!((110_000..=120_000).contains(&left), "{left}");
            // Another tenant sees none of it.
            let other = app.tenant("other").await;
            let (_, none) = app.get("/v1/tenants/other/registrations", &other).await;
            assert_eq!(none, json!([]));
            assert_problem(&app.get("/v1/tenants/acme/registrations", &other).await, 403, "forbidden");

            // An MD5-only phone registers too; a refresh keeps one binding.
            let ok = phone.register(300, true).await;
            assert_eq!(ok.status, 200, "{ok:?}");
            let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
            assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
            assert_eq!(regs[0]["registered_at"], r["registered_at"], "a refresh keeps the first registration time");

            // Expires: 0 removes the binding.
            let gone = phone.register(0, false).await;
            assert_eq!(gone.status, 200, "{gone:?}");
            assert!(header(&gone, HeaderName::Contact).is_empty());
            let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
            assert_eq!(regs, json!([]));

            let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
            // Other tests in this process register too: the series is there, its count is theirs too.
            assert!(metrics.contains("sip_registers_total{outcome=\"ok\"}"), "{metrics}");
            assert!(metrics.contains("sip_registers_total{outcome=\"challenged\"}"), "{metrics}");
            app
        })
        .await;
    }
}

both! {
    async fn wrong_passwords_unknown_users_and_domains_are_refused(db) {
        let mut config = config(&db);
        config.sip.auth_failure_burst = 3;
        config.sip.auth_failures_per_minute = 1;
        let app = App::start(config).await;
        let admin = app.tenant("acme").await;
        sip_user(&app, &admin, "acme", "alice", "correct horse").await;
        let switch = app.service.sip_addrs.udp;

        // A domain no tenant has, and an address for a domain: 404 without a challenge.
        let mut nowhere = Phone::new(switch, "alice", "nosuch.wasmswitch.local", "x").await;
        let r = nowhere.send(60, None).await;
        assert_eq!((r.status, &r.reason[..]), (404, &b"Unknown Domain"[..]));
        let mut by_address = Phone::new(switch, "alice", "127.0.0.1", "x").await;
        assert_eq!(by_address.send(60, None).await.status, 404);

        // Too brief: 423 with Min-Expires, after authentication.
        let mut alice = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;
        let r = alice.register(10, false).await;
        assert_eq!(r.status, 423, "{r:?}");
        assert_eq!(header(&r, HeaderName::MinExpires), ["60"]);

        // A wrong password and an unknown user are answered alike: challenged, then 403.
        let mut wrong = Phone::new(switch, "alice", "acme.wasmswitch.local", "wrong horse").await;
        let r = wrong.register(60, false).await;
        assert_eq!((r.status, &r.reason[..]), (403, &b"Forbidden"[..]));
        let mut nobody = Phone::new(switch, "mallory", "acme.wasmswitch.local", "whatever1").await;
        let first = nobody.send(60, None).await;
        assert_eq!(first.status, 401, "an unknown user is challenged like a known one");
        let r = nobody.register(60, false).await;
        assert_eq!(r.status, 403);
        // The third failure from this address spends its burst: even the right password is
        // now refused, before any database read, until the bucket refills.
        assert_eq!(wrong.register(60, false).await.status, 403);
        let r = alice.register(60, false).await;
        assert_eq!((r.status, &r.reason[..]), (503, &b"Too Many Failed Authentications"[..]));
        let wait: u64 = header(&r, HeaderName::RetryAfter)[0].parse().unwrap();
        assert!((1..=60).contains(&wait), "one failure a minute comes back: {wait}");
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs, json!([]));
        app.stop().await;
        db.drop_db().await;
    }
}

both! {
    async fn a_tenant_sets_its_own_sip_domain(db) {
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let other = app.tenant("other").await;
            // Made before the domain changes: its hashes stay in the default realm.
            sip_user(&app, &admin, "acme", "alice", "correct horse").await;
            let patch = |who: String, tenant: &'static str, body: Value| {
                let app = &app;
                async move { app.call(Method::PATCH, &format!("/v1/tenants/{tenant}"), Some(&who), Some(body)).await }
            };
            // A tenant's own key cannot claim a domain: whoever holds one gets its phones.
            assert_problem(&patch(admin.clone(), "acme", json!({"sip_domain": "sip.acme.example"})).await, 403, "forbidden");
            let (_, unchanged) = app.get("/v1/tenants/acme", &admin).await;
            assert_eq!(unchanged["sip_domain"], "acme.wasmswitch.local");
            let op = app.operator.clone();
            let (s, t) = patch(op.clone(), "acme", json!({"sip_domain": "SIP.Acme.Example"})).await;
            assert_eq!(s, StatusCode::OK, "{t}");
            assert_eq!(t["sip_domain"], "sip.acme.example");
            assert_eq!(t["default_sip_domain"], "acme.wasmswitch.local");
            assert_eq!(t["name"], "acme", "the name is kept");
            let _ = &other;
            assert_problem(&patch(op.clone(), "other", json!({"sip_domain": "sip.acme.example"})).await, 409, "conflict");
            assert_problem(&patch(op.clone(), "other", json!({"sip_domain": "x.wasmswitch.local"})).await, 422, "unprocessable");
            assert_problem(&patch(op.clone(), "other", json!({"sip_domain": "10.0.0.1"})).await, 422, "unprocessable");
            // A refused domain changes nothing, not even a name sent with it.
            assert_problem(&patch(op.clone(), "other", json!({"name": "renamed", "sip_domain": "10.0.0.1"})).await, 422, "unprocessable");
            assert_eq!(app.get("/v1/tenants/other", &op).await.1["name"], "other");

            let switch = app.service.sip_addrs.udp;
            // Alice registers in the new domain, challenged in her own realm.
            let mut alice = Phone::new(switch, "alice", "sip.acme.example", "correct horse").await;
            let challenge = alice.send(60, None).await;
            assert!(header(&challenge, HeaderName::WwwAuthenticate)[0].contains("realm=\"acme.wasmswitch.local\""));
            assert_eq!(alice.register(60, false).await.status, 200);
            // A user made now gets the new realm; the default domain still reaches the tenant.
            let bob = sip_user(&app, &admin, "acme", "bob", "battery staple").await;
            assert_eq!(bob["realm"], "sip.acme.example");
            let mut bob_phone = Phone::new(switch, "bob", "acme.wasmswitch.local", "battery staple").await;
            assert_eq!(bob_phone.register(60, false).await.status, 200);
            // Alice's new password moves her to the new realm.
            let id = app.get("/v1/tenants/acme/sip-users", &admin).await.1[0]["id"].as_str().unwrap().to_string();
            let (s, u) = app.call(Method::PATCH, &format!("/v1/tenants/acme/sip-users/{id}"), Some(&admin), Some(json!({"password": "new horse!"}))).await;
            assert_eq!(s, StatusCode::OK, "{u}");
            assert_eq!(u["realm"], "sip.acme.example");
            let mut again = Phone::new(switch, "alice", "sip.acme.example", "new horse!").await;
            assert_eq!(again.register(60, false).await.status, 200);
            let mut old = Phone::new(switch, "alice", "sip.acme.example", "correct horse").await;
            assert_eq!(old.register(60, false).await.status, 403);

            let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
            assert_eq!(regs.as_array().unwrap().len(), 3, "{regs}");
            // Back to the default domain.
            let (_, t) = patch(op.clone(), "acme", json!({"sip_domain": null})).await;
            assert_eq!(t["sip_domain"], "acme.wasmswitch.local");
            let mut lost = Phone::new(switch, "alice", "sip.acme.example", "new horse!").await;
            assert_eq!(lost.send(60, None).await.status, 404);
            app
        })
        .await;
    }
}

both! {
    async fn registrations_outlive_a_restart_and_lapse(db) {
        let mut config = config(&db);
        config.sip.min_expires_secs = 1;
        let app = App::start(config.clone()).await;
        let admin = app.tenant("acme").await;
        sip_user(&app, &admin, "acme", "alice", "correct horse").await;
        let mut long = Phone::new(app.service.sip_addrs.udp, "alice", "acme.wasmswitch.local", "correct horse").await;
        assert_eq!(long.register(3600, false).await.status, 200);
        let operator = app.operator.clone();
        app.stop().await;

        let app = App::start_existing(config, operator).await;
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), 1, "the binding survives the restart: {regs}");
        // A short one, made after the restart (a slow restart must not lapse it first).
        let mut short = Phone::new(app.service.sip_addrs.udp, "alice", "acme.wasmswitch.local", "correct horse").await;
        assert_eq!(short.register(2, false).await.status, 200);
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), 2, "{regs}");
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        let regs = regs.as_array().unwrap();
        assert_eq!(regs.len(), 1, "the short one lapsed: {regs:?}");
        assert_eq!(regs[0]["contact_uri"], long.contact());
        app.stop().await;
        db.drop_db().await;
    }
}

both! {
    async fn two_hosts_on_one_database_share_nonces_and_bindings(db) {
        let config_a = config(&db);
        let a = App::start(config_a.clone()).await;
        let b = App::start_existing(config_a, a.operator.clone()).await;
        let admin = a.tenant("acme").await;
        sip_user(&a, &admin, "acme", "alice", "correct horse").await;
        // Challenged by host A, answered to host B: B accepts A's nonce.
        let mut phone = Phone::new(a.service.sip_addrs.udp, "alice", "acme.wasmswitch.local", "correct horse").await;
        let challenge = phone.send(60, None).await;
        assert_eq!(challenge.status, 401);
        let values: Vec<&[u8]> = challenge.headers().get_all(&HeaderName::WwwAuthenticate).map(|v| v.as_ref()).collect();
        phone.digest.challenged(values).unwrap();
        let auth = phone.digest.authorization("REGISTER", "sip:acme.wasmswitch.local", "cn-b").unwrap();
        phone.switch = b.service.sip_addrs.udp;
        let ok = phone.send(60, Some(&auth)).await;
        assert_eq!(ok.status, 200, "{ok:?}");
        // A sees what B wrote.
        let (_, regs) = a.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
        // The same credentials (nonce and nc) replayed to A, in a new request: refused as a
        // replay (401 with stale=true), though A never saw them.
        phone.switch = a.service.sip_addrs.udp;
        let replayed = phone.send(0, Some(&auth)).await;
        assert_eq!(replayed.status, 401, "{replayed:?}");
        assert!(header(&replayed, HeaderName::WwwAuthenticate)[0].contains("stale=true"), "{replayed:?}");
        let (_, regs) = a.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), 1, "the replayed unregister changed nothing: {regs}");
        b.stop().await;
        a.stop().await;
        db.drop_db().await;
    }
}

/// Sends `text` (a request from `sock`'s address) and returns the final response and how long
/// it took.
async fn ask(sock: &UdpSocket, switch: SocketAddr, text: String) -> (Response, Duration) {
    let started = std::time::Instant::now();
    sock.send_to(text.as_bytes(), switch).await.unwrap();
    let r = final_response(sock).await;
    (r, started.elapsed())
}

fn request(method: &str, local: SocketAddr, n: u32) -> String {
    format!(
        "{method} sip:bob@acme.wasmswitch.local SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{method}-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@example.com>;tag=c{n}\r\n\
         To: <sip:bob@acme.wasmswitch.local>\r\n\
         Call-ID: {method}-{n}@test\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:carol@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

both! {
    async fn a_stalled_database_delays_registers_and_nothing_else(db) {
        let mut config = config(&db);
        config.sip.register_concurrency = 1;
        let app = App::start(config).await;
        let admin = app.tenant("acme").await;
        sip_user(&app, &admin, "acme", "alice", "correct horse").await;
        let switch = app.service.sip_addrs.udp;
        let mut alice = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;
        let challenge = alice.send(60, None).await;
        let values: Vec<&[u8]> = challenge.headers().get_all(&HeaderName::WwwAuthenticate).map(|v| v.as_ref()).collect();
        alice.digest.challenged(values).unwrap();
        let auth = alice.digest.authorization("REGISTER", "sip:acme.wasmswitch.local", "cn-stall").unwrap();

        // Another connection takes the write lock and holds it.
        sqlx::any::install_default_drivers();
        let mut holder = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let lock = if db.url.starts_with("sqlite") {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN; LOCK TABLE registrations IN ACCESS EXCLUSIVE MODE"
        };
        sqlx::raw_sql(lock).execute(&mut holder).await.unwrap();

        // Alice's REGISTER waits for the lock ...
        let waiting = tokio::spawn(async move {
            let r = alice.send(60, Some(&auth)).await;
            (r, alice)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the REGISTER waits on the database");
        // ... while the rest of the signalling goes on: OPTIONS and INVITE are answered at
        // once (the INVITE's number is matched in the calls layer's in-memory directory: no
        // query, so a stalled database does not hold it), and a REGISTER past
        // sip.register_concurrency is told to come back later.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = other.local_addr().unwrap();
        let (r, took) = ask(&other, switch, request("OPTIONS", local, 1)).await;
        assert_eq!(r.status, 200);
        assert!(took < Duration::from_secs(2), "OPTIONS took {took:?}");
        let (r, took) = ask(&other, switch, request("INVITE", local, 2)).await;
        assert_eq!(r.status, 404, "no tenant has the number");
        assert!(took < Duration::from_secs(2), "INVITE took {took:?}");
        let mut bob = Phone::new(switch, "bob", "acme.wasmswitch.local", "whatever1").await;
        let started = std::time::Instant::now();
        let r = bob.send(60, None).await;
        assert_eq!(r.status, 503);
        assert_eq!(header(&r, HeaderName::RetryAfter), ["5"]);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(!waiting.is_finished(), "all of that while the REGISTER still waits");

        // The lock goes; Alice's REGISTER completes.
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
        let (r, _alice) = waiting.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
        drop(holder);
        app.stop().await;
        db.drop_db().await;
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, as PEM files at `cert` and `key`;
/// returns it in DER for a client to trust.
fn make_cert(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> rustls::pki_types::CertificateDer<'static> {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    std::fs::write(key, made.signing_key.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// A TLS connection to `target` trusting only `trusted`; also the certificate it was shown.
#[allow(deprecated)] // rustls' ring provider, as the switch uses (wasmswitch_sip::tls)
async fn tls_connect(
    target: SocketAddr,
    trusted: &rustls::pki_types::CertificateDer<'static>,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let shown = conn.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    (conn, shown)
}

/// Writes `text` on the connection and reads the final response (heads only: these
/// responses carry no body).
async fn tls_ask<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    conn: &mut S,
    text: &str,
) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(text.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            match Message::parse(&head) {
                Ok(Message::Response(r)) if r.status >= 200 => return r,
                Ok(_) => continue,
                Err(e) => panic!("unreadable answer: {e:?}"),
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "the switch closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn tls_register(local: SocketAddr, cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:acme.wasmswitch.local SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-tls-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@acme.wasmswitch.local>;tag=tls{cseq}\r\n\
         To: <sip:alice@acme.wasmswitch.local>\r\n\
         Call-ID: tls-phone@test\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sips:alice@{local};transport=tls>\r\n\
         Expires: 600\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

both! {
    async fn a_phone_registers_over_tls_and_a_renewed_certificate_is_served_without_a_restart(db) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("sip.crt"), dir.path().join("sip.key"));
        let first = make_cert(&cert, &key);
        let mut config = config(&db);
        config.sip.tls_listen = "127.0.0.1:0".into();
        config.sip.tls_cert_file = cert.display().to_string();
        config.sip.tls_key_file = key.display().to_string();
        let app = App::start(config.clone()).await;
        let admin = app.tenant("acme").await;
        sip_user(&app, &admin, "acme", "alice", "correct horse").await;
        let tls = app.service.sip_addrs.tls.expect("TLS listens");

        let (mut conn, shown) = tls_connect(tls, &first).await;
        assert_eq!(shown, first);
        let local = conn.get_ref().0.local_addr().unwrap();
        let challenge = tls_ask(&mut conn, &tls_register(local, 1, None)).await;
        assert_eq!(challenge.status, 401);
        let mut digest = DigestClient::new("alice", "correct horse");
        digest.challenged(challenge.headers().get_all(&HeaderName::WwwAuthenticate).map(|v| v.as_ref())).unwrap();
        let auth = digest.authorization("REGISTER", "sip:acme.wasmswitch.local", "cn-tls").unwrap();
        let ok = tls_ask(&mut conn, &tls_register(local, 2, Some(&auth))).await;
        assert_eq!(ok.status, 200, "{ok:?}");
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs[0]["transport"], "tls", "{regs}");
        assert_eq!(regs[0]["source"], local.to_string(), "{regs}");
        assert!(regs[0]["connection"].is_i64(), "the connection is remembered, for calls to reach the phone over it: {regs}");

        // A renewed certificate, written over the old files, is served to new connections
        // after a reload; the open connection keeps working.
        let second = make_cert(&cert, &key);
        let done = app.service.reload(&config);
        assert!(done.applied.iter().any(|a| a.contains("TLS certificate")), "{done:?}");
        assert!(done.refused.is_empty() && done.needs_restart.is_empty(), "{done:?}");
        let (_, shown) = tls_connect(tls, &second).await;
        assert_eq!(shown, second);
        let refresh = tls_ask(&mut conn, &tls_register(local, 3, digest.authorization("REGISTER", "sip:acme.wasmswitch.local", "cn-tls-2").as_deref())).await;
        assert_eq!(refresh.status, 200, "{refresh:?}");

        // A key that does not match is refused, and the certificate in use stays.
        let other_key = dir.path().join("other.key");
        make_cert(&dir.path().join("other.crt"), &other_key);
        let mut broken = config.clone();
        broken.sip.tls_key_file = other_key.display().to_string();
        let done = app.service.reload(&broken);
        assert!(done.refused.iter().any(|r| r.contains("does not match")), "{done:?}");
        assert!(done.needs_restart.is_empty(), "{done:?}");
        let (_, shown) = tls_connect(tls, &second).await;
        assert_eq!(shown, second);
        app.stop().await;
        db.drop_db().await;
    }
}

/// A challenge's `WWW-Authenticate` values without their nonces, which differ every time.
fn challenge_shape(r: &Response) -> Vec<String> {
    header(r, HeaderName::WwwAuthenticate)
        .iter()
        .map(|v| {
            v.split(", ")
                .filter(|p| !p.trim_start_matches("Digest ").starts_with("nonce="))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

both! {
    async fn known_and_unknown_users_are_challenged_alike(db) {
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let op = app.operator.clone();
            // Made in the default realm, before the tenant's own domain: it keeps that realm.
            sip_user(&app, &admin, "acme", "old", "correct horse").await;
            let (s, _) = app.call(Method::PATCH, "/v1/tenants/acme", Some(&op), Some(json!({"sip_domain": "sip.acme.example"}))).await;
            assert_eq!(s, StatusCode::OK);
            sip_user(&app, &admin, "acme", "alice", "correct horse").await;
            let switch = app.service.sip_addrs.udp;
            // Through either of the tenant's domains, alice (known) and mallory (unknown) get
            // the same challenge: the tenant's current realm, every algorithm.
            for domain in ["sip.acme.example", "acme.wasmswitch.local"] {
                let known = Phone::new(switch, "alice", domain, "x").await.send(60, None).await;
                let unknown = Phone::new(switch, "mallory", domain, "x").await.send(60, None).await;
                assert_eq!((known.status, unknown.status), (401, 401));
                assert_eq!(challenge_shape(&known), challenge_shape(&unknown), "{domain}");
                let shape = challenge_shape(&known);
                assert_eq!(shape.len(), 2, "{shape:?}");
                assert!(shape.iter().all(|c| c.contains("realm=\"sip.acme.example\"")), "{shape:?}");
            }
            // A user hashed in the older realm can only be challenged in it (README says so).
            let old = Phone::new(switch, "old", "sip.acme.example", "x").await.send(60, None).await;
            assert!(challenge_shape(&old).iter().all(|c| c.contains("realm=\"acme.wasmswitch.local\"")), "{old:?}");

            // An unknown user looked up a moment ago registers as soon as it is made: the
            // registrar's lookups are forgotten when a SIP user changes.
            let mut mallory = Phone::new(switch, "mallory", "sip.acme.example", "battery staple").await;
            assert_eq!(mallory.register(60, false).await.status, 403);
            sip_user(&app, &admin, "acme", "mallory", "battery staple").await;
            let mut mallory = Phone::new(switch, "mallory", "sip.acme.example", "battery staple").await;
            assert_eq!(mallory.register(60, false).await.status, 200);
            app
        })
        .await;
    }
}

both! {
    async fn the_request_uri_must_name_a_domain_of_the_aors_tenant(db) {
        with_app(db, |app| async move {
            let admin = app.tenant("acme").await;
            let other = app.tenant("other").await;
            sip_user(&app, &admin, "acme", "alice", "correct horse").await;
            sip_user(&app, &other, "other", "alice", "correct horse").await;
            let op = app.operator.clone();
            let (s, _) = app.call(Method::PATCH, "/v1/tenants/acme", Some(&op), Some(json!({"sip_domain": "sip.acme.example"}))).await;
            assert_eq!(s, StatusCode::OK);
            let switch = app.service.sip_addrs.udp;
            // RFC 3261 section 10.3 step 1: a domain this registrar does not serve, or another
            // tenant's domain: 404, before any challenge.
            for uri in ["sip:nosuch.example", "sip:other.wasmswitch.local", "tel:+15550100"] {
                let mut phone = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;
                phone.request_uri = uri.into();
                let r = phone.send(60, None).await;
                assert_eq!((r.status, &r.reason[..]), (404, &b"Unknown Domain In Request-URI"[..]), "{uri}");
            }
            // The tenant's other domain, in any case, reaches the same bindings.
            let mut phone = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;
            phone.request_uri = "sip:SIP.acme.example".into();
            assert_eq!(phone.register(60, false).await.status, 200);
            let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
            assert_eq!(regs.as_array().unwrap().len(), 1, "{regs}");
            // The switch's own address (a phone whose registrar is set by address) too.
            let mut phone = Phone::new(switch, "alice", "acme.wasmswitch.local", "correct horse").await;
            phone.request_uri = format!("sip:{}", switch.ip());
            assert_eq!(phone.register(60, false).await.status, 200);
            app
        })
        .await;
    }
}

both! {
    async fn the_api_answers_during_a_register_flood_on_a_stalled_database(db) {
        let app = App::start(config(&db)).await;
        let admin = app.tenant("acme").await;
        let switch = app.service.sip_addrs.udp;
        // Twice as many phones as the pool has connections, each challenged (its own nonce).
        let flood = 2 * app.service.state.store.max_connections() + 8;
        let mut phones = Vec::new();
        for i in 0..flood {
            // One user each: a user's contacts are limited (sip.max_contacts).
            let name = format!("phone{i}");
            sip_user(&app, &admin, "acme", &name, "correct horse").await;
            let mut phone = Phone::new(switch, &name, "acme.wasmswitch.local", "correct horse").await;
            let challenge = phone.send(60, None).await;
            let values: Vec<&[u8]> = challenge.headers().get_all(&HeaderName::WwwAuthenticate).map(|v| v.as_ref()).collect();
            phone.digest.challenged(values).unwrap();
            phones.push(phone);
        }

        sqlx::any::install_default_drivers();
        let mut holder = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let lock = if db.url.starts_with("sqlite") {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN; LOCK TABLE registrations IN ACCESS EXCLUSIVE MODE"
        };
        sqlx::raw_sql(lock).execute(&mut holder).await.unwrap();

        // All answer their challenge at once: every REGISTER goes to the database and waits
        // behind the lock.
        for phone in &mut phones {
            let auth = phone.digest.authorization("REGISTER", "sip:acme.wasmswitch.local", "cn-flood").unwrap();
            phone.send_only(60, Some(&auth)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The API still gets connections: the registrar uses at most half the pool.
        let started = std::time::Instant::now();
        let (s, users) = app.get("/v1/tenants/acme/sip-users", &admin).await;
        assert_eq!(s, StatusCode::OK, "{users}");
        assert!(started.elapsed() < Duration::from_secs(2), "the API waited {:?}", started.elapsed());

        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
        // The REGISTERs go on once the lock goes.
        for phone in &phones {
            assert_eq!(final_response(&phone.sock).await.status, 200);
        }
        let (_, regs) = app.get("/v1/tenants/acme/registrations", &admin).await;
        assert_eq!(regs.as_array().unwrap().len(), phones.len(), "{regs}");
        drop(holder);
        app.stop().await;
        db.drop_db().await;
    }
}
