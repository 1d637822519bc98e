//! Calls through the switch: sipp calls in as a trunk, the tenant's router plugin decides, and
//! sipp answers as the trunk the call goes out on. Every test checks the CDR the call wrote.

use std::time::Duration;

use serde_json::{Value, json};
use wasmswitch_plugin_artifacts as artifacts;

use crate::both;
use crate::harness::{Api, Outcome, Peer, Sipp, Switch, Tenant, Transport};

const WITHIN: Duration = Duration::from_secs(30);
const DID: &str = "+15550100";

/// A tenant with the number, an inbound trunk `carrier` (sipp callers come from 127.0.0.1) and
/// the example router active, its table sending every `+1` number to the outbound trunks
/// `route` names (a list as the router reads it: `a`, `a,b`, `a+b`).
async fn tenant(api: &Api, route: &str) -> Tenant {
    let acme = api.tenant("acme").await;
    api.did(&acme, DID).await;
    api.trunk(
        &acme,
        json!({"name": "carrier", "host": "127.0.0.1", "port": 5999, "inbound": ["127.0.0.1"]}),
    )
    .await;
    api.plugin(
        &acme,
        "router",
        "router",
        std::fs::read(artifacts::ROUTER).unwrap(),
    )
    .await;
    api.kv_put(&acme, "routes", format!("+1 * {route}\n")).await;
    acme
}

/// An outbound trunk to a sipp callee.
async fn trunk_to(api: &Api, t: &Tenant, name: &str, callee: &Peer, transport: Transport) {
    let transport = match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    api.trunk(
        t,
        json!({"name": name, "host": "127.0.0.1", "port": callee.addr.port(), "transport": transport}),
    )
    .await;
}

/// The SIP Call-ID of the first INVITE a caller sent.
fn call_id(caller: &Outcome) -> String {
    caller
        .messages()
        .into_iter()
        .find(|m| m.method() == Some("INVITE"))
        .and_then(|m| m.header("Call-ID").map(str::to_owned))
        .expect("the caller sent an INVITE")
}

fn assert_cdr(cdr: &Value, want: &[(&str, Value)]) {
    for (field, value) in want {
        assert_eq!(&cdr[field], value, "{field} in {cdr:#}");
    }
}

both! {
    /// The basic call over UDP and TCP: the router sends the call to the outbound trunk, the
    /// callee's ringing and answer reach the caller (with the callee's SDP), the caller hangs
    /// up and the BYE reaches the callee. One CDR, answered, with who hung up and where the
    /// call went.
    async fn a_call_is_routed_answered_and_hung_up_by_the_caller(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "out").await;
        for (i, transport) in [Transport::Udp, Transport::Tcp].into_iter().enumerate() {
            let callee = Sipp::new("uas.xml").transport(transport).uas();
            let name = format!("out{i}");
            trunk_to(&switch.api, &acme, &name, &callee, transport).await;
            switch.api.kv_put(&acme, "routes", format!("+1 * {name}\n")).await;
            let caller = Sipp::new("uac.xml")
                .transport(transport)
                .number(DID)
                .key("hold", 200)
                .uac(switch.sip)
                .finish(WITHIN)
                .await;
            let callee = callee.finish(WITHIN).await;
            caller.assert_success();
            callee.assert_success();
            let invite = &callee.received_requests("INVITE")[0];
            assert!(
                invite.header("From").is_some_and(|f| f.contains("+14155550100")),
                "the caller's number goes out in From: {invite:?}"
            );
            let cdr = switch
                .api
                .wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN)
                .await;
            assert_cdr(&cdr, &[
                ("disposition", json!("answered")),
                ("state", json!("ended")),
                ("trunk", json!("carrier")),
                ("plugin", json!("router@1")),
                ("ended_by", json!("caller")),
                ("to_number", json!(DID)),
                ("sip_status", json!(200)),
            ]);
            assert!(
                cdr["answered_target"]
                    .as_str()
                    .is_some_and(|t| t.contains(&callee_port(&callee))),
                "{cdr:#}"
            );
            assert!(cdr["answered_at"].as_i64() >= cdr["started_at"].as_i64());
        }
        assert!(switch.stop().await.status.success());
    }
}

fn callee_port(callee: &Outcome) -> String {
    callee
        .received_requests("INVITE")
        .first()
        .map(|m| {
            m.first_line()
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

both! {
    /// The callee hangs up: its BYE reaches the caller, and the CDR says the callee ended it.
    async fn the_callee_hangs_up(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "out").await;
        let callee = Sipp::new("uas-hangs-up.xml").key("hold", 200).uas();
        trunk_to(&switch.api, &acme, "out", &callee, Transport::Udp).await;
        let caller = Sipp::new("uac-callee-hangs-up.xml")
            .number(DID)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[
            ("disposition", json!("answered")),
            ("ended_by", json!("callee")),
        ]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// The caller gives up while the callee rings: its CANCEL cancels the outbound leg, the
    /// caller gets 487; the CDR is a call nobody answered, ended by the caller.
    async fn cancel_while_ringing(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "out").await;
        let callee = Sipp::new("uas-no-answer.xml").uas();
        trunk_to(&switch.api, &acme, "out", &callee, Transport::Udp).await;
        let caller = Sipp::new("uac-cancel.xml")
            .number(DID)
            .key("ring", 500)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[
            ("disposition", json!("no-answer")),
            ("ended_by", json!("caller")),
            ("sip_status", json!(487)),
            ("answered_at", Value::Null),
        ]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// A busy trunk, then the router's failover: the first trunk answers 486, the router hears
    /// `dial-completed` (busy) and dials the second, which answers.
    async fn a_busy_trunk_fails_over_to_the_next(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "busy,spare").await;
        let busy = Sipp::new("uas-busy.xml").uas();
        let spare = Sipp::new("uas.xml").uas();
        trunk_to(&switch.api, &acme, "busy", &busy, Transport::Udp).await;
        trunk_to(&switch.api, &acme, "spare", &spare, Transport::Udp).await;
        let caller = Sipp::new("uac.xml")
            .number(DID)
            .key("hold", 100)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let busy = busy.finish(WITHIN).await;
        let spare = spare.finish(WITHIN).await;
        caller.assert_success();
        busy.assert_success();
        spare.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[("disposition", json!("answered"))]);
        assert!(
            cdr["answered_target"].as_str().is_some_and(|t| t.contains(&callee_port(&spare))),
            "{cdr:#}"
        );
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// Every trunk busy, no failover left: the tenant's fallback (reject 503 by default)
    /// answers the caller, and the CDR says so.
    async fn busy_with_nothing_left_gets_the_fallback(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "busy").await;
        let busy = Sipp::new("uas-busy.xml").uas();
        trunk_to(&switch.api, &acme, "busy", &busy, Transport::Udp).await;
        let caller = Sipp::new("uac-refused.xml")
            .number(DID)
            .key("status", 503)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let busy = busy.finish(WITHIN).await;
        caller.assert_success();
        busy.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[
            ("sip_status", json!(503)),
            ("answered_at", Value::Null),
            ("state", json!("ended")),
        ]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// Simultaneous forking: two trunks ring at once, one answers; the other is cancelled
    /// (its scenario expects the CANCEL and answers 487).
    async fn simultaneous_forking_cancels_the_loser(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "east+west").await;
        let winner = Sipp::new("uas.xml").uas();
        let loser = Sipp::new("uas-no-answer.xml").uas();
        trunk_to(&switch.api, &acme, "east", &loser, Transport::Udp).await;
        trunk_to(&switch.api, &acme, "west", &winner, Transport::Udp).await;
        let caller = Sipp::new("uac.xml")
            .number(DID)
            .key("hold", 100)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let winner = winner.finish(WITHIN).await;
        let loser = loser.finish(WITHIN).await;
        caller.assert_success();
        winner.assert_success();
        loser.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert!(
            cdr["answered_target"].as_str().is_some_and(|t| t.contains(&callee_port(&winner))),
            "{cdr:#}"
        );
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// The outbound trunk challenges the INVITE (407): the switch answers with the trunk's
    /// credentials, and the digest is right (checked against the password).
    async fn a_trunk_challenge_is_answered_with_its_credentials(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "secure").await;
        let callee = Sipp::new("uas-auth.xml")
            .key("user", "acme-out")
            .key("password", "s3cret-trunk")
            .uas();
        switch
            .api
            .trunk(
                &acme,
                json!({"name": "secure", "host": "127.0.0.1", "port": callee.addr.port(),
                       "username": "acme-out", "password": "s3cret-trunk"}),
            )
            .await;
        let caller = Sipp::new("uac.xml")
            .number(DID)
            .key("hold", 100)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        callee.check_digest("acme-out", "s3cret-trunk").expect("the digest is right");
        assert!(callee.check_digest("acme-out", "wrong").is_err());
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[("disposition", json!("answered"))]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// The caller puts the callee on hold: the re-INVITE (a=sendonly) crosses the switch, the
    /// callee's answer comes back, and the call goes on to its BYE.
    async fn a_reinvite_is_passed_across(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "out").await;
        let callee = Sipp::new("uas-reinvite.xml").uas();
        trunk_to(&switch.api, &acme, "out", &callee, Transport::Udp).await;
        let caller = Sipp::new("uac-reinvite.xml")
            .number(DID)
            .key("hold", 100)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        let invites = callee.received_requests("INVITE");
        assert_eq!(invites.len(), 2, "the first INVITE and the re-INVITE");
        assert!(invites[1].body().contains("a=sendonly"), "{:?}", invites[1]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// The router refuses a number it has no route for: the caller gets the plugin's 404, and
    /// the CDR says the plugin rejected it.
    async fn a_plugin_rejection_reaches_the_caller(db) {
        let switch = Switch::start(db).await;
        let acme = tenant(&switch.api, "out").await;
        switch.api.kv_put(&acme, "routes", "+44 * out\n").await;
        let caller = Sipp::new("uac-refused.xml")
            .number(DID)
            .key("status", 404)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        caller.assert_success();
        let cdr = switch.api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[
            ("disposition", json!("rejected")),
            ("sip_status", json!(404)),
            ("sip_reason", json!("No Route")),
            ("ended_by", json!("plugin")),
        ]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// A router that traps or loops: the tenant's fallback answers (here a configured 480),
    /// and a second tenant's calls are routed meanwhile, on time, by its own router.
    async fn a_plugin_that_traps_or_loops_gets_the_fallback(db) {
        let switch = Switch::start(db).await;
        let api = &switch.api;
        let bad = api.tenant("bad").await;
        api.did(&bad, "+15550200").await;
        api.did(&bad, "+15550201").await;
        api.trunk(&bad, json!({"name": "carrier", "host": "127.0.0.1", "port": 5999,
                               "inbound": ["127.0.0.1"]})).await;
        api.plugin(&bad, "router", "router", std::fs::read(artifacts::FAULTY).unwrap()).await;
        api.kv_put(&bad, "fault/+15550200", "trap").await;
        api.kv_put(&bad, "fault/+15550201", "loop").await;
        let (s, body) = api
            .put("/v1/tenants/bad/call-settings", &bad.key,
                 json!({"fallback": {"reject": {"code": 480, "reason": "Router Down"}}}))
            .await;
        assert!(s.is_success(), "{body}");
        let good = tenant(api, "out").await;
        let callee = Sipp::new("uas.xml").calls(3).uas();
        trunk_to(api, &good, "out", &callee, Transport::Udp).await;

        for number in ["+15550200", "+15550201"] {
            // The looping router holds its call for its whole deadline; the other tenant's
            // calls, placed meanwhile, are set up in well under it.
            let looping = Sipp::new("uac-refused.xml")
                .number(number)
                .key("status", 480)
                .uac(switch.sip);
            let routed = Sipp::new("uac.xml")
                .number(DID)
                .key("hold", 50)
                .uac(switch.sip);
            let looping = looping.finish(WITHIN).await;
            let routed = routed.finish(WITHIN).await;
            looping.assert_success();
            routed.assert_success();
            let cdr = api.wait_for_cdr_of_call(&bad, &call_id(&looping), WITHIN).await;
            assert_cdr(&cdr, &[("sip_status", json!(480)), ("sip_reason", json!("Router Down"))]);
            for t in routed.setup_times() {
                assert!(t < Duration::from_millis(500), "{number}: set-up took {t:?}");
            }
        }
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// The promise of the contract: the 0.1.0 router, frozen as it was built then, routes a
    /// real call through this switch (its `forward` decision becomes a dial through the trunk).
    async fn a_frozen_0_1_router_routes_a_real_call(db) {
        let switch = Switch::start(db).await;
        let api = &switch.api;
        let acme = api.tenant("acme").await;
        api.did(&acme, DID).await;
        api.trunk(&acme, json!({"name": "carrier", "host": "127.0.0.1", "port": 5999,
                                "inbound": ["127.0.0.1"]})).await;
        api.plugin(&acme, "router", "router", artifacts::frozen::component("0.1.0", "router"))
            .await;
        let callee = Sipp::new("uas.xml").uas();
        trunk_to(api, &acme, "out", &callee, Transport::Udp).await;
        api.kv_put(&acme, "routes", "+1 * out\n").await;
        let caller = Sipp::new("uac.xml")
            .number(DID)
            .key("hold", 100)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        let cdr = api.wait_for_cdr_of_call(&acme, &call_id(&caller), WITHIN).await;
        assert_cdr(&cdr, &[("disposition", json!("answered")), ("plugin", json!("router@1"))]);
        assert!(switch.stop().await.status.success());
    }
}

both! {
    /// SIGTERM while a call is up: new calls and OPTIONS get 503 at once, the call in progress
    /// goes on until the drain time is over, then both its sides get a BYE and the switch exits.
    async fn sigterm_drains_then_ends_the_calls_left(db) {
        let switch = Switch::start_with(db, &[("WASMSWITCH_CALLS_DRAIN_SECS", "2")]).await;
        let acme = tenant(&switch.api, "out").await;
        let callee = Sipp::new("uas.xml").uas();
        trunk_to(&switch.api, &acme, "out", &callee, Transport::Udp).await;
        let caller = Sipp::new("uac-callee-hangs-up.xml").number(DID).uac(switch.sip);
        // The call is up once the live list shows it answered.
        let until = std::time::Instant::now() + WITHIN;
        loop {
            let (_, live) = switch.api.get("/v1/tenants/acme/calls", &acme.key).await;
            if live.as_array().is_some_and(|l| l.iter().any(|c| c["state"] == "answered")) {
                break;
            }
            assert!(std::time::Instant::now() < until, "the call never came up: {live}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        switch.terminate();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(crate::harness::options(switch.sip).await, Some(503), "draining");
        let refused = Sipp::new("uac-refused.xml")
            .number(DID)
            .key("status", 503)
            .uac(switch.sip)
            .finish(WITHIN)
            .await;
        refused.assert_success();
        let stopped = switch.stop().await;
        let caller = caller.finish(WITHIN).await;
        let callee = callee.finish(WITHIN).await;
        caller.assert_success();
        callee.assert_success();
        assert!(stopped.status.success(), "{stopped:?}");
        assert!(stopped.log.contains("drain time over"), "{}", stopped.log);
    }
}
