//! Who is calling: API keys (`wsk_...`, checked against the store or the configured operator
//! keys) and HS256 bearer tokens (JWT) with a role and a tenant; and how often they may call.
//!
//! Every credential leads back to an API key, its *anchor*: a key is its own, and a token
//! names the key that minted it (directly or through other tokens). A token lives only while
//! its anchor does (revoking the key kills its tokens) and while its tenant does (a token
//! carries the tenant's random uid, so a tenant deleted and created again under the same id
//! does not accept the first one's tokens). Rate limits are per anchor, counted only after
//! the credential is verified; failed attempts are limited per source address instead, so a
//! made-up secret never spends a real key's budget.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::failures::{FailureLimiter, whole_secs};
use crate::store::{Role, Store, constant_time_eq, now_ms};

/// The caller of a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key id, `operator-key:<fingerprint>` for a configured operator key, or
    /// `jwt:<subject>` for a token. Recorded in the audit log.
    pub subject: String,
    pub role: Role,
    /// The tenant the credential belongs to; none for operators.
    pub tenant: Option<String>,
    /// The API key the credential leads back to (the key itself, or the key that minted the
    /// token): its rate-limit bucket, and what tokens minted by this caller will name.
    pub anchor: String,
    /// When a token credential expires (seconds since the Unix epoch): a token it mints
    /// expires no later. None for API keys (a key's tokens die with it anyway).
    pub expires: Option<u64>,
}

impl Principal {
    /// May read `tenant`'s data.
    pub fn read(&self, tenant: &str) -> Result<(), ApiError> {
        match (&self.role, &self.tenant) {
            (Role::Operator, _) => Ok(()),
            (_, Some(own)) if own == tenant => Ok(()),
            _ => Err(ApiError::Forbidden(
                "these credentials belong to another tenant",
            )),
        }
    }

    /// May change `tenant`'s data.
    pub fn admin(&self, tenant: &str) -> Result<(), ApiError> {
        self.read(tenant)?;
        if self.role < Role::TenantAdmin {
            return Err(ApiError::Forbidden("this credential is read-only"));
        }
        Ok(())
    }

    /// Is an operator.
    pub fn operator(&self) -> Result<(), ApiError> {
        if self.role != Role::Operator {
            return Err(ApiError::Forbidden("only operators may do this"));
        }
        Ok(())
    }
}

/// The claims of a wasmswitch bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The tenant's uid (required with `tenant`): the token is void once that tenant is gone,
    /// even if a new tenant takes its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The API key the token leads back to (its anchor); the token is void once that key is
    /// revoked or expires.
    pub key: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    pub iat: u64,
}

/// Credential checking and rate limiting, built from the configuration.
pub struct Auth {
    /// sha256 of each configured operator key.
    operator_keys: Vec<[u8; 32]>,
    jwt: Option<(EncodingKey, DecodingKey)>,
    pub(crate) jwt_max_ttl: Duration,
    limiter: arc_swap::ArcSwap<DefaultKeyedRateLimiter<String>>,
    failures: FailureLimiter,
    /// Proxies whose `X-Forwarded-For` names the client (`api.trusted_proxies`).
    trusted_proxies: Vec<IpAddr>,
    /// Credentials (keys and tokens) verified against the store in the last
    /// [`VERIFIED_TTL`], by the sha256 of their text: a busy client then costs no database
    /// read per request.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Bumped by every [`Auth::forget_credentials`]: a verification that read the store before
    /// a revocation must not put the revoked credential back in the cache after it.
    forgotten: std::sync::atomic::AtomicU64,
}

/// How long a verified credential is trusted without asking the store again. A key revoked or
/// a tenant deleted through this host stops working at once (the cache is cleared); through
/// another host sharing the database, within this long.
pub const VERIFIED_TTL: Duration = Duration::from_secs(5);
/// The most verified credentials remembered; past it the cache starts afresh.
const VERIFIED_MAX: usize = 10_000;

#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    /// The credential's own expiry (epoch ms), checked on every use.
    expires_at: Option<i64>,
    verified: Instant,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("operator_keys", &self.operator_keys.len())
            .field("jwt", &self.jwt.is_some())
            .finish_non_exhaustive()
    }
}

fn limiter(per_second: u32, burst: u32) -> DefaultKeyedRateLimiter<String> {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

/// The rate limits [`Auth`] enforces (live settings, see `[api]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second per credential anchor, sustained.
    pub per_second: u32,
    /// Requests per anchor in a burst.
    pub burst: u32,
    /// Failed authentications per minute per source address, sustained.
    pub failures_per_minute: u32,
    /// Failed authentications per source address in a burst.
    pub failure_burst: u32,
}

impl Auth {
    /// Fails only if the token secret cannot be made into a key.
    pub fn new(
        operator_keys: &[String],
        jwt_secret: &str,
        jwt_max_ttl: Duration,
        limits: RateLimits,
        trusted_proxies: Vec<IpAddr>,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let jwt = if jwt_secret.is_empty() {
            None
        } else {
            Some((
                EncodingKey::from_secret(jwt_secret.as_bytes())?,
                DecodingKey::from_secret(jwt_secret.as_bytes())?,
            ))
        };
        Ok(Self {
            operator_keys: operator_keys
                .iter()
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
            jwt,
            jwt_max_ttl,
            limiter: arc_swap::ArcSwap::from_pointee(limiter(limits.per_second, limits.burst)),
            failures: FailureLimiter::new(limits.failures_per_minute, limits.failure_burst),
            trusted_proxies,
            verified: Mutex::new(HashMap::new()),
            forgotten: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        // Every change is one insert, remove or clear: a poisoned lock holds no half-made one.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of a credential verified recently, if it is still within its expiry.
    fn cached(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.verified();
        let entry = cache.get(hash)?;
        if entry.verified.elapsed() < VERIFIED_TTL && entry.expires_at.is_none_or(|t| t > now_ms())
        {
            return Some(entry.principal.clone());
        }
        cache.remove(hash);
        None
    }

    /// The cache's generation, to pass to [`Auth::remember`] (read it before the store).
    fn generation(&self) -> u64 {
        self.forgotten.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches a credential verified against the store, unless the cache was cleared since
    /// `generation` was read (the verification may predate a revocation).
    fn remember(
        &self,
        generation: u64,
        hash: [u8; 32],
        principal: &Principal,
        expires_at: Option<i64>,
    ) {
        let mut cache = self.verified();
        if self.generation() != generation {
            return;
        }
        if cache.len() >= VERIFIED_MAX {
            cache.clear();
        }
        cache.insert(
            hash,
            Verified {
                principal: principal.clone(),
                expires_at,
                verified: Instant::now(),
            },
        );
    }

    /// Forgets every verified credential, so the next use of each asks the store again: after
    /// a key is revoked or a tenant deleted.
    pub fn forget_credentials(&self) {
        let mut cache = self.verified();
        self.forgotten
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cache.clear();
    }

    /// Applies new rate limits (a live setting); counts start afresh.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.limiter
            .store(Arc::new(limiter(limits.per_second, limits.burst)));
        self.failures
            .set_rate(limits.failures_per_minute, limits.failure_burst);
    }

    /// Forgets idle credentials' and addresses' rate-limit state; run now and then.
    pub fn tidy(&self) {
        let l = self.limiter.load();
        l.retain_recent();
        l.shrink_to_fit();
        self.failures.tidy();
    }

    fn check_rate(&self, anchor: &str) -> Result<(), ApiError> {
        let limiter = self.limiter.load();
        match limiter.check_key(&anchor.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(ApiError::RateLimited {
                retry_after_secs: whole_secs(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ),
            }),
        }
    }

    /// Signs a token; `None` when tokens are turned off.
    pub fn mint(&self, claims: &Claims) -> Option<Result<String, jsonwebtoken::errors::Error>> {
        let (enc, _) = self.jwt.as_ref()?;
        Some(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            enc,
        ))
    }

    /// Checks a token's signature, expiry and shape (not yet its anchor and tenant).
    fn decode_token(&self, token: &str) -> Result<Claims, ApiError> {
        let Some((_, dec)) = &self.jwt else {
            return Err(ApiError::Unauthenticated(
                "not an API key, and bearer tokens are not enabled on this host",
            ));
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let c = jsonwebtoken::decode::<Claims>(token, dec, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Expired,
                _ => ApiError::Unauthenticated("the bearer token is not valid"),
            })?
            .claims;
        if (c.role == Role::Operator) != c.tenant.is_none() || c.tenant.is_some() != c.tid.is_some()
        {
            return Err(ApiError::Unauthenticated(
                "the token's role and tenant do not match",
            ));
        }
        Ok(c)
    }

    /// A token's principal and expiry (epoch ms), once its anchor key is found live and its
    /// tenant still the one it was minted for.
    async fn verify_token(&self, token: &str, store: &Store) -> Result<(Principal, i64), ApiError> {
        const VOID: ApiError =
            ApiError::Unauthenticated("the token's key was revoked or its tenant deleted");
        let c = self.decode_token(token)?;
        if !self
            .operator_keys
            .iter()
            .any(|k| operator_key_id(k) == c.key)
        {
            let key = store.live_api_key(&c.key).await?.ok_or(VOID)?;
            // The anchor's own scope bounds the token's (minting checks this too).
            if c.role > key.role || (key.tenant_id.is_some() && key.tenant_id != c.tenant) {
                return Err(VOID);
            }
        }
        if let (Some(tenant), Some(uid)) = (&c.tenant, &c.tid)
            && !store.tenant_is(tenant, uid).await?
        {
            return Err(VOID);
        }
        let expires_at = i64::try_from(c.exp.saturating_mul(1000)).unwrap_or(i64::MAX);
        let principal = Principal {
            subject: format!("jwt:{}", c.sub),
            role: c.role,
            tenant: c.tenant,
            anchor: c.key,
            expires: Some(c.exp),
        };
        Ok((principal, expires_at))
    }

    /// The configured operator key whose sha256 is `hash`, if any.
    fn operator_key(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        // Compare against every key, each in constant time.
        for k in &self.operator_keys {
            if constant_time_eq(k, hash) {
                found = Some(k);
            }
        }
        found.map(|k| {
            let id = operator_key_id(k);
            Principal {
                subject: id.clone(),
                role: Role::Operator,
                tenant: None,
                anchor: id,
                expires: None,
            }
        })
    }
}

/// The public id of a configured operator key: `operator-key:` and the first 8 bytes of its
/// sha256, hex. Stable across restarts and across reordering of the configured list.
fn operator_key_id(hash: &[u8; 32]) -> String {
    format!("operator-key:{}", hex::encode(&hash[..8]))
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// last address in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the
/// address it received from, so entries left of the first untrusted one may be forged).
fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
    for hop in hops {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // Garbage from a proxy we trust: better its own address than a made-up one.
            Err(_) => return peer,
        }
    }
    peer
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

/// The credential of `Authorization: Bearer <credential>` (the scheme in any case, RFC 7235).
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated(
            "missing Authorization: Bearer <API key or token>",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, credential) = v.trim_start().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| credential.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <API key or token>`",
        ))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = &state.auth;
        // Requests that did not come through `api::serve` (tests calling the router) have no
        // peer address; they share one bucket.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let peer = client_address(peer, &parts.headers, &auth.trusted_proxies);
        let failed = |e: ApiError| match auth.failures.record(peer, Instant::now()) {
            None => e,
            Some(retry_after_secs) => {
                tracing::warn!(%peer, "too many failed authentications from this address");
                ApiError::RateLimited { retry_after_secs }
            }
        };
        let text = bearer(parts).map_err(failed)?;
        // One hash of the credential serves the operator keys and the verified cache.
        let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let principal = match auth.operator_key(&hash).or_else(|| auth.cached(&hash)) {
            Some(p) => p,
            None => {
                if let Some(retry_after_secs) = auth.failures.blocked(peer, Instant::now()) {
                    return Err(ApiError::RateLimited { retry_after_secs });
                }
                match verify(text, hash, state).await {
                    Ok(p) => p,
                    Err(e @ (ApiError::Unauthenticated(_) | ApiError::Expired)) => {
                        return Err(failed(e));
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        // Counted only now: a request with a made-up secret never spends a real key's budget.
        auth.check_rate(&principal.anchor)?;
        // Tenant routes are scoped here, before any body is read, so another tenant's
        // credentials get 403 whatever they send. Handlers check roles on top of this.
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await
            && let Some((_, tenant)) = params.iter().find(|(k, _)| *k == "tenant")
        {
            principal.read(tenant)?;
        }
        Ok(principal)
    }
}

/// Checks a credential against the store and remembers it for [`VERIFIED_TTL`].
async fn verify(text: &str, hash: [u8; 32], state: &AppState) -> Result<Principal, ApiError> {
    let generation = state.auth.generation();
    let (principal, expires_at) = if text.starts_with("wsk_") {
        let key = state
            .store
            .verify_api_key(text)
            .await?
            .ok_or(ApiError::Unauthenticated(
                "unknown, revoked or expired API key",
            ))?;
        let principal = Principal {
            subject: key.id.clone(),
            role: key.role,
            tenant: key.tenant_id,
            anchor: key.id,
            expires: None,
        };
        (principal, key.expires_at)
    } else {
        let (principal, expires_at) = state.auth.verify_token(text, &state.store).await?;
        (principal, Some(expires_at))
    };
    state
        .auth
        .remember(generation, hash, &principal, expires_at);
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            subject: "t".into(),
            role,
            tenant: tenant.map(Into::into),
            anchor: "k".into(),
            expires: None,
        }
    }

    fn limits(per_second: u32, burst: u32) -> RateLimits {
        RateLimits {
            per_second,
            burst,
            failures_per_minute: 60,
            failure_burst: 3,
        }
    }

    #[test]
    fn roles_and_tenants() {
        let op = p(Role::Operator, None);
        assert!(op.admin("a").is_ok() && op.operator().is_ok());
        let admin = p(Role::TenantAdmin, Some("a"));
        assert!(admin.admin("a").is_ok());
        assert!(admin.read("b").is_err());
        assert!(admin.operator().is_err());
        let read = p(Role::TenantRead, Some("a"));
        assert!(read.read("a").is_ok());
        assert!(read.admin("a").is_err());
    }

    #[test]
    fn verified_credentials_are_trusted_for_a_few_seconds_and_never_past_their_expiry() {
        let auth = Auth::new(&[], "", Duration::from_secs(60), limits(10, 10), vec![]).unwrap();
        let who = p(Role::TenantRead, Some("a"));
        let (k1, k2, k3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(auth.cached(&k1), None);
        let g = auth.generation();
        auth.remember(g, k1, &who, None);
        auth.remember(g, k2, &who, Some(now_ms() - 1));
        auth.remember(g, k3, &who, Some(now_ms() + 60_000));
        assert_eq!(auth.cached(&k1), Some(who.clone()));
        assert_eq!(auth.cached(&k2), None, "the credential itself expired");
        assert_eq!(auth.cached(&k3), Some(who.clone()));
        // Verified longer ago than the TTL: the store is asked again.
        if let Some(old) = Instant::now().checked_sub(VERIFIED_TTL + Duration::from_millis(1)) {
            auth.verified().get_mut(&k1).unwrap().verified = old;
            assert_eq!(auth.cached(&k1), None);
        }
        auth.forget_credentials();
        assert_eq!(auth.cached(&k3), None);
        // A verification that read the store before the revocation is not cached after it.
        auth.remember(g, k3, &who, None);
        assert_eq!(auth.cached(&k3), None);
    }

    #[test]
    fn tokens_round_trip_expire_and_need_an_anchor_and_a_tenant_uid() {
        let auth = Auth::new(
            &[],
            &"s".repeat(32),
            Duration::from_secs(60),
            limits(10, 10),
            vec![],
        )
        .unwrap();
        let now = now_secs();
        let claims = Claims {
            sub: "ci".into(),
            role: Role::TenantRead,
            tenant: Some("a".into()),
            tid: Some("0123".into()),
            key: "k1".into(),
            exp: now + 60,
            iat: now,
        };
        let token = auth.mint(&claims).unwrap().unwrap();
        let got = auth.decode_token(&token).unwrap();
        assert_eq!(got.tenant.as_deref(), Some("a"));
        assert_eq!(got.key, "k1");
        let no_uid = Claims {
            tid: None,
            ..claims.clone()
        };
        let token = auth.mint(&no_uid).unwrap().unwrap();
        assert!(matches!(
            auth.decode_token(&token),
            Err(ApiError::Unauthenticated(_))
        ));
        let old = Claims {
            exp: now - 60,
            ..claims
        };
        let token = auth.mint(&old).unwrap().unwrap();
        assert!(matches!(auth.decode_token(&token), Err(ApiError::Expired)));
        let other = Auth::new(
            &[],
            &"x".repeat(32),
            Duration::from_secs(60),
            limits(10, 10),
            vec![],
        )
        .unwrap();
        let token = other
            .mint(&Claims {
                exp: now + 60,
                ..old
            })
            .unwrap()
            .unwrap();
        assert!(matches!(
            auth.decode_token(&token),
            Err(ApiError::Unauthenticated(_))
        ));
        // A token of the old shape, with no anchor key, is refused.
        let (enc, _) = auth.jwt.as_ref().unwrap();
        let legacy = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "ci", "role": "operator", "exp": now + 60, "iat": now}),
            enc,
        )
        .unwrap();
        assert!(matches!(
            auth.decode_token(&legacy),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn rate_limit_reports_retry_after() {
        let auth = Auth::new(&[], "", Duration::from_secs(60), limits(1, 2), vec![]).unwrap();
        assert!(auth.check_rate("k").is_ok());
        assert!(auth.check_rate("k").is_ok());
        match auth.check_rate("k") {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(auth.check_rate("other").is_ok());
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (proxy, lb) = (ip("10.0.0.2"), ip("10.0.0.3"));
        let trusted = [proxy, lb];
        let xff = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let none = axum::http::HeaderMap::new();
        // An untrusted peer's header is ignored: anyone can send one.
        assert_eq!(
            client_address(ip("198.51.100.7"), &xff("203.0.113.9"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(proxy, &xff("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // A forged entry left of the real client does not count; trusted hops are skipped.
        assert_eq!(
            client_address(proxy, &xff("1.2.3.4, 203.0.113.9, 10.0.0.3"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_address(proxy, &none, &trusted), proxy);
        assert_eq!(
            client_address(proxy, &xff("not-an-address"), &trusted),
            proxy
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let parts = |v: &str| {
            let (parts, ()) = axum::http::Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        for v in ["Bearer k", "bearer k", "BEARER  k ", "beArer k"] {
            assert_eq!(bearer(&parts(v)).unwrap(), "k", "{v:?}");
        }
        for v in ["Basic k", "Bearer ", "Bearerk", "k"] {
            assert!(bearer(&parts(v)).is_err(), "{v:?}");
        }
    }
}
