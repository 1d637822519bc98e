//! Paths of the example plugin components, built from source by this crate's build script: the
//! Rust examples with `cargo build --target wasm32-wasip2 --profile plugin`, the Python IVR with
//! componentize-py and the JavaScript IVR with componentize-qjs. Tests and benchmarks use these;
//! `foreach_plugin!` lets a test suite make a missing harness test a compile error.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The scenario files shared by the plugins, in `plugins/scenarios/`.
pub fn scenario(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"))
}
