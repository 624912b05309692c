//! The buffer protocol: the `-2` retry with and without a size hint, giving up, the
//! end-of-memory fallback, buffer reuse.

use guardway_wasm::{Guard, GuardError, GuardExport, GuardOptions, MIB};

use crate::common::*;

fn small_buffers() -> GuardOptions {
    options().with_output_buffers(1024, 16 * 1024)
}

#[tokio::test]
async fn retry_uses_the_size_hint() {
    let guard = guard_with("retry_with_hint", small_buffers(), None).await;
    let out = guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(out, vec![b'a'; 3000]);
    // The grown buffer was released; the next call retries again and still succeeds.
    let out = guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(out.len(), 3000);
    assert_eq!(guard.stats().failures, 0);
}

#[tokio::test]
async fn retry_without_hint_doubles() {
    let guard = guard_with("retry_without_hint", small_buffers(), None).await;
    // 1024 -> 2048 -> 4096: the third attempt fits.
    let out = guard.call(GuardExport::LabelResource, b"{}").await.unwrap();
    assert_eq!(out.len(), 3000);
}

#[tokio::test]
async fn retry_without_hint_gives_up_after_three_attempts() {
    let options = options().with_output_buffers(1024, 2048);
    let guard = guard_with("retry_without_hint", options, None).await;
    let err = resource_error(&guard, b"{}").await;
    match &err {
        GuardError::BufferTooSmall { attempts, max, .. } => {
            assert_eq!(attempts, &[1024, 2048]);
            assert_eq!(*max, 2048);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn minus_two_forever_fails_naming_the_sizes() {
    let guard = guard_with("retry_forever", small_buffers(), None).await;
    let err = resource_error(&guard, b"{}").await;
    match &err {
        GuardError::BufferTooSmall {
            attempts, required, ..
        } => {
            assert_eq!(attempts, &[1024, 2048, 4096]);
            assert_eq!(*required, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("[1024, 2048, 4096]"), "{err}");
    assert_serves(&guard).await;
}

#[tokio::test]
async fn default_buffers_start_at_four_mib() {
    // retry_forever answers -2 at every size: the attempts show the default protocol.
    let guard = Guard::new(
        module("retry_forever"),
        &policy(),
        GuardOptions::default(),
        None,
    )
    .await
    .unwrap();
    let err = resource_error(&guard, b"{}").await;
    match &err {
        GuardError::BufferTooSmall { attempts, max, .. } => {
            assert_eq!(attempts, &[4 * MIB, 8 * MIB, 16 * MIB]);
            assert_eq!(*max, 16 * MIB);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn guard_without_allocator_uses_end_of_memory_buffers() {
    let guard = guard("no_alloc").await;
    for size in [0usize, 10, 1000, 60_000] {
        let input = vec![b'x'; size];
        let out = guard
            .call(GuardExport::LabelResource, &input)
            .await
            .unwrap();
        assert_eq!(out, input);
    }
    assert_eq!(guard.stats().failures, 0);
}

#[tokio::test]
async fn echo_round_trips_inputs_of_many_sizes_reusing_buffers() {
    let guard = guard("echo").await;
    for size in [0usize, 1, 4096, 4097, 60_000, 10, 64 * 1024] {
        let input: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let out = guard
            .call(GuardExport::LabelResource, &input)
            .await
            .unwrap();
        assert_eq!(out, input, "size {size}");
    }
    assert_eq!(guard.stats().instances_created, 1);
}
