//! Plugin versions and their activation history. Every uploaded version is kept (bytes and
//! all), so any can be activated again, and every activation is recorded, so rollback knows
//! where to go back to, on any host, after any restart.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// One stored version of a tenant's plugin (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginRecord {
    pub tenant_id: String,
    pub name: String,
    /// 1 for the first upload of a name, then counting up; never reused, even after a version
    /// is deleted.
    pub version: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    pub size: i64,
    /// The world the component implements: router, ivr, messaging or switch (or the exports
    /// joined with '+' for a component of its own world).
    pub world: String,
    /// The version of the plugin contract the component was built against
    /// (`wasmswitch:plugin@0.1.0` is "0.1.0"), read from its exports at upload.
    pub contract: String,
    /// The key id or token subject that uploaded it.
    pub uploaded_by: String,
    pub uploaded_at: i64,
    /// Whether new calls use this version.
    pub active: bool,
}

/// What an upload stores.
#[derive(Debug, Clone)]
pub struct NewPlugin<'a> {
    pub tenant_id: &'a str,
    pub name: &'a str,
    pub sha256: &'a str,
    pub world: &'a str,
    pub contract: &'a str,
    pub uploaded_by: &'a str,
    pub wasm: &'a [u8],
}

/// An active plugin version, as every host must run it: the sha256 says which code, whatever
/// the number (see [`Store::active_plugin_versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePlugin {
    pub tenant_id: String,
    pub name: String,
    pub version: i64,
    pub sha256: String,
}

/// The result of a deactivation: no version of the plugin is active now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Deactivation {
    pub tenant_id: String,
    pub name: String,
    /// The version that was active; a rollback makes it active again.
    pub version: i64,
    pub at: i64,
}

/// The result of an activation or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Activation {
    pub tenant_id: String,
    pub name: String,
    /// The version now active.
    pub version: i64,
    /// The version active before, if any.
    pub previous: Option<i64>,
    pub at: i64,
}

const COLUMNS: &str =
    "tenant_id, name, version, sha256, size, world, contract, uploaded_by, uploaded_at, active";

fn record(row: &AnyRow) -> Result<PluginRecord, sqlx::Error> {
    Ok(PluginRecord {
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        world: row.try_get("world")?,
        contract: row.try_get("contract")?,
        uploaded_by: row.try_get("uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at")?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

/// Whether `name` is a valid plugin name: like a tenant id, 1 to 63 of [a-z0-9-].
pub fn valid_plugin_name(name: &str) -> bool {
    super::tenants::valid_tenant_id(name)
}

impl Store {
    /// Stores a new version of a plugin. Its number is the plugin name's next one: one more
    /// than any version of that name ever stored, deleted ones included, so a number always
    /// means the same code. Concurrent uploads to one name queue for the number (a row lock on
    /// PostgreSQL, the write lock on SQLite) rather than collide.
    pub async fn insert_plugin(&self, new: NewPlugin<'_>) -> Result<PluginRecord, StoreError> {
        if !valid_plugin_name(new.name) {
            return Err(StoreError::Invalid(format!(
                "plugin name {:?} must be 1-63 lowercase letters, digits or '-'",
                new.name
            )));
        }
        let fk = |e: sqlx::Error| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("tenant")
            }
            _ => StoreError::from(e),
        };
        let mut tx = self.begin_write().await?;
        let version: i64 = sqlx::query(
            "INSERT INTO plugin_names (tenant_id, name, last_version) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET last_version = plugin_names.last_version + 1 \
             RETURNING last_version",
        )
        .bind(new.tenant_id)
        .bind(new.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(fk)?
        .try_get("last_version")?;
        let sql = format!(
            "INSERT INTO plugins (tenant_id, name, version, sha256, size, world, contract, uploaded_by, uploaded_at, active, wasm) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(new.tenant_id)
            .bind(new.name)
            .bind(version)
            .bind(new.sha256)
            .bind(new.wasm.len() as i64)
            .bind(new.world)
            .bind(new.contract)
            .bind(new.uploaded_by)
            .bind(now_ms())
            .bind(new.wasm)
            .fetch_one(&mut *tx)
            .await
            .map_err(fk)?;
        let record = record(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// Every version of every plugin of a tenant, by name then version.
    pub async fn plugins(&self, tenant: &str) -> Result<Vec<PluginRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM plugins WHERE tenant_id = $1 ORDER BY name, version");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// Every version of one plugin, oldest first; `NotFound` when there is none.
    pub async fn plugin_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<PluginRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM plugins WHERE tenant_id = $1 AND name = $2 ORDER BY version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(name)
            .fetch_all(self.pool())
            .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound("plugin"));
        }
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// One version's record, without its bytes.
    pub async fn plugin_record(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<PluginRecord, StoreError> {
        Ok(record(
            &self.plugin_row(tenant, name, version, COLUMNS).await?,
        )?)
    }

    /// One version and its component bytes.
    pub async fn plugin(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<(PluginRecord, Vec<u8>), StoreError> {
        let columns = format!("{COLUMNS}, wasm");
        let row = self.plugin_row(tenant, name, version, &columns).await?;
        Ok((record(&row)?, row.try_get("wasm")?))
    }

    async fn plugin_row(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
        columns: &str,
    ) -> Result<AnyRow, StoreError> {
        let sql = format!(
            "SELECT {columns} FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(name)
            .bind(version)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("plugin version"))
    }

    /// Every active plugin of every tenant: the cheap question each host asks to stay in step
    /// with activations (and deletions) made elsewhere.
    pub async fn active_plugin_versions(&self) -> Result<Vec<ActivePlugin>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, version, sha256 FROM plugins WHERE active = 1 ORDER BY tenant_id, name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ActivePlugin {
                    tenant_id: r.try_get("tenant_id")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    sha256: r.try_get("sha256")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The active versions of one tenant's plugins, by name.
    pub async fn active_plugins(&self, tenant: &str) -> Result<Vec<PluginRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM plugins WHERE tenant_id = $1 AND active = 1 ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// Makes `version` the active one and records the change.
    pub async fn activate_plugin(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
        actor: &str,
    ) -> Result<Activation, StoreError> {
        self.switch_active(tenant, name, Change::Activate(version), actor)
            .await
            .map(Switched::activation)
    }

    /// Goes back to the version that was active before the current one was activated.
    pub async fn rollback_plugin(
        &self,
        tenant: &str,
        name: &str,
        actor: &str,
    ) -> Result<Activation, StoreError> {
        self.switch_active(tenant, name, Change::Rollback, actor)
            .await
            .map(Switched::activation)
    }

    /// Makes no version of the plugin active, so new calls no longer reach it, and records the
    /// change (kind `deactivate`, `version` and `previous` the version that was active): a
    /// rollback then makes that version active again.
    pub async fn deactivate_plugin(
        &self,
        tenant: &str,
        name: &str,
        actor: &str,
    ) -> Result<Deactivation, StoreError> {
        let s = self
            .switch_active(tenant, name, Change::Deactivate, actor)
            .await?;
        Ok(Deactivation {
            tenant_id: s.tenant_id,
            name: s.name,
            version: s.version,
            at: s.at,
        })
    }

    /// Every change of a plugin's active version, in one transaction that takes turns with the
    /// others (see [`take_turns`]) and records the change in `plugin_activations`, the history
    /// a rollback reads.
    async fn switch_active(
        &self,
        tenant: &str,
        name: &str,
        change: Change,
        actor: &str,
    ) -> Result<Switched, StoreError> {
        let mut tx = self.begin_write().await?;
        take_turns(&mut tx, tenant, name).await?;
        let versions: Vec<(i64, i64)> =
            sqlx::query("SELECT version, active FROM plugins WHERE tenant_id = $1 AND name = $2")
                .bind(tenant)
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("version")?, r.try_get("active")?)))
                .collect::<Result<_, sqlx::Error>>()?;
        if versions.is_empty() {
            return Err(StoreError::NotFound("plugin"));
        }
        let current = versions.iter().find(|(_, a)| *a != 0).map(|(v, _)| *v);
        // The version made active (none for a deactivation), and the one the history records.
        let (active, recorded, kind) = match change {
            Change::Activate(v) => {
                if !versions.iter().any(|(have, _)| *have == v) {
                    return Err(StoreError::NotFound("plugin version"));
                }
                (Some(v), v, "activate")
            }
            Change::Rollback => {
                let back = rollback_target(&mut tx, tenant, name, &versions).await?;
                let Some(v) = back else {
                    return Err(StoreError::Invalid(format!(
                        "plugin {name} has no earlier version to roll back to"
                    )));
                };
                (Some(v), v, "rollback")
            }
            Change::Deactivate => {
                let Some(v) = current else {
                    return Err(StoreError::Invalid(format!(
                        "plugin {name} has no active version"
                    )));
                };
                (None, v, "deactivate")
            }
        };
        let at = now_ms();
        // With no version to make active, `version = NULL` holds for none: all become inactive.
        sqlx::query("UPDATE plugins SET active = CASE WHEN version = $3 THEN 1 ELSE 0 END WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .bind(active)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO plugin_activations (tenant_id, name, version, previous, kind, actor, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(name)
        .bind(recorded)
        .bind(current)
        .bind(kind)
        .bind(actor)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Switched {
            tenant_id: tenant.to_string(),
            name: name.to_string(),
            version: recorded,
            previous: current,
            at,
        })
    }

    /// Deletes a version that is not active.
    pub async fn delete_plugin_version(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(
            "SELECT active FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("plugin version"))?;
        if row.try_get::<i64, _>("active")? != 0 {
            return Err(StoreError::Invalid(format!(
                "version {version} of {name} is active; activate another version first"
            )));
        }
        let done = sqlx::query(
            "DELETE FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3 AND active = 0",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            // Activated (or deleted) between the look and the delete.
            return Err(StoreError::Invalid(format!(
                "version {version} of {name} is active; activate another version first"
            )));
        }
        Ok(())
    }
}

/// Makes changes to one plugin's active version take turns: takes the name's row lock on
/// PostgreSQL (SQLite's write lock is already held), so two never read the same "current".
async fn take_turns(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &str,
    name: &str,
) -> Result<(), StoreError> {
    let named = sqlx::query(
        "UPDATE plugin_names SET last_version = last_version WHERE tenant_id = $1 AND name = $2",
    )
    .bind(tenant)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    if named.rows_affected() == 0 {
        return Err(StoreError::NotFound("plugin"));
    }
    Ok(())
}

/// A change of a plugin's active version ([`Store::switch_active`]).
#[derive(Debug, Clone, Copy)]
enum Change {
    Activate(i64),
    Rollback,
    Deactivate,
}

/// What [`Store::switch_active`] did: `version` is the version made active, or for a
/// deactivation the one that was.
struct Switched {
    tenant_id: String,
    name: String,
    version: i64,
    previous: Option<i64>,
    at: i64,
}

impl Switched {
    fn activation(self) -> Activation {
        Activation {
            tenant_id: self.tenant_id,
            name: self.name,
            version: self.version,
            previous: self.previous,
            at: self.at,
        }
    }
}

/// Where a rollback goes: the history replayed, each activation (and deactivation) pushing the
/// version it replaced and each rollback popping one; versions deleted since are skipped.
async fn rollback_target(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant: &str,
    name: &str,
    versions: &[(i64, i64)],
) -> Result<Option<i64>, StoreError> {
    let history = sqlx::query(
        "SELECT kind, previous FROM plugin_activations WHERE tenant_id = $1 AND name = $2 ORDER BY id",
    )
    .bind(tenant)
    .bind(name)
    .fetch_all(&mut **tx)
    .await?;
    let mut stack: Vec<i64> = Vec::new();
    for row in &history {
        let kind: String = row.try_get("kind")?;
        let previous: Option<i64> = row.try_get("previous")?;
        match kind.as_str() {
            "activate" | "deactivate" => stack.extend(previous),
            _ => {
                stack.pop();
            }
        }
    }
    stack.retain(|v| versions.iter().any(|(have, _)| have == v));
    Ok(stack.last().copied())
}
