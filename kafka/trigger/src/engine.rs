//! The Wasmtime engine: compiled, pre-instantiated components (with an
//! on-disk compilation cache), the pooling allocator, and per-component
//! grants resolved once so instantiating per message costs microseconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::app::App;
use crate::host::key_value::StoreDb;
use crate::host::outbound::AllowedHosts;
use crate::host::sqlite::Database;
use crate::host::{ComponentEnv, HostState};
use crate::runtime_config::{KeyValueLocation, RuntimeConfig};
use crate::variables::{self, Resolver};

/// Component instances alive at once, across every trigger (the pooling
/// allocator's slots; also the cap without pooling).
pub const MAX_INSTANCES: usize = 1000;

/// How often the epoch ticks; handler deadlines are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct Runtime {
    pub engine: Engine,
    pub app: Arc<App>,
    pres: HashMap<String, InstancePre<HostState>>,
    envs: HashMap<String, Arc<ComponentEnv>>,
    /// Every SQLite database of the app by label (the relay reads them).
    pub databases: HashMap<String, Arc<Database>>,
    key_value: HashMap<String, Arc<StoreDb>>,
}

/// How instances are made.
pub struct Options {
    /// Wasmtime's pooling allocator (falls back to on-demand if unavailable).
    pub pooling: bool,
    /// `--max-instance-memory` / `max_instance_memory`: bytes per instance.
    pub max_instance_memory: Option<usize>,
    /// Where component stdout/stderr go.
    pub logs: crate::host::logs::LogOptions,
    /// Instances alive at once (pooling slots).
    pub max_instances: usize,
}

fn engine(pooling: bool, max_memory: usize, instances: usize) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        let instances = instances.clamp(1, u32::MAX as usize / 4) as u32;
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 4)
            .max_memory_size(max_memory)
            .max_memories_per_component(16)
            .max_tables_per_component(32)
            .max_core_instances_per_component(64)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .table_elements(100_000)
            // Reset a reused slot by rewriting only the pages the last
            // instance dirtied, instead of madvise per instance: the
            // madvise-driven TLB shootdowns dominated per-message cost.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(1 << 20)
            .decommit_batch_size(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(Engine::new(&config)?)
}

/// Where compiled components are cached: a directory of this user's,
/// created 0700. A cache entry is native code loaded without checks, so a
/// directory or file another user could write is never used.
fn cache_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TRIGGER_KAFKA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("trigger-kafka"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/trigger-kafka")))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("trigger-kafka-{}", current_uid())));
    match private_dir(&dir) {
        Ok(()) => Some(dir),
        Err(reason) => {
            tracing::warn!(dir = %dir.display(), %reason, "not using the compilation cache");
            None
        }
    }
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (0700) if needed; it must be ours and closed to others.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| e.to_string())?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    owned_and_closed(&meta, current_uid())
}

/// Owned by `uid` and writable by nobody else.
fn owned_and_closed(meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != uid {
        return Err(format!("owned by uid {}, not {uid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// Compiles a component, or loads it from the cache keyed by the Wasm bytes
/// and the engine's compatibility hash.
fn load_component(engine: &Engine, path: &Path) -> Result<Component> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))?;
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    hasher.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
    let key: String = hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir();
    let cached = dir.as_ref().map(|d| d.join(format!("{key}.cwasm")));
    if let Some(cached) = cached.as_ref().filter(|c| c.exists()) {
        let trusted = std::fs::metadata(cached)
            .map_err(|e| e.to_string())
            .and_then(|m| owned_and_closed(&m, current_uid()));
        match trusted {
            // SAFETY: the file is this user's, in this user's private
            // directory, written by `Component::serialize` of this same
            // engine configuration (the key includes its compatibility hash).
            Ok(()) => match unsafe { Component::deserialize_file(engine, cached) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(error = %e, "ignoring a stale compilation cache entry"),
            },
            Err(reason) => {
                tracing::warn!(file = %cached.display(), %reason, "ignoring a compilation cache entry")
            }
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    if let (Some(cached), Ok(serialized)) = (cached, component.serialize()) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&serialized));
        if written.is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(component)
}

impl Runtime {
    /// Loads the components of `app` that `wanted` names.
    pub fn new(
        app: App,
        config: &RuntimeConfig,
        resolver: Resolver,
        wanted: &[String],
        options: Options,
    ) -> Result<Runtime> {
        let max_memory = options
            .max_instance_memory
            .unwrap_or(crate::host::MAX_INSTANCE_MEMORY);
        let engine = match engine(options.pooling, max_memory, options.max_instances) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                engine(false, max_memory, options.max_instances)?
            }
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::host::bindings::spin::SpinImports::add_to_linker::<_, HasSelf<_>>(
            &mut linker,
            |s| s,
        )?;

        let mut databases = HashMap::new();
        for label in app.sqlite_labels() {
            let location = config.sqlite.get(&label).with_context(|| {
                format!("no SQLite database `{label}`: add [sqlite_database.{label}] to the runtime config")
            })?;
            databases.insert(
                label.clone(),
                Arc::new(Database::new(&label, location.clone())?),
            );
        }
        let mut kv_files: HashMap<(String, KeyValueLocation), Arc<StoreDb>> = HashMap::new();
        let postgres = Arc::new(crate::host::postgres::Pools::default());

        let mut pres = HashMap::new();
        let mut envs = HashMap::new();
        for id in wanted {
            let spec = app.component(id)?;
            let component = load_component(&engine, &spec.source)?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component `{id}` imports something this host does not provide")
                })?;
            let mut key_value = HashMap::new();
            for label in &spec.key_value_stores {
                let location = config.key_value.get(label).with_context(|| {
                    format!("no key-value store `{label}`: add [key_value_store.{label}] to the runtime config")
                })?;
                let db = match kv_files.get(&(label.clone(), location.clone())) {
                    Some(db) => db.clone(),
                    None => {
                        let db = Arc::new(StoreDb::open(label, location)?);
                        kv_files.insert((label.clone(), location.clone()), db.clone());
                        db
                    }
                };
                key_value.insert(label.clone(), db);
            }
            let hosts: Vec<String> = spec
                .allowed_outbound_hosts
                .iter()
                .map(|h| resolver.render(h))
                .collect::<Result<_>>()?;
            let env = ComponentEnv {
                id: id.clone(),
                sqlite: spec
                    .sqlite_databases
                    .iter()
                    .map(|l| (l.clone(), databases[l].clone()))
                    .collect(),
                key_value,
                postgres: postgres.clone(),
                variables: variables::component_values(&resolver, &spec.variables),
                env: spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                allowed_hosts: Arc::new(AllowedHosts::parse(&hosts)?),
                stdio: options.logs.for_component(id)?,
                max_memory,
            };
            pres.insert(id.clone(), pre);
            envs.insert(id.clone(), Arc::new(env));
        }
        Ok(Runtime {
            engine,
            app: Arc::new(app),
            pres,
            envs,
            databases,
            key_value: kv_files
                .into_iter()
                .map(|((label, _), db)| (label, db))
                .collect(),
        })
    }

    /// A key-value store some loaded component uses, by label.
    pub fn key_value_store(&self, label: &str) -> Option<Arc<StoreDb>> {
        self.key_value.get(label).cloned()
    }

    pub fn instance_pre(&self, component: &str) -> Result<&InstancePre<HostState>> {
        self.pres
            .get(component)
            .with_context(|| format!("component `{component}` is not loaded"))
    }

    /// A fresh store for one invocation; it traps once `timeout` passes.
    pub fn store(&self, component: &str, timeout: Duration) -> Result<Store<HostState>> {
        let env = self
            .envs
            .get(component)
            .with_context(|| format!("component `{component}` is not loaded"))?
            .clone();
        let mut store = Store::new(&self.engine, HostState::new(env));
        store.limiter(|s| &mut s.limits);
        let ticks = (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_a_private_directory_and_refuses_others_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tk-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&dir)
            .unwrap_err()
            .contains("writable by others"));
        let file = dir.join("x.cwasm");
        std::fs::write(&file, b"not code").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert!(owned_and_closed(&meta, current_uid()).is_err());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert!(owned_and_closed(&meta, current_uid()).is_ok());
        assert!(owned_and_closed(&meta, current_uid() + 1)
            .unwrap_err()
            .contains("owned by"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
