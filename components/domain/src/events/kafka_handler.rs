//! What a domain failure means to a Kafka handler: a store that failed is
//! retryable; anything else is the message's fault and permanent.

use trigger_kafka_sdk::Error;

use crate::store::sql::DbError;
use crate::DomainError;

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Error {
        if e.is_transient() {
            Error::retryable(e)
        } else {
            Error::permanent(e)
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        Error::retryable(e)
    }
}

/// Applies a Kafka batch in one transaction, each message in a savepoint
/// (see [`crate::store::sql::batch`]), as a batch handler answers: the first
/// message that fails is reported with its error (permanent: dead-lettered
/// alone; retryable or a host fault: retried from it), and everything
/// before it is committed.
pub fn apply_batch(
    db: &dyn crate::store::sql::Sql,
    messages: Vec<trigger_kafka_sdk::Message>,
    mut apply: impl FnMut(&dyn crate::store::sql::Sql, trigger_kafka_sdk::Message) -> Result<(), Error>,
) -> Result<(), trigger_kafka_sdk::BatchItemFailure> {
    crate::store::sql::batch(db, messages, |db, message| {
        let traceparent = traceparent(&message);
        crate::events::trace::with(traceparent.as_deref(), || apply(db, message))
    })
    .map_err(|(index, error)| trigger_kafka_sdk::BatchItemFailure::new(index, error))
}

/// The trace context a message carries: what the events its handling
/// writes continue.
pub fn traceparent(message: &trigger_kafka_sdk::Message) -> Option<String> {
    message.header_str("traceparent").map(str::to_owned)
}
