//! jq expressions of `tool_response_filters` (gateway.md §6.2 step 8):
//! compiling them once with jaq, when the configuration is checked, and
//! running one on a JSON value with exactly one output. Applying one to a
//! tool result is `crate::pipeline::postprocess`'s (`JqFilter::apply`).

use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Ctx, Native, Vars};
use jaq_json::Val;
use serde_json::Value;

type Data = jaq_core::data::JustLut<Val>;
type CompiledFilter = jaq_core::compile::Filter<Native<Data>>;

/// Standard-library filters a response filter may not use: `env` would
/// hand the gateway's environment (tokens) to the agent.
const FORBIDDEN_FUNCTIONS: &[&str] = &["env"];

/// Why a jq expression was refused when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqCompileError {
    #[error("expression is empty")]
    Empty,
    #[error("{message}")]
    Invalid { message: String },
}

/// Why running a compiled expression on a value failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JqRunError {
    #[error("filter error: {message}")]
    Failed { message: String },
    #[error("filter halted")]
    Halted,
    #[error("filter returned no results")]
    NoOutput,
    #[error("filter returned multiple results; combine them into one value, e.g. [.a, .b]")]
    ManyOutputs,
    #[error("filter output is not JSON: {message}")]
    NotJson { message: String },
    #[error("filtered result is not a tool result: {message}")]
    NotAToolResult { message: String },
    #[error("filter did not finish within {seconds} s")]
    Timeout { seconds: u64 },
    #[error("filter task failed: {message}")]
    Task { message: String },
}

/// A compiled jq expression. Immutable, `Send + Sync`; cloning copies two
/// `Arc`s. Two filters are equal when their source texts are.
#[derive(Clone)]
pub struct JqFilter {
    source: Arc<str>,
    compiled: Arc<CompiledFilter>,
}

impl std::fmt::Debug for JqFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JqFilter").field(&self.source).finish()
    }
}

impl PartialEq for JqFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl PartialEq<&str> for JqFilter {
    fn eq(&self, other: &&str) -> bool {
        &*self.source == *other
    }
}

impl PartialEq<str> for JqFilter {
    fn eq(&self, other: &str) -> bool {
        &*self.source == other
    }
}

/// Column (1-based, in characters) of `part`, a suffix of `whole`.
fn column(whole: &str, part: &str) -> usize {
    let offset = whole.len().saturating_sub(part.len());
    whole
        .get(..offset)
        .map_or(offset, |before| before.chars().count())
        + 1
}

fn describe_load_error(code: &str, error: jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    let mut parts = Vec::new();
    match error {
        Error::Io(errors) => {
            for (path, why) in errors {
                parts.push(format!("cannot import \"{path}\": {why}"));
            }
        }
        Error::Lex(errors) => {
            for (expect, at) in errors {
                let text = match expect {
                    jaq_core::load::lex::Expect::Delim(open) => {
                        format!("unclosed '{open}': expected {}", expect.as_str())
                    }
                    other => format!("expected {}", other.as_str()),
                };
                parts.push(format!("{text} at column {}", column(code, at)));
            }
        }
        Error::Parse(errors) => {
            for (expect, at) in errors {
                let found = if at.is_empty() {
                    "end of expression".to_owned()
                } else {
                    format!("'{}'", at.chars().take(12).collect::<String>())
                };
                parts.push(format!(
                    "expected {} at column {}, found {found}",
                    expect.as_str(),
                    column(code, at)
                ));
            }
        }
    }
    parts.join("; ")
}

impl JqFilter {
    /// Parses and compiles `source` with the jq standard library (minus
    /// `env` and `$ENV`; no modules).
    ///
    /// # Errors
    /// [`JqCompileError`] with a message naming what is wrong and where.
    pub fn compile(source: &str) -> Result<Self, JqCompileError> {
        if source.trim().is_empty() {
            return Err(JqCompileError::Empty);
        }
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs::<Data>())
            .chain(jaq_json::funs::<Data>())
            .filter(|(name, _, _)| !FORBIDDEN_FUNCTIONS.contains(name));
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(
                &arena,
                File {
                    code: source,
                    path: (),
                },
            )
            .map_err(|errors| JqCompileError::Invalid {
                message: errors
                    .into_iter()
                    .map(|(_, e)| describe_load_error(source, e))
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        let compiled = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| JqCompileError::Invalid {
                message: errors
                    .into_iter()
                    .flat_map(|(_, undefined)| undefined)
                    .map(|(name, kind)| match kind {
                        jaq_core::compile::Undefined::Filter(arity) => {
                            format!("undefined filter '{name}/{arity}'")
                        }
                        other => format!("undefined {} '{name}'", other.as_str()),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
        Ok(Self {
            source: Arc::from(source),
            compiled: Arc::new(compiled),
        })
    }

    /// The expression as configured.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the filter on `input`; it must produce exactly one value.
    ///
    /// # Errors
    /// A runtime error, `halt`, no output, more than one output, or an
    /// output that is not JSON.
    pub fn run(&self, input: Val) -> Result<Value, JqRunError> {
        let ctx = Ctx::<Data>::new(&self.compiled.lut, Vars::new([]));
        let mut outputs = self.compiled.id.run((ctx, input));
        let first = match outputs.next() {
            None => return Err(JqRunError::NoOutput),
            Some(output) => output.map_err(exception)?,
        };
        if outputs.next().is_some() {
            return Err(JqRunError::ManyOutputs);
        }
        to_json(&first)
    }

    /// Runs the filter on the JSON text `text`; `None` when `text` is not JSON.
    pub fn run_on_json_text(&self, text: &str) -> Option<Result<Value, JqRunError>> {
        let input: Val = serde_json::from_str(text).ok()?;
        Some(self.run(input))
    }
}

/// A jq exception as an error; `halt` never exits the process here.
fn exception(error: jaq_core::Exn<Val>) -> JqRunError {
    match error.get_err() {
        Ok(error) => JqRunError::Failed {
            message: error.to_string(),
        },
        Err(_) => JqRunError::Halted,
    }
}

/// A jaq value as JSON: byte strings and non-string object keys are refused,
/// NaN becomes `null` as in jq.
fn to_json(value: &Val) -> Result<Value, JqRunError> {
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => {
            let text = n.to_string();
            match serde_json::from_str::<serde_json::Number>(&text) {
                Ok(number) => Value::Number(number),
                Err(_) => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number),
            }
        }
        Val::TStr(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        Val::BStr(_) => {
            return Err(JqRunError::NotJson {
                message: "byte string".to_owned(),
            });
        }
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Val::Obj(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, item) in map.iter() {
                let Val::TStr(key) = key else {
                    return Err(JqRunError::NotJson {
                        message: format!("object key {key} is not a string"),
                    });
                };
                out.insert(String::from_utf8_lossy(key).into_owned(), to_json(item)?);
            }
            Value::Object(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(source: &str, input: Value) -> Result<Value, JqRunError> {
        JqFilter::compile(source)
            .unwrap()
            .run_on_json_text(&input.to_string())
            .unwrap()
    }

    #[test]
    fn standard_library_filters_work() {
        let input = json!({"items": [{"n": 2, "t": "b"}, {"n": 1, "t": "a"}]});
        assert_eq!(
            run(".items | sort_by(.n) | map(.t)", input.clone()).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            run("{count: (.items | length), first: .items[0].t}", input).unwrap(),
            json!({"count": 2, "first": "b"})
        );
        assert_eq!(run(".x // \"none\"", json!({})).unwrap(), json!("none"));
        assert_eq!(run(". * 1.5", json!(2)).unwrap(), json!(3.0));
    }

    #[test]
    fn compile_errors_say_what_and_where() {
        let message = |s: &str| JqFilter::compile(s).unwrap_err().to_string();
        assert_eq!(message("   "), "expression is empty");
        assert!(
            message(".items | map(.a").contains("unclosed '('"),
            "{}",
            message(".items | map(.a")
        );
        assert_eq!(message("nosuchfn"), "undefined filter 'nosuchfn/0'");
        assert_eq!(message("$nope"), "undefined variable '$nope'");
        assert!(message(". |").contains("column"), "{}", message(". |"));
        assert!(message("env").contains("undefined filter 'env/0'"));
        assert!(message("$ENV").contains("undefined variable"));
        assert!(message("import \"x\" as x; .").contains("cannot import"));
    }

    #[test]
    fn runtime_failures_are_errors_not_panics() {
        assert!(matches!(
            run("error(\"boom\")", json!(1)),
            Err(JqRunError::Failed { message }) if message.contains("boom")
        ));
        assert_eq!(run("empty", json!(1)), Err(JqRunError::NoOutput));
        assert_eq!(run(".[]", json!([1, 2])), Err(JqRunError::ManyOutputs));
        assert_eq!(run("halt", json!(1)), Err(JqRunError::Halted));
        assert!(matches!(
            run(".a.b", json!({"a": 3})),
            Err(JqRunError::Failed { .. })
        ));
        assert_eq!(
            run("{(1|tostring): 1} | to_entries | from_entries", json!(null)),
            Ok(json!({"1": 1}))
        );
    }

    #[test]
    fn filters_compare_by_source() {
        let a = JqFilter::compile(".a").unwrap();
        assert_eq!(a, ".a");
        assert_eq!(a, JqFilter::compile(".a").unwrap());
        assert_ne!(a, JqFilter::compile(".b").unwrap());
        fn send_sync<T: Send + Sync>() {}
        send_sync::<JqFilter>();
    }
}
