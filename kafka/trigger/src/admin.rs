//! The admin listener: `/metrics` (Prometheus) and `/healthz`, which fails
//! while the broker is unreachable.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    kafka: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = shutdown.changed() => return Ok(()),
        };
        let metrics = metrics.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, content_type, body) = match req.uri().path() {
                        "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
                        "/healthz" if !kafka || metrics.broker_up() => (
                            200,
                            "application/json",
                            r#"{"status":"ok","broker":"up"}"#.to_owned(),
                        ),
                        "/healthz" => (
                            503,
                            "application/json",
                            r#"{"status":"unavailable","broker":"down"}"#.to_owned(),
                        ),
                        _ => (404, "text/plain", "not found".to_owned()),
                    };
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", content_type)
                            .body(Full::new(bytes::Bytes::from(body)))
                            .expect("valid response"),
                    )
                }
            });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
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
