//! lang's diagnostics and failing test cases as LSP diagnostics, with exact ranges.
//!
//! lang gives many findings as a point. A point inside an expression is widened to the variable
//! read or token there (found through the expression's character map); elsewhere to the word
//! there. A syntax error is placed again from the parser's own report, token and all.

use koreo_lang::source::{Diagnostic, Severity, Span};
use koreo_lang::yaml::Node;
use koreo_testing::TestReport;
use koreo_testing::runner::CaseStatus;
use tower_lsp_server::ls_types::{self as lsp, DiagnosticSeverity, NumberOrString, Range};

use crate::cel_text::{self, TokenKind};
use crate::document::{DocumentInfo, ExprSite};
use crate::state::{Analysis, FileState};

const SOURCE: &str = "koreo";
/// Differences listed under a failing case; the hover has them all.
const MAX_DIFFERENCES: usize = 8;

/// Everything to show for one file.
pub fn file_diagnostics(analysis: &Analysis, file: &FileState) -> Vec<lsp::Diagnostic> {
    if !file.publish {
        return Vec::new();
    }
    let mut out: Vec<lsp::Diagnostic> = analysis
        .diagnostics(file.path())
        .into_iter()
        .map(|d| convert(file, d))
        .collect();
    for (definition, report) in analysis.reports(file.path()) {
        out.extend(test_failures(file, definition, report));
    }
    out
}

fn convert(file: &FileState, d: &Diagnostic) -> lsp::Diagnostic {
    let message = match &d.hint {
        Some(hint) => format!("{}\nhint: {hint}", d.message),
        None => d.message.clone(),
    };
    lsp::Diagnostic {
        range: range(file, d),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Hint => DiagnosticSeverity::HINT,
        }),
        code: Some(NumberOrString::String(d.code.id().to_string())),
        source: Some(SOURCE.into()),
        message,
        ..Default::default()
    }
}

fn range(file: &FileState, d: &Diagnostic) -> Range {
    let text = file.text();
    let (start, end) = file.lines.span_offsets(text, d.location.span);
    if end > start {
        return file.lines.range(text, start, end);
    }
    let (start, end) = in_expression(file, d).unwrap_or_else(|| word_at(file, start));
    file.lines.range(text, start, end)
}

/// The range of a point finding inside an expression: the variable read or token there.
fn in_expression(file: &FileState, d: &Diagnostic) -> Option<(u32, u32)> {
    if file.stale {
        return None;
    }
    let sites = file.docs.iter().flat_map(|doc| &doc.expressions);
    if let Some(found) = syntax_error(sites.clone(), d) {
        return Some(found);
    }
    let offset = file.lines.offset_of(file.text(), d.location.span.start);
    let (site, index) = sites.clone().find_map(|s| Some((s, s.index_at(offset)?)))?;
    Some(token_range(site, index))
}

/// A CEL syntax error, placed again from the parser's own report.
fn syntax_error<'a>(
    sites: impl Iterator<Item = &'a ExprSite>,
    d: &Diagnostic,
) -> Option<(u32, u32)> {
    let rest = d.message.strip_prefix("invalid expression `=")?;
    let line = d.location.span.start.line;
    let site = sites
        .filter(|s| rest.starts_with(&format!("{}`: ", s.source)) && s.span.start.line <= line)
        .max_by_key(|s| s.span.start.offset)?;
    let errors = koreo_stdlib::parse(&site.source).err()?;
    let (line, column) = errors.errors.first()?.pos;
    // CEL reports a 1-based line and a 1-based byte column.
    let line_start: usize = site
        .source
        .split_inclusive('\n')
        .take((line.max(1) - 1) as usize)
        .map(str::len)
        .sum();
    let mut byte = (line_start + (column.max(1) - 1) as usize).min(site.source.len());
    while !site.source.is_char_boundary(byte) {
        byte -= 1;
    }
    Some(token_range(site, site.source[..byte].chars().count()))
}

/// The variable read (`steps.build`) or token at an index of an expression.
fn token_range(site: &ExprSite, index: usize) -> (u32, u32) {
    let tokens = cel_text::lex(&site.source);
    let member = cel_text::members(&tokens).into_iter().find(|m| {
        let (start, end) = m.range();
        (start..end).contains(&index)
    });
    if let Some(m) = member {
        let (start, end) = m.range();
        return site.file_range(start, end);
    }
    let token = tokens
        .iter()
        .find(|t| (t.start..t.end).contains(&index) && t.kind != TokenKind::String);
    match token {
        Some(t) => site.file_range(t.start, t.end),
        None => site.file_range(index, index + 1),
    }
}

/// The word at an offset (a name, a number), or the one character there.
fn word_at(file: &FileState, offset: u32) -> (u32, u32) {
    let text = file.text();
    let (line, col) = file.lines.line_col(offset);
    let rest: Vec<char> = file
        .lines
        .line(text, line)
        .chars()
        .skip(col as usize)
        .collect();
    let word = rest
        .iter()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        .count();
    let len = if word > 0 { word } else { rest.len().min(1) };
    (offset, offset + len as u32)
}

/// A diagnostic on each failing case of a test.
fn test_failures(file: &FileState, definition: usize, report: &TestReport) -> Vec<lsp::Diagnostic> {
    let doc = file.doc_of(definition);
    report
        .cases
        .iter()
        .filter_map(|case| {
            let CaseStatus::Failed {
                message,
                differences,
            } = &case.status
            else {
                return None;
            };
            let span = doc.map_or(case.location.span, |d| narrow(file, d, case.location.span));
            let mut text = format!("test case `{}` failed: {message}", case.label);
            for difference in differences.iter().take(MAX_DIFFERENCES) {
                text.push_str(&format!("\n  {difference}"));
            }
            if differences.len() > MAX_DIFFERENCES {
                text.push_str(&format!(
                    "\n  ... and {} more",
                    differences.len() - MAX_DIFFERENCES
                ));
            }
            Some(lsp::Diagnostic {
                range: file.lines.span_range(file.text(), span),
                severity: Some(DiagnosticSeverity::ERROR),
                source: Some(SOURCE.into()),
                message: text,
                ..Default::default()
            })
        })
        .collect()
}

/// Where a failing case shows: the key of its expectation, the test's name for the whole test,
/// else the first line of the case.
fn narrow(file: &FileState, doc: &DocumentInfo, span: Span) -> Span {
    if let Some(key) = key_of_value(&doc.root, span) {
        return key;
    }
    if span == doc.root.span
        && let Some((_, name)) = &doc.name
    {
        return *name;
    }
    let (line, col) = file.lines.line_col(span.start.offset);
    let width = file.lines.line(file.text(), line).chars().count() as u32;
    let rest = width.saturating_sub(col);
    let mut end = span.start;
    end.offset += rest;
    end.col += rest;
    Span {
        start: span.start,
        end,
    }
}

/// The span of the key whose value is at `span`.
fn key_of_value(node: &Node, span: Span) -> Option<Span> {
    if let Some(entries) = node.as_map() {
        for (key, value) in entries {
            if value.span == span {
                return Some(key.span);
            }
            if let Some(found) = key_of_value(value, span) {
                return Some(found);
            }
        }
    }
    node.as_seq()?
        .iter()
        .find_map(|item| key_of_value(item, span))
}
