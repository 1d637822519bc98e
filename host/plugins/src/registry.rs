//! Per-tenant plugin sets with hot swap.
//!
//! Readers (every new call) take a lock-free snapshot from an `ArcSwap`; an activation builds a
//! new snapshot and swaps it in, so it takes effect for the next call at once. Calls already
//! running hold their own `Arc<PluginVersion>` and instance, so they finish on the version they
//! started on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::error::PluginError;
use crate::instance::InstanceOptions;
use crate::model::{Action, AnswerState, DeliveryReport, Message, SipStatus, SmsDecision};
use crate::runtime::{Capability, PluginId, PluginVersion};
use crate::session::Session;

/// What the switch does for a tenant when its plugin fails (trap, timeout, out of memory, bad
/// return) or when it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// For a call not yet answered (or in early media). Default: reject with 503 Service
    /// Unavailable.
    pub unanswered: Vec<Action>,
    /// For an answered call. Default: hang up.
    pub answered: Vec<Action>,
    /// For a message. Default: reject with 503, so the sender can retry and nothing is sent
    /// against a policy that could not run.
    pub sms: SmsDecision,
}

impl Default for Fallback {
    fn default() -> Self {
        Self {
            unanswered: vec![Action::Reject(SipStatus::new(503, "Service Unavailable"))],
            answered: vec![Action::Hangup(None)],
            sms: SmsDecision::Reject(SipStatus::new(503, "Service Unavailable")),
        }
    }
}

impl Fallback {
    /// The actions for a call in `state` whose plugin failed.
    pub fn for_call(&self, state: AnswerState) -> Vec<Action> {
        match state {
            AnswerState::Answered => self.answered.clone(),
            AnswerState::Unanswered | AnswerState::EarlyMedia => self.unanswered.clone(),
        }
    }
}

/// Why a registry operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No such plugin version has been loaded for the tenant.
    #[error("plugin {name} version {version} is not loaded for tenant {tenant}")]
    UnknownVersion {
        tenant: String,
        name: String,
        version: u32,
    },
    /// The version is active and cannot be removed.
    #[error("plugin {name} version {version} is active; activate another version first")]
    Active { name: String, version: u32 },
}

/// One tenant's active plugins, as seen by new calls. Immutable; replaced whole on change.
#[derive(Debug, Default)]
pub struct TenantPlugins {
    /// Plugin name -> its active version.
    pub active: BTreeMap<Arc<str>, Arc<PluginVersion>>,
    pub fallback: Fallback,
}

impl TenantPlugins {
    /// The active plugin that provides `capability`: the one named after the capability's world
    /// ("router", "messaging") if it has it, else the first by name that has it.
    pub fn find(&self, capability: Capability) -> Option<&Arc<PluginVersion>> {
        self.active
            .get(capability.world())
            .filter(|p| p.has(capability))
            .or_else(|| self.active.values().find(|p| p.has(capability)))
    }

    /// The plugin a new call reaches first: the one named `router` if it takes calls, else the
    /// first by name whose world is a router's (a 0.2 call handler, a 0.1 `call-routing`
    /// plugin, a `switch`), else the first that takes calls at all (a 0.1 IVR alone).
    pub fn entry(&self) -> Option<&Arc<PluginVersion>> {
        let calls = |p: &&Arc<PluginVersion>| p.has(Capability::Calls);
        self.active
            .get("router")
            .filter(calls)
            .or_else(|| {
                self.active
                    .values()
                    .find(|p| calls(p) && p.in_world("router"))
            })
            .or_else(|| self.active.values().find(calls))
    }

    /// The tenant's IVR as contract 0.1 chose it, for a 0.1 `run-ivr` without a plugin name:
    /// the plugin named `ivr` if a call can be handed to it, else the first 0.1 plugin by name
    /// that exports `ivr-flow` (0.2 worlds say nothing of being an IVR).
    pub fn ivr_v0_1(&self) -> Option<&Arc<PluginVersion>> {
        self.active
            .get("ivr")
            .filter(|p| p.takes_hand_over())
            .or_else(|| self.active.values().find(|p| p.roles.ivr))
    }
}

/// How many earlier active versions of a plugin stay loaded after an activation, so that going
/// back to one (a rollback) needs no load.
const KEEP_PREVIOUS: usize = 4;

/// One plugin's loaded versions on this host. Which version was active before which is the
/// store's record (the API's rollback reads it there and activates that version here); this
/// only keeps the recently active ones loaded.
#[derive(Debug, Default)]
struct History {
    loaded: BTreeMap<u32, Arc<PluginVersion>>,
    active: Option<u32>,
    /// Earlier active versions, most recent last: kept loaded, up to [`KEEP_PREVIOUS`].
    previous: Vec<u32>,
}

impl History {
    /// Makes no version active, remembering the one that was; false if none was.
    fn deactivate(&mut self) -> bool {
        match self.active.take() {
            Some(old) => {
                self.previous.push(old);
                true
            }
            None => false,
        }
    }

    /// Makes a loaded `version` the active one, remembering the one it replaces.
    fn set_active(&mut self, version: u32) {
        if self.active != Some(version) {
            if let Some(old) = self.active {
                self.previous.push(old);
            }
            self.active = Some(version);
        }
        // Versions that were active longer ago than the last few are freed once their calls
        // end (the store keeps every version; activating one again loads it from the compiled
        // cache). Versions added but never active stay: they were added to be activated.
        if self.previous.len() > KEEP_PREVIOUS {
            let old: Vec<u32> = self
                .previous
                .drain(..self.previous.len() - KEEP_PREVIOUS)
                .collect();
            for v in old {
                if Some(v) != self.active && !self.previous.contains(&v) {
                    self.loaded.remove(&v);
                }
            }
        }
    }
}

/// Every loaded version of every plugin, by (tenant, plugin name).
type Histories = HashMap<(Arc<str>, Arc<str>), History>;

/// The history of a plugin that has `version` loaded.
fn history_with<'h>(
    histories: &'h mut Histories,
    tenant: &str,
    name: &str,
    version: u32,
) -> Result<&'h mut History, RegistryError> {
    histories
        .get_mut(&(Arc::from(tenant), Arc::from(name)))
        .filter(|h| h.loaded.contains_key(&version))
        .ok_or_else(|| RegistryError::UnknownVersion {
            tenant: tenant.into(),
            name: name.into(),
            version,
        })
}

/// The plugin sets of every tenant on this host.
#[derive(Debug, Default)]
pub struct Registry {
    tenants: ArcSwap<HashMap<Arc<str>, Arc<TenantPlugins>>>,
    // Writers are rare (uploads, activations) and serialised here; readers never take it.
    histories: Mutex<Histories>,
    fallbacks: Mutex<HashMap<Arc<str>, Fallback>>,
    /// Counts changes to the active sets, so [`Registry::reconcile`] can tell whether its
    /// picture of the store is older than a change made here since.
    generation: AtomicU64,
}

/// One plugin version the store says is active: which code, by its sha256, whatever its number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wanted {
    pub tenant: String,
    pub name: String,
    pub version: u32,
    pub sha256: String,
}

/// What [`Registry::reconcile`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// This version is now active for new calls.
    Activated(PluginId),
    /// The plugin is no longer active: new calls do not use it.
    Deactivated { tenant: String, name: String },
}

/// The registry changed after the picture [`Registry::reconcile`] was given was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the plugin registry changed while the store was read; try again")]
pub struct Stale;

/// The outcome of asking a tenant's plugin: the answer, and whether it came from the plugin or
/// from the fallback (with the reason).
#[derive(Debug)]
pub struct Decided<T> {
    pub value: T,
    /// `None` when the plugin answered; the error when the fallback was used.
    pub failure: Option<PluginError>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn histories(&self) -> std::sync::MutexGuard<'_, Histories> {
        // Every update below is computed first and then written in one step, so a poisoned lock
        // never holds a half-made change.
        self.histories.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a loaded version available for activation. Loading again the same version number
    /// replaces it (new calls keep the one they had until it is activated again).
    pub fn add(&self, version: Arc<PluginVersion>) {
        let key = (version.id.tenant.clone(), version.id.name.clone());
        self.histories()
            .entry(key)
            .or_default()
            .loaded
            .insert(version.id.version, version);
        // A sync round that read the store before this must not drop what was just added.
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The loaded version `version` of a plugin, active or not.
    pub fn loaded(&self, tenant: &str, name: &str, version: u32) -> Option<Arc<PluginVersion>> {
        self.histories()
            .get(&(Arc::from(tenant), Arc::from(name)))?
            .loaded
            .get(&version)
            .cloned()
    }

    /// The number of changes made to the active sets so far (see [`Registry::reconcile`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Makes `version` the active one for new calls, at once. Calls in progress keep theirs.
    pub fn activate(&self, tenant: &str, name: &str, version: u32) -> Result<(), RegistryError> {
        let mut histories = self.histories();
        history_with(&mut histories, tenant, name, version)?.set_active(version);
        self.publish(tenant, &histories);
        tracing::info!(tenant, plugin = name, version, "plugin version activated");
        Ok(())
    }

    /// Makes the active plugins exactly `wanted` (the store's active set): activates each
    /// wanted version that is loaded with the wanted code (sha256), and deactivates every
    /// other active plugin: one the store no longer has active (deactivated, or its tenant
    /// deleted), or whose wanted version is not loaded here (the caller loads wanted versions
    /// first; one that failed to load leaves the plugin inactive, so the tenant's fallback
    /// answers rather than code the tenant replaced).
    ///
    /// Refused with [`Stale`] if the registry changed since `generation` was read: `wanted`
    /// may then predate an activation made through this host, which it must not undo.
    pub fn reconcile(&self, generation: u64, wanted: &[Wanted]) -> Result<Vec<Reconciled>, Stale> {
        let mut histories = self.histories();
        if self.generation() != generation {
            return Err(Stale);
        }
        let mut changes = Vec::new();
        let mut touched: std::collections::BTreeSet<Arc<str>> = Default::default();
        let mut keep: std::collections::HashSet<(&str, &str)> = Default::default();
        // What calls see now, read once for the whole round.
        let published = self.tenants.load();
        for w in wanted {
            let key = (Arc::from(w.tenant.as_str()), Arc::from(w.name.as_str()));
            let Some(h) = histories.get_mut(&key) else {
                continue;
            };
            let Some(v) = h.loaded.get(&w.version).filter(|v| v.sha256 == w.sha256) else {
                continue;
            };
            keep.insert((&w.tenant, &w.name));
            // New calls use this very version already: nothing to do. (Compared with what
            // calls see, not with the number: the same number may have been loaded again
            // with other code, for a tenant created again under the same id.)
            if published
                .get(&key.0)
                .and_then(|set| set.active.get(&key.1))
                .is_some_and(|p| Arc::ptr_eq(p, v))
            {
                continue;
            }
            let id = v.id.clone();
            h.set_active(w.version);
            touched.insert(key.0);
            changes.push(Reconciled::Activated(id));
        }
        for ((tenant, name), h) in histories.iter_mut() {
            if !keep.contains(&(&**tenant, &**name)) && h.deactivate() {
                touched.insert(tenant.clone());
                changes.push(Reconciled::Deactivated {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                });
            }
        }
        // Versions of tenants with nothing active in the store (deleted tenants, mostly) are
        // freed: this host would otherwise keep their compiled code for ever.
        let live: std::collections::HashSet<&str> =
            wanted.iter().map(|w| w.tenant.as_str()).collect();
        histories.retain(|(tenant, _), h| h.active.is_some() || live.contains(&**tenant));
        for tenant in &touched {
            self.publish(tenant, &histories);
        }
        Ok(changes)
    }

    /// Stops new calls from using the plugin; running calls finish on their instances.
    pub fn deactivate(&self, tenant: &str, name: &str) {
        let mut histories = self.histories();
        if let Some(h) = histories.get_mut(&(Arc::from(tenant), Arc::from(name))) {
            h.deactivate();
        }
        self.publish(tenant, &histories);
    }

    /// Forgets an inactive version.
    pub fn remove(&self, tenant: &str, name: &str, version: u32) -> Result<(), RegistryError> {
        let mut histories = self.histories();
        let h = history_with(&mut histories, tenant, name, version)?;
        if h.active == Some(version) {
            return Err(RegistryError::Active {
                name: name.into(),
                version,
            });
        }
        h.loaded.remove(&version);
        h.previous.retain(|v| *v != version);
        Ok(())
    }

    /// Forgets every plugin of a tenant (a deleted tenant). Running calls keep their instances.
    pub fn remove_tenant(&self, tenant: &str) {
        self.histories().retain(|(t, _), _| &**t != tenant);
        self.fallbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
        self.tenants.rcu(|old| {
            let mut next = HashMap::clone(old);
            next.remove(tenant);
            next
        });
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Sets what the tenant's calls and messages get when its plugins fail.
    pub fn set_fallback(&self, tenant: &str, fallback: Fallback) {
        self.fallbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Arc::from(tenant), fallback);
        let histories = self.histories();
        self.publish(tenant, &histories);
    }

    /// Rebuilds the tenant's snapshot from the histories and swaps it in.
    fn publish(&self, tenant: &str, histories: &Histories) {
        let active = histories
            .iter()
            .filter(|((t, _), _)| &**t == tenant)
            .filter_map(|((_, name), h)| {
                let v = h.loaded.get(&h.active?)?;
                Some((name.clone(), v.clone()))
            })
            .collect();
        let fallback = self
            .fallbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_default();
        let set = Arc::new(TenantPlugins { active, fallback });
        self.tenants.rcu(|old| {
            let mut next = HashMap::clone(old);
            next.insert(Arc::from(tenant), set.clone());
            next
        });
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The tenant's current plugin set (what a call starting now would use).
    pub fn snapshot(&self, tenant: &str) -> Option<Arc<TenantPlugins>> {
        self.tenants.load().get(tenant).cloned()
    }

    /// The active version of one plugin.
    pub fn active(&self, tenant: &str, name: &str) -> Option<Arc<PluginVersion>> {
        self.snapshot(tenant)?.active.get(name).cloned()
    }

    /// Every loaded version number of a plugin and the active one.
    pub fn versions(&self, tenant: &str, name: &str) -> (Vec<u32>, Option<u32>) {
        self.histories()
            .get(&(Arc::from(tenant), Arc::from(name)))
            .map(|h| (h.loaded.keys().copied().collect(), h.active))
            .unwrap_or_default()
    }

    /// The plugin side of a new call: a [`Session`] pinned to the tenant's plugins active now.
    /// Start it with [`Session::incoming`].
    pub fn start_call(&self, tenant: &str) -> Session {
        Session::new(self.snapshot(tenant).unwrap_or_default())
    }

    /// Runs the tenant's messaging policy on one message (a fresh instance per message).
    pub async fn message(&self, tenant: &str, msg: &Message) -> Decided<SmsDecision> {
        let set = self.snapshot(tenant).unwrap_or_default();
        let result = match set.find(Capability::Messaging) {
            // No policy: deliver as is.
            None => {
                return Decided {
                    value: SmsDecision::Deliver,
                    failure: None,
                };
            }
            Some(plugin) => match plugin.instantiate(InstanceOptions::default()).await {
                Ok(mut instance) => instance.on_message(msg).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(value) => Decided {
                value,
                failure: None,
            },
            // Out of instance slots: the sender should retry; a fallback of `deliver` must not
            // let messages through unchecked because the host is busy.
            Err(e @ PluginError::Overloaded(_)) => Decided {
                value: SmsDecision::Reject(SipStatus::new(503, "Service Unavailable")),
                failure: Some(e),
            },
            Err(e) => Decided {
                value: set.fallback.sms.clone(),
                failure: Some(e),
            },
        }
    }

    /// Tells the tenant's messaging policy (the one active now, on a fresh instance) how a
    /// message it let through turned out. A failure is only reported: there is nothing to
    /// decide.
    pub async fn delivery(&self, tenant: &str, report: &DeliveryReport) -> Option<PluginError> {
        let plugin = self.snapshot(tenant)?.find(Capability::Messaging)?.clone();
        let result = match plugin.instantiate(InstanceOptions::default()).await {
            Ok(mut instance) => instance.on_delivery(report).await,
            Err(e) => Err(e),
        };
        result.err()
    }
}
