//! The demo data set: repositories of three owners, issues and pull requests
//! by users of every standing, comments, commits and files — generated
//! deterministically — and its JSON rendering in GitHub API shapes.

use serde_json::{Value, json};

/// Login of the authenticated user (author of everything the write tools create).
pub const VIEWER: &str = "octocat";

/// A repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: u64,
    pub owner: String,
    pub name: String,
    pub private: bool,
    pub description: String,
    pub language: String,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// A comment on an issue or pull request.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    pub body: String,
    pub hour: u64,
}

/// The pull-request part of an issue.
#[derive(Debug, Clone)]
pub struct PullInfo {
    pub head_ref: String,
    /// `owner/name` of the head repository (a fork when it differs).
    pub head_repo: String,
    pub merged: bool,
    pub draft: bool,
    pub files: Vec<ChangedFile>,
}

/// A file a pull request or commit changes.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    pub filename: String,
    pub additions: u64,
    pub deletions: u64,
    pub patch: String,
}

/// An issue, or a pull request when `pull` is set (they share numbers).
#[derive(Debug, Clone)]
pub struct Issue {
    pub id: u64,
    pub repo: usize,
    pub number: u64,
    pub title: String,
    pub body: String,
    pub open: bool,
    pub author: String,
    pub labels: Vec<String>,
    pub comments: Vec<Comment>,
    pub hour: u64,
    pub pull: Option<PullInfo>,
}

/// A commit on a branch.
#[derive(Debug, Clone)]
pub struct Commit {
    pub repo: usize,
    pub sha: String,
    pub branch: String,
    pub message: String,
    pub author: String,
    pub hour: u64,
    pub files: Vec<ChangedFile>,
}

/// A file in a repository's default branch.
#[derive(Debug, Clone)]
pub struct File {
    pub repo: usize,
    pub path: String,
    pub content: String,
}

/// The whole data set. Not thread-safe by itself; the server keeps it
/// behind a mutex.
#[derive(Debug, Clone)]
pub struct DemoData {
    pub repos: Vec<Repo>,
    pub issues: Vec<Issue>,
    pub commits: Vec<Commit>,
    pub files: Vec<File>,
    next_id: u64,
}

/// GitHub's `author_association` of `login` in a repository of `owner`.
pub fn association(login: &str, owner: &str) -> &'static str {
    match (owner, login) {
        ("octo-org", "octocat") | ("acme", "wile") | ("mona", "mona") => "OWNER",
        ("octo-org", "alice") | ("acme", "roadrunner") => "MEMBER",
        (_, "carol") => "COLLABORATOR",
        (_, "bob") => "CONTRIBUTOR",
        (_, "zed") => "FIRST_TIME_CONTRIBUTOR",
        _ => "NONE",
    }
}

/// Issue/PR authors cycle through every standing.
fn authors(owner: &str) -> [&'static str; 8] {
    let (owner_login, member) = match owner {
        "octo-org" => ("octocat", "alice"),
        "acme" => ("wile", "roadrunner"),
        _ => ("mona", "mona"),
    };
    [
        owner_login,
        member,
        "carol",
        "bob",
        "zed",
        "eve",
        "dependabot[bot]",
        "mallory",
    ]
}

/// A deterministic 64-bit mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic 40-hex-digit SHA-like id.
fn sha(seed: u64) -> String {
    let (a, b, c) = (mix(seed), mix(seed ^ 0x5555), mix(seed ^ 0xaaaa));
    format!("{a:016x}{b:016x}{:08x}", c as u32)
}

const WORDS: &[&str] = &[
    "cache", "flaky", "timeout", "parser", "memory", "login", "token", "render", "retry", "config",
    "deploy", "docs", "search", "label", "policy", "guard", "stream", "buffer",
];

fn words(seed: u64, count: usize) -> String {
    (0..count)
        .map(|i| WORDS[(mix(seed + i as u64) % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// `YYYY-MM-DDTHH:00:00Z`, `hour` hours after 2025-01-01.
pub fn timestamp(hour: u64) -> String {
    let days = (hour / 24) as i64 + 20089; // days from 1970-01-01 to 2025-01-01
    // Civil date from days since the epoch (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:00:00Z", hour % 24)
}

/// Repositories: (owner, name, private, issues, pull requests).
const REPOS: &[(&str, &str, bool, u64, u64)] = &[
    ("octo-org", "api", false, 150, 12),
    ("octo-org", "secret", true, 12, 6),
    ("octo-org", "firehose", false, 300, 2),
    ("acme", "web", false, 16, 6),
    ("acme", "internal", true, 10, 4),
    ("mona", "dotfiles", false, 4, 2),
];

/// Bytes of body of each `octo-org/firehose` issue (so a page of 100 is ~1 MiB).
const FIREHOSE_BODY_BYTES: usize = 10_000;

/// Path and size of the large file in `octo-org/api`.
pub const LARGE_FILE_PATH: &str = "data/large.json";
const LARGE_FILE_BYTES: usize = 1024 * 1024;

impl DemoData {
    /// The demo data set (always the same).
    pub fn generate() -> DemoData {
        let mut data = DemoData {
            repos: Vec::new(),
            issues: Vec::new(),
            commits: Vec::new(),
            files: Vec::new(),
            next_id: 1000,
        };
        for (index, &(owner, name, private, issues, pulls)) in REPOS.iter().enumerate() {
            data.repos.push(Repo {
                id: 100 + index as u64,
                owner: owner.to_owned(),
                name: name.to_owned(),
                private,
                description: format!(
                    "{} {name} repository",
                    if private { "Private" } else { "Public" }
                ),
                language: if index % 2 == 0 { "Rust" } else { "TypeScript" }.to_owned(),
            });
            data.generate_repo(index, issues, pulls);
        }
        data
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn generate_repo(&mut self, repo: usize, issues: u64, pulls: u64) {
        let owner = self.repos[repo].owner.clone();
        let full_name = self.repos[repo].full_name();
        let cast = authors(&owner);
        let seed = (repo as u64 + 1) << 32;
        let mut filler: Option<String> = None;
        for number in 1..=issues + pulls {
            let author = cast[((number - 1) % cast.len() as u64) as usize].to_owned();
            let mut labels = Vec::new();
            if number % 3 == 0 {
                labels.push("bug".to_owned());
            }
            if number % 4 == 0 {
                labels.push("enhancement".to_owned());
            }
            if number % 10 == 0 {
                labels.push("safe".to_owned());
            }
            let comments = (0..number % 3)
                .map(|c| Comment {
                    id: self.take_id(),
                    author: cast[((number + c + 1) % cast.len() as u64) as usize].to_owned(),
                    body: format!(
                        "Comment {c} on #{number}: {}",
                        words(seed + number * 7 + c, 6)
                    ),
                    hour: number * 5 + c + 1,
                })
                .collect();
            let topic = words(seed + number, 3);
            let is_pull = number > issues;
            let mut body = format!(
                "Reported by {author}. Steps: {}.",
                words(seed + number * 3, 12)
            );
            if self.repos[repo].name == "firehose" {
                body.push(' ');
                body.push_str(filler.get_or_insert_with(firehose_filler));
            }
            let pull = is_pull.then(|| {
                let forked = matches!(
                    association(&author, &owner),
                    "CONTRIBUTOR" | "FIRST_TIME_CONTRIBUTOR" | "NONE"
                );
                PullInfo {
                    head_ref: format!("feature/{number}"),
                    head_repo: if forked {
                        format!("{author}/{}", self.repos[repo].name)
                    } else {
                        full_name.clone()
                    },
                    merged: number % 3 == 0,
                    draft: number % 5 == 0,
                    files: vec![ChangedFile {
                        filename: format!("src/feature_{number}.rs"),
                        additions: number % 40 + 1,
                        deletions: number % 7,
                        patch: format!("@@ -0,0 +1 @@\n+// {topic}\n"),
                    }],
                }
            });
            let merged = pull.as_ref().is_some_and(|p| p.merged);
            let id = self.take_id();
            self.issues.push(Issue {
                id,
                repo,
                number,
                title: format!("{}{topic}", if is_pull { "Fix " } else { "" }),
                body,
                open: !merged && number % 5 != 0,
                author,
                labels,
                comments,
                hour: number * 5,
                pull,
            });
        }
        for index in 0..30u64 {
            let branch = if index < 25 {
                "main"
            } else {
                "feature/experiment"
            };
            let author = cast[(index % 4) as usize].to_owned();
            self.commits.push(Commit {
                repo,
                sha: sha(seed + index),
                branch: branch.to_owned(),
                message: format!(
                    "{} {}",
                    if index % 2 == 0 { "Add" } else { "Fix" },
                    words(seed + index * 11, 4)
                ),
                author,
                hour: 1000 - index * 7,
                files: vec![ChangedFile {
                    filename: format!("src/module_{}.rs", index % 6),
                    additions: index % 9 + 1,
                    deletions: index % 4,
                    patch: format!("@@ -1 +1 @@\n-old {index}\n+new {index}\n"),
                }],
            });
        }
        let name = self.repos[repo].name.clone();
        let mut files = vec![
            (
                "README.md".to_owned(),
                format!("# {full_name}\n\n{}\n", words(seed, 20)),
            ),
            (
                "Cargo.toml".to_owned(),
                format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            ),
            (
                "src/main.rs".to_owned(),
                format!(
                    "fn main() {{\n    println!(\"{name}: {}\");\n}}\n",
                    words(seed + 5, 3)
                ),
            ),
            (
                "docs/guide.md".to_owned(),
                format!(
                    "# Guide\n\nSearch, label and guard {name}. {}\n",
                    words(seed + 9, 10)
                ),
            ),
        ];
        if full_name == "octo-org/api" {
            files.push((LARGE_FILE_PATH.to_owned(), large_json()));
        }
        if full_name == "acme/internal" {
            files.push((
                "secrets/README.md".to_owned(),
                "Internal credentials rotation runbook.\n".to_owned(),
            ));
        }
        for (path, content) in files {
            self.files.push(File {
                repo,
                path,
                content,
            });
        }
    }

    /// The index of repository `owner/name` (case-insensitive).
    pub fn repo_index(&self, owner: &str, name: &str) -> Option<usize> {
        self.repos
            .iter()
            .position(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name))
    }

    /// The issue or pull request `number` of repository `repo`.
    pub fn issue(&self, repo: usize, number: u64) -> Option<&Issue> {
        self.issues
            .iter()
            .find(|i| i.repo == repo && i.number == number)
    }

    pub fn issue_mut(&mut self, repo: usize, number: u64) -> Option<&mut Issue> {
        self.issues
            .iter_mut()
            .find(|i| i.repo == repo && i.number == number)
    }

    /// Creates an issue by the viewer and returns it.
    pub fn create_issue(
        &mut self,
        repo: usize,
        title: String,
        body: String,
        labels: Vec<String>,
    ) -> &Issue {
        let number = self
            .issues
            .iter()
            .filter(|i| i.repo == repo)
            .map(|i| i.number)
            .max()
            .unwrap_or(0)
            + 1;
        let id = self.take_id();
        self.issues.push(Issue {
            id,
            repo,
            number,
            title,
            body,
            open: true,
            author: VIEWER.to_owned(),
            labels,
            comments: Vec::new(),
            hour: 2000 + number,
            pull: None,
        });
        &self.issues[self.issues.len() - 1]
    }

    /// Adds a comment by the viewer to issue `number` and returns it.
    pub fn add_comment(&mut self, repo: usize, number: u64, body: String) -> Option<Comment> {
        let id = self.take_id();
        let issue = self.issue_mut(repo, number)?;
        let comment = Comment {
            id,
            author: VIEWER.to_owned(),
            body,
            hour: 3000 + id,
        };
        issue.comments.push(comment.clone());
        Some(comment)
    }

    // ---- JSON rendering in GitHub API shapes ----

    pub fn user_json(login: &str) -> Value {
        let kind = if login.ends_with("[bot]") {
            "Bot"
        } else if matches!(login, "octo-org" | "acme") {
            "Organization"
        } else {
            "User"
        };
        json!({
            "login": login,
            "id": mix(login.len() as u64 ^ login.bytes().map(u64::from).sum::<u64>()) % 1_000_000,
            "type": kind,
            "html_url": format!("https://github.com/{login}"),
        })
    }

    pub fn repo_json(&self, repo: usize) -> Value {
        let r = &self.repos[repo];
        let full = r.full_name();
        json!({
            "id": r.id,
            "name": r.name,
            "full_name": full,
            "private": r.private,
            "visibility": if r.private { "private" } else { "public" },
            "owner": DemoData::user_json(&r.owner),
            "html_url": format!("https://github.com/{full}"),
            "description": r.description,
            "fork": false,
            "default_branch": "main",
            "language": r.language,
            "stargazers_count": r.id % 97,
            "open_issues_count": self.issues.iter().filter(|i| i.repo == repo && i.open).count(),
            "created_at": timestamp(0),
            "updated_at": timestamp(r.id),
        })
    }

    fn labels_json(issue: &Issue) -> Value {
        issue
            .labels
            .iter()
            .map(|name| json!({"id": mix(name.len() as u64), "name": name, "color": "ededed", "description": ""}))
            .collect()
    }

    /// An issue as the REST API returns it (pull requests carry `pull_request`).
    pub fn issue_json(&self, issue: &Issue) -> Value {
        let repo = &self.repos[issue.repo];
        let full = repo.full_name();
        let kind = if issue.pull.is_some() {
            "pull"
        } else {
            "issues"
        };
        let mut value = json!({
            "id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": if issue.open { "open" } else { "closed" },
            "locked": false,
            "user": DemoData::user_json(&issue.author),
            "author_association": association(&issue.author, &repo.owner),
            "labels": DemoData::labels_json(issue),
            "assignees": [],
            "comments": issue.comments.len(),
            "created_at": timestamp(issue.hour),
            "updated_at": timestamp(issue.hour + 3),
            "closed_at": if issue.open { Value::Null } else { json!(timestamp(issue.hour + 9)) },
            "html_url": format!("https://github.com/{full}/{kind}/{}", issue.number),
            "url": format!("https://api.github.com/repos/{full}/issues/{}", issue.number),
            "repository_url": format!("https://api.github.com/repos/{full}"),
        });
        if let Some(pull) = &issue.pull {
            value["pull_request"] = json!({
                "url": format!("https://api.github.com/repos/{full}/pulls/{}", issue.number),
                "html_url": format!("https://github.com/{full}/pull/{}", issue.number),
                "merged_at": if pull.merged { json!(timestamp(issue.hour + 9)) } else { Value::Null },
            });
        }
        value
    }

    /// A pull request as the REST API returns it.
    pub fn pull_json(&self, issue: &Issue) -> Value {
        let repo = &self.repos[issue.repo];
        let full = repo.full_name();
        let Some(pull) = &issue.pull else {
            return self.issue_json(issue);
        };
        let base_repo = self.repo_json(issue.repo);
        let head_repo = if pull.head_repo == full {
            base_repo.clone()
        } else {
            json!({"full_name": pull.head_repo, "private": repo.private, "fork": true,
                   "owner": DemoData::user_json(pull.head_repo.split('/').next().unwrap_or(""))})
        };
        let (additions, deletions) = pull
            .files
            .iter()
            .fold((0, 0), |(a, d), f| (a + f.additions, d + f.deletions));
        json!({
            "id": issue.id,
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": if issue.open { "open" } else { "closed" },
            "draft": pull.draft,
            "merged": pull.merged,
            "merged_at": if pull.merged { json!(timestamp(issue.hour + 9)) } else { Value::Null },
            "user": DemoData::user_json(&issue.author),
            "author_association": association(&issue.author, &repo.owner),
            "labels": DemoData::labels_json(issue),
            "head": {"ref": pull.head_ref, "sha": sha(issue.id), "label": format!("{}:{}", pull.head_repo.split('/').next().unwrap_or(""), pull.head_ref), "repo": head_repo},
            "base": {"ref": "main", "sha": sha(issue.id + 1), "label": format!("{}:main", repo.owner), "repo": base_repo},
            "comments": issue.comments.len(),
            "additions": additions,
            "deletions": deletions,
            "changed_files": pull.files.len(),
            "created_at": timestamp(issue.hour),
            "updated_at": timestamp(issue.hour + 3),
            "closed_at": if issue.open { Value::Null } else { json!(timestamp(issue.hour + 9)) },
            "html_url": format!("https://github.com/{full}/pull/{}", issue.number),
            "url": format!("https://api.github.com/repos/{full}/pulls/{}", issue.number),
        })
    }

    pub fn comment_json(&self, comment: &Comment, issue: &Issue) -> Value {
        let repo = &self.repos[issue.repo];
        let full = repo.full_name();
        json!({
            "id": comment.id,
            "body": comment.body,
            "user": DemoData::user_json(&comment.author),
            "author_association": association(&comment.author, &repo.owner),
            "created_at": timestamp(comment.hour),
            "updated_at": timestamp(comment.hour),
            "html_url": format!("https://github.com/{full}/issues/{}#issuecomment-{}", issue.number, comment.id),
        })
    }

    /// A commit as `list_commits` returns it (`with_files`: as `get_commit`).
    pub fn commit_json(&self, commit: &Commit, with_files: bool) -> Value {
        let full = self.repos[commit.repo].full_name();
        let mut value = json!({
            "sha": commit.sha,
            "html_url": format!("https://github.com/{full}/commit/{}", commit.sha),
            "commit": {
                "message": commit.message,
                "author": {"name": commit.author, "email": format!("{}@users.noreply.github.com", commit.author), "date": timestamp(commit.hour)},
                "committer": {"name": commit.author, "email": format!("{}@users.noreply.github.com", commit.author), "date": timestamp(commit.hour)},
            },
            "author": DemoData::user_json(&commit.author),
            "committer": DemoData::user_json(&commit.author),
        });
        if with_files {
            let files: Vec<Value> = commit
                .files
                .iter()
                .map(|f| json!({"filename": f.filename, "status": "modified", "additions": f.additions, "deletions": f.deletions, "changes": f.additions + f.deletions, "patch": f.patch}))
                .collect();
            let (additions, deletions) = commit
                .files
                .iter()
                .fold((0, 0), |(a, d), f| (a + f.additions, d + f.deletions));
            value["stats"] = json!({"additions": additions, "deletions": deletions, "total": additions + deletions});
            value["files"] = Value::Array(files);
        }
        value
    }

    /// A directory entry or file metadata as the contents API returns it.
    pub fn content_entry_json(&self, repo: usize, path: &str, is_dir: bool, size: usize) -> Value {
        let full = self.repos[repo].full_name();
        let name = path.rsplit('/').next().unwrap_or(path);
        json!({
            "type": if is_dir { "dir" } else { "file" },
            "name": name,
            "path": path,
            "sha": sha(mix(path.len() as u64) ^ repo as u64 ^ path.bytes().map(u64::from).sum::<u64>()),
            "size": size,
            "url": format!("https://api.github.com/repos/{full}/contents/{path}"),
            "html_url": format!("https://github.com/{full}/{}/main/{path}", if is_dir { "tree" } else { "blob" }),
            "download_url": if is_dir { Value::Null } else { json!(format!("https://raw.githubusercontent.com/{full}/main/{path}")) },
        })
    }
}

/// The text that pads each `octo-org/firehose` issue body.
fn firehose_filler() -> String {
    let mut text = String::with_capacity(FIREHOSE_BODY_BYTES + 64);
    let mut seed = 7;
    while text.len() < FIREHOSE_BODY_BYTES {
        text.push_str(&words(seed, 8));
        text.push(' ');
        seed += 8;
    }
    text
}

/// About 1 MiB of JSON (an array of records).
fn large_json() -> String {
    let mut out = String::with_capacity(LARGE_FILE_BYTES + 256);
    out.push('[');
    let mut index = 0u64;
    while out.len() < LARGE_FILE_BYTES {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{index},\"name\":\"record-{index}\",\"tags\":\"{}\",\"checksum\":\"{}\"}}",
            words(index, 6),
            sha(index)
        ));
        index += 1;
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_set_is_deterministic_and_complete() {
        let a = DemoData::generate();
        let b = DemoData::generate();
        assert_eq!(a.issues.len(), b.issues.len());
        assert_eq!(a.commits[7].sha, b.commits[7].sha);
        assert_eq!(a.commits[7].sha.len(), 40);
        let api = a.repo_index("Octo-Org", "API").unwrap();
        assert_eq!(
            a.issues
                .iter()
                .filter(|i| i.repo == api && i.pull.is_none())
                .count(),
            150
        );
        // Every standing appears among the authors.
        let mut standings: Vec<&str> = a
            .issues
            .iter()
            .map(|i| association(&i.author, &a.repos[i.repo].owner))
            .collect();
        standings.sort_unstable();
        standings.dedup();
        assert_eq!(
            standings,
            vec![
                "COLLABORATOR",
                "CONTRIBUTOR",
                "FIRST_TIME_CONTRIBUTOR",
                "MEMBER",
                "NONE",
                "OWNER"
            ]
        );
        assert!(a.issues.iter().any(|i| i.author == "dependabot[bot]"));
        let large = a.files.iter().find(|f| f.path == LARGE_FILE_PATH).unwrap();
        assert!(large.content.len() >= LARGE_FILE_BYTES);
        assert!(serde_json::from_str::<Value>(&large.content).is_ok());
    }

    #[test]
    fn timestamps_are_calendar_dates() {
        assert_eq!(timestamp(0), "2025-01-01T00:00:00Z");
        assert_eq!(timestamp(24 * 59 + 5), "2025-03-01T05:00:00Z");
        assert_eq!(timestamp(24 * 365), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn rendered_shapes_carry_what_guards_read() {
        let data = DemoData::generate();
        let secret = data.repo_index("octo-org", "secret").unwrap();
        let issue = data.issue(secret, 2).unwrap();
        let value = data.issue_json(issue);
        assert_eq!(value["user"]["login"], "alice");
        assert_eq!(value["author_association"], "MEMBER");
        assert_eq!(
            value["repository_url"],
            "https://api.github.com/repos/octo-org/secret"
        );
        let repo = data.repo_json(secret);
        assert_eq!(repo["private"], true);
        assert_eq!(repo["visibility"], "private");
        assert_eq!(repo["owner"]["login"], "octo-org");
        let pull = data
            .issues
            .iter()
            .find(|i| i.pull.is_some() && i.repo == secret)
            .unwrap();
        let value = data.pull_json(pull);
        assert_eq!(value["base"]["repo"]["full_name"], "octo-org/secret");
        assert_eq!(value["base"]["repo"]["private"], true);
    }
}
