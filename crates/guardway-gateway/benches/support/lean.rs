//! Minimal MCP clients for the latency bench: one JSON-RPC request written
//! and its answer read in the caller's own task, with no client framework
//! in between. A stdio client (newline-delimited JSON-RPC to a child
//! process) for the backend directly, and an HTTP/1.1 keep-alive client for
//! the gateway (streamable HTTP, SSE or JSON answers, chunked or sized
//! bodies). Both sides of a comparison then pay the same, near-zero client
//! cost, so that the difference is what the gateway itself adds.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PROTOCOL_VERSION: &str = "2025-06-18";

fn initialize_request(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "guardway-bench", "version": "0"}}})
}

fn initialized_notification() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

fn call_request(id: u64, name: &str, arguments: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": arguments}})
}

/// Whether `message` is the answer to request `id`.
fn answers(message: &Value, id: u64) -> bool {
    message.get("id").and_then(Value::as_u64) == Some(id)
        && (message.get("result").is_some() || message.get("error").is_some())
}

/// A stdio MCP client of a child process.
pub struct LeanStdio {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

impl LeanStdio {
    /// Spawns `program` and completes the MCP handshake.
    pub async fn spawn(program: &std::path::Path) -> Self {
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut client = Self {
            _child: child,
            stdin,
            stdout,
            next_id: 1,
            line: String::new(),
        };
        client.request(initialize_request(0), 0).await;
        client.send(&initialized_notification()).await;
        client
    }

    async fn send(&mut self, message: &Value) {
        let mut text = message.to_string();
        text.push('\n');
        self.stdin.write_all(text.as_bytes()).await.unwrap();
    }

    async fn request(&mut self, message: Value, id: u64) -> Value {
        self.send(&message).await;
        loop {
            self.line.clear();
            let read = self.stdout.read_line(&mut self.line).await.unwrap();
            assert!(read > 0, "the backend closed its stdout");
            let message: Value = serde_json::from_str(&self.line).unwrap();
            if answers(&message, id) {
                return message;
            }
        }
    }

    /// One `tools/call`; the JSON-RPC answer.
    pub async fn call(&mut self, name: &str, arguments: &Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.request(call_request(id, name, arguments), id).await
    }
}

/// An HTTP/1.1 keep-alive MCP client of one streamable-HTTP endpoint.
pub struct LeanHttp {
    stream: BufReader<TcpStream>,
    host: String,
    path: String,
    api_key: String,
    session: Option<String>,
    next_id: u64,
}

impl LeanHttp {
    /// Connects to `addr` (`host:port`), endpoint `path`, and completes the
    /// MCP handshake.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, api_key: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
            path: path.to_owned(),
            api_key: api_key.to_owned(),
            session: None,
            next_id: 1,
        };
        let (headers, body) = client.post(&initialize_request(0)).await;
        client.session = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("mcp-session-id"))
            .map(|(_, value)| value.clone());
        assert!(client.session.is_some(), "no session id");
        assert!(find_answer(&body, 0).is_some(), "no initialize answer");
        let (_, _) = client.post(&initialized_notification()).await;
        client
    }

    /// POSTs one message; the answer's headers and body.
    async fn post(&mut self, message: &Value) -> (Vec<(String, String)>, Vec<u8>) {
        let body = message.to_string();
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: {PROTOCOL_VERSION}\r\nContent-Length: {}\r\n",
            self.path,
            self.host,
            self.api_key,
            body.len()
        );
        if let Some(session) = &self.session {
            request.push_str(&format!("Mcp-Session-Id: {session}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        self.read_response().await
    }

    async fn read_line(&mut self) -> String {
        let mut line = String::new();
        let read = self.stream.read_line(&mut line).await.unwrap();
        assert!(read > 0, "the gateway closed the connection");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    async fn read_response(&mut self) -> (Vec<(String, String)>, Vec<u8>) {
        let status = self.read_line().await;
        assert!(
            status.starts_with("HTTP/1.1 2"),
            "unexpected status: {status}"
        );
        let mut headers = Vec::new();
        loop {
            let line = self.read_line().await;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.clone())
        };
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let size = self.read_line().await;
                let size =
                    usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap();
                if size == 0 {
                    // No trailers are sent: the empty line ending the body.
                    self.read_line().await;
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await.unwrap();
                self.read_line().await;
            }
        } else if let Some(length) = header("content-length") {
            body.resize(length.parse().unwrap(), 0);
            self.stream.read_exact(&mut body).await.unwrap();
        }
        (headers, body)
    }

    /// One `tools/call`; the JSON-RPC answer.
    pub async fn call(&mut self, name: &str, arguments: &Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (_, body) = self.post(&call_request(id, name, arguments)).await;
        find_answer(&body, id).unwrap_or_else(|| {
            panic!(
                "no answer to request {id} in {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}

/// The answer to request `id` in a body: one JSON message, or SSE events.
fn find_answer(body: &[u8], id: u64) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(message) = serde_json::from_str::<Value>(text) {
        return answers(&message, id).then_some(message);
    }
    text.split("\n\n").find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| data.strip_prefix(' ').unwrap_or(data))
            .collect();
        let message: Value = serde_json::from_str(&data.join("\n")).ok()?;
        answers(&message, id).then_some(message)
    })
}

/// Whether a `tools/call` answer is a tool result that is not an error.
pub fn is_success(answer: &Value) -> bool {
    answer.get("result").is_some() && answer["result"]["isError"] != json!(true)
}
