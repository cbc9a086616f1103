//! The operations console, on the admin listener (`/console`): consumer
//! lag per group and partition, handler rates and errors (both read from
//! `/metrics` by the page), the dead letters of every consumed topic with
//! their reasons and a replay button (the same once-only replay as
//! `trigger-kafka dlq replay`, sharing its progress files), dead outbox
//! rows, and a live feed of what is published, handled and dead-lettered.
//!
//! Who may use it: whoever reaches the admin port, which binds loopback by
//! default and in the container image — an operator's port, never the
//! tenants'. The page and its API answer only requests whose `Host` is a
//! loopback name or the listener's own address (no DNS rebinding), and the
//! replay action takes only a JSON POST from the same origin (a foreign
//! page cannot send one without a CORS preflight, which is never granted).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use rdkafka::ClientConfig;
use serde_json::{json, Value as Json};
use tokio::sync::broadcast;

use crate::host::sqlite::Database;

/// The page (static; it reads `/metrics` and the API below).
const PAGE: &str = include_str!("console.html");
/// Events kept for a slow feed reader before it skips ahead.
const FEED_CAPACITY: usize = 1024;
/// How long one `/console/api/live` response streams; the page's
/// EventSource reconnects (the admin listener closes connections at 30 s).
const LIVE_WINDOW: Duration = Duration::from_secs(25);
/// Replay requests' body limit.
const MAX_BODY: usize = 4096;

pub type Body = BoxBody<Bytes, Infallible>;

static FEED: OnceLock<broadcast::Sender<String>> = OnceLock::new();

fn feed() -> &'static broadcast::Sender<String> {
    FEED.get_or_init(|| broadcast::channel(FEED_CAPACITY).0)
}

/// Tells open consoles what just happened; nothing is built when no
/// console is watching.
pub fn note(event: impl FnOnce() -> Json) {
    let feed = feed();
    if feed.receiver_count() > 0 {
        let mut event = event();
        event["at"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let _ = feed.send(event.to_string());
    }
}

/// What the console reads and acts on.
/// Where the outboxes the console shows are.
pub enum Outboxes {
    Sqlite(Vec<Arc<Database>>),
    /// Each label's schema in the Postgres the replicas share.
    Postgres {
        url: String,
        labels: Vec<String>,
    },
}

pub struct Console {
    /// Broker connection settings (with `bootstrap.servers`).
    pub client: ClientConfig,
    /// The topics the app consumes: their `.dlq` twins are listed.
    pub topics: Vec<String>,
    /// The outboxes the relay publishes.
    pub outboxes: Outboxes,
    /// Replay progress, shared with `trigger-kafka dlq replay` run from
    /// the app directory (`.spin/dlq-replay`).
    pub replay_dir: PathBuf,
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

fn json_response(status: u16, body: &Json) -> hyper::Response<Body> {
    full(status, "application/json", body.to_string())
}

fn error(status: u16, message: &str) -> hyper::Response<Body> {
    json_response(status, &json!({"error": message}))
}

/// Whether `host` (a `Host` header) names this listener: a loopback name
/// or its own address, with or without the port.
fn trusted_host(host: &str, local: &std::net::SocketAddr) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1") || name == local.ip().to_string()
}

impl Console {
    /// Serves a `/console` request.
    pub async fn serve(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
        local: std::net::SocketAddr,
    ) -> hyper::Response<Body> {
        let host = req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !trusted_host(&host, &local) {
            return error(403, "the console answers only on its own address");
        }
        let method = req.method().as_str().to_owned();
        match (method.as_str(), req.uri().path()) {
            ("GET", "/console" | "/console/") => full(200, "text/html; charset=utf-8", PAGE),
            ("GET", "/console/api/dead-letters") => {
                let console = self.clone();
                match tokio::task::spawn_blocking(move || console.dead_letters()).await {
                    Ok(Ok(body)) => json_response(200, &body),
                    Ok(Err(e)) => error(502, &format!("{e:#}")),
                    Err(e) => error(500, &e.to_string()),
                }
            }
            ("GET", "/console/api/outbox") => {
                let console = self.clone();
                match tokio::task::spawn_blocking(move || console.dead_rows()).await {
                    Ok(Ok(body)) => json_response(200, &body),
                    Ok(Err(e)) => error(500, &format!("{e:#}")),
                    Err(e) => error(500, &e.to_string()),
                }
            }
            ("POST", "/console/api/replay") => self.replay(req, host).await,
            ("GET", "/console/api/live") => live(),
            (
                _,
                "/console"
                | "/console/"
                | "/console/api/dead-letters"
                | "/console/api/outbox"
                | "/console/api/live",
            ) => error(405, "method not allowed"),
            (_, "/console/api/replay") => error(405, "method not allowed"),
            _ => error(404, "not found"),
        }
    }

    /// Every dead letter of every consumed topic, newest first per topic.
    fn dead_letters(&self) -> Result<Json> {
        let mut topics = BTreeMap::new();
        for topic in &self.topics {
            let dlq = crate::dlq::dlq_topic(topic);
            let replayed = crate::dlq::replayed_ids(&self.replay_dir, &dlq)?;
            let letters = crate::dlq::read(&self.client, &dlq)?;
            let rows: Vec<Json> = letters
                .iter()
                .rev()
                .map(|letter| {
                    let id = letter.id(&dlq);
                    json!({
                        "id": id,
                        "key": letter.key_text(),
                        "reason": letter.header("dlq-reason"),
                        "kind": letter.header("dlq-error-kind"),
                        "component": letter.header("dlq-component"),
                        "group": letter.header("dlq-consumer-group"),
                        "attempts": letter.header("dlq-attempts"),
                        "failed_at": letter.header("dlq-failed-at"),
                        "original": format!(
                            "{}/{}/{}",
                            letter.header("dlq-original-topic").unwrap_or_default(),
                            letter.header("dlq-original-partition").unwrap_or_default(),
                            letter.header("dlq-original-offset").unwrap_or_default()
                        ),
                        "value": letter.value.as_deref().map(|v| {
                            let text = String::from_utf8_lossy(v);
                            text.chars().take(300).collect::<String>()
                        }),
                        "replayed": replayed.contains(&id),
                    })
                })
                .collect();
            topics.insert(dlq, rows);
        }
        Ok(json!({ "topics": topics }))
    }

    /// Dead outbox rows of every relayed database.
    fn dead_rows(&self) -> Result<Json> {
        let mut databases = BTreeMap::new();
        let found: Vec<(String, Vec<crate::outbox_admin::DeadRow>)> = match &self.outboxes {
            Outboxes::Sqlite(outboxes) => outboxes
                .iter()
                .map(|db| {
                    let conn = db.connect()?;
                    let has_outbox: i64 = conn.query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
                        [],
                        |r| r.get(0),
                    )?;
                    let rows = if has_outbox == 0 {
                        Vec::new()
                    } else {
                        crate::outbox_admin::dead_rows(&conn)?
                    };
                    Ok((db.label.clone(), rows))
                })
                .collect::<Result<_>>()?,
            Outboxes::Postgres { url, labels } => labels
                .iter()
                .map(|label| {
                    let schema = format!("todo_{label}");
                    Ok((label.clone(), crate::outbox_admin::dead_rows_postgres(url, &schema)?))
                })
                .collect::<Result<_>>()?,
        };
        for (label, rows) in found {
            let rows: Vec<Json> = rows
                .into_iter()
                .map(|r| {
                    json!({"seq": r.seq, "topic": r.topic, "key": r.key, "attempts": r.attempts,
                           "dead_ms": r.dead_ms, "error": r.last_error})
                })
                .collect();
            databases.insert(label, rows);
        }
        Ok(json!({ "databases": databases }))
    }

    /// Replays one dead letter (`{"id": "<dlq>/<partition>/<offset>"}`),
    /// once, as `trigger-kafka dlq replay` does.
    async fn replay(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        host: String,
    ) -> hyper::Response<Body> {
        let json_body = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json_body {
            return error(415, "send the replay as application/json");
        }
        if let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) {
            if origin != format!("http://{host}") {
                return error(403, "replays come from the console's own page");
            }
        }
        let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => return error(413, "the replay request is too large"),
        };
        let Some(id) = serde_json::from_slice::<Json>(&body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
        else {
            return error(422, "give the dead letter's `id`");
        };
        let Some(dlq) = id.split('/').next().map(str::to_owned) else {
            return error(422, "`id` is `<dlq topic>/<partition>/<offset>`");
        };
        if !self.topics.iter().any(|t| crate::dlq::dlq_topic(t) == dlq) {
            return error(404, "no such dead-letter topic in this app");
        }
        let filter = crate::dlq::ReplayFilter {
            id: Some(id.clone()),
            ..Default::default()
        };
        match crate::dlq::replay(&self.client, &dlq, &filter, &self.replay_dir, false).await {
            Ok(done) => {
                tracing::info!(dead_letter = %id, sent = done.sent, "replayed from the console");
                note(|| json!({"kind": "replayed", "id": id, "sent": done.sent}));
                json_response(
                    200,
                    &json!({"id": id, "sent": done.sent, "already_replayed": done.skipped > 0 && done.sent == 0}),
                )
            }
            Err(e) => error(502, &format!("{e:#}")),
        }
    }
}

/// `/console/api/live`: Server-Sent Events of the feed, for one window.
fn live() -> hyper::Response<Body> {
    let receiver = feed().subscribe();
    let deadline = tokio::time::Instant::now() + LIVE_WINDOW;
    let stream =
        futures::stream::unfold((receiver, true), move |(mut receiver, first)| async move {
            if first {
                let frame = hyper::body::Frame::data(Bytes::from_static(b"retry: 1000\n\n"));
                return Some((Ok(frame), (receiver, false)));
            }
            loop {
                let next = tokio::time::timeout_at(deadline, receiver.recv()).await;
                match next {
                    Err(_) => return None,
                    Ok(Ok(event)) => {
                        let frame =
                            hyper::body::Frame::data(Bytes::from(format!("data: {event}\n\n")));
                        return Some((Ok(frame), (receiver, false)));
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                }
            }
        });
    hyper::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// The console's settings for an app.
pub fn for_app(
    client: ClientConfig,
    topics: Vec<String>,
    outboxes: Outboxes,
    state_dir: Option<&std::path::Path>,
) -> Result<Console> {
    let replay_dir = state_dir
        .map(|dir| dir.join("dlq-replay"))
        .context("the console needs a state directory for replay progress")?;
    Ok(Console {
        client,
        topics,
        outboxes,
        replay_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_its_own_address_are_trusted() {
        let local: std::net::SocketAddr = "10.1.2.3:9464".parse().unwrap();
        for ok in [
            "localhost:9464",
            "127.0.0.1:9464",
            "[::1]:9464",
            "10.1.2.3:9464",
            "localhost",
        ] {
            assert!(trusted_host(ok, &local), "{ok}");
        }
        for bad in [
            "evil.example:9464",
            "evil.example",
            "127.0.0.1.evil.example",
            "",
            "10.1.2.4:9464",
        ] {
            assert!(!trusted_host(bad, &local), "{bad}");
        }
    }
}
