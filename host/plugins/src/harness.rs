//! Drive a plugin component from a test, with no phone network: send a call its events,
//! messages and delivery reports, preload and inspect `kv`, read the log lines, counters and fuel
//! of each call.
//!
//! Works for a component written in any language, and of any supported contract version. The
//! SDK's `wasmswitch-harness` crate re-exports this module for plugin authors; `wasmswitch
//! plugin test` runs [`scenario`](crate::scenario) files with it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wasmswitch_plugins::harness::Harness;
//! use wasmswitch_plugins::model::{Action, CallEvent, CallInfo};
//!
//! let harness = Harness::load("target/wasm32-wasip2/release/router.wasm")?;
//! harness.kv_set("routes/+44", "uk-trunk").await;
//! let mut call = harness.call().await?;
//! let call_info = CallInfo { to: "+442071234567".into(), ..Default::default() };
//! let answer = call.on_event(&CallEvent::Incoming(call_info)).await?;
//! assert!(matches!(answer.actions[0], Action::Dial(_)));
//! println!("incoming used {:?} fuel", call.last_fuel());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{LoadError, PluginError, RuntimeError};
use crate::instance::{CallInstance, InstanceOptions};
use crate::kv::{KvStore, MemoryKv};
use crate::runtime::{PluginId, PluginVersion, Runtime, RuntimeConfig};

/// The tenant every harness call runs as.
pub const TENANT: &str = "test";

/// Why the harness could not load a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The component file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The runtime refused the component.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The runtime could not be created.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// One plugin loaded with in-memory host imports, fuel metering and log capture.
#[derive(Debug, Clone)]
pub struct Harness {
    runtime: Runtime,
    kv: Arc<MemoryKv>,
    plugin: Arc<PluginVersion>,
}

/// Settings for the harness's runtime: production defaults with fuel metering on, no compiled
/// cache and a small instance pool.
pub fn default_config() -> RuntimeConfig {
    RuntimeConfig {
        fuel_metering: true,
        max_instances: 100,
        cache_dir: None,
        ..RuntimeConfig::default()
    }
}

impl Harness {
    /// Loads a component file with [`default_config`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HarnessError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, default_config())
    }

    /// Loads a component from memory with the given runtime settings.
    pub fn from_bytes(bytes: &[u8], config: RuntimeConfig) -> Result<Self, HarnessError> {
        let kv = Arc::new(MemoryKv::new());
        let runtime = Runtime::new(config, kv.clone())?;
        let id = PluginId {
            tenant: TENANT.into(),
            name: "plugin".into(),
            version: 1,
        };
        let plugin = runtime.load_blocking(id, bytes, &[])?;
        Ok(Self {
            runtime,
            kv,
            plugin,
        })
    }

    /// The loaded plugin (its capabilities, sha256, size).
    pub fn plugin(&self) -> &Arc<PluginVersion> {
        &self.plugin
    }

    /// The runtime, e.g. to check the configured deadline.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A fresh instance, as for one new call or message. Keep it to send the same call more
    /// events; drop it to end the call.
    pub async fn call(&self) -> Result<CallInstance, PluginError> {
        self.plugin
            .instantiate(InstanceOptions {
                capture: true,
                ..Default::default()
            })
            .await
    }

    /// Stores a string value in the plugin's `kv`.
    pub async fn kv_set(&self, key: &str, value: &str) {
        // The in-memory store only fails on oversize keys/values, which tests mean to see.
        if let Err(e) = self.kv.set(TENANT, key, value.as_bytes()).await {
            panic!("kv_set({key:?}) failed: {e}");
        }
    }

    /// Removes a key from the plugin's `kv`.
    pub async fn kv_delete(&self, key: &str) {
        let _ = self.kv.delete(TENANT, key).await;
    }

    /// The value under `key`, as a string (lossily decoded).
    pub async fn kv_get(&self, key: &str) -> Option<String> {
        self.kv
            .get(TENANT, key)
            .await
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Everything in the plugin's `kv`.
    pub fn kv_snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.kv.snapshot(TENANT)
    }

    /// Empties the plugin's `kv`.
    pub async fn kv_clear(&self) {
        for key in self.kv.snapshot(TENANT).into_keys() {
            let _ = self.kv.delete(TENANT, &key).await;
        }
    }
}
