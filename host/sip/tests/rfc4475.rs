//! The RFC 4475 torture messages, one test each, through the same screening a received
//! datagram goes through (`screen::message`). The files under `tests/data/rfc4475/` are the
//! RFC's Appendix A archive, byte for byte (`SHA256SUMS`); `INDEX.tsv` says what each expects.
//!
//! Where RFC 4475 allows either a strict or a liberal reading, the test says which one we
//! chose. Behaviour that belongs to a later layer (the registrar's 401, a TCP connection being
//! closed) is noted where it applies and tested with that layer.

use bytes::Bytes;
use wasmswitch_sip::screen::{self, Dropped, Inbound, Policy};
use wasmswitch_sip::typed::{ContactList, MediaType, Transport, ValueError};
use wasmswitch_sip::{HeaderName, Host, Message, Method, ParseError, Request, Response};

/// Every test below, by file name. A name listed here without a test does not compile, and
/// `every_message_has_a_test` fails for a file in `INDEX.tsv` that is not listed.
macro_rules! torture_tests {
    ($($name:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        $(const _: fn() = $name;)*
    };
}

torture_tests![
    wsinv, intmeth, esc01, escnull, esc02, lwsdisp, longreq, dblreq, semiuri, transports, mpart01,
    unreason, noreason, badinv01, clerr, ncl, scalar02, scalarlg, quotbal, ltgtruri, lwsruri,
    lwsstart, trws, escruri, baddate, regbadct, badaspec, baddn, badvers, mismatch01, mismatch02,
    bigcode, badbranch, insuf, unkscm, novelsc, unksm2, bext01, invut, regaut01, multi01, mcl01,
    bcast, zeromf, cparam01, cparam02, regescrt, sdp01, inv2543,
];

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");

fn data(name: &str) -> Bytes {
    let path = format!("{DATA}/{name}.dat");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn screened(name: &str) -> Inbound {
    screen::message(data(name), &Policy::default())
}

/// The request, which must pass screening, after checking that printing it and reading it
/// back keeps the Request-URI, From and To byte for byte.
fn delivered(name: &str) -> Request {
    let req = match screened(name) {
        Inbound::Request(r) => r,
        other => panic!("{name}: expected the request to be delivered, got {other:?}"),
    };
    let printed = req.encode_to_vec();
    let again = match Message::parse(&printed) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: printed request does not parse: {other:?}"),
    };
    assert_eq!(
        again.uri().as_bytes(),
        req.uri().as_bytes(),
        "{name}: Request-URI"
    );
    assert_eq!(
        again.from().as_bytes(),
        req.from().as_bytes(),
        "{name}: From"
    );
    assert_eq!(again.to().as_bytes(), req.to().as_bytes(), "{name}: To");
    assert_eq!(again.body(), req.body(), "{name}: body");
    assert_eq!(again.headers(), req.headers(), "{name}: headers");
    req
}

fn delivered_response(name: &str) -> Response {
    match screened(name) {
        Inbound::Response(r) => r,
        other => panic!("{name}: expected the response to be delivered, got {other:?}"),
    }
}

/// The stateless answer, which must be `status`, and must itself be a well-formed response.
fn answered(name: &str, status: u16) -> Response {
    let reply = match screened(name) {
        Inbound::Reply(r) => r,
        other => panic!("{name}: expected a {status} reply, got {other:?}"),
    };
    assert_eq!(
        reply.status,
        status,
        "{name}: {}",
        String::from_utf8_lossy(&reply.reason)
    );
    let printed = reply.to_vec();
    let status_line = format!(
        "SIP/2.0 {status} {}\r\n",
        String::from_utf8_lossy(&reply.reason)
    );
    assert!(printed.starts_with(status_line.as_bytes()), "{name}");
    // The reply carries the request's own Via, so it reaches the sender.
    assert!(reply.headers().get(&HeaderName::Via).is_some(), "{name}");
    reply
}

fn reason(r: &Response) -> &str {
    std::str::from_utf8(&r.reason).expect("our reason phrases are ASCII")
}

fn dropped(name: &str) -> Dropped {
    match screened(name) {
        Inbound::Drop(why) => why,
        other => panic!("{name}: expected a drop, got {other:?}"),
    }
}

fn header<'a>(req: &'a Request, name: &str) -> &'a [u8] {
    let name = HeaderName::from_bytes(name.as_bytes());
    req.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
}

// 3.1.1 Valid messages

#[test]
fn wsinv() {
    let r = delivered("wsinv");
    assert_eq!(r.method(), &Method::Invite);
    assert_eq!(
        r.uri().as_bytes(),
        b"sip:vivekg@chair-dnrc.example.com;unknownparam"
    );
    // Folded lines are one SP; everything else in the value is kept.
    assert_eq!(
        r.to().as_bytes(),
        b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    );
    assert_eq!(r.to().tag(), Some(&b"1918181833n"[..]));
    assert_eq!(
        r.from().display.as_deref(),
        Some(&br#""J Rosenberg \\\"""#[..])
    );
    assert_eq!(r.from().tag(), Some(&b"98asjd8"[..]));
    assert_eq!(r.max_forwards(), Some(68));
    assert_eq!(r.call_id(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!((r.cseq().seq, &r.cseq().method), (9, &Method::Invite));
    let vias: Vec<_> = r.vias().collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (&vias[0].transport, vias[0].branch()),
        (&Transport::Udp, Some(&b"390skdjuw"[..]))
    );
    assert_eq!(vias[0].host, Host::V4("192.0.2.2".parse().unwrap()));
    assert_eq!(
        (&vias[1].transport, vias[1].branch()),
        (&Transport::Tcp, Some(&b"z9hG4bK9ikj8"[..]))
    );
    assert_eq!(vias[2].branch(), Some(&b"z9hG4bK30239"[..]));
    assert_eq!(header(&r, "Subject"), b"");
    assert_eq!(
        header(&r, "NewFangledHeader"),
        b"newfangled value continued newfangled value"
    );
    assert_eq!(header(&r, "UnknownHeaderWithUnusualValue"), b";;,,;;,;");
    let ContactList::Addrs(contacts) = r.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        contacts[0].display.as_deref(),
        Some(&br#""Quoted string \"\"""#[..])
    );
    assert_eq!(
        contacts[0].params.get("newparam"),
        Some(Some(&b"newvalue"[..]))
    );
    assert_eq!(contacts[0].params.get("secondparam"), Some(None));
    assert_eq!(contacts[0].params.get("q"), Some(Some(&b"0.33"[..])));
    let route = wasmswitch_sip::NameAddr::parse(header(&r, "Route").to_vec().into()).unwrap();
    assert_eq!(
        route.uri.as_sip().unwrap().param("unknown-no-value"),
        Some(None)
    );
    assert_eq!(r.body().len(), 150);
}

#[test]
fn intmeth() {
    // Parsed as well-formed; an endpoint that does not know the method answers 501 + Allow.
    let Ok(Message::Request(r)) = Message::parse(&data("intmeth")) else {
        panic!("intmeth must parse")
    };
    assert_eq!(
        r.method().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let uri = r.uri().as_sip().unwrap();
    assert_eq!(
        uri.user(),
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    assert_eq!(
        uri.password(),
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(r.call_id(), r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#);
    assert_eq!(
        r.from().params.get("fromParam''~+*_!.-%"),
        Some(Some("\"работающий\"".as_bytes()))
    );
    assert_eq!(r.max_forwards(), Some(255));
    let reply = answered("intmeth", 501);
    assert!(
        reply
            .headers()
            .get(&HeaderName::Allow)
            .unwrap()
            .starts_with(b"INVITE")
    );
}

#[test]
fn esc01() {
    let r = delivered("esc01");
    let uri = r.uri().as_sip().unwrap();
    assert_eq!(uri.user(), Some(&b"sips%3Auser%40example.com"[..]));
    assert_eq!(uri.user_unescaped().unwrap(), b"sips:user@example.com");
    assert_eq!(
        r.to().uri.as_sip().unwrap().user_unescaped().unwrap(),
        b"user"
    );
    assert_eq!(
        r.from().uri.as_sip().unwrap().user_unescaped().unwrap(),
        b"I have spaces"
    );
    // Escapes stay escapes where `escaped` is allowed, and are never decoded into other
    // parameters: `n%61me=v%61lue%25%34%31` is not `name=valueA`.
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    let params = c[0].uri.as_sip().unwrap().params();
    assert_eq!(params.get("%6C%72"), Some(None));
    assert_eq!(params.get("n%61me"), Some(Some(&b"v%61lue%25%34%31"[..])));
    // Printed as received: no double escaping.
    let printed = r.encode_to_vec();
    assert!(printed.starts_with(b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"));
    assert!(contains(
        &printed,
        b"<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>"
    ));
}

#[test]
fn escnull() {
    let r = delivered("escnull");
    assert_eq!(
        r.to().uri.as_sip().unwrap().user_unescaped().unwrap(),
        b"null-\0-null"
    );
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    let users: Vec<_> = c
        .iter()
        .map(|a| a.uri.as_sip().unwrap().user_unescaped().unwrap())
        .collect();
    assert_eq!(
        users,
        [b"\0".to_vec(), b"\0\0".to_vec()],
        "two distinct contacts"
    );
}

#[test]
fn esc02() {
    let Ok(Message::Request(r)) = Message::parse(&data("esc02")) else {
        panic!("esc02 must parse")
    };
    assert_eq!(
        r.method(),
        &Method::Other(Bytes::from_static(b"RE%47IST%45R"))
    );
    assert_eq!(r.to().display.as_deref(), Some(&br#""%Z%45""#[..]));
    // `C%6Fntact` is an extension header, not a third Contact.
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    assert_eq!(header(&r, "C%6Fntact"), b"<sip:alias2@host2.example.com>");
    answered("esc02", 501);
}

#[test]
fn lwsdisp() {
    let r = delivered("lwsdisp");
    assert_eq!(r.from().display.as_deref(), Some(&b"caller"[..]));
    assert_eq!(r.from().tag(), Some(&b"323"[..]));
}

#[test]
fn longreq() {
    let r = delivered("longreq");
    assert_eq!(r.vias().count(), 34);
    assert_eq!(r.via().host_raw, "sip33.example.com");
    assert!(r.to().display.as_deref().unwrap().len() > 90);
    assert_eq!(r.to().uri.as_sip().unwrap().port(), Some(6000));
    assert!(r.from().tag().unwrap().len() > 60);
    assert!(r.call_id().len() > 100);
    assert_eq!(r.body().len(), 150);
}

#[test]
fn dblreq() {
    // The REGISTER is processed; the INVITE-looking octets after its empty body are ignored.
    let r = delivered("dblreq");
    assert_eq!(r.method(), &Method::Register);
    assert!(r.body().is_empty());
    assert_eq!(r.call_id(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
}

#[test]
fn semiuri() {
    let r = delivered("semiuri");
    let uri = r.uri().as_sip().unwrap();
    assert_eq!(uri.user(), Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(uri.host(), &Host::Name(Bytes::from_static(b"example.com")));
    assert!(uri.params().is_empty());
    let accept = header(&r, "Accept").to_vec();
    let types: Vec<_> = accept
        .split(|&b| b == b',')
        .map(|t| MediaType::parse(Bytes::copy_from_slice(t)).unwrap())
        .collect();
    assert_eq!(types.len(), 6);
    assert!(types[5].matches("message", "sipfrag"));
}

#[test]
fn transports() {
    let r = delivered("transports");
    let transports: Vec<_> = r.vias().map(|v| v.transport).collect();
    assert_eq!(
        transports,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other(Bytes::from_static(b"UNKNOWN")),
            Transport::Tcp
        ]
    );
}

#[test]
fn mpart01() {
    // A MESSAGE with a binary multipart body: framed by Content-Length, 0x00 bytes and all.
    let r = delivered("mpart01");
    assert_eq!(r.method(), &Method::Message);
    assert_eq!(r.body().len(), 553);
    assert!(r.body().contains(&0));
    let ct = MediaType::parse(Bytes::copy_from_slice(header(&r, "Content-Type"))).unwrap();
    assert!(ct.matches("multipart", "mixed"));
}

#[test]
fn unreason() {
    let r = delivered_response("unreason");
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    assert_eq!(r.body.len(), 154);
}

#[test]
fn noreason() {
    let r = delivered_response("noreason");
    assert_eq!(r.status, 100);
    assert!(r.reason.is_empty());
}

// 3.1.2 Invalid messages

#[test]
fn badinv01() {
    let r = answered("badinv01", 400);
    assert_eq!(reason(&r), "Malformed Via Header (malformed parameter)");
}

#[test]
fn clerr() {
    // Over UDP. Over TCP the framer waits for the rest (tested with the stream framer).
    let r = answered("clerr", 400);
    assert_eq!(reason(&r), "Content-Length Larger Than Body");
}

#[test]
fn ncl() {
    let r = answered("ncl", 400);
    assert_eq!(
        reason(&r),
        "Malformed Content-Length Header (negative number)"
    );
}

#[test]
fn scalar02() {
    let r = answered("scalar02", 400);
    assert_eq!(reason(&r), "Malformed CSeq Header (number out of range)");
}

#[test]
fn scalarlg() {
    assert_eq!(
        dropped("scalarlg"),
        Dropped::Malformed(ParseError::Header(HeaderName::CSeq, ValueError::Number))
    );
}

#[test]
fn quotbal() {
    // Strict reading: the closing quote is not inferred.
    let r = answered("quotbal", 400);
    assert_eq!(
        reason(&r),
        "Malformed To Header (unterminated quoted string)"
    );
}

#[test]
fn ltgtruri() {
    let r = answered("ltgtruri", 400);
    assert_eq!(reason(&r), "Request-URI In Angle Brackets");
}

#[test]
fn lwsruri() {
    let r = answered("lwsruri", 400);
    assert_eq!(reason(&r), "Malformed Request-Line");
}

#[test]
fn lwsstart() {
    // Liberal reading: the extra SP are ignored, and never forwarded.
    let r = delivered("lwsstart");
    assert_eq!(r.uri().as_bytes(), b"sip:user@example.com");
    assert!(
        r.encode_to_vec()
            .starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n")
    );
}

#[test]
fn trws() {
    // Liberal reading: the trailing SP are ignored, and never forwarded.
    let r = delivered("trws");
    assert!(
        r.encode_to_vec()
            .starts_with(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
    );
}

#[test]
fn escruri() {
    // Strict reading: headers in a Request-URI are refused rather than ignored.
    let r = answered("escruri", 400);
    assert_eq!(reason(&r), "Request-URI With Headers");
}

#[test]
fn baddate() {
    // Date does not matter to the switch: it is kept as received and not interpreted.
    let r = delivered("baddate");
    assert_eq!(header(&r, "Date"), b"Fri, 01 Jan 2010 16:00:00 EST");
}

#[test]
fn regbadct() {
    // Strict reading: the brackets are not inferred.
    let r = answered("regbadct", 400);
    assert_eq!(
        reason(&r),
        "Malformed Contact Header (URI with headers must be in angle brackets)"
    );
}

#[test]
fn badaspec() {
    let r = answered("badaspec", 400);
    assert_eq!(
        reason(&r),
        "Malformed To Header (whitespace inside the URI)"
    );
}

#[test]
fn baddn() {
    // Strict reading: quotes are not inferred.
    let r = answered("baddn", 400);
    assert_eq!(
        reason(&r),
        "Malformed From Header (display name must be quoted)"
    );
}

#[test]
fn badvers() {
    let r = answered("badvers", 505);
    assert_eq!(reason(&r), "Version Not Supported");
}

#[test]
fn mismatch01() {
    let r = answered("mismatch01", 400);
    assert_eq!(reason(&r), "CSeq Method Does Not Match Request Method");
}

#[test]
fn mismatch02() {
    // 400 (the mismatch), which RFC 4475 accepts in place of 501.
    let r = answered("mismatch02", 400);
    assert_eq!(reason(&r), "CSeq Method Does Not Match Request Method");
}

#[test]
fn bigcode() {
    assert_eq!(
        dropped("bigcode"),
        Dropped::Malformed(ParseError::StatusCode)
    );
}

// 3.2 and 3.3: transaction-layer and application-layer semantics

#[test]
fn badbranch() {
    let r = answered("badbranch", 400);
    assert_eq!(reason(&r), "Via Branch Is Only The Magic Cookie");
}

#[test]
fn insuf() {
    let r = answered("insuf", 400);
    assert_eq!(reason(&r), "Missing Call-ID Header");
    // What the request had is copied; what it lacked stays absent.
    assert!(r.headers().get(&HeaderName::CSeq).is_some());
    assert!(r.headers().get(&HeaderName::From).is_none());
}

#[test]
fn unkscm() {
    let r = answered("unkscm", 416);
    assert_eq!(reason(&r), "Unsupported URI Scheme");
}

#[test]
fn novelsc() {
    answered("novelsc", 416);
}

#[test]
fn unksm2() {
    // Parses: non-SIP schemes are legal in To, From and Contact. A registrar refuses it.
    let Ok(Message::Request(r)) = Message::parse(&data("unksm2")) else {
        panic!("unksm2 must parse")
    };
    assert_eq!(r.to().uri.scheme(), b"isbn");
    assert_eq!(r.from().uri.scheme(), b"http");
    let r = answered("unksm2", 400);
    assert_eq!(reason(&r), "To Must Be A SIP URI");
}

#[test]
fn bext01() {
    let r = answered("bext01", 420);
    assert_eq!(
        r.headers().get(&HeaderName::Unsupported).unwrap(),
        "nothingSupportsThis, nothingSupportsThisEither"
    );
}

#[test]
fn invut() {
    let r = answered("invut", 415);
    assert_eq!(
        r.headers().get(&HeaderName::Accept).unwrap(),
        "application/sdp"
    );
}

#[test]
fn regaut01() {
    // Delivered with the unknown scheme kept verbatim; the registrar answers it with its own
    // challenge (tested with the registrar).
    let r = delivered("regaut01");
    assert_eq!(
        header(&r, "Authorization"),
        b"NoOneKnowsThisScheme opaque-data=here"
    );
}

#[test]
fn multi01() {
    let r = answered("multi01", 400);
    assert_eq!(reason(&r), "Multiple Call-ID Headers");
}

#[test]
fn mcl01() {
    let r = answered("mcl01", 400);
    assert_eq!(reason(&r), "Multiple Content-Length Headers");
}

#[test]
fn bcast() {
    // A UAC receiving a response with two Vias discards it (RFC 3261 section 8.1.3.3), so the
    // broadcast address is never used.
    assert_eq!(dropped("bcast"), Dropped::ExtraVia);
}

#[test]
fn zeromf() {
    // Max-Forwards 0 only stops forwarding; an endpoint processes the request.
    let r = delivered("zeromf");
    assert_eq!(r.max_forwards(), Some(0));
}

#[test]
fn cparam01() {
    let r = delivered("cparam01");
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    assert!(!c[0].bracketed);
    assert_eq!(c[0].uri.as_bytes(), b"sip:+19725552222@gw1.example.net");
    assert_eq!(
        c[0].params.get("unknownparam"),
        Some(None),
        "a contact-param"
    );
    assert!(c[0].uri.as_sip().unwrap().params().is_empty());
}

#[test]
fn cparam02() {
    let r = delivered("cparam02");
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    assert!(c[0].params.is_empty());
    assert_eq!(
        c[0].uri.as_sip().unwrap().param("unknownparam"),
        Some(None),
        "a url-parameter"
    );
}

#[test]
fn regescrt() {
    let r = delivered("regescrt");
    let ContactList::Addrs(c) = r.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        c[0].uri.as_sip().unwrap().headers(),
        Some(&b"Route=%3Csip:sip.example.com%3E"[..])
    );
    assert!(contains(
        &r.encode_to_vec(),
        b"Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n"
    ));
}

#[test]
fn sdp01() {
    let r = answered("sdp01", 406);
    assert!(
        r.headers()
            .get(&HeaderName::Warning)
            .unwrap()
            .starts_with(b"399 ")
    );
}

#[test]
fn inv2543() {
    // RFC 2543 compatibility: no branch, no From tag, no Max-Forwards, no Content-Length (the
    // body is the rest of the datagram).
    let r = delivered("inv2543");
    assert_eq!(r.via().branch(), None);
    assert_eq!(r.from().tag(), None);
    assert_eq!(r.max_forwards(), None);
    assert!(r.body().starts_with(b"v=0\r\n"));
}

// The corpus itself

#[test]
fn every_message_has_a_test() {
    let index = std::fs::read_to_string(format!("{DATA}/INDEX.tsv")).unwrap();
    let mut listed: Vec<&str> = index
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next()?.strip_suffix(".dat"))
        .collect();
    listed.sort_unstable();
    let mut tested = TESTED.to_vec();
    tested.sort_unstable();
    assert_eq!(listed, tested);
    assert_eq!(tested.len(), 49);
}

#[test]
fn files_are_the_rfc_bytes() {
    use sha2::{Digest, Sha256};
    let sums = std::fs::read_to_string(format!("{DATA}/SHA256SUMS")).unwrap();
    let mut checked = 0;
    for line in sums.lines() {
        let (sum, file) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(format!("{DATA}/{file}")).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sum, "{file}");
        checked += 1;
    }
    assert_eq!(checked, 50, "49 messages and the archive");
}

#[test]
fn no_message_panics_the_parser_when_cut_short() {
    for name in TESTED {
        let bytes = data(name);
        for end in 0..bytes.len() {
            let _ = screen::message(bytes.slice(..end), &Policy::default());
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
