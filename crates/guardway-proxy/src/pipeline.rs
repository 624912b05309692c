//! The interface between the proxy's HTTP side and the DIFC pipeline: what
//! the handler asks for one guarded read (label the resource and check it,
//! refusing before anything reaches upstream; run the handler's forward
//! step; label the response and filter its items; taint the agent in
//! propagate mode) and the outcomes it shapes the HTTP answer from. No DIFC
//! logic lives here: the one implementation is
//! [`GatewayPipeline`](crate::GatewayPipeline), the gateway's own
//! `DifcPipeline`; the handler's unit tests put a fake in its place.

use serde_json::Value;

pub use guardway_wasm::BoxFuture;

/// One guarded read: the guard tool the request maps to and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardedCall {
    pub tool: String,
    pub args: Value,
    /// A GraphQL request (its answer is a `{"data": …}` document).
    pub graphql: bool,
}

/// Why the forward step produced no JSON to label. The proxy keeps the
/// upstream answer itself and sends it as it is (or its own error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardStop {
    /// The upstream could not be reached or its body not read.
    UpstreamFailed,
    /// A status of 300 or more, a body that is not JSON, or a body streamed
    /// through unread: passed to the client unlabelled (withheld when the
    /// coarse check denied the read and the status is below 400).
    NotLabelled,
}

/// What the pipeline tells the forward step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardContext {
    /// Whether the coarse check allowed the read. When it did not, an
    /// answer that cannot be labelled (not JSON, a redirect) is withheld.
    pub coarse_allowed: bool,
}

/// The caller's forward step: sends the request upstream and returns the
/// parsed JSON body of a 2xx answer.
pub type ForwardStep<'a> =
    Box<dyn FnOnce(ForwardContext) -> BoxFuture<'a, Result<Value, ForwardStop>> + Send + 'a>;

/// A labelled answer after per-item filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredAnswer {
    /// The answer without the items the agent may not see, in the
    /// upstream's shape; `None` when no item was removed (the upstream's
    /// bytes are sent as they are).
    pub body: Option<Value>,
    /// Items labelled.
    pub total: usize,
    /// Items removed.
    pub filtered: usize,
}

/// How a guarded read ended, once the forward step ran.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineOutcome {
    /// The forward step stopped: nothing was labelled.
    Stopped(ForwardStop),
    /// `label_response` gave no fine-grained labels (or was not called):
    /// the coarse check decides. `coarse_allowed` false → an empty answer.
    Unlabelled { coarse_allowed: bool },
    /// `label_response` failed: the coarse check decides as above.
    LabelingFailed {
        coarse_allowed: bool,
        message: String,
    },
    /// Per-item labels and the filtered answer.
    Filtered(FilteredAnswer),
}

/// A guarded read refused: before the forward step ran (nothing reached
/// the upstream) or, for `AnswerDenied`, after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineRefusal {
    /// The coarse check denied the operation (a write, or a read-write):
    /// nothing reached the upstream. `message` is the client's text
    /// (`DIFC policy violation: …`).
    #[error("{message}")]
    Denied { message: String },
    /// The answer may not be seen at all (strict mode with filtered items,
    /// a tool-call limit): `message` is the client's text.
    #[error("{message}")]
    AnswerDenied { message: String },
    /// `label_resource` failed (the guard failed, is quarantined, …).
    #[error("resource labeling failed: {message}")]
    LabelingFailed { message: String },
}

/// The DIFC pipeline as the proxy uses it. Implementations are shared
/// (`Arc<dyn ProxyPipeline>`) and called concurrently.
pub trait ProxyPipeline: Send + Sync + 'static {
    /// Runs one guarded read: `label_resource` and the coarse check, then
    /// `forward`, then `label_response` and filtering, then the taint in
    /// propagate mode.
    fn run<'a>(
        &'a self,
        call: GuardedCall,
        forward: ForwardStep<'a>,
    ) -> BoxFuture<'a, Result<PipelineOutcome, PipelineRefusal>>;

    /// A read forwarded without labelling (an endpoint no route knows):
    /// taints the agent with empty labels in propagate mode.
    fn note_unlabelled_read(&self, description: &str) {
        let _ = description;
    }

    /// The DIFC state for `/reflect`: `{"agents": …, "mode": …}` (the HTTP
    /// layer adds the timestamp).
    fn reflect(&self) -> Value;

    /// Appends the pipeline's metric families to a `/metrics` body.
    fn render_metrics(&self, out: &mut String) {
        let _ = out;
    }
}
