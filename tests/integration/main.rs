//! static-nn's integration tests, in one binary (one link of dfdx instead
//! of one per file), sorted by subject. `tests/compile_fail.rs` (trybuild)
//! is the only other test binary.
//!
//! Run one subject with a filter: `cargo test --test integration data::`.

mod common;
mod data;
mod distributed;
mod examples_cli;
mod fuzz_seeds;
mod models;
mod nn;
mod notebook;
mod outputs;
mod pictures;
mod shapes;
mod train;
mod weights;
