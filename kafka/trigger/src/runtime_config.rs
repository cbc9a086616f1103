//! Spin's runtime configuration file, as far as this host needs it: where
//! the state directory, SQLite databases and key-value stores live. Paths
//! resolve exactly as Spin resolves them, so both read the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::variables::Provider;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    File(PathBuf),
    InMemory,
}

/// Where a key-value store lives: Spin's local SQLite layout, or a Redis
/// server (`type = "redis"`), which several replicas can share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyValueLocation {
    Local(Location),
    Redis { url: String },
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub state_dir: Option<PathBuf>,
    /// Where component stdout/stderr go (`<component>_stdout.txt`).
    pub log_dir: Option<PathBuf>,
    pub sqlite: BTreeMap<String, Location>,
    pub key_value: BTreeMap<String, KeyValueLocation>,
    /// `[[variables_provider]]`, in order (Spin's env provider comes after).
    pub variable_providers: Vec<Provider>,
    pub max_instance_memory: Option<usize>,
}

/// A `[[variables_provider]]` entry.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ProviderConfig {
    Static {
        values: std::collections::HashMap<String, String>,
    },
    Env {
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        dotenv_path: Option<PathBuf>,
    },
    /// vault, azure_key_vault: not implemented here.
    #[serde(other)]
    Unsupported,
}

/// The top-level keys Spin 3.6's runtime config reads. Any other one stops
/// `spin up` with "unused runtime config key(s): …" (a misspelt section
/// would otherwise be ignored in silence), and so it stops this host.
const KNOWN_KEYS: &[&str] = &[
    "state_dir",
    "log_dir",
    "max_instance_memory",
    "key_value_store",
    "sqlite_database",
    "variables_provider",
    "config_provider",
    "llm_compute",
    "outbound_networking",
    "client_tls",
    "outbound_http",
];

/// A `[sqlite_database.<label>]` entry.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SqliteStore {
    /// Local SQLite: a file, or memory without `path`. Spin refuses any
    /// other field (`unknown field …, expected `path``), and so does this.
    Spin(StrictPath),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictPath {
    #[serde(default)]
    path: Option<PathBuf>,
}

/// A `[key_value_store.<label>]` entry. Spin's key-value configs ignore
/// fields they do not know (no `deny_unknown_fields` there), so this does too.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KeyValueStore {
    Spin(LenientPath),
    Redis {
        url: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct LenientPath {
    #[serde(default)]
    path: Option<PathBuf>,
}

/// One label's entry, read into where the store is.
trait StoreEntry: serde::de::DeserializeOwned {
    type Location;
    /// The types this host serves, for the error naming another.
    const SUPPORTED: &'static str;
    /// Where the store is (paths against `base`), or `None` for a type
    /// this host lacks.
    fn locate(self, base: &Path) -> Option<Self::Location>;
}

fn local(path: Option<PathBuf>, base: &Path) -> Location {
    path.map_or(Location::InMemory, |p| Location::File(resolve(&p, base)))
}

impl StoreEntry for SqliteStore {
    type Location = Location;
    const SUPPORTED: &'static str = "type = \"spin\" (local SQLite)";

    fn locate(self, base: &Path) -> Option<Location> {
        match self {
            SqliteStore::Spin(s) => Some(local(s.path, base)),
            SqliteStore::Other => None,
        }
    }
}

impl StoreEntry for KeyValueStore {
    type Location = KeyValueLocation;
    const SUPPORTED: &'static str = "type = \"spin\" (local SQLite) and type = \"redis\"";

    fn locate(self, base: &Path) -> Option<KeyValueLocation> {
        match self {
            KeyValueStore::Spin(s) => Some(KeyValueLocation::Local(local(s.path, base))),
            KeyValueStore::Redis { url } => Some(KeyValueLocation::Redis { url }),
            KeyValueStore::Other => None,
        }
    }
}

/// Reads `[<section>.<label>]` entries into `target`, paths against `base`.
fn read_stores<S: StoreEntry>(
    table: &toml::Table,
    section: &str,
    base: &Path,
    target: &mut BTreeMap<String, S::Location>,
) -> Result<()> {
    let Some(stores) = table.get(section) else {
        return Ok(());
    };
    let stores: BTreeMap<String, S> = stores
        .clone()
        .try_into()
        .with_context(|| format!("invalid [{section}.*] in the runtime config"))?;
    for (label, store) in stores {
        let Some(location) = store.locate(base) else {
            let kind = table[section][&label]
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("?");
            bail!(
                "[{section}.{label}] has type `{kind}`; trigger-kafka supports {}",
                S::SUPPORTED
            );
        };
        target.insert(label, location);
    }
    Ok(())
}

/// Refuses keys Spin does not read, with Spin's words.
fn check_keys(table: &toml::Table) -> Result<()> {
    let unused: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|key| !KNOWN_KEYS.contains(key))
        .collect();
    if !unused.is_empty() {
        bail!("unused runtime config key(s): {}", unused.join(", "));
    }
    Ok(())
}

/// How a directory (`--state-dir`, `--log-dir`) was given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum StateDir {
    /// Not given: the file's setting, else Spin's default.
    Default,
    /// Given as empty: none (in-memory stores, no log files).
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

    /// A flag's value, else the file's `key` (where empty means unset).
    fn or_file(self, table: &toml::Table, key: &str) -> StateDir {
        match (self, table.get(key).and_then(|v| v.as_str())) {
            (StateDir::Default, Some("")) => StateDir::Unset,
            (StateDir::Default, Some(p)) => StateDir::Given(PathBuf::from(p)),
            (given, _) => given,
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
    /// `log_dir` is `--log-dir` (default `<state dir>/logs`, as in Spin).
    pub fn load(
        file: Option<&Path>,
        app_dir: Option<&Path>,
        state_dir: StateDir,
        log_dir: StateDir,
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
        check_keys(&table).with_context(|| {
            format!("runtime config {}", file.unwrap_or(Path::new("")).display())
        })?;
        let file_dir = file
            .and_then(Path::parent)
            .map(|d| resolve(d, cwd))
            .unwrap_or_else(|| cwd.to_path_buf());
        let state_dir = match state_dir.or_file(&table, "state_dir") {
            StateDir::Given(p) => Some(resolve(&p, cwd)),
            StateDir::Unset => None,
            StateDir::Default => app_dir.map(|d| d.join(".spin")),
        };
        let log_dir = match log_dir.or_file(&table, "log_dir") {
            StateDir::Given(p) => Some(resolve(&p, cwd)),
            StateDir::Unset => None,
            StateDir::Default => state_dir.as_ref().map(|d| d.join("logs")),
        };
        let mut config = RuntimeConfig {
            state_dir: state_dir.clone(),
            log_dir,
            max_instance_memory: table
                .get("max_instance_memory")
                .and_then(|v| v.as_integer())
                .map(usize::try_from)
                .transpose()
                .context("max_instance_memory must be a positive number of bytes")?,
            ..RuntimeConfig::default()
        };
        let providers = table
            .get("variables_provider")
            .or_else(|| table.get("config_provider"));
        if let Some(providers) = providers {
            let providers: Vec<ProviderConfig> = providers
                .clone()
                .try_into()
                .context("invalid [[variables_provider]] in the runtime config")?;
            for provider in providers {
                config.variable_providers.push(match provider {
                    ProviderConfig::Static { values } => Provider::Static(values),
                    ProviderConfig::Env {
                        prefix,
                        dotenv_path,
                    } => Provider::Env {
                        prefix: prefix.unwrap_or_else(|| "SPIN_VARIABLE".to_owned()),
                        dotenv: dotenv_path.map(|p| resolve(&p, cwd)),
                    },
                    ProviderConfig::Unsupported => bail!(
                        "[[variables_provider]] of type vault or azure_key_vault is not supported by trigger-kafka; \
                         use type = \"env\" or \"static\" (Kubernetes Secrets reach it as SPIN_VARIABLE_*)"
                    ),
                });
            }
        }
        let default_file = |name: &str| {
            state_dir
                .as_ref()
                .map_or(Location::InMemory, |d| Location::File(d.join(name)))
        };
        config
            .sqlite
            .insert("default".into(), default_file("sqlite_db.db"));
        config.key_value.insert(
            "default".into(),
            KeyValueLocation::Local(default_file("sqlite_key_value.db")),
        );
        read_stores::<SqliteStore>(&table, "sqlite_database", cwd, &mut config.sqlite)?;
        read_stores::<KeyValueStore>(&table, "key_value_store", &file_dir, &mut config.key_value)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spin_does_not_read_are_refused_as_spin_refuses_them() {
        let dir = std::env::temp_dir().join(format!("rc-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rc.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            RuntimeConfig::load(
                Some(&file),
                Some(Path::new("/app")),
                StateDir::Default,
                StateDir::Default,
                Path::new("/cwd"),
            )
            .map_err(|e| format!("{e:#}"))
        };
        let error = load("[sqlite_databse.audit]\ntype = \"spin\"\n").unwrap_err();
        assert!(
            error.contains("unused runtime config key(s): sqlite_databse"),
            "{error}"
        );
        let error =
            load("[sqlite_database.audit]\ntype = \"spin\"\npaht = \"a.db\"\n").unwrap_err();
        assert!(
            error.contains("unknown field `paht`, expected `path`"),
            "{error}"
        );
        // Spin's key-value config ignores a field it does not know.
        let config =
            load("[key_value_store.cache]\ntype = \"spin\"\npath = \"c.db\"\npaht = \"x\"\n")
                .unwrap();
        assert_eq!(
            config.key_value["cache"],
            KeyValueLocation::Local(Location::File(dir.join("c.db")))
        );
        let config =
            load("[key_value_store.shared]\ntype = \"redis\"\nurl = \"redis://r:6379\"\n").unwrap();
        assert_eq!(
            config.key_value["shared"],
            KeyValueLocation::Redis {
                url: "redis://r:6379".into()
            }
        );
        // Every section Spin reads is accepted, even those this host leaves to Spin.
        load(
            "state_dir = \".spin\"\nmax_instance_memory = 1000000\n\
             [outbound_networking]\n[outbound_http]\n[llm_compute]\ntype = \"spin\"\n",
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_live_in_the_state_dir() {
        let c = RuntimeConfig::load(
            None,
            Some(Path::new("/app")),
            StateDir::Default,
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
            KeyValueLocation::Local(Location::File("/app/.spin/sqlite_key_value.db".into()))
        );
        let c = RuntimeConfig::load(
            None,
            Some(Path::new("/app")),
            StateDir::Unset,
            StateDir::Default,
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
            StateDir::Default,
            Path::new("/repo"),
        )
        .unwrap();
        let kube = RuntimeConfig::load(
            Some(&dir.join("kube.toml")),
            None,
            StateDir::Default,
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
            KeyValueLocation::Local(Location::File("/data/sqlite_key_value.db".into()))
        );
    }

    #[test]
    fn a_registry_app_has_no_default_state_dir() {
        let c = RuntimeConfig::load(
            None,
            None,
            StateDir::Default,
            StateDir::Default,
            Path::new("/cwd"),
        )
        .unwrap();
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
            KeyValueLocation::Local(Location::File(dir.join("kv/cache.db")))
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
            StateDir::Default,
            Path::new("/cwd")
        )
        .is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn log_dir_and_variable_providers_read_like_spin() {
        let dir = std::env::temp_dir().join(format!("rc-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rc.toml");
        let load = |log: StateDir| {
            RuntimeConfig::load(
                Some(&file),
                Some(Path::new("/app")),
                StateDir::Default,
                log,
                Path::new("/cwd"),
            )
        };
        std::fs::write(
            &file,
            "max_instance_memory = 1048576\n\
             [[variables_provider]]\ntype = \"static\"\nvalues = { a = \"1\" }\n\
             [[variables_provider]]\ntype = \"env\"\nprefix = \"MY\"\ndotenv_path = \"vars.env\"\n",
        )
        .unwrap();
        let c = load(StateDir::Default).unwrap();
        assert_eq!(c.log_dir, Some(PathBuf::from("/app/.spin/logs")));
        assert_eq!(c.max_instance_memory, Some(1 << 20));
        assert!(
            matches!(&c.variable_providers[..], [Provider::Static(v), Provider::Env { prefix, dotenv: Some(d) }]
            if v["a"] == "1" && prefix == "MY" && d == Path::new("/cwd/vars.env"))
        );
        assert_eq!(load(StateDir::Unset).unwrap().log_dir, None);
        assert_eq!(
            load(StateDir::Given("logs".into())).unwrap().log_dir,
            Some(PathBuf::from("/cwd/logs"))
        );
        std::fs::write(&file, "log_dir = \"\"\n").unwrap();
        assert_eq!(load(StateDir::Default).unwrap().log_dir, None);
        std::fs::write(
            &file,
            "[[variables_provider]]\ntype = \"vault\"\nurl = \"http://v\"\ntoken = \"t\"\nmount = \"m\"\n",
        )
        .unwrap();
        let err = load(StateDir::Default).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
