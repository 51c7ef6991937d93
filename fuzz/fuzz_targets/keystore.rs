#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealstore_keyring::fuzzing::parse_keystore(data));
