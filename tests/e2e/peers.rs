//! The scenarios and the harness against each other, without the switch: what the call tests
//! rely on (sipp's verdict, its statistics, the messages it saw, the digest check) reports a
//! failure when there is one. check-pairs.sh proves every pair; these prove the Rust side.

use std::time::Duration;

use crate::harness::{AuthMismatch, Sipp, Transport};

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_and_a_callee_directly_over_udp_and_tcp() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let callee = Sipp::new("uas.xml").transport(transport).calls(3).uas();
        let caller = Sipp::new("uac.xml")
            .transport(transport)
            .calls(3)
            .rate(50.0)
            .key("caller", "+442071234567")
            .key("hold", 50)
            .uac(callee.addr);
        let placed = caller.finish(WITHIN).await;
        let taken = callee.finish(WITHIN).await;
        placed.assert_success();
        taken.assert_success();
        let stats = placed.stats.clone().expect("statistics");
        assert_eq!(
            (stats.created, stats.successful, stats.failed),
            (3, 3, 0),
            "{stats:?}"
        );
        assert_eq!(
            stats.retransmissions, 0,
            "nothing is lost on loopback: {stats:?}"
        );
        assert_eq!(placed.setup_times().len(), 3, "one set-up time a call");
        let invites = taken.received_requests("INVITE");
        assert_eq!(invites.len(), 3);
        for invite in &invites {
            assert!(
                invite.header("From").unwrap().contains("+442071234567"),
                "{}",
                invite.text
            );
            assert_eq!(invite.header("content-type"), Some("application/sdp"));
            assert!(invite.body().contains("m=audio"), "{}", invite.text);
            assert_eq!(invite.cseq_method(), Some("INVITE"));
        }
        assert_eq!(taken.received_requests("BYE").len(), 3);
        assert_eq!(placed.final_invite_status(), Some(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_read_and_an_unexpected_status_fails() {
    let callee = Sipp::new("uas-busy.xml").uas();
    let caller = Sipp::new("uac-refused.xml")
        .key("status", 486)
        .uac(callee.addr);
    let refused = caller.finish(WITHIN).await;
    refused.assert_success();
    assert_eq!(refused.final_invite_status(), Some(486));
    callee.finish(WITHIN).await.assert_success();

    let callee = Sipp::new("uas-busy.xml").uas();
    let caller = Sipp::new("uac-refused.xml")
        .key("status", 404)
        .uac(callee.addr);
    let refused = caller.finish(WITHIN).await;
    assert!(
        !refused.success(),
        "486 when 404 was expected: {}",
        refused.report()
    );
    assert_eq!(refused.final_invite_status(), Some(486));
    assert_eq!(refused.stats.as_ref().map(|s| s.unexpected), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_check_passes_the_password_and_catches_a_wrong_one() {
    let run = async |user: &str, password: &str| {
        let trunk = Sipp::new("uas-auth.xml")
            .key("user", "acme-trunk")
            .key("password", "trunk-secret")
            .uas();
        let caller = Sipp::new("pairs/uac-auth.xml")
            .args(&["-au", user, "-ap", password])
            .uac(trunk.addr);
        caller.finish(WITHIN).await.assert_success();
        trunk.finish(WITHIN).await
    };
    let right = run("acme-trunk", "trunk-secret").await;
    right.assert_success();
    assert_eq!(right.check_digest("acme-trunk", "trunk-secret"), Ok(()));
    // sipp's own checks pass a wrong password (they cannot see the digest): only the harness
    // catches it.
    let wrong = run("acme-trunk", "not-the-secret").await;
    wrong.assert_success();
    assert_eq!(
        wrong.check_digest("acme-trunk", "trunk-secret"),
        Err(AuthMismatch::WrongResponse)
    );
    let other = run("someone-else", "trunk-secret").await;
    assert!(!other.success(), "uas-auth.xml checks the user itself");
    assert_eq!(
        other.check_digest("acme-trunk", "trunk-secret"),
        Err(AuthMismatch::WrongUser("someone-else".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_fails_within_the_timeout() {
    // A port nobody listens on: the INVITE goes unanswered (UDP), and sipp's own time limit
    // ends the run as a failure, well before the harness's.
    let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], crate::harness::free_port()));
    let started = std::time::Instant::now();
    let silent = Sipp::new("uac.xml")
        .timeout(Duration::from_secs(2))
        .uac(nobody)
        .finish(WITHIN)
        .await;
    assert!(!silent.success(), "{}", silent.report());
    assert!(
        silent.exit.is_some(),
        "sipp ended by itself: {}",
        silent.report()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
