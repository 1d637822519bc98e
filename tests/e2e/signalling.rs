//! What the switch answers before any tenant routes a call, and its API as the call tests use
//! it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wasmswitch_plugin_artifacts as artifacts;

use crate::both;
use crate::harness::{Sipp, Switch, Transport};

both! {
    /// Load balancers probe with OPTIONS: 200 over UDP and TCP. An INVITE to a number that is
    /// no tenant's gets a final answer at once (never silence and the caller's Timer B), and
    /// the switch stops on SIGTERM with exit status 0.
    async fn options_and_refusal(db) {
        let switch = Switch::start(db).await;
        for transport in [Transport::Udp, Transport::Tcp] {
            Sipp::new("options.xml")
                .transport(transport)
                .uac(switch.sip)
                .finish(Duration::from_secs(20))
                .await
                .assert_success();
            let refused = Sipp::new("uac-refused.xml")
                .transport(transport)
                .number("+19995550123")
                .key("status", 404)
                .uac(switch.sip)
                .finish(Duration::from_secs(20))
                .await;
            // A number that is no tenant's DID is refused 404, at once (the check also covers the
            // ACK of the 404).
            refused.assert_success();
        }
        let stopped = switch.stop().await;
        assert!(stopped.status.success(), "SIGTERM drains and exits 0: {stopped:?}");
        assert!(stopped.log.contains("shutting down"), "{}", stopped.log);
    }
}

both! {
    /// The API helpers against the binary: a tenant with a number, a trunk, the example router
    /// active with its table in kv; no call, so no record.
    async fn a_tenant_is_configured_through_the_api(db) {
        let switch = Switch::start(db).await;
        let api = &switch.api;
        let acme = api.tenant("acme").await;
        api.did(&acme, "+15550100").await;
        let trunk = api
            .trunk(&acme, json!({"name": "carrier", "host": "127.0.0.1", "port": 5999}))
            .await;
        assert_eq!(trunk["name"], "carrier", "{trunk}");
        let version = api
            .plugin(&acme, "router", "router", std::fs::read(artifacts::ROUTER).unwrap())
            .await;
        assert_eq!(version, 1);
        api.kv_put(&acme, "routes", "+1 * carrier\n").await;
        let (s, routes) = api.get("/v1/tenants/acme/kv/routes", &acme.key).await;
        assert_eq!((s, routes.as_str()), (StatusCode::OK, Some("+1 * carrier\n")));
        assert!(api.cdrs(&acme, "").await.is_empty());
        let none = api
            .try_wait_for_cdr(&acme, Duration::from_millis(300), |_| true)
            .await;
        assert_eq!(none, None, "no call, no record");
        assert!(switch.log().contains("wasmswitch started"), "{}", switch.log_tail(20));
        assert!(switch.stop().await.status.success());
    }
}
