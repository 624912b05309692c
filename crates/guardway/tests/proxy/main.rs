//! `guardway proxy` end to end: the real binary with the real sample guard
//! in front of the mock GitHub API (`tests/python/mock_github.py`), reached
//! by real clients (an HTTP client like curl, and the `gh` CLI over TLS).
//! Every test checks results item by item and what reached the mock.

mod common;
#[path = "../support/mod.rs"]
mod support;

mod cli;
mod failures;
mod force_public;
mod gh_cli;
mod graphql;
mod rest;
