//! The REST API under `/api`.

use serde_json::{Map, Value as Json};
use todo_domain::model::decode::query_object;
use todo_domain::store::idempotency::{self, Lookup, StoredResponse};
use todo_domain::store::sql::transaction_for;
use todo_domain::{DomainError, TaskStore};

use crate::http::{ApiError, Request, Response};
use crate::operations::Operation;
use crate::router::Endpoint;
use crate::Context;
use crate::{request_parts, services};

/// Serves a REST route through its operation.
pub fn handle(
    ctx: &Context<'_>,
    endpoint: Endpoint,
    params: &[String],
    request: &Request,
    user: &str,
) -> Result<Response, ApiError> {
    if endpoint == Endpoint::EventStream {
        return services::event_stream_once(ctx, request, user);
    }
    let operation = Operation::for_endpoint(endpoint)
        .unwrap_or_else(|| unreachable!("{endpoint:?} is served before authentication"));
    let args = rest_args(operation, params, request)?;
    let run = || {
        let reply = operation.run(ctx, user, args.clone())?;
        Ok(if reply.status == 204 {
            Response::empty(204)
        } else {
            Response::json(reply.status, &reply.body)
        })
    };
    if operation.writes {
        let owners = operation.owners(ctx, user, &args)?;
        write(ctx, request, user, &owners, run)
    } else {
        run()
    }
}

/// The operation's arguments as one object: the route's `{…}` segments,
/// the JSON body where the operation takes one, and the query parameters
/// where it takes those (as text: the input type reads `"5"` as `5`).
fn rest_args(
    operation: &Operation,
    params: &[String],
    request: &Request,
) -> Result<Map<String, Json>, ApiError> {
    let mut args = if operation.takes_body {
        request_parts::json_object(request)?
    } else {
        request_parts::no_body(request)?;
        Map::new()
    };
    for (name, value) in operation.path_parameters().zip(params) {
        if args.contains_key(name) {
            return Err(given_twice(
                name,
                "is given in the path and cannot be written",
            ));
        }
        args.insert(name.to_owned(), Json::String(value.clone()));
    }
    if operation.takes_query {
        for (name, value) in query_object(&request.query_pairs()) {
            if args.contains_key(&name) {
                return Err(given_twice(&name, "is given in the path, not the query"));
            }
            args.insert(name, value);
        }
    }
    Ok(args)
}

fn given_twice(name: &str, why: &str) -> ApiError {
    DomainError::bad_request(Some(name), format!("`{name}` {why}")).into()
}

/// Runs a change in one transaction. On a POST with an `Idempotency-Key`,
/// the first successful response is stored in that same transaction and a
/// retry gets it back without doing anything again.
fn write(
    ctx: &Context<'_>,
    request: &Request,
    user: &str,
    owners: &[String],
    change: impl FnOnce() -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
    // An empty header is no header, like an empty query value.
    let key = match request.header("idempotency-key").filter(|k| !k.is_empty()) {
        Some(key) if request.method.eq_ignore_ascii_case("POST") => {
            idempotency::validate_key(key)?;
            Some(key)
        }
        _ => None,
    };
    let Some(key) = key else {
        return transaction_for(ctx.db, &owners, change).map(with_location);
    };
    let hash = idempotency::request_hash(&request.method, &request.path, &request.body);
    transaction_for(ctx.db, &owners, || {
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
    let Some(id) = created_id(&body) else {
        return Ok(());
    };
    if TaskStore::migrated(ctx.db).get(user, id)?.is_some() {
        return Ok(());
    }
    Err(DomainError::conflict(
        "Idempotency-Key",
        format!(
            "created task `{id}`, which has since been deleted; use a new key to create another"
        ),
    )
    .into())
}

/// The id of the task a 201 body created: the task itself, or Quick Add's
/// `{"task": …}`.
fn created_id(body: &Json) -> Option<&str> {
    body.get("id")
        .or_else(|| body.pointer("/task/id"))
        .and_then(Json::as_str)
}

/// `201 Created` responses point at the new task.
pub fn with_location(response: Response) -> Response {
    if response.status != 201 || response.header("location").is_some() {
        return response;
    }
    match created_id(&response.json_body()) {
        Some(id) => {
            let location = format!("/api/tasks/{id}");
            response.with_header("location", location)
        }
        None => response,
    }
}
