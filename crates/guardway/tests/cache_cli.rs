//! `guardway cache warm|stats|clear` run as real processes on a real directory,
//! including two processes warming the same guard into one directory at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use guardway_wasm::EngineFingerprint;

fn guardway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guardway"));
    command
        .env_remove("GUARDWAY_WASM_CACHE_DIR")
        .env_remove("MCP_GATEWAY_WASM_CACHE_DIR")
        .env_remove("RUST_LOG");
    command
}

/// Writes the host tests' well-behaved guard as a `.wasm` file in `dir`.
fn write_guard(dir: &Path, name: &str) -> PathBuf {
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guardway-wasm/tests/fixtures/echo.wat");
    let path = dir.join(format!("{name}.wasm"));
    fs::write(&path, wat::parse_file(source).unwrap()).unwrap();
    path
}

/// Where the process engine stores the artifact of `guard`.
fn artifact_path(cache_dir: &Path, guard: &Path) -> PathBuf {
    let fingerprint = EngineFingerprint::of(guardway_wasm::engine().unwrap());
    let hash = blake3::hash(&fs::read(guard).unwrap());
    cache_dir
        .join(fingerprint.to_string())
        .join(format!("{}.cwasm", hash.to_hex()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn warm(cache_dir: &Path, paths: &[&Path]) -> Output {
    guardway()
        .args(["cache", "warm"])
        .args(paths)
        .arg("--dir")
        .arg(cache_dir)
        .output()
        .unwrap()
}

#[test]
fn warm_compiles_once_and_a_second_process_finds_it_cached() {
    let temp = tempfile::tempdir().unwrap();
    let cache_dir = temp.path().join("cache");
    let guard = write_guard(temp.path(), "echo");

    let first = assert_success(&warm(&cache_dir, &[&guard]));
    assert!(
        first.contains("1 compiled, 0 already cached, 0 failed"),
        "{first}"
    );
    assert!(first.contains("compiled  "), "{first}");
    let artifact = artifact_path(&cache_dir, &guard);
    assert!(artifact.is_file(), "missing {}", artifact.display());

    let second = assert_success(&warm(&cache_dir, &[&guard]));
    assert!(
        second.contains("0 compiled, 1 already cached, 0 failed"),
        "{second}"
    );

    let stats = assert_success(
        &guardway()
            .args(["cache", "stats", "--dir"])
            .arg(&cache_dir)
            .output()
            .unwrap(),
    );
    assert!(stats.contains("artifacts: 1 "), "{stats}");
    assert!(stats.contains("(this engine)"), "{stats}");

    let cleared = assert_success(
        &guardway()
            .args(["cache", "clear", "--dir"])
            .arg(&cache_dir)
            .output()
            .unwrap(),
    );
    assert!(cleared.contains("removed 1 files"), "{cleared}");
    assert!(!artifact.exists());
    let again = assert_success(&warm(&cache_dir, &[&guard]));
    assert!(again.contains("1 compiled"), "{again}");
}

#[test]
fn two_processes_warming_one_directory_at_once_leave_one_valid_artifact() {
    let temp = tempfile::tempdir().unwrap();
    let cache_dir = temp.path().join("cache");
    let guard = write_guard(temp.path(), "echo");
    let spawn = || {
        guardway()
            .args(["cache", "warm"])
            .arg(&guard)
            .arg("--dir")
            .arg(&cache_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        assert_success(&output);
        assert!(
            !text(&output.stderr).contains("WARN"),
            "{}",
            text(&output.stderr)
        );
    }
    let artifact = artifact_path(&cache_dir, &guard);
    let entries: Vec<_> = fs::read_dir(artifact.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(
        entries,
        [artifact],
        "exactly the artifact, no temporary files"
    );

    // The artifact left behind is valid: a third process loads it.
    let third = assert_success(&warm(&cache_dir, &[&guard]));
    assert!(third.contains("0 compiled, 1 already cached"), "{third}");
}

#[test]
fn warm_takes_directories_and_reports_failures() {
    let temp = tempfile::tempdir().unwrap();
    let cache_dir = temp.path().join("cache");
    let guards = temp.path().join("guards");
    fs::create_dir_all(guards.join("github")).unwrap();
    write_guard(&guards.join("github"), "00-github-guard");
    fs::write(guards.join("broken.wasm"), b"\0asm\x01\0\0\0\x01\xff").unwrap();
    fs::write(guards.join("notes.txt"), b"not a guard").unwrap();

    let output = warm(&cache_dir, &[&guards]);
    assert!(!output.status.success());
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 compiled, 0 already cached, 1 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("failed    "), "{stdout}");
    assert!(stdout.contains("broken.wasm"), "{stdout}");
    assert!(!stdout.contains("notes.txt"), "{stdout}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("2/2"), "progress on stderr: {stderr}");
}

#[test]
fn the_directory_comes_from_the_environment_when_no_flag_is_given() {
    let temp = tempfile::tempdir().unwrap();
    let guard = write_guard(temp.path(), "echo");
    let ours = temp.path().join("ours");
    let reference = temp.path().join("reference");

    let output = guardway()
        .args(["cache", "warm"])
        .arg(&guard)
        .env("GUARDWAY_WASM_CACHE_DIR", &ours)
        .env("MCP_GATEWAY_WASM_CACHE_DIR", &reference)
        .output()
        .unwrap();
    assert_success(&output);
    assert!(artifact_path(&ours, &guard).is_file());
    assert!(!reference.exists());

    let output = guardway()
        .args(["cache", "warm"])
        .arg(&guard)
        .env("GUARDWAY_WASM_CACHE_DIR", "  ")
        .env(
            "MCP_GATEWAY_WASM_CACHE_DIR",
            format!(" {} ", reference.display()),
        )
        .output()
        .unwrap();
    assert_success(&output);
    assert!(artifact_path(&reference, &guard).is_file());
}

#[test]
fn an_unusable_directory_is_reported_with_the_fallback_warning() {
    let temp = tempfile::tempdir().unwrap();
    let guard = write_guard(temp.path(), "echo");
    let blocker = temp.path().join("a-file");
    fs::write(&blocker, b"").unwrap();
    let cache_dir = blocker.join("cache");

    let output = warm(&cache_dir, &[&guard]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let expected = format!(
        "Falling back to in-memory WASM compilation cache after \"{}\" failed: ",
        cache_dir.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn warm_for_a_cpu_baseline_writes_a_portable_artifact_that_this_machine_loads() {
    let temp = tempfile::tempdir().unwrap();
    let cache_dir = temp.path().join("cache");
    let guard = write_guard(temp.path(), "echo");
    let warm_for = |cpu: &str| {
        guardway()
            .args(["cache", "warm"])
            .arg(&guard)
            .arg("--dir")
            .arg(&cache_dir)
            .args(["--cpu-baseline", cpu])
            .output()
            .unwrap()
    };

    let portable = assert_success(&warm_for("x86-64-v3"));
    assert!(
        portable.contains("1 compiled, 0 already cached"),
        "{portable}"
    );
    assert!(portable.contains("CPU baseline x86-64-v3"), "{portable}");
    // Not where this machine's own engine keeps its artifacts.
    assert!(!artifact_path(&cache_dir, &guard).exists());
    let stats = guardway()
        .args(["cache", "stats", "--dir"])
        .arg(&cache_dir)
        .output()
        .unwrap();
    let stats = assert_success(&stats);
    assert!(
        stats.contains("(portable, CPU baseline x86-64-v3)"),
        "{stats}"
    );

    // This machine's engine finds the portable artifact instead of compiling, when its
    // CPU has the level's features; otherwise it compiles, with one warning.
    let native = warm_for("native");
    let stdout = assert_success(&native);
    let v3 = std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("lzcnt");
    if v3 {
        assert!(stdout.contains("0 compiled, 1 already cached"), "{stdout}");
    } else {
        assert!(stdout.contains("1 compiled"), "{stdout}");
        assert!(text(&native.stderr).contains("cannot run on this machine"));
    }

    let bad = warm_for("x86-64-v9");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("unknown CPU baseline \"x86-64-v9\""),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_reader_that_closed_standard_output_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // The read end is gone before the process starts: its first write fails
    // with a broken pipe (SIGPIPE is ignored in Rust programs).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = guardway()
        .args(["cache", "stats", "--dir"])
        .arg(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
