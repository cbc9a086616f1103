//! Typed access to a message's key, value and headers.

use serde::de::DeserializeOwned;

use crate::{Error, Message};

impl Message {
    /// The key as text; `None` without a key or when it is not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as text; `None` without a value or when it is not UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value of header `name`. Kafka allows a name more than once; the
    /// last one wins, as with Java's `Headers.lastHeader`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == name)
            .map(|h| h.value.as_slice())
    }

    /// Header `name` as text (e.g. `ce_type`); `None` when absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value decoded as JSON. A missing or undecodable value is a
    /// permanent error naming where the message came from.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let value = self
            .value
            .as_deref()
            .ok_or_else(|| Error::permanent(format!("{} has no value", self.position())))?;
        serde_json::from_slice(value).map_err(|e| {
            Error::permanent(format!("{} is not the JSON expected: {e}", self.position()))
        })
    }

    /// Whether this is a redelivery (`attempt` > 1): the handler saw it
    /// before and failed, or a batch was delivered again.
    pub fn is_redelivery(&self) -> bool {
        self.attempt > 1
    }

    /// `topic/partition@offset`, for error messages and logs.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}
