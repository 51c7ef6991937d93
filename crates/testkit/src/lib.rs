//! Test and fuzz helpers for sealstore, outside the product crates (`publish = false`): the
//! stateful model checker shared by the `stateful` fuzz target and the property test in
//! `tests/stateful.rs`.
pub mod stateful;
