use std::time::Duration;

use crate::Capability;

/// Why a component was refused when it was loaded (on upload, at start-up, in the harness).
///
/// Each variant names one problem a plugin author can fix; the API maps them to a 422 body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file is bigger than the configured limit.
    #[error("the component is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The bytes are not WebAssembly at all (no `\0asm` header).
    #[error("not a WebAssembly file: it does not start with the \\0asm header")]
    NotWasm,
    /// A core WebAssembly module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: make a component of it with `wasm-tools component new MODULE.wasm -o COMPONENT.wasm` (a module that imports wasi_snapshot_preview1 also needs `--adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm`, the adapter in the crates.io crate wasi-preview1-component-adapter-provider), or build it for a target that makes components (Rust: wasm32-wasip2). See docs/plugins-in-c.md"
    )]
    CoreModule,
    /// The component failed to validate or compile.
    #[error("the component is invalid: {0}")]
    Invalid(String),
    /// The component exports none of the plugin interfaces.
    #[error(
        "the component exports no wasmswitch plugin interface (wasmswitch:plugin/call-handler or message-policy; for contract 0.1 call-routing, ivr-flow or message-policy); it exports: [{}]. Was it built for a wasmswitch:plugin world?",
        .found.join(", ")
    )]
    NoPluginExport { found: Vec<String> },
    /// The component does not export what the upload said it would.
    #[error(
        "the component was loaded as a {expected} plugin but does not export wasmswitch:plugin/{}; it exports: [{}]",
        expected.interface(),
        .found.join(", ")
    )]
    WrongWorld {
        expected: Capability,
        found: Vec<String>,
    },
    /// The component was built against a contract version this host does not support.
    #[error(
        "the component was built against wasmswitch:plugin@{found}, which this host does not support; it supports {supported} (each with its later patch releases, e.g. 0.2.x). Rebuild it against a supported version"
    )]
    UnsupportedContract { found: String, supported: String },
    /// The component imports something the host does not provide.
    #[error(
        "the component imports something wasmswitch does not provide (plugins may import only wasmswitch:plugin/log, kv, metrics and WASI): {0}"
    )]
    UnsupportedImport(String),
}

impl LoadError {
    /// A short stable name of the problem (the API's problem `reason`).
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::TooLarge { .. } => "too-large",
            LoadError::NotWasm => "not-wasm",
            LoadError::CoreModule => "core-module",
            LoadError::Invalid(_) => "invalid",
            LoadError::NoPluginExport { .. } => "no-plugin-export",
            LoadError::WrongWorld { .. } => "wrong-world",
            LoadError::UnsupportedContract { .. } => "unsupported-contract",
            LoadError::UnsupportedImport(_) => "unsupported-import",
        }
    }
}

/// Why a call into a plugin did not produce a usable answer. The caller turns any of these into
/// the tenant's fallback; none of them is a host failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The guest ran past its deadline (an endless loop, or a very slow plugin).
    #[error("the plugin ran past its deadline of {deadline:?}")]
    Timeout { deadline: Duration },
    /// The guest tried to grow its memory past the cap.
    #[error("the plugin tried to use more than its memory cap of {limit} bytes")]
    OutOfMemory { limit: usize },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The guest returned a decision the host cannot act on.
    #[error("the plugin returned a decision the switch cannot act on: {0}")]
    BadReturn(String),
    /// The plugin does not export the interface this call needs (named without its version,
    /// e.g. `call-handler`).
    #[error("the plugin does not export wasmswitch:plugin/{0}")]
    NotExported(&'static str),
    /// An earlier call on this instance failed, so it cannot be entered again.
    #[error("the plugin instance failed earlier in this call and cannot be used again")]
    Poisoned,
    /// A fresh instance could not be created (its start-up code failed, say).
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    /// No instance slot is free: the host's pool is full, or the tenant has its cap of live
    /// instances. Not the plugin's fault: the caller should be told to try again later (a
    /// `503`; the call layer adds `Retry-After`), not given the tenant's fallback.
    #[error("no plugin instance slot is free ({0})")]
    Overloaded(String),
}

impl PluginError {
    /// Every [`PluginError::kind`], for whoever names one ahead of time (a scenario's
    /// `expect-error`).
    pub const KINDS: &[&str] = &[
        "timeout",
        "out_of_memory",
        "trap",
        "bad_return",
        "not_exported",
        "poisoned",
        "instantiate",
        "overloaded",
    ];

    /// A short, stable label for metrics and logs (one of [`PluginError::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Timeout { .. } => "timeout",
            PluginError::OutOfMemory { .. } => "out_of_memory",
            PluginError::Trap(_) => "trap",
            PluginError::BadReturn(_) => "bad_return",
            PluginError::NotExported(_) => "not_exported",
            PluginError::Poisoned => "poisoned",
            PluginError::Instantiate(_) => "instantiate",
            PluginError::Overloaded(_) => "overloaded",
        }
    }
}

/// The runtime itself could not be set up (bad engine settings, no cache directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The wasmtime engine rejected the configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The compiled-component cache directory cannot be used.
    #[error("cannot use the plugin cache directory {path}: {source}")]
    Cache {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed() {
        let all = [
            PluginError::Timeout {
                deadline: Duration::ZERO,
            },
            PluginError::OutOfMemory { limit: 0 },
            PluginError::Trap(String::new()),
            PluginError::BadReturn(String::new()),
            PluginError::NotExported("call-handler"),
            PluginError::Poisoned,
            PluginError::Instantiate(String::new()),
            PluginError::Overloaded(String::new()),
        ];
        let kinds: Vec<_> = all.iter().map(PluginError::kind).collect();
        assert_eq!(kinds, PluginError::KINDS);
    }
}
