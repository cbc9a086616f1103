//! The HTTP trigger for standalone mode: serves `[[trigger.http]]` routes
//! the way Spin does, with Spin's request headers, one fresh instance per
//! request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::engine::Runtime;
use crate::host::HostState;
use crate::metrics::{Metrics, RejectedLabels};
use crate::routes::Router;
use crate::telemetry;

/// Longest a request handler may run (long-polls and streamed responses
/// included), by the wall clock: its instance is dropped then, whatever it
/// is waiting for.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest a response may wait for a client to take its next piece: a
/// client that stops reading loses the response (and its connection), so
/// it never keeps an instance.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// What one client may take of the HTTP trigger. A request is read whole
/// (head and body, within these bounds) before any component instance is
/// made for it, so a slow or huge upload costs a socket and a buffer, never
/// an instance; and HTTP never takes the instances Kafka and the timer need.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; past this a new one gets a 503 and is closed.
    pub max_connections: usize,
    /// Time to send a request head (also how long an idle keep-alive
    /// connection stays open).
    pub header_timeout: Duration,
    /// Time to send a request body, once the head is in.
    pub body_timeout: Duration,
    /// Largest request body; checked against Content-Length first, then
    /// counted as it arrives.
    pub max_body_bytes: usize,
    /// Component instances HTTP requests may hold at once; the rest of the
    /// pool is kept for the Kafka and timer triggers.
    pub max_instances: usize,
}

impl Limits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
}

/// How long an accept loop waits after an accept error (EMFILE and the
/// like) before trying again, so it never spins.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// `up`'s HTTP flags (under `spin up`, Spin serves HTTP with its own).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address for the HTTP trigger.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Open HTTP connections; past this a new one gets a 503.
    #[arg(long = "max-connections", default_value_t = Limits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Largest HTTP request body in bytes (413 past it).
    #[arg(long = "max-request-body-bytes", default_value_t = Limits::DEFAULT_MAX_BODY_BYTES)]
    pub max_request_body_bytes: usize,
    /// Seconds a client has to send a request head (and an idle keep-alive connection stays open).
    #[arg(long = "header-timeout-secs", default_value_t = Limits::DEFAULT_HEADER_TIMEOUT.as_secs())]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request body (408 past it).
    #[arg(long = "body-timeout-secs", default_value_t = Limits::DEFAULT_BODY_TIMEOUT.as_secs())]
    pub body_timeout_secs: u64,
}

impl HttpArgs {
    /// The limits, with `max_instances` of the pool for HTTP.
    pub fn limits(&self, max_instances: usize) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            max_body_bytes: self.max_request_body_bytes,
            max_instances,
        }
    }
}

pub struct HttpTrigger {
    runtime: Arc<Runtime>,
    router: Router,
    pres: HashMap<String, ProxyPre<HostState>>,
    metrics: Arc<Metrics>,
    limits: Limits,
    instances: Arc<tokio::sync::Semaphore>,
    connections: Arc<tokio::sync::Semaphore>,
}

/// Whether a connection's client takes what it is sent: the time a write
/// to its socket was first refused (the socket's buffers full: the client
/// is not reading), cleared by the next write that goes through.
#[derive(Default)]
struct Progress {
    /// When writing was first refused (ms since `epoch`, +1), 0 while
    /// writes go through.
    blocked_ms: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Progress {
    fn now_ms(&self) -> u64 {
        // +1 so that 0 always means "not blocked".
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
    }

    fn refused(&self) {
        let now = self.now_ms();
        let _ = self.blocked_ms.compare_exchange(
            0,
            now,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn wrote(&self) {
        self.blocked_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the client has taken nothing for longer than `limit`.
    fn stalled(&self, limit: Duration) -> bool {
        let blocked = self.blocked_ms.load(std::sync::atomic::Ordering::Relaxed);
        blocked != 0 && self.now_ms().saturating_sub(blocked) > limit.as_millis() as u64
    }

    /// Resolves once the client has stalled.
    async fn until_stalled(&self, limit: Duration) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if self.stalled(limit) {
                return;
            }
        }
    }
}

/// A client socket that reports to [`Progress`] whether writes go through.
struct Watched {
    stream: tokio::net::TcpStream,
    progress: Arc<Progress>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Watched {
    fn noted<T>(
        &self,
        polled: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        match &polled {
            std::task::Poll::Pending => self.progress.refused(),
            std::task::Poll::Ready(Ok(_)) => self.progress.wrote(),
            std::task::Poll::Ready(Err(_)) => {}
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.stream).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request whose head and body are in memory.
type Buffered =
    hyper::Request<http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, hyper::Error>>;

/// Writes a response on a raw socket and closes it: for connections turned
/// away before HTTP is even parsed (too many open).
async fn turn_away(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body =
        r#"{"error":{"code":"overloaded","message":"too many open connections; retry shortly"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
}

fn response(
    status: u16,
    content_type: Option<&str>,
    body: impl Into<bytes::Bytes>,
) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut builder = hyper::Response::builder().status(status);
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(body).expect("valid response")
}

/// Spin's answer when no route matches or the component fails: the status
/// and an empty body.
fn empty(status: u16) -> hyper::Response<HyperOutgoingBody> {
    response(status, None, bytes::Bytes::new())
}

/// A refusal before any component runs, as the JSON error the API uses.
fn refuse(
    status: u16,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> hyper::Response<HyperOutgoingBody> {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(field) = field {
        error["field"] = field.into();
    }
    let body = serde_json::json!({ "error": error }).to_string();
    response(status, Some("application/json"), body)
}

/// Spin gives a component only UTF-8 header values (it fails the request
/// with a bare 500 otherwise, `spin-trigger-http` `prepare_request_headers`);
/// this host refuses such a request the same way, before any component
/// runs, but as the client error it is: 400, naming the header.
fn non_utf8_header(req: &hyper::Request<Incoming>) -> Option<String> {
    req.headers()
        .iter()
        .find(|(_, value)| std::str::from_utf8(value.as_bytes()).is_err())
        .map(|(name, _)| name.as_str().to_owned())
}

/// What a running HTTP handler holds: its share of the instance pool and
/// its connection's progress (the connection closes itself on a stall).
struct Guard {
    _permit: tokio::sync::OwnedSemaphorePermit,
    progress: Arc<Progress>,
}

impl HttpTrigger {
    pub fn new(
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Result<HttpTrigger> {
        let entries: Vec<(String, String)> = runtime
            .app
            .http_triggers
            .iter()
            .map(|t| (t.route.clone(), t.component.clone()))
            .collect();
        let router = Router::new(&entries)?;
        let mut pres = HashMap::new();
        for (_, component) in &entries {
            let pre = ProxyPre::new(runtime.instance_pre(component)?.clone())
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component `{component}` does not export wasi:http/incoming-handler")
                })?;
            pres.insert(component.clone(), pre);
        }
        if limits.max_instances == 0 {
            anyhow::bail!("no component instances are left for HTTP requests after the Kafka and timer triggers' share");
        }
        Ok(HttpTrigger {
            runtime,
            router,
            pres,
            metrics,
            instances: Arc::new(tokio::sync::Semaphore::new(limits.max_instances)),
            connections: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
            limits,
        })
    }

    /// Accepts connections until `shutdown` turns true, then lets in-flight
    /// requests finish.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // EMFILE and friends: say so, pause, keep serving.
                            tracing::warn!(error = %e, "accept failed; retrying");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                        self.metrics.http_rejected.get_or_create(&RejectedLabels { reason: "connections" }).inc();
                        tokio::spawn(turn_away(stream));
                        continue;
                    };
                    let this = self.clone();
                    // Whether this connection's client takes what it is
                    // sent; one that stops reading loses the connection.
                    let progress = Arc::new(Progress::default());
                    let watched = progress.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let (this, progress) = (this.clone(), progress.clone());
                        async move { Ok::<_, std::convert::Infallible>(this.handle(req, client, progress).await) }
                    });
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(self.limits.header_timeout)
                        .serve_connection(
                            TokioIo::new(Watched {
                                stream,
                                progress: watched.clone(),
                            }),
                            service,
                        );
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        tokio::select! {
                            result = conn => if let Err(e) = result {
                                tracing::debug!(error = %e, "connection closed with an error");
                            },
                            _ = watched.until_stalled(WRITE_TIMEOUT) => {
                                tracing::debug!(%client, "closed a connection whose client stopped reading");
                            }
                        }
                        drop(permit);
                    });
                }
                _ = shutdown.changed() => break,
            }
        }
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("in-flight HTTP requests cut off at shutdown"),
        }
        Ok(())
    }

    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
        progress: Arc<Progress>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let started = Instant::now();
        let path = req.uri().path().to_owned();
        // Spin's own endpoints come before the app's routes.
        if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
            return match well_known {
                "health" => response(200, None, "OK"),
                "info" => {
                    let mut info = serde_json::json!({ "name": self.runtime.app.name });
                    if let Some(version) = &self.runtime.app.version {
                        info["version"] = version.as_str().into();
                    }
                    let body = serde_json::to_vec_pretty(&info).expect("JSON");
                    response(200, Some("application/json"), body)
                }
                _ => empty(404),
            };
        }
        let Some(route) = self.router.find(&path) else {
            return empty(404);
        };
        if let Some(header) = non_utf8_header(&req) {
            return refuse(
                400,
                "bad_request",
                &format!("the value of header `{header}` is not valid UTF-8"),
                Some(&header),
            );
        }
        let component = route.component.to_owned();
        let mut span = telemetry::Span::start(
            "spin_trigger_http.handle_http_request",
            SpanKind::Server,
            req.headers()
                .get(telemetry::TRACEPARENT)
                .and_then(|v| v.to_str().ok()),
            vec![
                KeyValue::new("http.request.method", req.method().to_string()),
                KeyValue::new("url.path", path.clone()),
                KeyValue::new("http.route", route.raw.to_owned()),
                KeyValue::new("spin.component", component.clone()),
            ],
        );
        let mut req = match self.read_whole(req).await {
            Ok(req) => req,
            Err(refusal) => {
                self.metrics
                    .http_request(&component, refusal.status().as_u16(), started.elapsed());
                return refusal;
            }
        };
        // An instance only now, and only from HTTP's share of the pool. The
        // permit goes with the instance, which may outlive the response
        // head (a streamed body): it is released when the instance ends.
        let Ok(instance) = self.instances.clone().try_acquire_owned() else {
            self.metrics
                .http_rejected
                .get_or_create(&RejectedLabels {
                    reason: "instances",
                })
                .inc();
            let mut busy = refuse(
                503,
                "overloaded",
                "the server is at its limit of concurrent requests; retry shortly",
                None,
            );
            busy.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
            self.metrics
                .http_request(&component, 503, started.elapsed());
            return busy;
        };
        let guard = Guard {
            _permit: instance,
            progress,
        };
        // The component continues this span: what it writes carries it.
        if let Some(value) = span
            .traceparent()
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
        {
            req.headers_mut().insert(telemetry::TRACEPARENT, value);
        }
        let response = match self.invoke(req, &route, client, guard).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(component = %component, error = %format!("{e:#}"), "HTTP handler failed");
                span.fail(format!("{e:#}"));
                empty(500)
            }
        };
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(response.status().as_u16()),
        ));
        self.metrics
            .http_request(&component, response.status().as_u16(), started.elapsed());
        response
    }

    /// Reads the body within the size and time limits. A declared length
    /// over the limit is refused before a byte of it is read.
    async fn read_whole(
        &self,
        req: hyper::Request<Incoming>,
    ) -> Result<Buffered, hyper::Response<HyperOutgoingBody>> {
        let limit = self.limits.max_body_bytes;
        let too_large = || {
            refuse(
                413,
                "payload_too_large",
                &format!("the request body is larger than {limit} bytes"),
                None,
            )
        };
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let (parts, mut body) = req.into_parts();
        let deadline = tokio::time::Instant::now() + self.limits.body_timeout;
        let mut buffer = bytes::BytesMut::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(refuse(
                        408,
                        "request_timeout",
                        &format!(
                            "the request body did not arrive within {} s",
                            self.limits.body_timeout.as_secs()
                        ),
                        None,
                    ))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(refuse(
                        400,
                        "bad_request",
                        &format!("could not read the request body: {e}"),
                        None,
                    ))
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if buffer.len() + data.len() > limit {
                    return Err(too_large());
                }
                buffer.extend_from_slice(&data);
            }
        }
        let body = Full::new(buffer.freeze())
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok(hyper::Request::from_parts(parts, body))
    }

    async fn invoke(
        &self,
        mut req: Buffered,
        route: &crate::routes::RouteMatch<'_>,
        client: SocketAddr,
        guard: Guard,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let mut spin_headers = vec![
            (
                "spin-full-url".to_owned(),
                format!("http://{host}{path_and_query}"),
            ),
            ("spin-path-info".to_owned(), route.path_info.clone()),
            ("spin-matched-route".to_owned(), route.raw.to_owned()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            ("spin-raw-component-route".to_owned(), route.raw.to_owned()),
            ("spin-component-route".to_owned(), route.prefix.clone()),
            ("spin-client-addr".to_owned(), client.to_string()),
        ];
        for (name, value) in &route.params {
            spin_headers.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        for (name, value) in spin_headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                req.headers_mut().insert(name, value);
            }
        }
        if req.headers().get("host").is_none() {
            req.headers_mut()
                .insert("host", http::HeaderValue::from_static("localhost"));
        }
        let pre = self
            .pres
            .get(route.component)
            .context("no pre-instantiated component")?
            .clone();
        let mut store = self.runtime.store(route.component, REQUEST_TIMEOUT)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            // The instance lives until the handler returns, within the
            // wall-clock limit and only while its client keeps reading.
            let outcome = tokio::select! {
                result = tokio::time::timeout(REQUEST_TIMEOUT, run) => match result {
                    Ok(result) => result,
                    Err(_) => Err(wasmtime::Error::msg(format!(
                        "the handler ran past the {} s request limit",
                        REQUEST_TIMEOUT.as_secs()
                    ))),
                },
                _ = guard.progress.until_stalled(WRITE_TIMEOUT) => {
                    Err(wasmtime::Error::msg(format!(
                        "the client took nothing of the response for {} s",
                        WRITE_TIMEOUT.as_secs()
                    )))
                }
            };
            if let Err(e) = &outcome {
                tracing::debug!(error = %format!("{e:#}"), "HTTP handler ended early");
            }
            drop(guard);
            outcome
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => anyhow::bail!("the component answered with error code {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("the component never set a response"),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("the component trapped")),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// The app's `[[trigger.http]]` routes, served by this host (standalone:
/// under `spin up`, Spin serves them).
pub struct Standalone {
    pub args: HttpArgs,
    /// The instance pool's size (`--max-instances`).
    pub max_instances: usize,
}

impl crate::triggers::Trigger for Standalone {
    async fn start(self, running: &mut crate::triggers::Running) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let runtime = running.runtime.clone();
        if runtime.app.http_triggers.is_empty() {
            return Ok(());
        }
        let addr = &self.args.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        // Kafka handlers and timers keep their share of the instance pool:
        // HTTP load can fill only what is left.
        let reserved: usize = runtime
            .app
            .kafka_triggers
            .iter()
            .map(|t| t.concurrency.max(1))
            .sum::<usize>()
            + runtime.app.cron_triggers.len();
        let limits = self
            .args
            .limits(self.max_instances.saturating_sub(reserved));
        tracing::info!(?limits, reserved_for_triggers = reserved, "HTTP limits");
        let trigger = Arc::new(HttpTrigger::new(
            runtime.clone(),
            running.metrics.clone(),
            limits,
        )?);
        println!("Serving http://{}", listener.local_addr()?);
        for route in &runtime.app.http_triggers {
            println!("    {}: {}", route.component, route.route);
        }
        running.spawn(trigger.serve(listener, running.shutdown.clone()));
        Ok(())
    }
}
