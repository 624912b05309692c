//! Gateway configuration: the model every part of the gateway reads, and (in
//! sibling modules) parsing of TOML files and stdin JSON into it.

mod model;

pub use model::*;
