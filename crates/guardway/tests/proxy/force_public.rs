//! force-public-repos in proxy mode: when the workflow repository
//! (`GITHUB_REPOSITORY`) is public, as the mock's `GET /repos/{owner}/{repo}`
//! says, the policy reads public repositories only; the flag and the
//! variable opt out; a private repository or a failed look-up keep the
//! policy as given (fail open). Each checks results item by item, the one
//! look-up the mock saw, and the proxy's log lines.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

const FORCED: &str = "[WARN] [difc] FORCED REPOS=PUBLIC: workflow repo acme/web is public — \
                      overriding proxy allow-only scope to prevent private data reads";

/// Starts the proxy with the scoped policy in workflow `repository`, the
/// fallback token `workflow-token`, `extra` flags and `variables`.
fn start_in(mock: &Mock, repository: &str, extra: &[&str], variables: &[(&str, &str)]) -> Proxy {
    let mut flags = vec!["--github-token", "workflow-token"];
    flags.extend_from_slice(extra);
    let repository = repository.to_owned();
    let variables: Vec<(String, String)> = variables
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Proxy::start_with(
        mock,
        Some(&scoped_policy()),
        &flags,
        move |command: &mut Command| {
            command.env("GITHUB_REPOSITORY", repository);
            command.envs(variables);
        },
    )
}

/// `proxy.log` with the start-up in it.
fn log_of(proxy: &Proxy) -> String {
    proxy.log_with("Proxy listening on")
}

/// The issues of `repo` through `proxy`.
fn issues(proxy: &Proxy, repo: &str) -> Value {
    json_of(get(
        &proxy.url(&format!("/repos/{repo}/issues?per_page=100"))
    ))
}

/// The look-ups of the workflow repository that reached the mock.
fn lookups(mock: &Mock, repository: &str) -> Vec<Value> {
    mock.requests_to(&format!("/repos/{repository}"))
}

#[test]
fn a_public_workflow_repository_forces_public_repos() {
    let mock = Mock::start();
    let forced = start_in(&mock, "acme/web", &[], &[]);
    // One look-up, at start-up, with the fallback token.
    let asked = lookups(&mock, "acme/web");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["method"], "GET");
    assert_eq!(asked[0]["headers"]["authorization"], "token workflow-token");
    assert!(
        asked[0]["headers"]["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("guardway/")
    );
    let log = log_of(&forced);
    assert!(log.contains(FORCED), "{log}");
    // The policy's own repositories are private: nothing of them is shown.
    assert_eq!(issues(&forced, "octo-org/secret"), json!([]));
    // A public repository outside `octo-org/*` is read as the same policy
    // with `repos = "public"` reads it, item by item.
    let explicit_policy = json!({"allow-only": {"repos": "public", "min-integrity": "approved",
                                                "blocked-users": ["mallory"]}});
    let explicit = Proxy::start(&mock, Some(&explicit_policy), &[]);
    let public = issues(&forced, "acme/web");
    assert!(!numbers(&public).is_empty(), "{public}");
    assert_eq!(public, issues(&explicit, "acme/web"));
    // Without the override the policy sees octo-org's private repository
    // and none of acme/web.
    let scoped = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    assert_eq!(numbers(&issues(&scoped, "octo-org/secret")), [1, 2, 3]);
    assert_eq!(issues(&scoped, "acme/web"), json!([]));
    // The forced agent holds no secrecy of octo-org.
    let reflect = json_of(get(&forced.url("/reflect")));
    let secrecy = reflect["agents"]["proxy"]["secrecy"].to_string();
    assert!(!secrecy.contains("octo-org"), "{reflect}");
}

#[test]
fn the_flag_and_the_variable_opt_out() {
    let mock = Mock::start();
    let by_flag = start_in(&mock, "acme/web", &["--force-public-repos=false"], &[]);
    let by_variable = start_in(
        &mock,
        "acme/web",
        &[],
        &[("MCP_GATEWAY_FORCE_PUBLIC_REPOS", "false")],
    );
    for proxy in [&by_flag, &by_variable] {
        let log = log_of(proxy);
        assert!(
            log.contains("[INFO] [difc] forcePublicRepos: disabled"),
            "{log}"
        );
        assert!(!log.contains("FORCED REPOS=PUBLIC"), "{log}");
        assert_eq!(numbers(&issues(proxy, "octo-org/secret")), [1, 2, 3]);
    }
    // Nothing was asked.
    assert!(lookups(&mock, "acme/web").is_empty());
}

#[test]
fn private_repositories_and_failed_look_ups_keep_the_policy() {
    let mock = Mock::start();
    let private = start_in(&mock, "octo-org/secret", &[], &[]);
    let log = log_of(&private);
    assert!(
        log.contains(
            "[INFO] [difc] forcePublicRepos: repo octo-org/secret is private — no override needed"
        ),
        "{log}"
    );
    assert_eq!(numbers(&issues(&private, "octo-org/secret")), [1, 2, 3]);
    assert_eq!(lookups(&mock, "octo-org/secret").len(), 1);

    mock.faults(json!([{"path": "^/repos/acme/web$", "mode": "500"}]));
    let failed = start_in(&mock, "acme/web", &[], &[]);
    let log = log_of(&failed);
    assert!(
        log.contains("[WARN] [difc] forcePublicRepos: failed to determine visibility for acme/web (fail-open): repo visibility check for acme/web returned status 500"),
        "{log}"
    );
    assert_eq!(numbers(&issues(&failed, "octo-org/secret")), [1, 2, 3]);
    mock.faults(json!([]));

    // Without GITHUB_REPOSITORY nothing is asked.
    let outside = Proxy::start(&mock, Some(&scoped_policy()), &["--github-token", "t"]);
    let log = log_of(&outside);
    assert!(
        log.contains("[INFO] [difc] forcePublicRepos: GITHUB_REPOSITORY not set — skipping"),
        "{log}"
    );
}
