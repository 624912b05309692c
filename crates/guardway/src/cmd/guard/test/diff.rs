//! Structural diff of two JSON values: one line per difference, naming its JSON path
//! (`$.resource.secrecy[0]`) with the expected and the actual value. Object key order is
//! ignored.

use serde_json::Value;

/// Longest rendering of a value in a diff line.
const MAX_RENDERED: usize = 240;

/// Appends a line for each difference between `expected` and `actual` under `path`.
pub(super) fn diff_values(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    if expected == actual {
        return;
    }
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, value) in expected {
                let child = member_path(path, key);
                match actual.get(key) {
                    Some(other) => diff_values(&child, value, other, out),
                    None => out.push(format!("{child}: missing (expected {})", compact(value))),
                }
            }
            for (key, value) in actual {
                if !expected.contains_key(key) {
                    out.push(format!(
                        "{}: unexpected (actual {})",
                        member_path(path, key),
                        compact(value)
                    ));
                }
            }
        }
        (Value::Array(expected), Value::Array(actual)) => {
            if expected.len() != actual.len() {
                out.push(format!(
                    "{path}: expected {} element(s), actual {}",
                    expected.len(),
                    actual.len()
                ));
            }
            for (index, (e, a)) in expected.iter().zip(actual).enumerate() {
                diff_values(&format!("{path}[{index}]"), e, a, out);
            }
            for (index, value) in expected.iter().enumerate().skip(actual.len()) {
                out.push(format!(
                    "{path}[{index}]: missing (expected {})",
                    compact(value)
                ));
            }
            for (index, value) in actual.iter().enumerate().skip(expected.len()) {
                out.push(format!(
                    "{path}[{index}]: unexpected (actual {})",
                    compact(value)
                ));
            }
        }
        _ => out.push(format!(
            "{path}: expected {}, actual {}",
            compact(expected),
            compact(actual)
        )),
    }
}

/// `path.key` for identifier-like keys, else `path["key"]`.
fn member_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

/// A value on one line, cut at [`MAX_RENDERED`] bytes.
pub(super) fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_RENDERED {
        return text;
    }
    let mut end = MAX_RENDERED;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diff(expected: Value, actual: Value) -> Vec<String> {
        let mut out = Vec::new();
        diff_values("$", &expected, &actual, &mut out);
        out
    }

    #[test]
    fn equal_values_in_another_key_order_have_no_diff() {
        assert!(diff(json!({"a": 1, "b": [1, 2]}), json!({"b": [1, 2], "a": 1})).is_empty());
    }

    #[test]
    fn names_the_path_of_each_difference() {
        let lines = diff(
            json!({"resource": {"secrecy": ["private:o"], "integrity": []}, "operation": "read"}),
            json!({"resource": {"secrecy": ["private:x", "y"]}, "operation": "write", "extra": 1}),
        );
        assert_eq!(
            lines,
            vec![
                "$.resource.secrecy: expected 1 element(s), actual 2",
                "$.resource.secrecy[0]: expected \"private:o\", actual \"private:x\"",
                "$.resource.secrecy[1]: unexpected (actual \"y\")",
                "$.resource.integrity: missing (expected [])",
                "$.operation: expected \"read\", actual \"write\"",
                "$.extra: unexpected (actual 1)",
            ]
        );
    }

    #[test]
    fn odd_keys_are_quoted_and_long_values_cut() {
        let lines = diff(json!({"a b": 1}), json!({"a b": 2}));
        assert_eq!(lines, vec!["$[\"a b\"]: expected 1, actual 2"]);
        let long = "x".repeat(1000);
        let rendered = compact(&json!(long));
        assert!(rendered.len() < 300 && rendered.ends_with("(1002 bytes)"));
    }
}
