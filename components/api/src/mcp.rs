//! MCP over Streamable HTTP: JSON-RPC 2.0 on `POST /mcp`, answered with a
//! single JSON response (this server never needs to stream). Stateless: no
//! `Mcp-Session-Id`, every request carries its own credentials.

use serde_json::{json, Map, Value as Json};
use todo_domain::sql::transaction;
use todo_domain::{DomainError, TaskPatch, TaskStore};

use crate::http::{ApiError, Request, Response};
use crate::{ops, rest, Context};

/// Protocol revisions this server speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

fn rpc_error(id: &Json, code: i64, message: impl Into<String>) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn rpc_result(id: &Json, result: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Browsers send `Origin`; refusing unknown ones stops DNS-rebinding attacks
/// on a local server, as the transport specification requires.
pub fn check_origin(request: &Request, allowed: &[String]) -> Result<(), ApiError> {
    match request.header("origin") {
        None => Ok(()),
        Some(origin)
            if allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) =>
        {
            Ok(())
        }
        Some(origin) => Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!(
                "origin `{origin}` may not call /mcp; add it to the mcp_allowed_origins variable"
            ),
        )),
    }
}

/// The `MCP-Protocol-Version` header, if sent, must name a version we speak.
pub fn check_protocol_header(request: &Request) -> Result<(), ApiError> {
    match request.header("mcp-protocol-version") {
        Some(v) if !SUPPORTED_VERSIONS.contains(&v.trim()) => Err(ApiError::new(
            400,
            "unsupported_protocol_version",
            format!(
                "MCP protocol version `{v}` is not supported; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// What is wrong with a JSON-RPC 2.0 message's envelope, if anything.
fn check_envelope(message: &Map<String, Json>) -> Result<(), &'static str> {
    if message.get("jsonrpc") != Some(&json!("2.0")) {
        return Err("jsonrpc must be \"2.0\"");
    }
    if message.get("method").is_some_and(|m| !m.is_string()) {
        return Err("method must be a string");
    }
    if message
        .get("id")
        .is_some_and(|id| !(id.is_string() || id.is_i64() || id.is_u64()))
    {
        return Err("id must be a string or an integer");
    }
    if message.get("params").is_some_and(|p| !p.is_object()) {
        return Err("params must be an object");
    }
    if message.get("error").is_some_and(|e| !e.is_object()) {
        return Err("error must be an object");
    }
    Ok(())
}

pub fn handle(ctx: &Context<'_>, request: &Request, user: &str) -> Response {
    let message: Json = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(e) => {
            return Response::json(
                400,
                &rpc_error(&Json::Null, PARSE_ERROR, format!("parse error: {e}")),
            )
        }
    };
    let Json::Object(message) = message else {
        let text = if message.is_array() {
            "JSON-RPC batches are not supported; send one message per request"
        } else {
            "a JSON-RPC message must be an object"
        };
        return Response::json(400, &rpc_error(&Json::Null, INVALID_REQUEST, text));
    };
    // The envelope is checked first, so a malformed message is a 400
    // whatever it is (request, notification or response), as the
    // OpenAPI document's request schema says.
    if let Err(problem) = check_envelope(&message) {
        let id = message
            .get("id")
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
            .cloned()
            .unwrap_or(Json::Null);
        return Response::json(400, &rpc_error(&id, INVALID_REQUEST, problem));
    }
    let (Some(id), Some(method)) = (
        message.get("id").cloned(),
        message.get("method").and_then(Json::as_str),
    ) else {
        // A notification or a client's response: acknowledged, nothing to say.
        return Response::empty(202);
    };
    let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
    let reply = match method {
        "initialize" => rpc_result(&id, initialize(&params)),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, json!({ "tools": tools() })),
        "tools/call" => call_tool(ctx, user, &id, &params),
        other => rpc_error(
            &id,
            METHOD_NOT_FOUND,
            format!("method `{other}` is not supported"),
        ),
    };
    Response::json(200, &reply)
}

fn initialize(params: &Json) -> Json {
    let requested = params
        .get("protocolVersion")
        .and_then(Json::as_str)
        .unwrap_or("");
    // Answer with the client's version when we speak it, else our newest.
    let version = SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .unwrap_or(&SUPPORTED_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "todo-chatbot", "title": "Todo Chatbot", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Manage the user's todo list. Times are RFC 3339 with an offset \
            (e.g. 2026-12-01T09:00:00Z). list_tasks pages with next_cursor. \
            Recurring tasks need a due_date; completing one creates the next occurrence.",
    })
}

fn call_tool(ctx: &Context<'_>, user: &str, id: &Json, params: &Json) -> Json {
    let Some(name) = params.get("name").and_then(Json::as_str) else {
        return rpc_error(id, INVALID_PARAMS, "tools/call needs params.name");
    };
    let arguments = match params.get("arguments") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(map)) => map.clone(),
        Some(_) => return rpc_error(id, INVALID_PARAMS, "params.arguments must be an object"),
    };
    if !TOOL_NAMES.contains(&name) {
        return rpc_error(
            id,
            INVALID_PARAMS,
            format!("unknown tool `{name}`; tools/list names the tools"),
        );
    }
    match run_tool(ctx, user, name, &arguments) {
        Ok(structured) => rpc_result(
            id,
            json!({
                "content": [{ "type": "text", "text": structured.to_string() }],
                "structuredContent": structured,
                "isError": false,
            }),
        ),
        Err(error) if error.status >= 500 => rpc_error(id, INTERNAL_ERROR, error.message),
        // A tool error the model can read and act on, not a transport error.
        Err(error) => {
            let mut text = format!("Error ({}", error.code);
            if let Some(field) = &error.field {
                text.push_str(&format!(", field `{field}`"));
            }
            text.push_str(&format!("): {}", error.message));
            rpc_result(
                id,
                json!({
                    "content": [{ "type": "text", "text": text }],
                    "structuredContent": error.body(),
                    "isError": true,
                }),
            )
        }
    }
}

fn task_id(arguments: &Map<String, Json>) -> Result<String, DomainError> {
    match arguments.get("id") {
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(DomainError::invalid(
            "id",
            "give the task's id (a string from add_task or list_tasks)",
        )),
    }
}

fn only(arguments: &Map<String, Json>, allowed: &[&str]) -> Result<(), DomainError> {
    match arguments.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(DomainError::bad_request(
            Some(key),
            format!(
                "unknown argument `{key}`; this tool takes {}",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn run_tool(
    ctx: &Context<'_>,
    user: &str,
    name: &str,
    args: &Map<String, Json>,
) -> Result<Json, ApiError> {
    let store = TaskStore::open(ctx.db)?.with_limits(ctx.config.limits);
    let now = ctx.now;
    let task = |t: todo_domain::Task| json!({ "task": t.to_json() });
    let result = match name {
        "add_task" => {
            let patch = TaskPatch::from_json(args)?;
            transaction(ctx.db, || store.create(user, &patch, now)).map(task)?
        }
        "list_tasks" => {
            let query = ops::list_query_from_json(args)?;
            rest::page_json(&store.list(user, &query, now)?)
        }
        "get_task" => {
            only(args, &["id"])?;
            task(store.require(user, &task_id(args)?)?)
        }
        "update_task" => {
            let id = task_id(args)?;
            let patch = TaskPatch::from_json_allowing(args, &["id"])?;
            if patch.is_empty() {
                return Err(DomainError::invalid(
                    "id",
                    "give at least one field to change besides id",
                )
                .into());
            }
            transaction(ctx.db, || store.update(user, &id, &patch, now)).map(task)?
        }
        "complete_task" => {
            only(args, &["id"])?;
            let id = task_id(args)?;
            transaction(ctx.db, || store.complete(user, &id, now)).map(task)?
        }
        "delete_task" => {
            only(args, &["id"])?;
            let id = task_id(args)?;
            let deleted = transaction(ctx.db, || store.delete(user, &id, now))?;
            json!({ "deleted": true, "id": deleted.id, "title": deleted.title })
        }
        "set_reminder" => {
            let id = task_id(args)?;
            let patch = ops::reminder_patch(args, &["id"])?;
            transaction(ctx.db, || store.update(user, &id, &patch, now)).map(task)?
        }
        "share_task" => {
            only(args, &["id", "user_id"])?;
            let id = task_id(args)?;
            let with = match args.get("user_id") {
                Some(Json::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
                _ => {
                    return Err(DomainError::invalid(
                        "user_id",
                        "give the id of the user to share with",
                    )
                    .into())
                }
            };
            transaction(ctx.db, || store.share(user, &id, &with, now)).map(task)?
        }
        "get_task_history" => {
            only(args, &["id"])?;
            crate::services::task_history(ctx, user, &task_id(args)?)?.json_body()
        }
        "list_notifications" => {
            only(args, &["unread", "limit", "cursor"])?;
            // The REST endpoint's parameters, so both validate alike.
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in args {
                let text = match value {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                query.append_pair(key, &text);
            }
            let request = Request {
                query: query.finish(),
                ..Request::default()
            };
            crate::services::list_notifications(ctx, &request, user)?.json_body()
        }
        other => unreachable!("unknown tool {other} was rejected before"),
    };
    Ok(result)
}

pub const TOOL_NAMES: &[&str] = &[
    "add_task",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "delete_task",
    "set_reminder",
    "share_task",
    "list_notifications",
    "get_task_history",
];

fn date_time(description: &str) -> Json {
    json!({"type": ["string", "null"], "format": "date-time", "description": description})
}

/// JSON Schemas of the writable task fields.
fn task_fields() -> Map<String, Json> {
    let fields = json!({
        "title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Short title of the task."},
        "description": {"type": "string", "maxLength": 5000, "description": "Longer notes."},
        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"], "description": "Defaults to medium."},
        "due_date": date_time("When the task is due, RFC 3339 with an offset, e.g. 2026-12-01T09:00:00Z. null clears it."),
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20, "description": "Replaces all tags; stored lower-case."},
        "recurrence_pattern": {"type": ["string", "null"], "description": "daily, weekly, monthly, yearly, 'every N days|weeks|months|years', 'every monday and thursday', weekdays, or an RFC 5545 RRULE (FREQ, INTERVAL, BYDAY, BYMONTHDAY, COUNT, UNTIL). Needs a due_date."},
        "remind_at": date_time("When to remind, RFC 3339, in the future. null removes the reminder."),
        "remind_before_minutes": {"type": ["integer", "null"], "minimum": 0, "maximum": 525600, "description": "Remind this many minutes before the due date; follows the due date when it moves."},
        "notification_type": {"type": "string", "enum": ["in_app", "email", "sms", "push"], "description": "How the reminder is delivered. Defaults to in_app."},
    });
    match fields {
        Json::Object(map) => map,
        _ => unreachable!(),
    }
}

fn object_schema(properties: Map<String, Json>, required: &[&str]) -> Json {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn id_property() -> Map<String, Json> {
    let mut map = Map::new();
    map.insert(
        "id".into(),
        json!({"type": "string", "description": "The task id."}),
    );
    map
}

pub fn tools() -> Json {
    let mut update = id_property();
    update.extend(task_fields());
    let mut reminder = id_property();
    for key in ["remind_at", "remind_before_minutes", "notification_type"] {
        reminder.insert(key.into(), task_fields()[key].clone());
    }
    let list = json!({
        "status": {"type": "array", "items": {"type": "string", "enum": ["pending", "in_progress", "completed"]}},
        "priority": {"type": "array", "items": {"type": "string", "enum": ["low", "medium", "high", "urgent"]}},
        "tag": {"type": "array", "items": {"type": "string"}, "description": "Tasks carrying every one of these tags."},
        "due_before": {"type": "string", "description": "RFC 3339 time or YYYY-MM-DD (midnight UTC); due strictly before."},
        "due_after": {"type": "string", "description": "RFC 3339 time or YYYY-MM-DD; due at or after."},
        "overdue": {"type": "boolean", "description": "true: open tasks past their due date."},
        "search": {"type": "string", "description": "Text to find in title or description (case-insensitive)."},
        "sort": {"type": "string", "enum": ["due_date", "priority", "created_at", "updated_at"], "description": "Defaults to due_date (soonest first, undated last)."},
        "order": {"type": "string", "enum": ["asc", "desc"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Page size, default 20."},
        "cursor": {"type": "string", "description": "next_cursor from the previous page, with the same sort and order."},
    });
    let list = match list {
        Json::Object(map) => map,
        _ => unreachable!(),
    };
    let mut share = id_property();
    share.insert(
        "user_id".into(),
        json!({"type": "string", "description": "The user to share with."}),
    );
    let notifications = match json!({
        "unread": {"type": "boolean", "description": "Only unread in-app notifications."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "cursor": {"type": "string", "description": "next_cursor from the previous page."},
    }) {
        Json::Object(map) => map,
        _ => unreachable!(),
    };
    let read_only = json!({"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false});
    let write = json!({"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false});
    json!([
        {
            "name": "add_task",
            "title": "Add a task",
            "description": "Create a task on the user's todo list. Returns the task with its id.",
            "inputSchema": object_schema(task_fields(), &["title"]),
            "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false},
        },
        {
            "name": "list_tasks",
            "title": "List tasks",
            "description": "List the user's tasks with optional filters. Returns tasks and next_cursor (null on the last page).",
            "inputSchema": object_schema(list, &[]),
            "annotations": read_only,
        },
        {
            "name": "get_task",
            "title": "Get a task",
            "description": "Fetch one task by id.",
            "inputSchema": object_schema(id_property(), &["id"]),
            "annotations": read_only,
        },
        {
            "name": "update_task",
            "title": "Update a task",
            "description": "Change some fields of a task; fields not given stay as they are, null clears a field.",
            "inputSchema": object_schema(update, &["id"]),
            "annotations": write,
        },
        {
            "name": "complete_task",
            "title": "Complete a task",
            "description": "Mark a task completed. Completing a recurring task schedules its next occurrence. Completing twice is harmless.",
            "inputSchema": object_schema(id_property(), &["id"]),
            "annotations": write,
        },
        {
            "name": "delete_task",
            "title": "Delete a task",
            "description": "Delete a task for good, cancelling its reminder and stopping its recurrence.",
            "inputSchema": object_schema(id_property(), &["id"]),
            "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false},
        },
        {
            "name": "set_reminder",
            "title": "Set a reminder",
            "description": "Remind the user about a task at remind_at, or remind_before_minutes before its due date, by notification_type.",
            "inputSchema": object_schema(reminder, &["id"]),
            "annotations": write,
        },
        {
            "name": "share_task",
            "title": "Share a task",
            "description": "Share one of the user's own tasks with another user, who can then see and change it (not delete or share it).",
            "inputSchema": object_schema(share, &["id", "user_id"]),
            "annotations": write,
        },
        {
            "name": "list_notifications",
            "title": "List notifications",
            "description": "The user's reminders that have fired, newest first: in-app ones are unread/read; email, sms and push ones pending, delivered or failed; missed ones came too late to send.",
            "inputSchema": object_schema(notifications, &[]),
            "annotations": read_only,
        },
        {
            "name": "get_task_history",
            "title": "Task history",
            "description": "Everything that happened to a task, in order: created, updated, completed, reminders, with who did it and the task as it was.",
            "inputSchema": object_schema(id_property(), &["id"]),
            "annotations": read_only,
        },
    ])
}
