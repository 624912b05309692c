//! What the gateway says about itself: the files of the log directory (and
//! the `tracing` layer writing them), the start-up digest of `gateway.md`
//! and the metrics registry. A leaf:
//! every stage writes through handles it is given, nothing here reaches
//! back into a stage.

pub mod digest;
pub mod logfiles;
pub mod metrics;
