//! The task store: every read is scoped to one user, and every write stores
//! the task and its outbox events together. Writes expect the caller to hold
//! a transaction (see [`crate::store::sql::transaction`]) so that a request's task
//! row, outbox rows and idempotency record commit or roll back as one.

pub mod idempotency;
pub mod migrations;
#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "native")]
pub mod native_pg;
pub mod postgres;
pub mod query;
#[cfg(feature = "spin")]
pub mod spin;
#[cfg(feature = "spin")]
pub mod spin_pg;
pub mod sql;

use crate::error::{DomainError, Result};
use crate::events;
use crate::events::outbox;
use crate::model::change;
use crate::model::input::TaskPatch;
use crate::model::{NotificationType, Priority, Status, Task};
use crate::store::query::{ListQuery, Page};
use crate::store::sql::{Dialect, Row, Sql, Value};
use crate::time::{self, Timestamp};

/// Columns written from a task, in [`row_values`] order after `id`.
const COLUMNS: &str = "id, user_id, title, description, status, priority, due_ms, tags, \
    recurrence_pattern, remind_ms, remind_before_minutes, notification_type, series_id, \
    series_start_ms, occurrence, created_ms, updated_ms, completed_ms, version, assignee, time_zone";

/// Columns read into a task: the written ones and the users it is shared
/// with (a JSON array, `[]` for none, in each dialect's JSON functions).
fn select(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "id, user_id, title, description, status, priority, due_ms, tags, \
            recurrence_pattern, remind_ms, remind_before_minutes, notification_type, series_id, \
            series_start_ms, occurrence, created_ms, updated_ms, completed_ms, version, assignee, time_zone, \
            (SELECT json_group_array(s.user_id) FROM task_shares s WHERE s.task_id = tasks.id) AS shared_with",
        Dialect::Postgres => "id, user_id, title, description, status, priority, due_ms, tags, \
            recurrence_pattern, remind_ms, remind_before_minutes, notification_type, series_id, \
            series_start_ms, occurrence, created_ms, updated_ms, completed_ms, version, assignee, time_zone, \
            (SELECT COALESCE(json_agg(s.user_id ORDER BY s.user_id), '[]'::json)::text \
             FROM task_shares s WHERE s.task_id = tasks.id) AS shared_with",
    }
}

/// Per-user and per-task limits. Past them a write is refused with
/// `quota_exceeded` (HTTP 422) naming the limit; the services' own writes
/// (the next instance of a recurring series) are not counted against them,
/// so a series never silently stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Tasks one user may own, completed ones included.
    pub tasks_per_user: u32,
    /// Users one task may be shared with. Also bounds the size of a task's
    /// events, which carry the share list.
    pub shares_per_task: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tasks_per_user: 10_000,
            shares_per_task: 100,
        }
    }
}

/// Tasks a user may see: their own and those shared with them (two `?`).
const VISIBLE: &str = "(user_id = ? OR EXISTS (SELECT 1 FROM task_shares s WHERE s.task_id = tasks.id AND s.user_id = ?))";

pub struct TaskStore<'a> {
    db: &'a dyn Sql,
    limits: Limits,
}

impl<'a> TaskStore<'a> {
    /// Opens the store, migrating the schema on first use.
    pub fn open(db: &'a dyn Sql) -> Result<Self> {
        crate::store::migrations::apply(db, &crate::store::migrations::TASKS_DB)?;
        Ok(TaskStore {
            db,
            limits: Limits::default(),
        })
    }

    /// The store of a database that [`TaskStore::open`] has migrated
    /// already (a request's admission, a handler's start): no schema check,
    /// so it costs nothing and may be called inside a transaction.
    pub fn migrated(db: &'a dyn Sql) -> Self {
        TaskStore {
            db,
            limits: Limits::default(),
        }
    }

    /// Who owns task `id`, whoever asks: what a write to it must lock (see
    /// [`crate::store::sql::transaction_for`]). Owners never change, so
    /// this is read before the transaction.
    pub fn owner_of(&self, id: &str) -> Result<Option<String>> {
        let rows = self
            .db
            .execute("SELECT user_id FROM tasks WHERE id = ?", &[Value::from(id)])?;
        Ok(match rows.first() {
            Some(row) => Some(row.str("user_id")?.to_owned()),
            None => None,
        })
    }

    /// The same store with other limits.
    pub fn with_limits(self, limits: Limits) -> Self {
        TaskStore { limits, ..self }
    }

    /// The zone a user chose (`PUT /api/me`), if any.
    pub fn user_time_zone(&self, user_id: &str) -> Result<Option<String>> {
        let rows = self.db.execute(
            "SELECT time_zone FROM user_settings WHERE user_id = ?",
            &[Value::from(user_id)],
        )?;
        Ok(match rows.first() {
            Some(row) => Some(row.str("time_zone")?.to_owned()),
            None => None,
        })
    }

    /// Sets the zone new tasks of the user get (existing tasks keep theirs).
    pub fn set_user_time_zone(&self, user_id: &str, zone: &str, now: Timestamp) -> Result<()> {
        crate::quick_add::zone("time_zone", zone)?;
        self.db.execute(
            "INSERT INTO user_settings (user_id, time_zone, updated_ms) VALUES (?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET time_zone = excluded.time_zone, updated_ms = excluded.updated_ms",
            &[
                Value::from(user_id),
                Value::from(zone),
                Value::Integer(time::to_millis(&now)),
            ],
        )?;
        Ok(())
    }

    pub fn db(&self) -> &'a dyn Sql {
        self.db
    }

    pub fn get(&self, user_id: &str, id: &str) -> Result<Option<Task>> {
        let rows = self.db.execute(
            &format!(
                "SELECT {} FROM tasks WHERE id = ? AND {VISIBLE}",
                select(self.db.dialect())
            ),
            &[Value::from(id), Value::from(user_id), Value::from(user_id)],
        )?;
        rows.first().map(task_from_row).transpose()
    }

    /// The task, or `NotFound` (also for another user's task).
    pub fn require(&self, user_id: &str, id: &str) -> Result<Task> {
        self.get(user_id, id)?
            .ok_or_else(|| DomainError::task_not_found(id))
    }

    /// One page of the tasks a user sees. Two halves merged in sort order:
    /// the user's own tasks, read in order from a per-user index and
    /// stopping after a page; and the tasks shared with them. Neither reads
    /// another user's rows, so a list costs the same however much other
    /// tenants hold (`OR EXISTS (shares)` in one WHERE made SQLite scan and
    /// sort the whole table).
    pub fn list(&self, user_id: &str, query: &ListQuery, now: Timestamp) -> Result<Page> {
        let (sql, params) = list_sql(self.db.dialect(), user_id, query, now);
        let rows = self.db.execute(&sql, &params)?;
        let mut tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
        let next_cursor = if tasks.len() > query.limit as usize {
            tasks.truncate(query.limit as usize);
            tasks.last().map(|t| query.cursor_after(t).encode())
        } else {
            None
        };
        Ok(Page { tasks, next_cursor })
    }

    /// SQLite's plan for [`TaskStore::list`] (`EXPLAIN QUERY PLAN`), one
    /// line per step: for checking that a list reads only the caller's rows.
    pub fn list_plan(
        &self,
        user_id: &str,
        query: &ListQuery,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let (sql, params) = list_sql(self.db.dialect(), user_id, query, now);
        let rows = self
            .db
            .execute(&format!("EXPLAIN QUERY PLAN {sql}"), &params)?;
        rows.iter()
            .map(|r| Ok(r.str("detail")?.to_owned()))
            .collect()
    }

    pub fn create(&self, user_id: &str, patch: &TaskPatch, now: Timestamp) -> Result<Task> {
        // A task without its own zone lives in its owner's.
        let mut patch = patch.clone();
        if patch.time_zone.is_none() {
            patch.time_zone = self.user_time_zone(user_id)?;
        }
        let task = change::new_task(user_id, new_id(), &patch, now)?;
        let owned = self
            .db
            .execute(
                "SELECT COUNT(*) AS n FROM tasks WHERE user_id = ?",
                &[Value::from(user_id)],
            )?
            .first()
            .map(|r| r.i64("n"))
            .transpose()?
            .unwrap_or(0);
        let limit = self.limits.tasks_per_user;
        if owned >= i64::from(limit) {
            return Err(DomainError::QuotaExceeded {
                field: None,
                message: format!(
                    "a user may own at most {limit} tasks; delete some (completed ones count too) to add more"
                ),
            });
        }
        self.save(None, Some(&task), now, user_id)?;
        Ok(task)
    }

    pub fn update(
        &self,
        user_id: &str,
        id: &str,
        patch: &TaskPatch,
        now: Timestamp,
    ) -> Result<Task> {
        let old = self.require(user_id, id)?;
        if old.user_id != user_id {
            collaborator_may(&old, patch, now)?;
        }
        let new = change::apply(&old, patch, now)?;
        self.save(Some(&old), Some(&new), now, user_id)?;
        Ok(new)
    }

    /// Completes the task; completing a completed task changes nothing.
    pub fn complete(&self, user_id: &str, id: &str, now: Timestamp) -> Result<Task> {
        let patch = TaskPatch {
            status: Some(Status::Completed),
            ..TaskPatch::default()
        };
        self.update(user_id, id, &patch, now)
    }

    /// Reopens a completed task as `pending`; an open task is left as it is.
    pub fn reopen(&self, user_id: &str, id: &str, now: Timestamp) -> Result<Task> {
        let old = self.require(user_id, id)?;
        if old.status != Status::Completed {
            return Ok(old);
        }
        let patch = TaskPatch {
            status: Some(Status::Pending),
            ..TaskPatch::default()
        };
        self.update(user_id, id, &patch, now)
    }

    /// Deletes the task; only its owner may.
    pub fn delete(&self, user_id: &str, id: &str, now: Timestamp) -> Result<Task> {
        let old = self.require(user_id, id)?;
        owner_only(&old, user_id, "delete")?;
        self.save(Some(&old), None, now, user_id)?;
        Ok(old)
    }

    /// Shares the task with another user (owner only); sharing twice is a no-op.
    pub fn share(&self, user_id: &str, id: &str, with: &str, now: Timestamp) -> Result<Task> {
        let old = self.require(user_id, id)?;
        owner_only(&old, user_id, "share")?;
        crate::model::input::validate_user_id("user_id", with)?;
        if with == old.user_id {
            return Err(DomainError::conflict(
                "user_id",
                "is the task's owner, who already sees it",
            ));
        }
        let mut new = old.clone();
        if !new.shared_with.iter().any(|u| u == with) {
            self.check_share_room(&old, "user_id")?;
            new.shared_with.push(with.to_owned());
        }
        self.save_changed(old, new, now, user_id)
    }

    fn check_share_room(&self, task: &Task, field: &str) -> Result<()> {
        let limit = self.limits.shares_per_task;
        if task.shared_with.len() >= limit as usize {
            return Err(DomainError::QuotaExceeded {
                field: Some(field.to_owned()),
                message: format!("a task may be shared with at most {limit} users"),
            });
        }
        Ok(())
    }

    /// Stops sharing with a user (owner only); they lose the assignment too.
    pub fn unshare(&self, user_id: &str, id: &str, with: &str, now: Timestamp) -> Result<Task> {
        let old = self.require(user_id, id)?;
        owner_only(&old, user_id, "unshare")?;
        let mut new = old.clone();
        new.shared_with.retain(|u| u != with);
        if new.assignee.as_deref() == Some(with) {
            new.assignee = None;
        }
        self.save_changed(old, new, now, user_id)
    }

    /// The caller stops seeing a task someone shared with them (declines
    /// the share); they lose the assignment too. Only the owner can undo it.
    pub fn leave(&self, user_id: &str, id: &str, now: Timestamp) -> Result<Task> {
        let old = self.require(user_id, id)?;
        if old.user_id == user_id {
            return Err(DomainError::invalid(
                "user_id",
                "the owner cannot leave their own task; delete it instead",
            ));
        }
        let mut new = old.clone();
        new.shared_with.retain(|u| u != user_id);
        if new.assignee.as_deref() == Some(user_id) {
            new.assignee = None;
        }
        self.save_changed(old, new, now, user_id)
    }

    /// Assigns the task (owner only); an assignee who could not see the task
    /// is shared with first. `None` clears the assignment.
    pub fn assign(
        &self,
        user_id: &str,
        id: &str,
        assignee: Option<&str>,
        now: Timestamp,
    ) -> Result<Task> {
        let old = self.require(user_id, id)?;
        owner_only(&old, user_id, "assign")?;
        let mut new = old.clone();
        if let Some(assignee) = assignee {
            crate::model::input::validate_user_id("assignee", assignee)?;
            if !new.visible_to(assignee) {
                self.check_share_room(&old, "assignee")?;
                new.shared_with.push(assignee.to_owned());
            }
        }
        new.assignee = assignee.map(str::to_owned);
        self.save_changed(old, new, now, user_id)
    }

    fn save_changed(&self, old: Task, mut new: Task, now: Timestamp, actor: &str) -> Result<Task> {
        if new == old {
            return Ok(old);
        }
        new.version = old.version + 1;
        new.updated_at = now;
        self.save(Some(&old), Some(&new), now, actor)?;
        Ok(new)
    }

    /// Inserts a task built elsewhere (the next instance of a recurring
    /// series) with its events. Returns `false`, writing nothing, when that
    /// series already has this occurrence: redelivered events create nothing.
    pub fn insert_occurrence(&self, task: &Task, now: Timestamp, actor: &str) -> Result<bool> {
        if let Some(series) = &task.series_id {
            let rows = self.db.execute(
                "SELECT 1 AS found FROM tasks WHERE series_id = ? AND occurrence = ?",
                &[
                    Value::from(series.as_str()),
                    Value::Integer(task.occurrence),
                ],
            )?;
            if !rows.is_empty() {
                return Ok(false);
            }
        }
        self.save(None, Some(task), now, actor)?;
        Ok(true)
    }

    /// Writes the new state and its events. No-op when nothing changed.
    fn save(
        &self,
        old: Option<&Task>,
        new: Option<&Task>,
        now: Timestamp,
        actor: &str,
    ) -> Result<()> {
        match (old, new) {
            (Some(old), Some(new)) if old == new => return Ok(()),
            (None, Some(task)) => self.insert_row(task)?,
            (Some(old), Some(new)) => self.update_row(old, new)?,
            (Some(old), None) => {
                self.db.execute(
                    "DELETE FROM tasks WHERE user_id = ? AND id = ?",
                    &[
                        Value::from(old.user_id.as_str()),
                        Value::from(old.id.as_str()),
                    ],
                )?;
            }
            (None, None) => return Ok(()),
        }
        let shares_before = old.map(|t| t.shared_with.as_slice()).unwrap_or_default();
        let shares_after = new.map(|t| t.shared_with.as_slice()).unwrap_or_default();
        if shares_before != shares_after {
            let id = old.or(new).map(|t| t.id.as_str()).unwrap_or_default();
            self.db.execute(
                "DELETE FROM task_shares WHERE task_id = ?",
                &[Value::from(id)],
            )?;
            for user in shares_after {
                self.db.execute(
                    "INSERT INTO task_shares (task_id, user_id) VALUES (?, ?)",
                    &[Value::from(id), Value::from(user.as_str())],
                )?;
            }
        }
        for event in events::for_change(old, new, now, actor) {
            outbox::enqueue(self.db, &event)?;
        }
        Ok(())
    }

    fn insert_row(&self, t: &Task) -> Result<()> {
        let mut params = row_values(t);
        params.insert(0, Value::from(t.id.as_str()));
        self.db.execute(
            &format!(
                "INSERT INTO tasks ({COLUMNS}, priority_rank) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            &params,
        )?;
        Ok(())
    }

    fn update_row(&self, old: &Task, t: &Task) -> Result<()> {
        let mut params = row_values(t);
        params.push(Value::from(t.id.as_str()));
        params.push(Value::Integer(old.version));
        self.db.execute(
            "UPDATE tasks SET user_id = ?, title = ?, description = ?, status = ?, priority = ?, \
             due_ms = ?, tags = ?, recurrence_pattern = ?, remind_ms = ?, remind_before_minutes = ?, \
             notification_type = ?, series_id = ?, series_start_ms = ?, occurrence = ?, \
             created_ms = ?, updated_ms = ?, completed_ms = ?, version = ?, assignee = ?, time_zone = ?, priority_rank = ? \
             WHERE id = ? AND version = ?",
            &params,
        )?;
        Ok(())
    }
}

/// The list query: the user's own tasks, read in order from a per-user
/// index, merged with the tasks shared with them.
fn list_sql(
    dialect: Dialect,
    user_id: &str,
    query: &ListQuery,
    now: Timestamp,
) -> (String, Vec<Value>) {
    let (clauses, filter_params) = query.to_sql(dialect, now);
    let key = query.sort_sql(dialect);
    let dir = query.direction();
    let select = select(dialect);
    let sql = format!(
        "SELECT {select}, {key} AS sort_key FROM tasks WHERE user_id = ?{clauses} \
         UNION ALL \
         SELECT {select}, {key} AS sort_key FROM tasks \
         WHERE id IN (SELECT task_id FROM task_shares WHERE user_id = ?){clauses} \
         ORDER BY sort_key {dir}, id {dir} LIMIT {}",
        query.limit + 1
    );
    let mut params = vec![Value::from(user_id)];
    params.extend(filter_params.iter().cloned());
    params.push(Value::from(user_id));
    params.extend(filter_params);
    (sql, params)
}

/// How early a collaborator may complete an occurrence of a recurring task.
pub const COLLABORATOR_COMPLETES_AHEAD: chrono::Duration = chrono::Duration::days(1);

/// What a collaborator (not the owner) may not do to a shared task. A
/// recurring series creates its next tasks in the owner's name, so only the
/// owner shapes it (its pattern, due date and zone), and a collaborator
/// completes an occurrence only once it is due within a day: completing
/// occurrences ahead, one after another, would fill the owner's task quota.
fn collaborator_may(task: &Task, patch: &TaskPatch, now: Timestamp) -> Result<()> {
    if patch.recurrence_pattern.is_some() {
        return Err(DomainError::Forbidden(
            "only the task's owner may change its recurrence_pattern".into(),
        ));
    }
    if task.recurrence_pattern.is_none() {
        return Ok(());
    }
    for (field, given) in [
        ("due_date", patch.due_date.is_some()),
        ("time_zone", patch.time_zone.is_some()),
    ] {
        if given {
            return Err(DomainError::Forbidden(format!(
                "only the owner of a recurring task may change its {field}"
            )));
        }
    }
    let completes = patch.status == Some(Status::Completed) && task.status != Status::Completed;
    if completes
        && task
            .due_date
            .is_some_and(|due| due > now + COLLABORATOR_COMPLETES_AHEAD)
    {
        return Err(DomainError::Forbidden(
            "a collaborator may complete an occurrence of a recurring task only once it is due within a day; the owner may complete it earlier".into(),
        ));
    }
    Ok(())
}

fn owner_only(task: &Task, user_id: &str, action: &str) -> Result<()> {
    if task.user_id == user_id {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "only the task's owner may {action} it"
        )))
    }
}

/// A new task id: a UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn ms(ts: &Option<Timestamp>) -> Value {
    ts.as_ref()
        .map_or(Value::Null, |t| Value::Integer(time::to_millis(t)))
}

/// Every column but `id`, in [`COLUMNS`] order, then `priority_rank`.
fn row_values(t: &Task) -> Vec<Value> {
    vec![
        Value::from(t.user_id.as_str()),
        Value::from(t.title.as_str()),
        Value::from(t.description.as_str()),
        Value::from(t.status.as_str()),
        Value::from(t.priority.as_str()),
        ms(&t.due_date),
        Value::Text(serde_json::to_string(&t.tags).expect("tags serialise")),
        Value::from(t.recurrence_pattern.clone()),
        ms(&t.remind_at),
        Value::from(t.remind_before_minutes),
        Value::from(t.notification_type.as_str()),
        Value::from(t.series_id.clone()),
        ms(&t.series_start),
        Value::Integer(t.occurrence),
        Value::Integer(time::to_millis(&t.created_at)),
        Value::Integer(time::to_millis(&t.updated_at)),
        ms(&t.completed_at),
        Value::Integer(t.version),
        Value::from(t.assignee.clone()),
        Value::from(t.time_zone.as_str()),
        Value::Integer(t.priority.rank()),
    ]
}

fn opt_ts(row: &Row<'_>, column: &str) -> Result<Option<Timestamp>> {
    Ok(row.opt_i64(column)?.map(time::from_millis))
}

fn task_from_row(row: Row<'_>) -> Result<Task> {
    let corrupt = |what: &str| {
        DomainError::Storage(crate::store::sql::DbError::new(format!(
            "stored task has {what}"
        )))
    };
    Ok(Task {
        id: row.str("id")?.to_owned(),
        user_id: row.str("user_id")?.to_owned(),
        title: row.str("title")?.to_owned(),
        description: row.str("description")?.to_owned(),
        status: Status::parse(row.str("status")?).map_err(|_| corrupt("a bad status"))?,
        priority: Priority::parse(row.str("priority")?).map_err(|_| corrupt("a bad priority"))?,
        due_date: opt_ts(&row, "due_ms")?,
        tags: serde_json::from_str(row.str("tags")?).map_err(|_| corrupt("bad tags"))?,
        recurrence_pattern: row.opt_str("recurrence_pattern")?.map(str::to_owned),
        remind_at: opt_ts(&row, "remind_ms")?,
        remind_before_minutes: row.opt_i64("remind_before_minutes")?,
        notification_type: NotificationType::parse(row.str("notification_type")?)
            .map_err(|_| corrupt("a bad notification type"))?,
        series_id: row.opt_str("series_id")?.map(str::to_owned),
        series_start: opt_ts(&row, "series_start_ms")?,
        occurrence: row.i64("occurrence")?,
        created_at: time::from_millis(row.i64("created_ms")?),
        updated_at: time::from_millis(row.i64("updated_ms")?),
        completed_at: opt_ts(&row, "completed_ms")?,
        version: row.i64("version")?,
        shared_with: {
            let mut users: Vec<String> =
                serde_json::from_str(row.str("shared_with")?).map_err(|_| corrupt("bad shares"))?;
            users.sort();
            users
        },
        assignee: row.opt_str("assignee")?.map(str::to_owned),
        time_zone: row
            .opt_str("time_zone")?
            .unwrap_or(crate::model::DEFAULT_TIME_ZONE)
            .to_owned(),
    })
}
