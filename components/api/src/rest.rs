//! The REST API under `/api`.

use serde_json::{json, Value as Json};
use todo_domain::idempotency::{self, Lookup, StoredResponse};
use todo_domain::sql::transaction;
use todo_domain::{Page, TaskPatch, TaskStore};

use crate::http::{ApiError, Request, Response};
use crate::ops;
use crate::router::Endpoint;
use crate::services;
use crate::Context;

pub fn page_json(page: &Page) -> Json {
    json!({
        "tasks": page.tasks.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })
}

pub fn handle(
    ctx: &Context<'_>,
    endpoint: Endpoint,
    params: &[String],
    request: &Request,
    user: &str,
) -> Result<Response, ApiError> {
    let store = TaskStore::open(ctx.db)?.with_limits(ctx.config.limits);
    let id = params.first().map(String::as_str).unwrap_or_default();
    let now = ctx.now;
    match endpoint {
        Endpoint::ListTasks => {
            let query = todo_domain::ListQuery::from_pairs(&request.query_pairs())?;
            let page = store.list(user, &query, now)?;
            Ok(Response::json(200, &page_json(&page)))
        }
        Endpoint::GetTask => Ok(Response::json(200, &store.require(user, id)?.to_json())),
        Endpoint::CreateTask => {
            let patch = TaskPatch::from_json(&ops::json_object(request)?)?;
            write(ctx, request, user, || {
                let task = store.create(user, &patch, now)?;
                Ok(Response::json(201, &task.to_json()))
            })
        }
        Endpoint::UpdateTask => {
            let patch = TaskPatch::from_json(&ops::json_object(request)?)?;
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.update(user, id, &patch, now)?.to_json(),
                ))
            })
        }
        Endpoint::DeleteTask => write(ctx, request, user, || {
            store.delete(user, id, now)?;
            Ok(Response::empty(204))
        }),
        Endpoint::CompleteTask => {
            ops::no_arguments(request)?;
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.complete(user, id, now)?.to_json(),
                ))
            })
        }
        Endpoint::ReopenTask => {
            ops::no_arguments(request)?;
            write(ctx, request, user, || {
                Ok(Response::json(200, &store.reopen(user, id, now)?.to_json()))
            })
        }
        Endpoint::SetReminder => {
            let patch = ops::reminder_patch(&ops::json_object(request)?, &[])?;
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.update(user, id, &patch, now)?.to_json(),
                ))
            })
        }
        Endpoint::ClearReminder => write(ctx, request, user, || {
            let patch = TaskPatch {
                remind_at: Some(None),
                ..TaskPatch::default()
            };
            Ok(Response::json(
                200,
                &store.update(user, id, &patch, now)?.to_json(),
            ))
        }),
        Endpoint::ShareTask => {
            let with = services::user_field(&ops::json_object(request)?, "user_id", false)?
                .unwrap_or_default();
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.share(user, id, &with, now)?.to_json(),
                ))
            })
        }
        Endpoint::UnshareTask => {
            let with = params.get(1).cloned().unwrap_or_default();
            // `me` (or one's own id): a recipient declines the share.
            if with == "me" || with == user {
                return write(ctx, request, user, || {
                    store.leave(user, id, now)?;
                    Ok(Response::empty(204))
                });
            }
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.unshare(user, id, &with, now)?.to_json(),
                ))
            })
        }
        Endpoint::AssignTask => {
            let assignee = services::user_field(&ops::json_object(request)?, "assignee", true)?;
            write(ctx, request, user, || {
                Ok(Response::json(
                    200,
                    &store.assign(user, id, assignee.as_deref(), now)?.to_json(),
                ))
            })
        }
        Endpoint::TaskHistory => services::task_history(ctx, user, id),
        Endpoint::AuditTrail => services::audit_trail(ctx, request, user),
        Endpoint::ListNotifications => services::list_notifications(ctx, request, user),
        Endpoint::ReadNotification => services::read_notification(ctx, user, id),
        Endpoint::SyncPoll => services::sync_poll(ctx, request, user),
        Endpoint::EventStream => services::event_stream_once(ctx, request, user),
        Endpoint::Healthz | Endpoint::OpenApi | Endpoint::Mcp => {
            unreachable!("served before authentication")
        }
    }
}

/// Runs a change in one transaction. On a POST with an `Idempotency-Key`,
/// the first successful response is stored in that same transaction and a
/// retry gets it back without doing anything again.
fn write(
    ctx: &Context<'_>,
    request: &Request,
    user: &str,
    change: impl FnOnce() -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    // An empty header is no header, like an empty query value.
    let key = match request.header("idempotency-key").filter(|k| !k.is_empty()) {
        Some(key) if request.method.eq_ignore_ascii_case("POST") => {
            idempotency::validate_key(key)?;
            Some(key)
        }
        _ => None,
    };
    let Some(key) = key else {
        return transaction(ctx.db, change).map(with_location);
    };
    let hash = idempotency::request_hash(&request.method, &request.path, &request.body);
    transaction(ctx.db, || {
        if let Lookup::Replay(stored) = idempotency::lookup(ctx.db, user, key, &hash, ctx.now)? {
            refuse_replay_of_deleted(ctx, user, &stored)?;
            let mut response = Response {
                status: stored.status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: stored.body.into_bytes(),
            };
            response = with_location(response).with_header("idempotent-replayed", "true");
            return Ok(response);
        }
        let response = change()?;
        if (200..300).contains(&response.status) {
            let stored = StoredResponse {
                status: response.status,
                body: String::from_utf8_lossy(&response.body).into_owned(),
            };
            idempotency::remember(ctx.db, user, key, &hash, &stored, ctx.now)?;
        }
        Ok(with_location(response))
    })
}

/// A replayed `201 Created` would point at a task that no longer exists
/// once it was deleted: answer 409 so the client uses a new key instead of
/// following a dangling `Location`.
fn refuse_replay_of_deleted(
    ctx: &Context<'_>,
    user: &str,
    stored: &StoredResponse,
) -> Result<(), ApiError> {
    if stored.status != 201 {
        return Ok(());
    }
    let body: Json = serde_json::from_str(&stored.body).unwrap_or(Json::Null);
    let Some(id) = body.get("id").and_then(Json::as_str) else {
        return Ok(());
    };
    if TaskStore::open(ctx.db)?.get(user, id)?.is_some() {
        return Ok(());
    }
    Err(todo_domain::DomainError::conflict(
        "Idempotency-Key",
        format!(
            "created task `{id}`, which has since been deleted; use a new key to create another"
        ),
    )
    .into())
}

/// `201 Created` responses point at the new task.
pub fn with_location(response: Response) -> Response {
    if response.status != 201 || response.header("location").is_some() {
        return response;
    }
    match response.json_body().get("id").and_then(Json::as_str) {
        Some(id) => {
            let location = format!("/api/tasks/{id}");
            response.with_header("location", location)
        }
        None => response,
    }
}
