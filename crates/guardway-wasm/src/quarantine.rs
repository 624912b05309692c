//! Quarantine of a guard that keeps failing: a fault counter over a sliding window, a
//! cool-down, and the injectable clock that drives both.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::options::QuarantineOptions;

/// A time source. The default is the system's monotonic clock; tests inject a manual one.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Health of a guard as reported by [`crate::Guard::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardHealth {
    /// No recent faults.
    Healthy,
    /// Some faults within the window, below the quarantine threshold.
    Degraded {
        /// Faults counted in the current window.
        recent_failures: u32,
        /// The latest fault.
        last_failure: String,
    },
    /// Calls are denied until `until`.
    Quarantined {
        /// End of the cool-down.
        until: Instant,
        /// The fault that opened the quarantine.
        reason: String,
    },
}

impl fmt::Display for GuardHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardHealth::Healthy => f.write_str("healthy"),
            GuardHealth::Degraded {
                recent_failures, ..
            } => write!(f, "degraded ({recent_failures} recent failures)"),
            GuardHealth::Quarantined { reason, .. } => write!(f, "quarantined: {reason}"),
        }
    }
}

/// Fault bookkeeping of one guard. Not synchronised: the pool keeps it under a short lock.
#[derive(Debug)]
pub(crate) struct Quarantine {
    options: QuarantineOptions,
    failures: VecDeque<Instant>,
    last_failure: Option<String>,
    open: Option<(Instant, String)>,
}

impl Quarantine {
    pub(crate) fn new(options: QuarantineOptions) -> Self {
        Quarantine {
            options,
            failures: VecDeque::new(),
            last_failure: None,
            open: None,
        }
    }

    /// `Err((until, reason))` while quarantined; closes the quarantine once the cool-down passed.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), (Instant, String)> {
        if let Some((until, reason)) = &self.open {
            if now < *until {
                return Err((*until, reason.clone()));
            }
            tracing::info!(reason = %reason, "guard quarantine cool-down over; calls allowed again");
            self.open = None;
            self.failures.clear();
            self.last_failure = None;
        }
        Ok(())
    }

    /// Records a fault; returns true when this fault opened the quarantine.
    pub(crate) fn record_failure(&mut self, now: Instant, reason: &str) -> bool {
        self.expire(now);
        self.failures.push_back(now);
        self.last_failure = Some(reason.to_owned());
        let threshold = self.options.failures.max(1) as usize;
        if self.open.is_none() && self.failures.len() >= threshold {
            let reason = format!(
                "{} failures within {:?}, last: {reason}",
                self.failures.len(),
                self.options.window
            );
            self.open = Some((now + self.options.cool_down, reason));
            return true;
        }
        false
    }

    pub(crate) fn health(&mut self, now: Instant) -> GuardHealth {
        if let Err((until, reason)) = self.check(now) {
            return GuardHealth::Quarantined { until, reason };
        }
        self.expire(now);
        match (&self.last_failure, self.failures.len()) {
            (Some(last), n) if n > 0 => GuardHealth::Degraded {
                recent_failures: u32::try_from(n).unwrap_or(u32::MAX),
                last_failure: last.clone(),
            },
            _ => GuardHealth::Healthy,
        }
    }

    fn expire(&mut self, now: Instant) {
        let window = self.options.window;
        while let Some(first) = self.failures.front() {
            if now.saturating_duration_since(*first) > window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Remaining time until `until`, zero if past.
pub(crate) fn remaining(now: Instant, until: Instant) -> Duration {
    until.saturating_duration_since(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> QuarantineOptions {
        QuarantineOptions {
            failures: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(30),
        }
    }

    #[test]
    fn opens_after_threshold_within_window_and_closes_after_cool_down() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(options());
        assert!(!q.record_failure(t0, "trap"));
        assert!(!q.record_failure(t0 + Duration::from_secs(1), "trap"));
        assert!(matches!(
            q.health(t0 + Duration::from_secs(2)),
            GuardHealth::Degraded {
                recent_failures: 2,
                ..
            }
        ));
        assert!(q.record_failure(t0 + Duration::from_secs(2), "timeout"));
        let (until, reason) = q.check(t0 + Duration::from_secs(3)).unwrap_err();
        assert_eq!(until, t0 + Duration::from_secs(32));
        assert!(reason.contains("timeout"), "{reason}");
        assert!(q.check(t0 + Duration::from_secs(32)).is_ok());
        assert_eq!(q.health(t0 + Duration::from_secs(33)), GuardHealth::Healthy);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(options());
        q.record_failure(t0, "trap");
        q.record_failure(t0 + Duration::from_secs(1), "trap");
        assert!(!q.record_failure(t0 + Duration::from_secs(20), "trap"));
        assert!(q.check(t0 + Duration::from_secs(20)).is_ok());
    }
}
