//! The upstream GitHub API: its base URL and fallback token (resolved by
//! the caller, `guardway_gateway::github` reads them from the
//! environment), the HTTP client
//! (rustls with `ring`, system roots plus the Mozilla set), where a request
//! goes (GraphQL to `/graphql`, `/api/graphql` on GHES and GHE.com data
//! residency) and which headers it carries.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::RootCertStore;

use crate::graphql::is_graphql_path;

/// The upstream when nothing configures one.
pub use guardway_gateway::github::DEFAULT_API_URL as DEFAULT_GITHUB_API_URL;
/// The `User-Agent` of upstream requests.
pub const USER_AGENT: &str = concat!("guardway/", env!("CARGO_PKG_VERSION"));
/// The `Accept` header of every upstream request.
pub const GITHUB_ACCEPT: &str = "application/vnd.github+json";
/// How long one upstream request (headers and body) may take by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Why the upstream client could not be built or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot configure the upstream TLS client: {0}")]
    Tls(String),
    #[error("cannot build the upstream HTTP client: {0}")]
    Client(String),
    #[error("invalid upstream URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("{method} {path}: upstream request timed out after {timeout:?}")]
    Timeout {
        method: String,
        path: String,
        timeout: Duration,
    },
    #[error("{method} {path}: {message}")]
    Request {
        method: String,
        path: String,
        message: String,
    },
}

/// System roots (or `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus the Mozilla set,
/// loaded once per process.
fn root_store() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "cannot read some system CA certificates");
            }
            roots.add_parsable_certificates(native.certs);
            Arc::new(roots)
        })
        .clone()
}

/// The upstream GitHub API and the client requests go through. Cheap to
/// share behind an `Arc`; safe to use from many tasks.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// Base URL without a trailing slash.
    base: String,
    /// The fallback token (`--github-token` or a token variable).
    token: Option<String>,
    timeout: Duration,
}

impl Upstream {
    /// An upstream at `base` (`https://api.github.com`, a GHES
    /// `https://host/api/v3`, a test server's URL).
    ///
    /// # Errors
    /// An unusable base URL or a client that cannot be built.
    pub fn new(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Upstream, UpstreamError> {
        let base = base.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| UpstreamError::Url {
            url: base.clone(),
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(UpstreamError::Url {
                url: base,
                message: "expected an http or https URL with a host".to_owned(),
            });
        }
        guardway_gateway::install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| UpstreamError::Tls(e.to_string()))?
            .with_root_certificates(root_store())
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        Ok(Upstream {
            client,
            base,
            token: token.filter(|token| !token.is_empty()),
            timeout,
        })
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a fallback token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The host of the base URL.
    pub fn host(&self) -> String {
        reqwest::Url::parse(&self.base)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// GitHub Enterprise Cloud with data residency (`copilot-api.*.ghe.com`).
    fn is_ghe_data_residency(&self) -> bool {
        let host = self.host().to_ascii_lowercase();
        host.starts_with("copilot-api.") && host.ends_with(".ghe.com")
    }

    /// The upstream URL of a request path (the `/api/v3` prefix already
    /// removed; query string included). GraphQL goes to `/api/graphql` of a
    /// GHES base (`…/api/v3`), to `/api/graphql` of a GHE.com data
    /// residency host when the client asked for that path, else to
    /// `/graphql`.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        if !is_graphql_path(path) {
            return format!("{}{path_and_query}", self.base);
        }
        let normalized = path.strip_suffix('/').unwrap_or(path);
        let mut url = if let Some(root) = self.base.strip_suffix("/api/v3") {
            format!("{root}/api/graphql")
        } else if self.is_ghe_data_residency() && normalized.ends_with("/api/graphql") {
            format!("{}/api/graphql", self.base)
        } else {
            format!("{}/graphql", self.base)
        };
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// The `Authorization` of an upstream request: the client's own header
    /// when it sent one, else `token <fallback>`, else none.
    pub fn authorization(&self, client_auth: Option<&str>) -> Option<String> {
        match client_auth.filter(|auth| !auth.is_empty()) {
            Some(auth) => Some(auth.to_owned()),
            None => self.token.as_ref().map(|token| format!("token {token}")),
        }
    }

    /// The `Authorization` of a look-up made for the guard: the fallback
    /// token first (it usually sees more of the organisation), else the
    /// client's header.
    pub fn lookup_authorization(&self, client_auth: Option<&str>) -> Option<String> {
        match &self.token {
            Some(token) => Some(format!("token {token}")),
            None => client_auth
                .filter(|auth| !auth.is_empty())
                .map(str::to_owned),
        }
    }

    /// Sends one request upstream and returns once the response headers
    /// arrived (the body is read by the caller).
    ///
    /// # Errors
    /// A connection failure, an invalid URL, or the timeout.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        body: Option<reqwest::Body>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = self.url_for(path_and_query);
        tracing::debug!(%method, path = path_and_query, %url, "forwarding upstream");
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header(http::header::ACCEPT, GITHUB_ACCEPT)
            .header(http::header::USER_AGENT, USER_AGENT);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        if let Some(content_type) = content_type.filter(|value| !value.is_empty()) {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        request
            .send()
            .await
            .map_err(|error| self.request_error(&method, path_and_query, &error))
    }

    /// The error of a failed request or body read.
    pub fn request_error(
        &self,
        method: &http::Method,
        path: &str,
        error: &reqwest::Error,
    ) -> UpstreamError {
        if error.is_timeout() {
            UpstreamError::Timeout {
                method: method.to_string(),
                path: path.to_owned(),
                timeout: self.timeout,
            }
        } else {
            UpstreamError::Request {
                method: method.to_string(),
                path: path.to_owned(),
                message: error_chain(error),
            }
        }
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base: &str, token: Option<&str>) -> Upstream {
        Upstream::new(base, token.map(str::to_owned), DEFAULT_UPSTREAM_TIMEOUT).unwrap()
    }

    #[test]
    fn graphql_urls_follow_the_upstream_kind() {
        let ghes = upstream("http://127.0.0.1:9/api/v3", None);
        for (path, url) in [
            ("/graphql", "http://127.0.0.1:9/api/graphql"),
            ("/graphql?foo=bar", "http://127.0.0.1:9/api/graphql?foo=bar"),
            ("/api/graphql", "http://127.0.0.1:9/api/graphql"),
            (
                "/repos/o/r/issues?page=2",
                "http://127.0.0.1:9/api/v3/repos/o/r/issues?page=2",
            ),
        ] {
            assert_eq!(ghes.url_for(path), url, "{path}");
        }
        let dotcom = upstream("http://127.0.0.1:9/", None);
        for (path, url) in [
            ("/graphql", "http://127.0.0.1:9/graphql"),
            ("/api/graphql", "http://127.0.0.1:9/graphql"),
            ("/api/v3/graphql", "http://127.0.0.1:9/graphql"),
            ("/api/graphql?foo=bar", "http://127.0.0.1:9/graphql?foo=bar"),
        ] {
            assert_eq!(dotcom.url_for(path), url, "{path}");
        }
        let residency = upstream("https://copilot-api.tenant.ghe.com", None);
        assert_eq!(
            residency.url_for("/api/graphql"),
            "https://copilot-api.tenant.ghe.com/api/graphql"
        );
        assert_eq!(
            residency.url_for("/graphql"),
            "https://copilot-api.tenant.ghe.com/graphql"
        );
    }

    #[test]
    fn authorization_prefers_the_client() {
        let with_token = upstream("http://127.0.0.1:9", Some("server-token"));
        assert_eq!(
            with_token.authorization(Some("Bearer client")).as_deref(),
            Some("Bearer client")
        );
        assert_eq!(
            with_token.authorization(None).as_deref(),
            Some("token server-token")
        );
        assert_eq!(
            with_token.authorization(Some("")).as_deref(),
            Some("token server-token")
        );
        let without = upstream("http://127.0.0.1:9", None);
        assert_eq!(without.authorization(None), None);
        // Look-ups for the guard prefer the configured token.
        assert_eq!(
            with_token.lookup_authorization(Some("token c")).as_deref(),
            Some("token server-token")
        );
        assert_eq!(
            without.lookup_authorization(Some("token c")).as_deref(),
            Some("token c")
        );
    }

    #[test]
    fn bad_bases_are_refused() {
        for base in ["", "ftp://x", "not a url", "http://"] {
            assert!(
                Upstream::new(base, None, DEFAULT_UPSTREAM_TIMEOUT).is_err(),
                "{base}"
            );
        }
    }
}
