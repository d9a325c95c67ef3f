//! Static analysis: workflow step graphs, references between definitions, inputs that a
//! function needs against the inputs its callers give.

use std::collections::BTreeSet;

use petgraph::algo::toposort;
use petgraph::graph::DiGraph;

use crate::codes::Code;
use crate::expr::Expr;
use crate::load::Workspace;
use crate::model::{
    Definition, FunctionKind, FunctionTest, LogicKind, LogicRef, OverlaySource, ResourceFunction,
    Step, StepLogic, TargetSource, ValueFunction, Workflow, WorkflowTest,
};
use crate::source::Diagnostic;
use serde_json::Value as Json;

/// The steps of a workflow as a dependency graph.
#[derive(Clone, Debug, Default)]
pub struct StepGraph {
    /// For each step (by index), the steps it reads.
    pub dependencies: Vec<Vec<usize>>,
    /// Steps in an order where every step comes after what it reads.
    pub order: Vec<usize>,
    /// What is wrong with it (unknown, later or duplicate labels), for `check` to report.
    pub problems: Vec<Diagnostic>,
}

impl StepGraph {
    /// Steps that read step `i`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.dependencies
            .iter()
            .enumerate()
            .filter(move |(_, deps)| deps.contains(&i))
            .map(|(j, _)| j)
    }
}

/// Expressions of a step that may read `steps`.
fn step_expressions(step: &Step) -> Vec<&Expr> {
    let mut out: Vec<&Expr> = Vec::new();
    if let Some(inputs) = &step.inputs {
        out.extend(inputs.expressions().into_iter().map(|e| &**e));
    }
    if let Some(e) = &step.skip_if {
        out.push(e);
    }
    if let Some(f) = &step.for_each {
        out.push(&f.item_in);
    }
    if let StepLogic::Switch { switch_on, .. } = &step.logic {
        out.push(switch_on);
    }
    out
}

/// Builds the step graph from the `steps.<label>` reads, reporting unknown, later and duplicate
/// labels.
pub fn step_graph(workflow: &Workflow, diags: &mut Vec<Diagnostic>) -> StepGraph {
    let steps = &workflow.steps;
    for (i, step) in steps.iter().enumerate() {
        if let Some(first) = steps[..i].iter().find(|s| s.label == step.label) {
            diags.push(
                Diagnostic::error(
                    Code::DuplicateStep,
                    step.label_location.clone(),
                    format!("two steps are labelled `{}`", step.label),
                )
                .with_hint(format!(
                    "the first is at {}; labels must be unique",
                    first.label_location
                )),
            );
        }
    }
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    let mut dependencies = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for expr in step_expressions(step) {
            for reference in expr.reads("steps") {
                let Some(label) = &reference.field else {
                    continue;
                };
                match steps.iter().position(|s| &s.label == label) {
                    Some(j) if j < i => {
                        if !dependencies[i].contains(&j) {
                            dependencies[i].push(j);
                            graph.add_edge(nodes[j], nodes[i], ());
                        }
                    }
                    Some(j) if j == i => diags.push(
                        Diagnostic::error(
                            Code::StepOrder,
                            reference.location.clone(),
                            format!("step `{}` reads its own result `steps.{label}`", step.label),
                        )
                        .with_hint("a step can read only the steps listed before it"),
                    ),
                    Some(_) => diags.push(
                        Diagnostic::error(
                            Code::StepOrder,
                            reference.location.clone(),
                            format!(
                                "step `{}` reads `steps.{label}`, which is listed after it",
                                step.label
                            ),
                        )
                        .with_hint(format!("move step `{label}` above step `{}`", step.label)),
                    ),
                    None => {
                        let known: Vec<_> = steps[..i]
                            .iter()
                            .map(|s| format!("`{}`", s.label))
                            .collect();
                        let hint = if known.is_empty() {
                            "no step comes before this one".to_string()
                        } else {
                            format!("steps before this one: {}", known.join(", "))
                        };
                        diags.push(
                            Diagnostic::error(
                                Code::UnknownStep,
                                reference.location.clone(),
                                format!("step `{}` reads `steps.{label}`, but there is no step `{label}`", step.label),
                            )
                            .with_hint(hint),
                        );
                    }
                }
            }
        }
    }
    // Reads go only to earlier steps, so the graph has no cycle; toposort still orders it.
    let order = toposort(&graph, None)
        .map(|sorted| sorted.into_iter().map(|n| graph[n]).collect())
        .unwrap_or_else(|_| (0..steps.len()).collect());
    StepGraph {
        dependencies,
        order,
        problems: Vec::new(),
    }
}

/// Where each first-level input is read (`inputs.x` -> `x`).
fn first_level(exprs: &[&Expr], root: &str) -> BTreeSet<String> {
    exprs
        .iter()
        .flat_map(|e| e.reads(root))
        .filter_map(|r| r.field.clone())
        .collect()
}

fn conditions_exprs<'a>(conditions: &'a [crate::model::Condition], out: &mut Vec<&'a Expr>) {
    for c in conditions {
        out.push(&c.assert);
        use crate::model::ConditionOutcome as O;
        match &c.outcome {
            O::Ok => {}
            O::Skip { message }
            | O::DepSkip { message }
            | O::PermFail { message }
            | O::Retry { message, .. } => {
                out.extend(message.expressions().into_iter().map(|e| &**e));
            }
        }
    }
}

fn templates_exprs<'a>(templates: &[Option<&'a crate::expr::Template>], out: &mut Vec<&'a Expr>) {
    for t in templates.iter().flatten() {
        out.extend(t.expressions().into_iter().map(|e| &**e));
    }
}

/// Every expression of a ValueFunction.
pub fn value_function_exprs(f: &ValueFunction) -> Vec<&Expr> {
    let mut out = Vec::new();
    conditions_exprs(&f.preconditions, &mut out);
    templates_exprs(&[f.locals.as_ref(), f.ret.as_ref()], &mut out);
    out
}

/// Every expression of a ResourceFunction that can read its `inputs`.
pub fn resource_function_exprs(f: &ResourceFunction) -> Vec<&Expr> {
    let mut out = Vec::new();
    conditions_exprs(&f.preconditions, &mut out);
    conditions_exprs(&f.postconditions, &mut out);
    let target = match &f.target {
        TargetSource::Inline(t) | TargetSource::TemplateRef(t) => t,
    };
    templates_exprs(
        &[
            f.locals.as_ref(),
            Some(&f.api_config.name),
            f.api_config.namespace.as_ref(),
            Some(target),
            f.create.overlay.as_ref(),
            f.ret.as_ref(),
        ],
        &mut out,
    );
    for overlay in &f.overlays {
        if let Some(e) = &overlay.skip_if {
            out.push(e);
        }
        match &overlay.source {
            OverlaySource::Inline(t) => templates_exprs(&[Some(t)], &mut out),
            OverlaySource::ValueFunction { inputs, .. } => {
                templates_exprs(&[inputs.as_ref()], &mut out)
            }
        }
    }
    out
}

/// The first-level inputs a definition reads: `inputs.x` of functions, `parent.x` of workflows.
pub fn expected_inputs(definition: &Definition) -> BTreeSet<String> {
    match definition {
        Definition::ValueFunction(f) => first_level(&value_function_exprs(f), "inputs"),
        Definition::ResourceFunction(f) => first_level(&resource_function_exprs(f), "inputs"),
        Definition::Workflow(w) => {
            let exprs: Vec<&Expr> = w.steps.iter().flat_map(step_expressions).collect();
            first_level(&exprs, "parent")
        }
        _ => BTreeSet::new(),
    }
}

fn logic_kind_name(kind: LogicKind) -> &'static str {
    kind.as_str()
}

/// Checks across definitions: references resolve, inputs match, workflow graphs are sound.
pub fn check(ws: &Workspace) -> Vec<Diagnostic> {
    let mut diags: Vec<Diagnostic> = ws
        .definitions
        .iter()
        .flat_map(|d| check_definition(ws, d))
        .collect();
    check_triggers(ws, &mut diags);
    diags
}

/// The cross-file checks of one definition (all but the one-workflow-per-kind check).
pub fn check_definition(ws: &Workspace, definition: &Definition) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let namespace = definition.meta().namespace.as_deref();
    match definition {
        Definition::Workflow(w) => check_workflow(ws, w, namespace, &mut diags),
        Definition::ResourceFunction(f) => check_resource_function(ws, f, namespace, &mut diags),
        Definition::FunctionTest(t) => check_function_test(ws, t, namespace, &mut diags),
        Definition::WorkflowTest(t) => check_workflow_test(ws, t, namespace, &mut diags),
        _ => {}
    }
    diags
}

/// One kind, one workflow (as in Koreo): the controller will not guess which of two workflows
/// a parent belongs to. A warning: Koreo's own test fixtures share trigger kinds.
fn check_triggers(ws: &Workspace, diags: &mut Vec<Diagnostic>) {
    let mut first: std::collections::HashMap<(String, String), &str> = Default::default();
    for (crd, w) in ws.triggers() {
        let key = (crd.api_version(), crd.kind.clone());
        match first.get(&key) {
            None => {
                first.insert(key, &w.meta.name);
            }
            Some(other) => diags.push(Diagnostic::warning(
                Code::SharedTrigger,
                w.meta.name_location.clone(),
                format!(
                    "workflows `{other}` and `{}` are both triggered by {} {}: the controller runs neither for them",
                    w.meta.name, key.0, key.1
                ),
            ).with_hint("give one of them another `crdRef`, or call one from the other as a step")),
        }
    }
}

fn resolve<'w>(
    ws: &'w Workspace,
    r: &LogicRef,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'w Definition> {
    let kind = logic_kind_name(r.kind);
    let found = ws.find(kind, &r.name, namespace);
    let rejected = ws.rejected.iter().any(|x| x.is(kind, &r.name));
    if found.is_none() && rejected {
        // It exists but did not validate: its own errors say why; this one says where it hurts.
        diags.push(
            Diagnostic::error(
                Code::ReferenceHasErrors,
                r.location.clone(),
                format!("{kind} `{}` has errors, so it cannot be used here", r.name),
            )
            .with_hint(format!("fix the errors reported on {kind} `{}`", r.name)),
        );
    } else if found.is_none() {
        let elsewhere: Vec<_> = crate::model::KINDS
            .iter()
            .filter(|k| **k != kind && ws.find(k, &r.name, namespace).is_some())
            .collect();
        let hint = match elsewhere.first() {
            Some(other) => format!("there is a {other} named `{}`; check `kind`", r.name),
            None => format!(
                "no {kind} named `{}` is loaded; check the name or load the file that defines it",
                r.name
            ),
        };
        diags.push(
            Diagnostic::error(
                Code::NotFound,
                r.location.clone(),
                format!("{kind} `{}` not found", r.name),
            )
            .with_hint(hint),
        );
    }
    found
}

fn check_workflow(
    ws: &Workspace,
    w: &Workflow,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    diags.extend(w.graph.problems.iter().cloned());
    check_step_results(ws, w, namespace, diags);
    check_parent_reads(ws, w, diags);
    for step in &w.steps {
        let refs: Vec<&LogicRef> = match &step.logic {
            StepLogic::Ref(r) => vec![r],
            StepLogic::Switch { cases, .. } => cases.iter().map(|c| &c.logic).collect(),
        };
        let mut provided: BTreeSet<String> = step
            .inputs
            .as_ref()
            .map(|t| match t {
                crate::expr::Template::Map(entries) => {
                    entries.iter().map(|(k, _)| k.clone()).collect()
                }
                crate::expr::Template::Literal(serde_json::Value::Object(m)) => {
                    m.keys().cloned().collect()
                }
                _ => BTreeSet::new(),
            })
            .unwrap_or_default();
        if let Some(f) = &step.for_each {
            provided.insert(f.input_key.clone());
        }
        for r in refs {
            let Some(target) = resolve(ws, r, namespace, diags) else {
                continue;
            };
            let expected = expected_inputs(target);
            for missing in expected.difference(&provided) {
                diags.push(
                    Diagnostic::error(
                        Code::MissingInput,
                        step.label_location.clone(),
                        format!(
                            "step `{}` does not give input `{missing}`, which {} `{}` reads",
                            step.label,
                            target.kind(),
                            r.name
                        ),
                    )
                    .with_hint(format!("add `{missing}:` under the step's `inputs`")),
                );
            }
            for extra in provided
                .difference(&expected)
                .filter(|k| !k.starts_with('_'))
            {
                diags.push(
                    Diagnostic::warning(
                        Code::UnusedInput,
                        step.label_location.clone(),
                        format!(
                            "step `{}` gives input `{extra}`, which {} `{}` never reads",
                            step.label,
                            target.kind(),
                            r.name
                        ),
                    )
                    .with_hint("remove it, or prefix its name with `_` if it is there on purpose"),
                );
            }
        }
    }
}

/// Reads of `steps.<label>.<field>...` against what that step's function returns, where its
/// `return` says so: literal keys, at any depth until a value is an expression. A step that
/// loops, switches or runs a Workflow, a function without `return`, and reads under `has()`
/// are not checked: nothing is reported unless the field can never be there.
fn check_step_results(
    ws: &Workspace,
    w: &Workflow,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    for step in &w.steps {
        for expr in step_expressions(step) {
            let paths = expr.field_paths("steps");
            for path in paths.iter().filter(|p| !p.tested) {
                let Some(((label, _), fields)) = path.fields.split_first() else {
                    continue;
                };
                // Any `has()` on this step's result in the expression: its reads may be guarded.
                let guarded = paths
                    .iter()
                    .any(|p| p.tested && p.fields.first().is_some_and(|(l, _)| l == label));
                let Some(returned) = returned_by(ws, w, label, namespace).filter(|_| !guarded)
                else {
                    continue;
                };
                if let Some((field, location, keys)) = missing_field(returned, fields) {
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

/// Reads of `parent.spec.<field>...` against the parent's CRD, when the workspace has it: a
/// field its schema cannot have is K0501. Where the schema lets anything in (preserved unknown
/// fields, a map's values, a list, a union) nothing is reported, nor under `has()`, nor for a
/// Workflow that another one runs as a step (its `parent` is that step's inputs then).
fn check_parent_reads(ws: &Workspace, w: &Workflow, diags: &mut Vec<Diagnostic>) {
    let Some(crd) = &w.crd_ref else { return };
    let Some(spec) = crd_spec_schema(&ws.objects, crd) else {
        return;
    };
    let run_as_step = ws.definitions.iter().any(|d| match d {
        Definition::Workflow(other) => other.steps.iter().any(|s| match &s.logic {
            StepLogic::Ref(r) => r.kind == LogicKind::Workflow && r.name == w.meta.name,
            StepLogic::Switch { cases, .. } => cases
                .iter()
                .any(|c| c.logic.kind == LogicKind::Workflow && c.logic.name == w.meta.name),
        }),
        _ => false,
    });
    if run_as_step {
        return;
    }
    for step in &w.steps {
        for expr in step_expressions(step) {
            let paths = expr.field_paths("parent");
            if paths.iter().any(|p| p.tested) {
                continue;
            }
            for path in &paths {
                let Some(((first, _), fields)) = path.fields.split_first() else {
                    continue;
                };
                if first != "spec" {
                    continue;
                }
                if let Some((field, location, keys)) = missing_in_schema(spec, fields) {
                    diags.push(unknown_field(
                        location,
                        format!("the {} CRD has no `{field}` here", crd.kind),
                        field,
                        &keys,
                        "it declares",
                    ));
                }
            }
        }
    }
}

/// K0501: `field` read where only `keys` can be, with the closest of them.
fn unknown_field(
    location: &crate::source::Location,
    message: String,
    field: &str,
    keys: &[String],
    there: &str,
) -> Diagnostic {
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let suggestion = crate::decode::closest(field, &names)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    Diagnostic::error(Code::UnknownField, location.clone(), message)
        .with_hint(format!("{suggestion}{there} {}", quoted_list(keys)))
}

fn quoted_list(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema of `spec` in the CRD among `objects` for a kind, at a version.
pub fn crd_spec_schema<'o>(
    objects: impl IntoIterator<Item = &'o crate::load::Object>,
    crd: &crate::model::CrdRef,
) -> Option<&'o Json> {
    objects
        .into_iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| &o.value["spec"])
        .filter(|spec| spec["group"] == crd.api_group.as_str())
        .filter(|spec| spec["names"]["kind"] == crd.kind.as_str())
        .flat_map(|spec| spec["versions"].as_array().into_iter().flatten())
        .find(|v| v["name"] == crd.version.as_str())
        .map(|v| &v["schema"]["openAPIV3Schema"]["properties"]["spec"])
        .filter(|spec| spec.is_object())
}

/// The first of `fields` that a value of `schema` cannot have (OpenAPI v3, as in a CRD), with
/// where it is read and the fields the schema declares there.
fn missing_in_schema<'f>(
    schema: &Json,
    fields: &'f [(String, crate::source::Location)],
) -> Option<(&'f str, &'f crate::source::Location, Vec<String>)> {
    let ((field, location), rest) = fields.split_first()?;
    let open = schema["x-kubernetes-preserve-unknown-fields"] == true
        || ["anyOf", "oneOf", "allOf", "not"]
            .iter()
            .any(|k| schema.get(k).is_some());
    if open || schema["type"] != "object" {
        return None;
    }
    match schema["properties"].as_object() {
        Some(properties) => match properties.get(field) {
            Some(inner) => missing_in_schema(inner, rest),
            None if schema.get("additionalProperties").is_some() => None,
            None => Some((
                field.as_str(),
                location,
                properties.keys().cloned().collect(),
            )),
        },
        // A map: any key, values of one schema.
        None => missing_in_schema(&schema["additionalProperties"], rest),
    }
}

/// The `return` of the function the step labelled `label` runs, when one value is known: a
/// plain `ref` to a ValueFunction or ResourceFunction, without `forEach`.
fn returned_by<'w>(
    ws: &'w Workspace,
    w: &Workflow,
    label: &str,
    namespace: Option<&str>,
) -> Option<&'w crate::expr::Template> {
    let step = w.steps.iter().find(|s| s.label == label)?;
    let StepLogic::Ref(r) = &step.logic else {
        return None;
    };
    if step.for_each.is_some() {
        return None;
    }
    match r.kind {
        LogicKind::ValueFunction => ws.value_function(&r.name, namespace)?.ret.as_ref(),
        LogicKind::ResourceFunction => ws.resource_function(&r.name, namespace)?.ret.as_ref(),
        LogicKind::Workflow => None,
    }
}

/// The first field of `fields` that `value` cannot have, with where it is read and the keys
/// there are. Below an expression, a list or a scalar nothing is known.
fn missing_field<'f>(
    value: &crate::expr::Template,
    fields: &'f [(String, crate::source::Location)],
) -> Option<(&'f str, &'f crate::source::Location, Vec<String>)> {
    use crate::expr::Template;
    use serde_json::Value as Json;
    let ((field, location), rest) = fields.split_first()?;
    let missing = |keys: Vec<String>| Some((field.as_str(), location, keys));
    match value {
        Template::Map(entries) => match entries.iter().find(|(k, _)| k == field) {
            Some((_, inner)) => missing_field(inner, rest),
            None => missing(entries.iter().map(|(k, _)| k.clone()).collect()),
        },
        Template::Literal(Json::Object(map)) => match map.get(field) {
            Some(inner) => missing_field(&Template::Literal(inner.clone()), rest),
            None => missing(map.keys().cloned().collect()),
        },
        _ => None,
    }
}

fn check_resource_function(
    ws: &Workspace,
    f: &ResourceFunction,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    if let TargetSource::TemplateRef(crate::expr::Template::Literal(serde_json::Value::String(
        name,
    ))) = &f.target
        && ws.resource_template(name, namespace).is_none()
    {
        diags.push(
            Diagnostic::error(
                Code::NotFound,
                f.meta.location.clone(),
                format!("ResourceTemplate `{name}` not found"),
            )
            .with_hint("check `spec.resourceTemplateRef.name`, or load the file that defines it"),
        );
    }
    for overlay in &f.overlays {
        let OverlaySource::ValueFunction {
            name,
            name_location,
            inputs,
        } = &overlay.source
        else {
            continue;
        };
        let r = LogicRef {
            kind: LogicKind::ValueFunction,
            name: name.clone(),
            location: name_location.clone(),
        };
        let Some(target) = resolve(ws, &r, namespace, diags) else {
            continue;
        };
        let provided: BTreeSet<String> = match inputs {
            Some(crate::expr::Template::Map(entries)) => {
                entries.iter().map(|(k, _)| k.clone()).collect()
            }
            Some(crate::expr::Template::Literal(serde_json::Value::Object(m))) => {
                m.keys().cloned().collect()
            }
            _ => BTreeSet::new(),
        };
        for missing in expected_inputs(target).difference(&provided) {
            diags.push(
                Diagnostic::error(
                    Code::MissingInput,
                    name_location.clone(),
                    format!("overlay ValueFunction `{name}` reads `inputs.{missing}`, which this overlay's `inputs` do not give"),
                )
                .with_hint(format!("add `{missing}:` under the overlay's `inputs` (an overlay function sees only those, plus `resource`)")),
            );
        }
    }
}

/// The workflow under test exists and can be triggered (has a `crdRef`).
fn check_workflow_test(
    ws: &Workspace,
    t: &WorkflowTest,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    let r = LogicRef {
        kind: LogicKind::Workflow,
        name: t.workflow_name.clone(),
        location: t.workflow_location.clone(),
    };
    if let Some(Definition::Workflow(w)) = resolve(ws, &r, namespace, diags)
        && w.crd_ref.is_none()
    {
        diags.push(
            Diagnostic::error(
                Code::NoTrigger,
                t.workflow_location.clone(),
                format!(
                    "Workflow `{}` has no `crdRef`: a WorkflowTest needs the kind of parent that triggers it",
                    w.meta.name
                ),
            )
            .with_hint("test it through a workflow that calls it as a step"),
        );
    }
}

fn check_function_test(
    ws: &Workspace,
    t: &FunctionTest,
    namespace: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    let kind = match t.function_kind {
        FunctionKind::ResourceFunction => LogicKind::ResourceFunction,
        FunctionKind::ValueFunction => LogicKind::ValueFunction,
    };
    let r = LogicRef {
        kind,
        name: t.function_name.clone(),
        location: t.function_location.clone(),
    };
    let Some(function) = resolve(ws, &r, namespace, diags) else {
        return;
    };
    let mut provided: BTreeSet<String> = t
        .inputs
        .as_ref()
        .and_then(|i| i.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for case in &t.test_cases {
        if let Some(m) = case.input_overrides.as_ref().and_then(|i| i.as_object()) {
            provided.extend(m.keys().cloned());
        }
    }
    let location = t
        .inputs_location
        .clone()
        .unwrap_or_else(|| t.meta.name_location.clone());
    for missing in expected_inputs(function).difference(&provided) {
        diags.push(
            Diagnostic::error(
                Code::MissingInput,
                location.clone(),
                format!(
                    "the test gives no input `{missing}`, which {} `{}` reads",
                    function.kind(),
                    t.function_name
                ),
            )
            .with_hint(format!("add `{missing}:` under `spec.inputs`")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_workflows_on_one_kind_are_flagged_at_the_second() {
        let workflow = |name: &str| {
            format!(
                "apiVersion: koreo.dev/v1beta1\nkind: Workflow\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  crdRef: {{apiGroup: example.dev, version: v1, kind: App}}\n  steps:\n  - label: one\n    ref: {{kind: ValueFunction, name: f}}\n"
            )
        };
        let text = format!(
            "{}---\n{}---\napiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {{name: f, namespace: default}}\nspec:\n  return: {{a: 1}}\n",
            workflow("first"),
            workflow("second")
        );
        let ws = Workspace::load_str("w.koreo", text);
        let found: Vec<Diagnostic> = check(&ws)
            .into_iter()
            .filter(|d| d.message.contains("both triggered"))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].is_error());
        assert!(found[0].message.contains("`first` and `second`"));
        assert_eq!(
            found[0].location.span.start.line, 12,
            "at the second's name"
        );
    }

    #[test]
    fn a_reference_to_a_definition_with_errors_says_so() {
        let text = "apiVersion: koreo.dev/v1beta1\nkind: FunctionTest\nmetadata: {name: t, namespace: default}\nspec:\n  functionRef: {kind: ValueFunction, name: f}\n  testCases: [{expectReturn: {a: 1}}]\n---\napiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {name: f, namespace: default}\nspec:\n  retrun: {a: 1}\n";
        let ws = Workspace::load_str("t.koreo", text);
        let found = check(&ws);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "ValueFunction `f` has errors, so it cannot be used here"
        );
    }

    #[test]
    fn a_workflow_test_names_a_workflow_that_exists() {
        let text = "apiVersion: koreo.dev/v1beta1\nkind: WorkflowTest\nmetadata: {name: t, namespace: default}\nspec:\n  workflowRef: {name: helo}\n  parent: {metadata: {name: p}}\n  testCases: [{label: one}]\n";
        let ws = Workspace::load_str("t.koreo", text);
        assert!(ws.diagnostics.is_empty(), "{:?}", ws.diagnostics);
        let found = check(&ws);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("`helo`"), "{}", found[0].message);
        assert_eq!(found[0].location.span.start.line, 5);
    }
}
