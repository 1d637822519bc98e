//! RFC 3263 server location against a DNS server the test starts on 127.0.0.1: the
//! NAPTR -> SRV -> A chain, SRV priorities and weights, the fallback to A on 5060, NXDOMAIN,
//! numeric IPs and explicit ports that skip SRV, `sips:` choosing TLS only, TTL expiry on an
//! advanced clock, an answer truncated over UDP fetched over TCP, and a server that does not
//! answer.
//!
//! The server is a small responder over `hickory-proto`'s message codec: it answers from a
//! table the test fills (and may change), says NXDOMAIN for names it has nothing for, sends
//! an SOA with every negative answer (so they carry a negative TTL), and logs every question
//! so a test can tell what the resolver asked and what it took from its cache.
#![cfg(feature = "dns")]
#![allow(clippy::unwrap_used)] // a test panics on what it never expects

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, NAPTR, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use wasmswitch_sip::dns::{
    DnsError, Families, NameServers, Resolver, ResolverConfig, Supported, Target, Transports,
};
use wasmswitch_sip::transaction::FlowTransport::{self, Tcp, Tls, Udp};

/// The records the server answers with, by lower-case name without the final dot.
#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
    /// Questions seen, in order.
    asked: Vec<(String, RecordType)>,
    /// A UDP answer with more records than this is sent truncated (TC set, no records).
    udp_max_records: usize,
}

type Shared = Arc<Mutex<Zone>>;

fn name(s: &str) -> Name {
    Name::from_ascii(format!("{}.", s.trim_end_matches('.'))).unwrap()
}

fn key(s: &str, kind: RecordType) -> (String, RecordType) {
    (s.trim_end_matches('.').to_ascii_lowercase(), kind)
}

impl Zone {
    fn put(&mut self, owner: &str, ttl: u32, data: RData) {
        let kind = data.record_type();
        self.records
            .entry(key(owner, kind))
            .or_default()
            .push(Record::from_rdata(name(owner), ttl, data));
    }

    fn a(&mut self, owner: &str, ip: &str) {
        self.put(owner, 3600, RData::A(A(ip.parse().unwrap())));
    }

    fn aaaa(&mut self, owner: &str, ip: &str) {
        self.put(owner, 3600, RData::AAAA(AAAA(ip.parse().unwrap())));
    }

    fn srv(&mut self, owner: &str, priority: u16, weight: u16, port: u16, target: &str) {
        let data = RData::SRV(SRV::new(priority, weight, port, name(target)));
        self.put(owner, 3600, data);
    }

    fn naptr(&mut self, owner: &str, order: u16, preference: u16, service: &str, srv: &str) {
        let data = RData::NAPTR(NAPTR::new(
            order,
            preference,
            b"S".to_vec().into(),
            service.as_bytes().into(),
            Box::default(),
            name(srv),
        ));
        self.put(owner, 3600, data);
    }

    fn asked(&self) -> Vec<(String, RecordType)> {
        self.asked.clone()
    }

    /// The answer to `request`, as bytes.
    fn respond(&mut self, request: &[u8], udp: bool) -> Option<Vec<u8>> {
        let request = Message::from_vec(request).ok()?;
        let query = request.queries.first()?.clone();
        let owner = query.name().to_ascii();
        let kind = query.query_type();
        self.asked.push(key(&owner, kind));
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.metadata.message_type = MessageType::Response;
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_query(query.clone());
        let bare = owner.trim_end_matches('.').to_ascii_lowercase();
        match self.records.get(&key(&owner, kind)) {
            Some(records) if udp && records.len() > self.udp_max_records => {
                response.metadata.truncation = true;
            }
            Some(records) => {
                response.add_answers(records.iter().cloned());
            }
            None => {
                let exists = self.records.keys().any(|(n, _)| *n == bare);
                if !exists {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                // Negative answers hold for a minute.
                let soa = SOA::new(
                    name("ns.test"),
                    name("hostmaster.test"),
                    1,
                    3600,
                    600,
                    86400,
                    60,
                );
                response.add_authority(Record::from_rdata(name("test"), 60, RData::SOA(soa)));
            }
        }
        response.to_vec().ok()
    }
}

/// Starts the server on 127.0.0.1, UDP and TCP on the same port; it stops with the runtime.
async fn serve(zone: Shared) -> SocketAddr {
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(port).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let udp_zone = zone.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let reply = udp_zone.lock().unwrap().respond(&buf[..n], true);
            if let Some(reply) = reply {
                let _ = udp.send_to(&reply, from).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let zone = zone.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut request = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    let reply = zone.lock().unwrap().respond(&request, false);
                    let Some(reply) = reply else { return };
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if stream.write_u16(len).await.is_err()
                        || stream.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn resolver(server: SocketAddr) -> Resolver {
    Resolver::new(ResolverConfig {
        name_servers: NameServers::Explicit(vec![server]),
        timeout: Duration::from_millis(500),
        ..ResolverConfig::default()
    })
    .unwrap()
}

async fn setup(fill: impl FnOnce(&mut Zone)) -> (Shared, Resolver) {
    let mut zone = Zone {
        udp_max_records: usize::MAX,
        ..Zone::default()
    };
    fill(&mut zone);
    let zone = Arc::new(Mutex::new(zone));
    let server = serve(zone.clone()).await;
    (zone, resolver(server))
}

fn target(host: &str, port: Option<u16>, transport: Option<FlowTransport>, secure: bool) -> Target {
    Target::new(host, port, transport, secure).unwrap()
}

fn t(transport: FlowTransport, addr: &str) -> (FlowTransport, SocketAddr) {
    (transport, addr.parse().unwrap())
}

async fn locate(
    resolver: &Resolver,
    target: &Target,
) -> Result<Vec<(FlowTransport, SocketAddr)>, DnsError> {
    resolver
        .locate(target, Supported::default())
        .await
        .map(|targets| targets.into_iter().collect())
}

fn carrier(zone: &mut Zone) {
    zone.naptr(
        "carrier.test",
        10,
        10,
        "SIPS+D2T",
        "_sips._tcp.carrier.test",
    );
    zone.naptr("carrier.test", 20, 10, "SIP+D2U", "_sip._udp.carrier.test");
    zone.naptr("carrier.test", 10, 20, "SIP+D2T", "_sip._tcp.carrier.test");
    zone.srv("_sips._tcp.carrier.test", 0, 0, 5061, "edge.carrier.test");
    zone.srv("_sip._tcp.carrier.test", 0, 0, 5060, "edge.carrier.test");
    zone.srv("_sip._udp.carrier.test", 0, 0, 5070, "udp.carrier.test");
    zone.a("edge.carrier.test", "192.0.2.1");
    zone.aaaa("edge.carrier.test", "2001:db8::1");
    zone.a("udp.carrier.test", "192.0.2.2");
    zone.a("carrier.test", "192.0.2.99");
}

#[tokio::test]
async fn naptr_srv_a_chain() {
    let (zone, resolver) = setup(carrier).await;
    let found = locate(&resolver, &target("Carrier.Test", None, None, false))
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            t(Tls, "192.0.2.1:5061"),
            t(Tls, "[2001:db8::1]:5061"),
            t(Tcp, "192.0.2.1:5060"),
            t(Tcp, "[2001:db8::1]:5060"),
            t(Udp, "192.0.2.2:5070"),
        ]
    );
    let asked = zone.lock().unwrap().asked();
    assert_eq!(asked[0], key("carrier.test", RecordType::NAPTR));
    // The NAPTR records named the SRV names: nothing else was asked, and the host's own
    // address was not needed.
    assert!(!asked.contains(&key("carrier.test", RecordType::A)));
    assert_eq!(
        asked.iter().filter(|(_, k)| *k == RecordType::SRV).count(),
        3
    );

    // A caller with IPv4 and UDP only.
    let supported = Supported {
        transports: Transports::NONE.with(Udp),
        families: Families::V4,
    };
    let found: Vec<_> = resolver
        .locate(&target("carrier.test", None, None, false), supported)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(found, [t(Udp, "192.0.2.2:5070")]);
}

#[tokio::test]
async fn sips_chooses_tls_only() {
    let (zone, resolver) = setup(carrier).await;
    let found = locate(&resolver, &target("carrier.test", None, None, true))
        .await
        .unwrap();
    assert_eq!(
        found,
        [t(Tls, "192.0.2.1:5061"), t(Tls, "[2001:db8::1]:5061")]
    );
    let asked = zone.lock().unwrap().asked();
    assert!(
        !asked.iter().any(|(n, _)| n.starts_with("_sip.")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn srv_priorities_and_weights() {
    let (zone, resolver) = setup(|zone| {
        zone.srv(
            "_sip._udp.weighted.test",
            10,
            10,
            5060,
            "light.weighted.test",
        );
        zone.srv(
            "_sip._udp.weighted.test",
            10,
            30,
            5060,
            "heavy.weighted.test",
        );
        zone.srv(
            "_sip._udp.weighted.test",
            20,
            0,
            5060,
            "backup.weighted.test",
        );
        zone.a("light.weighted.test", "192.0.2.10");
        zone.a("heavy.weighted.test", "192.0.2.30");
        zone.a("backup.weighted.test", "192.0.2.99");
    })
    .await;
    let target = target("weighted.test", None, Some(Udp), false);
    let supported = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    // A seeded SplitMix64, so the draws and the counts below are the same every run.
    let mut state = 42u64;
    let mut random = move |max: u32| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % (u64::from(max) + 1)) as u32
    };
    let now = Instant::now();
    let mut heavy_first = 0;
    const DRAWS: usize = 2000;
    for _ in 0..DRAWS {
        let found: Vec<_> = resolver
            .locate_at(now, &target, supported, &mut random)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(found.len(), 3);
        // The backup (priority 20) is always last.
        assert_eq!(found[2], t(Udp, "192.0.2.99:5060"));
        if found[0] == t(Udp, "192.0.2.30:5060") {
            heavy_first += 1;
        }
    }
    // Expected 1500 of 2000 (weight 30 of 40); the bounds are 5 standard deviations.
    assert!((1403..1597).contains(&heavy_first), "{heavy_first}");
    // Every answer came once from the server, then from the cache.
    let asked = zone.lock().unwrap().asked();
    assert_eq!(asked.len(), 4, "{asked:?}");
}

#[tokio::test]
async fn no_srv_falls_back_to_a_on_5060() {
    let (_zone, resolver) = setup(|zone| {
        zone.a("plain.test", "192.0.2.40");
        zone.aaaa("plain.test", "2001:db8::40");
    })
    .await;
    assert_eq!(
        locate(&resolver, &target("plain.test", None, None, false))
            .await
            .unwrap(),
        [t(Udp, "192.0.2.40:5060"), t(Udp, "[2001:db8::40]:5060")]
    );
    assert_eq!(
        locate(&resolver, &target("plain.test", None, None, true))
            .await
            .unwrap(),
        [t(Tls, "192.0.2.40:5061"), t(Tls, "[2001:db8::40]:5061")]
    );
}

#[tokio::test]
async fn nxdomain_is_a_typed_error() {
    let (zone, resolver) = setup(carrier).await;
    assert_eq!(
        locate(&resolver, &target("nowhere.test", None, None, false)).await,
        Err(DnsError::NoSuchDomain {
            name: "nowhere.test".into()
        })
    );
    // Known not to exist after the NAPTR answer: nothing more was asked.
    assert_eq!(zone.lock().unwrap().asked().len(), 1);
    assert!(matches!(
        locate(&resolver, &target("nowhere.test", Some(5060), None, false)).await,
        Err(DnsError::NoSuchDomain { .. })
    ));
}

#[tokio::test]
async fn numeric_ip_and_explicit_port_skip_srv() {
    let (zone, resolver) = setup(carrier).await;
    assert_eq!(
        locate(&resolver, &target("198.51.100.7", None, None, false))
            .await
            .unwrap(),
        [t(Udp, "198.51.100.7:5060")]
    );
    assert_eq!(
        locate(
            &resolver,
            &target("[2001:db8::7]", Some(5080), Some(Tcp), false)
        )
        .await
        .unwrap(),
        [t(Tcp, "[2001:db8::7]:5080")]
    );
    assert!(zone.lock().unwrap().asked().is_empty());

    assert_eq!(
        locate(&resolver, &target("carrier.test", Some(5090), None, false))
            .await
            .unwrap(),
        [t(Udp, "192.0.2.99:5090")]
    );
    let mut asked = zone.lock().unwrap().asked();
    asked.sort_by_key(|(_, k)| u16::from(*k));
    assert_eq!(
        asked,
        [
            key("carrier.test", RecordType::A),
            key("carrier.test", RecordType::AAAA)
        ]
    );
}

#[tokio::test]
async fn answers_expire_with_their_ttl() {
    let (zone, resolver) = setup(|zone| {
        zone.put("ttl.test", 60, RData::A(A("192.0.2.50".parse().unwrap())));
    })
    .await;
    let target = target("ttl.test", Some(5060), None, false);
    let v4 = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    let t0 = Instant::now();
    let first = resolver
        .locate_at(t0, &target, v4, &mut |_| 0)
        .await
        .unwrap();
    assert_eq!(first.as_slice(), [t(Udp, "192.0.2.50:5060")]);
    assert_eq!(first.valid_until(), Some(t0 + Duration::from_secs(60)));

    // The zone changes; within the TTL the cached answer stands, and the server is not asked.
    {
        let mut zone = zone.lock().unwrap();
        zone.records.clear();
        zone.put("ttl.test", 60, RData::A(A("192.0.2.51".parse().unwrap())));
    }
    let t30 = t0 + Duration::from_secs(30);
    let cached = resolver
        .locate_at(t30, &target, v4, &mut |_| 0)
        .await
        .unwrap();
    assert_eq!(cached.as_slice(), [t(Udp, "192.0.2.50:5060")]);
    assert_eq!(cached.valid_until(), Some(t0 + Duration::from_secs(60)));
    assert_eq!(zone.lock().unwrap().asked().len(), 1);

    // At the TTL the answer is asked again, and the new address comes back.
    let t60 = t0 + Duration::from_secs(60);
    let fresh = resolver
        .locate_at(t60, &target, v4, &mut |_| 0)
        .await
        .unwrap();
    assert_eq!(fresh.as_slice(), [t(Udp, "192.0.2.51:5060")]);
    assert_eq!(zone.lock().unwrap().asked().len(), 2);
}

#[tokio::test]
async fn truncated_udp_answer_is_fetched_over_tcp() {
    let (_zone, resolver) = setup(|zone| {
        zone.udp_max_records = 4;
        for i in 0..12u16 {
            let host = format!("h{i}.big.test");
            zone.srv("_sip._tcp.big.test", i, 0, 5060, &host);
            zone.a(&host, &format!("192.0.2.{}", 100 + i));
        }
    })
    .await;
    let v4 = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    let found: Vec<_> = resolver
        .locate(&target("big.test", None, Some(Tcp), false), v4)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected: Vec<_> = (0..12)
        .map(|i| t(Tcp, &format!("192.0.2.{}:5060", 100 + i)))
        .collect();
    assert_eq!(found, expected);
}

#[tokio::test]
async fn silent_server_is_lookup_failed() {
    // A socket that reads nothing: every query times out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = Resolver::new(ResolverConfig {
        name_servers: NameServers::Explicit(vec![silent.local_addr().unwrap()]),
        timeout: Duration::from_millis(100),
        attempts: 1,
        ..ResolverConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let result = locate(&resolver, &target("carrier.test", Some(5060), None, false)).await;
    assert_eq!(
        result,
        Err(DnsError::LookupFailed {
            name: "carrier.test".into()
        })
    );
    // Given up after the configured timeout, not the resolver's default 5 s per attempt.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn explicit_config_needs_a_server() {
    assert!(matches!(
        Resolver::new(ResolverConfig {
            name_servers: NameServers::Explicit(Vec::new()),
            ..ResolverConfig::default()
        }),
        Err(DnsError::Config(_))
    ));
}
