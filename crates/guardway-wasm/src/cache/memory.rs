//! The memory tier: compiled modules bounded by total (estimated) bytes, least recently used evicted first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use wasmtime::{Engine, Module};

use super::key::CacheKey;

struct MemoryEntry {
    module: Module,
    size: u64,
    compile_time: Duration,
    last_use: u64,
}

/// Not synchronised; the cache wraps it in a mutex.
pub(crate) struct MemoryTier {
    max_bytes: u64,
    bytes: u64,
    clock: u64,
    entries: HashMap<CacheKey, MemoryEntry>,
    by_last_use: BTreeMap<u64, CacheKey>,
}

/// A module found in memory, with the time it originally took to compile.
pub(crate) struct MemoryHit {
    pub module: Module,
    pub compile_time: Duration,
}

impl MemoryTier {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            bytes: 0,
            clock: 0,
            entries: HashMap::new(),
            by_last_use: BTreeMap::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Returns the module for `key` if it was compiled by `engine` itself
    /// (a module cannot be instantiated in another engine, even one with the
    /// same fingerprint), and marks it most recently used.
    pub fn get(&mut self, key: &CacheKey, engine: &Engine) -> Option<MemoryHit> {
        let now = self.tick();
        let entry = self.entries.get_mut(key)?;
        if !Engine::same(entry.module.engine(), engine) {
            return None;
        }
        self.by_last_use.remove(&entry.last_use);
        entry.last_use = now;
        self.by_last_use.insert(now, *key);
        Some(MemoryHit {
            module: entry.module.clone(),
            compile_time: entry.compile_time,
        })
    }

    pub fn contains(&self, key: &CacheKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Inserts (or replaces) `key`, then evicts least recently used entries
    /// until the bound holds. A module larger than the whole bound is not
    /// kept. Returns how many entries were evicted.
    pub fn insert(&mut self, key: CacheKey, module: Module, compile_time: Duration) -> u64 {
        let size = module_size(&module);
        self.remove(&key);
        if size > self.max_bytes {
            return 0;
        }
        let now = self.tick();
        self.entries.insert(
            key,
            MemoryEntry {
                module,
                size,
                compile_time,
                last_use: now,
            },
        );
        self.by_last_use.insert(now, key);
        self.bytes += size;
        let mut evicted = 0;
        while self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_last_use.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.size;
                evicted += 1;
            }
        }
        evicted
    }

    pub fn remove(&mut self, key: &CacheKey) {
        if let Some(old) = self.entries.remove(key) {
            self.by_last_use.remove(&old.last_use);
            self.bytes -= old.size;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_last_use.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The size the memory tier charges for a module: the length of its compiled
/// code image (about the length of its serialised artifact).
pub fn module_size(module: &Module) -> u64 {
    let range = module.image_range();
    (range.end as usize).saturating_sub(range.start as usize) as u64
}
