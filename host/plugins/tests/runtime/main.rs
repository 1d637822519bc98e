//! The plugin runtime against real components built from source (see `plugins/artifacts`).

// Tests state their expectations with unwrap: a failure is the test failing.
#![allow(clippy::unwrap_used)]

mod contract_v0_1;
mod contract_v0_2;
mod deadline;
mod examples;
mod hot_swap;
mod limits;
mod loading;
mod session;
mod warm;
mod yielding;

use std::sync::Arc;

use wasmswitch_plugins::harness::{self, Harness};
use wasmswitch_plugins::model::{Action, CallEvent, CallInfo, Dial};
use wasmswitch_plugins::{MemoryKv, PluginId, PluginVersion, Runtime, RuntimeConfig};

/// A new call to `to`, as its first event.
pub fn incoming(to: &str) -> CallEvent {
    CallEvent::Incoming(CallInfo {
        call_id: format!("call-{to}"),
        to: to.into(),
        ..Default::default()
    })
}

/// The dial an answer holds; fails the test if it holds none.
pub fn dial_of(actions: &[Action]) -> &Dial {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Dial(d) => Some(d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("expected a dial, got {actions:?}"))
}

/// The trunk of the first target of the dial an answer holds.
pub fn trunk_of(actions: &[Action]) -> Option<&str> {
    dial_of(actions).groups[0].targets[0].trunk.as_deref()
}

/// A harness whose compiled components are cached under the target dir, so the 18 MB Python
/// plugin is compiled once per build rather than once per test.
pub fn harness(path: &str) -> Harness {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    Harness::from_bytes(
        &bytes,
        RuntimeConfig {
            cache_dir: Some(cache_dir()),
            ..harness::default_config()
        },
    )
    .unwrap_or_else(|e| panic!("load {path}: {e}"))
}

pub fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

pub fn runtime(config: RuntimeConfig) -> Runtime {
    Runtime::new(config, Arc::new(MemoryKv::new())).expect("runtime")
}

pub fn load(
    rt: &Runtime,
    tenant: &str,
    name: &str,
    version: u32,
    path: &str,
) -> Arc<PluginVersion> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let id = PluginId {
        tenant: tenant.into(),
        name: name.into(),
        version,
    };
    rt.load_blocking(id, &bytes, &[]).expect("load")
}

/// Runs the scenario file at `path` on `h`, and fails with every failed case unless all pass.
pub async fn assert_passes(h: &Harness, path: &std::path::Path, what: &str) {
    let s = wasmswitch_plugins::scenario::Scenario::from_file(path).expect("scenario");
    let report = s.run(h).await;
    let failures: Vec<_> = report
        .cases
        .iter()
        .filter(|c| !c.passed())
        .map(|c| format!("{}: {:?}", c.name, c.failures))
        .collect();
    assert!(
        failures.is_empty(),
        "{what} failed {}:\n{}",
        path.display(),
        failures.join("\n")
    );
    assert_eq!(report.passed(), s.cases.len());
    assert!(report.cases.iter().all(|c| c.fuel > 0), "fuel is measured");
}

/// The frozen builds of contract `version` (`plugins/fixtures/v{version}`): each, from the
/// fixture list itself, loads as that contract and passes the scenario frozen beside it.
pub async fn frozen_plugins_pass(version: &str, list: &[(&str, &str)]) {
    use wasmswitch_plugin_artifacts::frozen;
    for (plugin, scenario) in list {
        let h = Harness::from_bytes(
            &frozen::component(version, plugin),
            RuntimeConfig {
                cache_dir: Some(cache_dir()),
                ..harness::default_config()
            },
        )
        .unwrap_or_else(|e| panic!("load {plugin}: {e}"));
        assert_eq!(h.plugin().target.to_string(), version, "{plugin}");
        let what = format!("the frozen {version} {plugin}");
        assert_passes(&h, &frozen::scenario(version, scenario), &what).await;
    }
}

/// The fixtures of `version` are the bytes their README lists, one sum for each plugin of
/// `list`: a rebuilt or replaced file fails here.
pub fn frozen_files_are_the_ones_recorded(version: &str, list: &[(&str, &str)]) {
    use sha2::{Digest, Sha256};
    use wasmswitch_plugin_artifacts::frozen;
    let readme = std::fs::read_to_string(frozen::dir(version).join("README.md")).unwrap();
    let mut checked = std::collections::BTreeSet::new();
    for line in readme.lines() {
        let Some((sum, file)) = line.split_once("  ") else {
            continue;
        };
        let Some(name) = file.strip_suffix(".wasm") else {
            continue;
        };
        let bytes = frozen::component(version, name);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{file} changed");
        checked.insert(name.to_string());
    }
    let listed: std::collections::BTreeSet<_> = list.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        checked, listed,
        "every frozen plugin has exactly one recorded sum"
    );
}
