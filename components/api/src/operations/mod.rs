//! The operation layer: every operation of the API is one entry of
//! [`OPERATIONS`] with one handler over typed domain calls. REST routes and
//! MCP tools are adapters that only gather the operation's [`Args`]: REST
//! from the path, query string and JSON body; MCP from the tool arguments,
//! split by where the OpenAPI document puts each parameter. The MCP input
//! and output schemas are derived from that same document (see
//! [`crate::schemas`]), so the three cannot drift apart.

//! The operation layer: every operation of the API is one entry of
//! [`OPERATIONS`] with one input type. REST routes and MCP tools are
//! adapters that gather the arguments into one JSON object (REST from the
//! path, the query string and the body; MCP from the tool arguments, as
//! they are) and decode it into that type, a serde struct with
//! `deny_unknown_fields`, which then runs. The MCP input and output
//! schemas are derived from the OpenAPI document (see [`crate::schemas`]);
//! a test holds each input type's fields to its tool's schema.

mod records;
mod tasks;

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value as Json};
use todo_domain::model::decode::{decode, field_names};
use todo_domain::TaskStore;

use crate::http::ApiError;
use crate::router::{Endpoint, ROUTES};
use crate::Context;

use records::{AuditTrail, ListNotifications, ReadNotification, SyncPoll, TaskHistory};
use tasks::{
    AssignTask, ClearReminder, CompleteTask, CreateTask, DeleteTask, GetMe, GetTask, ListTasks,
    QuickAdd, ReopenTask, SetReminder, ShareTask, UnshareTask, UpdateMe, UpdateTask,
};

/// An operation's input: decoded from the arguments, then run for `user`.
pub trait Input: DeserializeOwned {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError>;
}

/// Decodes the arguments into an input type and runs it.
type Run = fn(&Context<'_>, &str, Map<String, Json>) -> Result<Reply, ApiError>;

/// An input type, as the table holds it.
pub struct Call {
    run: Run,
    /// The fields the input takes (for the tests that hold it to the
    /// OpenAPI document).
    pub fields: fn() -> &'static [&'static str],
}

impl Call {
    pub const fn of<I: Input>() -> Call {
        Call {
            run: decode_and_run::<I>,
            fields: field_names::<I>,
        }
    }
}

fn decode_and_run<I: Input>(
    ctx: &Context<'_>,
    user: &str,
    arguments: Map<String, Json>,
) -> Result<Reply, ApiError> {
    decode::<I>(arguments)?.run(ctx, user)
}

/// What an operation answers: the REST status and the JSON both adapters
/// return (a 204 sends no body over REST; MCP still gets the JSON).
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    pub(crate) fn ok(body: Json) -> Reply {
        Reply { status: 200, body }
    }

    pub(crate) fn task(status: u16, task: todo_domain::Task) -> Reply {
        Reply {
            status,
            body: task.to_json(),
        }
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
    /// Takes query parameters (REST reads the query string into the
    /// arguments; elsewhere it is ignored).
    pub takes_query: bool,
    pub call: Call,
    /// `None` where a chat client has no use for it (long-poll, streams).
    pub tool: Option<Tool>,
}

impl Operation {
    /// Whose write locks this operation's transaction takes (on Postgres a
    /// write locks owners, not the whole store: see `transaction_for`):
    /// the caller's (their quota, idempotency keys and tasks) and, when it
    /// names a task (`id`), that task's owner's: someone else for a task
    /// shared with the caller, whose version and events (keyed by owner)
    /// it changes.
    pub fn owners(
        &self,
        ctx: &Context<'_>,
        user: &str,
        arguments: &Map<String, Json>,
    ) -> Result<Vec<String>, ApiError> {
        let mut owners = vec![user.to_owned()];
        if let Some(id) = arguments.get("id").and_then(Json::as_str) {
            owners.extend(TaskStore::migrated(ctx.db).owner_of(id)?);
        }
        Ok(owners)
    }

    /// Runs the handler. A 404 names the path parameter it was about, so a
    /// tool error tells the model which argument to fix.
    pub fn run(
        &self,
        ctx: &Context<'_>,
        user: &str,
        arguments: Map<String, Json>,
    ) -> Result<Reply, ApiError> {
        (self.call.run)(ctx, user, arguments).map_err(|error| match self.path_parameters().next() {
            Some(name) if error.status == 404 && error.field.is_none() => error.with_field(name),
            _ => error,
        })
    }

    /// The names of the route's `{…}` segments, in order.
    pub fn path_parameters(&self) -> impl Iterator<Item = &'static str> {
        ROUTES
            .iter()
            .find(|r| r.endpoint == self.endpoint)
            .map(|r| r.path)
            .unwrap_or_default()
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
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

pub(crate) fn store<'a>(ctx: &'a Context<'_>) -> Result<TaskStore<'a>, ApiError> {
    Ok(TaskStore::migrated(ctx.db).with_limits(ctx.config.limits))
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
        takes_query: false,
        call: Call::of::<CreateTask>(),
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
        takes_query: false,
        call: Call::of::<QuickAdd>(),
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
        takes_query: true,
        call: Call::of::<ListTasks>(),
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
        takes_query: false,
        call: Call::of::<GetTask>(),
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
        takes_query: false,
        call: Call::of::<UpdateTask>(),
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
        takes_query: false,
        call: Call::of::<CompleteTask>(),
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
        takes_query: false,
        call: Call::of::<ReopenTask>(),
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
        takes_query: false,
        call: Call::of::<DeleteTask>(),
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
        takes_query: false,
        call: Call::of::<SetReminder>(),
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
        takes_query: false,
        call: Call::of::<ClearReminder>(),
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
        takes_query: false,
        call: Call::of::<ShareTask>(),
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
        takes_query: false,
        call: Call::of::<UnshareTask>(),
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
        takes_query: false,
        call: Call::of::<AssignTask>(),
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
        takes_query: true,
        call: Call::of::<TaskHistory>(),
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
        takes_query: true,
        call: Call::of::<AuditTrail>(),
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
        takes_query: true,
        call: Call::of::<ListNotifications>(),
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
        takes_query: false,
        call: Call::of::<ReadNotification>(),
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
        takes_query: false,
        call: Call::of::<GetMe>(),
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
        takes_query: false,
        call: Call::of::<UpdateMe>(),
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
        takes_query: true,
        call: Call::of::<SyncPoll>(),
        tool: None,
    },
];
