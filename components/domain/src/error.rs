//! Errors the domain reports. Each kind maps to one HTTP status and one MCP
//! tool error, so callers never have to guess what went wrong.

use std::fmt;

use crate::store::sql::DbError;

#[derive(Debug, Clone, PartialEq)]
pub enum DomainError {
    /// The input is well formed but a value is not acceptable (HTTP 422).
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// The input could not be read at all: bad JSON, unknown field (HTTP 400).
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// No such thing for this user (HTTP 404). Also used for other users'
    /// tasks, so ids never leak.
    NotFound(String),
    /// The caller sees the task but may not do this to it (HTTP 403).
    Forbidden(String),
    /// The request conflicts with the current state (HTTP 409): retrying
    /// the same request cannot succeed until that state changes.
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A per-user or per-task limit is reached (HTTP 422, `quota_exceeded`);
    /// trying again changes nothing until something is removed.
    QuotaExceeded {
        field: Option<String>,
        message: String,
    },
    /// The store failed (HTTP 500, or 503 when it was busy).
    Storage(DbError),
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn bad_request(field: Option<&str>, message: impl Into<String>) -> Self {
        DomainError::BadRequest {
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn task_not_found(id: &str) -> Self {
        DomainError::NotFound(format!("no task with id `{id}`"))
    }

    /// Whether trying again later may succeed (a busy or failing store), as
    /// opposed to input that will never be accepted.
    pub fn is_transient(&self) -> bool {
        matches!(self, DomainError::Storage(_))
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            DomainError::Invalid { field, .. }
            | DomainError::BadRequest { field, .. }
            | DomainError::QuotaExceeded { field, .. }
            | DomainError::Conflict { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainError::Invalid { field, message }
            | DomainError::BadRequest { field, message }
            | DomainError::QuotaExceeded { field, message }
            | DomainError::Conflict { field, message } => match field {
                Some(field) => write!(f, "{field}: {message}"),
                None => f.write_str(message),
            },
            DomainError::NotFound(m) | DomainError::Forbidden(m) => f.write_str(m),
            DomainError::Storage(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl std::error::Error for DomainError {}

impl From<DbError> for DomainError {
    fn from(e: DbError) -> Self {
        DomainError::Storage(e)
    }
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;
