//! `POST /v1/tenants/{tenant}/simulate`: runs a tenant's plugin on a described call (its
//! events, in order), message or delivery report and shows what it decided, what it logged and
//! the fuel it used — before any phone rings. Contract 0.1 plugins also answer 0.1's own
//! requests (`call`, `ivr`) exactly as they did when 0.1 was current.
//!
//! Simulations run on a second runtime with fuel metering (fuel is an engine-wide setting, and
//! production calls run without it), with the same deadline and memory cap as calls, on
//! threads of their own and in a bounded number of slots ([`super::simulator`]). The plugin
//! reads the tenant's real `kv` through a dry-run overlay: its writes are reported in the
//! answer, never stored. The version to run is looked up in the store on every request and
//! its compiled code found by tenant uid and sha256, so a deleted version, or a tenant deleted
//! and created again, never runs old code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::extract::{Json, Path};
use super::simulator::OnRuntime;
use super::tenants::TenantPath;
use super::{ApiError, AppState, Reply};
use crate::plugins::model::v0_1::{CallInfo, IvrAction, IvrEvent, RouteDecision};
use crate::plugins::model::{
    Action, AnswerState, CallEvent, DeliveryReport, Invalid, Message, SmsDecision,
};
use crate::plugins::{
    CallInstance, Capability, Contract, InstanceOptions, KvStore, LogLine, OverlayKv, PluginError,
    PluginId, PluginVersion, world_includes,
};
use crate::store::PluginRecord;

/// The most events one simulation may feed.
const MAX_EVENTS: usize = 100;

/// What to simulate: exactly one of `events`, `message`, `delivery`, or for a contract 0.1
/// plugin `call` or `ivr`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// The plugin to run. Default: the tenant's active plugin with the needed interface.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The version to run (any stored one). Default: the active version.
    #[serde(default)]
    pub version: Option<i64>,
    /// A call's events (WIT `call-event`, kebab-case names), fed in order to one instance as
    /// one call would, e.g. `[{"incoming": {"from": "+442071234567", "to": "+14155550100"}},
    /// {"dtmf": {"leg": 1, "digit": "5"}}]`. The tenant's first plugin for calls by default.
    #[serde(default)]
    pub events: Option<Vec<CallEvent>>,
    /// An SMS to police (WIT `message`).
    #[serde(default)]
    pub message: Option<Message>,
    /// A delivery report for the messaging policy (WIT `delivery-report`).
    #[serde(default)]
    pub delivery: Option<DeliveryReport>,
    /// Contract 0.1 only: a new call to route (0.1 `call-info`), answered by `route`.
    #[serde(default)]
    pub call: Option<CallInfo>,
    /// Contract 0.1 only: IVR events (0.1 `ivr-event`) to feed in order to one instance, e.g.
    /// `[{"started": {"call": {...}}}, {"dtmf": "1"}, "timeout"]`.
    #[serde(default)]
    pub ivr: Option<Vec<IvrEvent>>,
    /// Extra `kv` entries (UTF-8 values) the plugin sees in this simulation only.
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
}

/// One call into the plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimStep {
    /// `on-event`, `on-message` or `on-delivery` (for 0.1's own requests, `route` or
    /// `on-event`).
    pub function: &'static str,
    /// What the switch would act on: the plugin's answer, or the tenant's fallback if it
    /// failed; null if the plugin could not be instantiated.
    pub output: Option<SimOutput>,
    /// Fuel (about one per WebAssembly instruction) the call used.
    pub fuel: Option<u64>,
    pub elapsed_us: u64,
    /// Why the plugin failed, if it did (then `output` is the fallback).
    pub error: Option<SimError>,
    /// An action of the answer that breaks the contract's rules: the switch would carry out the
    /// actions before it (`output`), then tell the plugin `action-failed` (`invalid`). Absent
    /// when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<SimInvalid>,
}

/// An invalid action in an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimInvalid {
    pub action: Action,
    pub reason: String,
}

/// A plugin's answer, by the function called.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SimOutput {
    /// `on-event`: the actions, in order (WIT `list<action>`).
    Actions(Vec<Action>),
    /// `on-message`: what to do with the SMS (WIT `sms-decision`).
    Message(SmsDecision),
    /// Contract 0.1 `route`: what to do with the call (0.1 `route-decision`).
    Route(RouteDecision),
    /// Contract 0.1 `on-event`: the IVR's actions, in order (0.1 `list<ivr-action>`).
    Ivr(Vec<IvrAction>),
}

impl From<Vec<Action>> for SimOutput {
    fn from(a: Vec<Action>) -> Self {
        SimOutput::Actions(a)
    }
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
    /// timeout, out_of_memory, trap, bad_return, not_exported, poisoned, instantiate or
    /// overloaded.
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
        (status = 422, body = super::Problem),
        (status = 503, description = "every simulation slot is busy; retry after `Retry-After` seconds", body = super::Problem)),
    security(("bearer" = [])))]
pub async fn simulate(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(req): Json<SimulateRequest>,
) -> Reply<SimulateResult> {
    who.read(&p.tenant)?;
    let tenant = p.tenant.as_str();
    let needs = req.needs()?;
    let uid = state.store.tenant(tenant).await?.uid;
    let record = pick_version(&state, tenant, &req, needs).await?;
    let (name, version) = (record.name.clone(), record.version);
    let slot = state.simulator.slot(tenant).await?;
    let plugin = sim_version(&state, &uid, &record).await?;
    req.fits(&plugin, needs)
        .map_err(|why| ApiError::Unprocessable(format!("plugin {name}@{version} {why}")))?;

    // The plugin's kv reads reach the database from the API's runtime, not the simulation
    // threads (see `OnRuntime`).
    let base = Arc::new(OnRuntime::new(
        state.runtime.kv().clone(),
        tokio::runtime::Handle::current(),
    ));
    let overlay = Arc::new(OverlayKv::new(base));
    for (k, v) in &req.kv {
        overlay
            .set(tenant, k, v.as_bytes())
            .await
            .map_err(|e| ApiError::Unprocessable(format!("kv entry {k:?}: {e}")))?;
    }
    let fallback = state
        .registry
        .snapshot(tenant)
        .map(|s| s.fallback.clone())
        .unwrap_or_default();
    let given_kv = req.kv.clone();
    let run = Run {
        tenant: tenant.to_string(),
        plugin,
        overlay: overlay.clone(),
        fallback,
        input: req.into_input(),
    };
    let (steps, logs, counters) = state.simulator.run(slot, run.go()).await?;
    Ok(axum::Json(SimulateResult {
        plugin: name,
        version,
        fuel: steps.iter().filter_map(|s| s.fuel).sum(),
        steps,
        logs,
        counters,
        kv_changes: kv_changes(&overlay, tenant, &given_kv),
    }))
}

impl SimulateRequest {
    /// Checks the request's shape; what the plugin it runs must be able to do.
    fn needs(&self) -> Result<Capability, ApiError> {
        let given = [
            self.events.is_some(),
            self.message.is_some(),
            self.delivery.is_some(),
            self.call.is_some(),
            self.ivr.is_some(),
        ];
        if given.iter().filter(|x| **x).count() != 1 {
            return Err(ApiError::Unprocessable(
                "give exactly one of events, message, delivery (or, for a contract 0.1 plugin, call or ivr)".into(),
            ));
        }
        for (what, events) in [
            ("events", self.events.as_ref().map(Vec::len)),
            ("ivr", self.ivr.as_ref().map(Vec::len)),
        ] {
            if events.is_some_and(|n| n == 0 || n > MAX_EVENTS) {
                return Err(ApiError::Unprocessable(format!(
                    "{what} takes 1 to {MAX_EVENTS} events"
                )));
            }
        }
        Ok(if self.message.is_some() || self.delivery.is_some() {
            Capability::Messaging
        } else {
            Capability::Calls
        })
    }

    /// Whether `plugin` can answer this request; if not, why (after "plugin NAME@VERSION").
    fn fits(&self, plugin: &PluginVersion, needs: Capability) -> Result<(), String> {
        if !plugin.has(needs) {
            return Err(format!(
                "does not export wasmswitch:plugin/{}",
                plugin.target.contract.interface(needs)
            ));
        }
        // 0.1's own requests need a 0.1 plugin with 0.1's own interface.
        let v0_1_interface = if self.call.is_some() {
            "call-routing"
        } else if self.ivr.is_some() {
            "ivr-flow"
        } else {
            return Ok(());
        };
        if plugin.target.contract != Contract::V0_1 {
            return Err(format!(
                "targets {}, and call and ivr are contract 0.1's requests: send its events instead",
                plugin.target
            ));
        }
        if !plugin.interfaces.iter().any(|i| i == v0_1_interface) {
            return Err(format!(
                "does not export wasmswitch:plugin/{v0_1_interface}"
            ));
        }
        Ok(())
    }

    fn into_input(self) -> Input {
        if let Some(events) = self.events {
            Input::Events(events)
        } else if let Some(message) = self.message {
            Input::Message(message)
        } else if let Some(report) = self.delivery {
            Input::Delivery(report)
        } else if let Some(call) = self.call {
            Input::Route(call)
        } else {
            Input::Ivr(self.ivr.unwrap_or_default())
        }
    }
}

/// What the plugin wrote to `kv` in the simulation, leaving out the entries the request gave
/// that it left as they were (values as text, lossily; none: deleted).
fn kv_changes(
    overlay: &OverlayKv,
    tenant: &str,
    given: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    overlay
        .changes(tenant)
        .into_iter()
        .filter(|(k, v)| given.get(k).map(|g| Some(g.as_bytes().to_vec())).as_ref() != Some(v))
        .map(|(k, v)| (k, v.map(|b| String::from_utf8_lossy(&b).into_owned())))
        .collect()
}

/// What a simulation feeds the plugin.
enum Input {
    Events(Vec<CallEvent>),
    Message(Message),
    Delivery(DeliveryReport),
    Route(CallInfo),
    Ivr(Vec<IvrEvent>),
}

/// One simulation's work, moved to the simulation threads.
struct Run {
    tenant: String,
    plugin: Arc<PluginVersion>,
    overlay: Arc<OverlayKv>,
    fallback: crate::plugins::Fallback,
    input: Input,
}

impl Run {
    async fn go(self) -> (Vec<SimStep>, Vec<LogLine>, BTreeMap<String, u64>) {
        let options = InstanceOptions {
            capture: true,
            kv: Some(self.overlay),
        };
        let mut steps = Vec::new();
        let started = Instant::now();
        let mut instance = match self.plugin.instantiate(options).await {
            Ok(i) => i,
            Err(e) => {
                steps.push(SimStep {
                    function: "instantiate",
                    output: None,
                    fuel: None,
                    elapsed_us: started.elapsed().as_micros() as u64,
                    error: Some(sim_error(&e)),
                    invalid: None,
                });
                return (steps, Vec::new(), BTreeMap::new());
            }
        };
        match self.input {
            Input::Events(events) => {
                // The caller's answer state as the calls layer would track it, for the
                // fallback a failure would get.
                let mut state = AnswerState::Unanswered;
                for mut event in events {
                    match &mut event {
                        CallEvent::Incoming(call) => call.tenant = self.tenant.clone(),
                        CallEvent::HandedOver(h) => {
                            h.call.tenant = self.tenant.clone();
                            state = h.state;
                        }
                        _ => {}
                    }
                    let r = instance.on_event(&event).await;
                    let failed = r.is_err();
                    let (answer, invalid) = match r {
                        Ok(a) => (Ok(a.actions), a.invalid),
                        Err(e) => (Err(e), None),
                    };
                    if matches!(event, CallEvent::LegAnswered(_)) {
                        // A caller not yet answered is answered when a leg answers.
                        state = AnswerState::Answered;
                    }
                    if let Ok(actions) = &answer {
                        for a in actions {
                            state = match a {
                                Action::Answer => AnswerState::Answered,
                                Action::PreAnswer if state == AnswerState::Unanswered => {
                                    AnswerState::EarlyMedia
                                }
                                _ => state,
                            };
                        }
                    }
                    let mut s = step(
                        "on-event",
                        &instance,
                        answer,
                        &self.fallback.for_call(state),
                    );
                    s.invalid =
                        invalid.map(|(action, Invalid(reason))| SimInvalid { action, reason });
                    steps.push(s);
                    if failed {
                        break;
                    }
                }
            }
            Input::Message(mut msg) => {
                msg.tenant = self.tenant;
                let r = instance.on_message(&msg).await;
                steps.push(step("on-message", &instance, r, &self.fallback.sms));
            }
            Input::Delivery(mut report) => {
                report.tenant = self.tenant;
                let r = instance.on_delivery(&report).await;
                let mut s = step(
                    "on-delivery",
                    &instance,
                    r.map(|()| Vec::<Action>::new()),
                    &Vec::new(),
                );
                s.output = None;
                steps.push(s);
            }
            Input::Route(mut call) => {
                call.tenant = self.tenant;
                let r = instance.route_v0_1(&call).await;
                let fallback = route_fallback_v0_1(&self.fallback);
                steps.push(step("route", &instance, r, &fallback));
            }
            Input::Ivr(events) => {
                let fallback = vec![IvrAction::Hangup(None)];
                for event in &events {
                    let r = instance.on_ivr_event_v0_1(event).await;
                    let failed = r.is_err();
                    steps.push(step("on-event", &instance, r, &fallback));
                    if failed {
                        break;
                    }
                }
            }
        }
        (steps, instance.logs().to_vec(), instance.counters())
    }
}

/// What a 0.1 `route` that failed was answered with, from the tenant's fallback for an
/// unanswered call: its `reject`, if it starts with one, else 503 (0.1's only way to say "not
/// this call").
fn route_fallback_v0_1(fallback: &crate::plugins::Fallback) -> RouteDecision {
    use crate::plugins::model::v0_1::SipStatus as SipStatusV0_1;
    match fallback.unanswered.first() {
        Some(Action::Reject(s)) => RouteDecision::Reject(SipStatusV0_1 {
            code: s.code,
            reason: s.reason.clone(),
        }),
        _ => RouteDecision::Reject(SipStatusV0_1::new(503, "Service Unavailable")),
    }
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
        invalid: None,
    }
}

/// Which plugin version the request means, as stored now.
async fn pick_version(
    state: &AppState,
    tenant: &str,
    req: &SimulateRequest,
    needs: Capability,
) -> Result<PluginRecord, ApiError> {
    match (&req.plugin, req.version) {
        (Some(name), Some(v)) => Ok(state.store.plugin_record(tenant, name, v).await?),
        (Some(name), None) => {
            let versions = state.store.plugin_versions(tenant, name).await?;
            versions.into_iter().find(|r| r.active).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "plugin {name} has no active version; give version"
                ))
            })
        }
        (None, Some(_)) => Err(ApiError::Unprocessable("version needs plugin too".into())),
        (None, None) => {
            // The choice a call (`TenantPlugins::entry`) or a message (`find`) makes, from the
            // store's records: by name, then by world, then (for events and messages) anything
            // that can. 0.1's own requests choose as 0.1 did: a router for `call`, an IVR for
            // `ivr`, by name or world only.
            let mut active = state.store.active_plugins(tenant).await?;
            let v0_1_request = req.call.is_some() || req.ivr.is_some();
            let world = if req.ivr.is_some() {
                "ivr"
            } else {
                needs.world()
            };
            let has = |r: &PluginRecord| Capability::parse_worlds(&r.world).contains(&needs);
            let in_world = |r: &PluginRecord| world_includes(&r.world, world);
            let found = active
                .iter()
                .position(|r| r.name == world && has(r))
                .or_else(|| active.iter().position(|r| has(r) && in_world(r)))
                .or_else(|| {
                    (!v0_1_request)
                        .then(|| active.iter().position(has))
                        .flatten()
                });
            match found {
                Some(i) => Ok(active.swap_remove(i)),
                None => Err(ApiError::Unprocessable(format!(
                    "the tenant has no active plugin exporting wasmswitch:plugin/{}; upload and activate one, or name one with plugin and version",
                    needs.interface()
                ))),
            }
        }
    }
}

/// The version compiled for the simulation runtime, found by the tenant's uid and the code's
/// sha256 (never by a number alone), compiled once however many requests want it at once.
async fn sim_version(
    state: &AppState,
    tenant_uid: &str,
    record: &PluginRecord,
) -> Result<Arc<PluginVersion>, ApiError> {
    let key = format!(
        "{tenant_uid}/{}@{}/{}",
        record.name, record.version, record.sha256
    );
    state
        .simulator
        .version(key, async {
            let v =
                u32::try_from(record.version).map_err(|_| ApiError::NotFound("plugin version"))?;
            let (stored, wasm) = state
                .store
                .plugin(&record.tenant_id, &record.name, record.version)
                .await?;
            if stored.sha256 != record.sha256 {
                // Replaced between the two reads (only a deleted and re-created tenant can).
                return Err(ApiError::NotFound("plugin version"));
            }
            let id = PluginId {
                tenant: record.tenant_id.as_str().into(),
                name: record.name.as_str().into(),
                version: v,
            };
            state
                .simulator
                .runtime()
                .load(id, wasm.into(), &[])
                .await
                .map_err(|e| {
                    ApiError::Internal(format!(
                        "stored plugin {}@{}: {e}",
                        record.name, record.version
                    ))
                })
        })
        .await
}
