//! Runs `docs/writing-a-guard.md` as written: its `sh` blocks are the commands and its
//! ```` ```lang file=PATH ```` blocks the files they create, in order, in one bash session in
//! a fresh directory, with the real `guardway` binary on `PATH` and the guide's guard built
//! for wasm32-wasip1 against this checkout's `crates/guardway-guest`. The guard's cargo
//! target directory is kept under `target/` so that re-runs build incrementally.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The guide's blocks: (info string, content).
fn fenced_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    current = Some((info.trim().to_owned(), String::new()));
                }
            }
            Some((_, body)) => {
                if line.trim_end() == "```" {
                    blocks.extend(current.take());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "unterminated code block in the guide");
    blocks
}

/// The `file=PATH` attribute of a block's info string.
fn file_attribute(info: &str) -> Option<&str> {
    info.split_whitespace()
        .find_map(|word| word.strip_prefix("file="))
}

/// One bash script doing what the guide says, in order.
fn script_of(markdown: &str, guest_crate: &Path) -> (String, usize, usize) {
    let mut script = String::from("set -euxo pipefail\n");
    let (mut commands, mut files) = (0, 0);
    for (info, body) in fenced_blocks(markdown) {
        if let Some(path) = file_attribute(&info) {
            let body = body.replace(
                "../guardway/crates/guardway-guest",
                guest_crate.to_str().unwrap(),
            );
            assert!(!body.contains("GUARDWAY_DOC_EOF"));
            script.push_str(&format!(
                "mkdir -p \"$(dirname '{path}')\"\ncat > '{path}' <<'GUARDWAY_DOC_EOF'\n{body}GUARDWAY_DOC_EOF\n"
            ));
            files += 1;
        } else if info == "sh" {
            script.push_str(&body);
            commands += 1;
        }
    }
    (script, commands, files)
}

#[test]
fn every_command_of_the_guide_runs() {
    let root = repo_root();
    let guide = std::fs::read_to_string(root.join("docs/writing-a-guard.md")).unwrap();
    let (script, commands, files) = script_of(&guide, &root.join("crates/guardway-guest"));
    assert!(
        commands >= 6 && files >= 5,
        "{commands} command blocks, {files} files"
    );
    for step in [
        "cargo build --release --target wasm32-wasip1",
        "guardway guard check ",
        "--trace",
        "guardway guard test ",
        "--update",
    ] {
        assert!(script.contains(step), "the guide runs no {step:?}");
    }

    let work = tempfile::tempdir().unwrap();
    // The guard's build output lives under target/ across runs (incremental), seen from
    // the fresh directory as my-guard/target.
    let shared_target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("writing-a-guard-target");
    std::fs::create_dir_all(&shared_target).unwrap();
    std::fs::create_dir_all(work.path().join("my-guard")).unwrap();
    std::os::unix::fs::symlink(&shared_target, work.path().join("my-guard/target")).unwrap();
    // The sample guard's lock file pins the SDK's dependencies to versions already
    // downloaded, so the build needs no network.
    std::fs::copy(
        root.join("guards/sample-guard/Cargo.lock"),
        work.path().join("my-guard/Cargo.lock"),
    )
    .unwrap();

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_guardway")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script_file = work.path().join("guide.sh");
    std::fs::write(&script_file, &script).unwrap();
    let out = Command::new("bash")
        .arg(&script_file)
        .current_dir(work.path())
        .env("PATH", path)
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("GUARDWAY_LOG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the guide's commands failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // What the guide says the commands print.
    assert!(stdout.contains("valid:     yes"), "{stdout}");
    assert!(
        stderr.contains(
            "[trace] call_backend search_repositories {\"query\":\"repo:octo-org/secret\"} -> "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("[trace] host_log info: file octo-org/secret:README.md"),
        "{stderr}"
    );
    assert!(stdout.contains("\"private:octo-org/secret\""), "{stdout}");
    assert!(
        stdout.contains("3 passed, 0 failed (1 updated)"),
        "{stdout}"
    );
    assert!(stdout.contains("3 passed, 0 failed\n"), "{stdout}");
    // --update wrote the snapshot the guide describes.
    let updated: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            work.path()
                .join("my-guard/tests/cases/unknown-visibility.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        updated["expect"]["output"]["resource"]["secrecy"],
        serde_json::json!(["private:acme/web"])
    );
}
