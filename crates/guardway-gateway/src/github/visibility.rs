//! The visibility of a GitHub repository: one `GET /repos/{owner}/{repo}`
//! ([`fetch_repo_visibility`]) and the workflow repository's visibility,
//! looked up at most once per process ([`WorkflowVisibility`]). Every
//! failure is an error value the caller logs and fails open on.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::LOG_TARGET;
use super::env::GitHubEnv;

/// The gateway's bound on the look-up (the reference's context timeout).
pub const GATEWAY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Proxy mode's bound (the reference proxy has only its HTTP client's).
pub const PROXY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// `User-Agent` of the look-up.
pub const USER_AGENT: &str = concat!("guardway/", env!("CARGO_PKG_VERSION"));
/// Answers larger than this are not read (a repository is a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What GitHub says a repository is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoVisibility {
    Public,
    Private,
    Internal,
}

impl RepoVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoVisibility::Public => "public",
            RepoVisibility::Private => "private",
            RepoVisibility::Internal => "internal",
        }
    }
}

impl fmt::Display for RepoVisibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a look-up gave no answer. The messages are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisibilityError {
    #[error("invalid repository nwo: {repository:?} (expected owner/repo)")]
    InvalidRepository { repository: String },
    #[error("failed to fetch repo visibility for {repository}: {reason}")]
    Request { repository: String, reason: String },
    #[error("failed to fetch repo visibility for {repository}: no answer within {}s", after.as_secs())]
    TimedOut { repository: String, after: Duration },
    #[error("repo visibility check for {repository} returned status {status}")]
    Status { repository: String, status: u16 },
    #[error("failed to decode repo response for {repository}: {reason}")]
    Decode { repository: String, reason: String },
}

/// `GET {api_url}/repos/{owner}/{repo}` with `token`, answered within
/// `timeout` (connection, headers and body together). `repository` is
/// split at its first `/`; an empty half is an error and sends nothing.
/// Only a 200 counts; its `visibility` (any case) decides, else its
/// `private` flag, else it is public.
///
/// # Errors
/// See [`VisibilityError`].
pub async fn fetch_repo_visibility(
    client: &reqwest::Client,
    api_url: &str,
    repository: &str,
    token: &str,
    timeout: Duration,
) -> Result<RepoVisibility, VisibilityError> {
    let Some((owner, name)) = repository
        .split_once('/')
        .filter(|(owner, name)| !owner.is_empty() && !name.is_empty())
    else {
        return Err(VisibilityError::InvalidRepository {
            repository: repository.to_owned(),
        });
    };
    let url = format!("{}/repos/{owner}/{name}", api_url.trim_end_matches('/'));
    let request_error = |reason: String| VisibilityError::Request {
        repository: repository.to_owned(),
        reason,
    };
    let exchange = async {
        let mut response = client
            .get(&url)
            .header(http::header::AUTHORIZATION, format!("token {token}"))
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .send()
            .await
            .map_err(|error| request_error(error_text(&error)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(VisibilityError::Status {
                repository: repository.to_owned(),
                status,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| request_error(error_text(&error)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(VisibilityError::Decode {
                    repository: repository.to_owned(),
                    reason: format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(&body).map_err(|reason| VisibilityError::Decode {
            repository: repository.to_owned(),
            reason,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(VisibilityError::TimedOut {
            repository: repository.to_owned(),
            after: timeout,
        }),
    }
}

/// An error with its causes, one line.
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The visibility in a `GET /repos/…` answer, read as the reference's JSON
/// decoder does: the first JSON value; `null` has no fields; keys match
/// exactly, else ignoring case; `visibility` must be a string (or null) and
/// `private` a boolean (or null).
fn parse_answer(body: &[u8]) -> Result<RepoVisibility, String> {
    let value = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| "empty answer".to_owned())?
        .map_err(|error| error.to_string())?;
    let object = match value {
        Value::Null => return Ok(RepoVisibility::Public),
        Value::Object(object) => object,
        other => return Err(format!("expected a JSON object, got {}", kind(&other))),
    };
    let field = |name: &str| {
        object.get(name).or_else(|| {
            object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    };
    let visibility = match field("visibility") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.to_ascii_lowercase(),
        Some(other) => {
            return Err(format!(
                "visibility: expected a string, got {}",
                kind(other)
            ));
        }
    };
    let private = match field("private") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(format!("private: expected a boolean, got {}", kind(other))),
    };
    Ok(match visibility.as_str() {
        "public" => RepoVisibility::Public,
        "internal" => RepoVisibility::Internal,
        "private" => RepoVisibility::Private,
        _ if private => RepoVisibility::Private,
        _ => RepoVisibility::Public,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The outcome of the workflow repository's look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `GITHUB_REPOSITORY` is not set: nothing asked.
    NoRepository,
    /// No token: nothing asked.
    NoToken,
    /// Asked, and no usable answer.
    Failed(VisibilityError),
    Known(RepoVisibility),
}

impl Lookup {
    /// The visibility, when known.
    pub fn visibility(&self) -> Option<RepoVisibility> {
        match self {
            Lookup::Known(visibility) => Some(*visibility),
            _ => None,
        }
    }
}

/// The workflow repository's visibility, asked on first need and then
/// remembered for the process (a failure too: one request at most).
/// `Send + Sync`; share by reference or in an `Arc`.
#[derive(Debug)]
pub struct WorkflowVisibility {
    env: GitHubEnv,
    timeout: Duration,
    outcome: tokio::sync::OnceCell<Lookup>,
}

impl WorkflowVisibility {
    /// Nothing is asked until [`WorkflowVisibility::lookup`].
    pub fn new(env: GitHubEnv, timeout: Duration) -> Self {
        WorkflowVisibility {
            env,
            timeout,
            outcome: tokio::sync::OnceCell::new(),
        }
    }

    /// A look-up whose outcome is already known (a caller that asked
    /// itself, or tests): nothing is sent.
    pub fn answered(env: GitHubEnv, outcome: Lookup) -> Self {
        WorkflowVisibility {
            env,
            timeout: GATEWAY_LOOKUP_TIMEOUT,
            outcome: tokio::sync::OnceCell::new_with(Some(outcome)),
        }
    }

    pub fn env(&self) -> &GitHubEnv {
        &self.env
    }

    /// The outcome, asking GitHub the first time (concurrent callers wait
    /// for that one request).
    pub async fn lookup(&self) -> &Lookup {
        self.outcome.get_or_init(|| self.ask()).await
    }

    /// The outcome if the question was asked already.
    pub fn asked(&self) -> Option<&Lookup> {
        self.outcome.get()
    }

    async fn ask(&self) -> Lookup {
        let Some(repository) = self.env.repository() else {
            return Lookup::NoRepository;
        };
        let Some(token) = self.env.token() else {
            return Lookup::NoToken;
        };
        let result = match crate::backend::build_api_client() {
            Ok(client) => {
                fetch_repo_visibility(
                    &client,
                    self.env.api_url(),
                    repository,
                    token.value(),
                    self.timeout,
                )
                .await
            }
            Err(reason) => Err(VisibilityError::Request {
                repository: repository.to_owned(),
                reason,
            }),
        };
        match result {
            Ok(visibility) => {
                tracing::debug!(target: LOG_TARGET,
                    "resolveWorkflowRepoVisibility: cached repo visibility for {repository}: {visibility}");
                Lookup::Known(visibility)
            }
            Err(error) => {
                tracing::debug!(target: LOG_TARGET,
                    "resolveWorkflowRepoVisibility: API call failed for {repository}: {error}");
                Lookup::Failed(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_reference_reads_them() {
        let parse = |text: &str| parse_answer(text.as_bytes());
        assert_eq!(
            parse(r#"{"visibility": "public", "private": true}"#),
            Ok(RepoVisibility::Public)
        );
        assert_eq!(
            parse(r#"{"visibility": "INTERNAL"}"#),
            Ok(RepoVisibility::Internal)
        );
        assert_eq!(
            parse(r#"{"visibility": "private"}"#),
            Ok(RepoVisibility::Private)
        );
        // No (known) visibility: the private flag, else public.
        assert_eq!(parse(r#"{"private": true}"#), Ok(RepoVisibility::Private));
        assert_eq!(
            parse(r#"{"visibility": "secret", "private": false}"#),
            Ok(RepoVisibility::Public)
        );
        assert_eq!(parse("{}"), Ok(RepoVisibility::Public));
        assert_eq!(parse("null"), Ok(RepoVisibility::Public));
        // Keys ignore case when no exact key exists; trailing text is ignored.
        assert_eq!(
            parse(r#"{"Visibility": "private"} trailing"#),
            Ok(RepoVisibility::Private)
        );
        assert!(parse("not json").is_err());
        assert!(parse("").is_err());
        assert!(parse("[]").unwrap_err().contains("an array"));
        assert!(
            parse(r#"{"visibility": 1}"#)
                .unwrap_err()
                .contains("visibility")
        );
        assert!(
            parse(r#"{"private": "yes"}"#)
                .unwrap_err()
                .contains("private")
        );
    }

    #[test]
    fn error_messages_are_the_references() {
        let error = VisibilityError::InvalidRepository {
            repository: "x".into(),
        };
        assert_eq!(
            error.to_string(),
            "invalid repository nwo: \"x\" (expected owner/repo)"
        );
        let error = VisibilityError::Status {
            repository: "o/r".into(),
            status: 404,
        };
        assert_eq!(
            error.to_string(),
            "repo visibility check for o/r returned status 404"
        );
    }

    /// A one-connection HTTP server answering `answer` (raw bytes), or
    /// never when `None`; returns its base URL and the request it read.
    async fn one_shot(answer: Option<&'static str>) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            match answer {
                Some(answer) => socket.write_all(answer.as_bytes()).await.unwrap(),
                None => tokio::time::sleep(Duration::from_secs(60)).await,
            }
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, task)
    }

    fn client() -> reqwest::Client {
        crate::backend::build_api_client().unwrap()
    }

    #[tokio::test]
    async fn one_get_with_the_token_and_headers() {
        let body = r#"{"visibility":"private"}"#;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let (url, server) = one_shot(Some(answer)).await;
        let visibility = fetch_repo_visibility(
            &client(),
            &format!("{url}/"),
            "o/r",
            "t0k",
            GATEWAY_LOOKUP_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(visibility, RepoVisibility::Private);
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("get /repos/o/r http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\nauthorization: token t0k\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\naccept: application/vnd.github+json\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nuser-agent: guardway/"), "{request}");
    }

    #[tokio::test]
    async fn non_200_and_silence_are_errors() {
        let (url, _server) = one_shot(Some(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}",
        ))
        .await;
        let error = fetch_repo_visibility(&client(), &url, "o/r", "t", GATEWAY_LOOKUP_TIMEOUT)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            VisibilityError::Status {
                repository: "o/r".into(),
                status: 404
            }
        );

        let (url, _server) = one_shot(None).await;
        let error = fetch_repo_visibility(&client(), &url, "o/r", "t", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, VisibilityError::TimedOut { .. }), "{error}");

        for bad in ["", "/r", "o/", "noslash"] {
            let error = fetch_repo_visibility(
                &client(),
                "http://127.0.0.1:9",
                bad,
                "t",
                GATEWAY_LOOKUP_TIMEOUT,
            )
            .await
            .unwrap_err();
            assert!(
                matches!(error, VisibilityError::InvalidRepository { .. }),
                "{bad}"
            );
        }
        let error = fetch_repo_visibility(
            &client(),
            "http://127.0.0.1:9",
            "o/r",
            "t",
            GATEWAY_LOOKUP_TIMEOUT,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, VisibilityError::Request { .. }), "{error}");
    }

    #[tokio::test]
    async fn the_workflow_lookup_skips_without_repository_or_token_and_asks_once() {
        let none =
            WorkflowVisibility::new(GitHubEnv::from_lookup(|_| None), GATEWAY_LOOKUP_TIMEOUT);
        assert_eq!(none.lookup().await, &Lookup::NoRepository);
        let no_token = WorkflowVisibility::new(
            GitHubEnv::from_lookup(|name| (name == "GITHUB_REPOSITORY").then(|| "o/r".to_owned())),
            GATEWAY_LOOKUP_TIMEOUT,
        );
        assert_eq!(no_token.lookup().await, &Lookup::NoToken);

        let (url, server) = one_shot(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 23\r\nconnection: close\r\n\r\n{\"visibility\":\"public\"}",
        ))
        .await;
        let env = GitHubEnv::from_lookup(move |name| match name {
            "GITHUB_REPOSITORY" => Some("o/r".to_owned()),
            "GITHUB_TOKEN" => Some("t".to_owned()),
            "GITHUB_API_URL" => Some(url.clone()),
            _ => None,
        });
        let lookup = WorkflowVisibility::new(env, GATEWAY_LOOKUP_TIMEOUT);
        assert!(lookup.asked().is_none());
        assert_eq!(
            lookup.lookup().await,
            &Lookup::Known(RepoVisibility::Public)
        );
        // The one-shot server is gone: a second request would fail.
        server.await.unwrap();
        assert_eq!(
            lookup.lookup().await,
            &Lookup::Known(RepoVisibility::Public)
        );
        assert_eq!(
            lookup.asked().and_then(Lookup::visibility),
            Some(RepoVisibility::Public)
        );
    }
}
