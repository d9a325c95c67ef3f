//! The type checker against a corpus of mistakes (`tests/types/cases.yaml`): each case writes
//! one wrong thing into a definition, checked beside `tests/types/base.koreo`, and must be
//! reported exactly once, with the expected code, message and position, and nothing else of
//! K05xx said. Positions are within the case's own text (`line:column`). Cases that expect
//! `none` write what works although it looks close to a mistake: nothing may be said of them.

use std::path::Path;

use koreo_lang::source::Diagnostic;
use koreo_lang::{Workspace, analysis};

const CASES: &str = include_str!("types/cases.yaml");
const BASE: &str = include_str!("types/base.koreo");

struct Case {
    name: String,
    within: String,
    write: String,
    expect: String,
    hint: Option<String>,
}

fn cases() -> Vec<Case> {
    let docs = koreo_lang::yaml::parse_documents(CASES).expect("cases.yaml is YAML");
    let list = docs[0].root.to_json();
    list.as_array()
        .expect("a list of cases")
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().map(str::to_string);
            Case {
                name: text("case").expect("every case has a name"),
                within: text("in").expect("every case says where it is written"),
                write: text("write").expect("every case writes something"),
                expect: text("expect").expect("every case expects a diagnostic"),
                hint: text("hint"),
            }
        })
        .collect()
}

/// The document a case's text goes into, and how far in (lines before, columns of indent).
fn wrap(within: &str, write: &str) -> (String, u32, u32) {
    let words: Vec<&str> = within.split_whitespace().collect();
    let head = |kind: &str, name: &str| {
        format!(
            "apiVersion: koreo.dev/v1beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n"
        )
    };
    let function = |api_version: &str, kind: &str| {
        head("ResourceFunction", "case")
            + &format!(
                "  apiConfig: {{apiVersion: {api_version}, kind: {kind}, name: case, namespace: default}}\n"
            )
    };
    let (before, indent) = match words.as_slice() {
        ["body", api_version, kind] => (function(api_version, kind) + "  resource:\n", 4),
        ["overlay", api_version, kind] => (
            function(api_version, kind) + "  resource: {}\n  overlays:\n  - overlay:\n",
            6,
        ),
        ["return", api_version, kind] => (
            function(api_version, kind) + "  resource: {}\n  return:\n",
            4,
        ),
        ["template", api_version, kind] => (
            head("ResourceTemplate", "case")
                + &format!("  template:\n    apiVersion: {api_version}\n    kind: {kind}\n"),
            4,
        ),
        ["value"] => (head("ValueFunction", "case") + "  return:\n", 4),
        ["inputs"] => (head("ValueFunction", "reader") + "  return:\n", 4),
        ["steps"] => (
            head("Workflow", "case")
                + "  crdRef: {apiGroup: example.dev, version: v1, kind: App}\n  steps:\n",
            2,
        ),
        _ => panic!("unknown `in: {within}`"),
    };
    let pad = " ".repeat(indent as usize);
    let body: String = write.lines().map(|l| format!("{pad}{l}\n")).collect();
    let lines = before.lines().count() as u32;
    (before + &body, lines, indent)
}

fn type_diagnostics(ws: &Workspace) -> Vec<Diagnostic> {
    ws.diagnostics
        .iter()
        .cloned()
        .chain(analysis::check(ws))
        .filter(|d| d.code.id().starts_with("K05"))
        .collect()
}

fn checked(text: &str) -> Workspace {
    let mut ws = Workspace::default();
    ws.add_source(Path::new("base.koreo"), BASE.to_string());
    ws.add_source(Path::new("case.koreo"), text.to_string());
    ws.finish();
    ws
}

#[test]
fn the_base_alone_types_clean() {
    let ws = Workspace::load_str("base.koreo", BASE);
    let found = type_diagnostics(&ws);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn each_mistake_is_reported_once_where_it_is_written() {
    let cases = cases();
    let mistakes = cases.iter().filter(|c| c.expect != "none").count();
    assert!(mistakes >= 100, "{mistakes} mistakes");
    let mut failures = Vec::new();
    for case in &cases {
        let (text, lines, indent) = wrap(&case.within, &case.write);
        let found = type_diagnostics(&checked(&text));
        let shown: Vec<String> = found
            .iter()
            .map(|d| {
                let at = d.location.span.start;
                let (line, col) = (at.line.saturating_sub(lines), at.col.saturating_sub(indent));
                format!("{line}:{col} {} {}", d.code.id(), d.message)
            })
            .collect();
        let hint_ok = match (&case.hint, found.first()) {
            (Some(want), Some(d)) => d.hint.as_deref().is_some_and(|h| h.contains(want.as_str())),
            _ => true,
        };
        let expected: Vec<String> = match case.expect.as_str() {
            "none" => Vec::new(),
            one => vec![one.to_string()],
        };
        if shown != expected || !hint_ok {
            failures.push(format!(
                "{}:\n  expected {}{}\n  reported {shown:?}{}",
                case.name,
                case.expect,
                case.hint
                    .as_deref()
                    .map(|h| format!(" (hint: {h})"))
                    .unwrap_or_default(),
                found
                    .first()
                    .and_then(|d| d.hint.as_deref())
                    .map(|h| format!(" (hint: {h})"))
                    .unwrap_or_default(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "two cases share a name");
}
