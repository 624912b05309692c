//! Unit tests of the request handler: a real local upstream (an in-process
//! axum server recording what reaches it) and an in-process pipeline whose
//! decisions each test sets, so every branch of the handler is exercised
//! without a guard.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::*;
use crate::pipeline::BoxFuture;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

type Answer = Arc<dyn Fn(&Seen) -> Response + Send + Sync>;

struct Upstreamer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstreamer {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

async fn upstream_answering(answer: Answer) -> Upstreamer {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let answer = answer.clone();
        let recorded = recorded.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let seen = Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            recorded.lock().push(seen.clone());
            answer(&seen)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstreamer { addr, seen }
}

fn json_answer(status: u16, body: Value) -> Answer {
    Arc::new(move |_| {
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
        headers.insert(
            "link",
            HeaderValue::from_static("<https://api.github.com/x?page=2>; rel=\"next\""),
        );
        headers.insert("x-private", HeaderValue::from_static("secret"));
        response
    })
}

/// What the fake pipeline does with a call.
#[derive(Clone)]
enum Decision {
    Refuse(PipelineRefusal),
    /// Forwards, then builds the outcome from the JSON.
    Forward(Arc<dyn Fn(&Value) -> PipelineOutcome + Send + Sync>),
    /// As `Forward`, after a coarse check that denied the read.
    ForwardDenied(Arc<dyn Fn(&Value) -> PipelineOutcome + Send + Sync>),
    /// Forwards, then refuses the answer.
    ForwardThenRefuse(PipelineRefusal),
}

struct FakePipeline {
    decision: Decision,
    calls: Mutex<Vec<GuardedCall>>,
    unlabelled: Mutex<Vec<String>>,
}

impl FakePipeline {
    fn new(decision: Decision) -> Arc<Self> {
        Arc::new(FakePipeline {
            decision,
            calls: Mutex::default(),
            unlabelled: Mutex::default(),
        })
    }

    fn allowing() -> Arc<Self> {
        Self::new(Decision::Forward(Arc::new(|_| {
            PipelineOutcome::Unlabelled {
                coarse_allowed: true,
            }
        })))
    }
}

impl ProxyPipeline for FakePipeline {
    fn run<'a>(
        &'a self,
        call: GuardedCall,
        forward: crate::pipeline::ForwardStep<'a>,
    ) -> BoxFuture<'a, Result<PipelineOutcome, PipelineRefusal>> {
        self.calls.lock().push(call);
        Box::pin(async move {
            match &self.decision {
                Decision::Refuse(refusal) => Err(refusal.clone()),
                Decision::ForwardThenRefuse(refusal) => {
                    let _ = forward(ForwardContext {
                        coarse_allowed: true,
                    })
                    .await;
                    Err(refusal.clone())
                }
                Decision::Forward(outcome) | Decision::ForwardDenied(outcome) => {
                    let coarse_allowed = matches!(self.decision, Decision::Forward(_));
                    match forward(ForwardContext { coarse_allowed }).await {
                        Ok(value) => Ok(outcome(&value)),
                        Err(stop) => Ok(PipelineOutcome::Stopped(stop)),
                    }
                }
            }
        })
    }

    fn note_unlabelled_read(&self, description: &str) {
        self.unlabelled.lock().push(description.to_owned());
    }

    fn reflect(&self) -> Value {
        json!({"agents": {"proxy": {"secrecy": [], "integrity": ["approved"]}}, "mode": "filter"})
    }
}

/// A filtered answer as the pipeline gives it back.
fn answer(body: Option<Value>, total: usize, filtered: usize) -> PipelineOutcome {
    PipelineOutcome::Filtered(FilteredAnswer {
        body,
        total,
        filtered,
    })
}

struct Proxy {
    addr: SocketAddr,
    client: reqwest::Client,
    metrics: Arc<ProxyMetrics>,
}

impl Proxy {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn graphql(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

async fn proxy_with(
    upstream_url: &str,
    pipeline: Option<Arc<dyn ProxyPipeline>>,
    timeout: Duration,
) -> Proxy {
    let upstream = Arc::new(Upstream::new(upstream_url, Some("fallback".into()), timeout).unwrap());
    let metrics = Arc::new(ProxyMetrics::default());
    let state = Arc::new(ProxyState {
        upstream,
        pipeline,
        metrics: metrics.clone(),
        log_files: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Proxy {
        addr,
        client: reqwest::Client::new(),
        metrics,
    }
}

async fn proxy(upstream: &Upstreamer, pipeline: Arc<FakePipeline>) -> Proxy {
    proxy_with(&upstream.url(), Some(pipeline), DEFAULT_TIMEOUT).await
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

async fn body_json(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn health_answers_locally() {
    let upstream = upstream_answering(json_answer(200, json!({}))).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    for path in ["/health", "/healthz", "/api/v3/health"] {
        let response = proxy.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(body_json(response).await, json!({"status": "ok"}));
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn reflect_and_metrics_answer_locally() {
    let upstream = upstream_answering(json_answer(200, json!({}))).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    for path in ["/reflect", "/api/v3/reflect"] {
        let body = body_json(proxy.get(path).await).await;
        assert_eq!(body["mode"], "filter");
        assert_eq!(body["agents"]["proxy"]["integrity"], json!(["approved"]));
        let stamp = body["timestamp"].as_str().unwrap();
        assert_eq!(stamp.len(), 20, "{stamp}");
        assert!(stamp.ends_with('Z'));
    }
    let metrics = proxy.get("/metrics").await;
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("guardway_proxy_requests_total{kind=\"local\"} 3"),
        "{text}"
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn metadata_endpoints_pass_through_without_the_pipeline() {
    let upstream = upstream_answering(json_answer(200, json!({"installed_version": "3.12"}))).await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    for path in [
        "/api/v3/meta",
        "/rate_limit",
        "/api/v3/octocat",
        "/zen",
        "/versions",
    ] {
        let response = proxy.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    let uris: Vec<String> = upstream.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        ["/meta", "/rate_limit", "/octocat", "/zen", "/versions"]
    );
    assert!(pipeline.calls.lock().is_empty());
}

#[tokio::test]
async fn writes_pass_through_with_their_body_and_method() {
    let upstream = upstream_answering(json_answer(201, json!({"id": 42}))).await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let response = proxy
            .client
            .request(
                method.parse().unwrap(),
                proxy.url("/api/v3/repos/org/repo/issues?x=1"),
            )
            .header("content-type", "application/json")
            .header("authorization", "token client")
            .body(r#"{"title":"test"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{method}");
        assert_eq!(body_json(response).await, json!({"id": 42}));
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4);
    for (request, method) in seen.iter().zip(["POST", "PUT", "PATCH", "DELETE"]) {
        assert_eq!(request.method, method);
        assert_eq!(request.uri, "/repos/org/repo/issues?x=1");
        assert_eq!(request.body, r#"{"title":"test"}"#);
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["authorization"], "token client");
        assert_eq!(request.headers["accept"], "application/vnd.github+json");
        assert_eq!(request.headers["content-length"], "16");
    }
    assert!(pipeline.calls.lock().is_empty());
    assert_eq!(proxy.metrics.requests(RequestKind::Write), 4);
}

#[tokio::test]
async fn the_fallback_token_is_used_without_client_authorization() {
    let upstream = upstream_answering(json_answer(200, json!([]))).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    proxy.get("/repos/o/r/issues").await;
    assert_eq!(
        upstream.seen()[0].headers["authorization"],
        "token fallback"
    );
}

#[tokio::test]
async fn unknown_rest_reads_pass_through_with_empty_labels() {
    let upstream = upstream_answering(json_answer(200, json!({"status": "ok"}))).await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    let response = proxy.get("/v1/unknown/endpoint?a=b").await;
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(response).await, json!({"status": "ok"}));
    assert_eq!(upstream.seen()[0].uri, "/v1/unknown/endpoint?a=b");
    assert!(pipeline.calls.lock().is_empty());
    assert_eq!(
        *pipeline.unlabelled.lock(),
        ["unrecognized endpoint /v1/unknown/endpoint"]
    );
}

#[tokio::test]
async fn unknown_and_malformed_graphql_is_refused_before_upstream() {
    let upstream = upstream_answering(json_answer(200, json!({}))).await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    let unknown = proxy
        .graphql(
            "/graphql",
            &json!({"query": "{ completelyUnrecognisedOperation { field } }"}),
        )
        .await;
    assert_eq!(unknown.status(), 403);
    assert_eq!(
        body_json(unknown).await,
        json!({"errors": [{"message": "access denied: unrecognized GraphQL operation"}], "data": null})
    );
    let malformed = proxy
        .client
        .post(proxy.url("/api/graphql"))
        .body("not-json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 403);
    assert!(upstream.seen().is_empty());
    assert!(pipeline.calls.lock().is_empty());
    assert_eq!(proxy.metrics.denials(DenialReason::UnknownGraphql), 2);
}

#[tokio::test]
async fn introspection_passes_through() {
    let upstream = upstream_answering(json_answer(
        200,
        json!({"data": {"__schema": {"types": []}}}),
    ))
    .await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    let query = json!({"query": "{ __schema { types { name } } }"});
    let response = proxy.graphql("/api/graphql", &query).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("__schema"));
    let seen = upstream.seen();
    assert_eq!(seen[0].uri, "/graphql");
    assert_eq!(serde_json::from_str::<Value>(&seen[0].body).unwrap(), query);
    assert!(pipeline.calls.lock().is_empty());
}

#[tokio::test]
async fn graphql_paths_and_query_strings_reach_the_upstream_graphql_endpoint() {
    let upstream = upstream_answering(json_answer(
        200,
        json!({"data": {"repository": {"issues": {"nodes": []}}}}),
    ))
    .await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    let query = json!({"query": "{ repository(owner:\"org\", name:\"repo\") { issues(first: 10) { nodes { id } } } }"});
    for (path, expected) in [
        ("/graphql?foo=bar", "/graphql?foo=bar"),
        ("/api/graphql", "/graphql"),
        ("/api/graphql?foo=bar", "/graphql?foo=bar"),
        ("/api/v3/graphql", "/graphql"),
        ("/api/v3/graphql?foo=bar", "/graphql?foo=bar"),
    ] {
        let response = proxy.graphql(path, &query).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(upstream.seen().last().unwrap().uri, expected, "{path}");
    }
    let calls = pipeline.calls.lock();
    assert_eq!(calls[0].tool, "list_issues");
    assert_eq!(calls[0].args, json!({"owner": "org", "repo": "repo"}));
    // The guard's fields were added to the forwarded query.
    let sent: Value = serde_json::from_str(&upstream.seen()[0].body).unwrap();
    assert!(
        sent["query"]
            .as_str()
            .unwrap()
            .contains("nodes {author{login},authorAssociation, id }")
    );
}

#[tokio::test]
async fn rest_reads_keep_their_query_and_pass_q_to_the_guard() {
    let upstream =
        upstream_answering(json_answer(200, json!({"total_count": 0, "items": []}))).await;
    let pipeline = FakePipeline::allowing();
    let proxy = proxy(&upstream, pipeline.clone()).await;
    proxy
        .get("/api/v3/search/issues?q=repo%3Aorg%2Frepo+is%3Aopen&per_page=5")
        .await;
    proxy.get("/repos/org/repo/issues?state=open&page=2").await;
    let uris: Vec<String> = upstream.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        [
            "/search/issues?q=repo%3Aorg%2Frepo+is%3Aopen&per_page=5",
            "/repos/org/repo/issues?state=open&page=2"
        ]
    );
    let calls = pipeline.calls.lock();
    assert_eq!(calls[0].tool, "search_issues");
    assert_eq!(calls[0].args, json!({"query": "repo:org/repo is:open"}));
    assert_eq!(calls[1].args, json!({"owner": "org", "repo": "repo"}));
}

#[tokio::test]
async fn without_a_policy_guarded_reads_are_unavailable() {
    let upstream = upstream_answering(json_answer(200, json!([]))).await;
    let proxy = proxy_with(&upstream.url(), None, DEFAULT_TIMEOUT).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        body_json(response).await,
        json!({"error": "service_unavailable", "message": "proxy enforcement not configured"})
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn refusals_never_reach_the_upstream() {
    let upstream = upstream_answering(json_answer(200, json!([]))).await;
    let denied = FakePipeline::new(Decision::Refuse(PipelineRefusal::Denied {
        message: "DIFC policy violation: Resource 'x' has secrecy requirements".into(),
    }));
    let proxy = proxy(&upstream, denied).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        body_json(response).await,
        json!({"error": "difc_forbidden", "message": "DIFC policy violation: Resource 'x' has secrecy requirements"})
    );
    let failing = FakePipeline::new(Decision::Refuse(PipelineRefusal::LabelingFailed {
        message: "guard trapped".into(),
    }));
    let proxy = super::tests::proxy(&upstream, failing).await;
    let response = proxy.get("/user").await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        body_json(response).await,
        json!({"error": "bad_gateway", "message": "resource labeling failed"})
    );
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn upstream_failures_are_502() {
    // Nothing listens on the port of a dropped listener.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = proxy_with(&url, Some(FakePipeline::allowing()), DEFAULT_TIMEOUT).await;
    for path in ["/repos/org/repo/issues", "/v1/unknown", "/meta"] {
        let response = proxy.get(path).await;
        assert_eq!(response.status(), 502, "{path}");
        assert_eq!(
            body_json(response).await,
            json!({"error": "bad_gateway", "message": "upstream request failed"})
        );
    }
    let response = proxy
        .client
        .post(proxy.url("/repos/o/r/issues"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn an_upstream_that_hangs_times_out_as_502() {
    let answer: Answer = Arc::new(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Response::new(Body::from("[]"))
    });
    let upstream = upstream_answering(answer).await;
    let proxy = proxy_with(
        &upstream.url(),
        Some(FakePipeline::allowing()),
        Duration::from_millis(300),
    )
    .await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        body_json(response).await,
        json!({"error": "bad_gateway", "message": "upstream request failed"})
    );
}

#[tokio::test]
async fn error_statuses_and_non_json_bodies_pass_through() {
    let upstream = upstream_answering(json_answer(404, json!({"message": "Not Found"}))).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 404);
    assert_eq!(body_json(response).await, json!({"message": "Not Found"}));

    let text: Answer = Arc::new(|_| {
        let mut response = Response::new(Body::from("plain text response"));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        response
    });
    let upstream = upstream_answering(text).await;
    let proxy = super::tests::proxy(&upstream, FakePipeline::allowing()).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "plain text response");
}

#[tokio::test]
async fn large_binary_bodies_stream_with_their_length() {
    const SIZE: usize = 8 * 1024 * 1024;
    let answer: Answer = Arc::new(|_| {
        let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let mut response = Response::new(Body::from(data));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/zip"));
        response
    });
    let upstream = upstream_answering(answer).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    let response = proxy.get("/repos/org/repo/actions/runs/7/logs").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(SIZE as u64));
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), SIZE);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test]
async fn rate_limits_get_a_retry_after() {
    let answer: Answer = Arc::new(|_| {
        let mut response = Response::new(Body::from(r#"{"message":"API rate limit exceeded"}"#));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        response
    });
    let upstream = upstream_answering(answer).await;
    let proxy = proxy(&upstream, FakePipeline::allowing()).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
}

fn three_issues() -> Value {
    json!([{"number": 1}, {"number": 2}, {"number": 3}])
}

#[tokio::test]
async fn filtered_rest_arrays_keep_accessible_items_and_headers() {
    let upstream = upstream_answering(json_answer(200, three_issues())).await;
    let pipeline = FakePipeline::new(Decision::Forward(Arc::new(|_| {
        answer(Some(json!([{"number": 1}, {"number": 3}])), 3, 1)
    })));
    let proxy = proxy(&upstream, pipeline).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["link"].to_str().unwrap().contains("page=2"));
    assert_eq!(headers["x-ratelimit-remaining"], "4999");
    assert!(headers.get("x-private").is_none());
    let body = response.bytes().await.unwrap();
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!([{"number": 1}, {"number": 3}])
    );
    assert_eq!(proxy.metrics.filtered_items(), 1);
}

#[tokio::test]
async fn nothing_filtered_returns_the_upstream_json() {
    let upstream = upstream_answering(json_answer(200, three_issues())).await;
    let pipeline = FakePipeline::new(Decision::Forward(Arc::new(|_| answer(None, 3, 0))));
    let proxy = proxy(&upstream, pipeline).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(body_json(response).await, three_issues());
}

#[tokio::test]
async fn strict_mode_refuses_answers_with_filtered_items() {
    let upstream = upstream_answering(json_answer(200, three_issues())).await;
    let pipeline = FakePipeline::new(Decision::ForwardThenRefuse(PipelineRefusal::AnswerDenied {
        message: "DIFC policy violation: 2 of 3 items not accessible".into(),
    }));
    let proxy = proxy(&upstream, pipeline).await;
    let response = proxy.get("/repos/org/repo/issues").await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        body_json(response).await,
        json!({"error": "difc_forbidden", "message": "DIFC policy violation: 2 of 3 items not accessible"})
    );
    assert_eq!(proxy.metrics.denials(DenialReason::Response), 1);
}

#[tokio::test]
async fn coarse_decisions_without_fine_labels() {
    for (outcome, expected) in [
        (
            PipelineOutcome::Unlabelled {
                coarse_allowed: false,
            },
            json!([]),
        ),
        (
            PipelineOutcome::Unlabelled {
                coarse_allowed: true,
            },
            three_issues(),
        ),
        (
            PipelineOutcome::LabelingFailed {
                coarse_allowed: false,
                message: "x".into(),
            },
            json!([]),
        ),
        (
            PipelineOutcome::LabelingFailed {
                coarse_allowed: true,
                message: "x".into(),
            },
            three_issues(),
        ),
    ] {
        let upstream = upstream_answering(json_answer(200, three_issues())).await;
        let fixed = outcome.clone();
        let pipeline = FakePipeline::new(Decision::Forward(Arc::new(move |_| fixed.clone())));
        let proxy = proxy(&upstream, pipeline).await;
        let response = proxy.get("/repos/org/repo/issues").await;
        assert_eq!(response.status(), 200, "{outcome:?}");
        assert_eq!(body_json(response).await, expected, "{outcome:?}");
    }
    let upstream = upstream_answering(json_answer(
        200,
        json!({"data": {"viewer": {"login": "x"}}}),
    ))
    .await;
    let pipeline = FakePipeline::new(Decision::Forward(Arc::new(|_| {
        PipelineOutcome::Unlabelled {
            coarse_allowed: false,
        }
    })));
    let proxy = proxy(&upstream, pipeline).await;
    let response = proxy
        .graphql("/graphql", &json!({"query": "{ viewer { login } }"}))
        .await;
    assert_eq!(body_json(response).await, json!({"data": null}));
}

#[tokio::test]
async fn filtered_answers_are_sent_as_the_pipeline_shaped_them() {
    let search = json!({"total_count": 3, "incomplete_results": false, "items": [{"n": 1}, {"n": 2}, {"n": 3}]});
    let upstream = upstream_answering(json_answer(200, search)).await;
    let pipeline = FakePipeline::new(Decision::Forward(Arc::new(|_| {
        answer(
            Some(json!({"total_count": 1, "incomplete_results": false, "items": [{"n": 2}]})),
            3,
            2,
        )
    })));
    let proxy = proxy(&upstream, pipeline).await;
    let response = proxy.get("/search/issues?q=x").await;
    assert_eq!(
        body_json(response).await,
        json!({"total_count": 1, "incomplete_results": false, "items": [{"n": 2}]})
    );

    let upstream_answer = json!({"data": {"repository": {"issues": {"totalCount": 2, "nodes": [{"id": "I_1"}, {"id": "I_2"}]}}}});
    let upstream = upstream_answering(json_answer(200, upstream_answer)).await;
    let pipeline = FakePipeline::new(Decision::Forward(Arc::new(|_| {
        answer(
            Some(
                json!({"data": {"repository": {"issues": {"totalCount": 1, "nodes": [{"id": "I_1"}]}}}}),
            ),
            2,
            1,
        )
    })));
    let proxy = super::tests::proxy(&upstream, pipeline).await;
    let query =
        json!({"query": "{ repository(owner:\"org\",name:\"repo\") { issues { nodes { id } } } }"});
    let response = proxy.graphql("/graphql", &query).await;
    assert_eq!(
        body_json(response).await,
        json!({"data": {"repository": {"issues": {"totalCount": 1, "nodes": [{"id": "I_1"}]}}}})
    );
}

#[tokio::test]
async fn unlabellable_answers_of_denied_reads_are_withheld() {
    let zip: Answer = Arc::new(|seen| {
        let mut response = Response::new(Body::from(&b"PK\x03\x04zip"[..]));
        if seen.uri.contains("redirect") {
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(
                "location",
                HeaderValue::from_static("https://blob.example/x.zip"),
            );
        } else if seen.uri.contains("missing") {
            *response.status_mut() = StatusCode::NOT_FOUND;
        }
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/zip"));
        response
    });
    let upstream = upstream_answering(zip).await;
    let denied = FakePipeline::new(Decision::ForwardDenied(Arc::new(|_| {
        PipelineOutcome::Unlabelled {
            coarse_allowed: false,
        }
    })));
    let proxy = proxy(&upstream, denied).await;
    for path in [
        "/repos/o/secret/actions/runs/1/logs",
        "/repos/o/secret/redirect",
    ] {
        let response = proxy.get(path).await;
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(
            body_json(response).await["error"],
            "difc_forbidden",
            "{path}"
        );
    }
    // Errors carry no data: as they came.
    let response = proxy.get("/repos/o/secret/missing").await;
    assert_eq!(response.status(), 404);
    // Allowed reads stream their binary answers.
    let proxy = super::tests::proxy(&upstream, FakePipeline::allowing()).await;
    let response = proxy.get("/repos/o/r/actions/runs/1/logs").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"PK\x03\x04zip");
}
