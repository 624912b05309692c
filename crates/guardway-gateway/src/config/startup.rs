//! The start-up document printed on stdout once the listener is bound
//! (gateway.md §2 "Stdout is a machine channel").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Map, Value, json};

use super::model::{RoutingMode, ServeOptions};

/// Builds `{"mcpServers": {id: {"type": "http", "url", "headers", "tools"?}}}`
/// for every configured server, in id order.
///
/// The host and port come from the bound address (an unspecified address,
/// `0.0.0.0` or `::`, becomes `127.0.0.1`), never from `gateway.domain`; the
/// scheme is `https` when TLS is configured; the path is `/mcp/<id>` in
/// routed mode and `/mcp` in unified mode; `tools` appears only when the
/// server has an allow-list.
pub fn startup_document(options: &ServeOptions, api_key: &str, bound: SocketAddr) -> Value {
    let scheme = if options.extra.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let ip = if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound.ip()
    };
    let authority = SocketAddr::new(ip, bound.port());
    let mut servers = Map::new();
    for (id, server) in &options.config.servers {
        let path = match options.mode {
            RoutingMode::Routed => format!("/mcp/{id}"),
            RoutingMode::Unified => "/mcp".to_owned(),
        };
        let mut entry = Map::new();
        entry.insert("type".to_owned(), json!("http"));
        entry.insert(
            "url".to_owned(),
            json!(format!("{scheme}://{authority}{path}")),
        );
        entry.insert("headers".to_owned(), json!({"Authorization": api_key}));
        if let Some(tools) = &server.tools {
            entry.insert("tools".to_owned(), json!(tools));
        }
        servers.insert(id.clone(), Value::Object(entry));
    }
    json!({"mcpServers": servers})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GatewayConfig, ServerConfig, TlsOptions};

    fn options() -> ServeOptions {
        let mut config = GatewayConfig::default();
        config.servers.insert(
            "github".to_owned(),
            ServerConfig {
                tools: Some(vec!["issue_read".to_owned()]),
                ..ServerConfig::default()
            },
        );
        config
            .servers
            .insert("search".to_owned(), ServerConfig::default());
        ServeOptions::new(config)
    }

    #[test]
    fn routed_document_on_unspecified_address() {
        let doc = startup_document(&options(), "key", "0.0.0.0:8000".parse().unwrap());
        assert_eq!(
            doc,
            json!({"mcpServers": {
                "github": {"type": "http", "url": "http://127.0.0.1:8000/mcp/github",
                    "headers": {"Authorization": "key"}, "tools": ["issue_read"]},
                "search": {"type": "http", "url": "http://127.0.0.1:8000/mcp/search",
                    "headers": {"Authorization": "key"}}
            }})
        );
    }

    #[test]
    fn unified_tls_ipv6() {
        let mut o = options();
        o.mode = RoutingMode::Unified;
        o.extra.tls = Some(TlsOptions {
            cert: "c".into(),
            key: "k".into(),
            client_ca: None,
        });
        let doc = startup_document(&o, "k", "[::1]:9000".parse().unwrap());
        assert_eq!(doc["mcpServers"]["search"]["url"], "https://[::1]:9000/mcp");
        let doc = startup_document(&o, "k", "[::]:9000".parse().unwrap());
        assert_eq!(
            doc["mcpServers"]["github"]["url"],
            "https://127.0.0.1:9000/mcp"
        );
    }
}
