//! The MCP server: `tools/list` from the tool table, `tools/call` over the
//! shared data set, and the optional JSONL call log.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ResourceContents, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Map, Value, json};

use crate::data::DemoData;
use crate::tools::{self, ToolOutput};

/// Appends one JSON line `{"tool", "arguments"}` per `tools/call` to a file.
/// Each line is written with one `write` on a file opened for appending.
#[derive(Debug)]
pub struct CallLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl CallLog {
    pub fn new(path: PathBuf) -> CallLog {
        CallLog {
            path,
            lock: Mutex::new(()),
        }
    }

    fn record(&self, tool: &str, arguments: &Value) {
        let mut line = json!({"tool": tool, "arguments": arguments}).to_string();
        line.push('\n');
        let _guard = self.lock.lock();
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(err) = written {
            eprintln!(
                "guardway-demo-backend: cannot append to call log {}: {err}",
                self.path.display()
            );
        }
    }
}

/// The demo MCP server. Cloning is cheap (shared data set, tool table and
/// call log); every clone — e.g. one per HTTP session — sees the same data.
#[derive(Clone)]
pub struct DemoServer {
    data: Arc<Mutex<DemoData>>,
    tools: Arc<Vec<Tool>>,
    call_log: Option<Arc<CallLog>>,
}

impl DemoServer {
    pub fn new(data: DemoData, call_log: Option<CallLog>) -> DemoServer {
        let tools = tools::specs()
            .into_iter()
            .map(|spec| {
                let schema = match spec.input_schema {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                let mut tool = Tool::new(spec.name, spec.description, Arc::new(schema));
                tool.annotations = Some(ToolAnnotations::new().read_only(spec.read_only));
                tool
            })
            .collect();
        DemoServer {
            data: Arc::new(Mutex::new(data)),
            tools: Arc::new(tools),
            call_log: call_log.map(Arc::new),
        }
    }

    /// Runs one tool call; `Err` for an unknown tool.
    pub fn run(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(log) = &self.call_log {
            log.record(name, &Value::Object(arguments.clone()));
        }
        let outcome = {
            let mut data = self.data.lock();
            tools::call(&mut data, name, arguments)
        };
        let Some(outcome) = outcome else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool \"{name}\""),
                None,
            ));
        };
        Ok(match outcome {
            Ok(ToolOutput::Json(value)) => {
                CallToolResult::success(vec![ContentBlock::text(value.to_string())])
            }
            Ok(ToolOutput::Text(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Ok(ToolOutput::File {
                message,
                uri,
                mime_type,
                text,
            }) => CallToolResult::success(vec![
                ContentBlock::text(message),
                ContentBlock::resource(ResourceContents::TextResourceContents {
                    uri,
                    mime_type: Some(mime_type),
                    text,
                    meta: None,
                }),
            ]),
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        })
    }
}

impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "guardway-demo-backend",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "A demo GitHub MCP server over an embedded data set (octo-org, acme, mona).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        self.run(&request.name, &arguments)
            .map(CallToolResponse::from)
    }
}
