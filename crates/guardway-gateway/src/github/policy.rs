//! force-public-repos on a policy document: narrowing an allow-only policy
//! to `repos = "public"` ([`force_public_scope`], pure), and proxy mode's
//! whole rule with its log lines ([`proxy_force_public_repos`]).

use serde_json::{Map, Value, json};

use super::LOG_TARGET;
use super::visibility::{Lookup, RepoVisibility, WorkflowVisibility};

/// What [`force_public_scope`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeOverride {
    /// The allow-only policy's `repos` is now `"public"`.
    ReposSetPublic,
    /// The policy had no allow-only: one reading public repositories with
    /// `min-integrity` `none` was added.
    AllowOnlyAdded,
    /// A write-sink policy: left alone (its sink-visibility does that job).
    WriteSinkOnly,
    /// The allow-only entry is not an object: left alone.
    Unusable,
}

/// `{"allow-only": {"repos": "public", "min-integrity": "none"}}`.
pub fn public_only_policy() -> Value {
    json!({"allow-only": {"repos": "public", "min-integrity": "none"}})
}

fn public_only_allow_only() -> Value {
    json!({"repos": "public", "min-integrity": "none"})
}

/// Narrows `policy` to public repositories, as the gateway does: the
/// allow-only entry (`allow-only` or legacy `allowonly`, any case) gets
/// `"repos": "public"` and keeps everything else; a write-sink policy is
/// left alone; a policy with neither gets a public-only allow-only.
pub fn force_public_scope(policy: &mut Map<String, Value>) -> ScopeOverride {
    let key_of = |names: &[&str]| {
        policy
            .keys()
            .find(|key| names.contains(&key.to_ascii_lowercase().as_str()))
            .cloned()
    };
    if let Some(key) = key_of(&["allow-only", "allowonly"]) {
        return match policy.get_mut(&key) {
            Some(Value::Object(allow_only)) => {
                allow_only.insert("repos".into(), json!("public"));
                ScopeOverride::ReposSetPublic
            }
            _ => ScopeOverride::Unusable,
        };
    }
    if key_of(&["write-sink", "writesink"]).is_some() {
        return ScopeOverride::WriteSinkOnly;
    }
    policy.insert("allow-only".into(), public_only_allow_only());
    ScopeOverride::AllowOnlyAdded
}

/// Proxy mode's force-public-repos (run once at start-up on `--policy`):
/// when `enabled` and the workflow repository is public, the policy with
/// its allow-only `repos` set to `"public"` (an allow-only is added when
/// missing); otherwise `policy_json` unchanged. Fails open: a look-up or
/// parse failure keeps the policy and logs a warning. The log lines are the
/// reference proxy's (category `difc`).
pub async fn proxy_force_public_repos(
    policy_json: &str,
    enabled: bool,
    visibility: &WorkflowVisibility,
) -> String {
    if !enabled {
        tracing::info!(target: LOG_TARGET, "forcePublicRepos: disabled");
        return policy_json.to_owned();
    }
    let repository = match visibility.lookup().await {
        Lookup::NoRepository => {
            tracing::info!(target: LOG_TARGET, "forcePublicRepos: GITHUB_REPOSITORY not set — skipping");
            return policy_json.to_owned();
        }
        Lookup::NoToken => {
            tracing::info!(target: LOG_TARGET, "forcePublicRepos: no GitHub token available — skipping");
            return policy_json.to_owned();
        }
        Lookup::Failed(error) => {
            let repository = visibility.env().repository().unwrap_or_default();
            tracing::warn!(target: LOG_TARGET,
                "forcePublicRepos: failed to determine visibility for {repository} (fail-open): {error}");
            return policy_json.to_owned();
        }
        Lookup::Known(visibility_of) if *visibility_of != RepoVisibility::Public => {
            let repository = visibility.env().repository().unwrap_or_default();
            tracing::info!(target: LOG_TARGET,
                "forcePublicRepos: repo {repository} is {visibility_of} — no override needed");
            return policy_json.to_owned();
        }
        Lookup::Known(_) => visibility.env().repository().unwrap_or_default(),
    };
    let mut policy = match serde_json::from_str::<Value>(policy_json) {
        Ok(Value::Object(policy)) => policy,
        Ok(Value::Null) => {
            tracing::warn!(target: LOG_TARGET,
                "forcePublicRepos: policy JSON decoded to null (using original)");
            return policy_json.to_owned();
        }
        Ok(other) => {
            tracing::warn!(target: LOG_TARGET,
                "forcePublicRepos: failed to parse policy JSON (using original): expected a JSON object, got {other}");
            return policy_json.to_owned();
        }
        Err(error) => {
            tracing::warn!(target: LOG_TARGET,
                "forcePublicRepos: failed to parse policy JSON (using original): {error}");
            return policy_json.to_owned();
        }
    };
    let existing = ["allow-only", "allowonly"]
        .into_iter()
        .find(|key| policy.contains_key(*key));
    match existing.and_then(|key| policy.get_mut(key)) {
        Some(Value::Object(allow_only)) => {
            allow_only.insert("repos".into(), json!("public"));
        }
        _ => {
            policy.insert("allow-only".into(), public_only_allow_only());
        }
    }
    tracing::warn!(target: LOG_TARGET,
        "FORCED REPOS=PUBLIC: workflow repo {repository} is public — overriding proxy allow-only scope to prevent private data reads");
    Value::Object(policy).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forced(policy: Value) -> (ScopeOverride, Value) {
        let Value::Object(mut map) = policy else {
            panic!()
        };
        let outcome = force_public_scope(&mut map);
        (outcome, Value::Object(map))
    }

    #[test]
    fn allow_only_is_narrowed_and_keeps_the_rest() {
        let (outcome, policy) = forced(json!({"allow-only": {
            "repos": ["octo-org/*"], "min-integrity": "approved", "blocked-users": ["x"]}}));
        assert_eq!(outcome, ScopeOverride::ReposSetPublic);
        assert_eq!(
            policy,
            json!({"allow-only": {"repos": "public", "min-integrity": "approved", "blocked-users": ["x"]}})
        );
        let (outcome, policy) = forced(json!({"AllowOnly": {"repos": "all", "integrity": "none"}}));
        assert_eq!(outcome, ScopeOverride::ReposSetPublic);
        assert_eq!(
            policy,
            json!({"AllowOnly": {"repos": "public", "integrity": "none"}})
        );
    }

    #[test]
    fn write_sinks_are_left_alone_and_empty_policies_get_public_only() {
        let sink = json!({"write-sink": {"accept": ["*"]}});
        assert_eq!(forced(sink.clone()), (ScopeOverride::WriteSinkOnly, sink));
        let sink = json!({"writesink": {"accept": ["*"]}});
        assert_eq!(forced(sink.clone()), (ScopeOverride::WriteSinkOnly, sink));
        assert_eq!(
            forced(json!({})),
            (ScopeOverride::AllowOnlyAdded, public_only_policy())
        );
        let odd = json!({"allow-only": "all"});
        assert_eq!(forced(odd.clone()), (ScopeOverride::Unusable, odd));
    }

    fn workflow(outcome: Lookup) -> WorkflowVisibility {
        let env = crate::github::GitHubEnv::from_lookup(|name| match name {
            "GITHUB_REPOSITORY" => Some("o/r".to_owned()),
            "GITHUB_TOKEN" => Some("t".to_owned()),
            _ => None,
        });
        WorkflowVisibility::answered(env, outcome)
    }

    #[tokio::test]
    async fn proxy_policy_is_narrowed_only_for_a_public_repository() {
        let policy = r#"{"allow-only":{"repos":["o/*"],"min-integrity":"approved"}}"#;
        let public = workflow(Lookup::Known(RepoVisibility::Public));
        let forced: Value =
            serde_json::from_str(&proxy_force_public_repos(policy, true, &public).await).unwrap();
        assert_eq!(
            forced,
            json!({"allow-only": {"repos": "public", "min-integrity": "approved"}})
        );
        // The legacy key is narrowed where it is.
        let legacy = r#"{"allowonly":{"repos":"all","min-integrity":"none"}}"#;
        let forced: Value =
            serde_json::from_str(&proxy_force_public_repos(legacy, true, &public).await).unwrap();
        assert_eq!(
            forced,
            json!({"allowonly": {"repos": "public", "min-integrity": "none"}})
        );
        // No allow-only: one is added (the proxy does not look for write-sink).
        let forced: Value =
            serde_json::from_str(&proxy_force_public_repos("{}", true, &public).await).unwrap();
        assert_eq!(forced, public_only_policy());
        // Disabled, not public, unknown, or not an object: unchanged.
        assert_eq!(
            proxy_force_public_repos(policy, false, &public).await,
            policy
        );
        for outcome in [
            Lookup::Known(RepoVisibility::Private),
            Lookup::Known(RepoVisibility::Internal),
            Lookup::NoRepository,
            Lookup::NoToken,
            Lookup::Failed(crate::github::VisibilityError::Status {
                repository: "o/r".into(),
                status: 500,
            }),
        ] {
            let label = format!("{outcome:?}");
            assert_eq!(
                proxy_force_public_repos(policy, true, &workflow(outcome)).await,
                policy,
                "{label}"
            );
        }
        for text in ["null", "not json", "[1]"] {
            assert_eq!(proxy_force_public_repos(text, true, &public).await, text);
        }
    }
}
