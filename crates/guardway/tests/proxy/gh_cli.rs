//! The real `gh` CLI through `guardway proxy --tls`: `GH_HOST` names the
//! proxy, the generated CA is trusted through `SSL_CERT_FILE`, and what
//! `gh` prints is checked item by item against the policy.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common::*;

/// Whether `gh` runs (`.ci/run` installs it).
fn gh_available() -> bool {
    Command::new("gh")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `gh ARGS` against the proxy, as a fresh user of `GH_HOST`.
fn gh(proxy: &Proxy, home: &Path, args: &[&str]) -> Output {
    let ca = proxy.tls_dir.join("ca.crt");
    let mut command = Command::new("gh");
    command.args(args);
    for name in [
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "GITHUB_ENTERPRISE_TOKEN",
        "GH_REPO",
        "SSL_CERT_DIR",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(name);
    }
    command
        .env("GH_HOST", format!("localhost:{}", proxy.port()))
        .env("GH_ENTERPRISE_TOKEN", "client-token")
        .env("SSL_CERT_FILE", &ca)
        .env("GH_CONFIG_DIR", home.join("gh"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("GH_NO_UPDATE_NOTIFIER", "1")
        .env("GH_PROMPT_DISABLED", "1")
        .env("GH_PAGER", "cat")
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "*");
    command.output().expect("run gh")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "gh failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "gh printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

struct Setup {
    mock: Mock,
    proxy: Proxy,
    home: tempfile::TempDir,
}

fn setup(policy: Value) -> Setup {
    assert!(
        gh_available(),
        "the gh CLI is needed (Debian package gh: apt-get install -y gh; .ci/run installs it)"
    );
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&policy), &["--tls"]);
    assert!(proxy.url.starts_with("https://"), "{}", proxy.url);
    Setup {
        mock,
        proxy,
        home: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn gh_issue_and_pr_lists_are_filtered() {
    let s = setup(scoped_policy());
    let issues = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &[
            "issue",
            "list",
            "-R",
            "octo-org/secret",
            "--json",
            "number,author",
        ],
    ));
    assert_eq!(numbers(&issues), [1, 2, 3], "{issues}");
    let logins: Vec<&str> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["author"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["alice", "bob", "carol"]);
    let pulls = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &[
            "pr",
            "list",
            "-R",
            "octo-org/secret",
            "--state",
            "all",
            "--json",
            "number",
        ],
    ));
    assert_eq!(numbers(&pulls), [101, 102], "{pulls}");
    // gh went through the proxy: its GraphQL queries reached the mock with
    // the guard's fields added, with the token gh was given.
    let queries = s.mock.requests_to("/graphql");
    assert!(
        queries
            .iter()
            .any(|q| q["body"].as_str().unwrap().contains("authorAssociation"))
    );
    assert!(
        queries
            .iter()
            .all(|q| q["headers"]["authorization"] == "token client-token")
    );
}

#[test]
fn gh_api_rest_reads_and_writes() {
    let s = setup(scoped_policy());
    let issues = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &["api", "repos/octo-org/secret/issues?per_page=100"],
    ));
    assert_eq!(numbers(&issues), [1, 2, 3]);
    let outside = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &["api", "repos/acme/internal/issues"],
    ));
    assert_eq!(outside, json!([]));
    let found = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &[
            "search",
            "issues",
            "--repo",
            "octo-org/api",
            "--json",
            "number",
        ],
    ));
    assert_eq!(numbers(&found), [1, 2, 3]);
    // A REST write passes through, body and all.
    let created = stdout_json(&gh(
        &s.proxy,
        s.home.path(),
        &[
            "api",
            "-X",
            "POST",
            "repos/acme/internal/issues",
            "-f",
            "title=from gh",
        ],
    ));
    assert_eq!(created["received"], json!({"title": "from gh"}));
    let posted = s.mock.requests_to("/repos/acme/internal/issues");
    assert!(posted.iter().any(|r| r["method"] == "POST"));
}

#[test]
fn gh_views_of_withheld_items_show_nothing() {
    let s = setup(scoped_policy());
    let shown = gh(
        &s.proxy,
        s.home.path(),
        &["issue", "view", "3", "-R", "octo-org/api"],
    );
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(text.contains("issue 3 by carol"), "{text}");
    let withheld = gh(
        &s.proxy,
        s.home.path(),
        &["issue", "view", "4", "-R", "octo-org/api"],
    );
    assert!(!withheld.status.success());
    assert!(!String::from_utf8_lossy(&withheld.stdout).contains("issue 4 by dave"));
}

#[test]
fn gh_graphql_mutations_never_reach_the_upstream() {
    let s = setup(scoped_policy());
    let created = gh(
        &s.proxy,
        s.home.path(),
        &[
            "issue",
            "create",
            "-R",
            "octo-org/api",
            "--title",
            "t",
            "--body",
            "b",
        ],
    );
    assert!(!created.status.success());
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains("access denied: unrecognized GraphQL operation") || stderr.contains("403"),
        "{stderr}"
    );
    let mutations: Vec<Value> = s
        .mock
        .requests_to("/graphql")
        .into_iter()
        .filter(|r| r["body"].as_str().unwrap().contains("createIssue"))
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
}
