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

/// The caller's user id, or a 401/403/503 error that says what is wrong.
pub fn authenticate(request: &Request, config: &Config, now_secs: i64) -> Result<String, ApiError> {
    identify(request, config, now_secs)
}

fn identify(request: &Request, config: &Config, now_secs: i64) -> Result<String, ApiError> {
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
        let claims = verify_jwt(token.trim(), secret.as_bytes(), now_secs)?;
        return check_claims(&claims, config);
    }
    if config.header_identity() {
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

/// The optional `aud` and `iss` checks, then the subject.
fn check_claims(claims: &Json, config: &Config) -> Result<String, ApiError> {
    if let Some(audience) = &config.jwt_audience {
        let ok = match claims.get("aud") {
            Some(Json::String(aud)) => aud == audience,
            Some(Json::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !ok {
            return Err(unauthorized(format!(
                "the token's `aud` does not include `{audience}`"
            )));
        }
    }
    if let Some(issuer) = &config.jwt_issuer {
        if claims.get("iss").and_then(Json::as_str) != Some(issuer.as_str()) {
            return Err(unauthorized(format!("the token's `iss` is not `{issuer}`")));
        }
    }
    let sub = claims
        .get("sub")
        .and_then(Json::as_str)
        .ok_or_else(|| unauthorized("the token has no `sub` claim"))?;
    validate_user_id(sub)
}

/// In development mode (identity from a header), only requests addressed
/// to this machine, or to a host in `allowed_hosts`, are answered: a web
/// page elsewhere cannot reach a local instance by pointing its own domain
/// at 127.0.0.1 (DNS rebinding).
pub fn check_host(request: &Request, config: &Config) -> Result<(), ApiError> {
    if !config.header_identity() || config.allowed_hosts.iter().any(|h| h == "*") {
        return Ok(());
    }
    let Some(host) = request_host(request) else {
        return Ok(());
    };
    let name = host_name(&host);
    let local =
        matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1") || name.ends_with(".localhost");
    if local
        || config
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
    {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "host_not_allowed",
        format!(
            "development mode answers only requests to localhost, not `{host}`; add it to the allowed_hosts variable"
        ),
    ))
}

/// The `Host` the client addressed: from Spin's `spin-full-url`, which
/// both Spin and trigger-kafka set from the request's Host header.
fn request_host(request: &Request) -> Option<String> {
    let url = request.header("spin-full-url")?;
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// `name` of `name:port`, `[v6]:port` or `v6`, in lower case.
fn host_name(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_owned();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name.to_owned()
        }
        _ => host,
    }
}

fn validate_user_id(user: &str) -> Result<String, ApiError> {
    // A service's identity is refused as such (403), before other checks.
    if todo_domain::model::input::is_reserved_user_id(user) {
        return Err(ApiError::new(
            403,
            "reserved_identity",
            format!(
                "`{user}` is a service identity (`{}…`); no user may act as one",
                todo_domain::model::input::RESERVED_USER_PREFIX
            ),
        ));
    }
    todo_domain::model::input::validate_user_id("user", user)
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

/// Checks an HS256 JWT's signature and times; returns its claims.
pub fn verify_jwt(token: &str, secret: &[u8], now_secs: i64) -> Result<Json, ApiError> {
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
    let exp = numeric_date(&claims, "exp")?
        .ok_or_else(|| unauthorized("the token has no numeric `exp` claim"))?;
    let now = now_secs as f64;
    if now > exp + LEEWAY_SECS as f64 {
        return Err(unauthorized("the token has expired"));
    }
    // A `nbf` that is present but unreadable fails closed, never ignored.
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now + (LEEWAY_SECS as f64) < nbf {
            return Err(unauthorized("the token is not valid yet (`nbf`)"));
        }
    }
    Ok(claims)
}

/// A NumericDate claim (RFC 7519: seconds, fractions allowed): `None` when
/// absent, an error when present but not a finite number.
fn numeric_date(claims: &Json, name: &str) -> Result<Option<f64>, ApiError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| unauthorized(format!("the token's `{name}` is not a NumericDate"))),
    }
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

    fn config() -> Config {
        Config {
            jwt_secret: Some(String::from_utf8(SECRET.to_vec()).unwrap()),
            ..Config::default()
        }
    }

    fn bearer(token: &str) -> Request {
        Request {
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            ..Request::default()
        }
    }

    #[test]
    fn accepts_a_valid_token() {
        let token = sign_jwt(&json!({"sub": "alice", "exp": NOW + 60}), SECRET);
        assert_eq!(
            authenticate(&bearer(&token), &config(), NOW).unwrap(),
            "alice"
        );
        // NumericDates may carry fractions (RFC 7519).
        let token = sign_jwt(
            &json!({"sub": "alice", "exp": NOW as f64 + 60.5, "nbf": NOW as f64 - 0.5}),
            SECRET,
        );
        assert_eq!(
            authenticate(&bearer(&token), &config(), NOW).unwrap(),
            "alice"
        );
    }

    #[test]
    fn the_header_is_trusted_only_in_development_mode_without_a_secret() {
        let header = Request {
            headers: vec![("x-user-id".into(), "victim".into())],
            ..Request::default()
        };
        let mut dev = config();
        dev.dev_auth = true;
        let err = authenticate(&header, &dev, NOW).unwrap_err();
        assert_eq!(err.status, 401, "a secret is set: tokens only");
        dev.jwt_secret = None;
        assert_eq!(authenticate(&header, &dev, NOW).unwrap(), "victim");
        assert_eq!(
            authenticate(&header, &Config::default(), NOW)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn service_identities_are_refused() {
        for sub in ["system:reminders", "SYSTEM:recurring", "system:"] {
            let token = sign_jwt(&json!({"sub": sub, "exp": NOW + 60}), SECRET);
            let err = authenticate(&bearer(&token), &config(), NOW).unwrap_err();
            assert!([401, 403].contains(&err.status), "{sub}: {err:?}");
        }
    }

    #[test]
    fn audience_and_issuer_are_checked_when_configured() {
        let mut strict = config();
        strict.jwt_audience = Some("todo".into());
        strict.jwt_issuer = Some("https://id.example".into());
        let good = sign_jwt(
            &json!({"sub": "a", "exp": NOW + 60, "aud": ["x", "todo"], "iss": "https://id.example"}),
            SECRET,
        );
        assert_eq!(authenticate(&bearer(&good), &strict, NOW).unwrap(), "a");
        for claims in [
            json!({"sub": "a", "exp": NOW + 60, "aud": "other", "iss": "https://id.example"}),
            json!({"sub": "a", "exp": NOW + 60, "iss": "https://id.example"}),
            json!({"sub": "a", "exp": NOW + 60, "aud": "todo", "iss": "https://evil.example"}),
        ] {
            let token = sign_jwt(&claims, SECRET);
            assert_eq!(
                authenticate(&bearer(&token), &strict, NOW)
                    .unwrap_err()
                    .status,
                401
            );
        }
    }

    #[test]
    fn development_mode_answers_only_local_hosts() {
        let dev = Config {
            dev_auth: true,
            ..Config::default()
        };
        let at = |url: &str| Request {
            headers: vec![("spin-full-url".into(), url.into())],
            ..Request::default()
        };
        for ok in [
            "http://127.0.0.1:3000/api/tasks",
            "http://localhost/x",
            "http://[::1]:3000/",
            "http://app.localhost:3000/",
        ] {
            assert!(check_host(&at(ok), &dev).is_ok(), "{ok}");
        }
        let err = check_host(&at("http://evil.example:3000/api/tasks"), &dev).unwrap_err();
        assert_eq!((err.status, err.code), (403, "host_not_allowed"));
        let listed = Config {
            allowed_hosts: vec!["todo.lan".into()],
            ..dev.clone()
        };
        assert!(check_host(&at("http://todo.lan:3000/"), &listed).is_ok());
        assert!(
            check_host(&at("http://evil.example/"), &config()).is_ok(),
            "tokens: no host rule"
        );
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
            // Not yet valid, with a fractional or non-numeric `nbf`: both
            // were once ignored (an unreadable `nbf` must fail closed).
            sign_jwt(
                &json!({"sub": "alice", "exp": NOW + 60, "nbf": (NOW + 600) as f64 + 0.5}),
                SECRET,
            ),
            sign_jwt(
                &json!({"sub": "alice", "exp": NOW + 60, "nbf": "tomorrow"}),
                SECRET,
            ),
            sign_jwt(
                &json!({"sub": "alice", "exp": NOW + 60, "nbf": null}),
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
            let err = authenticate(&bearer(&token), &config(), NOW).expect_err(&token);
            assert_eq!(err.status, 401, "{token}");
        }
    }
}
