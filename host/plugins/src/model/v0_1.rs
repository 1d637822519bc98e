//! Contract 0.1's vocabulary (`wit/v0.1.0/types.wit`), one to one. Frozen with the contract.
//!
//! The calls layer never sees these: it speaks the 0.2 model ([`super`]), and 0.1 plugins reach
//! it through the adapter in `bindings::v0_1`. They remain for what must keep speaking 0.1
//! exactly: scenario files written for 0.1 plugins (`route`, `call-event`, `ivr` steps) and the
//! simulate endpoint's `call` and `ivr` requests, whose answers for a 0.1 plugin are the same as
//! before 0.2 existed. They (de)serialise as JSON/YAML with the WIT's kebab-case names:
//! `{"reject": {"code": 404}}`, `"playback-finished"`, `{"dtmf": "5"}`. The checks are 0.1's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Variables passed to an IVR or set by it.
pub type Variables = BTreeMap<String, String>;

/// One SIP header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = v0_1::Header)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// What the switch knows about a call (WIT `call-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
#[schema(as = v0_1::CallInfo)]
pub struct CallInfo {
    pub call_id: String,
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub display_name: Option<String>,
    pub source_address: String,
    pub trunk: Option<String>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch when the call arrived.
    pub received_at: u64,
}

/// A final SIP status (WIT `sip-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = v0_1::SipStatus)]
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
}

/// WIT `ring-strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::RingStrategy)]
pub enum RingStrategy {
    #[default]
    Sequential,
    Simultaneous,
}

/// WIT `forward`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Forward)]
pub struct Forward {
    pub targets: Vec<String>,
    #[serde(default)]
    pub trunk: Option<String>,
    #[serde(default = "default_ring_timeout")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub strategy: RingStrategy,
    #[serde(default)]
    pub caller_id: Option<String>,
}

fn default_ring_timeout() -> u32 {
    30_000
}

/// WIT `ai-agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = v0_1::AiAgent)]
pub struct AiAgent {
    pub url: String,
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub parameters: Variables,
}

/// WIT `ivr-start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = v0_1::IvrStart)]
pub struct IvrStart {
    pub plugin: String,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub variables: Variables,
}

/// What a router decides for a new call (WIT `route-decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::RouteDecision)]
pub enum RouteDecision {
    Forward(Forward),
    Reject(SipStatus),
    RunIvr(IvrStart),
    ConnectAi(AiAgent),
}

/// WIT `dtmf-press`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = v0_1::DtmfPress)]
pub struct DtmfPress {
    pub digit: char,
    #[serde(default = "yes")]
    pub caller: bool,
}

fn yes() -> bool {
    true
}

/// WIT `hangup-info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
#[schema(as = v0_1::HangupInfo)]
pub struct HangupInfo {
    pub by_caller: bool,
    pub status: Option<u16>,
}

/// Something that happened on a bridged call (WIT `call-event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::CallEvent)]
pub enum CallEvent {
    Answered(String),
    Dtmf(DtmfPress),
    Hangup(HangupInfo),
}

/// WIT `transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = v0_1::Transfer)]
pub struct Transfer {
    pub target: String,
    #[serde(default)]
    pub trunk: Option<String>,
}

/// What a router may do during a bridged call (WIT `call-action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::CallAction)]
pub enum CallAction {
    Transfer(Transfer),
    Hold(Option<String>),
    Unhold,
    StartRecording(String),
    Hangup(Option<u16>),
}

/// WIT `audio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::Audio)]
pub enum Audio {
    Prompt(String),
    Say(String),
    Tones(String),
    Silence(u32),
}

/// WIT `play`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Play)]
pub struct Play {
    pub audio: Audio,
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default)]
    pub barge_in: bool,
}

fn one() -> u32 {
    1
}

/// WIT `gather`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Gather)]
pub struct Gather {
    #[serde(default)]
    pub prompt: Option<Audio>,
    pub max_digits: u8,
    #[serde(default)]
    pub terminator: Option<char>,
    pub timeout_ms: u32,
    pub inter_digit_timeout_ms: u32,
}

/// WIT `dial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Dial)]
pub struct Dial {
    pub target: Forward,
    #[serde(default)]
    pub return_on_failure: bool,
}

/// WIT `conference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Conference)]
pub struct Conference {
    pub room: String,
    #[serde(default)]
    pub muted: bool,
    #[serde(default)]
    pub end_on_exit: bool,
}

/// WIT `recording`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::Recording)]
pub struct Recording {
    pub name: String,
    pub max_duration_ms: u32,
    #[serde(default)]
    pub terminator: Option<char>,
    #[serde(default)]
    pub beep: bool,
}

/// An action an IVR asks for (WIT `ivr-action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::IvrAction)]
pub enum IvrAction {
    Play(Play),
    Gather(Gather),
    Dial(Dial),
    Transfer(Transfer),
    Hold(Option<String>),
    Unhold,
    Conference(Conference),
    Record(Recording),
    ConnectAi(AiAgent),
    /// `[name, value]`.
    SetVariable(String, String),
    Hangup(Option<u16>),
}

/// WIT `digits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = v0_1::Digits)]
pub struct Digits {
    pub digits: String,
    pub terminated: bool,
}

/// WIT `dial-outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::DialOutcome)]
pub enum DialOutcome {
    Completed,
    Busy,
    NoAnswer,
    Failed,
}

/// WIT `recording-result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = v0_1::RecordingResult)]
pub struct RecordingResult {
    pub name: String,
    pub duration_ms: u32,
}

/// WIT `ivr-started`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = v0_1::IvrStarted)]
pub struct IvrStarted {
    pub call: CallInfo,
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub variables: Variables,
}

/// Something that happened in an IVR call (WIT `ivr-event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::IvrEvent)]
pub enum IvrEvent {
    Started(IvrStarted),
    Dtmf(char),
    DigitsCollected(Digits),
    Timeout,
    PlaybackFinished,
    DialCompleted(DialOutcome),
    RecordingCompleted(RecordingResult),
    Hangup,
}

/// One SMS (WIT `message`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
#[schema(as = v0_1::Message)]
pub struct Message {
    pub id: String,
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub received_at: u64,
}

/// WIT `rewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
#[schema(as = v0_1::Rewrite)]
pub struct Rewrite {
    pub from: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
}

/// What the messaging plugin decides (WIT `sms-decision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = v0_1::SmsDecision)]
pub enum SmsDecision {
    Deliver,
    Rewrite(Rewrite),
    Reply(String),
    Reject(SipStatus),
}

/// The longest string the host accepts in a decision (targets, prompt names, bodies, ...).
pub const MAX_STRING: usize = 4096;
/// The most actions one IVR event may return.
pub const MAX_ACTIONS: usize = 32;
/// The most forward targets in one decision.
pub const MAX_TARGETS: usize = 16;
const DTMF_DIGITS: &str = "0123456789*#ABCD";

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok { Ok(()) } else { Err(Invalid(what())) }
}

fn check_str(field: &str, s: &str) -> Result<(), Invalid> {
    check(s.len() <= MAX_STRING, || {
        format!(
            "{field} is {} bytes, over the limit of {MAX_STRING}",
            s.len()
        )
    })
}

fn check_nonempty(field: &str, s: &str) -> Result<(), Invalid> {
    check(!s.trim().is_empty(), || format!("{field} is empty"))?;
    check_str(field, s)
}

fn check_status(code: u16) -> Result<(), Invalid> {
    check((400..=699).contains(&code), || {
        format!("SIP status {code} is not a final error status (400-699)")
    })
}

fn check_digit(field: &str, d: char) -> Result<(), Invalid> {
    check(DTMF_DIGITS.contains(d), || {
        format!("{field} {d:?} is not a DTMF digit (0-9, *, #, A-D)")
    })
}

fn check_vars(vars: &Variables) -> Result<(), Invalid> {
    for (k, v) in vars {
        check_nonempty("variable name", k)?;
        check_str("variable value", v)?;
    }
    Ok(())
}

impl Forward {
    fn validate(&self) -> Result<(), Invalid> {
        check(!self.targets.is_empty(), || "forward has no targets".into())?;
        check(self.targets.len() <= MAX_TARGETS, || {
            format!(
                "forward has {} targets, over the limit of {MAX_TARGETS}",
                self.targets.len()
            )
        })?;
        for t in &self.targets {
            check_nonempty("forward target", t)?;
        }
        check((1_000..=300_000).contains(&self.timeout_ms), || {
            format!(
                "forward timeout {} ms is outside 1000-300000",
                self.timeout_ms
            )
        })
    }
}

impl AiAgent {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            self.url.starts_with("ws://") || self.url.starts_with("wss://"),
            || format!("AI agent URL {:?} is not a ws:// or wss:// URL", self.url),
        )?;
        check_str("AI agent URL", &self.url)?;
        check_vars(&self.parameters)
    }
}

impl Transfer {
    fn validate(&self) -> Result<(), Invalid> {
        check_nonempty("transfer target", &self.target)
    }
}

impl Audio {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            Audio::Prompt(p) => check_nonempty("prompt name", p),
            Audio::Say(s) => check_nonempty("text to say", s),
            Audio::Tones(t) => {
                check_nonempty("tones", t)?;
                t.chars().try_for_each(|d| check_digit("tone", d))
            }
            Audio::Silence(ms) => check(*ms <= 600_000, || {
                format!("silence of {ms} ms is over 10 minutes")
            }),
        }
    }
}

impl RouteDecision {
    /// Checks that the host can act on this decision.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            RouteDecision::Forward(f) => f.validate(),
            RouteDecision::Reject(s) => check_status(s.code),
            RouteDecision::RunIvr(start) => {
                check_str("IVR plugin name", &start.plugin)?;
                check_vars(&start.variables)
            }
            RouteDecision::ConnectAi(agent) => agent.validate(),
        }
    }
}

impl CallAction {
    /// Checks that the host can act on this action.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            CallAction::Transfer(t) => t.validate(),
            CallAction::Hold(music) => music
                .as_deref()
                .map_or(Ok(()), |m| check_nonempty("music-on-hold name", m)),
            CallAction::Unhold => Ok(()),
            CallAction::StartRecording(name) => check_nonempty("recording name", name),
            CallAction::Hangup(code) => code.map_or(Ok(()), check_status),
        }
    }
}

impl IvrAction {
    /// Checks that the host can act on this action.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            IvrAction::Play(p) => p.audio.validate(),
            IvrAction::Gather(g) => {
                if let Some(prompt) = &g.prompt {
                    prompt.validate()?;
                }
                check((1..=64).contains(&g.max_digits), || {
                    format!("gather max-digits {} is outside 1-64", g.max_digits)
                })?;
                if let Some(t) = g.terminator {
                    check_digit("gather terminator", t)?;
                }
                check(
                    g.timeout_ms <= 600_000 && g.inter_digit_timeout_ms <= 600_000,
                    || "gather timeouts must be at most 600000 ms".into(),
                )
            }
            IvrAction::Dial(d) => d.target.validate(),
            IvrAction::Transfer(t) => t.validate(),
            IvrAction::Hold(music) => music
                .as_deref()
                .map_or(Ok(()), |m| check_nonempty("music-on-hold name", m)),
            IvrAction::Unhold => Ok(()),
            IvrAction::Conference(c) => check_nonempty("conference room", &c.room),
            IvrAction::Record(r) => {
                check_nonempty("recording name", &r.name)?;
                check((1..=3_600_000).contains(&r.max_duration_ms), || {
                    format!(
                        "recording max-duration {} ms is outside 1-3600000",
                        r.max_duration_ms
                    )
                })?;
                r.terminator
                    .map_or(Ok(()), |t| check_digit("recording terminator", t))
            }
            IvrAction::ConnectAi(agent) => agent.validate(),
            IvrAction::SetVariable(name, value) => {
                check_nonempty("variable name", name)?;
                check_str("variable value", value)
            }
            IvrAction::Hangup(code) => code.map_or(Ok(()), check_status),
        }
    }

    /// Checks a whole list returned for one event.
    pub fn validate_all(actions: &[IvrAction]) -> Result<(), Invalid> {
        check(actions.len() <= MAX_ACTIONS, || {
            format!(
                "{} actions returned, over the limit of {MAX_ACTIONS}",
                actions.len()
            )
        })?;
        actions.iter().try_for_each(IvrAction::validate)
    }
}

impl SmsDecision {
    /// Checks that the host can act on this decision.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            SmsDecision::Deliver => Ok(()),
            SmsDecision::Rewrite(r) => {
                check(
                    r.from.is_some() || r.to.is_some() || r.body.is_some(),
                    || "rewrite changes nothing".into(),
                )?;
                for (field, v) in [("from", &r.from), ("to", &r.to)] {
                    if let Some(v) = v {
                        check_nonempty(field, v)?;
                    }
                }
                r.body.as_deref().map_or(Ok(()), |b| check_str("body", b))
            }
            SmsDecision::Reply(text) => check_nonempty("reply", text),
            SmsDecision::Reject(s) => check_status(s.code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_use_the_wit_names_in_json() {
        let d: RouteDecision =
            serde_json::from_str(r#"{"reject": {"code": 404, "reason": "Nope"}}"#).unwrap();
        assert_eq!(d, RouteDecision::Reject(SipStatus::new(404, "Nope")));
        let a: Vec<IvrAction> = serde_json::from_str(
            r#"[{"play": {"audio": {"prompt": "welcome"}}}, "unhold", {"set-variable": ["a", "b"]}, {"hangup": null}]"#,
        )
        .unwrap();
        assert_eq!(
            a[0],
            IvrAction::Play(Play {
                audio: Audio::Prompt("welcome".into()),
                repeat: 1,
                barge_in: false
            })
        );
        assert_eq!(a[1], IvrAction::Unhold);
        assert_eq!(a[2], IvrAction::SetVariable("a".into(), "b".into()));
        assert_eq!(a[3], IvrAction::Hangup(None));
        let e: IvrEvent = serde_json::from_str(r#""playback-finished""#).unwrap();
        assert_eq!(e, IvrEvent::PlaybackFinished);
        let back = serde_json::to_value(IvrEvent::Dtmf('5')).unwrap();
        assert_eq!(back, serde_json::json!({"dtmf": "5"}));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<CallInfo>(r#"{"form": "+1"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `form`"), "{err}");
    }

    #[test]
    fn validation_names_the_problem() {
        let bad = RouteDecision::Reject(SipStatus {
            code: 200,
            reason: None,
        });
        assert!(bad.validate().unwrap_err().0.contains("200"));
        let empty = RouteDecision::Forward(Forward {
            targets: vec![],
            trunk: None,
            timeout_ms: 30_000,
            strategy: RingStrategy::Sequential,
            caller_id: None,
        });
        assert_eq!(empty.validate().unwrap_err().0, "forward has no targets");
        let gather = IvrAction::Gather(Gather {
            prompt: None,
            max_digits: 0,
            terminator: Some('x'),
            timeout_ms: 1,
            inter_digit_timeout_ms: 1,
        });
        assert!(gather.validate().unwrap_err().0.contains("max-digits 0"));
        let many = vec![IvrAction::Unhold; MAX_ACTIONS + 1];
        assert!(IvrAction::validate_all(&many).is_err());
        assert!(SmsDecision::Rewrite(Rewrite::default()).validate().is_err());
        assert!(SmsDecision::Deliver.validate().is_ok());
    }
}
