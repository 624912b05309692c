//! The disk tier: artifact layout and permissions, reloading without compiling,
//! defective files, unusable directories, the disk bound, `close`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use guardway_wasm::{
    ARTIFACT_HEADER_LEN, CacheConfig, CacheStats, CompilationCache, DiskError, disk_usage,
};
use wasmtime::Engine;

use crate::common::{assert_returns, engine, expected_artifact_path, module_bytes};

fn disk_cache(dir: &Path) -> CompilationCache {
    CompilationCache::new(CacheConfig::with_disk_dir(dir))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Loads `n` in a fresh cache on `dir` and returns its counters.
fn load_fresh(dir: &Path, engine: &Engine, n: u32) -> CacheStats {
    let cache = disk_cache(dir);
    let module = cache.get_or_compile(engine, &module_bytes(n)).unwrap();
    assert_returns(engine, &module, n);
    cache.stats()
}

#[test]
fn the_artifact_is_private_at_fingerprint_slash_hash() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("nested").join("cache");
    let engine = engine();
    let bytes = module_bytes(1);
    let cache = disk_cache(&dir);
    assert_eq!(cache.disk_dir().as_deref(), Some(dir.as_path()));
    cache.get_or_compile(&engine, &bytes).unwrap();

    let path = expected_artifact_path(&dir, &engine, &bytes);
    assert!(path.is_file(), "missing {}", path.display());
    assert_eq!(
        cache.artifact_path(&cache.key(&engine, &bytes)),
        Some(path.clone())
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(&fs::read(&path).unwrap()[..8], b"GWCWASM\0");

    let stats = cache.stats();
    assert_eq!(stats.disk_writes, 1);
    assert_eq!(stats.disk_bytes, fs::metadata(&path).unwrap().len());
    let usage = disk_usage(&dir).unwrap();
    assert_eq!(usage.artifacts(), 1);
    assert_eq!(usage.bytes(), stats.disk_bytes);
    // Only the artifact: no temporary file is left behind.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    cache.close().unwrap();
}

#[test]
fn a_fresh_cache_loads_from_disk_without_compiling() {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    let first = load_fresh(temp.path(), &engine, 2);
    assert_eq!((first.compilations, first.disk_hits), (1, 0));

    let cache = disk_cache(temp.path());
    for _ in 0..3 {
        let module = cache.get_or_compile(&engine, &module_bytes(2)).unwrap();
        assert_returns(&engine, &module, 2);
    }
    let second = cache.stats();
    assert_eq!(second.compilations, 0);
    assert_eq!(second.disk_hits, 1);
    assert_eq!(second.memory_hits, 2);
    assert_eq!(second.disk_warnings, 0);
    assert!(second.compile_time_saved >= first.compile_time * 3);
    cache.close().unwrap();
}

/// Damages the artifact of module `n`, then checks that a fresh cache
/// recompiles it with one warning and leaves a valid artifact behind.
fn assert_replaced_after(damage: impl FnOnce(&Path)) {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    load_fresh(temp.path(), &engine, 4);
    let path = expected_artifact_path(temp.path(), &engine, &module_bytes(4));
    damage(&path);

    let stats = load_fresh(temp.path(), &engine, 4);
    assert_eq!(stats.compilations, 1);
    assert_eq!(stats.disk_hits, 0);
    assert_eq!(stats.disk_warnings, 1);
    assert_eq!(stats.disk_errors, 0);
    assert_eq!(stats.disk_writes, 1);

    let again = load_fresh(temp.path(), &engine, 4);
    assert_eq!(
        (again.compilations, again.disk_hits, again.disk_warnings),
        (0, 1, 0)
    );
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_corrupted_artifact_is_recompiled_and_replaced() {
    assert_replaced_after(|path| {
        let mut bytes = fs::read(path).unwrap();
        let middle = ARTIFACT_HEADER_LEN + (bytes.len() - ARTIFACT_HEADER_LEN) / 2;
        bytes[middle] ^= 0x55;
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn a_truncated_artifact_is_recompiled_and_replaced() {
    assert_replaced_after(|path| {
        let bytes = fs::read(path).unwrap();
        fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    });
}

#[test]
fn an_empty_artifact_is_recompiled_and_replaced() {
    assert_replaced_after(|path| fs::write(path, b"").unwrap());
}

#[test]
fn an_older_format_artifact_is_recompiled_and_replaced() {
    assert_replaced_after(|path| {
        let mut bytes = fs::read(path).unwrap();
        bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn a_foreign_file_is_recompiled_and_replaced() {
    assert_replaced_after(|path| fs::write(path, b"\0asm\x01\0\0\0 not an artifact").unwrap());
}

#[test]
fn an_artifact_of_another_engine_configuration_is_recompiled_and_replaced() {
    assert_replaced_after(|path| {
        // The real artifact of the same module compiled by a differently
        // configured engine, placed where this engine looks for it.
        let other_dir = tempfile::tempdir().unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let cache = disk_cache(other_dir.path());
        cache.get_or_compile(&other, &module_bytes(4)).unwrap();
        let foreign = expected_artifact_path(other_dir.path(), &other, &module_bytes(4));
        assert_ne!(foreign.parent(), path.parent());
        fs::copy(foreign, path).unwrap();
    });
}

#[test]
fn an_artifact_writable_by_others_is_recompiled_and_replaced() {
    assert_replaced_after(|path| {
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
    });
}

fn assert_memory_only_with_fallback_warning(cache: &CompilationCache, dir: &Path) {
    let engine = engine();
    for _ in 0..2 {
        let module = cache.get_or_compile(&engine, &module_bytes(6)).unwrap();
        assert_returns(&engine, &module, 6);
    }
    assert_eq!(cache.disk_dir(), None);
    let stats = cache.stats();
    assert_eq!((stats.compilations, stats.memory_hits), (1, 1));
    assert_eq!(stats.disk_writes, 0);
    assert_eq!(stats.disk_errors, 1);
    let err = cache.close().unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let message = err.errors[0].to_string();
    let expected = format!(
        "Falling back to in-memory WASM compilation cache after \"{}\" failed: ",
        dir.display()
    );
    assert!(message.starts_with(&expected), "{message}");
    assert!(matches!(err.errors[0], DiskError::Unusable { .. }));
}

#[test]
fn a_world_writable_directory_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let cache = disk_cache(&dir);
    assert_memory_only_with_fallback_warning(&cache, &dir);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("theirs");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let me = fs::metadata(temp.path()).unwrap().uid();
    if me != 0 {
        // Only root can give a directory away; nothing to test otherwise.
        return;
    }
    std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
    let cache = disk_cache(&dir);
    assert_memory_only_with_fallback_warning(&cache, &dir);
}

#[test]
fn a_world_writable_fingerprint_directory_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    load_fresh(temp.path(), &engine, 6);
    let fingerprint_dir = expected_artifact_path(temp.path(), &engine, &module_bytes(6))
        .parent()
        .unwrap()
        .to_owned();
    fs::set_permissions(&fingerprint_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let cache = disk_cache(temp.path());
    assert_eq!(cache.disk_dir().as_deref(), Some(temp.path()));
    assert_memory_only_with_fallback_warning(&cache, &fingerprint_dir);
}

#[test]
fn a_directory_that_cannot_be_created_means_memory_only() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let dir = file.join("cache");
    let cache = disk_cache(&dir);
    assert_memory_only_with_fallback_warning(&cache, &dir);
}

#[test]
fn close_reports_every_error_and_twice_is_harmless() {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    let bytes = module_bytes(7);
    // A directory where the artifact should be: it can be neither read,
    // removed nor replaced.
    let path = expected_artifact_path(temp.path(), &engine, &bytes);
    fs::create_dir_all(path.join("blocker")).unwrap();
    fs::set_permissions(path.parent().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();

    let cache = disk_cache(temp.path());
    let module = cache.get_or_compile(&engine, &bytes).unwrap();
    assert_returns(&engine, &module, 7);
    let stats = cache.stats();
    assert_eq!(stats.compilations, 1);
    assert_eq!(stats.disk_warnings, 1);
    assert_eq!(stats.disk_errors, 2);
    assert_eq!(cache.disk_dir(), None);

    let err = cache.close().unwrap_err();
    assert_eq!(err.errors.len(), 2, "{err}");
    assert!(matches!(err.errors[0], DiskError::Remove { .. }), "{err}");
    assert!(matches!(err.errors[1], DiskError::Unusable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("2 errors"), "{message}");
    assert!(
        message.contains("failed to delete cached artifact"),
        "{message}"
    );
    assert!(message.contains("Falling back to in-memory"), "{message}");

    cache.close().unwrap();
    cache.close().unwrap();
    // Still usable, from memory.
    cache.get_or_compile(&engine, &bytes).unwrap();
    assert_eq!(cache.stats().memory_hits, 1);
}

#[test]
fn the_disk_bound_evicts_the_least_recently_used_artifact() {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    let modules: Vec<Vec<u8>> = (200..203).map(module_bytes).collect();
    let paths: Vec<_> = modules
        .iter()
        .map(|bytes| expected_artifact_path(temp.path(), &engine, bytes))
        .collect();

    // Measure one artifact, then start over with room for two.
    load_fresh(temp.path(), &engine, 200);
    let size = fs::metadata(&paths[0]).unwrap().len();
    fs::remove_file(&paths[0]).unwrap();
    let config = CacheConfig {
        disk_max_bytes: size * 2 + size / 2,
        ..CacheConfig::with_disk_dir(temp.path())
    };

    let cache = CompilationCache::new(config.clone());
    cache.get_or_compile(&engine, &modules[0]).unwrap();
    cache.get_or_compile(&engine, &modules[1]).unwrap();
    // Age both, the first more than the second.
    let now = SystemTime::now();
    for (path, age) in paths.iter().zip([200, 100]) {
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    // A disk hit on the first marks it used: the second is now the oldest.
    let fresh = CompilationCache::new(config.clone());
    fresh.get_or_compile(&engine, &modules[0]).unwrap();
    assert_eq!(fresh.stats().disk_hits, 1);

    let fresh = CompilationCache::new(config);
    fresh.get_or_compile(&engine, &modules[2]).unwrap();
    let stats = fresh.stats();
    assert_eq!(stats.disk_evictions, 1);
    assert_eq!(stats.disk_bytes, size * 2);
    let present: Vec<bool> = paths.iter().map(|path| path.exists()).collect();
    assert_eq!(present, [true, false, true]);
    fresh.close().unwrap();
}

/// A disk hit marks the artifact used unless it was marked less than a minute ago, so
/// that a process started again and again does not rewrite the artifact's inode each time.
#[test]
fn a_disk_hit_marks_the_artifact_used_at_most_once_a_minute() {
    let temp = tempfile::tempdir().unwrap();
    let engine = engine();
    let path = expected_artifact_path(temp.path(), &engine, &module_bytes(210));
    load_fresh(temp.path(), &engine, 210);
    let set_age = |age: u64| {
        let time = SystemTime::now() - Duration::from_secs(age);
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(time).unwrap();
        fs::metadata(&path).unwrap().modified().unwrap()
    };
    let modified = || fs::metadata(&path).unwrap().modified().unwrap();

    let recent = set_age(30);
    assert_eq!(load_fresh(temp.path(), &engine, 210).disk_hits, 1);
    assert_eq!(modified(), recent);

    let old = set_age(120);
    assert_eq!(load_fresh(temp.path(), &engine, 210).disk_hits, 1);
    let touched = modified();
    assert!(
        touched > old + Duration::from_secs(100),
        "{touched:?} {old:?}"
    );
}

#[test]
fn files_not_of_the_cache_layout_are_left_alone() {
    let temp = tempfile::tempdir().unwrap();
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(temp.path().join("README"), b"mine").unwrap();
    fs::create_dir(temp.path().join("other-tool")).unwrap();
    fs::write(temp.path().join("other-tool").join("x.cwasm"), b"x").unwrap();
    let engine = engine();
    load_fresh(temp.path(), &engine, 8);
    let report = guardway_wasm::clear_disk_cache(temp.path());
    assert!(report.errors.is_empty());
    assert_eq!(report.removed_files, 1);
    assert!(temp.path().join("README").exists());
    assert!(temp.path().join("other-tool").join("x.cwasm").exists());
    assert_eq!(disk_usage(temp.path()).unwrap().artifacts(), 0);
    let stats = load_fresh(temp.path(), &engine, 8);
    assert_eq!(stats.compilations, 1);
}
