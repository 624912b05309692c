//! Binding guards to servers: what a caller says about each server's guard
//! ([`ServerSpec`]), loading it, resolving its policy into the
//! `label_agent` payload and its tool-call limits, and the per-policy
//! instance pools ([`ServerGuard`]). [`DifcPipelineBuilder`] builds a
//! pipeline without a gateway configuration.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use guardway_difc::EnforcementMode;
use guardway_wasm::{Guard, GuardModule, GuardOptions};
use parking_lot::Mutex;
use serde_json::Value;

use super::binding::{self, BoundGuard, GuardSource};
use super::call_backend::GuardBackendLink;
use super::limits::{ToolCallLimits, split_tool_call_limits};
use super::{DIFC_LOG_TARGET, DifcPipeline};

/// One server's guard as the caller describes it, before loading.
///
/// Plain data; `call_backend` is shared (`Arc`).
pub struct ServerSpec {
    id: String,
    guard: GuardSpec,
    policy: Option<Value>,
    trusted_bots: Vec<String>,
    trusted_users: Vec<String>,
    enforce_tool_call_limits: bool,
    call_backend: Option<Arc<dyn guardway_wasm::Backend>>,
}

enum GuardSpec {
    Source(GuardSource),
    Module { name: String, module: GuardModule },
}

impl std::fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let guard = match &self.guard {
            GuardSpec::Source(source) => format!("{source:?}"),
            GuardSpec::Module { name, .. } => format!("Module({name})"),
        };
        f.debug_struct("ServerSpec")
            .field("id", &self.id)
            .field("guard", &guard)
            .field("policy", &self.policy)
            .field("call_backend", &self.call_backend.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerSpec {
    /// The server `id` guarded by the guard `source` names.
    pub fn new(id: impl Into<String>, source: GuardSource) -> Self {
        ServerSpec {
            id: id.into(),
            guard: GuardSpec::Source(source),
            policy: None,
            trusted_bots: Vec::new(),
            trusted_users: Vec::new(),
            enforce_tool_call_limits: false,
            call_backend: None,
        }
    }

    /// The server `id` guarded by the wasm guard in the file `path` (loaded
    /// through the process-wide compilation cache), named after the server.
    pub fn wasm_file(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let id = id.into();
        let source = GuardSource::Wasm {
            name: id.clone(),
            path: path.into(),
        };
        Self::new(id, source)
    }

    /// The server `id` guarded by an already loaded wasm guard.
    pub fn wasm_module(id: impl Into<String>, module: GuardModule) -> Self {
        let mut spec = Self::new(id, GuardSource::Noop);
        spec.guard = GuardSpec::Module {
            name: module.name().to_owned(),
            module,
        };
        spec
    }

    /// The guard policy (difc.md §5.1): an `allow-only` object (or its JSON
    /// text) for a wasm guard. A wasm guard without a policy serves as the
    /// noop guard.
    pub fn policy(mut self, policy: Value) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Bots the guard trusts besides its own list (top-level
    /// `trusted-bots` of the `label_agent` payload).
    pub fn trusted_bots(mut self, bots: Vec<String>) -> Self {
        self.trusted_bots = bots;
        self
    }

    /// Users raised to approved integrity (`trusted-users` inside the
    /// policy's `allow-only`, replacing the policy's own list; a policy
    /// without an `allow-only` key is left as it is).
    pub fn trusted_users(mut self, users: Vec<String>) -> Self {
        self.trusted_users = users;
        self
    }

    /// Takes `tool-call-limits` out of a wasm guard's payload and enforces
    /// them in the pipeline (`--enforce-tool-call-limits`; see `limits`).
    pub fn enforce_tool_call_limits(mut self, enforce: bool) -> Self {
        self.enforce_tool_call_limits = enforce;
        self
    }

    /// What the guard's `call_backend` reaches. Without one, its look-ups
    /// fail as unavailable.
    pub fn call_backend(mut self, backend: Arc<dyn guardway_wasm::Backend>) -> Self {
        self.call_backend = Some(backend);
        self
    }
}

/// The guard of one server with its resolved policy and its pools.
pub(super) struct ServerGuard {
    pub(super) bound: BoundGuard,
    /// The validated `label_agent` payload, if a policy resolves.
    pub(super) policy: Option<Result<Value, String>>,
    /// `policy`'s payload serialised once: the key of its pool and of the
    /// per-session state.
    pub(super) payload_text: String,
    /// One `Guard` (instance pool) per serialised policy payload.
    pools: tokio::sync::Mutex<HashMap<String, Guard>>,
    /// The pools, readable without awaiting (health, metrics).
    pub(super) pools_view: Mutex<Vec<Guard>>,
    /// Per-session `tool-call-limits` of the server's policy.
    pub(super) limits: ToolCallLimits,
    /// Faults of `label_agent` calls that never produced a pool (a policy
    /// the guard trapped on), which no pool's statistics can show.
    pub(super) init_faults: Mutex<GuardFaults>,
}

/// Fault counts by kind (the `kind` label of `guardway_guard_faults_total`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GuardFaults {
    pub(super) traps: u64,
    pub(super) timeouts: u64,
    pub(super) memory_limits: u64,
}

impl GuardFaults {
    /// Counts `error` when it is a fault (trap, timeout, memory cap).
    fn record(&mut self, error: &guardway_wasm::GuardError) {
        match error {
            guardway_wasm::GuardError::Trap { .. } => self.traps += 1,
            guardway_wasm::GuardError::Timeout { .. } => self.timeouts += 1,
            guardway_wasm::GuardError::MemoryLimit { .. } => self.memory_limits += 1,
            _ => {}
        }
    }
}

/// Guards that failed to load, each as `server "<id>": guard "<name>":
/// <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("guards failed to load: {}", .failures.join("; "))]
pub struct GuardLoadError {
    pub failures: Vec<String>,
}

/// Builds a [`DifcPipeline`] for servers described in code: mode, guard
/// options, one [`ServerSpec`] per server.
#[derive(Debug)]
pub struct DifcPipelineBuilder {
    mode: EnforcementMode,
    guard_options: GuardOptions,
    servers: Vec<ServerSpec>,
    require_guards: bool,
}

impl Default for DifcPipelineBuilder {
    fn default() -> Self {
        DifcPipelineBuilder {
            mode: EnforcementMode::Strict,
            guard_options: GuardOptions::default(),
            servers: Vec::new(),
            require_guards: true,
        }
    }
}

impl DifcPipelineBuilder {
    /// The mode of servers whose guard sets none (default strict; a wasm
    /// guard's `label_agent` answer sets its own).
    pub fn mode(mut self, mode: EnforcementMode) -> Self {
        self.mode = mode;
        self
    }

    /// The options guards are loaded and instantiated with.
    pub fn guard_options(mut self, options: GuardOptions) -> Self {
        self.guard_options = options;
        self
    }

    /// Adds a server.
    pub fn server(mut self, server: ServerSpec) -> Self {
        self.servers.push(server);
        self
    }

    /// Whether a guard that fails to load fails the build (default). When
    /// not, the server stays bound to the failed guard, which refuses every
    /// call.
    pub fn require_guards(mut self, require: bool) -> Self {
        self.require_guards = require;
        self
    }

    /// Loads every server's guard and creates the pool of its policy.
    ///
    /// # Errors
    /// [`GuardLoadError`] when guards are required and one failed to load.
    pub async fn build(self) -> Result<DifcPipeline, GuardLoadError> {
        let pipeline = DifcPipeline::new(self.mode).with_guard_options(self.guard_options);
        let failures = pipeline.bind_servers(self.servers).await;
        if self.require_guards && !failures.is_empty() {
            return Err(GuardLoadError { failures });
        }
        Ok(pipeline)
    }
}

impl DifcPipeline {
    /// Loads the guard of each server, in order, and binds them; the pool
    /// of each server's policy is created now, so that the first call does
    /// not pay for it and a rejected policy shows at once. Returns the
    /// failures (`server "<id>": guard "<name>": <reason>`); a failed
    /// server refuses every call. Only the first binding counts; later
    /// ones are ignored.
    pub async fn bind_servers(&self, servers: Vec<ServerSpec>) -> Vec<String> {
        let mut bound = BTreeMap::new();
        let mut failures = Vec::new();
        for spec in servers {
            let id = spec.id.clone();
            let (guard, failure) = self.bind_server(spec).await;
            failures.extend(failure);
            bound.insert(id, guard);
        }
        let _ = self.servers.set(bound);
        failures
    }

    async fn bind_server(&self, spec: ServerSpec) -> (Arc<ServerGuard>, Option<String>) {
        let ServerSpec {
            id,
            guard,
            policy: raw,
            trusted_bots,
            trusted_users,
            enforce_tool_call_limits,
            call_backend,
        } = spec;
        let loaded = match guard {
            GuardSpec::Source(source) => {
                let options = self.guard_options.clone();
                tokio::task::spawn_blocking(move || binding::load(source, &options))
                    .await
                    .unwrap_or_else(|error| BoundGuard::Failed {
                        name: id.clone(),
                        reason: format!("guard loading panicked: {error}"),
                    })
            }
            GuardSpec::Module { name, module } => BoundGuard::Wasm {
                name,
                module,
                link: Arc::new(GuardBackendLink::default()),
            },
        };
        // The limits are enforced here for every guard; a wasm guard's
        // payload keeps them unless the deviation is asked for (see
        // `limits` for why).
        let split = raw.clone().map(split_tool_call_limits);
        let limits = match &split {
            Some(Ok((_, limits))) => limits.clone(),
            _ => ToolCallLimits::default(),
        };
        let payload = |policy| binding::label_agent_payload(policy, &trusted_bots, &trusted_users);
        let policy = match &loaded {
            BoundGuard::Wasm { .. } if enforce_tool_call_limits => {
                split.map(|split| split.and_then(|(policy, _)| payload(policy)))
            }
            BoundGuard::Wasm { .. } => raw.map(payload),
            _ => None,
        };
        let loaded = match (loaded, &policy) {
            (BoundGuard::Wasm { name, .. }, None) => {
                tracing::warn!(target: DIFC_LOG_TARGET, server = %id, guard = %name,
                    "guard has no policy; the server falls back to the noop guard");
                BoundGuard::Noop
            }
            (loaded, _) => loaded,
        };
        let mut failure = None;
        match &loaded {
            BoundGuard::Failed { name, reason } => {
                tracing::error!(target: DIFC_LOG_TARGET, server = %id, guard = %name, %reason,
                    "guard failed to load; calls to this server are refused");
                failure = Some(format!("server \"{id}\": guard \"{name}\": {reason}"));
            }
            BoundGuard::Wasm { name, link, .. } => {
                if let Some(backend) = call_backend {
                    link.attach(backend);
                }
                tracing::info!(target: DIFC_LOG_TARGET, server = %id, guard = %name, "guard loaded");
            }
            _ => {}
        }
        let payload_text = match &policy {
            Some(Ok(payload)) => payload.to_string(),
            _ => String::new(),
        };
        let guard = Arc::new(ServerGuard {
            bound: loaded,
            policy,
            payload_text,
            pools: tokio::sync::Mutex::new(HashMap::new()),
            pools_view: Mutex::new(Vec::new()),
            limits,
            init_faults: Mutex::new(GuardFaults::default()),
        });
        if let Some(Ok(payload)) = &guard.policy
            && let Err(error) = self.pool_for(&guard, payload, &guard.payload_text).await
        {
            tracing::error!(target: DIFC_LOG_TARGET, server = %id, %error,
                "guard rejected its policy at start-up");
        }
        (guard, failure)
    }

    /// The `Guard` serving `payload` on a server, created on first use.
    /// `key` is `payload` serialised.
    pub(super) async fn pool_for(
        &self,
        server: &ServerGuard,
        payload: &Value,
        key: &str,
    ) -> Result<Guard, String> {
        let BoundGuard::Wasm { module, link, .. } = &server.bound else {
            return Err("not a wasm guard".to_owned());
        };
        let mut pools = server.pools.lock().await;
        if let Some(guard) = pools.get(key) {
            return Ok(guard.clone());
        }
        let backend: Arc<dyn guardway_wasm::Backend> = link.clone();
        let guard = Guard::new(
            module.clone(),
            payload,
            self.guard_options.clone().with_name(module.name()),
            Some(backend),
        )
        .await
        .map_err(|error| {
            server.init_faults.lock().record(&error);
            error.to_string()
        })?;
        pools.insert(key.to_owned(), guard.clone());
        server.pools_view.lock().push(guard.clone());
        Ok(guard)
    }
}
