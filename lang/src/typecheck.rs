//! What expressions read and resource bodies write, against the types the workspace knows:
//! what functions `return`, what callers pass as `inputs`, the parent's CRD, and the schema of
//! the kind a ResourceFunction manages (bundled for built-in kinds, see [`crate::openapi`]).
//!
//! Only what cannot work is reported: where a type is not known (an expression, an open
//! schema, a read under `has()`) nothing is said.

use crate::codes::Code;
use crate::expr::{Expr, Template};
use crate::load::Workspace;
use crate::model::{
    CrdRef, Definition, LogicKind, OverlaySource, ResourceFunction, ResourceTemplate, StepLogic,
    TargetSource, Workflow,
};
use crate::openapi::{Bundle, Field, Schema, type_phrase};
use crate::source::{Diagnostic, Location};
use crate::types::Type;
use serde_json::Value as Json;

/// A value whose fields are known, at least in part.
#[derive(Clone, Copy, Debug)]
pub enum Shape<'a> {
    Template(&'a Template),
    Json(&'a Json),
    /// A whole object of a kind: whatever its schema says, `metadata` is an ObjectMeta (from
    /// the bundle, read only if `metadata` is).
    Object {
        schema: Schema<'a>,
        bundle: &'a Bundle,
    },
    Schema(Schema<'a>),
    /// What a Workflow run as a step gives: the `state` its steps set, one key over another
    /// (a key set again replaces the value, as Koreo merges them).
    State(&'a Workflow),
}

/// A field an editor can offer.
#[derive(Debug)]
pub struct Known<'a> {
    pub name: String,
    pub type_name: Option<&'a str>,
    pub description: Option<&'a str>,
}

/// What a shape says of one of its fields.
#[derive(Debug)]
pub enum Lookup<'a> {
    Has(Shape<'a>),
    /// Only these fields can be there.
    Missing(Vec<String>),
    Unknown,
}

impl<'a> Shape<'a> {
    pub fn field(self, name: &str) -> Lookup<'a> {
        let json_field = |value: &'a Json| match value {
            Json::Object(map) => match map.get(name) {
                Some(inner) => Lookup::Has(Shape::Json(inner)),
                None => Lookup::Missing(map.keys().cloned().collect()),
            },
            _ => Lookup::Unknown,
        };
        match self {
            Shape::Template(Template::Map(entries)) => {
                match entries.iter().find(|(k, _)| k == name) {
                    Some((_, inner)) => Lookup::Has(Shape::Template(inner)),
                    None => Lookup::Missing(entries.iter().map(|(k, _)| k.clone()).collect()),
                }
            }
            Shape::Template(Template::Literal(value)) | Shape::Json(value) => json_field(value),
            Shape::Template(_) => Lookup::Unknown,
            Shape::State(w) => {
                let (mut keys, mut found) = (Vec::new(), Vec::new());
                for state in w.steps.iter().filter_map(|s| s.state.as_ref()) {
                    match Shape::Template(state).field(name) {
                        Lookup::Has(inner) => found.push(inner),
                        Lookup::Missing(more) => keys.extend(more),
                        Lookup::Unknown => return Lookup::Unknown,
                    }
                }
                keys.sort();
                keys.dedup();
                match found.as_slice() {
                    [] => Lookup::Missing(keys),
                    [only] => Lookup::Has(*only),
                    // Several steps set it: whichever ran last gives the whole value.
                    _ => Lookup::Unknown,
                }
            }
            Shape::Object { bundle, .. } if name == "metadata" => bundle
                .object_meta()
                .map_or(Lookup::Unknown, |m| Lookup::Has(Shape::Schema(m))),
            // A CRD's schema need not declare them; the API server sets them.
            Shape::Object { .. } if name == "apiVersion" || name == "kind" => Lookup::Unknown,
            Shape::Object { schema, .. } | Shape::Schema(schema) => match schema.field(name) {
                Field::Declared(inner) => Lookup::Has(Shape::Schema(inner)),
                Field::Undeclared(names) => {
                    Lookup::Missing(names.into_iter().map(String::from).collect())
                }
                Field::Open => Lookup::Unknown,
            },
        }
    }

    /// The shape of a list's items, when known.
    pub fn items(self) -> Option<Shape<'a>> {
        match self {
            Shape::Schema(schema) => schema.items().map(Shape::Schema),
            _ => None,
        }
    }

    /// The fields known to be there, for an editor: each with its type and description when
    /// a schema says.
    pub fn fields(self) -> Vec<Known<'a>> {
        let plain = |name: &str| Known {
            name: name.to_string(),
            type_name: None,
            description: None,
        };
        match self {
            Shape::Template(Template::Map(entries)) => {
                entries.iter().map(|(k, _)| plain(k)).collect()
            }
            Shape::Template(Template::Literal(Json::Object(map)))
            | Shape::Json(Json::Object(map)) => map.keys().map(|k| plain(k)).collect(),
            Shape::Template(_) | Shape::Json(_) => Vec::new(),
            Shape::State(w) => {
                let mut known: Vec<Known<'a>> = w
                    .steps
                    .iter()
                    .filter_map(|s| s.state.as_ref())
                    .flat_map(|state| Shape::Template(state).fields())
                    .collect();
                known.sort_by(|a, b| a.name.cmp(&b.name));
                known.dedup_by(|a, b| a.name == b.name);
                known
            }
            Shape::Object { schema, .. } | Shape::Schema(schema) => {
                let mut known: Vec<Known<'a>> = schema
                    .properties()
                    .into_iter()
                    .map(|(name, field)| Known {
                        name: name.to_string(),
                        type_name: field.type_name(),
                        description: field.description(),
                    })
                    .collect();
                if matches!(self, Shape::Object { .. }) {
                    for name in ["apiVersion", "kind", "metadata"] {
                        if !known.iter().any(|k| k.name == name) {
                            known.push(Known {
                                type_name: Some(if name == "metadata" {
                                    "object"
                                } else {
                                    "string"
                                }),
                                ..plain(name)
                            });
                        }
                    }
                }
                known
            }
        }
    }

    /// What the value is, in a word (`integer`, `object`...), when known.
    pub fn type_name(self) -> Option<&'a str> {
        match self {
            Shape::Object { .. } => Some("object"),
            Shape::State(_) => Some("map"),
            Shape::Schema(schema) => schema.type_name(),
            Shape::Template(Template::Map(_)) => Some("map"),
            Shape::Template(Template::List(_)) => Some("list"),
            Shape::Template(Template::Literal(value)) | Shape::Json(value) => {
                Some(Type::of_json(value).name())
            }
            Shape::Template(Template::Expr(_)) => None,
        }
    }

    /// What a schema says the value is for.
    pub fn description(self) -> Option<&'a str> {
        match self {
            Shape::Object { schema, .. } | Shape::Schema(schema) => schema.description(),
            _ => None,
        }
    }

    /// The shape at `fields`, when each is known to be there.
    pub fn at<'f>(self, fields: impl IntoIterator<Item = &'f str>) -> Option<Shape<'a>> {
        fields
            .into_iter()
            .try_fold(self, |shape, f| match shape.field(f) {
                Lookup::Has(inner) => Some(inner),
                _ => None,
            })
    }

    /// The first of `fields` that cannot be there, with where it is read and what can.
    pub fn first_missing(
        self,
        fields: &[(String, Location)],
    ) -> Option<(&str, &Location, Vec<String>)> {
        let mut shape = self;
        for (field, location) in fields {
            match shape.field(field) {
                Lookup::Has(inner) => shape = inner,
                Lookup::Missing(keys) => return Some((field, location, keys)),
                Lookup::Unknown => return None,
            }
        }
        None
    }
}

/// The schema of a kind, as `apps/v1` and `Deployment`: a CRD in the workspace, or else the
/// bundle's built-in kind.
pub fn kind_schema<'w>(ws: &'w Workspace, api_version: &str, kind: &str) -> Option<Shape<'w>> {
    object_shape(&ws.objects, ws.bundle(), api_version, kind)
}

/// As [`kind_schema`], from CRDs among `objects` and a bundle (for the language server, which
/// keeps objects of its own).
pub fn object_shape<'o>(
    objects: impl IntoIterator<Item = &'o crate::load::Object>,
    bundle: &'o Bundle,
    api_version: &str,
    kind: &str,
) -> Option<Shape<'o>> {
    let (group, version) = crate::model::group_version(api_version);
    let schema = crd_schema(objects, group, version, kind)
        .map(Schema::inline)
        .or_else(|| bundle.kind(api_version, kind))?;
    Some(Shape::Object { schema, bundle })
}

/// The `openAPIV3Schema` of the CRD among `objects` for a kind, at a version.
pub fn crd_schema<'o>(
    objects: impl IntoIterator<Item = &'o crate::load::Object>,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<&'o Json> {
    objects
        .into_iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| &o.value["spec"])
        .filter(|spec| spec["group"] == group && spec["names"]["kind"] == kind)
        // A legacy CRD that keeps unknown fields everywhere types nothing.
        .filter(|spec| spec["preserveUnknownFields"] != true)
        .flat_map(|spec| spec["versions"].as_array().into_iter().flatten())
        .find(|v| v["name"] == version)
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|schema| schema.is_object())
}

/// The parent a Workflow is triggered by, when its kind's schema is known.
pub fn parent_shape<'w>(ws: &'w Workspace, crd: &CrdRef) -> Option<Shape<'w>> {
    kind_schema(ws, &crd.api_version(), &crd.kind)
}

/// What the step labelled `label` gives, when one value is known: the `return` of the
/// function a plain `ref` runs, or the merged `state` of a Workflow it runs; not with
/// `forEach` (a list) or `refSwitch`.
pub fn step_result<'w>(
    ws: &'w Workspace,
    w: &Workflow,
    label: &str,
    namespace: Option<&str>,
) -> Option<Shape<'w>> {
    let step = w.steps.iter().find(|s| s.label == label)?;
    let StepLogic::Ref(r) = &step.logic else {
        return None;
    };
    if step.for_each.is_some() {
        return None;
    }
    match r.kind {
        LogicKind::ValueFunction => Some(Shape::Template(
            ws.value_function(&r.name, namespace)?.ret.as_ref()?,
        )),
        LogicKind::ResourceFunction => Some(Shape::Template(
            ws.resource_function(&r.name, namespace)?.ret.as_ref()?,
        )),
        LogicKind::Workflow => Some(Shape::State(ws.workflow(&r.name, namespace)?)),
    }
}

/// Reads of `steps.<label>.<field>...` against what that step gives ([`step_result`]), and of
/// `parent.spec...` against the parent's schema when it is known. A step that loops or
/// switches, a function without `return`, open schemas and reads under `has()` are not
/// checked; nor is `parent` of a Workflow that another runs as a step (its `parent` is that
/// step's inputs then).
pub(crate) fn check_workflow_reads(
    ws: &Workspace,
    w: &Workflow,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    let parent = w
        .crd_ref
        .as_ref()
        .filter(|_| !runs_as_step(ws, w))
        .and_then(|crd| Some((crd, parent_shape(ws, crd)?)));
    for step in &w.steps {
        let exprs = crate::analysis::step_expressions(step);
        if let Some((crd, shape)) = parent {
            let whose = format!("the parent, {},", with_article(&crd.kind));
            check_object_reads(&exprs, "parent", shape, &whose, diags);
        }
        for expr in exprs {
            let paths = expr.field_paths("steps");
            for path in paths.iter().filter(|p| !p.tested) {
                let Some(((label, _), fields)) = path.fields.split_first() else {
                    continue;
                };
                if guarded(&paths, label) {
                    continue;
                }
                let Some(returned) = step_result(ws, w, label, namespace) else {
                    continue;
                };
                if let Some((field, location, keys)) = returned.first_missing(fields) {
                    diags.push(unknown_field(
                        location,
                        format!("step `{label}` returns no `{field}` here"),
                        field,
                        &keys,
                        "its `return` has",
                    ));
                }
            }
        }
    }
}

/// Reads of `root` (the parent, or the resource a function manages) in some expressions (a
/// step's, a function's) against the object's schema: K0501 for a field it cannot have,
/// K0503 for one it may lack unless one of them asks `has()` of it. The parent is checked
/// below `spec` only (its `status` is koreo's own). An expression that asks `has()` of the
/// object itself is left alone.
fn check_object_reads(
    exprs: &[&Expr],
    root: &str,
    shape: Shape<'_>,
    whose: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let reads: Vec<Vec<crate::expr::FieldPath>> =
        exprs.iter().map(|e| e.field_paths(root)).collect();
    let tested = tested_paths(&reads);
    let checked = |p: &&crate::expr::FieldPath| {
        root != "parent" || p.fields.first().is_some_and(|(f, _)| f == "spec")
    };
    for paths in reads.iter().filter(|paths| !paths.iter().any(|p| p.tested)) {
        for path in paths.iter().filter(checked) {
            match shape.first_missing(&path.fields) {
                Some((field, location, keys)) => diags.push(unknown_field(
                    location,
                    format!("{whose} has no `{field}` here"),
                    field,
                    &keys,
                    "it has",
                )),
                None => diags.extend(optional_read(shape, root, &path.fields, &tested)),
            }
        }
    }
}

/// The fields asked `has()` of in some expressions' reads: what those guard.
fn tested_paths(reads: &[Vec<crate::expr::FieldPath>]) -> Vec<Vec<String>> {
    reads
        .iter()
        .flatten()
        .filter(|p| p.tested)
        .map(|p| p.fields.iter().map(|(f, _)| f.clone()).collect())
        .collect()
}

/// K0503, a hint: the first field on the way that the schema does not always give (not
/// required, no default), unless a `has()` nearby asks about it. Reading it when it is
/// missing fails. Fields of the object itself (`spec`, `status`) and `metadata` (the server
/// sets names and uids) are not hinted at: an object without them is not what anyone writes
/// for.
fn optional_read(
    start: Shape<'_>,
    root: &str,
    fields: &[(String, Location)],
    tested: &[Vec<String>],
) -> Option<Diagnostic> {
    if fields.first().is_some_and(|(f, _)| f == "metadata") {
        return None;
    }
    let mut shape = start;
    for (i, (field, location)) in fields.iter().enumerate() {
        let optional = match shape {
            Shape::Schema(schema) => schema.may_lack(field),
            _ => false,
        };
        if optional {
            let prefix: Vec<&str> = fields[..=i].iter().map(|(f, _)| f.as_str()).collect();
            let guarded = tested
                .iter()
                .any(|t| t.len() >= prefix.len() && t.iter().zip(&prefix).all(|(a, b)| a == b));
            if guarded {
                return None;
            }
            let read = format!("{root}.{}", prefix.join("."));
            return Some(
                Diagnostic::hint(
                    Code::OptionalRead,
                    location.clone(),
                    format!("`{read}` may be missing: its schema does not require it"),
                )
                .with_hint(format!(
                    "reading it when it is missing fails; guard it with `has({read})`, or require it or give it a default in the schema"
                )),
            );
        }
        match shape.field(field) {
            Lookup::Has(inner) => shape = inner,
            _ => return None,
        }
    }
    None
}

/// Whether an expression asks `has()` of the first field of any of its reads that start so.
fn guarded(paths: &[crate::expr::FieldPath], first: &str) -> bool {
    paths
        .iter()
        .any(|p| p.tested && p.fields.first().is_some_and(|(f, _)| f == first))
}

fn runs_as_step(ws: &Workspace, w: &Workflow) -> bool {
    ws.definitions.iter().any(|d| match d {
        Definition::Workflow(other) => other.steps.iter().any(|s| match &s.logic {
            StepLogic::Ref(r) => r.kind == LogicKind::Workflow && r.name == w.meta.name,
            StepLogic::Switch { cases, .. } => cases
                .iter()
                .any(|c| c.logic.kind == LogicKind::Workflow && c.logic.name == w.meta.name),
        }),
        _ => false,
    })
}

/// Reads of `inputs.<name>.<field>...` in a function against what the Workflow steps that
/// call it pass as `<name>` (a literal mapping, or `=steps.<label>...` or `=parent.spec...`
/// whose type is known). One such step that cannot give the field is enough, as the read
/// fails whenever that step runs it; so only reads that every run makes count: not under a
/// branch (`?:`, `&&`, `||`, a comprehension), nor where any expression of the function asks
/// `has()` of that input (a precondition may stop it first). FunctionTests are not callers
/// here: a test may give too little on purpose, and says so when it runs.
pub(crate) fn check_input_reads(
    ws: &Workspace,
    function: &Definition,
    exprs: &[&Expr],
    diags: &mut Vec<Diagnostic>,
) {
    let meta = function.meta();
    let id = FunctionId {
        kind: function.kind(),
        name: &meta.name,
        namespace: meta.namespace.as_deref(),
    };
    let callers: Vec<Caller> = callers(ws, &id)
        .into_iter()
        .filter(|c| matches!(c, Caller::Step { .. }))
        .collect();
    if callers.is_empty() {
        return;
    }
    let reads: Vec<Vec<crate::expr::FieldPath>> =
        exprs.iter().map(|e| e.field_paths("inputs")).collect();
    let tested = tested_paths(&reads);
    for paths in &reads {
        for path in paths.iter().filter(|p| !p.tested && !p.conditional) {
            let Some(((name, _), fields)) = path.fields.split_first() else {
                continue;
            };
            if fields.is_empty() || tested.iter().any(|t| t.first() == Some(name)) {
                continue;
            }
            let found = callers.iter().find_map(|caller| {
                let shape = caller.input(ws, name)?;
                Some((caller, shape.first_missing(fields)?))
            });
            if let Some((caller, (field, location, keys))) = found {
                diags.push(unknown_field(
                    location,
                    format!(
                        "`inputs.{name}` has no `{field}` when {} calls this",
                        caller.who()
                    ),
                    field,
                    &keys,
                    "it has",
                ));
            }
        }
    }
}

/// The shapes of the input `name` that a function's callers pass, where known (for an
/// editor: what `inputs.<name>.` has).
pub fn input_shapes<'w>(ws: &'w Workspace, function: &FunctionId, name: &str) -> Vec<Shape<'w>> {
    callers(ws, function)
        .iter()
        .filter_map(|caller| caller.input(ws, name))
        .collect()
}

/// One place that runs a function.
enum Caller<'w> {
    Step {
        workflow: &'w Workflow,
        step: &'w crate::model::Step,
        /// Whether another Workflow runs this one as a step (then its `parent` is not typed).
        runs_as_step: bool,
    },
    Test(&'w crate::model::FunctionTest),
}

impl<'w> Caller<'w> {
    fn who(&self) -> String {
        match self {
            Caller::Step { workflow, step, .. } => {
                format!("step `{}` of Workflow `{}`", step.label, workflow.meta.name)
            }
            Caller::Test(t) => format!("FunctionTest `{}`", t.meta.name),
        }
    }

    /// The shape of the input `name` it passes, when known.
    fn input(&self, ws: &'w Workspace, name: &str) -> Option<Shape<'w>> {
        match self {
            Caller::Step {
                workflow,
                step,
                runs_as_step,
            } => {
                let read = |e: &Expr| read_shape(ws, workflow, e, *runs_as_step);
                // Each item of what `forEach` loops over, when that is a list of known items.
                if let Some(each) = step.for_each.as_ref().filter(|f| f.input_key == name) {
                    return read(&each.item_in)?.items();
                }
                match Shape::Template(step.inputs.as_ref()?).field(name) {
                    Lookup::Has(Shape::Template(Template::Expr(e))) => read(e),
                    Lookup::Has(shape) => Some(shape),
                    _ => None,
                }
            }
            Caller::Test(t) => {
                let overridden = t.test_cases.iter().any(|c| {
                    c.input_overrides
                        .as_ref()
                        .is_some_and(|o| o.get(name).is_some())
                });
                match Shape::Json(t.inputs.as_ref()?).field(name) {
                    Lookup::Has(shape) if !overridden => Some(shape),
                    _ => None,
                }
            }
        }
    }
}

/// A function as its callers name it.
pub struct FunctionId<'a> {
    /// `ValueFunction` or `ResourceFunction`.
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

fn callers<'w>(ws: &'w Workspace, function: &FunctionId) -> Vec<Caller<'w>> {
    let mut out = Vec::new();
    for definition in &ws.definitions {
        match definition {
            Definition::Workflow(w) if w.meta.namespace.as_deref() == function.namespace => {
                out.extend(
                    w.steps
                        .iter()
                        .filter(|step| {
                            matches!(&step.logic, StepLogic::Ref(r) if r.kind.as_str() == function.kind && r.name == function.name)
                        })
                        .map(|step| Caller::Step {
                            workflow: w,
                            step,
                            runs_as_step: runs_as_step(ws, w),
                        }),
                );
            }
            Definition::FunctionTest(t)
                if t.function_name == function.name
                    && t.meta.namespace.as_deref() == function.namespace
                    && function.kind == t.function_kind.as_str() =>
            {
                out.push(Caller::Test(t));
            }
            _ => {}
        }
    }
    out
}

/// The shape of a value a Workflow passes as `=steps.<label>...` or `=parent.spec...`.
fn read_shape<'w>(
    ws: &'w Workspace,
    w: &'w Workflow,
    e: &Expr,
    runs_as_step: bool,
) -> Option<Shape<'w>> {
    let (root, fields) = e.plain_path()?;
    match (root, fields.split_first()) {
        ("steps", Some((label, rest))) => {
            step_result(ws, w, label, w.meta.namespace.as_deref())?.at(rest.iter().copied())
        }
        ("parent", Some((&"spec", _))) if !runs_as_step => {
            parent_shape(ws, w.crd_ref.as_ref()?)?.at(fields.iter().copied())
        }
        _ => None,
    }
}

/// K0501: `field` read where only `keys` can be, with the closest of them.
pub(crate) fn unknown_field(
    location: &Location,
    message: String,
    field: &str,
    keys: &[String],
    there: &str,
) -> Diagnostic {
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let hint = match crate::decode::closest(field, &names) {
        Some(s) => format!("did you mean `{s}`?"),
        None if keys.is_empty() => "nothing can be there".to_string(),
        None => format!("{there} {}", quoted_list(keys)),
    };
    Diagnostic::error(Code::UnknownField, location.clone(), message).with_hint(hint)
}

/// At most a dozen names: a Pod spec has forty fields, no one reads them all in a hint.
fn quoted_list(keys: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut list = keys
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        list.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    list
}

/// A step into a value: a mapping's key or a list's index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A resource body as written: compiled, or plain JSON (a ResourceTemplate).
#[derive(Clone, Copy)]
enum Body<'a> {
    Template(&'a Template),
    Json(&'a Json),
}

impl<'a> Body<'a> {
    fn entries(self) -> Option<Vec<(&'a str, Body<'a>)>> {
        match self {
            Body::Template(Template::Map(entries)) => Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str(), Body::Template(v)))
                    .collect(),
            ),
            Body::Template(Template::Literal(Json::Object(map)))
            | Body::Json(Json::Object(map)) => Some(
                map.iter()
                    .map(|(k, v)| (k.as_str(), Body::Json(v)))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn items(self) -> Option<Vec<Body<'a>>> {
        match self {
            Body::Template(Template::List(items)) => {
                Some(items.iter().map(Body::Template).collect())
            }
            Body::Template(Template::Literal(Json::Array(items)))
            | Body::Json(Json::Array(items)) => Some(items.iter().map(Body::Json).collect()),
            _ => None,
        }
    }

    /// A scalar's type, with the expression that makes it if one does.
    fn scalar(self) -> (Type, Option<&'a Expr>) {
        match self {
            Body::Template(Template::Expr(e)) => {
                (crate::types::infer(e.ast(), &mut Vec::new()), Some(&**e))
            }
            Body::Template(Template::Literal(value)) | Body::Json(value) => {
                (Type::of_json(value), None)
            }
            Body::Template(Template::List(_)) => (Type::List, None),
            Body::Template(Template::Map(_)) => (Type::Map, None),
        }
    }
}

/// What is wrong at a place in a resource body.
enum Problem<'a> {
    UnknownKey(Vec<String>),
    Mismatch {
        expected: &'a str,
        found: Type,
        expr: Option<&'a Expr>,
    },
}

/// Checks `body` against `shape`, depth first; `path` is where `body` is.
fn walk<'a>(
    shape: Shape<'a>,
    body: Body<'a>,
    path: &mut Vec<Step>,
    out: &mut Vec<(Vec<Step>, Problem<'a>)>,
) {
    let expected = match shape {
        Shape::Schema(schema) => schema.type_name(),
        Shape::Object { .. } => Some("object"),
        _ => return,
    };
    let mismatch = |found: Type, expr| {
        expected.and_then(|expected| {
            let fits = match shape {
                Shape::Schema(schema) => schema.accepts(found),
                _ => matches!(found, Type::Map | Type::Dyn | Type::Null),
            };
            (!fits).then_some(Problem::Mismatch {
                expected,
                found,
                expr,
            })
        })
    };
    if let Some(entries) = body.entries() {
        if let Some(problem) = mismatch(Type::Map, None) {
            out.push((path.clone(), problem));
            return;
        }
        // Koreo's compare directives, taken out before the resource is sent.
        for (key, value) in entries
            .into_iter()
            .filter(|(k, _)| !k.starts_with("x-koreo-"))
        {
            path.push(Step::Key(key.to_string()));
            match shape.field(key) {
                Lookup::Has(inner) => walk(inner, value, path, out),
                Lookup::Missing(keys) => out.push((path.clone(), Problem::UnknownKey(keys))),
                Lookup::Unknown => {}
            }
            path.pop();
        }
    } else if let Some(items) = body.items() {
        if let Some(problem) = mismatch(Type::List, None) {
            out.push((path.clone(), problem));
            return;
        }
        let Shape::Schema(schema) = shape else { return };
        let Some(item) = schema.items() else { return };
        for (i, value) in items.into_iter().enumerate() {
            path.push(Step::Index(i));
            walk(Shape::Schema(item), value, path, out);
            path.pop();
        }
    } else {
        let (found, expr) = body.scalar();
        if let Some(problem) = mismatch(found, expr) {
            out.push((path.clone(), problem));
        }
    }
}

/// The kind a ResourceFunction manages, as `koreo check` knows it.
fn target_shape<'w>(ws: &'w Workspace, f: &ResourceFunction) -> Option<Shape<'w>> {
    kind_schema(ws, &f.api_config.api_version, &f.api_config.kind)
}

/// A ResourceFunction's resource, overlays and reads of `resource` against its kind's schema.
pub(crate) fn check_resource_function(
    ws: &Workspace,
    f: &ResourceFunction,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(shape) = target_shape(ws, f) else {
        return;
    };
    let kind = f.api_config.kind.as_str();
    let mut bodies: Vec<(Vec<Step>, &Template)> = Vec::new();
    let at = |keys: &[&str]| {
        keys.iter()
            .map(|k| Step::Key(k.to_string()))
            .collect::<Vec<_>>()
    };
    if let TargetSource::Inline(t) = &f.target {
        bodies.push((at(&["spec", "resource"]), t));
    }
    for (i, overlay) in f.overlays.iter().enumerate() {
        if let OverlaySource::Inline(t) = &overlay.source {
            let mut path = at(&["spec", "overlays"]);
            path.extend([Step::Index(i), Step::Key("overlay".into())]);
            bodies.push((path, t));
        }
    }
    if let Some(t) = &f.create.overlay {
        bodies.push((at(&["spec", "create", "overlay"]), t));
    }
    let locator = Locator::new(ws, &f.meta.location);
    for (base, template) in bodies {
        report_body(
            &locator,
            kind,
            &base,
            shape,
            Body::Template(template),
            diags,
        );
    }
    // `resource` is the object as the server has it in postconditions and `return` only
    // (in overlays it is the body being built).
    let mut exprs: Vec<&Expr> = Vec::new();
    for condition in &f.postconditions {
        exprs.push(&condition.assert);
    }
    exprs.extend(f.ret.iter().flat_map(|t| t.expressions()).map(|e| &**e));
    check_object_reads(&exprs, "resource", shape, &with_article(kind), diags);
}

/// A ResourceTemplate's `template` against the schema of the kind it names.
pub(crate) fn check_resource_template(
    ws: &Workspace,
    t: &ResourceTemplate,
    diags: &mut Vec<Diagnostic>,
) {
    let (Some(api_version), Some(kind)) = (
        t.template["apiVersion"].as_str(),
        t.template["kind"].as_str(),
    ) else {
        return;
    };
    // A ResourceFunction's `apiConfig` may make another kind of it (Koreo allows it).
    let retyped = ws.definitions.iter().any(|d| match d {
        Definition::ResourceFunction(f) => {
            let named = match &f.target {
                TargetSource::TemplateRef(Template::Literal(Json::String(name))) => {
                    *name == t.meta.name
                }
                // A name computed at run time may be this template's.
                TargetSource::TemplateRef(_) => true,
                TargetSource::Inline(_) => false,
            };
            named && (f.api_config.api_version != api_version || f.api_config.kind != kind)
        }
        _ => false,
    });
    if retyped {
        return;
    }
    let Some(shape) = kind_schema(ws, api_version, kind) else {
        return;
    };
    let base = [Step::Key("spec".into()), Step::Key("template".into())];
    report_body(
        &Locator::new(ws, &t.meta.location),
        kind,
        &base,
        shape,
        Body::Json(&t.template),
        diags,
    );
}

fn report_body(
    locator: &Locator,
    kind: &str,
    base: &[Step],
    shape: Shape<'_>,
    body: Body<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut found = Vec::new();
    walk(shape, body, &mut Vec::new(), &mut found);
    for (path, problem) in found {
        let (parent, last) = match path.split_last() {
            Some((Step::Key(key), parent)) => (dotted(parent), key.as_str()),
            _ => (dotted(&path), ""),
        };
        let mut full = base.to_vec();
        full.extend(path.iter().cloned());
        diags.push(match problem {
            Problem::UnknownKey(keys) => {
                let place = if parent.is_empty() {
                    String::new()
                } else {
                    format!(" under `{parent}`")
                };
                unknown_field(
                    &locator.locate(&full, true),
                    format!("{} has no field `{last}`{place}", with_article(kind)),
                    last,
                    &keys,
                    "the fields there are",
                )
            }
            Problem::Mismatch {
                expected,
                found,
                expr,
            } => {
                let location = match expr {
                    Some(e) => e.location.clone(),
                    None => locator.locate(&full, false),
                };
                Diagnostic::error(
                    Code::TypeMismatch,
                    location,
                    format!(
                        "`{}` of {} is {}, not {}",
                        dotted(&path),
                        with_article(kind),
                        type_phrase(expected),
                        type_article(found)
                    ),
                )
                .with_hint(mismatch_hint(expected, found, expr.is_some()))
            }
        });
    }
}

/// `a Deployment`, `an Ingress`.
fn with_article(kind: &str) -> String {
    let vowel = kind.starts_with(['A', 'E', 'I', 'O', 'U']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

fn type_article(ty: Type) -> String {
    match ty {
        Type::Int => "an int".into(),
        Type::Map => "a map".into(),
        Type::List => "a list".into(),
        Type::Null => "null".into(),
        other => format!("a {}", other.name()),
    }
}

fn mismatch_hint(expected: &str, found: Type, computed: bool) -> String {
    match (expected, found, computed) {
        ("integer" | "number", Type::String, false) => "write the number without quotes".into(),
        ("integer" | "number", Type::String, true) => "convert it: `int(...)`".into(),
        ("string", Type::Int | Type::Uint | Type::Double | Type::Bool, false) => {
            "quote it, so that YAML reads it as a string".into()
        }
        ("string", _, true) => "convert it: `string(...)`".into(),
        (expected, _, _) => format!("give {} here", type_phrase(expected)),
    }
}

/// Finds places in one document, for what is reported about it: in the workspace's documents
/// when it keeps them (the language server, the controller), or else in the file read again,
/// once, as this is only needed when there is something to report.
struct Locator<'a> {
    ws: &'a Workspace,
    document: &'a Location,
    parsed: std::cell::OnceCell<Option<crate::yaml::Document>>,
}

impl<'a> Locator<'a> {
    fn new(ws: &'a Workspace, document: &'a Location) -> Locator<'a> {
        Locator {
            ws,
            document,
            parsed: std::cell::OnceCell::new(),
        }
    }

    /// Where `path` is (the key itself, or its value); the whole document when it cannot be
    /// found.
    fn locate(&self, path: &[Step], key: bool) -> Location {
        let start = self.document.span.start.offset;
        let holds =
            |span: crate::source::Span| span.start.offset <= start && start <= span.end.offset;
        let kept = self
            .ws
            .documents
            .iter()
            .filter(|d| std::sync::Arc::ptr_eq(&d.file, &self.document.file))
            .find(|d| holds(d.root.span))
            .map(|d| &d.root);
        let root = kept.or_else(|| {
            self.parsed
                .get_or_init(|| {
                    let docs = crate::yaml::parse_documents(&self.document.file.text).ok()?;
                    docs.into_iter().find(|d| holds(d.span))
                })
                .as_ref()
                .map(|d| &d.root)
        });
        root.and_then(|root| span_at(root, path, key))
            .map(|span| Location::new(&self.document.file, span))
            .unwrap_or_else(|| self.document.clone())
    }
}

fn span_at(root: &crate::yaml::Node, path: &[Step], key: bool) -> Option<crate::source::Span> {
    let mut node = root;
    let mut span = node.span;
    for step in path {
        match step {
            Step::Key(k) => {
                let (found_key, value) = node.as_map()?.iter().find(|(key, _)| key.text == *k)?;
                span = if key { found_key.span } else { value.span };
                node = value;
            }
            Step::Index(i) => {
                node = node.as_seq()?.get(*i)?;
                span = node.span;
            }
        }
    }
    Some(span)
}
