//! Reminder service, delivery side: a timer (every second) that posts the
//! fired email, sms and push notifications of the `reminders` database to
//! the webhook. It is its own component on its own timer so that firing
//! reminders, and in-app notifications, never wait on a webhook: a
//! receiver that never answers delays only deliveries.
//!
//! Each attempt is recorded before the request goes out (a run that dies
//! mid-call does not send again at the next tick); requests carry
//! `Idempotency-Key` (the notification id) so a receiver can drop a repeat;
//! connect and response timeouts are short (variables); the deliveries of
//! one run are sent at once, not one after another.
#![cfg(target_arch = "wasm32")]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};
use todo_domain::store::spin;
use todo_reminder_store::{self as reminders, Notification};
use trigger_kafka_sdk::{cron, cron_component};

/// Deliveries per timer run.
const DELIVERIES_PER_RUN: i64 = 20;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 5_000;

fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn millis(name: &str, default: u64) -> u64 {
    variable(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `X-Todo-Signature: sha256=<hex>` over `<timestamp>.<body>`, so a
/// receiver can check origin and freshness.
fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The webhook's scheme, authority and path.
struct Target {
    scheme: types::Scheme,
    authority: String,
    path: String,
}

fn target(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("notification_webhook_url `{url}` is not an http(s) URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => types::Scheme::Http,
        "https" => types::Scheme::Https,
        other => {
            return Err(format!(
                "notification_webhook_url has scheme `{other}`; use http or https"
            ))
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    Ok(Target {
        scheme,
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// Starts one POST; the host runs it while the others start.
fn start(
    target: &Target,
    secret: Option<&str>,
    notification: &Notification,
    timeouts: (u64, u64),
) -> Result<types::FutureIncomingResponse, String> {
    let body = reminders::webhook_body(notification).to_string();
    let timestamp = todo_domain::time::now().timestamp();
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        // A plain length rather than chunked encoding: any receiver reads it.
        ("content-length".into(), body.len().to_string().into_bytes()),
        (
            "x-todo-timestamp".into(),
            timestamp.to_string().into_bytes(),
        ),
        (
            "x-todo-notification-id".into(),
            notification.id.clone().into_bytes(),
        ),
        (
            "idempotency-key".into(),
            notification.id.clone().into_bytes(),
        ),
    ];
    // The delivery continues the trace its reminder was scheduled under.
    if let Some(traceparent) = &notification.traceparent {
        headers.push(("traceparent".into(), traceparent.clone().into_bytes()));
    }
    if let Some(secret) = secret {
        headers.push((
            "x-todo-signature".into(),
            signature(secret, timestamp, &body).into_bytes(),
        ));
    }
    let fields = types::Fields::from_list(&headers).map_err(|e| format!("headers: {e:?}"))?;
    let request = types::OutgoingRequest::new(fields);
    let _ = request.set_method(&types::Method::Post);
    let _ = request.set_scheme(Some(&target.scheme));
    let _ = request.set_authority(Some(&target.authority));
    let _ = request.set_path_with_query(Some(&target.path));
    let outgoing_body = request
        .body()
        .map_err(|()| "request body taken".to_owned())?;
    let options = types::RequestOptions::new();
    let ns = |ms: u64| ms.saturating_mul(1_000_000);
    let _ = options.set_connect_timeout(Some(ns(timeouts.0)));
    let _ = options.set_first_byte_timeout(Some(ns(timeouts.1)));
    let _ = options.set_between_bytes_timeout(Some(ns(timeouts.1)));
    let response = outgoing_handler::handle(request, Some(options))
        .map_err(|e| format!("webhook unreachable: {e:?}"))?;
    {
        let stream = outgoing_body
            .write()
            .map_err(|()| "request body stream taken".to_owned())?;
        stream
            .blocking_write_and_flush(body.as_bytes())
            .map_err(|e| format!("sending the body: {e:?}"))?;
    }
    types::OutgoingBody::finish(outgoing_body, None)
        .map_err(|e| format!("finishing the body: {e:?}"))?;
    Ok(response)
}

/// Waits for a started POST and judges its answer.
fn finish(response: types::FutureIncomingResponse) -> Result<(), String> {
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(response))) => match response.status() {
            200..=299 => Ok(()),
            status => Err(format!("webhook answered {status}")),
        },
        Some(Ok(Err(e))) => Err(format!("webhook unreachable: {e:?}")),
        Some(Err(())) | None => Err("webhook response lost".into()),
    }
}

#[cron_component]
fn tick(_metadata: cron::Metadata) -> Result<(), todo_domain::DomainError> {
    let db = spin::open("reminders")?;
    reminders::open(&db)?;
    let now = todo_domain::time::now();
    reminders::fail_abandoned(&db, now)?;
    let pending = reminders::pending_deliveries(&db, now, DELIVERIES_PER_RUN)?;
    if pending.is_empty() {
        return Ok(());
    }
    let url = variable("notification_webhook_url");
    let secret = variable("notification_webhook_secret");
    let timeouts = (
        millis(
            "notification_connect_timeout_ms",
            DEFAULT_CONNECT_TIMEOUT_MS,
        ),
        millis("notification_timeout_ms", DEFAULT_RESPONSE_TIMEOUT_MS),
    );
    let target = url.as_deref().map(target);
    let mut started = Vec::new();
    for notification in pending {
        // Counted before it is sent.
        if !reminders::claim_delivery(&db, &notification.id, now)? {
            continue;
        }
        let attempt = match &target {
            Some(Ok(target)) => start(target, secret.as_deref(), &notification, timeouts),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no notification webhook is configured (notification_webhook_url)".into()),
        };
        started.push((notification.id, attempt));
    }
    for (id, attempt) in started {
        let outcome = attempt.and_then(finish);
        if let Err(e) = &outcome {
            eprintln!("reminders: delivery of {id} failed: {e}");
        }
        reminders::record_delivery(&db, &id, outcome, todo_domain::time::now())?;
    }
    Ok(())
}
