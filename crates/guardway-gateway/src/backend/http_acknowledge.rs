//! The streamable-HTTP client of `http` backends: rmcp's reqwest client,
//! except that any 2xx answer to a POST that awaits no response (a
//! notification such as `notifications/initialized`, or a response to the
//! backend's own request) acknowledges it, as for the reference gateway.
//! rmcp accepts 202, an empty 200 with a length, or JSON; some servers answer
//! 200 with an empty `text/event-stream` body (chunked, no session id), which
//! rmcp would take for a stream it cannot use and fail the connection on.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

/// rmcp's reqwest client with the acknowledgement rule above. Cheap to
/// clone (a `reqwest::Client` is an `Arc` inside).
#[derive(Debug, Clone)]
pub(super) struct AcknowledgingClient(pub reqwest::Client);

/// Whether nothing in the answer to `message` is needed: only a request
/// awaits a response.
fn awaits_no_response(message: &ClientJsonRpcMessage) -> bool {
    !matches!(message, ClientJsonRpcMessage::Request(_))
}

/// A successful answer to a POST that awaits nothing is an acknowledgement,
/// whatever its body (rmcp has already turned non-2xx answers into errors).
fn acknowledged(
    answer: StreamableHttpPostResponse,
    awaits_nothing: bool,
) -> StreamableHttpPostResponse {
    match answer {
        StreamableHttpPostResponse::Sse(..) if awaits_nothing => {
            tracing::debug!("a 2xx event-stream answer to a notification taken as accepted");
            StreamableHttpPostResponse::Accepted
        }
        other => other,
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for AcknowledgingClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let awaits_nothing = awaits_no_response(&message);
        let answer = self
            .0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await?;
        Ok(acknowledged(answer, awaits_nothing))
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> PostResult {
        let awaits_nothing = awaits_no_response(&message);
        let answer = self
            .0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await?;
        Ok(acknowledged(answer, awaits_nothing))
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> PostResult {
        let awaits_nothing = awaits_no_response(&message);
        let answer = self
            .0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await?;
        Ok(acknowledged(answer, awaits_nothing))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<
        BoxStream<'static, Result<sse_stream::Sse, SseError>>,
        StreamableHttpError<Self::Error>,
    > {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<
        BoxStream<'static, Result<sse_stream::Sse, SseError>>,
        StreamableHttpError<Self::Error>,
    > {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
