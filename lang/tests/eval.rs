//! Pure evaluation of functions and workflow steps.

use std::sync::Arc;

use koreo_lang::eval::{
    self, Action, Definitions, Outcome, StepContext, StepPlan, choose_case, combine, plan_step,
};
use koreo_lang::model::{Definition, ResourceTemplate, ValueFunction};
use koreo_lang::{Workspace, analysis};
use serde_json::{Value, json};

fn workspace(yaml: &str) -> Workspace {
    let ws = Workspace::load_str("test.koreo", yaml);
    let errors: Vec<_> = ws
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    ws
}

impl Definitions for WorkspaceDefs<'_> {
    fn resource_template(&self, name: &str) -> Option<Arc<ResourceTemplate>> {
        self.0.resource_template(name, None).cloned()
    }
    fn value_function(&self, name: &str) -> Option<Arc<ValueFunction>> {
        self.0.value_function(name, None).cloned()
    }
}
struct WorkspaceDefs<'a>(&'a Workspace);

const VF: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: vf}
spec:
  preconditions:
  - assert: =inputs.n > 0
    permFail:
      message: ="n must be positive, got " + string(inputs.n)
  - assert: =inputs.n != 1
    skip: {message: one is skipped}
  - assert: =inputs.n != 2
    retry: {message: two waits, delay: 7}
  - assert: =inputs.n != 3
    ok: {}
  - assert: =inputs.n != 4
    depSkip: {message: four}
  locals:
    double: =inputs.n * 2
  return:
    n: =inputs.n
    double: =locals.double
    nested: {x: =locals.double + 1}
"#;

fn run_vf(n: i64) -> Outcome {
    let ws = workspace(VF);
    eval::run_value_function(
        ws.value_function("vf", None).unwrap(),
        &json!({"n": n}),
        None,
    )
}

#[test]
fn preconditions_decide_in_order() {
    match run_vf(0) {
        Outcome::PermFail { message, .. } => assert_eq!(message, "n must be positive, got 0"),
        other => panic!("{other}"),
    }
    assert!(matches!(run_vf(1), Outcome::Skip { message, .. } if message == "one is skipped"));
    assert!(matches!(run_vf(2), Outcome::Retry { delay: 7, .. }));
    // `ok` stops checking: the depSkip after it is not reached.
    assert_eq!(
        run_vf(3),
        Outcome::Ok(json!({"n": 3, "double": 6, "nested": {"x": 7}}))
    );
    assert!(matches!(run_vf(4), Outcome::DepSkip { .. }));
    assert_eq!(
        run_vf(5),
        Outcome::Ok(json!({"n": 5, "double": 10, "nested": {"x": 11}}))
    );
}

#[test]
fn return_overlays_onto_a_given_resource() {
    let ws = workspace(VF);
    let base = json!({"keep": true, "nested": {"y": 1}});
    let out = eval::run_value_function(
        ws.value_function("vf", None).unwrap(),
        &json!({"n": 5}),
        Some(&base),
    );
    assert_eq!(
        out,
        Outcome::Ok(json!({"keep": true, "nested": {"y": 1, "x": 11}, "n": 5, "double": 10}))
    );
}

const RF: &str = r#"
apiVersion: koreo.dev/v1beta1
kind: ResourceTemplate
metadata: {name: base}
spec:
  template:
    apiVersion: v1
    kind: Other
    metadata: {name: ignored, labels: {app: base}}
    data: {fromTemplate: "yes"}
---
apiVersion: koreo.dev/v1beta1
kind: ValueFunction
metadata: {name: add-label}
spec:
  return:
    metadata:
      labels:
        extra: =inputs.value
---
apiVersion: koreo.dev/v1beta1
kind: ResourceFunction
metadata: {name: rf}
spec:
  locals:
    name: =inputs.name + "-cm"
  apiConfig:
    apiVersion: v1
    kind: ConfigMap
    name: =locals.name
    namespace: =inputs.ns
  resourceTemplateRef:
    name: base
  overlays:
  - overlay:
      data:
        count: =string(inputs.count)
  - overlayRef: {kind: ValueFunction, name: add-label}
    inputs:
      value: =inputs.name
  - skipIf: =inputs.count > 1
    overlay:
      data: {small: "true"}
  create:
    delay: 5
    overlay:
      metadata:
        annotations: {createdBy: koreo}
  update:
    patch: {delay: 9}
  postconditions:
  - assert: =has(resource.status)
    retry: {message: not ready, delay: 3}
  return:
    name: =resource.metadata.name
"#;

#[test]
fn resource_function_phases() {
    let ws = workspace(RF);
    let f = ws.resource_function("rf", None).unwrap();
    let defs = WorkspaceDefs(&ws);
    let inputs = json!({"name": "app", "ns": "prod", "count": 2});
    let prepared = eval::prepare_resource(f, &inputs, &defs).unwrap();
    assert_eq!(prepared.id.to_string(), "ConfigMap:prod:app-cm");
    assert_eq!(
        prepared.target,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "app-cm", "labels": {"app": "base", "extra": "app"}, "namespace": "prod"},
            "data": {"fromTemplate": "yes", "count": "2"}
        })
    );

    // Absent: create, with the create-only overlay, then wait.
    let Action::Create { body, owned, then } = eval::decide(f, &inputs, &prepared, None).unwrap()
    else {
        panic!("expected a create")
    };
    assert!(owned);
    assert_eq!(body["metadata"]["annotations"]["createdBy"], "koreo");
    assert!(body["metadata"]["annotations"]["koreo.dev/last-applied-configuration"].is_string());
    assert!(
        matches!(then, Outcome::Retry { delay: 5, ref message, .. } if message == "Creating ConfigMap:prod:app-cm.")
    );

    // Present and equal (extra fields ignored): finish, then postconditions.
    let mut live = body.clone();
    live["metadata"]["uid"] = json!("123");
    let Action::Finish(resource) = eval::decide(f, &inputs, &prepared, Some(&live)).unwrap() else {
        panic!("expected no write")
    };
    assert!(matches!(
        eval::finish_resource(f, &inputs, &prepared, &resource),
        Outcome::Retry { delay: 3, .. }
    ));
    live["status"] = json!({});
    assert_eq!(
        eval::finish_resource(f, &inputs, &prepared, &live),
        Outcome::Ok(json!({"name": "app-cm"}))
    );

    // Drift: patch with the full target and say why.
    live["data"]["count"] = json!("1");
    let Action::Patch { then, .. } = eval::decide(f, &inputs, &prepared, Some(&live)).unwrap()
    else {
        panic!("expected a patch")
    };
    assert_eq!(
        then.message().unwrap(),
        "Patching `ConfigMap:prod:app-cm` due to 'data' -> 'count' -> <target:[2], resource:[1]>."
    );
}

#[test]
fn workflow_steps_plan_and_switch() {
    let ws = workspace(
        r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: wf}
spec:
  steps:
  - label: config
    ref: {kind: ValueFunction, name: a}
    inputs: {x: =parent.spec.x}
  - label: each
    ref: {kind: ValueFunction, name: a}
    forEach: {itemIn: =steps.config.items, inputKey: item}
    inputs: {x: =steps.config.x}
  - label: maybe
    refSwitch:
      switchOn: =inputs.flavour
      cases:
      - {case: pg, kind: ValueFunction, name: a}
      - {case: other, kind: ValueFunction, name: b, default: true}
    skipIf: =parent.spec.x == 0
    inputs: {flavour: =parent.spec.flavour, x: =steps.each.size()}
"#,
    );
    let Some(Definition::Workflow(wf)) = ws.find("Workflow", "wf", None) else {
        panic!()
    };
    let mut diags = Vec::new();
    let graph = analysis::step_graph(wf, &mut diags);
    assert!(diags.is_empty());
    assert_eq!(graph.dependencies, vec![vec![], vec![0], vec![1]]);

    let parent = json!({"spec": {"x": 1, "flavour": "mysql"}});
    let steps = json!({"config": {"x": 1, "items": ["a", "b"]}, "each": [1, 2]});
    let ctx = StepContext {
        parent: &parent,
        steps: &steps,
    };
    assert_eq!(
        plan_step(&wf.steps[1], &ctx).unwrap(),
        StepPlan::ForEach {
            inputs: vec![json!({"x": 1, "item": "a"}), json!({"x": 1, "item": "b"})]
        }
    );
    let StepPlan::Run { inputs } = plan_step(&wf.steps[2], &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(choose_case(&wf.steps[2], &inputs, &ctx).unwrap().name, "b");

    let parent = json!({"spec": {"x": 0}});
    let ctx = StepContext {
        parent: &parent,
        steps: &steps,
    };
    assert!(matches!(
        plan_step(&wf.steps[2], &ctx).unwrap(),
        StepPlan::Skip(Outcome::Skip { .. })
    ));
}

#[test]
fn steps_must_read_earlier_steps() {
    let ws = Workspace::load_str(
        "wf.koreo",
        r#"
apiVersion: koreo.dev/v1beta1
kind: Workflow
metadata: {name: wf}
spec:
  steps:
  - label: first
    ref: {kind: ValueFunction, name: a}
    inputs: {x: =steps.second.x, y: =steps.nope}
  - label: second
    ref: {kind: ValueFunction, name: a}
"#,
    );
    let Some(Definition::Workflow(wf)) = ws.find("Workflow", "wf", None) else {
        panic!()
    };
    let mut diags = Vec::new();
    analysis::step_graph(wf, &mut diags);
    let messages: Vec<_> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "step `first` reads `steps.second`, which is listed after it",
            "step `first` reads `steps.nope`, but there is no step `nope`"
        ]
    );
    assert_eq!(diags[0].location.span.start.line, 9);
}

#[test]
fn combining_outcomes_ranks_them() {
    let ok = |v: Value| Outcome::Ok(v);
    let retry = |m: &str, d| Outcome::retry(m, d, None);
    assert_eq!(combine(vec![ok(json!(1)), ok(json!(2))]), ok(json!([1, 2])));
    assert_eq!(
        combine(vec![ok(json!(1)), retry("a", 5), retry("b", 9)]),
        retry("a, b", 9)
    );
    let failed = combine(vec![retry("a", 5), Outcome::perm_fail("bad", None)]);
    assert_eq!(failed.name(), "PermFail");
    assert_eq!(combine(vec![]).name(), "Skip");
}

#[test]
fn a_yaml_mistake_keeps_the_definitions_before_it() {
    let text = "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {name: kept, namespace: default}\nspec:\n  return: {x: =1}\n---\nkind: [broken\n";
    let ws = Workspace::load_str("two.koreo", text);
    assert_eq!(ws.definitions.len(), 1, "the first document loaded");
    let error = ws.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert!(error.message.starts_with("invalid YAML"), "{error}");
    assert!(
        error
            .to_string()
            .contains("the documents before this one loaded"),
        "{error}"
    );
}

#[test]
fn a_type_that_is_not_a_string_is_an_error_not_nothing() {
    let text = "apiVersion: [koreo.dev/v1beta1]\nkind: ValueFunction\nmetadata: {name: x}\n";
    let ws = Workspace::load_str("list.koreo", text);
    let error = ws
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("an error");
    assert!(
        error.message.contains("`apiVersion` must be a string"),
        "{error}"
    );
    assert_eq!(error.location.span.start.line, 1);
}

#[test]
fn a_file_that_is_not_utf8_says_where() {
    let dir = std::env::temp_dir().join(format!("koreo-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.koreo");
    std::fs::write(&path, b"a: 1\nbb: \xff\n").unwrap();
    let ws = Workspace::load_paths(&[&path]);
    let error = ws
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("an error");
    let at = error.location.span.start;
    assert_eq!((at.line, at.col), (2, 5), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn names_kubernetes_refuses_are_errors() {
    for (meta, want) in [
        ("{name: Bad_Name}", "is not a Kubernetes name"),
        ("{name: ok, namespace: Team.A}", "is not a namespace name"),
        ("{name: -x}", "is not a Kubernetes name"),
    ] {
        let text = format!(
            "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {meta}\nspec:\n  return: {{x: 1}}\n"
        );
        let ws = Workspace::load_str("names.koreo", text);
        let errors: Vec<String> = ws
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{meta}: {errors:?}"
        );
    }
    let fine = "apiVersion: koreo.dev/v1beta1\nkind: ValueFunction\nmetadata: {name: fully-built.v1, namespace: koreo-testing}\nspec:\n  return: {x: 1}\n";
    assert!(
        !Workspace::load_str("ok.koreo", fine)
            .diagnostics
            .iter()
            .any(|d| d.is_error())
    );
}

#[test]
fn the_last_applied_record_of_a_secret_holds_no_values() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"password": "SECRET-VALUE-123"}, "data": {"token": "c2VjcmV0"}});
    let body = koreo_lang::eval::with_last_applied(&secret);
    let record = body["metadata"]["annotations"]["koreo.dev/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(
        !record.contains("SECRET-VALUE-123") && !record.contains("c2VjcmV0"),
        "{record}"
    );
    assert!(
        record.contains("password") && record.contains("token"),
        "{record}"
    );
    // The object written still has its values.
    assert_eq!(body["stringData"]["password"], "SECRET-VALUE-123");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
    let body = koreo_lang::eval::with_last_applied(&config_map);
    let record = body["metadata"]["annotations"]["koreo.dev/last-applied-configuration"]
        .as_str()
        .unwrap();
    assert!(record.contains(r#""a":"b""#), "{record}");
}
