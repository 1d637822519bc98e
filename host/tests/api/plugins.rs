//! Plugins through the API: upload, validation, versions, activation, rollback, simulate, and
//! a restart that keeps everything.

use reqwest::{Method, StatusCode};
use serde_json::json;
use wasmswitch::plugins::model::{Action, CallInfo};
use wasmswitch_plugin_artifacts as artifacts;

use crate::both;
use crate::util::{App, assert_problem, config, one_shot_client, wasm, with_app};

/// What a new call to `to` gets from the tenant's plugins (or fallback) now.
async fn route(app: &App, tenant: &str, to: &str) -> Vec<Action> {
    let call = CallInfo {
        call_id: "c1".into(),
        tenant: tenant.into(),
        from: "+442071234567".into(),
        to: to.into(),
        source_address: "127.0.0.1:5060".into(),
        ..Default::default()
    };
    let mut session = app.service.state.registry.start_call(tenant);
    session.incoming(&call).await.value.actions
}

both! {
    async fn upload_activate_rollback_and_delete(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            // Nothing active yet: the fallback (503).
            assert!(matches!(&route(&app, "acme", "+14155550100").await[..], [Action::Reject(s)] if s.code == 503));

            let (s, v1) = app.upload("acme", "router", &admin, wasm(artifacts::ROUTER), "?world=router&activate=true").await;
            assert_eq!(s, StatusCode::CREATED, "{v1}");
            assert_eq!((v1["version"].as_i64(), v1["world"].as_str(), v1["active"].as_bool()), (Some(1), Some("router"), Some(true)));
            assert_eq!(v1["sha256"].as_str().unwrap().len(), 64);
            // The example router reads its table from kv; without one it rejects with 404.
            let first = route(&app, "acme", "+14155550100").await;
            assert!(!matches!(&first[..], [Action::Reject(s)] if s.code == 503), "v1 decides: {first:?}");

            // Version 2 is a different router (the faulty test plugin rejects with 486).
            let (s, v2) = app.upload("acme", "router", &admin, wasm(artifacts::FAULTY), "").await;
            assert_eq!(s, StatusCode::CREATED, "{v2}");
            assert_eq!((v2["version"].as_i64(), v2["active"].as_bool()), (Some(2), Some(false)));
            assert_eq!(route(&app, "acme", "+14155550100").await, first, "uploading does not activate");

            let (s, act) = app.post("/v1/tenants/acme/plugins/router/versions/2/activate", &admin, json!(null)).await;
            assert_eq!(s, StatusCode::OK, "{act}");
            assert_eq!((act["version"].as_i64(), act["previous"].as_i64()), (Some(2), Some(1)));
            assert!(matches!(&route(&app, "acme", "+14155550100").await[..], [Action::Reject(s)] if s.code == 486));

            let (s, back) = app.post("/v1/tenants/acme/plugins/router/rollback", &admin, json!(null)).await;
            assert_eq!(s, StatusCode::OK, "{back}");
            assert_eq!(back["version"].as_i64(), Some(1));
            assert_eq!(route(&app, "acme", "+14155550100").await, first);
            assert_problem(&app.post("/v1/tenants/acme/plugins/router/rollback", &admin, json!(null)).await, 422, "unprocessable");

            let (_, versions) = app.get("/v1/tenants/acme/plugins/router", &admin).await;
            let active: Vec<bool> = versions.as_array().unwrap().iter().map(|v| v["active"].as_bool().unwrap()).collect();
            assert_eq!(active, [true, false]);
            let (s, one) = app.get("/v1/tenants/acme/plugins/router/versions/2", &admin).await;
            assert_eq!((s, one["version"].as_i64()), (StatusCode::OK, Some(2)));
            let (_, all) = app.get("/v1/tenants/acme/plugins", &admin).await;
            assert_eq!(all.as_array().unwrap().len(), 2);

            // The active version cannot be deleted; an inactive one can.
            assert_problem(&app.call(Method::DELETE, "/v1/tenants/acme/plugins/router/versions/1", Some(&admin), None).await, 422, "unprocessable");
            let (s, _) = app.call(Method::DELETE, "/v1/tenants/acme/plugins/router/versions/2", Some(&admin), None).await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            assert_problem(&app.get("/v1/tenants/acme/plugins/router/versions/2", &admin).await, 404, "not-found");
            assert_problem(&app.post("/v1/tenants/acme/plugins/router/versions/9/activate", &admin, json!(null)).await, 404, "not-found");

            let (_, audit) = app.get("/v1/tenants/acme/audit", &admin).await;
            let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
            for a in ["plugin.upload", "plugin.activate", "plugin.rollback", "plugin.delete"] {
                assert!(actions.contains(&a), "{a} missing from {actions:?}");
            }
            app
        })
        .await;
    }
}

both! {
    async fn refused_uploads_name_the_problem_and_store_nothing(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let core_module = wat::parse_str("(module)").unwrap();
            let cases: [(Vec<u8>, &str, &str); 4] = [
                (b"definitely not wasm".to_vec(), "", "not-wasm"),
                (core_module, "", "core-module"),
                (wasm(artifacts::SMS_POLICY), "?world=router", "wrong-world"),
                (b"\0asm\x0d\0\x01\0garbage".to_vec(), "", "invalid"),
            ];
            for (bytes, query, reason) in cases {
                let got = app.upload("acme", "router", &admin, bytes, query).await;
                assert_problem(&got, 422, "invalid-plugin");
                assert_eq!(got.1["reason"].as_str(), Some(reason), "{}", got.1);
            }
            assert_problem(&app.upload("acme", "router", &admin, wasm(artifacts::ROUTER), "?world=jukebox").await, 422, "unprocessable");
            assert_problem(&app.upload("acme", "Bad_Name", &admin, wasm(artifacts::ROUTER), "").await, 422, "unprocessable");
            assert_problem(&app.upload("nosuch", "router", &app.operator, wasm(artifacts::ROUTER), "").await, 404, "not-found");
            let (s, _) = app.get("/v1/tenants/acme/plugins", &admin).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(app.get("/v1/tenants/acme/plugins", &admin).await.1, json!([]), "nothing stored");
            app
        })
        .await;
    }
}

both! {
    async fn oversize_and_multipart_uploads(db) {
        let mut c = config(&db);
        // Above the example router (95 KiB), below the body sent.
        c.api.max_upload_bytes = 160 * 1024;
        let app = App::start(c).await;
        let admin = app.tenant("acme").await;
        let big = vec![0u8; 200 * 1024];
        let r = one_shot_client()
            .post(format!("{}/v1/tenants/acme/plugins/router", app.base))
            .bearer_auth(&admin)
            .header("content-type", "application/wasm")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["type"], "urn:wasmswitch:problem:too-large");
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(wasm(artifacts::ROUTER)).file_name("router.wasm"),
        );
        let r = app
            .http
            .post(format!("{}/v1/tenants/acme/plugins/router", app.base))
            .bearer_auth(&admin)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = app
            .http
            .post(format!("{}/v1/tenants/acme/plugins/router", app.base))
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        app.stop().await;
        db.drop_db().await;
    }
}

both! {
    async fn simulate_shows_decisions_logs_fuel_and_kv_changes(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let reader = app.key("acme", "tenant-read").await;
            for (name, path, world) in [
                ("router", artifacts::ROUTER, "router"),
                ("ivr", artifacts::IVR_MENU, "ivr"),
                ("sms", artifacts::SMS_POLICY, "messaging"),
            ] {
                let (s, body) = app.upload("acme", name, &admin, wasm(path), &format!("?world={world}&activate=true")).await;
                assert_eq!(s, StatusCode::CREATED, "{body}");
            }
            // A call, with a routing table given for this simulation only.
            let (s, sim) = app
                .post(
                    "/v1/tenants/acme/simulate",
                    &reader,
                    json!({"events": [{"incoming": {"from": "+442071234567", "to": "+14155550100"}}], "kv": {"routes": "+1 * us-trunk\n"}}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{sim}");
            assert_eq!((sim["plugin"].as_str(), sim["version"].as_i64()), (Some("router"), Some(1)));
            let step = &sim["steps"][0];
            assert_eq!(step["function"], "on-event");
            assert!(step["error"].is_null(), "{sim}");
            assert!(step["output"].to_string().contains("us-trunk"), "{sim}");
            assert!(sim["fuel"].as_u64().unwrap() > 0);
            assert!(step["fuel"].as_u64().unwrap() > 0);

            // An IVR session: handed over, then a digit.
            let (s, sim) = app
                .post(
                    "/v1/tenants/acme/simulate",
                    &reader,
                    json!({"plugin": "ivr", "events": [{"handed-over": {"call": {"from": "+1", "to": "+2"}}}, {"dtmf": {"leg": 0, "digit": "1"}}]}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{sim}");
            assert_eq!(sim["steps"].as_array().unwrap().len(), 2);
            assert!(sim["steps"][0]["output"].to_string().contains("play"), "{sim}");

            // A STOP message: the policy records the opt-out in kv; the simulation reports the
            // write and stores nothing.
            let (s, sim) = app
                .post(
                    "/v1/tenants/acme/simulate",
                    &reader,
                    json!({"message": {"from": "+15550001", "to": "+15550002", "body": "STOP"}}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{sim}");
            assert!(!sim["kv_changes"].as_object().unwrap().is_empty(), "{sim}");
            assert!(app.service.state.store.kv_entries("acme").await.unwrap().is_empty(), "a simulation stores nothing");

            // A plugin that fails: the fallback is shown with the reason.
            app.upload("acme", "faulty", &admin, wasm(artifacts::FAULTY), "").await;
            let (s, sim) = app
                .post(
                    "/v1/tenants/acme/simulate",
                    &reader,
                    json!({"plugin": "faulty", "version": 1, "events": [{"incoming": {"to": "trap"}}]}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{sim}");
            assert_eq!(sim["steps"][0]["error"]["kind"], "trap");
            assert!(sim["steps"][0]["output"].to_string().contains("503"), "{sim}");

            // Bad simulate requests.
            assert_problem(&app.post("/v1/tenants/acme/simulate", &reader, json!({})).await, 422, "unprocessable");
            assert_problem(&app.post("/v1/tenants/acme/simulate", &reader, json!({"call": {}, "message": {}})).await, 422, "unprocessable");
            assert_problem(&app.post("/v1/tenants/acme/simulate", &reader, json!({"call": {"to": 5}})).await, 422, "unprocessable");
            assert_problem(&app.post("/v1/tenants/acme/simulate", &reader, json!({"plugin": "nope", "call": {}})).await, 404, "not-found");
            app
        })
        .await;
    }
}

both! {
    async fn a_restart_keeps_everything(db) {
        let app = App::start(config(&db)).await;
        let operator = app.operator.clone();
        let admin = app.tenant("acme").await;
        app.upload("acme", "router", &admin, wasm(artifacts::ROUTER), "?activate=true").await;
        app.upload("acme", "router", &admin, wasm(artifacts::FAULTY), "?activate=true").await;
        app.upload("acme", "sms", &admin, wasm(artifacts::SMS_POLICY), "?activate=true").await;
        app.post("/v1/tenants/acme/numbers", &admin, json!({"number": "+15550100"})).await;
        // A real message through the production runtime writes the opt-out to the database.
        let msg = wasmswitch::plugins::model::Message {
            id: "m1".into(),
            tenant: "acme".into(),
            from: "+15550001".into(),
            to: "+15550100".into(),
            body: "STOP".into(),
            ..Default::default()
        };
        app.service.state.registry.message("acme", &msg).await;
        let kv_before = app.service.state.store.kv_entries("acme").await.unwrap();
        assert!(!kv_before.is_empty(), "the policy wrote its opt-out");
        app.stop().await;

        let app = App::start_existing(config(&db), operator).await;
        assert!(app.service.first_operator_key.is_none(), "no second bootstrap key");
        let (_, tenants) = app.get("/v1/tenants", &app.operator).await;
        assert_eq!(tenants[0]["id"], "acme");
        assert_eq!(app.get("/v1/tenants/acme/numbers", &admin).await.1[0]["number"], "+15550100");
        let (_, versions) = app.get("/v1/tenants/acme/plugins/router", &admin).await;
        assert_eq!(versions.as_array().unwrap().len(), 2);
        // The active version is loaded at start-up: version 2 (the faulty router, 486).
        // (It once failed on PostgreSQL: the start-up sync round took its own loads for a
        // change behind its back and activated nothing; the next round, 500 ms later, did.)
        let routed = route(&app, "acme", "+14155550100").await;
        assert!(matches!(&routed[..], [Action::Reject(s)] if s.code == 486), "{routed:?}");
        assert_eq!(app.service.state.store.kv_entries("acme").await.unwrap(), kv_before);
        let kv = app.service.state.runtime.kv().clone();
        assert!(!kv.list_keys("acme", "", 10).await.unwrap().is_empty());
        // Rollback still knows its history.
        let (s, back) = app.post("/v1/tenants/acme/plugins/router/rollback", &admin, json!(null)).await;
        assert_eq!((s, back["version"].as_i64()), (StatusCode::OK, Some(1)));
        app.stop().await;
        db.drop_db().await;
    }
}

both! {
    async fn activation_reaches_another_host(db) {
        // Two hosts on one database: an activation through one reaches the other's runtime.
        let a = App::start(config(&db)).await;
        let admin = a.tenant("acme").await;
        let b = App::start_existing(config(&db), a.operator.clone()).await;
        a.upload("acme", "router", &admin, wasm(artifacts::FAULTY), "?activate=true").await;
        let started = std::time::Instant::now();
        loop {
            if matches!(&route(&b, "acme", "+1").await[..], [Action::Reject(s)] if s.code == 486) {
                break;
            }
            // The sync loop runs every 500 ms; the time it takes is measured by the API bench
            // (tests/bench/api.py, "on a second host": median ~500 ms). This test proves the
            // activation arrives, with room for a loaded machine: under CI with two CPU hogs
            // beside it, a 1 s bound failed.
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "host b did not see the activation within 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        a.stop().await;
        b.stop().await;
        db.drop_db().await;
    }
}

both! {
    async fn live_settings_reload_without_a_restart(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            app.upload("acme", "faulty", &admin, wasm(artifacts::FAULTY), "").await;
            let looping = json!({"plugin": "faulty", "version": 1, "events": [{"incoming": {"to": "loop"}}]});
            let (_, sim) = app.post("/v1/tenants/acme/simulate", &admin, looping.clone()).await;
            assert_eq!(sim["steps"][0]["error"]["kind"], "timeout", "{sim}");
            assert!(sim["steps"][0]["error"]["message"].as_str().unwrap().contains("1s"), "{sim}");

            let mut c = app.config.clone();
            c.plugins.deadline_ms = 20;
            let done = app.service.reload(&c);
            assert_eq!(done.applied.len(), 1, "{done:?}");
            let (_, sim) = app.post("/v1/tenants/acme/simulate", &admin, looping).await;
            assert!(sim["steps"][0]["error"]["message"].as_str().unwrap().contains("20ms"), "{sim}");
            assert_eq!(app.service.state.runtime.limits().deadline, std::time::Duration::from_millis(20));

            // Raising the memory cap past the start value is refused; the old one stays.
            c.plugins.max_memory_mib = 4096;
            let done = app.service.reload(&c);
            assert_eq!(done.refused.len(), 1, "{done:?}");
            assert!(done.needs_restart.is_empty(), "refused, not waiting for a restart: {done:?}");
            assert_eq!(app.service.state.runtime.limits().max_memory_bytes, 128 << 20);

            // Rate limits apply at once; a new listen address waits for a restart.
            c.plugins.max_memory_mib = 128;
            c.api.rate_limit_per_second = 1;
            c.api.rate_limit_burst = 1;
            c.api.listen = "127.0.0.1:1".into();
            let done = app.service.reload(&c);
            assert_eq!(done.needs_restart, ["api.listen"], "{done:?}");
            let statuses = [
                app.get("/v1/tenants/acme", &admin).await.0.as_u16(),
                app.get("/v1/tenants/acme", &admin).await.0.as_u16(),
            ];
            assert_eq!(statuses, [200, 429]);

            // Every changed setting that is not live is reported, by its path; log.level is
            // handed to the binary, which owns the log subscriber.
            c.api.simulate_queue_ms += 1;
            c.plugins.max_instances += 1;
            c.log.level = "debug".into();
            let done = app.service.reload(&c);
            assert_eq!(done.needs_restart, ["api.listen", "api.simulate_queue_ms", "plugins.max_instances"], "{done:?}");
            assert_eq!(done.log_level.as_deref(), Some("debug"));
            // Fixed settings keep their running values: set back, they need nothing.
            c.api.listen = app.config.api.listen.clone();
            let done = app.service.reload(&c);
            assert_eq!(done.needs_restart, ["api.simulate_queue_ms", "plugins.max_instances"], "{done:?}");
            assert_eq!(done.log_level, None, "already in force");
            app
        })
        .await;
    }
}

both! {
    // Deactivation, through one host, is followed by every host sharing the database; a
    // rollback brings the deactivated version back, on every host too.
    async fn a_deactivation_reaches_every_host_and_a_rollback_undoes_it(db) {
        let a = App::start(config(&db)).await;
        let b = App::start_existing(config(&db), a.operator.clone()).await;
        let admin = a.tenant("acme").await;
        let (s, v1) = a.upload("acme", "router", &admin, wasm(artifacts::FAULTY), "?activate=true").await;
        assert_eq!(s, StatusCode::CREATED, "{v1}");
        let wait_for = |app: &App, want: Option<u32>| {
            let registry = app.service.state.registry.clone();
            crate::util::eventually(move || registry.active("acme", "router").map(|p| p.id.version), want)
        };
        wait_for(&b, Some(1)).await;
        // The faulty router refuses with 486: a plugin answers.
        assert!(matches!(&route(&b, "acme", "+1").await[..], [Action::Reject(s)] if s.code == 486));

        let (s, done) = a.post("/v1/tenants/acme/plugins/router/deactivate", &admin, json!({})).await;
        assert_eq!((s, done["version"].as_i64()), (StatusCode::OK, Some(1)), "{done}");
        // At once on the host that did it, and on the other after its next sync: new calls get
        // the tenant's fallback (503), as with no plugin at all.
        assert!(a.service.state.registry.active("acme", "router").is_none());
        wait_for(&b, None).await;
        assert!(matches!(&route(&b, "acme", "+1").await[..], [Action::Reject(s)] if s.code == 503));
        let (_, list) = a.get("/v1/tenants/acme/plugins/router", &admin).await;
        assert!(list.as_array().unwrap().iter().all(|r| r["active"] == false), "{list}");
        // Nothing left to deactivate.
        let again = a.post("/v1/tenants/acme/plugins/router/deactivate", &admin, json!({})).await;
        assert_problem(&again, 422, "unprocessable");
        assert_problem(&a.post("/v1/tenants/acme/plugins/nope/deactivate", &admin, json!({})).await, 404, "not-found");

        // A rollback makes the deactivated version active again, everywhere.
        let (s, back) = a.post("/v1/tenants/acme/plugins/router/rollback", &admin, json!({})).await;
        assert_eq!((s, back["version"].as_i64()), (StatusCode::OK, Some(1)), "{back}");
        wait_for(&b, Some(1)).await;
        assert!(matches!(&route(&b, "acme", "+1").await[..], [Action::Reject(s)] if s.code == 486));
        b.stop().await;
        a.stop().await;
        db.drop_db().await;
    }
}
