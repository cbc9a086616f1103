//! The Spin HTTP component: adapts Spin's request, variables and SQLite,
//! and streams `GET /api/events` as Server-Sent Events.

use std::time::{Duration, Instant};

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use todo_domain::store::spin;

use crate::config::Config;
use crate::http::{ApiError, Request, Response};
use crate::router::Endpoint;
use crate::Context;

/// An event stream lasts this long; the browser's EventSource reconnects
/// with `Last-Event-ID` and resumes where it left off.
const HEARTBEAT: Duration = Duration::from_secs(10);

struct SpinDatabases;

impl crate::Databases for SpinDatabases {
    fn open(
        &self,
        label: &str,
    ) -> Result<Box<dyn todo_domain::store::sql::Sql>, todo_domain::store::sql::DbError> {
        spin::open(label)
    }
}

fn respond(out: ResponseOutparam, response: Response) {
    let headers = Fields::from_list(
        &response
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect::<Vec<_>>(),
    )
    .expect("valid headers");
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status);
    let mut body = outgoing.take_body();
    out.set(outgoing);
    spin_sdk::http::run(async move {
        let _ = body.send(response.body).await;
    });
}

fn headers_of(incoming: &IncomingRequest) -> Vec<(String, String)> {
    incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!(
            "the request body is larger than {} bytes",
            crate::request_parts::MAX_BODY_BYTES
        ),
    )
}

/// Reads the body while counting: a declared length over the limit is
/// refused before reading anything, and a body that turns out longer stops
/// being read at the limit, so memory never holds more than the limit
/// whatever the client sends.
async fn read_body(
    headers: &[(String, String)],
    incoming: IncomingRequest,
) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let limit = crate::request_parts::MAX_BODY_BYTES;
    let declared = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = std::pin::pin!(incoming.into_body_stream());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::new(400, "bad_request", "could not read the request body"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    let method = incoming.method().to_string();
    let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (path_with_query.clone(), String::new()),
    };
    let headers = headers_of(&incoming);
    let body = match read_body(&headers, incoming).await {
        Ok(body) => body,
        Err(error) => return respond(out, error.into_response()),
    };
    let request = Request {
        method,
        path,
        query,
        headers,
        body,
    };
    let config = Config::from_lookup(|name| spin_sdk::variables::get(name).ok());
    let db = match spin::open("default") {
        Ok(db) => db,
        Err(e) if e.unavailable => {
            return respond(out, crate::http::store_unavailable().into_response())
        }
        Err(e) => {
            return respond(
                out,
                ApiError::new(503, "storage_unavailable", e.message).into_response(),
            )
        }
    };
    let ctx = Context {
        db: &*db,
        databases: &SpinDatabases,
        config: &config,
        now: todo_domain::time::now(),
    };
    // Streams pass the same gate as every other route.
    match crate::admit(&ctx, &request) {
        Err(error) => respond(out, error.into_response()),
        Ok(crate::Admitted::Caller {
            endpoint: Endpoint::EventStream,
            user,
            ..
        }) => stream_events(&ctx, &request, user, out).await,
        Ok(admitted) => respond(
            out,
            crate::dispatch(&ctx, &request, admitted).unwrap_or_else(ApiError::into_response),
        ),
    }
}

/// `GET /api/events`: Server-Sent Events from the caller's change feed,
/// under a stream lease (see `streams`).
async fn stream_events(ctx: &Context<'_>, request: &Request, user: String, out: ResponseOutparam) {
    let start = match crate::services::stream_start(ctx, request, &user) {
        Ok(start) => start,
        Err(error) => return respond(out, error.into_response()),
    };
    let now_ms = todo_domain::time::to_millis(&ctx.now);
    let lease =
        match crate::streams::acquire(ctx.db, &user, now_ms, start.window.as_millis() as i64) {
            Ok(lease) => lease,
            Err(error) => return respond(out, error.into_response()),
        };
    send_events(&user, start, out).await;
    crate::streams::release(ctx.db, &lease);
}

async fn send_events(user: &str, start: crate::services::StreamStart, out: ResponseOutparam) {
    let (db, mut cursor) = (start.db, start.cursor);
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), b"text/event-stream".to_vec()),
        ("cache-control".to_owned(), b"no-cache".to_vec()),
    ])
    .expect("valid headers");
    let outgoing = OutgoingResponse::new(headers);
    let mut body = outgoing.take_body();
    out.set(outgoing);
    if body.send(b"retry: 1000\n\n".to_vec()).await.is_err() {
        return;
    }
    let deadline = Instant::now() + start.window;
    let mut last_write = Instant::now();
    while Instant::now() < deadline {
        match crate::services::stream_frames(db.as_ref(), user, cursor) {
            Ok((frames, next)) if !frames.is_empty() => {
                cursor = next;
                if body.send(frames.into_bytes()).await.is_err() {
                    return; // the client went away
                }
                last_write = Instant::now();
            }
            Ok(_) => {}
            Err(_) => return,
        }
        if last_write.elapsed() >= HEARTBEAT {
            if body.send(b": keep-alive\n\n".to_vec()).await.is_err() {
                return;
            }
            last_write = Instant::now();
        }
        std::thread::sleep(crate::services::POLL_INTERVAL);
    }
}
