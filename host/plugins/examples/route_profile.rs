//! Runs the benchmark's fresh-instance + `route()` call in a loop, for profilers: page faults
//! (`perf stat -e page-faults`) and instruction counts (`valgrind --tool=callgrind`) per call.
//!
//! ```text
//! cargo build --release -p wasmswitch-plugins --example route_profile
//! perf stat -e page-faults,cpu-clock target/release/examples/route_profile 20000
//! valgrind --tool=callgrind target/release/examples/route_profile 2000 20
//! ```
//!
//! The second argument sizes the instance pool (default 1,000): valgrind cannot reserve the
//! address space of a big one. The third picks the call: `route` (default: the frozen 0.1.0
//! router's own `route()`), `event-0.1` (the same build's first event, `incoming`, through the
//! 0.1 adapter, as the calls layer drives it) or `event-0.2` (the 0.2 router's `incoming`).
//!
//! It prints the median time per call; the first 1,000 calls warm the pool's slots and are not
//! timed. Same settings as `benches/plugins.rs` (production runtime, pool of instances off).

use std::time::{Duration, Instant};

use wasmswitch_plugin_artifacts as artifacts;
use wasmswitch_plugins::RuntimeConfig;

#[path = "../benches/setup/mod.rs"]
mod setup;

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let max_instances: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let mode = std::env::args().nth(3).unwrap_or_else(|| "route".into());
    let rt = setup::runtime(RuntimeConfig {
        max_instances,
        ..RuntimeConfig::default()
    });
    // The frozen 0.1.0 build, called through 0.1's `route()`: the same code and path as the
    // figures this example was first used for (BENCHMARKS.md).
    let frozen = artifacts::frozen::dir("0.1.0").join("router.wasm");
    let path = match mode.as_str() {
        "route" | "event-0.1" => frozen.to_string_lossy().into_owned(),
        "event-0.2" => artifacts::ROUTER.to_string(),
        other => panic!("unknown mode {other:?}: route, event-0.1 or event-0.2"),
    };
    let router = setup::load(&rt, &path);
    let call = setup::call();
    let incoming = setup::incoming();
    let mut samples = Vec::with_capacity(calls);
    setup::tokio().block_on(async {
        for n in 0..calls + 1000 {
            let t = Instant::now();
            let mut i = router
                .instantiate(Default::default())
                .await
                .expect("instance");
            if mode == "route" {
                std::hint::black_box(i.route_v0_1(&call).await.expect("route"));
            } else {
                std::hint::black_box(i.on_event(&incoming).await.expect("incoming"));
            }
            if n >= 1000 {
                samples.push(t.elapsed());
            }
        }
    });
    samples.sort();
    let median = samples
        .get(samples.len() / 2)
        .copied()
        .unwrap_or(Duration::ZERO);
    println!("{calls} calls, median {median:?} per fresh instance + {mode}");
}
