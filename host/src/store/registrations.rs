//! The location service: where each SIP user's phones can be reached (RFC 3261 section 10),
//! kept in the database so that a restarted host, or another host sharing it, knows them.
//!
//! The registrar's decision (which bindings a REGISTER adds, refreshes or removes) is made by
//! the caller, between this module's read and write, inside one transaction that holds the
//! user's row: two REGISTERs for one user, on one host or two, are decided one after the
//! other, each on what the other wrote.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Store, StoreError, Transport, now_ms};

/// One binding of a SIP user's address of record to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Registration {
    /// The SIP user's id.
    pub user_id: String,
    pub tenant_id: String,
    /// The SIP user's name.
    pub username: String,
    /// The Contact URI as the phone sent it: where calls to the user go.
    pub contact_uri: String,
    /// The whole Contact value, with its parameters.
    pub contact: String,
    /// When the binding lapses, in milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The phone's preference among the user's contacts, in thousandths (`q=0.5` is 500).
    pub q: Option<i64>,
    /// The Call-ID of the REGISTER that made or last refreshed it.
    pub call_id: String,
    /// That REGISTER's CSeq number.
    pub cseq: i64,
    /// The phone's RFC 5626 `+sip.instance`, if it sent one.
    pub instance: Option<String>,
    /// The transport the REGISTER came over.
    pub transport: Transport,
    /// The address (ip:port) the REGISTER came from: behind NAT, not the Contact's.
    pub source: String,
    /// The host that holds the phone's connection (for TCP and TLS).
    pub host_id: String,
    /// That host's id for the connection.
    pub connection: Option<i64>,
    /// The phone's User-Agent.
    pub user_agent: String,
    /// When the binding was first made.
    pub registered_at: i64,
    /// When it was last refreshed.
    pub updated_at: i64,
}

/// What a REGISTER changes in a user's bindings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationChange {
    /// Bindings to add, or to refresh (same `contact_uri`). Written whole, `registered_at`
    /// too: the caller keeps a refreshed binding's own.
    pub upsert: Vec<Registration>,
    /// Contact URIs whose bindings go.
    pub remove: Vec<String>,
}

const COLUMNS: &str = "r.user_id, r.tenant_id, u.username, r.contact_uri, r.contact, \
    r.expires_at, r.q, r.call_id, r.cseq, r.instance, r.transport, r.source, r.host_id, \
    r.connection, r.user_agent, r.registered_at, r.updated_at";

fn registration(row: &AnyRow) -> Result<Registration, sqlx::Error> {
    let transport: String = row.try_get("transport")?;
    Ok(Registration {
        user_id: row.try_get("user_id")?,
        tenant_id: row.try_get("tenant_id")?,
        username: row.try_get("username")?,
        contact_uri: row.try_get("contact_uri")?,
        contact: row.try_get("contact")?,
        expires_at: row.try_get("expires_at")?,
        q: row.try_get("q")?,
        call_id: row.try_get("call_id")?,
        cseq: row.try_get("cseq")?,
        instance: row.try_get("instance")?,
        transport: Transport::parse(&transport).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "transport".into(),
            source: transport.into(),
        })?,
        source: row.try_get("source")?,
        host_id: row.try_get("host_id")?,
        connection: row.try_get("connection")?,
        user_agent: row.try_get("user_agent")?,
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A digest nonce count the registrar accepts with a REGISTER: recorded in the REGISTER's
/// transaction, so that a count used on any host, before or after a restart, is not accepted
/// again (a replayed request), and at no extra commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceCount<'a> {
    pub nonce: &'a str,
    /// The `nc` of the credentials (0 without `qop`).
    pub count: i64,
    /// When the record may be forgotten, in Unix milliseconds (the nonce has lapsed).
    pub expires_at: i64,
}

/// How [`Store::update_registrations`] ended, when the database did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided<T, E> {
    /// The change was written; what the decision returned beside it.
    Written(T),
    /// The decision refused the REGISTER: nothing but the nonce count was written.
    Refused(E),
    /// The nonce count is not above one already accepted with the nonce: nothing was
    /// decided or written.
    Replayed,
}

impl Store {
    /// Records `nonce`'s count (see [`NonceCount`]), reads `user_id`'s live bindings (lapsed
    /// ones are left out), lets `decide` say what changes and writes that, all in one
    /// transaction that holds the user's row. `decide` returns the change and what the caller
    /// wants back (the decision itself, to answer from: nothing is read back).
    ///
    /// Statements: on SQLite `BEGIN IMMEDIATE` (the database's write lock), the nonce count,
    /// the bindings, one upsert per binding added or refreshed, one `DELETE` per binding
    /// removed, `COMMIT`; on PostgreSQL also the user's row lock before the bindings are read.
    /// Lapsed bindings are left to [`Store::sweep_registrations`].
    pub async fn update_registrations<T, E>(
        &self,
        user_id: &str,
        nonce: Option<NonceCount<'_>>,
        now: i64,
        decide: impl FnOnce(&[Registration]) -> Result<(RegistrationChange, T), E>,
    ) -> Result<Decided<T, E>, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(n) = nonce {
            // On PostgreSQL, a concurrent transaction recording the same nonce makes this one
            // wait for its end, then compare with what it committed.
            let done = sqlx::query(
                "INSERT INTO digest_nonces (nonce, nc, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc \
                 WHERE digest_nonces.nc < excluded.nc",
            )
            .bind(n.nonce)
            .bind(n.count)
            .bind(n.expires_at)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(Decided::Replayed);
            }
        }
        if self.backend == Backend::Postgres {
            // Two REGISTERs for one user, on two hosts, are decided one after the other. The
            // bindings are read by the next statement, whose snapshot (READ COMMITTED) is
            // taken after this lock is had, so it sees what the other one committed. SQLite's
            // BEGIN IMMEDIATE has already taken the whole database's lock.
            sqlx::query("SELECT id FROM sip_users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let current = live(&mut tx, user_id, now).await?;
        let (change, answer) = match decide(&current) {
            Ok(decided) => decided,
            Err(refused) => {
                // Keeps the nonce count: a refused REGISTER replayed later is a replay too.
                tx.commit().await?;
                return Ok(Decided::Refused(refused));
            }
        };
        for uri in &change.remove {
            sqlx::query("DELETE FROM registrations WHERE user_id = $1 AND contact_uri = $2")
                .bind(user_id)
                .bind(uri)
                .execute(&mut *tx)
                .await?;
        }
        for r in &change.upsert {
            // A lapsed row not swept yet may hold the contact: every column is overwritten,
            // `registered_at` too (the caller keeps a live binding's own).
            sqlx::query(
                "INSERT INTO registrations (user_id, tenant_id, contact_uri, contact, expires_at, \
                 q, call_id, cseq, instance, transport, source, host_id, connection, user_agent, \
                 registered_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                 ON CONFLICT (user_id, contact_uri) DO UPDATE SET contact = excluded.contact, \
                 expires_at = excluded.expires_at, q = excluded.q, call_id = excluded.call_id, \
                 cseq = excluded.cseq, instance = excluded.instance, \
                 transport = excluded.transport, source = excluded.source, \
                 host_id = excluded.host_id, connection = excluded.connection, \
                 user_agent = excluded.user_agent, registered_at = excluded.registered_at, \
                 updated_at = excluded.updated_at",
            )
            .bind(user_id)
            .bind(&r.tenant_id)
            .bind(&r.contact_uri)
            .bind(&r.contact)
            .bind(r.expires_at)
            .bind(r.q)
            .bind(&r.call_id)
            .bind(r.cseq)
            .bind(&r.instance)
            .bind(r.transport.as_str())
            .bind(&r.source)
            .bind(&r.host_id)
            .bind(r.connection)
            .bind(&r.user_agent)
            .bind(r.registered_at)
            .bind(r.updated_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Decided::Written(answer))
    }

    /// A tenant's live bindings, by username, then most preferred first.
    pub async fn registrations(&self, tenant: &str) -> Result<Vec<Registration>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations r JOIN sip_users u ON u.id = r.user_id \
             WHERE r.tenant_id = $1 AND r.expires_at > $2 \
             ORDER BY u.username, COALESCE(r.q, 1000) DESC, r.contact_uri"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(now_ms())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(registration).collect::<Result<_, _>>()?)
    }

    /// Deletes every binding that lapsed before `now`; returns how many.
    pub async fn sweep_registrations(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// How many bindings are live at `now`, across every tenant.
    pub async fn count_registrations(&self, now: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM registrations WHERE expires_at > $1")
            .bind(now)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Forgets the counts of nonces that lapsed before `now`.
    pub async fn sweep_nonces(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM digest_nonces WHERE expires_at <= $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    /// The secret named `name` that every host sharing this database uses: made from the OS
    /// random source by the first host that asks, read by the rest.
    pub async fn shared_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let fresh = hex::encode(super::random_bytes::<32>()?);
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&fresh)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        let row = sqlx::query("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        let value: String = row.try_get("value")?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(&value, &mut key)
            .map_err(|_| StoreError::Invalid(format!("secret {name:?} is not 32 bytes of hex")))?;
        Ok(key)
    }
}

/// The user's live bindings, most preferred first; [`StoreError::NotFound`] when the user is
/// gone (deleted since the registrar read it).
async fn live(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    now: i64,
) -> Result<Vec<Registration>, StoreError> {
    // One row per binding, or one row of NULLs for a user without any: none for no user.
    let sql = format!(
        "SELECT {COLUMNS} FROM sip_users u LEFT JOIN registrations r \
         ON r.user_id = u.id AND r.expires_at > $2 \
         WHERE u.id = $1 ORDER BY COALESCE(r.q, 1000) DESC, r.contact_uri"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
    if rows.is_empty() {
        return Err(StoreError::NotFound("sip user"));
    }
    let mut bindings = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>, _>("contact_uri")?.is_some() {
            bindings.push(registration(row)?);
        }
    }
    Ok(bindings)
}
