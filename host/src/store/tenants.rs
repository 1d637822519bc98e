use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, now_ms, random_bytes};

/// A customer of the switch. Everything else (keys, plugins, numbers, calls) belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// A short slug chosen at creation: lowercase letters, digits and `-`, 1 to 63 long.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Random, made at creation: a tenant deleted and created again under the same id is
    /// another tenant with another uid. Bearer tokens carry it, so they die with their tenant.
    #[serde(skip)]
    pub uid: String,
    /// The SIP domain the tenant set for its phones, if any (lower-case). Besides it, the
    /// tenant's phones are always reachable in `<id>.<sip.domain>`.
    #[serde(skip)]
    pub sip_domain: Option<String>,
}

/// Whether `domain` is a DNS name a tenant may use as its SIP domain: lower-case labels of
/// letters, digits and `-` (not at a label's ends), at least two of them, 253 characters at
/// most. IP addresses are not domains: every tenant's phones may reach the switch by its
/// address, so an address cannot say which tenant they belong to.
pub fn valid_sip_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        // The last label of a DNS name is never all digits, so this is not an IPv4 address.
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

/// The longest free text a field takes (names, descriptions, display names), in characters.
pub const MAX_TEXT_CHARS: usize = 256;

/// Refuses free text that is too long or holds control characters (a name is shown in
/// consoles, logs and SIP headers; none of those want a line break or an escape sequence).
pub fn check_text(field: &str, value: &str) -> Result<(), StoreError> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(StoreError::Invalid(format!(
            "{field} is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{field} may not contain control characters"
        )));
    }
    Ok(())
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
        uid: row.try_get("uid")?,
        sip_domain: row.try_get("sip_domain")?,
    })
}

const COLUMNS: &str = "id, name, created_at, uid, sip_domain";

impl Store {
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        if !valid_tenant_id(id) {
            return Err(StoreError::Invalid(format!(
                "tenant id {id:?} must be 1-63 lowercase letters, digits or '-'"
            )));
        }
        check_text("name", name)?;
        let t = Tenant {
            id: id.to_string(),
            name: name.to_string(),
            created_at: now_ms(),
            uid: hex::encode(random_bytes::<16>()?),
            sip_domain: None,
        };
        sqlx::query("INSERT INTO tenants (id, name, created_at, uid) VALUES ($1, $2, $3, $4)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.created_at)
            .bind(&t.uid)
            .execute(self.writer())
            .await
            .map_err(StoreError::unique("tenant"))?;
        // `<id>.<base>` may have been looked up, and remembered as no one's.
        self.identities.clear();
        Ok(t)
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        Ok(tenant(&row)?)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(tenant).collect::<Result<_, _>>()?)
    }

    pub async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        check_text("name", name)?;
        let sql = format!("UPDATE tenants SET name = $2 WHERE id = $1 RETURNING {COLUMNS}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(name)
            .fetch_optional(self.writer())
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        Ok(tenant(&row)?)
    }

    /// Sets the SIP domain a tenant's phones use (lower-cased), or, with `None`, drops it so
    /// that only `<id>.<base>` is left. A domain under `base` is refused: those names are
    /// the tenants' default domains.
    pub async fn set_tenant_sip_domain(
        &self,
        id: &str,
        domain: Option<&str>,
        base: &str,
    ) -> Result<Tenant, StoreError> {
        let domain = domain.map(str::to_ascii_lowercase);
        if let Some(d) = &domain {
            if !valid_sip_domain(d) {
                return Err(StoreError::Invalid(format!(
                    "sip_domain {d:?} must be a DNS name such as sip.example.com"
                )));
            }
            let base = base.to_ascii_lowercase();
            if *d == base || d.ends_with(&format!(".{base}")) {
                return Err(StoreError::Invalid(format!(
                    "sip_domain {d:?} is under {base}, whose names are the tenants' own \
                     (<tenant>.{base})"
                )));
            }
        }
        let sql = format!("UPDATE tenants SET sip_domain = $2 WHERE id = $1 RETURNING {COLUMNS}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(domain)
            .fetch_optional(self.writer())
            .await
            .map_err(StoreError::unique("sip domain"))?
            .ok_or(StoreError::NotFound("tenant"))?;
        self.identities.clear();
        Ok(tenant(&row)?)
    }

    /// Deletes a tenant and, by cascade, everything it owns.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        self.identities.clear();
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    /// Whether the tenant `id` exists and is the one whose uid is `uid` (not a tenant deleted
    /// since, nor a new one that took its id).
    pub async fn tenant_is(&self, id: &str, uid: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM tenants WHERE id = $1 AND uid = $2")
            .bind(id)
            .bind(uid)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_domains_are_dns_names() {
        for ok in [
            "sip.acme.com",
            "a.b",
            "x-1.example.org",
            "acme.wasmswitch.local",
        ] {
            assert!(valid_sip_domain(ok), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "Sip.Acme.com",
            "10.0.0.1",
            "[::1]",
            "a..b",
            "-a.b",
            "a-.b",
            "a.b.",
            "a_b.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(!valid_sip_domain(bad), "{bad}");
        }
    }

    #[test]
    fn free_text_is_bounded_and_printable() {
        assert!(check_text("name", "Acme Ltd — Zürich").is_ok());
        assert!(check_text("name", &"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(check_text("name", &"a".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_text("name", "two words").is_ok());
        assert!(check_text("name", "two\nlines").is_err());
        assert!(check_text("name", "bell\u{7}").is_err());
    }
}
