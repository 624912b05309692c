//! The start-up part of `gateway.md` (gateway.md §7): what the gateway
//! serves, its backends and their guards, as plain data
//! ([`StartupDigest`]) and its markdown. `LogFiles` writes it and appends
//! errors and warnings after it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::logfiles::{redact, utc_timestamp};

/// A table cell: redacted, one line, `|` escaped.
fn cell(text: &str) -> String {
    redact(text).replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// One backend in the start-up digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestServer {
    pub id: String,
    /// `stdio` or `http`, with the command or URL.
    pub transport: String,
    /// `running`, `stopped` or `error`.
    pub status: String,
    /// Tools the backend listed.
    pub tools: usize,
    /// The last launch error, if any.
    pub error: Option<String>,
}

/// What `gateway.md` says about start-up. Plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupDigest {
    pub version: String,
    /// `routed`, `unified` or `stdio`.
    pub mode: String,
    /// The bound address, or `stdin/stdout`.
    pub listen: String,
    pub servers: Vec<DigestServer>,
    /// Per server, its guard's state as `/health` shows it.
    pub guards: BTreeMap<String, Value>,
    /// The guard compilation cache: a directory, `memory only` or `disabled`.
    pub cache: String,
}

impl StartupDigest {
    /// The start-up part of `gateway.md`.
    pub fn render(&self) -> String {
        let mut out = String::from("# MCP Gateway\n\n");
        out.push_str(&format!(
            "Started at `{}`.\n\n",
            utc_timestamp(SystemTime::now())
        ));
        out.push_str("| | |\n|---|---|\n");
        out.push_str(&format!("| Version | guardway {} |\n", cell(&self.version)));
        out.push_str(&format!("| Mode | {} |\n", cell(&self.mode)));
        out.push_str(&format!("| Listening on | {} |\n", cell(&self.listen)));
        out.push_str(&format!(
            "| Guard compilation cache | {} |\n",
            cell(&self.cache)
        ));
        let running = self
            .servers
            .iter()
            .filter(|s| s.status == "running")
            .count();
        out.push_str(&format!(
            "\n## Servers ({running} of {} running)\n\n",
            self.servers.len()
        ));
        out.push_str("| Server | Transport | Status | Tools | Error |\n|---|---|---|---|---|\n");
        for server in &self.servers {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&server.id),
                cell(&server.transport),
                cell(&server.status),
                server.tools,
                cell(server.error.as_deref().unwrap_or(""))
            ));
        }
        out.push_str("\n## Guards\n\n");
        if self.guards.is_empty() {
            out.push_str("No guards.\n");
        } else {
            out.push_str("| Server | Guard | Type | State | Reason |\n|---|---|---|---|---|\n");
            for (server, state) in &self.guards {
                let field = |name: &str| state.get(name).and_then(Value::as_str).unwrap_or("");
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    cell(server),
                    cell(field("name")),
                    cell(field("type")),
                    cell(field("state")),
                    cell(field("reason"))
                ));
            }
        }
        out
    }
}
