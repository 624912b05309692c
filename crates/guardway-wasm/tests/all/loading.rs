//! Loading guards: validation of bytes, exports and signatures.

use guardway_wasm::{GuardError, GuardModule, GuardOptions};

use crate::common::*;

#[test]
fn non_wasm_bytes_are_refused_with_a_clear_error() {
    let err = GuardModule::from_bytes("text", b"(module)", &GuardOptions::default()).unwrap_err();
    assert!(matches!(err, GuardError::NotWasm { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a WebAssembly module"),
        "{err}"
    );
    let err = GuardModule::from_bytes("empty", b"", &GuardOptions::default()).unwrap_err();
    assert!(matches!(err, GuardError::NotWasm { .. }), "{err:?}");
}

#[test]
fn corrupt_wasm_is_a_compile_error() {
    let mut bytes = fixture("echo");
    bytes.truncate(bytes.len() / 2);
    let err = GuardModule::from_bytes("cut", &bytes, &GuardOptions::default()).unwrap_err();
    assert!(matches!(err, GuardError::Compile { .. }), "{err:?}");
}

#[test]
fn missing_exports_are_named() {
    let err = load("missing_exports").unwrap_err();
    match &err {
        GuardError::MissingExports { missing, .. } => {
            assert_eq!(
                missing,
                &["label_resource".to_owned(), "label_response".to_owned()]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("label_resource, label_response"),
        "{err}"
    );
}

#[test]
fn command_module_is_recognised() {
    let err = load("command").unwrap_err();
    assert!(matches!(err, GuardError::CommandModule { .. }), "{err:?}");
    assert!(err.to_string().contains("built as a command"), "{err}");
    assert!(err.to_string().contains("TinyGo"), "{err}");
}

#[test]
fn wrong_signature_is_reported() {
    let err = load("bad_signature").unwrap_err();
    match &err {
        GuardError::BadExport { export, found, .. } => {
            assert_eq!(export, "label_resource");
            assert!(
                found.contains("(i32, i32)") || found.contains("(i32,i32)"),
                "{found}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_imports_fail_linking() {
    let bytes = wat::parse_str(
        r#"(module
            (import "env" "launch_missiles" (func))
            (memory (export "memory") 1)
            (func (export "label_agent") (param i32 i32 i32 i32) (result i32) (i32.const 0))
            (func (export "label_resource") (param i32 i32 i32 i32) (result i32) (i32.const 0))
            (func (export "label_response") (param i32 i32 i32 i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let err = GuardModule::from_bytes("imports", &bytes, &GuardOptions::default()).unwrap_err();
    assert!(matches!(err, GuardError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("launch_missiles"), "{err}");
}

#[test]
fn from_file_uses_the_file_stem_as_name_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-guard.wasm");
    std::fs::write(&path, fixture("echo")).unwrap();
    let module = GuardModule::from_file(&path, &GuardOptions::default()).unwrap();
    assert_eq!(module.name(), "my-guard");
    assert!(module.has_allocator());
    let err = GuardModule::from_file(dir.path().join("absent.wasm"), &GuardOptions::default())
        .unwrap_err();
    assert!(matches!(err, GuardError::Io { .. }), "{err:?}");
}

#[test]
fn allocator_detection() {
    assert!(module("echo").has_allocator());
    assert!(!module("no_alloc").has_allocator());
}
