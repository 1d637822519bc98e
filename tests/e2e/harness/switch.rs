//! The switch as an operator runs it: the `wasmswitch serve` binary cargo built, configured by
//! its environment alone, in a folder of its own, on a database of the test's own.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{Api, Db, free_port};

/// How long a start may take until the API answers `/healthz` and SIP answers OPTIONS. A start
/// runs every migration on an empty database; with a dozen tests starting switches at once on
/// a 2-core CI machine a few seconds is common, so the bound is generous: it only turns a hang
/// into a failure.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the switch may take to exit after SIGTERM: it stops taking calls, lets those in
/// progress end and flushes its records (the drain). The tests end their calls first, so this
/// is a bound on a hang, not a wait.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts tried before giving up. The SIP port is picked free just before the switch binds it,
/// and another test may take it in between: the switch then exits at once and the harness tries
/// another port. Three is plenty for that race; a switch that cannot start for another reason
/// fails three times in a few milliseconds and the test shows its log.
const START_ATTEMPTS: u32 = 3;

/// The most plugin instances the test switch keeps (`plugins.max_instances`, default 10,000):
/// the pool reserves address space for each, and a dozen switches run at once. 256 is more
/// calls at once than any end-to-end test places (load is the benchmark's business).
const MAX_INSTANCES: &str = "256";

/// Half of [`MAX_INSTANCES`] for one tenant (`plugins.max_instances_per_tenant`, default
/// 2,000): the switch warns when the per-tenant cap is not below the whole, and the warning
/// would open every test's log.
const MAX_INSTANCES_PER_TENANT: &str = "128";

/// A plugin call's deadline for the test switch (`plugins.deadline_ms`, default 100 ms). Tests
/// share two cores with builds and other switches; a router that misses 100 ms there would make
/// the test about the machine, not the switch. Deadlines have tests of their own.
const DEADLINE_MS: &str = "1000";

/// The log level (`log.level`), `info` unless `E2E_SWITCH_LOG` says otherwise (e.g.
/// `E2E_SWITCH_LOG=wasmswitch=debug,info`). Not a `WASMSWITCH_` name: the switch would read it
/// as a setting.
fn log_level() -> String {
    std::env::var("E2E_SWITCH_LOG").unwrap_or_else(|_| "info".into())
}

/// Compiled components shared by every test switch (keyed by sha256 and engine), so each
/// upload of the same plugin compiles once per build.
fn component_cache() -> String {
    format!("{}/e2e-component-cache", env!("CARGO_TARGET_TMPDIR"))
}

/// A running switch. Dropped, it is killed (SIGKILL) and its database removed; [`Switch::stop`]
/// stops it as an operator would. When the test is failing its folder (log and output) is kept
/// and its path printed.
#[derive(Debug)]
pub struct Switch {
    /// Its API, with the operator key it was started with.
    pub api: Api,
    /// Where it takes SIP, over UDP and TCP alike.
    pub sip: SocketAddr,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    db: Option<Db>,
}

/// A switch that has exited after SIGTERM.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Everything it logged, the drain included.
    pub log: String,
}

/// Why a start did not come up (shown in the test's failure).
#[derive(Debug)]
#[allow(dead_code, reason = "the fields are read through Debug")]
enum StartError {
    /// The process ended (e.g. its SIP port was taken after it was picked).
    Exited(ExitStatus),
    /// Still running but not ready in time.
    NotReady(&'static str),
}

impl Switch {
    /// Starts a switch on `db` with the harness's settings.
    pub async fn start(db: Db) -> Switch {
        Switch::start_with(db, &[]).await
    }

    /// Starts a switch on `db`, with `env` (`WASMSWITCH_*` settings, later ones winning) on top
    /// of the harness's settings. Returns once its API answers `/healthz` and SIP answers
    /// OPTIONS with 200 over UDP.
    pub async fn start_with(db: Db, env: &[(&str, &str)]) -> Switch {
        let dir = tempfile::Builder::new()
            .prefix("wasmswitch-e2e-")
            .tempdir()
            .expect("tempdir");
        let operator = operator_key();
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut child = spawn(dir.path(), &db, &operator, port, env);
            let sip = SocketAddr::from(([127, 0, 0, 1], port));
            match ready(&mut child, dir.path(), sip).await {
                Ok(base) => {
                    return Switch {
                        api: Api::new(base, operator),
                        sip,
                        child: Some(child),
                        dir: Some(dir),
                        db: Some(db),
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let retry = matches!(e, StartError::Exited(_));
                    last = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        let log = tail(&dir.path().join("switch.log"), 80);
        let out = tail(&dir.path().join("switch.out"), 20);
        db.remove().await;
        panic!("the switch did not start ({last:?}).\nIts output:\n{out}\nIts log:\n{log}");
    }

    /// Sends SIGTERM and returns at once: the switch starts draining ([`Switch::stop`] then
    /// waits for it to exit).
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            signal(child, "-TERM");
        }
    }

    /// Stops the switch with SIGTERM, as an orchestrator does, and waits for it to exit (the
    /// drain path); removes its database. Returns how it exited and its whole log.
    pub async fn stop(mut self) -> Stopped {
        let mut child = self.child.take().expect("running");
        signal(&child, "-TERM");
        let until = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the switch") {
                break status;
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the switch did not exit within {STOP_TIMEOUT:?} of SIGTERM. Its log:\n{}",
                    self.log_tail(80)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some(db) = self.db.take() {
            db.remove().await;
        }
        Stopped {
            status,
            log: self.log(),
        }
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// Where its log is written.
    pub fn log_path(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().join("switch.log"))
            .unwrap_or_default()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "the switch's folder is kept: {}\nthe end of its log:\n{}",
                kept.display(),
                tail(&kept.join("switch.log"), 40)
            );
        }
        if let Some(db) = self.db.take() {
            db.remove_blocking();
        }
    }
}

/// An operator key for this switch alone (the setting wants at least 32 characters).
fn operator_key() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("wsk_e2e_operator_{}", hex::encode(bytes))
}

fn spawn(dir: &Path, db: &Db, operator: &str, sip_port: u16, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmswitch"));
    cmd.arg("serve").current_dir(dir);
    // Only the settings below: a developer's own WASMSWITCH_* (or a wasmswitch.toml in the
    // working directory, hence the folder of its own) must not change what is tested.
    for (name, _) in std::env::vars() {
        if name.starts_with("WASMSWITCH_") || name == "DATABASE_URL" {
            cmd.env_remove(name);
        }
    }
    cmd.env("DATABASE_URL", &db.url)
        .env("WASMSWITCH_API_LISTEN", "127.0.0.1:0")
        .env("WASMSWITCH_SIP_LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("WASMSWITCH_API_OPERATOR_KEYS", format!("[\"{operator}\"]"))
        // Tests poll records and make many requests from one key and one address.
        .env("WASMSWITCH_API_RATE_LIMIT_PER_SECOND", "100000")
        .env("WASMSWITCH_API_RATE_LIMIT_BURST", "100000")
        // Every peer is 127.0.0.1: a per-source limit would be a limit on the whole test.
        .env("WASMSWITCH_SIP_RATE_LIMIT_PER_SECOND", "0")
        .env("WASMSWITCH_PLUGINS_MAX_INSTANCES", MAX_INSTANCES)
        .env(
            "WASMSWITCH_PLUGINS_MAX_INSTANCES_PER_TENANT",
            MAX_INSTANCES_PER_TENANT,
        )
        .env("WASMSWITCH_PLUGINS_DEADLINE_MS", DEADLINE_MS)
        .env("WASMSWITCH_PLUGINS_CACHE_DIR", component_cache())
        .env("WASMSWITCH_LOG_LEVEL", log_level())
        .envs(env.iter().copied());
    // Files, not pipes: a pipe nobody reads fills and stops the process. Appended, so a retried
    // start keeps the log of the one before.
    let append = |name: &str| {
        File::options()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .expect("log file")
    };
    cmd.stdout(Stdio::from(append("switch.out")))
        .stderr(Stdio::from(append("switch.log")))
        .stdin(Stdio::null());
    cmd.spawn().expect("start wasmswitch serve")
}

/// Waits until the switch says where its API is, the API answers `/healthz` and SIP answers
/// OPTIONS; returns the API's base URL.
async fn ready(child: &mut Child, dir: &Path, sip: SocketAddr) -> Result<String, StartError> {
    let until = Instant::now() + START_TIMEOUT;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let mut base = None;
    let mut healthy = false;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the switch") {
            return Err(StartError::Exited(status));
        }
        if Instant::now() >= until {
            return Err(StartError::NotReady(match (&base, healthy) {
                (None, _) => "it never printed its API address",
                (Some(_), false) => "its API never answered /healthz with 200",
                (Some(_), true) => "it never answered OPTIONS with 200",
            }));
        }
        match &base {
            None => base = api_address(&dir.join("switch.out")),
            Some(b) if !healthy => {
                healthy = http
                    .get(format!("{b}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
            }
            Some(b) => {
                if options(sip).await == Some(200) {
                    return Ok(b.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API's base URL from the line the switch prints once it listens.
fn api_address(stdout: &Path) -> Option<String> {
    let text = std::fs::read_to_string(stdout).ok()?;
    // The last start's line: the file is appended to across attempts.
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("wasmswitch API on "))
        .map(|url| url.trim().to_string())
}

/// Sends one OPTIONS over UDP and returns the status of the answer, if one came within 500 ms.
pub async fn options(sip: SocketAddr) -> Option<u16> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let local = socket.local_addr().ok()?;
    let id = super::unique("e2e");
    let request = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:harness@{local}>;tag={id}\r\n\
         To: <sip:{sip}>\r\n\
         Call-ID: {id}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), sip).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Sends `signal` (`-TERM`, ...) to the process, with kill(1): the harness needs no libc for one
/// signal.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {}: {status}", child.id());
}

/// The last `lines` lines of a file (empty when it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
