//! The Koreo expression function library: the CEL environment every Koreo expression compiles
//! and runs in. It holds CEL's standard library, the strings/lists/math extensions, Koreo's own
//! functions (`to_ref`, `overlay`, `to_json`, ...) and the macros the CEL spec defines beyond the
//! `cel` crate (two-variable comprehensions, `cel.bind`, `cel.block`).

use std::sync::{Arc, LazyLock};

use cel::Env;

mod functions;
mod macros;

pub use functions::FUNCTIONS;

/// The shared environment. Building it costs a few milliseconds, so it is built once.
pub fn env() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(build_env()));
    ENV.clone()
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    for extension in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
    ] {
        env.add_extension(extension)
            .expect("CEL extensions register without conflicts");
    }
    functions::register(&mut env);
    macros::register(&mut env);
    env
}
