use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::uri::Uri;

/// A zone to answer from; a question it has no answer for gets NODATA with an hour's TTL.
#[derive(Default)]
struct Zone(HashMap<Question, Answer>);

const HOUR: Duration = Duration::from_secs(3600);

impl Zone {
    fn set(&mut self, name: &str, records: Records, ttl: u64) -> &mut Zone {
        let kind = records.kind();
        self.0.insert(
            q(name, kind),
            Answer::Records {
                records,
                ttl: Duration::from_secs(ttl),
            },
        );
        self
    }

    fn answer(&mut self, name: &str, kind: RecordKind, answer: Answer) -> &mut Zone {
        self.0.insert(q(name, kind), answer);
        self
    }

    fn a(&mut self, name: &str, ips: &[&str]) -> &mut Zone {
        let ips = ips.iter().map(|i| i.parse().unwrap()).collect();
        self.set(name, Records::A(ips), 3600)
    }

    fn aaaa(&mut self, name: &str, ips: &[&str]) -> &mut Zone {
        let ips = ips.iter().map(|i| i.parse().unwrap()).collect();
        self.set(name, Records::Aaaa(ips), 3600)
    }

    fn srv(&mut self, name: &str, records: &[(u16, u16, u16, &str)]) -> &mut Zone {
        let records = records
            .iter()
            .map(|&(priority, weight, port, target)| Srv {
                priority,
                weight,
                port,
                target: target.into(),
            })
            .collect();
        self.set(name, Records::Srv(records), 3600)
    }

    fn naptr(&mut self, name: &str, records: &[(u16, u16, &str, &str)]) -> &mut Zone {
        let records = records
            .iter()
            .map(|&(order, preference, services, replacement)| Naptr {
                order,
                preference,
                flags: "S".into(),
                services: services.into(),
                regexp: String::new(),
                replacement: replacement.into(),
            })
            .collect();
        self.set(name, Records::Naptr(records), 3600)
    }
}

fn q(name: &str, kind: RecordKind) -> Question {
    Question {
        name: name.into(),
        kind,
    }
}

fn sip(uri: &str) -> Target {
    match Uri::parse(Bytes::copy_from_slice(uri.as_bytes())) {
        Ok(Uri::Sip(u)) => Target::from_uri(&u).unwrap(),
        other => panic!("{uri}: {other:?}"),
    }
}

/// A seeded generator (SplitMix64) as a [`Random`].
fn seeded(mut state: u64) -> impl FnMut(u32) -> u32 {
    move |max| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % (u64::from(max) + 1)) as u32
    }
}

struct Run {
    result: Result<Targets, DnsError>,
    asked: Vec<Question>,
}

fn run_with(target: Target, supported: Supported, zone: &Zone, random: &mut dyn Random) -> Run {
    let now = Instant::now();
    let mut lookup = Lookup::new(target, supported);
    let mut asked = Vec::new();
    for _ in 0..100 {
        match lookup.poll(now, random) {
            Step::Ask(questions) => {
                assert!(!questions.is_empty(), "an empty Ask");
                for question in questions {
                    let answer = zone
                        .0
                        .get(&question)
                        .cloned()
                        .unwrap_or(Answer::NoRecords { ttl: HOUR });
                    lookup.answer(&question, answer);
                    asked.push(question);
                }
            }
            Step::Done(result) => return Run { result, asked },
        }
    }
    panic!("the lookup did not end");
}

fn run(target: Target, zone: &Zone) -> Run {
    run_with(target, Supported::default(), zone, &mut |_| 0)
}

fn list(result: &Result<Targets, DnsError>) -> Vec<(FlowTransport, SocketAddr)> {
    result.as_ref().expect("targets").iter().collect()
}

fn t(transport: FlowTransport, addr: &str) -> (FlowTransport, SocketAddr) {
    (transport, addr.parse().unwrap())
}

use FlowTransport::{Tcp, Tls, Udp};

#[test]
fn numeric_ip_asks_nothing() {
    let zone = Zone::default();
    let r = run(sip("sip:192.0.2.1"), &zone);
    assert!(r.asked.is_empty());
    assert_eq!(list(&r.result), [t(Udp, "192.0.2.1:5060")]);
    assert_eq!(r.result.unwrap().valid_until(), None);

    let r = run(sip("sips:[2001:db8::1]"), &zone);
    assert_eq!(list(&r.result), [t(Tls, "[2001:db8::1]:5061")]);

    let r = run(sip("sip:192.0.2.1:5080;transport=TCP"), &zone);
    assert_eq!(list(&r.result), [t(Tcp, "192.0.2.1:5080")]);

    let r = run(sip("sip:carrier.example;maddr=192.0.2.7"), &zone);
    assert!(r.asked.is_empty());
    assert_eq!(list(&r.result), [t(Udp, "192.0.2.7:5060")]);
}

#[test]
fn numeric_ip_of_a_family_we_lack_is_no_target() {
    let only_v4 = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    let r = run_with(
        sip("sip:[2001:db8::1]"),
        only_v4,
        &Zone::default(),
        &mut |_| 0,
    );
    assert!(matches!(r.result, Err(DnsError::NoTargets { .. })));
}

#[test]
fn explicit_port_skips_naptr_and_srv() {
    let mut zone = Zone::default();
    zone.naptr(
        "carrier.example",
        &[(10, 10, "SIP+D2T", "_sip._tcp.carrier.example")],
    )
    .srv(
        "_sip._tcp.carrier.example",
        &[(0, 0, 5070, "x.carrier.example")],
    )
    .a("carrier.example", &["192.0.2.10"])
    .aaaa("carrier.example", &["2001:db8::10"]);
    let r = run(sip("sip:alice@Carrier.Example.:5080"), &zone);
    assert_eq!(
        r.asked,
        [
            q("carrier.example", RecordKind::A),
            q("carrier.example", RecordKind::Aaaa)
        ]
    );
    assert_eq!(
        list(&r.result),
        [t(Udp, "192.0.2.10:5080"), t(Udp, "[2001:db8::10]:5080")]
    );

    let r = run(sip("sips:carrier.example:5081"), &zone);
    assert_eq!(list(&r.result)[0], t(Tls, "192.0.2.10:5081"));
}

#[test]
fn transport_param_without_port_asks_that_srv_only() {
    let mut zone = Zone::default();
    zone.srv(
        "_sip._tcp.carrier.example",
        &[(0, 0, 5070, "edge.carrier.example")],
    )
    .a("edge.carrier.example", &["192.0.2.20"]);
    let r = run(sip("sip:carrier.example;transport=tcp"), &zone);
    assert_eq!(
        r.asked,
        [
            q("_sip._tcp.carrier.example", RecordKind::Srv),
            q("edge.carrier.example", RecordKind::A),
            q("edge.carrier.example", RecordKind::Aaaa)
        ]
    );
    assert_eq!(list(&r.result), [t(Tcp, "192.0.2.20:5070")]);

    // No SRV for it: the host on that transport's default port.
    zone.a("carrier.example", &["192.0.2.21"]);
    let r = run(sip("sip:carrier.example;transport=tls"), &zone);
    assert_eq!(r.asked[0], q("_sips._tcp.carrier.example", RecordKind::Srv));
    assert_eq!(list(&r.result), [t(Tls, "192.0.2.21:5061")]);
}

#[test]
fn naptr_srv_a_chain_in_naptr_order() {
    let mut zone = Zone::default();
    zone.naptr(
        "carrier.example",
        &[
            (20, 10, "SIP+D2U", "_sip._udp.carrier.example."),
            (10, 20, "SIP+D2T", "_sip._tcp.carrier.example."),
            (10, 10, "SIPS+D2T", "_sips._tcp.carrier.example."),
            (5, 10, "SIP+D2S", "_sip._sctp.carrier.example."),
        ],
    )
    .srv(
        "_sips._tcp.carrier.example",
        &[(0, 0, 5061, "tls.carrier.example.")],
    )
    .srv(
        "_sip._tcp.carrier.example",
        &[(0, 0, 5060, "tcp.carrier.example.")],
    )
    .srv(
        "_sip._udp.carrier.example",
        &[(0, 0, 5060, "udp.carrier.example.")],
    )
    .a("tls.carrier.example", &["192.0.2.1"])
    .a("tcp.carrier.example", &["192.0.2.2"])
    .a("udp.carrier.example", &["192.0.2.3"]);
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(
        list(&r.result),
        [
            t(Tls, "192.0.2.1:5061"),
            t(Tcp, "192.0.2.2:5060"),
            t(Udp, "192.0.2.3:5060")
        ]
    );
    // SCTP is not followed, and no plain SRV name is asked.
    assert!(!r.asked.iter().any(|q| q.name.contains("sctp")));
    assert_eq!(
        r.asked.iter().filter(|q| q.kind == RecordKind::Srv).count(),
        3
    );

    // A caller without TLS skips the SIPS record.
    let no_tls = Supported {
        transports: [Udp, Tcp].into_iter().collect(),
        ..Supported::default()
    };
    let r = run_with(sip("sip:carrier.example"), no_tls, &zone, &mut |_| 0);
    assert_eq!(
        list(&r.result),
        [t(Tcp, "192.0.2.2:5060"), t(Udp, "192.0.2.3:5060")]
    );
}

#[test]
fn sips_uses_tls_only() {
    let mut zone = Zone::default();
    zone.naptr(
        "carrier.example",
        &[
            (10, 10, "SIP+D2U", "_sip._udp.carrier.example"),
            (20, 10, "SIPS+D2T", "_sips._tcp.carrier.example"),
        ],
    )
    .srv(
        "_sips._tcp.carrier.example",
        &[(0, 0, 5061, "tls.carrier.example")],
    )
    .srv(
        "_sip._udp.carrier.example",
        &[(0, 0, 5060, "udp.carrier.example")],
    )
    .a("tls.carrier.example", &["192.0.2.1"])
    .a("udp.carrier.example", &["192.0.2.3"]);
    let r = run(sip("sips:carrier.example"), &zone);
    assert_eq!(list(&r.result), [t(Tls, "192.0.2.1:5061")]);
    assert!(!r.asked.iter().any(|q| q.name.contains("udp")));

    // Without NAPTR, only _sips._tcp is asked, and the fallback is TLS on 5061.
    let mut zone = Zone::default();
    zone.a("carrier.example", &["192.0.2.9"]);
    let r = run(sip("sips:carrier.example"), &zone);
    assert_eq!(
        r.asked
            .iter()
            .filter(|q| q.kind == RecordKind::Srv)
            .cloned()
            .collect::<Vec<_>>(),
        [q("_sips._tcp.carrier.example", RecordKind::Srv)]
    );
    assert_eq!(list(&r.result), [t(Tls, "192.0.2.9:5061")]);

    // A sips: target for a caller without TLS: nothing to ask.
    let udp_only = Supported {
        transports: Transports::NONE.with(Udp),
        ..Supported::default()
    };
    let r = run_with(sip("sips:carrier.example"), udp_only, &zone, &mut |_| 0);
    assert!(r.asked.is_empty());
    assert_eq!(r.result, Err(DnsError::UnsupportedTransport));
}

#[test]
fn without_naptr_plain_srv_in_rfc_order() {
    let mut zone = Zone::default();
    zone.srv(
        "_sip._udp.carrier.example",
        &[(0, 0, 5060, "a.carrier.example")],
    )
    .srv(
        "_sip._tcp.carrier.example",
        &[(0, 0, 5060, "a.carrier.example")],
    )
    .a("a.carrier.example", &["192.0.2.5"]);
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(
        r.asked[..4],
        [
            q("carrier.example", RecordKind::Naptr),
            q("_sips._tcp.carrier.example", RecordKind::Srv),
            q("_sip._tcp.carrier.example", RecordKind::Srv),
            q("_sip._udp.carrier.example", RecordKind::Srv),
        ]
    );
    assert_eq!(
        list(&r.result),
        [t(Tcp, "192.0.2.5:5060"), t(Udp, "192.0.2.5:5060")]
    );
    // The host was resolved once for both transports.
    assert_eq!(
        r.asked.iter().filter(|q| q.kind == RecordKind::A).count(),
        1
    );

    // A UDP-only caller asks only _sip._udp.
    let udp_only = Supported {
        transports: Transports::NONE.with(Udp),
        ..Supported::default()
    };
    let r = run_with(sip("sip:carrier.example"), udp_only, &zone, &mut |_| 0);
    let srv: Vec<_> = r
        .asked
        .iter()
        .filter(|q| q.kind == RecordKind::Srv)
        .collect();
    assert_eq!(srv, [&q("_sip._udp.carrier.example", RecordKind::Srv)]);
}

#[test]
fn no_srv_falls_back_to_the_host_on_5060() {
    let mut zone = Zone::default();
    zone.a("carrier.example", &["192.0.2.30", "192.0.2.31"]);
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(
        list(&r.result),
        [t(Udp, "192.0.2.30:5060"), t(Udp, "192.0.2.31:5060")]
    );
}

#[test]
fn naptr_leading_nowhere_falls_back_to_plain_srv() {
    let mut zone = Zone::default();
    zone.naptr(
        "carrier.example",
        &[(10, 10, "SIP+D2T", "_sip._tcp.elsewhere.example")],
    )
    .srv(
        "_sip._udp.carrier.example",
        &[(0, 0, 5062, "a.carrier.example")],
    )
    .a("a.carrier.example", &["192.0.2.5"]);
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(list(&r.result), [t(Udp, "192.0.2.5:5062")]);
}

#[test]
fn naptr_records_we_cannot_use_are_skipped() {
    let mut zone = Zone::default();
    zone.set(
        "carrier.example",
        Records::Naptr(vec![
            // A terminal "U" record, and one with a regexp: not SIP's form.
            Naptr {
                order: 1,
                preference: 1,
                flags: "U".into(),
                services: "SIP+D2U".into(),
                regexp: "!^.*$!sip:x@y!".into(),
                replacement: ".".into(),
            },
            Naptr {
                order: 2,
                preference: 1,
                flags: "s".into(),
                services: "sip+d2t".into(),
                regexp: String::new(),
                replacement: "_sip._tcp.carrier.example".into(),
            },
        ]),
        60,
    )
    .srv(
        "_sip._tcp.carrier.example",
        &[(0, 0, 5060, "tcp.carrier.example")],
    )
    .a("tcp.carrier.example", &["192.0.2.2"]);
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(list(&r.result), [t(Tcp, "192.0.2.2:5060")]);
}

#[test]
fn nxdomain_is_a_typed_error_and_stops_the_lookup() {
    let mut zone = Zone::default();
    zone.answer(
        "nowhere.example",
        RecordKind::Naptr,
        Answer::NoSuchDomain { ttl: HOUR },
    );
    let r = run(sip("sip:nowhere.example"), &zone);
    assert_eq!(r.asked.len(), 1);
    assert_eq!(
        r.result,
        Err(DnsError::NoSuchDomain {
            name: "nowhere.example".into()
        })
    );

    // With a port, the A/AAAA answers say so.
    let mut zone = Zone::default();
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        zone.answer("nowhere.example", kind, Answer::NoSuchDomain { ttl: HOUR });
    }
    let r = run(sip("sip:nowhere.example:5060"), &zone);
    assert!(matches!(r.result, Err(DnsError::NoSuchDomain { .. })));
}

#[test]
fn srv_target_dot_means_not_offered() {
    let mut zone = Zone::default();
    zone.srv("_sip._udp.carrier.example", &[(0, 0, 0, ".")])
        .a("carrier.example", &["192.0.2.1"]);
    let r = run(sip("sip:carrier.example;transport=udp"), &zone);
    assert!(matches!(r.result, Err(DnsError::NoTargets { .. })));
}

#[test]
fn failures_without_targets_are_lookup_failed() {
    let mut zone = Zone::default();
    for (name, kind) in [
        ("carrier.example", RecordKind::Naptr),
        ("_sips._tcp.carrier.example", RecordKind::Srv),
        ("_sip._tcp.carrier.example", RecordKind::Srv),
        ("_sip._udp.carrier.example", RecordKind::Srv),
        ("carrier.example", RecordKind::A),
        ("carrier.example", RecordKind::Aaaa),
    ] {
        zone.answer(name, kind, Answer::Failed);
    }
    let r = run(sip("sip:carrier.example"), &zone);
    assert_eq!(
        r.result,
        Err(DnsError::LookupFailed {
            name: "carrier.example".into()
        })
    );

    // A failure beside a success still gives the targets found, valid for FAILURE_TTL.
    zone.a("carrier.example", &["192.0.2.1"]);
    let now = Instant::now();
    let mut lookup = Lookup::new(sip("sip:carrier.example"), Supported::default());
    let result = loop {
        match lookup.poll(now, &mut |_| 0) {
            Step::Ask(questions) => {
                for question in questions {
                    lookup.answer(&question, zone.0[&question].clone());
                }
            }
            Step::Done(result) => break result,
        }
    };
    let targets = result.unwrap();
    assert_eq!(targets.as_slice(), [t(Udp, "192.0.2.1:5060")]);
    assert_eq!(targets.valid_until(), Some(now + FAILURE_TTL));
}

#[test]
fn unanswered_questions_count_as_failed() {
    let now = Instant::now();
    let mut lookup = Lookup::new(sip("sip:carrier.example:5060"), Supported::default());
    assert!(matches!(lookup.poll(now, &mut |_| 0), Step::Ask(_)));
    match lookup.poll(now, &mut |_| 0) {
        Step::Done(Err(DnsError::LookupFailed { name })) => assert_eq!(name, "carrier.example"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn valid_until_is_the_least_ttl_consulted() {
    let mut zone = Zone::default();
    zone.answer(
        "carrier.example",
        RecordKind::Naptr,
        Answer::NoRecords {
            ttl: Duration::from_secs(900),
        },
    )
    .set(
        "_sip._udp.carrier.example",
        Records::Srv(vec![Srv {
            priority: 0,
            weight: 0,
            port: 5060,
            target: "a.carrier.example".into(),
        }]),
        120,
    )
    .set(
        "a.carrier.example",
        Records::A(vec![Ipv4Addr::new(192, 0, 2, 1)]),
        60,
    );
    let now = Instant::now();
    let mut lookup = Lookup::new(sip("sip:carrier.example"), Supported::default());
    let targets = loop {
        match lookup.poll(now, &mut |_| 0) {
            Step::Ask(questions) => {
                for question in questions {
                    let answer = zone
                        .0
                        .get(&question)
                        .cloned()
                        .unwrap_or(Answer::NoRecords { ttl: HOUR });
                    lookup.answer(&question, answer);
                }
            }
            Step::Done(result) => break result.unwrap(),
        }
    };
    assert_eq!(targets.valid_until(), Some(now + Duration::from_secs(60)));
    assert!(targets.is_valid_at(now + Duration::from_secs(59)));
    assert!(!targets.is_valid_at(now + Duration::from_secs(60)));
}

#[test]
fn families_choose_queries_and_order() {
    let mut zone = Zone::default();
    zone.a("carrier.example", &["192.0.2.1"])
        .aaaa("carrier.example", &["2001:db8::1"]);
    let target = || sip("sip:carrier.example:5060");
    let v6_first = Supported {
        families: Families::V6ThenV4,
        ..Supported::default()
    };
    let r = run_with(target(), v6_first, &zone, &mut |_| 0);
    assert_eq!(
        list(&r.result),
        [t(Udp, "[2001:db8::1]:5060"), t(Udp, "192.0.2.1:5060")]
    );
    let v4 = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    let r = run_with(target(), v4, &zone, &mut |_| 0);
    assert_eq!(r.asked, [q("carrier.example", RecordKind::A)]);
    assert_eq!(list(&r.result), [t(Udp, "192.0.2.1:5060")]);
}

#[test]
fn hostile_zone_is_bounded() {
    let mut zone = Zone::default();
    let naptr: Vec<(u16, u16, &str, String)> = (0..200)
        .map(|i| (i, 0, "SIP+D2U", format!("_sip._udp.n{i}.carrier.example")))
        .collect();
    let naptr: Vec<(u16, u16, &str, &str)> = naptr
        .iter()
        .map(|(o, p, s, r)| (*o, *p, *s, r.as_str()))
        .collect();
    zone.naptr("carrier.example", &naptr);
    let hosts: Vec<String> = (0..200).map(|i| format!("h{i}.carrier.example")).collect();
    for i in 0..200u16 {
        let srv: Vec<(u16, u16, u16, &str)> = hosts
            .iter()
            .enumerate()
            .map(|(j, h)| (j as u16, 0, 5060, h.as_str()))
            .collect();
        zone.srv(&format!("_sip._udp.n{i}.carrier.example"), &srv);
    }
    for (i, h) in hosts.iter().enumerate() {
        let many: Vec<String> = (0..100).map(|j| format!("198.18.{i}.{j}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        zone.a(h, &many);
    }
    let r = run(sip("sip:carrier.example"), &zone);
    let srv = r.asked.iter().filter(|q| q.kind == RecordKind::Srv).count();
    let addr = r
        .asked
        .iter()
        .filter(|q| matches!(q.kind, RecordKind::A | RecordKind::Aaaa))
        .count();
    assert_eq!(srv, MAX_NAPTR);
    assert_eq!(addr, 2 * MAX_HOSTS);
    let targets = r.result.unwrap();
    assert_eq!(targets.len(), MAX_TARGETS);
    // The first host's addresses first, at most MAX_ADDRESSES_PER_HOST of them.
    assert_eq!(targets.as_slice()[0], t(Udp, "198.18.0.0:5060"));
    assert_eq!(
        targets.as_slice()[MAX_ADDRESSES_PER_HOST],
        t(Udp, "198.18.1.0:5060")
    );
}

fn srv(priority: u16, weight: u16, target: &str) -> Srv {
    Srv {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

#[test]
fn srv_priorities_ascend_whatever_the_draw() {
    let records = [
        srv(20, 100, "c"),
        srv(10, 1, "a"),
        srv(10, 1, "b"),
        srv(30, 0, "d"),
    ];
    for seed in 0..50 {
        let order: Vec<u16> = order_srv(&records, &mut seeded(seed))
            .iter()
            .map(|r| r.priority)
            .collect();
        assert_eq!(order, [10, 10, 20, 30]);
    }
}

#[test]
fn srv_weights_share_first_place_by_weight() {
    let records = [
        srv(0, 10, "light"),
        srv(0, 30, "heavy"),
        srv(0, 60, "heavier"),
    ];
    let mut random = seeded(7);
    let mut first = HashMap::new();
    const DRAWS: u32 = 10_000;
    for _ in 0..DRAWS {
        let order = order_srv(&records, &mut random);
        assert_eq!(order.len(), 3);
        *first.entry(order[0].target.clone()).or_insert(0u32) += 1;
    }
    // Expected 1000, 3000, 6000; the bounds are over 5 standard deviations wide.
    let share = |name: &str| first.get(name).copied().unwrap_or(0);
    assert!((850..1150).contains(&share("light")), "{first:?}");
    assert!((2750..3250).contains(&share("heavy")), "{first:?}");
    assert!((5750..6250).contains(&share("heavier")), "{first:?}");
}

#[test]
fn srv_weight_zero_is_chosen_only_on_a_zero_draw() {
    let records = [srv(0, 100, "weighted"), srv(0, 0, "zero")];
    // A zero draw picks the weight-0 record, put first in the running sum.
    let order = order_srv(&records, &mut |_| 0);
    assert_eq!(order[0].target, "zero");
    // Any other draw picks the weighted one.
    let order = order_srv(&records, &mut |max| max);
    assert_eq!(order[0].target, "weighted");
    assert_eq!(order[1].target, "zero");
    // All weights zero: each draw is zero, the zone's order is kept.
    let records = [srv(0, 0, "a"), srv(0, 0, "b"), srv(0, 0, "c")];
    let order: Vec<&str> = order_srv(&records, &mut seeded(1))
        .iter()
        .map(|r| r.target.as_str())
        .collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn srv_draw_selects_by_running_sum() {
    // Running sums 10, 40: a draw of 10 is still the first, 11 the second.
    let records = [srv(0, 10, "a"), srv(0, 30, "b")];
    let mut draws = [10u32, 0].into_iter();
    let order = order_srv(&records, &mut |_| draws.next().unwrap_or(0));
    assert_eq!(order[0].target, "a");
    let mut draws = [11u32, 0].into_iter();
    let order = order_srv(&records, &mut |_| draws.next().unwrap_or(0));
    assert_eq!(order[0].target, "b");
    assert_eq!(order[1].target, "a");
}

#[test]
fn srv_keeps_the_lowest_priorities_when_capped() {
    let records: Vec<Srv> = (0..40u16).rev().map(|p| srv(p, 0, "x")).collect();
    let order = order_srv(&records, &mut |_| 0);
    assert_eq!(order.len(), MAX_SRV_PER_NAME);
    assert_eq!(order[0].priority, 0);
    assert_eq!(order[MAX_SRV_PER_NAME - 1].priority, 15);
}

#[test]
fn targets_from_uris() {
    assert_eq!(
        sip("sips:carrier.example;transport=tcp").to_string(),
        "sips:carrier.example;transport=tls"
    );
    assert_eq!(sip("sip:Carrier.Example.").name(), Some("carrier.example"));
    for (uri, err) in [
        (
            "sips:carrier.example;transport=udp",
            DnsError::UnsupportedTransport,
        ),
        (
            "sip:carrier.example;transport=sctp",
            DnsError::UnsupportedTransport,
        ),
        (
            "sip:carrier.example;transport=ws",
            DnsError::UnsupportedTransport,
        ),
        (
            "sip:carrier.example;maddr=not..valid",
            DnsError::InvalidHost,
        ),
    ] {
        let Ok(Uri::Sip(u)) = Uri::parse(Bytes::from_static(uri.as_bytes())) else {
            panic!("{uri}");
        };
        assert_eq!(Target::from_uri(&u), Err(err), "{uri}");
    }
    assert_eq!(
        Target::new("[2001:db8::1]", None, None, false)
            .unwrap()
            .to_string(),
        "sip:[2001:db8::1]"
    );
    assert_eq!(
        Target::new("carrier.example", None, Some(Udp), true),
        Err(DnsError::UnsupportedTransport)
    );
    assert_eq!(
        Target::new("bad host", None, None, false),
        Err(DnsError::InvalidHost)
    );
}

#[test]
fn cache_expires_answers_on_the_callers_clock() {
    let mut cache = Cache::new(10);
    let now = Instant::now();
    let a = q("a.example", RecordKind::A);
    let answer = Answer::Records {
        records: Records::A(vec![Ipv4Addr::new(192, 0, 2, 1)]),
        ttl: Duration::from_secs(60),
    };
    cache.insert(a.clone(), answer.clone(), now);
    assert_eq!(
        cache.get(&a, now + Duration::from_secs(20)),
        Some(answer.with_ttl(Duration::from_secs(40)))
    );
    assert_eq!(cache.get(&a, now + Duration::from_secs(60)), None);
    assert!(cache.is_empty());

    // A zero TTL is not kept; a failure is kept for FAILURE_TTL.
    cache.insert(a.clone(), answer.with_ttl(Duration::ZERO), now);
    assert!(cache.is_empty());
    cache.insert(a.clone(), Answer::Failed, now);
    assert_eq!(
        cache.get(&a, now + FAILURE_TTL - Duration::from_millis(1)),
        Some(Answer::Failed)
    );
    assert_eq!(cache.get(&a, now + FAILURE_TTL), None);

    // TTLs beyond a day are trusted for a day.
    cache.insert(
        a.clone(),
        answer.with_ttl(Duration::from_secs(10 * 86_400)),
        now,
    );
    assert!(
        cache
            .get(&a, now + MAX_TTL - Duration::from_secs(1))
            .is_some()
    );
    assert!(cache.get(&a, now + MAX_TTL).is_none());
}

#[test]
fn cache_is_bounded() {
    let mut cache = Cache::new(3);
    let now = Instant::now();
    let answer = |secs| Answer::NoRecords {
        ttl: Duration::from_secs(secs),
    };
    cache.insert(q("short.example", RecordKind::A), answer(10), now);
    cache.insert(q("long.example", RecordKind::A), answer(1000), now);
    cache.insert(q("mid.example", RecordKind::A), answer(100), now);
    cache.insert(q("new.example", RecordKind::A), answer(500), now);
    assert_eq!(cache.len(), 3);
    // The one expiring soonest made room.
    assert!(cache.get(&q("short.example", RecordKind::A), now).is_none());
    assert!(cache.get(&q("new.example", RecordKind::A), now).is_some());
    // Expired ones go first.
    let later = now + Duration::from_secs(200);
    cache.insert(q("other.example", RecordKind::A), answer(500), later);
    assert!(
        cache
            .get(&q("long.example", RecordKind::A), later)
            .is_some()
    );
    assert!(cache.get(&q("new.example", RecordKind::A), later).is_some());
    assert!(
        cache
            .get(&q("other.example", RecordKind::A), later)
            .is_some()
    );
    // Capacity zero keeps nothing.
    let mut none = Cache::new(0);
    none.insert(q("a.example", RecordKind::A), answer(60), now);
    assert!(none.is_empty());
}

#[test]
fn records_of_another_kind_are_no_records() {
    let mut zone = Zone::default();
    // An A question answered with SRV records (a confused or hostile server).
    zone.answer(
        "carrier.example",
        RecordKind::A,
        Answer::Records {
            records: Records::Srv(vec![srv(0, 0, "x.example")]),
            ttl: HOUR,
        },
    );
    let v4 = Supported {
        families: Families::V4,
        ..Supported::default()
    };
    let r = run_with(sip("sip:carrier.example:5060"), v4, &zone, &mut |_| 0);
    assert!(matches!(r.result, Err(DnsError::NoTargets { .. })));
}
