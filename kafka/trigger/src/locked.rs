//! Loading Spin's locked application (`SPIN_LOCKED_URL`), for plugin mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::app::{App, AppVariable, ComponentSpec};

#[derive(Deserialize)]
struct LockedApp {
    #[serde(default)]
    metadata: serde_json::Map<String, Json>,
    #[serde(default)]
    variables: BTreeMap<String, LockedVariable>,
    triggers: Vec<LockedTrigger>,
    components: Vec<LockedComponent>,
}

#[derive(Deserialize)]
struct LockedVariable {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
struct LockedTrigger {
    trigger_type: String,
    trigger_config: Json,
}

#[derive(Deserialize)]
struct LockedComponent {
    id: String,
    #[serde(default)]
    metadata: serde_json::Map<String, Json>,
    source: LockedSource,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<Json>,
}

#[derive(Deserialize)]
struct LockedSource {
    #[serde(default)]
    source: Option<String>,
}

fn strings(metadata: &serde_json::Map<String, Json>, key: &str) -> Vec<String> {
    metadata
        .get(key)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A `file://` URL as a path.
pub fn file_url_path(url: &str) -> Result<PathBuf> {
    let parsed = url::Url::parse(url).with_context(|| format!("bad URL `{url}`"))?;
    if parsed.scheme() != "file" {
        bail!("only file:// URLs are supported, got `{url}`");
    }
    parsed
        .to_file_path()
        .map_err(|_| anyhow::anyhow!("`{url}` is not a local file path"))
}

/// Loads the locked app; `app_dir` is `SPIN_LOCAL_APP_DIR` (where `.spin/` lives).
pub fn load(locked_url: &str, app_dir: Option<&Path>) -> Result<App> {
    let path = file_url_path(locked_url)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let locked: LockedApp =
        serde_json::from_slice(&bytes).context("the locked app is not valid JSON")?;
    let mut app = App {
        name: locked
            .metadata
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("app")
            .to_owned(),
        version: locked
            .metadata
            .get("version")
            .and_then(Json::as_str)
            .map(str::to_owned),
        dir: app_dir.map_or_else(
            || std::env::current_dir().unwrap_or_default(),
            Path::to_path_buf,
        ),
        local: app_dir.is_some(),
        ..App::default()
    };
    if let Some(settings) = locked
        .metadata
        .get("triggers")
        .and_then(|t| t.get("kafka"))
        .and_then(Json::as_object)
    {
        app.kafka_settings = settings.clone();
    }
    for (name, variable) in locked.variables {
        app.variables.insert(
            name,
            AppVariable {
                default: variable.default,
                secret: variable.secret,
            },
        );
    }
    for component in locked.components {
        if !component.files.is_empty() {
            bail!(
                "component `{}`: `files` mounts are not supported by trigger-kafka",
                component.id
            );
        }
        let source = component
            .source
            .source
            .as_deref()
            .with_context(|| format!("component `{}` has no source", component.id))?;
        app.components.insert(
            component.id.clone(),
            ComponentSpec {
                id: component.id.clone(),
                source: file_url_path(source)?,
                env: component.env,
                variables: component.config,
                sqlite_databases: strings(&component.metadata, "databases"),
                key_value_stores: strings(&component.metadata, "key_value_stores"),
                allowed_outbound_hosts: strings(&component.metadata, "allowed_outbound_hosts"),
            },
        );
    }
    for trigger in locked.triggers {
        app.add_trigger(&trigger.trigger_type, trigger.trigger_config)
            .with_context(|| {
                format!(
                    "{} (as locked by spin up)",
                    app.dir.join("spin.toml").display()
                )
            })?;
    }
    app.validate()?;
    Ok(app)
}
