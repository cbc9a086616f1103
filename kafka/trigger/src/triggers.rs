//! Starting the app's triggers. Each trigger type this host serves (HTTP,
//! Kafka, timers, and the admin listener beside them) is a [`Trigger`]:
//! `start` sets up its listeners, consumers or timers as work in
//! [`Running`], and `main` waits on that work until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::console::Console;
use crate::engine::Runtime;
use crate::metrics::Metrics;

/// How long shutdown waits for consumers to finish and commit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// One trigger type of the app.
pub trait Trigger {
    /// Starts its work in `running`; an error stops the process.
    async fn start(self, running: &mut Running) -> Result<()>;
}

/// What the started triggers share, and the work they started.
pub struct Running {
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// The operations console, where this process relays or consumes.
    pub console: Option<Arc<Console>>,
    tasks: JoinSet<Result<()>>,
    /// Consumers' poll loops: each returns once it has committed.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The producer whose unacknowledged sends are dropped at the end.
    producer: Option<FutureProducer>,
}

impl Running {
    pub fn new(
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Running {
        Running {
            runtime,
            metrics,
            shutdown,
            console: None,
            tasks: JoinSet::new(),
            threads: Vec::new(),
            producer: None,
        }
    }

    /// Runs `work` until it ends or the process stops; an error it returns
    /// stops the process.
    pub fn spawn(&mut self, work: impl Future<Output = Result<()>> + Send + 'static) {
        self.tasks.spawn(work);
    }

    /// A consumer's thread, joined (with a bound) at shutdown.
    pub fn thread(&mut self, thread: std::thread::JoinHandle<()>) {
        self.threads.push(thread);
    }

    /// The producer whose queue is purged at the end: rows not yet
    /// acknowledged stay unsent in SQLite and go out on the next start.
    pub fn purge_at_exit(&mut self, producer: FutureProducer) {
        self.producer = Some(producer);
    }

    /// Waits for shutdown (or the first error), then for the consumers to
    /// commit, within [`SHUTDOWN_GRACE`].
    pub async fn wait(mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(result) = self.tasks.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("{e:#}");
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
            if first_error.is_some() && !*self.shutdown.borrow() {
                break;
            }
        }
        // Consumers commit on the way out; with the broker gone that could
        // wait forever, so it gets a bound.
        let threads = std::mem::take(&mut self.threads);
        let joined = async {
            for thread in threads {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
            tracing::warn!(
                "consumers did not finish committing in time; uncommitted messages will be redelivered"
            );
        }
        if let Some(producer) = self.producer {
            use rdkafka::producer::{Producer, PurgeConfig};
            producer.purge(PurgeConfig::default().queue().inflight());
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
