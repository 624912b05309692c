//! Serving the proxy: the listen address (`host:port`, `[v6]:port`,
//! `:port`), plain HTTP or TLS with the generated certificate (the
//! gateway's TLS listener), and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::handler::{ProxyState, router};

/// Why the proxy could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid listen address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error("failed to listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// The socket address to bind for a listen address: `host:port`,
/// `[v6]:port`, or `:port` (every interface).
///
/// # Errors
/// An address without a port, or one that does not resolve.
pub async fn resolve_listen(address: &str) -> Result<SocketAddr, ServeError> {
    let error = |message: &str| ServeError::Address {
        address: address.to_owned(),
        message: message.to_owned(),
    };
    let normalized = match address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => address.to_owned(),
    };
    let Some((_, port)) = normalized.rsplit_once(':') else {
        return Err(error("expected host:port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(error("the port is not a number from 0 to 65535"));
    }
    let mut resolved = tokio::net::lookup_host(normalized.as_str())
        .await
        .map_err(|e| error(&e.to_string()))?;
    // Prefer IPv4 for names such as `localhost`, as clients do first.
    let all: Vec<SocketAddr> = resolved.by_ref().collect();
    all.iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| all.first())
        .copied()
        .ok_or_else(|| error("the host does not resolve"))
}

/// A host:port clients can use for a listening address: wildcard hosts
/// become `localhost`.
pub fn client_address(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct RunningProxy {
    local_addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningProxy {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` with `--tls`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Stops accepting and waits for open requests to finish.
    ///
    /// # Errors
    /// The server task's I/O error, if it failed.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }

    /// Waits until the server task ends (it ends only when stopped or on an
    /// I/O error).
    ///
    /// # Errors
    /// The server task's I/O error.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

/// Binds `address` and serves the proxy (TLS when `tls` is given).
///
/// # Errors
/// An address that does not resolve or cannot be bound.
pub async fn serve(
    address: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<ProxyState>,
) -> Result<RunningProxy, ServeError> {
    let addr = resolve_listen(address).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            address: address.to_owned(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        address: address.to_owned(),
        source,
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state);
    let shutdown = async move {
        let _ = stopped.await;
    };
    let is_tls = tls.is_some();
    let task = match tls {
        None => tokio::spawn(async move {
            // Without TCP_NODELAY a small answer written in two pieces
            // waits for the client's delayed ACK (about 40 ms).
            let listener = axum::serve::ListenerExt::tap_io(listener, set_nodelay);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }),
        Some(config) => {
            let listener = guardway_gateway::tls::TlsListener::new(listener, (*config).clone())
                .map_err(|source| ServeError::Bind {
                    address: address.to_owned(),
                    source,
                })?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
    };
    Ok(RunningProxy {
        local_addr,
        tls: is_tls,
        stop: Some(stop),
        task,
    })
}

/// Sets TCP_NODELAY on an accepted connection.
fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_addresses() {
        assert_eq!(
            resolve_listen("127.0.0.1:8080").await.unwrap(),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve_listen(":9000").await.unwrap(),
            "0.0.0.0:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve_listen("[::1]:8443").await.unwrap(),
            "[::1]:8443".parse::<SocketAddr>().unwrap()
        );
        assert!(
            resolve_listen("localhost:8443")
                .await
                .unwrap()
                .ip()
                .is_loopback()
        );
        for bad in ["8080", "127.0.0.1", "127.0.0.1:port", "127.0.0.1:70000"] {
            let err = resolve_listen(bad).await.unwrap_err();
            assert!(
                err.to_string().starts_with("invalid listen address"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap());
        set_nodelay(&mut accepted);
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn client_addresses_name_localhost_for_wildcards() {
        assert_eq!(
            client_address("0.0.0.0:8443".parse().unwrap()),
            "localhost:8443"
        );
        assert_eq!(
            client_address("[::]:8443".parse().unwrap()),
            "localhost:8443"
        );
        assert_eq!(
            client_address("127.0.0.1:8443".parse().unwrap()),
            "127.0.0.1:8443"
        );
    }
}
