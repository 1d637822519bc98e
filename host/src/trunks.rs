//! Keeps the trunks marked `register` registered with their providers (RFC 3261 section 10.2,
//! the switch as the user agent): REGISTER, answer the provider's digest challenge with the
//! trunk's credentials, refresh before the grant lapses, back off with jitter after a
//! failure. The state (registered, failing and why, the next attempt) goes to the store,
//! where the API shows it from any host.
//!
//! One host registers each trunk: a supervisor claims trunks by a lease in the store and
//! renews it every few seconds, so when a host dies another takes its trunks over within
//! [`LEASE`]. A trunk whose settings change is let go and claimed afresh with the new ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmswitch_sip::digest::DigestClient;
use wasmswitch_sip::endpoint::{Endpoint, NoFinal};
use wasmswitch_sip::transaction::{Flow, FlowTransport};
use wasmswitch_sip::typed::NameAddr;
use wasmswitch_sip::{HeaderName, Message, Request, Response};

use crate::store::{RegisteringTrunk, Store, Transport, TrunkRegistration, now_ms};

/// How long a host's hold on a trunk lasts unless renewed.
const LEASE: Duration = Duration::from_secs(30);
/// How often the supervisor looks for trunks to take and renews its leases.
const SUPERVISE_EVERY: Duration = Duration::from_secs(5);
/// The first back-off after a failure; it doubles with each failure in a row, up to
/// [`MAX_BACKOFF`], and is spread by ±20% so that trunks failing together do not retry
/// together.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// What every trunk's task needs.
#[derive(Debug, Clone)]
pub struct TrunkContext {
    pub store: Store,
    pub endpoint: Endpoint,
    /// This host's id (the lease holder).
    pub host_id: String,
    /// The expiry asked for, in seconds.
    pub expires: u32,
    /// The address the provider should reach the switch at (Via, Contact): `sip.public_address`,
    /// if set.
    pub public: Option<SocketAddr>,
    /// The address SIP's UDP socket is bound to.
    pub udp: SocketAddr,
    /// Each held trunk's state, for the metrics.
    states: Arc<Mutex<HashMap<String, &'static str>>>,
}

impl TrunkContext {
    pub fn new(
        store: Store,
        endpoint: Endpoint,
        host_id: String,
        expires: u32,
        public: Option<SocketAddr>,
        udp: SocketAddr,
    ) -> TrunkContext {
        TrunkContext {
            store,
            endpoint,
            host_id,
            expires,
            public,
            udp,
            states: Arc::default(),
        }
    }

    fn set_state(&self, trunk: &str, state: Option<&'static str>) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => states.insert(trunk.to_owned(), s),
            None => states.remove(trunk),
        };
        for label in ["registering", "registered", "failing"] {
            let n = states.values().filter(|s| **s == label).count();
            metrics::gauge!("sip_trunk_registrations", "state" => label).set(n as f64);
        }
    }
}

/// Runs until `stopped`: claims registering trunks and keeps a task for each one held.
pub async fn supervise(ctx: TrunkContext, mut stopped: watch::Receiver<bool>) {
    let mut held: HashMap<String, (RegisteringTrunk, JoinHandle<()>)> = HashMap::new();
    let mut every = tokio::time::interval(SUPERVISE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            r = stopped.changed() => if r.is_err() || *stopped.borrow() { break },
        }
        let wanted = match ctx.store.registering_trunks().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the trunks to register");
                continue;
            }
        };
        // Let go of trunks no longer wanted as they are, and of finished tasks.
        let gone: Vec<String> = held
            .iter()
            .filter(|(_, (t, task))| task.is_finished() || !wanted.contains(t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some((_, task)) = held.remove(&id) {
                task.abort();
                ctx.set_state(&id, None);
                if let Err(e) = ctx.store.release_trunk(&id, &ctx.host_id).await {
                    tracing::warn!(trunk = %id, error = %e, "cannot release a trunk");
                }
            }
        }
        let now = now_ms();
        let lease_until = now + LEASE.as_millis() as i64;
        for trunk in wanted {
            match ctx
                .store
                .claim_trunk(&trunk, &ctx.host_id, now, lease_until)
                .await
            {
                Ok(true) if !held.contains_key(&trunk.id) => {
                    tracing::info!(trunk = %trunk.name, tenant = %trunk.tenant_id, host = %trunk.host, "registering with a trunk");
                    let task = tokio::spawn(keep_registered(ctx.clone(), trunk.clone()));
                    held.insert(trunk.id.clone(), (trunk, task));
                }
                Ok(true) => {}
                Ok(false) => {
                    // Another host holds it (now): stop if this one thought it did.
                    if let Some((_, task)) = held.remove(&trunk.id) {
                        tracing::warn!(trunk = %trunk.name, "another host took the trunk over");
                        task.abort();
                        ctx.set_state(&trunk.id, None);
                    }
                }
                Err(e) => tracing::warn!(trunk = %trunk.name, error = %e, "cannot claim a trunk"),
            }
        }
    }
    for (id, (_, task)) in held {
        task.abort();
        ctx.set_state(&id, None);
        let _ = ctx.store.release_trunk(&id, &ctx.host_id).await;
    }
}

/// Registers with one trunk for as long as the task lives.
async fn keep_registered(ctx: TrunkContext, trunk: RegisteringTrunk) {
    let mut ua = Registering::new(&ctx, &trunk);
    let mut failures = 0i64;
    let mut registered_until = None;
    ctx.set_state(&trunk.id, Some("registering"));
    loop {
        let result = ua.attempt(&ctx, &trunk).await;
        let now = now_ms();
        let (state, last_error, wait) = match result {
            Ok(granted) => {
                failures = 0;
                registered_until = Some(now + i64::from(granted) * 1000);
                metrics::counter!("sip_trunk_register_attempts_total", "outcome" => "ok")
                    .increment(1);
                tracing::debug!(trunk = %trunk.name, granted, "registered with the trunk");
                ("registered", None, refresh_after(granted))
            }
            Err(why) => {
                failures += 1;
                metrics::counter!("sip_trunk_register_attempts_total", "outcome" => "failed")
                    .increment(1);
                tracing::warn!(trunk = %trunk.name, tenant = %trunk.tenant_id, failures, error = %why, "registering with the trunk failed");
                if registered_until.is_some_and(|t| t <= now) {
                    registered_until = None;
                }
                ("failing", Some(why), backoff(failures))
            }
        };
        ctx.set_state(&trunk.id, Some(state));
        let record = TrunkRegistration {
            state: state.into(),
            last_error,
            registered_until,
            next_attempt: Some(now + wait.as_millis() as i64),
            failures,
            host_id: ctx.host_id.clone(),
            updated_at: now,
        };
        let lease_until = now + LEASE.as_millis() as i64;
        match ctx
            .store
            .record_trunk_registration(&trunk.id, &ctx.host_id, lease_until, &record)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(trunk = %trunk.name, "the trunk is held by another host now; stopping here");
                return;
            }
            Err(e) => {
                tracing::warn!(trunk = %trunk.name, error = %e, "cannot record the trunk's registration")
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// When to refresh a grant of `granted` seconds: at 85% of it, so a lost REGISTER still has
/// time for its retransmissions (32 s) and a retry before the grant lapses.
fn refresh_after(granted: u32) -> Duration {
    Duration::from_millis((u64::from(granted) * 850).max(1000))
}

/// The wait after `failures` failures in a row: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], times a random factor in [0.8, 1.2].
fn backoff(failures: i64) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let base = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    let mut r = [0u8; 2];
    let spread = match getrandom::fill(&mut r) {
        Ok(()) => 0.8 + 0.4 * f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX),
        Err(_) => 1.0,
    };
    base.mul_f64(spread)
}

/// One trunk's user agent: its Call-ID, CSeq and digest state across REGISTERs, as RFC 3261
/// section 10.2.4 asks of refreshes.
struct Registering {
    call_id: String,
    from_tag: String,
    cseq: u32,
    digest: DigestClient,
    expires: u32,
}

impl Registering {
    fn new(ctx: &TrunkContext, trunk: &RegisteringTrunk) -> Registering {
        Registering {
            call_id: format!("{}@{}", random_hex(), ctx.host_id),
            from_tag: random_hex(),
            cseq: 0,
            digest: DigestClient::new(trunk.username.clone(), trunk.password.clone()),
            expires: ctx.expires,
        }
    }

    /// One registration: REGISTER, answering at most two challenges. The seconds granted, or
    /// why it failed.
    async fn attempt(
        &mut self,
        ctx: &TrunkContext,
        trunk: &RegisteringTrunk,
    ) -> Result<u32, String> {
        if trunk.transport != Transport::Udp {
            return Err(format!(
                "registering over {} is not supported yet (UDP only)",
                trunk.transport.as_str()
            ));
        }
        let remote = tokio::net::lookup_host((trunk.host.as_str(), trunk.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", trunk.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", trunk.host))?;
        let local = local_address(ctx, remote);
        let uri = format!("sip:{}:{}", host_for_uri(&trunk.host), trunk.port);
        // The credentials of the last challenge are sent at once: most registrars accept
        // them until the nonce goes stale, which saves a round trip per refresh.
        let mut authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
        let mut auth_header = HeaderName::Authorization;
        for _ in 0..3 {
            self.cseq += 1;
            let request =
                self.request(trunk, &uri, local, authorization.as_deref(), &auth_header)?;
            let flow = Flow {
                transport: FlowTransport::Udp,
                remote,
                connection: None,
            };
            let mut tx = ctx
                .endpoint
                .request(request, flow)
                .await
                .map_err(|e| format!("cannot send: {e}"))?;
            let response = tx.final_response().await.map_err(|e| match e {
                NoFinal::Timeout => format!("no answer from {remote}"),
                _ => format!("no answer from {remote}: {e}"),
            })?;
            let status = response.status;
            let reason = String::from_utf8_lossy(&response.reason).into_owned();
            match status {
                200..=299 => return Ok(granted(&response, local, self.expires)),
                401 | 407 => {
                    let (challenge_header, answer_header) = if status == 401 {
                        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
                    } else {
                        (
                            HeaderName::ProxyAuthenticate,
                            HeaderName::ProxyAuthorization,
                        )
                    };
                    let sent = authorization.is_some();
                    let challenge = self
                        .digest
                        .challenged(
                            response
                                .headers()
                                .get_all(&challenge_header)
                                .map(|v| v.as_ref()),
                        )
                        .map_err(|e| {
                            format!("{status} {reason}: the challenge cannot be answered: {e}")
                        })?;
                    if sent && !challenge.stale {
                        return Err(format!(
                            "{status} {reason}: the trunk refused the username or password"
                        ));
                    }
                    authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
                    auth_header = answer_header;
                }
                423 => {
                    let min = response
                        .headers()
                        .get(&HeaderName::MinExpires)
                        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok())
                        .ok_or_else(|| format!("{status} {reason} without a usable Min-Expires"))?;
                    self.expires = min;
                }
                _ => return Err(format!("{status} {reason}")),
            }
        }
        Err("challenged again and again".into())
    }

    fn request(
        &self,
        trunk: &RegisteringTrunk,
        uri: &str,
        local: SocketAddr,
        authorization: Option<&str>,
        auth_header: &HeaderName,
    ) -> Result<Request, String> {
        let host = host_for_uri(&trunk.host);
        let auth = authorization
            .map(|a| format!("{}: {a}\r\n", auth_header.as_str()))
            .unwrap_or_default();
        let text = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={tag}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: {expires}\r\n\
             {auth}User-Agent: wasmswitch\r\n\
             Content-Length: 0\r\n\r\n",
            branch = random_hex(),
            user = trunk.username,
            tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
            expires = self.expires,
        );
        match Message::parse(text.as_bytes()) {
            Ok(Message::Request(r)) => Ok(r),
            // The username and host come from the API, which checks them; should one still
            // not make a valid request, the trunk fails with that reason.
            _ => Err("the trunk's username or host does not make a valid REGISTER".into()),
        }
    }
}

/// The seconds a 200 grants our contact: its `expires` parameter in the Contact that is ours,
/// else the Expires header, else what was asked.
fn granted(response: &Response, local: SocketAddr, asked: u32) -> u32 {
    let ours = local.to_string();
    let from_contact = response
        .headers()
        .get_all(&HeaderName::Contact)
        .filter_map(|v| NameAddr::parse(v.clone()).ok())
        .find(|a| String::from_utf8_lossy(a.uri.as_bytes()).contains(&ours))
        .and_then(|a| {
            let v = a.params.get("expires").flatten()?;
            std::str::from_utf8(v).ok()?.parse::<u32>().ok()
        });
    from_contact
        .or_else(|| {
            response
                .headers()
                .get(&HeaderName::Expires)
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        })
        .unwrap_or(asked)
}

/// Where the provider should reach the switch: `sip.public_address` if set, else the bound
/// UDP address, or, bound to every interface, the local address the system routes to
/// `remote` from.
fn local_address(ctx: &TrunkContext, remote: SocketAddr) -> SocketAddr {
    if let Some(public) = ctx.public {
        return public;
    }
    if !ctx.udp.ip().is_unspecified() {
        return ctx.udp;
    }
    let routed = std::net::UdpSocket::bind(SocketAddr::new(ctx.udp.ip(), 0))
        .and_then(|s| {
            s.connect(remote)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(ctx.udp.ip());
    SocketAddr::new(routed, ctx.udp.port())
}

/// A host as a SIP URI writes it: an IPv6 address in brackets.
fn host_for_uri(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = (now_ms() as u64).to_le_bytes();
    }
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        for (failures, base) in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (60, 600.0)] {
            let b = backoff(failures).as_secs_f64();
            assert!((base * 0.8..=base * 1.2).contains(&b), "{failures}: {b}");
        }
        let spread: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(3).as_millis()).collect();
        assert!(spread.len() > 1, "jittered");
    }

    #[test]
    fn refreshes_come_before_the_grant_lapses() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3060));
        assert_eq!(refresh_after(10), Duration::from_millis(8500));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
