//! What the `guardway` binary's test programs share: the repository root,
//! the guards built from source (`scripts/build-guards.sh`, run once when a
//! guard is missing) and the demo backend (built once). Each test program
//! includes this module with `#[path]`; each uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `guards/<dir>/target/wasm32-wasip1/release/<file>`, built with
/// `scripts/build-guards.sh` (once per test program) when missing.
pub fn built_guard(dir: &str, file: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = repo_root();
    let wasm = root.join(format!("guards/{dir}/target/wasm32-wasip1/release/{file}"));
    if !wasm.exists() {
        BUILT.get_or_init(|| {
            let status = Command::new("bash")
                .arg(root.join("scripts/build-guards.sh"))
                .current_dir(&root)
                .stdout(Stdio::null())
                .status()
                .expect("run scripts/build-guards.sh");
            assert!(status.success(), "scripts/build-guards.sh failed");
        });
    }
    assert!(wasm.exists(), "{} was not built", wasm.display());
    wasm
}

/// The sample guard.
pub fn sample_guard() -> PathBuf {
    built_guard("sample-guard", "sample_guard.wasm")
}

/// The demo backend, next to the `guardway` binary (built once per test
/// program).
pub fn demo_backend() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-q",
                    "-p",
                    "guardway-demo",
                    "--bin",
                    "guardway-demo-backend",
                ])
                .current_dir(repo_root())
                .status()
                .unwrap();
            assert!(status.success(), "building guardway-demo-backend failed");
            let binary = Path::new(env!("CARGO_BIN_EXE_guardway"))
                .parent()
                .unwrap()
                .join("guardway-demo-backend");
            assert!(binary.exists(), "{} missing", binary.display());
            binary
        })
        .clone()
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path` as a TOML (and JSON) string literal.
pub fn toml_string(path: &Path) -> String {
    serde_json::to_string(path.to_str().unwrap()).unwrap()
}
