//! Integration tests of the compilation cache with real modules, real files and threads.

mod common;
mod disk;
mod memory;
