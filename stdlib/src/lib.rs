//! The Koreo expression function library: the CEL environment every Koreo expression compiles
//! and runs in. It holds CEL's standard library, the strings/lists/math extensions, Koreo's own
//! functions (`to_ref`, `overlay`, `to_json`, ...) and the macros the CEL spec defines beyond the
//! `cel` crate (two-variable comprehensions, `cel.bind`, `cel.block`).

use std::sync::{Arc, LazyLock};

use cel::common::ast::SourceInfo;
use cel::{Env, IdedExpr, ParseErrors};

mod functions;
mod json;
mod lenient;
mod macros;

pub use functions::FUNCTIONS;
pub use json::{json_to_val, owned_json_to_val};

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

/// Longer expressions are refused: the parser and interpreter recurse on the expression's
/// structure, and a bounded input keeps that recursion within any thread's stack.
pub const MAX_EXPRESSION_LENGTH: usize = 8192;
/// Brackets nested deeper than this are refused, for the same reason (the CEL spec asks for
/// 32 levels).
pub const MAX_NESTING: usize = 32;
/// Operators and member accesses (`+`, `.`, `&&`, ...) outside strings: a chain of them is as
/// deep as it is long once parsed.
pub const MAX_OPERATIONS: usize = 256;

/// Parses with the shared environment's macros, optional syntax and backtick identifiers, and
/// Koreo's lenient `has()` (see `lenient.rs`).
pub fn parse(source: &str) -> Result<Parsed, ParseErrors> {
    check_size(source)?;
    let (mut ast, source_info) = env()
        .pratt_parser()
        .enable_ident_escape_syntax(true)
        .parse_with_source_info(source)?;
    lenient::relax_has(&mut ast);
    Ok(Parsed { ast, source_info })
}

fn check_size(source: &str) -> Result<(), ParseErrors> {
    let refuse = |msg: String| ParseErrors {
        errors: vec![cel::ParseError {
            source: None,
            pos: (1, 0),
            msg,
            expr_id: 0,
            source_info: None,
        }],
    };
    if source.len() > MAX_EXPRESSION_LENGTH {
        return Err(refuse(format!(
            "the expression is {} characters long; at most {MAX_EXPRESSION_LENGTH} are allowed (split it with `locals`)",
            source.len()
        )));
    }
    let mut depth = 0usize;
    let mut operations = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            match c {
                '\\' => {
                    chars.next();
                }
                c if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(refuse(format!(
                        "brackets nest more than {MAX_NESTING} deep; split the expression with `locals`"
                    )));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '.' | '+' | '-' | '*' | '/' | '%' | '&' | '|' | '?' | '<' | '>' | '=' | '!' => {
                operations += 1;
                if operations > MAX_OPERATIONS {
                    return Err(refuse(format!(
                        "the expression chains more than {MAX_OPERATIONS} operations; split it with `locals`"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
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
