//! Tests in the editor: a "Run test" lens on each FunctionTest and WorkflowTest, and each
//! case's result inline.

use std::path::Path;

use koreo_testing::TestReport;
use koreo_testing::runner::CaseStatus;
use serde_json::json;
use tower_lsp_server::ls_types::{
    CodeLens, Command, InlayHint, InlayHintLabel, InlayHintTooltip, Position, Range, Uri,
};

use crate::document::DocumentInfo;
use crate::hover;
use crate::state::{Analysis, FileState};

/// The command the lens runs: arguments are the file's URI and the test's name.
pub const RUN_TEST: &str = "koreo.runTest";

/// Test documents of a file, with their reports.
fn tests<'a>(
    analysis: &'a Analysis,
    file: &'a FileState,
) -> impl Iterator<Item = (&'a DocumentInfo, Option<&'a TestReport>)> {
    file.docs
        .iter()
        .filter(|d| d.koreo && d.kind.ends_with("Test"))
        .map(move |d| {
            let report = d
                .definition
                .and_then(|i| analysis.test_report(file.path(), i));
            (d, report)
        })
}

pub fn code_lenses(analysis: &Analysis, path: &Path, uri: &Uri) -> Vec<CodeLens> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    tests(analysis, file)
        .filter_map(|(doc, report)| {
            let (name, span) = doc.name.as_ref()?;
            let summary = report.map_or(String::new(), |r| format!(" · {}", summary(r)));
            let at = file
                .lines
                .line_col(span.start.offset.min(file.lines.len()))
                .0 as u32;
            Some(CodeLens {
                range: Range::new(Position::new(at, 0), Position::new(at, 0)),
                command: Some(Command {
                    title: format!("▶ Run test{summary}"),
                    command: RUN_TEST.into(),
                    arguments: Some(vec![json!(uri.as_str()), json!(name)]),
                }),
                data: None,
            })
        })
        .collect()
}

/// "3 passed, 1 failed".
pub fn summary(report: &TestReport) -> String {
    if report.error.is_some() {
        return "cannot run".into();
    }
    let count = |f: fn(&CaseStatus) -> bool| report.cases.iter().filter(|c| f(&c.status)).count();
    let mut parts = vec![format!(
        "{} passed",
        count(|s| matches!(s, CaseStatus::Passed))
    )];
    let failed = count(|s| matches!(s, CaseStatus::Failed { .. }));
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    let skipped = count(|s| matches!(s, CaseStatus::Skipped { .. }));
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    parts.join(", ")
}

/// After each test case's first line: passed, failed or skipped.
pub fn inlay_hints(analysis: &Analysis, path: &Path, range: Range) -> Vec<InlayHint> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    if file.stale {
        return Vec::new();
    }
    let text = file.text();
    let mut out = Vec::new();
    for (doc, report) in tests(analysis, file) {
        let Some(report) = report else { continue };
        let cases = doc
            .spec()
            .and_then(|s| s.get("testCases"))
            .and_then(koreo_lang::yaml::Node::as_seq)
            .unwrap_or_default();
        let name_offset = doc
            .name
            .as_ref()
            .map_or(doc.root.span.start.offset, |(_, s)| s.start.offset);
        let mut marks: Vec<(u32, String, String)> = Vec::new();
        if let Some(error) = &report.error {
            marks.push((name_offset, "✗ cannot run".into(), error.clone()));
        }
        for (i, case) in report.cases.iter().enumerate() {
            let label = match &case.status {
                CaseStatus::Passed => "✓ passed",
                CaseStatus::Failed { .. } => "✗ failed",
                CaseStatus::Skipped { .. } => "⊘ skipped",
            };
            // Cases the runner adds (a WorkflowTest's settling check) show at the test's name.
            let (offset, label) = match cases.get(i) {
                Some(node) => (node.span.start.offset, label.to_string()),
                None => (name_offset, format!("{}: {label}", case.label)),
            };
            marks.push((offset, label, hover::status(&case.status)));
        }
        for (offset, label, tooltip) in marks {
            let (line, _) = file.lines.line_col(offset);
            let end = file.lines.line(text, line).encode_utf16().count() as u32;
            let position = Position::new(line as u32, end);
            if position < range.start || position > range.end {
                continue;
            }
            out.push(InlayHint {
                position,
                label: InlayHintLabel::String(label),
                kind: None,
                text_edits: None,
                tooltip: Some(InlayHintTooltip::String(tooltip)),
                padding_left: Some(true),
                padding_right: None,
                data: None,
            });
        }
    }
    out
}
