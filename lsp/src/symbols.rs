//! The outline: each document, with its steps, locals and test cases.

use std::path::Path;

use koreo_lang::source::Span;
use koreo_lang::yaml::Node;
use tower_lsp_server::ls_types::{DocumentSymbol, SymbolKind};

use crate::document::{DocumentInfo, map_keys};
use crate::state::{Analysis, FileState};

pub fn document_symbols(analysis: &Analysis, path: &Path) -> Vec<DocumentSymbol> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    file.docs.iter().map(|doc| document(file, doc)).collect()
}

fn document(file: &FileState, doc: &DocumentInfo) -> DocumentSymbol {
    let name = doc.name.as_ref().map_or("(unnamed)", |(n, _)| n.as_str());
    let kind = match doc.kind.as_str() {
        _ if !doc.koreo => SymbolKind::OBJECT,
        "ValueFunction" | "ResourceFunction" => SymbolKind::FUNCTION,
        "ResourceTemplate" => SymbolKind::STRUCT,
        "Workflow" => SymbolKind::MODULE,
        _ => SymbolKind::EVENT,
    };
    let spec = doc.spec();
    let mut children = Vec::new();
    let list = |key: &str| {
        spec.and_then(|s| s.get(key))
            .and_then(Node::as_seq)
            .unwrap_or_default()
    };
    if doc.koreo {
        for (key, span) in map_keys(spec.and_then(|s| s.get("locals"))) {
            let value = spec.and_then(|s| s.get("locals")).and_then(|l| l.get(&key));
            let whole = value.map_or(span, |v| join(span, v.span));
            children.push(symbol(
                file,
                key,
                "local",
                SymbolKind::VARIABLE,
                whole,
                span,
                Vec::new(),
            ));
        }
        for step in list("steps") {
            let label = step.get("label");
            let runs = step
                .get("ref")
                .and_then(|r| r.get("name"))
                .and_then(Node::as_str)
                .map_or("refSwitch".to_string(), |n| format!("→ {n}"));
            children.push(symbol(
                file,
                label.and_then(Node::as_str).unwrap_or("(step)").to_string(),
                &runs,
                SymbolKind::FIELD,
                step.span,
                label.map_or(step.span, |l| l.span),
                Vec::new(),
            ));
        }
        for (i, case) in list("testCases").iter().enumerate() {
            let label = case.get("label");
            children.push(symbol(
                file,
                label
                    .and_then(Node::as_str)
                    .map_or(format!("Test Case {}", i + 1), str::to_string),
                "test case",
                SymbolKind::METHOD,
                case.span,
                label.map_or(case.span, |l| l.span),
                Vec::new(),
            ));
        }
    }
    let selection = doc.name.as_ref().map_or(doc.root.span, |(_, s)| *s);
    symbol(
        file,
        name.to_string(),
        &doc.kind,
        kind,
        doc.root.span,
        selection,
        children,
    )
}

fn join(a: Span, b: Span) -> Span {
    Span {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

#[allow(deprecated)] // `deprecated` is a required field of the LSP type.
fn symbol(
    file: &FileState,
    name: String,
    detail: &str,
    kind: SymbolKind,
    whole: Span,
    selection: Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    // The tree may be from before the last edit (YAML that does not parse): keep the ranges
    // inside the text and the selection inside the range.
    let clamp = |offset: u32| offset.min(file.lines.len());
    let (start, end) = (clamp(whole.start.offset), clamp(whole.end.offset));
    let selection_start = clamp(selection.start.offset).clamp(start, end);
    let selection_end = clamp(selection.end.offset).clamp(selection_start, end);
    DocumentSymbol {
        name: if name.is_empty() {
            "(empty)".into()
        } else {
            name
        },
        detail: Some(detail.to_string()),
        kind,
        tags: None,
        deprecated: None,
        range: file.lines.range(file.text(), start, end),
        selection_range: file
            .lines
            .range(file.text(), selection_start, selection_end),
        children: Some(children),
    }
}
