//! Locating SIP servers (RFC 3263 section 4): which transport, address and port to send a
//! request for a SIP URI to, in the order to try them.
//!
//! Trunks are configured by host name and carriers publish NAPTR records (which transports
//! they offer, in which order) pointing at SRV records (which hosts and ports, with priorities
//! and weights for failover and load sharing), pointing at A/AAAA records. This module is the
//! procedure without the I/O: a [`Lookup`] says which questions to ask ([`Step::Ask`]), is
//! fed the [`Answer`]s, and ends with [`Targets`], the ordered list and until when it holds.
//! [`Cache`] keeps answers for their TTL on a clock the caller passes in. The tokio resolver
//! around both is `dns::Resolver` (feature `dns`, on by default): `Resolver::new(config)`,
//! then `resolver.locate(&target, supported).await`.
//!
//! The procedure, for a URI's host, port, `transport` parameter and scheme:
//! - a numeric IP: no lookup; UDP (TLS for `sips:`) unless the URI names the transport, on
//!   the URI's port or 5060/5061;
//! - a port: A/AAAA only, same transport rule;
//! - a `transport` parameter without a port: the SRV records of that transport;
//! - otherwise NAPTR: the records offering a service we support (`SIP+D2U`, `SIP+D2T`,
//!   `SIPS+D2T`; only `SIPS+D2T` for `sips:`), by order then preference, each followed to
//!   its SRV records; with no usable NAPTR record, SRV `_sips._tcp`, `_sip._tcp` and
//!   `_sip._udp` (those we support); with no SRV record, A/AAAA on 5060 (5061 for TLS).
//!
//! Every usable NAPTR record is followed, not just the first, and every SRV target is kept,
//! so the list carries the failover the zone describes (RFC 3263 section 4.3: on a failure,
//! try the next element). SRV records are ordered per RFC 2782: priority ascending, weighted
//! random draw within a priority, the draw passed in ([`Random`]) so tests are deterministic.
//! A hostile or broken zone cannot make a lookup expand without bound: so many NAPTR records
//! are followed, so many SRV records per name, so many hosts resolved and so many targets
//! returned (the `MAX_*` constants). CNAME chains are the resolver's to follow.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::transaction::FlowTransport;
use crate::uri::{Host, SipUri};

#[cfg(feature = "dns")]
mod resolver;
#[cfg(feature = "dns")]
pub use resolver::{NameServers, Resolver, ResolverConfig};

/// Supported NAPTR records followed at most: a carrier publishes one per transport (three).
pub const MAX_NAPTR: usize = 8;
/// SRV records of one name considered at most, the lowest priorities first: a carrier's
/// failover set is a handful of hosts.
pub const MAX_SRV_PER_NAME: usize = 16;
/// Distinct host names resolved to addresses at most, in the order they would be tried.
pub const MAX_HOSTS: usize = 16;
/// Addresses of one host used at most, per address family.
pub const MAX_ADDRESSES_PER_HOST: usize = 8;
/// Targets returned at most: far more than a request will ever fail over through.
pub const MAX_TARGETS: usize = 32;
/// The longest any answer is trusted, whatever TTL it carries (a day).
pub const MAX_TTL: Duration = Duration::from_secs(86_400);
/// How long a failed query (timeout, server failure) stands before it is asked again: long
/// enough that every call to a trunk whose DNS is down does not wait out the resolver's
/// timeouts, short enough that a recovered server is used soon (RFC 2308 section 7 allows up
/// to five minutes).
pub const FAILURE_TTL: Duration = Duration::from_secs(30);

/// The default port of a transport: 5061 for TLS, 5060 otherwise (RFC 3261 section 19.1.2).
pub fn default_port(transport: FlowTransport) -> u16 {
    match transport {
        FlowTransport::Tls => 5061,
        FlowTransport::Udp | FlowTransport::Tcp => 5060,
    }
}

/// Why no target could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    #[error("{name}: no such domain")]
    NoSuchDomain {
        /// The name, lower case, without the final dot.
        name: String,
    },
    /// The name exists, but nothing usable was found: no SRV target and no address of a
    /// family we can reach, or SRV records saying the service is not offered (target `.`).
    #[error("{name}: no SIP server found")]
    NoTargets {
        /// The name.
        name: String,
    },
    /// Queries failed (timeout, server failure, refusal) and nothing usable was found.
    #[error("{name}: DNS lookup failed")]
    LookupFailed {
        /// The name whose query failed first.
        name: String,
    },
    /// The URI asks for a transport we do not support (`transport=sctp`, `sips:` over UDP,
    /// `sips:` without TLS).
    #[error("transport not supported")]
    UnsupportedTransport,
    /// The host is not a valid domain name or IP address.
    #[error("invalid host")]
    InvalidHost,
    /// The resolver could not be set up (no usable /etc/resolv.conf, no name server).
    #[error("resolver configuration: {0}")]
    Config(String),
}

/// Transports the caller can send on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    udp: bool,
    tcp: bool,
    tls: bool,
}

impl Transports {
    /// UDP, TCP and TLS.
    pub const ALL: Transports = Transports {
        udp: true,
        tcp: true,
        tls: true,
    };
    /// None: the starting point for [`Transports::with`].
    pub const NONE: Transports = Transports {
        udp: false,
        tcp: false,
        tls: false,
    };

    /// This set and `transport`.
    #[must_use]
    pub fn with(mut self, transport: FlowTransport) -> Transports {
        match transport {
            FlowTransport::Udp => self.udp = true,
            FlowTransport::Tcp => self.tcp = true,
            FlowTransport::Tls => self.tls = true,
        }
        self
    }

    /// Whether `transport` is in the set.
    pub fn contains(&self, transport: FlowTransport) -> bool {
        match transport {
            FlowTransport::Udp => self.udp,
            FlowTransport::Tcp => self.tcp,
            FlowTransport::Tls => self.tls,
        }
    }
}

impl FromIterator<FlowTransport> for Transports {
    fn from_iter<I: IntoIterator<Item = FlowTransport>>(iter: I) -> Transports {
        iter.into_iter().fold(Transports::NONE, Transports::with)
    }
}

/// The address families the caller has sockets for, and which it prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Families {
    /// IPv4 only: no AAAA query.
    V4,
    /// IPv6 only: no A query.
    V6,
    /// Both, IPv4 addresses of a host tried first (most SIP carriers are IPv4-first).
    #[default]
    V4ThenV6,
    /// Both, IPv6 addresses of a host tried first.
    V6ThenV4,
}

impl Families {
    fn kinds(self) -> &'static [RecordKind] {
        match self {
            Families::V4 => &[RecordKind::A],
            Families::V6 => &[RecordKind::Aaaa],
            Families::V4ThenV6 => &[RecordKind::A, RecordKind::Aaaa],
            Families::V6ThenV4 => &[RecordKind::Aaaa, RecordKind::A],
        }
    }

    fn allows(self, ip: IpAddr) -> bool {
        match self {
            Families::V4 => ip.is_ipv4(),
            Families::V6 => ip.is_ipv6(),
            Families::V4ThenV6 | Families::V6ThenV4 => true,
        }
    }
}

/// What the caller can use: its transports and its address families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    /// The transports it can send on.
    pub transports: Transports,
    /// The address families it has sockets for.
    pub families: Families,
}

impl Default for Supported {
    /// Every transport, both families, IPv4 first.
    fn default() -> Supported {
        Supported {
            transports: Transports::ALL,
            families: Families::default(),
        }
    }
}

/// Where a request goes, as a SIP URI says: its host, port, `transport` parameter and scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: TargetHost,
    port: Option<u16>,
    transport: Option<FlowTransport>,
    secure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TargetHost {
    Ip(IpAddr),
    /// Lower case, without the final dot.
    Name(String),
}

impl Target {
    /// The target of `uri` (RFC 3263 section 4: the `maddr` parameter if present, else the
    /// host). `transport=tls` is read as TLS and `sips:` with `transport=tcp` as TLS over
    /// TCP; any other transport (`sctp`, `ws`, `sips:` over UDP) is refused.
    pub fn from_uri(uri: &SipUri) -> Result<Target, DnsError> {
        let host = match uri.param("maddr") {
            Some(Some(maddr)) => {
                let text = std::str::from_utf8(maddr).map_err(|_| DnsError::InvalidHost)?;
                TargetHost::parse(text)?
            }
            _ => match uri.host() {
                Host::V4(a) => TargetHost::Ip(IpAddr::V4(*a)),
                Host::V6(a) => TargetHost::Ip(IpAddr::V6(*a)),
                Host::Name(n) => TargetHost::Name(
                    std::str::from_utf8(n)
                        .map_err(|_| DnsError::InvalidHost)?
                        .to_owned(),
                )
                .normalized()?,
            },
        };
        let transport = match uri.param("transport") {
            None => None,
            Some(value) => Some(parse_transport(value.unwrap_or_default(), uri.is_secure())?),
        };
        Ok(Target {
            host,
            port: uri.port(),
            transport,
            secure: uri.is_secure(),
        })
    }

    /// A target from its parts: `host` a domain name or an IP address (IPv6 with or without
    /// brackets), as a trunk's configuration gives them. `secure` is a `sips:` target: TLS
    /// only; `transport` must then be TLS or none.
    pub fn new(
        host: &str,
        port: Option<u16>,
        transport: Option<FlowTransport>,
        secure: bool,
    ) -> Result<Target, DnsError> {
        if secure && matches!(transport, Some(FlowTransport::Udp | FlowTransport::Tcp)) {
            return Err(DnsError::UnsupportedTransport);
        }
        Ok(Target {
            host: TargetHost::parse(host)?,
            port,
            transport,
            secure,
        })
    }

    /// The host name, or `None` for a numeric IP.
    pub fn name(&self) -> Option<&str> {
        match &self.host {
            TargetHost::Name(n) => Some(n),
            TargetHost::Ip(_) => None,
        }
    }

    /// `sips:`: TLS only.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        match &self.host {
            TargetHost::Name(n) => f.write_str(n)?,
            TargetHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]")?,
            TargetHost::Ip(IpAddr::V4(a)) => write!(f, "{a}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.transport {
            write!(f, ";transport={}", transport_param(t))?;
        }
        Ok(())
    }
}

impl TargetHost {
    fn parse(text: &str) -> Result<TargetHost, DnsError> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(TargetHost::Ip(ip));
        }
        TargetHost::Name(text.to_owned()).normalized()
    }

    /// Lower-cases a name and drops its final dot; refuses what cannot be a domain name.
    fn normalized(self) -> Result<TargetHost, DnsError> {
        match self {
            TargetHost::Ip(_) => Ok(self),
            TargetHost::Name(n) => normalize_name(&n)
                .map(TargetHost::Name)
                .ok_or(DnsError::InvalidHost),
        }
    }
}

/// A domain name in the form the lookup keys on: lower case, no final dot; `None` if it
/// cannot be one (empty, over 253 characters, an empty or over-long label, a character other
/// than letters, digits, `-` and `_`).
fn normalize_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| name.to_ascii_lowercase())
}

fn parse_transport(value: &[u8], secure: bool) -> Result<FlowTransport, DnsError> {
    let t = if value.eq_ignore_ascii_case(b"udp") {
        FlowTransport::Udp
    } else if value.eq_ignore_ascii_case(b"tcp") {
        // sips: over TCP is TLS (RFC 3261 section 26.2.2).
        if secure {
            FlowTransport::Tls
        } else {
            FlowTransport::Tcp
        }
    } else if value.eq_ignore_ascii_case(b"tls") {
        // Not registered, but written by many phones and carriers for TLS over TCP.
        FlowTransport::Tls
    } else {
        return Err(DnsError::UnsupportedTransport);
    };
    if secure && t == FlowTransport::Udp {
        return Err(DnsError::UnsupportedTransport);
    }
    Ok(t)
}

fn transport_param(t: FlowTransport) -> &'static str {
    match t {
        FlowTransport::Udp => "udp",
        FlowTransport::Tcp => "tcp",
        FlowTransport::Tls => "tls",
    }
}

/// The SRV name of a transport (RFC 3263 section 4.1): `_sips._tcp` for TLS (whether the URI
/// is `sip:` or `sips:`), `_sip._tcp`, `_sip._udp`.
fn srv_name(transport: FlowTransport, host: &str) -> String {
    let prefix = match transport {
        FlowTransport::Tls => "_sips._tcp",
        FlowTransport::Tcp => "_sip._tcp",
        FlowTransport::Udp => "_sip._udp",
    };
    format!("{prefix}.{host}")
}

/// The kind of record a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// NAPTR (RFC 3403).
    Naptr,
    /// SRV (RFC 2782).
    Srv,
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

/// A DNS question the lookup needs answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The name, lower case, without the final dot (ask for it as a fully qualified name:
    /// no search domains).
    pub name: String,
    /// The record type.
    pub kind: RecordKind,
}

/// A NAPTR record's fields that SIP reads (RFC 3403 section 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Records are processed by ascending order...
    pub order: u16,
    /// ...then by ascending preference.
    pub preference: u16,
    /// `S` for SIP's records: the replacement is an SRV name.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, ...
    pub services: String,
    /// Empty for SIP's records, which use the replacement.
    pub regexp: String,
    /// The SRV name to look up.
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// The port on the target.
    pub port: u16,
    /// The host; `.` (or empty) means the service is not offered at this domain.
    pub target: String,
}

/// The records of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Records {
    /// NAPTR records.
    Naptr(Vec<Naptr>),
    /// SRV records.
    Srv(Vec<Srv>),
    /// IPv4 addresses.
    A(Vec<Ipv4Addr>),
    /// IPv6 addresses.
    Aaaa(Vec<Ipv6Addr>),
}

impl Records {
    fn kind(&self) -> RecordKind {
        match self {
            Records::Naptr(_) => RecordKind::Naptr,
            Records::Srv(_) => RecordKind::Srv,
            Records::A(_) => RecordKind::A,
            Records::Aaaa(_) => RecordKind::Aaaa,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Records::Naptr(r) => r.is_empty(),
            Records::Srv(r) => r.is_empty(),
            Records::A(r) => r.is_empty(),
            Records::Aaaa(r) => r.is_empty(),
        }
    }
}

/// The answer to a [`Question`], with how long it holds from when it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the kind asked for; `ttl` the least of theirs (and of any CNAME on the way).
    Records {
        /// The records.
        records: Records,
        /// How long they hold.
        ttl: Duration,
    },
    /// The name exists but has no records of that kind (NODATA).
    NoRecords {
        /// The negative TTL (the SOA's minimum; zero if the server sent no SOA).
        ttl: Duration,
    },
    /// The name does not exist (NXDOMAIN).
    NoSuchDomain {
        /// The negative TTL.
        ttl: Duration,
    },
    /// No answer: a timeout, a server failure, a refusal. Holds for [`FAILURE_TTL`].
    Failed,
}

impl Answer {
    /// How long the answer holds.
    pub fn ttl(&self) -> Duration {
        match self {
            Answer::Records { ttl, .. }
            | Answer::NoRecords { ttl }
            | Answer::NoSuchDomain { ttl } => (*ttl).min(MAX_TTL),
            Answer::Failed => FAILURE_TTL,
        }
    }

    fn with_ttl(&self, ttl: Duration) -> Answer {
        let mut a = self.clone();
        match &mut a {
            Answer::Records { ttl: t, .. }
            | Answer::NoRecords { ttl: t }
            | Answer::NoSuchDomain { ttl: t } => *t = ttl,
            Answer::Failed => {}
        }
        a
    }
}

/// Uniform random numbers for RFC 2782's weighted draw. Any `FnMut(u32) -> u32` is one.
pub trait Random {
    /// A number from 0 to `max`, both included, each equally likely.
    fn pick(&mut self, max: u32) -> u32;
}

impl<F: FnMut(u32) -> u32> Random for F {
    fn pick(&mut self, max: u32) -> u32 {
        self(max).min(max)
    }
}

/// What a lookup wants next.
#[derive(Debug)]
pub enum Step {
    /// Answer these (in any order, at once if you like) with [`Lookup::answer`], then call
    /// [`Lookup::poll`] again.
    Ask(Vec<Question>),
    /// The lookup is over.
    Done(Result<Targets, DnsError>),
}

/// One location of one target: RFC 3263 section 4 as a state machine without I/O.
#[derive(Debug)]
pub struct Lookup {
    target: Target,
    supported: Supported,
    phase: Phase,
    /// The questions of the current phase and their answers, as they come.
    pending: Vec<(Question, Option<Answer>)>,
    /// Every answer consulted, by question (a name asked twice is asked once).
    answers: HashMap<Question, Answer>,
    /// The least TTL of the answers consulted.
    ttl: Option<Duration>,
    /// The first question that failed, for the error if nothing is found.
    failed: Option<String>,
    /// The services being followed, in order: transport and SRV name.
    services: Vec<(FlowTransport, String)>,
    /// Whether `services` came from NAPTR records (then a miss falls back to plain SRV).
    from_naptr: bool,
    /// The hosts to resolve, in the order they will be tried.
    hosts: Vec<HostPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    transport: FlowTransport,
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Naptr,
    Srv,
    Addresses,
    Done,
}

impl Lookup {
    /// A lookup of `target` for a caller that can use `supported`.
    pub fn new(target: Target, supported: Supported) -> Lookup {
        Lookup {
            target,
            supported,
            phase: Phase::Start,
            pending: Vec::new(),
            answers: HashMap::new(),
            ttl: None,
            failed: None,
            services: Vec::new(),
            from_naptr: false,
            hosts: Vec::new(),
        }
    }

    /// Feeds the answer to a question of the last [`Step::Ask`]; answers to questions not
    /// asked are ignored.
    pub fn answer(&mut self, question: &Question, answer: Answer) {
        // Records of another kind than asked, or none, are no records.
        let answer = match answer {
            Answer::Records { records, ttl }
                if records.kind() != question.kind || records.is_empty() =>
            {
                Answer::NoRecords { ttl }
            }
            other => other,
        };
        if let Some(slot) = self
            .pending
            .iter_mut()
            .find(|(q, a)| q == question && a.is_none())
        {
            slot.1 = Some(answer);
        }
    }

    /// Moves the lookup on: the next questions, or the result. `random` orders SRV records of
    /// equal priority; `now` is when the answers were given, for [`Targets::valid_until`].
    /// A question left unanswered counts as failed.
    pub fn poll(&mut self, now: Instant, random: &mut dyn Random) -> Step {
        for (q, a) in std::mem::take(&mut self.pending) {
            let a = a.unwrap_or(Answer::Failed);
            self.note(&q, &a);
            self.answers.insert(q, a);
        }
        loop {
            let step = match self.phase {
                Phase::Start => self.start(),
                Phase::Naptr => self.after_naptr(),
                Phase::Srv => self.after_srv(random),
                Phase::Addresses => self.after_addresses(now),
                Phase::Done => Some(Step::Done(Err(DnsError::NoTargets {
                    name: self.target.to_string(),
                }))),
            };
            if let Some(step) = step {
                if let Step::Ask(questions) = &step {
                    self.pending = questions.iter().map(|q| (q.clone(), None)).collect();
                }
                if let Step::Done(_) = &step {
                    self.phase = Phase::Done;
                }
                return step;
            }
        }
    }

    fn note(&mut self, q: &Question, a: &Answer) {
        let ttl = a.ttl();
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
        if matches!(a, Answer::Failed) && self.failed.is_none() {
            self.failed = Some(q.name.clone());
        }
    }

    /// Asks `questions`, less those already answered; `None` if none is left to ask.
    fn ask(&mut self, questions: Vec<Question>) -> Option<Step> {
        let mut seen = HashSet::new();
        let new: Vec<Question> = questions
            .into_iter()
            .filter(|q| !self.answers.contains_key(q) && seen.insert(q.clone()))
            .collect();
        (!new.is_empty()).then_some(Step::Ask(new))
    }

    fn start(&mut self) -> Option<Step> {
        let t = &self.target;
        let transport = match t.transport {
            Some(tr) if !self.supported.transports.contains(tr) => {
                return Some(Step::Done(Err(DnsError::UnsupportedTransport)));
            }
            Some(tr) => tr,
            None => match self.default_transport() {
                Some(tr) => tr,
                None => return Some(Step::Done(Err(DnsError::UnsupportedTransport))),
            },
        };
        let name = match &t.host {
            TargetHost::Ip(ip) => {
                let ip = *ip;
                if !self.supported.families.allows(ip) {
                    return Some(Step::Done(Err(DnsError::NoTargets {
                        name: ip.to_string(),
                    })));
                }
                let addr = SocketAddr::new(ip, t.port.unwrap_or(default_port(transport)));
                return Some(Step::Done(Ok(Targets {
                    list: vec![(transport, addr)],
                    valid_until: None,
                })));
            }
            TargetHost::Name(n) => n.clone(),
        };
        if let Some(port) = t.port {
            // RFC 3263 4.2: a port means no SRV.
            self.hosts = vec![HostPort {
                transport,
                host: name,
                port,
            }];
            self.phase = Phase::Addresses;
            return self.ask_addresses();
        }
        if let Some(tr) = t.transport {
            // RFC 3263 4.2: a transport without a port means that transport's SRV records.
            self.services = vec![(tr, srv_name(tr, &name))];
            self.phase = Phase::Srv;
            return self.ask_srv();
        }
        self.phase = Phase::Naptr;
        self.ask(vec![Question {
            name,
            kind: RecordKind::Naptr,
        }])
    }

    /// UDP for `sip:` (TCP, then TLS, if UDP is not supported), TLS for `sips:`
    /// (RFC 3263 4.1 and 4.2).
    fn default_transport(&self) -> Option<FlowTransport> {
        let order: &[FlowTransport] = if self.target.secure {
            &[FlowTransport::Tls]
        } else {
            &[FlowTransport::Udp, FlowTransport::Tcp, FlowTransport::Tls]
        };
        order
            .iter()
            .copied()
            .find(|t| self.supported.transports.contains(*t))
    }

    fn name(&self) -> String {
        self.target.name().unwrap_or_default().to_owned()
    }

    fn after_naptr(&mut self) -> Option<Step> {
        let name = self.name();
        let q = Question {
            name: name.clone(),
            kind: RecordKind::Naptr,
        };
        match self.answers.get(&q) {
            Some(Answer::NoSuchDomain { .. }) => {
                return Some(Step::Done(Err(DnsError::NoSuchDomain { name })));
            }
            Some(Answer::Records {
                records: Records::Naptr(records),
                ..
            }) => {
                self.services = select_naptr(records, self.target.secure, self.supported);
                self.from_naptr = !self.services.is_empty();
            }
            _ => {}
        }
        if self.services.is_empty() {
            self.services = self.plain_srv_services();
        }
        self.phase = Phase::Srv;
        self.ask_srv()
    }

    /// RFC 3263 4.1 without NAPTR: `_sips._tcp`, `_sip._tcp`, `_sip._udp`, as supported.
    fn plain_srv_services(&self) -> Vec<(FlowTransport, String)> {
        let name = self.name();
        let order: &[FlowTransport] = if self.target.secure {
            &[FlowTransport::Tls]
        } else {
            &[FlowTransport::Tls, FlowTransport::Tcp, FlowTransport::Udp]
        };
        order
            .iter()
            .filter(|t| self.supported.transports.contains(**t))
            .map(|t| (*t, srv_name(*t, &name)))
            .collect()
    }

    fn ask_srv(&mut self) -> Option<Step> {
        let questions = self
            .services
            .iter()
            .map(|(_, name)| Question {
                name: name.clone(),
                kind: RecordKind::Srv,
            })
            .collect();
        self.ask(questions)
    }

    fn after_srv(&mut self, random: &mut dyn Random) -> Option<Step> {
        let mut any_srv = false;
        let mut hosts = Vec::new();
        for (transport, name) in &self.services {
            let q = Question {
                name: name.clone(),
                kind: RecordKind::Srv,
            };
            if let Some(Answer::Records {
                records: Records::Srv(records),
                ..
            }) = self.answers.get(&q)
            {
                any_srv |= !records.is_empty();
                for srv in order_srv(records, random) {
                    // Target "." (normalized to nothing): decidedly not offered here.
                    if let Some(host) = normalize_name(&srv.target) {
                        hosts.push(HostPort {
                            transport: *transport,
                            host,
                            port: srv.port,
                        });
                    }
                }
            }
        }
        if !any_srv && self.from_naptr {
            // The NAPTR records led nowhere: try the plain SRV names (those not asked yet).
            self.from_naptr = false;
            self.services = self.plain_srv_services();
            return self.ask_srv();
        }
        if !any_srv {
            // RFC 3263 4.2: no SRV record, so the host itself on the default port.
            let name = self.name();
            let transport = match self.target.transport.or_else(|| self.default_transport()) {
                Some(t) => t,
                None => return Some(Step::Done(Err(DnsError::UnsupportedTransport))),
            };
            hosts.push(HostPort {
                transport,
                host: name,
                port: default_port(transport),
            });
        }
        dedup_in_order(&mut hosts);
        hosts.truncate(MAX_HOSTS);
        self.hosts = hosts;
        self.phase = Phase::Addresses;
        if self.hosts.is_empty() {
            return Some(self.finish_empty());
        }
        self.ask_addresses()
    }

    fn ask_addresses(&mut self) -> Option<Step> {
        let kinds = self.supported.families.kinds();
        let questions = self
            .hosts
            .iter()
            .flat_map(|h| {
                kinds.iter().map(|k| Question {
                    name: h.host.clone(),
                    kind: *k,
                })
            })
            .collect();
        self.ask(questions)
    }

    fn after_addresses(&mut self, now: Instant) -> Option<Step> {
        let kinds = self.supported.families.kinds();
        let mut list = Vec::new();
        let mut no_such_domain = None;
        for h in &self.hosts {
            for kind in kinds {
                let q = Question {
                    name: h.host.clone(),
                    kind: *kind,
                };
                match self.answers.get(&q) {
                    Some(Answer::Records { records, .. }) => {
                        let ips: Vec<IpAddr> = match records {
                            Records::A(a) => a
                                .iter()
                                .take(MAX_ADDRESSES_PER_HOST)
                                .map(|a| IpAddr::V4(*a))
                                .collect(),
                            Records::Aaaa(a) => a
                                .iter()
                                .take(MAX_ADDRESSES_PER_HOST)
                                .map(|a| IpAddr::V6(*a))
                                .collect(),
                            Records::Naptr(_) | Records::Srv(_) => Vec::new(),
                        };
                        for ip in ips {
                            let entry = (h.transport, SocketAddr::new(ip, h.port));
                            if !list.contains(&entry) {
                                list.push(entry);
                            }
                        }
                    }
                    Some(Answer::NoSuchDomain { .. }) => {
                        no_such_domain.get_or_insert_with(|| h.host.clone());
                    }
                    _ => {}
                }
            }
        }
        list.truncate(MAX_TARGETS);
        if list.is_empty() {
            // The URI's own host missing is NXDOMAIN; an SRV target missing is a broken zone.
            if let Some(name) = no_such_domain
                && Some(name.as_str()) == self.target.name()
            {
                return Some(Step::Done(Err(DnsError::NoSuchDomain { name })));
            }
            return Some(self.finish_empty());
        }
        let valid_until = self.ttl.map(|t| now + t);
        Some(Step::Done(Ok(Targets { list, valid_until })))
    }

    fn finish_empty(&self) -> Step {
        Step::Done(Err(match &self.failed {
            Some(name) => DnsError::LookupFailed { name: name.clone() },
            None => DnsError::NoTargets {
                name: self.target.to_string(),
            },
        }))
    }
}

/// The services of `records` we can use, in order: flag `S`, no regexp, a service we support
/// (only `SIPS+D2T` for `sips:`), sorted by order then preference (RFC 3403 4.1), at most
/// [`MAX_NAPTR`].
fn select_naptr(
    records: &[Naptr],
    secure: bool,
    supported: Supported,
) -> Vec<(FlowTransport, String)> {
    let mut usable: Vec<(u16, u16, FlowTransport, String)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && r.regexp.is_empty())
        .filter_map(|r| {
            let transport = if r.services.eq_ignore_ascii_case("SIPS+D2T") {
                FlowTransport::Tls
            } else if secure {
                return None;
            } else if r.services.eq_ignore_ascii_case("SIP+D2T") {
                FlowTransport::Tcp
            } else if r.services.eq_ignore_ascii_case("SIP+D2U") {
                FlowTransport::Udp
            } else {
                return None;
            };
            let name = normalize_name(&r.replacement)?;
            supported.transports.contains(transport).then_some((
                r.order,
                r.preference,
                transport,
                name,
            ))
        })
        .collect();
    // Stable: records the same in order and preference keep the zone's order.
    usable.sort_by_key(|(order, preference, _, _)| (*order, *preference));
    let mut services: Vec<(FlowTransport, String)> =
        usable.into_iter().map(|(_, _, t, n)| (t, n)).collect();
    dedup_in_order(&mut services);
    services.truncate(MAX_NAPTR);
    services
}

/// SRV records in the order to try them (RFC 2782): by ascending priority; within a
/// priority, drawn one by one with probability proportional to weight, weight-0 records
/// first in the running sum so they have a small chance when others weigh more. At most
/// [`MAX_SRV_PER_NAME`] records, the lowest priorities kept.
pub fn order_srv<'a>(records: &'a [Srv], random: &mut dyn Random) -> Vec<&'a Srv> {
    let mut sorted: Vec<&Srv> = records.iter().collect();
    sorted.sort_by_key(|r| r.priority);
    sorted.truncate(MAX_SRV_PER_NAME);
    let mut out = Vec::with_capacity(sorted.len());
    let mut rest = sorted.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|r| r.priority != first.priority)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        // Weight-0 records at the front, the others after, each in the zone's order.
        let mut group: Vec<&Srv> = group
            .iter()
            .filter(|r| r.weight == 0)
            .chain(group.iter().filter(|r| r.weight != 0))
            .copied()
            .collect();
        while !group.is_empty() {
            // At most 16 records of 65535: the sum fits in a u32.
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = random.pick(total);
            let mut running = 0u32;
            let chosen = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            out.push(group.remove(chosen));
        }
        rest = tail;
    }
    out
}

fn dedup_in_order<T: PartialEq>(items: &mut Vec<T>) {
    let mut i = 0;
    while i < items.len() {
        if items[..i].contains(&items[i]) {
            items.remove(i);
        } else {
            i += 1;
        }
    }
}

/// Where to send a request, in the order to try (RFC 3263 section 4.3: on a transport error
/// or a 503, the next one), and until when the list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    list: Vec<(FlowTransport, SocketAddr)>,
    valid_until: Option<Instant>,
}

impl Targets {
    /// When the DNS answers behind the list expire (the least TTL of them); `None` for a
    /// numeric IP, which never expires.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    /// Whether the list may still be used at `now`.
    pub fn is_valid_at(&self, now: Instant) -> bool {
        self.valid_until.is_none_or(|t| now < t)
    }

    /// The targets in order.
    pub fn iter(&self) -> impl Iterator<Item = (FlowTransport, SocketAddr)> + '_ {
        self.list.iter().copied()
    }

    /// The targets in order, as a slice.
    pub fn as_slice(&self) -> &[(FlowTransport, SocketAddr)] {
        &self.list
    }

    /// How many targets (never zero: an empty lookup is an error).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always false; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl IntoIterator for Targets {
    type Item = (FlowTransport, SocketAddr);
    type IntoIter = std::vec::IntoIter<(FlowTransport, SocketAddr)>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

/// DNS answers kept for their TTL, on the caller's clock, at most so many.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Question, (Answer, Instant)>,
    capacity: usize,
}

impl Cache {
    /// A cache of at most `capacity` answers (zero: nothing is kept).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The answer to `question` if one holds at `now`, its TTL what is left of it.
    pub fn get(&mut self, question: &Question, now: Instant) -> Option<Answer> {
        let (answer, expires) = self.entries.get(question)?;
        match expires.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Some(answer.with_ttl(left)),
            _ => {
                self.entries.remove(question);
                None
            }
        }
    }

    /// Keeps `answer`, given at `now`, for its TTL. When full, expired answers go first,
    /// then those expiring soonest.
    pub fn insert(&mut self, question: Question, answer: Answer, now: Instant) {
        let ttl = answer.ttl();
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&question) {
            self.entries.retain(|_, (_, expires)| *expires > now);
            while self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(q, _)| q.clone());
                match soonest {
                    Some(q) => self.entries.remove(&q),
                    None => break,
                };
            }
        }
        self.entries.insert(question, (answer, now + ttl));
    }

    /// How many answers are kept (some may have expired).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
