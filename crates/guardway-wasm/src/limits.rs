//! Per-instance limits: the linear-memory cap (a `ResourceLimiter` that remembers when it
//! refused) and the token bucket that rate-limits guard log lines.

use std::time::Instant;

use wasmtime::ResourceLimiter;

use crate::options::LogRateLimit;

/// Table elements an instance may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps an instance's linear memory; growing past the cap fails the guard's `memory.grow`
/// (which returns -1 to the guard), never the host.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// Set when a growth was refused; such an instance is discarded after the call.
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter { limit, hit: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A token bucket of log lines.
#[derive(Debug)]
pub(crate) struct LogBucket {
    rate: LogRateLimit,
    tokens: f64,
    refilled_at: Instant,
    /// Lines dropped since the last note about dropped lines.
    pub(crate) dropped_unreported: u64,
}

impl LogBucket {
    pub(crate) fn new(rate: LogRateLimit, now: Instant) -> Self {
        LogBucket {
            rate,
            tokens: f64::from(rate.burst),
            refilled_at: now,
            dropped_unreported: 0,
        }
    }

    /// Takes a token; false (and the line is counted as dropped) when the bucket is empty.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.rate.lines_per_second.max(0.0))
            .min(f64::from(self.rate.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped_unreported += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut bucket = LogBucket::new(
            LogRateLimit {
                burst: 3,
                lines_per_second: 1.0,
            },
            t0,
        );
        assert!(bucket.try_take(t0));
        assert!(bucket.try_take(t0));
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
        assert_eq!(bucket.dropped_unreported, 1);
        assert!(bucket.try_take(t0 + Duration::from_secs(1)));
        assert!(!bucket.try_take(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn memory_limiter_refuses_and_remembers() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.hit);
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.hit);
    }
}
