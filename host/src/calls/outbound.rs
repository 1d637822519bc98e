//! Outbound legs: where a dial target goes (a number through a trunk, a SIP URI) and the
//! INVITE that rings it, with the caller's identity placed as the trunk wants it.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use wasmswitch_sip::dns::{self, Supported, Target};
use wasmswitch_sip::message::{Message, Request};
use wasmswitch_sip::transaction::FlowTransport;
use wasmswitch_sip::uri::Uri;

use crate::plugins::model::{CallInfo, CallerId, DialTarget, FailureReason, Header, Privacy};
use crate::store::{CallerId as Placement, DirTrunk, Directory, Transport};
use crate::trunks::host_for_uri;

/// Where one target is to be rung: the Request-URI and how to reach its next hop.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// The Request-URI.
    pub uri: String,
    /// The next hop, located with RFC 3263 from the trunk's host or the URI.
    pub target: Target,
    /// The trunk, when the target goes through one (its credentials answer challenges, its
    /// caller-ID placement applies).
    pub trunk: Option<DirTrunk>,
}

/// Reads a dial target (WIT `dial-target.target`): a number through the named trunk, or a SIP
/// URI. A number without a trunk, or a plain name, is a SIP user of the tenant: phones come
/// with the registrar's bindings in a later step, so for now that is `bad-target`.
pub(crate) fn destination(
    directory: &Directory,
    tenant: &str,
    target: &DialTarget,
) -> Result<Destination, FailureReason> {
    let text = target.target.trim();
    if text.starts_with("sip:") || text.starts_with("sips:") {
        let uri = Uri::parse(Bytes::copy_from_slice(text.as_bytes()))
            .map_err(|_| FailureReason::BadTarget(target.target.clone()))?;
        let sip = uri
            .as_sip()
            .ok_or_else(|| FailureReason::BadTarget(target.target.clone()))?;
        let next =
            Target::from_uri(sip).map_err(|_| FailureReason::BadTarget(target.target.clone()))?;
        let trunk = match &target.trunk {
            Some(name) => Some(
                directory
                    .trunk(tenant, name)
                    .cloned()
                    .ok_or_else(|| FailureReason::UnknownTrunk(name.clone()))?,
            ),
            None => None,
        };
        return Ok(Destination {
            uri: text.to_owned(),
            target: next,
            trunk,
        });
    }
    let is_number = !text.is_empty()
        && text
            .strip_prefix('+')
            .unwrap_or(text)
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    let Some(name) = &target.trunk else {
        return Err(FailureReason::BadTarget(target.target.clone()));
    };
    if !is_number {
        return Err(FailureReason::BadTarget(target.target.clone()));
    }
    let trunk = directory
        .trunk(tenant, name)
        .cloned()
        .ok_or_else(|| FailureReason::UnknownTrunk(name.clone()))?;
    let host = host_for_uri(&trunk.host);
    let port = trunk.port.map(|p| format!(":{p}")).unwrap_or_default();
    let transport = match trunk.transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
    };
    let uri = format!("sip:{text}@{host}{port}{transport}");
    let next = Target::new(&trunk.host, trunk.port, Some(trunk.transport.into()), false)
        .map_err(|_| FailureReason::BadTarget(target.target.clone()))?;
    Ok(Destination {
        uri,
        target: next,
        trunk: Some(trunk),
    })
}

/// The next hop's addresses, in the order to try them. A numeric host needs no DNS.
pub(crate) async fn locate(
    resolver: &dns::Resolver,
    target: &Target,
) -> Result<Vec<(FlowTransport, SocketAddr)>, dns::DnsError> {
    Ok(resolver
        .locate(target, Supported::default())
        .await?
        .iter()
        .collect())
}

/// The identity an outbound leg presents: From's display name and user, and the
/// P-Asserted-Identity and Privacy headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presented {
    pub from: String,
    pub asserted: Option<String>,
    pub privacy: Option<String>,
}

/// RFC 3323's header value for a set of privacy flags (`none` for none).
fn privacy_value(p: Privacy) -> String {
    let mut parts = Vec::new();
    for (set, name) in [
        (p.header, "header"),
        (p.session, "session"),
        (p.user, "user"),
        (p.id, "id"),
        (p.critical, "critical"),
    ] {
        if set {
            parts.push(name);
        }
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(";")
    }
}

/// A display name as a quoted string (RFC 3261 section 25.1: `"` and `\` escaped).
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A number or URI as a `name-addr` URI: a URI as it is, a number at `domain`.
fn identity_uri(identity: &str, domain: &str) -> String {
    if identity.starts_with("sip:") || identity.starts_with("sips:") || identity.starts_with("tel:")
    {
        identity.to_owned()
    } else {
        format!("sip:{identity}@{domain}")
    }
}

/// Places the caller's identity (as the plugin set it over the caller's own) on a leg:
/// through a trunk, where its `caller_id` says (From, P-Asserted-Identity or both); to a SIP
/// URI, in From only (an asserted identity is for trusted peers). A caller that asked for
/// privacy (`header` or `user`, or `id` where no PAI carries the identity) gets an anonymous
/// From (RFC 3323 section 4.1.1.3); the Privacy header goes with the identity, so a trunk
/// that is trusted with PAI withholds it from whoever is not.
pub(crate) fn present(
    call: &CallInfo,
    chosen: Option<&CallerId>,
    trunk: Option<&DirTrunk>,
    domain: &str,
) -> Presented {
    let number = chosen
        .and_then(|c| c.number.clone())
        .unwrap_or_else(|| call.from.clone());
    let name = match chosen.and_then(|c| c.name.clone()) {
        Some(n) if n.is_empty() => None,
        Some(n) => Some(n),
        None => call.display_name.clone(),
    };
    let privacy = chosen.and_then(|c| c.privacy).unwrap_or(call.privacy);
    let asserted = chosen
        .and_then(|c| c.asserted_identity.clone())
        .or_else(|| call.asserted_identity.clone())
        .unwrap_or_else(|| number.clone());
    let placement = trunk.map(|t| t.caller_id).unwrap_or(Placement::From);
    let with_pai = trunk.is_some() && matches!(placement, Placement::Pai | Placement::Both);
    let anonymous = privacy.header || privacy.user || (privacy.id && !with_pai);
    let from = if !anonymous {
        let uri = identity_uri(&number, domain);
        match &name {
            Some(n) => format!("{} <{uri}>", quoted(n)),
            None => format!("<{uri}>"),
        }
    } else {
        "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned()
    };
    let any_privacy = privacy != Privacy::default();
    Presented {
        from,
        asserted: with_pai.then(|| format!("<{}>", identity_uri(&asserted, domain))),
        privacy: any_privacy.then(|| privacy_value(privacy)),
    }
}

/// What an outbound INVITE is made of.
#[derive(Debug)]
pub(crate) struct InviteParts<'a> {
    pub uri: &'a str,
    pub transport: FlowTransport,
    pub local: SocketAddr,
    pub branch: &'a str,
    pub call_id: &'a str,
    pub tag: &'a str,
    pub presented: &'a Presented,
    pub max_forwards: u8,
    pub headers: &'a [Header],
    pub authorization: Option<(&'a str, &'a str)>,
    pub cseq: u32,
    /// The caller's offer, passed through untouched (the media layer anchors it later).
    pub body: Option<(&'a [u8], &'a [u8])>,
}

fn via_transport(t: FlowTransport) -> &'static str {
    match t {
        FlowTransport::Udp => "UDP",
        FlowTransport::Tcp => "TCP",
        FlowTransport::Tls => "TLS",
    }
}

/// Our Contact for a leg over `transport`.
pub(crate) fn contact(transport: FlowTransport, local: SocketAddr) -> String {
    let param = match transport {
        FlowTransport::Udp => "",
        FlowTransport::Tcp => ";transport=tcp",
        FlowTransport::Tls => ";transport=tls",
    };
    format!("<sip:{local}{param}>")
}

/// The top Via for a request over `transport` from `local`.
pub(crate) fn via(transport: FlowTransport, local: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {local};branch=z9hG4bK{branch};rport",
        via_transport(transport)
    )
}

/// The methods the switch takes inside a call's dialogs.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, UPDATE, INFO, PRACK, OPTIONS";

/// Builds an outbound INVITE. Fails only if a value the checks let through still does not
/// make a valid message.
pub(crate) fn invite(p: &InviteParts<'_>) -> Option<Request> {
    let mut text = String::with_capacity(768);
    let to = match p.uri.split_once(';') {
        Some((uri, _)) => uri,
        None => p.uri,
    };
    let _ = write!(
        text,
        "INVITE {uri} SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: {mf}\r\n\
         From: {from};tag={tag}\r\n\
         To: <{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: {contact}\r\n\
         Allow: {ALLOW}\r\n\
         User-Agent: wasmswitch\r\n",
        uri = p.uri,
        via = via(p.transport, p.local, p.branch),
        mf = p.max_forwards,
        from = p.presented.from,
        tag = p.tag,
        call_id = p.call_id,
        cseq = p.cseq,
        contact = contact(p.transport, p.local),
    );
    if let Some(pai) = &p.presented.asserted {
        let _ = write!(text, "P-Asserted-Identity: {pai}\r\n");
    }
    if let Some(privacy) = &p.presented.privacy {
        let _ = write!(text, "Privacy: {privacy}\r\n");
    }
    if let Some((name, value)) = p.authorization {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    for h in p.headers {
        let _ = write!(text, "{}: {}\r\n", h.name, h.value);
    }
    let mut bytes = text.into_bytes();
    match p.body {
        Some((content_type, body)) if !body.is_empty() => {
            bytes.extend_from_slice(b"Content-Type: ");
            bytes.extend_from_slice(content_type);
            let _ = write!(
                ByteWriter(&mut bytes),
                "\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            bytes.extend_from_slice(body);
        }
        _ => bytes.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    match Message::parse_bytes(Bytes::from(bytes)) {
        Ok(Message::Request(r)) => Some(r),
        _ => None,
    }
}

/// `write!` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The host part to write numbers at in From and PAI: the trunk's host, else ours.
pub(crate) fn identity_domain(trunk: Option<&DirTrunk>, local: SocketAddr) -> String {
    match trunk {
        Some(t) => host_for_uri(&t.host),
        None => match local {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallInfo {
        CallInfo {
            from: "+14155550100".into(),
            display_name: Some("Alice \"A\"".into()),
            asserted_identity: Some("sip:+14155550100@carrier.example".into()),
            ..CallInfo::default()
        }
    }

    fn trunk(placement: Placement) -> DirTrunk {
        DirTrunk {
            id: "t".into(),
            name: "out".into(),
            host: "sip.example.net".into(),
            port: None,
            transport: Transport::Udp,
            username: None,
            password: None,
            inbound: Vec::new(),
            inbound_auth: false,
            caller_id: placement,
        }
    }

    #[test]
    fn from_carries_the_caller_with_an_escaped_name() {
        let p = present(
            &call(),
            None,
            Some(&trunk(Placement::From)),
            "sip.example.net",
        );
        assert_eq!(
            p.from,
            "\"Alice \\\"A\\\"\" <sip:+14155550100@sip.example.net>"
        );
        assert_eq!(p.asserted, None);
        assert_eq!(p.privacy, None);
    }

    #[test]
    fn the_plugin_choice_wins_and_pai_goes_where_the_trunk_says() {
        let chosen = CallerId {
            number: Some("+442071234567".into()),
            name: Some(String::new()),
            privacy: None,
            asserted_identity: None,
        };
        let p = present(&call(), Some(&chosen), Some(&trunk(Placement::Both)), "gw");
        assert_eq!(p.from, "<sip:+442071234567@gw>");
        assert_eq!(
            p.asserted.as_deref(),
            Some("<sip:+14155550100@carrier.example>")
        );
    }

    #[test]
    fn privacy_makes_from_anonymous_and_keeps_pai_for_the_trusted_trunk() {
        let mut c = call();
        c.privacy = Privacy {
            id: true,
            header: true,
            ..Privacy::default()
        };
        let p = present(&c, None, Some(&trunk(Placement::Pai)), "gw");
        assert!(p.from.contains("anonymous.invalid"), "{}", p.from);
        assert!(p.asserted.is_some());
        assert_eq!(p.privacy.as_deref(), Some("header;id"));
        // To a plain SIP URI: no PAI at all.
        let p = present(&c, None, None, "gw");
        assert_eq!(p.asserted, None);
    }

    #[test]
    fn an_invite_parses_back_with_its_body() {
        let presented = present(&call(), None, None, "127.0.0.1");
        let parts = InviteParts {
            uri: "sip:+15550100@127.0.0.1:5070;transport=tcp",
            transport: FlowTransport::Tcp,
            local: "127.0.0.1:5060".parse().expect("addr"),
            branch: "abc",
            call_id: "c1",
            tag: "t1",
            presented: &presented,
            max_forwards: 69,
            headers: &[Header {
                name: "X-Account".into(),
                value: "42".into(),
            }],
            authorization: None,
            cseq: 1,
            body: Some((b"application/sdp", b"v=0\r\n")),
        };
        let r = invite(&parts).expect("valid");
        assert_eq!(r.body().as_ref(), b"v=0\r\n");
        assert_eq!(r.max_forwards(), Some(69));
        assert_eq!(r.to().uri.as_bytes(), b"sip:+15550100@127.0.0.1:5070");
    }
}
