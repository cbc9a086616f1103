//! Command-line arguments. As a Spin plugin, this binary takes the flags
//! Spin's own triggers take (`spin up` hands each trigger the flags its
//! `--launch-metadata-only` answer lists), with the same names, environment
//! variables and meaning; standalone `up` adds what `spin up` itself does
//! (`--from`, `--listen`, `--env`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};

/// Which trigger a plugin process serves; the binary's name decides, since
/// the same binary is installed as `trigger-kafka` and `trigger-cron`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginRole {
    Kafka,
    Cron,
}

impl PluginRole {
    pub fn from_program(program: &str) -> PluginRole {
        let name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("trigger-cron") {
            PluginRole::Cron
        } else {
            PluginRole::Kafka
        }
    }

    /// The admin-listener flag that belongs to this role: each plugin
    /// process has its own, so two plugins of one app never share a port.
    pub fn admin_flag(self) -> &'static str {
        match self {
            PluginRole::Kafka => "kafka-admin-listen",
            PluginRole::Cron => "cron-admin-listen",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "trigger-kafka",
    version,
    about = "Kafka and timer triggers for Spin apps, with a transactional-outbox relay",
    long_about = "Kafka and timer triggers for Spin apps, with a transactional-outbox relay.\n\n\
        Installed as the Spin plugins `trigger-kafka` and `trigger-cron`, `spin up` starts it for \
        `[[trigger.kafka]]` and `[[trigger.cron]]`; `trigger-kafka up` runs a whole app (HTTP too) \
        without the Spin CLI.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags Spin passes to a trigger plugin.
    #[command(flatten)]
    pub trigger: TriggerArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole app (HTTP, Kafka, timers, outbox relay) from spin.toml, as `spin up` would.
    Up(Box<UpArgs>),
    /// Topic tooling.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Dead letters: list them, replay them to their topics once each.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Outbox rows the relay gave up on: list them, put them back in line.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Show the dead rows of an app's outbox: seq, topic, key, attempts, when and why.
    ListDead(crate::outbox_admin::OutboxArgs),
    /// Clear the dead mark of rows so the running relay publishes them again.
    Requeue(crate::outbox_admin::OutboxRequeueArgs),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show a dead-letter topic: reason, kind, attempts, origin, age, key.
    List(DlqListArgs),
    /// Republish dead letters to their original topic with their key and headers
    /// (plus `dlq-replayed`), exactly once each even if interrupted.
    Replay(DlqReplayArgs),
}

/// Where the brokers are: the manifest's `[application.trigger.kafka]`, or `--brokers`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The app whose `[application.trigger.kafka]` names the brokers and
    /// security settings.
    #[command(flatten)]
    pub app: crate::manifest::AppFile,
    /// Brokers (host:port,...); overrides the manifest.
    #[arg(long)]
    pub brokers: Option<String>,
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// The dead-letter topic (`task-events.dlq`), or the topic whose twin it is (`task-events`).
    pub topic: String,
    #[command(flatten)]
    pub brokers: BrokerArgs,
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// The dead-letter topic (`task-events.dlq`), or the topic whose twin it is (`task-events`).
    pub topic: String,
    /// Only dead letters that failed at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_rfc3339)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only dead letters with this key.
    #[arg(long)]
    pub key: Option<String>,
    /// Say what would be replayed; send nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where replay progress is kept (one file per dead-letter topic).
    #[arg(long, default_value = ".spin/dlq-replay")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub brokers: BrokerArgs,
}

fn parse_rfc3339(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("`{text}` is not an RFC 3339 time (2026-11-29T09:00:00Z): {e}"))
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the topics of a topic file (and their dead-letter twins) on the brokers.
    Apply(TopicsApplyArgs),
}

#[derive(Debug, Args)]
pub struct TopicsApplyArgs {
    /// Topic definitions.
    #[arg(short = 't', long = "topics", default_value = "kafka/topics.toml")]
    pub topics_file: PathBuf,
    #[command(flatten)]
    pub brokers: BrokerArgs,
    /// How long to wait for the brokers, in seconds.
    #[arg(long = "wait-secs", default_value_t = 30)]
    pub wait_secs: u64,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub app: crate::manifest::AppFile,
    /// An environment variable (KEY=VALUE) for every component, as `spin up --env`.
    #[arg(short = 'e', long = "env", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// Run only this component and the triggers that run it; may be given
    /// more than once (the default is all), as `spin up --component-id`.
    #[arg(short = 'c', long = "component-id")]
    pub components: Vec<String>,
    #[command(flatten)]
    pub http: crate::http_trigger::HttpArgs,
    #[command(flatten)]
    pub trigger: TriggerArgs,
}

/// The trigger flags of Spin 3.6 (`spin_trigger::cli` and the runtime
/// factors' `TriggerAppArgs`), plus this host's admin listeners.
#[derive(Debug, Default, Args)]
pub struct TriggerArgs {
    /// Log directory for the stdout and stderr of components; empty disables logging to disk.
    #[arg(short = 'L', long = "log-dir", env = "SPIN_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Truncate the log files before starting.
    #[arg(long = "truncate-logs")]
    pub truncate_logs: bool,
    /// Accepted for Spin compatibility; this host keeps its own compilation cache.
    #[arg(
        long = "disable-cache",
        env = "DISABLE_WASMTIME_CACHE",
        conflicts_with = "cache"
    )]
    pub disable_cache: bool,
    /// Accepted for Spin compatibility (a Wasmtime cache configuration file).
    #[arg(long = "cache", env = "WASMTIME_CACHE_FILE")]
    pub cache: Option<PathBuf>,
    /// Do not use Wasmtime's pooling instance allocator.
    #[arg(long = "disable-pooling")]
    pub disable_pooling: bool,
    /// Print output to stdout/stderr only for these components.
    #[arg(long = "follow")]
    pub follow: Vec<String>,
    /// Silence all component output to stdout/stderr.
    #[arg(short = 'q', long = "quiet", conflicts_with = "follow")]
    pub quiet: bool,
    /// Spin runtime configuration file (SQLite, key-value stores, variable providers).
    #[arg(long = "runtime-config-file", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Application state directory (default: .spin beside spin.toml); empty for none.
    #[arg(long = "state-dir")]
    pub state_dir: Option<String>,
    /// Set a key/value pair (key=value) in the default key-value store at start.
    #[arg(long = "key-value", value_parser = parse_key_value)]
    pub key_values: Vec<(String, String)>,
    /// Run a SQLite statement against the default database at start; `@file` runs a file.
    #[arg(long = "sqlite")]
    pub sqlite_statements: Vec<String>,
    /// Largest linear memory, in bytes, one component instance may use.
    #[arg(long = "max-instance-memory", env = "SPIN_MAX_INSTANCE_MEMORY")]
    pub max_instance_memory: Option<usize>,
    /// Application variable(s): KEY=VALUE, KEY=@FILE, @FILE.json or @FILE.toml.
    #[arg(
        long = "variable",
        value_name = "KEY=VALUE | KEY=@FILE | @FILE.json | @FILE.toml"
    )]
    pub variables: Vec<String>,
    /// Component instances alive at once across all triggers (the pooling
    /// allocator's slots); HTTP gets what the Kafka and timer triggers' share leaves.
    #[arg(long = "max-instances", default_value_t = crate::engine::MAX_INSTANCES)]
    pub max_instances: usize,
    #[command(flatten)]
    pub admin: crate::admin::AdminArgs,
    /// Spin's HTTP-trigger flags. Spin gives them only to its HTTP trigger,
    /// unless it could not read the launch metadata (say, `RUST_LOG` noise
    /// on stderr), in which case every trigger gets every flag: accepted
    /// and ignored then, rather than failing the whole app.
    #[arg(long = "listen", hide = true)]
    pub ignored_listen: Option<String>,
    #[arg(long = "tls-cert", hide = true)]
    pub ignored_tls_cert: Option<String>,
    #[arg(long = "tls-key", hide = true)]
    pub ignored_tls_key: Option<String>,
    #[arg(long = "find-free-port", hide = true)]
    pub ignored_find_free_port: bool,
    #[arg(long = "http1-max-buf-size", hide = true)]
    pub ignored_http1_max_buf_size: Option<String>,
    #[arg(long = "help-args-only", hide = true)]
    pub help_args_only: bool,
    #[arg(long = "launch-metadata-only", hide = true)]
    pub launch_metadata_only: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("expected KEY=VALUE, got `{s}`"),
    }
}

impl TriggerArgs {
    /// Variables from `--variable`, later ones winning, as Spin merges them.
    pub fn variable_values(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for source in &self.variables {
            out.extend(
                parse_variable_source(source).with_context(|| format!("--variable {source}"))?,
            );
        }
        Ok(out)
    }
}

/// One `--variable` source, as Spin reads it.
fn parse_variable_source(source: &str) -> Result<Vec<(String, String)>> {
    if let Some(file) = source.strip_prefix('@') {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read variables file `{file}`"))?;
        let pairs: Vec<(String, serde_json::Value)> = if file.ends_with(".json") {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).context("not a JSON object")?;
            map.into_iter().collect()
        } else if file.ends_with(".toml") {
            let table: toml::Table = toml::from_str(&text).context("not TOML")?;
            table
                .into_iter()
                .map(|(k, v)| Ok((k, serde_json::to_value(v)?)))
                .collect::<Result<_>>()?
        } else {
            bail!("a variables file must end in .json or .toml");
        };
        return pairs
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => bail!("variable `{k}` must be a string, not {other}"),
            })
            .collect();
    }
    let (key, value) = source
        .split_once('=')
        .context("expected KEY=VALUE, KEY=@FILE, @FILE.json or @FILE.toml")?;
    let value = match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read `{file}` for variable `{key}`"))?,
        None => value.to_owned(),
    };
    Ok(vec![(key.to_owned(), value)])
}

/// What `spin up` asks for with `--launch-metadata-only`: the flags this
/// role takes. A flag no role lists goes to no trigger, so each role lists
/// only its own admin flag and Spin's common ones.
pub fn launch_metadata(role: PluginRole) -> serde_json::Value {
    let command = Cli::command();
    let other = match role {
        PluginRole::Kafka => PluginRole::Cron.admin_flag(),
        PluginRole::Cron => PluginRole::Kafka.admin_flag(),
    };
    let flags: Vec<serde_json::Value> = command
        .get_arguments()
        .filter(|a| a.get_long() != Some(other))
        .filter(|a| !a.get_id().as_str().starts_with("ignored_"))
        .filter_map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|s| format!("-{s}"));
            if long.is_none() && short.is_none() {
                return None;
            }
            let mut flag = serde_json::Map::new();
            if let Some(long) = long {
                flag.insert("long".into(), long.into());
            }
            if let Some(short) = short {
                flag.insert("short".into(), short.into());
            }
            Some(serde_json::Value::Object(flag))
        })
        .collect();
    serde_json::json!({ "all_flags": flags })
}

/// `--help-args-only`: the flags, as Spin prints them under `spin up --help`.
pub fn help_args() -> String {
    let mut command = Cli::command()
        .disable_help_flag(true)
        .help_template("{all-args}");
    command.render_long_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("trigger-kafka").chain(args.iter().copied()))
    }

    #[test]
    fn parses_standalone_and_plugin_flags() {
        let cli = parse(&[
            "up",
            "-f",
            "app/spin.toml",
            "--listen=0.0.0.0:80",
            "--state-dir",
            ".state",
            "-e",
            "A=b=c",
        ])
        .unwrap();
        let Some(Command::Up(up)) = cli.command else {
            panic!("up")
        };
        let up = *up;
        assert_eq!(up.app.from, PathBuf::from("app/spin.toml"));
        assert_eq!(up.http.listen, "0.0.0.0:80");
        assert_eq!(up.trigger.state_dir.as_deref(), Some(".state"));
        assert_eq!(up.env, vec![("A".into(), "b=c".into())]);
        let plugin = parse(&[
            "--runtime-config-file",
            "/rc.toml",
            "-L",
            "/logs",
            "--quiet",
            "--sqlite",
            "SELECT 1",
            "--variable",
            "a=b",
        ])
        .unwrap();
        assert!(plugin.command.is_none());
        assert_eq!(plugin.trigger.runtime_config_file, Some("/rc.toml".into()));
        assert_eq!(plugin.trigger.sqlite_statements, ["SELECT 1"]);
        assert_eq!(
            plugin.trigger.variable_values().unwrap(),
            [("a".to_owned(), "b".to_owned())]
        );
        assert!(
            parse(&["up", "--state-dir", "x", "--runtime-config-file"]).is_err(),
            "a flag without its value"
        );
        assert!(parse(&["--bogus"]).is_err());
        let topics =
            parse(&["topics", "apply", "-t", "k/topics.toml", "--brokers", "b:1"]).unwrap();
        let Some(Command::Topics(TopicsCommand::Apply(apply))) = topics.command else {
            panic!("topics apply")
        };
        assert_eq!(apply.brokers.brokers.as_deref(), Some("b:1"));
        let replay = parse(&[
            "dlq",
            "replay",
            "jobs",
            "--since",
            "2026-11-29T09:00:00+01:00",
            "--key",
            "u1",
            "--dry-run",
        ])
        .unwrap();
        let Some(Command::Dlq(DlqCommand::Replay(replay))) = replay.command else {
            panic!("dlq replay")
        };
        assert_eq!(
            (replay.topic.as_str(), replay.key.as_deref(), replay.dry_run),
            ("jobs", Some("u1"), true)
        );
        assert_eq!(
            replay.since.unwrap().to_rfc3339(),
            "2026-11-29T08:00:00+00:00"
        );
        assert!(parse(&["dlq", "replay", "jobs", "--since", "yesterday"]).is_err());
    }

    #[test]
    fn each_role_declares_only_its_own_admin_flag() {
        let longs = |role| -> Vec<String> {
            launch_metadata(role)["all_flags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["long"].as_str().map(str::to_owned))
                .collect()
        };
        let kafka = longs(PluginRole::Kafka);
        let cron = longs(PluginRole::Cron);
        assert!(kafka.contains(&"--kafka-admin-listen".to_owned()));
        assert!(!kafka.contains(&"--cron-admin-listen".to_owned()));
        assert!(cron.contains(&"--cron-admin-listen".to_owned()));
        assert!(!cron.contains(&"--kafka-admin-listen".to_owned()));
        for common in [
            "--runtime-config-file",
            "--state-dir",
            "--variable",
            "--sqlite",
        ] {
            assert!(kafka.contains(&common.to_owned()) && cron.contains(&common.to_owned()));
        }
        assert!(
            !kafka.iter().any(|f| f == "--listen" || f == "--from"),
            "--listen belongs to Spin's HTTP trigger: {kafka:?}"
        );
    }

    #[test]
    fn variable_sources_read_files_like_spin() {
        let dir = std::env::temp_dir().join(format!("tk-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("v.json");
        std::fs::write(&json, r#"{"a": "1", "b": "two"}"#).unwrap();
        let toml = dir.join("v.toml");
        std::fs::write(&toml, "c = \"3\"\n").unwrap();
        let text = dir.join("secret.txt");
        std::fs::write(&text, "s3cret").unwrap();
        let mut args = TriggerArgs::default();
        args.variables = vec![
            format!("@{}", json.display()),
            format!("@{}", toml.display()),
            format!("d=@{}", text.display()),
            "a=override".into(),
        ];
        let mut values = args.variable_values().unwrap();
        values.sort();
        assert_eq!(
            values,
            [
                ("a".to_owned(), "1".to_owned()),
                ("a".to_owned(), "override".to_owned()),
                ("b".to_owned(), "two".to_owned()),
                ("c".to_owned(), "3".to_owned()),
                ("d".to_owned(), "s3cret".to_owned()),
            ]
        );
        args.variables = vec!["@nope.yaml".into()];
        assert!(args.variable_values().is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
