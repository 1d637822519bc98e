//! Credentials, roles, tenant isolation and rate limits.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::util::{App, assert_problem, config, with_app};

both! {
    async fn missing_wrong_revoked_and_expired_credentials(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let path = "/v1/tenants/acme/numbers";
            assert_problem(&app.call(Method::GET, path, None, None).await, 401, "unauthenticated");
            assert_problem(&app.get(path, "not-a-key").await, 401, "unauthenticated");
            assert_problem(&app.get(path, "wsk_nosuchid_secret").await, 401, "unauthenticated");
            // A real key id with a forged secret.
            let id = admin.split('_').nth(1).unwrap();
            assert_problem(&app.get(path, &format!("wsk_{id}_{}", "f".repeat(64))).await, 401, "unauthenticated");
            assert_eq!(app.get(path, &admin).await.0, StatusCode::OK);

            // Revoked at once.
            let (_, keys) = app.get("/v1/tenants/acme/keys", &admin).await;
            assert!(keys.as_array().unwrap().iter().all(|k| k.get("secret").is_none() && k.get("secret_hash").is_none()));
            let (s, _) = app.call(Method::DELETE, &format!("/v1/tenants/acme/keys/{id}"), Some(&app.operator), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            assert_problem(&app.get(path, &admin).await, 401, "unauthenticated");

            // Tokens: minted, used, expired, forged.
            let (s, tok) = app
                .post("/v1/tokens", &app.operator, json!({"subject": "dash", "role": "tenant-read", "tenant": "acme", "ttl_secs": 60}))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{tok}");
            let token = tok["token"].as_str().unwrap();
            assert_eq!(app.get(path, token).await.0, StatusCode::OK);
            assert_problem(&app.post(path, token, json!({"number": "+15550100"})).await, 403, "forbidden");
            let expired = jwt(&json!({"sub": "x", "role": "tenant-admin", "tenant": "acme", "tid": "x", "key": "x", "exp": 1_000_000, "iat": 999_000}), "test-secret-test-secret-test-secret!");
            assert_problem(&app.get(path, &expired).await, 401, "expired-token");
            let forged = jwt(&json!({"sub": "x", "role": "operator", "key": "x", "exp": 4_000_000_000u64, "iat": 1}), "another-secret-another-secret-another");
            assert_problem(&app.get(path, &forged).await, 401, "unauthenticated");
            // A tenant admin cannot mint an operator token or one for another tenant.
            let admin2 = app.key("acme", "tenant-admin").await;
            assert_problem(&app.post("/v1/tokens", &admin2, json!({"subject": "x", "role": "operator"})).await, 403, "forbidden");
            app.tenant("other").await;
            assert_problem(&app.post("/v1/tokens", &admin2, json!({"subject": "x", "role": "tenant-read", "tenant": "other"})).await, 403, "forbidden");
            app
        })
        .await;
    }
}

/// An HS256 token signed with `secret`, built by hand (not by the code under test).
fn jwt(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Fills a route template from the OpenAPI document with values for tenant `a`.
fn fill(template: &str) -> String {
    template
        .replace("{tenant}", "a")
        .replace("{name}", "router")
        .replace("{version}", "1")
        .replace("{key}", "k")
        .replace("{number}", "%2B15550100")
        .replace("{id}", "x")
}

both! {
    async fn no_tenant_route_lets_another_tenant_in(db) {
        with_app(db, |app: App| async move {
            app.tenant("a").await;
            let b_admin = app.tenant("b").await;
            let b_read = app.key("b", "tenant-read").await;
            let (_, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
            let paths = doc["paths"].as_object().expect("paths");
            let mut checked = 0;
            for (template, ops) in paths {
                if !template.contains("{tenant}") {
                    continue;
                }
                for method in ops.as_object().unwrap().keys() {
                    let Ok(m) = method.to_uppercase().parse::<Method>() else { continue };
                    if !matches!(m, Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
                        continue;
                    }
                    for key in [&b_admin, &b_read] {
                        let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
                        let got = app.call(m.clone(), &fill(template), Some(key), body).await;
                        assert_eq!(got.0, StatusCode::FORBIDDEN, "{m} {template}: {}", got.1);
                        checked += 1;
                    }
                }
            }
            assert!(checked >= 40, "only {checked} tenant routes checked");
            // The tenant list shows a tenant credential only its own tenant.
            let (_, list) = app.get("/v1/tenants", &b_admin).await;
            let ids: Vec<&str> = list.as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
            assert_eq!(ids, ["b"]);
            // Operator-only routes.
            assert_problem(&app.post("/v1/tenants", &b_admin, json!({"id": "c", "name": "C"})).await, 403, "forbidden");
            assert_problem(&app.call(Method::DELETE, "/v1/tenants/b", Some(&b_admin), None).await, 403, "forbidden");
            app
        })
        .await;
    }
}

both! {
    async fn read_only_keys_cannot_change_anything(db) {
        with_app(db, |app: App| async move {
            app.tenant("a").await;
            let read = app.key("a", "tenant-read").await;
            assert_eq!(app.get("/v1/tenants/a/numbers", &read).await.0, StatusCode::OK);
            assert_problem(&app.post("/v1/tenants/a/numbers", &read, json!({"number": "+15550100"})).await, 403, "forbidden");
            assert_problem(&app.post("/v1/tenants/a/keys", &read, json!({"name": "x"})).await, 403, "forbidden");
            assert_problem(
                &app.post("/v1/tenants/a/trunks", &read, json!({"name": "t", "host": "sip.example.com"})).await,
                403,
                "forbidden",
            );
            let (_, numbers) = app.get("/v1/tenants/a/numbers", &read).await;
            assert_eq!(numbers, json!([]));
            app
        })
        .await;
    }
}

both! {
    async fn rate_limit_answers_429_with_retry_after(db) {
        let mut c = config(&db);
        c.api.rate_limit_per_second = 1;
        c.api.rate_limit_burst = 3;
        let app = App::start(c).await;
        let admin = app.tenant("a").await;
        let url = format!("{}/v1/tenants/a/numbers", app.base);
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..5 {
            let r = app.http.get(&url).bearer_auth(&admin).send().await.unwrap();
            statuses.push(r.status().as_u16());
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["type"], "urn:wasmswitch:problem:rate-limited");
            }
        }
        assert_eq!(statuses[..3], [200, 200, 200]);
        assert_eq!(statuses[3], 429, "{statuses:?}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        // Another credential is not affected.
        let other = app.key("a", "tenant-read").await;
        assert_eq!(app.http.get(&url).bearer_auth(&other).send().await.unwrap().status(), 200);
        app.stop().await;
        db.drop_db().await;
    }
}
