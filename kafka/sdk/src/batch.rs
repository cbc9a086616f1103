//! Batches: the host delivers the messages of one partition in offset
//! order and commits those before the first failure it is told about.

use crate::{BatchItemFailure, Error, Message};

impl BatchItemFailure {
    pub fn new(index: usize, error: impl Into<Error>) -> BatchItemFailure {
        BatchItemFailure {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            error: error.into(),
        }
    }
}

/// Handles `messages` one after the other and stops at the first failure,
/// which it returns: the host commits the messages before it and delivers
/// the rest again, so nothing after a failure runs out of order.
pub fn each<E: Into<Error>>(
    messages: impl IntoIterator<Item = Message>,
    mut handle: impl FnMut(Message) -> Result<(), E>,
) -> Result<(), BatchItemFailure> {
    for (index, message) in messages.into_iter().enumerate() {
        handle(message).map_err(|e| BatchItemFailure::new(index, e))?;
    }
    Ok(())
}

/// What a `#[kafka_batch_component]` function may return.
pub trait IntoBatchResult {
    fn into_batch_result(self) -> Vec<BatchItemFailure>;
}

impl IntoBatchResult for () {
    fn into_batch_result(self) -> Vec<BatchItemFailure> {
        Vec::new()
    }
}

impl IntoBatchResult for Vec<BatchItemFailure> {
    fn into_batch_result(self) -> Vec<BatchItemFailure> {
        self
    }
}

impl IntoBatchResult for Result<(), BatchItemFailure> {
    fn into_batch_result(self) -> Vec<BatchItemFailure> {
        self.err().into_iter().collect()
    }
}

pub fn batch_result(result: impl IntoBatchResult) -> Vec<BatchItemFailure> {
    result.into_batch_result()
}
