//! Where the disk cache lives: `--wasm-cache-dir` > `GUARDWAY_WASM_CACHE_DIR` >
//! `MCP_GATEWAY_WASM_CACHE_DIR` > a default under the user's cache directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// guardway's variable naming the cache directory.
pub const WASM_CACHE_DIR_ENV: &str = "GUARDWAY_WASM_CACHE_DIR";
/// The reference gateway's variable, honoured after guardway's own.
pub const REFERENCE_WASM_CACHE_DIR_ENV: &str = "MCP_GATEWAY_WASM_CACHE_DIR";

/// The cache directory from the flag, the process environment, or
/// [`default_cache_dir`]. `None` only when no default can be found either.
pub fn resolve_cache_dir(flag: Option<&Path>) -> Option<PathBuf> {
    resolve_cache_dir_with(
        flag,
        |name| std::env::var_os(name),
        default_cache_dir_with(|name| std::env::var_os(name)),
    )
}

/// [`resolve_cache_dir`] with the environment and the default given: the
/// first non-blank (trimmed) of the flag, `GUARDWAY_WASM_CACHE_DIR`,
/// `MCP_GATEWAY_WASM_CACHE_DIR`, else `default` (`serve` passes its own).
pub fn resolve_cache_dir_with(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<OsString>,
    default: Option<PathBuf>,
) -> Option<PathBuf> {
    flag.and_then(|path| non_blank(path.as_os_str().to_owned()))
        .or_else(|| env(WASM_CACHE_DIR_ENV).and_then(non_blank))
        .or_else(|| env(REFERENCE_WASM_CACHE_DIR_ENV).and_then(non_blank))
        .or(default)
}

/// `$XDG_CACHE_HOME/guardway/wasm` (when absolute), else
/// `$HOME/.cache/guardway/wasm`.
pub fn default_cache_dir() -> Option<PathBuf> {
    default_cache_dir_with(|name| std::env::var_os(name))
}

fn default_cache_dir_with(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let xdg = env("XDG_CACHE_HOME")
        .and_then(non_blank)
        .filter(|path| path.is_absolute());
    let base = xdg.or_else(|| {
        env("HOME")
            .and_then(non_blank)
            .map(|home| home.join(".cache"))
    })?;
    Some(base.join("guardway").join("wasm"))
}

/// The value as a path, trimmed of surrounding whitespace; `None` if blank.
fn non_blank(value: OsString) -> Option<PathBuf> {
    match value.into_string() {
        Ok(text) => {
            let trimmed = text.trim();
            (!trimmed.is_empty()).then(|| PathBuf::from(trimmed))
        }
        // Not UTF-8: cannot be blank text; use it as it is.
        Err(raw) => (!raw.is_empty()).then(|| PathBuf::from(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn precedence_is_flag_then_guardway_then_reference_then_default() {
        let env = env_of(&[
            (WASM_CACHE_DIR_ENV, "/g"),
            (REFERENCE_WASM_CACHE_DIR_ENV, "/r"),
        ]);
        let default = Some(PathBuf::from("/d"));
        assert_eq!(
            resolve_cache_dir_with(Some(Path::new("/f")), &env, default.clone()),
            Some(PathBuf::from("/f"))
        );
        assert_eq!(
            resolve_cache_dir_with(None, &env, default.clone()),
            Some(PathBuf::from("/g"))
        );
        let env = env_of(&[
            (WASM_CACHE_DIR_ENV, "  "),
            (REFERENCE_WASM_CACHE_DIR_ENV, " /r "),
        ]);
        assert_eq!(
            resolve_cache_dir_with(Some(Path::new(" ")), &env, default.clone()),
            Some(PathBuf::from("/r"))
        );
        let env = env_of(&[(REFERENCE_WASM_CACHE_DIR_ENV, "")]);
        assert_eq!(resolve_cache_dir_with(None, &env, default.clone()), default);
    }

    #[test]
    fn default_prefers_absolute_xdg_then_home() {
        let env = env_of(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(
            default_cache_dir_with(&env),
            Some(PathBuf::from("/x/guardway/wasm"))
        );
        let env = env_of(&[("XDG_CACHE_HOME", "relative"), ("HOME", "/h")]);
        assert_eq!(
            default_cache_dir_with(&env),
            Some(PathBuf::from("/h/.cache/guardway/wasm"))
        );
        assert_eq!(default_cache_dir_with(env_of(&[])), None);
    }
}
