//! Observed peer behaviour that matters when comparing them with wasmswitch-sip.
//! Each test pins what rsip 0.4.0 / rsipstack 0.7.14 actually do (not what they should),
//! so a version bump that changes it shows up here. `-- --nocapture` prints details.
use rsip::prelude::*;
use rsipstack::sip::prelude::{HeadersExt as _, ToTypedHeader as _};
use wasmswitch_sip_bench::data;

/// RFC 8760 spells the algorithm "SHA-256"; both peers accept only "SHA256", so the
/// typed Authorization of register.sip fails in both (the untyped string is kept).
#[test]
fn typed_authorization_rejects_rfc8760_sha_256() {
    let m = rsip::SipMessage::try_from(data::REGISTER).unwrap();
    let auth = m.authorization_header().expect("rsip keeps it untyped");
    let e = auth.typed().unwrap_err();
    println!("rsip typed Authorization: {e:?}");

    let m = rsipstack::sip::SipMessage::try_from(data::REGISTER).unwrap();
    let auth = m
        .authorization_header()
        .expect("rsipstack keeps it untyped");
    let e = rsipstack::sip::typed::Authorization::parse(auth.value()).unwrap_err();
    println!("rsipstack typed Authorization: {e:?}");

    // With the non-standard "SHA256" spelling both parse.
    let fixed = auth.value().replace("SHA-256", "SHA256");
    assert!(rsipstack::sip::typed::Authorization::parse(&fixed).is_ok());
    assert!(rsip::headers::Authorization::new(fixed).typed().is_ok());
}

/// Contact with reg-id and a quoted +sip.instance="<urn:uuid:...>" (RFC 5626 REGISTER).
#[test]
fn typed_contact_with_sip_instance() {
    let m = rsip::SipMessage::try_from(data::REGISTER).unwrap();
    let r = m.contact_header().unwrap().typed();
    println!("rsip typed Contact: {r:?}");
    assert!(r.is_err(), "rsip 0.4 cannot type this Contact");

    let m = rsipstack::sip::SipMessage::try_from(data::REGISTER).unwrap();
    let r = m.typed_contact_headers().expect("rsipstack types it");
    assert_eq!(r.len(), 1);
    let s = format!("{:?}", r[0].params);
    assert!(
        s.contains("+sip.instance") && s.contains("urn:uuid:6b2f1e0c"),
        "{s}"
    );
}

const COMPACT: &str = "INVITE sip:bob@b.example SIP/2.0\r\n\
v: SIP/2.0/UDP a.example:5060;branch=z9hG4bK-top;rport, SIP/2.0/UDP c.example;branch=z9hG4bK-second\r\n\
f: <sip:alice@a.example>;tag=ft\r\n\
t: <sip:bob@b.example>\r\n\
i: compact-call-id\r\n\
CSeq: 7 INVITE\r\n\
l: 0\r\n\r\n";

/// RFC 3261 §7.3.3 compact header names, and a comma-joined Via.
#[test]
fn compact_forms_and_comma_joined_via() {
    // rsip: compact names become Header::Other, so the HeadersExt accessors miss them,
    // and print keeps the compact names.
    let m = rsip::SipMessage::try_from(COMPACT).expect("rsip parses the message");
    assert!(m.via_header().is_err());
    assert!(m.from_header().is_err());
    assert!(m.call_id_header().is_err());
    assert!(m.to_string().contains("\r\nv: SIP/2.0/UDP"));
    // rsip with the full name: typed() of a comma-joined Via takes the first value.
    let full = COMPACT.replacen("v:", "Via:", 1);
    let m = rsip::SipMessage::try_from(full.as_str()).unwrap();
    let b = m.via_header().unwrap().typed().unwrap().branch().cloned();
    assert_eq!(b.unwrap().to_string(), "z9hG4bK-top");

    // rsipstack: compact names are mapped; print expands them to the full names.
    let m = rsipstack::sip::SipMessage::try_from(COMPACT).unwrap();
    let top = m.top_via_header().unwrap().typed().unwrap();
    assert_eq!(top.branch().unwrap().value(), "z9hG4bK-top");
    assert_eq!(m.call_id_header().unwrap().value(), "compact-call-id");
    let out = String::from_utf8(m.to_bytes()).unwrap();
    assert!(
        out.contains("\r\nVia: SIP/2.0/UDP") && out.contains("\r\nCall-ID: compact-call-id\r\n")
    );
    assert!(out.contains("\r\nContent-Length: 0\r\n"));
}

/// Status-line reason phrase on print: neither peer keeps a non-standard phrase;
/// rsip prints its enum variant name (CamelCase, no spaces) for known codes.
#[test]
fn reason_phrase_on_print() {
    let cases = [
        (
            "SIP/2.0 183 Session Progress",
            "SIP/2.0 183 SessionProgress",
            "SIP/2.0 183 Session Progress",
        ),
        (
            "SIP/2.0 480 Temporarily not available",
            "SIP/2.0 480 TemporarilyUnavailable",
            "SIP/2.0 480 Temporarily Unavailable",
        ),
        ("SIP/2.0 200 Okay", "SIP/2.0 200 OK", "SIP/2.0 200 OK"),
    ];
    for (line, want_rsip, want_rsipstack) in cases {
        let raw = format!(
            "{line}\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK-1\r\nFrom: <sip:a@a.example>;tag=1\r\n\
             To: <sip:b@b.example>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let a = rsip::SipMessage::try_from(raw.as_str())
            .unwrap()
            .to_string();
        let b = rsipstack::sip::SipMessage::try_from(raw.as_str())
            .unwrap()
            .to_bytes();
        let b = String::from_utf8(b).unwrap();
        assert_eq!(
            a.split("\r\n").next().unwrap(),
            want_rsip,
            "rsip for {line:?}"
        );
        assert_eq!(
            b.split("\r\n").next().unwrap(),
            want_rsipstack,
            "rsipstack for {line:?}"
        );
    }
}
