//! Command-line arguments. Spin hands a trigger plugin every `spin up` flag
//! that the plugin declares (see `--launch-metadata-only`), so the plugin
//! accepts Spin's common trigger flags; standalone `up` adds its own.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Args {
    /// `up`: run the whole app from spin.toml without Spin.
    pub standalone: bool,
    pub manifest: Option<PathBuf>,
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub runtime_config_file: Option<PathBuf>,
    pub state_dir: Option<String>,
    pub disable_pooling: bool,
    pub launch_metadata_only: bool,
    pub help_args_only: bool,
    pub help: bool,
    /// `topics apply`: create the topics of a topic file.
    pub topics_apply: bool,
    pub topics_file: Option<PathBuf>,
    pub brokers: Option<String>,
    pub wait_secs: Option<u64>,
}

/// Flags Spin may pass us: (long, short, takes a value).
pub const PLUGIN_FLAGS: &[(&str, Option<&str>, bool)] = &[
    ("--runtime-config-file", None, true),
    ("--state-dir", None, true),
    ("--log-dir", Some("-L"), true),
    ("--truncate-logs", None, false),
    ("--disable-cache", None, false),
    ("--cache", None, true),
    ("--disable-pooling", None, false),
    ("--follow", None, true),
    ("--quiet", Some("-q"), false),
    ("--kafka-admin-listen", None, true),
];

pub const HELP: &str = "\
trigger-kafka: Kafka and timer triggers for Spin apps, with an outbox relay.

USAGE:
    trigger-kafka up [OPTIONS]      run the whole app (HTTP, Kafka, cron, relay) from spin.toml
    trigger-kafka topics apply      create the topics of kafka/topics.toml (-t FILE), on the brokers
                                    of spin.toml's [application.trigger.kafka] (-f FILE) or --brokers
    spin up [OPTIONS]               with this binary installed as Spin's trigger-kafka plugin

OPTIONS (up):
    -f, --from <spin.toml>            manifest (default ./spin.toml)
        --listen <addr:port>          HTTP address (default 127.0.0.1:3000)
OPTIONS (both):
        --runtime-config-file <file>  Spin runtime config (SQLite and key-value locations)
        --state-dir <dir>             state directory (default <app>/.spin)
        --kafka-admin-listen <addr>   /metrics and /healthz (default 127.0.0.1:9464)
        --disable-pooling             do not use the pooling instance allocator

ENVIRONMENT:
    SPIN_VARIABLE_<NAME>              value of application variable <name> (e.g. SPIN_VARIABLE_KAFKA_BROKERS)
    RUST_LOG                          log filter (default info); TRIGGER_KAFKA_LOG_FORMAT=json for JSON logs
";

impl Args {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args> {
        let mut parsed = Args::default();
        let mut args = args.into_iter().peekable();
        match args.peek().map(String::as_str) {
            Some("up") => {
                parsed.standalone = true;
                args.next();
            }
            Some("topics") => {
                args.next();
                if args.next().as_deref() != Some("apply") {
                    bail!("usage: trigger-kafka topics apply [-t kafka/topics.toml] [-f spin.toml] [--brokers host:port]");
                }
                parsed.topics_apply = true;
            }
            _ => {}
        }
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => args.next().with_context(|| format!("{name} needs a value")),
                }
            };
            match flag.as_str() {
                "-f" | "--from" | "--file" if parsed.standalone || parsed.topics_apply => {
                    parsed.manifest = Some(value(&flag)?.into())
                }
                "-t" | "--topics" if parsed.topics_apply => {
                    parsed.topics_file = Some(value(&flag)?.into())
                }
                "--brokers" if parsed.topics_apply => parsed.brokers = Some(value(&flag)?),
                "--wait-secs" if parsed.topics_apply => {
                    parsed.wait_secs =
                        Some(value(&flag)?.parse().context("--wait-secs takes seconds")?)
                }
                "--listen" if parsed.standalone => parsed.listen = Some(value(&flag)?),
                "--runtime-config-file" => parsed.runtime_config_file = Some(value(&flag)?.into()),
                "--state-dir" => parsed.state_dir = Some(value(&flag)?),
                "--kafka-admin-listen" => parsed.admin_listen = Some(value(&flag)?),
                "--disable-pooling" => parsed.disable_pooling = true,
                "--launch-metadata-only" => parsed.launch_metadata_only = true,
                "--help-args-only" => parsed.help_args_only = true,
                "-h" | "--help" => parsed.help = true,
                // Spin's logging and cache flags: accepted; this host logs to
                // stdout/stderr and keeps its own compilation cache.
                "-L" | "--log-dir" | "--cache" | "--follow" => {
                    value(&flag)?;
                }
                "--truncate-logs" | "--disable-cache" | "-q" | "--quiet" => {}
                other => bail!("unknown argument `{other}`; see trigger-kafka --help"),
            }
        }
        Ok(parsed)
    }
}

/// What `spin up` asks for with `--launch-metadata-only`: the flags we take.
pub fn launch_metadata() -> serde_json::Value {
    let flags: Vec<serde_json::Value> = PLUGIN_FLAGS
        .iter()
        .map(|(long, short, _)| match short {
            Some(s) => serde_json::json!({ "long": long, "short": s }),
            None => serde_json::json!({ "long": long }),
        })
        .collect();
    serde_json::json!({ "all_flags": flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_standalone_and_plugin_flags() {
        let a = parse(&[
            "up",
            "-f",
            "app/spin.toml",
            "--listen=0.0.0.0:80",
            "--state-dir",
            ".state",
        ])
        .unwrap();
        assert!(a.standalone);
        assert_eq!(a.manifest, Some("app/spin.toml".into()));
        assert_eq!(a.listen.as_deref(), Some("0.0.0.0:80"));
        let p = parse(&[
            "--runtime-config-file",
            "/rc.toml",
            "-L",
            "/logs",
            "--quiet",
        ])
        .unwrap();
        assert!(!p.standalone);
        assert_eq!(p.runtime_config_file, Some("/rc.toml".into()));
        assert!(
            parse(&["--listen", "x"]).is_err(),
            "--listen belongs to Spin's HTTP trigger"
        );
        assert!(parse(&["--bogus"]).is_err());
        let t = parse(&["topics", "apply", "-t", "k/topics.toml", "--brokers", "b:1"]).unwrap();
        assert!(t.topics_apply);
        assert_eq!(t.brokers.as_deref(), Some("b:1"));
    }
}
