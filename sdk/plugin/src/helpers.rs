//! Short constructors for the actions and decisions plugins return most often. Each sets what
//! its name says and leaves every other option `None`: the default `wit/types.wit` states for
//! it. The ranges are the contract's too; the host checks them, not these constructors.

use crate::{
    Action, Audio, Dial, DialTarget, Gather, Play, RingGroup, RingStrategy, SipStatus, SmsDecision,
    Transfer, TransferMode, Variable,
};

impl SipStatus {
    /// A status with its reason phrase, e.g. `SipStatus::new(486, "Busy Here")`.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        SipStatus {
            code,
            reason: Some(reason.into()),
        }
    }
}

impl Audio {
    /// A prompt from the tenant's prompt store, by name (e.g. "welcome" or "menus/main.wav").
    pub fn prompt(name: impl Into<String>) -> Self {
        Audio::Prompt(name.into())
    }
}

impl Variable {
    /// A call variable (kept with the call and written to its CDR); an empty value removes it.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Variable {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl DialTarget {
    /// Ring `target`: a SIP URI, a number (through [`via`](Self::via)'s trunk, or to the
    /// tenant's SIP user of that name without one) or a SIP user's name. No extra headers, the
    /// default ring timeout.
    pub fn new(target: impl Into<String>) -> Self {
        DialTarget {
            target: target.into(),
            trunk: None,
            headers: Vec::new(),
            timeout_ms: None,
        }
    }

    /// Sends a number through this trunk of the tenant.
    pub fn via(mut self, trunk: impl Into<String>) -> Self {
        self.trunk = Some(trunk.into());
        self
    }
}

impl From<String> for DialTarget {
    fn from(target: String) -> Self {
        DialTarget::new(target)
    }
}

impl From<&str> for DialTarget {
    fn from(target: &str) -> Self {
        DialTarget::new(target)
    }
}

impl Dial {
    /// Ring `targets` one after another (one sequential group), each for its own ring timeout;
    /// no overall limit, the caller's own identity, the default ringback, no tag.
    pub fn to<I>(targets: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<DialTarget>,
    {
        Dial {
            groups: vec![RingGroup {
                strategy: RingStrategy::Sequential,
                targets: targets.into_iter().map(Into::into).collect(),
            }],
            timeout_ms: None,
            caller_id: None,
            ringback: None,
            tag: None,
        }
    }

    /// Sends every target's number through this trunk of the tenant.
    pub fn via(mut self, trunk: impl Into<String>) -> Self {
        let trunk = trunk.into();
        for target in self.groups.iter_mut().flat_map(|g| g.targets.iter_mut()) {
            target.trunk = Some(trunk.clone());
        }
        self
    }

    /// Tags the dial: the tag comes back in its leg events and in `dial-completed`, to tell
    /// which dial they are about.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

impl Transfer {
    /// Transfer the caller to `target` at once: the leg bridged to the caller, if any, is hung
    /// up and the target rung for the caller. No tag.
    pub fn blind(target: impl Into<DialTarget>) -> Self {
        Transfer {
            target: target.into(),
            mode: TransferMode::Blind,
            tag: None,
        }
    }
}

impl Gather {
    /// Collect up to `max_digits` digits (1 to 64), with no prompt; the terminator and the
    /// timeouts are the contract's defaults.
    pub fn digits(max_digits: u8) -> Self {
        Gather {
            prompts: Vec::new(),
            max_digits: Some(max_digits),
            terminators: None,
            timeout_ms: None,
            inter_digit_timeout_ms: None,
            tag: None,
        }
    }

    /// Adds a prompt to play while waiting (prompts play in order; the first digit stops them).
    pub fn prompt(mut self, name: impl Into<String>) -> Self {
        self.prompts.push(Audio::prompt(name));
        self
    }

    /// The digits that end collection early, not included in the result; `""` for none, so
    /// that every key counts as a digit.
    pub fn terminators(mut self, digits: impl Into<String>) -> Self {
        self.terminators = Some(digits.into());
        self
    }
}

impl Action {
    /// Refuse a call not yet answered with a final status, 400 to 699.
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        Action::Reject(SipStatus::new(code, reason))
    }

    /// End the call at once; a call not yet answered gets the contract's default status, 480.
    pub fn hangup() -> Self {
        Action::Hangup(None)
    }

    /// Play `audio` once, without barge-in.
    pub fn play(audio: Audio) -> Self {
        Action::Play(Play {
            audio,
            repeat: None,
            barge_in: None,
            tag: None,
        })
    }
}

impl SmsDecision {
    /// Refuse the message with a SIP status, 400 to 699.
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        SmsDecision::Reject(SipStatus::new(code, reason))
    }
}
