//! What calls need from the store and the API (issue 11): trunks' inbound recognition,
//! caller-ID placement and optional port; tenants' call limits and fallback; call records
//! that run, end and are interrupted, written in batches; the in-memory directory and the
//! version that tells a host to reload it. On SQLite and PostgreSQL.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wasmswitch::store::{
    CallFallback, CallLimits, CallerId, Cdr, CdrFilter, CdrState, CdrWriter, CdrWriterOptions,
    Disposition, NewTrunk, Store, StoreError, Transport,
};

use crate::both;
use crate::util::{App, TestDb, assert_problem, with_app};

async fn store(db: &TestDb) -> Store {
    let s = Store::connect(&db.url).await.expect("connect");
    s.migrate().await.expect("migrate");
    s
}

fn cdr(id: &str, tenant: &str, state: CdrState) -> Cdr {
    Cdr {
        id: id.into(),
        tenant_id: tenant.into(),
        from_number: "+15550001".into(),
        to_number: "+15550100".into(),
        direction: "inbound".into(),
        disposition: Disposition::Answered,
        sip_status: (state == CdrState::Ended).then_some(200),
        started_at: 1_000,
        answered_at: Some(1_500),
        ended_at: (state == CdrState::Ended).then_some(9_000),
        duration_ms: if state == CdrState::Ended { 7_500 } else { 0 },
        trunk: Some("carrier".into()),
        plugin: Some("router@1".into()),
        hangup_cause: (state == CdrState::Ended).then(|| "normal".into()),
        call_id: Some(format!("{id}@203.0.113.5")),
        sip_user: None,
        sip_reason: (state == CdrState::Ended).then(|| "OK".into()),
        ended_by: (state == CdrState::Ended).then(|| "callee".into()),
        answered_target: Some("+15550100".into()),
        host_id: Some("host-a".into()),
        state,
    }
}

async fn all_cdrs(s: &Store, tenant: &str) -> Vec<Cdr> {
    let mut out = Vec::new();
    let mut filter = CdrFilter {
        limit: 500,
        ..Default::default()
    };
    loop {
        let page = s.cdrs(tenant, &filter).await.unwrap();
        out.extend(page.items);
        match page.next {
            Some(n) => filter.cursor = wasmswitch::store::CdrCursor::parse(&n),
            None => return out,
        }
    }
}

async fn one_cdr(s: &Store, tenant: &str, id: &str) -> Cdr {
    all_cdrs(s, tenant)
        .await
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

both! {
    async fn trunks_take_inbound_addresses_caller_id_and_no_port(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let trunks = "/v1/tenants/acme/trunks";
            let (s, t) = app.post(trunks, &admin, json!({
                "name": "carrier", "host": "sip.carrier.example", "transport": "tls",
                "inbound": ["203.0.113.0/24", "2001:0db8::/32", "198.51.100.7/32"],
                "caller_id": "pai",
            })).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            assert_eq!(t["port"], Value::Null, "no port: located by RFC 3263");
            assert_eq!(t["inbound"], json!(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]));
            assert_eq!((t["inbound_auth"].as_bool(), t["caller_id"].as_str()), (Some(false), Some("pai")));
            let id = t["id"].as_str().unwrap().to_string();
            let (_, got) = app.get(&format!("{trunks}/{id}"), &admin).await;
            assert_eq!(got, t, "read back as created");

            // The defaults: no inbound addresses, caller ID in From; a given port is kept.
            let (s, t) = app.post(trunks, &admin, json!({"name": "plain", "host": "10.0.0.1", "port": 5080})).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            assert_eq!((t["port"].as_u64(), t["inbound"].clone(), t["caller_id"].as_str()), (Some(5080), json!([]), Some("from")));

            // Strict validation, each refusal saying what was wrong.
            let too_many: Vec<String> = (0..33).map(|i| format!("10.0.{i}.0/24")).collect();
            for (inbound, says) in [
                (json!(["203.0.113.9/24"]), "203.0.113.0/24"),
                (json!(["300.1.1.1"]), "not an IPv4 or IPv6 address"),
                (json!(["10.0.0.0/33"]), "0-32"),
                (json!(["2001:db8::/129"]), "0-128"),
                (json!(["sip.carrier.example"]), "not an IPv4 or IPv6 address"),
                (json!(["10.0.0.1", "10.0.0.1/32"]), "twice"),
                (json!(too_many), "at most 32"),
                (json!("10.0.0.1"), "sequence"),
            ] {
                let got = app.post(trunks, &admin, json!({"name": "bad", "host": "h", "inbound": inbound})).await;
                assert_problem(&got, 422, "unprocessable");
                assert!(got.1["detail"].as_str().unwrap().contains(says), "{inbound}: {}", got.1);
            }
            for body in [
                json!({"name": "bad", "host": "h", "caller_id": "p-asserted"}),
                json!({"name": "bad", "host": "h", "port": 0}),
                json!({"name": "bad", "host": "h", "port": 65536}),
                json!({"name": "bad", "host": "h", "inbound_auth": true}),
                json!({"name": "bad", "host": "h", "inbound_auth": true, "username": "u"}),
            ] {
                assert_problem(&app.post(trunks, &admin, body.clone()).await, 422, "unprocessable");
            }
            assert_eq!(app.get(trunks, &admin).await.1.as_array().unwrap().len(), 2, "nothing refused was stored");

            // inbound_auth needs credentials: given at creation, or kept from before on update.
            let (s, t) = app.post(trunks, &admin, json!({
                "name": "authed", "host": "h.example", "username": "u", "password": "p4ssw0rd",
                "inbound": ["192.0.2.0/24"], "inbound_auth": true, "caller_id": "both",
            })).await;
            assert_eq!(s, StatusCode::CREATED, "{t}");
            let authed = t["id"].as_str().unwrap().to_string();
            let put = |body: Value| {
                let app = &app;
                let path = format!("{trunks}/{authed}");
                let admin = admin.clone();
                async move { app.call(Method::PUT, &path, Some(&admin), Some(body)).await }
            };
            let (s, t) = put(json!({"name": "authed", "host": "h.example", "port": 5062, "username": "u",
                "inbound": ["192.0.2.0/25"], "inbound_auth": true})).await;
            assert_eq!(s, StatusCode::OK, "{t}");
            assert_eq!((t["port"].as_u64(), t["has_password"].as_bool(), t["caller_id"].as_str()), (Some(5062), Some(true), Some("from")));
            assert_eq!(t["inbound"], json!(["192.0.2.0/25"]));
            // Without a username it cannot be challenged: refused, and nothing changed.
            let refused = put(json!({"name": "authed", "host": "elsewhere", "inbound_auth": true})).await;
            assert_problem(&refused, 422, "unprocessable");
            let (_, t) = app.get(&format!("{trunks}/{authed}"), &admin).await;
            assert_eq!((t["host"].as_str(), t["port"].as_u64()), (Some("h.example"), Some(5062)));
            // Leaving the port out now means none.
            let (s, t) = put(json!({"name": "authed", "host": "h.example", "username": "u"})).await;
            assert_eq!((s, t["port"].clone(), t["inbound_auth"].as_bool()), (StatusCode::OK, Value::Null, Some(false)));

            // The OpenAPI document describes the new fields.
            let (_, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
            let trunk = &doc["components"]["schemas"]["NewTrunk"]["properties"];
            for field in ["inbound", "inbound_auth", "caller_id", "port"] {
                assert!(trunk[field]["description"].as_str().is_some_and(|d| !d.is_empty()), "{field}: {trunk}");
            }
            assert!(doc["paths"]["/v1/tenants/{tenant}/call-settings"]["put"].is_object());
            assert!(doc["paths"]["/v1/tenants/{tenant}/limits"]["put"].is_object());
            app
        })
        .await;
    }
}

both! {
    async fn call_settings_and_limits_follow_roles(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let read = app.key("acme", "tenant-read").await;
            let other = app.tenant("other").await;
            let op = app.operator.clone();
            let settings = "/v1/tenants/acme/call-settings";
            let put = |key: &str, body: Value| {
                let key = key.to_string();
                let app = &app;
                async move { app.call(Method::PUT, settings, Some(&key), Some(body)).await }
            };
            assert_eq!(app.get(settings, &read).await, (StatusCode::OK, json!({"fallback": null})));
            let busy = json!({"fallback": {"reject": {"code": 486, "reason": "Busy Here"}}});
            assert_eq!(put(&admin, busy.clone()).await, (StatusCode::OK, busy.clone()));
            assert_eq!(app.get(settings, &read).await.1, busy);
            assert_problem(&put(&read, json!({"fallback": null})).await, 403, "forbidden");
            assert_problem(&put(&other, json!({"fallback": null})).await, 403, "forbidden");
            assert_problem(&app.get(settings, &other).await, 403, "forbidden");
            for bad in [
                json!({"fallback": {"reject": {"code": 700}}}),
                json!({"fallback": {"reject": {"code": 503, "reason": "a\u{1b}[31m"}}}),
                json!({"fallback": {"reject": {"code": 503, "reason": "x".repeat(257)}}}),
                json!({"fallback": {"dial": {"target": "tel:+14155550100"}}}),
                json!({"fallback": {"dial": {"target": "+14155550100", "trunk": "nope"}}}),
                json!({"fallback": {"ring": {}}}),
                json!({"fallback": null, "extra": 1}),
            ] {
                assert_problem(&put(&admin, bad).await, 422, "unprocessable");
            }
            // Two actions at once: serde_json stops at the second key, as at a syntax error.
            let both = json!({"fallback": {"reject": {"code": 503}, "dial": {"target": "alice"}}});
            assert_problem(&put(&admin, both).await, 400, "bad-request");
            assert_eq!(app.get(settings, &read).await.1, busy, "nothing refused was stored");
            let (s, _) = app.post("/v1/tenants/acme/trunks", &admin, json!({"name": "carrier", "host": "h"})).await;
            assert_eq!(s, StatusCode::CREATED);
            for ok in [
                json!({"fallback": {"dial": {"target": "+14155550100", "trunk": "carrier"}}}),
                json!({"fallback": {"dial": {"target": "sip:ops@example.com"}}}),
                json!({"fallback": {"dial": {"target": "alice"}}}),
                json!({"fallback": null}),
            ] {
                assert_eq!(put(&admin, ok.clone()).await, (StatusCode::OK, ok));
            }
            assert_problem(&app.get("/v1/tenants/nope/call-settings", &op).await, 404, "not-found");

            let limits = "/v1/tenants/acme/limits";
            let nulls = json!({"max_calls": null, "max_calls_per_second": null});
            assert_eq!(app.get(limits, &read).await, (StatusCode::OK, nulls.clone()));
            let set = json!({"max_calls": 50, "max_calls_per_second": 5});
            // A tenant may not raise (or set) its own cap, admin or not.
            assert_problem(&app.call(Method::PUT, limits, Some(&admin), Some(set.clone())).await, 403, "forbidden");
            assert_eq!(app.call(Method::PUT, limits, Some(&op), Some(set.clone())).await, (StatusCode::OK, set.clone()));
            assert_eq!(app.get(limits, &admin).await.1, set);
            assert_problem(&app.get(limits, &other).await, 403, "forbidden");
            for bad in [json!({"max_calls": -1}), json!({"max_calls": 4_294_967_296u64}), json!({"max_calls": "ten"}), json!({"max": 1})] {
                assert_problem(&app.call(Method::PUT, limits, Some(&op), Some(bad)).await, 422, "unprocessable");
            }
            let zero = json!({"max_calls": 0, "max_calls_per_second": null});
            assert_eq!(app.call(Method::PUT, limits, Some(&op), Some(zero.clone())).await, (StatusCode::OK, zero));
            assert_problem(&app.call(Method::PUT, "/v1/tenants/nope/limits", Some(&op), Some(nulls)).await, 404, "not-found");

            let (_, audit) = app.get("/v1/tenants/acme/audit?limit=100", &admin).await;
            let actions: Vec<(&str, &str)> = audit.as_array().unwrap().iter()
                .map(|a| (a["action"].as_str().unwrap(), a["detail"].as_str().unwrap())).collect();
            assert!(actions.contains(&("tenant.call-settings", r#"{"reject":{"code":486,"reason":"Busy Here"}}"#)), "{actions:?}");
            assert!(actions.contains(&("tenant.call-settings", "(default)")), "{actions:?}");
            assert!(actions.contains(&("tenant.limits", "max_calls=50 max_calls_per_second=5")), "{actions:?}");
            assert!(actions.contains(&("tenant.limits", "max_calls=0 max_calls_per_second=default")), "{actions:?}");
            app
        })
        .await;
    }
}

both! {
    async fn call_records_show_the_call_fields_and_filter_by_state(db) {
        with_app(db, |app: App| async move {
            let admin = app.tenant("acme").await;
            let store = &app.service.state.store;
            let mut running = cdr("c-running", "acme", CdrState::Running);
            running.sip_user = Some("alice".into());
            running.started_at = 2_000;
            store.write_cdrs(&[cdr("c-ended", "acme", CdrState::Ended), running]).await.unwrap();
            let (s, page) = app.get("/v1/tenants/acme/cdrs", &admin).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            let first = &page["items"][0];
            assert_eq!((first["id"].as_str(), first["state"].as_str(), first["sip_user"].as_str()), (Some("c-running"), Some("running"), Some("alice")));
            let ended = &page["items"][1];
            for (field, want) in [
                ("call_id", json!("c-ended@203.0.113.5")),
                ("sip_reason", json!("OK")),
                ("ended_by", json!("callee")),
                ("answered_target", json!("+15550100")),
                ("host_id", json!("host-a")),
                ("state", json!("ended")),
                ("sip_user", Value::Null),
            ] {
                assert_eq!(ended[field], want, "{field}: {ended}");
            }
            let (_, page) = app.get("/v1/tenants/acme/cdrs?state=running", &admin).await;
            let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
            assert_eq!(ids, ["c-running"]);
            let (_, page) = app.get("/v1/tenants/acme/cdrs?state=ended&disposition=answered", &admin).await;
            assert_eq!(page["items"].as_array().unwrap().len(), 1);
            assert_eq!(app.get("/v1/tenants/acme/cdrs?state=interrupted", &admin).await.1["items"], json!([]));
            assert_problem(&app.get("/v1/tenants/acme/cdrs?state=lost", &admin).await, 400, "bad-request");
            app
        })
        .await;
    }
}

both! {
    async fn the_final_record_wins_whatever_the_order(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        s.create_tenant("u", "U").await.unwrap();
        // Start and end in one batch, in either order.
        s.write_cdrs(&[cdr("a", "t", CdrState::Running), cdr("a", "t", CdrState::Ended)]).await.unwrap();
        s.write_cdrs(&[cdr("b", "t", CdrState::Ended), cdr("b", "t", CdrState::Running)]).await.unwrap();
        // The end first, the start in a later batch.
        s.write_cdrs(&[cdr("c", "t", CdrState::Ended)]).await.unwrap();
        s.write_cdrs(&[cdr("c", "t", CdrState::Running)]).await.unwrap();
        // Start, then end: the end replaces every field.
        s.write_cdrs(&[cdr("d", "t", CdrState::Running)]).await.unwrap();
        let mut running_again = cdr("d", "t", CdrState::Running);
        running_again.answered_at = Some(1_700);
        s.write_cdrs(&[running_again]).await.unwrap();
        assert_eq!(one_cdr(&s, "t", "d").await.answered_at, Some(1_700), "a running record updates a running one");
        s.write_cdrs(&[cdr("d", "t", CdrState::Ended)]).await.unwrap();
        for id in ["a", "b", "c", "d"] {
            assert_eq!(one_cdr(&s, "t", id).await, cdr(id, "t", CdrState::Ended), "{id}");
        }
        // An interrupted record gives way to the real end, not to a late start.
        s.write_cdrs(&[cdr("e", "t", CdrState::Running)]).await.unwrap();
        assert_eq!(s.interrupt_running_cdrs("host-a", 10_000).await.unwrap(), 1);
        s.write_cdrs(&[cdr("e", "t", CdrState::Running)]).await.unwrap();
        assert_eq!(one_cdr(&s, "t", "e").await.state, CdrState::Interrupted);
        s.write_cdrs(&[cdr("e", "t", CdrState::Ended)]).await.unwrap();
        assert_eq!(one_cdr(&s, "t", "e").await.state, CdrState::Ended);
        // Another tenant's record of the same id changes nothing.
        s.write_cdrs(&[cdr("a", "u", CdrState::Ended)]).await.unwrap();
        assert!(all_cdrs(&s, "u").await.is_empty());
        // One bad record refuses the whole batch.
        let mut bad = cdr("f", "t", CdrState::Ended);
        bad.call_id = Some("nul\0".into());
        assert!(matches!(s.write_cdrs(&[cdr("g", "t", CdrState::Ended), bad]).await, Err(StoreError::Invalid(_))));
        assert!(all_cdrs(&s, "t").await.iter().all(|c| c.id != "g"));
        // A large batch is written whole, in statements of several sizes.
        let many: Vec<Cdr> = (0..301).map(|i| cdr(&format!("m{i:03}"), "t", CdrState::Ended)).collect();
        s.write_cdrs(&many).await.unwrap();
        assert_eq!(all_cdrs(&s, "t").await.iter().filter(|c| c.id.starts_with('m')).count(), 301);
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn a_starting_host_interrupts_only_its_own_running_calls(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        let answered = cdr("answered", "t", CdrState::Running);
        let mut ringing = cdr("ringing", "t", CdrState::Running);
        ringing.answered_at = None;
        ringing.disposition = Disposition::NoAnswer;
        let mut elsewhere = cdr("elsewhere", "t", CdrState::Running);
        elsewhere.host_id = Some("host-b".into());
        let done = cdr("done", "t", CdrState::Ended);
        s.write_cdrs(&[answered, ringing, elsewhere, done.clone()]).await.unwrap();
        assert_eq!(s.interrupt_running_cdrs("host-a", 5_000).await.unwrap(), 2);
        assert_eq!(s.interrupt_running_cdrs("host-a", 6_000).await.unwrap(), 0, "done once");
        let a = one_cdr(&s, "t", "answered").await;
        assert_eq!(
            (a.state, a.ended_at, a.duration_ms, a.hangup_cause.as_deref(), a.ended_by.as_deref(), a.disposition),
            (CdrState::Interrupted, Some(5_000), 3_500, Some("host-restart"), Some("switch"), Disposition::Answered)
        );
        let r = one_cdr(&s, "t", "ringing").await;
        assert_eq!((r.state, r.duration_ms, r.disposition), (CdrState::Interrupted, 0, Disposition::Failed));
        assert_eq!(one_cdr(&s, "t", "elsewhere").await.state, CdrState::Running);
        assert_eq!(one_cdr(&s, "t", "done").await, done);
        let page = s.cdrs("t", &CdrFilter { state: Some(CdrState::Interrupted), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.items.len(), 2);
        s.close().await;
        db.drop_db().await;
    }
}

/// Waits (up to 10 s) until `ok` holds of the writer's stats.
async fn until_stats(w: &CdrWriter, ok: impl Fn(&wasmswitch::store::CdrWriterStats) -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !ok(&w.stats()) {
        assert!(
            std::time::Instant::now() < until,
            "stats stuck at {:?}",
            w.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

both! {
    async fn the_writer_batches_and_rides_out_a_failing_database(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();

        // 1,000 calls' start and end records, recorded at once: few transactions, none lost,
        // every call ended.
        let writer = CdrWriter::start(s.clone());
        for i in 0..1_000 {
            writer.record(cdr(&format!("call{i:04}"), "t", CdrState::Running));
        }
        for i in 0..1_000 {
            writer.record(cdr(&format!("call{i:04}"), "t", CdrState::Ended));
        }
        writer.flush().await;
        let stats = writer.stats();
        assert_eq!((stats.written, stats.dropped, stats.rejected, stats.waiting), (2_000, 0, 0, 0), "{stats:?}");
        assert!(stats.batches <= 20, "2,000 records in {} transactions", stats.batches);
        let rows = all_cdrs(&s, "t").await;
        assert_eq!(rows.len(), 1_000);
        assert!(rows.iter().all(|c| c.state == CdrState::Ended));

        // A record of a tenant that is gone is refused; the rest of its batch is written.
        writer.record(cdr("orphan", "gone", CdrState::Ended));
        writer.record(cdr("kept", "t", CdrState::Ended));
        writer.flush().await;
        assert_eq!((writer.stats().rejected, writer.stats().written), (1, 2_001));
        // Text off the network is made storable rather than lost.
        let mut odd = cdr("odd", "t", CdrState::Ended);
        odd.sip_reason = Some("bad\0reason".into());
        writer.record(odd);
        writer.flush().await;
        assert_eq!(one_cdr(&s, "t", "odd").await.sip_reason.as_deref(), Some("bad\u{fffd}reason"));
        writer.close().await;

        // The database fails: the batch in hand is kept and retried, the queue fills, and
        // only what overflows it is lost, and counted.
        let writer = CdrWriter::start_with(s.clone(), CdrWriterOptions {
            capacity: 16,
            batch_max: 8,
            batch_window: Duration::from_millis(5),
            first_retry: Duration::from_millis(10),
            max_retry: Duration::from_millis(40),
        });
        s.execute_raw("ALTER TABLE cdrs RENAME TO cdrs_away").await.unwrap();
        for i in 0..100 {
            writer.record(cdr(&format!("out{i:03}"), "t", CdrState::Ended));
        }
        until_stats(&writer, |st| st.write_errors >= 2).await;
        let during = writer.stats();
        assert_eq!(during.written, 0);
        assert!(during.dropped >= 100 - 16 - 8 && during.dropped < 100, "{during:?}");
        assert_eq!(during.waiting, 100 - during.dropped);
        s.execute_raw("ALTER TABLE cdrs_away RENAME TO cdrs").await.unwrap();
        writer.flush().await;
        let after = writer.stats();
        assert_eq!((after.written + after.dropped, after.waiting), (100, 0), "{after:?}");
        let out = all_cdrs(&s, "t").await.iter().filter(|c| c.id.starts_with("out")).count();
        assert_eq!(out as u64, after.written, "what the writer says it wrote is there");

        // After close, records are dropped (and counted), not queued for no one.
        let late = writer.clone();
        writer.close().await;
        late.record(cdr("late", "t", CdrState::Ended));
        assert_eq!(late.stats().dropped, after.dropped + 1);
        late.flush().await;
        s.close().await;
        db.drop_db().await;
    }
}

fn trunk(name: &str, inbound: &[&str]) -> NewTrunk {
    NewTrunk {
        name: name.into(),
        host: "sip.example.com".into(),
        port: None,
        transport: Transport::Udp,
        username: Some("user".into()),
        password: Some("secret-password".into()),
        register: false,
        inbound: inbound.iter().map(|a| a.parse().unwrap()).collect(),
        inbound_auth: false,
        caller_id: CallerId::Both,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

both! {
    async fn the_directory_follows_every_change_on_every_host(db) {
        let s = store(&db).await;
        // A second host on the same database.
        let other = store(&db).await;
        let mut seen = other.directory_version().await.unwrap();
        // Each change must move the version as another host reads it, and the directory it
        // loads must be at that version.
        macro_rules! moved {
            ($what:expr) => {{
                let now = other.directory_version().await.unwrap();
                assert!(now > seen, "{} did not move the version ({seen} -> {now})", $what);
                seen = now;
                let dir = other.load_directory().await.unwrap();
                assert_eq!(dir.version(), now);
                dir
            }};
        }
        s.create_tenant("t", "T").await.unwrap();
        let dir = moved!("a new tenant");
        let t = dir.tenant("t").unwrap();
        assert_eq!((t.max_calls, &t.fallback), (None, &CallFallback::Reject { code: 503, reason: None }));
        s.create_did("t", "+14155550100", "").await.unwrap();
        let dir = moved!("a new number");
        assert_eq!(dir.owner_of("+14155550100"), Some("t"));
        let wide = s.create_trunk("t", &trunk("wide", &["203.0.0.0/16", "2001:db8::/32"])).await.unwrap();
        let narrow = s.create_trunk("t", &trunk("narrow", &["203.0.113.0/24"])).await.unwrap();
        let dir = moved!("new trunks");
        let found = dir.trunk_for_source("t", ip("203.0.113.9")).unwrap();
        assert_eq!((found.id.as_str(), found.password.as_deref(), found.caller_id), (narrow.id.as_str(), Some("secret-password"), CallerId::Both));
        assert_eq!(dir.trunk_for_source("t", ip("203.0.1.1")).unwrap().name, "wide");
        assert_eq!(dir.trunk_for_source("t", ip("2001:db8::5")).unwrap().name, "wide");
        assert!(dir.trunk_for_source("t", ip("192.0.2.1")).is_none());
        let mut changed = trunk("wide", &["192.0.2.0/24"]);
        changed.port = Some(5070);
        changed.password = None;
        s.update_trunk("t", &wide.id, &changed).await.unwrap();
        let dir = moved!("a trunk update");
        let w = dir.trunk("t", "wide").unwrap();
        assert_eq!((w.port, w.password.as_deref()), (Some(5070), Some("secret-password")), "the kept password is loaded");
        assert_eq!(dir.trunk_for_source("t", ip("192.0.2.1")).unwrap().name, "wide");
        assert!(dir.trunk_for_source("t", ip("203.0.1.1")).is_none());
        s.set_call_fallback("t", Some(&CallFallback::Dial { target: "alice".into(), trunk: Some("wide".into()) })).await.unwrap();
        let dir = moved!("a fallback");
        assert_eq!(dir.tenant("t").unwrap().fallback, CallFallback::Dial { target: "alice".into(), trunk: Some("wide".into()) });
        s.set_call_limits("t", CallLimits { max_calls: Some(10), max_calls_per_second: Some(2) }).await.unwrap();
        let dir = moved!("limits");
        assert_eq!((dir.tenant("t").unwrap().max_calls, dir.tenant("t").unwrap().max_calls_per_second), (Some(10), Some(2)));
        s.set_tenant_sip_domain("t", Some("sip.acme.com"), "wasmswitch.local").await.unwrap();
        let dir = moved!("a SIP domain");
        assert_eq!(dir.tenant("t").unwrap().sip_domain.as_deref(), Some("sip.acme.com"));
        s.delete_trunk("t", &narrow.id).await.unwrap();
        let dir = moved!("a deleted trunk");
        assert!(dir.trunk("t", "narrow").is_none());
        s.delete_did("t", "+14155550100").await.unwrap();
        let dir = moved!("a released number");
        assert_eq!(dir.owner_of("+14155550100"), None);

        // What is refused, and what the directory does not hold, leave the version alone.
        assert!(s.create_trunk("t", &trunk("BAD", &[])).await.is_err());
        assert!(s.create_trunk("t", &trunk("wide", &[])).await.is_err(), "a taken name");
        assert!(s.create_did("nobody", "+14155550101", "").await.is_err());
        assert!(s.set_call_fallback("t", Some(&CallFallback::Dial { target: "+14155550100".into(), trunk: Some("narrow".into()) })).await.is_err());
        let mut no_password = trunk("wide", &[]);
        no_password.username = None;
        no_password.inbound_auth = true;
        assert!(s.update_trunk("t", &wide.id, &no_password).await.is_err());
        s.rename_tenant("t", "Renamed").await.unwrap();
        assert_eq!(other.directory_version().await.unwrap(), seen);
        assert_eq!(other.load_directory().await.unwrap().trunk("t", "wide").unwrap().port, Some(5070), "the refused update was undone");

        s.create_did("t", "+14155550102", "").await.unwrap();
        moved!("a number again");
        s.delete_tenant("t").await.unwrap();
        let dir = moved!("a deleted tenant");
        assert!(dir.tenant("t").is_none());
        assert_eq!(dir.owner_of("+14155550102"), None);
        assert_eq!(dir.counts(), (0, 0));
        assert_eq!(s.directory_version().await.unwrap(), seen, "loading changes nothing");
        other.close().await;
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn upgrading_keeps_trunks_ports_and_registrations(db) {
        let s = Store::connect(&db.url).await.unwrap();
        s.migrate_to(8).await.unwrap();
        for sql in [
            "INSERT INTO tenants (id, name, created_at, uid) VALUES ('t', 'T', 1, 'uid-t')",
            "INSERT INTO trunks (id, tenant_id, name, host, port, transport, username, password, register, created_at) \
             VALUES ('trk_1', 't', 'carrier', 'sip.carrier.example', 5080, 'tcp', 'u', 'p4ssw0rd', 1, 2)",
            "INSERT INTO trunk_registrations (trunk_id, tenant_id, host_id, lease_until, state, registered_until, updated_at) \
             VALUES ('trk_1', 't', 'host-a', 99, 'registered', 1000, 3)",
            "INSERT INTO cdrs (id, tenant_id, from_number, to_number, direction, disposition, started_at, duration_ms) \
             VALUES ('old', 't', '+1555', '+1556', 'inbound', 'answered', 5, 10)",
        ] {
            s.execute_raw(sql).await.unwrap();
        }
        s.migrate().await.unwrap();
        let trunks = s.trunks("t").await.unwrap();
        assert_eq!(trunks.len(), 1);
        let t = &trunks[0];
        assert_eq!((t.port, t.transport, t.has_password, t.register), (Some(5080), Transport::Tcp, true, true));
        assert_eq!((t.inbound.len(), t.inbound_auth, t.caller_id), (0, false, CallerId::From));
        let reg = t.registration.as_ref().expect("the registration state survived the upgrade");
        assert_eq!((reg.state.as_str(), reg.host_id.as_str(), reg.registered_until), ("registered", "host-a", Some(1000)));
        let old = one_cdr(&s, "t", "old").await;
        assert_eq!((old.state, old.call_id), (CdrState::Ended, None));
        let dir = s.load_directory().await.unwrap();
        assert_eq!(dir.trunk("t", "carrier").unwrap().port, Some(5080));
        // The trunk still cascades away with its tenant, and its registration with it.
        s.delete_tenant("t").await.unwrap();
        assert!(s.registering_trunks().await.unwrap().is_empty());
        s.close().await;
        db.drop_db().await;
    }
}
