//! `github-oidc` auth of `http` backends (gateway.md §5.2): a JWT from the
//! GitHub Actions OIDC endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`, called
//! with `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN` and an
//! `audience` query), sent to the backend as `Authorization: Bearer <jwt>`.
//! Tokens are cached per audience and renewed [`RENEW_EARLY`] before the
//! `exp` of their claims.
//!
//! [`OidcTokenSource`] is thread-safe; the process-wide one built from the
//! environment is [`OidcTokenSource::from_env`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

/// How long before its expiry a cached token is replaced.
pub const RENEW_EARLY: Duration = Duration::from_secs(60);
/// Largest token response accepted.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("github-oidc auth needs the {name} environment variable")]
    MissingVariable { name: &'static str },
    #[error("invalid OIDC token request URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("OIDC token request failed: {reason}")]
    Request { reason: String },
    #[error("the OIDC token endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the OIDC token endpoint sent no token: {reason}")]
    NoToken { reason: String },
}

/// A token and when it stops being used.
#[derive(Debug, Clone)]
pub struct OidcToken {
    pub jwt: String,
    /// `exp` of the claims, if the token has one.
    pub expires_at: Option<SystemTime>,
}

impl OidcToken {
    /// When the token must be replaced (`RENEW_EARLY` before expiry).
    pub fn renew_at(&self) -> Option<SystemTime> {
        self.expires_at
            .map(|exp| exp.checked_sub(RENEW_EARLY).unwrap_or(UNIX_EPOCH))
    }

    fn fresh_at(&self, now: SystemTime) -> bool {
        self.renew_at().is_some_and(|at| now < at)
    }
}

/// Fetches and caches OIDC tokens. Thread-safe; share it in an `Arc`.
#[derive(Debug)]
pub struct OidcTokenSource {
    http: reqwest::Client,
    request_url: String,
    request_token: String,
    cache: tokio::sync::Mutex<HashMap<String, OidcToken>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl OidcTokenSource {
    pub fn new(
        http: reqwest::Client,
        request_url: impl Into<String>,
        request_token: impl Into<String>,
    ) -> Self {
        Self {
            http,
            request_url: request_url.into(),
            request_token: request_token.into(),
            cache: Default::default(),
            fetches: Default::default(),
        }
    }

    /// The process-wide source built from `ACTIONS_ID_TOKEN_REQUEST_URL`
    /// and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (read once).
    pub fn from_env() -> Result<Arc<Self>, OidcError> {
        static SOURCE: OnceLock<Result<Arc<OidcTokenSource>, OidcError>> = OnceLock::new();
        SOURCE
            .get_or_init(|| {
                let var = |name: &'static str| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or(OidcError::MissingVariable { name })
                };
                let url = var("ACTIONS_ID_TOKEN_REQUEST_URL")?;
                let token = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?;
                let http = super::http_client::build_http_client()
                    .map_err(|reason| OidcError::Request { reason })?;
                Ok(Arc::new(Self::new(http, url, token)))
            })
            .clone()
    }

    /// Tokens fetched from the endpoint so far (cache misses).
    #[cfg(test)]
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token for `audience`: the cached one while it is more than
    /// [`RENEW_EARLY`] from expiry, else a new one.
    pub async fn token(&self, audience: &str) -> Result<OidcToken, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.get(audience)
            && token.fresh_at(SystemTime::now())
        {
            return Ok(token.clone());
        }
        let token = self.fetch(audience).await?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cache.insert(audience.to_owned(), token.clone());
        Ok(token)
    }

    async fn fetch(&self, audience: &str) -> Result<OidcToken, OidcError> {
        let mut url = reqwest::Url::parse(&self.request_url).map_err(|e| OidcError::BadUrl {
            url: self.request_url.clone(),
            reason: e.to_string(),
        })?;
        url.query_pairs_mut().append_pair("audience", audience);
        let mut response = self
            .http
            .get(url)
            .bearer_auth(&self.request_token)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Request {
                reason: e.to_string(),
            })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| OidcError::Request {
            reason: e.to_string(),
        })? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OidcError::NoToken {
                    reason: "response too large".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(OidcError::Status {
                status: status.as_u16(),
                body: text.chars().take(200).collect(),
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| OidcError::NoToken {
                reason: e.to_string(),
            })?;
        let jwt = value
            .get("value")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OidcError::NoToken {
                reason: "no \"value\" string in the response".into(),
            })?
            .to_owned();
        let expires_at = jwt_expiry(&jwt);
        Ok(OidcToken { jwt, expires_at })
    }
}

/// The `exp` claim of a JWT (unverified: the backend verifies it).
pub fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn jwt_with_exp(exp: u64, tag: u64) -> String {
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            enc(serde_json::json!({"alg": "RS256"})),
            enc(serde_json::json!({"exp": exp, "n": tag}))
        )
    }

    #[test]
    fn expiry_comes_from_the_claims() {
        let jwt = jwt_with_exp(2_000_000_000, 1);
        assert_eq!(
            jwt_expiry(&jwt),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    /// A fake Actions token endpoint: checks the request token, returns
    /// tokens expiring `lifetime` seconds from now, counts requests and
    /// records the audiences.
    async fn token_endpoint(
        lifetime: u64,
    ) -> (String, Arc<AtomicU64>, Arc<parking_lot::Mutex<Vec<String>>>) {
        let hits = Arc::new(AtomicU64::new(0));
        let audiences = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (h, a) = (hits.clone(), audiences.clone());
        let app = axum::Router::new().route(
            "/token",
            axum::routing::get(
                move |headers: http::HeaderMap,
                      query: axum::extract::Query<HashMap<String, String>>| {
                    let (h, a) = (h.clone(), a.clone());
                    async move {
                        if headers.get("authorization").and_then(|v| v.to_str().ok())
                            != Some("Bearer request-token")
                        {
                            return (http::StatusCode::UNAUTHORIZED, "bad token".to_owned());
                        }
                        assert_eq!(query.get("api-version").map(String::as_str), Some("2.0"));
                        let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                        a.lock()
                            .push(query.get("audience").cloned().unwrap_or_default());
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let jwt = jwt_with_exp(now + lifetime, n);
                        (
                            http::StatusCode::OK,
                            serde_json::json!({"count": 1, "value": jwt}).to_string(),
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (
            format!("http://{addr}/token?api-version=2.0"),
            hits,
            audiences,
        )
    }

    #[tokio::test]
    async fn tokens_are_cached_per_audience() {
        let (url, hits, audiences) = token_endpoint(3600).await;
        let http = crate::backend::http_client::build_http_client().unwrap();
        let source = OidcTokenSource::new(http, url, "request-token");
        let a1 = source.token("https://a.example/mcp").await.unwrap();
        let a2 = source.token("https://a.example/mcp").await.unwrap();
        assert_eq!(a1.jwt, a2.jwt);
        let b = source.token("api://b").await.unwrap();
        assert_ne!(a1.jwt, b.jwt);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(source.fetches(), 2);
        assert_eq!(
            *audiences.lock(),
            vec!["https://a.example/mcp".to_owned(), "api://b".to_owned()]
        );
        assert!(a1.renew_at().unwrap() > SystemTime::now());
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_renewed() {
        // Expires in 30 s: inside the 60 s renewal window at once.
        let (url, hits, _) = token_endpoint(30).await;
        let http = crate::backend::http_client::build_http_client().unwrap();
        let source = OidcTokenSource::new(http, url, "request-token");
        let first = source.token("aud").await.unwrap();
        let second = source.token("aud").await.unwrap();
        assert_ne!(first.jwt, second.jwt);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn endpoint_errors_are_reported() {
        let (url, _, _) = token_endpoint(3600).await;
        let http = crate::backend::http_client::build_http_client().unwrap();
        let source = OidcTokenSource::new(http, url, "wrong");
        let error = source.token("aud").await.unwrap_err().to_string();
        assert!(error.contains("HTTP 401"), "{error}");
    }
}
