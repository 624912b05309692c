//! Real parts for the guarded-gateway tests: the demo backend binary, the
//! sample guard, small WAT guards compiled at test time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use guardway_gateway::config::{GuardConfig, ServeOptions, ServerConfig};
use guardway_gateway::{Gateway, GuardPipeline, RunningGateway};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds (once) and returns the `guardway-demo-backend` binary.
pub fn demo_backend() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Benchmarks (built without debug assertions) measure against
            // a release backend, as deployed; tests use the debug build.
            let release = !cfg!(debug_assertions);
            let mut build = std::process::Command::new(env!("CARGO"));
            build.args([
                "build",
                "-q",
                "-p",
                "guardway-demo",
                "--bin",
                "guardway-demo-backend",
            ]);
            if release {
                build.arg("--release");
            }
            let status = build.current_dir(repo_root()).status().unwrap();
            assert!(status.success(), "building guardway-demo-backend failed");
            let profile = if release { "release" } else { "debug" };
            target_dir().join(profile).join("guardway-demo-backend")
        })
        .clone()
}

/// The demo backend as a stdio server, without a guard.
pub fn demo_stdio_server() -> ServerConfig {
    crate::common::stdio_server(demo_backend().to_string_lossy().into_owned(), Vec::new())
}

/// A wasm guard loaded from `path`, with no policy or config of its own.
pub fn plain_wasm_guard(path: PathBuf) -> GuardConfig {
    GuardConfig {
        kind: "wasm".into(),
        path: Some(path),
        policy: None,
        config: None,
    }
}

/// Starts a gateway whose calls go through the guard pipeline built from
/// `options`, and returns it with that pipeline (for its metrics).
pub async fn start_guarded(options: ServeOptions) -> (RunningGateway, Arc<GuardPipeline>) {
    let pipeline = Arc::new(GuardPipeline::new(&options));
    let gateway = Gateway::start_with_interceptor(options, pipeline.clone())
        .await
        .unwrap();
    (gateway, pipeline)
}

/// Builds (once, with scripts/build-guards.sh) and returns the sample guard.
pub fn sample_guard() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let wasm = repo_root()
                .join("guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm");
            if !wasm.exists() {
                let status = std::process::Command::new("bash")
                    .arg(repo_root().join("scripts/build-guards.sh"))
                    .current_dir(repo_root())
                    .status()
                    .unwrap();
                assert!(status.success(), "scripts/build-guards.sh failed");
            }
            assert!(wasm.exists(), "{} missing", wasm.display());
            wasm
        })
        .clone()
}

/// A guard whose `label_agent` gives empty labels (filter mode) and whose
/// `label_resource` runs `body` (e.g. `unreachable` or an endless loop).
pub fn wat_guard(label_resource_body: &str) -> Vec<u8> {
    wat_guard_with_agent(None, label_resource_body)
}

/// As [`wat_guard`], with `label_agent` running `label_agent_body` instead
/// of answering empty labels when one is given (e.g. `unreachable`).
pub fn wat_guard_with_agent(label_agent_body: Option<&str>, label_resource_body: &str) -> Vec<u8> {
    let agent = r#"{"agent":{"secrecy":[],"integrity":[]},"difc_mode":"filter"}"#;
    let escaped = agent.replace('"', "\\\"");
    let len = agent.len();
    let label_agent_body = label_agent_body.map(str::to_owned).unwrap_or_else(|| {
        format!(
            "(if (i32.lt_u (local.get 3) (i32.const {len})) (then (return (i32.const -2))))
    (memory.copy (local.get 2) (i32.const 256) (i32.const {len}))
    (i32.const {len})"
        )
    });
    let text = format!(
        r#"(module
  (import "env" "host_log" (func $host_log (param i32 i32 i32)))
  (import "env" "call_backend" (func $call_backend (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 256) "{escaped}")
  (func (export "alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16))) (i32.const 16)) (i32.const 1))))))
    (local.get $ptr))
  (func (export "dealloc") (param i32 i32))
  (func (export "label_agent") (param i32 i32 i32 i32) (result i32)
    {label_agent_body})
  (func (export "label_resource") (param i32 i32 i32 i32) (result i32)
    {label_resource_body})
  (func (export "label_response") (param i32 i32 i32 i32) (result i32)
    (i32.const 0))
)"#
    );
    wat::parse_str(text).unwrap()
}

/// Writes `bytes` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The Python MCP SDK client of the tool-call limit test.
pub fn limits_client_script() -> PathBuf {
    repo_root().join("crates/guardway-gateway/tests/guarded_support/limits_client.py")
}

/// `$GUARDWAY_PYTHON`, else `.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("GUARDWAY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}
