//! The docker form of a stdio server: validation of images and mounts, the
//! exact `docker run` command line (gateway.md §1.1), and the launch-time
//! completion of `-e NAME` arguments.

use std::collections::BTreeMap;

/// The fields of a docker-form stdio server (`container`, `entrypoint`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerServer {
    pub container: String,
    pub entrypoint: Option<String>,
    pub entrypoint_args: Vec<String>,
    /// Extra `docker run` options, before the image.
    pub args: Vec<String>,
    pub mounts: Vec<String>,
    /// `""` passes the gateway's own value through (`-e K`).
    pub env: BTreeMap<String, String>,
}

impl DockerServer {
    /// The `docker run` arguments (without the leading `docker`):
    ///
    /// ```text
    /// run --rm -i -e NO_COLOR=1 -e TERM=dumb -e PYTHONUNBUFFERED=1
    ///   [--entrypoint E] [-v MOUNT]... [-e K | -e K=V]... [ARGS...] CONTAINER [ENTRYPOINT_ARGS...]
    /// ```
    ///
    /// Environment keys are sorted.
    pub fn docker_args(&self) -> Vec<String> {
        let mut argv: Vec<String> = [
            "run",
            "--rm",
            "-i",
            "-e",
            "NO_COLOR=1",
            "-e",
            "TERM=dumb",
            "-e",
            "PYTHONUNBUFFERED=1",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(entrypoint) = &self.entrypoint {
            argv.push("--entrypoint".to_owned());
            argv.push(entrypoint.clone());
        }
        for mount in &self.mounts {
            argv.push("-v".to_owned());
            argv.push(mount.clone());
        }
        for (key, value) in &self.env {
            argv.push("-e".to_owned());
            if value.is_empty() {
                argv.push(key.clone());
            } else {
                argv.push(format!("{key}={value}"));
            }
        }
        argv.extend(self.args.iter().cloned());
        argv.push(self.container.clone());
        argv.extend(self.entrypoint_args.iter().cloned());
        argv
    }
}

/// Completes every `-e NAME` (no `=`) argument into `-e NAME=value` when
/// `lookup(NAME)` has a value; other arguments are returned unchanged.
/// Call at launch with the server's `env` over the gateway's environment
/// (for example `ServeOptions::env_var`).
pub fn resolve_launch_args(
    args: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_e = false;
    for arg in args {
        if after_e && !arg.contains('=') && !arg.starts_with('-') {
            match lookup(arg) {
                Some(value) => out.push(format!("{arg}={value}")),
                None => out.push(arg.clone()),
            }
        } else {
            out.push(arg.clone());
        }
        after_e = arg == "-e" || arg == "--env";
    }
    out
}

/// Checks an image reference `name[:tag][@sha256:<64 hex>]`.
pub(crate) fn is_valid_image(image: &str) -> bool {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return false;
        };
        if hex.len() != 64
            || !hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return false;
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let valid_tag = !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid_tag {
            return false;
        }
    }
    if name.is_empty() {
        return false;
    }
    let components: Vec<&str> = name.split('/').collect();
    let first_is_host = components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost");
    components.iter().enumerate().all(|(i, component)| {
        if i == 0 && first_is_host {
            is_registry_host(component)
        } else {
            is_path_component(component)
        }
    })
}

fn is_registry_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_path_component(component: &str) -> bool {
    // [a-z0-9]+ separated by one of `.`, `_`, `__`, or `-`+.
    if component.is_empty()
        || !component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return false;
    }
    let mut separator = String::new();
    for c in component.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.chars().all(|s| s == '-'))
            {
                return false;
            }
            separator.clear();
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    true
}

/// Checks a mount `/abs/src:/abs/dst:ro|rw`; the error is the message.
pub(crate) fn check_mount(mount: &str) -> Result<(), String> {
    let parts: Vec<&str> = mount.split(':').collect();
    // Windows sources (`C:\…`) contain one extra colon.
    let (source, dest, mode) = match parts.as_slice() {
        [source, dest, mode] => ((*source).to_owned(), *dest, *mode),
        [drive, source, dest, mode] if drive.len() == 1 => {
            (format!("{drive}:{source}"), *dest, *mode)
        }
        _ => {
            return Err(format!(
                "invalid mount format '{mount}' (expected 'source:dest:mode')"
            ));
        }
    };
    if source.is_empty() || dest.is_empty() {
        return Err(format!(
            "invalid mount format '{mount}' (expected 'source:dest:mode')"
        ));
    }
    if !is_absolute(&source) {
        return Err(format!(
            "invalid mount '{mount}': source must be an absolute path"
        ));
    }
    if !dest.starts_with('/') {
        return Err(format!(
            "invalid mount '{mount}': destination must be an absolute path"
        ));
    }
    if mode != "ro" && mode != "rw" {
        return Err(format!(
            "invalid mount '{mount}': mode must be 'ro' or 'rw', got '{mode}'"
        ));
    }
    Ok(())
}

/// `/…` or `X:\…` (also `X:/…`).
pub(crate) fn is_absolute(path: &str) -> bool {
    if path.starts_with('/') {
        return true;
    }
    let bytes = path.as_bytes();
    bytes.len() >= 3
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && (bytes[2] == b'\\' || bytes[2] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// `docker` arguments: the fixed `run --rm -i` prefix with its three
    /// environment settings, then `rest`.
    fn docker_run(rest: &[&str]) -> Vec<String> {
        let mut argv = strings(&[
            "run",
            "--rm",
            "-i",
            "-e",
            "NO_COLOR=1",
            "-e",
            "TERM=dumb",
            "-e",
            "PYTHONUNBUFFERED=1",
        ]);
        argv.extend(strings(rest));
        argv
    }

    #[test]
    fn minimal_docker_argv() {
        let server = DockerServer {
            container: "ghcr.io/github/github-mcp-server:latest".to_owned(),
            ..DockerServer::default()
        };
        assert_eq!(
            server.docker_args(),
            docker_run(&["ghcr.io/github/github-mcp-server:latest"])
        );
    }

    #[test]
    fn full_docker_argv_orders_every_part_and_sorts_env() {
        let server = DockerServer {
            container: "img:1".to_owned(),
            entrypoint: Some("/bin/server".to_owned()),
            entrypoint_args: strings(&["--stdio", "-x"]),
            args: strings(&["--network", "host"]),
            mounts: strings(&["/a:/b:ro", "/c:/d:rw"]),
            env: [("ZED", "z"), ("ALPHA", ""), ("MID", "m=1")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        assert_eq!(
            server.docker_args(),
            docker_run(&[
                "--entrypoint",
                "/bin/server",
                "-v",
                "/a:/b:ro",
                "-v",
                "/c:/d:rw",
                "-e",
                "ALPHA",
                "-e",
                "MID=m=1",
                "-e",
                "ZED=z",
                "--network",
                "host",
                "img:1",
                "--stdio",
                "-x"
            ])
        );
    }

    #[test]
    fn launch_resolution_completes_bare_names_only() {
        let args = strings(&[
            "run", "-e", "TOKEN", "-e", "SET=1", "-e", "MISSING", "TOKEN", "img",
        ]);
        let resolved =
            resolve_launch_args(&args, |name| (name == "TOKEN").then(|| "t0k".to_owned()));
        assert_eq!(
            resolved,
            strings(&[
                "run",
                "-e",
                "TOKEN=t0k",
                "-e",
                "SET=1",
                "-e",
                "MISSING",
                "TOKEN",
                "img"
            ])
        );
    }

    #[test]
    fn images() {
        for ok in [
            "alpine",
            "alpine:3.20",
            "ghcr.io/github/github-mcp-server:latest",
            "localhost:5000/a/b:v1",
            "my_org/my-image__x",
            "img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "img:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_valid_image(ok), "{ok}");
        }
        for bad in [
            "",
            "Alpine",
            "img:",
            "img@sha256:abc",
            "img@md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a b",
            "img:-x",
            "/img",
            "img/",
        ] {
            assert!(!is_valid_image(bad), "{bad}");
        }
    }

    #[test]
    fn mounts() {
        assert!(check_mount("/a:/b:ro").is_ok());
        assert!(check_mount("C:\\data:/data:rw").is_ok());
        assert_eq!(
            check_mount("/a:/b").unwrap_err(),
            "invalid mount format '/a:/b' (expected 'source:dest:mode')"
        );
        assert_eq!(
            check_mount("a:/b:ro").unwrap_err(),
            "invalid mount 'a:/b:ro': source must be an absolute path"
        );
        assert_eq!(
            check_mount("/a:b:ro").unwrap_err(),
            "invalid mount '/a:b:ro': destination must be an absolute path"
        );
        assert_eq!(
            check_mount("/a:/b:rx").unwrap_err(),
            "invalid mount '/a:/b:rx': mode must be 'ro' or 'rw', got 'rx'"
        );
    }
}
