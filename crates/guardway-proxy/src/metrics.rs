//! The proxy's counters for `/metrics` (Prometheus text format): requests
//! by how they were handled, refusals by reason, filtered items, upstream
//! failures, and the time the guard pipeline adds to a guarded read (its
//! run time without the upstream round trip).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How a request was handled (the `kind` label of
/// `guardway_proxy_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A read through the DIFC pipeline.
    Guarded,
    /// A write (or another non-read method), forwarded as is.
    Write,
    /// A metadata endpoint or a GraphQL introspection query.
    Metadata,
    /// A REST read no route knows, forwarded with empty labels.
    Unrecognized,
    /// `/health`, `/reflect`, `/metrics`.
    Local,
}

impl RequestKind {
    const ALL: [RequestKind; 5] = [
        RequestKind::Guarded,
        RequestKind::Write,
        RequestKind::Metadata,
        RequestKind::Unrecognized,
        RequestKind::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Guarded => "guarded",
            RequestKind::Write => "write",
            RequestKind::Metadata => "metadata",
            RequestKind::Unrecognized => "unrecognized",
            RequestKind::Local => "local",
        }
    }
}

/// Why a request was refused (the `reason` label of
/// `guardway_proxy_denials_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialReason {
    /// The coarse check refused the operation before upstream.
    Difc,
    /// The answer was refused after the upstream call (strict mode with
    /// filtered items, a tool-call limit).
    Response,
    /// An unrecognised GraphQL operation.
    UnknownGraphql,
    /// `label_resource` failed.
    LabelingFailed,
    /// No policy: enforcement not configured.
    NotConfigured,
    /// Everything in the answer was withheld (empty answer sent).
    Withheld,
}

impl DenialReason {
    const ALL: [DenialReason; 6] = [
        DenialReason::Difc,
        DenialReason::Response,
        DenialReason::UnknownGraphql,
        DenialReason::LabelingFailed,
        DenialReason::NotConfigured,
        DenialReason::Withheld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::Difc => "difc",
            DenialReason::Response => "response",
            DenialReason::UnknownGraphql => "unknown_graphql",
            DenialReason::LabelingFailed => "labeling_failed",
            DenialReason::NotConfigured => "not_configured",
            DenialReason::Withheld => "withheld",
        }
    }
}

/// Upper bounds of the guard-latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// Lock-free counters; one per proxy, shared by every request.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    requests: [AtomicU64; 5],
    denials: [AtomicU64; 6],
    filtered_items: AtomicU64,
    labelled_items: AtomicU64,
    upstream_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

fn index_of<T: PartialEq>(all: &[T], item: &T) -> usize {
    all.iter().position(|x| x == item).unwrap_or(0)
}

impl ProxyMetrics {
    pub fn request(&self, kind: RequestKind) {
        self.requests[index_of(&RequestKind::ALL, &kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn denial(&self, reason: DenialReason) {
        self.denials[index_of(&DenialReason::ALL, &reason)].fetch_add(1, Ordering::Relaxed);
    }

    /// Items labelled in one answer and how many of them were filtered.
    pub fn items(&self, labelled: usize, filtered: usize) {
        self.labelled_items
            .fetch_add(labelled as u64, Ordering::Relaxed);
        self.filtered_items
            .fetch_add(filtered as u64, Ordering::Relaxed);
    }

    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Time the pipeline took for one guarded read, upstream excluded.
    pub fn guard_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn requests(&self, kind: RequestKind) -> u64 {
        self.requests[index_of(&RequestKind::ALL, &kind)].load(Ordering::Relaxed)
    }

    pub fn denials(&self, reason: DenialReason) -> u64 {
        self.denials[index_of(&DenialReason::ALL, &reason)].load(Ordering::Relaxed)
    }

    pub fn filtered_items(&self) -> u64 {
        self.filtered_items.load(Ordering::Relaxed)
    }

    /// Appends the families in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP guardway_proxy_requests_total Proxy requests by how they were handled.\n# TYPE guardway_proxy_requests_total counter"
        );
        for kind in RequestKind::ALL {
            let _ = writeln!(
                out,
                "guardway_proxy_requests_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                self.requests(kind)
            );
        }
        let _ = writeln!(
            out,
            "# HELP guardway_proxy_denials_total Proxy requests refused or withheld, by reason.\n# TYPE guardway_proxy_denials_total counter"
        );
        for reason in DenialReason::ALL {
            let _ = writeln!(
                out,
                "guardway_proxy_denials_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                self.denials(reason)
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            out,
            "guardway_proxy_labelled_items_total",
            "Items of upstream answers labelled by the guard.",
            self.labelled_items.load(Ordering::Relaxed),
        );
        counter(
            out,
            "guardway_proxy_filtered_items_total",
            "Items removed from upstream answers by DIFC filtering.",
            self.filtered_items(),
        );
        counter(
            out,
            "guardway_proxy_upstream_errors_total",
            "Upstream requests that failed or timed out.",
            self.upstream_errors.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP guardway_proxy_guard_seconds Time the DIFC pipeline adds to a guarded read (upstream excluded).\n# TYPE guardway_proxy_guard_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "guardway_proxy_guard_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = Duration::from_nanos(self.latency_sum_nanos.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "guardway_proxy_guard_seconds_bucket{{le=\"+Inf\"}} {count}\nguardway_proxy_guard_seconds_sum {}\nguardway_proxy_guard_seconds_count {count}",
            sum.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let metrics = ProxyMetrics::default();
        metrics.request(RequestKind::Guarded);
        metrics.request(RequestKind::Guarded);
        metrics.denial(DenialReason::Response);
        metrics.items(5, 2);
        metrics.guard_latency(Duration::from_micros(300));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(
            out.contains("guardway_proxy_requests_total{kind=\"guarded\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("guardway_proxy_requests_total{kind=\"write\"} 0\n"));
        assert!(out.contains("guardway_proxy_denials_total{reason=\"response\"} 1\n"));
        assert!(out.contains("guardway_proxy_filtered_items_total 2\n"));
        assert!(out.contains("guardway_proxy_labelled_items_total 5\n"));
        assert!(out.contains("guardway_proxy_guard_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(out.contains("guardway_proxy_guard_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(out.contains("guardway_proxy_guard_seconds_count 1\n"));
        assert_eq!(metrics.filtered_items(), 2);
    }
}
