//! The koreo controller: workflows as control loops over any Kubernetes kinds.

pub mod boundary;
pub mod controller;
pub mod engine;
pub mod events;
pub mod kube_api;
pub mod leader;
pub mod metrics;
pub mod pass;
pub mod rbac;
