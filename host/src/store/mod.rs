//! Persistence: tenants, API keys, plugin versions, numbers, trunks, SIP users, CDRs, messages,
//! the plugins' `kv` data and the audit log, in SQLite (the embedded default) or PostgreSQL.
//! The call path reads none of it directly: it asks an in-memory [`Directory`] and hands its
//! records to a [`CdrWriter`].
//!
//! One code path serves both through sqlx's `Any` driver: the SQL is portable (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`), timestamps are epoch milliseconds and flags 0/1,
//! because `Any` carries only integers, floats, text and bytes. The schemas live in
//! `migrations/sqlite` and `migrations/postgres` and differ only in types.

mod audit;
mod cdr_writer;
mod cdrs;
mod directory;
mod error;
mod keys;
mod kv;
mod numbers;
mod plugins;
mod registrations;
mod sip_identities;
mod tenants;
mod trunk_registrations;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions};

pub use audit::AuditEntry;
pub use cdr_writer::{CdrWriter, CdrWriterOptions, CdrWriterStats};
pub use cdrs::{
    Cdr, CdrCursor, CdrFilter, CdrPage, CdrState, Disposition, MAX_PAGE as MAX_CDR_PAGE,
    valid_ended_by,
};
pub use directory::{Cidr, CidrError, DirTenant, DirTrunk, Directory};
pub use error::StoreError;
pub use keys::{ApiKey, NewApiKey, Role, constant_time_eq};
pub use kv::SqlKv;
pub use numbers::{
    CallerId, Did, MAX_INBOUND, NewSipUser, NewTrunk, SipCredentials, SipUser, SipUserUpdate,
    Transport, Trunk, digest_ha1, digest_ha1_sha256, valid_e164, valid_sip_username,
};
pub use plugins::{
    Activation, ActivePlugin, Deactivation, NewPlugin, PluginRecord, valid_plugin_name,
};
pub use registrations::{Decided, NonceCount, Registration, RegistrationChange};
pub use sip_identities::{SipIdentity, TTL as SIP_IDENTITY_TTL};
pub use tenants::{
    CallFallback, CallLimits, MAX_TEXT_CHARS, Tenant, check_text, valid_sip_domain, valid_tenant_id,
};
pub use trunk_registrations::{RegisteringTrunk, TrunkRegistration};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::BadUrl(
                "expected sqlite://PATH or postgres://USER@HOST/DB".into(),
            ))
        }
    }
}

/// The database, shared by every part of the host. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite, a pool of one connection: SQLite lets one writer in at a
    /// time, and writers that queue here wait their turn in order, where several connections
    /// would race for the file lock (and a read-then-write transaction that loses the race
    /// fails with SQLITE_BUSY however long it is willing to wait). On PostgreSQL, `pool`.
    writer: AnyPool,
    backend: Backend,
    /// The registrar's recent tenant and SIP user lookups, emptied by every change to them.
    identities: Arc<sip_identities::IdentityCache>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH`, created with its folder if missing, or
    /// `postgres://...`). Does not run migrations: see [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut url = url.to_string();
        // No ping before each acquire (sqlx's `test_before_acquire`, on by default): it is a
        // round trip for every query (a thread hand-off on SQLite, a network message on
        // PostgreSQL), and sqlx already pings each connection when it goes back to the pool,
        // closing it if that fails. A connection that dies while idle (PostgreSQL restarted,
        // a firewall dropped it) therefore fails the one query that next uses it, whose
        // request is answered 503 (a REGISTER, with Retry-After) or 500, and is then closed
        // and replaced; it is never handed out twice.
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false);
        // An in-memory database lives in its one connection: reads and writes share it.
        let mut in_memory = false;
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default();
            in_memory = path == ":memory:" || path.is_empty();
            if in_memory {
                // Every connection would get its own empty database.
                pool = pool.max_connections(1);
            } else if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::BadUrl(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            if !url.contains('?') {
                // Create the file on first start; WAL lets the API read while calls write.
                url.push_str("?mode=rwc");
            }
        } else {
            pool = pool.max_connections(16);
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let writer = if backend == Backend::Sqlite && !in_memory {
            // A writer waits for the one connection up to WRITE_QUEUE_TIMEOUT, then for the
            // file lock (another process) up to SQLite's busy timeout (sqlx: 5 s).
            Some(
                AnyPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(1)
                    .acquire_timeout(WRITE_QUEUE_TIMEOUT)
                    .connect_with(options.clone())
                    .await?,
            )
        } else {
            None
        };
        let pool = pool.connect_with(options).await?;
        let writer = writer.unwrap_or_else(|| pool.clone());
        let store = Self {
            pool,
            writer,
            backend,
            identities: Arc::default(),
        };
        if backend == Backend::Sqlite {
            // Foreign keys are off by default in SQLite and are per connection; sqlx turns them
            // on for every connection it opens, and WAL mode sticks to the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&store.pool)
                .await?;
        }
        Ok(store)
    }

    /// Brings the schema up to date. Safe to run on every start and from several hosts.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Brings the schema up to `version` only (tests of upgrades from an older schema).
    #[doc(hidden)]
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run_to(version, &self.writer).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How many connections the read pool opens at most (on PostgreSQL, every query's pool):
    /// what a part of the host that may queue many queries at once must stay below.
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Runs one SQL statement verbatim (administration and tests: `CREATE DATABASE` ...).
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Where reads go.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where writes go (single statements; see [`Store::begin_write`] for transactions).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN`
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and takes the lock only at its first
    /// write fails with SQLITE_BUSY, without waiting, if another write committed in between.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }
}

/// How long a write waits for SQLite's one writer connection before the request is answered
/// 503 (with Retry-After). Writes take milliseconds; this is a queue of hundreds of them.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Milliseconds since the Unix epoch, the store's time format.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A random identifier with a readable prefix, e.g. `trk_3f9a...` (16 random bytes, hex).
pub(crate) fn new_id(prefix: &str) -> Result<String, StoreError> {
    Ok(format!("{prefix}_{}", hex::encode(random_bytes::<16>()?)))
}

/// Bytes from the OS random source (ids, key secrets).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(buf)
}
