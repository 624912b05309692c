//! Security by default, end to end: the real `guardway` binary looks up the
//! workflow repository's visibility on a mock GitHub API
//! (`GITHUB_API_URL`), forces `repos = "public"` on allow-only policies when
//! it is public, defaults write-sink servers to `sink-visibility = "public"`
//! and verifies configured values at run time. Every test checks the
//! decision through real MCP calls (the Python SDK agent), the log lines
//! and the number of look-ups the mock saw.

mod harness;
#[path = "../support/mod.rs"]
mod support;

use harness::{
    Answer, Config, Gateway, KEY, MockGitHub, REPOSITORY, TOKEN, assert_allowed, assert_denied,
    gateway_toml, github_server_toml, sink_server_toml,
};
use serde_json::{Value, json};

const FORCED: &str = "FORCED REPOS=PUBLIC: workflow repo test-owner/test-repo is public — overriding allow-only scope to 'public' to prevent private data reads";
const FORCE_FAIL_OPEN: &str = "shouldForcePublicRepos: failed to determine visibility for test-owner/test-repo (fail-open, not forcing repos=public)";
const DEFAULTING: &str = "Defaulting sink-visibility to \"public\" for non-safe-outputs write-sink server (security-by-default)";
const SAFETY_NET: &str = "SAFE-OUTPUTS SAFETY NET: no sink-visibility configured but workflow repo is public — forcing sink-visibility=\"public\" to prevent data exfiltration";
const OVERRIDE: &str = "SINK VISIBILITY OVERRIDE: configured=\"private\" but runtime check shows repo test-owner/test-repo is \"public\" — overriding to \"public\" to prevent potential data exfiltration";

fn verification_passed(configured: &str, actual: &str) -> String {
    format!(
        "Sink visibility runtime verification passed: repo={REPOSITORY}, configured=\"{configured}\", actual=\"{actual}\""
    )
}

fn verification_failed(configured: &str) -> String {
    format!(
        "Sink visibility runtime verification failed (using configured value \"{configured}\"): API error or unavailable"
    )
}

fn created_sink(accept: usize, visibility: &str) -> String {
    format!(
        "Created write-sink guard with {accept} accept patterns, sink-visibility=\"{visibility}\""
    )
}

/// A read of an issue of the private repository `octo-org/secret`.
fn read_private() -> (&'static str, &'static str, Value) {
    (
        "github",
        "issue_read",
        json!({"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 1}),
    )
}

/// A read of an issue of the public repository `octo-org/api`.
fn read_public() -> (&'static str, &'static str, Value) {
    (
        "github",
        "issue_read",
        json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": 1}),
    )
}

/// A write through the write-sink server `sink`.
fn write_to(sink: &'static str) -> (&'static str, &'static str, Value) {
    (
        sink,
        "create_issue",
        json!({"owner": "octo-org", "repo": "api", "title": "notes"}),
    )
}

/// The environment of a run in `test-owner/test-repo` with a token and
/// the mock API, plus `extra`.
fn workflow_env<'a>(api: &'a MockGitHub, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("GITHUB_REPOSITORY", REPOSITORY),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    env.extend_from_slice(extra);
    env
}

/// `repos = "all"` for `github`, no sink.
fn all_repos_config(gateway_extra: &str) -> Config {
    Config::Toml(format!(
        "{}{}",
        gateway_toml(gateway_extra),
        github_server_toml("\"all\"")
    ))
}

/// `repos = ["octo-org/*"]` for `github` (an agent holding
/// `private:octo-org` once it called it) and the write-sink `notes`
/// accepting that tag, with `visibility`.
fn tainting_config(gateway_extra: &str, sink: &str, visibility: Option<&str>) -> Config {
    Config::Toml(format!(
        "{}{}{}",
        gateway_toml(gateway_extra),
        github_server_toml("[\"octo-org/*\"]"),
        sink_server_toml(sink, "[\"private:octo-org\"]", visibility)
    ))
}

/// The effective policy `gateway.md` shows for `server` (its Guards row).
fn digest_policy(digest: &str, server: &str) -> Value {
    let row = digest
        .lines()
        .find(|line| line.starts_with(&format!("| {server} |")) && line.contains("`{"))
        .unwrap_or_else(|| panic!("no guard row with a policy for {server}:\n{digest}"));
    row.split('`')
        .nth(1)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| panic!("no policy in {row}"))
}

/// The private read is allowed: the configured `repos = "all"` stands.
fn assert_scope_kept(gateway: &Gateway) {
    let outcomes = gateway.calls("agent-1", &[read_private(), read_public()]);
    assert_allowed(&outcomes[0]);
    assert_allowed(&outcomes[1]);
}

// ---------------------------------------------------------------------
// force-public-repos

#[test]
fn public_repository_forces_repos_public_on_every_server() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    // A guard with a policy of its own and no server policy, a guard with
    // no policy at all, and a server without a guard: all get the public
    // scope, as in the reference.
    let config = format!(
        r#"{gateway}{github}
[servers.scoped]
command = {backend:?}
guard = "scoped"
[servers.bare]
command = {backend:?}
guard = "bare"
[servers.plain]
command = {backend:?}

[guards.scoped]
type = "wasm"
path = {guard:?}
[guards.scoped.policy.allow-only]
repos = ["octo-org/*"]
min-integrity = "approved"
[guards.bare]
type = "wasm"
path = {guard:?}
"#,
        gateway = gateway_toml(""),
        github = github_server_toml("\"all\""),
        backend = harness::demo_backend().to_string_lossy(),
        guard = harness::sample_guard().to_string_lossy(),
    );
    // Every token variable set: the first in the reference's order wins.
    let env = [
        ("GITHUB_REPOSITORY", REPOSITORY),
        ("GH_TOKEN", "token-from-gh-token"),
        ("GITHUB_PERSONAL_ACCESS_TOKEN", "token-from-pat"),
        ("GITHUB_TOKEN", "token-from-github-token"),
        ("GITHUB_MCP_SERVER_TOKEN", "token-from-mcp-server-token"),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    let gateway = Gateway::start(dir.path(), Config::Toml(config), &env);

    let outcomes = gateway.calls("agent-1", &[read_private(), read_public()]);
    assert_denied(&outcomes[0]);
    assert_allowed(&outcomes[1]);
    // label_agent ran on the forced policy: no secrecy, public integrity.
    let reflect = gateway.reflect();
    assert_eq!(
        reflect["agents"]["agent-1"],
        json!({"secrecy": [], "integrity": ["none:public"]}),
        "{reflect}"
    );
    let logs = gateway.stop();

    logs.assert_difc("WARN", FORCED, 4);
    for server in ["github", "scoped", "bare", "plain"] {
        assert!(logs.server(server).contains(FORCED), "{server}.log");
    }
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["path"], "/repos/test-owner/test-repo");
    assert_eq!(
        requests[0]["authorization"],
        "token token-from-mcp-server-token"
    );
    assert_eq!(requests[0]["accept"], "application/vnd.github+json");
    assert!(
        requests[0]["user_agent"]
            .as_str()
            .is_some_and(|ua| !ua.is_empty()),
        "{requests:?}"
    );
    // The digest records the repository and the effective policies.
    let digest = logs.digest();
    assert!(
        digest.contains("| Workflow repository | test-owner/test-repo (public) |"),
        "{digest}"
    );
    let public_policy = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
    for server in ["github", "scoped", "bare", "plain"] {
        assert_eq!(digest_policy(&digest, server), public_policy, "{server}");
    }
    // The guard without a policy of its own kept its wasm guard.
    let bare = digest
        .lines()
        .find(|line| line.starts_with("| bare |") && line.contains("allow-only"))
        .unwrap();
    assert!(bare.contains("| wasm |"), "{bare}");
    assert!(digest.contains(FORCED), "{digest}");
}

#[test]
fn private_and_internal_repositories_keep_the_configured_scope() {
    for answer in [Answer::Private, Answer::Internal] {
        let dir = tempfile::tempdir().unwrap();
        let api = MockGitHub::start(dir.path(), answer);
        let gateway = Gateway::start(dir.path(), all_repos_config(""), &workflow_env(&api, &[]));
        assert_scope_kept(&gateway);
        let logs = gateway.stop();
        logs.assert_absent("FORCED REPOS=PUBLIC");
        logs.assert_absent("fail-open");
        assert_eq!(api.requests().len(), 1, "{answer:?}");
    }
}

#[test]
fn variables_from_an_env_file_count() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let env_file = dir.path().join("workflow.env");
    std::fs::write(
        &env_file,
        format!(
            "GITHUB_REPOSITORY={REPOSITORY}\nGH_TOKEN={TOKEN}\nGITHUB_API_URL={}\n",
            api.url
        ),
    )
    .unwrap();
    let gateway = Gateway::start_with_args(
        dir.path(),
        all_repos_config(""),
        &[],
        &["--env", env_file.to_str().unwrap()],
    );
    let outcomes = gateway.calls("agent-1", &[read_private()]);
    assert_denied(&outcomes[0]);
    let logs = gateway.stop();
    logs.assert_difc("WARN", FORCED, 1);
    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["authorization"], format!("token {TOKEN}"));
}

#[test]
fn config_opt_out_skips_the_override_and_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let gateway = Gateway::start(
        dir.path(),
        all_repos_config("force_public_repos = false"),
        &workflow_env(&api, &[]),
    );
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn json_config_opt_out_skips_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let backend = harness::DemoHttpBackend::start();
    let config = json!({
        "gateway": {"port": 8080, "domain": "localhost", "agentId": KEY, "forcePublicRepos": false},
        "mcpServers": {"github": {
            "type": "http", "url": backend.url, "guard": "sample",
            "guard-policies": {"allow-only": {"repos": "all", "min-integrity": "none"}}}},
        "guards": {"sample": {"type": "wasm", "path": harness::sample_guard()}},
    });
    let gateway = Gateway::start(
        dir.path(),
        Config::JsonStdin(config.to_string()),
        &workflow_env(&api, &[]),
    );
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn env_opt_out_skips_the_override_and_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let gateway = Gateway::start(
        dir.path(),
        all_repos_config(""),
        &workflow_env(&api, &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false")]),
    );
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn config_opt_out_wins_over_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let gateway = Gateway::start(
        dir.path(),
        all_repos_config("force_public_repos = false"),
        &workflow_env(&api, &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "true")]),
    );
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn unset_repository_skips_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let env = [
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    let gateway = Gateway::start(dir.path(), all_repos_config(""), &env);
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    logs.assert_absent("fail-open");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn missing_token_skips_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    // Blank token variables count as unset.
    let env = [
        ("GITHUB_REPOSITORY", REPOSITORY),
        ("GITHUB_TOKEN", "  "),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    let gateway = Gateway::start(dir.path(), all_repos_config(""), &env);
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    logs.assert_absent("fail-open");
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn malformed_repository_fails_open_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let env = [
        ("GITHUB_REPOSITORY", "no-slash"),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_URL", api.url.as_str()),
    ];
    let gateway = Gateway::start(dir.path(), all_repos_config(""), &env);
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_difc(
        "WARN",
        "shouldForcePublicRepos: failed to determine visibility for no-slash (fail-open, not forcing repos=public)",
        1,
    );
    assert_eq!(api.requests().len(), 0);
}

#[test]
fn api_404_fails_open_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Status(404));
    let gateway = Gateway::start(dir.path(), all_repos_config(""), &workflow_env(&api, &[]));
    assert_scope_kept(&gateway);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    logs.assert_difc("WARN", FORCE_FAIL_OPEN, 1);
    assert!(logs.digest().contains(FORCE_FAIL_OPEN));
    assert_eq!(api.requests().len(), 1);
}

/// A failed look-up: nothing is forced and the configured `private` sink
/// stays private, so the tainted agent may write to it.
fn assert_failed_lookup_keeps_everything(answer: Answer) {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), answer);
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "notes", Some("private")),
        &workflow_env(&api, &[]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_absent("FORCED REPOS=PUBLIC");
    logs.assert_difc("WARN", FORCE_FAIL_OPEN, 1);
    logs.assert_difc("WARN", &verification_failed("private"), 1);
    logs.assert_difc("INFO", &created_sink(1, "private"), 1);
    assert!(
        logs.server("notes")
            .contains(&verification_failed("private"))
    );
    // One look-up serves both rules.
    assert_eq!(api.requests().len(), 1, "{answer:?}");
}

#[test]
fn api_500_fails_open_and_keeps_the_configured_sink_visibility() {
    assert_failed_lookup_keeps_everything(Answer::Status(500));
}

#[test]
fn api_hang_fails_open_after_the_timeout() {
    assert_failed_lookup_keeps_everything(Answer::Hang);
}

#[test]
fn write_sink_only_server_is_not_forced() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let config = Config::Toml(format!(
        "{}{}{}",
        gateway_toml(""),
        github_server_toml("\"all\""),
        sink_server_toml("safe-outputs", "[\"*\"]", Some("public"))
    ));
    let gateway = Gateway::start(dir.path(), config, &workflow_env(&api, &[]));
    let outcomes = gateway.calls("agent-1", &[read_public(), write_to("safe-outputs")]);
    assert_allowed(&outcomes[0]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("WARN", FORCED, 1);
    assert!(logs.server("github").contains(FORCED));
    assert!(!logs.server("safe-outputs").contains("FORCED REPOS=PUBLIC"));
    logs.assert_difc("INFO", &verification_passed("public", "public"), 1);
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
    assert_eq!(api.requests().len(), 1);
}

// ---------------------------------------------------------------------
// sink-visibility

#[test]
fn sink_without_visibility_defaults_to_public() {
    let dir = tempfile::tempdir().unwrap();
    // No workflow repository: the default needs no look-up.
    let gateway = Gateway::start(dir.path(), tainting_config("", "notes", None), &[]);
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("INFO", DEFAULTING, 1);
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
    assert!(logs.server("notes").contains(DEFAULTING));
}

#[test]
fn empty_sink_visibility_is_unset_and_defaults_to_public() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(dir.path(), tainting_config("", "notes", Some("")), &[]);
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("INFO", DEFAULTING, 1);
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
}

#[test]
fn exempt_sink_keeps_accept_matching_and_unknown_entries_are_warned() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        tainting_config(
            "sink_visibility_exempt_servers = [\"notes\", \"nosuch\"]",
            "notes",
            None,
        ),
        &[],
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_absent("Defaulting sink-visibility");
    logs.assert_difc("INFO", &created_sink(1, ""), 1);
    logs.assert_difc(
        "WARN",
        "sinkVisibilityExemptServers contains unknown server ID \"nosuch\" — ignoring (not in mcpServers config)",
        1,
    );
}

#[test]
fn wildcard_exempts_every_sink() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::Toml(format!(
        "{}{}{}{}",
        gateway_toml("sink_visibility_exempt_servers = [\"*\"]"),
        github_server_toml("[\"octo-org/*\"]"),
        sink_server_toml("notes", "[\"private:octo-org\"]", None),
        sink_server_toml("chat", "[\"private:octo-org\"]", None),
    ));
    let gateway = Gateway::start(dir.path(), config, &[]);
    let outcomes = gateway.calls(
        "agent-1",
        &[read_private(), write_to("notes"), write_to("chat")],
    );
    assert_allowed(&outcomes[1]);
    assert_allowed(&outcomes[2]);
    let logs = gateway.stop();
    logs.assert_absent("Defaulting sink-visibility");
    logs.assert_absent("unknown server ID");
    logs.assert_difc("INFO", &created_sink(1, ""), 2);
}

#[test]
fn config_opt_out_exempts_sinks_but_the_variable_does_not() {
    // forcePublicRepos = false in the config: every sink is exempt.
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("force_public_repos = false", "notes", None),
        &[],
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_absent("Defaulting sink-visibility");

    // MCP_GATEWAY_FORCE_PUBLIC_REPOS=false only turns off the override.
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "notes", None),
        &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false")],
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("INFO", DEFAULTING, 1);
}

#[test]
fn safe_outputs_without_visibility_is_not_defaulted() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(dir.path(), tainting_config("", "safe-outputs", None), &[]);
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("safe-outputs")]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_absent("Defaulting sink-visibility");
    logs.assert_absent("SAFE-OUTPUTS SAFETY NET");
    logs.assert_difc("INFO", &created_sink(1, ""), 1);
}

#[test]
fn safe_outputs_safety_net_on_a_public_repository() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    // The override is off, so the agent keeps its private:octo-org tag.
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "safeoutputs", None),
        &workflow_env(&api, &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false")]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("safeoutputs")]);
    assert_allowed(&outcomes[0]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("WARN", SAFETY_NET, 1);
    logs.assert_difc("INFO", &verification_passed("public", "public"), 1);
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn private_sink_on_a_public_repository_is_overridden() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "notes", Some("private")),
        &workflow_env(&api, &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false")]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("WARN", OVERRIDE, 1);
    assert!(logs.server("notes").contains(OVERRIDE));
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
    assert!(logs.digest().contains(OVERRIDE));
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn private_sink_on_a_private_repository_passes_verification() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Private);
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "notes", Some("private")),
        &workflow_env(&api, &[]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("INFO", &verification_passed("private", "private"), 1);
    logs.assert_difc("INFO", &created_sink(1, "private"), 1);
    logs.assert_absent("SINK VISIBILITY OVERRIDE");
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn public_sink_on_a_private_repository_stays_public() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Private);
    // Any case is accepted; the guard logs the normalised value.
    let gateway = Gateway::start(
        dir.path(),
        tainting_config("", "notes", Some("Public")),
        &workflow_env(&api, &[]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), write_to("notes")]);
    assert_allowed(&outcomes[0]);
    assert_denied(&outcomes[1]);
    let logs = gateway.stop();
    logs.assert_difc("INFO", &verification_passed("Public", "private"), 1);
    logs.assert_difc("INFO", &created_sink(1, "public"), 1);
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn global_policy_is_forced_and_names_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    // The gateway-wide policy replaces the server's own; forcing narrows it.
    let gateway = Gateway::start(
        dir.path(),
        all_repos_config(""),
        &workflow_env(
            &api,
            &[(
                "MCP_GATEWAY_GUARD_POLICY_JSON",
                r#"{"allow-only": {"repos": ["octo-org/*"], "min-integrity": "none"}}"#,
            )],
        ),
    );
    let outcomes = gateway.calls("agent-1", &[read_private(), read_public()]);
    assert_denied(&outcomes[0]);
    assert_allowed(&outcomes[1]);
    let logs = gateway.stop();
    let global = format!("{FORCED} (source: global policy)");
    logs.assert_difc("WARN", &global, 1);
    assert!(logs.server("github").contains(&global));
    assert_eq!(
        digest_policy(&logs.digest(), "github"),
        json!({"allow-only": {"repos": "public", "min-integrity": "none"}})
    );
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn unrecognised_variable_value_keeps_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockGitHub::start(dir.path(), Answer::Public);
    // As the reference: not a yes/no word, so force-public-repos stays on
    // (and start-up does not fail).
    let gateway = Gateway::start(
        dir.path(),
        all_repos_config(""),
        &workflow_env(&api, &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "maybe")]),
    );
    let outcomes = gateway.calls("agent-1", &[read_private()]);
    assert_denied(&outcomes[0]);
    let logs = gateway.stop();
    logs.assert_difc("WARN", FORCED, 1);
}
