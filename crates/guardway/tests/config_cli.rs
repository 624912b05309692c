//! The real `guardway` binary: `config check` on good and bad files, and the
//! serve flags accepted both at the root command and under `guardway serve`.
//! Every serve invocation here fails during configuration, before anything
//! is launched or bound.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn guardway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guardway"));
    command
        .current_dir(repo_root())
        .env_remove("MCP_GATEWAY_GUARDS_MODE")
        .env_remove("DEFINED_BY_ENV_FILE")
        .stdin(Stdio::null());
    command
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `contents` to a fresh file named `name` under the test temp dir.
fn write_file(name: &str, contents: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config_cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn run_with_stdin(command: &mut Command, input: &str) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const BAD_TOML: &str = "[gateway]\nport = 0\n[servers.s]\ncommand = \"x\"\nbogus = 1\n";

const GOOD_JSON: &str = r#"{
  "gateway": {"port": 8080, "domain": "localhost", "agentId": "key"},
  "mcpServers": {"github": {"container": "ghcr.io/github/github-mcp-server:latest", "env": {"T": ""}}}
}"#;

#[test]
fn config_check_accepts_the_example() {
    let (code, stdout, stderr) =
        run(guardway().args(["config", "check", "examples/guardway.toml"]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.ends_with("ok\n"), "{stdout}");
    assert!(stdout.contains("servers: 1"), "{stdout}");
    assert!(
        stdout.contains("github: stdio target/debug/guardway-demo-backend (guard sample)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "sample: wasm guards/sample-guard/target/wasm32-wasip1/release/sample_guard.wasm"
        ),
        "{stdout}"
    );
}

#[test]
fn config_check_rejects_a_bad_toml_file_naming_each_field() {
    let path = write_file("bad.toml", BAD_TOML);
    let (code, stdout, stderr) = run(guardway().args(["config", "check"]).arg(&path));
    assert_eq!(code, 1);
    assert!(!stdout.contains("ok"), "{stdout}");
    assert!(
        stderr.contains("Configuration error at configuration: configuration contains unrecognized field(s): servers.s.bogus"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Configuration error at gateway.port: port must be between 1 and 65535, got 0"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Suggestion: "), "{stderr}");
}

#[test]
fn config_check_reports_toml_syntax_errors_with_position() {
    let path = write_file("syntax.toml", "[servers.s]\ncommand = \n");
    let (code, _, stderr) = run(guardway().args(["config", "check"]).arg(&path));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Configuration error at line 2, column"),
        "{stderr}"
    );
}

#[test]
fn config_check_reads_json_by_extension_or_flag() {
    let json_path = write_file("good.json", GOOD_JSON);
    let (code, stdout, stderr) = run(guardway().args(["config", "check"]).arg(&json_path));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("github: stdio docker run --rm -i -e NO_COLOR=1 -e TERM=dumb -e PYTHONUNBUFFERED=1 -e T ghcr.io/github/github-mcp-server:latest"), "{stdout}");

    let txt_path = write_file("good-json.txt", GOOD_JSON);
    let (code, _, stderr) = run(guardway()
        .args(["config", "check", "--json"])
        .arg(&txt_path));
    assert_eq!(code, 0, "{stderr}");
    // Without --json the same file is read as TOML and fails.
    let (code, _, _) = run(guardway().args(["config", "check"]).arg(&txt_path));
    assert_eq!(code, 1);
}

#[test]
fn config_check_rejects_a_bad_json_file() {
    let path = write_file(
        "bad.json",
        r#"{"gateway": {"port": 8080, "domain": "localhost", "agentId": "k"},
            "mcpServers": {"s": {"mounts": ["/a:/b"]}, "h": {"type": "http", "url": "http://x", "mounts": []}}}"#,
    );
    let (code, _, stderr) = run(guardway().args(["config", "check"]).arg(&path));
    assert_eq!(code, 1);
    for expected in [
        "Configuration error at mcpServers.s.container: 'container' is required for stdio servers",
        "Configuration error at mcpServers.h.mounts: 'mounts' is not allowed for HTTP servers",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from {stderr}"
        );
    }
}

#[test]
fn config_check_undefined_variable_and_env_file() {
    let path = write_file(
        "vars.json",
        r#"{"gateway": {"port": 8080, "domain": "localhost", "agentId": "${DEFINED_BY_ENV_FILE}"}, "mcpServers": {}}"#,
    );
    let (code, _, stderr) = run(guardway().args(["config", "check"]).arg(&path));
    assert_eq!(code, 1);
    assert!(stderr.contains(
        "Configuration error at configuration: undefined environment variable referenced: DEFINED_BY_ENV_FILE\nSuggestion: Set the environment variable DEFINED_BY_ENV_FILE before starting the gateway"
    ), "{stderr}");

    let env_file = write_file("vars.env", "# the key\nDEFINED_BY_ENV_FILE=from-file\n");
    let (code, stdout, stderr) = run(guardway()
        .args(["config", "check", "--env"])
        .arg(&env_file)
        .arg(&path));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("ok\n"));
}

#[test]
fn config_check_of_a_missing_file_fails() {
    let (code, _, stderr) = run(guardway().args(["config", "check", "/nonexistent/x.toml"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("/nonexistent/x.toml"), "{stderr}");
}

#[test]
fn bad_config_gives_the_same_error_at_the_root_and_under_serve() {
    let path = write_file("bad-serve.toml", BAD_TOML);
    let (root_code, _, root_err) = run(guardway().arg("--config").arg(&path).arg("--routed"));
    let (serve_code, _, serve_err) = run(guardway()
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--routed"));
    assert_eq!(root_code, 1);
    assert_eq!(serve_code, 1);
    assert!(
        root_err.contains("Configuration error at gateway.port"),
        "{root_err}"
    );
    assert_eq!(root_err, serve_err);
    // Short flags too.
    let (code, _, err) = run(guardway().arg("-c").arg(&path).args(["-l", "0.0.0.0:8000"]));
    assert_eq!(code, 1);
    assert_eq!(err, root_err);
}

/// Every flag of the reference gateway plus guardway's own; a bad
/// `--guards-mode` makes start-up stop right after the flags were resolved.
fn every_flag(config: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config",
        "CONFIG",
        "--listen",
        "127.0.0.1:0",
        "--routed",
        "--log-dir",
        "/tmp/guardway-test-logs/logs",
        "--payload-dir",
        "/tmp/jq-payloads",
        "--payload-path-prefix",
        "/p",
        "--payload-size-threshold",
        "1000",
        "--url-domain-audit",
        "--wasm-cache-dir",
        "/tmp/guardway-test-cache",
        "--wasm-cache-max-bytes",
        "1000000",
        "--guards-sink-server-ids",
        "a,b",
        "--allowonly-scope-owner",
        "acme",
        "--allowonly-scope-repo",
        "web",
        "--allowonly-min-integrity",
        "approved",
        "--sequential-launch",
        "--shutdown-timeout",
        "10s",
        "--hmac-secret",
        "s",
        "--otlp-endpoint",
        "https://otel",
        "--otlp-service-name",
        "svc",
        "--otlp-sample-rate",
        "0.5",
        "--require-guards",
        "--no-wasm-cache=false",
        "--validate-env=false",
        "-vv",
        "--guards-mode",
        "bogus",
    ]
    .map(str::to_owned)
    .to_vec();
    args[1] = config.display().to_string();
    args
}

#[test]
fn every_flag_is_accepted_at_the_root_and_under_serve() {
    let config = repo_root().join("examples/guardway.toml");
    let expected =
        "invalid value \"bogus\" for --guards-mode: expected strict, filter or propagate";
    let (code, _, stderr) = run(guardway().args(every_flag(&config)));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
    let (code, _, stderr) = run(guardway().arg("serve").args(every_flag(&config)));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn guardway_flags_and_tls_flags_are_accepted() {
    let config = repo_root().join("examples/guardway.toml");
    let (code, _, stderr) = run(guardway().arg("--config").arg(&config).args([
        "--unified",
        "--stdio",
        "--tls-cert",
        "c.pem",
        "--tls-ca",
        "ca.pem",
    ]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--tls-cert and --tls-key must be given together"),
        "{stderr}"
    );
}

#[test]
fn routed_and_unified_are_exclusive() {
    for args in [
        &["--config", "x.toml", "--routed", "--unified"][..],
        &["serve", "--config-stdin", "--unified", "--routed=true"],
    ] {
        let (code, _, stderr) = run(guardway().args(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        // The reference's wording, word for word.
        assert_eq!(
            stderr,
            "if any flags in the group [routed unified] are set none of the others can be; [routed unified] were all set\n",
            "{args:?}"
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, _, stderr) = run(guardway().args(["--config", "x.toml", "--no-such-flag"]));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn config_stdin_wins_over_config() {
    let good = repo_root().join("examples/guardway.toml");
    let (code, _, stderr) = run_with_stdin(
        guardway().arg("--config").arg(&good).arg("--config-stdin"),
        r#"{"gateway": {"port": 0, "domain": "localhost", "agentId": "k"}, "mcpServers": {}}"#,
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "Configuration error at gateway.port: port must be between 1 and 65535, got 0"
        ),
        "{stderr}"
    );
}

#[test]
fn env_file_is_loaded_before_variables_are_read() {
    let config = repo_root().join("examples/guardway.toml");
    let env_file = write_file("mode.env", "MCP_GATEWAY_GUARDS_MODE=sideways\n");
    let (code, _, stderr) = run(guardway()
        .arg("--config")
        .arg(&config)
        .arg("--env")
        .arg(&env_file));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("invalid value \"sideways\" for MCP_GATEWAY_GUARDS_MODE"),
        "{stderr}"
    );
}

/// The reference's own wording, alone on the first line of stderr (scripts
/// match it), then guardway's hint; exit 1; nothing on stdout.
#[test]
fn missing_configuration_uses_the_reference_wording() {
    for args in [&["--routed"][..], &[], &["serve", "--unified"]] {
        let (code, stdout, stderr) = run(guardway().args(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        let mut lines = stderr.lines();
        assert_eq!(
            lines.next(),
            Some("at least one of the flags in the group [config config-stdin] is required"),
            "{args:?}: {stderr}"
        );
        assert!(
            lines
                .next()
                .is_some_and(|hint| hint.contains("--config <file> (TOML) or --config-stdin")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn validate_env_reports_missing_variables() {
    let config = repo_root().join("examples/guardway.toml");
    let (code, _, stderr) = run(guardway()
        .arg("--config")
        .arg(&config)
        .arg("--validate-env")
        .env("MCP_GATEWAY_PORT", "8000")
        .env("MCP_GATEWAY_DOMAIN", "localhost")
        .env_remove("MCP_GATEWAY_AGENT_ID"));
    assert_eq!(code, 1);
    assert!(stderr.contains("environment validation failed"), "{stderr}");
    assert!(
        stderr.contains("required environment variable MCP_GATEWAY_AGENT_ID is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("MCP_GATEWAY_PORT is not set"), "{stderr}");
}
