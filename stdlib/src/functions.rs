//! Koreo's functions. Each is callable as `f(x, ...)` and as `x.f(...)`.

use cel::Env;

/// Name, signature and one-line description of every function this module adds, for docs,
/// completion and hover.
pub static FUNCTIONS: &[FunctionDoc] = &[];

pub struct FunctionDoc {
    pub name: &'static str,
    pub signature: &'static str,
    pub summary: &'static str,
    pub example: &'static str,
}

pub(crate) fn register(_env: &mut Env) {}
