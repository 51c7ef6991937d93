//! Benchmarks for sealstore: criterion benches in `benches/`, and `append-stream`, a binary that
//! appends a long stream of batches in one transaction so its peak memory can be measured with
//! `/usr/bin/time -v`.
