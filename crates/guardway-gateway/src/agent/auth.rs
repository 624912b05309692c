//! Client authentication (gateway.md §3.2): the API key check, key
//! generation, and the agent id derived from request headers.

use http::HeaderMap;

/// Compares two byte strings in time that depends only on their lengths,
/// never on where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    // Walk the longer input in full so that timing does not reveal the
    // position of the first difference either.
    let len = a.len().max(b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// A random 64-hex-character key (32 bytes from the OS generator).
pub fn generate_api_key() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a request was refused before reaching MCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    pub status: u16,
    pub error: &'static str,
    pub message: &'static str,
}

/// Checks the bare `Authorization` header against `key`: missing ⇒ 401,
/// control characters ⇒ 400, anything but a byte-exact match ⇒ 401.
pub fn check_authorization(headers: &HeaderMap, key: &str) -> Result<(), AuthRejection> {
    check_authorization_value(
        headers
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes),
        key,
    )
}

/// [`check_authorization`] on the raw header value.
pub fn check_authorization_value(value: Option<&[u8]>, key: &str) -> Result<(), AuthRejection> {
    let Some(bytes) = value else {
        return Err(AuthRejection {
            status: 401,
            error: "unauthorized",
            message: "missing Authorization header",
        });
    };
    if bytes.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(AuthRejection {
            status: 400,
            error: "bad_request",
            message: "malformed Authorization header",
        });
    }
    if constant_time_eq(bytes, key.as_bytes()) {
        Ok(())
    } else {
        Err(AuthRejection {
            status: 401,
            error: "unauthorized",
            message: "invalid API key",
        })
    }
}

/// The agent id of a request: `X-Agent-ID`, else `Authorization` without a
/// leading `Bearer ` or `Agent `; `None` when neither is usable.
pub fn agent_id(headers: &HeaderMap) -> Option<String> {
    if let Some(id) = headers.get("x-agent-id").and_then(|v| v.to_str().ok()) {
        let id = id.trim();
        if !id.is_empty() {
            return Some(id.to_owned());
        }
    }
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let id = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("Agent "))
        .unwrap_or(auth)
        .trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// Whether an agent id can name a directory: one path segment, not empty,
/// not `.` or `..`, without `/` or `\\`.
pub fn is_safe_agent_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn constant_time_eq_matches_only_identical_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn generated_keys_are_64_hex_and_differ() {
        let a = generate_api_key().unwrap();
        let b = generate_api_key().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn authorization_rules() {
        assert_eq!(
            check_authorization(&headers(&[]), "k").unwrap_err().message,
            "missing Authorization header"
        );
        assert_eq!(
            check_authorization(&headers(&[("authorization", b"Bearer k")]), "k")
                .unwrap_err()
                .message,
            "invalid API key"
        );
        // The HTTP parser already refuses most control characters; the
        // check stands on its own all the same.
        for raw in [&b"k\x7f"[..], b"k\x01", b"\nk"] {
            let bad = check_authorization_value(Some(raw), "k").unwrap_err();
            assert_eq!((bad.status, bad.error), (400, "bad_request"));
        }
        assert!(check_authorization(&headers(&[("authorization", b"k")]), "k").is_ok());
        assert!(check_authorization(&headers(&[("authorization", b"a\tb")]), "a\tb").is_ok());
    }

    #[test]
    fn safe_agent_ids() {
        assert!(is_safe_agent_id("agent-1"));
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(!is_safe_agent_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn agent_id_prefers_x_agent_id_then_strips_prefixes() {
        assert_eq!(
            agent_id(&headers(&[("x-agent-id", b"a1"), ("authorization", b"k")])).as_deref(),
            Some("a1")
        );
        assert_eq!(
            agent_id(&headers(&[("authorization", b"Bearer tok ")])).as_deref(),
            Some("tok")
        );
        assert_eq!(
            agent_id(&headers(&[("authorization", b"Agent x")])).as_deref(),
            Some("x")
        );
        assert_eq!(agent_id(&headers(&[])), None);
    }
}
