//! REST routing: which guard tool (and which arguments) a GitHub REST path
//! stands for. One ordered table of URL patterns, first match wins, a
//! generic repository fallback last; the `/api/v3` prefix `gh` adds for a
//! `GH_HOST` is removed before matching and the query string is ignored.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// The path prefix `gh` puts before REST paths when `GH_HOST` is set.
pub const GH_HOST_PATH_PREFIX: &str = "/api/v3";

/// Paths of metadata endpoints that carry no user or repository data and
/// are forwarded without labelling (`GET` only).
pub const METADATA_PASSTHROUGH_PATHS: &[&str] =
    &["/meta", "/rate_limit", "/octocat", "/zen", "/versions"];

/// A REST path matched to a guard tool.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    /// The guard tool name (`list_issues`, `issue_read`, …).
    pub tool: &'static str,
    /// The tool arguments taken from the path (all string values).
    pub args: Map<String, Value>,
}

impl RouteMatch {
    /// The `owner` argument, when the route has one.
    pub fn owner(&self) -> Option<&str> {
        self.args.get("owner").and_then(Value::as_str)
    }

    /// The `repo` argument, when the route has one.
    pub fn repo(&self) -> Option<&str> {
        self.args.get("repo").and_then(Value::as_str)
    }
}

/// How a route turns its captures into tool arguments.
#[derive(Debug, Clone, Copy)]
enum Args {
    /// No arguments.
    Empty,
    /// `owner`, `repo`.
    Repo,
    /// `owner`, `repo`, `issue_number`, and `method` when given.
    Issue(Option<&'static str>),
    /// `owner`, `repo`, `pullNumber`, `method`.
    PullRequest(&'static str),
    /// `owner`, `repo` and the third capture under this key.
    RepoAnd(&'static str),
    /// `owner`, `repo`, `method`.
    RepoMethod(&'static str),
    /// `owner`, `repo`, `method`, `resource_id` (the third capture).
    RepoMethodResource(&'static str),
    /// `owner`, `repo`, `sha` (third capture), `method`.
    CommitMethod(&'static str),
    /// `owner`, `method` (organisation-scoped).
    OwnerMethod(&'static str),
}

struct Route {
    pattern: Regex,
    tool: &'static str,
    args: Args,
}

/// `(pattern, tool, arguments)`, in matching order. `R` stands for the
/// `^/repos/([^/]+)/([^/]+)` prefix.
const TABLE: &[(&str, &str, Args)] = &[
    // Issues
    (
        "R/issues/([0-9]+)/comments$",
        "issue_read",
        Args::Issue(Some("get_comments")),
    ),
    (
        "R/issues/([0-9]+)/labels$",
        "issue_read",
        Args::Issue(Some("get_labels")),
    ),
    ("R/issues/([0-9]+)$", "issue_read", Args::Issue(None)),
    ("R/issues$", "list_issues", Args::Repo),
    // Pull requests
    (
        "R/pulls/([0-9]+)/files$",
        "pull_request_read",
        Args::PullRequest("get_files"),
    ),
    (
        "R/pulls/([0-9]+)/reviews$",
        "pull_request_read",
        Args::PullRequest("get_reviews"),
    ),
    (
        "R/pulls/([0-9]+)/comments$",
        "pull_request_read",
        Args::PullRequest("get_review_comments"),
    ),
    (
        "R/pulls/([0-9]+)/commits$",
        "pull_request_read",
        Args::PullRequest("get_commits"),
    ),
    (
        "R/pulls/([0-9]+)$",
        "pull_request_read",
        Args::PullRequest("get"),
    ),
    ("R/pulls$", "list_pull_requests", Args::Repo),
    // Commits
    ("R/commits/([^/]+)$", "get_commit", Args::RepoAnd("sha")),
    ("R/commits$", "list_commits", Args::Repo),
    // Branches and tags
    ("R/branches$", "list_branches", Args::Repo),
    ("R/git/ref/tags/(.+)$", "get_tag", Args::RepoAnd("tag")),
    ("R/tags$", "list_tags", Args::Repo),
    // Releases
    ("R/releases/latest$", "get_latest_release", Args::Repo),
    (
        "R/releases/tags/(.+)$",
        "get_release_by_tag",
        Args::RepoAnd("tag"),
    ),
    ("R/releases$", "list_releases", Args::Repo),
    // Contents
    (
        "R/contents/(.+)$",
        "get_file_contents",
        Args::RepoAnd("path"),
    ),
    (
        "R/git/trees/(.+)$",
        "get_file_contents",
        Args::RepoAnd("path"),
    ),
    // Labels
    ("R/labels/(.+)$", "get_label", Args::RepoAnd("name")),
    ("R/labels$", "list_labels", Args::Repo),
    // Actions
    (
        "R/actions/workflows$",
        "actions_list",
        Args::RepoMethod("list_workflows"),
    ),
    (
        "R/actions/workflows/([^/]+)/runs$",
        "actions_list",
        Args::RepoMethodResource("list_workflow_runs"),
    ),
    (
        "R/actions/workflows/([^/]+)$",
        "actions_get",
        Args::RepoMethodResource("get_workflow"),
    ),
    (
        "R/actions/runs/([0-9]+)/attempts/([0-9]+)/jobs$",
        "actions_list",
        Args::RepoMethodResource("list_workflow_jobs"),
    ),
    (
        "R/actions/runs/([0-9]+)/attempts/([0-9]+)/logs$",
        "get_job_logs",
        Args::RepoAnd("run_id"),
    ),
    (
        "R/actions/runs/([0-9]+)/logs$",
        "get_job_logs",
        Args::RepoAnd("run_id"),
    ),
    (
        "R/actions/runs/([0-9]+)/artifacts$",
        "actions_list",
        Args::RepoMethodResource("list_workflow_run_artifacts"),
    ),
    (
        "R/actions/runs/([0-9]+)$",
        "actions_get",
        Args::RepoMethodResource("get_workflow_run"),
    ),
    (
        "R/actions/runs$",
        "actions_list",
        Args::RepoMethod("list_workflow_runs"),
    ),
    (
        "R/actions/jobs/([0-9]+)$",
        "actions_get",
        Args::RepoMethodResource("get_workflow_job"),
    ),
    (
        "R/actions/artifacts$",
        "actions_list",
        Args::RepoMethod("list_workflow_run_artifacts"),
    ),
    (
        "R/actions/caches$",
        "actions_list",
        Args::RepoMethod("list_caches"),
    ),
    // Actions secrets and variables (names only)
    (
        "R/actions/secrets$",
        "actions_list",
        Args::RepoMethod("list_secrets"),
    ),
    (
        "R/actions/variables(?:/([^/]+))?$",
        "actions_list",
        Args::RepoMethod("list_variables"),
    ),
    (
        "R/environments/([^/]+)/(?:secrets|variables)$",
        "actions_list",
        Args::RepoMethod("list_environment_config"),
    ),
    // Notifications and the user
    ("^/notifications$", "list_notifications", Args::Empty),
    ("^/user$", "get_me", Args::Empty),
    (
        "^/user/(?:keys|ssh_signing_keys|gpg_keys)$",
        "get_me",
        Args::Empty,
    ),
    // Organisation Actions secrets and variables
    (
        "^/orgs/([^/]+)/actions/(?:secrets|variables)(?:/[^/]+)?$",
        "actions_list",
        Args::OwnerMethod("list_org_config"),
    ),
    // Discussions
    ("R/discussions$", "list_discussions", Args::Repo),
    (
        "R/discussions/([0-9]+)/comments$",
        "get_discussion_comments",
        Args::RepoAnd("discussion_number"),
    ),
    (
        "R/discussions/([0-9]+)$",
        "list_discussions",
        Args::RepoAnd("discussion_number"),
    ),
    // Check runs and suites (gh pr checks)
    (
        "R/commits/([^/]+)/check-(?:runs|suites)$",
        "pull_request_read",
        Args::CommitMethod("get_check_runs"),
    ),
    // Search
    ("^/search/code$", "search_code", Args::Empty),
    ("^/search/issues$", "search_issues", Args::Empty),
    ("^/search/repositories$", "search_repositories", Args::Empty),
    // Any other repository path (must stay last)
    ("R(?:/.*)?$", "get_file_contents", Args::Repo),
];

static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|&(pattern, tool, args)| {
            let pattern = match pattern.strip_prefix('R') {
                Some(rest) => format!("^/repos/([^/]+)/([^/]+){rest}"),
                None => pattern.to_owned(),
            };
            Route {
                // The table is constant: a bad pattern fails every test.
                pattern: Regex::new(&pattern).unwrap_or_else(|e| panic!("route {pattern}: {e}")),
                tool,
                args,
            }
        })
        .collect()
});

/// Number of REST routes in the table.
pub fn route_count() -> usize {
    TABLE.len()
}

fn put(args: &mut Map<String, Value>, key: &str, value: &str) {
    args.insert(key.to_owned(), Value::String(value.to_owned()));
}

impl Args {
    fn build(self, captures: &regex::Captures<'_>) -> Map<String, Value> {
        let capture = |i: usize| captures.get(i).map_or("", |m| m.as_str());
        let mut args = Map::new();
        let repo = |args: &mut Map<String, Value>| {
            put(args, "owner", capture(1));
            put(args, "repo", capture(2));
        };
        match self {
            Args::Empty => {}
            Args::Repo => repo(&mut args),
            Args::Issue(method) => {
                repo(&mut args);
                put(&mut args, "issue_number", capture(3));
                if let Some(method) = method {
                    put(&mut args, "method", method);
                }
            }
            Args::PullRequest(method) => {
                repo(&mut args);
                put(&mut args, "pullNumber", capture(3));
                put(&mut args, "method", method);
            }
            Args::RepoAnd(key) => {
                repo(&mut args);
                put(&mut args, key, capture(3));
            }
            Args::RepoMethod(method) => {
                repo(&mut args);
                put(&mut args, "method", method);
            }
            Args::RepoMethodResource(method) => {
                repo(&mut args);
                put(&mut args, "method", method);
                put(&mut args, "resource_id", capture(3));
            }
            Args::CommitMethod(method) => {
                repo(&mut args);
                put(&mut args, "sha", capture(3));
                put(&mut args, "method", method);
            }
            Args::OwnerMethod(method) => {
                put(&mut args, "owner", capture(1));
                put(&mut args, "method", method);
            }
        }
        args
    }
}

/// Matches a REST path (without the `/api/v3` prefix; a query string is
/// ignored) to its guard tool. `None` when no route matches.
pub fn match_rest(path: &str) -> Option<RouteMatch> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    ROUTES.iter().find_map(|route| {
        let captures = route.pattern.captures(path)?;
        Some(RouteMatch {
            tool: route.tool,
            args: route.args.build(&captures),
        })
    })
}

/// Removes the `/api/v3` prefix `gh` adds for a `GH_HOST` (`/api/v3` alone
/// becomes `/`).
pub fn strip_gh_host_prefix(path: &str) -> &str {
    match path.strip_prefix(GH_HOST_PATH_PREFIX) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Whether `path` is a metadata endpoint forwarded without labelling.
pub fn is_metadata_passthrough(path: &str) -> bool {
    METADATA_PASSTHROUGH_PATHS.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_table_has_the_reference_routes() {
        assert_eq!(route_count(), 49);
        assert_eq!(ROUTES.len(), 49);
    }

    /// (path, tool, arguments) for every route and its precedence.
    #[test]
    fn rest_paths_map_to_tools_and_arguments() {
        let cases: &[(&str, &str, Value)] = &[
            (
                "/repos/octocat/hello-world/issues",
                "list_issues",
                json!({"owner": "octocat", "repo": "hello-world"}),
            ),
            (
                "/repos/octocat/hello-world/issues/42",
                "issue_read",
                json!({"owner": "octocat", "repo": "hello-world", "issue_number": "42"}),
            ),
            (
                "/repos/octocat/hello-world/issues/42/comments",
                "issue_read",
                json!({"owner": "octocat", "repo": "hello-world", "issue_number": "42", "method": "get_comments"}),
            ),
            (
                "/repos/octocat/hello-world/issues/42/labels",
                "issue_read",
                json!({"owner": "octocat", "repo": "hello-world", "issue_number": "42", "method": "get_labels"}),
            ),
            (
                "/repos/github/gh-aw/pulls",
                "list_pull_requests",
                json!({"owner": "github", "repo": "gh-aw"}),
            ),
            (
                "/repos/github/gh-aw/pulls/123",
                "pull_request_read",
                json!({"owner": "github", "repo": "gh-aw", "pullNumber": "123", "method": "get"}),
            ),
            (
                "/repos/github/gh-aw/pulls/123/files",
                "pull_request_read",
                json!({"owner": "github", "repo": "gh-aw", "pullNumber": "123", "method": "get_files"}),
            ),
            (
                "/repos/github/gh-aw/pulls/123/reviews",
                "pull_request_read",
                json!({"owner": "github", "repo": "gh-aw", "pullNumber": "123", "method": "get_reviews"}),
            ),
            (
                "/repos/github/gh-aw/pulls/123/comments",
                "pull_request_read",
                json!({"owner": "github", "repo": "gh-aw", "pullNumber": "123", "method": "get_review_comments"}),
            ),
            (
                "/repos/github/gh-aw/pulls/123/commits",
                "pull_request_read",
                json!({"owner": "github", "repo": "gh-aw", "pullNumber": "123", "method": "get_commits"}),
            ),
            (
                "/repos/org/repo/commits",
                "list_commits",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/commits/abc123",
                "get_commit",
                json!({"owner": "org", "repo": "repo", "sha": "abc123"}),
            ),
            (
                "/repos/org/repo/branches",
                "list_branches",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/tags",
                "list_tags",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/git/ref/tags/v1.0.0",
                "get_tag",
                json!({"owner": "org", "repo": "repo", "tag": "v1.0.0"}),
            ),
            (
                "/repos/org/repo/releases",
                "list_releases",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/releases/latest",
                "get_latest_release",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/releases/tags/v1.0.0",
                "get_release_by_tag",
                json!({"owner": "org", "repo": "repo", "tag": "v1.0.0"}),
            ),
            (
                "/repos/org/repo/contents/README.md",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo", "path": "README.md"}),
            ),
            (
                "/repos/org/repo/contents/src/main.go",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo", "path": "src/main.go"}),
            ),
            (
                "/repos/org/repo/git/trees/main",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo", "path": "main"}),
            ),
            (
                "/repos/org/repo/labels/bug",
                "get_label",
                json!({"owner": "org", "repo": "repo", "name": "bug"}),
            ),
            (
                "/repos/org/repo/labels",
                "list_labels",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/actions/workflows",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflows"}),
            ),
            (
                "/repos/org/repo/actions/workflows/42",
                "actions_get",
                json!({"owner": "org", "repo": "repo", "method": "get_workflow", "resource_id": "42"}),
            ),
            (
                "/repos/org/repo/actions/workflows/42/runs",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflow_runs", "resource_id": "42"}),
            ),
            (
                "/repos/org/repo/actions/runs",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflow_runs"}),
            ),
            (
                "/repos/org/repo/actions/runs/12345",
                "actions_get",
                json!({"owner": "org", "repo": "repo", "method": "get_workflow_run", "resource_id": "12345"}),
            ),
            (
                "/repos/org/repo/actions/jobs/99",
                "actions_get",
                json!({"owner": "org", "repo": "repo", "method": "get_workflow_job", "resource_id": "99"}),
            ),
            (
                "/repos/org/repo/actions/runs/100/attempts/1/jobs",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflow_jobs", "resource_id": "100"}),
            ),
            (
                "/repos/org/repo/actions/runs/100/logs",
                "get_job_logs",
                json!({"owner": "org", "repo": "repo", "run_id": "100"}),
            ),
            (
                "/repos/org/repo/actions/runs/100/attempts/2/logs",
                "get_job_logs",
                json!({"owner": "org", "repo": "repo", "run_id": "100"}),
            ),
            (
                "/repos/org/repo/actions/runs/100/artifacts",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflow_run_artifacts", "resource_id": "100"}),
            ),
            (
                "/repos/org/repo/actions/artifacts",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_workflow_run_artifacts"}),
            ),
            (
                "/repos/org/repo/actions/caches",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_caches"}),
            ),
            (
                "/repos/org/repo/actions/secrets",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_secrets"}),
            ),
            (
                "/repos/org/repo/actions/variables",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_variables"}),
            ),
            (
                "/repos/org/repo/actions/variables/MY_VARIABLE",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_variables"}),
            ),
            (
                "/repos/org/repo/environments/production/secrets",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_environment_config"}),
            ),
            (
                "/repos/github/my-app/environments/prod-east-1/variables",
                "actions_list",
                json!({"owner": "github", "repo": "my-app", "method": "list_environment_config"}),
            ),
            (
                "/repos/org/repo/environments/prod/secrets?per_page=30",
                "actions_list",
                json!({"owner": "org", "repo": "repo", "method": "list_environment_config"}),
            ),
            (
                "/orgs/myorg/actions/secrets",
                "actions_list",
                json!({"owner": "myorg", "method": "list_org_config"}),
            ),
            (
                "/orgs/myorg/actions/variables",
                "actions_list",
                json!({"owner": "myorg", "method": "list_org_config"}),
            ),
            (
                "/orgs/myorg/actions/variables/MY_VAR",
                "actions_list",
                json!({"owner": "myorg", "method": "list_org_config"}),
            ),
            (
                "/orgs/myorg/actions/secrets/MY_SECRET",
                "actions_list",
                json!({"owner": "myorg", "method": "list_org_config"}),
            ),
            (
                "/repos/org/repo/commits/abc123/check-runs",
                "pull_request_read",
                json!({"owner": "org", "repo": "repo", "sha": "abc123", "method": "get_check_runs"}),
            ),
            (
                "/repos/org/repo/commits/abc123/check-suites",
                "pull_request_read",
                json!({"owner": "org", "repo": "repo", "sha": "abc123", "method": "get_check_runs"}),
            ),
            ("/notifications", "list_notifications", json!({})),
            ("/user", "get_me", json!({})),
            ("/user/keys", "get_me", json!({})),
            ("/user/ssh_signing_keys", "get_me", json!({})),
            ("/user/gpg_keys", "get_me", json!({})),
            (
                "/repos/org/repo/discussions",
                "list_discussions",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/discussions/42",
                "list_discussions",
                json!({"owner": "org", "repo": "repo", "discussion_number": "42"}),
            ),
            (
                "/repos/org/repo/discussions/7/comments",
                "get_discussion_comments",
                json!({"owner": "org", "repo": "repo", "discussion_number": "7"}),
            ),
            ("/search/code", "search_code", json!({})),
            ("/search/issues", "search_issues", json!({})),
            ("/search/repositories", "search_repositories", json!({})),
            (
                "/repos/org/repo/unknown-endpoint",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo"}),
            ),
            (
                "/repos/org/repo/issues?state=open&per_page=10",
                "list_issues",
                json!({"owner": "org", "repo": "repo"}),
            ),
            // A non-numeric issue falls to the generic repository route.
            (
                "/repos/org/repo/issues/abc",
                "get_file_contents",
                json!({"owner": "org", "repo": "repo"}),
            ),
        ];
        for (path, tool, expected) in cases {
            let matched = match_rest(path).unwrap_or_else(|| panic!("no route for {path}"));
            assert_eq!(matched.tool, *tool, "{path}");
            assert_eq!(matched.args, args(expected.clone()), "{path}");
        }
    }

    #[test]
    fn unmatched_paths_have_no_route() {
        for path in [
            "/unknown-path",
            "/search/users",
            "/repos",
            "/repos/only-owner",
            "/orgs/myorg/members",
            "/v1/unknown/endpoint",
            "/graphql",
        ] {
            assert_eq!(match_rest(path), None, "{path}");
        }
    }

    #[test]
    fn owner_and_repo_accessors() {
        let matched = match_rest("/repos/a/b/issues").unwrap();
        assert_eq!((matched.owner(), matched.repo()), (Some("a"), Some("b")));
        assert_eq!(match_rest("/user").unwrap().owner(), None);
    }

    #[test]
    fn gh_host_prefix_is_stripped() {
        for (input, expected) in [
            ("/api/v3/repos/org/repo/issues", "/repos/org/repo/issues"),
            ("/api/v3/user", "/user"),
            ("/api/v3/graphql", "/graphql"),
            ("/api/v3", "/"),
            ("/api/v3x", "/api/v3x"),
            ("/repos/org/repo/issues", "/repos/org/repo/issues"),
            ("/user", "/user"),
        ] {
            assert_eq!(strip_gh_host_prefix(input), expected, "{input}");
        }
    }

    #[test]
    fn metadata_paths_pass_through() {
        for path in ["/meta", "/rate_limit", "/octocat", "/zen", "/versions"] {
            assert!(is_metadata_passthrough(path));
        }
        assert!(!is_metadata_passthrough("/user"));
        assert!(!is_metadata_passthrough("/meta/x"));
    }
}
