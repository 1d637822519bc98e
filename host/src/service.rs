//! The running host: store, plugin runtime and registry, API, wired from a [`Config`].
//! `wasmswitch serve` runs one; the tests start several (one per database, restarts).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmswitch_sip::endpoint::{Endpoint, EndpointConfig, Keepalive};
use wasmswitch_sip::limits::RateLimit;
use wasmswitch_sip::tls::{TlsIdentity, TlsTrust};
use wasmswitch_sip::transaction::{Event as SipEvent, FlowTransport, Timers};

use crate::api::{self, AppState, Auth, EnsureLoadedError, Principal, Simulator};
use crate::config::Config;
use crate::plugins::KvStore;
use crate::plugins::{Limits, Reconciled, Registry, Runtime, RuntimeConfig, RuntimeError, Wanted};
use crate::registrar::Registrar;
use crate::store::{Role, SqlKv, Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The plugin runtime could not be created.
    #[error("plugin runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// A setting passed validation but could not be used.
    #[error("configuration: {0}")]
    Config(String),
    /// The demo tenant could not be seeded.
    #[error("seeding the demo tenant: {0}")]
    Seed(String),
    /// The API's address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A started host. Dropping it does not stop it; call [`Service::stop`].
#[derive(Debug)]
pub struct Service {
    /// Where the API listens (the real port when the config asked for port 0).
    pub api_addr: SocketAddr,
    /// Where SIP listens over UDP and over TCP (the real ports when the config asked for 0).
    pub sip_addrs: SipAddrs,
    sip: Endpoint,
    pub state: AppState,
    /// The operator key created on first start, when no operator key existed yet.
    pub first_operator_key: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The trunk registrations' supervisor: it unregisters on the way out, so it ends before
    /// the SIP endpoint does.
    trunk_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The configuration in force, for [`Service::reload`].
    config: std::sync::Mutex<Config>,
    /// The calls layer: [`Service::stop`] drains it first.
    pub calls: crate::calls::Calls,
}

/// The addresses the SIP endpoint is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipAddrs {
    /// UDP.
    pub udp: SocketAddr,
    /// TCP.
    pub tcp: SocketAddr,
    /// TLS, when `sip.tls_listen` is set.
    pub tls: Option<SocketAddr>,
}

/// What [`Service::reload`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Settings now in force.
    pub applied: Vec<String>,
    /// Settings that changed in the file but take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// Settings refused (the old value stays), with why.
    pub refused: Vec<String>,
    /// The new `log.level`, when it changed (the binary owns the log subscriber and applies it).
    pub log_level: Option<String>,
}

/// How often each host compares its active plugins with the store's (so an activation made
/// through another host, or in the database, reaches this one within this time).
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Binds SIP on `sip.listen`, over UDP and TCP.
async fn start_sip(
    config: &Config,
) -> Result<(Endpoint, SipAddrs, tokio::sync::mpsc::Receiver<SipEvent>), ServiceError> {
    let addr: SocketAddr = config.sip.listen.parse().map_err(|_| {
        ServiceError::Config(format!(
            "sip.listen: {:?} is not an address",
            config.sip.listen
        ))
    })?;
    let sip = &config.sip;
    let (tls, tls_identity) = if sip.tls_listen.is_empty() {
        (Vec::new(), None)
    } else {
        let tls_addr: SocketAddr = sip.tls_listen.parse().map_err(|_| {
            ServiceError::Config(format!(
                "sip.tls_listen: {:?} is not an address",
                sip.tls_listen
            ))
        })?;
        let identity =
            TlsIdentity::from_pem_files(&sip.tls_cert_file, &sip.tls_key_file).map_err(|e| {
                ServiceError::Config(format!(
                    "sip.tls_cert_file, sip.tls_key_file: {}",
                    chain(&e)
                ))
            })?;
        (vec![tls_addr], Some(identity))
    };
    let rate_limit = (sip.rate_limit_per_second > 0).then(|| RateLimit {
        per_second: f64::from(sip.rate_limit_per_second),
        burst: f64::from(sip.rate_limit_burst),
    });
    let mut tls_trust = TlsTrust::mozilla();
    if !sip.tls_ca_file.is_empty() {
        tls_trust = tls_trust
            .add_pem_file(&sip.tls_ca_file)
            .map_err(|e| ServiceError::Config(format!("sip.tls_ca_file: {}", chain(&e))))?;
    }
    let (endpoint, events) = Endpoint::start(EndpointConfig {
        udp: vec![addr],
        tcp: vec![addr],
        tls,
        tls_identity,
        timers: Timers {
            t1: Duration::from_millis(sip.t1_ms),
            t2: Duration::from_millis(sip.t2_ms),
            ..Timers::default()
        },
        max_message: sip.max_message_bytes,
        rate_limit,
        rate_limit_exempt: sip
            .rate_limit_exempt
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        tls_trust,
        connect_timeout: Duration::from_millis(sip.connect_timeout_ms),
        max_connections: sip.max_connections,
        max_connections_per_address: sip.max_connections_per_address,
        keepalive: (sip.keepalive_secs > 0).then(|| Keepalive {
            every: Duration::from_secs(sip.keepalive_secs),
            ..Keepalive::default()
        }),
        ..EndpointConfig::default()
    })
    .await
    .map_err(|source| ServiceError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    let bound = |t| endpoint.local_addr(t).unwrap_or(addr);
    let addrs = SipAddrs {
        udp: bound(FlowTransport::Udp),
        tcp: bound(FlowTransport::Tcp),
        tls: endpoint.local_addr(FlowTransport::Tls),
    };
    Ok((endpoint, addrs, events))
}

/// Starts the calls layer: the CDRs a previous run of this host left `running` are marked
/// `interrupted` first, so no call goes unrecorded.
async fn start_calls(
    config: &Config,
    state: &AppState,
    sip: Endpoint,
    bound: crate::trunks::Bound,
) -> Result<crate::calls::Calls, ServiceError> {
    let host_id = config.calls.host_id();
    let interrupted = state
        .store
        .interrupt_running_cdrs(&host_id, crate::store::now_ms())
        .await?;
    if interrupted > 0 {
        tracing::warn!(
            calls = interrupted,
            host = %host_id,
            "calls that were up when this host last stopped are recorded as interrupted"
        );
    }
    let resolver =
        wasmswitch_sip::dns::Resolver::new(wasmswitch_sip::dns::ResolverConfig::default())
            .map_err(|e| ServiceError::Config(format!("DNS resolver: {e}")))?;
    let sip_config = &config.sip;
    let calls_config = crate::calls::CallsConfig {
        host_id,
        max_calls: config.calls.max_calls,
        tenant_max_calls: config.calls.tenant_max_calls,
        tenant_calls_per_second: config.calls.tenant_calls_per_second,
        drain: Duration::from_secs(config.calls.drain_secs),
        public: sip_config.public_address(bound.udp.port()),
        bound,
        directory_poll: Duration::from_millis(500),
        timers: Timers {
            t1: Duration::from_millis(sip_config.t1_ms),
            t2: Duration::from_millis(sip_config.t2_ms),
            ..Timers::default()
        },
    };
    let cdrs = crate::store::CdrWriter::start(state.store.clone());
    Ok(crate::calls::Calls::new(
        calls_config,
        sip,
        state.registry.clone(),
        state.store.clone(),
        cdrs,
        resolver,
    )
    .await?)
}

/// How often lapsed registrations are swept from the store and the registrations gauge is
/// read.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Deletes lapsed registrations and reports how many are live (`sip_registrations`), every
/// [`SWEEP_EVERY`], until the service stops.
async fn sweep_registrations(
    store: Store,
    registrar: Arc<Registrar>,
    stopped: watch::Receiver<bool>,
) {
    let stop = stop_signal(stopped);
    tokio::pin!(stop);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = every.tick() => {}
        }
        let now = crate::store::now_ms();
        if let Err(e) = store.sweep_registrations(now).await {
            tracing::warn!(error = %e, "cannot sweep lapsed registrations");
        }
        if let Err(e) = store.sweep_nonces(now).await {
            tracing::warn!(error = %e, "cannot sweep lapsed digest nonce counts");
        }
        match store.count_registrations(now).await {
            Ok(n) => metrics::gauge!("sip_registrations").set(n as f64),
            Err(e) => tracing::warn!(error = %e, "cannot count registrations"),
        }
        registrar.tidy();
    }
}

/// An error with its sources, `outer: inner: ...`, for a log line or a refusal that must say
/// what went wrong (which file, and what the system said about it).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Opens the database and brings its schema up to date (`wasmswitch migrate`).
pub async fn migrate(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&config.database.url).await?;
    store.migrate().await?;
    Ok(store)
}

impl Service {
    /// Starts everything and returns once the API is listening.
    pub async fn start(config: Config) -> Result<Service, ServiceError> {
        let config_in_force = config.clone();
        let store = Store::connect(&config.database.url).await?;
        if config.database.migrate_on_start {
            store.migrate().await?;
        }
        let first_operator_key = bootstrap_operator(&store, &config).await?;
        let state = app_state(&config, store)?;
        // What the store has active is loaded before the API answers.
        let mut broken = HashSet::new();
        sync_active(&state, &mut broken).await;

        let addr = config.api_listen();
        let listen_error = |source| ServiceError::Listen {
            addr: addr.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(listen_error)?;
        let api_addr = listener.local_addr().map_err(listen_error)?;
        // This run's id, stored beside what only it can use (a TCP connection's id).
        let host_id = crate::store::new_id("hst")?;
        let registrar = Arc::new(
            Registrar::new(state.store.clone(), &config.sip, host_id.clone())
                .await
                .map_err(ServiceError::Store)?,
        );
        let (sip, sip_addrs, sip_events) = start_sip(&config).await?;
        let (shutdown, stopped) = watch::channel(false);
        let bound = crate::trunks::Bound {
            udp: sip_addrs.udp,
            tcp: sip_addrs.tcp,
            tls: sip_addrs.tls,
        };
        let calls = start_calls(&config, &state, sip.clone(), bound).await?;
        let _ = state.calls.set(calls.clone());
        let api_task = tokio::spawn(serve_api(listener, state.clone(), stopped.clone()));
        let directory_task = tokio::spawn(calls.clone().poll_directory(stopped.clone()));
        let sip_task = tokio::spawn(calls.clone().run(registrar.clone(), sip_events));
        let sweep_task = tokio::spawn(sweep_registrations(
            state.store.clone(),
            registrar,
            stopped.clone(),
        ));
        let trunks = crate::trunks::TrunkContext::new(
            state.store.clone(),
            sip.clone(),
            host_id.clone(),
            config.sip.trunk_register_expires_secs,
            config.sip.public_address(sip_addrs.udp.port()),
            bound,
        );
        let trunk_task = tokio::spawn(crate::trunks::supervise(trunks, stopped.clone()));
        let sync_task = tokio::spawn(keep_in_sync(state.clone(), broken, stopped));
        tracing::info!(api = %api_addr, sip_udp = %sip_addrs.udp, sip_tcp = %sip_addrs.tcp, database = %crate::config::redact_url(&config.database.url), "wasmswitch started");
        Ok(Service {
            api_addr,
            sip_addrs,
            sip,
            state,
            first_operator_key,
            shutdown,
            tasks: std::sync::Mutex::new(vec![
                api_task,
                sync_task,
                sip_task,
                sweep_task,
                directory_task,
            ]),
            calls,
            trunk_task: std::sync::Mutex::new(Some(trunk_task)),
            config: std::sync::Mutex::new(config_in_force),
        })
    }

    /// Stops taking calls, lets the running ones finish for up to `calls.drain_secs` and ends
    /// the rest with BYE (every CDR written), then stops serving (in-flight API requests
    /// finish) and closes the database.
    pub async fn stop(&self) {
        self.calls.drain().await;
        let _ = self.shutdown.send(true);
        let trunks = self
            .trunk_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = trunks {
            let _ = t.await;
        }
        self.sip.shutdown().await;
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        self.state.store.close().await;
    }

    /// The files named by the configuration in force that are read again on every reload
    /// (the TLS certificate and key), for the binary to watch.
    pub fn live_files(&self) -> Vec<PathBuf> {
        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if self.sip_addrs.tls.is_none() {
            return Vec::new();
        }
        [&config.sip.tls_cert_file, &config.sip.tls_key_file]
            .into_iter()
            .map(PathBuf::from)
            .collect()
    }

    /// Applies the settings of `new` that can change while the host runs (the API's rate limits,
    /// the plugins' deadline and memory cap, `log.level`, which the binary applies since it
    /// owns the log subscriber, and the SIP TLS certificate and key, read again every time). Every other setting that changed is reported as needing a
    /// restart: what is in force after applying is compared with `new` setting by setting, so
    /// the code below is the only list of live settings, and a setting added to [`Config`] is
    /// covered without being listed anywhere.
    pub fn reload(&self, new: &Config) -> Reloaded {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Reloaded::default();
        let mut next = current.clone();
        // `next` with the settings this reload tried to apply but could not, which are reported
        // as refused rather than as needing a restart.
        let mut tried = None;
        if current.rate_limits() != new.rate_limits() {
            self.state.auth.set_rate_limits(new.rate_limits());
            let new_api = &new.api;
            out.applied.push(format!(
                "api.rate_limit_per_second = {}, api.rate_limit_burst = {}, api.auth_failures_per_minute = {}, api.auth_failure_burst = {}",
                new_api.rate_limit_per_second,
                new_api.rate_limit_burst,
                new_api.auth_failures_per_minute,
                new_api.auth_failure_burst
            ));
            next.api.rate_limit_per_second = new_api.rate_limit_per_second;
            next.api.rate_limit_burst = new_api.rate_limit_burst;
            next.api.auth_failures_per_minute = new_api.auth_failures_per_minute;
            next.api.auth_failure_burst = new_api.auth_failure_burst;
        }
        let (old_p, new_p) = (&current.plugins, &new.plugins);
        if (old_p.deadline_ms, old_p.max_memory_mib) != (new_p.deadline_ms, new_p.max_memory_mib) {
            let limits = Limits {
                deadline: new.plugin_deadline(),
                max_memory_bytes: (new_p.max_memory_mib as usize) << 20,
            };
            match self
                .state
                .runtime
                .set_limits(limits)
                .and_then(|()| self.state.simulator.runtime().set_limits(limits))
            {
                Ok(()) => {
                    out.applied.push(format!(
                        "plugins.deadline_ms = {}, plugins.max_memory_mib = {}",
                        new_p.deadline_ms, new_p.max_memory_mib
                    ));
                    next.plugins.deadline_ms = new_p.deadline_ms;
                    next.plugins.max_memory_mib = new_p.max_memory_mib;
                }
                Err(e) => {
                    out.refused.push(format!("plugins.max_memory_mib: {e}"));
                    let mut t = next.clone();
                    t.plugins.deadline_ms = new_p.deadline_ms;
                    t.plugins.max_memory_mib = new_p.max_memory_mib;
                    tried = Some(t);
                }
            }
        }
        if new.log.level != current.log.level {
            out.applied.push(format!("log.level = {:?}", new.log.level));
            out.log_level = Some(new.log.level.clone());
            next.log.level = new.log.level.clone();
        }
        if let Some(t) = &mut tried {
            // Whatever was applied after the refusal counts as in force.
            t.log.level = next.log.level.clone();
        }
        if self.sip_addrs.tls.is_some() {
            // Read again on every reload, changed paths or not: a renewed certificate is
            // usually written over the old files.
            let (cert, key) = (&new.sip.tls_cert_file, &new.sip.tls_key_file);
            match self.sip.reload_tls_from_pem_files(cert, key) {
                Ok(()) => {
                    out.applied.push(format!(
                        "the SIP TLS certificate, read again from {cert} and {key}"
                    ));
                    next.sip.tls_cert_file.clone_from(cert);
                    next.sip.tls_key_file.clone_from(key);
                    if let Some(t) = &mut tried {
                        t.sip.tls_cert_file.clone_from(cert);
                        t.sip.tls_key_file.clone_from(key);
                    }
                }
                Err(e) => {
                    out.refused.push(format!(
                        "sip.tls_cert_file, sip.tls_key_file: {} (the certificate in use stays)",
                        chain(&e)
                    ));
                    let t = tried.get_or_insert_with(|| next.clone());
                    t.sip.tls_cert_file.clone_from(cert);
                    t.sip.tls_key_file.clone_from(key);
                }
            }
        }
        out.needs_restart = changed_settings(tried.as_ref().unwrap_or(&next), new);
        // Remember what is in force: the new live values, the old fixed ones.
        *current = next;
        out
    }
}

/// The plugin runtimes (the calls' and the simulations'), the registry, auth and metrics: what
/// every request handler and the sync loop share.
fn app_state(config: &Config, store: Store) -> Result<AppState, ServiceError> {
    let kv = Arc::new(SqlKv::new(store.clone()));
    if config.plugins.max_instances_per_tenant >= config.plugins.max_instances {
        tracing::warn!(
            max_instances = config.plugins.max_instances,
            max_instances_per_tenant = config.plugins.max_instances_per_tenant,
            "plugins.max_instances_per_tenant is not below plugins.max_instances: one tenant's calls can take every plugin instance slot of this host"
        );
    }
    let runtime_config = RuntimeConfig {
        deadline: config.plugin_deadline(),
        max_memory_bytes: (config.plugins.max_memory_mib as usize) << 20,
        max_instances: config.plugins.max_instances,
        max_instances_per_tenant: config.plugins.max_instances_per_tenant,
        warm_instances: config.plugins.warm_instances,
        cache_dir: config.cache_dir(),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(runtime_config.clone(), kv.clone())?;
    let sim_limits = config.simulator_limits();
    let sim_runtime = Runtime::new(
        RuntimeConfig {
            fuel_metering: true,
            metrics: false,
            warm_instances: 0,
            max_instances: u32::try_from(sim_limits.concurrency).unwrap_or(u32::MAX),
            // The simulator's slots already bound each tenant's share.
            max_instances_per_tenant: u32::MAX,
            ..runtime_config
        },
        kv,
    )?;
    let simulator = Simulator::new(sim_runtime, sim_limits)
        .map_err(|e| ServiceError::Config(format!("cannot start the simulation threads: {e}")))?;
    let auth = Auth::new(
        &config.api.operator_keys,
        &config.api.jwt_secret,
        Duration::from_secs(config.api.jwt_max_ttl_secs),
        config.rate_limits(),
        config.trusted_proxies(),
    )
    .map_err(|e| ServiceError::Config(format!("api.jwt_secret: {e}")))?;
    Ok(AppState {
        store,
        runtime,
        simulator: Arc::new(simulator),
        registry: Arc::new(Registry::new()),
        auth: Arc::new(auth),
        config: Arc::new(config.api.clone()),
        sip_domain: config.sip.domain.as_str().into(),
        metrics: crate::metrics::install(),
        calls: Arc::default(),
    })
}

/// Resolves once `stopped` says so (or its sender is gone).
async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    while stopped.changed().await.is_ok() {
        if *stopped.borrow() {
            break;
        }
    }
}

/// Serves the API until the service stops.
async fn serve_api(
    listener: tokio::net::TcpListener,
    state: AppState,
    stopped: watch::Receiver<bool>,
) {
    if let Err(e) = api::serve(listener, state, stop_signal(stopped)).await {
        tracing::error!(error = %e, "the API server failed");
    }
}

/// Follows the store's active plugins (activations, deactivations and deletions made through
/// other hosts) until the service stops.
async fn keep_in_sync(
    state: AppState,
    mut broken: HashSet<Wanted>,
    stopped: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(SYNC_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = stop_signal(stopped);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = every.tick() => sync_active(&state, &mut broken).await,
            () = &mut stop => break,
        }
    }
}

/// The settings (dotted paths, e.g. `api.listen`) whose values differ between `old` and `new`.
/// Names only, never values: some are secrets.
fn changed_settings(old: &Config, new: &Config) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &child,
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (a, b) if a != b => out.push(path.to_string()),
            _ => {}
        }
    }
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        // Plain data always serialises; if it ever did not, claim everything changed rather
        // than nothing.
        return vec!["(the whole configuration)".into()];
    };
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

/// What [`Service::seed_demo`] made.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    pub tenant: String,
    /// An admin key for the demo tenant (shown once).
    pub admin_key: String,
    /// `name@version` of each plugin uploaded, active or not.
    pub plugins: Vec<String>,
}

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";

impl Service {
    /// Seeds a tenant `demo` once: its number +15550100, a routing table in `kv`, and every
    /// component in `dir` (`NAME.wasm` becomes plugin NAME, version 1, active). Returns none if
    /// the tenant exists already. `make run` seeds it with the example plugins.
    pub async fn seed_demo(&self, dir: &Path) -> Result<Option<DemoSeed>, ServiceError> {
        let state = &self.state;
        let seed = |e: &dyn std::fmt::Display| ServiceError::Seed(e.to_string());
        if state.store.tenant(DEMO_TENANT).await.is_ok() {
            return Ok(None);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ServiceError::Seed(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ServiceError::Seed(format!(
                "no .wasm files in {}",
                dir.display()
            )));
        }
        let who = Principal {
            subject: "system:demo".into(),
            role: Role::Operator,
            tenant: None,
            anchor: "system".into(),
            expires: None,
        };
        state
            .store
            .create_tenant(DEMO_TENANT, "Demo tenant")
            .await?;
        state
            .store
            .create_did(DEMO_TENANT, "+15550100", "demo number")
            .await?;
        SqlKv::new(state.store.clone())
            .set(DEMO_TENANT, "routes", DEMO_ROUTES.as_bytes())
            .await
            .map_err(|e| seed(&e))?;
        let mut plugins = Vec::new();
        for file in files {
            let Some(name) = file.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let bytes = std::fs::read(&file)
                .map_err(|e| ServiceError::Seed(format!("{}: {e}", file.display())))?;
            let record = state
                .add_plugin_version(&who, DEMO_TENANT, name, bytes.into(), &[], true)
                .await
                .map_err(|e| ServiceError::Seed(format!("{}: {e}", file.display())))?;
            state
                .activate(&who, DEMO_TENANT, name, Some(record.version))
                .await
                .map_err(|e| seed(&e))?;
            plugins.push(format!("{name}@{}", record.version));
        }
        let key = state
            .store
            .create_api_key(Some(DEMO_TENANT), Role::TenantAdmin, "demo", None)
            .await?;
        println!(
            "\nwasmswitch: seeded tenant {DEMO_TENANT:?} with {} (number +15550100).\nIts admin API key (shown once):\n\n    {}\n",
            plugins.join(", "),
            key.secret
        );
        Ok(Some(DemoSeed {
            tenant: DEMO_TENANT.into(),
            admin_key: key.secret,
            plugins,
        }))
    }
}

/// The demo tenant's routing table (the router example's format).
const DEMO_ROUTES: &str = "# prefix  hours  trunk\n+44       *      uk-trunk\n+1800     08-18  us-daytime\n+1800     *      us-night\n+1        *      us-trunk\n";

/// Creates an operator key on first start, when the config names none and the database has
/// none, and prints it once.
async fn bootstrap_operator(store: &Store, config: &Config) -> Result<Option<String>, StoreError> {
    if !config.api.operator_keys.is_empty() || !store.api_keys(None).await?.is_empty() {
        return Ok(None);
    }
    let key = store
        .create_api_key(None, Role::Operator, "bootstrap", None)
        .await?;
    store
        .audit(
            "system",
            None,
            "key.create",
            &key.key.id,
            "bootstrap operator key",
        )
        .await?;
    // Printed, not logged: it must not end up in a log aggregator, and this is the only time
    // anyone can see it.
    println!(
        "\nwasmswitch: created the first operator API key (shown once, store it now):\n\n    {}\n",
        key.secret
    );
    Ok(Some(key.secret))
}

/// Makes this host's registry match the store: every active version loaded (with the code the
/// store has, by sha256) and active, and nothing else active. Runs at start-up and every
/// [`SYNC_EVERY`], so activations, deactivations and tenant deletions made through any host
/// reach every host.
///
/// A version that fails to load is remembered in `broken` and not retried (it was validated
/// on upload, so this means a host-side problem, logged once); its plugin stays inactive here.
async fn sync_active(state: &AppState, broken: &mut HashSet<Wanted>) {
    // Read before the store: if this host activates something while the store is read, the
    // picture below may predate it, and `reconcile` refuses to apply it (next round will).
    let mut generation = state.registry.generation();
    let active = match state.store.active_plugin_versions().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the active plugins; will retry");
            return;
        }
    };
    let mut wanted = Vec::with_capacity(active.len());
    for a in active {
        let Ok(version) = u32::try_from(a.version) else {
            continue;
        };
        let w = Wanted {
            tenant: a.tenant_id,
            name: a.name,
            version,
            sha256: a.sha256,
        };
        if !broken.contains(&w) {
            match state
                .ensure_loaded(&w.tenant, &w.name, a.version, &w.sha256)
                .await
            {
                // This round's own load moves the generation by one: not a change behind its
                // back. Without this, the round that loads a version could never activate it
                // (only the next round, 500 ms later, could), and the start-up round, which
                // loads everything, activated nothing before the API and SIP answered.
                Ok(true) => generation += 1,
                Ok(false) => {}
                Err(e @ EnsureLoadedError::Load(..)) => {
                    tracing::error!(tenant = w.tenant, plugin = w.name, version, error = %e, "cannot load an active plugin");
                    broken.insert(w.clone());
                }
                // The store is busy or the row changed under us: try the whole round again
                // rather than deactivate a plugin for want of one read.
                Err(e) => {
                    tracing::warn!(tenant = w.tenant, plugin = w.name, version, error = %e, "plugin sync will retry");
                    return;
                }
            }
        }
        wanted.push(w);
    }
    match state.registry.reconcile(generation, &wanted) {
        Ok(changes) => {
            for change in changes {
                match change {
                    Reconciled::Activated(id) => {
                        tracing::info!(plugin = %id, "plugin active on this host");
                    }
                    Reconciled::Deactivated { tenant, name } => {
                        tracing::info!(
                            tenant,
                            plugin = name,
                            "plugin no longer active on this host"
                        );
                    }
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "plugin sync skipped a round"),
    }
}
