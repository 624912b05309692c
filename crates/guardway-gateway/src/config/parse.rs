//! Parsing TOML files and stdin JSON into the configuration model, with
//! `${NAME}` expansion and strict validation (gateway.md §1). Both formats go
//! through one validator that walks the parsed document, so every failing
//! location is reported at once with its dotted path.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::docker::{DockerServer, check_mount, is_absolute, is_valid_image};
use super::env::{Environment, expand_json};
use super::error::{ConfigError, ConfigIssue, line_column};
use super::model::*;
use super::policy::validate_config_policy;

/// Which surface syntax a document came in; it decides key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Toml,
}

/// Parses a TOML configuration file.
///
/// # Errors
/// See [`parse_toml`]; also when the file cannot be read.
pub fn load_toml_file(path: &Path, env: &Environment) -> Result<ParsedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text, env)
}

/// Parses a JSON configuration file (the stdin format, from a file).
///
/// # Errors
/// See [`parse_json`]; also when the file cannot be read.
pub fn load_json_file(path: &Path, env: &Environment) -> Result<ParsedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_json(&text, env)
}

/// Parses the TOML format (§1.2).
///
/// Deliberate deviation from the reference: `${NAME}` is expanded in every
/// string value of the file (not only under `[gateway.opentelemetry]`), so
/// commands, arguments, URLs and keys can come from the environment. Keys are
/// never expanded.
///
/// # Errors
/// Syntax errors with line and column, an undefined `${NAME}`, or every
/// schema/rule violation found.
pub fn parse_toml(text: &str, env: &Environment) -> Result<ParsedConfig, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|err| {
        let (line, column) = err
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Syntax {
            format: "TOML",
            line,
            column,
            message: err.message().trim().to_owned(),
        }
    })?;
    let mut doc = toml_to_json(toml::Value::Table(table));
    expand_json(&mut doc, env, false).map_err(|name| ConfigError::UndefinedVariable { name })?;
    Validator::new(Format::Toml, env).run(&doc)
}

/// Parses the JSON format (§1.1): valid JSON first, then `${NAME}` expanded
/// in every string value and key, then validation.
///
/// # Errors
/// Syntax errors with line and column, the first undefined `${NAME}`, or
/// every schema/rule violation found.
pub fn parse_json(text: &str, env: &Environment) -> Result<ParsedConfig, ConfigError> {
    let mut doc: Value = serde_json::from_str(text).map_err(|err| ConfigError::Syntax {
        format: "JSON",
        line: err.line(),
        column: err.column(),
        message: err.to_string(),
    })?;
    expand_json(&mut doc, env, true).map_err(|name| ConfigError::UndefinedVariable { name })?;
    Validator::new(Format::Json, env).run(&doc)
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks one document, collecting issues instead of stopping at the first.
struct Validator<'e> {
    format: Format,
    env: &'e Environment,
    issues: Vec<ConfigIssue>,
    unknown: Vec<String>,
    warnings: Vec<String>,
}

impl<'e> Validator<'e> {
    fn new(format: Format, env: &'e Environment) -> Self {
        Self {
            format,
            env,
            issues: Vec::new(),
            unknown: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The JSON or TOML spelling of a key.
    fn k(&self, json: &'static str, toml: &'static str) -> &'static str {
        match self.format {
            Format::Json => json,
            Format::Toml => toml,
        }
    }

    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue::new(path, message));
    }

    fn issue_with(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        suggestion: impl Into<String>,
    ) {
        self.issues
            .push(ConfigIssue::new(path, message).with_suggestion(suggestion));
    }

    fn wrong_type(&mut self, path: &str, expected: &str, got: &Value) {
        self.issue_with(
            path,
            format!("expected {expected}, got {}", type_name(got)),
            format!("set {path} to {expected}"),
        );
    }

    fn run(mut self, doc: &Value) -> Result<ParsedConfig, ConfigError> {
        let config = match doc.as_object() {
            Some(root) => self.root(root),
            None => {
                self.wrong_type("configuration", "an object", doc);
                GatewayConfig::default()
            }
        };
        if !self.unknown.is_empty() {
            let fields = self.unknown.join(", ");
            self.issues.insert(
                0,
                ConfigIssue::new(
                    "configuration",
                    format!("configuration contains unrecognized field(s): {fields}"),
                )
                .with_suggestion("remove or rename these fields (TOML keys are snake_case)"),
            );
        }
        if self.issues.is_empty() {
            Ok(ParsedConfig {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(ConfigError::Invalid {
                issues: self.issues,
            })
        }
    }

    /// Reports keys of `map` not in `allowed`.
    fn check_keys(&mut self, map: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in map.keys() {
            if allowed.contains(&key.as_str()) {
                continue;
            }
            let at = join(path, key);
            match self.format {
                Format::Toml => self.unknown.push(at),
                Format::Json => self.issue_with(
                    at,
                    format!("unknown field '{key}'"),
                    format!("allowed fields here: {}", allowed.join(", ")),
                ),
            }
        }
    }

    /// `map[key]` converted by `convert`; reports a wrong type at
    /// `path.key`, naming `expected`, when `convert` refuses it.
    fn typed<'v, T>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        path: &str,
        expected: &str,
        convert: impl FnOnce(&'v Value) -> Option<T>,
    ) -> Option<T> {
        let value = map.get(key)?;
        let converted = convert(value);
        if converted.is_none() {
            self.wrong_type(&join(path, key), expected, value);
        }
        converted
    }

    fn object<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        self.typed(map, key, path, "an object", Value::as_object)
    }

    fn string(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        self.typed(map, key, path, "a string", |v| {
            v.as_str().map(str::to_owned)
        })
    }

    fn int(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<i64> {
        self.typed(map, key, path, "an integer", Value::as_i64)
    }

    fn float(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<f64> {
        self.typed(map, key, path, "a number", Value::as_f64)
    }

    fn boolean(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        self.typed(map, key, path, "a boolean", Value::as_bool)
    }

    fn strings(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<Vec<String>> {
        let value = map.get(key)?;
        let at = join(path, key);
        let Some(items) = value.as_array() else {
            self.wrong_type(&at, "an array of strings", value);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_owned()),
                None => {
                    self.wrong_type(&format!("{at}[{index}]"), "a string", item);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn string_map(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<BTreeMap<String, String>> {
        let object = self.object(map, key, path)?;
        let at = join(path, key);
        let mut out = BTreeMap::new();
        for (name, value) in object {
            match value.as_str() {
                Some(s) => {
                    out.insert(name.clone(), s.to_owned());
                }
                None => self.wrong_type(&join(&at, name), "a string", value),
            }
        }
        Some(out)
    }

    /// An integer number of seconds, at least `min`.
    fn seconds(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        path: &str,
        min: i64,
    ) -> Option<i64> {
        let n = self.int(map, key, path)?;
        if n < min {
            self.issue_with(
                join(path, key),
                format!("{key} must be at least {min}, got {n}"),
                format!("set {key} to {min} or more (seconds)"),
            );
            return None;
        }
        Some(n)
    }

    fn root(&mut self, root: &Map<String, Value>) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        let servers_key = self.k("mcpServers", "servers");
        match self.format {
            Format::Json => {
                self.check_keys(
                    root,
                    "",
                    &["mcpServers", "gateway", "guards", "customSchemas"],
                );
                for required in ["mcpServers", "gateway"] {
                    if !root.contains_key(required) {
                        self.issue_with(
                            required,
                            format!("'{required}' is required"),
                            format!("add a \"{required}\" object"),
                        );
                    }
                }
            }
            Format::Toml => {
                self.check_keys(
                    root,
                    "",
                    &[
                        "gateway",
                        "servers",
                        "guards",
                        "guards_mode",
                        "sequential_launch",
                    ],
                );
                if let Some(mode) = self.string(root, "guards_mode", "") {
                    let normalised = mode.trim().to_ascii_lowercase();
                    if matches!(normalised.as_str(), "strict" | "filter" | "propagate") {
                        config.guards_mode = Some(normalised);
                    } else {
                        self.issue_with(
                            "guards_mode",
                            format!("guards_mode must be one of: strict, filter, propagate, got '{mode}'"),
                            "use strict, filter or propagate",
                        );
                    }
                }
                config.sequential_launch =
                    self.boolean(root, "sequential_launch", "").unwrap_or(false);
            }
        }

        let empty = Map::new();
        let gateway = self.object(root, "gateway", "").unwrap_or(&empty);
        config.gateway = self.gateway(gateway);

        let custom_types = match self.format {
            Format::Json => self.custom_schemas(root),
            Format::Toml => Vec::new(),
        };

        if let Some(guards) = self.object(root, "guards", "") {
            for (name, guard) in guards {
                let path = join("guards", name);
                match guard.as_object() {
                    Some(guard) => {
                        if let Some(parsed) = self.guard(name, guard, &path) {
                            config.guards.insert(name.clone(), parsed);
                        }
                    }
                    None => self.wrong_type(&path, "an object", guard),
                }
            }
        }

        if let Some(servers) = self.object(root, servers_key, "") {
            if servers.is_empty() && self.format == Format::Toml {
                self.issue_with(
                    "servers",
                    "no servers defined in configuration",
                    "add at least one [servers.<id>] table",
                );
            }
            for (id, server) in servers {
                let path = join(servers_key, id);
                match server.as_object() {
                    Some(server) => {
                        if let Some(parsed) = self.server(id, server, &path, &custom_types) {
                            config.servers.insert(id.clone(), parsed);
                        }
                    }
                    None => self.wrong_type(&path, "an object", server),
                }
            }
        } else if self.format == Format::Toml && !root.contains_key("servers") {
            self.issue_with(
                "servers",
                "no servers defined in configuration",
                "add at least one [servers.<id>] table",
            );
        }

        for (id, server) in &config.servers {
            if let Some(guard) = &server.guard
                && !config.guards.contains_key(guard)
                && !is_builtin_guard_type(guard)
            {
                self.warnings.push(format!(
                    "server '{id}': guard '{guard}' is not defined in guards; the server gets no guard"
                ));
            }
        }
        config
    }

    fn gateway(&mut self, map: &Map<String, Value>) -> GatewaySettings {
        let path = "gateway";
        let mut settings = GatewaySettings::default();
        let keys: &[&str] = match self.format {
            Format::Json => &[
                "port",
                "domain",
                "agentId",
                "apiKey",
                "startupTimeout",
                "toolTimeout",
                "keepaliveInterval",
                "payloadDir",
                "payloadPathPrefix",
                "payloadSizeThreshold",
                "trustedBots",
                "forcePublicRepos",
                "sinkVisibilityExemptServers",
                "opentelemetry",
            ],
            Format::Toml => &[
                "port",
                "agent_id",
                "api_key",
                "domain",
                "startup_timeout",
                "tool_timeout",
                "keepalive_interval",
                "payload_dir",
                "payload_path_prefix",
                "payload_size_threshold",
                "trusted_bots",
                "force_public_repos",
                "sink_visibility_exempt_servers",
                "opentelemetry",
                "tracing",
            ],
        };
        self.check_keys(map, path, keys);
        let json = self.format == Format::Json;

        match self.int(map, "port", path) {
            Some(port) if (1..=65535).contains(&port) => settings.port = u16::try_from(port).ok(),
            Some(port) => self.issue_with(
                "gateway.port",
                format!("port must be between 1 and 65535, got {port}"),
                "use a port between 1 and 65535",
            ),
            None if json && !map.contains_key("port") => self.issue_with(
                "gateway.port",
                "'port' is required",
                "add \"port\": 8080 (informational; the listen address comes from --listen)",
            ),
            None => {}
        }

        let domain = self.string(map, "domain", path);
        if let Some(domain) = &domain
            && json
            && !is_valid_domain(domain)
        {
            self.issue_with(
                "gateway.domain",
                format!("invalid domain '{domain}' (expected 'localhost', 'host.docker.internal' or a lowercase hostname label)"),
                "use localhost or host.docker.internal",
            );
        }
        if json && domain.is_none() && !map.contains_key("domain") {
            self.issue_with(
                "gateway.domain",
                "'domain' is required",
                "add \"domain\": \"localhost\"",
            );
        }
        settings.domain = domain;

        let agent_key = self.k("agentId", "agent_id");
        let api_key_key = self.k("apiKey", "api_key");
        let agent_id = self.string(map, agent_key, path);
        let api_key = self.string(map, api_key_key, path);
        if api_key.is_some() {
            self.warnings.push(format!(
                "gateway.{api_key_key} is deprecated; use gateway.{agent_key}{}",
                if agent_id.is_some() { " (it wins)" } else { "" }
            ));
        }
        if json
            && agent_id.is_none()
            && api_key.is_none()
            && !map.contains_key("agentId")
            && !map.contains_key("apiKey")
        {
            self.issue_with(
                "gateway.agentId",
                "'agentId' is required",
                "add \"agentId\": \"${MCP_GATEWAY_AGENT_ID}\"",
            );
        }
        settings.api_key = agent_id.or(api_key);
        if settings
            .api_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            if json {
                self.issue_with(
                    join(path, agent_key),
                    format!("{agent_key} must not be empty"),
                    "set the client key, e.g. \"agentId\": \"${MCP_GATEWAY_AGENT_ID}\" with the variable set",
                );
            }
            // TOML: an empty key means none; one is generated at start-up.
            settings.api_key = None;
        }

        let startup_key = self.k("startupTimeout", "startup_timeout");
        if let Some(secs) = self.seconds(map, startup_key, path, 1) {
            settings.startup_timeout = secs_duration(secs);
        }
        let tool_key = self.k("toolTimeout", "tool_timeout");
        settings.tool_timeout = match self.seconds(map, tool_key, path, 10) {
            Some(secs) => secs_duration(secs),
            None => self
                .env
                .get_non_blank("MCP_GATEWAY_TOOL_TIMEOUT")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|secs| *secs >= 10)
                .map_or(DEFAULT_TOOL_TIMEOUT, Duration::from_secs),
        };
        let keepalive_key = self.k("keepaliveInterval", "keepalive_interval");
        if let Some(secs) = self.seconds(map, keepalive_key, path, -1) {
            settings.keepalive_interval = match secs {
                -1 => None,
                0 => Some(DEFAULT_KEEPALIVE_INTERVAL),
                n => Some(secs_duration(n)),
            };
        }

        let payload_dir_key = self.k("payloadDir", "payload_dir");
        if let Some(dir) = self.string(map, payload_dir_key, path) {
            if is_absolute(&dir) {
                settings.payload_dir = dir;
            } else {
                self.issue_with(
                    join(path, payload_dir_key),
                    format!("{payload_dir_key} must be an absolute path, got '{dir}'"),
                    "use an absolute path such as /tmp/jq-payloads",
                );
            }
        }
        let prefix_key = self.k("payloadPathPrefix", "payload_path_prefix");
        if let Some(prefix) = self.string(map, prefix_key, path) {
            if prefix.is_empty() {
                self.issue(
                    join(path, prefix_key),
                    format!("{prefix_key} must not be empty"),
                );
            } else {
                settings.payload_path_prefix = Some(prefix);
            }
        }
        let threshold_key = self.k("payloadSizeThreshold", "payload_size_threshold");
        if let Some(n) = self.int(map, threshold_key, path) {
            match u64::try_from(n) {
                Ok(n) if n >= 1 => settings.payload_size_threshold = n,
                _ => self.issue_with(
                    join(path, threshold_key),
                    format!("{threshold_key} must be at least 1, got {n}"),
                    "use a size in bytes, e.g. 524288",
                ),
            }
        }
        let bots_key = self.k("trustedBots", "trusted_bots");
        if let Some(bots) = self.strings(map, bots_key, path) {
            if bots.is_empty() || bots.iter().any(|b| b.trim().is_empty()) {
                self.issue_with(
                    join(path, bots_key),
                    format!("{bots_key} must be a non-empty array of non-blank strings"),
                    format!("remove {bots_key} or list at least one bot login"),
                );
            } else {
                settings.trusted_bots = bots;
            }
        }
        let force_key = self.k("forcePublicRepos", "force_public_repos");
        if let Some(force) = self.boolean(map, force_key, path) {
            settings.force_public_repos = force;
        }
        let exempt_key = self.k(
            "sinkVisibilityExemptServers",
            "sink_visibility_exempt_servers",
        );
        if let Some(exempt) = self.strings(map, exempt_key, path) {
            settings.sink_visibility_exempt_servers = exempt;
        }

        let otel = self
            .object(map, "opentelemetry", path)
            .and_then(|o| self.tracing(o, "gateway.opentelemetry", true));
        let legacy = if json {
            None
        } else {
            self.object(map, "tracing", path)
                .and_then(|o| self.tracing(o, "gateway.tracing", false))
        };
        if otel.is_some() && map.contains_key("tracing") {
            self.warnings.push(
                "both [gateway.opentelemetry] and [gateway.tracing] are set; [gateway.opentelemetry] wins"
                    .to_owned(),
            );
        }
        settings.opentelemetry = otel.or(legacy.filter(|t| !t.endpoint.is_empty()));
        settings
    }

    fn tracing(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        https_only: bool,
    ) -> Option<TracingConfig> {
        let keys: &[&str] = match self.format {
            Format::Json => &["endpoint", "traceId", "spanId", "serviceName"],
            Format::Toml => &[
                "endpoint",
                "headers",
                "trace_id",
                "span_id",
                "service_name",
                "sample_rate",
                "signal_path",
            ],
        };
        self.check_keys(map, path, keys);
        let before = self.issues.len();
        let endpoint = self.string(map, "endpoint", path).unwrap_or_default();
        if https_only {
            if endpoint.is_empty() {
                self.issue_with(
                    join(path, "endpoint"),
                    "'endpoint' is required",
                    "set endpoint to an https:// OTLP/HTTP collector URL",
                );
            } else if !endpoint.starts_with("https://") || endpoint.len() == "https://".len() {
                self.issue_with(
                    join(path, "endpoint"),
                    format!("endpoint must be an https:// URL, got '{endpoint}'"),
                    "use an https:// endpoint",
                );
            }
        } else if !endpoint.is_empty() && !is_http_url(&endpoint) {
            self.issue(
                join(path, "endpoint"),
                format!("endpoint must be an http:// or https:// URL, got '{endpoint}'"),
            );
        }
        let trace_key = self.k("traceId", "trace_id");
        let trace_id = self.string(map, trace_key, path);
        if let Some(id) = &trace_id
            && (id.len() != 32 || !is_hex(id) || id.chars().all(|c| c == '0'))
        {
            self.issue(
                join(path, trace_key),
                format!("{trace_key} must be 32 hexadecimal digits, not all zero, got '{id}'"),
            );
        }
        let span_key = self.k("spanId", "span_id");
        let span_id = self.string(map, span_key, path);
        if let Some(id) = &span_id
            && (id.len() != 16 || !is_hex(id))
        {
            self.issue(
                join(path, span_key),
                format!("{span_key} must be 16 hexadecimal digits, got '{id}'"),
            );
        }
        let service_key = self.k("serviceName", "service_name");
        let service_name = self
            .string(map, service_key, path)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        let mut headers = BTreeMap::new();
        if let Some(text) = self.string(map, "headers", path) {
            for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
                match pair.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        headers.insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                    _ => self.issue(
                        join(path, "headers"),
                        format!(
                            "headers must be 'key=value' pairs separated by commas, got '{pair}'"
                        ),
                    ),
                }
            }
        }
        let sample_rate = self.float(map, "sample_rate", path);
        if let Some(rate) = sample_rate
            && !(0.0..=1.0).contains(&rate)
        {
            self.issue(
                join(path, "sample_rate"),
                format!("sample_rate must be between 0 and 1, got {rate}"),
            );
        }
        let signal_path = self
            .string(map, "signal_path", path)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/v1/traces".to_owned());
        (self.issues.len() == before).then_some(TracingConfig {
            endpoint,
            headers,
            trace_id,
            span_id,
            service_name,
            sample_rate,
            signal_path,
        })
    }

    fn custom_schemas(&mut self, root: &Map<String, Value>) -> Vec<String> {
        let mut names = Vec::new();
        let Some(schemas) = self.object(root, "customSchemas", "") else {
            return names;
        };
        for (name, url) in schemas {
            let path = join("customSchemas", name);
            let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && name != "stdio"
                && name != "http";
            if !valid_name {
                self.issue_with(
                    path.clone(),
                    format!("invalid custom schema type name '{name}'"),
                    "use a name matching ^[a-z][a-z0-9-]*$ other than stdio and http",
                );
            }
            match url.as_str() {
                Some(u) if u.is_empty() || (u.starts_with("https://") && u.len() > 8) => {}
                Some(u) => self.issue(
                    path.clone(),
                    format!("custom schema URL must be an https:// URL or empty, got '{u}'"),
                ),
                None => self.wrong_type(&path, "a string", url),
            }
            names.push(name.clone());
        }
        names
    }

    fn guard(&mut self, name: &str, map: &Map<String, Value>, path: &str) -> Option<GuardConfig> {
        self.check_keys(map, path, &["type", "path", "config", "policy"]);
        let before = self.issues.len();
        let kind = self
            .string(map, "type", path)
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let kind = if kind.is_empty() {
            "noop".to_owned()
        } else {
            kind
        };
        let wasm_path = self.string(map, "path", path);
        if kind == "wasm" && wasm_path.as_deref().is_none_or(|p| p.trim().is_empty()) {
            self.issue_with(
                join(path, "path"),
                "'path' is required for wasm guards",
                "set path to the guard's .wasm file",
            );
        }
        let policy = map.get("policy").cloned();
        if let Some(policy) = &policy
            && let Err(message) = validate_config_policy(policy)
        {
            self.issue_with(
                join(path, "policy"),
                format!("invalid policy for guard '{name}': {message}"),
                "use {\"allow-only\": {\"repos\": …, \"min-integrity\": …}} or {\"write-sink\": {\"accept\": […]}}",
            );
        }
        (self.issues.len() == before).then(|| GuardConfig {
            kind,
            path: wasm_path.map(std::path::PathBuf::from),
            policy,
            config: map.get("config").cloned(),
        })
    }

    fn server(
        &mut self,
        id: &str,
        map: &Map<String, Value>,
        path: &str,
        custom_types: &[String],
    ) -> Option<ServerConfig> {
        let keys: &[&str] = match self.format {
            Format::Json => &[
                "type",
                "container",
                "entrypoint",
                "entrypointArgs",
                "args",
                "mounts",
                "env",
                "url",
                "headers",
                "auth",
                "connectTimeout",
                "connect_timeout",
                "toolTimeout",
                "tool_timeout",
                "tools",
                "tool_response_filters",
                "guard",
                "guard-policies",
                "registry",
            ],
            Format::Toml => &[
                "type",
                "command",
                "args",
                "env",
                "working_directory",
                "url",
                "headers",
                "auth",
                "tools",
                "tool_response_filters",
                "registry",
                "guard",
                "guard_policies",
                "connect_timeout",
                "tool_timeout",
                "rate_limit_threshold",
                "rate_limit_cooldown",
                // guardway extension: the docker form in TOML too.
                "container",
                "entrypoint",
                "entrypoint_args",
                "mounts",
            ],
        };
        let raw_type = self.string(map, "type", path).unwrap_or_default();
        let kind = raw_type.trim().to_ascii_lowercase();
        // Servers of a custom type are described by their own schema.
        if !custom_types.contains(&kind) {
            self.check_keys(map, path, keys);
        }
        let before = self.issues.len();
        let is_http = match kind.as_str() {
            "" | "stdio" | "local" => false,
            "http" => true,
            other if custom_types.iter().any(|t| t == other) => {
                self.warnings.push(format!(
                    "server '{id}' has custom type '{other}', which cannot be launched; it is skipped"
                ));
                return None;
            }
            _ => {
                self.issue_with(
                    join(path, "type"),
                    format!("unsupported server type '{raw_type}'"),
                    "use stdio or http, or register the type in customSchemas",
                );
                return None;
            }
        };

        let mut server = ServerConfig::default();
        let auth = self.object(map, "auth", path);
        if auth.is_some() && !is_http {
            self.issue_with(
                join(path, "auth"),
                "'auth' is only supported for http servers",
                "remove auth or make the server type http",
            );
        }

        if is_http {
            if map.contains_key("mounts") {
                self.issue_with(
                    join(path, "mounts"),
                    "'mounts' is not allowed for HTTP servers",
                    "remove mounts from this http server",
                );
            }
            let url = self.string(map, "url", path);
            let url = match url {
                Some(url) if is_http_url(&url) => url,
                Some(url) => {
                    self.issue_with(
                        join(path, "url"),
                        format!("invalid url '{url}' (expected an http:// or https:// URL)"),
                        "use a URL such as https://example.com/mcp",
                    );
                    String::new()
                }
                None => {
                    if !map.contains_key("url") {
                        self.issue_with(
                            join(path, "url"),
                            "'url' is required for HTTP servers",
                            "add the backend's MCP endpoint URL",
                        );
                    }
                    String::new()
                }
            };
            if let Some(auth) = auth {
                server.auth = self.auth(auth, &join(path, "auth"), &url);
            }
            let headers = self.string_map(map, "headers", path).unwrap_or_default();
            server.transport = ServerTransport::Http { url, headers };
        } else {
            server.transport = self.stdio_transport(map, path)?;
        }

        let connect_key = match (self.format, map.contains_key("connectTimeout")) {
            (Format::Json, true) => "connectTimeout",
            _ => "connect_timeout",
        };
        if let Some(secs) = self.seconds(map, connect_key, path, 1) {
            server.connect_timeout = secs_duration(secs);
        }
        let tool_key = match (self.format, map.contains_key("toolTimeout")) {
            (Format::Json, true) => "toolTimeout",
            _ => "tool_timeout",
        };
        if let Some(secs) = self.int(map, tool_key, path) {
            if secs == 0 {
                server.tool_timeout = None;
            } else if secs >= 10 {
                server.tool_timeout = Some(secs_duration(secs));
            } else {
                self.issue_with(
                    join(path, tool_key),
                    format!("{tool_key} must be at least 10, got {secs}"),
                    "use 0 (the gateway's timeout) or 10 seconds or more",
                );
            }
        }
        if let Some(tools) = self.strings(map, "tools", path) {
            server.tools = (!tools.iter().any(|t| t.trim() == "*")).then_some(tools);
        }
        if let Some(filters) = self.string_map(map, "tool_response_filters", path) {
            let at = join(path, "tool_response_filters");
            for (tool, expression) in &filters {
                if tool.trim().is_empty() {
                    self.issue(at.clone(), "tool name must not be blank");
                    continue;
                }
                match super::jq::JqFilter::compile(expression) {
                    Ok(filter) => {
                        server.tool_response_filters.insert(tool.clone(), filter);
                    }
                    Err(why) => self.issue(
                        join(&at, tool),
                        format!("invalid jq expression for tool '{tool}': {why}"),
                    ),
                }
            }
        }
        server.guard = self
            .string(map, "guard", path)
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty());
        let policies_key = self.k("guard-policies", "guard_policies");
        if let Some(policy) = map.get(policies_key) {
            if policy.is_object() {
                if let Err(message) = validate_config_policy(policy) {
                    self.warnings.push(format!(
                        "server '{id}': {policies_key} is invalid ({message}); start-up fails if a guard is bound to this server"
                    ));
                }
                server.guard_policies = Some(policy.clone());
            } else {
                self.wrong_type(&join(path, policies_key), "an object", policy);
            }
        }
        server.registry = self.string(map, "registry", path);
        if let Some(n) = self.int(map, "rate_limit_threshold", path) {
            match u32::try_from(n) {
                Ok(n) if n >= 1 => server.rate_limit_threshold = n,
                _ => self.issue(
                    join(path, "rate_limit_threshold"),
                    format!("rate_limit_threshold must be at least 1, got {n}"),
                ),
            }
        }
        if let Some(secs) = self.seconds(map, "rate_limit_cooldown", path, 1) {
            server.rate_limit_cooldown = secs_duration(secs);
        }
        server.working_directory = self.string(map, "working_directory", path);
        (self.issues.len() == before).then_some(server)
    }

    fn stdio_transport(&mut self, map: &Map<String, Value>, path: &str) -> Option<ServerTransport> {
        let command = if self.format == Format::Toml {
            self.string(map, "command", path)
        } else {
            None
        };
        let env = self.string_map(map, "env", path).unwrap_or_default();
        if let Some(command) = command {
            // Any executable (guardway extension: the reference requires docker).
            if command.trim().is_empty() {
                self.issue_with(
                    join(path, "command"),
                    "'command' must not be empty",
                    "set command to the server executable",
                );
            }
            for docker_only in ["container", "entrypoint", "entrypoint_args", "mounts"] {
                if map.contains_key(docker_only) {
                    self.issue_with(
                        join(path, docker_only),
                        format!("'{docker_only}' cannot be combined with 'command'"),
                        "use either command/args or the container form",
                    );
                }
            }
            let args = self.strings(map, "args", path).unwrap_or_default();
            return Some(ServerTransport::Stdio { command, args, env });
        }

        let container = self.string(map, "container", path);
        let Some(container) = container else {
            if !map.contains_key("container") {
                let (message, suggestion) = match self.format {
                    Format::Json => (
                        "'container' is required for stdio servers",
                        "add a container image, e.g. \"container\": \"ghcr.io/org/server:latest\"",
                    ),
                    Format::Toml => (
                        "'command' is required for stdio servers",
                        "add command (and args), or container, or set type = \"http\" with a url",
                    ),
                };
                let key = self.k("container", "command");
                self.issue_with(join(path, key), message, suggestion);
            }
            return None;
        };
        if !is_valid_image(&container) {
            self.issue_with(
                join(path, "container"),
                format!(
                    "invalid container image '{container}' (expected name[:tag][@sha256:<64 hex>])"
                ),
                "use an image reference such as ghcr.io/org/server:latest",
            );
        }
        let mounts = self.strings(map, "mounts", path).unwrap_or_default();
        for (index, mount) in mounts.iter().enumerate() {
            if let Err(message) = check_mount(mount) {
                self.issue_with(
                    format!("{}[{index}]", join(path, "mounts")),
                    message,
                    "use /absolute/source:/absolute/dest:ro or :rw",
                );
            }
        }
        let entrypoint_args_key = self.k("entrypointArgs", "entrypoint_args");
        let docker = DockerServer {
            container,
            entrypoint: self.string(map, "entrypoint", path),
            entrypoint_args: self
                .strings(map, entrypoint_args_key, path)
                .unwrap_or_default(),
            args: self.strings(map, "args", path).unwrap_or_default(),
            mounts,
            env,
        };
        Some(ServerTransport::Stdio {
            command: "docker".to_owned(),
            args: docker.docker_args(),
            env: BTreeMap::new(),
        })
    }

    fn auth(&mut self, map: &Map<String, Value>, path: &str, url: &str) -> Option<ServerAuth> {
        self.check_keys(map, path, &["type", "audience"]);
        let kind = self.string(map, "type", path);
        let audience = self.string(map, "audience", path);
        match kind.as_deref() {
            None => {
                if !map.contains_key("type") {
                    self.issue_with(
                        join(path, "type"),
                        "auth.type is required",
                        "set auth.type to \"github-oidc\"",
                    );
                }
                None
            }
            Some("github-oidc") => {
                if self
                    .env
                    .get("ACTIONS_ID_TOKEN_REQUEST_URL")
                    .is_none_or(|v| v.is_empty())
                {
                    self.issue_with(
                        path,
                        "github-oidc auth requires the ACTIONS_ID_TOKEN_REQUEST_URL environment variable",
                        "run inside GitHub Actions with `permissions: id-token: write`, or remove auth",
                    );
                }
                Some(ServerAuth::GithubOidc {
                    audience: audience
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| url.to_owned()),
                })
            }
            Some(other) => {
                self.issue_with(
                    join(path, "type"),
                    format!("unsupported auth type '{other}' (expected 'github-oidc')"),
                    "set auth.type to \"github-oidc\"",
                );
                None
            }
        }
    }
}

fn secs_duration(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit())
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}

/// `localhost`, `host.docker.internal`, or one lowercase RFC-1123 label.
fn is_valid_domain(domain: &str) -> bool {
    if domain == "localhost" || domain == "host.docker.internal" {
        return true;
    }
    !domain.is_empty()
        && domain.len() <= 63
        && !domain.starts_with('-')
        && !domain.ends_with('-')
        && domain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Guard types the gateway implements without a configured `[guards.*]` entry.
fn is_builtin_guard_type(name: &str) -> bool {
    matches!(name, "noop" | "write-sink")
}
