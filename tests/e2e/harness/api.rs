//! The switch's REST API as the tests use it: each helper asserts the answer it needs, so a
//! test reads as the steps an operator and a tenant take.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client of one switch's API, holding its operator key.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub operator: String,
    http: reqwest::Client,
}

/// A tenant and an admin key of its own.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub key: String,
}

/// How often [`Api::wait_for_cdr`] asks again. The switch writes records in batches every
/// ~20 ms; 100 ms keeps the wait short without flooding the API (whose rate limit the harness
/// raises anyway).
const CDR_POLL: Duration = Duration::from_millis(100);

impl Api {
    pub fn new(base: String, operator: String) -> Api {
        Api {
            base,
            operator,
            http: reqwest::Client::new(),
        }
    }

    /// Any request: `key` in Authorization (none: no header), `body` as JSON. The answer's
    /// body is parsed as JSON, or kept as a string when it is not JSON.
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
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
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

    #[allow(dead_code, reason = "for the call tests of issue 11")]
    pub async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(key), Some(body)).await
    }

    #[allow(dead_code, reason = "for the call tests of issue 11")]
    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Creates tenant `id` (as the operator) and an admin key for it.
    pub async fn tenant(&self, id: &str) -> Tenant {
        let (s, t) = self
            .post("/v1/tenants", &self.operator, json!({"id": id, "name": id}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "create tenant {id}: {t}");
        let (s, k) = self
            .post(
                &format!("/v1/tenants/{id}/keys"),
                &self.operator,
                json!({"name": "e2e", "role": "tenant-admin"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "admin key for {id}: {k}");
        Tenant {
            id: id.into(),
            key: k["secret"].as_str().expect("a key's secret").into(),
        }
    }

    /// Routes `number` (E.164) to the tenant.
    pub async fn did(&self, t: &Tenant, number: &str) {
        let (s, d) = self
            .post(
                &format!("/v1/tenants/{}/numbers", t.id),
                &t.key,
                json!({"number": number}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "number {number}: {d}");
    }

    /// Creates a trunk from `body` as given (the resource's fields change with the calls
    /// work: `inbound`, `caller_id`, an optional `port`), returns the created resource.
    pub async fn trunk(&self, t: &Tenant, body: Value) -> Value {
        let (s, trunk) = self
            .post(&format!("/v1/tenants/{}/trunks", t.id), &t.key, body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "trunk: {trunk}");
        trunk
    }

    /// Uploads `component` as the next version of plugin `name`, checked against `world`
    /// (router, ivr, messaging or switch), and activates it; returns the version.
    pub async fn plugin(&self, t: &Tenant, name: &str, world: &str, component: Vec<u8>) -> i64 {
        let resp = self
            .http
            .post(format!(
                "{}/v1/tenants/{}/plugins/{name}?world={world}&activate=true",
                self.base, t.id
            ))
            .bearer_auth(&t.key)
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::CREATED, "upload {name}: {v}");
        assert_eq!(v["active"], true, "{name} is active: {v}");
        v["version"].as_i64().expect("a version number")
    }

    /// Sets `key` in the tenant's kv store (what plugins read: the router's `routes`).
    pub async fn kv_put(&self, t: &Tenant, key: &str, value: impl Into<Vec<u8>>) {
        // The key is one path segment: a `/` in it travels percent-encoded.
        let key = key.replace('%', "%25").replace('/', "%2F");
        let resp = self
            .http
            .put(format!("{}/v1/tenants/{}/kv/{key}", self.base, t.id))
            .bearer_auth(&t.key)
            .header("content-type", "application/octet-stream")
            .body(value.into())
            .send()
            .await
            .expect("kv put");
        let status = resp.status();
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "kv {key}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// The tenant's call records, newest first: the first page (up to 500) of
    /// `GET /v1/tenants/{t}/cdrs?{query}` (`query` as the API takes it, e.g.
    /// `disposition=answered`; empty for all).
    pub async fn cdrs(&self, t: &Tenant, query: &str) -> Vec<Value> {
        let sep = if query.is_empty() { "" } else { "&" };
        let (s, page) = self
            .get(
                &format!("/v1/tenants/{}/cdrs?limit=500{sep}{query}", t.id),
                &t.key,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "cdrs: {page}");
        page["items"].as_array().expect("items").clone()
    }

    /// Waits up to `timeout` for a record of the tenant's that `found` accepts; none when
    /// there is none by then.
    pub async fn try_wait_for_cdr(
        &self,
        t: &Tenant,
        timeout: Duration,
        found: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(c) = self.cdrs(t, "").await.into_iter().find(|c| found(c)) {
                return Some(c);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(CDR_POLL).await;
        }
    }

    /// [`Api::try_wait_for_cdr`], failing the test with the records there are when none comes.
    #[allow(dead_code, reason = "for the call tests of issue 11")]
    pub async fn wait_for_cdr(
        &self,
        t: &Tenant,
        timeout: Duration,
        found: impl Fn(&Value) -> bool,
    ) -> Value {
        match self.try_wait_for_cdr(t, timeout, found).await {
            Some(c) => c,
            None => panic!(
                "no such call record within {timeout:?}; the tenant's records: {:#?}",
                self.cdrs(t, "").await
            ),
        }
    }

    /// The final record of the call whose caller's leg had SIP Call-ID `call_id` (a record
    /// still `running` is not final; one without a `state` predates running records).
    #[allow(dead_code, reason = "for the call tests of issue 11")]
    pub async fn wait_for_cdr_of_call(
        &self,
        t: &Tenant,
        call_id: &str,
        timeout: Duration,
    ) -> Value {
        self.wait_for_cdr(t, timeout, |c| {
            c["call_id"] == call_id && c["state"] != "running"
        })
        .await
    }
}
