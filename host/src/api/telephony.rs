//! A tenant's numbers (DIDs), trunks, SIP users and their phones' registrations.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Principal;
use super::extract::{Json, Path};
use super::tenants::TenantPath;
use super::{ApiError, AppState, Created, Reply};
use crate::store::{Did, NewSipUser, NewTrunk, Registration, SipUser, SipUserUpdate, Trunk};

/// A number to route to the tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDid {
    /// E.164, e.g. `+14155550100`.
    #[schema(pattern = "^\\+[1-9][0-9]{1,14}$")]
    pub number: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DidPath {
    pub tenant: String,
    /// E.164 number; `+` may be sent as `%2B`.
    pub number: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct IdPath {
    pub tenant: String,
    pub id: String,
}

/// Routes a number to the tenant. A number belongs to one tenant at most.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/numbers", tag = "telephony",
    params(TenantPath), request_body = NewDid,
    responses((status = 201, body = Did), (status = 409, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create_did(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<NewDid>,
) -> Created<Did> {
    who.admin(&p.tenant)?;
    let d = state
        .store
        .create_did(&p.tenant, &body.number, &body.description)
        .await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "number.create", &d.number, "")
        .await;
    Ok((StatusCode::CREATED, axum::Json(d)))
}

/// The tenant's numbers.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/numbers", tag = "telephony",
    params(TenantPath), responses((status = 200, body = Vec<Did>)),
    security(("bearer" = [])))]
pub async fn list_dids(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<Did>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.dids(&p.tenant).await?))
}

/// Releases a number.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/numbers/{number}", tag = "telephony",
    params(DidPath), responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete_did(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<DidPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.delete_did(&p.tenant, &p.number).await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "number.delete", &p.number, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a trunk. Its password is write-only. `inbound` lists the addresses its calls come
/// from; a trunk without `port` is located by RFC 3263 (SRV, then 5060, or 5061 over TLS).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/trunks", tag = "telephony",
    params(TenantPath), request_body = NewTrunk,
    responses((status = 201, body = Trunk), (status = 409, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create_trunk(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<NewTrunk>,
) -> Created<Trunk> {
    who.admin(&p.tenant)?;
    let t = state.store.create_trunk(&p.tenant, &body).await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "trunk.create", &t.id, &t.name)
        .await;
    Ok((StatusCode::CREATED, axum::Json(t)))
}

/// The tenant's trunks.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/trunks", tag = "telephony",
    params(TenantPath), responses((status = 200, body = Vec<Trunk>)),
    security(("bearer" = [])))]
pub async fn list_trunks(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<Trunk>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.trunks(&p.tenant).await?))
}

/// One trunk.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/trunks/{id}", tag = "telephony",
    params(IdPath), responses((status = 200, body = Trunk), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn get_trunk(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
) -> Reply<Trunk> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.trunk(&p.tenant, &p.id).await?))
}

/// Replaces a trunk's settings; leaving out `password` keeps the stored one, leaving out any
/// other field sets its default (for `port`: none, located by RFC 3263).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/trunks/{id}", tag = "telephony",
    params(IdPath), request_body = NewTrunk,
    responses((status = 200, body = Trunk), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn update_trunk(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
    Json(body): Json<NewTrunk>,
) -> Reply<Trunk> {
    who.admin(&p.tenant)?;
    let t = state.store.update_trunk(&p.tenant, &p.id, &body).await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "trunk.update", &t.id, &t.name)
        .await;
    Ok(axum::Json(t))
}

/// Removes a trunk.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/trunks/{id}", tag = "telephony",
    params(IdPath), responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete_trunk(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.delete_trunk(&p.tenant, &p.id).await?;
    state.directory_changed().await;
    state
        .audit(&who, Some(&p.tenant), "trunk.delete", &p.id, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a SIP user (a phone's account). Its phones register as `username@<the tenant's SIP
/// domain>`, with the password, in the digest realm of that domain.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sip-users", tag = "telephony",
    params(TenantPath), request_body = NewSipUser,
    responses((status = 201, body = SipUser), (status = 409, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn create_sip_user(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Json(body): Json<NewSipUser>,
) -> Created<SipUser> {
    who.admin(&p.tenant)?;
    let tenant = state.store.tenant(&p.tenant).await?;
    let realm = state.sip_domain_of(&tenant);
    let u = state
        .store
        .create_sip_user(&p.tenant, &realm, &body)
        .await?;
    state
        .audit(&who, Some(&p.tenant), "sip-user.create", &u.id, &u.username)
        .await;
    Ok((StatusCode::CREATED, axum::Json(u)))
}

/// The tenant's SIP users.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sip-users", tag = "telephony",
    params(TenantPath), responses((status = 200, body = Vec<SipUser>)),
    security(("bearer" = [])))]
pub async fn list_sip_users(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<SipUser>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.sip_users(&p.tenant).await?))
}

/// Changes a SIP user's password or display name. A new password's hashes are made in the
/// tenant's current SIP domain, which becomes the user's realm.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/sip-users/{id}", tag = "telephony",
    params(IdPath), request_body = SipUserUpdate,
    responses((status = 200, body = SipUser), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn update_sip_user(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
    Json(body): Json<SipUserUpdate>,
) -> Reply<SipUser> {
    who.admin(&p.tenant)?;
    let tenant = state.store.tenant(&p.tenant).await?;
    let realm = state.sip_domain_of(&tenant);
    let u = state
        .store
        .update_sip_user(&p.tenant, &p.id, &realm, &body)
        .await?;
    let what = match (&body.password, &body.display_name) {
        (Some(_), Some(_)) => "password, display_name",
        (Some(_), None) => "password",
        (None, _) => "display_name",
    };
    state
        .audit(&who, Some(&p.tenant), "sip-user.update", &p.id, what)
        .await;
    Ok(axum::Json(u))
}

/// The tenant's phones' live registrations: each SIP user's contacts, where they registered
/// from and until when.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/registrations", tag = "telephony",
    params(TenantPath), responses((status = 200, body = Vec<Registration>)),
    security(("bearer" = [])))]
pub async fn list_registrations(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<Registration>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.registrations(&p.tenant).await?))
}

/// Removes a SIP user.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/sip-users/{id}", tag = "telephony",
    params(IdPath), responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete_sip_user(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.delete_sip_user(&p.tenant, &p.id).await?;
    state
        .audit(&who, Some(&p.tenant), "sip-user.delete", &p.id, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}
