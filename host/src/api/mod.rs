//! The REST API under `/v1` (axum), with `/healthz`, `/readyz`, `/metrics` and the OpenAPI
//! document at `/v1/openapi.json`, generated from the handlers by utoipa.
//!
//! Every route authenticates with `Authorization: Bearer <API key or token>`
//! ([`auth::Principal`]); tenant routes check the caller may see that tenant before touching
//! the store. Every error is an [`ApiError`] rendered as problem+json.

mod auth;
mod calls;
mod error;
mod extract;
mod kv;
mod ops;
mod plugins;
mod records;
mod simulate;
mod simulator;
mod telephony;
mod tenants;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Auth, Claims, Principal, RateLimits};
pub use error::{ApiError, PROBLEM_BASE, Problem};
pub use simulator::{Simulator, SimulatorLimits};
pub use tenants::WhoAmI;

use crate::config::ApiConfig;
use crate::plugins::{PluginId, Registry, Runtime};
use crate::store::{Activation, NewPlugin, PluginRecord, Store, StoreError};

/// Why [`AppState::ensure_loaded`] could not load a stored version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnsureLoadedError {
    /// The store could not be read (busy, unreachable): worth trying again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored component does not load on this host. It was validated at upload, so this is
    /// a host-side problem, not worth retrying.
    #[error("stored plugin {0}: {1}")]
    Load(String, crate::plugins::LoadError),
    /// The version is gone, or its code changed between two reads.
    #[error("plugin version not found")]
    Gone,
}

impl From<EnsureLoadedError> for ApiError {
    fn from(e: EnsureLoadedError) -> Self {
        match e {
            EnsureLoadedError::Store(e) => e.into(),
            EnsureLoadedError::Gone => ApiError::NotFound("plugin version"),
            load @ EnsureLoadedError::Load(..) => ApiError::Internal(load.to_string()),
        }
    }
}

/// A handler's JSON answer.
pub type Reply<T> = Result<axum::Json<T>, ApiError>;
/// A handler's answer for a created resource.
pub type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The production runtime: the one calls use.
    pub runtime: Runtime,
    /// Where the simulate endpoint runs plugins: its own fuel-metering runtime, threads and
    /// slots.
    pub simulator: Arc<Simulator>,
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
    pub config: Arc<ApiConfig>,
    /// `sip.domain`: tenants' default SIP domains are `<tenant>.<sip_domain>`.
    pub sip_domain: Arc<str>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The calls layer, once SIP is up (the API is built first).
    pub calls: Arc<std::sync::OnceLock<crate::calls::Calls>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// After a write to DIDs, trunks or a tenant's call settings: the calls layer reloads its
    /// directory now, so the next call sees the change (other hosts see it within their poll).
    pub async fn directory_changed(&self) {
        if let Some(calls) = self.calls.get()
            && let Err(e) = calls.refresh().await
        {
            tracing::warn!(error = %e, "could not reload the call directory");
        }
    }

    /// `<tenant>.<sip.domain>`, where a tenant's phones can always register.
    pub fn default_sip_domain_of(&self, tenant: &str) -> String {
        format!("{tenant}.{}", self.sip_domain)
    }

    /// The SIP domain a tenant's phones register in, and the digest realm its SIP users'
    /// passwords are hashed in: its own if it set one, else its default one.
    pub fn sip_domain_of(&self, tenant: &crate::store::Tenant) -> String {
        tenant
            .sip_domain
            .clone()
            .unwrap_or_else(|| self.default_sip_domain_of(&tenant.id))
    }

    /// Records a change in the audit log. A failure to record is logged, not returned: the
    /// change itself has been made.
    pub(crate) async fn audit(
        &self,
        who: &Principal,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        detail: &str,
    ) {
        tracing::info!(actor = %who.subject, tenant, action, target, detail, "audit");
        if let Err(e) = self
            .store
            .audit(&who.subject, tenant, action, target, detail)
            .await
        {
            tracing::error!(error = %e, action, target, "cannot write the audit log");
        }
    }

    /// Validates a component and stores it as the next version of `name`, not active. Nothing
    /// is stored if validation fails. With `keep`, the validated version stays loaded on this
    /// host, ready to activate; otherwise it is dropped and loaded again (from the compiled
    /// cache) if it is ever activated, so stored versions cost no memory.
    pub async fn add_plugin_version(
        &self,
        who: &Principal,
        tenant: &str,
        name: &str,
        bytes: bytes::Bytes,
        expect: &[crate::plugins::Capability],
        keep: bool,
    ) -> Result<PluginRecord, ApiError> {
        let id = PluginId {
            tenant: tenant.into(),
            name: name.into(),
            version: 0,
        };
        // `Bytes` clones share the buffer: the compiler's thread and the store see one copy.
        let loaded = self.runtime.load(id, bytes.clone(), expect).await?;
        let world = loaded.world();
        let contract = loaded.target.to_string();
        let record = self
            .store
            .insert_plugin(NewPlugin {
                tenant_id: tenant,
                name,
                sha256: &loaded.sha256,
                world,
                contract: &contract,
                uploaded_by: &who.subject,
                wasm: &bytes,
            })
            .await?;
        let version = u32::try_from(record.version)
            .map_err(|_| ApiError::Internal("version number out of range".into()))?;
        if keep {
            self.registry.add(loaded.with_version(version));
        }
        let target = format!("{}@{}", record.name, record.version);
        self.audit(who, Some(tenant), "plugin.upload", &target, &record.sha256)
            .await;
        Ok(record)
    }

    /// Activates `version` (or rolls back, for none): loads it into the runtime if this host
    /// has not yet, records it in the store, then swaps it in for new calls.
    ///
    /// Once the store has the change, nothing below may tell the client to send it again (a
    /// second rollback would go one version further back): if this host cannot swap it in at
    /// once, the change stands and the sync loop swaps it in on its next round.
    pub(crate) async fn activate(
        &self,
        who: &Principal,
        tenant: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Activation, ApiError> {
        let activation = match version {
            Some(v) => {
                // Loaded before it is made active, so a version that cannot load is refused.
                let record = self.store.plugin_record(tenant, name, v).await?;
                self.ensure_loaded(tenant, name, v, &record.sha256).await?;
                self.store
                    .activate_plugin(tenant, name, v, &who.subject)
                    .await?
            }
            None => {
                self.store
                    .rollback_plugin(tenant, name, &who.subject)
                    .await?
            }
        };
        if let Err(e) = self.swap_in(tenant, name, activation.version).await {
            tracing::warn!(tenant, plugin = name, version = activation.version, error = %e,
                "activated in the store; this host swaps it in on its next sync");
        }
        let action = if version.is_some() {
            "plugin.activate"
        } else {
            "plugin.rollback"
        };
        let detail = activation
            .previous
            .map(|p| format!("previous {p}"))
            .unwrap_or_default();
        self.audit(
            who,
            Some(tenant),
            action,
            &format!("{name}@{}", activation.version),
            &detail,
        )
        .await;
        Ok(activation)
    }

    /// Makes no version of the plugin active, in the store and on this host (the other hosts
    /// follow on their next sync).
    pub(crate) async fn deactivate(
        &self,
        who: &Principal,
        tenant: &str,
        name: &str,
    ) -> Result<crate::store::Deactivation, ApiError> {
        let done = self
            .store
            .deactivate_plugin(tenant, name, &who.subject)
            .await?;
        self.registry.deactivate(tenant, name);
        self.audit(
            who,
            Some(tenant),
            "plugin.deactivate",
            &format!("{name}@{}", done.version),
            "",
        )
        .await;
        Ok(done)
    }

    /// Loads the stored `version` if needed and makes it active on this host.
    async fn swap_in(&self, tenant: &str, name: &str, version: i64) -> Result<(), ApiError> {
        let record = self.store.plugin_record(tenant, name, version).await?;
        self.ensure_loaded(tenant, name, version, &record.sha256)
            .await?;
        let v = u32::try_from(version)
            .map_err(|_| ApiError::Internal("version number out of range".into()))?;
        self.registry.activate(tenant, name, v)?;
        Ok(())
    }

    /// Makes sure this host's registry holds `version` with the code whose hex sha256 is
    /// `sha256` (compiling it or reading the compiled cache). A version loaded with other code
    /// under the same number (a tenant deleted and created again) is replaced.
    /// True when it loaded the version now: the registry's generation moved by one
    /// ([`Registry::add`]), which a sync round must not take for a change
    /// made behind its back.
    pub(crate) async fn ensure_loaded(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
        sha256: &str,
    ) -> Result<bool, EnsureLoadedError> {
        let v = u32::try_from(version).map_err(|_| EnsureLoadedError::Gone)?;
        if self
            .registry
            .loaded(tenant, name, v)
            .is_some_and(|p| p.sha256 == sha256)
        {
            return Ok(false);
        }
        let (_, wasm) = match self.store.plugin(tenant, name, version).await {
            Err(StoreError::NotFound(_)) => return Err(EnsureLoadedError::Gone),
            other => other?,
        };
        let id = PluginId {
            tenant: tenant.into(),
            name: name.into(),
            version: v,
        };
        let loaded = self
            .runtime
            .load(id, wasm.into(), &[])
            .await
            .map_err(|e| EnsureLoadedError::Load(format!("{name}@{version}"), e))?;
        if loaded.sha256 != sha256 {
            // The stored code changed between the two reads: only a tenant deleted and
            // created again under the same id can do that.
            return Err(EnsureLoadedError::Gone);
        }
        self.registry.add(loaded);
        Ok(true)
    }

    /// Forgets a deleted tenant's plugins on this host.
    pub(crate) fn unload_tenant(&self, tenant: &str) {
        self.registry.remove_tenant(tenant);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmswitch",
        description = "A programmable telephone switch: tenants, plugins (WebAssembly components that route calls, run IVRs and police SMS), numbers, trunks, SIP users and call records.\n\nAuthenticate with `Authorization: Bearer <API key or token>`. Errors are RFC 9457 problem documents with a stable `type`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "tenants", description = "Customers of the switch"),
        (name = "keys", description = "API keys and bearer tokens"),
        (name = "plugins", description = "Upload, version, activate and roll back plugins"),
        (name = "simulate", description = "Run a plugin on a described call, IVR session or message"),
        (name = "kv", description = "The tenant's key-value data its plugins read and write"),
        (name = "telephony", description = "Numbers, trunks and SIP users"),
        (name = "records", description = "Call records and the audit log"),
        (name = "calls", description = "Live calls: list and hang up"),
        (name = "operations", description = "Health, readiness, metrics")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (wsk_...) or an HS256 token"))
                    .build(),
            ),
        );
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.config.max_upload_bytes;
    let body_limit = state.config.max_body_bytes;
    let uploads = OpenApiRouter::new()
        .routes(routes!(plugins::upload, plugins::versions))
        .layer(DefaultBodyLimit::max(upload_limit));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get, tenants::update, tenants::delete))
        .routes(routes!(tenants::create_key, tenants::list_keys))
        .routes(routes!(tenants::revoke_key))
        .routes(routes!(
            tenants::get_call_settings,
            tenants::put_call_settings
        ))
        .routes(routes!(tenants::get_limits, tenants::put_limits))
        .routes(routes!(tenants::mint_token))
        .routes(routes!(tenants::whoami))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::version, plugins::delete))
        .routes(routes!(plugins::activate))
        .routes(routes!(plugins::rollback))
        .routes(routes!(plugins::deactivate))
        .routes(routes!(simulate::simulate))
        .routes(routes!(kv::list))
        .routes(routes!(kv::get, kv::put, kv::delete))
        .routes(routes!(telephony::create_did, telephony::list_dids))
        .routes(routes!(telephony::delete_did))
        .routes(routes!(telephony::create_trunk, telephony::list_trunks))
        .routes(routes!(
            telephony::get_trunk,
            telephony::update_trunk,
            telephony::delete_trunk
        ))
        .routes(routes!(
            telephony::create_sip_user,
            telephony::list_sip_users
        ))
        .routes(routes!(
            telephony::update_sip_user,
            telephony::delete_sip_user
        ))
        .routes(routes!(telephony::list_registrations))
        .routes(routes!(records::cdrs))
        .routes(routes!(calls::list))
        .routes(routes!(calls::hang_up))
        .routes(routes!(records::audit))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .merge(uploads)
        .split_for_parts();
    let openapi = Arc::new(openapi);
    api.route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let doc = openapi.clone();
            async move { axum::Json(doc) }
        }),
    )
    .fallback(ops::not_found)
    .layer(axum::middleware::from_fn(ops::reject_nul))
    .layer(axum::middleware::from_fn(ops::track))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        ops::panicked,
    ))
    .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (up to [`DRAIN_TIMEOUT`]).
///
/// HTTP/1.1 only. A client gets `api.read_timeout_secs` to send a request's headers (the same
/// bounds how long an idle kept-alive connection stays open), and may pause no longer than that
/// while sending its body: a slow or stalled client cannot hold a connection, and the memory
/// and task behind it, for ever. Each request carries its peer's address, which limits failed
/// authentications per source address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::connect_info::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower_service::Service;

    let read_timeout = Duration::from_secs(state.config.read_timeout_secs.max(1));
    let auth = state.auth.clone();
    let tidy = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            auth.tidy();
        }
    });
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine. Pause so a persistent error does not spin.
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
                let mut req = req.map(|body| {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(read_timeout, body))
                });
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().call(req)
            });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("API requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    tidy.abort();
    Ok(())
}

/// How long a stopping host waits for API requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
