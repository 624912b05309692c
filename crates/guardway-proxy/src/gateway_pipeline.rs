//! The proxy's DIFC pipeline: the gateway's transport-neutral
//! [`DifcPipeline`] with one server (`github`) bound to the proxy's guard,
//! its `call_backend` answered over REST, every request run as the agent
//! `proxy`; a labelled answer is shaped into its upstream form by the
//! proxy's [`ForwardedResult`] (REST arrays, search envelopes, GraphQL
//! connections) instead of the gateway's MCP view.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use guardway_difc::EnforcementMode;
use guardway_gateway::pipeline::difc::{
    CallError, DenialStage, DifcCall, DifcPipeline, FilteredItems, Forwarded, ForwardedResult,
    GuardLoadError, Outcome, Refusal, ServerSpec, ViewError, render_cache_stats,
};
use serde_json::Value;

use crate::pipeline::{
    BoxFuture, FilteredAnswer, ForwardContext, ForwardStep, GuardedCall, PipelineOutcome,
    PipelineRefusal, ProxyPipeline,
};
use crate::shape::{ItemsAt, graphql_body, rest_body};

/// The server id the proxy's guard is bound to (the reference names its
/// guard `github`).
pub const PROXY_SERVER_ID: &str = "github";
/// The agent every proxy request runs as.
pub const PROXY_AGENT_ID: &str = "proxy";

tokio::task_local! {
    /// Whether the answer being labelled is a GraphQL answer.
    static GRAPHQL_ANSWER: bool;
}

/// An upstream JSON answer as the pipeline carries it.
#[derive(Debug)]
struct UpstreamJson(Value);

impl ForwardedResult for UpstreamJson {
    fn into_json(self) -> Result<(Value, Option<Self>), String> {
        Ok((self.0, None))
    }

    fn from_json(value: Value) -> Result<Self, String> {
        Ok(UpstreamJson(value))
    }

    /// The answer without the items the agent may not see, in the
    /// upstream's shape; strict mode refuses an answer with any.
    fn filtered(items: &FilteredItems<'_>) -> Result<Self, ViewError> {
        let total = items.outcome.total;
        let removed = items.outcome.filtered.len();
        if removed == 0 {
            // The upstream bytes are sent as they are.
            return Ok(UpstreamJson(Value::Null));
        }
        if items.mode == EnforcementMode::Strict {
            return Err(ViewError::Denied(format!(
                "DIFC policy violation: {removed} of {total} items not accessible"
            )));
        }
        let at = match items.items_path {
            Some(path) => ItemsAt::Path(path),
            None => ItemsAt::Detached,
        };
        let graphql = GRAPHQL_ANSWER.try_with(|graphql| *graphql).unwrap_or(false);
        let original = items.result.clone();
        let accessible = &items.outcome.accessible;
        Ok(UpstreamJson(if graphql {
            graphql_body(original, items.items, accessible, at)
        } else {
            rest_body(original, items.items, accessible, at)
        }))
    }
}

/// What the proxy's pipeline is built from.
#[derive(Clone)]
pub struct GatewayPipelineOptions {
    /// The guard module.
    pub guard_wasm: PathBuf,
    /// The validated policy (`allow-only`).
    pub policy: Value,
    pub trusted_bots: Vec<String>,
    pub trusted_users: Vec<String>,
    /// The mode of a guard that sets none (a wasm guard's `difc_mode`
    /// wins).
    pub mode: EnforcementMode,
    /// What the guard's `call_backend` reaches.
    pub call_backend: Arc<dyn guardway_wasm::Backend>,
}

/// The gateway's DIFC pipeline serving the proxy. `Send + Sync`, shared as
/// `Arc<dyn ProxyPipeline>`.
pub struct GatewayPipeline {
    difc: DifcPipeline,
}

impl GatewayPipeline {
    /// Loads the guard and creates the pool of the policy (`label_agent`
    /// runs now, so a policy the guard rejects fails here), then opens the
    /// proxy's session: the agent `proxy` holds the guard's labels from
    /// start-up, as in the reference.
    ///
    /// # Errors
    /// The guard could not be loaded or refused the policy.
    pub async fn build(options: GatewayPipelineOptions) -> Result<GatewayPipeline, GuardLoadError> {
        let spec = ServerSpec::wasm_file(PROXY_SERVER_ID, options.guard_wasm)
            .policy(options.policy)
            .trusted_bots(options.trusted_bots)
            .trusted_users(options.trusted_users)
            .call_backend(options.call_backend);
        let difc = DifcPipeline::builder()
            .mode(options.mode)
            .server(spec)
            .require_guards(true)
            .build()
            .await?;
        if let Err(reason) = difc
            .open_session(PROXY_SERVER_ID, PROXY_AGENT_ID, PROXY_AGENT_ID)
            .await
        {
            // The same failure refuses every guarded read: it is reported
            // then, with the request.
            tracing::warn!(target: "guardway::proxy", "the proxy agent's labels are not set: {reason}");
        }
        Ok(GatewayPipeline { difc })
    }

    /// The underlying pipeline.
    pub fn difc(&self) -> &DifcPipeline {
        &self.difc
    }
}

/// Where the forward step stands, as an atomic (the step runs inside the
/// pipeline's future).
const NOT_FORWARDED: u8 = 0;
const FORWARDED_ALLOWED: u8 = 1;
const FORWARDED_DENIED: u8 = 2;

/// The reason of a coarse denial, out of the gateway's violation text
/// (`DIFC Violation: <reason>` and details).
fn coarse_reason(message: &str) -> &str {
    let first = message.lines().next().unwrap_or(message);
    first.strip_prefix("DIFC Violation: ").unwrap_or(first)
}

impl ProxyPipeline for GatewayPipeline {
    fn run<'a>(
        &'a self,
        call: GuardedCall,
        forward: ForwardStep<'a>,
    ) -> BoxFuture<'a, Result<PipelineOutcome, PipelineRefusal>> {
        Box::pin(async move {
            let forwarded = AtomicU8::new(NOT_FORWARDED);
            let difc_call = DifcCall {
                server: PROXY_SERVER_ID,
                tool: &call.tool,
                arguments: call.args,
                agent_id: Some(PROXY_AGENT_ID),
                session: None,
            };
            let step = |verdict: guardway_gateway::pipeline::difc::CoarseVerdict| {
                forwarded.store(
                    if verdict.allowed {
                        FORWARDED_ALLOWED
                    } else {
                        FORWARDED_DENIED
                    },
                    Ordering::Relaxed,
                );
                let context = ForwardContext {
                    coarse_allowed: verdict.allowed,
                };
                async move {
                    Ok::<_, std::convert::Infallible>(match forward(context).await {
                        Ok(value) => Forwarded::Result(UpstreamJson(value)),
                        Err(stop) => Forwarded::Unlabelled(stop),
                    })
                }
            };
            let outcome = GRAPHQL_ANSWER
                .scope(call.graphql, self.difc.call_with_verdict(difc_call, step))
                .await;
            let state = forwarded.load(Ordering::Relaxed);
            let coarse_allowed = state == FORWARDED_ALLOWED;
            match outcome {
                Ok(Outcome::Unlabelled(stop)) => Ok(PipelineOutcome::Stopped(stop)),
                Ok(Outcome::Result { items: None, .. }) => {
                    Ok(PipelineOutcome::Unlabelled { coarse_allowed })
                }
                Ok(Outcome::Result {
                    result,
                    items: Some(counts),
                }) => Ok(PipelineOutcome::Filtered(FilteredAnswer {
                    body: (counts.filtered > 0).then_some(result.0),
                    total: counts.total,
                    filtered: counts.filtered,
                })),
                Err(CallError::Forward(never)) => match never {},
                Err(CallError::Refused(refusal)) => match refusal {
                    Refusal::Denied {
                        stage: DenialStage::Coarse,
                        message,
                    } => Err(PipelineRefusal::Denied {
                        message: format!("DIFC policy violation: {}", coarse_reason(&message)),
                    }),
                    Refusal::Denied { message, .. } | Refusal::Limit { message } => {
                        Err(PipelineRefusal::AnswerDenied { message })
                    }
                    // The guard failed on the answer: the coarse check
                    // decides, as the reference proxy does.
                    Refusal::GuardError { message } if state != NOT_FORWARDED => {
                        Ok(PipelineOutcome::LabelingFailed {
                            coarse_allowed,
                            message,
                        })
                    }
                    Refusal::GuardError { message } => {
                        Err(PipelineRefusal::LabelingFailed { message })
                    }
                },
            }
        })
    }

    fn note_unlabelled_read(&self, description: &str) {
        let _ = description;
        let mode = self.difc.default_mode();
        if mode == EnforcementMode::Propagate {
            // Empty resource labels: reading drops the agent's integrity,
            // as the reference's empty-label pass-through does.
            self.difc
                .agents()
                .taint(PROXY_AGENT_ID, &guardway_difc::LabelPair::default());
        }
    }

    fn reflect(&self) -> Value {
        self.difc.reflect()
    }

    fn render_metrics(&self, out: &mut String) {
        self.difc.render_metrics(out);
        render_cache_stats(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ForwardStop;
    use guardway_wasm::{BackendCallError, BoxFuture as GuardFuture};
    use serde_json::json;

    #[test]
    fn coarse_reasons_come_out_of_the_violation_text() {
        assert_eq!(
            coarse_reason("DIFC Violation: Resource 'x' has secrecy requirements\n\nmore"),
            "Resource 'x' has secrecy requirements"
        );
        assert_eq!(coarse_reason("other"), "other");
    }

    /// The sample guard, built by scripts/build-guards.sh when missing.
    fn sample_guard() -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let wasm = root.join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
        if !wasm.exists() {
            let status = std::process::Command::new("bash")
                .arg(root.join("scripts/build-guards.sh"))
                .current_dir(&root)
                .status()
                .unwrap();
            assert!(status.success(), "scripts/build-guards.sh failed");
        }
        wasm
    }

    /// Visibility look-ups: every repository is public.
    struct PublicRepos;

    impl guardway_wasm::Backend for PublicRepos {
        fn call_tool<'a>(
            &'a self,
            tool: &'a str,
            args: Value,
        ) -> GuardFuture<'a, Result<Value, BackendCallError>> {
            Box::pin(async move {
                assert_eq!(tool, "search_repositories");
                let repo = args["query"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("repo:");
                let found = json!({"items": [{"full_name": repo, "private": false}]});
                Ok(json!({"content": [{"type": "text", "text": found.to_string()}]}))
            })
        }
    }

    async fn pipeline() -> GatewayPipeline {
        GatewayPipeline::build(GatewayPipelineOptions {
            guard_wasm: sample_guard(),
            policy: json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}}),
            trusted_bots: Vec::new(),
            trusted_users: Vec::new(),
            mode: EnforcementMode::Filter,
            call_backend: Arc::new(PublicRepos),
        })
        .await
        .unwrap()
    }

    fn issue(number: u64, login: &str, association: &str) -> Value {
        json!({"number": number, "user": {"login": login}, "author_association": association,
               "repository_url": "https://api.github.com/repos/octo-org/api"})
    }

    fn gql_issue(number: u64, login: &str, association: &str) -> Value {
        json!({"number": number, "author": {"login": login}, "authorAssociation": association})
    }

    /// Runs `tool` whose upstream answers `answer`; returns the outcome and
    /// the coarse verdict the forward step was given.
    async fn run(
        pipeline: &GatewayPipeline,
        tool: &str,
        args: Value,
        graphql: bool,
        answer: Result<Value, ForwardStop>,
    ) -> (Result<PipelineOutcome, PipelineRefusal>, Option<bool>) {
        let seen = Arc::new(parking_lot::Mutex::new(None));
        let verdict = seen.clone();
        let call = GuardedCall {
            tool: tool.to_owned(),
            args,
            graphql,
        };
        let outcome = pipeline
            .run(
                call,
                Box::new(move |context: ForwardContext| {
                    *verdict.lock() = Some(context.coarse_allowed);
                    Box::pin(async move { answer })
                }),
            )
            .await;
        let verdict = *seen.lock();
        (outcome, verdict)
    }

    fn body_of(outcome: Result<PipelineOutcome, PipelineRefusal>) -> (Option<Value>, usize, usize) {
        match outcome {
            Ok(PipelineOutcome::Filtered(FilteredAnswer {
                body,
                total,
                filtered,
            })) => (body, total, filtered),
            other => panic!("not filtered: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_proxy_agent_holds_its_labels_from_the_start() {
        let pipeline = pipeline().await;
        let reflect = pipeline.reflect();
        let agent = &reflect["agents"][PROXY_AGENT_ID];
        assert_eq!(agent["secrecy"], json!(["private:octo-org"]), "{reflect}");
        assert_eq!(
            agent["integrity"],
            json!([
                "approved:octo-org/*",
                "none:octo-org/*",
                "unapproved:octo-org/*"
            ]),
            "{reflect}"
        );
        // Opening the session counted no call.
        let mut metrics = String::new();
        pipeline.render_metrics(&mut metrics);
        assert!(!metrics.contains("guardway_tool_calls_total{"), "{metrics}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_are_filtered_into_their_upstream_shape() {
        let pipeline = pipeline().await;
        let repo = json!({"owner": "octo-org", "repo": "api"});
        let list = json!([
            issue(1, "alice", "OWNER"),
            issue(2, "dave", "CONTRIBUTOR"),
            issue(3, "bob", "MEMBER")
        ]);
        let (outcome, verdict) = run(&pipeline, "list_issues", repo.clone(), false, Ok(list)).await;
        // The repository's baseline labels deny the approved agent before
        // the call: a read, forwarded all the same.
        assert_eq!(verdict, Some(false));
        let (body, total, filtered) = body_of(outcome);
        assert_eq!((total, filtered), (3, 1));
        assert_eq!(
            body,
            Some(json!([
                issue(1, "alice", "OWNER"),
                issue(3, "bob", "MEMBER")
            ]))
        );

        let envelope = json!({"total_count": 3, "incomplete_results": true,
            "items": [issue(1, "alice", "OWNER"), issue(2, "dave", "CONTRIBUTOR"), issue(3, "bob", "MEMBER")]});
        let args = json!({"query": "repo:octo-org/api is:issue"});
        let (outcome, _) = run(&pipeline, "search_issues", args, false, Ok(envelope)).await;
        let (body, _, _) = body_of(outcome);
        assert_eq!(
            body,
            Some(json!({"total_count": 2, "incomplete_results": false,
                        "items": [issue(1, "alice", "OWNER"), issue(3, "bob", "MEMBER")]}))
        );

        let graphql = json!({"data": {"repository": {"hasIssuesEnabled": true, "issues": {"totalCount": 3,
            "nodes": [gql_issue(1, "alice", "OWNER"), gql_issue(2, "dave", "CONTRIBUTOR"), gql_issue(3, "bob", "MEMBER")]}}}});
        let (outcome, _) = run(&pipeline, "list_issues", repo.clone(), true, Ok(graphql)).await;
        let (body, _, _) = body_of(outcome);
        assert_eq!(
            body,
            Some(
                json!({"data": {"repository": {"hasIssuesEnabled": true, "issues": {"totalCount": 2,
                "nodes": [gql_issue(1, "alice", "OWNER"), gql_issue(3, "bob", "MEMBER")]}}}})
            )
        );

        // Nothing removed: no body (the upstream's bytes are sent).
        let approved = json!([issue(1, "alice", "OWNER")]);
        let (outcome, _) = run(&pipeline, "list_issues", repo, false, Ok(approved)).await;
        assert_eq!(body_of(outcome), (None, 1, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unlabelled_and_stopped_answers_keep_the_coarse_verdict() {
        let pipeline = pipeline().await;
        // The user's profile is labelled trusted before the call.
        let (outcome, verdict) = run(
            &pipeline,
            "get_me",
            json!({}),
            false,
            Ok(json!({"login": "x"})),
        )
        .await;
        assert_eq!(verdict, Some(true));
        assert_eq!(body_of(outcome), (None, 1, 0));
        // An answer the proxy did not label comes back as its stop.
        let repo = json!({"owner": "octo-org", "repo": "api", "run_id": "7"});
        let (outcome, verdict) = run(
            &pipeline,
            "get_job_logs",
            repo,
            false,
            Err(ForwardStop::NotLabelled),
        )
        .await;
        assert_eq!(verdict, Some(true));
        assert_eq!(
            outcome,
            Ok(PipelineOutcome::Stopped(ForwardStop::NotLabelled))
        );
        // A GraphQL answer without a connection: no labels, the coarse
        // check (denied here) decides.
        let repo = json!({"owner": "octo-org", "repo": "api"});
        let (outcome, verdict) = run(
            &pipeline,
            "list_issues",
            repo,
            true,
            Ok(json!({"data": {"repository": null}})),
        )
        .await;
        assert_eq!(verdict, Some(false));
        assert_eq!(
            outcome,
            Ok(PipelineOutcome::Unlabelled {
                coarse_allowed: false
            })
        );
        // The agent's labels came from label_agent on the first call.
        let reflect = pipeline.reflect();
        assert_eq!(
            reflect["agents"]["proxy"]["secrecy"],
            json!(["private:octo-org"])
        );
    }

    #[test]
    fn strict_mode_refuses_answers_with_filtered_items() {
        use guardway_difc::{ItemLabels, LabelPair, LabeledItem, Operation, TagSet, filter_items};
        let agent = LabelPair::new(TagSet::new(), TagSet::from_strs(["approved"]));
        let item = |integrity: &[&str]| LabeledItem {
            data: json!({}),
            labels: ItemLabels {
                description: "i".into(),
                secrecy: TagSet::new(),
                integrity: TagSet::from_strs(integrity.iter().copied()),
            },
        };
        let items = [item(&["approved"]), item(&[])];
        let outcome = filter_items(&agent, &items, Operation::Read, EnforcementMode::Strict);
        let result = json!([{}, {}]);
        let view = UpstreamJson::filtered(&FilteredItems {
            result: &result,
            items: &items,
            items_path: Some(""),
            outcome: &outcome,
            mode: EnforcementMode::Strict,
            tool: "list_issues",
            agent_id: PROXY_AGENT_ID,
        });
        assert_eq!(
            view.unwrap_err(),
            ViewError::Denied("DIFC policy violation: 1 of 2 items not accessible".into())
        );
    }
}
