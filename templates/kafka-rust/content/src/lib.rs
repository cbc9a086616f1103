use trigger_kafka_sdk::{kafka_component, Error, Message};

/// Called once per message, in order within a partition. `Ok` commits the
/// message; `Error::retryable` is retried with backoff and then sent to the
/// dead-letter topic; `Error::permanent` (and a panic) goes there at once.
#[kafka_component]
fn handle(message: Message) -> Result<(), Error> {
    let value = message
        .value_str()
        .ok_or_else(|| Error::permanent("the value is not UTF-8 text"))?;
    println!(
        "{} key={} value={value}",
        message.position(),
        message.key_str().unwrap_or("-")
    );
    Ok(())
}
