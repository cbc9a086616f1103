//! Loading `spin.toml` (manifest version 2) directly, for standalone mode.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::app::{App, AppVariable, ComponentSpec};

#[derive(Deserialize)]
struct Manifest {
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Deserialize)]
struct Application {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Variable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Component {
    source: toml::Value,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    files: Vec<toml::Value>,
}

/// `-f`: the app, as `spin up -f` names it (every command that reads the
/// manifest takes it).
#[derive(Debug, Clone, clap::Args)]
pub struct AppFile {
    /// The application: a spin.toml file or a directory holding one.
    #[arg(
        short = 'f',
        long = "from",
        alias = "file",
        default_value = "spin.toml"
    )]
    pub from: std::path::PathBuf,
}

impl AppFile {
    /// The manifest's path (a directory means its spin.toml).
    pub fn path(&self) -> std::path::PathBuf {
        path_of(&self.from)
    }
}

/// The manifest `-f` names, as `spin up -f` reads it: a directory means
/// its spin.toml.
pub fn path_of(from: &Path) -> std::path::PathBuf {
    if from.is_dir() {
        from.join("spin.toml")
    } else {
        from.to_path_buf()
    }
}

pub fn load(path: &Path) -> Result<App> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid Spin manifest", path.display()))?;
    if manifest.spin_manifest_version.as_integer() != Some(2) {
        bail!("only spin_manifest_version = 2 is supported");
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        std::env::current_dir()?
    } else {
        std::path::absolute(dir)?
    };
    let mut app = App {
        name: manifest.application.name,
        version: manifest.application.version,
        dir: dir.clone(),
        local: true,
        ..App::default()
    };
    for (name, variable) in manifest.variables {
        if variable.required == variable.default.is_some() {
            bail!("variable `{name}` must be `required` or have a `default`, not both or neither");
        }
        app.variables.insert(
            name,
            AppVariable {
                default: variable.default,
                secret: variable.secret,
            },
        );
    }
    if let Some(settings) = manifest.application.trigger.get("kafka") {
        app.kafka_settings = serde_json::to_value(settings)?
            .as_object()
            .cloned()
            .unwrap_or_default();
    }
    for (id, component) in manifest.component {
        let source = match &component.source {
            toml::Value::String(s) => dir.join(s),
            _ => bail!("component `{id}`: only a local file `source` is supported here; run remote sources under `spin up`"),
        };
        if !component.files.is_empty() {
            bail!("component `{id}`: `files` mounts are not supported by trigger-kafka");
        }
        app.components.insert(
            id.clone(),
            ComponentSpec {
                id,
                source,
                env: component.environment,
                variables: component.variables,
                sqlite_databases: component.sqlite_databases,
                key_value_stores: component.key_value_stores,
                allowed_outbound_hosts: component.allowed_outbound_hosts,
            },
        );
    }
    for (trigger_type, triggers) in manifest.trigger {
        for trigger in triggers {
            app.add_trigger(&trigger_type, serde_json::to_value(trigger)?)
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    app.validate()?;
    Ok(app)
}
