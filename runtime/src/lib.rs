//! The koreo controller: workflows as control loops over any Kubernetes kinds.

pub mod controller;
pub mod events;
pub mod kube_api;
pub mod leader;
pub mod metrics;
pub mod rbac;
pub mod schemas;

// One reconcile, kube-free, lives in koreo-reconcile; these paths keep the controller's code short.
pub use koreo_reconcile::{FIELD_MANAGER, boundary, engine, managed, ownership, pass};
