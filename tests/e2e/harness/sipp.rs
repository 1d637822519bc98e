//! sipp as a real peer: a caller placing calls at the switch, or a trunk taking the calls the
//! switch places. Each run gets a folder of its own for everything sipp writes (the messages it
//! sent and received, unexpected ones, statistics, per-call set-up times), which the test reads
//! when sipp has ended.
//!
//! sipp's exit code says how its calls went: 0 every call succeeded, 1 at least one failed
//! (an unexpected message, a failed check in the scenario, a timeout), 99 it ended without
//! placing or taking a call, 254/255 it could not start (a port taken, a scenario that does
//! not load).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmswitch_sip::digest::{Challenge, Credentials, respond};

use super::{bound, free_port, scenario};

/// Keys every scenario may read, given to each run unless the test gives its own: the caller's
/// number (`[caller]`, an E.164 number as a trunk sends it), how long a call talks (`[hold]`,
/// ms) and how long a caller lets it ring before giving up (`[ring]`, ms). sipp refuses a
/// scenario that reads a key it was not given, so defaults keep scenarios easy to run; unused
/// keys are ignored.
const DEFAULT_KEYS: &[(&str, &str)] =
    &[("caller", "+14155550100"), ("hold", "200"), ("ring", "500")];

/// How long one sipp run may last before sipp itself gives up and fails (`-timeout`, with
/// `-timeout_error`). Each scenario takes well under a second plus its `[hold]`; 30 s turns a
/// lost message into a failure rather than a hung test, with room for a loaded machine.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls per second a caller places (`-r`) unless the test says: 10 spaces a handful of calls
/// over a fraction of a second; a single call starts at once either way.
const DEFAULT_RATE: f64 = 10.0;

/// How long sipp may take to bind its port after it is spawned: it does so before anything
/// else, in milliseconds; 5 s only bounds a hang on a loaded machine.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// sipp's exit code when it cannot bind its socket (the port was taken since it was picked).
const SIPP_CANNOT_BIND: i32 = 254;

/// Ports tried before giving up: each is free when picked, so a second try almost always
/// succeeds; three makes a failure mean something else is wrong.
const START_ATTEMPTS: u32 = 3;

/// The number a caller calls (`-s`, the Request-URI's user) unless the test says.
const DEFAULT_NUMBER: &str = "+15550100";

/// sipp's transport for a run: one UDP socket or one TCP connection for all its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

/// A sipp run to start: a scenario from `tests/e2e/sipp` and its settings. Start it as a
/// callee with [`Sipp::uas`] or as a caller with [`Sipp::uac`].
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: String,
    transport: Transport,
    keys: Vec<(String, String)>,
    args: Vec<String>,
    calls: u32,
    rate: f64,
    number: String,
    timeout: Duration,
}

impl Sipp {
    /// `scenario` is a file name in `tests/e2e/sipp` (`"uas.xml"`, `"pairs/uac-auth.xml"`).
    pub fn new(scenario: &str) -> Sipp {
        Sipp {
            scenario: scenario.into(),
            transport: Transport::Udp,
            keys: Vec::new(),
            args: Vec::new(),
            calls: 1,
            rate: DEFAULT_RATE,
            number: DEFAULT_NUMBER.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn transport(mut self, transport: Transport) -> Sipp {
        self.transport = transport;
        self
    }

    /// `-key name value`: the scenario's `[name]`. A `response="[name]"` attribute, which sipp
    /// reads as a number before keys apply, is filled in by the harness (see uac-refused.xml).
    pub fn key(mut self, name: &str, value: impl ToString) -> Sipp {
        self.keys.push((name.into(), value.to_string()));
        self
    }

    /// Any other sipp arguments (`-au user -ap secret`, `-l 10` ...).
    pub fn args(mut self, args: &[&str]) -> Sipp {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// How many calls to place or take before ending (`-m`). Default 1.
    pub fn calls(mut self, calls: u32) -> Sipp {
        self.calls = calls;
        self
    }

    /// Calls placed per second (`-r`).
    pub fn rate(mut self, per_second: f64) -> Sipp {
        self.rate = per_second;
        self
    }

    /// The number a caller calls (`-s`).
    pub fn number(mut self, number: &str) -> Sipp {
        self.number = number.into();
        self
    }

    /// sipp's own time limit for the whole run (`-timeout`, a failure when reached).
    pub fn timeout(mut self, timeout: Duration) -> Sipp {
        self.timeout = timeout;
        self
    }

    /// Starts a callee on a free port of 127.0.0.1 and returns once it listens there.
    pub fn uas(self) -> Peer {
        self.start(&[])
    }

    /// Starts a caller placing its calls at `target` (from a free port of its own).
    pub fn uac(self, target: SocketAddr) -> Peer {
        let target = target.to_string();
        self.start(&["-s", self.number.as_str(), target.as_str()])
    }

    /// Spawns sipp on a free port and waits until it has bound it (or has already ended, its
    /// work done). The port may be taken between being picked and being bound: sipp then
    /// exits with [`SIPP_CANNOT_BIND`] and another port is tried.
    fn start(&self, extra: &[&str]) -> Peer {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut peer = self.spawn(port, extra);
            let until = Instant::now() + BIND_TIMEOUT;
            let exited = loop {
                if bound(port, self.transport) {
                    return peer;
                }
                let exited = peer
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if exited.is_some() || Instant::now() >= until {
                    break exited;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            match exited.map(|status| status.code()) {
                Some(Some(SIPP_CANNOT_BIND)) => {
                    last = Some(read(&peer.dir.path().join("stderr.log")));
                }
                // Done already (a caller whose calls were quick): its outcome says how.
                Some(_) => return peer,
                None => panic!(
                    "sipp ({}) did not bind 127.0.0.1:{port} within {BIND_TIMEOUT:?}",
                    self.scenario
                ),
            }
        }
        panic!(
            "sipp ({}) found no free port in {START_ATTEMPTS} tries: {last:?}",
            self.scenario
        );
    }

    fn spawn(&self, port: u16, extra: &[&str]) -> Peer {
        let dir = LogDir::new(&self.scenario);
        let path = self.render(dir.path());
        let mut keys: Vec<(String, String)> = DEFAULT_KEYS
            .iter()
            .filter(|(k, _)| !self.keys.iter().any(|(mine, _)| mine == k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        keys.extend(self.keys.iter().cloned());
        let mut cmd = Command::new("sipp");
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&path)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", self.transport.flag()])
            .args(["-m", &self.calls.to_string(), "-r", &self.rate.to_string()])
            .arg("-timeout")
            .arg(format!("{}s", self.timeout.as_secs().max(1)))
            .args(["-timeout_error", "-nostdin"])
            .args(["-trace_msg", "-message_file", "messages.log"])
            .args(["-trace_err", "-error_file", "errors.log"])
            .args(["-trace_stat", "-stf", "stats.csv"])
            // Every call's set-up time (response time 1), in a *_rtt.csv of the folder.
            .args(["-trace_rtt", "-rtt_freq", "1"])
            .args(["-trace_screen", "-screen_file", "screen.log"]);
        for (k, v) in &keys {
            cmd.args(["-key", k, v]);
        }
        cmd.args(&self.args).args(extra);
        // Files, not pipes: its screen, redrawn all the time, would fill a pipe nobody reads.
        let file = |name: &str| File::create(dir.path().join(name)).expect("sipp log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file("stdout.log")))
            .stderr(Stdio::from(file("stderr.log")));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("sipp could not run ({e}): scripts/setup.sh installs it"));
        Peer {
            child: Some(child),
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            scenario: self.scenario.clone(),
        }
    }

    /// The scenario to run: the file itself, or a copy in `dir` with each `response="[key]"`
    /// filled in from the keys.
    fn render(&self, dir: &Path) -> PathBuf {
        let path = scenario(&self.scenario);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !text.contains("response=\"[") {
            return path;
        }
        let mut filled = text;
        for (k, v) in &self.keys {
            filled = filled.replace(&format!("response=\"[{k}]\""), &format!("response=\"{v}\""));
        }
        assert!(
            !filled.contains("response=\"["),
            "{}: a response=\"[key]\" has no -key (give it with Sipp::key)",
            self.scenario
        );
        let out = dir.join("scenario.xml");
        std::fs::write(&out, filled).expect("write the filled-in scenario");
        out
    }
}

/// A running sipp. Dropped, it is killed; [`Peer::finish`] waits for it to end.
#[derive(Debug)]
pub struct Peer {
    /// Where it listens (a callee) or sends from (a caller).
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: LogDir,
    scenario: String,
}

impl Peer {
    /// Waits up to `within` for sipp to end by itself (its calls done, or its own `-timeout`),
    /// else kills it; returns how it went.
    pub async fn finish(mut self, within: Duration) -> Outcome {
        let mut child = self.child.take().expect("running");
        let until = Instant::now() + within;
        let exit = loop {
            if let Some(status) = child.try_wait().expect("wait for sipp") {
                break status.code();
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let dir = std::mem::replace(&mut self.dir, LogDir::empty());
        Outcome {
            exit,
            stats: Stats::read(dir.path()),
            dir,
            scenario: self.scenario.clone(),
        }
    }

    /// The messages it sent and received so far.
    #[allow(dead_code, reason = "for the call tests of issue 11")]
    pub fn messages(&self) -> Vec<Message> {
        Message::read(&self.dir.path().join("messages.log"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a sipp run ended, and what it saw.
#[derive(Debug)]
pub struct Outcome {
    /// sipp's exit code; `None` when the harness killed it for taking too long.
    pub exit: Option<i32>,
    /// Its statistics at the end, if it wrote them.
    pub stats: Option<Stats>,
    dir: LogDir,
    scenario: String,
}

impl Outcome {
    /// Every call succeeded (and there was at least one).
    pub fn success(&self) -> bool {
        self.exit == Some(0)
    }

    /// Fails the test, with what sipp reported, unless every call succeeded.
    #[track_caller]
    pub fn assert_success(&self) {
        assert!(self.success(), "{}", self.report());
    }

    /// What sipp said: exit, counters, unexpected messages and its last screen.
    pub fn report(&self) -> String {
        let p = self.dir.path();
        format!(
            "sipp {} exited {:?} (folder {})\nstats: {:?}\nerrors:\n{}\nstderr:\n{}\nscreen:\n{}",
            self.scenario,
            self.exit,
            p.display(),
            self.stats,
            clip(&read(&p.join("errors.log")), 4000),
            clip(&read(&p.join("stderr.log")), 4000),
            clip(&read(&p.join("screen.log")), 3000),
        )
    }

    /// Every message it sent and received, in order.
    pub fn messages(&self) -> Vec<Message> {
        Message::read(&self.dir.path().join("messages.log"))
    }

    /// The messages it received.
    pub fn received(&self) -> Vec<Message> {
        self.messages().into_iter().filter(|m| !m.sent).collect()
    }

    /// The requests of `method` it received (`"INVITE"`, `"BYE"` ...).
    pub fn received_requests(&self, method: &str) -> Vec<Message> {
        self.received()
            .into_iter()
            .filter(|m| m.method() == Some(method))
            .collect()
    }

    /// The status of the last final response to an INVITE it received.
    pub fn final_invite_status(&self) -> Option<u16> {
        self.received()
            .iter()
            .rev()
            .filter(|m| m.cseq_method() == Some("INVITE"))
            .find_map(|m| m.status().filter(|s| *s >= 200))
    }

    /// Each call's set-up time (response time 1: from the INVITE to the response marked
    /// `rtd="true"`), as sipp measured it, in ms resolution.
    pub fn setup_times(&self) -> Vec<Duration> {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return Vec::new();
        };
        let mut times = Vec::new();
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().ends_with("_rtt.csv") {
                continue;
            }
            // Date_ms;response_time_ms;rtd_no
            for line in read(&e.path()).lines().skip(1) {
                let f: Vec<&str> = line.split(';').collect();
                if let [_, ms, "1", ..] = f[..]
                    && let Ok(ms) = ms.trim().parse::<f64>()
                {
                    times.push(Duration::from_secs_f64(ms / 1000.0));
                }
            }
        }
        times
    }

    /// Checks the digest a callee was answered with: the last challenge it sent (401 or 407)
    /// against the credentials in the next request it received, recomputed with `password`.
    /// sipp itself cannot check a Proxy-Authorization (uas-auth.xml says why).
    pub fn check_digest(&self, user: &str, password: &str) -> Result<(), AuthMismatch> {
        let messages = self.messages();
        let (at, challenge_header, answer_header) = messages
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, m)| match (m.sent, m.status()) {
                (true, Some(407)) => Some((i, "Proxy-Authenticate", "Proxy-Authorization")),
                (true, Some(401)) => Some((i, "WWW-Authenticate", "Authorization")),
                _ => None,
            })
            .ok_or(AuthMismatch::NoChallenge)?;
        let challenge = messages[at]
            .header(challenge_header)
            .and_then(|v| Challenge::parse(v.as_bytes()).ok())
            .ok_or(AuthMismatch::Unparsable)?;
        let request = messages[at..]
            .iter()
            .find(|m| !m.sent && m.header(answer_header).is_some())
            .ok_or(AuthMismatch::NoCredentials)?;
        let creds = request
            .header(answer_header)
            .and_then(|v| Credentials::parse(v.as_bytes()).ok())
            .ok_or(AuthMismatch::Unparsable)?;
        if creds.username != user {
            return Err(AuthMismatch::WrongUser(creds.username));
        }
        if creds.realm != challenge.realm
            || creds.nonce != challenge.nonce
            || creds.algorithm != challenge.algorithm
        {
            return Err(AuthMismatch::NotForTheChallenge);
        }
        let method = request.method().ok_or(AuthMismatch::Unparsable)?;
        let (cnonce, nc) = creds
            .qop
            .as_ref()
            .map(|q| (q.cnonce.clone(), q.count))
            .unwrap_or_default();
        let mut offered = challenge.clone();
        offered.qop = creds.qop.is_some();
        let expected = respond(&offered, user, password, method, &creds.uri, &cnonce, nc);
        if expected.response != creds.response {
            return Err(AuthMismatch::WrongResponse);
        }
        Ok(())
    }
}

/// Why [`Outcome::check_digest`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMismatch {
    /// The callee sent no 401 or 407.
    NoChallenge,
    /// No request after the challenge carried credentials.
    NoCredentials,
    /// A challenge or credentials header that does not parse.
    Unparsable,
    /// Credentials for another user.
    WrongUser(String),
    /// Credentials for another realm, nonce or algorithm than the one challenged.
    NotForTheChallenge,
    /// The digest does not match the password.
    WrongResponse,
}

/// sipp's counters at the end of a run (its `-trace_stat` file, cumulative columns).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Calls that reached the end of the scenario.
    pub successful: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Calls placed or taken.
    pub created: u64,
    /// Messages sipp sent again (UDP retransmissions).
    pub retransmissions: u64,
    /// Calls that failed on an unexpected message.
    pub unexpected: u64,
}

impl Stats {
    fn read(dir: &Path) -> Option<Stats> {
        let text = read(&dir.join("stats.csv"));
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // The column names, then a row per dump: the last is the end of the run.
        let (names, values) = match lines[..] {
            [names, .., values] => (names.split(';'), values.split(';')),
            _ => return None,
        };
        let fields: BTreeMap<&str, &str> = names.zip(values).collect();
        let count = |name: &str| fields.get(name).and_then(|v| v.trim().parse().ok());
        Some(Stats {
            successful: count("SuccessfulCall(C)")?,
            failed: count("FailedCall(C)")?,
            created: count("TotalCallCreated")?,
            retransmissions: count("Retransmissions(C)")?,
            unexpected: count("FailedUnexpectedMessage(C)")?,
        })
    }
}

/// One SIP message in sipp's message log.
#[derive(Debug, Clone)]
pub struct Message {
    /// Sent by sipp (else received).
    pub sent: bool,
    /// The message as on the wire, CRLFs and all.
    pub text: String,
}

impl Message {
    /// Parses the `-trace_msg` log: each message follows a line of dashes and a line saying
    /// whether it was sent or received.
    fn read(path: &Path) -> Vec<Message> {
        // A newline first, so the first separator splits like the others.
        let text = format!("\n{}", read(path));
        let mut out = Vec::new();
        for block in text
            .split("\n-----------------------------------------------")
            .skip(1)
        {
            // " <timestamp>\n<TRANSPORT> message sent|received ...\n\n<message>"
            let mut parts = block.splitn(3, '\n');
            let (_, Some(what), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let sent = what.contains("message sent");
            if !sent && !what.contains("message received") {
                continue;
            }
            let message = rest.strip_prefix('\n').unwrap_or(rest);
            out.push(Message {
                sent,
                text: message.trim_end_matches(['\n', '\r']).to_string() + "\r\n",
            });
        }
        out
    }

    /// The request line or status line.
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("").trim_end()
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<&str> {
        let line = self.first_line();
        if line.starts_with("SIP/2.0 ") {
            return None;
        }
        line.split(' ').next()
    }

    /// The status code, for a response.
    pub fn status(&self) -> Option<u16> {
        self.first_line()
            .strip_prefix("SIP/2.0 ")?
            .get(..3)?
            .parse()
            .ok()
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    /// The first header `name` (case-insensitive; compact forms too), its value trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// Every header `name`, in order (not split at commas).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let compact = match name.to_ascii_lowercase().as_str() {
            "call-id" => Some("i"),
            "from" => Some("f"),
            "to" => Some("t"),
            "via" => Some("v"),
            "contact" => Some("m"),
            "content-length" => Some("l"),
            "content-type" => Some("c"),
            _ => None,
        };
        self.text
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (n, v) = line.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c)))
                    .then(|| v.trim())
            })
            .collect()
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// A run's folder: removed when dropped, unless the test is failing, when it is kept and its
/// path printed.
#[derive(Debug)]
struct LogDir(Option<tempfile::TempDir>);

impl LogDir {
    fn new(scenario: &str) -> LogDir {
        let stem = Path::new(scenario)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        LogDir(Some(
            tempfile::Builder::new()
                .prefix(&format!("wasmswitch-e2e-sipp-{stem}-"))
                .tempdir()
                .expect("tempdir"),
        ))
    }

    fn empty() -> LogDir {
        LogDir(None)
    }

    fn path(&self) -> &Path {
        self.0.as_ref().map_or(Path::new(""), |d| d.path())
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("sipp's files are kept: {}", dir.keep().display());
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
