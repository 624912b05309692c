//! SDK for writing guardway DIFC guards in Rust for `wasm32-wasip1`.
