use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::directory::bump_version;
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
    /// Concurrent calls at most; none: the host's default.
    #[serde(skip)]
    pub max_calls: Option<u32>,
    /// New calls per second at most; none: the host's default.
    #[serde(skip)]
    pub max_calls_per_second: Option<u32>,
    /// What the switch does with a call the tenant's router cannot decide; none: reject it
    /// with 503 ([`CallFallback::default`]).
    #[serde(skip)]
    pub call_fallback: Option<CallFallback>,
}

/// What the switch does with a call when the tenant's router plugin cannot decide: it
/// trapped, ran out of time, answered something invalid, or the tenant has none. In JSON
/// `{"reject": {"code": 503, "reason": "..."}}` or `{"dial": {"target": "...", "trunk": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CallFallback {
    /// Refuse the call with a SIP status.
    Reject {
        /// 400-699.
        #[schema(minimum = 400, maximum = 699)]
        code: u16,
        /// The reason phrase (at most 256 bytes, no control characters); none: the status's
        /// usual phrase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Send the call to one target, as if the router had said so.
    Dial {
        /// An E.164 number (`+14155550100`), a SIP URI (`sip:ops@example.com`) or the name
        /// of one of the tenant's SIP users (`alice`).
        target: String,
        /// The tenant's trunk to send it through (for a number); none: the switch's choice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trunk: Option<String>,
    },
}

impl Default for CallFallback {
    /// Reject with 503 Service Unavailable: the caller's side may try another route.
    fn default() -> Self {
        CallFallback::Reject {
            code: 503,
            reason: None,
        }
    }
}

/// The longest reason phrase a fallback may give, in bytes (it goes into a SIP status line).
pub const MAX_REASON_BYTES: usize = 256;
/// The longest SIP URI a fallback may dial, in bytes.
pub const MAX_TARGET_BYTES: usize = 256;

impl CallFallback {
    /// Checks the fallback's values (not whether its trunk exists: [`Store::set_call_fallback`]
    /// does that).
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Invalid(m));
        match self {
            CallFallback::Reject { code, reason } => {
                if !(400..=699).contains(code) {
                    return bad(format!("reject code {code} must be 400-699"));
                }
                if let Some(r) = reason {
                    if r.len() > MAX_REASON_BYTES {
                        return bad(format!(
                            "reject reason is longer than {MAX_REASON_BYTES} bytes"
                        ));
                    }
                    if r.chars().any(char::is_control) {
                        return bad("reject reason may not contain control characters".into());
                    }
                }
            }
            CallFallback::Dial { target, trunk } => {
                let ok = if target.contains(':') {
                    target.len() <= MAX_TARGET_BYTES
                        && wasmswitch_sip::uri::Uri::parse(bytes::Bytes::copy_from_slice(
                            target.as_bytes(),
                        ))
                        .is_ok_and(|u| u.as_sip().is_some())
                } else if target.starts_with('+') {
                    super::valid_e164(target)
                } else {
                    super::numbers::valid_sip_username(target)
                };
                if !ok {
                    return bad(format!(
                        "dial target {target:?} must be an E.164 number, a sip: URI or a SIP \
                         user's name"
                    ));
                }
                if let Some(t) = trunk
                    && !valid_tenant_id(t)
                {
                    return bad(format!(
                        "trunk {t:?} must be 1-63 lowercase letters, digits or '-'"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A tenant's call limits; none: the host's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallLimits {
    /// Calls in progress at once at most (0 refuses every call); `null`: the host's default.
    #[serde(default)]
    pub max_calls: Option<u32>,
    /// New calls per second at most (0 refuses every call); `null`: the host's default.
    #[serde(default)]
    pub max_calls_per_second: Option<u32>,
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

fn decode_err(col: &str, what: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.into(),
        source: what.into(),
    }
}

/// A tenant row's call limits and fallback.
pub(super) struct TenantCalls {
    pub limits: CallLimits,
    pub fallback: Option<CallFallback>,
}

/// A tenant row's call limits and fallback, checked: the one place they are decoded.
pub(super) fn tenant_calls(row: &AnyRow) -> Result<TenantCalls, sqlx::Error> {
    let limit = |col: &str| -> Result<Option<u32>, sqlx::Error> {
        row.try_get::<Option<i64>, _>(col)?
            .map(|n| u32::try_from(n).map_err(|_| decode_err(col, n.to_string())))
            .transpose()
    };
    let fallback = row
        .try_get::<Option<String>, _>("call_fallback")?
        .map(|json| {
            serde_json::from_str::<CallFallback>(&json)
                .map_err(|e| decode_err("call_fallback", format!("{json:?}: {e}")))
        })
        .transpose()?;
    Ok(TenantCalls {
        limits: CallLimits {
            max_calls: limit("max_calls")?,
            max_calls_per_second: limit("max_calls_per_second")?,
        },
        fallback,
    })
}

fn tenant(row: &AnyRow) -> Result<Tenant, sqlx::Error> {
    let calls = tenant_calls(row)?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        uid: row.try_get("uid")?,
        sip_domain: row.try_get("sip_domain")?,
        max_calls: calls.limits.max_calls,
        max_calls_per_second: calls.limits.max_calls_per_second,
        call_fallback: calls.fallback,
    })
}

const COLUMNS: &str =
    "id, name, created_at, uid, sip_domain, max_calls, max_calls_per_second, call_fallback";

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
            max_calls: None,
            max_calls_per_second: None,
            call_fallback: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO tenants (id, name, created_at, uid) VALUES ($1, $2, $3, $4)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(t.created_at)
            .bind(&t.uid)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::unique("tenant"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
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
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::unique("sip domain"))?
            .ok_or(StoreError::NotFound("tenant"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        self.identities.clear();
        Ok(tenant(&row)?)
    }

    /// Sets what the switch does with the tenant's calls its router cannot decide; `None`
    /// goes back to the default (reject with 503). A named trunk must be one of the
    /// tenant's.
    pub async fn set_call_fallback(
        &self,
        id: &str,
        fallback: Option<&CallFallback>,
    ) -> Result<Tenant, StoreError> {
        let json = match fallback {
            Some(f) => {
                f.validate()?;
                Some(serde_json::to_string(f).map_err(|e| StoreError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        let mut tx = self.begin_write().await?;
        if let Some(CallFallback::Dial {
            trunk: Some(name), ..
        }) = fallback
        {
            let found =
                sqlx::query("SELECT 1 AS one FROM trunks WHERE tenant_id = $1 AND name = $2")
                    .bind(id)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(StoreError::Invalid(format!(
                    "the fallback's trunk {name:?} is not one of the tenant's"
                )));
            }
        }
        let sql =
            format!("UPDATE tenants SET call_fallback = $2 WHERE id = $1 RETURNING {COLUMNS}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(json)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(tenant(&row)?)
    }

    /// Sets the tenant's call limits (`None`: the host's default).
    pub async fn set_call_limits(
        &self,
        id: &str,
        limits: CallLimits,
    ) -> Result<Tenant, StoreError> {
        let sql = format!(
            "UPDATE tenants SET max_calls = $2, max_calls_per_second = $3 WHERE id = $1 \
             RETURNING {COLUMNS}"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(limits.max_calls.map(i64::from))
            .bind(limits.max_calls_per_second.map(i64::from))
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(tenant(&row)?)
    }

    /// Deletes a tenant and, by cascade, everything it owns.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        bump_version(&mut tx).await?;
        tx.commit().await?;
        self.identities.clear();
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
    fn fallbacks_have_the_documented_json_shape() {
        let reject: CallFallback =
            serde_json::from_str(r#"{"reject": {"code": 486, "reason": "Busy Here"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reject,
            CallFallback::Reject {
                code: 486,
                reason: Some("Busy Here".into())
            }
        );
        let dial: CallFallback =
            serde_json::from_str(r#"{"dial": {"target": "+14155550100", "trunk": "carrier"}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            dial,
            CallFallback::Dial {
                target: "+14155550100".into(),
                trunk: Some("carrier".into())
            }
        );
        for f in [reject, dial, CallFallback::default()] {
            let json = serde_json::to_string(&f).unwrap_or_default();
            assert_eq!(serde_json::from_str::<CallFallback>(&json).ok(), Some(f));
        }
        assert_eq!(
            serde_json::to_value(CallFallback::default()).ok(),
            Some(serde_json::json!({"reject": {"code": 503}}))
        );
        for bad in [
            r#"{"reject": {"code": 503, "extra": 1}}"#,
            r#"{"hangup": {}}"#,
            r#"{"reject": {"code": 503}, "dial": {"target": "alice"}}"#,
            r#"{"dial": {}}"#,
        ] {
            assert!(serde_json::from_str::<CallFallback>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fallbacks_are_validated() {
        let reject = |code, reason: Option<&str>| CallFallback::Reject {
            code,
            reason: reason.map(Into::into),
        };
        let dial = |target: &str, trunk: Option<&str>| CallFallback::Dial {
            target: target.into(),
            trunk: trunk.map(Into::into),
        };
        for ok in [
            reject(400, None),
            reject(699, Some("Déclin")),
            reject(503, Some(&"x".repeat(MAX_REASON_BYTES))),
            dial("+14155550100", Some("carrier")),
            dial("sip:ops@example.com", None),
            dial("sips:ops@example.com:5061;transport=tcp", None),
            dial("alice", None),
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
        for bad in [
            reject(399, None),
            reject(700, None),
            reject(200, None),
            reject(503, Some(&"x".repeat(MAX_REASON_BYTES + 1))),
            reject(503, Some("two\r\nlines")),
            dial("+0123", None),
            dial("tel:+14155550100", None),
            dial("sip:", None),
            dial("sip:a b@example.com", None),
            dial("al ice", None),
            dial("", None),
            dial("alice", Some("Not A Trunk")),
            dial(
                &format!("sip:{}@example.com", "a".repeat(MAX_TARGET_BYTES)),
                None,
            ),
        ] {
            assert!(
                matches!(bad.validate(), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
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
