//! The timer trigger: `[[trigger.cron]]` with a six-field expression
//! (seconds first), calling `handle-cron-event` as Spin's cron plugin does.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::sync::watch;

use crate::app::CronTrigger;
use crate::bindings::cron::{Error as CronError, Metadata, SpinCronPre};
use crate::engine::Runtime;
use crate::host::HostState;
use crate::metrics::{CronLabels, Metrics};

/// Longest one timer invocation may run.
const CRON_TIMEOUT: Duration = Duration::from_secs(60);

pub struct CronRunner {
    runtime: Arc<Runtime>,
    trigger: CronTrigger,
    schedule: cron::Schedule,
    pre: SpinCronPre<HostState>,
    metrics: Arc<Metrics>,
}

impl CronRunner {
    pub fn new(
        runtime: Arc<Runtime>,
        trigger: CronTrigger,
        metrics: Arc<Metrics>,
    ) -> Result<CronRunner> {
        let schedule = cron::Schedule::from_str(&trigger.cron_expression).with_context(|| {
            format!(
                "cron_expression `{}` is not a cron expression with seconds (sec min hour day month weekday)",
                trigger.cron_expression
            )
        })?;
        let pre = SpinCronPre::new(runtime.instance_pre(&trigger.component)?.clone())
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component `{}` does not export handle-cron-event",
                    trigger.component
                )
            })?;
        Ok(CronRunner {
            runtime,
            trigger,
            schedule,
            pre,
            metrics,
        })
    }

    /// Fires on schedule until shutdown. A run that overlaps the next tick
    /// skips it rather than queueing a burst.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let component = self.trigger.component.clone();
        tracing::info!(%component, expression = %self.trigger.cron_expression, "timer trigger started");
        while let Some(next) = self.schedule.after(&Utc::now()).next() {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let started = Instant::now();
            let outcome = match self.invoke(next.timestamp() as u64).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::warn!(%component, error = %format!("{e:#}"), "timer handler failed");
                    "error"
                }
            };
            self.metrics
                .cron_runs
                .get_or_create(&CronLabels {
                    component: component.as_str().into(),
                    outcome,
                })
                .inc();
            tracing::debug!(%component, took_ms = started.elapsed().as_millis() as u64, "timer fired");
        }
        tracing::info!(%component, "timer trigger stopped");
    }

    /// One run, bounded in wall-clock time as well: the epoch deadline
    /// stops a guest that computes too long, this also one that waits too
    /// long in a host call (a webhook that never answers).
    async fn invoke(&self, timestamp: u64) -> Result<()> {
        let mut store = self.runtime.store(&self.trigger.component, CRON_TIMEOUT)?;
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            match instance
                .call_handle_cron_event(&mut store, Metadata { timestamp })
                .await?
            {
                Ok(()) => Ok(()),
                Err(CronError::Other(reason)) => anyhow::bail!("{reason}"),
            }
        };
        match tokio::time::timeout(CRON_TIMEOUT + crate::engine::EPOCH_TICK * 10, call).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the timer handler did not finish within {CRON_TIMEOUT:?}"),
        }
    }
}

/// Every `[[trigger.cron]]` of the app.
pub struct Timers;

impl crate::triggers::Trigger for Timers {
    async fn start(self, running: &mut crate::triggers::Running) -> Result<()> {
        for trigger in running.runtime.app.cron_triggers.clone() {
            let runner =
                CronRunner::new(running.runtime.clone(), trigger, running.metrics.clone())?;
            let shutdown = running.shutdown.clone();
            running.spawn(async move {
                runner.run(shutdown).await;
                Ok(())
            });
        }
        Ok(())
    }
}
