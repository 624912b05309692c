//! The guard ABI from the host's side: a guard whose every answer comes from
//! the fuzzer, run through the real host (`guardway-wasm`'s `Guard`: pool,
//! buffers, the `-2` protocol, `call_backend`, `host_log`, faults,
//! quarantine, cancellation).
//!
//! The guard (`fixtures/scripted_guard.wat`) fetches a record before each
//! guard function and in `alloc`/`dealloc` through `call_backend`; the
//! records come from the input. Whatever they say (lengths larger than the
//! buffer, negative codes, `-2` with and without hints, bad pointers from
//! `alloc`, traps, endless loops, memory growth, garbage JSON), the host
//! must not panic, and whatever it returns as a success must be exactly what
//! the guard's final answer said.

#![no_main]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use guardway_difc::{AgentLabels, LabelResourceInput, LabelResponseInput, ResourceLabels};
use guardway_fuzz::{Bytes, runtime};
use guardway_wasm::{
    Backend, BackendCallError, BoxFuture, CacheMode, Guard, GuardExport, GuardModule, GuardOptions,
    LogRateLimit, QuarantineOptions,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const SCRIPTED: &str = include_str!("../fixtures/scripted_guard.wat");
const AGENT_DEFAULT: &[u8] = br#"{"agent":{"secrecy":[],"integrity":[]},"difc_mode":"filter"}"#;
const RESOURCE_DEFAULT: &[u8] =
    br#"{"resource":{"description":"fuzz","secrecy":[],"integrity":[]},"operation":"read"}"#;
/// Longest record: its hex form must fit the guard's 8 KiB result buffer.
const MAX_RECORD: usize = 4000;

/// The scripted guard with `alloc`/`dealloc` and without (end-of-memory buffers).
fn modules() -> &'static [GuardModule; 2] {
    static MODULES: OnceLock<[GuardModule; 2]> = OnceLock::new();
    MODULES.get_or_init(|| {
        let options = GuardOptions::default().with_cache(CacheMode::Disabled);
        let load = |name: &str, text: &str| {
            let bytes = wat::parse_str(text).expect("the scripted guard assembles");
            GuardModule::from_bytes(name, &bytes, &options).expect("the scripted guard loads")
        };
        let without = SCRIPTED
            .replace("(export \"alloc\")", "")
            .replace("(export \"dealloc\")", "");
        [
            load("scripted", SCRIPTED),
            load("scripted-no-alloc", &without),
        ]
    })
}

/// Which record queue a `call_backend` fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Step,
    Alloc,
    Dealloc,
}

/// One fetch the guard made, in order.
#[derive(Debug, Clone)]
struct Served {
    queue: Queue,
    record: Option<Vec<u8>>,
}

#[derive(Default)]
struct Script {
    queues: [VecDeque<Vec<u8>>; 3],
    /// Answers to any other tool the guard calls (JSON text, or an error).
    answers: VecDeque<Vec<u8>>,
    served: Vec<Served>,
}

#[derive(Default)]
struct ScriptedBackend {
    script: Mutex<Script>,
}

impl ScriptedBackend {
    fn served(&self) -> Vec<Served> {
        self.script.lock().unwrap().served.clone()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Backend for ScriptedBackend {
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, BackendCallError>> {
        Box::pin(async move {
            let mut script = self.script.lock().unwrap();
            let queue = match tool {
                "step" => Some(Queue::Step),
                "alloc" => Some(Queue::Alloc),
                "dealloc" => Some(Queue::Dealloc),
                _ => None,
            };
            match queue.filter(|_| args == json!({"fetch": true})) {
                Some(queue) => {
                    let record = script.queues[queue as usize].pop_front();
                    script.served.push(Served {
                        queue,
                        record: record.clone(),
                    });
                    match record {
                        Some(record) => Ok(Value::String(hex(&record))),
                        None => Err(BackendCallError::Failed {
                            tool: tool.to_owned(),
                            message: "no more records".to_owned(),
                        }),
                    }
                }
                None => match script.answers.pop_front() {
                    Some(answer) => {
                        serde_json::from_slice(&answer).map_err(|e| BackendCallError::Failed {
                            tool: tool.to_owned(),
                            message: e.to_string(),
                        })
                    }
                    None => Err(BackendCallError::Unavailable {
                        message: "no answer scripted".to_owned(),
                    }),
                },
            }
        })
    }
}

/// What the guard's final answer of a call makes the host return.
#[derive(Debug, PartialEq)]
enum Expected {
    /// Exactly these bytes.
    Output(Vec<u8>),
    /// An output of this length (contents not fully known).
    Length(usize),
    /// No success is possible.
    Failure,
    /// Not predicted (a nested `call_backend`).
    Unknown,
}

/// The outcome the last step fetch of a call predicts for `export`.
fn expected(export: GuardExport, last_step: Option<&Served>) -> Expected {
    let Some(served) = last_step else {
        return Expected::Unknown;
    };
    let record = match &served.record {
        Some(record) if record.len() >= 13 => record,
        _ => {
            return match export {
                GuardExport::LabelAgent => Expected::Output(AGENT_DEFAULT.to_vec()),
                GuardExport::LabelResource => Expected::Output(RESOURCE_DEFAULT.to_vec()),
                GuardExport::LabelResponse => Expected::Output(Vec::new()),
            };
        }
    };
    let word = |at: usize| {
        i32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
    };
    let (a, b, c) = (word(1), word(5), word(9));
    let payload = &record[13..];
    let code = match record[0] % 6 {
        0 | 4 => {
            if c & 1 == 1 {
                payload.len() as i32
            } else {
                a
            }
        }
        3 => b,
        5 => return Expected::Unknown,
        _ => return Expected::Failure,
    };
    if code < 0 {
        return Expected::Failure;
    }
    let code = code as usize;
    if record[0] % 6 != 3 && b == 0 && code <= payload.len() {
        Expected::Output(payload[..code].to_vec())
    } else {
        Expected::Length(code)
    }
}

fn check(
    export: GuardExport,
    served_in_call: &[Served],
    result: &Result<Vec<u8>, guardway_wasm::GuardError>,
) {
    let Ok(output) = result else {
        return;
    };
    let last_step = served_in_call.iter().rev().find(|s| s.queue == Queue::Step);
    match expected(export, last_step) {
        Expected::Output(bytes) => assert_eq!(
            output, &bytes,
            "{export}: the host returned other bytes than the guard wrote"
        ),
        Expected::Length(len) => assert_eq!(
            output.len(),
            len,
            "{export}: output length differs from the returned code"
        ),
        Expected::Failure => panic!(
            "{export}: a success although the guard's final answer was a failure: {served_in_call:?}"
        ),
        Expected::Unknown => {}
    }
}

struct Plan {
    allocator: bool,
    options: GuardOptions,
    calls: Vec<u8>,
    script: Script,
}

fn plan(data: &[u8]) -> Plan {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let initial = 1 + usize::from(input.u16() % 512);
    let max = initial + usize::from(input.u16() % 4096);
    let mut options = GuardOptions::default()
        .with_name("scripted")
        .with_memory_limit((192 + usize::from(input.u8() % 16) * 256) * 1024)
        .with_call_timeout(Duration::from_millis(30))
        .with_max_backend_calls(1000)
        .with_pool_size(1 + usize::from(flags & 1))
        .with_output_buffers(initial, max)
        .with_quarantine(QuarantineOptions {
            failures: 1 + u32::from(input.u8() % 6),
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(60),
        })
        .with_log_rate(LogRateLimit {
            burst: 4,
            lines_per_second: 1.0,
        })
        .with_cache(CacheMode::Disabled);
    options.output_attempts = 1 + u32::from(input.u8() % 4);
    let call_count = 1 + usize::from(input.u8() % 8);
    let calls = input.take(call_count).to_vec();
    let mut script = Script::default();
    while !input.is_empty() {
        let queue = input.u8() % 4;
        let len = usize::from(input.u16()) % (MAX_RECORD + 1);
        let record = input.take(len).to_vec();
        match queue {
            3 => script.answers.push_back(record),
            q => script.queues[usize::from(q)].push_back(record),
        }
    }
    Plan {
        allocator: flags & 2 == 0,
        options,
        calls,
        script,
    }
}

async fn run(plan: Plan) {
    let module = modules()[usize::from(!plan.allocator)].clone();
    let backend = Arc::new(ScriptedBackend {
        script: Mutex::new(plan.script),
    });
    let policy = json!({"allow-only": {"repos": "all", "min-integrity": "none"}});
    let guard = match Guard::new(module, &policy, plan.options, Some(backend.clone())).await {
        Ok(guard) => guard,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let resource_input = LabelResourceInput {
        tool_name: "issue_read".to_owned(),
        tool_args: json!({"owner": "octo-org", "repo": "api", "issue_number": 1}),
        capabilities: None,
    };
    let response_input = LabelResponseInput {
        tool_name: "list_issues".to_owned(),
        tool_result: json!({"content": [{"type": "text", "text": "[{\"id\":1}]"}]}),
        tool_args: None,
        capabilities: None,
    };
    for &call in &plan.calls {
        let before = backend.served().len();
        let served_since = |backend: &ScriptedBackend| backend.served()[before..].to_vec();
        match call % 7 {
            0 | 1 => {
                let export = if call % 7 == 0 {
                    GuardExport::LabelResource
                } else {
                    GuardExport::LabelResponse
                };
                let result = guard.call(export, b"{}").await;
                check(export, &served_since(&backend), &result);
            }
            2 => {
                let result = guard.label_resource(&resource_input).await;
                if let Ok(labels) = &result {
                    let served = served_since(&backend);
                    let last = served.iter().rev().find(|s| s.queue == Queue::Step);
                    if let Expected::Output(bytes) = expected(GuardExport::LabelResource, last) {
                        let direct =
                            ResourceLabels::parse(&bytes).expect("the host accepted these labels");
                        assert_eq!(
                            &direct, labels,
                            "label_resource parsed other labels than the guard wrote"
                        );
                    }
                }
            }
            3 => {
                let _ = guard.label_response(&response_input).await;
            }
            4 => {
                let other = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
                let result = guard.label_agent(&other).await;
                if let Ok(labels) = &result {
                    let served = served_since(&backend);
                    let last = served.iter().rev().find(|s| s.queue == Queue::Step);
                    if let Expected::Output(bytes) = expected(GuardExport::LabelAgent, last) {
                        let direct =
                            AgentLabels::parse(&bytes).expect("the host accepted these labels");
                        assert_eq!(
                            &direct, labels,
                            "label_agent parsed other labels than the guard wrote"
                        );
                    }
                }
            }
            5 => {
                // The caller gives up mid-call (a client that disconnected).
                let call = guard.call(GuardExport::LabelResource, b"{}");
                let _ = tokio::time::timeout(Duration::from_millis(2), call).await;
            }
            _ => {
                let _ = guard.stats();
                let _ = guard.health();
            }
        }
    }
    let stats = guard.stats();
    assert!(
        stats.instances_discarded <= stats.instances_created,
        "{stats:?}"
    );
    assert!(
        stats.live_instances <= 2 + 1,
        "more live instances than the pool allows: {stats:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let plan = plan(data);
    runtime().block_on(run(plan));
});
