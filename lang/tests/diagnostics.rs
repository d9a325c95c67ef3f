//! Every diagnostic code, tested from data: each file in `tests/diagnostics/` marks the lines
//! where a diagnostic must start with `#> K0102` (codes separated by spaces), and loading and
//! checking the file alone must report exactly those. Every code has a file, and an entry in
//! docs/diagnostics.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use koreo_lang::codes::Code;
use koreo_lang::{Workspace, analysis};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/diagnostics")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// (line, code) for every `#> K....` marker.
fn expected(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some((_, marks)) = line.split_once("#> ") {
            out.extend(
                marks
                    .split_whitespace()
                    .map(|c| (i as u32 + 1, c.to_string())),
            );
        }
    }
    out.sort();
    out
}

fn reported(path: &Path) -> Vec<(u32, String)> {
    let ws = Workspace::load_paths(&[path]);
    let mut found: Vec<(u32, String)> = ws
        .diagnostics
        .iter()
        .chain(&analysis::check(&ws))
        .map(|d| (d.location.span.start.line, d.code.id().to_string()))
        .collect();
    found.sort();
    found
}

#[test]
fn each_fixture_reports_exactly_what_it_marks() {
    let mut failures = Vec::new();
    for path in fixtures() {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable")).into_owned();
        let (want, got) = (expected(&text), reported(&path));
        if want.is_empty() {
            failures.push(format!("{}: marks no diagnostic", path.display()));
        } else if want != got {
            failures.push(format!(
                "{}:\n  marked   {want:?}\n  reported {got:?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_code_has_a_fixture_and_documentation() {
    let marked: BTreeSet<String> = fixtures()
        .iter()
        .flat_map(|p| {
            expected(&String::from_utf8_lossy(
                &std::fs::read(p).expect("readable"),
            ))
        })
        .map(|(_, code)| code)
        .collect();
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let docs = std::fs::read_to_string(docs_path).expect("docs/diagnostics.md");
    let documented: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::to_string)
        .collect();
    let mut problems = Vec::new();
    for code in Code::ALL {
        if !marked.contains(code.id()) {
            problems.push(format!("{code} has no fixture in lang/tests/diagnostics"));
        }
        let heading = format!("{} {}", code.id(), code.name());
        if !documented.contains(&heading) {
            problems.push(format!("docs/diagnostics.md has no `## {heading}`"));
        }
    }
    let known: BTreeSet<String> = Code::ALL
        .iter()
        .map(|c| format!("{} {}", c.id(), c.name()))
        .collect();
    for heading in documented.iter().filter(|h| h.starts_with('K')) {
        if !known.contains(heading) {
            problems.push(format!(
                "docs/diagnostics.md documents `{heading}`, which is no code"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
