//! A DIFC guard written directly against the guard ABI: raw exports, a hand-written
//! allocator and host imports, a policy kept in a global — the habits of the guards
//! written for the reference gateway, without the `guardway-guest` SDK.

use std::sync::Mutex;

use serde_json::{Value, json};

/// The session policy from `label_agent`, kept for the instance's later calls.
static POLICY: Mutex<Option<Policy>> = Mutex::new(None);

#[derive(Debug, Clone, PartialEq)]
struct Policy {
    /// Repositories the agent may read: `None` for all, else `owner/repo` or `owner/*`.
    scopes: Option<Vec<String>>,
    min_integrity: String,
}

const LEVELS: [&str; 4] = ["none", "unapproved", "approved", "merged"];

mod host {
    //! `env.host_log` and `env.call_backend`; stand-ins off wasm so the crate builds and
    //! tests on the host.

    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn host_log(level: i32, ptr: *const u8, len: i32);
        fn call_backend(
            tool_ptr: *const u8,
            tool_len: i32,
            args_ptr: *const u8,
            args_len: i32,
            result_ptr: *mut u8,
            result_size: i32,
        ) -> i32;
    }

    /// Logs `message` at `level` (0 debug, 1 info, 2 warn, 3 error).
    pub fn log(level: i32, message: &str) {
        #[cfg(target_arch = "wasm32")]
        // SAFETY: the pointer and length describe `message`, valid for the call.
        unsafe {
            host_log(level, message.as_ptr(), message.len() as i32)
        };
        #[cfg(not(target_arch = "wasm32"))]
        let _ = (level, message);
    }

    /// Calls a backend tool; the result JSON, or the negative code.
    pub fn backend(tool: &str, args: &str) -> Result<Vec<u8>, i32> {
        let mut buffer = vec![0u8; 64 * 1024];
        for _ in 0..2 {
            let code = raw_call(tool, args, &mut buffer);
            if code >= 0 {
                buffer.truncate(code as usize);
                return Ok(buffer);
            }
            if code != -2 {
                return Err(code);
            }
            let needed = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
            buffer = vec![0u8; needed as usize];
        }
        Err(-2)
    }

    #[cfg(target_arch = "wasm32")]
    fn raw_call(tool: &str, args: &str, buffer: &mut [u8]) -> i32 {
        // SAFETY: every pointer/length pair describes a live Rust slice for the call.
        unsafe {
            call_backend(
                tool.as_ptr(),
                tool.len() as i32,
                args.as_ptr(),
                args.len() as i32,
                buffer.as_mut_ptr(),
                buffer.len() as i32,
            )
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn raw_call(_tool: &str, _args: &str, _buffer: &mut [u8]) -> i32 {
        -1
    }
}

/// Reserves `size` bytes for the host (0 on failure).
#[unsafe(no_mangle)]
pub extern "C" fn alloc(size: i32) -> i32 {
    let Ok(layout) = std::alloc::Layout::from_size_align(size.max(1) as usize, 1) else {
        return 0;
    };
    // SAFETY: the layout has a non-zero size.
    unsafe { std::alloc::alloc(layout) as i32 }
}

/// Frees what [`alloc`] returned.
#[unsafe(no_mangle)]
pub extern "C" fn dealloc(ptr: i32, size: i32) {
    if ptr == 0 {
        return;
    }
    if let Ok(layout) = std::alloc::Layout::from_size_align(size.max(1) as usize, 1) {
        // SAFETY: the host passes back a pointer from `alloc` with the same size.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout) }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn label_agent(input_ptr: i32, input_len: i32, out_ptr: i32, out_size: i32) -> i32 {
    export(
        "label_agent",
        agent,
        input_ptr,
        input_len,
        out_ptr,
        out_size,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn label_resource(
    input_ptr: i32,
    input_len: i32,
    out_ptr: i32,
    out_size: i32,
) -> i32 {
    export(
        "label_resource",
        resource,
        input_ptr,
        input_len,
        out_ptr,
        out_size,
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn label_response(
    input_ptr: i32,
    input_len: i32,
    out_ptr: i32,
    out_size: i32,
) -> i32 {
    export(
        "label_response",
        response,
        input_ptr,
        input_len,
        out_ptr,
        out_size,
    )
}

/// Reads the input, runs `label`, writes the output: its length, 0 for none, -1 on any
/// failure (including an output that does not fit: this guard never answers -2).
fn export(
    name: &str,
    label: fn(&Value) -> Result<Option<Value>, String>,
    input_ptr: i32,
    input_len: i32,
    out_ptr: i32,
    out_size: i32,
) -> i32 {
    // SAFETY: the host passes a buffer of `input_len` bytes at `input_ptr` in our memory.
    let input = unsafe { std::slice::from_raw_parts(input_ptr as *const u8, input_len as usize) };
    let input: Value = match serde_json::from_slice(input) {
        Ok(input) => input,
        Err(error) => {
            host::log(3, &format!("{name}: input is not JSON: {error}"));
            return -1;
        }
    };
    host::log(0, &format!("{name} called"));
    let output = match label(&input) {
        Ok(Some(output)) => output.to_string(),
        Ok(None) => return 0,
        Err(error) => {
            host::log(3, &format!("{name}: {error}"));
            return -1;
        }
    };
    if output.len() > out_size as usize {
        host::log(
            3,
            &format!("{name}: output of {} bytes does not fit", output.len()),
        );
        return -1;
    }
    // SAFETY: the host passes an output buffer of `out_size` bytes at `out_ptr`.
    let out = unsafe { std::slice::from_raw_parts_mut(out_ptr as *mut u8, out_size as usize) };
    out[..output.len()].copy_from_slice(output.as_bytes());
    output.len() as i32
}

fn agent(policy: &Value) -> Result<Option<Value>, String> {
    let Some(allow) = policy.get("allow-only") else {
        return Ok(Some(
            json!({"success": false, "error": "policy has no allow-only"}),
        ));
    };
    let min_integrity = allow
        .get("min-integrity")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned();
    let scopes = match allow.get("repos") {
        Some(Value::String(all)) if all == "all" => None,
        Some(Value::Array(repos)) => Some(
            repos
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect(),
        ),
        other => {
            return Ok(Some(json!({"success": false,
                "error": format!("this guard supports repos \"all\" or a list, not {}", other.unwrap_or(&Value::Null))})));
        }
    };
    let policy = Policy {
        scopes,
        min_integrity,
    };
    let secrecy: Vec<String> = match &policy.scopes {
        None => vec!["private".to_owned()],
        Some(scopes) => scopes.iter().map(|s| format!("private:{s}")).collect(),
    };
    let integrity = vec![policy.min_integrity.clone()];
    host::log(1, &format!("label_agent: {} scope(s)", secrecy.len()));
    *POLICY.lock().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    Ok(Some(json!({
        "agent": {"secrecy": secrecy, "integrity": integrity},
        "difc_mode": "filter",
        "normalized_policy": {"min-integrity": integrity[0]},
    })))
}

fn repo_of(args: &Value) -> Option<(String, String)> {
    let owner = args.get("owner")?.as_str()?.to_ascii_lowercase();
    let repo = args.get("repo")?.as_str()?.to_ascii_lowercase();
    Some((owner, repo))
}

/// The secrecy tag of a private repository: the policy scope holding it, else its name.
fn secrecy_tag(owner: &str, repo: &str) -> String {
    let policy = POLICY.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match policy.and_then(|p| p.scopes) {
        None => "private".to_owned(),
        Some(scopes) => {
            let full = format!("{owner}/{repo}");
            let wildcard = format!("{owner}/*");
            scopes
                .into_iter()
                .find(|s| *s == full || *s == wildcard)
                .map_or_else(|| format!("private:{full}"), |s| format!("private:{s}"))
        }
    }
}

/// Whether the repository is private, from `search_repositories`; unknown counts as private.
fn is_private(owner: &str, repo: &str) -> bool {
    let args = json!({"query": format!("repo:{owner}/{repo}")}).to_string();
    let answer = match host::backend("search_repositories", &args) {
        Ok(answer) => answer,
        Err(code) => {
            host::log(
                2,
                &format!(
                    "search_repositories failed with {code}: {owner}/{repo} counts as private"
                ),
            );
            return true;
        }
    };
    let found = serde_json::from_slice::<Value>(&answer)
        .ok()
        .and_then(|result| {
            let text = result.pointer("/content/0/text")?.as_str()?;
            let page: Value = serde_json::from_str(text).ok()?;
            page.get("items")?
                .as_array()?
                .iter()
                .find(|item| {
                    item.get("full_name").and_then(Value::as_str)
                        == Some(&format!("{owner}/{repo}"))
                })?
                .get("private")?
                .as_bool()
        });
    found.unwrap_or(true)
}

fn resource(input: &Value) -> Result<Option<Value>, String> {
    let tool = input
        .get("tool_name")
        .and_then(Value::as_str)
        .ok_or("no tool_name")?;
    let args = input.get("tool_args").cloned().unwrap_or(Value::Null);
    let read = matches!(tool, "issue_read" | "get_issue" | "list_issues");
    let Some((owner, repo)) = repo_of(&args).filter(|_| read) else {
        return Ok(Some(
            json!({"resource": {"description": tool, "secrecy": [], "integrity": []}, "operation": "write"}),
        ));
    };
    let secrecy = if is_private(&owner, &repo) {
        vec![secrecy_tag(&owner, &repo)]
    } else {
        Vec::new()
    };
    let description = match args.get("issue_number").and_then(Value::as_u64) {
        Some(n) => format!("issue {owner}/{repo}#{n}"),
        None => format!("{tool} {owner}/{repo}"),
    };
    host::log(1, &format!("label_resource {tool}: {description}"));
    Ok(Some(
        json!({"resource": {"description": description, "secrecy": secrecy, "integrity": []}, "operation": "read"}),
    ))
}

/// The integrity level of an issue from its author's association.
fn level(issue: &Value) -> &'static str {
    match issue.get("author_association").and_then(Value::as_str) {
        Some("OWNER" | "MEMBER" | "COLLABORATOR") => "approved",
        Some("CONTRIBUTOR") => "unapproved",
        _ => "none",
    }
}

fn integrity(level: &str) -> Vec<String> {
    let rank = LEVELS.iter().position(|l| *l == level).unwrap_or(0);
    LEVELS[..=rank].iter().map(|l| (*l).to_owned()).collect()
}

fn response(input: &Value) -> Result<Option<Value>, String> {
    let tool = input
        .get("tool_name")
        .and_then(Value::as_str)
        .ok_or("no tool_name")?;
    let text = input
        .pointer("/tool_result/content/0/text")
        .and_then(Value::as_str);
    let Some(result) = text.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return Ok(None);
    };
    match tool {
        "issue_read" | "get_issue" => Ok(Some(json!({
            "labeled_paths": [],
            "default_labels": {"secrecy": [], "integrity": integrity(level(&result))},
            "items_path": "",
        }))),
        "list_issues" => {
            let items = result.as_array().cloned().unwrap_or_default();
            let paths: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(i, issue)| json!({"path": format!("/{i}"), "labels": {"secrecy": [], "integrity": integrity(level(issue))}}))
                .collect();
            host::log(
                1,
                &format!("label_response list_issues: {} item(s)", paths.len()),
            );
            Ok(Some(json!({"labeled_paths": paths, "items_path": ""})))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_author_association() {
        assert_eq!(level(&json!({"author_association": "MEMBER"})), "approved");
        assert_eq!(integrity("unapproved"), vec!["none", "unapproved"]);
        assert_eq!(integrity("bogus"), vec!["none"]);
    }
}
