//! The Koreo language core: loading, the typed model, expressions, analysis and pure evaluation.
//! No I/O beyond reading files, no async, no Kubernetes client: everything else builds on this.

pub mod expr;
pub mod source;
pub mod yaml;
