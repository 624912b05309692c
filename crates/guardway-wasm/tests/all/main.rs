//! Integration tests of the guard host, one module per concern; fixtures are `.wat` files
//! under `tests/fixtures/` compiled at test time.

mod backend;
mod buffers;
mod common;
mod faults;
mod loading;
mod logging;
mod pool;
mod sample_guard;
mod tiers;
mod typed;
