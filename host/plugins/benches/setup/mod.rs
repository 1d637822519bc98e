//! The set-up the plugin benchmarks and `examples/route_profile.rs` share, so the profiled call
//! is the benchmarked one: production runtime settings, the bench tenant's routing table in
//! `kv`, and one call to route.

use std::sync::Arc;

use wasmswitch_plugins::model::v0_1::CallInfo;
use wasmswitch_plugins::{KvStore, MemoryKv, PluginId, PluginVersion, Runtime, RuntimeConfig};

/// A current-thread tokio runtime.
pub fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

/// A plugin runtime with `config`, its `kv` holding the bench tenant's routing table.
pub fn runtime(config: RuntimeConfig) -> Runtime {
    let kv = Arc::new(MemoryKv::new());
    tokio()
        .block_on(kv.set("bench", "routes", b"+44 * uk-trunk\n+1 * us-trunk\n"))
        .expect("kv");
    Runtime::new(config, kv).expect("runtime")
}

/// Loads the component at `path` as the bench tenant's plugin, version 1.
pub fn load(rt: &Runtime, path: &str) -> Arc<PluginVersion> {
    let bytes = std::fs::read(path).expect("artifact");
    let id = PluginId {
        tenant: "bench".into(),
        name: "p".into(),
        version: 1,
    };
    rt.load_blocking(id, &bytes, &[]).expect("load")
}

/// The call every routing measurement routes.
pub fn call() -> CallInfo {
    CallInfo {
        call_id: "bench-call".into(),
        tenant: "bench".into(),
        from: "+442071234567".into(),
        to: "+14155550100".into(),
        source_address: "127.0.0.1:5060".into(),
        ..Default::default()
    }
}

/// The same call as contract 0.2's first event, `incoming`: what the calls layer sends.
pub fn incoming() -> wasmswitch_plugins::model::CallEvent {
    let call = call();
    wasmswitch_plugins::model::CallEvent::Incoming(wasmswitch_plugins::model::CallInfo {
        call_id: call.call_id,
        tenant: call.tenant,
        from: call.from,
        to: call.to,
        source_address: call.source_address,
        received_at: call.received_at,
        ..Default::default()
    })
}
