//! The plugins' `kv` import, kept in the database per tenant.

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, Store, now_ms};
use crate::plugins::kv::{KvError, KvStore, MAX_LIST, check_sizes};

/// A [`KvStore`] in the database: what plugins see on a running host.
#[derive(Debug, Clone)]
pub struct SqlKv {
    store: Store,
}

impl SqlKv {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn unavailable(e: sqlx::Error) -> KvError {
    tracing::warn!(error = %e, "kv: database error");
    KvError::Unavailable("the database did not answer".into())
}

#[async_trait]
impl KvStore for SqlKv {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_sizes(key, None)?;
        let row = sqlx::query("SELECT value FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(self.store.pool())
            .await
            .map_err(unavailable)?;
        row.map(|r| r.try_get("value"))
            .transpose()
            .map_err(unavailable)
    }

    async fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        sqlx::query(
            "INSERT INTO kv (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(self.store.pool())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError> {
        check_sizes(key, None)?;
        sqlx::query("DELETE FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .execute(self.store.pool())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        check_sizes(prefix, None)?;
        // Byte order on both: PostgreSQL's default collation may follow the locale.
        let sql = match self.store.backend() {
            Backend::Sqlite => {
                "SELECT key FROM kv WHERE tenant_id = $1 AND substr(key, 1, CAST($2 AS INTEGER)) = $3 ORDER BY key LIMIT $4"
            }
            Backend::Postgres => {
                "SELECT key FROM kv WHERE tenant_id = $1 AND substr(key, 1, CAST($2 AS INTEGER)) = $3 ORDER BY key COLLATE \"C\" LIMIT $4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(tenant)
            .bind(prefix.chars().count() as i64)
            .bind(prefix)
            .bind(i64::from(limit.min(MAX_LIST)))
            .fetch_all(self.store.pool())
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get("key"))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }
}

impl Store {
    /// Every key of a tenant and its value, in key order (for the API and tests).
    pub async fn kv_entries(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, super::StoreError> {
        let rows = sqlx::query("SELECT key, value FROM kv WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        let mut out = rows
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<Vec<(String, Vec<u8>)>, sqlx::Error>>()?;
        out.sort();
        Ok(out)
    }
}
