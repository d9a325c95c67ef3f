//! Types for the editor, from lang's type checker: the shape of what an expression reads
//! (`parent`, `resource`, `steps.<label>`) and of the resource body being written, for
//! completion with descriptions and hover.

use koreo_lang::expr::Template;
use koreo_lang::model::Definition;
use koreo_lang::typecheck::{self, Shape};
use koreo_lang::yaml::Node;

use crate::document::Seg;
use crate::navigate::{self, DocRef};
use crate::state::Analysis;

/// The shape of `root.fields...` read in the document `here`, when it is known.
pub fn read<'a>(
    analysis: &'a Analysis,
    here: DocRef<'a>,
    root: &str,
    fields: &[String],
) -> Option<Shape<'a>> {
    let spec = here.doc.spec();
    let (start, rest) = match root {
        "parent" if here.doc.kind == "Workflow" => {
            let crd = spec?.get("crdRef")?;
            let text = |k: &str| crd.get(k).and_then(Node::as_str).unwrap_or("");
            let api_version = koreo_lang::model::api_version(text("apiGroup"), text("version"));
            (kind(analysis, &api_version, text("kind"))?, fields)
        }
        "resource" if here.doc.kind == "ResourceFunction" => {
            (managed(analysis, spec?.get("apiConfig")?)?, fields)
        }
        "steps" if here.doc.kind == "Workflow" => {
            let (label, rest) = fields.split_first()?;
            let steps = spec?.get("steps")?.as_seq()?;
            let index = steps
                .iter()
                .position(|s| s.get("label").and_then(Node::as_str) == Some(label))?;
            // A loop gives a list; a switch, one of several results.
            let step = &steps[index];
            if step.get("forEach").is_some() || step.get("refSwitch").is_some() {
                return None;
            }
            let function = navigate::called(analysis, here, index).into_iter().next()?;
            let returned = match function.definition()? {
                Definition::ValueFunction(f) => Shape::Template(f.ret.as_ref()?),
                Definition::ResourceFunction(f) => Shape::Template(f.ret.as_ref()?),
                Definition::Workflow(w) => Shape::State(w),
                _ => return None,
            };
            (returned, rest)
        }
        // The document being typed in may not decode: it is named from its YAML.
        "inputs" => {
            let (name, rest) = fields.split_first()?;
            let (function, _) = here.doc.name.as_ref()?;
            let id = typecheck::FunctionId {
                kind: &here.doc.kind,
                name: function,
                namespace: here.doc.namespace.as_deref(),
            };
            let shapes = typecheck::input_shapes(analysis.workspace(), &id, name);
            (shapes.into_iter().next()?, rest)
        }
        _ => return None,
    };
    start.at(rest.iter().map(String::as_str))
}

/// The shape at `path` of the document when it is inside a resource body: a
/// ResourceFunction's `resource`, overlays and `create.overlay`, or a ResourceTemplate's
/// `template`.
pub fn body<'a>(analysis: &'a Analysis, here: DocRef<'a>, path: &[Seg]) -> Option<Shape<'a>> {
    let spec = here.doc.spec()?;
    let keys = |p: &[Seg]| -> Vec<String> {
        p.iter()
            .map(|s| match s {
                Seg::Key(k) => k.clone(),
                Seg::Index(_) => "[]".into(),
            })
            .collect()
    };
    let written = keys(path);
    let written: Vec<&str> = written.iter().map(String::as_str).collect();
    let (shape, depth) = match (here.doc.kind.as_str(), written.as_slice()) {
        ("ResourceFunction", ["spec", "resource", ..]) => {
            (managed(analysis, spec.get("apiConfig")?)?, 2)
        }
        ("ResourceFunction", ["spec", "overlays", "[]", "overlay", ..]) => {
            (managed(analysis, spec.get("apiConfig")?)?, 4)
        }
        ("ResourceFunction", ["spec", "create", "overlay", ..]) => {
            (managed(analysis, spec.get("apiConfig")?)?, 3)
        }
        ("ResourceTemplate", ["spec", "template", ..]) => {
            let template = spec.get("template")?;
            let text = |k: &str| template.get(k).and_then(Node::as_str);
            (kind(analysis, text("apiVersion")?, text("kind")?)?, 2)
        }
        _ => return None,
    };
    path[depth..]
        .iter()
        .try_fold(shape, |shape, seg| match seg {
            Seg::Key(k) => shape.at([k.as_str()]),
            Seg::Index(_) => shape.items(),
        })
}

/// The kind an `apiConfig` names.
fn managed<'a>(analysis: &'a Analysis, api_config: &Node) -> Option<Shape<'a>> {
    let text = |k: &str| api_config.get(k).and_then(Node::as_str);
    kind(analysis, text("apiVersion")?, text("kind")?)
}

fn kind<'a>(analysis: &'a Analysis, api_version: &str, kind: &str) -> Option<Shape<'a>> {
    let objects = analysis.files().flat_map(|f| &f.objects);
    typecheck::object_shape(objects, analysis.bundle(), api_version, kind)
}

/// A shape as hover shows it: its type, and what its schema says it is for.
pub fn describe(shape: Shape<'_>) -> String {
    let type_name = match shape {
        Shape::Template(Template::Map(entries)) => format!(
            "map of {}",
            entries
                .iter()
                .map(|(k, _)| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => shape.type_name().unwrap_or("dyn").to_string(),
    };
    match shape.description() {
        Some(description) => format!("Type: `{type_name}`\n\n{description}"),
        None => format!("Type: `{type_name}`"),
    }
}
