//! The GitHub settings read from the environment, with the reference
//! gateway's names, order and fallbacks: the workflow repository, the
//! token, the API base URL, and yes/no variables.

use std::fmt;

/// The public API, used when nothing else names one.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The workflow repository, `owner/repo`.
pub const REPOSITORY_VARIABLE: &str = "GITHUB_REPOSITORY";
/// An explicit API base URL.
pub const API_URL_VARIABLE: &str = "GITHUB_API_URL";
/// The GitHub server, from which an API URL is derived.
pub const SERVER_URL_VARIABLE: &str = "GITHUB_SERVER_URL";
/// Turns force-public-repos off when false.
pub const FORCE_PUBLIC_REPOS_VARIABLE: &str = "MCP_GATEWAY_FORCE_PUBLIC_REPOS";
/// The token variables, first non-blank wins.
pub const TOKEN_VARIABLES: [&str; 4] = [
    "GITHUB_MCP_SERVER_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_PERSONAL_ACCESS_TOKEN",
    "GH_TOKEN",
];

/// A GitHub token and where it came from (a variable name, or a flag).
/// `Debug` and `Display` show the source, never the value. Cloning copies
/// the string.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    source: String,
    value: String,
}

impl Token {
    /// A token from `source` (e.g. `--github-token`).
    pub fn new(source: impl Into<String>, value: impl Into<String>) -> Self {
        Token {
            source: source.into(),
            value: value.into(),
        }
    }

    /// Where the token came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The token itself.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(from {})", self.source)
    }
}

/// The first non-blank token variable, trimmed, in [`TOKEN_VARIABLES`] order.
pub fn lookup_token(get: impl Fn(&str) -> Option<String>) -> Option<Token> {
    TOKEN_VARIABLES.iter().find_map(|name| {
        get(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .map(|value| Token::new(*name, value))
    })
}

/// The API base URL without a trailing `/`: `GITHUB_API_URL` (trimmed),
/// else one derived from `GITHUB_SERVER_URL` (`github.com` → the public
/// API, `*.ghe.com` → `copilot-api.<host>`, another host → `<host>/api/v3`),
/// else `default`.
pub fn derive_api_url(get: impl Fn(&str) -> Option<String>, default: &str) -> String {
    if let Some(url) = get(API_URL_VARIABLE)
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
    {
        return url;
    }
    if let Some(url) = get(SERVER_URL_VARIABLE)
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
        .and_then(|url| api_url_of_server(&url))
    {
        return url;
    }
    default.trim().trim_end_matches('/').to_owned()
}

/// The API of a GitHub server URL; `None` when it is not an http(s) URL
/// with a host.
fn api_url_of_server(server_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(server_url.trim_end_matches('/')).ok()?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = url
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    if host == "github.com" || host == "www.github.com" {
        return Some(DEFAULT_API_URL.to_owned());
    }
    if host.ends_with(".ghe.com") {
        return Some(format!("{scheme}://copilot-api.{host}{port}"));
    }
    Some(format!("{scheme}://{host}{port}/api/v3"))
}

/// A yes/no variable as the reference reads it: `1`/`true`/`yes`/`on` and
/// `0`/`false`/`no`/`off` in any case; unset, empty or anything else is
/// `None` (the caller's default).
pub fn env_bool(value: Option<&str>) -> Option<bool> {
    match value?.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Where the workflow runs and how to ask GitHub about it. Plain data;
/// cloning copies three strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHubEnv {
    repository: Option<String>,
    token: Option<Token>,
    api_url: String,
}

impl GitHubEnv {
    /// Reads `GITHUB_REPOSITORY` (as given; empty = unset), the token and
    /// the API URL through `get` (the gateway passes its view of the
    /// environment, `--env` files included).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        GitHubEnv {
            repository: get(REPOSITORY_VARIABLE).filter(|repository| !repository.is_empty()),
            token: lookup_token(&get),
            api_url: derive_api_url(&get, DEFAULT_API_URL),
        }
    }

    /// Replaces the token (proxy mode's `--github-token`).
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// Replaces the API base URL (proxy mode's upstream).
    pub fn with_api_url(mut self, api_url: impl Into<String>) -> Self {
        self.api_url = api_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// `owner/repo`, when set.
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }

    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// Without a trailing `/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn token_variables_are_read_in_the_reference_order() {
        let all = [
            ("GH_TOKEN", "d"),
            ("GITHUB_PERSONAL_ACCESS_TOKEN", "c"),
            ("GITHUB_TOKEN", "b"),
            ("GITHUB_MCP_SERVER_TOKEN", "a"),
        ];
        for skip in 0..4 {
            let present: Vec<(&str, &str)> = all
                .iter()
                .filter(|(name, _)| TOKEN_VARIABLES[..skip].iter().all(|s| s != name))
                .copied()
                .collect();
            let token = lookup_token(vars(&present)).unwrap();
            assert_eq!(token.source(), TOKEN_VARIABLES[skip]);
        }
        // Blank values are skipped; values are trimmed.
        let token = lookup_token(vars(&[
            ("GITHUB_MCP_SERVER_TOKEN", "  "),
            ("GH_TOKEN", " x "),
        ]))
        .unwrap();
        assert_eq!((token.source(), token.value()), ("GH_TOKEN", "x"));
        assert_eq!(lookup_token(vars(&[])), None);
    }

    #[test]
    fn token_debug_hides_the_value() {
        let token = Token::new("GITHUB_TOKEN", "ghp_secret");
        assert_eq!(format!("{token:?}"), "Token(from GITHUB_TOKEN)");
    }

    #[test]
    fn api_url_from_the_variable_the_server_or_the_default() {
        assert_eq!(
            derive_api_url(
                vars(&[("GITHUB_API_URL", " http://127.0.0.1:9/ ")]),
                DEFAULT_API_URL
            ),
            "http://127.0.0.1:9"
        );
        let server =
            |url: &str| derive_api_url(vars(&[("GITHUB_SERVER_URL", url)]), DEFAULT_API_URL);
        assert_eq!(server("https://github.com"), "https://api.github.com");
        assert_eq!(server("https://WWW.GitHub.com/"), "https://api.github.com");
        assert_eq!(
            server("https://acme.ghe.com"),
            "https://copilot-api.acme.ghe.com"
        );
        assert_eq!(
            server("https://acme.ghe.com:8443"),
            "https://copilot-api.acme.ghe.com:8443"
        );
        assert_eq!(
            server("http://ghes.example.com:8080/"),
            "http://ghes.example.com:8080/api/v3"
        );
        assert_eq!(server("ftp://ghes.example.com"), DEFAULT_API_URL);
        assert_eq!(server("not a url"), DEFAULT_API_URL);
        // GITHUB_API_URL wins over GITHUB_SERVER_URL.
        assert_eq!(
            derive_api_url(
                vars(&[
                    ("GITHUB_API_URL", "http://a"),
                    ("GITHUB_SERVER_URL", "https://github.com")
                ]),
                DEFAULT_API_URL
            ),
            "http://a"
        );
        assert_eq!(derive_api_url(vars(&[]), "https://x/"), "https://x");
    }

    #[test]
    fn yes_no_words_as_the_reference_reads_them() {
        for yes in ["1", "true", "TRUE", "yes", "On"] {
            assert_eq!(env_bool(Some(yes)), Some(true), "{yes}");
        }
        for no in ["0", "false", "False", "no", "OFF"] {
            assert_eq!(env_bool(Some(no)), Some(false), "{no}");
        }
        for other in ["", " false", "maybe", "2"] {
            assert_eq!(env_bool(Some(other)), None, "{other:?}");
        }
        assert_eq!(env_bool(None), None);
    }

    #[test]
    fn repository_is_taken_as_given_and_empty_is_unset() {
        let env = GitHubEnv::from_lookup(vars(&[("GITHUB_REPOSITORY", "o/r")]));
        assert_eq!(env.repository(), Some("o/r"));
        assert_eq!(env.api_url(), DEFAULT_API_URL);
        let env = GitHubEnv::from_lookup(vars(&[("GITHUB_REPOSITORY", "")]));
        assert_eq!(env.repository(), None);
        let env = env
            .with_token(Token::new("--github-token", "t"))
            .with_api_url("http://up/");
        assert_eq!(env.token().map(Token::source), Some("--github-token"));
        assert_eq!(env.api_url(), "http://up");
    }
}
