//! DIFC core: labels, the evaluator, response filtering and guard-policy validation. Pure logic, no I/O.
