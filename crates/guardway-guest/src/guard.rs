//! The `Guard` trait a guard implements.

use serde_json::Value;

use crate::GuardError;

/// A DIFC guard: the three label functions of the guardway guard ABI.
///
/// One value lives per wasm instance (created with `Default` on the first
/// call), so state such as the policy from [`Guard::label_agent`] or
/// memoised look-ups are plain fields. Instances are single-threaded; the
/// `Send` bound only lets the value sit in a static.
pub trait Guard: Default + Send + 'static {
    /// Receives the session's guard policy and answers the agent's labels
    /// and `difc_mode`. A guard that rejects the policy answers
    /// `{"success": false, "error": "..."}` (or returns an error).
    ///
    /// # Errors
    /// Any error becomes the return code `-1` and an error log line.
    fn label_agent(&mut self, policy: Value) -> Result<Value, GuardError>;

    /// Receives `{"tool_name", "tool_args", …}` and answers
    /// `{"resource": {...}, "operation": "read"|"write"|"read-write"}`.
    ///
    /// # Errors
    /// Any error becomes the return code `-1` and an error log line.
    fn label_resource(&mut self, input: Value) -> Result<Value, GuardError>;

    /// Receives `{"tool_name", "tool_result", "tool_args", …}` and answers
    /// path-based labels, or `None` for "no fine-grained labels".
    ///
    /// # Errors
    /// Any error becomes the return code `-1` and an error log line.
    fn label_response(&mut self, input: Value) -> Result<Option<Value>, GuardError>;
}
