//! The crate's folders follow a request's path and import only downwards:
//! every `crate::<unit>` (and `super::` path leaving a folder) in
//! `src/` is collected per top-level unit, and an import of a unit that is
//! not below, or any cycle between units, fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The units of the crate, top first: a unit may import units of later
/// layers only (never its own layer's other units, never an earlier one).
const LAYERS: &[&[&str]] = &[
    // Start-up and shutdown: builds every stage and wires them together.
    &["gateway"],
    // Why the gateway could not start (names the TLS listener's errors).
    &["error"],
    // Where a request enters: HTTP, sessions, the MCP server handler.
    &["agent"],
    // What happens to a call: the DIFC pipeline, limits, post-processing.
    &["pipeline"],
    // Where it leaves: backend connections and their notifications.
    &["backend"],
    // Leaves reached by handles passed down.
    &["observe"],
    &["config"],
];

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/` (`agent/http.rs` → `agent`,
/// `http`; `backend/mod.rs` → `backend`; `lib.rs` → nothing).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap();
    match file.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The source without comments, string and character literals (their
/// text may name modules without importing them).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && !is_ident(out.chars().last())
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else {
                Some(i + 2).filter(|&j| chars.get(j) == Some(&'\''))
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The first segments of the paths named after `crate::` (including
/// `crate::{a::x, b}` groups) and of `super::` paths, resolved from the
/// file's module path.
fn referenced_units(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut units = BTreeSet::new();
    let bytes: Vec<char> = code.chars().collect();
    let text: String = bytes.iter().collect();
    let mut at = 0;
    while let Some(found) = text[at..].find("crate::") {
        let start = at + found;
        at = start + "crate::".len();
        if start > 0 && is_ident(text[..start].chars().last()) {
            continue;
        }
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c == ',' {
                    first = true;
                    item.clear();
                    continue;
                }
                if first {
                    if is_ident(Some(c)) {
                        item.push(c);
                    } else if !item.is_empty() {
                        units.insert(item.clone());
                        first = false;
                    }
                }
            }
            if first && !item.is_empty() {
                units.insert(item);
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(Some(*c))).collect();
            if !name.is_empty() {
                units.insert(name);
            }
        }
    }
    let mut at = 0;
    while let Some(found) = text[at..].find("super::") {
        let start = at + found;
        if start > 0 && (is_ident(text[..start].chars().last()) || text[..start].ends_with("::")) {
            at = start + "super::".len();
            continue;
        }
        let mut depth = 0;
        let mut cursor = start;
        while text[cursor..].starts_with("super::") {
            depth += 1;
            cursor += "super::".len();
        }
        at = cursor;
        let name: String = text[cursor..]
            .chars()
            .take_while(|c| is_ident(Some(*c)))
            .collect();
        // `super` from a file's top level; deeper `mod` blocks inside a
        // file only ever reach back into the file itself.
        if depth <= module.len() {
            let mut path: Vec<String> = module[..module.len() - depth].to_vec();
            if !name.is_empty() {
                path.push(name);
            }
            if let Some(first) = path.first() {
                units.insert(first.clone());
            }
        }
    }
    units
}

/// Unit → units it imports (itself excluded), over every file of `src/`.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<(PathBuf, Vec<String>)> = files
        .into_iter()
        .map(|file| {
            let module = module_path(file.strip_prefix(&src).unwrap());
            (file, module)
        })
        .collect();
    // lib.rs (no unit) is the facade: it re-exports every stage.
    let units: BTreeSet<String> = modules
        .iter()
        .filter_map(|(_, module)| module.first().cloned())
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, module) in &modules {
        let Some(unit) = module.first() else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let entry = graph.entry(unit.clone()).or_default();
        for used in referenced_units(&code, module) {
            // A `super::` path of a `mod` block inside a file may resolve
            // to a sibling module's name, which is no unit: skip those.
            if used != *unit && units.contains(&used) {
                entry.insert(used);
            }
        }
    }
    graph
}

fn layer_of(unit: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&unit))
}

/// Every unit that imports one that is not below it, as `a -> b`.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (unit, imports) in graph {
        let Some(from) = layer_of(unit) else {
            found.push(format!("{unit}: not placed in LAYERS"));
            continue;
        };
        for used in imports {
            match layer_of(used) {
                Some(to) if to > from => {}
                _ => found.push(format!("{unit} -> {used}")),
            }
        }
    }
    found
}

/// A cycle in `graph`, if any, as the units along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        unit: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(position) = path.iter().position(|u| u == unit) {
            let mut cycle = path[position..].to_vec();
            cycle.push(unit.to_owned());
            return Some(cycle);
        }
        if done.contains(unit) {
            return None;
        }
        path.push(unit.to_owned());
        for next in graph.get(unit).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(unit.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|unit| visit(unit, graph, &mut Vec::new(), &mut done))
}

#[test]
fn folders_import_only_downwards_and_never_in_a_cycle() {
    let graph = import_graph();
    assert!(graph.contains_key("agent") && graph.contains_key("config"));
    let found = violations(&graph);
    assert!(
        found.is_empty(),
        "imports against the layering (declared in tests/gateway/layering.rs):\n{}\ngraph: {graph:#?}",
        found.join("\n")
    );
    if let Some(cycle) = cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checks_see_upward_imports_groups_and_super_paths() {
    let module = vec!["backend".to_owned(), "relay".to_owned()];
    let code = code_only(
        r#"
        use crate::{config::ServerConfig, observe};
        use crate::agent::server::X; // crate::pipeline in a comment
        let s = "crate::gateway in a string";
        use super::super::pipeline::Y;
        fn f<'a>(c: char) -> bool { c == '"' || c == '\'' }
        "#,
    );
    let units = referenced_units(&code, &module);
    assert_eq!(
        units,
        BTreeSet::from(["agent", "config", "observe", "pipeline"].map(str::to_owned))
    );
    let graph = BTreeMap::from([
        ("backend".to_owned(), units),
        ("agent".to_owned(), BTreeSet::from(["backend".to_owned()])),
        ("pipeline".to_owned(), BTreeSet::new()),
    ]);
    assert_eq!(
        violations(&graph),
        ["backend -> agent", "backend -> pipeline"]
    );
    assert_eq!(
        cycle(&graph),
        Some(["agent", "backend", "agent"].map(str::to_owned).to_vec())
    );
}
