//! `GithubGuard`: the three label functions over the policy and facts kept
//! in the instance.

use std::borrow::Cow;

use guardway_guest::{Guard, GuardError, log, mcp};
use serde_json::{Value, json};

use crate::facts::RepoFacts;
use crate::labels::{Labeller, Labels};
use crate::policy::{Level, Policy};
use crate::repo::RepoRef;
use crate::tools::{Tool, is_default_ref, method, number_arg, str_arg, target_repo};

/// Bytes of input shown in debug log lines.
const PREVIEW_BYTES: usize = 256;

/// The guard value of one instance: the session policy and memoised facts.
#[derive(Debug, Default)]
pub struct GithubGuard {
    policy: Option<Policy>,
    facts: RepoFacts,
}

impl GithubGuard {
    /// The policy in force (the default one before `label_agent`).
    fn policy(&self) -> Policy {
        match &self.policy {
            Some(policy) => policy.clone(),
            None => {
                log::warn(
                    "no policy from label_agent yet: labelling with the default (public, none)",
                );
                Policy::default()
            }
        }
    }

    /// `call_backend` calls this instance made for look-ups.
    pub fn backend_lookups(&self) -> usize {
        self.facts.backend_calls
    }
}

/// A field of the input; a string holding JSON is parsed (some hosts pass
/// arguments or results serialised). Absent → `null`.
fn json_field<'a>(input: &'a Value, key: &str) -> Cow<'a, Value> {
    match input.get(key) {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(parsed) if parsed.is_object() || parsed.is_array() => Cow::Owned(parsed),
            _ => Cow::Owned(Value::String(text.clone())),
        },
        Some(value) => Cow::Borrowed(value),
        None => Cow::Owned(Value::Null),
    }
}

fn input_preview(input: &Value) -> String {
    log::json_preview(input, PREVIEW_BYTES)
}

/// Where a list sits in a result: the root array, a known array field, or
/// (a GraphQL answer) the first `nodes`/`edges` connection under `data`.
fn locate_items(value: &Value) -> Option<(String, &Vec<Value>)> {
    if let Some(items) = value.as_array() {
        return Some((String::new(), items));
    }
    for key in ["items", "issues", "pull_requests", "commits", "comments"] {
        if let Some(items) = value.get(key).and_then(Value::as_array) {
            return Some((format!("/{key}"), items));
        }
    }
    value
        .get("data")
        .and_then(|data| graphql_connection(data, "/data".to_owned()))
}

/// The first `nodes` (else `edges`) array of a GraphQL answer, depth-first
/// in document order, with its JSON Pointer.
fn graphql_connection(value: &Value, pointer: String) -> Option<(String, &Vec<Value>)> {
    let object = value.as_object()?;
    for key in ["nodes", "edges"] {
        if let Some(items) = object.get(key).and_then(Value::as_array) {
            return Some((format!("{pointer}/{key}"), items));
        }
    }
    object.iter().find_map(|(key, child)| {
        let escaped = key.replace('~', "~0").replace('/', "~1");
        graphql_connection(child, format!("{pointer}/{escaped}"))
    })
}

/// A GraphQL answer's object at `pointer` (`/data/repository/issue`), or
/// the result itself when it is not a GraphQL answer.
fn graphql_object<'v>(value: &'v Value, pointer: &str) -> &'v Value {
    match value.get("data") {
        Some(_) => value.pointer(pointer).unwrap_or(&Value::Null),
        None => value,
    }
}

/// Path labels, one per item of the list at `items_path`.
fn per_item_output(items_path: &str, labels: Vec<Labels>) -> Value {
    let labeled_paths: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(index, labels)| json!({"path": format!("{items_path}/{index}"), "labels": labels.to_json()}))
        .collect();
    json!({"labeled_paths": labeled_paths, "items_path": items_path})
}

/// One label for the whole result (a single object, or a list whose items
/// all share it).
fn whole_output(labels: &Labels) -> Value {
    json!({"labeled_paths": [], "default_labels": labels.to_json(), "items_path": ""})
}

impl Guard for GithubGuard {
    fn label_agent(&mut self, payload: Value) -> Result<Value, GuardError> {
        log::debug(&format!("label_agent input: {}", input_preview(&payload)));
        let policy = match Policy::parse(&payload) {
            Ok(policy) => policy,
            Err(reason) => {
                log::error(&format!("label_agent rejected the policy: {reason}"));
                return Ok(json!({"success": false, "error": reason}));
            }
        };
        let answer = json!({
            "agent": {"secrecy": policy.agent_secrecy(), "integrity": policy.agent_integrity()},
            "difc_mode": "filter",
            "normalized_policy": policy.normalized(),
        });
        log::info(&format!(
            "label_agent: scope_kind={} min-integrity={} agent={}",
            policy.scope_kind,
            policy.min_integrity.as_str(),
            answer["agent"]
        ));
        self.policy = Some(policy);
        Ok(answer)
    }

    fn label_resource(&mut self, input: Value) -> Result<Value, GuardError> {
        let tool_name = logged_tool_name("label_resource", &input)?;
        let args = json_field(&input, "tool_args");
        let args = args.as_ref();
        let policy = self.policy();
        let mut labeller = Labeller {
            policy: &policy,
            facts: &mut self.facts,
        };
        let tool = Tool::classify(tool_name);
        let (labels, operation) = resource_labels(&mut labeller, tool, tool_name, args);
        log::debug(&format!(
            "label_resource {tool_name}: {operation} '{}' secrecy={:?} integrity={:?}",
            labels.description, labels.secrecy, labels.integrity
        ));
        Ok(json!({"resource": labels.to_json(), "operation": operation}))
    }

    fn label_response(&mut self, input: Value) -> Result<Option<Value>, GuardError> {
        let tool_name = logged_tool_name("label_response", &input)?;
        let result = json_field(&input, "tool_result");
        let result = result.as_ref();
        if result.is_null() {
            log::debug(&format!(
                "label_response {tool_name}: no tool_result, no labels"
            ));
            return Ok(None);
        }
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            log::debug(&format!(
                "label_response {tool_name}: error result, no labels"
            ));
            return Ok(None);
        }
        let args = json_field(&input, "tool_args");
        let args = args.as_ref();
        let policy = self.policy();
        let mut labeller = Labeller {
            policy: &policy,
            facts: &mut self.facts,
        };
        let value = mcp::unwrap_tool_result(result);
        let output = response_labels(&mut labeller, Tool::classify(tool_name), args, &value);
        match &output {
            Some(output) => log::debug(&format!(
                "label_response {tool_name}: {} labelled path(s), items_path={}",
                output["labeled_paths"].as_array().map_or(0, Vec::len),
                output["items_path"]
            )),
            None => log::debug(&format!(
                "label_response {tool_name}: no fine-grained labels"
            )),
        }
        Ok(output)
    }
}

/// Logs a preview of the input of `export` and returns its `tool_name`.
fn logged_tool_name<'a>(export: &str, input: &'a Value) -> Result<&'a str, GuardError> {
    log::debug(&format!("{export} input: {}", input_preview(input)));
    input
        .get("tool_name")
        .and_then(Value::as_str)
        .ok_or_else(|| GuardError::refused(format!("{export} input has no tool_name")))
}

/// Resource labels and operation of a call.
fn resource_labels(
    labeller: &mut Labeller<'_>,
    tool: Tool,
    tool_name: &str,
    args: &Value,
) -> (Labels, &'static str) {
    let repo = target_repo(tool, args);
    match tool {
        Tool::Unknown => (Labels::empty(format!("unknown tool {tool_name}")), "write"),
        Tool::Viewer => (labeller.viewer(), "read"),
        Tool::Organization => (labeller.organization(str_arg(args, "owner")), "read"),
        Tool::Write => {
            let Some(repo) = repo else {
                return (Labels::empty(tool_name), "write");
            };
            let private = labeller.facts.is_private(&repo);
            let policy = labeller.policy;
            // Writing needs the policy's baseline tag for the repository:
            // only agents whose policy admits it can write there.
            let integrity = if policy.covers(&repo, private) {
                vec![policy.policy_tag(Level::None)]
            } else {
                vec![format!("{}:{}", Level::None.as_str(), repo.full_name())]
            };
            let labels = Labels {
                description: format!("{tool_name} {}", repo.full_name()),
                secrecy: policy.item_secrecy(&repo, private),
                integrity,
            };
            (labels, "write")
        }
        _ => {
            let description = read_description(tool, tool_name, args, repo.as_ref());
            // Coarse: the repository's baseline, refined item by item by
            // label_response; repository metadata and Actions data have
            // one known level, so the coarse check already decides them
            // (an answer that cannot be labelled, such as a log archive,
            // then needs no response labels).
            let level = match tool {
                Tool::RepoMetadata | Tool::Actions => Level::Approved,
                _ => Level::None,
            };
            let labels = match repo {
                Some(repo) => labeller.repo_item(&repo, None, Some(level), description),
                None => Labels::empty(description),
            };
            (labels, "read")
        }
    }
}

fn read_description(tool: Tool, tool_name: &str, args: &Value, repo: Option<&RepoRef>) -> String {
    let Some(repo) = repo else {
        return format!("{tool_name} results");
    };
    let full = repo.full_name();
    match tool {
        Tool::IssueRead => match number_arg(args, "issue_number") {
            Some(n) => format!("issue {full}#{n}"),
            None => format!("issue {full}"),
        },
        Tool::PullRequestRead => match number_arg(args, "pullNumber") {
            Some(n) => format!("pull request {full}#{n}"),
            None => format!("pull request {full}"),
        },
        Tool::GetFileContents => format!("file {full}:{}", str_arg(args, "path").unwrap_or("/")),
        Tool::GetCommit => format!("commit {full}@{}", str_arg(args, "sha").unwrap_or("")),
        _ => format!("{tool_name} {full}"),
    }
}

/// Path labels of a result, `None` for tools without fine-grained labels.
fn response_labels(
    labeller: &mut Labeller<'_>,
    tool: Tool,
    args: &Value,
    value: &Value,
) -> Option<Value> {
    let repo = target_repo(tool, args);
    match tool {
        Tool::Write | Tool::Unknown => None,
        Tool::IssueRead => {
            let repo = repo?;
            let number = number_arg(args, "issue_number").unwrap_or(0);
            match method(args) {
                "get" => {
                    let issue = graphql_object(value, "/data/repository/issue");
                    Some(whole_output(&labeller.issue(issue, Some(&repo))))
                }
                "get_comments" => list(value, |item| labeller.comment(item, &repo, number)),
                "get_sub_issues" => list(value, |item| labeller.issue(item, Some(&repo))),
                _ => {
                    let description = format!("issue {}#{number}", repo.full_name());
                    Some(whole_output(&labeller.repo_item(
                        &repo,
                        None,
                        Some(Level::Approved),
                        description,
                    )))
                }
            }
        }
        Tool::ListIssues | Tool::SearchIssues | Tool::SearchPullRequests => {
            list(value, |item| labeller.issue(item, repo.as_ref()))
        }
        Tool::ListPullRequests => list(value, |item| labeller.pull_request(item, repo.as_ref())),
        Tool::PullRequestRead => {
            let repo = repo?;
            let number = number_arg(args, "pullNumber").unwrap_or(0);
            match method(args) {
                "get" => {
                    let pr = graphql_object(value, "/data/repository/pullRequest");
                    Some(whole_output(&labeller.pull_request(pr, Some(&repo))))
                }
                "get_comments" | "get_review_comments" | "get_reviews" => {
                    list(value, |item| labeller.comment(item, &repo, number))
                }
                // Files, diff, status: the pull request's own standing.
                _ => {
                    let labels = match labeller.facts.pull_request(&repo, number) {
                        Some(facts) => labeller.pull_request_facts(&repo, number, &facts, None),
                        None => {
                            let description = format!("pull request {}#{number}", repo.full_name());
                            labeller.repo_item(&repo, None, Some(Level::None), description)
                        }
                    };
                    Some(whole_output(&labels))
                }
            }
        }
        Tool::GetFileContents => {
            let repo = repo?;
            let level = if is_default_ref(str_arg(args, "ref")) {
                Level::Merged
            } else {
                Level::Approved
            };
            let description = format!(
                "file {}:{}",
                repo.full_name(),
                str_arg(args, "path").unwrap_or("/")
            );
            Some(whole_output(&labeller.repo_item(
                &repo,
                None,
                Some(level),
                description,
            )))
        }
        Tool::ListCommits => {
            let repo = repo?;
            let on_default = is_default_ref(str_arg(args, "sha"));
            list(value, |item| labeller.commit(item, &repo, on_default))
        }
        Tool::GetCommit => {
            let repo = repo?;
            let on_default = str_arg(args, "sha").is_some_and(|sha| is_default_ref(Some(sha)));
            Some(whole_output(&labeller.commit(value, &repo, on_default)))
        }
        Tool::Viewer => Some(whole_output(&labeller.viewer())),
        Tool::Organization => Some(whole_output(&labeller.organization(str_arg(args, "owner")))),
        Tool::Notifications => list(value, |item| labeller.notification(item)),
        Tool::Actions => {
            let repo = repo?;
            let description = format!(
                "actions {} of {}",
                str_arg(args, "method").unwrap_or("logs"),
                repo.full_name()
            );
            Some(whole_output(&labeller.repo_item(
                &repo,
                None,
                Some(Level::Approved),
                description,
            )))
        }
        Tool::Discussions => {
            let repo = repo?;
            if locate_items(value).is_some() {
                list(value, |item| labeller.issue(item, Some(&repo)))
            } else {
                let discussion = graphql_object(value, "/data/repository/discussion");
                Some(whole_output(&labeller.issue(discussion, Some(&repo))))
            }
        }
        Tool::DiscussionComments => {
            let repo = repo?;
            let number = number_arg(args, "discussion_number").unwrap_or(0);
            list(value, |item| labeller.comment(item, &repo, number))
        }
        Tool::SearchCode => list(value, |item| labeller.code_hit(item)),
        Tool::SearchRepositories => list(value, |item| labeller.repository(item)),
        Tool::RepoMetadata => {
            let repo = repo?;
            let description = format!("metadata of {}", repo.full_name());
            Some(whole_output(&labeller.repo_item(
                &repo,
                None,
                Some(Level::Approved),
                description,
            )))
        }
    }
}

/// Per-item labels of the list in `value` (a GraphQL edge is labelled by
/// its `node`); `None` when there is no list.
fn list(value: &Value, mut label: impl FnMut(&Value) -> Labels) -> Option<Value> {
    let Some((items_path, items)) = locate_items(value) else {
        log::warn("label_response: result holds no list, no labels");
        return None;
    };
    let edges = items_path.ends_with("/edges");
    let labels = items
        .iter()
        .map(|item| match item.get("node") {
            Some(node) if edges => label(node),
            _ => label(item),
        })
        .collect();
    Some(per_item_output(&items_path, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardway_guest::{Export, GuardCell, LogLevel, testing};
    use std::collections::BTreeSet;

    fn text_result(value: &Value) -> Value {
        json!({"content": [{"type": "text", "text": value.to_string()}], "isError": false})
    }

    /// A backend knowing four repositories' visibility.
    fn install_backend() {
        testing::set_backend(|tool, args| {
            assert_eq!(tool, "search_repositories", "unexpected look-up {tool}");
            let query = args["query"].as_str().unwrap_or("");
            let full_name = query.trim_start_matches("repo:");
            let private = matches!(full_name, "octo-org/secret" | "acme/internal");
            Ok(text_result(
                &json!({"total_count": 1, "incomplete_results": false,
                "items": [{"full_name": full_name, "private": private,
                           "visibility": if private { "private" } else { "public" }}]}),
            ))
        });
    }

    fn call(cell: &GuardCell<GithubGuard>, export: Export, input: &Value) -> Value {
        let mut out = vec![0u8; 1 << 20];
        let n = cell.call(export, input.to_string().as_bytes(), &mut out);
        assert!(n > 0, "{} answered {n}", export.name());
        serde_json::from_slice(&out[..n as usize]).unwrap()
    }

    fn tags(value: &Value) -> BTreeSet<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    }

    /// The evaluator's read rule (difc.md §3.2): R.I ⊇ A.I and R.S ⊆ A.S.
    fn can_read(agent: &Value, labels: &Value) -> bool {
        let (a_s, a_i) = (tags(&agent["secrecy"]), tags(&agent["integrity"]));
        let (r_s, r_i) = (tags(&labels["secrecy"]), tags(&labels["integrity"]));
        (a_i.is_subset(&r_i) || r_i.contains("*")) && (r_s.is_subset(&a_s) || a_s.contains("*"))
    }

    /// The evaluator's write rule: A.I ⊇ R.I and A.S ⊆ R.S.
    fn can_write(agent: &Value, labels: &Value) -> bool {
        let (a_s, a_i) = (tags(&agent["secrecy"]), tags(&agent["integrity"]));
        let (r_s, r_i) = (tags(&labels["secrecy"]), tags(&labels["integrity"]));
        (r_i.is_subset(&a_i) || a_i.contains("*")) && (a_s.is_subset(&r_s) || r_s.contains("*"))
    }

    fn issue(repo: &str, number: u64, login: &str, association: &str) -> Value {
        json!({"number": number, "title": "t", "state": "open", "user": {"login": login},
               "author_association": association,
               "repository_url": format!("https://api.github.com/repos/{repo}"),
               "html_url": format!("https://github.com/{repo}/issues/{number}"), "labels": []})
    }

    fn agent_for(cell: &GuardCell<GithubGuard>, policy: Value) -> Value {
        let answer = call(cell, Export::LabelAgent, &policy);
        assert_eq!(answer["difc_mode"], "filter");
        answer["agent"].clone()
    }

    /// The agent labels of an `allow-only` policy over `repos` at `min_integrity`.
    fn allow_only(cell: &GuardCell<GithubGuard>, repos: Value, min_integrity: &str) -> Value {
        agent_for(
            cell,
            json!({"allow-only": {"repos": repos, "min-integrity": min_integrity}}),
        )
    }

    /// `label_resource` of `tool` called with `args`.
    fn label_resource(cell: &GuardCell<GithubGuard>, tool: &str, args: &Value) -> Value {
        call(
            cell,
            Export::LabelResource,
            &json!({"tool_name": tool, "tool_args": args}),
        )
    }

    /// `label_response` of `tool` called with `args` that answered `result`.
    fn label_response(
        cell: &GuardCell<GithubGuard>,
        tool: &str,
        args: &Value,
        result: &Value,
    ) -> Value {
        call(
            cell,
            Export::LabelResponse,
            &json!({"tool_name": tool, "tool_args": args, "tool_result": result}),
        )
    }

    #[test]
    fn label_agent_answers_agent_labels_and_normalized_policy() {
        let cell = GuardCell::<GithubGuard>::new();
        let answer = call(
            &cell,
            Export::LabelAgent,
            &json!({"allow-only": {"repos": ["octo-org/*", "octo-org/api"], "min-integrity": "approved",
                "blocked-users": ["mallory"], "approval-labels": ["safe"]},
                "trusted-bots": ["dependabot[bot]"]}),
        );
        assert_eq!(
            answer,
            json!({"agent": {"secrecy": ["private:octo-org"],
                             "integrity": ["none:octo-org/*", "unapproved:octo-org/*", "approved:octo-org/*"]},
                   "difc_mode": "filter",
                   "normalized_policy": {"scope_kind": "Composite", "min-integrity": "approved",
                                         "repos": ["octo-org/*"]}})
        );
    }

    #[test]
    fn label_agent_rejects_a_bad_policy_with_success_false() {
        let cell = GuardCell::<GithubGuard>::new();
        let (answer, logs) = testing::with_captured_logs(|| {
            call(
                &cell,
                Export::LabelAgent,
                &json!({"allow-only": {"repos": [], "min-integrity": "none"}}),
            )
        });
        assert_eq!(answer["success"], false);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid repos value")
        );
        assert!(logs.iter().any(|(level, _)| *level == LogLevel::Error));
    }

    #[test]
    fn issue_read_is_labelled_by_visibility_and_author() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "approved");
        let args =
            json!({"method": "get", "owner": "octo-org", "repo": "secret", "issue_number": 3});
        let resource = label_resource(&cell, "issue_read", &args);
        assert_eq!(resource["operation"], "read");
        assert_eq!(
            resource["resource"]["description"],
            "issue octo-org/secret#3"
        );
        assert_eq!(resource["resource"]["secrecy"], json!(["private:octo-org"]));

        let read = |item: Value| label_response(&cell, "issue_read", &args, &text_result(&item));
        let approved = read(issue("octo-org/secret", 3, "alice", "MEMBER"));
        assert_eq!(approved["items_path"], "");
        assert_eq!(approved["labeled_paths"], json!([]));
        let labels = &approved["default_labels"];
        assert_eq!(labels["description"], "issue octo-org/secret#3");
        assert_eq!(labels["secrecy"], json!(["private:octo-org"]));
        assert!(can_read(&agent, labels));
        let unapproved = read(issue("octo-org/secret", 3, "bob", "CONTRIBUTOR"));
        assert!(!can_read(&agent, &unapproved["default_labels"]));
        // One visibility look-up for the repository, memoised across calls.
        assert_eq!(testing::backend_calls(), 1);
        assert_eq!(cell.with_guard(|g| g.backend_lookups()), 1);
        testing::clear_backend();
    }

    #[test]
    fn owner_scope_agent_reads_only_its_owner_at_its_level() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = agent_for(
            &cell,
            json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved",
                "blocked-users": ["mallory"]}, "trusted-bots": ["dependabot[bot]"]}),
        );
        let result = json!({"total_count": 7, "incomplete_results": false, "items": [
            issue("octo-org/api", 1, "alice", "OWNER"),
            issue("octo-org/secret", 2, "carol", "COLLABORATOR"),
            issue("octo-org/api", 3, "bob", "CONTRIBUTOR"),
            issue("octo-org/api", 4, "zed", "FIRST_TIME_CONTRIBUTOR"),
            issue("acme/internal", 5, "dave", "OWNER"),
            issue("acme/web", 6, "erin", "MEMBER"),
            issue("octo-org/api", 7, "mallory", "MEMBER"),
            issue("octo-org/api", 8, "dependabot[bot]", "NONE"),
        ]});
        let answer = label_response(
            &cell,
            "search_issues",
            &json!({"query": "is:issue"}),
            &text_result(&result),
        );
        assert_eq!(answer["items_path"], "/items");
        let paths = answer["labeled_paths"].as_array().unwrap();
        assert_eq!(paths.len(), 8);
        let readable: Vec<bool> = paths
            .iter()
            .map(|p| can_read(&agent, &p["labels"]))
            .collect();
        assert_eq!(
            readable,
            vec![true, true, false, false, false, false, false, true]
        );
        assert_eq!(paths[4]["path"], "/items/4");
        assert_eq!(
            paths[4]["labels"]["secrecy"],
            json!(["private:acme", "private:acme/internal"])
        );
        // Four distinct repositories, one look-up each.
        assert_eq!(testing::backend_calls(), 4);
        testing::clear_backend();
    }

    #[test]
    fn public_policy_agent_cannot_read_private_items() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!("public"), "none");
        assert_eq!(agent, json!({"secrecy": [], "integrity": ["none:public"]}));
        let list = json!([issue("acme/internal", 1, "a", "OWNER")]);
        let answer = label_response(
            &cell,
            "list_issues",
            &json!({"owner": "acme", "repo": "internal"}),
            &text_result(&list),
        );
        assert!(!can_read(&agent, &answer["labeled_paths"][0]["labels"]));
        let list = json!([issue("acme/web", 1, "a", "NONE")]);
        let answer = label_response(
            &cell,
            "list_issues",
            &json!({"owner": "acme", "repo": "web"}),
            &text_result(&list),
        );
        assert_eq!(answer["labeled_paths"][0]["path"], "/0");
        assert!(can_read(&agent, &answer["labeled_paths"][0]["labels"]));
        testing::clear_backend();
    }

    #[test]
    fn writes_need_an_admitting_policy_and_unknown_tools_are_writes() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "none");
        let write = |owner: &str, repo: &str| {
            label_resource(
                &cell,
                "create_issue",
                &json!({"owner": owner, "repo": repo, "title": "x"}),
            )
        };
        let secret = write("octo-org", "secret");
        assert_eq!(secret["operation"], "write");
        assert_eq!(
            secret["resource"]["description"],
            "create_issue octo-org/secret"
        );
        assert!(can_write(&agent, &secret["resource"]));
        // An agent holding private:octo-org cannot write to a public repository.
        assert!(!can_write(&agent, &write("octo-org", "api")["resource"]));
        assert!(!can_write(&agent, &write("acme", "internal")["resource"]));
        let unknown = label_resource(&cell, "delete_everything", &json!({}));
        assert_eq!(unknown["operation"], "write");
        assert_eq!(unknown["resource"]["secrecy"], json!([]));
        assert_eq!(unknown["resource"]["integrity"], json!([]));
        let public_agent = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&public_agent, json!("public"), "none");
        let labels = label_resource(
            &public_agent,
            "add_issue_comment",
            &json!({"owner": "acme", "repo": "web", "issue_number": 1, "body": "hi"}),
        );
        assert!(can_write(&agent, &labels["resource"]));
        testing::clear_backend();
    }

    #[test]
    fn files_commits_code_repositories_and_pull_requests() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/api"]), "merged");
        let respond =
            |tool: &str, args: Value, result: Value| label_response(&cell, tool, &args, &result);
        let file = respond(
            "get_file_contents",
            json!({"owner": "octo-org", "repo": "api", "path": "README.md"}),
            json!({"content": [{"type": "text", "text": "successfully downloaded text file"},
                               {"type": "resource", "resource": {"uri": "repo://octo-org/api/contents/README.md", "text": "hi"}}]}),
        );
        assert_eq!(
            file["default_labels"]["description"],
            "file octo-org/api:README.md"
        );
        assert!(can_read(&agent, &file["default_labels"]));
        let branch_file = respond(
            "get_file_contents",
            json!({"owner": "octo-org", "repo": "api", "path": "a", "ref": "feature"}),
            json!({"content": []}),
        );
        assert!(!can_read(&agent, &branch_file["default_labels"]));

        let commits = respond(
            "list_commits",
            json!({"owner": "octo-org", "repo": "api"}),
            text_result(&json!([{"sha": "abcdef0123", "author": {"login": "alice"}}])),
        );
        assert_eq!(
            commits["labeled_paths"][0]["labels"]["description"],
            "commit octo-org/api@abcdef0"
        );
        assert!(can_read(&agent, &commits["labeled_paths"][0]["labels"]));

        let prs = respond(
            "list_pull_requests",
            json!({"owner": "octo-org", "repo": "api"}),
            text_result(&json!([
                {"number": 1, "merged_at": "2026-01-01T00:00:00Z", "user": {"login": "a"}, "author_association": "NONE",
                 "base": {"repo": {"full_name": "octo-org/api", "private": false}}},
                {"number": 2, "merged_at": null, "user": {"login": "b"}, "author_association": "OWNER",
                 "base": {"repo": {"full_name": "octo-org/api", "private": false}}}])),
        );
        let readable: Vec<bool> = prs["labeled_paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| can_read(&agent, &p["labels"]))
            .collect();
        assert_eq!(readable, vec![true, false]);
        // get_files of a pull request seen in a list needs no look-up.
        let calls_before = testing::backend_calls();
        let files = respond(
            "pull_request_read",
            json!({"method": "get_files", "owner": "octo-org", "repo": "api", "pullNumber": 1}),
            text_result(&json!([{"filename": "a.rs"}])),
        );
        assert!(can_read(&agent, &files["default_labels"]));
        assert_eq!(testing::backend_calls(), calls_before);

        let code = respond(
            "search_code",
            json!({"query": "fn main"}),
            text_result(&json!({
            "total_count": 2, "incomplete_results": false, "items": [
                {"name": "main.rs", "path": "src/main.rs", "repository": {"full_name": "octo-org/api", "private": false}},
                {"name": "x.rs", "path": "x.rs", "repository": {"full_name": "acme/internal", "private": true}}]})),
        );
        assert_eq!(code["items_path"], "/items");
        assert_eq!(
            code["labeled_paths"][1]["labels"]["description"],
            "code acme/internal:x.rs"
        );

        let repos = respond(
            "search_repositories",
            json!({"query": "org:octo-org"}),
            text_result(&json!({
            "total_count": 1, "incomplete_results": false,
            "items": [{"full_name": "octo-org/api", "private": false, "owner": {"login": "octo-org"}}]})),
        );
        assert_eq!(
            repos["labeled_paths"][0]["labels"]["description"],
            "repository octo-org/api"
        );
        testing::clear_backend();
    }

    #[test]
    fn pull_request_sub_resources_look_the_pull_request_up_once() {
        testing::set_backend(|tool, args| {
            assert_eq!(tool, "pull_request_read");
            assert_eq!(args["method"], "get");
            Ok(text_result(
                &json!({"number": 7, "merged": false, "user": {"login": "eve"},
                "author_association": "CONTRIBUTOR",
                "base": {"repo": {"full_name": "acme/web", "private": false}}}),
            ))
        });
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["acme/*"]), "unapproved");
        for _ in 0..2 {
            let answer = label_response(
                &cell,
                "pull_request_read",
                &json!({"method": "get_diff", "owner": "acme", "repo": "web", "pullNumber": 7}),
                &json!({"content": [{"type": "text", "text": "diff --git a b"}]}),
            );
            assert_eq!(
                answer["default_labels"]["description"],
                "pull request acme/web#7"
            );
            assert!(can_read(&agent, &answer["default_labels"]));
        }
        assert_eq!(testing::backend_calls(), 1);
        testing::clear_backend();
    }

    #[test]
    fn serialised_arguments_and_results_are_parsed() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["acme/*"]), "none");
        let args = Value::from(
            json!({"owner": "acme", "repo": "web", "method": "get", "issue_number": 1}).to_string(),
        );
        let result = Value::from(text_result(&issue("acme/web", 1, "wile", "OWNER")).to_string());
        let resource = label_resource(&cell, "issue_read", &args);
        assert_eq!(resource["resource"]["description"], "issue acme/web#1");
        let answer = label_response(&cell, "issue_read", &args, &result);
        assert_eq!(answer["default_labels"]["description"], "issue acme/web#1");
        assert!(can_read(&agent, &answer["default_labels"]));
        testing::clear_backend();
    }

    /// A GraphQL issue node as the proxy's rewritten query returns it.
    fn gql_issue(number: u64, login: &str, association: &str) -> Value {
        json!({"number": number, "title": "t", "author": {"login": login},
               "authorAssociation": association, "labels": {"nodes": [], "totalCount": 0}})
    }

    #[test]
    fn graphql_connections_are_labelled_per_node() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "approved");
        let args = json!({"owner": "octo-org", "repo": "secret"});
        let answer = json!({"data": {"repository": {"hasIssuesEnabled": true, "issues": {
            "totalCount": 2,
            "nodes": [gql_issue(1, "alice", "MEMBER"), gql_issue(2, "grace", "NONE")],
            "pageInfo": {"hasNextPage": false}}}}});
        let output = label_response(&cell, "list_issues", &args, &answer);
        assert_eq!(output["items_path"], "/data/repository/issues/nodes");
        let paths = output["labeled_paths"].as_array().unwrap();
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0]["path"], "/data/repository/issues/nodes/0");
        assert_eq!(paths[0]["labels"]["secrecy"], json!(["private:octo-org"]));
        assert!(can_read(&agent, &paths[0]["labels"]));
        assert!(!can_read(&agent, &paths[1]["labels"]));
        testing::clear_backend();
    }

    #[test]
    fn graphql_search_edges_are_labelled_by_their_node() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!("public"), "none");
        let node = |repo: &str, private: bool| {
            let mut issue = gql_issue(4, "bob", "MEMBER");
            issue["repository"] = json!({"nameWithOwner": repo, "isPrivate": private});
            json!({"node": issue, "cursor": "c"})
        };
        let answer = json!({"data": {"search": {"issueCount": 2,
            "edges": [node("acme/web", false), node("acme/internal", true)]}}});
        let output = label_response(
            &cell,
            "search_issues",
            &json!({"query": "is:issue"}),
            &answer,
        );
        assert_eq!(output["items_path"], "/data/search/edges");
        let paths = output["labeled_paths"].as_array().unwrap();
        assert_eq!(paths[0]["labels"]["description"], "issue acme/web#4");
        assert!(can_read(&agent, &paths[0]["labels"]));
        assert_eq!(
            paths[1]["labels"]["secrecy"],
            json!(["private:acme", "private:acme/internal"])
        );
        assert!(!can_read(&agent, &paths[1]["labels"]));
        testing::clear_backend();
    }

    #[test]
    fn graphql_single_issue_and_commit_history() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "approved");
        let args = json!({"owner": "octo-org", "repo": "api"});
        let answer =
            json!({"data": {"repository": {"issue": gql_issue(7, "dave", "CONTRIBUTOR")}}});
        let output = label_response(&cell, "issue_read", &args, &answer);
        assert_eq!(
            output["default_labels"]["description"],
            "issue octo-org/api#7"
        );
        assert!(!can_read(&agent, &output["default_labels"]));
        let history = json!({"data": {"repository": {"defaultBranchRef": {"target": {"history": {"nodes": [
            {"oid": "abcdef1234", "author": {"user": {"login": "alice"}}},
            {"oid": "1234567890", "author": {"user": {"login": "mallory"}}}]}}}}}});
        let policy = json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved",
                                           "blocked-users": ["mallory"]}});
        let agent = agent_for(&cell, policy);
        let output = label_response(&cell, "list_commits", &args, &history);
        assert_eq!(
            output["items_path"],
            "/data/repository/defaultBranchRef/target/history/nodes"
        );
        let paths = output["labeled_paths"].as_array().unwrap();
        assert_eq!(
            paths[0]["labels"]["description"],
            "commit octo-org/api@abcdef1"
        );
        assert!(can_read(&agent, &paths[0]["labels"]));
        assert_eq!(paths[1]["labels"]["integrity"], json!([]));
        testing::clear_backend();
    }

    #[test]
    fn objects_without_the_authors_standing_are_enriched_once() {
        testing::set_backend(|tool, args| match tool {
            "search_repositories" => Ok(text_result(&json!({"items": [
                {"full_name": "octo-org/api", "private": false}]}))),
            "issue_read" => {
                assert_eq!(args["issue_number"], 7);
                Ok(text_result(&issue(
                    "octo-org/api",
                    7,
                    "carol",
                    "COLLABORATOR",
                )))
            }
            other => panic!("unexpected look-up {other}"),
        });
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "approved");
        let args = json!({"owner": "octo-org", "repo": "api"});
        let answer = json!({"data": {"repository": {"issue": {"number": 7, "title": "t"}}}});
        for _ in 0..2 {
            let output = label_response(&cell, "issue_read", &args, &answer);
            assert!(can_read(&agent, &output["default_labels"]), "{output}");
        }
        assert_eq!(cell.with_guard(|guard| guard.backend_lookups()), 2);
        testing::clear_backend();
    }

    #[test]
    fn viewer_notifications_actions_and_organizations() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let agent = allow_only(&cell, json!(["octo-org/*"]), "approved");
        let me = label_resource(&cell, "get_me", &json!({}));
        assert_eq!(me["operation"], "read");
        assert!(can_read(&agent, &me["resource"]));
        let answer = label_response(&cell, "get_me", &json!({}), &json!({"login": "octocat"}));
        assert!(can_read(&agent, &answer["default_labels"]));

        let notifications = json!([
            {"id": "1", "repository": {"full_name": "octo-org/api", "private": false}},
            {"id": "2", "repository": {"full_name": "acme/internal", "private": true}}]);
        let output = label_response(&cell, "list_notifications", &json!({}), &notifications);
        let paths = output["labeled_paths"].as_array().unwrap();
        assert_eq!(
            paths[0]["labels"]["description"],
            "notification 1 in octo-org/api"
        );
        assert_eq!(
            paths[1]["labels"]["secrecy"],
            json!(["private:acme", "private:acme/internal"])
        );
        assert!(!can_read(&agent, &paths[1]["labels"]));

        let args = json!({"owner": "octo-org", "repo": "api", "method": "list_workflow_runs"});
        let runs = label_response(
            &cell,
            "actions_list",
            &args,
            &json!({"total_count": 0, "workflow_runs": []}),
        );
        assert_eq!(
            runs["default_labels"]["description"],
            "actions list_workflow_runs of octo-org/api"
        );
        assert!(can_read(&agent, &runs["default_labels"]));

        let logs = label_resource(
            &cell,
            "get_job_logs",
            &json!({"owner": "octo-org", "repo": "api", "run_id": "1"}),
        );
        assert!(can_read(&agent, &logs["resource"]), "{logs}");
        let other = label_resource(
            &cell,
            "get_job_logs",
            &json!({"owner": "acme", "repo": "internal", "run_id": "1"}),
        );
        assert!(!can_read(&agent, &other["resource"]), "{other}");
        let org = label_resource(&cell, "search_orgs", &json!({"owner": "Acme"}));
        assert_eq!(org["operation"], "read");
        assert_eq!(org["resource"]["secrecy"], json!(["private:acme"]));
        assert!(!can_read(&agent, &org["resource"]));
        testing::clear_backend();
    }

    #[test]
    fn errors_and_unknown_tools_get_no_response_labels() {
        let cell = GuardCell::<GithubGuard>::new();
        let mut out = vec![0u8; 1024];
        let input = json!({"tool_name": "issue_read", "tool_result": {"content": [{"type": "text", "text": "boom"}], "isError": true}});
        assert_eq!(
            cell.call(
                Export::LabelResponse,
                input.to_string().as_bytes(),
                &mut out
            ),
            0
        );
        let input = json!({"tool_name": "delete_everything", "tool_result": text_result(&json!({"login": "x"}))});
        assert_eq!(
            cell.call(
                Export::LabelResponse,
                input.to_string().as_bytes(),
                &mut out
            ),
            0
        );
        assert_eq!(cell.call(Export::LabelResource, b"{}", &mut out), -1);
    }

    #[test]
    fn every_call_logs_a_debug_preview_and_a_debug_summary() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        let (_, logs) = testing::with_captured_logs(|| {
            label_resource(
                &cell,
                "list_issues",
                &json!({"owner": "acme", "repo": "web", "body": "x".repeat(4000)}),
            )
        });
        let debug = logs
            .iter()
            .find(|(level, _)| *level == LogLevel::Debug)
            .unwrap();
        assert!(debug.1.starts_with("label_resource input: {"));
        assert!(debug.1.len() <= "label_resource input: ".len() + 256);
        // Per-call lines are debug: a gateway at `info` logs its own one
        // decision line per call, not the guard's working.
        assert!(logs.iter().any(|(level, line)| *level == LogLevel::Debug
            && line.starts_with("label_resource list_issues: read 'list_issues acme/web'")));
        assert!(!logs
            .iter()
            .any(|(level, line)| *level == LogLevel::Info && line.starts_with("label_resource")));
        testing::clear_backend();
    }

    #[test]
    fn large_list_output_goes_through_the_minus_two_protocol() {
        install_backend();
        let cell = GuardCell::<GithubGuard>::new();
        allow_only(&cell, json!(["acme/*"]), "none");
        let items: Vec<Value> = (1..=1000)
            .map(|n| issue("acme/web", n, "u", "NONE"))
            .collect();
        let input =
            json!({"tool_name": "list_issues", "tool_args": {"owner": "acme", "repo": "web"},
            "tool_result": text_result(&Value::Array(items))})
            .to_string();
        let mut small = vec![0u8; 4096];
        assert_eq!(
            cell.call(Export::LabelResponse, input.as_bytes(), &mut small),
            -2
        );
        let needed = u32::from_le_bytes(small[..4].try_into().unwrap()) as usize;
        assert!(needed > 4096);
        let mut big = vec![0u8; needed];
        assert_eq!(
            cell.call(Export::LabelResponse, input.as_bytes(), &mut big),
            needed as i32
        );
        let answer: Value = serde_json::from_slice(&big).unwrap();
        assert_eq!(answer["labeled_paths"].as_array().unwrap().len(), 1000);
        assert_eq!(answer["labeled_paths"][999]["path"], "/999");
        testing::clear_backend();
    }
}
