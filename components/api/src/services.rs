//! Endpoints over the event services' stores: notifications (reminders),
//! history and audit trail (audit), the change feed as long-poll and
//! Server-Sent Events (sync). The services write these databases; the API
//! reads them, and only marks notifications read.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value as Json};
use todo_audit_store::read as audit;
use todo_domain::model::decode::{decode, query, query_object};
use todo_domain::store::sql::Sql;
use todo_domain::{DomainError, TaskStore};
use todo_reminder_store::read as reminders;
use todo_sync_store::read as feed;

use crate::http::{ApiError, Request, Response};
use crate::Context;

/// Longest a long-poll waits for news.
pub const MAX_WAIT_SECS: u64 = 30;
/// How often a waiting request looks for news.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A page size: 1 to 100, `default` when not given.
pub fn limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(DomainError::invalid("limit", "must be from 1 to 100").into()),
    }
}

/// A wait in seconds: 0 to `max`, `default` when not given.
pub fn seconds(field: &str, value: Option<i64>, default: u64, max: u64) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(n) => u64::try_from(n).ok().filter(|n| *n <= max).ok_or_else(|| {
            DomainError::invalid(field, format!("must be 0 to {max} seconds")).into()
        }),
    }
}

/// A sequence cursor (`^[0-9]{1,19}$`, the OpenAPI pattern): any such
/// string is a position, saturating at the largest.
pub fn parse_sequence(field: &str, text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    match todo_domain::store::query::parse_clamped(text) {
        Some(n) if !text.starts_with('-') => Ok(n),
        _ => Err(DomainError::bad_request(
            Some(field),
            "is not a cursor: give the cursor from a previous response",
        )
        .into()),
    }
}

/// Trims a read of `limit + 1` items to a page of `limit`; the cursor after
/// its last item when there is more.
fn next_page<T>(items: &mut Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as i64 <= limit {
        return None;
    }
    items.truncate(limit as usize);
    items.last().map(cursor)
}

fn open(ctx: &Context<'_>, label: &str) -> Result<Box<dyn Sql>, ApiError> {
    Ok(ctx.databases.open(label)?)
}

pub fn list_notifications(
    ctx: &Context<'_>,
    user: &str,
    unread: bool,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Json, ApiError> {
    // The same `<key>.<id>` position as a task list cursor.
    let before = match cursor {
        None => None,
        Some(c) => {
            let position = todo_domain::store::query::Cursor::decode(c)?;
            Some((position.key, position.id))
        }
    };
    let db = open(ctx, "reminders")?;
    reminders::open(db.as_ref())?;
    let mut items = reminders::list(db.as_ref(), user, unread, limit + 1, before)?;
    let next = next_page(&mut items, limit, |n| {
        todo_domain::store::query::Cursor {
            key: todo_domain::time::to_millis(&n.created_at),
            id: n.id.clone(),
        }
        .encode()
    });
    Ok(json!({
        "notifications": items.iter().map(|n| n.to_json()).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}

pub fn read_notification(ctx: &Context<'_>, user: &str, id: &str) -> Result<Json, ApiError> {
    let db = open(ctx, "reminders")?;
    reminders::open(db.as_ref())?;
    Ok(reminders::mark_read(db.as_ref(), user, id, ctx.now)?.to_json())
}

/// A task's history in order, paged like the other lists: `limit`
/// (default 50, at most 100) and `cursor` (`<occurred_ms>.<seq>` of the
/// last entry of the previous page).
pub fn task_history(
    ctx: &Context<'_>,
    user: &str,
    task_id: &str,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Json, ApiError> {
    let after = match cursor {
        None => None,
        Some(c) => {
            let position = todo_domain::store::query::Cursor::decode(c)?;
            let seq = todo_domain::store::query::parse_clamped(&position.id).ok_or_else(|| {
                DomainError::bad_request(
                    Some("cursor"),
                    "is not a cursor: give next_cursor from the previous page",
                )
            })?;
            Some((position.key, seq))
        }
    };
    // Only a task the caller sees has a history here; a deleted task's
    // record stays in the audit trail (`/api/audit?task_id=`).
    TaskStore::migrated(ctx.db).require(user, task_id)?;
    let db = open(ctx, "audit")?;
    audit::open(db.as_ref())?;
    let mut entries = audit::history(db.as_ref(), task_id, after, limit + 1)?;
    let next = next_page(&mut entries, limit, |e| {
        todo_domain::store::query::Cursor {
            key: todo_domain::time::to_millis(&e.occurred_at),
            id: e.seq.to_string(),
        }
        .encode()
    });
    Ok(json!({
        "task_id": task_id,
        "history": entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}

pub fn audit_trail(
    ctx: &Context<'_>,
    user: &str,
    task_id: Option<&str>,
    limit: i64,
    before: Option<i64>,
) -> Result<Json, ApiError> {
    let db = open(ctx, "audit")?;
    audit::open(db.as_ref())?;
    let mut entries = audit::trail(db.as_ref(), user, task_id, before, limit + 1)?;
    let next = next_page(&mut entries, limit, |e| e.seq.to_string());
    Ok(json!({
        "entries": entries.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "next_cursor": next,
    }))
}

/// Parses a feed cursor (`since` or `Last-Event-ID`).
pub fn parse_cursor(field: &str, text: &str) -> Result<i64, ApiError> {
    parse_sequence(field, text)
}

/// `GET /api/sync?since=<cursor>&wait=<seconds>`: the changes after the
/// cursor, at once if there are any, else as soon as one arrives or `wait`
/// (default 25, at most 30) runs out. Without `since` it answers at once
/// with the current cursor, where a new client starts.
pub fn sync_poll(
    ctx: &Context<'_>,
    user: &str,
    since: Option<i64>,
    wait: u64,
    limit: i64,
) -> Result<Json, ApiError> {
    let db = open(ctx, "sync")?;
    feed::open(db.as_ref())?;
    let Some(since) = since else {
        let head = feed::head(db.as_ref(), user)?;
        return Ok(json!({"changes": [], "cursor": head.to_string()}));
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let changes = feed::since(db.as_ref(), user, since, limit)?;
        if !changes.is_empty() || Instant::now() >= deadline {
            let cursor = changes.last().map_or(since, |c| c.cursor);
            return Ok(json!({
                "changes": changes.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
                "cursor": cursor.to_string(),
            }));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Longest one event stream lasts before the client reconnects.
pub const MAX_STREAM_SECS: u64 = 25;

/// An event stream about to begin.
pub struct StreamStart {
    /// The feed's database, opened once for the whole stream.
    pub db: Box<dyn Sql>,
    /// Changes after this one are sent.
    pub cursor: i64,
    /// How long the stream stays open (`wait`, default 25 s).
    pub window: Duration,
}

/// `GET /api/events`' query parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamParams {
    #[serde(default, deserialize_with = "query::text")]
    since: Option<String>,
    #[serde(default, deserialize_with = "query::whole")]
    wait: Option<i64>,
}

/// Where an event stream starts: `Last-Event-ID` (a reconnect), `since`,
/// else the current head (only new changes).
pub fn stream_start(
    ctx: &Context<'_>,
    request: &Request,
    user: &str,
) -> Result<StreamStart, ApiError> {
    let params: StreamParams = decode(query_object(&request.query_pairs()))?;
    let window = seconds("wait", params.wait, MAX_STREAM_SECS, MAX_STREAM_SECS)?;
    // Both are checked even when the header wins, so a bad `since` is
    // never silently ignored.
    let since = params
        .since
        .as_deref()
        .map(|since| parse_cursor("since", since))
        .transpose()?;
    // An empty header is no header, like an empty query value.
    let last_event_id = request
        .header("last-event-id")
        .filter(|v| !v.trim().is_empty())
        .map(|id| parse_cursor("Last-Event-ID", id))
        .transpose()?;
    let db = open(ctx, "sync")?;
    feed::open(db.as_ref())?;
    let cursor = match last_event_id.or(since) {
        Some(cursor) => cursor,
        None => feed::head(db.as_ref(), user)?,
    };
    Ok(StreamStart {
        db,
        cursor,
        window: Duration::from_secs(window),
    })
}

/// The SSE frames for changes after `cursor`, and the new cursor.
pub fn stream_frames(db: &dyn Sql, user: &str, cursor: i64) -> Result<(String, i64), ApiError> {
    let changes = feed::since(db, user, cursor, 100)?;
    let mut out = String::new();
    let mut last = cursor;
    for change in &changes {
        out.push_str(&format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            change.cursor,
            change.event_type,
            change.to_json()
        ));
        last = change.cursor;
    }
    Ok((out, last))
}

/// `GET /api/events` outside a streaming host: the frames available now.
/// Under Spin the entry point streams instead (see `spin_entry`).
pub fn event_stream_once(
    ctx: &Context<'_>,
    request: &Request,
    user: &str,
) -> Result<Response, ApiError> {
    let start = stream_start(ctx, request, user)?;
    let (frames, _) = stream_frames(start.db.as_ref(), user, start.cursor)?;
    Ok(Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/event-stream".into()),
            ("cache-control".into(), "no-cache".into()),
        ],
        body: format!("retry: 1000\n\n{frames}").into_bytes(),
    })
}
