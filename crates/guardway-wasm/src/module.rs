//! `GuardModule`: loading a guard (magic check, compile, export validation, command-module
//! detection) and pre-linking it once against the host imports.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use wasmtime::{Engine, ExternType, FuncType, InstancePre, Linker, Module, ValType};

use crate::cache::CacheError;
use crate::engine::engine;
use crate::error::GuardError;
use crate::imports;
use crate::instance::StoreState;
use crate::options::GuardOptions;

/// The three label functions every guard exports.
pub(crate) const LABEL_EXPORTS: [&str; 3] = ["label_agent", "label_resource", "label_response"];

const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// A compiled, validated and pre-linked guard.
///
/// `Send + Sync`; cloning is an `Arc` bump. Instances are created from it by [`crate::Guard`].
#[derive(Clone)]
pub struct GuardModule {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) name: Arc<str>,
    pub(crate) module: Module,
    pub(crate) pre: InstancePre<StoreState>,
    pub(crate) has_allocator: bool,
    /// Set once the "no alloc/dealloc" warning was logged.
    pub(crate) fallback_warned: AtomicBool,
}

impl std::fmt::Debug for GuardModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardModule")
            .field("name", &self.inner.name)
            .field("has_allocator", &self.inner.has_allocator)
            .finish_non_exhaustive()
    }
}

impl GuardModule {
    /// Loads a guard from wasm bytes (text format is not accepted).
    ///
    /// # Errors
    ///
    /// [`GuardError::NotWasm`], [`GuardError::Compile`], [`GuardError::CommandModule`],
    /// [`GuardError::MissingExports`], [`GuardError::BadExport`], [`GuardError::Link`].
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        options: &GuardOptions,
    ) -> Result<GuardModule, GuardError> {
        let engine = engine()?;
        if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
            return Err(GuardError::NotWasm {
                name: name.to_owned(),
                found: bytes.iter().take(4).copied().collect(),
            });
        }
        let module = compile(engine, name, bytes, options)?;
        let has_allocator = validate_exports(name, &module)?;
        let pre = link(engine, name, &module)?;
        Ok(GuardModule {
            inner: Arc::new(ModuleInner {
                name: Arc::from(name),
                module,
                pre,
                has_allocator,
                fallback_warned: AtomicBool::new(false),
            }),
        })
    }

    /// Loads a guard from a `.wasm` file; its name is the file stem.
    ///
    /// # Errors
    ///
    /// [`GuardError::Io`] when the file cannot be read, else as [`GuardModule::from_bytes`].
    pub fn from_file(
        path: impl AsRef<Path>,
        options: &GuardOptions,
    ) -> Result<GuardModule, GuardError> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "guard".to_owned());
        let bytes = std::fs::read(path).map_err(|source| GuardError::Io {
            name: name.clone(),
            path: path.display().to_string(),
            source,
        })?;
        GuardModule::from_bytes(&name, &bytes, options)
    }

    /// The guard's name (used in errors and logs).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the guard exports `alloc` and `dealloc` (else the host uses the
    /// end-of-memory buffers).
    pub fn has_allocator(&self) -> bool {
        self.inner.has_allocator
    }

    /// The compiled module.
    pub fn module(&self) -> &Module {
        &self.inner.module
    }
}

/// Compiles `bytes` for `engine` through the compilation cache the options
/// select. The single place where guard code is compiled.
pub(crate) fn compile(
    engine: &Engine,
    name: &str,
    bytes: &[u8],
    options: &GuardOptions,
) -> Result<Module, GuardError> {
    options
        .cache
        .get_or_compile(engine, bytes)
        .map_err(|error| GuardError::Compile {
            name: name.to_owned(),
            message: match error {
                CacheError::Compile { message, .. } => message,
                other => other.to_string(),
            },
        })
}

fn func_signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let params: Vec<ValType> = f.params().collect();
            let results: Vec<ValType> = f.results().collect();
            format!("func {}", func_signature(&params, &results))
        }
        ExternType::Memory(_) => "memory".to_owned(),
        ExternType::Table(_) => "table".to_owned(),
        ExternType::Global(_) => "global".to_owned(),
        ExternType::Tag(_) => "tag".to_owned(),
    }
}

fn has_signature(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// Checks the guard exports; returns whether `alloc`/`dealloc` are both present.
fn validate_exports(name: &str, module: &Module) -> Result<bool, GuardError> {
    use ValType::I32;
    let find = |export: &str| module.get_export(export);
    let label_present = LABEL_EXPORTS.iter().any(|e| find(e).is_some());
    if !label_present && (find("_start").is_some() || find("_initialize").is_some()) {
        return Err(GuardError::CommandModule {
            name: name.to_owned(),
        });
    }
    let mut missing: Vec<String> = LABEL_EXPORTS
        .iter()
        .filter(|e| find(e).is_none())
        .map(|e| (*e).to_owned())
        .collect();
    if find("memory").is_none() {
        missing.push("memory".to_owned());
    }
    if !missing.is_empty() {
        return Err(GuardError::MissingExports {
            name: name.to_owned(),
            missing,
        });
    }
    let bad = |export: &str, expected: &str, ty: &ExternType| GuardError::BadExport {
        name: name.to_owned(),
        export: export.to_owned(),
        expected: expected.to_owned(),
        found: describe(ty),
    };
    for export in LABEL_EXPORTS {
        if let Some(ty) = find(export) {
            let ok = matches!(&ty, ExternType::Func(f) if has_signature(f, &[I32, I32, I32, I32], &[I32]));
            if !ok {
                return Err(bad(export, "func (i32,i32,i32,i32) -> (i32)", &ty));
            }
        }
    }
    if let Some(ty) = find("memory")
        && !matches!(ty, ExternType::Memory(_))
    {
        return Err(bad("memory", "memory", &ty));
    }
    let alloc = match find("alloc") {
        Some(ExternType::Func(f)) if has_signature(&f, &[I32], &[I32]) => true,
        Some(ty) => return Err(bad("alloc", "func (i32) -> (i32)", &ty)),
        None => false,
    };
    let dealloc = match find("dealloc") {
        Some(ExternType::Func(f)) if has_signature(&f, &[I32, I32], &[]) => true,
        Some(ty) => return Err(bad("dealloc", "func (i32,i32) -> ()", &ty)),
        None => false,
    };
    Ok(alloc && dealloc)
}

/// Resolves the module's imports once: WASI preview 1 plus `env.call_backend`/`env.host_log`.
fn link(
    engine: &Engine,
    name: &str,
    module: &Module,
) -> Result<InstancePre<StoreState>, GuardError> {
    let link_error = |error: wasmtime::Error| GuardError::Link {
        name: name.to_owned(),
        message: format!("{error:#}"),
    };
    let mut linker: Linker<StoreState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut StoreState| &mut state.wasi)
        .map_err(link_error)?;
    imports::add_to_linker(&mut linker).map_err(link_error)?;
    linker.instantiate_pre(module).map_err(link_error)
}
