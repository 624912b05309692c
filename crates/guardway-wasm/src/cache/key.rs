//! Cache keys: the engine's compatibility fingerprint plus the BLAKE3 hash of a module's bytes.

use std::fmt;
use std::hash::{Hash, Hasher};

use parking_lot::Mutex;
use wasmtime::{Engine, EngineWeak};

/// Tag mixed into every fingerprint, so a change of this crate's artifact
/// layout never collides with artifacts written by an older layout.
const FINGERPRINT_DOMAIN: &[u8] = b"guardway compiled guard artifact";

/// A short digest of everything in an [`Engine`]'s configuration that decides
/// whether a compiled artifact can be loaded by it (target, code generator
/// flags, tunables, wasm features, wasmtime version).
///
/// Two engines with equal fingerprints load each other's artifacts. Cheap to
/// clone (16 bytes); displayed as 32 lowercase hex digits, which is also the
/// name of its directory in the disk cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EngineFingerprint([u8; 16]);

impl EngineFingerprint {
    /// Computes the fingerprint of `engine`.
    pub fn of(engine: &Engine) -> Self {
        let mut hasher = Blake3StdHasher(blake3::Hasher::new());
        hasher.0.update(FINGERPRINT_DOMAIN);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hasher.0.finalize();
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest.as_bytes()[..16]);
        Self(short)
    }

    /// The fingerprint of `engine`, computed once per engine and remembered for the
    /// engines in use (a process has a few).
    pub fn remembered(engine: &Engine) -> Self {
        let mut memo = FINGERPRINTS.lock();
        memo.retain(|(weak, _)| weak.upgrade().is_some());
        if let Some((_, fingerprint)) = memo
            .iter()
            .find(|(weak, _)| weak.upgrade().is_some_and(|e| Engine::same(&e, engine)))
        {
            return *fingerprint;
        }
        let fingerprint = Self::of(engine);
        if memo.len() >= FINGERPRINT_MEMO_LEN {
            memo.remove(0);
        }
        memo.push((engine.weak(), fingerprint));
        fingerprint
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub(crate) fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses the 32-hex-digit form (a disk cache directory name).
    pub fn parse_hex(text: &str) -> Option<Self> {
        let bytes = parse_hex_array::<16>(text)?;
        Some(Self(bytes))
    }
}

impl fmt::Display for EngineFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for EngineFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EngineFingerprint({self})")
    }
}

/// Engines whose fingerprints are remembered (a process normally has two or three).
const FINGERPRINT_MEMO_LEN: usize = 16;

static FINGERPRINTS: Mutex<Vec<(EngineWeak, EngineFingerprint)>> = Mutex::new(Vec::new());

/// Identifies one compiled module: which engine configuration compiled it and
/// from which bytes. Cheap to clone (48 bytes, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    fingerprint: EngineFingerprint,
    module_hash: [u8; 32],
}

impl CacheKey {
    /// The key of `bytes` compiled by `engine`.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Self {
        Self::with_fingerprint(EngineFingerprint::of(engine), bytes)
    }

    /// The key of `bytes` compiled by an engine whose fingerprint is known.
    pub fn with_fingerprint(fingerprint: EngineFingerprint, bytes: &[u8]) -> Self {
        Self {
            fingerprint,
            module_hash: *blake3::hash(bytes).as_bytes(),
        }
    }

    /// The key of a module whose BLAKE3 hash is known, compiled by an engine whose
    /// fingerprint is known (no hashing).
    pub fn from_parts(fingerprint: EngineFingerprint, module_hash: [u8; 32]) -> Self {
        Self {
            fingerprint,
            module_hash,
        }
    }

    /// The key of the same module bytes compiled by another engine.
    pub fn for_fingerprint(&self, fingerprint: EngineFingerprint) -> Self {
        Self {
            fingerprint,
            module_hash: self.module_hash,
        }
    }

    /// The engine fingerprint part.
    pub fn fingerprint(&self) -> EngineFingerprint {
        self.fingerprint
    }

    /// The BLAKE3 hash of the module bytes.
    pub fn module_hash(&self) -> &[u8; 32] {
        &self.module_hash
    }

    /// The BLAKE3 hash of the module bytes as 64 lowercase hex digits (the
    /// artifact's file stem on disk).
    pub fn module_hash_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.module_hash {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CacheKey({}/{})",
            self.fingerprint,
            self.module_hash_hex()
        )
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.fingerprint, self.module_hash_hex())
    }
}

/// Feeds `std::hash::Hash` output into BLAKE3, so the fingerprint is the same
/// in every process (unlike `DefaultHasher`, whose algorithm may change).
struct Blake3StdHasher(blake3::Hasher);

impl Hasher for Blake3StdHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

pub(crate) fn parse_hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = hex_value(pair[0])?;
        let low = hex_value(pair[1])?;
        *slot = (high << 4) | low;
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_for_equal_configs_and_differs_otherwise() {
        let a = Engine::new(&wasmtime::Config::new()).unwrap();
        let b = Engine::new(&wasmtime::Config::new()).unwrap();
        assert_eq!(EngineFingerprint::of(&a), EngineFingerprint::of(&b));

        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let c = Engine::new(&config).unwrap();
        assert_ne!(EngineFingerprint::of(&a), EngineFingerprint::of(&c));
    }

    #[test]
    fn hex_round_trips() {
        let engine = Engine::default();
        let fingerprint = EngineFingerprint::of(&engine);
        let text = fingerprint.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(EngineFingerprint::parse_hex(&text), Some(fingerprint));
        assert_eq!(EngineFingerprint::parse_hex("zz"), None);
        assert_eq!(EngineFingerprint::parse_hex(&text.to_uppercase()), None);
    }

    #[test]
    fn keys_differ_by_bytes() {
        let engine = Engine::default();
        let a = CacheKey::new(&engine, b"\0asm\x01\0\0\0");
        let b = CacheKey::new(&engine, b"\0asm\x01\0\0\0\0");
        assert_ne!(a, b);
        assert_eq!(a.module_hash_hex().len(), 64);
    }
}
