//! Configuration input: a TOML file or stdin JSON through the parser and
//! validator, then through everything `serve` derives from a valid one
//! (flag/variable resolution, the start-up document); and the small parsers
//! of configuration values (`--env` files, durations, `${NAME}` expansion,
//! listen addresses, policy JSON, sink server ids).
//!
//! The first byte picks the parser; the rest is the text. Parsing must never
//! panic and must be deterministic.

#![no_main]

use guardway_gateway::config::{
    Environment, ServeFlags, expand_str, parse_duration, parse_env_file, parse_json, parse_listen,
    parse_sink_server_ids, parse_toml, resolve_serve_options, startup_document,
    validate_config_policy,
};
use libfuzzer_sys::fuzz_target;

fn environment() -> Environment {
    Environment::from_pairs([
        ("HOME", "/home/agent"),
        ("GITHUB_TOKEN", "ghp_example"),
        ("PORT", "8000"),
        ("EMPTY", ""),
    ])
}

fn serve(parsed: guardway_gateway::config::ParsedConfig, flags: ServeFlags, env: &Environment) {
    if let Ok(options) = resolve_serve_options(flags, parsed, env) {
        let document = startup_document(&options, "fuzz-key", options.listen);
        // The document is printed on stdout: it must serialise.
        let _ = serde_json::to_string(&document).expect("the start-up document serialises");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let env = environment();
    match selector % 8 {
        0 | 1 => {
            let parse = if selector % 8 == 0 {
                parse_toml
            } else {
                parse_json
            };
            let first = parse(text, &env);
            let second = parse(text, &env);
            match (&first, &second) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "parsing is deterministic"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("parsing the same text twice gave different outcomes"),
            }
            match first {
                Ok(parsed) => serve(parsed, ServeFlags::default(), &env),
                Err(error) => {
                    let _ = error.to_string();
                }
            }
        }
        2 => {
            if let Ok(vars) = parse_env_file(text, &env) {
                for (key, value) in vars {
                    assert!(
                        !key.is_empty() && !key.contains('='),
                        "key {key:?} = {value:?}"
                    );
                }
            }
        }
        3 => {
            let _ = parse_duration(text);
        }
        4 => {
            if let Ok(expanded) = expand_str(text, &env)
                && !text.contains("${")
            {
                assert_eq!(expanded, text, "text without ${{ is kept as is");
            }
        }
        5 => {
            let _ = parse_listen(text);
        }
        6 => {
            // A policy as the configuration's `guard_policies` and as
            // `--guard-policy-json` give it.
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
                let _ = validate_config_policy(&value);
            }
            let flags = ServeFlags {
                guard_policy_json: Some(text.to_owned()),
                ..ServeFlags::default()
            };
            serve(Default::default(), flags, &env);
        }
        _ => {
            if let Ok(ids) = parse_sink_server_ids(text) {
                for id in ids {
                    assert_eq!(id.trim(), id, "ids are trimmed");
                }
            }
        }
    }
});
