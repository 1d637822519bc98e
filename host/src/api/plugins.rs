//! Plugin upload, versions, activation, rollback and deletion.
//!
//! An upload is validated by the runtime (it must be a component exporting a wasmswitch plugin
//! interface, of the declared world, importing nothing the host lacks) before anything is
//! stored; a refused upload is a 422 that names the problem. Activation swaps the version in
//! for new calls at once; calls in progress finish on theirs.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Principal;
use super::extract::{Path, Query};
use super::{ApiError, AppState, Created, Reply};
use crate::plugins::Capability;
use crate::store::{Activation, Deactivation, PluginRecord, valid_plugin_name};

#[derive(Debug, Deserialize, IntoParams)]
pub struct PluginPath {
    pub tenant: String,
    /// The plugin's name (1-63 of a-z, 0-9, -). A tenant's plugin named `router` routes its
    /// calls.
    pub name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionPath {
    pub tenant: String,
    pub name: String,
    pub version: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The world the component must implement: router, ivr, messaging or switch. Default: any
    /// plugin world.
    pub world: Option<String>,
    /// Activate the new version at once. Default false. If the version is stored but cannot be
    /// activated now (the database busy), the answer is still 201, with `active: false`.
    #[serde(default)]
    pub activate: bool,
}

/// The raw component, for the OpenAPI document.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WasmBody(#[allow(dead_code)] Vec<u8>);

/// Reads the component from a raw body (`application/wasm` or `application/octet-stream`) or
/// from the `file` field of a multipart form.
async fn component_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.config.max_upload_bytes;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let read_error = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit }
        } else {
            ApiError::BadRequest(format!("cannot read the upload: {text}"))
        }
    };
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| read_error(e.status(), e.body_text()))?
        {
            if field.name() == Some("file") {
                return field
                    .bytes()
                    .await
                    .map_err(|e| read_error(e.status(), e.body_text()));
            }
        }
        return Err(ApiError::BadRequest(
            "the multipart form has no `file` field".into(),
        ));
    }
    if content_type.is_empty()
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("application/octet-stream")
    {
        return Bytes::from_request(req, state)
            .await
            .map_err(|e| read_error(e.status(), e.body_text()));
    }
    Err(ApiError::UnsupportedMediaType(format!(
        "upload the component as application/wasm, application/octet-stream or a multipart form with a `file` field, not {content_type}"
    )))
}

/// Uploads a new version of a plugin. The next version number is assigned; the component is
/// validated first and nothing is stored if it is refused.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/plugins/{name}", operation_id = "upload_plugin", tag = "plugins",
    params(PluginPath, UploadQuery),
    request_body(content = WasmBody, content_type = "application/octet-stream", description = "The component (application/wasm and a multipart form with a `file` field are accepted too)"),
    responses(
        (status = 201, body = PluginRecord),
        (status = 413, body = super::Problem),
        (status = 415, body = super::Problem),
        (status = 422, description = "the component was refused; `reason` says why", body = super::Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<PluginPath>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Created<PluginRecord> {
    who.admin(&p.tenant)?;
    // Read the body before any other check, so a refused upload still gets its answer: a
    // server that answers before reading leaves the client writing into a closed connection.
    let bytes = component_bytes(req, &state).await?;
    if !valid_plugin_name(&p.name) {
        return Err(ApiError::Unprocessable(format!(
            "plugin name {:?} must be 1-63 lowercase letters, digits or '-'",
            p.name
        )));
    }
    let expect = match q.world.as_deref() {
        None => Vec::new(),
        Some(w) => Capability::parse_world(w).ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "world {w:?} is not one of router, ivr, messaging, switch"
            ))
        })?,
    };
    state.store.tenant(&p.tenant).await?;
    let mut record = state
        .add_plugin_version(&who, &p.tenant, &p.name, bytes, &expect, q.activate)
        .await?;
    if q.activate {
        // The version is stored: an answer that says "try again" would make the retry store
        // it twice. If it cannot be activated now, say so with `active: false`.
        match state
            .activate(&who, &p.tenant, &p.name, Some(record.version))
            .await
        {
            Ok(_) => record.active = true,
            Err(e) => tracing::warn!(tenant = p.tenant, plugin = p.name, version = record.version,
                error = %e, "uploaded, but not activated"),
        }
    }
    Ok((StatusCode::CREATED, axum::Json(record)))
}

/// Every version of every plugin of the tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins", operation_id = "list_plugins", tag = "plugins",
    params(super::tenants::TenantPath),
    responses((status = 200, body = Vec<PluginRecord>)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<super::tenants::TenantPath>,
) -> Reply<Vec<PluginRecord>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(state.store.plugins(&p.tenant).await?))
}

/// Every version of one plugin, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins/{name}", operation_id = "list_plugin_versions", tag = "plugins",
    params(PluginPath),
    responses((status = 200, body = Vec<PluginRecord>), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<PluginPath>,
) -> Reply<Vec<PluginRecord>> {
    who.read(&p.tenant)?;
    Ok(axum::Json(
        state.store.plugin_versions(&p.tenant, &p.name).await?,
    ))
}

/// One version's metadata.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins/{name}/versions/{version}", operation_id = "get_plugin_version", tag = "plugins",
    params(VersionPath),
    responses((status = 200, body = PluginRecord), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn version(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<VersionPath>,
) -> Reply<PluginRecord> {
    who.read(&p.tenant)?;
    Ok(axum::Json(
        state
            .store
            .plugin_record(&p.tenant, &p.name, p.version)
            .await?,
    ))
}

/// Deletes a version that is not active.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/plugins/{name}/versions/{version}", operation_id = "delete_plugin_version", tag = "plugins",
    params(VersionPath),
    responses((status = 204), (status = 404, body = super::Problem), (status = 422, description = "the version is active", body = super::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<VersionPath>,
) -> Result<StatusCode, ApiError> {
    who.admin(&p.tenant)?;
    state
        .store
        .delete_plugin_version(&p.tenant, &p.name, p.version)
        .await?;
    if let Ok(v) = u32::try_from(p.version) {
        // Not loaded on this host is fine.
        let _ = state.registry.remove(&p.tenant, &p.name, v);
    }
    let target = format!("{}@{}", p.name, p.version);
    state
        .audit(&who, Some(&p.tenant), "plugin.delete", &target, "")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a version the active one: new calls use it at once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/plugins/{name}/versions/{version}/activate", operation_id = "activate_plugin_version", tag = "plugins",
    params(VersionPath),
    responses((status = 200, body = Activation), (status = 404, body = super::Problem)),
    security(("bearer" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<VersionPath>,
) -> Reply<Activation> {
    who.admin(&p.tenant)?;
    Ok(axum::Json(
        state
            .activate(&who, &p.tenant, &p.name, Some(p.version))
            .await?,
    ))
}

/// Makes no version of the plugin active: new calls no longer reach it (on every host sharing
/// the database), calls in progress keep theirs. A rollback makes the deactivated version
/// active again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/plugins/{name}/deactivate", operation_id = "deactivate_plugin", tag = "plugins",
    params(PluginPath),
    responses((status = 200, body = Deactivation), (status = 404, body = super::Problem), (status = 422, description = "no version is active", body = super::Problem)),
    security(("bearer" = [])))]
pub async fn deactivate(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<PluginPath>,
) -> Reply<Deactivation> {
    who.admin(&p.tenant)?;
    Ok(axum::Json(
        state.deactivate(&who, &p.tenant, &p.name).await?,
    ))
}

/// Goes back to the version that was active before the current one.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/plugins/{name}/rollback", operation_id = "rollback_plugin", tag = "plugins",
    params(PluginPath),
    responses((status = 200, body = Activation), (status = 404, body = super::Problem), (status = 422, description = "nothing to roll back to", body = super::Problem)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    who: Principal,
    Path(p): Path<PluginPath>,
) -> Reply<Activation> {
    who.admin(&p.tenant)?;
    Ok(axum::Json(
        state.activate(&who, &p.tenant, &p.name, None).await?,
    ))
}
