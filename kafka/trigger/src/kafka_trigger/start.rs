//! The Kafka side of a process: one idempotent producer shared by the
//! outbox relays and the dead-letter publishing, a relay per outbox
//! database, a consumer group per `[[trigger.kafka]]`, the broker probe
//! behind `/healthz`, and the operations console.

use anyhow::Context as _;

use super::*;
use crate::triggers::{Running, Trigger};

/// `[[trigger.kafka]]` entries and the outbox relays, with their settings.
pub struct Kafka {
    pub settings: KafkaSettings,
    /// Where the console keeps replay progress (the state directory).
    pub state_dir: Option<std::path::PathBuf>,
}

impl Trigger for Kafka {
    async fn start(self, running: &mut Running) -> Result<()> {
        let Kafka {
            settings,
            state_dir,
        } = self;
        let runtime = running.runtime.clone();
        let outbox_labels = settings
            .outbox_databases
            .clone()
            .unwrap_or_else(|| runtime.app.sqlite_labels());
        running.console = console(&runtime, &settings, &outbox_labels, state_dir.as_deref());
        let producer = settings.producer()?;
        running.purge_at_exit(producer.clone());
        running.spawn({
            let (producer, metrics, shutdown) = (
                producer.clone(),
                running.metrics.clone(),
                running.shutdown.clone(),
            );
            async move {
                crate::admin::probe_broker(producer, metrics, shutdown).await;
                Ok(())
            }
        });
        if let Some(postgres) = &settings.outbox_postgres {
            // A wrong address stops the host here, naming the setting,
            // rather than every request failing later.
            crate::host::postgres::connect(&postgres.url)
                .await
                .with_context(|| format!("{}: cannot use the Postgres store", postgres.named))?;
        }
        for label in outbox_labels {
            // On Postgres the outbox is found by label alone: a process
            // running only some components (a selective deployment)
            // relays it as well as any other.
            let (store, changed) = match &settings.outbox_postgres {
                Some(postgres) => (
                    crate::relay::OutboxStore::Postgres(Box::new(crate::relay::PgOutbox::new(
                        &postgres.url,
                        &label,
                    ))),
                    None,
                ),
                None => {
                    let db = runtime.databases.get(&label).cloned().with_context(|| {
                        format!("outbox_databases names `{label}`, which no component uses")
                    })?;
                    (
                        crate::relay::OutboxStore::Sqlite(crate::relay::SqliteOutbox::new(
                            db.clone(),
                        )),
                        Some(db.changed.clone()),
                    )
                }
            };
            let relay = crate::relay::Relay {
                label: label.clone(),
                changed,
                producer: producer.clone(),
                metrics: running.metrics.clone(),
                batch_size: settings.outbox_batch_size,
                poll_interval: settings.outbox_poll_interval,
                retention: settings.outbox_retention,
            };
            let shutdown = running.shutdown.clone();
            running.spawn(async move {
                relay.run(store, shutdown).await;
                Ok(())
            });
        }
        for trigger in runtime.app.kafka_triggers.clone() {
            let runner = Arc::new(KafkaRunner::new(
                runtime.clone(),
                trigger,
                producer.clone(),
                running.metrics.clone(),
            )?);
            running.thread(runner.spawn(&settings, running.shutdown.clone())?);
        }
        Ok(())
    }
}

/// The console over the topics consumed and the outboxes relayed; none
/// (with a warning) if its clients cannot be made.
fn console(
    runtime: &Runtime,
    settings: &KafkaSettings,
    outbox_labels: &[String],
    state_dir: Option<&std::path::Path>,
) -> Option<Arc<crate::console::Console>> {
    let mut topics: Vec<String> = runtime
        .app
        .kafka_triggers
        .iter()
        .flat_map(|t| t.topics.iter().cloned())
        .collect();
    topics.sort();
    topics.dedup();
    let outboxes = match &settings.outbox_postgres {
        Some(postgres) => crate::console::Outboxes::Postgres {
            url: postgres.url.clone(),
            labels: outbox_labels.to_vec(),
        },
        None => crate::console::Outboxes::Sqlite(
            outbox_labels
                .iter()
                .filter_map(|label| runtime.databases.get(label).cloned())
                .collect(),
        ),
    };
    match crate::console::for_app(settings.client_config(), topics, outboxes, state_dir) {
        Ok(console) => Some(Arc::new(console)),
        Err(e) => {
            tracing::warn!("no operations console: {e:#}");
            None
        }
    }
}
