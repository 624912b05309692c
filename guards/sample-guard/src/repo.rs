//! Repository references (`owner/name`, lower-cased) and where to find them
//! in tool arguments, search queries and GitHub API objects.

use serde_json::Value;

/// A repository, owner and name lower-cased (GitHub names are
/// case-insensitive; tags are compared exactly).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    /// A repository from its owner and name (non-empty, without `/`).
    pub fn new(owner: &str, name: &str) -> Option<RepoRef> {
        let (owner, name) = (owner.trim(), name.trim());
        let valid = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains(char::is_whitespace);
        (valid(owner) && valid(name)).then(|| RepoRef {
            owner: owner.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        })
    }

    /// Parses `owner/name`.
    pub fn parse(full_name: &str) -> Option<RepoRef> {
        let (owner, name) = full_name.trim().split_once('/')?;
        RepoRef::new(owner, name)
    }

    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// From the `owner` and `repo` tool arguments.
    pub fn from_args(args: &Value) -> Option<RepoRef> {
        RepoRef::new(args.get("owner")?.as_str()?, args.get("repo")?.as_str()?)
    }

    /// From a `repo:owner/name` qualifier of a search query.
    pub fn from_query(query: &str) -> Option<RepoRef> {
        query
            .split_whitespace()
            .find_map(|term| term.strip_prefix("repo:"))
            .and_then(RepoRef::parse)
    }

    /// From an API URL (`…/repos/o/r…`) or a web URL (`https://github.com/o/r/…`).
    pub fn from_url(url: &str) -> Option<RepoRef> {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let mut segments = rest.split('/').skip(1);
        let mut owner = segments.next()?;
        if owner == "repos" {
            owner = segments.next()?;
        }
        RepoRef::new(owner, segments.next()?)
    }

    /// From a GitHub object: `repository.full_name`, `repository_url`,
    /// `base.repo.full_name` or `html_url` (REST), else
    /// `repository.nameWithOwner` or the web `url` (GraphQL), in that order.
    pub fn from_object(object: &Value) -> Option<RepoRef> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        text("/repository/full_name")
            .and_then(RepoRef::parse)
            .or_else(|| text("/repository_url").and_then(RepoRef::from_url))
            .or_else(|| text("/base/repo/full_name").and_then(RepoRef::parse))
            .or_else(|| text("/html_url").and_then(RepoRef::from_url))
            .or_else(|| text("/repository/nameWithOwner").and_then(RepoRef::parse))
            .or_else(|| {
                text("/url")
                    .filter(|url| {
                        url.contains("://github.com/") || url.contains("://www.github.com/")
                    })
                    .and_then(RepoRef::from_url)
            })
    }
}

/// The visibility a GitHub repository object states: `private` or
/// `isPrivate` (GraphQL) (bool), or `visibility` (`public`, any case, is the
/// only public value).
pub fn stated_privacy(repository: &Value) -> Option<bool> {
    for key in ["private", "isPrivate"] {
        if let Some(private) = repository.get(key).and_then(Value::as_bool) {
            return Some(private);
        }
    }
    repository
        .get("visibility")
        .and_then(Value::as_str)
        .map(|visibility| !visibility.eq_ignore_ascii_case("public"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_names_args_queries_and_urls() {
        let expected = RepoRef::new("octo-org", "api").unwrap();
        assert_eq!(RepoRef::parse("Octo-Org/API"), Some(expected.clone()));
        assert_eq!(
            RepoRef::from_args(&json!({"owner": "octo-org", "repo": "api"})),
            Some(expected.clone())
        );
        assert_eq!(
            RepoRef::from_query("is:open repo:octo-org/api label:bug"),
            Some(expected.clone())
        );
        assert_eq!(
            RepoRef::from_url("https://api.github.com/repos/octo-org/api"),
            Some(expected.clone())
        );
        assert_eq!(
            RepoRef::from_url("https://github.com/octo-org/api/issues/3"),
            Some(expected.clone())
        );
        assert_eq!(RepoRef::from_args(&json!({"owner": "o"})), None);
        assert_eq!(RepoRef::parse("o/"), None);
        assert_eq!(RepoRef::from_query("bug"), None);
        assert_eq!(expected.full_name(), "octo-org/api");
    }

    #[test]
    fn finds_the_repository_of_api_objects() {
        let issue = json!({"repository_url": "https://api.github.com/repos/acme/web"});
        assert_eq!(RepoRef::from_object(&issue), RepoRef::parse("acme/web"));
        let code = json!({"repository": {"full_name": "acme/internal", "private": true}});
        assert_eq!(RepoRef::from_object(&code), RepoRef::parse("acme/internal"));
        assert_eq!(stated_privacy(&code["repository"]), Some(true));
        assert_eq!(
            stated_privacy(&json!({"visibility": "internal"})),
            Some(true)
        );
        assert_eq!(
            stated_privacy(&json!({"visibility": "public"})),
            Some(false)
        );
        assert_eq!(stated_privacy(&json!({})), None);
    }

    #[test]
    fn finds_the_repository_of_graphql_objects() {
        let issue = json!({"repository": {"nameWithOwner": "Acme/Web", "isPrivate": false}});
        assert_eq!(RepoRef::from_object(&issue), RepoRef::parse("acme/web"));
        assert_eq!(stated_privacy(&issue["repository"]), Some(false));
        assert_eq!(
            stated_privacy(&json!({"visibility": "PUBLIC"})),
            Some(false)
        );
        let by_url = json!({"url": "https://github.com/octo-org/api/issues/3"});
        assert_eq!(
            RepoRef::from_object(&by_url),
            RepoRef::parse("octo-org/api")
        );
        // An API url of another object is not a repository reference.
        assert_eq!(
            RepoRef::from_object(&json!({"url": "https://api.github.com/notifications/threads/1"})),
            None
        );
    }
}
