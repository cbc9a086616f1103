//! Outbound HTTP limited to the component's `allowed_outbound_hosts`, with
//! Spin's pattern syntax: `scheme://host[:port]`, where scheme, host and
//! port may be `*`, and a host may be `*.domain`. No port means the
//! scheme's default port.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
    any_port: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

/// A component's outbound allow list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedHosts {
    patterns: Vec<Pattern>,
}

/// Spin's well-known ports: a pattern or address without a port means this.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        let patterns = entries
            .iter()
            .map(|e| {
                parse_pattern(e)
                    .with_context(|| format!("invalid allowed_outbound_hosts entry `{e}`"))
            })
            .collect::<Result<_>>()?;
        Ok(AllowedHosts { patterns })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.patterns.iter().any(|p| {
            let scheme_ok = p.scheme.as_deref().is_none_or(|s| s == scheme);
            let host_ok = match &p.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomain(d) => host.ends_with(&format!(".{d}")),
            };
            let port_ok = p.any_port
                || p.port
                    .or_else(|| p.scheme.as_deref().and_then(default_port))
                    == Some(port);
            scheme_ok && host_ok && port_ok
        })
    }
}

fn parse_pattern(entry: &str) -> Result<Pattern> {
    let (scheme, rest) = entry
        .split_once("://")
        .context("expected scheme://host[:port]")?;
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        bail!("paths are not allowed");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let (port, any_port) = match port {
        None => (None, false),
        Some("*") => (None, true),
        Some(p) => (Some(p.parse::<u16>().context("bad port")?), false),
    };
    let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
    if port.is_none() && !any_port && scheme.as_deref().and_then(default_port).is_none() {
        bail!("a port is required for this scheme");
    }
    let host = match host {
        "*" => HostPattern::Any,
        h if h.starts_with("*.") => HostPattern::Subdomain(h[2..].to_ascii_lowercase()),
        h if !h.is_empty() => HostPattern::Exact(h.to_ascii_lowercase()),
        _ => bail!("empty host"),
    };
    Ok(Pattern {
        scheme,
        host,
        port,
        any_port,
    })
}

/// wasi:http hooks that refuse requests outside the allow list.
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
}

impl OutboundHooks {
    pub fn new(allowed: Arc<AllowedHosts>) -> Self {
        OutboundHooks { allowed }
    }
}

type Sent = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Sent {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri.port_u16();
        if !self.allowed.allows(&scheme, &host, port) {
            tracing::warn!(%scheme, %host, ?port, "outbound request denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        // A span continuing the `traceparent` the component set (Spin
        // continues the invocation's; a timer-driven delivery carries the
        // trace of what scheduled it), handed on to the receiver.
        let mut request = request;
        let mut span = crate::telemetry::Span::none();
        if crate::telemetry::enabled() {
            span = crate::telemetry::Span::start(
                "spin_outbound_http.send_request",
                opentelemetry::trace::SpanKind::Client,
                request
                    .headers()
                    .get(crate::telemetry::TRACEPARENT)
                    .and_then(|v| v.to_str().ok()),
                vec![
                    opentelemetry::KeyValue::new(
                        "http.request.method",
                        request.method().to_string(),
                    ),
                    opentelemetry::KeyValue::new("server.address", host.clone()),
                    opentelemetry::KeyValue::new("url.full", request.uri().to_string()),
                ],
            );
            if let Some(value) = span
                .traceparent()
                .and_then(|v| http::HeaderValue::from_str(&v).ok())
            {
                request
                    .headers_mut()
                    .insert(crate::telemetry::TRACEPARENT, value);
            }
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, options).await;
            match &sent {
                Ok((response, _)) => span.set_attribute(opentelemetry::KeyValue::new(
                    "http.response.status_code",
                    i64::from(response.status().as_u16()),
                )),
                Err(e) => span.fail(format!("{e:?}")),
            }
            drop(span);
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_like_spin() {
        let h = hosts(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.hooks.dev",
            "*://localhost:*",
        ]);
        assert!(h.allows("https", "api.example.com", None));
        assert!(h.allows("https", "API.example.com", Some(443)));
        assert!(!h.allows("http", "api.example.com", None));
        assert!(!h.allows("https", "api.example.com", Some(8443)));
        assert!(h.allows("http", "127.0.0.1", Some(8080)));
        assert!(!h.allows("http", "127.0.0.1", Some(8081)));
        assert!(h.allows("https", "a.hooks.dev", None));
        assert!(!h.allows("https", "hooks.dev", None));
        assert!(h.allows("http", "localhost", Some(1234)));
        assert!(!hosts(&[]).allows("https", "example.com", None));
        // Spin's well-known ports for the database schemes.
        let db = hosts(&["postgres://db.internal", "redis://cache:7000"]);
        assert!(db.allows("postgres", "db.internal", None));
        assert!(db.allows("postgres", "db.internal", Some(5432)));
        assert!(!db.allows("postgres", "db.internal", Some(5433)));
        assert!(db.allows("redis", "cache", Some(7000)));
        assert!(!db.allows("redis", "cache", None));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "example.com",
            "https://example.com/path",
            "https://",
            "ftp://files",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
