//! Contract 0.2 (`wit/v0.2.0`): its generated bindings, the host's imports for it, and the
//! conversions between its types and the host's model, which mirrors it one to one.

use wasmtime::Store;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};

use crate::instance::CallState;
use crate::model;
use crate::runtime::Capability;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "switch",
        // As in 0.1: only `kv` may wait on I/O.
        imports: { "wasmswitch:plugin/kv": async },
        exports: { default: async },
    });
}

use generated::exports::wasmswitch::plugin::{call_handler, message_policy};
use generated::wasmswitch::plugin::types as wit;
use generated::wasmswitch::plugin::{kv as wit_kv, log as wit_log, metrics as wit_metrics};

/// The capability each exported interface gives.
pub(super) fn capability(interface: &str) -> Option<Capability> {
    match interface {
        "call-handler" => Some(Capability::Calls),
        "message-policy" => Some(Capability::Messaging),
        _ => None,
    }
}

/// The interface that gives a capability.
pub(super) fn interface(capability: Capability) -> &'static str {
    match capability {
        Capability::Calls => "call-handler",
        Capability::Messaging => "message-policy",
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    generated::Switch::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

// ---- host imports --------------------------------------------------------------------------

host_imports!();

// ---- exports -------------------------------------------------------------------------------

/// Where a 0.2 component's exports are.
#[derive(Clone)]
pub(crate) struct Exports {
    calls: Option<call_handler::GuestIndices>,
    messaging: Option<message_policy::GuestIndices>,
}

impl Exports {
    pub(super) fn new(
        pre: &InstancePre<CallState>,
        capabilities: &[Capability],
    ) -> wasmtime::Result<Self> {
        let has = |c| capabilities.contains(&c);
        Ok(Self {
            calls: has(Capability::Calls)
                .then(|| call_handler::GuestIndices::new(pre))
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
            calls: self
                .calls
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

/// One 0.2 instance's exports.
#[derive(Clone)]
pub(crate) struct Guests {
    calls: Option<call_handler::Guest>,
    messaging: Option<message_policy::Guest>,
}

/// The export a capability needs; the caller checks [`Guests::has`] first.
fn missing(capability: Capability) -> wasmtime::Error {
    wasmtime::format_err!("the component does not export {}", interface(capability))
}

impl Guests {
    pub(super) fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::Calls => self.calls.is_some(),
            Capability::Messaging => self.messaging.is_some(),
        }
    }

    pub(super) async fn on_event(
        &self,
        store: &mut Store<CallState>,
        event: &model::CallEvent,
    ) -> wasmtime::Result<Vec<model::Action>> {
        let guest = self
            .calls
            .as_ref()
            .ok_or_else(|| missing(Capability::Calls))?;
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

    pub(super) async fn on_delivery(
        &self,
        store: &mut Store<CallState>,
        report: &model::DeliveryReport,
    ) -> wasmtime::Result<()> {
        let guest = self
            .messaging
            .as_ref()
            .ok_or_else(|| missing(Capability::Messaging))?;
        guest.call_on_delivery(store, &report.into()).await
    }
}

// ---- conversions: both ways, field by field ------------------------------------------------
//
// Events and messages go host -> guest; actions and decisions come back guest -> host, and go
// out again inside `action-failed`, so actions convert both ways.

fn header_in(h: &model::Header) -> wit::Header {
    wit::Header {
        name: h.name.clone(),
        value: h.value.clone(),
    }
}

fn header_out(h: wit::Header) -> model::Header {
    model::Header {
        name: h.name,
        value: h.value,
    }
}

fn privacy_in(p: model::Privacy) -> wit::Privacy {
    let mut flags = wit::Privacy::empty();
    for (set, flag) in [
        (p.header, wit::Privacy::HEADER),
        (p.session, wit::Privacy::SESSION),
        (p.user, wit::Privacy::USER),
        (p.id, wit::Privacy::ID),
        (p.critical, wit::Privacy::CRITICAL),
    ] {
        if set {
            flags |= flag;
        }
    }
    flags
}

fn privacy_out(p: wit::Privacy) -> model::Privacy {
    model::Privacy {
        header: p.contains(wit::Privacy::HEADER),
        session: p.contains(wit::Privacy::SESSION),
        user: p.contains(wit::Privacy::USER),
        id: p.contains(wit::Privacy::ID),
        critical: p.contains(wit::Privacy::CRITICAL),
    }
}

fn status_in(s: &model::SipStatus) -> wit::SipStatus {
    wit::SipStatus {
        code: s.code,
        reason: s.reason.clone(),
    }
}

fn status_out(s: wit::SipStatus) -> model::SipStatus {
    model::SipStatus {
        code: s.code,
        reason: s.reason,
    }
}

fn variable_in(v: &model::Variable) -> wit::Variable {
    wit::Variable {
        name: v.name.clone(),
        value: v.value.clone(),
    }
}

fn variable_out(v: wit::Variable) -> model::Variable {
    model::Variable {
        name: v.name,
        value: v.value,
    }
}

impl From<&model::CallInfo> for wit::CallInfo {
    fn from(c: &model::CallInfo) -> Self {
        wit::CallInfo {
            call_id: c.call_id.clone(),
            tenant: c.tenant.clone(),
            from: c.from.clone(),
            display_name: c.display_name.clone(),
            privacy: privacy_in(c.privacy),
            asserted_identity: c.asserted_identity.clone(),
            to: c.to.clone(),
            source_address: c.source_address.clone(),
            trunk: c.trunk.clone(),
            user: c.user.clone(),
            headers: c.headers.iter().map(header_in).collect(),
            received_at: c.received_at,
        }
    }
}

// -- audio and the media actions --

fn audio_in(a: &model::Audio) -> wit::Audio {
    match a {
        model::Audio::Prompt(p) => wit::Audio::Prompt(p.clone()),
        model::Audio::Say(s) => wit::Audio::Say(s.clone()),
        model::Audio::Tones(t) => wit::Audio::Tones(t.clone()),
        model::Audio::Silence(ms) => wit::Audio::Silence(*ms),
        model::Audio::Music(m) => wit::Audio::Music(m.clone()),
    }
}

fn audio_out(a: wit::Audio) -> model::Audio {
    match a {
        wit::Audio::Prompt(p) => model::Audio::Prompt(p),
        wit::Audio::Say(s) => model::Audio::Say(s),
        wit::Audio::Tones(t) => model::Audio::Tones(t),
        wit::Audio::Silence(ms) => model::Audio::Silence(ms),
        wit::Audio::Music(m) => model::Audio::Music(m),
    }
}

fn target_in(t: &model::DialTarget) -> wit::DialTarget {
    wit::DialTarget {
        target: t.target.clone(),
        trunk: t.trunk.clone(),
        headers: t.headers.iter().map(header_in).collect(),
        timeout_ms: t.timeout_ms,
    }
}

fn target_out(t: wit::DialTarget) -> model::DialTarget {
    model::DialTarget {
        target: t.target,
        trunk: t.trunk,
        headers: t.headers.into_iter().map(header_out).collect(),
        timeout_ms: t.timeout_ms,
    }
}

fn strategy_in(s: model::RingStrategy) -> wit::RingStrategy {
    match s {
        model::RingStrategy::Sequential => wit::RingStrategy::Sequential,
        model::RingStrategy::Simultaneous => wit::RingStrategy::Simultaneous,
    }
}

fn strategy_out(s: wit::RingStrategy) -> model::RingStrategy {
    match s {
        wit::RingStrategy::Sequential => model::RingStrategy::Sequential,
        wit::RingStrategy::Simultaneous => model::RingStrategy::Simultaneous,
    }
}

fn caller_id_in(c: &model::CallerId) -> wit::CallerId {
    wit::CallerId {
        number: c.number.clone(),
        name: c.name.clone(),
        privacy: c.privacy.map(privacy_in),
        asserted_identity: c.asserted_identity.clone(),
    }
}

fn caller_id_out(c: wit::CallerId) -> model::CallerId {
    model::CallerId {
        number: c.number,
        name: c.name,
        privacy: c.privacy.map(privacy_out),
        asserted_identity: c.asserted_identity,
    }
}

fn dial_in(d: &model::Dial) -> wit::Dial {
    wit::Dial {
        groups: d
            .groups
            .iter()
            .map(|g| wit::RingGroup {
                strategy: strategy_in(g.strategy),
                targets: g.targets.iter().map(target_in).collect(),
            })
            .collect(),
        timeout_ms: d.timeout_ms,
        caller_id: d.caller_id.as_ref().map(caller_id_in),
        ringback: d.ringback.as_ref().map(audio_in),
        tag: d.tag.clone(),
    }
}

fn dial_out(d: wit::Dial) -> model::Dial {
    model::Dial {
        groups: d
            .groups
            .into_iter()
            .map(|g| model::RingGroup {
                strategy: strategy_out(g.strategy),
                targets: g.targets.into_iter().map(target_out).collect(),
            })
            .collect(),
        timeout_ms: d.timeout_ms,
        caller_id: d.caller_id.map(caller_id_out),
        ringback: d.ringback.map(audio_out),
        tag: d.tag,
    }
}

fn mode_in(m: model::TransferMode) -> wit::TransferMode {
    match m {
        model::TransferMode::Blind => wit::TransferMode::Blind,
        model::TransferMode::Attended => wit::TransferMode::Attended,
    }
}

fn mode_out(m: wit::TransferMode) -> model::TransferMode {
    match m {
        wit::TransferMode::Blind => model::TransferMode::Blind,
        wit::TransferMode::Attended => model::TransferMode::Attended,
    }
}

impl From<&model::Action> for wit::Action {
    fn from(a: &model::Action) -> Self {
        use model::Action as M;
        match a {
            M::Answer => wit::Action::Answer,
            M::PreAnswer => wit::Action::PreAnswer,
            M::Reject(s) => wit::Action::Reject(status_in(s)),
            M::Redirect(r) => wit::Action::Redirect(wit::Redirect {
                contacts: r.contacts.clone(),
                status: r.status,
            }),
            M::Hangup(s) => wit::Action::Hangup(s.as_ref().map(status_in)),
            M::Play(p) => wit::Action::Play(wit::Play {
                audio: audio_in(&p.audio),
                repeat: p.repeat,
                barge_in: p.barge_in,
                tag: p.tag.clone(),
            }),
            M::Gather(g) => wit::Action::Gather(wit::Gather {
                prompts: g.prompts.iter().map(audio_in).collect(),
                max_digits: g.max_digits,
                terminators: g.terminators.clone(),
                timeout_ms: g.timeout_ms,
                inter_digit_timeout_ms: g.inter_digit_timeout_ms,
                tag: g.tag.clone(),
            }),
            M::Record(r) => wit::Action::Record(wit::Recording {
                name: r.name.clone(),
                max_duration_ms: r.max_duration_ms,
                terminators: r.terminators.clone(),
                beep: r.beep,
            }),
            M::Dial(d) => wit::Action::Dial(dial_in(d)),
            M::FollowRedirect(f) => wit::Action::FollowRedirect(wit::FollowRedirect {
                leg: f.leg,
                targets: f.targets.iter().map(target_in).collect(),
            }),
            M::HangupLeg(l) => wit::Action::HangupLeg(*l),
            M::Transfer(t) => wit::Action::Transfer(wit::Transfer {
                target: target_in(&t.target),
                mode: mode_in(t.mode),
                tag: t.tag.clone(),
            }),
            M::AcceptTransfer(t) => wit::Action::AcceptTransfer(wit::AcceptTransfer {
                leg: t.leg,
                target: t.target.as_ref().map(target_in),
                tag: t.tag.clone(),
            }),
            M::RefuseTransfer(t) => wit::Action::RefuseTransfer(wit::RefuseTransfer {
                leg: t.leg,
                status: t.status.as_ref().map(status_in),
            }),
            M::Hold(h) => wit::Action::Hold(wit::Hold {
                leg: h.leg,
                music: h.music.clone(),
            }),
            M::Unhold(l) => wit::Action::Unhold(*l),
            M::StartRecording(r) => wit::Action::StartRecording(wit::CallRecording {
                name: r.name.clone(),
                max_duration_ms: r.max_duration_ms,
            }),
            M::StopRecording(n) => wit::Action::StopRecording(n.clone()),
            M::Conference(c) => wit::Action::Conference(wit::Conference {
                room: c.room.clone(),
                muted: c.muted,
                end_on_exit: c.end_on_exit,
            }),
            M::ConnectAgent(a) => wit::Action::ConnectAgent(wit::Agent {
                name: a.name.clone(),
                parameters: a.parameters.clone(),
            }),
            M::SetTimer(t) => wit::Action::SetTimer(wit::Timer {
                name: t.name.clone(),
                ms: t.ms,
            }),
            M::CancelTimer(n) => wit::Action::CancelTimer(n.clone()),
            M::SetVariable(v) => wit::Action::SetVariable(variable_in(v)),
            M::HandOff(h) => wit::Action::HandOff(wit::HandOff {
                plugin: h.plugin.clone(),
                variables: h.variables.iter().map(variable_in).collect(),
            }),
        }
    }
}

impl From<wit::Action> for model::Action {
    fn from(a: wit::Action) -> Self {
        use model::Action as M;
        match a {
            wit::Action::Answer => M::Answer,
            wit::Action::PreAnswer => M::PreAnswer,
            wit::Action::Reject(s) => M::Reject(status_out(s)),
            wit::Action::Redirect(r) => M::Redirect(model::Redirect {
                contacts: r.contacts,
                status: r.status,
            }),
            wit::Action::Hangup(s) => M::Hangup(s.map(status_out)),
            wit::Action::Play(p) => M::Play(model::Play {
                audio: audio_out(p.audio),
                repeat: p.repeat,
                barge_in: p.barge_in,
                tag: p.tag,
            }),
            wit::Action::Gather(g) => M::Gather(model::Gather {
                prompts: g.prompts.into_iter().map(audio_out).collect(),
                max_digits: g.max_digits,
                terminators: g.terminators,
                timeout_ms: g.timeout_ms,
                inter_digit_timeout_ms: g.inter_digit_timeout_ms,
                tag: g.tag,
            }),
            wit::Action::Record(r) => M::Record(model::Recording {
                name: r.name,
                max_duration_ms: r.max_duration_ms,
                terminators: r.terminators,
                beep: r.beep,
            }),
            wit::Action::Dial(d) => M::Dial(dial_out(d)),
            wit::Action::FollowRedirect(f) => M::FollowRedirect(model::FollowRedirect {
                leg: f.leg,
                targets: f.targets.into_iter().map(target_out).collect(),
            }),
            wit::Action::HangupLeg(l) => M::HangupLeg(l),
            wit::Action::Transfer(t) => M::Transfer(model::Transfer {
                target: target_out(t.target),
                mode: mode_out(t.mode),
                tag: t.tag,
            }),
            wit::Action::AcceptTransfer(t) => M::AcceptTransfer(model::AcceptTransfer {
                leg: t.leg,
                target: t.target.map(target_out),
                tag: t.tag,
            }),
            wit::Action::RefuseTransfer(t) => M::RefuseTransfer(model::RefuseTransfer {
                leg: t.leg,
                status: t.status.map(status_out),
            }),
            wit::Action::Hold(h) => M::Hold(model::Hold {
                leg: h.leg,
                music: h.music,
            }),
            wit::Action::Unhold(l) => M::Unhold(l),
            wit::Action::StartRecording(r) => M::StartRecording(model::CallRecording {
                name: r.name,
                max_duration_ms: r.max_duration_ms,
            }),
            wit::Action::StopRecording(n) => M::StopRecording(n),
            wit::Action::Conference(c) => M::Conference(model::Conference {
                room: c.room,
                muted: c.muted,
                end_on_exit: c.end_on_exit,
            }),
            wit::Action::ConnectAgent(a) => M::ConnectAgent(model::Agent {
                name: a.name,
                parameters: a.parameters,
            }),
            wit::Action::SetTimer(t) => M::SetTimer(model::Timer {
                name: t.name,
                ms: t.ms,
            }),
            wit::Action::CancelTimer(n) => M::CancelTimer(n),
            wit::Action::SetVariable(v) => M::SetVariable(variable_out(v)),
            wit::Action::HandOff(h) => M::HandOff(model::HandOff {
                plugin: h.plugin,
                variables: h.variables.into_iter().map(variable_out).collect(),
            }),
        }
    }
}

// -- events --

fn leg_in(l: &model::LegInfo) -> wit::LegInfo {
    wit::LegInfo {
        id: l.id,
        target: l.target.clone(),
        tag: l.tag.clone(),
    }
}

fn leg_end_in(e: model::LegEnd) -> wit::LegEnd {
    use model::LegEnd as M;
    match e {
        M::Rejected => wit::LegEnd::Rejected,
        M::Redirected => wit::LegEnd::Redirected,
        M::NoAnswer => wit::LegEnd::NoAnswer,
        M::Unreachable => wit::LegEnd::Unreachable,
        M::Cancelled => wit::LegEnd::Cancelled,
        M::HungUp => wit::LegEnd::HungUp,
        M::Dropped => wit::LegEnd::Dropped,
        M::Transferred => wit::LegEnd::Transferred,
    }
}

fn leg_result_in(r: &model::LegResult) -> wit::LegResult {
    wit::LegResult {
        leg: leg_in(&r.leg),
        status: status_in(&r.status),
        end: leg_end_in(r.end),
        duration_ms: r.duration_ms,
    }
}

fn dial_result_in(r: &model::DialResult) -> wit::DialResult {
    wit::DialResult {
        tag: r.tag.clone(),
        outcome: match r.outcome {
            model::DialOutcome::Answered => wit::DialOutcome::Answered,
            model::DialOutcome::Busy => wit::DialOutcome::Busy,
            model::DialOutcome::NoAnswer => wit::DialOutcome::NoAnswer,
            model::DialOutcome::Failed => wit::DialOutcome::Failed,
        },
        answered: r.answered,
        legs: r.legs.iter().map(leg_result_in).collect(),
    }
}

fn recording_result_in(r: &model::RecordingResult) -> wit::RecordingResult {
    wit::RecordingResult {
        name: r.name.clone(),
        duration_ms: r.duration_ms,
        ended_by: match r.ended_by {
            model::RecordingEnd::Terminator => wit::RecordingEnd::Terminator,
            model::RecordingEnd::MaxDuration => wit::RecordingEnd::MaxDuration,
            model::RecordingEnd::Stopped => wit::RecordingEnd::Stopped,
            model::RecordingEnd::CallEnded => wit::RecordingEnd::CallEnded,
        },
    }
}

fn failure_in(r: &model::FailureReason) -> wit::FailureReason {
    use model::FailureReason as M;
    match r {
        M::Invalid => wit::FailureReason::Invalid,
        M::InvalidState => wit::FailureReason::InvalidState,
        M::UnknownLeg(l) => wit::FailureReason::UnknownLeg(*l),
        M::MissingPrompt(s) => wit::FailureReason::MissingPrompt(s.clone()),
        M::BadTarget(s) => wit::FailureReason::BadTarget(s.clone()),
        M::UnknownTrunk(s) => wit::FailureReason::UnknownTrunk(s.clone()),
        M::DeniedHeader(s) => wit::FailureReason::DeniedHeader(s.clone()),
        M::UnknownAgent(s) => wit::FailureReason::UnknownAgent(s.clone()),
        M::UnknownPlugin(s) => wit::FailureReason::UnknownPlugin(s.clone()),
        M::NotAllowed(s) => wit::FailureReason::NotAllowed(s.clone()),
        M::LimitReached(s) => wit::FailureReason::LimitReached(s.clone()),
        M::Unavailable(s) => wit::FailureReason::Unavailable(s.clone()),
    }
}

impl From<&model::CallEvent> for wit::CallEvent {
    fn from(e: &model::CallEvent) -> Self {
        use model::CallEvent as M;
        match e {
            M::Incoming(c) => wit::CallEvent::Incoming(c.into()),
            M::HandedOver(h) => wit::CallEvent::HandedOver(wit::HandOver {
                call: (&h.call).into(),
                from_plugin: h.from_plugin.clone(),
                variables: h.variables.iter().map(variable_in).collect(),
                state: match h.state {
                    model::AnswerState::Unanswered => wit::AnswerState::Unanswered,
                    model::AnswerState::EarlyMedia => wit::AnswerState::EarlyMedia,
                    model::AnswerState::Answered => wit::AnswerState::Answered,
                },
                recordings: h.recordings.clone(),
            }),
            M::LegRinging(l) => wit::CallEvent::LegRinging(leg_in(l)),
            M::LegEarlyMedia(l) => wit::CallEvent::LegEarlyMedia(leg_in(l)),
            M::LegAnswered(l) => wit::CallEvent::LegAnswered(leg_in(l)),
            M::LegRedirected(r) => wit::CallEvent::LegRedirected(wit::LegRedirect {
                leg: leg_in(&r.leg),
                status: r.status,
                contacts: r.contacts.clone(),
            }),
            M::LegEnded(r) => wit::CallEvent::LegEnded(leg_result_in(r)),
            M::DialCompleted(r) => wit::CallEvent::DialCompleted(dial_result_in(r)),
            M::Dtmf(d) => wit::CallEvent::Dtmf(wit::DtmfPress {
                leg: d.leg,
                digit: d.digit,
            }),
            M::PlaybackFinished(p) => wit::CallEvent::PlaybackFinished(wit::PlaybackResult {
                tag: p.tag.clone(),
                barged_in: p.barged_in,
            }),
            M::GatherCompleted(g) => wit::CallEvent::GatherCompleted(wit::GatherResult {
                tag: g.tag.clone(),
                digits: g.digits.clone(),
                ended_by: match g.ended_by {
                    model::GatherEnd::MaxDigits => wit::GatherEnd::MaxDigits,
                    model::GatherEnd::Terminator(d) => wit::GatherEnd::Terminator(d),
                    model::GatherEnd::Timeout => wit::GatherEnd::Timeout,
                },
            }),
            M::RecordingCompleted(r) => wit::CallEvent::RecordingCompleted(recording_result_in(r)),
            M::TransferRequested(t) => wit::CallEvent::TransferRequested(wit::TransferRequest {
                leg: t.leg,
                target: t.target.clone(),
                replaces: t.replaces.clone(),
                referred_by: t.referred_by.clone(),
            }),
            M::TransferCompleted(r) => wit::CallEvent::TransferCompleted(dial_result_in(r)),
            M::ConferenceChanged(c) => wit::CallEvent::ConferenceChanged(wit::ConferenceUpdate {
                room: c.room.clone(),
                member: c.member.clone(),
                change: match c.change {
                    model::MemberChange::Joined => wit::MemberChange::Joined,
                    model::MemberChange::Left => wit::MemberChange::Left,
                    model::MemberChange::Closed => wit::MemberChange::Closed,
                },
                members: c.members,
            }),
            M::AgentEnded(a) => wit::CallEvent::AgentEnded(wit::AgentResult {
                name: a.name.clone(),
                reason: match &a.reason {
                    model::AgentEnd::HungUp => wit::AgentEnd::HungUp,
                    model::AgentEnd::TransferRequested(t) => {
                        wit::AgentEnd::TransferRequested(t.clone())
                    }
                    model::AgentEnd::Error(e) => wit::AgentEnd::Error(e.clone()),
                },
                data: a.data.clone(),
                duration_ms: a.duration_ms,
            }),
            M::Timer(name) => wit::CallEvent::Timer(name.clone()),
            M::ActionFailed(f) => wit::CallEvent::ActionFailed(wit::ActionFailure {
                action: (&f.action).into(),
                reason: failure_in(&f.reason),
                message: f.message.clone(),
            }),
            M::Hangup(h) => wit::CallEvent::Hangup(wit::HangupInfo {
                ended_by: match &h.ended_by {
                    model::CallEnd::Caller => wit::CallEnd::Caller,
                    model::CallEnd::Plugin => wit::CallEnd::Plugin,
                    model::CallEnd::Idle => wit::CallEnd::Idle,
                    model::CallEnd::Leg(l) => wit::CallEnd::Leg(*l),
                    model::CallEnd::Switch(why) => wit::CallEnd::Switch(why.clone()),
                },
                status: h.status.as_ref().map(status_in),
                duration_ms: h.duration_ms,
                legs: h.legs.iter().map(leg_result_in).collect(),
                recordings: h.recordings.iter().map(recording_result_in).collect(),
            }),
        }
    }
}

// -- messages --

impl From<&model::Message> for wit::Message {
    fn from(m: &model::Message) -> Self {
        wit::Message {
            id: m.id.clone(),
            tenant: m.tenant.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            body: m.body.clone(),
            headers: m.headers.iter().map(header_in).collect(),
            received_at: m.received_at,
        }
    }
}

impl From<&model::DeliveryReport> for wit::DeliveryReport {
    fn from(r: &model::DeliveryReport) -> Self {
        wit::DeliveryReport {
            id: r.id.clone(),
            tenant: r.tenant.clone(),
            reply: r.reply,
            to: r.to.clone(),
            status: match &r.status {
                model::DeliveryStatus::Delivered(code) => wit::DeliveryStatus::Delivered(*code),
                model::DeliveryStatus::Failed(s) => wit::DeliveryStatus::Failed(status_in(s)),
            },
            reported_at: r.reported_at,
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
            wit::SmsDecision::Reject(s) => model::SmsDecision::Reject(status_out(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action survives the trip to the guest's types and back (`action-failed` sends
    /// actions back to the guest).
    #[test]
    fn actions_convert_both_ways() {
        let actions: Vec<model::Action> = serde_json::from_value(serde_json::json!([
            "answer", "pre-answer",
            {"reject": {"code": 486, "reason": "Busy Here"}},
            {"redirect": {"contacts": ["sip:a@b"], "status": 301}},
            {"hangup": null},
            {"play": {"audio": {"music": "jazz"}, "repeat": 0, "barge-in": true, "tag": "t"}},
            {"gather": {"prompts": [{"say": "hi"}, {"tones": "12"}, {"silence": 5}], "max-digits": 4,
                        "terminators": "#*", "timeout-ms": 5000, "inter-digit-timeout-ms": 3000, "tag": "g"}},
            {"record": {"name": "vm/1", "max-duration-ms": 60000, "terminators": "", "beep": false}},
            {"dial": {"groups": [{"strategy": "simultaneous", "targets": [{"target": "+1", "trunk": "t",
                      "headers": [{"name": "X-A", "value": "b"}], "timeout-ms": 20000}]}],
                      "timeout-ms": 60000, "caller-id": {"number": "+2", "name": "N", "privacy": ["id"],
                      "asserted-identity": "sip:x@y"}, "ringback": {"prompt": "ring"}, "tag": "d"}},
            {"follow-redirect": {"leg": 2, "targets": [{"target": "sip:c@d"}]}},
            {"hangup-leg": 3},
            {"transfer": {"target": {"target": "+3"}, "mode": "attended", "tag": "x"}},
            {"accept-transfer": {"leg": 1, "target": null, "tag": null}},
            {"refuse-transfer": {"leg": 1, "status": {"code": 403}}},
            {"hold": {"leg": 1, "music": null}},
            {"unhold": 1},
            {"start-recording": {"name": "call", "max-duration-ms": null}},
            {"stop-recording": "call"},
            {"conference": {"room": "r", "muted": true, "end-on-exit": false}},
            {"connect-agent": {"name": "sales", "parameters": "{}"}},
            {"set-timer": {"name": "t", "ms": 10}},
            {"cancel-timer": "t"},
            {"set-variable": {"name": "a", "value": "b"}},
            {"hand-off": {"plugin": "ivr", "variables": [{"name": "a", "value": "b"}]}},
        ]))
        .unwrap();
        let cases: std::collections::BTreeSet<_> =
            actions.iter().map(model::Action::name).collect();
        assert_eq!(cases.len(), 24, "every case of `action` is here once");
        for a in actions {
            let back: model::Action = wit::Action::from(&a).into();
            assert_eq!(back, a);
        }
    }
}
