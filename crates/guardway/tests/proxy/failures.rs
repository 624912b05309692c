//! Upstream failures through the proxy: error statuses passed through,
//! a hanging upstream cut by the upstream timeout, a dropped connection,
//! rate limits, and failed look-ups of the guard (closed: the items count
//! as private).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

fn bad_gateway() -> serde_json::Value {
    json!({"error": "bad_gateway", "message": "upstream request failed"})
}

#[test]
fn upstream_errors_pass_through() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    mock.faults(json!([{"path": "^/repos/octo-org/api/issues$", "mode": "500"}]));
    let response = get(&proxy.url("/repos/octo-org/api/issues"));
    assert_eq!(response.status(), 500);
    assert_eq!(json_of(response), json!({"message": "mock fault 500"}));
    let missing = get(&proxy.url("/repos/octo-org/api/issues/99"));
    assert_eq!(missing.status(), 404);
    assert_eq!(json_of(missing)["message"], "Not Found");
}

#[test]
fn a_hanging_upstream_is_cut_by_the_upstream_timeout() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &["--upstream-timeout", "1s"]);
    mock.faults(json!([{"path": "^/repos/octo-org/api/", "mode": "hang", "seconds": 30}]));
    for path in [
        "/repos/octo-org/api/issues",
        "/repos/octo-org/api/pulls/101/merge",
    ] {
        let started = Instant::now();
        let response = if path.ends_with("merge") {
            client().put(proxy.url(path)).body("{}").send().unwrap()
        } else {
            get(&proxy.url(path))
        };
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 502, "{path}");
        assert_eq!(json_of(response), bad_gateway(), "{path}");
        assert!(elapsed < Duration::from_secs(20), "{path}: {elapsed:?}");
    }
    // Both failures are counted and logged with their cause.
    let metrics = get(&proxy.url("/metrics")).text().unwrap();
    assert!(
        metrics.contains("guardway_proxy_upstream_errors_total 2"),
        "{metrics}"
    );
    let rejection =
        "Request rejected: status=502 code=bad_gateway message=upstream request failed err=";
    let mut log = proxy.log_with(rejection);
    for _ in 0..100 {
        if log.matches(rejection).count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        log = proxy.log_with(rejection);
    }
    let rejected: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(rejection))
        .collect();
    assert_eq!(rejected.len(), 2, "{log}");
    assert!(
        rejected.iter().all(|line| line.contains("[ERROR]")),
        "{log}"
    );
}

#[test]
fn a_dropped_connection_is_a_bad_gateway() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    mock.faults(json!([{"path": "^/repos/octo-org/api/issues$", "mode": "close"}]));
    let response = get(&proxy.url("/repos/octo-org/api/issues"));
    assert_eq!(response.status(), 502);
    assert_eq!(json_of(response), bad_gateway());
}

#[test]
fn rate_limits_carry_a_retry_after() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    mock.faults(json!([{"path": "^/repos/octo-org/api/issues$", "mode": "429"}]));
    let response = get(&proxy.url("/repos/octo-org/api/issues"));
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
}

#[test]
fn a_failed_visibility_lookup_counts_as_private() {
    let mock = Mock::start();
    let policy = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
    let proxy = Proxy::start(&mock, Some(&policy), &["--upstream-timeout", "1s"]);
    for mode in ["500", "hang"] {
        mock.faults(json!([{"path": "^/search/repositories$", "mode": mode, "seconds": 5}]));
        // Issues of a public repository whose objects do not state its
        // visibility: the guard cannot learn it, so nothing is shown.
        let response = get(&proxy.url("/repos/acme/web/issues"));
        assert_eq!(response.status(), 200, "{mode}");
        assert_eq!(json_of(response), json!([]), "{mode}");
        assert!(
            !mock.requests_to("/search/repositories").is_empty(),
            "{mode}"
        );
        mock.clear();
    }
    mock.faults(json!([]));
    let issues = json_of(get(&proxy.url("/repos/acme/web/issues")));
    assert_eq!(numbers(&issues).len(), 10);
}
