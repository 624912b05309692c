//! The guard host: loads WebAssembly DIFC guards and calls them through the guard ABI.
