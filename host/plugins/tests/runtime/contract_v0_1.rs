//! Contract 0.1 is a promise: the 0.1.0 builds of the example plugins, frozen in
//! `plugins/fixtures/v0.1.0` (its README says how they were built), load on this host and pass
//! the scenarios they passed when 0.1 was current, also frozen there (`faulty.yaml` came later:
//! the harness of that time could not match `expect-error`, but the plugin failed the same way). A plugin built against a
//! later compatible 0.1.x loads; one built against a contract the host does not know is refused
//! with the versions it supports.

use wasmswitch_plugin_artifacts::frozen;
use wasmswitch_plugins::harness::{self, Harness, HarnessError};
use wasmswitch_plugins::scenario::Scenario;
use wasmswitch_plugins::{Contract, LoadError, RuntimeConfig};

fn harness_of(bytes: &[u8]) -> Result<Harness, HarnessError> {
    Harness::from_bytes(
        bytes,
        RuntimeConfig {
            cache_dir: Some(super::cache_dir()),
            ..harness::default_config()
        },
    )
}

async fn passes_frozen(plugin: &str, scenario: &str) {
    let h = harness_of(&frozen::component("0.1.0", plugin))
        .unwrap_or_else(|e| panic!("load {plugin}: {e}"));
    assert_eq!(h.plugin().target.contract, Contract::V0_1);
    assert_eq!(h.plugin().target.to_string(), "0.1.0");
    let what = format!("the frozen 0.1.0 {plugin}");
    super::assert_passes(&h, &frozen::scenario("0.1.0", scenario), &what).await;
}

/// Every frozen plugin, from the fixture list itself: one added there is tested without
/// anything else to remember.
#[tokio::test]
async fn every_frozen_plugin_passes_its_frozen_scenario() {
    assert!(frozen::V0_1.len() >= 7, "the 0.1.0 fixtures are all listed");
    for (plugin, scenario) in frozen::V0_1 {
        passes_frozen(plugin, scenario).await;
    }
}

#[tokio::test]
async fn a_plugin_built_against_a_later_compatible_release_loads() {
    let router = frozen::component("0.1.0", "router");
    let h = harness_of(&frozen::retargeted(&router, "0.1.0", "0.1.9")).expect("0.1.9 loads");
    assert_eq!(h.plugin().target.to_string(), "0.1.9");
    assert_eq!(h.plugin().target.contract, Contract::V0_1);
    let s = Scenario::from_file(frozen::scenario("0.1.0", "router")).expect("scenario");
    assert_eq!(s.run(&h).await.passed(), s.cases.len());
}

#[test]
fn a_plugin_built_against_an_unknown_contract_is_refused_with_the_supported_versions() {
    let router = frozen::component("0.1.0", "router");
    let err = harness_of(&frozen::retargeted(&router, "0.1.0", "0.9.0")).unwrap_err();
    let message = err.to_string();
    match err {
        HarnessError::Load(LoadError::UnsupportedContract { found, supported }) => {
            assert_eq!(found, "0.9.0");
            assert_eq!(supported, Contract::supported_list());
        }
        other => panic!("expected UnsupportedContract, got {other:?}"),
    }
    assert!(
        message.contains("0.9.0") && message.contains("supports 0.1"),
        "{message}"
    );
}

/// The fixtures are the bytes their README lists: a rebuilt or replaced file fails here.
#[test]
fn the_frozen_files_are_the_ones_recorded() {
    use sha2::{Digest, Sha256};
    let readme = std::fs::read_to_string(frozen::dir("0.1.0").join("README.md")).unwrap();
    let mut checked = std::collections::BTreeSet::new();
    for line in readme.lines() {
        let Some((sum, file)) = line.split_once("  ") else {
            continue;
        };
        let Some(name) = file.strip_suffix(".wasm") else {
            continue;
        };
        let bytes = frozen::component("0.1.0", name);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{file} changed");
        checked.insert(name.to_string());
    }
    let frozen: std::collections::BTreeSet<_> =
        frozen::V0_1.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        checked, frozen,
        "every frozen plugin has exactly one recorded sum"
    );
}
