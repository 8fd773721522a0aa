//! Feeds arbitrary bytes to the engine's decoding of a shared-library
//! plugin's answers (`berth_plugin_v1`'s `call`), as a buggy plugin could
//! return them: it must never panic, and an error must be one line.
#![no_main]

use berth_engine::plugins::decode_answer;
use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &[
    "GetCapabilities",
    "Validate",
    "CreateNetwork",
    "CreateEndpoint",
    "Join",
    "Leave",
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the method whose answer this is.
    let Some((&m, answer)) = data.split_first() else {
        return;
    };
    if let Err(e) = decode_answer(METHODS[m as usize % METHODS.len()], answer) {
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
});
