//! A test host and an HTTP client for it.

use std::future::Future;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmswitch::config::Config;
use wasmswitch::service::Service;
use wasmswitch::store::Store;

/// A database of the test's own.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        TestDb {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh database on the test PostgreSQL server; none if no server is configured, except
    /// in CI (`CI` set), where a missing server must fail the run rather than skip half of it.
    pub async fn postgres() -> Option<TestDb> {
        let base = std::env::var("WASMSWITCH_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty());
        let Some(base) = base else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but WASMSWITCH_TEST_POSTGRES_URL is not: the PostgreSQL half would be skipped"
            );
            return None;
        };
        let name = format!("wasmswitch_test_{}", hex_id());
        let admin = Store::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base}: {e}"));
        admin
            .execute_raw(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        admin.close().await;
        let url = match base.rfind('/') {
            Some(i) if i > "postgres://".len() => format!("{}/{name}", &base[..i]),
            _ => format!("{base}/{name}"),
        };
        Some(TestDb {
            url,
            _dir: None,
            pg: Some((base, name)),
        })
    }

    pub async fn drop_db(self) {
        if let Some((base, name)) = &self.pg
            && let Ok(admin) = Store::connect(base).await
        {
            let _ = admin
                .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin.close().await;
        }
    }
}

fn hex_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `test` on SQLite and (when configured) PostgreSQL, as two `#[tokio::test]`s.
#[macro_export]
macro_rules! both {
    ($(#[$m:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::util::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::util::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::util::TestDb::postgres().await {
                    Some(db) => run(db).await,
                    None => eprintln!(
                        "skipped: set WASMSWITCH_TEST_POSTGRES_URL to run on PostgreSQL"
                    ),
                }
            }
        }
    };
}

/// A host's configuration for tests: API on a free port, small pools, no compiled cache unless
/// asked (the component cache is shared, see [`cache_dir`]).
pub fn config(db: &TestDb) -> Config {
    let mut c = Config::default();
    c.api.listen = "127.0.0.1:0".into();
    c.sip.listen = "127.0.0.1:0".into();
    c.database.url = db.url.clone();
    c.plugins.max_instances = 64;
    // Generous: forty tests share two cores, and a plugin's `kv` reads wait for the database
    // within its deadline. The deadline itself is tested with plugins that loop.
    c.plugins.deadline_ms = 1000;
    c.plugins.cache_dir = cache_dir();
    c.api.jwt_secret = "test-secret-test-secret-test-secret!".into();
    c.api.rate_limit_per_second = 10_000;
    c.api.rate_limit_burst = 10_000;
    c.api.max_body_bytes = 16 * 1024;
    c
}

/// A client that opens a connection per request: for bodies over the limit, which the server
/// answers (413) without reading, then closes the connection.
pub fn one_shot_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Compiled components shared by every test (keyed by sha256 and engine).
pub fn cache_dir() -> String {
    format!("{}/api-component-cache", env!("CARGO_TARGET_TMPDIR"))
}

/// A running host and a client with the operator key.
pub struct App {
    pub service: Service,
    /// The configuration it was started with.
    pub config: Config,
    pub operator: String,
    pub http: reqwest::Client,
    pub base: String,
}

impl App {
    /// Starts a host on a fresh database and takes the operator key it prints.
    pub async fn start(config: Config) -> App {
        let mut app = Self::start_existing(config, String::new()).await;
        app.operator = app
            .service
            .first_operator_key
            .clone()
            .expect("a fresh database gets an operator key");
        app
    }

    /// Starts a host on a database that already has an operator key.
    pub async fn start_existing(config: Config, operator: String) -> App {
        let service = Service::start(config.clone())
            .await
            .expect("service starts");
        let base = format!("http://{}", service.api_addr);
        App {
            service,
            config,
            operator,
            http: reqwest::Client::new(),
            base,
        }
    }

    pub async fn stop(self) {
        self.service.stop().await;
    }

    /// Sends a request with `key` (none: no Authorization header) and a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// Uploads a component file.
    pub async fn upload(
        &self,
        tenant: &str,
        name: &str,
        key: &str,
        bytes: Vec<u8>,
        query: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!(
                "{}/v1/tenants/{tenant}/plugins/{name}{query}",
                self.base
            ))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates a tenant and returns an admin key for it.
    pub async fn tenant(&self, id: &str) -> String {
        let (s, _) = self
            .post("/v1/tenants", &self.operator, json!({"id": id, "name": id}))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        self.key(id, "tenant-admin").await
    }

    pub async fn key(&self, tenant: &str, role: &str) -> String {
        let (s, k) = self
            .post(
                &format!("/v1/tenants/{tenant}/keys"),
                &self.operator,
                json!({"name": "test", "role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        k["secret"].as_str().expect("secret").to_string()
    }
}

/// Asserts a problem document of the given status and type.
#[track_caller]
pub fn assert_problem(got: &(StatusCode, Value), status: u16, kind: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(
        got.1["type"].as_str(),
        Some(format!("urn:wasmswitch:problem:{kind}").as_str()),
        "body: {}",
        got.1
    );
}

/// Starts a host on `db`, runs `f`, stops it, drops the database.
pub async fn with_app<F, Fut>(db: TestDb, f: F)
where
    F: FnOnce(App) -> Fut,
    Fut: Future<Output = App>,
{
    let app = App::start(config(&db)).await;
    let app = f(app).await;
    app.stop().await;
    db.drop_db().await;
}

pub fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Waits (up to 5 s) until `read` gives `want`, as a host following the store's changes made
/// through another host does; fails with the last value seen.
pub async fn eventually<T: PartialEq + std::fmt::Debug>(read: impl Fn() -> T, want: T) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = read();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "expected {want:?}, still {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
