//! The `guardway proxy` command itself: its help lists every flag, bad
//! flags and policies stop it with a clear error, `--tls` writes the
//! reference's files and serves them (extra names with `--tls-dns-name`),
//! SIGTERM stops it cleanly.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

fn run(args: &[&str]) -> Output {
    let mut command = proxy_command();
    command.args(args);
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_flag() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--guard-wasm",
        "--policy",
        "--github-token",
        "-l, --listen",
        "--log-dir",
        "--wasm-cache-dir",
        "--guards-mode",
        "--github-api-url",
        "--force-public-repos",
        "--tls",
        "--tls-dir",
        "--tls-dns-name",
        "--trusted-bots",
        "--trusted-users",
        "--upstream-timeout",
        "--otlp-endpoint",
        "--otlp-service-name",
        "--otlp-sample-rate",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("127.0.0.1:8080"), "{help}");
    assert!(help.contains("MCP_GATEWAY_GUARD_POLICY_JSON"), "{help}");
}

#[test]
fn bad_flags_and_policies_are_refused() {
    let guard = sample_guard();
    let guard = guard.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--guard-wasm",
                guard,
                "--tls-dns-name",
                "x.test",
                "--log-dir",
                log_dir,
            ],
            "--tls-dns-name requires --tls",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--guards-mode",
                "lenient",
                "--log-dir",
                log_dir,
            ],
            "invalid --guards-mode flag",
        ),
        (
            &["--log-dir", log_dir],
            "required flag(s) \"guard-wasm\" not set",
        ),
        (
            &[
                "--guard-wasm",
                "/nonexistent/guard.wasm",
                "--log-dir",
                log_dir,
            ],
            "/nonexistent/guard.wasm",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--policy",
                "{not json",
                "--log-dir",
                log_dir,
            ],
            "invalid policy JSON",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--policy",
                r#"{"allow-only": {"repos": [], "min-integrity": "none"}}"#,
                "--log-dir",
                log_dir,
            ],
            "policy",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--listen",
                "nowhere",
                "--log-dir",
                log_dir,
            ],
            "invalid listen address",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--upstream-timeout",
                "soon",
                "--log-dir",
                log_dir,
            ],
            "--upstream-timeout",
        ),
        (
            &[
                "--guard-wasm",
                guard,
                "--github-api-url",
                "ftp://x",
                "--log-dir",
                log_dir,
            ],
            "ftp://x",
        ),
    ];
    for (args, expected) in cases {
        let output = run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let text = stderr(&output);
        assert!(
            text.contains(expected),
            "{args:?}: {expected:?} not in:\n{text}"
        );
    }
}

#[test]
fn a_busy_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = run(&[
        "--guard-wasm",
        sample_guard().to_str().unwrap(),
        "--listen",
        &address,
        "--log-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!("failed to listen on {address}")),
        "{}",
        stderr(&output)
    );
}

/// A TLS client trusting only `ca.crt`, with `names` resolved to the proxy.
fn tls_client(ca: &[u8], names: &[(&str, std::net::SocketAddr)]) -> reqwest::blocking::Client {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth();
    let mut builder = reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy();
    for (name, addr) in names {
        builder = builder.resolve(name, *addr);
    }
    builder.build().unwrap()
}

use rustls_pki_types::pem::PemObject;

#[test]
fn tls_writes_the_reference_files_and_serves_them() {
    let mock = Mock::start();
    let proxy = Proxy::start(
        &mock,
        Some(&scoped_policy()),
        &["--tls", "--tls-dns-name", "proxy.test,gh.internal"],
    );
    assert!(proxy.url.starts_with("https://127.0.0.1:"), "{}", proxy.url);
    let banner = proxy.process.stderr();
    let ca_path = proxy.tls_dir.join("ca.crt");
    assert!(
        banner.contains(&format!("CA cert:   {}", ca_path.display())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("export GH_HOST=127.0.0.1:{}", proxy.port())),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("export SSL_CERT_FILE={}", ca_path.display())),
        "{banner}"
    );
    let ca = std::fs::read(&ca_path).unwrap();
    assert!(
        String::from_utf8_lossy(&std::fs::read(proxy.tls_dir.join("server.key")).unwrap())
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(proxy.tls_dir.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(proxy.tls_dir.join("server.crt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", proxy.port()).parse().unwrap();
    let v6: std::net::SocketAddr = format!("[::1]:{}", proxy.port()).parse().unwrap();
    let trusting = tls_client(
        &ca,
        &[
            ("localhost", addr),
            ("proxy.test", addr),
            ("gh.internal", addr),
        ],
    );
    for host in ["localhost", "127.0.0.1", "proxy.test", "gh.internal"] {
        let url = format!("https://{host}:{}/health", proxy.port());
        let response = trusting
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            response.json::<serde_json::Value>().unwrap(),
            json!({"status": "ok"})
        );
    }
    // ::1 is named in the certificate too (the listener is IPv4 here, so
    // the name is checked against a resolved IPv4 address).
    let _ = v6;
    // An untrusted client is refused by its own TLS check.
    let plain = client();
    assert!(plain.get(proxy.url("/health")).send().is_err());
}

#[test]
fn sigterm_stops_the_proxy_cleanly() {
    let mock = Mock::start();
    let mut proxy = Proxy::start(&mock, Some(&scoped_policy()), &[]);
    assert_eq!(json_of(get(&proxy.url("/health"))), json!({"status": "ok"}));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proxy.process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = proxy
        .process
        .wait_exit(Duration::from_secs(10))
        .expect("the proxy stops");
    assert!(exit.success(), "{exit:?}\n{}", proxy.process.stderr());
    // Everything logged is written before the process exits.
    let log = std::fs::read_to_string(proxy.log_dir.join("proxy.log")).unwrap();
    assert!(
        log.lines()
            .last()
            .is_some_and(|line| line.ends_with("[INFO] [proxy] Proxy shutting down")),
        "{log}"
    );
    // Where the guard compilation cache lives: said once.
    let cache_lines = proxy
        .process
        .stderr()
        .matches("WASM compilation cache directory")
        .count();
    assert_eq!(cache_lines, 1, "{}", proxy.process.stderr());
}
