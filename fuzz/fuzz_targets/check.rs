//! Any text that loads is checked (references, step graphs, tests) without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ws = koreo_lang::Workspace::load_str("fuzz.koreo", text);
    for d in koreo_lang::analysis::check(&ws) {
        assert!(d.location.span.start.line >= 1, "{d}");
    }
});
