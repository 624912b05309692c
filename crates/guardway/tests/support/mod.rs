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

/// What to do when the test environment is missing.
pub const SETUP_HINT: &str = "run scripts/setup-test-env.sh from the repository root";

/// The interpreter of the test environment holding `mcp` `major`.x:
/// `.venv` (1.x, also runs the backends) or `.venv-mcp2` (2.x), unless
/// `GUARDWAY_PYTHON` / `GUARDWAY_PYTHON_MCP2` name another.
pub fn python(major: u32) -> PathBuf {
    let (var, venv) = if major == 1 {
        ("GUARDWAY_PYTHON", ".venv")
    } else {
        ("GUARDWAY_PYTHON_MCP2", ".venv-mcp2")
    };
    let python = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(venv).join("bin/python"));
    let output = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('mcp'))",
        ])
        .output();
    let found = output
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        found.split('.').next() == Some(&major.to_string()),
        "{} should hold mcp {major}.x (found {found:?}): {SETUP_HINT}",
        python.display()
    );
    python
}
