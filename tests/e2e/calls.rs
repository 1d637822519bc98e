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
