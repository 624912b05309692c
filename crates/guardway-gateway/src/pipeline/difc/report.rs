//! What the DIFC pipeline reports about itself: each server's guard state
//! (`/health`, the start-up digest), its metric families (`/metrics`) and
//! the agents' labels (`/reflect`, difc.md §6).

use std::collections::BTreeMap;

use guardway_wasm::GuardHealth;
use serde_json::{Value, json};

use crate::observe::metrics::SnapshotFamily;

use super::DifcPipeline;
use super::binding::BoundGuard;
use super::servers::ServerGuard;

impl DifcPipeline {
    /// The state of each server's guard, as `/health` shows it.
    pub fn guard_states(&self) -> BTreeMap<String, Value> {
        let Some(servers) = self.servers.get() else {
            return BTreeMap::new();
        };
        servers
            .iter()
            .map(|(id, server)| (id.clone(), guard_state(server)))
            .collect()
    }

    /// Appends the pipeline's counters and histograms and the state of its
    /// guards' pools (instances, faults, quarantine, loaded) to a
    /// `/metrics` body. The process-wide compilation cache is
    /// [`render_cache_stats`]'s.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
        let mut idle = SnapshotFamily::gauge(
            "guardway_guard_instances_idle",
            "Guard instances waiting in the pool.",
            &["server"],
        );
        let mut live = SnapshotFamily::gauge(
            "guardway_guard_instances_live",
            "Guard instances alive (idle or in a call).",
            &["server"],
        );
        let mut faults = SnapshotFamily::counter(
            "guardway_guard_faults_total",
            "Guard calls that trapped, timed out or hit the memory cap.",
            &["server", "kind"],
        );
        let mut quarantined = SnapshotFamily::gauge(
            "guardway_guard_quarantined",
            "1 while the server's guard is quarantined.",
            &["server"],
        );
        let mut quarantine_denials = SnapshotFamily::counter(
            "guardway_guard_quarantine_denials_total",
            "Guard calls refused while quarantined.",
            &["server"],
        );
        let mut loaded = SnapshotFamily::gauge(
            "guardway_guard_loaded",
            "1 when the server's guard is usable, 0 when it failed to load.",
            &["server"],
        );
        if let Some(servers) = self.servers.get() {
            for (id, server) in servers {
                let pools = server.pools_view.lock().clone();
                let mut totals = guardway_wasm::GuardStats::default();
                let init_faults = *server.init_faults.lock();
                totals.traps += init_faults.traps;
                totals.timeouts += init_faults.timeouts;
                totals.memory_limits += init_faults.memory_limits;
                let mut is_quarantined = false;
                for guard in &pools {
                    let stats = guard.stats();
                    totals.idle_instances += stats.idle_instances;
                    totals.live_instances += stats.live_instances;
                    totals.traps += stats.traps;
                    totals.timeouts += stats.timeouts;
                    totals.memory_limits += stats.memory_limits;
                    totals.denied += stats.denied;
                    is_quarantined |= matches!(guard.health(), GuardHealth::Quarantined { .. });
                }
                idle.sample(&[id], totals.idle_instances);
                live.sample(&[id], totals.live_instances);
                faults.sample(&[id, "trap"], totals.traps);
                faults.sample(&[id, "timeout"], totals.timeouts);
                faults.sample(&[id, "memory_limit"], totals.memory_limits);
                quarantined.sample(&[id], u64::from(is_quarantined));
                quarantine_denials.sample(&[id], totals.denied);
                loaded.sample(
                    &[id],
                    u64::from(!matches!(server.bound, BoundGuard::Failed { .. })),
                );
            }
        }
        for family in [idle, live, faults, quarantined, quarantine_denials, loaded] {
            family.render(out);
        }
    }

    /// The DIFC state for `GET /reflect` (difc.md §6): `{"agents": {id:
    /// {"secrecy": [..], "integrity": [..]}}, "mode": ..}` with sorted
    /// tags; the caller adds the timestamp.
    pub fn reflect(&self) -> Value {
        let agents: serde_json::Map<String, Value> = self
            .registry
            .snapshot()
            .into_iter()
            .map(|(id, labels)| {
                let secrecy: Vec<&str> = labels.secrecy.iter().collect();
                let integrity: Vec<&str> = labels.integrity.iter().collect();
                (id, json!({"secrecy": secrecy, "integrity": integrity}))
            })
            .collect();
        json!({"agents": agents, "mode": self.default_mode.as_str()})
    }
}

/// Appends the process-wide compilation cache counters to a `/metrics`
/// body.
pub fn render_cache_stats(out: &mut String) {
    let stats = guardway_wasm::CompilationCache::global().stats();
    let mut lookups = SnapshotFamily::counter(
        "guardway_wasm_cache_lookups_total",
        "Guard module look-ups in the compilation cache by result.",
        &["result"],
    );
    lookups.sample(&["memory_hit"], stats.memory_hits);
    lookups.sample(&["disk_hit"], stats.disk_hits);
    lookups.sample(&["miss"], stats.misses);
    lookups.render(out);
    let mut compilations = SnapshotFamily::counter(
        "guardway_wasm_cache_compilations_total",
        "Guard modules compiled.",
        &[],
    );
    compilations.sample(&[], stats.compilations);
    compilations.render(out);
    let mut evictions = SnapshotFamily::counter(
        "guardway_wasm_cache_evictions_total",
        "Compiled modules evicted from the cache by tier.",
        &["tier"],
    );
    evictions.sample(&["memory"], stats.memory_evictions);
    evictions.sample(&["disk"], stats.disk_evictions);
    evictions.render(out);
    let mut bytes = SnapshotFamily::gauge(
        "guardway_wasm_cache_bytes",
        "Bytes held by the compilation cache by tier.",
        &["tier"],
    );
    bytes.sample(&["memory"], stats.memory_bytes);
    bytes.render(out);
}

fn guard_state(server: &ServerGuard) -> Value {
    let (name, kind) = match &server.bound {
        BoundGuard::Noop => ("noop".to_owned(), "noop"),
        BoundGuard::WriteSink { .. } => ("write-sink".to_owned(), "write-sink"),
        BoundGuard::Wasm { name, .. } => (name.clone(), "wasm"),
        BoundGuard::Failed { name, reason } => {
            return json!({"name": name, "state": "failed-to-load", "reason": reason});
        }
    };
    let pools = server.pools_view.lock().clone();
    let mut state = json!({"name": name, "type": kind, "state": "healthy"});
    for guard in pools {
        match guard.health() {
            GuardHealth::Healthy => {}
            GuardHealth::Degraded {
                recent_failures,
                last_failure,
            } => {
                if state["state"] == "healthy" {
                    state = json!({"name": name, "type": kind, "state": "degraded",
                        "recentFailures": recent_failures, "reason": last_failure});
                }
            }
            GuardHealth::Quarantined { reason, until } => {
                let retry = until.saturating_duration_since(std::time::Instant::now());
                return json!({"name": name, "type": kind, "state": "quarantined",
                    "reason": reason, "retryInSeconds": retry.as_secs()});
            }
        }
    }
    if let Some(Err(error)) = &server.policy {
        return json!({"name": name, "type": kind, "state": "failed-to-load",
            "reason": format!("invalid guard policy: {error}")});
    }
    state
}
