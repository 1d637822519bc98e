//! The store itself, on both databases: what the API relies on.

use std::sync::Arc;

use wasmswitch::plugins::KvStore;
use wasmswitch::store::{
    Cdr, CdrCursor, CdrFilter, CdrState, Disposition, NewPlugin, Role, SqlKv, Store, StoreError,
};

use crate::both;
use crate::util::TestDb;

async fn store(db: &TestDb) -> Store {
    let s = Store::connect(&db.url).await.expect("connect");
    s.migrate().await.expect("migrate");
    // Migrating twice is a no-op.
    s.migrate().await.expect("migrate again");
    s
}

both! {
    async fn kv_is_tenant_scoped_and_ordered(db) {
        let s = store(&db).await;
        s.create_tenant("a", "A").await.unwrap();
        s.create_tenant("b", "B").await.unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(SqlKv::new(s.clone()));
        kv.set("a", "route/2", b"two").await.unwrap();
        kv.set("a", "route/1", b"one").await.unwrap();
        kv.set("a", "route/10", b"ten").await.unwrap();
        kv.set("a", "Route/upper", b"x").await.unwrap();
        kv.set("a", "other", b"o").await.unwrap();
        kv.set("b", "route/1", b"b's").await.unwrap();
        kv.set("a", "route/1", b"uno").await.unwrap();
        assert_eq!(kv.get("a", "route/1").await.unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!(kv.get("b", "route/1").await.unwrap().as_deref(), Some(&b"b's"[..]));
        // Byte order on both databases.
        assert_eq!(
            kv.list_keys("a", "route/", 10).await.unwrap(),
            ["route/1", "route/10", "route/2"]
        );
        assert_eq!(kv.list_keys("a", "", 2).await.unwrap(), ["Route/upper", "other"]);
        kv.delete("a", "route/1").await.unwrap();
        assert_eq!(kv.get("a", "route/1").await.unwrap(), None);
        assert_eq!(kv.get("b", "route/1").await.unwrap().as_deref(), Some(&b"b's"[..]));
        // Keys are any string, NUL included (PostgreSQL text could not hold it).
        kv.set("a", "nul\0key", b"n").await.unwrap();
        assert_eq!(kv.get("a", "nul\0key").await.unwrap().as_deref(), Some(&b"n"[..]));
        assert_eq!(kv.list_keys("a", "nul\0", 10).await.unwrap(), ["nul\0key"]);
        // Prefixes count bytes, not characters.
        kv.set("a", "é/1", b"x").await.unwrap();
        assert_eq!(kv.list_keys("a", "é/", 10).await.unwrap(), ["é/1"]);
        // Binary values survive.
        let bytes: Vec<u8> = (0..=255).collect();
        kv.set("a", "bin", &bytes).await.unwrap();
        assert_eq!(kv.get("a", "bin").await.unwrap(), Some(bytes));
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn plugin_versions_activation_and_rollback(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        let new = |sha: &'static str| NewPlugin {
            tenant_id: "t",
            name: "router",
            sha256: sha,
            world: "router",
            contract: "0.1.0",
            uploaded_by: "test",
            wasm: b"\0asm",
        };
        assert_eq!(s.insert_plugin(new("a")).await.unwrap().version, 1);
        assert_eq!(s.insert_plugin(new("b")).await.unwrap().version, 2);
        assert_eq!(s.insert_plugin(new("c")).await.unwrap().version, 3);
        assert!(matches!(s.rollback_plugin("t", "router", "x").await, Err(StoreError::Invalid(_))));
        let a = s.activate_plugin("t", "router", 1, "x").await.unwrap();
        assert_eq!((a.version, a.previous), (1, None));
        let a = s.activate_plugin("t", "router", 3, "x").await.unwrap();
        assert_eq!((a.version, a.previous), (3, Some(1)));
        let a = s.activate_plugin("t", "router", 2, "x").await.unwrap();
        assert_eq!((a.version, a.previous), (2, Some(3)));
        // Rollback walks back through the history: 2 -> 3 -> 1.
        assert_eq!(s.rollback_plugin("t", "router", "x").await.unwrap().version, 3);
        assert_eq!(s.rollback_plugin("t", "router", "x").await.unwrap().version, 1);
        assert!(s.rollback_plugin("t", "router", "x").await.is_err());
        let active: Vec<i64> = s
            .plugin_versions("t", "router")
            .await
            .unwrap()
            .iter()
            .filter(|r| r.active)
            .map(|r| r.version)
            .collect();
        assert_eq!(active, [1]);
        assert!(matches!(
            s.delete_plugin_version("t", "router", 1).await,
            Err(StoreError::Invalid(_))
        ));
        s.delete_plugin_version("t", "router", 3).await.unwrap();
        assert!(matches!(
            s.activate_plugin("t", "router", 3, "x").await,
            Err(StoreError::NotFound(_))
        ));
        let active: Vec<_> = s.active_plugin_versions().await.unwrap().into_iter().map(|a| (a.tenant_id, a.name, a.version, a.sha256)).collect();
        assert_eq!(active, [("t".into(), "router".into(), 1, "a".into())]);
        // Numbers are never reused: deleting the highest version does not free its number.
        s.delete_plugin_version("t", "router", 2).await.unwrap();
        assert_eq!(s.insert_plugin(new("d")).await.unwrap().version, 4);
        s.delete_plugin_version("t", "router", 4).await.unwrap();
        assert_eq!(s.insert_plugin(new("e")).await.unwrap().version, 5);
        // Not even for a tenant created again under the same id: its uid differs, and the
        // numbering starts afresh with the tenant's other data.
        let uid = s.tenant("t").await.unwrap().uid;
        s.delete_tenant("t").await.unwrap();
        s.create_tenant("t", "T again").await.unwrap();
        assert_ne!(s.tenant("t").await.unwrap().uid, uid);
        assert!(!s.tenant_is("t", &uid).await.unwrap());
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn concurrent_uploads_to_one_name_all_get_a_number(db) {
        // Regression (PostgreSQL answered 409 for 3-6 of 20): each upload waits its turn for
        // the next number.
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        let mut uploads = tokio::task::JoinSet::new();
        for i in 0..20 {
            let s = s.clone();
            uploads.spawn(async move {
                let sha = format!("{i:064x}");
                s.insert_plugin(NewPlugin {
                    tenant_id: "t",
                    name: "racer",
                    sha256: &sha,
                    world: "router",
                    contract: "0.1.0",
                    uploaded_by: "test",
                    wasm: b"\0asm",
                })
                .await
                .map(|r| r.version)
            });
        }
        let mut versions: Vec<i64> = uploads.join_all().await.into_iter().map(|r| r.expect("every upload stored")).collect();
        versions.sort();
        assert_eq!(versions, (1..=20).collect::<Vec<i64>>());
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn plugin_bytes_round_trip(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        s.insert_plugin(NewPlugin { tenant_id: "t", name: "router", sha256: "a", world: "router", contract: "0.1.0", uploaded_by: "test", wasm: b"\0asm" }).await.unwrap();
        let (_, bytes) = s.plugin("t", "router", 1).await.unwrap();
        assert_eq!(bytes, b"\0asm");
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn api_keys_verify_revoke_and_expire(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        let k = s.create_api_key(Some("t"), Role::TenantRead, "ci", None).await.unwrap();
        let got = s.verify_api_key(&k.secret).await.unwrap().expect("valid");
        assert_eq!((got.role, got.tenant_id.as_deref()), (Role::TenantRead, Some("t")));
        // A wrong secret for a real id is refused.
        let forged = format!("wsk_{}_{}", k.key.id, "0".repeat(64));
        assert!(s.verify_api_key(&forged).await.unwrap().is_none());
        s.revoke_api_key(Some("t"), &k.key.id).await.unwrap();
        assert!(s.verify_api_key(&k.secret).await.unwrap().is_none());
        let old = s
            .create_api_key(Some("t"), Role::TenantAdmin, "old", Some(wasmswitch::store::now_ms() - 1))
            .await
            .unwrap();
        assert!(s.verify_api_key(&old.secret).await.unwrap().is_none());
        assert!(matches!(
            s.create_api_key(Some("nope"), Role::TenantAdmin, "x", None).await,
            Err(StoreError::NotFound("tenant"))
        ));
        assert!(s.create_api_key(None, Role::TenantAdmin, "x", None).await.is_err());
        s.close().await;
        db.drop_db().await;
    }
}

both! {
    async fn cdrs_filter_and_paginate(db) {
        let s = store(&db).await;
        s.create_tenant("t", "T").await.unwrap();
        s.create_tenant("u", "U").await.unwrap();
        for i in 0..25i64 {
            let c = Cdr {
                id: format!("call-{i:02}"),
                tenant_id: if i == 24 { "u".into() } else { "t".into() },
                from_number: "+15550001".into(),
                to_number: if i % 2 == 0 { "+15550100".into() } else { "+15550200".into() },
                direction: "inbound".into(),
                disposition: if i % 3 == 0 { Disposition::Busy } else { Disposition::Answered },
                sip_status: Some(200),
                // Pairs share a start time, so the cursor must break ties by id.
                started_at: 1_000_000 + (i / 2) * 1000,
                answered_at: None,
                ended_at: None,
                duration_ms: i * 10,
                trunk: None,
                plugin: Some("router@1".into()),
                hangup_cause: None,
                call_id: None,
                sip_user: None,
                sip_reason: None,
                ended_by: None,
                answered_target: None,
                host_id: None,
                state: CdrState::Ended,
            };
            s.insert_cdr(&c).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut filter = CdrFilter { limit: 7, ..Default::default() };
        loop {
            let page = s.cdrs("t", &filter).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.id.clone()));
            match page.next {
                Some(n) => filter.cursor = Some(CdrCursor::parse(&n).expect("a cursor the store gave")),
                None => break,
            }
        }
        let expected: Vec<String> = (0..24).rev().map(|i| format!("call-{i:02}")).collect();
        assert_eq!(seen, expected, "every record once, newest first, across pages");

        let busy = s
            .cdrs("t", &CdrFilter { disposition: Some(Disposition::Busy), limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(busy.items.len(), 8);
        assert!(busy.items.iter().all(|c| c.disposition == Disposition::Busy));
        // A filter and the cursor together: the same records, page by page.
        let mut paged = Vec::new();
        let mut filter = CdrFilter { disposition: Some(Disposition::Busy), limit: 3, ..Default::default() };
        loop {
            let page = s.cdrs("t", &filter).await.unwrap();
            paged.extend(page.items);
            match page.next {
                Some(n) => filter.cursor = Some(CdrCursor::parse(&n).expect("a cursor the store gave")),
                None => break,
            }
        }
        assert_eq!(paged, busy.items);
        let to = s
            .cdrs("t", &CdrFilter { number: Some("+15550200".into()), since: Some(1_005_000), until: Some(1_008_000), limit: 100, ..Default::default() })
            .await
            .unwrap();
        let ids: Vec<&str> = to.items.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["call-15", "call-13", "call-11"]);
        assert_eq!(CdrCursor::parse("zz"), None, "the API answers 400 for it");
        s.close().await;
        db.drop_db().await;
    }
}
