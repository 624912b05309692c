//! What stops a gateway from starting or serving (`GatewayError`). Per-call
//! failures of a backend are `crate::backend::error::BackendError`.

/// A failure that stops the gateway from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the start-up document to stdout: {source}")]
    StartupDocument { source: std::io::Error },
    #[error("cannot serve over stdin/stdout: {message}")]
    Stdio { message: String },
    #[error("http server failed: {source}")]
    Serve { source: std::io::Error },
    #[error("cannot generate an api key: {message}")]
    KeyGeneration { message: String },
    #[error("{message}")]
    Guards { message: String },
    #[error(transparent)]
    Tls {
        #[from]
        source: crate::agent::tls::TlsError,
    },
}
