//! Connecting to an `http` backend (gateway.md §5.2): streamable HTTP, then
//! the legacy HTTP+SSE transport, then plain JSON-RPC POST, each attempt
//! (connection and `initialize` handshake) bounded by `connectTimeout`.
//! The first that completes the handshake is the backend's connection.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::http_acknowledge::AcknowledgingClient;
use super::http_client::{build_http_client, header_map};
use super::http_transport::{JsonPostTransport, LegacySseTransport};
use super::{BackendClient, Connection};

/// The transport an `http` backend connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTransportKind {
    StreamableHttp,
    Sse,
    JsonPost,
}

impl HttpTransportKind {
    /// All of them, in the order they are tried.
    pub const ORDER: [Self; 3] = [Self::StreamableHttp, Self::Sse, Self::JsonPost];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable HTTP",
            Self::Sse => "SSE",
            Self::JsonPost => "plain JSON-RPC POST",
        }
    }
}

impl std::fmt::Display for HttpTransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What connecting needs besides the client handler.
pub struct HttpTarget<'a> {
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    /// Replaces any configured `Authorization` (github-oidc).
    pub authorization: Option<String>,
    pub connect_timeout: Duration,
    /// Tried first: the transport of the previous connection, so a
    /// reconnect does not walk through the ones that failed before.
    pub preferred: Option<HttpTransportKind>,
}

/// The transports to try, `preferred` first, then the rest in order.
fn attempt_order(preferred: Option<HttpTransportKind>) -> Vec<HttpTransportKind> {
    let mut order: Vec<HttpTransportKind> = preferred.into_iter().collect();
    order.extend(
        HttpTransportKind::ORDER
            .into_iter()
            .filter(|k| Some(*k) != preferred),
    );
    order
}

/// Tries each transport in order; `log(level, message)` receives one line
/// per failed attempt. Returns the connection and its transport, or one
/// message listing every attempt's failure.
pub async fn connect_http(
    client: BackendClient,
    target: HttpTarget<'_>,
    log: &(dyn Fn(&str, &str) + Send + Sync),
) -> Result<(Connection, HttpTransportKind), String> {
    let http = build_http_client()?;
    let mut headers = header_map(target.headers)?;
    if let Some(authorization) = &target.authorization {
        let value = http::HeaderValue::from_str(authorization)
            .map_err(|e| format!("invalid Authorization value: {e}"))?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    let mut failures = Vec::new();
    for kind in attempt_order(target.preferred) {
        let attempt = attempt(kind, &client, &http, &headers, target.url);
        let outcome = match tokio::time::timeout(target.connect_timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {:?}", target.connect_timeout)),
        };
        match outcome {
            Ok(connection) => return Ok((connection, kind)),
            Err(reason) => {
                log(
                    "WARN",
                    &format!("{kind} to {} failed: {reason}", target.url),
                );
                failures.push(format!("{kind}: {reason}"));
            }
        }
    }
    Err(format!(
        "{} answers none of the MCP HTTP transports ({})",
        target.url,
        failures.join("; ")
    ))
}

async fn attempt(
    kind: HttpTransportKind,
    client: &BackendClient,
    http: &reqwest::Client,
    headers: &http::HeaderMap,
    url: &str,
) -> Result<Connection, String> {
    let client = client.clone();
    let handshake = |e: rmcp::service::ClientInitializeError| match e {
        // The transport's own error, without rmcp's type names around it.
        rmcp::service::ClientInitializeError::TransportError { error, context } => {
            format!("initialize failed: {} ({context})", error.error)
        }
        other => format!("initialize failed: {other}"),
    };
    match kind {
        HttpTransportKind::StreamableHttp => {
            let custom: HashMap<http::HeaderName, http::HeaderValue> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom);
            let transport = StreamableHttpClientTransport::with_client(
                AcknowledgingClient(http.clone()),
                config,
            );
            client
                .serve_ordered(transport, Arc::default())
                .await
                .map_err(handshake)
        }
        HttpTransportKind::Sse => {
            let transport = LegacySseTransport::connect(http.clone(), url, headers.clone())
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(%url, endpoint = transport.endpoint(), "SSE endpoint received");
            client
                .serve_ordered(transport, Arc::default())
                .await
                .map_err(handshake)
        }
        HttpTransportKind::JsonPost => {
            let transport = JsonPostTransport::new(http.clone(), url, headers.clone());
            client
                .serve_ordered(transport, Arc::default())
                .await
                .map_err(handshake)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_transport_is_tried_first() {
        use HttpTransportKind::*;
        assert_eq!(attempt_order(None), vec![StreamableHttp, Sse, JsonPost]);
        assert_eq!(
            attempt_order(Some(JsonPost)),
            vec![JsonPost, StreamableHttp, Sse]
        );
        assert_eq!(
            attempt_order(Some(Sse)),
            vec![Sse, StreamableHttp, JsonPost]
        );
    }
}
