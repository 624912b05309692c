//! `Guard`: a module plus a session policy, serving concurrent calls from a bounded pool of
//! instances (each primed with the policy), with fault accounting, quarantine and stats.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use guardway_difc::{
    AgentLabels, LabelParseError, LabelResourceInput, LabelResponseInput, ResourceLabels,
    ResponseLabels,
};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::abi::GuardExport;
use crate::engine::CodeTier;
use crate::error::GuardError;
use crate::imports::{Backend, LogDropSummary};
use crate::instance::{GuardInstance, InstanceSettings};
use crate::module::GuardModule;
use crate::options::GuardOptions;
use crate::quarantine::{Clock, GuardHealth, Quarantine, remaining};

/// A guard serving one session policy.
///
/// `Send + Sync`; cloning is an `Arc` bump and clones share the pool, stats and health.
/// Calls run in parallel on up to `pool_size` instances; callers beyond that wait.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    module: GuardModule,
    policy: serde_json::Value,
    policy_bytes: Vec<u8>,
    agent_labels: AgentLabels,
    settings: Arc<InstanceSettings>,
    idle: Mutex<Vec<GuardInstance>>,
    permits: Semaphore,
    quarantine: Mutex<Quarantine>,
    clock: Arc<dyn Clock>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    failures: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    memory_limits: AtomicU64,
    denied: AtomicU64,
    cancelled: AtomicU64,
    instances_created: AtomicU64,
    instances_discarded: AtomicU64,
    instances_retired: AtomicU64,
    baseline_calls: AtomicU64,
}

/// A snapshot of a guard's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Guard function calls started (including `label_agent` replays on new instances).
    pub calls: u64,
    /// Calls that returned an error.
    pub failures: u64,
    /// Calls that trapped.
    pub traps: u64,
    /// Calls that exceeded their time limit.
    pub timeouts: u64,
    /// Calls that hit the memory cap.
    pub memory_limits: u64,
    /// Calls denied while quarantined.
    pub denied: u64,
    /// Calls whose future was dropped while the guard ran.
    pub cancelled: u64,
    /// Instances created.
    pub instances_created: u64,
    /// Instances discarded (faults, cancellation, a closed pool, retirement).
    pub instances_discarded: u64,
    /// Of `instances_discarded`, healthy instances retired because the module moved to
    /// optimised code (tiered compilation).
    pub instances_retired: u64,
    /// Of `calls`, those served by baseline code.
    pub baseline_calls: u64,
    /// Instances waiting in the pool.
    pub idle_instances: u64,
    /// Instances alive (idle or in a call).
    pub live_instances: u64,
    /// `call_backend` calls forwarded to the backend.
    pub backend_calls: u64,
    /// Guard log lines dropped by the rate limit.
    pub log_lines_dropped: u64,
    /// Warnings summarising dropped log lines (at most one per summary interval).
    pub log_drop_reports: u64,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.inner.settings.name)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Creates a guard for `policy`, calling `label_agent` once on a first instance so that a
    /// policy the guard rejects fails here.
    ///
    /// # Errors
    ///
    /// [`GuardError::PolicyRejected`] when the guard refuses the policy, [`GuardError::Labels`]
    /// when its answer is unusable, or any instantiation/call error.
    pub async fn new(
        module: GuardModule,
        policy: &serde_json::Value,
        options: GuardOptions,
        backend: Option<Arc<dyn Backend>>,
    ) -> Result<Guard, GuardError> {
        let name: Arc<str> = match &options.name {
            Some(name) => Arc::from(name.as_str()),
            None => Arc::clone(&module.inner.name),
        };
        let memory_limit = options.memory_limit.min(crate::engine::MAX_MEMORY_LIMIT);
        let settings = Arc::new(InstanceSettings {
            name: Arc::clone(&name),
            memory_limit,
            call_timeout: options.call_timeout,
            output_buffer_initial: options.output_buffer_initial.max(1),
            output_buffer_max: options
                .output_buffer_max
                .max(options.output_buffer_initial.max(1)),
            output_attempts: options.output_attempts.max(1),
            max_input: options.max_input,
            max_backend_calls: options.max_backend_calls,
            log_rate: options.log_rate,
            backend,
            log_lines_dropped: Arc::new(AtomicU64::new(0)),
            log_drops: Arc::new(LogDropSummary::new(
                Arc::clone(&name),
                options.log_drop_summary_interval,
                Arc::clone(&options.clock),
            )),
            backend_calls: Arc::new(AtomicU64::new(0)),
            observer: options.observer.clone(),
        });
        let policy_bytes = serde_json::to_vec(policy).map_err(|e| GuardError::PolicyRejected {
            name: name.to_string(),
            message: format!("policy cannot be serialised: {e}"),
        })?;
        let counters = Counters::default();
        let mut first = GuardInstance::new(&module, &settings).await?;
        counters.instances_created.fetch_add(1, Ordering::Relaxed);
        counters.calls.fetch_add(1, Ordering::Relaxed);
        if first.tier() == CodeTier::Baseline {
            counters.baseline_calls.fetch_add(1, Ordering::Relaxed);
        }
        let output = first.call(GuardExport::LabelAgent, &policy_bytes).await;
        let agent_labels = match output.and_then(|o| parse_agent(&name, &o)) {
            Ok(labels) => labels,
            Err(GuardError::GuardFailed {
                code, last_error, ..
            }) => {
                return Err(GuardError::PolicyRejected {
                    name: name.to_string(),
                    message: format!(
                        "label_agent returned code {code}{}",
                        last_error.map(|e| format!(": {e}")).unwrap_or_default()
                    ),
                });
            }
            Err(error) => return Err(error),
        };
        let pool_size = options.pool_size.max(1);
        Ok(Guard {
            inner: Arc::new(GuardInner {
                module,
                policy: policy.clone(),
                policy_bytes,
                agent_labels,
                settings,
                idle: Mutex::new(vec![first]),
                permits: Semaphore::new(pool_size),
                quarantine: Mutex::new(Quarantine::new(options.quarantine)),
                clock: Arc::clone(&options.clock),
                counters,
            }),
        })
    }

    /// The guard's name.
    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    /// The module this guard runs.
    pub fn module(&self) -> &GuardModule {
        &self.inner.module
    }

    /// The session policy this guard serves.
    pub fn policy(&self) -> &serde_json::Value {
        &self.inner.policy
    }

    /// The agent labels the guard returned for the policy when the guard was created.
    pub fn agent_labels(&self) -> &AgentLabels {
        &self.inner.agent_labels
    }

    /// Labels an agent for `policy`. For this guard's own policy the labels computed at
    /// creation are returned; any other policy runs on a one-off instance that is then
    /// dropped, so pooled instances never answer for another policy.
    ///
    /// # Errors
    ///
    /// As [`Guard::call`], plus [`GuardError::PolicyRejected`] / [`GuardError::Labels`].
    pub async fn label_agent(&self, policy: &serde_json::Value) -> Result<AgentLabels, GuardError> {
        if *policy == self.inner.policy {
            return Ok(self.inner.agent_labels.clone());
        }
        let bytes = serde_json::to_vec(policy).map_err(|e| GuardError::PolicyRejected {
            name: self.name().to_owned(),
            message: format!("policy cannot be serialised: {e}"),
        })?;
        let output = self.call(GuardExport::LabelAgent, &bytes).await?;
        parse_agent(&self.inner.settings.name, &output)
    }

    /// Labels a tool call.
    ///
    /// # Errors
    ///
    /// As [`Guard::call`], plus [`GuardError::Labels`] for unusable output.
    pub async fn label_resource(
        &self,
        input: &LabelResourceInput,
    ) -> Result<ResourceLabels, GuardError> {
        let bytes = self.encode(GuardExport::LabelResource, input)?;
        let output = self.call(GuardExport::LabelResource, &bytes).await?;
        ResourceLabels::parse(&output)
            .map_err(|source| self.labels_error(GuardExport::LabelResource, source))
    }

    /// Labels a tool result.
    ///
    /// # Errors
    ///
    /// As [`Guard::call`], plus [`GuardError::Labels`] for unusable output.
    pub async fn label_response(
        &self,
        input: &LabelResponseInput,
    ) -> Result<ResponseLabels, GuardError> {
        let bytes = self.encode(GuardExport::LabelResponse, input)?;
        let output = self.call(GuardExport::LabelResponse, &bytes).await?;
        ResponseLabels::parse(&output)
            .map_err(|source| self.labels_error(GuardExport::LabelResponse, source))
    }

    /// Calls a guard function with raw input bytes and returns its raw output.
    ///
    /// `label_agent` calls run on a one-off instance (pooled instances keep the guard's
    /// policy). Cancel-safe: if the returned future is dropped mid-call, the instance in use
    /// is discarded, never returned to the pool.
    ///
    /// # Errors
    ///
    /// [`GuardError::Quarantined`], [`GuardError::InputTooLarge`], the call faults
    /// ([`GuardError::Trap`], [`GuardError::Timeout`], [`GuardError::MemoryLimit`]) and the
    /// protocol errors ([`GuardError::BufferTooSmall`], [`GuardError::OutputOverrun`],
    /// [`GuardError::GuardFailed`], ...).
    pub async fn call(&self, export: GuardExport, input: &[u8]) -> Result<Vec<u8>, GuardError> {
        let inner = &*self.inner;
        self.check_quarantine()?;
        if input.len() > inner.settings.max_input {
            return Err(GuardError::InputTooLarge {
                name: self.name().to_owned(),
                export: export.name().to_owned(),
                size: input.len(),
                limit: inner.settings.max_input,
            });
        }
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| GuardError::Instantiate {
                name: self.name().to_owned(),
                message: "guard pool closed".to_owned(),
            })?;
        let pooled = export != GuardExport::LabelAgent;
        let idle = if pooled { self.idle_instance() } else { None };
        let instance = match idle {
            Some(instance) => instance,
            None => self.create_instance(pooled).await?,
        };
        let mut checkout = Checkout {
            inner,
            instance: Some(instance),
            pooled,
        };
        let result = checkout.run(export, input).await;
        checkout.finish(result.as_ref().err());
        result
    }

    /// A pooled instance of the module's current code; instances of older code are retired.
    fn idle_instance(&self) -> Option<GuardInstance> {
        loop {
            let instance = self.inner.idle.lock().pop()?;
            if !instance.is_stale() {
                return Some(instance);
            }
            self.inner.retire(instance);
        }
    }

    /// The guard's health (quarantine state).
    pub fn health(&self) -> GuardHealth {
        self.inner.quarantine.lock().health(self.inner.clock.now())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> GuardStats {
        let c = &self.inner.counters;
        let created = c.instances_created.load(Ordering::Relaxed);
        let discarded = c.instances_discarded.load(Ordering::Relaxed);
        GuardStats {
            calls: c.calls.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            traps: c.traps.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            memory_limits: c.memory_limits.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            instances_created: created,
            instances_discarded: discarded,
            instances_retired: c.instances_retired.load(Ordering::Relaxed),
            baseline_calls: c.baseline_calls.load(Ordering::Relaxed),
            idle_instances: self.inner.idle.lock().len() as u64,
            live_instances: created.saturating_sub(discarded),
            backend_calls: self.inner.settings.backend_calls.load(Ordering::Relaxed),
            log_lines_dropped: self
                .inner
                .settings
                .log_lines_dropped
                .load(Ordering::Relaxed),
            log_drop_reports: self.inner.settings.log_drops.reports(),
        }
    }

    fn check_quarantine(&self) -> Result<(), GuardError> {
        let now = self.inner.clock.now();
        let result = self.inner.quarantine.lock().check(now);
        result.map_err(|(until, reason)| {
            self.inner.counters.denied.fetch_add(1, Ordering::Relaxed);
            GuardError::Quarantined {
                name: self.name().to_owned(),
                reason,
                until,
                remaining: remaining(now, until),
            }
        })
    }

    /// Creates an instance; pooled ones first replay the policy's `label_agent`.
    async fn create_instance(&self, replay_policy: bool) -> Result<GuardInstance, GuardError> {
        let inner = &*self.inner;
        let created = GuardInstance::new(&inner.module, &inner.settings).await;
        let mut instance = match created {
            Ok(instance) => instance,
            Err(error) => {
                inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                inner.record_fault(&error);
                return Err(error);
            }
        };
        inner
            .counters
            .instances_created
            .fetch_add(1, Ordering::Relaxed);
        if replay_policy {
            let mut checkout = Checkout {
                inner,
                instance: Some(instance),
                pooled: false,
            };
            let result = checkout
                .run(GuardExport::LabelAgent, &inner.policy_bytes)
                .await;
            let result =
                result.and_then(|output| parse_agent(&inner.settings.name, &output).map(|_| ()));
            if let Err(error) = result {
                checkout.finish(Some(&error));
                return Err(error);
            }
            instance = checkout.take().ok_or_else(|| self.replay_error())?;
        }
        Ok(instance)
    }

    fn replay_error(&self) -> GuardError {
        GuardError::Instantiate {
            name: self.name().to_owned(),
            message: "replaying label_agent on a new instance failed".to_owned(),
        }
    }

    fn encode<T: serde::Serialize>(
        &self,
        export: GuardExport,
        input: &T,
    ) -> Result<Vec<u8>, GuardError> {
        serde_json::to_vec(input).map_err(|e| GuardError::InvalidOutput {
            name: self.name().to_owned(),
            export: export.name().to_owned(),
            message: format!("input cannot be serialised: {e}"),
        })
    }

    fn labels_error(&self, export: GuardExport, source: LabelParseError) -> GuardError {
        GuardError::Labels {
            name: self.name().to_owned(),
            export: export.name().to_owned(),
            source,
        }
    }
}

fn parse_agent(name: &str, output: &[u8]) -> Result<AgentLabels, GuardError> {
    AgentLabels::parse(output).map_err(|source| match source {
        LabelParseError::AgentRejected { .. }
        | LabelParseError::AgentNonSuccess
        | LabelParseError::AgentError { .. } => GuardError::PolicyRejected {
            name: name.to_owned(),
            message: source.to_string(),
        },
        source => GuardError::Labels {
            name: name.to_owned(),
            export: GuardExport::LabelAgent.name().to_owned(),
            source,
        },
    })
}

impl GuardInner {
    /// Drops a healthy instance whose code the module has replaced.
    fn retire(&self, instance: GuardInstance) {
        self.counters
            .instances_retired
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .instances_discarded
            .fetch_add(1, Ordering::Relaxed);
        drop(instance);
    }

    fn record_fault(&self, error: &GuardError) {
        match error {
            GuardError::Trap { .. } => self.counters.traps.fetch_add(1, Ordering::Relaxed),
            GuardError::Timeout { .. } => self.counters.timeouts.fetch_add(1, Ordering::Relaxed),
            GuardError::MemoryLimit { .. } => {
                self.counters.memory_limits.fetch_add(1, Ordering::Relaxed)
            }
            _ => 0,
        };
        let opened = self
            .quarantine
            .lock()
            .record_failure(self.clock.now(), &error.to_string());
        if opened {
            tracing::error!(guard = %self.settings.name, %error, "guard quarantined after repeated failures");
        }
    }
}

/// An instance taken out of the pool for one call. Dropping it without [`Checkout::finish`]
/// (the call's future was dropped) discards the instance.
struct Checkout<'a> {
    inner: &'a GuardInner,
    instance: Option<GuardInstance>,
    pooled: bool,
}

impl Checkout<'_> {
    async fn run(&mut self, export: GuardExport, input: &[u8]) -> Result<Vec<u8>, GuardError> {
        self.inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        match self.instance.as_mut() {
            Some(instance) => {
                if instance.tier() == CodeTier::Baseline {
                    self.inner
                        .counters
                        .baseline_calls
                        .fetch_add(1, Ordering::Relaxed);
                }
                instance.call(export, input).await
            }
            None => Err(GuardError::Instantiate {
                name: self.inner.settings.name.to_string(),
                message: "no instance".to_owned(),
            }),
        }
    }

    /// Accounts for the call's result and returns a healthy pooled instance to the pool.
    fn finish(&mut self, error: Option<&GuardError>) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        if let Some(error) = error {
            self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
            if instance.is_poisoned() {
                self.inner.record_fault(error);
            }
        }
        if self.pooled && !instance.is_poisoned() {
            if instance.is_stale() {
                self.inner.retire(instance);
            } else {
                self.inner.idle.lock().push(instance);
            }
        } else {
            self.discard(instance);
        }
    }

    fn take(&mut self) -> Option<GuardInstance> {
        self.instance.take()
    }

    fn discard(&self, instance: GuardInstance) {
        self.inner
            .counters
            .instances_discarded
            .fetch_add(1, Ordering::Relaxed);
        drop(instance);
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.inner
                .counters
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(guard = %self.inner.settings.name, "guard call cancelled; instance discarded");
            self.discard(instance);
        }
    }
}
