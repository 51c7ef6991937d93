#![no_main]
// Random sequences of create / append / scan / drop / rotate / re-key / reopen with injected I/O
// faults, checked against an in-memory model (see sealstore_cluster::fuzzing).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    sealstore_cluster::fuzzing::stateful(dir.path(), data);
});
