//! Macros of the CEL specification that the `cel` crate lacks.

use cel::Env;

pub(crate) fn register(_env: &mut Env) {}
