//! Who a REGISTER names: the tenant serving its domain and the SIP user's digest hashes, read
//! in one query and kept for a few seconds.
//!
//! A phone registering sends two REGISTERs a few milliseconds apart (the first is challenged),
//! and both need the same tenant and hashes: the second is answered from this cache. Entries
//! live [`TTL`]; every change this host makes to a SIP user or a tenant's domains (through
//! the store, so through the API) empties the cache, so this host never answers from a stale
//! entry. Another host sharing a PostgreSQL database keeps its own cache: it may accept an old
//! password, or miss a new user or domain, for up to [`TTL`] after the change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SipCredentials, Store, StoreError, valid_tenant_id};

/// How long a looked-up identity is used without asking the database again: 10 s, long
/// enough for a challenge and its answer (milliseconds apart, seconds for a slow phone), short
/// enough that a password changed on another host takes effect soon.
pub const TTL: Duration = Duration::from_secs(10);

/// How many (domain, username) pairs the cache holds: 10,000 identities are a few MiB. A flood
/// of REGISTERs for made-up users fills it; then it is emptied and refilled, which costs reads,
/// never memory.
const MAX_ENTRIES: usize = 10_000;

/// The tenant a SIP domain belongs to and, if it exists, the SIP user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipIdentity {
    pub tenant_id: String,
    /// The tenant's current SIP domain: the realm a SIP user made or given a password now
    /// is hashed in (its own domain if it set one, else `<tenant>.<base>`).
    pub tenant_realm: String,
    /// The SIP user, if the tenant has one by that name.
    pub user: Option<SipCredentials>,
}

/// Identities looked up recently, by (lower-case domain, username). `None` remembers that no
/// tenant has the domain.
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(String, String), (Instant, Option<SipIdentity>)>,
    /// Counts the times the cache was emptied for a change: a lookup that read the database
    /// before a change and finishes after it must not store what it read.
    generation: u64,
}

impl IdentityCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Every change to the map is whole: a poisoned lock holds nothing half-made.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `key` if it is younger than [`TTL`] at `now`.
    fn get(&self, key: &(String, String), now: Instant) -> Option<Option<SipIdentity>> {
        let entries = self.entries();
        let (at, found) = entries.map.get(key)?;
        (now.saturating_duration_since(*at) < TTL).then(|| found.clone())
    }

    fn generation(&self) -> u64 {
        self.entries().generation
    }

    /// Stores what was read at `now`, unless the cache was emptied since `generation`.
    fn put(
        &self,
        key: (String, String),
        found: Option<SipIdentity>,
        generation: u64,
        now: Instant,
    ) {
        let mut entries = self.entries();
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(&key) {
            entries
                .map
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < TTL);
            if entries.map.len() >= MAX_ENTRIES {
                entries.map.clear();
            }
        }
        entries.map.insert(key, (now, found));
    }

    /// Forgets everything: a SIP user or a tenant's domain changed.
    pub(crate) fn clear(&self) {
        let mut entries = self.entries();
        entries.map.clear();
        entries.generation += 1;
    }
}

fn credentials(row: &AnyRow) -> Result<Option<SipCredentials>, sqlx::Error> {
    let Some(user_id) = row.try_get::<Option<String>, _>("user_id")? else {
        return Ok(None);
    };
    let field = |name: &str| -> Result<String, sqlx::Error> {
        row.try_get::<Option<String>, _>(name)?
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: name.into(),
                source: "NULL in a SIP user's row".into(),
            })
    };
    Ok(Some(SipCredentials {
        user_id,
        tenant_id: row.try_get("tenant_id")?,
        username: field("username")?,
        realm: field("realm")?,
        ha1_md5: field("ha1")?,
        ha1_sha256: row.try_get("ha1_sha256")?,
    }))
}

impl Store {
    /// The tenant whose phones live in `domain` (`<id>.<base>` names tenant `id`, any other
    /// domain the tenant that set it; compared without regard to case) and its SIP user
    /// `username`, from the cache when it was looked up less than [`TTL`] ago. `None` when no
    /// tenant has the domain.
    pub async fn sip_identity(
        &self,
        domain: &str,
        base: &str,
        username: &str,
    ) -> Result<Option<SipIdentity>, StoreError> {
        let domain = domain.to_ascii_lowercase();
        let key = (domain, username.to_owned());
        if let Some(found) = self.identities.get(&key, Instant::now()) {
            return Ok(found);
        }
        let generation = self.identities.generation();
        let found = self.read_sip_identity(&key.0, base, username).await?;
        self.identities
            .put(key, found.clone(), generation, Instant::now());
        Ok(found)
    }

    /// [`Store::sip_identity`] from the database: one query.
    async fn read_sip_identity(
        &self,
        domain: &str,
        base: &str,
        username: &str,
    ) -> Result<Option<SipIdentity>, StoreError> {
        let base = base.to_ascii_lowercase();
        let by_id = domain
            .strip_suffix(&base)
            .and_then(|d| d.strip_suffix('.'))
            .filter(|id| valid_tenant_id(id));
        let (filter, key) = match by_id {
            Some(id) => ("t.id", id),
            None => ("t.sip_domain", domain),
        };
        let sql = format!(
            "SELECT t.id AS tenant_id, t.sip_domain, u.id AS user_id, u.username, u.realm, \
             u.ha1, u.ha1_sha256 FROM tenants t \
             LEFT JOIN sip_users u ON u.tenant_id = t.id AND u.username = $2 \
             WHERE {filter} = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant_id: String = row.try_get("tenant_id")?;
        let own: Option<String> = row.try_get("sip_domain")?;
        Ok(Some(SipIdentity {
            tenant_realm: own.unwrap_or_else(|| format!("{tenant_id}.{base}")),
            user: credentials(&row)?,
            tenant_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(tenant: &str) -> Option<SipIdentity> {
        Some(SipIdentity {
            tenant_id: tenant.into(),
            tenant_realm: format!("{tenant}.example"),
            user: None,
        })
    }

    fn key(domain: &str) -> (String, String) {
        (domain.into(), "alice".into())
    }

    #[test]
    fn an_entry_lives_its_ttl() {
        let cache = IdentityCache::default();
        let t0 = Instant::now();
        cache.put(key("a"), identity("a"), cache.generation(), t0);
        assert_eq!(cache.get(&key("a"), t0 + TTL / 2), Some(identity("a")));
        assert_eq!(cache.get(&key("a"), t0 + TTL), None);
        assert_eq!(cache.get(&key("b"), t0), None);
        // An unknown domain is remembered as unknown.
        cache.put(key("b"), None, cache.generation(), t0);
        assert_eq!(cache.get(&key("b"), t0), Some(None));
    }

    #[test]
    fn a_change_empties_it_and_a_read_from_before_the_change_is_not_kept() {
        let cache = IdentityCache::default();
        let t0 = Instant::now();
        cache.put(key("a"), identity("a"), cache.generation(), t0);
        let before = cache.generation();
        cache.clear();
        assert_eq!(cache.get(&key("a"), t0), None);
        cache.put(key("a"), identity("stale"), before, t0);
        assert_eq!(cache.get(&key("a"), t0), None, "read before the change");
        cache.put(key("a"), identity("a"), cache.generation(), t0);
        assert_eq!(cache.get(&key("a"), t0), Some(identity("a")));
    }

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let cache = IdentityCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES {
            cache.put(key(&i.to_string()), None, cache.generation(), t0);
        }
        assert_eq!(cache.entries().map.len(), MAX_ENTRIES);
        // Full of live entries: emptied, then the new one goes in.
        cache.put(key("new"), None, cache.generation(), t0);
        assert_eq!(cache.entries().map.len(), 1);
        // Full with lapsed entries among them: only those go.
        for i in 0..MAX_ENTRIES - 1 {
            cache.put(key(&i.to_string()), None, cache.generation(), t0 + TTL);
        }
        cache.put(key("newer"), None, cache.generation(), t0 + TTL);
        assert_eq!(cache.entries().map.len(), MAX_ENTRIES);
        assert_eq!(cache.get(&key("new"), t0 + TTL), None);
        assert_eq!(cache.get(&key("newer"), t0 + TTL), Some(None));
    }
}
