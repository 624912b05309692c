//! `env.call_backend` for guards: [`guardway_wasm::Backend`] over the
//! gateway's handle of the backend the guard serves. Read-only look-ups on
//! behalf of the guard; they bypass the DIFC pipeline.

use std::sync::{Arc, OnceLock};

use guardway_wasm::{BackendCallError, BoxFuture};
use rmcp::model::{CallToolRequestParams, CallToolResponse};

use crate::backend::Backend;

/// The backend a guard reaches through `call_backend`. The gateway's handle
/// is attached once the backends exist; calls before that fail as
/// unavailable. `Send + Sync`, shared as `Arc` by every instance of a guard.
#[derive(Debug, Default)]
pub struct GuardBackendLink {
    backend: OnceLock<Arc<Backend>>,
}

impl GuardBackendLink {
    /// Attaches the gateway's backend handle (first call wins).
    pub fn attach(&self, backend: Arc<Backend>) {
        let _ = self.backend.set(backend);
    }
}

impl guardway_wasm::Backend for GuardBackendLink {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendCallError>> {
        Box::pin(async move {
            let Some(backend) = self.backend.get() else {
                return Err(BackendCallError::Unavailable {
                    message: "the backend is not attached yet".to_owned(),
                });
            };
            let mut params = CallToolRequestParams::new(tool.to_owned());
            params.arguments = match args {
                serde_json::Value::Object(map) => Some(map),
                _ => None,
            };
            let response = backend
                .call_tool(
                    params,
                    None,
                    None,
                    tokio_util::sync::CancellationToken::new(),
                )
                .await
                .map_err(|error| BackendCallError::Unavailable {
                    message: error.to_string(),
                })?;
            let CallToolResponse::Complete(result) = response else {
                return Err(BackendCallError::Failed {
                    tool: tool.to_owned(),
                    message: "the backend did not complete the call".to_owned(),
                });
            };
            serde_json::to_value(result).map_err(|error| BackendCallError::Failed {
                tool: tool.to_owned(),
                message: error.to_string(),
            })
        })
    }
}
