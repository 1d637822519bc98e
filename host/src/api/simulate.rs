//! `POST /v1/tenants/{tenant}/simulate`: runs a tenant's plugin on a described call, IVR
//! session or message and shows what it decided, what it logged and the fuel it used — before
//! any phone rings.
//!
//! Simulations run on a second runtime with fuel metering (fuel is an engine-wide setting, and
//! production calls run without it), with the same deadline and memory cap as calls. The
//! plugin reads the tenant's real `kv` through a dry-run overlay: its writes are reported in
//! the answer, never stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::extract::{Json, Path};
use super::tenants::TenantPath;
use super::{ApiError, AppState, Reply};
use crate::plugins::model::{CallInfo, IvrAction, IvrEvent, Message, RouteDecision, SmsDecision};
use crate::plugins::{
    CallInstance, Capability, InstanceOptions, KvStore, LogLine, OverlayKv, PluginError, PluginId,
    PluginVersion,
};

/// The most IVR events one simulation may feed.
const MAX_EVENTS: usize = 100;

/// What to simulate: exactly one of `call`, `ivr` or `message`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The plugin to run. Default: the tenant's active plugin with the needed interface.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The version to run (any stored one). Default: the active version.
    #[serde(default)]
    pub version: Option<i64>,
    /// A new call to route (WIT `call-info`, kebab-case fields), e.g.
    /// `{"from": "+442071234567", "to": "+14155550100"}`.
    #[serde(default)]
    pub call: Option<CallInfo>,
    /// IVR events to feed in order to one instance, e.g.
    /// `[{"started": {"call": {...}}}, {"dtmf": "1"}, "timeout"]`.
    #[serde(default)]
    pub ivr: Option<Vec<IvrEvent>>,
    /// An SMS to police (WIT `message`).
    #[serde(default)]
    pub message: Option<Message>,
    /// Extra `kv` entries (UTF-8 values) the plugin sees in this simulation only.
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
}

/// One call into the plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimStep {
    /// `route`, `on-event` or `on-message`.
    pub function: &'static str,
    /// What the switch would act on: the plugin's answer, or the tenant's fallback if it
    /// failed; null if the plugin could not be instantiated.
    pub output: Option<SimOutput>,
    /// Fuel (about one per WebAssembly instruction) the call used.
    pub fuel: Option<u64>,
    pub elapsed_us: u64,
    /// Why the plugin failed, if it did (then `output` is the fallback).
    pub error: Option<SimError>,
}

/// A plugin's answer, by the function called.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SimOutput {
    /// `route`: what to do with the call (WIT `route-decision`).
    Route(RouteDecision),
    /// `on-event`: the IVR's actions, in order (WIT `list<ivr-action>`).
    Ivr(Vec<IvrAction>),
    /// `on-message`: what to do with the SMS (WIT `sms-decision`).
    Message(SmsDecision),
}

impl From<RouteDecision> for SimOutput {
    fn from(d: RouteDecision) -> Self {
        SimOutput::Route(d)
    }
}

impl From<Vec<IvrAction>> for SimOutput {
    fn from(a: Vec<IvrAction>) -> Self {
        SimOutput::Ivr(a)
    }
}

impl From<SmsDecision> for SimOutput {
    fn from(d: SmsDecision) -> Self {
        SimOutput::Message(d)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimError {
    /// timeout, out_of_memory, trap, bad_return, not_exported, poisoned or instantiate.
    pub kind: &'static str,
    pub message: String,
}

/// The simulation's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulateResult {
    pub plugin: String,
    pub version: i64,
    pub steps: Vec<SimStep>,
    /// Every line the plugin logged.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogLine>,
    /// Counters the plugin added to.
    pub counters: BTreeMap<String, u64>,
    /// Total fuel used.
    pub fuel: u64,
    /// What the plugin would have written to `kv` (none: deleted). Not stored.
    pub kv_changes: BTreeMap<String, Option<String>>,
}

fn sim_error(e: &PluginError) -> SimError {
    SimError {
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// Runs a plugin on a described call, IVR session or message.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/simulate", tag = "simulate",
    params(TenantPath), request_body = SimulateRequest,
    responses(
        (status = 200, body = SimulateResult),
        (status = 404, body = super::Problem),
        (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn simulate(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(req): Json<SimulateRequest>,
) -> Reply<SimulateResult> {
    who.read(&p.tenant)?;
    let tenant = p.tenant.as_str();
    let inputs = [req.call.is_some(), req.ivr.is_some(), req.message.is_some()];
    if inputs.iter().filter(|x| **x).count() != 1 {
        return Err(ApiError::Unprocessable(
            "give exactly one of call, ivr or message".into(),
        ));
    }
    let needs = if req.call.is_some() {
        Capability::Routing
    } else if req.ivr.is_some() {
        Capability::Ivr
    } else {
        Capability::Messaging
    };
    if req
        .ivr
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.len() > MAX_EVENTS)
    {
        return Err(ApiError::Unprocessable(format!(
            "ivr takes 1 to {MAX_EVENTS} events"
        )));
    }
    let (name, version) = pick_version(&state, tenant, &req, needs).await?;
    let plugin = sim_version(&state, tenant, &name, version).await?;
    if !plugin.has(needs) {
        return Err(ApiError::Unprocessable(format!(
            "plugin {name}@{version} does not export {}",
            needs.export_name()
        )));
    }

    let overlay = Arc::new(OverlayKv::new(state.runtime.kv().clone()));
    for (k, v) in &req.kv {
        overlay
            .set(tenant, k, v.as_bytes())
            .await
            .map_err(|e| ApiError::Unprocessable(format!("kv entry {k:?}: {e}")))?;
    }
    let base: BTreeMap<String, Option<Vec<u8>>> = req
        .kv
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.as_bytes().to_vec())))
        .collect();
    let fallback = state
        .registry
        .snapshot(tenant)
        .map(|s| s.fallback.clone())
        .unwrap_or_default();

    let options = InstanceOptions {
        capture: true,
        kv: Some(overlay.clone()),
    };
    let mut steps = Vec::new();
    let mut instance: Option<CallInstance> = None;
    let started = Instant::now();
    match plugin.instantiate(options).await {
        Err(e) => steps.push(SimStep {
            function: "instantiate",
            output: None,
            fuel: None,
            elapsed_us: started.elapsed().as_micros() as u64,
            error: Some(sim_error(&e)),
        }),
        Ok(mut i) => {
            if let Some(mut call) = req.call {
                call.tenant = tenant.to_string();
                let r = i.route(&call).await;
                steps.push(step("route", &i, r, &fallback.route));
            } else if let Some(events) = req.ivr {
                for event in &events {
                    let r = i.on_ivr_event(event).await;
                    let failed = r.is_err();
                    steps.push(step("on-event", &i, r, &fallback.ivr));
                    if failed {
                        break;
                    }
                }
            } else if let Some(mut msg) = req.message {
                msg.tenant = tenant.to_string();
                let r = i.on_message(&msg).await;
                steps.push(step("on-message", &i, r, &fallback.sms));
            }
            instance = Some(i);
        }
    }
    let (logs, counters) = instance
        .as_ref()
        .map(|i| (i.logs().to_vec(), i.counters()))
        .unwrap_or_default();
    let kv_changes = overlay
        .changes(tenant)
        .into_iter()
        .filter(|(k, v)| base.get(k) != Some(v))
        .map(|(k, v)| (k, v.map(|b| String::from_utf8_lossy(&b).into_owned())))
        .collect();
    Ok(axum::Json(SimulateResult {
        plugin: name,
        version,
        fuel: steps.iter().filter_map(|s| s.fuel).sum(),
        steps,
        logs,
        counters,
        kv_changes,
    }))
}

fn step<T: Into<SimOutput> + Clone>(
    function: &'static str,
    i: &CallInstance,
    result: Result<T, PluginError>,
    fallback: &T,
) -> SimStep {
    let (output, error) = match result {
        Ok(v) => (Some(v.into()), None),
        Err(e) => (Some(fallback.clone().into()), Some(sim_error(&e))),
    };
    SimStep {
        function,
        output,
        fuel: i.last_fuel(),
        elapsed_us: i.last_elapsed().as_micros() as u64,
        error,
    }
}

/// Which plugin and version the request means.
async fn pick_version(
    state: &AppState,
    tenant: &str,
    req: &SimulateRequest,
    needs: Capability,
) -> Result<(String, i64), ApiError> {
    match (&req.plugin, req.version) {
        (Some(name), Some(v)) => Ok((name.clone(), v)),
        (Some(name), None) => {
            let versions = state.store.plugin_versions(tenant, name).await?;
            let active = versions.iter().find(|r| r.active).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "plugin {name} has no active version; give version"
                ))
            })?;
            Ok((name.clone(), active.version))
        }
        (None, Some(_)) => Err(ApiError::Unprocessable("version needs plugin too".into())),
        (None, None) => {
            state.store.tenant(tenant).await?;
            let set = state.registry.snapshot(tenant).unwrap_or_default();
            let p = set.find(needs).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "the tenant has no active plugin exporting {}; upload and activate one, or name one with plugin and version",
                    needs.export_name()
                ))
            })?;
            Ok((p.id.name.to_string(), i64::from(p.id.version)))
        }
    }
}

/// The version compiled for the simulation runtime, from a small in-memory cache or the store.
async fn sim_version(
    state: &AppState,
    tenant: &str,
    name: &str,
    version: i64,
) -> Result<Arc<PluginVersion>, ApiError> {
    let key = format!("{tenant}/{name}@{version}");
    if let Some(v) = state.sim_cache.get(&key) {
        return Ok(v);
    }
    let v = u32::try_from(version).map_err(|_| ApiError::NotFound("plugin version"))?;
    let (_, wasm) = state.store.plugin(tenant, name, version).await?;
    let id = PluginId {
        tenant: tenant.into(),
        name: name.into(),
        version: v,
    };
    let loaded = state
        .sim_runtime
        .load(id, wasm.into(), &[])
        .await
        .map_err(|e| ApiError::Internal(format!("stored plugin {key}: {e}")))?;
    state.sim_cache.insert(key, loaded.clone());
    Ok(loaded)
}
