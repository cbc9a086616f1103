//! Spin's runtime configuration file, as far as this host needs it: where
//! the state directory, SQLite databases and key-value stores live. Paths
//! resolve exactly as Spin resolves them, so both read the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File(PathBuf),
    InMemory,
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub state_dir: Option<PathBuf>,
    pub sqlite: BTreeMap<String, Location>,
    pub key_value: BTreeMap<String, Location>,
}

#[derive(Deserialize)]
struct Store {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<PathBuf>,
}

/// How the state directory was given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum StateDir {
    /// Not given: `state_dir` in the file, else `<app dir>/.spin`.
    Default,
    /// `--state-dir ""`: no state directory (in-memory stores).
    Unset,
    Given(PathBuf),
}

impl StateDir {
    pub fn from_flag(flag: Option<&str>) -> StateDir {
        match flag {
            None => StateDir::Default,
            Some("") => StateDir::Unset,
            Some(p) => StateDir::Given(PathBuf::from(p)),
        }
    }
}

fn resolve(path: &Path, base: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

impl RuntimeConfig {
    /// Reads `file` (if any). `app_dir` is the manifest's directory (`None`
    /// for an app from a registry, which has no default state directory); `cwd`
    /// the process's working directory (Spin resolves relative SQLite paths
    /// against it, and key-value paths against the file's directory).
    pub fn load(
        file: Option<&Path>,
        app_dir: Option<&Path>,
        state_dir: StateDir,
        cwd: &Path,
    ) -> Result<RuntimeConfig> {
        let table: toml::Table = match file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read runtime config {}", file.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{} is not valid TOML", file.display()))?
            }
            None => toml::Table::new(),
        };
        let file_dir = file
            .and_then(Path::parent)
            .map(|d| resolve(d, cwd))
            .unwrap_or_else(|| cwd.to_path_buf());
        let state_dir = match state_dir {
            StateDir::Given(p) => Some(resolve(&p, cwd)),
            StateDir::Unset => None,
            StateDir::Default => match table.get("state_dir").and_then(|v| v.as_str()) {
                Some("") => None,
                Some(p) => Some(resolve(Path::new(p), cwd)),
                None => app_dir.map(|d| d.join(".spin")),
            },
        };
        let mut config = RuntimeConfig {
            state_dir: state_dir.clone(),
            ..RuntimeConfig::default()
        };
        let default_file = |name: &str| {
            state_dir
                .as_ref()
                .map_or(Location::InMemory, |d| Location::File(d.join(name)))
        };
        config
            .sqlite
            .insert("default".into(), default_file("sqlite_db.db"));
        config
            .key_value
            .insert("default".into(), default_file("sqlite_key_value.db"));
        for (section, base, target) in [
            ("sqlite_database", cwd.to_path_buf(), &mut config.sqlite),
            ("key_value_store", file_dir.clone(), &mut config.key_value),
        ] {
            let Some(stores) = table.get(section) else {
                continue;
            };
            let stores: BTreeMap<String, Store> = stores
                .clone()
                .try_into()
                .with_context(|| format!("invalid [{section}.*] in the runtime config"))?;
            for (label, store) in stores {
                if store.kind != "spin" {
                    bail!(
                        "[{section}.{label}] has type `{}`; trigger-kafka supports type = \"spin\" (local SQLite)",
                        store.kind
                    );
                }
                let location = store
                    .path
                    .map_or(Location::InMemory, |p| Location::File(resolve(&p, &base)));
                target.insert(label, location);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_in_the_state_dir() {
        let c = RuntimeConfig::load(
            None,
            Some(Path::new("/app")),
            StateDir::Default,
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(
            c.sqlite["default"],
            Location::File("/app/.spin/sqlite_db.db".into())
        );
        assert_eq!(
            c.key_value["default"],
            Location::File("/app/.spin/sqlite_key_value.db".into())
        );
        let c = RuntimeConfig::load(
            None,
            Some(Path::new("/app")),
            StateDir::Unset,
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(c.sqlite["default"], Location::InMemory);
    }

    #[test]
    fn the_projects_runtime_configs_place_every_database() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime-config");
        let local = RuntimeConfig::load(
            Some(&dir.join("local.toml")),
            Some(Path::new("/repo")),
            StateDir::Default,
            Path::new("/repo"),
        )
        .unwrap();
        let kube = RuntimeConfig::load(
            Some(&dir.join("kube.toml")),
            None,
            StateDir::Default,
            Path::new("/"),
        )
        .unwrap();
        for label in ["default", "reminders", "audit", "sync"] {
            assert_eq!(
                local.sqlite[label],
                Location::File(
                    format!(
                        "/repo/.spin/{}",
                        if label == "default" {
                            "sqlite_db.db".to_owned()
                        } else {
                            format!("{label}.db")
                        }
                    )
                    .into()
                )
            );
            assert!(
                matches!(&kube.sqlite[label], Location::File(p) if p.starts_with("/data")),
                "{label}"
            );
        }
        assert_eq!(
            kube.key_value["default"],
            Location::File("/data/sqlite_key_value.db".into())
        );
    }

    #[test]
    fn a_registry_app_has_no_default_state_dir() {
        let c = RuntimeConfig::load(None, None, StateDir::Default, Path::new("/cwd")).unwrap();
        assert_eq!(
            (c.state_dir.clone(), c.sqlite["default"].clone()),
            (None, Location::InMemory)
        );
    }

    #[test]
    fn paths_resolve_like_spin() {
        let dir = std::env::temp_dir().join(format!("rc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("local.toml");
        std::fs::write(
            &file,
            "[sqlite_database.audit]\ntype = \"spin\"\npath = \"data/audit.db\"\n\
             [key_value_store.cache]\ntype = \"spin\"\npath = \"kv/cache.db\"\n\
             [llm_compute]\ntype = \"spin\"\n",
        )
        .unwrap();
        let c = RuntimeConfig::load(
            Some(&file),
            Some(Path::new("/app")),
            StateDir::Default,
            Path::new("/cwd"),
        )
        .unwrap();
        assert_eq!(
            c.sqlite["audit"],
            Location::File("/cwd/data/audit.db".into())
        );
        assert_eq!(
            c.key_value["cache"],
            Location::File(dir.join("kv/cache.db"))
        );
        std::fs::write(
            &file,
            "[sqlite_database.x]\ntype = \"libsql\"\nurl = \"https://x\"\ntoken = \"t\"\n",
        )
        .unwrap();
        assert!(RuntimeConfig::load(
            Some(&file),
            Some(Path::new("/app")),
            StateDir::Default,
            Path::new("/cwd")
        )
        .is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
