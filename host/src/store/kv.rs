//! The plugins' `kv` import, kept in the database per tenant.

use async_trait::async_trait;
use sqlx::Row;

use super::{Store, now_ms};
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
            .bind(key.as_bytes())
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
        .bind(key.as_bytes())
        .bind(value)
        .bind(now_ms())
        .execute(self.store.writer())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError> {
        check_sizes(key, None)?;
        sqlx::query("DELETE FROM kv WHERE tenant_id = $1 AND key = $2")
            .bind(tenant)
            .bind(key.as_bytes())
            .execute(self.store.writer())
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
        // Keys are bytes (migration 0002): compared and ordered byte by byte on both databases.
        let rows = sqlx::query(
            "SELECT key FROM kv WHERE tenant_id = $1 AND substr(key, 1, CAST($2 AS INTEGER)) = $3 ORDER BY key LIMIT $4",
        )
        .bind(tenant)
        .bind(prefix.len() as i64)
        .bind(prefix.as_bytes())
        .bind(i64::from(limit.min(MAX_LIST)))
        .fetch_all(self.store.pool())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| key_text(r.try_get("key")?))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }
}

/// A stored key as text (every key was written from a string).
fn key_text(bytes: Vec<u8>) -> Result<String, sqlx::Error> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

impl Store {
    /// Every key of a tenant and its value, in key order (for the API and tests).
    pub async fn kv_entries(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, super::StoreError> {
        // Keys are bytes, so both databases order them as Rust orders the strings.
        let rows = sqlx::query("SELECT key, value FROM kv WHERE tenant_id = $1 ORDER BY key")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((key_text(r.try_get("key")?)?, r.try_get("value")?)))
            .collect::<Result<Vec<(String, Vec<u8>)>, sqlx::Error>>()?)
    }
}
