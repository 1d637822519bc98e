//! Live calls: list a tenant's calls that are up, and hang one up.

use axum::extract::State;
use axum::http::StatusCode;

use super::auth::Principal;
use super::extract::Path;
use super::telephony::IdPath;
use super::tenants::TenantPath;
use super::{ApiError, AppState, Reply};
use crate::calls::LiveCall;

/// The tenant's calls that are up now (ringing or answered), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/calls", operation_id = "list_calls", tag = "calls",
    params(TenantPath),
    responses((status = 200, body = Vec<LiveCall>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
) -> Reply<Vec<LiveCall>> {
    who.read(&p.tenant)?;
    let calls = state
        .calls
        .get()
        .map(|c| c.live(Some(&p.tenant)))
        .unwrap_or_default();
    Ok(axum::Json(calls))
}

/// Hangs up one of the tenant's calls: BYE to the answered legs, a final response (503) to a
/// caller still ringing. The call's CDR says the switch ended it (`api`).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/calls/{id}", operation_id = "hang_up_call", tag = "calls",
    params(IdPath),
    responses((status = 204), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn hang_up(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    let found = state
        .calls
        .get()
        .is_some_and(|c| c.hang_up(&p.tenant, &p.id));
    if !found {
        return Err(ApiError::NotFound("call"));
    }
    state
        .audit(&who, Some(&p.tenant), "call.hangup", &p.id, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}
