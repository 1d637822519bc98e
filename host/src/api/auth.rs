//! Who is calling: API keys (`wsk_...`, checked against the store or the configured operator
//! keys) and HS256 bearer tokens (JWT) with a role and a tenant; and how often they may call.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::{Role, constant_time_eq, now_ms};

/// The caller of a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key id, `operator-key:<n>` for a configured operator key, or the token's subject.
    pub subject: String,
    pub role: Role,
    /// The tenant the credential belongs to; none for operators.
    pub tenant: Option<String>,
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
    /// API keys verified against the store in the last [`KEY_CACHE_TTL`], by the sha256 of the
    /// whole key: a busy client then costs no database read per request.
    verified: Mutex<HashMap<[u8; 32], VerifiedKey>>,
}

/// How long a verified API key is trusted without asking the store again. A key revoked
/// through this host stops working at once (the cache is cleared); through another host
/// sharing the database, within this long.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// The most verified keys remembered; past it the cache starts afresh.
const KEY_CACHE_MAX: usize = 10_000;

#[derive(Debug, Clone)]
struct VerifiedKey {
    principal: Principal,
    /// The key's own expiry (epoch ms), checked on every use.
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

impl Auth {
    /// Fails only if the token secret cannot be made into a key.
    pub fn new(
        operator_keys: &[String],
        jwt_secret: &str,
        jwt_max_ttl: Duration,
        rate_per_second: u32,
        burst: u32,
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
            limiter: arc_swap::ArcSwap::from_pointee(limiter(rate_per_second, burst)),
            verified: Mutex::new(HashMap::new()),
        })
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], VerifiedKey>> {
        // Every change is one insert, remove or clear: a poisoned lock holds no half-made one.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of an API key verified recently, if it is still within its expiry.
    fn cached_key(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.verified();
        let entry = cache.get(hash)?;
        if entry.verified.elapsed() < KEY_CACHE_TTL && entry.expires_at.is_none_or(|t| t > now_ms())
        {
            return Some(entry.principal.clone());
        }
        cache.remove(hash);
        None
    }

    fn remember_key(&self, hash: [u8; 32], principal: &Principal, expires_at: Option<i64>) {
        let mut cache = self.verified();
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            hash,
            VerifiedKey {
                principal: principal.clone(),
                expires_at,
                verified: Instant::now(),
            },
        );
    }

    /// Forgets every verified key, so the next use of each asks the store again: after a key
    /// is revoked or a tenant deleted.
    pub fn forget_keys(&self) {
        self.verified().clear();
    }

    /// Applies new rate limits (a live setting); counts start afresh.
    pub fn set_rate_limit(&self, per_second: u32, burst: u32) {
        self.limiter.store(Arc::new(limiter(per_second, burst)));
    }

    /// Forgets idle credentials' rate-limit state; run now and then.
    pub fn tidy(&self) {
        let l = self.limiter.load();
        l.retain_recent();
        l.shrink_to_fit();
    }

    fn check_rate(&self, key: &str) -> Result<(), ApiError> {
        let limiter = self.limiter.load();
        match limiter.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError::RateLimited {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
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

    fn verify_jwt(&self, token: &str) -> Result<Principal, ApiError> {
        let Some((_, dec)) = &self.jwt else {
            return Err(ApiError::Unauthenticated(
                "not an API key, and bearer tokens are not enabled on this host",
            ));
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, dec, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Expired,
            _ => ApiError::Unauthenticated("the bearer token is not valid"),
        })?;
        let c = data.claims;
        if (c.role == Role::Operator) != c.tenant.is_none() {
            return Err(ApiError::Unauthenticated(
                "the token's role and tenant do not match",
            ));
        }
        Ok(Principal {
            subject: format!("jwt:{}", c.sub),
            role: c.role,
            tenant: c.tenant,
        })
    }

    /// The configured operator key whose sha256 is `hash`, if any.
    fn operator_key(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        // Compare against every key, each in constant time.
        for (i, k) in self.operator_keys.iter().enumerate() {
            if constant_time_eq(k, hash) {
                found = Some(i);
            }
        }
        found.map(|i| Principal {
            subject: format!("operator-key:{i}"),
            role: Role::Operator,
            tenant: None,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated(
                "missing Authorization: Bearer <API key or token>",
            ))?;
        let text = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthenticated(
                "the Authorization header must be `Bearer <API key or token>`",
            ))?;
        let auth = &state.auth;
        // Limit by the credential claimed, before any lookup, so a flood of guesses is limited
        // too. Keys are limited by their public id; tokens by their text's hash.
        let rate_key = match text.strip_prefix("wsk_").and_then(|r| r.split_once('_')) {
            Some((id, _)) => format!("key:{id}"),
            None => format!(
                "tok:{}",
                hex::encode(&Sha256::digest(text.as_bytes())[..12])
            ),
        };
        auth.check_rate(&rate_key)?;
        let principal = authenticate(text, state).await?;
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

async fn authenticate(text: &str, state: &AppState) -> Result<Principal, ApiError> {
    // One hash of the credential serves the operator keys and the verified-key cache.
    let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    if let Some(p) = state.auth.operator_key(&hash) {
        return Ok(p);
    }
    if text.starts_with("wsk_") {
        if let Some(p) = state.auth.cached_key(&hash) {
            return Ok(p);
        }
        let key = state
            .store
            .verify_api_key(text)
            .await?
            .ok_or(ApiError::Unauthenticated(
                "unknown, revoked or expired API key",
            ))?;
        let principal = Principal {
            subject: key.id,
            role: key.role,
            tenant: key.tenant_id,
        };
        state.auth.remember_key(hash, &principal, key.expires_at);
        return Ok(principal);
    }
    state.auth.verify_jwt(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            subject: "t".into(),
            role,
            tenant: tenant.map(Into::into),
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
    fn verified_keys_are_trusted_for_a_few_seconds_and_never_past_their_expiry() {
        let auth = Auth::new(&[], "", Duration::from_secs(60), 10, 10).unwrap();
        let who = p(Role::TenantRead, Some("a"));
        let (k1, k2, k3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(auth.cached_key(&k1), None);
        auth.remember_key(k1, &who, None);
        auth.remember_key(k2, &who, Some(now_ms() - 1));
        auth.remember_key(k3, &who, Some(now_ms() + 60_000));
        assert_eq!(auth.cached_key(&k1), Some(who.clone()));
        assert_eq!(auth.cached_key(&k2), None, "the key itself expired");
        assert_eq!(auth.cached_key(&k3), Some(who.clone()));
        // Verified longer ago than the TTL: the store is asked again.
        if let Some(old) = Instant::now().checked_sub(KEY_CACHE_TTL + Duration::from_millis(1)) {
            auth.verified().get_mut(&k1).unwrap().verified = old;
            assert_eq!(auth.cached_key(&k1), None);
        }
        auth.forget_keys();
        assert_eq!(auth.cached_key(&k3), None);
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let auth = Auth::new(&[], &"s".repeat(32), Duration::from_secs(60), 10, 10).unwrap();
        let now = now_secs();
        let claims = Claims {
            sub: "ci".into(),
            role: Role::TenantRead,
            tenant: Some("a".into()),
            exp: now + 60,
            iat: now,
        };
        let token = auth.mint(&claims).unwrap().unwrap();
        let got = auth.verify_jwt(&token).unwrap();
        assert_eq!(got.tenant.as_deref(), Some("a"));
        assert_eq!(got.role, Role::TenantRead);
        let old = Claims {
            exp: now - 60,
            ..claims
        };
        let token = auth.mint(&old).unwrap().unwrap();
        assert!(matches!(auth.verify_jwt(&token), Err(ApiError::Expired)));
        let other = Auth::new(&[], &"x".repeat(32), Duration::from_secs(60), 10, 10).unwrap();
        let token = other
            .mint(&Claims {
                exp: now + 60,
                ..old
            })
            .unwrap()
            .unwrap();
        assert!(matches!(
            auth.verify_jwt(&token),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn rate_limit_reports_retry_after() {
        let auth = Auth::new(&[], "", Duration::from_secs(60), 1, 2).unwrap();
        assert!(auth.check_rate("k").is_ok());
        assert!(auth.check_rate("k").is_ok());
        match auth.check_rate("k") {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(auth.check_rate("other").is_ok());
    }
}
