//! Per-call state: a fresh `Store` and instance for each call (or message), kept for the call's
//! life, with its deadline and memory cap, and the host side of the plugin imports.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{AdapterV0_1, Contract, Guests, InterfaceV0_1};
use crate::error::PluginError;
use crate::kv::KvStore;
use crate::model::{self, Action, CallEvent, DeliveryReport, Invalid, Message, SmsDecision, v0_1};
use crate::runtime::{Capability, Function, PluginVersion, TenantSlot};

/// A call handler's answer to one event ([`CallInstance::on_event`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The actions to carry out, in order: all of them, or those before `invalid`.
    pub actions: Vec<Action>,
    /// The first action that breaks the contract's rules, and why; the calls layer fails it
    /// with `action-failed` (`invalid`) after running `actions`, and drops the rest.
    pub invalid: Option<(Action, Invalid)>,
}

impl Answer {
    fn all(actions: Vec<Action>) -> Self {
        Answer {
            actions,
            invalid: None,
        }
    }
}

/// The longest log line a plugin may write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;
/// The most log lines kept per instance when capturing (harness, simulate).
const MAX_CAPTURED_LINES: usize = 1000;
/// Fuel given to each call when fuel metering is on; effectively unlimited, the deadline is the
/// real bound.
const FUEL_PER_CALL: u64 = u64::MAX / 4;

/// One log line written by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub message: String,
}

/// The level of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Options for one instance.
#[derive(Clone, Default)]
pub struct InstanceOptions {
    /// Keep the plugin's log lines and counters in the instance, for the harness and the
    /// simulate endpoint (they always go to the host's log and metrics too).
    pub capture: bool,
    /// The `kv` this instance sees instead of the runtime's (the simulate endpoint's dry-run
    /// overlay). Still scoped to the plugin's tenant.
    pub kv: Option<Arc<dyn KvStore>>,
}

impl fmt::Debug for InstanceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceOptions")
            .field("capture", &self.capture)
            .field("kv", &self.kv.is_some())
            .finish()
    }
}

/// Limits memory and table growth; remembers that the cap was hit, so the resulting trap is
/// reported as out-of-memory rather than as a generic trap.
struct CallLimiter {
    max_memory: usize,
    hit: bool,
    /// Linear memory currently held by the instance, all memories together.
    used: usize,
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            // An error (rather than `Ok(false)`) traps at once: a guest that ignores a failed
            // `memory.grow` would otherwise limp on.
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes reached (wanted {desired})",
                self.max_memory
            ));
        }
        self.used += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 1M entries is far beyond any real plugin.
        Ok(desired <= 1 << 20)
    }
}

/// The store data of one plugin instance.
pub struct CallState {
    plugin: Arc<str>,
    tenant: Arc<str>,
    version: u32,
    kv: Arc<dyn KvStore>,
    limiter: CallLimiter,
    // Created on first use: most plugins never touch WASI, and building a context costs more
    // than the rest of the instance's set-up.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    captured: Option<Captured>,
    /// Whether plugin counters also go to the host's metrics.
    metrics: bool,
    /// How long the guest call now running may run (see [`arm`]), and how long it has.
    deadline: Duration,
    clock: Arc<RunClock>,
    /// For a 0.1 component, what the adapter onto the 0.2 model remembers between events.
    pub(crate) v0_1: AdapterV0_1,
}

#[derive(Debug, Default)]
struct Captured {
    logs: Vec<LogLine>,
    counters: BTreeMap<String, u64>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // No preopened directories, no environment, no arguments, no network: the default
        // context grants nothing but clocks and randomness. Stdout and stderr are discarded.
        let ctx = self.wasi.get_or_insert_with(|| WasiCtx::builder().build());
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// The host side of the plugin imports, shared by every contract version's bindings.
impl CallState {
    /// The tenant whose plugin this is (every `kv` call is scoped to it).
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The `kv` this instance sees.
    pub(crate) fn guest_kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// A log line from the guest: to the host's log, attributed, and to the capture.
    pub(crate) fn guest_log(&mut self, level: LogLevel, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let (tenant, plugin, version) = (&*self.tenant, &*self.plugin, self.version);
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "plugin", tenant, plugin, version, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "plugin", tenant, plugin, version, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "plugin", tenant, plugin, version, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "plugin", tenant, plugin, version, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "plugin", tenant, plugin, version, "{message}")
            }
        }
        if let Some(c) = &mut self.captured
            && c.logs.len() < MAX_CAPTURED_LINES
        {
            c.logs.push(LogLine { level, message });
        }
    }

    /// A counter increment from the guest.
    pub(crate) fn guest_counter_add(&mut self, name: String, delta: u64) {
        if !valid_counter_name(&name) {
            tracing::warn!(tenant = %self.tenant, plugin = %self.plugin, name, "plugin used an invalid counter name; ignored");
            return;
        }
        if self.metrics {
            metrics::counter!(
                "wasmswitch_plugin_counter_total",
                "tenant" => self.tenant.to_string(),
                "plugin" => self.plugin.to_string(),
                "name" => name.clone(),
            )
            .increment(delta);
        }
        if let Some(c) = &mut self.captured {
            *c.counters.entry(name).or_default() += delta;
        }
    }
}

fn valid_counter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One plugin instance for one call (or one message): created fresh, used for every event of
/// the call, dropped with the call. After any failure it is poisoned and every further call
/// returns [`PluginError::Poisoned`], so the caller keeps using its fallback.
pub struct CallInstance {
    version: Arc<PluginVersion>,
    store: Store<CallState>,
    guests: Guests,
    /// The tenant's instance slot, given back when the call's instance is dropped.
    _slot: TenantSlot,
    poisoned: bool,
    last_fuel: Option<u64>,
    last_elapsed: Duration,
}

impl fmt::Debug for CallInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallInstance")
            .field("plugin", &self.version.id)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// A fresh instance not yet given to a call: what the warm pool holds. It does not point back
/// at its [`PluginVersion`], so a pool never keeps a retired version alive.
pub(crate) struct Prepared {
    store: Store<CallState>,
    guests: Guests,
}

/// Fresh instances made ahead of the calls that will use them, per plugin version.
///
/// Instantiating costs tens of microseconds (a Python plugin's, milliseconds); made here, off
/// the call path, a new call only takes one. No guest code runs before the call gets the
/// instance, so it is as fresh as one made on demand. The pool fills when the version is first
/// used and refills in the background after every take, up to `target`; an idle version holds
/// none, so only versions that carry traffic cost memory.
pub(crate) struct WarmPool {
    slots: std::sync::Mutex<Vec<Prepared>>,
    refilling: std::sync::atomic::AtomicBool,
    target: usize,
}

impl WarmPool {
    pub(crate) fn new(target: usize) -> Self {
        Self {
            slots: std::sync::Mutex::new(Vec::with_capacity(target)),
            refilling: std::sync::atomic::AtomicBool::new(false),
            target,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Prepared>> {
        // Each operation is one push or pop: a poisoned lock holds no half-made change.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn target(&self) -> usize {
        self.target
    }

    /// How many instances are ready.
    pub(crate) fn ready(&self) -> usize {
        self.slots().len()
    }
}

impl PluginVersion {
    /// An instance of this version for one call: a warm one if the pool has one (production
    /// calls), else a new one. Instances that capture logs or use their own `kv` (harness,
    /// simulate) are always made new.
    pub async fn instantiate(
        self: &Arc<Self>,
        options: InstanceOptions,
    ) -> Result<CallInstance, PluginError> {
        // Counted against the tenant's cap before anything is made (and counted as an
        // `overloaded` failure when it is full, like a full pool).
        let slot = match self.runtime.tenant_slot(&self.id.tenant) {
            Ok(slot) => slot,
            Err(e) => {
                record_failure(self, "instantiate", &e);
                return Err(e);
            }
        };
        let poolable = !options.capture && options.kv.is_none() && self.warm.target > 0;
        let taken = if poolable {
            self.warm.slots().pop()
        } else {
            None
        };
        let prepared = match taken {
            Some(p) => p,
            None => self.prepare(&options).await?,
        };
        if poolable {
            self.refill();
        }
        Ok(CallInstance {
            version: self.clone(),
            store: prepared.store,
            guests: prepared.guests,
            _slot: slot,
            poisoned: false,
            last_fuel: None,
            last_elapsed: Duration::ZERO,
        })
    }

    /// Instances ready in the warm pool (for tests and metrics).
    pub fn warm_instances(&self) -> usize {
        self.warm.ready()
    }

    /// Tops the warm pool up in the background, if a refill is not already running and there
    /// is an async runtime to run it on.
    fn refill(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.warm.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.warm.refilling.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                let Some(version) = weak.upgrade() else {
                    return;
                };
                if version.warm.ready() >= version.warm.target {
                    version.warm.refilling.store(false, Ordering::Release);
                    return;
                }
                match version.prepare(&InstanceOptions::default()).await {
                    Ok(p) => version.warm.slots().push(p),
                    Err(e) => {
                        // Calls still get instances on demand (and see this error themselves).
                        tracing::warn!(plugin = %version.id, error = %e, "cannot fill the warm pool");
                        version.warm.refilling.store(false, Ordering::Release);
                        return;
                    }
                }
            }
        });
    }

    /// Creates a new instance (store, limits, instantiation, export handles).
    async fn prepare(&self, options: &InstanceOptions) -> Result<Prepared, PluginError> {
        let rt = &self.runtime.inner;
        let limits = **rt.limits.load();
        let state = CallState {
            plugin: self.id.name.clone(),
            tenant: self.id.tenant.clone(),
            version: self.id.version,
            kv: options.kv.clone().unwrap_or_else(|| rt.kv.clone()),
            limiter: CallLimiter {
                max_memory: limits.max_memory_bytes,
                hit: false,
                used: 0,
            },
            wasi: None,
            table: ResourceTable::new(),
            captured: options.capture.then(Captured::default),
            metrics: rt.config.metrics,
            deadline: limits.deadline,
            clock: Arc::new(RunClock::new()),
            v0_1: AdapterV0_1::default(),
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick a running guest hands its thread back to the async runtime, so a
        // plugin that computes for its whole deadline never holds a tokio worker that SIP, RTP
        // or another call's plugin is waiting for; past its deadline it is stopped.
        // The deadline counts the guest's own running time, not the time it waited for a
        // thread after yielding: a busy host must not use up a plugin's deadline for it.
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            Ok(if state.clock.ran() < state.deadline {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        arm(&mut store, &limits.deadline, rt.config.fuel_metering);

        let fail = |e: wasmtime::Error, store: &Store<CallState>| {
            // Running out of pool slots is not the plugin's fault: say so plainly.
            if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some()
            {
                return PluginError::Overloaded(format!("{e:#}"));
            }
            match classify(e, store, limits.deadline, limits.max_memory_bytes) {
                PluginError::Trap(msg) => PluginError::Instantiate(msg),
                other => other,
            }
        };
        let clock = store.data().clock.clone();
        let instance = match bounded(
            limits.deadline * 2,
            &clock,
            self.pre.instantiate_async(&mut store),
        )
        .await
        {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                let err = fail(e, &store);
                record_failure(self, "instantiate", &err);
                return Err(err);
            }
            Err(_) => {
                let err = PluginError::Timeout {
                    deadline: limits.deadline,
                };
                record_failure(self, "instantiate", &err);
                return Err(err);
            }
        };
        let guests = self
            .exports
            .load(&mut store, &instance)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        Ok(Prepared { store, guests })
    }
}

/// How long a guest call has run: the time spent inside polls of its future (where the guest
/// executes), not the time the future waited to be polled again after the guest yielded. Read by
/// the epoch callback on the thread running the guest, written by [`bounded`] around each poll.
#[derive(Debug)]
pub(crate) struct RunClock {
    origin: Instant,
    /// When the current poll began, in nanoseconds since `origin`; [`RunClock::IDLE`] between
    /// polls.
    poll_began: AtomicU64,
    /// Nanoseconds run in the call's earlier polls.
    ran: AtomicU64,
}

impl RunClock {
    const IDLE: u64 = u64::MAX;

    fn new() -> Self {
        Self {
            origin: Instant::now(),
            poll_began: AtomicU64::new(Self::IDLE),
            ran: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Starts a new call at zero.
    fn reset(&self) {
        self.ran.store(0, Ordering::Relaxed);
        self.poll_began.store(Self::IDLE, Ordering::Relaxed);
    }

    fn enter(&self) {
        self.poll_began.store(self.now(), Ordering::Relaxed);
    }

    fn leave(&self) {
        let began = self.poll_began.swap(Self::IDLE, Ordering::Relaxed);
        if began != Self::IDLE {
            let spent = self.now().saturating_sub(began);
            self.ran.fetch_add(spent, Ordering::Relaxed);
        }
    }

    /// The call's running time so far, the current poll included.
    fn ran(&self) -> Duration {
        let mut nanos = self.ran.load(Ordering::Relaxed);
        let began = self.poll_began.load(Ordering::Relaxed);
        if began != Self::IDLE {
            nanos = nanos.saturating_add(self.now().saturating_sub(began));
        }
        Duration::from_nanos(nanos)
    }
}

/// Runs `fut` to completion within `limit` of wall time, timing its polls on `clock`. The timer
/// is set only if `fut` has to wait (a `kv` read from the database, say): most plugin calls
/// finish in their first poll, and setting and cancelling a timer takes the timer wheel's lock
/// twice. The epoch deadline bounds guest code by its running time; this bounds everything,
/// waits in host imports included.
async fn bounded<F: Future>(
    limit: Duration,
    clock: &RunClock,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut fut = std::pin::pin!(fut);
    let timed = std::future::poll_fn(move |cx| {
        clock.enter();
        let out = fut.as_mut().poll(cx);
        clock.leave();
        out
    });
    let mut timed = std::pin::pin!(timed);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(timed.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(out) => Ok(out),
        std::task::Poll::Pending => tokio::time::timeout(limit, timed).await,
    }
}

/// Sets up the store for one guest call that may run for `deadline`: the guest is checked
/// every epoch tick (yielding each time, see the callback in `prepare`) and interrupted once the
/// deadline has passed.
fn arm(store: &mut Store<CallState>, deadline: &Duration, fuel: bool) {
    let state = store.data_mut();
    state.deadline = *deadline;
    state.clock.reset();
    store.set_epoch_deadline(1);
    if fuel {
        // Fuel is only enabled together with metering, so this cannot fail.
        let _ = store.set_fuel(FUEL_PER_CALL);
    }
}

fn classify(
    e: wasmtime::Error,
    store: &Store<CallState>,
    deadline: Duration,
    max_memory: usize,
) -> PluginError {
    if store.data().limiter.hit {
        return PluginError::OutOfMemory { limit: max_memory };
    }
    // The 0.1 adapter checks 0.1 answers with 0.1's rules as it translates them.
    if let Some(Invalid(why)) = e.downcast_ref::<Invalid>() {
        return PluginError::BadReturn(why.clone());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) | Some(Trap::OutOfFuel) => PluginError::Timeout { deadline },
        _ => PluginError::Trap(format!("{e:#}")),
    }
}

fn record_failure(version: &PluginVersion, stage: &'static str, err: &PluginError) {
    let id = &version.id;
    if let PluginError::Overloaded(_) = err {
        // Not the plugin's failure, and under a flood one line per refused call would be a
        // flood of lines: the metric below counts them.
        tracing::debug!(plugin = %id, stage, error = %err, "no plugin instance slot");
    } else {
        tracing::warn!(plugin = %id, stage, kind = err.kind(), error = %err, "plugin call failed");
    }
    if !version.runtime.inner.config.metrics {
        return;
    }
    metrics::counter!(
        "wasmswitch_plugin_failures_total",
        "tenant" => id.tenant.to_string(),
        "plugin" => id.name.to_string(),
        "version" => id.version.to_string(),
        "kind" => err.kind(),
    )
    .increment(1);
}

impl CallInstance {
    /// The plugin version this instance runs.
    pub fn version(&self) -> &Arc<PluginVersion> {
        &self.version
    }

    /// Fuel the last call used, when fuel metering is on.
    pub fn last_fuel(&self) -> Option<u64> {
        self.last_fuel
    }

    /// Wall time the last call took.
    pub fn last_elapsed(&self) -> Duration {
        self.last_elapsed
    }

    /// Linear memory the instance holds now, in bytes (all its memories together).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.used
    }

    /// Whether an earlier failure made this instance unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Log lines captured so far (with [`InstanceOptions::capture`]), oldest first.
    pub fn logs(&self) -> &[LogLine] {
        self.store
            .data()
            .captured
            .as_ref()
            .map_or(&[], |c| c.logs.as_slice())
    }

    /// Takes the captured log lines.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        self.store
            .data_mut()
            .captured
            .as_mut()
            .map(|c| std::mem::take(&mut c.logs))
            .unwrap_or_default()
    }

    /// Counters the plugin added to (with [`InstanceOptions::capture`]).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.store
            .data()
            .captured
            .as_ref()
            .map(|c| c.counters.clone())
            .unwrap_or_default()
    }

    /// Tells the call handler about an event of its call and returns what it answered.
    ///
    /// The answer to the instance's first event (`incoming`, `handed-over`) is checked whole:
    /// an invalid action in it fails the plugin ([`PluginError::BadReturn`], the tenant's
    /// fallback). In the answer to a later event the actions before the first invalid one are
    /// kept, and that one is returned in [`Answer::invalid`] for the calls layer to fail with
    /// `action-failed` (`invalid`) when it reaches it. 0.1 plugins are checked by 0.1's rules
    /// as before: anything invalid fails the plugin.
    pub async fn on_event(&mut self, event: &CallEvent) -> Result<Answer, PluginError> {
        let guests = self.guests(Capability::Calls)?;
        let mut actions = self
            .run(Function::OnEvent, async |store| {
                guests.on_event(store, event).await
            })
            .await?;
        if self.version.target.contract == Contract::V0_1 {
            // Checked by 0.1's rules as the adapter made it, and here by what the switch
            // relies on: a failure of the plugin either way, as 0.1 had it.
            return self.checked(Function::OnEvent, Answer::all(actions), |a| {
                model::check_from_v0_1(&a.actions)
            });
        }
        let invalid = match Action::check_answer(&actions) {
            Ok(()) => None,
            Err((_, why)) if event.is_first() => {
                return self.checked(Function::OnEvent, Answer::all(actions), |_| Err(why));
            }
            Err((at, why)) => {
                // The actions from `at` on are not carried out: the first is failed, the rest
                // dropped.
                let action = actions.split_off(at).into_iter().next();
                if let Some(action) = &action {
                    tracing::debug!(plugin = %self.version.id, action = action.name(), %why, "invalid action");
                }
                action.map(|a| (a, why))
            }
        };
        self.checked(Function::OnEvent, Answer { actions, invalid }, |_| Ok(()))
    }

    /// Asks the messaging policy about one message.
    pub async fn on_message(&mut self, msg: &Message) -> Result<SmsDecision, PluginError> {
        let guests = self.guests(Capability::Messaging)?;
        let out = self
            .run(Function::OnMessage, async |store| {
                guests.on_message(store, msg).await
            })
            .await?;
        if self.version.target.contract == Contract::V0_1 {
            // Checked by 0.1's rules in the adapter, as it always was.
            return self.checked(Function::OnMessage, out, |_| Ok(()));
        }
        self.checked(Function::OnMessage, out, SmsDecision::check)
    }

    /// Tells the messaging policy how a message it let through turned out (nothing for a 0.1
    /// policy, which has no such function).
    pub async fn on_delivery(&mut self, report: &DeliveryReport) -> Result<(), PluginError> {
        let guests = self.guests(Capability::Messaging)?;
        self.run(Function::OnDelivery, async |store| {
            guests.on_delivery(store, report).await
        })
        .await?;
        self.checked(Function::OnDelivery, (), |_| Ok(()))
    }

    // ---- contract 0.1's own functions ------------------------------------------------------
    //
    // A 0.1 plugin, asked in 0.1's vocabulary and answering in it, checked by 0.1's rules: what
    // 0.1 scenario files and the simulate endpoint's `call` and `ivr` requests use, so their
    // results stay what they were. Other components fail with `NotExported`.

    /// 0.1 `call-routing.route`.
    pub async fn route_v0_1(
        &mut self,
        call: &v0_1::CallInfo,
    ) -> Result<v0_1::RouteDecision, PluginError> {
        let guests = self.guests_v0_1(InterfaceV0_1::CallRouting)?;
        let out = self
            .run(Function::Route, async |store| {
                guests.route_v0_1(store, call).await
            })
            .await?;
        self.checked(Function::Route, out, v0_1::RouteDecision::validate)
    }

    /// 0.1 `call-routing.on-call-event`.
    pub async fn on_call_event_v0_1(
        &mut self,
        event: &v0_1::CallEvent,
    ) -> Result<Vec<v0_1::CallAction>, PluginError> {
        let guests = self.guests_v0_1(InterfaceV0_1::CallRouting)?;
        let out = self
            .run(Function::OnCallEvent, async |store| {
                guests.on_call_event_v0_1(store, event).await
            })
            .await?;
        self.checked(Function::OnCallEvent, out, |a| {
            a.iter().try_for_each(v0_1::CallAction::validate)
        })
    }

    /// 0.1 `ivr-flow.on-event`.
    pub async fn on_ivr_event_v0_1(
        &mut self,
        event: &v0_1::IvrEvent,
    ) -> Result<Vec<v0_1::IvrAction>, PluginError> {
        let guests = self.guests_v0_1(InterfaceV0_1::IvrFlow)?;
        let out = self
            .run(Function::OnIvrEvent, async |store| {
                guests.on_ivr_event_v0_1(store, event).await
            })
            .await?;
        self.checked(Function::OnIvrEvent, out, |a| {
            v0_1::IvrAction::validate_all(a)
        })
    }

    /// 0.1 `message-policy.on-message`.
    pub async fn on_message_v0_1(
        &mut self,
        msg: &v0_1::Message,
    ) -> Result<v0_1::SmsDecision, PluginError> {
        let guests = self.guests_v0_1(InterfaceV0_1::MessagePolicy)?;
        let out = self
            .run(Function::OnMessage, async |store| {
                guests.on_message_v0_1(store, msg).await
            })
            .await?;
        self.checked(Function::OnMessage, out, v0_1::SmsDecision::validate)
    }

    /// The instance's exports, if it may be entered and has `capability`.
    fn guests(&self, capability: Capability) -> Result<Guests, PluginError> {
        if self.poisoned {
            return Err(PluginError::Poisoned);
        }
        if !self.guests.has(capability) {
            return Err(PluginError::NotExported(
                self.version.target.contract.interface(capability),
            ));
        }
        Ok(self.guests.clone())
    }

    /// The instance's exports, if it may be entered and is a 0.1 component exporting
    /// `interface`.
    fn guests_v0_1(&self, interface: InterfaceV0_1) -> Result<Guests, PluginError> {
        if self.poisoned {
            return Err(PluginError::Poisoned);
        }
        if !self.guests.exports_v0_1(interface) {
            return Err(PluginError::NotExported(interface.name()));
        }
        Ok(self.guests.clone())
    }

    /// Runs one call into the guest with a fresh deadline, and turns every way it can fail into
    /// a [`PluginError`].
    async fn run<R>(
        &mut self,
        what: Function,
        call: impl AsyncFnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let rt = &self.version.runtime.inner;
        let config = &rt.config;
        let deadline = rt.limits.load().deadline;
        let max_memory = self.store.data().limiter.max_memory;
        arm(&mut self.store, &deadline, config.fuel_metering);
        // Read only when metered: without fuel, `get_fuel` builds an error (a few µs).
        let fuel_before = if config.fuel_metering {
            self.store.get_fuel().ok()
        } else {
            None
        };
        let started = Instant::now();
        // Poisoned until the call returns: if this future is dropped while the guest is running
        // (the call hung up, a caller's timeout), the guest's state is half-way through
        // something, and the instance must never be entered again.
        self.poisoned = true;
        // The epoch deadline stops guest code; this timeout also bounds time spent waiting in
        // host imports (a `kv` call to a stalled database).
        let clock = self.store.data().clock.clone();
        let result = bounded(deadline * 2, &clock, call(&mut self.store)).await;
        self.last_elapsed = started.elapsed();
        self.last_fuel = fuel_before
            .and_then(|before| Some((before, self.store.get_fuel().ok()?)))
            .map(|(before, after)| before.saturating_sub(after));
        self.version.metrics.seconds[what as usize].record(self.last_elapsed.as_secs_f64());
        let err = match result {
            Ok(Ok(value)) => {
                self.poisoned = false;
                return Ok(value);
            }
            Ok(Err(e)) => classify(e, &self.store, deadline, max_memory),
            Err(_) => PluginError::Timeout { deadline },
        };
        record_failure(&self.version, what.name(), &err);
        Err(err)
    }

    fn checked<T>(
        &mut self,
        what: Function,
        value: T,
        validate: impl FnOnce(&T) -> Result<(), Invalid>,
    ) -> Result<T, PluginError> {
        match validate(&value) {
            Ok(()) => {
                self.version.metrics.calls[what as usize].increment(1);
                Ok(value)
            }
            Err(Invalid(why)) => {
                // The instance itself is fine, but a plugin that answers nonsense once is not to
                // be trusted for the rest of the call.
                self.poisoned = true;
                let err = PluginError::BadReturn(why);
                record_failure(&self.version, what.name(), &err);
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_checked() {
        assert!(valid_counter_name("ivr_started"));
        assert!(!valid_counter_name(""));
        assert!(!valid_counter_name("bad-name"));
        assert!(!valid_counter_name(&"x".repeat(65)));
    }
}
