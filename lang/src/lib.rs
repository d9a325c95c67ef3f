//! The Koreo language core: loading, the typed model, expressions, analysis and pure evaluation.
//! It reads files but does no other I/O: no network, no async, no Kubernetes client.

pub mod analysis;
pub mod codes;
pub mod compare;
pub mod cost;
mod decode;
pub mod eval;
pub mod expr;
pub mod load;
pub mod model;
pub mod openapi;
pub mod parallel;
pub mod schema;
pub mod source;
pub mod typecheck;
pub mod types;
pub mod yaml;

pub use load::Workspace;
