//! Calls: the B2BUA that carries every call through the tenant's router plugin.
//!
//! One task ([`Calls::run`]) takes the SIP endpoint's events and hands each to its owner: a
//! new INVITE becomes a call (after the checks below), a request inside a dialog goes to the
//! call that owns the dialog, REGISTER goes to the registrar. Each call is a task of its own
//! ([`call`]) that holds the caller's leg, the outbound legs and the plugin session, so a slow
//! plugin, a slow DNS answer or a slow leg delays only its own call: the dispatcher never
//! awaits anything but the endpoint's event queue and the call's mailbox (with `try_send`).
//!
//! Who owns a new call is read from the in-memory [`Directory`] (DIDs, trunks, tenants' limits
//! and fallback), reloaded when the store's directory version moves: matching a call costs no
//! database query. A call the switch will not carry gets its final response at once and a log
//! line, and costs no plugin call:
//!
//! - the host is draining or at its global cap: `503` with `Retry-After`;
//! - the called number is no tenant's DID: `404`;
//! - the source is none of the owning tenant's trunks: `403`;
//! - the tenant is at its cap of concurrent calls or calls per second: `503` with
//!   `Retry-After`.
//!
//! Every call writes one CDR: a `running` record when it starts and the final one when it
//! ends, through the batching [`CdrWriter`] (never awaited on the call path).

mod call;
mod limits;
mod outbound;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use wasmswitch_sip::Method;
use wasmswitch_sip::dns::Resolver;
use wasmswitch_sip::endpoint::Endpoint;
use wasmswitch_sip::header::HeaderName;
use wasmswitch_sip::message::{Request, Response};
use wasmswitch_sip::transaction::{Event as SipEvent, Flow, FlowTransport, Timers, TxId};

use crate::plugins::Registry;
use crate::registrar::Registrar;
use crate::store::{CdrWriter, Directory, Store};
use crate::trunks::Bound;

pub(crate) use call::Input;
use limits::Limiter;

/// Settings of the calls layer (`[calls]` in the configuration).
#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// This host's id, written into each CDR it starts, so a restart finds its own calls that
    /// were cut off.
    pub host_id: String,
    /// The most calls this host carries at once; a new one past it gets `503`.
    pub max_calls: u32,
    /// A tenant's cap of concurrent calls when the tenant has none of its own.
    pub tenant_max_calls: u32,
    /// A tenant's cap of new calls per second when the tenant has none of its own.
    pub tenant_calls_per_second: u32,
    /// On shutdown, how long running calls may go on before they are ended.
    pub drain: Duration,
    /// The address the far ends should reach the switch at (Via, Contact), if not the bound
    /// one.
    pub public: Option<SocketAddr>,
    /// The addresses SIP is bound to.
    pub bound: Bound,
    /// How often the directory version is read (for changes made through another host).
    pub directory_poll: Duration,
    /// The SIP timers (T1, T2) the endpoint runs with: the caller's 2xx is retransmitted on
    /// them.
    pub timers: Timers,
}

/// A live call, as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    /// The switch's id for the call (also its CDR's id).
    pub id: String,
    pub tenant: String,
    pub from: String,
    pub to: String,
    /// The trunk the call came in on, if any.
    pub trunk: Option<String>,
    /// `ringing` or `answered`.
    pub state: &'static str,
    /// When the call arrived, in milliseconds since the Unix epoch.
    pub started_at: i64,
}

/// One live call's entry: what the API lists and how to reach the call's task.
#[derive(Debug)]
struct Entry {
    info: LiveCall,
    mailbox: mpsc::Sender<Input>,
}

/// The calls layer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: CallsConfig,
    pub(crate) endpoint: Endpoint,
    pub(crate) registry: Arc<Registry>,
    pub(crate) store: Store,
    pub(crate) cdrs: CdrWriter,
    pub(crate) resolver: Resolver,
    pub(crate) directory: ArcSwap<Directory>,
    /// Held while a directory is put in force ([`Calls::install`]).
    installing: Mutex<()>,
    /// Dialogs by our tag (the To tag of the caller's leg, the From tag of an outbound leg):
    /// where requests inside them, ACKs and stray responses go.
    dialogs: Mutex<HashMap<Bytes, mpsc::Sender<Input>>>,
    /// Callers' INVITE server transactions, for their CANCEL.
    invites: Mutex<HashMap<TxId, mpsc::Sender<Input>>>,
    calls: Mutex<HashMap<String, Entry>>,
    limiter: Limiter,
    draining: AtomicBool,
    /// Tells calls' tasks that the drain time is over: end now.
    pub(crate) stop: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Calls {
    /// The calls layer, with the directory as the store has it now.
    pub async fn new(
        config: CallsConfig,
        endpoint: Endpoint,
        registry: Arc<Registry>,
        store: Store,
        cdrs: CdrWriter,
        resolver: Resolver,
    ) -> Result<Calls, crate::store::StoreError> {
        let directory = store.load_directory().await?;
        let calls = Calls {
            inner: Arc::new(Inner {
                limiter: Limiter::new(config.max_calls),
                config,
                endpoint,
                registry,
                store,
                cdrs,
                resolver,
                directory: ArcSwap::from_pointee(Directory::default()),
                installing: Mutex::new(()),
                dialogs: Mutex::default(),
                invites: Mutex::default(),
                calls: Mutex::default(),
                draining: AtomicBool::new(false),
                stop: watch::channel(false).0,
            }),
        };
        calls.install(directory);
        Ok(calls)
    }

    /// Puts a freshly loaded directory in force, with the tenants' fallbacks, unless a newer
    /// one is in force already: two reloads can cross (the poll's and the API's after a
    /// write), and the slower must not put an older snapshot back.
    fn install(&self, directory: Directory) -> bool {
        let _one_at_a_time = lock(&self.inner.installing);
        let current = self.inner.directory.load();
        if current.version() >= directory.version() && current.version() > 0 {
            return false;
        }
        for tenant in directory.tenants() {
            self.inner
                .registry
                .set_fallback(&tenant.id, call::fallback_of(&tenant.fallback));
        }
        self.inner.directory.store(Arc::new(directory));
        true
    }

    /// Reloads the directory if the store's version moved (a DID, trunk or tenant setting
    /// changed, here or through another host). The API calls this after its own writes; a
    /// task calls it every [`CallsConfig::directory_poll`].
    pub async fn refresh(&self) -> Result<bool, crate::store::StoreError> {
        let version = self.inner.store.directory_version().await?;
        if version <= self.inner.directory.load().version() {
            return Ok(false);
        }
        let directory = self.inner.store.load_directory().await?;
        Ok(self.install(directory))
    }

    /// Keeps the directory fresh until `stopped`.
    pub async fn poll_directory(self, mut stopped: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.inner.config.directory_poll);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = self.refresh().await {
                        tracing::warn!(error = %e, "could not reload the call directory");
                    }
                }
                _ = stopped.changed() => return,
            }
        }
    }

    /// The live calls, of one tenant or of all.
    pub fn live(&self, tenant: Option<&str>) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = lock(&self.inner.calls)
            .values()
            .filter(|e| tenant.is_none_or(|t| e.info.tenant == t))
            .map(|e| e.info.clone())
            .collect();
        calls.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        calls
    }

    /// How many calls are up, in all.
    pub fn count(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// Ends a live call of `tenant` (BYE to the answered legs, a final response to a caller
    /// still ringing). False when there is no such call.
    pub fn hang_up(&self, tenant: &str, id: &str) -> bool {
        let calls = lock(&self.inner.calls);
        match calls.get(id) {
            Some(e) if e.info.tenant == tenant => {
                let _ = e.mailbox.try_send(Input::HangUp("api"));
                true
            }
            _ => false,
        }
    }

    /// Stops taking new calls (OPTIONS is answered 503, a new INVITE too), lets the running
    /// ones go on for up to the drain time, then ends the rest (BYE, final responses, CDRs)
    /// and returns once every call's task has finished and its CDR is written.
    pub async fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        let _ = self.inner.endpoint.set_draining(true).await;
        let running = self.count();
        if running > 0 {
            tracing::info!(calls = running, drain = ?self.inner.config.drain, "draining: no new calls; waiting for the running ones");
        }
        let deadline = tokio::time::Instant::now() + self.inner.config.drain;
        while self.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.count();
        if left > 0 {
            tracing::info!(calls = left, "drain time over: ending the calls still up");
            let _ = self.inner.stop.send(true);
            // Each call sends its BYEs and final responses and writes its CDR; give them the
            // time a BYE's transaction takes to go out, not to finish.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.inner.cdrs.flush().await;
    }

    /// Hands the endpoint's events to their owners until the endpoint stops.
    pub async fn run(self, registrar: Arc<Registrar>, mut events: mpsc::Receiver<SipEvent>) {
        while let Some(event) = events.recv().await {
            self.event(&registrar, event);
        }
    }

    fn event(&self, registrar: &Arc<Registrar>, event: SipEvent) {
        match event {
            SipEvent::Request { tx, request, flow } => {
                if *request.method() == Method::Register {
                    registrar.handle(&self.inner.endpoint, tx, request, flow);
                } else if request.to().tag().is_some() {
                    self.in_dialog(tx, request, flow);
                } else if *request.method() == Method::Invite {
                    self.incoming(tx, request, flow);
                } else {
                    // Out of dialog and not a call: nothing here takes MESSAGE, SUBSCRIBE or
                    // REFER outside a dialog yet.
                    let status = match request.method() {
                        Method::Bye
                        | Method::Cancel
                        | Method::Prack
                        | Method::Update
                        | Method::Info => (481, "Call/Transaction Does Not Exist"),
                        _ => (405, "Method Not Allowed"),
                    };
                    self.reply(tx, &request, status.0, status.1, &[]);
                }
            }
            SipEvent::Ack { request, .. } => {
                if let Some(mailbox) = self.dialog(request.to().tag()) {
                    let _ = mailbox.try_send(Input::Ack(request));
                }
            }
            SipEvent::Cancelled { tx } => {
                let mailbox = lock(&self.inner.invites).get(&tx).cloned();
                if let Some(mailbox) = mailbox {
                    let _ = mailbox.try_send(Input::Cancelled);
                }
            }
            SipEvent::Stray { response } => {
                let tag = response.core().and_then(|c| c.from().tag());
                if let Some(mailbox) = self.dialog(tag) {
                    let _ = mailbox.try_send(Input::Stray(response));
                }
            }
            SipEvent::Terminated { tx } => {
                lock(&self.inner.invites).remove(&tx);
            }
            _ => {}
        }
    }

    fn dialog(&self, tag: Option<&[u8]>) -> Option<mpsc::Sender<Input>> {
        let tag = tag?;
        lock(&self.inner.dialogs).get(tag).cloned()
    }

    fn in_dialog(&self, tx: TxId, request: Request, flow: Flow) {
        match self.dialog(request.to().tag()) {
            Some(mailbox) => {
                if let Err(mpsc::error::TrySendError::Full(Input::Request {
                    tx, request, ..
                })) = mailbox.try_send(Input::Request { tx, request, flow })
                {
                    metrics::counter!("calls_mailbox_full_total").increment(1);
                    self.reply(
                        tx,
                        &request,
                        503,
                        "Service Unavailable",
                        &[("Retry-After", "1")],
                    );
                }
            }
            None => {
                if *request.method() != Method::Ack {
                    self.reply(tx, &request, 481, "Call/Transaction Does Not Exist", &[]);
                }
            }
        }
    }

    /// Answers a request the calls layer will not take, at once and in a task of its own.
    fn reply(
        &self,
        tx: TxId,
        request: &Request,
        status: u16,
        reason: &str,
        extra: &[(&str, &str)],
    ) {
        let tag = request.stateless_tag();
        let mut response: Response = request.reply(status, reason, Some(&tag));
        for (name, value) in extra {
            response
                .headers_mut()
                .push(HeaderName::from_bytes(name.as_bytes()), value.to_string());
        }
        let endpoint = self.inner.endpoint.clone();
        tokio::spawn(async move {
            if let Err(e) = endpoint.respond(tx, response).await {
                tracing::debug!(error = %e, "could not answer a SIP request");
            }
        });
    }

    /// A new INVITE: whose call it is, whether it may start, and its task.
    fn incoming(&self, tx: TxId, request: Request, flow: Flow) {
        let refuse = |status: u16, reason: &str, why: &'static str, extra: &[(&str, &str)]| {
            metrics::counter!("calls_refused_total", "reason" => why).increment(1);
            tracing::info!(
                call_id = %String::from_utf8_lossy(request.call_id()),
                source = %flow.remote,
                to = %String::from_utf8_lossy(request.uri().as_bytes()),
                status,
                why,
                "refused a call"
            );
            self.reply(tx, &request, status, reason, extra);
        };
        if self.inner.draining.load(Ordering::Relaxed) {
            return refuse(
                503,
                "Service Unavailable",
                "draining",
                &[("Retry-After", "30")],
            );
        }
        let directory = self.inner.directory.load();
        let called = request
            .uri()
            .as_sip()
            .and_then(|u| u.user_unescaped())
            .and_then(|u| String::from_utf8(u).ok())
            .unwrap_or_default();
        let Some(tenant) = directory.owner_of(&called) else {
            return refuse(404, "Not Found", "unknown-number", &[]);
        };
        let Some(trunk) = directory.trunk_for_source(tenant, flow.remote.ip()) else {
            return refuse(403, "Forbidden", "unknown-source", &[]);
        };
        let Some(settings) = directory.tenant(tenant) else {
            return refuse(404, "Not Found", "unknown-number", &[]);
        };
        let caps = limits::Caps {
            tenant_calls: settings
                .max_calls
                .unwrap_or(self.inner.config.tenant_max_calls),
            tenant_per_second: settings
                .max_calls_per_second
                .unwrap_or(self.inner.config.tenant_calls_per_second),
        };
        let permit = match self.inner.limiter.admit(tenant, caps) {
            Ok(p) => p,
            Err(over) => {
                return refuse(
                    503,
                    "Service Unavailable",
                    over.label(),
                    &[("Retry-After", over.retry_after())],
                );
            }
        };
        let (mailbox, inputs) = mpsc::channel(64);
        let start = call::Start {
            tx,
            invite: request,
            flow,
            tenant: tenant.to_owned(),
            trunk: trunk.clone(),
            called,
        };
        let call = call::Call::new(self.inner.clone(), start, mailbox.clone(), permit);
        let id = call.id().to_owned();
        lock(&self.inner.invites).insert(tx, mailbox.clone());
        lock(&self.inner.calls).insert(
            id.clone(),
            Entry {
                info: call.live(),
                mailbox,
            },
        );
        metrics::counter!("calls_total", "tenant" => tenant.to_owned()).increment(1);
        tokio::spawn(call.run(inputs));
    }
}

impl Inner {
    /// Routes requests inside the dialog with our tag `tag` to a call.
    pub(crate) fn add_dialog(&self, tag: Bytes, mailbox: mpsc::Sender<Input>) {
        lock(&self.dialogs).insert(tag, mailbox);
    }

    pub(crate) fn remove_dialog(&self, tag: &[u8]) {
        lock(&self.dialogs).remove(tag);
    }

    /// The call has ended: it leaves the live list.
    pub(crate) fn finished(&self, id: &str, invite: TxId) {
        lock(&self.calls).remove(id);
        lock(&self.invites).remove(&invite);
    }

    pub(crate) fn set_answered(&self, id: &str) {
        if let Some(e) = lock(&self.calls).get_mut(id) {
            e.info.state = "answered";
        }
    }

    /// Where the far end should reach the switch over `transport` when talking to `remote`.
    pub(crate) fn local_address(&self, transport: FlowTransport, remote: SocketAddr) -> SocketAddr {
        crate::trunks::local_address_for(
            self.config.public,
            self.config.bound,
            transport.into(),
            remote,
        )
    }
}
