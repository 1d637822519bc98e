//! Extractors whose rejections are [`ApiError`]s, so a bad body gets a problem document that
//! says what was wrong, like every other error.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

/// A JSON body (`Content-Type: application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T> FromRequest<AppState> for Json<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.trim().to_ascii_lowercase();
                ct.starts_with("application/json")
                    || ct
                        .split(';')
                        .next()
                        .is_some_and(|m| m.trim().ends_with("+json"))
            });
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge { limit }
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        // NUL cannot be stored as text (PostgreSQL refuses it) and has no business in names,
        // numbers or descriptions: refuse it here, for every route, with a clear answer.
        if has_escaped_nul(&bytes) {
            return Err(ApiError::Unprocessable(
                "text may not contain NUL characters (\\u0000)".into(),
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether a JSON text has a string with a `\u0000` escape. Only a real escape counts: in
/// `"\\u0000"` the backslash is itself escaped, and what follows is the text `u0000`.
/// (A raw NUL byte is not valid JSON at all; the parser refuses it.)
fn has_escaped_nul(json: &[u8]) -> bool {
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        match (in_string, json[i]) {
            (false, b'"') => in_string = true,
            (true, b'"') => in_string = false,
            (true, b'\\') => {
                if json
                    .get(i + 1..i + 6)
                    .is_some_and(|e| e.eq_ignore_ascii_case(b"u0000"))
                {
                    return true;
                }
                // Skip the escaped character, whatever it is.
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// What `axum::Json::from_bytes` can refuse: the content type and size are checked before.
fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::Unprocessable(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()))
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Path parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e @ PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(e) => Err(ApiError::Internal(e.body_text())),
        }
    }
}

/// Query parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn only_a_real_nul_escape_counts() {
        assert!(has_escaped_nul(br#"{"name": "a\u0000b"}"#));
        assert!(has_escaped_nul(br#"["\U0000"]"#));
        assert!(
            has_escaped_nul(br#"{"a": "\\\u0000"}"#),
            "an escaped backslash, then NUL"
        );
        assert!(
            !has_escaped_nul(br#"{"name": "a\\u0000"}"#),
            "the text \\u0000"
        );
        assert!(!has_escaped_nul(br#"{"name": "\u0001"}"#));
        assert!(
            !has_escaped_nul(br#"{"q": "\"", "r": "u0000"}"#),
            "outside any escape"
        );
        assert!(!has_escaped_nul(br#"{"name": "a\"#), "cut short");
    }
}
