//! What a domain failure means to a Kafka handler: a store that failed is
//! retryable; anything else is the message's fault and permanent.

use trigger_kafka_sdk::Error;

use crate::sql::DbError;
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
