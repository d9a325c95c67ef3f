//! The Koreo files written by others load and check without errors, except the two partial
//! snippets of the koreo.dev docs that Koreo itself rejects (no `apiConfig`).

use koreo_lang::{Workspace, analysis};

#[path = "../../test-support/shared.rs"]
mod shared;

/// A folder of `../shared/conformance`, loaded (`None`: not here, the test is skipped).
fn load(folder: &str) -> Option<Workspace> {
    let path = shared::shared(&format!("conformance/{folder}"))?;
    Some(Workspace::load_paths(&[path]))
}

const KNOWN_PARTIAL_SNIPPETS: [&str; 2] = ["docs-template-function.v1", "s3-bucket-factory.v1"];

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
