//! `guard test --update`: replaces the value of a case file's top-level `expect` key in the
//! file's text, leaving every other byte of the file as it was (or appends `expect` when
//! the case has none).

use serde_json::Value;

/// Why a case file's text could not be updated.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpdateError {
    #[error("the case file is not a JSON object")]
    NotAnObject,
    #[error("cannot serialise the new expectation: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// `text` with its top-level `expect` value replaced by `expect` (pretty-printed and
/// indented like the key's line), or with `"expect": …` added as the last member.
pub(super) fn replace_expect(text: &str, expect: &Value) -> Result<String, UpdateError> {
    let members = top_level_members(text).ok_or(UpdateError::NotAnObject)?;
    let pretty = serde_json::to_string_pretty(expect)?;
    if let Some(member) = members.members.iter().find(|m| m.key == "expect") {
        let indent = line_indent(text, member.key_start);
        let value = reindent(&pretty, indent);
        return Ok(format!(
            "{}{}{}",
            &text[..member.value_start],
            value,
            &text[member.value_end..]
        ));
    }
    let (indent, separator) = match members.members.last() {
        Some(last) => (line_indent(text, last.key_start).to_owned(), ","),
        None => ("  ".to_owned(), ""),
    };
    let insert_at = match members.members.last() {
        Some(last) => last.value_end,
        None => members.open + 1,
    };
    let value = reindent(&pretty, &indent);
    Ok(format!(
        "{}{separator}\n{indent}\"expect\": {value}{}{}",
        &text[..insert_at],
        if members.members.is_empty() { "\n" } else { "" },
        &text[insert_at..]
    ))
}

/// Adds `indent` after every newline of `pretty`.
fn reindent(pretty: &str, indent: &str) -> String {
    pretty.replace('\n', &format!("\n{indent}"))
}

/// The leading spaces/tabs of the line holding byte `at`.
fn line_indent(text: &str, at: usize) -> &str {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..at];
    let width = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[..width]
}

#[derive(Debug)]
struct Member {
    key: String,
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

#[derive(Debug)]
struct Members {
    open: usize,
    members: Vec<Member>,
}

/// The members of the top-level object with their byte spans; `None` when `text` is not
/// a JSON object (the caller parsed it with serde_json first, so this scanner only needs
/// to find boundaries).
fn top_level_members(text: &str) -> Option<Members> {
    let bytes = text.as_bytes();
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let open = at;
    at += 1;
    let mut members = Vec::new();
    loop {
        at = skip_ws(bytes, at);
        match bytes.get(at)? {
            b'}' => return Some(Members { open, members }),
            b',' => {
                at += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_start = at;
        let key_end = skip_string(bytes, at)?;
        let key: String = serde_json::from_str(&text[key_start..key_end]).ok()?;
        at = skip_ws(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(bytes, at + 1);
        let value_end = skip_value(bytes, value_start)?;
        members.push(Member {
            key,
            key_start,
            value_start,
            value_end,
        });
        at = value_end;
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// The index after the string starting at `at` (which holds `"`).
fn skip_string(bytes: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// The index after the JSON value starting at `at`.
fn skip_value(bytes: &[u8], mut at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            while bytes
                .get(at)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                at += 1;
            }
            Some(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_only_the_expect_value() {
        let text = "{\n  \"name\": \"x\",  \"call\":\"label_agent\",\n  \"expect\": {\"output\": {\"a\": \"}\"}},\n  \"input\": {\"z\": 1, \"a\": [2]}\n}\n";
        let updated = replace_expect(text, &json!({"error": true})).unwrap();
        assert_eq!(
            updated,
            "{\n  \"name\": \"x\",  \"call\":\"label_agent\",\n  \"expect\": {\n    \"error\": true\n  },\n  \"input\": {\"z\": 1, \"a\": [2]}\n}\n"
        );
        let parsed: Value = serde_json::from_str(&updated).unwrap();
        assert_eq!(parsed["expect"], json!({"error": true}));
    }

    #[test]
    fn appends_expect_when_missing() {
        let text = "{\n  \"call\": \"label_agent\",\n  \"input\": {}\n}\n";
        let updated = replace_expect(text, &json!({"output": null})).unwrap();
        assert_eq!(
            updated,
            "{\n  \"call\": \"label_agent\",\n  \"input\": {},\n  \"expect\": {\n    \"output\": null\n  }\n}\n"
        );
        let empty = replace_expect("{}", &json!({"error": true})).unwrap();
        let parsed: Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(parsed, json!({"expect": {"error": true}}));
    }

    #[test]
    fn escaped_quotes_and_scalars_are_skipped() {
        let text = r#"{"a": "q\"}", "b": 12, "c": true, "expect": null}"#;
        let updated = replace_expect(text, &json!(1)).unwrap();
        assert_eq!(updated, r#"{"a": "q\"}", "b": 12, "c": true, "expect": 1}"#);
        assert!(replace_expect("[1]", &json!(1)).is_err());
    }
}
