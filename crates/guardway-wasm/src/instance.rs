//! One guard instance: its store (WASI context, memory cap, host state), the typed exports,
//! the buffers kept across calls, and one guard function call with the `-2` retry protocol.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{Memory, Store, TypedFunc, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::abi::{self, BUFFER_TOO_SMALL, GuardExport, Regrow};
use crate::engine::CodeTier;
use crate::error::GuardError;
use crate::imports::{
    Backend, GuardLog, GuardObserver, GuardOutputStream, HostState, LogDropSummary, guest_range,
};
use crate::limits::MemoryLimiter;
use crate::module::{GuardModule, LinkedCode};
use crate::options::LogRateLimit;

/// Data of every guard store.
pub(crate) struct StoreState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) host: HostState,
}

/// The settings an instance needs, shared by all instances of one guard.
pub(crate) struct InstanceSettings {
    pub(crate) name: Arc<str>,
    pub(crate) memory_limit: usize,
    pub(crate) call_timeout: Duration,
    pub(crate) output_buffer_initial: usize,
    pub(crate) output_buffer_max: usize,
    pub(crate) output_attempts: u32,
    pub(crate) max_input: usize,
    pub(crate) max_backend_calls: u32,
    pub(crate) log_rate: LogRateLimit,
    pub(crate) backend: Option<Arc<dyn Backend>>,
    pub(crate) log_lines_dropped: Arc<AtomicU64>,
    /// The guard's summary of dropped log lines (shared by its instances).
    pub(crate) log_drops: Arc<LogDropSummary>,
    pub(crate) backend_calls: Arc<AtomicU64>,
    /// Sees the instances' log lines and backend calls (tracing tools only).
    pub(crate) observer: Option<Arc<dyn GuardObserver>>,
}

/// The error returned by the epoch callback once a call's deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("guard call deadline exceeded")]
struct DeadlineExceeded;

#[derive(Debug, Clone, Copy)]
struct Buffer {
    ptr: u32,
    cap: usize,
}

type LabelFunc = TypedFunc<(i32, i32, i32, i32), i32>;
/// The guard's `alloc` and `dealloc` exports.
type Allocator = (TypedFunc<i32, i32>, TypedFunc<(i32, i32), ()>);

/// A live instance. Single-threaded: used by one call at a time (the pool hands it out).
pub(crate) struct GuardInstance {
    store: Store<StoreState>,
    module: GuardModule,
    /// The code this instance runs (kept alive with it: the store belongs to its engine).
    code: Arc<LinkedCode>,
    /// The module's code generation this instance was created from.
    generation: u64,
    settings: Arc<InstanceSettings>,
    memory: Memory,
    label_funcs: [LabelFunc; 3],
    allocator: Option<Allocator>,
    input: Option<Buffer>,
    output: Option<Buffer>,
    /// End-of-memory region used when the guard has no allocator: (start, len).
    fallback: Option<(usize, usize)>,
    /// Set when the instance trapped, timed out or hit its memory cap: never call it again.
    poisoned: bool,
}

impl GuardInstance {
    /// Instantiates the pre-linked module in a fresh store.
    pub(crate) async fn new(
        module: &GuardModule,
        settings: &Arc<InstanceSettings>,
    ) -> Result<GuardInstance, GuardError> {
        let name = settings.name.to_string();
        let log = Arc::new(
            GuardLog::new(
                Arc::clone(&settings.name),
                settings.log_rate,
                Arc::clone(&settings.log_lines_dropped),
                Arc::clone(&settings.log_drops),
            )
            .with_observer(settings.observer.clone()),
        );
        let wasi = WasiCtxBuilder::new()
            .stdout(GuardOutputStream::stdout(Arc::clone(&log)))
            .stderr(GuardOutputStream::stderr(Arc::clone(&log)))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build_p1();
        let host = HostState::new(
            log,
            settings.backend.clone(),
            settings.max_backend_calls,
            Arc::clone(&settings.backend_calls),
        );
        let state = StoreState {
            wasi,
            limiter: MemoryLimiter::new(settings.memory_limit),
            host,
        };
        let (code, generation) = module.current_code_and_generation();
        let mut store = Store::new(code.module.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().host.deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.data_mut().host.deadline = Instant::now() + settings.call_timeout;
        store.set_epoch_deadline(1);

        let instance = match code.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(error) => {
                if store.data().limiter.hit {
                    return Err(GuardError::MemoryLimit {
                        name,
                        export: "instantiation".to_owned(),
                        limit: settings.memory_limit,
                    });
                }
                if error.downcast_ref::<DeadlineExceeded>().is_some() {
                    return Err(GuardError::Timeout {
                        name,
                        export: "instantiation".to_owned(),
                        limit: settings.call_timeout,
                    });
                }
                return Err(GuardError::Instantiate {
                    name,
                    message: format!("{error:#}"),
                });
            }
        };
        let instantiate_error = |message: String| GuardError::Instantiate {
            name: name.clone(),
            message,
        };
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| instantiate_error("export `memory` is not a memory".to_owned()))?;
        let mut label = |export: &str| {
            instance
                .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, export)
                .map_err(|e| instantiate_error(format!("export `{export}`: {e:#}")))
        };
        let label_funcs = [
            label("label_agent")?,
            label("label_resource")?,
            label("label_response")?,
        ];
        let allocator = if module.has_allocator() {
            let alloc = instance
                .get_typed_func::<i32, i32>(&mut store, "alloc")
                .map_err(|e| instantiate_error(format!("export `alloc`: {e:#}")))?;
            let dealloc = instance
                .get_typed_func::<(i32, i32), ()>(&mut store, "dealloc")
                .map_err(|e| instantiate_error(format!("export `dealloc`: {e:#}")))?;
            Some((alloc, dealloc))
        } else {
            None
        };
        store.data_mut().host.memory = Some(memory);
        Ok(GuardInstance {
            store,
            module: module.clone(),
            code,
            generation,
            settings: Arc::clone(settings),
            memory,
            label_funcs,
            allocator,
            input: None,
            output: None,
            fallback: None,
            poisoned: false,
        })
    }

    /// Whether the instance must be discarded (it trapped, timed out or hit its memory cap).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether the module has moved to other code since this instance was created (it then
    /// finishes its call and is retired).
    pub(crate) fn is_stale(&self) -> bool {
        self.generation != self.module.generation()
    }

    /// The tier of the code this instance runs.
    pub(crate) fn tier(&self) -> CodeTier {
        self.code.tier
    }

    /// Calls `export` with `input` and returns the output bytes.
    ///
    /// On a trap, timeout or memory cap the instance is poisoned; the caller must drop it.
    pub(crate) async fn call(
        &mut self,
        export: GuardExport,
        input: &[u8],
    ) -> Result<Vec<u8>, GuardError> {
        if input.len() > self.settings.max_input {
            return Err(GuardError::InputTooLarge {
                name: self.settings.name.to_string(),
                export: export.name().to_owned(),
                size: input.len(),
                limit: self.settings.max_input,
            });
        }
        let deadline = Instant::now() + self.settings.call_timeout;
        self.store.data_mut().host.begin_call(deadline);
        self.store.set_epoch_deadline(1);
        let result = self.call_with_retries(export, input).await;
        self.store.data().host.log.report_dropped();
        if self.store.data().limiter.hit {
            self.poisoned = true;
        }
        if !self.poisoned {
            self.release_oversized_output(export).await;
        }
        match result {
            Err(GuardError::AllocFailed { .. }) if self.poisoned => {
                Err(self.memory_limit_error(export))
            }
            other => other,
        }
    }

    async fn call_with_retries(
        &mut self,
        export: GuardExport,
        input: &[u8],
    ) -> Result<Vec<u8>, GuardError> {
        let settings = Arc::clone(&self.settings);
        let func = self.label_funcs[export as usize].clone();
        let input_len = i32::try_from(input.len()).map_err(|_| GuardError::InputTooLarge {
            name: settings.name.to_string(),
            export: export.name().to_owned(),
            size: input.len(),
            limit: settings.max_input,
        })?;
        let mut out_size = settings
            .output_buffer_initial
            .min(settings.output_buffer_max);
        let mut attempts: Vec<usize> = Vec::new();
        loop {
            let (in_ptr, out) = self.prepare_buffers(export, input.len(), out_size).await?;
            self.write_guest(export, "input buffer", in_ptr, input)?;
            // Clear the size-hint slot so stale bytes of a reused buffer never read as a hint.
            let slot = out.cap.min(4);
            self.write_guest(export, "output buffer", out.ptr, &[0u8; 4][..slot])?;
            attempts.push(out.cap);
            let out_cap = i32::try_from(out.cap).unwrap_or(i32::MAX);
            let code = match func
                .call_async(
                    &mut self.store,
                    (in_ptr as i32, input_len, out.ptr as i32, out_cap),
                )
                .await
            {
                Ok(code) => code,
                Err(error) => return Err(self.fault(export, error)),
            };
            if code >= 0 {
                let n = code as usize;
                if n > out.cap {
                    return Err(GuardError::OutputOverrun {
                        name: settings.name.to_string(),
                        export: export.name().to_owned(),
                        returned: n,
                        buffer: out.cap,
                    });
                }
                return self.read_guest(export, "output", out.ptr, n);
            }
            if code != BUFFER_TOO_SMALL {
                return Err(GuardError::GuardFailed {
                    name: settings.name.to_string(),
                    export: export.name().to_owned(),
                    code,
                    last_error: self.store.data().host.log.last_error(),
                });
            }
            let hint = if out.cap >= 4 {
                let head = self.read_guest(export, "size hint", out.ptr, 4)?;
                Some(u32::from_le_bytes([head[0], head[1], head[2], head[3]]))
            } else {
                None
            };
            let too_small = |attempts: Vec<usize>| GuardError::BufferTooSmall {
                name: settings.name.to_string(),
                export: export.name().to_owned(),
                attempts,
                required: hint.filter(|h| *h > 0).map(|h| h as usize),
                max: settings.output_buffer_max,
            };
            if attempts.len() >= settings.output_attempts as usize {
                return Err(too_small(attempts));
            }
            match abi::next_output_size(out.cap, hint, settings.output_buffer_max) {
                Regrow::Retry(size) => out_size = size,
                Regrow::GiveUp => return Err(too_small(attempts)),
            }
        }
    }

    /// Returns (input pointer, output buffer) with room for `input_len` and `out_size`.
    async fn prepare_buffers(
        &mut self,
        export: GuardExport,
        input_len: usize,
        out_size: usize,
    ) -> Result<(u32, Buffer), GuardError> {
        if self.allocator.is_none() {
            return self.prepare_fallback(export, input_len, out_size);
        }
        let input_cap = input_len
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(input_len)
            .min(self.settings.max_input)
            .max(input_len);
        let input = match self.input {
            Some(buffer) if buffer.cap >= input_len => buffer,
            old => {
                self.input = None;
                if let Some(old) = old {
                    self.dealloc(export, old).await?;
                }
                let buffer = self.alloc(export, input_cap).await?;
                self.input = Some(buffer);
                buffer
            }
        };
        let output = match self.output {
            Some(buffer) if buffer.cap >= out_size => buffer,
            old => {
                self.output = None;
                if let Some(old) = old {
                    self.dealloc(export, old).await?;
                }
                let buffer = self.alloc(export, out_size).await?;
                self.output = Some(buffer);
                buffer
            }
        };
        Ok((input.ptr, output))
    }

    fn prepare_fallback(
        &mut self,
        export: GuardExport,
        input_len: usize,
        out_size: usize,
    ) -> Result<(u32, Buffer), GuardError> {
        let need = input_len.saturating_add(out_size);
        let region = match self.fallback {
            Some((start, len)) if len >= need => (start, len),
            _ => {
                if !self
                    .module
                    .inner
                    .fallback_warned
                    .swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(guard = %self.settings.name,
                        "guard exports no alloc/dealloc; using buffers at the end of its memory");
                }
                const PAGE: usize = 64 * 1024;
                let old_size = self.memory.data_size(&self.store);
                let pages = (abi::FALLBACK_MARGIN + need).div_ceil(PAGE);
                if self.memory.grow(&mut self.store, pages as u64).is_err() {
                    self.poisoned = self.store.data().limiter.hit;
                    return Err(if self.poisoned {
                        self.memory_limit_error(export)
                    } else {
                        GuardError::AllocFailed {
                            name: self.settings.name.to_string(),
                            export: export.name().to_owned(),
                            size: need,
                        }
                    });
                }
                let start = old_size + abi::FALLBACK_MARGIN;
                let region = (start, pages * PAGE - abi::FALLBACK_MARGIN);
                self.fallback = Some(region);
                region
            }
        };
        let end = region.0 + region.1;
        let out_ptr = end - out_size;
        let in_ptr = out_ptr - input_len;
        let to_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| GuardError::AllocFailed {
                name: self.settings.name.to_string(),
                export: export.name().to_owned(),
                size: need,
            })
        };
        Ok((
            to_u32(in_ptr)?,
            Buffer {
                ptr: to_u32(out_ptr)?,
                cap: out_size,
            },
        ))
    }

    async fn alloc(&mut self, export: GuardExport, size: usize) -> Result<Buffer, GuardError> {
        let Some((alloc, _)) = self.allocator.clone() else {
            return Err(self.alloc_failed(export, size));
        };
        let request = i32::try_from(size.max(1)).map_err(|_| self.alloc_failed(export, size))?;
        let ptr = match alloc.call_async(&mut self.store, request).await {
            Ok(ptr) => ptr,
            Err(error) => return Err(self.fault(export, error)),
        };
        if ptr == 0 {
            if self.store.data().limiter.hit {
                self.poisoned = true;
            }
            return Err(self.alloc_failed(export, size));
        }
        let memory_len = self.memory.data_size(&self.store);
        if guest_range(memory_len, ptr, request).is_none() {
            self.poisoned = true;
            return Err(GuardError::OutOfBounds {
                name: self.settings.name.to_string(),
                export: export.name().to_owned(),
                what: "buffer returned by alloc".to_owned(),
                ptr: ptr as u32,
                len: size,
                memory: memory_len,
            });
        }
        Ok(Buffer {
            ptr: ptr as u32,
            cap: size,
        })
    }

    async fn dealloc(&mut self, export: GuardExport, buffer: Buffer) -> Result<(), GuardError> {
        let Some((_, dealloc)) = self.allocator.clone() else {
            return Ok(());
        };
        let size = i32::try_from(buffer.cap.max(1)).unwrap_or(i32::MAX);
        match dealloc
            .call_async(&mut self.store, (buffer.ptr as i32, size))
            .await
        {
            Ok(()) => Ok(()),
            Err(error) => Err(self.fault(export, error)),
        }
    }

    /// Gives an output buffer grown by the `-2` protocol back to the guard, so that an
    /// instance's steady-state memory stays at the initial buffer size.
    async fn release_oversized_output(&mut self, export: GuardExport) {
        if let Some(output) = self.output
            && output.cap > self.settings.output_buffer_initial
        {
            self.output = None;
            if let Err(error) = self.dealloc(export, output).await {
                tracing::warn!(guard = %self.settings.name, %error, "dealloc of the output buffer failed");
            }
        }
    }

    fn alloc_failed(&self, export: GuardExport, size: usize) -> GuardError {
        GuardError::AllocFailed {
            name: self.settings.name.to_string(),
            export: export.name().to_owned(),
            size,
        }
    }

    fn memory_limit_error(&self, export: GuardExport) -> GuardError {
        GuardError::MemoryLimit {
            name: self.settings.name.to_string(),
            export: export.name().to_owned(),
            limit: self.settings.memory_limit,
        }
    }

    fn write_guest(
        &mut self,
        export: GuardExport,
        what: &str,
        ptr: u32,
        bytes: &[u8],
    ) -> Result<(), GuardError> {
        let data = self.memory.data_mut(&mut self.store);
        let memory = data.len();
        let range = ptr as usize..(ptr as usize).saturating_add(bytes.len());
        match data.get_mut(range) {
            Some(target) => {
                target.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(GuardError::OutOfBounds {
                name: self.settings.name.to_string(),
                export: export.name().to_owned(),
                what: what.to_owned(),
                ptr,
                len: bytes.len(),
                memory,
            }),
        }
    }

    fn read_guest(
        &self,
        export: GuardExport,
        what: &str,
        ptr: u32,
        len: usize,
    ) -> Result<Vec<u8>, GuardError> {
        let data = self.memory.data(&self.store);
        let range = ptr as usize..(ptr as usize).saturating_add(len);
        data.get(range)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| GuardError::OutOfBounds {
                name: self.settings.name.to_string(),
                export: export.name().to_owned(),
                what: what.to_owned(),
                ptr,
                len,
                memory: data.len(),
            })
    }

    /// Classifies an error raised while wasm ran and poisons the instance.
    fn fault(&mut self, export: GuardExport, error: wasmtime::Error) -> GuardError {
        self.poisoned = true;
        let name = self.settings.name.to_string();
        let export_name = export.name().to_owned();
        if error.downcast_ref::<DeadlineExceeded>().is_some() {
            return GuardError::Timeout {
                name,
                export: export_name,
                limit: self.settings.call_timeout,
            };
        }
        if self.store.data().limiter.hit {
            return self.memory_limit_error(export);
        }
        let mut message = if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            format!("guard exited with status {}", exit.0)
        } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            trap.to_string()
        } else {
            error.root_cause().to_string()
        };
        if let Some(last) = self.store.data().host.log.last_error() {
            message.push_str(&format!(" (last guard error: {last})"));
        }
        GuardError::Trap {
            name,
            export: export_name,
            message,
        }
    }
}
