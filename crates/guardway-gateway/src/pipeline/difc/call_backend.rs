//! `env.call_backend` for guards: [`GuardBackendLink`], the
//! [`guardway_wasm::Backend`] every instance of a server's guard holds,
//! forwarding to whatever the caller attached for that server (the MCP
//! gateway attaches the server's own connection; a proxy its API client).

use std::sync::{Arc, OnceLock};

use guardway_wasm::{BackendCallError, BoxFuture};

/// The target of a guard's `call_backend`, attached once it exists; calls
/// before that fail as unavailable. `Send + Sync`, shared as `Arc` by every
/// instance of a guard.
#[derive(Default)]
pub struct GuardBackendLink {
    backend: OnceLock<Arc<dyn guardway_wasm::Backend>>,
}

impl std::fmt::Debug for GuardBackendLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardBackendLink")
            .field("attached", &self.backend.get().is_some())
            .finish()
    }
}

impl GuardBackendLink {
    /// Attaches the target (first call wins).
    pub fn attach(&self, backend: Arc<dyn guardway_wasm::Backend>) {
        let _ = self.backend.set(backend);
    }
}

impl guardway_wasm::Backend for GuardBackendLink {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, BackendCallError>> {
        match self.backend.get() {
            Some(backend) => backend.call_tool(tool, args),
            None => Box::pin(async {
                Err(BackendCallError::Unavailable {
                    message: "the backend is not attached yet".to_owned(),
                })
            }),
        }
    }
}
