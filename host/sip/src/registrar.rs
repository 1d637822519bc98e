//! The registrar's decision (RFC 3261 section 10.3, RFC 5626's instance and flow): given a
//! REGISTER that passed authentication, the bindings its address of record has now and the
//! time, what changes and what to answer. Pure: the host reads and writes the bindings in the
//! store (so every host sharing the database sees them) and sends the answer.
//!
//! Time is wall-clock milliseconds since the Unix epoch, because bindings outlive the process
//! and are shared between hosts.

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::syntax::parse_u32;
use crate::transaction::Flow;
use crate::typed::{ContactList, NameAddr};

/// The registrar's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarPolicy {
    /// The shortest registration accepted, in seconds (shorter is answered 423 with
    /// Min-Expires). 60 s: shorter refreshes only load the switch.
    pub min_expires: u32,
    /// The longest granted; a longer request is shortened to this. 3600 s.
    pub max_expires: u32,
    /// Granted when the request names no expiry. 3600 s (RFC 3261's suggestion).
    pub default_expires: u32,
    /// Bindings per address of record; a REGISTER that would exceed it is refused (403).
    pub max_contacts: usize,
}

impl Default for RegistrarPolicy {
    fn default() -> RegistrarPolicy {
        RegistrarPolicy {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
        }
    }
}

/// One binding of an address of record to a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The contact URI as received (the key within the address of record, compared as bytes).
    pub uri: Bytes,
    /// The whole Contact value as received (with its parameters), for the 200 OK.
    pub contact: Bytes,
    /// When it lapses, in Unix milliseconds.
    pub expires_at_ms: u64,
    /// `q`, in thousandths (0-1000), if given.
    pub q: Option<u16>,
    /// The Call-ID of the REGISTER that made it.
    pub call_id: Bytes,
    /// That REGISTER's CSeq number.
    pub cseq: u32,
    /// RFC 5626 `+sip.instance`, if given.
    pub instance: Option<Bytes>,
    /// The flow it arrived over: calls to the contact go back the same way (NAT).
    pub flow: Flow,
}

/// What a REGISTER changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Bindings to add or replace (keyed by URI).
    pub upsert: Vec<Binding>,
    /// Contact URIs whose bindings go.
    pub remove: Vec<Bytes>,
    /// The bindings after the change, for the answer.
    pub current: Vec<Binding>,
}

/// Why a REGISTER was refused, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An expiry below the minimum: 423 with Min-Expires.
    #[error("Interval Too Brief")]
    TooBrief {
        /// The minimum to retry with.
        min_expires: u32,
    },
    /// `*` with other contacts or a non-zero expiry, or an unreadable Contact or Expires:
    /// 400.
    #[error("{0}")]
    Bad(&'static str),
    /// A repeated or older CSeq for the same Call-ID (RFC 3261 section 10.3 step 7): 500.
    #[error("Out Of Order REGISTER")]
    OutOfOrder,
    /// More bindings than allowed: 403.
    #[error("Too Many Contacts")]
    TooMany,
}

impl Refusal {
    /// The response to send.
    pub fn response(&self, request: &Request, to_tag: &str) -> Response {
        let (status, reason) = match self {
            Refusal::TooBrief { .. } => (423, "Interval Too Brief"),
            Refusal::Bad(r) => (400, *r),
            Refusal::OutOfOrder => (500, "Out Of Order REGISTER"),
            Refusal::TooMany => (403, "Too Many Contacts"),
        };
        let mut r = request.reply(status, reason, Some(to_tag));
        if let Refusal::TooBrief { min_expires } = self {
            r.headers_mut()
                .push(HeaderName::MinExpires, min_expires.to_string());
        }
        r
    }
}

/// Decides what `request` (a REGISTER for one address of record, already authenticated) does
/// to `existing` (that address's bindings, lapsed ones included or not) at `now_ms`.
pub fn register(
    request: &Request,
    existing: &[Binding],
    flow: Flow,
    now_ms: u64,
    policy: &RegistrarPolicy,
) -> Result<Update, Refusal> {
    let live: Vec<&Binding> = existing
        .iter()
        .filter(|b| b.expires_at_ms > now_ms)
        .collect();
    let header_expires = match request.headers().get(&HeaderName::Expires) {
        Some(v) => Some(parse_u32(v).ok_or(Refusal::Bad("Malformed Expires Header"))?),
        None => None,
    };
    let contacts = request
        .contacts()
        .map_err(|_| Refusal::Bad("Malformed Contact Header"))?;
    let call_id = request.call_id().clone();
    let cseq = request.cseq().seq;
    let addrs = match contacts {
        // A fetch: no Contact, nothing changes.
        ContactList::Addrs(a) if a.is_empty() => {
            return Ok(Update {
                upsert: Vec::new(),
                remove: Vec::new(),
                current: live.into_iter().cloned().collect(),
            });
        }
        ContactList::Wildcard => {
            // `*` removes everything, and only with Expires: 0 (step 6).
            if header_expires != Some(0) {
                return Err(Refusal::Bad("Wildcard Contact Needs Expires 0"));
            }
            for b in &live {
                if b.call_id == call_id && cseq <= b.cseq {
                    return Err(Refusal::OutOfOrder);
                }
            }
            return Ok(Update {
                upsert: Vec::new(),
                remove: live.iter().map(|b| b.uri.clone()).collect(),
                current: Vec::new(),
            });
        }
        ContactList::Addrs(a) => a,
    };
    let mut upsert: Vec<Binding> = Vec::new();
    let mut remove = Vec::new();
    for addr in &addrs {
        let expires = match addr.params.get("expires") {
            Some(Some(v)) => parse_u32(v).ok_or(Refusal::Bad("Malformed Contact Expires"))?,
            Some(None) => return Err(Refusal::Bad("Malformed Contact Expires")),
            None => header_expires.unwrap_or(policy.default_expires),
        };
        if expires != 0 && expires < policy.min_expires {
            return Err(Refusal::TooBrief {
                min_expires: policy.min_expires,
            });
        }
        let uri = addr.uri.to_bytes();
        if let Some(old) = live.iter().find(|b| b.uri == uri)
            && old.call_id == call_id
            && cseq <= old.cseq
        {
            return Err(Refusal::OutOfOrder);
        }
        if expires == 0 {
            remove.push(uri);
            continue;
        }
        let granted = expires.min(policy.max_expires);
        upsert.retain(|b| b.uri != uri);
        upsert.push(Binding {
            uri,
            contact: addr.to_bytes(),
            expires_at_ms: now_ms + u64::from(granted) * 1000,
            q: addr.params.get("q").flatten().and_then(parse_q),
            call_id: call_id.clone(),
            cseq,
            instance: addr
                .params
                .get("+sip.instance")
                .flatten()
                .map(Bytes::copy_from_slice),
            flow,
        });
    }
    let mut current: Vec<Binding> = live
        .into_iter()
        .filter(|b| !remove.contains(&b.uri) && !upsert.iter().any(|u| u.uri == b.uri))
        .cloned()
        .collect();
    current.extend(upsert.iter().cloned());
    if current.len() > policy.max_contacts {
        return Err(Refusal::TooMany);
    }
    current.sort_by_key(|b| std::cmp::Reverse(b.q.unwrap_or(1000)));
    Ok(Update {
        upsert,
        remove,
        current,
    })
}

/// The 200 OK to a REGISTER: every current binding with the seconds it has left.
pub fn ok_response(request: &Request, update: &Update, now_ms: u64, to_tag: &str) -> Response {
    let mut r = request.reply(200, "OK", Some(to_tag));
    for b in &update.current {
        let left = b.expires_at_ms.saturating_sub(now_ms).div_ceil(1000);
        // The stored Contact with its own expires parameter replaced by what was granted.
        let mut value = strip_expires(&b.contact);
        value.extend_from_slice(format!(";expires={left}").as_bytes());
        r.headers_mut().push(HeaderName::Contact, value);
    }
    r
}

/// The contact value without an `expires` header parameter.
fn strip_expires(contact: &Bytes) -> Vec<u8> {
    let Ok(addr) = NameAddr::parse(contact.clone()) else {
        return contact.to_vec();
    };
    let mut out = Vec::with_capacity(contact.len() + 16);
    if let Some(d) = &addr.display {
        out.extend_from_slice(d);
        out.push(b' ');
    }
    out.push(b'<');
    out.extend_from_slice(addr.uri.as_bytes());
    out.push(b'>');
    for p in addr.params.iter() {
        if p.name.eq_ignore_ascii_case(b"expires") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(p.name);
        if let Some(v) = p.value {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    out
}

/// `q` as thousandths: `0.5` is 500, `1` is 1000; anything else is ignored.
fn parse_q(v: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(v).ok()?;
    let q: f64 = text.parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::transaction::FlowTransport;

    fn flow() -> Flow {
        Flow {
            transport: FlowTransport::Udp,
            remote: "198.51.100.7:40123".parse().unwrap(),
            connection: None,
        }
    }

    fn register_req(cseq: u32, extra: &str) -> Request {
        let text = format!(
            "REGISTER sip:acme.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{cseq};rport\r\n\
From: <sip:alice@acme.example.com>;tag=f1\r\n\
To: <sip:alice@acme.example.com>\r\n\
Call-ID: reg-1\r\n\
CSeq: {cseq} REGISTER\r\n\
{extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn bind_refresh_and_remove() {
        let p = RegistrarPolicy::default();
        let r1 = register_req(1, "Contact: <sip:alice@10.0.0.2:5060>;expires=600\r\n");
        let u = register(&r1, &[], flow(), T0, &p).unwrap();
        assert_eq!(u.upsert.len(), 1);
        assert_eq!(u.current[0].expires_at_ms, T0 + 600_000);
        assert_eq!(u.current[0].flow, flow(), "the flow is remembered");
        let ok = ok_response(&r1, &u, T0, "t").to_vec();
        assert!(
            String::from_utf8_lossy(&ok)
                .contains("Contact: <sip:alice@10.0.0.2:5060>;expires=600\r\n")
        );

        // A refresh in the same Call-ID with a higher CSeq; a longer ask is capped.
        let r2 = register_req(2, "Expires: 7200\r\nContact: <sip:alice@10.0.0.2:5060>\r\n");
        let u2 = register(&r2, &u.current, flow(), T0 + 1000, &p).unwrap();
        assert_eq!(u2.current[0].expires_at_ms, T0 + 1000 + 3_600_000);

        // The same CSeq again is out of order.
        assert_eq!(
            register(&r2, &u2.current, flow(), T0 + 2000, &p),
            Err(Refusal::OutOfOrder)
        );

        // Expires: 0 removes it.
        let r3 = register_req(3, "Contact: <sip:alice@10.0.0.2:5060>;expires=0\r\n");
        let u3 = register(&r3, &u2.current, flow(), T0 + 3000, &p).unwrap();
        assert_eq!(
            u3.remove,
            vec![Bytes::from_static(b"sip:alice@10.0.0.2:5060")]
        );
        assert!(u3.current.is_empty());
    }

    #[test]
    fn several_contacts_ordered_by_q_and_capped() {
        let p = RegistrarPolicy {
            max_contacts: 2,
            ..RegistrarPolicy::default()
        };
        let r = register_req(
            1,
            "Contact: <sip:a@10.0.0.2>;q=0.5, <sip:b@10.0.0.3>;q=0.9\r\n",
        );
        let u = register(&r, &[], flow(), T0, &p).unwrap();
        let uris: Vec<_> = u.current.iter().map(|b| b.uri.clone()).collect();
        assert_eq!(
            uris,
            [
                Bytes::from_static(b"sip:b@10.0.0.3"),
                Bytes::from_static(b"sip:a@10.0.0.2")
            ]
        );
        let more = register_req(2, "Contact: <sip:c@10.0.0.4>\r\n");
        assert_eq!(
            register(&more, &u.current, flow(), T0, &p),
            Err(Refusal::TooMany)
        );
        // Lapsed bindings do not count.
        assert!(register(&more, &u.current, flow(), T0 + 3_600_001, &p).is_ok());
    }

    #[test]
    fn wildcard_and_fetch() {
        let p = RegistrarPolicy::default();
        let r = register_req(1, "Contact: <sip:a@10.0.0.2>\r\n");
        let u = register(&r, &[], flow(), T0, &p).unwrap();
        let fetch = register_req(2, "");
        assert_eq!(
            register(&fetch, &u.current, flow(), T0, &p)
                .unwrap()
                .current
                .len(),
            1
        );
        let star = register_req(3, "Contact: *\r\nExpires: 0\r\n");
        let gone = register(&star, &u.current, flow(), T0, &p).unwrap();
        assert_eq!(gone.remove.len(), 1);
        assert!(gone.current.is_empty());
        let bad_star = register_req(4, "Contact: *\r\n");
        assert!(matches!(
            register(&bad_star, &u.current, flow(), T0, &p),
            Err(Refusal::Bad(_))
        ));
    }

    #[test]
    fn too_brief_is_423_with_min_expires() {
        let p = RegistrarPolicy::default();
        let r = register_req(1, "Contact: <sip:a@10.0.0.2>;expires=10\r\n");
        let refusal = register(&r, &[], flow(), T0, &p).unwrap_err();
        assert_eq!(refusal, Refusal::TooBrief { min_expires: 60 });
        let resp = refusal.response(&r, "t");
        assert_eq!(resp.status, 423);
        assert_eq!(resp.headers().get(&HeaderName::MinExpires).unwrap(), "60");
    }

    #[test]
    fn instance_and_unknown_params_are_kept() {
        // RFC 4475 cparam01/02: a contact-param stays a contact-param, a url-param stays in
        // the URI; the stored contact is what was received.
        let p = RegistrarPolicy::default();
        let r = register_req(
            1,
            "Contact: <sip:+19725552222@gw1.example.net;unknownparam>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1\r\n",
        );
        let u = register(&r, &[], flow(), T0, &p).unwrap();
        let b = &u.current[0];
        assert_eq!(b.uri, "sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(
            b.instance.as_deref(),
            Some(&b"\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""[..])
        );
        let ok = String::from_utf8(ok_response(&r, &u, T0, "t").to_vec()).unwrap();
        assert!(ok.contains("<sip:+19725552222@gw1.example.net;unknownparam>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=3600\r\n"), "{ok}");
    }
}
