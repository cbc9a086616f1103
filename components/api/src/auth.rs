//! Who is calling: a bearer JWT (HS256) whose `sub` is the user id, or, only
//! when the `dev_auth` variable is on, an `X-User-Id` header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

use crate::config::Config;
use crate::http::{ApiError, Request};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 60;

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(401, "unauthorized", message).with_header("www-authenticate", "Bearer")
}

/// The caller's user id, or a 401/503 error that says what is missing.
pub fn authenticate(request: &Request, config: &Config, now_secs: i64) -> Result<String, ApiError> {
    if let Some(header) = request.header("authorization") {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let secret = config.jwt_secret.as_deref().ok_or_else(|| {
            ApiError::new(
                503,
                "auth_not_configured",
                "this server has no jwt_secret configured, so it cannot check tokens",
            )
        })?;
        return verify_jwt(token.trim(), secret.as_bytes(), now_secs);
    }
    if config.dev_auth {
        if let Some(user) = request.header("x-user-id") {
            return validate_user_id(user.trim());
        }
        return Err(unauthorized(
            "send `Authorization: Bearer <JWT>` or, in development mode, an `X-User-Id` header",
        ));
    }
    Err(unauthorized(
        "send `Authorization: Bearer <JWT>`; its `sub` claim is the user id",
    ))
}

fn validate_user_id(user: &str) -> Result<String, ApiError> {
    todo_domain::input::validate_user_id("user", user)
        .map(|()| user.to_owned())
        .map_err(|e| unauthorized(format!("the user id is not acceptable: {e}")))
}

fn decode_part(part: &str, what: &str) -> Result<Json, ApiError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| unauthorized(format!("the token's {what} is not base64url JSON")))
}

/// Checks an HS256 JWT and returns its `sub`.
pub fn verify_jwt(token: &str, secret: &[u8], now_secs: i64) -> Result<String, ApiError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthorized(
            "the token is not a JWT (header.payload.signature)",
        ));
    };
    let header_json = decode_part(header, "header")?;
    if header_json.get("alg").and_then(Json::as_str) != Some("HS256") {
        return Err(unauthorized("only HS256 tokens are accepted"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| unauthorized("the token's signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| unauthorized("the token's signature is not valid"))?;
    let claims = decode_part(payload, "payload")?;
    let exp = claims
        .get("exp")
        .and_then(Json::as_i64)
        .ok_or_else(|| unauthorized("the token has no numeric `exp` claim"))?;
    if now_secs > exp + LEEWAY_SECS {
        return Err(unauthorized("the token has expired"));
    }
    if let Some(nbf) = claims.get("nbf").and_then(Json::as_i64) {
        if now_secs + LEEWAY_SECS < nbf {
            return Err(unauthorized("the token is not valid yet (`nbf`)"));
        }
    }
    let sub = claims
        .get("sub")
        .and_then(Json::as_str)
        .ok_or_else(|| unauthorized("the token has no `sub` claim"))?;
    validate_user_id(sub)
}

/// Signs an HS256 JWT; used by tests and the README's token helper.
pub fn sign_jwt(claims: &Json, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn accepts_a_valid_token() {
        let token = sign_jwt(&json!({"sub": "alice", "exp": NOW + 60}), SECRET);
        assert_eq!(verify_jwt(&token, SECRET, NOW).unwrap(), "alice");
    }

    #[test]
    fn rejects_bad_tokens() {
        let good = sign_jwt(&json!({"sub": "alice", "exp": NOW + 60}), SECRET);
        let cases = [
            sign_jwt(&json!({"sub": "alice", "exp": NOW - 120}), SECRET),
            sign_jwt(&json!({"sub": "alice"}), SECRET),
            sign_jwt(&json!({"exp": NOW + 60}), SECRET),
            sign_jwt(
                &json!({"sub": "alice", "exp": NOW + 60, "nbf": NOW + 600}),
                SECRET,
            ),
            sign_jwt(&json!({"sub": "alice", "exp": NOW + 60}), b"other-secret"),
            format!("{}x", good),
            "not.a.jwt.at-all".to_owned(),
            "abc".to_owned(),
            // alg=none with the payload of a good token.
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
                good.split('.').nth(1).unwrap()
            ),
        ];
        for token in cases {
            let err = verify_jwt(&token, SECRET, NOW).expect_err(&token);
            assert_eq!(err.status, 401, "{token}");
        }
    }
}
