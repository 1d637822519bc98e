//! The switch's registrar: tenants' phones REGISTER here with digest authentication, and
//! their bindings go to the store's location service, where calls will look them up.
//!
//! A REGISTER's answer is decided in this order, each step answering on its own when it can:
//! the address of record's domain names the tenant (`<tenant>.<sip.domain>` or the tenant's
//! own domain; 404 otherwise), a source that has failed too often is refused without a
//! database read (503 with Retry-After), the Request-URI names a domain of the same tenant
//! (RFC 3261 section 10.3 step 1; 404 otherwise), the credentials are checked against the SIP
//! user's stored hashes in the user's realm (401 with one challenge per algorithm offered, 403
//! for a wrong password or an unknown user, alike), and then
//! [`wasmswitch_sip::registrar::register`] decides what changes, inside one store transaction
//! that records the nonce count and holds the user's row.
//!
//! An unknown user is challenged as a user made now would be: in the tenant's current realm,
//! with every algorithm offered. Only a user whose password was set in an older realm (before
//! the tenant changed its domain) or before SHA-256 was kept is challenged differently, in the
//! realm and algorithms its hashes are for: those the phone needs to answer.
//!
//! The endpoint's driver never waits here: each REGISTER runs in a task of its own, and past
//! `sip.register_concurrency` of them a REGISTER is answered 503 at once, so a slow database
//! delays REGISTERs, never other signalling. Of those tasks, at most half the store's pool
//! size use the database at once: a REGISTER flood on a slow database leaves connections for
//! the API and the trunks.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use wasmswitch_sip::digest::{Algorithm, Credentials, Outcome, Verifier, VerifierConfig};
use wasmswitch_sip::endpoint::Endpoint;
use wasmswitch_sip::registrar::{self, Binding, RegistrarPolicy, Update};
use wasmswitch_sip::transaction::{Flow, FlowTransport, TxId};
use wasmswitch_sip::uri::{Host, Uri};
use wasmswitch_sip::{HeaderName, Request, Response};

use crate::config::SipConfig;
use crate::failures::FailureLimiter;
use crate::store::{
    Decided, NonceCount, Registration, RegistrationChange, SipCredentials, SipIdentity, Store,
    StoreError, now_ms,
};

/// The name of the store secret that keys digest nonces, shared by every host on one
/// database so that a nonce one host issued verifies on another.
const NONCE_KEY: &str = "sip-digest-nonce-key";

/// How long a nonce may be used (the verifier's default, named here for the store's counts).
const NONCE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// Seconds a REGISTER refused for load is told to wait.
const RETRY_AFTER_SECS: u32 = 5;

/// How long a REGISTER waits for one of the registrar's database permits before it is answered
/// 503: the store pool's own wait for a connection (5 s).
const DB_PERMIT_WAIT: Duration = Duration::from_secs(5);

/// The registrar of one host.
pub struct Registrar {
    store: Store,
    /// `sip.domain`: tenants' default domains are `<tenant>.<base_domain>`.
    base_domain: String,
    policy: RegistrarPolicy,
    /// This host's id, stored with each binding so a TCP or TLS connection id is only ever
    /// read by the host it belongs to.
    host_id: String,
    verifier: Mutex<Verifier>,
    failures: FailureLimiter,
    /// `sip.register_concurrency`: REGISTERs in hand.
    permits: Arc<Semaphore>,
    /// REGISTERs using the database at once: half the store's pool (see [`Registrar::new`]).
    db_permits: Semaphore,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("base_domain", &self.base_domain)
            .field("policy", &self.policy)
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

/// How a REGISTER ended, for `sip_registers_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Ok,
    Challenged,
    Forbidden,
    Refused,
    NotFound,
    Unavailable,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Ok => "ok",
            Ending::Challenged => "challenged",
            Ending::Forbidden => "forbidden",
            Ending::Refused => "refused",
            Ending::NotFound => "not_found",
            Ending::Unavailable => "unavailable",
        }
    }
}

impl Registrar {
    /// A registrar for `config`, with the nonce key from the store (made on first use).
    pub async fn new(
        store: Store,
        config: &SipConfig,
        host_id: String,
    ) -> Result<Self, StoreError> {
        let key = store.shared_secret(NONCE_KEY).await?;
        let verifier = Verifier::new(
            key,
            VerifierConfig {
                algorithms: config.digest_algorithms(),
                nonce_lifetime: NONCE_LIFETIME,
                ..VerifierConfig::default()
            },
        );
        Ok(Registrar {
            base_domain: config.domain.to_ascii_lowercase(),
            policy: RegistrarPolicy {
                min_expires: config.min_expires_secs,
                max_expires: config.max_expires_secs,
                default_expires: config.default_expires_secs,
                max_contacts: config.max_contacts as usize,
            },
            host_id,
            verifier: Mutex::new(verifier),
            failures: FailureLimiter::new(
                config.auth_failures_per_minute,
                config.auth_failure_burst,
            ),
            permits: Arc::new(Semaphore::new(config.register_concurrency as usize)),
            // `sip.register_concurrency` (256 by default) is far above the pool (16 on
            // PostgreSQL): REGISTERs waiting on a stalled database would hold every
            // connection, and the API and the trunk leases would wait for one. Half the pool
            // is plenty: a registration is a few milliseconds of database work.
            db_permits: Semaphore::new((store.max_connections() / 2).max(1) as usize),
            store,
        })
    }

    /// Runs `work` (one store call) holding a database permit; waits for one up to
    /// [`DB_PERMIT_WAIT`], then fails as the pool does when no connection comes free.
    async fn db<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _permit = tokio::time::timeout(DB_PERMIT_WAIT, self.db_permits.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(StoreError::Busy(sqlx::Error::PoolTimedOut))?;
        work.await
    }

    /// Answers a REGISTER in a task of its own, or at once with 503 when
    /// `sip.register_concurrency` REGISTERs are already being handled.
    pub fn handle(self: &Arc<Self>, endpoint: &Endpoint, tx: TxId, request: Request, flow: Flow) {
        let endpoint = endpoint.clone();
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            metrics::counter!("sip_registers_total", "outcome" => Ending::Unavailable.label())
                .increment(1);
            tracing::warn!(source = %flow.remote, "REGISTER refused: too many being handled");
            let reply = unavailable(&request);
            tokio::spawn(async move {
                let _ = endpoint.respond(tx, reply).await;
            });
            return;
        };
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let (reply, ending) = this.answer(&request, flow).await;
            drop(permit);
            metrics::counter!("sip_registers_total", "outcome" => ending.label()).increment(1);
            if let Err(e) = endpoint.respond(tx, reply).await {
                tracing::debug!(error = %e, "could not answer a REGISTER");
            }
        });
    }

    /// The answer to one REGISTER.
    async fn answer(&self, request: &Request, flow: Flow) -> (Response, Ending) {
        let tag = request.stateless_tag();
        let source = flow.remote;
        let aor = &request.to().uri;
        let (user, domain) = match aor {
            Uri::Sip(uri) => {
                let user = uri
                    .user_unescaped()
                    .and_then(|u| String::from_utf8(u).ok())
                    .filter(|u| !u.is_empty());
                (user, domain_of(aor))
            }
            Uri::Other(_) => (None, None),
        };
        let Some(domain) = domain else {
            tracing::info!(%source, to = %String::from_utf8_lossy(aor.as_bytes()), "REGISTER refused: the To URI names no domain of ours (an address cannot say which tenant)");
            let r = request.reply(404, "Unknown Domain", Some(&tag));
            return (r, Ending::NotFound);
        };
        let Some(user) = user else {
            tracing::info!(%source, %domain, "REGISTER refused: the To URI has no user");
            return (
                request.reply(404, "No User In To", Some(&tag)),
                Ending::NotFound,
            );
        };
        // RFC 3261 section 10.3 step 1: the Request-URI names the domain whose bindings the
        // REGISTER changes. This registrar is not a proxy and forwards none: a domain it does
        // not serve gets 404, as section 21.4.5 says of a domain the recipient does not handle.
        // A Request-URI naming an address (`sip:192.0.2.10`) addresses this registrar itself:
        // phones whose registrar is set by address send it so (Kamailio's `uri==myself`
        // reading); the address of record's domain alone then names the tenant.
        let target = match request.uri() {
            Uri::Sip(u) if matches!(u.host(), Host::V4(_) | Host::V6(_)) => None,
            uri => match domain_of(uri) {
                Some(domain) => Some(domain),
                None => {
                    tracing::info!(%source, uri = %String::from_utf8_lossy(uri.as_bytes()), "REGISTER refused: the Request-URI names no domain of ours");
                    let r = request.reply(404, "Unknown Domain In Request-URI", Some(&tag));
                    return (r, Ending::NotFound);
                }
            },
        };
        if let Some(wait) = self.failures.blocked(source.ip(), Instant::now()) {
            // 503 with Retry-After, not 403: the refusal is for a while, and a phone told 403
            // stops trying (RFC 3261 section 21.4.4), which a spoofed flood "from" an
            // office's NAT address must not be able to make all its phones do.
            tracing::warn!(%source, %domain, %user, retry_after_secs = wait, "REGISTER refused: too many failed authentications from this address");
            let mut r = request.reply(503, "Too Many Failed Authentications", Some(&tag));
            r.headers_mut()
                .push(HeaderName::RetryAfter, wait.max(1).to_string());
            return (r, Ending::Forbidden);
        }
        let identity = match self.identity(&domain, &user).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::info!(%source, %domain, "REGISTER refused: no tenant has this SIP domain");
                let r = request.reply(404, "Unknown Domain", Some(&tag));
                return (r, Ending::NotFound);
            }
            Err(e) => return self.store_failed(request, &e),
        };
        let tenant = identity.tenant_id.as_str();
        if let Some(target) = target.filter(|t| !t.eq_ignore_ascii_case(&domain)) {
            // Another name of the same tenant (its own domain and `<tenant>.<sip.domain>`)
            // reaches the same bindings; another tenant's domain does not (step 5: the address
            // of record is not valid for the Request-URI's domain).
            match self.identity(&target, &user).await {
                Ok(Some(other)) if other.tenant_id == identity.tenant_id => {}
                Ok(_) => {
                    tracing::info!(%source, %tenant, %user, %target, "REGISTER refused: the Request-URI names a domain not of the address of record's tenant");
                    let r = request.reply(404, "Unknown Domain In Request-URI", Some(&tag));
                    return (r, Ending::NotFound);
                }
                Err(e) => return self.store_failed(request, &e),
            }
        }
        let credentials = identity.user.as_ref();
        // The realm the user's hashes were made in; for an unknown user, the tenant's current
        // realm, in which a user made now would be: the challenges look alike.
        let realm = credentials.map_or(identity.tenant_realm.as_str(), |c| c.realm.as_str());
        let now = SystemTime::now();
        let outcome = self.verifier().verify_request(
            realm,
            now,
            request,
            &HeaderName::Authorization,
            |name, algorithm| {
                // The digest username must be the address of record's user: a phone may
                // register only itself.
                credentials
                    .filter(|c| c.username == name)
                    .and_then(|c| ha1(c, algorithm))
            },
        );
        match outcome {
            Outcome::Ok { .. } => {}
            Outcome::BadResponse | Outcome::UnknownUser { .. } => {
                self.failures.record(source.ip(), Instant::now());
                tracing::warn!(%source, %tenant, %user, "REGISTER refused: wrong password or unknown user");
                return (
                    request.reply(403, "Forbidden", Some(&tag)),
                    Ending::Forbidden,
                );
            }
            Outcome::UriMismatch => {
                tracing::info!(%source, %tenant, %user, "REGISTER refused: the digest uri is not the Request-URI");
                let r = request.reply(400, "Digest URI Does Not Match Request-URI", Some(&tag));
                return (r, Ending::Refused);
            }
            Outcome::Malformed(e) => {
                tracing::info!(%source, %tenant, %user, error = %e, "REGISTER refused: unreadable credentials");
                let r = request.reply(400, "Malformed Authorization Header", Some(&tag));
                return (r, Ending::Refused);
            }
            other => {
                let stale = matches!(other, Outcome::Stale | Outcome::Replay);
                tracing::debug!(%source, %tenant, %user, outcome = ?other, "REGISTER challenged");
                return self.challenge(request, realm, credentials, now, stale);
            }
        }
        let Some(credentials) = credentials else {
            // Outcome::Ok needs stored hashes: unreachable, but answered rather than assumed.
            return (
                request.reply(403, "Forbidden", Some(&tag)),
                Ending::Forbidden,
            );
        };
        self.bind(request, credentials, realm, flow, &tag, now)
            .await
    }

    /// The tenant serving `domain` and its user `user` (cached by the store for a few seconds:
    /// a challenge and its answer read the database once).
    async fn identity(&self, domain: &str, user: &str) -> Result<Option<SipIdentity>, StoreError> {
        self.db(self.store.sip_identity(domain, &self.base_domain, user))
            .await
    }

    /// Records the verified credentials' nonce count with the change (so that the store
    /// refuses counts any host saw, before or after a restart, as the verifier refused those
    /// this host saw), applies the REGISTER to the user's bindings and builds the 200 (or the
    /// refusal, or a challenge for a replay).
    async fn bind(
        &self,
        request: &Request,
        user: &SipCredentials,
        realm: &str,
        flow: Flow,
        tag: &str,
        now: SystemTime,
    ) -> (Response, Ending) {
        let now_ms = u64::try_from(now_ms()).unwrap_or(0);
        let user_agent = request
            .headers()
            .get(&HeaderName::UserAgent)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        // Verified, so there is one; without, there would be nothing to replay either.
        let verified = request
            .headers()
            .get_all(&HeaderName::Authorization)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == realm);
        let nonce = verified.as_ref().map(|c| NonceCount {
            nonce: &c.nonce,
            count: c.qop.as_ref().map_or(0, |q| i64::from(q.count)),
            // Kept twice the nonce lifetime: a nonce is accepted up to its lifetime either
            // side of its issue time (a clock stepped back).
            expires_at: now_ms as i64 + 2 * NONCE_LIFETIME.as_millis() as i64,
        });
        let result = self
            .db(self
                .store
                .update_registrations(&user.user_id, nonce, now_ms as i64, |rows| {
                    let existing: Vec<Binding> = rows.iter().map(|r| self.binding(r)).collect();
                    let update =
                        registrar::register(request, &existing, flow, now_ms, &self.policy)
                            .map_err(Refused::Registrar)?;
                    let change = self.change(user, &update, &user_agent, now_ms, rows)?;
                    Ok((change, update))
                }))
            .await;
        match result {
            Ok(Decided::Written(update)) => {
                tracing::debug!(
                    tenant = %user.tenant_id,
                    user = %user.username,
                    source = %flow.remote,
                    bindings = update.current.len(),
                    "REGISTER accepted"
                );
                (
                    registrar::ok_response(request, &update, now_ms, tag),
                    Ending::Ok,
                )
            }
            Ok(Decided::Replayed) => {
                tracing::info!(tenant = %user.tenant_id, user = %user.username, source = %flow.remote, "REGISTER challenged: its nonce count was used already (a replay, or a retransmission to another host)");
                self.challenge(request, realm, Some(user), now, true)
            }
            Ok(Decided::Refused(Refused::Registrar(refusal))) => {
                tracing::info!(tenant = %user.tenant_id, user = %user.username, source = %flow.remote, reason = %refusal, "REGISTER refused");
                (refusal.response(request, tag), Ending::Refused)
            }
            Ok(Decided::Refused(Refused::NotUtf8)) => {
                tracing::info!(tenant = %user.tenant_id, user = %user.username, source = %flow.remote, "REGISTER refused: a Contact or Call-ID that is not UTF-8");
                (
                    request.reply(400, "Contact Is Not UTF-8", Some(tag)),
                    Ending::Refused,
                )
            }
            Err(StoreError::NotFound(_)) => {
                // Deleted between the credentials' check and the write.
                tracing::info!(tenant = %user.tenant_id, user = %user.username, source = %flow.remote, "REGISTER refused: the SIP user was deleted meanwhile");
                (
                    request.reply(403, "Forbidden", Some(tag)),
                    Ending::Forbidden,
                )
            }
            Err(e) => self.store_failed(request, &e),
        }
    }

    /// What `update` writes, as store rows.
    fn change(
        &self,
        user: &SipCredentials,
        update: &Update,
        user_agent: &str,
        now_ms: u64,
        rows: &[Registration],
    ) -> Result<RegistrationChange, Refused> {
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| Refused::NotUtf8);
        let mut upsert = Vec::with_capacity(update.upsert.len());
        for b in &update.upsert {
            let contact_uri = text(&b.uri)?;
            let registered_at = rows
                .iter()
                .find(|r| r.contact_uri == contact_uri)
                .map_or(now_ms as i64, |r| r.registered_at);
            upsert.push(Registration {
                user_id: user.user_id.clone(),
                tenant_id: user.tenant_id.clone(),
                username: user.username.clone(),
                contact_uri,
                contact: text(&b.contact)?,
                expires_at: b.expires_at_ms as i64,
                q: b.q.map(i64::from),
                call_id: text(&b.call_id)?,
                cseq: i64::from(b.cseq),
                instance: b.instance.as_deref().map(text).transpose()?,
                transport: b.flow.transport.into(),
                source: b.flow.remote.to_string(),
                host_id: self.host_id.clone(),
                connection: b.flow.connection.map(|c| c as i64),
                user_agent: user_agent.to_owned(),
                registered_at,
                updated_at: now_ms as i64,
            });
        }
        let remove = update
            .remove
            .iter()
            .map(|u| text(u))
            .collect::<Result<_, _>>()?;
        Ok(RegistrationChange { upsert, remove })
    }

    /// A stored binding as the registrar's decision reads it.
    fn binding(&self, r: &Registration) -> Binding {
        let transport = FlowTransport::from(r.transport);
        Binding {
            uri: r.contact_uri.clone().into(),
            contact: r.contact.clone().into(),
            expires_at_ms: u64::try_from(r.expires_at).unwrap_or(0),
            q: r.q.and_then(|q| u16::try_from(q).ok()),
            call_id: r.call_id.clone().into(),
            cseq: u32::try_from(r.cseq).unwrap_or(0),
            instance: r.instance.clone().map(Into::into),
            flow: Flow {
                transport,
                remote: r
                    .source
                    .parse()
                    .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
                // Another host's connection id means nothing here.
                connection: r
                    .connection
                    .filter(|_| r.host_id == self.host_id)
                    .and_then(|c| u64::try_from(c).ok()),
            },
        }
    }

    /// A 401 with one challenge per algorithm offered that the user has a hash for (403 when
    /// there is none).
    fn challenge(
        &self,
        request: &Request,
        realm: &str,
        user: Option<&SipCredentials>,
        now: SystemTime,
        stale: bool,
    ) -> (Response, Ending) {
        let verifier = self.verifier();
        let offer: Vec<Algorithm> = verifier
            .algorithms()
            .iter()
            .copied()
            .filter(|&a| user.is_none_or(|u| ha1(u, a).is_some()))
            .collect();
        let mut r = request.reply(401, "Unauthorized", Some(&request.stateless_tag()));
        // The nonce's HMAC makes it unforgeable; the random part makes it unpredictable. Should
        // the OS source fail, the time still makes each nonce distinct.
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            nonce[..8].copy_from_slice(&now_ms().to_le_bytes());
        }
        let challenges = verifier.challenges(realm, &offer, now, nonce, stale);
        if challenges.is_empty() {
            // A 401 must carry a challenge: the user's only hashes are in algorithms this
            // switch no longer offers (MD5 taken out of sip.digest_algorithms for a user whose
            // password predates SHA-256).
            tracing::warn!(
                realm,
                "REGISTER refused: no digest algorithm offered that the user has a hash for; set the user's password again"
            );
            let r = request.reply(
                403,
                "No Usable Digest Algorithm",
                Some(&request.stateless_tag()),
            );
            return (r, Ending::Forbidden);
        }
        for value in challenges {
            r.headers_mut().push(HeaderName::WwwAuthenticate, value);
        }
        (r, Ending::Challenged)
    }

    fn verifier(&self) -> std::sync::MutexGuard<'_, Verifier> {
        // The verifier's state is its nonce counts, each written whole: a poisoned lock
        // holds nothing half-made.
        self.verifier.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// 503 with Retry-After, and a log line, when the store failed.
    fn store_failed(&self, request: &Request, e: &StoreError) -> (Response, Ending) {
        tracing::error!(error = %e, "REGISTER not handled: the store failed");
        (unavailable(request), Ending::Unavailable)
    }

    /// Forgets failure counts that have refilled (called now and then).
    pub fn tidy(&self) {
        self.failures.tidy();
    }
}

/// Why a REGISTER's change was not written.
enum Refused {
    Registrar(registrar::Refusal),
    NotUtf8,
}

/// The user's stored hash for `algorithm`, if any.
fn ha1(user: &SipCredentials, algorithm: Algorithm) -> Option<String> {
    match algorithm {
        Algorithm::Md5 => Some(user.ha1_md5.clone()),
        Algorithm::Sha256 => user.ha1_sha256.clone(),
        _ => None,
    }
}

fn unavailable(request: &Request) -> Response {
    let mut r = request.reply(503, "Service Unavailable", Some(&request.stateless_tag()));
    r.headers_mut()
        .push(HeaderName::RetryAfter, RETRY_AFTER_SECS.to_string());
    r
}

/// The domain name `uri` names (lower-case), if it is a SIP URI with a name as its host: an
/// address cannot say which tenant.
fn domain_of(uri: &Uri) -> Option<String> {
    let Uri::Sip(uri) = uri else {
        return None;
    };
    match uri.host() {
        Host::Name(name) => std::str::from_utf8(name).ok().map(str::to_ascii_lowercase),
        Host::V4(_) | Host::V6(_) => None,
    }
}
