//! Bad input gets its own clear 4xx and changes nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both;
use crate::util::{App, assert_problem, one_shot_client, with_app};

both! {
    async fn bad_bodies_each_get_their_own_4xx(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let url = format!("{}/v1/tenants/acme/numbers", app.base);
            let send = |body: &'static str, ct: &'static str| {
                let req = app.http.post(&url).bearer_auth(&admin).header("content-type", ct).body(body);
                async move {
                    let r = req.send().await.unwrap();
                    let s = r.status();
                    (s, r.json::<Value>().await.unwrap_or(Value::Null))
                }
            };
            assert_problem(&send("{not json", "application/json").await, 400, "bad-request");
            assert_problem(&send("{\"number\": 15550100}", "application/json").await, 422, "unprocessable");
            assert_problem(&send("{\"number\": \"+15550100\", \"extra\": 1}", "application/json").await, 422, "unprocessable");
            assert_problem(&send("{\"number\": \"+15550100\"}", "text/plain").await, 415, "unsupported-media-type");
            // NUL has no place in text: refused in bodies and in URLs, on both databases.
            assert_problem(&send("{\"number\": \"+1555\\u0000\"}", "application/json").await, 422, "unprocessable");
            assert_problem(&app.post("/v1/tenants", &app.operator, json!({"id": "x", "name": "a\u{0}b"})).await, 422, "unprocessable");
            assert_problem(&app.get("/v1/tenants/acme/kv?prefix=a%00b", &admin).await, 400, "bad-request");
            assert_problem(&app.get("/v1/tenants/acme/kv/a%00b", &admin).await, 400, "bad-request");
            // Over the test host's 16 KiB JSON limit (small enough to fit the socket buffers, so
            // the client finishes writing before the server answers and closes).
            let huge = format!("{{\"number\": \"+15550100\", \"description\": \"{}\"}}", "x".repeat(40 * 1024));
            let r = one_shot_client().post(&url).bearer_auth(&admin).header("content-type", "application/json").body(huge).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["type"], "urn:wasmswitch:problem:too-large");
            // Nothing was created by any of them.
            assert_eq!(app.get("/v1/tenants/acme/numbers", &admin).await.1, json!([]));
            app
        })
        .await;
    }
}
