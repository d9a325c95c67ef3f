//! An in-process Kubernetes API server for tests and first runs: the real `kube::Client` and
//! `kubectl` talk to it over HTTP on 127.0.0.1. `docs/testkube.md` records what it implements.

pub mod error;
pub mod fields;
pub mod selector;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod strategic;
pub mod table;
pub mod types;

pub use error::ApiError;
#[cfg(feature = "server")]
pub use server::TestKube;
pub use store::Store;
