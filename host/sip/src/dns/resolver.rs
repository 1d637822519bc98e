//! The tokio shell around [`Lookup`]: asks each step's questions at once through
//! `hickory-resolver`, keeps the answers in a [`Cache`] for their TTL, and hands back the
//! [`Targets`].
//!
//! hickory's own cache is turned off: it keeps time with the real clock, ours with the one
//! the caller passes in ([`Resolver::locate_at`]), so TTL expiry is tested without sleeping
//! and there is one cache, not two that disagree. Names are asked fully qualified: a trunk's
//! host is a domain name, never a short name to complete with resolv.conf's search list.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig,
};
use hickory_resolver::lookup::Lookup as HickoryLookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::RngExt;
use tokio::task::JoinSet;

use super::{
    Answer, Cache, DnsError, Lookup, Naptr, Question, Random, RecordKind, Records, Srv, Step,
    Supported, Target, Targets,
};

/// Where the resolver sends its queries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameServers {
    /// The system's: `/etc/resolv.conf` (and `/etc/hosts` for addresses).
    #[default]
    System,
    /// These servers, over UDP and TCP on the port given (no `/etc/hosts`): for operators
    /// who run a resolver for the switch, and for tests.
    Explicit(Vec<SocketAddr>),
}

/// How the resolver is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Where queries go.
    pub name_servers: NameServers,
    /// How long one query waits for an answer. Default 2 s: a request's whole transaction
    /// has 32 s (Timer B) and the location comes first; a resolver that has not answered in
    /// 2 s has usually lost the packet, and the next attempt goes out.
    pub timeout: Duration,
    /// How many times a query is sent before it fails. Default 2.
    pub attempts: usize,
    /// How many answers the cache keeps. Default 1024: a switch's trunks need a dozen each.
    pub cache_size: usize,
}

impl Default for ResolverConfig {
    fn default() -> ResolverConfig {
        ResolverConfig {
            name_servers: NameServers::System,
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 1024,
        }
    }
}

/// Locates SIP servers through DNS (RFC 3263). Cheap to clone: clones share the cache.
#[derive(Debug, Clone)]
pub struct Resolver {
    dns: TokioResolver,
    cache: Arc<Mutex<Cache>>,
}

impl Resolver {
    /// A resolver set up as `config` says. Reads `/etc/resolv.conf` for
    /// [`NameServers::System`].
    pub fn new(config: ResolverConfig) -> Result<Resolver, DnsError> {
        let mut builder = match &config.name_servers {
            NameServers::System => {
                TokioResolver::builder_tokio().map_err(|e| DnsError::Config(e.to_string()))?
            }
            NameServers::Explicit(servers) => {
                if servers.is_empty() {
                    return Err(DnsError::Config("no name server".into()));
                }
                let servers = servers.iter().map(|s| explicit_server(*s)).collect();
                let mut builder = TokioResolver::builder_with_config(
                    HickoryConfig::from_name_servers(servers),
                    TokioRuntimeProvider::default(),
                );
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
        };
        let options = builder.options_mut();
        options.timeout = config.timeout;
        options.attempts = config.attempts.max(1);
        options.cache_size = 0;
        let dns = builder
            .build()
            .map_err(|e| DnsError::Config(e.to_string()))?;
        Ok(Resolver {
            dns,
            cache: Arc::new(Mutex::new(Cache::new(config.cache_size))),
        })
    }

    /// Where to send a request for `target`, in the order to try, for a caller that can use
    /// `supported`.
    pub async fn locate(&self, target: &Target, supported: Supported) -> Result<Targets, DnsError> {
        let mut random = |max: u32| rand::rng().random_range(0..=max);
        self.locate_at(Instant::now(), target, supported, &mut random)
            .await
    }

    /// [`Resolver::locate`] at `now` on the cache's clock, SRV records drawn with `random`:
    /// for tests that advance the clock or need a repeatable order.
    pub async fn locate_at(
        &self,
        now: Instant,
        target: &Target,
        supported: Supported,
        random: &mut (dyn Random + Send),
    ) -> Result<Targets, DnsError> {
        let mut lookup = Lookup::new(target.clone(), supported);
        loop {
            let questions = match lookup.poll(now, random) {
                Step::Done(result) => {
                    match &result {
                        Ok(targets) => {
                            tracing::debug!(%target, targets = ?targets.as_slice(), "located")
                        }
                        Err(error) => tracing::debug!(%target, %error, "not located"),
                    }
                    return result;
                }
                Step::Ask(questions) => questions,
            };
            let mut queries = JoinSet::new();
            for question in questions {
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&question, now);
                match cached {
                    Some(answer) => lookup.answer(&question, answer),
                    None => {
                        let dns = self.dns.clone();
                        queries.spawn(async move {
                            let answer = ask(&dns, &question).await;
                            (question, answer)
                        });
                    }
                }
            }
            while let Some(joined) = queries.join_next().await {
                // A query task only ends by returning (it cannot panic on input); one that
                // did not is left unanswered, which the lookup counts as failed.
                let Ok((question, answer)) = joined else {
                    continue;
                };
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(question.clone(), answer.clone(), now);
                lookup.answer(&question, answer);
            }
        }
    }
}

/// A name server at `addr`, over UDP and TCP (for answers truncated over UDP).
fn explicit_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    server.connections = vec![udp, tcp];
    server
}

async fn ask(dns: &TokioResolver, question: &Question) -> Answer {
    let Ok(name) = Name::from_ascii(format!("{}.", question.name)) else {
        // The lookup only asks names it has checked; nothing to send for another.
        return Answer::Failed;
    };
    let kind = match question.kind {
        RecordKind::Naptr => RecordType::NAPTR,
        RecordKind::Srv => RecordType::SRV,
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
    };
    let answer = convert(question.kind, dns.lookup(name, kind).await);
    tracing::trace!(name = %question.name, kind = ?question.kind, ?answer, "DNS answer");
    answer
}

fn convert(kind: RecordKind, result: Result<HickoryLookup, NetError>) -> Answer {
    match result {
        Ok(lookup) => {
            let answers = lookup.answers();
            // The least TTL of the records, CNAMEs on the way included.
            let ttl =
                Duration::from_secs(u64::from(answers.iter().map(|r| r.ttl).min().unwrap_or(0)));
            let records = match kind {
                RecordKind::Naptr => Records::Naptr(
                    answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NAPTR(n) => Some(Naptr {
                                order: n.order,
                                preference: n.preference,
                                flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                services: String::from_utf8_lossy(&n.services).into_owned(),
                                regexp: String::from_utf8_lossy(&n.regexp).into_owned(),
                                replacement: n.replacement.to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                ),
                RecordKind::Srv => Records::Srv(
                    answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::SRV(s) => Some(Srv {
                                priority: s.priority,
                                weight: s.weight,
                                port: s.port,
                                target: s.target.to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect(),
                ),
                RecordKind::A => Records::A(
                    answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                ),
                RecordKind::Aaaa => Records::Aaaa(
                    answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::AAAA(a) => Some(a.0),
                            _ => None,
                        })
                        .collect(),
                ),
            };
            if records.is_empty() {
                Answer::NoRecords { ttl }
            } else {
                Answer::Records { records, ttl }
            }
        }
        Err(NetError::Dns(HickoryDnsError::NoRecordsFound(none))) => {
            // No SOA, no negative TTL: RFC 2308 says not to keep such an answer.
            let ttl = Duration::from_secs(u64::from(none.negative_ttl.unwrap_or(0)));
            if none.response_code == ResponseCode::NXDomain {
                Answer::NoSuchDomain { ttl }
            } else {
                Answer::NoRecords { ttl }
            }
        }
        Err(error) => {
            tracing::debug!(%error, "DNS query failed");
            Answer::Failed
        }
    }
}
