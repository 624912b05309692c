//! The HTTP client every HTTP backend connection (and the GitHub API
//! look-up) uses: `reqwest` over rustls with the `ring` provider, trusting
//! the system's roots plus the Mozilla set, plus the certificates of
//! `SSL_CERT_FILE` when it is set.
//!
//! Roots, loaded once per process:
//! - `rustls-native-certs`: the system store (on Debian `/etc/ssl/certs`),
//!   or, when `SSL_CERT_FILE` / `SSL_CERT_DIR` are set, those instead;
//! - `webpki-root-certs`: the Mozilla roots compiled into the binary, so
//!   public CAs are trusted even when `SSL_CERT_FILE` replaces the store or
//!   the machine has no CA bundle. Both work offline.

use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;

/// Installs `ring` as the process's default rustls provider (once; a
/// provider installed earlier by someone else is kept). Every `reqwest`
/// client built without a preconfigured TLS config needs it: call it
/// before building one (backends do when they are created).
pub fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The trusted roots, loaded on first use; how many came from each source
/// is logged once.
fn root_store() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let (mozilla, _) =
                roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "cannot read some system CA certificates");
            }
            let (system, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::info!(
                mozilla,
                system,
                ignored,
                ssl_cert_file = std::env::var("SSL_CERT_FILE").ok(),
                "loaded trusted CA roots for https backends"
            );
            Arc::new(roots)
        })
        .clone()
}

/// A new client for one backend connection. Idle connections are not
/// pooled (a half-read body left in the pool stalls the next request);
/// redirects are not followed (a POST would lose its body or its headers
/// would reach another origin).
pub fn build_http_client() -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_root_certificates(root_store())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A client for the GitHub REST API look-ups (`github`): the same roots,
/// redirects followed (at most 10, as a renamed repository answers 301),
/// proxies from the environment.
pub fn build_api_client() -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot configure TLS: {e}"))?
        .with_root_certificates(root_store())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The configured static headers, validated.
pub fn header_map(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("invalid header name {name:?}: {e}"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|e| format!("invalid value for header {name}: {e}"))?;
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_builds_with_ring_and_roots() {
        build_http_client().unwrap();
        assert!(!root_store().is_empty());
        // A second client reuses the loaded roots.
        build_http_client().unwrap();
        build_api_client().unwrap();
    }

    #[test]
    fn header_map_rejects_bad_names_and_values() {
        let ok = header_map(&[("X-A".to_owned(), "b".to_owned())].into()).unwrap();
        assert_eq!(ok.get("x-a").unwrap(), "b");
        let err = header_map(&[("bad name".to_owned(), "b".to_owned())].into()).unwrap_err();
        assert!(err.contains("invalid header name"), "{err}");
        let err = header_map(&[("X-A".to_owned(), "a\nb".to_owned())].into()).unwrap_err();
        assert!(err.contains("invalid value for header x-a"), "{err}");
    }
}
