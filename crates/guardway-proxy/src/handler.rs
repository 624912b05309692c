//! One proxied request, start to end: local endpoints (`/health`,
//! `/reflect`, `/metrics`), metadata and writes forwarded as they are,
//! GraphQL bodies matched (unknown operations refused, introspection
//! forwarded), REST paths routed (unknown ones forwarded with empty
//! labels), and guarded reads run through the DIFC pipeline with the
//! upstream call as its forward step; the answer is then shaped from the
//! pipeline's outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::body::UpstreamBody;
use crate::graphql::{INTROSPECTION_TOOL, is_graphql_path, match_graphql_value};
use crate::graphql_rewrite::inject_guard_fields;
use crate::headers::{client_headers, forwarded_headers};
use crate::metrics::{DenialReason, ProxyMetrics, RequestKind};
use crate::pipeline::{
    FilteredAnswer, ForwardContext, ForwardStop, GuardedCall, PipelineOutcome, PipelineRefusal,
    ProxyPipeline,
};
use crate::rest_backend::with_client_auth;
use crate::routes::{is_metadata_passthrough, match_rest, strip_gh_host_prefix};
use crate::shape::empty_body;
use crate::upstream::Upstream;
use guardway_gateway::logfiles::LogFiles;

/// `tracing` target of the proxy's request log lines.
pub const PROXY_LOG_TARGET: &str = "guardway::proxy";
/// Largest request body read into memory (GraphQL queries, small writes).
pub const MAX_REQUEST_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Write bodies up to this size are sent upstream with a `Content-Length`;
/// larger ones (or ones of unknown length) are streamed.
pub const BUFFERED_WRITE_BYTES: u64 = 1024 * 1024;
/// Largest upstream JSON body read for labelling; a larger one is refused
/// (502) rather than passed unfiltered.
pub const MAX_LABELLED_BODY_BYTES: usize = 256 * 1024 * 1024;

/// What a request handler shares: the upstream, the pipeline (absent when
/// no policy is configured), the counters, and the log directory's files
/// (for `rpc-messages.jsonl` events; absent in unit tests).
pub struct ProxyState {
    pub upstream: Arc<Upstream>,
    pub pipeline: Option<Arc<dyn ProxyPipeline>>,
    pub metrics: Arc<ProxyMetrics>,
    pub log_files: Option<Arc<LogFiles>>,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("upstream", &self.upstream)
            .field("pipeline", &self.pipeline.is_some())
            .finish_non_exhaustive()
    }
}

/// A JSON response.
fn json_response(status: StatusCode, mut headers: HeaderMap, body: impl Into<Bytes>) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The gateway's error shape: `{"error": code, "message": message}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": code, "message": message}).to_string();
    json_response(status, HeaderMap::new(), body)
}

impl ProxyState {
    fn reject(&self, status: StatusCode, code: &str, message: &str, detail: &str) -> Response {
        tracing::error!(
            target: PROXY_LOG_TARGET,
            "Request rejected: status={} code={code} message={message} err={detail}",
            status.as_u16()
        );
        error_response(status, code, message)
    }

    fn upstream_failed(&self, detail: &str) -> Response {
        self.metrics.upstream_error();
        self.reject(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "upstream request failed",
            detail,
        )
    }
}

/// The upstream answer as the client gets it when it is not reshaped.
enum Upstreamed {
    /// Still streaming.
    Streaming(reqwest::Response),
    /// Read in full.
    Read {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// An upstream answer passed through: status, forwarded headers (plus
/// `Retry-After` when rate limited), the body as it came.
fn pass_through(upstreamed: Upstreamed) -> Response {
    match upstreamed {
        Upstreamed::Streaming(upstream) => {
            let status = upstream.status();
            let headers = client_headers(status, upstream.headers());
            let mut response = Response::new(Body::new(UpstreamBody::new(upstream)));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Upstreamed::Read {
            status,
            headers,
            body,
        } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = client_headers(status, &headers);
            response
        }
    }
}

/// The request path for routing (percent-decoded, `/api/v3` removed) and
/// the path and query forwarded upstream (as received, `/api/v3` removed).
fn paths(request: &Request) -> (String, String) {
    let raw = request.uri().path();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let route_path = strip_gh_host_prefix(&decoded).to_owned();
    let mut forward = strip_gh_host_prefix(raw).to_owned();
    if let Some(query) = request.uri().query()
        && !query.is_empty()
    {
        forward.push('?');
        forward.push_str(query);
    }
    (route_path, forward)
}

fn client_authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// Handles one request. The whole proxy is this function behind a router
/// fallback.
pub async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (route_path, forward_path) = paths(&request);
    let method = request.method().clone();
    tracing::debug!(target: PROXY_LOG_TARGET, %method, path = %route_path, "incoming");

    if route_path == "/health" || route_path == "/healthz" {
        state.metrics.request(RequestKind::Local);
        return json_response(StatusCode::OK, HeaderMap::new(), r#"{"status":"ok"}"#);
    }
    if method == Method::GET && route_path == "/reflect" {
        state.metrics.request(RequestKind::Local);
        return reflect(&state);
    }
    if method == Method::GET && route_path == "/metrics" {
        state.metrics.request(RequestKind::Local);
        return metrics(&state);
    }
    if method == Method::GET && is_metadata_passthrough(&route_path) {
        state.metrics.request(RequestKind::Metadata);
        return forward_as_is(&state, request, &forward_path).await;
    }
    let is_graphql = is_graphql_path(&route_path);
    let is_read = method == Method::GET || (method == Method::POST && is_graphql);
    if !is_read {
        state.metrics.request(RequestKind::Write);
        return forward_as_is(&state, request, &forward_path).await;
    }
    let client_auth = client_authorization(request.headers());
    if is_graphql {
        graphql_read(&state, request, &forward_path, client_auth).await
    } else {
        rest_read(&state, request, &route_path, &forward_path, client_auth).await
    }
}

fn reflect(state: &ProxyState) -> Response {
    let mut body = match &state.pipeline {
        Some(pipeline) => pipeline.reflect(),
        None => json!({"agents": {}, "mode": "filter"}),
    };
    if let Some(object) = body.as_object_mut() {
        object.insert("timestamp".to_owned(), Value::String(rfc3339_now()));
    }
    json_response(StatusCode::OK, HeaderMap::new(), body.to_string())
}

/// The current UTC time, RFC 3339 with seconds.
pub fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn metrics(state: &ProxyState) -> Response {
    let mut out = String::new();
    state.metrics.render(&mut out);
    if let Some(pipeline) = &state.pipeline {
        pipeline.render_metrics(&mut out);
    }
    let mut response = Response::new(Body::from(out));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Forwards a request unlabelled (writes, metadata): its method, body,
/// `Content-Type` and `Authorization`; the answer streams back.
async fn forward_as_is(state: &ProxyState, request: Request, forward_path: &str) -> Response {
    let (parts, body) = request.into_parts();
    tracing::debug!(target: PROXY_LOG_TARGET, method = %parts.method, path = forward_path, "passthrough");
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let has_body =
        length.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let upstream_body = if !has_body {
        None
    } else if length.is_some_and(|n| n <= BUFFERED_WRITE_BYTES) {
        match axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await {
            Ok(bytes) => Some(reqwest::Body::from(bytes)),
            Err(error) => {
                return state.reject(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "failed to read request body",
                    &error.to_string(),
                );
            }
        }
    } else {
        Some(reqwest::Body::wrap_stream(body.into_data_stream()))
    };
    let auth = client_authorization(&parts.headers);
    let authorization = state.upstream.authorization(auth.as_deref());
    match state
        .upstream
        .send(
            parts.method.clone(),
            forward_path,
            upstream_body,
            content_type,
            authorization.as_deref(),
        )
        .await
    {
        Ok(upstream) => pass_through(Upstreamed::Streaming(upstream)),
        Err(error) => state.upstream_failed(&error.to_string()),
    }
}

async fn graphql_read(
    state: &ProxyState,
    request: Request,
    forward_path: &str,
    client_auth: Option<String>,
) -> Response {
    let bytes = match axum::body::to_bytes(request.into_body(), MAX_REQUEST_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            return state.reject(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "failed to read request body",
                &error.to_string(),
            );
        }
    };
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let Some(matched) = parsed.as_ref().and_then(match_graphql_value) else {
        let preview: String = String::from_utf8_lossy(&bytes).chars().take(500).collect();
        tracing::info!(target: PROXY_LOG_TARGET, "unknown GraphQL query, blocking request: {preview}");
        state.metrics.request(RequestKind::Guarded);
        state.metrics.denial(DenialReason::UnknownGraphql);
        return json_response(
            StatusCode::FORBIDDEN,
            HeaderMap::new(),
            r#"{"data":null,"errors":[{"message":"access denied: unrecognized GraphQL operation"}]}"#,
        );
    };
    let authorization = state.upstream.authorization(client_auth.as_deref());
    if matched.tool == INTROSPECTION_TOOL {
        state.metrics.request(RequestKind::Metadata);
        return match state
            .upstream
            .send(
                Method::POST,
                forward_path,
                Some(reqwest::Body::from(bytes)),
                Some("application/json"),
                authorization.as_deref(),
            )
            .await
        {
            Ok(upstream) => pass_through(Upstreamed::Streaming(upstream)),
            Err(error) => state.upstream_failed(&error.to_string()),
        };
    }
    state.metrics.request(RequestKind::Guarded);
    let body = match parsed
        .as_ref()
        .and_then(|parsed| inject_guard_fields(parsed, matched.tool))
    {
        Some(rewritten) => Bytes::from(rewritten.to_string()),
        None => bytes,
    };
    let call = GuardedCall {
        tool: matched.tool.to_owned(),
        args: Value::Object(matched.args),
        graphql: true,
    };
    guarded_read(
        state,
        call,
        Method::POST,
        forward_path,
        Some(body),
        client_auth,
        true,
    )
    .await
}

async fn rest_read(
    state: &ProxyState,
    request: Request,
    route_path: &str,
    forward_path: &str,
    client_auth: Option<String>,
) -> Response {
    let method = request.method().clone();
    let Some(matched) = match_rest(route_path) else {
        state.metrics.request(RequestKind::Unrecognized);
        note_unrecognized_endpoint(state, &method, route_path);
        let authorization = state.upstream.authorization(client_auth.as_deref());
        return match state
            .upstream
            .send(method, forward_path, None, None, authorization.as_deref())
            .await
        {
            Ok(upstream) => {
                if let Some(pipeline) = &state.pipeline {
                    pipeline.note_unlabelled_read(&format!("unrecognized endpoint {route_path}"));
                }
                pass_through(Upstreamed::Streaming(upstream))
            }
            Err(error) => state.upstream_failed(&error.to_string()),
        };
    };
    state.metrics.request(RequestKind::Guarded);
    let mut args = matched.args;
    if let Some(query) = request.uri().query()
        && let Some((_, q)) = form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "q")
        && !q.is_empty()
    {
        args.insert("query".to_owned(), Value::String(q.into_owned()));
    }
    let call = GuardedCall {
        tool: matched.tool.to_owned(),
        args: Value::Object(args),
        graphql: false,
    };
    guarded_read(state, call, method, forward_path, None, client_auth, false).await
}

/// An endpoint no route knows, forwarded with empty labels: a warning in
/// the log and an event in `rpc-messages.jsonl`, in the reference's words.
fn note_unrecognized_endpoint(state: &ProxyState, method: &Method, path: &str) {
    let mut event = serde_json::Map::new();
    event.insert("event".into(), json!("unrecognized_endpoint_passthrough"));
    event.insert("_schema".into(), json!("difc-event/v1"));
    event.insert("method".into(), json!(method.as_str()));
    event.insert("path".into(), json!(path));
    event.insert("action".into(), json!("passthrough_with_empty_labels"));
    event.insert(
        "note".into(),
        json!("Endpoint not in route table or metadata allowlist -- forwarded with no integrity and no secrecy labels"),
    );
    let mut shown = serde_json::Map::new();
    shown.insert(
        "timestamp".into(),
        json!(guardway_gateway::logfiles::utc_timestamp(
            std::time::SystemTime::now()
        )),
    );
    shown.extend(event.clone());
    let shown = Value::Object(shown);
    tracing::warn!(target: PROXY_LOG_TARGET, "[UNRECOGNIZED-ENDPOINT] {shown}");
    if let Some(files) = &state.log_files {
        files.event_record(event);
    }
}

/// Whether a `Content-Type` announces JSON (or none was given).
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

/// What the forward step leaves for shaping the answer.
#[derive(Default)]
struct ForwardSlot {
    /// The upstream answer (read or still streaming).
    upstreamed: Option<Upstreamed>,
    /// The JSON of a 2xx answer went to the pipeline for labelling.
    labelled: bool,
    /// The coarse check's verdict, as the pipeline gave it.
    coarse_allowed: bool,
    /// The client message and the detail of an upstream failure.
    error: Option<(&'static str, String)>,
    /// Time spent waiting for the upstream.
    elapsed: Duration,
}

/// Reads a JSON answer in full, bounded.
async fn read_bounded(response: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    use futures::StreamExt;
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!("upstream body larger than {limit} bytes"));
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(0, |n| usize::try_from(n).unwrap_or(0)),
    );
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|error| error.to_string())?;
        if body.len() + chunk.len() > limit {
            return Err(format!("upstream body larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Runs a guarded read through the pipeline and shapes the answer.
async fn guarded_read(
    state: &ProxyState,
    call: GuardedCall,
    method: Method,
    forward_path: &str,
    body: Option<Bytes>,
    client_auth: Option<String>,
    graphql: bool,
) -> Response {
    let Some(pipeline) = state.pipeline.clone() else {
        state.metrics.denial(DenialReason::NotConfigured);
        return state.reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "proxy enforcement not configured",
            "returning 503: proxy enforcement not configured (no --policy flag provided)",
        );
    };
    let tool = call.tool.clone();
    let slot = Arc::new(Mutex::new(ForwardSlot::default()));
    let authorization = state.upstream.authorization(client_auth.as_deref());
    let forward = {
        let slot = slot.clone();
        let upstream = state.upstream.clone();
        let method = method.clone();
        let forward_path = forward_path.to_owned();
        Box::new(move |context: ForwardContext| {
            let future: crate::pipeline::BoxFuture<'_, Result<Value, ForwardStop>> = Box::pin(
                async move {
                    let started = Instant::now();
                    let content_type = body.as_ref().map(|_| "application/json");
                    let sent = upstream
                        .send(
                            method.clone(),
                            &forward_path,
                            body.map(reqwest::Body::from),
                            content_type,
                            authorization.as_deref(),
                        )
                        .await;
                    let result = forward_step(&method, &forward_path, sent).await;
                    let mut slot = slot.lock();
                    slot.elapsed = started.elapsed();
                    slot.coarse_allowed = context.coarse_allowed;
                    match result {
                        Forwarded::Json { value, upstreamed } => {
                            slot.upstreamed = Some(upstreamed);
                            slot.labelled = true;
                            Ok(value)
                        }
                        Forwarded::PassThrough(upstreamed) => {
                            slot.upstreamed = Some(upstreamed);
                            Err(ForwardStop::NotLabelled)
                        }
                        Forwarded::Failed { message, read } => {
                            let client_message = if read {
                                "failed to read upstream response"
                            } else {
                                "upstream request failed"
                            };
                            tracing::error!(target: PROXY_LOG_TARGET, detail = %message, client_message, "upstream failure");
                            slot.error = Some((client_message, message));
                            Err(ForwardStop::UpstreamFailed)
                        }
                    }
                },
            );
            future
        })
    };
    let started = Instant::now();
    let outcome = with_client_auth(client_auth, pipeline.run(call, forward)).await;
    let total = started.elapsed();
    let mut slot = std::mem::take(&mut *slot.lock());
    state
        .metrics
        .guard_latency(total.saturating_sub(slot.elapsed));

    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(PipelineRefusal::Denied { message }) => {
            state.metrics.denial(DenialReason::Difc);
            let reason = message
                .strip_prefix("DIFC policy violation: ")
                .unwrap_or(&message);
            tracing::info!(target: PROXY_LOG_TARGET, "[DIFC] Phase 2: BLOCKED {method} {forward_path} — {reason}");
            return error_response(StatusCode::FORBIDDEN, "difc_forbidden", &message);
        }
        Err(PipelineRefusal::AnswerDenied { message }) => {
            state.metrics.denial(DenialReason::Response);
            tracing::info!(target: PROXY_LOG_TARGET, "[DIFC] answer refused: {method} {forward_path} (tool={tool}) — {message}");
            return error_response(StatusCode::FORBIDDEN, "difc_forbidden", &message);
        }
        Err(PipelineRefusal::LabelingFailed { message }) => {
            state.metrics.denial(DenialReason::LabelingFailed);
            return state.reject(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "resource labeling failed",
                &message,
            );
        }
    };
    let Some(upstreamed) = slot.upstreamed.take() else {
        if let Some((message, detail)) = slot.error.take() {
            state.metrics.upstream_error();
            return state.reject(StatusCode::BAD_GATEWAY, "bad_gateway", message, &detail);
        }
        // The pipeline ended without running the forward step.
        return state.reject(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "upstream request failed",
            "the pipeline did not forward the request",
        );
    };
    let (status, headers, body) = match upstreamed {
        Upstreamed::Read {
            status,
            headers,
            body,
        } if slot.labelled => (status, headers, body),
        // Not labelled (a status of 300 or more, a body that is not JSON):
        // as it came when the coarse check allowed the read or the answer
        // is an error; withheld otherwise (nothing in it can be vouched for).
        unlabelled => {
            let status = match &unlabelled {
                Upstreamed::Streaming(response) => response.status(),
                Upstreamed::Read { status, .. } => *status,
            };
            if slot.coarse_allowed || status.as_u16() >= 400 {
                return pass_through(unlabelled);
            }
            state.metrics.denial(DenialReason::Withheld);
            let message = format!(
                "DIFC policy violation: the {tool} answer cannot be labelled and the resource is not accessible"
            );
            return error_response(StatusCode::FORBIDDEN, "difc_forbidden", &message);
        }
    };
    shape_answer(
        state,
        outcome,
        &method,
        forward_path,
        &tool,
        graphql,
        status,
        headers,
        body,
    )
}

/// The result of sending and reading the upstream answer.
enum Forwarded {
    /// A 2xx JSON answer, parsed.
    Json {
        value: Value,
        upstreamed: Upstreamed,
    },
    /// Not labelled: a non-2xx status, or a body that is not JSON.
    PassThrough(Upstreamed),
    /// The request or the body read failed.
    Failed { message: String, read: bool },
}

async fn forward_step(
    method: &Method,
    path: &str,
    sent: Result<reqwest::Response, crate::upstream::UpstreamError>,
) -> Forwarded {
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Forwarded::Failed {
                message: error.to_string(),
                read: false,
            };
        }
    };
    let status = response.status();
    if status.as_u16() >= 300 || !is_json_content_type(response.headers()) {
        return Forwarded::PassThrough(Upstreamed::Streaming(response));
    }
    let headers = response.headers().clone();
    let body = match read_bounded(response, MAX_LABELLED_BODY_BYTES).await {
        Ok(body) => body,
        Err(message) => {
            return Forwarded::Failed {
                message: format!("{method} {path} status={}: {message}", status.as_u16()),
                read: true,
            };
        }
    };
    let upstreamed = |body: Bytes| Upstreamed::Read {
        status,
        headers: headers.clone(),
        body,
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => Forwarded::Json {
            value,
            upstreamed: upstreamed(body),
        },
        Err(_) => {
            tracing::debug!(target: PROXY_LOG_TARGET, path, "response is not JSON, passing through");
            Forwarded::PassThrough(upstreamed(body))
        }
    }
}

/// A JSON answer built by the proxy: the upstream status, the forwarded
/// headers, `Content-Type: application/json`.
fn reshaped(status: StatusCode, upstream_headers: &HeaderMap, body: impl Into<Bytes>) -> Response {
    json_response(status, forwarded_headers(upstream_headers), body)
}

#[allow(clippy::too_many_arguments)]
fn shape_answer(
    state: &ProxyState,
    outcome: PipelineOutcome,
    method: &Method,
    path: &str,
    tool: &str,
    graphql: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let original = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let withheld = |state: &ProxyState| {
        state.metrics.denial(DenialReason::Withheld);
        reshaped(status, &headers, empty_body(&original()))
    };
    match outcome {
        PipelineOutcome::Stopped(_) => pass_through(Upstreamed::Read {
            status,
            headers,
            body,
        }),
        PipelineOutcome::Unlabelled { coarse_allowed } => {
            if coarse_allowed {
                reshaped(status, &headers, body)
            } else {
                withheld(state)
            }
        }
        PipelineOutcome::LabelingFailed {
            coarse_allowed,
            message,
        } => {
            tracing::warn!(target: PROXY_LOG_TARGET, tool, %message, coarse_allowed, "response labeling failed, the coarse check decides");
            if coarse_allowed {
                pass_through(Upstreamed::Read {
                    status,
                    headers,
                    body,
                })
            } else {
                withheld(state)
            }
        }
        PipelineOutcome::Filtered(filtered) => shape_filtered(
            state, filtered, method, path, tool, graphql, status, headers, body,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn shape_filtered(
    state: &ProxyState,
    filtered: FilteredAnswer,
    method: &Method,
    path: &str,
    tool: &str,
    graphql: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let FilteredAnswer {
        body: shaped,
        total,
        filtered: removed,
    } = filtered;
    state.metrics.items(total, removed);
    match shaped {
        Some(shaped) if removed > 0 => {
            tracing::info!(target: PROXY_LOG_TARGET, "DIFC filtered {removed}/{total} items for {method} {path} (tool={tool})");
            reshaped(status, &headers, shaped.to_string())
        }
        // Nothing removed: the upstream's bytes.
        _ if graphql => pass_through(Upstreamed::Read {
            status,
            headers,
            body,
        }),
        _ => reshaped(status, &headers, body),
    }
}

/// The proxy's router: every path goes to [`handle`].
pub fn router(state: Arc<ProxyState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
