//! What `guard call` and `guard test` share: the canned backend (`--backend`, a case's
//! `backend`), the trace recorder (`--trace`), and one label call on a fresh instance run
//! the way the gateway runs a session's first call (`label_agent` first when there is a
//! policy).

use std::sync::Arc;

use guardway_difc::{
    AgentLabels, LabelParseError, LabelResourceInput, LabelResponseInput, ResourceLabels,
    ResponseLabels, prepare_label_agent_policy,
};
use guardway_wasm::{
    Backend, BackendCallError, BackendCallRecord, BoxFuture, FreshInstance, GuardError,
    GuardExport, GuardLogLevel, GuardModule, GuardObserver, GuardOptions,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::LabelCall;

/// Answers a guard's `call_backend` from a fixed map of tool name → tool result; any
/// other tool fails, so the guard sees `-1` as for a failed backend call.
///
/// Immutable after creation; shared as `Arc<dyn Backend>`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CannedBackend {
    answers: Map<String, Value>,
}

impl CannedBackend {
    /// A backend from a JSON object mapping tool names to results.
    pub(crate) fn from_value(value: Value) -> Result<CannedBackend, String> {
        match value {
            Value::Object(answers) => Ok(CannedBackend { answers }),
            Value::Null => Ok(CannedBackend::default()),
            other => Err(format!(
                "must be an object mapping tool names to results, found {}",
                kind(&other)
            )),
        }
    }
}

impl Backend for CannedBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        _args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        let answer = self.answers.get(tool).cloned();
        Box::pin(async move {
            answer.ok_or_else(|| BackendCallError::Failed {
                tool: tool.to_owned(),
                message: "no canned answer for this tool".to_owned(),
            })
        })
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One thing a guard did through its imports.
#[derive(Debug, Clone)]
pub(crate) enum TraceEvent {
    Log {
        level: GuardLogLevel,
        stream: String,
        message: String,
    },
    Backend(BackendCallRecord),
}

impl TraceEvent {
    /// One line describing the event.
    pub(crate) fn describe(&self) -> String {
        match self {
            TraceEvent::Log {
                level,
                stream,
                message,
            } => format!("{stream} {}: {message}", level.as_str()),
            TraceEvent::Backend(record) => {
                let tool = record.tool.as_deref().unwrap_or("<unreadable tool name>");
                let args = if record.args.is_empty() {
                    "{}"
                } else {
                    record.args.as_str()
                };
                let answer = match (record.code, record.answer_bytes, &record.error) {
                    (-1, _, Some(error)) => format!("-1 ({error})"),
                    (-2, Some(bytes), _) => {
                        format!("-2 (the answer of {bytes} bytes does not fit the guard's buffer)")
                    }
                    (code, Some(bytes), _) if code >= 0 => format!("{bytes} bytes"),
                    (code, _, _) => code.to_string(),
                };
                let retry = if record.retry {
                    " [retry served from the kept answer]"
                } else {
                    ""
                };
                format!("call_backend {tool} {args} -> {answer}{retry}")
            }
        }
    }
}

/// Records a guard's log lines and backend calls in order; with `echo` it also prints
/// each to stderr as it happens (`guard call --trace`).
///
/// `Send + Sync`; shared as `Arc<dyn GuardObserver>` by one call's instance.
#[derive(Debug, Default)]
pub(crate) struct TraceRecorder {
    events: Mutex<Vec<TraceEvent>>,
    echo: bool,
}

impl TraceRecorder {
    pub(crate) fn new(echo: bool) -> TraceRecorder {
        TraceRecorder {
            events: Mutex::new(Vec::new()),
            echo,
        }
    }

    /// The events recorded so far.
    pub(crate) fn events(&self) -> Vec<TraceEvent> {
        self.events.lock().clone()
    }

    /// The tools the guard asked the backend for, in order (retries served from a kept
    /// answer are not new calls).
    pub(crate) fn backend_calls(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter_map(|event| match event {
                TraceEvent::Backend(record) if !record.retry => {
                    Some(record.tool.clone().unwrap_or_default())
                }
                _ => None,
            })
            .collect()
    }

    fn push(&self, event: TraceEvent) {
        if self.echo {
            eprintln!("[trace] {}", event.describe());
        }
        self.events.lock().push(event);
    }
}

impl GuardObserver for TraceRecorder {
    fn log(&self, level: GuardLogLevel, stream: &str, message: &str) {
        self.push(TraceEvent::Log {
            level,
            stream: stream.to_owned(),
            message: message.to_owned(),
        });
    }

    fn backend_call(&self, record: &BackendCallRecord) {
        self.push(TraceEvent::Backend(record.clone()));
    }
}

/// How one label call ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The guard's output JSON (`null` when it returned 0).
    Output(Value),
    /// The guard refused: a negative return code, or a refused policy.
    Refused(String),
    /// Anything else: a trap, a timeout, unusable output, a failed instantiation.
    Fault(String),
}

/// Runs `call` with `input` on a fresh instance of `module`, after `label_agent` with
/// `policy` when one is given (validated first, as the gateway does).
pub(crate) async fn run_call(
    module: &GuardModule,
    options: &GuardOptions,
    backend: Option<Arc<dyn Backend>>,
    policy: Option<&Value>,
    call: LabelCall,
    input: &Value,
) -> Outcome {
    let mut instance = match FreshInstance::new(module, options, backend).await {
        Ok(instance) => instance,
        Err(error) => return Outcome::Fault(error.to_string()),
    };
    if let Some(policy) = policy.filter(|policy| !policy.is_null()) {
        match label_agent(&mut instance, policy).await {
            Outcome::Output(_) => {}
            other => return other,
        }
    }
    match call {
        LabelCall::Agent => label_agent(&mut instance, input).await,
        LabelCall::Resource => {
            let input = match serde_json::from_value::<LabelResourceInput>(input.clone()) {
                Ok(input) => input,
                Err(error) => {
                    return Outcome::Fault(format!("invalid label_resource input: {error}"));
                }
            };
            let bytes = match serde_json::to_vec(&input) {
                Ok(bytes) => bytes,
                Err(error) => return Outcome::Fault(error.to_string()),
            };
            match instance.call(GuardExport::LabelResource, &bytes).await {
                Ok(raw) => match ResourceLabels::parse(&raw) {
                    Ok(_) => raw_outcome(&raw),
                    Err(error) => Outcome::Fault(format!(
                        "the label_resource output is not usable: {error} (output: {})",
                        preview(&raw)
                    )),
                },
                Err(error) => refused_or_fault(error),
            }
        }
        LabelCall::Response => {
            let input = match serde_json::from_value::<LabelResponseInput>(input.clone()) {
                Ok(input) => input,
                Err(error) => {
                    return Outcome::Fault(format!("invalid label_response input: {error}"));
                }
            };
            let bytes = match serde_json::to_vec(&input) {
                Ok(bytes) => bytes,
                Err(error) => return Outcome::Fault(error.to_string()),
            };
            match instance.call(GuardExport::LabelResponse, &bytes).await {
                Ok(raw) if raw.is_empty() => Outcome::Output(Value::Null),
                Ok(raw) => match ResponseLabels::parse(&raw) {
                    Ok(_) => raw_outcome(&raw),
                    Err(error) => Outcome::Fault(format!(
                        "the label_response output is not usable: {error} (output: {})",
                        preview(&raw)
                    )),
                },
                Err(error) => refused_or_fault(error),
            }
        }
    }
}

/// `label_agent` with the policy validated as the gateway validates it.
async fn label_agent(instance: &mut FreshInstance, policy: &Value) -> Outcome {
    let policy = match prepare_label_agent_policy(policy.clone()) {
        Ok(policy) => policy,
        Err(error) => return Outcome::Refused(format!("policy refused by the host: {error}")),
    };
    let bytes = match serde_json::to_vec(&policy) {
        Ok(bytes) => bytes,
        Err(error) => return Outcome::Fault(error.to_string()),
    };
    match instance.call(GuardExport::LabelAgent, &bytes).await {
        Ok(raw) => match AgentLabels::parse(&raw) {
            Ok(_) => raw_outcome(&raw),
            Err(
                error @ (LabelParseError::AgentRejected { .. }
                | LabelParseError::AgentNonSuccess
                | LabelParseError::AgentError { .. }),
            ) => Outcome::Refused(format!("policy refused by the guard: {error}")),
            Err(error) => Outcome::Fault(format!(
                "the label_agent output is not usable: {error} (output: {})",
                preview(&raw)
            )),
        },
        Err(error) => refused_or_fault(error),
    }
}

fn refused_or_fault(error: GuardError) -> Outcome {
    match error {
        GuardError::GuardFailed { .. } | GuardError::PolicyRejected { .. } => {
            Outcome::Refused(error.to_string())
        }
        other => Outcome::Fault(other.to_string()),
    }
}

fn raw_outcome(raw: &[u8]) -> Outcome {
    if raw.is_empty() {
        return Outcome::Output(Value::Null);
    }
    match serde_json::from_slice(raw) {
        Ok(value) => Outcome::Output(value),
        Err(error) => Outcome::Fault(format!(
            "the guard's output is not JSON: {error} (output: {})",
            preview(raw)
        )),
    }
}

fn preview(raw: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&raw[..raw.len().min(MAX)]).into_owned();
    if raw.len() > MAX {
        format!("{text}… ({} bytes)", raw.len())
    } else {
        text
    }
}
