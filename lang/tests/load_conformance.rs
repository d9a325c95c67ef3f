//! The Koreo files written by others load and check without errors, except the two partial
//! snippets of the koreo.dev docs that Koreo itself rejects (no `apiConfig`), and the fields
//! Koreo's compare-directive fixtures write at the root of a CRD that declares only `spec` and
//! `status` (the API server drops them: seen on v1.36.2, see docs/compatibility.md).

use koreo_lang::source::Severity;
use koreo_lang::{Workspace, analysis};

#[path = "../../test-support/shared.rs"]
mod shared;

/// A folder of `../shared/conformance`, loaded (`None`: not here, the test is skipped).
fn load(folder: &str) -> Option<Workspace> {
    let path = shared::shared(&format!("conformance/{folder}"))?;
    Some(Workspace::load_paths(&[path]))
}

const KNOWN_PARTIAL_SNIPPETS: [&str; 2] = ["docs-template-function.v1", "s3-bucket-factory.v1"];

/// Lines of `koreo-core/compare-directives.koreo` that write a field `TriggerDummy` lacks.
const UNDECLARED_ROOT_FIELDS: [(u32, &str); 8] = [
    (82, "anIntArray"),
    (88, "aStrArray"),
    (94, "anIntSet"),
    (100, "aStrSet"),
    (266, "anIntArray"),
    (272, "aStrArray"),
    (282, "anIntMap"),
    (288, "aStrMap"),
];

fn undeclared_root_field(d: &koreo_lang::source::Diagnostic) -> bool {
    d.location.path().ends_with("compare-directives.koreo")
        && UNDECLARED_ROOT_FIELDS.iter().any(|(line, field)| {
            d.location.span.start.line == *line
                && d.message == format!("a TriggerDummy has no field `{field}`")
        })
}

#[test]
fn conformance_folders_load_and_check_clean() {
    for folder in ["koreo-core", "koreo-docs"] {
        let Some(ws) = load(folder) else {
            return;
        };
        let mut errors: Vec<_> = ws
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        errors.extend(analysis::check(&ws).into_iter().filter(|d| d.is_error()));
        let unexpected: Vec<String> = errors
            .iter()
            .filter(|d| !undeclared_root_field(d))
            .filter(|d| {
                // The snippet's name sits a few lines above the `spec` the error points at.
                let file = &d.location.file;
                let start = d.location.span.start.line;
                let above: String = (1..=4)
                    .filter_map(|back| file.line_text(start.saturating_sub(back)))
                    .collect();
                !KNOWN_PARTIAL_SNIPPETS
                    .iter()
                    .any(|name| above.contains(name))
            })
            .map(|d| d.to_string())
            .collect();
        assert!(
            unexpected.is_empty(),
            "{folder}:\n{}",
            unexpected.join("\n")
        );
        assert!(ws.function_tests().count() >= 11, "{folder}: tests loaded");
    }
}

/// Typing is silent where it is not sure: nothing but the known undeclared fields is said, not
/// even a warning, of what expressions read and resource bodies write. (Hints, K0503, are
/// not findings: `koreo check` shows them only when asked.)
#[test]
fn type_checks_find_nothing_but_the_fields_kubernetes_drops() {
    let Some(core) = load("koreo-core") else {
        return;
    };
    let found: Vec<_> = analysis::check(&core)
        .into_iter()
        .filter(|d| d.code.id().starts_with("K05") && d.severity != Severity::Hint)
        .collect();
    let unexpected: Vec<String> = found
        .iter()
        .filter(|d| !undeclared_root_field(d))
        .map(|d| d.to_string())
        .collect();
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    assert_eq!(found.len(), UNDECLARED_ROOT_FIELDS.len(), "{found:?}");
    let docs = load("koreo-docs").expect("beside koreo-core");
    let in_docs: Vec<String> = analysis::check(&docs)
        .into_iter()
        .filter(|d| d.code.id().starts_with("K05") && d.severity != Severity::Hint)
        .map(|d| d.to_string())
        .collect();
    assert!(in_docs.is_empty(), "{}", in_docs.join("\n"));
}

#[test]
fn partial_snippets_are_rejected_with_the_missing_field() {
    let Some(ws) = load("koreo-docs") else {
        return;
    };
    let messages: Vec<_> = ws.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"`spec.apiConfig` is required"),
        "{messages:?}"
    );
    assert!(
        ws.resource_function("s3-bucket-factory.v1", Some("koreo-demo"))
            .is_none()
    );
}
