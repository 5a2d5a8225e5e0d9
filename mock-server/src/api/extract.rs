//! Extractors whose every rejection is an `ApiError`, so a malformed request gets the
//! surface's envelope with a message naming what is wrong, never axum's plain-text default.

use super::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

/// A JSON body: `Content-Type` must be JSON; a syntax or shape error names the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| ApiError::BadRequest {
            status: 413,
            code: "RequestBodyTooLarge",
            message: e.body_text(),
        })?;
        json_body(&headers, &bytes).map(ApiJson)
    }
}

/// A JSON body: `Content-Type` must be JSON (`application/json` or `…+json`).
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim().to_owned();
    if !(essence == "application/json" || essence.ends_with("+json")) {
        return Err(ApiError::BadRequest {
            status: 415,
            code: "UnsupportedMediaType",
            message: format!(
                "The request body must be JSON with 'Content-Type: application/json'; got '{}'.",
                if ct.is_empty() { "no content type" } else { &ct }
            ),
        });
    }
    parse_json(bytes)
}

/// Parses JSON, naming the path of the first field that does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request body is required and must be a JSON object.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request("InvalidJson", format!("The request body is not valid JSON: {inner}."))
        } else if path == "." {
            ApiError::bad_request(
                "InvalidRequestContent",
                format!("The request body does not have the expected shape: {inner}."),
            )
        } else {
            ApiError::bad_request("InvalidRequestContent", format!("The field '{path}' is invalid: {inner}."))
        }
    })
}

/// Path parameters, with rejections as `ApiError`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::OptionalFromRequestParts;
        match <axum::extract::Path<T> as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(Some(p)) => Ok(ApiPath(p.0)),
            // A route without parameters: deserialize from an empty map (fine for maps).
            Ok(None) => serde_json::from_value(serde_json::json!({}))
                .map(ApiPath)
                .map_err(|e| ApiError::bad_request("InvalidPath", e.to_string())),
            Err(e) => Err(ApiError::bad_request("InvalidPath", e.body_text())),
        }
    }
}
