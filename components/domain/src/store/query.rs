//! Listing tasks: filters, sort orders and opaque keyset cursors.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Result};
use crate::model::decode::{decode, query, query_object};
use crate::model::input::normalize_tag;
use crate::model::{Priority, Status};
use crate::store::sql::Dialect;
use crate::time::{self, Timestamp};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// At most this many values in one list filter (`tag`, `status`,
/// `priority`): a task carries at most `MAX_TAGS` tags, so more tags could
/// never match, and each value costs the query a term.
pub const MAX_FILTER_VALUES: usize = crate::model::input::MAX_TAGS;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    DueDate,
    Priority,
    CreatedAt,
    UpdatedAt,
}

impl SortKey {
    fn parse(text: &str) -> Result<Self> {
        match text {
            "due_date" => Ok(SortKey::DueDate),
            "priority" => Ok(SortKey::Priority),
            "created_at" => Ok(SortKey::CreatedAt),
            "updated_at" => Ok(SortKey::UpdatedAt),
            _ => Err(DomainError::invalid(
                "sort",
                "must be one of due_date, priority, created_at, updated_at",
            )),
        }
    }

    /// Soonest due first; most important first; newest first.
    fn default_descending(self) -> bool {
        !matches!(self, SortKey::DueDate)
    }

    /// The SQL sort expression. Tasks without a due date sort last in both
    /// directions, so a null never sits between two dates.
    fn sql(self, dialect: Dialect, descending: bool) -> &'static str {
        match (self, descending) {
            (SortKey::DueDate, false) => "COALESCE(due_ms, 9223372036854775807)",
            // Postgres reads -9223372036854775808 as a negated NUMERIC;
            // written so, it stays a BIGINT (and matches its index).
            (SortKey::DueDate, true) if dialect == Dialect::Postgres => {
                "COALESCE(due_ms, (-9223372036854775807 - 1))"
            }
            (SortKey::DueDate, true) => "COALESCE(due_ms, -9223372036854775808)",
            (SortKey::Priority, _) => "priority_rank",
            (SortKey::CreatedAt, _) => "created_ms",
            (SortKey::UpdatedAt, _) => "updated_ms",
        }
    }
}

/// Where the previous page ended: the sort key and id of its last task,
/// written `<key>.<id>`. Every string matching [`Cursor::PATTERN`] is a
/// position, so the OpenAPI pattern is the whole rule; a cursor continues
/// the sort and order it is sent with (clients repeat the ones it came with).
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

impl Cursor {
    /// The OpenAPI `pattern` of a cursor (ECMA 262).
    pub const PATTERN: &'static str = "^-?[0-9]{1,19}\\.[0-9A-Za-z-]{1,64}$";

    pub fn encode(&self) -> String {
        format!("{}.{}", self.key, self.id)
    }

    pub fn decode(text: &str) -> Result<Cursor> {
        let bad = || {
            DomainError::bad_request(
                Some("cursor"),
                "is not a cursor: give next_cursor from the previous page",
            )
        };
        let (key, id) = text.split_once('.').ok_or_else(bad)?;
        let id_ok = (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        Ok(Cursor {
            key: parse_clamped(key).ok_or_else(bad)?,
            id: if id_ok {
                id.to_owned()
            } else {
                return Err(bad());
            },
        })
    }
}

/// `-?[0-9]{1,19}` as an i64, saturating: a key past the range sorts as far
/// as any real one can.
pub fn parse_clamped(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i128 = text.parse().ok()?;
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub statuses: Vec<Status>,
    pub priorities: Vec<Priority>,
    /// A task must carry every one of these tags.
    pub tags: Vec<String>,
    pub due_before: Option<Timestamp>,
    pub due_after: Option<Timestamp>,
    pub overdue: Option<bool>,
    pub search: Option<String>,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            statuses: Vec::new(),
            priorities: Vec::new(),
            tags: Vec::new(),
            due_before: None,
            due_after: None,
            overdue: None,
            search: None,
            sort: SortKey::DueDate,
            descending: false,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// `listTasks`' arguments as sent: REST query text or MCP JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default, deserialize_with = "query::list")]
    pub status: Vec<String>,
    #[serde(default, deserialize_with = "query::list")]
    pub priority: Vec<String>,
    #[serde(default, deserialize_with = "query::list")]
    pub tag: Vec<String>,
    #[serde(default, deserialize_with = "query::text")]
    pub due_before: Option<String>,
    #[serde(default, deserialize_with = "query::text")]
    pub due_after: Option<String>,
    #[serde(default, deserialize_with = "query::flag")]
    pub overdue: Option<bool>,
    #[serde(default, deserialize_with = "query::text")]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "query::text")]
    pub sort: Option<String>,
    #[serde(default, deserialize_with = "query::text")]
    pub order: Option<String>,
    #[serde(default, deserialize_with = "query::whole")]
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "query::text")]
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Reads query parameters. Lists may repeat a parameter or separate
    /// values with commas; unknown parameters are rejected.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ListQuery> {
        Self::from_params(decode(query_object(pairs))?)
    }

    /// Checks the arguments of `listTasks`.
    pub fn from_params(params: ListParams) -> Result<ListQuery> {
        let mut query = ListQuery::default();
        for s in &params.status {
            query.statuses.push(Status::parse(s)?);
        }
        for p in &params.priority {
            query.priorities.push(Priority::parse(p)?);
        }
        for t in &params.tag {
            query
                .tags
                .push(normalize_tag(t).map_err(|e| rename(e, "tag"))?);
        }
        if let Some(bound) = &params.due_before {
            query.due_before = Some(time::parse_bound("due_before", bound)?);
        }
        if let Some(bound) = &params.due_after {
            query.due_after = Some(time::parse_bound("due_after", bound)?);
        }
        query.overdue = params.overdue;
        if let Some(text) = &params.q {
            let text = text.trim();
            if text.chars().count() > 200 {
                return Err(DomainError::invalid("q", "must be at most 200 characters"));
            }
            query.search = (!text.is_empty()).then(|| text.to_owned());
        }
        let sort = params.sort.as_deref().map(SortKey::parse).transpose()?;
        let order = match params.order.as_deref() {
            None => None,
            Some("asc") => Some(false),
            Some("desc") => Some(true),
            Some(_) => return Err(DomainError::invalid("order", "must be asc or desc")),
        };
        if let Some(limit) = params.limit {
            query.limit = u32::try_from(limit)
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    DomainError::invalid("limit", format!("must be from 1 to {MAX_LIMIT}"))
                })?;
        }
        let cursor = params.cursor.as_deref().map(Cursor::decode).transpose()?;
        for (field, n) in [
            ("tag", query.tags.len()),
            ("status", query.statuses.len()),
            ("priority", query.priorities.len()),
        ] {
            if n > MAX_FILTER_VALUES {
                return Err(DomainError::invalid(
                    field,
                    format!("at most {MAX_FILTER_VALUES} values may be given, got {n}"),
                ));
            }
        }
        query.tags.sort();
        query.tags.dedup();
        query.statuses.dedup();
        query.priorities.dedup();
        query.sort = sort.unwrap_or(SortKey::DueDate);
        query.descending = order.unwrap_or_else(|| query.sort.default_descending());
        query.cursor = cursor;
        Ok(query)
    }

    /// The filter clauses (each starting ` AND `) and their parameters.
    pub(crate) fn to_sql(
        &self,
        dialect: Dialect,
        now: Timestamp,
    ) -> (String, Vec<crate::store::sql::Value>) {
        use crate::store::sql::Value;
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if !self.statuses.is_empty() {
            clauses.push(format!("status IN ({})", placeholders(self.statuses.len())));
            params.extend(self.statuses.iter().map(|s| Value::from(s.as_str())));
        }
        if !self.priorities.is_empty() {
            clauses.push(format!(
                "priority IN ({})",
                placeholders(self.priorities.len())
            ));
            params.extend(self.priorities.iter().map(|p| Value::from(p.as_str())));
        }
        for tag in &self.tags {
            clauses.push(match dialect {
                Dialect::Sqlite => {
                    "EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE json_each.value = ?)".into()
                }
                Dialect::Postgres => {
                    "EXISTS (SELECT 1 FROM jsonb_array_elements_text(tasks.tags::jsonb) t WHERE t = ?)"
                        .into()
                }
            });
            params.push(Value::from(tag.as_str()));
        }
        if let Some(before) = &self.due_before {
            clauses.push("due_ms < ?".into());
            params.push(Value::Integer(time::to_millis(before)));
        }
        if let Some(after) = &self.due_after {
            clauses.push("due_ms >= ?".into());
            params.push(Value::Integer(time::to_millis(after)));
        }
        match self.overdue {
            Some(true) => {
                clauses.push("(due_ms < ? AND status <> 'completed')".into());
                params.push(Value::Integer(time::to_millis(&now)));
            }
            Some(false) => {
                clauses.push("(due_ms IS NULL OR due_ms >= ? OR status = 'completed')".into());
                params.push(Value::Integer(time::to_millis(&now)));
            }
            None => {}
        }
        if let Some(text) = &self.search {
            let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
            clauses.push(
                "(lower(title) LIKE ? ESCAPE '\\' OR lower(description) LIKE ? ESCAPE '\\')".into(),
            );
            params.push(Value::Text(pattern.clone()));
            params.push(Value::Text(pattern));
        }
        let key = self.sort.sql(dialect, self.descending);
        let cmp = if self.descending { "<" } else { ">" };
        if let Some(cursor) = &self.cursor {
            // `key >= ?` first, so the per-user sort index seeks to the
            // cursor instead of scanning up to it.
            let inclusive = if self.descending { "<=" } else { ">=" };
            clauses.push(format!(
                "{key} {inclusive} ? AND ({key} {cmp} ? OR id {cmp} ?)"
            ));
            params.push(Value::Integer(cursor.key));
            params.push(Value::Integer(cursor.key));
            params.push(Value::from(cursor.id.as_str()));
        }
        let mut sql = String::new();
        for clause in clauses {
            sql.push_str(" AND ");
            sql.push_str(&clause);
        }
        (sql, params)
    }

    /// The sort expression, as the per-user indexes hold it.
    pub(crate) fn sort_sql(&self, dialect: Dialect) -> &'static str {
        self.sort.sql(dialect, self.descending)
    }

    /// `ASC` or `DESC`.
    pub(crate) fn direction(&self) -> &'static str {
        if self.descending {
            "DESC"
        } else {
            "ASC"
        }
    }

    /// The cursor that continues after `task`.
    pub(crate) fn cursor_after(&self, task: &crate::model::Task) -> Cursor {
        let key = match self.sort {
            SortKey::DueDate => task
                .due_date
                .as_ref()
                .map(time::to_millis)
                .unwrap_or(if self.descending { i64::MIN } else { i64::MAX }),
            SortKey::Priority => task.priority.rank(),
            SortKey::CreatedAt => time::to_millis(&task.created_at),
            SortKey::UpdatedAt => time::to_millis(&task.updated_at),
        };
        Cursor {
            key,
            id: task.id.clone(),
        }
    }
}

fn rename(e: DomainError, field: &str) -> DomainError {
    match e {
        DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
        other => other,
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub tasks: Vec<crate::model::Task>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_lists_and_defaults() {
        let q = ListQuery::from_pairs(&pairs(&[
            ("status", "pending,in_progress"),
            ("priority", "high"),
            ("priority", "urgent"),
            ("tag", "Home"),
        ]))
        .unwrap();
        assert_eq!(q.statuses, vec![Status::Pending, Status::InProgress]);
        assert_eq!(q.priorities, vec![Priority::High, Priority::Urgent]);
        assert_eq!(q.tags, vec!["home"]);
        assert_eq!(
            (q.sort, q.descending, q.limit),
            (SortKey::DueDate, false, DEFAULT_LIMIT)
        );
        let q = ListQuery::from_pairs(&pairs(&[("sort", "priority")])).unwrap();
        assert!(q.descending);
    }

    #[test]
    fn rejects_bad_parameters_by_name() {
        for (k, v) in [
            ("status", "done"),
            ("limit", "0"),
            ("limit", "101"),
            ("sort", "title"),
            ("order", "up"),
            ("overdue", "yes"),
            ("due_before", "soon"),
            ("cursor", "garbage"),
            ("colour", "red"),
        ] {
            let err = ListQuery::from_pairs(&pairs(&[(k, v)])).unwrap_err();
            assert_eq!(err.field(), Some(k), "{k}={v}");
        }
    }

    #[test]
    fn cursors_round_trip_and_every_patterned_string_is_one() {
        let c = Cursor {
            key: -2,
            id: "01a2-bc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        // The largest keys saturate instead of failing.
        let far = Cursor::decode("9999999999999999999.x").unwrap();
        assert_eq!(far.key, i64::MAX);
        assert_eq!(
            Cursor::decode("-9999999999999999999.x").unwrap().key,
            i64::MIN
        );
        for bad in ["", "1", ".x", "1.", "a.b", "1.a.b", "1.ü", "--1.x", "19"] {
            let err = Cursor::decode(bad).unwrap_err();
            assert_eq!(err.field(), Some("cursor"), "{bad}");
        }
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
    }
}
