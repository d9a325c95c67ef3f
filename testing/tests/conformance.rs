//! `../shared/conformance`: every FunctionTest case written for the original Koreo passes here.

use koreo_lang::Workspace;
use koreo_testing::{CaseStatus, run_all};

#[path = "../../test-support/shared.rs"]
mod shared;

#[test]
fn conformance_corpus_passes() {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for folder in ["koreo-core", "koreo-docs"] {
        let Some(path) = shared::shared(&format!("conformance/{folder}")) else {
            return;
        };
        let ws = Workspace::load_paths(&[path]);
        for report in run_all(&ws, None) {
            if let Some(error) = &report.error {
                failures.push(format!("{}: {error}", report.name));
            }
            for case in &report.cases {
                match &case.status {
                    CaseStatus::Passed => passed += 1,
                    CaseStatus::Skipped { .. } => skipped += 1,
                    CaseStatus::Failed {
                        message,
                        differences,
                    } => {
                        failed += 1;
                        let diffs: Vec<String> =
                            differences.iter().map(|d| format!("    {d}")).collect();
                        failures.push(format!(
                            "{} / {}: {message}\n{}",
                            report.name,
                            case.label,
                            diffs.join("\n")
                        ));
                    }
                }
            }
        }
    }
    println!("conformance: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!((passed, failed, skipped), (70, 0, 2));
}
