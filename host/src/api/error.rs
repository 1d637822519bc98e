//! The API's one error type: each variant has a status code and a stable problem `type`
//! (RFC 9457 problem+json), so clients can branch on `type` rather than on message text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::plugins::{LoadError, RegistryError};
use crate::store::StoreError;

/// Every way an API request can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No credentials, or ones that are unknown, malformed or revoked.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A bearer token whose lifetime is over.
    #[error("the token has expired")]
    Expired,
    /// Valid credentials that may not do this (another tenant's data, a write with a read
    /// role, an operator-only route).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Too many requests for this credential.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The body is not JSON, or not the JSON this route takes.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the route accepts.
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The request body has the wrong media type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An uploaded plugin was refused by validation; nothing was stored.
    #[error("{0}")]
    InvalidPlugin(#[from] LoadError),
    /// Well-formed, but not acceptable (a bad field value, an operation the state forbids).
    #[error("{0}")]
    Unprocessable(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database or another dependency failed; logged with detail, reported without.
    #[error("internal error")]
    Internal(String),
    /// The database is unreachable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The host has no capacity for this now (the database's write queue, the simulation
    /// slots); nothing was done, and the same request can be sent again after
    /// `retry_after_secs`.
    #[error("{what}; retry in {retry_after_secs} s")]
    Overloaded {
        what: &'static str,
        retry_after_secs: u64,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
            ),
            Expired => (StatusCode::UNAUTHORIZED, "expired-token", "Token expired"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Request body too large",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            InvalidPlugin(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-plugin",
                "Invalid plugin",
            ),
            Unprocessable(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Unprocessable request",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded, try again",
            ),
        }
    }

    /// The problem `type` URI of this error.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.parts().1)
    }
}

/// Problem types are URNs: stable identifiers, not links.
pub const PROBLEM_BASE: &str = "urn:wasmswitch:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable identifier of the kind of problem, e.g. `urn:wasmswitch:problem:not-found`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What went wrong in this case, for a human.
    pub detail: String,
    /// For `invalid-plugin`: which check failed (`not-wasm`, `core-module`, `wrong-world` ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        match &self {
            ApiError::Internal(detail) => tracing::error!(detail, "API request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(detail, "API dependency unavailable"),
            ApiError::Overloaded { what, .. } => tracing::warn!(what, "API request shed"),
            other => {
                tracing::debug!(status = status.as_u16(), error = %other, "API request refused")
            }
        }
        let problem = Problem {
            type_: format!("{PROBLEM_BASE}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: self.to_string(),
            reason: match &self {
                ApiError::InvalidPlugin(e) => Some(e.kind()),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Overloaded {
            retry_after_secs, ..
        } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasmswitch\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::Invalid(why) => ApiError::Unprocessable(why),
            StoreError::Busy(e) => {
                tracing::warn!(error = %e, "database busy");
                ApiError::Overloaded {
                    what: "the database is busy",
                    retry_after_secs: 1,
                }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            // The store has it, but this host's registry not (removed meanwhile): as gone.
            RegistryError::UnknownVersion { .. } => ApiError::NotFound("plugin version"),
            RegistryError::Active { .. } => ApiError::Unprocessable(e.to_string()),
        }
    }
}
