//! wasmswitch-sip against rsip 0.4 and rsipstack 0.7 on the same wire bytes (data/*.sip),
//! in the same run. Results and the command: BENCHMARKS.md, "SIP messages".
//!
//! Groups (ids are `group/peer`):
//!   parse/{invite,ok,register}  bytes -> message -> Summary (top-Via branch, From tag,
//!                               To URI + tag, Call-ID, CSeq number + method, Content-Length)
//!   print/{invite,ok,register}  already-parsed message -> wire bytes (Vec<u8>)
//!   parse_print/invite          bytes -> message -> Summary -> wire bytes (a relay's path)
//! Throughput is the input message's size in bytes.
//!
//!   cargo bench -p wasmswitch-sip-bench --bench messages -- --quick
//!   ... -- --warm-up-time 1 --measurement-time 3      (steadier numbers)
//!   ... -- 'parse/invite'                             (one group)
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wasmswitch_sip_bench::{data, ours, rsip_peer, rsipstack_peer};

fn parse(c: &mut Criterion) {
    for (name, bytes) in data::ALL {
        // Guard: both peers read the same values before we time them.
        assert_eq!(
            rsip_peer::parse_and_read(bytes),
            rsipstack_peer::parse_and_read(bytes)
        );

        let mut g = c.benchmark_group(format!("parse/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter("rsip"), bytes, |b, bytes| {
            b.iter(|| rsip_peer::parse_and_read(black_box(bytes)))
        });
        g.bench_with_input(
            BenchmarkId::from_parameter("rsipstack"),
            bytes,
            |b, bytes| b.iter(|| rsipstack_peer::parse_and_read(black_box(bytes))),
        );
        assert_eq!(
            ours::parse_and_read(bytes),
            rsip_peer::parse_and_read(bytes)
        );
        g.bench_with_input(BenchmarkId::from_parameter("ours"), bytes, |b, bytes| {
            b.iter(|| ours::parse_and_read(black_box(bytes)))
        });
        g.finish();
    }
}

fn print(c: &mut Criterion) {
    for (name, bytes) in data::ALL {
        let mut g = c.benchmark_group(format!("print/{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));

        let m = rsip_peer::parse(bytes);
        assert_eq!(rsip_peer::print(&m), bytes, "rsip prints {name} verbatim");
        g.bench_with_input(BenchmarkId::from_parameter("rsip"), &m, |b, m| {
            b.iter(|| rsip_peer::print(black_box(m)))
        });

        let m = rsipstack_peer::parse(bytes);
        assert_eq!(
            rsipstack_peer::print(&m),
            bytes,
            "rsipstack prints {name} verbatim"
        );
        g.bench_with_input(BenchmarkId::from_parameter("rsipstack"), &m, |b, m| {
            b.iter(|| rsipstack_peer::print(black_box(m)))
        });

        let m = ours::parse(bytes);
        assert_eq!(ours::print(&m), bytes, "ours prints {name} verbatim");
        g.bench_with_input(BenchmarkId::from_parameter("ours"), &m, |b, m| {
            b.iter(|| ours::print(black_box(m)))
        });
        g.finish();
    }
}

fn parse_print(c: &mut Criterion) {
    let bytes = data::INVITE;
    let mut g = c.benchmark_group("parse_print/invite");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_with_input(BenchmarkId::from_parameter("rsip"), bytes, |b, bytes| {
        b.iter(|| {
            let m = rsip_peer::parse(black_box(bytes));
            (rsip_peer::read(&m), rsip_peer::print(&m))
        })
    });
    g.bench_with_input(
        BenchmarkId::from_parameter("rsipstack"),
        bytes,
        |b, bytes| {
            b.iter(|| {
                let m = rsipstack_peer::parse(black_box(bytes));
                (rsipstack_peer::read(&m), rsipstack_peer::print(&m))
            })
        },
    );
    g.bench_with_input(BenchmarkId::from_parameter("ours"), bytes, |b, bytes| {
        b.iter(|| {
            let m = ours::parse(black_box(bytes));
            (ours::read(&m), ours::print(&m))
        })
    });
    g.finish();
}

criterion_group!(benches, parse, print, parse_print);
criterion_main!(benches);
