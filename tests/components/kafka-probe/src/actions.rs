//! What each test message asks the probe to do (shared by the single and
//! the batch probe).

use spin_sdk::sqlite::{Connection, Value};
use trigger_kafka_sdk::{Error, Message};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record(message: &Message, id: &str, note: &str) -> Result<(), Error> {
    // `PROBE_DB` picks the database (benchmarks keep it apart from the API's).
    let label = std::env::var("PROBE_DB").unwrap_or_else(|_| "default".into());
    let db =
        Connection::open(&label).map_err(|e| Error::Retryable(format!("open default: {e:?}")))?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS handled (
            id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
            offset INTEGER NOT NULL, attempt INTEGER NOT NULL, msg_key TEXT, note TEXT,
            at_ms INTEGER NOT NULL)",
        &[],
    )
    .map_err(|e| Error::Retryable(format!("create: {e:?}")))?;
    let key = message
        .key
        .as_ref()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    db.execute(
        "INSERT INTO handled (id, topic, partition, offset, attempt, msg_key, note, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Value::Text(id.to_owned()),
            Value::Text(message.topic.clone()),
            Value::Integer(message.partition.into()),
            Value::Integer(message.offset),
            Value::Integer(message.attempt.into()),
            key.map_or(Value::Null, Value::Text),
            Value::Text(note.to_owned()),
            Value::Integer(now_ms()),
        ],
    )
    .map_err(|e| Error::Retryable(format!("insert: {e:?}")))?;
    Ok(())
}

/// Whether the benchmarks asked for a handler that does nothing.
pub fn noop() -> bool {
    std::env::var("PROBE_MODE").as_deref() == Ok("noop")
}

/// Does what the message's JSON asks.
pub fn act(message: Message) -> Result<(), Error> {
    let value: serde_json::Value = message
        .value
        .as_deref()
        .and_then(|v| serde_json::from_slice(v).ok())
        .ok_or_else(|| Error::Permanent("undecodable payload: not JSON".into()))?;
    // Test messages carry `id`; real events (benchmarks) their `event_id`.
    let id = value["id"]
        .as_str()
        .or(value["event_id"].as_str())
        .unwrap_or("")
        .to_owned();
    let action = value["action"].as_str().unwrap_or("ok").to_owned();
    let (verb, arg) = action.split_once(':').unwrap_or((action.as_str(), ""));
    match verb {
        "ok" => record(&message, &id, ""),
        "broken" if std::env::var("PROBE_FIXED").is_err() => Err(Error::Permanent(
            "a bug: this handler cannot take it yet".into(),
        )),
        "broken" => record(&message, &id, "fixed"),
        "retry" => {
            let failures: u32 = arg.parse().unwrap_or(1);
            if message.attempt <= failures {
                Err(Error::Retryable(format!(
                    "attempt {} of a flaky message",
                    message.attempt
                )))
            } else {
                record(&message, &id, "")
            }
        }
        "permanent" => Err(Error::Permanent(format!("message {id} can never succeed"))),
        "trap" => panic!("probe asked to trap on message {id}"),
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(arg.parse().unwrap_or(10)));
            record(&message, &id, "")
        }
        "open" => {
            let note = match Connection::open(arg) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:?}"),
            };
            record(&message, &id, &note)
        }
        "kv" => {
            let note = match spin_sdk::key_value::Store::open(arg) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:?}"),
            };
            record(&message, &id, &note)
        }
        "http" => {
            let request = spin_sdk::http::Request::get(arg);
            let result: Result<spin_sdk::http::Response, _> =
                spin_sdk::http::run(spin_sdk::http::send(request));
            let note = match result {
                Ok(response) => format!("status {}", response.status()),
                Err(e) => format!("error: {e}"),
            };
            record(&message, &id, &note)
        }
        "env" => {
            let note = std::env::var(arg).unwrap_or_else(|e| format!("error: {e}"));
            record(&message, &id, &note)
        }
        "var" => {
            let note = spin_sdk::variables::get(arg).unwrap_or_else(|e| format!("{e:?}"));
            record(&message, &id, &note)
        }
        "print" => {
            println!("{arg}");
            eprintln!("{arg}");
            record(&message, &id, "")
        }
        other => Err(Error::Permanent(format!("unknown action `{other}`"))),
    }
}
