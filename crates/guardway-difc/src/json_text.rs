//! Compact JSON text as the reference gateway encodes it: object keys sorted, `<`, `>`, `&`,
//! U+2028 and U+2029 escaped, numbers printed from 64-bit floats.

use std::fmt::Write as _;

use serde_json::Value;

/// 2^53: every integer up to this magnitude is exact in an `f64`.
const MAX_EXACT_FLOAT_INTEGER: u64 = 1 << 53;

/// Encodes `value` compactly with the reference gateway's conventions.
pub fn to_reference_json(value: &Value) -> String {
    let mut out = String::new();
    write_reference_json(&mut out, value);
    out
}

/// Appends `value` to `out`, encoded as [`to_reference_json`] does.
pub fn write_reference_json(out: &mut String, value: &Value) {
    write_value(out, value);
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            // Integers that a 64-bit float holds exactly print the same either way.
            (Some(integer), _) if integer.unsigned_abs() <= MAX_EXACT_FLOAT_INTEGER => {
                let _ = write!(out, "{integer}");
            }
            (_, float) => write_number(out, float.unwrap_or(0.0)),
        },
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
            out.push('{');
            if object.keys().is_sorted() {
                write_members(out, object.iter());
            } else {
                let mut entries: Vec<_> = object.iter().collect();
                entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
                write_members(out, entries.into_iter());
            }
            out.push('}');
        }
    }
}

fn write_members<'a>(out: &mut String, members: impl Iterator<Item = (&'a String, &'a Value)>) {
    for (index, (key, item)) in members.enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item);
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

/// Bytes that may need escaping: ASCII controls, `"`, `\\`, `<`, `>`, `&`,
/// and 0xE2, the lead byte of U+2028 and U+2029.
const ATTENTION: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xE2] = true;
    table
};

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !ATTENTION[usize::from(byte)] {
            index += 1;
            continue;
        }
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xE2 => match (bytes.get(index + 1), bytes.get(index + 2)) {
                (Some(0x80), Some(0xA8)) => "\\u2028",
                (Some(0x80), Some(0xA9)) => "\\u2029",
                _ => {
                    index += 1;
                    continue;
                }
            },
            _ => "",
        };
        out.push_str(&text[run_start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(byte));
            index += 1;
        } else {
            out.push_str(escape);
            index += if byte == 0xE2 { 3 } else { 1 };
        }
        run_start = index;
    }
    out.push_str(&text[run_start..]);
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
    fn escapes_only_the_line_separators_among_multibyte_characters() {
        let value = json!("é\u{2028}x\u{2029}\u{2027}€<\"\\");
        assert_eq!(
            to_reference_json(&value),
            "\"é\\u2028x\\u2029\u{2027}€\\u003c\\\"\\\\\""
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

    /// A number read from a tool result is written back with the same
    /// digits: parsing is exact (serde_json's `float_roundtrip`; without it
    /// the first case came back one unit in the last place off, as
    /// `1.111111111110112e+25`).
    #[test]
    fn parsed_numbers_keep_their_digits() {
        for text in [
            "1.1111111111101119e+25",
            "11111111111101119000000000",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "9007199254740993.5",
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let number = value.as_f64().unwrap();
            let again: Value = serde_json::from_str(&to_reference_json(&value)).unwrap();
            assert_eq!(
                again.as_f64().unwrap().to_bits(),
                number.to_bits(),
                "{text}"
            );
            assert_eq!(number, text.parse::<f64>().unwrap(), "{text}");
        }
    }
}
