#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| es_fuzz::http_request(data));
