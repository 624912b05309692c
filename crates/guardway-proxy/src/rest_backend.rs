//! The guard's `call_backend` in proxy mode: the look-ups guards make
//! (`pull_request_read`, `issue_read`, `search_repositories`,
//! `get_collaborator_permission`) answered by GitHub REST calls through the
//! same upstream, wrapped as MCP text results like an MCP server's answer.
//! Look-ups use the fallback token when one is configured, else the
//! `Authorization` of the request being labelled (carried in a task-local).

use std::sync::Arc;

use guardway_wasm::{BackendCallError, BoxFuture};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::upstream::Upstream;

tokio::task_local! {
    /// The `Authorization` header of the client request being handled.
    static CLIENT_AUTH: Option<String>;
}

/// Runs `future` with `auth` as the client `Authorization` that guard
/// look-ups made while it runs may use.
pub async fn with_client_auth<F: std::future::Future>(
    auth: Option<String>,
    future: F,
) -> F::Output {
    CLIENT_AUTH.scope(auth, future).await
}

fn current_client_auth() -> Option<String> {
    CLIENT_AUTH.try_with(Clone::clone).ok().flatten()
}

/// Characters escaped in a path segment (RFC 3986 unreserved kept).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Characters escaped in a query component: as `SEGMENT`, with spaces
/// written `+` afterwards.
const QUERY: &AsciiSet = SEGMENT;

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Query-component escaping (spaces as `+`).
pub fn query_escape(text: &str) -> String {
    text.split(' ')
        .map(|part| utf8_percent_encode(part, QUERY).to_string())
        .collect::<Vec<_>>()
        .join("+")
}

fn string_arg<'a>(args: &'a Map<String, Value>, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Owner, repository and a numeric id given as a string or a JSON number.
///
/// # Errors
/// `"{tool}: missing owner/repo/{key}"`, or an invalid number.
pub fn owner_repo_number(
    args: &Map<String, Value>,
    key: &str,
    tool: &str,
) -> Result<(String, String, String), String> {
    let owner = string_arg(args, "owner");
    let repo = string_arg(args, "repo");
    let mut number = string_arg(args, key).to_owned();
    if number.is_empty()
        && let Some(Value::Number(value)) = args.get(key)
    {
        number = match (value.as_i64(), value.as_f64()) {
            (Some(n), _) if n < 0 => {
                return Err(format!("{tool}: invalid {key} (must be non-negative)"));
            }
            (Some(n), _) => n.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&f) => {
                format!("{f:.0}")
            }
            (None, Some(f)) if f < 0.0 && f.fract() == 0.0 => {
                return Err(format!("{tool}: invalid {key} (must be non-negative)"));
            }
            _ => {
                return Err(format!(
                    "{tool}: invalid {key} (out of range or not an integer)"
                ));
            }
        };
    }
    if owner.is_empty() || repo.is_empty() || number.is_empty() {
        return Err(format!("{tool}: missing owner/repo/{key}"));
    }
    Ok((owner.to_owned(), repo.to_owned(), number))
}

/// The REST path of a guard look-up.
///
/// # Errors
/// Missing arguments, or a tool with no REST mapping.
pub fn lookup_path(tool: &str, args: &Value) -> Result<String, String> {
    let Some(args) = args.as_object() else {
        return Err(format!("unexpected args type for {tool}"));
    };
    match tool {
        "pull_request_read" => {
            let (owner, repo, number) = owner_repo_number(args, "pullNumber", tool)?;
            Ok(format!(
                "/repos/{}/{}/pulls/{}",
                segment(&owner),
                segment(&repo),
                segment(&number)
            ))
        }
        "issue_read" => {
            let (owner, repo, number) = owner_repo_number(args, "issue_number", tool)?;
            Ok(format!(
                "/repos/{}/{}/issues/{}",
                segment(&owner),
                segment(&repo),
                segment(&number)
            ))
        }
        "search_repositories" => {
            let query = string_arg(args, "query");
            if query.is_empty() {
                return Err("search_repositories: missing query".to_owned());
            }
            let per_page = args
                .get("perPage")
                .and_then(Value::as_f64)
                .map_or(10, |n| n as i64);
            Ok(format!(
                "/search/repositories?q={}&per_page={per_page}",
                query_escape(query)
            ))
        }
        "get_collaborator_permission" => {
            let (owner, repo, user) = (
                string_arg(args, "owner"),
                string_arg(args, "repo"),
                string_arg(args, "username"),
            );
            if owner.is_empty() || repo.is_empty() || user.is_empty() {
                return Err("get_collaborator_permission: missing owner/repo/username".to_owned());
            }
            Ok(format!(
                "/repos/{}/{}/collaborators/{}/permission",
                segment(owner),
                segment(repo),
                segment(user)
            ))
        }
        _ => Err(format!("unsupported tool: {tool}")),
    }
}

/// `call_backend` for guards, answered through the upstream GitHub API.
/// `Send + Sync`; one per proxy, shared as `Arc<dyn Backend>`.
#[derive(Debug, Clone)]
pub struct RestBackend {
    upstream: Arc<Upstream>,
}

impl RestBackend {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        RestBackend { upstream }
    }

    /// Runs one look-up and wraps the body as an MCP text result.
    ///
    /// # Errors
    /// Bad arguments or an unsupported tool (`Failed`), an unreachable
    /// upstream (`Unavailable`), an HTTP error status (`Failed`).
    pub async fn lookup(
        &self,
        tool: &str,
        args: &Value,
        client_auth: Option<&str>,
    ) -> Result<Value, BackendCallError> {
        let failed = |message: String| BackendCallError::Failed {
            tool: tool.to_owned(),
            message,
        };
        let path = lookup_path(tool, args).map_err(failed)?;
        let authorization = self.upstream.lookup_authorization(client_auth);
        let response = self
            .upstream
            .send(
                http::Method::GET,
                &path,
                None,
                None,
                authorization.as_deref(),
            )
            .await
            .map_err(|error| BackendCallError::Unavailable {
                message: format!("REST call failed: {error}"),
            })?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| failed(format!("failed to read response: {error}")))?;
        if status.as_u16() >= 400 {
            tracing::debug!(
                tool,
                status = status.as_u16(),
                "guard look-up answered an error"
            );
            return Err(failed(format!("GitHub API returned {}", status.as_u16())));
        }
        if tool == "get_collaborator_permission" {
            let permission = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                v.get("permission")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            tracing::debug!(tool, path, ?permission, "collaborator permission looked up");
        }
        Ok(json!({"content": [{"type": "text", "text": body}]}))
    }
}

impl guardway_wasm::Backend for RestBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        let client_auth = current_client_auth();
        Box::pin(async move { self.lookup(tool, &args, client_auth.as_deref()).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn numbers_as_strings_or_json_numbers() {
        let ok = |v: Value, key: &str| owner_repo_number(&map(v), key, "t");
        assert_eq!(
            ok(
                json!({"owner": "myorg", "repo": "myrepo", "pullNumber": "42"}),
                "pullNumber"
            )
            .unwrap(),
            ("myorg".into(), "myrepo".into(), "42".into())
        );
        assert_eq!(
            ok(
                json!({"owner": "o", "repo": "r", "issue_number": 7.0}),
                "issue_number"
            )
            .unwrap()
            .2,
            "7"
        );
        assert_eq!(
            ok(
                json!({"owner": "o", "repo": "r", "issue_number": 7}),
                "issue_number"
            )
            .unwrap()
            .2,
            "7"
        );
        assert_eq!(
            ok(json!({"owner": "myorg", "pullNumber": ""}), "pullNumber").unwrap_err(),
            "t: missing owner/repo/pullNumber"
        );
        assert_eq!(
            ok(json!({"owner": "o", "repo": "r", "n": -3}), "n").unwrap_err(),
            "t: invalid n (must be non-negative)"
        );
        assert_eq!(
            ok(json!({"owner": "o", "repo": "r", "n": 1.5}), "n").unwrap_err(),
            "t: invalid n (out of range or not an integer)"
        );
        assert_eq!(
            ok(json!({"owner": "o", "repo": "r", "n": 1e300}), "n").unwrap_err(),
            "t: invalid n (out of range or not an integer)"
        );
    }

    #[test]
    fn lookups_map_to_rest_paths() {
        let cases = [
            (
                "pull_request_read",
                json!({"owner": "myorg", "repo": "myrepo", "pullNumber": "42"}),
                "/repos/myorg/myrepo/pulls/42",
            ),
            (
                "issue_read",
                json!({"owner": "myorg", "repo": "myrepo", "issue_number": 7.0}),
                "/repos/myorg/myrepo/issues/7",
            ),
            (
                "search_repositories",
                json!({"query": "repo:octo-org/api"}),
                "/search/repositories?q=repo%3Aocto-org%2Fapi&per_page=10",
            ),
            (
                "search_repositories",
                json!({"query": "language:go stars:>1000", "perPage": 25.0}),
                "/search/repositories?q=language%3Ago+stars%3A%3E1000&per_page=25",
            ),
            (
                "get_collaborator_permission",
                json!({"owner": "o", "repo": "r", "username": "dependabot[bot]"}),
                "/repos/o/r/collaborators/dependabot%5Bbot%5D/permission",
            ),
        ];
        for (tool, args, path) in cases {
            assert_eq!(lookup_path(tool, &args).unwrap(), path, "{tool}");
        }
    }

    #[test]
    fn bad_lookups_are_refused() {
        let cases = [
            (
                "search_repositories",
                json!({"perPage": 10}),
                "search_repositories: missing query",
            ),
            (
                "search_repositories",
                json!({"query": ""}),
                "search_repositories: missing query",
            ),
            (
                "get_collaborator_permission",
                json!({"owner": "o", "repo": "r"}),
                "get_collaborator_permission: missing owner/repo/username",
            ),
            (
                "issue_read",
                json!({"owner": "o", "repo": "r"}),
                "issue_read: missing owner/repo/issue_number",
            ),
            (
                "list_issues",
                json!({"owner": "o", "repo": "r"}),
                "unsupported tool: list_issues",
            ),
            ("", json!({}), "unsupported tool: "),
            (
                "issue_read",
                json!("not-a-map"),
                "unexpected args type for issue_read",
            ),
        ];
        for (tool, args, error) in cases {
            assert_eq!(lookup_path(tool, &args).unwrap_err(), error, "{tool}");
        }
    }

    #[tokio::test]
    async fn client_auth_is_scoped_to_the_request() {
        assert_eq!(current_client_auth(), None);
        let seen =
            with_client_auth(Some("token c".to_owned()), async { current_client_auth() }).await;
        assert_eq!(seen.as_deref(), Some("token c"));
        assert_eq!(current_client_auth(), None);
    }
}
