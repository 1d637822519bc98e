//! Writes call records in batches, off the call path.
//!
//! SIP must never wait on the database: [`CdrWriter::record`] only puts the record in a
//! bounded queue and returns. One task takes records off the queue and writes them with
//! [`Store::write_cdrs`], many per transaction: at 2,000 calls a second, two records a call
//! (start and end), a transaction each would be 4,000 transactions a second, and SQLite
//! manages about 1,000 on this hardware; in batches of what arrives within
//! [`BATCH_WINDOW`] it is some 50 transactions a second.
//!
//! While the database fails, the task keeps the batch in hand and tries it again with
//! back-off, for as long as it takes; records keep queueing behind it. A record is lost only
//! when the queue is full: that is the one bound the writer cannot wait out without making
//! the calls wait, so it drops the record, counts it (`cdr_dropped_total`) and logs an error.
//! With the default [`CAPACITY`] that takes a database down for some 16 s at 2,000 calls a
//! second. A record the database refuses for what it holds (its tenant was deleted during the
//! call, taking its records with it) is not retried: it is counted in `cdr_rejected_total`.
//!
//! Metrics: `cdr_written_total`, `cdr_dropped_total`, `cdr_rejected_total`,
//! `cdr_write_errors_total` (failed attempts, each retried) and the gauge `cdr_waiting`
//! (records recorded but not yet written).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Cdr, Store, StoreError, now_ms};

/// How many records may wait to be written. 65,536 records (at most some 40 MB) are about
/// 16 s of 2,000 calls a second: a database restart or fail-over is ridden out without loss.
pub const CAPACITY: usize = 65_536;
/// The most records one transaction writes. 512 rows keep a transaction short (a few ms on
/// SQLite) while taking in everything that arrives within [`BATCH_WINDOW`] even at 20,000
/// records a second.
pub const BATCH_MAX: usize = 512;
/// How long the writer waits, after a first record, for others to write with it: 20 ms adds
/// little to when a record can be read, and is 50 transactions a second at most.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// The wait before trying a failed batch again; it doubles with each failure in a row, up to
/// [`MAX_RETRY`], so a database that is down is not hammered and one that is back is used
/// within seconds.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
pub const MAX_RETRY: Duration = Duration::from_secs(5);
/// At most one "records dropped" error line per this many milliseconds: at 4,000 records a
/// second a line per record would bury the log.
const DROP_LOG_EVERY_MS: i64 = 10_000;

/// The writer's tunables; [`Default`] gives the constants above. Tests shrink them.
#[derive(Debug, Clone)]
pub struct CdrWriterOptions {
    pub capacity: usize,
    pub batch_max: usize,
    pub batch_window: Duration,
    pub first_retry: Duration,
    pub max_retry: Duration,
}

impl Default for CdrWriterOptions {
    fn default() -> Self {
        CdrWriterOptions {
            capacity: CAPACITY,
            batch_max: BATCH_MAX,
            batch_window: BATCH_WINDOW,
            first_retry: FIRST_RETRY,
            max_retry: MAX_RETRY,
        }
    }
}

/// What the writer has done since it started (the metrics give the same, process-wide).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CdrWriterStats {
    /// Records written.
    pub written: u64,
    /// Records lost because the queue was full, or the writer closed.
    pub dropped: u64,
    /// Records refused for what they hold (their tenant is gone, or an id or tenant that is
    /// not one).
    pub rejected: u64,
    /// Failed write attempts (each retried).
    pub write_errors: u64,
    /// Transactions that wrote records.
    pub batches: u64,
    /// Records recorded and not yet written, rejected or dropped.
    pub waiting: u64,
}

// Nearly every item is a record: boxing it would add an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Item {
    Record(Cdr),
    /// Answered once every item before it is done.
    Flush(oneshot::Sender<()>),
    /// Take no more records; write what is queued and end.
    Close,
}

#[derive(Debug, Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    write_errors: AtomicU64,
    batches: AtomicU64,
    waiting: AtomicI64,
    /// When a drop was last logged (ms since the epoch).
    drop_logged_at: AtomicI64,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    /// Counts records in or out of the queue. The gauge is set by the task, once a batch:
    /// [`CdrWriter::record`] stays one atomic add and a channel slot.
    fn waiting_changed(&self, by: i64) {
        self.waiting.fetch_add(by, Ordering::Relaxed);
    }

    fn publish_waiting(&self) {
        let now = self.waiting.load(Ordering::Relaxed);
        metrics::gauge!("cdr_waiting").set(now.max(0) as f64);
    }

    fn dropped(&self, cdr: &Cdr, why: &'static str) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!("cdr_dropped_total").increment(1);
        let now = now_ms();
        let last = self.drop_logged_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= DROP_LOG_EVERY_MS
            && self
                .drop_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(cdr = %cdr.id, tenant = %cdr.tenant_id, dropped_total = total, why,
                "call records lost: the record queue is full (the database is down or too slow)");
        }
    }

    fn rejected(&self, cdr: &Cdr, error: &StoreError) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cdr_rejected_total").increment(1);
        tracing::error!(cdr = %cdr.id, tenant = %cdr.tenant_id, %error,
            "a call record was refused and is not kept");
    }

    fn written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cdr_written_total").increment(n as u64);
    }

    fn write_failed(&self, n: usize, error: &StoreError, retry_in: Duration) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cdr_write_errors_total").increment(1);
        tracing::warn!(records = n, %error, retry_in_ms = retry_in.as_millis() as u64,
            "cannot write call records; kept and retried");
    }
}

/// The handle to the writer task. Cheap to clone; every clone feeds the same queue.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    tx: mpsc::Sender<Item>,
    shared: Arc<Shared>,
}

impl CdrWriter {
    /// Starts the writer task on the current tokio runtime, with the default tunables.
    pub fn start(store: Store) -> CdrWriter {
        Self::start_with(store, CdrWriterOptions::default())
    }

    /// Starts the writer task with the given tunables.
    pub fn start_with(store: Store, options: CdrWriterOptions) -> CdrWriter {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(store, rx, shared.clone(), options));
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        CdrWriter { tx, shared }
    }

    /// Queues a record to be written. Never blocks and never waits: when the queue is full
    /// the record is dropped and counted. Free text is made storable first
    /// ([`Cdr::make_storable`]); a record whose id or tenant is not one is refused and
    /// counted.
    pub fn record(&self, mut cdr: Cdr) {
        cdr.make_storable();
        if let Err(e) = cdr.check() {
            self.shared.rejected(&cdr, &e);
            return;
        }
        self.shared.waiting_changed(1);
        if let Err(e) = self.tx.try_send(Item::Record(cdr)) {
            self.shared.waiting_changed(-1);
            let (item, why) = match e {
                mpsc::error::TrySendError::Full(item) => (item, "queue full"),
                mpsc::error::TrySendError::Closed(item) => (item, "writer closed"),
            };
            if let Item::Record(cdr) = item {
                self.shared.dropped(&cdr, why);
            }
        }
    }

    /// Waits until every record recorded before the call is written (or refused). It waits
    /// as long as the database is down: bound it with a timeout where that matters.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            // An error: the task is gone, and with it anything left to wait for.
            let _ = wait.await;
        }
    }

    /// Takes no more records (from any clone: later ones are dropped and counted), writes
    /// everything queued, and ends the task. Like [`CdrWriter::flush`], it waits for the
    /// database: bound it with a timeout on the way out.
    pub async fn close(self) {
        let _ = self.tx.send(Item::Close).await;
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the call record writer failed");
        }
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> CdrWriterStats {
        let s = &self.shared;
        CdrWriterStats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            waiting: u64::try_from(s.waiting.load(Ordering::Relaxed)).unwrap_or(0),
        }
    }
}

/// The task: collect a batch, write it (retrying until it is written), answer the flushes
/// that waited for it, again.
async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Item>,
    shared: Arc<Shared>,
    options: CdrWriterOptions,
) {
    let batch_max = options.batch_max.max(1);
    let mut batch: Vec<Cdr> = Vec::with_capacity(batch_max);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let take = |item: Item,
                batch: &mut Vec<Cdr>,
                flushes: &mut Vec<oneshot::Sender<()>>,
                rx: &mut mpsc::Receiver<Item>| match item {
        Item::Record(cdr) => batch.push(cdr),
        Item::Flush(done) => flushes.push(done),
        // What is already queued is still taken, and then `recv` says the queue ended.
        Item::Close => rx.close(),
    };
    while let Some(first) = rx.recv().await {
        take(first, &mut batch, &mut flushes, &mut rx);
        let until = Instant::now() + options.batch_window;
        // A flush ends the wait: whoever flushes is waiting for this batch.
        while batch.len() < batch_max && flushes.is_empty() {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(item)) => take(item, &mut batch, &mut flushes, &mut rx),
                Ok(None) | Err(_) => break,
            }
        }
        shared.publish_waiting();
        write(&store, &batch, &shared, &options).await;
        shared.waiting_changed(-(batch.len() as i64));
        shared.publish_waiting();
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch`, retrying with back-off until it is written. If the database refuses it
/// for what a record holds, the records are written one by one and those it refuses are
/// counted and left out.
async fn write(store: &Store, batch: &[Cdr], shared: &Shared, options: &CdrWriterOptions) {
    if batch.is_empty() {
        return;
    }
    let mut backoff = Backoff::new(options);
    loop {
        match store.write_cdrs(batch).await {
            Ok(()) => {
                shared.written(batch.len());
                return;
            }
            Err(e) if refused(&e) => break,
            Err(e) => backoff.wait(shared, batch.len(), &e).await,
        }
    }
    for cdr in batch {
        let mut backoff = Backoff::new(options);
        loop {
            match store.write_cdrs(std::slice::from_ref(cdr)).await {
                Ok(()) => {
                    shared.written(1);
                    break;
                }
                Err(e) if refused(&e) => {
                    shared.rejected(cdr, &e);
                    break;
                }
                Err(e) => backoff.wait(shared, 1, &e).await,
            }
        }
    }
}

struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(options: &CdrWriterOptions) -> Backoff {
        Backoff {
            next: options.first_retry,
            max: options.max_retry.max(options.first_retry),
        }
    }

    async fn wait(&mut self, shared: &Shared, records: usize, error: &StoreError) {
        shared.write_failed(records, error, self.next);
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

/// Whether the database refused a write for what it holds, so that trying it again cannot
/// help: a record that fails its check, a constraint it breaks (its tenant is gone), a value
/// PostgreSQL cannot take (SQLSTATE class 22, data exception). Anything else (the database
/// unreachable, busy, out of space) may pass later.
fn refused(e: &StoreError) -> bool {
    use sqlx::error::ErrorKind;
    match e {
        StoreError::Invalid(_) => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(
                db.kind(),
                ErrorKind::ForeignKeyViolation
                    | ErrorKind::UniqueViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation
            ) || (db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
                && db.code().is_some_and(|c| c.starts_with("22")))
        }
        _ => false,
    }
}
