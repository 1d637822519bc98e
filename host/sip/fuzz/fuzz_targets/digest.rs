//! Authorization and WWW-Authenticate values from the network, through the digest parsers and
//! the verifier. Beyond "never panics": whatever parses prints to a value that parses back the
//! same, and a value the verifier accepts was made with the right password.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use wasmswitch_sip::digest::{
    Algorithm, Challenge, Credentials, Outcome, Verifier, VerifierConfig, ha1,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Credentials::parse(data) {
        let again =
            Credentials::parse(c.to_string().as_bytes()).expect("printed credentials parse");
        assert_eq!(again, c);
    }
    if let Ok(c) = Challenge::parse(data) {
        let again = Challenge::parse(c.to_string().as_bytes()).expect("printed challenge parses");
        assert_eq!(again, c);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut verifier = Verifier::new([7; 32], VerifierConfig::default());
    let outcome = verifier.verify(
        "acme.example.com",
        now,
        "REGISTER",
        b"sip:acme.example.com",
        data,
        |user, alg| Some(ha1(alg, user, "acme.example.com", "secret")),
    );
    // Forged input cannot carry a nonce this verifier issued, so it is never accepted.
    assert!(!matches!(outcome, Outcome::Ok { .. }), "{outcome:?}");
    let _ = Algorithm::parse(data);
});
