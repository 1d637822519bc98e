//! Call detail records and the audit log.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::extract::{Path, Query};
use super::tenants::TenantPath;
use super::{ApiError, AppState, Reply};
use crate::store::{AuditEntry, CdrCursor, CdrFilter, CdrPage, CdrState, Disposition};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CdrQuery {
    /// Calls started at or after this time (ms since the Unix epoch).
    pub since: Option<i64>,
    /// Calls started before this time (ms since the Unix epoch).
    pub until: Option<i64>,
    /// Calls from or to this number.
    pub number: Option<String>,
    /// answered, busy, no-answer, failed or rejected.
    pub disposition: Option<Disposition>,
    /// running (calls in progress), ended or interrupted (in progress on a host that
    /// stopped).
    pub state: Option<CdrState>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-500. Default 100.
    pub limit: Option<u32>,
}

/// The tenant's call records, newest first, filtered and paginated with a cursor.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/cdrs", operation_id = "list_cdrs", tag = "records",
    params(TenantPath, CdrQuery),
    responses((status = 200, body = CdrPage), (status = 400, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn cdrs(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Query(q): Query<CdrQuery>,
) -> Reply<CdrPage> {
    who.read(&p.tenant)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::store::MAX_CDR_PAGE).contains(&limit) {
        return Err(ApiError::Unprocessable("limit must be 1-500".into()));
    }
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(CdrCursor::parse(c).ok_or_else(|| {
            ApiError::BadRequest("cursor is not one this API gave: pass a page's `next`".into())
        })?),
        None => None,
    };
    let filter = CdrFilter {
        since: q.since,
        until: q.until,
        number: q.number,
        disposition: q.disposition,
        state: q.state,
        cursor,
        limit,
    };
    Ok(axum::Json(state.store.cdrs(&p.tenant, &filter).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many entries, 1-1000. Default 100.
    pub limit: Option<u32>,
}

/// The tenant's latest audit entries, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", operation_id = "list_audit", tag = "records",
    params(TenantPath, AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Query(q): Query<AuditQuery>,
) -> Reply<Vec<AuditEntry>> {
    who.read(&p.tenant)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Unprocessable("limit must be 1-1000".into()));
    }
    Ok(axum::Json(
        state.store.audit_log(Some(&p.tenant), limit).await?,
    ))
}
