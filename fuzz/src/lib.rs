//! Shared helpers of the fuzz targets: splitting one fuzzer input into the
//! several documents a target feeds to guardway, and the single tokio
//! runtime the asynchronous targets run on.

use std::sync::OnceLock;

/// Separates the documents packed into one input. `0xFF` never occurs in
/// UTF-8 text, so it cannot be part of a JSON or TOML document.
pub const SEPARATOR: u8 = 0xFF;

/// Splits `data` at [`SEPARATOR`] into exactly `N` parts (missing ones are
/// empty; extra separators stay in the last part).
pub fn split<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut parts = [&[][..]; N];
    let mut rest = data;
    for (index, part) in parts.iter_mut().enumerate() {
        if index + 1 == N {
            *part = rest;
            break;
        }
        match rest.iter().position(|&b| b == SEPARATOR) {
            Some(at) => {
                *part = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *part = rest;
                rest = &[];
            }
        }
    }
    parts
}

/// Packs documents the way [`split`] unpacks them (for seed corpora).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            out.push(SEPARATOR);
        }
        out.extend_from_slice(part);
    }
    out
}

/// The runtime every asynchronous target runs on: the gateway and the guard
/// host expect a multi-threaded tokio runtime.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A small cursor over fuzzer bytes: every read succeeds (zeros once the
/// input is exhausted), so a target never has to reject an input.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn i32(&mut self) -> i32 {
        self.u32() as i32
    }

    /// Up to `len` bytes.
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_round_trip() {
        let packed = join(&[b"a", b"", b"c"]);
        assert_eq!(split::<3>(&packed), [&b"a"[..], b"", b"c"]);
        assert_eq!(split::<2>(&packed), [&b"a"[..], &packed[2..]]);
        assert_eq!(split::<4>(b"x"), [&b"x"[..], b"", b"", b""]);
    }
}
