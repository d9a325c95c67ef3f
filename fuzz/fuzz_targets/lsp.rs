//! Any bytes on the language server's input: it never panics, and ends when the input does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    koreo_lsp::serve_bytes(input);
});
