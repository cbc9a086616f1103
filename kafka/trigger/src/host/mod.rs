//! Per-instance host state: WASI, outbound HTTP and the Spin interfaces,
//! limited to what the manifest grants the component.

pub mod bindings;
pub mod key_value;
pub mod logs;
pub mod outbound;
pub mod postgres;
pub mod sqlite;
pub mod variables;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use self::outbound::{AllowedHosts, OutboundHooks};

/// Largest linear memory one instance may grow to.
pub const MAX_INSTANCE_MEMORY: usize = 256 << 20;

/// What one component may use, resolved once at startup.
pub struct ComponentEnv {
    pub id: String,
    /// Granted SQLite databases by label; a label missing here is denied.
    pub sqlite: HashMap<String, Arc<sqlite::Database>>,
    /// Granted key-value stores by label.
    pub key_value: HashMap<String, Arc<key_value::StoreDb>>,
    /// Postgres pools by address, shared by every component of the app.
    pub postgres: Arc<postgres::Pools>,
    /// Component variables, or why one could not be resolved.
    pub variables: BTreeMap<String, Result<String, String>>,
    pub env: Vec<(String, String)>,
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Where the component's stdout and stderr go.
    pub stdio: logs::ComponentStdio,
    /// Largest linear memory an instance may grow to.
    pub max_memory: usize,
}

pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundHooks,
    pub component: Arc<ComponentEnv>,
    pub limits: StoreLimits,
    /// The host's own failure during this call, if one happened.
    pub fault: Option<HostFault>,
    /// Postgres connections this instance holds open.
    pub postgres_open: usize,
}

/// A host call that failed for the host's own reasons (storage busy, full
/// or unreadable), not the guest's. The guest gets Spin's error for it, as
/// under Spin, and may turn it into a verdict of its own; the host keeps
/// what really happened, and the call's caller gets it back with the
/// result ([`HostState::take_fault`]), so no good message is blamed.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFault(pub String);

impl std::fmt::Display for HostFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl HostState {
    pub fn new(component: Arc<ComponentEnv>) -> HostState {
        let mut wasi = WasiCtx::builder();
        component.stdio.attach(&mut wasi);
        for (key, value) in &component.env {
            wasi.env(key, value);
        }
        HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks::new(component.allowed_hosts.clone()),
            limits: StoreLimitsBuilder::new()
                .memory_size(component.max_memory)
                .instances(64)
                .build(),
            component,
            fault: None,
            postgres_open: 0,
        }
    }

    /// Notes a host failure of the call under way.
    pub fn fault(&mut self, what: impl Into<String>) {
        self.fault = Some(HostFault(what.into()));
    }

    /// The host failure of the call just made, if any.
    pub fn take_fault(&mut self) -> Option<HostFault> {
        self.fault.take()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
