//! Labels of GitHub objects under a policy: issues, pull requests,
//! comments, commits, files, code hits and repositories.

use serde_json::{Value, json};

use crate::facts::{PullRequestFacts, RepoFacts, author_association, author_login, label_names};
use crate::policy::{Level, Policy};
use crate::repo::{RepoRef, stated_privacy};

/// A description with secrecy and integrity tags, as the ABI spells labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    pub description: String,
    pub secrecy: Vec<String>,
    pub integrity: Vec<String>,
}

impl Labels {
    /// Empty labels (public, untrusted) with a description.
    pub fn empty(description: impl Into<String>) -> Labels {
        Labels {
            description: description.into(),
            ..Labels::default()
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "description": self.description,
            "secrecy": self.secrecy,
            "integrity": self.integrity,
        })
    }
}

/// Labels objects for one call: the instance's policy and memoised facts.
pub struct Labeller<'a> {
    pub policy: &'a Policy,
    pub facts: &'a mut RepoFacts,
}

impl Labeller<'_> {
    /// Labels of something in `repo` at `level`. `stated_private` is the
    /// visibility the call's data states, if any.
    pub fn repo_item(
        &mut self,
        repo: &RepoRef,
        stated_private: Option<bool>,
        level: Option<Level>,
        description: String,
    ) -> Labels {
        let private = match stated_private {
            Some(private) => {
                self.facts.note_privacy(repo, private);
                private
            }
            None => self.facts.is_private(repo),
        };
        Labels {
            description,
            secrecy: self.policy.item_secrecy(repo, private),
            integrity: self.policy.item_integrity(repo, private, level),
        }
    }

    /// The level of content by an author, raised to approved by an
    /// approval label (blocked authors stay without integrity).
    fn authored_level(
        &self,
        login: Option<&str>,
        association: Option<&str>,
        labels: &[String],
    ) -> Option<Level> {
        let level = self.policy.author_level(login, association)?;
        let approved_by_label = labels.iter().any(|name| {
            self.policy
                .approval_labels
                .contains(&name.to_ascii_lowercase())
        });
        Some(if approved_by_label {
            level.max(Level::Approved)
        } else {
            level
        })
    }

    /// An issue (or an issue-shaped search hit). Its repository comes from
    /// the object, else `fallback`.
    pub fn issue(&mut self, issue: &Value, fallback: Option<&RepoRef>) -> Labels {
        let number = issue.get("number").and_then(Value::as_u64).unwrap_or(0);
        let Some(repo) = RepoRef::from_object(issue).or_else(|| fallback.cloned()) else {
            return Labels::empty(format!("issue #{number}"));
        };
        let is_pull_request = issue.get("pull_request").is_some()
            || issue.get("__typename").and_then(Value::as_str) == Some("PullRequest")
            || issue.get("mergedAt").is_some()
            || issue.get("merged").is_some();
        let mut login = author_login(issue).map(str::to_owned);
        let mut association = author_association(issue).map(str::to_owned);
        if association.is_none() && number > 0 {
            // An object without its author's standing (a GraphQL query that
            // did not select it): look it up.
            let looked_up = if is_pull_request {
                self.facts.pull_request(&repo, number)
            } else {
                self.facts.issue(&repo, number)
            };
            if let Some(facts) = looked_up {
                login = login.or(facts.author);
                association = facts.association;
            }
        }
        let (login, association) = (login.as_deref(), association.as_deref());
        let merged_pr = issue
            .pointer("/pull_request/merged_at")
            .or_else(|| issue.get("mergedAt"))
            .is_some_and(|at| !at.is_null())
            || issue.get("merged").and_then(Value::as_bool) == Some(true);
        let level = self
            .authored_level(login, association, &label_names(issue))
            .map(|level| if merged_pr { Level::Merged } else { level });
        let stated = issue.get("repository").and_then(stated_privacy);
        let kind = if is_pull_request {
            "pull request"
        } else {
            "issue"
        };
        self.repo_item(
            &repo,
            stated,
            level,
            format!("{kind} {}#{number}", repo.full_name()),
        )
    }

    /// A pull request; a merged one is `merged` unless its author is blocked.
    pub fn pull_request(&mut self, pr: &Value, fallback: Option<&RepoRef>) -> Labels {
        let number = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
        let Some(repo) = RepoRef::from_object(pr).or_else(|| fallback.cloned()) else {
            return Labels::empty(format!("pull request #{number}"));
        };
        let mut facts = PullRequestFacts::from_object(pr);
        if facts.association.is_none() && number > 0 {
            // A GraphQL pull request without its author's standing.
            if let Some(looked_up) = self.facts.pull_request(&repo, number) {
                facts.author = facts.author.or(looked_up.author);
                facts.association = looked_up.association;
                facts.merged |= looked_up.merged;
            }
        } else {
            self.facts.note_pull_request(&repo, number, facts.clone());
        }
        let stated = pr.pointer("/base/repo").and_then(stated_privacy);
        self.pull_request_facts(&repo, number, &facts, stated)
    }

    /// Labels from a pull request's facts.
    pub fn pull_request_facts(
        &mut self,
        repo: &RepoRef,
        number: u64,
        facts: &PullRequestFacts,
        stated_private: Option<bool>,
    ) -> Labels {
        let level = self
            .authored_level(
                facts.author.as_deref(),
                facts.association.as_deref(),
                &facts.label_names,
            )
            .map(|level| if facts.merged { Level::Merged } else { level });
        self.repo_item(
            repo,
            stated_private,
            level,
            format!("pull request {}#{number}", repo.full_name()),
        )
    }

    /// A comment or review on issue/PR `number` of `repo`.
    pub fn comment(&mut self, comment: &Value, repo: &RepoRef, number: u64) -> Labels {
        let level = self
            .policy
            .author_level(author_login(comment), author_association(comment));
        let id = match comment.get("id") {
            Some(Value::String(id)) => id.clone(),
            Some(id) => id.as_u64().unwrap_or(0).to_string(),
            None => "0".to_owned(),
        };
        self.repo_item(
            repo,
            None,
            level,
            format!("comment {id} on {}#{number}", repo.full_name()),
        )
    }

    /// A commit: `merged` when on the default branch, else approved (it
    /// was pushed to the repository); nothing when its author is blocked.
    pub fn commit(&mut self, commit: &Value, repo: &RepoRef, on_default_branch: bool) -> Labels {
        let sha = commit
            .get("sha")
            .or_else(|| commit.get("oid"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let short = sha.get(..7).unwrap_or(sha);
        let login = commit
            .pointer("/author/login")
            .or_else(|| commit.pointer("/author/user/login"))
            .and_then(Value::as_str);
        let level = if login.is_some_and(|login| self.policy.is_blocked(login)) {
            None
        } else if on_default_branch {
            Some(Level::Merged)
        } else {
            Some(Level::Approved)
        };
        self.repo_item(
            repo,
            None,
            level,
            format!("commit {}@{short}", repo.full_name()),
        )
    }

    /// A code search hit (approved: content of the repository).
    pub fn code_hit(&mut self, hit: &Value) -> Labels {
        let path = hit.get("path").and_then(Value::as_str).unwrap_or("");
        let Some(repo) = RepoRef::from_object(hit) else {
            return Labels::empty(format!("code {path}"));
        };
        let stated = hit.get("repository").and_then(stated_privacy);
        self.repo_item(
            &repo,
            stated,
            Some(Level::Approved),
            format!("code {}:{path}", repo.full_name()),
        )
    }

    /// The authenticated user's own profile: public, trusted (the policy
    /// tags of every level up to approved).
    pub fn viewer(&self) -> Labels {
        Labels {
            description: "the authenticated user".to_owned(),
            secrecy: Vec::new(),
            integrity: Level::Approved
                .and_below()
                .map(|level| self.policy.policy_tag(level))
                .collect(),
        }
    }

    /// A notification: content of its repository written by anyone (level
    /// `none`); one without a repository is unlabelled.
    pub fn notification(&mut self, notification: &Value) -> Labels {
        let id = notification.get("id").and_then(Value::as_str).unwrap_or("");
        let Some(repo) = RepoRef::from_object(notification) else {
            return Labels::empty(format!("notification {id}"));
        };
        let stated = notification.get("repository").and_then(stated_privacy);
        self.repo_item(
            &repo,
            stated,
            Some(Level::None),
            format!("notification {id} in {}", repo.full_name()),
        )
    }

    /// Organisation-wide data (organisation profile, projects): private to
    /// the organisation, with no integrity, so only an agent holding
    /// neither integrity requirements nor another scope reads it.
    pub fn organization(&self, owner: Option<&str>) -> Labels {
        let owner = owner.map(str::to_ascii_lowercase);
        Labels {
            description: match &owner {
                Some(owner) => format!("organization {owner}"),
                None => "organization data".to_owned(),
            },
            secrecy: vec![format!(
                "private:{}",
                owner.as_deref().unwrap_or("organization")
            )],
            integrity: Vec::new(),
        }
    }

    /// A repository object (approved metadata; its visibility is stated).
    pub fn repository(&mut self, repository: &Value) -> Labels {
        let Some(repo) = repository
            .get("full_name")
            .and_then(Value::as_str)
            .and_then(RepoRef::parse)
        else {
            return Labels::empty("repository");
        };
        // A repository object that states no visibility is restrictive.
        let private = stated_privacy(repository).unwrap_or(true);
        self.repo_item(
            &repo,
            Some(private),
            Some(Level::Approved),
            format!("repository {}", repo.full_name()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardway_guest::testing;

    fn policy() -> Policy {
        Policy::parse(
            &json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved",
            "blocked-users": ["mallory"], "approval-labels": ["safe"]},
            "trusted-bots": ["dependabot[bot]"]}),
        )
        .unwrap()
    }

    fn labeller_with<'a>(policy: &'a Policy, facts: &'a mut RepoFacts) -> Labeller<'a> {
        facts.note_privacy(&RepoRef::parse("octo-org/api").unwrap(), false);
        facts.note_privacy(&RepoRef::parse("octo-org/secret").unwrap(), true);
        Labeller { policy, facts }
    }

    #[test]
    fn issue_levels_follow_author_standing() {
        let policy = policy();
        let mut facts = RepoFacts::default();
        let mut labeller = labeller_with(&policy, &mut facts);
        let repo = RepoRef::parse("octo-org/api").unwrap();
        let issue = |login: &str, assoc: &str| json!({"number": 5, "user": {"login": login}, "author_association": assoc, "labels": []});
        let member = labeller.issue(&issue("alice", "MEMBER"), Some(&repo));
        assert_eq!(member.description, "issue octo-org/api#5");
        assert!(member.secrecy.is_empty());
        assert!(member.integrity.contains(&"approved:octo-org/*".to_owned()));
        assert!(!member.integrity.iter().any(|t| t.starts_with("merged")));
        let contributor = labeller.issue(&issue("bob", "CONTRIBUTOR"), Some(&repo));
        assert!(
            contributor
                .integrity
                .contains(&"unapproved:octo-org/api".to_owned())
        );
        assert!(
            !contributor
                .integrity
                .contains(&"approved:octo-org/*".to_owned())
        );
        let stranger = labeller.issue(&issue("zed", "FIRST_TIME_CONTRIBUTOR"), Some(&repo));
        assert_eq!(
            stranger.integrity,
            vec!["none:octo-org/api", "none:octo-org/*"]
        );
        let blocked = labeller.issue(&issue("Mallory", "OWNER"), Some(&repo));
        assert!(blocked.integrity.is_empty());
        let bot = labeller.issue(&issue("dependabot[bot]", "NONE"), Some(&repo));
        assert!(bot.integrity.contains(&"approved:octo-org/*".to_owned()));
        let mut labelled = issue("zed", "NONE");
        labelled["labels"] = json!([{"name": "Safe"}]);
        assert!(
            labeller
                .issue(&labelled, Some(&repo))
                .integrity
                .contains(&"approved:octo-org/*".to_owned())
        );
    }

    #[test]
    fn private_issue_in_scope_carries_the_scope_secrecy_tag() {
        let policy = policy();
        let mut facts = RepoFacts::default();
        let mut labeller = labeller_with(&policy, &mut facts);
        let issue = json!({"number": 1, "user": {"login": "a"}, "author_association": "OWNER",
            "repository_url": "https://api.github.com/repos/octo-org/secret"});
        let labels = labeller.issue(&issue, None);
        assert_eq!(labels.secrecy, vec!["private:octo-org"]);
        assert_eq!(labels.description, "issue octo-org/secret#1");
    }

    #[test]
    fn merged_pull_requests_are_merged() {
        let policy = policy();
        let mut facts = RepoFacts::default();
        let mut labeller = labeller_with(&policy, &mut facts);
        let pr = json!({"number": 9, "merged": true, "user": {"login": "zed"},
            "author_association": "NONE",
            "base": {"repo": {"full_name": "octo-org/api", "private": false}}});
        let labels = labeller.pull_request(&pr, None);
        assert_eq!(labels.description, "pull request octo-org/api#9");
        assert!(labels.integrity.contains(&"merged:octo-org/*".to_owned()));
        assert!(labels.integrity.contains(&"none:octo-org/api".to_owned()));
    }

    #[test]
    fn commits_code_and_repositories() {
        let policy = policy();
        let mut facts = RepoFacts::default();
        let mut labeller = labeller_with(&policy, &mut facts);
        let repo = RepoRef::parse("octo-org/api").unwrap();
        let commit = json!({"sha": "0123456789abcdef", "author": {"login": "alice"}});
        let labels = labeller.commit(&commit, &repo, true);
        assert_eq!(labels.description, "commit octo-org/api@0123456");
        assert!(labels.integrity.contains(&"merged:octo-org/api".to_owned()));
        let labels = labeller.commit(&commit, &repo, false);
        assert!(!labels.integrity.contains(&"merged:octo-org/api".to_owned()));
        let blocked = json!({"sha": "ff", "author": {"login": "mallory"}});
        assert!(labeller.commit(&blocked, &repo, true).integrity.is_empty());

        let hit = json!({"path": "src/a.rs", "repository": {"full_name": "acme/internal", "private": true}});
        let labels = labeller.code_hit(&hit);
        assert_eq!(
            labels.secrecy,
            vec!["private:acme", "private:acme/internal"]
        );
        assert_eq!(
            labels.integrity,
            vec![
                "none:acme/internal",
                "unapproved:acme/internal",
                "approved:acme/internal"
            ]
        );

        let labels = labeller.repository(&json!({"full_name": "octo-org/secret", "private": true}));
        assert_eq!(labels.secrecy, vec!["private:octo-org"]);
        // No call_backend was needed: every visibility was known or stated.
        assert_eq!(testing::backend_calls(), 0);
    }
}
