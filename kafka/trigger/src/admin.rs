//! The admin listener: `/metrics` (Prometheus), `/healthz`, which fails
//! while the broker is unreachable, and the operations console
//! (`/console`, see `console.rs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::AdminListen;

use crate::console::Console;
use crate::metrics::Metrics;

/// How long an accept loop waits after an accept error (EMFILE and the
/// like) before trying again, so it never spins.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Open admin connections at once; one past this is closed unanswered. A
/// scraper and a few operators need a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// Time to send a request head (and how long an idle connection stays).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one admin connection stays open, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the admin listener. A given address that cannot be bound, or
/// "off", leaves the process without one; a default address that is taken
/// (another app's plugin) falls back to any free port. Either way the
/// triggers keep running: metrics are worth less than the work.
pub async fn bind(listen: AdminListen, process: &str) -> Option<TcpListener> {
    let (addr, fallback) = match &listen {
        AdminListen::Off => {
            tracing::info!("admin listener off: no /metrics or /healthz");
            return None;
        }
        AdminListen::Given(addr) => (addr.as_str(), false),
        AdminListen::Default(addr) => (*addr, true),
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) if fallback => {
            let host = addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            match TcpListener::bind((host, 0)).await {
                Ok(listener) => {
                    tracing::warn!(
                        wanted = addr, error = %e,
                        "the default admin address is taken (another trigger-kafka?); using a free port instead; \
                         set --kafka-admin-listen / --cron-admin-listen (or TRIGGER_KAFKA_ADMIN_LISTEN / \
                         TRIGGER_CRON_ADMIN_LISTEN) to choose one"
                    );
                    listener
                }
                Err(e) => {
                    tracing::error!(error = %e, "no admin listener: /metrics and /healthz are unavailable; the triggers keep running");
                    return None;
                }
            }
        }
        Err(e) => {
            tracing::error!(address = addr, error = %e, "cannot listen for /metrics and /healthz; the triggers keep running without them");
            return None;
        }
    };
    if let Ok(local) = listener.local_addr() {
        tracing::info!("metrics and health on http://{local} ({process})");
    }
    Some(listener)
}

pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    kafka: bool,
    console: Option<Arc<Console>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let local = listener.local_addr()?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // accept: log, wait a little, keep serving.
                    tracing::warn!(error = %e, "admin accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            // Closed unanswered: the admin port is no place to queue.
            drop(stream);
            continue;
        };
        let (metrics, console) = (metrics.clone(), console.clone());
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (metrics, console) = (metrics.clone(), console.clone());
                async move {
                    if let (Some(console), true) =
                        (console, req.uri().path().starts_with("/console"))
                    {
                        return Ok::<_, std::convert::Infallible>(console.serve(req, local).await);
                    }
                    let (status, content_type, body) = match req.uri().path() {
                        "/metrics" => (200, crate::metrics::CONTENT_TYPE, metrics.render()),
                        "/healthz" => {
                            let (status, body) = metrics.health(kafka);
                            (status, "application/json", body.to_string())
                        }
                        _ => (404, "text/plain", "not found".to_owned()),
                    };
                    Ok(hyper::Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(bytes::Bytes::from(body)).boxed())
                        .expect("valid response"))
                }
            });
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

/// Probes the broker every two seconds and records whether it answered.
pub async fn probe_broker(
    producer: rdkafka::producer::FutureProducer,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    use rdkafka::producer::Producer;
    loop {
        let client = producer.clone();
        let up = tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false);
        if up != metrics.broker_up() {
            if up {
                tracing::info!("broker reachable");
            } else {
                tracing::warn!("broker unreachable");
            }
        }
        metrics.set_broker_up(up);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
