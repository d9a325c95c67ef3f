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
pub(crate) fn step_expressions(step: &Step) -> Vec<&Expr> {
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
        Definition::ResourceFunction(f) => {
            check_resource_function(ws, f, namespace, &mut diags);
            crate::typecheck::check_resource_function(ws, f, &mut diags);
            let exprs = resource_function_exprs(f);
            crate::typecheck::check_input_reads(ws, definition, &exprs, &mut diags);
        }
        Definition::ValueFunction(f) => {
            let exprs = value_function_exprs(f);
            crate::typecheck::check_input_reads(ws, definition, &exprs, &mut diags);
        }
        Definition::ResourceTemplate(t) => {
            crate::typecheck::check_resource_template(ws, t, &mut diags)
        }
        Definition::FunctionTest(t) => check_function_test(ws, t, namespace, &mut diags),
        Definition::WorkflowTest(t) => check_workflow_test(ws, t, namespace, &mut diags),
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
    crate::typecheck::check_workflow_reads(ws, w, namespace, diags);
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
