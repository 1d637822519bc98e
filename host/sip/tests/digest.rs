//! Digest authentication end to end: a phone's REGISTER is challenged by the switch's
//! verifier, answered by the client side, parsed as a received message would be and
//! verified; the trunk direction (the switch answering a 407) the same way.
#![allow(clippy::unwrap_used)] // a test panics on what it never expects

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmswitch_sip::digest::{Algorithm, DigestClient, Outcome, Verifier, VerifierConfig, ha1};
use wasmswitch_sip::{HeaderName, Message, Request};

const REALM: &str = "pbx.example.com";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// A second tenant's SIP domain, so its realm, served by the same verifier.
const OTHER: &str = "acme.example.net";

fn register(cseq: u32, auth: Option<(&str, &str)>) -> Request {
    register_to(REALM, cseq, auth)
}

/// 1001's REGISTER to `domain`, the tenant's SIP domain.
fn register_to(domain: &str, cseq: u32, auth: Option<(&str, &str)>) -> Request {
    let auth = auth.map_or(String::new(), |(name, value)| {
        format!("{name}: {value}\r\n")
    });
    let text = format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-{cseq}\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@{domain}>;tag=f1\r\n\
To: <sip:1001@{domain}>\r\n\
Call-ID: reg-1@192.0.2.20\r\n\
CSeq: {cseq} REGISTER\r\n\
Contact: <sip:1001@192.0.2.20:5060>\r\n\
{auth}Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// The credential store: HA1 per algorithm, never the password.
fn store(user: &str, algorithm: Algorithm) -> Option<String> {
    (user == "1001").then(|| ha1(algorithm, "1001", REALM, "s3cret"))
}

#[test]
fn register_round_trip() {
    let mut verifier = Verifier::new([42; 32], VerifierConfig::default());
    let auth = HeaderName::Authorization;

    // No credentials: challenged, SHA-256 first.
    let first = register(1, None);
    assert_eq!(
        verifier.verify_request(REALM, at(0), &first, &auth, store),
        Outcome::NoCredentials
    );
    let challenges = verifier.challenges(REALM, verifier.algorithms(), at(0), [5; 16], false);
    assert!(challenges[0].contains("algorithm=SHA-256"));
    assert!(challenges[1].contains("algorithm=MD5"));

    // The phone answers; its REGISTER goes through the parser like any received one.
    let mut phone = DigestClient::new("1001", "s3cret");
    let picked = phone
        .challenged(challenges.iter().map(|c| c.as_bytes()))
        .unwrap();
    assert_eq!(picked.algorithm, Algorithm::Sha256);
    let value = phone
        .authorization("REGISTER", "sip:pbx.example.com", "0a4f113b")
        .unwrap();
    let second = register(2, Some(("Authorization", &value)));
    assert_eq!(
        verifier.verify_request(REALM, at(1), &second, &auth, store),
        Outcome::Ok {
            username: "1001".into()
        }
    );
    // The same request again (a replay) is refused; the phone's next one (nc=2) is not.
    assert_eq!(
        verifier.verify_request(REALM, at(2), &second, &auth, store),
        Outcome::Replay
    );
    let value = phone
        .authorization("REGISTER", "sip:pbx.example.com", "7f3c")
        .unwrap();
    assert!(value.contains("nc=00000002"), "{value}");
    let third = register(3, Some(("Authorization", &value)));
    assert!(matches!(
        verifier.verify_request(REALM, at(3), &third, &auth, store),
        Outcome::Ok { .. }
    ));

    // After the nonce's lifetime: stale, and the re-challenge says so.
    let value = phone
        .authorization("REGISTER", "sip:pbx.example.com", "99")
        .unwrap();
    let late = register(4, Some(("Authorization", &value)));
    assert_eq!(
        verifier.verify_request(REALM, at(400), &late, &auth, store),
        Outcome::Stale
    );
    let again = verifier.challenges(REALM, verifier.algorithms(), at(400), [6; 16], true);
    assert!(
        phone
            .challenged(again.iter().map(|c| c.as_bytes()))
            .unwrap()
            .stale
    );
    let value = phone
        .authorization("REGISTER", "sip:pbx.example.com", "100")
        .unwrap();
    assert!(value.contains("nc=00000001"), "{value}");
    let fresh = register(5, Some(("Authorization", &value)));
    assert!(matches!(
        verifier.verify_request(REALM, at(401), &fresh, &auth, store),
        Outcome::Ok { .. }
    ));
}

#[test]
fn credentials_for_another_realm_are_passed_over() {
    let mut verifier = Verifier::new([42; 32], VerifierConfig::default());
    let challenges = verifier.challenges(REALM, verifier.algorithms(), at(0), [5; 16], false);
    let mut phone = DigestClient::new("1001", "s3cret");
    phone
        .challenged(challenges.iter().map(|c| c.as_bytes()))
        .unwrap();
    let ours = phone
        .authorization("REGISTER", "sip:pbx.example.com", "c")
        .unwrap();
    let theirs = ours.replace(REALM, "proxy.example.net");
    let text = format!("{theirs}\r\nAuthorization: {ours}");
    let request = register(2, Some(("Authorization", &text)));
    assert!(matches!(
        verifier.verify_request(REALM, at(1), &request, &HeaderName::Authorization, store),
        Outcome::Ok { .. }
    ));
    let only_theirs = register(3, Some(("Authorization", &theirs)));
    assert_eq!(
        verifier.verify_request(
            REALM,
            at(1),
            &only_theirs,
            &HeaderName::Authorization,
            store
        ),
        Outcome::RealmMismatch
    );
}

/// The credential store of the second tenant: the same user and password, another realm, so
/// another HA1.
fn store_other(user: &str, algorithm: Algorithm) -> Option<String> {
    (user == "1001").then(|| ha1(algorithm, "1001", OTHER, "s3cret"))
}

#[test]
fn one_verifier_for_two_tenants() {
    let mut verifier = Verifier::new([42; 32], VerifierConfig::default());
    let auth = HeaderName::Authorization;
    // Two phones, one per tenant, each challenged in its tenant's realm (with fresh random
    // bytes for each nonce, as always: the replay table is keyed by time and random part).
    let mut phones = [(REALM, [5; 16]), (OTHER, [6; 16])].map(|(realm, random)| {
        let challenges = verifier.challenges(realm, verifier.algorithms(), at(0), random, false);
        let mut phone = DigestClient::new("1001", "s3cret");
        let picked = phone
            .challenged(challenges.iter().map(|c| c.as_bytes()))
            .unwrap();
        assert_eq!(picked.realm, realm);
        phone
    });
    let [ours, theirs] = [REALM, OTHER].map(|domain| {
        let i = usize::from(domain == OTHER);
        let value = phones[i]
            .authorization("REGISTER", &format!("sip:{domain}"), "c")
            .unwrap();
        register_to(domain, 2, Some(("Authorization", &value)))
    });
    // Each is verified in its own realm, and is for another realm in the other.
    assert_eq!(
        verifier.verify_request(OTHER, at(1), &ours, &auth, store_other),
        Outcome::RealmMismatch
    );
    assert_eq!(
        verifier.verify_request(REALM, at(1), &theirs, &auth, store),
        Outcome::RealmMismatch
    );
    assert!(matches!(
        verifier.verify_request(REALM, at(1), &ours, &auth, store),
        Outcome::Ok { .. }
    ));
    assert!(matches!(
        verifier.verify_request(OTHER, at(1), &theirs, &auth, store_other),
        Outcome::Ok { .. }
    ));
    // One replay table, and each request's replay is refused in its own realm.
    assert_eq!(
        verifier.verify_request(REALM, at(2), &ours, &auth, store),
        Outcome::Replay
    );
    assert_eq!(
        verifier.verify_request(OTHER, at(2), &theirs, &auth, store_other),
        Outcome::Replay
    );
}

#[test]
fn rfc4475_regaut01_unknown_scheme_is_challenged() {
    let mut verifier = Verifier::new([42; 32], VerifierConfig::default());
    let request = register(
        1,
        Some(("Authorization", "NoOneKnowsThisScheme opaque-data=here")),
    );
    assert_eq!(
        verifier.verify_request(REALM, at(0), &request, &HeaderName::Authorization, store),
        Outcome::UnsupportedScheme
    );
}

#[test]
fn trunk_proxy_authenticate() {
    // The switch as client: a trunk's 407 offers MD5 only, with opaque and no algorithm.
    let mut trunk = DigestClient::new("acct", "pw");
    let c = trunk
        .challenged([
            &b"Digest realm=\"trunk.example.net\", nonce=\"abc\", opaque=\"xyz\", qop=\"auth\""[..],
        ])
        .unwrap();
    assert_eq!(c.algorithm, Algorithm::Md5);
    let value = trunk
        .authorization("INVITE", "sip:+15551234567@trunk.example.net", "cn")
        .unwrap();
    assert!(value.starts_with("Digest username=\"acct\", realm=\"trunk.example.net\""));
    assert!(value.contains("opaque=\"xyz\""), "{value}");
    assert!(value.contains("algorithm=MD5"), "{value}");
    assert!(value.contains("qop=auth, nc=00000001"), "{value}");
}
