//! The TLS listener (gateway.md §3.3): a rustls server configuration from
//! `--tls-cert`/`--tls-key` (TLS 1.2 and 1.3 only), client certificates
//! required and verified against `--tls-ca` when given, and an
//! [`axum::serve::Listener`] that hands out connections once their
//! handshake completed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsOptions;

/// Longest wait for a client to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the HTTP server to pick them up.
const ACCEPT_QUEUE: usize = 64;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {cause}")]
    Read {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("invalid {what} {path}: {message}")]
    InvalidPem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS key {path} holds no PEM private key: {message}")]
    NoPrivateKey { path: PathBuf, message: String },
    #[error("client CA certificate {path} is unusable: {message}")]
    ClientCa { path: PathBuf, message: String },
    #[error("TLS certificate and key do not form a usable server identity: {message}")]
    Identity { message: String },
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        what,
        path: path.to_owned(),
        cause,
    })
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::InvalidPem {
            what,
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "TLS key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| TlsError::NoPrivateKey {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// The rustls server configuration for `options`: TLS 1.2 and 1.3 with the
/// ring provider, HTTP/1.1 over ALPN, and client certificates required and
/// verified when a client CA is given.
///
/// # Errors
/// When a file cannot be read or parsed, or the key does not match.
pub fn server_config(options: &TlsOptions) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&options.cert, "TLS certificate")?;
    let key = private_key(&options.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Identity {
            message: error.to_string(),
        })?;
    let builder = match &options.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client CA certificate")? {
                roots.add(cert).map_err(|error| TlsError::ClientCa {
                    path: ca.clone(),
                    message: error.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|error| TlsError::ClientCa {
                path: ca.clone(),
                message: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| TlsError::Identity {
            message: error.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A TCP listener serving TLS: a background task accepts connections and
/// runs each handshake in its own task (bounded by [`HANDSHAKE_TIMEOUT`]),
/// so a slow or silent client never delays others; failed handshakes are
/// logged and dropped. The task ends when the listener is dropped.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`.
    pub fn new(listener: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(Self { local_addr, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "accepting a TCP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        crate::agent::set_nodelay(&stream);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, cert: &str, key: &str, ca: Option<&str>) -> TlsOptions {
        TlsOptions {
            cert: dir.join(cert),
            key: dir.join(key),
            client_ca: ca.map(|ca| dir.join(ca)),
        }
    }

    #[test]
    fn unreadable_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = server_config(&options(dir.path(), "missing.pem", "k.pem", None)).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read TLS certificate"),
            "{err}"
        );
        std::fs::write(dir.path().join("empty.pem"), "no pem here").unwrap();
        let err = server_config(&options(dir.path(), "empty.pem", "k.pem", None)).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }
}
