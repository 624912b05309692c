//! What GitHub says about the workflow guardway runs in, and the rules that
//! act on it (docs/security.md): where the workflow runs
//! (`GITHUB_REPOSITORY`), with which token and API ([`GitHubEnv`]), whether
//! that repository is public ([`WorkflowVisibility`]: one
//! `GET /repos/{owner}/{repo}` per process, failing open), and the policy
//! rewriting of force-public-repos ([`force_public_scope`],
//! [`proxy_force_public_repos`]). Used by the gateway's guard pipeline and
//! by proxy mode.

mod env;
mod policy;
mod visibility;

pub use env::{
    API_URL_VARIABLE, DEFAULT_API_URL, FORCE_PUBLIC_REPOS_VARIABLE, GitHubEnv, REPOSITORY_VARIABLE,
    SERVER_URL_VARIABLE, TOKEN_VARIABLES, Token, derive_api_url, env_bool, lookup_token,
};
pub use policy::{ScopeOverride, force_public_scope, proxy_force_public_repos, public_only_policy};
pub use visibility::{
    GATEWAY_LOOKUP_TIMEOUT, Lookup, PROXY_LOOKUP_TIMEOUT, RepoVisibility, USER_AGENT,
    VisibilityError, WorkflowVisibility, fetch_repo_visibility,
};

/// `tracing` target of every line here: category `difc`, as the
/// reference logs them.
pub const LOG_TARGET: &str = "guardway::difc";
