//! HMAC request signing on the MCP routes (gateway.md §3.3): the
//! `X-MCP-Timestamp` window, single-use `X-MCP-Nonce`s and the
//! `X-MCP-Signature` check, with the spec's 401 texts.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use parking_lot::Mutex;

/// Header carrying the Unix time (seconds) of the request.
pub const TIMESTAMP_HEADER: &str = "x-mcp-timestamp";
/// Header carrying a single-use random string.
pub const NONCE_HEADER: &str = "x-mcp-nonce";
/// Header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-mcp-signature";

/// Largest accepted distance between the request's timestamp and now.
pub const TIMESTAMP_WINDOW: Duration = Duration::from_secs(30);
/// How long a used nonce is remembered (covers the whole window on both sides).
pub const NONCE_RETENTION: Duration = Duration::from_secs(60);
/// Most nonces remembered at once; beyond it signed requests are refused
/// (503) until older nonces age out, so memory stays bounded.
pub const MAX_REMEMBERED_NONCES: usize = 100_000;

/// Why a request failed the HMAC check. `Display` is the text the client
/// gets (401 unless [`HmacRejection::status`] says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HmacRejection {
    #[error("missing HMAC signature headers")]
    MissingHeaders,
    #[error("invalid HMAC timestamp")]
    InvalidTimestamp,
    #[error("HMAC timestamp out of acceptable window")]
    OutsideWindow,
    #[error("HMAC nonce already used (replay detected)")]
    NonceReused,
    #[error("invalid HMAC signature")]
    InvalidSignature,
    #[error("too many HMAC nonces in flight; retry shortly")]
    NonceCapacity,
}

impl HmacRejection {
    /// HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            HmacRejection::NonceCapacity => 503,
            _ => 401,
        }
    }
}

/// Nonces seen in the last [`NONCE_RETENTION`], keyed by their SHA-256 so
/// each costs the same whatever its length.
#[derive(Debug, Default)]
struct NonceMemory {
    seen: HashMap<[u8; 32], Instant>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl NonceMemory {
    fn forget_older_than(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front().copied() {
            if now.saturating_duration_since(at) < NONCE_RETENTION {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }

    /// Records `nonce`; `Err` when it was used within the retention time.
    fn record(&mut self, nonce: &str, now: Instant) -> Result<(), HmacRejection> {
        self.forget_older_than(now);
        let key = sha256(nonce.as_bytes());
        if self.seen.contains_key(&key) {
            return Err(HmacRejection::NonceReused);
        }
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            return Err(HmacRejection::NonceCapacity);
        }
        self.seen.insert(key, now);
        self.order.push_back((key, now));
        Ok(())
    }
}

/// Checks signed requests against one shared secret.
///
/// Thread-safe (`Send + Sync`): the nonce memory is behind a mutex held for
/// one map update. Share it as `Arc`.
pub struct HmacVerifier {
    key: ring::hmac::Key,
    nonces: Mutex<NonceMemory>,
}

impl std::fmt::Debug for HmacVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacVerifier").finish_non_exhaustive()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The signed text: `timestamp\nnonce\npath\nhex(sha256(body))`.
pub fn signing_input(timestamp: &str, nonce: &str, path: &str, body: &[u8]) -> String {
    format!("{timestamp}\n{nonce}\n{path}\n{}", hex(&sha256(body)))
}

/// The hex HMAC-SHA256 signature of a request (what clients send as
/// `X-MCP-Signature`).
pub fn sign(secret: &[u8], timestamp: &str, nonce: &str, path: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input(timestamp, nonce, path, body).as_bytes());
    hex(tag.as_ref())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl HmacVerifier {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            nonces: Mutex::new(NonceMemory::default()),
        }
    }

    /// Checks one request at the current time.
    ///
    /// # Errors
    /// The first failing rule: headers, timestamp format, window, signature,
    /// then nonce reuse (a nonce is only remembered once its request is
    /// correctly signed, so forged requests cannot fill the memory).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: &[u8],
    ) -> Result<(), HmacRejection> {
        self.verify_at(headers, path, body, unix_now(), Instant::now())
    }

    fn verify_at(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: &[u8],
        now_unix: i64,
        now: Instant,
    ) -> Result<(), HmacRejection> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty())
        };
        let (Some(timestamp), Some(nonce), Some(signature)) = (
            header(TIMESTAMP_HEADER),
            header(NONCE_HEADER),
            header(SIGNATURE_HEADER),
        ) else {
            return Err(HmacRejection::MissingHeaders);
        };
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| HmacRejection::InvalidTimestamp)?;
        let window = i64::try_from(TIMESTAMP_WINDOW.as_secs()).unwrap_or(i64::MAX);
        if seconds.abs_diff(now_unix) > window.unsigned_abs() {
            return Err(HmacRejection::OutsideWindow);
        }
        let signature = unhex(signature).ok_or(HmacRejection::InvalidSignature)?;
        let input = signing_input(timestamp, nonce, path, body);
        ring::hmac::verify(&self.key, input.as_bytes(), &signature)
            .map_err(|_| HmacRejection::InvalidSignature)?;
        self.nonces.lock().record(nonce, now)
    }

    /// Nonces currently remembered.
    pub fn remembered_nonces(&self) -> usize {
        self.nonces.lock().seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"shared-secret";
    const NOW: i64 = 1_750_000_000;

    fn signed(timestamp: &str, nonce: &str, path: &str, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, timestamp.parse().unwrap());
        headers.insert(NONCE_HEADER, nonce.parse().unwrap());
        headers.insert(
            SIGNATURE_HEADER,
            sign(SECRET, timestamp, nonce, path, body).parse().unwrap(),
        );
        headers
    }

    fn check(v: &HmacVerifier, headers: &HeaderMap, body: &[u8]) -> Result<(), HmacRejection> {
        v.verify_at(headers, "/mcp/alpha", body, NOW, Instant::now())
    }

    #[test]
    fn signing_input_hashes_the_body() {
        assert_eq!(
            signing_input("1", "n", "/mcp", b""),
            "1\nn\n/mcp\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 4231 test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_correctly_signed_request_passes_once() {
        let v = HmacVerifier::new(SECRET);
        let headers = signed(&NOW.to_string(), "n-1", "/mcp/alpha", b"{}");
        assert_eq!(check(&v, &headers, b"{}"), Ok(()));
        assert_eq!(v.remembered_nonces(), 1);
        assert_eq!(
            check(&v, &headers, b"{}").unwrap_err().to_string(),
            "HMAC nonce already used (replay detected)"
        );
    }

    #[test]
    fn missing_headers() {
        let v = HmacVerifier::new(SECRET);
        let mut headers = signed(&NOW.to_string(), "n", "/mcp/alpha", b"");
        headers.remove(NONCE_HEADER);
        let err = check(&v, &headers, b"").unwrap_err();
        assert_eq!(err.to_string(), "missing HMAC signature headers");
        assert_eq!(err.status(), 401);
        assert_eq!(
            check(&v, &HeaderMap::new(), b"").unwrap_err(),
            HmacRejection::MissingHeaders
        );
    }

    #[test]
    fn invalid_timestamp() {
        let v = HmacVerifier::new(SECRET);
        for ts in ["soon", "1.5", "0x10"] {
            let headers = signed(ts, "n", "/mcp/alpha", b"");
            assert_eq!(
                check(&v, &headers, b"").unwrap_err().to_string(),
                "invalid HMAC timestamp"
            );
        }
    }

    #[test]
    fn timestamp_window_is_30_seconds_both_ways() {
        let v = HmacVerifier::new(SECRET);
        for (i, offset) in [-30i64, 30].into_iter().enumerate() {
            let headers = signed(
                &(NOW + offset).to_string(),
                &format!("w{i}"),
                "/mcp/alpha",
                b"",
            );
            assert_eq!(check(&v, &headers, b""), Ok(()));
        }
        for offset in [-31i64, 31, -100_000] {
            let headers = signed(&(NOW + offset).to_string(), "late", "/mcp/alpha", b"");
            assert_eq!(
                check(&v, &headers, b"").unwrap_err().to_string(),
                "HMAC timestamp out of acceptable window"
            );
        }
        // i64::MIN must not overflow the distance computation.
        let headers = signed(&i64::MIN.to_string(), "min", "/mcp/alpha", b"");
        assert_eq!(check(&v, &headers, b""), Err(HmacRejection::OutsideWindow));
    }

    #[test]
    fn invalid_signature() {
        let v = HmacVerifier::new(SECRET);
        let ts = NOW.to_string();
        // Signed for another body, another path, with another secret, not hex.
        let other_body = signed(&ts, "a", "/mcp/alpha", b"{\"x\":1}");
        let other_path = signed(&ts, "b", "/mcp/beta", b"");
        let mut other_secret = signed(&ts, "c", "/mcp/alpha", b"");
        other_secret.insert(
            SIGNATURE_HEADER,
            sign(b"other", &ts, "c", "/mcp/alpha", b"").parse().unwrap(),
        );
        let mut not_hex = signed(&ts, "d", "/mcp/alpha", b"");
        not_hex.insert(SIGNATURE_HEADER, "zz".parse().unwrap());
        for headers in [other_body, other_path, other_secret, not_hex] {
            assert_eq!(
                check(&v, &headers, b"").unwrap_err().to_string(),
                "invalid HMAC signature"
            );
        }
        // Failed requests leave no nonce behind.
        assert_eq!(v.remembered_nonces(), 0);
    }

    #[test]
    fn nonces_are_forgotten_after_the_retention_time() {
        let mut memory = NonceMemory::default();
        let start = Instant::now();
        memory.record("n", start).unwrap();
        assert_eq!(
            memory.record("n", start + Duration::from_secs(59)),
            Err(HmacRejection::NonceReused)
        );
        assert_eq!(memory.record("n", start + NONCE_RETENTION), Ok(()));
        assert_eq!(memory.seen.len(), 1);
        assert_eq!(memory.order.len(), 1);
    }

    #[test]
    fn nonce_memory_is_bounded() {
        let mut memory = NonceMemory::default();
        let start = Instant::now();
        for i in 0..MAX_REMEMBERED_NONCES {
            memory.record(&i.to_string(), start).unwrap();
        }
        let err = memory.record("one-more", start).unwrap_err();
        assert_eq!((err, err.status()), (HmacRejection::NonceCapacity, 503));
        memory.record("one-more", start + NONCE_RETENTION).unwrap();
        assert_eq!(memory.seen.len(), 1);
    }
}
