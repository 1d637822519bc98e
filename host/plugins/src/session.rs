//! One call's plugin side, for the calls layer to hold ([`Session`]).

use std::sync::Arc;

use crate::error::PluginError;
use crate::instance::{Answer, CallInstance, InstanceOptions};
use crate::model::{Action, AnswerState, CallEvent, CallInfo, HandOver, SipStatus};
use crate::registry::{Decided, TenantPlugins};
use crate::runtime::PluginVersion;

/// The most hand-offs in one call (WIT `hand-off`).
pub const MAX_HAND_OFFS: u32 = 16;

/// Why a `hand-off` was not carried out. The instance that asked keeps the call; the calls
/// layer tells it with `action-failed` (the reason named in each variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandOffRefused {
    /// `unknown-plugin`: no active plugin of that name that takes calls handed over, when the
    /// call started.
    #[error("the tenant has no active call-handling plugin named {0:?}")]
    UnknownPlugin(String),
    /// `limit-reached`: the call was handed off [`MAX_HAND_OFFS`] times already.
    #[error("the call was handed off {MAX_HAND_OFFS} times already")]
    LimitReached,
}

/// One call's plugin side: created when the call arrives, pinned to the tenant's plugins as they
/// were active at that moment (a hot swap mid-call never mixes versions: a hand-off later in the
/// call still reaches the version active at its start), holding the instance that hears the
/// call's events, and giving the tenant's fallback whenever a plugin fails.
///
/// Every event goes to one instance, one at a time, in order (`&mut self`). A plugin that traps,
/// runs past its deadline or answers its first event with something invalid is dropped: the
/// call gets the fallback for its state, and the session hears no more events. A host out of
/// instance slots refuses a new call with `503` rather than the fallback (see
/// [`Session::incoming`]).
#[derive(Debug)]
pub struct Session {
    plugins: Arc<TenantPlugins>,
    instance: Option<CallInstance>,
    hand_offs: u32,
}

/// The answer when no plugin answered: the switch's own actions (the tenant's fallback, or the
/// overload answer), and why.
fn without_plugin(actions: Vec<Action>, failure: PluginError) -> Decided<Answer> {
    Decided {
        value: Answer {
            actions,
            invalid: None,
        },
        failure: Some(failure),
    }
}

/// The answer for a host (or tenant) out of instance slots: try again later, not the fallback
/// (which might send the call somewhere the plugin would not have).
fn overloaded(state: AnswerState, failure: PluginError) -> Decided<Answer> {
    let action = match state {
        AnswerState::Answered => Action::Hangup(None),
        _ => Action::Reject(SipStatus::new(503, "Service Unavailable")),
    };
    without_plugin(vec![action], failure)
}

impl Session {
    pub(crate) fn new(plugins: Arc<TenantPlugins>) -> Self {
        Self {
            plugins,
            instance: None,
            hand_offs: 0,
        }
    }

    /// The plugin version now handling the call, if one is.
    pub fn plugin(&self) -> Option<&Arc<PluginVersion>> {
        self.instance.as_ref().map(CallInstance::version)
    }

    /// Whether a plugin still handles the call (none after a failure, a fallback or `hangup`).
    pub fn is_active(&self) -> bool {
        self.instance.is_some()
    }

    /// A new call: starts an instance of the tenant's first plugin for calls
    /// ([`TenantPlugins::entry`]) and tells it `incoming`.
    ///
    /// No such plugin, or one that fails, gives the fallback for an unanswered call. A host out
    /// of instance slots gives `503` ([`PluginError::Overloaded`] in the failure, so the calls
    /// layer can add `Retry-After`).
    pub async fn incoming(&mut self, call: &CallInfo) -> Decided<Answer> {
        let Some(plugin) = self.plugins.entry().cloned() else {
            return without_plugin(
                self.plugins.fallback.for_call(AnswerState::Unanswered),
                PluginError::NotExported("call-handler"),
            );
        };
        self.start(
            plugin,
            &CallEvent::Incoming(call.clone()),
            AnswerState::Unanswered,
        )
        .await
    }

    /// An event of the call for the plugin handling it. `state` is the caller's answer state
    /// now, for the fallback if the plugin fails. With no plugin handling the call, the answer is
    /// empty. After `hangup` the instance is dropped.
    pub async fn on_event(&mut self, event: &CallEvent, state: AnswerState) -> Decided<Answer> {
        let Some(instance) = &mut self.instance else {
            return Decided {
                value: Answer::default(),
                failure: None,
            };
        };
        let result = instance.on_event(event).await;
        if matches!(event, CallEvent::Hangup(_)) {
            self.instance = None;
            // The last event: its answer is ignored, and a failure changes nothing.
            return Decided {
                value: Answer::default(),
                failure: result.err(),
            };
        }
        match result {
            Ok(value) => Decided {
                value,
                failure: None,
            },
            Err(e) => {
                self.instance = None;
                without_plugin(self.plugins.fallback.for_call(state), e)
            }
        }
    }

    /// Carries out a `hand-off`: the plugin named (as active when the call started) gets a fresh
    /// instance and `handed-over`; the old instance hears nothing more. `hand_over` is the call
    /// as the calls layer knows it; its `from-plugin` is filled in here.
    ///
    /// An empty name, which only a 0.1 plugin's adapter produces (`run-ivr` without a plugin),
    /// means the tenant's IVR as 0.1 chose it ([`TenantPlugins::ivr_v0_1`]).
    ///
    /// Refused (and the old instance kept) when no such plugin takes calls or the call has had
    /// its [`MAX_HAND_OFFS`]; once the old instance is let go, a failure of the new one gives
    /// the fallback like any other.
    pub async fn hand_off(
        &mut self,
        plugin: &str,
        mut hand_over: HandOver,
    ) -> Result<Decided<Answer>, HandOffRefused> {
        let target = if plugin.is_empty() {
            self.plugins.ivr_v0_1()
        } else {
            self.plugins
                .active
                .get(plugin)
                .filter(|p| p.takes_hand_over())
        };
        let Some(target) = target.cloned() else {
            return Err(HandOffRefused::UnknownPlugin(plugin.to_string()));
        };
        if self.hand_offs >= MAX_HAND_OFFS {
            return Err(HandOffRefused::LimitReached);
        }
        self.hand_offs += 1;
        hand_over.from_plugin = self
            .instance
            .take()
            .map(|i| i.version().id.name.to_string())
            .unwrap_or_default();
        let state = hand_over.state;
        Ok(self
            .start(target, &CallEvent::HandedOver(hand_over), state)
            .await)
    }

    /// Starts an instance of `plugin` with the instance's first event.
    async fn start(
        &mut self,
        plugin: Arc<PluginVersion>,
        first: &CallEvent,
        state: AnswerState,
    ) -> Decided<Answer> {
        let mut instance = match plugin.instantiate(InstanceOptions::default()).await {
            Ok(i) => i,
            Err(e @ PluginError::Overloaded(_)) => return overloaded(state, e),
            Err(e) => return without_plugin(self.plugins.fallback.for_call(state), e),
        };
        match instance.on_event(first).await {
            Ok(value) => {
                self.instance = Some(instance);
                Decided {
                    value,
                    failure: None,
                }
            }
            Err(e) => without_plugin(self.plugins.fallback.for_call(state), e),
        }
    }
}
