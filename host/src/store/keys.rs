//! API keys: `wsk_<id>_<secret>`. The id is public and indexes the row; only the sha256 of the
//! secret is stored, so a key is shown once, at creation, and a database dump reveals none.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, check_text, now_ms, random_bytes};

/// What a credential may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read-only access to one tenant's data.
    TenantRead,
    /// Full access to one tenant's data.
    TenantAdmin,
    /// Everything, every tenant; creates tenants.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::TenantRead => "tenant-read",
            Role::TenantAdmin => "tenant-admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "tenant-read" => Some(Role::TenantRead),
            "tenant-admin" => Some(Role::TenantAdmin),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// A stored API key (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    /// The tenant the key belongs to; none for an operator key.
    pub tenant_id: Option<String>,
    pub role: Role,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    /// Neither revoked nor expired at `now` (epoch ms).
    fn live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }
}

/// A key just created: the only time its full text exists.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key to send as `Authorization: Bearer <key>`. Shown once; store it now.
    pub secret: String,
}

const COLUMNS: &str =
    "id, tenant_id, role, name, created_at, expires_at, revoked_at, last_used_at, secret_hash";

fn api_key(row: &AnyRow) -> Result<(ApiKey, String), sqlx::Error> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "role".into(),
        source: format!("unknown role {role:?}").into(),
    })?;
    Ok((
        ApiKey {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            role,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
            last_used_at: row.try_get("last_used_at")?,
        },
        row.try_get("secret_hash")?,
    ))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `wsk_<id>_<secret>`.
fn parse_key(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("wsk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

impl Store {
    /// Creates a key. `tenant` is none only for operator keys.
    pub async fn create_api_key(
        &self,
        tenant: Option<&str>,
        role: Role,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<NewApiKey, StoreError> {
        if (role == Role::Operator) != tenant.is_none() {
            return Err(StoreError::Invalid(
                "operator keys have no tenant; tenant keys need one".into(),
            ));
        }
        check_text("name", name)?;
        let id = hex::encode(random_bytes::<8>()?);
        let secret = hex::encode(random_bytes::<32>()?);
        let key = ApiKey {
            id: id.clone(),
            tenant_id: tenant.map(str::to_string),
            role,
            name: name.to_string(),
            created_at: now_ms(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, role, name, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(role.as_str())
        .bind(&key.name)
        .bind(hash_secret(&secret))
        .bind(key.created_at)
        .bind(key.expires_at)
        .execute(self.writer())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("tenant")
            }
            _ => StoreError::from(e),
        })?;
        Ok(NewApiKey {
            key,
            secret: format!("wsk_{id}_{secret}"),
        })
    }

    /// The key `text` names, if it exists, its secret matches, and it is neither revoked nor
    /// expired. Records its use.
    pub async fn verify_api_key(&self, text: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some((id, secret)) = parse_key(text) else {
            return Ok(None);
        };
        let Some((key, stored)) = self.api_key_by_id(id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        if !constant_time_eq(hash_secret(secret).as_bytes(), stored.as_bytes()) || !key.live(now) {
            return Ok(None);
        }
        // Coarse on purpose: one write per key per minute at most, and in the background, so
        // a request never waits behind other writes to be authenticated.
        if key.last_used_at.is_none_or(|t| now - t > 60_000) {
            let (writer, id) = (self.writer().clone(), id.to_string());
            tokio::spawn(async move {
                let done = sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(now)
                    .execute(&writer)
                    .await;
                if let Err(e) = done {
                    tracing::debug!(key = id, error = %e, "cannot record a key's last use");
                }
            });
        }
        Ok(Some(key))
    }

    /// The key with public id `id` if it is neither revoked nor expired: a bearer token names
    /// the key that minted it, and lives only as long as that key does.
    pub async fn live_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .api_key_by_id(id)
            .await?
            .map(|(key, _)| key)
            .filter(|key| key.live(now_ms())))
    }

    /// The key with public id `id` and its secret's hash, revoked, expired or not.
    async fn api_key_by_id(&self, id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(api_key).transpose()?)
    }

    /// Keys of one tenant, or the operator keys when `tenant` is none.
    pub async fn api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 OR ($1 IS NULL AND tenant_id IS NULL) ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(api_key(r)?.0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Revokes a key of `tenant` (none: an operator key). Revoking twice is not an error.
    pub async fn revoke_api_key(&self, tenant: Option<&str>, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE id = $1 AND (tenant_id = $2 OR ($2 IS NULL AND tenant_id IS NULL))",
        )
        .bind(id)
        .bind(tenant)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("api key"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_id_and_secret() {
        assert_eq!(parse_key("wsk_ab12_s3cr3t"), Some(("ab12", "s3cr3t")));
        assert_eq!(parse_key("wsk__s3cr3t"), None);
        assert_eq!(parse_key("wsk_ab12_"), None);
        assert_eq!(parse_key("Bearer x"), None);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
