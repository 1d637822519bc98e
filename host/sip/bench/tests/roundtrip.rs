//! Each contestant round-trips each data file: parse -> read -> print -> parse -> read gives
//! the same Summary (Call-ID, CSeq, top-Via branch, tags, To URI, Content-Length),
//! and the first read matches the values written into the files by tools/gen_data.py.
use wasmswitch_sip_bench::{Summary, data, ours, rsip_peer, rsipstack_peer};

fn expected(name: &str) -> Summary {
    let invite = Summary {
        branch: "z9hG4bK4b1c.9a7e0f2d1c3b5a68.0".into(), // top Via, not the UA's second Via
        from_tag: "8a2c41f9".into(),
        to_uri: "sip:+14155550142@sbc.example.net;user=phone".into(),
        to_tag: None,
        call_id: "Yjc2ZmQ4NTI3MGE5ZDBmNzQ0".into(),
        cseq: 2,
        method: "INVITE".into(),
        content_length: 223,
    };
    match name {
        "invite" => invite,
        "ok" => Summary {
            to_tag: Some("as6f1c2d9e".into()),
            content_length: 235,
            ..invite
        },
        "register" => Summary {
            branch: "z9hG4bK-524287-1---c4e1f3a2b8d97c06".into(),
            from_tag: "3f1b9c7e".into(),
            to_uri: "sip:alice@sip.example.com".into(),
            to_tag: None,
            call_id: "ZmI4NzQ2MjljMTg3ZGQ4ZWE0NGE0ZDE4YTBjNmU1ODQ".into(),
            cseq: 2,
            method: "REGISTER".into(),
            content_length: 0,
        },
        _ => unreachable!(),
    }
}

/// Content-Length in each file equals its body length (the data are well-formed).
#[test]
fn data_files_have_exact_content_length() {
    for (name, bytes) in data::ALL {
        let sep = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("CRLFCRLF");
        assert_eq!(
            bytes.len() - (sep + 4),
            expected(name).content_length as usize,
            "{name}"
        );
        assert!(
            !bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "{name}: bare LF"
        );
    }
}

#[test]
fn rsip_round_trips_every_file() {
    for (name, bytes) in data::ALL {
        let first = rsip_peer::parse(bytes);
        let s1 = rsip_peer::read(&first);
        assert_eq!(s1, expected(name), "rsip read {name}");
        let printed = rsip_peer::print(&first);
        let s2 = rsip_peer::parse_and_read(&printed);
        assert_eq!(s1, s2, "rsip round trip {name}");
        // Both peers keep headers as (canonically named) strings, so canonical input prints back verbatim.
        assert_eq!(printed, bytes, "rsip print of {name} is byte-identical");
    }
}

#[test]
fn rsipstack_round_trips_every_file() {
    for (name, bytes) in data::ALL {
        let first = rsipstack_peer::parse(bytes);
        let s1 = rsipstack_peer::read(&first);
        assert_eq!(s1, expected(name), "rsipstack read {name}");
        let printed = rsipstack_peer::print(&first);
        let s2 = rsipstack_peer::parse_and_read(&printed);
        assert_eq!(s1, s2, "rsipstack round trip {name}");
        assert_eq!(
            printed, bytes,
            "rsipstack print of {name} is byte-identical"
        );
    }
}

#[test]
fn ours_round_trips_every_file() {
    for (name, bytes) in data::ALL {
        let first = ours::parse(bytes);
        let s1 = ours::read(&first);
        assert_eq!(s1, expected(name), "ours read {name}");
        let printed = ours::print(&first);
        assert_eq!(ours::parse_and_read(&printed), s1, "ours round trip {name}");
        assert_eq!(printed, bytes, "ours print of {name} is byte-identical");
    }
}

/// The three agree with each other on every file.
#[test]
fn peers_agree() {
    for (name, bytes) in data::ALL {
        assert_eq!(
            rsip_peer::parse_and_read(bytes),
            rsipstack_peer::parse_and_read(bytes),
            "{name}"
        );
        assert_eq!(
            ours::parse_and_read(bytes),
            rsipstack_peer::parse_and_read(bytes),
            "{name}"
        );
    }
}
