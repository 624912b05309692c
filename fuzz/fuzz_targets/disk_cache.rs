//! The disk tier of the compilation cache reading whatever it finds at an
//! artifact's path: arbitrary bytes, a valid artifact with bytes changed,
//! truncated or extended, a valid body under an arbitrary header, files
//! other users could modify, a directory or a symlink in its place.
//!
//! Whatever the file holds, loading the guard must succeed (a disk problem
//! is never an error) and the module must be the right one: the guard
//! answers correctly, a disk hit happens only for a file equal to the valid
//! artifact (up to the header's unchecked compile-time field), and after a
//! miss the cache has written a valid artifact back.

#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use guardway_fuzz::{Bytes, runtime};
use guardway_wasm::{
    ARTIFACT_HEADER_LEN, CacheConfig, CacheMode, CompilationCache, FreshInstance, GuardCompiler,
    GuardExport, GuardModule, GuardOptions,
};
use libfuzzer_sys::fuzz_target;

const ECHO: &str = include_str!("../../crates/guardway-wasm/tests/fixtures/echo.wat");
/// Header bytes the checksum does not cover and the reader does not check:
/// reserved (12..16) and the compile time (64..72).
const UNCHECKED: [std::ops::Range<usize>; 2] = [12..16, 64..72];

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    wasm: Vec<u8>,
    artifact_path: PathBuf,
    valid: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Artifacts are fsynced when written: keep them in memory when possible.
        let dir = tempfile::Builder::new()
            .prefix("guardway-fuzz-cache")
            .tempdir_in(if Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("a temporary directory");
        let root = dir.path().join("cache");
        let wasm = wat::parse_str(ECHO).expect("the echo guard assembles");
        let engine = guardway_wasm::engine().expect("an engine");
        let cache = CompilationCache::new(CacheConfig::with_disk_dir(&root));
        cache
            .get_or_compile(engine, &wasm)
            .expect("the echo guard compiles");
        let key = cache.key(engine, &wasm);
        let artifact_path = cache.artifact_path(&key).expect("a disk tier");
        let valid = std::fs::read(&artifact_path).expect("the artifact was written");
        Fixture {
            _dir: dir,
            root,
            wasm,
            artifact_path,
            valid,
        }
    })
}

/// Equal up to the header fields nobody checks.
fn equivalent(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .enumerate()
            .all(|(i, (x, y))| x == y || UNCHECKED.iter().any(|r| r.contains(&i)))
}

fn contents(fixture: &Fixture, mode: u8, input: &mut Bytes<'_>) -> Vec<u8> {
    let valid = &fixture.valid;
    match mode % 3 {
        0 => input.rest().to_vec(),
        1 => {
            let mut file = valid.clone();
            // 0 keeps the full length.
            let length = match input.u32() {
                0 => valid.len(),
                cut => cut as usize % (valid.len() + 64),
            };
            file.resize(length, 0);
            while !input.is_empty() && !file.is_empty() {
                let at = input.u32() as usize % file.len();
                file[at] = input.u8();
            }
            file
        }
        _ => {
            let mut file = input.take(ARTIFACT_HEADER_LEN).to_vec();
            file.resize(ARTIFACT_HEADER_LEN, 0);
            file.extend_from_slice(&valid[ARTIFACT_HEADER_LEN..]);
            file
        }
    }
}

fn clear(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).expect("remove a directory"),
        Ok(_) => std::fs::remove_file(path).expect("remove a file"),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let mut input = Bytes::new(data);
    let mode = input.u8();
    let placement = input.u8();
    let file = contents(fixture, mode, &mut input);

    let path = &fixture.artifact_path;
    let fingerprint_dir = path.parent().expect("a fingerprint directory");
    let side = fixture.root.join("elsewhere.bin");
    clear(path);
    clear(&side);
    std::fs::set_permissions(fingerprint_dir, std::fs::Permissions::from_mode(0o700))
        .expect("chmod the fingerprint directory");
    let mode_bits = [0o600, 0o644, 0o666, 0o620][usize::from(placement & 3)];
    let private = mode_bits & 0o022 == 0;
    let regular = match (placement >> 2) % 4 {
        // A directory where the artifact should be.
        1 => {
            std::fs::create_dir(path).expect("create a directory");
            false
        }
        // A symlink to a file elsewhere (followed: its contents count).
        2 => {
            std::fs::write(&side, &file).expect("write the file");
            std::fs::set_permissions(&side, std::fs::Permissions::from_mode(mode_bits))
                .expect("chmod the file");
            std::os::unix::fs::symlink(&side, path).expect("create a symlink");
            true
        }
        _ => {
            std::fs::write(path, &file).expect("write the file");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode_bits))
                .expect("chmod the file");
            true
        }
    };

    let cache = Arc::new(CompilationCache::new(CacheConfig::with_disk_dir(
        &fixture.root,
    )));
    // Optimised code only: the disk tier holds Cranelift artifacts, and a
    // miss compiles and writes one back before the load returns (tiered
    // loading would answer from baseline code and write it later).
    let options = GuardOptions::default()
        .with_cache(CacheMode::Injected(cache.clone()))
        .with_compiler(GuardCompiler::Cranelift);
    let module = GuardModule::from_bytes("echo", &fixture.wasm, &options)
        .expect("a disk problem is never an error");
    let stats = cache.stats();
    assert_eq!(stats.disk_hits + stats.misses, 1, "{stats:?}");
    if stats.disk_hits == 1 {
        assert!(
            regular && private && equivalent(&file, &fixture.valid),
            "loaded a module from a file that is not the valid artifact ({} bytes, mode {mode_bits:o})",
            file.len()
        );
    } else {
        assert_eq!(stats.compilations, 1, "{stats:?}");
        if (placement >> 2) % 4 != 1 {
            // The valid artifact has been written back in place.
            let written = std::fs::read(path).expect("the artifact was rewritten");
            assert!(
                equivalent(&written, &fixture.valid),
                "rewrote something else"
            );
        }
    }

    // The module is the echo guard.
    let answer = runtime().block_on(async {
        let mut instance = FreshInstance::new(&module, &options, None)
            .await
            .expect("the module instantiates");
        instance
            .call(GuardExport::LabelResource, br#"{"echo":true}"#)
            .await
            .expect("the module answers")
    });
    assert_eq!(answer, br#"{"echo":true}"#);
});
