//! GraphQL through the proxy: connections filtered node by node (the
//! fields the guard needs added to the query), single objects withheld,
//! introspection forwarded, unknown operations and mutations refused
//! before the upstream.

use serde_json::{Value, json};

use crate::common::*;

const ISSUE_LIST: &str = "query IssueList($owner: String!, $repo: String!, $limit: Int) { repository(owner: $owner, name: $repo) { hasIssuesEnabled issues(first: $limit, states: [OPEN]) { totalCount nodes { number title } pageInfo { hasNextPage } } } }";

fn node_numbers(connection: &Value) -> Vec<u64> {
    connection["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes: {connection}"))
        .iter()
        .map(|node| node["number"].as_u64().unwrap())
        .collect()
}

#[test]
fn issue_connections_are_filtered_node_by_node() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    for path in ["/api/graphql", "/graphql", "/api/v3/graphql"] {
        mock.clear();
        let response = graphql(
            &proxy.url(path),
            ISSUE_LIST,
            json!({"owner": "octo-org", "repo": "secret", "limit": 50}),
        );
        assert_eq!(response.status(), 200, "{path}");
        let body = json_of(response);
        let issues = &body["data"]["repository"]["issues"];
        assert_eq!(node_numbers(issues), [1, 2, 3], "{path}: {body}");
        assert_eq!(issues["totalCount"], 3, "{path}");
        assert_eq!(body["data"]["repository"]["hasIssuesEnabled"], true);
        // The query reached the upstream with the guard's fields added.
        let sent = mock.requests_to("/graphql");
        assert_eq!(sent.len(), 1, "{path}");
        let sent: Value = serde_json::from_str(sent[0]["body"].as_str().unwrap()).unwrap();
        let query = sent["query"].as_str().unwrap();
        assert!(
            query.contains("nodes {author{login},authorAssociation, number title }"),
            "{query}"
        );
        assert_eq!(sent["variables"]["repo"], "secret");
    }
}

#[test]
fn a_connection_with_nothing_accessible_is_null_data() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let body = json_of(graphql(
        &proxy.url("/api/graphql"),
        ISSUE_LIST,
        json!({"owner": "acme", "repo": "internal", "limit": 50}),
    ));
    assert_eq!(body, json!({"data": null}));
}

#[test]
fn nothing_filtered_returns_the_upstream_answer_unchanged() {
    let mock = Mock::start();
    let policy = json!({"allow-only": {"repos": "public", "min-integrity": "none"}});
    let proxy = Proxy::start(&mock, Some(&policy), &[]);
    let response = graphql(
        &proxy.url("/api/graphql"),
        ISSUE_LIST,
        json!({"owner": "acme", "repo": "web", "limit": 50}),
    );
    let body = json_of(response);
    let issues = &body["data"]["repository"]["issues"];
    assert_eq!(node_numbers(issues), (1..=10).collect::<Vec<u64>>());
    assert_eq!(issues["totalCount"], 10);
    // The injected fields came back from the upstream as it answered them.
    assert_eq!(issues["nodes"][0]["authorAssociation"], "OWNER");
}

#[test]
fn search_pull_requests_and_single_issues() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let search = json_of(graphql(
        &proxy.url("/api/graphql"),
        "query($query: String!) { search(query: $query, type: ISSUE, first: 50) { issueCount nodes { ... on Issue { number title url } } } }",
        json!({"query": "repo:octo-org/api is:issue"}),
    ));
    assert_eq!(
        node_numbers(&search["data"]["search"]),
        [1, 2, 3],
        "{search}"
    );
    let pulls = json_of(graphql(
        &proxy.url("/api/graphql"),
        "query { repository(owner: \"octo-org\", name: \"secret\") { pullRequests(first: 10) { totalCount nodes { number } } } }",
        json!({}),
    ));
    let pulls = &pulls["data"]["repository"]["pullRequests"];
    // The query selects no `mergedAt`: 105 (merged, by a NONE author)
    // counts by its author only.
    assert_eq!(node_numbers(pulls), [101, 102], "{pulls}");
    assert_eq!(pulls["totalCount"], 2);
    let issue = |number: u64| {
        json_of(graphql(
            &proxy.url("/api/graphql"),
            "query($owner: String!, $repo: String!, $n: Int!) { repository(owner: $owner, name: $repo) { issue(number: $n) { number title } } }",
            json!({"owner": "octo-org", "repo": "api", "n": number}),
        ))
    };
    // The query selects no author: the guard looks the issue up through
    // the upstream (REST) to learn its author's standing.
    assert_eq!(issue(3)["data"]["repository"]["issue"]["number"], 3);
    assert_eq!(mock.requests_to("/repos/octo-org/api/issues/3").len(), 1);
    assert_eq!(issue(4), json!({"data": null}));
}

#[test]
fn introspection_is_forwarded_and_unknown_operations_refused() {
    let mock = Mock::start();
    let proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    let fields = json_of(graphql(
        &proxy.url("/api/graphql"),
        "query Issue_fields{Issue: __type(name: \"Issue\"){fields(includeDeprecated: true){name}}}",
        json!({}),
    ));
    assert!(fields["data"]["Issue"]["fields"].as_array().unwrap().len() > 5);
    mock.clear();
    for query in [
        "{ completelyUnrecognisedOperation { field } }",
        "mutation IssueCreate($input: CreateIssueInput!) { createIssue(input: $input) { issue { url } } }",
    ] {
        let response = graphql(&proxy.url("/api/graphql"), query, json!({}));
        assert_eq!(response.status(), 403, "{query}");
        assert_eq!(
            json_of(response),
            json!({"data": null, "errors": [{"message": "access denied: unrecognized GraphQL operation"}]})
        );
    }
    let malformed = client()
        .post(proxy.url("/api/graphql"))
        .body("not json")
        .send()
        .unwrap();
    assert_eq!(malformed.status(), 403);
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
}
