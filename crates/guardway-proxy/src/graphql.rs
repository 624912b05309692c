//! GraphQL routing: which guard tool a GraphQL request body stands for
//! (ordered query-text patterns, first match wins), the owner, repository
//! and search query it addresses, and which request paths are the GraphQL
//! endpoint.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// The tool name of schema introspection queries, which are forwarded
/// without labelling.
pub const INTROSPECTION_TOOL: &str = "graphql_introspection";

/// A GraphQL request matched to a guard tool.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlMatch {
    pub tool: &'static str,
    /// `owner`, `repo` when found, `query` for searches.
    pub args: Map<String, Value>,
}

impl GraphqlMatch {
    pub fn owner(&self) -> Option<&str> {
        self.args.get("owner").and_then(Value::as_str)
    }

    pub fn repo(&self) -> Option<&str> {
        self.args.get("repo").and_then(Value::as_str)
    }
}

/// `(query-text pattern, tool)`, in matching order (singular before plural).
const PATTERNS: &[(&str, &str)] = &[
    // Schema introspection: metadata, no repository data.
    (r"(?i)__type\s*\(", INTROSPECTION_TOOL),
    (r"(?i)__schema\b", INTROSPECTION_TOOL),
    // `gh issue view` asks for `issue: issueOrPullRequest(number: …)`; the
    // reference's patterns take it for a repository query
    // (`get_file_contents`), which labels the whole answer by the
    // repository and shows issues of any author.
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bissueOrPullRequest\s*\(",
        "issue_read",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bissue\s*\(",
        "issue_read",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bissues\s*[\({]",
        "list_issues",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bpullRequest\s*\(",
        "pull_request_read",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bpullRequests\s*[\({]",
        "list_pull_requests",
    ),
    (r"(?i)\bhistory\s*[\({]", "list_commits"),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bdiscussion\s*\(",
        "list_discussions",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bdiscussions\s*[\({]",
        "list_discussions",
    ),
    (
        r"(?i)repository\s*\([^)]*\)\s*\{[^}]*\bdiscussionCategories\s*[\({]",
        "list_discussion_categories",
    ),
    (r"(?i)\bsearch\s*\(", "search_issues"),
    (r"(?i)projectV2", "list_projects"),
    (r"(?i)\bviewer\s*\{", "get_me"),
    (r"(?i)\borganization\s*\(", "search_orgs"),
    // Any other repository query.
    (r"(?i)\brepository\s*\(", "get_file_contents"),
];

static COMPILED: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|&(pattern, tool)| (compile(pattern), tool))
        .collect()
});

/// Compiles one of this module's constant patterns.
fn compile(pattern: &str) -> Regex {
    // The patterns are constants: a bad one fails every test.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

static VAR_OWNER: LazyLock<Regex> = LazyLock::new(|| compile(r#"(?i)"owner"\s*:\s*"([^"]+)""#));
static VAR_REPO: LazyLock<Regex> =
    LazyLock::new(|| compile(r#"(?i)"(?:name|repo)"\s*:\s*"([^"]+)""#));
/// `repository(owner: "X", name: "Y")` or with `$variables`.
static QUERY_REPO: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?i)repository\s*\(\s*owner\s*:\s*(?:"([^"]+)"|\$[0-9A-Za-z_]+)\s*,?\s*name\s*:\s*(?:"([^"]+)"|\$[0-9A-Za-z_]+)"#,
    )
});
static SEARCH_QUERY_ARG: LazyLock<Regex> =
    LazyLock::new(|| compile(r#"(?i)\bsearch\s*\(\s*query\s*:\s*"([^"]+)""#));

/// Number of GraphQL patterns.
pub fn pattern_count() -> usize {
    PATTERNS.len()
}

/// A GraphQL request body, read as the endpoint does: `query` a string,
/// `variables` an object (or absent/null). `None` for anything else.
pub struct GraphqlRequest<'a> {
    pub query: &'a str,
    pub variables: Option<&'a Map<String, Value>>,
}

impl<'a> GraphqlRequest<'a> {
    pub fn from_value(body: &'a Value) -> Option<Self> {
        let object = body.as_object()?;
        let query = match object.get("query") {
            Some(Value::String(query)) => query.as_str(),
            None | Some(Value::Null) => "",
            Some(_) => return None,
        };
        let variables = match object.get("variables") {
            Some(Value::Object(variables)) => Some(variables),
            None | Some(Value::Null) => None,
            Some(_) => return None,
        };
        Some(GraphqlRequest { query, variables })
    }
}

/// Matches a GraphQL request body to a guard tool. `None` for a body that
/// is not a GraphQL request, an empty query, or a query no pattern knows
/// (the caller refuses those).
pub fn match_graphql(body: &[u8]) -> Option<GraphqlMatch> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match_graphql_value(&value)
}

/// [`match_graphql`] on a parsed body.
pub fn match_graphql_value(body: &Value) -> Option<GraphqlMatch> {
    let request = GraphqlRequest::from_value(body)?;
    if request.query.is_empty() {
        return None;
    }
    let tool = COMPILED
        .iter()
        .find(|(pattern, _)| pattern.is_match(request.query))
        .map(|(_, tool)| *tool)?;
    let (owner, repo) = owner_repo(request.variables, request.query);
    let mut args = Map::new();
    if let Some(owner) = owner {
        args.insert("owner".to_owned(), Value::String(owner));
    }
    if let Some(repo) = repo {
        args.insert("repo".to_owned(), Value::String(repo));
    }
    if matches!(tool, "search_issues" | "search_code")
        && let Some(query) = search_query(request.query, request.variables)
    {
        args.insert("query".to_owned(), Value::String(query));
    }
    Some(GraphqlMatch { tool, args })
}

fn string_var(variables: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    match variables?.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// Owner and repository: the `owner` and `name` (else `repo`) variables,
/// else `repository(owner: "…", name: "…")` in the query, else JSON-like
/// `"owner": "…"` / `"name": "…"` text inlined in the query.
fn owner_repo(
    variables: Option<&Map<String, Value>>,
    query: &str,
) -> (Option<String>, Option<String>) {
    let mut owner = string_var(variables, "owner");
    let mut repo = string_var(variables, "name").or_else(|| string_var(variables, "repo"));
    if (owner.is_none() || repo.is_none())
        && let Some(captures) = QUERY_REPO.captures(query)
    {
        if owner.is_none() {
            owner = captures.get(1).map(|m| m.as_str().to_owned());
        }
        if repo.is_none() {
            repo = captures.get(2).map(|m| m.as_str().to_owned());
        }
    }
    if owner.is_none() {
        owner = VAR_OWNER
            .captures(query)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned());
    }
    if repo.is_none() {
        repo = VAR_REPO
            .captures(query)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned());
    }
    (owner, repo)
}

/// The search text of a `search(...)` query: the `query` variable, else an
/// inline `search(query: "…")` literal.
fn search_query(query: &str, variables: Option<&Map<String, Value>>) -> Option<String> {
    string_var(variables, "query").or_else(|| {
        SEARCH_QUERY_ARG
            .captures(query)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned())
    })
}

/// Whether a request path is the GraphQL endpoint: `/graphql`,
/// `/api/graphql` (`gh` with a `GH_HOST`) or `/api/v3/graphql`, with or
/// without a trailing slash.
pub fn is_graphql_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    matches!(path, "/graphql" | "/api/v3/graphql" | "/api/graphql")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_of(body: &str) -> Option<&'static str> {
        match_graphql(body.as_bytes()).map(|m| m.tool)
    }

    #[test]
    fn sixteen_patterns() {
        assert_eq!(pattern_count(), 16);
    }

    #[test]
    fn queries_map_to_tools() {
        let cases = [
            (
                r#"{"query":"query { repository(owner: \"octocat\", name: \"hello-world\") { issues(first: 10) { nodes { title } } } }"}"#,
                "list_issues",
            ),
            (
                r#"{"query":"query { repository(owner: \"octocat\", name: \"hello-world\") { issue(number: 1) { title body } } }"}"#,
                "issue_read",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { pullRequests(first: 10) { nodes { title } } } }"}"#,
                "list_pull_requests",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { pullRequest(number: 1) { title } } }"}"#,
                "pull_request_read",
            ),
            (
                r#"{"query":"query { search(query: \"is:issue\", type: ISSUE, first: 10) { nodes { ... on Issue { title } } } }"}"#,
                "search_issues",
            ),
            (
                r#"{"query":"query { organization(login: \"github\") { projectV2(number: 1) { title items { nodes { content { ... on Issue { title } } } } } } }"}"#,
                "list_projects",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { description stargazerCount defaultBranchRef { name } } }"}"#,
                "get_file_contents",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { discussions(first: 10) { nodes { title } } } }"}"#,
                "list_discussions",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { discussion(number: 1) { title body } } }"}"#,
                "list_discussions",
            ),
            (
                r#"{"query":"query { repository(owner: \"org\", name: \"repo\") { discussionCategories(first: 5) { nodes { name } } } }"}"#,
                "list_discussion_categories",
            ),
            (
                r#"{"query":"query { repository(owner: \"o\", name: \"r\") { defaultBranchRef { target { ... on Commit { history(first: 5) { nodes { oid } } } } } } }"}"#,
                "list_commits",
            ),
            (
                r#"{"query":"query { viewer { login name email } }"}"#,
                "get_me",
            ),
            (
                r#"{"query":"query { organization(login: \"github\") { name } }"}"#,
                "search_orgs",
            ),
            (
                r#"{"query":"query Issue_fields{Issue: __type(name: \"Issue\"){fields(includeDeprecated: true){name}}}"}"#,
                INTROSPECTION_TOOL,
            ),
            (
                r#"{"query":"query { __schema { types { name } } }"}"#,
                INTROSPECTION_TOOL,
            ),
        ];
        for (body, tool) in cases {
            assert_eq!(tool_of(body), Some(tool), "{body}");
        }
    }

    #[test]
    fn gh_issue_view_is_an_issue_read() {
        let body = r#"{"query":"query IssueByNumber($owner: String!, $repo: String!, $number: Int!) { repository(owner: $owner, name: $repo) { hasIssuesEnabled issue: issueOrPullRequest(number: $number) { __typename ...on Issue{number,title,author{login}} } } }","variables":{"owner":"o","repo":"r","number":4}}"#;
        let matched = match_graphql(body.as_bytes()).unwrap();
        assert_eq!(matched.tool, "issue_read");
        assert_eq!((matched.owner(), matched.repo()), (Some("o"), Some("r")));
    }

    #[test]
    fn unusable_bodies_have_no_tool() {
        for body in [
            r#"{"query":""}"#,
            "not json",
            r#"{"query":"{ completelyUnrecognisedOperation { field } }"}"#,
            r#"{"query": 7}"#,
            r#"{"query":"{ viewer { login } }", "variables": [1]}"#,
            "[]",
        ] {
            assert_eq!(tool_of(body), None, "{body}");
        }
    }

    #[test]
    fn owner_and_repo_come_from_variables_then_the_query() {
        let cases = [
            (
                r#"{"query":"query { repository(owner: \"github\", name: \"copilot\") { issues { nodes { title } } } }"}"#,
                "github",
                "copilot",
            ),
            (
                r#"{"query":"query($owner: String!, $name: String!) { repository(owner: $owner, name: $name) { issues { nodes { title } } } }","variables":{"owner":"github","name":"copilot"}}"#,
                "github",
                "copilot",
            ),
            (
                r#"{"query":"query { repository(owner: $owner, name: $name) { issues { nodes { title } } } }","variables":{"owner":"org","repo":"myrepo"}}"#,
                "org",
                "myrepo",
            ),
        ];
        for (body, owner, repo) in cases {
            let matched = match_graphql(body.as_bytes()).unwrap();
            assert_eq!(matched.owner(), Some(owner), "{body}");
            assert_eq!(matched.repo(), Some(repo), "{body}");
        }
    }

    #[test]
    fn search_query_argument() {
        let inline = match_graphql(br#"{"query":"query { search(query:\"repo:github/gh-aw-mcpg is:issue\", type:ISSUE, first:3) { issueCount nodes { ... on Issue { number } } } }"}"#).unwrap();
        assert_eq!(
            inline.args["query"],
            json!("repo:github/gh-aw-mcpg is:issue")
        );
        let variable = match_graphql(br#"{"query":"query($q: String!) { search(query: $q, type:ISSUE, first:3) { issueCount } }","variables":{"query":"repo:org/repo is:pr"}}"#).unwrap();
        assert_eq!(variable.args["query"], json!("repo:org/repo is:pr"));
        let none = match_graphql(br#"{"query":"query { repository(owner:\"github\", name:\"copilot\") { issues { nodes { title } } } }"}"#).unwrap();
        assert!(!none.args.contains_key("query"));
    }

    #[test]
    fn graphql_paths() {
        for path in [
            "/graphql",
            "/graphql/",
            "/api/v3/graphql",
            "/api/v3/graphql/",
            "/api/graphql",
            "/api/graphql/",
        ] {
            assert!(is_graphql_path(path), "{path}");
        }
        for path in ["/repos/org/repo", "/user", "/graphqlx"] {
            assert!(!is_graphql_path(path), "{path}");
        }
    }
}
