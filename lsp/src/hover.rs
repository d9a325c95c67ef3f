//! Hover: what a reference calls, what a step runs, what a function or key means, how a test
//! went.

use std::path::Path;

use koreo_lang::analysis;
use koreo_lang::model::Definition;
use koreo_lang::schema::{Expression, Field};
use koreo_lang::yaml::Node;
use koreo_testing::TestReport;
use koreo_testing::runner::CaseStatus;

use crate::cursor::{self, Target};
use crate::document::{Seg, map_keys};
use crate::library;
use crate::navigate::{self, DocRef};
use crate::state::{Analysis, FileState};

/// Lines of a definition's source shown in a hover before it is cut.
const MAX_SOURCE_LINES: usize = 12;

/// The hover text (Markdown) at an offset, and the character range it is about.
pub fn hover(analysis: &Analysis, path: &Path, offset: u32) -> Option<(String, (u32, u32))> {
    let file = analysis.file(path)?;
    let cursor = cursor::at(file, offset)?;
    let here = DocRef {
        file,
        doc: cursor.doc,
    };
    let typed = expression_type(analysis, here, offset);
    let Some(target) = cursor.target else {
        let text = typed.or_else(|| body_field(analysis, here, &cursor.path))?;
        return Some((text, cursor.range));
    };
    let text = match target {
        Target::Reference(site) => match navigate::resolve_site(analysis, site, cursor.doc) {
            Some(target) => describe(analysis, target),
            None if site.dynamic => format!("the name is an expression: `{}`", site.name),
            None => format!(
                "**{}** `{}`: not found",
                site.kind.as_deref().unwrap_or("definition"),
                site.name
            ),
        },
        Target::DefinitionName => describe(analysis, here),
        Target::Step(label) => step(analysis, here, &label)?,
        Target::Local(name) => {
            let locals = here.doc.spec()?.get("locals")?;
            let value = locals.get(&name)?;
            format!("**local** `{name}`\n\n{}", source_block(file, value))
        }
        Target::Input(name) => input(analysis, here, &cursor.path, &name),
        Target::GivenInput { step, name } => {
            let readers: Vec<String> = navigate::called(analysis, here, step)
                .into_iter()
                .map(|f| {
                    let reads = !navigate::reads(f, "inputs", &name).is_empty();
                    format!(
                        "- {} `{}` {}",
                        f.doc.kind,
                        name_of(f),
                        if reads {
                            "reads it"
                        } else {
                            "does not read it"
                        }
                    )
                })
                .collect();
            format!("**input** `{name}`\n\n{}", readers.join("\n"))
        }
        Target::Function(name) => function(&name)?,
        Target::Variable(name) => {
            let scope = library::scope(&here.doc.kind, &cursor.path);
            let note = if scope.contains(&name.as_str()) {
                String::new()
            } else {
                format!(
                    "\n\nNot readable here; here: {}",
                    list(scope.iter().map(|s| s.to_string()))
                )
            };
            format!("**{name}**: {}{note}", library::variable(&name)?)
        }
        Target::Key(field) => key(field),
        Target::TestCase(index) => {
            let report = analysis.test_report(path, here.doc.definition?)?;
            let case = report.cases.get(index)?;
            format!("**test case** `{}`: {}", case.label, status(&case.status))
        }
    };
    let text = match typed {
        Some(typed) => format!("{text}\n\n{typed}"),
        None => text,
    };
    Some((text, cursor.range))
}

/// A field of a resource body: its type and description from the schema of the kind made.
fn body_field(analysis: &Analysis, here: DocRef, path: &[Seg]) -> Option<String> {
    let (Seg::Key(name), parent) = path.split_last()? else {
        return None;
    };
    let shape = crate::types::body(analysis, here, parent)?.at([name.as_str()])?;
    Some(format!("**{name}**\n\n{}", crate::types::describe(shape)))
}

/// Inside an expression: the type of the field chain under the cursor where a schema or a
/// `return` says, or else of the whole expression, as far as it is known.
fn expression_type(analysis: &Analysis, here: DocRef, offset: u32) -> Option<String> {
    let site = here
        .doc
        .expressions
        .iter()
        .find(|s| s.index_at(offset).is_some())?;
    let index = site.index_at(offset)?;
    let tokens = crate::cel_text::lex(&site.source);
    let token = tokens.iter().find(|t| t.start <= index && index < t.end);
    if let Some(token) = token.filter(|t| t.kind == crate::cel_text::TokenKind::Ident) {
        let prefix: String = site.source.chars().take(token.end).collect();
        if let Some((chain, typed)) = crate::cel_text::chain_at_end(&prefix)
            && let Some((root, fields)) = chain.split_first()
            && !root.is_empty()
        {
            let mut fields = fields.to_vec();
            fields.push(typed);
            if let Some(shape) = crate::types::read(analysis, here, root, &fields) {
                return Some(crate::types::describe(shape));
            }
        }
    }
    let parsed = koreo_stdlib::parse(&site.source).ok()?;
    let ty = koreo_lang::types::infer(&parsed.ast, &mut Vec::new());
    Some(format!("Type of the expression: `{}`", ty.name()))
}

fn name_of<'a>(d: DocRef<'a>) -> &'a str {
    d.doc.name.as_ref().map_or("", |(n, _)| n.as_str())
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.map(|i| format!("`{i}`")).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A definition: what it is, what it reads and what it gives back.
fn describe(analysis: &Analysis, target: DocRef) -> String {
    let doc = target.doc;
    let mut out = format!("**{}** `{}`", doc.kind, name_of(target));
    if let Some(namespace) = &doc.namespace {
        out.push_str(&format!(" in `{namespace}`"));
    }
    out.push_str(&format!(
        "\n\n{}:{}",
        target.file.path().display(),
        doc.root.span.start.line
    ));
    let Some(definition) = target.definition() else {
        out.push_str("\n\nThis definition has errors; fix them to see what it reads and returns.");
        return out;
    };
    let spec = doc.spec();
    match definition {
        Definition::ValueFunction(_) | Definition::ResourceFunction(_) => {
            let inputs = analysis::expected_inputs(definition);
            out.push_str(&format!("\n\nReads inputs: {}", list(inputs.into_iter())));
            if let Some(api) = spec.and_then(|s| s.get("apiConfig")) {
                let field = |k: &str| api.get(k).and_then(Node::as_str).unwrap_or("?");
                out.push_str(&format!(
                    "\n\nManages a `{} {}`",
                    field("apiVersion"),
                    field("kind")
                ));
            }
            match spec.and_then(|s| s.get("return")) {
                Some(ret) => {
                    out.push_str("\n\nReturns:\n");
                    out.push_str(&source_block(target.file, ret));
                }
                None => out.push_str("\n\nReturns nothing (`null`)."),
            }
        }
        Definition::Workflow(w) => {
            let parent = analysis::expected_inputs(definition);
            out.push_str(&format!(
                "\n\nReads from its parent: {}",
                list(parent.into_iter())
            ));
            let labels = w.steps.iter().map(|s| s.label.clone());
            out.push_str(&format!("\n\nSteps: {}", list(labels)));
            let steps = spec.and_then(|s| s.get("steps")).and_then(Node::as_seq);
            let state = steps
                .unwrap_or_default()
                .iter()
                .flat_map(|s| map_keys(s.get("state")))
                .map(|(k, _)| k);
            out.push_str(&format!("\n\nWrites state: {}", list(state)));
        }
        Definition::ResourceTemplate(t) => {
            let field = |k: &str| t.template[k].as_str().unwrap_or("?").to_string();
            out.push_str(&format!(
                "\n\nA template for `{} {}`",
                field("apiVersion"),
                field("kind")
            ));
        }
        Definition::FunctionTest(_) | Definition::WorkflowTest(_) => {
            if let Some(report) = doc
                .definition
                .and_then(|i| analysis.test_report(target.file.path(), i))
            {
                out.push_str("\n\n");
                out.push_str(&results(report));
            }
        }
    }
    out
}

/// A step: what it runs, with which inputs, after which steps.
fn step(analysis: &Analysis, here: DocRef, label: &str) -> Option<String> {
    let steps = here.doc.spec()?.get("steps")?.as_seq()?;
    let index = steps
        .iter()
        .position(|s| s.get("label").and_then(Node::as_str) == Some(label))?;
    let node = &steps[index];
    let mut out = format!("**step** `{label}`");
    let called = navigate::called(analysis, here, index);
    let runs: Vec<String> = here
        .doc
        .references
        .iter()
        .filter(|r| navigate::within(node.span, r.span))
        .map(|r| format!("{} `{}`", r.kind.as_deref().unwrap_or("?"), r.name))
        .collect();
    out.push_str(&format!(" runs {}", runs.join(" or ")));
    let given: Vec<String> = map_keys(node.get("inputs"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    out.push_str(&format!("\n\nInputs given: {}", list(given.into_iter())));
    for target in called {
        if let Some(definition) = target.definition() {
            let reads = analysis::expected_inputs(definition);
            let what = if target.doc.kind == "Workflow" {
                "reads from its parent"
            } else {
                "reads"
            };
            out.push_str(&format!(
                "\n\n{} `{}` {what}: {}",
                target.doc.kind,
                name_of(target),
                list(reads.into_iter())
            ));
        }
    }
    if let Some(Definition::Workflow(w)) = here.definition()
        && let Some(deps) = w.graph.dependencies.get(index)
    {
        let after = deps
            .iter()
            .filter_map(|&d| w.steps.get(d))
            .map(|s| s.label.clone());
        out.push_str(&format!("\n\nRuns after: {}", list(after)));
    }
    Some(out)
}

/// An input read by an expression: where it is given.
fn input(analysis: &Analysis, here: DocRef, path: &[Seg], name: &str) -> String {
    let places = navigate::given(analysis, here, path, name);
    let mut out = format!("**input** `{name}`");
    if places.is_empty() {
        out.push_str("\n\nNo caller gives it.");
    }
    for place in places {
        let Some(file) = analysis.file(&place.path) else {
            continue;
        };
        let (line, _) = file.lines.line_col(place.start);
        out.push_str(&format!(
            "\n\n- given at {}:{}: `{}`",
            place.path.display(),
            line + 1,
            file.lines.line(file.text(), line).trim()
        ));
    }
    out
}

pub fn function(name: &str) -> Option<String> {
    let f = library::function(name)?;
    let origin = if f.koreo {
        "Koreo function (docs/stdlib.md)"
    } else {
        "CEL"
    };
    Some(format!(
        "```\n{}\n```\n{}\n\n*{origin}*",
        f.signature, f.summary
    ))
}

/// A schema field: its description and rules.
fn key(field: &Field) -> String {
    let mut out = format!("**{}**: {}", field.name, field.ty.name());
    if field.required {
        out.push_str(", required");
    }
    out.push_str(&format!("\n\n{}", field.description));
    match field.expression {
        Expression::Required => out.push_str("\n\nMust be an expression (`=...`)."),
        Expression::Allowed => out.push_str("\n\nMay hold expressions (`=...`)."),
        Expression::Forbidden => out.push_str("\n\nMay not be an expression."),
        Expression::Literal => {}
    }
    if let Some(default) = field.default {
        out.push_str(&format!("\n\nDefault: `{default}`"));
    }
    if !field.enum_values.is_empty() {
        out.push_str(&format!(
            "\n\nOne of: {}",
            list(field.enum_values.iter().map(|v| v.to_string()))
        ));
    }
    out
}

pub fn status(status: &CaseStatus) -> String {
    match status {
        CaseStatus::Passed => "✓ passed".into(),
        CaseStatus::Skipped { reason } => format!("skipped ({reason})"),
        CaseStatus::Failed {
            message,
            differences,
        } => {
            let mut out = format!("✗ failed: {message}");
            for d in differences {
                out.push_str(&format!("\n  - {d}"));
            }
            out
        }
    }
}

/// A test's results, one line per case.
pub fn results(report: &TestReport) -> String {
    if let Some(error) = &report.error {
        return format!("✗ cannot run: {error}");
    }
    let cases: Vec<String> = report
        .cases
        .iter()
        .map(|c| format!("- `{}`: {}", c.label, status(&c.status)))
        .collect();
    format!("Results:\n{}", cases.join("\n"))
}

/// A node's source, as a YAML code block, indentation removed.
fn source_block(file: &FileState, node: &Node) -> String {
    let text = file.text();
    let (first, col) = file.lines.line_col(node.span.start.offset);
    let (mut last, end_col) = file.lines.line_col(node.span.end.offset);
    // A block node ends at the start of the line after it.
    if last > first && end_col == 0 {
        last -= 1;
    }
    let last = last.max(first);
    let mut lines: Vec<String> = (first..=last)
        .map(|l| file.lines.line(text, l).to_string())
        .collect();
    lines[0] = lines[0].chars().skip(col as usize).collect();
    let indent = lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    for line in lines.iter_mut().skip(1) {
        *line = line.get(indent..).unwrap_or(line.trim_start()).to_string();
    }
    let cut = lines.len() > MAX_SOURCE_LINES;
    lines.truncate(MAX_SOURCE_LINES);
    format!(
        "```yaml\n{}{}\n```",
        lines.join("\n"),
        if cut { "\n…" } else { "" }
    )
}
