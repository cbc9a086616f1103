//! trigger-kafka: runs Spin components from Kafka topics and timers, relays
//! their transactional outbox to Kafka, and (standalone) serves their HTTP
//! routes, so the whole app runs with or without the Spin CLI.
//!
//! # Layout
//!
//! - Starting: `main` (this file: the commands, and `run`, which loads the
//!   app and starts each trigger), `triggers` (the [`triggers::Trigger`]
//!   each trigger type implements, and the running work `run` waits on),
//!   `cli` (the commands and Spin's trigger flags; each trigger's own flags
//!   live with it), `manifest` and `locked` (the app from `spin.toml` or
//!   Spin's locked app), `app` (the app as the host runs it),
//!   `runtime_config`, `variables`, `startup` (what Spin does before
//!   serving).
//! - Running components: `engine` (Wasmtime, pre-instantiated components,
//!   the instance pool), `bindings` (the trigger worlds from `kafka/wit`),
//!   `host/` (the Spin interfaces a component imports, their bindings:
//!   SQLite, key-value, variables, outbound HTTP, its logs).
//! - Triggers: `kafka_trigger/` (consumer groups, the poll loop, partition
//!   workers, handler calls, dead letters, and `start`: the Kafka side of a
//!   process; see its Layout), `filters`, `cron_trigger` (timers),
//!   `http_trigger` and `routes` (standalone HTTP).
//! - Kafka: `kafka_client` (settings and the one record builder), `relay`
//!   (the outbox to Kafka; `relay::sqlite` and `relay::postgres` read it,
//!   `relay::store` picks), `topics` (`topics apply`).
//! - Operating it: `admin` (`/metrics`, `/healthz`, its flags), `console`
//!   (the operations console), `metrics`, `telemetry` (OTLP traces), `dlq`
//!   and `outbox_admin` (the operator's commands).
//!
//! No module uses one that uses it back (`tests/layout.rs` holds that):
//! read them from `host/` and `engine` up to `triggers` and `main`.

mod admin;
mod app;
mod bindings;
mod cli;
mod console;
mod cron_trigger;
mod dlq;
mod engine;
mod filters;
mod host;
mod http_trigger;
mod kafka_client;
mod kafka_trigger;
mod locked;
mod manifest;
mod metrics;
mod outbox_admin;
mod relay;
mod routes;
mod runtime_config;
mod startup;
mod telemetry;
mod topics;
mod triggers;
mod variables;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tokio::sync::watch;

use crate::app::App;
use crate::cli::{
    Cli, Command, DlqCommand, OutboxCommand, PluginRole, TopicsApplyArgs, TopicsCommand,
    TriggerArgs,
};
use crate::engine::Runtime;
use crate::kafka_client::KafkaSettings;
use crate::metrics::Metrics;
use crate::runtime_config::{RuntimeConfig, StateDir};
use crate::triggers::{Running, Trigger};

/// Which triggers this process runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Roles {
    http: bool,
    kafka: bool,
    cron: bool,
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    // TRIGGER_KAFKA_LOG first: under `spin up`, RUST_LOG also turns on
    // Spin's own logging, whose lines on stderr break Spin's reading of
    // the plugins' launch metadata.
    let filter = std::env::var("TRIGGER_KAFKA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // Server notices (NOTICE, WARNING) from the guests' Postgres sessions are
        // theirs, not the operator's: only the driver's own warnings show.
        .unwrap_or_else(|| EnvFilter::new("info,tokio_postgres=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("TRIGGER_KAFKA_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    let cli = Cli::parse();
    let program = std::env::args().next().unwrap_or_default();
    let role = PluginRole::from_program(&program);
    if cli.trigger.help_args_only {
        print!("{}", cli::help_args());
        return;
    }
    if cli.trigger.launch_metadata_only {
        eprintln!("{}", cli::launch_metadata(role));
        return;
    }
    init_logging();
    match telemetry::init() {
        Ok(true) => tracing::info!("exporting traces over OTLP"),
        Ok(false) => {}
        Err(e) => tracing::error!("traces are off: {e:#}"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match cli.command {
        Some(Command::Topics(TopicsCommand::Apply(args))) => runtime.block_on(apply_topics(args)),
        Some(Command::Dlq(DlqCommand::List(args))) => {
            broker_config(&args.brokers).and_then(|config| dlq::list(&config, &args.topic))
        }
        Some(Command::Dlq(DlqCommand::Replay(args))) => {
            broker_config(&args.brokers).and_then(|config| {
                let filter = dlq::ReplayFilter {
                    since: args.since,
                    key: args.key.clone(),
                    id: None,
                };
                runtime
                    .block_on(dlq::replay(
                        &config,
                        &args.topic,
                        &filter,
                        &args.state_dir,
                        args.dry_run,
                    ))
                    .map(|_| ())
            })
        }
        Some(Command::Outbox(OutboxCommand::ListDead(args))) => outbox_admin::list_dead(&args),
        Some(Command::Outbox(OutboxCommand::Requeue(args))) => outbox_admin::requeue_command(&args),
        Some(Command::Up(up)) => {
            let up = *up;
            let launch = Launch {
                manifest: Some(up.app.from),
                env: up.env,
                components: up.components,
                role: None,
                http: Some(up.http),
            };
            runtime.block_on(run(launch, up.trigger))
        }
        None => {
            let launch = Launch {
                manifest: None,
                env: Vec::new(),
                // Spin has applied `--component-id` to the locked app.
                components: Vec::new(),
                role: Some(role),
                http: None,
            };
            runtime.block_on(run(launch, cli.trigger))
        }
    };
    telemetry::shutdown();
    // Exit without dropping the runtime or Kafka clients: their destructors
    // wait for a broker that may be gone, and the work is already committed.
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// How this process was started: standalone `up` (a manifest, its HTTP
/// flags, `--env`) or as a Spin plugin in one role.
struct Launch {
    manifest: Option<PathBuf>,
    env: Vec<(String, String)>,
    components: Vec<String>,
    role: Option<PluginRole>,
    http: Option<http_trigger::HttpArgs>,
}

/// Loads the app the way this process was started: `up` reads spin.toml;
/// as a Spin plugin, the locked app Spin wrote.
fn load(launch: &Launch) -> Result<(App, Roles)> {
    if let Some(manifest) = &launch.manifest {
        let mut app = manifest::load(&manifest::path_of(manifest))?;
        if !launch.components.is_empty() {
            app.retain_components(&launch.components)?;
        }
        for component in app.components.values_mut() {
            component.env.extend(launch.env.iter().cloned());
        }
        return Ok((
            app,
            Roles {
                http: true,
                kafka: true,
                cron: true,
            },
        ));
    }
    let locked_url = std::env::var("SPIN_LOCKED_URL")
        .context("SPIN_LOCKED_URL is not set: run `trigger-kafka up` standalone, or install this as a Spin plugin")?;
    // Set for local apps (empty when Spin found spin.toml in the working
    // directory); unset for apps from a registry, which have no state dir.
    let app_dir = match std::env::var("SPIN_LOCAL_APP_DIR") {
        Ok(dir) if dir.is_empty() => Some(std::env::current_dir()?),
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) => None,
    };
    let app = locked::load(&locked_url, app_dir.as_deref())?;
    let cron = launch.role == Some(PluginRole::Cron);
    Ok((
        app,
        Roles {
            http: false,
            kafka: !cron,
            cron,
        },
    ))
}

/// `topics apply`: brokers and security from the manifest (if any), with
/// `--brokers` taking precedence.
/// Client settings for the tools: brokers and security from the manifest
/// (with its variables), `--brokers` overriding the brokers.
fn broker_config(args: &cli::BrokerArgs) -> Result<rdkafka::ClientConfig> {
    let manifest = args.app.path();
    let settings = if manifest.exists() {
        let app = manifest::load(&manifest)?;
        let resolver = variables::Resolver::from_env(&app)?;
        Some(KafkaSettings::from_app(&app.kafka_settings, &resolver)?)
    } else {
        None
    };
    let brokers = match (&args.brokers, &settings) {
        (Some(b), _) => b.clone(),
        (None, Some(s)) => s.brokers.clone(),
        (None, None) => bail!("give --brokers, or run where spin.toml names them"),
    };
    let mut config = settings.map(|s| s.client_config()).unwrap_or_default();
    config.set("bootstrap.servers", brokers);
    Ok(config)
}

async fn apply_topics(args: TopicsApplyArgs) -> Result<()> {
    let topics = topics::load(&args.topics_file)?;
    let config = broker_config(&args.brokers)?;
    let brokers = config
        .get("bootstrap.servers")
        .unwrap_or_default()
        .to_owned();
    let wait = std::time::Duration::from_secs(args.wait_secs);
    topics::apply(&topics, &brokers, config, wait).await
}

/// An app that trusts a header for identity must never run unnoticed:
/// apps declare it with a `dev_auth` variable (this project's convention).
fn warn_about_development_mode(resolver: &variables::Resolver) {
    let on = |name: &str| {
        resolver
            .get(name)
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
    };
    if !on("dev_auth") {
        return;
    }
    if resolver.get("jwt_secret").is_ok_and(|s| !s.is_empty()) {
        tracing::warn!("dev_auth is on but jwt_secret is set: the X-User-Id header is ignored and tokens are required");
    } else {
        tracing::warn!(
            "DEVELOPMENT MODE: dev_auth=true and no jwt_secret, so anyone who can reach this server \
             is whoever their X-User-Id header says (requests are answered only when addressed to \
             localhost or allowed_hosts). Never run this way where others can connect."
        );
    }
}

async fn shutdown_signal(sender: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight work");
    let _ = sender.send(true);
}

/// Raises the open-file soft limit to the hard limit: every HTTP
/// connection, stream and database file is a descriptor, and the usual soft
/// limit (1024) is below the connection limit plus what the triggers hold.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            tracing::debug!(
                from = before,
                to = limit.rlim_max,
                "raised the open-file limit"
            );
        }
    }
}

async fn run(launch: Launch, args: TriggerArgs) -> Result<()> {
    raise_open_file_limit();
    let (app, roles) = load(&launch)?;
    let cwd = std::env::current_dir()?;
    let config = RuntimeConfig::load(
        args.runtime_config_file.as_deref(),
        app.local.then_some(app.dir.as_path()),
        StateDir::from_flag(args.state_dir.as_deref()),
        StateDir::from_flag(
            args.log_dir
                .as_ref()
                .map(|p| p.to_string_lossy())
                .as_deref(),
        ),
        &cwd,
    )?;
    // Spin's provider chain: --variable, the runtime config's providers,
    // then the environment (and ./.env).
    let mut providers = vec![variables::Provider::Static(
        args.variable_values()?.into_iter().collect(),
    )];
    providers.extend(config.variable_providers.iter().cloned());
    providers.push(variables::Provider::default_env());
    let resolver = variables::Resolver::resolve(&app, &providers, |k| std::env::var(k).ok())?;
    let missing = resolver.missing();
    if !missing.is_empty() {
        bail!(
            "required variables have no value: {} (set them with --variable, or as {})",
            missing.join(", "),
            missing
                .iter()
                .map(|v| variables::env_name(v))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    warn_about_development_mode(&resolver);
    let mut wanted: Vec<String> = Vec::new();
    if roles.http {
        wanted.extend(app.http_triggers.iter().map(|t| t.component.clone()));
    }
    if roles.kafka {
        wanted.extend(app.kafka_triggers.iter().map(|t| t.component.clone()));
    }
    if roles.cron {
        wanted.extend(app.cron_triggers.iter().map(|t| t.component.clone()));
    }
    wanted.sort();
    wanted.dedup();
    let kafka_settings =
        if roles.kafka && (!app.kafka_settings.is_empty() || !app.kafka_triggers.is_empty()) {
            Some(KafkaSettings::from_app(&app.kafka_settings, &resolver)?)
        } else {
            None
        };
    match &config.state_dir {
        Some(dir) => tracing::info!(state_dir = %dir.display(), "state directory"),
        None => tracing::info!("no state directory: stores are in memory"),
    }
    let options = engine::Options {
        pooling: !args.disable_pooling,
        max_instance_memory: args.max_instance_memory.or(config.max_instance_memory),
        logs: host::logs::LogOptions::new(
            config.log_dir.clone(),
            &args.follow,
            args.quiet,
            args.truncate_logs,
        )?,
        max_instances: args.max_instances.max(1),
    };
    let runtime = Arc::new(Runtime::new(app, &config, resolver, &wanted, options)?);
    startup::run_statements(&runtime, &config, &args.sqlite_statements, &cwd).await?;
    startup::set_key_values(&runtime, &config, &args.key_values).await?;

    let metrics = Arc::new(Metrics::default());
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop));
    let mut running = Running::new(runtime, metrics, shutdown);
    let kafka_settings_present = kafka_settings.is_some();
    if let Some(settings) = kafka_settings {
        kafka_trigger::Kafka {
            settings,
            state_dir: config.state_dir.clone(),
        }
        .start(&mut running)
        .await?;
    }
    if roles.cron {
        cron_trigger::Timers.start(&mut running).await?;
    }
    if let (true, Some(http)) = (roles.http, launch.http) {
        http_trigger::Standalone {
            args: http,
            max_instances: args.max_instances,
        }
        .start(&mut running)
        .await?;
    }
    // Each plugin process has its own admin address (Kafka 9464, timer
    // 9465). A busy or broken admin address never stops the triggers.
    let process = match launch.role {
        None => "trigger-kafka up",
        Some(PluginRole::Kafka) => "trigger-kafka",
        Some(PluginRole::Cron) => "trigger-cron",
    };
    admin::Admin {
        listen: args.admin.listen(roles.kafka),
        process,
        kafka: kafka_settings_present,
    }
    .start(&mut running)
    .await?;
    tracing::info!(process, "all triggers started");
    running.wait().await
}
