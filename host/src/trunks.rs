//! Keeps the trunks marked `register` registered with their providers (RFC 3261 section 10.2,
//! the switch as the user agent): REGISTER, answer the provider's digest challenge with the
//! trunk's credentials, refresh before the grant lapses, back off with jitter after a
//! failure. The state (registered, failing and why, the next attempt) goes to the store,
//! where the API shows it from any host.
//!
//! One host registers each trunk: a supervisor claims trunks by a lease in the store and
//! renews it every few seconds, so when a host dies another takes its trunks over within
//! [`LEASE`]. A trunk whose settings change is let go and claimed afresh with the new ones.
//!
//! The trunk's transport is the registration's: over TCP or TLS the endpoint opens a
//! connection to the provider (TLS checks the provider's certificate against the trunk's
//! host name and `sip.tls_ca_file` or Mozilla's roots) and keeps it for the refreshes; the
//! Contact names the transport, so the provider sends calls back over it or to our listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmswitch_sip::digest::DigestClient;
use wasmswitch_sip::endpoint::{Endpoint, NoFinal};
use wasmswitch_sip::transaction::Flow;
use wasmswitch_sip::typed::NameAddr;
use wasmswitch_sip::uri::{Host, Uri};
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

/// The addresses SIP is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// `None` without a TLS listener (the switch can still open TLS connections).
    pub tls: Option<SocketAddr>,
}

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
    /// The addresses SIP is bound to, for each transport.
    pub bound: Bound,
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
        bound: Bound,
    ) -> TrunkContext {
        TrunkContext {
            store,
            endpoint,
            host_id,
            expires,
            public,
            bound,
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

/// A trunk this host holds: its settings, its task, and the signal that tells the task to
/// unregister and end.
struct Held {
    trunk: RegisteringTrunk,
    task: JoinHandle<()>,
    let_go: watch::Sender<bool>,
}

/// How long a task that was told to let go may take to unregister before it is aborted.
const LET_GO_WITHIN: Duration = Duration::from_secs(6);

impl Held {
    /// Tells the task to unregister and end, and waits for it (aborting it past
    /// [`LET_GO_WITHIN`]).
    async fn let_go(mut self) {
        let _ = self.let_go.send(true);
        if tokio::time::timeout(LET_GO_WITHIN, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Runs until `stopped`: claims registering trunks and keeps a task for each one held. On
/// the way out every held trunk is unregistered (`Expires: 0`) and released, so the provider
/// and the other hosts know at once; the caller must keep the SIP endpoint up until then.
pub async fn supervise(ctx: TrunkContext, mut stopped: watch::Receiver<bool>) {
    let mut held: HashMap<String, Held> = HashMap::new();
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
            .filter(|(_, h)| h.task.is_finished() || !wanted.contains(&h.trunk))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(h) = held.remove(&id) {
                h.let_go().await;
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
                    let (let_go, told) = watch::channel(false);
                    let task = tokio::spawn(keep_registered(ctx.clone(), trunk.clone(), told));
                    held.insert(
                        trunk.id.clone(),
                        Held {
                            trunk,
                            task,
                            let_go,
                        },
                    );
                }
                Ok(true) => {}
                Ok(false) => {
                    // Another host holds it (now): stop if this one thought it did.
                    // Another host holds it now: this host's contact comes off the provider.
                    if let Some(h) = held.remove(&trunk.id) {
                        tracing::warn!(trunk = %trunk.name, "another host took the trunk over");
                        h.let_go().await;
                        ctx.set_state(&trunk.id, None);
                    }
                }
                Err(e) => tracing::warn!(trunk = %trunk.name, error = %e, "cannot claim a trunk"),
            }
        }
    }
    // Every trunk lets go at once: each unregisters in parallel.
    let ids: Vec<String> = held.keys().cloned().collect();
    let mut leaving = tokio::task::JoinSet::new();
    for h in held.into_values() {
        leaving.spawn(h.let_go());
    }
    while leaving.join_next().await.is_some() {}
    for id in ids {
        ctx.set_state(&id, None);
        let _ = ctx.store.release_trunk(&id, &ctx.host_id).await;
    }
}

/// Registers with one trunk until told to let go, then unregisters.
async fn keep_registered(
    ctx: TrunkContext,
    trunk: RegisteringTrunk,
    mut let_go: watch::Receiver<bool>,
) {
    let mut ua = Registering::new(&ctx, &trunk);
    let mut failures = 0i64;
    let mut registered_until = None;
    ctx.set_state(&trunk.id, Some("registering"));
    loop {
        let result = tokio::select! {
            r = ua.attempt(&ctx, &trunk) => r,
            _ = let_go.changed() => {
                // Mid-attempt: the provider may have bound the contact already.
                ua.unregister(&ctx, &trunk).await;
                return;
            }
        };
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
                // Deleted, or held by another host now (which registers a contact of its
                // own): this host's contact comes off the provider either way.
                tracing::info!(trunk = %trunk.name, "the trunk was deleted or taken over; letting it go");
                if registered_until.is_some() {
                    ua.unregister(&ctx, &trunk).await;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(trunk = %trunk.name, error = %e, "cannot record the trunk's registration")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = let_go.changed() => {
                if registered_until.is_some() {
                    ua.unregister(&ctx, &trunk).await;
                }
                return;
            }
        }
    }
}

/// How much of a grant is kept in hand at the refresh: a REGISTER that gets no answer is
/// given up after 64 x T1 (32 s), and the retry comes after the first back-off (5 s).
const REFRESH_MARGIN: Duration = Duration::from_secs(37);

/// When to refresh a grant of `granted` seconds: 15% of it, and at least [`REFRESH_MARGIN`],
/// before it lapses; a grant too short for that margin is refreshed halfway. At least 1 s.
fn refresh_after(granted: u32) -> Duration {
    let granted = Duration::from_secs(u64::from(granted));
    let at = if granted > REFRESH_MARGIN * 2 {
        granted - granted.mul_f64(0.15).max(REFRESH_MARGIN)
    } else {
        granted / 2
    };
    at.max(Duration::from_secs(1))
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
    /// The header the held challenge is answered in: `Authorization` for a registrar's 401,
    /// `Proxy-Authorization` for a proxy's 407.
    answer_in: HeaderName,
    expires: u32,
    /// Where the last attempt went and the contact it registered, for the unregister.
    last: Option<(SocketAddr, SocketAddr)>,
}

/// How a response to a REGISTER goes on.
enum Next {
    /// Registered for this many seconds.
    Granted(u32),
    /// Send again (a challenge answered, a longer expiry asked).
    Again,
}

impl Registering {
    fn new(ctx: &TrunkContext, trunk: &RegisteringTrunk) -> Registering {
        Registering {
            call_id: format!("{}@{}", random_hex(), ctx.host_id),
            from_tag: random_hex(),
            cseq: 0,
            digest: DigestClient::new(trunk.username.clone(), trunk.password.clone()),
            answer_in: HeaderName::Authorization,
            expires: ctx.expires,
            last: None,
        }
    }

    /// One registration: REGISTER, answering challenges (at most three rounds). The seconds
    /// granted, or why it failed.
    async fn attempt(
        &mut self,
        ctx: &TrunkContext,
        trunk: &RegisteringTrunk,
    ) -> Result<u32, String> {
        if trunk.transport == Transport::Tls && ctx.bound.tls.is_none() {
            // Our Contact would name TLS at a port that speaks none: the provider's calls to
            // it would fail, or go in the clear if we named TCP instead.
            return Err(
                "registering over TLS needs a TLS listener (sip.tls_listen): the provider sends calls to it"
                    .into(),
            );
        }
        let remote = resolve(ctx, trunk).await?;
        let local = local_address(ctx, trunk.transport, remote);
        self.last = Some((remote, local));
        let uri = registrar_uri(trunk);
        // The credentials of the held challenge go at once: most registrars accept them until
        // the nonce goes stale, which saves a round trip per refresh. They are not `fresh`:
        // a challenge in answer to them may only mean the registrar forgot the nonce.
        let mut authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
        let mut fresh = false;
        let mut last = String::new();
        for _ in 0..3 {
            let response = self
                .send(
                    ctx,
                    trunk,
                    &uri,
                    remote,
                    local,
                    self.expires,
                    authorization.as_deref(),
                )
                .await?;
            last = format!(
                "{} {}",
                response.status,
                String::from_utf8_lossy(&response.reason)
            );
            match self.next(&response, local, fresh)? {
                Next::Granted(secs) => return Ok(secs),
                Next::Again => {
                    // A challenge was just taken (fresh credentials), or the expiry changed
                    // (the same challenge, counted up: a repeated nc is a replay).
                    fresh |= matches!(response.status, 401 | 407);
                    authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
                }
            }
        }
        Err(format!("{last} again after answering it"))
    }

    /// What `response` means for the registration.
    fn next(
        &mut self,
        response: &Response,
        local: SocketAddr,
        fresh: bool,
    ) -> Result<Next, String> {
        let status = response.status;
        let reason = String::from_utf8_lossy(&response.reason).into_owned();
        match status {
            200..=299 => match granted(response, local, self.expires) {
                Some(0) | None => Err(format!(
                    "{status} {reason} without a lifetime for our contact {local}"
                )),
                Some(secs) => Ok(Next::Granted(secs)),
            },
            401 | 407 => {
                let (challenge_in, answer_in) = if status == 401 {
                    (HeaderName::WwwAuthenticate, HeaderName::Authorization)
                } else {
                    (
                        HeaderName::ProxyAuthenticate,
                        HeaderName::ProxyAuthorization,
                    )
                };
                let challenge = self
                    .digest
                    .challenged(
                        response
                            .headers()
                            .get_all(&challenge_in)
                            .map(|v| v.as_ref()),
                    )
                    .map_err(|e| {
                        format!("{status} {reason}: the challenge cannot be answered: {e}")
                    })?;
                if fresh && !challenge.stale {
                    return Err(format!(
                        "{status} {reason}: the trunk refused the username or password"
                    ));
                }
                self.answer_in = answer_in;
                Ok(Next::Again)
            }
            423 => {
                let min = response
                    .headers()
                    .get(&HeaderName::MinExpires)
                    .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok())
                    .filter(|m| *m > self.expires)
                    .ok_or_else(|| format!("{status} {reason} without a usable Min-Expires"))?;
                self.expires = min;
                Ok(Next::Again)
            }
            _ => Err(format!("{status} {reason}")),
        }
    }

    /// Takes this host's contact off the provider (`Expires: 0`), answering one challenge;
    /// bounded, and only logged: the trunk is being let go either way.
    async fn unregister(&mut self, ctx: &TrunkContext, trunk: &RegisteringTrunk) {
        let Some((remote, local)) = self.last else {
            return;
        };
        let uri = registrar_uri(trunk);
        let work = async {
            let mut authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
            for _ in 0..2 {
                let response = self
                    .send(ctx, trunk, &uri, remote, local, 0, authorization.as_deref())
                    .await?;
                match response.status {
                    200..=299 => return Ok(()),
                    401 | 407 => {
                        self.next(&response, local, false)?;
                        authorization = self.digest.authorization("REGISTER", &uri, &random_hex());
                    }
                    s => return Err(format!("{s} {}", String::from_utf8_lossy(&response.reason))),
                }
            }
            Err("challenged again".to_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), work).await {
            Ok(Ok(())) => tracing::info!(trunk = %trunk.name, "unregistered from the trunk"),
            Ok(Err(why)) => {
                tracing::warn!(trunk = %trunk.name, error = %why, "unregistering from the trunk failed")
            }
            Err(_) => {
                tracing::warn!(trunk = %trunk.name, "unregistering from the trunk took too long")
            }
        }
    }

    /// Sends one REGISTER asking for `expires` seconds and waits for its final response.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        ctx: &TrunkContext,
        trunk: &RegisteringTrunk,
        uri: &str,
        remote: SocketAddr,
        local: SocketAddr,
        expires: u32,
        authorization: Option<&str>,
    ) -> Result<Response, String> {
        self.cseq += 1;
        let request = self.request(trunk, uri, local, expires, authorization)?;
        let flow = Flow {
            transport: trunk.transport.into(),
            remote,
            connection: None,
        };
        let mut tx = ctx
            .endpoint
            .request(request, flow)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        tx.final_response().await.map_err(|e| match e {
            NoFinal::Timeout => format!("no answer from {remote}"),
            NoFinal::Unreachable => format!(
                "cannot connect to {remote} over {}",
                trunk.transport.as_str()
            ),
            _ => format!("no answer from {remote}: {e}"),
        })
    }

    fn request(
        &self,
        trunk: &RegisteringTrunk,
        uri: &str,
        local: SocketAddr,
        expires: u32,
        authorization: Option<&str>,
    ) -> Result<Request, String> {
        let host = host_for_uri(&trunk.host);
        let auth = authorization
            .map(|a| format!("{}: {a}\r\n", self.answer_in.as_str()))
            .unwrap_or_default();
        let (via, contact_param) = match trunk.transport {
            Transport::Udp => ("UDP", ""),
            Transport::Tcp => ("TCP", ";transport=tcp"),
            Transport::Tls => ("TLS", ";transport=tls"),
        };
        let text = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={tag}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}{contact_param}>\r\n\
             Expires: {expires}\r\n\
             {auth}User-Agent: wasmswitch\r\n\
             Content-Length: 0\r\n\r\n",
            branch = random_hex(),
            user = trunk.username,
            tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
        );
        match Message::parse(text.as_bytes()) {
            Ok(Message::Request(r)) => Ok(r),
            // The username and host come from the API, which checks them; should one still
            // not make a valid request, the trunk fails with that reason.
            _ => Err("the trunk's username or host does not make a valid REGISTER".into()),
        }
    }
}

/// The registrar's URI: the trunk's host, its port if it has one (none: the URI names no
/// port, as RFC 3263 then has it located), and its transport when not UDP (so a proxy on the
/// way, and the certificate check over TLS, see what was meant).
fn registrar_uri(trunk: &RegisteringTrunk) -> String {
    let host = host_for_uri(&trunk.host);
    let port = trunk.port.map(|p| format!(":{p}")).unwrap_or_default();
    match trunk.transport {
        Transport::Udp => format!("sip:{host}{port}"),
        other => format!("sip:{host}{port};transport={}", other.as_str()),
    }
}

/// The trunk's address; over UDP, of a family the switch has a socket for (a connection can
/// be opened from either family).
async fn resolve(ctx: &TrunkContext, trunk: &RegisteringTrunk) -> Result<SocketAddr, String> {
    // The API takes an IPv6 address in brackets, as a URI writes it; the resolver does not.
    let host = trunk.host.trim_start_matches('[').trim_end_matches(']');
    // A trunk without a port is located by RFC 3263; SRV is not looked up here yet, so it
    // is what RFC 3263 falls back to: A/AAAA at the transport's default port.
    let port = trunk.port.unwrap_or(trunk.transport.default_port());
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", trunk.host))?
        .collect();
    // A socket bound to [::] takes both families; one bound to IPv4 only IPv4, and so on.
    let udp = ctx.bound.udp;
    let usable = |a: &SocketAddr| {
        trunk.transport != Transport::Udp
            || (udp.is_ipv6() && udp.ip().is_unspecified())
            || a.is_ipv4() == udp.is_ipv4()
    };
    // Over TCP or TLS either family will do; the bound one first (`localhost` may list ::1
    // before 127.0.0.1, and a provider may listen on one family only).
    let preferred = all.iter().copied().filter(|a| a.is_ipv4() == udp.is_ipv4());
    preferred
        .chain(all.iter().copied())
        .find(usable)
        .ok_or_else(|| {
            format!(
                "{} resolves to no {} address (SIP is bound to {})",
                trunk.host,
                if udp.is_ipv4() { "IPv4" } else { "IPv6" },
                udp
            )
        })
}

/// The seconds a 2xx grants our contact (`local`): the `expires` parameter of the Contact
/// whose host and port are ours, else the Expires header, else (a registrar that lists no
/// contacts at all) what was `asked`; `None` when the 2xx lists contacts but not ours (the
/// registrar did not bind it).
fn granted(response: &Response, local: SocketAddr, asked: u32) -> Option<u32> {
    let parse = |v: &[u8]| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok();
    let contacts: Vec<NameAddr> = response
        .headers()
        .get_all(&HeaderName::Contact)
        .filter_map(|v| NameAddr::parse(v.clone()).ok())
        .collect();
    let ours = contacts.iter().find(|a| match &a.uri {
        Uri::Sip(u) => {
            let host_is_ours = match (u.host(), local.ip()) {
                (Host::V4(h), std::net::IpAddr::V4(l)) => *h == l,
                (Host::V6(h), std::net::IpAddr::V6(l)) => *h == l,
                _ => false,
            };
            host_is_ours && u.port().unwrap_or(5060) == local.port()
        }
        Uri::Other(_) => false,
    });
    let header = response
        .headers()
        .get(&HeaderName::Expires)
        .and_then(|v| parse(v));
    match ours {
        Some(a) => a.params.get("expires").flatten().and_then(parse).or(header),
        None if contacts.is_empty() => header.or(Some(asked)),
        None => None,
    }
}

/// Where the provider should reach the switch over `transport`: `sip.public_address` if set
/// (over TLS with the TLS listener's port), else the address bound for the transport (TLS
/// trunks are registered only with a TLS listener), or, bound to every interface, the local
/// address the system routes to `remote` from.
fn local_address(ctx: &TrunkContext, transport: Transport, remote: SocketAddr) -> SocketAddr {
    local_address_for(ctx.public, ctx.bound, transport, remote)
}

/// [`local_address`] for any sender (the calls layer's legs too).
pub(crate) fn local_address_for(
    public: Option<SocketAddr>,
    bound_to: Bound,
    transport: Transport,
    remote: SocketAddr,
) -> SocketAddr {
    let bound = match transport {
        Transport::Udp => bound_to.udp,
        Transport::Tcp => bound_to.tcp,
        Transport::Tls => bound_to.tls.unwrap_or(bound_to.tcp),
    };
    if let Some(public) = public {
        return match (transport, bound_to.tls) {
            (Transport::Tls, Some(tls)) => SocketAddr::new(public.ip(), tls.port()),
            _ => public,
        };
    }
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let routed = std::net::UdpSocket::bind(SocketAddr::new(bound.ip(), 0))
        .and_then(|s| {
            s.connect(remote)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(bound.ip());
    SocketAddr::new(routed, bound.port())
}

/// A host as a SIP URI writes it: an IPv6 address in brackets.
pub(crate) fn host_for_uri(host: &str) -> String {
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
    fn refreshes_come_before_the_grant_lapses_with_time_for_a_retry() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3060));
        // 15% of 120 s is 18 s, less than the 37 s a lost REGISTER and a retry take.
        assert_eq!(refresh_after(120), Duration::from_secs(83));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(4), Duration::from_secs(2));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
    }
}
