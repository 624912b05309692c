//! Shared scaffolding of the integration tests: fixtures, guards, a mock backend, a manual clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use guardway_wasm::{
    Backend, BackendCallError, BoxFuture, Clock, Guard, GuardCompiler, GuardError, GuardModule,
    GuardOptions,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Compiles `tests/fixtures/<name>.wat` to wasm bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    wat::parse_file(fixture_path(&format!("{name}.wat"))).unwrap()
}

/// Loads fixture `name` on optimised code at once, so that instance counts are exact (no
/// background compilation retires instances); `tiers.rs` covers baseline code.
pub fn load(name: &str) -> Result<GuardModule, GuardError> {
    let options = GuardOptions::default().with_compiler(GuardCompiler::Cranelift);
    GuardModule::from_bytes(name, &fixture(name), &options)
}

pub fn module(name: &str) -> GuardModule {
    load(name).unwrap()
}

pub fn policy() -> Value {
    json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}})
}

/// Test defaults: small output buffers so instances stay small, a short time limit.
pub fn options() -> GuardOptions {
    GuardOptions::default()
        .with_output_buffers(64 * 1024, 1024 * 1024)
        .with_call_timeout(Duration::from_secs(2))
        .with_pool_size(4)
}

pub async fn guard(name: &str) -> Guard {
    guard_with(name, options(), None).await
}

pub async fn guard_with(
    name: &str,
    options: GuardOptions,
    backend: Option<Arc<dyn Backend>>,
) -> Guard {
    Guard::new(module(name), &policy(), options, backend)
        .await
        .unwrap()
}

/// The error `label_resource` of `input` fails with.
pub async fn resource_error(guard: &Guard, input: &[u8]) -> GuardError {
    guard
        .call(guardway_wasm::GuardExport::LabelResource, input)
        .await
        .unwrap_err()
}

/// A guard over fixture `name` whose host calls reach `backend`.
pub async fn guard_backed_by(
    name: &str,
    options: GuardOptions,
    backend: &Arc<MockBackend>,
) -> Guard {
    guard_with(name, options, Some(backend.clone() as Arc<dyn Backend>)).await
}

/// A backend answering every tool with a fixed result, counting calls.
pub struct MockBackend {
    pub result: Value,
    pub calls: AtomicU64,
    pub seen: Mutex<Vec<(String, Value)>>,
    pub fail: bool,
}

impl MockBackend {
    pub fn new(result: Value) -> Arc<MockBackend> {
        Arc::new(MockBackend {
            result,
            calls: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            fail: false,
        })
    }
    pub fn failing() -> Arc<MockBackend> {
        Arc::new(MockBackend {
            result: Value::Null,
            calls: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
            fail: true,
        })
    }
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Backend for MockBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().push((tool.to_owned(), args));
            tokio::task::yield_now().await;
            if self.fail {
                return Err(BackendCallError::Failed {
                    tool: tool.to_owned(),
                    message: "mock failure".to_owned(),
                });
            }
            Ok(self.result.clone())
        })
    }
}

/// A clock that only moves when told to.
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }
    pub fn advance(&self, by: Duration) {
        *self.offset.lock() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock()
    }
}

/// Decodes consecutive little-endian i32 values.
pub fn le_i32s(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Asserts the guard still serves a normal call (echo through label_response).
pub async fn assert_serves(guard: &Guard) {
    let out = guard
        .call(
            guardway_wasm::GuardExport::LabelResponse,
            br#"{"still":"alive"}"#,
        )
        .await
        .unwrap();
    assert_eq!(out, br#"{"still":"alive"}"#);
}
