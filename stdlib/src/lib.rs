//! The Koreo expression function library: the CEL environment every Koreo expression compiles
//! and runs in. It holds CEL's standard library, the strings/lists/math extensions, Koreo's own
//! functions (`to_ref`, `overlay`, `to_json`, ...) and the macros the CEL spec defines beyond the
//! `cel` crate (two-variable comprehensions, `cel.bind`, `cel.block`).

use std::sync::{Arc, LazyLock};

use cel::common::ast::SourceInfo;
use cel::{Env, IdedExpr, ParseErrors};

mod functions;
mod lenient;
mod macros;

pub use functions::FUNCTIONS;

/// The shared environment. Building it costs a few milliseconds, so it is built once.
pub fn env() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(build_env()));
    ENV.clone()
}

/// A parsed Koreo expression. The crate's `Program` cannot be built with backtick-quoted
/// identifiers (``a.`b-c` ``) enabled, so expressions are kept as their AST.
#[derive(Debug)]
pub struct Parsed {
    pub ast: IdedExpr,
    pub source_info: SourceInfo,
}

/// Parses with the shared environment's macros, optional syntax and backtick identifiers, and
/// Koreo's lenient `has()` (see `lenient.rs`).
pub fn parse(source: &str) -> Result<Parsed, ParseErrors> {
    let (mut ast, source_info) = env()
        .parser()
        .enable_ident_escape_syntax(true)
        .parse_with_source_info(source)?;
    lenient::relax_has(&mut ast);
    Ok(Parsed { ast, source_info })
}

fn build_env() -> Env {
    let mut env = Env::stdlib();
    for extension in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
        cel::extensions::encoders,
    ] {
        env.add_extension(extension)
            .expect("CEL extensions register without conflicts");
    }
    functions::register(&mut env);
    lenient::register(&mut env);
    macros::register(&mut env);
    env
}
