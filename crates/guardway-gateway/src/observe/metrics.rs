//! Prometheus text exposition (format 0.0.4) written by hand: labelled
//! counters, gauges and fixed-bucket histograms, and the `/metrics` body
//! builder the HTTP layer serves.
//!
//! [`MetricsRegistry`] is `Send + Sync`; every update takes one short lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.5, 1.0,
];

/// Label values of one series, in the order of the family's label names.
type LabelValues = Vec<String>;

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<&'static str, (Family, BTreeMap<LabelValues, u64>)>,
    histograms: BTreeMap<&'static str, (Family, BTreeMap<LabelValues, Histogram>)>,
}

#[derive(Debug, Clone, Copy)]
struct Family {
    help: &'static str,
    labels: &'static [&'static str],
}

/// The series `name{labels=values}` of a counter or histogram family,
/// created (with `family`'s help and label names) on first use.
fn series_mut<'a, T: Default>(
    families: &'a mut BTreeMap<&'static str, (Family, BTreeMap<LabelValues, T>)>,
    name: &'static str,
    family: Family,
    values: &[&str],
) -> &'a mut T {
    let (_, series) = families
        .entry(name)
        .or_insert_with(|| (family, BTreeMap::new()));
    let key: LabelValues = values.iter().map(|v| (*v).to_owned()).collect();
    series.entry(key).or_default()
}

/// Counters and histograms updated by the request path.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    families: Mutex<Families>,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` to the counter `name{labels=values}`.
    pub fn add(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        values: &[&str],
        by: u64,
    ) {
        let mut families = self.families.lock();
        *series_mut(
            &mut families.counters,
            name,
            Family { help, labels },
            values,
        ) += by;
    }

    /// Records one observation of the histogram `name{labels=values}`.
    pub fn observe(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        values: &[&str],
        elapsed: Duration,
    ) {
        let mut families = self.families.lock();
        series_mut(
            &mut families.histograms,
            name,
            Family { help, labels },
            values,
        )
        .observe(elapsed.as_secs_f64());
    }

    /// The current value of a counter series (0 when never updated).
    pub fn counter(&self, name: &str, values: &[&str]) -> u64 {
        let families = self.families.lock();
        families
            .counters
            .get(name)
            .and_then(|(_, series)| {
                series
                    .iter()
                    .find(|(key, _)| key.iter().map(String::as_str).eq(values.iter().copied()))
                    .map(|(_, v)| *v)
            })
            .unwrap_or(0)
    }

    /// Appends every family in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let families = self.families.lock();
        for (name, (family, series)) in &families.counters {
            write_header(out, name, family.help, "counter");
            for (values, value) in series {
                write_sample(
                    out,
                    name,
                    "",
                    family.labels,
                    values,
                    None,
                    &value.to_string(),
                );
            }
        }
        for (name, (family, series)) in &families.histograms {
            write_header(out, name, family.help, "histogram");
            for (values, histogram) in series {
                for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets.iter()) {
                    write_sample(
                        out,
                        name,
                        "_bucket",
                        family.labels,
                        values,
                        Some(&format_float(*bound)),
                        &count.to_string(),
                    );
                }
                write_sample(
                    out,
                    name,
                    "_bucket",
                    family.labels,
                    values,
                    Some("+Inf"),
                    &histogram.count.to_string(),
                );
                write_sample(
                    out,
                    name,
                    "_sum",
                    family.labels,
                    values,
                    None,
                    &format_float(histogram.sum),
                );
                write_sample(
                    out,
                    name,
                    "_count",
                    family.labels,
                    values,
                    None,
                    &histogram.count.to_string(),
                );
            }
        }
    }
}

/// A family whose samples are computed when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct SnapshotFamily {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    samples: Vec<(LabelValues, String)>,
}

impl SnapshotFamily {
    /// A gauge family.
    pub fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        SnapshotFamily {
            name,
            help,
            kind: "gauge",
            labels,
            samples: Vec::new(),
        }
    }

    /// A counter family (monotonic values read from elsewhere).
    pub fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        SnapshotFamily {
            kind: "counter",
            ..Self::gauge(name, help, labels)
        }
    }

    /// Adds one sample.
    pub fn sample(&mut self, values: &[&str], value: u64) {
        self.samples.push((
            values.iter().map(|v| (*v).to_owned()).collect(),
            value.to_string(),
        ));
    }

    /// Appends the family (header even without samples).
    pub fn render(&self, out: &mut String) {
        write_header(out, self.name, self.help, self.kind);
        for (values, value) in &self.samples {
            write_sample(out, self.name, "", self.labels, values, None, value);
        }
    }
}

fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[&str],
    values: &[String],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .chain(le.map(|le| ("le", le)))
        .collect();
    if !pairs.is_empty() {
        out.push('{');
        for (position, (label, value)) in pairs.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_float(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else if value.is_nan() {
        "NaN".to_owned()
    } else if value > 0.0 {
        "+Inf".to_owned()
    } else {
        "-Inf".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_text_format() {
        let registry = MetricsRegistry::new();
        registry.add("x_total", "Things.", &["server", "tool"], &["a", "t\"1"], 2);
        registry.add("x_total", "Things.", &["server", "tool"], &["a", "t\"1"], 1);
        registry.observe(
            "lat_seconds",
            "Latency.",
            &["server"],
            &["a"],
            Duration::from_micros(300),
        );
        assert_eq!(registry.counter("x_total", &["a", "t\"1"]), 3);
        assert_eq!(registry.counter("x_total", &["b", "t"]), 0);
        let mut out = String::new();
        registry.render(&mut out);
        assert!(out.contains("# TYPE x_total counter\n"));
        assert!(out.contains("x_total{server=\"a\",tool=\"t\\\"1\"} 3\n"));
        assert!(out.contains("lat_seconds_bucket{server=\"a\",le=\"0.00025\"} 0\n"));
        assert!(out.contains("lat_seconds_bucket{server=\"a\",le=\"0.0005\"} 1\n"));
        assert!(out.contains("lat_seconds_bucket{server=\"a\",le=\"+Inf\"} 1\n"));
        assert!(out.contains("lat_seconds_count{server=\"a\"} 1\n"));
    }

    #[test]
    fn snapshot_family_renders_header_and_samples() {
        let mut family = SnapshotFamily::gauge("g", "A gauge.", &["server"]);
        family.sample(&["s"], 4);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP g A gauge.\n# TYPE g gauge\ng{server=\"s\"} 4\n"
        );
    }
}
