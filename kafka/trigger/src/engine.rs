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
use crate::runtime_config::{Location, RuntimeConfig};
use crate::variables::{self, Resolver};

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
}

fn engine(pooling: bool, max_memory: usize) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_core_instances(4000)
            .total_memories(2000)
            .total_tables(4000)
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

/// Where compiled components are cached.
fn cache_dir() -> PathBuf {
    std::env::var_os("TRIGGER_KAFKA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("trigger-kafka"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/trigger-kafka")))
        .unwrap_or_else(|| std::env::temp_dir().join("trigger-kafka"))
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
    let cached = cache_dir().join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file was written by `Component::serialize` of this same
        // engine configuration (the key includes its compatibility hash).
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(error = %e, "ignoring a stale compilation cache entry"),
        }
    }
    let component = Component::new(engine, &bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    if let Ok(serialized) = component.serialize() {
        let _ = std::fs::create_dir_all(cache_dir());
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, serialized).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
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
        let engine = match engine(options.pooling, max_memory) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                engine(false, max_memory)?
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
        crate::bindings::spin::SpinImports::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

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
        let mut kv_files: HashMap<(String, Option<PathBuf>), Arc<StoreDb>> = HashMap::new();

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
                let path = match location {
                    Location::File(p) => Some(p.clone()),
                    Location::InMemory => None,
                };
                let db = match kv_files.get(&(label.clone(), path.clone())) {
                    Some(db) => db.clone(),
                    None => {
                        let db = Arc::new(StoreDb::open(label, location)?);
                        kv_files.insert((label.clone(), path), db.clone());
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
