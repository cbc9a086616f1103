//! Operations over what the event services record: a task's history and
//! the audit trail (audit), notifications (reminders), the change feed as a
//! long-poll (sync). Their arguments are query parameters on REST.

use serde::Deserialize;
use todo_domain::model::decode::query;

use super::{Input, Reply};
use crate::http::ApiError;
use crate::{services, Context};

/// `taskHistory` / `get_task_history`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskHistory {
    id: String,
    #[serde(default, deserialize_with = "query::whole")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "query::text")]
    cursor: Option<String>,
}

impl Input for TaskHistory {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let limit = services::limit(self.limit, 50)?;
        services::task_history(ctx, user, &self.id, limit, self.cursor.as_deref()).map(Reply::ok)
    }
}

/// `auditTrail` / `get_audit_trail`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTrail {
    #[serde(default, deserialize_with = "query::whole")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "query::text")]
    cursor: Option<String>,
    #[serde(default, deserialize_with = "query::text")]
    task_id: Option<String>,
}

impl Input for AuditTrail {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let limit = services::limit(self.limit, 50)?;
        let before = self
            .cursor
            .as_deref()
            .map(|c| services::parse_sequence("cursor", c))
            .transpose()?;
        services::audit_trail(ctx, user, self.task_id.as_deref(), limit, before).map(Reply::ok)
    }
}

/// `listNotifications` / `list_notifications`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListNotifications {
    #[serde(default, deserialize_with = "query::flag")]
    unread: Option<bool>,
    #[serde(default, deserialize_with = "query::whole")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "query::text")]
    cursor: Option<String>,
}

impl Input for ListNotifications {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let limit = services::limit(self.limit, 20)?;
        let unread = self.unread.unwrap_or(false);
        services::list_notifications(ctx, user, unread, limit, self.cursor.as_deref())
            .map(Reply::ok)
    }
}

/// `readNotification` / `mark_notification_read`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadNotification {
    id: String,
}

impl Input for ReadNotification {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        services::read_notification(ctx, user, &self.id).map(Reply::ok)
    }
}

/// `syncPoll` (REST only: a long-poll is no tool).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPoll {
    #[serde(default, deserialize_with = "query::text")]
    since: Option<String>,
    #[serde(default, deserialize_with = "query::whole")]
    wait: Option<i64>,
    #[serde(default, deserialize_with = "query::whole")]
    limit: Option<i64>,
}

impl Input for SyncPoll {
    fn run(self, ctx: &Context<'_>, user: &str) -> Result<Reply, ApiError> {
        let limit = services::limit(self.limit, 100)?;
        let wait = services::seconds("wait", self.wait, 25, services::MAX_WAIT_SECS)?;
        let since = self
            .since
            .as_deref()
            .map(|s| services::parse_cursor("since", s))
            .transpose()?;
        services::sync_poll(ctx, user, since, wait, limit).map(Reply::ok)
    }
}
