//! The state of the trunks the switch registers with, and which host does it. A host holds a
//! trunk by a lease it renews with every update; a trunk whose lease lapsed (its host died or
//! stopped) is claimed by the next host that looks, so one host, and only one, keeps each
//! registering trunk registered.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, Transport};

/// How a trunk's registration is going, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrunkRegistration {
    /// `registering` (first attempt under way), `registered` or `failing`.
    pub state: String,
    /// Why the last attempt failed (`403 Forbidden`, `no answer`, a DNS error ...), if it did.
    pub last_error: Option<String>,
    /// When the trunk's grant lapses, in Unix milliseconds, while registered.
    pub registered_until: Option<i64>,
    /// When the next attempt (or refresh) is due, in Unix milliseconds.
    pub next_attempt: Option<i64>,
    /// Failed attempts in a row.
    pub failures: i64,
    /// The host keeping the trunk registered.
    pub host_id: String,
    /// When this state was written.
    pub updated_at: i64,
}

/// A trunk to register with, with its secret: for the host that registers, never the API.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteringTrunk {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub host: String,
    /// None: RFC 3263 (the registering host looks up A/AAAA at the transport's default port).
    pub port: Option<u16>,
    pub transport: Transport,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegisteringTrunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("RegisteringTrunk")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

pub(super) fn registration(row: &AnyRow) -> Result<TrunkRegistration, sqlx::Error> {
    Ok(TrunkRegistration {
        state: row.try_get("state")?,
        last_error: row.try_get("last_error")?,
        registered_until: row.try_get("registered_until")?,
        next_attempt: row.try_get("next_attempt")?,
        failures: row.try_get("failures")?,
        host_id: row.try_get("host_id")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) const REGISTRATION_COLUMNS: &str =
    "state, last_error, registered_until, next_attempt, failures, host_id, updated_at";

impl Store {
    /// Every trunk, of every tenant, that the switch should keep registered.
    pub async fn registering_trunks(&self) -> Result<Vec<RegisteringTrunk>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, host, port, transport, username, password FROM trunks \
             WHERE register = 1 AND username IS NOT NULL AND password IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let (port, transport) = super::numbers::trunk_address(r)?;
                Ok(RegisteringTrunk {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    name: r.try_get("name")?,
                    host: r.try_get("host")?,
                    port,
                    transport,
                    username: r.try_get("username")?,
                    password: r.try_get("password")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Claims `trunk` for `host` until `lease_until` if no other host holds a live lease on
    /// it (or renews this host's); true when `host` holds it now.
    pub async fn claim_trunk(
        &self,
        trunk: &RegisteringTrunk,
        host: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "INSERT INTO trunk_registrations (trunk_id, tenant_id, host_id, lease_until, state, \
             failures, updated_at) VALUES ($1, $2, $3, $4, 'registering', 0, $5) \
             ON CONFLICT (trunk_id) DO UPDATE SET host_id = excluded.host_id, \
             lease_until = excluded.lease_until \
             WHERE trunk_registrations.host_id = excluded.host_id \
             OR trunk_registrations.lease_until < $5 \
             RETURNING host_id",
        )
        .bind(&trunk.id)
        .bind(&trunk.tenant_id)
        .bind(host)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(self.writer())
        .await
        .map_err(|e| match &e {
            // The trunk was deleted meanwhile.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("trunk")
            }
            _ => StoreError::from(e),
        })?;
        Ok(row.is_some())
    }

    /// Writes a trunk's registration state and renews `host`'s lease; false if another host
    /// holds the trunk now (then nothing is written and `host` must let it go).
    pub async fn record_trunk_registration(
        &self,
        trunk_id: &str,
        host: &str,
        lease_until: i64,
        state: &TrunkRegistration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE trunk_registrations SET lease_until = $3, state = $4, last_error = $5, \
             registered_until = $6, next_attempt = $7, failures = $8, updated_at = $9 \
             WHERE trunk_id = $1 AND host_id = $2",
        )
        .bind(trunk_id)
        .bind(host)
        .bind(lease_until)
        .bind(&state.state)
        .bind(&state.last_error)
        .bind(state.registered_until)
        .bind(state.next_attempt)
        .bind(state.failures)
        .bind(state.updated_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Lets go of a trunk `host` holds (it no longer registers, or the host stops), so that
    /// the state shown is not a stale "registered".
    pub async fn release_trunk(&self, trunk_id: &str, host: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM trunk_registrations WHERE trunk_id = $1 AND host_id = $2")
            .bind(trunk_id)
            .bind(host)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
