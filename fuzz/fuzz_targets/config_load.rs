//! Any bytes as a configuration file: the loader answers with a config or
//! positioned diagnostics, never a panic, and in bounded time and memory
//! (alias expansion, depth and size are budgeted).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = gatehouse_config::load_str(&text, "fuzz.yaml", std::path::Path::new("."), &|_| None);
});
