//! The SDK's helpers on plain values (the macros are exercised by every
//! component, through the real host, in the trigger's tests).

use trigger_kafka_sdk::{each, BatchItemFailure, Error, Header, Message};

fn message(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, &[u8])]) -> Message {
    Message {
        topic: "task-events".into(),
        partition: 2,
        offset: 41,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers
            .iter()
            .map(|(k, v)| Header {
                key: (*k).into(),
                value: v.to_vec(),
            })
            .collect(),
        timestamp: Some(1_700_000_000_000),
        attempt: 1,
    }
}

#[test]
fn keys_values_and_headers_read_as_text_when_they_are_utf8() {
    let m = message(
        Some("user-1".as_bytes()),
        Some("{}".as_bytes()),
        &[
            ("ce_type", b"task_created"),
            ("ce_type", b"task_updated"),
            ("raw", &[0xff, 0xfe]),
        ],
    );
    assert_eq!(m.key_str(), Some("user-1"));
    assert_eq!(m.value_str(), Some("{}"));
    assert_eq!(
        m.header_str("ce_type"),
        Some("task_updated"),
        "the last one wins"
    );
    assert_eq!(m.header("raw"), Some(&[0xff, 0xfe][..]));
    assert_eq!(m.header_str("raw"), None, "not UTF-8");
    assert_eq!(m.header("missing"), None);
    assert!(!m.is_redelivery());
    let bytes = message(Some(&[0xff]), None, &[]);
    assert_eq!(bytes.key_str(), None);
    assert_eq!(bytes.value_str(), None);
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Event {
    event_type: String,
}

#[test]
fn json_decodes_or_fails_permanently_naming_the_message() {
    let good = message(None, Some(br#"{"event_type": "task_created"}"#), &[]);
    assert_eq!(
        good.json::<Event>().unwrap(),
        Event {
            event_type: "task_created".into()
        }
    );
    let bad = message(None, Some(b"not json"), &[]);
    let error = bad.json::<Event>().unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.reason().contains("task-events/2@41"), "{error}");
    let empty = message(None, None, &[]);
    assert!(empty
        .json::<Event>()
        .unwrap_err()
        .reason()
        .contains("no value"));
}

#[test]
fn conversions_pick_the_kind_a_failure_deserves() {
    let from_anyhow: Error = anyhow::anyhow!("database is locked").into();
    assert!(from_anyhow.is_retryable());
    let from_json: Error = serde_json::from_str::<Event>("{").unwrap_err().into();
    assert!(!from_json.is_retryable());
    let from_utf8: Error = String::from_utf8(vec![0xff]).unwrap_err().into();
    assert!(!from_utf8.is_retryable());
    assert_eq!(Error::retryable("busy"), Error::Retryable("busy".into()));
    assert_eq!(Error::permanent("bad").reason(), "bad");
}

#[test]
fn each_stops_at_the_first_failure_and_names_its_index() {
    let batch: Vec<Message> = (0..5)
        .map(|i| message(None, Some(format!("{i}").as_bytes()), &[]))
        .collect();
    let mut seen = Vec::new();
    let result = each(batch.clone(), |m| {
        seen.push(m.value_str().unwrap().to_owned());
        if m.value_str() == Some("2") {
            Err(Error::retryable("flaky"))
        } else {
            Ok(())
        }
    });
    assert_eq!(
        result,
        Err(BatchItemFailure::new(2, Error::retryable("flaky")))
    );
    assert_eq!(seen, ["0", "1", "2"], "nothing after the failure runs");
    assert_eq!(each(batch, |_| Ok::<(), Error>(())), Ok(()));
}
