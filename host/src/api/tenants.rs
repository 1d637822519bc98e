//! Tenants, their API keys, and bearer tokens.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Claims, Principal, now_secs};
use super::extract::{Json, Path};
use super::{ApiError, AppState, Created, Reply};
use crate::store::{ApiKey, CallFallback, CallLimits, NewApiKey, Role, Tenant};

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// A short slug: lowercase letters, digits and `-`, 1 to 63 long. It appears in URLs and
    /// cannot change.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub id: String,
    /// A display name.
    pub name: String,
}

/// Changes to a tenant; what is missing stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// A new display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The SIP domain the tenant's phones register in, e.g. `sip.acme.com` (its DNS must lead
    /// to the switch); `null` goes back to `<tenant>.<sip.domain>`. Operators only: whoever
    /// holds a domain receives its phones' registrations. SIP users keep the realm
    /// their password was hashed in until the password is set again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub sip_domain: Option<Option<String>>,
}

/// Reads a field that is present (`null` included) as `Some`, so that a missing field
/// (`None`, from `default`) and `null` (`Some(None)`) differ.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A tenant, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenantView {
    /// A short slug: lowercase letters, digits and `-`, 1 to 63 long.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The SIP domain the tenant's phones register in, and the digest realm of SIP users
    /// created now: the tenant's own domain if it set one, else `default_sip_domain`.
    pub sip_domain: String,
    /// `<tenant>.<sip.domain>`, where the tenant's phones can always register.
    pub default_sip_domain: String,
}

impl AppState {
    fn tenant_view(&self, t: Tenant) -> TenantView {
        TenantView {
            sip_domain: self.sip_domain_of(&t),
            default_sip_domain: self.default_sip_domain_of(&t.id),
            id: t.id,
            name: t.name,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TenantPath {
    /// The tenant's id.
    pub tenant: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct KeyPath {
    pub tenant: String,
    /// The key's id (the part after `wsk_` and before the next `_`).
    pub key: String,
}

/// Creates a tenant (operators only).
#[utoipa::path(post, path = "/v1/tenants", operation_id = "create_tenant", tag = "tenants",
    request_body = NewTenant,
    responses((status = 201, body = TenantView), (status = 409, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewTenant>,
) -> Created<TenantView> {
    who.operator()?;
    let t = state.store.create_tenant(&body.id, &body.name).await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&t.id), "tenant.create", &t.id, "")
        .await;
    Ok((StatusCode::CREATED, axum::Json(state.tenant_view(t))))
}

/// Lists tenants: every tenant for operators, the caller's own for tenant credentials.
#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantView>)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, who: Principal) -> Reply<Vec<TenantView>> {
    let all = match &who.tenant {
        None => state.store.tenants().await?,
        Some(own) => vec![state.store.tenant(own).await?],
    };
    Ok(axum::Json(
        all.into_iter().map(|t| state.tenant_view(t)).collect(),
    ))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", operation_id = "get_tenant", tag = "tenants", params(TenantPath),
    responses((status = 200, body = TenantView), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<TenantView> {
    who.read(&p.tenant)?;
    let t = state.store.tenant(&p.tenant).await?;
    Ok(axum::Json(state.tenant_view(t)))
}

/// Renames a tenant, or sets or clears its own SIP domain.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", operation_id = "update_tenant", tag = "tenants", params(TenantPath),
    request_body = TenantUpdate,
    responses((status = 200, body = TenantView), (status = 404, body = super::Problem), (status = 409, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<TenantUpdate>,
) -> Reply<TenantView> {
    who.admin(&p.tenant)?;
    let mut t = state.store.tenant(&p.tenant).await?;
    // The domain first: it is the change that can be refused (taken, or not a domain), and a
    // refused request must change nothing.
    if let Some(domain) = &body.sip_domain {
        // Operators only: a domain is first come, first served, and whoever holds it
        // receives the phones' REGISTERs for it; a tenant must not squat another's name.
        who.operator()?;
        t = state
            .store
            .set_tenant_sip_domain(&p.tenant, domain.as_deref(), &state.sip_domain)
            .await?;
        let detail = domain.as_deref().unwrap_or("(default)");
        state
            .audit(&who, Some(&t.id), "tenant.sip-domain", &t.id, detail)
            .await;
    }
    if let Some(name) = &body.name {
        t = state.store.rename_tenant(&p.tenant, name).await?;
        state.directory_changed().await;
        state
            .audit(&who, Some(&t.id), "tenant.update", &t.id, name)
            .await;
    }
    Ok(axum::Json(state.tenant_view(t)))
}

/// Deletes a tenant and everything it owns (operators only).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", operation_id = "delete_tenant", tag = "tenants", params(TenantPath),
    responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Result<StatusCode, ApiError> {
    who.operator()?;
    state.store.delete_tenant(&p.tenant).await?;
    state.auth.forget_credentials();
    state.unload_tenant(&p.tenant);
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "tenant.delete", &p.tenant, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// What the switch does with the tenant's calls beyond what its plugins decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallSettings {
    /// What to do with a call when the tenant's router cannot decide (it trapped, ran out
    /// of time, answered something invalid, or there is none): `{"reject": {"code": 503,
    /// "reason": "..."}}` or `{"dial": {"target": "+14155550100", "trunk": "carrier"}}`.
    /// `null`: reject with 503.
    #[serde(default)]
    pub fallback: Option<CallFallback>,
}

/// The tenant's call settings.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/call-settings", tag = "tenants", params(TenantPath),
    responses((status = 200, body = CallSettings), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn get_call_settings(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<CallSettings> {
    who.read(&p.tenant)?;
    let t = state.store.tenant(&p.tenant).await?;
    Ok(axum::Json(CallSettings {
        fallback: t.call_fallback,
    }))
}

/// Replaces the tenant's call settings (tenant admins and operators). A fallback that dials
/// through a trunk must name one of the tenant's trunks.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/call-settings", tag = "tenants", params(TenantPath),
    request_body = CallSettings,
    responses((status = 200, body = CallSettings), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn put_call_settings(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<CallSettings>,
) -> Reply<CallSettings> {
    who.admin(&p.tenant)?;
    let t = state
        .store
        .set_call_fallback(&p.tenant, body.fallback.as_ref())
        .await?;
    let detail = match &t.call_fallback {
        Some(f) => serde_json::to_string(f).unwrap_or_default(),
        None => "(default)".into(),
    };
    state.directory_changed().await;
    state
        .audit(&who, Some(&t.id), "tenant.call-settings", &t.id, &detail)
        .await;
    Ok(axum::Json(CallSettings {
        fallback: t.call_fallback,
    }))
}

/// The tenant's call limits (`null`: the host's default).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/limits", tag = "tenants", params(TenantPath),
    responses((status = 200, body = CallLimits), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn get_limits(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<CallLimits> {
    who.read(&p.tenant)?;
    let t = state.store.tenant(&p.tenant).await?;
    Ok(axum::Json(CallLimits {
        max_calls: t.max_calls,
        max_calls_per_second: t.max_calls_per_second,
    }))
}

/// Sets the tenant's call limits (operators only: a tenant may not raise its own cap).
/// `null` leaves a limit to the host's default; 0 refuses every call.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/limits", tag = "tenants", params(TenantPath),
    request_body = CallLimits,
    responses((status = 200, body = CallLimits), (status = 403, body = super::Problem), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn put_limits(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<CallLimits>,
) -> Reply<CallLimits> {
    who.operator()?;
    let t = state.store.set_call_limits(&p.tenant, body).await?;
    let show = |n: Option<u32>| n.map_or_else(|| "default".to_string(), |n| n.to_string());
    let detail = format!(
        "max_calls={} max_calls_per_second={}",
        show(t.max_calls),
        show(t.max_calls_per_second)
    );
    state.directory_changed().await;
    state
        .audit(&who, Some(&t.id), "tenant.limits", &t.id, &detail)
        .await;
    Ok(axum::Json(CallLimits {
        max_calls: t.max_calls,
        max_calls_per_second: t.max_calls_per_second,
    }))
}

/// An API key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// What the key is for, e.g. `ci`.
    pub name: String,
    /// `tenant-admin` (default) or `tenant-read`.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Lifetime in seconds; none for a key that does not expire.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

fn default_role() -> Role {
    Role::TenantAdmin
}

/// Creates an API key for the tenant. The response is the only time the key is shown.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys", tag = "keys", params(TenantPath),
    request_body = KeyRequest,
    responses((status = 201, body = NewApiKey), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<KeyRequest>,
) -> Created<NewApiKey> {
    who.admin(&p.tenant)?;
    if body.role == Role::Operator {
        return Err(ApiError::Unprocessable(
            "a tenant key's role is tenant-admin or tenant-read".into(),
        ));
    }
    let expires_at = match body.expires_in_secs {
        Some(s) if s == 0 || s > 10 * 365 * 86_400 => {
            return Err(ApiError::Unprocessable(
                "expires_in_secs must be 1 to 315360000".into(),
            ));
        }
        Some(s) => Some(crate::store::now_ms() + (s as i64) * 1000),
        None => None,
    };
    let key = state
        .store
        .create_api_key(Some(&p.tenant), body.role, &body.name, expires_at)
        .await?;
    state
        .audit(
            &who,
            Some(&p.tenant),
            "key.create",
            &key.key.id,
            body.role.as_str(),
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(key)))
}

/// Lists the tenant's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/keys", tag = "keys", params(TenantPath),
    responses((status = 200, body = Vec<ApiKey>)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<ApiKey>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.api_keys(Some(&p.tenant)).await?))
}

/// Revokes one of the tenant's API keys at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/keys/{key}", tag = "keys", params(KeyPath),
    responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.revoke_api_key(Some(&p.tenant), &p.key).await?;
    state.auth.forget_credentials();
    state
        .audit(&who, Some(&p.tenant), "key.revoke", &p.key, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A bearer token to mint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who the token is for (its `sub`), e.g. a user or a service name.
    pub subject: String,
    /// At most the caller's own role.
    pub role: Role,
    /// The tenant; required unless the role is `operator`. Tenant callers may name only their own.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Lifetime in seconds, at most `api.jwt_max_ttl_secs`. Default 3600.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn default_ttl() -> u64 {
    3600
}

/// A minted token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Mints an HS256 bearer token with a role, for a tenant (needs `api.jwt_secret`). The token
/// lives until it expires, its tenant is deleted, or the API key behind the caller (the key
/// itself, or the key that minted the caller's token) is revoked.
#[utoipa::path(post, path = "/v1/tokens", tag = "keys",
    request_body = TokenRequest,
    responses((status = 201, body = Token), (status = 403, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn mint_token(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<TokenRequest>,
) -> Created<Token> {
    if body.role > who.role {
        return Err(ApiError::Forbidden(
            "a token cannot have a higher role than its maker",
        ));
    }
    match (&body.tenant, body.role) {
        (None, Role::Operator) => {}
        (Some(t), r) if r != Role::Operator => who.read(t)?,
        _ => {
            return Err(ApiError::Unprocessable(
                "operator tokens have no tenant; tenant tokens need one".into(),
            ));
        }
    }
    let max = state.auth.jwt_max_ttl.as_secs();
    if body.ttl_secs == 0 || body.ttl_secs > max {
        return Err(ApiError::Unprocessable(format!(
            "ttl_secs must be 1 to {max}"
        )));
    }
    if body.subject.is_empty() || body.subject.len() > 128 {
        return Err(ApiError::Unprocessable(
            "subject must be 1-128 characters".into(),
        ));
    }
    crate::store::check_text("subject", &body.subject)?;
    // The token names the tenant's uid: it dies with this tenant, not with its id.
    let tid = match &body.tenant {
        Some(t) => Some(state.store.tenant(t).await?.uid),
        None => None,
    };
    let now = now_secs();
    let claims = Claims {
        sub: body.subject,
        role: body.role,
        tenant: body.tenant,
        tid,
        key: who.anchor.clone(),
        // A token minted with a token lives no longer than it: tokens cannot renew themselves.
        exp: (now + body.ttl_secs).min(who.expires.unwrap_or(u64::MAX)),
        iat: now,
    };
    let token = state
        .auth
        .mint(&claims)
        .ok_or_else(|| {
            ApiError::Unprocessable("bearer tokens are not enabled: set api.jwt_secret".into())
        })?
        .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
    state
        .audit(
            &who,
            claims.tenant.as_deref(),
            "token.mint",
            &claims.sub,
            claims.role.as_str(),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(Token {
            token,
            expires_at: claims.exp,
        }),
    ))
}

/// Who the credential in the request is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// The key id, `operator-key:<fingerprint>` (a configured operator key), or
    /// `jwt:<subject>`.
    pub subject: String,
    pub role: Role,
    /// The tenant; none for operators.
    pub tenant: Option<String>,
}

/// Describes the caller's credential (the CLI uses it to find a key's tenant).
#[utoipa::path(get, path = "/v1/whoami", tag = "keys",
    responses((status = 200, body = WhoAmI), (status = 401, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn whoami(who: Principal) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        subject: who.subject,
        role: who.role,
        tenant: who.tenant,
    })
}
