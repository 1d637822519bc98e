//! Contract 0.1 (`wit/v0.1.0`): its generated bindings, the host's imports for it, the
//! conversions between its types and its own vocabulary ([`crate::model::v0_1`]), and the
//! adapter that runs a 0.1 plugin on the 0.2 event model ([`Adapter`]). Frozen: 0.1 plugins must
//! keep loading and behaving exactly as they did when 0.1 was current (the tests run frozen
//! builds of the 0.1 example plugins, `plugins/fixtures/v0.1.0`).

use std::collections::VecDeque;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};

use crate::LogLevel;
use crate::instance::CallState;
use crate::model::{self, Invalid, v0_1 as v01};
use crate::runtime::Capability;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "switch",
        // Only `kv` may wait on I/O (it is backed by the database); log and metrics stay
        // synchronous, which keeps them cheap.
        imports: { "wasmswitch:plugin/kv": async },
        exports: { default: async },
    });
}

use generated::exports::wasmswitch::plugin::{call_routing, ivr_flow, message_policy};
use generated::wasmswitch::plugin::types as wit;
use generated::wasmswitch::plugin::{kv as wit_kv, log as wit_log, metrics as wit_metrics};

/// What a 0.1 component exports: any of its three interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// `call-routing`: it can route a new call.
    pub(crate) routing: bool,
    /// `ivr-flow`: it can run an IVR.
    pub(crate) ivr: bool,
    /// `message-policy`.
    pub(crate) messaging: bool,
}

impl Roles {
    /// Reads the roles from the (unversioned) interface names a component exports; names 0.1
    /// does not have are ignored.
    pub(super) fn of(interfaces: &[&str]) -> Roles {
        Roles {
            routing: interfaces.contains(&Interface::CallRouting.name()),
            ivr: interfaces.contains(&Interface::IvrFlow.name()),
            messaging: interfaces.contains(&Interface::MessagePolicy.name()),
        }
    }

    pub(super) fn capabilities(self) -> Vec<Capability> {
        let mut caps = Vec::new();
        if self.routing || self.ivr {
            caps.push(Capability::Calls);
        }
        if self.messaging {
            caps.push(Capability::Messaging);
        }
        caps
    }

    /// The world the exports make: `router`, `ivr`, `messaging`, `switch`, or the worlds joined
    /// with `+` for a component of its own world (as 0.1 named them).
    pub(super) fn world(self) -> String {
        if self.routing && self.ivr && self.messaging {
            return "switch".into();
        }
        [
            (self.routing, "router"),
            (self.ivr, "ivr"),
            (self.messaging, "messaging"),
        ]
        .into_iter()
        .filter_map(|(has, world)| has.then_some(world))
        .collect::<Vec<_>>()
        .join("+")
    }
}

/// Whether 0.1 has an interface of this name.
pub(super) fn knows(interface: &str) -> bool {
    Interface::ALL.iter().any(|i| i.name() == interface)
}

/// The interface that gives a capability (for calls, the one a new call reaches first).
pub(super) fn interface(capability: Capability) -> &'static str {
    match capability {
        Capability::Calls => Interface::CallRouting.name(),
        Capability::Messaging => Interface::MessagePolicy.name(),
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    generated::Switch::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

// ---- host imports --------------------------------------------------------------------------

host_imports!();

// ---- exports -------------------------------------------------------------------------------

/// Where a 0.1 component's exports are.
#[derive(Clone)]
pub(crate) struct Exports {
    routing: Option<call_routing::GuestIndices>,
    ivr: Option<ivr_flow::GuestIndices>,
    messaging: Option<message_policy::GuestIndices>,
}

impl Exports {
    pub(super) fn new(pre: &InstancePre<CallState>, roles: Roles) -> wasmtime::Result<Self> {
        Ok(Self {
            routing: roles
                .routing
                .then(|| call_routing::GuestIndices::new(pre))
                .transpose()?,
            ivr: roles
                .ivr
                .then(|| ivr_flow::GuestIndices::new(pre))
                .transpose()?,
            messaging: roles
                .messaging
                .then(|| message_policy::GuestIndices::new(pre))
                .transpose()?,
        })
    }

    pub(super) fn load(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
    ) -> wasmtime::Result<Guests> {
        Ok(Guests {
            routing: self
                .routing
                .as_ref()
                .map(|i| i.load(&mut *store, instance))
                .transpose()?,
            ivr: self
                .ivr
                .as_ref()
                .map(|i| i.load(&mut *store, instance))
                .transpose()?,
            messaging: self
                .messaging
                .as_ref()
                .map(|i| i.load(&mut *store, instance))
                .transpose()?,
        })
    }
}

/// The interfaces a 0.1 component may export, for 0.1's own functions (`route` and
/// `on-call-event` are call-routing's, `on-event` ivr-flow's, `on-message` message-policy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    CallRouting,
    IvrFlow,
    MessagePolicy,
}

impl Interface {
    pub(crate) const ALL: [Interface; 3] = [
        Interface::CallRouting,
        Interface::IvrFlow,
        Interface::MessagePolicy,
    ];

    /// The WIT name, without package or version.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Interface::CallRouting => "call-routing",
            Interface::IvrFlow => "ivr-flow",
            Interface::MessagePolicy => "message-policy",
        }
    }
}

/// One 0.1 instance's exports.
#[derive(Clone)]
pub(crate) struct Guests {
    routing: Option<call_routing::Guest>,
    ivr: Option<ivr_flow::Guest>,
    messaging: Option<message_policy::Guest>,
}

/// The error for a 0.1 function the component does not export.
fn missing(interface: Interface) -> wasmtime::Error {
    wasmtime::format_err!("the component does not export {}", interface.name())
}

/// A 0.1 answer the host cannot act on: a bad return, as it always was for 0.1.
fn invalid(e: Invalid) -> wasmtime::Error {
    wasmtime::Error::new(e)
}

impl Guests {
    pub(super) fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::Calls => self.routing.is_some() || self.ivr.is_some(),
            Capability::Messaging => self.messaging.is_some(),
        }
    }

    /// Whether the component exports this 0.1 interface.
    pub(super) fn exports(&self, interface: Interface) -> bool {
        match interface {
            Interface::CallRouting => self.routing.is_some(),
            Interface::IvrFlow => self.ivr.is_some(),
            Interface::MessagePolicy => self.messaging.is_some(),
        }
    }

    // -- 0.1's own functions, in its own vocabulary (0.1 scenarios, simulate) --

    pub(super) async fn route(
        &self,
        store: &mut Store<CallState>,
        call: &v01::CallInfo,
    ) -> wasmtime::Result<v01::RouteDecision> {
        let guest = self
            .routing
            .as_ref()
            .ok_or_else(|| missing(Interface::CallRouting))?;
        Ok(guest.call_route(store, &call.into()).await?.into())
    }

    pub(super) async fn on_call_event(
        &self,
        store: &mut Store<CallState>,
        event: &v01::CallEvent,
    ) -> wasmtime::Result<Vec<v01::CallAction>> {
        let guest = self
            .routing
            .as_ref()
            .ok_or_else(|| missing(Interface::CallRouting))?;
        let out = guest.call_on_call_event(store, &event.into()).await?;
        Ok(out.into_iter().map(Into::into).collect())
    }

    pub(super) async fn on_ivr_event(
        &self,
        store: &mut Store<CallState>,
        event: &v01::IvrEvent,
    ) -> wasmtime::Result<Vec<v01::IvrAction>> {
        let guest = self
            .ivr
            .as_ref()
            .ok_or_else(|| missing(Interface::IvrFlow))?;
        let out = guest.call_on_event(store, &event.into()).await?;
        Ok(out.into_iter().map(Into::into).collect())
    }

    pub(super) async fn on_message_v0_1(
        &self,
        store: &mut Store<CallState>,
        msg: &v01::Message,
    ) -> wasmtime::Result<v01::SmsDecision> {
        let guest = self
            .messaging
            .as_ref()
            .ok_or_else(|| missing(Interface::MessagePolicy))?;
        Ok(guest.call_on_message(store, &msg.into()).await?.into())
    }

    // -- the 0.2 model, through the adapter --

    /// A 0.2 call event for a 0.1 component: see [`Adapter`].
    pub(super) async fn on_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        // The adapter's state lives in the store so it survives between events; taken out for
        // the call (an instance dropped half-way is poisoned and never entered again).
        let mut adapter = std::mem::take(&mut store.data_mut().v0_1);
        let out = adapter.on_event(self, store, event).await;
        store.data_mut().v0_1 = adapter;
        out
    }

    /// A 0.2 message for a 0.1 policy: the SIP headers are dropped (0.1 has none), and the
    /// decision has the same shape in both.
    pub(super) async fn on_message(
        &self,
        store: &mut Store<CallState>,
        msg: &model::Message,
    ) -> wasmtime::Result<model::SmsDecision> {
        let msg = v01::Message {
            id: msg.id.clone(),
            tenant: msg.tenant.clone(),
            from: msg.from.clone(),
            to: msg.to.clone(),
            body: msg.body.clone(),
            received_at: msg.received_at,
        };
        let decision = self.on_message_v0_1(store, &msg).await?;
        decision.validate().map_err(invalid)?;
        Ok(match decision {
            v01::SmsDecision::Deliver => model::SmsDecision::Deliver,
            v01::SmsDecision::Rewrite(r) => model::SmsDecision::Rewrite(model::Rewrite {
                from: r.from,
                to: r.to,
                body: r.body,
            }),
            v01::SmsDecision::Reply(t) => model::SmsDecision::Reply(t),
            v01::SmsDecision::Reject(s) => model::SmsDecision::Reject(status(s)),
        })
    }
}

// ---- the adapter: 0.1 plugins on the 0.2 event model ---------------------------------------

/// Runs a 0.1 component as a 0.2 `call-handler`, as `docs/contract-0.2.md` ("0.1 -> 0.2")
/// describes construct by construct:
///
/// - `incoming` goes to `call-routing.route` (or, for a component with only `ivr-flow`, starts
///   the IVR), and the decision becomes actions: `forward` a `dial`, `reject` a `reject`,
///   `run-ivr` a `hand-off` (or the same instance's IVR, for a `switch` component),
///   `connect-ai` an `answer` and `connect-agent`. `handed-over` starts the IVR.
/// - A router hears what 0.1's `on-call-event` told (answered, DTMF, hangup) after a forward.
/// - An IVR hears what 0.1's `ivr-flow` told, and only the outcome of the *last* media action of
///   each answer (0.1: "the flow hears only the outcome of the last one"); the adapter answers
///   the others itself. 0.1 IVRs expect an answered call, so the adapter answers first.
/// - Values 0.1 did not bound (timeouts, repeats, silences) are clamped into 0.2's ranges, with
///   a warning in the plugin's log.
///
/// Every 0.1 answer is checked with 0.1's own rules first: what 0.1 refused is still refused
/// (a bad return).
#[derive(Debug, Default)]
pub(crate) struct Adapter {
    role: Role,
    /// The outbound leg bridged to the caller: 0.1's `hold` means "the other side".
    bridged: Option<model::LegId>,
    /// The media actions of the IVR's last answer that have not ended yet, in order.
    waiting: VecDeque<Media>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No first event yet.
    #[default]
    None,
    /// Routed the call; `forwarded` once it answered with `forward`.
    Router { forwarded: bool },
    /// Running `ivr-flow`.
    Ivr,
}

/// A media action of a 0.1 IVR answer, to match its 0.2 outcome event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Media {
    Play,
    Gather,
    Dial {
        returns: bool,
    },
    Record(String),
    /// The silence that ends 0.1's hold music (`unhold`): its end is not the flow's to hear.
    Unheld,
    /// An action after which the 0.1 flow is not called again (`transfer`, `conference`,
    /// `connect-ai`, `hangup`): no outcome matches it, so every outcome before it is the
    /// adapter's to answer, and the flow hears nothing more but the hangup.
    Final,
}

impl Adapter {
    async fn on_event(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        use model::CallEvent as E;
        match (self.role, event) {
            (_, E::Incoming(call)) if guests.routing.is_some() => {
                self.role = Role::Router { forwarded: false };
                let decision = guests.route(store, &call_info(call)).await?;
                decision.validate().map_err(invalid)?;
                self.routed(guests, store, call, decision).await
            }
            (_, E::Incoming(call)) => {
                let started = v01::IvrStarted {
                    call: call_info(call),
                    variables: Default::default(),
                };
                let mut out = vec![model::Action::Answer];
                out.extend(self.start_ivr(guests, store, started).await?);
                Ok(out)
            }
            (_, E::HandedOver(h)) => {
                let started = v01::IvrStarted {
                    call: call_info(&h.call),
                    variables: h
                        .variables
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone()))
                        .collect(),
                };
                let mut out = Vec::new();
                if h.state != model::AnswerState::Answered {
                    out.push(model::Action::Answer);
                }
                out.extend(self.start_ivr(guests, store, started).await?);
                Ok(out)
            }
            (Role::Router { forwarded }, event) => {
                self.router_event(guests, store, forwarded, event).await
            }
            (Role::Ivr, event) => self.ivr_event(guests, store, event).await,
            // Events before the first: nothing to tell a 0.1 plugin.
            (Role::None, _) => Ok(Vec::new()),
        }
    }

    /// Turns a 0.1 route decision into actions.
    async fn routed(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        call: &model::CallInfo,
        decision: v01::RouteDecision,
    ) -> wasmtime::Result<Vec<model::Action>> {
        Ok(match decision {
            v01::RouteDecision::Forward(f) => {
                self.role = Role::Router { forwarded: true };
                vec![model::Action::Dial(dial(f))]
            }
            v01::RouteDecision::Reject(s) => vec![model::Action::Reject(status(s))],
            v01::RouteDecision::ConnectAi(a) => {
                vec![model::Action::Answer, model::Action::ConnectAgent(agent(a))]
            }
            // 0.1: an empty name is "this component", when it runs IVRs too: the same instance
            // goes on as the IVR (0.2 has one instance per call).
            v01::RouteDecision::RunIvr(start)
                if start.plugin.is_empty() && guests.ivr.is_some() =>
            {
                let mut out = vec![model::Action::Answer];
                out.extend(start.variables.iter().map(|(k, v)| {
                    model::Action::SetVariable(model::Variable {
                        name: k.clone(),
                        value: v.clone(),
                    })
                }));
                let started = v01::IvrStarted {
                    call: call_info(call),
                    variables: start.variables,
                };
                out.extend(self.start_ivr(guests, store, started).await?);
                out
            }
            // A named plugin, or (empty, from a component without an IVR) the tenant's IVR as
            // 0.1 chose it: the session resolves the empty name.
            v01::RouteDecision::RunIvr(start) => vec![
                model::Action::Answer,
                model::Action::HandOff(model::HandOff {
                    plugin: start.plugin,
                    variables: start
                        .variables
                        .into_iter()
                        .map(|(name, value)| model::Variable { name, value })
                        .collect(),
                }),
            ],
        })
    }

    async fn start_ivr(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        started: v01::IvrStarted,
    ) -> wasmtime::Result<Vec<model::Action>> {
        self.role = Role::Ivr;
        self.waiting.clear();
        self.ivr(guests, store, v01::IvrEvent::Started(started))
            .await
    }

    /// What a 0.1 router hears during a call: after a `forward`, the answer, DTMF and hangup.
    async fn router_event(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        forwarded: bool,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        use model::CallEvent as E;
        let told = match event {
            E::LegAnswered(leg) => {
                self.bridged = Some(leg.id);
                v01::CallEvent::Answered(leg.target.clone())
            }
            E::LegEnded(r) => {
                if self.bridged == Some(r.leg.id) {
                    self.bridged = None;
                }
                return Ok(Vec::new());
            }
            E::Dtmf(d) => v01::CallEvent::Dtmf(v01::DtmfPress {
                digit: d.digit,
                caller: d.leg == model::CALLER,
            }),
            E::Hangup(h) => v01::CallEvent::Hangup(hangup_info(h)),
            // No 0.1 event: leg progress, the dial's end (an unanswered dial goes idle and
            // falls back, as 0.1's forward did), transfer requests (refused), redirects (not
            // followed), failed actions.
            _ => return Ok(Vec::new()),
        };
        if !forwarded {
            return Ok(Vec::new());
        }
        let hangup = matches!(event, E::Hangup(_));
        let actions = guests.on_call_event(store, &told).await?;
        actions
            .iter()
            .try_for_each(v01::CallAction::validate)
            .map_err(invalid)?;
        if hangup {
            // The last event: what it returns is ignored, in 0.1 as in 0.2.
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for a in actions {
            match a {
                v01::CallAction::Transfer(t) => {
                    out.push(model::Action::Transfer(model::Transfer {
                        target: transfer_target(t),
                        mode: model::TransferMode::Blind,
                        tag: None,
                    }))
                }
                v01::CallAction::Hold(music) => match self.bridged {
                    Some(leg) => out.push(model::Action::Hold(model::Hold { leg, music })),
                    None => warn(store, "hold dropped: no leg is bridged to the caller"),
                },
                v01::CallAction::Unhold => match self.bridged {
                    Some(leg) => out.push(model::Action::Unhold(leg)),
                    None => warn(store, "unhold dropped: no leg is bridged to the caller"),
                },
                v01::CallAction::StartRecording(name) => {
                    out.push(model::Action::StartRecording(model::CallRecording {
                        name,
                        max_duration_ms: None,
                    }))
                }
                v01::CallAction::Hangup(code) => {
                    out.push(model::Action::Hangup(code.map(model::SipStatus::code)))
                }
            }
        }
        Ok(out)
    }

    /// What a 0.1 IVR hears: the caller's DTMF while it plays or waits, the outcome of the last
    /// media action of its answer, and the hangup.
    async fn ivr_event(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        use model::CallEvent as E;
        let told = match event {
            // 0.1: "a digit pressed outside a gather (during a play or while idle)"; not while
            // it dials, records, or after it handed the caller on.
            E::Dtmf(d)
                if d.leg == model::CALLER
                    && matches!(self.waiting.front(), None | Some(Media::Play)) =>
            {
                v01::IvrEvent::Dtmf(d.digit)
            }
            E::PlaybackFinished(p) => match (p.barged_in, self.waiting.front().cloned()) {
                // 0.1: "a digit during a barge-in play ends the list early and arrives as dtmf".
                (Some(digit), Some(Media::Play)) => {
                    self.waiting.clear();
                    v01::IvrEvent::Dtmf(digit)
                }
                (_, Some(Media::Unheld)) => {
                    self.waiting.pop_front();
                    return Ok(Vec::new());
                }
                _ if self.ended(&Media::Play) => v01::IvrEvent::PlaybackFinished,
                _ => return Ok(Vec::new()),
            },
            E::GatherCompleted(g) if self.ended(&Media::Gather) => {
                match (g.digits.is_empty(), g.ended_by) {
                    (true, model::GatherEnd::Timeout) => v01::IvrEvent::Timeout,
                    (_, ended_by) => v01::IvrEvent::DigitsCollected(v01::Digits {
                        digits: g.digits.clone(),
                        terminated: matches!(ended_by, model::GatherEnd::Terminator(_)),
                    }),
                }
            }
            E::DialCompleted(r) => {
                let Some(Media::Dial { returns }) = self.waiting.front().cloned() else {
                    return Ok(Vec::new());
                };
                self.waiting.pop_front();
                if !returns {
                    // 0.1: without return-on-failure the call ends with the dial.
                    self.waiting = VecDeque::from([Media::Final]);
                    return Ok(vec![model::Action::Hangup(None)]);
                }
                if !self.waiting.is_empty() {
                    return Ok(Vec::new());
                }
                v01::IvrEvent::DialCompleted(match r.outcome {
                    model::DialOutcome::Answered => v01::DialOutcome::Completed,
                    model::DialOutcome::Busy => v01::DialOutcome::Busy,
                    model::DialOutcome::NoAnswer => v01::DialOutcome::NoAnswer,
                    model::DialOutcome::Failed => v01::DialOutcome::Failed,
                })
            }
            E::RecordingCompleted(r) if self.ended(&Media::Record(r.name.clone())) => {
                v01::IvrEvent::RecordingCompleted(v01::RecordingResult {
                    name: r.name.clone(),
                    duration_ms: r.duration_ms,
                })
            }
            E::ActionFailed(f) => {
                // 0.1 has no such event. The failed action and the rest of its answer were
                // dropped, so no outcome the flow waits for is coming: it has nothing left to
                // do, and the call goes idle.
                warn(
                    store,
                    &format!("{} failed and was dropped: {}", f.action.name(), f.message),
                );
                self.waiting = VecDeque::from([Media::Final]);
                return Ok(Vec::new());
            }
            E::Hangup(_) => {
                self.ivr(guests, store, v01::IvrEvent::Hangup).await?;
                return Ok(Vec::new());
            }
            _ => return Ok(Vec::new()),
        };
        self.ivr(guests, store, told).await
    }

    /// Whether the outcome of `media` ends the last waiting media action: the 0.1 flow hears
    /// only that one. An outcome of anything else is not the flow's.
    fn ended(&mut self, media: &Media) -> bool {
        if self.waiting.front() != Some(media) {
            return false;
        }
        self.waiting.pop_front();
        self.waiting.is_empty()
    }

    /// Calls `ivr-flow.on-event`, checks the answer with 0.1's rules, and turns it into 0.2
    /// actions, remembering the media actions whose outcomes are to come.
    async fn ivr(
        &mut self,
        guests: &Guests,
        store: &mut Store<CallState>,
        event: v01::IvrEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        let actions = guests.on_ivr_event(store, &event).await?;
        v01::IvrAction::validate_all(&actions).map_err(invalid)?;
        let ivr = translate_ivr(actions);
        for w in ivr.warnings {
            warn(store, &w);
        }
        // 0.2's rule: an answer with a media action replaces what was waiting.
        if !ivr.media.is_empty() {
            self.waiting = ivr.media;
        }
        Ok(ivr.actions)
    }
}

/// A 0.1 IVR answer in 0.2 terms.
#[derive(Debug, Default)]
struct Translated {
    actions: Vec<model::Action>,
    /// The media actions among them whose outcomes are to come, in order.
    media: VecDeque<Media>,
    /// What the plugin's log is told (values brought into 0.2's ranges, actions dropped).
    warnings: Vec<String>,
}

/// Turns a 0.1 IVR answer (already checked by 0.1's rules) into 0.2 actions.
fn translate_ivr(actions: Vec<v01::IvrAction>) -> Translated {
    let mut t = Translated::default();
    let media_after = |i: usize, actions: &[v01::IvrAction]| {
        actions[i + 1..].iter().any(|a| {
            !matches!(
                a,
                v01::IvrAction::SetVariable(..) | v01::IvrAction::Hold(_) | v01::IvrAction::Unhold
            )
        })
    };
    for (i, a) in actions.iter().enumerate() {
        // Whether the 0.1 flow ends with this action ("the IVR ends", the call ends).
        let mut last = false;
        match a.clone() {
            v01::IvrAction::Play(p) => {
                t.media.push_back(Media::Play);
                let repeat = clamp(&mut t.warnings, "play repeat", p.repeat, 0, 100);
                let audio = audio(&mut t.warnings, p.audio);
                t.actions.push(model::Action::Play(model::Play {
                    audio,
                    repeat: Some(repeat),
                    barge_in: Some(p.barge_in),
                    tag: None,
                }));
            }
            v01::IvrAction::Gather(g) => {
                t.media.push_back(Media::Gather);
                let prompts = g
                    .prompt
                    .map(|p| audio(&mut t.warnings, p))
                    .into_iter()
                    .collect();
                let timeout = clamp(
                    &mut t.warnings,
                    "gather timeout-ms",
                    g.timeout_ms,
                    1_000,
                    60_000,
                );
                let inter = clamp(
                    &mut t.warnings,
                    "gather inter-digit-timeout-ms",
                    g.inter_digit_timeout_ms,
                    1_000,
                    60_000,
                );
                t.actions.push(model::Action::Gather(model::Gather {
                    prompts,
                    max_digits: Some(g.max_digits),
                    terminators: Some(g.terminator.map(String::from).unwrap_or_default()),
                    timeout_ms: Some(timeout),
                    inter_digit_timeout_ms: Some(inter),
                    tag: None,
                }));
            }
            v01::IvrAction::Dial(d) => {
                t.media.push_back(Media::Dial {
                    returns: d.return_on_failure,
                });
                last = !d.return_on_failure;
                t.actions.push(model::Action::Dial(dial(d.target)));
            }
            v01::IvrAction::Transfer(tr) => {
                last = true;
                t.actions.push(model::Action::Transfer(model::Transfer {
                    target: transfer_target(tr),
                    mode: model::TransferMode::Blind,
                    tag: None,
                }));
            }
            // 0.1's hold was immediate; music for the caller alone is a play that never ends,
            // which would hold up every media action after it: it is kept only when none
            // follows.
            v01::IvrAction::Hold(music) if !media_after(i, &actions) => {
                t.actions.push(model::Action::Play(model::Play {
                    audio: model::Audio::Music(music),
                    repeat: None,
                    barge_in: None,
                    tag: None,
                }))
            }
            v01::IvrAction::Hold(_) => t
                .warnings
                .push("hold dropped: a media action follows it in the same answer".into()),
            // The music stops when another media action replaces it; with none to come, a
            // moment of silence does.
            v01::IvrAction::Unhold if !media_after(i, &actions) => {
                t.media.push_back(Media::Unheld);
                t.actions.push(model::Action::Play(model::Play {
                    audio: model::Audio::Silence(1),
                    repeat: None,
                    barge_in: None,
                    tag: None,
                }));
            }
            v01::IvrAction::Unhold => {}
            v01::IvrAction::Conference(c) => {
                last = true;
                t.actions.push(model::Action::Conference(model::Conference {
                    room: c.room,
                    muted: Some(c.muted),
                    end_on_exit: Some(c.end_on_exit),
                }));
            }
            v01::IvrAction::Record(r) => {
                t.media.push_back(Media::Record(r.name.clone()));
                let max = clamp(
                    &mut t.warnings,
                    "record max-duration-ms",
                    r.max_duration_ms,
                    1_000,
                    3_600_000,
                );
                t.actions.push(model::Action::Record(model::Recording {
                    name: r.name,
                    max_duration_ms: Some(max),
                    terminators: Some(r.terminator.map(String::from).unwrap_or_default()),
                    beep: Some(r.beep),
                }));
            }
            v01::IvrAction::ConnectAi(a) => {
                last = true;
                t.actions.push(model::Action::ConnectAgent(agent(a)));
            }
            v01::IvrAction::SetVariable(name, value) => t
                .actions
                .push(model::Action::SetVariable(model::Variable { name, value })),
            v01::IvrAction::Hangup(code) => {
                last = true;
                t.actions
                    .push(model::Action::Hangup(code.map(model::SipStatus::code)));
            }
        }
        if last {
            if !matches!(t.media.back(), Some(Media::Dial { .. })) {
                t.media.push_back(Media::Final);
            }
            if i + 1 < actions.len() {
                t.warnings.push(format!(
                    "{} action(s) after the flow's last were dropped",
                    actions.len() - i - 1
                ));
            }
            break;
        }
    }
    t
}

fn warn(store: &mut Store<CallState>, message: &str) {
    store
        .data_mut()
        .guest_log(LogLevel::Warn, format!("wasmswitch 0.1 adapter: {message}"));
}

/// Brings a value 0.1 did not bound into 0.2's range, saying so in the plugin's log.
fn clamp(warnings: &mut Vec<String>, field: &str, value: u32, lo: u32, hi: u32) -> u32 {
    let clamped = value.clamp(lo, hi);
    if clamped != value {
        warnings.push(format!(
            "{field} {value} is outside {lo}-{hi}; {clamped} is used"
        ));
    }
    clamped
}

fn hangup_info(h: &model::HangupInfo) -> v01::HangupInfo {
    v01::HangupInfo {
        by_caller: h.ended_by == model::CallEnd::Caller,
        // 0.1: "the SIP status or cause that ended the call (e.g. 487, 200 for BYE)"; 0.2
        // gives a status exactly when the call was never answered.
        status: Some(h.status.as_ref().map_or(200, |s| s.code)),
    }
}

fn call_info(c: &model::CallInfo) -> v01::CallInfo {
    v01::CallInfo {
        call_id: c.call_id.clone(),
        tenant: c.tenant.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
        display_name: c.display_name.clone(),
        source_address: c.source_address.clone(),
        trunk: c.trunk.clone(),
        headers: c
            .headers
            .iter()
            .map(|h| v01::Header {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
        received_at: c.received_at,
    }
}

fn status(s: v01::SipStatus) -> model::SipStatus {
    model::SipStatus {
        code: s.code,
        reason: s.reason,
    }
}

fn dial(f: v01::Forward) -> model::Dial {
    model::Dial {
        groups: vec![model::RingGroup {
            strategy: match f.strategy {
                v01::RingStrategy::Sequential => model::RingStrategy::Sequential,
                v01::RingStrategy::Simultaneous => model::RingStrategy::Simultaneous,
            },
            targets: f
                .targets
                .into_iter()
                .map(|target| model::DialTarget {
                    target,
                    trunk: f.trunk.clone(),
                    headers: Vec::new(),
                    timeout_ms: Some(f.timeout_ms),
                })
                .collect(),
        }],
        timeout_ms: None,
        caller_id: f.caller_id.map(|number| model::CallerId {
            number: Some(number),
            ..Default::default()
        }),
        ringback: None,
        tag: None,
    }
}

fn transfer_target(t: v01::Transfer) -> model::DialTarget {
    model::DialTarget {
        target: t.target,
        trunk: t.trunk,
        headers: Vec::new(),
        timeout_ms: None,
    }
}

/// 0.1 named the agent by URL; the switch connects only to a configured agent with that URL
/// (see [`model::Agent`]). The parameters, strings in 0.1, become a JSON object.
fn agent(a: v01::AiAgent) -> model::Agent {
    let params: serde_json::Map<String, serde_json::Value> = a
        .parameters
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    model::Agent {
        name: a.url,
        parameters: Some(serde_json::Value::Object(params).to_string()),
    }
}

fn audio(warnings: &mut Vec<String>, a: v01::Audio) -> model::Audio {
    match a {
        v01::Audio::Prompt(p) => model::Audio::Prompt(p),
        v01::Audio::Say(s) => model::Audio::Say(s),
        v01::Audio::Tones(t) => model::Audio::Tones(t),
        v01::Audio::Silence(ms) => model::Audio::Silence(clamp(warnings, "silence", ms, 1, 60_000)),
    }
}

// ---- conversions ---------------------------------------------------------------------------

fn vars_in(v: &v01::Variables) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn vars_out(v: Vec<(String, String)>) -> v01::Variables {
    v.into_iter().collect()
}

// ---- host -> guest -------------------------------------------------------------------------

impl From<&v01::CallInfo> for wit::CallInfo {
    fn from(c: &v01::CallInfo) -> Self {
        wit::CallInfo {
            call_id: c.call_id.clone(),
            tenant: c.tenant.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            display_name: c.display_name.clone(),
            source_address: c.source_address.clone(),
            trunk: c.trunk.clone(),
            headers: c
                .headers
                .iter()
                .map(|h| wit::Header {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            received_at: c.received_at,
        }
    }
}

impl From<&v01::CallEvent> for wit::CallEvent {
    fn from(e: &v01::CallEvent) -> Self {
        match e {
            v01::CallEvent::Answered(uri) => wit::CallEvent::Answered(uri.clone()),
            v01::CallEvent::Dtmf(p) => wit::CallEvent::Dtmf(wit::DtmfPress {
                digit: p.digit,
                caller: p.caller,
            }),
            v01::CallEvent::Hangup(h) => wit::CallEvent::Hangup(wit::HangupInfo {
                by_caller: h.by_caller,
                status: h.status,
            }),
        }
    }
}

impl From<&v01::IvrEvent> for wit::IvrEvent {
    fn from(e: &v01::IvrEvent) -> Self {
        match e {
            v01::IvrEvent::Started(s) => wit::IvrEvent::Started(wit::IvrStarted {
                call: (&s.call).into(),
                variables: vars_in(&s.variables),
            }),
            v01::IvrEvent::Dtmf(d) => wit::IvrEvent::Dtmf(*d),
            v01::IvrEvent::DigitsCollected(d) => wit::IvrEvent::DigitsCollected(wit::Digits {
                digits: d.digits.clone(),
                terminated: d.terminated,
            }),
            v01::IvrEvent::Timeout => wit::IvrEvent::Timeout,
            v01::IvrEvent::PlaybackFinished => wit::IvrEvent::PlaybackFinished,
            v01::IvrEvent::DialCompleted(o) => wit::IvrEvent::DialCompleted(match o {
                v01::DialOutcome::Completed => wit::DialOutcome::Completed,
                v01::DialOutcome::Busy => wit::DialOutcome::Busy,
                v01::DialOutcome::NoAnswer => wit::DialOutcome::NoAnswer,
                v01::DialOutcome::Failed => wit::DialOutcome::Failed,
            }),
            v01::IvrEvent::RecordingCompleted(r) => {
                wit::IvrEvent::RecordingCompleted(wit::RecordingResult {
                    name: r.name.clone(),
                    duration_ms: r.duration_ms,
                })
            }
            v01::IvrEvent::Hangup => wit::IvrEvent::Hangup,
        }
    }
}

impl From<&v01::Message> for wit::Message {
    fn from(m: &v01::Message) -> Self {
        wit::Message {
            id: m.id.clone(),
            tenant: m.tenant.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            body: m.body.clone(),
            received_at: m.received_at,
        }
    }
}

// ---- guest -> host -------------------------------------------------------------------------

impl From<wit::SipStatus> for v01::SipStatus {
    fn from(s: wit::SipStatus) -> Self {
        v01::SipStatus {
            code: s.code,
            reason: s.reason,
        }
    }
}

impl From<wit::Forward> for v01::Forward {
    fn from(f: wit::Forward) -> Self {
        v01::Forward {
            targets: f.targets,
            trunk: f.trunk,
            timeout_ms: f.timeout_ms,
            strategy: match f.strategy {
                wit::RingStrategy::Sequential => v01::RingStrategy::Sequential,
                wit::RingStrategy::Simultaneous => v01::RingStrategy::Simultaneous,
            },
            caller_id: f.caller_id,
        }
    }
}

impl From<wit::AiAgent> for v01::AiAgent {
    fn from(a: wit::AiAgent) -> Self {
        v01::AiAgent {
            url: a.url,
            parameters: vars_out(a.parameters),
        }
    }
}

impl From<wit::Transfer> for v01::Transfer {
    fn from(t: wit::Transfer) -> Self {
        v01::Transfer {
            target: t.target,
            trunk: t.trunk,
        }
    }
}

impl From<wit::RouteDecision> for v01::RouteDecision {
    fn from(d: wit::RouteDecision) -> Self {
        match d {
            wit::RouteDecision::Forward(f) => v01::RouteDecision::Forward(f.into()),
            wit::RouteDecision::Reject(s) => v01::RouteDecision::Reject(s.into()),
            wit::RouteDecision::RunIvr(s) => v01::RouteDecision::RunIvr(v01::IvrStart {
                plugin: s.plugin,
                variables: vars_out(s.variables),
            }),
            wit::RouteDecision::ConnectAi(a) => v01::RouteDecision::ConnectAi(a.into()),
        }
    }
}

impl From<wit::CallAction> for v01::CallAction {
    fn from(a: wit::CallAction) -> Self {
        match a {
            wit::CallAction::Transfer(t) => v01::CallAction::Transfer(t.into()),
            wit::CallAction::Hold(m) => v01::CallAction::Hold(m),
            wit::CallAction::Unhold => v01::CallAction::Unhold,
            wit::CallAction::StartRecording(n) => v01::CallAction::StartRecording(n),
            wit::CallAction::Hangup(s) => v01::CallAction::Hangup(s),
        }
    }
}

impl From<wit::Audio> for v01::Audio {
    fn from(a: wit::Audio) -> Self {
        match a {
            wit::Audio::Prompt(p) => v01::Audio::Prompt(p),
            wit::Audio::Say(s) => v01::Audio::Say(s),
            wit::Audio::Tones(t) => v01::Audio::Tones(t),
            wit::Audio::Silence(ms) => v01::Audio::Silence(ms),
        }
    }
}

impl From<wit::IvrAction> for v01::IvrAction {
    fn from(a: wit::IvrAction) -> Self {
        match a {
            wit::IvrAction::Play(p) => v01::IvrAction::Play(v01::Play {
                audio: p.audio.into(),
                repeat: p.repeat,
                barge_in: p.barge_in,
            }),
            wit::IvrAction::Gather(g) => v01::IvrAction::Gather(v01::Gather {
                prompt: g.prompt.map(Into::into),
                max_digits: g.max_digits,
                terminator: g.terminator,
                timeout_ms: g.timeout_ms,
                inter_digit_timeout_ms: g.inter_digit_timeout_ms,
            }),
            wit::IvrAction::Dial(d) => v01::IvrAction::Dial(v01::Dial {
                target: d.target.into(),
                return_on_failure: d.return_on_failure,
            }),
            wit::IvrAction::Transfer(t) => v01::IvrAction::Transfer(t.into()),
            wit::IvrAction::Hold(m) => v01::IvrAction::Hold(m),
            wit::IvrAction::Unhold => v01::IvrAction::Unhold,
            wit::IvrAction::Conference(c) => v01::IvrAction::Conference(v01::Conference {
                room: c.room,
                muted: c.muted,
                end_on_exit: c.end_on_exit,
            }),
            wit::IvrAction::Record(r) => v01::IvrAction::Record(v01::Recording {
                name: r.name,
                max_duration_ms: r.max_duration_ms,
                terminator: r.terminator,
                beep: r.beep,
            }),
            wit::IvrAction::ConnectAi(a) => v01::IvrAction::ConnectAi(a.into()),
            wit::IvrAction::SetVariable((k, v)) => v01::IvrAction::SetVariable(k, v),
            wit::IvrAction::Hangup(s) => v01::IvrAction::Hangup(s),
        }
    }
}

impl From<wit::SmsDecision> for v01::SmsDecision {
    fn from(d: wit::SmsDecision) -> Self {
        match d {
            wit::SmsDecision::Deliver => v01::SmsDecision::Deliver,
            wit::SmsDecision::Rewrite(r) => v01::SmsDecision::Rewrite(v01::Rewrite {
                from: r.from,
                to: r.to,
                body: r.body,
            }),
            wit::SmsDecision::Reply(t) => v01::SmsDecision::Reply(t),
            wit::SmsDecision::Reject(s) => v01::SmsDecision::Reject(s.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play() -> v01::IvrAction {
        v01::IvrAction::Play(v01::Play {
            audio: v01::Audio::Prompt("p".into()),
            repeat: 1,
            barge_in: false,
        })
    }

    fn gather(timeout_ms: u32) -> v01::IvrAction {
        v01::IvrAction::Gather(v01::Gather {
            prompt: None,
            max_digits: 1,
            terminator: None,
            timeout_ms,
            inter_digit_timeout_ms: 3_000,
        })
    }

    fn names(t: &Translated) -> Vec<&'static str> {
        t.actions.iter().map(model::Action::name).collect()
    }

    #[test]
    fn actions_that_end_the_flow_are_last_and_hold_every_earlier_outcome_back() {
        let transfer = v01::IvrAction::Transfer(v01::Transfer {
            target: "sip:a@b".into(),
            trunk: None,
        });
        let t = translate_ivr(vec![play(), transfer, play()]);
        assert_eq!(names(&t), ["play", "transfer"]);
        // The play's outcome is not the last: a marker nothing matches stands after it.
        assert_eq!(t.media, [Media::Play, Media::Final]);
        assert_eq!(
            t.warnings,
            ["1 action(s) after the flow's last were dropped"]
        );

        let dial = |returns| {
            v01::IvrAction::Dial(v01::Dial {
                target: v01::Forward {
                    targets: vec!["+1".into()],
                    trunk: None,
                    timeout_ms: 30_000,
                    strategy: v01::RingStrategy::Sequential,
                    caller_id: None,
                },
                return_on_failure: returns,
            })
        };
        let t = translate_ivr(vec![dial(false), play()]);
        assert_eq!(t.media, [Media::Dial { returns: false }]);
        assert_eq!(names(&t), ["dial"]);
        let t = translate_ivr(vec![dial(true), play()]);
        assert_eq!(t.media, [Media::Dial { returns: true }, Media::Play]);
    }

    #[test]
    fn hold_music_never_holds_up_a_later_action_and_unhold_ends_it() {
        let t = translate_ivr(vec![v01::IvrAction::Hold(None), play()]);
        assert_eq!(names(&t), ["play"]);
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
        let t = translate_ivr(vec![v01::IvrAction::Hold(Some("jazz".into()))]);
        assert!(matches!(
            &t.actions[..],
            [model::Action::Play(model::Play { audio: model::Audio::Music(Some(m)), .. })] if m == "jazz"
        ));
        // The music plays until replaced: no outcome is waited for.
        assert!(t.media.is_empty());
        let t = translate_ivr(vec![v01::IvrAction::Unhold]);
        assert_eq!(t.media, [Media::Unheld]);
        assert!(matches!(
            &t.actions[..],
            [model::Action::Play(model::Play {
                audio: model::Audio::Silence(1),
                ..
            })]
        ));
        // With a media action to come, that replaces the music by itself.
        let t = translate_ivr(vec![v01::IvrAction::Unhold, play()]);
        assert_eq!(names(&t), ["play"]);
    }

    #[test]
    fn values_0_1_did_not_bound_are_brought_into_range_with_a_warning() {
        let t = translate_ivr(vec![gather(0), gather(5_000)]);
        let model::Action::Gather(g) = &t.actions[0] else {
            panic!("{:?}", t.actions)
        };
        assert_eq!(g.timeout_ms, Some(1_000));
        assert_eq!(
            t.warnings,
            ["gather timeout-ms 0 is outside 1000-60000; 1000 is used"]
        );
        assert_eq!(t.media, [Media::Gather, Media::Gather]);
    }

    #[test]
    fn a_hangup_tells_200_for_an_answered_call_and_the_status_otherwise() {
        let info = |status: Option<u16>| model::HangupInfo {
            ended_by: model::CallEnd::Caller,
            status: status.map(model::SipStatus::code),
            duration_ms: 0,
            legs: Vec::new(),
            recordings: Vec::new(),
        };
        assert_eq!(hangup_info(&info(None)).status, Some(200));
        assert_eq!(hangup_info(&info(Some(487))).status, Some(487));
        assert!(hangup_info(&info(None)).by_caller);
    }
}
