//! Which upstream response headers reach the client (content type,
//! pagination `Link`, rate-limit headers, request id, redirects and
//! downloads), and the `Retry-After` added when the upstream signals a
//! rate limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// Upstream response headers copied to the client; nothing else is.
pub const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "content-disposition",
    "location",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-resource",
    "x-ratelimit-used",
    "link",
    "x-github-request-id",
];

/// `Retry-After` when the reset time is unknown or past.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// Longest `Retry-After` given.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// The forwarded headers of an upstream response.
pub fn forwarded_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_RESPONSE_HEADERS {
        let name = HeaderName::from_static(name);
        if let Some(value) = upstream.get(&name)
            && !value.is_empty()
        {
            out.insert(name, value.clone());
        }
    }
    out
}

/// Whether an upstream response signals a rate limit: status 429 or
/// `X-RateLimit-Remaining: 0`.
pub fn is_rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || headers
            .get("x-ratelimit-remaining")
            .is_some_and(|value| value.as_bytes() == b"0")
}

/// Seconds until `X-RateLimit-Reset` (a Unix time) plus one, within
/// `[1, 3600]`; 60 when the header is absent, malformed or past.
pub fn retry_after_secs(headers: &HeaderMap, now: SystemTime) -> u64 {
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok());
    let Some(reset) = reset else {
        return DEFAULT_RETRY_AFTER_SECS;
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let secs = reset.saturating_sub(now).saturating_add(1);
    if secs < 1 {
        return DEFAULT_RETRY_AFTER_SECS;
    }
    u64::try_from(secs)
        .unwrap_or(MAX_RETRY_AFTER_SECS)
        .min(MAX_RETRY_AFTER_SECS)
}

/// The client headers of an upstream response: the forwarded ones, plus
/// `Retry-After` when the upstream is rate limiting (logged as an error).
pub fn client_headers(status: StatusCode, upstream: &HeaderMap) -> HeaderMap {
    let mut out = forwarded_headers(upstream);
    if is_rate_limited(status, upstream) {
        let secs = retry_after_secs(upstream, SystemTime::now());
        out.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        tracing::error!(
            status = status.as_u16(),
            remaining = ?upstream.get("x-ratelimit-remaining"),
            reset = ?upstream.get("x-ratelimit-reset"),
            retry_after = secs,
            "upstream rate limit hit"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_listed_headers_are_forwarded() {
        let upstream = headers(&[
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-RateLimit-Limit", "60"),
            ("X-RateLimit-Remaining", "58"),
            ("X-RateLimit-Reset", "1609459200"),
            ("X-RateLimit-Resource", "core"),
            ("X-RateLimit-Used", "2"),
            (
                "Link",
                "<https://api.github.com/repos/o/r/issues?page=2>; rel=\"next\"",
            ),
            ("X-GitHub-Request-Id", "abc-123"),
            ("Location", "https://blob.example/x"),
            ("X-Custom-Header", "secret"),
            ("Authorization", "token abc"),
            ("Set-Cookie", "a=b"),
            ("Content-Length", "12"),
        ]);
        let out = forwarded_headers(&upstream);
        assert_eq!(out.len(), 9);
        assert_eq!(out["x-ratelimit-used"], "2");
        assert_eq!(out["x-github-request-id"], "abc-123");
        assert!(out["link"].to_str().unwrap().contains("page=2"));
        for absent in [
            "x-custom-header",
            "authorization",
            "set-cookie",
            "content-length",
        ] {
            assert!(out.get(absent).is_none(), "{absent}");
        }
        assert!(forwarded_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn rate_limit_signals() {
        assert!(is_rate_limited(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new()
        ));
        assert!(is_rate_limited(
            StatusCode::FORBIDDEN,
            &headers(&[("X-RateLimit-Remaining", "0")])
        ));
        assert!(!is_rate_limited(
            StatusCode::OK,
            &headers(&[("X-RateLimit-Remaining", "10")])
        ));
    }

    #[test]
    fn retry_after_is_bounded() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |reset: &str| retry_after_secs(&headers(&[("X-RateLimit-Reset", reset)]), now);
        assert_eq!(retry_after_secs(&HeaderMap::new(), now), 60);
        assert_eq!(at("garbage"), 60);
        assert_eq!(at("999000"), 60);
        assert_eq!(at("1000000"), 1);
        assert_eq!(at("1000030"), 31);
        assert_eq!(at("2000000"), 3600);
    }

    #[test]
    fn client_headers_add_retry_after_when_limited() {
        let limited = client_headers(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("X-RateLimit-Remaining", "0")]),
        );
        assert_eq!(limited["retry-after"], "60");
        let fine = client_headers(StatusCode::OK, &headers(&[("X-RateLimit-Remaining", "5")]));
        assert!(fine.get("retry-after").is_none());
    }
}
