//! The ranges and forms contract 0.2 states for what a plugin returns (`wit/v0.2.0/types.wit`).
//! A value outside them is *invalid*; whether that fails the instance or only the action is the
//! caller's rule (see [`crate::CallInstance::on_event`]). What the switch refuses for other
//! reasons (a missing prompt, a denied header, a wrong state) is decided where it acts.

use super::{
    AcceptTransfer, Action, Agent, Audio, CallRecording, CallerId, Dial, DialTarget,
    FollowRedirect, Gather, Header, Play, Recording, Redirect, SipStatus, SmsDecision, Variable,
};

/// Why the host will not act on a value a plugin returned: it breaks a range or form the
/// contract states. The text names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The most actions one answer may hold.
pub const MAX_ACTIONS: usize = 64;
/// The most targets in one dial, all groups together.
const MAX_DIAL_TARGETS: usize = 32;
/// The most headers a plugin may set on one target.
const MAX_HEADERS: usize = 32;
const DTMF_DIGITS: &str = "0123456789*#ABCD";

/// Headers a plugin may not set on an outbound leg (WIT `header`): they would break the dialog
/// or bypass the switch's own handling. Compared without case; compact forms count as the
/// names they stand for.
const DENIED_HEADERS: &[&str] = &[
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "route",
    "record-route",
    "max-forwards",
    "content-length",
    "content-type",
    "content-encoding",
    "content-disposition",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "require",
    "proxy-require",
    "supported",
    "allow",
    "expires",
    "session-expires",
    "min-se",
    "rseq",
    "rack",
    "event",
    "subscription-state",
    "refer-to",
    "referred-by",
    "replaces",
    "p-asserted-identity",
    "p-preferred-identity",
    "privacy",
];

/// RFC 3261 7.3.3's compact forms, with the names they stand for.
const COMPACT: &[(&str, &str)] = &[
    ("v", "via"),
    ("f", "from"),
    ("t", "to"),
    ("i", "call-id"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("e", "content-encoding"),
    ("k", "supported"),
    ("o", "event"),
    ("r", "refer-to"),
    ("b", "referred-by"),
    ("x", "session-expires"),
    ("s", "subject"),
    ("u", "allow-events"),
    ("a", "accept-contact"),
    ("y", "identity"),
];

/// Whether the contract's deny-list forbids a plugin to set this header (a refusal, reported as
/// `action-failed` with `denied-header`, not an invalid action).
pub fn denied_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let full = COMPACT
        .iter()
        .find(|(short, _)| *short == lower)
        .map_or(lower.as_str(), |(_, long)| long);
    DENIED_HEADERS.contains(&full)
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok { Ok(()) } else { Err(Invalid(why())) }
}

/// A name: 1 to `max` bytes.
fn name(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    ensure(!s.is_empty() && s.len() <= max, || {
        format!("{field} must be 1 to {max} bytes, not {}", s.len())
    })
}

fn opt_name(field: &str, s: &Option<String>, max: usize) -> Result<(), Invalid> {
    s.as_deref().map_or(Ok(()), |s| name(field, s, max))
}

/// Text that goes into a SIP message: at most `max` bytes (at least `min`), no control
/// characters (a CR or LF would end the header it is written into).
fn sip_text(field: &str, s: &str, min: usize, max: usize) -> Result<(), Invalid> {
    ensure(s.len() >= min && s.len() <= max, || {
        format!("{field} must be {min} to {max} bytes, not {}", s.len())
    })?;
    ensure(!s.chars().any(char::is_control), || {
        format!("{field} holds a control character")
    })
}

fn opt_sip_text(field: &str, s: &Option<String>, min: usize, max: usize) -> Result<(), Invalid> {
    s.as_deref()
        .map_or(Ok(()), |s| sip_text(field, s, min, max))
}

/// A name the switch looks up (agents): letters, digits, `_`, `-` and `.`, 1 to 64 bytes.
fn token(field: &str, s: &str) -> Result<(), Invalid> {
    name(field, s, 64)?;
    ensure(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
        || format!("{field} {s:?} may hold only letters, digits, _, - and ."),
    )
}

fn range(field: &str, v: u32, lo: u32, hi: u32) -> Result<(), Invalid> {
    ensure((lo..=hi).contains(&v), || {
        format!("{field} {v} is outside {lo}-{hi}")
    })
}

fn opt_range(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<(), Invalid> {
    v.map_or(Ok(()), |v| range(field, v, lo, hi))
}

fn digits(field: &str, s: &str, min: usize, max: usize) -> Result<(), Invalid> {
    ensure(s.len() >= min && s.len() <= max, || {
        format!("{field} must hold {min} to {max} digits, not {}", s.len())
    })?;
    match s.chars().find(|c| !DTMF_DIGITS.contains(*c)) {
        Some(c) => Err(Invalid(format!(
            "{field}: {c:?} is not a DTMF digit (0-9, *, #, A-D)"
        ))),
        None => Ok(()),
    }
}

fn terminators(field: &str, t: &Option<String>) -> Result<(), Invalid> {
    t.as_deref().map_or(Ok(()), |t| digits(field, t, 0, 16))
}

fn status(field: &str, s: &SipStatus, lo: u16, hi: u16) -> Result<(), Invalid> {
    ensure((lo..=hi).contains(&s.code), || {
        format!("{field} {} is outside {lo}-{hi}", s.code)
    })?;
    opt_sip_text(&format!("{field}'s reason"), &s.reason, 1, 256)
}

fn tag(t: &Option<String>) -> Result<(), Invalid> {
    opt_name("tag", t, 64)
}

/// Letters, digits, `_`, `-` and `.`; 1 to 64 bytes.
fn variable(v: &Variable) -> Result<(), Invalid> {
    token("variable name", &v.name)?;
    ensure(v.value.len() <= 4096, || {
        format!(
            "variable {} value is {} bytes, over 4096",
            v.name,
            v.value.len()
        )
    })
}

/// Letters, digits and `-_./`, 1 to 128 bytes, not starting with `/`, without `..`.
fn recording_name(s: &str) -> Result<(), Invalid> {
    name("recording name", s, 128)?;
    ensure(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
            && !s.starts_with('/')
            && !s.contains(".."),
        || {
            format!(
                "recording name {s:?} may hold only letters, digits and -_./, not start with / or hold .."
            )
        },
    )
}

fn header(h: &Header) -> Result<(), Invalid> {
    name("header name", &h.name, 64)?;
    // RFC 3261 `token`.
    ensure(
        h.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)),
        || format!("header name {:?} is not a SIP token", h.name),
    )?;
    ensure(
        h.value.len() <= 1024 && !h.value.contains(['\r', '\n']),
        || {
            format!(
                "header {} value must be at most 1024 bytes without CR or LF",
                h.name
            )
        },
    )
}

impl Audio {
    fn check(&self) -> Result<(), Invalid> {
        match self {
            Audio::Prompt(p) => name("prompt name", p, 256),
            Audio::Say(s) => name("text to say", s, 4096),
            Audio::Tones(t) => digits("tones", t, 1, 64),
            Audio::Silence(ms) => range("silence ms", *ms, 1, 60_000),
            Audio::Music(m) => opt_name("music source", m, 64),
        }
    }
}

impl Play {
    fn check(&self) -> Result<(), Invalid> {
        self.audio.check()?;
        opt_range("play repeat", self.repeat, 0, 100)?;
        tag(&self.tag)
    }
}

impl Gather {
    fn check(&self) -> Result<(), Invalid> {
        self.prompts.iter().try_for_each(Audio::check)?;
        opt_range("gather max-digits", self.max_digits.map(u32::from), 1, 64)?;
        terminators("gather terminators", &self.terminators)?;
        opt_range("gather timeout-ms", self.timeout_ms, 1_000, 60_000)?;
        opt_range(
            "gather inter-digit-timeout-ms",
            self.inter_digit_timeout_ms,
            1_000,
            60_000,
        )?;
        tag(&self.tag)
    }
}

impl Recording {
    fn check(&self) -> Result<(), Invalid> {
        recording_name(&self.name)?;
        opt_range(
            "record max-duration-ms",
            self.max_duration_ms,
            1_000,
            3_600_000,
        )?;
        terminators("record terminators", &self.terminators)
    }
}

impl CallRecording {
    fn check(&self) -> Result<(), Invalid> {
        recording_name(&self.name)?;
        opt_range(
            "start-recording max-duration-ms",
            self.max_duration_ms,
            1_000,
            14_400_000,
        )
    }
}

impl CallerId {
    fn check(&self) -> Result<(), Invalid> {
        opt_sip_text("caller-id number", &self.number, 1, 64)?;
        opt_sip_text("caller-id name", &self.name, 0, 64)?;
        opt_sip_text(
            "caller-id asserted-identity",
            &self.asserted_identity,
            1,
            256,
        )
    }
}

impl DialTarget {
    fn check(&self) -> Result<(), Invalid> {
        sip_text("dial target", &self.target, 1, 256)?;
        opt_name("trunk name", &self.trunk, 64)?;
        ensure(self.headers.len() <= MAX_HEADERS, || {
            format!(
                "target {} sets {} headers, over {MAX_HEADERS}",
                self.target,
                self.headers.len()
            )
        })?;
        self.headers.iter().try_for_each(header)?;
        opt_range("target timeout-ms", self.timeout_ms, 1_000, 300_000)
    }
}

impl Dial {
    fn check(&self) -> Result<(), Invalid> {
        ensure(!self.groups.is_empty(), || "dial has no groups".into())?;
        let mut total = 0;
        for g in &self.groups {
            ensure(!g.targets.is_empty(), || {
                "a dial group has no targets".into()
            })?;
            total += g.targets.len();
            g.targets.iter().try_for_each(DialTarget::check)?;
        }
        ensure(total <= MAX_DIAL_TARGETS, || {
            format!("dial has {total} targets, over {MAX_DIAL_TARGETS}")
        })?;
        opt_range("dial timeout-ms", self.timeout_ms, 1_000, 600_000)?;
        self.caller_id.as_ref().map_or(Ok(()), CallerId::check)?;
        self.ringback.as_ref().map_or(Ok(()), Audio::check)?;
        tag(&self.tag)
    }
}

impl FollowRedirect {
    fn check(&self) -> Result<(), Invalid> {
        ensure((1..=8).contains(&self.targets.len()), || {
            format!(
                "follow-redirect needs 1 to 8 targets, not {}",
                self.targets.len()
            )
        })?;
        self.targets.iter().try_for_each(DialTarget::check)
    }
}

impl Redirect {
    fn check(&self) -> Result<(), Invalid> {
        ensure((1..=8).contains(&self.contacts.len()), || {
            format!(
                "redirect needs 1 to 8 contacts, not {}",
                self.contacts.len()
            )
        })?;
        for c in &self.contacts {
            let scheme = c.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
            ensure(
                matches!(scheme.as_deref(), Some("sip" | "sips" | "tel")),
                || format!("redirect contact {c:?} is not a SIP or tel URI"),
            )?;
            sip_text("redirect contact", c, 1, 256)?;
        }
        self.status
            .map_or(Ok(()), |s| range("redirect status", u32::from(s), 300, 399))
    }
}

impl AcceptTransfer {
    fn check(&self) -> Result<(), Invalid> {
        self.target.as_ref().map_or(Ok(()), DialTarget::check)?;
        tag(&self.tag)
    }
}

impl Agent {
    fn check(&self) -> Result<(), Invalid> {
        token("agent name", &self.name)?;
        let Some(text) = &self.parameters else {
            return Ok(());
        };
        ensure(text.len() <= 64 * 1024, || {
            format!("agent parameters are {} bytes, over 64 KiB", text.len())
        })?;
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(Invalid("agent parameters are not a JSON object".into())),
            Err(e) => Err(Invalid(format!("agent parameters are not JSON: {e}"))),
        }
    }
}

impl Action {
    /// Checks one action against the contract's ranges and forms.
    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            Action::Answer | Action::PreAnswer | Action::HangupLeg(_) | Action::Unhold(_) => Ok(()),
            Action::Reject(s) => status("reject status", s, 400, 699),
            Action::Redirect(r) => r.check(),
            Action::Hangup(s) => s
                .as_ref()
                .map_or(Ok(()), |s| status("hangup status", s, 400, 699)),
            Action::Play(p) => p.check(),
            Action::Gather(g) => g.check(),
            Action::Record(r) => r.check(),
            Action::Dial(d) => d.check(),
            Action::FollowRedirect(f) => f.check(),
            Action::Transfer(t) => {
                t.target.check()?;
                tag(&t.tag)
            }
            Action::AcceptTransfer(a) => a.check(),
            Action::RefuseTransfer(r) => r
                .status
                .as_ref()
                .map_or(Ok(()), |s| status("refuse-transfer status", s, 400, 699)),
            Action::Hold(h) => opt_name("music source", &h.music, 64),
            Action::StartRecording(r) => r.check(),
            Action::StopRecording(n) => recording_name(n),
            Action::Conference(c) => name("conference room", &c.room, 64),
            Action::ConnectAgent(a) => a.check(),
            Action::SetTimer(t) => {
                name("timer name", &t.name, 64)?;
                range("timer ms", t.ms, 1, 86_400_000)
            }
            Action::CancelTimer(n) => name("timer name", n, 64),
            Action::SetVariable(v) => variable(v),
            Action::HandOff(h) => {
                name("hand-off plugin", &h.plugin, 64)?;
                h.variables.iter().try_for_each(variable)
            }
        }
    }

    /// Checks a whole answer: at most [`MAX_ACTIONS`], each valid, a `hand-off` only last. On
    /// failure, the index of the first action that breaks a rule.
    pub fn check_answer(actions: &[Action]) -> Result<(), (usize, Invalid)> {
        for (i, a) in actions.iter().enumerate() {
            if i == MAX_ACTIONS {
                return Err((
                    i,
                    Invalid(format!(
                        "the answer holds {} actions, over {MAX_ACTIONS}",
                        actions.len()
                    )),
                ));
            }
            a.check().map_err(|e| (i, e))?;
            if matches!(a, Action::HandOff(_)) && i + 1 != actions.len() {
                return Err((
                    i,
                    Invalid("hand-off must be the last action of its answer".into()),
                ));
            }
        }
        Ok(())
    }
}

/// The rules of 0.2 that 0.1 did not have and that the switch relies on for its own safety, for
/// what the 0.1 adapter makes of a 0.1 answer (which 0.1's own rules checked, and whose numbers
/// it brought into range): recording names that are safe paths, variable names, the size of an
/// answer. (0.1's forms the adapter keeps on purpose, an agent named by URL and a hand-off
/// with no plugin name, are not 0.2 names, so the whole 0.2 check does not apply.)
pub(crate) fn check_from_v0_1(actions: &[Action]) -> Result<(), Invalid> {
    ensure(actions.len() <= MAX_ACTIONS, || {
        format!(
            "the answer holds {} actions, over {MAX_ACTIONS}",
            actions.len()
        )
    })?;
    actions.iter().try_for_each(|a| match a {
        Action::Record(r) => recording_name(&r.name),
        Action::StartRecording(r) => recording_name(&r.name),
        Action::StopRecording(n) => recording_name(n),
        Action::SetVariable(v) => variable(v),
        Action::HandOff(h) => h.variables.iter().try_for_each(variable),
        Action::Reject(s) | Action::Hangup(Some(s)) => status("status", s, 400, 699),
        Action::Dial(d) => d
            .groups
            .iter()
            .flat_map(|g| &g.targets)
            .try_for_each(|t| sip_text("dial target", &t.target, 1, 256)),
        _ => Ok(()),
    })
}

impl SmsDecision {
    /// Checks a messaging decision against the contract's ranges.
    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            SmsDecision::Deliver => Ok(()),
            SmsDecision::Rewrite(r) => {
                opt_sip_text("rewrite from", &r.from, 1, 256)?;
                opt_sip_text("rewrite to", &r.to, 1, 256)?;
                ensure(r.body.as_ref().is_none_or(|b| b.len() <= 4096), || {
                    "rewrite body is over 4096 bytes".into()
                })
            }
            SmsDecision::Reply(text) => name("reply", text, 4096),
            SmsDecision::Reject(s) => status("reject status", s, 400, 699),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HandOff, RingGroup, RingStrategy, Timer};
    use super::*;

    fn dial(targets: usize) -> Action {
        Action::Dial(Dial {
            groups: vec![RingGroup {
                strategy: RingStrategy::Sequential,
                targets: (0..targets)
                    .map(|i| DialTarget::to(format!("+1{i}")))
                    .collect(),
            }],
            timeout_ms: None,
            caller_id: None,
            ringback: None,
            tag: None,
        })
    }

    #[test]
    fn ranges_are_checked_and_named() {
        assert!(dial(1).check().is_ok());
        assert_eq!(
            dial(0).check().unwrap_err().0,
            "a dial group has no targets"
        );
        assert!(dial(33).check().unwrap_err().0.contains("over 32"));
        let e = Action::Reject(SipStatus::code(200)).check().unwrap_err();
        assert_eq!(e.0, "reject status 200 is outside 400-699");
        let e = Action::SetTimer(Timer {
            name: "t".into(),
            ms: 0,
        })
        .check()
        .unwrap_err();
        assert!(e.0.contains("timer ms 0"), "{e}");
        let e = Action::Gather(Gather {
            terminators: Some("#x".into()),
            ..Gather::default()
        })
        .check()
        .unwrap_err();
        assert!(e.0.contains("'x' is not a DTMF digit"), "{e}");
        let agent = |p: &str| {
            Action::ConnectAgent(Agent {
                name: "sales".into(),
                parameters: Some(p.into()),
            })
            .check()
        };
        assert!(agent(r#"{"lang": "en"}"#).is_ok());
        assert!(agent("[1]").unwrap_err().0.contains("not a JSON object"));
        let var = |n: &str| {
            Action::SetVariable(Variable {
                name: n.into(),
                value: String::new(),
            })
            .check()
        };
        assert!(var("menu.choice-1").is_ok());
        assert!(var("a b").is_err());
        let reject = |reason: &str| Action::Reject(SipStatus::new(486, reason)).check();
        assert!(reject("Busy Here").is_ok());
        assert!(
            reject("Busy\r\nContact: sip:evil@example.com")
                .unwrap_err()
                .0
                .contains("control character")
        );
        let agent_named = |n: &str| {
            Action::ConnectAgent(Agent {
                name: n.into(),
                parameters: None,
            })
            .check()
        };
        assert!(agent_named("support-assistant").is_ok());
        assert!(agent_named("wss://agent.example.com").is_err());
        assert!(Action::StopRecording("../x".into()).check().is_err());
    }

    #[test]
    fn answers_are_checked_whole() {
        let hand_off = Action::HandOff(HandOff {
            plugin: "ivr".into(),
            variables: vec![],
        });
        assert!(Action::check_answer(&[Action::Answer, hand_off.clone()]).is_ok());
        let (i, e) = Action::check_answer(&[hand_off, Action::Answer]).unwrap_err();
        assert_eq!(i, 0);
        assert!(e.0.contains("last"), "{e}");
        let (i, _) = Action::check_answer(&vec![Action::Answer; MAX_ACTIONS + 1]).unwrap_err();
        assert_eq!(i, MAX_ACTIONS);
        let (i, _) = Action::check_answer(&[Action::Answer, dial(0)]).unwrap_err();
        assert_eq!(i, 1);
    }

    #[test]
    fn the_deny_list_knows_compact_forms() {
        assert!(denied_header("Via"));
        assert!(denied_header("v"));
        assert!(denied_header("P-Asserted-Identity"));
        assert!(!denied_header("X-Queue"));
        assert!(!denied_header("s"));
    }
}
