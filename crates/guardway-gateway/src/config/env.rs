//! The environment the configuration sees: the process environment under the
//! variables of an `--env` file, `${NAME}` expansion inside parsed values,
//! `--env` file parsing, and Go-style durations (`5s`, `1h30m`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// Variables visible to the configuration: an overlay (from `--env FILE`)
/// over, optionally, the process environment.
///
/// Cloning copies the overlay map.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    overlay: BTreeMap<String, String>,
    inherit_process: bool,
}

impl Environment {
    /// The process environment, no overlay.
    pub fn process() -> Self {
        Self {
            overlay: BTreeMap::new(),
            inherit_process: true,
        }
    }

    /// Only the given variables (tests, embedding): the process environment is
    /// not consulted.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            overlay: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            inherit_process: false,
        }
    }

    /// Sets (or replaces) variables in the overlay.
    pub fn extend(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        self.overlay.extend(vars);
    }

    /// The value of `name`, overlay first.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.overlay.get(name) {
            return Some(value.clone());
        }
        if self.inherit_process {
            return std::env::var(name).ok();
        }
        None
    }

    /// The value of `name` when set and not blank, trimmed.
    pub fn get_non_blank(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The overlay (what child processes must receive on top of the process
    /// environment).
    pub fn overlay(&self) -> &BTreeMap<String, String> {
        &self.overlay
    }
}

/// Expands every `${NAME}` in `text`; `NAME` = `[A-Za-z_][A-Za-z0-9_]*`.
/// Anything else (`$NAME`, `${A:-b}`, a lone `$`) is kept literally.
///
/// # Errors
/// The first undefined name.
pub fn expand_str(text: &str, env: &Environment) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if is_variable_name(&after[..end]) => {
                let name = &after[..end];
                match env.get(name) {
                    Some(value) => out.push_str(&value),
                    None => return Err(name.to_owned()),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands `${NAME}` in every string value and object key of `value`
/// (JSON-safe: substitution happens after parsing, so a value holding `"`
/// cannot break the document).
///
/// # Errors
/// The first undefined name, in document order.
pub fn expand_json(value: &mut Value, env: &Environment, keys: bool) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = expand_str(s, env)?;
        }
        Value::Array(items) => {
            for item in items {
                expand_json(item, env, keys)?;
            }
        }
        Value::Object(map) => {
            let taken = std::mem::take(map);
            for (key, mut item) in taken {
                let key = if keys && key.contains("${") {
                    expand_str(&key, env)?
                } else {
                    key
                };
                expand_json(&mut item, env, keys)?;
                map.insert(key, item);
            }
        }
        _ => {}
    }
    Ok(())
}

/// An `--env` file line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("env file line {line}: expected KEY=VALUE, got {text:?}")]
pub struct EnvFileError {
    pub line: usize,
    pub text: String,
}

/// Parses an `--env` file: `KEY=VALUE` lines, blank lines and `#` comments
/// skipped, an optional `export ` prefix, surrounding quotes removed, `$VAR`
/// and `${VAR}` expanded from the variables defined so far (earlier lines of
/// the file, then `env`; unknown names expand to "").
///
/// # Errors
/// A line without `=` or with an invalid key.
pub fn parse_env_file(
    text: &str,
    env: &Environment,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut vars = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let bad = || EnvFileError {
            line: index + 1,
            text: raw.to_owned(),
        };
        let (key, value) = line.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        if !is_variable_name(key) {
            return Err(bad());
        }
        let value = value.trim();
        let (value, expand) = match unquote(value) {
            Some((inner, single)) => (inner, !single),
            None => (value, true),
        };
        let value = if expand {
            expand_shell_style(value, |name| {
                vars.get(name)
                    .cloned()
                    .or_else(|| env.get(name))
                    .unwrap_or_default()
            })
        } else {
            value.to_owned()
        };
        vars.insert(key.to_owned(), value);
    }
    Ok(vars)
}

/// Strips matching quotes; the flag says whether they were single quotes.
fn unquote(value: &str) -> Option<(&str, bool)> {
    for (quote, single) in [('"', false), ('\'', true)] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return Some((&value[1..value.len() - 1], single));
        }
    }
    None
}

/// `$NAME` and `${NAME}` expansion (the `--env` file syntax).
fn expand_shell_style(text: &str, lookup: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if let Some(rest) = text[i + 1..].strip_prefix('{')
                && let Some(end) = rest.find('}')
                && is_variable_name(&rest[..end])
            {
                out.push_str(&lookup(&rest[..end]));
                i += 2 + end + 1;
                continue;
            }
            let name_len = text[i + 1..]
                .char_indices()
                .take_while(|(n, c)| {
                    c.is_ascii_alphanumeric() && !(*n == 0 && c.is_ascii_digit()) || *c == '_'
                })
                .count();
            if name_len > 0 {
                out.push_str(&lookup(&text[i + 1..i + 1 + name_len]));
                i += 1 + name_len;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or('$');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Parses a Go-style duration: `300ms`, `5s`, `1m30s`, `6h`, `1.5h`, `0`.
/// Units: `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`. A bare integer means seconds.
///
/// # Errors
/// A description of what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        if number_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}")),
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("invalid duration {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Environment {
        Environment::from_pairs([("A", "1"), ("EMPTY", ""), ("Q", "say \"hi\"")])
    }

    #[test]
    fn expands_braced_names_only() {
        assert_eq!(expand_str("x${A}y", &env()).unwrap(), "x1y");
        assert_eq!(expand_str("${EMPTY}", &env()).unwrap(), "");
        assert_eq!(
            expand_str("$A ${A:-b} ${1X} ${", &env()).unwrap(),
            "$A ${A:-b} ${1X} ${"
        );
    }

    #[test]
    fn undefined_name_is_reported() {
        assert_eq!(expand_str("${A}${NOPE}", &env()).unwrap_err(), "NOPE");
    }

    #[test]
    fn json_expansion_is_json_safe_and_covers_keys() {
        let mut doc = json!({"k${A}": ["${Q}", {"n": 3}]});
        expand_json(&mut doc, &env(), true).unwrap();
        assert_eq!(doc, json!({"k1": ["say \"hi\"", {"n": 3}]}));
    }

    #[test]
    fn env_file_parses_comments_quotes_and_references() {
        let text = "# comment\n\nexport B=two\nC=\"$B and ${A}\"\nD='$B'\nE = spaced \n";
        let vars = parse_env_file(text, &env()).unwrap();
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "two and 1");
        assert_eq!(vars["D"], "$B");
        assert_eq!(vars["E"], "spaced");
    }

    #[test]
    fn env_file_rejects_lines_without_equals() {
        let err = parse_env_file("A=1\nnonsense\n", &env()).unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn overlay_wins_over_process() {
        let mut e = Environment::process();
        e.extend([("PATH".to_owned(), "overlaid".to_owned())]);
        assert_eq!(e.get("PATH").as_deref(), Some("overlaid"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }
}
