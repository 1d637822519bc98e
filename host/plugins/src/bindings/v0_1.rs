//! Contract 0.1 (`wit/v0.1.0`): its generated bindings, the host's imports for it, and the
//! conversions between its types and the host's model. Frozen: 0.1 plugins must keep loading
//! and behaving exactly as they did when 0.1 was current (the tests run frozen builds of the
//! 0.1 example plugins, `plugins/fixtures/v0.1.0`).

use wasmtime::Store;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};

use crate::instance::CallState;
use crate::kv::KvError;
use crate::model;
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

/// The capability each exported interface gives.
pub(super) fn capability(interface: &str) -> Option<Capability> {
    match interface {
        "call-routing" => Some(Capability::Routing),
        "ivr-flow" => Some(Capability::Ivr),
        "message-policy" => Some(Capability::Messaging),
        _ => None,
    }
}

/// The interface that gives a capability.
pub(super) fn interface(capability: Capability) -> &'static str {
    match capability {
        Capability::Routing => "call-routing",
        Capability::Ivr => "ivr-flow",
        Capability::Messaging => "message-policy",
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    generated::Switch::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

// ---- host imports --------------------------------------------------------------------------

impl wit_log::Host for CallState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        let level = match level {
            wit_log::Level::Trace => crate::LogLevel::Trace,
            wit_log::Level::Debug => crate::LogLevel::Debug,
            wit_log::Level::Info => crate::LogLevel::Info,
            wit_log::Level::Warn => crate::LogLevel::Warn,
            wit_log::Level::Error => crate::LogLevel::Error,
        };
        self.guest_log(level, message);
    }
}

impl wit_metrics::Host for CallState {
    fn counter_add(&mut self, name: String, delta: u64) {
        self.guest_counter_add(name, delta);
    }
}

fn kv_error(e: KvError) -> wit_kv::Error {
    match e {
        KvError::TooLarge => wit_kv::Error::TooLarge,
        KvError::Unavailable(why) => wit_kv::Error::Unavailable(why),
    }
}

impl wit_kv::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit_kv::Error> {
        self.guest_kv()
            .get(self.tenant(), &key)
            .await
            .map_err(kv_error)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), wit_kv::Error> {
        self.guest_kv()
            .set(self.tenant(), &key, &value)
            .await
            .map_err(kv_error)
    }

    async fn delete(&mut self, key: String) -> Result<(), wit_kv::Error> {
        self.guest_kv()
            .delete(self.tenant(), &key)
            .await
            .map_err(kv_error)
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, wit_kv::Error> {
        self.guest_kv()
            .list_keys(self.tenant(), &prefix, limit)
            .await
            .map_err(kv_error)
    }
}

impl wit::Host for CallState {}

// ---- exports -------------------------------------------------------------------------------

/// Where a 0.1 component's exports are.
#[derive(Clone)]
pub(crate) struct Exports {
    routing: Option<call_routing::GuestIndices>,
    ivr: Option<ivr_flow::GuestIndices>,
    messaging: Option<message_policy::GuestIndices>,
}

impl Exports {
    pub(super) fn new(
        pre: &InstancePre<CallState>,
        capabilities: &[Capability],
    ) -> wasmtime::Result<Self> {
        let has = |c| capabilities.contains(&c);
        Ok(Self {
            routing: has(Capability::Routing)
                .then(|| call_routing::GuestIndices::new(pre))
                .transpose()?,
            ivr: has(Capability::Ivr)
                .then(|| ivr_flow::GuestIndices::new(pre))
                .transpose()?,
            messaging: has(Capability::Messaging)
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

/// One 0.1 instance's exports.
#[derive(Clone)]
pub(crate) struct Guests {
    routing: Option<call_routing::Guest>,
    ivr: Option<ivr_flow::Guest>,
    messaging: Option<message_policy::Guest>,
}

/// The export a capability needs; the caller checks [`Guests::has`] first.
fn missing(capability: Capability) -> wasmtime::Error {
    wasmtime::format_err!("the component does not export {}", interface(capability))
}

impl Guests {
    pub(super) fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::Routing => self.routing.is_some(),
            Capability::Ivr => self.ivr.is_some(),
            Capability::Messaging => self.messaging.is_some(),
        }
    }

    pub(super) async fn route(
        &self,
        store: &mut Store<CallState>,
        call: &model::CallInfo,
    ) -> wasmtime::Result<model::RouteDecision> {
        let guest = self
            .routing
            .as_ref()
            .ok_or_else(|| missing(Capability::Routing))?;
        Ok(guest.call_route(store, &call.into()).await?.into())
    }

    pub(super) async fn on_call_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::CallAction>> {
        let guest = self
            .routing
            .as_ref()
            .ok_or_else(|| missing(Capability::Routing))?;
        let out = guest.call_on_call_event(store, &event.into()).await?;
        Ok(out.into_iter().map(Into::into).collect())
    }

    pub(super) async fn on_ivr_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::IvrEvent,
    ) -> wasmtime::Result<Vec<model::IvrAction>> {
        let guest = self.ivr.as_ref().ok_or_else(|| missing(Capability::Ivr))?;
        let out = guest.call_on_event(store, &event.into()).await?;
        Ok(out.into_iter().map(Into::into).collect())
    }

    pub(super) async fn on_message(
        &self,
        store: &mut Store<CallState>,
        msg: &model::Message,
    ) -> wasmtime::Result<model::SmsDecision> {
        let guest = self
            .messaging
            .as_ref()
            .ok_or_else(|| missing(Capability::Messaging))?;
        Ok(guest.call_on_message(store, &msg.into()).await?.into())
    }
}

// ---- conversions ---------------------------------------------------------------------------

fn vars_in(v: &model::Variables) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn vars_out(v: Vec<(String, String)>) -> model::Variables {
    v.into_iter().collect()
}

// ---- host -> guest -------------------------------------------------------------------------

impl From<&model::CallInfo> for wit::CallInfo {
    fn from(c: &model::CallInfo) -> Self {
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

impl From<&model::CallEvent> for wit::CallEvent {
    fn from(e: &model::CallEvent) -> Self {
        match e {
            model::CallEvent::Answered(uri) => wit::CallEvent::Answered(uri.clone()),
            model::CallEvent::Dtmf(p) => wit::CallEvent::Dtmf(wit::DtmfPress {
                digit: p.digit,
                caller: p.caller,
            }),
            model::CallEvent::Hangup(h) => wit::CallEvent::Hangup(wit::HangupInfo {
                by_caller: h.by_caller,
                status: h.status,
            }),
        }
    }
}

impl From<&model::IvrEvent> for wit::IvrEvent {
    fn from(e: &model::IvrEvent) -> Self {
        match e {
            model::IvrEvent::Started(s) => wit::IvrEvent::Started(wit::IvrStarted {
                call: (&s.call).into(),
                variables: vars_in(&s.variables),
            }),
            model::IvrEvent::Dtmf(d) => wit::IvrEvent::Dtmf(*d),
            model::IvrEvent::DigitsCollected(d) => wit::IvrEvent::DigitsCollected(wit::Digits {
                digits: d.digits.clone(),
                terminated: d.terminated,
            }),
            model::IvrEvent::Timeout => wit::IvrEvent::Timeout,
            model::IvrEvent::PlaybackFinished => wit::IvrEvent::PlaybackFinished,
            model::IvrEvent::DialCompleted(o) => wit::IvrEvent::DialCompleted(match o {
                model::DialOutcome::Completed => wit::DialOutcome::Completed,
                model::DialOutcome::Busy => wit::DialOutcome::Busy,
                model::DialOutcome::NoAnswer => wit::DialOutcome::NoAnswer,
                model::DialOutcome::Failed => wit::DialOutcome::Failed,
            }),
            model::IvrEvent::RecordingCompleted(r) => {
                wit::IvrEvent::RecordingCompleted(wit::RecordingResult {
                    name: r.name.clone(),
                    duration_ms: r.duration_ms,
                })
            }
            model::IvrEvent::Hangup => wit::IvrEvent::Hangup,
        }
    }
}

impl From<&model::Message> for wit::Message {
    fn from(m: &model::Message) -> Self {
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

impl From<wit::SipStatus> for model::SipStatus {
    fn from(s: wit::SipStatus) -> Self {
        model::SipStatus {
            code: s.code,
            reason: s.reason,
        }
    }
}

impl From<wit::Forward> for model::Forward {
    fn from(f: wit::Forward) -> Self {
        model::Forward {
            targets: f.targets,
            trunk: f.trunk,
            timeout_ms: f.timeout_ms,
            strategy: match f.strategy {
                wit::RingStrategy::Sequential => model::RingStrategy::Sequential,
                wit::RingStrategy::Simultaneous => model::RingStrategy::Simultaneous,
            },
            caller_id: f.caller_id,
        }
    }
}

impl From<wit::AiAgent> for model::AiAgent {
    fn from(a: wit::AiAgent) -> Self {
        model::AiAgent {
            url: a.url,
            parameters: vars_out(a.parameters),
        }
    }
}

impl From<wit::Transfer> for model::Transfer {
    fn from(t: wit::Transfer) -> Self {
        model::Transfer {
            target: t.target,
            trunk: t.trunk,
        }
    }
}

impl From<wit::RouteDecision> for model::RouteDecision {
    fn from(d: wit::RouteDecision) -> Self {
        match d {
            wit::RouteDecision::Forward(f) => model::RouteDecision::Forward(f.into()),
            wit::RouteDecision::Reject(s) => model::RouteDecision::Reject(s.into()),
            wit::RouteDecision::RunIvr(s) => model::RouteDecision::RunIvr(model::IvrStart {
                plugin: s.plugin,
                variables: vars_out(s.variables),
            }),
            wit::RouteDecision::ConnectAi(a) => model::RouteDecision::ConnectAi(a.into()),
        }
    }
}

impl From<wit::CallAction> for model::CallAction {
    fn from(a: wit::CallAction) -> Self {
        match a {
            wit::CallAction::Transfer(t) => model::CallAction::Transfer(t.into()),
            wit::CallAction::Hold(m) => model::CallAction::Hold(m),
            wit::CallAction::Unhold => model::CallAction::Unhold,
            wit::CallAction::StartRecording(n) => model::CallAction::StartRecording(n),
            wit::CallAction::Hangup(s) => model::CallAction::Hangup(s),
        }
    }
}

impl From<wit::Audio> for model::Audio {
    fn from(a: wit::Audio) -> Self {
        match a {
            wit::Audio::Prompt(p) => model::Audio::Prompt(p),
            wit::Audio::Say(s) => model::Audio::Say(s),
            wit::Audio::Tones(t) => model::Audio::Tones(t),
            wit::Audio::Silence(ms) => model::Audio::Silence(ms),
        }
    }
}

impl From<wit::IvrAction> for model::IvrAction {
    fn from(a: wit::IvrAction) -> Self {
        match a {
            wit::IvrAction::Play(p) => model::IvrAction::Play(model::Play {
                audio: p.audio.into(),
                repeat: p.repeat,
                barge_in: p.barge_in,
            }),
            wit::IvrAction::Gather(g) => model::IvrAction::Gather(model::Gather {
                prompt: g.prompt.map(Into::into),
                max_digits: g.max_digits,
                terminator: g.terminator,
                timeout_ms: g.timeout_ms,
                inter_digit_timeout_ms: g.inter_digit_timeout_ms,
            }),
            wit::IvrAction::Dial(d) => model::IvrAction::Dial(model::Dial {
                target: d.target.into(),
                return_on_failure: d.return_on_failure,
            }),
            wit::IvrAction::Transfer(t) => model::IvrAction::Transfer(t.into()),
            wit::IvrAction::Hold(m) => model::IvrAction::Hold(m),
            wit::IvrAction::Unhold => model::IvrAction::Unhold,
            wit::IvrAction::Conference(c) => model::IvrAction::Conference(model::Conference {
                room: c.room,
                muted: c.muted,
                end_on_exit: c.end_on_exit,
            }),
            wit::IvrAction::Record(r) => model::IvrAction::Record(model::Recording {
                name: r.name,
                max_duration_ms: r.max_duration_ms,
                terminator: r.terminator,
                beep: r.beep,
            }),
            wit::IvrAction::ConnectAi(a) => model::IvrAction::ConnectAi(a.into()),
            wit::IvrAction::SetVariable((k, v)) => model::IvrAction::SetVariable(k, v),
            wit::IvrAction::Hangup(s) => model::IvrAction::Hangup(s),
        }
    }
}

impl From<wit::SmsDecision> for model::SmsDecision {
    fn from(d: wit::SmsDecision) -> Self {
        match d {
            wit::SmsDecision::Deliver => model::SmsDecision::Deliver,
            wit::SmsDecision::Rewrite(r) => model::SmsDecision::Rewrite(model::Rewrite {
                from: r.from,
                to: r.to,
                body: r.body,
            }),
            wit::SmsDecision::Reply(t) => model::SmsDecision::Reply(t),
            wit::SmsDecision::Reject(s) => model::SmsDecision::Reject(s.into()),
        }
    }
}
