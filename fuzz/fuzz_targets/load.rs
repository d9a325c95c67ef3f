//! Any text loads without a panic, and every diagnostic points into the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ws = koreo_lang::Workspace::load_str("fuzz.koreo", text);
    for d in &ws.diagnostics {
        assert!(d.location.span.start.line >= 1, "{d}");
    }
});
