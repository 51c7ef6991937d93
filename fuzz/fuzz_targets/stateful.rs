#![no_main]
// Random sequences of create / append / scan / drop / rotate / re-key / reopen with injected I/O
// faults, checked against an in-memory model (see sealstore_testkit::stateful).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    sealstore_testkit::stateful::run(dir.path(), data);
});
