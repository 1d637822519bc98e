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
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Maps a unique-violation to [`StoreError::Conflict`], anything else to `Database`.
    pub(crate) fn unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Database(e),
        }
    }
}
