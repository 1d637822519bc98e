//! One call: the caller's leg, the outbound legs, and the plugin session that decides what
//! happens, in a task of its own.
//!
//! The task takes its inputs in order (SIP from the dispatcher, responses to its own
//! requests, timers, the API) and runs the plugin's answers as the contract says
//! (`wit/v0.2.0/host.wit`, `call-handler`): an answer's actions run in order; a `dial` runs
//! until a leg answers and the bridge ends, or no target is left, and the actions after it
//! wait; an answer with a media action replaces what runs. Events for the plugin are queued
//! and given to it one at a time ([`Call::pump`]), so nothing here recurses.
//!
//! What this step of the switch carries: `dial` (groups, sequential and simultaneous, ring
//! timeouts, caller ID, headers, trunk digest challenges, 3xx handed to the plugin),
//! `reject`, `redirect`, `hangup`, `hangup-leg`, `follow-redirect`, timers, variables and
//! `hand-off`. Media actions (`answer`, `play`, `gather`, `record`, `conference`,
//! `connect-agent`, transfers, hold) fail with `action-failed` (`unavailable`) until the media
//! engine lands; a call left with nothing to do gets the tenant's fallback, so the caller
//! always gets a final response.
//!
//! Readings chosen:
//! - Requests inside a dialog go to the address the dialog's INVITE came from (the caller's
//!   leg, so a caller behind NAT is reached) or went to (an outbound leg: the trunk or the
//!   URI's next hop), over the same transport and connection, not to the remote target's
//!   own address: what a B2BUA in front of NATed phones does, and what trunks expect.
//! - SDP passes through untouched in both directions; the media issue anchors it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use wasmswitch_sip::Method;
use wasmswitch_sip::dialog::{Dialog, DialogError};
use wasmswitch_sip::digest::DigestClient;
use wasmswitch_sip::endpoint::{ClientEvent, ClientSink};
use wasmswitch_sip::header::{HeaderName, Headers};
use wasmswitch_sip::invite::{InviteClient, InviteServer, Received, Reliability, ServerEvent};
use wasmswitch_sip::message::{Request, Response};
use wasmswitch_sip::transaction::{Flow, TxId};

use super::limits::Permit;
use super::outbound::{self, Destination, Presented};
use super::{Inner, LiveCall};
use crate::plugins::model::{
    Action, ActionFailure, AnswerState, CallEnd, CallEvent, CallInfo, CallerId, Dial, DialOutcome,
    DialResult, DialTarget, FailureReason, HandOver, HangupInfo, Header, LegEnd, LegId, LegInfo,
    LegRedirect, LegResult, Privacy, RingGroup, RingStrategy, SipStatus, Variable, denied_header,
};
use crate::plugins::{Decided, Fallback, Session};
use crate::store::{CallFallback, Cdr, CdrState, DirTrunk, Disposition};

/// What reaches a call's task from the dispatcher and the API.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Input {
    /// A request inside one of the call's dialogs.
    Request {
        tx: TxId,
        request: Request,
        flow: Flow,
    },
    /// An ACK for a 2xx the call sent.
    Ack(Request),
    /// The caller cancelled its INVITE (the CANCEL is answered already).
    Cancelled,
    /// A 2xx retransmitted after its transaction ended: ACK it again.
    Stray(Response),
    /// End the call (the API, or the end of a drain); why.
    HangUp(&'static str),
}

/// What a new call starts from.
#[derive(Debug)]
pub(crate) struct Start {
    pub tx: TxId,
    pub invite: Request,
    pub flow: Flow,
    pub tenant: String,
    pub trunk: DirTrunk,
    pub called: String,
}

/// The longest a target rings when the plugin sets no timeout (WIT `dial-target`).
const DEFAULT_RING: Duration = Duration::from_secs(30);
/// The most legs one call may create (WIT: a dial has at most 32 targets; redirects and
/// later dials add more).
const MAX_LEGS: usize = 64;
/// The most plugin timers at once (WIT `timer`).
const MAX_TIMERS: usize = 32;
/// The most variables per call (WIT `variable`).
const MAX_VARIABLES: usize = 100;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 1;
    }
    u32::from_le_bytes(b)
}

/// The CDR's `hangup_cause`: the contract's `call-end` case, with the switch's reason.
fn cause(by: &CallEnd) -> String {
    match by {
        CallEnd::Caller => "caller".into(),
        CallEnd::Plugin => "plugin".into(),
        CallEnd::Idle => "idle".into(),
        CallEnd::Leg(id) => format!("leg {id}"),
        CallEnd::Switch(why) => format!("switch: {why}"),
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = now_ms().to_le_bytes();
    }
    hex::encode(b)
}

/// The tenant's fallback as the plugin layer runs it.
pub(crate) fn fallback_of(f: &CallFallback) -> Fallback {
    let unanswered = match f {
        CallFallback::Reject { code, reason } => vec![Action::Reject(SipStatus {
            code: *code,
            reason: reason.clone(),
        })],
        CallFallback::Dial { target, trunk } => vec![Action::Dial(Dial {
            groups: vec![RingGroup {
                strategy: RingStrategy::Sequential,
                targets: vec![DialTarget {
                    target: target.clone(),
                    trunk: trunk.clone(),
                    headers: Vec::new(),
                    timeout_ms: None,
                }],
            }],
            timeout_ms: None,
            caller_id: None,
            ringback: None,
            tag: Some("fallback".into()),
        })],
    };
    Fallback {
        unanswered,
        ..Fallback::default()
    }
}

/// One step of the plugin's answers still to run.
#[derive(Debug)]
enum Step {
    Act(Action),
    /// An action that broke the contract's rules (in an answer to a later event): fail it.
    Invalid(Action, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Calling,
    Ringing,
    Answered,
    Ended,
}

/// One outbound leg.
#[derive(Debug)]
struct Leg {
    info: LegInfo,
    dest: Destination,
    flow: Flow,
    client: InviteClient,
    tx: TxId,
    call_id: String,
    tag: String,
    cseq: u32,
    dialog: Option<Dialog>,
    state: LegState,
    /// Whether `leg-ringing`/`leg-early-media` was reported.
    reported_ringing: bool,
    ring_until: Instant,
    answered_at: Option<Instant>,
    auth: Option<DigestClient>,
    headers: Vec<Header>,
    presented: Presented,
    max_forwards: u8,
    /// The ACK held back until the caller's ACK brings the answer (a caller's INVITE without
    /// an offer: the leg's 2xx carries it).
    ack_waits_for_caller: bool,
    /// A 3xx waiting for the plugin's `follow-redirect`.
    redirected: bool,
}

/// A `dial` that runs.
#[derive(Debug)]
struct DialRun {
    tag: Option<String>,
    groups: Vec<RingGroup>,
    group: usize,
    /// The next target of the group (sequential), or of the follow-ups.
    next: usize,
    /// Targets to ring next in place of a redirected leg, before the group's own.
    follow: VecDeque<DialTarget>,
    caller_id: Option<CallerId>,
    deadline: Option<Instant>,
    legs: Vec<LegId>,
    results: Vec<LegResult>,
    answered: Option<LegId>,
}

/// What a client transaction of the call is for.
#[derive(Debug, Clone, Copy)]
enum Outgoing {
    Invite(LegId),
    /// A request passed across from one side to the other; its final response goes back on
    /// `server` to `from`.
    Relay {
        from: Side,
        server: TxId,
        reinvite_with_offer: bool,
    },
    /// A BYE or re-INVITE of our own whose outcome changes nothing.
    Ours,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Leg(LegId),
}

/// How the call ended, for the plugin and the CDR.
#[derive(Debug, Clone)]
struct Ending {
    by: CallEnd,
    /// The CDR's `ended_by`.
    label: &'static str,
    status: Option<SipStatus>,
}

pub(crate) struct Call {
    ctx: Arc<Inner>,
    id: String,
    tenant: String,
    trunk: DirTrunk,
    called: String,
    info: CallInfo,
    mailbox: mpsc::Sender<Input>,
    _permit: Permit,
    // The caller's leg.
    inv_tx: TxId,
    invite: Request,
    flow: Flow,
    server: InviteServer,
    local_tag: String,
    dialog: Option<Dialog>,
    state: AnswerState,
    final_sent: bool,
    /// The caller's re-INVITE passed to a leg whose 2xx we wait to ACK (late offer).
    // Legs and what runs.
    legs: Vec<Leg>,
    bridged: Option<LegId>,
    dial: Option<DialRun>,
    queue: VecDeque<Step>,
    events: VecDeque<CallEvent>,
    session: Session,
    /// The tenant's fallback ran already: a call it leaves idle is refused, not sent to it
    /// again.
    fallback_used: bool,
    variables: BTreeMap<String, String>,
    timers: BTreeMap<String, Instant>,
    sink: ClientSink,
    sip: Option<mpsc::Receiver<(TxId, ClientEvent)>>,
    outgoing: HashMap<TxId, Outgoing>,
    /// Requests received whose answer waits for the other side's (relayed requests).
    requests: HashMap<TxId, Request>,
    started_ms: i64,
    answered_ms: Option<i64>,
    answered_at: Option<Instant>,
    last_dial: Option<DialOutcome>,
    answered_target: Option<String>,
    plugin: Option<String>,
    ending: Option<Ending>,
    /// The bridged leg hung up (the CDR says `callee` when the call then ends idle).
    callee_hung_up: bool,
    /// A relayed re-INVITE without an offer was answered 2xx: the ACK from `.0` carries the
    /// answer to pass to `.1`'s 2xx with CSeq `.2`.
    late_ack: Option<(Side, Side, u32)>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// The display name of a From header, unquoted.
fn display_name(from: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(from).ok()?;
    let before = text.split('<').next()?.trim();
    if before.is_empty() || !text.contains('<') {
        return None;
    }
    let name = before
        .trim_matches('"')
        .replace("\\\"", "\"")
        .replace("\\\\", "\\");
    (!name.is_empty()).then_some(name)
}

fn header_text(headers: &Headers, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
}

fn privacy_of(headers: &Headers) -> Privacy {
    let mut p = Privacy::default();
    for v in headers.get_all(&HeaderName::Privacy) {
        for part in String::from_utf8_lossy(v).split([';', ',']) {
            match part.trim().to_ascii_lowercase().as_str() {
                "header" => p.header = true,
                "session" => p.session = true,
                "user" => p.user = true,
                "id" => p.id = true,
                "critical" => p.critical = true,
                _ => {}
            }
        }
    }
    p
}

/// The WIT `call-info` of an INVITE.
fn call_info(start: &Start, received_at: i64) -> CallInfo {
    let invite = &start.invite;
    let from = invite.from();
    let from_user = from
        .uri
        .as_sip()
        .and_then(|u| u.user_unescaped())
        .map(|u| String::from_utf8_lossy(&u).into_owned())
        .unwrap_or_default();
    let headers = invite
        .headers()
        .iter()
        .filter(|h| {
            !matches!(
                h.name,
                HeaderName::Authorization | HeaderName::ProxyAuthorization
            )
        })
        .map(|h| Header {
            name: h.name.as_str().to_owned(),
            value: String::from_utf8_lossy(&h.value).into_owned(),
        })
        .collect();
    CallInfo {
        call_id: String::from_utf8_lossy(invite.call_id()).into_owned(),
        tenant: start.tenant.clone(),
        from: from_user,
        display_name: display_name(from.as_bytes()),
        privacy: privacy_of(invite.headers()),
        asserted_identity: header_text(invite.headers(), &HeaderName::PAssertedIdentity)
            .map(|v| v.trim_start_matches('<').trim_end_matches('>').to_owned()),
        to: start.called.clone(),
        source_address: start.flow.remote.to_string(),
        trunk: Some(start.trunk.name.clone()),
        user: None,
        headers,
        received_at: u64::try_from(received_at).unwrap_or(0),
    }
}

fn content_type(headers: &Headers) -> Bytes {
    headers
        .get(&HeaderName::ContentType)
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"application/sdp"))
}

/// A SIP status's standard reason phrase, for the few the switch sends itself.
fn reason_of(code: u16) -> &'static str {
    match code {
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        302 => "Moved Temporarily",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "",
    }
}

impl Call {
    pub(crate) fn new(
        ctx: Arc<Inner>,
        start: Start,
        mailbox: mpsc::Sender<Input>,
        permit: Permit,
    ) -> Call {
        let started_ms = now_ms();
        let info = call_info(&start, started_ms);
        let session = ctx.registry.start_call(&start.tenant);
        let server = InviteServer::new(
            &start.invite,
            ctx.config.timers,
            Reliability::WhenRequired,
            random_u32(),
        );
        let (sink, sip) = mpsc::channel(128);
        Call {
            id: format!("c-{}{}", random_hex(), random_hex()),
            tenant: start.tenant,
            trunk: start.trunk,
            called: start.called,
            info,
            mailbox,
            _permit: permit,
            inv_tx: start.tx,
            invite: start.invite,
            flow: start.flow,
            server,
            local_tag: random_hex(),
            dialog: None,
            state: AnswerState::Unanswered,
            final_sent: false,
            legs: Vec::new(),
            bridged: None,
            dial: None,
            queue: VecDeque::new(),
            events: VecDeque::new(),
            session,
            fallback_used: false,
            variables: BTreeMap::new(),
            timers: BTreeMap::new(),
            sink,
            sip: Some(sip),
            outgoing: HashMap::new(),
            requests: HashMap::new(),
            started_ms,
            answered_ms: None,
            answered_at: None,
            last_dial: None,
            answered_target: None,
            plugin: None,
            ending: None,
            callee_hung_up: false,
            late_ack: None,
            ctx,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn live(&self) -> LiveCall {
        LiveCall {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            from: self.info.from.clone(),
            to: self.called.clone(),
            trunk: Some(self.trunk.name.clone()),
            state: "ringing",
            started_at: self.started_ms,
        }
    }

    fn cdr(&self, state: crate::store::CdrState) -> Cdr {
        let ended = self.ending.as_ref();
        let end_ms = ended.map(|_| now_ms());
        let status = ended.and_then(|e| e.status.clone());
        let disposition = match (&self.answered_ms, ended) {
            (Some(_), _) => Disposition::Answered,
            (None, None) => Disposition::Failed,
            (None, Some(e)) => match e.status.as_ref().map(|s| s.code) {
                Some(486 | 600) => Disposition::Busy,
                Some(408 | 480) => Disposition::NoAnswer,
                Some(487) if e.label == "caller" => Disposition::NoAnswer,
                _ if e.label == "plugin" => Disposition::Rejected,
                _ => Disposition::Failed,
            },
        };
        Cdr {
            id: self.id.clone(),
            tenant_id: self.tenant.clone(),
            from_number: self.info.from.clone(),
            to_number: self.called.clone(),
            direction: "inbound".into(),
            disposition,
            sip_status: status
                .as_ref()
                .map(|s| i64::from(s.code))
                .or(self.answered_ms.map(|_| 200)),
            started_at: self.started_ms,
            answered_at: self.answered_ms,
            ended_at: end_ms,
            duration_ms: match (self.answered_ms, end_ms) {
                (Some(a), Some(e)) => (e - a).max(0),
                _ => 0,
            },
            trunk: Some(self.trunk.name.clone()),
            plugin: self.plugin.clone(),
            hangup_cause: ended.map(|e| cause(&e.by)),
            call_id: Some(self.info.call_id.clone()),
            sip_user: None,
            sip_reason: status.and_then(|s| s.reason),
            ended_by: ended.map(|e| e.label.to_owned()),
            answered_target: self.answered_target.clone(),
            host_id: Some(self.ctx.config.host_id.clone()),
            state,
        }
    }

    /// The call's life: the plugin's first decision, then every input until the call ends.
    pub(crate) async fn run(mut self, mut inputs: mpsc::Receiver<Input>) {
        self.ctx
            .add_dialog(Bytes::from(self.local_tag.clone()), self.mailbox.clone());
        self.ctx.cdrs.record(self.cdr(CdrState::Running));
        let mut sip = self.sip.take().unwrap_or_else(|| mpsc::channel(1).1);
        let mut stop = self.ctx.stop.subscribe();
        // The plugin the call reaches first, whether or not it manages to answer.
        self.plugin = self
            .ctx
            .registry
            .snapshot(&self.tenant)
            .and_then(|s| s.entry().map(|p| format!("{}@{}", p.id.name, p.id.version)));
        let first = self.session.incoming(&self.info).await;
        self.take(first, true);
        self.pump().await;
        while self.ending.is_none() {
            let wake = self.next_wake();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.input(input).await,
                    None => self.end(CallEnd::Switch("stopped".into()), "switch", Some(SipStatus::code(503))).await,
                },
                Some((tx, event)) = sip.recv() => self.client_event(tx, event).await,
                () = sleep => self.timeout().await,
                Ok(()) = stop.changed() => {
                    self.end(CallEnd::Switch("shutdown".into()), "switch", Some(SipStatus::new(503, "Service Unavailable"))).await;
                }
            }
            self.pump().await;
        }
        self.finish().await;
    }

    /// The earliest timer: the caller's 2xx retransmission, a leg's ring timeout, the dial's
    /// overall timeout, a plugin timer.
    fn next_wake(&self) -> Option<Instant> {
        let legs = self
            .legs
            .iter()
            .filter(|l| matches!(l.state, LegState::Calling | LegState::Ringing))
            .map(|l| l.ring_until);
        let dial = self.dial.as_ref().and_then(|d| d.deadline);
        let timers = self.timers.values().copied();
        legs.chain(dial)
            .chain(timers)
            .chain(self.server.poll_timeout())
            .min()
    }

    async fn timeout(&mut self) {
        let now = Instant::now();
        self.server.handle_timeout(now);
        self.transmit_caller().await;
        while let Some(e) = self.server.poll_event() {
            match e {
                ServerEvent::AckTimeout => {
                    tracing::info!(call = %self.id, "the caller never acknowledged the answer; ending the call");
                    self.end(
                        CallEnd::Switch("no ACK from the caller".into()),
                        "switch",
                        None,
                    )
                    .await;
                }
                ServerEvent::PrackTimeout => {
                    self.end(
                        CallEnd::Switch("no PRACK from the caller".into()),
                        "switch",
                        Some(SipStatus::code(500)),
                    )
                    .await;
                }
                _ => {}
            }
        }
        let due: Vec<LegId> = self
            .legs
            .iter()
            .filter(|l| {
                matches!(l.state, LegState::Calling | LegState::Ringing) && l.ring_until <= now
            })
            .map(|l| l.info.id)
            .collect();
        for id in due {
            self.stop_leg(
                id,
                LegEnd::NoAnswer,
                SipStatus::new(408, "Request Timeout"),
                true,
            )
            .await;
        }
        if self
            .dial
            .as_ref()
            .and_then(|d| d.deadline)
            .is_some_and(|d| d <= now)
        {
            let alive: Vec<LegId> = self.alive_legs();
            for id in alive {
                self.stop_leg(
                    id,
                    LegEnd::NoAnswer,
                    SipStatus::new(408, "Request Timeout"),
                    true,
                )
                .await;
            }
            if let Some(d) = &mut self.dial {
                d.deadline = None;
                d.follow.clear();
                d.group = d.groups.len();
            }
            self.dial_progress().await;
        }
        let fired: Vec<String> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in fired {
            self.timers.remove(&name);
            self.events.push_back(CallEvent::Timer(name));
        }
    }

    fn alive_legs(&self) -> Vec<LegId> {
        self.legs
            .iter()
            .filter(|l| l.state != LegState::Ended)
            .map(|l| l.info.id)
            .collect()
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.legs.get_mut(i)
    }

    fn leg(&self, id: LegId) -> Option<&Leg> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.legs.get(i)
    }

    // ---------------------------------------------------------------- the plugin's answers

    /// Takes a decision: the plugin's answer, or the fallback when it failed.
    fn take(&mut self, decided: Decided<crate::plugins::Answer>, first: bool) {
        if let Some(failure) = &decided.failure {
            metrics::counter!("calls_plugin_failures_total", "tenant" => self.tenant.clone())
                .increment(1);
            tracing::warn!(call = %self.id, tenant = %self.tenant, error = %failure, first, "the router plugin failed; the tenant's fallback runs");
            self.fallback_used = true;
        }
        let answer = decided.value;
        let replaces = answer
            .actions
            .iter()
            .any(|a| a.is_media() || matches!(a, Action::HandOff(_)));
        if replaces {
            self.queue.clear();
        }
        self.queue.extend(answer.actions.into_iter().map(Step::Act));
        if let Some((action, why)) = answer.invalid {
            self.queue.push_back(Step::Invalid(action, why.to_string()));
        }
    }

    /// Gives queued events to the plugin and runs its answers, until nothing is left to do
    /// now; then, if the call has nothing at all left (no action, leg or timer), ends it.
    async fn pump(&mut self) {
        loop {
            self.advance().await;
            if self.ending.is_some() {
                return;
            }
            let Some(event) = self.events.pop_front() else {
                break;
            };
            let decided = self.session.on_event(&event, self.state).await;
            self.take(decided, false);
            if let CallEvent::LegRedirected(r) = &event {
                let followed = self.queue.iter().any(
                    |s| matches!(s, Step::Act(Action::FollowRedirect(f)) if f.leg == r.leg.id),
                );
                if !followed && let Some(leg) = self.leg_mut(r.leg.id) {
                    // Not followed: the leg has ended `redirected` and the dial goes on.
                    leg.redirected = false;
                    self.dial_progress().await;
                }
            }
        }
        if self.ending.is_none() && self.is_idle() {
            self.idle().await;
        }
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.dial.is_none()
            && self.timers.is_empty()
            && self.alive_legs().is_empty()
            && self.events.is_empty()
    }

    /// Nothing left to do: an answered call is hung up; a call never answered gets the
    /// tenant's fallback once, then a refusal.
    async fn idle(&mut self) {
        if self.state == AnswerState::Answered {
            return self.end(CallEnd::Idle, "idle", None).await;
        }
        if !self.fallback_used {
            self.fallback_used = true;
            let fallback = self
                .ctx
                .registry
                .snapshot(&self.tenant)
                .map(|s| s.fallback.for_call(self.state))
                .unwrap_or_else(|| Fallback::default().for_call(self.state));
            tracing::debug!(call = %self.id, "the call has nothing left to do; the tenant's fallback runs");
            self.queue.extend(fallback.into_iter().map(Step::Act));
            // Its actions run without a plugin: stop giving events to one.
            self.session = self.ctx.registry.start_call("");
            Box::pin(self.pump()).await;
            return;
        }
        let status = match self.last_dial {
            Some(DialOutcome::Busy) => SipStatus::code(486),
            Some(DialOutcome::NoAnswer) => SipStatus::code(480),
            _ => SipStatus::code(503),
        };
        self.end(CallEnd::Idle, "idle", Some(status)).await;
    }

    /// Runs queued actions until one waits (a dial) or none is left.
    async fn advance(&mut self) {
        while self.ending.is_none() && self.dial.is_none() {
            let Some(step) = self.queue.pop_front() else {
                return;
            };
            match step {
                Step::Act(action) => self.act(action).await,
                Step::Invalid(action, why) => self.fail(action, FailureReason::Invalid, why),
            }
        }
    }

    /// An action failed: it and the actions after it are dropped; the plugin hears why.
    fn fail(&mut self, action: Action, reason: FailureReason, message: String) {
        tracing::debug!(call = %self.id, action = action.name(), %message, "a plugin action failed");
        self.queue.clear();
        self.events
            .push_back(CallEvent::ActionFailed(ActionFailure {
                action,
                reason,
                message,
            }));
    }

    async fn act(&mut self, action: Action) {
        let unanswered = self.state != AnswerState::Answered && !self.final_sent;
        match action {
            Action::Reject(status) | Action::Hangup(Some(status)) if unanswered => {
                self.end(CallEnd::Plugin, "plugin", Some(status)).await;
            }
            Action::Reject(_) => {
                self.fail(
                    action,
                    FailureReason::InvalidState,
                    "the call is answered".into(),
                );
            }
            Action::Hangup(_) => {
                let status = unanswered.then(|| SipStatus::code(480));
                self.end(CallEnd::Plugin, "plugin", status).await;
            }
            Action::Redirect(ref r) if unanswered => {
                let code = r.status.unwrap_or(302);
                let contacts: Vec<String> = r.contacts.iter().map(|c| format!("<{c}>")).collect();
                let mut response = self.caller_response(code, reason_of(code), None);
                response
                    .headers_mut()
                    .push(HeaderName::Contact, contacts.join(", "));
                self.final_to_caller(response).await;
                self.end(CallEnd::Plugin, "plugin", Some(SipStatus::code(code)))
                    .await;
            }
            Action::Redirect(_) => {
                self.fail(
                    action,
                    FailureReason::InvalidState,
                    "the call is answered".into(),
                );
            }
            Action::Dial(dial) => self.start_dial(dial).await,
            Action::FollowRedirect(ref f) => {
                let ok = self
                    .leg(f.leg)
                    .is_some_and(|l| l.redirected && l.state == LegState::Ended)
                    && self.dial.is_some();
                if !ok {
                    return self.fail(
                        action,
                        FailureReason::InvalidState,
                        "no redirect of that leg is waiting".into(),
                    );
                }
                if let Some(leg) = self.leg_mut(f.leg) {
                    leg.redirected = false;
                }
                if let Some(d) = &mut self.dial {
                    d.follow.extend(f.targets.iter().cloned());
                }
                self.dial_progress().await;
            }
            Action::HangupLeg(0) => {
                self.end(
                    CallEnd::Plugin,
                    "plugin",
                    unanswered.then(|| SipStatus::code(480)),
                )
                .await
            }
            Action::HangupLeg(id) => match self.leg(id).map(|l| l.state) {
                Some(LegState::Ended) | None => self.fail(
                    action,
                    FailureReason::UnknownLeg(id),
                    "no such leg up".into(),
                ),
                Some(LegState::Answered) => {
                    self.stop_leg(id, LegEnd::Dropped, SipStatus::code(200), true)
                        .await;
                    self.dial_progress().await;
                }
                Some(_) => {
                    self.stop_leg(id, LegEnd::Cancelled, SipStatus::code(487), true)
                        .await;
                    self.dial_progress().await;
                }
            },
            Action::SetTimer(t) => {
                if self.timers.len() >= MAX_TIMERS && !self.timers.contains_key(&t.name) {
                    return self.fail(
                        Action::SetTimer(t),
                        FailureReason::LimitReached("timers".into()),
                        format!("at most {MAX_TIMERS} timers"),
                    );
                }
                self.timers.insert(
                    t.name,
                    Instant::now() + Duration::from_millis(u64::from(t.ms)),
                );
            }
            Action::CancelTimer(name) => {
                self.timers.remove(&name);
            }
            Action::SetVariable(Variable { name, value }) => {
                if value.is_empty() {
                    self.variables.remove(&name);
                } else if self.variables.len() >= MAX_VARIABLES
                    && !self.variables.contains_key(&name)
                {
                    self.fail(
                        Action::SetVariable(Variable { name, value }),
                        FailureReason::LimitReached("variables".into()),
                        format!("at most {MAX_VARIABLES} variables"),
                    );
                } else {
                    self.variables.insert(name, value);
                }
            }
            Action::HandOff(h) => {
                let hand_over = HandOver {
                    call: self.info.clone(),
                    from_plugin: String::new(),
                    variables: self
                        .variables
                        .iter()
                        .map(|(name, value)| Variable {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .chain(h.variables.iter().cloned())
                        .collect(),
                    state: self.state,
                    recordings: Vec::new(),
                };
                match self.session.hand_off(&h.plugin, hand_over).await {
                    Ok(decided) => {
                        for v in &h.variables {
                            self.variables.insert(v.name.clone(), v.value.clone());
                        }
                        self.timers.clear();
                        for id in self.alive_legs() {
                            self.stop_leg(id, LegEnd::Dropped, SipStatus::code(200), false)
                                .await;
                        }
                        self.dial = None;
                        self.plugin = self
                            .session
                            .plugin()
                            .map(|p| format!("{}@{}", p.id.name, p.id.version));
                        self.take(decided, true);
                    }
                    Err(refused) => {
                        let reason = match &refused {
                            crate::plugins::HandOffRefused::UnknownPlugin(p) => {
                                FailureReason::UnknownPlugin(p.clone())
                            }
                            _ => FailureReason::LimitReached("hand-offs".into()),
                        };
                        self.fail(Action::HandOff(h), reason, refused.to_string());
                    }
                }
            }
            Action::Answer if self.state == AnswerState::Answered => {}
            other => {
                // Media and transfers arrive with the media engine (issue 12).
                let message = format!(
                    "{} needs the media engine, which this switch does not run yet",
                    other.name()
                );
                self.fail(other, FailureReason::Unavailable("media".into()), message);
            }
        }
    }

    // ---------------------------------------------------------------- dialing

    async fn start_dial(&mut self, dial: Dial) {
        let directory = self.ctx.directory.load();
        for target in dial.groups.iter().flat_map(|g| &g.targets) {
            if let Some(h) = target.headers.iter().find(|h| denied_header(&h.name)) {
                let name = h.name.clone();
                return self.fail(
                    Action::Dial(dial),
                    FailureReason::DeniedHeader(name.clone()),
                    format!("the header {name} may not be set"),
                );
            }
            if let Err(reason) = outbound::destination(&directory, &self.tenant, target) {
                let message = format!("{reason:?}");
                return self.fail(Action::Dial(dial), reason, message);
            }
        }
        // Replaces what runs: its legs end without events.
        for id in self.alive_legs() {
            self.stop_leg(id, LegEnd::Dropped, SipStatus::code(200), false)
                .await;
        }
        if self.legs.len() + dial.groups.iter().map(|g| g.targets.len()).sum::<usize>() > MAX_LEGS {
            return self.fail(
                Action::Dial(dial),
                FailureReason::LimitReached("legs".into()),
                format!("at most {MAX_LEGS} legs per call"),
            );
        }
        self.dial = Some(DialRun {
            tag: dial.tag.clone(),
            groups: dial.groups,
            group: 0,
            next: 0,
            follow: VecDeque::new(),
            caller_id: dial.caller_id,
            deadline: dial
                .timeout_ms
                .map(|ms| Instant::now() + Duration::from_millis(u64::from(ms))),
            legs: Vec::new(),
            results: Vec::new(),
            answered: None,
        });
        self.dial_progress().await;
    }

    /// Rings what is next when nothing of the dial rings any more; completes the dial when
    /// nothing is left to ring.
    async fn dial_progress(&mut self) {
        loop {
            let Some(d) = &mut self.dial else { return };
            if d.answered.is_some() {
                return;
            }
            let ringing = d.legs.iter().any(|&id| {
                self.legs
                    .get(id as usize - 1)
                    .is_some_and(|l| l.state != LegState::Ended || l.redirected)
            });
            if ringing {
                return;
            }
            let mut batch: Vec<DialTarget> = Vec::new();
            if let Some(t) = d.follow.pop_front() {
                batch.push(t);
            } else if let Some(group) = d.groups.get(d.group) {
                match group.strategy {
                    RingStrategy::Simultaneous => {
                        batch.extend(group.targets.iter().cloned());
                        d.group += 1;
                        d.next = 0;
                    }
                    RingStrategy::Sequential => {
                        if let Some(t) = group.targets.get(d.next) {
                            batch.push(t.clone());
                            d.next += 1;
                        } else {
                            d.group += 1;
                            d.next = 0;
                            continue;
                        }
                    }
                }
            } else {
                return self.complete_dial(None);
            }
            let mut started = false;
            for target in batch {
                started |= self.start_leg(target).await;
            }
            if started {
                return;
            }
        }
    }

    /// Ends the dial with `dial-completed`.
    fn complete_dial(&mut self, answered: Option<LegId>) {
        let Some(d) = self.dial.take() else { return };
        let outcome = if answered.is_some() {
            DialOutcome::Answered
        } else if d.results.iter().any(|r| matches!(r.status.code, 486 | 600)) {
            DialOutcome::Busy
        } else if !d.results.is_empty() && d.results.iter().all(|r| r.end == LegEnd::NoAnswer) {
            DialOutcome::NoAnswer
        } else {
            DialOutcome::Failed
        };
        self.last_dial = Some(outcome);
        self.events.push_back(CallEvent::DialCompleted(DialResult {
            tag: d.tag,
            outcome,
            answered,
            legs: d.results,
        }));
    }

    /// Starts one leg: locates its next hop and sends the INVITE. False when it could not
    /// start (its `leg-ended` is queued).
    async fn start_leg(&mut self, target: DialTarget) -> bool {
        let directory = self.ctx.directory.load_full();
        let id = u32::try_from(self.legs.len() + 1).unwrap_or(u32::MAX);
        let tag = self.dial.as_ref().and_then(|d| d.tag.clone());
        let info = LegInfo {
            id,
            target: target.target.clone(),
            tag,
        };
        let dest = match outbound::destination(&directory, &self.tenant, &target) {
            Ok(d) => d,
            Err(reason) => {
                // Checked when the dial started; a follow-redirect target may still be bad.
                tracing::debug!(call = %self.id, ?reason, "a dial target cannot be routed");
                self.leg_failed(info, SipStatus::new(404, "Not Found"), LegEnd::Unreachable);
                return false;
            }
        };
        let hops = match outbound::locate(&self.ctx.resolver, &dest.target).await {
            Ok(h) if !h.is_empty() => h,
            other => {
                tracing::info!(call = %self.id, target = %dest.target, result = ?other.err(), "cannot locate a leg's next hop");
                self.leg_failed(
                    info,
                    SipStatus::new(503, "Service Unavailable"),
                    LegEnd::Unreachable,
                );
                return false;
            }
        };
        let (transport, remote) = hops[0];
        let flow = Flow {
            transport,
            remote,
            connection: None,
        };
        let local = self.ctx.local_address(transport, remote);
        let presented = outbound::present(
            &self.info,
            self.dial.as_ref().and_then(|d| d.caller_id.as_ref()),
            dest.trunk.as_ref(),
            &outbound::identity_domain(dest.trunk.as_ref(), local),
        );
        let auth = dest
            .trunk
            .as_ref()
            .and_then(|t| Some(DigestClient::new(t.username.clone()?, t.password.clone()?)));
        let max_forwards = self.invite.max_forwards().unwrap_or(70).saturating_sub(1);
        let call_id = format!("{}@wasmswitch", random_hex());
        let leg_tag = random_hex();
        let timeout = Duration::from_millis(u64::from(target.timeout_ms.unwrap_or(0)));
        let ring = if timeout.is_zero() {
            DEFAULT_RING
        } else {
            timeout
        };
        let mut leg = Leg {
            info: info.clone(),
            dest,
            flow,
            client: InviteClient::new(self.invite.clone()),
            tx: self.inv_tx,
            call_id,
            tag: leg_tag,
            cseq: 0,
            dialog: None,
            state: LegState::Calling,
            reported_ringing: false,
            ring_until: Instant::now() + ring,
            answered_at: None,
            auth,
            headers: target.headers,
            presented,
            max_forwards,
            ack_waits_for_caller: self.invite.body().is_empty(),
            redirected: false,
        };
        match send_invite(&self.ctx, &self.sink, &self.invite, &mut leg, None).await {
            Ok(tx) => {
                self.outgoing.insert(tx, Outgoing::Invite(id));
                self.ctx
                    .add_dialog(Bytes::from(leg.tag.clone()), self.mailbox.clone());
                self.legs.push(leg);
                if let Some(d) = &mut self.dial {
                    d.legs.push(id);
                }
                true
            }
            Err(()) => {
                self.leg_failed(
                    info,
                    SipStatus::new(503, "Service Unavailable"),
                    LegEnd::Unreachable,
                );
                false
            }
        }
    }

    /// A leg that never started: its result is queued as if it had ended.
    fn leg_failed(&mut self, info: LegInfo, status: SipStatus, end: LegEnd) {
        let result = LegResult {
            leg: info,
            status,
            end,
            duration_ms: 0,
        };
        if let Some(d) = &mut self.dial {
            d.results.push(result.clone());
        }
        self.events.push_back(CallEvent::LegEnded(result));
    }

    /// Ends a leg that is up: CANCEL if it rings, BYE if answered. With `report`, the
    /// plugin hears `leg-ended` and its dial counts the result.
    async fn stop_leg(&mut self, id: LegId, end: LegEnd, status: SipStatus, report: bool) {
        let Some(leg) = self.leg_mut(id) else { return };
        let prior = leg.state;
        if prior == LegState::Ended {
            return;
        }
        leg.state = LegState::Ended;
        let tx = leg.tx;
        match prior {
            LegState::Calling | LegState::Ringing => {
                if let Err(e) = self.ctx.endpoint.cancel(tx).await {
                    tracing::debug!(call = %self.id, error = %e, "could not cancel a leg");
                }
            }
            LegState::Answered => self.bye(Side::Leg(id)).await,
            LegState::Ended => {}
        }
        if self.bridged == Some(id) {
            self.bridged = None;
        }
        self.leg_ended(id, end, status, report);
    }

    fn leg_ended(&mut self, id: LegId, end: LegEnd, status: SipStatus, report: bool) {
        let Some(leg) = self.leg_mut(id) else { return };
        leg.state = LegState::Ended;
        let duration_ms = leg.answered_at.map_or(0, |a| {
            u32::try_from(a.elapsed().as_millis()).unwrap_or(u32::MAX)
        });
        let result = LegResult {
            leg: leg.info.clone(),
            status,
            end,
            duration_ms,
        };
        let tag = leg.tag.clone();
        self.ctx.remove_dialog(tag.as_bytes());
        if !report {
            return;
        }
        if let Some(d) = &mut self.dial
            && d.legs.contains(&id)
        {
            d.results.push(result.clone());
        }
        self.events.push_back(CallEvent::LegEnded(result));
    }

    // ---------------------------------------------------------------- responses to our requests

    async fn client_event(&mut self, tx: TxId, event: ClientEvent) {
        let Some(&what) = self.outgoing.get(&tx) else {
            return;
        };
        let fin = match &event {
            ClientEvent::Response(r) => r.status >= 200,
            _ => true,
        };
        if fin && !matches!(what, Outgoing::Invite(_)) {
            self.outgoing.remove(&tx);
        }
        match (what, event) {
            (Outgoing::Invite(id), ClientEvent::Response(r)) => self.leg_response(id, r).await,
            (Outgoing::Invite(id), ClientEvent::Timeout) => {
                if self.leg(id).is_some_and(|l| l.state != LegState::Ended) {
                    self.leg_ended(
                        id,
                        LegEnd::Unreachable,
                        SipStatus::new(408, "Request Timeout"),
                        true,
                    );
                    self.dial_progress().await;
                }
            }
            (Outgoing::Invite(id), ClientEvent::TransportError) => {
                if self.leg(id).is_some_and(|l| l.state != LegState::Ended) {
                    self.leg_ended(
                        id,
                        LegEnd::Unreachable,
                        SipStatus::new(503, "Service Unavailable"),
                        true,
                    );
                    self.dial_progress().await;
                }
            }
            (
                Outgoing::Relay {
                    from,
                    server,
                    reinvite_with_offer,
                },
                ClientEvent::Response(r),
            ) => {
                if r.status < 200 {
                    return;
                }
                if (200..300).contains(&r.status)
                    && r.core().is_some_and(|c| c.cseq().method == Method::Invite)
                    && let Some(peer) = self.peer_of(from)
                {
                    // The relayed re-INVITE's 2xx: ACK the side that answered; without an offer
                    // in the re-INVITE, the 2xx has it and the ACK that comes back from the
                    // other side carries the answer, so that ACK is passed on instead.
                    if reinvite_with_offer {
                        self.ack_in_dialog(peer, &r, None).await;
                    } else {
                        self.late_ack = Some((from, peer, r.cseq().map_or(0, |c| c.seq)));
                    }
                }
                self.relay_response(from, server, &r).await;
            }
            (Outgoing::Relay { from, server, .. }, _) => {
                let status = SipStatus::new(408, "Request Timeout");
                self.respond_side(from, server, status.code, reason_of(status.code))
                    .await;
            }
            (Outgoing::Ours, _) | (Outgoing::Invite(_), _) => {}
        }
    }

    /// The other side of the bridge.
    fn peer_of(&self, side: Side) -> Option<Side> {
        match side {
            Side::Caller => self.bridged.map(Side::Leg),
            Side::Leg(id) if self.bridged == Some(id) => Some(Side::Caller),
            Side::Leg(_) => None,
        }
    }

    async fn leg_response(&mut self, id: LegId, r: Response) {
        let Some(leg) = self.leg_mut(id) else { return };
        let received = match leg.client.receive_response(&r) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(call = %self.id, error = %e, "a leg's response does not fit its INVITE");
                return;
            }
        };
        match received {
            Received::Provisional { status, dialog, .. } => {
                if leg.dialog.is_none() {
                    leg.dialog = dialog;
                }
                if leg.state != LegState::Calling && leg.state != LegState::Ringing {
                    return;
                }
                if status == 100 {
                    return;
                }
                leg.state = LegState::Ringing;
                let early = !r.body.is_empty();
                let first = !leg.reported_ringing;
                leg.reported_ringing = true;
                let info = leg.info.clone();
                if self.state != AnswerState::Answered && !self.final_sent {
                    let mut p =
                        self.caller_response(status, &String::from_utf8_lossy(&r.reason), None);
                    if early {
                        p.headers_mut()
                            .push(HeaderName::ContentType, content_type(r.headers()));
                        p = with_body(p, r.body.clone());
                        self.state = AnswerState::EarlyMedia;
                    }
                    if let Err(e) = self.server.provisional(Instant::now(), p) {
                        tracing::debug!(call = %self.id, error = %e, "could not pass a provisional on");
                    }
                    self.transmit_caller().await;
                }
                if first {
                    self.events.push_back(if early {
                        CallEvent::LegEarlyMedia(info)
                    } else {
                        CallEvent::LegRinging(info)
                    });
                }
            }
            Received::Answered { dialog, forked, .. } => {
                if forked {
                    // Another dialog of this leg's INVITE answered too (a forking proxy on
                    // the far side): ACK it and end it (RFC 3261 section 13.2.2.4).
                    if let Some(d) = dialog {
                        self.end_fork(id, d).await;
                    }
                    return;
                }
                if let Some(d) = dialog {
                    leg.dialog = Some(d);
                } else if let Some(d) = &mut leg.dialog {
                    let _ = d.update_from_response(&r);
                }
                let late = leg.ack_waits_for_caller;
                let wanted = leg.state != LegState::Ended
                    && !forked
                    && self.bridged.is_none()
                    && !self.final_sent_non_2xx();
                if !wanted || !late {
                    self.ack_in_dialog(Side::Leg(id), &r, None).await;
                }
                if !wanted {
                    // A second fork, or a leg answering after it was given up: end it.
                    self.bye(Side::Leg(id)).await;
                    return;
                }
                let Some(leg) = self.leg_mut(id) else { return };
                leg.state = LegState::Answered;
                leg.answered_at = Some(Instant::now());
                let info = leg.info.clone();
                let target = leg.dest.uri.clone();
                self.bridged = Some(id);
                self.answered_target = Some(target);
                if let Some(d) = &mut self.dial {
                    d.answered = Some(id);
                }
                // The others of the dial are cancelled.
                let others: Vec<LegId> =
                    self.alive_legs().into_iter().filter(|&o| o != id).collect();
                for o in others {
                    self.stop_leg(o, LegEnd::Cancelled, SipStatus::code(487), true)
                        .await;
                }
                if self.state != AnswerState::Answered {
                    let mut ok = self.caller_response(200, "OK", None);
                    if !r.body.is_empty() {
                        ok.headers_mut()
                            .push(HeaderName::ContentType, content_type(r.headers()));
                        ok = with_body(ok, r.body.clone());
                    }
                    self.answer_caller(ok).await;
                }
                self.events.push_back(CallEvent::LegAnswered(info));
            }
            Received::Retransmitted { ack: Some(ack) } => {
                let flow = leg.flow;
                let _ = self.ctx.endpoint.send_stateless(ack, flow).await;
            }
            Received::Rejected { status } => {
                self.leg_rejected(id, status, r).await;
            }
            _ => {}
        }
    }

    async fn end_fork(&mut self, id: LegId, mut dialog: Dialog) {
        let Some(leg) = self.leg_mut(id) else { return };
        let flow = leg.flow;
        let local = self.ctx.local_address(flow.transport, flow.remote);
        let via = Bytes::from(outbound::via(flow.transport, local, &random_hex()));
        let Some(leg) = self.leg_mut(id) else { return };
        if let Ok(ack) = leg.client.ack(&dialog, via, None) {
            let _ = self.ctx.endpoint.send_stateless(ack, flow).await;
        }
        let via = Bytes::from(outbound::via(flow.transport, local, &random_hex()));
        if let Ok(bye) = dialog.request(Method::Bye, via, None, None)
            && let Ok(tx) = self
                .ctx
                .endpoint
                .request_into(bye, flow, self.sink.clone())
                .await
        {
            self.outgoing.insert(tx, Outgoing::Ours);
        }
    }

    fn final_sent_non_2xx(&self) -> bool {
        self.final_sent && self.state != AnswerState::Answered
    }

    async fn leg_rejected(&mut self, id: LegId, status: u16, r: Response) {
        let Some(leg) = self.leg_mut(id) else { return };
        if leg.state == LegState::Ended {
            return;
        }
        // A trunk's challenge: answered once with its credentials.
        if matches!(status, 401 | 407) && leg.auth.is_some() && leg.cseq == 1 {
            let (challenge, answer) = if status == 401 {
                (HeaderName::WwwAuthenticate, "Authorization")
            } else {
                (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
            };
            let uri = leg.dest.uri.clone();
            let value = leg.auth.as_mut().and_then(|a| {
                a.challenged(r.headers().get_all(&challenge).map(|v| v.as_ref()))
                    .ok()?;
                a.authorization("INVITE", &uri, &random_hex())
            });
            if let Some(value) = value
                && let Some(i) = usize::try_from(id).ok().and_then(|i| i.checked_sub(1))
                && let Some(leg) = self.legs.get_mut(i)
            {
                let old = leg.tx;
                let sent = send_invite(
                    &self.ctx,
                    &self.sink,
                    &self.invite,
                    leg,
                    Some((answer, &value)),
                )
                .await;
                self.outgoing.remove(&old);
                if let Ok(tx) = sent {
                    self.outgoing.insert(tx, Outgoing::Invite(id));
                    return;
                }
            }
        }
        let reason = String::from_utf8_lossy(&r.reason).into_owned();
        let Some(leg) = self.leg_mut(id) else { return };
        if (300..400).contains(&status) {
            let contacts = r
                .headers()
                .get_all(&HeaderName::Contact)
                .flat_map(|v| {
                    String::from_utf8_lossy(v)
                        .split(',')
                        .map(|c| {
                            c.trim()
                                .trim_start_matches('<')
                                .split('>')
                                .next()
                                .unwrap_or("")
                                .to_owned()
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|c| !c.is_empty())
                .take(8)
                .collect();
            let info = leg.info.clone();
            // The plugin hears `leg-redirected` first and may follow it; the leg is held as
            // pending (the dial waits) until its answer to that event is taken (`pump`).
            leg.redirected = true;
            self.events.push_back(CallEvent::LegRedirected(LegRedirect {
                leg: info,
                status,
                contacts,
            }));
            self.leg_ended(
                id,
                LegEnd::Redirected,
                SipStatus {
                    code: status,
                    reason: Some(reason),
                },
                true,
            );
            return;
        }
        self.leg_ended(
            id,
            LegEnd::Rejected,
            SipStatus {
                code: status,
                reason: Some(reason),
            },
            true,
        );
        self.dial_progress().await;
    }

    // ---------------------------------------------------------------- the caller's leg

    /// A response to the caller's INVITE, with our tag.
    fn caller_response(&self, status: u16, reason: &str, body: Option<Bytes>) -> Response {
        let mut r = self.invite.reply(status, reason, Some(&self.local_tag));
        if (101..300).contains(&status) {
            let local = self
                .ctx
                .local_address(self.flow.transport, self.flow.remote);
            r.headers_mut().push(
                HeaderName::Contact,
                outbound::contact(self.flow.transport, local),
            );
        }
        if (200..300).contains(&status) {
            r.headers_mut().push(HeaderName::Allow, outbound::ALLOW);
        }
        match body {
            Some(b) => with_body(r, b),
            None => r,
        }
    }

    async fn transmit_caller(&mut self) {
        while let Some(r) = self.server.poll_transmit() {
            if let Err(e) = self.ctx.endpoint.respond(self.inv_tx, r).await {
                tracing::debug!(call = %self.id, error = %e, "could not send a response to the caller");
            }
        }
    }

    async fn answer_caller(&mut self, ok: Response) {
        match Dialog::uas(&self.invite, &self.local_tag, 1) {
            Ok(d) => self.dialog = Some(d),
            Err(e) => {
                tracing::debug!(call = %self.id, error = %e, "the caller's INVITE makes no dialog")
            }
        }
        if let Err(e) = self.server.respond(Instant::now(), ok) {
            tracing::debug!(call = %self.id, error = %e, "could not answer the caller");
        }
        self.transmit_caller().await;
        self.final_sent = true;
        self.state = AnswerState::Answered;
        self.answered_ms = Some(now_ms());
        self.answered_at = Some(Instant::now());
        self.ctx.set_answered(&self.id);
    }

    async fn final_to_caller(&mut self, response: Response) {
        if self.final_sent {
            return;
        }
        self.final_sent = true;
        if let Err(e) = self.server.respond(Instant::now(), response) {
            tracing::debug!(call = %self.id, error = %e, "could not send the caller's final response");
        }
        self.transmit_caller().await;
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Request { tx, request, flow } => self.request(tx, request, flow).await,
            Input::Ack(ack) => {
                if self.server.receive_ack(&ack) {
                    // The caller's ACK may carry the answer a leg's 2xx waits for.
                    if let Some(id) = self.bridged
                        && self.leg(id).is_some_and(|l| l.ack_waits_for_caller)
                    {
                        if let Some(leg) = self.leg_mut(id) {
                            leg.ack_waits_for_caller = false;
                        }
                        let body = (!ack.body().is_empty())
                            .then(|| (content_type(ack.headers()), ack.body().clone()));
                        self.ack_leg_answer(id, body).await;
                    }
                } else if let Some((from, peer, seq)) = self.late_ack
                    && self.side_of(&ack) == Some(from)
                {
                    // The ACK of a relayed re-INVITE's 2xx (late offer): pass its answer on.
                    self.late_ack = None;
                    let body = (!ack.body().is_empty())
                        .then(|| (content_type(ack.headers()), ack.body().clone()));
                    self.ack_seq(peer, seq, body).await;
                }
            }
            Input::Cancelled => {
                if !self.final_sent {
                    self.end(CallEnd::Caller, "caller", Some(SipStatus::code(487)))
                        .await;
                }
            }
            Input::Stray(r) => {
                let tag = r
                    .core()
                    .and_then(|c| c.from().tag().map(Bytes::copy_from_slice));
                let id = self
                    .legs
                    .iter()
                    .find(|l| Some(l.tag.as_bytes()) == tag.as_deref())
                    .map(|l| l.info.id);
                if let Some(id) = id {
                    self.leg_response(id, r).await;
                }
            }
            Input::HangUp(why) => {
                let status = (!self.final_sent).then(|| SipStatus::new(503, "Service Unavailable"));
                self.end(CallEnd::Switch(why.into()), "switch", status)
                    .await;
            }
        }
    }

    /// ACKs a leg's first 2xx, with the answer the caller's ACK carried (late offer).
    async fn ack_leg_answer(&mut self, id: LegId, body: Option<(Bytes, Bytes)>) {
        let Some(flow) = self.leg(id).map(|l| l.flow) else {
            return;
        };
        let local = self.ctx.local_address(flow.transport, flow.remote);
        let Some(leg) = self.leg_mut(id) else { return };
        let Some(dialog) = leg.dialog.clone() else {
            return;
        };
        let via = Bytes::from(outbound::via(leg.flow.transport, local, &random_hex()));
        match leg.client.ack(&dialog, via, body) {
            Ok(ack) => {
                let flow = leg.flow;
                let _ = self.ctx.endpoint.send_stateless(ack, flow).await;
            }
            Err(e) => tracing::debug!(call = %self.id, error = %e, "could not ACK a leg"),
        }
    }

    /// ACKs the 2xx to our re-INVITE with CSeq `seq` in a side's dialog.
    async fn ack_seq(&mut self, side: Side, seq: u32, body: Option<(Bytes, Bytes)>) {
        let Some(flow) = self.flow_of(side) else {
            return;
        };
        let local = self.ctx.local_address(flow.transport, flow.remote);
        let via = Bytes::from(outbound::via(flow.transport, local, &random_hex()));
        let ack = match side {
            Side::Caller => self.dialog.as_ref().map(|d| d.ack(seq, via, body)),
            Side::Leg(id) => self
                .leg(id)
                .and_then(|l| l.dialog.as_ref())
                .map(|d| d.ack(seq, via, body)),
        };
        if let Some(Ok(ack)) = ack {
            let _ = self.ctx.endpoint.send_stateless(ack, flow).await;
        }
    }

    /// ACKs a 2xx: a leg's first answer (through its INVITE core, which keeps the ACK for
    /// retransmissions) or a re-INVITE's answer.
    async fn ack_in_dialog(&mut self, side: Side, r: &Response, body: Option<(Bytes, Bytes)>) {
        let Some(core) = r.core() else { return };
        let seq = core.cseq().seq;
        if let Side::Leg(id) = side
            && self
                .leg(id)
                .is_some_and(|l| l.cseq == seq && l.state != LegState::Answered)
        {
            return self.ack_leg_answer(id, body).await;
        }
        self.ack_seq(side, seq, body).await;
    }

    /// Which side a request inside the call came from.
    fn side_of(&self, request: &Request) -> Option<Side> {
        let tag = request.to().tag()?;
        if tag == self.local_tag.as_bytes() {
            return Some(Side::Caller);
        }
        self.legs
            .iter()
            .find(|l| l.tag.as_bytes() == tag)
            .map(|l| Side::Leg(l.info.id))
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.dialog.as_mut(),
            Side::Leg(id) => self.leg_mut(id)?.dialog.as_mut(),
        }
    }

    fn flow_of(&self, side: Side) -> Option<Flow> {
        match side {
            Side::Caller => Some(self.flow),
            Side::Leg(id) => self.leg(id).map(|l| l.flow),
        }
    }

    /// A request inside one of the call's dialogs.
    async fn request(&mut self, tx: TxId, request: Request, _flow: Flow) {
        let Some(side) = self.side_of(&request) else {
            let r = request.reply(481, reason_of(481), None);
            let _ = self.ctx.endpoint.respond(tx, r).await;
            return;
        };
        let checked = match self.dialog_mut(side) {
            Some(d) => d.receive_request(&request).map_err(|e| refusal_status(&e)),
            // The dialog is not made yet (a request racing the 2xx).
            None => Err(481),
        };
        if let Err(code) = checked {
            let r = request.reply(code, reason_of(code), None);
            let _ = self.ctx.endpoint.respond(tx, r).await;
            return;
        }
        match request.method() {
            Method::Bye => {
                let r = request.reply(200, "OK", None);
                let _ = self.ctx.endpoint.respond(tx, r).await;
                match side {
                    Side::Caller => {
                        self.end(CallEnd::Caller, "caller", None).await;
                    }
                    Side::Leg(id) => {
                        let was_bridged = self.bridged == Some(id);
                        if let Some(leg) = self.leg_mut(id) {
                            leg.state = LegState::Ended;
                        }
                        if was_bridged {
                            self.bridged = None;
                        }
                        self.leg_ended(id, LegEnd::HungUp, SipStatus::code(200), true);
                        if was_bridged {
                            // The bridge ended: the dial is over.
                            self.callee_hung_up = true;
                            self.complete_dial(Some(id));
                        }
                    }
                }
            }
            Method::Prack if side == Side::Caller => {
                let r = self.server.receive_prack(Instant::now(), &request);
                let _ = self.ctx.endpoint.respond(tx, r).await;
                self.transmit_caller().await;
            }
            Method::Invite | Method::Update | Method::Info => {
                // Passed across the bridge; its answer comes back the same way.
                let Some(peer) = self.peer_of(side) else {
                    let code = if *request.method() == Method::Invite {
                        488
                    } else {
                        481
                    };
                    let r = request.reply(code, reason_of(code), None);
                    let _ = self.ctx.endpoint.respond(tx, r).await;
                    if *request.method() == Method::Invite
                        && let Some(d) = self.dialog_mut(side)
                    {
                        d.answered_invite();
                    }
                    return;
                };
                let body = (!request.body().is_empty())
                    .then(|| (content_type(request.headers()), request.body().clone()));
                let with_offer = body.is_some();
                let method = request.method().clone();
                match self.send_in_dialog(peer, method, body).await {
                    Some(out) => {
                        self.outgoing.insert(
                            out,
                            Outgoing::Relay {
                                from: side,
                                server: tx,
                                reinvite_with_offer: with_offer,
                            },
                        );
                        self.requests.insert(tx, request);
                    }
                    None => {
                        let r = request.reply(500, reason_of(500), None);
                        let _ = self.ctx.endpoint.respond(tx, r).await;
                    }
                }
            }
            _ => {
                let r = request.reply(405, "Method Not Allowed", None);
                let _ = self.ctx.endpoint.respond(tx, r).await;
            }
        }
    }

    /// Sends a new request in the dialog of `side`, its events coming to this call.
    async fn send_in_dialog(
        &mut self,
        side: Side,
        method: Method,
        body: Option<(Bytes, Bytes)>,
    ) -> Option<TxId> {
        let flow = self.flow_of(side)?;
        let local = self.ctx.local_address(flow.transport, flow.remote);
        let via = Bytes::from(outbound::via(flow.transport, local, &random_hex()));
        let contact = matches!(method, Method::Invite | Method::Update)
            .then(|| Bytes::from(outbound::contact(flow.transport, local)));
        let request = self
            .dialog_mut(side)?
            .request(method, via, contact, body)
            .ok()?;
        self.ctx
            .endpoint
            .request_into(request, flow, self.sink.clone())
            .await
            .ok()
    }

    /// Sends BYE on a side's dialog.
    async fn bye(&mut self, side: Side) {
        if let Some(tx) = self.send_in_dialog(side, Method::Bye, None).await {
            self.outgoing.insert(tx, Outgoing::Ours);
        }
    }

    /// Passes a relayed request's final response back to the side that sent it.
    async fn relay_response(&mut self, from: Side, server: TxId, r: &Response) {
        let Some(request) = self.requests.remove(&server) else {
            return;
        };
        let tag = match from {
            Side::Caller => None,
            Side::Leg(_) => None,
        };
        let mut out = request.reply(r.status, &String::from_utf8_lossy(&r.reason), tag);
        if (200..300).contains(&r.status) && *request.method() != Method::Info {
            let flow = self.flow_of(from).unwrap_or(self.flow);
            let local = self.ctx.local_address(flow.transport, flow.remote);
            out.headers_mut().push(
                HeaderName::Contact,
                outbound::contact(flow.transport, local),
            );
        }
        if !r.body.is_empty() {
            out.headers_mut()
                .push(HeaderName::ContentType, content_type(r.headers()));
            out = with_body(out, r.body.clone());
        }
        if *request.method() == Method::Invite
            && let Some(d) = self.dialog_mut(from)
        {
            d.answered_invite();
        }
        let _ = self.ctx.endpoint.respond(server, out).await;
    }

    /// Ends the call: every leg still up is cancelled or hung up, the caller gets its final
    /// response (`status`, for a call not yet answered) or a BYE, and the plugin hears
    /// `hangup`.
    async fn end(&mut self, by: CallEnd, label: &'static str, status: Option<SipStatus>) {
        if self.ending.is_some() {
            return;
        }
        let mut legs = Vec::new();
        for id in self.alive_legs() {
            let answered = self.leg(id).is_some_and(|l| l.state == LegState::Answered);
            let (end, st) = if answered {
                (LegEnd::Dropped, SipStatus::code(200))
            } else {
                (LegEnd::Cancelled, SipStatus::code(487))
            };
            self.stop_leg(id, end, st, false).await;
            if let Some(leg) = self.leg(id) {
                legs.push(LegResult {
                    leg: leg.info.clone(),
                    status: SipStatus::code(if answered { 200 } else { 487 }),
                    end,
                    duration_ms: leg.answered_at.map_or(0, |a| {
                        u32::try_from(a.elapsed().as_millis()).unwrap_or(u32::MAX)
                    }),
                });
            }
        }
        let final_status = if self.final_sent {
            None
        } else {
            let st = status.unwrap_or_else(|| SipStatus::code(480));
            let reason = st
                .reason
                .clone()
                .unwrap_or_else(|| reason_of(st.code).to_owned());
            let r = self.caller_response(st.code, &reason, None);
            self.final_to_caller(r).await;
            Some(st)
        };
        if self.state == AnswerState::Answered && !matches!(by, CallEnd::Caller) {
            self.bye(Side::Caller).await;
        }
        let ended_by = if self.callee_hung_up && matches!(by, CallEnd::Idle) {
            "callee"
        } else {
            label
        };
        self.ending = Some(Ending {
            by: by.clone(),
            label: ended_by,
            status: final_status.clone(),
        });
        let hangup = HangupInfo {
            ended_by: by,
            status: final_status,
            duration_ms: self.answered_at.map_or(0, |a| {
                u32::try_from(a.elapsed().as_millis()).unwrap_or(u32::MAX)
            }),
            legs,
            recordings: Vec::new(),
        };
        let decided = self
            .session
            .on_event(&CallEvent::Hangup(hangup), self.state)
            .await;
        if let Some(e) = decided.failure {
            tracing::debug!(call = %self.id, error = %e, "the plugin failed on hangup");
        }
    }

    /// The call is over: its CDR, and it leaves the dispatcher's maps.
    async fn finish(&mut self) {
        self.ctx.cdrs.record(self.cdr(CdrState::Ended));
        self.ctx.remove_dialog(self.local_tag.as_bytes());
        for leg in &self.legs {
            self.ctx.remove_dialog(leg.tag.as_bytes());
        }
        self.ctx.finished(&self.id, self.inv_tx);
        tracing::debug!(call = %self.id, ended_by = ?self.ending.as_ref().map(|e| e.label), "call ended");
    }

    async fn respond_side(&mut self, _side: Side, tx: TxId, code: u16, reason: &str) {
        let Some(request) = self.requests.remove(&tx) else {
            return;
        };
        let r = request.reply(code, reason, None);
        let _ = self.ctx.endpoint.respond(tx, r).await;
    }
}

/// The status that refuses a request the dialog would not take (RFC 3261 sections 12.2.2
/// and 14.2).
fn refusal_status(e: &DialogError) -> u16 {
    match e {
        DialogError::Glare => 491,
        DialogError::OutOfOrder | DialogError::InviteInProgress => 500,
        DialogError::Mismatch => 481,
        _ => 400,
    }
}

fn with_body(mut r: Response, body: Bytes) -> Response {
    r.headers_mut()
        .set(HeaderName::ContentLength, body.len().to_string());
    r.body = body;
    r
}

/// Sends (or, after a challenge, sends again) a leg's INVITE; the leg's INVITE core starts
/// over with it.
async fn send_invite(
    ctx: &Inner,
    sink: &ClientSink,
    caller_invite: &Request,
    leg: &mut Leg,
    authorization: Option<(&str, &str)>,
) -> Result<TxId, ()> {
    leg.cseq += 1;
    let local = ctx.local_address(leg.flow.transport, leg.flow.remote);
    let content_type = content_type(caller_invite.headers());
    let branch = random_hex();
    let parts = outbound::InviteParts {
        uri: &leg.dest.uri,
        transport: leg.flow.transport,
        local,
        branch: &branch,
        call_id: &leg.call_id,
        tag: &leg.tag,
        presented: &leg.presented,
        max_forwards: leg.max_forwards,
        headers: &leg.headers,
        authorization,
        cseq: leg.cseq,
        body: Some((&content_type, caller_invite.body())),
    };
    let Some(request) = outbound::invite(&parts) else {
        tracing::warn!(target = %leg.info.target, "could not build a valid INVITE for a leg");
        return Err(());
    };
    leg.client = InviteClient::new(request.clone());
    match ctx
        .endpoint
        .request_into(request, leg.flow, sink.clone())
        .await
    {
        Ok(tx) => {
            leg.tx = tx;
            Ok(tx)
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not send a leg's INVITE");
            Err(())
        }
    }
}
