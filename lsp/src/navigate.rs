//! Go to definition and find references.

use std::path::{Path, PathBuf};

use koreo_lang::source::Span;
use koreo_lang::yaml::Node;

use crate::cel_text;
use crate::cursor::{self, Target};
use crate::document::{DocumentInfo, RefSite, map_keys};
use crate::state::{Analysis, FileState};

/// Kinds a step can call; a reference that does not say its kind may be any of them.
pub const LOGIC_KINDS: [&str; 3] = ["ResourceFunction", "ValueFunction", "Workflow"];

/// A range of characters in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub path: PathBuf,
    pub start: u32,
    pub end: u32,
}

impl Place {
    fn span(file: &FileState, span: Span) -> Place {
        Place {
            path: file.path().to_path_buf(),
            start: span.start.offset,
            end: span.end.offset,
        }
    }

    fn site(
        file: &FileState,
        site: &crate::document::ExprSite,
        (start, end): (usize, usize),
    ) -> Place {
        let (start, end) = site.file_range(start, end);
        Place {
            path: file.path().to_path_buf(),
            start,
            end,
        }
    }
}

/// A document and the file it is in.
#[derive(Clone, Copy)]
pub struct DocRef<'a> {
    pub file: &'a FileState,
    pub doc: &'a DocumentInfo,
}

impl<'a> DocRef<'a> {
    pub fn is(&self, other: &DocRef) -> bool {
        std::ptr::eq(self.doc, other.doc)
    }

    /// Where the definition is named (its `metadata.name`, else the document's start).
    pub fn name_place(&self) -> Place {
        let span = self
            .doc
            .name
            .as_ref()
            .map_or(Span::point(self.doc.root.span.start), |(_, s)| *s);
        Place::span(self.file, span)
    }

    /// The decoded definition, when the document validated.
    pub fn definition(&self) -> Option<&'a koreo_lang::model::Definition> {
        self.file.definitions.get(self.doc.definition?)
    }
}

/// Every Koreo document of the workspace, in load order.
pub fn documents(analysis: &Analysis) -> impl Iterator<Item = DocRef<'_>> {
    analysis.files().flat_map(|file| {
        file.docs
            .iter()
            .filter(|d| d.koreo)
            .map(move |doc| DocRef { file, doc })
    })
}

/// The definition a reference names, as lang resolves it: the one in the referrer's
/// namespace, else the first one anywhere.
pub fn resolve<'a>(
    analysis: &'a Analysis,
    kind: Option<&str>,
    name: &str,
    namespace: Option<&str>,
) -> Option<DocRef<'a>> {
    let candidates: Vec<DocRef> = documents(analysis)
        .filter(|d| d.doc.name.as_ref().is_some_and(|(n, _)| n == name))
        .filter(|d| match kind {
            Some(kind) => d.doc.kind == kind,
            None => LOGIC_KINDS.contains(&d.doc.kind.as_str()),
        })
        .collect();
    candidates
        .iter()
        .find(|d| d.doc.namespace.as_deref() == namespace)
        .or(candidates.first())
        .copied()
}

pub fn resolve_site<'a>(
    analysis: &'a Analysis,
    site: &RefSite,
    from: &DocumentInfo,
) -> Option<DocRef<'a>> {
    if site.dynamic {
        return None;
    }
    resolve(
        analysis,
        site.kind.as_deref(),
        &site.name,
        from.namespace.as_deref(),
    )
}

/// Where what is at `offset` is defined.
pub fn definition(analysis: &Analysis, path: &Path, offset: u32) -> Vec<Place> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    let Some(cursor) = cursor::at(file, offset) else {
        return Vec::new();
    };
    let here = DocRef {
        file,
        doc: cursor.doc,
    };
    match cursor.target {
        Some(Target::Reference(site)) => resolve_site(analysis, site, cursor.doc)
            .map(|d| d.name_place())
            .into_iter()
            .collect(),
        Some(Target::DefinitionName) => vec![here.name_place()],
        Some(Target::Step(label)) => step_label(here, &label).into_iter().collect(),
        Some(Target::Local(name)) => local_key(here, &name).into_iter().collect(),
        Some(Target::Input(name)) => given(analysis, here, &cursor.path, &name),
        Some(Target::GivenInput { step, name }) => called(analysis, here, step)
            .into_iter()
            .flat_map(|f| reads(f, "inputs", &name))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every place that refers to what is at `offset`; with `declaration`, where it is defined too.
pub fn references(analysis: &Analysis, path: &Path, offset: u32, declaration: bool) -> Vec<Place> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    let Some(cursor) = cursor::at(file, offset) else {
        return Vec::new();
    };
    let here = DocRef {
        file,
        doc: cursor.doc,
    };
    let (mut found, declared): (Vec<Place>, Vec<Place>) = match cursor.target {
        Some(Target::Reference(site)) => {
            let Some(target) = resolve_site(analysis, site, cursor.doc) else {
                return Vec::new();
            };
            (referrers(analysis, target), vec![target.name_place()])
        }
        Some(Target::DefinitionName) => (referrers(analysis, here), vec![here.name_place()]),
        Some(Target::Step(label)) => (
            reads(here, "steps", &label),
            step_label(here, &label).into_iter().collect(),
        ),
        Some(Target::Local(name)) => (
            reads(here, "locals", &name),
            local_key(here, &name).into_iter().collect(),
        ),
        Some(Target::Input(name)) => (
            reads(here, "inputs", &name),
            given(analysis, here, &cursor.path, &name),
        ),
        Some(Target::GivenInput { step, name }) => (
            called(analysis, here, step)
                .into_iter()
                .flat_map(|f| reads(f, "inputs", &name))
                .collect(),
            vec![Place {
                path: path.to_path_buf(),
                start: cursor.range.0,
                end: cursor.range.1,
            }],
        ),
        _ => return Vec::new(),
    };
    if declaration {
        found.splice(0..0, declared);
    }
    found
}

/// Every reference in the workspace that resolves to `target`.
pub fn referrers(analysis: &Analysis, target: DocRef) -> Vec<Place> {
    let mut out = Vec::new();
    for from in documents(analysis) {
        for site in &from.doc.references {
            if resolve_site(analysis, site, from.doc).is_some_and(|d| d.is(&target)) {
                out.push(Place::span(from.file, site.span));
            }
        }
    }
    out
}

/// Every `root.name` read in a document's expressions.
pub fn reads(at: DocRef, root: &str, name: &str) -> Vec<Place> {
    let mut out = Vec::new();
    for site in &at.doc.expressions {
        let tokens = cel_text::lex(&site.source);
        for member in cel_text::members(&tokens) {
            if member.root == root
                && member.field.as_deref() == Some(name)
                && let Some(range) = member.field_range
            {
                out.push(Place::site(at.file, site, range));
            }
        }
    }
    out
}

fn step_label(at: DocRef, label: &str) -> Option<Place> {
    let (_, span) = at.doc.step_labels().into_iter().find(|(l, _)| l == label)?;
    Some(Place::span(at.file, span))
}

fn local_key(at: DocRef, name: &str) -> Option<Place> {
    let locals = at.doc.spec().and_then(|s| s.get("locals"));
    let (_, span) = map_keys(locals).into_iter().find(|(k, _)| k == name)?;
    Some(Place::span(at.file, span))
}

/// The definitions a workflow step runs (one, or one per `refSwitch` case).
pub fn called<'a>(analysis: &'a Analysis, at: DocRef<'a>, step: usize) -> Vec<DocRef<'a>> {
    let Some(node) = at
        .doc
        .spec()
        .and_then(|s| s.get("steps"))
        .and_then(Node::as_seq)
        .and_then(|s| s.get(step))
    else {
        return Vec::new();
    };
    at.doc
        .references
        .iter()
        .filter(|r| within(node.span, r.span))
        .filter_map(|r| resolve_site(analysis, r, at.doc))
        .collect()
}

pub fn within(outer: Span, inner: Span) -> bool {
    outer.start.offset <= inner.start.offset && inner.end.offset <= outer.end.offset
}

/// Where input `name` is given to what reads it at `path` of `at`: the callers' `inputs` keys
/// (steps, overlays, tests) for a function; the step's own `inputs` in a Workflow; the test's
/// inputs in a FunctionTest.
pub fn given(
    analysis: &Analysis,
    at: DocRef,
    path: &[crate::document::Seg],
    name: &str,
) -> Vec<Place> {
    match at.doc.kind.as_str() {
        "Workflow" => at
            .doc
            .step_of(path)
            .map(|(_, step)| input_places(at.file, step, name))
            .unwrap_or_default(),
        "FunctionTest" => test_input_places(at.file, at.doc, name),
        _ => callers(analysis, at)
            .into_iter()
            .flat_map(|(caller, node)| match caller.doc.kind.as_str() {
                "FunctionTest" => test_input_places(caller.file, caller.doc, name),
                _ => input_places(caller.file, node, name),
            })
            .collect(),
    }
}

/// The steps, overlays and tests that call a function, with the node holding their `inputs`.
pub fn callers<'a>(analysis: &'a Analysis, target: DocRef) -> Vec<(DocRef<'a>, &'a Node)> {
    let mut out = Vec::new();
    for from in documents(analysis) {
        let holders: &[Node] = match from.doc.kind.as_str() {
            "Workflow" => list(from.doc.spec(), "steps"),
            "ResourceFunction" => list(from.doc.spec(), "overlays"),
            "FunctionTest" => from
                .doc
                .spec()
                .map(std::slice::from_ref)
                .unwrap_or_default(),
            _ => &[],
        };
        for holder in holders {
            let calls = from.doc.references.iter().any(|r| {
                within(holder.span, r.span)
                    && resolve_site(analysis, r, from.doc).is_some_and(|d| d.is(&target))
            });
            if calls {
                out.push((from, holder));
            }
        }
    }
    out
}

fn list<'n>(node: Option<&'n Node>, key: &str) -> &'n [Node] {
    node.and_then(|n| n.get(key))
        .and_then(Node::as_seq)
        .unwrap_or_default()
}

/// The `inputs.<name>` key of a step or overlay, or its `forEach.inputKey` when that is it.
fn input_places(file: &FileState, holder: &Node, name: &str) -> Vec<Place> {
    let mut out: Vec<Place> = map_keys(holder.get("inputs"))
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, span)| Place::span(file, span))
        .collect();
    let key = holder.get("forEach").and_then(|f| f.get("inputKey"));
    if let Some(key) = key.filter(|k| k.as_str() == Some(name)) {
        out.push(Place::span(file, key.span));
    }
    out
}

/// A FunctionTest's `spec.inputs.<name>` and each case's `inputOverrides.<name>`.
fn test_input_places(file: &FileState, doc: &DocumentInfo, name: &str) -> Vec<Place> {
    let spec = doc.spec();
    let mut holders = vec![spec.and_then(|s| s.get("inputs"))];
    holders.extend(
        list(spec, "testCases")
            .iter()
            .map(|c| c.get("inputOverrides")),
    );
    holders
        .into_iter()
        .flat_map(map_keys)
        .filter(|(k, _)| k == name)
        .map(|(_, span)| Place::span(file, span))
        .collect()
}
