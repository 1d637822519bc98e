//! Engine-wide state ([`Runtime`]) and per tenant plugin version state ([`PluginVersion`]).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, types::ComponentItem};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{self, Contract, Exports, Target};
use crate::cache::ComponentCache;
use crate::error::{LoadError, PluginError, RuntimeError};
use crate::instance::{CallState, WarmPool};
use crate::kv::KvStore;

/// Settings of the plugin runtime. Every field has a default chosen for a production host.
/// `wasmswitch plugin test` sets the deadline and memory cap from `--deadline-ms` and
/// `--max-memory-mib`; the service's `wasmswitch.toml` and `WASMSWITCH_*` overrides come with
/// the config module (issue 3).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The largest component accepted, in bytes. Default 64 MiB: a Python (componentize-py)
    /// plugin is ~18 MB and a SpiderMonkey JavaScript one ~12 MB, so this leaves room for big
    /// dependencies while bounding compile time and memory.
    pub max_component_bytes: usize,
    /// How long one call into a plugin (one `route`, one IVR event, one message) may run before it
    /// is stopped. Default 100 ms: routing sits on the call's post-dial delay, and a Rust plugin
    /// answers in microseconds, a Python one in about a millisecond.
    pub deadline: Duration,
    /// The most linear memory one plugin instance may grow to, in bytes. Default 128 MiB: enough
    /// for the Python and JavaScript runtimes (measured: Python 12 MiB, QuickJS 1.4 MiB at start)
    /// with headroom for their heaps; a Rust router uses ~1 MiB.
    pub max_memory_bytes: usize,
    /// The most plugin instances alive at once on this host (an instance lives for a whole
    /// call). Default 10,000; the pooling allocator reserves address space, not memory, for each.
    pub max_instances: u32,
    /// The most instances one tenant may have alive at once, so that one tenant's flood of
    /// calls cannot take every slot of the host from the others. Past it a new call's plugin
    /// fails with [`PluginError::Overloaded`] (the registry decides `503`, not the fallback), as
    /// when the host's pool is full. Default 2,000, a fifth of the default pool; a cap above
    /// `max_instances` does nothing.
    pub max_instances_per_tenant: u32,
    /// How often the epoch ticker advances. A running guest yields its thread at every tick and
    /// its deadline is checked then, so this is both how long a plugin can hold a thread at a
    /// stretch and the deadline's resolution. Default 1 ms.
    pub epoch_tick: Duration,
    /// Count fuel (WebAssembly instructions, roughly) per call. Costs ~40% in guest speed, so it is
    /// off in production and on in the harness and the simulate endpoint, which report it.
    pub fuel_metering: bool,
    /// Fresh instances kept ready per plugin version that carries calls, so a new call does not
    /// wait for instantiation (see `WarmPool`); each costs an instance's memory (Rust ~1 MiB,
    /// Python ~12 MiB). Default 0 (off). Measured (BENCHMARKS.md): a Rust router's instance
    /// takes microseconds to make, and one made ahead on another core answers its first call
    /// slower than one made inline; a Python or JavaScript IVR's takes 0.1-1 ms, and the pool
    /// cuts its call set-up by about a third at a steady 100 calls/s.
    pub warm_instances: usize,
    /// Record Prometheus metrics (calls, failures, latency, plugin counters). Default true; off
    /// for the simulate endpoint's runtime, so dry runs do not count as traffic.
    pub metrics: bool,
    /// Where compiled components are cached; none disables the cache. Must be writable only by
    /// the host: its files are loaded as machine code. Default none; the service will set one.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_component_bytes: 64 << 20,
            deadline: Duration::from_millis(100),
            max_memory_bytes: 128 << 20,
            max_instances: 10_000,
            max_instances_per_tenant: 2_000,
            epoch_tick: Duration::from_millis(1),
            fuel_metering: false,
            warm_instances: 0,
            metrics: true,
            cache_dir: None,
        }
    }
}

/// What a plugin can do, read from the interfaces its component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Takes calls: exports `call-handler` (0.2; worlds `router`, `ivr`), or `call-routing` or
    /// `ivr-flow` (0.1).
    Calls,
    /// Decides messages: exports `message-policy` (world `messaging`).
    Messaging,
}

impl Capability {
    pub const ALL: [Capability; 2] = [Capability::Calls, Capability::Messaging];

    /// The interface that gives this capability in the newest contract (e.g. `call-handler`).
    pub fn interface(self) -> &'static str {
        Contract::NEWEST.interface(self)
    }

    /// The name of the world that has just this export (`router`, `messaging`).
    pub fn world(self) -> &'static str {
        match self {
            Capability::Calls => "router",
            Capability::Messaging => "messaging",
        }
    }

    /// The capabilities of a stored world name ([`PluginVersion::world`]): one world, or
    /// several joined with `+` (as 0.1 plugins' are). Unknown parts count for nothing.
    pub fn parse_worlds(worlds: &str) -> Vec<Capability> {
        let mut caps: Vec<Capability> = worlds
            .split('+')
            .filter_map(Capability::parse_world)
            .flatten()
            .collect();
        caps.sort();
        caps.dedup();
        caps
    }

    /// Parses a world name as a set of capabilities: `router` and `ivr` take calls, `messaging`
    /// decides messages, `switch` does both.
    pub fn parse_world(world: &str) -> Option<Vec<Capability>> {
        match world {
            "router" | "ivr" => Some(vec![Capability::Calls]),
            "messaging" => Some(vec![Capability::Messaging]),
            "switch" => Some(Capability::ALL.to_vec()),
            _ => None,
        }
    }
}

/// Whether a world label (as [`PluginVersion::world`] gives and the store keeps it: one world,
/// or several joined with `+`) is `world` or includes it; `switch` includes every world.
pub fn world_includes(label: &str, world: &str) -> bool {
    label.split('+').any(|w| w == world || w == "switch")
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Who a plugin version belongs to and which version it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginId {
    pub tenant: Arc<str>,
    pub name: Arc<str>,
    pub version: u32,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.tenant, self.name, self.version)
    }
}

/// Engine-wide state: one wasmtime `Engine`, the linker with the host imports, the epoch
/// ticker, the compiled-component cache and the `kv` backend. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

/// The limits that can change while the host runs (`Runtime::set_limits`). A call takes them
/// when its instance is created; its memory cap then stays for the call's life, and each call
/// into the plugin takes the deadline current at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub deadline: Duration,
    pub max_memory_bytes: usize,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) config: RuntimeConfig,
    pub(crate) limits: arc_swap::ArcSwap<Limits>,
    pub(crate) kv: Arc<dyn KvStore>,
    cache: Option<ComponentCache>,
    ticker_stop: Arc<AtomicBool>,
    /// Compilations under way, by sha256: a second load of the same code waits for the first
    /// one's result instead of compiling again (a Python plugin takes ~11 s to compile).
    compiling: Mutex<HashMap<String, Arc<OnceLock<Compiled>>>>,
    /// Components compiled (not read from the cache) since start.
    compiles: AtomicU64,
    /// Live instances per tenant (see [`RuntimeConfig::max_instances_per_tenant`]); tenants
    /// with none are not in the map.
    tenant_instances: Mutex<HashMap<Arc<str>, u32>>,
}

/// One of a tenant's instance slots, held by a [`crate::CallInstance`] for its life and given
/// back when it is dropped.
pub(crate) struct TenantSlot {
    runtime: Arc<RuntimeInner>,
    tenant: Arc<str>,
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut map = self.runtime.tenant_counts();
        if let Some(n) = map.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

impl RuntimeInner {
    fn tenant_counts(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u32>> {
        // Each update is one increment or decrement: a poisoned lock holds no half-made change.
        self.tenant_instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// A shared compilation's outcome (its only failure is an invalid component).
type Compiled = Result<(Component, LoadSource), String>;

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// How a component was obtained by [`Runtime::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled from the WebAssembly bytes.
    Compiled,
    /// Read from the compiled-component cache.
    Cached,
}

impl Runtime {
    /// Creates the engine and starts its epoch ticker.
    pub fn new(config: RuntimeConfig, kv: Arc<dyn KvStore>) -> Result<Self, RuntimeError> {
        let engine_err = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        // When a call ends, its instance's memory slot is reset for the next instance. With
        // Linux's PAGEMAP_SCAN (kernel 6.7+), the pages the instance wrote are found and copied
        // back from the memory image in place, up to 1 MiB of them, instead of being
        // `madvise`d away: the next instance starts with them resident and takes no page fault
        // for them (measured: 4 faults a call down to 0.15, fresh instance + route 12.7 µs down
        // to 6.2 µs, BENCHMARKS.md). The cost is memory: a slot keeps what its last instance
        // wrote, up to 1 MiB, so after a peak of N concurrent calls up to N MiB stay resident.
        // Without the ioctl, the first `keep_resident` bytes are zeroed whether written or
        // not, so that stays small.
        let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
        let keep_resident = if pagemap { 1 << 20 } else { 64 << 10 };
        let instances = config.max_instances;
        // A Rust plugin instance has 1-3 core instances and one memory; a JavaScript (QuickJS)
        // one 11 core instances and 3 memories; a Python (componentize-py) one 38 core
        // instances. Core-instance and table slots are cheap, so size for JavaScript, and let
        // the per-component limits admit Python.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(12))
            .total_memories(instances.saturating_mul(3))
            .total_tables(instances.saturating_mul(12))
            .total_stacks(instances)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .max_core_instances_per_component(64)
            .max_memory_size(config.max_memory_bytes)
            .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No })
            .linear_memory_keep_resident(keep_resident)
            .table_keep_resident(16 << 10)
            // Every call into a guest runs on a fiber stack from the pool; without this, each
            // return `madvise`s the stack away and the next call faults it back in.
            .async_stack_keep_resident(128 << 10)
            // Give memory past `keep_resident` back to the kernel as soon as an instance is
            // freed. Batching (32 at a time) measured no faster, and a batch keeps what it
            // holds resident until it fills: 20 instances that each grew to the 128 MiB cap
            // kept the host at 1.45 GiB long after they ended.
            .decommit_batch_size(1);

        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(config.fuel_metering)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            // Memory slots are sized to the cap (plus guard) rather than the default 4 GiB, so
            // 10,000 instances fit in the address space.
            .memory_reservation(config.max_memory_bytes as u64)
            .memory_reservation_for_growth(0)
            .memory_guard_size(64 << 10)
            .memory_init_cow(true);
        let engine = Engine::new(&wasm).map_err(engine_err)?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        bindings::add_to_linker(&mut linker).map_err(engine_err)?;

        let cache = config
            .cache_dir
            .as_deref()
            .map(|dir| ComponentCache::new(&engine, dir))
            .transpose()?;

        tracing::debug!(
            pagemap_scan = pagemap,
            keep_resident,
            "plugin memory slot reset"
        );
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(&engine, config.epoch_tick, ticker_stop.clone());

        let limits = arc_swap::ArcSwap::from_pointee(Limits {
            deadline: config.deadline,
            max_memory_bytes: config.max_memory_bytes,
        });
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                limits,
                config,
                kv,
                cache,
                ticker_stop,
                compiling: Mutex::default(),
                compiles: AtomicU64::new(0),
                tenant_instances: Mutex::default(),
            }),
        })
    }

    /// The settings the runtime was created with (see [`Runtime::limits`] for the live ones).
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// The deadline and memory cap new calls get now.
    pub fn limits(&self) -> Limits {
        **self.inner.limits.load()
    }

    /// Changes the deadline and memory cap for new calls (a live setting). The memory cap can
    /// go up only to the value the runtime started with: the pool reserved that much address
    /// space per instance.
    pub fn set_limits(&self, limits: Limits) -> Result<(), RuntimeError> {
        let max = self.inner.config.max_memory_bytes;
        if limits.max_memory_bytes > max || limits.max_memory_bytes == 0 {
            return Err(RuntimeError::Engine(format!(
                "the memory cap can change live only within 1 byte..{max} bytes (the start value); restart to raise it"
            )));
        }
        if limits.deadline.is_zero() {
            return Err(RuntimeError::Engine(
                "the deadline must be above zero".into(),
            ));
        }
        self.inner.limits.store(Arc::new(limits));
        Ok(())
    }

    /// How many components this runtime has compiled (rather than read from the compiled
    /// cache, or shared with a load of the same code under way) since it started.
    pub fn compiles(&self) -> u64 {
        self.inner.compiles.load(Ordering::Relaxed)
    }

    /// Takes one of `tenant`'s instance slots, or says the tenant is at its cap.
    pub(crate) fn tenant_slot(&self, tenant: &Arc<str>) -> Result<TenantSlot, PluginError> {
        let cap = self.inner.config.max_instances_per_tenant;
        let mut map = self.inner.tenant_counts();
        let live = map.entry(tenant.clone()).or_insert(0);
        if *live >= cap {
            return Err(PluginError::Overloaded(format!(
                "tenant {tenant} has {live} plugin instances alive, its cap"
            )));
        }
        *live += 1;
        Ok(TenantSlot {
            runtime: self.inner.clone(),
            tenant: tenant.clone(),
        })
    }

    /// How many instances `tenant` has alive now.
    pub fn tenant_instances(&self, tenant: &str) -> u32 {
        self.inner.tenant_counts().get(tenant).copied().unwrap_or(0)
    }

    /// The `kv` backend the plugins of this runtime see.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.inner.kv
    }

    /// Validates and compiles a component (or loads it from the cache) and prepares it for
    /// instantiation. `expect` lists the capabilities the caller requires (e.g. from an upload's
    /// declared world); empty accepts any plugin component.
    ///
    /// Compilation runs on a blocking thread, so this never stalls the async runtime.
    pub async fn load(
        &self,
        id: PluginId,
        bytes: bytes::Bytes,
        expect: &[Capability],
    ) -> Result<Arc<PluginVersion>, LoadError> {
        let this = self.clone();
        let expect = expect.to_vec();
        match tokio::task::spawn_blocking(move || this.load_blocking(id, &bytes, &expect)).await {
            Ok(result) => result,
            // The only way the blocking task fails is a panic inside wasmtime's compiler.
            Err(e) => Err(LoadError::Invalid(format!("the compiler failed: {e}"))),
        }
    }

    /// [`Runtime::load`] for callers outside an async context (the CLI, benchmarks).
    pub fn load_blocking(
        &self,
        id: PluginId,
        bytes: &[u8],
        expect: &[Capability],
    ) -> Result<Arc<PluginVersion>, LoadError> {
        let started = Instant::now();
        let limit = self.inner.config.max_component_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        check_header(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let (component, source) = self.compile(&sha256, bytes)?;

        let found = exported_interfaces(&self.inner.engine, &component);
        let detected = bindings::detect(&found)?;
        if let Some(&missing) = expect.iter().find(|c| !detected.capabilities.contains(c)) {
            return Err(LoadError::WrongWorld {
                expected: missing,
                found,
            });
        }

        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnsupportedImport(format!("{e:#}")))?;
        let exports =
            Exports::new(&detected, &pre).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let bindings::Detected {
            target,
            capabilities,
            world,
            roles,
            interfaces,
        } = detected;

        tracing::info!(
            plugin = %id, sha256 = %sha256, size = bytes.len(), contract = %target, world, ?source,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugin loaded"
        );
        let metrics = VersionMetrics::new(&id, self.inner.config.metrics);
        Ok(Arc::new(PluginVersion {
            metrics,
            warm: WarmPool::new(self.inner.config.warm_instances),
            id,
            sha256,
            size: bytes.len(),
            capabilities,
            world,
            interfaces,
            target,
            roles,
            source,
            runtime: self.clone(),
            pre,
            exports,
        }))
    }

    /// Compiles `bytes` (or reads the compiled cache), once however many threads load the
    /// same code at the same moment.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<(Component, LoadSource), LoadError> {
        let compiling = || {
            self.inner
                .compiling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        let cell = compiling().entry(sha256.to_string()).or_default().clone();
        let result = cell.get_or_init(|| self.compile_now(sha256, bytes)).clone();
        // The first to finish removes the entry (the others hold the cell already): a later
        // load reads the disk cache, or compiles again after a failure.
        {
            let mut map = compiling();
            if map.get(sha256).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(sha256);
            }
        }
        result.map_err(LoadError::Invalid)
    }

    fn compile_now(&self, sha256: &str, bytes: &[u8]) -> Compiled {
        let engine = &self.inner.engine;
        if let Some(cached) = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.get(engine, sha256))
        {
            return Ok((cached, LoadSource::Cached));
        }
        self.inner.compiles.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Some(cache) = &self.inner.cache {
            cache.put(sha256, &component);
        }
        Ok((component, LoadSource::Compiled))
    }
}

/// Tells garbage, core modules and components apart by the preamble, so each gets its own error.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Core modules have version 1 and layer 0; components have layer 1.
    match bytes[6..8] {
        [0, 0] => Err(LoadError::CoreModule),
        [1, 0] => Ok(()),
        _ => Err(LoadError::Invalid(format!(
            "unknown WebAssembly encoding (version/layer bytes {:02x?})",
            &bytes[4..8]
        ))),
    }
}

fn exported_interfaces(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn spawn_epoch_ticker(engine: &Engine, tick: Duration, stop: Arc<AtomicBool>) {
    // A weak handle: the ticker must not keep the engine alive after the runtime is dropped.
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasmswitch-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    if let Err(e) = spawned {
        // Without a ticker, deadlines never fire; the tokio timeout in `CallInstance` still
        // bounds calls that yield, so log loudly rather than refuse to start.
        tracing::error!(error = %e, "cannot start the epoch ticker: plugin deadlines are not enforced");
    }
}

/// One loaded version of one tenant's plugin: the compiled component, prepared for fast
/// instantiation, and what it exports. Shared by every call that uses this version.
pub struct PluginVersion {
    pub id: PluginId,
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// What the component can do, in a stable order.
    pub capabilities: Vec<Capability>,
    /// The world its exports make (see [`PluginVersion::world`]).
    world: String,
    /// The contract's interfaces it exports, unversioned (`call-handler`, `ivr-flow`).
    pub interfaces: Vec<String>,
    /// The contract version the component was built against (from its exports).
    pub target: Target,
    /// For a 0.1 component, which of 0.1's interfaces it exports.
    pub(crate) roles: bindings::Roles,
    /// Whether this load compiled or came from the cache.
    pub source: LoadSource,
    pub(crate) runtime: Runtime,
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) exports: Exports,
    pub(crate) metrics: VersionMetrics,
    pub(crate) warm: WarmPool,
}

/// The guest functions the host calls, for metric labels; the discriminant indexes
/// [`VersionMetrics`]'s arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    /// `call-handler.on-event` (0.2), or the 0.1 functions behind the adapter.
    OnEvent = 0,
    OnMessage = 1,
    OnDelivery = 2,
    /// 0.1's own functions, called directly (0.1 scenarios, simulate).
    Route = 3,
    OnCallEvent = 4,
    OnIvrEvent = 5,
}

impl Function {
    const ALL: [Function; 6] = [
        Function::OnEvent,
        Function::OnMessage,
        Function::OnDelivery,
        Function::Route,
        Function::OnCallEvent,
        Function::OnIvrEvent,
    ];

    /// The label, as the guest function is named in the contract (0.1's IVR function, also
    /// `on-event` there, is `ivr-on-event`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::OnEvent => "on-event",
            Function::OnMessage => "on-message",
            Function::OnDelivery => "on-delivery",
            Function::Route => "route",
            Function::OnCallEvent => "on-call-event",
            Function::OnIvrEvent => "ivr-on-event",
        }
    }
}

/// Metric handles of one plugin version, registered once at load: a call then records without
/// building label strings.
#[derive(Clone)]
pub(crate) struct VersionMetrics {
    /// `wasmswitch_plugin_calls_total` per [`Function`].
    pub(crate) calls: [metrics::Counter; 6],
    /// `wasmswitch_plugin_call_seconds` per function.
    pub(crate) seconds: [metrics::Histogram; 6],
}

impl VersionMetrics {
    fn new(id: &PluginId, enabled: bool) -> Self {
        if !enabled {
            return Self {
                calls: Function::ALL.map(|_| metrics::Counter::noop()),
                seconds: Function::ALL.map(|_| metrics::Histogram::noop()),
            };
        }
        let labels = |f: Function| {
            [
                ("tenant", id.tenant.to_string()),
                ("plugin", id.name.to_string()),
                ("version", id.version.to_string()),
                ("function", f.name().to_string()),
            ]
        };
        Self {
            calls: Function::ALL
                .map(|f| metrics::counter!("wasmswitch_plugin_calls_total", &labels(f))),
            seconds: Function::ALL
                .map(|f| metrics::histogram!("wasmswitch_plugin_call_seconds", &labels(f))),
        }
    }
}

impl PluginVersion {
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The same compiled component under another version number (an upload is validated
    /// before the store assigns its number).
    pub fn with_version(&self, version: u32) -> Arc<PluginVersion> {
        Arc::new(PluginVersion {
            id: PluginId {
                version,
                ..self.id.clone()
            },
            sha256: self.sha256.clone(),
            size: self.size,
            capabilities: self.capabilities.clone(),
            world: self.world.clone(),
            interfaces: self.interfaces.clone(),
            target: self.target.clone(),
            roles: self.roles,
            source: self.source,
            runtime: self.runtime.clone(),
            pre: self.pre.clone(),
            exports: self.exports.clone(),
            warm: WarmPool::new(self.warm.target()),
            metrics: VersionMetrics::new(
                &PluginId {
                    version,
                    ..self.id.clone()
                },
                self.runtime.inner.config.metrics,
            ),
        })
    }

    /// The world its exports make: `router`, `ivr`, `messaging`, `switch`, or, for a 0.1
    /// component of its own world, 0.1's worlds joined with `+` (`router+messaging`). In 0.2
    /// `router` and `ivr` export the same interface: a 0.2 call handler is a `router`.
    pub fn world(&self) -> &str {
        &self.world
    }

    /// Whether its world is `world` or includes it (see [`world_includes`]).
    pub fn in_world(&self, world: &str) -> bool {
        world_includes(&self.world, world)
    }

    /// Whether a call can be handed to it: a 0.2 call handler, or a 0.1 IVR (`ivr-flow`).
    pub fn takes_hand_over(&self) -> bool {
        match self.target.contract {
            Contract::V0_1 => self.roles.ivr,
            _ => self.has(Capability::Calls),
        }
    }
}

impl fmt::Debug for PluginVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginVersion")
            .field("id", &self.id)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("capabilities", &self.capabilities)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_garbage_core_and_component_apart() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(LoadError::NotWasm)
        ));
        assert!(matches!(check_header(b"\0as"), Err(LoadError::NotWasm)));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(LoadError::CoreModule)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn worlds_parse_to_capabilities() {
        assert_eq!(Capability::parse_world("switch").unwrap().len(), 2);
        assert_eq!(
            Capability::parse_world("ivr").unwrap(),
            vec![Capability::Calls]
        );
        assert!(Capability::parse_world("nope").is_none());
        assert_eq!(
            Capability::parse_worlds("router+ivr+messaging"),
            vec![Capability::Calls, Capability::Messaging]
        );
        assert_eq!(Capability::parse_worlds("switch").len(), 2);
        assert!(Capability::parse_worlds("nope+").is_empty());
    }
}
