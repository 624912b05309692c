//! `GuardObserver` and `FreshInstance`: an observer sees every log line (whatever the log
//! level and rate limit) and every `call_backend` with its answer, in order; a fresh
//! instance runs calls without a policy replay.

use std::sync::Arc;

use guardway_wasm::{
    Backend, BackendCallError, BackendCallRecord, BoxFuture, FreshInstance, GuardExport,
    GuardLogLevel, GuardModule, GuardObserver, GuardOptions,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

fn module(name: &str) -> GuardModule {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wat"));
    let bytes = wat::parse_file(path).unwrap();
    GuardModule::from_bytes(name, &bytes, &GuardOptions::default()).unwrap()
}

#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<(GuardLogLevel, String, String)>>,
    calls: Mutex<Vec<BackendCallRecord>>,
}

impl GuardObserver for Recorder {
    fn log(&self, level: GuardLogLevel, stream: &str, message: &str) {
        self.lines
            .lock()
            .push((level, stream.to_owned(), message.to_owned()));
    }
    fn backend_call(&self, record: &BackendCallRecord) {
        self.calls.lock().push(record.clone());
    }
}

struct Answer(Option<Value>);

impl Backend for Answer {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        _args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        let answer = self.0.clone();
        Box::pin(async move {
            answer.ok_or_else(|| BackendCallError::Failed {
                tool: tool.to_owned(),
                message: "down".to_owned(),
            })
        })
    }
}

fn options(recorder: &Arc<Recorder>) -> GuardOptions {
    GuardOptions::default()
        .with_output_buffers(64 * 1024, 1024 * 1024)
        .with_observer(recorder.clone())
}

#[tokio::test]
async fn backend_calls_are_observed_with_the_retry_served_from_the_kept_answer() {
    let recorder = Arc::new(Recorder::default());
    let answer = json!({"visibility": "private", "owner": "octo-org", "name": "api"});
    let size = answer.to_string().len();
    let backend: Arc<dyn Backend> = Arc::new(Answer(Some(answer)));
    let mut instance =
        FreshInstance::new(&module("backend_calls"), &options(&recorder), Some(backend))
            .await
            .unwrap();
    instance
        .call(GuardExport::LabelResource, br#"{"owner":"octo-org"}"#)
        .await
        .unwrap();
    let calls = recorder.calls.lock().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].tool.as_deref(), Some("lookup"));
    assert_eq!(calls[0].args, r#"{"owner":"octo-org"}"#);
    assert_eq!(
        (calls[0].code, calls[0].answer_bytes, calls[0].retry),
        (-2, Some(size), false)
    );
    assert_eq!((calls[1].code, calls[1].retry), (size as i32, true));

    // A failing backend is observed as -1 with the reason.
    let recorder = Arc::new(Recorder::default());
    let backend: Arc<dyn Backend> = Arc::new(Answer(None));
    let mut instance =
        FreshInstance::new(&module("backend_calls"), &options(&recorder), Some(backend))
            .await
            .unwrap();
    let _ = instance.call(GuardExport::LabelResource, b"{}").await;
    let calls = recorder.calls.lock().clone();
    assert_eq!(calls[0].code, -1);
    assert!(
        calls[0].error.as_deref().unwrap().contains("down"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn every_log_line_is_observed_despite_the_level_and_the_rate_limit() {
    let recorder = Arc::new(Recorder::default());
    let mut instance = FreshInstance::new(&module("chatty"), &options(&recorder), None)
        .await
        .unwrap();
    instance
        .call(GuardExport::LabelResource, b"{}")
        .await
        .unwrap();
    let lines = recorder.lines.lock().clone();
    let count = |level: GuardLogLevel, stream: &str| {
        lines
            .iter()
            .filter(|(l, s, _)| *l == level && s == stream)
            .count()
    };
    // No tracing subscriber is installed and the rate limit's burst is 200: the observer
    // still sees all 2000 host_log lines and the stdout line.
    assert_eq!(count(GuardLogLevel::Info, "host_log"), 1000);
    assert_eq!(count(GuardLogLevel::Debug, "host_log"), 1000);
    assert_eq!(count(GuardLogLevel::Info, "stdout"), 1);
}
