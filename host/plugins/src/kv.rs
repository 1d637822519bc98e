//! The storage behind the plugins' `kv` import.
//!
//! The runtime only sees the [`KvStore`] trait; the in-memory [`MemoryKv`] serves tests and the
//! harness, and the store module provides the database-backed one. Every operation is scoped to a
//! tenant by the host: a plugin cannot name another tenant's keys.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// The longest key a plugin may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value a plugin may store, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most keys one `list-keys` call returns.
pub const MAX_LIST: u32 = 1000;

/// Why a key-value operation failed. Exhaustive on purpose: each case maps to one answer in
/// every contract version's `kv.error` and in the API, and a new case must be mapped in each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or the value is over its size limit.
    #[error("key or value too large")]
    TooLarge,
    /// The backing store could not be reached; the operation may be retried.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

/// A tenant-scoped key-value store.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError>;
    /// Keys starting with `prefix`, in byte order, at most `limit`.
    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, KvError>;
}

/// An in-memory [`KvStore`]: for tests, the harness and single-process use.
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        // A panic while holding this lock cannot leave the map half-changed (every operation is
        // one map call), so a poisoned lock is still safe to use.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every key and value of one tenant, for inspection in tests.
    pub fn snapshot(&self, tenant: &str) -> BTreeMap<String, Vec<u8>> {
        self.lock()
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Checks the size limits every backend enforces.
pub fn check_sizes(key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES || value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
        return Err(KvError::TooLarge);
    }
    Ok(())
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_sizes(key, None)?;
        Ok(self.lock().get(&(tenant.into(), key.into())).cloned())
    }

    async fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        self.lock()
            .insert((tenant.into(), key.into()), value.to_vec());
        Ok(())
    }

    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError> {
        check_sizes(key, None)?;
        self.lock().remove(&(tenant.into(), key.into()));
        Ok(())
    }

    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        check_sizes(prefix, None)?;
        let start = (tenant.to_string(), prefix.to_string());
        Ok(self
            .lock()
            .range(start..)
            .take_while(|((t, k), _)| t == tenant && k.starts_with(prefix))
            .take(limit.min(MAX_LIST) as usize)
            .map(|((_, k), _)| k.clone())
            .collect())
    }
}

/// A [`KvStore`] that reads through to another but keeps every write to itself: a dry run.
/// The simulate endpoint gives one to each simulation, so a plugin under test sees the tenant's
/// real data and cannot change it; [`OverlayKv::changes`] shows what it would have written.
pub struct OverlayKv {
    base: std::sync::Arc<dyn KvStore>,
    writes: Mutex<Writes>,
}

/// (tenant, key) -> the new value, or none for a deletion.
type Writes = BTreeMap<(String, String), Option<Vec<u8>>>;

impl std::fmt::Debug for OverlayKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayKv").finish_non_exhaustive()
    }
}

impl OverlayKv {
    pub fn new(base: std::sync::Arc<dyn KvStore>) -> Self {
        Self {
            base,
            writes: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the plugin wrote for `tenant`: key -> new value (none: deleted).
    pub fn changes(&self, tenant: &str) -> BTreeMap<String, Option<Vec<u8>>> {
        self.lock()
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[async_trait]
impl KvStore for OverlayKv {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_sizes(key, None)?;
        let written = self.lock().get(&(tenant.into(), key.into())).cloned();
        match written {
            Some(v) => Ok(v),
            None => self.base.get(tenant, key).await,
        }
    }

    async fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        self.lock()
            .insert((tenant.into(), key.into()), Some(value.to_vec()));
        Ok(())
    }

    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError> {
        check_sizes(key, None)?;
        self.lock().insert((tenant.into(), key.into()), None);
        Ok(())
    }

    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        check_sizes(prefix, None)?;
        let limit = limit.min(MAX_LIST) as usize;
        let changes = self.changes(tenant);
        // Ask the base for enough keys that deletions here cannot leave the page short.
        let extra = changes.values().filter(|v| v.is_none()).count() as u32;
        let mut keys: std::collections::BTreeSet<String> = self
            .base
            .list_keys(tenant, prefix, (limit as u32).saturating_add(extra))
            .await?
            .into_iter()
            .collect();
        for (k, v) in changes.into_iter().filter(|(k, _)| k.starts_with(prefix)) {
            match v {
                Some(_) => keys.insert(k),
                None => keys.remove(&k),
            };
        }
        Ok(keys.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tenants_do_not_see_each_other() {
        let kv = MemoryKv::new();
        kv.set("a", "k", b"1").await.unwrap();
        kv.set("b", "k", b"2").await.unwrap();
        assert_eq!(kv.get("a", "k").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("b", "k").await.unwrap().as_deref(), Some(&b"2"[..]));
        kv.delete("a", "k").await.unwrap();
        assert_eq!(kv.get("a", "k").await.unwrap(), None);
        assert_eq!(kv.get("b", "k").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn list_keys_is_prefix_scoped_and_limited() {
        let kv = MemoryKv::new();
        for k in ["route/1", "route/2", "route/3", "routf", "other"] {
            kv.set("t", k, b"x").await.unwrap();
        }
        kv.set("u", "route/9", b"x").await.unwrap();
        assert_eq!(
            kv.list_keys("t", "route/", 10).await.unwrap(),
            ["route/1", "route/2", "route/3"]
        );
        assert_eq!(kv.list_keys("t", "route/", 2).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn overlay_reads_through_and_keeps_writes_to_itself() {
        let base = std::sync::Arc::new(MemoryKv::new());
        base.set("t", "a", b"1").await.unwrap();
        base.set("t", "b", b"2").await.unwrap();
        let overlay = OverlayKv::new(base.clone());
        assert_eq!(
            overlay.get("t", "a").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        overlay.set("t", "a", b"9").await.unwrap();
        overlay.delete("t", "b").await.unwrap();
        overlay.set("t", "c", b"3").await.unwrap();
        assert_eq!(
            overlay.get("t", "a").await.unwrap().as_deref(),
            Some(&b"9"[..])
        );
        assert_eq!(overlay.get("t", "b").await.unwrap(), None);
        assert_eq!(overlay.list_keys("t", "", 10).await.unwrap(), ["a", "c"]);
        // The base is untouched.
        assert_eq!(
            base.get("t", "a").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            base.get("t", "b").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(overlay.changes("t").len(), 3);
    }

    #[tokio::test]
    async fn oversize_is_refused() {
        let kv = MemoryKv::new();
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert_eq!(kv.set("t", "k", &big).await, Err(KvError::TooLarge));
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(kv.get("t", &long_key).await, Err(KvError::TooLarge));
    }
}
