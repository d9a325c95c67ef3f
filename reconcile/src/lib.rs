//! One reconcile of one parent, over any [`engine::ResourceApi`]: the workflow engine (steps as
//! a DAG, evaluation by `koreo_lang`), the pass around it (finalizer, pruning, status), and the
//! boundary of what a Workflow may reach. No Kubernetes client: the controller (koreo-runtime)
//! gives it the cluster, the WorkflowTest runner (koreo-testing) an in-memory one.

pub mod boundary;
pub mod engine;
pub mod managed;
pub mod ownership;
pub mod pass;

/// The field manager of everything koreo writes.
pub const FIELD_MANAGER: &str = "koreo";
