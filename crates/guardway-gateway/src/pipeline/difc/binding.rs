//! Which guard serves each backend (gateway.md §6.1) and with which policy
//! (difc.md §5.1): the guards-dir convention, built-in write-sink, the
//! configured `guard = name`, noop; and the `label_agent` payload of a
//! policy. A guard that fails to load leaves its server bound to a `Failed`
//! guard, which refuses every call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use guardway_wasm::{GuardModule, GuardOptions};
use serde_json::Value;

use crate::config::{GatewayConfig, ServerConfig};

use super::call_backend::GuardBackendLink;

/// Where a server's guard comes from, before loading.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardSource {
    /// No guard: the built-in noop guard.
    Noop,
    /// The built-in write-sink guard.
    WriteSink { accept: Vec<String>, public: bool },
    /// A wasm guard file.
    Wasm { name: String, path: PathBuf },
    /// The configuration names a guard that cannot be used.
    Invalid { name: String, reason: String },
}

/// The guard bound to one server after loading.
pub enum BoundGuard {
    Noop,
    WriteSink {
        accept: Vec<String>,
        public: bool,
    },
    Wasm {
        name: String,
        module: GuardModule,
        link: Arc<GuardBackendLink>,
    },
    /// Loading failed: every call to the server fails with this reason.
    Failed {
        name: String,
        reason: String,
    },
}

impl std::fmt::Debug for BoundGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundGuard::Noop => f.write_str("Noop"),
            BoundGuard::WriteSink { .. } => f.write_str("WriteSink"),
            BoundGuard::Wasm { name, .. } => write!(f, "Wasm({name})"),
            BoundGuard::Failed { name, reason } => write!(f, "Failed({name}: {reason})"),
        }
    }
}

/// First `.wasm` file (any case, sorted by name) directly in `<dir>/<id>/`.
pub fn discover_guard_file(guards_dir: &Path, server_id: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(guards_dir.join(server_id)).ok()?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
        })
        .collect();
    files.sort();
    files.into_iter().next()
}

/// The raw policy for a server: the gateway-wide override, the server's
/// `guard_policies`, else the configured guard's `policy`.
pub fn raw_policy(
    config: &GatewayConfig,
    server: &ServerConfig,
    policy_override: Option<&Value>,
) -> Option<Value> {
    if let Some(policy) = policy_override {
        return Some(policy.clone());
    }
    if let Some(policy) = &server.guard_policies {
        return Some(policy.clone());
    }
    server
        .guard
        .as_ref()
        .and_then(|name| config.guards.get(name))
        .and_then(|guard| guard.policy.clone())
}

fn write_sink_of(policy: &Value) -> Option<&Value> {
    policy.as_object().and_then(|map| {
        map.iter()
            .find(|(key, _)| {
                let key = key.to_ascii_lowercase();
                key == "write-sink" || key == "writesink"
            })
            .map(|(_, value)| value)
    })
}

/// Where the guard of `server_id` comes from.
pub fn guard_source(
    config: &GatewayConfig,
    server_id: &str,
    server: &ServerConfig,
    guards_dir: Option<&Path>,
    policy: Option<&Value>,
) -> GuardSource {
    if let Some(path) = guards_dir.and_then(|dir| discover_guard_file(dir, server_id)) {
        return GuardSource::Wasm {
            name: server_id.to_owned(),
            path,
        };
    }
    if let Some(sink) = policy.and_then(write_sink_of) {
        let accept = sink
            .get("accept")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let visibility = sink
            .get("sink-visibility")
            .and_then(Value::as_str)
            .map(|v| v.trim().to_ascii_lowercase());
        let exempt = config
            .gateway
            .sink_visibility_exempt_servers
            .iter()
            .any(|s| s == server_id)
            || server_id == "safe-outputs"
            || server_id == "safeoutputs";
        let public = match visibility.as_deref() {
            Some(v) => v == "public",
            None => !exempt,
        };
        return GuardSource::WriteSink { accept, public };
    }
    let Some(name) = &server.guard else {
        return GuardSource::Noop;
    };
    match config.guards.get(name) {
        Some(guard) => match guard.kind.to_ascii_lowercase().as_str() {
            "noop" => GuardSource::Noop,
            "wasm" => match &guard.path {
                Some(path) => GuardSource::Wasm {
                    name: name.clone(),
                    path: path.clone(),
                },
                None => GuardSource::Invalid {
                    name: name.clone(),
                    reason: format!("guard \"{name}\" of type wasm has no path"),
                },
            },
            other => GuardSource::Invalid {
                name: name.clone(),
                reason: format!("guard \"{name}\" has unsupported type \"{other}\""),
            },
        },
        None if name == "noop" => GuardSource::Noop,
        None => GuardSource::Invalid {
            name: name.clone(),
            reason: format!("guard \"{name}\" is not defined under [guards]"),
        },
    }
}

/// Loads the guard of a source. Wasm modules are compiled (or fetched from
/// the process-wide compilation cache) here.
pub fn load(source: GuardSource, options: &GuardOptions) -> BoundGuard {
    match source {
        GuardSource::Noop => BoundGuard::Noop,
        GuardSource::WriteSink { accept, public } => BoundGuard::WriteSink { accept, public },
        GuardSource::Invalid { name, reason } => BoundGuard::Failed { name, reason },
        GuardSource::Wasm { name, path } => {
            let options = options.clone().with_name(name.clone());
            match std::fs::read(&path) {
                Err(error) => BoundGuard::Failed {
                    reason: format!("cannot read {}: {error}", path.display()),
                    name,
                },
                Ok(bytes) => match GuardModule::from_bytes(&name, &bytes, &options) {
                    Ok(module) => BoundGuard::Wasm {
                        name,
                        module,
                        link: Arc::new(GuardBackendLink::default()),
                    },
                    Err(error) => BoundGuard::Failed {
                        name,
                        reason: error.to_string(),
                    },
                },
            }
        }
    }
}

/// Validates a policy for `label_agent`, with trusted bots injected as
/// top-level `trusted-bots` and trusted users as `trusted-users` inside
/// `allow-only` (when the policy has that key; both replace what the policy
/// says, and nothing is injected for an empty list).
pub fn label_agent_payload(
    policy: Value,
    trusted_bots: &[String],
    trusted_users: &[String],
) -> Result<Value, String> {
    let policy = guardway_difc::parse_policy_value(policy).map_err(|e| e.to_string())?;
    let policy = match policy {
        Value::Object(mut map) if !trusted_bots.is_empty() || !trusted_users.is_empty() => {
            if !trusted_bots.is_empty() {
                map.insert("trusted-bots".into(), serde_json::json!(trusted_bots));
            }
            if !trusted_users.is_empty()
                && let Some(Value::Object(allow_only)) = map.get_mut("allow-only")
            {
                allow_only.insert("trusted-users".into(), serde_json::json!(trusted_users));
            }
            Value::Object(map)
        }
        policy => policy,
    };
    guardway_difc::prepare_label_agent_policy(policy).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_takes_the_first_wasm_file_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("github");
        std::fs::create_dir(&server).unwrap();
        std::fs::write(server.join("b.WASM"), b"x").unwrap();
        std::fs::write(server.join("a.txt"), b"x").unwrap();
        std::fs::write(server.join("c.wasm"), b"x").unwrap();
        assert_eq!(
            discover_guard_file(dir.path(), "github"),
            Some(server.join("b.WASM"))
        );
        assert_eq!(discover_guard_file(dir.path(), "other"), None);
    }

    #[test]
    fn payload_gets_trusted_bots_and_is_validated() {
        let policy =
            serde_json::json!({"allow-only": {"repos": ["acme/*"], "min-integrity": "approved"}});
        let payload = label_agent_payload(policy.clone(), &["bot[bot]".to_owned()], &[]).unwrap();
        assert_eq!(payload["trusted-bots"], serde_json::json!(["bot[bot]"]));
        assert_eq!(
            label_agent_payload(policy.clone(), &[], &[]).unwrap(),
            policy
        );
        let bad =
            serde_json::json!({"allow-only": {"repos": ["Acme/x"], "min-integrity": "approved"}});
        assert!(label_agent_payload(bad, &[], &[]).is_err());
    }

    #[test]
    fn trusted_users_go_inside_allow_only() {
        let policy = serde_json::json!({"allow-only": {"repos": ["acme/*"],
            "min-integrity": "approved", "trusted-users": ["old"]}});
        let users = ["alice".to_owned(), "bob".to_owned()];
        let payload = label_agent_payload(policy, &[], &users).unwrap();
        assert_eq!(
            payload["allow-only"]["trusted-users"],
            serde_json::json!(["alice", "bob"])
        );
        assert!(payload.get("trusted-bots").is_none());
        let bad_users = ["".to_owned()];
        let policy = serde_json::json!({"allow-only": {"repos": "all", "min-integrity": "none"}});
        assert!(label_agent_payload(policy, &[], &bad_users).is_err());
    }
}
