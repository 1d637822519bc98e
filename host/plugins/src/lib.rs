//! The plugin runtime: loads tenants' WebAssembly components, runs one instance per call with a
//! deadline and a memory cap, and turns every guest failure into the tenant's fallback.
//!
//! Three lifetimes, three types:
//! - [`Runtime`]: engine-wide (one wasmtime `Engine`, linker, epoch ticker, compiled cache);
//! - [`PluginVersion`]: one version of one tenant's plugin (`Component` + `InstancePre`);
//! - [`CallInstance`]: one call's `Store` and instance, kept for the call's life.
//!
//! [`Registry`] holds each tenant's active versions for hot swap and rollback; a [`Session`] is
//! one call's plugin side (pinned versions, the instance, the fallback), what the calls layer
//! holds; [`harness`] drives a plugin from tests and scenario files. Plugins of every supported
//! contract version ([`Contract`]) run side by side, all speaking the host's one model
//! ([`model`], contract 0.2's event model).

mod bindings;
mod cache;
mod error;
pub mod harness;
mod instance;
pub mod kv;
pub mod model;
mod registry;
mod runtime;
pub mod scenario;
mod session;

pub use bindings::{Contract, Target};
pub use error::{LoadError, PluginError, RuntimeError};
pub use instance::{Answer, CallInstance, InstanceOptions, LogLevel, LogLine};
pub use kv::{KvError, KvStore, MemoryKv, OverlayKv};
pub use registry::{
    Decided, Fallback, Reconciled, Registry, RegistryError, Stale, TenantPlugins, Wanted,
};
pub use runtime::{
    Capability, Limits, LoadSource, PluginId, PluginVersion, Runtime, RuntimeConfig, world_includes,
};
pub use session::{HandOffRefused, MAX_HAND_OFFS, Session};
