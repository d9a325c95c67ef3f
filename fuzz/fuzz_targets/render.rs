//! The CLI renders every diagnostic of any file without a panic (long lines, wide characters,
//! positions at the end of the text).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ws = koreo_lang::Workspace::load_str("fuzz.koreo", text);
    for d in ws.diagnostics.iter().chain(&koreo_lang::analysis::check(&ws)) {
        let _ = koreo::render::render(d, false);
    }
});
