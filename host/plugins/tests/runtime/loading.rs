//! What the runtime refuses at load time, each with its own error, and the compiled cache.

use std::sync::Arc;

use wasmswitch_plugin_artifacts as artifacts;
use wasmswitch_plugins::{
    Capability, LoadError, LoadSource, MemoryKv, PluginId, Runtime, RuntimeConfig,
};

fn id() -> PluginId {
    PluginId {
        tenant: "t".into(),
        name: "p".into(),
        version: 1,
    }
}

fn rt() -> Runtime {
    super::runtime(RuntimeConfig {
        max_instances: 10,
        ..RuntimeConfig::default()
    })
}

#[test]
fn garbage_is_not_wasm() {
    let err = rt()
        .load_blocking(id(), b"GET / HTTP/1.1\r\n\r\n", &[])
        .unwrap_err();
    assert!(matches!(err, LoadError::NotWasm), "{err}");
    assert!(err.to_string().contains("not a WebAssembly file"));
}

#[test]
fn a_core_module_is_not_a_component() {
    let core = wat::parse_str("(module (func (export \"route\")))").unwrap();
    let err = rt().load_blocking(id(), &core, &[]).unwrap_err();
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[test]
fn a_component_without_plugin_exports_is_refused() {
    let c = wat::parse_str("(component)").unwrap();
    let err = rt().load_blocking(id(), &c, &[]).unwrap_err();
    assert!(matches!(err, LoadError::NoPluginExport { .. }), "{err}");
}

#[test]
fn a_component_for_the_wrong_world_is_refused() {
    let bytes = std::fs::read(artifacts::SMS_POLICY).unwrap();
    let err = rt()
        .load_blocking(id(), &bytes, &[Capability::Calls])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::WrongWorld {
                expected: Capability::Calls,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("call-handler") && msg.contains("message-policy"),
        "{msg}"
    );
    // The same bytes load as what they are.
    assert!(
        rt().load_blocking(id(), &bytes, &[Capability::Messaging])
            .is_ok()
    );
}

#[test]
fn an_import_the_host_does_not_provide_is_refused() {
    // A component that exports the routing interface name but also wants a socket API.
    let c = wat::parse_str(
        r#"(component
            (import "acme:net/sockets@1.0.0" (instance (export "connect" (func))))
            (instance $i)
            (export "wasmswitch:plugin/call-routing@0.1.0" (instance $i)))"#,
    )
    .unwrap();
    let err = rt().load_blocking(id(), &c, &[]).unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedImport(_)), "{err}");
    assert!(err.to_string().contains("acme:net/sockets"), "{err}");
}

#[test]
fn an_oversized_component_is_refused_before_compiling() {
    let rt = super::runtime(RuntimeConfig {
        max_component_bytes: 1000,
        max_instances: 10,
        ..RuntimeConfig::default()
    });
    let bytes = std::fs::read(artifacts::ROUTER).unwrap();
    let err = rt.load_blocking(id(), &bytes, &[]).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
}

#[test]
fn a_corrupt_component_is_invalid() {
    let mut bytes = std::fs::read(artifacts::ROUTER).unwrap();
    bytes.truncate(bytes.len() / 2);
    let err = rt().load_blocking(id(), &bytes, &[]).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn capabilities_come_from_the_exports() {
    let rt = rt();
    for (path, cap, world) in [
        (artifacts::ROUTER, Capability::Calls, "router"),
        // In 0.2 an IVR exports the same `call-handler` as a router: one world label.
        (artifacts::IVR_MENU, Capability::Calls, "router"),
        (artifacts::SMS_POLICY, Capability::Messaging, "messaging"),
        (artifacts::TOUR, Capability::Calls, "switch"),
    ] {
        let p = rt
            .load_blocking(id(), &std::fs::read(path).unwrap(), &[])
            .unwrap();
        assert!(p.has(cap), "{path}");
        assert_eq!(p.world(), world, "{path}");
    }
}

#[test]
fn a_restart_loads_from_the_compiled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 10,
        ..RuntimeConfig::default()
    };
    let bytes = std::fs::read(artifacts::ROUTER).unwrap();
    let first = Runtime::new(config.clone(), Arc::new(MemoryKv::new())).unwrap();
    let p = first.load_blocking(id(), &bytes, &[]).unwrap();
    assert_eq!(p.source, LoadSource::Compiled);
    drop((p, first));
    // A new runtime (a restarted host) finds the compiled code.
    let second = Runtime::new(config, Arc::new(MemoryKv::new())).unwrap();
    let p = second.load_blocking(id(), &bytes, &[]).unwrap();
    assert_eq!(p.source, LoadSource::Cached);
    // A corrupted cache entry is dropped and recompiled, not trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a cwasm").unwrap();
    }
    let p = second.load_blocking(id(), &bytes, &[]).unwrap();
    assert_eq!(p.source, LoadSource::Compiled);
}
