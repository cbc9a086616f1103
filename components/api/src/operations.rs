//! The operation layer: every operation of the API is one entry of
//! [`OPERATIONS`] with one handler over typed domain calls. REST routes and
//! MCP tools are adapters that only gather the operation's [`Args`]: REST
//! from the path, query string and JSON body; MCP from the tool arguments,
//! split by where the OpenAPI document puts each parameter. The MCP input
//! and output schemas are derived from that same document (see
//! [`crate::schemas`]), so the three cannot drift apart.

use serde_json::{json, Map, Value as Json};
use todo_domain::{quick_add, DomainError, ListQuery, TaskPatch, TaskStore};

use crate::http::ApiError;
use crate::router::Endpoint;
use crate::{request_parts, services, Context};

/// An operation's input, wherever it came from.
#[derive(Debug, Default, Clone)]
pub struct Args {
    /// Path parameters by name (`id`, `user`).
    pub path: Vec<(String, String)>,
    /// Query parameters, as a query string would carry them.
    pub query: Vec<(String, String)>,
    /// The JSON body's fields (empty when there is none).
    pub body: Map<String, Json>,
}

impl Args {
    fn path(&self, name: &str) -> String {
        self.path
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn id(&self) -> Result<String, ApiError> {
        let id = self.path("id");
        if id.is_empty() {
            return Err(DomainError::invalid(
                "id",
                "give the task's id (a string from add_task or list_tasks)",
            )
            .into());
        }
        Ok(id)
    }

    /// Operations without a body take none (or an empty object).
    fn no_body(&self) -> Result<(), ApiError> {
        match self.body.keys().next() {
            None => Ok(()),
            Some(key) => Err(ApiError::new(
                400,
                "bad_request",
                format!("unknown field `{key}`; this operation takes no such field"),
            )
            .with_field(key.clone())),
        }
    }
}

/// What an operation answers: the REST status and the JSON both adapters
/// return (a 204 sends no body over REST; MCP still gets the JSON).
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    fn ok(body: Json) -> Reply {
        Reply { status: 200, body }
    }
}

/// MCP tool hints (they describe the operation, not a guarantee).
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

const READ: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
};
const WRITE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: true,
};
const CREATE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
};
const DESTROY: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: true,
};

/// The MCP face of an operation.
pub struct Tool {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub hints: Hints,
    /// Output schema when the REST answer has no body (204).
    pub output: Option<fn() -> Json>,
}

pub type Handler = fn(&Context<'_>, &str, &Args) -> Result<Reply, ApiError>;

pub struct Operation {
    /// The OpenAPI `operationId`.
    pub id: &'static str,
    pub endpoint: Endpoint,
    /// Changes state: run in one transaction (with `Idempotency-Key` on
    /// REST POSTs).
    pub writes: bool,
    /// Takes a JSON body (the OpenAPI `requestBody`; a test checks they
    /// agree), so REST need not read the document on every request.
    pub takes_body: bool,
    pub handler: Handler,
    /// `None` where a chat client has no use for it (long-poll, streams).
    pub tool: Option<Tool>,
}

impl Operation {
    /// Runs the handler. A 404 names the path parameter it was about, so a
    /// tool error tells the model which argument to fix.
    pub fn run(&self, ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
        (self.handler)(ctx, user, args).map_err(|error| match args.path.first() {
            Some((name, _)) if error.status == 404 && error.field.is_none() => {
                error.with_field(name.clone())
            }
            _ => error,
        })
    }

    pub fn for_endpoint(endpoint: Endpoint) -> Option<&'static Operation> {
        OPERATIONS.iter().find(|op| op.endpoint == endpoint)
    }

    pub fn for_tool(name: &str) -> Option<&'static Operation> {
        OPERATIONS
            .iter()
            .find(|op| op.tool.as_ref().is_some_and(|t| t.name == name))
    }
}

fn store<'a>(ctx: &'a Context<'_>) -> Result<TaskStore<'a>, ApiError> {
    Ok(TaskStore::open(ctx.db)?.with_limits(ctx.config.limits))
}

fn task_reply(status: u16, task: todo_domain::Task) -> Reply {
    Reply {
        status,
        body: task.to_json(),
    }
}

fn create_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    let patch = TaskPatch::from_json(&args.body)?;
    Ok(task_reply(201, store(ctx)?.create(user, &patch, ctx.now)?))
}

fn list_tasks(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    let query = ListQuery::from_pairs(&args.query)?;
    let page = store(ctx)?.list(user, &query, ctx.now)?;
    Ok(Reply::ok(json!({
        "tasks": page.tasks.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

fn get_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    Ok(task_reply(200, store(ctx)?.require(user, &args.id()?)?))
}

fn update_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    let id = args.id()?;
    let patch = TaskPatch::from_json(&args.body)?;
    Ok(task_reply(
        200,
        store(ctx)?.update(user, &id, &patch, ctx.now)?,
    ))
}

fn delete_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    let deleted = store(ctx)?.delete(user, &args.id()?, ctx.now)?;
    Ok(Reply {
        status: 204,
        body: json!({"deleted": true, "id": deleted.id, "title": deleted.title}),
    })
}

fn complete_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    Ok(task_reply(
        200,
        store(ctx)?.complete(user, &args.id()?, ctx.now)?,
    ))
}

fn reopen_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    Ok(task_reply(
        200,
        store(ctx)?.reopen(user, &args.id()?, ctx.now)?,
    ))
}

fn set_reminder(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    let id = args.id()?;
    let patch = request_parts::reminder_patch(&args.body, &[])?;
    Ok(task_reply(
        200,
        store(ctx)?.update(user, &id, &patch, ctx.now)?,
    ))
}

fn clear_reminder(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    let patch = TaskPatch {
        remind_at: Some(None),
        ..TaskPatch::default()
    };
    Ok(task_reply(
        200,
        store(ctx)?.update(user, &args.id()?, &patch, ctx.now)?,
    ))
}

fn share_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    let id = args.id()?;
    let with = services::user_field(&args.body, "user_id", false)?.unwrap_or_default();
    Ok(task_reply(
        200,
        store(ctx)?.share(user, &id, &with, ctx.now)?,
    ))
}

fn unshare_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    let id = args.id()?;
    let with = args.path("user");
    if with.is_empty() {
        return Err(
            DomainError::invalid("user", "give the collaborator to remove, or `me`").into(),
        );
    }
    // One's own id, or `me` from a recipient: declining the share. To the
    // owner, who cannot decline their own task, `me` is the collaborator
    // whose id is literally `me`.
    let declines =
        with == user || (with == "me" && store(ctx)?.require(user, &id)?.user_id != user);
    if declines {
        store(ctx)?.leave(user, &id, ctx.now)?;
        return Ok(Reply {
            status: 204,
            body: json!({"left": true, "id": id}),
        });
    }
    Ok(task_reply(
        200,
        store(ctx)?.unshare(user, &id, &with, ctx.now)?,
    ))
}

fn assign_task(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    let id = args.id()?;
    let assignee = services::user_field(&args.body, "assignee", true)?;
    Ok(task_reply(
        200,
        store(ctx)?.assign(user, &id, assignee.as_deref(), ctx.now)?,
    ))
}

fn task_history(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    services::task_history(ctx, &args.query, user, &args.id()?).map(Reply::ok)
}

fn audit_trail(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    services::audit_trail(ctx, &args.query, user).map(Reply::ok)
}

fn list_notifications(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    services::list_notifications(ctx, &args.query, user).map(Reply::ok)
}

fn read_notification(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    let id = args.path("id");
    services::read_notification(ctx, user, &id).map(Reply::ok)
}

fn sync_poll(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    services::sync_poll(ctx, &args.query, user).map(Reply::ok)
}

/// The caller's settings.
fn me_json(ctx: &Context<'_>, user: &str) -> Result<Json, ApiError> {
    let zone = store(ctx)?
        .user_time_zone(user)?
        .unwrap_or_else(|| todo_domain::model::DEFAULT_TIME_ZONE.to_owned());
    Ok(json!({"user_id": user, "time_zone": zone}))
}

fn get_me(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    args.no_body()?;
    me_json(ctx, user).map(Reply::ok)
}

fn update_me(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    only_fields(&args.body, &["time_zone"])?;
    let zone = required_text(&args.body, "time_zone")?;
    store(ctx)?.set_user_time_zone(user, &zone, ctx.now)?;
    me_json(ctx, user).map(Reply::ok)
}

fn only_fields(body: &Map<String, Json>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ApiError::new(
            400,
            "bad_request",
            format!(
                "unknown field `{key}`; this operation takes {}",
                allowed.join(", ")
            ),
        )
        .with_field(key.clone())),
        None => Ok(()),
    }
}

fn required_text(body: &Map<String, Json>, field: &str) -> Result<String, ApiError> {
    match body.get(field) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err(DomainError::invalid(field, "must be a string").into()),
        None => Err(DomainError::invalid(field, "is required").into()),
    }
}

/// `POST /api/tasks/quick`: one line of English to a task, in the zone the
/// request names, else the user's, else UTC.
fn quick_add(ctx: &Context<'_>, user: &str, args: &Args) -> Result<Reply, ApiError> {
    only_fields(&args.body, &["text", "time_zone"])?;
    let text = required_text(&args.body, "text")?;
    let store = store(ctx)?;
    let zone_name = match args.body.get("time_zone") {
        // Absent means the user's zone; null is not a zone (the schema says so).
        None => store
            .user_time_zone(user)?
            .unwrap_or_else(|| todo_domain::model::DEFAULT_TIME_ZONE.to_owned()),
        Some(_) => required_text(&args.body, "time_zone")?,
    };
    let zone = quick_add::zone("time_zone", &zone_name)?;
    let parsed = quick_add::parse(&text, zone, ctx.now)?;
    let mut fields = parsed.fields.clone();
    fields.insert("time_zone".into(), json!(zone_name));
    let task = store.create(user, &TaskPatch::from_json(&fields)?, ctx.now)?;
    Ok(Reply {
        status: 201,
        body: json!({
            "task": task.to_json(),
            "understood": parsed.spans.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
        }),
    })
}

fn deleted_output() -> Json {
    json!({
        "type": "object",
        "required": ["deleted", "id", "title"],
        "properties": {
            "deleted": {"const": true},
            "id": {"type": "string"},
            "title": {"type": "string"},
        },
    })
}

fn unshare_output() -> Json {
    let task = crate::schemas::component("Task");
    json!({
        "type": "object",
        "description": "The task without the collaborator, or `left: true` when the caller declined a share (`user` = `me`).",
        "anyOf": [
            task,
            {
                "type": "object",
                "required": ["left", "id"],
                "properties": {"left": {"const": true}, "id": {"type": "string"}},
            },
        ],
    })
}

/// Every operation, in the order tools are listed.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        id: "createTask",
        endpoint: Endpoint::CreateTask,
        writes: true,
        takes_body: true,
        handler: create_task,
        tool: Some(Tool {
            name: "add_task",
            title: "Add a task",
            description: "Create a task on the user's todo list. Times are RFC 3339 with an offset. Returns the task with its id.",
            hints: CREATE,
            output: None,
        }),
    },
    Operation {
        id: "quickAdd",
        endpoint: Endpoint::QuickAdd,
        writes: true,
        takes_body: true,
        handler: quick_add,
        tool: Some(Tool {
            name: "quick_add",
            title: "Quick add",
            description: "Create a task from one line of English as the user typed it, e.g. \"pay rent on the 1st every month 9am remind me the day before #home p1\": dates and times (in the user's time zone), priority p1-p4, #tags, recurrence, reminders. Returns the task and the phrases understood; anything ambiguous stays in the title.",
            hints: CREATE,
            output: None,
        }),
    },
    Operation {
        id: "listTasks",
        endpoint: Endpoint::ListTasks,
        writes: false,
        takes_body: false,
        handler: list_tasks,
        tool: Some(Tool {
            name: "list_tasks",
            title: "List tasks",
            description: "List the user's tasks (own and shared) with optional filters. Returns tasks and next_cursor (null on the last page); pass next_cursor back with the same sort and order.",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "getTask",
        endpoint: Endpoint::GetTask,
        writes: false,
        takes_body: false,
        handler: get_task,
        tool: Some(Tool {
            name: "get_task",
            title: "Get a task",
            description: "Fetch one task by id.",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "updateTask",
        endpoint: Endpoint::UpdateTask,
        writes: true,
        takes_body: true,
        handler: update_task,
        tool: Some(Tool {
            name: "update_task",
            title: "Update a task",
            description: "Change some fields of a task; fields not given stay as they are, null clears a field.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "completeTask",
        endpoint: Endpoint::CompleteTask,
        writes: true,
        takes_body: false,
        handler: complete_task,
        tool: Some(Tool {
            name: "complete_task",
            title: "Complete a task",
            description: "Mark a task completed. Completing a recurring task schedules its next occurrence. Completing twice is harmless.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "reopenTask",
        endpoint: Endpoint::ReopenTask,
        writes: true,
        takes_body: false,
        handler: reopen_task,
        tool: Some(Tool {
            name: "reopen_task",
            title: "Reopen a task",
            description: "Mark a completed task pending again.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "deleteTask",
        endpoint: Endpoint::DeleteTask,
        writes: true,
        takes_body: false,
        handler: delete_task,
        tool: Some(Tool {
            name: "delete_task",
            title: "Delete a task",
            description: "Delete a task for good, cancelling its reminder and stopping its recurrence. Its record stays in the audit trail.",
            hints: DESTROY,
            output: Some(deleted_output),
        }),
    },
    Operation {
        id: "setReminder",
        endpoint: Endpoint::SetReminder,
        writes: true,
        takes_body: true,
        handler: set_reminder,
        tool: Some(Tool {
            name: "set_reminder",
            title: "Set a reminder",
            description: "Remind the user about a task at remind_at, or remind_before_minutes before its due date, by notification_type.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "clearReminder",
        endpoint: Endpoint::ClearReminder,
        writes: true,
        takes_body: false,
        handler: clear_reminder,
        tool: Some(Tool {
            name: "clear_reminder",
            title: "Clear a reminder",
            description: "Remove a task's reminder.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "shareTask",
        endpoint: Endpoint::ShareTask,
        writes: true,
        takes_body: true,
        handler: share_task,
        tool: Some(Tool {
            name: "share_task",
            title: "Share a task",
            description: "Share one of the user's own tasks with another user, who can then see and change it (not delete or share it).",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "unshareTask",
        endpoint: Endpoint::UnshareTask,
        writes: true,
        takes_body: false,
        handler: unshare_task,
        tool: Some(Tool {
            name: "unshare_task",
            title: "Stop sharing a task",
            description: "Remove a collaborator from the user's task, or with user `me` decline a task shared with the user.",
            hints: DESTROY,
            output: Some(unshare_output),
        }),
    },
    Operation {
        id: "assignTask",
        endpoint: Endpoint::AssignTask,
        writes: true,
        takes_body: true,
        handler: assign_task,
        tool: Some(Tool {
            name: "assign_task",
            title: "Assign a task",
            description: "Assign one of the user's tasks to someone (sharing it with them first if needed); null clears the assignee.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "taskHistory",
        endpoint: Endpoint::TaskHistory,
        writes: false,
        takes_body: false,
        handler: task_history,
        tool: Some(Tool {
            name: "get_task_history",
            title: "Task history",
            description: "Everything that happened to a task, in order: created, updated, completed, reminders, with who did it and the task as it was. Paged: pass next_cursor back as cursor for more.",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "auditTrail",
        endpoint: Endpoint::AuditTrail,
        writes: false,
        takes_body: false,
        handler: audit_trail,
        tool: Some(Tool {
            name: "get_audit_trail",
            title: "Audit trail",
            description: "The user's audit trail, newest first: changes to their tasks and changes they made, also for deleted tasks (filter with task_id).",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "listNotifications",
        endpoint: Endpoint::ListNotifications,
        writes: false,
        takes_body: false,
        handler: list_notifications,
        tool: Some(Tool {
            name: "list_notifications",
            title: "List notifications",
            description: "The user's reminders that have fired, newest first: in-app ones are unread/read; email, sms and push ones pending, delivered or failed; missed ones came too late to send.",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "readNotification",
        endpoint: Endpoint::ReadNotification,
        writes: true,
        takes_body: false,
        handler: read_notification,
        tool: Some(Tool {
            name: "mark_notification_read",
            title: "Mark a notification read",
            description: "Mark one in-app notification read (notification_id from list_notifications).",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "getMe",
        endpoint: Endpoint::GetMe,
        writes: false,
        takes_body: false,
        handler: get_me,
        tool: Some(Tool {
            name: "get_profile",
            title: "Get the user's settings",
            description: "The user's id and time zone (the zone new tasks and Quick Add use).",
            hints: READ,
            output: None,
        }),
    },
    Operation {
        id: "updateMe",
        endpoint: Endpoint::UpdateMe,
        writes: true,
        takes_body: true,
        handler: update_me,
        tool: Some(Tool {
            name: "set_time_zone",
            title: "Set the user's time zone",
            description: "Set the user's IANA time zone (e.g. Europe/Berlin). New tasks and Quick Add use it; a recurring task keeps its local time across DST changes.",
            hints: WRITE,
            output: None,
        }),
    },
    Operation {
        id: "syncPoll",
        endpoint: Endpoint::SyncPoll,
        writes: false,
        takes_body: false,
        handler: sync_poll,
        tool: None,
    },
];
