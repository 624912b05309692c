//! Guard logs: host_log and stdout reach `tracing` with the guard's name; floods are
//! rate-limited; filtered lines are dropped before they are read.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use guardway_wasm::{GuardExport, LogRateLimit};
use parking_lot::Mutex;

use crate::common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (
        captured.clone(),
        tracing::subscriber::set_default(subscriber),
    )
}

#[tokio::test(flavor = "current_thread")]
async fn flood_is_rate_limited_with_a_note_and_lines_carry_the_guard_name() {
    let (captured, _default) = capture(tracing::Level::INFO);
    let options = options()
        .with_name("chatty-guard")
        .with_log_rate(LogRateLimit {
            burst: 10,
            lines_per_second: 0.001,
        });
    let guard = guard_with("chatty", options, None).await;
    let out = guard
        .call(GuardExport::LabelResource, b"{\"x\":1}")
        .await
        .unwrap();
    assert_eq!(out, b"{\"x\":1}");
    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    let guard_lines = text
        .lines()
        .filter(|l| l.contains("checking tool call"))
        .count();
    assert_eq!(guard_lines, 10, "{text}");
    assert!(
        text.lines()
            .all(|l| !l.contains("checking tool call") || l.contains("guard=chatty-guard"))
    );
    assert!(text.contains("dropped by the rate limit"), "{text}");
    // 1000 info lines, 10 admitted; the debug lines are filtered out, not dropped. The
    // stdout line comes after the bucket is empty and is dropped as well.
    assert_eq!(guard.stats().log_lines_dropped, 991);
}

#[tokio::test(flavor = "current_thread")]
async fn stdout_is_routed_to_the_log() {
    let (captured, _default) = capture(tracing::Level::INFO);
    let options = options()
        .with_name("chatty-guard")
        .with_log_rate(LogRateLimit {
            burst: 5000,
            lines_per_second: 1.0,
        });
    let guard = guard_with("chatty", options, None).await;
    guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("hello from stdout"))
        .expect(&text);
    assert!(line.contains("guard=chatty-guard"), "{line}");
    assert!(line.contains("stdout"), "{line}");
}

#[tokio::test(flavor = "current_thread")]
async fn filtered_lines_cost_no_tokens() {
    let (captured, _default) = capture(tracing::Level::WARN);
    let options = options().with_log_rate(LogRateLimit {
        burst: 10,
        lines_per_second: 0.001,
    });
    let guard = guard_with("chatty", options, None).await;
    guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(guard.stats().log_lines_dropped, 0);
    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    assert!(!text.contains("checking tool call"), "{text}");
}

/// The `dropped=N` of every summary line in `text`.
fn drop_summaries(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.contains("guard log lines dropped by the rate limit"))
        .map(|l| {
            let field = l
                .split_whitespace()
                .find_map(|word| word.strip_prefix("dropped="))
                .expect(l);
            field.parse().expect(l)
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_lines_are_summarised_at_most_once_per_interval() {
    let (captured, _default) = capture(tracing::Level::INFO);
    let clock = ManualClock::new();
    let options = options()
        .with_name("chatty-guard")
        .with_pool_size(1)
        .with_clock(clock.clone())
        .with_log_drop_summary_interval(Duration::from_secs(10))
        .with_log_rate(LogRateLimit {
            burst: 10,
            lines_per_second: 0.001,
        });
    let guard = guard_with("chatty", options, None).await;
    let summaries = || drop_summaries(&String::from_utf8(captured.0.lock().clone()).unwrap());
    let call = || async { guard.call(GuardExport::LabelResource, b"{}").await.unwrap() };

    // Every call drops lines; five calls within the interval: one summary, at the first.
    for _ in 0..5 {
        call().await;
    }
    assert_eq!(summaries(), vec![991]);
    assert_eq!(guard.stats().log_drop_reports, 1);

    // Not yet a whole interval later: still one.
    clock.advance(Duration::from_secs(9));
    call().await;
    assert_eq!(summaries().len(), 1);

    // The interval passed: the next call reports everything dropped since the first.
    clock.advance(Duration::from_secs(1));
    call().await;
    assert_eq!(summaries(), vec![991, 6 * 1001]);
    assert_eq!(guard.stats().log_drop_reports, 2);

    // Lines dropped since are reported when the guard goes away; none is lost.
    call().await;
    let dropped = guard.stats().log_lines_dropped;
    drop(guard);
    let reported = summaries();
    assert_eq!(reported, vec![991, 6 * 1001, 1001]);
    assert_eq!(reported.iter().sum::<u64>(), dropped);
}
