//! A guard that fails on purpose, depending on its input.
//!
//! `label_resource` looks at the tool arguments: when any string among
//! them (at any depth) is exactly `"trap"` it panics, which on wasm aborts
//! with an `unreachable` trap; when one is exactly `"loop"` it spins until
//! the host stops it at the call deadline. Any other call is labelled as a
//! read of a public resource (empty secrecy and integrity), so under the
//! guard's empty agent labels it is allowed. `label_response` answers no
//! fine-grained labels. The soak test mixes such calls on one server to
//! check that a fault denies only the call that caused it (fails closed)
//! while the calls around it keep being served.

use guardway_guest::serde_json::{Value, json};
use guardway_guest::{Guard, GuardError};

/// The fault a call's arguments ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Trap (`unreachable`).
    Trap,
    /// Loop until the host's deadline.
    Loop,
}

impl Fault {
    /// The fault named by a marker value among `args` (a JSON object, or
    /// its text), if any; `trap` wins over `loop` when both appear.
    pub fn asked_by(args: &Value) -> Option<Fault> {
        let parsed;
        let args = match args {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(value) => {
                    parsed = value;
                    &parsed
                }
                Err(_) => args,
            },
            other => other,
        };
        let mut found = None;
        visit_strings(args, &mut |s| match s {
            "trap" => found = Some(Fault::Trap),
            "loop" if found.is_none() => found = Some(Fault::Loop),
            _ => {}
        });
        found
    }
}

fn visit_strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}

/// The guard: no state beyond the instance.
#[derive(Default)]
pub struct FaultGuard;

impl Guard for FaultGuard {
    fn label_agent(&mut self, _policy: Value) -> Result<Value, GuardError> {
        Ok(json!({"agent": {"secrecy": [], "integrity": []}, "difc_mode": "filter"}))
    }

    fn label_resource(&mut self, input: Value) -> Result<Value, GuardError> {
        let tool = input
            .get("tool_name")
            .and_then(Value::as_str)
            .ok_or_else(|| GuardError::refused("label_resource input has no tool_name"))?
            .to_owned();
        match input.get("tool_args").and_then(Fault::asked_by) {
            Some(Fault::Trap) => panic!("fault-guard: trap marker in the arguments of {tool}"),
            Some(Fault::Loop) => loop {
                std::hint::spin_loop();
            },
            None => Ok(json!({
                "resource": {"description": format!("tool {tool}"), "secrecy": [], "integrity": []},
                "operation": "read",
            })),
        }
    }

    fn label_response(&mut self, _input: Value) -> Result<Option<Value>, GuardError> {
        Ok(None)
    }
}

guardway_guest::export_guard!(FaultGuard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_at_any_depth_and_in_argument_text() {
        assert_eq!(Fault::asked_by(&json!({"text": "trap"})), Some(Fault::Trap));
        assert_eq!(
            Fault::asked_by(&json!({"a": [{"b": "loop"}]})),
            Some(Fault::Loop)
        );
        assert_eq!(
            Fault::asked_by(&json!("{\"text\": \"trap\"}")),
            Some(Fault::Trap)
        );
        assert_eq!(
            Fault::asked_by(&json!({"x": "loop", "y": "trap"})),
            Some(Fault::Trap)
        );
    }

    #[test]
    fn other_values_ask_for_nothing() {
        assert_eq!(Fault::asked_by(&json!({"text": "a trap"})), None);
        assert_eq!(Fault::asked_by(&json!({"trap": 1, "n": 3})), None);
        assert_eq!(Fault::asked_by(&json!("not json")), None);
    }

    #[test]
    fn good_calls_are_public_reads() {
        let mut guard = FaultGuard;
        let labels = guard
            .label_resource(json!({"tool_name": "issue_read", "tool_args": {"issue_number": 7}}))
            .unwrap();
        assert_eq!(labels["operation"], "read");
        assert_eq!(labels["resource"]["secrecy"], json!([]));
        assert_eq!(guard.label_response(json!({})).unwrap(), None);
    }
}
