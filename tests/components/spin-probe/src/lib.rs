//! A conformance probe for the host interfaces a component sees. `GET
//! /probe` runs a fixed list of checks and answers them as one JSON object;
//! the Spin-mode tests ask the real Spin and trigger-kafka and compare the
//! two answers key by key. Every check writes only under its own names, so
//! a run leaves the same state behind whichever host ran it.
#![cfg(target_arch = "wasm32")]

use serde_json::{json, Value as Json};
use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};

fn outcome<T, E: std::fmt::Debug>(result: Result<T, E>, ok: impl FnOnce(T) -> Json) -> Json {
    match result {
        Ok(value) => json!({ "ok": ok(value) }),
        Err(e) => json!({ "err": without_backtrace(format!("{e:?}")) }),
    }
}

/// An error's text without a host backtrace (there when the host runs with
/// `RUST_BACKTRACE` set, and different in every build).
fn without_backtrace(text: String) -> String {
    let Some(start) = text.find("\\n\\nStack backtrace:") else {
        return text;
    };
    // The backtrace runs to the end of the quoted message it is part of.
    let bytes = text.as_bytes();
    let end = (start..bytes.len())
        .find(|&i| bytes[i] == b'"' && bytes[i - 1] != b'\\')
        .unwrap_or(bytes.len());
    format!("{}{}", &text[..start], &text[end..])
}

fn sql_value(value: &Value) -> Json {
    match value {
        Value::Integer(n) => json!({ "integer": n }),
        Value::Real(f) => json!({ "real": f }),
        Value::Text(s) => json!({ "text": s }),
        Value::Blob(b) => json!({ "blob": b }),
        Value::Null => json!("null"),
    }
}

fn query(db: &Connection, statement: &str, params: &[Value]) -> Json {
    outcome(db.execute(statement, params), |result| {
        json!({
            "columns": result.columns,
            "rows": result.rows.iter().map(|r| r.values.iter().map(sql_value).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })
    })
}

fn variables() -> Json {
    let mut out = serde_json::Map::new();
    for name in [
        "greeting",
        "from_env",
        "from_flag",
        "templated",
        "nope",
        "Bad-Name",
        "",
    ] {
        out.insert(
            format!("get {name:?}"),
            outcome(spin_sdk::variables::get(name), Json::from),
        );
    }
    Json::Object(out)
}

fn sqlite() -> Json {
    let mut out = serde_json::Map::new();
    for label in ["default", "other", "not_granted"] {
        out.insert(
            format!("open {label}"),
            outcome(Connection::open(label), |_| json!("opened")),
        );
    }
    let Ok(db) = Connection::open("default") else {
        return Json::Object(out);
    };
    let checks: Vec<(&str, &str, Vec<Value>)> = vec![
        ("drop", "DROP TABLE IF EXISTS probe_values", vec![]),
        (
            "create",
            "CREATE TABLE probe_values (n INTEGER, r REAL, t TEXT, b BLOB, z, any_col)",
            vec![],
        ),
        (
            "insert",
            "INSERT INTO probe_values VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                Value::Integer(i64::MAX),
                Value::Real(-0.125),
                Value::Text("héllo ✓ 𝄞".into()),
                Value::Blob(vec![0, 255, 7]),
                Value::Null,
                Value::Text("42".into()),
            ],
        ),
        (
            "insert affinity",
            "INSERT INTO probe_values VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                Value::Text("17".into()),
                Value::Integer(3),
                Value::Integer(5),
                Value::Text("as text".into()),
                Value::Real(1e300),
                Value::Blob(vec![]),
            ],
        ),
        (
            "select",
            "SELECT n, r, t, b, z, any_col, typeof(n) AS tn, typeof(any_col) AS ta FROM probe_values ORDER BY rowid",
            vec![],
        ),
        ("expressions", "SELECT 1 + 1, 'a' || 'b', NULL, 2.5, x'0102', 9223372036854775807 + 1 AS overflow", vec![]),
        ("no rows", "SELECT n FROM probe_values WHERE 0", vec![]),
        ("returning", "UPDATE probe_values SET t = 'changed' WHERE n = 17 RETURNING t", vec![]),
        ("syntax error", "SELEKT 1", vec![]),
        ("missing table", "SELECT * FROM no_such_table", vec![]),
        ("too few parameters", "SELECT ?, ?", vec![Value::Integer(1)]),
        ("too many parameters", "SELECT ?", vec![Value::Integer(1), Value::Integer(2)]),
        ("constraint", "INSERT INTO probe_unique VALUES (1)", vec![]),
        ("two statements", "SELECT 1; SELECT 2", vec![]),
        (
            "two writes",
            "INSERT INTO probe_unique VALUES (2); INSERT INTO probe_unique VALUES (3)",
            vec![],
        ),
        ("after two writes", "SELECT n FROM probe_unique ORDER BY n", vec![]),
        ("empty statement", "", vec![]),
        ("pragma", "PRAGMA user_version", vec![]),
        ("begin", "BEGIN", vec![]),
        ("in transaction", "INSERT INTO probe_values (n) VALUES (99)", vec![]),
        ("rollback", "ROLLBACK", vec![]),
        ("after rollback", "SELECT COUNT(*) FROM probe_values WHERE n = 99", vec![]),
        ("commit without begin", "COMMIT", vec![]),
    ];
    let _ = db.execute(
        "CREATE TABLE IF NOT EXISTS probe_unique (n INTEGER PRIMARY KEY)",
        &[],
    );
    let _ = db.execute("INSERT OR IGNORE INTO probe_unique VALUES (1)", &[]);
    for (name, statement, params) in checks {
        out.insert(name.to_owned(), query(&db, statement, &params));
    }
    Json::Object(out)
}

/// `spin:sqlite/sqlite@3.0.0`: what `last-insert-rowid` and `changes`
/// say after each statement, on a connection of its own (another instance's
/// writes must not show), and the errors in version 3's types.
/// `spin:postgres/postgres@4.0.0` against the server at `PROBE_POSTGRES`: every
/// value type both ways, NULLs, the server's structured errors, parameters
/// the host refuses, a transaction, and addresses that are refused.
fn postgres() -> Json {
    use spin_sdk::pg4::{Connection as Pg, Interval, ParameterValue as P, RangeBoundKind as K};
    let Ok(address) = std::env::var("PROBE_POSTGRES") else {
        return Json::Null;
    };
    let mut out = serde_json::Map::new();
    for (name, refused) in [
        ("open not allowed", "postgres://todo@10.9.8.7:5432/x"),
        ("open default port", "postgres://todo@127.0.0.1/x"),
        ("open unix socket", "host=/tmp user=todo"),
        ("open bad address", "postgres://todo@127.0.0.1:notaport/x"),
    ] {
        out.insert(name.into(), outcome(Pg::open(refused), |_| json!("opened")));
    }
    let db = match Pg::open(&address) {
        Ok(db) => db,
        Err(e) => {
            out.insert("open".into(), json!({ "err": format!("{e:?}") }));
            return Json::Object(out);
        }
    };
    let every_type = vec![
        P::Boolean(true),
        P::Int16(-2),
        P::Int32(-4),
        P::Int64(-8),
        P::Floating32(1.5),
        P::Floating64(-2.25),
        P::Str("é 🦀".into()),
        P::Str("short".into()),
        P::Str("abc".into()),
        P::Binary(vec![0, 255, 7]),
        P::Date((2026, 12, 5)),
        P::Time((23, 59, 58, 123_000_000)),
        P::Datetime((2026, 2, 28, 1, 2, 3, 456_000)),
        P::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        P::Jsonb(br#"{"b": [1, 2], "a": "x"}"#.to_vec()),
        P::Decimal("-12345.678900".into()),
        P::RangeInt32((Some((1, K::Inclusive)), Some((10, K::Exclusive)))),
        P::RangeInt64((Some((1, K::Exclusive)), None)),
        P::RangeDecimal((None, Some(("2.5".into(), K::Inclusive)))),
        P::ArrayInt32(vec![Some(1), None, Some(3)]),
        P::ArrayInt64(vec![Some(i64::MAX)]),
        P::ArrayDecimal(vec![Some("0.1".into()), None]),
        P::ArrayStr(vec![Some("a".into()), None, Some("ü".into())]),
        P::Interval(Interval {
            micros: 1_500_000,
            days: -3,
            months: 14,
        }),
        P::Timestamp(86_400 * 365),
    ];
    let nulls = vec![P::DbNull; every_type.len()];
    let insert = "INSERT INTO probe_pg (b, i2, i4, i8, f4, f8, t, v, c, by, d, tm, ts, u, j, n, r4, r8, rn, a4, a8, an, at, iv, tz) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)";
    let steps: Vec<(&str, &str, Vec<P>)> = vec![
        ("drop", "DROP TABLE IF EXISTS probe_pg", vec![]),
        (
            "create",
            "CREATE TABLE probe_pg (id SERIAL PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i4 INTEGER, \
             i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, t TEXT, v VARCHAR(10), c CHAR(3), by BYTEA, \
             d DATE, tm TIME, ts TIMESTAMP, u UUID, j JSONB, n NUMERIC, r4 INT4RANGE, r8 INT8RANGE, \
             rn NUMRANGE, a4 INT4[], a8 INT8[], an NUMERIC[], at TEXT[], iv INTERVAL, tz TIMESTAMPTZ, \
             ip INET DEFAULT '10.1.2.3')",
            vec![],
        ),
        ("insert every type", insert, every_type),
        ("insert nulls", insert, nulls),
        ("update both", "UPDATE probe_pg SET i4 = COALESCE(i4, 0) + 1", vec![]),
        ("update none", "UPDATE probe_pg SET i4 = 0 WHERE id < 0", vec![]),
        (
            "duplicate key",
            "INSERT INTO probe_pg (id) VALUES (1)",
            vec![],
        ),
        ("no such table", "DELETE FROM no_such_table", vec![]),
        (
            "wrong parameter type",
            "UPDATE probe_pg SET i4 = $1",
            vec![P::Str("four".into())],
        ),
        ("too few parameters", "UPDATE probe_pg SET i4 = $1", vec![]),
        (
            "bad uuid",
            "UPDATE probe_pg SET u = $1",
            vec![P::Uuid("not-a-uuid".into())],
        ),
        (
            "bad decimal",
            "UPDATE probe_pg SET n = $1",
            vec![P::Decimal("1.2.3".into())],
        ),
        ("begin", "BEGIN", vec![]),
        ("insert in transaction", "INSERT INTO probe_pg (t) VALUES ('rolled back')", vec![]),
        ("rollback", "ROLLBACK", vec![]),
    ];
    for (name, statement, params) in &steps {
        let mut result = outcome(db.execute(statement, params), |n| json!(n));
        if name.contains("uuid") {
            first_line(&mut result);
        }
        out.insert(format!("execute {name}"), result);
    }
    let rows = |statement: &str, params: &[P]| {
        outcome(db.query(statement, params), |set| {
            json!({
                "columns": set.columns.iter().map(|c| format!("{} {:?}", c.name, c.data_type)).collect::<Vec<_>>(),
                "rows": set.rows.iter().map(|r| r.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>()).collect::<Vec<_>>(),
            })
        })
    };
    out.insert(
        "query every column".into(),
        rows(
            "SELECT id, b, i2, i4, i8, f4, f8, t, v, c, by, d, tm, ts, u, j, n, r4, r8, rn, a4, a8, an, at, iv, ip \
             FROM probe_pg ORDER BY id",
            &[],
        ),
    );
    out.insert(
        "query a timestamptz".into(),
        rows("SELECT tz FROM probe_pg ORDER BY id", &[]),
    );
    out.insert(
        "query parameters back".into(),
        rows(
            "SELECT $1::INT2 AS a, $2::TEXT AS b, $3::TEXT AS c",
            &[P::Int8(7), P::DbNull, P::Str(String::new())],
        ),
    );
    out.insert(
        "query no rows".into(),
        rows("SELECT id FROM probe_pg WHERE id < 0", &[]),
    );
    let mut bad_uuid = rows("SELECT $1::UUID", &[P::Uuid("nope".into())]);
    first_line(&mut bad_uuid);
    out.insert("query bad uuid".into(), bad_uuid);
    out.insert("query syntax error".into(), rows("SELEC 1", &[]));
    Json::Object(out)
}

/// Keeps an error's first line: the cause of a bad UUID is the uuid
/// crate's wording, which changes between its versions.
fn first_line(result: &mut Json) {
    if let Some(Json::String(text)) = result.get_mut("err") {
        if let Some(at) = text.find("\\n") {
            text.truncate(at);
        }
    }
}

fn sqlite3() -> Json {
    use spin_sdk::sqlite3::{Connection as Connection3, Value as Value3};
    let mut out = serde_json::Map::new();
    out.insert(
        "open not_granted".into(),
        outcome(Connection3::open("not_granted"), |_| json!("opened")),
    );
    let db = match Connection3::open("default") {
        Ok(db) => db,
        Err(e) => {
            out.insert("open default".into(), json!({ "err": format!("{e:?}") }));
            return Json::Object(out);
        }
    };
    let counts = |db: &Connection3| json!([db.last_insert_rowid(), db.changes()]);
    out.insert("fresh".into(), counts(&db));
    let steps: Vec<(&str, &str, Vec<Value3>)> = vec![
        ("drop", "DROP TABLE IF EXISTS probe3", vec![]),
        (
            "create",
            "CREATE TABLE probe3 (id INTEGER PRIMARY KEY, n INTEGER)",
            vec![],
        ),
        (
            "insert",
            "INSERT INTO probe3 (n) VALUES (?), (?), (?)",
            vec![Value3::Integer(1), Value3::Integer(2), Value3::Integer(3)],
        ),
        ("select", "SELECT COUNT(*) FROM probe3", vec![]),
        (
            "update two",
            "UPDATE probe3 SET n = n * 10 WHERE n > 1",
            vec![],
        ),
        (
            "update none",
            "UPDATE probe3 SET n = 0 WHERE n > 1000",
            vec![],
        ),
        (
            "insert id 40",
            "INSERT INTO probe3 (id, n) VALUES (40, 4)",
            vec![],
        ),
        (
            "ignored insert",
            "INSERT OR IGNORE INTO probe3 (id, n) VALUES (40, 5)",
            vec![],
        ),
        ("delete all", "DELETE FROM probe3", vec![]),
        (
            "failed insert",
            "INSERT INTO no_such_table VALUES (1)",
            vec![],
        ),
        (
            "text and blob",
            "SELECT 'é', x'00ff', NULL, 1.5, ?",
            vec![Value3::Integer(-1)],
        ),
    ];
    for (name, statement, params) in steps {
        let result = outcome(
            db.execute(statement, &params),
            |result| json!({ "columns": result.columns, "rows": result.rows.len() }),
        );
        out.insert(
            name.to_owned(),
            json!({ "result": result, "after": counts(&db) }),
        );
    }
    let other = Connection3::open("default").map(|other| counts(&other));
    out.insert("another connection".into(), outcome(other, |c| c));
    Json::Object(out)
}

fn key_value() -> Json {
    let mut out = serde_json::Map::new();
    for label in ["default", "cache", "not_granted"] {
        out.insert(
            format!("open {label}"),
            outcome(Store::open(label), |_| json!("opened")),
        );
    }
    for label in ["default", "cache"] {
        if let Ok(store) = Store::open(label) {
            out.insert(label.into(), walk_store(&store));
        }
    }
    Json::Object(out)
}

/// The same steps on one store: `default` is Spin's SQLite layout, `cache`
/// whatever the runtime config makes it (Redis in the conformance test).
fn walk_store(store: &Store) -> Json {
    let mut out = serde_json::Map::new();
    for key in ["probe:a", "probe:b", "probe:ü"] {
        let _ = store.delete(key);
    }
    let bytes = |v: Option<Vec<u8>>| json!(v);
    out.insert("get missing".into(), outcome(store.get("probe:a"), bytes));
    out.insert(
        "exists missing".into(),
        outcome(store.exists("probe:a"), Json::from),
    );
    out.insert(
        "delete missing".into(),
        outcome(store.delete("probe:a"), |()| json!("deleted")),
    );
    out.insert(
        "set".into(),
        outcome(store.set("probe:a", b"one"), |()| json!("set")),
    );
    out.insert(
        "overwrite".into(),
        outcome(store.set("probe:a", b"two"), |()| json!("set")),
    );
    out.insert("get".into(), outcome(store.get("probe:a"), bytes));
    out.insert(
        "set empty".into(),
        outcome(store.set("probe:b", b""), |()| json!("set")),
    );
    out.insert("get empty".into(), outcome(store.get("probe:b"), bytes));
    out.insert(
        "set unicode key".into(),
        outcome(store.set("probe:ü", &[0, 159, 146, 150]), |()| {
            json!("set")
        }),
    );
    out.insert(
        "exists".into(),
        outcome(store.exists("probe:ü"), Json::from),
    );
    out.insert(
        "keys".into(),
        outcome(store.get_keys(), |mut keys| {
            // Order is not part of the interface: compare as a set.
            keys.retain(|k| k.starts_with("probe:"));
            keys.sort();
            json!(keys)
        }),
    );
    out.insert(
        "empty key".into(),
        outcome(store.set("", b"x"), |()| json!("set")),
    );
    out.insert("get empty key".into(), outcome(store.get(""), bytes));
    let _ = store.delete("");
    out.insert(
        "delete".into(),
        outcome(store.delete("probe:a"), |()| json!("deleted")),
    );
    out.insert("get deleted".into(), outcome(store.get("probe:a"), bytes));
    Json::Object(out)
}

fn environment() -> Json {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PROBE_"))
        .collect();
    vars.sort();
    json!(vars)
}

fn headers(req: &Request) -> Json {
    let mut spin: Vec<(String, String)> = req
        .headers()
        .filter(|(name, _)| name.starts_with("spin-") && *name != "spin-client-addr")
        .map(|(name, value)| {
            let mut value = value.as_str().unwrap_or("<not utf-8>").to_owned();
            if name == "spin-full-url" {
                // The host and port differ between servers; the rest must not.
                if let Some((scheme, rest)) = value.split_once("://") {
                    let path = rest.find('/').map_or("", |at| &rest[at..]);
                    value = format!("{scheme}://HOST{path}");
                }
            }
            (name.to_owned(), value)
        })
        .collect();
    spin.sort();
    json!({
        "spin": spin,
        "client addr is an address": req
            .header("spin-client-addr")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.parse::<std::net::SocketAddr>().is_ok()),
        "method": req.method().to_string(),
        "path and query": req.path_and_query(),
        "body length": req.body().len(),
    })
}

async fn outbound(target: Option<&str>) -> Json {
    let mut out = serde_json::Map::new();
    let mut urls = vec![
        (
            "denied host".to_owned(),
            "http://denied.example:1234/".to_owned(),
        ),
        (
            "denied scheme".to_owned(),
            "https://127.0.0.1:1/".to_owned(),
        ),
    ];
    if let Some(target) = target {
        urls.push(("allowed".to_owned(), format!("http://{target}/echo")));
    }
    for (name, url) in urls {
        let request = Request::get(&url);
        let result: Result<Response, _> = spin_sdk::http::send(request).await;
        out.insert(
            name,
            outcome(result, |response: Response| {
                json!({
                    "status": response.status(),
                    "body": String::from_utf8_lossy(response.body()),
                })
            }),
        );
    }
    Json::Object(out)
}

#[spin_sdk::http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let query: Vec<(String, String)> = req
        .query()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let path = req.path().to_owned();
    let body = match (req.method(), path.as_str()) {
        (Method::Get, "/probe") | (Method::Post, "/probe") => json!({
            "variables": variables(),
            "sqlite": sqlite(),
            "sqlite3": sqlite3(),
            "postgres": postgres(),
            "key_value": key_value(),
            "environment": environment(),
            "headers": headers(&req),
            "outbound": outbound(param("target")).await,
        }),
        (_, p) if p.starts_with("/probe/headers") => headers(&req),
        (Method::Get, "/probe/trap") => panic!("the probe was asked to trap"),
        _ => {
            return Ok(Response::builder()
                .status(404)
                .header("content-type", "application/json")
                .body(json!({"error": "no such probe"}).to_string())
                .build())
        }
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build())
}
