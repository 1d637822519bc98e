//! Short constructors for the decisions and actions plugins return most often.

use crate::{
    Audio, CallAction, Dial, Forward, Gather, IvrAction, Play, Recording, RingStrategy,
    RouteDecision, SipStatus, SmsDecision, Transfer,
};

impl Forward {
    /// Ring `targets` one after another, 30 s each, keeping the caller's ID.
    pub fn to<I, S>(targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Forward {
            targets: targets.into_iter().map(Into::into).collect(),
            trunk: None,
            timeout_ms: 30_000,
            strategy: RingStrategy::Sequential,
            caller_id: None,
        }
    }

    /// Sends numbers through this trunk of the tenant.
    pub fn via(mut self, trunk: impl Into<String>) -> Self {
        self.trunk = Some(trunk.into());
        self
    }

    /// How long each target rings, in ms.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }

    /// Rings every target at once.
    pub fn simultaneous(mut self) -> Self {
        self.strategy = RingStrategy::Simultaneous;
        self
    }
}

impl SipStatus {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        SipStatus {
            code,
            reason: Some(reason.into()),
        }
    }
}

impl RouteDecision {
    pub fn forward(forward: Forward) -> Self {
        RouteDecision::Forward(forward)
    }

    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        RouteDecision::Reject(SipStatus::new(code, reason))
    }
}

impl Play {
    /// Plays a prompt once, without barge-in.
    pub fn prompt(name: impl Into<String>) -> Self {
        Play {
            audio: Audio::Prompt(name.into()),
            repeat: 1,
            barge_in: false,
        }
    }
}

impl Gather {
    /// Collects up to `max_digits` digits with a 5 s first-digit and 3 s inter-digit timeout.
    pub fn digits(max_digits: u8) -> Self {
        Gather {
            prompt: None,
            max_digits,
            terminator: None,
            timeout_ms: 5_000,
            inter_digit_timeout_ms: 3_000,
        }
    }

    /// Plays this prompt while waiting for the first digit.
    pub fn prompt(mut self, name: impl Into<String>) -> Self {
        self.prompt = Some(Audio::Prompt(name.into()));
        self
    }

    pub fn terminator(mut self, digit: char) -> Self {
        self.terminator = Some(digit);
        self
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }
}

impl Transfer {
    pub fn to(target: impl Into<String>) -> Self {
        Transfer {
            target: target.into(),
            trunk: None,
        }
    }
}

impl IvrAction {
    /// Plays a prompt once.
    pub fn play(prompt: impl Into<String>) -> Self {
        IvrAction::Play(Play::prompt(prompt))
    }

    /// Dials a forward and, on failure, gives control back with `dial-completed`.
    pub fn dial(target: Forward) -> Self {
        IvrAction::Dial(Dial {
            target,
            return_on_failure: true,
        })
    }

    pub fn transfer(target: impl Into<String>) -> Self {
        IvrAction::Transfer(Transfer::to(target))
    }

    pub fn record(name: impl Into<String>, max_duration_ms: u32) -> Self {
        IvrAction::Record(Recording {
            name: name.into(),
            max_duration_ms,
            terminator: Some('#'),
            beep: true,
        })
    }

    pub fn set_variable(name: impl Into<String>, value: impl Into<String>) -> Self {
        IvrAction::SetVariable((name.into(), value.into()))
    }

    pub fn hangup() -> Self {
        IvrAction::Hangup(None)
    }
}

impl CallAction {
    /// Blind-transfers to `target`.
    pub fn transfer(target: impl Into<String>) -> Self {
        CallAction::Transfer(Transfer::to(target))
    }
}

impl SmsDecision {
    pub fn reject(code: u16, reason: impl Into<String>) -> Self {
        SmsDecision::Reject(SipStatus::new(code, reason))
    }
}
