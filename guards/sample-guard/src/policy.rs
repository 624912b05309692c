//! The `allow-only` policy from `label_agent`: validation, normalisation and
//! the tags it gives the agent and items (see the crate docs for the scheme).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::repo::RepoRef;

/// Integrity levels, lowest first. Each level implies every lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Unapproved,
    Approved,
    Merged,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::None,
        Level::Unapproved,
        Level::Approved,
        Level::Merged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Unapproved => "unapproved",
            Level::Approved => "approved",
            Level::Merged => "merged",
        }
    }

    /// Parses a level name, trimmed, any case.
    pub fn parse(text: &str) -> Option<Level> {
        let text = text.trim();
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
    }

    /// This level and every lower one, lowest first.
    pub fn and_below(self) -> impl Iterator<Item = Level> {
        Level::ALL.into_iter().filter(move |level| *level <= self)
    }
}

/// One scoped entry of `repos`: `owner/*`, `owner/repo` or `owner/prefix*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Owner { owner: String },
    Repo { owner: String, repo: String },
    Prefix { owner: String, prefix: String },
}

const SCOPE_ERROR: &str =
    "invalid repos value: expected all, public, or non-empty array of scoped strings";

fn valid_segment(segment: &str, max: usize) -> bool {
    !segment.is_empty()
        && segment.len() <= max
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Scope {
    /// Parses a scope (difc.md §5.3), trimmed.
    pub fn parse(text: &str) -> Option<Scope> {
        let (owner, rest) = text.trim().split_once('/')?;
        if !valid_segment(owner, 39) {
            return None;
        }
        let owner = owner.to_owned();
        if rest == "*" {
            return Some(Scope::Owner { owner });
        }
        if let Some(prefix) = rest.strip_suffix('*') {
            return valid_segment(prefix, 100).then(|| Scope::Prefix {
                owner,
                prefix: prefix.to_owned(),
            });
        }
        valid_segment(rest, 100).then(|| Scope::Repo {
            owner,
            repo: rest.to_owned(),
        })
    }

    /// The scope as written in the policy: `o/*`, `o/r`, `o/p*`.
    pub fn label(&self) -> String {
        match self {
            Scope::Owner { owner } => format!("{owner}/*"),
            Scope::Repo { owner, repo } => format!("{owner}/{repo}"),
            Scope::Prefix { owner, prefix } => format!("{owner}/{prefix}*"),
        }
    }

    /// The secrecy tag an agent holds for this scope (and the tag a private
    /// item in it carries): `private:o`, `private:o/r`, `private:o/p*`.
    pub fn secrecy_tag(&self) -> String {
        match self {
            Scope::Owner { owner } => format!("private:{owner}"),
            Scope::Repo { owner, repo } => format!("private:{owner}/{repo}"),
            Scope::Prefix { owner, prefix } => format!("private:{owner}/{prefix}*"),
        }
    }

    /// Whether the repository lies in this scope.
    pub fn matches(&self, repo: &RepoRef) -> bool {
        match self {
            Scope::Owner { owner } => repo.owner == *owner,
            Scope::Repo { owner, repo: name } => repo.owner == *owner && repo.name == *name,
            Scope::Prefix { owner, prefix } => {
                repo.owner == *owner && repo.name.starts_with(prefix.as_str())
            }
        }
    }

    /// Whether every repository of `other` lies in this (different) scope.
    fn subsumes(&self, other: &Scope) -> bool {
        if self == other {
            return false;
        }
        match (self, other) {
            (Scope::Owner { owner }, o) => o.owner() == owner,
            (Scope::Prefix { owner, prefix }, Scope::Repo { owner: o, repo }) => {
                o == owner && repo.starts_with(prefix.as_str())
            }
            (
                Scope::Prefix { owner, prefix },
                Scope::Prefix {
                    owner: o,
                    prefix: p,
                },
            ) => o == owner && p.starts_with(prefix.as_str()),
            _ => false,
        }
    }

    fn owner(&self) -> &str {
        match self {
            Scope::Owner { owner } | Scope::Repo { owner, .. } | Scope::Prefix { owner, .. } => {
                owner
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scope::Owner { .. } => "Owner",
            Scope::Repo { .. } => "Repo",
            Scope::Prefix { .. } => "RepoPrefix",
        }
    }
}

/// Which repositories the agent may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repos {
    All,
    Public,
    /// Normalised: sorted, without scopes another entry subsumes.
    Scoped(Vec<Scope>),
}

/// A validated `allow-only` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub repos: Repos,
    pub min_integrity: Level,
    /// `All`, `Public`, `Owner`, `Repo`, `RepoPrefix` or `Composite` (from
    /// the policy as given, before normalisation).
    pub scope_kind: &'static str,
    /// Lower-cased logins whose content gets no integrity at all.
    pub blocked_users: BTreeSet<String>,
    /// Lower-cased logins (trusted bots and trusted users) treated as approved.
    pub trusted_logins: BTreeSet<String>,
    /// Lower-cased issue/PR label names that raise an item to approved.
    pub approval_labels: BTreeSet<String>,
}

impl Default for Policy {
    /// The policy applied before `label_agent`: public repositories,
    /// integrity `none` (the gateway's default when no policy is set).
    fn default() -> Self {
        Policy {
            repos: Repos::Public,
            min_integrity: Level::None,
            scope_kind: "Public",
            blocked_users: BTreeSet::new(),
            trusted_logins: BTreeSet::new(),
            approval_labels: BTreeSet::new(),
        }
    }
}

fn string_set(object: &Map<String, Value>, key: &str) -> Result<BTreeSet<String>, String> {
    let Some(value) = object.get(key) else {
        return Ok(BTreeSet::new());
    };
    let Some(items) = value.as_array() else {
        return Err(format!("invalid {key} value: expected array of strings"));
    };
    items
        .iter()
        .map(|item| match item.as_str().map(str::trim) {
            Some(text) if !text.is_empty() => Ok(text.to_ascii_lowercase()),
            _ => Err(format!(
                "invalid {key} value: each entry must be a non-empty string"
            )),
        })
        .collect()
}

impl Policy {
    /// Validates the `label_agent` payload
    /// `{"allow-only": {"repos", "min-integrity", …}, "trusted-bots"?}`.
    ///
    /// # Errors
    /// A message naming the offending key.
    pub fn parse(payload: &Value) -> Result<Policy, String> {
        let Some(top) = payload.as_object() else {
            return Err("policy must be a JSON object".to_owned());
        };
        let Some(allow_only) = top.get("allow-only") else {
            return Err("policy must have a top-level allow-only object".to_owned());
        };
        let Some(allow_only) = allow_only.as_object() else {
            return Err("allow-only must be an object".to_owned());
        };
        let repos_value = allow_only
            .get("repos")
            .ok_or_else(|| "allow-only.repos is required".to_owned())?;
        let level_value = allow_only
            .get("min-integrity")
            .ok_or_else(|| "allow-only.min-integrity is required".to_owned())?;
        let min_integrity = level_value.as_str().and_then(Level::parse).ok_or_else(|| {
            "min-integrity must be one of: none, unapproved, approved, merged".to_owned()
        })?;
        let (repos, scope_kind) = parse_repos(repos_value)?;
        let mut trusted_logins = string_set(allow_only, "trusted-users")?;
        trusted_logins.extend(string_set(top, "trusted-bots")?);
        Ok(Policy {
            repos,
            min_integrity,
            scope_kind,
            blocked_users: string_set(allow_only, "blocked-users")?,
            trusted_logins,
            approval_labels: string_set(allow_only, "approval-labels")?,
        })
    }

    /// The normalised policy echoed in `label_agent`'s answer.
    pub fn normalized(&self) -> Value {
        let repos = match &self.repos {
            Repos::All => json!("all"),
            Repos::Public => json!("public"),
            Repos::Scoped(scopes) => scopes.iter().map(Scope::label).collect(),
        };
        json!({
            "scope_kind": self.scope_kind,
            "min-integrity": self.min_integrity.as_str(),
            "repos": repos,
        })
    }

    /// The policy tag for `level`: `{level}:{scope}` for one scope (`all`,
    /// `public` or the scope as written), `integrity={level};scopes={a},{b}`
    /// for several.
    pub fn policy_tag(&self, level: Level) -> String {
        let level = level.as_str();
        match &self.repos {
            Repos::All => format!("{level}:all"),
            Repos::Public => format!("{level}:public"),
            Repos::Scoped(scopes) if scopes.len() == 1 => format!("{level}:{}", scopes[0].label()),
            Repos::Scoped(scopes) => {
                let labels: Vec<String> = scopes.iter().map(Scope::label).collect();
                format!("integrity={level};scopes={}", labels.join(","))
            }
        }
    }

    /// The agent's secrecy: `*` for `all`, nothing for `public`, the
    /// scopes' secrecy tags otherwise.
    pub fn agent_secrecy(&self) -> Vec<String> {
        match &self.repos {
            Repos::All => vec!["*".to_owned()],
            Repos::Public => Vec::new(),
            Repos::Scoped(scopes) => scopes.iter().map(Scope::secrecy_tag).collect(),
        }
    }

    /// The agent's integrity: the policy tag of `min-integrity` and of every
    /// lower level.
    pub fn agent_integrity(&self) -> Vec<String> {
        self.min_integrity
            .and_below()
            .map(|level| self.policy_tag(level))
            .collect()
    }

    /// Whether the policy admits this repository (given its visibility).
    pub fn covers(&self, repo: &RepoRef, private: bool) -> bool {
        match &self.repos {
            Repos::All => true,
            Repos::Public => !private,
            Repos::Scoped(scopes) => scopes.iter().any(|scope| scope.matches(repo)),
        }
    }

    /// Secrecy of an item of `repo`: empty when public; the secrecy tags of
    /// the policy scopes containing it when private and admitted by scope;
    /// `private:{owner}` and `private:{owner}/{repo}` otherwise.
    pub fn item_secrecy(&self, repo: &RepoRef, private: bool) -> Vec<String> {
        if !private {
            return Vec::new();
        }
        if let Repos::Scoped(scopes) = &self.repos {
            let tags: Vec<String> = scopes
                .iter()
                .filter(|scope| scope.matches(repo))
                .map(Scope::secrecy_tag)
                .collect();
            if !tags.is_empty() {
                return tags;
            }
        }
        vec![
            format!("private:{}", repo.owner),
            format!("private:{}", repo.full_name()),
        ]
    }

    /// Integrity of an item of `repo` at `level` (`None`: blocked, no
    /// integrity): `{l}:{owner}/{repo}` for `level` and every lower one,
    /// plus the policy tag of each such level when the policy admits it.
    pub fn item_integrity(
        &self,
        repo: &RepoRef,
        private: bool,
        level: Option<Level>,
    ) -> Vec<String> {
        let Some(level) = level else {
            return Vec::new();
        };
        let admitted = self.covers(repo, private);
        let full_name = repo.full_name();
        let mut tags = Vec::new();
        for level in level.and_below() {
            tags.push(format!("{}:{full_name}", level.as_str()));
            if admitted {
                let policy_tag = self.policy_tag(level);
                if !tags.contains(&policy_tag) {
                    tags.push(policy_tag);
                }
            }
        }
        tags
    }

    /// The integrity level of content written by `login` with GitHub's
    /// `author_association`: `None` for blocked users; approved for trusted
    /// bots/users and OWNER, MEMBER, COLLABORATOR; unapproved for
    /// CONTRIBUTOR; none otherwise.
    pub fn author_level(&self, login: Option<&str>, association: Option<&str>) -> Option<Level> {
        if let Some(login) = login {
            let login = login.to_ascii_lowercase();
            if self.blocked_users.contains(&login) {
                return None;
            }
            if self.trusted_logins.contains(&login) {
                return Some(Level::Approved);
            }
        }
        let association = association.unwrap_or("").to_ascii_uppercase();
        Some(match association.as_str() {
            "OWNER" | "MEMBER" | "COLLABORATOR" => Level::Approved,
            "CONTRIBUTOR" => Level::Unapproved,
            _ => Level::None,
        })
    }

    /// Whether `login` is blocked.
    pub fn is_blocked(&self, login: &str) -> bool {
        self.blocked_users.contains(&login.to_ascii_lowercase())
    }
}

fn parse_repos(value: &Value) -> Result<(Repos, &'static str), String> {
    if let Some(text) = value.as_str() {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok((Repos::All, "All"));
        }
        if text.eq_ignore_ascii_case("public") {
            return Ok((Repos::Public, "Public"));
        }
        return Err(SCOPE_ERROR.to_owned());
    }
    let Some(entries) = value.as_array().filter(|entries| !entries.is_empty()) else {
        return Err(SCOPE_ERROR.to_owned());
    };
    let mut scopes = Vec::with_capacity(entries.len());
    for entry in entries {
        let scope = entry
            .as_str()
            .and_then(Scope::parse)
            .ok_or_else(|| SCOPE_ERROR.to_owned())?;
        if scopes.contains(&scope) {
            return Err(SCOPE_ERROR.to_owned());
        }
        scopes.push(scope);
    }
    let scope_kind = if scopes.len() == 1 {
        scopes[0].kind()
    } else {
        "Composite"
    };
    let mut normalized: Vec<Scope> = scopes
        .iter()
        .filter(|scope| !scopes.iter().any(|other| other.subsumes(scope)))
        .cloned()
        .collect();
    normalized.sort_by_key(Scope::label);
    Ok((Repos::Scoped(normalized), scope_kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(full: &str) -> RepoRef {
        RepoRef::parse(full).unwrap()
    }

    fn policy(repos: Value, min: &str) -> Policy {
        Policy::parse(&json!({"allow-only": {"repos": repos, "min-integrity": min}})).unwrap()
    }

    #[test]
    fn scopes_parse_per_the_spec() {
        assert_eq!(
            Scope::parse(" octo-org/* "),
            Some(Scope::Owner {
                owner: "octo-org".into()
            })
        );
        assert_eq!(Scope::parse("a/api*").unwrap().label(), "a/api*");
        assert_eq!(
            Scope::parse("a_b/r-1").unwrap().secrecy_tag(),
            "private:a_b/r-1"
        );
        for bad in [
            "Owner/repo",
            "owner/repo.name",
            "owner/",
            "owner/repo/x",
            "owner/**",
            "owner/re*po",
            "owner/*p",
            "/repo",
            "noslash",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn policy_validation_rejects_bad_shapes() {
        let err = |payload: Value| Policy::parse(&payload).unwrap_err();
        assert!(
            err(json!({"allow-only": {"repos": [], "min-integrity": "none"}})).contains("repos")
        );
        assert!(
            err(json!({"allow-only": {"repos": ["a/b", "a/b"], "min-integrity": "none"}}))
                .contains("repos")
        );
        assert!(
            err(json!({"allow-only": {"repos": "all", "min-integrity": "high"}}))
                .contains("min-integrity")
        );
        assert!(
            err(json!({"allowonly": {"repos": "all", "min-integrity": "none"}}))
                .contains("allow-only")
        );
        assert!(
            err(json!({"allow-only": {"repos": "all", "integrity": "none"}}))
                .contains("min-integrity")
        );
        assert!(
            err(
                json!({"allow-only": {"repos": "all", "min-integrity": "none",
            "blocked-users": ["  "]}})
            )
            .contains("blocked-users")
        );
        assert!(err(json!(["x"])).contains("object"));
    }

    #[test]
    fn owner_scope_subsumes_its_repos_in_agent_labels() {
        let p = Policy::parse(
            &json!({"allow-only": {"repos": ["octo-org/*", "octo-org/api"],
            "min-integrity": " Approved "}, "trusted-bots": ["dependabot[bot]"]}),
        )
        .unwrap();
        assert_eq!(p.scope_kind, "Composite");
        assert_eq!(p.agent_secrecy(), vec!["private:octo-org"]);
        assert_eq!(
            p.agent_integrity(),
            vec![
                "none:octo-org/*",
                "unapproved:octo-org/*",
                "approved:octo-org/*"
            ]
        );
        assert_eq!(
            p.normalized(),
            json!({"scope_kind": "Composite", "min-integrity": "approved", "repos": ["octo-org/*"]})
        );
        assert_eq!(
            p.author_level(Some("Dependabot[bot]"), Some("NONE")),
            Some(Level::Approved)
        );
    }

    #[test]
    fn several_scopes_share_one_composite_integrity_tag() {
        let p = policy(json!(["octo-org/*", "acme/web"]), "unapproved");
        assert_eq!(
            p.agent_integrity(),
            vec![
                "integrity=none;scopes=acme/web,octo-org/*",
                "integrity=unapproved;scopes=acme/web,octo-org/*"
            ]
        );
        assert_eq!(
            p.agent_secrecy(),
            vec!["private:acme/web", "private:octo-org"]
        );
        // An item of either scope carries the composite tags.
        let tags = p.item_integrity(&repo("acme/web"), false, Some(Level::Unapproved));
        assert!(tags.contains(&"integrity=unapproved;scopes=acme/web,octo-org/*".to_owned()));
    }

    #[test]
    fn all_and_public_policies() {
        let all = policy(json!("ALL"), "none");
        assert_eq!(all.agent_secrecy(), vec!["*"]);
        assert_eq!(all.agent_integrity(), vec!["none:all"]);
        assert_eq!(
            all.item_secrecy(&repo("acme/internal"), true),
            vec!["private:acme", "private:acme/internal"]
        );
        let public = policy(json!("public"), "merged");
        assert!(public.agent_secrecy().is_empty());
        assert_eq!(public.agent_integrity().len(), 4);
        assert!(!public.covers(&repo("acme/internal"), true));
        assert!(public.covers(&repo("acme/web"), false));
    }

    #[test]
    fn item_labels_follow_scope_and_visibility() {
        let p = policy(json!(["octo-org/*"]), "approved");
        let secret = repo("Octo-Org/secret");
        assert_eq!(p.item_secrecy(&secret, true), vec!["private:octo-org"]);
        assert!(p.item_secrecy(&secret, false).is_empty());
        assert_eq!(
            p.item_secrecy(&repo("acme/internal"), true),
            vec!["private:acme", "private:acme/internal"]
        );
        assert_eq!(
            p.item_integrity(&secret, true, Some(Level::Unapproved)),
            vec![
                "none:octo-org/secret",
                "none:octo-org/*",
                "unapproved:octo-org/secret",
                "unapproved:octo-org/*"
            ]
        );
        // Outside the scope: only the repository's own tags.
        assert_eq!(
            p.item_integrity(&repo("acme/web"), false, Some(Level::None)),
            vec!["none:acme/web"]
        );
        assert!(p.item_integrity(&secret, true, None).is_empty());
    }

    #[test]
    fn single_repo_scope_does_not_duplicate_tags() {
        let p = policy(json!(["acme/web"]), "none");
        assert_eq!(
            p.item_integrity(&repo("acme/web"), false, Some(Level::Unapproved)),
            vec!["none:acme/web", "unapproved:acme/web"]
        );
    }

    #[test]
    fn author_standing_maps_to_levels() {
        let p = Policy::parse(
            &json!({"allow-only": {"repos": "all", "min-integrity": "none",
            "blocked-users": ["Mallory"], "trusted-users": ["carol"]}}),
        )
        .unwrap();
        assert_eq!(
            p.author_level(Some("x"), Some("OWNER")),
            Some(Level::Approved)
        );
        assert_eq!(
            p.author_level(Some("x"), Some("member")),
            Some(Level::Approved)
        );
        assert_eq!(
            p.author_level(Some("x"), Some("COLLABORATOR")),
            Some(Level::Approved)
        );
        assert_eq!(
            p.author_level(Some("x"), Some("CONTRIBUTOR")),
            Some(Level::Unapproved)
        );
        assert_eq!(
            p.author_level(Some("x"), Some("FIRST_TIME_CONTRIBUTOR")),
            Some(Level::None)
        );
        assert_eq!(p.author_level(Some("x"), Some("NONE")), Some(Level::None));
        assert_eq!(p.author_level(None, None), Some(Level::None));
        assert_eq!(p.author_level(Some("mallory"), Some("OWNER")), None);
        assert_eq!(
            p.author_level(Some("Carol"), Some("NONE")),
            Some(Level::Approved)
        );
    }

    #[test]
    fn prefix_scopes_subsume_longer_prefixes_and_repos() {
        let p = policy(json!(["acme/we*", "acme/web", "acme/web-*"]), "none");
        assert_eq!(
            p.repos,
            Repos::Scoped(vec![Scope::parse("acme/we*").unwrap()])
        );
        assert!(p.covers(&repo("acme/webby"), true));
        assert!(!p.covers(&repo("acme/api"), false));
    }
}
