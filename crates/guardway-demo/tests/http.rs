//! The demo backend's streamable HTTP mode (`--http ADDR`): it prints its
//! URL and answers MCP `initialize` and `tools/call` over HTTP.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends one POST to `/mcp` and returns the raw response (headers and body).
async fn post(addr: &str, session: Option<&str>, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let session_header = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session_header}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The SSE stream of a request ends after its response; a timeout guards
    // against a stream kept open.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn serves_mcp_over_streamable_http() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardway-demo-backend"))
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    let addr = url.strip_suffix("/mcp").unwrap();

    let init = post(addr, None, r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#).await;
    assert!(init.starts_with("HTTP/1.1 200"), "{init}");
    assert!(init.contains("guardway-demo-backend"), "{init}");
    let session = header(&init, "mcp-session-id").unwrap().to_owned();
    let notified = post(
        addr,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert!(notified.starts_with("HTTP/1.1 202"), "{notified}");
    let called = post(addr, Some(&session), r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_repositories","arguments":{"query":"org:acme"}}}"#).await;
    assert!(called.starts_with("HTTP/1.1 200"), "{called}");
    assert!(
        called.contains(r#"\"full_name\":\"acme/internal\""#),
        "{called}"
    );
    child.kill().await.unwrap();
}
