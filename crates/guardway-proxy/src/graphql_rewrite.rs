//! Rewriting GraphQL queries so the guard can label what comes back:
//! `author{login}` and `authorAssociation` are added to issue and pull
//! request selections, `author{user{login}}` to commit history, unless the
//! query already selects them. Injection goes into the named fragment the
//! `nodes` spread, else into inline fragments, else into `nodes { … }`
//! blocks of connections whose node type has those fields.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// A field the guard needs and how to see it is already selected.
struct GuardField {
    text: &'static str,
    present: &'static LazyLock<Regex>,
}

fn compile(pattern: &str) -> Regex {
    // Constant patterns: a bad one fails every test.
    Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
}

static AUTHOR_LOGIN: LazyLock<Regex> = LazyLock::new(|| compile(r"\bauthor\s*\{[^}]*\blogin\b"));
static AUTHOR_ASSOCIATION: LazyLock<Regex> = LazyLock::new(|| compile(r"\bauthorAssociation\b"));
static COMMIT_AUTHOR_LOGIN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\bauthor\s*\{[^}]*\buser\s*\{[^}]*\blogin\b"));
static FRAGMENT_IN_NODES: LazyLock<Regex> =
    LazyLock::new(|| compile(r"nodes\s*\{\s*\.\.\.([0-9A-Za-z_]+)"));
static INLINE_FRAGMENT_IN_NODES: LazyLock<Regex> =
    LazyLock::new(|| compile(r"nodes\s*\{[^{}]*\.\.\.\s*on\s+[0-9A-Za-z_]+\s*\{"));
static INLINE_FRAGMENT_OPEN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(\.\.\.\s*on\s+[0-9A-Za-z_]+\s*\{)"));
static NODES_OPEN: LazyLock<Regex> = LazyLock::new(|| compile(r"nodes\s*\{"));

/// Issue, pull request and comment-like types.
const ISSUE_AND_PR_FIELDS: &[GuardField] = &[
    GuardField {
        text: "author{login}",
        present: &AUTHOR_LOGIN,
    },
    GuardField {
        text: "authorAssociation",
        present: &AUTHOR_ASSOCIATION,
    },
];
/// Connections whose nodes implement `Comment` (author, authorAssociation).
const ISSUE_AND_PR_PARENTS: &[&str] = &["pullRequests", "issues", "comments", "reviews", "search"];

/// Commits have no `authorAssociation`.
const COMMIT_FIELDS: &[GuardField] = &[GuardField {
    text: "author{user{login}}",
    present: &COMMIT_AUTHOR_LOGIN,
}];
const COMMIT_PARENTS: &[&str] = &["history"];

fn fields_for_tool(tool: &str) -> Option<(&'static [GuardField], &'static [&'static str])> {
    match tool {
        "list_issues" | "list_pull_requests" | "issue_read" | "pull_request_read"
        | "search_issues" => Some((ISSUE_AND_PR_FIELDS, ISSUE_AND_PR_PARENTS)),
        "list_commits" => Some((COMMIT_FIELDS, COMMIT_PARENTS)),
        _ => None,
    }
}

/// The request body with the fields the guard needs for `tool` added to its
/// query; `None` when nothing is to change (no fields for the tool, fields
/// already selected, no place to inject, or a body that is not a GraphQL
/// request object). Members other than `query` are kept as they are.
pub fn inject_guard_fields(body: &Value, tool: &str) -> Option<Value> {
    let (fields, safe_parents) = fields_for_tool(tool)?;
    let query = body.get("query")?.as_str()?;
    let missing: Vec<&str> = fields
        .iter()
        .filter(|field| !field.present.is_match(query))
        .map(|field| field.text)
        .collect();
    if query.is_empty() || missing.is_empty() {
        return None;
    }
    let modified = inject_into_query(query, &missing.join(","), safe_parents);
    if modified == query {
        return None;
    }
    tracing::debug!(tool, fields = ?missing, "added guard fields to a GraphQL query");
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("query".to_owned(), Value::String(modified));
    }
    Some(body)
}

fn inject_into_query(query: &str, injection: &str, safe_parents: &[&str]) -> String {
    // 1. `nodes { ...Fragment }`: into the named fragment.
    if let Some(captures) = FRAGMENT_IN_NODES.captures(query)
        && let Some(name) = captures.get(1)
    {
        return inject_into_fragment(query, name.as_str(), injection);
    }
    // 2. Inline fragments under `nodes` (union and interface results such as
    //    search): into every inline fragment.
    if INLINE_FRAGMENT_IN_NODES.is_match(query) {
        return INLINE_FRAGMENT_OPEN
            .replace_all(query, |caps: &regex::Captures<'_>| {
                format!("{}{injection},", &caps[1])
            })
            .into_owned();
    }
    // 3. Directly into `nodes { … }` of connections whose nodes have the
    //    fields (not `assignees`, `labels`, …).
    let mut out = String::with_capacity(query.len() + injection.len() * 2);
    let mut position = 0;
    let mut injected = false;
    for found in NODES_OPEN.find_iter(query) {
        out.push_str(&query[position..found.end()]);
        if safe_parents.contains(&parent_field(query, found.start())) {
            out.push_str(injection);
            out.push(',');
            injected = true;
        }
        position = found.end();
    }
    out.push_str(&query[position..]);
    if injected { out } else { query.to_owned() }
}

/// The connection field enclosing the `nodes` block at `nodes_at`: the
/// field name before the enclosing `{`, skipping its `(arguments)`.
fn parent_field(query: &str, nodes_at: usize) -> &str {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut brace = None;
    for i in (0..nodes_at).rev() {
        match bytes[i] {
            b'{' if depth == 0 => {
                brace = Some(i);
                break;
            }
            b'{' => depth -= 1,
            b'}' => depth += 1,
            _ => {}
        }
    }
    let Some(brace) = brace else { return "" };
    let mut end = brace;
    let skip_space = |mut at: usize| {
        while at > 0 && bytes[at - 1].is_ascii_whitespace() {
            at -= 1;
        }
        at
    };
    end = skip_space(end);
    if end > 0 && bytes[end - 1] == b')' {
        let mut parens = 1usize;
        end -= 1;
        while end > 0 && parens > 0 {
            match bytes[end - 1] {
                b')' => parens += 1,
                b'(' => parens -= 1,
                _ => {}
            }
            end -= 1;
        }
        end = skip_space(end);
    }
    let mut start = end;
    while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
        start -= 1;
    }
    &query[start..end]
}

/// Adds `field` at the end of `fragment NAME on Type { … }`.
fn inject_into_fragment(query: &str, name: &str, field: &str) -> String {
    let prefix = format!("fragment {name} on ");
    let Some(at) = query.find(&prefix) else {
        return query.to_owned();
    };
    let Some(open) = query[at..].find('{').map(|offset| at + offset) else {
        return query.to_owned();
    };
    let mut depth = 0usize;
    for (offset, byte) in query.as_bytes()[open..].iter().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    let close = open + offset;
                    return format!("{},{field}{}", &query[..close], &query[close..]);
                }
            }
            _ => {}
        }
    }
    query.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rewritten(query: &str, tool: &str) -> Option<String> {
        inject_guard_fields(&json!({"query": query, "variables": {"a": 1}}), tool).map(|body| {
            assert_eq!(body["variables"], json!({"a": 1}));
            body["query"].as_str().unwrap().to_owned()
        })
    }

    #[test]
    fn injects_into_issue_nodes() {
        let query = "{ repository(owner:\"o\",name:\"r\") { issues(first: 5) { nodes { number title } } } }";
        assert_eq!(
            rewritten(query, "list_issues").unwrap(),
            "{ repository(owner:\"o\",name:\"r\") { issues(first: 5) { nodes {author{login},authorAssociation, number title } } } }"
        );
    }

    #[test]
    fn only_missing_fields_are_added() {
        let query = "{ repository(owner:\"o\",name:\"r\") { issues { nodes { number author { login } } } } }";
        let out = rewritten(query, "list_issues").unwrap();
        assert!(out.contains("nodes {authorAssociation, number"), "{out}");
        let complete = "{ repository(owner:\"o\",name:\"r\") { issues { nodes { author { login } authorAssociation } } } }";
        assert_eq!(rewritten(complete, "list_issues"), None);
    }

    #[test]
    fn skips_nodes_of_other_types() {
        let query = "{ repository(owner:\"o\",name:\"r\") { issues(first: 1) { nodes { number assignees(first: 3) { nodes { login } } labels(first: 3) { nodes { name } } } } } }";
        let out = rewritten(query, "list_issues").unwrap();
        assert_eq!(out.matches("authorAssociation").count(), 1, "{out}");
        assert!(out.contains("issues(first: 1) { nodes {author{login},authorAssociation,"));
        assert!(out.contains("assignees(first: 3) { nodes { login }"));
    }

    #[test]
    fn no_safe_parent_means_no_change() {
        let query = "{ repository(owner:\"o\",name:\"r\") { labels { nodes { name } } issues { totalCount } } }";
        assert_eq!(rewritten(query, "list_issues"), None);
    }

    #[test]
    fn injects_into_the_named_fragment() {
        let query = "query { repository(owner:\"o\",name:\"r\") { issues(first: 3) { nodes { ...issue } } } } fragment issue on Issue { number title labels(first: 1) { nodes { name } } }";
        let out = rewritten(query, "list_issues").unwrap();
        assert!(
            out.ends_with("labels(first: 1) { nodes { name } } ,author{login},authorAssociation}"),
            "{out}"
        );
    }

    #[test]
    fn injects_into_inline_fragments() {
        let query = "{ search(query: \"repo:o/r\", type: ISSUE, first: 3) { nodes { ... on Issue { number } ... on PullRequest { number } } } }";
        let out = rewritten(query, "search_issues").unwrap();
        assert!(
            out.contains("... on Issue {author{login},authorAssociation, number }"),
            "{out}"
        );
        assert!(out.contains("... on PullRequest {author{login},authorAssociation, number }"));
    }

    #[test]
    fn commit_history_gets_author_user_login() {
        let query = "{ repository(owner:\"o\",name:\"r\") { defaultBranchRef { target { ... on Commit { history(first: 2) { nodes { oid } } } } } } }";
        // The inline fragment `... on Commit {` is not directly under
        // `nodes`, so the history's `nodes` block gets the fields.
        let out = rewritten(query, "list_commits").unwrap();
        assert!(
            out.contains("history(first: 2) { nodes {author{user{login}}, oid }"),
            "{out}"
        );
    }

    #[test]
    fn other_tools_and_bodies_are_left_alone() {
        assert_eq!(rewritten("{ viewer { login } }", "get_me"), None);
        assert_eq!(
            inject_guard_fields(&json!({"query": 5}), "list_issues"),
            None
        );
        assert_eq!(inject_guard_fields(&json!([]), "list_issues"), None);
        assert_eq!(rewritten("", "list_issues"), None);
    }

    #[test]
    fn parent_field_skips_arguments_and_space() {
        let query = "issues ( first: 3, after: \"x(y)\" )\n { nodes { id } }";
        let at = query.find("nodes").unwrap();
        assert_eq!(parent_field(query, at), "issues");
        assert_eq!(parent_field("nodes { id }", 0), "");
    }
}
