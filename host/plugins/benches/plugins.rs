//! Plugin runtime benchmarks: what a call costs in the plugin layer.
//!
//! Run: `cargo bench -p wasmswitch-plugins --bench plugins` (BENCHMARKS.md records the figures).
//!
//! - `route/fresh-instance/rust-router`: a new call's whole plugin cost, with the warm pool off:
//!   a fresh instance (store + instantiate) and one `route()`, then the instance is dropped.
//!   Production settings otherwise: pooling allocator, epoch deadline, no fuel. A latency pass
//!   prints p50/p99 as well. This is the CPU each call costs, wherever it is spent.
//! - `paced/{plugin}/{fresh,warm-pool}`: the latency a call sees on a 2-worker tokio runtime,
//!   with calls arriving at a steady rate (routers 1,000 calls/s, twice sipp's 500 CPS on this
//!   machine; IVRs 100 calls/s) and back to back: a fresh instance per call (the default)
//!   against the warm pool (instances made ahead on another worker). Printed, not a criterion
//!   group, because the arrival rate is part of what is measured.
//! - `ivr/event/{rust,python,js}`: one IVR event round trip on a warm instance.
//! - `ivr/fresh-instance+started/{rust,python,js}`: a new IVR call's cost; memory per instance is
//!   printed beside it.
//! - `load/{compile,cached}/rust-router`: compiling a component vs loading it from the cache; the
//!   Python and JavaScript components are timed once each (a cold compile takes seconds).
//! - `event/fresh-instance+first/{rust-router,rust-ivr}-{0.1,0.2},tour-0.2`: a new call's cost on
//!   the 0.2 event model the calls layer uses: a fresh instance and its first event (`incoming`,
//!   or `handed-over` for the IVR), through the 0.1 adapter for the 0.1 examples and directly
//!   for the 0.2 tour.
//!
//! `route`, `paced` and `ivr` run the frozen 0.1.0 builds of the router and the Rust and Python
//! menus (`plugins/fixtures/v0.1.0`, the same code the examples had when those figures were first
//! taken) through contract 0.1's own functions, so their figures compare with earlier runs;
//! `event` is the path calls take now, for the 0.1 builds (through the adapter) and the 0.2
//! examples.

/// The frozen 0.1.0 build of an example, by file name.
fn frozen_v0_1(name: &str) -> String {
    let path = artifacts::frozen::dir("0.1.0").join(format!("{name}.wasm"));
    path.to_string_lossy().into_owned()
}

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use wasmswitch_plugin_artifacts as artifacts;
use wasmswitch_plugins::model::v0_1::{IvrEvent, IvrStarted};
use wasmswitch_plugins::model::{CallEvent, HandOver};
use wasmswitch_plugins::{LoadSource, PluginId, Runtime, RuntimeConfig};

mod setup;

use setup::{call, load, tokio};

fn runtime(cache: Option<std::path::PathBuf>) -> Runtime {
    runtime_with(cache, 0)
}

fn runtime_with(cache: Option<std::path::PathBuf>, warm_instances: usize) -> Runtime {
    setup::runtime(RuntimeConfig {
        max_instances: 1000,
        cache_dir: cache,
        warm_instances,
        ..RuntimeConfig::default()
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn route(c: &mut Criterion) {
    let rt = runtime(None);
    let router = load(&rt, &frozen_v0_1("router"));
    let tokio = tokio();
    let call = call();
    let mut g = c.benchmark_group("route");
    g.bench_function("fresh-instance/rust-router", |b| {
        b.iter_custom(|iters| {
            tokio.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let mut i = router
                        .instantiate(Default::default())
                        .await
                        .expect("instance");
                    std::hint::black_box(i.route_v0_1(&call).await.expect("route"));
                }
                t.elapsed()
            })
        })
    });
    g.finish();

    // Latency distribution of the same operation, one sample per call.
    let mut samples = Vec::with_capacity(20_000);
    tokio.block_on(async {
        for _ in 0..20_000 {
            let t = Instant::now();
            let mut i = router
                .instantiate(Default::default())
                .await
                .expect("instance");
            std::hint::black_box(i.route_v0_1(&call).await.expect("route"));
            samples.push(t.elapsed());
        }
    });
    samples.sort();
    println!(
        "route/fresh-instance/rust-router latency over {} calls: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}

/// What a paced call does with its instance.
#[derive(Clone, Copy)]
enum Op {
    Route,
    IvrStarted,
}

/// Per-call latency of `op` on a fresh instance of `plugin`, with `warm` instances kept ready
/// (0: each made on demand), calls arriving every `gap` (none: back to back). The instance is
/// dropped after the timing, as a call's would be at hangup.
fn paced_latency(
    plugin: &str,
    op: Op,
    gap: Option<Duration>,
    calls: usize,
    warm: usize,
) -> (Vec<Duration>, usize) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let cache = std::env::temp_dir().join("wasmswitch-bench-cache");
    let rt = runtime_with(Some(cache), warm);
    let version = load(&rt, plugin);
    let call = call();
    let started = IvrEvent::Started(IvrStarted {
        call: call.clone(),
        ..Default::default()
    });
    tokio.block_on(async {
        // Fill the pool once, as the first call of a version does.
        drop(
            version
                .instantiate(Default::default())
                .await
                .expect("instance"),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut samples = Vec::with_capacity(calls);
        let mut hits = 0;
        let mut next = Instant::now();
        for _ in 0..calls {
            if let Some(gap) = gap {
                next += gap;
                tokio::time::sleep_until(next.into()).await;
            }
            let ready = version.warm_instances() > 0;
            let t = Instant::now();
            let mut i = version
                .instantiate(Default::default())
                .await
                .expect("instance");
            match op {
                Op::Route => {
                    std::hint::black_box(i.route_v0_1(&call).await.expect("route"));
                }
                Op::IvrStarted => {
                    std::hint::black_box(i.on_ivr_event_v0_1(&started).await.expect("started"));
                }
            }
            samples.push(t.elapsed());
            hits += usize::from(ready);
            drop(i);
        }
        samples.sort();
        (samples, hits)
    })
}

fn paced(_: &mut Criterion) {
    let runs = [
        (
            "rust-router",
            &*frozen_v0_1("router"),
            Op::Route,
            1_000,
            10_000,
        ),
        (
            "ivr/rust",
            &*frozen_v0_1("ivr-menu"),
            Op::IvrStarted,
            100,
            2_000,
        ),
        (
            "ivr/python",
            &*frozen_v0_1("ivr-menu-py"),
            Op::IvrStarted,
            100,
            2_000,
        ),
        (
            "ivr/js",
            &*frozen_v0_1("ivr-menu-js"),
            Op::IvrStarted,
            100,
            2_000,
        ),
    ];
    for (name, plugin, op, rate, calls) in runs {
        for (label, gap) in [
            (
                format!("{rate} calls/s"),
                Some(Duration::from_secs(1) / rate),
            ),
            ("back to back".to_string(), None),
        ] {
            for (mode, warm) in [("fresh", 0), ("warm-pool", 4)] {
                let (samples, hits) = paced_latency(plugin, op, gap, calls, warm);
                println!(
                    "paced/{name}/{mode} at {label}: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  (pool hits {:.1}%)",
                    percentile(&samples, 0.50),
                    percentile(&samples, 0.90),
                    percentile(&samples, 0.99),
                    samples[samples.len() - 1],
                    100.0 * hits as f64 / calls as f64,
                );
            }
        }
    }
}

fn ivr(c: &mut Criterion) {
    let rt = runtime(Some(std::env::temp_dir().join("wasmswitch-bench-cache")));
    let tokio = tokio();
    let started = IvrEvent::Started(IvrStarted {
        call: call(),
        ..Default::default()
    });
    let builds = [
        ("rust", &*frozen_v0_1("ivr-menu")),
        ("python", &*frozen_v0_1("ivr-menu-py")),
        ("js", &*frozen_v0_1("ivr-menu-js")),
    ];
    let mut g = c.benchmark_group("ivr");
    for (lang, path) in builds {
        let plugin = load(&rt, path);
        let mut warm = tokio
            .block_on(plugin.instantiate(Default::default()))
            .expect("instance");
        tokio
            .block_on(warm.on_ivr_event_v0_1(&started))
            .expect("started");
        println!(
            "ivr/{lang}: component {} bytes, linear memory per instance {} KiB",
            plugin.size,
            warm.memory_bytes() >> 10
        );
        g.bench_function(format!("event/{lang}"), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        // `timeout` replays the menu (or says goodbye): a two-action answer.
                        let a = warm
                            .on_ivr_event_v0_1(&IvrEvent::Timeout)
                            .await
                            .expect("event");
                        std::hint::black_box(a);
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function(format!("fresh-instance+started/{lang}"), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        let mut i = plugin
                            .instantiate(Default::default())
                            .await
                            .expect("instance");
                        std::hint::black_box(i.on_ivr_event_v0_1(&started).await.expect("started"));
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn load_times(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("wasmswitch-bench-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let uncached = runtime(None);
    let cached = runtime(Some(dir.clone()));
    let router = std::fs::read(artifacts::ROUTER).expect("artifact");
    let id = || PluginId {
        tenant: "bench".into(),
        name: "p".into(),
        version: 1,
    };
    // Fill the cache once.
    cached.load_blocking(id(), &router, &[]).expect("load");

    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("compile/rust-router", |b| {
        b.iter(|| {
            let p = uncached.load_blocking(id(), &router, &[]).expect("load");
            assert_eq!(p.source, LoadSource::Compiled);
        })
    });
    g.bench_function("cached/rust-router", |b| {
        b.iter(|| {
            let p = cached.load_blocking(id(), &router, &[]).expect("load");
            assert_eq!(p.source, LoadSource::Cached);
        })
    });
    g.finish();

    for (lang, path) in [
        ("python", artifacts::IVR_MENU_PY),
        ("js", artifacts::IVR_MENU_JS),
    ] {
        let bytes = std::fs::read(path).expect("artifact");
        let t = Instant::now();
        let p = cached.load_blocking(id(), &bytes, &[]).expect("load");
        let first = t.elapsed();
        let t = Instant::now();
        let q = cached.load_blocking(id(), &bytes, &[]).expect("load");
        let second = t.elapsed();
        assert_eq!(
            (p.source, q.source),
            (LoadSource::Compiled, LoadSource::Cached)
        );
        println!(
            "load/{lang}-ivr: compile {first:?}, cached {second:?} ({:.0}x)",
            first.as_secs_f64() / second.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh instance and its first event, on the 0.2 model.
fn first_event(c: &mut Criterion) {
    let rt = runtime(None);
    let tokio = tokio();
    let incoming = setup::incoming();
    // The tour's sales line: a dial of two groups with a caller ID, the largest first answer.
    let mut sales = incoming.clone();
    if let CallEvent::Incoming(c) = &mut sales {
        c.to = "+18005550100".into();
    }
    let handed_over = CallEvent::HandedOver(HandOver::default());
    let mut g = c.benchmark_group("event");
    for (name, path, event) in [
        ("rust-router-0.1", &*frozen_v0_1("router"), &incoming),
        ("rust-ivr-0.1", &*frozen_v0_1("ivr-menu"), &handed_over),
        ("rust-router-0.2", artifacts::ROUTER, &incoming),
        ("rust-ivr-0.2", artifacts::IVR_MENU, &handed_over),
        ("tour-0.2", artifacts::TOUR, &sales),
        ("python-ivr-0.2", artifacts::IVR_MENU_PY, &handed_over),
        ("js-ivr-0.2", artifacts::IVR_MENU_JS, &handed_over),
    ] {
        let plugin = load(&rt, path);
        let once = || async {
            let mut i = plugin
                .instantiate(Default::default())
                .await
                .expect("instance");
            std::hint::black_box(i.on_event(event).await.expect("first event"));
        };
        g.bench_function(format!("fresh-instance+first/{name}"), |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        once().await;
                    }
                    t.elapsed()
                })
            })
        });
        // The latency distribution of the same, one sample per call (the Rust builds only: a
        // scripted plugin's fresh instance takes milliseconds).
        if name.starts_with("python") || name.starts_with("js") {
            continue;
        }
        let mut samples = Vec::with_capacity(20_000);
        tokio.block_on(async {
            for _ in 0..20_000 {
                let t = Instant::now();
                once().await;
                samples.push(t.elapsed());
            }
        });
        samples.sort();
        println!(
            "event/fresh-instance+first/{name} latency over {} calls: p50 {:?}  p99 {:?}",
            samples.len(),
            percentile(&samples, 0.50),
            percentile(&samples, 0.99),
        );
    }
    g.finish();
}

criterion_group!(benches, route, paced, ivr, load_times, first_event);
criterion_main!(benches);
