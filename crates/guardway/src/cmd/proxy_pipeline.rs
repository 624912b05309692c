//! INTERIM: the DIFC pipeline of `guardway proxy` over the guard host and
//! the DIFC core, until the gateway's transport-neutral pipeline can serve
//! the proxy.

use std::sync::Arc;

use guardway_difc::{
    AgentRegistry, EnforcementMode, LabelPair, LabelResourceInput, LabelResponseInput, LabelView,
    ResponseLabels, coarse_check, effective_mode, filter_items, labels_response, taint_source,
    taints_agent,
};
use guardway_proxy::pipeline::BoxFuture;
use guardway_proxy::{
    FilteredItems, ForwardContext, ForwardStep, GuardedCall, ItemSource, PipelineOutcome,
    PipelineRefusal, ProxyPipeline,
};
use guardway_wasm::{Guard, GuardModule, GuardOptions};
use serde_json::{Value, json};

/// The agent id of proxy requests (one agent per proxy).
pub const PROXY_AGENT_ID: &str = "proxy";

pub struct InterimPipeline {
    guard: Guard,
    registry: AgentRegistry,
    mode: EnforcementMode,
}

impl InterimPipeline {
    pub async fn new(
        wasm: &std::path::Path,
        payload: Value,
        configured_mode: EnforcementMode,
        backend: Arc<dyn guardway_wasm::Backend>,
    ) -> anyhow::Result<InterimPipeline> {
        let options = GuardOptions::default();
        let module = GuardModule::from_file(wasm, &options)?;
        let guard = Guard::new(module, &payload, options, Some(backend)).await?;
        let labels = guard.agent_labels().clone();
        let registry = AgentRegistry::new();
        registry.apply_agent_labels(PROXY_AGENT_ID, &labels);
        let mode =
            effective_mode(labels.difc_mode.as_str(), configured_mode).unwrap_or(configured_mode);
        Ok(InterimPipeline {
            guard,
            registry,
            mode,
        })
    }
}

impl ProxyPipeline for InterimPipeline {
    fn run<'a>(
        &'a self,
        call: GuardedCall,
        forward: ForwardStep<'a>,
    ) -> BoxFuture<'a, Result<PipelineOutcome, PipelineRefusal>> {
        Box::pin(async move {
            let agent = self.registry.get_or_create(PROXY_AGENT_ID);
            let input = LabelResourceInput {
                tool_name: call.tool.clone(),
                tool_args: call.args.clone(),
                capabilities: None,
            };
            let resource = self.guard.label_resource(&input).await.map_err(|e| {
                PipelineRefusal::LabelingFailed {
                    message: e.to_string(),
                }
            })?;
            let check = coarse_check(&agent, &resource, self.mode);
            if check.refused {
                return Err(PipelineRefusal::Denied {
                    reason: check.evaluation.reason.clone(),
                });
            }
            let coarse_allowed = check.evaluation.is_allowed();
            let value = match forward(ForwardContext { coarse_allowed }).await {
                Ok(value) => value,
                Err(stop) => return Ok(PipelineOutcome::Stopped(stop)),
            };
            if !labels_response(resource.operation, self.mode) {
                return Ok(PipelineOutcome::Unlabelled { coarse_allowed });
            }
            let input = LabelResponseInput {
                tool_name: call.tool.clone(),
                tool_result: value.clone(),
                tool_args: Some(call.args.clone()),
                capabilities: None,
            };
            let labels = match self.guard.label_response(&input).await {
                Ok(labels) => labels,
                Err(e) => {
                    return Ok(PipelineOutcome::LabelingFailed {
                        coarse_allowed,
                        message: e.to_string(),
                    });
                }
            };
            let (items, source) = match labels {
                ResponseLabels::None => {
                    if taints_agent(resource.operation, self.mode) {
                        self.registry
                            .taint(PROXY_AGENT_ID, &taint_source(&resource, None));
                    }
                    return Ok(PipelineOutcome::Unlabelled { coarse_allowed });
                }
                ResponseLabels::Items(items) => (items, ItemSource::Detached),
                ResponseLabels::Paths(paths) => match paths.resolve(&value) {
                    Ok(items) => (items, ItemSource::Path(paths.items_path.clone())),
                    Err(e) => {
                        return Ok(PipelineOutcome::LabelingFailed {
                            coarse_allowed,
                            message: e.to_string(),
                        });
                    }
                },
            };
            let outcome = filter_items(&agent, &items, resource.operation, self.mode);
            let strict_blocked =
                self.mode == EnforcementMode::Strict && !outcome.filtered.is_empty();
            if !strict_blocked && taints_agent(resource.operation, self.mode) {
                self.registry
                    .taint(PROXY_AGENT_ID, &taint_source(&resource, Some(&items)));
            }
            let _ = LabelView::from(&resource);
            Ok(PipelineOutcome::Filtered(FilteredItems {
                items,
                accessible: outcome.accessible,
                source,
                strict_blocked,
            }))
        })
    }

    fn note_unlabelled_read(&self, description: &str) {
        let _ = description;
        if self.mode == EnforcementMode::Propagate {
            self.registry.taint(PROXY_AGENT_ID, &LabelPair::default());
        }
    }

    fn reflect(&self) -> Value {
        let agents: serde_json::Map<String, Value> = self
            .registry
            .snapshot()
            .into_iter()
            .map(|(id, labels)| {
                let mut secrecy: Vec<&str> = labels.secrecy.iter().collect();
                let mut integrity: Vec<&str> = labels.integrity.iter().collect();
                secrecy.sort_unstable();
                integrity.sort_unstable();
                (id, json!({"secrecy": secrecy, "integrity": integrity}))
            })
            .collect();
        json!({"agents": agents, "mode": self.mode.as_str()})
    }
}

/// The `label_agent` payload: the policy (legacy `allowonly` renamed),
/// `trusted-bots` at the top, `trusted-users` added to `allow-only`.
pub fn label_agent_payload(
    policy: &str,
    trusted_bots: &[String],
    trusted_users: &[String],
) -> anyhow::Result<Value> {
    let mut value: Value = serde_json::from_str(policy).map_err(|e| {
        anyhow::anyhow!("failed to initialize guard policy: invalid policy JSON: {e}")
    })?;
    let object = value.as_object_mut().ok_or_else(|| {
        anyhow::anyhow!(
            "failed to initialize guard policy: policy validation failed: expected a JSON object"
        )
    })?;
    if !object.contains_key("allow-only")
        && let Some(legacy) = object.remove("allowonly")
    {
        object.insert("allow-only".to_owned(), legacy);
    }
    if !trusted_bots.is_empty() {
        object.insert("trusted-bots".to_owned(), json!(trusted_bots));
    }
    if !trusted_users.is_empty()
        && let Some(Value::Object(allow_only)) = object.get_mut("allow-only")
    {
        let mut users: Vec<Value> = match allow_only.get("trusted-users") {
            Some(Value::Array(existing)) => existing.clone(),
            _ => Vec::new(),
        };
        for user in trusted_users {
            if !users.iter().any(|u| u.as_str() == Some(user)) {
                users.push(json!(user));
            }
        }
        allow_only.insert("trusted-users".to_owned(), Value::Array(users));
    }
    guardway_difc::prepare_label_agent_policy(value).map_err(|e| {
        anyhow::anyhow!("failed to initialize guard policy: policy validation failed: {e}")
    })
}
