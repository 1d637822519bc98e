//! The REST API under `/v1` (axum), with `/healthz`, `/readyz`, `/metrics` and the OpenAPI
//! document at `/v1/openapi.json`, generated from the handlers by utoipa.
//!
//! Every route authenticates with `Authorization: Bearer <API key or token>`
//! ([`auth::Principal`]); tenant routes check the caller may see that tenant before touching
//! the store. Every error is an [`ApiError`] rendered as problem+json.

mod auth;
mod error;
mod extract;
mod kv;
mod ops;
mod plugins;
mod records;
mod simulate;
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

pub use auth::{Auth, Claims, Principal};
pub use error::{ApiError, PROBLEM_BASE, Problem};
pub use tenants::WhoAmI;

use crate::config::ApiConfig;
use crate::plugins::{PluginId, Registry, Runtime};
use crate::store::{Activation, NewPlugin, PluginRecord, Store};

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
    /// A runtime with fuel metering, for the simulate endpoint (fuel is an engine setting).
    pub sim_runtime: Runtime,
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
    pub config: Arc<ApiConfig>,
    /// The SIP domain (digest realm) SIP users are created in.
    pub sip_domain: Arc<str>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Versions compiled for `sim_runtime`, by `tenant/name@version`.
    pub sim_cache: Arc<SimCache>,
}

/// A small cache of versions compiled for the simulation runtime.
#[derive(Debug, Default)]
pub struct SimCache {
    map: std::sync::Mutex<std::collections::HashMap<String, Arc<crate::plugins::PluginVersion>>>,
}

impl SimCache {
    /// Entries kept; beyond this the cache starts afresh (the disk cache makes a reload cheap).
    const MAX: usize = 32;

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, Arc<crate::plugins::PluginVersion>>,
    > {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<Arc<crate::plugins::PluginVersion>> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn insert(&self, key: String, v: Arc<crate::plugins::PluginVersion>) {
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, v);
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
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
        let record = self
            .store
            .insert_plugin(NewPlugin {
                tenant_id: tenant,
                name,
                sha256: &loaded.sha256,
                world: &world,
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
    pub(crate) async fn activate(
        &self,
        who: &Principal,
        tenant: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Activation, ApiError> {
        if let Some(v) = version {
            self.ensure_loaded(tenant, name, v).await?;
        }
        let activation = match version {
            Some(v) => {
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
        if version.is_none() {
            self.ensure_loaded(tenant, name, activation.version).await?;
        }
        let v = u32::try_from(activation.version)
            .map_err(|_| ApiError::Internal("version number out of range".into()))?;
        self.registry.activate(tenant, name, v)?;
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

    /// Makes sure this host's registry holds `version` (compiling or reading the cache).
    pub(crate) async fn ensure_loaded(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<(), ApiError> {
        let v = u32::try_from(version).map_err(|_| ApiError::NotFound("plugin version"))?;
        if self.registry.versions(tenant, name).0.contains(&v) {
            return Ok(());
        }
        let (_, wasm) = self.store.plugin(tenant, name, version).await?;
        let id = PluginId {
            tenant: tenant.into(),
            name: name.into(),
            version: v,
        };
        let loaded = self
            .runtime
            .load(id, wasm.into(), &[])
            .await
            .map_err(|e| ApiError::Internal(format!("stored plugin {name}@{version}: {e}")))?;
        self.registry.add(loaded);
        Ok(())
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
        .routes(routes!(tenants::mint_token))
        .routes(routes!(tenants::whoami))
        .routes(routes!(plugins::list))
        .routes(routes!(plugins::version, plugins::delete))
        .routes(routes!(plugins::activate))
        .routes(routes!(plugins::rollback))
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
        .routes(routes!(telephony::delete_sip_user))
        .routes(routes!(records::cdrs))
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

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let auth = state.auth.clone();
    let tidy = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            auth.tidy();
        }
    });
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    tidy.abort();
    result
}
