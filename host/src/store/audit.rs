//! Who changed what: every change made through the API is recorded here.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, now_ms};

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// The key id or token subject that made the change.
    pub actor: String,
    pub tenant_id: Option<String>,
    /// What was done, e.g. `plugin.activate`.
    pub action: String,
    /// What it was done to, e.g. `router@3`.
    pub target: String,
    pub detail: String,
}

impl Store {
    pub async fn audit(
        &self,
        actor: &str,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, tenant_id, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(tenant)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// The latest entries of a tenant (or of everything, for `None`), newest first.
    pub async fn audit_log(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, tenant_id, action, target, detail FROM audit_log \
             WHERE $1 IS NULL OR tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    tenant_id: r.try_get("tenant_id")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
