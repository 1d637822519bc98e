//! The host as a user runs it: `wasmswitch serve` (a real process, its own SQLite database)
//! seeded with the example plugins, then `wasmswitch plugin list|push|activate|rollback`
//! against it, then SIGTERM.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wasmswitch_plugin_artifacts as artifacts;

struct Server {
    child: Child,
    url: String,
    /// Every line the server printed before it said where it listens.
    banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, seed: Option<&Path>) -> Server {
    serve_with(data, seed, &[])
}

/// [`serve`] with settings of the test's own in the environment.
fn serve_with(data: &Path, seed: Option<&Path>, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmswitch"));
    cmd.arg("serve")
        .current_dir(data)
        .env("WASMSWITCH_API_LISTEN", "127.0.0.1:0")
        .env("WASMSWITCH_SIP_LISTEN", "127.0.0.1:0")
        .env("WASMSWITCH_PLUGINS_MAX_INSTANCES", "64")
        .env("WASMSWITCH_LOG_LEVEL", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.envs(env.iter().copied());
    if let Some(dir) = seed {
        cmd.arg("--seed-demo").arg(dir);
    }
    // Owned by a `Server` at once, so a failed start still kills and reaps it.
    let mut server = Server {
        child: cmd.spawn().expect("start wasmswitch serve"),
        url: String::new(),
        banner: Vec::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start; it printed {:?}", server.banner));
        if let Some(url) = line.strip_prefix("wasmswitch API on ") {
            server.url = url.trim().to_string();
            return server;
        }
        server.banner.push(line);
    }
}

/// The first `wsk_` key printed after a line containing `after`.
fn key_after(banner: &[String], after: &str) -> String {
    banner
        .iter()
        .skip_while(|l| !l.contains(after))
        .map(|l| l.trim())
        .find(|l| l.starts_with("wsk_"))
        .unwrap_or_else(|| panic!("no key after {after:?} in {banner:?}"))
        .to_string()
}

fn cli(server: &Server, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
        .args(["plugin"])
        .args(args)
        .env("WASMSWITCH_URL", &server.url)
        .env("WASMSWITCH_KEY", key)
        .env_remove("WASMSWITCH_TENANT")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    out
}

#[test]
fn serve_seed_push_activate_rollback_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let demo = data.path().join("demo-plugins");
    std::fs::create_dir_all(&demo).unwrap();
    std::fs::copy(artifacts::ROUTER, demo.join("router.wasm")).unwrap();
    std::fs::copy(artifacts::SMS_POLICY, demo.join("sms-policy.wasm")).unwrap();

    let server = serve(data.path(), Some(&demo));
    let operator = key_after(&server.banner, "operator API key");
    let demo_key = key_after(&server.banner, "seeded tenant");
    assert!(
        data.path().join("wasmswitch-data/wasmswitch.db").exists(),
        "the embedded database is created"
    );

    let list = ok(&cli(&server, &demo_key, &["list"]));
    assert!(
        list.contains("router") && list.contains("sms-policy"),
        "{list}"
    );

    // Build-and-push's second half: a new version, active at once.
    let push = ok(&cli(
        &server,
        &demo_key,
        &[
            "push",
            artifacts::FAULTY,
            "--name",
            "router",
            "--world",
            "router",
            "--activate",
        ],
    ));
    assert!(
        push.contains("demo/router@2") && push.contains("active"),
        "{push}"
    );
    let back = ok(&cli(&server, &demo_key, &["rollback", "router"]));
    assert!(back.contains("rolled back to version 1"), "{back}");
    let again = ok(&cli(&server, &demo_key, &["activate", "router", "2"]));
    assert!(again.contains("router@2 is active"), "{again}");
    let versions = ok(&cli(&server, &demo_key, &["list", "router"]));
    assert_eq!(
        versions.lines().filter(|l| l.contains("yes")).count(),
        1,
        "{versions}"
    );

    // Refusals are explained, and fail the command.
    let bad = cli(
        &server,
        &demo_key,
        &[
            "push",
            artifacts::SMS_POLICY,
            "--name",
            "router",
            "--world",
            "router",
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("422 invalid-plugin"), "{err}");
    let denied = cli(&server, "wsk_bogus_key", &["list"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));
    // An operator key must name the tenant.
    let op = cli(&server, &operator, &["list"]);
    assert!(String::from_utf8_lossy(&op.stderr).contains("--tenant"));

    // SIGTERM stops it cleanly; a restart keeps everything and does not seed twice.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    drop(server);

    let server = serve(data.path(), Some(&demo));
    assert!(
        server.banner.iter().all(|l| !l.trim().starts_with("wsk_")),
        "no new keys on a restart: {:?}",
        server.banner
    );
    let versions = ok(&cli(&server, &demo_key, &["list", "router"]));
    let active: Vec<&str> = versions.lines().filter(|l| l.contains("yes")).collect();
    assert!(active.len() == 1 && active[0].contains(" 2 "), "{versions}");

    // SIGHUP reloads wasmswitch.toml: a rate limit of one request a second takes effect (the
    // CLI's list makes two requests, so it is refused), and a bad file changes nothing.
    std::fs::write(
        data.path().join("wasmswitch.toml"),
        "[api]\nrate_limit_per_second = 1\nrate_limit_burst = 1\n",
    )
    .unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(500));
    let limited = cli(&server, &demo_key, &["list"]);
    let err = String::from_utf8_lossy(&limited.stderr);
    assert!(err.contains("429 rate-limited"), "{err}");
}

#[test]
fn migrate_creates_the_schema_and_bad_config_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/m.db");
    let o = Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(out.contains("is up to date"), "{out}");
    let tables = Command::new("sqlite3")
        .arg(&db)
        .arg(".tables")
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    for t in [
        "tenants",
        "api_keys",
        "plugins",
        "dids",
        "trunks",
        "sip_users",
        "cdrs",
        "messages",
        "kv",
        "audit_log",
    ] {
        assert!(
            tables.split_whitespace().any(|x| x == t),
            "{t} missing: {tables}"
        );
    }

    // One line per bad field, and no start.
    let o = Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
        .arg("serve")
        .env("WASMSWITCH_API_LISTEN", "nowhere")
        .env("WASMSWITCH_PLUGINS_DEADLINE_MS", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("api.listen") && err.contains("plugins.deadline_ms"),
        "{err}"
    );
}

/// `wasmswitch health` (the container's health check): 0 when `/readyz` answers 200, 1 when
/// nothing listens.
#[test]
fn health_reports_whether_the_switch_is_ready() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path(), None);
    let health = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
            .args(["health", url, "--timeout-ms", "2000"])
            .output()
            .unwrap()
    };
    let ready = health(&format!("{}/readyz", server.url));
    assert!(ready.status.success(), "{ready:?}");
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("ready:"));

    let url = format!("{}/readyz", server.url);
    drop(server);
    let down = health(&url);
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(String::from_utf8_lossy(&down.stdout).starts_with("not ready:"));
}

/// Where the server said SIP listens: (UDP, TCP).
fn sip_addrs(server: &Server) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let line = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("wasmswitch SIP on udp "))
        .unwrap_or_else(|| panic!("no SIP line in {:?}", server.banner));
    let (udp, tcp) = line.split_once(" and tcp ").unwrap();
    (udp.parse().unwrap(), tcp.parse().unwrap())
}

/// One HTTP/1.1 request to the server's API; the whole response as text.
fn http(server: &Server, method: &str, path: &str, key: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let api = server.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(api).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

/// The running switch listens for SIP: OPTIONS (a load balancer's probe) gets 200 over UDP and
/// TCP, and a call to a number no tenant owns gets an immediate 404 rather than silence.
#[test]
fn sip_answers_options_and_refuses_a_call_to_no_tenants_number() {
    use std::io::{Read, Write};
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path(), None);
    let (udp, tcp) = sip_addrs(&server);
    let request = |method: &str, local: std::net::SocketAddr, transport: &str| {
        format!(
            "{method} sip:{udp} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK{method}{transport};rport\r\n\
From: <sip:test@{local}>;tag=1\r\nTo: <sip:{udp}>\r\nCall-ID: {method}-{transport}\r\n\
CSeq: 1 {method}\r\nContact: <sip:test@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let answer = |method: &str| {
        socket
            .send_to(request(method, local, "UDP").as_bytes(), udp)
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).expect("an answer over UDP");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            // Skip a 100 Trying: the final answer is what matters.
            if !text.starts_with("SIP/2.0 100 ") {
                return text;
            }
        }
    };
    let options = answer("OPTIONS");
    assert!(options.starts_with("SIP/2.0 200 OK\r\n"), "{options}");
    assert!(options.contains("Allow: INVITE"), "{options}");
    assert!(
        options.contains(&format!("received=127.0.0.1;rport={}", local.port())),
        "{options}"
    );
    let invite = answer("INVITE");
    assert!(invite.starts_with("SIP/2.0 404 Not Found\r\n"), "{invite}");

    let mut conn = std::net::TcpStream::connect(tcp).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = conn.local_addr().unwrap();
    conn.write_all(request("OPTIONS", local, "TCP").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).expect("an answer over TCP");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK\r\n"));

    // The SIP stack's counters are on the switch's /metrics.
    let api = server.url.trim_start_matches("http://");
    let mut http = std::net::TcpStream::connect(api).unwrap();
    http.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut metrics = String::new();
    http.read_to_string(&mut metrics).unwrap();
    assert!(
        metrics.contains("sip_requests_received_total{method=\"OPTIONS\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sip_transactions{side=\"server\"}"),
        "{metrics}"
    );
}

/// Logs that do not go to a terminal (a file, a pipe, `docker logs`) carry no colour escapes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmswitch"))
        .arg("serve")
        .current_dir(data.path())
        .env("WASMSWITCH_API_LISTEN", "127.0.0.1:0")
        .env("WASMSWITCH_SIP_LISTEN", "127.0.0.1:0")
        .env("WASMSWITCH_PLUGINS_MAX_INSTANCES", "64")
        .env("WASMSWITCH_LOG_LEVEL", "info")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let started = lines
        .by_ref()
        .take(200)
        .find(|l| l.contains("wasmswitch started"));
    let _ = child.kill();
    let _ = child.wait();
    let line = started.expect("the host logs its start");
    assert!(!line.contains('\u{1b}'), "escape codes in {line:?}");
}

/// A phone registers with the running switch: sipp, a real SIP peer, as a SIP user made
/// through the API, REGISTERs with digest over UDP and over TCP and unregisters again; a
/// wrong password gets 403. sipp answers only the first challenge and only MD5, so the switch
/// is told to offer MD5 (`sip.digest_algorithms`), as an operator with such phones would.
#[test]
fn sipp_registers_with_the_switch_over_udp_and_tcp() {
    let data = tempfile::tempdir().unwrap();
    let server = serve_with(
        data.path(),
        None,
        &[("WASMSWITCH_SIP_DIGEST_ALGORITHMS", "[\"MD5\"]")],
    );
    let operator = key_after(&server.banner, "operator API key");
    let created = http(
        &server,
        "POST",
        "/v1/tenants",
        &operator,
        r#"{"id":"acme","name":"Acme"}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let user = http(
        &server,
        "POST",
        "/v1/tenants/acme/sip-users",
        &operator,
        r#"{"username":"alice","password":"correct-horse"}"#,
    );
    assert!(user.starts_with("HTTP/1.1 201"), "{user}");
    assert!(
        user.contains(r#""realm":"acme.wasmswitch.local""#),
        "{user}"
    );
    let (udp, tcp) = sip_addrs(&server);
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip/tests/sipp");
    let sipp = |scenario: &str, transport: &str, target: std::net::SocketAddr, password: &str| {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port();
        let out = Command::new("sipp")
            .arg("-sf")
            .arg(scenarios.join(scenario))
            .args(["-t", transport, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", "1", "-timeout", "10s", "-timeout_error", "-nostdin"])
            .args(["-s", "alice", "-au", "alice", "-ap", password])
            .args(["-key", "domain", "acme.wasmswitch.local"])
            .args(["-auth_uri", "acme.wasmswitch.local"])
            .arg(target.to_string())
            .output()
            .unwrap_or_else(|e| panic!("sipp could not run ({e}): scripts/setup.sh installs it"));
        assert!(
            out.status.success(),
            "sipp {scenario} over {transport}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sipp("register.xml", "u1", udp, "correct-horse");
    sipp("register.xml", "t1", tcp, "correct-horse");
    sipp("register-wrong.xml", "u1", udp, "not-the-password");
    // Each run unregistered what it registered.
    let listed = http(
        &server,
        "GET",
        "/v1/tenants/acme/registrations",
        &operator,
        "",
    );
    assert!(
        listed.starts_with("HTTP/1.1 200") && listed.ends_with("[]"),
        "{listed}"
    );
    // Two REGISTERs accepted per run (the binding, then Expires: 0), one refused.
    let metrics = http(&server, "GET", "/metrics", &operator, "");
    assert!(
        metrics.contains("sip_registers_total{outcome=\"ok\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sip_registers_total{outcome=\"forbidden\"} 1"),
        "{metrics}"
    );
}

/// The certificate `openssl s_client` is shown on `addr`, as its base64 body (no lines), and
/// what it printed up to the answer to an OPTIONS sent over the connection. Reads until the
/// answer's head has arrived (10 s at most), then ends the session.
fn s_client(addr: std::net::SocketAddr) -> (String, String) {
    use std::io::{Read, Write};
    let mut child = Command::new("openssl")
        // Without -ign_eof: the session ends when stdin closes.
        .args(["s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("openssl could not run ({e}): install the Debian package openssl")
        });
    let options = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKssl\r\n\
         From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:{addr}>\r\nCall-ID: ssl-probe\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(options.as_bytes()).unwrap();
    // A thread reads openssl's output, so that this one can stop waiting at the deadline.
    let mut stdout = child.stdout.take().unwrap();
    let (chunks, arrived) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || chunks.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let answered = |text: &str| {
        text.find("SIP/2.0 ")
            .is_some_and(|at| text[at..].contains("\r\n\r\n"))
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while !answered(&String::from_utf8_lossy(&out)) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match arrived.recv_timeout(left) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            // Timed out, or openssl ended: the assertions below say what is missing.
            Err(_) => break,
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    drop(arrived);
    let _ = reader.join();
    let text = String::from_utf8_lossy(&out).to_string();
    let cert = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .unwrap_or_else(|| panic!("no certificate in {text}"))
        .split_whitespace()
        .collect();
    (cert, text)
}

fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// SIP over TLS on the running switch, with openssl as the peer: OPTIONS is answered, and
/// after the certificate files are renewed (and a SIGHUP sent; the file watch would also see
/// it within 2 s) the switch serves the new one to new connections.
#[test]
fn tls_is_served_and_a_renewed_certificate_is_picked_up_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (data.path().join("sip.crt"), data.path().join("sip.key"));
    let make = || {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        pem_body(&made.cert.pem())
    };
    let first = make();
    let server = serve_with(
        data.path(),
        None,
        &[
            ("WASMSWITCH_SIP_TLS_LISTEN", "127.0.0.1:0"),
            ("WASMSWITCH_SIP_TLS_CERT_FILE", &cert.display().to_string()),
            ("WASMSWITCH_SIP_TLS_KEY_FILE", &key.display().to_string()),
        ],
    );
    let tls: std::net::SocketAddr = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("wasmswitch SIP over TLS on "))
        .unwrap_or_else(|| panic!("no TLS line in {:?}", server.banner))
        .parse()
        .unwrap();
    let (shown, text) = s_client(tls);
    assert_eq!(shown, first);
    assert!(text.contains("SIP/2.0 200 OK"), "{text}");

    let second = make();
    assert_ne!(first, second);
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (shown, _) = s_client(tls);
        if shown == second {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "still the first certificate after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
