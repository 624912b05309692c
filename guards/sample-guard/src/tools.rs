//! Which GitHub MCP server tool a call is, and what its arguments say.

use serde_json::Value;

use crate::repo::RepoRef;

/// The GitHub MCP server tools this guard knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    IssueRead,
    ListIssues,
    SearchIssues,
    SearchPullRequests,
    PullRequestRead,
    ListPullRequests,
    GetFileContents,
    SearchCode,
    ListCommits,
    GetCommit,
    SearchRepositories,
    /// Branches, tags, releases, labels, discussion categories: repository
    /// metadata.
    RepoMetadata,
    /// Actions workflows, runs, jobs, logs, artifacts, caches, secret and
    /// variable names (`actions_list`, `actions_get`, `get_job_logs`).
    Actions,
    /// Discussions, listed or one (`list_discussions`).
    Discussions,
    /// A discussion's comments (`get_discussion_comments`).
    DiscussionComments,
    /// The authenticated user (`get_me`).
    Viewer,
    /// The authenticated user's notifications (`list_notifications`).
    Notifications,
    /// Organisation-wide data (`search_orgs`, `list_projects`).
    Organization,
    /// Any tool that creates or changes something.
    Write,
    /// Anything else: labelled as a write with empty labels.
    Unknown,
}

const WRITE_TOOLS: &[&str] = &[
    "add_comment_to_pending_review",
    "add_issue_comment",
    "add_reply_to_pull_request_comment",
    "assign_copilot_to_issue",
    "create_branch",
    "create_issue",
    "create_or_update_file",
    "create_pull_request",
    "create_repository",
    "delete_file",
    "fork_repository",
    "issue_write",
    "label_write",
    "merge_pull_request",
    "pull_request_review_write",
    "push_files",
    "request_copilot_review",
    "sub_issue_write",
    "update_issue",
    "update_pull_request",
    "update_pull_request_branch",
];

impl Tool {
    /// Classifies a tool name.
    pub fn classify(name: &str) -> Tool {
        match name {
            "issue_read" | "get_issue" => Tool::IssueRead,
            "list_issues" => Tool::ListIssues,
            "search_issues" => Tool::SearchIssues,
            "search_pull_requests" => Tool::SearchPullRequests,
            "pull_request_read" | "get_pull_request" => Tool::PullRequestRead,
            "list_pull_requests" => Tool::ListPullRequests,
            "get_file_contents" => Tool::GetFileContents,
            "search_code" => Tool::SearchCode,
            "list_commits" => Tool::ListCommits,
            "get_commit" => Tool::GetCommit,
            "search_repositories" => Tool::SearchRepositories,
            "list_branches"
            | "list_tags"
            | "get_tag"
            | "list_releases"
            | "get_latest_release"
            | "get_release_by_tag"
            | "list_labels"
            | "get_label"
            | "list_discussion_categories" => Tool::RepoMetadata,
            "actions_list" | "actions_get" | "get_job_logs" => Tool::Actions,
            "list_discussions" => Tool::Discussions,
            "get_discussion_comments" => Tool::DiscussionComments,
            "get_me" => Tool::Viewer,
            "list_notifications" => Tool::Notifications,
            "search_orgs" | "list_projects" => Tool::Organization,
            name if WRITE_TOOLS.contains(&name) => Tool::Write,
            _ => Tool::Unknown,
        }
    }

    /// Whether the tool's `query` argument names the repository.
    fn searches(self) -> bool {
        matches!(
            self,
            Tool::SearchIssues | Tool::SearchPullRequests | Tool::SearchCode
        )
    }
}

/// The repository a call addresses: `owner`/`repo` arguments, else a
/// `repo:` qualifier of a search query.
pub fn target_repo(tool: Tool, args: &Value) -> Option<RepoRef> {
    RepoRef::from_args(args).or_else(|| {
        if tool.searches() {
            args.get("query")
                .and_then(Value::as_str)
                .and_then(RepoRef::from_query)
        } else {
            None
        }
    })
}

/// A string argument.
pub fn str_arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// A numeric argument (number or numeric string).
pub fn number_arg(args: &Value, name: &str) -> Option<u64> {
    let value = args.get(name)?;
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

/// The `method` of the consolidated read tools (default `get`).
pub fn method(args: &Value) -> &str {
    str_arg(args, "method").unwrap_or("get")
}

/// Whether a ref names the default branch: absent, empty, `main`,
/// `master`, `HEAD` (optionally as `refs/heads/…`).
pub fn is_default_ref(reference: Option<&str>) -> bool {
    let Some(reference) = reference else {
        return true;
    };
    let reference = reference.trim();
    let reference = reference.strip_prefix("refs/heads/").unwrap_or(reference);
    matches!(reference, "" | "main" | "master" | "HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_reads_writes_and_unknowns() {
        assert_eq!(Tool::classify("issue_read"), Tool::IssueRead);
        assert_eq!(Tool::classify("search_code"), Tool::SearchCode);
        assert_eq!(Tool::classify("create_issue"), Tool::Write);
        assert_eq!(Tool::classify("issue_write"), Tool::Write);
        assert_eq!(Tool::classify("add_issue_comment"), Tool::Write);
        assert_eq!(Tool::classify("list_tags"), Tool::RepoMetadata);
        assert_eq!(Tool::classify("get_me"), Tool::Viewer);
        assert_eq!(Tool::classify("actions_list"), Tool::Actions);
        assert_eq!(Tool::classify("get_label"), Tool::RepoMetadata);
        assert_eq!(Tool::classify("list_discussions"), Tool::Discussions);
        assert_eq!(Tool::classify("search_orgs"), Tool::Organization);
        assert_eq!(Tool::classify("delete_everything"), Tool::Unknown);
    }

    #[test]
    fn finds_the_target_repo_and_arguments() {
        let args =
            json!({"query": "bug repo:acme/web", "issue_number": "7", "ref": "refs/heads/main"});
        assert_eq!(
            target_repo(Tool::SearchIssues, &args),
            RepoRef::parse("acme/web")
        );
        assert_eq!(target_repo(Tool::SearchRepositories, &args), None);
        assert_eq!(number_arg(&args, "issue_number"), Some(7));
        assert_eq!(number_arg(&json!({"n": 3}), "n"), Some(3));
        assert!(is_default_ref(str_arg(&args, "ref")));
        assert!(is_default_ref(None));
        assert!(!is_default_ref(Some("feature/x")));
        assert_eq!(method(&json!({})), "get");
    }
}
