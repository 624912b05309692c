//! The per-backend rate-limit circuit breaker (gateway.md §5.3): consecutive
//! rate-limited results open it; after the cooldown one probe is let through.

use std::time::{Duration, Instant};

use rmcp::model::CallToolResult;

/// Longest time the breaker stays open, whatever reset time a backend names.
const MAX_OPEN: Duration = Duration::from_secs(24 * 60 * 60);

/// Breaker state; `Instant`s come from the caller so tests control time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe call is in flight.
    HalfOpen,
}

/// Counts consecutive rate-limited results of one backend.
///
/// Not synchronised: the owning backend keeps it behind a mutex.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    server: String,
    threshold: u32,
    cooldown: Duration,
    consecutive_hits: u32,
    state: BreakerState,
    /// Times the breaker opened since start-up.
    opened: u64,
}

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Allow,
    Reject { message: String },
}

impl CircuitBreaker {
    pub fn new(server: impl Into<String>, threshold: u32, cooldown: Duration) -> Self {
        Self {
            server: server.into(),
            threshold: threshold.max(1),
            cooldown,
            consecutive_hits: 0,
            state: BreakerState::Closed,
            opened: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Decides whether a call may go to the backend at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Allow,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Admission::Allow
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => Admission::Reject {
                message: format!(
                    "rate limit circuit breaker is OPEN for server \"{}\" — requests temporarily rejected",
                    self.server
                ),
            },
        }
    }

    /// Records the outcome of an admitted call that reached the backend.
    pub fn record(&mut self, rate_limited: bool, retry_after: Option<Duration>, now: Instant) {
        if !rate_limited {
            self.consecutive_hits = 0;
            self.state = BreakerState::Closed;
            return;
        }
        self.consecutive_hits = self.consecutive_hits.saturating_add(1);
        if self.state == BreakerState::HalfOpen || self.consecutive_hits >= self.threshold {
            let wait = retry_after
                .map_or(self.cooldown, |r| r.max(self.cooldown))
                .min(MAX_OPEN);
            let until = now.checked_add(wait).unwrap_or(now);
            self.state = BreakerState::Open { until };
            self.opened += 1;
        }
    }

    /// An admitted call that never produced a result (transport error): a
    /// half-open probe is let through again next time.
    pub fn record_transport_error(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open {
                until: Instant::now(),
            };
        }
    }
}

/// Whether a tool result is a rate-limit answer, and the retry delay found in
/// its text (`retry after N` seconds), if any.
pub fn detect_rate_limit(result: &CallToolResult) -> (bool, Option<Duration>) {
    if result.is_error != Some(true) {
        return (false, None);
    }
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.to_lowercase()))
        .collect::<Vec<_>>()
        .join("\n");
    let limited = text.contains("rate limit exceeded")
        || text.contains("api rate limit")
        || text.contains("secondary rate limit")
        || text.contains("too many requests")
        || (text.contains("rate limit") && text.contains("403"));
    if !limited {
        return (false, None);
    }
    (true, parse_retry_after(&text))
}

fn parse_retry_after(text: &str) -> Option<Duration> {
    for marker in ["retry after ", "retry-after: ", "retry-after ", "retry in "] {
        if let Some(pos) = text.find(marker) {
            let digits: String = text[pos + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(secs) = digits.parse::<u64>() {
                return Some(Duration::from_secs(secs));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock as Content;

    fn error_result(text: &str) -> CallToolResult {
        CallToolResult::error(vec![Content::text(text)])
    }

    #[test]
    fn detects_rate_limit_texts() {
        assert!(detect_rate_limit(&error_result("API rate limit exceeded for user")).0);
        assert!(detect_rate_limit(&error_result("429 Too Many Requests")).0);
        assert!(detect_rate_limit(&error_result("403: rate limit")).0);
        assert!(!detect_rate_limit(&error_result("rate limit")).0);
        assert!(!detect_rate_limit(&error_result("not found")).0);
        assert!(
            !detect_rate_limit(&CallToolResult::success(vec![Content::text(
                "rate limit exceeded"
            )]))
            .0
        );
        assert_eq!(
            detect_rate_limit(&error_result("Too many requests, retry after 90 seconds")).1,
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new("gh", 2, Duration::from_secs(60));
        assert_eq!(b.admit(t0), Admission::Allow);
        b.record(true, None, t0);
        assert_eq!(b.admit(t0), Admission::Allow);
        b.record(true, None, t0);
        let Admission::Reject { message } = b.admit(t0) else {
            panic!("breaker should be open")
        };
        assert!(message.contains("OPEN for server \"gh\""));
        assert_eq!(b.times_opened(), 1);
        // After the cooldown: one probe, others rejected.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(b.admit(later), Admission::Allow);
        assert!(matches!(b.admit(later), Admission::Reject { .. }));
        // The probe hits the limit again: open again at once.
        b.record(true, None, later);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert_eq!(b.times_opened(), 2);
        let much_later = later + Duration::from_secs(61);
        assert_eq!(b.admit(much_later), Admission::Allow);
        b.record(false, None, much_later);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn other_results_reset_the_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new("s", 2, Duration::from_secs(1));
        b.record(true, None, t0);
        b.record(false, None, t0);
        b.record(true, None, t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn absurd_reset_times_are_capped() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new("s", 1, Duration::from_secs(1));
        let (limited, retry) = detect_rate_limit(&error_result(
            "rate limit exceeded, retry after 18446744073709551615",
        ));
        assert!(limited);
        b.record(true, retry, t0);
        assert_eq!(
            b.admit(t0 + MAX_OPEN + Duration::from_secs(1)),
            Admission::Allow
        );
    }

    #[test]
    fn reset_time_extends_the_cooldown() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new("s", 1, Duration::from_secs(1));
        b.record(true, Some(Duration::from_secs(30)), t0);
        assert!(matches!(
            b.admit(t0 + Duration::from_secs(2)),
            Admission::Reject { .. }
        ));
        assert_eq!(b.admit(t0 + Duration::from_secs(31)), Admission::Allow);
    }
}
