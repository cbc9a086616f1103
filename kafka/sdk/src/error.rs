//! How a handler says a message failed, and the conversions that let `?`
//! pick the right kind: the message's own fault (malformed) is permanent,
//! a store or a peer that failed is retryable.

use std::fmt;

use crate::Error;

impl Error {
    /// A passing failure: retried with backoff, dead-lettered when the
    /// trigger's `max_retries` is spent.
    pub fn retryable(reason: impl fmt::Display) -> Error {
        Error::Retryable(reason.to_string())
    }

    /// The message can never be handled: dead-lettered at once.
    pub fn permanent(reason: impl fmt::Display) -> Error {
        Error::Permanent(reason.to_string())
    }

    pub fn reason(&self) -> &str {
        match self {
            Error::Retryable(reason) | Error::Permanent(reason) => reason,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable(_))
    }
}

// wit-bindgen derives `Display` and `std::error::Error` for `Error`.

/// Unknown failures are retried: if the message is at fault, the retry
/// budget ends in the dead-letter topic anyway.
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        Error::Retryable(format!("{e:#}"))
    }
}

/// A value that does not decode never will.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Permanent(format!("undecodable JSON: {e}"))
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Error {
        Error::Permanent(format!("not UTF-8: {e}"))
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Error {
        Error::Permanent(format!("not UTF-8: {e}"))
    }
}

impl From<spin_sdk::sqlite::Error> for Error {
    fn from(e: spin_sdk::sqlite::Error) -> Error {
        Error::Retryable(format!("sqlite: {e:?}"))
    }
}

impl From<spin_sdk::key_value::Error> for Error {
    fn from(e: spin_sdk::key_value::Error) -> Error {
        Error::Retryable(format!("key-value: {e:?}"))
    }
}

impl From<spin_sdk::variables::Error> for Error {
    fn from(e: spin_sdk::variables::Error) -> Error {
        Error::Retryable(format!("variable: {e:?}"))
    }
}

/// What a `#[kafka_component]` function may return.
pub trait IntoMessageResult {
    fn into_message_result(self) -> Result<(), Error>;
}

impl IntoMessageResult for () {
    fn into_message_result(self) -> Result<(), Error> {
        Ok(())
    }
}

impl<E: Into<Error>> IntoMessageResult for Result<(), E> {
    fn into_message_result(self) -> Result<(), Error> {
        self.map_err(Into::into)
    }
}

pub fn message_result(result: impl IntoMessageResult) -> Result<(), Error> {
    result.into_message_result()
}
