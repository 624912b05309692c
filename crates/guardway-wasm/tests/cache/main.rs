//! Integration tests of the compilation cache with real modules, real files and threads.

mod common;
mod disk;
mod memory;
#[cfg(target_arch = "x86_64")]
mod portable;
