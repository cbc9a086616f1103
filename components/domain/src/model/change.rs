//! Applying a validated patch to a task: the rules that tie fields together
//! (reminders follow the due date, recurring tasks need one, completion
//! stamps a time).

use chrono::Duration;

use crate::error::{DomainError, Result};
use crate::model::input::TaskPatch;
use crate::model::{NotificationType, Priority, Status, Task};
use crate::time::Timestamp;

/// A new task for `user_id` from a create request.
pub fn new_task(user_id: &str, id: String, patch: &TaskPatch, now: Timestamp) -> Result<Task> {
    let title = patch
        .title
        .clone()
        .ok_or_else(|| DomainError::invalid("title", "is required"))?;
    if patch.status == Some(Status::Completed) {
        return Err(DomainError::invalid(
            "status",
            "a new task cannot start completed; create it, then complete it",
        ));
    }
    let blank = Task {
        id,
        user_id: user_id.to_owned(),
        title,
        description: String::new(),
        status: Status::Pending,
        priority: Priority::Medium,
        due_date: None,
        tags: Vec::new(),
        recurrence_pattern: None,
        remind_at: None,
        remind_before_minutes: None,
        notification_type: NotificationType::InApp,
        series_id: None,
        series_start: None,
        occurrence: 1,
        created_at: now,
        updated_at: now,
        completed_at: None,
        version: 0,
        shared_with: Vec::new(),
        assignee: None,
        time_zone: crate::model::DEFAULT_TIME_ZONE.to_owned(),
    };
    let mut task = apply(&blank, patch, now)?;
    task.version = 1;
    task.updated_at = now;
    Ok(task)
}

/// `old` with `patch` applied. Returns `old` unchanged (same version) when
/// the patch changes nothing, so repeating a request is harmless.
pub fn apply(old: &Task, patch: &TaskPatch, now: Timestamp) -> Result<Task> {
    let mut task = old.clone();
    if let Some(title) = &patch.title {
        task.title = title.clone();
    }
    if let Some(zone) = &patch.time_zone {
        task.time_zone = zone.clone();
    }
    if let Some(description) = &patch.description {
        task.description = description.clone();
    }
    if let Some(priority) = patch.priority {
        task.priority = priority;
    }
    if let Some(tags) = &patch.tags {
        task.tags = tags.clone();
    }
    if let Some(notification_type) = patch.notification_type {
        task.notification_type = notification_type;
    }
    if let Some(status) = patch.status {
        if status == Status::Completed && old.status != Status::Completed {
            task.completed_at = Some(now);
        } else if status != Status::Completed {
            task.completed_at = None;
        }
        task.status = status;
    }
    if let Some(due_date) = patch.due_date {
        task.due_date = due_date;
    }
    apply_reminder(&mut task, old, patch)?;
    if let Some(pattern) = &patch.recurrence_pattern {
        task.recurrence_pattern = pattern.clone();
    }
    if task.recurrence_pattern.is_some() {
        if task.due_date.is_none() {
            return Err(needs_due_date(
                old,
                "recurrence_pattern",
                "a recurring task needs a due_date: the date of its first occurrence",
            ));
        }
        // A new pattern or a moved due date starts a new series from here.
        if task.recurrence_pattern != old.recurrence_pattern
            || task.due_date != old.due_date
            || task.time_zone != old.time_zone
            || task.series_id.is_none()
        {
            task.series_id = Some(task.id.clone());
            task.series_start = task.due_date;
            task.occurrence = 1;
        }
    }
    if task != *old {
        task.updated_at = now;
        task.version = old.version + 1;
    }
    Ok(task)
}

/// A field that needs a due date: invalid input in a create request (the
/// OpenAPI schema says so), a conflict with the task's state in an update.
fn needs_due_date(old: &Task, field: &str, message: &str) -> DomainError {
    if old.version == 0 {
        DomainError::invalid(field, message)
    } else {
        DomainError::conflict(field, message)
    }
}

fn apply_reminder(task: &mut Task, old: &Task, patch: &TaskPatch) -> Result<()> {
    match (patch.remind_at, patch.remind_before_minutes) {
        (Some(Some(_)), Some(Some(_))) => {
            return Err(DomainError::invalid(
                "remind_at",
                "give either remind_at or remind_before_minutes, not both",
            ))
        }
        // A time already past is accepted: the reminder fires at the next
        // timer tick, or is recorded missed when older than the grace.
        (Some(Some(at)), _) => {
            task.remind_at = Some(at);
            task.remind_before_minutes = None;
        }
        (_, Some(Some(minutes))) => {
            if task.due_date.is_none() {
                return Err(needs_due_date(
                    old,
                    "remind_before_minutes",
                    "a reminder relative to the due date needs a due_date",
                ));
            }
            task.remind_before_minutes = Some(minutes);
        }
        (Some(None), _) | (_, Some(None)) => {
            task.remind_at = None;
            task.remind_before_minutes = None;
        }
        (None, None) => {}
    }
    if let Some(minutes) = task.remind_before_minutes {
        match task.due_date {
            // A reminder before year 0000 would be emitted as `-0001-…`,
            // which every consumer rejects: refused here, naming the field.
            Some(due) => {
                let at = crate::time::check_range(
                    "remind_before_minutes",
                    due - Duration::minutes(minutes),
                )
                .map_err(|_| {
                    DomainError::invalid(
                        "remind_before_minutes",
                        "puts the reminder before the year 0000; give fewer minutes or a later due_date",
                    )
                })?;
                task.remind_at = Some(at);
            }
            // The due date was cleared: a relative reminder has nothing to follow.
            None => {
                task.remind_at = None;
                task.remind_before_minutes = None;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;
    use serde_json::json;

    fn now() -> Timestamp {
        time::parse("now", "2026-11-29T10:00:00Z").unwrap()
    }

    fn patch(v: serde_json::Value) -> TaskPatch {
        TaskPatch::from_json(v.as_object().unwrap()).unwrap()
    }

    fn task(v: serde_json::Value) -> Task {
        new_task("alice", "t1".into(), &patch(v), now()).unwrap()
    }

    #[test]
    fn new_tasks_have_defaults_and_version_one() {
        let t = task(json!({"title": "Buy milk"}));
        assert_eq!(t.status, Status::Pending);
        assert_eq!(t.priority, Priority::Medium);
        assert_eq!(t.notification_type, NotificationType::InApp);
        assert_eq!(t.version, 1);
        assert_eq!(t.created_at, now());
        let err = new_task("alice", "t".into(), &patch(json!({})), now()).unwrap_err();
        assert_eq!(err.field(), Some("title"));
    }

    #[test]
    fn relative_reminders_follow_the_due_date() {
        let t = task(
            json!({"title": "x", "due_date": "2026-12-01T09:00:00Z", "remind_before_minutes": 30}),
        );
        assert_eq!(time::format(&t.remind_at.unwrap()), "2026-12-01T08:30:00Z");
        let moved = apply(
            &t,
            &patch(json!({"due_date": "2026-12-02T09:00:00Z"})),
            now(),
        )
        .unwrap();
        assert_eq!(
            time::format(&moved.remind_at.unwrap()),
            "2026-12-02T08:30:00Z"
        );
        let cleared = apply(&t, &patch(json!({"due_date": null})), now()).unwrap();
        assert_eq!(
            (cleared.remind_at, cleared.remind_before_minutes),
            (None, None)
        );
    }

    #[test]
    fn reminder_rules_are_explained() {
        let err = new_task(
            "a",
            "t".into(),
            &patch(json!({"title": "x", "remind_before_minutes": 5})),
            now(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("remind_before_minutes"));
        // A time already past is taken (the reminder fires at once or is
        // recorded missed), as the OpenAPI document allows.
        let past = new_task(
            "a",
            "t".into(),
            &patch(json!({"title": "x", "remind_at": "2020-01-01T00:00:00Z"})),
            now(),
        )
        .unwrap();
        assert!(past.remind_at.is_some());
        let both = json!({"title": "x", "due_date": "2026-12-01T09:00:00Z",
                          "remind_at": "2026-12-01T08:00:00Z", "remind_before_minutes": 5});
        assert!(new_task("a", "t".into(), &patch(both), now()).is_err());
    }

    /// Issue 21 item 7: a reminder before year 0000 was stored and emitted
    /// as `-0001-…`, which every consumer dead-lettered.
    #[test]
    fn a_reminder_before_year_zero_is_refused_naming_the_field() {
        let early = json!({"title": "x", "due_date": "0000-01-01T00:00:00Z",
                           "remind_before_minutes": 30});
        let err = new_task("a", "t".into(), &patch(early), now()).unwrap_err();
        assert_eq!(err.field(), Some("remind_before_minutes"));
        let t = task(json!({"title": "x", "due_date": "0000-01-02T00:00:00Z"}));
        let ok = apply(&t, &patch(json!({"remind_before_minutes": 1440})), now()).unwrap();
        assert_eq!(time::format(&ok.remind_at.unwrap()), "0000-01-01T00:00:00Z");
        let err = apply(&t, &patch(json!({"remind_before_minutes": 1441})), now()).unwrap_err();
        assert_eq!(err.field(), Some("remind_before_minutes"));
    }

    #[test]
    fn completion_stamps_and_reopen_clears_completed_at() {
        let t = task(json!({"title": "x"}));
        let done = apply(&t, &patch(json!({"status": "completed"})), now()).unwrap();
        assert_eq!(done.completed_at, Some(now()));
        assert_eq!(done.version, 2);
        let again = apply(&done, &patch(json!({"status": "completed"})), now()).unwrap();
        assert_eq!(again, done, "completing twice changes nothing");
        let reopened = apply(&done, &patch(json!({"status": "pending"})), now()).unwrap();
        assert_eq!(reopened.completed_at, None);
    }

    #[test]
    fn recurring_tasks_need_a_due_date_and_anchor_their_series() {
        let err = new_task(
            "a",
            "t".into(),
            &patch(json!({"title": "x", "recurrence_pattern": "daily"})),
            now(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("recurrence_pattern"));
        let t = task(
            json!({"title": "x", "recurrence_pattern": "daily", "due_date": "2026-12-01T09:00:00Z"}),
        );
        assert_eq!(t.series_id.as_deref(), Some("t1"));
        assert_eq!(t.series_start, t.due_date);
        assert_eq!(t.occurrence, 1);
    }

    #[test]
    fn a_no_op_patch_keeps_the_version() {
        let t = task(json!({"title": "x", "priority": "high"}));
        let same = apply(&t, &patch(json!({"title": "x", "priority": "high"})), now()).unwrap();
        assert_eq!(same.version, t.version);
    }
}
