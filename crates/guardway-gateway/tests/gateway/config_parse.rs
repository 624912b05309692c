//! Parsing and validation of both configuration formats through the public
//! API: every validation message, expansion, defaults and the docker argv.

use std::time::Duration;

use guardway_gateway::config::*;
use serde_json::{Value, json};

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

/// A JSON document with a valid gateway section and the given servers.
fn json_doc(servers: Value) -> String {
    json!({
        "gateway": {"port": 8080, "domain": "localhost", "agentId": "key"},
        "mcpServers": servers,
    })
    .to_string()
}

fn json_ok(text: &str) -> ParsedConfig {
    match parse_json(
        text,
        &env(&[("ACTIONS_ID_TOKEN_REQUEST_URL", "https://oidc")]),
    ) {
        Ok(parsed) => parsed,
        Err(err) => panic!("unexpected error: {err}"),
    }
}

/// The rendered error of a JSON document.
fn json_err(text: &str) -> String {
    parse_json(text, &env(&[])).unwrap_err().to_string()
}

fn toml_ok(text: &str) -> ParsedConfig {
    match parse_toml(text, &env(&[])) {
        Ok(parsed) => parsed,
        Err(err) => panic!("unexpected error: {err}"),
    }
}

fn toml_err(text: &str) -> String {
    parse_toml(text, &env(&[])).unwrap_err().to_string()
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

/// Asserts that `error` renders the configuration error `expected` (its
/// location and message).
fn assert_config_error(error: &str, expected: &str) {
    assert_contains(error, &format!("Configuration error at {expected}"));
}

/// A JSON document with a valid gateway section on port 80, `section`
/// holding `value`, and no servers.
fn json_doc_with(section: &str, value: &Value) -> String {
    json!({
        "gateway": {"port": 80, "domain": "localhost", "agentId": "k"},
        section: value,
        "mcpServers": {}
    })
    .to_string()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `docker` arguments: the fixed `run --rm -i` prefix with its three
/// environment settings, then `rest`.
fn docker_run(rest: &[&str]) -> Vec<String> {
    let mut argv = strings(&[
        "run",
        "--rm",
        "-i",
        "-e",
        "NO_COLOR=1",
        "-e",
        "TERM=dumb",
        "-e",
        "PYTHONUNBUFFERED=1",
    ]);
    argv.extend(strings(rest));
    argv
}

// ---------------------------------------------------------------- JSON: good

#[test]
fn spec_json_example_parses_into_the_model() {
    let text = r#"{
      "gateway": {"port": 8080, "domain": "localhost", "agentId": "${MCP_GATEWAY_AGENT_ID}"},
      "guards": {"gh": {"type": "wasm", "path": "/opt/guards/github.wasm"}},
      "mcpServers": {
        "github": {"container": "ghcr.io/github/github-mcp-server:latest",
          "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": ""}, "guard": "gh",
          "guard-policies": {"allow-only": {"repos": ["acme/*"], "min-integrity": "approved"}}},
        "safeoutputs": {"container": "ghcr.io/github/safe-outputs:latest",
          "guard-policies": {"write-sink": {"accept": ["private:acme"], "sink-visibility": "private"}}},
        "search": {"type": "http", "url": "https://search.example.com/mcp",
          "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}, "toolTimeout": 120, "tools": ["web_search"]}
      }
    }"#;
    let vars = env(&[
        ("MCP_GATEWAY_AGENT_ID", "agent-1"),
        ("SEARCH_TOKEN", "s3cr\"et"),
    ]);
    let parsed = parse_json(text, &vars).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let config = parsed.config;
    assert_eq!(config.gateway.api_key.as_deref(), Some("agent-1"));
    assert_eq!(config.gateway.port, Some(8080));
    assert_eq!(config.gateway.domain.as_deref(), Some("localhost"));
    assert_eq!(config.gateway.tool_timeout, Duration::from_secs(60));
    assert_eq!(config.gateway.startup_timeout, Duration::from_secs(30));
    assert_eq!(config.servers.len(), 3);

    let github = &config.servers["github"];
    assert_eq!(
        github.transport,
        ServerTransport::Stdio {
            command: "docker".to_owned(),
            args: docker_run(&[
                "-e",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghcr.io/github/github-mcp-server:latest"
            ]),
            env: Default::default(),
        }
    );
    assert_eq!(github.guard.as_deref(), Some("gh"));
    assert_eq!(
        github.guard_policies,
        Some(json!({"allow-only": {"repos": ["acme/*"], "min-integrity": "approved"}}))
    );

    let search = &config.servers["search"];
    match &search.transport {
        ServerTransport::Http { url, headers } => {
            assert_eq!(url, "https://search.example.com/mcp");
            // JSON-safe expansion: the quote stays inside the string.
            assert_eq!(headers["Authorization"], "Bearer s3cr\"et");
        }
        other => panic!("expected http, got {other:?}"),
    }
    assert_eq!(search.tool_timeout, Some(Duration::from_secs(120)));
    assert_eq!(search.tools, Some(strings(&["web_search"])));

    let guard = &config.guards["gh"];
    assert_eq!(guard.kind, "wasm");
    assert_eq!(
        guard.path.as_deref(),
        Some(std::path::Path::new("/opt/guards/github.wasm"))
    );
}

#[test]
fn json_gateway_fields_and_defaults() {
    let text = json!({
        "gateway": {"port": 1, "domain": "host.docker.internal", "apiKey": "old", "agentId": "new",
            "startupTimeout": 5, "toolTimeout": 10, "keepaliveInterval": -1,
            "payloadDir": "C:\\payloads", "payloadPathPrefix": "/p", "payloadSizeThreshold": 1,
            "trustedBots": ["bot"], "forcePublicRepos": false, "sinkVisibilityExemptServers": ["s"],
            "opentelemetry": {"endpoint": "https://otel", "traceId": "0123456789abcdef0123456789abcdef",
                "spanId": "0123456789abcdef", "serviceName": "svc"}},
        "mcpServers": {}
    })
    .to_string();
    let parsed = json_ok(&text);
    let g = &parsed.config.gateway;
    assert_eq!(g.api_key.as_deref(), Some("new"));
    assert_eq!(parsed.warnings.len(), 1);
    assert_contains(&parsed.warnings[0], "apiKey is deprecated");
    assert_eq!(g.startup_timeout, Duration::from_secs(5));
    assert_eq!(g.tool_timeout, Duration::from_secs(10));
    assert_eq!(g.keepalive_interval, None);
    assert_eq!(g.payload_dir, "C:\\payloads");
    assert_eq!(g.payload_path_prefix.as_deref(), Some("/p"));
    assert_eq!(g.payload_size_threshold, 1);
    assert_eq!(g.trusted_bots, strings(&["bot"]));
    assert!(!g.force_public_repos);
    assert_eq!(g.sink_visibility_exempt_servers, strings(&["s"]));
    let otel = g.opentelemetry.as_ref().unwrap();
    assert_eq!(otel.endpoint, "https://otel");
    assert_eq!(otel.service_name, "svc");
    assert_eq!(otel.signal_path, "/v1/traces");
}

#[test]
fn json_keepalive_zero_means_default_and_tool_timeout_variable() {
    let text = json!({
        "gateway": {"port": 80, "domain": "localhost", "agentId": "k", "keepaliveInterval": 0},
        "mcpServers": {}
    })
    .to_string();
    let parsed = parse_json(&text, &env(&[("MCP_GATEWAY_TOOL_TIMEOUT", "90")])).unwrap();
    assert_eq!(
        parsed.config.gateway.keepalive_interval,
        Some(Duration::from_secs(1500))
    );
    assert_eq!(parsed.config.gateway.tool_timeout, Duration::from_secs(90));
    // Below 10: ignored.
    let parsed = parse_json(&text, &env(&[("MCP_GATEWAY_TOOL_TIMEOUT", "5")])).unwrap();
    assert_eq!(parsed.config.gateway.tool_timeout, Duration::from_secs(60));
}

#[test]
fn json_docker_form_builds_the_exact_argv() {
    let text = json_doc(json!({"s": {
        "type": "local",
        "container": "ghcr.io/acme/server:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "entrypoint": "/entry",
        "entrypointArgs": ["serve", "--stdio"],
        "args": ["--network", "none"],
        "mounts": ["/host/data:/data:ro"],
        "env": {"B": "2", "A": ""}
    }}));
    let parsed = json_ok(&text);
    let ServerTransport::Stdio { command, args, env } = &parsed.config.servers["s"].transport
    else {
        panic!("expected stdio");
    };
    assert_eq!(command, "docker");
    assert!(env.is_empty());
    assert_eq!(
        args,
        &docker_run(&[
            "--entrypoint",
            "/entry",
            "-v",
            "/host/data:/data:ro",
            "-e",
            "A",
            "-e",
            "B=2",
            "--network",
            "none",
            "ghcr.io/acme/server:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "serve",
            "--stdio"
        ])
    );
    let launched = resolve_launch_args(args, |name| {
        (name == "A").then(|| "from-gateway".to_owned())
    });
    assert!(launched.contains(&"A=from-gateway".to_owned()));
    assert!(launched.contains(&"B=2".to_owned()));
}

#[test]
fn json_http_server_options() {
    let text = json_doc(json!({"h": {
        "type": "http", "url": "http://localhost:9000/mcp",
        "auth": {"type": "github-oidc"},
        "connect_timeout": 5, "tool_timeout": 0, "tools": ["a", "*"],
        "tool_response_filters": {"list_issues": ".items | map(.title)"},
        "registry": "https://registry.example"
    }}));
    let parsed = json_ok(&text);
    let server = &parsed.config.servers["h"];
    assert_eq!(
        server.auth,
        Some(ServerAuth::GithubOidc {
            audience: "http://localhost:9000/mcp".to_owned()
        })
    );
    assert_eq!(server.connect_timeout, Duration::from_secs(5));
    assert_eq!(server.tool_timeout, None);
    assert_eq!(server.tools, None, "a '*' entry means all tools");
    assert_eq!(
        server.tool_response_filters["list_issues"],
        ".items | map(.title)"
    );
    assert_eq!(server.registry.as_deref(), Some("https://registry.example"));
}

#[test]
fn json_custom_schema_servers_are_skipped_with_a_warning() {
    let text = json!({
        "gateway": {"port": 80, "domain": "localhost", "agentId": "k"},
        "customSchemas": {"my-type": "https://schemas.example/my.json", "other": ""},
        "mcpServers": {"c": {"type": "my-type", "anything": true}}
    })
    .to_string();
    let parsed = json_ok(&text);
    assert!(parsed.config.servers.is_empty());
    assert_contains(&parsed.warnings.join("\n"), "custom type 'my-type'");
}

// ---------------------------------------------------------------- JSON: errors

#[test]
fn json_syntax_error_has_line_and_column() {
    let err = json_err("{\n  \"gateway\": ,\n}");
    assert_contains(&err, "Configuration error at line 2, column");
}

#[test]
fn json_undefined_variable_is_the_exact_error() {
    let text = json_doc(json!({"s": {"container": "img", "env": {"T": "${NOT_SET_ANYWHERE}"}}}));
    assert_eq!(
        json_err(&text),
        "Configuration error at configuration: undefined environment variable referenced: NOT_SET_ANYWHERE\n\
         Suggestion: Set the environment variable NOT_SET_ANYWHERE before starting the gateway"
    );
}

#[test]
fn json_variables_in_keys_are_expanded() {
    let text = r#"{"gateway": {"port": 80, "domain": "localhost", "agentId": "k"},
        "mcpServers": {"${ID}": {"container": "img"}}}"#;
    let parsed = parse_json(text, &env(&[("ID", "expanded")])).unwrap();
    assert!(parsed.config.servers.contains_key("expanded"));
}

#[test]
fn json_schema_errors_list_every_location() {
    let text = json!({
        "gateway": {"port": "80", "extra": 1},
        "mcpServers": {"a": {"container": 5, "bogus": true}, "b": {"type": "http"}},
        "unknownTop": {}
    })
    .to_string();
    let err = parse_json(&text, &env(&[])).unwrap_err();
    let paths: Vec<&str> = err.issues().iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "unknownTop",
        "gateway.extra",
        "gateway.port",
        "gateway.domain",
        "gateway.agentId",
        "mcpServers.a.bogus",
        "mcpServers.a.container",
        "mcpServers.b.url",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let text = err.to_string();
    assert_contains(
        &text,
        "Configuration error at unknownTop: unknown field 'unknownTop'",
    );
    assert_contains(
        &text,
        "Configuration error at gateway.port: expected an integer, got string",
    );
    assert_contains(
        &text,
        "Configuration error at gateway.domain: 'domain' is required",
    );
    assert_contains(
        &text,
        "Configuration error at gateway.agentId: 'agentId' is required",
    );
    assert_contains(
        &text,
        "Configuration error at mcpServers.a.container: expected a string, got integer",
    );
    assert_contains(
        &text,
        "Configuration error at mcpServers.b.url: 'url' is required for HTTP servers",
    );
    assert_contains(&text, "Suggestion: ");
}

#[test]
fn json_top_level_sections_are_required() {
    let err = json_err("{}");
    assert_contains(
        &err,
        "Configuration error at mcpServers: 'mcpServers' is required",
    );
    assert_contains(
        &err,
        "Configuration error at gateway: 'gateway' is required",
    );
    assert_contains(
        &json_err("[1]"),
        "Configuration error at configuration: expected an object, got array",
    );
}

#[test]
fn json_gateway_rules() {
    let cases: &[(Value, &str)] = &[
        (
            json!({"port": 0}),
            "gateway.port: port must be between 1 and 65535, got 0",
        ),
        (
            json!({"port": 70000}),
            "gateway.port: port must be between 1 and 65535, got 70000",
        ),
        (json!({"port": 80}), "gateway.port: 'port' is required"),
        (
            json!({"domain": "Example"}),
            "gateway.domain: invalid domain 'Example'",
        ),
        (
            json!({"domain": "a.b.com"}),
            "gateway.domain: invalid domain 'a.b.com'",
        ),
        (
            json!({"startupTimeout": 0}),
            "gateway.startupTimeout: startupTimeout must be at least 1, got 0",
        ),
        (
            json!({"toolTimeout": 9}),
            "gateway.toolTimeout: toolTimeout must be at least 10, got 9",
        ),
        (
            json!({"keepaliveInterval": -2}),
            "gateway.keepaliveInterval: keepaliveInterval must be at least -1, got -2",
        ),
        (
            json!({"payloadDir": "rel/dir"}),
            "gateway.payloadDir: payloadDir must be an absolute path, got 'rel/dir'",
        ),
        (
            json!({"payloadPathPrefix": ""}),
            "gateway.payloadPathPrefix: payloadPathPrefix must not be empty",
        ),
        (
            json!({"payloadSizeThreshold": 0}),
            "gateway.payloadSizeThreshold: payloadSizeThreshold must be at least 1, got 0",
        ),
        (
            json!({"trustedBots": []}),
            "gateway.trustedBots: trustedBots must be a non-empty array of non-blank strings",
        ),
        (
            json!({"trustedBots": [" "]}),
            "gateway.trustedBots: trustedBots must be a non-empty array of non-blank strings",
        ),
        (
            json!({"forcePublicRepos": "yes"}),
            "gateway.forcePublicRepos: expected a boolean, got string",
        ),
        (
            json!({"opentelemetry": {}}),
            "gateway.opentelemetry.endpoint: 'endpoint' is required",
        ),
        (
            json!({"opentelemetry": {"endpoint": "http://x"}}),
            "gateway.opentelemetry.endpoint: endpoint must be an https:// URL, got 'http://x'",
        ),
        (
            json!({"opentelemetry": {"endpoint": "https://x", "traceId": "00000000000000000000000000000000"}}),
            "gateway.opentelemetry.traceId: traceId must be 32 hexadecimal digits, not all zero",
        ),
        (
            json!({"opentelemetry": {"endpoint": "https://x", "spanId": "xyz"}}),
            "gateway.opentelemetry.spanId: spanId must be 16 hexadecimal digits, got 'xyz'",
        ),
        (
            json!({"opentelemetry": {"endpoint": "https://x", "headers": "a=b"}}),
            "gateway.opentelemetry.headers: unknown field 'headers'",
        ),
    ];
    for (overrides, expected) in cases {
        let mut gateway = json!({"port": 8080, "domain": "localhost", "agentId": "k"});
        for (key, value) in overrides.as_object().unwrap() {
            gateway[key] = value.clone();
        }
        if overrides.get("port") == Some(&json!(80)) {
            gateway.as_object_mut().unwrap().remove("port");
        }
        let text = json!({"gateway": gateway, "mcpServers": {}}).to_string();
        assert_config_error(&json_err(&text), expected);
    }
}

#[test]
fn json_server_rules() {
    let cases: &[(Value, &str)] = &[
        (
            json!({}),
            "mcpServers.s.container: 'container' is required for stdio servers",
        ),
        (
            json!({"type": "stdio", "container": "Bad Image"}),
            "mcpServers.s.container: invalid container image 'Bad Image' (expected name[:tag][@sha256:<64 hex>])",
        ),
        (
            json!({"container": "img@sha256:123"}),
            "mcpServers.s.container: invalid container image",
        ),
        (
            json!({"container": "img", "mounts": ["/a:/b"]}),
            "mcpServers.s.mounts[0]: invalid mount format '/a:/b' (expected 'source:dest:mode')",
        ),
        (
            json!({"container": "img", "mounts": ["/ok:/ok:ro", "rel:/b:ro"]}),
            "mcpServers.s.mounts[1]: invalid mount 'rel:/b:ro': source must be an absolute path",
        ),
        (
            json!({"container": "img", "mounts": ["/a:/b:rx"]}),
            "mcpServers.s.mounts[0]: invalid mount '/a:/b:rx': mode must be 'ro' or 'rw', got 'rx'",
        ),
        (
            json!({"container": "img", "auth": {"type": "github-oidc"}}),
            "mcpServers.s.auth: 'auth' is only supported for http servers",
        ),
        (
            json!({"container": "img", "toolTimeout": 5}),
            "mcpServers.s.toolTimeout: toolTimeout must be at least 10, got 5",
        ),
        (
            json!({"container": "img", "connectTimeout": 0}),
            "mcpServers.s.connectTimeout: connectTimeout must be at least 1, got 0",
        ),
        (
            json!({"container": "img", "env": {"A": 1}}),
            "mcpServers.s.env.A: expected a string, got integer",
        ),
        (
            json!({"container": "img", "args": ["ok", 2]}),
            "mcpServers.s.args[1]: expected a string, got integer",
        ),
        (
            json!({"container": "img", "tool_response_filters": {" ": "."}}),
            "mcpServers.s.tool_response_filters: tool name must not be blank",
        ),
        (
            json!({"container": "img", "tool_response_filters": {"t": ".items | map(.a"}}),
            "mcpServers.s.tool_response_filters.t: invalid jq expression for tool 't': unclosed '('",
        ),
        (
            json!({"container": "img", "tool_response_filters": {"t": "  "}}),
            "mcpServers.s.tool_response_filters.t: invalid jq expression for tool 't': expression is empty",
        ),
        (
            json!({"container": "img", "guard-policies": "x"}),
            "mcpServers.s.guard-policies: expected an object, got string",
        ),
        (
            json!({"type": "sse", "url": "http://x"}),
            "mcpServers.s.type: unsupported server type 'sse'",
        ),
        (
            json!({"type": "http"}),
            "mcpServers.s.url: 'url' is required for HTTP servers",
        ),
        (
            json!({"type": "http", "url": "ftp://x"}),
            "mcpServers.s.url: invalid url 'ftp://x' (expected an http:// or https:// URL)",
        ),
        (
            json!({"type": "http", "url": "http://x", "mounts": []}),
            "mcpServers.s.mounts: 'mounts' is not allowed for HTTP servers",
        ),
        (
            json!({"type": "http", "url": "http://x", "auth": {}}),
            "mcpServers.s.auth.type: auth.type is required",
        ),
        (
            json!({"type": "http", "url": "http://x", "auth": {"type": "basic"}}),
            "mcpServers.s.auth.type: unsupported auth type 'basic' (expected 'github-oidc')",
        ),
        (
            json!({"type": "http", "url": "http://x", "auth": {"type": "github-oidc"}}),
            "mcpServers.s.auth: github-oidc auth requires the ACTIONS_ID_TOKEN_REQUEST_URL environment variable",
        ),
        (
            json!({"type": "http", "url": "http://x", "headers": {"h": true}}),
            "mcpServers.s.headers.h: expected a string, got boolean",
        ),
        (
            json!({"type": "http", "url": "http://x", "command": "x"}),
            "mcpServers.s.command: unknown field 'command'",
        ),
    ];
    for (server, expected) in cases {
        let text = json_doc(json!({ "s": server }));
        assert_config_error(&json_err(&text), expected);
    }
}

#[test]
fn json_guard_rules() {
    let cases: &[(Value, &str)] = &[
        (
            json!({"type": "wasm"}),
            "guards.g.path: 'path' is required for wasm guards",
        ),
        (
            json!({"type": "noop", "policy": {"allow-only": {"repos": "all"}}}),
            "guards.g.policy: invalid policy for guard 'g': min-integrity is required",
        ),
        (
            json!({"policy": {}}),
            "guards.g.policy: invalid policy for guard 'g': policy must include allow-only or write-sink",
        ),
        (
            json!({"policy": {"allow-only": {}, "write-sink": {}}}),
            "guards.g.policy: invalid policy for guard 'g': policy must include either allow-only or write-sink, not both",
        ),
        (
            json!({"policy": {"allow-only": {"repos": "all", "min-integrity": "none", "colour": 1}}}),
            "guards.g.policy: invalid policy for guard 'g': allow-only contains unsupported field \"colour\"",
        ),
        (
            json!({"type": "wasm", "path": "x.wasm", "unknown": 1}),
            "guards.g.unknown: unknown field 'unknown'",
        ),
        (json!("wasm"), "guards.g: expected an object, got string"),
    ];
    for (guard, expected) in cases {
        let text = json_doc_with("guards", &json!({"g": guard}));
        assert_config_error(&json_err(&text), expected);
    }
}

#[test]
fn json_custom_schema_rules() {
    let cases: &[(Value, &str)] = &[
        (
            json!({"http": ""}),
            "customSchemas.http: invalid custom schema type name 'http'",
        ),
        (
            json!({"Bad": ""}),
            "customSchemas.Bad: invalid custom schema type name 'Bad'",
        ),
        (
            json!({"ok": "http://insecure"}),
            "customSchemas.ok: custom schema URL must be an https:// URL or empty, got 'http://insecure'",
        ),
    ];
    for (schemas, expected) in cases {
        let text = json_doc_with("customSchemas", schemas);
        assert_config_error(&json_err(&text), expected);
    }
}

#[test]
fn json_invalid_server_policy_is_a_warning() {
    let text = json_doc(
        json!({"s": {"container": "img", "guard-policies": {"allow-only": {"repos": "all"}}}}),
    );
    let parsed = json_ok(&text);
    assert_contains(
        &parsed.warnings.join("\n"),
        "server 's': guard-policies is invalid (min-integrity is required)",
    );
}

#[test]
fn undefined_guard_reference_is_a_warning() {
    let parsed = json_ok(&json_doc(
        json!({"s": {"container": "img", "guard": "missing"}}),
    ));
    assert_contains(
        &parsed.warnings.join("\n"),
        "guard 'missing' is not defined",
    );
    let parsed = json_ok(&json_doc(
        json!({"s": {"container": "img", "guard": "noop"}}),
    ));
    assert!(parsed.warnings.is_empty());
}

// ---------------------------------------------------------------- TOML

#[test]
fn spec_toml_example_parses() {
    let text = r#"
guards_mode = "filter"
[gateway]
agent_id = "secret-agent-key"
[servers.github]
command = "docker"
args = ["run", "--rm", "-i", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server:latest"]
rate_limit_threshold = 5
[servers.github.guard_policies.allow-only]
repos = ["acme/web"]
min-integrity = "unapproved"
"#;
    let parsed = toml_ok(text);
    let config = parsed.config;
    assert_eq!(config.guards_mode.as_deref(), Some("filter"));
    assert_eq!(config.gateway.api_key.as_deref(), Some("secret-agent-key"));
    let github = &config.servers["github"];
    assert_eq!(github.rate_limit_threshold, 5);
    assert_eq!(github.rate_limit_cooldown, Duration::from_secs(60));
    assert_eq!(
        github.transport,
        ServerTransport::Stdio {
            command: "docker".to_owned(),
            args: strings(&[
                "run",
                "--rm",
                "-i",
                "-e",
                "GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghcr.io/github/github-mcp-server:latest"
            ]),
            env: Default::default(),
        }
    );
    assert_eq!(
        github.guard_policies,
        Some(json!({"allow-only": {"repos": ["acme/web"], "min-integrity": "unapproved"}}))
    );
}

#[test]
fn toml_any_executable_with_env_and_expansion() {
    let text = r#"
sequential_launch = true
[servers.demo]
command = "${BIN}/backend"
args = ["--flag", "${MODE}"]
env = { TOKEN = "t", LEVEL = "debug" }
working_directory = "/srv"
[servers.web]
type = "http"
url = "https://example.com/mcp"
headers = { Authorization = "Bearer x" }
tools = ["a", "b"]
"#;
    let parsed = parse_toml(text, &env(&[("BIN", "/opt/bin"), ("MODE", "fast")])).unwrap();
    let config = parsed.config;
    assert!(config.sequential_launch);
    let ServerTransport::Stdio { command, args, env } = &config.servers["demo"].transport else {
        panic!("expected stdio");
    };
    assert_eq!(command, "/opt/bin/backend");
    assert_eq!(args, &strings(&["--flag", "fast"]));
    assert_eq!(env.keys().collect::<Vec<_>>(), vec!["LEVEL", "TOKEN"]);
    assert_eq!(
        config.servers["demo"].working_directory.as_deref(),
        Some("/srv")
    );
    assert_eq!(config.servers["web"].tools, Some(strings(&["a", "b"])));
}

#[test]
fn toml_container_form_is_accepted() {
    let text = r#"
[servers.c]
container = "ghcr.io/acme/server:latest"
entrypoint_args = ["--stdio"]
env = { TOKEN = "" }
"#;
    let parsed = toml_ok(text);
    let ServerTransport::Stdio { command, args, .. } = &parsed.config.servers["c"].transport else {
        panic!("expected stdio");
    };
    assert_eq!(command, "docker");
    assert_eq!(
        args[args.len() - 4..],
        strings(&["-e", "TOKEN", "ghcr.io/acme/server:latest", "--stdio"])
    );
}

#[test]
fn toml_tracing_sections() {
    let text = r#"
[gateway.opentelemetry]
endpoint = "https://${OTEL_HOST}"
headers = "a=1, b=2"
trace_id = "0123456789abcdef0123456789abcdef"
sample_rate = 0.5
[gateway.tracing]
endpoint = "http://legacy"
[servers.s]
command = "x"
"#;
    let parsed = parse_toml(text, &env(&[("OTEL_HOST", "otel.example")])).unwrap();
    let otel = parsed.config.gateway.opentelemetry.unwrap();
    assert_eq!(otel.endpoint, "https://otel.example");
    assert_eq!(otel.headers["a"], "1");
    assert_eq!(otel.headers["b"], "2");
    assert_eq!(otel.sample_rate, Some(0.5));
    assert_contains(&parsed.warnings.join("\n"), "[gateway.opentelemetry] wins");

    let legacy = toml_ok(
        "[gateway.tracing]\nendpoint = \"http://legacy:4318\"\n[servers.s]\ncommand = \"x\"\n",
    );
    assert_eq!(
        legacy.config.gateway.opentelemetry.unwrap().endpoint,
        "http://legacy:4318"
    );
    let off = toml_ok("[gateway.tracing]\nendpoint = \"\"\n[servers.s]\ncommand = \"x\"\n");
    assert!(off.config.gateway.opentelemetry.is_none());
}

#[test]
fn toml_empty_agent_id_means_a_generated_key() {
    let parsed = toml_ok("[gateway]\nagent_id = \"\"\n[servers.s]\ncommand = \"x\"\n");
    assert_eq!(parsed.config.gateway.api_key, None);
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let err = toml_err("[gateway]\nport = = 3\n");
    assert_contains(&err, "Configuration error at line 2, column");
}

#[test]
fn toml_unknown_keys_are_listed_together() {
    let text = r#"
colour = "blue"
[gateway]
agentId = "camelCase is JSON only"
[servers.s]
command = "x"
unknown = 1
[servers.s.guard_policies.allow-only]
repos = "all"
min-integrity = "none"
anything = "allowed under guard_policies"
[guards.g]
type = "noop"
[guards.g.config]
free = "form"
"#;
    let err = toml_err(text);
    assert_contains(
        &err,
        "Configuration error at configuration: configuration contains unrecognized field(s): colour, gateway.agentId, servers.s.unknown",
    );
    assert!(!err.contains("guards.g.config"), "{err}");
}

#[test]
fn toml_rules() {
    let cases: &[(&str, &str)] = &[
        ("", "servers: no servers defined in configuration"),
        (
            "[servers]\n",
            "servers: no servers defined in configuration",
        ),
        (
            "guards_mode = \"loose\"\n[servers.s]\ncommand = \"x\"\n",
            "guards_mode: guards_mode must be one of: strict, filter, propagate, got 'loose'",
        ),
        (
            "[servers.s]\nargs = []\n",
            "servers.s.command: 'command' is required for stdio servers",
        ),
        (
            "[servers.s]\ncommand = \" \"\n",
            "servers.s.command: 'command' must not be empty",
        ),
        (
            "[servers.s]\ncommand = \"x\"\ncontainer = \"img\"\n",
            "servers.s.container: 'container' cannot be combined with 'command'",
        ),
        (
            "[gateway]\nport = 0\n[servers.s]\ncommand = \"x\"\n",
            "gateway.port: port must be between 1 and 65535, got 0",
        ),
        (
            "[gateway]\npayload_size_threshold = 0\n[servers.s]\ncommand = \"x\"\n",
            "gateway.payload_size_threshold: payload_size_threshold must be at least 1, got 0",
        ),
        (
            "[gateway]\ntrusted_bots = []\n[servers.s]\ncommand = \"x\"\n",
            "gateway.trusted_bots: trusted_bots must be a non-empty array of non-blank strings",
        ),
        (
            "[gateway]\ntool_timeout = 3\n[servers.s]\ncommand = \"x\"\n",
            "gateway.tool_timeout: tool_timeout must be at least 10, got 3",
        ),
        (
            "[gateway.opentelemetry]\nendpoint = \"http://x\"\n[servers.s]\ncommand = \"x\"\n",
            "gateway.opentelemetry.endpoint: endpoint must be an https:// URL",
        ),
        (
            "[gateway.opentelemetry]\nendpoint = \"https://x\"\nheaders = \"novalue\"\n[servers.s]\ncommand = \"x\"\n",
            "gateway.opentelemetry.headers: headers must be 'key=value' pairs",
        ),
        (
            "[servers.s]\ncommand = \"x\"\nrate_limit_threshold = 0\n",
            "servers.s.rate_limit_threshold: rate_limit_threshold must be at least 1, got 0",
        ),
        (
            "[servers.s]\ncommand = \"x\"\nrate_limit_cooldown = 0\n",
            "servers.s.rate_limit_cooldown: rate_limit_cooldown must be at least 1, got 0",
        ),
        (
            "[servers.s]\ncommand = \"x\"\ntool_timeout = 9\n",
            "servers.s.tool_timeout: tool_timeout must be at least 10, got 9",
        ),
        (
            "[servers.s]\ncommand = \"x\"\nauth = { type = \"github-oidc\" }\n",
            "servers.s.auth: 'auth' is only supported for http servers",
        ),
        (
            "[servers.s]\ncommand = \"x\"\n[guards.g]\ntype = \"wasm\"\npolicy = { write-sink = { accept = [] } }\n",
            "guards.g.path: 'path' is required for wasm guards",
        ),
        (
            "[servers.s]\ncommand = \"x\"\n[guards.g]\npolicy = { write-sink = { accept = [] } }\n",
            "guards.g.policy: invalid policy for guard 'g': write-sink accept must be a non-empty array of strings",
        ),
        (
            "[servers.s]\ncommand = \"${MISSING_VAR}\"\n",
            "configuration: undefined environment variable referenced: MISSING_VAR",
        ),
    ];
    for (text, expected) in cases {
        assert_config_error(&toml_err(text), expected);
    }
}

#[test]
fn example_file_in_the_repository_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/guardway.toml");
    let parsed = load_toml_file(std::path::Path::new(path), &env(&[])).unwrap();
    let config = parsed.config;
    assert_eq!(config.guards["sample"].kind, "wasm");
    assert_eq!(config.servers["github"].guard.as_deref(), Some("sample"));
    assert!(config.servers["github"].guard_policies.is_some());
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
}

#[test]
fn missing_file_is_a_read_error() {
    let err = load_toml_file(
        std::path::Path::new("/nonexistent/guardway.toml"),
        &env(&[]),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert_contains(&err.to_string(), "/nonexistent/guardway.toml");
}
