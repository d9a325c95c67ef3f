//! The Koreo test runner: FunctionTests run as a sequence of reconciles against a simulated
//! object, WorkflowTests as reconcile passes of the runtime against an in-memory cluster, and
//! reports for people (text) and for CI (JSON, JUnit XML).

pub mod report;
pub mod runner;
pub mod workflow_test;

pub use runner::{CaseResult, CaseStatus, TestReport, run_all, run_function_test};
pub use workflow_test::run_workflow_test;
