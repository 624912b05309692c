//! Keeps `docs/compatibility.md` true to the code: every test a row names
//! exists in the workspace; a **same** or **same+** row names only tests
//! that run; a **not yet** row names at least one test, and only tests that
//! are still `#[ignore]`d (when the change lands and the ignore goes, the
//! row must say **same**).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every `.rs` file under `dir`, build output and dependencies left out.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !(name == "target" || name == "node_modules" || name.starts_with('.')) {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// Test functions of the workspace by name: whether each is ignored (a
/// name defined more than once is ignored only if every definition is).
fn tests_in_workspace() -> HashMap<String, bool> {
    let mut files = Vec::new();
    for dir in ["crates", "guards"] {
        rust_files(&repo_root().join(dir), &mut files);
    }
    let mut tests: HashMap<String, bool> = HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Attributes seen since the last item.
        let (mut is_test, mut ignored) = (false, false);
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[") {
                is_test |= line.starts_with("#[test]") || line.starts_with("#[tokio::test");
                ignored |= line.starts_with("#[ignore");
                continue;
            }
            if line.starts_with("//") || line.is_empty() {
                continue;
            }
            if is_test
                && let Some(rest) = line
                    .strip_prefix("async fn ")
                    .or_else(|| line.strip_prefix("fn "))
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let entry = tests.entry(name).or_insert(true);
                *entry &= ignored;
            }
            (is_test, ignored) = (false, false);
        }
    }
    tests
}

/// The `code` spans of a table cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_row_names_tests_that_exist_and_match_its_status() {
    let doc = std::fs::read_to_string(repo_root().join("docs/compatibility.md")).unwrap();
    let tests = tests_in_workspace();
    assert!(tests.len() > 100, "found only {} tests", tests.len());
    let mut problems = Vec::new();
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        if cells.len() != 3 || cells[0].trim() == "Reference" || cells[0].starts_with("---") {
            continue;
        }
        rows += 1;
        let (status_cell, tests_cell) = (cells[1], cells[2]);
        let status = ["**same+**", "**same**", "**differs**", "**not yet**"]
            .into_iter()
            .find(|s| status_cell.trim_start().starts_with(s));
        let Some(status) = status else {
            problems.push(format!("no status: {line}"));
            continue;
        };
        let named = code_spans(tests_cell);
        if status == "**not yet**" && named.is_empty() {
            problems.push(format!("a not-yet row names no test: {line}"));
        }
        for name in named {
            match (tests.get(name), status) {
                (None, _) => problems.push(format!("no test named {name}: {line}")),
                (Some(true), "**same**" | "**same+**") => {
                    problems.push(format!("{name} is ignored but the row says {status}"))
                }
                (Some(false), "**not yet**") => problems.push(format!(
                    "{name} runs: the row should say **same** now: {line}"
                )),
                _ => {}
            }
        }
    }
    assert!(rows > 40, "found only {rows} rows");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
