//! A test harness: the API's `handle` over a real SQLite file.

#![allow(dead_code)]

use serde_json::{json, Value as Json};
use todo_api::config::Config;
use todo_api::http::{Request, Response};
use todo_api::Context;
use todo_domain::store::native::NativeDb;
use todo_domain::time::{self, Timestamp};

pub const SECRET: &str = "test-secret";

/// The other services' databases, as files beside the default one.
pub struct Files(pub std::path::PathBuf);

impl todo_api::Databases for Files {
    fn open(
        &self,
        label: &str,
    ) -> Result<Box<dyn todo_domain::store::sql::Sql>, todo_domain::store::sql::DbError> {
        Ok(Box::new(NativeDb::open(
            &self.0.join(format!("{label}.db")),
        )?))
    }
}

pub struct App {
    pub db: NativeDb,
    pub files: Files,
    pub config: Config,
    pub now: Timestamp,
    _dir: TempDir,
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "todo-api-{name}-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl App {
    pub fn new() -> App {
        Self::with_config(Config {
            jwt_secret: Some(SECRET.into()),
            dev_auth: true,
            mcp_allowed_origins: vec!["https://chat.example".into()],
            ..Config::default()
        })
    }

    pub fn with_config(config: Config) -> App {
        let dir = temp_dir("app");
        let db = NativeDb::open(&dir.0.join("sqlite_db.db")).unwrap();
        App {
            db,
            files: Files(dir.0.clone()),
            config,
            now: time::parse("now", "2026-11-29T10:00:00Z").unwrap(),
            _dir: dir,
        }
    }

    pub fn request(&self, request: Request) -> Response {
        let ctx = Context {
            db: &self.db,
            databases: &self.files,
            config: &self.config,
            now: self.now,
        };
        todo_api::handle(&ctx, &request)
    }

    /// A request as `user` (a bearer token), with an optional JSON body.
    pub fn call(&self, user: &str, method: &str, uri: &str, body: Option<Json>) -> Response {
        let mut headers = vec![auth(user)];
        let body = match body {
            Some(b) => {
                headers.push(("content-type".into(), "application/json".into()));
                serde_json::to_vec(&b).unwrap()
            }
            None => Vec::new(),
        };
        self.request(request(method, uri, headers, body))
    }

    pub fn count(&self, table: &str) -> i64 {
        use todo_domain::store::sql::Sql;
        self.db
            .execute(&format!("SELECT COUNT(*) AS n FROM {table}"), &[])
            .unwrap()
            .first()
            .unwrap()
            .i64("n")
            .unwrap()
    }
}

pub fn request(method: &str, uri: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body,
    }
}

/// `Authorization: Bearer <token for user>`, valid long after the tests' clock.
pub fn auth(user: &str) -> (String, String) {
    (
        "authorization".into(),
        format!("Bearer {}", token(user, 4_000_000_000)),
    )
}

pub fn token(sub: &str, exp: i64) -> String {
    todo_api::auth::sign_jwt(&json!({"sub": sub, "exp": exp}), SECRET.as_bytes())
}

/// Asserts a JSON error response and returns its body.
#[track_caller]
pub fn assert_error(response: &Response, status: u16, code: &str) -> Json {
    let body = response.json_body();
    assert_eq!(response.status, status, "{body}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body
}
