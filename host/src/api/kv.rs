//! The tenant's `kv` data, as its plugins see it: routing tables, opt-out lists, settings. A
//! router example reads its table from the key `routes`, so this is how a tenant fills it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::extract::{Path, Query};
use super::tenants::TenantPath;
use super::{ApiError, AppState, Reply};
use crate::plugins::kv::{KvError, MAX_KEY_BYTES, MAX_LIST, MAX_VALUE_BYTES};

#[derive(Debug, Deserialize, IntoParams)]
pub struct KeyPath {
    pub tenant: String,
    /// The key, URL-encoded (up to 256 bytes).
    pub key: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// At most this many keys, 1-1000. Default 1000.
    pub limit: Option<u32>,
}

fn kv_error(e: KvError) -> ApiError {
    match e {
        KvError::TooLarge => ApiError::Unprocessable(format!(
            "keys are at most {MAX_KEY_BYTES} bytes and values {MAX_VALUE_BYTES} bytes"
        )),
        KvError::Unavailable(why) => {
            tracing::warn!(why, "kv unavailable");
            ApiError::Overloaded {
                what: "the kv store did not answer",
                retry_after_secs: 1,
            }
        }
    }
}

/// The tenant's keys, in byte order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/kv", operation_id = "list_kv", tag = "kv",
    params(TenantPath, ListQuery),
    responses((status = 200, body = Vec<String>), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<TenantPath>,
    Query(q): Query<ListQuery>,
) -> Reply<Vec<String>> {
    who.read(&p.tenant)?;
    let limit = q.limit.unwrap_or(MAX_LIST);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::Unprocessable("limit must be 1-1000".into()));
    }
    state.store.tenant(&p.tenant).await?;
    let keys = state
        .runtime
        .kv()
        .list_keys(&p.tenant, &q.prefix, limit)
        .await
        .map_err(kv_error)?;
    Ok(axum::Json(keys))
}

/// One value, as stored (bytes; `application/octet-stream`).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/kv/{key}", operation_id = "get_kv", tag = "kv",
    params(KeyPath),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<KeyPath>,
) -> Result<Response, ApiError> {
    who.read(&p.tenant)?;
    let value = state
        .runtime
        .kv()
        .get(&p.tenant, &p.key)
        .await
        .map_err(kv_error)?
        .ok_or(ApiError::NotFound("key"))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response())
}

/// Sets a value: the request body, as is (up to 64 KiB).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/kv/{key}", operation_id = "put_kv", tag = "kv",
    params(KeyPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The value (any bytes; text is common)"),
    responses((status = 204), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<KeyPath>,
    value: Bytes,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.tenant(&p.tenant).await?;
    state
        .runtime
        .kv()
        .set(&p.tenant, &p.key, &value)
        .await
        .map_err(kv_error)?;
    state
        .audit(
            &who,
            Some(&p.tenant),
            "kv.set",
            &p.key,
            &format!("{} bytes", value.len()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a key (deleting a missing key is not an error; a missing tenant is).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/kv/{key}", operation_id = "delete_kv", tag = "kv",
    params(KeyPath),
    responses((status = 204), (status = 404, body = super::Problem), (status = 422, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<KeyPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state.store.tenant(&p.tenant).await?;
    state
        .runtime
        .kv()
        .delete(&p.tenant, &p.key)
        .await
        .map_err(kv_error)?;
    state
        .audit(&who, Some(&p.tenant), "kv.delete", &p.key, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}
