//! The application as this host runs it, whether it came from `spin.toml`
//! (standalone) or from Spin's locked app (plugin mode).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value as Json;

/// An application variable (`[variables]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppVariable {
    pub default: Option<String>,
    pub secret: bool,
}

/// What a component is and what the manifest grants it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub id: String,
    pub source: PathBuf,
    /// `environment`: WASI environment variables.
    pub env: BTreeMap<String, String>,
    /// `[component.x.variables]`: name → template over app variables.
    pub variables: BTreeMap<String, String>,
    pub sqlite_databases: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

fn default_max_retries() -> u32 {
    5
}
fn default_retry_backoff_ms() -> u64 {
    500
}
fn default_retry_backoff_max_ms() -> u64 {
    30_000
}
fn default_concurrency() -> usize {
    16
}
fn default_handler_timeout_ms() -> u64 {
    30_000
}
fn default_max_buffered_messages() -> usize {
    100_000
}
fn default_fetch_wait_max_ms() -> u64 {
    100
}

/// `[[trigger.kafka]]`: one consumer group feeding one component.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTrigger {
    #[serde(default)]
    pub id: Option<String>,
    pub component: String,
    pub topics: Vec<String>,
    /// Consumer group; defaults to `<app>-<component>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Retries after the first attempt for retryable errors.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// Dead-letter topic; `{topic}` is replaced by the source topic.
    /// Defaults to `{topic}.dlq`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Handler invocations running at once across partitions.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// A handler running longer than this is stopped (a trap: dead-lettered).
    #[serde(default = "default_handler_timeout_ms")]
    pub handler_timeout_ms: u64,
    /// Where a group with no committed offset starts: `earliest`
    /// (default), `latest`, or an RFC 3339 time (the first record at or
    /// after it). `start_from` is its earlier name.
    #[serde(default, alias = "start_from")]
    pub starting_position: StartingPosition,
    /// Messages per invocation of a `handle-batch` component (default 100);
    /// a `handle-message` component takes one at a time.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How long a batch waits to fill up after its first message; 0 (the
    /// default) takes what is already there.
    #[serde(default)]
    pub batch_window_ms: u64,
    /// Records older than this (by their timestamp) go to the dead-letter
    /// topic with the kind `expired` instead of reaching the component.
    #[serde(default)]
    pub max_record_age_s: Option<u64>,
    /// Longest the broker may hold a fetch when there is nothing new. Low,
    /// because some brokers (tansu) hold every fetch this long.
    #[serde(default = "default_fetch_wait_max_ms")]
    pub fetch_wait_max_ms: u64,
    /// Messages fetched for one partition and waiting for its worker before
    /// fetching from it is paused.
    #[serde(default = "default_max_buffered_messages")]
    pub max_buffered_messages: usize,
    /// Records that do not pass are committed without running the component.
    #[serde(default)]
    pub filters: Vec<crate::filters::Filter>,
}

/// Limits checked at start.
pub const MAX_BATCH_SIZE: usize = 10_000;
pub const MAX_BATCH_WINDOW_MS: u64 = 300_000;
/// A `handle-batch` component's batch size when the manifest gives none.
pub const DEFAULT_BATCH_SIZE: usize = 100;

/// `starting_position`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum StartingPosition {
    #[default]
    Earliest,
    Latest,
    /// Unix milliseconds.
    At(i64),
}

impl TryFrom<String> for StartingPosition {
    type Error = String;

    fn try_from(value: String) -> std::result::Result<Self, String> {
        match value.as_str() {
            "earliest" => Ok(StartingPosition::Earliest),
            "latest" => Ok(StartingPosition::Latest),
            time => chrono::DateTime::parse_from_rfc3339(time)
                .map(|t| StartingPosition::At(t.timestamp_millis()))
                .map_err(|_| {
                    format!("starting_position must be `earliest`, `latest` or an RFC 3339 time, not `{time}`")
                }),
        }
    }
}

impl KafkaTrigger {
    /// Settings that parse but cannot work; each error names its field.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        if let Some(size) = self.batch_size {
            if !(1..=MAX_BATCH_SIZE).contains(&size) {
                bail!("batch_size must be between 1 and {MAX_BATCH_SIZE}, not {size}");
            }
        }
        if self.batch_window_ms > MAX_BATCH_WINDOW_MS {
            bail!(
                "batch_window_ms must be at most {MAX_BATCH_WINDOW_MS}, not {}",
                self.batch_window_ms
            );
        }
        if !(1..=1_000_000).contains(&self.max_buffered_messages) {
            bail!(
                "max_buffered_messages must be between 1 and 1000000, not {}",
                self.max_buffered_messages
            );
        }
        if self.max_record_age_s == Some(0) {
            bail!("max_record_age_s must be at least 1 (leave it out for no limit)");
        }
        if self.retry_backoff_ms == 0 {
            bail!("retry_backoff_ms must be at least 1");
        }
        if self.retry_backoff_max_ms < self.retry_backoff_ms {
            bail!(
                "retry_backoff_max_ms ({}) must be at least retry_backoff_ms ({})",
                self.retry_backoff_max_ms,
                self.retry_backoff_ms
            );
        }
        if self.handler_timeout_ms == 0 {
            bail!("handler_timeout_ms must be at least 1");
        }
        for (i, filter) in self.filters.iter().enumerate() {
            filter.validate().with_context(|| format!("filters[{i}]"))?;
        }
        Ok(())
    }

    pub fn dead_letter_topic(&self, topic: &str) -> String {
        self.dead_letter_topic
            .as_deref()
            .unwrap_or("{topic}.dlq")
            .replace("{topic}", topic)
    }
}

#[derive(Debug, Clone, Default)]
pub struct App {
    pub name: String,
    pub version: Option<String>,
    /// Directory of `spin.toml`: the base of relative paths and of `.spin/`.
    pub dir: PathBuf,
    /// Whether the app came from local files (not a registry): only then
    /// does it have a default state directory.
    pub local: bool,
    pub variables: BTreeMap<String, AppVariable>,
    pub components: BTreeMap<String, ComponentSpec>,
    pub http_triggers: Vec<HttpTrigger>,
    pub kafka_triggers: Vec<KafkaTrigger>,
    pub cron_triggers: Vec<CronTrigger>,
    /// `[application.trigger.kafka]`: connection and relay settings.
    pub kafka_settings: serde_json::Map<String, Json>,
}

impl App {
    pub fn component(&self, id: &str) -> Result<&ComponentSpec> {
        self.components
            .get(id)
            .with_context(|| format!("no component `{id}` in the application"))
    }

    /// Adds a trigger of `trigger_type` from its manifest configuration.
    pub fn add_trigger(&mut self, trigger_type: &str, config: Json) -> Result<()> {
        let component = || -> Result<String> {
            config
                .get("component")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .with_context(|| {
                    format!("a `{trigger_type}` trigger needs a `component` reference")
                })
        };
        match trigger_type {
            "http" => {
                let route = config.get("route").and_then(Json::as_str).context(
                    "an http trigger needs a string `route` (private routes are not supported)",
                )?;
                self.http_triggers.push(HttpTrigger {
                    route: route.to_owned(),
                    component: component()?,
                });
            }
            "kafka" => {
                let trigger: KafkaTrigger = serde_json::from_value(config)
                    .context("invalid `[[trigger.kafka]]` configuration")?;
                if trigger.topics.is_empty() {
                    bail!(
                        "a kafka trigger for `{}` lists no topics",
                        trigger.component
                    );
                }
                trigger
                    .validate()
                    .with_context(|| format!("`[[trigger.kafka]]` for `{}`", trigger.component))?;
                self.kafka_triggers.push(trigger);
            }
            "cron" => {
                let expression = config
                    .get("cron_expression")
                    .and_then(Json::as_str)
                    .context("a cron trigger needs a `cron_expression`")?;
                self.cron_triggers.push(CronTrigger {
                    component: component()?,
                    cron_expression: expression.to_owned(),
                });
            }
            other => {
                tracing::warn!(
                    trigger = other,
                    "ignoring a trigger type this host does not run"
                )
            }
        }
        Ok(())
    }

    /// Keeps only the `wanted` components and the triggers that run them, as
    /// `spin up --component-id` does (Spin's `retain_components`, with its
    /// words): a component no kept trigger runs goes too. With no Kafka
    /// trigger left, the Kafka settings go as well: Spin would not start
    /// the Kafka trigger at all, so this process runs no relay.
    pub fn retain_components(&mut self, wanted: &[String]) -> Result<()> {
        for id in wanted {
            if !self.components.contains_key(id) {
                bail!(
                    "failed to resolve application with only components selected with --component: \
                     Specified component \"{id}\" not found in application"
                );
            }
        }
        let kept = |component: &String| wanted.contains(component);
        self.http_triggers.retain(|t| kept(&t.component));
        self.kafka_triggers.retain(|t| kept(&t.component));
        self.cron_triggers.retain(|t| kept(&t.component));
        let triggered: std::collections::BTreeSet<String> = self
            .http_triggers
            .iter()
            .map(|t| t.component.clone())
            .chain(self.kafka_triggers.iter().map(|t| t.component.clone()))
            .chain(self.cron_triggers.iter().map(|t| t.component.clone()))
            .collect();
        self.components.retain(|id, _| triggered.contains(id));
        if self.kafka_triggers.is_empty() {
            self.kafka_settings.clear();
        }
        if self.http_triggers.is_empty()
            && self.kafka_triggers.is_empty()
            && self.cron_triggers.is_empty()
        {
            bail!("No triggers in app");
        }
        Ok(())
    }

    /// Every trigger must name a component that exists.
    pub fn validate(&self) -> Result<()> {
        let referenced = self
            .http_triggers
            .iter()
            .map(|t| &t.component)
            .chain(self.kafka_triggers.iter().map(|t| &t.component))
            .chain(self.cron_triggers.iter().map(|t| &t.component));
        for id in referenced {
            self.component(id)?;
        }
        Ok(())
    }

    /// Every SQLite database label some component uses.
    pub fn sqlite_labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self
            .components
            .values()
            .flat_map(|c| c.sqlite_databases.iter().cloned())
            .collect();
        labels.sort();
        labels.dedup();
        labels
    }
}
