//! Plain request and response values, so the API logic runs the same inside
//! Spin and in native tests.

use serde_json::{json, Value as Json};

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, percent-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &Json) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("JSON serialises"),
        }
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json_body(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }
}

/// An error for the client: an HTTP status and a JSON body
/// `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ApiError {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(&self) -> Json {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::json(self.status, &self.body());
        response.headers.extend(self.headers);
        response
    }
}

impl From<todo_domain::DomainError> for ApiError {
    fn from(e: todo_domain::DomainError) -> ApiError {
        use todo_domain::DomainError as D;
        let field = e.field().map(str::to_owned);
        let message = match &e {
            D::Invalid { message, .. }
            | D::BadRequest { message, .. }
            | D::QuotaExceeded { message, .. }
            | D::Conflict { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let error = match &e {
            D::Invalid { .. } => ApiError::new(422, "validation_failed", message),
            D::QuotaExceeded { .. } => ApiError::new(422, "quota_exceeded", message),
            D::BadRequest { .. } => ApiError::new(400, "bad_request", message),
            D::NotFound(_) => ApiError::new(404, "not_found", message),
            D::Conflict { .. } => ApiError::new(409, "conflict", message),
            D::Forbidden(_) => ApiError::new(403, "forbidden", message),
            D::Storage(db) if db.unavailable => store_unavailable(),
            D::Storage(db) if db.busy => {
                ApiError::new(503, "busy", "the database is busy; retry shortly")
                    .with_header("retry-after", "1")
            }
            D::Storage(_) => ApiError::new(500, "storage_error", "the task store failed"),
        };
        match field {
            Some(field) => error.with_field(field),
            None => error,
        }
    }
}

/// The shared store (Postgres) cannot be reached: the request did nothing,
/// and the same request may be sent again once it is back.
pub fn store_unavailable() -> ApiError {
    ApiError::new(
        503,
        "store_unavailable",
        "the task store cannot be reached; nothing was changed, retry shortly",
    )
    .with_header("retry-after", "2")
}

impl From<todo_domain::store::sql::DbError> for ApiError {
    fn from(e: todo_domain::store::sql::DbError) -> ApiError {
        todo_domain::DomainError::Storage(e).into()
    }
}
