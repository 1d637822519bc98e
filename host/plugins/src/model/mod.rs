//! The host's own types for what crosses the plugin boundary: contract 0.2's call events,
//! actions, messages and decisions (`wit/v0.2.0/types.wit`), one to one.
//!
//! They belong to the host, not to the generated bindings: the calls layer, the API, the
//! harness and the scenario files use these, and each contract version's bindings convert to and
//! from them (`bindings::v0_2` directly; `bindings::v0_1` through an adapter that runs 0.1
//! plugins on this model). The WIT is the reference for what every field means; the docs here
//! say only what the host adds.
//!
//! In JSON and YAML (scenario files, the simulate endpoint) they use the WIT's names: a record is
//! a map with kebab-case field names, an `option` is `null` or the value, a variant case is a
//! string when it has no payload (`"answer"`) and a one-key map when it has one
//! (`{"reject": {"code": 486}}`), `flags` are a list of names (`["id"]`), a `char` is a
//! one-character string. In input, option fields may be left out, and so may lists that may be
//! empty.
//!
//! [`v0_1`] keeps contract 0.1's vocabulary, which 0.1 scenario files and the simulate endpoint
//! still speak for 0.1 plugins.

use serde::{Deserialize, Serialize};

mod check;
pub mod v0_1;

pub(crate) use check::check_from_v0_1;
pub use check::{Invalid, MAX_ACTIONS, denied_header};

/// One SIP header (WIT `header`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// One RFC 3323 privacy value (a WIT `privacy` flag), for [`Privacy`]'s JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyFlag {
    Header,
    Session,
    User,
    Id,
    Critical,
}

/// The privacy a caller asks for (WIT flags `privacy`); none set is Privacy "none". In JSON a
/// list of flag names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PrivacyFlag>", into = "Vec<PrivacyFlag>")]
pub struct Privacy {
    pub header: bool,
    pub session: bool,
    pub user: bool,
    pub id: bool,
    pub critical: bool,
}

impl From<Vec<PrivacyFlag>> for Privacy {
    fn from(flags: Vec<PrivacyFlag>) -> Self {
        let mut p = Privacy::default();
        for f in flags {
            match f {
                PrivacyFlag::Header => p.header = true,
                PrivacyFlag::Session => p.session = true,
                PrivacyFlag::User => p.user = true,
                PrivacyFlag::Id => p.id = true,
                PrivacyFlag::Critical => p.critical = true,
            }
        }
        p
    }
}

impl From<Privacy> for Vec<PrivacyFlag> {
    fn from(p: Privacy) -> Self {
        [
            (p.header, PrivacyFlag::Header),
            (p.session, PrivacyFlag::Session),
            (p.user, PrivacyFlag::User),
            (p.id, PrivacyFlag::Id),
            (p.critical, PrivacyFlag::Critical),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }
}

/// What the switch knows about a call when it arrives (WIT `call-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct CallInfo {
    pub call_id: String,
    pub tenant: String,
    pub from: String,
    pub display_name: Option<String>,
    #[schema(value_type = Vec<PrivacyFlag>)]
    pub privacy: Privacy,
    pub asserted_identity: Option<String>,
    pub to: String,
    pub source_address: String,
    pub trunk: Option<String>,
    pub user: Option<String>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch when the call arrived.
    pub received_at: u64,
}

/// A SIP status (WIT `sip-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipStatus {
    pub code: u16,
    #[serde(default)]
    pub reason: Option<String>,
}

impl SipStatus {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: Some(reason.into()),
        }
    }

    /// A status with the standard reason phrase.
    pub fn code(code: u16) -> Self {
        Self { code, reason: None }
    }
}

/// A leg of the call: 0 is the caller, outbound legs count from 1 (WIT `leg-id`).
pub type LegId = u32;

/// The caller's leg.
pub const CALLER: LegId = 0;

/// A per-call variable (WIT `variable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    pub value: String,
}

/// Something to play (WIT `audio`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Audio {
    Prompt(String),
    Say(String),
    Tones(String),
    Silence(u32),
    Music(Option<String>),
}

/// WIT `play`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Play {
    pub audio: Audio,
    #[serde(default)]
    pub repeat: Option<u32>,
    #[serde(default)]
    pub barge_in: Option<bool>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// WIT `gather`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Gather {
    pub prompts: Vec<Audio>,
    pub max_digits: Option<u8>,
    pub terminators: Option<String>,
    pub timeout_ms: Option<u32>,
    pub inter_digit_timeout_ms: Option<u32>,
    pub tag: Option<String>,
}

/// WIT `recording`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Recording {
    pub name: String,
    #[serde(default)]
    pub max_duration_ms: Option<u32>,
    #[serde(default)]
    pub terminators: Option<String>,
    #[serde(default)]
    pub beep: Option<bool>,
}

/// WIT `call-recording`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CallRecording {
    pub name: String,
    #[serde(default)]
    pub max_duration_ms: Option<u32>,
}

/// WIT `caller-id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct CallerId {
    pub number: Option<String>,
    pub name: Option<String>,
    #[schema(value_type = Option<Vec<PrivacyFlag>>)]
    pub privacy: Option<Privacy>,
    pub asserted_identity: Option<String>,
}

/// WIT `dial-target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DialTarget {
    pub target: String,
    #[serde(default)]
    pub trunk: Option<String>,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

impl DialTarget {
    /// A target with no trunk, headers or timeout of its own.
    pub fn to(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            trunk: None,
            headers: Vec::new(),
            timeout_ms: None,
        }
    }
}

/// WIT `ring-strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RingStrategy {
    #[default]
    Sequential,
    Simultaneous,
}

/// WIT `ring-group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RingGroup {
    pub strategy: RingStrategy,
    pub targets: Vec<DialTarget>,
}

/// WIT `dial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Dial {
    pub groups: Vec<RingGroup>,
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    #[serde(default)]
    pub caller_id: Option<CallerId>,
    #[serde(default)]
    pub ringback: Option<Audio>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// WIT `follow-redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowRedirect {
    pub leg: LegId,
    pub targets: Vec<DialTarget>,
}

/// WIT `redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub contacts: Vec<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

/// WIT `transfer-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TransferMode {
    Blind,
    Attended,
}

/// WIT `transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub target: DialTarget,
    pub mode: TransferMode,
    #[serde(default)]
    pub tag: Option<String>,
}

/// WIT `transfer-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TransferRequest {
    pub leg: LegId,
    pub target: String,
    #[serde(default)]
    pub replaces: Option<String>,
    #[serde(default)]
    pub referred_by: Option<String>,
}

/// WIT `accept-transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptTransfer {
    pub leg: LegId,
    #[serde(default)]
    pub target: Option<DialTarget>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// WIT `refuse-transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefuseTransfer {
    pub leg: LegId,
    #[serde(default)]
    pub status: Option<SipStatus>,
}

/// WIT `hold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub leg: LegId,
    #[serde(default)]
    pub music: Option<String>,
}

/// WIT `conference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Conference {
    pub room: String,
    #[serde(default)]
    pub muted: Option<bool>,
    #[serde(default)]
    pub end_on_exit: Option<bool>,
}

/// WIT `agent`.
///
/// From a 0.1 plugin (`connect-ai`), `name` is the agent's `ws://` or `wss://` URL, which the
/// switch matches against the URLs of the tenant's configured agents (a 0.2 name cannot contain
/// `:`, so the two never clash); the switch never connects to a URL it was not configured with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    /// The text of a JSON object.
    #[serde(default)]
    pub parameters: Option<String>,
}

/// WIT `timer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    pub name: String,
    pub ms: u32,
}

/// WIT `hand-off`.
///
/// From a 0.1 plugin (`run-ivr` with no plugin name, from a component without `ivr-flow`),
/// `plugin` is empty: the tenant's IVR as 0.1 chose it ([`crate::TenantPlugins::ivr_v0_1`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandOff {
    pub plugin: String,
    #[serde(default)]
    pub variables: Vec<Variable>,
}

/// What a plugin asks the switch to do for its call (WIT `action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Answer,
    PreAnswer,
    Reject(SipStatus),
    Redirect(Redirect),
    Hangup(Option<SipStatus>),
    Play(Play),
    Gather(Gather),
    Record(Recording),
    Dial(Dial),
    FollowRedirect(FollowRedirect),
    HangupLeg(LegId),
    Transfer(Transfer),
    AcceptTransfer(AcceptTransfer),
    RefuseTransfer(RefuseTransfer),
    Hold(Hold),
    Unhold(LegId),
    StartRecording(CallRecording),
    StopRecording(String),
    Conference(Conference),
    ConnectAgent(Agent),
    SetTimer(Timer),
    CancelTimer(String),
    SetVariable(Variable),
    HandOff(HandOff),
}

impl Action {
    /// The case's WIT name (`play`, `hand-off`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::PreAnswer => "pre-answer",
            Action::Reject(_) => "reject",
            Action::Redirect(_) => "redirect",
            Action::Hangup(_) => "hangup",
            Action::Play(_) => "play",
            Action::Gather(_) => "gather",
            Action::Record(_) => "record",
            Action::Dial(_) => "dial",
            Action::FollowRedirect(_) => "follow-redirect",
            Action::HangupLeg(_) => "hangup-leg",
            Action::Transfer(_) => "transfer",
            Action::AcceptTransfer(_) => "accept-transfer",
            Action::RefuseTransfer(_) => "refuse-transfer",
            Action::Hold(_) => "hold",
            Action::Unhold(_) => "unhold",
            Action::StartRecording(_) => "start-recording",
            Action::StopRecording(_) => "stop-recording",
            Action::Conference(_) => "conference",
            Action::ConnectAgent(_) => "connect-agent",
            Action::SetTimer(_) => "set-timer",
            Action::CancelTimer(_) => "cancel-timer",
            Action::SetVariable(_) => "set-variable",
            Action::HandOff(_) => "hand-off",
        }
    }

    /// Whether it takes over what the caller hears, so the actions after it wait for its outcome
    /// event (WIT `call-handler`: "media" actions).
    pub fn is_media(&self) -> bool {
        matches!(
            self,
            Action::Play(_)
                | Action::Gather(_)
                | Action::Record(_)
                | Action::Dial(_)
                | Action::Transfer(_)
                | Action::AcceptTransfer(_)
                | Action::Conference(_)
                | Action::ConnectAgent(_)
        )
    }
}

/// WIT `answer-state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerState {
    #[default]
    Unanswered,
    EarlyMedia,
    Answered,
}

/// WIT `hand-over`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct HandOver {
    pub call: CallInfo,
    pub from_plugin: String,
    pub variables: Vec<Variable>,
    pub state: AnswerState,
    pub recordings: Vec<String>,
}

/// WIT `leg-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegInfo {
    pub id: LegId,
    pub target: String,
    #[serde(default)]
    pub tag: Option<String>,
}

/// WIT `leg-redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegRedirect {
    pub leg: LegInfo,
    pub status: u16,
    #[serde(default)]
    pub contacts: Vec<String>,
}

/// WIT `leg-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LegEnd {
    Rejected,
    Redirected,
    NoAnswer,
    Unreachable,
    Cancelled,
    HungUp,
    Dropped,
    Transferred,
}

/// WIT `leg-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LegResult {
    pub leg: LegInfo,
    pub status: SipStatus,
    pub end: LegEnd,
    #[serde(default)]
    pub duration_ms: u32,
}

/// WIT `dial-outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DialOutcome {
    Answered,
    Busy,
    NoAnswer,
    Failed,
}

/// WIT `dial-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialResult {
    #[serde(default)]
    pub tag: Option<String>,
    pub outcome: DialOutcome,
    #[serde(default)]
    pub answered: Option<LegId>,
    #[serde(default)]
    pub legs: Vec<LegResult>,
}

/// WIT `dtmf-press`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DtmfPress {
    #[serde(default)]
    pub leg: LegId,
    pub digit: char,
}

/// WIT `playback-result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct PlaybackResult {
    pub tag: Option<String>,
    pub barged_in: Option<char>,
}

/// WIT `gather-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GatherEnd {
    MaxDigits,
    Terminator(char),
    Timeout,
}

/// WIT `gather-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GatherResult {
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digits: String,
    pub ended_by: GatherEnd,
}

/// WIT `recording-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingEnd {
    Terminator,
    MaxDuration,
    Stopped,
    CallEnded,
}

/// WIT `recording-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RecordingResult {
    pub name: String,
    #[serde(default)]
    pub duration_ms: u32,
    pub ended_by: RecordingEnd,
}

/// WIT `member-change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MemberChange {
    Joined,
    Left,
    Closed,
}

/// WIT `conference-update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConferenceUpdate {
    pub room: String,
    pub member: String,
    pub change: MemberChange,
    pub members: u32,
}

/// WIT `agent-end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentEnd {
    HungUp,
    TransferRequested(String),
    Error(String),
}

/// WIT `agent-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AgentResult {
    pub name: String,
    pub reason: AgentEnd,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub duration_ms: u32,
}

/// WIT `failure-reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    Invalid,
    InvalidState,
    UnknownLeg(LegId),
    MissingPrompt(String),
    BadTarget(String),
    UnknownTrunk(String),
    DeniedHeader(String),
    UnknownAgent(String),
    UnknownPlugin(String),
    NotAllowed(String),
    LimitReached(String),
    Unavailable(String),
}

/// WIT `action-failure`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionFailure {
    pub action: Action,
    pub reason: FailureReason,
    #[serde(default)]
    pub message: String,
}

/// WIT `call-end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallEnd {
    Caller,
    Plugin,
    Idle,
    Leg(LegId),
    Switch(String),
}

/// WIT `hangup-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HangupInfo {
    pub ended_by: CallEnd,
    #[serde(default)]
    pub status: Option<SipStatus>,
    #[serde(default)]
    pub duration_ms: u32,
    #[serde(default)]
    pub legs: Vec<LegResult>,
    #[serde(default)]
    pub recordings: Vec<RecordingResult>,
}

/// Something that happened in a call (WIT `call-event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallEvent {
    Incoming(CallInfo),
    HandedOver(HandOver),
    LegRinging(LegInfo),
    LegEarlyMedia(LegInfo),
    LegAnswered(LegInfo),
    LegRedirected(LegRedirect),
    LegEnded(LegResult),
    DialCompleted(DialResult),
    Dtmf(DtmfPress),
    PlaybackFinished(PlaybackResult),
    GatherCompleted(GatherResult),
    RecordingCompleted(RecordingResult),
    TransferRequested(TransferRequest),
    TransferCompleted(DialResult),
    ConferenceChanged(ConferenceUpdate),
    AgentEnded(AgentResult),
    Timer(String),
    ActionFailed(ActionFailure),
    Hangup(HangupInfo),
}

impl CallEvent {
    /// The case's WIT name (`leg-ended`), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            CallEvent::Incoming(_) => "incoming",
            CallEvent::HandedOver(_) => "handed-over",
            CallEvent::LegRinging(_) => "leg-ringing",
            CallEvent::LegEarlyMedia(_) => "leg-early-media",
            CallEvent::LegAnswered(_) => "leg-answered",
            CallEvent::LegRedirected(_) => "leg-redirected",
            CallEvent::LegEnded(_) => "leg-ended",
            CallEvent::DialCompleted(_) => "dial-completed",
            CallEvent::Dtmf(_) => "dtmf",
            CallEvent::PlaybackFinished(_) => "playback-finished",
            CallEvent::GatherCompleted(_) => "gather-completed",
            CallEvent::RecordingCompleted(_) => "recording-completed",
            CallEvent::TransferRequested(_) => "transfer-requested",
            CallEvent::TransferCompleted(_) => "transfer-completed",
            CallEvent::ConferenceChanged(_) => "conference-changed",
            CallEvent::AgentEnded(_) => "agent-ended",
            CallEvent::Timer(_) => "timer",
            CallEvent::ActionFailed(_) => "action-failed",
            CallEvent::Hangup(_) => "hangup",
        }
    }

    /// Whether this is an instance's first event (`incoming` or `handed-over`), whose answer is
    /// checked whole: an invalid action in it is a failure of the plugin, not an `action-failed`.
    pub fn is_first(&self) -> bool {
        matches!(self, CallEvent::Incoming(_) | CallEvent::HandedOver(_))
    }
}

/// One SMS (WIT `message`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Message {
    pub id: String,
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch when the switch received it.
    pub received_at: u64,
}

/// WIT `rewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Rewrite {
    pub from: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
}

/// What the messaging plugin decides for one message (WIT `sms-decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SmsDecision {
    Deliver,
    Rewrite(Rewrite),
    Reply(String),
    Reject(SipStatus),
}

/// WIT `delivery-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryStatus {
    Delivered(u16),
    Failed(SipStatus),
}

/// WIT `delivery-report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeliveryReport {
    pub id: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub reply: bool,
    pub to: String,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub reported_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_uses_the_wit_names() {
        let a: Vec<Action> = serde_json::from_value(json!([
            "answer",
            {"reject": {"code": 486}},
            {"hangup": null},
            {"play": {"audio": {"music": null}, "barge-in": true}},
            {"unhold": 1},
            {"cancel-timer": "patience"},
            {"dial": {"groups": [{"strategy": "simultaneous", "targets": [{"target": "+1"}]}],
                      "caller-id": {"privacy": ["id", "header"]}}},
        ]))
        .unwrap();
        assert_eq!(a[0], Action::Answer);
        assert_eq!(a[1], Action::Reject(SipStatus::code(486)));
        assert_eq!(a[2], Action::Hangup(None));
        assert_eq!(
            a[3],
            Action::Play(Play {
                audio: Audio::Music(None),
                repeat: None,
                barge_in: Some(true),
                tag: None
            })
        );
        assert_eq!(a[4], Action::Unhold(1));
        let Action::Dial(d) = &a[6] else {
            panic!("{:?}", a[6])
        };
        let privacy = d.caller_id.as_ref().and_then(|c| c.privacy).unwrap();
        assert!(privacy.id && privacy.header && !privacy.user);
        let back = serde_json::to_value(&a[6]).unwrap();
        assert_eq!(
            back["dial"]["caller-id"]["privacy"],
            json!(["header", "id"])
        );
        assert_eq!(
            back["dial"]["groups"][0]["targets"][0]["timeout-ms"],
            json!(null)
        );

        let e: CallEvent = serde_json::from_value(json!({"gather-completed":
            {"digits": "12", "ended-by": {"terminator": "#"}}}))
        .unwrap();
        assert_eq!(
            e,
            CallEvent::GatherCompleted(GatherResult {
                tag: None,
                digits: "12".into(),
                ended_by: GatherEnd::Terminator('#')
            })
        );
        let e: CallEvent = serde_json::from_value(json!({"incoming": {"to": "+1"}})).unwrap();
        assert!(e.is_first());
        assert_eq!(e.name(), "incoming");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<CallInfo>(json!({"form": "+1"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `form`"), "{err}");
    }
}
