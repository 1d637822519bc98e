//! Where simulations run: plugin code for the API, kept away from the API itself.
//!
//! A simulation runs guest code for up to the plugin deadline without yielding (the epoch
//! deadline traps; it does not preempt). On the API's own threads, a few looping simulations
//! would hold every worker and stall every other request. So simulations run on threads of
//! their own (a small tokio runtime), in a bounded number of slots: a few per tenant and a few
//! in all, which also bounds the memory plugins can take (slots × the memory cap). A request
//! that finds no slot within a short wait is answered 503 with `Retry-After`, before any
//! plugin code runs. Compiled versions are shared, and compiled once however many requests
//! ask for a new one at the same moment.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use crate::plugins::{KvError, KvStore, PluginVersion, Runtime};

/// How simulations are bounded (`[api]` `simulate_*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatorLimits {
    /// Threads that run simulations.
    pub threads: usize,
    /// Simulations running at once, in all.
    pub concurrency: usize,
    /// Simulations running at once for one tenant.
    pub per_tenant: usize,
    /// How long a request waits for a free slot before it is answered 503.
    pub queue_wait: Duration,
}

/// The simulation threads, slots and compiled versions. See the module docs.
pub struct Simulator {
    runtime: Runtime,
    /// `None` only while dropping.
    threads: Option<tokio::runtime::Runtime>,
    all: Arc<Semaphore>,
    per_tenant: Arc<Mutex<HashMap<String, usize>>>,
    limits: SimulatorLimits,
    compiled: Mutex<HashMap<String, Arc<OnceCell<Arc<PluginVersion>>>>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which an async context must not do.
        if let Some(threads) = self.threads.take() {
            threads.shutdown_background();
        }
    }
}

/// Compiled versions kept; beyond this the map starts afresh (the disk cache makes a reload
/// cheap).
const COMPILED_MAX: usize = 32;

/// A simulation slot: one of the tenant's and one of all. Given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _tenant: TenantCount,
    _all: OwnedSemaphorePermit,
}

/// One of a tenant's running simulations, counted until dropped.
#[derive(Debug)]
struct TenantCount {
    tenant: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for TenantCount {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

const OVERLOADED: ApiError = ApiError::Overloaded {
    what: "every simulation slot is busy",
    retry_after_secs: 1,
};

impl Simulator {
    /// Starts the simulation threads. `runtime` is the (fuel-metering) plugin runtime the
    /// simulations use; its instance pool should have at least `limits.concurrency` slots.
    pub fn new(runtime: Runtime, limits: SimulatorLimits) -> std::io::Result<Self> {
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(limits.threads.max(1))
            .thread_name("wasmswitch-sim")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime,
            threads: Some(threads),
            all: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            per_tenant: Arc::default(),
            limits,
            compiled: Mutex::default(),
        })
    }

    /// The plugin runtime simulations use (fuel metering on, no metrics).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Takes a slot for `tenant`: at once if the tenant has one free, then waiting up to
    /// `queue_wait` for one of all. 503 (`Overloaded`) otherwise.
    pub async fn slot(&self, tenant: &str) -> Result<Slot, ApiError> {
        let counted = {
            let mut map = self.per_tenant.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(tenant.to_string()).or_insert(0);
            if *n >= self.limits.per_tenant.max(1) {
                return Err(OVERLOADED);
            }
            *n += 1;
            TenantCount {
                tenant: tenant.to_string(),
                counts: self.per_tenant.clone(),
            }
        };
        match tokio::time::timeout(self.limits.queue_wait, self.all.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot {
                _tenant: counted,
                _all: permit,
            }),
            // Timed out (or the semaphore closed): `counted` gives the tenant's count back.
            _ => Err(OVERLOADED),
        }
    }

    /// Runs `work` on the simulation threads, holding `slot` until it ends (even if the
    /// request that asked for it is gone: the slot bounds plugin code actually running).
    pub async fn run<T, F>(&self, slot: Slot, work: F) -> Result<T, ApiError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let threads = self
            .threads
            .as_ref()
            .ok_or_else(|| ApiError::Internal("the simulation threads are stopped".into()))?;
        let task = threads.spawn(async move {
            let out = work.await;
            drop(slot);
            out
        });
        task.await
            .map_err(|e| ApiError::Internal(format!("a simulation task failed: {e}")))
    }

    /// The compiled version under `key` (which must name the code: tenant uid, name, version
    /// and sha256), made by `load` once however many ask at the same moment.
    pub async fn version<F>(&self, key: String, load: F) -> Result<Arc<PluginVersion>, ApiError>
    where
        F: Future<Output = Result<Arc<PluginVersion>, ApiError>>,
    {
        let cell = {
            let mut map = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= COMPILED_MAX && !map.contains_key(&key) {
                map.clear();
            }
            map.entry(key).or_default().clone()
        };
        cell.get_or_try_init(|| load).await.cloned()
    }
}

/// A [`KvStore`] whose operations run on another runtime (the API's), so the database's
/// connections are only ever driven by the runtime that opened them.
pub struct OnRuntime {
    inner: Arc<dyn KvStore>,
    handle: tokio::runtime::Handle,
}

impl OnRuntime {
    pub fn new(inner: Arc<dyn KvStore>, handle: tokio::runtime::Handle) -> Self {
        Self { inner, handle }
    }

    async fn call<T, F, Fut>(&self, f: F) -> Result<T, KvError>
    where
        F: FnOnce(Arc<dyn KvStore>) -> Fut,
        Fut: Future<Output = Result<T, KvError>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(f(self.inner.clone()))
            .await
            .map_err(|e| KvError::Unavailable(format!("kv task failed: {e}")))?
    }
}

#[async_trait]
impl KvStore for OnRuntime {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.call(|kv| async move { kv.get(&tenant, &key).await })
            .await
    }

    async fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        let (tenant, key, value) = (tenant.to_string(), key.to_string(), value.to_vec());
        self.call(|kv| async move { kv.set(&tenant, &key, &value).await })
            .await
    }

    async fn delete(&self, tenant: &str, key: &str) -> Result<(), KvError> {
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.call(|kv| async move { kv.delete(&tenant, &key).await })
            .await
    }

    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<String>, KvError> {
        let (tenant, prefix) = (tenant.to_string(), prefix.to_string());
        self.call(|kv| async move { kv.list_keys(&tenant, &prefix, limit).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulator(concurrency: usize, per_tenant: usize) -> Simulator {
        let runtime = Runtime::new(
            crate::plugins::RuntimeConfig {
                max_instances: 4,
                ..Default::default()
            },
            Arc::new(crate::plugins::MemoryKv::new()),
        )
        .unwrap();
        Simulator::new(
            runtime,
            SimulatorLimits {
                threads: 1,
                concurrency,
                per_tenant,
                queue_wait: Duration::from_millis(50),
            },
        )
        .unwrap()
    }

    fn overloaded(r: Result<Slot, ApiError>) -> bool {
        matches!(r, Err(ApiError::Overloaded { .. }))
    }

    #[tokio::test]
    async fn slots_are_bounded_per_tenant_and_in_all_and_given_back() {
        let sim = simulator(3, 2);
        let a1 = sim.slot("a").await.unwrap();
        let a2 = sim.slot("a").await.unwrap();
        assert!(overloaded(sim.slot("a").await), "a third for one tenant");
        let b1 = sim.slot("b").await.unwrap();
        assert!(overloaded(sim.slot("c").await), "none left in all");
        assert!(
            sim.per_tenant.lock().unwrap().get("c").is_none(),
            "a refused request keeps no count"
        );
        drop(a1);
        let c1 = sim.slot("c").await.unwrap();
        drop((a2, b1, c1));
        assert!(sim.per_tenant.lock().unwrap().is_empty());
        assert_eq!(sim.all.available_permits(), 3);
    }

    #[tokio::test]
    async fn a_slot_is_held_until_its_work_ends_even_if_the_request_is_gone() {
        let sim = Arc::new(simulator(1, 1));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let slot = sim.slot("a").await.unwrap();
        let request = tokio::spawn({
            let sim = sim.clone();
            async move { sim.run(slot, async move { rx.await.ok() }).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        request.abort();
        assert!(overloaded(sim.slot("b").await), "the work still runs");
        tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(sim.slot("b").await.is_ok());
    }

    #[tokio::test]
    async fn work_runs_on_the_simulation_threads() {
        let sim = simulator(1, 1);
        let slot = sim.slot("a").await.unwrap();
        let name = sim
            .run(slot, async {
                std::thread::current().name().map(str::to_string)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("wasmswitch-sim"));
    }
}
