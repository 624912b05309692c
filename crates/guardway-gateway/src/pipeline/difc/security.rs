//! Security by default at guard binding (docs/security.md): the
//! force-public-repos decision and its per-server policy rewriting, and
//! each write-sink server's effective sink-visibility (default, safe-outputs
//! safety net, runtime verification). Log lines and order are the
//! reference gateway's.

use serde_json::Value;

use crate::config::GatewayConfig;
use crate::github::{
    FORCE_PUBLIC_REPOS_VARIABLE, LOG_TARGET, Lookup, RepoVisibility, ScopeOverride,
    WorkflowVisibility, force_public_scope, public_only_policy,
};

/// The visibility a write-sink guard enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkVisibility {
    /// Writes from any agent holding a secrecy tag are denied.
    Public,
    Private,
    Internal,
}

impl SinkVisibility {
    /// `public`, `private` or `internal`, trimmed, any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "public" => Some(SinkVisibility::Public),
            "private" => Some(SinkVisibility::Private),
            "internal" => Some(SinkVisibility::Internal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SinkVisibility::Public => "public",
            SinkVisibility::Private => "private",
            SinkVisibility::Internal => "internal",
        }
    }
}

/// Where a server's policy comes from, for force-public-repos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The gateway-wide override (`--guard-policy-json`, `--allowonly-*`).
    Global,
    /// The server's `guard-policies`.
    Server,
    /// Neither: the guard's own `policy`, or none.
    Unset,
}

/// How the force-public-repos question was answered (docs/security.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForceDecision {
    Applied,
    DisabledByConfig,
    DisabledByVariable,
    NoRepository,
    NoToken,
    LookupFailed,
    NotPublic(RepoVisibility),
}

/// Whether `id` is the safe-outputs server.
pub fn is_safe_outputs(id: &str) -> bool {
    id == "safe-outputs" || id == "safeoutputs"
}

/// The security-by-default state of one gateway start-up.
#[derive(Debug)]
pub struct SecurityDefaults {
    visibility: WorkflowVisibility,
    /// `forcePublicRepos` as configured (true unless the config says false).
    config_force: bool,
    /// `MCP_GATEWAY_FORCE_PUBLIC_REPOS` as a yes/no word.
    env_force: Option<bool>,
    exempt: Vec<String>,
    force: tokio::sync::OnceCell<ForceDecision>,
}

impl SecurityDefaults {
    pub fn new(
        config: &GatewayConfig,
        env_force: Option<bool>,
        visibility: WorkflowVisibility,
    ) -> Self {
        SecurityDefaults {
            visibility,
            config_force: config.gateway.force_public_repos,
            env_force,
            exempt: config.gateway.sink_visibility_exempt_servers.clone(),
            force: tokio::sync::OnceCell::new(),
        }
    }

    /// Warns about exempt-list names that are no configured server.
    pub fn check_exempt_list(&self, config: &GatewayConfig) {
        for id in &self.exempt {
            if id != "*" && !config.servers.contains_key(id) {
                tracing::warn!(target: LOG_TARGET,
                    "sinkVisibilityExemptServers contains unknown server ID {id:?} — ignoring (not in mcpServers config)");
            }
        }
    }

    /// Exempt from the public default: config `forcePublicRepos = false`,
    /// or the exempt list names the server or holds `*`.
    pub fn is_exempt(&self, id: &str) -> bool {
        !self.config_force || self.exempt.iter().any(|entry| entry == "*" || entry == id)
    }

    /// Whether allow-only policies are narrowed to public repositories
    /// (decided once; docs/security.md §3).
    pub async fn force_public_repos(&self) -> bool {
        *self.force.get_or_init(|| self.decide_force()).await == ForceDecision::Applied
    }

    async fn decide_force(&self) -> ForceDecision {
        if !self.config_force {
            tracing::debug!(target: LOG_TARGET,
                "shouldForcePublicRepos: disabled by config (forcePublicRepos=false)");
            return ForceDecision::DisabledByConfig;
        }
        if self.env_force == Some(false) {
            tracing::debug!(target: LOG_TARGET,
                "shouldForcePublicRepos: disabled by env var {FORCE_PUBLIC_REPOS_VARIABLE}=false");
            return ForceDecision::DisabledByVariable;
        }
        match self.visibility.lookup().await {
            Lookup::NoRepository => {
                tracing::debug!(target: LOG_TARGET,
                    "shouldForcePublicRepos: GITHUB_REPOSITORY not set — skipping");
                ForceDecision::NoRepository
            }
            Lookup::NoToken => {
                tracing::debug!(target: LOG_TARGET,
                    "shouldForcePublicRepos: no GitHub token available — skipping");
                ForceDecision::NoToken
            }
            Lookup::Failed(_) => {
                let repository = self.repository();
                tracing::warn!(target: LOG_TARGET,
                    "shouldForcePublicRepos: failed to determine visibility for {repository} (fail-open, not forcing repos=public)");
                ForceDecision::LookupFailed
            }
            Lookup::Known(RepoVisibility::Public) => ForceDecision::Applied,
            Lookup::Known(other) => ForceDecision::NotPublic(*other),
        }
    }

    /// The workflow repository and what GitHub said, for `gateway.md`.
    pub fn workflow_repository_summary(&self) -> String {
        let env = self.visibility.env();
        let Some(repository) = env.repository() else {
            return "not set".to_owned();
        };
        match self.visibility.asked() {
            Some(Lookup::Known(visibility)) => format!("{repository} ({visibility})"),
            Some(Lookup::Failed(error)) => {
                format!("{repository} (visibility unknown: {error})")
            }
            Some(Lookup::NoToken) => format!("{repository} (no token: not looked up)"),
            _ if env.token().is_none() => format!("{repository} (no token: not looked up)"),
            _ => format!("{repository} (not looked up)"),
        }
    }

    /// What force-public-repos did, for `gateway.md`.
    pub fn force_public_repos_summary(&self) -> String {
        let text = match self.force.get() {
            None => "not evaluated (no servers)",
            Some(ForceDecision::Applied) => {
                "applied: allow-only policies read public repositories only"
            }
            Some(ForceDecision::DisabledByConfig) => "off (forcePublicRepos = false)",
            Some(ForceDecision::DisabledByVariable) => "off (MCP_GATEWAY_FORCE_PUBLIC_REPOS=false)",
            Some(ForceDecision::NoRepository) => "not applied (GITHUB_REPOSITORY not set)",
            Some(ForceDecision::NoToken) => "not applied (no GitHub token)",
            Some(ForceDecision::LookupFailed) => "not applied (visibility unknown: fail-open)",
            Some(ForceDecision::NotPublic(RepoVisibility::Internal)) => {
                "not applied (repository is internal)"
            }
            Some(ForceDecision::NotPublic(_)) => "not applied (repository is private)",
        };
        text.to_owned()
    }

    fn repository(&self) -> &str {
        self.visibility.env().repository().unwrap_or_default()
    }

    /// The policy of server `id` once narrowed to public repositories
    /// (call only when [`SecurityDefaults::force_public_repos`] is true).
    pub fn force_server_scope(
        &self,
        id: &str,
        source: PolicySource,
        policy: Option<Value>,
    ) -> Option<Value> {
        let repository = self.repository();
        let mut map = match (source, policy) {
            (PolicySource::Unset, _) | (_, None) => {
                tracing::warn!(target: LOG_TARGET, server_id = %id,
                    "FORCED REPOS=PUBLIC: workflow repo {repository} is public — overriding allow-only scope to 'public' to prevent private data reads");
                return Some(public_only_policy());
            }
            (_, Some(Value::Object(map))) => map,
            (_, Some(other)) => {
                tracing::warn!(target: LOG_TARGET, server_id = %id,
                    "FORCED REPOS=PUBLIC: failed to parse existing policy for override (skipping): policy must be an object");
                return Some(other);
            }
        };
        match force_public_scope(&mut map) {
            ScopeOverride::WriteSinkOnly => {
                let scope = if source == PolicySource::Global {
                    "global"
                } else {
                    "per-server"
                };
                tracing::debug!(target: LOG_TARGET,
                    "overrideToPublicScope: skipping write-sink-only {scope} policy for serverID={id}");
            }
            ScopeOverride::Unusable => {
                tracing::warn!(target: LOG_TARGET, server_id = %id,
                    "FORCED REPOS=PUBLIC: failed to parse existing policy for override (skipping): allow-only must be an object");
            }
            ScopeOverride::ReposSetPublic | ScopeOverride::AllowOnlyAdded => {
                if source == PolicySource::Global {
                    tracing::warn!(target: LOG_TARGET, server_id = %id,
                        "FORCED REPOS=PUBLIC: workflow repo {repository} is public — overriding allow-only scope to 'public' to prevent private data reads (source: global policy)");
                } else {
                    tracing::warn!(target: LOG_TARGET, server_id = %id,
                        "FORCED REPOS=PUBLIC: workflow repo {repository} is public — overriding allow-only scope to 'public' to prevent private data reads");
                }
            }
        }
        Some(Value::Object(map))
    }

    /// The sink-visibility write-sink server `id` enforces, from its
    /// configured value (as written): the public default, the safe-outputs
    /// safety net, then runtime verification (docs/security.md §4). Returns
    /// the value as the log shows it (`None`: unset).
    pub async fn sink_visibility(&self, id: &str, configured: Option<&str>) -> Option<String> {
        let exempt = self.is_exempt(id);
        let mut value = configured.map(str::to_owned);
        if value.is_none() && !is_safe_outputs(id) && !exempt {
            tracing::info!(target: LOG_TARGET, server_id = %id,
                "Defaulting sink-visibility to \"public\" for non-safe-outputs write-sink server (security-by-default)");
            value = Some("public".to_owned());
        }
        if value.is_none()
            && is_safe_outputs(id)
            && !exempt
            && self.visibility.lookup().await.visibility() == Some(RepoVisibility::Public)
        {
            tracing::warn!(target: LOG_TARGET, server_id = %id,
                "SAFE-OUTPUTS SAFETY NET: no sink-visibility configured but workflow repo is public — forcing sink-visibility=\"public\" to prevent data exfiltration");
            value = Some("public".to_owned());
        }
        self.verify_sink_visibility(id, value).await
    }

    async fn verify_sink_visibility(&self, id: &str, value: Option<String>) -> Option<String> {
        let Some(configured) = value else {
            tracing::debug!(target: LOG_TARGET,
                "sink-visibility runtime check skipped: sink-visibility not configured (serverID={id})");
            return None;
        };
        let repository = self.repository();
        let actual = match self.visibility.lookup().await {
            Lookup::NoRepository => {
                tracing::debug!(target: LOG_TARGET,
                    "sink-visibility runtime check skipped: GITHUB_REPOSITORY not set (serverID={id})");
                return Some(configured);
            }
            Lookup::NoToken => {
                tracing::debug!(target: LOG_TARGET,
                    "sink-visibility runtime check skipped: no GitHub token available (serverID={id})");
                return Some(configured);
            }
            Lookup::Failed(_) => {
                tracing::warn!(target: LOG_TARGET, server_id = %id,
                    "Sink visibility runtime verification failed (using configured value {configured:?}): API error or unavailable");
                return Some(configured);
            }
            Lookup::Known(actual) => *actual,
        };
        let normalised = configured.trim().to_ascii_lowercase();
        if actual == RepoVisibility::Public && normalised != "public" {
            tracing::warn!(target: LOG_TARGET, server_id = %id,
                "SINK VISIBILITY OVERRIDE: configured={configured:?} but runtime check shows repo {repository} is \"{actual}\" — overriding to \"public\" to prevent potential data exfiltration");
            return Some("public".to_owned());
        }
        tracing::info!(target: LOG_TARGET, server_id = %id,
            "Sink visibility runtime verification passed: repo={repository}, configured={configured:?}, actual=\"{actual}\"");
        Some(normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::{GitHubEnv, VisibilityError};
    use serde_json::json;

    fn config(force: bool, exempt: &[&str]) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        config.gateway.force_public_repos = force;
        config.gateway.sink_visibility_exempt_servers =
            exempt.iter().map(|s| (*s).to_owned()).collect();
        config
    }

    fn env() -> GitHubEnv {
        GitHubEnv::from_lookup(|name| match name {
            "GITHUB_REPOSITORY" => Some("o/r".to_owned()),
            "GITHUB_TOKEN" => Some("t".to_owned()),
            _ => None,
        })
    }

    fn defaults(force: bool, env_force: Option<bool>, outcome: Lookup) -> SecurityDefaults {
        SecurityDefaults::new(
            &config(force, &[]),
            env_force,
            WorkflowVisibility::answered(env(), outcome),
        )
    }

    fn failed() -> Lookup {
        Lookup::Failed(VisibilityError::Status {
            repository: "o/r".into(),
            status: 500,
        })
    }

    #[tokio::test]
    async fn force_public_repos_table() {
        let public = || Lookup::Known(RepoVisibility::Public);
        let cases = [
            (true, None, public(), true),
            (true, Some(true), public(), true),
            (false, None, public(), false),
            (false, Some(true), public(), false),
            (true, Some(false), public(), false),
            (true, None, Lookup::Known(RepoVisibility::Private), false),
            (true, None, Lookup::Known(RepoVisibility::Internal), false),
            (true, None, failed(), false),
            (true, None, Lookup::NoRepository, false),
            (true, None, Lookup::NoToken, false),
        ];
        for (config_force, env_force, outcome, expected) in cases {
            let label = format!("{config_force} {env_force:?} {outcome:?}");
            let rules = defaults(config_force, env_force, outcome);
            assert_eq!(rules.force_public_repos().await, expected, "{label}");
        }
        let rules = defaults(true, None, public());
        assert_eq!(
            rules.force_public_repos_summary(),
            "not evaluated (no servers)"
        );
        rules.force_public_repos().await;
        assert!(rules.force_public_repos_summary().starts_with("applied"));
        assert_eq!(rules.workflow_repository_summary(), "o/r (public)");
    }

    #[test]
    fn server_scopes_when_forced() {
        let rules = defaults(true, None, Lookup::Known(RepoVisibility::Public));
        let scoped = json!({"allow-only": {"repos": ["o/*"], "min-integrity": "approved"}});
        assert_eq!(
            rules.force_server_scope("s", PolicySource::Server, Some(scoped.clone())),
            Some(json!({"allow-only": {"repos": "public", "min-integrity": "approved"}}))
        );
        assert_eq!(
            rules.force_server_scope("s", PolicySource::Global, Some(scoped.clone())),
            Some(json!({"allow-only": {"repos": "public", "min-integrity": "approved"}}))
        );
        // A policy of the guard only, or none: replaced by the public-only one.
        assert_eq!(
            rules.force_server_scope("s", PolicySource::Unset, Some(scoped)),
            Some(public_only_policy())
        );
        assert_eq!(
            rules.force_server_scope("s", PolicySource::Unset, None),
            Some(public_only_policy())
        );
        let sink = json!({"write-sink": {"accept": ["*"]}});
        assert_eq!(
            rules.force_server_scope("s", PolicySource::Server, Some(sink.clone())),
            Some(sink)
        );
    }

    #[test]
    fn exemptions() {
        let visibility = || WorkflowVisibility::answered(env(), Lookup::NoRepository);
        let rules = SecurityDefaults::new(&config(true, &["a"]), None, visibility());
        assert!(rules.is_exempt("a"));
        assert!(!rules.is_exempt("b"));
        let rules = SecurityDefaults::new(&config(true, &["*"]), None, visibility());
        assert!(rules.is_exempt("b"));
        // The config opt-out exempts every sink; the variable does not.
        let rules = SecurityDefaults::new(&config(false, &[]), None, visibility());
        assert!(rules.is_exempt("b"));
        let rules = SecurityDefaults::new(&config(true, &[]), Some(false), visibility());
        assert!(!rules.is_exempt("b"));
    }

    #[tokio::test]
    async fn sink_visibility_table() {
        let public = || Lookup::Known(RepoVisibility::Public);
        let private = || Lookup::Known(RepoVisibility::Private);
        // (server, configured, exempt, lookup, effective)
        type Case = (
            &'static str,
            Option<&'static str>,
            bool,
            Lookup,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            ("notes", None, false, Lookup::NoRepository, Some("public")),
            ("notes", None, true, public(), None),
            ("safe-outputs", None, false, private(), None),
            ("safeoutputs", None, false, public(), Some("public")),
            ("safe-outputs", None, false, failed(), None),
            ("safe-outputs", None, true, public(), None),
            ("notes", Some("private"), false, public(), Some("public")),
            ("notes", Some("Internal"), true, public(), Some("public")),
            ("notes", Some("private"), false, private(), Some("private")),
            ("notes", Some("Public"), false, private(), Some("public")),
            ("notes", Some("Private"), false, failed(), Some("Private")),
            (
                "notes",
                Some("Private"),
                false,
                Lookup::NoToken,
                Some("Private"),
            ),
        ];
        for (id, configured, exempt, outcome, expected) in cases {
            let label = format!("{id} {configured:?} {exempt} {outcome:?}");
            let list: &[&str] = if exempt { &[id] } else { &[] };
            let rules = SecurityDefaults::new(
                &config(true, list),
                None,
                WorkflowVisibility::answered(env(), outcome),
            );
            assert_eq!(
                rules.sink_visibility(id, configured).await.as_deref(),
                expected,
                "{label}"
            );
        }
    }

    #[test]
    fn sink_visibility_values() {
        assert_eq!(
            SinkVisibility::parse(" PUBLIC "),
            Some(SinkVisibility::Public)
        );
        assert_eq!(
            SinkVisibility::parse("internal"),
            Some(SinkVisibility::Internal)
        );
        assert_eq!(SinkVisibility::parse("world"), None);
        assert_eq!(SinkVisibility::Private.as_str(), "private");
        assert!(is_safe_outputs("safe-outputs") && is_safe_outputs("safeoutputs"));
        assert!(!is_safe_outputs("Safe-Outputs"));
    }
}
