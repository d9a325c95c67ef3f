//! The Koreo test runner: FunctionTests run as a sequence of reconciles against a simulated
//! object, and reports for people (text) and for CI (JSON, JUnit XML).

pub mod diff;
pub mod report;
pub mod runner;

pub use runner::{CaseResult, CaseStatus, TestReport, run_all, run_function_test};
