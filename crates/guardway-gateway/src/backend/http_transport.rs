//! The two HTTP transports `rmcp` has no client for, as `rmcp::Transport`
//! implementations so that the rest of the gateway keeps using rmcp's
//! `Peer` / `RunningService`:
//!
//! - [`LegacySseTransport`]: the HTTP+SSE transport of protocol 2024-11-05.
//!   A GET opens the event stream; its first `endpoint` event names the
//!   URL to POST messages to; the server's messages (responses included)
//!   arrive as `message` events on the stream.
//! - [`JsonPostTransport`]: plain JSON-RPC over POST. Each message is one
//!   POST; a request's response is the response body. `initialize` goes
//!   first; every later POST carries `Mcp-Session-Id`: the id the backend
//!   returned to `initialize`, else one generated here.
//!
//! Both deliver incoming messages through a channel read by
//! `Transport::receive`; sends run concurrently (rmcp spawns each).

use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;

/// The session header of MCP over HTTP.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Largest response body or SSE event accepted from a backend.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Characters of an HTTP error body kept in an error message.
const ERROR_BODY_PREFIX: usize = 512;

/// A failure of one of these transports. The texts name the URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpTransportError {
    #[error("request to {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("session not found: {url} answered HTTP 404 to session {session}")]
    SessionNotFound { url: String, session: String },
    #[error("{url} sent an invalid JSON-RPC message: {reason}")]
    InvalidMessage { url: String, reason: String },
    #[error("{url} sent a message of more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not answer with an event stream (content type {content_type:?})")]
    NotEventStream {
        url: String,
        content_type: Option<String>,
    },
    #[error("the event stream of {url} ended before its endpoint event")]
    NoEndpoint { url: String },
    #[error("invalid endpoint {endpoint:?} sent by {url}: {reason}")]
    BadEndpoint {
        url: String,
        endpoint: String,
        reason: String,
    },
    #[error("the connection to {url} is closed")]
    Closed { url: String },
}

fn request_error(url: &str) -> impl FnOnce(reqwest::Error) -> HttpTransportError + '_ {
    move |source| HttpTransportError::Request {
        url: url.to_owned(),
        source,
    }
}

/// The first characters of an error body, for messages.
async fn error_body(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let text = text.trim();
    match text.char_indices().nth(ERROR_BODY_PREFIX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads a whole body, refusing more than [`MAX_MESSAGE_BYTES`].
async fn bounded_body(
    url: &str,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, HttpTransportError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error(url))? {
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(HttpTransportError::TooLarge {
                url: url.to_owned(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The messages of one body: a single message or a batch array.
fn parse_messages(url: &str, body: &[u8]) -> Result<Vec<ServerJsonRpcMessage>, HttpTransportError> {
    let invalid = |e: serde_json::Error| HttpTransportError::InvalidMessage {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| serde_json::from_value(item).map_err(invalid))
            .collect(),
        other => Ok(vec![serde_json::from_value(other).map_err(invalid)?]),
    }
}

fn is_initialize(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        JsonRpcMessage::Request(request)
            if matches!(request.request, ClientRequest::InitializeRequest(_))
    )
}

/// Plain JSON-RPC over POST (see the module documentation).
pub struct JsonPostTransport {
    shared: Arc<PostShared>,
    incoming_tx: mpsc::Sender<ServerJsonRpcMessage>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
}

struct PostShared {
    http: reqwest::Client,
    url: String,
    headers: http::HeaderMap,
    /// The backend's session id, once `initialize` returned one.
    backend_session: Mutex<Option<String>>,
    /// Sent when the backend issued none.
    client_session: String,
}

impl JsonPostTransport {
    pub fn new(http: reqwest::Client, url: &str, headers: http::HeaderMap) -> Self {
        let (incoming_tx, incoming) = mpsc::channel(64);
        Self {
            shared: Arc::new(PostShared {
                http,
                url: url.to_owned(),
                headers,
                backend_session: Mutex::new(None),
                client_session: client_session_id(),
            }),
            incoming_tx,
            incoming,
        }
    }
}

/// A random session id (128 bits, hex) for backends that issue none.
fn client_session_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: still unique within this process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return format!("guardway-{}-{nanos:x}-{n}", std::process::id());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PostShared {
    async fn post(
        &self,
        message: ClientJsonRpcMessage,
    ) -> Result<Vec<ServerJsonRpcMessage>, HttpTransportError> {
        let initialize = is_initialize(&message);
        let mut request = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .header(http::header::ACCEPT, "application/json")
            .json(&message);
        let session = if initialize {
            None
        } else {
            let session = self
                .backend_session
                .lock()
                .clone()
                .unwrap_or_else(|| self.client_session.clone());
            request = request.header(SESSION_HEADER, &session);
            Some(session)
        };
        let response = request.send().await.map_err(request_error(&self.url))?;
        let status = response.status();
        if initialize
            && let Some(id) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
        {
            *self.backend_session.lock() = Some(id.to_owned());
        }
        if status == reqwest::StatusCode::NOT_FOUND
            && let Some(session) = session
        {
            return Err(HttpTransportError::SessionNotFound {
                url: self.url.clone(),
                session,
            });
        }
        if !status.is_success() {
            // A JSON-RPC error in the body answers its request.
            let body = bounded_body(&self.url, response).await?;
            if let Ok(messages) = parse_messages(&self.url, &body)
                && messages
                    .iter()
                    .all(|m| matches!(m, JsonRpcMessage::Error(e) if e.id.is_some()))
                && !messages.is_empty()
            {
                return Ok(messages);
            }
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let text = match text.char_indices().nth(ERROR_BODY_PREFIX) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text.to_owned(),
            };
            return Err(HttpTransportError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body: text,
            });
        }
        let body = bounded_body(&self.url, response).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let expects_answer = matches!(message, JsonRpcMessage::Request(_));
        match parse_messages(&self.url, &body) {
            Ok(messages) => Ok(messages),
            // A notification or response needs nothing back.
            Err(_) if !expects_answer => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

impl Transport<RoleClient> for JsonPostTransport {
    type Error = HttpTransportError;

    fn name() -> std::borrow::Cow<'static, str> {
        "json-post".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let shared = self.shared.clone();
        let incoming = self.incoming_tx.clone();
        async move {
            let messages = shared.post(item).await?;
            for message in messages {
                incoming
                    .send(message)
                    .await
                    .map_err(|_| HttpTransportError::Closed {
                        url: shared.url.clone(),
                    })?;
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.incoming.close();
        Ok(())
    }
}

/// The HTTP+SSE transport of protocol 2024-11-05 (see the module
/// documentation). The stream is read by a task that ends with the
/// transport.
pub struct LegacySseTransport {
    http: reqwest::Client,
    headers: http::HeaderMap,
    /// Where messages are POSTed (from the `endpoint` event).
    endpoint: Arc<str>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl LegacySseTransport {
    /// Opens the event stream of `url` and waits for its `endpoint` event.
    pub async fn connect(
        http: reqwest::Client,
        url: &str,
        headers: http::HeaderMap,
    ) -> Result<Self, HttpTransportError> {
        let base = reqwest::Url::parse(url).map_err(|e| HttpTransportError::BadEndpoint {
            url: url.to_owned(),
            endpoint: url.to_owned(),
            reason: e.to_string(),
        })?;
        let response = http
            .get(url)
            .headers(headers.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(request_error(url))?;
        let status = response.status();
        if !status.is_success() {
            return Err(HttpTransportError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                body: error_body(response).await,
            });
        }
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !content_type
            .as_deref()
            .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
        {
            return Err(HttpTransportError::NotEventStream {
                url: url.to_owned(),
                content_type,
            });
        }
        let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
        let endpoint = loop {
            match events.next().await {
                Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                    let raw = event.data.unwrap_or_default();
                    let resolved =
                        base.join(raw.trim())
                            .map_err(|e| HttpTransportError::BadEndpoint {
                                url: url.to_owned(),
                                endpoint: raw.clone(),
                                reason: e.to_string(),
                            })?;
                    if resolved.origin() != base.origin() {
                        return Err(HttpTransportError::BadEndpoint {
                            url: url.to_owned(),
                            endpoint: raw,
                            reason: "not the origin of the event stream".into(),
                        });
                    }
                    break resolved;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    return Err(HttpTransportError::NoEndpoint {
                        url: url.to_owned(),
                    });
                }
            }
        };
        let (tx, incoming) = mpsc::channel(64);
        let stream_url = url.to_owned();
        let reader = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::warn!(url = %stream_url, %error, "event stream failed");
                        return;
                    }
                };
                if !matches!(event.event.as_deref(), None | Some("message")) {
                    continue;
                }
                let Some(data) = event.data else { continue };
                if data.len() > MAX_MESSAGE_BYTES {
                    tracing::warn!(url = %stream_url, bytes = data.len(), "dropping an oversized event");
                    continue;
                }
                match parse_messages(&stream_url, data.as_bytes()) {
                    Ok(messages) => {
                        for message in messages {
                            if tx.send(message).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(url = %stream_url, %error, "ignoring an invalid event")
                    }
                }
            }
            tracing::info!(url = %stream_url, "event stream ended");
        });
        Ok(Self {
            http,
            headers,
            endpoint: endpoint.as_str().into(),
            incoming,
            reader,
        })
    }

    /// The URL messages are POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = HttpTransportError;

    fn name() -> std::borrow::Cow<'static, str> {
        "sse".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = self
            .http
            .post(&*self.endpoint)
            .headers(self.headers.clone())
            .json(&item);
        let endpoint = self.endpoint.clone();
        async move {
            let response = request.send().await.map_err(request_error(&endpoint))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(HttpTransportError::SessionNotFound {
                    url: endpoint.to_string(),
                    session: "of the event stream".into(),
                });
            }
            if !status.is_success() {
                return Err(HttpTransportError::Status {
                    url: endpoint.to_string(),
                    status: status.as_u16(),
                    body: error_body(response).await,
                });
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.incoming.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_one_message_or_a_batch() {
        let one = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(parse_messages("u", one).unwrap().len(), 1);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}]"#;
        assert_eq!(parse_messages("u", batch).unwrap().len(), 2);
        let err = parse_messages("http://x/", b"<html>").unwrap_err();
        assert!(err.to_string().contains("http://x/"), "{err}");
    }

    #[test]
    fn client_session_ids_are_random_hex() {
        let a = client_session_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, client_session_id());
    }

    /// An HTTP server on 127.0.0.1 whose GET answers `status`,
    /// `content_type` and `body`.
    async fn server(status: u16, content_type: &'static str, body: &'static str) -> String {
        let app = axum::Router::new().fallback(move || async move {
            (
                http::StatusCode::from_u16(status).unwrap(),
                [(http::header::CONTENT_TYPE, content_type)],
                body,
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/sse")
    }

    async fn sse_error(url: &str) -> HttpTransportError {
        let http = super::super::http_client::build_http_client().unwrap();
        match LegacySseTransport::connect(http, url, http::HeaderMap::new()).await {
            Ok(_) => panic!("connected to {url}"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn sse_refuses_what_is_not_an_mcp_event_stream() {
        let url = server(200, "text/html", "<html></html>").await;
        assert!(matches!(
            sse_error(&url).await,
            HttpTransportError::NotEventStream { .. }
        ));
        let url = server(200, "text/event-stream", "event: message\ndata: {}\n\n").await;
        assert!(matches!(
            sse_error(&url).await,
            HttpTransportError::NoEndpoint { .. }
        ));
        let url = server(
            200,
            "text/event-stream",
            "event: endpoint\ndata: http://elsewhere.invalid/messages\n\n",
        )
        .await;
        let error = sse_error(&url).await;
        assert!(error.to_string().contains("not the origin"), "{error}");
        let url = server(503, "text/plain", "down").await;
        let error = sse_error(&url).await.to_string();
        assert!(error.contains("HTTP 503: down"), "{error}");
    }

    #[tokio::test]
    async fn sse_endpoint_is_resolved_against_the_stream_url() {
        let url = server(
            200,
            "text/event-stream",
            "event: endpoint\ndata: /messages/?session_id=abc\n\n",
        )
        .await;
        let http = super::super::http_client::build_http_client().unwrap();
        let transport = LegacySseTransport::connect(http, &url, http::HeaderMap::new())
            .await
            .unwrap();
        let expected = url.replace("/sse", "/messages/?session_id=abc");
        assert_eq!(transport.endpoint(), expected);
    }
}
