//! One YAML document as the editor needs it: its positioned tree, what it is, the references
//! it makes to other definitions, and its expressions mapped back to the file.
//!
//! Everything here comes from the YAML tree, not from lang's model, so a document that does
//! not validate yet (mid-typing) still has its references, outline and colours.

use koreo_lang::model::API_VERSION;
use koreo_lang::schema::{self, Expression, Field, Type};
use koreo_lang::source::Span;
use koreo_lang::yaml::{Node, Value};

use crate::cel_text;

/// A step in a path through a YAML tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The path as schema lookups write it: `spec.steps[].ref`.
pub fn schema_field(kind: &str, path: &[Seg]) -> Option<&'static Field> {
    let mut field = schema::kind(kind)?;
    for seg in path {
        field = match seg {
            Seg::Key(k) => field.child(k)?,
            Seg::Index(_) => field.item()?,
        };
    }
    Some(field)
}

/// Whether a path is `[Key(a), Key(b), ...]` with these keys, indexes skipped.
pub fn keys_are(path: &[Seg], keys: &[&str]) -> bool {
    let mut named = path.iter().filter_map(|s| match s {
        Seg::Key(k) => Some(k.as_str()),
        Seg::Index(_) => None,
    });
    keys.iter().all(|k| named.next() == Some(k)) && named.next().is_none()
}

/// A reference to a definition by name, written in this document.
#[derive(Clone, Debug)]
pub struct RefSite {
    /// The kind the reference asks for, as written (`None` when not written yet).
    pub kind: Option<String>,
    pub name: String,
    /// The name's value node.
    pub span: Span,
    /// The name is an expression (`resourceTemplateRef.name: ="base-" + inputs.size`).
    pub dynamic: bool,
}

/// An expression written in the document.
#[derive(Clone, Debug)]
pub struct ExprSite {
    /// The CEL text, without its `=`.
    pub source: String,
    /// The file character offset of each character of `source`, and of its end.
    pub offsets: Vec<u32>,
    /// The YAML string node.
    pub span: Span,
}

impl ExprSite {
    /// The index in `source` at a file offset, when the offset is inside the expression.
    pub fn index_at(&self, offset: u32) -> Option<usize> {
        let (first, last) = (*self.offsets.first()?, *self.offsets.last()?);
        if offset < first || offset > last {
            return None;
        }
        Some(self.offsets.partition_point(|&o| o < offset))
    }

    /// File offsets of a range of `source` indexes.
    pub fn file_range(&self, start: usize, end: usize) -> (u32, u32) {
        let at = |i: usize| self.offsets[i.min(self.offsets.len() - 1)];
        // The end is one past the last character, which may be far when YAML folded a line.
        let end = if end > start {
            at(end - 1) + 1
        } else {
            at(end)
        };
        (at(start), end)
    }
}

/// One document of a file.
#[derive(Clone, Debug)]
pub struct DocumentInfo {
    pub root: Node,
    pub kind: String,
    /// A `koreo.dev/v1beta1` document of a kind the schema describes.
    pub koreo: bool,
    pub name: Option<(String, Span)>,
    pub namespace: Option<String>,
    /// Its index in the file's decoded definitions, when it decoded.
    pub definition: Option<usize>,
    pub references: Vec<RefSite>,
    pub expressions: Vec<ExprSite>,
}

impl DocumentInfo {
    /// Reads a document; `chars` are the file's characters, for mapping expressions.
    pub fn new(root: Node, chars: &[char]) -> DocumentInfo {
        let text = |key: &str| root.get(key).and_then(Node::as_str).unwrap_or("");
        let kind = text("kind").to_string();
        let koreo = text("apiVersion") == API_VERSION && schema::kind(&kind).is_some();
        let metadata = root.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(|n| Some((n.as_str()?.to_string(), n.span)));
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Node::as_str)
            .map(str::to_string);
        let mut info = DocumentInfo {
            kind,
            koreo,
            name,
            namespace,
            definition: None,
            references: Vec::new(),
            expressions: Vec::new(),
            root: Node {
                value: Value::Null,
                span: root.span,
            },
        };
        if koreo {
            info.references = references(&info.kind, &root);
            let field = schema::kind(&info.kind);
            collect_expressions(
                &root,
                field,
                Expression::Literal,
                chars,
                &mut info.expressions,
            );
        }
        info.root = root;
        info
    }

    pub fn spec(&self) -> Option<&Node> {
        self.root.get("spec")
    }

    /// The node at a path.
    pub fn node(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = &self.root;
        for seg in path {
            node = match seg {
                Seg::Key(k) => node.get(k)?,
                Seg::Index(i) => node.as_seq()?.get(*i)?,
            };
        }
        Some(node)
    }

    /// The workflow step holding a path (`spec.steps[i]...`), with its index.
    pub fn step_of(&self, path: &[Seg]) -> Option<(usize, &Node)> {
        match path {
            [Seg::Key(spec), Seg::Key(steps), Seg::Index(i), ..]
                if spec == "spec" && steps == "steps" && self.kind == "Workflow" =>
            {
                Some((*i, self.spec()?.get("steps")?.as_seq()?.get(*i)?))
            }
            _ => None,
        }
    }

    /// Labels of the workflow's steps, with their value nodes.
    pub fn step_labels(&self) -> Vec<(String, Span)> {
        let steps = self
            .spec()
            .and_then(|s| s.get("steps"))
            .and_then(Node::as_seq);
        steps
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                let label = s.get("label")?;
                Some((label.as_str()?.to_string(), label.span))
            })
            .collect()
    }
}

/// Keys of a mapping node, with their spans.
pub fn map_keys(node: Option<&Node>) -> Vec<(String, Span)> {
    node.and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .map(|(k, _)| (k.text.clone(), k.span))
        .collect()
}

/// The references a document of `kind` makes, from where each kind writes them.
fn references(kind: &str, root: &Node) -> Vec<RefSite> {
    let spec = root.get("spec");
    let mut out = Vec::new();
    let mut add = |node: Option<&Node>, kind: Option<&str>| {
        let Some(name) = node.and_then(|n| n.get("name")) else {
            return;
        };
        let Some(text) = name.as_str() else { return };
        let written = node.and_then(|n| n.get("kind")).and_then(Node::as_str);
        out.push(RefSite {
            kind: written.or(kind).map(str::to_string),
            name: text.to_string(),
            span: name.span,
            dynamic: koreo_lang::expr::is_expression(text),
        });
    };
    match kind {
        "Workflow" => {
            for step in items(spec, "steps") {
                add(step.get("ref"), None);
                for case in items(step.get("refSwitch"), "cases") {
                    add(Some(case), None);
                }
            }
        }
        "ResourceFunction" => {
            add(
                spec.and_then(|s| s.get("resourceTemplateRef")),
                Some("ResourceTemplate"),
            );
            for overlay in items(spec, "overlays") {
                add(overlay.get("overlayRef"), Some("ValueFunction"));
            }
        }
        "FunctionTest" => add(spec.and_then(|s| s.get("functionRef")), None),
        "WorkflowTest" => add(spec.and_then(|s| s.get("workflowRef")), Some("Workflow")),
        _ => {}
    }
    out
}

/// The items of the list at `key`.
fn items<'n>(node: Option<&'n Node>, key: &str) -> &'n [Node] {
    node.and_then(|n| n.get(key))
        .and_then(Node::as_seq)
        .unwrap_or_default()
}

/// Collects the `=` strings where the schema allows expressions. Below a free-form field
/// (`return`, `inputs`, ...) every string follows that field's rule, at any depth.
fn collect_expressions(
    node: &Node,
    field: Option<&'static Field>,
    inherited: Expression,
    chars: &[char],
    out: &mut Vec<ExprSite>,
) {
    let mode = field.map_or(inherited, |f| f.expression);
    // Undeclared keys of a strict object are errors of their own; their strings are not
    // expressions.
    let open = field.is_none_or(|f| f.free_form || f.ty == Type::Any);
    let below = if open { mode } else { Expression::Literal };
    match &node.value {
        Value::Str(s, _) if koreo_lang::expr::is_expression(s) => {
            if matches!(mode, Expression::Allowed | Expression::Required) {
                let start = node.span.start.offset as usize;
                let end = (node.span.end.offset as usize).clamp(start, chars.len().max(start));
                let raw = chars.get(start..end).unwrap_or_default();
                let offsets = cel_text::align(s, raw, node.span.start.offset);
                out.push(ExprSite {
                    source: s[1..].to_string(),
                    offsets: offsets[1..].to_vec(),
                    span: node.span,
                });
            }
        }
        Value::Map(entries) => {
            for (key, value) in entries {
                let child = field.and_then(|f| f.child(&key.text));
                collect_expressions(value, child, below, chars, out);
            }
        }
        Value::Seq(items) => {
            for item in items {
                let child = field.and_then(|f| f.item());
                collect_expressions(item, child, below, chars, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> DocumentInfo {
        let chars: Vec<char> = text.chars().collect();
        let root = koreo_lang::yaml::parse_documents(text)
            .unwrap()
            .remove(0)
            .root;
        DocumentInfo::new(root, &chars)
    }

    #[test]
    fn expressions_only_where_the_schema_allows_them() {
        let d = doc(
            "apiVersion: koreo.dev/v1beta1\nkind: FunctionTest\nmetadata: {name: t}\nspec:\n  functionRef: {kind: ValueFunction, name: f}\n  inputs: {a: =not.an.expression}\n  testCases:\n  - overlayResource: {x: \"=inputs.a\"}\n    expectReturn: {y: =literal}\n",
        );
        let sources: Vec<_> = d.expressions.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, ["inputs.a"]);
        let e = &d.expressions[0];
        // `i` of `inputs` is the character after `"=`.
        let line_start = "apiVersion: koreo.dev/v1beta1\nkind: FunctionTest\nmetadata: {name: t}\nspec:\n  functionRef: {kind: ValueFunction, name: f}\n  inputs: {a: =not.an.expression}\n  testCases:\n".chars().count() as u32;
        assert_eq!(
            e.offsets[0],
            line_start + "  - overlayResource: {x: \"=".len() as u32
        );
        assert_eq!(d.references.len(), 1);
        assert_eq!(d.references[0].name, "f");
    }
}
