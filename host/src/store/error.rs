/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one the store understands, or its file cannot be created.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// The row asked for does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The row would duplicate a unique key (an existing tenant id, number, trunk name ...).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The operation is not allowed in the row's current state.
    #[error("{0}")]
    Invalid(String),
    /// The database is busy: no connection came free in time, or a lock could not be had
    /// (SQLite's write lock, a PostgreSQL deadlock or serialization failure). Nothing was
    /// changed; the same request can be retried.
    #[error("the database is busy: {0}")]
    Busy(#[source] sqlx::Error),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A migration failed; the schema is left as the last good migration made it.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The OS random source failed (ids and key secrets come from it).
    #[error("random source failed: {0}")]
    Random(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_busy(&e) {
            StoreError::Busy(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// Whether `e` says "try again": a connection or lock that did not come free in time.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
            Some("40001" | "40P01" | "55P03") => true,
            // SQLite: extended result codes whose primary code is SQLITE_BUSY (5) or
            // SQLITE_LOCKED (6).
            Some(code) => code.parse::<i32>().is_ok_and(|c| {
                matches!(c & 0xff, 5 | 6)
                    && db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
            }),
            None => false,
        },
        _ => false,
    }
}

impl StoreError {
    /// Maps a unique-violation to [`StoreError::Conflict`], anything else to `Database`.
    pub(crate) fn unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::from(e),
        }
    }
}
