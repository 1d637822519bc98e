//! Runs the benchmark's fresh-instance + `route()` call in a loop, for profilers: page faults
//! (`perf stat -e page-faults`) and instruction counts (`valgrind --tool=callgrind`) per call.
//!
//! ```text
//! cargo build --release -p wasmswitch --example route_profile
//! perf stat -e page-faults,cpu-clock target/release/examples/route_profile 20000
//! valgrind --tool=callgrind target/release/examples/route_profile 2000 20
//! ```
//!
//! The second argument sizes the instance pool (default 1,000): valgrind cannot reserve the
//! address space of a big one.
//!
//! It prints the median time per call; the first 1,000 calls warm the pool's slots and are not
//! timed. Same settings as `benches/plugins.rs` (production runtime, pool of instances off).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmswitch::plugins::model::CallInfo;
use wasmswitch::plugins::{KvStore, MemoryKv, PluginId, Runtime, RuntimeConfig};
use wasmswitch_plugin_artifacts as artifacts;

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let max_instances: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let kv = Arc::new(MemoryKv::new());
    tokio
        .block_on(kv.set("bench", "routes", b"+44 * uk-trunk\n+1 * us-trunk\n"))
        .expect("kv");
    let rt = Runtime::new(
        RuntimeConfig {
            max_instances,
            ..RuntimeConfig::default()
        },
        kv,
    )
    .expect("runtime");
    let bytes = std::fs::read(artifacts::ROUTER).expect("router artifact");
    let id = PluginId {
        tenant: "bench".into(),
        name: "router".into(),
        version: 1,
    };
    let router = rt.load_blocking(id, &bytes, &[]).expect("load");
    let call = CallInfo {
        call_id: "bench-call".into(),
        tenant: "bench".into(),
        from: "+442071234567".into(),
        to: "+14155550100".into(),
        source_address: "127.0.0.1:5060".into(),
        ..Default::default()
    };
    let mut samples = Vec::with_capacity(calls);
    tokio.block_on(async {
        for n in 0..calls + 1000 {
            let t = Instant::now();
            let mut i = router
                .instantiate(Default::default())
                .await
                .expect("instance");
            std::hint::black_box(i.route(&call).await.expect("route"));
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
    println!("{calls} calls, median {median:?} per fresh instance + route");
}
