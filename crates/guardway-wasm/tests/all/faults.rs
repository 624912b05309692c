//! Misbehaving guards: each fault gives a typed error, the faulty instance is discarded and
//! the same guard (and a fresh one) keeps working.

use std::time::Duration;

use guardway_wasm::{GuardError, MIB};

use crate::common::*;

const INPUT: &[u8] = br#"{"tool_name":"issue_read","tool_args":{}}"#;

async fn assert_recovers(name: &str, guard: &guardway_wasm::Guard) {
    assert_serves(guard).await;
    // A fresh guard of the same module works as well.
    assert_serves(&crate::common::guard(name).await).await;
}

#[tokio::test]
async fn unreachable_is_a_trap_and_the_instance_is_replaced() {
    let guard = guard("trap_unreachable").await;
    let err = resource_error(&guard, INPUT).await;
    assert!(matches!(err, GuardError::Trap { .. }), "{err:?}");
    assert!(err.to_string().contains("label_resource"), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    let stats = guard.stats();
    assert_eq!(stats.traps, 1);
    assert_eq!(stats.instances_discarded, 1);
    assert_recovers("trap_unreachable", &guard).await;
    assert_eq!(guard.stats().instances_created, 2);
}

#[tokio::test]
async fn out_of_bounds_access_is_a_trap() {
    let guard = guard("trap_out_of_bounds").await;
    let err = resource_error(&guard, INPUT).await;
    assert!(matches!(err, GuardError::Trap { .. }), "{err:?}");
    assert!(err.to_string().contains("out of bounds"), "{err}");
    assert_recovers("trap_out_of_bounds", &guard).await;
}

#[tokio::test]
async fn infinite_loop_times_out() {
    let options = options().with_call_timeout(Duration::from_millis(200));
    let guard = guard_with("infinite_loop", options, None).await;
    let err = resource_error(&guard, INPUT).await;
    match &err {
        GuardError::Timeout { limit, export, .. } => {
            assert_eq!(*limit, Duration::from_millis(200));
            assert_eq!(export, "label_resource");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(guard.stats().timeouts, 1);
    assert_eq!(guard.stats().instances_discarded, 1);
    assert_recovers("infinite_loop", &guard).await;
}

#[tokio::test]
async fn unbounded_memory_growth_hits_the_cap() {
    let options = options().with_memory_limit(8 * MIB);
    let guard = guard_with("memory_growth", options, None).await;
    let err = resource_error(&guard, INPUT).await;
    match &err {
        GuardError::MemoryLimit { limit, .. } => assert_eq!(*limit, 8 * MIB),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(guard.stats().memory_limits, 1);
    assert_eq!(guard.stats().instances_discarded, 1);
    assert_recovers("memory_growth", &guard).await;
}

#[tokio::test]
async fn length_larger_than_the_buffer_is_an_error_not_a_read() {
    let guard = guard("length_overrun").await;
    let err = resource_error(&guard, INPUT).await;
    match &err {
        GuardError::OutputOverrun {
            returned, buffer, ..
        } => assert_eq!(*returned, buffer + 1),
        other => panic!("unexpected {other:?}"),
    }
    // A protocol error, not an instance fault: the instance is kept.
    assert_eq!(guard.stats().instances_discarded, 0);
    assert_serves(&guard).await;
}

#[tokio::test]
async fn negative_code_carries_the_code_and_the_last_error_line() {
    let guard = guard("negative_code").await;
    let err = resource_error(&guard, INPUT).await;
    match &err {
        GuardError::GuardFailed {
            code, last_error, ..
        } => {
            assert_eq!(*code, -7);
            assert_eq!(
                last_error.as_deref(),
                Some("policy lookup failed: repo not found")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("-7"), "{err}");
    assert_serves(&guard).await;
}

#[tokio::test]
async fn input_over_the_limit_is_refused_before_the_call() {
    let guard = guard("echo").await;
    let calls_before = guard.stats().calls;
    let big = vec![b' '; 8 * MIB + 1];
    let err = resource_error(&guard, &big).await;
    match &err {
        GuardError::InputTooLarge { size, limit, .. } => {
            assert_eq!(*size, 8 * MIB + 1);
            assert_eq!(*limit, 8 * MIB);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(guard.stats().calls, calls_before);
    assert_serves(&guard).await;
}
