//! The tool table (names, descriptions and input schemas of the GitHub MCP
//! server's tools) and each tool's behaviour over the demo data set.

use serde_json::{Map, Value, json};

use crate::data::{DemoData, Issue, VIEWER, association};

/// One tool of the table.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub read_only: bool,
    pub input_schema: Value,
}

/// What a successful call returns.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutput {
    /// JSON serialised into one text content block.
    Json(Value),
    /// Plain text (a diff).
    Text(String),
    /// A file: a text block with a message and an embedded text resource.
    File {
        message: String,
        uri: String,
        mime_type: String,
        text: String,
    },
}

/// A failed call: its message becomes an `isError` result.
pub type ToolResult = Result<ToolOutput, String>;

fn schema(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn owner_repo() -> Value {
    json!({
        "owner": {"type": "string", "description": "Repository owner"},
        "repo": {"type": "string", "description": "Repository name"},
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            base.insert(key.clone(), value.clone());
        }
    }
    base
}

/// `owner` and `repo` with `extra` properties.
fn repo_props(extra: Value) -> Value {
    with(owner_repo(), extra)
}

/// `owner` and `repo` with `extra` properties and the paging ones.
fn repo_paged(extra: Value) -> Value {
    with(repo_props(extra), paging())
}

fn paging() -> Value {
    json!({
        "page": {"type": "number", "description": "Page number for pagination (min 1)", "minimum": 1},
        "perPage": {"type": "number", "description": "Results per page for pagination (min 1, max 100)", "minimum": 1, "maximum": 100},
    })
}

/// The tool table, in listing order.
pub fn specs() -> Vec<ToolSpec> {
    let search = |what: &'static str| {
        with(
            json!({
                "query": {"type": "string", "description": what},
                "sort": {"type": "string", "description": "Sort field"},
                "order": {"type": "string", "enum": ["asc", "desc"], "description": "Sort order"},
            }),
            paging(),
        )
    };
    vec![
        ToolSpec {
            name: "issue_read",
            description: "Get information about a specific issue in a GitHub repository.",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "method": {"type": "string", "enum": ["get", "get_comments", "get_sub_issues", "get_labels"],
                               "description": "The read operation to perform on a single issue."},
                    "issue_number": {"type": "number", "description": "The number of the issue"},
                })),
                &["method", "owner", "repo", "issue_number"],
            ),
        },
        ToolSpec {
            name: "list_issues",
            description: "List issues in a GitHub repository. For pagination, use the 'endCursor' from the previous response's 'pageInfo' in the 'after' parameter.",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "state": {"type": "string", "enum": ["OPEN", "CLOSED"], "description": "Filter by state, by default both open and closed issues are returned when not provided"},
                    "labels": {"type": "array", "items": {"type": "string"}, "description": "Filter by labels"},
                    "orderBy": {"type": "string", "enum": ["CREATED_AT", "UPDATED_AT", "COMMENTS"], "description": "Order issues by field"},
                    "direction": {"type": "string", "enum": ["ASC", "DESC"], "description": "Order direction"},
                    "since": {"type": "string", "description": "Filter by date (ISO 8601 timestamp)"},
                    "after": {"type": "string", "description": "Cursor for pagination"},
                })),
                &["owner", "repo"],
            ),
        },
        ToolSpec {
            name: "search_issues",
            description: "Search for issues in GitHub repositories using issues search syntax already scoped to is:issue",
            read_only: true,
            input_schema: schema(
                search("Search query using GitHub issues search syntax"),
                &["query"],
            ),
        },
        ToolSpec {
            name: "search_pull_requests",
            description: "Search for pull requests in GitHub repositories using issues search syntax already scoped to is:pr",
            read_only: true,
            input_schema: schema(
                search("Search query using GitHub pull request search syntax"),
                &["query"],
            ),
        },
        ToolSpec {
            name: "pull_request_read",
            description: "Get information on a specific pull request in GitHub repository.",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "method": {"type": "string", "enum": ["get", "get_diff", "get_status", "get_files", "get_review_comments", "get_reviews", "get_comments"],
                               "description": "Action to specify what pull request data needs to be retrieved from GitHub."},
                    "pullNumber": {"type": "number", "description": "Pull request number"},
                })),
                &["method", "owner", "repo", "pullNumber"],
            ),
        },
        ToolSpec {
            name: "list_pull_requests",
            description: "List pull requests in a GitHub repository.",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "state": {"type": "string", "enum": ["open", "closed", "all"], "description": "Filter by state"},
                    "head": {"type": "string", "description": "Filter by head user/org and branch"},
                    "base": {"type": "string", "description": "Filter by base branch"},
                    "sort": {"type": "string", "enum": ["created", "updated", "popularity", "long-running"], "description": "Sort by"},
                    "direction": {"type": "string", "enum": ["asc", "desc"], "description": "Sort direction"},
                })),
                &["owner", "repo"],
            ),
        },
        ToolSpec {
            name: "get_file_contents",
            description: "Get the contents of a file or directory from a GitHub repository",
            read_only: true,
            input_schema: schema(
                repo_props(json!({
                    "path": {"type": "string", "description": "Path to file/directory", "default": "/"},
                    "ref": {"type": "string", "description": "Accepts optional git refs such as `refs/tags/{tag}`, `refs/heads/{branch}` or `refs/pull/{pr_number}/head`"},
                    "sha": {"type": "string", "description": "Accepts optional commit SHA. If specified, it will be used instead of ref"},
                })),
                &["owner", "repo"],
            ),
        },
        ToolSpec {
            name: "list_commits",
            description: "Get list of commits of a branch in a GitHub repository.",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "sha": {"type": "string", "description": "Commit SHA, branch or tag name to list commits of. If not provided, uses the default branch of the repository."},
                    "author": {"type": "string", "description": "Author username or email address to filter commits by"},
                })),
                &["owner", "repo"],
            ),
        },
        ToolSpec {
            name: "get_commit",
            description: "Get details for a commit from a GitHub repository",
            read_only: true,
            input_schema: schema(
                repo_paged(json!({
                    "sha": {"type": "string", "description": "Commit SHA, branch name, or tag name"},
                    "include_diff": {"type": "boolean", "description": "Whether to include file diffs and stats in the response", "default": true},
                })),
                &["owner", "repo", "sha"],
            ),
        },
        ToolSpec {
            name: "search_repositories",
            description: "Find GitHub repositories by name, description, readme, topics, or other metadata.",
            read_only: true,
            input_schema: schema(
                with(
                    search("Repository search query"),
                    json!({
                        "minimal_output": {"type": "boolean", "description": "Return minimal repository information", "default": true},
                    }),
                ),
                &["query"],
            ),
        },
        ToolSpec {
            name: "search_code",
            description: "Fast and precise code search across ALL GitHub repositories using GitHub's native search engine.",
            read_only: true,
            input_schema: schema(
                search("Search query using GitHub's powerful code search syntax"),
                &["query"],
            ),
        },
        ToolSpec {
            name: "create_issue",
            description: "Create a new issue in a GitHub repository.",
            read_only: false,
            input_schema: schema(
                repo_props(json!({
                    "title": {"type": "string", "description": "Issue title"},
                    "body": {"type": "string", "description": "Issue body content"},
                    "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels to apply to this issue"},
                    "assignees": {"type": "array", "items": {"type": "string"}, "description": "Usernames to assign to this issue"},
                })),
                &["owner", "repo", "title"],
            ),
        },
        ToolSpec {
            name: "issue_write",
            description: "Create a new or update an existing issue in a GitHub repository.",
            read_only: false,
            input_schema: schema(
                repo_props(json!({
                    "method": {"type": "string", "enum": ["create", "update"], "description": "Write operation to perform on a single issue."},
                    "issue_number": {"type": "number", "description": "Issue number to update"},
                    "title": {"type": "string", "description": "Issue title"},
                    "body": {"type": "string", "description": "Issue body content"},
                    "state": {"type": "string", "enum": ["open", "closed"], "description": "New state"},
                    "labels": {"type": "array", "items": {"type": "string"}, "description": "Labels to apply to this issue"},
                })),
                &["method", "owner", "repo"],
            ),
        },
        ToolSpec {
            name: "add_issue_comment",
            description: "Add a comment to a specific issue in a GitHub repository.",
            read_only: false,
            input_schema: schema(
                repo_props(json!({
                    "issue_number": {"type": "number", "description": "Issue number to comment on"},
                    "body": {"type": "string", "description": "Comment content"},
                })),
                &["owner", "repo", "issue_number", "body"],
            ),
        },
    ]
}

// ---- argument helpers ----

type Args = Map<String, Value>;

fn opt_str<'a>(args: &'a Args, name: &str) -> Result<Option<&'a str>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("parameter {name} is not of type string")),
    }
}

fn req_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, String> {
    match opt_str(args, name)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(format!("missing required parameter: {name}")),
    }
}

fn opt_num(args: &Args, name: &str) -> Result<Option<u64>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| format!("parameter {name} is not a non-negative integer")),
        Some(_) => Err(format!("parameter {name} is not of type number")),
    }
}

fn req_num(args: &Args, name: &str) -> Result<u64, String> {
    opt_num(args, name)?.ok_or_else(|| format!("missing required parameter: {name}"))
}

fn opt_bool(args: &Args, name: &str) -> Result<Option<bool>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(format!("parameter {name} is not of type boolean")),
    }
}

fn opt_strings(args: &Args, name: &str) -> Result<Vec<String>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("parameter {name} must be an array of strings"))
            })
            .collect(),
        Some(_) => Err(format!("parameter {name} is not of type array")),
    }
}

/// `page` (from 1) and `perPage` (1–100, default 30).
fn paging_args(args: &Args) -> Result<(usize, usize), String> {
    let page = opt_num(args, "page")?.unwrap_or(1);
    let per_page = opt_num(args, "perPage")?.unwrap_or(30);
    if page == 0 {
        return Err("page must be at least 1".to_owned());
    }
    if !(1..=100).contains(&per_page) {
        return Err("perPage must be between 1 and 100".to_owned());
    }
    Ok((page as usize, per_page as usize))
}

fn page_of<T: Clone>(items: &[T], page: usize, per_page: usize) -> Vec<T> {
    items
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .cloned()
        .collect()
}

fn not_found(what: &str, path: &str) -> String {
    format!("failed to get {what}: GET https://api.github.com/repos/{path}: 404 Not Found []")
}

fn repo_arg(data: &DemoData, args: &Args) -> Result<usize, String> {
    let owner = req_str(args, "owner")?;
    let repo = req_str(args, "repo")?;
    data.repo_index(owner, repo)
        .ok_or_else(|| not_found("repository", &format!("{owner}/{repo}")))
}

// ---- search queries ----

/// A parsed search query: qualifiers and free words.
#[derive(Debug, Default)]
struct Query {
    repo: Option<String>,
    owner: Option<String>,
    open: Option<bool>,
    is_pull: Option<bool>,
    private: Option<bool>,
    author: Option<String>,
    labels: Vec<String>,
    path: Option<String>,
    words: Vec<String>,
}

impl Query {
    fn parse(text: &str) -> Query {
        let mut query = Query::default();
        for term in text.split_whitespace() {
            let term = term.trim_matches('"');
            match term.split_once(':') {
                Some(("repo", value)) => query.repo = Some(value.to_ascii_lowercase()),
                Some(("org" | "user" | "owner", value)) => {
                    query.owner = Some(value.to_ascii_lowercase())
                }
                Some(("is" | "state", "open")) => query.open = Some(true),
                Some(("is" | "state", "closed")) => query.open = Some(false),
                Some(("is" | "type", "issue")) => query.is_pull = Some(false),
                Some(("is" | "type", "pr")) => query.is_pull = Some(true),
                Some(("is", "public")) => query.private = Some(false),
                Some(("is", "private")) => query.private = Some(true),
                Some(("author", value)) => query.author = Some(value.to_ascii_lowercase()),
                Some(("label", value)) => query.labels.push(value.to_ascii_lowercase()),
                Some(("path", value)) => query.path = Some(value.to_owned()),
                Some(_) => {} // other qualifiers are accepted and ignored
                None if !term.is_empty() => query.words.push(term.to_ascii_lowercase()),
                None => {}
            }
        }
        query
    }

    fn matches_repo(&self, data: &DemoData, repo: usize) -> bool {
        let r = &data.repos[repo];
        self.repo
            .as_ref()
            .is_none_or(|full| r.full_name().eq_ignore_ascii_case(full))
            && self
                .owner
                .as_ref()
                .is_none_or(|owner| r.owner.eq_ignore_ascii_case(owner))
            && self.private.is_none_or(|private| r.private == private)
    }

    fn matches_words(&self, haystacks: &[&str]) -> bool {
        self.words.iter().all(|word| {
            haystacks
                .iter()
                .any(|text| text.to_ascii_lowercase().contains(word.as_str()))
        })
    }

    fn matches_issue(&self, data: &DemoData, issue: &Issue) -> bool {
        self.matches_repo(data, issue.repo)
            && self.open.is_none_or(|open| issue.open == open)
            && self.is_pull.is_none_or(|pull| issue.pull.is_some() == pull)
            && self
                .author
                .as_ref()
                .is_none_or(|a| issue.author.eq_ignore_ascii_case(a))
            && self
                .labels
                .iter()
                .all(|l| issue.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
            && self.matches_words(&[&issue.title, &issue.body])
    }
}

fn search_result(total: usize, items: Vec<Value>) -> ToolOutput {
    ToolOutput::Json(json!({"total_count": total, "incomplete_results": false, "items": items}))
}

// ---- the tools ----

/// Runs tool `name`; `None` when there is no such tool.
pub fn call(data: &mut DemoData, name: &str, args: &Args) -> Option<ToolResult> {
    Some(match name {
        "issue_read" => issue_read(data, args),
        "list_issues" => list_issues(data, args),
        "search_issues" => search_issue_like(data, args, false),
        "search_pull_requests" => search_issue_like(data, args, true),
        "pull_request_read" => pull_request_read(data, args),
        "list_pull_requests" => list_pull_requests(data, args),
        "get_file_contents" => get_file_contents(data, args),
        "list_commits" => list_commits(data, args),
        "get_commit" => get_commit(data, args),
        "search_repositories" => search_repositories(data, args),
        "search_code" => search_code(data, args),
        "create_issue" => create_issue(data, args),
        "issue_write" => issue_write(data, args),
        "add_issue_comment" => add_issue_comment(data, args),
        _ => return None,
    })
}

/// One page of the comments on `issue`.
fn comments_page(data: &DemoData, issue: &Issue, page: usize, per_page: usize) -> ToolOutput {
    let comments: Vec<Value> = issue
        .comments
        .iter()
        .map(|c| data.comment_json(c, issue))
        .collect();
    ToolOutput::Json(Value::Array(page_of(&comments, page, per_page)))
}

fn issue_read(data: &DemoData, args: &Args) -> ToolResult {
    let method = req_str(args, "method")?;
    let repo = repo_arg(data, args)?;
    let number = req_num(args, "issue_number")?;
    let full = data.repos[repo].full_name();
    let issue = data
        .issue(repo, number)
        .ok_or_else(|| not_found("issue", &format!("{full}/issues/{number}")))?;
    match method {
        "get" => Ok(ToolOutput::Json(data.issue_json(issue))),
        "get_comments" => {
            let (page, per_page) = paging_args(args)?;
            Ok(comments_page(data, issue, page, per_page))
        }
        "get_sub_issues" => Ok(ToolOutput::Json(json!([]))),
        "get_labels" => Ok(ToolOutput::Json(json!({
            "labels": data.issue_json(issue)["labels"], "totalCount": issue.labels.len()}))),
        other => Err(format!("unknown method: {other}")),
    }
}

fn list_issues(data: &DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let state = opt_str(args, "state")?.map(str::to_ascii_uppercase);
    let labels = opt_strings(args, "labels")?;
    let ascending = opt_str(args, "direction")?.is_some_and(|d| d.eq_ignore_ascii_case("asc"));
    let (mut page, per_page) = paging_args(args)?;
    if let Some(after) = opt_str(args, "after")? {
        let offset: usize = after
            .strip_prefix("cursor:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("invalid cursor: {after}"))?;
        if !offset.is_multiple_of(per_page) {
            return Err(format!(
                "cursor {after} does not start a page of {per_page}"
            ));
        }
        page = offset / per_page + 1;
    }
    let mut issues: Vec<&Issue> = data
        .issues
        .iter()
        .filter(|i| i.repo == repo && i.pull.is_none())
        .filter(|i| match state.as_deref() {
            Some("OPEN") => i.open,
            Some("CLOSED") => !i.open,
            _ => true,
        })
        .filter(|i| {
            labels
                .iter()
                .all(|l| i.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
        })
        .collect();
    issues.sort_by_key(|i| i.hour);
    if !ascending {
        issues.reverse();
    }
    let total = issues.len();
    let start = (page - 1) * per_page;
    let items: Vec<Value> = page_of(&issues, page, per_page)
        .into_iter()
        .map(|i| data.issue_json(i))
        .collect();
    let end = start + items.len();
    Ok(ToolOutput::Json(json!({
        "issues": items,
        "pageInfo": {
            "hasNextPage": end < total,
            "hasPreviousPage": page > 1,
            "startCursor": format!("cursor:{start}"),
            "endCursor": format!("cursor:{end}"),
        },
        "totalCount": total,
    })))
}

fn search_issue_like(data: &DemoData, args: &Args, pulls: bool) -> ToolResult {
    let mut query = Query::parse(req_str(args, "query")?);
    query.is_pull = Some(pulls);
    let (page, per_page) = paging_args(args)?;
    let ascending = opt_str(args, "order")?.is_some_and(|o| o == "asc");
    let mut found: Vec<&Issue> = data
        .issues
        .iter()
        .filter(|i| query.matches_issue(data, i))
        .collect();
    found.sort_by_key(|i| (i.hour, i.repo));
    if !ascending {
        found.reverse();
    }
    let items = page_of(&found, page, per_page)
        .into_iter()
        .map(|i| data.issue_json(i))
        .collect();
    Ok(search_result(found.len(), items))
}

fn pull_request_read(data: &DemoData, args: &Args) -> ToolResult {
    let method = req_str(args, "method")?;
    let repo = repo_arg(data, args)?;
    let number = req_num(args, "pullNumber")?;
    let full = data.repos[repo].full_name();
    let issue = data
        .issue(repo, number)
        .filter(|i| i.pull.is_some())
        .ok_or_else(|| not_found("pull request", &format!("{full}/pulls/{number}")))?;
    let Some(pull) = &issue.pull else {
        return Err(not_found("pull request", &format!("{full}/pulls/{number}")));
    };
    let (page, per_page) = paging_args(args)?;
    match method {
        "get" => Ok(ToolOutput::Json(data.pull_json(issue))),
        "get_diff" => Ok(ToolOutput::Text(
            pull.files
                .iter()
                .map(|f| {
                    format!(
                        "diff --git a/{0} b/{0}\n--- a/{0}\n+++ b/{0}\n{1}",
                        f.filename, f.patch
                    )
                })
                .collect(),
        )),
        "get_status" => Ok(ToolOutput::Json(json!({
            "state": if pull.merged { "success" } else { "pending" },
            "sha": data.pull_json(issue)["head"]["sha"],
            "total_count": 1,
            "statuses": [{"context": "ci/demo", "state": if pull.merged { "success" } else { "pending" }}],
        }))),
        "get_files" => {
            let files: Vec<Value> = pull
                .files
                .iter()
                .map(|f| json!({"filename": f.filename, "status": "added", "additions": f.additions, "deletions": f.deletions, "changes": f.additions + f.deletions, "patch": f.patch}))
                .collect();
            Ok(ToolOutput::Json(Value::Array(page_of(
                &files, page, per_page,
            ))))
        }
        "get_comments" | "get_review_comments" => Ok(comments_page(data, issue, page, per_page)),
        "get_reviews" => {
            let owner = &data.repos[repo].owner;
            Ok(ToolOutput::Json(json!([{
                "id": issue.id + 7,
                "user": DemoData::user_json("carol"),
                "author_association": association("carol", owner),
                "state": if pull.merged { "APPROVED" } else { "COMMENTED" },
                "body": "Looks reasonable.",
            }])))
        }
        other => Err(format!("unknown method: {other}")),
    }
}

fn list_pull_requests(data: &DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let state = opt_str(args, "state")?.unwrap_or("open");
    let (page, per_page) = paging_args(args)?;
    let ascending = opt_str(args, "direction")?.is_some_and(|d| d == "asc");
    let mut pulls: Vec<&Issue> = data
        .issues
        .iter()
        .filter(|i| i.repo == repo && i.pull.is_some())
        .filter(|i| match state {
            "open" => i.open,
            "closed" => !i.open,
            _ => true,
        })
        .collect();
    pulls.sort_by_key(|i| i.hour);
    if !ascending {
        pulls.reverse();
    }
    let items = page_of(&pulls, page, per_page)
        .into_iter()
        .map(|i| data.pull_json(i))
        .collect();
    Ok(ToolOutput::Json(Value::Array(items)))
}

/// The branch a ref names, if it exists (`main`, `feature/experiment`).
fn resolve_ref(reference: Option<&str>) -> Option<&str> {
    let reference = reference.unwrap_or("main");
    let reference = reference.strip_prefix("refs/heads/").unwrap_or(reference);
    match reference {
        "" | "main" | "HEAD" => Some("main"),
        "feature/experiment" => Some("feature/experiment"),
        _ => None,
    }
}

fn get_file_contents(data: &DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let full = data.repos[repo].full_name();
    let reference = opt_str(args, "sha")?.or(opt_str(args, "ref")?);
    let branch = match reference {
        Some(sha)
            if sha.len() >= 7
                && data
                    .commits
                    .iter()
                    .any(|c| c.repo == repo && c.sha.starts_with(sha)) =>
        {
            sha.to_owned()
        }
        other => resolve_ref(other)
            .ok_or_else(|| format!("failed to resolve git reference: {}", other.unwrap_or("")))?
            .to_owned(),
    };
    let path = opt_str(args, "path")?.unwrap_or("/").trim_matches('/');
    if let Some(file) = data.files.iter().find(|f| f.repo == repo && f.path == path) {
        let entry = data.content_entry_json(repo, path, false, file.content.len());
        let mime_type = if path.ends_with(".json") {
            "application/json"
        } else if path.ends_with(".md") {
            "text/markdown"
        } else {
            "text/plain"
        };
        return Ok(ToolOutput::File {
            message: format!(
                "successfully downloaded text file (SHA: {})",
                entry["sha"].as_str().unwrap_or("")
            ),
            uri: format!("repo://{full}/refs/heads/{branch}/contents/{path}"),
            mime_type: mime_type.to_owned(),
            text: file.content.clone(),
        });
    }
    // A directory: the entries directly under `path`.
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut entries: Vec<(String, bool, usize)> = Vec::new();
    for file in data.files.iter().filter(|f| f.repo == repo) {
        let Some(rest) = file.path.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let (entry, is_dir, size) = match rest.split_once('/') {
            Some((dir, _)) => (format!("{prefix}{dir}"), true, 0),
            None => (file.path.clone(), false, file.content.len()),
        };
        if !entries.iter().any(|(p, _, _)| *p == entry) {
            entries.push((entry, is_dir, size));
        }
    }
    if entries.is_empty() {
        return Err(format!(
            "failed to get file contents: path {path:?} not found in {full}"
        ));
    }
    entries.sort();
    Ok(ToolOutput::Json(
        entries
            .iter()
            .map(|(p, is_dir, size)| data.content_entry_json(repo, p, *is_dir, *size))
            .collect(),
    ))
}

fn list_commits(data: &DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let branch = resolve_ref(opt_str(args, "sha")?).ok_or_else(|| {
        format!(
            "failed to list commits: unknown ref {}",
            opt_str(args, "sha").ok().flatten().unwrap_or("")
        )
    })?;
    let author = opt_str(args, "author")?;
    let (page, per_page) = paging_args(args)?;
    let mut commits: Vec<_> = data
        .commits
        .iter()
        .filter(|c| c.repo == repo && (c.branch == "main" || c.branch == branch))
        .filter(|c| author.is_none_or(|a| c.author.eq_ignore_ascii_case(a)))
        .collect();
    commits.sort_by_key(|c| std::cmp::Reverse(c.hour));
    let items = page_of(&commits, page, per_page)
        .into_iter()
        .map(|c| data.commit_json(c, false))
        .collect();
    Ok(ToolOutput::Json(Value::Array(items)))
}

fn get_commit(data: &DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let wanted = req_str(args, "sha")?;
    let include_diff = opt_bool(args, "include_diff")?.unwrap_or(true);
    let full = data.repos[repo].full_name();
    let commit = match resolve_ref(Some(wanted)) {
        Some(branch) => data
            .commits
            .iter()
            .filter(|c| c.repo == repo && c.branch == branch)
            .max_by_key(|c| c.hour),
        None if wanted.len() >= 7 => data
            .commits
            .iter()
            .find(|c| c.repo == repo && c.sha.starts_with(wanted)),
        None => None,
    }
    .ok_or_else(|| not_found("commit", &format!("{full}/commits/{wanted}")))?;
    Ok(ToolOutput::Json(data.commit_json(commit, include_diff)))
}

fn search_repositories(data: &DemoData, args: &Args) -> ToolResult {
    let query = Query::parse(req_str(args, "query")?);
    let (page, per_page) = paging_args(args)?;
    let found: Vec<usize> = (0..data.repos.len())
        .filter(|&r| {
            query.matches_repo(data, r)
                && query.matches_words(&[&data.repos[r].full_name(), &data.repos[r].description])
        })
        .collect();
    let items = page_of(&found, page, per_page)
        .into_iter()
        .map(|r| data.repo_json(r))
        .collect();
    Ok(search_result(found.len(), items))
}

fn search_code(data: &DemoData, args: &Args) -> ToolResult {
    let query = Query::parse(req_str(args, "query")?);
    let (page, per_page) = paging_args(args)?;
    let found: Vec<_> = data
        .files
        .iter()
        .filter(|f| {
            query.matches_repo(data, f.repo)
                && query
                    .path
                    .as_ref()
                    .is_none_or(|p| f.path.starts_with(p.trim_matches('/')))
                && query.matches_words(&[&f.path, &f.content])
        })
        .collect();
    let items = page_of(&found, page, per_page)
        .into_iter()
        .map(|f| {
            let entry = data.content_entry_json(f.repo, &f.path, false, f.content.len());
            let repo = data.repo_json(f.repo);
            json!({
                "name": entry["name"],
                "path": f.path,
                "sha": entry["sha"],
                "url": entry["url"],
                "html_url": entry["html_url"],
                "repository": {
                    "id": repo["id"], "name": repo["name"], "full_name": repo["full_name"],
                    "private": repo["private"], "owner": repo["owner"], "html_url": repo["html_url"],
                    "description": repo["description"], "fork": false,
                },
                "score": 1.0,
            })
        })
        .collect();
    Ok(search_result(found.len(), items))
}

fn create_issue(data: &mut DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let title = req_str(args, "title")?.to_owned();
    let body = opt_str(args, "body")?.unwrap_or("").to_owned();
    let labels = opt_strings(args, "labels")?;
    let issue = data.create_issue(repo, title, body, labels).clone();
    Ok(ToolOutput::Json(data.issue_json(&issue)))
}

fn issue_write(data: &mut DemoData, args: &Args) -> ToolResult {
    match req_str(args, "method")? {
        "create" => create_issue(data, args),
        "update" => {
            let repo = repo_arg(data, args)?;
            let number = req_num(args, "issue_number")?;
            let full = data.repos[repo].full_name();
            let title = opt_str(args, "title")?.map(str::to_owned);
            let body = opt_str(args, "body")?.map(str::to_owned);
            let state = opt_str(args, "state")?.map(str::to_owned);
            let labels = args
                .contains_key("labels")
                .then(|| opt_strings(args, "labels"))
                .transpose()?;
            let issue = data
                .issue_mut(repo, number)
                .ok_or_else(|| not_found("issue", &format!("{full}/issues/{number}")))?;
            if let Some(title) = title {
                issue.title = title;
            }
            if let Some(body) = body {
                issue.body = body;
            }
            match state.as_deref() {
                Some("open") => issue.open = true,
                Some("closed") => issue.open = false,
                Some(other) => return Err(format!("invalid state: {other}")),
                None => {}
            }
            if let Some(labels) = labels {
                issue.labels = labels;
            }
            let issue = issue.clone();
            Ok(ToolOutput::Json(data.issue_json(&issue)))
        }
        other => Err(format!("unknown method: {other}")),
    }
}

fn add_issue_comment(data: &mut DemoData, args: &Args) -> ToolResult {
    let repo = repo_arg(data, args)?;
    let number = req_num(args, "issue_number")?;
    let body = req_str(args, "body")?.to_owned();
    let full = data.repos[repo].full_name();
    let comment = data
        .add_comment(repo, number, body)
        .ok_or_else(|| not_found("issue", &format!("{full}/issues/{number}")))?;
    let issue = data
        .issue(repo, number)
        .ok_or_else(|| not_found("issue", &format!("{full}/issues/{number}")))?;
    let mut value = data.comment_json(&comment, issue);
    value["user"]["login"] = json!(VIEWER);
    Ok(ToolOutput::Json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &mut DemoData, name: &str, args: Value) -> ToolResult {
        let args = args.as_object().cloned().unwrap_or_default();
        call(data, name, &args).expect("known tool")
    }

    /// The JSON a successful call of `name` answers.
    fn run_json(data: &mut DemoData, name: &str, args: Value) -> Value {
        match run(data, name, args).unwrap() {
            ToolOutput::Json(value) => value,
            other => panic!("not JSON: {other:?}"),
        }
    }

    #[test]
    fn every_tool_in_the_table_is_callable_and_schemas_are_objects() {
        let mut data = DemoData::generate();
        for spec in specs() {
            assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
            assert!(
                call(&mut data, spec.name, &Map::new()).is_some(),
                "{}",
                spec.name
            );
        }
        assert!(call(&mut data, "no_such_tool", &Map::new()).is_none());
    }

    #[test]
    fn list_issues_pages_through_150_issues() {
        let mut data = DemoData::generate();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut args = json!({"owner": "octo-org", "repo": "api", "perPage": 40});
            if let Some(cursor) = &after {
                args["after"] = json!(cursor);
            }
            let page = run_json(&mut data, "list_issues", args);
            assert_eq!(page["totalCount"], 150);
            for issue in page["issues"].as_array().unwrap() {
                seen.push(issue["number"].as_u64().unwrap());
            }
            if page["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 150);
        let page4 = run_json(
            &mut data,
            "list_issues",
            json!({"owner": "octo-org", "repo": "api", "perPage": 40, "page": 4}),
        );
        assert_eq!(page4["issues"].as_array().unwrap().len(), 30);
    }

    #[test]
    fn bad_arguments_are_tool_errors() {
        let mut data = DemoData::generate();
        let err = run(
            &mut data,
            "issue_read",
            json!({"method": "get", "owner": "octo-org"}),
        )
        .unwrap_err();
        assert_eq!(err, "missing required parameter: repo");
        let err = run(
            &mut data,
            "list_issues",
            json!({"owner": "octo-org", "repo": "api", "perPage": 101}),
        )
        .unwrap_err();
        assert!(err.contains("perPage"));
        let err = run(
            &mut data,
            "issue_read",
            json!({"method": "get", "owner": "x", "repo": "y", "issue_number": 1}),
        )
        .unwrap_err();
        assert!(err.contains("404 Not Found"));
        let err = run(
            &mut data,
            "issue_read",
            json!({"method": "get", "owner": "octo-org", "repo": "api", "issue_number": "1"}),
        )
        .unwrap_err();
        assert!(err.contains("not of type number"));
    }

    #[test]
    fn searches_honour_qualifiers() {
        let mut data = DemoData::generate();
        let result = run_json(
            &mut data,
            "search_issues",
            json!({"query": "repo:octo-org/secret author:alice"}),
        );
        let items = result["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(
            items
                .iter()
                .all(|i| i["user"]["login"] == "alice" && i.get("pull_request").is_none())
        );
        assert_eq!(
            result["total_count"].as_u64().unwrap() as usize,
            items.len()
        );
        let repos = run_json(
            &mut data,
            "search_repositories",
            json!({"query": "repo:acme/internal"}),
        );
        assert_eq!(repos["items"][0]["private"], true);
        assert_eq!(repos["total_count"], 1);
        let private = run_json(
            &mut data,
            "search_repositories",
            json!({"query": "is:private"}),
        );
        assert_eq!(private["total_count"], 2);
        let code = run_json(
            &mut data,
            "search_code",
            json!({"query": "credentials org:acme"}),
        );
        assert_eq!(code["items"][0]["repository"]["full_name"], "acme/internal");
        let pulls = run_json(
            &mut data,
            "search_pull_requests",
            json!({"query": "repo:acme/web is:closed"}),
        );
        assert!(
            pulls["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p.get("pull_request").is_some() && p["state"] == "closed")
        );
    }

    #[test]
    fn files_directories_and_the_large_file() {
        let mut data = DemoData::generate();
        let root = run_json(
            &mut data,
            "get_file_contents",
            json!({"owner": "octo-org", "repo": "api"}),
        );
        let names: Vec<&str> = root
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["Cargo.toml", "README.md", "data", "docs", "src"]
        );
        let ToolOutput::File { text, uri, .. } = run(
            &mut data,
            "get_file_contents",
            json!({"owner": "octo-org", "repo": "api", "path": crate::data::LARGE_FILE_PATH}),
        )
        .unwrap() else {
            panic!("not a file");
        };
        assert!(text.len() >= 1024 * 1024);
        assert_eq!(
            uri,
            "repo://octo-org/api/refs/heads/main/contents/data/large.json"
        );
        assert!(
            run(
                &mut data,
                "get_file_contents",
                json!({"owner": "octo-org", "repo": "api", "path": "nope"})
            )
            .is_err()
        );
        assert!(
            run(
                &mut data,
                "get_file_contents",
                json!({"owner": "octo-org", "repo": "api", "ref": "no-branch"})
            )
            .is_err()
        );
    }

    #[test]
    fn commits_and_pull_requests() {
        let mut data = DemoData::generate();
        let main = run_json(
            &mut data,
            "list_commits",
            json!({"owner": "acme", "repo": "web", "perPage": 100}),
        );
        assert_eq!(main.as_array().unwrap().len(), 25);
        let feature = run_json(
            &mut data,
            "list_commits",
            json!({"owner": "acme", "repo": "web", "sha": "feature/experiment", "perPage": 100}),
        );
        assert_eq!(feature.as_array().unwrap().len(), 30);
        let sha = main[3]["sha"].as_str().unwrap()[..10].to_owned();
        let commit = run_json(
            &mut data,
            "get_commit",
            json!({"owner": "acme", "repo": "web", "sha": sha}),
        );
        assert_eq!(commit["files"].as_array().unwrap().len(), 1);
        let pulls = run_json(
            &mut data,
            "list_pull_requests",
            json!({"owner": "octo-org", "repo": "api", "state": "all"}),
        );
        assert_eq!(pulls.as_array().unwrap().len(), 12);
        let number = pulls[0]["number"].as_u64().unwrap();
        let pr = run_json(
            &mut data,
            "pull_request_read",
            json!({"method": "get", "owner": "octo-org", "repo": "api", "pullNumber": number}),
        );
        assert_eq!(pr["base"]["repo"]["full_name"], "octo-org/api");
        let diff = run(
            &mut data,
            "pull_request_read",
            json!({"method": "get_diff", "owner": "octo-org", "repo": "api", "pullNumber": number}),
        )
        .unwrap();
        assert!(matches!(diff, ToolOutput::Text(text) if text.starts_with("diff --git")));
        assert!(
            run(
                &mut data,
                "pull_request_read",
                json!({"method": "get", "owner": "octo-org", "repo": "api", "pullNumber": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn writes_mutate_the_data_set() {
        let mut data = DemoData::generate();
        let created = run_json(
            &mut data,
            "create_issue",
            json!({"owner": "acme", "repo": "web", "title": "New", "labels": ["bug"]}),
        );
        assert_eq!(created["number"], 23);
        assert_eq!(created["user"]["login"], VIEWER);
        assert_eq!(created["author_association"], "NONE");
        let read = run_json(
            &mut data,
            "issue_read",
            json!({"method": "get", "owner": "acme", "repo": "web", "issue_number": 23}),
        );
        assert_eq!(read["title"], "New");
        let updated = run_json(
            &mut data,
            "issue_write",
            json!({"method": "update", "owner": "acme", "repo": "web", "issue_number": 23, "state": "closed"}),
        );
        assert_eq!(updated["state"], "closed");
        let comment = run_json(
            &mut data,
            "add_issue_comment",
            json!({"owner": "acme", "repo": "web", "issue_number": 23, "body": "hi"}),
        );
        assert_eq!(comment["body"], "hi");
        let comments = run_json(
            &mut data,
            "issue_read",
            json!({"method": "get_comments", "owner": "acme", "repo": "web", "issue_number": 23}),
        );
        assert_eq!(comments.as_array().unwrap().len(), 1);
        let created = run_json(
            &mut data,
            "issue_write",
            json!({"method": "create", "owner": "octo-org", "repo": "api", "title": "Via issue_write"}),
        );
        assert_eq!(created["author_association"], "OWNER");
    }
}
