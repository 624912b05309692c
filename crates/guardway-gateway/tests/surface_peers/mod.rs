//! Real peers of the HTTP-surface tests: the Python MCP SDK client
//! (`mcp_call.py`), certificates generated at test time with rcgen, and
//! rustls client configurations for reqwest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;

/// What the Python client printed, and its stderr (SDK warnings).
pub struct PythonCall {
    pub output: Value,
    pub stderr: String,
}

/// One Python MCP SDK session on `url`: initialize, tools/list, one
/// tools/call, end of session (DELETE).
pub async fn python_call(
    python: &Path,
    url: &str,
    headers: Value,
    tool: &str,
    args: Value,
    ca_file: Option<&Path>,
) -> PythonCall {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/surface_peers/mcp_call.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .env("MCP_URL", url)
        .env("MCP_HEADERS", headers.to_string())
        .env("MCP_TOOL", tool)
        .env("MCP_ARGS", args.to_string());
    if let Some(ca) = ca_file {
        command.env("MCP_CA_FILE", ca);
    }
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    PythonCall {
        output: serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("bad client output {stdout:?}: {e}")),
        stderr,
    }
}

/// One `echo` of `text` on `url` by the official Python SDK of every major
/// version the tests hold (1.x and 2.x), each a session of its own: each
/// must answer `[expected]`.
pub async fn echo_with_every_sdk(url: &str, text: &str, expected: &str) {
    for sdk in crate::common::PythonSdk::ALL {
        let call = python_call(
            &sdk.python(),
            url,
            serde_json::json!({"Authorization": crate::common::API_KEY}),
            "echo",
            serde_json::json!({ "text": text }),
            None,
        )
        .await;
        assert_eq!(call.output["sdk"], sdk.major(), "{}", call.output);
        assert_eq!(
            call.output["texts"],
            serde_json::json!([expected]),
            "{}",
            call.output
        );
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate, all signed by the CA, written as PEM files in `dir`.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_pem: String,
    client_pem: (String, String),
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "guardway test");
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params.extended_key_usages.push(usage);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "guardway test CA");
        params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let server = leaf(
            &issuer,
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &issuer,
            vec!["agent.test".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Self {
            ca_cert: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server.0),
            server_key: write("server-key.pem", &server.1),
            client_cert: write("client.pem", &client.0),
            client_key: write("client-key.pem", &client.1),
            ca_pem: ca.pem(),
            client_pem: client,
            dir,
        }
    }

    /// `GET /health` over TLS trusting this CA, presenting the client
    /// certificate of `identity` when given. See [`TestPki::https_request`].
    pub async fn https_get(
        &self,
        port: u16,
        path: &str,
        identity: Option<&TestPki>,
    ) -> std::io::Result<(u16, String)> {
        self.https_request(port, "GET", path, &[], "", identity)
            .await
    }

    /// One HTTP/1.1 request over TLS to `127.0.0.1:port`, trusting this CA
    /// and presenting the client certificate of `identity` (possibly from
    /// another CA); the status and body of the answer. A refused handshake
    /// or client certificate is an `Err` (with TLS 1.3 the server's refusal
    /// of a client certificate arrives on the first read).
    pub async fn https_request(
        &self,
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        identity: Option<&TestPki>,
    ) -> std::io::Result<(u16, String)> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if let Some(identity) = identity {
            let chain = CertificateDer::pem_slice_iter(identity.client_pem.0.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(identity.client_pem.1.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        tls.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}
