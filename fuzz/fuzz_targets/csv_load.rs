#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealstore_ingest::fuzzing::csv(data));
