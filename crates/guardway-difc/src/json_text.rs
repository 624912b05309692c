//! Compact JSON text as the reference gateway encodes it: object keys sorted, `<`, `>`, `&`,
//! U+2028 and U+2029 escaped, numbers printed from 64-bit floats.

use std::fmt::Write as _;

use serde_json::Value;

/// Encodes `value` compactly with the reference gateway's conventions.
pub fn to_reference_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number.as_f64().unwrap_or(0.0)),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let mut entries: Vec<_> = object.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Shortest round-trip digits; plain notation for 1e-6 ≤ |x| < 1e21 (and
/// zero), else exponent notation with a signed exponent (`1e+21`, `1e-7`).
fn write_number(out: &mut String, number: f64) {
    let magnitude = number.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        let _ = write!(out, "{number}");
        return;
    }
    let text = format!("{number:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            let _ = write!(out, "{mantissa}e+{exponent}");
        }
        _ => out.push_str(&text),
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(character));
            }
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_html() {
        let value =
            json!({"b": "<a&b>", "a": [1, 2.5, null, true], "c": {"z": 1, "y": "\u{2028}\n\u{1}"}});
        assert_eq!(
            to_reference_json(&value),
            r#"{"a":[1,2.5,null,true],"b":"\u003ca\u0026b\u003e","c":{"y":"\u2028\n\u0001","z":1}}"#
        );
    }

    #[test]
    fn numbers_follow_float_formatting() {
        let cases = [
            (json!(1), "1"),
            (json!(-0.0), "-0"),
            (json!(1e21), "1e+21"),
            (json!(1.5e-7), "1.5e-7"),
            (json!(0.000001), "0.000001"),
            (json!(123456789012345678_u64), "123456789012345680"),
            (json!(1e20), "100000000000000000000"),
        ];
        for (value, expected) in cases {
            assert_eq!(to_reference_json(&value), expected);
        }
    }
}
