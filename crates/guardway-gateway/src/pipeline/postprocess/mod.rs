//! What happens to a `tools/call` result after the interceptor (DIFC) has
//! returned it (gateway.md §6.2 step 8): the server's jq
//! `tool_response_filters` expression for the tool, then the payload spill
//! of results larger than `payloadSizeThreshold`.
//!
//! [`ResultPostProcessor::apply`] costs one map lookup done by the caller
//! and a size bound over the content lengths when there is no filter and
//! the result is small; the jq run and the spill run on tokio's blocking
//! pool. A filter that overruns its time limit is abandoned, not stopped:
//! jaq cannot be interrupted, so its blocking thread runs until the filter
//! ends (filters come from the operator's configuration, not from agents).

mod jq;
mod spill;

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult};

pub use crate::config::{JqCompileError, JqFilter, JqRunError};
pub use spill::{
    DEFAULT_SESSION_SEGMENT, PAYLOAD_FILE_NAME, PAYLOAD_INSTRUCTIONS, PAYLOAD_PREVIEW_BYTES,
    SpillError, SpillFailure, SpillOutcome, SpillSettings, may_exceed, payload_preview,
    payload_schema, spill,
};

use crate::config::GatewaySettings;

/// Time a jq response filter may run before the result goes out unfiltered.
pub const JQ_FILTER_TIMEOUT: Duration = Duration::from_secs(5);

/// The post-DIFC steps of one gateway. Immutable and cheap to share.
#[derive(Debug, Clone)]
pub struct ResultPostProcessor {
    spill: SpillSettings,
    jq_timeout: Duration,
}

impl ResultPostProcessor {
    /// Post-processing with the payload settings of `settings`.
    pub fn new(settings: &GatewaySettings) -> Self {
        Self {
            spill: SpillSettings {
                dir: settings.payload_dir.clone().into(),
                path_prefix: settings.payload_path_prefix.clone(),
                threshold: settings.payload_size_threshold,
            },
            jq_timeout: JQ_FILTER_TIMEOUT,
        }
    }

    /// The same with another jq time limit (tests).
    pub fn with_jq_timeout(mut self, timeout: Duration) -> Self {
        self.jq_timeout = timeout;
        self
    }

    pub fn spill_settings(&self) -> &SpillSettings {
        &self.spill
    }

    /// Applies `filter` (the server's expression for this tool, if any) and
    /// then the spill to a successful, complete, non-error result; anything
    /// else passes unchanged. Failures never fail the call: a filter error
    /// or timeout leaves the result unfiltered (warning), a spill failure
    /// leaves it in place (error). `session` gives the agent id (§3.2) and
    /// is only asked for when a result is spilled.
    pub async fn apply(
        &self,
        server: &str,
        response: Result<CallToolResponse, ErrorData>,
        filter: Option<&JqFilter>,
        session: impl FnOnce() -> Option<String>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Ok(CallToolResponse::Complete(result)) = response else {
            return response;
        };
        if result.is_error == Some(true)
            || (filter.is_none() && !may_exceed(&result, self.spill.threshold))
        {
            return Ok(CallToolResponse::Complete(result));
        }
        let result = match filter {
            Some(filter) => self.filter(server, filter, result).await,
            None => result,
        };
        if !may_exceed(&result, self.spill.threshold) {
            return Ok(CallToolResponse::Complete(result));
        }
        self.spill(server, result, session())
            .await
            .map(CallToolResponse::Complete)
    }

    async fn filter(
        &self,
        server: &str,
        filter: &JqFilter,
        result: CallToolResult,
    ) -> CallToolResult {
        let job = filter.clone();
        let input = result.clone();
        let run = tokio::task::spawn_blocking(move || job.apply(input));
        let error = match tokio::time::timeout(self.jq_timeout, run).await {
            Ok(Ok(Ok(filtered))) => return filtered,
            Ok(Ok(Err(error))) => error,
            Ok(Err(join)) => JqRunError::Task {
                message: join.to_string(),
            },
            Err(_) => JqRunError::Timeout {
                seconds: self.jq_timeout.as_secs(),
            },
        };
        tracing::warn!(
            server,
            filter = filter.source(),
            %error,
            "tool response filter failed; returning the unfiltered result"
        );
        result
    }

    async fn spill(
        &self,
        server: &str,
        result: CallToolResult,
        session: Option<String>,
    ) -> Result<CallToolResult, ErrorData> {
        let settings = self.spill.clone();
        let job = tokio::task::spawn_blocking(move || spill(result, &settings, session.as_deref()));
        match job.await {
            Ok(Ok(SpillOutcome::Kept(result))) => Ok(result),
            Ok(Ok(SpillOutcome::Spilled {
                result,
                file,
                original_size,
            })) => {
                tracing::info!(
                    server,
                    file = %file.display(),
                    original_size,
                    "large tool result written to the payload directory"
                );
                Ok(result)
            }
            Ok(Err(failure)) => {
                let SpillFailure { result, error } = *failure;
                tracing::error!(server, %error, "cannot spill a large tool result; returning it inline");
                Ok(result)
            }
            Err(join) => {
                tracing::error!(server, error = %join, "payload spill task failed");
                Err(crate::pipeline::gateway_error(format!(
                    "the result of this call could not be processed: {join}"
                )))
            }
        }
    }
}
