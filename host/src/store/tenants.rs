use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms};

/// A customer of the switch. Everything else (keys, plugins, numbers, calls) belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// A short slug chosen at creation: lowercase letters, digits and `-`, 1 to 63 long.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// Whether `id` is a valid tenant slug.
pub fn valid_tenant_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

fn tenant(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        if !valid_tenant_id(id) {
            return Err(StoreError::Invalid(format!(
                "tenant id {id:?} must be 1-63 lowercase letters, digits or '-'"
            )));
        }
        let t = Tenant {
            id: id.to_string(),
            name: name.to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.created_at)
            .execute(self.pool())
            .await
            .map_err(StoreError::unique("tenant"))?;
        Ok(t)
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        Ok(tenant(&row)?)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(tenant).collect::<Result<_, _>>()?)
    }

    pub async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query(
            "UPDATE tenants SET name = $2 WHERE id = $1 RETURNING id, name, created_at",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("tenant"))?;
        Ok(tenant(&row)?)
    }

    /// Deletes a tenant and, by cascade, everything it owns.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }
}
