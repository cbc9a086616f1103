//! Reading a REST request's JSON body.

use serde_json::{Map, Value as Json};

use crate::http::{ApiError, Request};

/// Largest request body accepted (the API takes small JSON documents).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The request body as a JSON object, or an error that says what is wrong.
pub fn json_object(request: &Request) -> Result<Map<String, Json>, ApiError> {
    let has_body = !request.body.iter().all(u8::is_ascii_whitespace);
    if has_body && request.header("content-type").is_none() {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send the JSON body with `Content-Type: application/json`",
        ));
    }
    if let Some(content_type) = request.header("content-type") {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                format!("send JSON with `Content-Type: application/json`, not `{content_type}`"),
            ));
        }
    }
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            400,
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    let value: Json = serde_json::from_slice(&request.body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Json::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            400,
            "invalid_json",
            "the request body must be a JSON object",
        )),
    }
}

/// Accepts no body, or an empty JSON object, where the operation has no
/// request body (a transport rule: its arguments travel in the path).
pub fn no_body(request: &Request) -> Result<(), ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let object = json_object(request)?;
    match object.keys().next() {
        None => Ok(()),
        Some(key) => Err(ApiError::new(
            400,
            "bad_request",
            format!("this endpoint takes no fields, got `{key}`"),
        )
        .with_field(key.clone())),
    }
}
