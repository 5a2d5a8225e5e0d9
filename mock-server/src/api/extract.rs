//! Extractors whose every rejection is an `ApiError`, so a malformed request gets the
//! surface's envelope with a message naming what is wrong, never axum's plain-text default.
//!
//! Every request body the mock reads goes through the one strict parser here
//! ([`parse_json`], or [`from_json_value`] for a value already parsed by it): one JSON
//! object and nothing after it (DECISIONS.md, "Bodies, limits and timeouts"). Its shape
//! errors name the field and the type it wants, never the value received: a password sent as
//! a number must not come back in the answer.

use super::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON body: `Content-Type` must be JSON; a syntax or shape error names the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        json_body(&headers, &bytes).map(ApiJson)
    }
}

/// The body of a call that takes no parameters (`POST /_mock/reset`, `DELETE …`, a
/// Dataverse action without parameters): empty, with or without `Content-Type`, or an empty
/// JSON object.
#[derive(Debug)]
pub struct NoParameters;

impl<S: Send + Sync> FromRequest<S> for NoParameters {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        no_parameters(&headers, &bytes)
    }
}

/// The pipeline has already read the body within the mock's limit, so this only fails if a
/// client disconnects half-way.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::bad_request("InvalidRequestContent", "The request body could not be read."))
}

/// Checks that a parameterless call got no parameters: an empty body passes whatever its
/// content type; anything else must be `{}`.
pub fn no_parameters(headers: &HeaderMap, bytes: &[u8]) -> Result<NoParameters, ApiError> {
    if is_empty(bytes) {
        return Ok(NoParameters);
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}
    json_body::<Nothing>(headers, bytes).map(|_| NoParameters)
}

/// Whether a body carries nothing but whitespace.
pub fn is_empty(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// A JSON member name read in place (serde's `String` or `Cow<str>` would copy every one) and
/// answered as `F` says: `map.next_key_seed(MemberName(|name| name == "value"))`.
pub(crate) struct MemberName<F>(pub F);

impl<'de, F: FnOnce(&str) -> bool> serde::de::DeserializeSeed<'de> for MemberName<F> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<F: FnOnce(&str) -> bool> serde::de::Visitor<'_> for MemberName<F> {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, name: &str) -> Result<bool, E> {
        Ok((self.0)(name))
    }
}

/// Whether `Content-Type` names JSON (`application/json` or `…+json`, parameters ignored).
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json")
}

/// A JSON body: `Content-Type` must be JSON (`application/json` or `…+json`), then
/// [`parse_json`].
pub fn json_body<'a, T: serde::Deserialize<'a>>(headers: &HeaderMap, bytes: &'a [u8]) -> Result<T, ApiError> {
    if !is_json_content_type(headers) {
        // The content type is the client's header, not a secret; still, only its media type
        // is repeated, so a stray parameter cannot carry anything back.
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        return Err(ApiError::BadRequest {
            status: 415,
            code: "UnsupportedMediaType",
            message: format!(
                "The request body must be JSON sent with 'Content-Type: application/json'; got {}.",
                if essence.is_empty() { "no content type".to_owned() } else { format!("'{essence}'") }
            ),
        });
    }
    parse_json(bytes)
}

/// The one strict parser: one JSON object, nothing after it, of the shape `T` wants. Whether
/// unknown fields are refused is `T`'s choice (`deny_unknown_fields` on the control surface).
pub fn parse_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request body is required and must be a JSON object.",
        ));
    };
    if *first != b'{' {
        // Serde would read `[1,2,3]` as a struct's fields in order; every body is an object.
        return Err(match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => ApiError::bad_request(
                "InvalidRequestContent",
                format!("The request body must be a JSON object, not {}.", kind_of(&v)),
            ),
            Err(e) => syntax_error(&e),
        });
    }
    // Most bodies are fine: read them plainly, and only a refused one again with its path
    // tracked (the same deserializer, so both agree on what is refused).
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            syntax_error(&inner)
        } else {
            shape_error(&path, &inner, serde_json::from_slice::<Value>(bytes).ok().as_ref())
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "InvalidJson",
            format!(
                "The request body has bytes after its JSON value (line {}, column {}): send exactly one JSON object.",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

/// Reads `T` out of a JSON value the strict parser produced (a merged patch, the rest of a
/// body after some keys were taken), with the same shape errors.
pub fn from_json_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    let probe = value.clone();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        shape_error(&path, e.inner(), Some(&probe))
    })
}

/// Serde's syntax messages describe the position and the token wanted, never the input.
fn syntax_error(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request("InvalidJson", format!("The request body is not valid JSON: {e}."))
}

/// A shape error in the mock's words. Serde's own messages quote the value received
/// (`invalid type: string "secret", expected u32`), so they are taken apart and rebuilt from
/// what can be shown: the field path, the kind of JSON received and the type wanted.
fn shape_error(path: &str, inner: &serde_json::Error, body: Option<&Value>) -> ApiError {
    let raw = inner.to_string();
    let text =
        raw.strip_suffix(&format!(" at line {} column {}", inner.line(), inner.column())).unwrap_or(&raw).to_owned();
    let received = body.and_then(|b| value_at(b, path));
    let what = match path {
        "." | "" => "The request body".to_owned(),
        p => format!("The field '{p}'"),
    };
    let expected_after = |prefix: &str| {
        text.strip_prefix(prefix).and_then(|rest| rest.rfind(", expected ").map(|i| rest[i + 11..].to_owned()))
    };
    let message = if let Some(field) = backticked(&text, "missing field `") {
        match path {
            "." | "" => format!("The field '{field}' is required."),
            p => format!("The field '{p}.{field}' is required."),
        }
    } else if let Some(field) = backticked(&text, "unknown field `") {
        // Field names are the client's keys, not values: naming the one refused is the point.
        let known = text.rfind(", expected ").map(|i| format!(" (expected {})", &text[i + 11..])).unwrap_or_default();
        match path {
            p if p.ends_with(&field) => format!("The field '{p}' is not known here{known}."),
            "." | "" => format!("The field '{field}' is not known here{known}."),
            p => format!("The field '{p}.{field}' is not known here{known}."),
        }
    } else if let Some(field) = backticked(&text, "duplicate field `") {
        format!("{what} has the field '{field}' more than once.")
    } else if let Some(expected) = expected_after("invalid type: ") {
        let got = received.map_or_else(|| received_kind(&text), kind_of);
        format!("{what} must be {}, not {got}.", describe(&expected))
    } else if let Some(expected) = expected_after("invalid value: ") {
        format!("{what} must be {}.", describe(&expected))
    } else if let Some(expected) = expected_after("unknown variant ") {
        format!("{what} must be {expected}.")
    } else if let Some(expected) = expected_after("invalid length ") {
        format!("{what} must have {expected}.")
    } else {
        // A type's own message: kept unless it repeats what was received.
        let echoes = received.and_then(scalar_text).is_some_and(|v| !v.is_empty() && text.contains(&v));
        if echoes || text.contains('"') || text.contains('`') || text.contains('\'') {
            format!("{what} does not have the expected form.")
        } else {
            format!("{what} is invalid: {text}.")
        }
    };
    ApiError::bad_request("InvalidRequestContent", message)
}

/// The name between backticks after `prefix`, when `text` starts with it.
fn backticked(text: &str, prefix: &str) -> Option<String> {
    let rest = text.strip_prefix(prefix)?;
    rest.find('`').map(|end| rest[..end].to_owned())
}

/// The value at a serde_path_to_error path (`properties.items[2].name`), when it exists.
fn value_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path == "." || path.is_empty() {
        return Some(root);
    }
    let mut at = root;
    for segment in path.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

/// The text of a scalar, to check that a message does not repeat it.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The kind of a JSON value, as a message names it.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The kind serde saw, read from the start of its message when the body is not at hand.
fn received_kind(text: &str) -> &'static str {
    let got = text.strip_prefix("invalid type: ").unwrap_or(text);
    [
        ("string", "a string"),
        ("character", "a string"),
        ("integer", "a number"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("null", "null"),
        ("unit", "null"),
        ("sequence", "an array"),
        ("map", "an object"),
    ]
    .iter()
    .find(|(prefix, _)| got.starts_with(prefix))
    .map_or("another type", |(_, kind)| kind)
}

/// Serde's name for a wanted type, in the words of a JSON API.
fn describe(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "an object".to_owned(),
        e if e.starts_with("struct ") => "an object".to_owned(),
        e => e.to_owned(),
    }
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

/// Query parameters, with rejections as `ApiError` (`InvalidQueryParameter`, mock-defined).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let name = e.path().to_string();
            let inner = e.into_inner().to_string();
            // Parse errors (`invalid digit found in string`) describe, others may quote the value.
            let why = if inner.contains(['"', '`', '\'']) { String::new() } else { format!(": {inner}") };
            ApiError::bad_request("InvalidQueryParameter", format!("The query parameter '{name}' is invalid{why}."))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Advance {
        #[serde(default)]
        hours: u64,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Mode {
        Virtual,
        System,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        password: String,
    }

    fn message(body: &str) -> (String, String) {
        let e = parse_json::<Advance>(body.as_bytes()).expect_err(body);
        (e.code().to_owned(), e.to_string())
    }

    #[test]
    fn one_object_and_nothing_after_it() {
        assert_eq!(parse_json::<Advance>(br#" {"hours": 1} "#).unwrap().hours, 1);
        assert_eq!(message(r#"{"hours": 1}xyz"#).0, "InvalidJson");
        assert_eq!(message(r#"{"hours": 1}{}"#).0, "InvalidJson");
        assert_eq!(
            message("[1,2,3]"),
            ("InvalidRequestContent".into(), "The request body must be a JSON object, not an array.".into())
        );
        assert_eq!(message("3").1, "The request body must be a JSON object, not a number.");
        assert_eq!(message("[1,").0, "InvalidJson");
        assert_eq!(message("  ").0, "InvalidRequestContent");
    }

    #[test]
    fn shape_errors_name_the_field_and_type_never_the_value() {
        let cases = [
            (r#"{"hours": "s3cret-value"}"#, "The field 'hours' must be a whole number of 0 or more, not a string."),
            (r#"{"hours": -12345}"#, "The field 'hours' must be a whole number of 0 or more."),
            (r#"{"mode": "s3cret-value"}"#, "The field 'mode' must be `Virtual` or `System`."),
            (r#"{"inner": {"password": 987654}}"#, "The field 'inner.password' must be a string, not a number."),
            (r#"{"inner": {}}"#, "The field 'inner.password' is required."),
            (r#"{"days": 1}"#, "The field 'days' is not known here (expected one of `hours`, `mode`, `inner`)."),
        ];
        for (body, want) in cases {
            let (code, got) = message(body);
            assert_eq!((code.as_str(), got.as_str()), ("InvalidRequestContent", want), "{body}");
            for secret in ["s3cret", "12345", "987654"] {
                assert!(!got.contains(secret), "{got}");
            }
        }
    }

    #[test]
    fn values_already_parsed_get_the_same_messages() {
        let e = from_json_value::<Advance>(serde_json::json!({"inner": {"password": 987654}})).unwrap_err();
        assert_eq!(e.to_string(), "The field 'inner.password' must be a string, not a number.");
    }

    #[test]
    fn a_parameterless_call_takes_an_empty_body_with_any_content_type() {
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(no_parameters(&HeaderMap::new(), b"").is_ok());
        assert!(no_parameters(&text, b"\r\n").is_ok());
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(no_parameters(&json, b"{}").is_ok());
        assert_eq!(no_parameters(&json, br#"{"x":1}"#).unwrap_err().code(), "InvalidRequestContent");
        assert_eq!(no_parameters(&text, b"{}").unwrap_err().status(), 415);
    }
}
