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

use crate::console::Console;
use crate::http_trigger::ACCEPT_BACKOFF;
use crate::metrics::Metrics;

/// Default admin addresses: one port per plugin role.
pub const KAFKA_ADMIN_DEFAULT: &str = "127.0.0.1:9464";
pub const CRON_ADMIN_DEFAULT: &str = "127.0.0.1:9465";

/// Where the admin listeners are (flags of every role: under `spin up`
/// both plugin processes get the same flags and environment).
#[derive(Debug, Default, clap::Args)]
pub struct AdminArgs {
    /// Address of the Kafka trigger's /metrics and /healthz ("off" to disable).
    #[arg(long = "kafka-admin-listen", env = "TRIGGER_KAFKA_ADMIN_LISTEN")]
    pub kafka_admin_listen: Option<String>,
    /// Address of the timer trigger's /metrics and /healthz ("off" to disable).
    #[arg(long = "cron-admin-listen", env = "TRIGGER_CRON_ADMIN_LISTEN")]
    pub cron_admin_listen: Option<String>,
}

/// Where a process serves /metrics and /healthz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminListen {
    Off,
    /// Given on the command line or in the environment: used as is.
    Given(String),
    /// Not given: this default, or any free port if it is taken.
    Default(&'static str),
}

impl AdminArgs {
    /// The admin address of a process with these roles: the Kafka role's
    /// setting wherever Kafka runs (standalone too), else the timer's.
    pub fn listen(&self, kafka: bool) -> AdminListen {
        let (given, default) = if kafka {
            (&self.kafka_admin_listen, KAFKA_ADMIN_DEFAULT)
        } else {
            (&self.cron_admin_listen, CRON_ADMIN_DEFAULT)
        };
        match given.as_deref().map(str::trim) {
            None => AdminListen::Default(default),
            Some("" | "off" | "none") => AdminListen::Off,
            Some(addr) => AdminListen::Given(addr.to_owned()),
        }
    }
}

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

/// The admin listener of a process, beside its triggers.
pub struct Admin {
    pub listen: AdminListen,
    /// The process's name in logs (`trigger-kafka up`, `trigger-cron`, …).
    pub process: &'static str,
    /// Whether it talks to Kafka (then `/healthz` follows the broker).
    pub kafka: bool,
}

impl crate::triggers::Trigger for Admin {
    async fn start(self, running: &mut crate::triggers::Running) -> Result<()> {
        if let Some(listener) = bind(self.listen, self.process).await {
            running.spawn(serve(
                listener,
                running.metrics.clone(),
                self.kafka,
                running.console.clone(),
                running.shutdown.clone(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses_default_per_role_and_can_be_turned_off() {
        let mut args = AdminArgs::default();
        assert_eq!(args.listen(true), AdminListen::Default(KAFKA_ADMIN_DEFAULT));
        assert_eq!(args.listen(false), AdminListen::Default(CRON_ADMIN_DEFAULT));
        args.cron_admin_listen = Some("off".into());
        args.kafka_admin_listen = Some("0.0.0.0:9464".into());
        assert_eq!(args.listen(false), AdminListen::Off);
        assert_eq!(args.listen(true), AdminListen::Given("0.0.0.0:9464".into()));
    }
}
