//! Benchmark placeholder: evaluating and filtering a path-labelled response.
fn main() {}
