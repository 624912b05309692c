//! The process's allocator and how it gives memory back.
//!
//! jemalloc: a guarded tool call builds and frees many small JSON values on
//! several threads, and a busy gateway holds tens of megabytes of them at its
//! peak. When the traffic stops, the allocator must hand those pages back to
//! the system, or a gateway that once served forty sessions keeps their memory
//! while idle. jemalloc's background thread purges freed pages after their
//! decay time (10 s by default) whether or not the threads that freed them
//! ever run again; an allocator that purges only on its next call keeps them
//! (docs/reliability.md, "Memory after the sessions").

/// The global allocator of every `guardway` command.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts the allocator's background purging. Long-running commands (`serve`,
/// `proxy`) call it once at start-up; one-shot commands do not need the thread.
/// Without it (a platform where jemalloc cannot start the thread) memory is
/// still returned, only later: when the freeing threads allocate again.
pub fn return_freed_memory_in_background() {
    match tikv_jemalloc_ctl::background_thread::write(true) {
        Ok(()) => tracing::debug!("freed memory is returned to the system in the background"),
        Err(error) => tracing::warn!(
            %error,
            "the allocator cannot purge in the background; freed memory is returned as threads allocate again"
        ),
    }
}
