//! Task operations: one input type each, decoded from REST or MCP
//! arguments alike, and what it does.

use serde::Deserialize;
use serde_json::json;
use todo_domain::model::decode::{nullable, nullable_whole, present};
use todo_domain::model::input::{TaskChange, TaskFields};
use todo_domain::store::query::ListParams;
use todo_domain::{quick_add, DomainError, ListQuery, TaskPatch};

use super::{store, Input, Reply};
use crate::http::ApiError;
use crate::Context;

/// The task an action addresses.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    pub id: String,
}

/// `createTask` / `add_task`: the new task's fields.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct CreateTask(TaskFields);

impl Input for CreateTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let patch = self.0.into_patch()?;
        Ok(Reply::task(201, store(ctx)?.create(user, &patch, ctx.now)?))
    }
}

/// `updateTask` / `update_task`: the task and the fields to change.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct UpdateTask(TaskChange);

impl Input for UpdateTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let (id, fields) = self.0.split();
        let patch = fields.into_patch()?;
        Ok(Reply::task(
            200,
            store(ctx)?.update(user, &id, &patch, ctx.now)?,
        ))
    }
}

/// `listTasks` / `list_tasks`: filters, sort and page.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ListTasks(ListParams);

impl Input for ListTasks {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let query = ListQuery::from_params(self.0)?;
        let page = store(ctx)?.list(user, &query, ctx.now)?;
        Ok(Reply::ok(json!({
            "tasks": page.tasks.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
        })))
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
pub struct GetTask(TaskRef);

impl Input for GetTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        Ok(Reply::task(200, store(ctx)?.require(user, &self.0.id)?))
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
pub struct DeleteTask(TaskRef);

impl Input for DeleteTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let deleted = store(ctx)?.delete(user, &self.0.id, ctx.now)?;
        Ok(Reply {
            status: 204,
            body: json!({"deleted": true, "id": deleted.id, "title": deleted.title}),
        })
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
pub struct CompleteTask(TaskRef);

impl Input for CompleteTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        Ok(Reply::task(
            200,
            store(ctx)?.complete(user, &self.0.id, ctx.now)?,
        ))
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
pub struct ReopenTask(TaskRef);

impl Input for ReopenTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        Ok(Reply::task(
            200,
            store(ctx)?.reopen(user, &self.0.id, ctx.now)?,
        ))
    }
}

/// `setReminder` / `set_reminder`: when (`remind_at`, or
/// `remind_before_minutes` before the due date) and how.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetReminder {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    remind_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable_whole")]
    remind_before_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    notification_type: Option<todo_domain::NotificationType>,
}

impl Input for SetReminder {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let patch = TaskFields {
            remind_at: self.remind_at,
            remind_before_minutes: self.remind_before_minutes,
            notification_type: self.notification_type,
            ..TaskFields::default()
        }
        .into_patch()?;
        let when_given = matches!(patch.remind_at, Some(Some(_)))
            || matches!(patch.remind_before_minutes, Some(Some(_)));
        if !when_given {
            return Err(DomainError::invalid(
                "remind_at",
                "give remind_at (an RFC 3339 time) or remind_before_minutes (minutes before the due date)",
            )
            .into());
        }
        Ok(Reply::task(
            200,
            store(ctx)?.update(user, &self.id, &patch, ctx.now)?,
        ))
    }
}

#[derive(Deserialize)]
#[serde(transparent)]
pub struct ClearReminder(TaskRef);

impl Input for ClearReminder {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let patch = TaskPatch {
            remind_at: Some(None),
            ..TaskPatch::default()
        };
        Ok(Reply::task(
            200,
            store(ctx)?.update(user, &self.0.id, &patch, ctx.now)?,
        ))
    }
}

/// `shareTask` / `share_task`. User ids are taken literally: the OpenAPI
/// pattern is the whole rule, and a JWT `sub` is not trimmed either.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareTask {
    id: String,
    user_id: String,
}

impl Input for ShareTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        Ok(Reply::task(
            200,
            store(ctx)?.share(user, &self.id, &self.user_id, ctx.now)?,
        ))
    }
}

/// `unshareTask` / `unshare_task`: the collaborator to remove, or `me`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnshareTask {
    id: String,
    user: String,
}

impl Input for UnshareTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let (id, with) = (self.id, self.user);
        if with.is_empty() {
            return Err(
                DomainError::invalid("user", "give the collaborator to remove, or `me`").into(),
            );
        }
        // One's own id, or `me` from a recipient: declining the share. To
        // the owner, who cannot decline their own task, `me` is the
        // collaborator whose id is literally `me`.
        let declines =
            with == user || (with == "me" && store(ctx)?.require(user, &id)?.user_id != user);
        if declines {
            store(ctx)?.leave(user, &id, ctx.now)?;
            return Ok(Reply {
                status: 204,
                body: json!({"left": true, "id": id}),
            });
        }
        Ok(Reply::task(
            200,
            store(ctx)?.unshare(user, &id, &with, ctx.now)?,
        ))
    }
}

/// `assignTask` / `assign_task`: `assignee` is required; `null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignTask {
    id: String,
    #[serde(deserialize_with = "nullable")]
    assignee: Option<Option<String>>,
}

impl Input for AssignTask {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let assignee = self.assignee.flatten();
        Ok(Reply::task(
            200,
            store(ctx)?.assign(user, &self.id, assignee.as_deref(), ctx.now)?,
        ))
    }
}

/// `getMe` / `get_profile`: no arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMe {}

impl Input for GetMe {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        me(ctx, user)
    }
}

/// `updateMe` / `set_time_zone`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    time_zone: String,
}

impl Input for UpdateMe {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        store(ctx)?.set_user_time_zone(user, &self.time_zone, ctx.now)?;
        me(ctx, user)
    }
}

/// The caller's settings.
fn me(ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
    let zone = store(ctx)?
        .user_time_zone(user)?
        .unwrap_or_else(|| todo_domain::model::DEFAULT_TIME_ZONE.to_owned());
    Ok(Reply::ok(json!({"user_id": user, "time_zone": zone})))
}

/// `quickAdd` / `quick_add`: one line of English to a task, in the zone
/// the request names, else the user's, else UTC. `time_zone` may be left
/// out but not `null` (the schema says so).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickAdd {
    text: String,
    #[serde(default, deserialize_with = "present")]
    time_zone: Option<String>,
}

impl Input for QuickAdd {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let store = store(ctx)?;
        let zone_name = match self.time_zone {
            Some(zone) => zone,
            None => store
                .user_time_zone(user)?
                .unwrap_or_else(|| todo_domain::model::DEFAULT_TIME_ZONE.to_owned()),
        };
        let zone = quick_add::zone("time_zone", &zone_name)?;
        let parsed = quick_add::parse(&self.text, zone, ctx.now)?;
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
}
