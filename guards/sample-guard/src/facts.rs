//! Facts looked up through `call_backend` and memoised for the life of the
//! instance: repository visibility and pull-request standing.

use std::collections::HashMap;

use guardway_guest::{call_backend, log, mcp};
use serde_json::{Value, json};

use crate::repo::{RepoRef, stated_privacy};

/// What a pull request's (or an issue's) own object says about its
/// standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestFacts {
    pub author: Option<String>,
    pub association: Option<String>,
    pub merged: bool,
    pub label_names: Vec<String>,
}

impl PullRequestFacts {
    /// Reads the facts from a pull-request object.
    /// Reads the facts from a pull-request object (REST or GraphQL field
    /// names).
    pub fn from_object(pr: &Value) -> PullRequestFacts {
        let merged = pr.get("merged").and_then(Value::as_bool) == Some(true)
            || ["merged_at", "mergedAt"]
                .iter()
                .any(|key| pr.get(*key).is_some_and(|at| !at.is_null()));
        PullRequestFacts {
            author: author_login(pr).map(str::to_owned),
            association: author_association(pr).map(str::to_owned),
            merged,
            label_names: label_names(pr),
        }
    }
}

/// The author's login: `user.login` (REST) or `author.login` (GraphQL).
pub fn author_login(item: &Value) -> Option<&str> {
    item.pointer("/user/login")
        .or_else(|| item.pointer("/author/login"))
        .and_then(Value::as_str)
}

/// `author_association` (REST) or `authorAssociation` (GraphQL).
pub fn author_association(item: &Value) -> Option<&str> {
    item.get("author_association")
        .or_else(|| item.get("authorAssociation"))
        .and_then(Value::as_str)
}

/// The names of an issue's or pull request's labels (an array, or a
/// GraphQL connection's `nodes`).
pub fn label_names(item: &Value) -> Vec<String> {
    let labels = item.get("labels");
    labels
        .and_then(Value::as_array)
        .or_else(|| {
            labels
                .and_then(|labels| labels.get("nodes"))
                .and_then(Value::as_array)
        })
        .map(|labels| {
            labels
                .iter()
                .filter_map(|label| {
                    label
                        .get("name")
                        .and_then(Value::as_str)
                        .or_else(|| label.as_str())
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Memoised look-ups. One per guard instance.
#[derive(Debug, Default)]
pub struct RepoFacts {
    privacy: HashMap<RepoRef, bool>,
    pull_requests: HashMap<(RepoRef, u64), PullRequestFacts>,
    issues: HashMap<(RepoRef, u64), PullRequestFacts>,
    /// `call_backend` calls made by this instance (for logs and tests).
    pub backend_calls: usize,
}

impl RepoFacts {
    /// Records a visibility stated by arguments or a result.
    pub fn note_privacy(&mut self, repo: &RepoRef, private: bool) {
        self.privacy.insert(repo.clone(), private);
    }

    /// Whether the repository is private: memoised, else looked up with
    /// `search_repositories` (`repo:owner/name`). A failed look-up counts as
    /// private (the restrictive answer) and is not memoised.
    pub fn is_private(&mut self, repo: &RepoRef) -> bool {
        if let Some(private) = self.privacy.get(repo) {
            return *private;
        }
        let full_name = repo.full_name();
        self.backend_calls += 1;
        let answer = call_backend(
            "search_repositories",
            &json!({"query": format!("repo:{full_name}")}),
        );
        let found = match answer {
            Ok(result) => find_repository_privacy(&result, &full_name),
            Err(err) => {
                log::warn(&format!("visibility of {full_name} unknown: {err}"));
                return true;
            }
        };
        match found {
            Some(private) => {
                log::debug(&format!(
                    "visibility of {full_name}: {}",
                    if private { "private" } else { "public" }
                ));
                self.privacy.insert(repo.clone(), private);
                private
            }
            None => {
                log::warn(&format!(
                    "visibility of {full_name} unknown: not in search_repositories result"
                ));
                true
            }
        }
    }

    /// The facts of pull request `number`, memoised, else looked up with
    /// `pull_request_read` (method `get`). `None` when the look-up fails.
    pub fn pull_request(&mut self, repo: &RepoRef, number: u64) -> Option<PullRequestFacts> {
        let key = (repo.clone(), number);
        if let Some(facts) = self.pull_requests.get(&key) {
            return Some(facts.clone());
        }
        self.backend_calls += 1;
        let args =
            json!({"method": "get", "owner": repo.owner, "repo": repo.name, "pullNumber": number});
        let pr = match call_backend("pull_request_read", &args) {
            Ok(result) => mcp::unwrap_tool_result(&result).into_owned(),
            Err(err) => {
                log::warn(&format!(
                    "pull request {}#{number} unknown: {err}",
                    repo.full_name()
                ));
                return None;
            }
        };
        if !pr.is_object() || pr.get("number").is_none() {
            log::warn(&format!(
                "pull request {}#{number} unknown: unexpected result",
                repo.full_name()
            ));
            return None;
        }
        if let Some(private) = pr.pointer("/base/repo").and_then(stated_privacy) {
            self.note_privacy(repo, private);
        }
        let facts = PullRequestFacts::from_object(&pr);
        self.pull_requests.insert(key, facts.clone());
        Some(facts)
    }

    /// An issue's author and association, memoised, else looked up with
    /// `issue_read` (method `get`): for issue objects that do not carry
    /// them (a GraphQL `issue(number:)` answer). `None` when the look-up
    /// fails.
    pub fn issue(&mut self, repo: &RepoRef, number: u64) -> Option<PullRequestFacts> {
        let key = (repo.clone(), number);
        if let Some(facts) = self.issues.get(&key) {
            return Some(facts.clone());
        }
        self.backend_calls += 1;
        let args = json!({"method": "get", "owner": repo.owner, "repo": repo.name, "issue_number": number});
        let issue = match call_backend("issue_read", &args) {
            Ok(result) => mcp::unwrap_tool_result(&result).into_owned(),
            Err(err) => {
                log::warn(&format!(
                    "issue {}#{number} unknown: {err}",
                    repo.full_name()
                ));
                return None;
            }
        };
        if !issue.is_object() || issue.get("number").is_none() {
            log::warn(&format!(
                "issue {}#{number} unknown: unexpected result",
                repo.full_name()
            ));
            return None;
        }
        let facts = PullRequestFacts::from_object(&issue);
        self.issues.insert(key, facts.clone());
        Some(facts)
    }

    /// Records a pull request seen in a result.
    pub fn note_pull_request(&mut self, repo: &RepoRef, number: u64, facts: PullRequestFacts) {
        self.pull_requests.insert((repo.clone(), number), facts);
    }
}

/// The privacy of `full_name` in a `search_repositories` result.
fn find_repository_privacy(result: &Value, full_name: &str) -> Option<bool> {
    let value = mcp::unwrap_tool_result(result);
    let items = value.get("items")?.as_array()?;
    items
        .iter()
        .find(|item| {
            item.get("full_name")
                .and_then(Value::as_str)
                .is_some_and(|name| name.eq_ignore_ascii_case(full_name))
        })
        .and_then(stated_privacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardway_guest::{BackendError, testing};

    fn text_result(value: Value) -> Value {
        json!({"content": [{"type": "text", "text": value.to_string()}], "isError": false})
    }

    #[test]
    fn visibility_is_looked_up_once_and_memoised() {
        testing::set_backend(|tool, args| {
            assert_eq!(tool, "search_repositories");
            assert_eq!(args["query"], "repo:octo-org/secret");
            Ok(text_result(
                json!({"total_count": 1, "incomplete_results": false,
                "items": [{"full_name": "octo-org/secret", "private": true}]}),
            ))
        });
        let mut facts = RepoFacts::default();
        let repo = RepoRef::parse("octo-org/secret").unwrap();
        assert!(facts.is_private(&repo));
        assert!(facts.is_private(&repo));
        assert_eq!(testing::backend_calls(), 1);
        testing::clear_backend();
    }

    #[test]
    fn failed_lookup_counts_as_private_and_is_retried() {
        testing::set_backend(|tool, _| {
            Err(BackendError::Failed {
                tool: tool.to_owned(),
                code: -1,
            })
        });
        let mut facts = RepoFacts::default();
        let repo = RepoRef::parse("acme/web").unwrap();
        let logs = testing::capture_logs(|| assert!(facts.is_private(&repo)));
        assert!(logs[0].1.contains("visibility of acme/web unknown"));
        assert!(facts.is_private(&repo));
        assert_eq!(testing::backend_calls(), 2);
        // A missing repository is also restrictive.
        testing::set_backend(|_, _| Ok(text_result(json!({"total_count": 0, "items": []}))));
        assert!(facts.is_private(&repo));
        // Stated visibility wins without a call.
        facts.note_privacy(&repo, false);
        assert!(!facts.is_private(&repo));
        assert_eq!(testing::backend_calls(), 1);
        testing::clear_backend();
    }

    #[test]
    fn pull_request_facts_are_looked_up_and_memoised() {
        testing::set_backend(|tool, args| {
            assert_eq!(tool, "pull_request_read");
            assert_eq!(args["pullNumber"], 4);
            Ok(text_result(
                json!({"number": 4, "merged": false, "user": {"login": "eve"},
                "author_association": "CONTRIBUTOR", "labels": [{"name": "safe"}],
                "base": {"repo": {"full_name": "acme/web", "private": false}}}),
            ))
        });
        let mut facts = RepoFacts::default();
        let repo = RepoRef::parse("acme/web").unwrap();
        let pr = facts.pull_request(&repo, 4).unwrap();
        assert_eq!(pr.association.as_deref(), Some("CONTRIBUTOR"));
        assert_eq!(pr.label_names, vec!["safe"]);
        assert!(!pr.merged);
        assert_eq!(facts.pull_request(&repo, 4), Some(pr));
        // The base repository's visibility came along.
        assert!(!facts.is_private(&repo));
        assert_eq!(testing::backend_calls(), 1);
        testing::clear_backend();
    }
}
