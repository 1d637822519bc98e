//! The one place the host runs `bindgen!`, and the conversions between the generated types and
//! the host's own (`model`). When the WIT gets a new major version, add a sibling module for it
//! here and keep this one loading.

use super::model;

pub(crate) mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "switch",
        // Only `kv` may wait on I/O (it is backed by the database); log and metrics stay
        // synchronous, which keeps them cheap.
        imports: { "wasmswitch:plugin/kv": async },
        exports: { default: async },
    });
}

use generated::exports::wasmswitch::plugin::{call_routing, ivr_flow, message_policy};
use generated::wasmswitch::plugin::types as wit;

pub(crate) use call_routing::GuestIndices as RoutingIndices;
pub(crate) use generated::wasmswitch::plugin::{
    kv as wit_kv, log as wit_log, metrics as wit_metrics, types as wit_types,
};
pub(crate) use ivr_flow::GuestIndices as IvrIndices;
pub(crate) use message_policy::GuestIndices as MessagingIndices;

/// The fully qualified names of the interfaces a plugin can export, as they appear in a
/// component's type.
pub(crate) const ROUTING_EXPORT: &str = "wasmswitch:plugin/call-routing@0.1.0";
pub(crate) const IVR_EXPORT: &str = "wasmswitch:plugin/ivr-flow@0.1.0";
pub(crate) const MESSAGING_EXPORT: &str = "wasmswitch:plugin/message-policy@0.1.0";

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
