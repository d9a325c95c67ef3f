//! What is under the cursor: the place in the YAML tree, and what it names.

use koreo_lang::schema::Field;
use koreo_lang::yaml::Node;

use crate::cel_text::{self, TokenKind};
use crate::document::{DocumentInfo, ExprSite, RefSite, Seg, keys_are, schema_field};
use crate::state::FileState;

/// What a position names.
#[derive(Clone, Debug)]
pub enum Target<'a> {
    /// A reference to a definition (`ref.name`, `functionRef.name`, `overlayRef.name`, ...).
    Reference(&'a RefSite),
    /// This document's own `metadata.name`.
    DefinitionName,
    /// A step: its `label`, or `steps.<label>` in an expression.
    Step(String),
    /// A local: its key under `spec.locals`, or `locals.<name>` in an expression.
    Local(String),
    /// `inputs.<name>` in an expression.
    Input(String),
    /// A key of a step's `inputs`: where an input is given.
    GivenInput { step: usize, name: String },
    /// A function called in an expression.
    Function(String),
    /// A variable as a whole (`parent`, `inputs`, ...).
    Variable(String),
    /// A key the schema describes.
    Key(&'static Field),
    /// A test case, by index.
    TestCase(usize),
}

/// A position in a document, with what it names and the character range of that.
pub struct Cursor<'a> {
    pub doc: &'a DocumentInfo,
    pub path: Vec<Seg>,
    pub target: Option<Target<'a>>,
    pub range: (u32, u32),
}

/// The cursor at a character offset, when the file's tree is current.
pub fn at(file: &FileState, offset: u32) -> Option<Cursor<'_>> {
    if file.stale {
        return None;
    }
    let doc = file.doc_at(offset)?;
    let (path, on_key, node) = walk(&doc.root, offset);
    let mut cursor = Cursor {
        doc,
        path,
        target: None,
        range: (node.span.start.offset, node.span.end.offset),
    };
    if let Some(site) = doc
        .expressions
        .iter()
        .find(|s| s.index_at(offset).is_some())
    {
        if let Some((target, range)) = in_expression(site, offset) {
            cursor.target = Some(target);
            cursor.range = range;
        }
        return Some(cursor);
    }
    if let Some(site) = doc.references.iter().find(|r| contains(r.span, offset)) {
        cursor.target = Some(Target::Reference(site));
        cursor.range = (site.span.start.offset, site.span.end.offset);
        return Some(cursor);
    }
    cursor.target = by_path(doc, &cursor.path, on_key);
    if let Some(span) = on_key.then(|| key_span(&doc.root, &cursor.path)).flatten() {
        cursor.range = (span.start.offset, span.end.offset);
    }
    Some(cursor)
}

fn contains(span: koreo_lang::source::Span, offset: u32) -> bool {
    (span.start.offset..=span.end.offset).contains(&offset)
}

/// The path to the innermost node at `offset`, whether the offset is on a key, and the node.
fn walk(root: &Node, offset: u32) -> (Vec<Seg>, bool, &Node) {
    let mut path = Vec::new();
    let mut node = root;
    loop {
        if let Some(entries) = node.as_map() {
            if let Some((key, value)) = entries.iter().find(|(k, _)| contains(k.span, offset)) {
                path.push(Seg::Key(key.text.clone()));
                return (path, true, value);
            }
            if let Some((key, value)) = entries.iter().find(|(_, v)| contains(v.span, offset)) {
                path.push(Seg::Key(key.text.clone()));
                node = value;
                continue;
            }
        } else if let Some(items) = node.as_seq()
            && let Some(i) = items.iter().position(|v| contains(v.span, offset))
        {
            path.push(Seg::Index(i));
            node = &items[i];
            continue;
        }
        return (path, false, node);
    }
}

/// The span of the last key of a path, when the path ends with a key.
pub fn key_span(root: &Node, path: &[Seg]) -> Option<koreo_lang::source::Span> {
    let (last, parent) = path.split_last()?;
    let mut node = root;
    for seg in parent {
        node = match seg {
            Seg::Key(k) => node.get(k)?,
            Seg::Index(i) => node.as_seq()?.get(*i)?,
        };
    }
    let Seg::Key(name) = last else { return None };
    let (key, _) = node.as_map()?.iter().find(|(k, _)| &k.text == name)?;
    Some(key.span)
}

/// What a token of an expression names, and the token's file range.
fn in_expression<'a>(site: &ExprSite, offset: u32) -> Option<(Target<'a>, (u32, u32))> {
    let index = site.index_at(offset)?;
    let tokens = cel_text::lex(&site.source);
    let i = tokens
        .iter()
        .position(|t| t.start <= index && index < t.end)
        .or_else(|| tokens.iter().position(|t| t.end == index))?;
    let token = &tokens[i];
    if token.kind != TokenKind::Ident {
        return None;
    }
    let range = site.file_range(token.start, token.end);
    for member in cel_text::members(&tokens) {
        if member.root_start == token.start {
            return Some((Target::Variable(member.root), range));
        }
        if member.field_range.is_some_and(|(s, _)| s == token.start) {
            let field = member.field.unwrap_or_default();
            let target = match member.root.as_str() {
                "steps" => Target::Step(field),
                "locals" => Target::Local(field),
                "inputs" => Target::Input(field),
                _ => Target::Variable(member.root),
            };
            return Some((target, range));
        }
    }
    cel_text::is_call(&tokens, i).then(|| (Target::Function(token.text.clone()), range))
}

/// What a key or value names, from where it is in the document.
fn by_path<'a>(doc: &DocumentInfo, path: &[Seg], on_key: bool) -> Option<Target<'a>> {
    if !doc.koreo {
        return None;
    }
    let kind = doc.kind.as_str();
    if !on_key && keys_are(path, &["metadata", "name"]) {
        return Some(Target::DefinitionName);
    }
    if kind == "Workflow" && !on_key && keys_are(path, &["spec", "steps", "label"]) {
        let label = doc.node(path)?.as_str()?;
        return Some(Target::Step(label.to_string()));
    }
    if on_key
        && let [Seg::Key(spec), Seg::Key(locals), Seg::Key(name)] = path
        && spec == "spec"
        && locals == "locals"
    {
        return Some(Target::Local(name.clone()));
    }
    if kind == "Workflow"
        && on_key
        && let [
            Seg::Key(_),
            Seg::Key(_),
            Seg::Index(step),
            Seg::Key(inputs),
            Seg::Key(name),
        ] = path
        && inputs == "inputs"
    {
        return Some(Target::GivenInput {
            step: *step,
            name: name.clone(),
        });
    }
    if (kind == "FunctionTest" || kind == "WorkflowTest")
        && let [Seg::Key(spec), Seg::Key(cases), Seg::Index(case), rest @ ..] = path
        && spec == "spec"
        && cases == "testCases"
        && !(on_key && rest.len() == 1)
    {
        return Some(Target::TestCase(*case));
    }
    if on_key {
        return schema_field(kind, path).map(Target::Key);
    }
    None
}
