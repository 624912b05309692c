//! REST through the proxy with an HTTP client: lists, single objects and
//! search filtered item by item by repository visibility and author
//! standing; upstream headers kept; writes passed through; the guard's
//! look-ups answered by the same upstream; local endpoints.

use serde_json::{Value, json};

use crate::common::*;

/// Issues of `octo-org/secret` under the scoped policy, trusted bot
/// `dependabot[bot]`: OWNER, MEMBER, COLLABORATOR and the bot remain;
/// CONTRIBUTOR, first-timers, NONE, MANNEQUIN and blocked `mallory` go.
#[test]
fn issue_lists_are_filtered_by_author_standing() {
    let mock = Mock::start();
    let proxy = Proxy::start(
        &mock,
        Some(&scoped_policy()),
        &["--trusted-bots", "dependabot[bot]"],
    );
    let response = get(&proxy.url("/api/v3/repos/octo-org/secret/issues?per_page=100&state=open"));
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = response.bytes().unwrap();
    let issues: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(numbers(&issues), [1, 2, 3, 8]);
    // The upstream's headers that matter survive; its others do not.
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    assert_eq!(headers["x-ratelimit-limit"], "5000");
    assert_eq!(headers["x-ratelimit-remaining"], "4999");
    assert!(headers.contains_key("x-github-request-id"));
    assert!(!headers.contains_key("x-mock-private-header"));
    // One upstream read, with the query string and the client's token.
    let reads = mock.requests_to("/repos/octo-org/secret/issues");
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["query"], "per_page=100&state=open");
    assert_eq!(reads[0]["headers"]["authorization"], "token client-token");
    assert_eq!(reads[0]["headers"]["accept"], "application/vnd.github+json");
}

#[test]
fn pagination_links_pass_through() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let response = get(&proxy.url("/repos/octo-org/api/issues?per_page=3&page=1"));
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("page=2>; rel=\"next\""), "{link}");
    assert_eq!(numbers(&json_of(response)), [1, 2, 3]);
    let page2 = json_of(get(
        &proxy.url("/repos/octo-org/api/issues?per_page=3&page=2")
    ));
    // Page 2 holds issues 4..6: all below approved.
    assert_eq!(numbers(&page2), Vec::<u64>::new());
}

#[test]
fn trusted_users_and_bots_extend_approval() {
    let mock = Mock::start();
    let plain = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let issues = json_of(get(&plain.url("/repos/octo-org/api/issues?per_page=100")));
    assert_eq!(numbers(&issues), [1, 2, 3]);
    let trusting = Proxy::start(
        &mock,
        Some(&scoped_policy()),
        &[
            "--trusted-users",
            "dave,erin",
            "--trusted-bots",
            "dependabot[bot]",
        ],
    );
    let issues = json_of(get(&trusting.url("/repos/octo-org/api/issues?per_page=100")));
    assert_eq!(numbers(&issues), [1, 2, 3, 4, 5, 8]);
}

#[test]
fn repositories_outside_the_policy_give_nothing() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    for repo in ["acme/internal", "acme/web"] {
        let response = get(&proxy.url(&format!("/repos/{repo}/issues")));
        assert_eq!(response.status(), 200, "{repo}");
        assert_eq!(json_of(response), json!([]), "{repo}");
    }
}

#[test]
fn a_public_policy_sees_public_repositories_only() {
    let mock = Mock::start();
    let policy = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
    let proxy = Proxy::start(&mock, Some(&policy), &[]);
    let public = json_of(get(&proxy.url("/repos/acme/web/issues")));
    assert_eq!(numbers(&public), (1..=10).collect::<Vec<u64>>());
    let private = json_of(get(&proxy.url("/repos/octo-org/secret/issues")));
    assert_eq!(private, json!([]));
    // The guard asked the upstream for the repositories' visibility,
    // through its own look-up tool.
    let lookups: Vec<String> = mock
        .requests_to("/search/repositories")
        .iter()
        .map(|r| r["query"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        lookups
            .iter()
            .any(|q| q.contains("q=repo%3Aocto-org%2Fsecret")),
        "{lookups:?}"
    );
    // Without a fallback token the look-ups carry the request's own token.
    for lookup in mock.requests_to("/search/repositories") {
        assert_eq!(lookup["headers"]["authorization"], "token client-token");
    }
}

#[test]
fn single_issues_are_kept_or_withheld() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let member = json_of(get(&proxy.url("/repos/octo-org/api/issues/2")));
    assert_eq!(member["number"], 2);
    assert_eq!(member["user"]["login"], "bob");
    // A contributor's issue: the object is withheld (an empty array, as the
    // reference answers).
    let response = get(&proxy.url("/repos/octo-org/api/issues/4"));
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response), json!([]));
    // Comments are labelled one by one: bob (MEMBER) stays, grace goes.
    let comments = json_of(get(&proxy.url("/repos/octo-org/api/issues/2/comments")));
    let authors: Vec<&str> = comments
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(authors, ["bob"]);
}

#[test]
fn search_keeps_its_envelope() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let found = json_of(get(&proxy.url(
        "/api/v3/search/issues?q=repo%3Aocto-org%2Fapi+is%3Aissue&per_page=100",
    )));
    assert_eq!(found["total_count"], 3);
    assert_eq!(found["incomplete_results"], false);
    assert_eq!(numbers(&found["items"]), [1, 2, 3]);
    let searched = mock.requests_to("/search/issues");
    assert_eq!(
        searched[0]["query"],
        "q=repo%3Aocto-org%2Fapi+is%3Aissue&per_page=100"
    );
}

#[test]
fn pull_requests_merged_and_approved() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let pulls = json_of(get(&proxy.url("/repos/octo-org/secret/pulls")));
    // 101 alice merged, 102 bob MEMBER, 105 grace (NONE) but merged.
    assert_eq!(numbers(&pulls), [101, 102, 105]);
    let merged = json_of(get(&proxy.url("/repos/octo-org/secret/pulls/105")));
    assert_eq!(merged["number"], 105);
    let unapproved = json_of(get(&proxy.url("/repos/octo-org/secret/pulls/104")));
    assert_eq!(unapproved, json!([]));
}

#[test]
fn writes_pass_through_unlabelled() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let http = client();
    let created = http
        .post(proxy.url("/api/v3/repos/acme/internal/issues"))
        .header("authorization", "token client-token")
        .json(&json!({"title": "from the agent"}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(
        created.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/issues/")
    );
    let body = json_of(created);
    assert_eq!(body["received"], json!({"title": "from the agent"}));
    for method in ["PATCH", "PUT", "DELETE"] {
        let response = http
            .request(
                method.parse().unwrap(),
                proxy.url("/repos/acme/internal/issues/1"),
            )
            .header("authorization", "token client-token")
            .json(&json!({"state": "closed"}))
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{method}: {}",
            response.status()
        );
    }
    let writes: Vec<(String, String)> = mock
        .requests()
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        writes,
        [
            (
                "POST".to_owned(),
                r#"{"title":"from the agent"}"#.to_owned()
            ),
            ("PATCH".to_owned(), r#"{"state":"closed"}"#.to_owned()),
            ("PUT".to_owned(), r#"{"state":"closed"}"#.to_owned()),
            ("DELETE".to_owned(), r#"{"state":"closed"}"#.to_owned()),
        ]
    );
}

#[test]
fn the_fallback_token_serves_clients_without_authorization() {
    let mock = Mock::start();
    let proxy = Proxy::start(
        &mock,
        Some(&scoped_policy()),
        &["--github-token", "fallback-token"],
    );
    let response = client()
        .get(proxy.url("/repos/octo-org/api/issues"))
        .send()
        .unwrap();
    assert_eq!(numbers(&json_of(response)), [1, 2, 3]);
    let read = &mock.requests_to("/repos/octo-org/api/issues")[0];
    assert_eq!(read["headers"]["authorization"], "token fallback-token");
    // The client's own header wins.
    get(&proxy.url("/repos/octo-org/api/issues"));
    let read = mock
        .requests_to("/repos/octo-org/api/issues")
        .pop()
        .unwrap();
    assert_eq!(read["headers"]["authorization"], "token client-token");
    // The guard's look-ups use the fallback token.
    for lookup in mock.requests_to("/search/repositories") {
        assert_eq!(lookup["headers"]["authorization"], "token fallback-token");
    }
}

#[test]
fn metadata_and_unrecognised_endpoints_pass_through() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let meta = json_of(get(&proxy.url("/api/v3/meta")));
    assert_eq!(meta["installed_version"], "3.12.0");
    let unknown = json_of(get(&proxy.url("/api/v3/v1/unknown/endpoint")));
    assert_eq!(unknown, json!({"status": "ok"}));
    assert_eq!(mock.requests_to("/meta").len(), 1);
    assert_eq!(mock.requests_to("/v1/unknown/endpoint").len(), 1);
    // The unrecognised endpoint is reported as the reference reports it:
    // a warning and an event in rpc-messages.jsonl.
    let log = proxy.log_with("[UNRECOGNIZED-ENDPOINT]");
    let line = log
        .lines()
        .find(|line| line.contains("[UNRECOGNIZED-ENDPOINT]"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("[WARN] [proxy] [UNRECOGNIZED-ENDPOINT] {"),
        "{line}"
    );
    let (_, shown) = line.split_once("[UNRECOGNIZED-ENDPOINT] ").unwrap();
    let shown: Value = serde_json::from_str(shown).unwrap();
    let mut jsonl = String::new();
    for _ in 0..200 {
        jsonl = std::fs::read_to_string(proxy.log_dir.join("rpc-messages.jsonl")).unwrap();
        if jsonl.contains("unrecognized_endpoint_passthrough") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let events: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|record: &Value| record["event"] == "unrecognized_endpoint_passthrough")
        .collect();
    assert_eq!(events.len(), 1, "{jsonl}");
    for event in [&shown, &events[0]] {
        let mut event = event.clone();
        assert!(
            event["timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
        event.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(
            event,
            json!({"event": "unrecognized_endpoint_passthrough", "_schema": "difc-event/v1",
                   "method": "GET", "path": "/v1/unknown/endpoint",
                   "action": "passthrough_with_empty_labels",
                   "note": "Endpoint not in route table or metadata allowlist -- forwarded with no integrity and no secrecy labels"})
        );
    }
}

#[test]
fn large_archives_stream_through_with_their_length() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let size = 8 * 1024 * 1024;
    let response = get(&proxy.url(&format!(
        "/repos/octo-org/api/actions/runs/7/logs?size={size}"
    )));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(response.content_length(), Some(size as u64));
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=logs.zip"
    );
    let body = response.bytes().unwrap();
    assert_eq!(body.len(), size);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    // The same archive of a repository outside the policy is withheld.
    let response = get(&proxy.url("/repos/acme/internal/actions/runs/7/logs"));
    assert_eq!(response.status(), 403);
    assert_eq!(json_of(response)["error"], "difc_forbidden");
}

#[test]
fn health_reflect_and_metrics() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    for path in ["/health", "/healthz", "/api/v3/health"] {
        assert_eq!(
            json_of(get(&proxy.url(path))),
            json!({"status": "ok"}),
            "{path}"
        );
    }
    // The agent holds the guard's labels from start-up.
    let before = json_of(get(&proxy.url("/reflect")));
    assert_eq!(
        before["agents"]["proxy"]["secrecy"],
        json!(["private:octo-org"]),
        "{before}"
    );
    get(&proxy.url("/repos/octo-org/api/issues"));
    for path in ["/reflect", "/api/v3/reflect"] {
        let reflect = json_of(get(&proxy.url(path)));
        assert_eq!(reflect["mode"], "filter", "{reflect}");
        let agent = &reflect["agents"]["proxy"];
        assert_eq!(agent["secrecy"], json!(["private:octo-org"]), "{reflect}");
        assert_eq!(
            agent["integrity"],
            json!([
                "approved:octo-org/*",
                "none:octo-org/*",
                "unapproved:octo-org/*"
            ]),
            "{reflect}"
        );
        assert!(reflect["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let metrics = get(&proxy.url("/metrics")).text().unwrap();
    assert!(
        metrics.contains("guardway_proxy_requests_total{kind=\"guarded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guardway_proxy_filtered_items_total 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guardway_proxy_labelled_items_total 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guardway_proxy_guard_seconds_count 1"),
        "{metrics}"
    );
    // The gateway pipeline's own families: calls, filtered items, guard time.
    assert!(
        metrics.contains("guardway_tool_calls_total{server=\"github\",tool=\"list_issues\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guardway_filtered_items_total{server=\"github\",tool=\"list_issues\"} 7"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guardway_guard_call_duration_seconds"),
        "{metrics}"
    );
    // None of these reached the upstream.
    assert!(mock.requests_to("/health").is_empty());
    assert!(mock.requests_to("/reflect").is_empty());
    // The log file has the start-up and the filtering.
    let log = proxy.log_with("DIFC filtered 7/10 items");
    assert!(
        log.contains("Proxy listening on http://127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains(
            "DIFC filtered 7/10 items for GET /repos/octo-org/api/issues (tool=list_issues)"
        ),
        "{log}"
    );
    // The pipeline's decision line, as the gateway writes it.
    assert!(log.contains("difc decision"), "{log}");
    assert!(log.contains("decision=filter"), "{log}");
    // The reference proxy's files: no gateway log, no per-server log.
    assert!(proxy.log_dir.join("rpc-messages.jsonl").exists());
    assert!(!proxy.log_dir.join("mcp-gateway.log").exists());
    assert!(!proxy.log_dir.join("github.log").exists());
}

#[test]
fn without_a_policy_guarded_reads_are_unavailable() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, None, &[]);
    let response = get(&proxy.url("/repos/octo-org/api/issues"));
    assert_eq!(response.status(), 503);
    assert_eq!(
        json_of(response),
        json!({"error": "service_unavailable", "message": "proxy enforcement not configured"})
    );
    assert!(mock.requests_to("/repos/octo-org/api/issues").is_empty());
}

/// A read the guard labels as a write (the raw-ABI guard labels every tool
/// but the issue reads so) is refused by the coarse check before anything
/// is forwarded: 403 with the reference's body, nothing reaches the mock,
/// the denial is counted and logged.
#[test]
fn coarse_denials_are_refused_before_the_upstream() {
    let mock = Mock::start();
    let policy = json!({"allow-only": {"repos": ["octo-org/*"], "min-integrity": "approved"}});
    let proxy = Proxy::start_guarded_by(&raw_abi_guard(), &mock, Some(&policy), &[]);
    let response = get(&proxy.url("/api/v3/repos/octo-org/api/pulls?state=open"));
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["content-type"], "application/json");
    let reason = "Agent carries private (octo-org/*)-scoped data that cannot be written to \
                  'list_pull_requests' due to secrecy constraints. The target resource is not \
                  authorized to receive this sensitive data.";
    assert_eq!(
        json_of(response),
        json!({"error": "difc_forbidden", "message": format!("DIFC policy violation: {reason}")})
    );
    assert!(mock.requests_to("/repos/octo-org/api/pulls").is_empty());
    // The same guard's issue reads are reads: forwarded and filtered.
    let issues = get(&proxy.url("/repos/octo-org/api/issues"));
    assert_eq!(issues.status(), 200);
    assert_eq!(mock.requests_to("/repos/octo-org/api/issues").len(), 1);
    let metrics = get(&proxy.url("/metrics")).text().unwrap();
    assert!(
        metrics.contains("guardway_proxy_denials_total{reason=\"difc\"} 1"),
        "{metrics}"
    );
    let log = proxy.log_with("[DIFC] Phase 2: BLOCKED");
    assert!(
        log.contains(&format!(
            "[DIFC] Phase 2: BLOCKED GET /repos/octo-org/api/pulls?state=open — {reason}"
        )),
        "{log}"
    );
}
