//! Completion that knows where the cursor is. The place is read from the text around the
//! cursor (indentation, `- ` items, `key:`), not from the YAML tree, because the line being
//! typed is often not YAML yet (`  lab` inside a mapping). Names come from the last tree that
//! parsed, which is current above the line being typed.

use std::collections::BTreeSet;
use std::path::Path;

use koreo_lang::schema::{self, Field, Type};
use koreo_lang::yaml::Node;
use serde_json::Value as Json;
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind,
};

use crate::cel_text;
use crate::document::{DocumentInfo, Seg, map_keys, schema_field};
use crate::library;
use crate::navigate::{self, DocRef, LOGIC_KINDS};
use crate::state::{Analysis, FileState};

/// Completions at a character offset.
pub fn complete(analysis: &Analysis, path: &Path, offset: u32) -> Vec<CompletionItem> {
    let Some(file) = analysis.file(path) else {
        return Vec::new();
    };
    let text = file.text();
    let (line, col) = file.lines.line_col(offset);
    let lines: Vec<&str> = (0..file.lines.line_count())
        .map(|l| file.lines.line(text, l))
        .collect();
    let before: String = lines[line].chars().take(col as usize).collect();
    // The document: between the `---` lines around the cursor.
    let is_separator = |l: &&str| l.starts_with("---");
    let first = lines[..line]
        .iter()
        .rposition(is_separator)
        .map_or(0, |l| l + 1);
    let end = lines[line..]
        .iter()
        .skip(1)
        .position(is_separator)
        .map_or(lines.len(), |l| line + 1 + l);
    let kind = document_kind(&lines[first..end]);
    let place = Place::read(&lines[first..line], &before);
    let doc = document_at(file, line);
    let here = doc.map(|doc| DocRef { file, doc });
    let context = Context {
        analysis,
        here,
        kind: kind.as_deref().unwrap_or(""),
        path: &place.path,
        line,
    };
    match place.what {
        What::Key { siblings } => {
            let found = keys(context.kind, &place.path, &siblings);
            if found.is_empty() {
                context.body_keys(&siblings)
            } else {
                found
            }
        }
        What::Value { prefix, siblings } => match prefix.strip_prefix('=') {
            Some(expression) => context.expression(expression),
            None => context.value(&siblings),
        },
    }
}

/// The `kind:` of the document, from its top-level lines.
fn document_kind(lines: &[&str]) -> Option<String> {
    let kind = lines.iter().find_map(|l| l.strip_prefix("kind:"))?.trim();
    (!kind.is_empty()).then(|| kind.to_string())
}

/// The document the cursor's line is in, from the last tree that parsed.
fn document_at(file: &FileState, line: usize) -> Option<&DocumentInfo> {
    file.docs
        .iter()
        .rfind(|d| d.root.span.start.line as usize <= line + 1)
}

/// What a line of block YAML holds: list item dashes, then maybe `key:` and a value.
#[derive(Debug, Default)]
struct Shape {
    dashes: Vec<usize>,
    key: Option<(usize, String)>,
    value: String,
    /// Where the content (after dashes) starts.
    content: usize,
}

impl Shape {
    fn read(line: &str) -> Shape {
        let chars: Vec<char> = line.chars().collect();
        let mut shape = Shape::default();
        let mut i = chars.iter().take_while(|c| **c == ' ').count();
        while chars.get(i) == Some(&'-') && chars.get(i + 1).is_none_or(|c| *c == ' ') {
            shape.dashes.push(i);
            i += 1;
            i += chars[i..].iter().take_while(|c| **c == ' ').count();
        }
        shape.content = i;
        let rest: String = chars[i..].iter().collect();
        if let Some(colon) = find_key_colon(&rest) {
            let key = rest[..colon].trim().trim_matches(['"', '\'']).to_string();
            if !key.is_empty() && !key.starts_with('#') {
                shape.key = Some((i, key));
                shape.value = rest[colon + 1..].trim_start().to_string();
            }
        }
        shape
    }

    fn is_blank(line: &str) -> bool {
        let t = line.trim();
        t.is_empty() || t.starts_with('#')
    }
}

/// The `:` that ends a mapping key (followed by a space or the end), outside quotes and braces.
fn find_key_colon(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if i == 0 => quote = Some(c),
            (None, '{' | '[' | '#') => return None,
            (None, ':') if text[i + 1..].is_empty() || text[i + 1..].starts_with(' ') => {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

#[derive(Debug)]
enum What {
    /// A key is being typed; `siblings` are the keys already there.
    Key { siblings: Vec<String> },
    /// The value of the path's last key; `siblings` are the other keys with their values.
    Value {
        prefix: String,
        siblings: Vec<(String, String)>,
    },
}

#[derive(Debug)]
struct Place {
    path: Vec<Seg>,
    what: What,
}

impl Place {
    /// The place of the end of `before` (the cursor's line up to the cursor), under `above`
    /// (the document's lines before it).
    fn read(above: &[&str], before: &str) -> Place {
        let shape = Shape::read(before);
        let mut path = Vec::new();
        let mut target = shape.content;
        let mut in_item = false;
        for &d in shape.dashes.iter().rev() {
            path.push(Seg::Index(0));
            target = d;
            in_item = true;
        }
        let column = shape.key.as_ref().map_or(shape.content, |(c, _)| *c);
        // A new list item has no siblings yet.
        let siblings = if shape.dashes.is_empty() {
            block_siblings(above, column)
        } else {
            Vec::new()
        };
        for line in above.iter().rev().filter(|l| !Shape::is_blank(l)) {
            if target == 0 && !in_item {
                break;
            }
            let above = Shape::read(line);
            let Some((k, key)) = above.key else {
                if let Some(&d) = above.dashes.last().filter(|&&d| d < target) {
                    path.push(Seg::Index(0));
                    target = d;
                    in_item = true;
                }
                continue;
            };
            let parent = k < target || (in_item && k == target);
            if parent {
                path.push(Seg::Key(key));
                target = k;
                in_item = false;
            }
            if parent || (k == target && !above.dashes.is_empty()) {
                for &d in above.dashes.iter().rev() {
                    path.push(Seg::Index(0));
                    target = d;
                    in_item = true;
                }
            }
        }
        path.reverse();
        let Some((_, key)) = shape.key else {
            return Place {
                path,
                what: What::Key {
                    siblings: siblings.into_iter().map(|(k, _)| k).collect(),
                },
            };
        };
        path.push(Seg::Key(key));
        let value = shape.value.trim_start_matches(['"', '\'']);
        // `ref: {kind: ValueFunction, name: |`: a flow mapping on the line.
        if let Some(open) = value.rfind('{').filter(|&o| !value[o..].contains('}')) {
            let mut inner = value[open + 1..]
                .split(',')
                .map(str::trim)
                .collect::<Vec<_>>();
            let current = inner.pop().unwrap_or("");
            let flow_siblings = inner
                .iter()
                .filter_map(|e| {
                    let (k, v) = e.split_once(':')?;
                    Some((k.trim().to_string(), v.trim().to_string()))
                })
                .collect();
            return match current.split_once(':') {
                Some((k, v)) => {
                    path.push(Seg::Key(k.trim().to_string()));
                    Place {
                        path,
                        what: What::Value {
                            prefix: v.trim_start().to_string(),
                            siblings: flow_siblings,
                        },
                    }
                }
                None => Place {
                    path,
                    what: What::Key {
                        siblings: flow_siblings.into_iter().map(|(k, _)| k).collect(),
                    },
                },
            };
        }
        Place {
            path,
            what: What::Value {
                prefix: value.to_string(),
                siblings,
            },
        }
    }
}

/// The keys (with their values) above the cursor in the same block mapping, at `column`.
fn block_siblings(above: &[&str], column: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in above.iter().rev().filter(|l| !Shape::is_blank(l)) {
        let shape = Shape::read(line);
        let indent = shape.dashes.first().copied().unwrap_or(shape.content);
        match shape.key {
            Some((k, key)) if k == column => {
                out.push((key, shape.value.clone()));
                // The first key of the item the cursor is in.
                if !shape.dashes.is_empty() {
                    break;
                }
            }
            _ if indent < column => break,
            _ => {}
        }
    }
    out
}

/// Keys the schema allows at a path, less those already written.
fn keys(kind: &str, path: &[Seg], siblings: &[String]) -> Vec<CompletionItem> {
    let field = if kind.is_empty() {
        schema::kind("ValueFunction").filter(|_| path.is_empty())
    } else {
        schema_field(kind, path)
    };
    let Some(field) = field else {
        return Vec::new();
    };
    field
        .fields
        .iter()
        .filter(|f| !f.name.is_empty() && !siblings.iter().any(|s| s == f.name))
        .filter(|f| {
            !kind.is_empty() || ["apiVersion", "kind", "metadata", "spec"].contains(&f.name)
        })
        .map(|f| CompletionItem {
            label: f.name.to_string(),
            kind: Some(CompletionItemKind::FIELD),
            detail: Some(field_detail(f)),
            documentation: Some(markdown(f.description.to_string())),
            insert_text: Some(format!("{}: ", f.name)),
            sort_text: Some(format!("{}{}", u8::from(!f.required), f.name)),
            ..Default::default()
        })
        .collect()
}

/// The fields a shape knows, less those already written, as completion items.
fn known_items(shape: koreo_lang::typecheck::Shape<'_>, written: &[String]) -> Vec<CompletionItem> {
    shape
        .fields()
        .into_iter()
        .filter(|f| !written.contains(&f.name))
        .map(|f| CompletionItem {
            label: f.name.clone(),
            kind: Some(CompletionItemKind::FIELD),
            detail: f.type_name.map(str::to_string),
            documentation: f.description.map(|d| markdown(d.to_string())),
            ..Default::default()
        })
        .collect()
}

fn field_detail(f: &Field) -> String {
    if f.required {
        format!("{} (required)", f.ty.name())
    } else {
        f.ty.name().to_string()
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

fn item(label: &str, kind: CompletionItemKind, detail: impl Into<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.into()),
        ..Default::default()
    }
}

struct Context<'a> {
    analysis: &'a Analysis,
    here: Option<DocRef<'a>>,
    kind: &'a str,
    path: &'a [Seg],
    /// The cursor's 0-based line.
    line: usize,
}

impl Context<'_> {
    /// A value that is not an expression: kinds, enum values, names of definitions.
    fn value(&self, siblings: &[(String, String)]) -> Vec<CompletionItem> {
        let keys: Vec<&str> = self
            .path
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect();
        match keys.as_slice() {
            ["kind"] => {
                return schema::KINDS
                    .iter()
                    .map(|k| item(k, CompletionItemKind::CLASS, "koreo.dev/v1beta1"))
                    .collect();
            }
            ["apiVersion"] => {
                return vec![item(
                    koreo_lang::model::API_VERSION,
                    CompletionItemKind::VALUE,
                    "Koreo definitions",
                )];
            }
            [.., container, "name"] => {
                let written = siblings
                    .iter()
                    .find(|(k, _)| k == "kind")
                    .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_string());
                let kinds: Vec<String> = match (*container, written) {
                    (_, Some(kind)) if !kind.is_empty() => vec![kind],
                    ("overlayRef", _) => vec!["ValueFunction".into()],
                    ("resourceTemplateRef", _) => vec!["ResourceTemplate".into()],
                    ("workflowRef", _) => vec!["Workflow".into()],
                    ("ref" | "functionRef" | "cases", _) => {
                        LOGIC_KINDS.iter().map(|k| k.to_string()).collect()
                    }
                    _ => Vec::new(),
                };
                if !kinds.is_empty() {
                    return self.names(&kinds);
                }
            }
            _ => {}
        }
        let Some(field) = schema_field(self.kind, self.path) else {
            return Vec::new();
        };
        let values: Vec<&str> = if field.ty == Type::Boolean {
            vec!["true", "false"]
        } else {
            field.enum_values.to_vec()
        };
        values
            .into_iter()
            .map(|v| item(v, CompletionItemKind::ENUM_MEMBER, field.description))
            .collect()
    }

    /// Names of the definitions of some kinds (not the one being written).
    fn names(&self, kinds: &[String]) -> Vec<CompletionItem> {
        let mut seen = BTreeSet::new();
        navigate::documents(self.analysis)
            .filter(|d| kinds.contains(&d.doc.kind))
            .filter(|d| self.here.is_none_or(|here| !here.is(d)))
            .filter_map(|d| {
                let (name, _) = d.doc.name.as_ref()?;
                seen.insert((name.clone(), d.doc.kind.clone())).then(|| {
                    let mut found = item(name, CompletionItemKind::REFERENCE, d.doc.kind.clone());
                    found.documentation = Some(markdown(format!(
                        "{} `{name}` in {}",
                        d.doc.kind,
                        d.file.path().display()
                    )));
                    found
                })
            })
            .collect()
    }

    /// Inside an expression: variables, their members, functions.
    fn expression(&self, prefix: &str) -> Vec<CompletionItem> {
        let Some((chain, _typed)) = cel_text::chain_at_end(prefix) else {
            return Vec::new();
        };
        let scope = library::scope(self.kind, self.path);
        match chain.split_first() {
            None => {
                let variables = scope.iter().map(|v| {
                    let mut found = item(v, CompletionItemKind::VARIABLE, "variable");
                    found.documentation = library::variable(v).map(|d| markdown(d.into()));
                    found
                });
                variables.chain(self.functions()).collect()
            }
            Some((root, _)) if root.is_empty() => self.functions().collect(),
            Some((root, rest)) => {
                let mut found = self.typed_members(root, rest);
                for m in self.members(root, rest) {
                    if !found.iter().any(|f| f.label == m) {
                        found.push(item(
                            &m,
                            CompletionItemKind::PROPERTY,
                            format!("{root} member"),
                        ));
                    }
                }
                found.sort_by(|a, b| a.label.cmp(&b.label));
                found.into_iter().chain(self.functions()).collect()
            }
        }
    }

    /// The fields of `root.rest` where its type is known, with their types and descriptions.
    fn typed_members(&self, root: &str, rest: &[String]) -> Vec<CompletionItem> {
        let Some(here) = self.here else {
            return Vec::new();
        };
        crate::types::read(self.analysis, here, root, rest)
            .map(|shape| known_items(shape, &[]))
            .unwrap_or_default()
    }

    /// Keys of a resource body, from the schema of the kind it makes.
    fn body_keys(&self, siblings: &[String]) -> Vec<CompletionItem> {
        let Some(here) = self.here else {
            return Vec::new();
        };
        crate::types::body(self.analysis, here, self.path)
            .map(|shape| {
                known_items(shape, siblings)
                    .into_iter()
                    .map(|mut found| {
                        found.insert_text = Some(format!("{}: ", found.label));
                        found
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn functions(&self) -> impl Iterator<Item = CompletionItem> {
        library::functions().map(|f| {
            let mut found = item(f.name, CompletionItemKind::FUNCTION, f.signature);
            found.documentation = Some(markdown(f.summary.to_string()));
            found
        })
    }

    /// The names after `root.rest.`.
    fn members(&self, root: &str, rest: &[String]) -> Vec<String> {
        let Some(here) = self.here else {
            return Vec::new();
        };
        let found: Vec<String> = match (root, rest) {
            ("inputs", []) => self.inputs(here),
            ("locals", _) => json_keys(
                &here
                    .doc
                    .spec()
                    .and_then(|s| s.get("locals"))
                    .map_or(Json::Null, Node::to_json),
                rest,
            ),
            ("steps", []) => {
                let current = self.line + 1;
                here.doc
                    .step_labels()
                    .into_iter()
                    .filter(|(_, span)| (span.start.line as usize) < current)
                    .map(|(l, _)| l)
                    .filter(|l| !self.is_current_step(here, l))
                    .collect()
            }
            ("steps", [label, deeper @ ..]) => self.result_of_step(here, label, deeper),
            ("resource", _) => self.resource(here, rest),
            ("parent", _) => self.parent(rest),
            ("value", _) => self.value_of_step(here, rest),
            _ => Vec::new(),
        };
        found
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Whether `label` is the label of the step the cursor is in.
    fn is_current_step(&self, here: DocRef, label: &str) -> bool {
        let steps = here
            .doc
            .spec()
            .and_then(|s| s.get("steps"))
            .and_then(Node::as_seq);
        let line = self.line as u32 + 1;
        steps.unwrap_or_default().iter().any(|s| {
            s.span.start.line <= line
                && line <= s.span.end.line
                && s.get("label").and_then(Node::as_str) == Some(label)
        })
    }

    /// Inputs: those the document already reads, and those its callers give.
    fn inputs(&self, here: DocRef) -> Vec<String> {
        let mut out: Vec<String> = here
            .doc
            .expressions
            .iter()
            .flat_map(|site| cel_text::members(&cel_text::lex(&site.source)))
            .filter(|m| m.root == "inputs")
            .filter_map(|m| m.field)
            .collect();
        let given = |holder: Option<&Node>| {
            map_keys(holder.and_then(|h| h.get("inputs")))
                .into_iter()
                .map(|(k, _)| k)
        };
        match here.doc.kind.as_str() {
            "Workflow" => {
                let line = self.line as u32 + 1;
                let steps = here
                    .doc
                    .spec()
                    .and_then(|s| s.get("steps"))
                    .and_then(Node::as_seq);
                let step = steps
                    .unwrap_or_default()
                    .iter()
                    .find(|s| s.span.start.line <= line && line <= s.span.end.line);
                out.extend(given(step));
                if let Some(key) = step
                    .and_then(|s| s.get("forEach"))
                    .and_then(|f| f.get("inputKey"))
                    .and_then(Node::as_str)
                {
                    out.push(key.to_string());
                }
            }
            "FunctionTest" => out.extend(given(here.doc.spec())),
            _ => {
                for (caller, holder) in navigate::callers(self.analysis, here) {
                    if caller.doc.kind == "FunctionTest" {
                        out.extend(given(caller.doc.spec()));
                    } else {
                        out.extend(given(Some(holder)));
                    }
                }
            }
        }
        out
    }

    /// `resource`: the target a ResourceFunction builds (inline or its ResourceTemplate), with
    /// the fields every Kubernetes object has.
    fn resource(&self, here: DocRef, rest: &[String]) -> Vec<String> {
        let spec = here.doc.spec();
        let template = spec
            .and_then(|s| s.get("resourceTemplateRef"))
            .and_then(|r| {
                let name = r.get("name")?.as_str()?;
                let found = navigate::resolve(
                    self.analysis,
                    Some("ResourceTemplate"),
                    name,
                    here.doc.namespace.as_deref(),
                )?;
                found.doc.spec()?.get("template").map(Node::to_json)
            });
        let target = spec
            .and_then(|s| s.get("resource"))
            .map(Node::to_json)
            .or(template)
            .unwrap_or(Json::Null);
        let mut out = json_keys(&target, rest);
        match rest {
            [] => {
                out.extend(["apiVersion", "kind", "metadata", "spec", "status"].map(String::from))
            }
            [metadata] if metadata == "metadata" => out.extend(OBJECT_METADATA.map(String::from)),
            _ => {}
        }
        out
    }

    /// `parent`: the parent object (what its schema declares comes from [`Self::typed_members`]).
    fn parent(&self, rest: &[String]) -> Vec<String> {
        match rest {
            [] => ["apiVersion", "kind", "metadata", "spec", "state"]
                .map(String::from)
                .to_vec(),
            [metadata] if metadata == "metadata" => OBJECT_METADATA.map(String::from).to_vec(),
            _ => Vec::new(),
        }
    }

    /// `steps.<label>.`: what that step's function returns.
    fn result_of_step(&self, here: DocRef, label: &str, rest: &[String]) -> Vec<String> {
        self.returned(
            here,
            |s| s.get("label").and_then(Node::as_str) == Some(label),
            rest,
        )
    }

    /// The keys at `rest` of what the function of the step `which` picks returns.
    fn returned(
        &self,
        here: DocRef,
        which: impl Fn(&Node) -> bool,
        rest: &[String],
    ) -> Vec<String> {
        let steps = here
            .doc
            .spec()
            .and_then(|s| s.get("steps"))
            .and_then(Node::as_seq);
        let Some(index) = steps.unwrap_or_default().iter().position(which) else {
            return Vec::new();
        };
        navigate::called(self.analysis, here, index)
            .into_iter()
            .flat_map(|f| {
                let ret = f.doc.spec().and_then(|s| s.get("return"));
                json_keys(&ret.map_or(Json::Null, Node::to_json), rest)
            })
            .collect()
    }

    /// `value` in a step's `state`: what the step's function returns.
    fn value_of_step(&self, here: DocRef, rest: &[String]) -> Vec<String> {
        let line = self.line as u32 + 1;
        self.returned(
            here,
            |s| s.span.start.line <= line && line <= s.span.end.line,
            rest,
        )
    }
}

const OBJECT_METADATA: [&str; 6] = [
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "generation",
];

/// The keys of the mapping at `path` in a JSON value.
fn json_keys(value: &Json, path: &[String]) -> Vec<String> {
    let mut node = value;
    for key in path {
        node = &node[key.as_str()];
    }
    node.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(text: &str) -> Place {
        let lines: Vec<&str> = text.lines().collect();
        let (above, last) = lines.split_at(lines.len() - 1);
        Place::read(above, last[0])
    }

    fn keys(path: &[Seg]) -> Vec<String> {
        path.iter()
            .map(|s| match s {
                Seg::Key(k) => k.clone(),
                Seg::Index(_) => "[]".into(),
            })
            .collect()
    }

    #[test]
    fn reads_the_place_from_indentation() {
        let p =
            place("spec:\n  steps:\n  - label: one\n    ref:\n      kind: ValueFunction\n      na");
        assert_eq!(keys(&p.path), ["spec", "steps", "[]", "ref"]);
        let What::Key { siblings } = p.what else {
            panic!("a key")
        };
        assert_eq!(siblings, ["kind"]);

        let p = place("spec:\n  steps:\n  - label: one\n  - ");
        assert_eq!(keys(&p.path), ["spec", "steps", "[]"]);

        let p = place("spec:\n  steps:\n  - label: one\n    inputs:\n      x: =steps.");
        assert_eq!(keys(&p.path), ["spec", "steps", "[]", "inputs", "x"]);
        assert!(matches!(p.what, What::Value { prefix, .. } if prefix == "=steps."));

        let p = place("spec:\n  steps:\n  - label: one\n    ref: {kind: Workflow, name: ");
        assert_eq!(keys(&p.path), ["spec", "steps", "[]", "ref", "name"]);
        let What::Value { siblings, .. } = p.what else {
            panic!("a value")
        };
        assert_eq!(siblings, [("kind".to_string(), "Workflow".to_string())]);

        let p = place("spec:\n  testCases:\n    - label: a\n      expectReturn: {}\n      ");
        assert_eq!(keys(&p.path), ["spec", "testCases", "[]"]);
    }
}
