//! Every other route's happy path: tenants, keys, numbers, trunks, SIP users, CDRs, audit,
//! health, readiness, metrics, the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wasmswitch::store::{Cdr, CdrState, Disposition};

use crate::both;
use crate::util::{App, assert_problem, with_app};

both! {
    async fn tenants_and_keys(db) {
        with_app(db, |app: App| async move {
            let op = app.operator.clone();
            let (s, t) = app.post("/v1/tenants", &op, json!({"id": "acme", "name": "Acme Ltd"})).await;
            assert_eq!(s, StatusCode::CREATED);
            assert_eq!(t["name"], "Acme Ltd");
            assert_problem(&app.post("/v1/tenants", &op, json!({"id": "acme", "name": "again"})).await, 409, "conflict");
            assert_problem(&app.post("/v1/tenants", &op, json!({"id": "Not Valid", "name": "x"})).await, 422, "unprocessable");
            let (s, t) = app.call(Method::PATCH, "/v1/tenants/acme", Some(&op), Some(json!({"name": "Acme Inc"}))).await;
            assert_eq!((s, t["name"].as_str()), (StatusCode::OK, Some("Acme Inc")));
            let (s, t) = app.get("/v1/tenants/acme", &op).await;
            assert_eq!((s, t["id"].as_str()), (StatusCode::OK, Some("acme")));
            let (_, all) = app.get("/v1/tenants", &op).await;
            assert_eq!(all.as_array().unwrap().len(), 1);

            let (s, k) = app.post("/v1/tenants/acme/keys", &op, json!({"name": "ci", "role": "tenant-read", "expires_in_secs": 3600})).await;
            assert_eq!(s, StatusCode::CREATED, "{k}");
            let secret = k["secret"].as_str().unwrap();
            assert!(secret.starts_with("wsk_"));
            assert!(k["expires_at"].as_i64().is_some());
            assert_eq!(app.get("/v1/tenants/acme", secret).await.0, StatusCode::OK);
            assert_problem(&app.post("/v1/tenants/acme/keys", &op, json!({"name": "x", "role": "operator"})).await, 422, "unprocessable");
            let (_, keys) = app.get("/v1/tenants/acme/keys", &op).await;
            assert_eq!(keys.as_array().unwrap().len(), 1);

            let (s, _) = app.call(Method::DELETE, "/v1/tenants/acme", Some(&op), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            assert_problem(&app.get("/v1/tenants/acme", &op).await, 404, "not-found");
            // The tenant's key went with it.
            assert_problem(&app.get("/v1/tenants/acme", secret).await, 401, "unauthenticated");
            app
        })
        .await;
    }
}

both! {
    async fn numbers_trunks_and_sip_users(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let other = app.tenant("other").await;
            let (s, d) = app.post("/v1/tenants/acme/numbers", &admin, json!({"number": "+14155550100", "description": "main"})).await;
            assert_eq!(s, StatusCode::CREATED, "{d}");
            // A number belongs to one tenant at most.
            assert_problem(&app.post("/v1/tenants/other/numbers", &other, json!({"number": "+14155550100"})).await, 409, "conflict");
            assert_problem(&app.post("/v1/tenants/acme/numbers", &admin, json!({"number": "0800"})).await, 422, "unprocessable");
            assert_eq!(app.get("/v1/tenants/acme/numbers", &admin).await.1.as_array().unwrap().len(), 1);
            let (s, _) = app.call(Method::DELETE, "/v1/tenants/acme/numbers/%2B14155550100", Some(&admin), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            assert_problem(&app.call(Method::DELETE, "/v1/tenants/acme/numbers/%2B14155550100", Some(&admin), None).await, 404, "not-found");

            let trunk = json!({"name": "carrier", "host": "sip.carrier.example", "port": 5080, "transport": "tcp", "username": "u", "password": "p4ssw0rd", "register": true});
            let (s, t) = app.post("/v1/tenants/acme/trunks", &admin, trunk.clone()).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            assert_eq!((t["has_password"].as_bool(), t["port"].as_u64()), (Some(true), Some(5080)));
            assert!(t.get("password").is_none(), "the password is write-only");
            let id = t["id"].as_str().unwrap().to_string();
            assert_problem(&app.post("/v1/tenants/acme/trunks", &admin, trunk).await, 409, "conflict");
            assert_problem(&app.post("/v1/tenants/acme/trunks", &admin, json!({"name": "x", "host": "h", "register": true})).await, 422, "unprocessable");
            let (s, t) = app
                .call(Method::PUT, &format!("/v1/tenants/acme/trunks/{id}"), Some(&admin), Some(json!({"name": "carrier", "host": "10.0.0.1", "username": "u", "register": false})))
                .await;
            assert_eq!(s, StatusCode::OK, "{t}");
            assert_eq!((t["host"].as_str(), t["has_password"].as_bool(), t["transport"].as_str()), (Some("10.0.0.1"), Some(true), Some("udp")));
            assert_eq!(app.get(&format!("/v1/tenants/acme/trunks/{id}"), &admin).await.1["host"], "10.0.0.1");
            assert_eq!(app.get("/v1/tenants/acme/trunks", &admin).await.1.as_array().unwrap().len(), 1);
            assert_problem(&app.get(&format!("/v1/tenants/other/trunks/{id}"), &other).await, 404, "not-found");
            let (s, _) = app.call(Method::DELETE, &format!("/v1/tenants/acme/trunks/{id}"), Some(&admin), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);

            let (s, u) = app.post("/v1/tenants/acme/sip-users", &admin, json!({"username": "alice", "password": "correct horse", "display_name": "Alice"})).await;
            assert_eq!(s, StatusCode::CREATED, "{u}");
            // The realm is the tenant's SIP domain: usernames are per tenant.
            assert_eq!(u["realm"], "acme.wasmswitch.local");
            assert!(u.get("password").is_none() && u.get("ha1").is_none() && u.get("ha1_sha256").is_none());
            assert_problem(&app.post("/v1/tenants/acme/sip-users", &admin, json!({"username": "alice", "password": "another one"})).await, 409, "conflict");
            assert_problem(&app.post("/v1/tenants/acme/sip-users", &admin, json!({"username": "bob", "password": "short"})).await, 422, "unprocessable");
            assert_eq!(app.get("/v1/tenants/acme/sip-users", &admin).await.1.as_array().unwrap().len(), 1);
            let uid = u["id"].as_str().unwrap();
            let (s, _) = app.call(Method::DELETE, &format!("/v1/tenants/acme/sip-users/{uid}"), Some(&admin), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            app
        })
        .await;
    }
}

both! {
    async fn cdrs_audit_and_operations(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            for i in 0..5i64 {
                app.service.state.store.insert_cdr(&Cdr {
                    id: format!("c{i}"),
                    tenant_id: "acme".into(),
                    from_number: "+15550001".into(),
                    to_number: "+15550100".into(),
                    direction: "inbound".into(),
                    disposition: if i == 2 { Disposition::NoAnswer } else { Disposition::Answered },
                    sip_status: Some(200),
                    started_at: 1_000 + i,
                    answered_at: Some(1_001 + i),
                    ended_at: Some(2_000 + i),
                    duration_ms: 999,
                    trunk: Some("carrier".into()),
                    plugin: Some("router@1".into()),
                    hangup_cause: Some("normal".into()),
                    call_id: None,
                    sip_user: None,
                    sip_reason: None,
                    ended_by: None,
                    answered_target: None,
                    host_id: None,
                    state: CdrState::Ended,
                }).await.unwrap();
            }
            let (s, page) = app.get("/v1/tenants/acme/cdrs?limit=2", &admin).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            assert_eq!(page["items"][0]["id"], "c4");
            let next = page["next"].as_str().unwrap();
            let (_, page2) = app.get(&format!("/v1/tenants/acme/cdrs?limit=2&cursor={next}"), &admin).await;
            assert_eq!(page2["items"][0]["id"], "c2");
            let (_, na) = app.get("/v1/tenants/acme/cdrs?disposition=no-answer", &admin).await;
            assert_eq!(na["items"].as_array().unwrap().len(), 1);
            let (_, ranged) = app.get("/v1/tenants/acme/cdrs?since=1001&until=1003&number=%2B15550100", &admin).await;
            assert_eq!(ranged["items"].as_array().unwrap().len(), 2);
            assert_problem(&app.get("/v1/tenants/acme/cdrs?limit=0", &admin).await, 422, "unprocessable");
            assert_problem(&app.get("/v1/tenants/acme/cdrs?limit=abc", &admin).await, 400, "bad-request");
            assert_problem(&app.get("/v1/tenants/acme/cdrs?disposition=lost", &admin).await, 400, "bad-request");
            assert_problem(&app.get("/v1/tenants/acme/cdrs?cursor=zzz", &admin).await, 400, "bad-request");

            let (_, audit) = app.get("/v1/tenants/acme/audit?limit=10", &admin).await;
            assert!(audit.as_array().unwrap().iter().any(|a| a["action"] == "tenant.create"));

            let health = app.call(Method::GET, "/healthz", None, None).await;
            assert_eq!((health.0, health.1["status"].as_str()), (StatusCode::OK, Some("ok")));
            let ready = app.call(Method::GET, "/readyz", None, None).await;
            assert_eq!(ready.0, StatusCode::OK);
            // A real call into a plugin is counted per tenant, plugin and version; a simulation
            // is not traffic and is not counted.
            let counted = app.tenant("counted").await;
            let (s, _) = app.upload("counted", "router", &counted, crate::util::wasm(wasmswitch_plugin_artifacts::FAULTY), "?activate=true").await;
            assert_eq!(s, StatusCode::CREATED);
            let call = wasmswitch::plugins::model::CallInfo { to: "trap".into(), ..Default::default() };
            app.service.state.registry.start_call("counted").incoming(&call).await;
            let call = wasmswitch::plugins::model::CallInfo { to: "+1".into(), ..Default::default() };
            app.service.state.registry.start_call("counted").incoming(&call).await;
            let simulated = app.tenant("simulated").await;
            app.upload("simulated", "router", &simulated, crate::util::wasm(wasmswitch_plugin_artifacts::FAULTY), "?activate=true").await;
            let (s, _) = app.post("/v1/tenants/simulated/simulate", &simulated, json!({"events": [{"incoming": {"to": "+1"}}]})).await;
            assert_eq!(s, StatusCode::OK);
            let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
            assert!(metrics.contains("wasmswitch_api_requests_total"), "{metrics}");
            assert!(metrics.contains("wasmswitch_api_request_seconds_bucket"), "histograms, not summaries");
            let has = |series: &str, labels: &[&str]| {
                metrics.lines().any(|l| l.starts_with(series) && labels.iter().all(|x| l.contains(x)))
            };
            let version = ["tenant=\"counted\"", "plugin=\"router\"", "version=\"1\""];
            assert!(has("wasmswitch_plugin_calls_total", &version), "{metrics}");
            assert!(has("wasmswitch_plugin_call_seconds_bucket", &version), "{metrics}");
            assert!(has("wasmswitch_plugin_failures_total", &["tenant=\"counted\"", "kind=\"trap\""]), "{metrics}");
            // The uploaded version's series exist (registered at load) but stay at zero.
            for line in metrics.lines().filter(|l| l.contains("tenant=\"simulated\"")) {
                if line.starts_with("wasmswitch_plugin_calls_total") || line.starts_with("wasmswitch_plugin_call_seconds_count") {
                    assert!(line.ends_with(" 0"), "a simulation counted as traffic: {line}");
                }
            }
            let (s, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
            assert_eq!(s, StatusCode::OK);
            assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
            assert!(doc["paths"]["/v1/tenants/{tenant}/simulate"]["post"].is_object());
            // Simulate's inputs and outputs are typed from the plugin model, not free-form.
            let schemas = &doc["components"]["schemas"];
            // 0.2's model, and 0.1's (for its own requests) under names of their own.
            for name in ["CallInfo", "CallEvent", "Action", "Message", "SmsDecision", "DeliveryReport", "SimOutput", "v0_1.CallInfo", "v0_1.IvrEvent", "v0_1.RouteDecision", "v0_1.IvrAction"] {
                assert!(schemas[name].is_object(), "no schema for {name}: {:?}", schemas.as_object().map(|o| o.keys().collect::<Vec<_>>()));
            }
            // Client generators need every operation id to be unique.
            let mut ids = std::collections::BTreeSet::new();
            for (path, ops) in doc["paths"].as_object().unwrap() {
                for (method, op) in ops.as_object().unwrap() {
                    let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                    assert!(ids.insert(id.to_string()), "operationId {id} is used twice ({method} {path})");
                }
            }
            let request = &schemas["SimulateRequest"]["properties"];
            assert_eq!(request["events"]["items"]["$ref"], "#/components/schemas/CallEvent");
            assert_eq!(request["call"]["oneOf"][0]["$ref"], "#/components/schemas/v0_1.CallInfo");
            assert_eq!(request["ivr"]["items"]["$ref"], "#/components/schemas/v0_1.IvrEvent");
            assert_problem(&app.call(Method::GET, "/v1/nothing-here", None, None).await, 404, "not-found");
            app
        })
        .await;
    }
}

both! {
    async fn kv_is_what_the_plugins_read(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let put = |key: &str, value: &'static str| {
                app.http
                    .put(format!("{}/v1/tenants/acme/kv/{key}", app.base))
                    .bearer_auth(&admin)
                    .body(value)
                    .send()
            };
            assert_eq!(put("routes", "+1 * us-trunk\n").await.unwrap().status(), StatusCode::NO_CONTENT);
            assert_eq!(put("did%2F%2B15550100", "alice").await.unwrap().status(), StatusCode::NO_CONTENT);
            let got = app
                .http
                .get(format!("{}/v1/tenants/acme/kv/did%2F%2B15550100", app.base))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(got.status(), StatusCode::OK);
            assert_eq!(got.text().await.unwrap(), "alice");
            let (_, keys) = app.get("/v1/tenants/acme/kv?prefix=did%2F", &admin).await;
            assert_eq!(keys, json!(["did/+15550100"]));
            let (_, keys) = app.get("/v1/tenants/acme/kv", &admin).await;
            assert_eq!(keys, json!(["did/+15550100", "routes"]));

            // The router plugin reads the table set through the API.
            app.upload("acme", "router", &admin, crate::util::wasm(wasmswitch_plugin_artifacts::ROUTER), "?activate=true").await;
            let (_, sim) = app.post("/v1/tenants/acme/simulate", &admin, json!({"events": [{"incoming": {"to": "+14155550100"}}]})).await;
            assert!(sim["steps"][0]["output"].to_string().contains("us-trunk"), "{sim}");

            let (s, _) = app.call(Method::DELETE, "/v1/tenants/acme/kv/routes", Some(&admin), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            assert_problem(&app.get("/v1/tenants/acme/kv/routes", &admin).await, 404, "not-found");
            let big = "x".repeat(70 * 1024);
            let r = app
                .http
                .put(format!("{}/v1/tenants/acme/kv/big", app.base))
                .bearer_auth(&app.operator)
                .body(big)
                .send()
                .await
                .unwrap();
            assert!(r.status() == StatusCode::UNPROCESSABLE_ENTITY || r.status() == StatusCode::PAYLOAD_TOO_LARGE, "{}", r.status());
            app
        })
        .await;
    }
}
