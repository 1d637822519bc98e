//! Paths of the example plugin components, built from source by this crate's build script: the
//! Rust examples with `cargo build --target wasm32-wasip2 --profile plugin`, the Python IVR and
//! tour with componentize-py, the JavaScript IVR and tour with componentize-qjs. Tests and
//! benchmarks use these; `foreach_plugin!` lets a test suite make a missing harness test a
//! compile error.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// The scenario files shared by the plugins, in `plugins/scenarios/`.
pub fn scenario(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"))
}

/// Frozen builds of the example plugins for each released contract version, kept byte for
/// byte in `plugins/fixtures/v<version>/` (its README says how they were built). Tests load
/// them on the current host: a released contract is a promise.
pub mod frozen {
    use std::path::PathBuf;

    /// The folder of the frozen plugins of contract `version` (e.g. "0.1.0").
    pub fn dir(version: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/v{version}"))
    }

    /// The bytes of the frozen plugin `name` (its file name without `.wasm`) of `version`.
    pub fn component(version: &str, name: &str) -> Vec<u8> {
        let path = dir(version).join(format!("{name}.wasm"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The frozen scenario file `name` of `version`.
    pub fn scenario(version: &str, name: &str) -> PathBuf {
        dir(version).join(format!("scenarios/{name}.yaml"))
    }

    /// The frozen plugins of contract 0.1.0 and the scenario each passes.
    pub const V0_1: &[(&str, &str)] = &[
        ("router", "router"),
        ("faulty", "faulty"),
        ("ivr-menu", "ivr-menu"),
        ("ivr-menu-py", "ivr-menu"),
        ("ivr-menu-js", "ivr-menu"),
        ("sms-policy", "sms-policy"),
        ("dtmf-transfer", "dtmf-transfer"),
    ];

    /// The frozen plugins of contract 0.2.0 and the scenario each passes. (The Python builds,
    /// 18 MB each, are not kept: the 0.1.0 set holds one, and the JavaScript builds stand for
    /// the scripted languages.)
    pub const V0_2: &[(&str, &str)] = &[
        ("router", "router"),
        ("faulty", "faulty"),
        ("ivr-menu", "ivr-menu"),
        ("ivr-menu-js", "ivr-menu"),
        ("sms-policy", "sms-policy"),
        ("dtmf-transfer", "dtmf-transfer"),
        ("tour", "tour"),
        ("tour-js", "tour"),
    ];

    /// `component` as if built against contract `to` instead of `from`: every occurrence of
    /// `@{from}` (its export and import names, its embedded WIT) becomes `@{to}`. The two must
    /// be as long, which keeps every length prefix, and so the binary, valid.
    pub fn retargeted(component: &[u8], from: &str, to: &str) -> Vec<u8> {
        let (from, to) = (format!("@{from}"), format!("@{to}"));
        assert_eq!(from.len(), to.len(), "versions of the same length only");
        let (from, to) = (from.as_bytes(), to.as_bytes());
        let mut out = component.to_vec();
        let mut replaced = 0;
        let mut i = 0;
        while i + from.len() <= out.len() {
            if &out[i..i + from.len()] == from {
                out[i..i + from.len()].copy_from_slice(to);
                replaced += 1;
                i += from.len();
            } else {
                i += 1;
            }
        }
        assert!(replaced > 0, "the component names no {from:?}");
        out
    }
}
