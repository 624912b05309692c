//! guardway's sample DIFC guard for the GitHub MCP server.
//!
//! It labels the GitHub MCP server's tools (issues, pull requests, files,
//! commits, code and repository search, plus write tools labelled `write`)
//! by repository visibility and author standing, under an `allow-only`
//! policy. It is the project's stand-in for the real GitHub guard.
//!
//! # Tag scheme
//!
//! Tags are compared exactly (no prefixes, no globs), a read needs
//! `R.I ⊇ A.I` and `R.S ⊆ A.S`, so the tags an item carries are chosen
//! relative to the session's policy:
//!
//! - **Policy tag** of a level `l`: `l:{scope}` when the normalised policy
//!   has one scope (`octo-org/*`, `acme/web`, `acme/we*`, or `all` /
//!   `public`), `integrity=l;scopes={a},{b}` for several. Normalising drops
//!   scopes another scope contains (`octo-org/api` under `octo-org/*`).
//! - **Agent** (`label_agent`): integrity = the policy tag of
//!   `min-integrity` and of every lower level; secrecy = `private:{owner}`
//!   for `owner/*`, `private:{owner}/{repo}` for `owner/repo`,
//!   `private:{owner}/{prefix}*` for `owner/prefix*`; `*` for `all`, none for
//!   `public`. `difc_mode` is always `filter`.
//! - **Item** in repository `o/r` at level `L` (from the author: OWNER,
//!   MEMBER, COLLABORATOR, trusted bots/users and approval labels →
//!   approved; CONTRIBUTOR → unapproved; anyone else → none; merged pull
//!   requests, default-branch commits and files → merged; blocked users →
//!   no integrity at all): integrity = `l:o/r` for `L` and every lower
//!   level, plus the policy tag of each of those levels when the policy
//!   admits the repository (scope match; `public` admits public ones, `all`
//!   every one). Secrecy = nothing when public; when private, the secrecy
//!   tags of the policy scopes containing it, or `private:o` and
//!   `private:o/r` when no scope does.
//! - **Writes** in `o/r`: operation `write`, secrecy as an item of `o/r`,
//!   integrity = the policy tag of `none` when the policy admits `o/r`,
//!   else `none:o/r`: only agents whose policy admits the repository may
//!   write there, and an agent holding private tags cannot write to a
//!   public repository. Unknown tools are writes with empty labels.
//!
//! So an agent allowed `octo-org/*` at `approved` reads approved, merged
//! items of every `octo-org` repository (public or private), and neither
//! items below approved, nor anything of another owner.
//!
//! Repository visibility comes from the result when it states it
//! (`private`/`visibility`), else from `call_backend("search_repositories",
//! {"query": "repo:o/r"})`, memoised in the instance; an unknown
//! visibility counts as private.

mod facts;
mod guard;
mod labels;
mod policy;
mod repo;
mod tools;

pub use guard::GithubGuard;

guardway_guest::export_guard!(GithubGuard);
